/* Unit tests of shim pieces that work without the hooks: the TCP option store (shim/tcpopts.c),
 * the descriptor table (shim/fdstate.c), the local port sequence (shim/source_port.c), the
 * destinations TCP refuses (shim/tcp_refuses.c) and the endpoint helpers (common/endpoint.c).
 *
 * The test links shim/init.o for `real` but never calls shim_init_slow(): without the hooks
 * in the executable, init.o's references to socket(), connect()... resolve to libc itself,
 * dlsym(RTLD_NEXT) then finds the same functions, and next_symbol() aborts. The tests set
 * real.getsockopt themselves.
 *
 * Nothing here creates an AF_VSOCK socket: fdstate_acquire_redirected() is shown a vsock
 * descriptor through a fake getsockopt. TCP sockets are plain loopback ones. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "connect.h"
#include "fdstate.h"
#include "shim.h"
#include "source_port.h"
#include "tcpinfo.h"
#include "tcpopts.h"
#include "vmshim/endpoint.h"

/* --- helpers --------------------------------------------------------------------------- */

static int get_int(int fd, int level, int name)
{
	int v = -12345;
	socklen_t len = sizeof v;

	if (getsockopt(fd, level, name, &v, &len) != 0)
		fail_msg("getsockopt(%d, %d): %s", level, name, strerror(errno));
	assert_int_equal(len, sizeof v);
	return v;
}

static void set_int(int fd, int level, int name, int v)
{
	if (setsockopt(fd, level, name, &v, sizeof v) != 0)
		fail_msg("setsockopt(%d, %d, %d): %s", level, name, v, strerror(errno));
}

static int opt_get(const struct tcp_opts *o, int level, int name)
{
	int v = -12345;
	socklen_t len = sizeof v;

	assert_int_equal(tcp_opts_get(o, AF_INET6, level, name, &v, &len), 0);
	assert_int_equal(len, sizeof v);
	return v;
}

static int opt_set(struct tcp_opts *o, int level, int name, int v)
{
	errno = 0;
	return tcp_opts_set(o, AF_INET6, level, name, &v, sizeof v);
}

#define assert_errno(call, err)                                                                    \
	do {                                                                                       \
		errno = 0;                                                                         \
		assert_int_equal((call), -1);                                                      \
		assert_int_equal(errno, (err));                                                    \
	} while (0)

/* A loopback listener of family, and a socket connected to it. */
struct tcp_conn {
	int listener, client;
};

static struct tcp_conn tcp_connect(int family)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	struct tcp_conn c;

	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (void *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof *a;
	}
	c.listener = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c.listener >= 0);
	assert_int_equal(bind(c.listener, (struct sockaddr *)&ss, len), 0);
	assert_int_equal(listen(c.listener, 64), 0);
	assert_int_equal(getsockname(c.listener, (struct sockaddr *)&ss, &len), 0);
	c.client = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c.client >= 0);
	if (connect(c.client, (struct sockaddr *)&ss, len) != 0)
		fail_msg("connect over loopback: %s", strerror(errno));
	return c;
}

static void tcp_close(struct tcp_conn *c)
{
	close(c->client);
	close(c->listener);
}

/* The options tcpopts keeps as ints. valid: values tcpopts must take and read back as set;
 * bad: values it must refuse with EINVAL. Both follow the kernel's bounds (net/ipv4/tcp.c,
 * ip_sockglue.c, ipv6_sockglue.c), but for IP_TOS, where the kernel takes any int (A5 below)
 * and tcpopts wants 0..255. Lists end with END. */
#define END INT_MIN
struct int_opt {
	const char *label;
	int level, name;
	int boolean;
	int valid[6];
	int bad[6];
};

static const struct int_opt int_opts[] = {
	{ "TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY, 1, { 0, 1, END }, { END } },
	{ "TCP_CORK", IPPROTO_TCP, TCP_CORK, 1, { 0, 1, END }, { END } },
	{ "TCP_QUICKACK", IPPROTO_TCP, TCP_QUICKACK, 1, { 0, 1, END }, { END } },
	{ "TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, 0, { 1, 77, 32767, END }, { 0, -1, 32768, END } },
	{ "TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL, 0, { 1, 75, 32767, END }, { 0, 32768, END } },
	{ "TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT, 0, { 1, 9, 127, END }, { 0, 128, END } },
	{ "TCP_USER_TIMEOUT", IPPROTO_TCP, TCP_USER_TIMEOUT, 0, { 0, 1, 30000, INT_MAX, END },
	  { -1, END } },
	/* valid values read back as set on a fresh socket only: a connected one reports the MSS */
	{ "TCP_MAXSEG", IPPROTO_TCP, TCP_MAXSEG, 0, { 88, 1400, 32767, END }, { 87, 32768, -1, END } },
	{ "TCP_NOTSENT_LOWAT", IPPROTO_TCP, TCP_NOTSENT_LOWAT, 0, { 0, 16384, INT_MAX, END }, { END } },
	/* TCP refuses it once connected (test_tcpopts_fastopen_connect_after_connect) */
	{ "TCP_FASTOPEN_CONNECT", IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1, { END }, { END } },
	/* the kernel rounds it to SYN-ACK retransmissions; tcpopts keeps the seconds */
	{ "TCP_DEFER_ACCEPT", IPPROTO_TCP, TCP_DEFER_ACCEPT, 0, { 0, 1, 3, 7, END }, { END } },
	{ "TCP_SYNCNT", IPPROTO_TCP, TCP_SYNCNT, 0, { 1, 6, 127, END }, { 0, 128, END } },
	{ "TCP_LINGER2", IPPROTO_TCP, TCP_LINGER2, 0, { -1, 1, 60, 120, END }, { END } },
	{ "IP_TOS", IPPROTO_IP, IP_TOS, 0, { 0, 0x10, 0xfc, END }, { 256, -1, END } },
	{ "IP_TTL", IPPROTO_IP, IP_TTL, 0, { 1, 64, 255, END }, { 256, -2, END } },
	{ "IPV6_TCLASS", IPPROTO_IPV6, IPV6_TCLASS, 0, { 0, 0x20, 0xfc, END }, { -2, 256, END } },
	{ "IPV6_V6ONLY", IPPROTO_IPV6, IPV6_V6ONLY, 1, { END }, { END } },
};
#define N_INT_OPTS (sizeof int_opts / sizeof int_opts[0])

/* A fresh tcp_opts captured from a connected IPv4 (or IPv6) loopback socket. */
static void captured(struct tcp_opts *o, int family)
{
	struct tcp_conn c = tcp_connect(family);

	tcp_opts_capture(o, c.client, getsockopt, TCP_OPTS_ALL);
	tcp_close(&c);
}

/* --- tcpopts: capture ------------------------------------------------------------------ */

static void test_tcpopts_table_covered(void **state)
{
	(void)state;
	struct tcp_opts o;

	/* Every int option tcpopts keeps is listed above, and nothing else is an int option. */
	assert_int_equal(N_INT_OPTS, TCP_OPT_INTS);
	captured(&o, AF_INET6);
	for (size_t i = 0; i < N_INT_OPTS; i++)
		opt_get(&o, int_opts[i].level, int_opts[i].name);
	assert_true(tcp_opts_level(IPPROTO_TCP));
	assert_true(tcp_opts_level(IPPROTO_IP));
	assert_true(tcp_opts_level(IPPROTO_IPV6));
	assert_false(tcp_opts_level(SOL_SOCKET));
	assert_false(tcp_opts_level(IPPROTO_UDP));
	assert_false(tcp_opts_level(SOL_TCP + 1000));
}

static void test_tcpopts_capture_v4(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct tcp_opts o;
	char kernel_cc[TCP_CONGESTION_MAX + 1] = { 0 }, cc[TCP_CONGESTION_MAX + 1] = { 0 };
	socklen_t len = TCP_CONGESTION_MAX;

	assert_true(fd >= 0);
	set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, 77);
	set_int(fd, IPPROTO_IP, IP_TOS, 0x10);
	memset(&o, 0x5a, sizeof o);
	tcp_opts_capture(&o, fd, getsockopt, TCP_OPTS_ALL);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_NODELAY), 1);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_KEEPIDLE), 77);
	assert_int_equal(opt_get(&o, IPPROTO_IP, IP_TOS), 0x10);
	/* Everything else as the kernel has it; IPv6 options of an IPv4 socket read 0. */
	for (size_t i = 0; i < N_INT_OPTS; i++) {
		const struct int_opt *d = &int_opts[i];
		int want = d->level == IPPROTO_IPV6 ? 0 : get_int(fd, d->level, d->name);
		if (opt_get(&o, d->level, d->name) != want)
			fail_msg("%s: captured %d, kernel %d", d->label, opt_get(&o, d->level, d->name),
				 want);
	}
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, kernel_cc, &len), 0);
	len = sizeof cc;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_int_equal(len, TCP_CONGESTION_MAX);
	assert_string_equal(cc, kernel_cc);
	close(fd);
}

static void test_tcpopts_capture_v6(void **state)
{
	(void)state;
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct tcp_opts o;

	assert_true(fd >= 0);
	set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	set_int(fd, IPPROTO_IPV6, IPV6_TCLASS, 0x20);
	set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, 5);
	tcp_opts_capture(&o, fd, getsockopt, TCP_OPTS_ALL);
	assert_int_equal(opt_get(&o, IPPROTO_IPV6, IPV6_V6ONLY), 1);
	assert_int_equal(opt_get(&o, IPPROTO_IPV6, IPV6_TCLASS), 0x20);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_KEEPCNT), 5);
	for (size_t i = 0; i < N_INT_OPTS; i++)
		assert_int_equal(opt_get(&o, int_opts[i].level, int_opts[i].name),
				 get_int(fd, int_opts[i].level, int_opts[i].name));
	close(fd);
}

/* What tcp_opts_capture asks for. */
static int capture_calls, capture_fail;
static int fake_get(int fd, int level, int name, void *val, socklen_t *len)
{
	capture_calls++;
	assert_int_equal(fd, 1234);
	if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
		assert_true(*len > 0 && *len < TCP_CONGESTION_MAX);
		if (capture_fail) {
			errno = ENOPROTOOPT;
			return -1;
		}
		memset(val, 'x', *len); /* a name as long as it may be, without its NUL */
		return 0;
	}
	assert_int_equal(*len, sizeof(int));
	if (capture_fail) {
		errno = ENOPROTOOPT;
		return -1;
	}
	int v = level * 1000 + name;
	memcpy(val, &v, sizeof v);
	return 0;
}

static void test_tcpopts_capture_getter(void **state)
{
	(void)state;
	struct tcp_opts o;
	char cc[TCP_CONGESTION_MAX + 1];
	socklen_t len;

	capture_calls = 0;
	capture_fail = 0;
	memset(&o, 0x5a, sizeof o);
	tcp_opts_capture(&o, 1234, fake_get, TCP_OPTS_ALL);
	assert_int_equal(capture_calls, TCP_OPT_INTS + 1);
	for (size_t i = 0; i < N_INT_OPTS; i++)
		assert_int_equal(opt_get(&o, int_opts[i].level, int_opts[i].name),
				 int_opts[i].level * 1000 + int_opts[i].name);
	memset(cc, 0, sizeof cc);
	len = sizeof cc;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_int_equal(len, TCP_CONGESTION_MAX);
	assert_int_equal(strlen(cc), TCP_CONGESTION_MAX - 1); /* still NUL-terminated */

	/* A getter that fails: zeros, and the default algorithm. */
	capture_fail = 1;
	memset(&o, 0x5a, sizeof o);
	tcp_opts_capture(&o, 1234, fake_get, TCP_OPTS_ALL);
	capture_fail = 0;
	for (size_t i = 0; i < N_INT_OPTS; i++)
		assert_int_equal(opt_get(&o, int_opts[i].level, int_opts[i].name), 0);
	memset(cc, 0, sizeof cc);
	len = sizeof cc;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_string_equal(cc, "cubic");
}

