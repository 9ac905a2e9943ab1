/* Guest-wide mode (guestwide.h): the programs of guestwide.bpf.c, loaded through their
 * bpftool skeleton and attached to one cgroup; the mirror of the table they read; the
 * bridge's listener. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"
#include "guestwide.h"
#include "guestwide_maps.h" /* before the skeleton, which names its structs */
#include "guestwide.skel.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"

#define ACCEPTS_PER_WAKE 16 /* so that a crowd at the bridge cannot hold the loop */

/* One of the bridge's listeners, at `at`. */
struct bridge_listener {
	struct watch w; /* first: its watch is it; fd -1 while closed; no owner (static) */
	struct vmshim_endpoint at;
};

static struct {
	struct guestwide_bpf *skel;
	struct bpf_link *links[8];
	int cgroup;
	char *cgroup_path;
	struct bridge_listener bridge4, bridge6; /* bridge6: none where the guest has no ::1 */
	void *table; /* the last table published, for the bridge's routes */
	uint32_t table_size;
} gw = {.cgroup = -1, .bridge4 = {.w = {.fd = -1}}, .bridge6 = {.w = {.fd = -1}}};

bool guestwide_on(void)
{
	return gw.skel != NULL;
}

static void on_bridge_listener(struct watch *w, uint32_t events)
{
	const struct bridge_listener *l = (const struct bridge_listener *)w;

	(void)events;
	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		struct sockaddr_storage from;
		struct vmshim_endpoint from_ep;
		socklen_t len = sizeof(from);
		int fd = accept4(w->fd, (struct sockaddr *)&from, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (endpoint_from_sockaddr((struct sockaddr *)&from, len, &from_ep) < 0) {
			close(fd);
			continue;
		}
		bridge_take(fd, &from_ep, &l->at, bpf_map__fd(gw.skel->maps.by_port));
	}
}

/* A listener of the bridge's at addr (of family), on a port the kernel picks; -1 if it
 * cannot be had. */
static int open_bridge(struct bridge_listener *l, int family, const char *addr)
{
	struct sockaddr_storage at = {.ss_family = (sa_family_t)family};
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	inet_pton(family, addr,
		  family == AF_INET ? (void *)&((struct sockaddr_in *)&at)->sin_addr
				    : (void *)&((struct sockaddr_in6 *)&at)->sin6_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&at, len) < 0 || listen(fd, SOMAXCONN) < 0 ||
	    getsockname(fd, (struct sockaddr *)&at, &len) < 0 ||
	    endpoint_from_sockaddr((struct sockaddr *)&at, len, &l->at) < 0)
		goto fail;
	l->w = (struct watch){.fd = fd, .on_event = on_bridge_listener};
	if (loop_add(&l->w, EPOLLIN) < 0) {
		l->w.fd = -1;
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

static void close_bridge(struct bridge_listener *l)
{
	if (l->w.fd < 0)
		return;
	loop_retire(&l->w);
	close(l->w.fd);
	l->w.fd = -1;
}

int guestwide_start(const char *cgroup_path)
{
	gw.cgroup = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	gw.cgroup_path = strdup(cgroup_path);
	if (gw.cgroup < 0 || !gw.cgroup_path) {
		log_err("guest-wide mode: cannot open the cgroup %s: %m", cgroup_path);
		return -1;
	}
	gw.skel = guestwide_bpf__open_and_load();
	if (!gw.skel) {
		log_err("guest-wide mode: the kernel refused its programs: %m");
		guestwide_stop();
		return -1;
	}
	if (open_bridge(&gw.bridge4, AF_INET, GUESTWIDE_BRIDGE_ADDR) < 0) {
		log_err("guest-wide mode: cannot open the bridge at %s: %m", GUESTWIDE_BRIDGE_ADDR);
		guestwide_stop();
		return -1;
	}
	if (open_bridge(&gw.bridge6, AF_INET6, GUESTWIDE_BRIDGE_ADDR6) < 0)
		log_warn("guest-wide mode: cannot open the bridge at %s (IPv6 connects stay TCP): %m",
			 GUESTWIDE_BRIDGE_ADDR6);
	struct gw_conf *conf = &gw.skel->bss->conf;
	socklen_t len = sizeof(conf->netns_cookie);
	if (getsockopt(gw.bridge4.w.fd, SOL_SOCKET, SO_NETNS_COOKIE, &conf->netns_cookie, &len) < 0) {
		log_err("guest-wide mode: this kernel has no network namespace cookie: %m");
		guestwide_stop();
		return -1;
	}
	conf->helperd_tgid = (uint32_t)getpid();
	memcpy(&conf->bridge_addr, gw.bridge4.at.addr, 4);
	conf->bridge_port = htons(gw.bridge4.at.port);
	conf->bridge6_port = gw.bridge6.w.fd >= 0 ? htons(gw.bridge6.at.port) : 0;
	inet_pton(AF_INET, GUESTWIDE_INBOUND_ADDR, &conf->inbound_addr);
	struct bpf_program *progs[] = {gw.skel->progs.gw_connect4,     gw.skel->progs.gw_connect6,
				       gw.skel->progs.gw_sockops,       gw.skel->progs.gw_getpeername4,
				       gw.skel->progs.gw_getsockname4,  gw.skel->progs.gw_getpeername6,
				       gw.skel->progs.gw_getsockname6,  gw.skel->progs.gw_setsockopt};
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		gw.links[i] = bpf_program__attach_cgroup(progs[i], gw.cgroup);
		if (!gw.links[i]) {
			log_err("guest-wide mode: cannot attach %s to %s: %m",
				bpf_program__name(progs[i]), cgroup_path);
			guestwide_stop();
			return -1;
		}
	}
	char at6[64] = "";
	if (gw.bridge6.w.fd >= 0)
		snprintf(at6, sizeof(at6), " and [%s]:%u", GUESTWIDE_BRIDGE_ADDR6, gw.bridge6.at.port);
	log_info("guest-wide mode: TCP connects to siblings from cgroup %s go through the "
		 "bridge at %s:%u%s", cgroup_path, GUESTWIDE_BRIDGE_ADDR, gw.bridge4.at.port, at6);
	return 0;
}

