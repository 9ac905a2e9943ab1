/* Doorbells. helperd holds each accepted sibling connection until the application takes
 * it: it makes a loopback TCP connection (the doorbell) to the application's listener, so
 * that the listener becomes readable through every mechanism the kernel has (blocking
 * accept, poll, select, epoll in any mode, in any process sharing the listener), and gives
 * the sibling connection to whoever shows it the accepted doorbell. */
#ifndef HELPERD_DOORBELL_H
#define HELPERD_DOORBELL_H

#include <stdint.h>
#include <sys/socket.h>

#include "policy.h"
#include "vmshim/proto.h"

/* Sizes the pool of sibling connections waiting to be accepted to the descriptors helperd
 * may open (raising its limit where it can). */
void doorbell_init(void);

/* Rings the listener at target for vsock connection vs from peer `from` to vsock port vport,
 * which the application will see as show_peer connected to show_local. Takes ownership of
 * vs. Returns 0, or -1 (vs closed) when it cannot wait: the pool, or the peer's or the
 * listener's share of it, is full, or the doorbell could not be made. The connection waits
 * until it is claimed, the sibling hangs up, or the connect-timeout (and a little more)
 * passes. */
int doorbell_ring(int vs, const struct policy_peer *from, uint32_t vport,
		  const struct sockaddr_storage *target, socklen_t target_len,
		  const struct vmshim_endpoint *show_peer, const struct vmshim_endpoint *show_local);

/* The sibling connection whose doorbell app_fd is (the application's end of it): its vsock
 * socket in *vs, owned by the caller, and how to show it in reply. Returns 0, or ENOENT
 * when app_fd is no doorbell of ours. */
int doorbell_claim(int app_fd, struct vmshim_reply *reply, int *vs);

/* Closes sibling connections that no one accepted within the connect-timeout. */
void doorbell_expire(int64_t now_ms);

/* How many sibling connections wait to be taken. */
unsigned doorbell_waiting(void);

void doorbell_shutdown(void);

#endif
