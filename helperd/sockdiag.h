#ifndef HELPERD_SOCKDIAG_H
#define HELPERD_SOCKDIAG_H

#include <stddef.h>
#include <stdint.h>

/* The inodes of every TCP socket in LISTEN state in this network namespace, IPv4 and IPv6,
 * sorted, in a malloc'ed array (*inodes, *count). Returns 0, or -1 if the kernel could not
 * be asked (no inet_diag or tcp_diag; logged as a warning): then nothing can be said about
 * liveness. */
int sockdiag_listening(uint64_t **inodes, size_t *count);

/* The cookie of this network namespace's TCP socket with local address src and peer dst
 * (as bpf_get_socket_cookie() gives it): 0, or -1 with errno (ENOENT: no such socket). */
struct sockaddr_in;
int sockdiag_tcp4_cookie(const struct sockaddr_in *src, const struct sockaddr_in *dst,
			 uint64_t *cookie);

/* Whether inode is in such an array. */
int sockdiag_has(const uint64_t *inodes, size_t count, uint64_t inode);

#endif