/* Fills copy `gen` of the mirror from the table; false if the table does not fit. */
static bool fill_mirror(const struct vmshim_table_body *b, uint32_t size, uint32_t gen)
{
	struct gw_mirror *m = &gw.skel->bss->mirror[gen];
	const uint8_t *base = (const uint8_t *)b;
	const struct vmshim_table_peer *peers = (const void *)(base + b->peers_off);
	const struct vmshim_range4 *ranges = (const void *)(base + b->ranges4_off);
	const struct vmshim_range6 *ranges6 = (const void *)(base + b->ranges6_off);
	const uint64_t *sets = (const void *)(base + b->portsets_off);

	if (b->n_ranges4 > GW_MAX_RANGES || b->n_ranges6 > GW_MAX_RANGES ||
	    b->n_peers > GW_MAX_PEERS || (b->self != VMSHIM_NO_SELF && b->self >= b->n_peers) ||
	    b->n_portsets > GW_MAX_PORTSETS || b->peers_off > size || b->ranges4_off > size ||
	    b->ranges6_off > size || b->portsets_off > size)
		return false;
	for (uint32_t i = 0; i < b->n_portsets; i++) {
		uint32_t key = gen * GW_MAX_PORTSETS + i;
		if (bpf_map_update_elem(bpf_map__fd(gw.skel->maps.portsets), &key,
					sets + (size_t)i * VMSHIM_PORTSET_WORDS, BPF_ANY) < 0)
			return false;
	}
	m->n_ranges = b->n_ranges4;
	for (uint32_t i = 0; i < b->n_ranges4; i++)
		m->ranges[i] = (struct gw_range){ranges[i].first, ranges[i].last, ranges[i].peer};
	m->n_ranges6 = b->n_ranges6;
	for (uint32_t i = 0; i < b->n_ranges6; i++)
		m->ranges6[i] = (struct gw_range6){ranges6[i].first_hi, ranges6[i].first_lo,
						   ranges6[i].last_hi, ranges6[i].last_lo,
						   ranges6[i].peer, 0};
	for (uint32_t i = 0; i < b->n_peers; i++)
		m->peers[i] = (struct gw_peer){.portset = peers[i].portset,
					       .portset6 = peers[i].portset6};
	/* no self: nothing is a sibling (vmshim_table_route) */
	m->self = b->self;
	m->self_addr = 0;
	memset(m->self_addr6, 0, sizeof(m->self_addr6));
	if (b->self == VMSHIM_NO_SELF) {
		m->n_ranges = m->n_ranges6 = 0;
		return true;
	}
	if (peers[b->self].flags & VMSHIM_PEER_HAS_ADDR4)
		memcpy(&m->self_addr, peers[b->self].addr4, 4);
	if (peers[b->self].flags & VMSHIM_PEER_HAS_ADDR6)
		memcpy(m->self_addr6, peers[b->self].addr6, 16);
	return true;
}

void guestwide_mirror(const struct vmshim_table_body *body, uint32_t size)
{
	if (!gw.skel)
		return;
	struct gw_conf *conf = &gw.skel->bss->conf;
	uint32_t next = conf->gen + 1;
	void *copy = malloc(size);
	if (!copy || !fill_mirror(body, size, next & 1)) {
		/* the copy in force stays: better an old table than none */
		log_err("guest-wide mode: the table does not fit the kernel's mirror (%u IPv4 and "
			"%u IPv6 ranges, %u peers): keeping the last one", body->n_ranges4,
			body->n_ranges6, body->n_peers);
		free(copy);
		return;
	}
	memcpy(copy, body, size);
	free(gw.table);
	gw.table = copy;
	gw.table_size = size;
	__atomic_store_n(&conf->gen, next, __ATOMIC_RELEASE);
	__atomic_store_n(&conf->on, 1, __ATOMIC_RELEASE);
}

