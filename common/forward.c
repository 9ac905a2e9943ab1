/* Forwarding between two sockets, in the kernel or by copies (forward.h). */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "forward_copy.h"
#include "vmshim/clock.h"
#include "vmshim/log.h"
#include "vmshim/splice.h"
#include "vmshim/vsockbuf.h"

void forward_watch(struct forward_end *e, uint32_t events)
{
	if (events == e->armed)
		return;
	loop_mod(&e->w, events);
	e->armed = events & EPOLLONESHOT ? FORWARD_ARMED_UNKNOWN : events;
}

unsigned long long forward_moved(const struct forward *f, int i)
{
	uint64_t kernel[2] = {0, 0};

	if (f->path != FORWARD_COPY)
		splice_bytes(f->engine, f->splice_id, &kernel[0], &kernel[1]);
	return f->moved[i] + kernel[i];
}

void forward_stop(struct forward *f)
{
	if (f->path != FORWARD_COPY) {
		unsigned long long moved[2] = {forward_moved(f, 0), forward_moved(f, 1)};

		splice_remove(f->engine, f->splice_id);
		f->moved[0] = moved[0], f->moved[1] = moved[1];
		f->path = FORWARD_COPY;
	}
	copy_free(f);
}

/* Hands the pair to the kernel if it takes it (1), else leaves it with the copies (0), to
 * try again after `wait_ms` if only bytes in flight stood in the way, or a retry's wait later
 * if every pair of the engine was taken (one may end; a reload can raise max-connections
 * past the pairs the engine was sized for). -1 (errno EIO): the kernel lost bytes giving
 * it back. */
static int try_splice(struct forward *f, int64_t wait_ms)
{
	if (!f->engine)
		return 0;
	if (splice_add(f->engine, f->end[0]->w.fd, f->end[1]->w.fd,
		       f->buffer + VMSHIM_VSOCK_WINDOW, &f->splice_id) < 0) {
		if (errno == EIO)
			return -1;
		f->splice_retry_ms = errno == EBUSY    ? vmshim_now_ms() + wait_ms
				     : errno == ENOSPC ? vmshim_now_ms() + FORWARD_RETRY_MS
						       : INT64_MAX;
		return 0;
	}
	copy_free(f);
	f->path = FORWARD_SPLICED;
	f->window_full_seen[0] = f->window_full_seen[1] = 0;
	f->ops->counted(f, FORWARD_SPLICE);
	return 1;
}

