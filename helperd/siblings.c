#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <uthash.h>
#include <unistd.h>

#include "announce.h"
#include "bridge.h"
#include "channel.h"
#include "doorbell.h"
#include "guestwide.h"
#include "helperd.h"
#include "vmshim/log.h"
#include "peers.h"
#include "policy_addr.h"
#include "vmshim/loop.h"
#include "preface.h"
#include "remember.h"
#include "siblings.h"
#include "vmshim/vsock.h"
#include "tcpsock.h"
#include "sockdiag.h"
#include "vmshim/endpoint.h"
#include "vmshim/ports.h"
#include "vmshim/vsockbuf.h"

#define VSOCK_BACKLOG 128
/* A crowd of sibling connections refills the backlog as fast as helperd takes from it: a
 * bounded number per wake-up keeps the loop turning (announcements, ticks, doorbells); the
 * listener, level-triggered, comes back in the next round. Unbounded, 1,000 at once held
 * the loop 3.8 s under ASan, and the peers took each other for gone (t_stress). */
#define ACCEPTS_PER_WAKEUP 16

/* A TCP listener some shim registered. helperd keeps no descriptor of it. */
struct registration {
	uint64_t inode; /* key: the listening socket */
	uint16_t port;
	bool v4, v6; /* which connections it takes */
	struct vmshim_endpoint bound; /* all-zero address: the wildcard */
	uid_t uid;                    /* the socket's owner */
	struct channel *channel;      /* shared with all bound there by that user */
	/* no channel: a program without the shim (guest-wide mode), whose connections the
	 * bridge takes; never saved (a later helperd would ring a doorbell at it) */
	bool bridged;
	UT_hash_handle hh;
};

/* Where siblings connect for one TCP port and family. */
struct vsock_listener {
	struct watch w;
	uint32_t vport; /* key */
	uint16_t tcp_port;
	bool v6;
	bool needed; /* mark for siblings_sync */
	UT_hash_handle hh;
};

static struct registration *registrations;
static struct vsock_listener *listeners;
static bool registrations_unsaved; /* RUNDIR/listeners is behind until a save works */

static bool is_wildcard(const struct vmshim_endpoint *ep)
{
	static const uint8_t zero[16];

	return memcmp(ep->addr, zero, 16) == 0;
}

static bool exposed(uint16_t port)
{
	const struct policy_peer *self = helperd_self();

	return self && policy_port_allowed(&self->ports, port);
}

/* A registration of the listener with that inode: its channel made, or for a listener the
 * bridge serves (bridged), none. */
static struct registration *new_registration(uint64_t inode, const struct vmshim_endpoint *bound,
					     uid_t uid, bool bridged)
{
	struct registration *r = calloc(1, sizeof(*r));

	if (!r || (!bridged && !(r->channel = channel_get(bound, uid)))) {
		free(r);
		return NULL;
	}
	r->inode = inode;
	r->port = bound->port;
	r->bound = *bound;
	r->uid = uid;
	r->bridged = bridged;
	HASH_ADD(hh, registrations, inode, sizeof(r->inode), r);
	return r;
}

static void forget_registration(struct registration *r)
{
	HASH_DEL(registrations, r);
	if (r->channel)
		channel_put(r->channel);
	free(r);
}

/* Which connections a listener bound to ep takes (v6only: IPV6_V6ONLY set on it). */
static void set_families(struct registration *r, int domain, bool v6only)
{
	if (domain == AF_INET || r->bound.family == AF_INET) { /* IPv4, or a mapped address */
		r->v4 = true;
		r->v6 = false;
	} else {
		r->v6 = true;
		r->v4 = is_wildcard(&r->bound) && !v6only;
	}
}

