/* Sibling connects that go on in the background, as TCP's connects do: a non-blocking
 * connect() says EINPROGRESS at once, a blocking one waits but may be interrupted (EINTR)
 * and goes on all the same. */
#ifndef VMSHIM_PENDING_H
#define VMSHIM_PENDING_H

#include <stdbool.h>

#include "fdstate.h"
#include "redirect.h"

enum pending_start {
	PENDING_STARTED,     /* fd holds the placeholder; the shim thread owns the job */
	PENDING_NOT_STARTED, /* fd and the job untouched (out of descriptors or memory) */
	PENDING_FD_GONE,     /* fd was closed meanwhile; the job untouched */
};

/* How a pending connect ended (pre.outcome). */
enum pending_outcome {
	PENDING_CONNECTED, /* fd is the sibling connection */
	PENDING_TCP,       /* fd is its own TCP socket again, TCP's connect under way */
	PENDING_GONE,      /* fd was closed meanwhile */
};

/* A place among the connects pending at once (at most PENDING_MAX, pending.c), waited for
 * at most timeout_ms (connect-timeout; 0: the kernel's 2 s): false when none came. Each pending_start() needs one, which the job
 * gives back when it ends; one not used goes back with pending_unreserve(). */
bool pending_reserve(unsigned timeout_ms);
void pending_unreserve(void);

/* Puts the placeholder on job->fd, the application's TCP socket aside, and hands the job,
 * its vsock connect started, to the shim thread. */
enum pending_start pending_start(struct sibling_job *job);

/* Waits until the connect pending on fd (whose state pre the caller holds) ends: DONE, TCP
 * (connect() finishes TCP's), FD_GONE; INTERRUPTED when interruptible and a signal handler
 * without SA_RESTART ran, as TCP's connect() is. */
enum redirect_result pending_wait(int fd, struct fd_state *pre, bool interruptible);

/* fd's state with a reference if a connect is pending on it, else NULL. */
struct fd_state *pending_acquire(int fd);

/* For the hooks that answer for a pending fd from its TCP socket: fd's state, locked, with
 * the socket in *kept, while the connect is pending; else NULL. pending_unhold ends it. */
struct fd_state *pending_hold(int fd, int *kept);
void pending_unhold(struct fd_state *pre);

/* TCP's error for fd that its connect() could not say (a non-blocking one whose fallback
 * failed at once), taken: 0 if none. */
int pending_take_error(int fd);

/* A forked child has no shim thread: it makes its own when it needs one (pthread_atfork,
 * registered with the first thread). */
void pending_after_fork(void);

#endif
