/* What helperds of sibling guests tell each other over vsock, on the control port of the
 * receiver (policy: `control-port`). Each helperd keeps one connection to every peer and
 * sends on it, every third of the liveness timeout, a frame that says what it owns and
 * serves; it only reads on the connections peers open to it.
 *
 * A frame, all numbers in network order:
 *   u32 magic "VMSP"  u8 version (1)  u8 type  u16 zero  u32 length of the payload
 * then the payload. A frame that breaks any rule below ends the connection: a stream that
 * lost its framing cannot be trusted to find it again.
 *
 * ANNOUNCE payload:
 *   u32 n_addrs  u32 n_ports4  u32 n_ports6
 *   n_addrs x { u8 family (4 or 6)  u8 prefix length  u16 zero  u8 address[16] }
 *   n_ports4 x u16, then n_ports6 x u16: TCP ports served over vsock, strictly increasing,
 *   never 0. An IPv4 address fills the first 4 bytes of address, the rest are zero. */
#ifndef VMSHIM_PEERPROTO_H
#define VMSHIM_PEERPROTO_H

#include <stddef.h>
#include <stdint.h>

#define PEERPROTO_MAGIC 0x564d5350u /* "VMSP" */
#define PEERPROTO_VERSION 1
#define PEERPROTO_HEADER_SIZE 12
#define PEERPROTO_MAX_PAYLOAD 16384
#define PEERPROTO_MAX_ADDRS 64
#define PEERPROTO_ADDR_SIZE 20
#define PEERPROTO_MAX_PORTS                                                                       \
	((PEERPROTO_MAX_PAYLOAD - 12 - PEERPROTO_MAX_ADDRS * PEERPROTO_ADDR_SIZE) / 2)

enum peerproto_type {
	PEERPROTO_ANNOUNCE = 1,
};

struct peerproto_addr {
	int family; /* AF_INET or AF_INET6 */
	unsigned len;
	uint8_t addr[16];
};

struct peerproto_announce {
	size_t n_addrs, n_ports4, n_ports6;
	struct peerproto_addr addrs[PEERPROTO_MAX_ADDRS];
	uint16_t ports4[PEERPROTO_MAX_PORTS], ports6[PEERPROTO_MAX_PORTS];
};

/* Checks a frame header. Returns the payload length it announces, or -1 with the reason. */
long peerproto_header(const uint8_t header[PEERPROTO_HEADER_SIZE], unsigned *type,
		      const char **why);

/* Parses an ANNOUNCE payload into *out. 0, or -1 with the reason in *why (a constant). */
int peerproto_parse_announce(const uint8_t *payload, size_t len, struct peerproto_announce *out,
			     const char **why);

/* Writes a whole ANNOUNCE frame into buf (room for PEERPROTO_HEADER_SIZE +
 * PEERPROTO_MAX_PAYLOAD bytes). Ports must be strictly increasing. Returns its length, or
 * -1 if it would not fit. */
long peerproto_encode_announce(const struct peerproto_announce *a, uint8_t *buf);

#endif
