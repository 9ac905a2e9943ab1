#ifndef VMSHIM_TABLE_BUILD_H
#define VMSHIM_TABLE_BUILD_H

#include <stdint.h>

#include "policy.h"
#include "vmshim/table.h"

/* A freshly allocated table body for the guest whose peer index is self (-1: none), and its
 * size in *size; NULL when out of memory. */
void *table_build(const struct policy *policy, int self, uint32_t *size);

#endif
