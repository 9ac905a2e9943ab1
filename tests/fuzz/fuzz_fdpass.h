/* What the control-socket fuzz targets share: a fuzz input goes to the receiver as it would
 * in production, one message on a fresh AF_UNIX SOCK_SEQPACKET socketpair with 0 to 3
 * descriptors attached, taken with the production fdpass_recv; and a count of the process's
 * open descriptors, to show that nothing passed stays open. */
#ifndef FUZZ_FDPASS_H
#define FUZZ_FDPASS_H

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmshim/fdpass.h"

#define FUZZ_MAX_FDS 3
/* Far above any message of the protocol, and well below a socket's send buffer. */
#define FUZZ_MAX_MESSAGE 65536

static int fuzz_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Sends msg with n_fds descriptors of /dev/null attached, receives it into buf with
 * fdpass_recv and returns what that returned, with *fd as fdpass_recv left it. Aborts if
 * fdpass_recv broke its own word: one descriptor kept at most, close-on-exec, and a message
 * that came with more is refused. */
static ssize_t fuzz_pass(const uint8_t *msg, size_t msg_len, unsigned n_fds, void *buf,
			 size_t len, int *fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(FUZZ_MAX_FDS * sizeof(int))];
	} control;
	int fds[FUZZ_MAX_FDS], pair[2];
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = msg_len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

	if (n_fds > FUZZ_MAX_FDS || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		abort();
	for (unsigned i = 0; i < n_fds; i++)
		if ((fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
			abort();
	if (n_fds > 0) {
		memset(&control, 0, sizeof(control));
		m.msg_control = control.buf;
		m.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	if (sendmsg(pair[0], &m, 0) != (ssize_t)msg_len)
		abort();
	for (unsigned i = 0; i < n_fds; i++)
		close(fds[i]); /* the message holds its own references */
	ssize_t n = fdpass_recv(pair[1], buf, len, fd);
	close(pair[0]);
	close(pair[1]);
	if (n_fds != (*fd >= 0 ? 1u : 0u) && !(n < 0 && *fd < 0))
		abort();
	if (*fd >= 0 && !(fcntl(*fd, F_GETFD) & FD_CLOEXEC))
		abort();
	return n;
}

#endif
