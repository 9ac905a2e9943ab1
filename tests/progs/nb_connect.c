/* Connects to a server that accepts late, the way an event loop does, and checks that the
 * loop never stalls and that the socket tells the truth, as TCP's does (issue 16, items 4
 * and 7).
 *
 *   nb_connect MODE HOST PORT EXPECT
 *
 * MODE, each with a 10 ms timerfd ticking in the same loop:
 *   epoll, epoll-et      non-blocking connect(), then the socket added to epoll (EPOLLOUT,
 *                        level- or edge-triggered)
 *   epoll-early          added to epoll (edge-triggered) before connect(), as Boost.Asio does
 *   poll, select         non-blocking connect(), then poll() or select()
 *   close-reuse          non-blocking connect(), close(), and a file opened on the same
 *                        number must stay that file
 *   sig-intr             blocking connect() with a SIGALRM handler without SA_RESTART after
 *                        300 ms: EINTR, and the connection goes on (poll says when)
 *   sig-restart          blocking connect() through SIGALRM every 2 ms, SA_RESTART: it
 *                        returns once connected
 * EXPECT: 0 (connected: the next connect() says 0, then EISCONN, and a line is echoed) or
 * the errno name SO_ERROR must give (ECONNREFUSED, ETIMEDOUT).
 * A non-blocking connect() must return within 100 ms and the loop must see no gap of 100 ms
 * between its wakeups. Prints one line of figures and exits 0, or "FAIL: ..." and 1. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define TICK_MS 10
#define STALL_MS 100
#define WAIT_MS 15000

static struct sockaddr_storage dst;
static socklen_t dlen;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int expected_errno(const char *name)
{
	static const struct {
		const char *name;
		int err;
	} known[] = {{"0", 0}, {"ECONNREFUSED", ECONNREFUSED}, {"ETIMEDOUT", ETIMEDOUT}};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(name, known[i].name))
			return known[i].err;
	die("unknown EXPECT %s", name);
}

static void expect_errno(int rc, int err, const char *what)
{
	if (rc != -1 || errno != err)
		die("%s: want errno %d (%s), got rc %d", what, err, strerror(err), rc);
}

static int so_error(int s)
{
	int err = -1;
	socklen_t len = sizeof(err);

	if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		die("getsockopt SO_ERROR");
	return err;
}

/* What TCP says about a socket whose connect is under way. */
static void check_connecting(int s)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	expect_errno(getpeername(s, (struct sockaddr *)&peer, &len), ENOTCONN,
		     "getpeername while connecting");
	if (so_error(s) != 0)
		die("SO_ERROR while connecting is not 0");
	if (fcntl(s, F_GETFL) & O_NONBLOCK)
		expect_errno(connect(s, (struct sockaddr *)&dst, dlen), EALREADY,
			     "a second connect while connecting");
}

static int timer_every(int ms)
{
	int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec every = {.it_interval = {0, ms * 1000000L}, .it_value = {0, ms * 1000000L}};

	if (t < 0 || timerfd_settime(t, 0, &every, NULL) < 0)
		die("timerfd");
	return t;
}

struct loop {
	const char *mode;
	int s, timer, ep;
	long ticks;
	double last, gap;
};

static void tick(struct loop *l)
{
	uint64_t n;
	double t = now_ms();

	if (read(l->timer, &n, sizeof(n)) == sizeof(n))
		l->ticks += (long)n;
	if (t - l->last > l->gap)
		l->gap = t - l->last;
	l->last = t;
}

