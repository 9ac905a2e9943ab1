/* close() on another thread during a sibling connect() (issue 16, item 6): the number is
 * free again while the vsock connect is under way, and the program opens a file that takes
 * it. Whatever connect() then returns, that file must stay the file.
 *
 *   close_race HOST PORT ROUNDS
 *
 * Each round: a thread connects a new socket to HOST:PORT; after a delay that sweeps the
 * connect's duration, the main thread closes the socket and opens a file, which gets the
 * same number. Once connect() has returned, the number must still be that file. Prints
 * "ok: ..." with how many rounds reused the number during the connect, or FAIL.
 *
 * First, the process's first sibling connect, which makes what the shim keeps for the
 * process's life: open() must then give the number it would have given without the shim. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define DEADLINE_S 120
#define MAX_DELAY_US 20000

static struct sockaddr_storage dest;
static socklen_t dest_len;

struct round {
	int fd;
	atomic_bool started, done;
	int rc, err;
};

static void *connector(void *arg)
{
	struct round *r = arg;

	atomic_store(&r->started, true);
	r->rc = connect(r->fd, (struct sockaddr *)&dest, dest_len);
	r->err = errno;
	atomic_store(&r->done, true);
	return NULL;
}

/* The lowest free number before a first connect is still free after it. */
static void lowest_number_kept(const char *path)
{
	int s = socket(dest.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int lowest = dup(0);

	if (s < 0 || lowest < 0)
		die("socket/dup");
	close(lowest);
	int rc = connect(s, (struct sockaddr *)&dest, dest_len);
	int file = open(path, O_RDONLY | O_CLOEXEC);
	if (file != lowest) {
		errno = EBADMSG;
		die("after the first connect (which said %d), open() gave number %d, not %d: "
		    "something of the shim's stays on %d", rc, file, lowest, lowest);
	}
	close(file);
	close(s);
}

int main(int argc, char **argv)
{
	char path[] = "/tmp/close_race.XXXXXX";
	unsigned reused = 0, connected = 0;

	if (argc != 4) {
		errno = EINVAL;
		die("usage: close_race HOST PORT ROUNDS");
	}
	dest_len = parse_addr(argv[1], atoi(argv[2]), &dest);
	unsigned rounds = (unsigned)atoi(argv[3]);
	int tmp = mkstemp(path);
	if (tmp < 0)
		die("mkstemp");
	close(tmp);
	lowest_number_kept(path);
	time_t deadline = time(NULL) + DEADLINE_S;
	for (unsigned i = 0; i < rounds && time(NULL) < deadline; i++) {
		struct round r = {.fd = socket(dest.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
		pthread_t t;
		if (r.fd < 0 || pthread_create(&t, NULL, connector, &r))
			die("round %u: socket/pthread_create", i);
		while (!atomic_load(&r.started))
			sched_yield();
		usleep((useconds_t)(i * 7919 % MAX_DELAY_US));
		bool during = !atomic_load(&r.done);
		close(r.fd);
		int file = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (file < 0)
			die("round %u: open", i);
		pthread_join(t, NULL);
		connected += r.rc == 0;
		if (file != r.fd || !during)
			goto next;
		reused++;
		struct stat st;
		if (fstat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
			errno = EBADMSG;
			die("round %u: the file opened on number %d during connect() is now a %s "
			    "(connect said %d, errno %d)",
			    i, file, S_ISSOCK(st.st_mode) ? "socket" : "something else", r.rc, r.err);
		}
next:
		close(file);
		/* Nothing of the round stays open: no connection swapped onto the number after
		 * the close. */
		if (fcntl(r.fd, F_GETFD) >= 0) {
			errno = EBADMSG;
			die("round %u: number %d open again after close()", i, r.fd);
		}
	}
	unlink(path);
	printf("ok: %u rounds, %u of them closed the socket and reused its number during "
	       "connect(), %u connects returned 0; the file kept its number every time\n",
	       rounds, reused, connected);
	return 0;
}
