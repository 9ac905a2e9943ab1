/* accept()/accept4(): a connection from a doorbell address on a registered listener stands
 * for a sibling's vsock connection, which helperd sent ahead into the listener's channel
 * (arrivals.h). The vsock socket then takes the doorbell's descriptor number. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "arrivals.h"
#include "fdstate.h"
#include "shim.h"
#include "swap.h"
#include "vmshim/endpoint.h"
#include "vmshim/handover.h"
#include "vmshim/proto.h"

enum doorbell { NO_DOORBELL, DOORBELL, MAYBE_DOORBELL };

/* A connection from the IPv4 doorbell address may be one, whoever registered the listener (it
 * may have been registered by the program before an exec). From ::1, the IPv6 doorbell
 * address, it may be one only on a listener this process registered: ::1 is an ordinary
 * client too. */
static enum doorbell doorbell_kind(const struct sockaddr_storage *peer, socklen_t len,
				   bool registered)
{
	struct vmshim_endpoint ep;
	struct in_addr bell;

	if (endpoint_from_sockaddr((const struct sockaddr *)peer, len, &ep) < 0)
		return NO_DOORBELL;
	if (ep.family == AF_INET6)
		return registered && endpoint_is_loopback(&ep) ? MAYBE_DOORBELL : NO_DOORBELL;
	inet_pton(AF_INET, VMSHIM_DOORBELL_ADDR4, &bell);
	return memcmp(ep.addr, &bell, 4) == 0 ? DOORBELL : NO_DOORBELL;
}

/* Whether the connection on fd is still there: a reset one from the doorbell address is
 * dropped unseen, as it always was. */
static bool still_connected(int fd)
{
	struct tcp_info info;
	socklen_t len = sizeof(info);

	return real.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
	       info.tcpi_state != TCP_CLOSE;
}

/* The state of listener fd whose doorbell c may be: the one in *listener (a value from
 * fdstate_acquire, replaced here) if c shows its secret; else, when it has no channel or
 * the channel's helperd is gone, the one helperd gives again. NULL if c is no doorbell. */
static const struct fd_state *rung_listener(int fd, int c, uintptr_t *listener)
{
	const struct fd_state *ls = fdstate_ptr(*listener);
	bool registered = ls && ls->kind == FD_SIBLING_LISTENER;

	if (registered && arrivals_rang(c, ls))
		return ls;
	if (registered && arrivals_channel_live(ls))
		return NULL;
	uint16_t port = registered ? ls->listener.port : 0;
	struct sockaddr_storage me;
	socklen_t me_len = sizeof(me);
	struct vmshim_endpoint ep;
	if (!registered && real.getsockname(fd, (struct sockaddr *)&me, &me_len) == 0 &&
	    endpoint_from_sockaddr((struct sockaddr *)&me, me_len, &ep) == 0)
		port = ep.port;
	struct fd_state *fresh =
		arrivals_register(fd, port, fdstate_options_set(*listener), *listener);
	if (!fresh)
		return NULL;
	fdstate_put(*listener);
	*listener = (uintptr_t)fresh;
	shim_debug("fd %d: listener's channel from helperd (again)", fd);
	return arrivals_rang(c, fresh) ? fresh : NULL;
}

enum handover { HANDED, SIBLING_GONE, NOT_HANDED };

/* Hands the sibling's connection over: its client's connect() returns once it reads this.
 * Then the connection takes c's number, with state *st. vs is closed unless HANDED. */
