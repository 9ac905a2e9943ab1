/* The bridge of guest-wide mode (bridge.h). */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bridge.h"
#include "guestwide.h"
#include "guestwide_maps.h"
#include "helperd.h"
#include "share.h"
#include "sockdiag.h"
#include "tcpsock.h"
#include "vmshim/clock.h"
#include "vmshim/dialled.h"
#include "vmshim/forward.h"
#include "vmshim/handover.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "vmshim/relayproto.h"
#include "vmshim/splice.h"
#include "vmshim/vsock.h"
#include "vmshim/vsockbuf.h"

#define BRIDGE_BUFFER (64u * 1024) /* per direction, and the most the kernel queues for one */
#define BRIDGE_TCP_TIMEOUT_MS 60000 /* a fallback's connect, as long as a patient TCP's */
#define LOG_KIND_BRIDGE 3          /* log_limited's source: the port a stranger came from */
#define BRIDGE_LEAST 4

enum bridge_state {
	BRIDGE_CONNECTING, /* to the sibling, or to the host's relay, over vsock */
	BRIDGE_RELAY_REPLY, /* for the relay's answer to the request for the sibling */
	BRIDGE_HANDOVER,   /* for the sibling's hand-over byte */
	BRIDGE_FALLBACK,   /* to the destination over TCP */
	BRIDGE_LISTENING,  /* a sibling's connection: to this guest's listener, over TCP */
	BRIDGE_FORWARDING,
};

enum { PROG, FAR }; /* the forward's ends (forward.h) */

struct bridge_conn {
	struct forward fwd;         /* first: an end's forward is its connection; from FORWARDING */
	struct forward_end prog;    /* the program's connection (to the listener, for a sibling's) */
	struct forward_end sibling; /* the vsock connection with the sibling */
	struct forward_end tcp;     /* TCP of helperd's own, after a fallback */
	struct forward_end *far;    /* &sibling, or &tcp */
	unsigned in_loop;     /* which of the three the loop watches (bit()) */
	uint16_t inbound_port; /* a sibling's: the local port its names are filed by; else 0 */
	bool inbound_v6;       /* ... of an IPv6 connection */
	enum bridge_state state;
	struct vmshim_endpoint dest; /* what the program dialled */
	struct vmshim_route route; /* the table's way to it */
	uint16_t local_port;     /* the program's, which the relay's request names */
	uint8_t reply[RELAYPROTO_REPLY_SIZE];
	unsigned reply_got;
	int64_t deadline_ms;     /* until FORWARDING */
	int refs;                /* one while it lives, and one per watch in the loop */
	struct share **shares;   /* &user_shares or &peer_shares: whose room it takes */
	struct share *share;
	struct bridge_conn *prev, *next;
};

static struct bridge_conn *conns;
static unsigned n_conns, max_conns = BRIDGE_MAX;
static unsigned long next_id = 1;

/* The kernel's sockmap, where it can splice TCP to vsock (splice.h says what it needs);
 * NULL: the bridge copies, for the reason in engine_why. */
static struct splice_engine *engine;
static char engine_why[160];

/* forward_tick's timer, armed from a connection's FORWARDING on until a tick finds none. */
static struct watch ticker = {.fd = -1};
static bool ticking;

/* The bridge's room is shared as the doorbell pool's is: the programs of one user (their
 * connects out) may hold a quarter of it, one sibling (its connections in) its share as a
 * peer (share_per_peer), so that one crowds out no one but itself. A user whose share is
 * full, or everyone when the bridge is, connects over TCP as without the mode: the programs
 * see to it (guestwide_user_full). */
static struct share *user_shares, *peer_shares;

static unsigned user_share(void)
{
	return max_conns / 4 ? max_conns / 4 : 1;
}

