/* conform: the conformance suite of issue 6. A client and a server walk the same table of
 * cases, and each prints a transcript of what it saw: return values, errno names,
 * addresses, readiness events, byte counts and checksums. tests/vm/t_conformance.sh runs
 * them once over plain TCP and once with both ends under the shim (redirected over vsock)
 * and compares the transcripts.
 *
 *   conform server PORT          serves, in table order, every case that connects to PORT;
 *                                PORT+2 listens and never accepts
 *   conform client HOST PORT     runs every case; nothing may listen on HOST:PORT+1
 *
 * Every connection to PORT opens with a hello from the client: the case's name, so that the
 * server knows it is at the same case, and the client's view of both addresses, so that the
 * server checks its own view is the same the other way round. What changes from run to run
 * is printed as what was checked about it: a port in the ephemeral range reads "ephemeral",
 * a time "as set". Each line reads "CASE WHAT: VALUE". */
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define CASE_SECONDS 30  /* a case still running after this has hung: the run ends */
#define WAIT_MS 5000     /* the longest wait for an event that must come */
#define TIMEOUT_MS 200   /* SO_RCVTIMEO and SO_SNDTIMEO in the timeout cases */
#define HOLD_MS 800      /* how long serve_hold leaves the connection alone */
#define BIG (16u << 20)  /* the large transfer */
#define FLOOD (32u << 20) /* more than TCP's and vsock's buffers together hold */
#define SENDFILE_SIZE ((1u << 20) + 13)
#define SPLICE_SIZE ((4u << 20) + 7) /* more than a pipe or a vsock buffer holds */

_Static_assert(EPOLLIN == POLLIN && EPOLLOUT == POLLOUT && EPOLLRDHUP == POLLRDHUP &&
		       EPOLLHUP == POLLHUP && EPOLLERR == POLLERR,
	       "epoll and poll events are printed by one table");

enum accept_how {
	ACCEPT_PLAIN,                /* accept() with room for the address */
	ACCEPT4_FLAGS,               /* accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) */
	ACCEPT_NONBLOCKING_LISTENER, /* accept() on a listener made non-blocking */
	ACCEPT_NO_ADDRESS,           /* accept(listener, NULL, NULL) */
	ACCEPT_SHORT_ADDRESS,        /* accept() with a 4-byte address buffer */
};

enum watch { WATCH_POLL, WATCH_SELECT, WATCH_EPOLL };

struct test_case {
	const char *name;
	void (*client)(const struct test_case *tc);
	/* The server's half, on the accepted socket, which it closes; NULL for a case that does
	 * not connect to PORT. */
	void (*server)(int conn, const struct test_case *tc);
	enum accept_how accept_how;
	int level, option, value;   /* option cases: the option and the value set; fcntl
				     * cases: the flag */
	bool before_connect;        /* the option is set before connect() */
	enum watch watch;           /* readiness cases: how the client waits */
	unsigned events;            /* ... for which events */
	bool shut_wr_first;         /* ... after shutting down its own writing */
	bool after_peer_end;        /* ... once the server has ended its writing */
	bool at_once;               /* ... looking without waiting */
	int how;                    /* shutdown cases: the argument */
	int send_flags;             /* sending after the peer closed: 0 is write() */
	size_t size;                /* bytes of the pattern the server sends */
	const char *text;           /* ... or this text */
};

static const char *case_name = "-"; /* starts every line printed */
static struct sockaddr_storage server_addr;
static socklen_t server_len;
static char server_host[64];
static int server_port;
static int ephemeral_first, ephemeral_last;
static unsigned char *pattern; /* FLOOD bytes of pattern_byte() */
static int server_listener;    /* the server's listener on PORT */
static int served;             /* connections the server accepted */
static volatile sig_atomic_t sigpipes;

/* ---- the transcript ---- */

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
	va_list ap;

	printf("%s ", case_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *errno_name(int err)
{
	const char *name = strerrorname_np(err);

	return name ? name : "E?";
}

/* A call's result: its value, or -1 and the errno's name. Reads errno first. */
static void note_rc(const char *what, long rc)
{
	int err = errno;

	if (rc < 0)
		note("%s: %ld %s", what, rc, errno_name(err));
	else
		note("%s: %ld", what, rc);
}

static const char *events_text(unsigned events)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{POLLIN, "IN"},     {POLLPRI, "PRI"},       {POLLOUT, "OUT"},
		{POLLRDHUP, "RDHUP"}, {POLLERR, "ERR"},     {POLLHUP, "HUP"},
		{POLLNVAL, "NVAL"}, {POLLRDNORM, "RDNORM"}, {POLLWRNORM, "WRNORM"},
	};
	static char buf[96];
	size_t used = 0;

	buf[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (events & names[i].bit)
			used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s",
						 used ? "|" : "", names[i].name);
	return used ? buf : "none";
}

/* An address with its port as the transcript shows it: "ephemeral" when it is in the
 * kernel's ephemeral range, which is what the shim's local ports must look like too. */
static const char *addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	char port_text[16];
	int port;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	} else {
		snprintf(buf, size, "family %d", ss->ss_family);
		return buf;
	}
	if (port >= ephemeral_first && port <= ephemeral_last)
		snprintf(port_text, sizeof(port_text), "ephemeral");
	else
		snprintf(port_text, sizeof(port_text), "%d", port);
	snprintf(buf, size, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port_text);
	return buf;
}

/* An address as both ends can compare it: IPv4-mapped IPv6 shown as IPv4, the port as is. */
static void endpoint_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	const struct sockaddr_in6 *in6 = (const void *)ss;

	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		struct sockaddr_storage v4 = {.ss_family = AF_INET};
		struct sockaddr_in *in = (void *)&v4;
		in->sin_port = in6->sin6_port;
		memcpy(&in->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
		show_addr(&v4, buf, size);
	} else {
		show_addr(ss, buf, size);
	}
}

/* What a name call (getsockname or getpeername) says of fd: for the transcript, or exact
 * (with the real port) for the two ends to compare. */
static const char *name_text(int fd, int (*call)(int, struct sockaddr *, socklen_t *),
			     bool exact, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (call(fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(buf, size, "-1 %s", errno_name(errno));
		return buf;
	}
	if (!exact)
		return addr_text(&ss, buf, size);
	endpoint_text(&ss, buf, size);
	return buf;
}

static void note_names(int fd)
{
	char local[80], peer[80];

	note("names: local=%s peer=%s", name_text(fd, getsockname, false, local, sizeof(local)),
	     name_text(fd, getpeername, false, peer, sizeof(peer)));
}

static int get_int(int fd, int level, int option)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, option, &v, &len) < 0)
		return -errno;
	return v;
}

/* An option's value, or -1 and the errno's name. */
static void note_option(const char *what, int fd, int level, int option)
{
	int v = -1;
	socklen_t len = sizeof(v);

	note_rc(what, getsockopt(fd, level, option, &v, &len) < 0 ? -1 : v);
}

static void note_identity(int fd)
{
	note("identity: type=%d domain=%d protocol=%d acceptconn=%d error=%d",
	     get_int(fd, SOL_SOCKET, SO_TYPE), get_int(fd, SOL_SOCKET, SO_DOMAIN),
	     get_int(fd, SOL_SOCKET, SO_PROTOCOL), get_int(fd, SOL_SOCKET, SO_ACCEPTCONN),
	     get_int(fd, SOL_SOCKET, SO_ERROR));
}

static void note_fd_flags(int fd)
{
	note("flags: O_NONBLOCK=%d FD_CLOEXEC=%d", !!(fcntl(fd, F_GETFL) & O_NONBLOCK),
	     !!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
}

/* ---- moving bytes ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* The events of fd among `events` within timeout_ms; 0 if none came. */
static unsigned poll_events(int fd, unsigned events, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = (short)events};

	return poll(&p, 1, timeout_ms) == 1 ? (unsigned short)p.revents : 0;
}

/* read(), waiting on a non-blocking socket as a blocking one would. */
static ssize_t read_some(int fd, void *buf, size_t n)
{
	ssize_t r;

	while ((r = read(fd, buf, n)) < 0 && errno == EAGAIN && poll_events(fd, POLLIN, WAIT_MS))
		;
	return r;
}

/* Writes all of buf (waiting as a blocking socket would); n, or -1. */
static ssize_t write_all(int fd, const void *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t w = write(fd, (const char *)buf + done, n - done);
		if (w < 0 && errno == EAGAIN && poll_events(fd, POLLOUT, WAIT_MS))
			continue;
		if (w < 0)
			return -1;
		done += (size_t)w;
	}
	return (ssize_t)n;
}

/* Reads n bytes unless EOF comes first: the count read, or -1. */
static ssize_t read_all(int fd, void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = read_some(fd, (char *)buf + done, n - done);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* What a stream carried: its length, a checksum (FNV-1a), and whether it was the pattern. */
struct stream_seen {
	uint64_t count, fnv;
	bool intact;
};

static void stream_start(struct stream_seen *s)
{
	*s = (struct stream_seen){.fnv = 14695981039346656037u, .intact = true};
}

static void stream_add(struct stream_seen *s, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		s->intact &= p[i] == pattern_byte(s->count + i);
		s->fnv = (s->fnv ^ p[i]) * 1099511628211u;
	}
	s->count += n;
}

