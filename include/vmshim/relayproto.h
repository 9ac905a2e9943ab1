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
 *           u32 source CID  u32 source vsock port
 *
 * A guest whose policy says `peers from relay` asks the relay whom the host says its
 * siblings are, on a connection that stays open:
 *
 *   ASK_SIBLINGS (guest -> relay, 20 bytes): a REQUEST of type 4, flags and destination
 *           zero, the source port as in REQUEST
 *   REPLY   ok, or refused
 *   SIBLINGS (relay -> guest), at once and again whenever the host policy in force changes
 *           (libvirt's domains among them): magic  version  u8 type 5  u16 count (at most
 *           RELAYPROTO_SIBLINGS_MAX), then count entries of RELAYPROTO_SIBLING_SIZE bytes:
 *             name[32]   the guest's name in the host policy, NUL-padded (1-32 of
 *                        A-Z a-z 0-9 . _ -)
 *             u32 CID  u32 vsock-base  u32 control port
 *             u8 flags   SELF (bit 0): the guest that asked; REACHES (bit 1): the guest that
 *                        asked may reach its control port through the relay; REACHED (bit
 *                        2): it may reach the asking guest's
 *             u8 number of addresses (0..RELAYPROTO_SIBLING_ADDRS)  u16 zero
 *             uuid[36]   its libvirt domain's, or zeros
 *             RELAYPROTO_SIBLING_ADDRS x (u8 family 4 or 6, u8 prefix length, u16 zero,
 *                        16 bytes of address, IPv4 in the first 4 and zeros after): the
 *                        addresses it may own, the unused ones zero
 *           Anything the guest sends after its ASK_SIBLINGS ends the connection. */
#ifndef VMSHIM_RELAYPROTO_H
#define VMSHIM_RELAYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELAYPROTO_MAGIC 0x564d5352u /* "VMSR" */
#define RELAYPROTO_VERSION 1
#define RELAYPROTO_REQUEST_SIZE 20
#define RELAYPROTO_REPLY_SIZE 8
#define RELAYPROTO_FROM_SIZE 16
#define RELAYPROTO_FROM_PORT_SEEN 1u
#define RELAYPROTO_REQUEST_HALF_CLOSE 1u
#define RELAYPROTO_SIBLINGS_HEADER_SIZE 8
#define RELAYPROTO_SIBLING_ADDRS 4
#define RELAYPROTO_SIBLING_SIZE (32 + 12 + 4 + 36 + RELAYPROTO_SIBLING_ADDRS * 20)
#define RELAYPROTO_SIBLINGS_MAX 256
#define RELAYPROTO_SIBLING_SELF 1u
#define RELAYPROTO_SIBLING_REACHES 2u
#define RELAYPROTO_SIBLING_REACHED 4u
/* The relay's connections into guests come from this many vsock ports: the privileged
 * 1..1023, or where it shares a CID with guests (tests) the ones after its own port. */
#define RELAYPROTO_SOURCE_PORTS 1023u

enum relayproto_type {
	RELAYPROTO_REQUEST = 1,
	RELAYPROTO_REPLY = 2,
	RELAYPROTO_FROM = 3,
	RELAYPROTO_ASK_SIBLINGS = 4,
	RELAYPROTO_SIBLINGS = 5,
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

/* One entry of SIBLINGS, as the host tells it. */
struct relayproto_sibling {
	char name[33];
	char uuid[37]; /* empty: none */
	uint32_t cid, vsock_base, control_port;
	uint8_t flags;
	uint8_t n_addrs;
	struct relayproto_prefix {
		uint8_t family; /* AF_INET or AF_INET6 */
		uint8_t len;
		uint8_t addr[16];
	} addrs[RELAYPROTO_SIBLING_ADDRS];
};

void relayproto_request(uint8_t out[RELAYPROTO_REQUEST_SIZE], uint32_t cid, uint32_t port,
			uint32_t source_port, uint16_t flags);
void relayproto_ask_siblings(uint8_t out[RELAYPROTO_REQUEST_SIZE], uint32_t source_port);
void relayproto_siblings_header(uint8_t out[RELAYPROTO_SIBLINGS_HEADER_SIZE], uint16_t count);
void relayproto_sibling(uint8_t out[RELAYPROTO_SIBLING_SIZE],
			const struct relayproto_sibling *sibling);
void relayproto_reply(uint8_t out[RELAYPROTO_REPLY_SIZE], enum relayproto_status status);
void relayproto_from(uint8_t out[RELAYPROTO_FROM_SIZE], uint32_t cid, uint32_t port,
		     uint16_t flags);

/* Each checks a whole message; 0, or -1 with the broken rule in *why. The request's
 * destination and flags go in *dest, its source port in *source_port; *asks_siblings says
 * whether it is an ASK_SIBLINGS (NULL: only a REQUEST is taken). */
int relayproto_parse_request(const uint8_t in[RELAYPROTO_REQUEST_SIZE],
			     struct relayproto_addr *dest, uint32_t *source_port,
			     bool *asks_siblings, const char **why);
int relayproto_parse_siblings_header(const uint8_t in[RELAYPROTO_SIBLINGS_HEADER_SIZE],
				     uint16_t *count, const char **why);
int relayproto_parse_sibling(const uint8_t in[RELAYPROTO_SIBLING_SIZE],
			     struct relayproto_sibling *out, const char **why);
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
