/* Times N blocking TCP connects to HOST:PORT: socket(), connect(), close(), and in "echo"
 * mode one 1-byte write and 1-byte read in between (a round trip through the server).
 *
 *   connect_bench HOST PORT N [connect|echo]
 *
 * One untimed connection first (so that one-time setup, such as the shim resolving libc
 * and mapping helperd's table, stays out of the numbers), then N timed ones; the loop is
 * timed as a whole with CLOCK_MONOTONIC. Prints one line:
 *
 *   connect_bench host=H port=P n=N mode=M total_us=T per_connect_us=U
 *
 * The loop is the function bench_loop, so `valgrind --tool=callgrind
 * --collect-atstart=no --toggle-collect=bench_loop` counts exactly the N connects.
 * Bounded: N <= 1000000, and the process ends itself after BENCH_TIMEOUT seconds (default
 * 120); a read waits at most 5 s. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "progs.h" /* die, parse_addr: shared with the test programs */

static void one(const struct sockaddr_storage *ss, socklen_t len, int echo, long i)
{
	int fd = socket(ss->ss_family, SOCK_STREAM, 0);
	char c = 'x';

	if (fd < 0)
		die("connection %ld: socket", i);
	if (connect(fd, (const struct sockaddr *)ss, len) < 0)
		die("connection %ld: connect", i);
	if (echo) {
		struct timeval tv = {.tv_sec = 5};
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
			die("connection %ld: setsockopt SO_RCVTIMEO", i);
		if (write(fd, &c, 1) != 1)
			die("connection %ld: write", i);
		ssize_t n = read(fd, &c, 1);
		if (n != 1) {
			if (n == 0)
				errno = ECONNRESET;
			die("connection %ld: read of the echo", i);
		}
	}
	if (close(fd) < 0)
		die("connection %ld: close", i);
}

/* The timed loop, kept out of line so that callgrind can count just this. */
static __attribute__((noinline)) void bench_loop(const struct sockaddr_storage *ss, socklen_t len,
						 int echo, long n)
{
	for (long i = 0; i < n; i++)
		one(ss, len, echo, i);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;

	if (argc < 4 || argc > 5 ||
	    (argc == 5 && strcmp(argv[4], "connect") != 0 && strcmp(argv[4], "echo") != 0)) {
		fprintf(stderr, "usage: connect_bench HOST PORT N [connect|echo]\n");
		return 2;
	}
	int port = atoi(argv[2]);
	long n = atol(argv[3]);
	int echo = argc == 5 && !strcmp(argv[4], "echo");
	const char *t = getenv("BENCH_TIMEOUT");
	long timeout = t ? atol(t) : 120;

	if (port < 1 || port > 65535 || n < 1 || n > 1000000 || timeout < 1 || timeout > 3600) {
		fprintf(stderr, "connect_bench: PORT 1..65535, N 1..1000000, BENCH_TIMEOUT 1..3600\n");
		return 2;
	}
	socklen_t len = parse_addr(argv[1], port, &ss);
	alarm((unsigned)timeout); /* SIGALRM's default action ends the process */

	one(&ss, len, echo, -1); /* warm-up, untimed */
	double start = now_us();
	bench_loop(&ss, len, echo, n);
	double total = now_us() - start;

	printf("connect_bench host=%s port=%d n=%ld mode=%s total_us=%.0f per_connect_us=%.2f\n",
	       argv[1], port, n, echo ? "echo" : "connect", total, total / (double)n);
	return 0;
}