/* Reads up to `limit` bytes, or to EOF, in reads of ever-changing sizes; returns the last
 * read's result (0 at EOF, -1 on an error). */
static ssize_t read_stream(int fd, struct stream_seen *s, uint64_t limit)
{
	static const size_t sizes[] = {1, 7, 4093, 65536, 100000, 3};
	static unsigned char buf[100000];
	ssize_t r = 0;

	stream_start(s);
	for (unsigned i = 0; s->count < limit; i++) {
		size_t want = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
		if (want > limit - s->count)
			want = (size_t)(limit - s->count);
		r = read_some(fd, buf, want);
		if (r <= 0)
			break;
		stream_add(s, buf, (size_t)r);
	}
	return r;
}

static void note_stream(const char *what, const struct stream_seen *s)
{
	note("%s: %llu bytes, fnv %016llx, pattern %s", what, (unsigned long long)s->count,
	     (unsigned long long)s->fnv, s->intact ? "intact" : "broken");
}

/* How a read that ended a stream ended. */
static void note_end(const char *what, ssize_t last)
{
	if (last == 0)
		note("%s: EOF", what);
	else
		note_rc(what, last);
}

/* ---- the hello ---- */

struct hello {
	char name[48];
	char local[64]; /* the client's getsockname, with its real port */
	char peer[64];  /* the client's getpeername */
};

static void send_hello(int fd)
{
	struct hello h;

	memset(&h, 0, sizeof(h));
	snprintf(h.name, sizeof(h.name), "%s", case_name);
	name_text(fd, getsockname, true, h.local, sizeof(h.local));
	name_text(fd, getpeername, true, h.peer, sizeof(h.peer));
	if (write_all(fd, &h, sizeof(h)) < 0)
		die("%s: hello", case_name);
}

/* ---- the client's tools ---- */

static int tcp_socket(int family, int flags)
{
	int fd = socket(family, SOCK_STREAM | flags, 0);

	if (fd < 0)
		die("socket");
	return fd;
}

static const struct sockaddr *server_sa(void)
{
	return (const struct sockaddr *)&server_addr;
}

/* connect() to PORT+offset. */
static int connect_to(int fd, int offset)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(server_host, server_port + offset, &ss);

	return connect(fd, (struct sockaddr *)&ss, len);
}

/* Connects fd to the server and says hello: the start of every case served. */
static void connect_hello(int fd)
{
	if (connect(fd, server_sa(), server_len) < 0)
		die("%s: connect", case_name);
	send_hello(fd);
}

static int dial(void)
{
	int fd = tcp_socket(AF_INET, 0);

	connect_hello(fd);
	return fd;
}

/* A non-blocking connect(): its result, then what poll says. */
static void connect_nonblocking(int fd, int offset)
{
	note_rc("connect", connect_to(fd, offset));
	note("poll: %s", events_text(poll_events(fd, POLLOUT, WAIT_MS)));
}

static void set_nonblocking(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
		die("fcntl F_SETFL");
}

/* Sends msg and reads it back. */
static void note_echo(int fd, const char *msg)
{
	char buf[64];
	size_t n = strlen(msg);

	if (write_all(fd, msg, n) < 0) {
		note_rc("echo write", -1);
		return;
	}
	ssize_t r = read_all(fd, buf, n);
	if (r == (ssize_t)n && memcmp(buf, msg, n) == 0)
		note("echo of '%s': ok", msg);
	else
		note_rc("echo read", r);
}

/* What select() says of fd within timeout_ms, as poll events (POLLIN, POLLOUT). */
static unsigned select_events(int fd, unsigned events, int timeout_ms)
{
	fd_set readable, writable;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
	unsigned got = 0;

	FD_ZERO(&readable);
	FD_ZERO(&writable);
	if (events & POLLIN)
		FD_SET(fd, &readable);
	if (events & POLLOUT)
		FD_SET(fd, &writable);
	if (select(fd + 1, &readable, &writable, NULL, &tv) > 0) {
		got |= FD_ISSET(fd, &readable) ? POLLIN : 0;
		got |= FD_ISSET(fd, &writable) ? POLLOUT : 0;
	}
	return got;
}

/* What a new epoll set with fd in it reports within timeout_ms. */
static unsigned epoll_events(int fd, unsigned events, int timeout_ms)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = events}, got = {0};

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll");
	int n = epoll_wait(ep, &got, 1, timeout_ms);
	close(ep);
	return n == 1 ? got.events : 0;
}

/* Waits for the server to end its writing (its shutdown or close). */
static void wait_peer_end(int fd)
{
	if (!(poll_events(fd, POLLRDHUP, WAIT_MS) & POLLRDHUP))
		note("the server's end: never came");
}

static void note_timing(const char *what, int64_t start, int expected_ms)
{
	int64_t took = now_ms() - start;

	/* Timers may round down by a tick; anything far off is wrong. */
	if (took >= expected_ms - 20 && took < expected_ms + 2000)
		note("%s: as set", what);
	else
		note("%s: %lld ms, not %d", what, (long long)took, expected_ms);
}

/* ---- client halves: before connecting ---- */

static void names_before_connect(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, 0);

	note_names(fd);
	note_identity(fd);
	close(fd);
}

static void io_before_connect(const struct test_case *tc)
{
	(void)tc;
	char c;
	int fd = tcp_socket(AF_INET, 0);

	note_rc("shutdown", shutdown(fd, SHUT_WR));
	note_rc("read", read(fd, &c, 1));
	note_rc("send", send(fd, "x", 1, MSG_NOSIGNAL));
	note("SIGPIPE: %d", sigpipes);
	close(fd);
}

static void connect_refused(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, 0);

	note_rc("connect", connect_to(fd, 1));
	note_option("SO_ERROR", fd, SOL_SOCKET, SO_ERROR);
	note_names(fd);
	close(fd);
}

static void connect_refused_nonblocking(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, SOCK_NONBLOCK);

	connect_nonblocking(fd, 1);
	note_option("SO_ERROR", fd, SOL_SOCKET, SO_ERROR);
	note_option("SO_ERROR again", fd, SOL_SOCKET, SO_ERROR);
	close(fd);
}

/* PORT+2 listens but never accepts: connecting still works, and so does sending. */
static void connect_no_accept(const struct test_case *tc)
{
	(void)tc;
	char c;
	int fd = tcp_socket(AF_INET, 0);

	note_rc("connect", connect_to(fd, 2));
	note_names(fd);
	note_rc("send", send(fd, "hello", 5, MSG_NOSIGNAL));
	note_rc("recv MSG_DONTWAIT", recv(fd, &c, 1, MSG_DONTWAIT));
	close(fd);
}

/* ---- client halves: connecting ---- */

static void connect_blocking(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note_names(fd);
	note_identity(fd);
	note_echo(fd, "ping");
	note_echo(fd, "pong");
	close(fd);
}

static void connect_nonblocking_poll(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, SOCK_NONBLOCK);

	connect_nonblocking(fd, 0);
	note_option("SO_ERROR", fd, SOL_SOCKET, SO_ERROR);
	note_rc("connect again", connect(fd, server_sa(), server_len));
	note_names(fd);
	send_hello(fd);
	close(fd);
}

static void connect_nonblocking_select(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, SOCK_NONBLOCK);

	note_rc("connect", connect(fd, server_sa(), server_len));
	note("select: %s", events_text(select_events(fd, POLLOUT, WAIT_MS)));
	note_option("SO_ERROR", fd, SOL_SOCKET, SO_ERROR);
	send_hello(fd);
	close(fd);
}

/* Added to epoll before connect(): the registration must follow the connection. */
static void connect_epoll_before(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, SOCK_NONBLOCK), ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd}, got;

	note_rc("epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	note_rc("connect", connect(fd, server_sa(), server_len));
	int n = epoll_wait(ep, &got, 1, WAIT_MS);
	note("epoll_wait: %d %s", n, n == 1 && got.data.fd == fd ? events_text(got.events) : "-");
	note_option("SO_ERROR", fd, SOL_SOCKET, SO_ERROR);
	send_hello(fd);
	close(ep);
	close(fd);
}

static void connect_twice(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note_rc("connect again", connect(fd, server_sa(), server_len));
	note_echo(fd, "still");
	close(fd);
}

static void connect_v4mapped(const struct test_case *tc)
{
	(void)tc;
	char mapped[80];
	struct sockaddr_storage ss;
	int fd = tcp_socket(AF_INET6, 0);

	snprintf(mapped, sizeof(mapped), "::ffff:%s", server_host);
	note_rc("connect", connect(fd, (struct sockaddr *)&ss,
				   parse_addr(mapped, server_port, &ss)));
	note_names(fd);
	note_identity(fd);
	send_hello(fd);
	note_echo(fd, "mapped");
	close(fd);
}

