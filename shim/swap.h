#ifndef VMSHIM_SWAP_H
#define VMSHIM_SWAP_H

#include <stdbool.h>

#include "fdstate.h"

enum swap_result {
	SWAP_DONE,    /* fd is the vsock socket, st its state, vs closed */
	SWAP_FAILED,  /* fd, vs and st untouched */
	SWAP_FD_GONE, /* fd was closed (or replaced) meanwhile and is not touched; vs closed,
		       * st dropped */
};

/* Puts vs, a connected vsock socket (or, for a pending connect, a placeholder or the
 * application's own TCP socket), onto fd's number in place of the file there, with what the
 * application gave that file: file status flags, signal owner, close-on-exec, the epoll
 * registrations recorded in pre, and the socket options vsock honours too, read from
 * `from` (fd itself, the socket kept aside, or -1 for none). pre is the state in fd's slot,
 * held by the caller, that stands for that socket (NULL for an empty slot, on a descriptor
 * nobody else knows yet): the swap happens only while the slot holds it
 * (fdstate_swap_begin). */
enum swap_result swap_in(int fd, int vs, int from, struct fd_state *pre, struct fd_state *st);

/* Whether a swap carries this option over from `from` (a SOL_SOCKET option that vsock
 * honours too): one set on a socket is noted as FD_OPT_SOCKET_LEVEL, and a socket without it
 * is swapped with from -1, which saves reading them all. */
bool swap_carries(int level, int name);

#endif