/* A mask reads only the options it names, and leaves the others as they were. */
static void test_tcpopts_capture_mask(void **state)
{
	(void)state;
	struct tcp_opts o;
	int nodelay = tcp_opts_bit(IPPROTO_TCP, TCP_NODELAY);
	int keepidle = tcp_opts_bit(IPPROTO_TCP, TCP_KEEPIDLE);
	int congestion = tcp_opts_bit(IPPROTO_TCP, TCP_CONGESTION);

	assert_true(nodelay >= 0 && keepidle >= 0 && nodelay != keepidle);
	assert_int_equal(congestion, TCP_OPT_INTS);
	assert_int_equal(tcp_opts_bit(IPPROTO_TCP, TCP_INFO), -1);
	assert_int_equal(tcp_opts_bit(SOL_SOCKET, SO_KEEPALIVE), -1);
	assert_true(tcp_opts_bit(IPPROTO_IPV6, IPV6_V6ONLY) >= 0);

	capture_calls = 0;
	capture_fail = 0;
	memset(&o, 0, sizeof o);
	tcp_opts_capture(&o, 1234, fake_get, 0);
	assert_int_equal(capture_calls, 0);
	tcp_opts_capture(&o, 1234, fake_get, 1u << nodelay | 1u << keepidle);
	assert_int_equal(capture_calls, 2);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_NODELAY), IPPROTO_TCP * 1000 + TCP_NODELAY);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_KEEPIDLE), IPPROTO_TCP * 1000 + TCP_KEEPIDLE);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_KEEPCNT), 0); /* not in the mask: untouched */
	tcp_opts_capture(&o, 1234, fake_get, 1u << congestion);
	assert_int_equal(capture_calls, 3);
}

/* --- tcpopts: set and get -------------------------------------------------------------- */

static void test_tcpopts_round_trips(void **state)
{
	(void)state;
	struct tcp_opts o;

	captured(&o, AF_INET6);
	for (size_t i = 0; i < N_INT_OPTS; i++) {
		const struct int_opt *d = &int_opts[i];
		for (const int *v = d->valid; *v != END; v++) {
			if (opt_set(&o, d->level, d->name, *v) != 0)
				fail_msg("%s = %d: %s", d->label, *v, strerror(errno));
			assert_int_equal(opt_get(&o, d->level, d->name), *v);
		}
	}
	/* Setting one option leaves the others alone. */
	for (size_t i = 0; i < N_INT_OPTS; i++) {
		int before[N_INT_OPTS];
		const struct int_opt *d = &int_opts[i];
		if (d->valid[0] == END)
			continue;
		for (size_t j = 0; j < N_INT_OPTS; j++)
			before[j] = opt_get(&o, int_opts[j].level, int_opts[j].name);
		assert_int_equal(opt_set(&o, d->level, d->name, d->valid[1] != END ? d->valid[1] : d->valid[0]), 0);
		for (size_t j = 0; j < N_INT_OPTS; j++)
			if (j != i)
				assert_int_equal(opt_get(&o, int_opts[j].level, int_opts[j].name), before[j]);
	}
}

static void test_tcpopts_range_errors(void **state)
{
	(void)state;
	struct tcp_opts o;

	captured(&o, AF_INET6);
	/* The cases named in the brief, spelt out. */
	assert_int_equal(opt_set(&o, IPPROTO_TCP, TCP_KEEPIDLE, 100), 0);
	assert_errno(opt_set(&o, IPPROTO_TCP, TCP_KEEPIDLE, 0), EINVAL);
	assert_errno(opt_set(&o, IPPROTO_TCP, TCP_KEEPIDLE, 32768), EINVAL);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_KEEPIDLE), 100);
	assert_errno(opt_set(&o, IPPROTO_TCP, TCP_KEEPCNT, 128), EINVAL);
	assert_errno(opt_set(&o, IPPROTO_TCP, TCP_MAXSEG, 87), EINVAL);
	assert_errno(opt_set(&o, IPPROTO_IP, IP_TOS, 256), EINVAL);
	/* Every bad value of every option, and the value stays what it was. */
	for (size_t i = 0; i < N_INT_OPTS; i++) {
		const struct int_opt *d = &int_opts[i];
		int before = opt_get(&o, d->level, d->name);
		for (const int *v = d->bad; *v != END; v++) {
			errno = 0;
			if (opt_set(&o, d->level, d->name, *v) != -1 || errno != EINVAL)
				fail_msg("%s = %d should fail with EINVAL (errno %d)", d->label, *v, errno);
			assert_int_equal(opt_get(&o, d->level, d->name), before);
		}
	}
}

static void test_tcpopts_booleans(void **state)
{
	(void)state;
	struct tcp_opts o;
	static const int truthy[] = { 1, 2, 5, 255, 256, -1, INT_MIN, INT_MAX };

	captured(&o, AF_INET);
	for (size_t i = 0; i < N_INT_OPTS; i++) {
		const struct int_opt *d = &int_opts[i];
		if (!d->boolean || d->name == IPV6_V6ONLY || d->name == TCP_FASTOPEN_CONNECT)
			continue;
		for (size_t k = 0; k < sizeof truthy / sizeof truthy[0]; k++) {
			assert_int_equal(opt_set(&o, d->level, d->name, 0), 0);
			assert_int_equal(opt_get(&o, d->level, d->name), 0);
			assert_int_equal(opt_set(&o, d->level, d->name, truthy[k]), 0);
			assert_int_equal(opt_get(&o, d->level, d->name), 1);
		}
	}
}

static void test_tcpopts_short_optlen(void **state)
{
	(void)state;
	struct tcp_opts o;
	int v = 1;

	captured(&o, AF_INET6);
	for (size_t i = 0; i < N_INT_OPTS; i++) {
		const struct int_opt *d = &int_opts[i];
		int before = opt_get(&o, d->level, d->name);
		for (socklen_t len = 0; len < sizeof(int); len++) {
			errno = 0;
			/* Only len bytes are there: ASan sees a read past them. */
			unsigned char *p = malloc(len ? len : 1);
			memcpy(p, &v, len);
			if (tcp_opts_set(&o, AF_INET6, d->level, d->name, p, len) != -1 || errno != EINVAL)
				fail_msg("%s with optlen %u should fail with EINVAL", d->label, len);
			free(p);
		}
		assert_int_equal(opt_get(&o, d->level, d->name), before);
	}
	/* A longer buffer is fine: the int is its first bytes. */
	int big[2] = { 42, 99 };
	assert_int_equal(tcp_opts_set(&o, AF_INET6, IPPROTO_TCP, TCP_KEEPCNT, big, sizeof big), 0);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_KEEPCNT), 42);
}

static void test_tcpopts_v6only_after_connect(void **state)
{
	(void)state;
	struct tcp_opts o;

	captured(&o, AF_INET6);
	int before = opt_get(&o, IPPROTO_IPV6, IPV6_V6ONLY);
	assert_errno(opt_set(&o, IPPROTO_IPV6, IPV6_V6ONLY, 1), EINVAL);
	assert_errno(opt_set(&o, IPPROTO_IPV6, IPV6_V6ONLY, 0), EINVAL);
	assert_int_equal(opt_get(&o, IPPROTO_IPV6, IPV6_V6ONLY), before);

	/* What a connected IPv6 TCP socket says. */
	struct tcp_conn c = tcp_connect(AF_INET6);
	int one = 1;
	errno = 0;
	assert_int_equal(setsockopt(c.client, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), -1);
	assert_int_equal(errno, EINVAL);
	tcp_close(&c);
}

static void test_tcpopts_unknown_options(void **state)
{
	(void)state;
	struct tcp_opts o;
	static const int unknown[][2] = {
		{ IPPROTO_TCP, 9999 }, { IPPROTO_TCP, TCP_MD5SIG }, { IPPROTO_TCP, TCP_REPAIR },
		{ IPPROTO_IP, 9999 },	{ IPPROTO_IPV6, 9999 },	      { SOL_SOCKET, SO_RCVBUF },
		{ IPPROTO_UDP, TCP_NODELAY },
	};
	int v = 1;
	socklen_t len = sizeof v;

	captured(&o, AF_INET);
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		len = sizeof v;
		assert_errno(tcp_opts_get(&o, AF_INET6, unknown[i][0], unknown[i][1], &v, &len), ENOPROTOOPT);
		assert_errno(tcp_opts_set(&o, AF_INET6, unknown[i][0], unknown[i][1], &v, sizeof v), ENOPROTOOPT);
	}
}

static void test_tcpopts_get_lengths(void **state)
{
	(void)state;
	struct tcp_opts o;
	unsigned char buf[8];
	socklen_t len;

	captured(&o, AF_INET);
	assert_int_equal(opt_set(&o, IPPROTO_TCP, TCP_KEEPIDLE, 0x1234), 0);

	memset(buf, 0xee, sizeof buf);
	len = 1;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_KEEPIDLE, buf, &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(buf[0], 0x34);
	assert_int_equal(buf[1], 0xee);

	memset(buf, 0xee, sizeof buf);
	len = 0;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_KEEPIDLE, buf, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(buf[0], 0xee);

	memset(buf, 0xee, sizeof buf);
	len = sizeof buf;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_KEEPIDLE, buf, &len), 0);
	assert_int_equal(len, sizeof(int));
	int v;
	memcpy(&v, buf, sizeof v);
	assert_int_equal(v, 0x1234);
	assert_int_equal(buf[4], 0xee);

	len = (socklen_t)-1;
	assert_errno(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_KEEPIDLE, buf, &len), EINVAL);
	len = (socklen_t)INT_MIN;
	assert_errno(tcp_opts_get(&o, AF_INET6, IPPROTO_IP, IP_TOS, buf, &len), EINVAL);
	len = (socklen_t)-1;
	assert_errno(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_INFO, buf, &len), EINVAL);
	len = (socklen_t)-1;
	assert_errno(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, buf, &len), EINVAL);

	/* The kernel agrees for a TCP-level option and len 1. */
	struct tcp_conn c = tcp_connect(AF_INET);
	set_int(c.client, IPPROTO_TCP, TCP_KEEPIDLE, 0x1234);
	memset(buf, 0xee, sizeof buf);
	len = 1;
	assert_int_equal(getsockopt(c.client, IPPROTO_TCP, TCP_KEEPIDLE, buf, &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(buf[0], 0x34);
	assert_int_equal(buf[1], 0xee);
	tcp_close(&c);
}

/* TCP_INFO's state on a redirected connection (shim/tcpinfo.c), over a Unix stream pair:
 * its poll reports the peer's shutdown(SHUT_WR) and close, and this end's SHUT_RD, as
 * RDHUP, as vsock's does (vsock_poll); what the shim's shutdown() notes is set by hand. */
static unsigned char tcp_state_of(int fd, const struct fd_state *st)
{
	struct tcp_info info;
	socklen_t len = sizeof info;

	memset(&info, 0xee, sizeof info);
	assert_int_equal(tcp_info_get(fd, st, &info, &len), 0);
	assert_int_equal(len, sizeof info);
	assert_true(info.tcpi_snd_mss > 0);
	assert_true(info.tcpi_snd_cwnd > 0);
	assert_int_equal(info.tcpi_retransmits, 0);
	assert_int_equal(info.tcpi_total_retrans, 0); /* vsock counts nothing */
	return info.tcpi_state;
}

static void shut(int fd, struct fd_state *st, int how)
{
	assert_int_equal(shutdown(fd, how), 0);
	if (st)
		atomic_fetch_or(&st->conn.shut, tcp_info_shut_bits(how));
}

/* A connection's state and the pair that stands for it. */
static struct fd_state *stand_in_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	return fdstate_new(FD_REDIRECTED, AF_INET);
}

