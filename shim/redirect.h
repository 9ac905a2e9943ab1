#ifndef VMSHIM_REDIRECT_H
#define VMSHIM_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fdstate.h"
#include "swap.h"
#include "vmshim/endpoint.h"
#include "vmshim/relayproto.h"
#include "vmshim/table.h"

enum redirect_result {
	REDIRECT_TCP,         /* the sibling path did not work out: fd is TCP's, untouched, or
			       * its own socket back with TCP's connect under way (a blocking
			       * connect() finishes it as TCP would) */
	REDIRECT_DONE,        /* fd is the connection */
	REDIRECT_IN_PROGRESS, /* going on in the background: connect() says EINPROGRESS */
	REDIRECT_ALREADY,     /* a connect of fd is already under way: EALREADY */
	REDIRECT_INTERRUPTED, /* a handler interrupted a blocking connect, which goes on: EINTR */
	REDIRECT_FD_GONE,     /* fd was closed meanwhile (its number may be another file's now) */
};

/* Connects fd to a sibling over vsock, as route says, and swaps the vsock socket onto fd's
 * number, presented as a TCP connection to dest, the address addr of family addr->sa_family.
 * connecting: for connect() (rather than sendto/sendmsg with MSG_FASTOPEN, which waits for
 * the outcome and leaves a fresh TCP socket on fd if the sibling path fails). errno is
 * preserved. */
enum redirect_result redirect_connect(int fd, const struct sockaddr *addr, socklen_t len,
				      const struct vmshim_endpoint *dest,
				      const struct vmshim_route *route, bool connecting);

/* One sibling connect under way: redirect.c speaks its protocol, pending.c drives it. */
enum sibling_step { STEP_CONNECTING, STEP_RELAY_REPLY, STEP_HANDOVER };

struct sibling_job {
	struct fd_state *pre; /* fd's state, held */
	int fd, vs;
	int placeholder; /* the read end of the pipe whose write end stands on fd */
	int deadline;    /* a timerfd: connect-timeout from the start, for every step */
	int aside;       /* where the job's own descriptors go (fd_aside_floor) */
	bool connect_tcp; /* on failure, start TCP's connect of fd's own socket */
	int app_family;
	enum sibling_step step;
	size_t got;
	uint8_t reply[RELAYPROTO_REPLY_SIZE];
	struct vmshim_route route;
	struct vmshim_endpoint dest, local;
	struct sockaddr_storage addr;
	socklen_t addr_len;
};

enum sibling_wait {
	SIBLING_WAIT_OUT,  /* for the vsock connect */
	SIBLING_WAIT_IN,   /* for the relay's reply or the hand-over */
	SIBLING_CONNECTED, /* the server's application took the connection */
	SIBLING_FAILED,    /* errno says why: TCP decides */
};

/* The next step of job once its vsock socket is ready; never blocks. */
enum sibling_wait sibling_advance(struct sibling_job *job);

/* Swaps the connected vsock socket onto the job's descriptor; kept is the application's
 * TCP socket, whose options go over. The caller counts it first (VMSHIM_COUNT_REDIRECTED):
 * the swap lets the application go on, and it may exit at once. */
enum swap_result sibling_swap_in(struct sibling_job *job, int kept);

/* Counts and logs a sibling path given up for err. */
void sibling_given_up(const struct sibling_job *job, int err);

#endif
