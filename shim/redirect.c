/* The client side of a sibling connection: the checks, the vsock socket, and the protocol
 * (the vsock connect, the relay's reply when relayed, DIALLED, the hand-over byte) as steps
 * that never block, which pending.c drives in the background. Everything that can fail
 * happens on the separate vsock socket; the application's descriptor holds a placeholder
 * meanwhile (pending.c), then the connection, or its own TCP socket again. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <stdlib.h>

#include "aside.h"
#include "counters.h"
#include "fdstate.h"
#include "own_path.h"
#include "pending.h"
#include "redirect.h"
#include "shim.h"
#include "source_port.h"
#include "swap.h"
#include "vmshim/dialled.h"
#include "vmshim/endpoint.h"
#include "vmshim/handover.h"
#include "vmshim/ports.h"
#include "vmshim/relayproto.h"
#include "vmshim/vsock.h"
#include "vmshim/vsockbuf.h"

#define BIND_TRIES 16

/* A fresh, unconnected TCP socket: the only kind we redirect. */
static int is_fresh_tcp(int fd)
{
	struct tcp_info info;
	socklen_t len = sizeof(info);

	return real.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
	       info.tcpi_state == TCP_CLOSE;
}

/* Binds vs to the vsock source port of a local TCP port: the one fd is bound to, or a free
 * ephemeral one. Returns that TCP port, or -1. */
static int bind_source(int vs, int fd, const struct vmshim_route *route,
		       struct vmshim_endpoint *local)
{
	int fixed = 0;

	if (endpoint_of_socket(fd, real.getsockname, local) == 0 && local->port)
		fixed = local->port;
	if (fixed && (unsigned)fixed < VMSHIM_TCP_PRIVILEGED_PORTS)
		return -1; /* only TCP can vouch for it (vmshim/ports.h) */
	for (int i = 0; i < (fixed ? 1 : BIND_TRIES); i++) {
		uint16_t port = fixed ? (uint16_t)fixed : source_port_next();
		if (vsock_bind(vs, route->source_base + port) == 0)
			return port;
		if (errno != EADDRINUSE)
			break;
	}
	return -1;
}

/* errno for a failure on the way: no answer, a short one, or the socket's own error. */
static int lost(ssize_t n)
{
	return n == 0 ? ECONNRESET : n > 0 ? EPROTO : errno;
}

static int send_all(int vs, const void *msg, size_t len)
{
	ssize_t n = send(vs, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT); /* not interposed */

	if (n == (ssize_t)len)
		return 0;
	if (n >= 0) /* a fresh connection's buffer takes a few bytes at once */
		errno = EPROTO;
	return -1;
}

/* The address the application dialled, which the server's helperd routes by; then the
 * hand-over byte is awaited. */
static enum sibling_wait dial(struct sibling_job *job)
{
	uint8_t msg[DIALLED_SIZE];

	dialled_encode(msg, &job->dest);
	if (send_all(job->vs, msg, sizeof(msg)) < 0)
		return SIBLING_FAILED;
	job->step = STEP_HANDOVER;
	return SIBLING_WAIT_IN;
}

/* Through the host's relay: ask it for the sibling's port; it answers before any byte of
 * the connection flows, so a refusal still leaves TCP. A port the policy does not list in
 * `without-half-close` asks for a path that carries half-closes, or TCP. */
static enum sibling_wait ask_relay(struct sibling_job *job)
{
	uint8_t request[RELAYPROTO_REQUEST_SIZE];
	const struct vmshim_route *route = &job->route;

	relayproto_request(request, route->cid, route->port, job->route.source_base + job->local.port,
			   route->half_close ? RELAYPROTO_REQUEST_HALF_CLOSE : 0);
	if (send_all(job->vs, request, sizeof(request)) < 0)
		return SIBLING_FAILED;
	job->step = STEP_RELAY_REPLY;
	return SIBLING_WAIT_IN;
}

/* The vsock connect has ended: connected, or failed (SO_ERROR). */
static enum sibling_wait connected(struct sibling_job *job)
{
	int err = 0;
	socklen_t len = sizeof(err);
	struct sockaddr_vm peer;
	socklen_t peer_len = sizeof(peer);

