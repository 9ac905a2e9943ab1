#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <uthash.h>
#include <unistd.h>

#include "doorbell.h"
#include "helperd.h"
#include "vmshim/log.h"
#include "vmshim/loop.h"
#include "share.h"
#include "tcpsock.h"
#include "vmshim/endpoint.h"
#include "vmshim/clock.h"

/* The pool of sibling connections waiting to be accepted (two descriptors each) is shared:
 * a peer may hold a quarter of it, a listener half, so that a hostile peer or a slow
 * acceptor crowds out no one but itself. */
#define PENDING_MAX 4096
#define FD_RESERVE 1536 /* descriptors for all else: control connections, peers, listeners */
/* A shim waits for its connection to be accepted only for the connect-timeout; after that,
 * and this much more, no one waits for an entry any more. */
#define PENDING_GRACE_MS 1000
/* Each doorbell carries a secret of this many random bytes, which only the process that
 * accepted it can read: the claim must show it. A doorbell's addresses are no proof, anyone
 * sees them in /proc/net/tcp and can give a socket of their own the same ones. */
#define SECRET_LEN 16
#define SECRET_WAIT_MS 200 /* on loopback it is there at once; this only covers a busy CPU */

struct pending {
	struct watch w;  /* on the doorbell socket */
	struct watch vw; /* on the sibling's connection, for its hanging up */
	uint32_t key;    /* family and port of the doorbell's local end */
	int vs;          /* the sibling's connection */
	struct share *peer, *listener;
	bool connected; /* and the secret sent */
	uint8_t secret[SECRET_LEN];
	struct vmshim_endpoint bell_local, bell_peer;
	struct vmshim_endpoint show_peer, show_local;
	int64_t deadline_ms;
	UT_hash_handle hh;
};

static struct pending *pending;
static struct share *peer_shares, *listener_shares;
static unsigned pool_max = PENDING_MAX;

static uint32_t key_of(const struct vmshim_endpoint *ep)
{
	return (uint32_t)ep->family << 16 | ep->port;
}

