/* Following libvirt: which domains run on this host with a vsock device, and their CIDs,
 * right within moments of each change (README, "Host side").
 *
 * A thread of its own runs libvirt's event loop, so that no call to libvirtd ever holds
 * the relay's loop. It connects read-only, lists the running domains and reads each one's
 * live CID from its XML, and lists them again on every lifecycle or device event. Each
 * list it hands to the relay's loop through an eventfd (libvirt_fd); the loop takes the
 * latest (libvirt_take). When libvirtd goes away the thread says so and reconnects every
 * second; the relay keeps the last list meanwhile (the domains run on without libvirtd,
 * and no new one can take a CID without it), and gets a new one once it is back. */
#ifndef RELAY_LIBVIRT_H
#define RELAY_LIBVIRT_H

#include <stdbool.h>
#include <stddef.h>

#include "host_domains.h"

/* Loads libvirt (libvirt_api.h) and starts following it at uri. 0, or -1 (logged: the
 * library is missing, or the thread could not start). */
int libvirt_start(const char *uri);

/* Readable when a new list is there; -1 when not started. */
int libvirt_fd(void);

/* The latest list, if one came since the last call: true and *domains (the caller frees
 * it) and *n; else false. */
bool libvirt_take(struct host_domain **domains, size_t *n);

/* For status: whether the thread is connected to libvirtd, and how many lists it made. */
void libvirt_state(bool *connected, unsigned long *lists);

/* Ends the thread and lets go of libvirt. */
void libvirt_stop(void);

#endif