static void end_pair(int sv[2], struct fd_state *st)
{
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	fdstate_release(st);
}

static void test_tcp_info(void **state)
{
	(void)state;
	unsigned char big[sizeof(struct tcp_info) * 2];
	socklen_t len;
	int sv[2];
	struct fd_state *st = stand_in_pair(sv);

	assert_int_equal(tcp_state_of(sv[0], st), TCP_ESTABLISHED);
	/* Truncated to *len, and never more than the struct. */
	memset(big, 0xee, sizeof big);
	len = 1;
	assert_int_equal(tcp_info_get(sv[0], st, big, &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(big[0], TCP_ESTABLISHED); /* tcpi_state is the first byte */
	assert_int_equal(big[1], 0xee);
	len = 0;
	assert_int_equal(tcp_info_get(sv[0], st, big, &len), 0);
	assert_int_equal(len, 0);
	len = sizeof big;
	assert_int_equal(tcp_info_get(sv[0], st, big, &len), 0);
	assert_int_equal(len, sizeof(struct tcp_info));
	assert_int_equal(big[sizeof(struct tcp_info)], 0xee);

	shut(sv[1], NULL, SHUT_WR); /* the peer's FIN */
	assert_int_equal(tcp_state_of(sv[0], st), TCP_CLOSE_WAIT);
	shut(sv[0], st, SHUT_WR);
	assert_int_equal(tcp_state_of(sv[0], st), TCP_CLOSE);
	end_pair(sv, st);

	/* This end first: FIN_WAIT2, then CLOSE once the peer closes. */
	st = stand_in_pair(sv);
	shut(sv[0], st, SHUT_WR);
	assert_int_equal(tcp_state_of(sv[0], st), TCP_FIN_WAIT2);
	close(sv[1]);
	sv[1] = -1;
	assert_int_equal(tcp_state_of(sv[0], st), TCP_CLOSE);
	end_pair(sv, st);

	/* After SHUT_RD here, RDHUP says nothing of the peer (a known difference). */
	st = stand_in_pair(sv);
	shut(sv[0], st, SHUT_RD);
	assert_int_equal(tcp_state_of(sv[0], st), TCP_ESTABLISHED);
	/* connect(AF_UNSPEC) ended it */
	atomic_store(&st->conn.disconnected, true);
	assert_int_equal(tcp_state_of(sv[0], st), TCP_CLOSE);
	end_pair(sv, st);
}

static void test_tcpopts_congestion(void **state)
{
	(void)state;
	struct tcp_opts o;
	char cc[32];
	socklen_t len;

	captured(&o, AF_INET);
	assert_int_equal(tcp_opts_set(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, "reno", 5), 0);
	memset(cc, 'x', sizeof cc);
	len = sizeof cc;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_int_equal(len, TCP_CONGESTION_MAX); /* as the kernel: the whole name buffer */
	assert_string_equal(cc, "reno");
	for (int i = 5; i < TCP_CONGESTION_MAX; i++)
		assert_int_equal(cc[i], '\0');
	assert_int_equal(cc[TCP_CONGESTION_MAX], 'x');

	/* Without a NUL, optlen bounds the name. */
	assert_int_equal(tcp_opts_set(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, "cubicXYZ", 5), 0);
	len = sizeof cc;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_string_equal(cc, "cubic");
	/* Truncated get. */
	memset(cc, 'x', sizeof cc);
	len = 2;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(cc, "cux", 3);

	/* Empty, missing or too long names fail and change nothing. */
	assert_errno(tcp_opts_set(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, "", 1), ENOENT);
	assert_errno(tcp_opts_set(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, "reno", 0), EINVAL);
	assert_errno(tcp_opts_set(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, "0123456789abcdef", 17), ENOENT);
	assert_errno(tcp_opts_set(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, "0123456789abcdef", 16), ENOENT);
	assert_errno(tcp_opts_set(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION,
				  "a-very-long-congestion-control-name", 36),
		     ENOENT);
	len = sizeof cc;
	assert_int_equal(tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_string_equal(cc, "cubic");

	/* The kernel on the same inputs. */
	struct tcp_conn c = tcp_connect(AF_INET);
	assert_int_equal(setsockopt(c.client, IPPROTO_TCP, TCP_CONGESTION, "reno", 5), 0);
	errno = 0;
	assert_int_equal(setsockopt(c.client, IPPROTO_TCP, TCP_CONGESTION, "", 1), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(setsockopt(c.client, IPPROTO_TCP, TCP_CONGESTION, "reno", 0), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(setsockopt(c.client, IPPROTO_TCP, TCP_CONGESTION, "0123456789abcdef", 17), -1);
	assert_int_equal(errno, ENOENT);
	len = sizeof cc;
	assert_int_equal(getsockopt(c.client, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_int_equal(len, TCP_CONGESTION_MAX);
	assert_string_equal(cc, "reno");
	tcp_close(&c);
}

/* --- tcpopts against the kernel -------------------------------------------------------- */

/* Differences between tcpopts and a connected TCP socket. Those this suite accepts, because
 * tcpopts deliberately stores what the application set instead of emulating kernel-side
 * state or normalisation, or because it is stricter than the kernel on purpose:
 *
 *  A1 TCP_MAXSEG reads back the live MSS on a connected kernel socket, what was set on
 *     tcpopts.
 *  A2 TCP_DEFER_ACCEPT (a listener option) is rounded by the kernel to whole SYN-ACK
 *     retransmissions (5 -> 7) and a negative value becomes 0; tcpopts keeps the seconds
 *     and refuses negatives.
 *  A3 TCP_LINGER2: the kernel reads 0 back as tcp_fin_timeout, caps at 120 and turns any
 *     negative into -1 (INT_MIN included); tcpopts keeps the value and refuses INT_MIN.
 *  A4 IP_TOS / IPV6_TCLASS: on TCP sockets the kernel keeps the ECN bits to itself (sets
 *     ignore the low two bits, which read back as 0); IPV6_TCLASS -1 reads back 0.
 *  A5 IP_TOS: the kernel takes any int (truncated to 8 bits) and optlen 0..3 (a byte, or
 *     0); IP_TTL takes optlen 1..3 (a byte). tcpopts wants an int in 0..255 / -1..255.
 *  A6 IP-level getsockopt with *len 2 or 3: the kernel answers one byte (*len = 1) for a
 *     value 0..255; tcpopts copies *len bytes of the int.
 *  A9 TCP_CONGESTION: tcpopts accepts any 1..15-character name; the kernel only the
 *     algorithms it has (ENOENT otherwise).
 *
 * Differences once found and fixed, each with a test of its own: IP_TTL 0 refused and -1
 * reading back 64; TCP_FASTOPEN_CONNECT refused once connected; TCP_MAXSEG 0 and negative
 * TCP_NOTSENT_LOWAT accepted; IPv6 options on an IPv4 socket refused (ENOPROTOOPT).
 */
enum step { INIT, SET, SETLEN, GETLEN };

static const char *known_difference(const struct int_opt *d, enum step step, int arg,
				    int k_rc, int k_err, int k_val, int o_rc, int o_val)
{
	(void)o_rc;
	(void)k_err;
	if (d->name == TCP_MAXSEG && d->level == IPPROTO_TCP)
		return step == SET || step == GETLEN ? "A1" : NULL;
	if (d->name == TCP_DEFER_ACCEPT && d->level == IPPROTO_TCP)
		return step == SET || step == GETLEN ? "A2" : NULL;
	if (d->name == TCP_LINGER2 && d->level == IPPROTO_TCP)
		return step == SET || step == GETLEN ? "A3" : NULL;
	if (d->level == IPPROTO_IP && d->name == IP_TTL) {
		if (step == SETLEN)
			return "A5";
		if (step == GETLEN)
			return "A6";
		return NULL;
	}
	if (d->level == IPPROTO_IP && d->name == IP_TOS) {
		if (step == SET && (arg < 0 || arg > 255) && k_rc == 0)
			return "A5";
		if (step == SET && k_rc == 0 && o_rc == 0 && k_val == (o_val & ~3))
			return "A4";
		if (step == SETLEN)
			return "A5";
		if (step == GETLEN)
			return "A6/A4";
		return NULL;
	}
	if (d->level == IPPROTO_IPV6 && d->name == IPV6_TCLASS) {
		if (step == SET && k_rc == 0 && o_rc == 0 &&
		    k_val == (o_val == -1 ? 0 : o_val & ~3))
			return "A4";
		if (step == GETLEN)
			return "A4";
		return NULL;
	}
	return NULL;
}

/* Runs the same sequence on a connected kernel socket and on tcpopts captured from it;
 * returns the number of differences not accepted above, after printing every one. */
static int compare_option(int family, const struct int_opt *d)
{
	static const int values[] = { INT_MIN, -2, -1, 0, 1, 2, 3, 5, 16, 87, 88, 127,
				      128, 255, 256, 1400, 32767, 32768, INT_MAX };
	const char *fam = family == AF_INET ? "v4" : "v6";
	struct tcp_conn c = tcp_connect(family);
	struct tcp_opts o;
	int unexpected = 0;

	/* Every unexpected difference is printed; of the known ones, the first of each kind. */
	const char *seen[8];
	int n_seen = 0, n_diffs = 0;
#define DIFF(step, arg, fmt, ...)                                                                  \
	do {                                                                                       \
		const char *why = known_difference(d, step, arg, k_rc, k_err, k_val, o_rc,  \
						   o_val);                                         \
		int first = 1;                                                                     \
		for (int s_ = 0; why && s_ < n_seen; s_++)                                         \
			first &= strcmp(seen[s_], why) != 0;                                       \
		if (first)                                                                         \
			print_message("%s %s " fmt " [%s]\n", fam, d->label, __VA_ARGS__,          \
				      why ? why : "UNEXPECTED");                                   \
		if (first && why && n_seen < 8)                                                    \
			seen[n_seen++] = why;                                                      \
		n_diffs++;                                                                         \
		if (!why)                                                                          \
			unexpected++;                                                              \
	} while (0)

	tcp_opts_capture(&o, c.client, getsockopt, TCP_OPTS_ALL);
	{
		int k_val = -999, o_val = -999, k_rc, o_rc, k_err;
		socklen_t kl = sizeof k_val, ol = sizeof o_val;
		errno = 0;
		k_rc = getsockopt(c.client, d->level, d->name, &k_val, &kl);
		k_err = k_rc ? errno : 0;
		o_rc = tcp_opts_get(&o, family, d->level, d->name, &o_val, &ol);
		if (k_rc != o_rc || (k_rc == 0 && (k_val != o_val || kl != ol)))
			DIFF(INIT, 0, "get: kernel %d (errno %d) %d, tcpopts %d %d", k_rc, k_err,
			     k_val, o_rc, o_val);
	}
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		int v = values[i], k_rc, o_rc, k_err, o_err, k_val = -999, o_val = -999;
		socklen_t kl = sizeof(int), ol = sizeof(int);

		errno = 0;
		k_rc = setsockopt(c.client, d->level, d->name, &v, sizeof v);
		k_err = k_rc ? errno : 0;
		errno = 0;
		o_rc = tcp_opts_set(&o, family, d->level, d->name, &v, sizeof v);
		o_err = o_rc ? errno : 0;
		getsockopt(c.client, d->level, d->name, &k_val, &kl);
		tcp_opts_get(&o, family, d->level, d->name, &o_val, &ol);
		if (k_rc != o_rc || k_err != o_err || k_val != o_val)
			DIFF(SET, v, "set %d: kernel %d (%s) reads %d, tcpopts %d (%s) reads %d", v,
			     k_rc, k_err ? strerror(k_err) : "ok", k_val, o_rc,
			     o_err ? strerror(o_err) : "ok", o_val);
		tcp_opts_capture(&o, c.client, getsockopt, TCP_OPTS_ALL); /* start the next step even */
	}
	for (socklen_t len = 0; len < sizeof(int); len++) {
		unsigned char b[4] = { 1, 0, 0, 0 };
		int k_rc, o_rc, k_err, o_err, k_val = 0, o_val = 0;

		errno = 0;
		k_rc = setsockopt(c.client, d->level, d->name, b, len);
		k_err = k_rc ? errno : 0;
		errno = 0;
		o_rc = tcp_opts_set(&o, family, d->level, d->name, b, len);
		o_err = o_rc ? errno : 0;
		if (k_rc != o_rc || k_err != o_err)
			DIFF(SETLEN, (int)len, "set with optlen %u: kernel %d (%s), tcpopts %d (%s)",
			     len, k_rc, k_err ? strerror(k_err) : "ok", o_rc,
			     o_err ? strerror(o_err) : "ok");
		tcp_opts_capture(&o, c.client, getsockopt, TCP_OPTS_ALL);
	}
	for (socklen_t len = 0; len <= sizeof(int) + 1; len++) {
		unsigned char kb[8], ob[8];
		socklen_t kl = len, ol = len;
		int k_rc, o_rc, k_err = 0, k_val = 0, o_val = 0;

		memset(kb, 0xee, sizeof kb);
		memset(ob, 0xee, sizeof ob);
		k_rc = getsockopt(c.client, d->level, d->name, kb, &kl);
		o_rc = tcp_opts_get(&o, family, d->level, d->name, ob, &ol);
		if (k_rc != o_rc || kl != ol || memcmp(kb, ob, sizeof kb) != 0)
			DIFF(GETLEN, (int)len,
			     "get with len %u: kernel %d len %u %02x%02x%02x%02x%02x, tcpopts %d len %u "
			     "%02x%02x%02x%02x%02x",
			     len, k_rc, kl, kb[0], kb[1], kb[2], kb[3], kb[4], o_rc, ol, ob[0], ob[1],
			     ob[2], ob[3], ob[4]);
	}
#undef DIFF
	if (n_diffs)
		print_message("%s %s: %d differences in all\n", fam, d->label, n_diffs);
	tcp_close(&c);
	return unexpected;
}

static void test_tcpopts_vs_kernel(void **state)
{
	(void)state;
	int unexpected = 0;

	for (int f = 0; f < 2; f++)
		for (size_t i = 0; i < N_INT_OPTS; i++)
			unexpected += compare_option(f ? AF_INET6 : AF_INET, &int_opts[i]);

	/* TCP_CONGESTION: only differences of kind A9. */
	static const char *const names[] = { "reno", "", "nosuch", "0123456789abcde",
					     "0123456789abcdef", "0123456789abcdefXYZ", "cubic" };
	struct tcp_conn c = tcp_connect(AF_INET);
	struct tcp_opts o;
	tcp_opts_capture(&o, c.client, getsockopt, TCP_OPTS_ALL);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		socklen_t len = (socklen_t)strlen(names[i]) + 1;
		char kc[TCP_CONGESTION_MAX + 1] = { 0 }, oc[TCP_CONGESTION_MAX + 1] = { 0 };
		errno = 0;
		int k_rc = setsockopt(c.client, IPPROTO_TCP, TCP_CONGESTION, names[i], len);
		int k_err = k_rc ? errno : 0;
		errno = 0;
		int o_rc = tcp_opts_set(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, names[i], len);
		int o_err = o_rc ? errno : 0;
		socklen_t kl = TCP_CONGESTION_MAX, ol = TCP_CONGESTION_MAX;
		getsockopt(c.client, IPPROTO_TCP, TCP_CONGESTION, kc, &kl);
		tcp_opts_get(&o, AF_INET6, IPPROTO_TCP, TCP_CONGESTION, oc, &ol);
		if (k_rc != o_rc || k_err != o_err || strcmp(kc, oc) != 0 || kl != ol) {
			int a9 = k_err == ENOENT && o_rc == 0 && strlen(names[i]) > 0 &&
				 strlen(names[i]) < TCP_CONGESTION_MAX;
			print_message("TCP_CONGESTION \"%s\": kernel %d (%s) reads %s, tcpopts %d (%s) "
				      "reads %s [%s]\n",
				      names[i], k_rc, k_err ? strerror(k_err) : "ok", kc, o_rc,
				      o_err ? strerror(o_err) : "ok", oc, a9 ? "A9" : "UNEXPECTED");
			unexpected += !a9;
		}
		tcp_opts_capture(&o, c.client, getsockopt, TCP_OPTS_ALL);
	}
	tcp_close(&c);

	print_message("tcpopts vs kernel: %d unexpected differences\n", unexpected);
	assert_int_equal(unexpected, 0);
}

/* The fixed differences listed above: tcpopts answers as a connected TCP socket does. */
static void expect_set(struct tcp_opts *o, const char *label, int level, int name, int v,
		       int want_errno)
{
	errno = 0;
	int rc = tcp_opts_set(o, AF_INET6, level, name, &v, sizeof v);
	int err = rc ? errno : 0;

	if (rc != (want_errno ? -1 : 0) || err != want_errno)
		fail_msg("%s = %d: tcpopts says %d (%s), a connected TCP socket says %s", label, v,
			 rc, err ? strerror(err) : "ok", want_errno ? strerror(want_errno) : "ok");
}

static void test_tcpopts_ip_ttl_zero(void **state)
{
	(void)state;
	struct tcp_opts o;

	captured(&o, AF_INET);
	int before = opt_get(&o, IPPROTO_IP, IP_TTL);
	expect_set(&o, "IP_TTL", IPPROTO_IP, IP_TTL, 0, EINVAL);
	assert_int_equal(opt_get(&o, IPPROTO_IP, IP_TTL), before);
}

static void test_tcpopts_fastopen_connect_after_connect(void **state)
{
	(void)state;
	struct tcp_opts o;

	captured(&o, AF_INET);
	expect_set(&o, "TCP_FASTOPEN_CONNECT", IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1, EINVAL);
	expect_set(&o, "TCP_FASTOPEN_CONNECT", IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 0, EINVAL);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_FASTOPEN_CONNECT), 0);
}

static void test_tcpopts_maxseg_zero(void **state)
{
	(void)state;
	struct tcp_opts o;

	captured(&o, AF_INET);
	expect_set(&o, "TCP_MAXSEG", IPPROTO_TCP, TCP_MAXSEG, 0, 0);
}

static void test_tcpopts_notsent_lowat_negative(void **state)
{
	(void)state;
	struct tcp_opts o;

	captured(&o, AF_INET);
	expect_set(&o, "TCP_NOTSENT_LOWAT", IPPROTO_TCP, TCP_NOTSENT_LOWAT, -1, 0);
	assert_int_equal(opt_get(&o, IPPROTO_TCP, TCP_NOTSENT_LOWAT), -1);
}

/* What the application set on a redirected connection goes onto the new TCP socket a
 * connect() after its disconnect needs, and only what differs from the new socket's own. */
static void test_tcpopts_apply(void **state)
{
	(void)state;
	int was = socket(AF_INET6, SOCK_STREAM, 0), fresh = socket(AF_INET6, SOCK_STREAM, 0);
	struct tcp_opts o, now;
	unsigned want = 1u << tcp_opts_bit(IPPROTO_TCP, TCP_NODELAY) |
			1u << tcp_opts_bit(IPPROTO_TCP, TCP_KEEPIDLE) |
			1u << tcp_opts_bit(IPPROTO_IPV6, IPV6_V6ONLY) |
			1u << tcp_opts_bit(IPPROTO_IP, IP_TOS);

	assert_true(was >= 0 && fresh >= 0);
	set_int(was, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	tcp_opts_capture(&o, was, getsockopt, TCP_OPTS_ALL);
	/* as the application sets them once connected */
	expect_set(&o, "TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY, 1, 0);
	expect_set(&o, "TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, 77, 0);
	expect_set(&o, "IP_TOS", IPPROTO_IP, IP_TOS, 0x10, 0);
	assert_int_equal(tcp_opts_apply(&o, fresh, getsockopt, setsockopt), want);
	tcp_opts_capture(&now, fresh, getsockopt, TCP_OPTS_ALL);
	assert_memory_equal(now.value, o.value, sizeof(o.value));
	assert_string_equal(now.congestion, o.congestion);
	assert_int_equal(tcp_opts_apply(&o, fresh, getsockopt, setsockopt), 0);
	close(was);
	close(fresh);
}

/* --- fdstate --------------------------------------------------------------------------- */

#define PAGE 4096
#define MAX_FD (4096 * 4096)

static int setup_real(void **state)
{
	(void)state;
	real.getsockopt = getsockopt;
	return 0;
}

static int refs(const struct fd_state *st)
{
	return atomic_load(&st->refs);
}

/* What fdstate_acquire_kind and fdstate_acquire_redirected find, without keeping the
 * reference they take: for comparisons only. */
static struct fd_state *kind_of(int fd, enum fd_kind kind)
{
	struct fd_state *st = fdstate_acquire_kind(fd, kind);

	fdstate_release(st);
	return st;
}

static struct fd_state *redirected(int fd)
{
	struct fd_state *st = fdstate_acquire_redirected(fd);

	fdstate_release(st);
	return st;
}

/* A new state with two references: one the test keeps, one to give to a slot. */
static struct fd_state *held(enum fd_kind kind, int family)
{
	struct fd_state *st = fdstate_new(kind, family);

	assert_non_null(st);
	atomic_fetch_add(&st->refs, 1);
	return st;
}

/* One more reference to st, to give to a slot. */
static uintptr_t ref(struct fd_state *st)
{
	atomic_fetch_add(&st->refs, 1);
	return (uintptr_t)st;
}

static void test_fdstate_new(void **state)
{
	(void)state;
	for (int k = FD_PRECONNECT; k <= FD_SIBLING_LISTENER; k++) {
		struct fd_state *st = fdstate_new((enum fd_kind)k, AF_INET6);
		assert_non_null(st);
		assert_true((uintptr_t)st > FD_FRESH_TCP);
		assert_int_equal(refs(st), 1);
		assert_int_equal(st->kind, k);
		assert_int_equal(st->family, AF_INET6);
		fdstate_put((uintptr_t)st);
	}
	assert_null(fdstate_ptr(0));
	assert_null(fdstate_ptr(FD_FRESH_TCP));
	fdstate_put(0);
	fdstate_put(FD_FRESH_TCP);
}

static void test_fdstate_set_get_take(void **state)
{
	(void)state;
	struct fd_state *st = fdstate_new(FD_REDIRECTED, AF_INET);

	assert_int_equal(fdstate_peek(70000), 0);
	assert_null(kind_of(70000, FD_REDIRECTED));
	assert_int_equal(fdstate_set(70000, (uintptr_t)st), 0);
	assert_int_equal(fdstate_peek(70000), (uintptr_t)st);
	assert_ptr_equal(kind_of(70000, FD_REDIRECTED), st);
	assert_null(kind_of(70000, FD_SIBLING_LISTENER));
	assert_null(kind_of(70000, FD_PRECONNECT));
	assert_int_equal(fdstate_peek(69999), 0);
	assert_int_equal(fdstate_peek(70001), 0);
	assert_int_equal(fdstate_peek(70000 + PAGE), 0);

	assert_int_equal(fdstate_set(5000, FD_FRESH_TCP), 0);
	assert_int_equal(fdstate_peek(5000), FD_FRESH_TCP);
	for (int k = FD_PRECONNECT; k <= FD_SIBLING_LISTENER; k++)
		assert_null(kind_of(5000, (enum fd_kind)k));

	assert_int_equal(fdstate_take(70000), (uintptr_t)st);
	assert_int_equal(fdstate_peek(70000), 0);
	assert_int_equal(fdstate_take(70000), 0);
	fdstate_put((uintptr_t)st);
	assert_int_equal(fdstate_take(5000), FD_FRESH_TCP);
	assert_int_equal(fdstate_peek(5000), 0);
	assert_int_equal(fdstate_take(123456), 0); /* a page that was never made */

	/* The last descriptor number there is room for, and the first there is not. */
	assert_int_equal(fdstate_set(MAX_FD - 1, FD_FRESH_TCP), 0);
	assert_int_equal(fdstate_peek(MAX_FD - 1), FD_FRESH_TCP);
	assert_int_equal(fdstate_take(MAX_FD - 1), FD_FRESH_TCP);
	errno = 0;
	assert_int_equal(fdstate_set(MAX_FD, FD_FRESH_TCP), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(fdstate_set(MAX_FD, 0), 0);
	assert_int_equal(fdstate_peek(MAX_FD), 0);
	assert_int_equal(fdstate_take(MAX_FD), 0);
	assert_int_equal(fdstate_peek(-1), 0);
	assert_int_equal(fdstate_take(-1), 0);
	assert_int_equal(fdstate_set(-1, 0), 0);
	assert_int_equal(fdstate_peek(INT_MAX), 0);

	/* A failed set drops the reference it was given. */
	st = held(FD_REDIRECTED, AF_INET);
	errno = 0;
	assert_int_equal(fdstate_set(-1, (uintptr_t)st), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(refs(st), 1);
	assert_int_equal(fdstate_set(INT_MAX, (uintptr_t)st), -1); /* takes the last one */
}

static void test_fdstate_set_replaces(void **state)
{
	(void)state;
	struct fd_state *a = held(FD_REDIRECTED, AF_INET), *b = held(FD_SIBLING_LISTENER, AF_INET);

	assert_int_equal(fdstate_set(77, (uintptr_t)a), 0);
	assert_int_equal(fdstate_set(77, (uintptr_t)b), 0);
	assert_int_equal(refs(a), 1); /* the slot's reference went */
	assert_int_equal(fdstate_set(77, FD_FRESH_TCP), 0);
	assert_int_equal(refs(b), 1);
	assert_int_equal(fdstate_set(77, 0), 0);
	assert_int_equal(fdstate_peek(77), 0);
	fdstate_put((uintptr_t)a);
	fdstate_put((uintptr_t)b);
}

static void test_fdstate_dup(void **state)
{
	(void)state;
	/* Redirected and listener states are shared, counted. */
	for (int k = FD_REDIRECTED; k <= FD_SIBLING_LISTENER; k++) {
		struct fd_state *st = fdstate_new((enum fd_kind)k, AF_INET6);
		if (k == FD_SIBLING_LISTENER)
			st->listener.port = 8080;
		else
			st->conn.peer_len = 28;
		assert_int_equal(fdstate_set(100, (uintptr_t)st), 0);
		fdstate_dup(100, 9000); /* onto another page */
		assert_int_equal(fdstate_peek(9000), (uintptr_t)st);
		assert_int_equal(fdstate_peek(100), (uintptr_t)st);
		assert_int_equal(refs(st), 2);
		fdstate_dup(9000, 101);
		assert_int_equal(refs(st), 3);
		/* Closing the original keeps the duplicates' state alive (ASan: no UAF). */
		fdstate_put(fdstate_take(100));
		assert_int_equal(refs(st), 2);
		fdstate_put(fdstate_take(9000));
		assert_int_equal(refs(st), 1);
		assert_ptr_equal(kind_of(101, (enum fd_kind)k), st);
		assert_int_equal(st->kind, k);
		assert_int_equal(st->family, AF_INET6);
		if (k == FD_SIBLING_LISTENER)
			assert_int_equal(st->listener.port, 8080);
		else
			assert_int_equal(st->conn.peer_len, 28);
		fdstate_put(fdstate_take(101)); /* the last one frees it */
		assert_int_equal(fdstate_peek(101), 0);
	}

	/* A fresh TCP socket: both descriptors are marked duplicated, with the options set;
	 * the target's old state is dropped. */
	struct fd_state *old = held(FD_REDIRECTED, AF_INET);
	uintptr_t marked = FD_FRESH_TCP | 2u << 3 | FD_FRESH_DUPLICATED;
	assert_int_equal(fdstate_set(200, FD_FRESH_TCP | 2u << 3), 0);
	assert_int_equal(fdstate_sharing(fdstate_peek(200)), FD_ALONE);
	assert_int_equal(fdstate_set(201, (uintptr_t)old), 0);
	fdstate_dup(200, 201);
	assert_int_equal(fdstate_peek(201), marked);
	assert_int_equal(fdstate_peek(200), marked);
	assert_int_equal(fdstate_options_set(marked), 1u << 3);
	assert_int_equal(fdstate_sharing(marked), FD_DUPLICATED);
	assert_int_equal(refs(old), 1);
	assert_int_equal(fdstate_take(200), marked);
	assert_int_equal(fdstate_take(201), marked);

	/* A fork since the socket was made. */
	assert_int_equal(fdstate_set(200, fdstate_fresh_mark()), 0);
	fdstate_before_fork();
	assert_int_equal(fdstate_sharing(fdstate_peek(200)), FD_FORKED);
	assert_int_equal(fdstate_sharing(fdstate_fresh_mark()), FD_ALONE);
	fdstate_take(200);

	/* A pre-connect state (with its epoll registrations) stays; the duplicate gets a mark. */
	struct fd_state *pre = fdstate_new(FD_PRECONNECT, 0);
	struct epoll_reg *reg = calloc(1, sizeof *reg);
	reg->epfd = 3;
	reg->next = calloc(1, sizeof *reg);
	pre->pre.regs = reg;
	assert_int_equal(fdstate_set(300, (uintptr_t)pre), 0);
	assert_int_equal(fdstate_set(301, ref(old)), 0);
	fdstate_dup(300, 301);
	assert_int_equal(fdstate_sharing(fdstate_peek(301)), FD_DUPLICATED);
	assert_int_equal(fdstate_take(301) & FD_FRESH_TCP, FD_FRESH_TCP);
	assert_int_equal(refs(old), 1);
	assert_int_equal(fdstate_peek(300), (uintptr_t)pre);
	assert_int_equal(fdstate_sharing((uintptr_t)pre), FD_DUPLICATED);
	assert_int_equal(refs(pre), 1);
	fdstate_put(fdstate_take(300)); /* frees the registrations too (LeakSanitizer) */

	/* Nothing to copy: the target is emptied. */
	assert_int_equal(fdstate_set(401, ref(old)), 0);
	fdstate_dup(400, 401);
	assert_int_equal(fdstate_peek(401), 0);
	assert_int_equal(refs(old), 1);

	/* A state duplicated onto its own descriptor stays, with one reference. */
	assert_int_equal(fdstate_set(402, ref(old)), 0);
	assert_int_equal(refs(old), 2);
	fdstate_dup(402, 402);
	assert_int_equal(fdstate_peek(402), (uintptr_t)old);
	assert_int_equal(refs(old), 2);
	fdstate_put(fdstate_take(402));
	fdstate_put((uintptr_t)old);

	/* Out-of-range descriptors on either side. */
	fdstate_dup(-1, 403);
	assert_int_equal(fdstate_peek(403), 0);
	struct fd_state *st = held(FD_REDIRECTED, AF_INET);
	assert_int_equal(fdstate_set(404, (uintptr_t)st), 0);
	fdstate_dup(404, MAX_FD); /* no slot: the extra reference must be dropped */
	assert_int_equal(refs(st), 2);
	fdstate_put(fdstate_take(404));
	assert_int_equal(refs(st), 1);
	fdstate_put((uintptr_t)st);
}

static void test_fdstate_retire_range(void **state)
{
	(void)state;
	/* Pages 1000 and 1002 exist, 1001 and 1003 do not. */
	const int p0 = 1000 * PAGE, p2 = 1002 * PAGE, p4 = 1004 * PAGE;
	struct fd_state *s[8];
	const int fds[8] = { p0 + 9, p0 + 10, p0 + 11, p0 + PAGE - 1, p2, p2 + 20, p2 + 21, p4 + 3 };

	for (int i = 0; i < 8; i++) {
		s[i] = held(FD_REDIRECTED, AF_INET);
		assert_int_equal(fdstate_set(fds[i], (uintptr_t)s[i]), 0);
	}
	assert_int_equal(fdstate_set(p0 + 500, FD_FRESH_TCP), 0);
	fdstate_retire_range((unsigned)p0 + 10, (unsigned)p2 + 20);
	for (int i = 0; i < 8; i++) {
		int inside = fds[i] >= p0 + 10 && fds[i] <= p2 + 20;
		assert_int_equal(fdstate_peek(fds[i]), inside ? 0 : (uintptr_t)s[i]);
		assert_int_equal(refs(s[i]), inside ? 1 : 2);
	}
	assert_int_equal(fdstate_peek(p0 + 500), 0);

	/* Ranges inside a missing page, and from a missing page into a present one. */
	fdstate_retire_range(1001 * PAGE + 5, 1001 * PAGE + 10);
	fdstate_retire_range(1003 * PAGE + 100, (unsigned)p4 + 2);
	assert_int_equal(fdstate_peek(p4 + 3), (uintptr_t)s[7]);
	fdstate_retire_range(1003 * PAGE + 100, (unsigned)p4 + 3);
	assert_int_equal(fdstate_peek(p4 + 3), 0);
	assert_int_equal(refs(s[7]), 1);

	/* An empty range, and first > last. */
	fdstate_retire_range((unsigned)p0 + 9, (unsigned)p0 + 8);
	assert_int_equal(fdstate_peek(p0 + 9), (uintptr_t)s[0]);
	/* A single descriptor. */
	fdstate_retire_range((unsigned)p0 + 9, (unsigned)p0 + 9);
	assert_int_equal(fdstate_peek(p0 + 9), 0);
	/* Up to the largest number, as close_range(first, ~0U) does. */
	assert_int_equal(fdstate_set(MAX_FD - 1, FD_FRESH_TCP), 0);
	fdstate_retire_range((unsigned)p2 + 21, UINT_MAX);
	assert_int_equal(fdstate_peek(p2 + 21), 0);
	assert_int_equal(fdstate_peek(MAX_FD - 1), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(refs(s[i]), 1);
		fdstate_put((uintptr_t)s[i]);
	}
}

/* A getsockopt that says fd vsock_fd is an AF_VSOCK socket, without any such socket. */
static int vsock_fd = -1, fake_calls;
static int fake_vsock_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	fake_calls++;
	assert_int_equal(level, SOL_SOCKET);
	assert_int_equal(name, SO_DOMAIN);
	assert_int_equal(*len, sizeof(int));
	if (fd != vsock_fd)
		return getsockopt(fd, level, name, val, len);
	int domain = AF_VSOCK;
	memcpy(val, &domain, sizeof domain);
	errno = 0; /* a call that succeeds may still touch errno */
	return 0;
}

static void test_fdstate_redirected(void **state)
{
	(void)state;
	int p[2];
	struct fd_state *st;

	assert_int_equal(pipe(p), 0);
	/* A pipe: not vsock, so the state goes. */
	st = held(FD_REDIRECTED, AF_INET);
	assert_int_equal(fdstate_set(p[0], (uintptr_t)st), 0);
	errno = 4242;
	assert_null(redirected(p[0]));
	assert_int_equal(errno, 4242);
	assert_int_equal(fdstate_peek(p[0]), 0);
	assert_int_equal(refs(st), 1);

	/* A TCP socket. */
	int tcp = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(tcp >= 0);
	assert_int_equal(fdstate_set(tcp, ref(st)), 0);
	assert_null(redirected(tcp));
	assert_int_equal(fdstate_peek(tcp), 0);
	assert_int_equal(refs(st), 1);

	/* Sockets of other families. */
	int others[3];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, others), 0);
	others[2] = socket(AF_INET6, SOCK_STREAM, 0);
	assert_true(others[2] >= 0);
	for (int i = 0; i < 3; i += 2) {
		assert_int_equal(fdstate_set(others[i], ref(st)), 0);
		assert_null(redirected(others[i]));
		assert_int_equal(fdstate_peek(others[i]), 0);
		assert_int_equal(refs(st), 1);
	}
	for (int i = 0; i < 3; i++)
		close(others[i]);

	/* A number closed behind the shim's back. */
	close(p[1]);
	assert_int_equal(fdstate_set(p[1], ref(st)), 0);
	errno = 4343;
	assert_null(redirected(p[1]));
	assert_int_equal(errno, 4343);
	assert_int_equal(fdstate_peek(p[1]), 0);
	assert_int_equal(refs(st), 1);

	/* A vsock socket keeps its state; getsockopt is asked once per call. */
	real.getsockopt = fake_vsock_getsockopt;
	fake_calls = 0;
	vsock_fd = tcp;
	assert_int_equal(fdstate_set(tcp, ref(st)), 0);
	errno = 4444;
	assert_ptr_equal(redirected(tcp), st);
	assert_int_equal(errno, 4444);
	assert_int_equal(fake_calls, 1);
	assert_int_equal(fdstate_peek(tcp), (uintptr_t)st);
	assert_int_equal(refs(st), 2);

	/* Descriptors without a redirected state: no system call, nothing changes. */
	fake_calls = 0;
	assert_null(redirected(p[0]));
	assert_null(redirected(-1));
	assert_null(redirected(MAX_FD));
	struct fd_state *lst = fdstate_new(FD_SIBLING_LISTENER, AF_INET);
	assert_int_equal(fdstate_set(p[0], (uintptr_t)lst), 0);
	assert_null(redirected(p[0]));
	assert_int_equal(fdstate_peek(p[0]), (uintptr_t)lst);
	assert_int_equal(fdstate_set(p[0], FD_FRESH_TCP), 0);
	assert_null(redirected(p[0]));
	assert_int_equal(fdstate_peek(p[0]), FD_FRESH_TCP);
	assert_int_equal(fake_calls, 0);
	real.getsockopt = getsockopt;
	vsock_fd = -1;

	fdstate_set(p[0], 0);
	fdstate_put(fdstate_take(tcp));
	assert_int_equal(refs(st), 1);
	fdstate_put((uintptr_t)st);
	close(p[0]);
	close(tcp);
}

/* Four threads on one page: new pages are made by whichever thread comes first, and
 * distinct slots of one page are set, duplicated and taken at once. */
#define THREADS 4
#define ITERATIONS 100000
#define RACE_PAGES 1024

/* A spinning barrier: pthread_barrier_wait wakes its waiters one after the other, too far
 * apart for them to race to create a page. */
static atomic_uint barrier_count, barrier_gen;

static void barrier_wait(void)
{
	unsigned gen = atomic_load(&barrier_gen);

	if (atomic_fetch_add(&barrier_count, 1) == THREADS - 1) {
		atomic_store(&barrier_count, 0);
		atomic_fetch_add(&barrier_gen, 1);
		return;
	}
	for (unsigned spins = 0; atomic_load(&barrier_gen) == gen; spins++)
		if (spins % 1024 == 1023)
			sched_yield(); /* fewer CPUs than threads */
}

static void *fd_worker(void *arg)
{
	const int t = (int)(intptr_t)arg;
	const int base = 2000 * PAGE, a = base + 2 * t, b = base + 2 * t + 1;
	long bad = 0;

	/* Page creation races: all threads write into a page that does not exist yet. */
	for (int j = 0; j < RACE_PAGES; j++) {
		int fd = (2001 + j) * PAGE + t * 7;
		barrier_wait();
		if (fdstate_set(fd, FD_FRESH_TCP) != 0)
			bad++;
	}
	barrier_wait();
	for (int j = 0; j < RACE_PAGES; j++) /* every thread's write landed in the page kept */
		bad += fdstate_take((2001 + j) * PAGE + t * 7) != FD_FRESH_TCP;

	barrier_wait();
	for (int i = 0; i < ITERATIONS; i++) {
		if (i % 4 == 0) {
			struct fd_state *st = fdstate_new(i % 8 ? FD_REDIRECTED : FD_SIBLING_LISTENER, t);
			if (!st || fdstate_set(a, (uintptr_t)st) != 0)
				return (void *)-1;
			bad += fdstate_peek(a) != (uintptr_t)st;
			fdstate_dup(a, b);
			bad += fdstate_peek(b) != (uintptr_t)st;
			fdstate_put(fdstate_take(a));
			bad += st->family != t; /* still alive through b */
			bad += fdstate_set(b, FD_FRESH_TCP) != 0; /* the last reference goes */
			bad += fdstate_peek(b) != FD_FRESH_TCP;
		} else {
			bad += fdstate_set(a, FD_FRESH_TCP) != 0;
			fdstate_dup(a, b);
			bad += fdstate_peek(b) != (FD_FRESH_TCP | FD_FRESH_DUPLICATED);
			bad += fdstate_take(a) != (FD_FRESH_TCP | FD_FRESH_DUPLICATED);
			bad += fdstate_take(b) != (FD_FRESH_TCP | FD_FRESH_DUPLICATED);
		}
	}
	fdstate_put(fdstate_take(a));
	fdstate_put(fdstate_take(b));
	return (void *)(intptr_t)bad;
}

/* Which options were set follows a socket from socket() through epoll_ctl to listen(). */
static void test_fdstate_options_set(void **state)
{
	(void)state;

	assert_int_equal(fdstate_options_set(0), FD_OPTIONS_UNKNOWN);
	assert_int_equal(fdstate_set(300, FD_FRESH_TCP), 0);
	assert_int_equal(fdstate_options_set(fdstate_peek(300)), 0);
	fdstate_note_option(300, 0);
	fdstate_note_option(300, TCP_OPT_INTS);
	assert_true(fdstate_is_fresh(fdstate_peek(300)));
	assert_null(fdstate_ptr(fdstate_peek(300)));
	assert_int_equal(fdstate_options_set(fdstate_peek(300)), 1u | 1u << TCP_OPT_INTS);

	struct fd_state *pre = fdstate_new(FD_PRECONNECT, 0);
	atomic_init(&pre->pre.options_set, 1u);
	assert_int_equal(fdstate_set(300, (uintptr_t)pre), 0);
	fdstate_note_option(300, 3);
	assert_int_equal(fdstate_options_set(fdstate_peek(300)), 1u | 1u << 3);

	struct fd_state *l = fdstate_new(FD_SIBLING_LISTENER, AF_INET);
	atomic_init(&l->listener.options_set, 0u);
	assert_int_equal(fdstate_set(300, (uintptr_t)l), 0);
	fdstate_note_option(300, 5);
	assert_int_equal(fdstate_options_set(fdstate_peek(300)), 1u << 5);

	assert_int_equal(fdstate_set(300, (uintptr_t)fdstate_new(FD_REDIRECTED, AF_INET)), 0);
	fdstate_note_option(300, 5); /* nothing to note on a connection */
	assert_int_equal(fdstate_options_set(fdstate_peek(300)), FD_OPTIONS_UNKNOWN);
	fdstate_note_option(301, 5); /* nor on a descriptor the shim knows nothing of */
	assert_int_equal(fdstate_peek(301), 0);
	fdstate_set(300, 0);
}

static void test_fdstate_threads(void **state)
{
	(void)state;
	pthread_t th[THREADS];

	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, fd_worker, (void *)(intptr_t)t), 0);
	for (int t = 0; t < THREADS; t++) {
		void *ret;
		assert_int_equal(pthread_join(th[t], &ret), 0);
		if (ret != NULL)
			fail_msg("thread %d: %ld wrong answers", t, (long)(intptr_t)ret);
	}
	for (int fd = 2000 * PAGE; fd < (2001 + RACE_PAGES) * PAGE; fd++)
		if (fdstate_peek(fd) != 0)
			fail_msg("slot %d not empty", fd);
}

/* Readers acquire a descriptor's state while one thread closes the descriptor and puts new
 * states there, which reuse the released ones: a state a reader holds is never reused under
 * it (each state carries its family in peer_len too, and both stay as they were). */
#define READERS 3
#define CLOSES 200000
#define ACQUIRE_FD 4242

static atomic_bool closing_done;

static void *closer(void *unused)
{
	(void)unused;
	for (int i = 0; i < CLOSES; i++) {
		struct fd_state *st = fdstate_new(i % 3 ? FD_REDIRECTED : FD_SIBLING_LISTENER, i);
		if (!st)
			return (void *)-1;
		st->conn.peer_len = (socklen_t)i;
		fdstate_set(ACQUIRE_FD, (uintptr_t)st);
		if (i % 8 == 0)
			sched_yield(); /* a reader finds it */
		fdstate_put(fdstate_take(ACQUIRE_FD)); /* close() */
	}
	atomic_store(&closing_done, true);
	return NULL;
}

static void *acquirer(void *unused)
{
	long bad = 0, held = 0;

	(void)unused;
	while (!atomic_load(&closing_done)) {
		uintptr_t v = fdstate_acquire(ACQUIRE_FD);
		struct fd_state *st = fdstate_ptr(v);
		if (!st)
			continue;
		int family = st->family;
		enum fd_kind kind = st->kind;
		socklen_t mark = st->conn.peer_len;
		sched_yield(); /* the closer runs on meanwhile */
		bad += st->family != family || st->kind != kind || st->conn.peer_len != mark ||
		       (kind == FD_REDIRECTED) != (family % 3 != 0) || (socklen_t)family != mark ||
		       atomic_load(&st->refs) < 1;
		fdstate_put(v);
		held++;
	}
	return (void *)(intptr_t)(bad ? -bad : held);
}

static void test_fdstate_acquire_races_close(void **state)
{
	(void)state;
	pthread_t c, r[READERS];
	long held = 0;

	atomic_store(&closing_done, false);
	for (int t = 0; t < READERS; t++)
		assert_int_equal(pthread_create(&r[t], NULL, acquirer, NULL), 0);
	assert_int_equal(pthread_create(&c, NULL, closer, NULL), 0);
	void *ret;
	assert_int_equal(pthread_join(c, &ret), 0);
	assert_null(ret);
	for (int t = 0; t < READERS; t++) {
		assert_int_equal(pthread_join(r[t], &ret), 0);
		if ((intptr_t)ret < 0)
			fail_msg("reader %d: %ld states changed while held", t, -(long)(intptr_t)ret);
		held += (intptr_t)ret;
	}
	assert_int_equal(fdstate_peek(ACQUIRE_FD), 0);
	print_message("%ld states held by readers while %d were closed\n", held, CLOSES);
}

/* The swap's check against close(): a swap proceeds only while the slot holds the state it
 * began with, and a close that empties the slot during a swap waits for the swap's end. */
#define SWAP_FD 5555
static atomic_bool swap_ended;

static void *swap_slowly(void *arg)
{
	struct fd_state *pre = arg;

	if (fdstate_swap_begin(SWAP_FD, pre) != 0)
		return (void *)-1;
	usleep(100 * 1000); /* the dup3 and the epoll registrations */
	atomic_store(&swap_ended, true);
	struct fd_state *st = fdstate_new(FD_REDIRECTED, AF_INET);
	return (void *)(intptr_t)fdstate_swap_end(SWAP_FD, pre, st); /* -1: close took it */
}

static void test_fdstate_swap(void **state)
{
	(void)state;
	struct fd_state *pre, *st;

	/* A fresh socket's mark becomes a pre-connect state; the swap puts st in its place. */
	assert_int_equal(fdstate_set(SWAP_FD, FD_FRESH_TCP | 2u << 3), 0);
	pre = fdstate_acquire_preconnect(SWAP_FD);
	assert_non_null(pre);
	assert_int_equal(fdstate_options_set((uintptr_t)pre), 1u << 3);
	assert_int_equal(fdstate_peek(SWAP_FD), (uintptr_t)pre);
	assert_int_equal(refs(pre), 2);
	assert_int_equal(fdstate_swap_begin(SWAP_FD, pre), 0);
	st = held(FD_REDIRECTED, AF_INET);
	assert_int_equal(fdstate_swap_end(SWAP_FD, pre, st), 0);
	assert_int_equal(fdstate_peek(SWAP_FD), (uintptr_t)st);
	assert_int_equal(refs(pre), 1);

	/* The slot no longer holds pre (closed, or another socket on the number): no swap. */
	errno = 0;
	assert_int_equal(fdstate_swap_begin(SWAP_FD, pre), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(atomic_load(&pre->pre.swapper), 0);
	fdstate_release(pre);
	fdstate_set(SWAP_FD, FD_FRESH_TCP);
	assert_int_equal(refs(st), 1);
	fdstate_release(st);

	/* Never a state in an empty slot, which a close() on another thread may have emptied
	 * before it freed the number (fdstate.h); accept's swap onto a number nobody knows yet
	 * (pre NULL) takes an empty slot, on a page not made yet too. */
	assert_null(fdstate_acquire_preconnect(-1));
	fdstate_set(SWAP_FD, 0);
	assert_null(fdstate_acquire_preconnect(SWAP_FD));
	assert_int_equal(fdstate_peek(SWAP_FD), 0);
	assert_int_equal(fdstate_swap_begin(3000 * PAGE + 1, NULL), 0);
	st = held(FD_REDIRECTED, AF_INET);
	assert_int_equal(fdstate_swap_end(3000 * PAGE + 1, NULL, st), 0);
	assert_int_equal(fdstate_peek(3000 * PAGE + 1), (uintptr_t)st);
	fdstate_put(fdstate_retire(3000 * PAGE + 1));
	fdstate_release(st);

	/* A close during the swap waits for its end, and the swap learns of the close. */
	fdstate_set(SWAP_FD, FD_FRESH_TCP);
	pre = fdstate_acquire_preconnect(SWAP_FD);
	assert_non_null(pre);
	pthread_t t;
	atomic_store(&swap_ended, false);
	assert_int_equal(pthread_create(&t, NULL, swap_slowly, pre), 0);
	while (!atomic_load(&pre->pre.swapper))
		sched_yield();
	uintptr_t taken = fdstate_retire(SWAP_FD);
	assert_true(atomic_load(&swap_ended));
	assert_int_equal(taken, (uintptr_t)pre);
	void *ret;
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_int_equal((intptr_t)ret, -1);
	assert_int_equal(fdstate_peek(SWAP_FD), 0);
	fdstate_put(taken);
	assert_int_equal(refs(pre), 1);
	fdstate_release(pre);
}

/* --- tcp_refuses ----------------------------------------------------------------------- */

static bool refuses(int family, const char *host, uint32_t scope, bool v6only)
{
	struct sockaddr_storage ss;
	int one = 1, fd = socket(family, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (v6only)
		assert_int_equal(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), 0);
	memset(&ss, 0, sizeof ss);
	if (strchr(host, ':')) {
		struct sockaddr_in6 *in6 = (void *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_scope_id = scope;
		assert_int_equal(inet_pton(AF_INET6, host, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (void *)&ss;
		in->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, host, &in->sin_addr), 1);
	}
	bool r = tcp_refuses(fd, (struct sockaddr *)&ss);
	close(fd);
	return r;
}

/* What tcp_v4_connect and tcp_v6_connect refuse before routing (tests/progs/conform.c shows
 * the kernel's errors for the first two). */
static void test_tcp_refuses(void **state)
{
	(void)state;
	real.getsockopt = getsockopt;
	assert_false(refuses(AF_INET, "198.18.0.2", 0, false));
	assert_false(refuses(AF_INET6, "2001:db8::2", 0, false));
	assert_false(refuses(AF_INET6, "2001:db8::2", 0, true));
	assert_false(refuses(AF_INET6, "::ffff:198.18.0.2", 0, false));
	assert_false(refuses(AF_INET6, "fe80::2", 2, false));
	/* the other family */
	assert_true(refuses(AF_INET, "::ffff:198.18.0.2", 0, false));
	assert_true(refuses(AF_INET6, "198.18.0.2", 0, false));
	/* IPv4-mapped on IPV6_V6ONLY: ENETUNREACH */
	assert_true(refuses(AF_INET6, "::ffff:198.18.0.2", 0, true));
	/* link-local with no interface: EINVAL */
	assert_true(refuses(AF_INET6, "fe80::2", 0, false));
	/* not a socket any more */
	struct sockaddr_in in = {.sin_family = AF_INET};
	assert_true(tcp_refuses(-1, (struct sockaddr *)&in));
}

/* --- endpoints ------------------------------------------------------------------------- */

static void test_endpoint_from_sockaddr(void **state)
{
	(void)state;
	struct vmshim_endpoint ep;
	static const uint8_t zeros[12] = { 0 };

	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(8080) };
	inet_pton(AF_INET, "198.18.0.2", &in.sin_addr);
	memset(&ep, 0xa5, sizeof ep);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in, sizeof in, &ep), 0);
	assert_int_equal(ep.family, AF_INET);
	assert_int_equal(ep.port, 8080);
	assert_memory_equal(ep.addr, &in.sin_addr, 4);
	assert_memory_equal(ep.addr + 4, zeros, 12);
	/* a longer buffer is fine */
	struct sockaddr_storage ss = { 0 };
	memcpy(&ss, &in, sizeof in);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&ss, sizeof ss, &ep), 0);
	assert_int_equal(ep.port, 8080);

	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(443),
				    .sin6_scope_id = 7, .sin6_flowinfo = 9 };
	inet_pton(AF_INET6, "2001:db8::2", &in6.sin6_addr);
	memset(&ep, 0xa5, sizeof ep);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in6, sizeof in6, &ep), 0);
	assert_int_equal(ep.family, AF_INET6);
	assert_int_equal(ep.port, 443);
	assert_memory_equal(ep.addr, &in6.sin6_addr, 16);

	/* IPv4-mapped IPv6 becomes IPv4. */
	inet_pton(AF_INET6, "::ffff:198.18.0.2", &in6.sin6_addr);
	memset(&ep, 0xa5, sizeof ep);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in6, sizeof in6, &ep), 0);
	assert_int_equal(ep.family, AF_INET);
	assert_int_equal(ep.port, 443);
	assert_memory_equal(ep.addr, &in.sin_addr, 4);
	assert_memory_equal(ep.addr + 4, zeros, 12);
	/* ... but IPv4-compatible (::a.b.c.d) and NAT64 addresses stay IPv6 */
	inet_pton(AF_INET6, "::198.18.0.2", &in6.sin6_addr);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in6, sizeof in6, &ep), 0);
	assert_int_equal(ep.family, AF_INET6);
	inet_pton(AF_INET6, "64:ff9b::198.18.0.2", &in6.sin6_addr);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in6, sizeof in6, &ep), 0);
	assert_int_equal(ep.family, AF_INET6);

	/* Short lengths, other families, no address. */
	struct vmshim_endpoint before;
	memset(&ep, 0x5a, sizeof ep);
	before = ep;
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in, sizeof in - 1, &ep), -1);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in, 2, &ep), -1);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in6, sizeof in6 - 1, &ep), -1);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in6, 24, &ep), -1);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&in6, sizeof in, &ep), -1);
	assert_int_equal(endpoint_from_sockaddr(NULL, sizeof in, &ep), -1);
	struct sockaddr_un_like {
		sa_family_t family;
		char path[108];
	} un = { AF_UNIX, "/tmp/x" };
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&un, sizeof un, &ep), -1);
	ss.ss_family = AF_UNSPEC;
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&ss, sizeof ss, &ep), -1);
	ss.ss_family = AF_VSOCK; /* only a number here: no vsock socket */
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&ss, sizeof ss, &ep), -1);
	assert_memory_equal(&ep, &before, sizeof ep); /* untouched on failure */
}

