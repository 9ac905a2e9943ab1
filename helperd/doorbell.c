#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <utlist.h>

#include "channel.h"
#include "doorbell.h"
#include "helperd.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "share.h"
#include "vmshim/endpoint.h"
#include "vmshim/clock.h"
#include "vmshim/handover.h"

/* The pool of sibling connections waiting to be accepted (a doorbell each) is shared:
 * a peer may hold a quarter of it (less with more than four peers: share_per_peer), a
 * listener half, so that hostile peers or a slow acceptor crowd out no one but
 * themselves. */
#define DOORBELL_POOL_LEAST 4
/* A shim waits for its connection to be accepted only for the connect-timeout; after that,
 * and this much more, no one waits for an entry any more. */
#define PENDING_GRACE_MS 1000

/* A sibling connection from its arrival in the listener's channel until a shim took an
 * arrival for its doorbell (and says so on it), or helperd gave it up. helperd keeps no
 * copy of the connection: once the application holds it, closing it must end it, and no
 * epoll registration of the application may outlive its descriptor. */
struct pending {
	struct watch w; /* on the doorbell socket */
	struct channel *ch;
	struct share *peer, *listener;
	bool connected; /* and the secret sent: the doorbell is in the listener's queue */
	uint16_t port;  /* the listener's, for the log */
	int64_t deadline_ms;
	struct pending *prev, *next;
};

static struct pending *pending;
static unsigned n_pending;
static struct share *peer_shares, *listener_shares;
static unsigned pool_max = DOORBELL_POOL_MAX;

/* How a doorbell ends (always with a reset: no TIME_WAIT, no orphan on the loopback). The
 * shim that takes an arrival for a doorbell writes VMSHIM_HANDOVER_BYTE back on it (TAKEN).
 * A doorbell that left the listener's queue without it, or never reached it, takes an
 * arrival back (NOT_TAKEN), so that the arrivals stay as many as the doorbells. One still in
 * the queue when helperd lets go (LET_GO) stays there, reset, with its secret still to be
 * read (Linux keeps what a socket received when it is reset), and takes an arrival when it
 * is accepted, as any other. */
enum ending { TAKEN, LET_GO, NOT_TAKEN };

static void drop(struct pending *p, enum ending how)
{
	DL_DELETE(pending, p);
	n_pending--;
	share_give(&peer_shares, p->peer);
	share_give(&listener_shares, p->listener);
	if (how == NOT_TAKEN)
		channel_take_back(p->ch);
	channel_put(p->ch);
	loop_retire(&p->w);
	close(p->w.fd);
}

/* The secret goes into the doorbell in the segment that completes its handshake (see
 * bell_socket), so the doorbell reaches the listener's queue with it. */
static int send_secret(struct pending *p)
{
	if (send(p->w.fd, channel_secret(p->ch), VMSHIM_SECRET_LEN, MSG_NOSIGNAL | MSG_DONTWAIT) !=
	    VMSHIM_SECRET_LEN)
		return -1;
	p->connected = true;
	return loop_mod(&p->w, EPOLLIN | EPOLLRDHUP);
}

/* The accepting end wrote or closed: whether it took an arrival. */
static enum ending how_taken(int bell)
{
	char byte;

	return recv(bell, &byte, 1, MSG_DONTWAIT) == 1 && byte == VMSHIM_HANDOVER_BYTE ? TAKEN
											: NOT_TAKEN;
}

static void on_bell(struct watch *w, uint32_t events)
{
	struct pending *p = w->owner;

	if (!p->connected && (events & EPOLLOUT) && !(events & (EPOLLERR | EPOLLHUP)) &&
	    send_secret(p) == 0)
		return;
	if (p->connected) {
		drop(p, how_taken(w->fd));
		return;
	}
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	log_warn("listener for port %u did not answer its doorbell (%s): sibling connection "
		 "closed", p->port, strerror(err ? err : ECONNRESET));
	helperd_mark(CHANGED_LISTENER_MAY_BE_GONE);
	drop(p, NOT_TAKEN);
}

/* helperd gives p up: a doorbell in the listener's queue stays there. */
static void let_go(struct pending *p)
{
	drop(p, p->connected ? LET_GO : NOT_TAKEN);
}

/* A TCP socket that resets on close and comes from the doorbell address. It delays the
 * last segment of its handshake (as TCP_DEFER_ACCEPT on a connecting socket does in Linux's
 * tcp_rcv_synsent_state_process) until the secret is sent with it: the listener sees the
 * doorbell only with its secret, and the shim accepting it need not wait for helperd. */
