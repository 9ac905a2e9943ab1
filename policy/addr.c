/* Addresses and prefixes of the policy (policy/FORMAT.md, "Addresses"). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "policy_addr.h"
#include "policy_internal.h"

/* Ranges that are never a peer's. An entry inside one "is" it; an entry around one
 * "contains" it: either way it is rejected. */
static const struct {
	int family;
	uint8_t addr[16];
	unsigned len;
	const char *text; /* the range as written in messages */
	const char *what;
	const char *hint;
} reserved[] = {
	{ AF_INET, { 0, 0, 0, 0 }, 32, "0.0.0.0", "the unspecified address", "" },
	{ AF_INET, { 127 }, 8, "127.0.0.0/8", "loopback", "" },
	{ AF_INET, { 224 }, 4, "224.0.0.0/4", "multicast", "" },
	{ AF_INET, { 255, 255, 255, 255 }, 32, "255.255.255.255", "the broadcast address", "" },
	{ AF_INET6, { 0 }, 128, "::", "the unspecified address", "" },
	{ AF_INET6, { [15] = 1 }, 128, "::1", "loopback", "" },
	{ AF_INET6, { 0xff }, 8, "ff00::/8", "multicast", "" },
	{ AF_INET6, { [10] = 0xff, [11] = 0xff }, 96, "::ffff:0:0/96", "IPv4-mapped IPv6",
	  ": write IPv4 addresses as IPv4" },
};

static unsigned max_len(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* 1 if the first bits bits of a and b are equal. */
static int same_bits(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

/* 1 if some bit at or after position len is set. */
static int has_host_bits(const struct policy_prefix *p)
{
	for (unsigned bit = p->len; bit < max_len(p->family); bit++)
		if (p->addr[bit / 8] & (0x80 >> (bit % 8)))
			return 1;
	return 0;
}

int policy_prefix_is_single(const struct policy_prefix *p)
{
	return p->len == max_len(p->family);
}

const struct policy_prefix *policy_first_single(const struct policy_prefix *p, size_t n,
					       int family)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].family == family && policy_prefix_is_single(&p[i]))
			return &p[i];
	return NULL;
}

int policy_prefix_overlaps(const struct policy_prefix *a, const struct policy_prefix *b)
{
	if (a->family != b->family)
		return 0;
	return same_bits(a->addr, b->addr, a->len < b->len ? a->len : b->len);
}

int policy_prefix_cmp(const struct policy_prefix *a, const struct policy_prefix *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	int c = memcmp(a->addr, b->addr, sizeof a->addr);
	if (c != 0)
		return c;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return 0;
}

const char *policy_prefix_format(const struct policy_prefix *p, char buf[POLICY_PREFIX_STRLEN])
{
	char addr[INET6_ADDRSTRLEN];

	if (!inet_ntop(p->family, p->addr, addr, sizeof addr))
		snprintf(addr, sizeof addr, "?");
	if (policy_prefix_is_single(p))
		snprintf(buf, POLICY_PREFIX_STRLEN, "%s", addr);
	else
		snprintf(buf, POLICY_PREFIX_STRLEN, "%s/%u", addr, p->len);
	return buf;
}

int policy_prefix_parse(const char *text, struct policy_prefix *p, char *why, size_t whylen)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);

	memset(p->addr, 0, sizeof p->addr);
	p->family = memchr(text, ':', alen) ? AF_INET6 : AF_INET;
	const char *fam = p->family == AF_INET ? "IPv4" : "IPv6";

	if (alen == 0 || alen >= sizeof addr) {
		snprintf(why, whylen, "bad address '%.*s'", alen > 64 ? 64 : (int)alen, text);
		return -1;
	}
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(p->family, addr, p->addr) != 1) {
		snprintf(why, whylen, "bad %s address '%s'", fam, addr);
		return -1;
	}

	p->len = max_len(p->family);
	if (slash) {
		uint64_t len;
		if (slash[1] == '\0') {
			snprintf(why, whylen, "missing prefix length after '%s/'", addr);
			return -1;
		}
		if (policy_parse_number(slash + 1, &len) < 0) {
			snprintf(why, whylen, "prefix length '%.64s' of %s is not a number",
				 slash + 1, addr);
			return -1;
		}
		if (len > max_len(p->family)) {
			snprintf(why, whylen, "prefix length %.20s of %s is out of range 0..%u",
				 slash + 1, addr, max_len(p->family));
			return -1;
		}
		p->len = (unsigned)len;
	}

	return policy_prefix_check(p, why, whylen);
}

int policy_prefix_contains(const struct policy_prefix *outer, const struct policy_prefix *inner)
{
	return outer->family == inner->family && outer->len <= inner->len &&
	       same_bits(outer->addr, inner->addr, outer->len);
}

int policy_prefix_check(const struct policy_prefix *p, char *why, size_t whylen)
{
	char shown[POLICY_PREFIX_STRLEN], addr[INET6_ADDRSTRLEN];

	inet_ntop(p->family, p->addr, addr, sizeof addr);
	if (p->len > max_len(p->family)) {
		snprintf(why, whylen, "prefix length %u of %s is out of range 0..%u", p->len, addr,
			 max_len(p->family));
		return -1;
	}
	if (has_host_bits(p)) {
		struct policy_prefix net = *p;
		for (unsigned bit = net.len; bit < max_len(net.family); bit++)
			net.addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
		snprintf(why, whylen, "%s/%u has host bits set (the prefix is %s)", addr, p->len,
			 policy_prefix_format(&net, shown));
		return -1;
	}

	for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
		if (reserved[i].family != p->family)
			continue;
		unsigned common = p->len < reserved[i].len ? p->len : reserved[i].len;
		if (!same_bits(p->addr, reserved[i].addr, common))
			continue;
		policy_prefix_format(p, shown);
		if (p->len == reserved[i].len)
			snprintf(why, whylen, "%s is %s%s", shown, reserved[i].what,
				 reserved[i].hint);
		else if (p->len > reserved[i].len)
			snprintf(why, whylen, "%s is %s (%s)%s", shown, reserved[i].what,
				 reserved[i].text, reserved[i].hint);
		else
			snprintf(why, whylen, "%s contains %s (%s)", shown, reserved[i].what,
				 reserved[i].text);
		return -1;
	}
	return 0;
}
