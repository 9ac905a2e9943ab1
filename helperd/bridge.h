/* The bridge of guest-wide mode: a program's TCP connection that guestwide.bpf.c sent to
 * one of helperd's loopback listeners (IPv4, or IPv6 at ::1), carried on to the sibling it
 * dialled. Its life:
 *
 *   taken --(by_port names its destination, the kernel's cookie agrees, the table routes it
 *   |        to a sibling: vsock connect begun, to the host's relay for a sibling `via
 *   |        relay`)--> CONNECTING
 *   |        (else: closed, nothing said to the program but a reset)
 *   CONNECTING --(connected: DIALLED sent)--> HANDOVER
 *   CONNECTING --(connected to the relay: REQUEST sent)--> RELAY_REPLY
 *   RELAY_REPLY --(OK: DIALLED sent)--> HANDOVER
 *   HANDOVER --(the hand-over byte: the server's program accepted)--> FORWARDING
 *   CONNECTING, RELAY_REPLY, HANDOVER --(refused, reset, the relay's refusal, no byte within
 *   |        the connect-timeout)--> FALLBACK:
 *   |        a TCP connect of helperd's own to the destination (the programs let helperd's
 *   |        connects pass), so that the program gets what TCP would have given it
 *   FALLBACK --(connected)--> FORWARDING; --(failed)--> closed, as a reset
 *   FORWARDING --(both directions shut, each once its bytes are through; or an error)--> closed
 *            (forward.h: spliced in the kernel, TCP to vsock, where it takes the pair and can
 *            (splice.h); else by copies; an error ends the program's connection as a reset)
 *
 * The program's connect() returned as soon as the bridge's listener took it: its first bytes
 * wait in the kernel until FORWARDING.
 *
 * The other way, a sibling's connection to a listener of a program without the shim:
 *
 *   inbound --(TCP connect to the listener begun, names filed)--> LISTENING
 *   LISTENING --(the listener's kernel took it: the hand-over byte to the sibling)--> FORWARDING
 *   LISTENING --(refused, or no answer in BRIDGE_TCP_TIMEOUT_MS)--> closed: the sibling,
 *            without its hand-over, goes over TCP */
#ifndef HELPERD_BRIDGE_H
#define HELPERD_BRIDGE_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy.h"
#include "vmshim/endpoint.h"

/* The most connections the bridge carries at once, each two descriptors of helperd's
 * (fdbudget.h); bridge_init makes it fewer where helperd has fewer to give. */
#define BRIDGE_MAX 1024
#define BRIDGE_FDS_PER_CONN 2
void bridge_init(unsigned max);

/* "sockmap" or "copy", how FORWARDING moves the bytes; *why, why not sockmap ("" if it is). */
const char *bridge_forwarding(const char **why);

/* Takes fd, a connection accepted from `from` on the bridge's listener at `bridge` (IPv4
 * or IPv6); by_port is the programs' map of redirected connects by local port. */
void bridge_take(int fd, const struct vmshim_endpoint *from,
		 const struct vmshim_endpoint *bridge, int by_port);

/* Carries vs, a connection from sibling to a listener of a program without the shim, to
 * that listener at target over TCP, from GUESTWIDE_INBOUND_ADDR (IPv6: from ::1): once the listener's kernel
 * took it, the hand-over byte goes to the sibling and the bytes flow; the program sees peer
 * as the connection's peer and dialled as its local name. 0, or -1 (vs closed: the sibling
 * falls back to TCP), also when the sibling's share of the bridge is full. */
int bridge_inbound(int vs, const struct policy_peer *sibling,
		   const struct sockaddr_storage *target, socklen_t len,
		   const struct vmshim_endpoint *peer, const struct vmshim_endpoint *dialled);

/* Gives up on connections still waiting for their sibling after the connect-timeout. */
void bridge_expire(int64_t now_ms);

/* Connections the bridge carries now. */
unsigned bridge_count(void);

#endif
