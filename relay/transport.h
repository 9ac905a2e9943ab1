/* How the relay reaches guests and how guests reach it, per host-side transport:
 *
 *   vhost-vsock  AF_VSOCK on the host; a guest is known by the CID it connects from (and
 *                its port block, where guests share a CID in tests)
 *   hybrid       AF_UNIX, as Firecracker, Cloud Hypervisor and vhost-device-vsock do it:
 *                the VM's socket PATH takes "CONNECT <port>\n" and answers "OK <port>\n";
 *                a guest's connection to host port P arrives on PATH_P, so the listener it
 *                came through is its identity */
#ifndef RELAY_TRANSPORT_H
#define RELAY_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

/* Listeners for every guest of the policy; a hybrid guest whose socket cannot be made
 * safely is logged and left out (hybrid_path.h). 0, or -1 once logged. */
int transport_listen(void);
void transport_close(void);

/* After a reload, relay.policy being the new one: listeners for its guests (map: each old
 * guest's index in it, or -1; regrant.h), those of guests gone closed. */
void transport_regrant(const int *map);

/* A non-blocking connection under way to vsock port `port` of guest `to`; for a hybrid
 * guest, to its socket (the caller then sends hybrid_connect_line). -1 with errno (left to
 * the caller to log: a guest's requests cause it). */
int transport_dial(size_t to, uint32_t port);

#endif
