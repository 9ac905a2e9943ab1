/* Encoding and checking the frames helperds send each other (include/vmshim/peerproto.h).
 * Nothing here trusts a count before it has checked it against the bytes that are there. */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "vmshim/bigendian.h"
#include "vmshim/peerproto.h"

long peerproto_header(const uint8_t header[PEERPROTO_HEADER_SIZE], unsigned *type,
		      const char **why)
{
	uint32_t len = get32(header + 8);

	*why = NULL;
	if (get32(header) != PEERPROTO_MAGIC)
		*why = "bad magic";
	else if (header[4] != PEERPROTO_VERSION)
		*why = "unknown version";
	else if (header[5] != PEERPROTO_ANNOUNCE)
		*why = "unknown message type";
	else if (get16(header + 6) != 0)
		*why = "reserved bits set";
	else if (len > PEERPROTO_MAX_PAYLOAD)
		*why = "oversized message";
	if (*why)
		return -1;
	*type = header[5];
	return (long)len;
}

/* n strictly increasing, non-zero ports from p. */
static int parse_ports(const uint8_t *p, size_t n, uint16_t *out)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = get16(p + 2 * i);
		if (out[i] == 0 || (i && out[i] <= out[i - 1]))
			return -1;
	}
	return 0;
}

static int parse_addr(const uint8_t *p, struct peerproto_addr *a)
{
	static const uint8_t zero[12];

	if (get16(p + 2) != 0)
		return -1;
	a->len = p[1];
	memcpy(a->addr, p + 4, 16);
	if (p[0] == 4) {
		a->family = AF_INET;
		return a->len <= 32 && !memcmp(a->addr + 4, zero, 12) ? 0 : -1;
	}
	a->family = AF_INET6;
	return p[0] == 6 && a->len <= 128 ? 0 : -1;
}

int peerproto_parse_announce(const uint8_t *payload, size_t len, struct peerproto_announce *out,
			     const char **why)
{
	if (len < 12) {
		*why = "announcement too short";
		return -1;
	}
	uint32_t na = get32(payload), n4 = get32(payload + 4), n6 = get32(payload + 8);
	if (na > PEERPROTO_MAX_ADDRS || n4 > PEERPROTO_MAX_PORTS || n6 > PEERPROTO_MAX_PORTS) {
		*why = "too many entries";
		return -1;
	}
	if (len != 12 + (size_t)na * PEERPROTO_ADDR_SIZE + 2 * ((size_t)n4 + n6)) {
		*why = "length does not match the counts";
		return -1;
	}
	const uint8_t *p = payload + 12;
	for (uint32_t i = 0; i < na; i++, p += PEERPROTO_ADDR_SIZE) {
		if (parse_addr(p, &out->addrs[i]) < 0) {
			*why = "malformed address";
			return -1;
		}
	}
	if (parse_ports(p, n4, out->ports4) < 0 || parse_ports(p + 2 * n4, n6, out->ports6) < 0) {
		*why = "ports not strictly increasing";
		return -1;
	}
	out->n_addrs = na;
	out->n_ports4 = n4;
	out->n_ports6 = n6;
	*why = NULL;
	return 0;
}

long peerproto_encode_announce(const struct peerproto_announce *a, uint8_t *buf)
{
	size_t len = 12 + a->n_addrs * PEERPROTO_ADDR_SIZE + 2 * (a->n_ports4 + a->n_ports6);

	if (a->n_addrs > PEERPROTO_MAX_ADDRS || a->n_ports4 > PEERPROTO_MAX_PORTS ||
	    a->n_ports6 > PEERPROTO_MAX_PORTS || len > PEERPROTO_MAX_PAYLOAD)
		return -1;
	uint8_t *p = put32(buf, PEERPROTO_MAGIC);
	*p++ = PEERPROTO_VERSION;
	*p++ = PEERPROTO_ANNOUNCE;
	p = put16(p, 0);
	p = put32(p, (uint32_t)len);
	p = put32(p, (uint32_t)a->n_addrs);
	p = put32(p, (uint32_t)a->n_ports4);
	p = put32(p, (uint32_t)a->n_ports6);
	for (size_t i = 0; i < a->n_addrs; i++) {
		const struct peerproto_addr *x = &a->addrs[i];
		*p++ = x->family == AF_INET ? 4 : 6;
		*p++ = (uint8_t)x->len;
		p = put16(p, 0);
		memset(p, 0, 16);
		memcpy(p, x->addr, x->family == AF_INET ? 4 : 16);
		p += 16;
	}
	for (size_t i = 0; i < a->n_ports4; i++)
		p = put16(p, a->ports4[i]);
	for (size_t i = 0; i < a->n_ports6; i++)
		p = put16(p, a->ports6[i]);
	return (long)(p - buf);
}
