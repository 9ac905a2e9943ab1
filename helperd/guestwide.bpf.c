/* The kernel side of guest-wide mode (guestwide.h): programs attached to a cgroup that steer
 * its programs' TCP connects to siblings into helperd's bridge, without LD_PRELOAD.
 *
 * A cgroup connect4 program may rewrite a connect's address and port but not its family, so
 * a connect to a sibling (an address of a peer's range and a port that peer serves, as in
 * the table the shims read) is sent to the bridge, a TCP listener of helperd's on loopback,
 * and the original destination is kept by the socket's cookie (`redirected`). When the
 * SYN leaves, the sock_ops program files it again by the local port the connect took
 * (`by_port`): the bridge finds the destination from the port its accepted connection comes
 * from, and checks the cookie against the kernel's (sock_diag) before it trusts it. The
 * other way, the bridge connects to a listener of a program without the shim from its own
 * address and files the sibling by its local port (`inbound`). The getpeername4 and
 * getsockname4 programs show each program the names TCP would have given. Their `6` twins
 * do the same for IPv4 reached through dual-stack IPv6 sockets (IPv4-mapped addresses),
 * and for IPv6 itself, whose connects go to the bridge's second listener, at ::1.
 *
 * The table is mirrored here twice over (`gen` says which copy is whole), so that a connect
 * never sees half of an update. */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "guestwide_maps.h"
#include "vmshim/ownpath.h"

#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define LOOPBACK_NET 0x7f000000u /* 127.0.0.0/8, host order */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * GW_MAX_PORTSETS);
	__type(key, __u32);
	__type(value, struct gw_portset);
} portsets SEC(".maps");

/* What a connect or a connection is filed by, until the kernel needs the room. */
#define FILED(name, key_type, value_type)                                                          \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);                                               \
		__uint(max_entries, GW_MAX_REDIRECTED);                                            \
		__type(key, key_type);                                                             \
		__type(value, value_type);                                                         \
	} name SEC(".maps")

FILED(redirected, __u64, struct gw_orig); /* by socket cookie */
FILED(by_port, __u32, struct gw_orig);    /* by the connect's local port and family */
FILED(inbound, __u32, struct gw_inbound); /* by the bridge's local port and family */

/* Sockets the shim took care of itself (vmshim/ownpath.h). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} own_path SEC(".maps");

/* Users whose share of the bridge is full (helperd writes it): their connects stay TCP. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_MAX_FULL_USERS);
	__type(key, __u32);
	__type(value, __u8);
} full_users SEC(".maps");

/* Written by helperd through the skeleton's mapping. */
struct gw_conf conf;
struct gw_mirror mirror[2];

/* Read by helperd: connects to siblings left on TCP for want of room in the bridge. */
__u64 no_room;

/* a < b, for addresses as (high, low) halves: IPv6's, or IPv4 in high */
static __always_inline int before(__u64 a_hi, __u64 a_lo, __u64 b_hi, __u64 b_lo)
{
	return a_hi < b_hi || (a_hi == b_hi && a_lo < b_lo);
}

/* The peer whose range holds the address (hi, lo: IPv6's halves in host order, or with v6
 * 0 IPv4 in hi), or -1: each family's ranges are sorted and disjoint. */
static __always_inline int find_peer(const struct gw_mirror *m, int v6, __u64 hi, __u64 lo)
{
	__u32 first = 0, end = v6 ? m->n_ranges6 : m->n_ranges;

	if (end > GW_MAX_RANGES)
		return -1;
	for (int i = 0; i < GW_SEARCH_STEPS && first < end; i++) {
		__u32 mid = (first + end) / 2;
		/* the compiler knows mid < GW_MAX_RANGES, the verifier only from the mask */
		asm volatile("" : "+r"(mid));
		mid &= GW_MAX_RANGES - 1;
		__u64 first_hi, first_lo = 0, last_hi, last_lo = 0;
		__u32 peer;
		if (v6) {
			const struct gw_range6 *r = &m->ranges6[mid];
			first_hi = r->first_hi, first_lo = r->first_lo;
			last_hi = r->last_hi, last_lo = r->last_lo;
			peer = r->peer;
		} else {
			const struct gw_range *r = &m->ranges[mid];
			first_hi = r->first, last_hi = r->last;
			peer = r->peer;
		}
		if (before(hi, lo, first_hi, first_lo))
			end = mid;
		else if (before(last_hi, last_lo, hi, lo))
			first = mid + 1;
		else
			return (int)peer;
	}
	return -1;
}

