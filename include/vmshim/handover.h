/* The first byte on a sibling connection, from the server's shim once the application's
 * accept() holds the connection. Until the client's shim reads it nothing is certain (the
 * server's helperd may find no listener, or be stopped or die before the connection is in
 * the listener's channel, or the application's accept may never take it), so it waits for it before the application's
 * socket is swapped, and falls back to TCP without it. The application never sees it.
 * The server's shim writes the same byte on the doorbell it accepted (helperd/doorbell.c):
 * it took an arrival from the listener's channel for it. */
#ifndef VMSHIM_HANDOVER_H
#define VMSHIM_HANDOVER_H

#define VMSHIM_HANDOVER_BYTE 0x06 /* ASCII ACK */

#endif
