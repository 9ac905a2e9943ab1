/* What guestwide.bpf.c and guestwide.c share: the mirror of the table the programs read,
 * and what a redirected connect leaves for the bridge. Addresses and ports in network order
 * where they are a socket's (gw_orig, the bridge's), host order where they are the table's
 * (gw_range). */
#ifndef HELPERD_GUESTWIDE_MAPS_H
#define HELPERD_GUESTWIDE_MAPS_H

#include <linux/types.h>

#define GW_MAX_RANGES 1024
#define GW_SEARCH_STEPS 11 /* log2(GW_MAX_RANGES) + 1 */
#define GW_MAX_PEERS 256
#define GW_MAX_PORTSETS 256
#define GW_PORT_WORDS 1024 /* 65536 ports */
#define GW_MAX_REDIRECTED 65536
#define GW_MAX_FULL_USERS 256 /* users at their share of the bridge (bridge.c): a few at most */

struct gw_range {
	__u32 first, last; /* IPv4, host order */
	__u32 peer;
};

struct gw_range6 {
	__u64 first_hi, first_lo, last_hi, last_lo; /* IPv6, each half in host order */
	__u32 peer;
	__u32 pad;
};

struct gw_peer {
	__u32 portset;  /* index into the portsets of its copy: its IPv4 ports */
	__u32 portset6; /* its IPv6 ports */
};

/* One whole copy of what the programs read. */
struct gw_mirror {
	__u32 n_ranges;
	__u32 n_ranges6;
	__u32 self;      /* this guest's peer index, or GW_MAX_PEERS */
	__u32 self_addr; /* this guest's IPv4 address, network order; 0 if it has none */
	__u32 self_addr6[4]; /* its IPv6 address, network order; all 0 if it has none */
	struct gw_range ranges[GW_MAX_RANGES];
	struct gw_range6 ranges6[GW_MAX_RANGES];
	struct gw_peer peers[GW_MAX_PEERS];
};

struct gw_conf {
	__u64 netns_cookie; /* helperd's network namespace: the bridge is there only */
	__u32 on;
	__u32 gen; /* mirror[gen & 1] is the whole one */
	__u32 helperd_tgid;
	__u32 bridge_addr; /* network order */
	__u32 bridge_port; /* network order, in the low 16 bits, as bpf_sock_addr's */
	__u32 bridge6_port; /* the same, of its IPv6 listener at ::1; 0: none, IPv6 stays TCP */
	__u32 inbound_addr; /* network order: where the bridge's connections to listeners come from */
	__u32 bridge_full;  /* the bridge has no room: every connect stays TCP */
};

struct gw_portset {
	__u64 bits[GW_PORT_WORDS];
};

/* A connect the programs sent to the bridge. */
struct gw_orig {
	__u64 cookie;      /* of the program's socket */
	__u32 addr;        /* what it dialled (IPv4), network order */
	__u32 port;        /* network order, in the low 16 bits */
	__u32 self_addr;   /* the local address it is shown, network order; 0: as it is */
	__u32 uid;         /* of the program that connected: its share of the bridge */
	__u32 v6;          /* 1: it dialled IPv6, addr6, and went to the bridge's ::1 */
	__u32 addr6[4];    /* network order */
	__u32 self_addr6[4]; /* all 0: as it is */
};

/* by_port's and inbound's key: a local port (of the connect, or of the bridge's connection
 * to a listener) and its family (an IPv4 and an IPv6 socket may have the same port). */
#define GW_PORT_KEY(port, v6) ((__u32)(port) | ((__u32)!!(v6) << 16))

/* A connection of the bridge's to a listener of this guest, by its local port (host order)
 * and family: what the listener's program is shown. */
struct gw_inbound {
	__u32 peer_addr;  /* the sibling's address (IPv4), network order */
	__u32 peer_port;  /* its port, network order in the low 16 bits */
	__u32 local_addr; /* the address the sibling dialled (IPv4), network order */
	__u32 v6;         /* 1: an IPv6 connection, from ::1, with the two below */
	__u32 peer_addr6[4];
	__u32 local_addr6[4];
};

#endif
