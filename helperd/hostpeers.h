/* Peers from the host (`peers relay`, policy/FORMAT.md): helperd asks the relay whom the
 * host says this guest's siblings are, and follows the answer (relayproto.h, ASK_SIBLINGS).
 * Each new list is a reload: the policy in force is the file with a peer block for each
 * sibling of the list that the file does not name (hostpeers_text), reached via the relay,
 * owning only what the host policy gives it; the relay's entry for this guest itself names
 * it where the file does not.
 *
 *   IDLE        no connection; the next tick (a second) dials the relay
 *   CONNECTING  a non-blocking connect to the relay
 *   ASKING      ASK_SIBLINGS sent, the relay's REPLY awaited
 *   FOLLOWING   reading SIBLINGS messages, at once and whenever the host's list changes
 *
 *   IDLE -> CONNECTING -> ASKING -> FOLLOWING
 *   any other -> IDLE   the connect fails, the relay refuses or closes, a message breaks a
 *                       rule (logged, and never used)
 *
 * The last list stays in force while there is no connection: the siblings' own
 * announcements say whether each one is up, and the relay refuses what the host no longer
 * grants. */
#ifndef HELPERD_HOSTPEERS_H
#define HELPERD_HOSTPEERS_H

#include <stdbool.h>

#include "policy.h"

/* Once a second: dials the relay if the policy in force says `peers relay` and there is no
 * connection, or lets the connection and the list go if it no longer does. */
void hostpeers_tick(void);

/* The peer blocks to read after the file `file` (NULL: no list yet), to be freed; names the
 * file gives are left out. */
char *hostpeers_text(const struct policy *file);

/* The name the relay gives this guest, or NULL. */
const char *hostpeers_self(void);

/* Gives the peers of merged (file with hostpeers_text) that came from the list their
 * UUID. */
void hostpeers_mark(const struct policy *file, struct policy *merged);

/* For status: the relay's list (-1 before any), and whether helperd follows it now. */
int hostpeers_count(void);
bool hostpeers_following(void);

void hostpeers_stop(void);

#endif
