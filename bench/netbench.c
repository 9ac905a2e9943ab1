/* netbench: throughput, latency and connection-rate measurements. It uses only ordinary
 * socket calls, so it behaves the same over plain TCP, TCP under the shim
 * (LD_PRELOAD=libvmshim.so), native AF_VSOCK and socat relays.
 *
 *   netbench server --mode sink|echo [--bind ADDR] [--seconds S] PORT
 *   netbench server --mode sink|echo --vsock [--seconds S] PORT
 *   netbench stream TARGET --size S --streams N --seconds T
 *   netbench pingpong TARGET --size S --count N [--warmup W]
 *   netbench connrate TARGET --size S --count N
 *   netbench hold TARGET --conns N --size S --seconds T [--pause P]
 *   netbench memcpy --size S --total-mib M
 *
 * TARGET is HOST:PORT (IPv4, TCP) or vsock:CID:PORT (AF_VSOCK stream). Sizes take a K or M
 * suffix (4K, 1M). Every socket mode takes --vsock-buffer BYTES (default 0: the kernel's),
 * which sets SO_VM_SOCKETS_BUFFER_MAX_SIZE and SO_VM_SOCKETS_BUFFER_SIZE on each AF_VSOCK
 * socket it creates; every mode but server takes --timeout S (default 120), after which it
 * ends itself with an error.
 *
 * server    one thread, epoll, non-blocking. sink reads and discards, echo writes back what
 *           it reads (TCP_NODELAY on TCP); both close a connection at EOF. Listens on ADDR
 *           (0.0.0.0) or, with --vsock, on VMADDR_CID_ANY; after --seconds (600), or at
 *           SIGTERM or SIGINT, it prints "netbench mode=server accepted=N bytes=B resets=R"
 *           and exits 0.
 * stream    N (<= 64) connections to a sink, one thread each, writing S-byte writes (S <=
 *           16M) for T s from a common start, then SHUT_WR and read until the sink's EOF,
 *           so the time covers delivery of every byte.
 * pingpong  one connection to an echo server (TCP_NODELAY on TCP): W (100) untimed round
 *           trips of S bytes, then N (<= 1000000) timed ones; nearest-rank percentiles.
 * connrate  N sequential connections to an echo server, each: connect, S bytes there and
 *           back, close; one untimed first. The timed loop is connrate_loop, for callgrind's
 *           --toggle-collect.
 * hold      N (<= 4096) connections to a sink, opened one by one; prints
 *           "netbench mode=hold-ready conns=N", sleeps P (0) s so that a script can sample
 *           memory (the pause counts against --timeout), then writes S-byte chunks round
 *           robin to all of them for T s, then SHUT_WR and waits for every EOF.
 * memcpy    single-core memcpy bandwidth: S-byte blocks between two 64 MiB buffers.
 *
 * Each mode prints one line of key=value pairs starting "netbench mode=MODE" on stdout
 * (hold prints its ready line before). Errors go to stderr, exit status 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <fcntl.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "progs.h" /* die, parse_addr, pattern_byte: shared with the test programs */

#define MAX_MSG (16LL << 20)	/* largest --size on a socket */
#define MEMCPY_BUF (64LL << 20) /* each memcpy buffer */
#define SERVER_BUF (256 << 10)
#define MAX_EVENTS 256

/* A usage error: die() with a meaningful errno rather than whatever was left over. */
#define bad(...) (errno = EINVAL, die(__VA_ARGS__))

static const int one = 1; /* for setsockopt */

/* The options; -1 means "not given". */
static struct {
	long long size, streams, count, warmup, conns, pause, total_mib, timeout;
	double seconds;
	long long vsock_buffer;
	const char *bind;
	int echo, vsock;
} o = {
	.size = -1, .streams = -1, .count = -1, .warmup = 100, .conns = -1, .seconds = -1,
	.pause = 0, .total_mib = -1, .timeout = 120, .vsock_buffer = 0, .bind = "0.0.0.0",
	.echo = -1,
};

