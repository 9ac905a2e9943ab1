/* listen(): a TCP listener that siblings may reach is registered with helperd, which from
 * then on accepts their vsock connections for it and rings its doorbell for each. */
#include <errno.h>
#include <netinet/in.h>
#include <unistd.h>

#include "fdstate.h"
#include "helperd_client.h"
#include "shim.h"
#include "vmshim/endpoint.h"
#include "table_client.h"

/* The listener's TCP port if it is a TCP socket bound where siblings may reach it: never
 * loopback, and only ports this guest's policy exposes. */
static int exposable(int fd, uint16_t *port)
{
	struct vmshim_endpoint ep;
	int protocol = 0;
	socklen_t plen = sizeof(protocol);

	if (real.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &plen) < 0 ||
	    protocol != IPPROTO_TCP || endpoint_of_socket(fd, real.getsockname, &ep) < 0)
		return 0;
	*port = ep.port;
	if (endpoint_is_loopback(&ep)) {
		shim_debug("fd %d: listener on loopback port %u stays private", fd, ep.port);
		return 0;
	}
	return table_self_exposes(ep.port);
}

HOOK int listen(int fd, int backlog)
{
	shim_init();
	int rc = real.listen(fd, backlog);
	uint16_t port;

	if (rc < 0 || shim_config.disabled)
		return rc;
	uintptr_t was = fdstate_acquire(fd);
	struct fd_state *had = fdstate_ptr(was);
	if (had && had->kind == FD_SIBLING_LISTENER) {
		fdstate_put(was);
		return rc;
	}
	int saved = errno;
	unsigned options_set = fdstate_options_set(was);
	fdstate_put(was);
	fdstate_set(fd, 0); /* a listener is never swapped: forget the fresh-TCP mark */
	if (exposable(fd, &port)) {
		struct vmshim_reply reply;
		int none; /* a REGISTER reply carries no descriptor (proto_check_reply) */
		struct fd_state *st;
		if (helperd_call(VMSHIM_REQ_REGISTER, port, fd, &reply, &none) == 0 &&
		    reply.status == 0 && (st = fdstate_new(FD_SIBLING_LISTENER, 0))) {
			st->listener.port = port;
			atomic_init(&st->listener.options_set, options_set);
			fdstate_set(fd, (uintptr_t)st);
			shim_debug("fd %d: listener on port %u open to siblings", fd, port);
		} else {
			shim_debug("fd %d: listener on port %u not registered with helperd", fd,
				   port);
		}
	}
	errno = saved;
	return rc;
}
