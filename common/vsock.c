/* vsock sockets (include/vmshim/vsock.h). */
#include <errno.h>
#include <sys/time.h>
#include <unistd.h>

#include "vmshim/real.h"
#include "vmshim/vsock.h"

struct sockaddr_vm vsock_addr(uint32_t cid, uint32_t port)
{
	return (struct sockaddr_vm){.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
}

int vsock_bind(int fd, uint32_t port)
{
	struct sockaddr_vm svm = vsock_addr(VMADDR_CID_ANY, port);

	return bind(fd, (struct sockaddr *)&svm, sizeof(svm));
}

/* Closes fd, keeping errno; returns -1. */
static int close_failed(int fd)
{
	int err = errno;

	REAL(close)(fd);
	errno = err;
	return -1;
}

int vsock_source_socket(uint32_t first, uint32_t count, uint32_t *next)
{
	int fd = REAL(socket)(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	for (uint32_t tries = 0; tries < count; tries++) {
		uint32_t port = first + *next % count;
		*next = (*next + 1) % count;
		if (vsock_bind(fd, port) == 0)
			return fd;
		if (errno != EADDRINUSE)
			break;
	}
	return close_failed(fd);
}

int vsock_listen(uint32_t port, int backlog, int flags)
{
	int fd = REAL(socket)(AF_VSOCK, SOCK_STREAM | flags, 0);

	if (fd < 0)
		return -1;
	if (vsock_bind(fd, port) < 0 || REAL(listen)(fd, backlog) < 0)
		return close_failed(fd);
	return fd;
}

int vsock_buffer_set(int fd, uint64_t size)
{
	if (REAL(setsockopt)(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &size, sizeof(size)) < 0)
		return -1;
	return REAL(setsockopt)(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size, sizeof(size));
}

int vsock_connect(int fd, uint32_t cid, uint32_t port, enum vsock_from from,
		  unsigned timeout_ms)
{
	struct sockaddr_vm svm = vsock_addr(cid, port);
	struct timeval timeout = {.tv_sec = timeout_ms / 1000,
				  .tv_usec = (timeout_ms % 1000) * 1000};

	if (from == VSOCK_FROM_GUEST && cid > VMADDR_CID_HOST)
		svm.svm_flags = VMADDR_FLAG_TO_HOST;
	if (timeout_ms && REAL(setsockopt)(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &timeout,
					   sizeof(timeout)) < 0)
		return -1;
	return REAL(connect)(fd, (struct sockaddr *)&svm, sizeof(svm));
}
