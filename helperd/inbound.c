/* Connections from peers (inbound.h); the frames are in common/peerproto.c. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "helperd.h"
#include "inbound.h"
#include "link.h"
#include "preface.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "vmshim/ports.h"
#include "vmshim/vsock.h"

#define FRAMES_PER_WAKEUP 16

struct inbound {
	struct watch w;
	struct link *link;
	size_t have;
	uint8_t buf[PEERPROTO_HEADER_SIZE + PEERPROTO_MAX_PAYLOAD];
};

static struct watch listener = {.fd = -1};
static uint32_t listening_port;

void inbound_close(struct inbound *in)
{
	struct link *l = in->link;

	for (size_t k = 0; k < INBOUND_PER_PEER; k++)
		if (l->ins[k] == in)
			l->ins[k] = NULL;
	if (l->speaker == in)
		l->speaker = NULL;
	loop_retire(&in->w);
	close(in->w.fd);
}

/* Anything malformed from a peer ends the connection it came on: nothing else it says
 * there is trusted, and it cannot repeat it for ever. */
static void bad_frame(struct inbound *in, const char *what, const char *why)
{
	helperd.counters.bad_messages++;
	log_limited(LOG_SOURCE(LOG_KIND_CID, in->link->cid), LOG_WARNING,
		    "peer %s: %s (%s): connection closed", in->link->name, what, why);
	inbound_close(in);
}

static void on_inbound(struct watch *w, uint32_t events)
{
	struct inbound *in = w->owner;

	(void)events;
	/* A bounded number of frames per wake-up: a chatty peer cannot hold up the loop. */
	for (int frames = 0; frames < FRAMES_PER_WAKEUP;) {
		size_t want = PEERPROTO_HEADER_SIZE;

		if (in->have >= PEERPROTO_HEADER_SIZE) {
			unsigned type;
			const char *why;
			long payload = peerproto_header(in->buf, &type, &why);
			if (payload < 0)
				return bad_frame(in, "bad frame", why);
			want += (size_t)payload;
			if (in->have == want) {
				if (link_heard(in->link, in, in->buf + PEERPROTO_HEADER_SIZE,
					       (size_t)payload, &why) < 0)
					return bad_frame(in, "malformed announcement", why);
				in->have = 0;
				frames++;
				continue;
			}
		}
		ssize_t n = recv(w->fd, in->buf + in->have, want - in->have, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			struct link *l = in->link;
			bool current = l->speaker == in;
			inbound_close(in);
			if (current)
				link_down(l, "its connection closed");
			return;
		}
		in->have += (size_t)n;
	}
}

void inbound_read_waiting(struct inbound *in)
{
	on_inbound(&in->w, EPOLLIN);
}

/* The peer whose helperd made a control connection from `from`, or -1 and why not. */
static int identify_helperd(const struct sockaddr_vm *from, const char **why)
{
	*why = "not a peer of the policy";
	for (size_t i = 0; i < helperd.policy->n_peers; i++) {
		const struct policy_peer *p = &helperd.policy->peers[i];

		if ((int)i == helperd.self || p->cid != from->svm_cid)
			continue;
		uint32_t first = link_first_control_source(p);
		if (vmshim_is_control_source(first, from->svm_port))
			return (int)i;
		/* Peers sharing this CID may own other blocks; keep looking. */
		*why = first > 1 ? "not from its helperd's port range" : "not from a privileged port";
	}
	return -1;
}

/* A control connection from `from`, directly or as the relay's FROM says. */
static void take_control(int s, const struct arrival *a)
{
	const struct sockaddr_vm *from = &a->from;
	const char *why;
	int i = identify_helperd(from, &why);
	size_t slot = 0;
	struct inbound *in = NULL;

	while (i >= 0 && slot < INBOUND_PER_PEER && links[i]->ins[slot])
		slot++;
	if (i < 0) {
		helperd.counters.rejected_cids++;
		log_warn("control connection from cid %u port %u refused: %s", from->svm_cid,
			 from->svm_port, why);
	} else if (slot == INBOUND_PER_PEER) {
		log_warn("control connection from peer %s refused: it has %d open", links[i]->name,
			 INBOUND_PER_PEER);
	} else if (!(in = calloc(1, sizeof(*in)))) {
		log_err("out of memory: control connection from peer %s closed", links[i]->name);
	}
	if (!in) {
		close(s);
		return;
	}
	*in = (struct inbound){.w = {.fd = s, .on_event = on_inbound, .owner = in},
			       .link = links[i]};
	if (loop_add(&in->w, EPOLLIN) < 0) {
		close(s);
		free(in);
		return;
	}
	links[i]->ins[slot] = in;
}

static void on_listener(struct watch *w, uint32_t events)
{
	(void)events;
	for (;;) {
		struct sockaddr_vm from;
		socklen_t len = sizeof(from);
		int s = accept4(w->fd, (struct sockaddr *)&from, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("control port: accept: %m");
			return;
		}
		if (policy_from_relay(helperd.policy, from.svm_cid, from.svm_port))
			preface_relayed(s, &(struct arrival){.from = from}, take_control);
		else
			take_control(s, &(struct arrival){.from = from});
	}
}

int inbound_listen(void)
{
	const struct policy_peer *self = helperd_self();
	uint32_t port = self ? self->control_port : 0;

	if (listener.fd >= 0 && port == listening_port)
		return 0;
	if (listener.fd >= 0) {
		loop_del(&listener);
		close(listener.fd);
		listener.fd = -1;
	}
	if (!self)
		return 0;
	int s = vsock_listen(port, 16, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0) {
		log_err("cannot listen on control port %u (vsock): %m", port);
		return -1;
	}
	listener = (struct watch){.fd = s, .on_event = on_listener};
	listening_port = port;
	return loop_add(&listener, EPOLLIN);
}

void inbound_stop(void)
{
	if (listener.fd >= 0)
		close(listener.fd);
}
