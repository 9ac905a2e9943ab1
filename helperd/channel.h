/* Channels (include/vmshim/proto.h): helperd sends each sibling connection to the listener it
 * is for before it rings that listener's doorbell, so that the process accepting the doorbell
 * finds the connection waiting and never asks helperd for it. One channel per address, port
 * and user: every socket that can take that listener's doorbells (one SO_REUSEPORT group,
 * which the kernel keeps to one user) shares it, and no other user's ever gets it. */
#ifndef HELPERD_CHANNEL_H
#define HELPERD_CHANNEL_H

#include <stdint.h>
#include <sys/types.h>

#include "vmshim/endpoint.h"
#include "vmshim/proto.h"

struct channel;

/* The channel of listeners bound to `bound` (address and port) owned by uid, made if there is
 * none, with one more reference; NULL (logged) when it cannot be made. */
struct channel *channel_get(const struct vmshim_endpoint *bound, uid_t uid);

/* One more reference to ch. */
struct channel *channel_ref(struct channel *ch);

/* Gives back a reference (ch may be NULL); the last closes the channel, and with it every
 * sibling connection still in it that no process holds. */
void channel_put(struct channel *ch);

/* The receiving end, to be given to a process that proved it holds such a listener. */
int channel_receiver(const struct channel *ch);

/* The doorbells' data. */
const uint8_t *channel_secret(const struct channel *ch);

/* Sends the sibling connection vs (not taken over) shown as peer connected to local. Returns
 * 0, or -1 with errno (EAGAIN: the channel is full). */
int channel_send(struct channel *ch, const struct vmshim_endpoint *peer,
		 const struct vmshim_endpoint *local, int vs);

/* A doorbell that will never land had an arrival: takes the oldest arrival back and ends its
 * connection (its client falls back to TCP at once), so that the arrivals stay as many as
 * the doorbells. Any will do: they are interchangeable. */
void channel_take_back(struct channel *ch);

#endif
