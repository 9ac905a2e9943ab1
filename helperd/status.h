#ifndef HELPERD_STATUS_H
#define HELPERD_STATUS_H

#include <stdbool.h>
#include <stddef.h>

/* What `vmshimctl status` shows: this guest, its peers and the counters, as text or JSON.
 * A malloc'ed string and its length in *len, or NULL. */
char *status_render(bool json, size_t *len);

#endif
