/* getpeername()/getsockname() on a redirected connection show the TCP addresses the
 * application expects, never the vsock ones. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "fdstate.h"
#include "pending.h"
#include "shim.h"
#include "vmshim/endpoint.h"

HOOK int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct fd_state *st = shim_off() ? NULL : fdstate_acquire_redirected(fd);
	struct fd_state *pre;

	if (!st && !shim_config.disabled && (pre = pending_acquire(fd))) {
		fdstate_release(pre);
		errno = ENOTCONN; /* as a connecting TCP socket */
		return -1;
	}
	if (!st)
		return real.getpeername(fd, addr, len);
	int rc = 0;
	if (atomic_load(&st->conn.disconnected)) {
		errno = ENOTCONN;
		rc = -1;
	} else {
		rc = copy_sockaddr_out(&st->conn.peer, st->conn.peer_len, addr, len);
	}
	fdstate_release(st);
	return rc;
}

/* Once disconnected (connect(AF_UNSPEC)), TCP keeps the local port but not the address
 * (tcp_disconnect: inet_reset_saddr). */
static void forget_address(struct sockaddr_storage *local)
{
	if (local->ss_family == AF_INET)
		((struct sockaddr_in *)local)->sin_addr.s_addr = 0;
	else
		memset(&((struct sockaddr_in6 *)local)->sin6_addr, 0, sizeof(struct in6_addr));
}

HOOK int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct fd_state *st = shim_off() ? NULL : fdstate_acquire_redirected(fd);
	int kept;
	struct fd_state *pre;

	if (!st && !shim_config.disabled && (pre = pending_hold(fd, &kept))) {
		int rc = real.getsockname(kept, addr, len); /* its TCP socket, not yet bound */
		pending_unhold(pre);
		return rc;
	}
	if (!st)
		return real.getsockname(fd, addr, len);
	struct sockaddr_storage local = st->conn.local;
	if (atomic_load(&st->conn.disconnected))
		forget_address(&local);
	int rc = copy_sockaddr_out(&local, st->conn.local_len, addr, len);
	fdstate_release(st);
	return rc;
}