/* A source port bound before connect() is the connection's local port on both ends. */
static void connect_bound_port(const struct test_case *tc)
{
	(void)tc;
	struct sockaddr_in any = {.sin_family = AF_INET};
	int one = 1, fd = tcp_socket(AF_INET, 0);

	any.sin_port = htons((uint16_t)(server_port + 3));
	/* The first run's connection may still be in TIME_WAIT on that port. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	note_rc("bind", bind(fd, (struct sockaddr *)&any, sizeof(any)));
	connect_hello(fd);
	note_names(fd);
	close(fd);
}

static void socket_flags_survive(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, SOCK_NONBLOCK | SOCK_CLOEXEC);

	connect_nonblocking(fd, 0);
	note_fd_flags(fd);
	send_hello(fd);
	close(fd);
}

static void names_stable(const struct test_case *tc)
{
	(void)tc;
	struct sockaddr_storage first, again;
	socklen_t len1 = sizeof(first), len2 = sizeof(again);
	int fd = dial();

	getsockname(fd, (struct sockaddr *)&first, &len1);
	note_echo(fd, "between");
	getsockname(fd, (struct sockaddr *)&again, &len2);
	note("getsockname twice: %s",
	     len1 == len2 && memcmp(&first, &again, len1) == 0 ? "same" : "differs");
	close(fd);
}

static void getpeername_short_buffer(const struct test_case *tc)
{
	(void)tc;
	char buf[128];
	socklen_t len = 4;
	int fd = dial();

	memset(buf, 0, sizeof(buf));
	note_rc("getpeername", getpeername(fd, (struct sockaddr *)buf, &len));
	note("length: %u, family bytes copied: %d", len, ((struct sockaddr *)buf)->sa_family);
	close(fd);
}

static void tcp_info_state(const struct test_case *tc)
{
	(void)tc;
	struct tcp_info info = {0};
	socklen_t len = sizeof(info);
	int fd = dial();

	note_rc("TCP_INFO", getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len));
	note("state: %d (TCP_ESTABLISHED is %d)", info.tcpi_state, TCP_ESTABLISHED);
	close(fd);
}

static const char *tcp_state_name(unsigned state)
{
	static const char *const names[] = {
		"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
		"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING",
	};

	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "?";
}

/* TCP_INFO's state, by name. */
static void note_tcp_state(const char *what, int fd)
{
	struct tcp_info info = {0};
	socklen_t len = sizeof(info);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0)
		note_rc(what, -1);
	else
		note("%s: %s", what, tcp_state_name(info.tcpi_state));
}

/* The server closes: the state once its end came, and after reading it. */
static void tcp_info_peer_closed(const struct test_case *tc)
{
	(void)tc;
	char c;
	int fd = dial();

	wait_peer_end(fd);
	note_tcp_state("TCP_INFO after the server's end", fd);
	note_rc("read", read(fd, &c, 1));
	note_tcp_state("TCP_INFO after reading EOF", fd);
	close(fd);
}

/* The client ends its sending first; the server answers once it read the end, then closes. */
static void tcp_info_half_close(const struct test_case *tc)
{
	(void)tc;
	char buf[16];
	int fd = dial();

	note_rc("shutdown SHUT_WR", shutdown(fd, SHUT_WR));
	/* The answer comes after the server's kernel acknowledged the end. */
	note_rc("the server's answer", read_all(fd, buf, 8));
	note_tcp_state("TCP_INFO after shutdown SHUT_WR", fd);
	wait_peer_end(fd);
	note_tcp_state("TCP_INFO after the server's end too", fd);
	close(fd);
}

/* A connect() that TCP refuses went through: the client says hello, so that the server can
 * tell this connection from the next case's and note it. */
static void note_connect_refused(const char *what, int fd, const struct sockaddr *sa,
				 socklen_t len)
{
	int rc = connect(fd, sa, len);

	note_rc(what, rc);
	if (rc == 0)
		send_hello(fd);
	close(fd);
}

/* TCP refuses an IPv4-mapped destination on an IPV6_V6ONLY socket (ENETUNREACH). */
static void connect_v4mapped_v6only(const struct test_case *tc)
{
	(void)tc;
	char mapped[80];
	struct sockaddr_storage ss;
	int one = 1, fd = tcp_socket(AF_INET6, 0);

	snprintf(mapped, sizeof(mapped), "::ffff:%s", server_host);
	note_rc("IPV6_V6ONLY", setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)));
	note_connect_refused("connect", fd, (struct sockaddr *)&ss,
			     parse_addr(mapped, server_port, &ss));
}

/* TCP refuses an address of the other family: an IPv6 one on an IPv4 socket
 * (EAFNOSUPPORT), an IPv4 one on an IPv6 socket (EINVAL: it is too short). */
static void connect_other_family(const struct test_case *tc)
{
	(void)tc;
	char mapped[80];
	struct sockaddr_storage ss;

	snprintf(mapped, sizeof(mapped), "::ffff:%s", server_host);
	note_connect_refused("IPv4 socket, IPv6 address", tcp_socket(AF_INET, 0),
			     (struct sockaddr *)&ss, parse_addr(mapped, server_port, &ss));
	note_connect_refused("IPv6 socket, IPv4 address", tcp_socket(AF_INET6, 0), server_sa(),
			     server_len);
}

/* connect(AF_UNSPEC) ends a connection (tcp_disconnect); the socket can connect again. */
static void connect_af_unspec(const struct test_case *tc)
{
	(void)tc;
	struct sockaddr unspec = {.sa_family = AF_UNSPEC};
	char buf[8];
	int fd = dial();

	note_rc("the server's word", read_all(fd, buf, 5));
	note_rc("connect with a 1-byte address", connect(fd, server_sa(), 1));
	note_rc("connect AF_UNSPEC", connect(fd, &unspec, sizeof(unspec)));
	note_tcp_state("TCP_INFO", fd);
	note_names(fd);
	note_rc("read", recv(fd, buf, 1, MSG_DONTWAIT));
	note_rc("send", send(fd, "x", 1, MSG_NOSIGNAL));
	note("poll: %s", events_text(poll_events(fd, POLLIN | POLLOUT | POLLRDHUP, 0)));
	note_rc("connect AF_UNSPEC again", connect(fd, &unspec, sizeof(unspec)));
	int rc = connect(fd, server_sa(), server_len);
	note_rc("connect again", rc);
	/* The server takes a second connection either way: the cases after this one must not
	 * depend on how it went. */
	if (rc < 0) {
		close(fd);
		fd = dial();
	} else {
		send_hello(fd);
	}
	note_names(fd);
	note_echo(fd, "again");
	close(fd);
}

/* ---- client halves: options and flags ---- */

/* One int option: its default, setting it, and what it reads back. */
static void option_round_trip(const struct test_case *tc)
{
	int fd = tcp_socket(AF_INET, 0);

	if (tc->before_connect) {
		note_rc("set", setsockopt(fd, tc->level, tc->option, &tc->value, sizeof(int)));
		connect_hello(fd);
	} else {
		connect_hello(fd);
		note_option("default", fd, tc->level, tc->option);
		note_rc("set", setsockopt(fd, tc->level, tc->option, &tc->value, sizeof(int)));
	}
	note_option("get", fd, tc->level, tc->option);
	close(fd);
}

static void so_linger_round_trip(const struct test_case *tc)
{
	(void)tc;
	struct linger set = {.l_onoff = 1, .l_linger = 5}, got = {0};
	socklen_t len = sizeof(got);
	int fd = dial();

	note_rc("set", setsockopt(fd, SOL_SOCKET, SO_LINGER, &set, sizeof(set)));
	note_rc("get", getsockopt(fd, SOL_SOCKET, SO_LINGER, &got, &len));
	note("SO_LINGER: onoff=%d linger=%d length=%u", got.l_onoff, got.l_linger, len);
	close(fd);
}

/* A file status flag (O_NONBLOCK) or descriptor flag (FD_CLOEXEC): set, then cleared. */
static void fcntl_round_trip(const struct test_case *tc)
{
	bool status = tc->value == O_NONBLOCK;
	int get = status ? F_GETFL : F_GETFD, set = status ? F_SETFL : F_SETFD;
	int fd = dial(), flags = fcntl(fd, get);

	note("before: %d", !!(flags & tc->value));
	note_rc("set", fcntl(fd, set, flags | tc->value));
	note("after setting: %d", !!(fcntl(fd, get) & tc->value));
	note_rc("clear", fcntl(fd, set, flags & ~tc->value));
	note("after clearing: %d", !!(fcntl(fd, get) & tc->value));
	close(fd);
}

/* ---- client halves: shutdown and the end of a connection ---- */

/* shutdown(how), then what reading and writing do; the server reads what comes. (After
 * SHUT_WR alone, what a read finds depends on how soon the server answers the EOF: that is
 * shut_wr_half_close.) */
static void shutdown_then_io(const struct test_case *tc)
{
	char c;
	int fd = dial();

	note_rc("shutdown", shutdown(fd, tc->how));
	note_rc("recv MSG_DONTWAIT", recv(fd, &c, 1, MSG_DONTWAIT));
	note_rc("send", send(fd, "after", 5, MSG_NOSIGNAL));
	note("SIGPIPE: %d", sigpipes);
	close(fd);
}

/* The client asks and shuts down its writing; the server reads to EOF, then answers. */
static void half_close(const struct test_case *tc)
{
	(void)tc;
	char buf[64];
	int fd = dial();

	note_rc("send", send(fd, "question", 8, 0));
	note_rc("shutdown SHUT_WR", shutdown(fd, SHUT_WR));
	note_rc("send after", send(fd, "more", 4, MSG_NOSIGNAL));
	ssize_t n = read_all(fd, buf, sizeof(buf));
	note("read to EOF: %zd bytes '%.*s'", n, n > 0 ? (int)n : 0, buf);
	close(fd);
}

