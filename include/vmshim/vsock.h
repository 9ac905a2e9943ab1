/* vsock sockets as helperd, the relay and the shim make them: an address, a socket bound to
 * a free port of a range, a listener, and a connect with a bound on its wait. None logs:
 * each returns -1 with errno for its caller to say what failed. */
#ifndef VMSHIM_VSOCK_H
#define VMSHIM_VSOCK_H

#include <stdint.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

/* Where a connection starts. A guest reaches a sibling (any CID above the host's) through the
 * host, even a guest that hosts VMs itself; the host reaches the guest of that CID. */
enum vsock_from { VSOCK_FROM_GUEST, VSOCK_FROM_HOST };

/* Port `port` of `cid`. */
struct sockaddr_vm vsock_addr(uint32_t cid, uint32_t port);

/* Binds fd to port on every local CID. */
int vsock_bind(int fd, uint32_t port);

/* A non-blocking, close-on-exec socket bound to a free port of [first, first + count), or
 * -1 (EADDRINUSE: every one is taken). The ports are tried from first + *next on, and *next
 * is left after the one taken, so that a caller that keeps *next takes them in turn: a bind
 * per connection while few are held, and no port used again soon, which would hurt: vsock
 * has no TIME_WAIT, and on 6.12 a closed socket of helperd's gave its port up before its peer
 * had closed, so a new connection from it to the same place took the old one's late reset. */
int vsock_source_socket(uint32_t first, uint32_t count, uint32_t *next);

/* A socket listening on port of every local CID; flags for its type (SOCK_NONBLOCK,
 * SOCK_CLOEXEC). */
int vsock_listen(uint32_t port, int backlog, int flags);

/* Sizes fd's buffer, the window it grants and the packets it admits (vmshim/vsockbuf.h):
 * its maximum first, which bounds it. A listener's accepted sockets inherit it. */
int vsock_buffer_set(int fd, uint64_t size);

/* The kernel's own bound on a vsock connect when none is set (VSOCK_DEFAULT_CONNECT_TIMEOUT). */
#define VSOCK_KERNEL_CONNECT_TIMEOUT_MS 2000u

/* How long a connect with timeout_ms (0: none set) may take. */
static inline unsigned vsock_connect_timeout_ms(unsigned timeout_ms)
{
	return timeout_ms ? timeout_ms : VSOCK_KERNEL_CONNECT_TIMEOUT_MS;
}

/* Connects fd to cid:port; a blocking connect waits at most vsock_connect_timeout_ms
 * (timeout_ms), a non-blocking one fails with ETIMEDOUT after that long. */
int vsock_connect(int fd, uint32_t cid, uint32_t port, enum vsock_from from,
		  unsigned timeout_ms);

#endif
