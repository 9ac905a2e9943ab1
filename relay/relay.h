/* The state of the one vmshim-relay of a host. */
#ifndef RELAY_H
#define RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "host_domains.h"
#include "host_policy.h"

/* What the relay counts, in total and per calling guest (`vmshim-relay status`). */
struct relay_counters {
	unsigned long accepted;        /* connections a guest opened to the relay */
	unsigned long relayed;         /* ... that reached their destination */
	unsigned long refused;         /* destination not allowed by the host policy */
	unsigned long unreachable;     /* destination did not take it in time */
	unsigned long busy;            /* a connection cap was reached */
	unsigned long bad_requests;    /* malformed, or not sent in time */
	unsigned long no_half_close;   /* asked for half-closes on a path that loses them */
	unsigned long spliced;         /* times a connection was handed to the kernel */
	unsigned long taken_back;      /* ... and taken back to be copied (splice.h) */
	unsigned long rescued;         /* packets the kernel dropped as it gave one back */
	unsigned long revoked;         /* sessions a reload closed: no longer granted */
	unsigned long long bytes_up;   /* caller to destination, of finished connections */
	unsigned long long bytes_down; /* destination to caller */
};

struct splice_engine;

struct relay {
	const char *policy_path;
	const char *rundir;
	struct host_policy *written;    /* as its file says (host_policy.h) */
	struct host_domain *domains;    /* libvirt's running domains, as last listed */
	size_t n_domains;
	struct host_policy *policy;     /* in force: written, with the domains */
	unsigned long domain_updates;   /* lists of domains put in force */
	struct splice_engine *splice; /* NULL: every connection is copied in user space */
	unsigned splice_pairs;        /* what it has room for: max-connections at start */
	char splice_why[160];         /* why not, when splice is NULL */
	unsigned n_sessions;
	unsigned *per_guest; /* sessions each guest started */
	struct relay_counters total, *per_guest_counters;
	unsigned long unknown_callers; /* connections from no guest of the policy */
	int64_t started_ms;
	unsigned long reloads, reloads_refused; /* of the host policy (reload.h) */
};

extern struct relay relay;

/* Logs what the policy in force says (at start, on --check and after each reload). */
void relay_describe(void);

#endif
