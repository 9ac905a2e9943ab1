#ifndef HELPERD_PUBLISH_H
#define HELPERD_PUBLISH_H

#include <stdint.h>

/* Publishes a table body (see include/vmshim/table.h) in RUNDIR/table: rewritten in place
 * under the sequence lock when it fits, else in a new, bigger file that supersedes the old
 * one. Returns 0 or -1 (logged). */
int publish_table(const char *rundir, const void *body, uint32_t size);

/* Tells the shims helperd is alive. */
void publish_heartbeat(void);

/* Marks the table closed, so every shim goes back to plain TCP at once, and removes it. */
void publish_close(void);

#endif