void bridge_init(unsigned max)
{
	max_conns = max < BRIDGE_LEAST ? BRIDGE_LEAST : max;
	if (max_conns < BRIDGE_MAX)
		log_warn("guest-wide mode: the bridge has room for %u connections, %u per user or "
			 "sibling (fewer per sibling with more than four peers)", max_conns,
			 user_share());
	if (splice_open(&engine, max_conns, engine_why, sizeof(engine_why)) < 0)
		log_info("guest-wide mode: the bridge copies in user space: %s", engine_why);
	else
		log_info("guest-wide mode: the bridge splices in the kernel (sockmap)");
}

const char *bridge_forwarding(const char **why)
{
	*why = engine ? "" : engine_why;
	return engine ? "sockmap" : "copy";
}

unsigned bridge_count(void)
{
	return n_conns;
}

/* The connection of a watch: its owner is one of the connection's ends. */
static struct bridge_conn *conn_of(const struct watch *w)
{
	return (struct bridge_conn *)((const struct forward_end *)w->owner)->f;
}

static void drop(struct bridge_conn *c)
{
	if (--c->refs == 0)
		free(c);
}

static void release(struct watch *w)
{
	drop(conn_of(w));
}

static unsigned bit(const struct bridge_conn *c, const struct forward_end *e)
{
	return e == &c->prog ? 1u : e == &c->sibling ? 2u : 4u;
}

/* Watches e (its fd set) for events; -1 if the loop cannot. */
static int watch_add(struct bridge_conn *c, struct forward_end *e, uint32_t events)
{
	if (loop_add(&e->w, events) < 0)
		return -1;
	c->refs++;
	c->in_loop |= bit(c, e);
	return 0;
}

/* Closes e's descriptor, and stops watching it if the loop did. */
static void watch_end(struct bridge_conn *c, struct forward_end *e)
{
	if (e->w.fd < 0)
		return;
	if (c->in_loop & bit(c, e)) {
		loop_retire(&e->w);
		c->in_loop &= ~bit(c, e);
	}
	close(e->w.fd);
	e->w.fd = -1;
}

/* Makes fd's close a reset. */
static void abort_on_close(int fd)
{
	struct linger abort_now = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_now, sizeof(abort_now));
}

