/* The control socket. It is open to every local user (0666): each request that concerns a
 * socket carries that socket, and helperd believes only what it sees of it. One request per
 * connection; anything malformed is logged (limited per user) and dropped without an
 * answer. No user can crowd the others out: each (but root) may hold CONN_PER_UID
 * connections at once, and a connection that has not asked within REQUEST_MS is closed, as
 * is one that has not read its status answer (sent as the reader takes it) within as long. */
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uthash.h>
#include <utlist.h>

#include "control.h"
#include "counters.h"
#include "channel.h"
#include "helperd.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "siblings.h"
#include "status.h"
#include "vmshim/fdpass.h"
#include "vmshim/proto.h"
#include "vmshim/clock.h"

#define CONN_MAX 1024
#define CONN_PER_UID 64
#define REQUEST_MS 1000

struct conn {
	struct watch w;
	struct share *share;
	int64_t deadline_ms;
	char *answer; /* a status answer on its way */
	size_t answer_len, answer_off;
	struct conn *prev, *next; /* the open ones, oldest first */
};

/* The open connections of one user. */
struct share {
	uid_t uid;
	unsigned open;
	UT_hash_handle hh;
};

static struct watch listener = {.fd = -1};
static char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static struct conn *conns;
static struct share *shares;
static int n_conns;

static void release_share(struct share *sh)
{
	if (--sh->open == 0) {
		HASH_DEL(shares, sh);
		free(sh);
	}
}

static void close_conn(struct conn *c)
{
	DL_DELETE(conns, c);
	n_conns--;
	release_share(c->share);
	free(c->answer);
	loop_retire(&c->w);
	close(c->w.fd);
}

/* The share of the user at the other end of s, with room for one more connection; NULL
 * (logged) when that user or helperd has none left. */
static struct share *share_for(int s)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct share *sh;

	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return NULL;
	HASH_FIND(hh, shares, &cred.uid, sizeof(cred.uid), sh);
	if (n_conns >= CONN_MAX || (sh && cred.uid != 0 && sh->open >= CONN_PER_UID)) {
		log_limited(LOG_SOURCE(LOG_KIND_UID, cred.uid), LOG_WARNING,
			    "control: uid %u has too many open requests, one refused",
			    (unsigned)cred.uid);
		return NULL;
	}
	if (!sh) {
		sh = calloc(1, sizeof(*sh));
		if (!sh)
			return NULL;
		sh->uid = cred.uid;
		HASH_ADD(hh, shares, uid, sizeof(sh->uid), sh);
	}
	sh->open++;
	return sh;
}

/* Sends what the socket takes of c's status answer, in messages of VMSHIM_STATUS_CHUNK
 * bytes; the rest when it is writable again. The connection closes once all is sent. */
static void send_answer(struct conn *c)
{
	while (c->answer_off < c->answer_len) {
		size_t len = c->answer_len - c->answer_off;
		ssize_t n = send(c->w.fd, c->answer + c->answer_off,
				 len < VMSHIM_STATUS_CHUNK ? len : VMSHIM_STATUS_CHUNK,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN && loop_mod(&c->w, EPOLLOUT) == 0)
			return;
		if (n < 0) {
			log_limited(LOG_SOURCE(LOG_KIND_UID, c->share->uid), LOG_WARNING,
				    "control: cannot answer a status request of uid %u: %m",
				    (unsigned)c->share->uid);
			break;
		}
		c->answer_off += (size_t)n;
	}
	close_conn(c);
}

static void answer_status(struct conn *c, bool json)
{
	c->answer = status_render(json, &c->answer_len);
	if (!c->answer) {
		log_warn("control: cannot make a status answer: %m");
		close_conn(c);
		return;
	}
	/* it has as long to read the answer as it had to ask */
	DL_DELETE(conns, c);
	c->deadline_ms = vmshim_now_ms() + REQUEST_MS;
	DL_APPEND(conns, c);
	send_answer(c);
}

