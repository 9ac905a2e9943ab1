/* What the hooks that connect share: connect() (connect.c), sendto/sendmsg/sendmmsg
 * (send.c), and connect() on a redirected connection (disconnect.c). */
#ifndef VMSHIM_CONNECT_H
#define VMSHIM_CONNECT_H

#include <stdbool.h>
#include <sys/socket.h>

#include "fdstate.h"
#include "redirect.h"

/* Makes fd a sibling connection to addr if addr is a sibling's (redirect_connect); a socket
 * left to TCP is the kernel's alone from then on. */
enum redirect_result connect_sibling(int fd, const struct sockaddr *addr, socklen_t len,
				     bool connecting);

/* Whether TCP refuses addr, an AF_INET or AF_INET6 address of full length, on socket fd
 * before it looks for a route (tcp_refuses.c). */
bool tcp_refuses(int fd, const struct sockaddr *addr);

/* Whether fd, a fresh TCP socket, may have another descriptor, which a swap would leave
 * unconnected: then it stays on TCP (duplicates.c). */
bool duplicated_before_connect(int fd);

/* connect() on fd, a redirected connection whose state is st, as on a connected TCP socket:
 * 0 or -1 with errno; but *afresh is set when fd, disconnected before, now holds a new TCP
 * socket for the caller to connect as any other (disconnect.c). */
int redirected_connect(int fd, struct fd_state *st, const struct sockaddr *addr, socklen_t len,
		       bool *afresh);

/* Puts a new TCP socket with st's options on fd in place of its disconnected vsock socket:
 * 0, or -1 with errno (EBADF: fd was closed meanwhile). */
int redirected_afresh(int fd, struct fd_state *st);

#endif