/* An address to connect to or listen on, and how it was written. */
struct target {
	struct sockaddr_storage ss;
	socklen_t len;
	const char *text;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* epoll_wait's timeout for a deadline: rounded up, so that the loop does not spin. */
static int ms_until(double deadline)
{
	double left = deadline - now_s();

	return left > 0 ? (int)(left * 1000) + 1 : 0;
}

/* A decimal number in min..max; with sized, a K or M suffix multiplies by 2^10 or 2^20. */
static long long number(const char *s, const char *what, long long min, long long max, int sized)
{
	char *end;
	long long unit = 1;

	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (sized && *end == 'K')
		unit = 1LL << 10, end++;
	else if (sized && *end == 'M')
		unit = 1LL << 20, end++;
	if (end == s || *end || errno || v < 0 || v > max / unit || v * unit < min)
		bad("%s: '%s' is not a number in %lld..%lld", what, s, min, max);
	return v * unit;
}

/* A duration in seconds, decimals allowed (0.3), in 0.001..86400. */
static double duration(const char *s, const char *what)
{
	char *end;

	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= 0.001 && v <= 86400))
		bad("%s: '%s' is not a number of seconds in 0.001..86400", what, s);
	return v;
}

static long long need(long long value, const char *option)
{
	if (value < 0)
		bad("missing %s", option);
	return value;
}

/* --size for a socket mode */
static size_t msg_size(void)
{
	if (need(o.size, "--size") > MAX_MSG)
		bad("--size: at most %lld on a socket", MAX_MSG);
	return (size_t)o.size;
}

/* Thousands of connections: take all the descriptors the hard limit allows. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit");
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit RLIMIT_NOFILE %llu", (unsigned long long)rl.rlim_max);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		die("malloc %zu", n);
	return p;
}

static char *pattern_buf(size_t n)
{
	char *buf = xmalloc(n);

	for (size_t i = 0; i < n; i++)
		buf[i] = (char)pattern_byte(i);
	return buf;
}

/* HOST:PORT or vsock:CID:PORT. */
static struct target parse_target(const char *s)
{
	const char *colon = strrchr(s, ':');
	struct target t = {.text = s};
	char head[64];

	if (!colon || colon - s >= (long)sizeof(head))
		bad("target '%s' is not HOST:PORT or vsock:CID:PORT", s);
	snprintf(head, sizeof(head), "%.*s", (int)(colon - s), s);
	long long port = number(colon + 1, "port", 0, UINT32_MAX, 0);
	if (!strncmp(head, "vsock:", 6)) {
		struct sockaddr_vm *vm = (void *)&t.ss;

		vm->svm_family = AF_VSOCK;
		vm->svm_cid = (unsigned)number(head + 6, "CID", 0, UINT32_MAX, 0);
		vm->svm_port = (unsigned)port;
		t.len = sizeof(*vm);
	} else {
		if (port < 1 || port > 65535)
			bad("TCP port %lld is not in 1..65535", port);
		t.len = parse_addr(head, (int)port, &t.ss);
	}
	return t;
}

/* A stream socket; an AF_VSOCK one gets --vsock-buffer before it connects or listens. */
static int new_socket(int family, int flags)
{
	unsigned long long size = (unsigned long long)o.vsock_buffer;
	int fd = socket(family, SOCK_STREAM | flags, 0);

	if (fd < 0)
		die("socket");
	if (family == AF_VSOCK && size &&
	    (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &size, sizeof(size)) < 0 ||
	     setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size, sizeof(size)) < 0))
		die("setsockopt SO_VM_SOCKETS_BUFFER_SIZE %llu", size);
	return fd;
}

static int connect_target(const struct target *t, int nodelay)
{
	int fd = new_socket(t->ss.ss_family, 0);

	if (connect(fd, (const struct sockaddr *)&t->ss, t->len) < 0)
		die("connect to %s", t->text);
	if (nodelay && t->ss.ss_family != AF_VSOCK &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die("setsockopt TCP_NODELAY");
	return fd;
}

static void read_exact(int fd, char *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ECONNRESET;
			die("read: %zu of %zu bytes", got, n);
		}
		got += (size_t)r;
	}
}

