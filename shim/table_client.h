#ifndef VMSHIM_TABLE_CLIENT_H
#define VMSHIM_TABLE_CLIENT_H

#include <stdint.h>

#include "vmshim/table.h"

/* Where a TCP connection to (family, addr, port) should go. VMSHIM_DIRECT whenever helperd's
 * table is missing, closed, stale or unreadable: then no peer is co-resident. */
enum vmshim_verdict table_route(int family, const uint8_t *addr, uint16_t port,
				struct vmshim_route *out);

/* Whether a listener on TCP port `port` should be offered to siblings. */
int table_self_exposes(uint16_t port);

/* The instance number of the helperd whose live table this is, 0 when there is none. */
uint32_t table_instance(void);

/* Resets the lock of the table search in a forked child (pthread_atfork). */
void table_client_after_fork(void);

#endif