/* The server shut down its reading: can the client still send? */
static void peer_shut_rd(const struct test_case *tc)
{
	(void)tc;
	char c = 0;
	int fd = dial();

	note_rc("read", read(fd, &c, 1));
	note_rc("send", send(fd, "after", 5, MSG_NOSIGNAL));
	close(fd);
}

/* Reads after the server ended the connection: how the end shows, and that it stays. */
static void note_end_reads(int fd)
{
	char c;

	note_rc("read", read(fd, &c, 1));
	note_rc("read again", read(fd, &c, 1));
}

static void peer_close_read(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note_end_reads(fd);
	note_names(fd);
	close(fd);
}

/* Sends one byte at a time, a little apart, until a send fails: TCP learns that the peer
 * has gone from the reset its first send provokes. Returns the sends accepted. */
static int send_until_error(int fd, int flags)
{
	for (int accepted = 0; accepted < 50; accepted++) {
		ssize_t n = flags ? send(fd, "x", 1, flags) : write(fd, "x", 1);
		if (n < 0)
			return accepted;
		sleep_ms(20);
	}
	errno = 0;
	return 50;
}

static void send_after_peer_close(const struct test_case *tc)
{
	char c;
	int fd = dial();

	note_rc("read", read(fd, &c, 1));
	int accepted = send_until_error(fd, tc->send_flags);
	note_rc("first failure", errno ? -1 : 0);
	if (tc->send_flags)
		note("sends accepted before it: %d", accepted);
	note("SIGPIPE: %d", sigpipes);
	close(fd);
}

/* The server closed with SO_LINGER 0. */
static void abortive_close(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note_end_reads(fd);
	note_rc("send", send(fd, "x", 1, MSG_NOSIGNAL));
	note_names(fd);
	close(fd);
}

/* Closing with data unread: TCP resets the connection. */
static void close_unread(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note("poll: %s", events_text(poll_events(fd, POLLIN, WAIT_MS)));
	note_rc("close", close(fd));
}

/* ---- client halves: data ---- */

static void write_big(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note_rc("write", write(fd, pattern, BIG));
	close(fd);
}

static void read_big(const struct test_case *tc)
{
	struct stream_seen s;
	int fd = dial();

	read_stream(fd, &s, tc->size);
	note_stream("read", &s);
	close(fd);
}

/* SO_RCVLOWAT makes one read wait for a whole echo, which TCP may deliver in pieces. */
static void wait_for_bytes(int fd, int n)
{
	setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &n, sizeof(n));
}

static void readv_writev(const struct test_case *tc)
{
	(void)tc;
	char a[4], b[8], c[16];
	struct iovec out[] = {{"alpha", 5}, {"bravo12", 7}, {"charlie1234", 11}};
	struct iovec in[] = {{a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}};
	int fd = dial();

	wait_for_bytes(fd, 23);
	note_rc("writev", writev(fd, out, 3));
	ssize_t n = readv(fd, in, 3);
	note_rc("readv", n);
	if (n == 23)
		note("iovecs: '%.4s' '%.8s' '%.11s'", a, b, c);
	close(fd);
}

static void sendmsg_recvmsg(const struct test_case *tc)
{
	(void)tc;
	char a[3], b[16], name[64], control[64];
	struct iovec out[] = {{"send", 4}, {"msg!", 4}};
	struct iovec in[] = {{a, sizeof(a)}, {b, sizeof(b)}};
	struct msghdr sent = {.msg_iov = out, .msg_iovlen = 2};
	struct msghdr got = {.msg_name = name, .msg_namelen = sizeof(name), .msg_iov = in,
			     .msg_iovlen = 2, .msg_control = control,
			     .msg_controllen = sizeof(control)};
	int fd = dial();

	wait_for_bytes(fd, 8);
	note_rc("sendmsg", sendmsg(fd, &sent, MSG_NOSIGNAL));
	ssize_t n = recvmsg(fd, &got, 0);
	note_rc("recvmsg", n);
	note("namelen=%u controllen=%zu flags=%d data '%.3s' '%.5s'", got.msg_namelen,
	     (size_t)got.msg_controllen, got.msg_flags, a, b);
	close(fd);
}

static void sendfile_file(const struct test_case *tc)
{
	(void)tc;
	char path[] = "/tmp/conform.XXXXXX";
	int file = mkstemp(path);
	off_t offset = 0;
	long total = 0;
	ssize_t n = 0;

	if (file < 0 || write_all(file, pattern, SENDFILE_SIZE) < 0)
		die("temporary file");
	unlink(path);
	int fd = dial();
	while (total < SENDFILE_SIZE &&
	       (n = sendfile(fd, file, &offset, SENDFILE_SIZE - (size_t)total)) > 0)
		total += n;
	note_rc("sendfile total", n < 0 ? n : total);
	note("offset: %lld", (long long)offset);
	close(fd);
	close(file);
}

static void make_pipe(int p[2])
{
	if (pipe(p) < 0)
		die("pipe");
}

/* splice(2) into the socket: from a file through a pipe, every byte the pattern. */
static void splice_to_socket(const struct test_case *tc)
{
	char path[] = "/tmp/conform.XXXXXX";
	int file = mkstemp(path), p[2];
	loff_t offset = 0;
	long total = 0;
	ssize_t n = 0, out = 0;

	if (file < 0 || write_all(file, pattern, tc->size) < 0)
		die("temporary file");
	unlink(path);
	make_pipe(p);
	int fd = dial();
	while (total < (long)tc->size &&
	       (n = splice(file, &offset, p[1], NULL, tc->size - (size_t)total, SPLICE_F_MOVE)) > 0)
		for (ssize_t left = n; left > 0; left -= out, total += out)
			if ((out = splice(p[0], NULL, fd, NULL, (size_t)left, SPLICE_F_MOVE)) <= 0) {
				n = out < 0 ? -1 : 0;
				break;
			}
	note_rc("spliced into the socket", n < 0 ? n : total);
	close(fd);
	close(p[0]);
	close(p[1]);
	close(file);
}

/* splice(2) out of the socket into a pipe, read back and checked: all the server sent. */
static void splice_from_socket(const struct test_case *tc)
{
	static unsigned char buf[65536];
	struct stream_seen s;
	int p[2];
	ssize_t n = 0;

	make_pipe(p);
	int fd = dial();
	stream_start(&s);
	while (s.count < tc->size &&
	       (n = splice(fd, NULL, p[1], NULL, sizeof(buf), SPLICE_F_MOVE)) > 0)
		for (ssize_t left = n, r; left > 0; left -= r) {
			if ((r = read(p[0], buf, (size_t)left)) <= 0)
				die("%s: pipe", case_name);
			stream_add(&s, buf, (size_t)r);
		}
	note_stream("spliced out of the socket", &s);
	if (n <= 0) /* how the bytes came in pieces is the transport's */
		note_rc("splice", n);
	close(fd);
	close(p[0]);
	close(p[1]);
}

static void send_zero(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note_rc("send 0 bytes", send(fd, "", 0, 0));
	note_rc("write 0 bytes", write(fd, "", 0));
	note_echo(fd, "after");
	close(fd);
}

/* Notes a send of text; what was sent is added to sent, to be echoed. */
static void note_send(const char *what, ssize_t rc, const char *text, char *sent)
{
	note_rc(what, rc);
	if (rc == (ssize_t)strlen(text))
		strcat(sent, text);
}

/* A connected socket ignores the address given to sendto, sendmsg and sendmmsg, whatever it
 * is (tcp_sendmsg reads it only for MSG_FASTOPEN, which fails on a connected socket). */
static void send_with_address(const struct test_case *tc)
{
	(void)tc;
	struct sockaddr_storage other, too_long[2];
	socklen_t other_len = parse_addr(server_host, server_port + 1, &other);
	const struct sockaddr unspec = {.sa_family = AF_UNSPEC};
	struct iovec iov[] = {{"msg.", 4}, {"mm1.", 4}, {"mm2.", 4}};
	struct msghdr msg = {.msg_name = &other, .msg_namelen = other_len, .msg_iov = iov,
			     .msg_iovlen = 1};
	struct mmsghdr mm[2] = {
		{.msg_hdr = {.msg_name = &other, .msg_namelen = other_len, .msg_iov = &iov[1],
			     .msg_iovlen = 1}},
		{.msg_hdr = {.msg_name = (void *)server_sa(), .msg_namelen = server_len,
			     .msg_iov = &iov[2], .msg_iovlen = 1}},
	};
	char sent[128] = "", back[128];
	int fd = dial();

	memset(too_long, 0, sizeof(too_long));
	note_send("sendto the peer", sendto(fd, "peer.", 5, 0, server_sa(), server_len), "peer.",
		  sent);
	note_send("sendto another", sendto(fd, "other.", 6, 0, (struct sockaddr *)&other,
					   other_len), "other.", sent);
	note_send("sendto AF_UNSPEC", sendto(fd, "unspec.", 7, 0, &unspec, sizeof(unspec)),
		  "unspec.", sent);
	note_send("sendto a 1-byte address", sendto(fd, "one.", 4, 0, server_sa(), 1), "one.",
		  sent);
	note_rc("sendto an address too long", sendto(fd, "long.", 5, 0,
						     (struct sockaddr *)too_long,
						     sizeof(too_long)));
	note_send("sendmsg with msg_name", sendmsg(fd, &msg, 0), "msg.", sent);
	int n = sendmmsg(fd, mm, 2, 0);
	note_rc("sendmmsg with msg_name", n);
	note("sendmmsg msg_len: %u %u", n > 0 ? mm[0].msg_len : 0, n > 1 ? mm[1].msg_len : 0);
	if (n == 2)
		strcat(sent, "mm1.mm2.");
	note_send("sendto MSG_FASTOPEN", sendto(fd, "fo.", 3, MSG_FASTOPEN, server_sa(),
						server_len), "fo.", sent);
	note_send("sendto MSG_FASTOPEN AF_UNSPEC", sendto(fd, "fu.", 3, MSG_FASTOPEN, &unspec,
							  sizeof(unspec)), "fu.", sent);
	note_send("sendto MSG_FASTOPEN without an address", sendto(fd, "fn.", 3, MSG_FASTOPEN,
								  NULL, 0), "fn.", sent);
	note_names(fd);
	size_t len = strlen(sent);
	ssize_t r = read_all(fd, back, len);
	note("echoed: %zd of %zu bytes, %s", r, len,
	     r == (ssize_t)len && memcmp(back, sent, len) == 0 ? "as sent" : "not as sent");
	close(fd);
}

