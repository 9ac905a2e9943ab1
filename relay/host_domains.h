/* The host policy in force: the policy as written, with libvirt's running domains in the
 * blocks that stand for them (host_policy.h). Pure (no relay state), for unit tests. */
#ifndef RELAY_HOST_DOMAINS_H
#define RELAY_HOST_DOMAINS_H

#include <stddef.h>
#include <stdint.h>

#include "host_policy.h"

/* A running libvirt domain with a vsock device, as libvirt says (relay/libvirt.c). Its name
 * is libvirt's, not yet checked. */
struct host_domain {
	char name[256];
	char uuid[HOST_UUID_LEN + 1];
	uint32_t cid;
};

/* The policy in force for written and the domains (any order): written's guests with a CID
 * as they are, and for each domain the first block that stands for it (by name, or by a
 * pattern of its `domains`), a guest named as the domain, with its CID and UUID, reaching
 * every guest of the blocks its block reaches but itself. A domain no block stands for is
 * no guest; one whose name is not a policy name or is a written guest's, or whose CID is
 * not a guest's CID or is another's, is no guest either and is logged. 0 and *out, or -1
 * (out of memory). */
int host_domains_in_force(const struct host_policy *written, const struct host_domain *domains,
			  size_t n_domains, struct host_policy **out);

#endif
