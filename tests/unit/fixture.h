/* Shared by the unit tests that read policy fixture files (include after cmocka.h). */
#ifndef VMSHIM_TEST_FIXTURE_H
#define VMSHIM_TEST_FIXTURE_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "policy_addr.h"
#include "statements.h"

/* policy_load without its check of the file's owner and mode: the fixtures are the
 * checkout's, whatever the umask it was made with. */
static inline int read_path(const char *path, struct policy **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");

	if (!f) {
		policy_error(err, errlen, path, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	int rc = policy_read(f, path, out, err, errlen);
	fclose(f);
	return rc;
}

/* The policy in path, which must load. */
static inline struct policy *load_path(const char *path)
{
	struct policy *pol = NULL;
	char err[1024];

	if (read_path(path, &pol, err, sizeof err) != 0)
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
