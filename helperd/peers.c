/* Discovery and liveness of the other helperds (peers.h); the frames are in
 * common/peerproto.c. Everything here runs in helperd's one event loop, without blocking:
 * connects are non-blocking, a peer that does not read its announcements loses its
 * connection, and reads are bounded per wake-up. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "helperd.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "peers.h"
#include "policy_addr.h"
#include "relayed.h"
#include "siblings.h"
#include "vmshim/peerproto.h"
#include "vmshim/ports.h"
#include "vmshim/relayproto.h"
#include "vmshim/table.h"

#define PRIVILEGED_PORTS 1024 /* control connections come from these source ports */
#define FRAMES_PER_WAKEUP 16
#define INBOUND_PER_PEER 4 /* a restarted peer's new connection may meet its old one */

struct link;

/* A connection a peer opened to announce itself. */
struct inbound {
	struct watch w;
	struct link *link;
	size_t have;
	uint8_t buf[PEERPROTO_HEADER_SIZE + PEERPROTO_MAX_PAYLOAD];
};

/* The connection this helperd keeps to a peer's control port. */
struct outbound {
	struct watch w;
	struct link *link;
	bool connected;
	bool asked_relay; /* the relay has the request, its reply is awaited */
	unsigned have;
	uint8_t reply[RELAYPROTO_REPLY_SIZE];
};

/* What is known of one peer of the policy. */
struct link {
	char name[POLICY_NAME_MAX + 1];
	uint32_t cid, base, control_port;
	bool via_relay;
	bool up;
	int64_t last_ms, since_ms; /* last announcement, last change of state; 0: never */
	struct policy_prefix owned[PEERPROTO_MAX_ADDRS];
	size_t n_owned;
	uint64_t served4[POLICY_PORT_WORDS], served6[POLICY_PORT_WORDS];
	size_t n_served4, n_served6;
	uint8_t last_claims[PEERPROTO_MAX_ADDRS * PEERPROTO_ADDR_SIZE]; /* to log a change once */
	size_t last_claims_len; /* SIZE_MAX: none seen under the policy in force */
	uint8_t said[PEERPROTO_MAX_PAYLOAD]; /* its last announcement, to judge it again */
	size_t said_len;
	struct inbound *ins[INBOUND_PER_PEER];
	struct inbound *speaker; /* the connection of its last announcement */
	struct outbound *out;
	unsigned long announcements;
};

static void close_inbound(struct inbound *in);
static void close_outbound(struct outbound *o);

static struct link **links; /* parallel to helperd.policy->peers */
static size_t n_links;
static struct table_peer_view *views;
static struct watch listener = {.fd = -1}, ticker = {.fd = -1};
static uint32_t listening_port;
static struct policy_prefix self_owned[PEERPROTO_MAX_ADDRS];
static size_t n_self_owned;

/* --- this guest ------------------------------------------------------------------------- */

/* What this guest owns: its addresses in the policy, or else those of its interfaces. */
static void find_self_owned(void)
{
	const struct policy_peer *self = helperd_self();
	struct ifaddrs *ifs, *i;
	char why[256];

	n_self_owned = 0;
	if (!self)
		return;
	if (self->n_prefixes) {
		for (size_t j = 0; j < self->n_prefixes && n_self_owned < PEERPROTO_MAX_ADDRS; j++)
			self_owned[n_self_owned++] = self->prefixes[j];
		return;
	}
	if (getifaddrs(&ifs) < 0)
		return;
	for (i = ifs; i && n_self_owned < PEERPROTO_MAX_ADDRS; i = i->ifa_next) {
		struct policy_prefix p = {0};
		if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			p = (struct policy_prefix){.family = AF_INET, .len = 32};
			memcpy(p.addr, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			const struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
			if (IN6_IS_ADDR_LINKLOCAL(a))
				continue;
			p = (struct policy_prefix){.family = AF_INET6, .len = 128};
			memcpy(p.addr, a, 16);
		} else {
			continue;
		}
		if (policy_prefix_check(&p, why, sizeof(why)) == 0)
			self_owned[n_self_owned++] = p;
	}
	freeifaddrs(ifs);
}

static size_t ports_of(const uint64_t *set, uint16_t *out)
{
	size_t n = 0;

	for (unsigned p = 1; p < 65536 && n < PEERPROTO_MAX_PORTS; p++)
		if ((set[p / 64] >> (p % 64)) & 1)
			out[n++] = (uint16_t)p;
	return n;
}

