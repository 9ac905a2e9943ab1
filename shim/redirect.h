#ifndef VMSHIM_REDIRECT_H
#define VMSHIM_REDIRECT_H

#include <stdbool.h>

#include "vmshim/endpoint.h"
#include "vmshim/table.h"

enum redirect_result {
	REDIRECT_TCP,         /* the sibling path did not work out: fd untouched, for TCP */
	REDIRECT_DONE,        /* fd is the connection */
	REDIRECT_IN_PROGRESS, /* the same, on a non-blocking socket: connect() says EINPROGRESS */
	REDIRECT_FD_GONE,     /* fd was closed meanwhile (its number may be another file's now) */
};

/* Connects fd to a sibling over vsock, as route says, and swaps the vsock socket onto fd's
 * number, presented as a TCP connection of family app_family to dest. connecting: for
 * connect() (rather than sendto/sendmsg with MSG_FASTOPEN), which keeps the non-blocking
 * contract. errno is preserved. */
enum redirect_result redirect_connect(int fd, int app_family, const struct vmshim_endpoint *dest,
				      const struct vmshim_route *route, bool connecting);

#endif