/* An unconnected socket: sendto with an address (without MSG_FASTOPEN) is no connect; it
 * fails as a send on it does. */
static void send_with_address_unconnected(const struct test_case *tc)
{
	(void)tc;
	struct iovec iov = {"x", 1};
	struct msghdr msg = {.msg_name = (void *)server_sa(), .msg_namelen = server_len,
			     .msg_iov = &iov, .msg_iovlen = 1};
	struct mmsghdr mm = {.msg_hdr = msg};
	int fd = tcp_socket(AF_INET, 0);

	note_rc("sendto MSG_NOSIGNAL", sendto(fd, "x", 1, MSG_NOSIGNAL, server_sa(), server_len));
	note_rc("sendto", sendto(fd, "x", 1, 0, server_sa(), server_len));
	note("SIGPIPE: %d", sigpipes);
	note_rc("sendmsg", sendmsg(fd, &msg, MSG_NOSIGNAL));
	note_rc("sendmmsg", sendmmsg(fd, &mm, 1, MSG_NOSIGNAL));
	note_names(fd);
	close(fd);
}

static void msg_peek(const struct test_case *tc)
{
	(void)tc;
	char buf[16] = {0};
	int fd = dial();

	wait_for_bytes(fd, 8);
	ssize_t n = recv(fd, buf, 4, MSG_PEEK);
	note("recv MSG_PEEK 4: %zd '%.4s'", n, buf);
	n = recv(fd, buf, sizeof(buf), MSG_PEEK);
	note("recv MSG_PEEK 16: %zd '%.8s'", n, buf);
	memset(buf, 0, sizeof(buf));
	n = read(fd, buf, sizeof(buf));
	note("read: %zd '%.8s'", n, buf);
	close(fd);
}

static void msg_waitall(const struct test_case *tc)
{
	struct stream_seen s;
	unsigned char buf[4096];
	int fd = dial();

	ssize_t n = recv(fd, buf, tc->size, MSG_WAITALL);
	note_rc("recv MSG_WAITALL", n);
	stream_start(&s);
	stream_add(&s, buf, n > 0 ? (size_t)n : 0);
	note_stream("received", &s);
	close(fd);
}

static void msg_dontwait(const struct test_case *tc)
{
	(void)tc;
	char c;
	int fd = dial();

	note_rc("recv MSG_DONTWAIT", recv(fd, &c, 1, MSG_DONTWAIT));
	note_echo(fd, "then");
	close(fd);
}

static void nonblocking_read(const struct test_case *tc)
{
	(void)tc;
	char c;
	int fd = dial();

	set_nonblocking(fd, true);
	note_rc("read", read(fd, &c, 1));
	close(fd);
}

/* The server holds still: non-blocking writes fill the buffers, then fail; the socket is
 * writable again once the server reads. */
static void nonblocking_write(const struct test_case *tc)
{
	(void)tc;
	size_t sent = 0;
	ssize_t n = 0;
	int fd = dial();

	set_nonblocking(fd, true);
	while (sent + (1u << 20) <= FLOOD && (n = write(fd, pattern + sent, 1u << 20)) >= 0)
		sent += (size_t)n;
	note_rc("writes until one fails", n < 0 ? -1 : 0);
	note("poll once the server reads: %s", events_text(poll_events(fd, POLLOUT, WAIT_MS)));
	close(fd);
}

static void so_rcvtimeo(const struct test_case *tc)
{
	struct timeval tv = {.tv_usec = TIMEOUT_MS * 1000}, got = {0};
	socklen_t len = sizeof(got);
	char c;
	int fd = tcp_socket(AF_INET, 0);

	if (tc->before_connect)
		note_rc("set", setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	connect_hello(fd);
	if (!tc->before_connect)
		note_rc("set", setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	note_rc("get", getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &got, &len));
	note("SO_RCVTIMEO: %ld.%06ld s", (long)got.tv_sec, (long)got.tv_usec);
	int64_t start = now_ms();
	note_rc("read", read(fd, &c, 1));
	note_timing("read waited", start, TIMEOUT_MS);
	close(fd);
}

/* The server holds still: a large write stops at the timeout with what it sent, and soon
 * one sends nothing and fails. (TCP may still find room for a little more at first.) */
static void so_sndtimeo(const struct test_case *tc)
{
	(void)tc;
	struct timeval tv = {.tv_usec = TIMEOUT_MS * 1000};
	int fd = dial();

	note_rc("set", setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	ssize_t n = write(fd, pattern, FLOOD);
	note("first write: %s", n > 0 && n < (ssize_t)FLOOD ? "partial" : "not partial");
	size_t sent = n > 0 ? (size_t)n : 0;
	int64_t start = now_ms();
	for (int i = 0; i < 10 && n > 0 && sent < FLOOD; i++) {
		start = now_ms();
		if ((n = write(fd, pattern + sent, FLOOD - sent)) > 0)
			sent += (size_t)n;
	}
	note_rc("writes until one fails", n < 0 ? -1 : 0);
	note_timing("the failing write waited", start, TIMEOUT_MS);
	close(fd);
}

static void fionread(const struct test_case *tc)
{
	char buf[64];
	int avail = -1, fd = dial();

	if (tc->size) {
		wait_for_bytes(fd, (int)tc->size);
		note("poll: %s", events_text(poll_events(fd, POLLIN, WAIT_MS)));
	}
	note_rc("FIONREAD", ioctl(fd, FIONREAD, &avail) < 0 ? -1 : avail);
	if (tc->size) {
		note_rc("read", read(fd, buf, 40));
		note_rc("FIONREAD after", ioctl(fd, FIONREAD, &avail) < 0 ? -1 : avail);
		note_rc("read the rest", read(fd, buf, tc->size - 40));
	}
	close(fd);
}

/* ---- client halves: readiness ---- */

/* What the case's mechanism says fd is ready for, in a given situation. */
static void readiness(const struct test_case *tc)
{
	static const char *const mechanism[] = {"poll", "select", "epoll"};
	int fd = dial();

	if (tc->shut_wr_first)
		note_rc("shutdown SHUT_WR", shutdown(fd, SHUT_WR));
	if (tc->after_peer_end)
		wait_peer_end(fd);
	int timeout = tc->at_once ? 0 : WAIT_MS;
	unsigned got = tc->watch == WATCH_SELECT ? select_events(fd, tc->events, timeout)
		       : tc->watch == WATCH_EPOLL ? epoll_events(fd, tc->events, timeout)
						   : poll_events(fd, tc->events, timeout);
	char asked[96], buf[16];
	snprintf(asked, sizeof(asked), "%s", events_text(tc->events));
	note("%s %s: %s", mechanism[tc->watch], asked, events_text(got));
	/* Closing with data unread would reset the connection (close_unread shows that). */
	if (tc->text)
		note_rc("read", read(fd, buf, sizeof(buf)));
	close(fd);
}

static void note_epoll_wait(const char *what, int ep, int timeout_ms)
{
	struct epoll_event got = {0};
	int n = epoll_wait(ep, &got, 1, timeout_ms);

	note("%s: %d %s", what, n, n == 1 ? events_text(got.events) : "-");
}

/* Level-triggered: reported while data waits, not after it was read. */
static void epoll_level(const struct test_case *tc)
{
	(void)tc;
	char buf[16];
	int fd = dial(), ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};

	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	wait_for_bytes(fd, 5);
	note_epoll_wait("epoll_wait", ep, WAIT_MS);
	note_epoll_wait("epoll_wait again", ep, 0);
	note_rc("read", read(fd, buf, sizeof(buf)));
	note_epoll_wait("epoll_wait after reading", ep, 0);
	close(ep);
	close(fd);
}

/* Edge-triggered: reported once per arrival. */
static void epoll_edge(const struct test_case *tc)
{
	(void)tc;
	char buf[16];
	int fd = dial(), ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET};

	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	note_epoll_wait("epoll_wait", ep, WAIT_MS);
	note_epoll_wait("epoll_wait again", ep, 0);
	note_rc("send", send(fd, "more", 4, 0));
	note_epoll_wait("epoll_wait after more came", ep, WAIT_MS);
	wait_for_bytes(fd, 10);
	note_rc("read", read(fd, buf, sizeof(buf)));
	close(ep);
	close(fd);
}

