/* The state of the one helperd of this guest. */
#ifndef HELPERD_H
#define HELPERD_H

#include <stdint.h>

#include "policy.h"

/* What helperd counts for `vmshimctl status`. */
struct helperd_counters {
	unsigned long sibling_accepted; /* vsock connections handed to a listener */
	unsigned long sibling_refused;  /* from a peer, to a port with no listener open to it */
	unsigned long rejected_cids;    /* vsock connections from outside the policy */
	unsigned long bad_messages;     /* malformed frames from peers */
	unsigned long refused_claims;   /* addresses peers claimed and may not own */
};

struct helperd {
	const char *policy_path;
	const char *rundir;
	const char *self_name; /* --self, or NULL */
	struct policy *policy;
	int self; /* index of this guest in policy->peers, -1 when it has no peers */
	int64_t started_ms;
	struct helperd_counters counters;
};

extern struct helperd helperd;

/* This guest's peer entry, or NULL. */
static inline const struct policy_peer *helperd_self(void)
{
	return helperd.self >= 0 ? &helperd.policy->peers[helperd.self] : NULL;
}

/* Builds the table from the policy and what peers said, and publishes it. 0 or -1. */
int helperd_publish(void);

#endif
