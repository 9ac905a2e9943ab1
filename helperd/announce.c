/* This guest's announcement (announce.h); common/peerproto.c encodes it. */
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>

#include "announce.h"
#include "helperd.h"
#include "policy_addr.h"
#include "vmshim/peerproto.h"

static struct policy_prefix self_owned[PEERPROTO_MAX_ADDRS];
static size_t n_self_owned;
static struct peerproto_announce said;
static uint8_t frame[PEERPROTO_HEADER_SIZE + PEERPROTO_MAX_PAYLOAD];
static long frame_len = -1;

void announce_find_owned(void)
{
	const struct policy_peer *self = helperd_self();
	struct ifaddrs *ifs, *i;
	char why[256];

	n_self_owned = 0;
	if (!self)
		return;
	if (self->n_prefixes) {
		for (size_t j = 0; j < self->n_prefixes && n_self_owned < PEERPROTO_MAX_ADDRS; j++)
			self_owned[n_self_owned++] = self->prefixes[j];
		return;
	}
	if (getifaddrs(&ifs) < 0)
		return;
	for (i = ifs; i && n_self_owned < PEERPROTO_MAX_ADDRS; i = i->ifa_next) {
		struct policy_prefix p = {0};
		if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			p = (struct policy_prefix){.family = AF_INET, .len = 32};
			memcpy(p.addr, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			const struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
			if (IN6_IS_ADDR_LINKLOCAL(a))
				continue;
			p = (struct policy_prefix){.family = AF_INET6, .len = 128};
			memcpy(p.addr, a, 16);
		} else {
			continue;
		}
		if (policy_prefix_check(&p, why, sizeof(why)) == 0)
			self_owned[n_self_owned++] = p;
	}
	freeifaddrs(ifs);
}

const struct policy_prefix *announce_owned(size_t *n)
{
	*n = n_self_owned;
	return self_owned;
}

static size_t ports_of(const uint64_t *set, uint16_t *out)
{
	size_t n = 0;

	for (unsigned p = 1; p < 65536 && n < PEERPROTO_MAX_PORTS; p++)
		if ((set[p / 64] >> (p % 64)) & 1)
			out[n++] = (uint16_t)p;
	return n;
}

void announce_compose(void)
{
	said.n_addrs = n_self_owned;
	for (size_t i = 0; i < n_self_owned; i++) {
		said.addrs[i] = (struct peerproto_addr){.family = self_owned[i].family,
							.len = self_owned[i].len};
		memcpy(said.addrs[i].addr, self_owned[i].addr, 16);
	}
	frame_len = peerproto_encode_announce(&said, frame);
}

void announce_served(const uint64_t *v4, const uint64_t *v6)
{
	said.n_ports4 = ports_of(v4, said.ports4);
	said.n_ports6 = ports_of(v6, said.ports6);
	announce_compose();
}

const uint8_t *announce_frame(size_t *len)
{
	*len = frame_len < 0 ? 0 : (size_t)frame_len;
	return frame_len < 0 ? NULL : frame;
}
