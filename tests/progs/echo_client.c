/* Connects in the way MODE says, sends BYTES of a pattern while reading the echo back, and
 * checks every byte.
 *
 *   echo_client MODE HOST PORT BYTES
 *
 * MODE: block (blocking connect), epoll (non-blocking connect, then EPOLLOUT and SO_ERROR),
 * epoll-early (the socket is added to epoll before connect, as Boost.Asio does), fastopen
 * (sendto with MSG_FASTOPEN connects and sends the first bytes), threads (four threads
 * connect at once, each echoing BYTES/4).
 * Prints "connected local=A peer=B" per connection and "ok BYTES". */
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "progs.h"

static void connect_epoll(int s, const struct sockaddr_storage *ss, socklen_t len, int early)
{
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLOUT, .data.fd = s}, got;

	fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
	if (early && epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
		die("epoll_ctl before connect");
	int rc = connect(s, (const struct sockaddr *)ss, len);
	if (rc == 0 || errno != EINPROGRESS)
		die("non-blocking connect returned %d, not EINPROGRESS", rc);
	if (!early && epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
		die("epoll_ctl after connect");
	if (epoll_wait(ep, &got, 1, 20000) != 1 || got.data.fd != s || !(got.events & EPOLLOUT))
		die("no EPOLLOUT after connect");
	int err = -1;
	socklen_t elen = sizeof(err);
	if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
		errno = err;
		die("SO_ERROR after connect");
	}
	close(ep);
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
}

/* Writes and reads at once (an echo of more than the buffers would deadlock otherwise).
 * The first `sent` bytes of the pattern are already on their way. */
static void exchange(int s, size_t bytes, size_t sent)
{
	unsigned char out[16384], in[16384];
	size_t got = 0;

	fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
	while (got < bytes) {
		struct pollfd p = {.fd = s, .events = POLLIN | (sent < bytes ? POLLOUT : 0)};
		if (poll(&p, 1, 30000) != 1)
			die("stalled after %zu of %zu bytes back", got, bytes);
		if ((p.revents & POLLOUT) && sent < bytes) {
			size_t n = bytes - sent < sizeof(out) ? bytes - sent : sizeof(out);
			for (size_t i = 0; i < n; i++)
				out[i] = pattern_byte(sent + i);
			ssize_t w = write(s, out, n);
			if (w < 0 && errno != EAGAIN)
				die("write");
			if (w > 0)
				sent += (size_t)w;
			if (sent == bytes && shutdown(s, SHUT_WR) < 0)
				die("shutdown");
		}
		if (p.revents & (POLLIN | POLLHUP)) {
			ssize_t r = read(s, in, sizeof(in));
			if (r == 0)
				die("EOF after %zu of %zu bytes", got, bytes);
			if (r < 0 && errno != EAGAIN)
				die("read");
			for (ssize_t i = 0; i < r; i++)
				if (in[i] != pattern_byte(got + (size_t)i))
					die("byte %zu differs", got + (size_t)i);
			if (r > 0)
				got += (size_t)r;
		}
	}
	if (bytes == 0 && shutdown(s, SHUT_WR) < 0)
		die("shutdown");
	char c;
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
	if (read(s, &c, 1) != 0)
		die("no EOF after the echo");
}

/* sendto(MSG_FASTOPEN) connects and carries the first bytes; returns how many it sent. */
static size_t connect_fastopen(int s, const struct sockaddr_storage *ss, socklen_t len, size_t bytes)
{
	unsigned char first[1000];
	size_t n = bytes < sizeof(first) ? bytes : sizeof(first);

	for (size_t i = 0; i < n; i++)
		first[i] = pattern_byte(i);
	ssize_t w = sendto(s, first, n, MSG_FASTOPEN, (const struct sockaddr *)ss, len);
	if (w < 0)
		die("sendto MSG_FASTOPEN");
	return (size_t)w;
}

static struct {
	const char *mode;
	struct sockaddr_storage ss;
	socklen_t len;
	size_t bytes;
} job;

static void *one_connection(void *unused)
{
	int s = socket(job.ss.ss_family, SOCK_STREAM, 0);
	size_t sent = 0;

	(void)unused;
	if (s < 0)
		die("socket");
	if (!strcmp(job.mode, "block") || !strcmp(job.mode, "threads")) {
		if (connect(s, (struct sockaddr *)&job.ss, job.len) < 0)
			die("connect");
	} else if (!strcmp(job.mode, "fastopen")) {
		sent = connect_fastopen(s, &job.ss, job.len, job.bytes);
	} else {
		connect_epoll(s, &job.ss, job.len, !strcmp(job.mode, "epoll-early"));
	}
	print_names("connected", s);
	exchange(s, job.bytes, sent);
	close(s);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 5)
		die("usage: echo_client block|epoll|epoll-early|fastopen|threads HOST PORT BYTES");
	job.mode = argv[1];
	job.len = parse_addr(argv[2], atoi(argv[3]), &job.ss);
	job.bytes = strtoul(argv[4], NULL, 0);
	if (!strcmp(job.mode, "threads")) {
		pthread_t t[4];
		job.bytes /= 4;
		for (int i = 0; i < 4; i++)
			if (pthread_create(&t[i], NULL, one_connection, NULL))
				die("pthread_create");
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
		job.bytes *= 4;
	} else {
		one_connection(NULL);
	}
	printf("ok %zu\n", job.bytes);
	return 0;
}