/* Ends c: a reset for the program where its connection did not end cleanly. */
static void finish(struct bridge_conn *c, bool reset)
{
	if (c->state == BRIDGE_FORWARDING)
		forward_stop(&c->fwd);
	if (reset && c->prog.w.fd >= 0)
		abort_on_close(c->prog.w.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n_conns--;
	guestwide_bridge_full(n_conns >= max_conns);
	if (c->share && c->shares == &user_shares && c->share->n == user_share())
		guestwide_user_full((uint32_t)c->share->key, false);
	share_give(c->shares, c->share);
	if (c->inbound_port)
		guestwide_inbound_forget(c->inbound_port, c->inbound_v6);
	watch_end(c, &c->sibling);
	watch_end(c, &c->tcp);
	watch_end(c, &c->prog);
	drop(c);
}

static void forward_ended(struct forward *f, const char *why, bool reset)
{
	log_debug("bridge: connection %lu: %s", f->id, why);
	finish((struct bridge_conn *)f, reset);
}

static void forward_counted(struct forward *f, enum forward_event what)
{
	(void)f;
	if (what == FORWARD_SPLICE)
		helperd.counters.bridge_spliced++;
	else if (what == FORWARD_TAKE_BACK)
		helperd.counters.bridge_taken_back++;
}

static const struct forward_ops bridge_forward_ops = {.ended = forward_ended,
						      .counted = forward_counted};

/* forward_tick for every FORWARDING connection; whether there was one. */
static bool tick_all(void)
{
	int64_t now = vmshim_now_ms();
	bool any = false;

	for (struct bridge_conn *c = conns, *next; c; c = next) {
		next = c->next;
		if (c->state == BRIDGE_FORWARDING) {
			any = true;
			forward_tick(&c->fwd, now);
		}
	}
	return any;
}

/* Every FORWARD_TICK_MS while some connection is FORWARDING; disarmed once none is. */
static void on_ticker(struct watch *w, uint32_t events)
{
	uint64_t ticks;

	(void)events;
	if (read(w->fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	if (!tick_all()) {
		timerfd_settime(w->fd, 0, &(struct itimerspec){0}, NULL);
		ticking = false;
	}
}

/* A kernel queue passed its limit: the connections are looked at now, not at the next tick. */
static void on_splice_wake(struct watch *w, uint32_t events)
{
	(void)w, (void)events;
	splice_wake_clear(engine);
	tick_all();
}

/* The ticker running, and the engine's wake-up watched (once the loop is there); -1 if the
 * ticker cannot be had. */
static int tick_forwards(void)
{
	static struct watch wake = {.fd = -1, .on_event = on_splice_wake};
	const struct timespec every = {.tv_nsec = FORWARD_TICK_MS * 1000000L};

	if (engine && wake.fd < 0) {
		wake.fd = splice_wake_fd(engine);
		if (loop_add(&wake, EPOLLIN) < 0)
			log_warn("guest-wide mode: the kernel's queues are looked at every %d ms "
				 "only: %m", FORWARD_TICK_MS);
	}

	if (ticker.fd < 0) {
		ticker = (struct watch){.fd = timerfd_create(CLOCK_MONOTONIC,
							     TFD_NONBLOCK | TFD_CLOEXEC),
					.on_event = on_ticker};
		if (ticker.fd < 0 || loop_add(&ticker, EPOLLIN) < 0) {
			if (ticker.fd >= 0)
				close(ticker.fd);
			ticker.fd = -1;
			return -1;
		}
	}
	if (timerfd_settime(ticker.fd, 0,
			    &(struct itimerspec){.it_interval = every, .it_value = every}, NULL) < 0)
		return -1;
	ticking = true;
	return 0;
}

/* Both ends connected: the bytes flow, in the kernel where it takes the pair, else by
 * copies (forward.h). */
static void start_forwarding(struct bridge_conn *c)
{
	c->state = BRIDGE_FORWARDING;
	c->deadline_ms = INT64_MAX;
	if ((!(c->in_loop & bit(c, &c->prog)) && watch_add(c, &c->prog, EPOLLIN) < 0) ||
	    (!(c->in_loop & bit(c, c->far)) && watch_add(c, c->far, EPOLLIN) < 0) ||
	    (!ticking && tick_forwards() < 0)) {
		finish(c, true);
		return;
	}
	c->prog.armed = c->far->armed = FORWARD_ARMED_UNKNOWN; /* each set by hand so far */
	c->fwd.end[PROG] = &c->prog;
	c->fwd.end[FAR] = c->far;
	c->fwd.ops = &bridge_forward_ops;
	c->fwd.engine = engine;
	c->fwd.buffer = BRIDGE_BUFFER;
	if (forward_begin(&c->fwd) < 0) {
		log_warn("bridge: connection %lu: %m", c->fwd.id);
		finish(c, true);
		return;
	}
	forward_settle(&c->fwd);
}

/* The sibling path is not certain: TCP of helperd's own, which the programs let pass. */
static void fall_back(struct bridge_conn *c)
{
	watch_end(c, &c->sibling);
	struct sockaddr_storage dest;
	socklen_t len = endpoint_to_sockaddr(&c->dest, c->dest.family, &dest);

	c->far = &c->tcp;
	c->state = BRIDGE_FALLBACK;
	c->deadline_ms = vmshim_now_ms() + BRIDGE_TCP_TIMEOUT_MS;
	c->tcp.w.fd = socket(c->dest.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->tcp.w.fd < 0 ||
	    (connect(c->tcp.w.fd, (struct sockaddr *)&dest, len) < 0 && errno != EINPROGRESS) ||
	    watch_add(c, &c->tcp, EPOLLOUT) < 0) {
		if (c->tcp.w.fd >= 0)
			close(c->tcp.w.fd);
		c->tcp.w.fd = -1;
		finish(c, true);
	}
}

/* Sends msg, a fresh connection's whole message, on w, then waits there for its answer in
 * state next; TCP if it cannot. */
static void say(struct bridge_conn *c, struct watch *w, const void *msg, size_t len,
		enum bridge_state next)
{
	if (send(w->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len) {
		fall_back(c);
		return;
	}
	c->state = next;
	loop_mod(w, EPOLLIN);
}

/* The address the program dialled, which the sibling's helperd routes by; then the
 * hand-over byte is awaited. */
static void dial(struct bridge_conn *c, struct watch *w)
{
	uint8_t dialled[DIALLED_SIZE];

	dialled_encode(dialled, &c->dest);
	say(c, w, dialled, sizeof(dialled), BRIDGE_HANDOVER);
}

/* Through the host's relay: the request for the sibling's port first. A port the policy
 * does not list in `without-half-close` asks for a path that carries half-closes. */
static void ask_relay(struct bridge_conn *c, struct watch *w)
{
	uint8_t request[RELAYPROTO_REQUEST_SIZE];

	relayproto_request(request, c->route.cid, c->route.port,
			   c->route.source_base + c->local_port,
			   c->route.half_close ? RELAYPROTO_REQUEST_HALF_CLOSE : 0);
	say(c, w, request, sizeof(request), BRIDGE_RELAY_REPLY);
}

/* The relay's answer: OK, and the sibling is dialled; anything else, TCP. */
static void relay_replied(struct bridge_conn *c, struct watch *w)
{
	enum relayproto_status status = RELAY_BAD_REQUEST;
	const char *why = NULL;
	int whole = relayproto_recv(w->fd, c->reply, sizeof(c->reply), &c->reply_got);

	if (whole == 0)
		return;
	if (whole < 0 || relayproto_parse_reply(c->reply, &status, &why) < 0 ||
	    status != RELAY_OK) {
		log_debug("bridge: the relay did not reach cid %u port %u: %s", c->route.cid,
			  c->route.port, why ? why : relayproto_status_name(status));
		fall_back(c);
		return;
	}
	dial(c, w);
}

static void on_far(struct watch *w, uint32_t events)
{
	struct bridge_conn *c = conn_of(w);

	switch (c->state) {
	case BRIDGE_CONNECTING:
	case BRIDGE_FALLBACK:
		if (sock_int_option(w->fd, SOL_SOCKET, SO_ERROR) != 0) {
			if (c->state == BRIDGE_CONNECTING)
				fall_back(c);
			else
				finish(c, true);
			return;
		}
		if (c->state == BRIDGE_FALLBACK) {
			helperd.counters.bridged_tcp++;
			start_forwarding(c);
		} else if (c->route.via_relay) {
			ask_relay(c, w);
		} else {
			dial(c, w);
		}
		return;
	case BRIDGE_RELAY_REPLY:
		relay_replied(c, w);
		return;
	case BRIDGE_HANDOVER: {
		char byte;
		ssize_t n = recv(w->fd, &byte, 1, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n != 1 || byte != VMSHIM_HANDOVER_BYTE) {
			fall_back(c);
			return;
		}
		helperd.counters.bridged_vsock++;
		start_forwarding(c);
		return;
	}
	case BRIDGE_LISTENING: /* not watched until FORWARDING */
		return;
	case BRIDGE_FORWARDING:
		forward_on_event(w->owner, events);
		return;
	}
}

/* A sibling's connection reached the listener: the sibling's side may take it now. */
static void listener_reached(struct bridge_conn *c)
{
	char handover = VMSHIM_HANDOVER_BYTE;

	if (sock_int_option(c->prog.w.fd, SOL_SOCKET, SO_ERROR) != 0 ||
	    send(c->sibling.w.fd, &handover, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1) {
		finish(c, true); /* no hand-over: the sibling goes over TCP */
		return;
	}
	start_forwarding(c);
}

/* The program's end is watched only while LISTENING and from FORWARDING on. */
static void on_prog(struct watch *w, uint32_t events)
{
	struct bridge_conn *c = conn_of(w);

	if (c->state == BRIDGE_LISTENING)
		listener_reached(c);
	else
		forward_on_event(w->owner, events);
}

/* The vsock connection to the sibling route names (or to the host's relay, for one reached
 * through it), from the source port that shows the program's own local port there; -1 if it
 * cannot be begun. */
static int reach_sibling(const struct vmshim_route *route, uint16_t local_port)
{
	int vs = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	uint32_t cid, port;

	if (vs < 0)
		return -1;
	vmshim_route_dial(route, &cid, &port);
	vsock_buffer_set(vs, VMSHIM_VSOCK_WINDOW);
	if (vsock_bind(vs, route->source_base + local_port) < 0 ||
	    (vsock_connect(vs, cid, port, VSOCK_FROM_GUEST, route->timeout_ms) < 0 &&
	     errno != EINPROGRESS)) {
		close(vs);
		return -1;
	}
	return vs;
}

/* What the programs filed for the connection from `from`, if the kernel says the socket
 * there is the one they saw connect: the cookie is the kernel's, not the connection's word.
 * Anything else at the bridge (a local user who connected to it, or took the port of a
 * redirected connect gone meanwhile) gets nothing. */
static bool destination_of(const struct vmshim_endpoint *from,
			   const struct vmshim_endpoint *bridge, int by_port, struct gw_orig *o)
{
	uint32_t key = GW_PORT_KEY(from->port, from->family == AF_INET6);
	uint64_t cookie;

	if (bpf_map_lookup_elem(by_port, &key, o) < 0)
		return false;
	bpf_map_delete_elem(by_port, &key);
	return sockdiag_tcp_cookie(from, bridge, &cookie) == 0 && cookie == o->cookie;
}

/* A connection of the bridge's, in its list, with the program's end fd, taking its room
 * from key's share in shares (a user's at most `share`); NULL (logged) without room or
 * memory. */
static struct bridge_conn *new_conn(int fd, struct share **shares, uint64_t key, unsigned share)
{
	struct bridge_conn *c = NULL;
	struct share *sh = n_conns < max_conns ? share_take(shares, key, share) : NULL;

	if (!sh) {
		log_limited(LOG_SOURCE(LOG_KIND_BRIDGE, 0), LOG_WARNING,
			    "bridge: no room for another connection (%u of %u in use)", n_conns,
			    max_conns);
		return NULL;
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		log_err("bridge: out of memory");
		share_give(shares, sh);
		return NULL;
	}
	c->shares = shares;
	c->share = sh;
	c->fwd.id = next_id++;
	c->prog = (struct forward_end){
		.w = {.fd = fd, .on_event = on_prog, .owner = &c->prog, .release = release},
		.f = &c->fwd};
	c->sibling = (struct forward_end){
		.w = {.fd = -1, .on_event = on_far, .owner = &c->sibling, .release = release},
		.f = &c->fwd};
	c->tcp = (struct forward_end){
		.w = {.fd = -1, .on_event = on_far, .owner = &c->tcp, .release = release},
		.f = &c->fwd};
	c->far = &c->sibling;
	c->refs = 1;
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	n_conns++;
	if (n_conns >= max_conns)
		guestwide_bridge_full(true);
	return c;
}

void bridge_take(int fd, const struct vmshim_endpoint *from,
		 const struct vmshim_endpoint *bridge, int by_port)
{
	struct gw_orig o;
	struct bridge_conn *c;

	if (!destination_of(from, bridge, by_port, &o)) {
		helperd.counters.bridge_strangers++;
		log_limited(LOG_SOURCE(LOG_KIND_BRIDGE, from->port), LOG_WARNING,
			    "a connection to the bridge from port %u that no redirected connect "
			    "made: closed", from->port);
		close(fd);
		return;
	}
	/* A user's connects that left before its share was full may come after: they are
	 * carried all the same, while the bridge has room. */
	if (!(c = new_conn(fd, &user_shares, o.uid, UINT_MAX))) {
		abort_on_close(fd);
		close(fd);
		return;
	}
	if (c->share->n == user_share())
		guestwide_user_full(o.uid, true);
	c->dest = (struct vmshim_endpoint){.family = o.v6 ? AF_INET6 : AF_INET,
					   .port = ntohs((uint16_t)o.port)};
	memcpy(c->dest.addr, o.v6 ? (const void *)o.addr6 : (const void *)&o.addr, o.v6 ? 16 : 4);

	bool sibling = guestwide_route(&c->dest, &c->route) == VMSHIM_SIBLING;
	c->local_port = from->port;
	c->deadline_ms = vmshim_now_ms() + vsock_connect_timeout_ms(c->route.timeout_ms);
	c->state = BRIDGE_CONNECTING;
	c->sibling.w.fd = sibling ? reach_sibling(&c->route, c->local_port) : -1;
	if (c->sibling.w.fd >= 0 && watch_add(c, &c->sibling, EPOLLOUT) < 0) {
		close(c->sibling.w.fd);
		c->sibling.w.fd = -1;
	}
	if (c->sibling.w.fd < 0)
		fall_back(c);
}

int bridge_inbound(int vs, const struct policy_peer *sibling,
		   const struct sockaddr_storage *target, socklen_t len,
		   const struct vmshim_endpoint *peer, const struct vmshim_endpoint *dialled)
{
	bool v6 = target->ss_family == AF_INET6;
	struct vmshim_endpoint from = {.family = v6 ? AF_INET6 : AF_INET};
	struct sockaddr_storage sa;
	socklen_t from_len;
	int fd = socket(from.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct bridge_conn *c;

	/* IPv4 from an address of its own, which no local program's connection shows; IPv6
	 * has only ::1 (the names are filed by the port, which the bridge's socket holds) */
	inet_pton(from.family, v6 ? GUESTWIDE_BRIDGE_ADDR6 : GUESTWIDE_INBOUND_ADDR, from.addr);
	from_len = endpoint_to_sockaddr(&from, from.family, &sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, from_len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &from_len) < 0 ||
	    endpoint_from_sockaddr((struct sockaddr *)&sa, from_len, &from) < 0 ||
	    guestwide_inbound_names(from.port, v6, peer, dialled) < 0) {
		log_warn("bridge: cannot connect a sibling to a listener of this guest: %m");
		if (fd >= 0)
			close(fd);
		close(vs);
		return -1;
	}
	if (!(c = new_conn(fd, &peer_shares, share_key_of_peer(sibling),
			   share_per_peer(max_conns, helperd.policy->n_peers)))) {
		helperd.counters.sibling_busy++;
		guestwide_inbound_forget(from.port, v6);
		close(fd);
		close(vs);
		return -1;
	}
	c->inbound_port = from.port;
	c->inbound_v6 = v6;
	c->sibling.w.fd = vs;
	c->state = BRIDGE_LISTENING;
	c->deadline_ms = vmshim_now_ms() + BRIDGE_TCP_TIMEOUT_MS;
	if ((connect(fd, (const struct sockaddr *)target, len) < 0 && errno != EINPROGRESS) ||
	    watch_add(c, &c->prog, EPOLLOUT) < 0) {
		finish(c, true);
		return -1;
	}
	return 0;
}

void bridge_expire(int64_t now_ms)
{
	for (struct bridge_conn *c = conns, *next; c; c = next) {
		next = c->next;
		if (now_ms < c->deadline_ms)
			continue;
		if (c->state == BRIDGE_FALLBACK || c->state == BRIDGE_LISTENING)
			finish(c, true);
		else
			fall_back(c);
	}
}
