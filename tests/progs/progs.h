/* Small helpers shared by the test programs (header-only: each program is one file). */
#ifndef VMSHIM_PROGS_H
#define VMSHIM_PROGS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

__attribute__((noreturn)) static inline void die(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (errno %d: %s)\n", saved, strerror(saved));
	va_end(ap);
	exit(1);
}

/* "198.18.0.2", "::ffff:198.18.0.2" or "2001:db8::2" with a port. */
static inline socklen_t parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(host, ':')) {
		struct sockaddr_in6 *in6 = (void *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			die("bad address %s", host);
		return sizeof(*in6);
	}
	struct sockaddr_in *in = (void *)ss;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		die("bad address %s", host);
	return sizeof(*in);
}

static inline const char *show_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%d", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "family%d", ss->ss_family);
	}
	return buf;
}

/* Prints "WHAT local=A peer=B" for a connected socket. */
static inline void print_names(const char *what, int fd)
{
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);
	char a[80], b[80];

	if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		die("%s: getsockname/getpeername", what);
	printf("%s local=%s peer=%s\n", what, show_addr(&local, a, sizeof(a)),
	       show_addr(&peer, b, sizeof(b)));
	fflush(stdout);
}

/* The byte at offset i of every test stream: a pattern that catches reordering and loss. */
static inline unsigned char pattern_byte(size_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

/* HOST PORT BYTES, as the clients that send the pattern take them (raw_static,
 * uring_client): where to, and how much. */
struct pattern_client {
	struct sockaddr_storage to;
	socklen_t len;
	size_t bytes;
};

static inline void pattern_client_args(int argc, char **argv, struct pattern_client *c)
{
	if (argc != 4)
		die("usage: %s HOST PORT BYTES", argv[0]);
	c->len = parse_addr(argv[1], atoi(argv[2]), &c->to);
	c->bytes = strtoul(argv[3], NULL, 0);
}

/* Fills buf with the pattern's bytes from offset `at` on; how many: the rest of `bytes`, at
 * most `size`. */
static inline size_t pattern_fill(unsigned char *buf, size_t size, size_t at, size_t bytes)
{
	size_t n = bytes - at < size ? bytes - at : size;

	for (size_t i = 0; i < n; i++)
		buf[i] = pattern_byte(at + i);
	return n;
}

/* Payloads of the stress programs: a reproducible stream of numbers, and the FNV-1a hash
 * (64-bit) each end computes of what it sent and received. */
static inline uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t fnv1a(uint64_t hash, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		hash = (hash ^ p[i]) * 1099511628211ull;
	return hash;
}

#endif