/* This guest's announcement, the same for every peer: made again when what it says may
 * have changed, sent as it is. */
static uint8_t frame[PEERPROTO_HEADER_SIZE + PEERPROTO_MAX_PAYLOAD];
static long frame_len = -1;

static void compose(void)
{
	static struct peerproto_announce a;
	uint64_t served4[POLICY_PORT_WORDS], served6[POLICY_PORT_WORDS];

	a.n_addrs = n_self_owned;
	for (size_t i = 0; i < n_self_owned; i++) {
		a.addrs[i] = (struct peerproto_addr){.family = self_owned[i].family,
						     .len = self_owned[i].len};
		memcpy(a.addrs[i].addr, self_owned[i].addr, 16);
	}
	siblings_served(served4, served6);
	a.n_ports4 = ports_of(served4, a.ports4);
	a.n_ports6 = ports_of(served6, a.ports6);
	frame_len = peerproto_encode_announce(&a, frame);
}

static void announce(struct outbound *o)
{
	if (frame_len < 0 ||
	    send(o->w.fd, frame, (size_t)frame_len, MSG_DONTWAIT | MSG_NOSIGNAL) != frame_len) {
		/* A peer that does not read gets a fresh connection on the next round. */
		log_debug("peer %s: announcement not sent: connection closed", o->link->name);
		close_outbound(o);
	}
}

/* --- what peers say --------------------------------------------------------------------- */

/* A peer gone: its connections are of no more use (new ones come when it is back). */
static void go_down(struct link *l, const char *why)
{
	for (size_t k = 0; k < INBOUND_PER_PEER; k++)
		if (l->ins[k])
			close_inbound(l->ins[k]);
	if (l->out)
		close_outbound(l->out);
	if (!l->up)
		return;
	l->up = false;
	l->since_ms = vmshim_now_ms();
	log_info("peer %s (cid %u) is gone: %s; its addresses go back to TCP", l->name, l->cid,
		 why);
	helperd_publish();
}

/* Whether a claimed prefix is another's: this guest's, another peer's by policy, or one a
 * live peer already holds. */
static const char *owned_elsewhere(const struct link *l, const struct policy_prefix *p)
{
	const struct policy *pol = helperd.policy;

	for (size_t i = 0; i < n_self_owned; i++)
		if (policy_prefix_overlaps(p, &self_owned[i]))
			return "this guest owns it";
	for (size_t i = 0; i < n_links; i++) {
		if (links[i] == l || (int)i == helperd.self)
			continue;
		for (size_t j = 0; j < pol->peers[i].n_prefixes; j++)
			if (policy_prefix_overlaps(p, &pol->peers[i].prefixes[j]))
				return "the policy gives it to another peer";
		for (size_t j = 0; links[i]->up && j < links[i]->n_owned; j++)
			if (policy_prefix_overlaps(p, &links[i]->owned[j]))
				return "another peer holds it";
	}
	return NULL;
}

/* Keeps the claims the policy lets the peer make; logs the others once per change. */
static void take_claims(struct link *l, const struct policy_peer *pp,
			const struct peerproto_announce *a, const uint8_t *raw, size_t raw_len)
{
	bool changed = raw_len != l->last_claims_len || memcmp(raw, l->last_claims, raw_len);
	char shown[POLICY_PREFIX_STRLEN], why[256];

	l->n_owned = 0;
	for (size_t i = 0; i < a->n_addrs; i++) {
		struct policy_prefix p = {.family = a->addrs[i].family, .len = a->addrs[i].len};
		const char *refusal = NULL;
		memcpy(p.addr, a->addrs[i].addr, 16);
		if (policy_prefix_check(&p, why, sizeof(why)) < 0) {
			refusal = why;
		} else {
			bool inside = pp->n_prefixes == 0;
			for (size_t j = 0; !inside && j < pp->n_prefixes; j++)
				inside = policy_prefix_contains(&pp->prefixes[j], &p);
			refusal = inside ? owned_elsewhere(l, &p) : "outside what the policy lets it own";
		}
		if (!refusal) {
			l->owned[l->n_owned++] = p;
		} else if (changed) {
			helperd.counters.refused_claims++;
			log_warn("peer %s (cid %u) claims %s: refused, %s", l->name, l->cid,
				 policy_prefix_format(&p, shown), refusal);
		}
	}
	memcpy(l->last_claims, raw, raw_len);
	l->last_claims_len = raw_len;
}

