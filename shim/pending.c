/* Sibling connects in the background. TCP's connect() returns at once on a non-blocking
 * socket (EINPROGRESS) and goes on when a signal interrupts a blocking one (EINTR); the
 * sibling path's steps (vsock connect, the relay's reply, DIALLED, the hand-over byte that
 * comes once the server's application accepted) must do the same, or a single-threaded
 * event loop stalls on every sibling connect, and a signal makes the shim give up a
 * connection the server may already have taken.
 *
 * So one shim thread, made the first time a process connects to a sibling (never for a
 * program that does not), drives every sibling connect of the process through its steps
 * with its own epoll, under one deadline (connect-timeout) for all of them. The thread has
 * every signal blocked: the application's handlers run only on its own threads. A blocking
 * connect() goes the same way and waits for the outcome on a futex, which the kernel
 * restarts after an SA_RESTART handler and interrupts (EINTR) otherwise, as TCP's wait.
 *
 * Meanwhile the application's descriptor holds a placeholder, the write end of a full
 * pipe: it never polls ready (no POLLOUT while full, no POLLHUP while the thread holds the
 * read end), a non-blocking write() says EAGAIN as a connecting TCP socket's does, and
 * closing the read end wakes whoever sleeps on it in poll() or select(), who then finds the
 * new file. Its TCP socket waits aside ("kept"), with everything the application set on it;
 * the hooks answer for the descriptor from it (sockopt.c, names.c). At the end the thread
 * swaps onto the descriptor the connection, or the TCP socket with TCP's own connect
 * started (its result is TCP's, to the errno), under the identity check of every swap
 * (fdstate_swap_begin): a descriptor closed meanwhile is never touched, whatever took its
 * number. epoll registrations move with each swap (swap.c).
 *
 * What differs from a connecting TCP socket while pending: fstat() shows a FIFO, F_GETFL
 * O_WRONLY, read() and recv() fail with EBADF and ENOTSOCK (TCP: EAGAIN), a blocking write()
 * from another thread blocks and then fails with EPIPE (SIGPIPE); getsockname() shows the unbound
 * socket; a dup() or fork() made meanwhile keeps the placeholder on the duplicate, which
 * never completes (as a socket dup()ed before connect keeps the unconnected TCP socket). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "aside.h"
#include "counters.h"
#include "own_path.h"
#include "pending.h"
#include "shim.h"
#include "swap.h"
#include "vmshim/clock.h"
#include "vmshim/vsock.h"

/* What woke the thread for a job: the tag in the low bits of the job's address. */
enum source { FROM_VSOCK, FROM_PLACEHOLDER, FROM_DEADLINE };
#define SOURCE_MASK ((uint64_t)3)

#define PLACEHOLDER_PAGE 4096
#define PLACEHOLDER_PAGES_MAX 256 /* 1 MiB, the most a pipe holds unless root raised it */

static _Atomic int engine = -1; /* the thread's epoll, once it runs */
static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;

/* A wait (with a relative timeout, or none: NULL) or a wake on word. */
static long futex(_Atomic int *word, int op, int value, const struct timespec *timeout)
{
	return syscall(SYS_futex, (int *)word, op, value, timeout, NULL, 0);
}

/* Connects pending at once in this process. Each holds four descriptors besides the
 * application's (its vsock socket, the TCP socket kept aside, the placeholder's read end, its
 * timer), which a program that sized its descriptor limit for TCP has not set aside: a
 * thousand non-blocking connects at once would run it out (t_stress). Beyond PENDING_MAX a
 * connect() waits for one to end, as before the thread, at most connect-timeout. */
#define PENDING_MAX 8
static _Atomic int pending_jobs;

bool pending_reserve(unsigned timeout_ms)
{
	int64_t end = vmshim_now_ms() + vsock_connect_timeout_ms(timeout_ms);

	for (;;) {
		int n = atomic_load(&pending_jobs);
		if (n < PENDING_MAX) {
			if (atomic_compare_exchange_weak(&pending_jobs, &n, n + 1))
				return true;
			continue;
		}
		int64_t left = end - vmshim_now_ms();
		if (left <= 0)
			return false;
		struct timespec wait = {left / 1000, (long)(left % 1000) * 1000000};
		futex(&pending_jobs, FUTEX_WAIT_PRIVATE, n, &wait);
	}
}

