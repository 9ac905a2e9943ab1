/* Shared by the unit tests that read policy fixture files (include after cmocka.h). */
#ifndef VMSHIM_TEST_FIXTURE_H
#define VMSHIM_TEST_FIXTURE_H

#include "policy.h"
#include "policy_addr.h"

/* The policy in path, which must load. */
static inline struct policy *load_path(const char *path)
{
	struct policy *pol = NULL;
	char err[1024];

	if (policy_load(path, &pol, err, sizeof err) != 0)
		fail_msg("%s should load, but: %s", path, err);
	assert_non_null(pol);
	return pol;
}

/* The address that stands for a peer in a family, or NULL. */
static inline const struct policy_prefix *stand_for(const struct policy_peer *peer, int family)
{
	return policy_first_single(peer->prefixes, peer->n_prefixes, family);
}

#endif