static void fill_set(uint64_t *set, size_t *n, const uint16_t *ports, size_t count)
{
	memset(set, 0, sizeof(uint64_t) * POLICY_PORT_WORDS);
	for (size_t i = 0; i < count; i++)
		set[ports[i] / 64] |= 1ull << (ports[i] % 64);
	*n = count;
}

/* Takes in what peer i announced (checked already); true if anything changed. */
static bool apply(struct link *l, size_t i, const struct peerproto_announce *a,
		  const uint8_t *payload, size_t len)
{
	uint64_t old4[POLICY_PORT_WORDS], old6[POLICY_PORT_WORDS];
	struct policy_prefix old_owned[PEERPROTO_MAX_ADDRS];
	size_t old_n = l->n_owned;
	memcpy(old4, l->served4, sizeof(old4));
	memcpy(old6, l->served6, sizeof(old6));
	memcpy(old_owned, l->owned, sizeof(old_owned[0]) * old_n);

	take_claims(l, &helperd.policy->peers[i], a, payload + 12,
		    a->n_addrs * PEERPROTO_ADDR_SIZE);
	fill_set(l->served4, &l->n_served4, a->ports4, a->n_ports4);
	fill_set(l->served6, &l->n_served6, a->ports6, a->n_ports6);
	memcpy(l->said, payload, len);
	l->said_len = len;
	return old_n != l->n_owned || memcmp(old_owned, l->owned, sizeof(old_owned[0]) * old_n) ||
	       memcmp(old4, l->served4, sizeof(old4)) || memcmp(old6, l->served6, sizeof(old6));
}

static void on_announce(struct inbound *in, const uint8_t *payload, size_t len)
{
	struct link *l = in->link;
	static struct peerproto_announce a;
	const char *why;
	size_t i = 0;

	while (i < n_links && links[i] != l)
		i++;
	if (peerproto_parse_announce(payload, len, &a, &why) < 0) {
		helperd.counters.bad_messages++;
		log_warn("peer %s: malformed announcement dropped (%s)", l->name, why);
		return;
	}
	bool changed = apply(l, i, &a, payload, len);
	l->speaker = in;
	l->announcements++;
	l->last_ms = vmshim_now_ms();
	if (!l->up) {
		l->up = true;
		l->since_ms = l->last_ms;
		log_info("peer %s (cid %u) is up: %zu addresses, %zu+%zu ports served", l->name,
			 l->cid, l->n_owned, l->n_served4, l->n_served6);
		changed = true;
	}
	if (changed)
		helperd_publish();
}

static void close_inbound(struct inbound *in)
{
	struct link *l = in->link;

	for (size_t k = 0; k < INBOUND_PER_PEER; k++)
		if (l->ins[k] == in)
			l->ins[k] = NULL;
	if (l->speaker == in)
		l->speaker = NULL;
	loop_retire(&in->w);
	close(in->w.fd);
}

static void bad_frame(struct inbound *in, const char *why)
{
	helperd.counters.bad_messages++;
	log_warn("peer %s: %s: connection closed", in->link->name, why);
	close_inbound(in);
}

static void on_inbound(struct watch *w, uint32_t events)
{
	struct inbound *in = w->owner;

	(void)events;
	/* A bounded number of frames per wake-up: a chatty peer cannot hold up the loop. */
	for (int frames = 0; frames < FRAMES_PER_WAKEUP;) {
		size_t want = PEERPROTO_HEADER_SIZE;

		if (in->have >= PEERPROTO_HEADER_SIZE) {
			unsigned type;
			const char *why;
			long payload = peerproto_header(in->buf, &type, &why);
			if (payload < 0)
				return bad_frame(in, why);
			want += (size_t)payload;
			if (in->have == want) {
				on_announce(in, in->buf + PEERPROTO_HEADER_SIZE, (size_t)payload);
				in->have = 0;
				frames++;
				continue;
			}
		}
		ssize_t n = recv(w->fd, in->buf + in->have, want - in->have, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			struct link *l = in->link;
			bool current = l->speaker == in;
			close_inbound(in);
			if (current)
				go_down(l, "its connection closed");
			return;
		}
		in->have += (size_t)n;
	}
}

/* Whether another peer of the policy has this CID (test set-ups, nested guests): then only
 * the vsock port blocks tell them apart. */