/* ---- client halves: descriptors ---- */

static void dup_close_original(const struct test_case *tc)
{
	(void)tc;
	int fd = dial(), d = dup(fd);

	note_rc("close original", close(fd));
	note_names(d);
	note_echo(d, "dup");
	close(d);
}

static void dup2_number(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note_rc("dup2", dup2(fd, 100));
	note_names(100);
	note_echo(100, "dup2");
	note_rc("close 100", close(100));
	note_echo(fd, "original");
	close(fd);
}

/* A close-on-exec duplicate: the flag on it alone, and the connection through it. */
static void check_cloexec_duplicate(int fd, int d)
{
	note_fd_flags(d);
	note_fd_flags(fd);
	note_names(d);
	close(fd);
	note_echo(d, "duplicate");
	close(d);
}

static void dup3_cloexec(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note_rc("dup3", dup3(fd, 101, O_CLOEXEC));
	check_cloexec_duplicate(fd, 101);
}

static void dupfd_cloexec(const struct test_case *tc)
{
	(void)tc;
	int fd = dial(), d = fcntl(fd, F_DUPFD_CLOEXEC, 200);

	note("F_DUPFD_CLOEXEC: at least 200: %d", d >= 200);
	check_cloexec_duplicate(fd, d);
}

/* close_range() ends the connection, and the number comes back clean. */
static void close_range_reuse(const struct test_case *tc)
{
	(void)tc;
	int fd = dial();

	note_echo(fd, "last");
	note_rc("close_range", close_range((unsigned)fd, (unsigned)fd, 0));
	int fresh = tcp_socket(AF_INET, 0);
	note("same number again: %d", fresh == fd);
	note_names(fresh);
	note_identity(fresh);
	close(fresh);
}

static void note_child(pid_t pid)
{
	int status = -1;

	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		die("%s: child", case_name);
	note("child exit: %d", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* A child uses the connection; the parent closes its copy first, or uses it after. */
static void fork_and_echo(bool parent_closes_first)
{
	int fd = dial(), go[2];
	char c;

	if (pipe(go) < 0)
		die("pipe");
	pid_t pid = fork();
	if (pid == 0) {
		close(go[1]);
		(void)!read(go[0], &c, 1); /* EOF: the parent is done with its copy */
		note_names(fd);
		note_echo(fd, "child");
		_exit(0);
	}
	close(go[0]);
	if (parent_closes_first)
		note_rc("parent closes", close(fd));
	close(go[1]);
	note_child(pid);
	if (!parent_closes_first) {
		note_echo(fd, "parent");
		close(fd);
	}
}

static void fork_child(const struct test_case *tc)
{
	(void)tc;
	fork_and_echo(false);
}

static void fork_parent_closes_first(const struct test_case *tc)
{
	(void)tc;
	fork_and_echo(true);
}

/* Duplicates made before connect() are the same socket: each sees the connection. */
static void duplicates_before_connect(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, 0), d = dup(fd), d2 = dup2(fd, 103);
	int d3 = fcntl(fd, F_DUPFD_CLOEXEC, 200);

	connect_hello(fd);
	note_names(d);
	note_echo(d, "dup");
	note_echo(d2, "dup2");
	note_echo(d3, "F_DUPFD_CLOEXEC");
	close(fd);
	note_echo(d, "after closing the original");
	close(d);
	close(d2);
	close(d3);
}

/* A duplicate closed before connect() leaves the socket alone again. */
static void duplicate_closed_before_connect(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, 0);

	note_rc("close the duplicate", close(dup(fd)));
	connect_hello(fd);
	note_names(fd);
	note_echo(fd, "alone");
	close(fd);
}

/* A child has the socket, made before fork(), that the parent connects. */
static void fork_before_connect(const struct test_case *tc)
{
	(void)tc;
	int fd = tcp_socket(AF_INET, 0), go[2];
	char c;

	if (pipe(go) < 0)
		die("pipe");
	pid_t pid = fork();
	if (pid == 0) {
		close(go[1]);
		(void)!read(go[0], &c, 1); /* EOF: the parent connected */
		note_names(fd);
		note_echo(fd, "child");
		_exit(0);
	}
	close(go[0]);
	connect_hello(fd);
	close(go[1]);
	note_child(pid);
	note_echo(fd, "parent");
	close(fd);
}

/* The connection passes through exec() to a program that only knows its number. */
static void exec_child(const struct test_case *tc)
{
	(void)tc;
	char number[16];
	int fd = dial();

	snprintf(number, sizeof(number), "%d", fd);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", "conform", "exec-child", number, case_name, (char *)NULL);
		_exit(127);
	}
	note_child(pid);
	note_echo(fd, "parent");
	close(fd);
}

static int run_exec_child(int fd)
{
	note_names(fd);
	note_echo(fd, "exec");
	return 0;
}

/* ---- server halves ---- */

static int accept_case(int listener, const struct test_case *tc);

/* Reads to EOF and notes what came; the end of most server halves. */
static void drain(int conn)
{
	struct stream_seen s;
	ssize_t last = read_stream(conn, &s, UINT64_MAX);

	note_stream("server read", &s);
	note_end("server read ended", last);
	close(conn);
}

static void serve_sink(int conn, const struct test_case *tc)
{
	(void)tc;
	drain(conn);
}

static void serve_echo(int conn, const struct test_case *tc)
{
	(void)tc;
	char buf[65536];
	long total = 0;
	ssize_t n;

	while ((n = read_some(conn, buf, sizeof(buf))) > 0 && write_all(conn, buf, (size_t)n) > 0)
		total += n;
	note("server echoed: %ld bytes", total);
	note_end("server echo ended", n);
	close(conn);
}

static void serve_close(int conn, const struct test_case *tc)
{
	(void)tc;
	note_rc("server close", close(conn));
}

static void serve_abort(int conn, const struct test_case *tc)
{
	(void)tc;
	struct linger abort_on_close = {.l_onoff = 1, .l_linger = 0}, got = {0};
	socklen_t len = sizeof(got);

	note_rc("server SO_LINGER", setsockopt(conn, SOL_SOCKET, SO_LINGER, &abort_on_close,
					       sizeof(abort_on_close)));
	getsockopt(conn, SOL_SOCKET, SO_LINGER, &got, &len);
	note("server SO_LINGER reads: onoff=%d linger=%d", got.l_onoff, got.l_linger);
	note_rc("server close", close(conn));
}

/* Sends the case's text, or size bytes of the pattern, then reads to EOF. */
static void serve_send(int conn, const struct test_case *tc)
{
	if (tc->text)
		note_rc("server send", write_all(conn, tc->text, strlen(tc->text)));
	else
		note_rc("server send", write_all(conn, pattern, tc->size));
	drain(conn);
}

static void serve_shut_wr(int conn, const struct test_case *tc)
{
	(void)tc;
	note_rc("server shutdown SHUT_WR", shutdown(conn, SHUT_WR));
	drain(conn);
}

/* Reads to the client's end, notes TCP_INFO's state, answers, closes. */
static void serve_tcp_info_end(int conn, const struct test_case *tc)
{
	(void)tc;
	struct stream_seen s;
	ssize_t last = read_stream(conn, &s, UINT64_MAX);

	note_end("server read ended", last);
	note_tcp_state("server TCP_INFO after the client's end", conn);
	note_rc("server answer", write_all(conn, "eof seen", 8));
	sleep_ms(HOLD_MS); /* the client looks at its state before this end comes */
	close(conn);
}

static void serve_shut_rd(int conn, const struct test_case *tc)
{
	(void)tc;
	char c;

	note_rc("server shutdown SHUT_RD", shutdown(conn, SHUT_RD));
	note_rc("server read", read(conn, &c, 1));
	note_rc("server send", send(conn, "r", 1, MSG_NOSIGNAL));
	/* Long enough for the client's send to come while the socket is still open. */
	sleep_ms(300);
	close(conn);
}

static void serve_answer(int conn, const struct test_case *tc)
{
	(void)tc;
	struct stream_seen s;
	ssize_t last = read_stream(conn, &s, UINT64_MAX);

	note("server read: %llu bytes", (unsigned long long)s.count);
	note_end("server read ended", last);
	note_rc("server answer", write_all(conn, "answer", 6));
	close(conn);
}

/* Leaves the connection alone for a while, so that what the client sees meanwhile does not
 * race with the server's answer, then reads it all; how much came depends on the buffers,
 * so only the pattern is noted. */
static void serve_hold(int conn, const struct test_case *tc)
{
	(void)tc;
	struct stream_seen s;

	sleep_ms(HOLD_MS);
	ssize_t last = read_stream(conn, &s, UINT64_MAX);
	note("server read after holding: pattern %s", s.intact ? "intact" : "broken");
	note_end("server read ended", last);
	close(conn);
}

/* Three pieces of the pattern, a little apart. */
static void serve_pieces(int conn, const struct test_case *tc)
{
	size_t piece = tc->size / 3;

	for (int i = 0; i < 3; i++) {
		if (write_all(conn, pattern + (size_t)i * piece, piece) < 0)
			note_rc("server send", -1);
		sleep_ms(30);
	}
	drain(conn);
}

