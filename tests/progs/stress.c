/* Many connections through the shim: a crowd waiting in the server's helperd, a crowd held
 * open at once, then a long run of short ones. Every connection carries a payload of its own (generated from its number), and its
 * echo is checked by length and FNV-1a hash, so a lost, repeated or crossed byte is caught.
 *
 *   stress server PORT SECONDS
 *   stress crowd CID PORT FIRST_SOURCE N FILE HOST TCP_PORT
 *   stress client [options] HOST PORT
 *     --hold N      connections held open at once (default 1000)
 *     --bytes B     their payloads: B bytes on average, from B/2 to 3B/2 (default 16384)
 *     --short N     short connections afterwards (default 5000): connect, a request of 16 to
 *                   527 bytes, shutdown, its echo up to EOF, close
 *     --parallel P  at most P short connections at a time (default 32)
 *     --seconds S   the whole run must end within S seconds (default 600)
 *     --pause FILE  at two points, once the held connections are all open and once all their
 *                   echoes are checked, waits (up to 120 s) for FILE to appear, and removes it
 *
 * server: one thread, epoll; echoes every connection until EOF, then closes it. Prints
 * "listening port=P pid=PID" first; after SECONDS, or at SIGTERM, prints "served N
 * connections, at most M at once, B bytes" and exits.
 * crowd: N native vsock connections to CID:PORT (no shim), one after the other, from the
 * source ports FIRST_SOURCE on: made as a sibling's shim makes them (each says it dialled
 * HOST:TCP_PORT), they wait in the server's helperd as long as its application does not
 * accept. A connection that the
 * kernel resets because helperd's accept queue is full is made again a little later.
 * Prints "crowd: N connections open (R resets)", waits (up to 120 s) for FILE, removes it,
 * closes them all and exits.
 * client: prints a line for each step of the held connections, then "short: ..." and "ok";
 * any failure is a line "FAIL: ..." and exit status 1. */
#include <fcntl.h>
#include <getopt.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"
#include "vmshim/dialled.h"
#include "vmshim/vsock.h"

#define IO_CHUNK 4096
#define MAX_EVENTS 256
#define STALL_MS 20000 /* nothing at all happening for this long is a failure */
#define PAUSE_MS 120000
#define SERVER_FDS 8192
#define CROWD_TRIES 200 /* per connection, 10 ms apart */
#define FNV_START 14695981039346656037ull

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The default soft limit (1024 descriptors) is below what a thousand connections need. */
static void raise_nofile(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit");
	if (rl.rlim_cur >= need)
		return;
	rl.rlim_cur = need;
	if (rl.rlim_max < need)
		rl.rlim_max = need; /* root may raise the hard limit too */
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit RLIMIT_NOFILE to %llu", (unsigned long long)need);
}

/* Waits for a file to appear, and removes it. */
static void wait_for_file(const char *path)
{
	for (int waited = 0; waited < PAUSE_MS; waited += 50) {
		if (unlink(path) == 0)
			return;
		usleep(50 * 1000);
	}
	die("%s did not appear within %d s", path, PAUSE_MS / 1000);
}

/* ---- server ---- */

struct echo {
	int fd;
	size_t off, len; /* bytes read and not yet written back: reading waits for them */
	char buf[IO_CHUNK];
};

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static struct {
	int ep;
	unsigned long served, open, most_open;
	unsigned long long bytes;
} srv;

static void server_watch(struct echo *e, int op, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = e};

	if (epoll_ctl(srv.ep, op, e->fd, &ev) < 0)
		die("epoll_ctl");
}

