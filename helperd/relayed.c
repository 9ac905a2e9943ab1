/* Reading the relay's FROM (relayed.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helperd.h"
#include "relayed.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "vmshim/relayproto.h"
#include "vmshim/table.h"

struct pending {
	struct watch w;
	relayed_fn *done;
	uint32_t tag;
	int64_t deadline_ms;
	unsigned have;
	uint8_t from[RELAYPROTO_FROM_SIZE];
	struct pending *prev, *next;
};

static struct pending *pendings;

static void forget(struct pending *p)
{
	*(p->prev ? &p->prev->next : &pendings) = p->next;
	if (p->next)
		p->next->prev = p->prev;
	loop_retire(&p->w);
}

static void drop(struct pending *p, const char *why)
{
	helperd.counters.bad_messages++;
	log_warn("connection from the relay closed: %s", why);
	close(p->w.fd);
	forget(p);
}

static void on_readable(struct watch *w, uint32_t events)
{
	struct pending *p = w->owner;
	struct relayproto_addr addr;
	const char *why;

	(void)events;
	int got = relayproto_recv(w->fd, p->from, sizeof(p->from), &p->have);
	if (got == 0)
		return;
	if (got < 0) {
		drop(p, errno ? "unreadable" : "closed before FROM");
		return;
	}
	if (relayproto_parse_from(p->from, &addr, &why) < 0) {
		drop(p, why);
		return;
	}
	struct sockaddr_vm from = {.svm_family = AF_VSOCK, .svm_cid = addr.cid,
				   .svm_port = addr.port};
	int fd = w->fd;
	relayed_fn *done = p->done;
	uint32_t tag = p->tag;
	forget(p);
	done(fd, &from, tag);
}

void relayed_start(int fd, relayed_fn *done, uint32_t tag)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p) {
		log_err("out of memory: connection from the relay closed");
		close(fd);
		return;
	}
	*p = (struct pending){.w = {.fd = fd, .on_event = on_readable, .owner = p},
			      .done = done,
			      .tag = tag,
			      .deadline_ms = vmshim_now_ms() + helperd.policy->connect_timeout_ms,
			      .next = pendings};
	if (loop_add(&p->w, EPOLLIN) < 0) {
		log_err("connection from the relay closed: epoll: %m");
		close(fd);
		free(p);
		return;
	}
	if (pendings)
		pendings->prev = p;
	pendings = p;
}

void relayed_expire(int64_t now_ms)
{
	for (struct pending *p = pendings, *next; p; p = next) {
		next = p->next;
		if (now_ms >= p->deadline_ms)
			drop(p, "no FROM in time");
	}
}

void relayed_shutdown(void)
{
	while (pendings) {
		close(pendings->w.fd);
		forget(pendings);
	}
}
