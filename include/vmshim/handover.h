/* The first byte on a sibling connection, from the server's helperd: the application has
 * taken the connection. Until the client's shim reads it, nothing is certain (the server's
 * helperd may find no listener, be stopped, or die with the connection in its hands), so
 * the shim waits for it before the application's socket is swapped, and falls back to TCP
 * without it. The application never sees this byte. */
#ifndef VMSHIM_HANDOVER_H
#define VMSHIM_HANDOVER_H

#define VMSHIM_HANDOVER_BYTE 0x06 /* ASCII ACK */

#endif