/* One wait of the loop; true once the socket is writable (or failed). */
static bool wait_once(struct loop *l)
{
	bool out = false, timer = false;

	if (!strncmp(l->mode, "epoll", 5)) {
		struct epoll_event ev[2];
		int n = epoll_wait(l->ep, ev, 2, 1000);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd == l->s && (ev[i].events & (EPOLLOUT | EPOLLERR)))
				out = true;
			timer |= ev[i].data.fd == l->timer;
		}
	} else if (!strcmp(l->mode, "select")) {
		fd_set w, r;
		struct timeval tv = {.tv_sec = 1};
		FD_ZERO(&w);
		FD_ZERO(&r);
		FD_SET(l->s, &w);
		FD_SET(l->timer, &r);
		if (select((l->s > l->timer ? l->s : l->timer) + 1, &r, &w, NULL, &tv) < 0)
			die("select");
		out = FD_ISSET(l->s, &w);
		timer = FD_ISSET(l->timer, &r);
	} else {
		struct pollfd p[2] = {{.fd = l->s, .events = POLLOUT}, {.fd = l->timer, .events = POLLIN}};
		if (poll(p, 2, 1000) < 0)
			die("poll");
		out = p[0].revents != 0;
		timer = p[1].revents != 0;
	}
	if (timer)
		tick(l);
	return out;
}

static void add_to_epoll(struct loop *l, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = l->s};

	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->s, &ev) < 0)
		die("epoll_ctl ADD");
}

/* Non-blocking connect() in an event loop; returns when the socket is writable, after
 * how long in *waited. */
static void event_loop_connect(struct loop *l, double *took, double *waited)
{
	struct epoll_event tev = {.events = EPOLLIN, .data.fd = l->timer};
	uint32_t et = strcmp(l->mode, "epoll") ? EPOLLET : 0;

	if ((l->ep = epoll_create1(0)) < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->timer, &tev) < 0)
		die("epoll");
	if (!strcmp(l->mode, "epoll-early"))
		add_to_epoll(l, EPOLLOUT | et);
	double t0 = now_ms();
	int rc = connect(l->s, (struct sockaddr *)&dst, dlen);
	*took = now_ms() - t0;
	if (rc == 0 || errno != EINPROGRESS)
		die("non-blocking connect returned %d, not EINPROGRESS", rc);
	if (*took > STALL_MS)
		die("the loop stalled: non-blocking connect() took %.1f ms", *took);
	check_connecting(l->s);
	if (!strcmp(l->mode, "epoll") || !strcmp(l->mode, "epoll-et"))
		add_to_epoll(l, EPOLLOUT | et);
	l->last = now_ms();
	while (!wait_once(l))
		if (now_ms() - t0 > WAIT_MS)
			die("not writable after %d ms", WAIT_MS);
	*waited = now_ms() - t0;
	tick(l); /* the gap up to now counts too */
}

static void echo_line(int s)
{
	static const char msg[] = "across the siblings\n";
	char buf[sizeof(msg)];
	size_t got = 0;
	ssize_t n;

	fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
	if (write(s, msg, sizeof(msg) - 1) != sizeof(msg) - 1 || shutdown(s, SHUT_WR) < 0)
		die("write");
	while (got < sizeof(msg) - 1 && (n = read(s, buf + got, sizeof(msg) - 1 - got)) > 0)
		got += (size_t)n;
	if (got != sizeof(msg) - 1 || memcmp(buf, msg, got))
		die("the echo differs (%zu bytes back)", got);
}

/* The connection, once made: as TCP's, a connect() after one that did not say 0 says 0,
 * the next EISCONN. */
static void check_connected(int s, bool said_zero)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	if (!said_zero && connect(s, (struct sockaddr *)&dst, dlen) != 0)
		die("the first connect() once connected did not say 0");
	expect_errno(connect(s, (struct sockaddr *)&dst, dlen), EISCONN, "connect() after that");
	if (getpeername(s, (struct sockaddr *)&peer, &len) < 0 || len != dlen ||
	    memcmp(&peer, &dst, dlen))
		die("getpeername is not the address connected to");
	echo_line(s);
}

