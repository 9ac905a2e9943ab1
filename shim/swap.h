#ifndef VMSHIM_SWAP_H
#define VMSHIM_SWAP_H

#include "fdstate.h"

enum swap_result {
	SWAP_DONE,    /* fd is the vsock socket, st its state, vs closed */
	SWAP_FAILED,  /* fd, vs and st untouched */
	SWAP_FD_GONE, /* fd was closed (or replaced) meanwhile and is not touched; vs closed,
		       * st dropped */
};

/* Puts vs, a connected vsock socket, onto fd's number in place of the TCP socket there, with
 * what the application gave that socket: file status flags, signal owner, close-on-exec, the
 * socket options vsock honours too, and the epoll registrations recorded in pre. pre is the
 * state in fd's slot, held by the caller, that stands for that socket (NULL for an empty
 * slot, on a descriptor nobody else knows yet): the swap happens only while the slot holds
 * it (fdstate_swap_begin). */
enum swap_result swap_in(int fd, int vs, struct fd_state *pre, struct fd_state *st);

#endif
