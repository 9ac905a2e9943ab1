/* listen(): a TCP listener that siblings may reach is registered with helperd, which from
 * then on accepts their vsock connections for it, sends each into the listener's channel and
 * rings its doorbell (arrivals.h). */
#include <errno.h>
#include <netinet/in.h>
#include <unistd.h>

#include "arrivals.h"
#include "fdstate.h"
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
		struct fd_state *st = arrivals_register(fd, port, options_set, 0);
		shim_debug("fd %d: listener on port %u %s", fd, port,
			   st ? "open to siblings" : "not registered with helperd");
		fdstate_release(st);
	}
	errno = saved;
	return rc;
}
