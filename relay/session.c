/* The life of a relayed connection (session.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "copy.h"
#include "hybrid_line.h"
#include "regrant.h"
#include "relay.h"
#include "session.h"
#include "siblings.h"
#include "splice.h"
#include "transport.h"
#include "vmshim/clock.h"
#include "vmshim/log.h"
#include "vmshim/vsockbuf.h"

static struct session *first, *last;
static unsigned long next_id = 1;

/* Why a session ends when the kernel dropped bytes of it that could not be rescued. */
#define LOST_IN_KERNEL "reset: the kernel lost bytes giving it back"

/* How long a copied session waits before it tries the kernel again. */
#define SPLICE_RETRY_MS 1000

static void on_end_event(struct watch *w, uint32_t events);

static void end_release(struct watch *w)
{
	struct session *s = ((struct end *)w->owner)->s;

	if (--s->refs == 0)
		free(s);
}

#define ARMED_UNKNOWN UINT32_MAX

static int watch_end(struct session *s, struct end *e, int fd, uint32_t events)
{
	*e = (struct end){.w = {.fd = fd, .on_event = on_end_event, .owner = e,
				.release = end_release},
			  .s = s,
			  .armed = events};
	if (loop_add(&e->w, events) < 0)
		return -1;
	s->refs++;
	return 0;
}

void session_watch(struct end *e, uint32_t events)
{
	if (events == e->armed)
		return;
	loop_mod(&e->w, events);
	e->armed = events & EPOLLONESHOT ? ARMED_UNKNOWN : events;
}

/* Counts one event in a calling guest's counters and the total. */
#define COUNT(guest, field)                                                                       \
	do {                                                                                      \
		relay.per_guest_counters[guest].field++;                                          \
		relay.total.field++;                                                              \
	} while (0)

