/* The shim's calls from many threads at once, for ThreadSanitizer: threads accept on one
 * shared listener while others connect, some to a sibling (redirected), some to a host the
 * policy does not list (plain TCP), each in its own way (blocking; non-blocking and added to
 * epoll after connect; added to epoll before connect), with TCP options set before and read
 * after, the connection moved to another descriptor (dup, F_DUPFD_CLOEXEC, dup3 onto a
 * number the thread keeps, which dup2 later takes back), names checked on both, and TCP
 * options changed by another thread while the connection is in use. Every connection
 * carries a request of its own whose echo is checked by length and FNV-1a hash.
 *
 *   threads PORT INBOUND ROUNDS SIBLING:PORT REMOTE:PORT GO_FILE
 *
 * Listens on 0.0.0.0:PORT, where ACCEPTERS threads serve INBOUND connections, each an echo
 * until EOF, and check that each comes from the sibling's address. Once GO_FILE exists (up
 * to 60 s), CONNECTORS threads to each target make ROUNDS connections each. Prints
 * "listening" and at the end "ok: ..."; everything must be done within DEADLINE_S. */
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define ACCEPTERS 3
#define CONNECTORS 2 /* to each target */
#define DEADLINE_S 240
#define IO_TIMEOUT_S 20
#define REQUEST_MAX 2000
#define OPTION_CHANGES 20
#define FIRST_KEEPIDLE 10 /* the changes set TCP_KEEPIDLE 10, 11, ... */
#define FNV_START 14695981039346656037ull

struct target {
	struct sockaddr_in addr;
	const char *name;
};

static struct {
	int listener;
	unsigned inbound, rounds;
	struct target sibling, remote;
	time_t deadline;
	atomic_uint accepted, made;
	atomic_ullong bytes;
} job;

static void parse_target(const char *s, struct target *t)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host)) {
		errno = EINVAL;
		die("not HOST:PORT: %s", s);
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	struct sockaddr_storage ss;
	parse_addr(host, atoi(colon + 1), &ss);
	memcpy(&t->addr, &ss, sizeof(t->addr));
	t->name = s;
}

static void set_io_timeout(int s)
{
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};

	if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		die("SO_RCVTIMEO/SO_SNDTIMEO");
}

static void set_blocking(int s, bool blocking)
{
	int fl = fcntl(s, F_GETFL);

	if (fl < 0 || fcntl(s, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK) < 0)
		die("fcntl O_NONBLOCK");
}

/* getpeername shows what was connected to (or, accepted, what accept said), getsockname an
 * IPv4 address with a port. */
static void check_names(int s, const struct sockaddr_in *peer, const char *what)
{
	struct sockaddr_in got, local;
	socklen_t len = sizeof(got), llen = sizeof(local);

	if (getpeername(s, (struct sockaddr *)&got, &len) < 0 ||
	    getsockname(s, (struct sockaddr *)&local, &llen) < 0)
		die("%s: getpeername/getsockname", what);
	if (len != sizeof(got) || got.sin_family != AF_INET ||
	    got.sin_addr.s_addr != peer->sin_addr.s_addr || got.sin_port != peer->sin_port ||
	    local.sin_family != AF_INET || local.sin_port == 0) {
		errno = EBADMSG;
		die("%s: getpeername/getsockname show another connection", what);
	}
}

/* Sends a request of its own (from seed), shuts down, and checks that the echo up to EOF is
 * the same bytes. */
static void exchange(int s, uint64_t seed, const char *what)
{
	unsigned char out[REQUEST_MAX], in[REQUEST_MAX + 1];
	uint64_t state = seed;
	size_t size = 1 + splitmix64(&state) % REQUEST_MAX, got = 0;

	for (size_t i = 0; i < size; i++)
		out[i] = (unsigned char)splitmix64(&state);
	for (size_t sent = 0; sent < size;) {
		ssize_t w = send(s, out + sent, size - sent, MSG_NOSIGNAL);
		if (w < 0)
			die("%s: send", what);
		sent += (size_t)w;
	}
	if (shutdown(s, SHUT_WR) < 0)
		die("%s: shutdown", what);
	for (;;) {
		ssize_t r = read(s, in + got, sizeof(in) - got);
		if (r < 0)
			die("%s: read after %zu of %zu bytes", what, got, size);
		if (r == 0)
			break;
		got += (size_t)r;
		if (got > size)
			break;
	}
	if (got != size || fnv1a(FNV_START, in, got) != fnv1a(FNV_START, out, size)) {
		errno = EBADMSG;
		die("%s: %zu bytes sent, %zu came back, or not the same", what, size, got);
	}
	atomic_fetch_add(&job.bytes, size);
}