int siblings_register(int fd, const struct channel **channel)
{
	struct vmshim_endpoint ep;
	struct stat st;
	int domain = sock_int_option(fd, SOL_SOCKET, SO_DOMAIN);

	if (sock_int_option(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1 ||
	    sock_int_option(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP ||
	    (domain != AF_INET && domain != AF_INET6) ||
	    endpoint_of_socket(fd, getsockname, &ep) < 0 || fstat(fd, &st) < 0)
		return EINVAL;
	if (!tcp_socket_here(fd)) {
		/* its addresses and its inode mean nothing here: sock_diag cannot see it */
		log_limited(LOG_SOURCE(LOG_KIND_UID, st.st_uid), LOG_WARNING,
			    "listener on TCP port %u of uid %u refused: it is in another network "
			    "namespace", ep.port, (unsigned)st.st_uid);
		return EPERM;
	}
	if (endpoint_is_loopback(&ep) || !exposed(ep.port))
		return EPERM;

	struct registration *r;
	uint64_t inode = st.st_ino;
	HASH_FIND(hh, registrations, &inode, sizeof(inode), r);
	if (r && !r->bridged && !memcmp(&r->bound, &ep, sizeof(ep)) && r->uid == st.st_uid) {
		*channel = r->channel; /* asked again for its channel */
		return 0;
	}
	if (r) /* a number reused since by another listener, or one the bridge served so far */
		forget_registration(r);
	if (!(r = new_registration(inode, &ep, st.st_uid, false)))
		return ENOMEM;
	*channel = r->channel;
	set_families(r, domain, sock_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY) == 1);
	log_info("listener on TCP port %u registered (%s%s%s)", r->port, r->v4 ? "IPv4" : "",
		 r->v4 && r->v6 ? ", " : "", r->v6 ? "IPv6" : "");
	registrations_unsaved = true;
	siblings_sync();
	return 0;
}

static bool same_address(const struct vmshim_endpoint *a, const struct vmshim_endpoint *b)
{
	return a->family == b->family &&
	       memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

/* The listener TCP would give a connection to `to`: the one bound to that address, else
 * one bound to the wildcard that takes the family. Two can share an address and port only
 * as one user's SO_REUSEPORT group, where the kernel picks among them anyway. */
static const struct registration *registration_at(const struct vmshim_endpoint *to, bool v6)
{
	const struct registration *r, *tmp, *wildcard = NULL;

	HASH_ITER(hh, registrations, r, tmp) {
		if (r->port != to->port || !(v6 ? r->v6 : r->v4))
			continue;
		if (!is_wildcard(&r->bound) && same_address(&r->bound, to))
			return r;
		if (is_wildcard(&r->bound) && !wildcard)
			wildcard = r;
	}
	return wildcard;
}

/* Whether `to` is an address of this guest: one it owns (what its peers route to it, which
 * no interface need have) or one of its interfaces has (as TCP would take). A sibling may
 * name any address in its DIALLED. */
static bool address_is_ours(const struct vmshim_endpoint *to)
{
	struct policy_prefix one = {.family = to->family, .len = to->family == AF_INET ? 32 : 128};
	const struct policy_prefix *owned;
	size_t n_owned;
	struct ifaddrs *all;
	bool ours = false;

	if (endpoint_is_loopback(to))
		return false;
	memcpy(one.addr, to->addr, sizeof(one.addr));
	owned = announce_owned(&n_owned);
	for (size_t i = 0; i < n_owned; i++)
		if (policy_prefix_contains(&owned[i], &one))
			return true;
	if (getifaddrs(&all) < 0)
		return false;
	for (const struct ifaddrs *i = all; i && !ours; i = i->ifa_next) {
		struct vmshim_endpoint ep;
		if (i->ifa_addr && endpoint_from_sockaddr(i->ifa_addr,
							  i->ifa_addr->sa_family == AF_INET
								  ? sizeof(struct sockaddr_in)
								  : sizeof(struct sockaddr_in6),
							  &ep) == 0)
			ours = same_address(&ep, to);
	}
	freeifaddrs(all);
	return ours;
}

/* Whether the kernel still has r's listener. A doorbell at a port whose listener is gone
 * would ring whatever listens there now, a program without the shim perhaps, or another
 * user's: never at one that cannot be checked (logged as a warning). */
static bool still_listening(const struct registration *r)
{
	struct sockdiag_listener *live;
	size_t n;

	/* One exact lookup answers for most; the list only when it does not (a SO_REUSEPORT
	 * group, or a kernel that cannot look it up). */
	if (sockdiag_listens_at(&r->bound, r->inode))
		return true;
	if (sockdiag_listeners(&live, &n) < 0)
		return false;
	bool there = sockdiag_has(live, n, r->inode);
	free(live);
	return there;
}

/* The address that stands for peer i (or this guest) in one family (zero if it has none). */
static void show_address(int i, bool v6, struct vmshim_endpoint *ep)
{
	ep->family = v6 ? AF_INET6 : AF_INET;
	peers_address(i, v6, ep->addr);
}

/* The loopback address that reaches a listener. */
static socklen_t doorbell_target(const struct registration *r, bool v6,
				 struct sockaddr_storage *target)
{
	struct vmshim_endpoint t = {.family = v6 ? AF_INET6 : AF_INET, .port = r->port};

	if (!is_wildcard(&r->bound))
		memcpy(t.addr, r->bound.addr, sizeof(t.addr));
	else if (v6)
		t.addr[15] = 1;
	else
		inet_pton(AF_INET, "127.0.0.1", t.addr);
	return endpoint_to_sockaddr(&t, t.family, target);
}

/* The peer a sibling connection comes from, or -1 (logged, counted) when it may not
 * come: not a peer of the policy, or standing for a privileged TCP port. */
static int sibling_of(const struct sockaddr_vm *from, uint16_t *src_port)
{
	int peer = peers_identify(from, src_port);

	if (peer >= 0 && *src_port < VMSHIM_TCP_PRIVILEGED_PORTS) {
		helperd.counters.sibling_refused++;
		log_limited(LOG_SOURCE(LOG_KIND_CID, from->svm_cid), LOG_WARNING,
			    "vsock connection from %s port %u refused: it stands for privileged TCP "
			    "port %u, which any user of that guest could bind",
			    helperd.policy->peers[peer].name, from->svm_port, *src_port);
		return -1;
	}
	if (peer < 0) {
		helperd.counters.rejected_cids++;
		log_warn("vsock connection from cid %u port %u refused: not a peer of the policy",
			 from->svm_cid, from->svm_port);
	}
	return peer;
}

/* A sibling connection, once its DIALLED is read: rings the listener TCP would give it to. */
static void ring(int vs, const struct arrival *a)
{
	uint16_t src_port;
	int peer = sibling_of(&a->from, &src_port); /* again: the policy may have changed */
	const struct vmshim_endpoint *to = &a->dialled;
	struct vsock_listener *l;

	HASH_FIND(hh, listeners, &a->vport, sizeof(a->vport), l);
	if (peer >= 0 && !l)
		log_info("connection to vsock port %u closed: no longer served", a->vport);
	if (peer < 0 || !l) {
		close(vs);
		return;
	}
	const char *name = helperd.policy->peers[peer].name;
	if (to->port != l->tcp_port || (to->family == AF_INET6) != l->v6) {
		helperd.counters.bad_messages++;
		log_limited(LOG_SOURCE(LOG_KIND_CID, a->from.svm_cid), LOG_WARNING,
			    "connection from %s to vsock port %u closed: its DIALLED names another "
			    "port or family", name, a->vport);
		close(vs);
		return;
	}
	const struct registration *r = registration_at(to, l->v6);
	char host[INET6_ADDRSTRLEN] = "?";
	inet_ntop(to->family, to->addr, host, sizeof(host));
	/* a listener gone is forgotten at the next sweep (not here: that may close l) */
	if (!r || !exposed(to->port) || (is_wildcard(&r->bound) && !address_is_ours(to)) ||
	    !still_listening(r)) {
		helperd.counters.sibling_refused++;
		log_limited(LOG_SOURCE(LOG_KIND_CID, a->from.svm_cid), LOG_INFO,
			    "connection from %s to %s port %u refused: no listener there open to "
			    "siblings", name, host, to->port);
		close(vs);
		return;
	}
	struct sockaddr_storage target;
	struct vmshim_endpoint show_peer;
	socklen_t len = doorbell_target(r, l->v6, &target);
	show_address(peer, l->v6, &show_peer);
	show_peer.port = src_port;
	log_debug("connection from %s port %u to %s port %u", name, src_port, host, to->port);
	if (r->bridged) {
		if (bridge_inbound(vs, &helperd.policy->peers[peer], &target, len, &show_peer, to) == 0)
			helperd.counters.sibling_accepted++;
		return;
	}
	if (doorbell_ring(vs, &helperd.policy->peers[peer], l->vport, r->channel, &target, len,
			  &show_peer, to) == 0)
		helperd.counters.sibling_accepted++;
}

/* A connection to a sibling port, from where accept() or the relay's FROM says. */
static void take_sibling(int vs, const struct arrival *a)
{
	uint16_t src_port;
	int peer = sibling_of(&a->from, &src_port);

	if (peer < 0)
		close(vs);
	else
		preface_dialled(vs, a, peer, ring);
}

static void on_vsock_listener(struct watch *w, uint32_t events)
{
	struct vsock_listener *l = w->owner;

	(void)events;
	for (int accepted = 0; accepted < ACCEPTS_PER_WAKEUP; accepted++) {
		struct sockaddr_vm from;
		socklen_t len = sizeof(from);
		int vs = accept4(w->fd, (struct sockaddr *)&from, &len, SOCK_CLOEXEC);
		if (vs < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("accept on vsock port %u: %m", l->vport);
			return;
		}
		struct arrival a = {.from = from, .vport = l->vport};
		if (policy_from_relay(helperd.policy, from.svm_cid, from.svm_port))
			preface_relayed(vs, &a, take_sibling);
		else
			take_sibling(vs, &a);
	}
}

static struct vsock_listener *open_listener(uint32_t vport, uint16_t tcp_port, bool v6)
{
	struct vsock_listener *l = calloc(1, sizeof(*l));
	int s = l ? vsock_listen(vport, VSOCK_BACKLOG, SOCK_NONBLOCK | SOCK_CLOEXEC) : -1;

	/* The accepting end's buffer, which the connections it accepts inherit: no write
	 * pattern of the connecting end breaks them (vmshim/vsockbuf.h). */
	if (s < 0 || vsock_buffer_set(s, VMSHIM_VSOCK_BUFFER_ACCEPT) < 0) {
		log_err("cannot listen on vsock port %u for TCP port %u: %m", vport, tcp_port);
		goto fail;
	}
	*l = (struct vsock_listener){
		.w = {.fd = s, .on_event = on_vsock_listener, .owner = l},
		.vport = vport,
		.tcp_port = tcp_port,
		.v6 = v6,
	};
	if (loop_add(&l->w, EPOLLIN) < 0)
		goto fail;
	log_info("siblings reach TCP port %u (%s) at vsock port %u", tcp_port, v6 ? "IPv6" : "IPv4",
		 vport);
	return l;
fail:
	if (s >= 0)
		close(s);
	free(l);
	return NULL;
}

static void close_listener(struct vsock_listener *l)
{
	HASH_DEL(listeners, l);
	helperd_mark(CHANGED_SERVED_PORTS);
	log_info("vsock port %u for TCP port %u closed", l->vport, l->tcp_port);
	loop_retire(&l->w);
	close(l->w.fd);
}

static void need(uint16_t tcp_port, bool v6)
{
	uint32_t vport = vmshim_listen_port(helperd_self()->vsock_base, v6, tcp_port);
	struct vsock_listener *l;

	HASH_FIND(hh, listeners, &vport, sizeof(vport), l);
	if (!l && (l = open_listener(vport, tcp_port, v6))) {
		HASH_ADD(hh, listeners, vport, sizeof(l->vport), l);
		helperd_mark(CHANGED_SERVED_PORTS);
	}
	if (l)
		l->needed = true;
}

void siblings_save(void)
{
	struct listener_record *records = calloc(HASH_COUNT(registrations) + 1, sizeof(*records));
	struct registration *r, *tmp;
	size_t n = 0;

	if (!records)
		return;
	HASH_ITER(hh, registrations, r, tmp)
		if (!r->bridged)
			records[n++] = (struct listener_record){
				.inode = r->inode, .port = r->port, .v4 = r->v4, .v6 = r->v6,
				.bound = r->bound, .uid = r->uid};
	if (remember_listeners(records, n) == 0)
		registrations_unsaved = false;
	free(records);
}

void siblings_restore(void)
{
	struct listener_record *records;
	size_t n = recall_listeners(&records);
	struct sockdiag_listener *live;
	size_t n_live;

	if (n && sockdiag_listeners(&live, &n_live) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct registration *r;
			if (!sockdiag_has(live, n_live, records[i].inode) ||
			    !(r = new_registration(records[i].inode, &records[i].bound,
						   records[i].uid, false)))
				continue;
			r->v4 = records[i].v4;
			r->v6 = records[i].v6;
			log_info("listener on TCP port %u taken up again", r->port);
		}
		free(live);
	}
	free(records);
	registrations_unsaved = true;
	siblings_sync();
}

void siblings_served(uint64_t *v4, uint64_t *v6)
{
	const struct vsock_listener *l, *tmp;

	memset(v4, 0, POLICY_PORT_WORDS * sizeof(uint64_t));
	memset(v6, 0, POLICY_PORT_WORDS * sizeof(uint64_t));
	HASH_ITER(hh, listeners, l, tmp)
		(l->v6 ? v6 : v4)[l->tcp_port / 64] |= 1ull << (l->tcp_port % 64);
}

void siblings_sync(void)
{
	struct vsock_listener *l, *ltmp;
	struct registration *r, *rtmp;

	HASH_ITER(hh, listeners, l, ltmp)
		l->needed = false;
	HASH_ITER(hh, registrations, r, rtmp) {
		if (!exposed(r->port))
			continue;
		if (r->v4)
			need(r->port, false);
		if (r->v6)
			need(r->port, true);
	}
	HASH_ITER(hh, listeners, l, ltmp)
		if (!l->needed)
			close_listener(l);
	/* Until a save works, every sync marks it again: so a failed one is tried each tick. */
	if (registrations_unsaved)
		helperd_mark(CHANGED_REGISTRATIONS);
}

/* Guest-wide mode: the listeners of the programs it covers that the policy exposes are
 * offered to siblings without the shim, the bridge taking their connections; never one
 * bound to loopback. A program's listener is found within a sweep (a second). */
static void adopt(const struct sockdiag_listener *live, size_t n)
{
	struct guestwide_cgroups covered;
	bool walked = false; /* the cgroups are walked only for a listener that needs it */

	if (!guestwide_on())
		return;
	for (size_t i = 0; i < n; i++) {
		const struct sockdiag_listener *k = &live[i];
		struct registration *r;
		HASH_FIND(hh, registrations, &k->inode, sizeof(k->inode), r);
		if (r || endpoint_is_loopback(&k->bound) || !exposed(k->bound.port))
			continue;
		if (!walked && guestwide_cgroups(&covered) < 0)
			return;
		walked = true;
		if (!guestwide_cgroups_has(&covered, k->cgroup) ||
		    !(r = new_registration(k->inode, &k->bound, k->uid, true)))
			continue;
		set_families(r, k->bound.family, k->v6only); /* a dual-stack one (Java's): both */
		log_info("listener on TCP port %u of a program without the shim taken up "
			 "(guest-wide mode: the bridge carries its sibling connections)", r->port);
	}
	if (walked)
		guestwide_cgroups_free(&covered);
}

void siblings_sweep(void)
{
	struct sockdiag_listener *live;
	size_t n;
	struct registration *r, *tmp;

	if (!registrations && !guestwide_on())
		return;
	bool known = sockdiag_listeners(&live, &n) == 0; /* else none can be checked */
	HASH_ITER(hh, registrations, r, tmp) {
		if (known && sockdiag_has(live, n, r->inode))
			continue;
		log_info("listener on TCP port %u %s", r->port,
			 known ? "is gone" : "withdrawn: it cannot be checked");
		registrations_unsaved |= !r->bridged;
		forget_registration(r);
	}
	if (known) {
		adopt(live, n);
		free(live);
	}
	siblings_sync();
}

void siblings_shutdown(void)
{
	struct vsock_listener *l, *ltmp;
	struct registration *r, *rtmp;

	HASH_ITER(hh, listeners, l, ltmp)
		close_listener(l);
	HASH_ITER(hh, registrations, r, rtmp)
		forget_registration(r);
}
