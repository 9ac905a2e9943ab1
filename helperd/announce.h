/* This guest's announcement to its peers: the addresses it owns and the TCP ports its shims
 * serve, made once when what it says may have changed and sent as it is on every link. */
#ifndef HELPERD_ANNOUNCE_H
#define HELPERD_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/* Finds again what this guest owns: its addresses in the policy, or else those of its
 * interfaces. */
void announce_find_owned(void);

/* What this guest owns (n entries in *n), as last found. */
const struct policy_prefix *announce_owned(size_t *n);

/* Makes the announcement again from what this guest owns now (as last found). */
void announce_compose(void);

/* Makes the announcement again with the TCP ports siblings reach now (bitmaps of
 * POLICY_PORT_WORDS words); they stay in it until the next call. */
void announce_served(const uint64_t *v4, const uint64_t *v6);

/* The announcement, a whole frame of *len bytes; NULL when none could be made. */
const uint8_t *announce_frame(size_t *len);

#endif
