/* The client side of a sibling connection. Everything that can fail happens on a separate
 * vsock socket before the application's descriptor is touched; the swap itself is one
 * dup3(), so the application sees either its TCP socket, untouched, or the connection. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/time.h>

#include "counters.h"
#include "fdstate.h"
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
	return n == 0 ? ECONNRESET : n > 0 ? EPROTO : errno == EAGAIN ? ETIMEDOUT : errno;
}

/* Through the host's relay: ask it for the sibling's port; it answers before any byte of
 * the connection flows, so a refusal still leaves TCP. A port the policy does not list in
 * `without-half-close` asks for a path that carries half-closes, or TCP. */
static int ask_relay(int vs, const struct vmshim_route *route, uint32_t source_port)
{
	uint8_t request[RELAYPROTO_REQUEST_SIZE], reply[RELAYPROTO_REPLY_SIZE];
	enum relayproto_status status;
	const char *why;

	relayproto_request(request, route->cid, route->port, source_port,
			   route->half_close ? RELAYPROTO_REQUEST_HALF_CLOSE : 0);
	if (send(vs, request, sizeof(request), MSG_NOSIGNAL) != sizeof(request))
		return -1;
	ssize_t n = recv(vs, reply, sizeof(reply), MSG_WAITALL);
	if (n != sizeof(reply)) {
		errno = lost(n);
		return -1;
	}
	if (relayproto_parse_reply(reply, &status, &why) < 0) {
		errno = EPROTO;
		return -1;
	}
	if (status != RELAY_OK)
		shim_debug("relay: %s", relayproto_status_name(status));
	/* refused, unreachable, or no half-close on the way: as TCP's refusal */
	errno = status == RELAY_OK	    ? 0
		: status == RELAY_BUSY	    ? EBUSY
		: status == RELAY_BAD_REQUEST ? EPROTO
					      : ECONNREFUSED;
	return status == RELAY_OK ? 0 : -1;
}

/* The address the application dialled, which the server's helperd routes by. */
static int send_dialled(int vs, const struct vmshim_endpoint *dest)
{
	uint8_t msg[DIALLED_SIZE];

	dialled_encode(msg, dest);
	return send(vs, msg, sizeof(msg), MSG_NOSIGNAL) == sizeof(msg) ? 0 : -1;
}

