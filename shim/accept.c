/* accept()/accept4(): a connection from a doorbell address on a registered listener stands
 * for a sibling's vsock connection, which helperd hands over in exchange for the doorbell
 * itself. The vsock socket then takes the doorbell's descriptor number. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "fdstate.h"
#include "helperd_client.h"
#include "shim.h"
#include "swap.h"
#include "vmshim/endpoint.h"
#include "vmshim/handover.h"
#include "vmshim/proto.h"

enum doorbell { NO_DOORBELL, DOORBELL, MAYBE_DOORBELL };

/* A connection from the IPv4 doorbell address is one, whoever registered the listener (it
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

/* Whether the connection on fd is still there: helperd resets each doorbell it lets go,
 * and all of them when it stops or dies. */
static bool still_connected(int fd)
{
	struct tcp_info info;
	socklen_t len = sizeof(info);

	return real.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
	       info.tcpi_state != TCP_CLOSE;
}

/* Exchanges the doorbell connection on fd for the sibling's connection, presented in the
 * listener's family. options_set: the options set on the listener, which fd inherited.
 * Returns fd's new state, or NULL with fd untouched; then *none says whether helperd
 * answered that fd is none of its doorbells, or no helperd runs. */
static struct fd_state *claim(int fd, int family, unsigned options_set, bool *none)
{
	struct vmshim_reply reply;
	int vs;
	const char *why;
	struct fd_state *st = fdstate_new(FD_REDIRECTED, family);

	*none = false;
	if (!st)
		return NULL;
	int rc = helperd_call(VMSHIM_REQ_CLAIM, 0, fd, &reply, &vs);
	if (rc < 0 || reply.status != 0) {
		shim_debug("fd %d: connection from a doorbell address is not a sibling's", fd);
		if (rc == HELPERD_NONE || (rc == 0 && reply.status == ENOENT))
			*none = true;
		goto fail;
	}
	if (proto_check_claim(&reply, family, &why) < 0) {
		shim_debug("fd %d: helperd's reply to a claim refused: %s", fd, why);
		goto fail;
	}
	/* Room for fd's state first: nothing may fail once the connection is taken. */
	if (fdstate_reserve(fd) < 0) {
		shim_debug("fd %d: out of memory for a sibling connection", fd);
		goto fail;
	}
	/* Only now is the connection the application's: the client's connect() returns once
	 * it reads this. Had this process lost it on the way (helperd slow, the reply never
	 * read), the client would find the connection closed without it and use TCP. */
	static const char handover = VMSHIM_HANDOVER_BYTE;
	if (send(vs, &handover, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) { /* not interposed */
		shim_debug("fd %d: the sibling gave up before its connection was taken", fd);
		goto fail;
	}
	/* Options the listener passed on to the accepted TCP socket carry over. */
	tcp_opts_start(&st->conn.opts, family, fd, options_set);
	st->conn.peer_len = endpoint_to_sockaddr(&reply.peer, family, &st->conn.peer);
	st->conn.local_len = endpoint_to_sockaddr(&reply.local, family, &st->conn.local);
	/* What the accepted TCP socket has carries over: O_NONBLOCK and FD_CLOEXEC from
	 * accept4(), and the socket options it inherited from the listener (SO_KEEPALIVE,
	 * SO_LINGER, ...). */
	switch (swap_in(fd, vs, fd, NULL, st)) {
	case SWAP_DONE:
		break;
	case SWAP_FAILED: /* out of memory for fd's slot, or dup3 failed */
		goto fail;
	case SWAP_FD_GONE: /* nobody else knows fd yet: only a stray close() */
		return NULL;
	}
	shim_debug("fd %d: accepted a sibling connection (vsock) on port %u", fd, reply.local.port);
	return st;
fail:
	if (vs >= 0)
		real.close(vs);
	fdstate_put((uintptr_t)st);
	return NULL;
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
	int c;

	if (shim_off())
		return real_accept(fd, addr, len, flags, four);
	uintptr_t listener = fdstate_acquire(fd);
	const struct fd_state *ls = fdstate_ptr(listener);
	bool registered = ls && ls->kind == FD_SIBLING_LISTENER;
	unsigned options_set = fdstate_options_set(listener);
	fdstate_put(listener);
	for (;;) {
		peer_len = sizeof(peer);
		c = real_accept(fd, (struct sockaddr *)&peer, &peer_len, flags, four);
		if (c < 0)
			return c;
		fdstate_set(c, 0);
		enum doorbell kind = doorbell_kind(&peer, peer_len, registered);
		if (kind == NO_DOORBELL)
			break;
		int saved = errno;
		bool none = false;
		struct fd_state *st = claim(c, peer.ss_family, options_set, &none);
		errno = saved;
		if (st) {
			peer = st->conn.peer;
			peer_len = st->conn.peer_len;
			break;
		}
		/* A doorbell helperd let go (the sibling gave up, helperd stopped) was reset, and
		 * its client fell back to TCP: the application never sees it. One still there
		 * that is none of helperd's, or with no helperd at all, is an ordinary local
		 * client that came from the doorbell address, and is handed out as it is; so is
		 * one from ::1, which may be an ordinary client too. */
		if (kind == MAYBE_DOORBELL || (none && still_connected(c)))
			break;
		real.close(c);
	}
	if (addr && copy_sockaddr_out(&peer, peer_len, addr, len) < 0) {
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
