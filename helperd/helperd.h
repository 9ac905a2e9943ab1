/* The state of the one helperd of this guest. */
#ifndef HELPERD_H
#define HELPERD_H

#include <stdint.h>

#include "policy.h"

struct helperd {
	const char *policy_path;
	const char *rundir;
	const char *self_name; /* --self, or NULL */
	struct policy *policy;
	int self; /* index of this guest in policy->peers, -1 when it has no peers */
};

extern struct helperd helperd;

/* This guest's peer entry, or NULL. */
static inline const struct policy_peer *helperd_self(void)
{
	return helperd.self >= 0 ? &helperd.policy->peers[helperd.self] : NULL;
}

#endif
