/* shutdown(): the kernel does it; on a redirected connection the shim notes which directions
 * were shut, which TCP_INFO's state needs (tcpinfo.c) and vsock does not tell. */
#include <errno.h>

#include "fdstate.h"
#include "shim.h"
#include "tcpinfo.h"

HOOK int shutdown(int fd, int how)
{
	shim_init();
	int rc = real.shutdown(fd, how);

	if (rc < 0 || !fdstate_peek(fd))
		return rc;
	int saved = errno;
	struct fd_state *st = fdstate_acquire_kind(fd, FD_REDIRECTED);
	if (st) {
		atomic_fetch_or(&st->conn.shut, tcp_info_shut_bits(how));
		fdstate_release(st);
	}
	errno = saved;
	return rc;
}
