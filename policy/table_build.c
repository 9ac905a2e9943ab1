/* Builds the decision table body (include/vmshim/table.h) from a validated policy. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"
#include "policy_addr.h"
#include "table_build.h"
#include "vmshim/peerproto.h"

static uint64_t align8(uint64_t n)
{
	return (n + 7u) & ~(uint64_t)7u;
}

/* The layout of a body: header, peers, IPv4 ranges, IPv6 ranges, two port sets per peer
 * and the set of `without-half-close`. */
static void lay_out(uint64_t n_peers, uint64_t n4, uint64_t n6, uint64_t offsets[5])
{
	offsets[0] = align8(sizeof(struct vmshim_table_body));
	offsets[1] = align8(offsets[0] + n_peers * sizeof(struct vmshim_table_peer));
	offsets[2] = align8(offsets[1] + n4 * sizeof(struct vmshim_range4));
	offsets[3] = align8(offsets[2] + n6 * sizeof(struct vmshim_range6));
	offsets[4] = offsets[3] + (2 * n_peers + 1) * VMSHIM_PORTSET_WORDS * sizeof(uint64_t);
}

uint64_t table_size(uint64_t n_peers, uint64_t n4, uint64_t n6)
{
	uint64_t offsets[5];

	lay_out(n_peers, n4, n6, offsets);
	return offsets[4];
}

uint64_t table_peer_ranges(const struct policy_peer *pp)
{
	return pp->n_prefixes > PEERPROTO_MAX_ADDRS ? pp->n_prefixes : PEERPROTO_MAX_ADDRS;
}

static uint64_t be_bits(const uint8_t *p, unsigned nbytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < nbytes; i++)
		v = v << 8 | p[i];
	return v;
}

/* Host-order first and last address of an IPv4 prefix. */
static void range4_of(const struct policy_prefix *p, struct vmshim_range4 *r)
{
	uint32_t a = (uint32_t)be_bits(p->addr, 4);
	uint32_t host = p->len == 32 ? 0 : UINT32_MAX >> p->len;

	r->first = a & ~host;
	r->last = a | host;
}

static uint64_t host_mask(unsigned bits_of_network_in_word)
{
	return bits_of_network_in_word >= 64 ? 0 : UINT64_MAX >> bits_of_network_in_word;
}

static void range6_of(const struct policy_prefix *p, struct vmshim_range6 *r)
{
	uint64_t hi = be_bits(p->addr, 8), lo = be_bits(p->addr + 8, 8);
	uint64_t hmask_hi = p->len >= 64 ? 0 : host_mask(p->len);
	uint64_t hmask_lo = p->len <= 64 ? UINT64_MAX : host_mask(p->len - 64);

	r->first_hi = hi & ~hmask_hi;
	r->first_lo = lo & ~hmask_lo;
	r->last_hi = hi | hmask_hi;
	r->last_lo = lo | hmask_lo;
}

