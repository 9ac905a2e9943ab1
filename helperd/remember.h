/* What helperd knows of registered listeners outlives helperd: it keeps no descriptor of
 * them, so after a restart it can take them up again from RUNDIR/listeners, once the
 * kernel confirms (sock_diag) that each one still listens. */
#ifndef HELPERD_REMEMBER_H
#define HELPERD_REMEMBER_H

#include <stddef.h>
#include <stdint.h>

#include "vmshim/endpoint.h"

struct listener_record {
	uint64_t inode;
	uint16_t port;
	uint8_t v4, v6;
	struct vmshim_endpoint bound;
	uint32_t uid; /* the socket's owner, whose listeners there share a channel */
};

/* Replaces the file with these records (atomically). Returns 0 or -1 (logged). */
int remember_listeners(const struct listener_record *records, size_t n);

/* The records of the file in a malloc'ed array; none (0) when it is missing or unreadable. */
size_t recall_listeners(struct listener_record **records);

#endif
