/* Builds the decision table body (include/vmshim/table.h) from a validated policy. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"
#include "table_build.h"

static uint32_t align8(uint32_t n)
{
	return (n + 7u) & ~7u;
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

void *table_build(const struct policy *policy, int self, uint32_t *size)
{
	uint32_t n4 = 0, n6 = 0, n_peers = (uint32_t)policy->n_peers;

	for (size_t i = 0; i < policy->n_peers; i++)
		for (size_t j = 0; j < policy->peers[i].n_prefixes; j++)
			policy->peers[i].prefixes[j].family == AF_INET ? n4++ : n6++;

	struct vmshim_table_body head = {
		.self = self < 0 ? VMSHIM_NO_SELF : (uint32_t)self,
		.connect_timeout_ms = policy->connect_timeout_ms,
		.n_peers = n_peers,
		.n_ranges4 = n4,
		.n_ranges6 = n6,
		.n_portsets = n_peers,
	};
	head.peers_off = align8(sizeof(head));
	head.ranges4_off = align8(head.peers_off + n_peers * sizeof(struct vmshim_table_peer));
	head.ranges6_off = align8(head.ranges4_off + n4 * sizeof(struct vmshim_range4));
	head.portsets_off = align8(head.ranges6_off + n6 * sizeof(struct vmshim_range6));
	head.size = head.portsets_off + n_peers * VMSHIM_PORTSET_WORDS * (uint32_t)sizeof(uint64_t);

	char *buf = calloc(1, head.size);
	if (!buf)
		return NULL;
	memcpy(buf, &head, sizeof(head));
	struct vmshim_table_peer *peers = (void *)(buf + head.peers_off);
	struct vmshim_range4 *r4 = (void *)(buf + head.ranges4_off);
	struct vmshim_range6 *r6 = (void *)(buf + head.ranges6_off);
	uint64_t *sets = (void *)(buf + head.portsets_off);

	for (uint32_t i = 0; i < n_peers; i++) {
		const struct policy_peer *pp = &policy->peers[i];
		struct vmshim_table_peer *tp = &peers[i];

		tp->cid = pp->cid;
		tp->vsock_base = pp->vsock_base;
		tp->portset = i;
		if (pp->addr4) {
			tp->flags |= VMSHIM_PEER_HAS_ADDR4;
			memcpy(tp->addr4, pp->addr4->addr, 4);
		}
		if (pp->addr6) {
			tp->flags |= VMSHIM_PEER_HAS_ADDR6;
			memcpy(tp->addr6, pp->addr6->addr, 16);
		}
		memcpy(sets + (size_t)i * VMSHIM_PORTSET_WORDS, pp->ports.allowed,
		       sizeof(pp->ports.allowed));
		for (size_t j = 0; j < pp->n_prefixes; j++) {
			const struct policy_prefix *p = &pp->prefixes[j];

			if (p->family == AF_INET) {
				range4_of(p, r4);
				r4++->peer = i;
			} else {
				range6_of(p, r6);
				r6++->peer = i;
			}
		}
	}
	/* The policy guarantees the ranges are disjoint, so sorting makes them searchable. */
	qsort(buf + head.ranges4_off, n4, sizeof(struct vmshim_range4), cmp_range4);
	qsort(buf + head.ranges6_off, n6, sizeof(struct vmshim_range6), cmp_range6);
	*size = head.size;
	return buf;
}
