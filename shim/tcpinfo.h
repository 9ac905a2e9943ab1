/* TCP_INFO on a redirected connection (tcpinfo.c). */
#ifndef VMSHIM_TCPINFO_H
#define VMSHIM_TCPINFO_H

#include <sys/socket.h>

#include "fdstate.h"

/* The bits shutdown(how) adds to a connection's conn.shut. */
static inline unsigned tcp_info_shut_bits(int how)
{
	return (unsigned)how + 1; /* SHUT_RD 1, SHUT_WR 2, SHUT_RDWR 3 */
}

/* getsockopt(IPPROTO_TCP, TCP_INFO) on fd, the redirected connection st: 0, or -1 with
 * errno. *len must not be negative. */
int tcp_info_get(int fd, const struct fd_state *st, void *val, socklen_t *len);

#endif