static int connect_vsock(int vs, const struct vmshim_route *route, uint32_t source_port,
			 const struct vmshim_endpoint *dest)
{
	struct timeval timeout = {
		.tv_sec = route->timeout_ms / 1000,
		.tv_usec = (route->timeout_ms % 1000) * 1000,
	};
	uint32_t cid = route->via_relay ? route->relay_cid : route->cid;

	if (vsock_connect(vs, cid, route->via_relay ? route->relay_port : route->port,
			  VSOCK_FROM_GUEST, route->timeout_ms) < 0)
		return -1;
	/* The same bound for the relay's answer and the hand-over; copy_settings later gives vs
	 * the application's own SO_RCVTIMEO. */
	real.setsockopt(vs, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	if ((route->via_relay && ask_relay(vs, route, source_port) < 0) || send_dialled(vs, dest) < 0)
		return -1;
	char handover;
	ssize_t n = recv(vs, &handover, 1, 0); /* not interposed */
	if (n == 1 && handover == VMSHIM_HANDOVER_BYTE)
		return 0;
	/* No listener took it, or the server's helperd is stopped or gone: TCP decides. */
	errno = lost(n);
	return -1;
}

/* The state of fd once swapped; pre, fd's state before, says which options were set. */
static struct fd_state *connection_state(int fd, const struct fd_state *pre, int app_family,
					 const struct vmshim_endpoint *dest,
					 const struct vmshim_endpoint *local)
{
	struct fd_state *st = fdstate_new(FD_REDIRECTED, app_family);

	if (!st)
		return NULL;
	st->conn.peer_len = endpoint_to_sockaddr(dest, app_family, &st->conn.peer);
	st->conn.local_len = endpoint_to_sockaddr(local, app_family, &st->conn.local);
	tcp_opts_start(&st->conn.opts, app_family, fd, fdstate_options_set((uintptr_t)pre));
	return st;
}

enum redirect_result redirect_connect(int fd, int app_family, const struct vmshim_endpoint *dest,
				      const struct vmshim_route *route, bool connecting)
{
	int saved = errno, vs = -1, port, fl;
	struct fd_state *st = NULL, *pre = NULL;
	struct vmshim_endpoint local = {.family = dest->family};
	const char *why;
	enum vmshim_count fallback = VMSHIM_COUNT_FALLBACK_LOCAL;
	enum redirect_result result = REDIRECT_TCP;

	/* What stands for this socket in fd's slot while the vsock connection is made: the
	 * swap happens only if it is still there (swap_in). Taken before anything is asked of
	 * fd, so that a close() from then on is seen. Its slot also has room for the state
	 * after the swap. */
	pre = fdstate_acquire_preconnect(fd, true);
	if (!pre) {
		why = "no state for the socket (out of memory)";
		goto fail;
	}
	if (!is_fresh_tcp(fd)) {
		why = "not a fresh TCP socket";
		goto fail;
	}
	fl = real.fcntl(fd, F_GETFL);
	vs = real.socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (vs < 0) {
		why = strerror(errno);
		goto fail;
	}
	/* The connecting end's buffer: many small writes survive a slow reader (vsockbuf.h). */
	vsock_buffer_set(vs, VMSHIM_VSOCK_WINDOW);
	port = bind_source(vs, fd, route, &local);
	if (port < 0) {
		why = "no vsock source port for it (taken, or a privileged TCP port)";
		goto fail;
	}
	if (connect_vsock(vs, route, route->source_base + (uint32_t)port, dest) < 0) {
		why = strerror(errno);
		fallback = errno == ECONNREFUSED || errno == ECONNRESET ? VMSHIM_COUNT_FALLBACK_REFUSED
			   : errno == ETIMEDOUT			      ? VMSHIM_COUNT_FALLBACK_TIMEOUT
								      : VMSHIM_COUNT_FALLBACK_ERROR;
		goto fail;
	}
	/* The local end shows this guest's address unless the application bound one. */
	if (local.family != dest->family || !memcmp(local.addr, (uint8_t[16]){0}, 16)) {
		memset(local.addr, 0, 16);
		if (route->has_self_addr)
			memcpy(local.addr, route->self_addr, 16);
	}
	local.family = dest->family;
	local.port = (uint16_t)port;
	st = connection_state(fd, pre, app_family, dest, &local);
	if (!st) {
		why = "out of memory";
		goto fail;
	}
	/* As TCP: a non-blocking connect() says EINPROGRESS, and the next one 0. */
	if (connecting && fl >= 0 && (fl & O_NONBLOCK)) {
		atomic_init(&st->conn.in_progress, true);
		result = REDIRECT_IN_PROGRESS;
	} else {
		result = REDIRECT_DONE;
	}
	switch (swap_in(fd, vs, pre, st)) {
	case SWAP_DONE:
		break;
	case SWAP_FAILED:
		why = "dup3 failed";
		result = REDIRECT_TCP;
		goto fail;
	case SWAP_FD_GONE:
		shim_debug("fd %d: closed during the sibling connect: connection dropped", fd);
		fdstate_release(pre);
		errno = saved;
		return REDIRECT_FD_GONE;
	}
	shim_debug("fd %d: connected to sibling cid %u port %u (vsock), local port %d", fd,
		   route->cid, route->port, port);
	shim_count(VMSHIM_COUNT_REDIRECTED);
	fdstate_release(pre);
	errno = saved;
	return result;
fail:
	shim_debug("fd %d: sibling cid %u port %u not used (%s): plain TCP", fd, route->cid,
		   route->port, why);
	fdstate_release(st);
	if (vs >= 0)
		real.close(vs);
	/* A descriptor closed meanwhile is not connected: its number may be another's now. */
	if (pre && fdstate_peek(fd) != (uintptr_t)pre)
		result = REDIRECT_FD_GONE;
	fdstate_release(pre);
	shim_count(fallback);
	errno = saved;
	return result;
}
