/* Forwarding in user space (copy.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "copy.h"
#include "relay.h"

/* Reads per event and direction, so that one busy connection cannot hold the loop. */
#define READS_PER_EVENT 16

static struct copy_dir *dir_from(struct session *s, const struct end *from)
{
	return from == &s->caller ? &s->up : &s->down;
}

int copy_start(struct session *s)
{
	s->up.buf = malloc(relay.policy->buffer);
	s->down.buf = malloc(relay.policy->buffer);
	s->up.size = s->down.size = relay.policy->buffer;
	return s->up.buf && s->down.buf ? 0 : -1;
}

int copy_preload(struct session *s, const struct end *from, const uint8_t *bytes, size_t n)
{
	struct copy_dir *d = dir_from(s, from);

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

void copy_free(struct session *s)
{
	free(s->up.buf);
	free(s->down.buf);
	s->up.buf = s->down.buf = NULL;
}

uint32_t copy_pending(const struct session *s, const struct end *from)
{
	const struct copy_dir *d = from == &s->caller ? &s->up : &s->down;

	return d->tail - d->head;
}

uint32_t copy_interest(const struct session *s, const struct end *e)
{
	const struct end *other = e == &s->caller ? &s->dest : &s->caller;
	uint32_t ev = 0;

	if (!e->eof && copy_pending(s, e) < (e == &s->caller ? s->up.size : s->down.size))
		ev |= EPOLLIN;
	if (!e->gone && copy_pending(s, other) && !session_kernel_sending(s, e))
		ev |= EPOLLOUT;
	return ev;
}

/* End e takes nothing more: it closed, or shut its reading. What it sent still goes on, but
 * what is owed to it is dropped, and the other end learns as it would on a direct
 * connection: its writes fail from now on (our SHUT_RD reaches its guest as the peer's), so
 * a program blocked writing to a gone reader is not stuck for ever. */
static void lost_reader(struct session *s, struct end *e)
{
	struct end *other = session_other(s, e);
	struct copy_dir *owed = dir_from(s, other);

	if (!e->gone)
		/* its hang-up is level: from now on armed one event at a time (session_settle) */
		session_watch(e, EPOLLONESHOT);
	e->gone = true;
	if (e->shut)
		return;
	owed->head = owed->tail = 0;
	e->shut = true;
	other->eof = true;
	shutdown(other->w.fd, SHUT_RD);
}

/* Writes what d holds to end `to`; an end that takes no more (EPIPE) loses it. -1 on
 * another write error. */
static int flush(struct session *s, struct copy_dir *d, struct end *to)
{
	unsigned long long *count = d == &s->up ? &s->bytes_up : &s->bytes_down;

	if (session_kernel_sending(s, to))
		return 0; /* its turn comes after the kernel's (a tick) */
	while (d->head < d->tail) {
		ssize_t n = send(to->w.fd, d->buf + d->head, d->tail - d->head,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EPIPE) {
			lost_reader(s, to);
			return 0;
		}
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		d->head += (uint32_t)n;
		*count += (unsigned long long)n;
	}
	d->head = d->tail = 0;
	return 0;
}

/* Reads from end `from` into its direction's buffer and passes it on. -1 on an error. */
static int fill(struct session *s, struct end *from)
{
	struct copy_dir *d = dir_from(s, from);
	struct end *to = session_other(s, from);
	uint32_t size = d->size;

	for (int i = 0; i < READS_PER_EVENT && !from->eof; i++) {
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
		if (flush(s, d, to) < 0) /* to gone: from is at eof, the loop ends */
			return -1;
	}
	return 0;
}

void copy_on_event(struct session *s, struct end *e, uint32_t events)
{
	struct end *other = session_other(s, e);

	if (events & EPOLLHUP)
		lost_reader(s, e);
	if ((events & EPOLLERR) || fill(s, e) < 0 ||
	    (!e->gone && flush(s, dir_from(s, other), e) < 0)) {
		session_end(s, "reset");
		return;
	}
	session_settle(s);
}

void copy_tick(struct session *s)
{
	bool owing = false;

	for (struct end *e = &s->caller; e; e = e == &s->caller ? &s->dest : NULL) {
		struct copy_dir *owed = dir_from(s, session_other(s, e));
		if (e->gone || owed->head == owed->tail)
			continue;
		owing = true;
		if (flush(s, owed, e) < 0) {
			session_end(s, "reset");
			return;
		}
	}
	if (owing)
		session_settle(s);
}
