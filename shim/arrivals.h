/* The shim's side of a listener's channel (include/vmshim/proto.h): the sibling connections
 * helperd sent ahead of their doorbells, taken by whichever process accepts a doorbell,
 * without asking helperd anything. A process gets the channel when it registers the listener,
 * its forked children with the listener; one that inherited the listener across exec, or
 * whose helperd was restarted since, asks for it (again) at the first doorbell it sees. */
#ifndef VMSHIM_ARRIVALS_H
#define VMSHIM_ARRIVALS_H

#include <stdbool.h>
#include <stdint.h>

#include "fdstate.h"
#include "vmshim/proto.h"

/* Registers listener fd (TCP port `port`, these options set on it) with helperd, or asks for
 * its channel again, and puts its new state in fd's slot if the slot still holds `expected`
 * (a value from fdstate_acquire). Returns the new state with a reference of the caller's, or
 * NULL: no helperd, helperd refused it, or out of memory. */
struct fd_state *arrivals_register(int fd, uint16_t port, unsigned options_set,
				   uintptr_t expected);

/* Whether the listener state ls (or NULL) has a channel whose helperd still runs. */
bool arrivals_channel_live(const struct fd_state *ls);

/* Whether connection c, just accepted on listener ls, is a doorbell of ls's channel: the
 * secret is its data. Waits for it (a little) only while an arrival waits in the channel and
 * nothing came on c yet. The secret is left there. */
bool arrivals_rang(int c, const struct fd_state *ls);

enum arrival_result {
	ARRIVAL_TAKEN, /* *vs is a sibling's connection, *a how to show it */
	ARRIVAL_NONE,  /* the channel is empty */
	ARRIVAL_BAD,   /* one came that cannot be used (malformed, or no descriptor left) */
};

/* Takes the next arrival for doorbell c (arrivals_rang said so) of listener ls, accepted on a
 * socket of family `family`: reads the secret off c and, unless the channel was empty, tells
 * helperd on c that an arrival was taken for it. */
enum arrival_result arrivals_take(int c, const struct fd_state *ls, int family,
				  struct vmshim_arrival *a, int *vs);

/* One more arrival for the same doorbell, when the one it took had lost its sibling: any
 * arrival will do, and one whose doorbell never came (helperd killed meanwhile) would
 * otherwise wait for the next doorbell. */
enum arrival_result arrivals_next(const struct fd_state *ls, int family,
				  struct vmshim_arrival *a, int *vs);

#endif
