/* sigsafe: close() and the dup family in a signal handler, as POSIX allows (they are
 * async-signal-safe), while the thread it interrupts is anywhere: in malloc, in a sibling
 * connect() (the shim's swap), in dup() or close() of its own (issue 16).
 *
 *   sigsafe HOST PORT SECONDS
 *
 * HOST:PORT echoes (a sibling's, so that the connections are redirected). A thread sends the
 * main thread SIGUSR1 in bursts (ticker); the handler duplicates a connection kept open
 * (dup, dup2, dup3, and F_DUPFD onto a number in another 4096 of the descriptor table each
 * time, where the shim's table needs a new page), closes every duplicate, and now and then
 * puts /dev/null on the descriptor the main thread is connecting. The main thread loops:
 * allocations of 2 to 64 KiB (malloc's lock, not its per-thread cache), a connection with a
 * one-byte echo, dup and close. After SECONDS (at most 20,000 connections) it prints a line
 * of counts and exits 0; 1 if an echo was wrong or a descriptor the handler gave /dev/null
 * is anything else after connect() (the swap replaced it); 3 from the watchdog, when the run
 * is not over 30 s after it should be (a deadlock). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define MAX_CONNECTIONS 20000
#define WATCHDOG_SLACK_S 30
#define SPARE_FD 150 /* dup2 and dup3 land here */
#define TABLE_PAGE 4096 /* descriptors per page of the shim's table (shim/fdstate.c) */

static int keeper = -1, devnull = -1, fd_limit;
static atomic_int connecting = -1; /* the descriptor the main thread is connecting */
static atomic_int replaced = -1;   /* ... which the handler made /dev/null */
static atomic_long handled, pages, replacements;
static atomic_bool stop;
static pthread_t main_thread;

static void on_signal(int sig)
{
	static int next_page = 1, highest_page;
	int saved = errno;

	(void)sig;
	int d = fcntl(keeper, F_DUPFD, next_page * TABLE_PAGE + 5);
	if (d >= 0) {
		close(d);
		if (next_page > highest_page) {
			highest_page = next_page;
			pages++;
		}
	}
	next_page = (next_page + 1) * TABLE_PAGE + 5 < fd_limit ? next_page + 1 : 1;
	close(dup(keeper));
	if (dup2(keeper, SPARE_FD) == SPARE_FD)
		close(SPARE_FD);
	if (dup3(keeper, SPARE_FD, O_CLOEXEC) == SPARE_FD)
		close(SPARE_FD);
	int c = atomic_load(&connecting);
	if (++handled % 16 == 0 && c >= 0 && dup2(devnull, c) == c) {
		atomic_store(&replaced, c);
		replacements++;
	}
	errno = saved;
}

static void on_watchdog(int sig)
{
	static const char msg[] = "sigsafe: DEADLOCK: the run did not end in time\n";

	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(3);
}

/* Bursts of 8 signals 100 to 200 us apart, then 10 to 20 ms of quiet: long enough for some
 * sibling connects to get through (a signal during the vsock connect or the wait for the
 * hand-over makes the shim use TCP), so that signals also land in their swaps. */
static void *ticker(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !atomic_load(&stop); i++) {
		long us = i % 8 == 7 ? 10000 + (long)(i * 7919 % 10000) : 100 + (long)(i * 7919 % 100);
		struct timespec ts = {.tv_nsec = us * 1000};
		pthread_kill(main_thread, SIGUSR1);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void churn(unsigned seed)
{
	for (unsigned i = 0; i < 16; i++) {
		char *p = malloc(2048 + (seed * 31 + i * 977) % 63488);
		if (!p)
			die("malloc");
		p[0] = 1;
		free(p);
	}
}

static bool is_devnull(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode);
}

/* One connection and its echo. Returns 1 on a wrong result, else 0; *clobbered is set when
 * the handler's /dev/null on the descriptor did not survive. */
static int one_connection(const struct sockaddr_storage *ss, socklen_t len, unsigned n,
			  long *connected, long *clobbered)
{
	char out = (char)n, back = 0;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	atomic_store(&connecting, fd);
	int rc = connect(fd, (const struct sockaddr *)ss, len);
	atomic_store(&connecting, -1);
	if (atomic_exchange(&replaced, -1) == fd) {
		*clobbered += !is_devnull(fd);
	} else if (rc == 0) {
		++*connected;
		ssize_t w;
		while ((w = write(fd, &out, 1)) < 0 && errno == EINTR)
			;
		ssize_t r = 0;
		while (w == 1 && (r = read(fd, &back, 1)) < 0 && errno == EINTR)
			;
		if (w != 1 || r != 1 || back != out) {
			fprintf(stderr, "sigsafe: connection %u: echo wrong (%zd, %zd)\n", n, w, r);
			close(fd);
			return 1;
		}
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		die("usage: sigsafe HOST PORT SECONDS");
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[1], atoi(argv[2]), &ss);
	int seconds = atoi(argv[3]);
	struct rlimit rl = {.rlim_cur = 1 << 20, .rlim_max = 1 << 20};

	/* room for many pages of the shim's table: as many numbers as allowed */
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 &&
	    (getrlimit(RLIMIT_NOFILE, &rl) < 0 || (rl.rlim_cur = rl.rlim_max,
						   setrlimit(RLIMIT_NOFILE, &rl) < 0)))
		die("RLIMIT_NOFILE");
	fd_limit = (int)rl.rlim_cur;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	keeper = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (devnull < 0 || keeper < 0 || connect(keeper, (struct sockaddr *)&ss, len) < 0)
		die("the kept connection to %s", argv[1]);

	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	struct sigaction wd = {.sa_handler = on_watchdog};
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || sigaction(SIGALRM, &wd, NULL) < 0)
		die("sigaction");
	alarm((unsigned)(seconds + WATCHDOG_SLACK_S));
	main_thread = pthread_self();
	pthread_t tick;
	if (pthread_create(&tick, NULL, ticker, NULL))
		die("pthread_create");

	long connected = 0, clobbered = 0;
	int wrong = 0;
	unsigned n = 0;
	time_t end = time(NULL) + seconds;
	for (; n < MAX_CONNECTIONS && time(NULL) < end && !wrong; n++) {
		churn(n);
		wrong = one_connection(&ss, len, n, &connected, &clobbered);
		close(dup(keeper));
	}
	atomic_store(&stop, true);
	pthread_join(tick, NULL);
	alarm(0);
	printf("sigsafe: %u connections (%ld echoed), %ld signals handled, F_DUPFD onto %ld "
	       "pages of numbers new to the table, %ld descriptors made /dev/null during "
	       "connect, %ld of them replaced\n",
	       n, connected, atomic_load(&handled), atomic_load(&pages),
	       atomic_load(&replacements), clobbered);
	return wrong || clobbered ? 1 : 0;
}
