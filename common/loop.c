#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vmshim/log.h"
#include "vmshim/loop.h"

static int epfd = -1;
static struct watch *retired;

int loop_init(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	return epfd < 0 ? -1 : 0;
}

static int ctl(int op, struct watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(epfd, op, w->fd, &ev);
}

int loop_add(struct watch *w, uint32_t events)
{
	return ctl(EPOLL_CTL_ADD, w, events);
}

int loop_mod(struct watch *w, uint32_t events)
{
	return ctl(EPOLL_CTL_MOD, w, events);
}

void loop_del(struct watch *w)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void loop_retire(struct watch *w)
{
	loop_del(w);
	w->on_event = NULL;
	w->retired_next = retired;
	retired = w;
}

static void free_retired(void)
{
	while (retired) {
		struct watch *w = retired;
		retired = w->retired_next;
		if (w->release)
			w->release(w);
		else
			free(w->owner);
	}
}

int loop_run(volatile int *stop, void (*before_sleep)(void))
{
	struct epoll_event events[64];

	for (;;) {
		if (before_sleep)
			before_sleep();
		if (*stop)
			break;
		int n = epoll_wait(epfd, events, 64, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_err("epoll_wait: %m");
			return -1;
		}
		for (int i = 0; i < n && !*stop; i++) {
			struct watch *w = events[i].data.ptr;
			if (w->on_event)
				w->on_event(w, events[i].events);
		}
		free_retired();
	}
	free_retired();
	return 0;
}

void loop_close(void)
{
	free_retired();
	if (epfd >= 0)
		close(epfd);
	epfd = -1;
}