void pending_unreserve(void)
{
	atomic_fetch_sub(&pending_jobs, 1);
	futex(&pending_jobs, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* The kernel orders an epoll_ctl() before the epoll_wait() that returns its event.
 * ThreadSanitizer knows that only of an epoll at the number it saw made, and the thread's
 * epoll is moved aside (engine_epoll): say it where the job changes hands. */
#ifdef __SANITIZE_THREAD__
#include <sanitizer/tsan_interface.h>
#define handed_to_thread(job) __tsan_release(job)
#define taken_by_thread(job) __tsan_acquire(job)
#else
#define handed_to_thread(job) ((void)(job))
#define taken_by_thread(job) ((void)(job))
#endif

static int watch(int ep, int op, struct sibling_job *job, int fd, enum source source,
		 uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = (uintptr_t)job | source};

	handed_to_thread(job);
	return real.epoll_ctl(ep, op, fd, &ev);
}

static void unwatch(int ep, struct sibling_job *job)
{
	real.epoll_ctl(ep, EPOLL_CTL_DEL, job->vs, NULL);
	real.epoll_ctl(ep, EPOLL_CTL_DEL, job->placeholder, NULL);
	real.epoll_ctl(ep, EPOLL_CTL_DEL, job->deadline, NULL);
}

/* The sibling path failed: fd gets its own TCP socket back, with TCP's connect to the
 * destination started when connect() asked for one. An error TCP's connect says at once
 * cannot be connect()'s any more: SO_ERROR says it (pending_take_error). */
static enum pending_outcome fall_back(struct sibling_job *job, int *kept)
{
	struct fd_state *pre = job->pre;

	own_path_mark(*kept);
	if (job->connect_tcp) {
		int fl = real.fcntl(*kept, F_GETFL);
		real.fcntl(*kept, F_SETFL, (fl < 0 ? 0 : fl) | O_NONBLOCK); /* the swap resets it */
		if (real.connect(*kept, (struct sockaddr *)&job->addr, job->addr_len) < 0 &&
		    errno != EINPROGRESS)
			atomic_store(&pre->pre.error, errno);
	}
	switch (swap_in(job->fd, *kept, -1, pre, NULL)) {
	case SWAP_DONE:
		*kept = -1;
		return PENDING_TCP;
	case SWAP_FD_GONE:
		*kept = -1;
		return PENDING_GONE;
	case SWAP_FAILED:
		break;
	}
	shim_log("fd %d: could not put its TCP socket back (%s): it stays broken", job->fd,
		 strerror(errno));
	return PENDING_GONE;
}

/* Ends job: err 0 when the hand-over came, else why the sibling path failed; cancelled
 * when the application closed its descriptor. Frees job. Counting (which may ask helperd
 * for its page) comes first, before the lock that the hooks of the descriptor wait for. */
static void finish(int ep, struct sibling_job *job, int err, bool cancelled)
{
	struct fd_state *pre = job->pre;
	enum pending_outcome outcome = PENDING_GONE;

	if (!cancelled && err)
		sibling_given_up(job, err);
	else if (!cancelled)
		shim_count(VMSHIM_COUNT_REDIRECTED);
	pthread_mutex_lock(&pre->pre.lock);
	int kept = pre->pre.kept;
	unwatch(ep, job);
	if (!cancelled && !err) {
		switch (sibling_swap_in(job, kept)) {
		case SWAP_DONE:
			outcome = PENDING_CONNECTED;
			break;
		case SWAP_FD_GONE:
			break;
		case SWAP_FAILED:
			err = errno;
			sibling_given_up(job, err);
			break;
		}
	}
	if (!cancelled && err)
		outcome = fall_back(job, &kept);
	if (cancelled)
		shim_debug("fd %d: closed during the sibling connect: connection dropped", job->fd);
	/* From here on a plain TCP socket, unless SO_ERROR has yet to say TCP's error. */
	if (outcome == PENDING_TCP && !atomic_load(&pre->pre.error))
		fdstate_replace(job->fd, (uintptr_t)pre, 0);
	if (kept >= 0)
		real.close(kept);
	if (job->vs >= 0)
		real.close(job->vs);
	real.close(job->deadline);
	pre->pre.kept = -1;
	atomic_store(&pre->pre.outcome, outcome);
	atomic_store(&pre->pre.pending, 0);
	pthread_mutex_unlock(&pre->pre.lock);
	real.close(job->placeholder); /* wakes poll() and select() on the placeholder */
	futex(&pre->pre.pending, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
	fdstate_release(pre);
	free(job);
	pending_unreserve();
}

/* One event for job. Only this thread ends jobs, and the vsock socket is watched last
 * (hand_over), so a step never races with the job being handed over. */
static void handle(int ep, struct sibling_job *job, enum source source)
{
	switch (source) {
	case FROM_PLACEHOLDER: /* every descriptor of the placeholder was closed */
		/* by a raw system call, if its state is still there */
		fdstate_replace(job->fd, (uintptr_t)job->pre, 0);
		finish(ep, job, 0, true);
		return;
	case FROM_DEADLINE:
		finish(ep, job, ETIMEDOUT, false);
		return;
	case FROM_VSOCK:
		break;
	}
	switch (sibling_advance(job)) {
	case SIBLING_WAIT_OUT:
		break;
	case SIBLING_WAIT_IN:
		watch(ep, EPOLL_CTL_MOD, job, job->vs, FROM_VSOCK, EPOLLIN);
		break;
	case SIBLING_CONNECTED:
		finish(ep, job, 0, false);
		return;
	case SIBLING_FAILED:
		finish(ep, job, errno, false);
		return;
	}
}

/* One event at a time: a job ended by one event is gone before the next epoll_wait. */
static void *engine_main(void *arg)
{
	int ep = (int)(intptr_t)arg;

	for (;;) {
		struct epoll_event ev;
		if (epoll_wait(ep, &ev, 1, -1) != 1)
			continue; /* EINTR after a stop and continue */
		struct sibling_job *job = (void *)(uintptr_t)(ev.data.u64 & ~SOURCE_MASK);
		taken_by_thread(job);
		handle(ep, job, (enum source)(ev.data.u64 & SOURCE_MASK));
	}
	return NULL;
}

static int start_thread(int ep)
{
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;

	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits the mask */
	int rc = pthread_create(&thread, &attr, engine_main, (void *)(intptr_t)ep);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return rc == 0 ? 0 : -1;
}

/* The thread's epoll, the thread made the first time; -1 if it cannot be. */
static int engine_epoll(void)
{
	int ep = atomic_load(&engine);

	if (ep >= 0)
		return ep;
	pthread_mutex_lock(&engine_lock);
	if ((ep = atomic_load(&engine)) < 0) {
		static bool fork_handled;
		if (!fork_handled)
			fork_handled = pthread_atfork(NULL, NULL, pending_after_fork) == 0;
		/* Aside, as every descriptor of the shim's that outlives a call: held for the
		 * process's life at the lowest free number, it would take the number that a
		 * close() on another thread had just freed, and every later open() would get a
		 * number one higher than without the shim. */
		ep = fd_aside(epoll_create1(EPOLL_CLOEXEC), fd_aside_floor());
		if (ep >= 0 && start_thread(ep) < 0) {
			real.close(ep);
			ep = -1;
		}
		atomic_store(&engine, ep);
	}
	pthread_mutex_unlock(&engine_lock);
	return ep;
}

void pending_after_fork(void)
{
	int ep = atomic_exchange(&engine, -1);

	pthread_mutex_init(&engine_lock, NULL);
	atomic_store(&pending_jobs, 0); /* the parent's jobs never end here */
	if (ep >= 0)
		real.close(ep); /* the parent's thread's: never to be waited on here */
}

/* The placeholder: a pipe whose write end (ends[1]) is full. A page is the least a pipe
 * holds (F_SETPIPE_SZ); should that fail, it is filled at its default size. */
static int placeholder(int ends[2])
{
	static const char page[PLACEHOLDER_PAGE];

	if (pipe2(ends, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	int size = real.fcntl(ends[1], F_SETPIPE_SZ, PLACEHOLDER_PAGE);
	int pages = size > 0 ? size / PLACEHOLDER_PAGE : PLACEHOLDER_PAGES_MAX;
	for (int i = 0; i < pages && i < PLACEHOLDER_PAGES_MAX; i++)
		if (write(ends[1], page, sizeof(page)) < 0)
			break;
	return 0;
}

static int arm(int timer, unsigned timeout_ms)
{
	unsigned ms = vsock_connect_timeout_ms(timeout_ms);
	struct itimerspec when = {.it_value = {.tv_sec = ms / 1000,
					       .tv_nsec = (long)(ms % 1000) * 1000000}};

	return timerfd_settime(timer, 0, &when, NULL);
}

static void close_if_open(int fd)
{
	if (fd >= 0)
		real.close(fd);
}

/* The thread takes the job: under pre's lock, which ending a job takes, so the thread
 * cannot end it while it is being handed over. */
static void hand_over(int ep, struct sibling_job *job)
{
	struct fd_state *pre = job->pre;

	pthread_mutex_lock(&pre->pre.lock);
	if (watch(ep, EPOLL_CTL_ADD, job, job->deadline, FROM_DEADLINE, EPOLLIN) < 0) {
		int err = errno;
		pthread_mutex_unlock(&pre->pre.lock);
		finish(ep, job, err, false); /* nothing watches it: end it here */
		return;
	}
	if (watch(ep, EPOLL_CTL_ADD, job, job->placeholder, FROM_PLACEHOLDER, 0) < 0 ||
	    watch(ep, EPOLL_CTL_ADD, job, job->vs, FROM_VSOCK, EPOLLOUT) < 0 ||
	    arm(job->deadline, job->route.timeout_ms) < 0)
		arm(job->deadline, 1); /* the thread ends it at once */
	pthread_mutex_unlock(&pre->pre.lock);
}

enum pending_start pending_start(struct sibling_job *job)
{
	struct fd_state *pre = job->pre;
	int ends[2] = {-1, -1}, kept = -1, ep = engine_epoll();
	enum swap_result swapped = SWAP_FAILED;

	job->deadline = fd_aside(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC),
				 job->aside);
	if (ep < 0 || job->deadline < 0 || placeholder(ends) < 0 ||
	    (kept = fd_aside_dup(job->fd, job->aside)) < 0)
		goto undo;
	ends[0] = fd_aside(ends[0], job->aside);
	job->placeholder = ends[0];
	pthread_mutex_lock(&pre->pre.lock);
	pre->pre.kept = kept;
	atomic_store(&pre->pre.error, 0);
	atomic_store(&pre->pre.pending, 1);
	pthread_mutex_unlock(&pre->pre.lock);
	swapped = swap_in(job->fd, ends[1], -1, pre, NULL);
	if (swapped == SWAP_DONE) {
		atomic_fetch_add(&pre->refs, 1); /* the job's */
		hand_over(ep, job);
		return PENDING_STARTED;
	}
	if (swapped == SWAP_FD_GONE)
		ends[1] = -1; /* closed by swap_in */
	pthread_mutex_lock(&pre->pre.lock);
	pre->pre.kept = -1;
	atomic_store(&pre->pre.pending, 0);
	pthread_mutex_unlock(&pre->pre.lock);
undo:
	close_if_open(kept);
	close_if_open(ends[0]);
	close_if_open(ends[1]);
	close_if_open(job->deadline);
	job->placeholder = job->deadline = -1;
	return swapped == SWAP_FD_GONE ? PENDING_FD_GONE : PENDING_NOT_STARTED;
}

enum redirect_result pending_wait(int fd, struct fd_state *pre, bool interruptible)
{
	while (atomic_load(&pre->pre.pending))
		if (futex(&pre->pre.pending, FUTEX_WAIT_PRIVATE, 1, NULL) < 0 && errno == EINTR &&
		    interruptible)
			return REDIRECT_INTERRUPTED;
	switch ((enum pending_outcome)atomic_load(&pre->pre.outcome)) {
	case PENDING_CONNECTED: {
		/* This connect() says 0 itself: the next one says EISCONN. */
		struct fd_state *st = fdstate_acquire_kind(fd, FD_REDIRECTED);
		if (st)
			atomic_store(&st->conn.in_progress, false);
		fdstate_release(st);
		return REDIRECT_DONE;
	}
	case PENDING_TCP:
		atomic_store(&pre->pre.error, 0); /* connect() sees TCP's error itself */
		return REDIRECT_TCP;
	case PENDING_GONE:
		break;
	}
	return REDIRECT_FD_GONE;
}

struct fd_state *pending_acquire(int fd)
{
	if (!fdstate_ptr(fdstate_peek(fd)))
		return NULL;
	struct fd_state *pre = fdstate_acquire_kind(fd, FD_PRECONNECT);
	if (pre && !atomic_load(&pre->pre.pending)) {
		fdstate_release(pre);
		pre = NULL;
	}
	return pre;
}

struct fd_state *pending_hold(int fd, int *kept)
{
	struct fd_state *pre = pending_acquire(fd);

	if (!pre)
		return NULL;
	pthread_mutex_lock(&pre->pre.lock);
	if (atomic_load(&pre->pre.pending)) {
		*kept = pre->pre.kept;
		return pre;
	}
	pthread_mutex_unlock(&pre->pre.lock);
	fdstate_release(pre);
	return NULL;
}

void pending_unhold(struct fd_state *pre)
{
	pthread_mutex_unlock(&pre->pre.lock);
	fdstate_release(pre);
}

int pending_take_error(int fd)
{
	if (!fdstate_ptr(fdstate_peek(fd)))
		return 0;
	struct fd_state *pre = fdstate_acquire_kind(fd, FD_PRECONNECT);
	int err = pre ? atomic_exchange(&pre->pre.error, 0) : 0;

	fdstate_release(pre);
	return err;
}
