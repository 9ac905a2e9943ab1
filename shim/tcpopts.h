/* TCP- and IP-level socket options of a redirected connection. vsock refuses them all
 * (ENOPROTOOPT), so the shim keeps them here: applications set and read them as on TCP,
 * with TCP's validation, and they start as whatever the TCP socket had before the swap. */
#ifndef VMSHIM_TCPOPTS_H
#define VMSHIM_TCPOPTS_H

#include <stddef.h>
#include <sys/socket.h>

#define TCP_OPT_INTS 17
#define TCP_CONGESTION_MAX 16

struct tcp_opts {
	int value[TCP_OPT_INTS]; /* indexed like the option table in tcpopts.c */
	char congestion[TCP_CONGESTION_MAX];
};

/* True for the levels this module answers on a redirected socket. */
int tcp_opts_level(int level);

/* Options are also named by a bit (0..TCP_OPT_INTS, the last for TCP_CONGESTION), so that
 * the shim can note which ones an application set on a socket before the swap. */
#define TCP_OPTS_ALL (~0u)

/* The bit of an option kept here, or -1. */
int tcp_opts_bit(int level, int name);

/* Reads into opts those options of the TCP socket tcp_fd whose bit is in mask; the others
 * keep the values opts has. */
void tcp_opts_capture(struct tcp_opts *opts, int tcp_fd,
		      int (*get)(int, int, int, void *, socklen_t *), unsigned mask);

/* Sets on the TCP socket tcp_fd those options whose value in opts differs from the socket's
 * own; returns the bits of the options set. */
unsigned tcp_opts_apply(const struct tcp_opts *opts, int tcp_fd,
			int (*get)(int, int, int, void *, socklen_t *),
			int (*set)(int, int, int, const void *, socklen_t));

/* Starts the options of a connection swapped onto fd (a TCP socket of family AF_INET or
 * AF_INET6): the defaults, and from fd the options whose bit is in options_set
 * (tcpopts_start.c). */
void tcp_opts_start(struct tcp_opts *opts, int family, int fd, unsigned options_set);

/* Answers a getsockopt with size bytes at src, as the kernel does: truncated to *len, and
 * *len set to what was copied. *len must not be negative. */
void tcp_opts_copy_out(const void *src, size_t size, void *val, socklen_t *len);

/* getsockopt/setsockopt as TCP would answer them on a socket of family AF_INET or AF_INET6:
 * 0, or -1 with errno. */
int tcp_opts_get(const struct tcp_opts *opts, int family, int level, int name, void *val,
		 socklen_t *len);
int tcp_opts_set(struct tcp_opts *opts, int family, int level, int name, const void *val,
		 socklen_t len);

#endif