/* A length shorter than the family field: the kernel reads nothing and says EINVAL; the
 * helper must not read past len either. The address ends at a page nobody may read, and
 * the call runs in a child so that a fault shows up as a failure of this test only. */
static void test_endpoint_short_no_overread(void **state)
{
	(void)state;
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *map = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
	for (socklen_t len = 0; len < sizeof(sa_family_t); len++) {
		const struct sockaddr *sa = (const void *)(map + pg - len);
		if (len)
			map[pg - 1] = AF_INET; /* the low byte of a family, on little-endian */
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct vmshim_endpoint ep;
			/* not cmocka's handlers (they would run the remaining tests here) */
			signal(SIGSEGV, SIG_DFL);
			signal(SIGBUS, SIG_DFL);
			_exit(endpoint_from_sockaddr(sa, len, &ep) == -1 ? 0 : 1);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		/* A fault kills the child, or under ASan makes it report and exit 1. */
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("endpoint_from_sockaddr(sa, %u) read past the %u bytes it was given "
				 "(child %s %d)",
				 len, len, WIFSIGNALED(status) ? "killed by signal" : "exit status",
				 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
	munmap(map, (size_t)pg * 2);
}

static void test_endpoint_to_sockaddr(void **state)
{
	(void)state;
	struct vmshim_endpoint ep4 = { .family = AF_INET, .port = 8080, .addr = { 198, 18, 0, 2 } };
	struct vmshim_endpoint ep6 = { .family = AF_INET6, .port = 443 };
	struct sockaddr_storage ss;
	char text[INET6_ADDRSTRLEN];

	inet_pton(AF_INET6, "2001:db8::2", ep6.addr);

	memset(&ss, 0xa5, sizeof ss);
	assert_int_equal(endpoint_to_sockaddr(&ep4, AF_INET, &ss), sizeof(struct sockaddr_in));
	const struct sockaddr_in *in = (const void *)&ss;
	assert_int_equal(in->sin_family, AF_INET);
	assert_int_equal(ntohs(in->sin_port), 8080);
	assert_string_equal(inet_ntop(AF_INET, &in->sin_addr, text, sizeof text), "198.18.0.2");
	static const uint8_t zero8[8] = { 0 };
	assert_memory_equal(in->sin_zero, zero8, 8);

	/* IPv4 to an IPv6 socket: mapped. */
	memset(&ss, 0xa5, sizeof ss);
	assert_int_equal(endpoint_to_sockaddr(&ep4, AF_INET6, &ss), sizeof(struct sockaddr_in6));
	const struct sockaddr_in6 *in6 = (const void *)&ss;
	assert_int_equal(in6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(in6->sin6_port), 8080);
	assert_true(IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr));
	assert_string_equal(inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text),
			    "::ffff:198.18.0.2");
	assert_int_equal(in6->sin6_flowinfo, 0);
	assert_int_equal(in6->sin6_scope_id, 0);

	memset(&ss, 0xa5, sizeof ss);
	assert_int_equal(endpoint_to_sockaddr(&ep6, AF_INET6, &ss), sizeof(struct sockaddr_in6));
	assert_int_equal(in6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(in6->sin6_port), 443);
	assert_string_equal(inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text), "2001:db8::2");
	assert_int_equal(in6->sin6_flowinfo, 0);
	assert_int_equal(in6->sin6_scope_id, 0);

	/* Round trips through from_sockaddr. */
	struct vmshim_endpoint back;
	socklen_t len = endpoint_to_sockaddr(&ep4, AF_INET6, &ss);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&ss, len, &back), 0);
	assert_memory_equal(&back, &ep4, sizeof back);
	len = endpoint_to_sockaddr(&ep6, AF_INET6, &ss);
	assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&ss, len, &back), 0);
	assert_memory_equal(&back, &ep6, sizeof back);
}