/* Sends n bytes and reads the n-byte echo. While the send is incomplete it also reads what
 * has come back, so that a message larger than the socket buffers cannot deadlock against
 * an echo server that stops reading while its reply is not taken. */
static void round_trip(int fd, const char *out, char *in, size_t n)
{
	size_t sent = 0, got = 0;

	while (sent < n) {
		ssize_t w = send(fd, out + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		if (errno != EAGAIN && errno != EINTR)
			die("send: %zu of %zu bytes", sent, n);
		struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			die("poll");
		if (!(p.revents & POLLIN))
			continue;
		ssize_t r = recv(fd, in + got, n - got, MSG_DONTWAIT);
		if (r == 0)
			errno = ECONNRESET;
		if (r > 0)
			got += (size_t)r;
		else if (errno != EAGAIN && errno != EINTR)
			die("read: %zu of %zu bytes", got, n);
	}
	read_exact(fd, in + got, n - got);
}

/* Reads until EOF, discarding. */
static void drain(int fd)
{
	char buf[4096];
	ssize_t r;

	while ((r = read(fd, buf, sizeof(buf))) != 0)
		if (r < 0 && errno != EINTR)
			die("read while waiting for EOF");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p% of them at or below it. */
static double pct(const double *sorted, long long n, int p)
{
	long long rank = (p * n + 99) / 100;

	return sorted[rank > 0 ? rank - 1 : 0];
}

static void print_rate(double seconds, unsigned long long bytes)
{
	printf(" seconds=%.6f bytes=%llu gbit_s=%.3f mib_s=%.1f", seconds, bytes,
	       (double)bytes * 8 / seconds / 1e9, (double)bytes / seconds / (1 << 20));
}

/* ---- server ---- */

struct conn {
	int fd;
	char *pend; /* echo: bytes read but not yet written back; reading waits for them */
	size_t off, len;
};

static struct {
	int ep;
	unsigned long long accepted, bytes, resets;
	char buf[SERVER_BUF];
} srv;

static void watch(struct conn *c, uint32_t events)
{
	struct epoll_event e = {.events = events, .data.ptr = c};

	if (epoll_ctl(srv.ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
		die("epoll_ctl MOD");
}

static void drop(struct conn *c)
{
	close(c->fd); /* also takes it out of the epoll set */
	free(c->pend);
	free(c);
}

static void accept_all(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == ECONNABORTED || errno == EINTR)
				continue;
			die("accept4");
		}
		/* As the client does: else Nagle holds back the end of a large echo. */
		if (!o.vsock && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
			die("setsockopt TCP_NODELAY");
		struct conn *c = xmalloc(sizeof(*c));
		*c = (struct conn){.fd = fd};
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(srv.ep, EPOLL_CTL_ADD, fd, &e) < 0)
			die("epoll_ctl ADD");
		srv.accepted++;
	}
}

/* One event on a connection: flush pending echo bytes, or read (and echo) once. */
static void serve(struct conn *c)
{
	ssize_t n, w;

	if (c->len) {
		w = send(c->fd, c->pend + c->off, c->len - c->off, MSG_NOSIGNAL);
		if (w < 0)
			goto error;
		c->off += (size_t)w;
		if (c->off == c->len) {
			free(c->pend);
			c->pend = NULL;
			c->off = c->len = 0;
			watch(c, EPOLLIN);
		}
		return;
	}
	n = read(c->fd, srv.buf, sizeof(srv.buf));
	if (n == 0) {
		drop(c);
		return;
	}
	if (n < 0)
		goto error;
	srv.bytes += (unsigned long long)n;
	if (!o.echo)
		return;
	w = send(c->fd, srv.buf, (size_t)n, MSG_NOSIGNAL);
	if (w < 0 && errno != EAGAIN)
		goto error;
	if (w < n) {
		w = w < 0 ? 0 : w;
		c->len = (size_t)(n - w);
		c->pend = xmalloc(c->len);
		memcpy(c->pend, srv.buf + w, c->len);
		watch(c, EPOLLOUT);
	}
	return;
error:
	if (errno == EAGAIN || errno == EINTR)
		return;
	if (errno != ECONNRESET && errno != EPIPE)
		die("connection %d", c->fd);
	srv.resets++;
	drop(c);
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void run_server(const char *arg)
{
	struct epoll_event ev[MAX_EVENTS];
	struct sockaddr_storage ss;
	struct sockaddr_vm *vm = (void *)&ss;
	socklen_t len = sizeof(*vm);
	struct sigaction sa = {.sa_handler = on_term};
	sigset_t term, old;

	need(o.echo, "--mode");
	long long port = number(arg, "PORT", 1, o.vsock ? UINT32_MAX : 65535, 0);
	if (o.vsock)
		*vm = (struct sockaddr_vm){.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
					   .svm_port = (unsigned)port};
	else
		len = parse_addr(o.bind, (int)port, &ss);
	raise_nofile();

	int lfd = new_socket(ss.ss_family, SOCK_NONBLOCK);
	if (!o.vsock && setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		die("setsockopt SO_REUSEADDR");
	if (bind(lfd, (const struct sockaddr *)&ss, len) < 0 || listen(lfd, 4096) < 0)
		die("listen on port %s", arg);
	srv.ep = epoll_create1(0);
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL: the listener */
	if (srv.ep < 0 || epoll_ctl(srv.ep, EPOLL_CTL_ADD, lfd, &e) < 0)
		die("epoll");

	/* SIGTERM and SIGINT end it early, with its line: they are let in only while it waits. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigprocmask(SIG_BLOCK, &term, &old);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	double end = now_s() + (o.seconds < 0 ? 600 : o.seconds);
	int ms;
	while (!stop && (ms = ms_until(end)) > 0) {
		int n = epoll_pwait(srv.ep, ev, MAX_EVENTS, ms, &old);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr)
				serve(ev[i].data.ptr);
			else
				accept_all(lfd);
		}
	}
	printf("netbench mode=server accepted=%llu bytes=%llu resets=%llu\n", srv.accepted,
	       srv.bytes, srv.resets);
}

/* ---- stream ---- */

struct stream {
	pthread_t thread;
	int fd;
	unsigned long long bytes;
	double done; /* when EOF came */
};

static struct {
	pthread_barrier_t barrier;
	double start;
	const char *buf;
	size_t size;
} st;

static void *stream_thread(void *arg)
{
	struct stream *s = arg;
	size_t off = 0; /* in the buffer: a partial write is continued */
	unsigned long long bytes = 0; /* local: s->bytes shares a cache line with others */

	/* Twice: the first wait has every thread ready, the second publishes st.start. */
	pthread_barrier_wait(&st.barrier);
	pthread_barrier_wait(&st.barrier);
	double end = st.start + o.seconds;
	while (now_s() < end) {
		ssize_t w = write(s->fd, st.buf + off, st.size - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("stream: write");
		off = (off + (size_t)w) % st.size;
		bytes += (unsigned long long)w;
	}
	s->bytes = bytes;
	if (shutdown(s->fd, SHUT_WR) < 0)
		die("stream: shutdown");
	drain(s->fd);
	s->done = now_s();
	return NULL;
}

static void run_stream(const char *arg)
{
	struct target t = parse_target(arg);
	struct stream s[64];
	long long n = need(o.streams, "--streams");
	unsigned long long bytes = 0;
	double last = 0;

	st.size = msg_size();
	if (o.seconds < 0)
		bad("missing --seconds");
	st.buf = pattern_buf(st.size);
	for (long long i = 0; i < n; i++)
		s[i] = (struct stream){.fd = connect_target(&t, 0)};
	if (pthread_barrier_init(&st.barrier, NULL, (unsigned)n + 1))
		die("pthread_barrier_init");
	for (long long i = 0; i < n; i++)
		if ((errno = pthread_create(&s[i].thread, NULL, stream_thread, &s[i])))
			die("pthread_create");
	pthread_barrier_wait(&st.barrier);
	st.start = now_s();
	pthread_barrier_wait(&st.barrier);
	for (long long i = 0; i < n; i++) {
		pthread_join(s[i].thread, NULL);
		close(s[i].fd);
		bytes += s[i].bytes;
		last = s[i].done > last ? s[i].done : last;
	}
	printf("netbench mode=stream target=%s size=%zu streams=%lld", t.text, st.size, n);
	print_rate(last - st.start, bytes);
	printf("\n");
	pthread_barrier_destroy(&st.barrier);
	free((char *)st.buf);
}

/* ---- pingpong, connrate ---- */

static void run_pingpong(const char *arg)
{
	struct target t = parse_target(arg);
	size_t size = msg_size();
	long long n = need(o.count, "--count");
	char *out = pattern_buf(size), *in = xmalloc(size);
	double *us = xmalloc((size_t)n * sizeof(*us)), sum = 0;
	int fd = connect_target(&t, 1);

	for (long long i = 0; i < o.warmup; i++)
		round_trip(fd, out, in, size);
	for (long long i = 0; i < n; i++) {
		memset(in, 0, size);
		double t0 = now_s();
		round_trip(fd, out, in, size);
		us[i] = (now_s() - t0) * 1e6;
		sum += us[i];
		if (memcmp(in, out, size)) /* outside the timed part */
			bad("round trip %lld: the echo differs from what was sent", i);
	}
	close(fd);
	qsort(us, (size_t)n, sizeof(*us), cmp_double);
	printf("netbench mode=pingpong target=%s size=%zu count=%lld p50_us=%.2f p90_us=%.2f "
	       "p99_us=%.2f min_us=%.2f max_us=%.2f mean_us=%.2f\n",
	       t.text, size, n, pct(us, n, 50), pct(us, n, 90), pct(us, n, 99), us[0], us[n - 1],
	       sum / (double)n);
	free(us);
	free(in);
	free(out);
}

static void one_conn(const struct target *t, const char *out, char *in, size_t size)
{
	int fd = connect_target(t, 1);

	round_trip(fd, out, in, size);
	if (close(fd) < 0)
		die("close");
}

/* The timed loop, kept out of line so that callgrind can count just this. */
static __attribute__((noinline)) void connrate_loop(const struct target *t, const char *out,
						    char *in, size_t size, double *us,
						    long long n)
{
	for (long long i = 0; i < n; i++) {
		double t0 = now_s();
		one_conn(t, out, in, size);
		us[i] = (now_s() - t0) * 1e6;
	}
}

static void run_connrate(const char *arg)
{
	struct target t = parse_target(arg);
	size_t size = msg_size();
	long long n = need(o.count, "--count");
	char *out = pattern_buf(size), *in = xmalloc(size);
	double *us = xmalloc((size_t)n * sizeof(*us));

	one_conn(&t, out, in, size); /* untimed; its echo is checked */
	if (memcmp(in, out, size))
		bad("the echo differs from what was sent");
	double start = now_s();
	connrate_loop(&t, out, in, size, us, n);
	double seconds = now_s() - start;
	qsort(us, (size_t)n, sizeof(*us), cmp_double);
	printf("netbench mode=connrate target=%s size=%zu count=%lld seconds=%.6f "
	       "per_conn_us=%.2f conns_s=%.1f p50_us=%.2f p99_us=%.2f\n",
	       t.text, size, n, seconds, seconds * 1e6 / (double)n, (double)n / seconds,
	       pct(us, n, 50), pct(us, n, 99));
	free(us);
	free(in);
	free(out);
}

/* ---- hold ---- */

static void run_hold(const char *arg)
{
	struct target t = parse_target(arg);
	struct epoll_event ev[MAX_EVENTS];
	size_t size = msg_size(), n = (size_t)need(o.conns, "--conns");
	int *fds = xmalloc(n * sizeof(*fds));
	size_t *off = xmalloc(n * sizeof(*off)); /* where each connection is in its chunk */
	char *buf = pattern_buf(size);
	unsigned long long bytes = 0;

	if (o.seconds < 0)
		bad("missing --seconds");
	raise_nofile();
	int ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	for (size_t i = 0; i < n; i++) {
		fds[i] = connect_target(&t, 0);
		off[i] = 0;
		struct epoll_event e = {.events = EPOLLOUT, .data.u64 = i};
		if (fcntl(fds[i], F_SETFL, O_NONBLOCK) < 0 ||
		    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e) < 0)
			die("connection %zu: O_NONBLOCK, epoll_ctl", i);
	}
	printf("netbench mode=hold-ready conns=%zu\n", n);
	fflush(stdout);
	sleep((unsigned)o.pause);

	double start = now_s(), end = start + o.seconds;
	int ms;
	while ((ms = ms_until(end)) > 0) {
		int k = epoll_wait(ep, ev, MAX_EVENTS, ms);
		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (int j = 0; j < k; j++) {
			size_t i = ev[j].data.u64;
			ssize_t w = write(fds[i], buf + off[i], size - off[i]);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				die("connection %zu: write", i);
			if (w > 0) {
				off[i] = (off[i] + (size_t)w) % size;
				bytes += (unsigned long long)w;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		if (shutdown(fds[i], SHUT_WR) < 0)
			die("connection %zu: shutdown", i);
	/* All are shut down, so waiting for them in turn ends at the last EOF all the same. */
	for (size_t i = 0; i < n; i++) {
		if (fcntl(fds[i], F_SETFL, 0) < 0)
			die("connection %zu: clear O_NONBLOCK", i);
		drain(fds[i]);
		close(fds[i]);
	}
	double seconds = now_s() - start;
	printf("netbench mode=hold target=%s conns=%zu size=%zu", t.text, n, size);
	print_rate(seconds, bytes);
	putchar('\n');
	close(ep);
	free(buf);
	free(off);
	free(fds);
}

/* ---- memcpy ---- */

static void run_memcpy(const char *arg)
{
	size_t size = (size_t)need(o.size, "--size");
	unsigned long long total = (unsigned long long)need(o.total_mib, "--total-mib") << 20;
	char *src = pattern_buf(MEMCPY_BUF), *dst = xmalloc(MEMCPY_BUF);

	(void)arg;
	memset(dst, 0, MEMCPY_BUF); /* both are faulted in before the timing */
	double start = now_s();
	for (unsigned long long done = 0, at = 0; done < total;) {
		size_t n = total - done < size ? (size_t)(total - done) : size;
		if (at + n > MEMCPY_BUF)
			at = 0;
		memcpy(dst + at, src + at, n);
		/* the compiler must assume dst is read here, so it cannot drop a copy */
		__asm__ volatile("" : : "r"(dst) : "memory");
		at += n;
		done += n;
	}
	double seconds = now_s() - start;
	printf("netbench mode=memcpy size=%zu mib=%lld", size, o.total_mib);
	print_rate(seconds, total);
	printf("\n");
	free(dst);
	free(src);
}

/* ---- command line ---- */

static const struct mode {
	const char *name;
	const char *opts; /* the short letters of the options it takes */
	int nargs;	  /* TARGET or PORT, or nothing */
	void (*run)(const char *arg);
} modes[] = {
	{"server", "mbVsB", 1, run_server},	{"stream", "znstB", 1, run_stream},
	{"pingpong", "zcwtB", 1, run_pingpong}, {"connrate", "zctB", 1, run_connrate},
	{"hold", "zNsptB", 1, run_hold},	{"memcpy", "zMt", 0, run_memcpy},
};

static const struct option long_opts[] = {
	{"mode", required_argument, NULL, 'm'},	     {"bind", required_argument, NULL, 'b'},
	{"vsock", no_argument, NULL, 'V'},	     {"seconds", required_argument, NULL, 's'},
	{"size", required_argument, NULL, 'z'},	     {"streams", required_argument, NULL, 'n'},
	{"count", required_argument, NULL, 'c'},     {"warmup", required_argument, NULL, 'w'},
	{"conns", required_argument, NULL, 'N'},     {"pause", required_argument, NULL, 'p'},
	{"total-mib", required_argument, NULL, 'M'}, {"timeout", required_argument, NULL, 't'},
	{"vsock-buffer", required_argument, NULL, 'B'}, {0},
};

static void usage(void)
{
	fprintf(stderr,
		"usage: netbench server --mode sink|echo [--bind ADDR | --vsock] [--seconds S] PORT\n"
		"       netbench stream TARGET --size S --streams N --seconds T\n"
		"       netbench pingpong TARGET --size S --count N [--warmup W]\n"
		"       netbench connrate TARGET --size S --count N\n"
		"       netbench hold TARGET --conns N --size S --seconds T [--pause P]\n"
		"       netbench memcpy --size S --total-mib M\n"
		"TARGET: HOST:PORT or vsock:CID:PORT; also --timeout S, --vsock-buffer BYTES\n");
	exit(1);
}

static char timeout_msg[128];

static void on_alarm(int sig)
{
	ssize_t r = write(2, timeout_msg, strlen(timeout_msg));

	(void)r;
	(void)sig;
	_exit(1);
}

int main(int argc, char **argv)
{
	const struct mode *m = NULL;
	int c, li;

	for (size_t i = 0; argc > 1 && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[1], modes[i].name))
			m = &modes[i];
	if (!m)
		usage();
	/* argv[1], the mode, stands in for the program name */
	while ((c = getopt_long(argc - 1, argv + 1, "", long_opts, &li)) != -1) {
		if (c == '?')
			usage();
		if (!strchr(m->opts, c))
			bad("%s does not take --%s", m->name, long_opts[li].name);
		switch (c) {
		case 'm':
			if (strcmp(optarg, "sink") && strcmp(optarg, "echo"))
				bad("--mode is sink or echo, not '%s'", optarg);
			o.echo = !strcmp(optarg, "echo");
			break;
		case 'b': o.bind = optarg; break;
		case 'V': o.vsock = 1; break;
		case 's': o.seconds = duration(optarg, "--seconds"); break;
		case 'z': o.size = number(optarg, "--size", 1, MEMCPY_BUF, 1); break;
		case 'n': o.streams = number(optarg, "--streams", 1, 64, 0); break;
		case 'c': o.count = number(optarg, "--count", 1, 1000000, 0); break;
		case 'w': o.warmup = number(optarg, "--warmup", 0, 1000000, 0); break;
		case 'N': o.conns = number(optarg, "--conns", 1, 4096, 0); break;
		case 'p': o.pause = number(optarg, "--pause", 0, 86400, 0); break;
		case 'M': o.total_mib = number(optarg, "--total-mib", 1, 1 << 20, 0); break;
		case 't': o.timeout = number(optarg, "--timeout", 1, 86400, 0); break;
		case 'B': o.vsock_buffer = number(optarg, "--vsock-buffer", 0, 1LL << 30, 1); break;
		}
	}
	if (argc - 1 - optind != m->nargs)
		usage();

	signal(SIGPIPE, SIG_IGN); /* a closed peer shows as EPIPE, not a killed process */
	if (m->run != run_server) {
		snprintf(timeout_msg, sizeof(timeout_msg),
			 "FAIL: netbench %s: not done after --timeout %lld s\n", m->name, o.timeout);
		signal(SIGALRM, on_alarm);
		alarm((unsigned)o.timeout);
	}
	m->run(argv[1 + optind]);
	return 0;
}
