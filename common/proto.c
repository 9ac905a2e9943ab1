/* The checks each side makes of what the other sent on helperd's control socket
 * (include/vmshim/proto.h): helperd of requests, the shim of replies. */
#include <sys/socket.h>

#include "vmshim/proto.h"

static int refuse(const char **why, const char *reason)
{
	*why = reason;
	return -1;
}

static bool is_ip_family(uint16_t family)
{
	return family == AF_INET || family == AF_INET6;
}

static int check_fd(bool with_fd, bool wants_fd, const char **why)
{
	if (with_fd && !wants_fd)
		return refuse(why, "descriptor where none belongs");
	if (!with_fd && wants_fd)
		return refuse(why, "descriptor missing");
	return 0;
}

int proto_check_request(const struct vmshim_request *req, ssize_t n, bool with_fd,
			const char **why)
{
	if (n < 0)
		return refuse(why, "unreadable");
	if (n != (ssize_t)sizeof(*req))
		return refuse(why, "wrong size");
	if (req->magic != VMSHIM_PROTO_MAGIC)
		return refuse(why, "bad magic");
	if (req->type < VMSHIM_REQ_REGISTER || req->type > VMSHIM_REQ_COUNTERS || req->type == 2)
		return refuse(why, "unknown type");
	return check_fd(with_fd, req->type == VMSHIM_REQ_REGISTER, why);
}

int proto_check_reply(uint32_t type, const struct vmshim_reply *reply, ssize_t n, bool with_fd,
		      const char **why)
{
	if (n < 0)
		return refuse(why, "unreadable");
	if (n != (ssize_t)sizeof(*reply))
		return refuse(why, "wrong size");
	if (reply->magic != VMSHIM_PROTO_MAGIC)
		return refuse(why, "bad magic");
	if (reply->status < 0 || reply->status > VMSHIM_STATUS_MAX)
		return refuse(why, "status not an errno value");
	if (type != VMSHIM_REQ_REGISTER && type != VMSHIM_REQ_COUNTERS)
		return refuse(why, "no such reply to this request");
	return check_fd(with_fd, reply->status == 0, why);
}

int proto_check_arrival(const struct vmshim_arrival *a, ssize_t n, bool with_fd,
			int listener_family, const char **why)
{
	if (n < 0)
		return refuse(why, "unreadable");
	if (n != (ssize_t)sizeof(*a))
		return refuse(why, "wrong size");
	if (a->magic != VMSHIM_ARRIVAL_MAGIC || a->reserved != 0)
		return refuse(why, "bad magic");
	if (check_fd(with_fd, true, why) < 0)
		return -1;
	if (!is_ip_family(a->peer.family) || !is_ip_family(a->local.family))
		return refuse(why, "endpoint of unknown family");
	if (listener_family == AF_INET &&
	    (a->peer.family == AF_INET6 || a->local.family == AF_INET6))
		return refuse(why, "IPv6 endpoint for an IPv4 listener");
	return 0;
}
