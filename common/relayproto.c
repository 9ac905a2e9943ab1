/* The relay's three fixed-size messages (include/vmshim/relayproto.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "vmshim/bigendian.h"
#include "vmshim/relayproto.h"

/* magic, version, type: the first 6 bytes of every message */
static void start(uint8_t *out, enum relayproto_type type)
{
	put32(out, RELAYPROTO_MAGIC);
	out[4] = RELAYPROTO_VERSION;
	out[5] = (uint8_t)type;
}

static int check_start(const uint8_t *in, enum relayproto_type type, const char **why)
{
	if (get32(in) != RELAYPROTO_MAGIC)
		*why = "bad magic";
	else if (in[4] != RELAYPROTO_VERSION)
		*why = "unknown version";
	else if (in[5] != type)
		*why = "unexpected message type";
	else
		return 0;
	return -1;
}

/* The u16 flags after the start of a REQUEST or FROM, of which only `known` may be set. */
static int check_flags(const uint8_t *in, uint16_t known, uint16_t *flags, const char **why)
{
	*flags = (uint16_t)(in[6] << 8 | in[7]);
	if (*flags & ~known) {
		*why = "unknown flags";
		return -1;
	}
	return 0;
}

void relayproto_request(uint8_t out[RELAYPROTO_REQUEST_SIZE], uint32_t cid, uint32_t port,
			uint32_t source_port, uint16_t flags)
{
	start(out, RELAYPROTO_REQUEST);
	put16(out + 6, flags);
	put32(out + 8, cid);
	put32(out + 12, port);
	put32(out + 16, source_port);
}

void relayproto_reply(uint8_t out[RELAYPROTO_REPLY_SIZE], enum relayproto_status status)
{
	start(out, RELAYPROTO_REPLY);
	out[6] = (uint8_t)status;
	out[7] = 0;
}

void relayproto_from(uint8_t out[RELAYPROTO_FROM_SIZE], uint32_t cid, uint32_t port,
		     uint16_t flags)
{
	start(out, RELAYPROTO_FROM);
	put16(out + 6, flags);
	put32(out + 8, cid);
	put32(out + 12, port);
}

int relayproto_parse_request(const uint8_t in[RELAYPROTO_REQUEST_SIZE],
			     struct relayproto_addr *dest, uint32_t *source_port,
			     const char **why)
{
	uint16_t flags;

	if (check_start(in, RELAYPROTO_REQUEST, why) < 0 ||
	    check_flags(in, RELAYPROTO_REQUEST_HALF_CLOSE, &flags, why) < 0)
		return -1;
	*dest = (struct relayproto_addr){.cid = get32(in + 8), .port = get32(in + 12),
					 .flags = flags};
	*source_port = get32(in + 16);
	return 0;
}

int relayproto_parse_reply(const uint8_t in[RELAYPROTO_REPLY_SIZE],
			   enum relayproto_status *status, const char **why)
{
	if (check_start(in, RELAYPROTO_REPLY, why) < 0)
		return -1;
	if (in[6] > RELAY_NO_HALF_CLOSE || in[7]) {
		*why = in[7] ? "reserved byte not zero" : "unknown status";
		return -1;
	}
	*status = (enum relayproto_status)in[6];
	return 0;
}

int relayproto_parse_from(const uint8_t in[RELAYPROTO_FROM_SIZE], struct relayproto_addr *from,
			  const char **why)
{
	uint16_t flags;

	if (check_start(in, RELAYPROTO_FROM, why) < 0 ||
	    check_flags(in, RELAYPROTO_FROM_PORT_SEEN, &flags, why) < 0)
		return -1;
	*from = (struct relayproto_addr){.cid = get32(in + 8), .port = get32(in + 12),
					 .flags = flags};
	return 0;
}

int relayproto_recv(int fd, uint8_t *buf, unsigned size, unsigned *have)
{
	ssize_t n = recv(fd, buf + *have, size - *have, MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0) {
		errno = 0;
		return -1;
	}
	*have += (unsigned)n;
	return *have == size;
}

const char *relayproto_status_name(enum relayproto_status status)
{
	static const char *const names[] = {
		[RELAY_OK] = "ok",
		[RELAY_REFUSED] = "refused by the host policy",
		[RELAY_UNREACHABLE] = "destination unreachable",
		[RELAY_BUSY] = "relay busy",
		[RELAY_BAD_REQUEST] = "bad request",
		[RELAY_NO_HALF_CLOSE] = "no half-close on the way",
	};

	return (unsigned)status < sizeof names / sizeof names[0] ? names[status] : "unknown";
}
