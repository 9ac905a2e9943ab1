/* small_writes: many small writes into a reader that starts only once the writer is blocked,
 * every byte checked (the kernel's rule behind it: include/vmshim/vsockbuf.h).
 *
 *   small_writes serve PORT ROLE...        accepts one connection on PORT (any address)
 *   small_writes call HOST PORT ROLE...    connects to HOST:PORT
 *
 * ROLE is one of
 *   write COUNT SIZE FLAG   COUNT writes of SIZE bytes, without blocking; FLAG (a file) is
 *                           made once a write would block (the connection holds all it will
 *                           take) or all are written; then shuts its sending down and waits
 *                           for the reader to close
 *   read FLAG [RCVBUF]      sets SO_RCVBUF to RCVBUF, if given; waits for FLAG, then reads to
 *                           EOF and checks that byte i of the stream is i % 251; then closes
 * Prints "wrote N bytes in COUNT writes, blocked after B" or "read N bytes intact"; a failure
 * prints "FAIL: ..." and exits 1. Every wait is bounded (30 s). */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define TIMEOUT_MS 30000
#define SETTLE_MS 300 /* for packets still on their way when the reader starts */

static unsigned char pattern(long i)
{
	return (unsigned char)(i % 251);
}

static void wait_ready(int fd, short events, const char *what, long done)
{
	struct pollfd p = {.fd = fd, .events = events};

	if (poll(&p, 1, TIMEOUT_MS) != 1)
		die("%s: nothing for %d ms after %ld bytes", what, TIMEOUT_MS, done);
}

static void make_flag(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		die("create %s", path);
	close(fd);
}

static void run_writer(int s, long count, int size, const char *flag)
{
	unsigned char buf[65536];
	long sent = 0, blocked_at = -1;

	if (size <= 0 || size > (int)sizeof(buf))
		die("write size %d", size);
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
	for (long w = 0; w < count; w++) {
		for (int i = 0; i < size; i++)
			buf[i] = pattern(sent + i);
		int off = 0;
		while (off < size) {
			ssize_t n = write(s, buf + off, (size_t)(size - off));
			if (n > 0) {
				off += (int)n;
				continue;
			}
			if (n < 0 && errno != EAGAIN)
				die("write %ld of %ld, after %ld bytes", w + 1, count, sent + off);
			if (blocked_at < 0) {
				blocked_at = sent + off;
				make_flag(flag);
			}
			wait_ready(s, POLLOUT, "write", sent + off);
		}
		sent += size;
	}
	if (blocked_at < 0)
		make_flag(flag);
	if (shutdown(s, SHUT_WR) < 0)
		die("shutdown after %ld bytes", sent);
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
	char c;
	wait_ready(s, POLLIN, "the reader's close", sent);
	if (read(s, &c, 1) != 0 && errno != ECONNRESET)
		die("the reader sent something or failed instead of closing");
	printf("wrote %ld bytes in %ld writes, blocked after %ld\n", sent, count, blocked_at);
}

static void wait_flag(const char *flag)
{
	struct stat st;

	for (int ms = 0; stat(flag, &st) < 0; ms += 10) {
		if (ms >= TIMEOUT_MS)
			die("no %s after %d ms", flag, TIMEOUT_MS);
		usleep(10000);
	}
	usleep(SETTLE_MS * 1000);
}

static void run_reader(int s, const char *flag, int rcvbuf)
{
	unsigned char buf[65536];
	long got = 0;

	if (rcvbuf > 0 && setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
		die("SO_RCVBUF %d", rcvbuf);
	wait_flag(flag);
	for (;;) {
		wait_ready(s, POLLIN, "read", got);
		ssize_t n = read(s, buf, sizeof(buf));
		if (n < 0)
			die("read after %ld bytes", got);
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern(got + i))
				die("byte %ld differs", got + i);
		got += n;
	}
	printf("read %ld bytes intact\n", got);
}

static void run_role(int s, int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[0], "write"))
		run_writer(s, atol(argv[1]), atoi(argv[2]), argv[3]);
	else if ((argc == 2 || argc == 3) && !strcmp(argv[0], "read"))
		run_reader(s, argv[1], argc == 3 ? atoi(argv[2]) : 0);
	else
		die("usage: ROLE is 'write COUNT SIZE FLAG' or 'read FLAG [RCVBUF]'");
	close(s);
}

static int accept_one(int port)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr("0.0.0.0", port, &ss);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l, (struct sockaddr *)&ss, len) < 0 || listen(l, 1) < 0)
		die("listen on %d", port);
	int s = accept(l, NULL, NULL);
	if (s < 0)
		die("accept");
	close(l);
	return s;
}

static int call(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(host, port, &ss);
	int s = socket(ss.ss_family, SOCK_STREAM, 0);

	if (s < 0 || connect(s, (struct sockaddr *)&ss, len) < 0)
		die("connect to %s:%d", host, port);
	return s;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN); /* a broken stream shows as EPIPE, named */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "serve"))
		run_role(accept_one(atoi(argv[2])), argc - 3, argv + 3);
	else if (argc >= 5 && !strcmp(argv[1], "call"))
		run_role(call(argv[2], atoi(argv[3])), argc - 4, argv + 4);
	else
		die("usage: small_writes serve PORT ROLE... | small_writes call HOST PORT ROLE...");
	return 0;
}