static bool same_endpoint(const struct vmshim_endpoint *a, const struct vmshim_endpoint *b)
{
	return a->family == b->family && a->port == b->port &&
	       memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

/* The sibling's connection leaves the loop (p itself lives until its bell's watch is
 * retired; an event already fetched for vs is skipped). */
static void unwatch_sibling(struct pending *p)
{
	loop_del(&p->vw);
	p->vw.on_event = NULL;
}

static void drop(struct pending *p)
{
	HASH_DEL(pending, p);
	share_give(&peer_shares, p->peer);
	share_give(&listener_shares, p->listener);
	if (p->vs >= 0) {
		unwatch_sibling(p);
		close(p->vs);
	}
	loop_retire(&p->w);
	close(p->w.fd); /* with SO_LINGER 0: a reset, no TIME_WAIT on the loopback */
}

/* Once the doorbell is connected: the secret goes into it, in one segment. */
static int send_secret(struct pending *p)
{
	if (!p->connected &&
	    send(p->w.fd, p->secret, SECRET_LEN, MSG_NOSIGNAL | MSG_DONTWAIT) != SECRET_LEN)
		return -1;
	p->connected = true;
	return 0;
}

static void on_bell(struct watch *w, uint32_t events)
{
	struct pending *p = w->owner;

	if (!p->connected && (events & EPOLLOUT) && !(events & (EPOLLERR | EPOLLHUP)) &&
	    send_secret(p) == 0) {
		loop_mod(w, EPOLLRDHUP);
		return;
	}
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (!p->connected) {
		log_warn("listener for port %u did not answer its doorbell (%s): sibling "
			 "connection closed", p->show_local.port, strerror(err ? err : ECONNRESET));
		helperd_mark(CHANGED_LISTENER_MAY_BE_GONE);
	} else {
		log_debug("doorbell for port %u hung up before the sibling connection was taken",
			  p->show_local.port);
	}
	drop(p);
}

/* The sibling hung up before its connection was accepted: its shim gave up and uses TCP. */
static void on_sibling_gone(struct watch *w, uint32_t events)
{
	struct pending *p = w->owner;

	(void)events;
	log_debug("sibling connection to port %u closed by the sibling before it was accepted",
		  p->show_local.port);
	drop(p);
}

/* A TCP socket that resets on close and comes from the doorbell address. */
static int bell_socket(int family)
{
	struct linger reset = {.l_onoff = 1, .l_linger = 0};
	struct sockaddr_storage src = {.ss_family = (sa_family_t)family};
	int s = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	if (family == AF_INET)
		inet_pton(AF_INET, VMSHIM_DOORBELL_ADDR4, &((struct sockaddr_in *)&src)->sin_addr);
	else
		((struct sockaddr_in6 *)&src)->sin6_addr = in6addr_loopback;
	if (setsockopt(s, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)) < 0 ||
	    bind(s, (struct sockaddr *)&src, family == AF_INET ? sizeof(struct sockaddr_in)
							   : sizeof(struct sockaddr_in6)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

void doorbell_init(void)
{
	struct rlimit rl;
	rlim_t want = 2 * PENDING_MAX + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	/* root may raise the hard limit too; else the soft one goes as far as it can */
	rlim_t most = rl.rlim_max > want ? rl.rlim_max : want;
	struct rlimit up = {.rlim_cur = most, .rlim_max = most};
	if (setrlimit(RLIMIT_NOFILE, &up) == 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		getrlimit(RLIMIT_NOFILE, &rl);
	pool_max = rl.rlim_cur > FD_RESERVE + 8 ? (unsigned)(rl.rlim_cur - FD_RESERVE) / 2 : 4;
	log_warn("only %llu descriptors: at most %u sibling connections can wait to be accepted",
		 (unsigned long long)rl.rlim_cur, pool_max);
}

/* Takes p's place in the pool from its peer's and its listener's shares; false (logged)
 * when the pool or either share is full. */
static bool reserve(struct pending *p, const struct policy_peer *from, uint32_t vport,
		    uint16_t port)
{
	if (HASH_COUNT(pending) < pool_max &&
	    (p->peer = share_take(&peer_shares, (uint64_t)from->cid << 32 | from->vsock_base,
				  pool_max / 4)) &&
	    (p->listener = share_take(&listener_shares, vport, pool_max / 2)))
		return true;
	const char *why = HASH_COUNT(pending) >= pool_max ? "helperd's pool is full"
			  : !p->peer				 ? "its share of the pool is full"
								 : "this port's share is full";
	helperd.counters.sibling_busy++;
	log_limited(LOG_SOURCE(LOG_KIND_CID, from->cid), LOG_WARNING,
		    "connection from %s to port %u refused: too many wait to be accepted (%s)",
		    from->name, port, why);
	return false;
}

int doorbell_ring(int vs, const struct policy_peer *from, uint32_t vport,
		  const struct sockaddr_storage *target, socklen_t target_len,
		  const struct vmshim_endpoint *show_peer, const struct vmshim_endpoint *show_local)
{
	struct pending *p = calloc(1, sizeof(*p));
	int s = -1;

	if (!p)
		goto fail;
	p->vs = -1;
	if (!reserve(p, from, vport, show_local->port))
		goto fail;
	s = bell_socket(target->ss_family);
	if (s < 0 || (connect(s, (const struct sockaddr *)target, target_len) < 0 &&
		      errno != EINPROGRESS)) {
		log_warn("doorbell for port %u: %m", show_local->port);
		goto fail;
	}
	if (getrandom(p->secret, SECRET_LEN, 0) != SECRET_LEN ||
	    endpoint_of_socket(s, getsockname, &p->bell_local) < 0 ||
	    endpoint_from_sockaddr((const struct sockaddr *)target, target_len, &p->bell_peer) < 0)
		goto fail;
	p->w = (struct watch){.fd = s, .on_event = on_bell, .owner = p};
	p->vw = (struct watch){.fd = vs, .on_event = on_sibling_gone, .owner = p};
	p->key = key_of(&p->bell_local);
	p->show_peer = *show_peer;
	p->show_local = *show_local;
	p->deadline_ms = vmshim_now_ms() + helperd.policy->connect_timeout_ms + PENDING_GRACE_MS;
	if (loop_add(&p->w, EPOLLOUT | EPOLLRDHUP) < 0)
		goto fail;
	if (loop_add(&p->vw, EPOLLRDHUP) < 0) {
		loop_del(&p->w);
		goto fail;
	}
	p->vs = vs;
	HASH_ADD(hh, pending, key, sizeof(p->key), p);
	return 0;
fail:
	if (p) {
		share_give(&peer_shares, p->peer);
		share_give(&listener_shares, p->listener);
	}
	free(p);
	if (s >= 0)
		close(s);
	close(vs);
	return -1;
}

/* Reads the secret from the application's end of the doorbell (helperd's copy of it shares
 * the application's receive queue, so the application never sees these bytes) and compares
 * it in constant time. */
static bool shows_secret(int app_fd, const struct pending *p)
{
	uint8_t got[SECRET_LEN];
	struct pollfd pfd = {.fd = app_fd, .events = POLLIN};
	uint8_t diff = 0;

	if (recv(app_fd, got, SECRET_LEN, MSG_DONTWAIT | MSG_PEEK) != SECRET_LEN &&
	    poll(&pfd, 1, SECRET_WAIT_MS) != 1)
		return false;
	if (recv(app_fd, got, SECRET_LEN, MSG_DONTWAIT) != SECRET_LEN)
		return false;
	for (size_t i = 0; i < SECRET_LEN; i++)
		diff |= got[i] ^ p->secret[i];
	return diff == 0;
}

int doorbell_claim(int app_fd, struct vmshim_reply *reply, int *vs)
{
	struct vmshim_endpoint app_local, app_peer;
	struct pending *p;

	if (!tcp_socket_here(app_fd) || endpoint_of_socket(app_fd, getpeername, &app_peer) < 0 ||
	    endpoint_of_socket(app_fd, getsockname, &app_local) < 0)
		return ENOENT;
	uint32_t key = key_of(&app_peer);
	HASH_FIND(hh, pending, &key, sizeof(key), p);
	/* The four-tuple finds the doorbell; the secret proves the socket is its other end.
	 * (Our end may not have seen the handshake finish yet; the application has, so the
	 * secret can go now.) */
	if (!p || !same_endpoint(&p->bell_local, &app_peer) ||
	    !same_endpoint(&p->bell_peer, &app_local))
		return ENOENT;
	if (send_secret(p) < 0 || !shows_secret(app_fd, p)) {
		log_warn("claim of the doorbell for port %u without its secret: refused",
			 p->show_local.port);
		return EPERM;
	}
	reply->peer = p->show_peer;
	reply->local = p->show_local;
	unwatch_sibling(p);
	*vs = p->vs;
	p->vs = -1;
	drop(p);
	return 0;
}

void doorbell_expire(int64_t now_ms)
{
	struct pending *p, *tmp;

	HASH_ITER(hh, pending, p, tmp) {
		if (now_ms < p->deadline_ms)
			continue;
		log_limited(LOG_SOURCE(LOG_KIND_CID, p->peer->key >> 32), LOG_INFO,
			    "sibling connection to port %u not accepted within the connect-timeout: "
			    "closed", p->show_local.port);
		drop(p);
	}
}

unsigned doorbell_waiting(void)
{
	return HASH_COUNT(pending);
}

void doorbell_shutdown(void)
{
	struct pending *p, *tmp;

	HASH_ITER(hh, pending, p, tmp)
		drop(p);
}