static void accept_some(int listener)
{
	for (int i = 0; i < MAX_EVENTS; i++) {
		int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
		if (fd < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (fd < 0)
			die("accept4");
		struct echo *e = malloc(sizeof(*e));
		if (!e)
			die("malloc");
		e->fd = fd;
		e->off = e->len = 0;
		server_watch(e, EPOLL_CTL_ADD, EPOLLIN);
		if (++srv.open > srv.most_open)
			srv.most_open = srv.open;
	}
}

/* One event on a connection: write back what waits, or read once and echo it. */
static void serve_one(struct echo *e)
{
	bool flushing = e->off < e->len; /* woken by room to write what waits */

	if (!flushing) {
		ssize_t n = read(e->fd, e->buf, sizeof(e->buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0)
			die("read");
		if (n == 0) {
			close(e->fd); /* also takes it out of the epoll set */
			free(e);
			srv.open--;
			srv.served++;
			return;
		}
		e->off = 0;
		e->len = (size_t)n;
		srv.bytes += (unsigned long long)n;
	}
	ssize_t w = send(e->fd, e->buf + e->off, e->len - e->off, MSG_NOSIGNAL);
	if (w < 0 && errno != EAGAIN && errno != EINTR)
		die("send");
	if (w > 0)
		e->off += (size_t)w;
	/* Wait for room only while an echo waits to be written; read again once it is out. */
	if (!flushing && e->off < e->len)
		server_watch(e, EPOLL_CTL_MOD, EPOLLOUT);
	else if (flushing && e->off == e->len)
		server_watch(e, EPOLL_CTL_MOD, EPOLLIN);
}

static void run_server(int port, int seconds)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr("0.0.0.0", port, &ss);
	struct sigaction sa = {.sa_handler = on_term}; /* no SA_RESTART: epoll_wait returns */
	int one = 1;
	double deadline = now_s() + seconds;

	raise_nofile(SERVER_FDS);
	sigaction(SIGTERM, &sa, NULL);
	int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	srv.ep = epoll_create1(0);
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	if (listener < 0 || srv.ep < 0 ||
	    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(listener, (struct sockaddr *)&ss, len) < 0 || listen(listener, 4096) < 0 ||
	    epoll_ctl(srv.ep, EPOLL_CTL_ADD, listener, &lev) < 0)
		die("listen on port %d", port);
	printf("listening port=%d pid=%d\n", port, (int)getpid());
	fflush(stdout);
	while (!stopping && now_s() < deadline) {
		struct epoll_event ev[MAX_EVENTS];
		int n = epoll_wait(srv.ep, ev, MAX_EVENTS, 1000);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr)
				serve_one(ev[i].data.ptr);
			else
				accept_some(listener);
		}
	}
	printf("served %lu connections, at most %lu at once, %llu bytes\n", srv.served,
	       srv.most_open, srv.bytes);
}

/* ---- crowd ---- */

/* A vsock connection from source port `source` that names `dialled` as its destination, or
 * -1 with errno. */
static int connect_from(unsigned source, unsigned cid, unsigned port,
			const struct vmshim_endpoint *dialled)
{
	uint8_t msg[DIALLED_SIZE];
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (s < 0)
		return -1;
	if (vsock_bind(s, source) < 0 || vsock_connect(s, cid, port, VSOCK_FROM_GUEST, 0) < 0 ||
	    (dialled_encode(msg, dialled), send(s, msg, sizeof(msg), MSG_NOSIGNAL)) != sizeof(msg)) {
		int saved = errno;
		close(s);
		errno = saved;
		return -1;
	}
	return s;
}