static void *accepter(void *unused)
{
	unsigned char buf[4096];

	(void)unused;
	while (atomic_load(&job.accepted) < job.inbound && time(NULL) < job.deadline) {
		struct pollfd p = {.fd = job.listener, .events = POLLIN};
		if (poll(&p, 1, 200) <= 0)
			continue;
		struct sockaddr_in from;
		socklen_t len = sizeof(from);
		int c = accept4(job.listener, (struct sockaddr *)&from, &len, SOCK_CLOEXEC);
		if (c < 0 && (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED))
			continue; /* another thread took it */
		if (c < 0)
			die("accept4");
		atomic_fetch_add(&job.accepted, 1);
		if (from.sin_addr.s_addr != job.sibling.addr.sin_addr.s_addr) {
			errno = EBADMSG;
			die("accepted a connection from another host than %s", job.sibling.name);
		}
		check_names(c, &from, "accepted");
		set_io_timeout(c);
		ssize_t n;
		while ((n = read(c, buf, sizeof(buf))) > 0)
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(c, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
				if (w < 0)
					die("accepted: send");
				off += w;
			}
		if (n < 0)
			die("accepted: read");
		close(c);
	}
	return NULL;
}

struct connector {
	pthread_t thread;
	const struct target *to;
	unsigned number;
	int ep;
	int null_fd, spare; /* a number of its own for dup3, kept on /dev/null in between */
};

/* Connects s: blocking (way 0), non-blocking and added to epoll after connect (1) or before
 * (2), as event loops do. */
static void connect_one_way(struct connector *t, int s, unsigned way, const char *what)
{
	struct epoll_event ev = {.events = EPOLLOUT, .data.fd = s}, got;

	if (way > 0)
		set_blocking(s, false);
	if (way == 2 && epoll_ctl(t->ep, EPOLL_CTL_ADD, s, &ev) < 0)
		die("%s: epoll_ctl before connect", what);
	if (connect(s, (const struct sockaddr *)&t->to->addr, sizeof(t->to->addr)) < 0 &&
	    (way == 0 || errno != EINPROGRESS))
		die("%s: connect", what);
	if (way == 0)
		return;
	if (way == 1 && epoll_ctl(t->ep, EPOLL_CTL_ADD, s, &ev) < 0)
		die("%s: epoll_ctl after connect", what);
	if (epoll_wait(t->ep, &got, 1, IO_TIMEOUT_S * 1000) != 1 || got.data.fd != s)
		die("%s: no EPOLLOUT after connect", what);
	int err = -1;
	socklen_t len = sizeof(err);
	if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		errno = err;
		die("%s: SO_ERROR", what);
	}
	if (epoll_ctl(t->ep, EPOLL_CTL_DEL, s, NULL) < 0)
		die("%s: epoll_ctl DEL", what);
	set_blocking(s, true);
}

/* The connection moves to another descriptor (dup, F_DUPFD_CLOEXEC, or dup3 onto the
 * thread's spare number) and the first one is closed. */
static int move(struct connector *t, int s, unsigned way, const char *what)
{
	int d = way == 0 ? dup(s) : way == 1 ? fcntl(s, F_DUPFD_CLOEXEC, 0)
					      : dup3(s, t->spare, O_CLOEXEC);

	if (d < 0)
		die("%s: dup", what);
	close(s);
	return d;
}

/* Another thread of the program changes the connection's TCP options while its owner
 * uses it, as a control thread may. */
static void *change_options(void *arg)
{
	int s = *(const int *)arg;

	for (int i = 0; i < OPTION_CHANGES; i++) {
		int nodelay = i % 2, idle = FIRST_KEEPIDLE + i;
		if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof(nodelay)) < 0 ||
		    setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0)
			die("changing options from another thread");
	}
	return NULL;
}

