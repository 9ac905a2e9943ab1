/* The option table: which TCP/IP options a redirected socket answers, and their bounds. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "tcpopts.h"

struct opt_desc {
	int level, name;
	int min, max;      /* accepted range on set */
	unsigned flags;
	int minus_one_reads; /* with MINUS_ONE: what -1 reads back as */
};

#define BOOL 1u          /* any non-zero value reads back as 1 */
#define ZERO_OK 2u       /* 0 (the default) is accepted besides min..max */
#define MINUS_ONE 4u     /* -1 (the default) is accepted besides min..max */
#define NOT_CONNECTED 8u /* refused (EINVAL) once connected, as every redirected socket is */

/* Bounds are the kernel's (net/ipv4/tcp.c, ip_sockglue.c, ipv6_sockglue.c). */
static const struct opt_desc opts_table[TCP_OPT_INTS] = {
	{IPPROTO_TCP, TCP_NODELAY, 0, 1, BOOL, 0},
	{IPPROTO_TCP, TCP_CORK, 0, 1, BOOL, 0},
	{IPPROTO_TCP, TCP_QUICKACK, 0, 1, BOOL, 0},
	{IPPROTO_TCP, TCP_KEEPIDLE, 1, 32767, 0, 0},
	{IPPROTO_TCP, TCP_KEEPINTVL, 1, 32767, 0, 0},
	{IPPROTO_TCP, TCP_KEEPCNT, 1, 127, 0, 0},
	{IPPROTO_TCP, TCP_USER_TIMEOUT, 0, INT_MAX, 0, 0},
	{IPPROTO_TCP, TCP_MAXSEG, 88, 32767, ZERO_OK, 0},
	{IPPROTO_TCP, TCP_NOTSENT_LOWAT, INT_MIN, INT_MAX, 0, 0}, /* kept unsigned: -1 is no limit */
	{IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 0, 1, BOOL | NOT_CONNECTED, 0},
	{IPPROTO_TCP, TCP_DEFER_ACCEPT, 0, INT_MAX, 0, 0},
	{IPPROTO_TCP, TCP_SYNCNT, 1, 127, 0, 0},
	{IPPROTO_TCP, TCP_LINGER2, -INT_MAX, INT_MAX, 0, 0},
	{IPPROTO_IP, IP_TOS, 0, 255, 0, 0},
	{IPPROTO_IP, IP_TTL, 1, 255, MINUS_ONE, 64},
	{IPPROTO_IPV6, IPV6_TCLASS, 0, 255, MINUS_ONE, 0},
	{IPPROTO_IPV6, IPV6_V6ONLY, 0, 1, BOOL | NOT_CONNECTED, 0},
};

static int find(int level, int name)
{
	for (int i = 0; i < TCP_OPT_INTS; i++)
		if (opts_table[i].level == level && opts_table[i].name == name)
			return i;
	return -1;
}

int tcp_opts_level(int level)
{
	return level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6;
}

/* The option's index, or -1 with errno ENOPROTOOPT, as TCP says of an unknown option or of
 * IPv6 options on an IPv4 socket. */
static int lookup(int family, int level, int name)
{
	int i = family == AF_INET && level == IPPROTO_IPV6 ? -1 : find(level, name);

	if (i < 0)
		errno = ENOPROTOOPT;
	return i;
}

int tcp_opts_bit(int level, int name)
{
	if (level == IPPROTO_TCP && name == TCP_CONGESTION)
		return TCP_OPT_INTS;
	return find(level, name);
}

void tcp_opts_capture(struct tcp_opts *opts, int tcp_fd,
		      int (*get)(int, int, int, void *, socklen_t *), unsigned mask)
{
	for (int i = 0; i < TCP_OPT_INTS; i++) {
		socklen_t len = sizeof(int);

		if (!(mask & 1u << i))
			continue;
		opts->value[i] = 0;
		get(tcp_fd, opts_table[i].level, opts_table[i].name, &opts->value[i], &len);
	}
	if (!(mask & 1u << TCP_OPT_INTS))
		return;
	socklen_t len = sizeof(opts->congestion) - 1;
	memset(opts->congestion, 0, sizeof(opts->congestion));
	if (get(tcp_fd, IPPROTO_TCP, TCP_CONGESTION, opts->congestion, &len) < 0)
		strcpy(opts->congestion, "cubic");
}

unsigned tcp_opts_apply(const struct tcp_opts *opts, int tcp_fd,
			int (*get)(int, int, int, void *, socklen_t *),
			int (*set)(int, int, int, const void *, socklen_t))
{
	struct tcp_opts now;
	unsigned applied = 0;

	tcp_opts_capture(&now, tcp_fd, get, TCP_OPTS_ALL);
	for (int i = 0; i < TCP_OPT_INTS; i++)
		if (opts->value[i] != now.value[i] &&
		    set(tcp_fd, opts_table[i].level, opts_table[i].name, &opts->value[i],
			sizeof(int)) == 0)
			applied |= 1u << i;
	if (strcmp(opts->congestion, now.congestion) != 0 &&
	    set(tcp_fd, IPPROTO_TCP, TCP_CONGESTION, opts->congestion,
		(socklen_t)strlen(opts->congestion)) == 0)
		applied |= 1u << TCP_OPT_INTS;
	return applied;
}

void tcp_opts_copy_out(const void *src, size_t size, void *val, socklen_t *len)
{
	*len = *len < size ? *len : (socklen_t)size;
	memcpy(val, src, *len);
}

int tcp_opts_get(const struct tcp_opts *opts, int family, int level, int name, void *val,
		 socklen_t *len)
{
	if ((int)*len < 0) {
		errno = EINVAL;
		return -1;
	}
	if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
		tcp_opts_copy_out(opts->congestion, sizeof(opts->congestion), val, len);
		return 0;
	}
	int i = lookup(family, level, name);
	if (i < 0)
		return -1;
	tcp_opts_copy_out(&opts->value[i], sizeof(int), val, len);
	return 0;
}

int tcp_opts_set(struct tcp_opts *opts, int family, int level, int name, const void *val,
		 socklen_t len)
{
	if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
		if (len < 1) {
			errno = EINVAL;
			return -1;
		}
		size_t n = strnlen(val, len < TCP_CONGESTION_MAX ? len : TCP_CONGESTION_MAX);
		if (n == 0 || n >= TCP_CONGESTION_MAX) {
			errno = ENOENT; /* what TCP says of an unknown algorithm */
			return -1;
		}
		memset(opts->congestion, 0, sizeof(opts->congestion));
		memcpy(opts->congestion, val, n);
		return 0;
	}
	int i = lookup(family, level, name);
	if (i < 0)
		return -1;
	const struct opt_desc *d = &opts_table[i];
	int v;
	if (len < sizeof(int) || (d->flags & NOT_CONNECTED)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(&v, val, sizeof(v));
	if (d->flags & BOOL)
		v = v != 0;
	else if ((d->flags & MINUS_ONE) && v == -1)
		v = d->minus_one_reads;
	else if (!((d->flags & ZERO_OK) && v == 0) && (v < d->min || v > d->max)) {
		errno = EINVAL;
		return -1;
	}
	opts->value[i] = v;
	return 0;
}
