/* What a peer may own and serves: its announced addresses are judged against the policy and
 * the other peers, its ports taken as they are. */
#ifndef HELPERD_CLAIMS_H
#define HELPERD_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "link.h"

/* Takes in what peer l (entry pp of the policy) announced, payload of len bytes, already
 * parsed into a: the addresses it may own (refusals logged once per change) and the ports it
 * serves. True if what it owns or serves changed. */
bool claims_take(struct link *l, const struct policy_peer *pp,
		 const struct peerproto_announce *a, const uint8_t *payload, size_t len);

/* Judges peer l's last announcement again, under a new policy (pp its entry there). */
void claims_judge_again(struct link *l, const struct policy_peer *pp);

#endif
