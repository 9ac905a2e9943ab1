/* getpeername()/getsockname() on a redirected connection show the TCP addresses the
 * application expects, never the vsock ones. */
#include "fdstate.h"
#include "shim.h"
#include "vmshim/endpoint.h"

HOOK int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct fd_state *st = shim_off() ? NULL : fdstate_redirected(fd);

	if (!st)
		return real.getpeername(fd, addr, len);
	return copy_sockaddr_out(&st->conn.peer, st->conn.peer_len, addr, len);
}

HOOK int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct fd_state *st = shim_off() ? NULL : fdstate_redirected(fd);

	if (!st)
		return real.getsockname(fd, addr, len);
	return copy_sockaddr_out(&st->conn.local, st->conn.local_len, addr, len);
}
