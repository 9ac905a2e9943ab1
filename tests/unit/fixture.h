/* Shared by the unit tests that read policy fixture files (include after cmocka.h). */
#ifndef VMSHIM_TEST_FIXTURE_H
#define VMSHIM_TEST_FIXTURE_H

#include "policy.h"

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

#endif
