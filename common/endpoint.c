#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "vmshim/endpoint.h"

int endpoint_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct vmshim_endpoint *ep)
{
	if (!sa || len < sizeof(sa_family_t))
		return -1;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		ep->family = AF_INET;
		ep->port = ntohs(in->sin_port);
		memset(ep->addr, 0, sizeof(ep->addr));
		memcpy(ep->addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		ep->port = ntohs(in6->sin6_port);
		memset(ep->addr, 0, sizeof(ep->addr));
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			ep->family = AF_INET;
			memcpy(ep->addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			ep->family = AF_INET6;
			memcpy(ep->addr, &in6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

socklen_t endpoint_to_sockaddr(const struct vmshim_endpoint *ep, int app_family,
			       struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (app_family == AF_INET) {
		struct sockaddr_in *in = (void *)out;
		in->sin_family = AF_INET;
		in->sin_port = htons(ep->port);
		memcpy(&in->sin_addr, ep->addr, 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (void *)out;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(ep->port);
	if (ep->family == AF_INET) {
		in6->sin6_addr.s6_addr[10] = 0xff;
		in6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(in6->sin6_addr.s6_addr + 12, ep->addr, 4);
	} else {
		memcpy(&in6->sin6_addr, ep->addr, 16);
	}
	return sizeof(*in6);
}

int endpoint_of_socket(int fd, int (*name)(int, struct sockaddr *, socklen_t *),
		       struct vmshim_endpoint *ep)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (name(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	return endpoint_from_sockaddr((struct sockaddr *)&ss, len, ep);
}

bool endpoint_is_loopback(const struct vmshim_endpoint *ep)
{
	static const uint8_t v6_loopback[16] = {[15] = 1};

	if (ep->family == AF_INET)
		return ep->addr[0] == 127;
	return memcmp(ep->addr, v6_loopback, 16) == 0;
}

int copy_sockaddr_out(const struct sockaddr_storage *src, socklen_t srclen, struct sockaddr *dst,
		      socklen_t *len)
{
	if (!len || (int)*len < 0) {
		errno = len ? EINVAL : EFAULT;
		return -1;
	}
	if (dst)
		memcpy(dst, src, *len < srclen ? *len : srclen);
	*len = srclen;
	return 0;
}
