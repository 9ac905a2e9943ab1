/* The swap: one dup3() puts a vsock socket onto the application's descriptor, both for a
 * sibling connection made by connect() and for one taken by accept(). Everything the
 * application set on its TCP socket that vsock honours goes over first. */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "epoll_replay.h"
#include "shim.h"
#include "swap.h"

/* SOL_SOCKET options that vsock honours too; the application may have set them already. */
static const int inherited_options[] = {SO_KEEPALIVE, SO_RCVTIMEO, SO_SNDTIMEO, SO_PRIORITY};

static void copy_settings(int fd, int vs)
{
	int fl = real.fcntl(fd, F_GETFL);

	if (fl >= 0)
		real.fcntl(vs, F_SETFL, fl & (O_NONBLOCK | O_ASYNC));
	if (fl >= 0 && (fl & O_ASYNC)) {
		struct f_owner_ex owner;
		if (real.fcntl(fd, F_GETOWN_EX, &owner) == 0)
			real.fcntl(vs, F_SETOWN_EX, &owner);
	}
	for (size_t i = 0; i < sizeof(inherited_options) / sizeof(inherited_options[0]); i++) {
		char val[sizeof(struct timeval)];
		socklen_t len = sizeof(val);
		if (real.getsockopt(fd, SOL_SOCKET, inherited_options[i], val, &len) == 0)
			real.setsockopt(vs, SOL_SOCKET, inherited_options[i], val, len);
	}
	struct linger linger;
	socklen_t len = sizeof(linger);
	if (real.getsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, &len) == 0 && linger.l_onoff)
		real.setsockopt(vs, SOL_SOCKET, SO_LINGER, &linger, len);
}

int swap_in(int fd, int vs, uintptr_t pre, struct fd_state *st)
{
	copy_settings(fd, vs);
	int fdflags = real.fcntl(fd, F_GETFD);
	if (real.dup3(vs, fd, fdflags >= 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
		return -1;
	real.close(vs);
	/* The old socket's epoll registrations went with it: make them again on the new one. */
	epoll_replay(fd, fdstate_ptr(pre));
	fdstate_set(fd, (uintptr_t)st);
	return 0;
}
