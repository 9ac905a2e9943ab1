/* What a guest and vmshim-relay, the forwarder on the host, say before any application byte
 * flows (README, "Host side"). A guest whose policy reaches a peer `via relay` connects to
 * the relay instead of the peer and sends a REQUEST; the relay checks it against the host
 * policy, connects to the destination, writes FROM to it and only then answers with a REPLY,
 * so the guest can still fall back to TCP. After that the relay forwards bytes both ways.
 * All numbers in network order; every message has a fixed size.
 *
 *   REQUEST (guest -> relay, 20 bytes): u32 magic "VMSR"  u8 version 1  u8 type 1
 *           u16 flags (bit 0, HALF_CLOSE: relay only over a path that carries half-closes;
 *           a relay older than the flag refuses it as a bad request, so the guest uses TCP)
 *           u32 destination CID  u32 destination vsock port
 *           u32 source port: the caller's own vsock port, used only where the host cannot
 *           see it (hybrid vsock: Firecracker, Cloud Hypervisor)
 *   REPLY   (relay -> guest, 8 bytes): magic  version  u8 type 2  u8 status  u8 zero
 *   FROM    (relay -> destination, 16 bytes): magic  version  u8 type 3
 *           u16 flags (bit 0: the source port was seen by the host, not told by the guest)
 *           u32 source CID  u32 source vsock port */
#ifndef VMSHIM_RELAYPROTO_H
#define VMSHIM_RELAYPROTO_H

#include <stddef.h>
#include <stdint.h>

#define RELAYPROTO_MAGIC 0x564d5352u /* "VMSR" */
#define RELAYPROTO_VERSION 1
#define RELAYPROTO_REQUEST_SIZE 20
#define RELAYPROTO_REPLY_SIZE 8
#define RELAYPROTO_FROM_SIZE 16
#define RELAYPROTO_FROM_PORT_SEEN 1u
#define RELAYPROTO_REQUEST_HALF_CLOSE 1u
/* The relay's connections into guests come from this many vsock ports: the privileged
 * 1..1023, or where it shares a CID with guests (tests) the ones after its own port. */
#define RELAYPROTO_SOURCE_PORTS 1023u

enum relayproto_type {
	RELAYPROTO_REQUEST = 1,
	RELAYPROTO_REPLY = 2,
	RELAYPROTO_FROM = 3,
};

enum relayproto_status {
	RELAY_OK = 0,
	RELAY_REFUSED = 1,     /* the host policy does not let the caller reach it */
	RELAY_UNREACHABLE = 2, /* the destination did not take the connection in time */
	RELAY_BUSY = 3,        /* a connection cap of the relay is reached */
	RELAY_BAD_REQUEST = 4, /* the request broke a rule */
	RELAY_NO_HALF_CLOSE = 5, /* asked for HALF_CLOSE, and a hybrid VMM on the way loses
				  * half-closes (README, "Host side"); nothing was dialled */
};

struct relayproto_addr {
	uint32_t cid, port;
	uint16_t flags; /* FROM's, or REQUEST's */
};

void relayproto_request(uint8_t out[RELAYPROTO_REQUEST_SIZE], uint32_t cid, uint32_t port,
			uint32_t source_port, uint16_t flags);
void relayproto_reply(uint8_t out[RELAYPROTO_REPLY_SIZE], enum relayproto_status status);
void relayproto_from(uint8_t out[RELAYPROTO_FROM_SIZE], uint32_t cid, uint32_t port,
		     uint16_t flags);

/* Each checks a whole message; 0, or -1 with the broken rule in *why. The request's
 * destination and flags go in *dest, its source port in *source_port. */
int relayproto_parse_request(const uint8_t in[RELAYPROTO_REQUEST_SIZE],
			     struct relayproto_addr *dest, uint32_t *source_port,
			     const char **why);
int relayproto_parse_reply(const uint8_t in[RELAYPROTO_REPLY_SIZE],
			   enum relayproto_status *status, const char **why);
int relayproto_parse_from(const uint8_t in[RELAYPROTO_FROM_SIZE], struct relayproto_addr *from,
			  const char **why);

const char *relayproto_status_name(enum relayproto_status status);

/* Reads more of a fixed-size message of size bytes from fd, without blocking, into buf,
 * which holds *have of them: 1 once it is whole, 0 while more is to come, -1 at EOF (errno
 * 0) or on an error. Never reads past the message: what follows belongs to the connection. */
int relayproto_recv(int fd, uint8_t *buf, unsigned size, unsigned *have);

#endif
