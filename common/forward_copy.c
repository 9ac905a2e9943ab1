/* Forwarding in user space (forward_copy.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "forward_copy.h"

/* Reads per event and direction, so that one busy connection cannot hold the loop. */
#define READS_PER_EVENT 16

static int index_of(const struct forward *f, const struct forward_end *e)
{
	return e == f->end[0] ? 0 : 1;
}

int copy_start(struct forward *f)
{
	for (int i = 0; i < 2; i++) {
		f->dir[i] = (struct forward_dir){.buf = malloc(f->buffer), .size = f->buffer};
	}
	return f->dir[0].buf && f->dir[1].buf ? 0 : -1;
}

int copy_preload(struct forward *f, int i, const uint8_t *bytes, size_t n)
{
	struct forward_dir *d = &f->dir[i];

	if (d->tail + n > d->size) {
		uint8_t *grown = realloc(d->buf, d->tail + n);
		if (!grown)
			return -1;
		d->buf = grown;
		d->size = d->tail + (uint32_t)n;
	}
	memcpy(d->buf + d->tail, bytes, n);
	d->tail += (uint32_t)n;
	return 0;
}

void copy_free(struct forward *f)
{
	for (int i = 0; i < 2; i++) {
		free(f->dir[i].buf);
		f->dir[i] = (struct forward_dir){0};
	}
}

uint32_t copy_pending(const struct forward *f, int i)
{
	return f->dir[i].tail - f->dir[i].head;
}

uint32_t copy_interest(const struct forward *f, const struct forward_end *e)
{
	int i = index_of(f, e);
	uint32_t ev = 0;

	if (!e->eof && copy_pending(f, i) < f->dir[i].size)
		ev |= EPOLLIN;
	if (!e->gone && copy_pending(f, !i) && !forward_kernel_sending(f, e))
		ev |= EPOLLOUT;
	return ev;
}

/* End e takes nothing more: it closed, or shut its reading. What it sent still goes on, but
 * what is owed to it is dropped, and the other end learns as it would on a direct
 * connection: its writes fail from now on (our SHUT_RD reaches its peer as the peer's), so
 * a program blocked writing to a gone reader is not stuck for ever. */
static void lost_reader(struct forward *f, struct forward_end *e)
{
	struct forward_end *other = forward_other(f, e);
	struct forward_dir *owed = &f->dir[!index_of(f, e)];

	if (!e->gone)
		/* its hang-up is level: from now on armed one event at a time (forward_settle) */
		forward_watch(e, EPOLLONESHOT);
	e->gone = true;
	if (e->shut)
		return;
	owed->head = owed->tail = 0;
	e->shut = true;
	other->eof = true;
	shutdown(other->w.fd, SHUT_RD);
}

/* Writes what direction i holds to the other end; an end that takes no more (EPIPE) loses
 * it. -1 on another write error. */
static int flush(struct forward *f, int i)
{
	struct forward_dir *d = &f->dir[i];
	struct forward_end *to = f->end[!i];

	if (forward_kernel_sending(f, to))
		return 0; /* its turn comes after the kernel's (a tick) */
	while (d->head < d->tail) {
		ssize_t n = send(to->w.fd, d->buf + d->head, d->tail - d->head,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EPIPE) {
			lost_reader(f, to);
			return 0;
		}
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		d->head += (uint32_t)n;
		f->moved[i] += (unsigned long long)n;
	}
	d->head = d->tail = 0;
	return 0;
}

/* Reads from end i into its direction's buffer and passes it on. -1 on an error. */
static int fill(struct forward *f, int i)
{
	struct forward_dir *d = &f->dir[i];
	struct forward_end *from = f->end[i];
	uint32_t size = d->size;

	for (int k = 0; k < READS_PER_EVENT && !from->eof; k++) {
		if (d->tail == size && d->head > 0) {
			memmove(d->buf, d->buf + d->head, d->tail - d->head);
			d->tail -= d->head;
			d->head = 0;
		}
		if (d->tail == size)
			return 0; /* full: the destination is slower */
		ssize_t n = recv(from->w.fd, d->buf + d->tail, size - d->tail, MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		if (n == 0) {
			from->eof = true;
			break;
		}
		d->tail += (uint32_t)n;
		if (flush(f, i) < 0) /* to gone: from is at eof, the loop ends */
			return -1;
	}
	return 0;
}

void copy_on_event(struct forward *f, struct forward_end *e, uint32_t events)
{
	int i = index_of(f, e);

	if (events & EPOLLHUP)
		lost_reader(f, e);
	if ((events & EPOLLERR) || fill(f, i) < 0 || (!e->gone && flush(f, !i) < 0)) {
		f->ops->ended(f, "reset", true);
		return;
	}
	forward_settle(f);
}

bool copy_tick(struct forward *f)
{
	bool owing = false;

	for (int i = 0; i < 2; i++) {
		struct forward_dir *owed = &f->dir[!i];
		if (f->end[i]->gone || owed->head == owed->tail)
			continue;
		owing = true;
		if (flush(f, !i) < 0) {
			f->ops->ended(f, "reset", true);
			return true;
		}
	}
	if (owing)
		forward_settle(f);
	return owing;
}
