#include <sys/socket.h>

#include "policy_addr.h"
#include "policy_risks.h"
#include "vmshim/log.h"

/* Prefixes wider than these hold more than a subnet's worth of hosts: every connection into
 * them goes over vsock to the peer, whoever else on the network uses an address there. */
#define WIDE_PREFIX4 24
#define WIDE_PREFIX6 64

void policy_warn_risks(const struct policy *pol, int self)
{
	char shown[POLICY_PREFIX_STRLEN];

	for (size_t i = 0; i < pol->n_peers; i++) {
		const struct policy_peer *pp = &pol->peers[i];
		if ((int)i == self)
			continue;
		if (pp->n_prefixes == 0)
			log_warn("policy: peer %s has no address lines: it owns no address, so no "
				 "connection goes to it (list the addresses it may own)", pp->name);
		for (size_t j = 0; j < pp->n_prefixes; j++) {
			const struct policy_prefix *p = &pp->prefixes[j];
			if (p->len < (p->family == AF_INET ? WIDE_PREFIX4 : WIDE_PREFIX6))
				log_warn("policy: peer %s may own all of %s: every connection to an "
					 "address in it goes over vsock to that peer, so no host off "
					 "this machine may use one", pp->name,
					 policy_prefix_format(p, shown));
		}
	}
}
