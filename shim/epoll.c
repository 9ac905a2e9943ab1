/* epoll registrations made before connect(). Swapping a socket onto a descriptor removes
 * the old socket from every epoll set (epoll watches open files, not numbers), so programs
 * that add the socket before connecting (Boost.Asio, some libuv paths) would never hear of
 * the connection. Only fresh TCP sockets are recorded; every other epoll_ctl goes straight
 * through. */
#include <errno.h>
#include <stdlib.h>

#include "epoll_replay.h"
#include "shim.h"

static void record(struct fd_state *st, int epfd, int op, const struct epoll_event *ev)
{
	struct epoll_reg **p = &st->pre.regs;

	pthread_mutex_lock(&st->pre.lock);
	while (*p && (*p)->epfd != epfd)
		p = &(*p)->next;
	if (op == EPOLL_CTL_DEL && *p) {
		struct epoll_reg *gone = *p;
		*p = gone->next;
		free(gone);
	} else if (op == EPOLL_CTL_MOD && *p) {
		(*p)->event = *ev;
	} else if (op == EPOLL_CTL_ADD && !*p) {
		struct epoll_reg *reg = malloc(sizeof(*reg));
		if (reg) {
			*reg = (struct epoll_reg){.epfd = epfd, .event = *ev};
			*p = reg;
		}
	}
	pthread_mutex_unlock(&st->pre.lock);
}

/* A descriptor with a pre-connect state is changed and recorded under its lock, which a swap
 * holds too (swap.c): a registration made while a pending connect ends is never lost. */
HOOK int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	shim_init();
	if (fdstate_peek(fd) == 0)
		return real.epoll_ctl(epfd, op, fd, event);
	int saved = errno;
	struct fd_state *st = fdstate_acquire_preconnect(fd);
	errno = saved;
	if (!st)
		return real.epoll_ctl(epfd, op, fd, event);
	pthread_mutex_lock(&st->pre.lock);
	int rc = real.epoll_ctl(epfd, op, fd, event);
	saved = errno;
	if (rc == 0)
		record(st, epfd, op, event);
	pthread_mutex_unlock(&st->pre.lock);
	fdstate_release(st);
	errno = saved;
	return rc;
}

/* Every registration pre recorded, made again on fd with op. */
static void each_registration(int fd, struct fd_state *pre, int op)
{
	if (!pre || pre->kind != FD_PRECONNECT)
		return;
	pthread_mutex_lock(&pre->pre.lock);
	for (struct epoll_reg *r = pre->pre.regs; r; r = r->next) {
		struct epoll_event ev = r->event;
		if (real.epoll_ctl(r->epfd, op, fd, &ev) < 0 && op == EPOLL_CTL_ADD)
			shim_debug("fd %d: could not re-add to epoll %d", fd, r->epfd);
	}
	pthread_mutex_unlock(&pre->pre.lock);
}

void epoll_replay(int fd, struct fd_state *pre)
{
	each_registration(fd, pre, EPOLL_CTL_ADD);
}

void epoll_forget(int fd, struct fd_state *pre)
{
	each_registration(fd, pre, EPOLL_CTL_DEL);
}