static void event_loop(const char *mode, int expect)
{
	struct loop l = {.mode = mode, .timer = timer_every(TICK_MS)};
	double took, waited;

	l.s = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (l.s < 0)
		die("socket");
	event_loop_connect(&l, &took, &waited);
	int err = so_error(l.s);
	if (err != expect)
		die("SO_ERROR %d (%s), want %d", err, strerror(err), expect);
	if (took > STALL_MS || l.gap > STALL_MS)
		die("the loop stalled: connect() took %.1f ms, largest gap %.1f ms", took, l.gap);
	if (!expect)
		check_connected(l.s, false);
	printf("%s: connect() returned in %.1f ms; writable after %.0f ms, %ld ticks meanwhile, "
	       "largest gap %.1f ms; SO_ERROR %s\n",
	       mode, took, waited, l.ticks, l.gap, expect ? strerror(err) : "0, echo ok");
}

/* close() while the connect is pending: a file that takes the number stays that file. */
static void close_reuse(void)
{
	char path[64];
	struct stat before, after;
	char buf[16] = "";
	int s = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);

	double t0 = now_ms();
	if (connect(s, (struct sockaddr *)&dst, dlen) == 0 || errno != EINPROGRESS)
		die("non-blocking connect did not say EINPROGRESS");
	double took = now_ms() - t0;
	if (took > STALL_MS)
		die("connect() took %.1f ms", took);
	close(s);
	snprintf(path, sizeof(path), "/tmp/nb_connect.%d", (int)getpid());
	int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f != s)
		die("the file got fd %d, not the closed socket's %d", f, s);
	if (write(f, "before", 6) != 6 || fstat(f, &before) < 0)
		die("write to the file");
	sleep(3); /* past the server's accept and the connect-timeout */
	if (fstat(f, &after) < 0 || !S_ISREG(after.st_mode) || after.st_ino != before.st_ino ||
	    write(f, "after", 5) != 5 || pread(f, buf, 11, 0) != 11 || strcmp(buf, "beforeafter"))
		die("fd %d is no longer the file opened on it", f);
	unlink(path);
	printf("close-reuse: connect() returned in %.1f ms; fd %d, closed and reopened on a file, "
	       "still the file 3 s later\n", took, f);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* A blocking connect() with a signal handler: interrupted (EINTR) and going on, or
 * restarted through a storm of signals. */
static void blocking_signals(bool restart)
{
	struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = restart ? SA_RESTART : 0};
	struct itimerval when = {.it_value = {0, restart ? 2000 : 300000}},
			 off = {{0, 0}, {0, 0}};
	int s = socket(dst.ss_family, SOCK_STREAM, 0);

	if (restart)
		when.it_interval = when.it_value;
	if (s < 0 || sigaction(SIGALRM, &sa, NULL) < 0 || setitimer(ITIMER_REAL, &when, NULL) < 0)
		die("set-up");
	double t0 = now_ms();
	int rc = connect(s, (struct sockaddr *)&dst, dlen);
	int saved = errno;
	double took = now_ms() - t0;
	setitimer(ITIMER_REAL, &off, NULL);
	errno = saved;
	if (restart) {
		if (rc < 0)
			die("connect through %d signals (SA_RESTART)", (int)alarms);
	} else {
		expect_errno(rc, EINTR, "blocking connect interrupted by a handler");
		check_connecting(s);
		struct pollfd p = {.fd = s, .events = POLLOUT};
		if (poll(&p, 1, WAIT_MS) != 1 || so_error(s) != 0)
			die("no POLLOUT, or an error, after the interrupted connect");
	}
	double done = now_ms() - t0;
	check_connected(s, rc == 0);
	printf("%s: connect() returned %s after %.0f ms (%d signals), connected after %.0f ms, "
	       "echo ok\n",
	       restart ? "sig-restart" : "sig-intr", rc ? "EINTR" : "0", took, (int)alarms, done);
}

int main(int argc, char **argv)
{
	if (argc != 5)
		die("usage: nb_connect MODE HOST PORT EXPECT");
	const char *mode = argv[1];
	dlen = parse_addr(argv[2], atoi(argv[3]), &dst);
	int expect = expected_errno(argv[4]);

	if (!strcmp(mode, "close-reuse"))
		close_reuse();
	else if (!strncmp(mode, "sig-", 4))
		blocking_signals(!strcmp(mode, "sig-restart"));
	else
		event_loop(mode, expect);
	return 0;
}
