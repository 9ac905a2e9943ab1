/* The decision table. helperd builds it from the policy and publishes it in a file under its
 * run directory; every shim maps that file read-only and looks destinations up in it without
 * a system call. helperd rewrites the body in place under a sequence lock, beats a heartbeat
 * once a second, and marks the file CLOSED when it stops: a shim that sees a closed, stale
 * or torn table behaves as if no peer were co-resident. */
#ifndef VMSHIM_TABLE_H
#define VMSHIM_TABLE_H

#include <stdint.h>

#include "vmshim/clock.h" /* heartbeat_ms */

#define VMSHIM_TABLE_FILE "table"
#define VMSHIM_TABLE_MAGIC 0x314d5356u /* "VSM1" */
#define VMSHIM_TABLE_VERSION 4u
#define VMSHIM_TABLE_HEADER_SIZE 4096u
#define VMSHIM_HEARTBEAT_MS 1000u
#define VMSHIM_TABLE_STALE_MS 5000u /* five beats missed: helperd is gone */
#define VMSHIM_NO_SELF UINT32_MAX

enum vmshim_table_state {
	VMSHIM_TABLE_LIVE = 1,
	VMSHIM_TABLE_CLOSED = 2,     /* helperd stopped cleanly */
	VMSHIM_TABLE_SUPERSEDED = 3, /* a bigger table replaced this file: map the new one */
};

struct vmshim_table_header {
	uint32_t magic;
	uint32_t version;
	uint32_t capacity; /* bytes of body that follow the header page */
	_Atomic uint32_t state;
	_Atomic uint32_t seq; /* odd while helperd rewrites the body */
	uint32_t instance; /* random, new each time helperd starts (whose counter page is whose) */
	_Atomic uint64_t heartbeat_ms; /* vmshim_now_ms() of helperd's last beat */
};

/* The body: this struct, then the arrays it points at by offset. Numbers in host order. */
struct vmshim_table_body {
	uint32_t size; /* bytes in use, <= capacity */
	uint32_t self; /* index of this guest's peer, or VMSHIM_NO_SELF */
	uint32_t connect_timeout_ms;
	uint32_t n_peers, peers_off;
	uint32_t n_ranges4, ranges4_off; /* sorted, disjoint */
	uint32_t n_ranges6, ranges6_off; /* sorted, disjoint */
	uint32_t n_portsets, portsets_off;
	uint32_t relay_cid, relay_port; /* the host's vmshim-relay, for peers VIA_RELAY */
	uint32_t without_half_close; /* index of the port set of TCP ports that may be relayed
				      * where half-closes are lost */
};

#define VMSHIM_PEER_HAS_ADDR4 1u
#define VMSHIM_PEER_HAS_ADDR6 2u
#define VMSHIM_PEER_VIA_RELAY 4u

struct vmshim_table_peer {
	uint32_t cid;
	uint32_t vsock_base;
	uint32_t portset;  /* index of the bitmap of its IPv4 ports that siblings reach */
	uint32_t portset6; /* the same for IPv6 */
	uint32_t flags;
	uint8_t addr4[4]; /* the address that stands for the peer, network order */
	uint8_t addr6[16];
	uint32_t pad;
};

struct vmshim_range4 {
	uint32_t first, last;
	uint32_t peer;
};

struct vmshim_range6 {
	uint64_t first_hi, first_lo, last_hi, last_lo;
	uint32_t peer;
	uint32_t pad;
};

#define VMSHIM_PORTSET_WORDS (65536 / 64)

/* Where a redirected connection goes, and what the local end looks like. */
struct vmshim_route {
	uint32_t cid;
	uint32_t port;        /* vsock port of the sibling's listener */
	int via_relay;        /* connect to the relay, and ask it for cid:port */
	uint32_t relay_cid, relay_port;
	uint32_t source_base; /* vsock source port for local TCP port 0 */
	uint32_t timeout_ms;
	int half_close;       /* ask the relay for a path that carries half-closes */
	int has_self_addr;
	uint8_t self_addr[16]; /* this guest's address in the destination's family */
};

/* The vsock address a connection on route r dials: the host's relay for a sibling reached
 * through it, else the sibling's listener. */
static inline void vmshim_route_dial(const struct vmshim_route *r, uint32_t *cid,
				     uint32_t *port)
{
	*cid = r->via_relay ? r->relay_cid : r->cid;
	*port = r->via_relay ? r->relay_port : r->port;
}

enum vmshim_verdict {
	VMSHIM_TORN = -1,  /* the body is inconsistent (being rewritten): read again */
	VMSHIM_DIRECT = 0, /* plain TCP */
	VMSHIM_SIBLING = 1,
};

/* Looks up a destination (family AF_INET or AF_INET6, address in network order, TCP port).
 * Reads only inside [body, body + capacity), whatever the body holds. */
enum vmshim_verdict vmshim_table_route(const struct vmshim_table_body *body, uint32_t capacity,
				       int family, const uint8_t *addr, uint16_t port,
				       struct vmshim_route *out);

/* Whether this guest exposes TCP port P to its siblings. */
enum vmshim_verdict vmshim_table_self_exposes(const struct vmshim_table_body *body,
					      uint32_t capacity, uint16_t port);

#endif
