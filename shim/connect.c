/* connect(), and the sibling connection that sendto()/sendmsg() with MSG_FASTOPEN make too
 * (send.c). The decision is a lookup in the mapped table: a connection that is not for a
 * sibling costs no system call, allocation or lock beyond the real connect. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "connect.h"
#include "fdstate.h"
#include "pending.h"
#include "shim.h"
#include "vmshim/endpoint.h"
#include "table_client.h"

/* A socket bound to a device (SO_BINDTODEVICE) or marked for policy routing (SO_MARK) asked
 * for a path that vsock cannot honour: it stays TCP. Asked only of sibling destinations. */
static bool routed_by_application(int fd)
{
	char dev[IFNAMSIZ];
	socklen_t dev_len = sizeof(dev);
	int mark = 0;
	socklen_t mark_len = sizeof(mark);

	return (real.getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &dev_len) == 0 &&
		dev_len > 0 && dev[0]) ||
	       (real.getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &mark_len) == 0 && mark != 0);
}

/* The sibling route for a TCP destination, if there is one. */
static int sibling_route(int fd, const struct sockaddr *addr, socklen_t len,
			 struct vmshim_endpoint *dest, struct vmshim_route *route)
{
	return endpoint_from_sockaddr(addr, len, dest) == 0 && !endpoint_is_loopback(dest) &&
	       table_route(dest->family, dest->addr, dest->port, route) == VMSHIM_SIBLING &&
	       !routed_by_application(fd) && !tcp_refuses(fd, addr) &&
	       !duplicated_before_connect(fd);
}

static void debug_direct(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct vmshim_endpoint dest;
	char host[INET6_ADDRSTRLEN] = "?";

	if (endpoint_from_sockaddr(addr, len, &dest) < 0)
		return; /* not TCP/IP: not ours to mention */
	inet_ntop(dest.family, dest.addr, host, sizeof(host));
	shim_log("fd %d: %s port %u: plain TCP (no sibling's, the socket is bound to a device or "
		 "marked or duplicated, or TCP refuses the address)", fd, host, dest.port);
}

/* Tries to make fd a sibling connection to addr (redirect.h). */
static enum redirect_result try_sibling(int fd, const struct sockaddr *addr, socklen_t len,
					bool connecting)
{
	struct vmshim_endpoint dest;
	struct vmshim_route route;

	if (!sibling_route(fd, addr, len, &dest, &route)) {
		if (shim_config.debug)
			debug_direct(fd, addr, len);
		return REDIRECT_TCP;
	}
	return redirect_connect(fd, addr, len, &dest, &route, connecting);
}

/* A descriptor closed by another thread during the sibling connect: what a connect() on a
 * closed descriptor says, not a TCP connect of whatever took its number. */
static int gone(void)
{
	errno = EBADF;
	return -1;
}

/* connect() (or MSG_FASTOPEN) on a descriptor whose sibling connect is under way, as on a
 * connecting TCP socket: EALREADY if non-blocking; a blocking one waits for the outcome. */
static enum redirect_result again(int fd, struct fd_state *pre, bool connecting)
{
	int fl = real.fcntl(fd, F_GETFL);

	if (fl >= 0 && (fl & O_NONBLOCK))
		return REDIRECT_ALREADY;
	return pending_wait(fd, pre, connecting);
}

enum redirect_result connect_sibling(int fd, const struct sockaddr *addr, socklen_t len,
				     bool connecting)
{
	struct fd_state *pre = pending_acquire(fd);
	enum redirect_result result = pre ? again(fd, pre, connecting)
					  : try_sibling(fd, addr, len, connecting);

	fdstate_release(pre);

	/* From here on this is a plain TCP socket: stop watching its epoll registrations. */
	if (result == REDIRECT_TCP && fdstate_peek(fd))
		fdstate_set(fd, 0);
	return result;
}

HOOK int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (shim_off())
		return real.connect(fd, addr, len);
	struct fd_state *st = fdstate_acquire_redirected(fd);
	if (st) {
		bool afresh;
		int rc = redirected_connect(fd, st, addr, len, &afresh);
		fdstate_release(st);
		if (!afresh)
			return rc;
	}
	switch (connect_sibling(fd, addr, len, true)) {
	case REDIRECT_TCP:
		break;
	case REDIRECT_DONE:
		return 0;
	case REDIRECT_IN_PROGRESS:
		/* The non-blocking contract: EINPROGRESS, then POLLOUT and SO_ERROR. */
		errno = EINPROGRESS;
		return -1;
	case REDIRECT_ALREADY:
		errno = EALREADY;
		return -1;
	case REDIRECT_INTERRUPTED: /* the connect goes on, as TCP's */
		errno = EINTR;
		return -1;
	case REDIRECT_FD_GONE:
		return gone();
	}
	return real.connect(fd, addr, len);
}
