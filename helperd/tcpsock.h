/* Whether a socket a local process passed to helperd is what it claims to be. */
#ifndef HELPERD_TCPSOCK_H
#define HELPERD_TCPSOCK_H

#include <stdbool.h>

/* A TCP socket (AF_INET or AF_INET6, SOCK_STREAM, IPPROTO_TCP) in helperd's own network
 * namespace: only there do its addresses mean what they mean to helperd. A UDP or ping
 * socket can show the same two addresses as a TCP connection, and so can any socket in a
 * namespace of the sender's own. */
bool tcp_socket_here(int fd);

/* An int socket option of fd, or -1 when it cannot be read. */
int sock_int_option(int fd, int level, int name);

#endif
