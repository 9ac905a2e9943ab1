/* Reloading the host policy, on SIGHUP and whenever its file changes, without a restart. */
#ifndef RELAY_RELOAD_H
#define RELAY_RELOAD_H

/* Reads the policy file again. One that does not load (it does not parse, is gone, or is
 * not root's alone: host_policy_load) is refused, logged with its file and line, and the
 * policy in force stays. One that loads is in force at once for new requests, and sessions
 * it no longer grants are closed (regrant.h); the others go on untouched. */
void relay_reload(void);

#endif