static int cmp_range4(const void *a, const void *b)
{
	const struct vmshim_range4 *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

static int cmp_range6(const void *a, const void *b)
{
	const struct vmshim_range6 *x = a, *y = b;

	if (x->first_hi != y->first_hi)
		return x->first_hi < y->first_hi ? -1 : 1;
	return x->first_lo < y->first_lo ? -1 : x->first_lo > y->first_lo;
}

static struct table_peer_view static_view(const struct policy_peer *pp)
{
	return (struct table_peer_view){
		.up = 1,
		.owned = pp->prefixes,
		.n_owned = pp->n_prefixes,
		.served4 = pp->ports.allowed,
		.served6 = pp->ports.allowed,
	};
}

/* Ports the policy allows to peer i and that it serves (a NULL set: serves all). */
static void fill_portset(uint64_t *set, const struct policy_peer *pp, const uint64_t *served)
{
	for (size_t w = 0; w < VMSHIM_PORTSET_WORDS; w++)
		set[w] = pp->ports.allowed[w] & (served ? served[w] : UINT64_MAX);
}

void *table_build(const struct policy *policy, int self, const struct table_peer_view *views,
		  uint32_t *size)
{
	uint32_t n4 = 0, n6 = 0, n_peers = (uint32_t)policy->n_peers;
	struct table_peer_view *v = calloc(n_peers ? n_peers : 1, sizeof(*v));

	if (!v)
		return NULL;
	for (uint32_t i = 0; i < n_peers; i++) {
		v[i] = views ? views[i] : static_view(&policy->peers[i]);
		if ((int)i == self) {
			v[i].up = 1;
			v[i].served4 = v[i].served6 = NULL;
		}
		for (size_t j = 0; v[i].up && j < v[i].n_owned; j++)
			v[i].owned[j].family == AF_INET ? n4++ : n6++;
	}

	struct vmshim_table_body head = {
		.self = self < 0 ? VMSHIM_NO_SELF : (uint32_t)self,
		.connect_timeout_ms = policy->connect_timeout_ms,
		.n_peers = n_peers,
		.n_ranges4 = n4,
		.n_ranges6 = n6,
		.n_portsets = 2 * n_peers + 1,
		.relay_cid = policy->relay_cid,
		.relay_port = policy->relay_port,
		.without_half_close = 2 * n_peers,
	};
	/* policy_validate keeps every table within TABLE_MAX_SIZE, so these fit 32 bits */
	uint64_t offsets[5];
	lay_out(n_peers, n4, n6, offsets);
	head.peers_off = (uint32_t)offsets[0];
	head.ranges4_off = (uint32_t)offsets[1];
	head.ranges6_off = (uint32_t)offsets[2];
	head.portsets_off = (uint32_t)offsets[3];
	head.size = (uint32_t)offsets[4];

	char *buf = calloc(1, head.size);
	if (!buf) {
		free(v);
		return NULL;
	}
	memcpy(buf, &head, sizeof(head));
	struct vmshim_table_peer *peers = (void *)(buf + head.peers_off);
	struct vmshim_range4 *r4 = (void *)(buf + head.ranges4_off);
	struct vmshim_range6 *r6 = (void *)(buf + head.ranges6_off);
	uint64_t *sets = (void *)(buf + head.portsets_off);

	for (uint32_t i = 0; i < n_peers; i++) {
		const struct policy_peer *pp = &policy->peers[i];
		struct vmshim_table_peer *tp = &peers[i];
		const struct policy_prefix *a4 = policy_first_single(v[i].owned, v[i].n_owned, AF_INET);
		const struct policy_prefix *a6 = policy_first_single(v[i].owned, v[i].n_owned, AF_INET6);

		tp->cid = pp->cid;
		tp->vsock_base = pp->vsock_base;
		tp->portset = 2 * i;
		tp->portset6 = 2 * i + 1;
		if (pp->via_relay)
			tp->flags |= VMSHIM_PEER_VIA_RELAY;
		if (a4) {
			tp->flags |= VMSHIM_PEER_HAS_ADDR4;
			memcpy(tp->addr4, a4->addr, 4);
		}
		if (a6) {
			tp->flags |= VMSHIM_PEER_HAS_ADDR6;
			memcpy(tp->addr6, a6->addr, 16);
		}
		fill_portset(sets + (size_t)tp->portset * VMSHIM_PORTSET_WORDS, pp, v[i].served4);
		fill_portset(sets + (size_t)tp->portset6 * VMSHIM_PORTSET_WORDS, pp, v[i].served6);
		for (size_t j = 0; v[i].up && j < v[i].n_owned; j++) {
			const struct policy_prefix *p = &v[i].owned[j];

			if (p->family == AF_INET) {
				range4_of(p, r4);
				r4++->peer = i;
			} else {
				range6_of(p, r6);
				r6++->peer = i;
			}
		}
	}
	free(v);
	memcpy(sets + (size_t)head.without_half_close * VMSHIM_PORTSET_WORDS,
	       policy->without_half_close.allowed, sizeof policy->without_half_close.allowed);
	/* helperd keeps what peers own disjoint, so sorting makes the ranges searchable. */
	qsort(buf + head.ranges4_off, n4, sizeof(struct vmshim_range4), cmp_range4);
	qsort(buf + head.ranges6_off, n6, sizeof(struct vmshim_range6), cmp_range6);
	*size = head.size;
	return buf;
}