enum vmshim_verdict guestwide_route(const struct vmshim_endpoint *dest, struct vmshim_route *route)
{
	if (!gw.table)
		return VMSHIM_DIRECT;
	return vmshim_table_route(gw.table, gw.table_size, dest->family, dest->addr, dest->port,
				  route);
}

void guestwide_stop(void)
{
	for (size_t i = 0; i < sizeof(gw.links) / sizeof(gw.links[0]); i++) {
		bpf_link__destroy(gw.links[i]);
		gw.links[i] = NULL;
	}
	close_bridge(&gw.bridge4);
	close_bridge(&gw.bridge6);
	guestwide_bpf__destroy(gw.skel);
	gw.skel = NULL;
	if (gw.cgroup >= 0)
		close(gw.cgroup);
	gw.cgroup = -1;
	free(gw.table);
	gw.table = NULL;
	free(gw.cgroup_path);
	gw.cgroup_path = NULL;
}

int guestwide_inbound_names(uint16_t port, bool v6, const struct vmshim_endpoint *peer,
			    const struct vmshim_endpoint *local)
{
	uint32_t key = GW_PORT_KEY(port, v6);
	struct gw_inbound in = {.peer_port = htons(peer->port), .v6 = v6};
	int family = v6 ? AF_INET6 : AF_INET;

	if (!gw.skel || peer->family != family || local->family != family)
		return -1;
	memcpy(v6 ? (void *)in.peer_addr6 : &in.peer_addr, peer->addr, v6 ? 16 : 4);
	memcpy(v6 ? (void *)in.local_addr6 : &in.local_addr, local->addr, v6 ? 16 : 4);
	return bpf_map_update_elem(bpf_map__fd(gw.skel->maps.inbound), &key, &in, BPF_ANY);
}

void guestwide_inbound_forget(uint16_t port, bool v6)
{
	uint32_t key = GW_PORT_KEY(port, v6);

	if (gw.skel)
		bpf_map_delete_elem(bpf_map__fd(gw.skel->maps.inbound), &key);
}

void guestwide_bridge_full(bool full)
{
	if (gw.skel)
		gw.skel->bss->conf.bridge_full = full;
}

void guestwide_user_full(uint32_t uid, bool full)
{
	uint8_t one = 1;
	int map = gw.skel ? bpf_map__fd(gw.skel->maps.full_users) : -1;

	if (map < 0)
		return;
	if (!full)
		bpf_map_delete_elem(map, &uid);
	else if (bpf_map_update_elem(map, &uid, &one, BPF_ANY) < 0)
		log_warn("guest-wide mode: cannot keep user %u's connects off the full bridge: %m",
			 uid);
}

unsigned long guestwide_no_room(void)
{
	return gw.skel ? (unsigned long)gw.skel->bss->no_room : 0;
}

/* nftw's callback has no argument of its own: the walk in progress. */
static struct guestwide_cgroups *walking;

static int add_cgroup(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type != FTW_D)
		return 0;
	if (walking->n == walking->cap) {
		size_t cap = walking->cap ? 2 * walking->cap : 16;
		uint64_t *ids = realloc(walking->ids, cap * sizeof(*ids));
		if (!ids)
			return -1;
		walking->ids = ids;
		walking->cap = cap;
	}
	walking->ids[walking->n++] = st->st_ino; /* a cgroup's id is its directory's inode */
	return 0;
}

int guestwide_cgroups(struct guestwide_cgroups *out)
{
	struct stat st;

	*out = (struct guestwide_cgroups){0};
	if (!gw.cgroup_path || fstat(gw.cgroup, &st) < 0)
		return -1;
	if (st.st_ino == 1) { /* the root cgroup */
		out->all = true;
		return 0;
	}
	walking = out;
	int rc = nftw(gw.cgroup_path, add_cgroup, 16, FTW_PHYS);
	walking = NULL;
	if (rc != 0) {
		guestwide_cgroups_free(out);
		return -1;
	}
	return 0;
}

bool guestwide_cgroups_has(const struct guestwide_cgroups *c, uint64_t id)
{
	if (c->all)
		return true;
	for (size_t i = 0; i < c->n; i++)
		if (c->ids[i] == id)
			return true;
	return false;
}

void guestwide_cgroups_free(struct guestwide_cgroups *c)
{
	free(c->ids);
	*c = (struct guestwide_cgroups){0};
}
