#ifndef VMSHIM_EPOLL_REPLAY_H
#define VMSHIM_EPOLL_REPLAY_H

#include "fdstate.h"

/* Adds fd again to every epoll set that pre (an FD_PRECONNECT state, or NULL) recorded. */
void epoll_replay(int fd, struct fd_state *pre);

/* Takes fd off every epoll set that pre recorded, before the file on fd is swapped out. */
void epoll_forget(int fd, struct fd_state *pre);

#endif
