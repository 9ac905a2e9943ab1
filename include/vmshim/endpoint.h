/* A TCP/IP endpoint as vmshim carries it (in helperd's replies, the shim's state), and
 * converting between it and the application's socket addresses. */
#ifndef VMSHIM_ENDPOINT_H
#define VMSHIM_ENDPOINT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct vmshim_endpoint {
	uint16_t family; /* AF_INET or AF_INET6 */
	uint16_t port;   /* host order */
	uint8_t addr[16];
};

/* Reads an AF_INET or AF_INET6 address; an IPv4-mapped IPv6 address becomes AF_INET, as it
 * is on the wire. Returns -1 for any other family or a short length. */
int endpoint_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct vmshim_endpoint *ep);

/* The endpoint as a socket of family app_family shows it: IPv4 is mapped for AF_INET6. */
socklen_t endpoint_to_sockaddr(const struct vmshim_endpoint *ep, int app_family,
			       struct sockaddr_storage *out);

/* The endpoint a name call (getsockname or getpeername, or the shim's real ones) gives for
 * socket fd. Returns -1 when the call fails or the socket is not TCP/IP. */
int endpoint_of_socket(int fd, int (*name)(int, struct sockaddr *, socklen_t *),
		       struct vmshim_endpoint *ep);

bool endpoint_is_loopback(const struct vmshim_endpoint *ep);

/* Copies an address out as the kernel does: truncated to *len, *len set to its full size. */
int copy_sockaddr_out(const struct sockaddr_storage *src, socklen_t srclen, struct sockaddr *dst,
		      socklen_t *len);

#endif