static enum handover swap_arrival(int c, int vs, int family, const struct vmshim_arrival *a,
				  unsigned options_set, struct fd_state **st)
{
	static const char handover = VMSHIM_HANDOVER_BYTE;
	enum handover result = NOT_HANDED;

	*st = fdstate_new(FD_REDIRECTED, family);
	/* Room for c's state first: nothing may fail once the connection is handed over. */
	if (!*st || fdstate_reserve(c) < 0) {
		shim_debug("fd %d: out of memory for a sibling connection", c);
		goto fail;
	}
	if (send(vs, &handover, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) { /* not interposed */
		shim_debug("fd %d: the sibling gave up before its connection was taken", c);
		result = SIBLING_GONE;
		goto fail;
	}
	/* Options the listener passed on to the accepted TCP socket carry over. */
	tcp_opts_start(&(*st)->conn.opts, family, c, options_set);
	(*st)->conn.peer_len = endpoint_to_sockaddr(&a->peer, family, &(*st)->conn.peer);
	(*st)->conn.local_len = endpoint_to_sockaddr(&a->local, family, &(*st)->conn.local);
	/* What the accepted TCP socket has carries over: O_NONBLOCK and FD_CLOEXEC from
	 * accept4(), and the socket options it inherited from the listener (SO_KEEPALIVE,
	 * SO_LINGER, ...) where the listener had one set. */
	bool socket_level = options_set & 1u << FD_OPT_SOCKET_LEVEL;
	switch (swap_in(c, vs, socket_level ? c : -1, NULL, *st)) {
	case SWAP_DONE:
		shim_debug("fd %d: accepted a sibling connection (vsock) on port %u", c,
			   a->local.port);
		return HANDED;
	case SWAP_FAILED: /* out of memory for c's slot, or dup3 failed */
		break;
	case SWAP_FD_GONE: /* nobody else knows c yet: only a stray close() */
		return NOT_HANDED;
	}
fail:
	real.close(vs);
	fdstate_release(*st);
	return result;
}

enum outcome { ORDINARY, SIBLING, DROPPED };

/* What connection c from a doorbell address is: a sibling's (then *st), an ordinary
 * client's, or one to drop unseen. */
static enum outcome take(int fd, int c, int family, enum doorbell kind, uintptr_t *listener,
			 struct fd_state **st)
{
	struct vmshim_arrival a;
	int vs;
	const struct fd_state *ls = rung_listener(fd, c, listener);

	if (!ls)
		return kind == MAYBE_DOORBELL || still_connected(c) ? ORDINARY : DROPPED;
	/* An arrival that cannot be used (no descriptor left for it, say) ends the search: the
	 * next one would fare no better. */
	for (enum arrival_result got = arrivals_take(c, ls, family, &a, &vs); got == ARRIVAL_TAKEN;
	     got = arrivals_next(ls, family, &a, &vs)) {
		enum handover h =
			swap_arrival(c, vs, family, &a, fdstate_options_set(*listener), st);
		if (h != SIBLING_GONE)
			return h == HANDED ? SIBLING : DROPPED;
	}
	return DROPPED;
}

/* accept() is accept4() without flags; each still calls its own real function, so that
 * another preloaded library that interposes only one of them keeps working. */
static int real_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool four)
{
	return four ? real.accept4(fd, addr, len, flags) : real.accept(fd, addr, len);
}

static int accept_common(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool four)
{
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct fd_state *st = NULL;
	int c;

	if (shim_off())
		return real_accept(fd, addr, len, flags, four);
	uintptr_t listener = fdstate_acquire(fd);
	for (;;) {
		peer_len = sizeof(peer);
		c = real_accept(fd, (struct sockaddr *)&peer, &peer_len, flags, four);
		if (c < 0)
			break;
		fdstate_set(c, 0);
		const struct fd_state *ls = fdstate_ptr(listener);
		enum doorbell kind =
			doorbell_kind(&peer, peer_len, ls && ls->kind == FD_SIBLING_LISTENER);
		if (kind == NO_DOORBELL)
			break;
		int saved = errno;
		enum outcome outcome = take(fd, c, peer.ss_family, kind, &listener, &st);
		errno = saved;
		if (outcome == ORDINARY)
			break;
		if (outcome == SIBLING) {
			peer = st->conn.peer;
			peer_len = st->conn.peer_len;
			break;
		}
		real.close(c);
	}
	fdstate_put(listener);
	if (c >= 0 && addr && copy_sockaddr_out(&peer, peer_len, addr, len) < 0) {
		real.close(c);
		return -1;
	}
	return c;
}

HOOK int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return accept_common(fd, addr, len, 0, false);
}

HOOK int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return accept_common(fd, addr, len, flags, true);
}