	if (real.getsockopt(job->vs, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return SIBLING_FAILED;
	if (err) {
		errno = err;
		return SIBLING_FAILED;
	}
	if (real.getpeername(job->vs, (struct sockaddr *)&peer, &peer_len) < 0)
		return errno == ENOTCONN ? SIBLING_WAIT_OUT : SIBLING_FAILED;
	return job->route.via_relay ? ask_relay(job) : dial(job);
}

static enum sibling_wait relay_replied(struct sibling_job *job)
{
	enum relayproto_status status;
	const char *why;
	ssize_t n = recv(job->vs, job->reply + job->got, sizeof(job->reply) - job->got,
			 MSG_DONTWAIT); /* not interposed */

	if (n < 0 && errno == EAGAIN)
		return SIBLING_WAIT_IN;
	if (n <= 0) {
		errno = lost(n);
		return SIBLING_FAILED;
	}
	job->got += (size_t)n;
	if (job->got < sizeof(job->reply))
		return SIBLING_WAIT_IN;
	if (relayproto_parse_reply(job->reply, &status, &why) < 0) {
		errno = EPROTO;
		return SIBLING_FAILED;
	}
	if (status != RELAY_OK) {
		shim_debug("relay: %s", relayproto_status_name(status));
		/* refused, unreachable, or no half-close on the way: as TCP's refusal */
		errno = status == RELAY_BUSY	      ? EBUSY
			: status == RELAY_BAD_REQUEST ? EPROTO
						      : ECONNREFUSED;
		return SIBLING_FAILED;
	}
	return dial(job);
}

/* The byte the server's helperd sends once the server's application accepted. */
static enum sibling_wait handed_over(struct sibling_job *job)
{
	char handover;
	ssize_t n = recv(job->vs, &handover, 1, MSG_DONTWAIT); /* not interposed */

	if (n < 0 && errno == EAGAIN)
		return SIBLING_WAIT_IN;
	if (n == 1 && handover == VMSHIM_HANDOVER_BYTE)
		return SIBLING_CONNECTED;
	/* No listener took it, or the server's helperd is stopped or gone: TCP decides. */
	errno = lost(n);
	return SIBLING_FAILED;
}

enum sibling_wait sibling_advance(struct sibling_job *job)
{
	switch (job->step) {
	case STEP_CONNECTING:
		return connected(job);
	case STEP_RELAY_REPLY:
		return relay_replied(job);
	case STEP_HANDOVER:
		return handed_over(job);
	}
	errno = EPROTO;
	return SIBLING_FAILED;
}

/* The state of fd once swapped; pre, fd's state before, says which options were set on
 * kept, the application's TCP socket. */
static struct fd_state *connection_state(int kept, const struct fd_state *pre, int app_family,
					 const struct vmshim_endpoint *dest,
					 const struct vmshim_endpoint *local)
{
	struct fd_state *st = fdstate_new(FD_REDIRECTED, app_family);

	if (!st)
		return NULL;
	st->conn.peer_len = endpoint_to_sockaddr(dest, app_family, &st->conn.peer);
	st->conn.local_len = endpoint_to_sockaddr(local, app_family, &st->conn.local);
	tcp_opts_start(&st->conn.opts, app_family, kept, fdstate_options_set((uintptr_t)pre));
	return st;
}

enum swap_result sibling_swap_in(struct sibling_job *job, int kept)
{
	struct fd_state *st = connection_state(kept, job->pre, job->app_family, &job->dest,
					       &job->local);

	if (!st) {
		errno = ENOMEM;
		return SWAP_FAILED;
	}
	/* As TCP: the first connect() after the connection is made says 0, the next EISCONN. */
	atomic_init(&st->conn.in_progress, true);
	bool socket_level = fdstate_options_set((uintptr_t)job->pre) & 1u << FD_OPT_SOCKET_LEVEL;
	enum swap_result result = swap_in(job->fd, job->vs, socket_level ? kept : -1, job->pre, st);
	if (result == SWAP_FAILED) {
		fdstate_release(st);
		return result;
	}
	job->vs = -1; /* closed by the swap */
	if (result == SWAP_DONE)
		shim_debug("fd %d: connected to sibling cid %u port %u (vsock), local port %u",
			   job->fd, job->route.cid, job->route.port, job->local.port);
	return result;
}

static enum vmshim_count fallback_kind(int err)
{
	return err == ECONNREFUSED || err == ECONNRESET ? VMSHIM_COUNT_FALLBACK_REFUSED
	       : err == ETIMEDOUT			? VMSHIM_COUNT_FALLBACK_TIMEOUT
							: VMSHIM_COUNT_FALLBACK_ERROR;
}

void sibling_given_up(const struct sibling_job *job, int err)
{
	shim_debug("fd %d: sibling cid %u port %u not used (%s): plain TCP", job->fd,
		   job->route.cid, job->route.port, strerror(err));
	shim_count(fallback_kind(err));
}

/* The local end shows this guest's address unless the application bound one. */
static void local_end(struct sibling_job *job, uint16_t port)
{
	struct vmshim_endpoint *local = &job->local;

	if (local->family != job->dest.family || !memcmp(local->addr, (uint8_t[16]){0}, 16)) {
		memset(local->addr, 0, 16);
		if (job->route.has_self_addr)
			memcpy(local->addr, job->route.self_addr, 16);
	}
	local->family = job->dest.family;
	local->port = port;
}

static struct sibling_job *new_job(int fd, struct fd_state *pre, const struct sockaddr *addr,
				   socklen_t len, const struct vmshim_endpoint *dest,
				   const struct vmshim_route *route, bool connecting)
{
	struct sibling_job *job = malloc(sizeof(*job));

	if (!job)
		return NULL;
	*job = (struct sibling_job){
		.pre = pre,
		.fd = fd,
		.vs = -1,
		.placeholder = -1,
		.deadline = -1,
		.connect_tcp = connecting,
		.app_family = addr->sa_family,
		.step = STEP_CONNECTING,
		.route = *route,
		.dest = *dest,
		.local = {.family = dest->family},
		.addr_len = len,
	};
	memcpy(&job->addr, addr, len);
	return job;
}

/* The vsock socket, bound, with its connect started; NULL with *why when it cannot be. */
static struct sibling_job *start_job(struct sibling_job *job, const char **why,
				     enum vmshim_count *fallback)
{
	job->aside = fd_aside_floor();
	job->vs = fd_aside(real.socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
			   job->aside);
	if (job->vs < 0) {
		*why = strerror(errno);
		return NULL;
	}
	/* The connecting end's buffer: many small writes survive a slow reader (vsockbuf.h). */
	vsock_buffer_set(job->vs, VMSHIM_VSOCK_WINDOW);
	int port = bind_source(job->vs, job->fd, &job->route, &job->local);
	if (port < 0) {
		*why = "no vsock source port for it (taken, or a privileged TCP port)";
		return NULL;
	}
	local_end(job, (uint16_t)port);
	uint32_t cid, vport;
	vmshim_route_dial(&job->route, &cid, &vport);
	/* Non-blocking: a signal never cancels it, so the server never sees a connection
	 * given up and made again from the same source port (7cecdbb). */
	if (vsock_connect(job->vs, cid, vport, VSOCK_FROM_GUEST, job->route.timeout_ms) < 0 &&
	    errno != EINPROGRESS) {
		*why = strerror(errno);
		*fallback = fallback_kind(errno);
		return NULL;
	}
	return job;
}

enum redirect_result redirect_connect(int fd, const struct sockaddr *addr, socklen_t len,
				      const struct vmshim_endpoint *dest,
				      const struct vmshim_route *route, bool connecting)
{
	int saved = errno;
	struct sibling_job *job = NULL;
	const char *why = "not a TCP socket the shim saw being made, or out of memory";
	enum redirect_result result = REDIRECT_TCP;
	enum vmshim_count fallback = VMSHIM_COUNT_FALLBACK_LOCAL;
	bool reserved = false;

	/* What stands for this socket in fd's slot while the connection is made: each swap
	 * happens only if it is still there (swap_in). Taken before anything is asked of fd,
	 * so that a close() from then on is seen. */
	struct fd_state *pre = fdstate_acquire_preconnect(fd);
	if (!pre)
		goto fail;
	why = "out of memory";
	if (!is_fresh_tcp(fd)) {
		why = "not a fresh TCP socket";
		goto fail;
	}
	int fl = real.fcntl(fd, F_GETFL);
	if (!pending_reserve(route->timeout_ms)) {
		why = "too many sibling connects pending";
		fallback = VMSHIM_COUNT_FALLBACK_TIMEOUT;
		goto fail;
	}
	reserved = true;
	job = new_job(fd, pre, addr, len, dest, route, connecting);
	if (!job || !start_job(job, &why, &fallback))
		goto fail;
	switch (pending_start(job)) {
	case PENDING_STARTED: /* the job and its place are the shim thread's now */
		break;
	case PENDING_NOT_STARTED:
		why = "no placeholder or shim thread (out of descriptors or memory)";
		goto fail;
	case PENDING_FD_GONE:
		why = "closed meanwhile";
		goto fail;
	}
	/* As TCP: a non-blocking connect() says EINPROGRESS; a blocking one waits. */
	result = connecting && fl >= 0 && (fl & O_NONBLOCK) ? REDIRECT_IN_PROGRESS
							     : pending_wait(fd, pre, connecting);
	fdstate_release(pre);
	errno = saved;
	return result;
fail:
	shim_debug("fd %d: sibling cid %u port %u not used (%s): plain TCP", fd, route->cid,
		   route->port, why);
	if (job && job->vs >= 0)
		real.close(job->vs);
	free(job);
	if (reserved)
		pending_unreserve();
	/* A descriptor closed meanwhile is not connected: its number may be another's now. */
	if (pre && fdstate_peek(fd) != (uintptr_t)pre)
		result = REDIRECT_FD_GONE;
	else
		own_path_mark(fd);
	fdstate_release(pre);
	shim_count(fallback);
	errno = saved;
	return result;
}
