/* Which TCP listeners exist, straight from the kernel (NETLINK_SOCK_DIAG, as `ss -lt`).
 * helperd keeps no descriptor of the listeners it serves, so that closing one in the
 * application really closes it; this is how it learns that one is gone. */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <arpa/inet.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmshim/log.h"
#include "sockdiag.h"

/* What one dump collects: every listener, or only their inodes. */
struct listener_list {
	struct sockdiag_listener *v;
	size_t n, cap;
};

static int push(struct listener_list *l, const struct sockdiag_listener *one)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct sockdiag_listener *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *one;
	return 0;
}

/* The kernel's refusal in an NLMSG_ERROR, in errno (without inet_diag: ENOENT), for the
 * warning to name; -1. */
static int kernel_error(const struct nlmsghdr *h)
{
	const struct nlmsgerr *e = NLMSG_DATA(h);

	errno = h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error < 0 ? -e->error : EPROTO;
	return -1;
}

/* One listener as the kernel reports it: the message and its attributes. Its address as
 * endpoint.h has it: an IPv6 socket bound to an IPv4-mapped address (::ffff:127.0.0.1) is
 * IPv4's, and loopback's if that is. */
static void read_listener(const struct nlmsghdr *h, struct sockdiag_listener *one)
{
	const struct inet_diag_msg *m = NLMSG_DATA(h);
	int left = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
	struct sockaddr_in6 bound = {.sin6_family = AF_INET6, .sin6_port = m->id.idiag_sport};

	*one = (struct sockdiag_listener){.inode = m->idiag_inode, .uid = m->idiag_uid};
	if (m->idiag_family == AF_INET6) {
		memcpy(&bound.sin6_addr, m->id.idiag_src, 16);
		endpoint_from_sockaddr((const struct sockaddr *)&bound, sizeof(bound), &one->bound);
	} else {
		one->bound.family = AF_INET;
		one->bound.port = ntohs(m->id.idiag_sport);
		memcpy(one->bound.addr, m->id.idiag_src, 4);
	}
	for (const struct rtattr *a = (const void *)(m + 1); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
		if (a->rta_type == INET_DIAG_CGROUP_ID && RTA_PAYLOAD(a) >= sizeof(uint64_t))
			memcpy(&one->cgroup, RTA_DATA(a), sizeof(uint64_t));
		else if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1)
			one->v6only = *(const uint8_t *)RTA_DATA(a);
	}
}

/* One dump request for a family; appends the listeners it reports. */
static int dump_family(int nl, int family, struct listener_list *out)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {
		.nlh = {.nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
		.req = {.sdiag_family = (uint8_t)family, .sdiag_protocol = IPPROTO_TCP,
			.idiag_states = 1u << TCP_LISTEN},
	};
	char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));

	if (send(nl, &msg, sizeof(msg), 0) < 0)
		return -1;
	for (;;) {
		ssize_t n = recv(nl, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EPROTO;
		if (n <= 0)
			return -1;
		for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR)
				return kernel_error(h);
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
				continue;
			struct sockdiag_listener one;
			read_listener(h, &one);
			if (push(out, &one) < 0)
				return -1;
		}
	}
}

static int cmp_inode(const void *a, const void *b)
{
	uint64_t x = ((const struct sockdiag_listener *)a)->inode;
	uint64_t y = ((const struct sockdiag_listener *)b)->inode;

	return x < y ? -1 : x > y;
}

int sockdiag_listeners(struct sockdiag_listener **listeners, size_t *count)
{
	static bool failing; /* said once, until it works again */
	struct listener_list l = {0};
	int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);

	if (nl < 0 || dump_family(nl, AF_INET, &l) < 0 || dump_family(nl, AF_INET6, &l) < 0) {
		if (!failing)
			log_warn("sock_diag cannot list TCP listeners (%m; is tcp_diag loadable?): "
				 "no listener can be checked, so none is offered to siblings");
		failing = true;
		if (nl >= 0)
			close(nl);
		free(l.v);
		return -1;
	}
	close(nl);
	if (failing)
		log_info("sock_diag lists TCP listeners again");
	failing = false;
	if (l.n) /* an empty list may have no array at all */
		qsort(l.v, l.n, sizeof(*l.v), cmp_inode);
	*listeners = l.v;
	*count = l.n;
	return 0;
}

bool sockdiag_has(const struct sockdiag_listener *listeners, size_t count, uint64_t inode)
{
	struct sockdiag_listener key = {.inode = inode};

	return count && bsearch(&key, listeners, count, sizeof(*listeners), cmp_inode) != NULL;
}

/* The kernel's one socket of this namespace that a TCP segment from dst to src would reach
 * (an exact lookup: established, else listening), into *m: 0, or -1 with errno (ENOENT: no
 * such socket). */
static int lookup_one(int family, const uint8_t *src, uint16_t sport, const uint8_t *dst,
		      uint16_t dport, struct inet_diag_msg *m)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {
		.nlh = {.nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST},
		.req = {.sdiag_family = (uint8_t)family, .sdiag_protocol = IPPROTO_TCP,
			.idiag_states = ~0u,
			.id = {.idiag_sport = sport, .idiag_dport = dport,
			       .idiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}}},
	};
	size_t addr_len = family == AF_INET ? 4 : 16;
	char buf[1024] __attribute__((aligned(NLMSG_ALIGNTO)));
	int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	int rc = -1;

	if (nl < 0)
		return -1;
	memcpy(msg.req.id.idiag_src, src, addr_len);
	memcpy(msg.req.id.idiag_dst, dst, addr_len);
	ssize_t n = send(nl, &msg, sizeof(msg), 0) < 0 ? -1 : recv(nl, buf, sizeof(buf), 0);
	const struct nlmsghdr *h = (const void *)buf;
	if (n > 0 && NLMSG_OK(h, (size_t)n)) {
		if (h->nlmsg_type == NLMSG_ERROR)
			kernel_error(h);
		else if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(*m))) {
			memcpy(m, NLMSG_DATA(h), sizeof(*m));
			rc = 0;
		}
	} else if (n >= 0)
		errno = EPROTO;
	close(nl);
	return rc;
}

int sockdiag_tcp_cookie(const struct vmshim_endpoint *src, const struct vmshim_endpoint *dst,
			uint64_t *cookie)
{
	struct inet_diag_msg m;

	if (src->family != dst->family) {
		errno = EINVAL;
		return -1;
	}
	if (lookup_one(src->family, src->addr, htons(src->port), dst->addr, htons(dst->port), &m) < 0)
		return -1;
	*cookie = (uint64_t)m.id.idiag_cookie[1] << 32 | m.id.idiag_cookie[0];
	return 0;
}

bool sockdiag_listens_at(const struct vmshim_endpoint *bound, uint64_t inode)
{
	static const uint8_t none[16];
	struct inet_diag_msg m;

	return lookup_one(bound->family, bound->addr, htons(bound->port), none, 0, &m) == 0 &&
	       m.idiag_state == TCP_LISTEN && m.idiag_inode == inode;
}
