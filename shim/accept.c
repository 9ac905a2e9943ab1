/* accept()/accept4(): a connection from a doorbell address on a registered listener stands
 * for a sibling's vsock connection, which helperd hands over in exchange for the doorbell
 * itself. The vsock socket then takes the doorbell's descriptor number. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <string.h>

#include "fdstate.h"
#include "helperd_client.h"
#include "shim.h"
#include "vmshim/endpoint.h"

/* A connection from the IPv4 doorbell address is one, whoever registered the listener (it
 * may have been registered by the program before an exec). From ::1, the IPv6 doorbell
 * address, only on a listener this process registered: ::1 is an ordinary client too. */
static int is_doorbell(const struct sockaddr_storage *peer, socklen_t len, bool registered)
{
	struct vmshim_endpoint ep;
	struct in_addr bell;

	if (endpoint_from_sockaddr((const struct sockaddr *)peer, len, &ep) < 0)
		return 0;
	if (ep.family == AF_INET6)
		return registered && endpoint_is_loopback(&ep);
	inet_pton(AF_INET, VMSHIM_DOORBELL_ADDR4, &bell);
	return memcmp(ep.addr, &bell, 4) == 0;
}

/* Exchanges the doorbell connection on fd for the sibling's connection, presented in the
 * listener's family. options_set: the options set on the listener, which fd inherited.
 * 0 on success. */
static int claim(int fd, int flags, int family, unsigned options_set)
{
	struct vmshim_reply reply;
	int vs;
	struct fd_state *st = fdstate_new(FD_REDIRECTED, family);

	if (!st)
		return -1;
	if (helperd_call(VMSHIM_REQ_CLAIM, 0, fd, &reply, &vs) < 0 || reply.status != 0 ||
	    vs < 0) {
		shim_debug("fd %d: connection from a doorbell address is not a sibling's", fd);
		goto fail;
	}
	/* Options the listener passed on to the accepted TCP socket carry over. */
	tcp_opts_start(&st->conn.opts, family, fd, options_set);
	st->conn.peer_len = endpoint_to_sockaddr(&reply.peer, family, &st->conn.peer);
	st->conn.local_len = endpoint_to_sockaddr(&reply.local, family, &st->conn.local);
	if ((flags & SOCK_NONBLOCK) && real.fcntl(vs, F_SETFL, O_NONBLOCK) < 0)
		goto fail;
	if (real.dup3(vs, fd, flags & SOCK_CLOEXEC ? O_CLOEXEC : 0) < 0)
		goto fail;
	real.close(vs);
	fdstate_set(fd, (uintptr_t)st);
	shim_debug("fd %d: accepted a sibling connection (vsock) on port %u", fd, reply.local.port);
	return 0;
fail:
	if (vs >= 0)
		real.close(vs);
	fdstate_put((uintptr_t)st);
	return -1;
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
	socklen_t peer_len = sizeof(peer);

	if (shim_off())
		return real_accept(fd, addr, len, flags, four);
	int c = real_accept(fd, (struct sockaddr *)&peer, &peer_len, flags, four);
	if (c < 0)
		return c;
	int saved = errno;
	fdstate_set(c, 0);
	/* A doorbell helperd does not know (expired, or helperd gone) is handed out as it is,
	 * like a TCP client that gave up: the application reads EOF. */
	uintptr_t listener = fdstate_peek(fd);
	const struct fd_state *ls = fdstate_ptr(listener);
	bool registered = ls && ls->kind == FD_SIBLING_LISTENER;
	if (is_doorbell(&peer, peer_len, registered) &&
	    claim(c, flags, peer.ss_family, fdstate_options_set(listener)) == 0) {
		struct fd_state *st = fdstate_ptr(fdstate_peek(c));
		peer = st->conn.peer;
		peer_len = st->conn.peer_len;
	}
	errno = saved;
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
