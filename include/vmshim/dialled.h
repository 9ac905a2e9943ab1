/* The first bytes of every sibling connection, from the client's shim to the server's
 * helperd: the TCP address and port the application dialled. Several listeners may share a
 * port on different addresses of one guest (and belong to different users); TCP delivers a
 * connection to the one bound to the dialled address, else to the one bound to the
 * wildcard, and helperd needs the address to do the same. It follows the relay's REPLY on a
 * relayed connection (so it comes after the relay's FROM at the server), and nothing of it
 * reaches the application.
 *
 *   DIALLED (24 bytes): "VMSD"  u8 version 1  u8 family (4 or 6)  u16 port (network order)
 *           16 bytes address: IPv6, or IPv4 in the first 4 and zeros after
 *
 * The server trusts none of it beyond choosing among its own listeners: the address must be
 * one its guest has, the family and port those of the vsock port the connection came to. */
#ifndef VMSHIM_DIALLED_H
#define VMSHIM_DIALLED_H

#include <stdint.h>

#include "vmshim/endpoint.h"

#define DIALLED_SIZE 24

void dialled_encode(uint8_t out[DIALLED_SIZE], const struct vmshim_endpoint *dest);

/* 0 with the address in *dest (an AF_INET or AF_INET6 endpoint), or -1 with the broken
 * rule in *why. */
int dialled_parse(const uint8_t in[DIALLED_SIZE], struct vmshim_endpoint *dest,
		  const char **why);

#endif
