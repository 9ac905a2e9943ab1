/* ioctl(): FIONREAD on a redirected connection. vsock answers it only from Linux 6.17 on
 * (6.1 fails it with EOPNOTSUPP; 6.12, whose vsock answers SIOCOUTQ alone, with ENOTTY), so
 * when the kernel refuses, the shim counts the bytes waiting itself. Everything else goes
 * straight through. */
#include <errno.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fdstate.h"
#include "shim.h"

#define PEEK_CHUNK 65536
#define PEEK_CHUNKS 256 /* 16 MiB: more than a vsock buffer holds unless SO_RCVBUF asked more */

/* Where the kernel copies a peek, every chunk over the last: only the count is wanted. */
static char scratch[PEEK_CHUNK];

/* The bytes waiting on a vsock connection: what a non-blocking peek finds. */
static int bytes_waiting(int fd)
{
	struct iovec iov[PEEK_CHUNKS];
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = PEEK_CHUNKS};

	for (int i = 0; i < PEEK_CHUNKS; i++)
		iov[i] = (struct iovec){.iov_base = scratch, .iov_len = sizeof(scratch)};
	ssize_t n = recvmsg(fd, &msg, MSG_PEEK | MSG_DONTWAIT); /* not interposed */
	return n > 0 ? (int)n : 0;
}

/* Every ioctl argument fits in a pointer. */
HOOK int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;

	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	shim_init();
	int saved = errno;
	int rc = real.ioctl(fd, request, arg);
	if (rc < 0 && (errno == EOPNOTSUPP || errno == ENOTTY) && request == FIONREAD &&
	    !shim_config.disabled) {
		struct fd_state *st = fdstate_acquire_redirected(fd);
		if (st) {
			fdstate_release(st);
			*(int *)arg = bytes_waiting(fd);
			errno = saved;
			return 0;
		}
	}
	return rc;
}
