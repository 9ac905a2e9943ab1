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
	return s->up.buf && s->down.buf ? 0 : -1;
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

	if (!e->eof && copy_pending(s, e) < relay.policy->buffer)
		ev |= EPOLLIN;
	if (!e->gone && copy_pending(s, other))
		ev |= EPOLLOUT;
	return ev;
}

/* Writes what d holds to end `to`. -1 on a write error. */
static int flush(struct session *s, struct copy_dir *d, struct end *to)
{
	unsigned long long *count = d == &s->up ? &s->bytes_up : &s->bytes_down;

	while (d->head < d->tail) {
		ssize_t n = send(to->w.fd, d->buf + d->head, d->tail - d->head,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
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
	uint32_t size = relay.policy->buffer;

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
		if (!to->gone && flush(s, d, to) < 0)
			return -1;
	}
	return 0;
}

void copy_on_event(struct session *s, struct end *e, uint32_t events)
{
	struct end *other = session_other(s, e);

	if (events & EPOLLHUP)
		e->gone = true;
	if ((events & EPOLLERR) || fill(s, e) < 0 ||
	    (!e->gone && flush(s, dir_from(s, other), e) < 0)) {
		session_end(s, "reset");
		return;
	}
	session_settle(s);
}
