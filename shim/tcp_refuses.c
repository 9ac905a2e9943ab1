/* Destinations TCP refuses before it looks for a route. The shim finds no sibling for them,
 * so that the kernel's connect() fails as it would without the shim (tcp_v4_connect,
 * tcp_v6_connect). Asked only of sibling destinations: it costs a system call or two. */
#include <netinet/in.h>

#include "connect.h"
#include "shim.h"

bool tcp_refuses(int fd, const struct sockaddr *addr)
{
	const struct sockaddr_in6 *in6 = (const void *)addr;
	int domain = 0, v6only = 0;
	socklen_t len = sizeof(domain);

	/* The other family: EAFNOSUPPORT, or EINVAL for an IPv4 address on an IPv6 socket. */
	if (real.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
	    domain != addr->sa_family)
		return true;
	if (domain != AF_INET6)
		return false;
	/* An IPv4-mapped destination on an IPV6_V6ONLY socket: ENETUNREACH. */
	len = sizeof(v6only);
	if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		return real.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) < 0 || v6only;
	/* A link-local destination names its interface, or the socket is bound to one (which
	 * keeps it on TCP anyway): EINVAL. */
	return IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr) && in6->sin6_scope_id == 0;
}