static void reply(struct session *s, enum relayproto_status status)
{
	uint8_t msg[RELAYPROTO_REPLY_SIZE];

	relayproto_reply(msg, status);
	/* a fresh connection takes 8 bytes; if not, the caller is gone anyway */
	send(s->caller.w.fd, msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static const char *name_of(int guest)
{
	return guest >= 0 ? relay.policy->guests[guest].name : "?";
}

/* A calling guest, as the source of lines it can cause at will (log_limited). */
static uint64_t source_of(int guest)
{
	return LOG_SOURCE(LOG_KIND_CID, relay.policy->guests[guest].cid);
}

/* Bytes forwarded so far, by copies and by the kernel. */
static void session_bytes(const struct session *s, unsigned long long *up,
			  unsigned long long *down)
{
	uint64_t kernel_up = 0, kernel_down = 0;

	if (s->path != PATH_COPY)
		splice_bytes(relay.splice, s->splice_id, &kernel_up, &kernel_down);
	*up = s->bytes_up + kernel_up;
	*down = s->bytes_down + kernel_down;
}

void session_end(struct session *s, const char *why)
{
	struct relay_counters *c = &relay.per_guest_counters[s->from];
	unsigned long long up, down;

	log_debug("connection %lu %s -> %s port %u: %s", s->id, name_of(s->from), name_of(s->to),
		  s->dest_port, why);
	session_bytes(s, &up, &down);
	if (s->path != PATH_COPY)
		splice_remove(relay.splice, s->splice_id);
	copy_free(s);
	c->bytes_up += up;
	c->bytes_down += down;
	relay.total.bytes_up += up;
	relay.total.bytes_down += down;
	for (struct end *e = &s->caller; e; e = e == &s->caller ? &s->dest : NULL) {
		if (e->w.fd < 0)
			continue;
		loop_retire(&e->w);
		close(e->w.fd);
		e->w.fd = -1;
	}
	*(s->prev ? &s->prev->next : &first) = s->next;
	*(s->next ? &s->next->prev : &last) = s->prev;
	relay.n_sessions--;
	relay.per_guest[s->from]--;
	/* freed when the loop releases the last of its watches (end_release) */
}

/* Ends a session that has not reached FORWARD, telling the caller why. */
static void refuse(struct session *s, enum relayproto_status status, const char *why)
{
	reply(s, status);
	session_end(s, why);
}

/* Hands a forwarding session to the kernel if it takes it (1), else leaves it with copy.c
 * (0), to try again later if only bytes in flight stood in the way. -1: the session ended. */
static int try_splice(struct session *s)
{
	if (!relay.splice)
		return 0;
	if (splice_add(relay.splice, s->caller.w.fd, s->dest.w.fd, &s->splice_id) < 0) {
		if (errno == EIO) {
			session_end(s, LOST_IN_KERNEL);
			return -1;
		}
		s->splice_retry_ms = errno == EBUSY ? vmshim_now_ms() + SPLICE_RETRY_MS : INT64_MAX;
		return 0;
	}
	copy_free(s);
	s->path = PATH_SPLICED;
	s->window_full_seen[0] = s->window_full_seen[1] = 0;
	COUNT(s->from, spliced);
	return 1;
}

/* Stops the kernel taking bytes off the session's sockets and gives them to copy.c, which
 * reads at once (so that neither side stays blocked on the other) but writes in a direction
 * only after the kernel has sent what it took that way (session_kernel_sending). */
static void take_back(struct session *s, const char *why)
{
	log_debug("connection %lu: taken back from the kernel: %s", s->id, why);
	splice_pause(relay.splice, s->splice_id);
	s->path = PATH_LEAVING;
	COUNT(s->from, taken_back);
	if (copy_start(s) < 0) {
		session_end(s, "no memory for its buffers");
		return;
	}
	/* a packet the kernel dropped while pausing goes first (splice_rescued) */
	for (int from = 0; from < 2; from++) {
		const uint8_t *bytes;
		ssize_t n = splice_rescued(relay.splice, s->splice_id, from, &bytes);
		if (n < 0) {
			session_end(s, LOST_IN_KERNEL);
			return;
		}
		if (n && copy_preload(s, from ? &s->dest : &s->caller, bytes, (size_t)n) < 0) {
			session_end(s, "no memory for its buffers");
			return;
		}
		if (n) {
			COUNT(s->from, rescued);
			log_debug("connection %lu: %zd bytes rescued", s->id, n);
		}
	}
	/* an EOF seen while spliced but not passed on may have bytes before it: read() finds
	 * it again after them; a hang-up, copy.c hears (or its send finds) again */
	for (struct end *e = &s->caller; e; e = e == &s->caller ? &s->dest : NULL) {
		if (!session_other(s, e)->shut)
			e->eof = false;
		e->gone = false;
	}
	session_settle(s);
}

/* A LEAVING session out of the kernel's hands once it has sent all it took. */
static void copy_over(struct session *s)
{
	uint64_t up, down;

	if (splice_release(relay.splice, s->splice_id, &up, &down) < 0)
		return;
	s->bytes_up += up;
	s->bytes_down += down;
	s->path = PATH_COPY;
	s->splice_retry_ms = vmshim_now_ms() + SPLICE_RETRY_MS;
}

bool session_kernel_sending(const struct session *s, const struct end *to)
{
	uint64_t queued;

	return s->path == PATH_LEAVING &&
	       splice_queued(relay.splice, s->splice_id, to == &s->caller ? 1 : 0, &queued) == 0 &&
	       queued > 0;
}

/* 1 when every byte that came from end `from` has gone out on the other, 0 while some are
 * on their way; -1 (errno) when the kernel will not finish: EBUSY, bytes it left on `from`;
 * else sending failed for good. */
static int drained(struct session *s, const struct end *from)
{
	int index = from == &s->caller ? 0 : 1;
	uint64_t queued = 0;

	if (s->path == PATH_SPLICED)
		return splice_drained(relay.splice, s->splice_id, index);
	if (s->path == PATH_LEAVING && splice_queued(relay.splice, s->splice_id, index, &queued) < 0)
		return -1;
	return !queued && copy_pending(s, from) == 0;
}

void session_settle(struct session *s)
{
	for (struct end *e = &s->caller; e; e = e == &s->caller ? &s->dest : NULL) {
		struct end *other = session_other(s, e);
		if (!e->eof || other->shut)
			continue;
		int done = drained(s, e);
		if (done < 0 && errno == EBUSY) {
			take_back(s, "bytes the kernel will not forward");
			return;
		}
		if (done < 0) {
			session_end(s, "reset");
			return;
		}
		if (!done)
			continue;
		shutdown(other->w.fd, SHUT_WR);
		other->shut = true;
		/* an end that takes nothing more ends the other direction too */
		if (e->gone) {
			session_end(s, "closed");
			return;
		}
	}
	if (s->caller.shut && s->dest.shut) {
		session_end(s, "closed");
		return;
	}
	if (s->path == PATH_SPLICED) {
		/* forwarded bytes never wake us: only an end's EOF, or bytes the kernel left
		 * (EPOLLIN without EPOLLRDHUP), each once; an end past EOF stays silent (the
		 * tick sees its direction drain) */
		for (struct end *e = &s->caller; e; e = e == &s->caller ? &s->dest : NULL)
			if (!e->eof)
				session_watch(e, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT);
		return;
	}
	for (struct end *e = &s->caller; e; e = e == &s->caller ? &s->dest : NULL) {
		uint32_t events = copy_interest(s, e);
		/* a gone end may hang up for ever (level): armed once, only for bytes to read */
		if (!e->gone)
			session_watch(e, events);
		else if (events)
			session_watch(e, events | EPOLLONESHOT);
	}
}

static void forward(struct session *s)
{
	uint8_t from[RELAYPROTO_FROM_SIZE];
	const struct host_guest *g = &relay.policy->guests[s->from];

	relayproto_from(from, g->cid, s->source_port, s->port_seen ? RELAYPROTO_FROM_PORT_SEEN : 0);
	if (send(s->dest.w.fd, from, sizeof from, MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof from) {
		COUNT(s->from, unreachable);
		refuse(s, RELAY_UNREACHABLE, "destination closed before FROM");
		return;
	}
	int spliced = try_splice(s);
	if (spliced < 0)
		return;
	if (!spliced && copy_start(s) < 0) {
		COUNT(s->from, busy);
		refuse(s, RELAY_BUSY, "no memory for its buffers");
		return;
	}
	s->state = SESSION_FORWARD;
	COUNT(s->from, relayed);
	reply(s, RELAY_OK);
	log_debug("connection %lu %s -> %s port %u: forwarding (%s)", s->id, name_of(s->from),
		  name_of(s->to), s->dest_port, s->path == PATH_SPLICED ? "sockmap" : "copy");
	session_settle(s);
}

static void on_request(struct session *s)
{
	int got = relayproto_recv(s->caller.w.fd, s->request, sizeof s->request, &s->have);
	struct relayproto_addr dest;
	uint32_t told_port;
	const char *why;
	bool asks_siblings;

	if (got == 0)
		return;
	if (got < 0) {
		COUNT(s->from, bad_requests);
		session_end(s, errno ? strerror(errno) : "closed before its request");
		return;
	}
	if (relayproto_parse_request(s->request, &dest, &told_port, &asks_siblings, &why) < 0) {
		COUNT(s->from, bad_requests);
		log_limited(source_of(s->from), LOG_INFO, "connection from %s: bad request (%s), closed",
			    name_of(s->from), why);
		refuse(s, RELAY_BAD_REQUEST, why);
		return;
	}
	if (asks_siblings && !host_helperd_port(&relay.policy->guests[s->from], s->source_port)) {
		COUNT(s->from, refused);
		log_limited(source_of(s->from), LOG_INFO,
			    "connection from %s port %u asks for its siblings, not from its helperd's "
			    "ports: refused",
			    name_of(s->from), s->source_port);
		refuse(s, RELAY_REFUSED, "asks for siblings, not from its helperd");
		return;
	}
	if (asks_siblings) { /* a connection of its own from now on (siblings.h) */
		int fd = s->caller.w.fd, from = s->from;
		loop_retire(&s->caller.w);
		s->caller.w.fd = -1;
		session_end(s, "asks whom the host says its siblings are");
		siblings_take(fd, from);
		return;
	}
	if (!s->port_seen)
		s->source_port = told_port;
	s->dest_port = dest.port;
	s->to = host_guest_owning(relay.policy, dest.cid, dest.port);
	if (s->to < 0 || !host_may_reach(relay.policy, (size_t)s->from, (size_t)s->to, dest.port)) {
		COUNT(s->from, refused);
		log_limited(source_of(s->from), LOG_INFO,
			    "connection from %s to cid %u port %u refused by the host policy",
			    name_of(s->from), dest.cid, dest.port);
		refuse(s, RELAY_REFUSED, "refused by the host policy");
		return;
	}
	if ((dest.flags & RELAYPROTO_REQUEST_HALF_CLOSE) &&
	    !host_half_close(relay.policy, (size_t)s->from, (size_t)s->to)) {
		COUNT(s->from, no_half_close);
		refuse(s, RELAY_NO_HALF_CLOSE, "asked for half-closes, which a VMM on the way loses");
		return;
	}
	int fd = transport_dial((size_t)s->to, dest.port);
	if (fd < 0)
		log_limited(source_of(s->from), LOG_INFO, "connection from %s to %s port %u: %m",
			    name_of(s->from), name_of(s->to), dest.port);
	if (fd < 0 || watch_end(s, &s->dest, fd, EPOLLOUT) < 0) {
		if (fd >= 0)
			close(fd);
		s->dest.w.fd = -1;
		COUNT(s->from, unreachable);
		refuse(s, RELAY_UNREACHABLE, "cannot connect to the destination");
		return;
	}
	s->state = SESSION_DIALING;
	s->deadline_ms = vmshim_now_ms() + relay.policy->connect_timeout_ms;
	s->have = 0;
	/* until the reply, only the caller's hang-up matters */
	session_watch(&s->caller, EPOLLRDHUP);
}

static void on_dialed(struct session *s)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(s->dest.w.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		COUNT(s->from, unreachable);
		refuse(s, RELAY_UNREACHABLE, err ? strerror(err) : "SO_ERROR");
		return;
	}
	if (!relay.policy->guests[s->to].hybrid[0]) {
		forward(s);
		return;
	}
	char line[24];
	int n = hybrid_connect_line(line, s->dest_port);
	if (send(s->dest.w.fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		COUNT(s->from, unreachable);
		refuse(s, RELAY_UNREACHABLE, "hybrid socket closed");
		return;
	}
	s->state = SESSION_HANDSHAKE;
	session_watch(&s->dest, EPOLLIN);
}

/* Reads the hybrid answer up to its newline, never past it: what follows belongs to the
 * connection. */
static void on_handshake(struct session *s)
{
	size_t room = sizeof s->line - 1 - s->have;
	ssize_t n = recv(s->dest.w.fd, s->line + s->have, room, MSG_PEEK);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	char *nl = n > 0 ? memchr(s->line + s->have, '\n', (size_t)n) : NULL;
	size_t take = nl ? (size_t)(nl - (s->line + s->have)) + 1 : (size_t)(n > 0 ? n : 0);
	if (n <= 0 || recv(s->dest.w.fd, s->line + s->have, take, 0) != (ssize_t)take ||
	    (!nl && s->have + take == sizeof s->line - 1)) {
		COUNT(s->from, unreachable);
		refuse(s, RELAY_UNREACHABLE, "hybrid socket refused the port");
		return;
	}
	s->have += (unsigned)take;
	if (!nl)
		return;
	uint32_t host_port;
	if (!hybrid_parse_ok(s->line, s->have, &host_port)) {
		COUNT(s->from, unreachable);
		refuse(s, RELAY_UNREACHABLE, "hybrid socket did not answer OK <port>");
		return;
	}
	log_debug("connection %lu: hybrid socket took it, host port %u", s->id, host_port);
	forward(s);
}

static void on_spliced_event(struct session *s, struct end *e, uint32_t events)
{
	if (events & EPOLLERR) {
		session_end(s, "error");
		return;
	}
	if (!(events & (EPOLLRDHUP | EPOLLHUP))) {
		take_back(s, "bytes the kernel will not forward");
		return;
	}
	e->eof = true;
	e->gone = events & EPOLLHUP;
	session_settle(s);
}

static void on_end_event(struct watch *w, uint32_t events)
{
	struct end *e = w->owner;
	struct session *s = e->s;

	switch (s->state) {
	case SESSION_REQUEST:
		on_request(s);
		break;
	case SESSION_DIALING:
	case SESSION_HANDSHAKE:
		if (e == &s->caller) {
			COUNT(s->from, unreachable);
			session_end(s, "caller left while dialing");
		} else if (s->state == SESSION_DIALING) {
			on_dialed(s);
		} else {
			on_handshake(s);
		}
		break;
	case SESSION_FORWARD:
		if (s->path == PATH_SPLICED)
			on_spliced_event(s, e, events);
		else
			copy_on_event(s, e, events);
		break;
	}
}

void session_start(int fd, int from, uint32_t source_port, bool port_seen)
{
	const struct host_policy *pol = relay.policy;
	struct session *s = NULL;

	COUNT(from, accepted);
	if (relay.n_sessions >= pol->max_connections || relay.per_guest[from] >= pol->max_per_guest) {
		uint8_t msg[RELAYPROTO_REPLY_SIZE];
		COUNT(from, busy);
		log_limited(source_of(from), LOG_INFO, "connection from %s refused: %s",
			    pol->guests[from].name,
			    relay.n_sessions >= pol->max_connections ? "max-connections reached"
								     : "its max-per-guest reached");
		relayproto_reply(msg, RELAY_BUSY);
		send(fd, msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	if (!(s = calloc(1, sizeof *s)) || watch_end(s, &s->caller, fd, EPOLLIN) < 0) {
		log_err("connection from %s closed: %s", pol->guests[from].name,
			s ? "epoll_ctl failed" : "out of memory");
		free(s);
		close(fd);
		return;
	}
	s->dest.w.fd = -1;
	s->from = from;
	s->to = -1;
	s->source_port = source_port;
	s->port_seen = port_seen;
	s->started_ms = vmshim_now_ms();
	s->deadline_ms = s->started_ms + pol->request_timeout_ms;
	s->id = next_id++;
	s->prev = last;
	*(last ? &last->next : &first) = s;
	last = s;
	relay.n_sessions++;
	relay.per_guest[from]++;
}

/* The kernel's queues of a spliced session stay within the host policy's buffer per direction
 * while the reader lags (the kernel found its window full since the last tick), and within a
 * vsock window more while it keeps up: a queue that grows past that though its reader takes
 * all it is sent means the kernel forwards more slowly than the writer writes (bench/
 * splice_probe.sh: 12 against 35 MB/s under TCG), with no bound of its own, as a vsock socket
 * returns credit as soon as the verdict takes the bytes. Checked here, so each may overshoot
 * by what arrives within one tick. */
static void tick_spliced(struct session *s)
{
	for (int from = 0; from < 2; from++) {
		uint64_t queued, full = splice_window_full(relay.splice, s->splice_id, from);
		bool lagging = full != s->window_full_seen[from];

		s->window_full_seen[from] = full;
		if (splice_queued(relay.splice, s->splice_id, from, &queued) < 0) {
			session_end(s, "reset");
			return;
		}
		if (lagging && queued > relay.policy->buffer) {
			take_back(s, "its reader is slower: bytes queued beyond the buffer");
			return;
		}
		if (queued > relay.policy->buffer + VMSHIM_VSOCK_WINDOW) {
			take_back(s, "the kernel forwards more slowly than it is written to: bytes "
				     "queued beyond the buffer and a window");
			return;
		}
	}
	/* a direction whose source closed waits for the kernel's queue */
	if (s->caller.eof || s->dest.eof)
		session_settle(s);
}

static void tick_forward(struct session *s, int64_t now)
{
	switch (s->path) {
	case PATH_SPLICED:
		tick_spliced(s);
		break;
	case PATH_LEAVING:
		copy_over(s);
		copy_tick(s);
		break;
	case PATH_COPY: {
		int spliced = now >= s->splice_retry_ms && !s->caller.eof && !s->dest.eof &&
			      !copy_pending(s, &s->caller) && !copy_pending(s, &s->dest)
				      ? try_splice(s)
				      : 0;
		if (spliced > 0)
			session_settle(s);
		else if (spliced == 0)
			copy_tick(s);
		break;
	}
	}
}

void session_tick(void)
{
	int64_t now = vmshim_now_ms();

	for (struct session *s = first, *next; s; s = next) {
		next = s->next;
		if (s->state == SESSION_FORWARD) {
			tick_forward(s, now);
			continue;
		}
		if (now < s->deadline_ms)
			continue;
		if (s->state == SESSION_REQUEST) {
			COUNT(s->from, bad_requests);
			session_end(s, "no request in time");
		} else {
			COUNT(s->from, unreachable);
			refuse(s, RELAY_UNREACHABLE, "destination too slow");
		}
	}
}

unsigned session_regrant(const struct host_policy *new, const int *map)
{
	unsigned closed = 0;

	for (struct session *s = first, *next; s; s = next) {
		const struct regrant_session grant = {.from = s->from, .to = s->to,
						      .source_port = s->source_port,
						      .port_seen = s->port_seen,
						      .dest_port = s->dest_port};
		const char *why = regrant_verdict(relay.policy, new, map, &grant);
		next = s->next;
		if (why) {
			COUNT(s->from, revoked);
			/* a caller still waiting for its reply is told, and falls back to TCP */
			if (s->state == SESSION_FORWARD)
				session_end(s, why);
			else
				refuse(s, RELAY_REFUSED, why);
			closed++;
			continue;
		}
		s->from = map[s->from];
		if (s->to >= 0)
			s->to = map[s->to];
	}
	return closed;
}

void session_close_all(void)
{
	while (first)
		session_end(first, "relay stopping");
}

/* Bytes taken from end `from` and not yet written to the other: in the kernel's queue
 * (spliced, or leaving) and in the relay's buffer. */
static unsigned long long session_queued(const struct session *s, const struct end *from)
{
	uint64_t kernel = 0;

	if (s->path != PATH_COPY)
		splice_queued(relay.splice, s->splice_id, from == &s->caller ? 0 : 1, &kernel);
	return kernel + (s->path == PATH_SPLICED ? 0 : copy_pending(s, from));
}

/* For status: how often the kernel found the reader's window full, from end 0 (the caller)
 * or 1, in this splice. */
static unsigned long long session_window_full(const struct session *s, int from)
{
	return s->state == SESSION_FORWARD && s->path != PATH_COPY
		       ? splice_window_full(relay.splice, s->splice_id, from)
		       : 0;
}

void session_print(FILE *out)
{
	static const char *const states[] = {"request", "dialing", "handshake", "forward"};
	int64_t now = vmshim_now_ms();

	static const char *const paths[] = {"copy", "sockmap", "leaving sockmap"};

	for (const struct session *s = first; s; s = s->next) {
		unsigned long long up, down;
		session_bytes(s, &up, &down);
		fprintf(out,
			"%s{\"id\": %lu, \"from\": \"%s\", \"to\": \"%s\", \"port\": %u, "
			"\"state\": \"%s\", \"path\": \"%s\", \"bytes_up\": %llu, "
			"\"bytes_down\": %llu, \"queued_up\": %llu, \"queued_down\": %llu, "
			"\"window_full_up\": %llu, \"window_full_down\": %llu, \"age_ms\": %lld}",
			s == first ? "" : ", ", s->id, name_of(s->from), name_of(s->to), s->dest_port,
			states[s->state],
			s->state != SESSION_FORWARD ? "" : paths[s->path], up, down,
			s->state != SESSION_FORWARD ? 0 : session_queued(s, &s->caller),
			s->state != SESSION_FORWARD ? 0 : session_queued(s, &s->dest),
			session_window_full(s, 0), session_window_full(s, 1),
			(long long)(now - s->started_ms));
	}
}
