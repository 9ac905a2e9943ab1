/* The link's connection (outbound.h). Connects are non-blocking; a peer that does not read
 * its announcements loses its connection and gets a fresh one on the next round. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "announce.h"
#include "helperd.h"
#include "outbound.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "vmshim/relayproto.h"
#include "vmshim/vsock.h"

struct outbound {
	struct watch w;
	struct link *link;
	unsigned have;
	uint8_t reply[RELAYPROTO_REPLY_SIZE];
};

void outbound_close(struct link *l)
{
	l->state = LINK_IDLE;
	loop_retire(&l->out->w);
	close(l->out->w.fd);
	l->out = NULL;
}

void outbound_announce(struct link *l)
{
	size_t len;
	const uint8_t *frame = announce_frame(&len);

	if (!frame ||
	    send(l->out->w.fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len) {
		/* A peer that does not read gets a fresh connection on the next round. */
		log_debug("peer %s: announcement not sent: connection closed", l->name);
		outbound_close(l);
	}
}

static void connected(struct link *l)
{
	l->state = LINK_ANNOUNCING;
	loop_mod(&l->out->w, EPOLLRDHUP);
	outbound_announce(l);
}

/* Via the relay: asks it for the peer's control port. */
static bool ask_relay(struct link *l)
{
	uint8_t request[RELAYPROTO_REQUEST_SIZE];
	struct sockaddr_vm local;
	socklen_t len = sizeof(local);

	if (getsockname(l->out->w.fd, (struct sockaddr *)&local, &len) < 0)
		return false;
	/* no HALF_CLOSE: a control link is only ever closed whole */
	relayproto_request(request, l->cid, l->control_port, local.svm_port, 0);
	if (send(l->out->w.fd, request, sizeof(request), MSG_DONTWAIT | MSG_NOSIGNAL) !=
	    sizeof(request))
		return false;
	l->state = LINK_ASKING;
	loop_mod(&l->out->w, EPOLLIN | EPOLLRDHUP);
	return true;
}

/* Reads the relay's reply: connected once it says OK; a refusal or a broken reply closes
 * the connection (a later tick dials again). */
static void on_relay_reply(struct link *l)
{
	struct outbound *o = l->out;
	enum relayproto_status status;
	const char *why = NULL;
	int got = relayproto_recv(o->w.fd, o->reply, sizeof(o->reply), &o->have);

	if (got == 0)
		return;
	if (got < 0)
		why = "the relay closed the connection";
	else if (relayproto_parse_reply(o->reply, &status, &why) == 0 && status != RELAY_OK)
		why = relayproto_status_name(status);
	if (!why) {
		connected(l);
		return;
	}
	log_debug("peer %s: via the relay: %s", l->name, why);
	outbound_close(l);
}

static void on_outbound(struct watch *w, uint32_t events)
{
	struct link *l = ((struct outbound *)w->owner)->link;
	int err = 0;
	socklen_t len = sizeof(err);

	if (l->state == LINK_ASKING) {
		on_relay_reply(l);
		return;
	}
	if (l->state == LINK_CONNECTING && (events & EPOLLOUT) &&
	    getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
		if (!l->via_relay) {
			connected(l);
			return;
		}
		if (ask_relay(l))
			return;
	}
	log_debug("peer %s: control connection %s", l->name,
		  l->state == LINK_ANNOUNCING ? "closed" : "not established");
	outbound_close(l);
}

void outbound_dial(struct link *l)
{
	const struct policy *pol = helperd.policy;
	uint32_t cid = l->via_relay ? pol->relay_cid : l->cid;
	uint32_t port = l->via_relay ? pol->relay_port : l->control_port;
	struct outbound *o = calloc(1, sizeof(*o));
	int s = o ? link_control_socket() : -1;

	if (s < 0 || (vsock_connect(s, cid, port, VSOCK_FROM_GUEST, 0) < 0 && errno != EINPROGRESS)) {
		log_debug("peer %s: cannot connect to its control port: %m", l->name);
		goto fail;
	}
	*o = (struct outbound){.w = {.fd = s, .on_event = on_outbound, .owner = o}, .link = l};
	if (loop_add(&o->w, EPOLLOUT | EPOLLRDHUP) < 0)
		goto fail;
	l->out = o;
	l->state = LINK_CONNECTING;
	return;
fail:
	if (s >= 0)
		close(s);
	free(o);
}