static void one_connection(struct connector *t, unsigned round)
{
	char what[96];
	int one = 1, nodelay = 0;
	socklen_t len = sizeof(nodelay);

	snprintf(what, sizeof(what), "%s, thread %u, round %u", t->to->name, t->number, round);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		die("%s: socket", what);
	set_io_timeout(s);
	if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die("%s: TCP_NODELAY", what);
	connect_one_way(t, s, round % 3, what);
	check_names(s, &t->to->addr, what);
	int d = move(t, s, round / 3 % 3, what);
	check_names(d, &t->to->addr, what);
	if (getsockopt(d, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) < 0 || !nodelay)
		die("%s: TCP_NODELAY set before connect is gone", what);
	pthread_t changer;
	if (pthread_create(&changer, NULL, change_options, &d))
		die("%s: pthread_create", what);
	exchange(d, (uint64_t)t->number << 40 | (uint64_t)ntohs(t->to->addr.sin_port) << 20 | round,
		 what);
	for (int i = 0; i < OPTION_CHANGES; i++)
		if (getsockopt(d, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) < 0)
			die("%s: TCP_NODELAY", what);
	pthread_join(changer, NULL);
	int idle = 0, last = FIRST_KEEPIDLE + OPTION_CHANGES - 1;
	len = sizeof(idle);
	if (getsockopt(d, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len) < 0 || idle != last)
		die("%s: TCP_KEEPIDLE reads %d, not the %d another thread set last", what, idle,
		    last);
	if (d == t->spare) {
		if (dup2(t->null_fd, t->spare) < 0) /* closes the connection, keeps the number */
			die("%s: dup2", what);
	} else {
		close(d);
	}
	atomic_fetch_add(&job.made, 1);
}

static void *connector(void *arg)
{
	struct connector *t = arg;

	for (unsigned round = 0; round < job.rounds && time(NULL) < job.deadline; round++)
		one_connection(t, round);
	return NULL;
}

static void wait_for_file(const char *path)
{
	for (int i = 0; i < 1200; i++) {
		if (access(path, F_OK) == 0)
			return;
		usleep(50 * 1000);
	}
	die("%s did not appear within 60 s", path);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	int one = 1;

	if (argc != 7) {
		errno = EINVAL;
		die("usage: threads PORT INBOUND ROUNDS SIBLING:PORT REMOTE:PORT GO_FILE");
	}
	socklen_t len = parse_addr("0.0.0.0", atoi(argv[1]), &ss);
	job.inbound = (unsigned)atoi(argv[2]);
	job.rounds = (unsigned)atoi(argv[3]);
	parse_target(argv[4], &job.sibling);
	parse_target(argv[5], &job.remote);
	job.deadline = time(NULL) + DEADLINE_S;
	job.listener = socket(AF_INET, SOCK_STREAM, 0);
	if (job.listener < 0 ||
	    setsockopt(job.listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(job.listener, (struct sockaddr *)&ss, len) < 0 || listen(job.listener, 128) < 0)
		die("listen on %s", argv[1]);
	set_blocking(job.listener, false); /* the accepters race for each connection */
	printf("listening\n");
	fflush(stdout);

	pthread_t accepters[ACCEPTERS];
	for (int i = 0; i < ACCEPTERS; i++)
		if (pthread_create(&accepters[i], NULL, accepter, NULL))
			die("pthread_create");
	wait_for_file(argv[6]);
	struct connector connectors[2 * CONNECTORS];
	for (unsigned i = 0; i < 2 * CONNECTORS; i++) {
		struct connector *t = &connectors[i];
		*t = (struct connector){.to = i < CONNECTORS ? &job.sibling : &job.remote,
					.number = i, .ep = epoll_create1(EPOLL_CLOEXEC),
					.null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)};
		t->spare = dup(t->null_fd);
		if (t->ep < 0 || t->null_fd < 0 || t->spare < 0 ||
		    pthread_create(&t->thread, NULL, connector, t))
			die("starting connector %u", i);
	}
	for (unsigned i = 0; i < 2 * CONNECTORS; i++) {
		pthread_join(connectors[i].thread, NULL);
		close(connectors[i].ep);
		close(connectors[i].spare);
		close(connectors[i].null_fd);
	}
	for (int i = 0; i < ACCEPTERS; i++)
		pthread_join(accepters[i], NULL);
	close(job.listener);
	unsigned made = atomic_load(&job.made), accepted = atomic_load(&job.accepted);
	if (made != 2 * CONNECTORS * job.rounds || accepted != job.inbound) {
		errno = ETIMEDOUT;
		die("%u of %u connections made, %u of %u accepted within %d s", made,
		    2 * CONNECTORS * job.rounds, accepted, job.inbound, DEADLINE_S);
	}
	printf("ok: %u connections to %s and %u to %s made by %d threads, %u accepted by %d, "
	       "%llu bytes echoed and checked\n",
	       CONNECTORS * job.rounds, job.sibling.name, CONNECTORS * job.rounds, job.remote.name,
	       2 * CONNECTORS, accepted, ACCEPTERS, (unsigned long long)atomic_load(&job.bytes));
	return 0;
}
