#ifndef HELPERD_COUNTERS_H
#define HELPERD_COUNTERS_H

#include "vmshim/counters.h"

/* Creates the shims' counter page (include/vmshim/counters.h). 0 or -1 (logged). */
int counters_open(void);

/* The memfd to hand to a shim (helperd keeps it), or -1. */
int counters_fd(void);

/* The page, for reading; NULL if there is none. */
const struct vmshim_counters *counters_page(void);

/* Marks the page closed, so that shims ask the next helperd for a fresh one. */
void counters_close(void);

#endif