static void handle(int sock, const struct vmshim_request *req, int fd)
{
	struct vmshim_reply reply = {.magic = VMSHIM_PROTO_MAGIC};
	const struct channel *ch = NULL;
	int reply_fd = -1;

	switch (req->type) {
	case VMSHIM_REQ_REGISTER:
		reply.status = siblings_register(fd, &ch);
		if (reply.status == 0) {
			memcpy(reply.secret, channel_secret(ch), sizeof(reply.secret));
			reply_fd = channel_receiver(ch);
		}
		break;
	case VMSHIM_REQ_CLOSED:
		helperd_mark(CHANGED_LISTENER_MAY_BE_GONE);
		return; /* no answer expected */
	case VMSHIM_REQ_COUNTERS:
		reply.status = counters_fd() < 0 ? ENOENT : 0;
		reply_fd = counters_fd();
		break;
	}
	if (fdpass_send(sock, &reply, sizeof(reply), reply_fd) < 0)
		log_warn("control: cannot answer: %m");
}

static void on_conn(struct watch *w, uint32_t events)
{
	struct conn *c = w->owner;
	struct vmshim_request req;
	int fd = -1;

	(void)events;
	if (c->answer) {
		send_answer(c);
		return;
	}
	ssize_t n = fdpass_recv(w->fd, &req, sizeof(req), &fd);
	const char *why;

	if (n < 0 && errno == EAGAIN)
		return;
	if (n == 0) {
		/* the client went away without asking */
	} else if (proto_check_request(&req, n, fd >= 0, &why) < 0) {
		log_limited(LOG_SOURCE(LOG_KIND_UID, c->share->uid), LOG_WARNING,
			    "control: malformed request from uid %u dropped (%zd bytes): %s",
			    (unsigned)c->share->uid, n, why);
	} else if (req.type == VMSHIM_REQ_STATUS) {
		answer_status(c, req.port == VMSHIM_STATUS_JSON); /* no descriptor came with it */
		return;
	} else {
		handle(w->fd, &req, fd);
	}
	if (fd >= 0)
		close(fd);
	close_conn(c);
}

static void on_listener(struct watch *w, uint32_t events)
{
	(void)events;
	for (;;) {
		int s = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("control: accept: %m");
			return;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (!c || !(c->share = share_for(s))) {
			free(c);
			close(s);
			continue;
		}
		c->w = (struct watch){.fd = s, .on_event = on_conn, .owner = c};
		if (loop_add(&c->w, EPOLLIN) < 0) {
			release_share(c->share);
			free(c);
			close(s);
			continue;
		}
		c->deadline_ms = vmshim_now_ms() + REQUEST_MS;
		DL_APPEND(conns, c);
		n_conns++;
	}
}

/* Whether c's request waits unread. */
static bool request_waiting(const struct conn *c)
{
	char byte;

	return !c->answer && recv(c->w.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

void control_expire(int64_t now_ms)
{
	while (conns && conns->deadline_ms <= now_ms) {
		/* A loop that ran late (a loaded guest) may come here before the request it
		 * has not read yet: that one is served (it leaves the list or gets the time
		 * to read its answer), not blamed for helperd's delay. */
		struct conn *c = conns;

		if (request_waiting(c))
			on_conn(&c->w, EPOLLIN);
		if (conns == c && c->deadline_ms <= now_ms)
			close_conn(c);
	}
}

int control_open(const char *rundir)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", rundir, VMSHIM_SOCKET_FILE) >=
	    sizeof(path)) {
		log_err("run directory %s: path too long for a socket", rundir);
		return -1;
	}
	memcpy(sun.sun_path, path, sizeof(path));
	unlink(path);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0666) < 0 ||
	    listen(s, 64) < 0) {
		log_err("cannot listen on %s: %m", path);
		if (s >= 0)
			close(s);
		return -1;
	}
	listener = (struct watch){.fd = s, .on_event = on_listener};
	return loop_add(&listener, EPOLLIN);
}

void control_close(void)
{
	struct conn *c, *tmp;

	DL_FOREACH_SAFE(conns, c, tmp)
		close_conn(c);
	if (listener.fd < 0)
		return;
	loop_del(&listener);
	close(listener.fd);
	unlink(path);
	listener.fd = -1;
}