static void run_crowd(unsigned cid, unsigned port, unsigned first_source, int n, const char *file,
		      const char *host, int tcp_port)
{
	struct sockaddr_storage ss;
	struct vmshim_endpoint dialled = {.family = AF_INET, .port = (uint16_t)tcp_port};

	parse_addr(host, tcp_port, &ss);
	if (ss.ss_family != AF_INET)
		die("crowd: %s is no IPv4 address", host);
	memcpy(dialled.addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	int *fds = calloc((size_t)n, sizeof(*fds));
	unsigned resets = 0;

	if (!fds)
		die("calloc");
	raise_nofile((rlim_t)n + 64);
	for (int i = 0; i < n; i++) {
		int tries = 0;
		while ((fds[i] = connect_from(first_source + (unsigned)i, cid, port, &dialled)) < 0 &&
		       errno == ECONNRESET && ++tries < CROWD_TRIES) {
			resets++;
			usleep(10 * 1000);
		}
		if (fds[i] < 0)
			die("vsock connection %d to %u:%u", i, cid, port);
	}
	printf("crowd: %d connections open (%u resets)\n", n, resets);
	fflush(stdout);
	wait_for_file(file);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
}

/* ---- client ---- */

enum stage {
	CONNECTING, /* waiting for EPOLLOUT */
	OPEN,       /* idle: no event is expected, and any is a failure */
	ECHOING,    /* writing the payload and reading its echo */
	CLOSING,    /* shut down for writing, waiting for the server's EOF */
	CLOSED,     /* done: its descriptor is closed, so no event comes for it */
};

struct conn {
	int fd;
	unsigned index;
	bool one_shot; /* a short connection: echo at once, shut down, EOF ends it */
	enum stage stage;
	uint64_t rng; /* the rest of the payload */
	size_t size, sent, got;
	uint64_t sent_hash, got_hash;
	unsigned char out[IO_CHUNK]; /* generated, not all written yet */
	size_t out_off, out_len;
};

static struct {
	int ep;
	struct sockaddr_storage target;
	socklen_t target_len;
	double deadline;
	const char *pause;
} run;

static void watch(struct conn *c, int op, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	if (epoll_ctl(run.ep, op, c->fd, &ev) < 0)
		die("connection %u: epoll_ctl", c->index);
}

/* The size of connection `index`'s payload: from `low` to `low + spread`. */
static size_t payload_size(unsigned index, size_t low, size_t spread)
{
	uint64_t state = index;

	return low + splitmix64(&state) % (spread + 1);
}

static void open_conn(struct conn *c, unsigned index, size_t size, bool one_shot)
{
	c->fd = socket(run.target.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		die("connection %u: socket", index);
	c->index = index;
	c->one_shot = one_shot;
	c->stage = CONNECTING;
	c->rng = (uint64_t)index << 32;
	c->size = size;
	c->sent = c->got = c->out_off = c->out_len = 0;
	c->sent_hash = c->got_hash = FNV_START;
	if (connect(c->fd, (struct sockaddr *)&run.target, run.target_len) < 0 &&
	    errno != EINPROGRESS)
		die("connection %u: connect", index);
	watch(c, EPOLL_CTL_ADD, EPOLLOUT);
}

static void start_echo(struct conn *c)
{
	c->stage = ECHOING;
	watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
}

static void start_closing(struct conn *c)
{
	if (shutdown(c->fd, SHUT_WR) < 0)
		die("connection %u: shutdown", c->index);
	c->stage = CLOSING;
	watch(c, EPOLL_CTL_MOD, EPOLLIN);
}

static void send_more(struct conn *c)
{
	if (c->out_off == c->out_len) {
		size_t n = c->size - c->sent < IO_CHUNK ? c->size - c->sent : IO_CHUNK;
		uint64_t word = 0;
		for (size_t i = 0; i < n; i++) {
			if (i % 8 == 0)
				word = splitmix64(&c->rng);
			c->out[i] = (unsigned char)(word >> (8 * (i % 8)));
		}
		c->sent_hash = fnv1a(c->sent_hash, c->out, n);
		c->out_off = 0;
		c->out_len = n;
	}
	ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
	if (w < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (w < 0)
		die("connection %u: send", c->index);
	c->out_off += (size_t)w;
	c->sent += (size_t)w;
	if (c->sent < c->size)
		return;
	watch(c, EPOLL_CTL_MOD, EPOLLIN);
	if (c->one_shot && shutdown(c->fd, SHUT_WR) < 0)
		die("connection %u: shutdown", c->index);
}

static void check_echo(const struct conn *c)
{
	errno = EBADMSG;
	if (c->got != c->size)
		die("connection %u: %zu bytes came back of %zu sent", c->index, c->got, c->size);
	if (c->got_hash != c->sent_hash)
		die("connection %u: the echo of its %zu bytes differs (FNV-1a %016llx, sent %016llx)",
		    c->index, c->size, (unsigned long long)c->got_hash,
		    (unsigned long long)c->sent_hash);
}

/* Reads once; returns 1 at EOF, 0 otherwise. */
static int receive(struct conn *c)
{
	unsigned char buf[IO_CHUNK];
	ssize_t n = read(c->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0)
		die("connection %u: read", c->index);
	if (n == 0)
		return 1;
	if (c->stage == CLOSING || c->got + (size_t)n > c->size) {
		errno = EBADMSG;
		die("connection %u: more bytes came back than were sent", c->index);
	}
	c->got_hash = fnv1a(c->got_hash, buf, (size_t)n);
	c->got += (size_t)n;
	return 0;
}

static void finish(struct conn *c)
{
	close(c->fd);
	c->stage = CLOSED;
}

/* Moves a connection on after an event; true when it has finished its stage. */
static bool step(struct conn *c, uint32_t events)
{
	switch (c->stage) {
	case CONNECTING: {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			errno = err;
			die("connection %u: connect", c->index);
		}
		if (c->one_shot) {
			start_echo(c);
			return false;
		}
		c->stage = OPEN;
		watch(c, EPOLL_CTL_MOD, 0);
		return true;
	}
	case OPEN:
		errno = ECONNRESET;
		die("connection %u: the server hung up while it was held (events %#x)", c->index,
		    events);
	case ECHOING:
		if ((events & EPOLLOUT) && c->sent < c->size)
			send_more(c);
		if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			return false;
		if (receive(c)) {
			if (!c->one_shot)
				die("connection %u: EOF after %zu of %zu bytes", c->index, c->got,
				    c->size);
			check_echo(c);
			finish(c);
			return true;
		}
		if (c->one_shot || c->got < c->size)
			return false;
		check_echo(c);
		c->stage = OPEN;
		watch(c, EPOLL_CTL_MOD, 0);
		return true;
	case CLOSING:
		if (!receive(c))
			return false;
		finish(c);
		return true;
	case CLOSED:
		break;
	}
	return false;
}

/* Dispatches events until `busy` connections have finished their stage. A finished one is
 * passed to `again` (if any), which may start it anew: then it stays busy. Dies past the
 * deadline, or when nothing at all happens for STALL_MS. */
static void drive(size_t busy, bool (*again)(struct conn *c))
{
	struct epoll_event ev[MAX_EVENTS];

	while (busy > 0) {
		if (now_s() > run.deadline) {
			errno = ETIMEDOUT;
			die("out of time, %zu connections unfinished", busy);
		}
		int n = epoll_wait(run.ep, ev, MAX_EVENTS, STALL_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("stalled: %zu connections unfinished for %d s", busy, STALL_MS / 1000);
		for (int i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;
			if (step(c, ev[i].events) && !(again && again(c)))
				busy--;
		}
	}
}

static void wait_go(void)
{
	if (run.pause)
		wait_for_file(run.pause);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static void hold(struct conn *conns, size_t n, size_t bytes)
{
	unsigned long long total = 0;
	double start = now_s();

	for (size_t i = 0; i < n; i++)
		open_conn(&conns[i], (unsigned)i, payload_size((unsigned)i, bytes / 2, bytes), false);
	drive(n, NULL);
	say("hold: %zu connections open at once after %.1f s\n", n, now_s() - start);
	wait_go();
	for (size_t i = 0; i < n; i++) {
		start_echo(&conns[i]);
		total += conns[i].size;
	}
	drive(n, NULL);
	say("hold: %zu payloads, %llu bytes in all, echoed and checked; all %zu still open\n", n,
	    total, n);
	wait_go();
	for (size_t i = 0; i < n; i++)
		start_closing(&conns[i]);
	drive(n, NULL);
	say("hold: %zu connections closed, each after the server's EOF\n", n);
}

static struct {
	unsigned first; /* the number of the first short connection */
	size_t started, total;
	unsigned long long bytes;
} shorts;

static bool next_short(struct conn *c)
{
	shorts.bytes += c->size;
	if (shorts.started == shorts.total)
		return false;
	unsigned index = shorts.first + (unsigned)shorts.started++;
	open_conn(c, index, payload_size(index, 16, 511), true);
	return true;
}

static void run_shorts(struct conn *conns, size_t n, size_t parallel, unsigned first)
{
	size_t window = n < parallel ? n : parallel;
	double start = now_s();

	shorts.first = first;
	shorts.total = n;
	for (size_t i = 0; i < window; i++) {
		unsigned index = first + (unsigned)shorts.started++;
		open_conn(&conns[i], index, payload_size(index, 16, 511), true);
	}
	drive(window, next_short);
	double took = now_s() - start;
	say("short: %zu connections, at most %zu at a time, %llu bytes echoed and checked, in "
	    "%.1f s (%.0f/s)\n",
	    n, window, shorts.bytes, took, took > 0 ? (double)n / took : 0.0);
}

static long number(const char *s, const char *what)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 0 || v > 10000000) {
		errno = EINVAL;
		die("%s: not a count: %s", what, s);
	}
	return v;
}

static void run_client(int argc, char **argv)
{
	static const struct option options[] = {
		{"hold", required_argument, NULL, 'h'},     {"bytes", required_argument, NULL, 'b'},
		{"short", required_argument, NULL, 's'},    {"parallel", required_argument, NULL, 'p'},
		{"seconds", required_argument, NULL, 't'},  {"pause", required_argument, NULL, 'w'},
		{NULL, 0, NULL, 0},
	};
	long n_hold = 1000, bytes = 16384, n_short = 5000, parallel = 32, seconds = 600;
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'h': n_hold = number(optarg, "--hold"); break;
		case 'b': bytes = number(optarg, "--bytes"); break;
		case 's': n_short = number(optarg, "--short"); break;
		case 'p': parallel = number(optarg, "--parallel"); break;
		case 't': seconds = number(optarg, "--seconds"); break;
		case 'w': run.pause = optarg; break;
		default: errno = EINVAL; die("usage: stress client [options] HOST PORT");
		}
	}
	if (argc - optind != 2 || parallel < 1) {
		errno = EINVAL;
		die("usage: stress client [options] HOST PORT");
	}
	run.target_len = parse_addr(argv[optind], atoi(argv[optind + 1]), &run.target);
	run.deadline = now_s() + (double)seconds;
	run.ep = epoll_create1(0);
	if (run.ep < 0)
		die("epoll_create1");
	size_t slots = (size_t)(n_hold > parallel ? n_hold : parallel);
	struct conn *conns = calloc(slots, sizeof(*conns));
	if (!conns)
		die("calloc");
	raise_nofile((rlim_t)slots + 64);
	hold(conns, (size_t)n_hold, (size_t)bytes);
	run_shorts(conns, (size_t)n_short, (size_t)parallel, (unsigned)n_hold);
	free(conns);
	say("ok\n");
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "server")) {
		run_server(atoi(argv[2]), atoi(argv[3]));
		return 0;
	}
	if (argc == 9 && !strcmp(argv[1], "crowd")) {
		run_crowd((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]),
			  atoi(argv[5]), argv[6], argv[7], atoi(argv[8]));
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "client")) {
		run_client(argc - 1, argv + 1);
		return 0;
	}
	errno = EINVAL;
	die("usage: stress server PORT SECONDS | stress crowd CID PORT FIRST_SOURCE N FILE HOST TCP_PORT | "
	    "stress client [options] HOST PORT");
}
