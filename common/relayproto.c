/* The relay's messages (include/vmshim/relayproto.h). */
#include <errno.h>
#include <stdio.h>
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

void relayproto_ask_siblings(uint8_t out[RELAYPROTO_REQUEST_SIZE], uint32_t source_port)
{
	relayproto_request(out, 0, 0, source_port, 0);
	out[5] = RELAYPROTO_ASK_SIBLINGS;
}

void relayproto_siblings_header(uint8_t out[RELAYPROTO_SIBLINGS_HEADER_SIZE], uint16_t count)
{
	start(out, RELAYPROTO_SIBLINGS);
	put16(out + 6, count);
}

void relayproto_sibling(uint8_t out[RELAYPROTO_SIBLING_SIZE],
			const struct relayproto_sibling *sibling)
{
	memset(out, 0, RELAYPROTO_SIBLING_SIZE);
	memcpy(out, sibling->name, strnlen(sibling->name, 32));
	put32(out + 32, sibling->cid);
	put32(out + 36, sibling->vsock_base);
	put32(out + 40, sibling->control_port);
	out[44] = sibling->flags;
	out[45] = sibling->n_addrs;
	memcpy(out + 48, sibling->uuid, strnlen(sibling->uuid, 36));
	for (unsigned i = 0; i < sibling->n_addrs && i < RELAYPROTO_SIBLING_ADDRS; i++) {
		uint8_t *a = out + 84 + 20 * i;
		const struct relayproto_prefix *p = &sibling->addrs[i];
		a[0] = p->family == AF_INET6 ? 6 : 4;
		a[1] = p->len;
		memcpy(a + 4, p->addr, p->family == AF_INET6 ? 16 : 4);
	}
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
			     bool *asks_siblings, const char **why)
{
	uint16_t flags;
	bool asks = asks_siblings && in[5] == RELAYPROTO_ASK_SIBLINGS;

	if (check_start(in, asks ? RELAYPROTO_ASK_SIBLINGS : RELAYPROTO_REQUEST, why) < 0 ||
	    check_flags(in, asks ? 0 : RELAYPROTO_REQUEST_HALF_CLOSE, &flags, why) < 0)
		return -1;
	if (asks && (get32(in + 8) || get32(in + 12))) {
		*why = "a destination in ASK_SIBLINGS";
		return -1;
	}
	if (asks_siblings)
		*asks_siblings = asks;
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

int relayproto_parse_siblings_header(const uint8_t in[RELAYPROTO_SIBLINGS_HEADER_SIZE],
				     uint16_t *count, const char **why)
{
	if (check_start(in, RELAYPROTO_SIBLINGS, why) < 0)
		return -1;
	*count = get16(in + 6);
	if (*count > RELAYPROTO_SIBLINGS_MAX) {
		*why = "more siblings than RELAYPROTO_SIBLINGS_MAX";
		return -1;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* A NUL-padded text field of n bytes, of the characters in set only, into out (n + 1
 * bytes): its length, or -1. */
static int text_field(const uint8_t *in, size_t n, const char *set, char *out)
{
	size_t len = strnlen((const char *)in, n);

	memcpy(out, in, len);
	out[len] = '\0';
	if (!all_zero(in + len, n - len) || strspn(out, set) != len)
		return -1;
	return (int)len;
}

/* One address of an entry: 0, or -1 with why. */
static int parse_prefix(const uint8_t *a, struct relayproto_prefix *p, const char **why)
{
	unsigned bytes = a[0] == 6 ? 16 : 4;

	*p = (struct relayproto_prefix){.family = a[0] == 6 ? AF_INET6 : AF_INET, .len = a[1]};
	if (a[0] != 4 && a[0] != 6)
		*why = "an address of no known family";
	else if (a[1] > bytes * 8)
		*why = "a prefix longer than its address";
	else if (a[2] || a[3] || !all_zero(a + 4 + bytes, 16 - bytes))
		*why = "reserved bytes of an address not zero";
	else {
		memcpy(p->addr, a + 4, bytes);
		return 0;
	}
	return -1;
}

int relayproto_parse_sibling(const uint8_t in[RELAYPROTO_SIBLING_SIZE],
			     struct relayproto_sibling *out, const char **why)
{
	static const char name_set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789._-";

	*out = (struct relayproto_sibling){
		.cid = get32(in + 32),
		.vsock_base = get32(in + 36),
		.control_port = get32(in + 40),
		.flags = in[44],
		.n_addrs = in[45],
	};
	if (text_field(in, 32, name_set, out->name) < 1)
		*why = "a name that is not a policy name";
	else if (text_field(in + 48, 36, "0123456789abcdef-", out->uuid) < 0)
		*why = "a UUID that is not one";
	else if (out->flags & ~(RELAYPROTO_SIBLING_SELF | RELAYPROTO_SIBLING_REACHES |
				RELAYPROTO_SIBLING_REACHED))
		*why = "unknown flags";
	else if (out->n_addrs > RELAYPROTO_SIBLING_ADDRS || in[46] || in[47])
		*why = out->n_addrs > RELAYPROTO_SIBLING_ADDRS ? "too many addresses"
							       : "reserved bytes not zero";
	else if (!all_zero(in + 84 + 20 * out->n_addrs,
			   20 * (RELAYPROTO_SIBLING_ADDRS - out->n_addrs)))
		*why = "an unused address not zero";
	else {
		for (unsigned i = 0; i < out->n_addrs; i++)
			if (parse_prefix(in + 84 + 20 * i, &out->addrs[i], why) < 0)
				return -1;
		return 0;
	}
	return -1;
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
