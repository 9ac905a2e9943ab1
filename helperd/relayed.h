/* Connections the host's relay makes to this guest begin with its FROM message
 * (include/vmshim/relayproto.h): the guest and port they come from. helperd reads it, then
 * takes the connection as if it had come from there directly. */
#ifndef HELPERD_RELAYED_H
#define HELPERD_RELAYED_H

#include <stdint.h>
#include <linux/vm_sockets.h>

/* Gets a connection once its FROM is read, with the address FROM names; tag is the
 * caller's, given to relayed_start. */
typedef void relayed_fn(int fd, const struct sockaddr_vm *from, uint32_t tag);

/* fd came from the relay. Reads FROM within the connect-timeout, then hands fd to done; a
 * bad or late FROM is logged, counted as a bad message, and fd closed. */
void relayed_start(int fd, relayed_fn *done, uint32_t tag);

/* Closes the connections whose FROM is late (helperd's tick). */
void relayed_expire(int64_t now_ms);

void relayed_shutdown(void);

#endif
