/* Reading what comes first on an accepted vsock connection (preface.h). Anything wrong with
 * it (late, short, malformed, no room) closes the connection, logged at most a few times a
 * second per sender: the sender may be hostile, and its shim, if honest, falls back to
 * TCP. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helperd.h"
#include "preface.h"
#include "share.h"
#include "vmshim/clock.h"
#include "vmshim/dialled.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "vmshim/relayproto.h"
#include "vmshim/vsock.h"

/* Each holds a descriptor until its message comes (most need no room: the message came
 * with the connection); the rest of helperd's descriptors are the doorbell pool's, the
 * bridge's and its own (fdbudget.h). */
#define ROOM 1024
#define RELAY_HOLDER UINT64_MAX

/* Reads one message into the arrival: 0, or -1 with the broken rule in *why. */
typedef int parse_fn(const uint8_t *msg, struct arrival *a, const char **why);

struct waiting {
	struct watch w;
	struct arrival a;
	const char *what; /* the message, for the log */
	parse_fn *parse;
	preface_done_fn *done;
	struct share *share;
	int64_t deadline_ms;
	unsigned size, have;
	uint8_t msg[RELAYPROTO_FROM_SIZE > DIALLED_SIZE ? RELAYPROTO_FROM_SIZE : DIALLED_SIZE];
	struct waiting *prev, *next;
};

static struct waiting *waitings;
static struct share *shares;
static unsigned in_room;

static void forget(struct waiting *p)
{
	*(p->prev ? &p->prev->next : &waitings) = p->next;
	if (p->next)
		p->next->prev = p->prev;
	share_give(&shares, p->share);
	in_room--;
	loop_retire(&p->w);
}

static void refuse(int fd, const struct arrival *a, const char *what, const char *why)
{
	helperd.counters.bad_messages++;
	log_limited(LOG_SOURCE(LOG_KIND_CID, a->from.svm_cid), LOG_WARNING,
		    "vsock connection from cid %u port %u to port %u closed: %s %s",
		    a->from.svm_cid, a->from.svm_port, a->vport, what, why);
	close(fd);
}

/* What came of a message once recv said (got: relayproto_recv's answer, not 0): parsed, fd
 * goes to done; or refused. */
static void finish(int fd, struct arrival *a, const char *what, parse_fn *parse,
		   preface_done_fn *done, int got, const uint8_t *msg)
{
	const char *why;

	if (got < 0)
		why = errno ? "unreadable" : "not sent before the connection ended";
	else if (parse(msg, a, &why) == 0) {
		done(fd, a);
		return;
	}
	refuse(fd, a, what, why);
}

static void on_readable(struct watch *w, uint32_t events)
{
	struct waiting *p = w->owner;

	(void)events;
	int got = relayproto_recv(w->fd, p->msg, p->size, &p->have);
	if (got == 0)
		return;
	forget(p); /* p itself lives until this batch of events is dispatched */
	finish(w->fd, &p->a, p->what, p->parse, p->done, got, p->msg);
}

static void wait_for(int fd, const struct arrival *a, uint64_t holder, const char *what,
		     unsigned size, parse_fn *parse, preface_done_fn *done)
{
	struct waiting *p = calloc(1, sizeof(*p));
	struct arrival now = *a;

	if (!p) {
		refuse(fd, a, what, "not read: out of memory");
		return;
	}
	*p = (struct waiting){.w = {.fd = fd, .on_event = on_readable, .owner = p},
			      .a = *a,
			      .what = what,
			      .parse = parse,
			      .done = done,
			      .deadline_ms = vmshim_now_ms() + helperd.policy->connect_timeout_ms,
			      .size = size};
	/* Mostly the message came with the connection: then it takes no room. */
	int got = relayproto_recv(fd, p->msg, size, &p->have);
	if (got != 0) {
		uint8_t msg[sizeof(p->msg)];
		memcpy(msg, p->msg, sizeof(msg));
		free(p);
		finish(fd, &now, what, parse, done, got, msg);
		return;
	}
	p->share = in_room < ROOM ? share_take(&shares, holder, ROOM / 4) : NULL;
	if (!p->share || loop_add(&p->w, EPOLLIN) < 0) {
		share_give(&shares, p->share);
		free(p);
		refuse(fd, a, what, "not read: no room for it");
		return;
	}
	p->next = waitings;
	if (waitings)
		waitings->prev = p;
	waitings = p;
	in_room++;
}

static int parse_from(const uint8_t *msg, struct arrival *a, const char **why)
{
	struct relayproto_addr addr;

	if (relayproto_parse_from(msg, &addr, why) < 0)
		return -1;
	a->from = vsock_addr(addr.cid, addr.port);
	return 0;
}

static int parse_dialled(const uint8_t *msg, struct arrival *a, const char **why)
{
	return dialled_parse(msg, &a->dialled, why);
}

void preface_relayed(int fd, const struct arrival *a, preface_done_fn *done)
{
	wait_for(fd, a, RELAY_HOLDER, "the relay's FROM", RELAYPROTO_FROM_SIZE, parse_from, done);
}

void preface_dialled(int fd, const struct arrival *a, int peer, preface_done_fn *done)
{
	wait_for(fd, a, (uint64_t)peer, "DIALLED", DIALLED_SIZE, parse_dialled, done);
}

void preface_expire(int64_t now_ms)
{
	for (struct waiting *p = waitings, *next; p; p = next) {
		next = p->next;
		if (now_ms >= p->deadline_ms) {
			refuse(p->w.fd, &p->a, p->what, "not sent in time");
			forget(p);
		}
	}
}

void preface_shutdown(void)
{
	while (waitings) {
		close(waitings->w.fd);
		forget(waitings);
	}
}
