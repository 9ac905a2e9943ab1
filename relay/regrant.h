/* What a reload of the host policy means for what the old one let in: which guest of the new
 * policy each old guest is, and whether a session the old policy granted keeps its grant.
 * Pure questions of the two policies (no relay state), so that they can be unit tested. */
#ifndef RELAY_REGRANT_H
#define RELAY_REGRANT_H

#include <stdbool.h>
#include <stdint.h>

#include "host_policy.h"

/* For each guest of old, its index in new, or -1: the same guest is the one with the same
 * name that is recognised and reached the same way (cid, vsock-base, hybrid socket) and,
 * for a libvirt domain, has its UUID; a name whose CID, socket or domain changed is another
 * VM now. An array of old->n_guests (NULL: no
 * memory), freed by the caller. */
int *regrant_map(const struct host_policy *old, const struct host_policy *new);

/* A session of old: its caller guest, its destination guest (-1 while it has none yet), the
 * caller's vsock port where the host saw it (port_seen) and the destination's port. */
struct regrant_session {
	int from, to;
	uint32_t source_port;
	bool port_seen;
	uint32_t dest_port;
};

/* NULL if new still grants the session (map: regrant_map's), else why it must close. */
const char *regrant_verdict(const struct host_policy *old, const struct host_policy *new,
			    const int *map, const struct regrant_session *s);

#endif
