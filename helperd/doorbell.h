/* Doorbells. helperd holds each accepted sibling connection until the application takes
 * it: it makes a loopback TCP connection (the doorbell) to the application's listener, so
 * that the listener becomes readable through every mechanism the kernel has (blocking
 * accept, poll, select, epoll in any mode, in any process sharing the listener), and gives
 * the sibling connection to whoever shows it the accepted doorbell. */
#ifndef HELPERD_DOORBELL_H
#define HELPERD_DOORBELL_H

#include <stdint.h>
#include <sys/socket.h>

#include "vmshim/proto.h"

/* Rings the listener at target for vsock connection vs, which the application will see as
 * show_peer connected to show_local. Takes ownership of vs. */
void doorbell_ring(int vs, const struct sockaddr_storage *target, socklen_t target_len,
		   const struct vmshim_endpoint *show_peer, const struct vmshim_endpoint *show_local);

/* The sibling connection whose doorbell app_fd is (the application's end of it): its vsock
 * socket in *vs, owned by the caller, and how to show it in reply. Returns 0, or ENOENT
 * when app_fd is no doorbell of ours. */
int doorbell_claim(int app_fd, struct vmshim_reply *reply, int *vs);

/* Closes sibling connections that no one accepted in time. */
void doorbell_expire(int64_t now_ms);

/* How many sibling connections wait to be taken. */
unsigned doorbell_waiting(void);

void doorbell_shutdown(void);

#endif
