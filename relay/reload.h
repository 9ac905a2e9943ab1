/* A new host policy in force for a running relay, without a restart: when its file changes
 * (SIGHUP, or a change seen) and when libvirt's list of domains does (libvirt.h). */
#ifndef RELAY_RELOAD_H
#define RELAY_RELOAD_H

#include <stddef.h>

#include "host_domains.h"

/* Reads the policy file again. One that does not load (it does not parse, is gone, or is
 * not root's alone: host_policy_load) is refused, logged with its file and line, and the
 * policy in force stays. One that loads is in force at once for new requests, and sessions
 * it no longer grants are closed (regrant.h); the others go on untouched. */
void relay_reload(void);

/* libvirt's running domains are these now (the relay keeps the array): the policy as
 * written is put in force again with them, as a reload does. */
void relay_domains_changed(struct host_domain *domains, size_t n);

#endif
