/* Shares of a bounded room (the connections helperd holds for others): each holder (a peer,
 * a listener) counts what it holds, so that one that takes its whole share crowds out no
 * one but itself. */
#ifndef HELPERD_SHARE_H
#define HELPERD_SHARE_H

#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "policy.h"

struct share {
	uint64_t key; /* the holder */
	unsigned n;
	UT_hash_handle hh;
};

/* The holder key's share in table, with one more taken from it; NULL when it already holds
 * max (or memory ran out). */
struct share *share_take(struct share **table, uint64_t key, unsigned max);

/* A peer's key: its CID and vsock base, as the policy names it. */
static inline uint64_t share_key_of_peer(const struct policy_peer *p)
{
	return (uint64_t)p->cid << 32 | p->vsock_base;
}

/* A peer's share of a room: a quarter, or room / n_peers when the policy lists more than
 * four, so that all the other peers together always leave a peer its own; at least 1. */
unsigned share_per_peer(unsigned room, size_t n_peers);

/* Gives one back (sh may be NULL); a share of nothing is forgotten. */
void share_give(struct share **table, struct share *sh);

#endif
