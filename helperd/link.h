/* One peer of the policy as this helperd knows it, and its link: the connection this helperd
 * keeps to the peer's control port to announce on. Two things change apart from each other:
 *
 * Whether the peer is up, so in the table with what it may own and the ports it serves
 * (link.c):
 *
 *   PEER_DOWN -> PEER_UP     an announcement came
 *   PEER_UP   -> PEER_DOWN   none for 2/3 of the liveness timeout (peers.c's tick), or the
 *                            connection that carried the last one closed
 *   Going down closes every connection to and from the peer, the link too: new ones come
 *   when it is back. A peer the policy no longer has as it was (name, CID, ports, route,
 *   and the libvirt domain the relay says it is) is forgotten with its connections
 *   (link_free) and, if still there, starts again as DOWN.
 *
 * The link (outbound.c):
 *
 *   LINK_IDLE        no connection: the next announcing tick dials
 *   LINK_CONNECTING  a non-blocking connect, to the peer's control port or, for a peer
 *                    reached via the relay, to the relay
 *   LINK_ASKING      via the relay: the relay has the request for the peer's control port,
 *                    its reply is awaited
 *   LINK_ANNOUNCING  connected: announced on at once, on every announcing tick and whenever
 *                    the ports this guest serves change
 *
 *   IDLE -> CONNECTING -> ANNOUNCING            a direct peer, once connected
 *   IDLE -> CONNECTING -> ASKING -> ANNOUNCING  via the relay, once it says OK
 *   any other -> IDLE                           the connect fails, the relay refuses, the
 *                                               connection closes, an announcement does not
 *                                               fit (the peer does not read), or the peer
 *                                               goes down
 *
 * The connections a peer opens to announce itself (inbound.c) only carry frames in; they have
 * no state beyond a partly read frame. */
#ifndef HELPERD_LINK_H
#define HELPERD_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "vmshim/peerproto.h"

#define INBOUND_PER_PEER 4    /* a restarted peer's new connection may meet its old one */

enum peer_liveness { PEER_DOWN, PEER_UP };

enum link_state { LINK_IDLE, LINK_CONNECTING, LINK_ASKING, LINK_ANNOUNCING };

struct inbound;
struct outbound;

struct link {
	char name[POLICY_NAME_MAX + 1];
	char uuid[37]; /* its libvirt domain's, as the relay said (`peers relay`); else empty */
	uint32_t cid, base, control_port;
	bool via_relay;
	enum peer_liveness liveness;
	int64_t last_ms, since_ms; /* last announcement, last change of liveness; 0: never */
	struct policy_prefix owned[PEERPROTO_MAX_ADDRS];
	size_t n_owned;
	uint64_t served4[POLICY_PORT_WORDS], served6[POLICY_PORT_WORDS];
	size_t n_served4, n_served6;
	uint8_t last_claims[PEERPROTO_MAX_ADDRS * PEERPROTO_ADDR_SIZE]; /* to log a change once */
	size_t last_claims_len; /* SIZE_MAX: none seen under the policy in force */
	uint8_t said[PEERPROTO_MAX_PAYLOAD]; /* its last announcement, to judge it again */
	size_t said_len;
	struct inbound *ins[INBOUND_PER_PEER];
	struct inbound *speaker; /* the connection of its last announcement */
	enum link_state state;
	struct outbound *out; /* the link's connection, unless LINK_IDLE */
	unsigned long announcements;
};

/* Every peer of the policy, parallel to helperd.policy->peers (this guest's entry included,
 * never dialled); peers.c keeps them. */
extern struct link **links;
extern size_t n_links;

/* An announcement came on connection in (payload not yet checked): PEER_UP if it is good.
 * Returns 0, or -1 with why it is malformed (the caller ends the connection). */
int link_heard(struct link *l, struct inbound *in, const uint8_t *payload, size_t len,
	       const char **why);

/* PEER_DOWN, for why (logged if the peer was up), with every connection to and from it
 * closed. */
void link_down(struct link *l, const char *why);

/* Closes every connection to and from the peer and frees l (the policy dropped it). */
void link_free(struct link *l);

/* The first of the VMSHIM_CONTROL_SOURCES vsock ports the control connections of peer's
 * helperd come from (vmshim/ports.h). */
uint32_t link_first_control_source(const struct policy_peer *peer);

/* A socket bound to a free control source port of this guest (the privileged ports while
 * it knows no entry of its own), taken in turn (vsock_source_socket says why): for its
 * links, and for its connection to the relay that tells its siblings (hostpeers.h). */
int link_control_socket(void);

#endif
