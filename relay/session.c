/* The life of a relayed connection (session.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hybrid_line.h"
#include "regrant.h"
#include "relay.h"
#include "session.h"
#include "siblings.h"
#include "transport.h"
#include "vmshim/clock.h"
#include "vmshim/log.h"

static struct session *first, *last;
static unsigned long next_id = 1;

static void on_end_event(struct watch *w, uint32_t events);

/* The session of end e: its forward is the session's first member. */
static struct session *session_of(const struct forward_end *e)
{
	return (struct session *)e->f;
}

static void end_release(struct watch *w)
{
	struct session *s = session_of(w->owner);

	if (--s->refs == 0)
		free(s);
}

static int watch_end(struct session *s, struct forward_end *e, int fd, uint32_t events)
{
	*e = (struct forward_end){.w = {.fd = fd, .on_event = on_end_event, .owner = e,
					.release = end_release},
				  .f = &s->fwd,
				  .armed = events};
	if (loop_add(&e->w, events) < 0)
		return -1;
	s->refs++;
	return 0;
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
	send(s->ends[CALLER].w.fd, msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL);
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

void session_end(struct session *s, const char *why)
{
	struct relay_counters *c = &relay.per_guest_counters[s->from];

	log_debug("connection %lu %s -> %s port %u: %s", s->fwd.id, name_of(s->from),
		  name_of(s->to), s->dest_port, why);
	forward_stop(&s->fwd);
	unsigned long long up = s->fwd.moved[CALLER], down = s->fwd.moved[DEST];
	c->bytes_up += up;
	c->bytes_down += down;
	relay.total.bytes_up += up;
	relay.total.bytes_down += down;
	for (struct forward_end *e = s->ends; e < s->ends + 2; e++) {
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

static void forward(struct session *s)
{
	uint8_t from[RELAYPROTO_FROM_SIZE];
	const struct host_guest *g = &relay.policy->guests[s->from];

	relayproto_from(from, g->cid, s->source_port, s->port_seen ? RELAYPROTO_FROM_PORT_SEEN : 0);
	if (send(s->ends[DEST].w.fd, from, sizeof from, MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof from) {
		COUNT(s->from, unreachable);
		refuse(s, RELAY_UNREACHABLE, "destination closed before FROM");
		return;
	}
	s->fwd.engine = relay.splice;
	s->fwd.buffer = relay.policy->buffer;
	if (forward_begin(&s->fwd) < 0) {
		if (errno == EIO) {
			session_end(s, FORWARD_LOST_IN_KERNEL);
			return;
		}
		COUNT(s->from, busy);
		refuse(s, RELAY_BUSY, "no memory for its buffers");
		return;
	}
	s->state = SESSION_FORWARD;
	COUNT(s->from, relayed);
	reply(s, RELAY_OK);
	log_debug("connection %lu %s -> %s port %u: forwarding (%s)", s->fwd.id, name_of(s->from),
		  name_of(s->to), s->dest_port,
		  s->fwd.path == FORWARD_SPLICED ? "sockmap" : "copy");
	forward_settle(&s->fwd);
}

static void on_request(struct session *s)
{
	int got = relayproto_recv(s->ends[CALLER].w.fd, s->request, sizeof s->request, &s->have);
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
		int fd = s->ends[CALLER].w.fd, from = s->from;
		loop_retire(&s->ends[CALLER].w);
		s->ends[CALLER].w.fd = -1;
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
	if (fd < 0 || watch_end(s, &s->ends[DEST], fd, EPOLLOUT) < 0) {
		if (fd >= 0)
			close(fd);
		s->ends[DEST].w.fd = -1;
		COUNT(s->from, unreachable);
		refuse(s, RELAY_UNREACHABLE, "cannot connect to the destination");
		return;
	}
	s->state = SESSION_DIALING;
	s->deadline_ms = vmshim_now_ms() + relay.policy->connect_timeout_ms;
	s->have = 0;
	/* until the reply, only the caller's hang-up matters */
	forward_watch(&s->ends[CALLER], EPOLLRDHUP);
}

static void on_dialed(struct session *s)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(s->ends[DEST].w.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
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
	if (send(s->ends[DEST].w.fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		COUNT(s->from, unreachable);
		refuse(s, RELAY_UNREACHABLE, "hybrid socket closed");
		return;
	}
	s->state = SESSION_HANDSHAKE;
	forward_watch(&s->ends[DEST], EPOLLIN);
}

/* Reads the hybrid answer up to its newline, never past it: what follows belongs to the
 * connection. */
static void on_handshake(struct session *s)
{
	size_t room = sizeof s->line - 1 - s->have;
	ssize_t n = recv(s->ends[DEST].w.fd, s->line + s->have, room, MSG_PEEK);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	char *nl = n > 0 ? memchr(s->line + s->have, '\n', (size_t)n) : NULL;
	size_t take = nl ? (size_t)(nl - (s->line + s->have)) + 1 : (size_t)(n > 0 ? n : 0);
	if (n <= 0 || recv(s->ends[DEST].w.fd, s->line + s->have, take, 0) != (ssize_t)take ||
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
	log_debug("connection %lu: hybrid socket took it, host port %u", s->fwd.id, host_port);
	forward(s);
}

static void on_end_event(struct watch *w, uint32_t events)
{
	struct forward_end *e = w->owner;
	struct session *s = session_of(e);

	switch (s->state) {
	case SESSION_REQUEST:
		on_request(s);
		break;
	case SESSION_DIALING:
	case SESSION_HANDSHAKE:
		if (e == &s->ends[CALLER]) {
			COUNT(s->from, unreachable);
			session_end(s, "caller left while dialing");
		} else if (s->state == SESSION_DIALING) {
			on_dialed(s);
		} else {
			on_handshake(s);
		}
		break;
	case SESSION_FORWARD:
		forward_on_event(e, events);
		break;
	}
}

static void forward_ended(struct forward *f, const char *why, bool reset)
{
	(void)reset; /* the guests' own connections end as they end */
	session_end((struct session *)f, why);
}

static void forward_counted(struct forward *f, enum forward_event what)
{
	int from = ((struct session *)f)->from;

	switch (what) {
	case FORWARD_SPLICE:
		COUNT(from, spliced);
		break;
	case FORWARD_TAKE_BACK:
		COUNT(from, taken_back);
		break;
	case FORWARD_RESCUE:
		COUNT(from, rescued);
		break;
	}
}

static const struct forward_ops session_forward_ops = {.ended = forward_ended,
							 .counted = forward_counted};

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
	if (!(s = calloc(1, sizeof *s)) || watch_end(s, &s->ends[CALLER], fd, EPOLLIN) < 0) {
		log_err("connection from %s closed: %s", pol->guests[from].name,
			s ? "epoll_ctl failed" : "out of memory");
		free(s);
		close(fd);
		return;
	}
	s->ends[DEST].w.fd = -1;
	s->from = from;
	s->to = -1;
	s->source_port = source_port;
	s->port_seen = port_seen;
	s->started_ms = vmshim_now_ms();
	s->deadline_ms = s->started_ms + pol->request_timeout_ms;
	s->fwd.id = next_id++;
	s->fwd.end[CALLER] = &s->ends[CALLER];
	s->fwd.end[DEST] = &s->ends[DEST];
	s->fwd.ops = &session_forward_ops;
	s->prev = last;
	*(last ? &last->next : &first) = s;
	last = s;
	relay.n_sessions++;
	relay.per_guest[from]++;
}

void session_tick(void)
{
	int64_t now = vmshim_now_ms();

	for (struct session *s = first, *next; s; s = next) {
		next = s->next;
		if (s->state == SESSION_FORWARD) {
			forward_tick(&s->fwd, now);
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

void session_print(FILE *out)
{
	static const char *const states[] = {"request", "dialing", "handshake", "forward"};
	int64_t now = vmshim_now_ms();

	static const char *const paths[] = {"copy", "sockmap", "leaving sockmap"};

	for (const struct session *s = first; s; s = s->next) {
		const struct forward *f = &s->fwd;
		bool forwarding = s->state == SESSION_FORWARD;
		fprintf(out,
			"%s{\"id\": %lu, \"from\": \"%s\", \"to\": \"%s\", \"port\": %u, "
			"\"state\": \"%s\", \"path\": \"%s\", \"bytes_up\": %llu, "
			"\"bytes_down\": %llu, \"queued_up\": %llu, \"queued_down\": %llu, "
			"\"window_full_up\": %llu, \"window_full_down\": %llu, \"taken_back\": %u, "
			"\"taken_back_why\": \"%s\", \"age_ms\": %lld}",
			s == first ? "" : ", ", f->id, name_of(s->from), name_of(s->to), s->dest_port,
			states[s->state], forwarding ? paths[f->path] : "",
			forward_moved(f, CALLER), forward_moved(f, DEST),
			forwarding ? forward_queued(f, CALLER) : 0,
			forwarding ? forward_queued(f, DEST) : 0,
			forwarding ? forward_window_full(f, CALLER) : 0,
			forwarding ? forward_window_full(f, DEST) : 0, f->taken_back,
			f->taken_back_why ? f->taken_back_why : "", (long long)(now - s->started_ms));
	}
}