static int bell_socket(int family)
{
	struct linger reset = {.l_onoff = 1, .l_linger = 0};
	struct sockaddr_storage src = {.ss_family = (sa_family_t)family};
	int defer = 1;
	int s = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	if (family == AF_INET)
		inet_pton(AF_INET, VMSHIM_DOORBELL_ADDR4, &((struct sockaddr_in *)&src)->sin_addr);
	else
		((struct sockaddr_in6 *)&src)->sin6_addr = in6addr_loopback;
	if (setsockopt(s, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)) < 0 ||
	    setsockopt(s, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer)) < 0 ||
	    bind(s, (struct sockaddr *)&src, family == AF_INET ? sizeof(struct sockaddr_in)
							   : sizeof(struct sockaddr_in6)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

void doorbell_init(unsigned max)
{
	pool_max = max < DOORBELL_POOL_LEAST ? DOORBELL_POOL_LEAST : max;
	if (pool_max < DOORBELL_POOL_MAX)
		log_warn("at most %u sibling connections can wait to be accepted", pool_max);
}

/* Takes p's place in the pool from its peer's and its listener's shares; false (logged)
 * when the pool or either share is full. */
static bool reserve(struct pending *p, const struct policy_peer *from, uint32_t vport,
		    uint16_t port)
{
	if (n_pending < pool_max &&
	    (p->peer = share_take(&peer_shares, share_key_of_peer(from),
				  share_per_peer(pool_max, helperd.policy->n_peers))) &&
	    (p->listener = share_take(&listener_shares, vport, pool_max / 2)))
		return true;
	const char *why = n_pending >= pool_max ? "helperd's pool is full"
			  : !p->peer		  ? "its share of the pool is full"
						  : "this port's share is full";
	helperd.counters.sibling_busy++;
	log_limited(LOG_SOURCE(LOG_KIND_CID, from->cid), LOG_WARNING,
		    "connection from %s to port %u refused: too many wait to be accepted (%s)",
		    from->name, port, why);
	return false;
}

/* The arrival goes first: once the doorbell is in the listener's queue, its arrival must be
 * in the channel. A doorbell that cannot be made after it takes one back. */
static int ring_after_arrival(struct pending *p, const struct sockaddr_storage *target,
			      socklen_t target_len)
{
	int s = bell_socket(target->ss_family);

	if (s < 0)
		return -1;
	p->w = (struct watch){.fd = s, .on_event = on_bell, .owner = p};
	if ((connect(s, (const struct sockaddr *)target, target_len) < 0 && errno != EINPROGRESS) ||
	    loop_add(&p->w, EPOLLOUT | EPOLLRDHUP) < 0) {
		close(s);
		return -1;
	}
	/* on the loopback the handshake is done within connect(): usually no wait for EPOLLOUT */
	(void)send_secret(p);
	return 0;
}

int doorbell_ring(int vs, const struct policy_peer *from, uint32_t vport, struct channel *ch,
		  const struct sockaddr_storage *target, socklen_t target_len,
		  const struct vmshim_endpoint *show_peer, const struct vmshim_endpoint *show_local)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p || !reserve(p, from, vport, show_local->port))
		goto fail;
	if (channel_send(ch, show_peer, show_local, vs) < 0) {
		log_limited(LOG_SOURCE(LOG_KIND_CID, from->cid), LOG_WARNING,
			    "connection from %s to port %u refused: its listener's channel takes "
			    "no more (%m)", from->name, show_local->port);
		goto fail;
	}
	close(vs); /* the channel's copy is the connection now */
	vs = -1;
	p->ch = channel_ref(ch);
	p->port = show_local->port;
	if (ring_after_arrival(p, target, target_len) < 0) {
		log_warn("doorbell for port %u: %m", show_local->port);
		channel_take_back(ch);
		channel_put(ch);
		goto fail;
	}
	p->deadline_ms = vmshim_now_ms() + helperd.policy->connect_timeout_ms + PENDING_GRACE_MS;
	DL_APPEND(pending, p);
	n_pending++;
	return 0;
fail:
	if (p) {
		share_give(&peer_shares, p->peer);
		share_give(&listener_shares, p->listener);
	}
	free(p);
	if (vs >= 0)
		close(vs);
	return -1;
}

void doorbell_expire(int64_t now_ms)
{
	struct pending *p, *tmp;

	DL_FOREACH_SAFE(pending, p, tmp) {
		if (now_ms < p->deadline_ms)
			continue;
		log_limited(LOG_SOURCE(LOG_KIND_CID, p->peer->key >> 32), LOG_INFO,
			    "sibling connection to port %u not accepted within the connect-timeout: "
			    "let go", p->port);
		let_go(p);
	}
}

unsigned doorbell_waiting(void)
{
	return n_pending;
}

/* The doorbells in queues stay there, their arrivals in the channels: the applications
 * still take those connections once helperd is gone. */
void doorbell_shutdown(void)
{
	struct pending *p, *tmp;

	DL_FOREACH_SAFE(pending, p, tmp)
		let_go(p);
}
