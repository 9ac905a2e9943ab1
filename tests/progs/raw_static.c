/* A program the shim cannot see: linked statically and talking to the kernel by raw system
 * calls only. It sends BYTES of the test pattern, shuts down its write side, and prints the
 * server's one-line answer (tests/vm/apps/pyserve.py answers with the SHA-256 of what it
 * read, and the peer it saw), after the names its socket has once connected (raw
 * getsockname and getpeername, so that guest-wide mode's programs show in them). Under
 * LD_PRELOAD it must keep working, over plain TCP.
 *
 *   raw_static HOST PORT BYTES */
#include <sys/syscall.h>
#include <unistd.h>

#include "progs.h"

static long sys(long n, long a, long b, long c)
{
	return syscall(n, a, b, c);
}

int main(int argc, char **argv)
{
	struct pattern_client c;
	unsigned char buf[4096];

	pattern_client_args(argc, argv, &c);
	long s = sys(SYS_socket, c.to.ss_family, SOCK_STREAM, 0);
	if (s < 0 || sys(SYS_connect, s, (long)&c.to, c.len) < 0)
		die("raw connect");
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);
	char a[80], b[80];
	if (sys(SYS_getsockname, s, (long)&local, (long)&llen) < 0 ||
	    sys(SYS_getpeername, s, (long)&peer, (long)&plen) < 0)
		die("raw getsockname/getpeername");
	printf("names local=%s peer=%s\n", show_addr(&local, a, sizeof(a)),
	       show_addr(&peer, b, sizeof(b)));
	for (size_t sent = 0; sent < c.bytes;) {
		size_t n = pattern_fill(buf, sizeof(buf), sent, c.bytes);
		long w = sys(SYS_write, s, (long)buf, (long)n);
		if (w <= 0)
			die("raw write");
		sent += (size_t)w;
	}
	if (sys(SYS_shutdown, s, SHUT_WR, 0) < 0)
		die("raw shutdown");
	long got = 0, r;
	while ((r = sys(SYS_read, s, (long)buf + got, (long)(sizeof(buf) - 1 - (size_t)got))) > 0)
		got += r;
	if (r < 0 || got == 0)
		die("raw read");
	buf[got] = 0;
	printf("ok %s", buf);
	return 0;
}
