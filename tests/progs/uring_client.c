/* A client whose connect, sends, shutdown and receives are io_uring operations
 * (IORING_OP_CONNECT and the rest): no socket call of libc's is made for the connection, so
 * no preload sees it, as with runtimes that drive their sockets through io_uring. It sends
 * BYTES of the test pattern, shuts down its write side and prints the names of its socket
 * and the server's one-line answer, as raw_static does.
 *
 *   uring_client HOST PORT BYTES */
#include <liburing.h>

#include "progs.h"

static struct io_uring ring;

/* Submits the one operation prepared and returns its result (a negative errno on error). */
static int run_one(void)
{
	struct io_uring_cqe *cqe;

	if (io_uring_submit(&ring) != 1 || io_uring_wait_cqe(&ring, &cqe) < 0)
		die("io_uring submit/wait");
	int res = cqe->res;
	io_uring_cqe_seen(&ring, cqe);
	return res;
}

int main(int argc, char **argv)
{
	struct pattern_client c;
	unsigned char buf[4096];

	pattern_client_args(argc, argv, &c);
	if (io_uring_queue_init(4, &ring, 0) < 0)
		die("io_uring_queue_init");
	int s = socket(c.to.ss_family, SOCK_STREAM, 0);
	if (s < 0)
		die("socket");
	io_uring_prep_connect(io_uring_get_sqe(&ring), s, (struct sockaddr *)&c.to, c.len);
	int rc = run_one();
	if (rc < 0) {
		errno = -rc;
		die("io_uring connect");
	}
	print_names("names", s);
	for (size_t sent = 0; sent < c.bytes;) {
		size_t n = pattern_fill(buf, sizeof(buf), sent, c.bytes);
		io_uring_prep_send(io_uring_get_sqe(&ring), s, buf, n, 0);
		if ((rc = run_one()) <= 0)
			die("io_uring send: %d", rc);
		sent += (size_t)rc;
	}
	io_uring_prep_shutdown(io_uring_get_sqe(&ring), s, SHUT_WR);
	if (run_one() < 0)
		die("io_uring shutdown");
	size_t got = 0;
	while (got < sizeof(buf) - 1) {
		io_uring_prep_recv(io_uring_get_sqe(&ring), s, buf + got, sizeof(buf) - 1 - got, 0);
		if ((rc = run_one()) < 0)
			die("io_uring recv: %d", rc);
		if (rc == 0)
			break;
		got += (size_t)rc;
	}
	if (got == 0)
		die("no answer");
	buf[got] = 0;
	printf("ok %s", buf);
	return 0;
}