static void serve_edge(int conn, const struct test_case *tc)
{
	(void)tc;
	char buf[4];

	note_rc("server send", write_all(conn, "first", 5));
	note_rc("server read", read_all(conn, buf, sizeof(buf)));
	note_rc("server send again", write_all(conn, "again", 5));
	drain(conn);
}

static void serve_flags(int conn, const struct test_case *tc)
{
	note_fd_flags(conn);
	serve_echo(conn, tc);
}

/* What a connection inherits from the listener (TCP_NODELAY and SO_KEEPALIVE set there). */
static void serve_identity(int conn, const struct test_case *tc)
{
	note_identity(conn);
	note("inherited: TCP_NODELAY=%d SO_KEEPALIVE=%d", get_int(conn, IPPROTO_TCP, TCP_NODELAY),
	     get_int(conn, SOL_SOCKET, SO_KEEPALIVE));
	serve_echo(conn, tc);
}

static void serve_dup(int conn, const struct test_case *tc)
{
	int d = dup(conn);

	note_rc("server close original", close(conn));
	serve_echo(d, tc);
}

/* A child echoes the first message, then the parent echoes the rest. */
static void serve_fork(int conn, const struct test_case *tc)
{
	pid_t pid = fork();

	if (pid == 0) {
		char buf[64];
		ssize_t n = read(conn, buf, sizeof(buf));
		_exit(n > 0 && write_all(conn, buf, (size_t)n) == n ? 0 : 1);
	}
	note_child(pid);
	serve_echo(conn, tc);
}

/* The client disconnects (connect(AF_UNSPEC)) once it has the server's word, then connects
 * again on the same socket. */
static void serve_reconnect(int conn, const struct test_case *tc)
{
	note_rc("server send", write_all(conn, "ready", 5));
	drain(conn);
	if (poll_events(server_listener, POLLIN, WAIT_MS) & POLLIN)
		serve_echo(accept_case(server_listener, tc), tc);
	else
		note("no connection again");
}

/* ---- the cases ---- */

#define OPTION(n, lvl, opt, v, ...)                                                               \
	{.name = n, .client = option_round_trip, .server = serve_echo, .level = lvl,              \
	 .option = opt, .value = v, __VA_ARGS__}
#define READINESS(n, serve, w, ev, ...)                                                           \
	{.name = n, .client = readiness, .server = serve, .watch = w, .events = ev, __VA_ARGS__}
#define SERVED(n, c, s, ...) {.name = n, .client = c, .server = s, __VA_ARGS__}

