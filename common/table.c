/* Lookups in a published decision table. This runs inside every connect() of every shimmed
 * program, possibly while helperd rewrites the body: it reads each shared header once into
 * a local copy, never trusts a count or an offset without checking it against the
 * capacity, and makes no system call. A torn result is caught by the caller's sequence
 * check; a torn read must only never lead outside the mapping. */
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "vmshim/bigendian.h"
#include "vmshim/ports.h"
#include "vmshim/table.h"

_Static_assert(sizeof(struct vmshim_table_body) % 4 == 0, "snapshot copies whole words");
_Static_assert(sizeof(struct vmshim_table_peer) % 4 == 0, "snapshot copies whole words");

/* Copies a shared structure word by word, each word read exactly once: the compiler may
 * not read the shared memory again later instead of the copy. */
static void snapshot(void *dst, const void *src, size_t size)
{
	const volatile uint32_t *from = src;
	uint32_t *to = dst;

	for (size_t i = 0; i < size / sizeof(uint32_t); i++)
		to[i] = from[i];
}

/* Start of an array of n items of size sz at offset off in the body (whose header was
 * copied to b), or NULL if it does not fit. */
static const void *array_at(const struct vmshim_table_body *body,
			    const struct vmshim_table_body *b, uint32_t capacity, uint32_t off,
			    uint32_t n, size_t sz)
{
	uint64_t end = (uint64_t)off + (uint64_t)n * sz;

	if (b->size > capacity || end > b->size || off % 8 != 0)
		return NULL;
	return (const char *)body + off;
}

/* Binary search over sorted disjoint ranges; returns the owning peer or UINT32_MAX. */
static uint32_t owner4(const struct vmshim_range4 *r, uint32_t n, uint32_t a)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (a < r[mid].first)
			hi = mid;
		else if (a > r[mid].last)
			lo = mid + 1;
		else
			return r[mid].peer;
	}
	return UINT32_MAX;
}

static int cmp128(uint64_t ahi, uint64_t alo, uint64_t bhi, uint64_t blo)
{
	if (ahi != bhi)
		return ahi < bhi ? -1 : 1;
	return alo < blo ? -1 : alo > blo;
}

static uint32_t owner6(const struct vmshim_range6 *r, uint32_t n, uint64_t hi64, uint64_t lo64)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (cmp128(hi64, lo64, r[mid].first_hi, r[mid].first_lo) < 0)
			hi = mid;
		else if (cmp128(hi64, lo64, r[mid].last_hi, r[mid].last_lo) > 0)
			lo = mid + 1;
		else
			return r[mid].peer;
	}
	return UINT32_MAX;
}

/* Copies peer `index` into *peer; -1 if it is out of bounds. */
static int peer_at(const struct vmshim_table_body *body, const struct vmshim_table_body *b,
		   uint32_t capacity, uint32_t index, struct vmshim_table_peer *peer)
{
	const struct vmshim_table_peer *peers =
		array_at(body, b, capacity, b->peers_off, b->n_peers, sizeof(*peers));

	if (!peers || index >= b->n_peers)
		return -1;
	snapshot(peer, &peers[index], sizeof(*peer));
	return 0;
}

/* Whether port set `index` has port (VMSHIM_SIBLING) or not (VMSHIM_DIRECT); VMSHIM_TORN if
 * the set is out of bounds. */
static enum vmshim_verdict portset_has(const struct vmshim_table_body *body,
				       const struct vmshim_table_body *b, uint32_t capacity,
				       uint32_t index, uint16_t port)
{
	const uint64_t *sets = array_at(body, b, capacity, b->portsets_off, b->n_portsets,
					VMSHIM_PORTSET_WORDS * sizeof(uint64_t));

	if (!sets || index >= b->n_portsets)
		return VMSHIM_TORN;
	const uint64_t *set = sets + (size_t)index * VMSHIM_PORTSET_WORDS;
	return (set[port / 64] >> (port % 64)) & 1 ? VMSHIM_SIBLING : VMSHIM_DIRECT;
}

/* Whether peer's port set of the family allows port. */
static enum vmshim_verdict port_allowed(const struct vmshim_table_body *body,
					const struct vmshim_table_body *b, uint32_t capacity,
					const struct vmshim_table_peer *peer, int v6, uint16_t port)
{
	return portset_has(body, b, capacity, v6 ? peer->portset6 : peer->portset, port);
}

enum vmshim_verdict vmshim_table_route(const struct vmshim_table_body *body, uint32_t capacity,
				       int family, const uint8_t *addr, uint16_t port,
				       struct vmshim_route *out)
{
	struct vmshim_table_body b;
	struct vmshim_table_peer peer, self;
	uint32_t owner;

	if (capacity < sizeof(b))
		return VMSHIM_TORN;
	snapshot(&b, body, sizeof(b));
	if (family == AF_INET) {
		const struct vmshim_range4 *r =
			array_at(body, &b, capacity, b.ranges4_off, b.n_ranges4, sizeof(*r));
		if (!r)
			return VMSHIM_TORN;
		owner = owner4(r, b.n_ranges4, get32(addr));
	} else {
		const struct vmshim_range6 *r =
			array_at(body, &b, capacity, b.ranges6_off, b.n_ranges6, sizeof(*r));
		if (!r)
			return VMSHIM_TORN;
		owner = owner6(r, b.n_ranges6, get64(addr), get64(addr + 8));
	}
	if (owner == UINT32_MAX || owner == b.self || b.self == VMSHIM_NO_SELF)
		return VMSHIM_DIRECT;
	if (peer_at(body, &b, capacity, owner, &peer) < 0 ||
	    peer_at(body, &b, capacity, b.self, &self) < 0)
		return VMSHIM_TORN;
	int v6 = family == AF_INET6;
	enum vmshim_verdict allowed = port_allowed(body, &b, capacity, &peer, v6, port);
	if (allowed != VMSHIM_SIBLING)
		return allowed;
	enum vmshim_verdict no_half_close =
		portset_has(body, &b, capacity, b.without_half_close, port);
	if (no_half_close == VMSHIM_TORN)
		return VMSHIM_TORN;

	out->cid = peer.cid;
	out->port = vmshim_listen_port(peer.vsock_base, v6, port);
	out->via_relay = !!(peer.flags & VMSHIM_PEER_VIA_RELAY);
	out->relay_cid = b.relay_cid;
	out->relay_port = b.relay_port;
	out->source_base = vmshim_source_port(self.vsock_base, 0);
	out->timeout_ms = b.connect_timeout_ms;
	out->half_close = no_half_close != VMSHIM_SIBLING;
	out->has_self_addr = !!(self.flags & (v6 ? VMSHIM_PEER_HAS_ADDR6 : VMSHIM_PEER_HAS_ADDR4));
	memcpy(out->self_addr, v6 ? self.addr6 : self.addr4, v6 ? 16 : 4);
	return VMSHIM_SIBLING;
}

enum vmshim_verdict vmshim_table_self_exposes(const struct vmshim_table_body *body,
					      uint32_t capacity, uint16_t port)
{
	struct vmshim_table_body b;
	struct vmshim_table_peer self;

	if (capacity < sizeof(b))
		return VMSHIM_TORN;
	snapshot(&b, body, sizeof(b));
	if (b.self == VMSHIM_NO_SELF)
		return VMSHIM_DIRECT;
	if (peer_at(body, &b, capacity, b.self, &self) < 0)
		return VMSHIM_TORN;
	return port_allowed(body, &b, capacity, &self, 0, port);
}