int forward_begin(struct forward *f)
{
	/* Bytes waiting now are mostly a program's first (a request written while the way was
	 * made): the copies pass them on at once, and the next tick tries the kernel again. */
	int spliced = try_splice(f, 0);

	if (spliced < 0)
		return -1;
	if (!spliced && copy_start(f) < 0) {
		copy_free(f);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* Stops the kernel taking bytes off the sockets and gives them to the copies, which read at
 * once (so that neither side stays blocked on the other) but write in a direction only after
 * the kernel has sent what it took that way (forward_kernel_sending). */
static void take_back(struct forward *f, const char *why)
{
	log_debug("connection %lu: taken back from the kernel: %s", f->id, why);
	f->taken_back++;
	f->taken_back_why = why;
	splice_pause(f->engine, f->splice_id);
	f->path = FORWARD_LEAVING;
	f->ops->counted(f, FORWARD_TAKE_BACK);
	if (copy_start(f) < 0) {
		f->ops->ended(f, "no memory for its buffers", true);
		return;
	}
	/* a packet the kernel dropped while pausing goes first (splice_rescued) */
	for (int from = 0; from < 2; from++) {
		const uint8_t *bytes;
		ssize_t n = splice_rescued(f->engine, f->splice_id, from, &bytes);
		if (n < 0) {
			f->ops->ended(f, FORWARD_LOST_IN_KERNEL, true);
			return;
		}
		if (n && copy_preload(f, from, bytes, (size_t)n) < 0) {
			f->ops->ended(f, "no memory for its buffers", true);
			return;
		}
		if (n) {
			f->ops->counted(f, FORWARD_RESCUE);
			log_debug("connection %lu: %zd bytes rescued", f->id, n);
		}
	}
	/* an EOF seen while spliced but not passed on may have bytes before it: read() finds
	 * it again after them; a hang-up, the copies hear (or their sends find) again */
	for (int i = 0; i < 2; i++) {
		if (!f->end[!i]->shut)
			f->end[i]->eof = false;
		f->end[i]->gone = false;
	}
	forward_settle(f);
}

/* A LEAVING forward out of the kernel's hands once it has sent all it took. */
static void copy_over(struct forward *f)
{
	uint64_t sent[2];

	if (splice_release(f->engine, f->splice_id, &sent[0], &sent[1]) < 0)
		return;
	f->moved[0] += sent[0];
	f->moved[1] += sent[1];
	f->path = FORWARD_COPY;
	f->splice_retry_ms = vmshim_now_ms() + FORWARD_RETRY_MS;
}

bool forward_kernel_sending(const struct forward *f, const struct forward_end *to)
{
	uint64_t queued;

	return f->path == FORWARD_LEAVING &&
	       splice_queued(f->engine, f->splice_id, to == f->end[0] ? 1 : 0, &queued) == 0 &&
	       queued > 0;
}

/* 1 when every byte that came from end i has gone out on the other, 0 while some are on
 * their way; -1 (errno) when the kernel will not finish: EBUSY, bytes it left on end i;
 * else sending failed for good. */
static int drained(struct forward *f, int i)
{
	uint64_t queued = 0;

	if (f->path == FORWARD_SPLICED)
		return splice_drained(f->engine, f->splice_id, i);
	if (f->path == FORWARD_LEAVING && splice_queued(f->engine, f->splice_id, i, &queued) < 0)
		return -1;
	return !queued && copy_pending(f, i) == 0;
}

void forward_settle(struct forward *f)
{
	for (int i = 0; i < 2; i++) {
		struct forward_end *e = f->end[i], *other = f->end[!i];
		if (!e->eof || other->shut)
			continue;
		int done = drained(f, i);
		if (done < 0 && errno == EBUSY) {
			take_back(f, "bytes the kernel will not forward");
			return;
		}
		if (done < 0) {
			f->ops->ended(f, "reset", true);
			return;
		}
		if (!done)
			continue;
		shutdown(other->w.fd, SHUT_WR);
		other->shut = true;
		/* an end that takes nothing more ends the other direction too */
		if (e->gone) {
			f->ops->ended(f, "closed", false);
			return;
		}
	}
	if (f->end[0]->shut && f->end[1]->shut) {
		f->ops->ended(f, "closed", false);
		return;
	}
	if (f->path == FORWARD_SPLICED) {
		/* forwarded bytes never wake us: only an end's EOF, or bytes the kernel left
		 * (EPOLLIN without EPOLLRDHUP), each once; an end past EOF stays silent (the
		 * tick sees its direction drain) */
		for (int i = 0; i < 2; i++)
			if (!f->end[i]->eof)
				forward_watch(f->end[i], EPOLLIN | EPOLLRDHUP | EPOLLONESHOT);
		return;
	}
	for (int i = 0; i < 2; i++) {
		struct forward_end *e = f->end[i];
		uint32_t events = copy_interest(f, e);
		/* a gone end may hang up for ever (level): armed once, only for bytes to read */
		if (!e->gone)
			forward_watch(e, events);
		else if (events)
			forward_watch(e, events | EPOLLONESHOT);
	}
}

static void on_spliced_event(struct forward *f, struct forward_end *e, uint32_t events)
{
	if (events & EPOLLERR) {
		f->ops->ended(f, "error", true);
		return;
	}
	if (!(events & (EPOLLRDHUP | EPOLLHUP))) {
		take_back(f, "bytes the kernel will not forward");
		return;
	}
	e->eof = true;
	e->gone = events & EPOLLHUP;
	forward_settle(f);
}

void forward_on_event(struct forward_end *e, uint32_t events)
{
	if (e->f->path == FORWARD_SPLICED)
		on_spliced_event(e->f, e, events);
	else
		copy_on_event(e->f, e, events);
}

/* The kernel's queues of a spliced forward stay within the buffer per direction while the
 * reader lags (the kernel found its window full since the last tick), and within a vsock
 * window more while it keeps up: a queue that grows past that though its reader takes all
 * it is sent means the kernel forwards more slowly than the writer writes (bench/
 * splice_probe.sh: 12 against 35 MB/s under TCG), with no bound of its own, as a vsock socket
 * returns credit as soon as the verdict takes the bytes. Checked every tick, and at once
 * when a queue passes the buffer and a window (splice_wake_fd, forward_tick's callers): a
 * queue may overshoot that by what arrives until the loop wakes, the lagging reader's
 * bound by what arrives within one tick. */
static void tick_spliced(struct forward *f)
{
	for (int from = 0; from < 2; from++) {
		uint64_t queued, full = splice_window_full(f->engine, f->splice_id, from);
		bool lagging = full != f->window_full_seen[from];

		f->window_full_seen[from] = full;
		if (splice_queued(f->engine, f->splice_id, from, &queued) < 0) {
			f->ops->ended(f, "reset", true);
			return;
		}
		if (lagging && queued > f->buffer) {
			take_back(f, "its reader is slower: bytes queued beyond the buffer");
			return;
		}
		if (queued > f->buffer + VMSHIM_VSOCK_WINDOW) {
			take_back(f, "the kernel forwards more slowly than it is written to: bytes "
				     "queued beyond the buffer and a window");
			return;
		}
	}
	/* a direction whose source closed waits for the kernel's queue */
	if (f->end[0]->eof || f->end[1]->eof)
		forward_settle(f);
}

void forward_tick(struct forward *f, int64_t now_ms)
{
	switch (f->path) {
	case FORWARD_SPLICED:
		tick_spliced(f);
		break;
	case FORWARD_LEAVING:
		/* the kernel's queue shrinks with no event: an EOF that waits for it is passed on
		 * from here (seen: a bridged server's answer whose EOF never came) */
		copy_over(f);
		if (!copy_tick(f))
			forward_settle(f);
		break;
	case FORWARD_COPY: {
		int spliced = now_ms >= f->splice_retry_ms && !f->end[0]->eof && !f->end[1]->eof &&
				      !copy_pending(f, 0) && !copy_pending(f, 1)
				      ? try_splice(f, FORWARD_RETRY_MS)
				      : 0;
		if (spliced > 0)
			forward_settle(f);
		else if (spliced == 0)
			copy_tick(f);
		else
			f->ops->ended(f, FORWARD_LOST_IN_KERNEL, true);
		break;
	}
	}
}

unsigned long long forward_queued(const struct forward *f, int i)
{
	uint64_t kernel = 0;

	if (f->path != FORWARD_COPY)
		splice_queued(f->engine, f->splice_id, i, &kernel);
	return kernel + (f->path == FORWARD_SPLICED ? 0 : copy_pending(f, i));
}

unsigned long long forward_window_full(const struct forward *f, int i)
{
	return f->path != FORWARD_COPY ? splice_window_full(f->engine, f->splice_id, i) : 0;
}
