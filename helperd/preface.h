/* What comes first on a vsock connection helperd accepted, before anything else may happen
 * to it: the relay's FROM (vmshim/relayproto.h) on a connection through the relay, then, on
 * a sibling connection, the client's DIALLED (vmshim/dialled.h). Each is read without
 * blocking the loop, within the connect-timeout, in a room of bounded size in which each
 * holder (the relay, or one peer) may take a quarter: a peer that opens connections and
 * sends nothing crowds out no one but itself. */
#ifndef HELPERD_PREFACE_H
#define HELPERD_PREFACE_H

#include <stdint.h>
#include <linux/vm_sockets.h>

#include "vmshim/endpoint.h"

/* What is known of an accepted connection; each message read adds to it. */
struct arrival {
	struct sockaddr_vm from; /* whose: the address accept() gave, or the one FROM names */
	uint32_t vport;		 /* the vsock port it came to */
	struct vmshim_endpoint dialled; /* DIALLED's address, once read */
};

typedef void preface_done_fn(int fd, const struct arrival *a);

/* fd (owned from now on) came from the relay: reads its FROM, then gives fd to done with
 * a->from replaced by the address FROM names. */
void preface_relayed(int fd, const struct arrival *a, preface_done_fn *done);

/* fd (owned from now on) is a sibling connection from the policy's peer `peer`: reads its
 * DIALLED, then gives fd to done with a->dialled set. */
void preface_dialled(int fd, const struct arrival *a, int peer, preface_done_fn *done);

/* Closes the connections whose message is late (helperd's tick). */
void preface_expire(int64_t now_ms);

void preface_shutdown(void);

#endif
