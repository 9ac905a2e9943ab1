/* Judging what peers claim (claims.h). */
#include <stdint.h>
#include <string.h>

#include "announce.h"
#include "claims.h"
#include "helperd.h"
#include "policy_addr.h"
#include "vmshim/log.h"

/* Whether a claimed prefix is another's: this guest's, another peer's by policy, or one a
 * live peer already holds. */
static const char *owned_elsewhere(const struct link *l, const struct policy_prefix *p)
{
	const struct policy *pol = helperd.policy;
	size_t n_self;
	const struct policy_prefix *self = announce_owned(&n_self);

	for (size_t i = 0; i < n_self; i++)
		if (policy_prefix_overlaps(p, &self[i]))
			return "this guest owns it";
	for (size_t i = 0; i < n_links; i++) {
		if (links[i] == l || (int)i == helperd.self)
			continue;
		for (size_t j = 0; j < pol->peers[i].n_prefixes; j++)
			if (policy_prefix_overlaps(p, &pol->peers[i].prefixes[j]))
				return "the policy gives it to another peer";
		for (size_t j = 0; links[i]->liveness == PEER_UP && j < links[i]->n_owned; j++)
			if (policy_prefix_overlaps(p, &links[i]->owned[j]))
				return "another peer holds it";
	}
	return NULL;
}

/* Keeps the claims the policy lets the peer make; logs the others once per change. */
static void take_addresses(struct link *l, const struct policy_peer *pp,
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
			/* A peer owns only what its policy lines grant it: none grant nothing. */
			bool inside = false;
			for (size_t j = 0; !inside && j < pp->n_prefixes; j++)
				inside = policy_prefix_contains(&pp->prefixes[j], &p);
			if (inside)
				refusal = owned_elsewhere(l, &p);
			else if (pp->n_prefixes)
				refusal = "outside what the policy lets it own";
			else
				refusal = "the policy grants it no address";
		}
		if (!refusal) {
			l->owned[l->n_owned++] = p;
		} else if (changed) {
			helperd.counters.refused_claims++;
			log_limited(LOG_SOURCE(LOG_KIND_CID, l->cid), LOG_WARNING,
				    "peer %s (cid %u) claims %s: refused, %s", l->name, l->cid,
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

bool claims_take(struct link *l, const struct policy_peer *pp,
		 const struct peerproto_announce *a, const uint8_t *payload, size_t len)
{
	uint64_t old4[POLICY_PORT_WORDS], old6[POLICY_PORT_WORDS];
	struct policy_prefix old_owned[PEERPROTO_MAX_ADDRS];
	size_t old_n = l->n_owned;
	memcpy(old4, l->served4, sizeof(old4));
	memcpy(old6, l->served6, sizeof(old6));
	memcpy(old_owned, l->owned, sizeof(old_owned[0]) * old_n);

	take_addresses(l, pp, a, payload + 12, a->n_addrs * PEERPROTO_ADDR_SIZE);
	fill_set(l->served4, &l->n_served4, a->ports4, a->n_ports4);
	fill_set(l->served6, &l->n_served6, a->ports6, a->n_ports6);
	memcpy(l->said, payload, len);
	l->said_len = len;
	return old_n != l->n_owned || memcmp(old_owned, l->owned, sizeof(old_owned[0]) * old_n) ||
	       memcmp(old4, l->served4, sizeof(old4)) || memcmp(old6, l->served6, sizeof(old6));
}

void claims_judge_again(struct link *l, const struct policy_peer *pp)
{
	static struct peerproto_announce a;
	const char *why;

	l->last_claims_len = SIZE_MAX;
	if (l->said_len && peerproto_parse_announce(l->said, l->said_len, &a, &why) == 0)
		claims_take(l, pp, &a, l->said, l->said_len);
}
