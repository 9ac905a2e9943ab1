/* The lines of the hybrid vsock handshake (Firecracker, Cloud Hypervisor): the relay writes
 * "CONNECT <port>\n" to a VM's socket, the VMM answers "OK <port>\n", where port is the
 * host side's vsock port of the new connection, or closes. */
#ifndef RELAY_HYBRID_LINE_H
#define RELAY_HYBRID_LINE_H

#include <stddef.h>
#include <stdint.h>

/* The longest answer: "OK 4294967294\n". */
#define HYBRID_OK_MAX 14

/* "CONNECT <port>\n" into buf (at least 24 bytes); its length. */
int hybrid_connect_line(char *buf, uint32_t port);

/* Whether the len bytes at line are exactly "OK ", a port 1..4294967294 in decimal without
 * sign, spaces or leading zeros, and "\n"; the port in *port. */
int hybrid_parse_ok(const char *line, size_t len, uint32_t *port);

#endif
