/* The other helperds: discovery, liveness and what each sibling owns and serves. helperd
 * connects to every peer's control port and announces this guest there every third of the
 * liveness timeout; it listens on its own control port for the peers' announcements. A
 * sibling is up while its announcements keep coming, and only then do shims redirect to it,
 * and only to the addresses it may own and the ports it serves. */
#ifndef HELPERD_PEERS_H
#define HELPERD_PEERS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <linux/vm_sockets.h>

#include "table_build.h"

/* Starts listening and announcing, with helperd.policy in force. 0 or -1 (logged). */
int peers_start(void);

/* The policy changed: keeps what is known of peers that stay the same, forgets the rest. */
void peers_policy_changed(void);

/* The TCP ports siblings reach in this guest changed (bitmaps of POLICY_PORT_WORDS words):
 * announce them at once. */
void peers_announce_served(const uint64_t *v4, const uint64_t *v6);

/* One view per peer of the policy, for table_build(); valid until the next call. */
const struct table_peer_view *peers_views(void);

/* The peer a vsock connection comes from: its CID, and a source port in its block (the TCP
 * port that stands for is put in *tcp_port). -1 for anyone else. */
int peers_identify(const struct sockaddr_vm *from, uint16_t *tcp_port);

/* The address that stands for peer i (or this guest) in a family; false if it has none. */
bool peers_address(int i, bool v6, uint8_t addr[16]);

/* Status of every peer, as text for people or as JSON. */
void peers_status(FILE *out, bool json);

void peers_stop(void);

#endif
