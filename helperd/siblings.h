/* The listeners this guest offers to its siblings: the TCP listeners that shims registered,
 * and for each TCP port and family one vsock listener at the port the policy assigns. */
#ifndef HELPERD_SIBLINGS_H
#define HELPERD_SIBLINGS_H

#include <stdint.h>

#include "channel.h"

/* Registers the TCP listening socket fd (passed by a shim), or finds it registered already,
 * and its channel in *channel. Returns 0 or an errno value: EPERM for a listener that must
 * stay private, EINVAL for something that is no listener. */
int siblings_register(int fd, const struct channel **channel);

/* The TCP ports siblings reach over vsock now, as bitmaps (POLICY_PORT_WORDS words). */
void siblings_served(uint64_t *v4, uint64_t *v6);

/* Forgets listeners that were closed, then brings the vsock listeners in line. */
void siblings_sweep(void);

/* Brings the vsock listeners in line with the registrations and the current policy. */
void siblings_sync(void);

/* Writes the registrations down (RUNDIR/listeners), so that a restarted helperd takes them
 * up again. */
void siblings_save(void);

/* Takes up the listeners an earlier helperd registered that still listen. */
void siblings_restore(void);

void siblings_shutdown(void);

#endif
