/* The swap: one dup3() puts a vsock socket onto the application's descriptor, both for a
 * sibling connection made by connect() and for one taken by accept(). Everything the
 * application set on its TCP socket that vsock honours goes over first. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "epoll_replay.h"
#include "shim.h"
#include "swap.h"

/* SOL_SOCKET options that vsock honours too; the application may have set them already. */
static const int inherited_options[] = {SO_KEEPALIVE, SO_RCVTIMEO, SO_SNDTIMEO, SO_PRIORITY};

bool swap_carries(int level, int name)
{
	if (level != SOL_SOCKET)
		return false;
	for (size_t i = 0; i < sizeof(inherited_options) / sizeof(inherited_options[0]); i++)
		if (name == inherited_options[i])
			return true;
	return name == SO_LINGER;
}

/* fd's file status flags, signal owner, and the socket options of `from` (a socket, or -1:
 * none) go over to vs. */
static void copy_settings(int fd, int from, int vs)
{
	int fl = real.fcntl(fd, F_GETFL);

	if (fl >= 0)
		real.fcntl(vs, F_SETFL, fl & (O_NONBLOCK | O_ASYNC));
	if (fl >= 0 && (fl & O_ASYNC)) {
		struct f_owner_ex owner;
		if (real.fcntl(fd, F_GETOWN_EX, &owner) == 0)
			real.fcntl(vs, F_SETOWN_EX, &owner);
	}
	if (from < 0)
		return;
	for (size_t i = 0; i < sizeof(inherited_options) / sizeof(inherited_options[0]); i++) {
		char val[sizeof(struct timeval)];
		socklen_t len = sizeof(val);
		if (real.getsockopt(from, SOL_SOCKET, inherited_options[i], val, &len) == 0)
			real.setsockopt(vs, SOL_SOCKET, inherited_options[i], val, len);
	}
	struct linger linger;
	socklen_t len = sizeof(linger);
	if (real.getsockopt(from, SOL_SOCKET, SO_LINGER, &linger, &len) == 0 && linger.l_onoff)
		real.setsockopt(vs, SOL_SOCKET, SO_LINGER, &linger, len);
}

/* The swap proper, from the check that fd still holds pre to the state's change. */
static enum swap_result swap_checked(int fd, int vs, struct fd_state *pre, struct fd_state *st,
				     int fdflags)
{
	if (fdstate_swap_begin(fd, pre) < 0) {
		if (errno != EBADF)
			return SWAP_FAILED;
		real.close(vs);
		fdstate_release(st);
		return SWAP_FD_GONE;
	}
	/* The file on fd may outlive the swap (a pending connect keeps its TCP socket aside),
	 * and epoll forgets a file only when it is gone: take its registrations off first. */
	epoll_forget(fd, pre);
	if (real.dup3(vs, fd, fdflags >= 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		epoll_replay(fd, pre);
		fdstate_swap_end(fd, pre, NULL);
		return SWAP_FAILED;
	}
	real.close(vs);
	/* The old file's epoll registrations went with it: make them again on the new one. */
	epoll_replay(fd, pre);
	return fdstate_swap_end(fd, pre, st) == 0 ? SWAP_DONE : SWAP_FD_GONE;
}

/* Signals wait during the swap: a handler that closed fd, or put another file on its number
 * (close and dup2 are async-signal-safe), between the check and the dup3 would see that file
 * replaced by the connection; another thread's close() waits for the swap instead. And it
 * holds pre's lock, so that an epoll_ctl() on fd meanwhile (epoll.c) lands wholly before the
 * swap, and is replayed, or wholly after, on the new file. */
enum swap_result swap_in(int fd, int vs, int from, struct fd_state *pre, struct fd_state *st)
{
	sigset_t all, was;

	copy_settings(fd, from, vs);
	int fdflags = real.fcntl(fd, F_GETFD);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &was);
	if (pre)
		pthread_mutex_lock(&pre->pre.lock);
	enum swap_result result = swap_checked(fd, vs, pre, st, fdflags);
	int saved = errno;
	if (pre)
		pthread_mutex_unlock(&pre->pre.lock);
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	errno = saved;
	return result;
}
