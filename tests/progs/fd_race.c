/* Threads that close, duplicate and use the same descriptors at once, under the shim, for
 * AddressSanitizer and ThreadSanitizer (issue 16, item 5). Nothing here needs a sibling: a
 * TCP socket added to epoll before connect() (as libuv and Boost.Asio do) already has a
 * state the shim allocates, and close() or a plain connect() drops it.
 *
 *   fd_race [ROUNDS]
 *
 * MAKERS threads each make ROUNDS sockets (default 20000): socket(), epoll_ctl(ADD), an
 * option, then one of: close; connect() to a loopback listener, close; dup(), close both.
 * USERS threads meanwhile call setsockopt, getsockopt, getpeername, epoll_ctl ADD/DEL, dup,
 * F_DUPFD_CLOEXEC (and close what they made) on whatever descriptor numbers the makers are
 * using. One thread accepts and closes. Prints "ok: ..." at the end; all within DEADLINE_S.
 * The descriptors only ever go to loopback. */
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define MAKERS 2
#define USERS 3
/* Each thread seeds its random numbers with its index plus one of these. */
#define USER_SEED 1
#define MAKER_SEED 100
#define DEADLINE_S 60
#define FD_SPAN 24 /* the users work on this many numbers from the first socket's */

static struct {
	int listener, first_fd;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	unsigned rounds;
	time_t deadline;
	atomic_bool done;
	atomic_ulong made, calls;
	/* Every thread's epoll instance, made below the numbers the users pick from: an epoll
	 * fd that another thread adds to its own set or duplicates races the kernel's epoll
	 * code (EINVAL on an ADD, seen without the shim too), which is not what this tests. */
	int maker_ep[MAKERS], user_ep[USERS];
} job;

static bool in_time(void)
{
	return time(NULL) < job.deadline;
}

static void *maker(void *arg)
{
	uint64_t state = (uintptr_t)arg;
	int ep = job.maker_ep[state - MAKER_SEED], one = 1;

	for (unsigned i = 0; i < job.rounds && in_time(); i++) {
		int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct epoll_event ev = {.events = EPOLLOUT, .data.fd = s};
		if (s < 0)
			die("socket");
		if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
			die("epoll_ctl ADD");
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		switch (splitmix64(&state) % 3) {
		case 0:
			break;
		case 1:
			if (connect(s, (struct sockaddr *)&job.addr, job.addr_len) < 0 &&
			    errno != EINPROGRESS && errno != EAGAIN)
				die("connect to loopback");
			break;
		case 2: {
			int d = dup(s);
			if (d < 0)
				die("dup");
			close(d);
			break;
		}
		}
		if (close(s) < 0)
			die("close");
		atomic_fetch_add(&job.made, 1);
	}
	return NULL;
}

/* One call on a descriptor some maker may be closing right now; any error is fine. */
static void use(int ep, int fd, unsigned what)
{
	int v = 1;
	socklen_t len = sizeof(v);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct epoll_event ev = {.events = EPOLLIN};

	switch (what) {
	case 0:
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
		break;
	case 1:
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v));
		break;
	case 2:
		getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len);
		break;
	case 3:
		getpeername(fd, (struct sockaddr *)&ss, &sslen);
		break;
	case 4:
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0)
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
		break;
	case 5: {
		int d = dup(fd);
		if (d >= 0)
			close(d);
		break;
	}
	case 6: {
		int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (d >= 0)
			close(d);
		break;
	}
	}
}

static void *user(void *arg)
{
	uint64_t state = (uintptr_t)arg;
	int ep = job.user_ep[state - USER_SEED];

	while (!atomic_load(&job.done) && in_time()) {
		uint64_t r = splitmix64(&state);
		int fd = job.first_fd + (int)(r % FD_SPAN);
		use(ep, fd, (unsigned)(r >> 32) % 7);
		atomic_fetch_add(&job.calls, 1);
	}
	return NULL;
}

static void *accepter(void *unused)
{
	(void)unused;
	while (!atomic_load(&job.done) && in_time()) {
		struct pollfd p = {.fd = job.listener, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int c = accept4(job.listener, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			close(c);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t makers[MAKERS], users[USERS], acc;

	job.rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 20000;
	job.deadline = time(NULL) + DEADLINE_S;
	job.addr_len = parse_addr("127.0.0.1", 0, &job.addr);
	for (int i = 0; i < MAKERS; i++)
		if ((job.maker_ep[i] = epoll_create1(EPOLL_CLOEXEC)) < 0)
			die("epoll_create1");
	for (int i = 0; i < USERS; i++)
		if ((job.user_ep[i] = epoll_create1(EPOLL_CLOEXEC)) < 0)
			die("epoll_create1");
	job.listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (job.listener < 0 || bind(job.listener, (struct sockaddr *)&job.addr, job.addr_len) < 0 ||
	    listen(job.listener, 4096) < 0 ||
	    getsockname(job.listener, (struct sockaddr *)&job.addr, &job.addr_len) < 0)
		die("listen on 127.0.0.1");
	job.first_fd = job.listener + 1;
	if (pthread_create(&acc, NULL, accepter, NULL))
		die("pthread_create");
	for (uintptr_t i = 0; i < USERS; i++)
		if (pthread_create(&users[i], NULL, user, (void *)(i + USER_SEED)))
			die("pthread_create");
	for (uintptr_t i = 0; i < MAKERS; i++)
		if (pthread_create(&makers[i], NULL, maker, (void *)(i + MAKER_SEED)))
			die("pthread_create");
	for (int i = 0; i < MAKERS; i++)
		pthread_join(makers[i], NULL);
	atomic_store(&job.done, true);
	for (int i = 0; i < USERS; i++)
		pthread_join(users[i], NULL);
	pthread_join(acc, NULL);
	close(job.listener);
	unsigned long made = atomic_load(&job.made);
	if (made != (unsigned long)MAKERS * job.rounds) {
		errno = ETIMEDOUT;
		die("%lu of %lu sockets made within %d s", made, (unsigned long)MAKERS * job.rounds,
		    DEADLINE_S);
	}
	printf("ok: %lu sockets made, added to epoll and closed by %d threads while %d others made "
	       "%lu calls on the same numbers\n",
	       made, MAKERS, USERS, (unsigned long)atomic_load(&job.calls));
	return 0;
}
