#ifndef VMSHIM_HELPERD_CLIENT_H
#define VMSHIM_HELPERD_CLIENT_H

#include "vmshim/proto.h"

/* One request to this guest's helperd (with fd attached unless -1) and its reply (with
 * *reply_fd, or -1). Returns 0; HELPERD_NONE when no helperd listens on its socket; -1 when
 * it cannot be reached otherwise or answers nonsense. Bounded: a helperd that does not
 * answer within a second counts as absent. */
#define HELPERD_NONE (-2)
int helperd_call(uint32_t type, uint32_t port, int fd, struct vmshim_reply *reply,
		 int *reply_fd);

/* A request that needs no answer. */
void helperd_notify(uint32_t type, uint32_t port);

#endif
