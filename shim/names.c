/* getpeername()/getsockname() on a redirected connection show the TCP addresses the
 * application expects, never the vsock ones. */
#include "fdstate.h"
#include "shim.h"
#include "vmshim/endpoint.h"

HOOK int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct fd_state *st = shim_off() ? NULL : fdstate_acquire_redirected(fd);

	if (!st)
		return real.getpeername(fd, addr, len);
	int rc = copy_sockaddr_out(&st->conn.peer, st->conn.peer_len, addr, len);
	fdstate_release(st);
	return rc;
}

HOOK int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct fd_state *st = shim_off() ? NULL : fdstate_acquire_redirected(fd);

	if (!st)
		return real.getsockname(fd, addr, len);
	int rc = copy_sockaddr_out(&st->conn.local, st->conn.local_len, addr, len);
	fdstate_release(st);
	return rc;
}
