#include <arpa/inet.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <uthash.h>
#include <unistd.h>

#include "doorbell.h"
#include "helperd.h"
#include "vmshim/log.h"
#include "peers.h"
#include "vmshim/loop.h"
#include "relayed.h"
#include "remember.h"
#include "siblings.h"
#include "tcpsock.h"
#include "sockdiag.h"
#include "vmshim/endpoint.h"
#include "vmshim/ports.h"

#define VSOCK_BACKLOG 128

/* A TCP listener some shim registered. helperd keeps no descriptor of it. */
struct registration {
	uint64_t inode; /* key: the listening socket */
	uint16_t port;
	bool v4, v6; /* which connections it takes */
	struct vmshim_endpoint bound; /* all-zero address: the wildcard */
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

int siblings_register(int fd)
{
	struct vmshim_endpoint ep;
	struct stat st;
	int domain = sock_int_option(fd, SOL_SOCKET, SO_DOMAIN);

	if (sock_int_option(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1 ||
	    sock_int_option(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP ||
	    (domain != AF_INET && domain != AF_INET6) ||
	    endpoint_of_socket(fd, getsockname, &ep) < 0 || fstat(fd, &st) < 0)
		return EINVAL;
	if (endpoint_is_loopback(&ep) || !exposed(ep.port))
		return EPERM;

	struct registration *r;
	uint64_t inode = st.st_ino;
	HASH_FIND(hh, registrations, &inode, sizeof(inode), r);
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return ENOMEM;
		r->inode = inode;
		HASH_ADD(hh, registrations, inode, sizeof(r->inode), r);
	}
	r->port = ep.port;
	r->bound = ep;
	if (domain == AF_INET || ep.family == AF_INET) { /* IPv4, or bound to a mapped address */
		r->v4 = true;
		r->v6 = false;
	} else {
		r->v6 = true;
		r->v4 = is_wildcard(&ep) && sock_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY) == 0;
	}
	log_info("listener on TCP port %u registered (%s%s%s)", r->port, r->v4 ? "IPv4" : "",
		 r->v4 && r->v6 ? ", " : "", r->v6 ? "IPv6" : "");
	registrations_unsaved = true;
	siblings_sync();
	return 0;
}

static const struct registration *registration_for(uint16_t port, bool v6)
{
	const struct registration *r, *tmp;

	HASH_ITER(hh, registrations, r, tmp)
		if (r->port == port && (v6 ? r->v6 : r->v4))
			return r;
	return NULL;
}

/* Whether the kernel still has r's listener. A doorbell at a port whose listener is gone
 * would ring whatever listens there now, a program without the shim perhaps, or another
 * user's: never at one that cannot be checked (logged as a warning). */
static bool still_listening(const struct registration *r)
{
	uint64_t *live;
	size_t n;

	if (sockdiag_listening(&live, &n) < 0)
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

/* The loopback address that reaches a listener, and what its accepted sockets show. */
static socklen_t doorbell_target(const struct registration *r, bool v6,
				 struct sockaddr_storage *target, struct vmshim_endpoint *local)
{
	struct vmshim_endpoint t = {.family = v6 ? AF_INET6 : AF_INET, .port = r->port};

	if (is_wildcard(&r->bound)) {
		show_address(helperd.self, v6, local);
		if (v6)
			t.addr[15] = 1;
		else
			inet_pton(AF_INET, "127.0.0.1", t.addr);
	} else {
		*local = r->bound;
		memcpy(t.addr, r->bound.addr, sizeof(t.addr));
	}
	local->port = r->port;
	return endpoint_to_sockaddr(&t, t.family, target);
}

static void accept_sibling(struct vsock_listener *l, int vs, const struct sockaddr_vm *from)
{
	uint16_t src_port;
	int peer = peers_identify(from, &src_port);

	if (peer >= 0 && src_port < VMSHIM_TCP_PRIVILEGED_PORTS) {
		helperd.counters.sibling_refused++;
		log_limited(LOG_SOURCE(LOG_KIND_CID, from->svm_cid), LOG_WARNING,
			    "vsock connection from %s port %u refused: it stands for privileged TCP "
			    "port %u, which any user of that guest could bind",
			    helperd.policy->peers[peer].name, from->svm_port, src_port);
		close(vs);
		return;
	}
	if (peer < 0) {
		helperd.counters.rejected_cids++;
		log_warn("vsock connection from cid %u port %u refused: not a peer of the policy",
			 from->svm_cid, from->svm_port);
		close(vs);
		return;
	}
	const struct registration *r = registration_for(l->tcp_port, l->v6);
	/* a listener gone is forgotten at the next sweep (not here: that may close l) */
	if (!r || !exposed(l->tcp_port) || !still_listening(r)) {
		helperd.counters.sibling_refused++;
		log_info("connection from %s to port %u refused: no listener open to siblings",
			 helperd.policy->peers[peer].name, l->tcp_port);
		close(vs);
		return;
	}
	struct sockaddr_storage target;
	struct vmshim_endpoint show_peer, show_local;
	socklen_t len = doorbell_target(r, l->v6, &target, &show_local);
	show_address(peer, l->v6, &show_peer);
	show_peer.port = src_port;
	log_debug("connection from %s port %u to port %u", helperd.policy->peers[peer].name,
		  src_port, l->tcp_port);
	if (doorbell_ring(vs, &helperd.policy->peers[peer], l->vport, &target, len, &show_peer,
			  &show_local) == 0)
		helperd.counters.sibling_accepted++;
}

/* A connection through the relay, once FROM said whose it is. */
static void on_relayed(int vs, const struct sockaddr_vm *from, uint32_t vport)
{
	struct vsock_listener *l;

	HASH_FIND(hh, listeners, &vport, sizeof(vport), l);
	if (l) {
		accept_sibling(l, vs, from);
	} else {
		log_info("connection through the relay to vsock port %u closed: no longer served",
			 vport);
		close(vs);
	}
}

static void on_vsock_listener(struct watch *w, uint32_t events)
{
	struct vsock_listener *l = w->owner;

	(void)events;
	for (;;) {
		struct sockaddr_vm from;
		socklen_t len = sizeof(from);
		int vs = accept4(w->fd, (struct sockaddr *)&from, &len, SOCK_CLOEXEC);
		if (vs < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("accept on vsock port %u: %m", l->vport);
			return;
		}
		if (policy_from_relay(helperd.policy, from.svm_cid, from.svm_port))
			relayed_start(vs, on_relayed, l->vport);
		else
			accept_sibling(l, vs, &from);
	}
}

static struct vsock_listener *open_listener(uint32_t vport, uint16_t tcp_port, bool v6)
{
	struct sockaddr_vm svm = {
		.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = vport};
	struct vsock_listener *l = calloc(1, sizeof(*l));
	int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (!l || s < 0 || bind(s, (struct sockaddr *)&svm, sizeof(svm)) < 0 ||
	    listen(s, VSOCK_BACKLOG) < 0) {
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
		records[n++] = (struct listener_record){
			.inode = r->inode, .port = r->port, .v4 = r->v4, .v6 = r->v6,
			.bound = r->bound};
	if (remember_listeners(records, n) == 0)
		registrations_unsaved = false;
	free(records);
}

void siblings_restore(void)
{
	struct listener_record *records;
	size_t n = recall_listeners(&records);
	uint64_t *live;
	size_t n_live;

	if (n && sockdiag_listening(&live, &n_live) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct registration *r;
			if (!sockdiag_has(live, n_live, records[i].inode) ||
			    !(r = calloc(1, sizeof(*r))))
				continue;
			*r = (struct registration){
				.inode = records[i].inode, .port = records[i].port,
				.v4 = records[i].v4, .v6 = records[i].v6, .bound = records[i].bound};
			HASH_ADD(hh, registrations, inode, sizeof(r->inode), r);
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

void siblings_sweep(void)
{
	uint64_t *live;
	size_t n;
	struct registration *r, *tmp;

	if (!registrations)
		return;
	bool known = sockdiag_listening(&live, &n) == 0; /* else none can be checked */
	HASH_ITER(hh, registrations, r, tmp) {
		if (known && sockdiag_has(live, n, r->inode))
			continue;
		log_info("listener on TCP port %u %s", r->port,
			 known ? "is gone" : "withdrawn: it cannot be checked");
		HASH_DEL(registrations, r);
		free(r);
		registrations_unsaved = true;
	}
	if (known)
		free(live);
	siblings_sync();
}

void siblings_shutdown(void)
{
	struct vsock_listener *l, *ltmp;
	struct registration *r, *rtmp;

	HASH_ITER(hh, listeners, l, ltmp)
		close_listener(l);
	HASH_ITER(hh, registrations, r, rtmp) {
		HASH_DEL(registrations, r);
		free(r);
	}
}
