/* Doorbells. helperd sends each accepted sibling connection into its listener's channel
 * (channel.h), then makes a loopback TCP connection (the doorbell) to the application's
 * listener, so that the listener becomes readable through every mechanism the kernel has
 * (blocking accept, poll, select, epoll in any mode, in any process sharing the listener);
 * the shim that accepts the doorbell takes the connection from the channel. helperd keeps
 * the doorbell until the application's end of it closes, for the pool's limits. */
#ifndef HELPERD_DOORBELL_H
#define HELPERD_DOORBELL_H

#include <stdint.h>
#include <sys/socket.h>

#include "channel.h"
#include "policy.h"
#include "vmshim/proto.h"

/* The most sibling connections that may wait to be accepted, each a descriptor of helperd's
 * (fdbudget.h); doorbell_init makes it fewer where helperd has fewer to give. */
#define DOORBELL_POOL_MAX 4096
void doorbell_init(unsigned max);

/* Sends vsock connection vs from peer `from` to vsock port vport into channel ch, and rings
 * the listener at target, which will see it as show_peer connected to show_local. Takes
 * ownership of vs. Returns 0, or -1 (vs closed) when it cannot wait: the pool, or the peer's
 * or the listener's share of it, or the channel is full, or the doorbell could not be made.
 * The doorbell counts in the pool until its accepting end closes, or the connect-timeout (and
 * a little more) passes. */
int doorbell_ring(int vs, const struct policy_peer *from, uint32_t vport, struct channel *ch,
		  const struct sockaddr_storage *target, socklen_t target_len,
		  const struct vmshim_endpoint *show_peer, const struct vmshim_endpoint *show_local);

/* Lets go of doorbells that no one accepted within the connect-timeout. */
void doorbell_expire(int64_t now_ms);

/* How many sibling connections wait to be taken. */
unsigned doorbell_waiting(void);

void doorbell_shutdown(void);

#endif