/* Whether the peer serves port (host order) to IPv4, or with v6 to IPv6. */
static __always_inline int serves(__u32 gen, const struct gw_peer *p, int v6, __u16 port)
{
	__u32 portset = v6 ? p->portset6 : p->portset;
	__u32 key = gen * GW_MAX_PORTSETS + portset;
	const struct gw_portset *set;

	if (portset >= GW_MAX_PORTSETS)
		return 0;
	__u32 word = port / 64;

	set = bpf_map_lookup_elem(&portsets, &key);
	asm volatile("" : "+r"(word)); /* the verifier must see the mask */
	return set && (set->bits[word & (GW_PORT_WORDS - 1)] >> (port % 64)) & 1;
}

/* Whether a connect to a sibling goes to the bridge: the connect's own kind and whose it
 * is. */
static __always_inline int may_steer(struct bpf_sock_addr *ctx)
{
	if (!conf.on || ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP ||
	    bpf_get_netns_cookie(ctx) != conf.netns_cookie)
		return 0; /* a container of its own namespace has no bridge: TCP */
	if (bpf_get_current_pid_tgid() >> 32 == conf.helperd_tgid)
		return 0; /* the bridge's own way out, over TCP */
	if (ctx->sk && bpf_sk_storage_get(&own_path, ctx->sk, 0, 0))
		return 0; /* the shim's fallback: it tried vsock already */
	return 1;
}

/* Files o, a connect to peer's port (host order), by its socket's cookie if the peer
 * serves the port that way and the bridge has room for its user: 1, or 0 (TCP). */
static __always_inline int file_connect(struct bpf_sock_addr *ctx, __u32 gen, int peer,
					__u16 port, struct gw_orig *o)
{
	const struct gw_mirror *m = &mirror[gen];

	if (peer < 0 || peer >= GW_MAX_PEERS || peer == (int)m->self ||
	    !serves(gen, &m->peers[peer], o->v6, port))
		return 0;
	o->uid = (__u32)bpf_get_current_uid_gid();
	if (conf.bridge_full || bpf_map_lookup_elem(&full_users, &o->uid)) {
		__sync_fetch_and_add(&no_room, 1);
		return 0; /* as without the mode, rather than crowd out other users */
	}
	o->cookie = bpf_get_socket_cookie(ctx);
	return bpf_map_update_elem(&redirected, &o->cookie, o, BPF_ANY) == 0; /* else TCP */
}

/* Whether a connect to addr:port (IPv4, network order) goes to the bridge; if so, files
 * its original destination. */
static __always_inline int steer4(struct bpf_sock_addr *ctx, __u32 addr_n, __u32 port_n)
{
	__u32 gen = conf.gen & 1;
	const struct gw_mirror *m = &mirror[gen];
	struct gw_orig o = {.addr = addr_n, .port = port_n, .self_addr = m->self_addr};

	return may_steer(ctx) &&
	       file_connect(ctx, gen, find_peer(m, 0, bpf_ntohl(addr_n), 0), bpf_ntohs((__u16)port_n),
			    &o);
}

SEC("cgroup/connect4")
int gw_connect4(struct bpf_sock_addr *ctx)
{
	if (steer4(ctx, ctx->user_ip4, ctx->user_port)) {
		ctx->user_ip4 = conf.bridge_addr;
		ctx->user_port = conf.bridge_port;
	}
	return 1;
}

/* An IPv4-mapped address (::ffff:a.b.c.d) on an IPv6 socket: a dual-stack socket's way to
 * IPv4, Java's by default. Its 32 bits of IPv4, or 0 for any other address. */
static __always_inline __u32 mapped_ip4(const struct bpf_sock_addr *ctx)
{
	if (ctx->user_ip6[0] || ctx->user_ip6[1] || ctx->user_ip6[2] != bpf_htonl(0xffff))
		return 0;
	return ctx->user_ip6[3];
}

/* The connect's IPv6 destination, as network-order words. */
static __always_inline void user_ip6(const struct bpf_sock_addr *ctx, __u32 addr[4])
{
	addr[0] = ctx->user_ip6[0];
	addr[1] = ctx->user_ip6[1];
	addr[2] = ctx->user_ip6[2];
	addr[3] = ctx->user_ip6[3];
}