static bool cid_shared(uint32_t cid)
{
	int n = 0;

	for (size_t i = 0; i < helperd.policy->n_peers; i++)
		n += helperd.policy->peers[i].cid == cid;
	return n > 1;
}

/* The first of the 1023 vsock ports a peer's control connections come from: port 1, a
 * privileged port, which only root (helperd) can bind in its guest, so no other user there
 * can speak for helperd; where its CID is shared, TCP port 1 of its source block. */
static uint32_t first_control_source(const struct policy_peer *peer)
{
	return cid_shared(peer->cid) ? vmshim_source_port(peer->vsock_base, 1) : 1;
}

/* The peer whose helperd made a control connection from `from`, or -1 and why not. */
static int identify_helperd(const struct sockaddr_vm *from, const char **why)
{
	*why = "not a peer of the policy";
	for (size_t i = 0; i < helperd.policy->n_peers; i++) {
		const struct policy_peer *p = &helperd.policy->peers[i];

		if ((int)i == helperd.self || p->cid != from->svm_cid)
			continue;
		uint32_t first = first_control_source(p);
		if (from->svm_port >= first && from->svm_port < first + PRIVILEGED_PORTS - 1)
			return (int)i;
		/* Peers sharing this CID may own other blocks; keep looking. */
		*why = first > 1 ? "not from its helperd's port range" : "not from a privileged port";
	}
	return -1;
}

/* A control connection from `from`, directly or as the relay's FROM says. */
static void take_control(int s, const struct sockaddr_vm *from, uint32_t unused)
{
	const char *why;
	int i = identify_helperd(from, &why);
	size_t slot = 0;
	struct inbound *in = NULL;

	(void)unused;
	while (i >= 0 && slot < INBOUND_PER_PEER && links[i]->ins[slot])
		slot++;
	if (i < 0) {
		helperd.counters.rejected_cids++;
		log_warn("control connection from cid %u port %u refused: %s", from->svm_cid,
			 from->svm_port, why);
	} else if (slot == INBOUND_PER_PEER) {
		log_warn("control connection from peer %s refused: it has %d open", links[i]->name,
			 INBOUND_PER_PEER);
	} else if (!(in = calloc(1, sizeof(*in)))) {
		log_err("out of memory: control connection from peer %s closed", links[i]->name);
	}
	if (!in) {
		close(s);
		return;
	}
	*in = (struct inbound){.w = {.fd = s, .on_event = on_inbound, .owner = in},
			       .link = links[i]};
	if (loop_add(&in->w, EPOLLIN) < 0) {
		close(s);
		free(in);
		return;
	}
	links[i]->ins[slot] = in;
}

static void on_listener(struct watch *w, uint32_t events)
{
	(void)events;
	for (;;) {
		struct sockaddr_vm from;
		socklen_t len = sizeof(from);
		int s = accept4(w->fd, (struct sockaddr *)&from, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("control port: accept: %m");
			return;
		}
		if (policy_from_relay(helperd.policy, from.svm_cid, from.svm_port))
			relayed_start(s, take_control, 0);
		else
			take_control(s, &from, 0);
	}
}

/* --- connections to peers --------------------------------------------------------------- */

static void close_outbound(struct outbound *o)
{
	o->link->out = NULL;
	loop_retire(&o->w);
	close(o->w.fd);
}

static void connected(struct outbound *o)
{
	o->connected = true;
	o->asked_relay = false;
	loop_mod(&o->w, EPOLLRDHUP);
	announce(o);
}

