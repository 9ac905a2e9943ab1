/* connect() on a redirected connection, as on a connected TCP socket (__inet_stream_connect):
 * an AF_UNSPEC address disconnects (tcp_disconnect), any other says EISCONN, but the first
 * connect() after EINPROGRESS, which says 0. vsock cannot disconnect, nor connect a socket
 * twice; so a disconnect shuts the vsock connection down and marks its state, and the next
 * connect puts a new TCP socket on the descriptor, to be connected as any other. Until then
 * the descriptor keeps its file, which its duplicates, epoll sets and other threads share. */
#include <errno.h>
#include <fcntl.h>

#include "connect.h"
#include "shim.h"
#include "swap.h"
#include "tcpopts.h"

/* TCP ends the connection at once (with a reset, which vsock does not have: the peer reads
 * EOF), and whoever waits on it wakes. */
static void disconnect(int fd, struct fd_state *st)
{
	int saved = errno;

	atomic_store(&st->conn.in_progress, false);
	atomic_store(&st->conn.disconnected, true);
	real.shutdown(fd, SHUT_RDWR);
	errno = saved;
}

int redirected_connect(int fd, struct fd_state *st, const struct sockaddr *addr, socklen_t len,
		       bool *afresh)
{
	*afresh = false;
	if (len < sizeof(sa_family_t)) {
		errno = EINVAL;
		return -1;
	}
	/* The kernel's EFAULT or EINVAL, which come before the protocol's say. */
	if (!addr || len > sizeof(struct sockaddr_storage))
		return real.connect(fd, addr, len);
	if (addr->sa_family == AF_UNSPEC) {
		disconnect(fd, st);
		return 0;
	}
	if (atomic_load(&st->conn.disconnected)) {
		if (redirected_afresh(fd, st) < 0)
			return -1;
		*afresh = true;
		return 0;
	}
	if (atomic_exchange(&st->conn.in_progress, false))
		return 0;
	errno = EISCONN;
	return -1;
}

/* The state of the new TCP socket: a pre-connect one, as for a socket the application made,
 * naming the options set on it. Two references: the slot's and the caller's. */
static struct fd_state *afresh_state(unsigned options_set)
{
	struct fd_state *pre = fdstate_new(FD_PRECONNECT, 0);

	if (pre) {
		atomic_init(&pre->pre.options_set, options_set);
		atomic_fetch_add(&pre->refs, 1);
	}
	return pre;
}

int redirected_afresh(int fd, struct fd_state *st)
{
	int tcp = real.socket(st->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct fd_state *pre = NULL;

	if (tcp < 0)
		return -1;
	/* TCP keeps what the application set; the socket-level options go over in the swap. */
	pre = afresh_state(tcp_opts_apply(&st->conn.opts, tcp, real.getsockopt,
					    real.setsockopt));
	if (!pre) {
		real.close(tcp);
		errno = ENOMEM;
		return -1;
	}
	atomic_fetch_add(&st->refs, 1); /* the slot's, should it go back there */
	if (fdstate_replace(fd, (uintptr_t)st, (uintptr_t)pre) < 0) {
		fdstate_release(st);
		fdstate_release(pre);
		real.close(tcp);
		errno = EBADF; /* closed, or taken by another thread's connect, meanwhile */
		return -1;
	}
	enum swap_result swapped = swap_in(fd, tcp, fd, pre, NULL);
	if (swapped == SWAP_FAILED) {
		int saved = errno;
		fdstate_replace(fd, (uintptr_t)pre, (uintptr_t)st); /* fd is still the vsock one */
		real.close(tcp);
		fdstate_release(pre);
		errno = saved;
		return -1;
	}
	fdstate_release(st);
	/* A close() may also take the slot during the swap, and then closes the new socket. */
	bool kept = swapped == SWAP_DONE && fdstate_peek(fd) == (uintptr_t)pre;
	fdstate_release(pre);
	if (!kept) {
		errno = EBADF;
		return -1;
	}
	return 0;
}
