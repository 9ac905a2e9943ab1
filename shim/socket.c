/* socket(): a new descriptor starts with no state; a TCP socket gets the fresh-TCP mark so
 * that epoll registrations made before connect() can be replayed after a swap. */
#include <errno.h>
#include <netinet/in.h>

#include "fdstate.h"
#include "shim.h"

HOOK int socket(int domain, int type, int protocol)
{
	shim_init();
	int fd = real.socket(domain, type, protocol);

	if (fd < 0 || shim_config.disabled)
		return fd;
	int saved = errno;
	int tcp = (domain == AF_INET || domain == AF_INET6) && (type & 0xf) == SOCK_STREAM &&
		  (protocol == 0 || protocol == IPPROTO_TCP);
	fdstate_set(fd, tcp ? fdstate_fresh_mark() : 0);
	errno = saved;
	return fd;
}
