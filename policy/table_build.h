#ifndef VMSHIM_TABLE_BUILD_H
#define VMSHIM_TABLE_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "vmshim/table.h"

/* What the table shows of one peer beyond the policy. For this guest: the addresses it owns.
 * For a sibling: what it announced, and whether it is alive. */
struct table_peer_view {
	int up; /* a sibling gets routes only while it is up */
	const struct policy_prefix *owned;
	size_t n_owned;
	const uint64_t *served4, *served6; /* bitmaps of TCP ports (POLICY_PORT_WORDS words) */
};

/* Every shim maps the table: a policy whose table could grow beyond this is refused. */
#define TABLE_MAX_SIZE (64u << 20)

/* The size of a table body with n_peers peers and n4 and n6 address ranges. */
uint64_t table_size(uint64_t n_peers, uint64_t n4, uint64_t n6);

/* The ranges peer pp can have in any table: its policy's addresses, or as many as it may
 * announce. */
uint64_t table_peer_ranges(const struct policy_peer *pp);

/* A freshly allocated table body for the guest whose peer index is self (-1: none), and its
 * size in *size; NULL when out of memory. views: one per peer of the policy; NULL stands
 * for every peer up, owning the addresses and serving the ports the policy gives it.
 * A sibling's ports are those the policy allows and it serves; this guest's, those the
 * policy allows. */
void *table_build(const struct policy *policy, int self, const struct table_peer_view *views,
		  uint32_t *size);

#endif
