/* The state of the one helperd of this guest. */
#ifndef HELPERD_H
#define HELPERD_H

#include <stdint.h>

#include "policy.h"

/* What helperd counts for `vmshimctl status`. */
struct helperd_counters {
	unsigned long sibling_accepted; /* vsock connections handed to a listener */
	unsigned long sibling_refused;  /* from a peer, to a port with no listener open to it */
	unsigned long sibling_busy;     /* refused: too many wait to be accepted */
	unsigned long rejected_cids;    /* vsock connections from outside the policy */
	unsigned long bad_messages;     /* malformed frames from peers */
	unsigned long refused_claims;   /* addresses peers claimed and may not own */
	unsigned long bridged_vsock;    /* guest-wide: connections the bridge took to siblings */
	unsigned long bridged_tcp;      /* guest-wide: ... and over TCP, the sibling uncertain */
	unsigned long bridge_strangers; /* guest-wide: at the bridge, from no redirected connect */
	unsigned long bridge_spliced;   /* guest-wide: handed to the kernel (sockmap) */
	unsigned long bridge_taken_back; /* ... and taken back to be copied (forward.h) */
};

/* What changed in the current batch of events. Modules only mark it; helperd_before_sleep
 * acts on each mark once, after the batch and before the loop sleeps, so that a burst of
 * registrations or announcements costs one sweep, one announcement, one save and one
 * table, and no module has to call back into the one that acts. */
enum helperd_change {
	CHANGED_LISTENER_MAY_BE_GONE = 1 << 0, /* ask the kernel which registered ones listen */
	CHANGED_SERVED_PORTS = 1 << 1,         /* announce the ports siblings reach now */
	CHANGED_REGISTRATIONS = 1 << 2,        /* write RUNDIR/listeners again */
	CHANGED_TABLE_INPUTS = 1 << 3,         /* the policy or a peer: publish the table */
	CHANGED_HOST_PEERS = 1 << 4,           /* the relay's list of siblings: load the policy */
};

struct helperd {
	const char *policy_path;
	const char *rundir;
	const char *self_name; /* --self, or NULL */
	struct policy *policy;
	int self; /* index of this guest in policy->peers, -1 when it has no peers */
	int64_t started_ms;
	struct helperd_counters counters;
	unsigned changed; /* enum helperd_change marks not yet acted on */
};

extern struct helperd helperd;

/* This guest's peer entry, or NULL. */
static inline const struct policy_peer *helperd_self(void)
{
	return helperd.self >= 0 ? &helperd.policy->peers[helperd.self] : NULL;
}

static inline void helperd_mark(enum helperd_change what)
{
	helperd.changed |= what;
}

/* Builds the table from the policy and what peers said, and publishes it. 0 or -1. */
int helperd_publish(void);

/* Acts on the marks of the batch of events just dispatched: the loop's before-sleep step,
 * run also once as helperd stops, so that the last batch's registrations are saved. */
void helperd_before_sleep(void);

#endif
