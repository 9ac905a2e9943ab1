#ifndef VMSHIM_SWAP_H
#define VMSHIM_SWAP_H

#include <stdint.h>

#include "fdstate.h"

/* Puts vs, a connected vsock socket, onto fd's number in place of the TCP socket there, with
 * what the application gave that socket: file status flags, signal owner, close-on-exec, the
 * socket options vsock honours too, and the epoll registrations recorded in pre (fd's slot
 * before the swap). Returns 0 when fd is that socket, vs is closed and st is fd's state;
 * -1 with fd, vs and st untouched. */
int swap_in(int fd, int vs, uintptr_t pre, struct fd_state *st);

#endif