static void test_endpoint_is_loopback(void **state)
{
	(void)state;
	static const struct {
		const char *addr;
		int loopback;
	} cases[] = {
		{ "127.0.0.1", 1 },	    { "127.255.255.254", 1 }, { "127.86.83.77", 1 },
		{ "128.0.0.1", 0 },	    { "126.255.255.255", 0 }, { "198.18.0.1", 0 },
		{ "0.0.0.0", 0 },	    { "::1", 1 },	      { "::", 0 },
		{ "::2", 0 },		    { "2001:db8::1", 0 },     { "::ffff:127.0.0.1", 1 },
		{ "::ffff:127.1.2.3", 1 },   { "::ffff:198.18.0.1", 0 }, { "::127.0.0.1", 0 },
		{ "fe80::1", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss = { 0 };
		socklen_t len;
		struct vmshim_endpoint ep;
		if (strchr(cases[i].addr, ':')) {
			struct sockaddr_in6 *a = (void *)&ss;
			a->sin6_family = AF_INET6;
			assert_int_equal(inet_pton(AF_INET6, cases[i].addr, &a->sin6_addr), 1);
			len = sizeof *a;
		} else {
			struct sockaddr_in *a = (void *)&ss;
			a->sin_family = AF_INET;
			assert_int_equal(inet_pton(AF_INET, cases[i].addr, &a->sin_addr), 1);
			len = sizeof *a;
		}
		assert_int_equal(endpoint_from_sockaddr((struct sockaddr *)&ss, len, &ep), 0);
		if (endpoint_is_loopback(&ep) != cases[i].loopback)
			fail_msg("%s: loopback %d, want %d", cases[i].addr, !cases[i].loopback,
				 cases[i].loopback);
	}
	/* Without normalisation a mapped address is just IPv6, and not ::1. */
	struct vmshim_endpoint raw = { .family = AF_INET6 };
	inet_pton(AF_INET6, "::ffff:127.0.0.1", raw.addr);
	assert_false(endpoint_is_loopback(&raw));
}

/* vsock has no TIME_WAIT: a port must not come back before every other one has been used,
 * and a forked child must not walk its parent's sequence. */
static void test_source_port_round(void **state)
{
	(void)state;
	enum { FIRST = 32768, COUNT = 61000 - 32768 };
	static bool seen[COUNT];
	uint16_t first = source_port_next();

	for (int i = 0; i < COUNT; i++) {
		uint16_t p = i ? source_port_next() : first;
		assert_in_range(p, FIRST, FIRST + COUNT - 1);
		assert_false(seen[p - FIRST]);
		seen[p - FIRST] = true;
	}
	assert_int_equal(source_port_next(), first); /* a whole round, then the same order */

	/* After a fork the start is chosen again: eight children starting where the parent
	 * goes on would be a (1/28232)^8 chance. */
	int same = 0;
	for (int i = 0; i < 8; i++) {
		uint16_t parent_next = source_port_next();
		source_port_after_fork();
		same += source_port_next() == parent_next + 1;
	}
	assert_int_not_equal(same, 8);
}

static void test_copy_sockaddr_out(void **state)
{
	(void)state;
	struct sockaddr_storage src;
	unsigned char dst[sizeof(struct sockaddr_storage) + 8];
	const socklen_t full = sizeof(struct sockaddr_in6);
	socklen_t len;

	for (size_t i = 0; i < sizeof src; i++)
		((unsigned char *)&src)[i] = (unsigned char)(i + 1);

	/* Shorter than the address: len bytes copied, *len the full size. */
	for (socklen_t want = 0; want <= full + 4; want++) {
		memset(dst, 0xee, sizeof dst);
		len = want;
		assert_int_equal(copy_sockaddr_out(&src, full, (struct sockaddr *)dst, &len), 0);
		assert_int_equal(len, full);
		socklen_t copied = want < full ? want : full;
		assert_memory_equal(dst, &src, copied);
		for (size_t i = copied; i < sizeof dst; i++)
			assert_int_equal(dst[i], 0xee);
	}
	/* No buffer: only the size. */
	len = 100;
	assert_int_equal(copy_sockaddr_out(&src, full, NULL, &len), 0);
	assert_int_equal(len, full);
	/* A negative length, or none. */
	memset(dst, 0xee, sizeof dst);
	len = (socklen_t)-1;
	assert_errno(copy_sockaddr_out(&src, full, (struct sockaddr *)dst, &len), EINVAL);
	assert_int_equal(len, (socklen_t)-1);
	assert_int_equal(dst[0], 0xee);
	len = (socklen_t)INT_MIN;
	assert_errno(copy_sockaddr_out(&src, full, (struct sockaddr *)dst, &len), EINVAL);
	assert_errno(copy_sockaddr_out(&src, full, (struct sockaddr *)dst, NULL), EFAULT);

	/* What the kernel does with getsockname and a short buffer, for comparison. */
	struct tcp_conn c = tcp_connect(AF_INET6);
	memset(dst, 0xee, sizeof dst);
	len = 10;
	assert_int_equal(getsockname(c.client, (struct sockaddr *)dst, &len), 0);
	assert_int_equal(len, full);
	assert_int_equal(dst[10], 0xee);
	len = (socklen_t)-1;
	errno = 0;
	assert_int_equal(getsockname(c.client, (struct sockaddr *)dst, &len), -1);
	assert_int_equal(errno, EINVAL);
	tcp_close(&c);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcpopts_table_covered),
		cmocka_unit_test(test_tcpopts_capture_v4),
		cmocka_unit_test(test_tcpopts_capture_v6),
		cmocka_unit_test(test_tcpopts_capture_getter),
		cmocka_unit_test(test_tcpopts_capture_mask),
		cmocka_unit_test(test_tcpopts_round_trips),
		cmocka_unit_test(test_tcpopts_range_errors),
		cmocka_unit_test(test_tcpopts_booleans),
		cmocka_unit_test(test_tcpopts_short_optlen),
		cmocka_unit_test(test_tcpopts_v6only_after_connect),
		cmocka_unit_test(test_tcpopts_unknown_options),
		cmocka_unit_test(test_tcpopts_get_lengths),
		cmocka_unit_test(test_tcp_info),
		cmocka_unit_test(test_tcpopts_congestion),
		cmocka_unit_test(test_tcpopts_vs_kernel),
		cmocka_unit_test(test_tcpopts_ip_ttl_zero),
		cmocka_unit_test(test_tcpopts_fastopen_connect_after_connect),
		cmocka_unit_test(test_tcpopts_maxseg_zero),
		cmocka_unit_test(test_tcpopts_notsent_lowat_negative),
		cmocka_unit_test(test_tcpopts_apply),
		cmocka_unit_test(test_tcp_refuses),
		cmocka_unit_test(test_fdstate_new),
		cmocka_unit_test(test_fdstate_set_get_take),
		cmocka_unit_test(test_fdstate_set_replaces),
		cmocka_unit_test(test_fdstate_dup),
		cmocka_unit_test(test_fdstate_retire_range),
		cmocka_unit_test(test_fdstate_redirected),
		cmocka_unit_test(test_fdstate_options_set),
		cmocka_unit_test(test_fdstate_threads),
		cmocka_unit_test(test_fdstate_acquire_races_close),
		cmocka_unit_test(test_fdstate_swap),
		cmocka_unit_test(test_endpoint_from_sockaddr),
		cmocka_unit_test(test_endpoint_short_no_overread),
		cmocka_unit_test(test_endpoint_to_sockaddr),
		cmocka_unit_test(test_endpoint_is_loopback),
		cmocka_unit_test(test_copy_sockaddr_out),
		cmocka_unit_test(test_source_port_round),
	};
	return cmocka_run_group_tests_name("shim_parts", tests, setup_real, NULL);
}
