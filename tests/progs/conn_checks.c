/* Checks that a connection to an echo server behaves as TCP in every way the control calls
 * can see: options set before connect survive, TCP options answer like TCP's, names are the
 * ones asked for, and dup, fork and close keep all of that right. It passes on plain TCP;
 * under the shim it must pass on a redirected connection too.
 *
 *   conn_checks HOST PORT      (prints "ok" and exits 0, or "FAIL: ..." and exits 1) */
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progs.h"

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len) < 0)
		die("getsockopt %d/%d", level, name);
	return v;
}

static void expect_errno(int rc, int err, const char *what)
{
	if (rc != -1 || errno != err)
		die("%s: want errno %d, got rc %d", what, err, rc);
}

static void same_peer(int fd, const struct sockaddr_storage *want, socklen_t want_len)
{
	struct sockaddr_storage got;
	socklen_t len = sizeof(got);

	if (getpeername(fd, (struct sockaddr *)&got, &len) < 0 || len != want_len ||
	    memcmp(&got, want, want_len) != 0)
		die("fd %d: getpeername is not the address connected to", fd);
}

static void echo(int fd, const char *msg)
{
	char buf[64];
	size_t n = strlen(msg), got = 0;

	if (write(fd, msg, n) != (ssize_t)n)
		die("write on fd %d", fd);
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			die("read on fd %d", fd);
		got += (size_t)r;
	}
	if (memcmp(buf, msg, n))
		die("echo on fd %d differs", fd);
}

static void check_options(int s)
{
	struct tcp_info info;
	socklen_t len = sizeof(info);
	int v = 30, zero = 0, big = 200;

	if (get_int(s, SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
	    get_int(s, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP ||
	    get_int(s, SOL_SOCKET, SO_ERROR) != 0 || get_int(s, SOL_SOCKET, SO_ACCEPTCONN) != 0)
		die("socket-level identity");
	if (get_int(s, IPPROTO_TCP, TCP_NODELAY) != 1)
		die("TCP_NODELAY set before connect was lost");
	if (get_int(s, SOL_SOCKET, SO_KEEPALIVE) != 1)
		die("SO_KEEPALIVE set before connect was lost");
	if (setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof(v)) < 0 ||
	    get_int(s, IPPROTO_TCP, TCP_KEEPIDLE) != 30)
		die("TCP_KEEPIDLE");
	expect_errno(setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &zero, sizeof(zero)), EINVAL,
		     "TCP_KEEPIDLE 0");
	expect_errno(setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, &big, sizeof(big)), EINVAL,
		     "TCP_KEEPCNT 200");
	expect_errno(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, 2), EINVAL, "short optlen");
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &info, &len) < 0 ||
	    info.tcpi_state != TCP_ESTABLISHED)
		die("TCP_INFO does not say established");
	len = sizeof(v);
	expect_errno(getsockopt(s, IPPROTO_TCP, 12345, &v, &len), ENOPROTOOPT, "unknown option");
	v = 1 << 20;
	if (setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) < 0 ||
	    get_int(s, SOL_SOCKET, SO_RCVBUF) <= 0)
		die("SO_RCVBUF");
	if (!(fcntl(s, F_GETFD) & FD_CLOEXEC))
		die("FD_CLOEXEC was lost");
	if (fcntl(s, F_GETFL) & O_NONBLOCK)
		die("O_NONBLOCK appeared");
}

static void check_names(int s, int family, const struct sockaddr_storage *dst, socklen_t dlen)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local), tiny = 4;
	char buf[128];

	same_peer(s, dst, dlen);
	if (getsockname(s, (struct sockaddr *)&local, &len) < 0 || local.ss_family != family ||
	    len != dlen || ((struct sockaddr_in *)&local)->sin_port == 0)
		die("getsockname");
	/* A short buffer gets a truncated address and the full length, as from the kernel. */
	if (getpeername(s, (struct sockaddr *)buf, &tiny) < 0 || tiny != dlen)
		die("getpeername with a short buffer");
}

int main(int argc, char **argv)
{
	if (argc != 3)
		die("usage: conn_checks HOST PORT");
	struct sockaddr_storage dst;
	socklen_t dlen = parse_addr(argv[1], atoi(argv[2]), &dst);
	int one = 1;
	int s = socket(dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0 || setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0)
		die("socket set-up");
	if (connect(s, (struct sockaddr *)&dst, dlen) < 0)
		die("connect");
	expect_errno(connect(s, (struct sockaddr *)&dst, dlen), EISCONN, "second connect");
	check_options(s);
	check_names(s, dst.ss_family, &dst, dlen);

	int d = dup(s);
	close(s);
	same_peer(d, &dst, dlen);
	echo(d, "after dup");
	if (dup2(d, 100) != 100)
		die("dup2");
	same_peer(100, &dst, dlen);
	close(100);
	int e = fcntl(d, F_DUPFD_CLOEXEC, 200);
	if (e < 200)
		die("F_DUPFD_CLOEXEC");
	same_peer(e, &dst, dlen);
	close(e);

	pid_t pid = fork();
	if (pid == 0) {
		same_peer(d, &dst, dlen);
		echo(d, "from the child");
		_exit(0);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("child failed");
	echo(d, "parent again");
	close(d);

	/* The number is free again: a new socket there must not look connected. */
	int fresh = socket(dst.ss_family, SOCK_STREAM, 0);
	struct sockaddr_storage none;
	socklen_t nlen = sizeof(none);
	if (fresh != d && fresh != s)
		die("expected a freed descriptor number, got %d", fresh);
	expect_errno(getpeername(fresh, (struct sockaddr *)&none, &nlen), ENOTCONN,
		     "getpeername on a new socket");
	close(fresh);
	printf("ok\n");
	return 0;
}