/* steer4's twin for an IPv6 destination: to the bridge's listener at ::1, if it has one. */
static __always_inline int steer6(struct bpf_sock_addr *ctx)
{
	__u32 gen = conf.gen & 1;
	const struct gw_mirror *m = &mirror[gen];
	struct gw_orig o = {.port = ctx->user_port, .v6 = 1};

	if (!conf.bridge6_port || !may_steer(ctx))
		return 0;
	user_ip6(ctx, o.addr6);
	__builtin_memcpy(o.self_addr6, m->self_addr6, sizeof(o.self_addr6));
	__u64 hi = (__u64)bpf_ntohl(o.addr6[0]) << 32 | bpf_ntohl(o.addr6[1]);
	__u64 lo = (__u64)bpf_ntohl(o.addr6[2]) << 32 | bpf_ntohl(o.addr6[3]);
	return file_connect(ctx, gen, find_peer(m, 1, hi, lo), bpf_ntohs((__u16)ctx->user_port), &o);
}

/* IPv4 reached through a dual-stack IPv6 socket, which stays on the IPv4 bridge, and IPv6. */
SEC("cgroup/connect6")
int gw_connect6(struct bpf_sock_addr *ctx)
{
	__u32 addr = mapped_ip4(ctx);

	if (addr && steer4(ctx, addr, ctx->user_port)) {
		ctx->user_ip6[3] = conf.bridge_addr; /* still ::ffff: */
		ctx->user_port = conf.bridge_port;
	} else if (!addr && steer6(ctx)) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1); /* ::1 */
		ctx->user_port = conf.bridge6_port;
	}
	return 1;
}

SEC("cgroup/setsockopt")
int gw_setsockopt(struct bpf_sockopt *ctx)
{
	/* Of a value beyond a page the program sees only the first page; left so, kernels
	 * without commit 29ebbba7d461 ("bpf: Don't EFAULT for {g,s}setsockopt with wrong
	 * optlen") fail the call with EFAULT. 0: the kernel's own value and handling. */
	if (ctx->optlen > 4096) {
		ctx->optlen = 0;
		return 1;
	}
	if (ctx->level != VMSHIM_SOCKOPT_LEVEL)
		return 1; /* the kernel's */
	if (ctx->optname == VMSHIM_SOCKOPT_OWN_PATH && ctx->sk &&
	    bpf_sk_storage_get(&own_path, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE))
		ctx->optlen = -1; /* taken: the kernel's handler is skipped, the call says 0 */
	return 1;
}

SEC("sockops")
int gw_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB ||
	    (skops->family != 2 /* AF_INET */ && skops->family != 10 /* AF_INET6, mapped */))
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct gw_orig *o = bpf_map_lookup_elem(&redirected, &cookie);
	if (!o)
		return 1;
	__u32 key = GW_PORT_KEY(skops->local_port, o->v6);
	bpf_map_update_elem(&by_port, &key, o, BPF_ANY);
	return 1;
}

/* A redirected socket still connected to the bridge. */
static __always_inline struct gw_orig *bridged(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	return bpf_map_lookup_elem(&redirected, &cookie);
}

/* A listener's connection from the bridge: what the sibling is shown as. The peer of an
 * accepted socket is its peer either way, so accept() shows it too. */
static __always_inline struct gw_inbound *from_bridge(__u32 peer_addr, __u32 peer_port)
{
	__u32 key = GW_PORT_KEY(bpf_ntohs((__u16)peer_port), 0);

	if (peer_addr != conf.inbound_addr)
		return 0;
	return bpf_map_lookup_elem(&inbound, &key);
}

/* What getpeername shows for ip4:port (network order, rewritten in place): the original
 * destination on a socket still connected to the bridge, the sibling on a listener's
 * connection from the bridge. */
static __always_inline void peer_name(struct bpf_sock_addr *ctx, __u32 *ip4, __u32 *port)
{
	struct gw_orig *o = bridged(ctx);
	struct gw_inbound *in;

	if (o && *ip4 == conf.bridge_addr && *port == conf.bridge_port) {
		*ip4 = o->addr;
		*port = o->port;
	} else if ((in = from_bridge(*ip4, *port))) {
		*ip4 = in->peer_addr;
		*port = in->peer_port;
	}
}

/* What getsockname shows for ip4: the guest's own address where the bridge's loopback
 * connection would show a loopback one. */
