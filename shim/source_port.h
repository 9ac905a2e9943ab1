#ifndef VMSHIM_SOURCE_PORT_H
#define VMSHIM_SOURCE_PORT_H

#include <stdint.h>

/* The local TCP port a sibling connection shows (and whose vsock source port it uses) when
 * the application did not bind one. */
uint16_t source_port_next(void);

/* A forked child starts its own round (pthread_atfork). */
void source_port_after_fork(void);

#endif
