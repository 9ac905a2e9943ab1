#ifndef SHIM_COUNTERS_H
#define SHIM_COUNTERS_H

#include "vmshim/counters.h"

/* Adds one to a counter of helperd's page (include/vmshim/counters.h). Only on paths that
 * redirect or fall back, never on a plain connect. The first call of a process asks helperd
 * for the page; without one, nothing is counted. */
void shim_count(enum vmshim_count what);

#endif