/* Via the relay: asks it for the peer's control port. */
static bool ask_relay(struct outbound *o)
{
	uint8_t request[RELAYPROTO_REQUEST_SIZE];
	struct sockaddr_vm local;
	socklen_t len = sizeof(local);

	if (getsockname(o->w.fd, (struct sockaddr *)&local, &len) < 0)
		return false;
	relayproto_request(request, o->link->cid, o->link->control_port, local.svm_port);
	if (send(o->w.fd, request, sizeof(request), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(request))
		return false;
	o->asked_relay = true;
	loop_mod(&o->w, EPOLLIN | EPOLLRDHUP);
	return true;
}

/* Reads the relay's reply: connected once it says OK; a refusal or a broken reply closes
 * the connection (a later tick dials again). */
static void on_relay_reply(struct outbound *o)
{
	enum relayproto_status status;
	const char *why = NULL;
	int got = relayproto_recv(o->w.fd, o->reply, sizeof(o->reply), &o->have);

	if (got == 0)
		return;
	if (got < 0)
		why = "the relay closed the connection";
	else if (relayproto_parse_reply(o->reply, &status, &why) == 0 && status != RELAY_OK)
		why = relayproto_status_name(status);
	if (!why) {
		connected(o);
		return;
	}
	log_debug("peer %s: via the relay: %s", o->link->name, why);
	close_outbound(o);
}

static void on_outbound(struct watch *w, uint32_t events)
{
	struct outbound *o = w->owner;
	int err = 0;
	socklen_t len = sizeof(err);

	if (o->asked_relay) {
		on_relay_reply(o);
		return;
	}
	if (!o->connected && (events & EPOLLOUT) &&
	    getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
		if (!o->link->via_relay) {
			connected(o);
			return;
		}
		if (ask_relay(o))
			return;
	}
	log_debug("peer %s: control connection %s", o->link->name,
		  o->connected ? "closed" : "not established");
	close_outbound(o);
}

/* A socket bound to a free control source port of this guest (first_control_source). The
 * ports are taken in turn, not the lowest free one: vsock has no TIME_WAIT, and on newer
 * kernels (6.12) a closed socket gives its port up before its peer has closed, so a new
 * connection from the same port to the same place would take the old one's late reset. */
static int control_socket(void)
{
	static uint32_t next; /* offset into the range */
	uint32_t first = first_control_source(helperd_self());
	int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	for (uint32_t tries = 0; tries < PRIVILEGED_PORTS - 1; tries++) {
		struct sockaddr_vm svm = {.svm_family = AF_VSOCK,
					  .svm_cid = VMADDR_CID_ANY,
					  .svm_port = first + next};
		next = (next + 1) % (PRIVILEGED_PORTS - 1);
		if (bind(s, (struct sockaddr *)&svm, sizeof(svm)) == 0)
			return s;
		if (errno != EADDRINUSE)
			break;
	}
	close(s);
	return -1;
}

static void dial(struct link *l)
{
	const struct policy *pol = helperd.policy;
	uint32_t cid = l->via_relay ? pol->relay_cid : l->cid;
	struct sockaddr_vm svm = {
		.svm_family = AF_VSOCK,
		.svm_cid = cid,
		.svm_port = l->via_relay ? pol->relay_port : l->control_port,
		.svm_flags = cid > VMADDR_CID_HOST ? VMADDR_FLAG_TO_HOST : 0,
	};
	struct outbound *o = calloc(1, sizeof(*o));
	int s = o ? control_socket() : -1;

	if (s < 0 || (connect(s, (struct sockaddr *)&svm, sizeof(svm)) < 0 &&
		      errno != EINPROGRESS)) {
		log_debug("peer %s: cannot connect to its control port: %m", l->name);
		goto fail;
	}
	*o = (struct outbound){.w = {.fd = s, .on_event = on_outbound, .owner = o}, .link = l};
	if (loop_add(&o->w, EPOLLOUT | EPOLLRDHUP) < 0)
		goto fail;
	l->out = o;
	return;
fail:
	if (s >= 0)
		close(s);
	free(o);
}

/* Every sixth of the liveness timeout T: a peer silent for 2T/3 (two announcements missed:
 * peers announce every T/3) is dropped. So one that stops is dropped at most 5T/6 after its
 * last announcement, which leaves T/6 for late timers in a loaded guest before the
 * promise, within T, is broken. Every other tick: announce, and connect to the peers this
 * helperd has no connection to. */
static void on_tick(struct watch *w, uint32_t events)
{
	static unsigned n;
	uint64_t ticks;
	int64_t now = vmshim_now_ms();
	int64_t silence_max = helperd.policy->liveness_ms * 2 / 3;

	(void)events;
	if (read(w->fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	for (size_t i = 0; i < n_links; i++)
		if (links[i]->up && now - links[i]->last_ms > silence_max)
			go_down(links[i], "no announcement within the liveness timeout");
	if (n++ % 2)
		return;
	find_self_owned();
	compose();
	for (size_t i = 0; i < n_links; i++) {
		struct link *l = links[i];
		if ((int)i == helperd.self)
			continue;
		if (!l->out)
			dial(l);
		else if (l->out->connected)
			announce(l->out);
	}
}

/* --- policy ----------------------------------------------------------------------------- */

static int open_listener(void)
{
	const struct policy_peer *self = helperd_self();
	uint32_t port = self ? self->control_port : 0;

	if (listener.fd >= 0 && port == listening_port)
		return 0;
	if (listener.fd >= 0) {
		loop_del(&listener);
		close(listener.fd);
		listener.fd = -1;
	}
	if (!self)
		return 0;
	struct sockaddr_vm svm = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
	int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&svm, sizeof(svm)) < 0 || listen(s, 16) < 0) {
		log_err("cannot listen on control port %u (vsock): %m", port);
		if (s >= 0)
			close(s);
		return -1;
	}
	listener = (struct watch){.fd = s, .on_event = on_listener};
	listening_port = port;
	return loop_add(&listener, EPOLLIN);
}

static int arm_ticker(void)
{
	uint32_t ms = helperd.policy->liveness_ms / 6;
	struct itimerspec every = {
		.it_interval = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000},
		.it_value = {.tv_nsec = 1}, /* at once: announce without waiting a round */
	};

	return timerfd_settime(ticker.fd, 0, &every, NULL);
}

