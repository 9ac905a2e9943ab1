/* close() and the dup family: a descriptor's state follows its open file, so a duplicate
 * shares it and a closed number loses it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#include "fdstate.h"
#include "helperd_client.h"
#include "shim.h"

HOOK int close(int fd)
{
	shim_init();
	uintptr_t slot = fdstate_retire(fd);

	if (!slot)
		return real.close(fd);
	struct fd_state *st = fdstate_ptr(slot);
	int listener_port = st && st->kind == FD_SIBLING_LISTENER ? st->listener.port : -1;
	fdstate_put(slot);
	int rc = real.close(fd);
	/* Other processes may still hold this listener: helperd checks who does. */
	if (rc == 0 && listener_port >= 0)
		helperd_notify(VMSHIM_REQ_CLOSED, (uint32_t)listener_port);
	return rc;
}

HOOK int close_range(unsigned first, unsigned last, int flags)
{
	shim_init();
	/* The states go first, so that no swap lands on a number this frees. Should the call
	 * fail (bad flags), the range's sockets are untracked from then on. */
	if (!(flags & CLOSE_RANGE_CLOEXEC) && first <= last)
		fdstate_retire_range(first, last);
	return real.close_range(first, last, flags);
}

HOOK int dup(int oldfd)
{
	shim_init();
	int newfd = real.dup(oldfd);

	if (newfd >= 0)
		fdstate_dup(oldfd, newfd);
	return newfd;
}

/* dup2() and dup3() close newfd as close() does: its state goes first (fdstate_retire), and
 * comes back if the call fails and newfd stays as it was. */
static void after_dup_onto(int oldfd, int newfd, int rc, uintptr_t was)
{
	if (rc >= 0) {
		fdstate_put(was);
		fdstate_dup(oldfd, newfd);
	} else {
		fdstate_replace(newfd, 0, was);
	}
}

HOOK int dup2(int oldfd, int newfd)
{
	shim_init();
	if (oldfd == newfd)
		return real.dup2(oldfd, newfd);
	uintptr_t was = fdstate_retire(newfd);
	int rc = real.dup2(oldfd, newfd);
	after_dup_onto(oldfd, newfd, rc, was);
	return rc;
}

HOOK int dup3(int oldfd, int newfd, int flags)
{
	shim_init();
	if (oldfd == newfd)
		return real.dup3(oldfd, newfd, flags);
	uintptr_t was = fdstate_retire(newfd);
	int rc = real.dup3(oldfd, newfd, flags);
	after_dup_onto(oldfd, newfd, rc, was);
	return rc;
}

/* Every fcntl argument fits in a pointer; F_DUPFD* are the only commands that concern us. */
HOOK int fcntl(int fd, int cmd, ...)
{
	va_list ap;

	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	shim_init();
	int rc = real.fcntl(fd, cmd, arg);
	if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		fdstate_dup(fd, rc);
	return rc;
}

/* Programs built with _FILE_OFFSET_BITS=64 call fcntl64: the same call on 64-bit. */
HOOK int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));