static __always_inline void sock_name(struct bpf_sock_addr *ctx, __u32 *ip4)
{
	struct gw_orig *o = bridged(ctx);
	struct bpf_sock *sk = ctx->sk;
	struct gw_inbound *in;

	if (o && o->self_addr && (bpf_ntohl(*ip4) & 0xff000000u) == LOOPBACK_NET)
		*ip4 = o->self_addr;
	else if (sk && (in = from_bridge(sk->dst_ip4, sk->dst_port)))
		*ip4 = in->local_addr;
}

SEC("cgroup/getpeername4")
int gw_getpeername4(struct bpf_sock_addr *ctx)
{
	__u32 ip4 = ctx->user_ip4, port = ctx->user_port;

	peer_name(ctx, &ip4, &port);
	ctx->user_ip4 = ip4;
	ctx->user_port = port;
	return 1;
}

SEC("cgroup/getsockname4")
int gw_getsockname4(struct bpf_sock_addr *ctx)
{
	__u32 ip4 = ctx->user_ip4;

	sock_name(ctx, &ip4);
	ctx->user_ip4 = ip4;
	return 1;
}

/* Whether addr (network-order words) is ::1. */
static __always_inline int loopback6(const __u32 addr[4])
{
	return !addr[0] && !addr[1] && !addr[2] && addr[3] == bpf_htonl(1);
}

/* from_bridge's twin for IPv6, whose connections to listeners come from ::1. */
static __always_inline struct gw_inbound *from_bridge6(const __u32 peer_addr[4], __u32 peer_port)
{
	__u32 key = GW_PORT_KEY(bpf_ntohs((__u16)peer_port), 1);
	struct gw_inbound *in;

	if (!loopback6(peer_addr))
		return 0;
	in = bpf_map_lookup_elem(&inbound, &key);
	return in && in->v6 ? in : 0;
}

static __always_inline void set_user_ip6(struct bpf_sock_addr *ctx, const __u32 addr[4])
{
	ctx->user_ip6[0] = addr[0];
	ctx->user_ip6[1] = addr[1];
	ctx->user_ip6[2] = addr[2];
	ctx->user_ip6[3] = addr[3];
}

/* An IPv6 socket still connected to the bridge's ::1 listener (addr, its name there): its
 * IPv6 connect, or NULL. */
static __always_inline struct gw_orig *bridged6(struct bpf_sock_addr *ctx, const __u32 addr[4])
{
	struct gw_orig *o = loopback6(addr) ? bridged(ctx) : 0;

	return o && o->v6 ? o : 0;
}

/* peer_name and sock_name for IPv6: the sibling and this guest's address, from the policy,
 * where the bridge's connections show ::1. */
SEC("cgroup/getpeername6")
int gw_getpeername6(struct bpf_sock_addr *ctx)
{
	__u32 ip4 = mapped_ip4(ctx), port = ctx->user_port, ip6[4];
	struct gw_orig *o;
	struct gw_inbound *in;

	if (ip4) {
		peer_name(ctx, &ip4, &port);
		ctx->user_ip6[3] = ip4;
		ctx->user_port = port;
		return 1;
	}
	user_ip6(ctx, ip6);
	if ((o = bridged6(ctx, ip6)) && port == conf.bridge6_port) {
		set_user_ip6(ctx, o->addr6);
		ctx->user_port = o->port;
	} else if ((in = from_bridge6(ip6, port))) {
		set_user_ip6(ctx, in->peer_addr6);
		ctx->user_port = in->peer_port;
	}
	return 1;
}

SEC("cgroup/getsockname6")
int gw_getsockname6(struct bpf_sock_addr *ctx)
{
	__u32 ip4 = mapped_ip4(ctx), ip6[4];
	struct bpf_sock *sk = ctx->sk;
	struct gw_orig *o;
	struct gw_inbound *in;

	if (ip4) {
		sock_name(ctx, &ip4);
		ctx->user_ip6[3] = ip4;
		return 1;
	}
	user_ip6(ctx, ip6);
	if ((o = bridged6(ctx, ip6)) &&
	    (o->self_addr6[0] | o->self_addr6[1] | o->self_addr6[2] | o->self_addr6[3])) {
		set_user_ip6(ctx, o->self_addr6);
	} else if (sk && loopback6(ip6)) {
		__u32 dst[4] = {sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3]};
		if ((in = from_bridge6(dst, sk->dst_port)))
			set_user_ip6(ctx, in->local_addr6);
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