static void drop_link(struct link *l)
{
	for (size_t k = 0; k < INBOUND_PER_PEER; k++)
		if (l->ins[k])
			close_inbound(l->ins[k]);
	if (l->out)
		close_outbound(l->out);
	free(l);
}

void peers_policy_changed(void)
{
	const struct policy *pol = helperd.policy;
	struct link **fresh = calloc(pol->n_peers ? pol->n_peers : 1, sizeof(*fresh));
	struct table_peer_view *v = calloc(pol->n_peers ? pol->n_peers : 1, sizeof(*v));

	if (!fresh || !v) {
		log_err("out of memory: peers forgotten");
		exit(1); /* the service manager starts helperd again */
	}
	for (size_t i = 0; i < pol->n_peers; i++) {
		const struct policy_peer *pp = &pol->peers[i];
		for (size_t j = 0; j < n_links && !fresh[i]; j++) {
			struct link *l = links[j];
			if (l && !strcmp(l->name, pp->name) && l->cid == pp->cid &&
			    l->base == pp->vsock_base && l->control_port == pp->control_port &&
			    l->via_relay == pp->via_relay) {
				fresh[i] = l;
				links[j] = NULL;
			}
		}
		if (!fresh[i] && !(fresh[i] = calloc(1, sizeof(**fresh)))) {
			log_err("out of memory: peers forgotten");
			exit(1); /* the service manager starts helperd again */
		}
		if (!fresh[i]->name[0]) {
			snprintf(fresh[i]->name, sizeof(fresh[i]->name), "%s", pp->name);
			fresh[i]->cid = pp->cid;
			fresh[i]->base = pp->vsock_base;
			fresh[i]->control_port = pp->control_port;
			fresh[i]->via_relay = pp->via_relay;
		}
	}
	for (size_t j = 0; j < n_links; j++)
		if (links[j])
			drop_link(links[j]);
	free(links);
	free(views);
	links = fresh;
	views = v;
	n_links = pol->n_peers;
	find_self_owned();
	compose();
	/* What a peer holds is judged again against the new policy. */
	for (size_t i = 0; i < n_links; i++) {
		static struct peerproto_announce a;
		const char *why;
		links[i]->last_claims_len = SIZE_MAX;
		if (links[i]->said_len &&
		    peerproto_parse_announce(links[i]->said, links[i]->said_len, &a, &why) == 0)
			apply(links[i], i, &a, links[i]->said, links[i]->said_len);
	}
	open_listener();
	if (ticker.fd >= 0)
		arm_ticker();
}

int peers_start(void)
{
	ticker = (struct watch){.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC),
				.on_event = on_tick};
	if (ticker.fd < 0 || loop_add(&ticker, EPOLLIN) < 0)
		return -1;
	peers_policy_changed();
	return views ? 0 : -1;
}

void peers_served_changed(void)
{
	compose();
	for (size_t i = 0; i < n_links; i++)
		if (links[i]->out && links[i]->out->connected)
			announce(links[i]->out);
}

const struct table_peer_view *peers_views(void)
{
	for (size_t i = 0; i < n_links; i++) {
		const struct link *l = links[i];
		if ((int)i == helperd.self)
			views[i] = (struct table_peer_view){.up = 1, .owned = self_owned,
							    .n_owned = n_self_owned};
		else
			views[i] = (struct table_peer_view){.up = l->up, .owned = l->owned,
							    .n_owned = l->n_owned,
							    .served4 = l->served4,
							    .served6 = l->served6};
	}
	return views;
}

