/* An echo server that waits for connections in the way MODE says, so that each way a
 * listener can wake up is exercised: block (accept), poll, select, epoll-lt, epoll-et
 * (edge-triggered listener and connections, non-blocking, accept4 until EAGAIN). The
 * listener has TCP_NODELAY set, which every accepted connection must show too.
 *
 *   echo_server MODE PORT [BIND_ADDR [COUNT]]
 *
 * Serves COUNT connections (default 1), echoing each until EOF, then prints one line per
 * connection: "accepted local=A peer=B bytes=N". */
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#include "progs.h"

static int make_listener(const char *bind_addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(bind_addr, port, &ss);
	int one = 1;
	int s = socket(ss.ss_family, SOCK_STREAM, 0);

	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&ss, len) < 0 || listen(s, 64) < 0)
		die("listen on %s:%d", bind_addr, port);
	return s;
}

/* Echoes a blocking connection until EOF; returns the byte count. */
static long echo_blocking(int c)
{
	char buf[65536];
	long total = 0;
	ssize_t n;

	while ((n = read(c, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(c, buf + off, (size_t)(n - off));
			if (w < 0)
				die("write");
			off += w;
		}
		total += n;
	}
	if (n < 0)
		die("read");
	return total;
}

static void finish(int c, long bytes)
{
	char what[64];
	int nodelay = 0;
	socklen_t len = sizeof(nodelay);

	if (getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) < 0 || nodelay != 1)
		die("the accepted connection did not inherit the listener's TCP_NODELAY");
	snprintf(what, sizeof(what), "accepted bytes=%ld", bytes);
	print_names(what, c);
	close(c);
}

static void wait_readable(const char *mode, int s)
{
	if (!strcmp(mode, "poll")) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, 30000) != 1)
			die("poll on the listener");
	} else if (!strcmp(mode, "select")) {
		fd_set r;
		struct timeval tv = {.tv_sec = 30};
		FD_ZERO(&r);
		FD_SET(s, &r);
		if (select(s + 1, &r, NULL, NULL, &tv) != 1)
			die("select on the listener");
	}
}

/* One connection at a time: block, poll, select. */
static void serve_sequential(const char *mode, int s, int count)
{
	for (int i = 0; i < count; i++) {
		wait_readable(mode, s);
		int c = accept(s, NULL, NULL);
		if (c < 0)
			die("accept");
		finish(c, echo_blocking(c));
	}
}

struct conn {
	int fd;
	long bytes;
	char pending[65536];
	size_t npending;
};

/* Reads and echoes what is there; returns 1 at EOF. Non-blocking; edge-triggered callers
 * must drain, which this does. */
static int pump(struct conn *c)
{
	for (;;) {
		if (c->npending) {
			ssize_t w = write(c->fd, c->pending, c->npending);
			if (w < 0 && errno == EAGAIN)
				return 0; /* wait for EPOLLOUT */
			if (w < 0)
				die("write");
			memmove(c->pending, c->pending + w, c->npending - (size_t)w);
			c->npending -= (size_t)w;
			continue;
		}
		ssize_t n = read(c->fd, c->pending, sizeof(c->pending));
		if (n == 0)
			return 1;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			die("read");
		c->npending = (size_t)n;
		c->bytes += n;
	}
}

static void serve_epoll(int s, int count, int edge)
{
	int ep = epoll_create1(0);
	uint32_t et = edge ? EPOLLET : 0;
	struct epoll_event ev = {.events = EPOLLIN | et, .data.ptr = NULL};
	int done = 0;

	fcntl(s, F_SETFL, O_NONBLOCK);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
		die("epoll on the listener");
	while (done < count) {
		struct epoll_event events[16];
		/* Bounded, but long enough for a test that waits between connections for its
		 * turn to run alone (alone_begin in tests/vm/lib.sh). */
		int n = epoll_wait(ep, events, 16, 120000);
		if (n <= 0)
			die("epoll_wait timed out");
		for (int i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;
			if (!c) {
				int fd;
				/* edge-triggered: accept until EAGAIN or the wakeup is lost */
				while ((fd = accept4(s, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					c = calloc(1, sizeof(*c));
					c->fd = fd;
					struct epoll_event cev = {.events = EPOLLIN | et,
								  .data.ptr = c};
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0)
						die("epoll_ctl add");
					if (!edge)
						break;
				}
				if (fd < 0 && errno != EAGAIN)
					die("accept4");
				continue;
			}
			if (pump(c)) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				finish(c->fd, c->bytes);
				free(c);
				done++;
				continue;
			}
			/* Ask for EPOLLOUT only while an echo waits to be written. */
			struct epoll_event cev = {
				.events = EPOLLIN | (c->npending ? EPOLLOUT : 0) | et,
				.data.ptr = c};
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
		}
	}
	close(ep);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		die("usage: echo_server block|poll|select|epoll-lt|epoll-et PORT [ADDR [COUNT]]");
	const char *mode = argv[1];
	int port = atoi(argv[2]);
	const char *bind_addr = argc > 3 ? argv[3] : "0.0.0.0";
	int count = argc > 4 ? atoi(argv[4]) : 1;
	int s = make_listener(bind_addr, port);

	printf("listening %s:%d %s\n", bind_addr, port, mode);
	fflush(stdout);
	if (!strncmp(mode, "epoll-", 6))
		serve_epoll(s, count, !strcmp(mode, "epoll-et"));
	else
		serve_sequential(mode, s, count);
	close(s);
	return 0;
}
