/* The control socket. It is open to every local user (0666): each request that concerns a
 * socket carries that socket, and helperd believes only what it sees of it. One request per
 * connection; anything malformed is logged and dropped without an answer. */
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <utlist.h>

#include "control.h"
#include "counters.h"
#include "doorbell.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "siblings.h"
#include "status.h"
#include "vmshim/fdpass.h"
#include "vmshim/proto.h"

#define CONN_MAX 256

struct conn {
	struct watch w;
	struct conn *prev, *next; /* the open ones, closed with the socket */
};

static struct watch listener = {.fd = -1};
static char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static struct conn *conns;
static int n_conns;

static void close_conn(struct conn *c)
{
	DL_DELETE(conns, c);
	n_conns--;
	loop_retire(&c->w);
	close(c->w.fd);
}

static void answer_status(int sock, bool json)
{
	size_t len;
	char *text = status_render(json, &len);

	if (!text || send(sock, text, len, MSG_NOSIGNAL) < 0)
		log_warn("control: cannot answer a status request: %m");
	free(text);
}

static void handle(int sock, const struct vmshim_request *req, int fd)
{
	struct vmshim_reply reply = {.magic = VMSHIM_PROTO_MAGIC};
	int vs = -1;

	switch (req->type) {
	case VMSHIM_REQ_REGISTER:
		reply.status = siblings_register(fd);
		break;
	case VMSHIM_REQ_CLAIM:
		reply.status = doorbell_claim(fd, &reply, &vs);
		break;
	case VMSHIM_REQ_CLOSED:
		siblings_sweep();
		return; /* no answer expected */
	case VMSHIM_REQ_STATUS:
		answer_status(sock, req->port == 1);
		return;
	case VMSHIM_REQ_COUNTERS:
		reply.status = counters_fd() < 0 ? ENOENT : 0;
		if (fdpass_send(sock, &reply, sizeof(reply), counters_fd()) < 0)
			log_warn("control: cannot answer: %m");
		return;
	}
	if (fdpass_send(sock, &reply, sizeof(reply), vs) < 0)
		log_warn("control: cannot answer: %m");
	if (vs >= 0)
		close(vs);
}

static void on_conn(struct watch *w, uint32_t events)
{
	struct conn *c = w->owner;
	struct vmshim_request req;
	int fd = -1;
	ssize_t n = fdpass_recv(w->fd, &req, sizeof(req), &fd);
	const char *why;

	(void)events;
	if (n < 0 && errno == EAGAIN)
		return;
	if (n == 0) {
		/* the client went away without asking */
	} else if (proto_check_request(&req, n, fd >= 0, &why) < 0) {
		log_warn("control: malformed request dropped (%zd bytes): %s", n, why);
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
		struct conn *c = n_conns < CONN_MAX ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			log_warn("control: too many open requests, one refused");
			close(s);
			continue;
		}
		c->w = (struct watch){.fd = s, .on_event = on_conn, .owner = c};
		if (loop_add(&c->w, EPOLLIN) < 0) {
			close(s);
			free(c);
			continue;
		}
		DL_APPEND(conns, c);
		n_conns++;
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
