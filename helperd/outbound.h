/* The link's connection to a peer's control port, directly or via the host's relay: the
 * moves of link.h's LINK_ states. */
#ifndef HELPERD_OUTBOUND_H
#define HELPERD_OUTBOUND_H

#include "link.h"

/* LINK_IDLE -> LINK_CONNECTING (stays LINK_IDLE if the connect cannot even start). */
void outbound_dial(struct link *l);

/* LINK_ANNOUNCING: sends this guest's announcement; LINK_IDLE if the peer does not take it. */
void outbound_announce(struct link *l);

/* Any state but LINK_IDLE -> LINK_IDLE. */
void outbound_close(struct link *l);

#endif