static const struct test_case cases[] = {
	/* before connecting, and connecting */
	{.name = "names_before_connect", .client = names_before_connect},
	{.name = "io_before_connect", .client = io_before_connect},
	{.name = "send_with_address_unconnected", .client = send_with_address_unconnected},
	{.name = "connect_refused", .client = connect_refused},
	{.name = "connect_refused_nonblocking", .client = connect_refused_nonblocking},
	{.name = "connect_no_accept", .client = connect_no_accept},
	SERVED("connect_blocking", connect_blocking, serve_echo),
	SERVED("connect_nonblocking_poll", connect_nonblocking_poll, serve_echo),
	SERVED("connect_nonblocking_select", connect_nonblocking_select, serve_echo),
	SERVED("connect_epoll_before", connect_epoll_before, serve_echo),
	SERVED("connect_twice", connect_twice, serve_echo),
	SERVED("connect_af_unspec", connect_af_unspec, serve_reconnect),
	SERVED("connect_v4mapped", connect_v4mapped, serve_echo),
	{.name = "connect_v4mapped_v6only", .client = connect_v4mapped_v6only},
	{.name = "connect_other_family", .client = connect_other_family},
	SERVED("connect_bound_port", connect_bound_port, serve_echo),
	SERVED("socket_flags_survive", socket_flags_survive, serve_echo),
	SERVED("names_stable", names_stable, serve_echo),
	SERVED("getpeername_short_buffer", getpeername_short_buffer, serve_echo),
	SERVED("tcp_info_state", tcp_info_state, serve_echo),
	SERVED("tcp_info_peer_closed", tcp_info_peer_closed, serve_close),
	SERVED("tcp_info_half_close", tcp_info_half_close, serve_tcp_info_end),

	/* options: the default, setting, reading back */
	OPTION("tcp_nodelay", IPPROTO_TCP, TCP_NODELAY, 1),
	OPTION("tcp_nodelay_before_connect", IPPROTO_TCP, TCP_NODELAY, 1, .before_connect = true),
	OPTION("so_keepalive", SOL_SOCKET, SO_KEEPALIVE, 1),
	OPTION("so_keepalive_before_connect", SOL_SOCKET, SO_KEEPALIVE, 1, .before_connect = true),
	OPTION("tcp_keepidle", IPPROTO_TCP, TCP_KEEPIDLE, 30),
	OPTION("tcp_keepidle_zero", IPPROTO_TCP, TCP_KEEPIDLE, 0),
	OPTION("tcp_keepintvl", IPPROTO_TCP, TCP_KEEPINTVL, 7),
	OPTION("tcp_keepcnt", IPPROTO_TCP, TCP_KEEPCNT, 5),
	OPTION("tcp_keepcnt_too_big", IPPROTO_TCP, TCP_KEEPCNT, 200),
	OPTION("tcp_user_timeout", IPPROTO_TCP, TCP_USER_TIMEOUT, 1500),
	OPTION("tcp_notsent_lowat", IPPROTO_TCP, TCP_NOTSENT_LOWAT, 16384),
	OPTION("ip_tos", IPPROTO_IP, IP_TOS, 0x10),
	OPTION("ip_ttl", IPPROTO_IP, IP_TTL, 33),
	OPTION("so_reuseaddr", SOL_SOCKET, SO_REUSEADDR, 1),
	OPTION("so_rcvbuf", SOL_SOCKET, SO_RCVBUF, 65536),
	OPTION("so_sndbuf", SOL_SOCKET, SO_SNDBUF, 65536),
	OPTION("so_priority", SOL_SOCKET, SO_PRIORITY, 3),
	OPTION("so_rcvlowat", SOL_SOCKET, SO_RCVLOWAT, 10),
	SERVED("so_linger", so_linger_round_trip, serve_echo),
	SERVED("fcntl_nonblock", fcntl_round_trip, serve_echo, .value = O_NONBLOCK),
	SERVED("fcntl_cloexec", fcntl_round_trip, serve_echo, .value = FD_CLOEXEC),

	/* shutdown, and the end of a connection */
	SERVED("shut_rd", shutdown_then_io, serve_sink, .how = SHUT_RD),
	SERVED("shut_rdwr", shutdown_then_io, serve_sink, .how = SHUT_RDWR),
	SERVED("shutdown_bad_how", shutdown_then_io, serve_sink, .how = 7),
	SERVED("shut_wr_half_close", half_close, serve_answer),
	SERVED("peer_shut_rd", peer_shut_rd, serve_shut_rd),
	SERVED("peer_close_read", peer_close_read, serve_close),
	SERVED("msg_nosignal_after_peer_close", send_after_peer_close, serve_close,
	       .send_flags = MSG_NOSIGNAL),
	SERVED("sigpipe_after_peer_close", send_after_peer_close, serve_close),
	SERVED("abortive_close", abortive_close, serve_abort),
	SERVED("close_unread", close_unread, serve_send, .text = "unread"),

	/* data */
	SERVED("write_16mib", write_big, serve_sink),
	SERVED("read_16mib", read_big, serve_send, .size = BIG),
	SERVED("readv_writev", readv_writev, serve_echo),
	SERVED("sendmsg_recvmsg", sendmsg_recvmsg, serve_echo),
	SERVED("send_with_address", send_with_address, serve_echo),
	SERVED("sendfile_file", sendfile_file, serve_sink),
	SERVED("splice_to_socket", splice_to_socket, serve_sink, .size = SPLICE_SIZE),
	SERVED("splice_from_socket", splice_from_socket, serve_send, .size = SPLICE_SIZE),
	SERVED("send_zero_bytes", send_zero, serve_echo),
	SERVED("msg_peek", msg_peek, serve_send, .text = "peekaboo"),
	SERVED("msg_waitall", msg_waitall, serve_pieces, .size = 3000),
	SERVED("msg_dontwait", msg_dontwait, serve_echo),
	SERVED("nonblocking_read", nonblocking_read, serve_echo),
	SERVED("nonblocking_write", nonblocking_write, serve_hold),
	SERVED("so_rcvtimeo", so_rcvtimeo, serve_echo),
	SERVED("so_rcvtimeo_before_connect", so_rcvtimeo, serve_echo, .before_connect = true),
	SERVED("so_sndtimeo", so_sndtimeo, serve_hold),
	SERVED("fionread", fionread, serve_send, .size = 100),
	SERVED("fionread_empty", fionread, serve_sink),

	/* readiness */
	READINESS("poll_in", serve_send, WATCH_POLL, POLLIN, .text = "ready"),
	READINESS("poll_out", serve_sink, WATCH_POLL, POLLOUT),
	READINESS("poll_rdhup", serve_shut_wr, WATCH_POLL, POLLIN | POLLRDHUP),
	READINESS("poll_peer_closed", serve_close, WATCH_POLL, POLLIN | POLLOUT | POLLRDHUP,
		  .after_peer_end = true, .at_once = true),
	READINESS("poll_hup", serve_sink, WATCH_POLL, POLLIN | POLLRDHUP, .shut_wr_first = true),
	READINESS("poll_out_after_shut_wr", serve_hold, WATCH_POLL, POLLOUT,
		  .shut_wr_first = true, .at_once = true),
	READINESS("select_in", serve_send, WATCH_SELECT, POLLIN, .text = "ready"),
	READINESS("select_out", serve_sink, WATCH_SELECT, POLLOUT),
	READINESS("select_peer_closed", serve_close, WATCH_SELECT, POLLIN,
		  .after_peer_end = true, .at_once = true),
	READINESS("epoll_out", serve_sink, WATCH_EPOLL, EPOLLOUT),
	READINESS("epoll_rdhup", serve_shut_wr, WATCH_EPOLL, EPOLLIN | EPOLLRDHUP),
	READINESS("epoll_peer_closed", serve_close, WATCH_EPOLL, EPOLLIN | EPOLLOUT | EPOLLRDHUP,
		  .after_peer_end = true, .at_once = true),
	READINESS("epoll_hup", serve_sink, WATCH_EPOLL, EPOLLIN | EPOLLRDHUP,
		  .shut_wr_first = true),
	SERVED("epoll_level", epoll_level, serve_send, .text = "ready"),
	SERVED("epoll_edge", epoll_edge, serve_edge),

	/* descriptors */
	SERVED("dup_close_original", dup_close_original, serve_echo),
	SERVED("dup2_number", dup2_number, serve_echo),
	SERVED("dup3_cloexec", dup3_cloexec, serve_echo),
	SERVED("dupfd_cloexec", dupfd_cloexec, serve_echo),
	SERVED("close_range_reuse", close_range_reuse, serve_echo),
	SERVED("duplicates_before_connect", duplicates_before_connect, serve_echo),
	SERVED("duplicate_closed_before_connect", duplicate_closed_before_connect, serve_echo),
	SERVED("fork_before_connect", fork_before_connect, serve_echo),
	SERVED("fork_child", fork_child, serve_echo),
	SERVED("fork_parent_closes_first", fork_parent_closes_first, serve_echo),
	SERVED("exec_inherits", exec_child, serve_echo),

	/* the accepting side */
	SERVED("accept_flags", connect_blocking, serve_flags),
	SERVED("accept4_flags", connect_blocking, serve_flags, .accept_how = ACCEPT4_FLAGS),
	SERVED("accept_nonblocking_listener", connect_blocking, serve_flags,
	       .accept_how = ACCEPT_NONBLOCKING_LISTENER),
	SERVED("accept_no_address", connect_blocking, serve_echo, .accept_how = ACCEPT_NO_ADDRESS),
	SERVED("accept_short_address", connect_blocking, serve_echo,
	       .accept_how = ACCEPT_SHORT_ADDRESS),
	SERVED("accepted_identity", connect_blocking, serve_identity),
	SERVED("accepted_dup", connect_blocking, serve_dup),
	SERVED("accepted_fork", connect_blocking, serve_fork),
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* ---- the two sides ---- */

static void hung(int sig)
{
	static const char msg[] = " timed out\n";

	(void)sig;
	(void)!write(1, case_name, strlen(case_name));
	(void)!write(1, msg, sizeof(msg) - 1);
	_exit(1);
}

static void count_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

static int listen_on(int port, bool with_options)
{
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, s = tcp_socket(AF_INET, 0);

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Accepted connections inherit these (accepted_identity). */
	if (with_options && (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
			     setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0))
		die("listener options");
	if (bind(s, (struct sockaddr *)&any, sizeof(any)) < 0 || listen(s, 16) < 0)
		die("listen on port %d", port);
	return s;
}

static int accept_as(int listener, enum accept_how how, struct sockaddr_storage *addr,
		     socklen_t *len)
{
	int conn;

	switch (how) {
	case ACCEPT4_FLAGS:
		return accept4(listener, (struct sockaddr *)addr, len,
			       SOCK_NONBLOCK | SOCK_CLOEXEC);
	case ACCEPT_NONBLOCKING_LISTENER:
		set_nonblocking(listener, true);
		poll_events(listener, POLLIN, WAIT_MS);
		conn = accept(listener, (struct sockaddr *)addr, len);
		set_nonblocking(listener, false);
		return conn;
	case ACCEPT_NO_ADDRESS:
		return accept(listener, NULL, NULL);
	case ACCEPT_SHORT_ADDRESS:
		*len = 4;
		return accept(listener, (struct sockaddr *)addr, len);
	default:
		return accept(listener, (struct sockaddr *)addr, len);
	}
}

/* The case a connection's hello names, or NULL. */
static const struct test_case *case_named(const char *name)
{
	for (size_t i = 0; i < N_CASES; i++)
		if (strncmp(cases[i].name, name, sizeof(((struct hello *)0)->name)) == 0)
			return &cases[i];
	return NULL;
}

/* Accepts the case's connection and reads its hello. A connection from a case that serves
 * none is one TCP would have refused: it is noted and closed. */
static int accept_hello(int listener, const struct test_case *tc, struct sockaddr_storage *addr,
			socklen_t *len, struct hello *h)
{
	for (;;) {
		memset(addr, 0, sizeof(*addr));
		*len = sizeof(*addr);
		int conn = accept_as(listener, tc->accept_how, addr, len);
		if (conn < 0)
			die("%s: accept", tc->name);
		served++;
		if (read_all(conn, h, sizeof(*h)) != (ssize_t)sizeof(*h))
			die("%s: no hello", tc->name);
		if (strncmp(h->name, tc->name, sizeof(h->name)) == 0)
			return conn;
		const struct test_case *from = case_named(h->name);
		if (!from || from->server)
			die("%s: the client is at another case", tc->name);
		note("a connection from %s, which TCP refused", from->name);
		close(conn);
	}
}

/* Accepts the case's connection and checks its hello: the same case, and the client's view
 * of the two addresses the same as the server's, the other way round. */
static int accept_case(int listener, const struct test_case *tc)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	struct hello h;
	char local[64], peer[64], accepted[64], local_text[80], peer_text[80];

	int conn = accept_hello(listener, tc, &addr, &len, &h);
	name_text(conn, getsockname, true, local, sizeof(local));
	name_text(conn, getpeername, true, peer, sizeof(peer));
	if (tc->accept_how == ACCEPT_NO_ADDRESS) {
		snprintf(accepted, sizeof(accepted), "not asked");
	} else if (tc->accept_how == ACCEPT_SHORT_ADDRESS) {
		snprintf(accepted, sizeof(accepted), "length %u, family %d", len, addr.ss_family);
	} else {
		endpoint_text(&addr, accepted, sizeof(accepted));
		snprintf(accepted, sizeof(accepted), "%s",
			 strcmp(accepted, peer) == 0 ? "getpeername's" : "another");
	}
	note("accepted: peer=%s local=%s, the client agrees: %s, accept's address: %s",
	     name_text(conn, getpeername, false, peer_text, sizeof(peer_text)),
	     name_text(conn, getsockname, false, local_text, sizeof(local_text)),
	     strcmp(peer, h.local) == 0 && strcmp(local, h.peer) == 0 ? "yes" : "no", accepted);
	return conn;
}

static void run_server(int port)
{
	int listener = listen_on(port, true), idle = listen_on(port + 2, false);

	server_listener = listener;
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < N_CASES; i++) {
		const struct test_case *tc = &cases[i];
		if (!tc->server)
			continue;
		case_name = tc->name;
		alarm(CASE_SECONDS);
		tc->server(accept_case(listener, tc), tc);
	}
	alarm(0);
	case_name = "-";
	note("connections served: %d", served);
	close(idle);
	close(listener);
}

static void run_client(const char *host, int port)
{
	struct sigaction sa = {.sa_handler = count_sigpipe};

	snprintf(server_host, sizeof(server_host), "%s", host);
	server_port = port;
	server_len = parse_addr(host, port, &server_addr);
	sigaction(SIGPIPE, &sa, NULL);
	for (size_t i = 0; i < N_CASES; i++) {
		case_name = cases[i].name;
		sigpipes = 0;
		alarm(CASE_SECONDS);
		cases[i].client(&cases[i]);
	}
	alarm(0);
	case_name = "-";
	note("cases: %zu", N_CASES);
}

static void read_ephemeral_range(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	if (!f || fscanf(f, "%d %d", &ephemeral_first, &ephemeral_last) != 2)
		die("ip_local_port_range");
	fclose(f);
}

int main(int argc, char **argv)
{
	read_ephemeral_range();
	signal(SIGALRM, hung);
	if (argc == 4 && strcmp(argv[1], "exec-child") == 0) {
		case_name = argv[3];
		return run_exec_child(atoi(argv[2]));
	}
	pattern = malloc(FLOOD);
	if (!pattern)
		die("malloc");
	for (size_t i = 0; i < FLOOD; i++)
		pattern[i] = pattern_byte(i);
	if (argc == 3 && strcmp(argv[1], "server") == 0)
		run_server(atoi(argv[2]));
	else if (argc == 4 && strcmp(argv[1], "client") == 0)
		run_client(argv[2], atoi(argv[3]));
	else
		die("usage: conform server PORT | conform client HOST PORT");
	return 0;
}
