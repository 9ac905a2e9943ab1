#ifndef VMSHIM_REDIRECT_H
#define VMSHIM_REDIRECT_H

#include "vmshim/proto.h"
#include "vmshim/table.h"

/* Connects fd to a sibling over vsock, as route says, and swaps the vsock socket onto fd's
 * number. Returns 0 when fd is now that connection, presented as a TCP connection of family
 * app_family to dest; -1 when the sibling path did not work out, with fd untouched, so that
 * the caller connects it over TCP instead. errno is preserved either way. */
int redirect_connect(int fd, int app_family, const struct vmshim_endpoint *dest,
		     const struct vmshim_route *route);

#endif