int peers_identify(const struct sockaddr_vm *from, uint16_t *tcp_port)
{
	for (size_t i = 0; i < helperd.policy->n_peers; i++) {
		const struct policy_peer *p = &helperd.policy->peers[i];
		uint32_t first = vmshim_source_port(p->vsock_base, 0);

		if ((int)i == helperd.self || p->cid != from->svm_cid || from->svm_port < first ||
		    from->svm_port - first > 65535)
			continue;
		*tcp_port = (uint16_t)(from->svm_port - first);
		return (int)i;
	}
	return -1;
}

bool peers_address(int i, bool v6, uint8_t addr[16])
{
	const struct policy_prefix *owned = i == helperd.self ? self_owned : links[i]->owned;
	size_t n = i == helperd.self ? n_self_owned : links[i]->n_owned;
	const struct policy_prefix *a = policy_first_single(owned, n, v6 ? AF_INET6 : AF_INET);

	memset(addr, 0, 16);
	if (a)
		memcpy(addr, a->addr, v6 ? 16 : 4);
	return a != NULL;
}

void peers_stop(void)
{
	for (size_t i = 0; i < n_links; i++)
		drop_link(links[i]);
	free(links);
	free(views);
	links = NULL;
	views = NULL;
	n_links = 0;
	if (listener.fd >= 0)
		close(listener.fd);
	if (ticker.fd >= 0)
		close(ticker.fd);
}

/* --- status ----------------------------------------------------------------------------- */

static void print_ports(FILE *out, const uint64_t *set, bool json)
{
	const char *sep = "";

	for (unsigned p = 1; p < 65536; p++) {
		if (!((set[p / 64] >> (p % 64)) & 1))
			continue;
		fprintf(out, "%s%u", sep, p);
		sep = json ? "," : " ";
	}
	if (!json && !*sep)
		fputc('-', out);
}

static void print_owned(FILE *out, const struct link *l, bool json)
{
	char shown[POLICY_PREFIX_STRLEN];

	for (size_t j = 0; j < l->n_owned; j++)
		fprintf(out, json ? "%s\"%s\"" : "%s%s", j ? (json ? "," : " ") : "",
			policy_prefix_format(&l->owned[j], shown));
	if (!json && !l->n_owned)
		fputc('-', out);
}

void peers_status(FILE *out, bool json)
{
	int64_t now = vmshim_now_ms();

	fputs(json ? "[" : "", out);
	for (size_t i = 0, shown = 0; i < n_links; i++) {
		const struct link *l = links[i];
		long ago = l->last_ms ? (long)(now - l->last_ms) : -1;
		if ((int)i == helperd.self)
			continue;
		if (json) {
			fprintf(out, "%s{\"name\":\"%s\",\"cid\":%u,\"state\":\"%s\",\"addresses\":[",
				shown++ ? "," : "", l->name, l->cid, l->up ? "up" : "down");
			print_owned(out, l, true);
			fputs("],\"ports4\":[", out);
			print_ports(out, l->served4, true);
			fputs("],\"ports6\":[", out);
			print_ports(out, l->served6, true);
			fprintf(out, "],\"last_contact_ms_ago\":%ld,\"state_for_ms\":%ld,"
				     "\"announcements\":%lu}",
				ago, l->since_ms ? (long)(now - l->since_ms) : -1, l->announcements);
			continue;
		}
		fprintf(out, "peer %s: %s", l->name, l->up ? "up" : "down");
		if (l->since_ms)
			fprintf(out, " for %ld s", (long)(now - l->since_ms) / 1000);
		fprintf(out, ", cid %u, control port %u\n  addresses: ", l->cid, l->control_port);
		print_owned(out, l, false);
		fputs("\n  TCP ports served (IPv4): ", out);
		print_ports(out, l->served4, false);
		fputs("\n  TCP ports served (IPv6): ", out);
		print_ports(out, l->served6, false);
		if (ago < 0)
			fputs("\n  last contact: never\n", out);
		else
			fprintf(out, "\n  last contact: %ld.%01ld s ago (%lu announcements)\n", ago / 1000,
				ago % 1000 / 100, l->announcements);
	}
	fputs(json ? "]" : "", out);
}
