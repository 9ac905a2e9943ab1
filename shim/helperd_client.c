/* The shim's side of the control socket: a fresh connection per request, so that nothing
 * is shared between threads or survives a fork. Only listen(), close() of a registered
 * listener and the first doorbell on a listener without a live channel (arrivals.h) come
 * here, never a plain connect() or accept(). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "helperd_client.h"
#include "shim.h"
#include "vmshim/fdpass.h"

static int open_control(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval timeout = {.tv_sec = 1};

	if (!shim_config.control_socket[0]) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, shim_config.control_socket, sizeof(sun.sun_path));
	int sock = real.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -1;
	if (real.setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0 ||
	    real.setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) < 0 ||
	    real.connect(sock, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int saved = errno;
		real.close(sock);
		errno = saved;
		return -1;
	}
	return sock;
}

/* helperd closes its copies of a request's descriptors (the socket it was shown) before it
 * hangs up. Until then the kernel keeps those files open, and their epoll registrations
 * with them: an application that closed such a socket at once could still get events for
 * it, after it freed what they point to. */
static void wait_for_hangup(int sock)
{
	char byte;

	(void)!recv(sock, &byte, sizeof(byte), 0); /* 0 at the hangup; bounded by the timeout */
}

int helperd_call(uint32_t type, uint32_t port, int fd, struct vmshim_reply *reply,
		 int *reply_fd)
{
	struct vmshim_request req = {.magic = VMSHIM_PROTO_MAGIC, .type = type, .port = port};
	int saved = errno, ok = -1;
	int sock = open_control();

	*reply_fd = -1;
	if (sock < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			ok = HELPERD_NONE;
		goto out;
	}
	if (fdpass_send(sock, &req, sizeof(req), fd) != (ssize_t)sizeof(req))
		goto out;
	ssize_t n = fdpass_recv(sock, reply, sizeof(*reply), reply_fd);
	const char *why;
	if (proto_check_reply(type, reply, n, *reply_fd >= 0, &why) == 0) {
		ok = 0;
		wait_for_hangup(sock);
	} else {
		shim_debug("helperd's reply to request %u refused: %s", type, why);
		if (*reply_fd >= 0) {
			real.close(*reply_fd);
			*reply_fd = -1;
		}
	}
out:
	if (sock >= 0)
		real.close(sock);
	errno = saved;
	return ok;
}

void helperd_notify(uint32_t type, uint32_t port)
{
	struct vmshim_request req = {.magic = VMSHIM_PROTO_MAGIC, .type = type, .port = port};
	int saved = errno;
	int sock = open_control();

	if (sock >= 0) {
		fdpass_send(sock, &req, sizeof(req), -1);
		real.close(sock);
	}
	errno = saved;
}
