#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>

#include "arrivals.h"
#include "helperd_client.h"
#include "shim.h"
#include "vmshim/fdpass.h"
#include "vmshim/handover.h"

/* A doorbell reaches the listener with its secret (helperd/doorbell.c): only a helperd that
 * was descheduled between two system calls for longer than the kernel delays an ACK makes
 * one come first. */
#define SECRET_WAIT_MS 200

static struct fd_state *listener_state(uint16_t port, unsigned options_set, int channel,
				       const uint8_t *secret)
{
	struct fd_state *st = fdstate_new(FD_SIBLING_LISTENER, 0);
	struct stat cs;

	if (!st || fstat(channel, &cs) < 0) {
		fdstate_release(st);
		real.close(channel);
		return NULL;
	}
	st->listener.port = port;
	atomic_init(&st->listener.options_set, options_set);
	st->listener.channel = channel;
	st->listener.channel_ino = cs.st_ino;
	memcpy(st->listener.secret, secret, VMSHIM_SECRET_LEN);
	return st;
}

struct fd_state *arrivals_register(int fd, uint16_t port, unsigned options_set,
				   uintptr_t expected)
{
	struct vmshim_reply reply;
	int channel;

	if (helperd_call(VMSHIM_REQ_REGISTER, port, fd, &reply, &channel) != 0 ||
	    reply.status != 0)
		return NULL;
	struct fd_state *st = listener_state(port, options_set, channel, reply.secret);
	if (!st)
		return NULL;
	atomic_fetch_add(&st->refs, 1); /* the caller's, besides the slot's */
	/* Failing (the slot changed meanwhile, or there is no memory for it), fdstate_replace
	 * drops the slot's reference itself: st is the caller's alone. */
	if (fdstate_replace(fd, expected, (uintptr_t)st) < 0)
		shim_debug("fd %d: listener's state changed while it registered", fd);
	return st;
}

/* What poll says of the channel now. */
static short channel_events(const struct fd_state *ls)
{
	struct pollfd pfd = {.fd = ls->listener.channel, .events = POLLIN | POLLRDHUP};

	return poll(&pfd, 1, 0) == 1 ? pfd.revents : 0;
}

bool arrivals_channel_live(const struct fd_state *ls)
{
	return ls && fdstate_channel_ours(ls) &&
	       !(channel_events(ls) & (POLLHUP | POLLRDHUP | POLLNVAL));
}

/* 1: c's data is the secret; 0: something else, or c's peer closed; -1: nothing came yet. */
static int secret_there(int c, const uint8_t *secret)
{
	uint8_t got[VMSHIM_SECRET_LEN];
	ssize_t n = recv(c, got, sizeof(got), MSG_PEEK | MSG_DONTWAIT); /* not interposed */

	if (n < 0 && errno == EAGAIN)
		return -1;
	return n == (ssize_t)sizeof(got) && memcmp(got, secret, sizeof(got)) == 0;
}

bool arrivals_rang(int c, const struct fd_state *ls)
{
	if (!ls || ls->kind != FD_SIBLING_LISTENER || ls->listener.channel < 0)
		return false;
	int there = secret_there(c, ls->listener.secret);
	if (there < 0 && fdstate_channel_ours(ls) && (channel_events(ls) & POLLIN)) {
		struct pollfd pfd = {.fd = c, .events = POLLIN};
		if (poll(&pfd, 1, SECRET_WAIT_MS) == 1)
			there = secret_there(c, ls->listener.secret);
	}
	return there == 1 && fdstate_channel_ours(ls);
}

enum arrival_result arrivals_next(const struct fd_state *ls, int family,
				  struct vmshim_arrival *a, int *vs)
{
	const char *why;
	ssize_t n = fdpass_recv(ls->listener.channel, a, sizeof(*a), vs);

	if (n < 0 && errno == EAGAIN)
		return ARRIVAL_NONE;
	if (proto_check_arrival(a, n, *vs >= 0, family, &why) < 0) {
		shim_debug("arrival refused: %s", why);
		if (*vs >= 0)
			real.close(*vs);
		return ARRIVAL_BAD;
	}
	return ARRIVAL_TAKEN;
}

enum arrival_result arrivals_take(int c, const struct fd_state *ls, int family,
				  struct vmshim_arrival *a, int *vs)
{
	uint8_t secret[VMSHIM_SECRET_LEN];
	static const char taken = VMSHIM_HANDOVER_BYTE;

	(void)!recv(c, secret, sizeof(secret), MSG_DONTWAIT);
	enum arrival_result r = arrivals_next(ls, family, a, vs);
	if (r == ARRIVAL_NONE) {
		shim_debug("fd %d: a doorbell with no arrival in its channel", c);
		return r; /* helperd took it back, its client uses TCP */
	}
	/* One arrival is gone: helperd must not take another back for this doorbell. (With no
	 * descriptor left for its connection, the kernel dropped that, and its client falls
	 * back to TCP.) */
	(void)!send(c, &taken, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	return r;
}
