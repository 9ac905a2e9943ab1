/* Whether a peer is up (link.h): what its announcements and their absence do. */
#include <stdlib.h>

#include "claims.h"
#include "helperd.h"
#include "inbound.h"
#include "link.h"
#include "outbound.h"
#include "vmshim/clock.h"
#include "vmshim/log.h"
#include "vmshim/ports.h"
#include "vmshim/vsock.h"

static void close_connections(struct link *l)
{
	for (size_t k = 0; k < INBOUND_PER_PEER; k++)
		if (l->ins[k])
			inbound_close(l->ins[k]);
	if (l->state != LINK_IDLE)
		outbound_close(l);
}

int link_heard(struct link *l, struct inbound *in, const uint8_t *payload, size_t len,
	       const char **why)
{
	static struct peerproto_announce a;
	size_t i = 0;

	while (i < n_links && links[i] != l)
		i++;
	if (peerproto_parse_announce(payload, len, &a, why) < 0)
		return -1;
	bool changed = claims_take(l, &helperd.policy->peers[i], &a, payload, len);
	l->speaker = in;
	l->announcements++;
	l->last_ms = vmshim_now_ms();
	if (l->liveness == PEER_DOWN) {
		l->liveness = PEER_UP;
		l->since_ms = l->last_ms;
		log_info("peer %s (cid %u) is up: %zu addresses, %zu+%zu ports served", l->name,
			 l->cid, l->n_owned, l->n_served4, l->n_served6);
		changed = true;
	}
	if (changed)
		helperd_mark(CHANGED_TABLE_INPUTS);
	return 0;
}

void link_down(struct link *l, const char *why)
{
	close_connections(l);
	if (l->liveness == PEER_DOWN)
		return;
	l->liveness = PEER_DOWN;
	l->since_ms = vmshim_now_ms();
	log_info("peer %s (cid %u) is gone: %s; its addresses go back to TCP", l->name, l->cid,
		 why);
	helperd_mark(CHANGED_TABLE_INPUTS);
}

void link_free(struct link *l)
{
	close_connections(l);
	free(l);
}

/* Whether another peer of the policy has this CID (test set-ups, nested guests): then only
 * the vsock port blocks tell them apart. */
static bool cid_shared(uint32_t cid)
{
	int n = 0;

	for (size_t i = 0; i < helperd.policy->n_peers; i++)
		n += helperd.policy->peers[i].cid == cid;
	return n > 1;
}

/* Port 1, a privileged port, which only root (helperd) can bind in its guest, so no other
 * user there can speak for helperd; where its CID is shared, TCP port 1 of its source
 * block. */
uint32_t link_first_control_source(const struct policy_peer *peer)
{
	const struct policy *pol = helperd.policy;
	/* a relay on this CID means guests share it (tests), though the file may name no
	 * other (`peers relay`): the relay tells them apart by their blocks */
	bool shared = cid_shared(peer->cid) || (pol->has_relay && pol->relay_cid == peer->cid);

	return vmshim_control_source_first(peer->vsock_base, shared);
}

int link_control_socket(void)
{
	static uint32_t next;
	const struct policy_peer *self = helperd_self();

	return vsock_source_socket(self ? link_first_control_source(self) : 1,
				   VMSHIM_CONTROL_SOURCES, &next);
}
