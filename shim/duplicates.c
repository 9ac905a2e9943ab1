/* Sockets duplicated before connect(). Every descriptor of a TCP socket sees the connection
 * its connect() makes; a swap replaces the socket on one descriptor only. So a socket that
 * may have another descriptor stays on TCP: one the shim saw duplicated, while a duplicate
 * is still open in this process (asked of /proc/self/fd, on this path alone), and one that
 * existed when the process forked, whose copy in a child the shim cannot see. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "connect.h"
#include "fdstate.h"
#include "shim.h"

/* The descriptor number a /proc/self/fd entry names, or -1 ("." and ".."). */
static int entry_number(const char *name)
{
	int n = 0;

	if (!*name)
		return -1;
	for (; *name; name++) {
		if (*name < '0' || *name > '9' || n > (INT32_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*name - '0');
	}
	return n;
}

/* Whether descriptors fd and other, whose inodes agree, are one open file: kcmp says so
 * where the kernel has it; without it, the inode (sockfs numbers its inodes with a 32-bit
 * counter, so two live sockets share one only after 2^32 others). */
static bool same_file(int fd, int other)
{
	pid_t self = getpid();
	long same = syscall(SYS_kcmp, self, self, KCMP_FILE, fd, other);

	return same == 0 || (same < 0 && errno != EBADF);
}

/* Whether an entry of the directory dir other than fd and dir itself is the socket `self`. */
static bool same_socket_among(int dir, int fd, const struct stat *self)
{
	char buf[4096] __attribute__((aligned(8)));
	long got;

	while ((got = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0)
		for (long off = 0; off < got;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			int other = entry_number(d->d_name);
			struct stat st;
			off += d->d_reclen;
			if (other >= 0 && other != fd && other != dir && fstat(other, &st) == 0 &&
			    st.st_dev == self->st_dev && st.st_ino == self->st_ino &&
			    same_file(fd, other))
				return true;
		}
	return got < 0; /* unreadable: assume the worst */
}

/* Whether another descriptor of this process is fd's socket (a socket has one open file). */
static bool another_descriptor(int fd)
{
	struct stat self;
	int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dir < 0 || fstat(fd, &self) < 0) {
		if (dir >= 0)
			real.close(dir);
		return true;
	}
	bool found = same_socket_among(dir, fd, &self);
	real.close(dir);
	return found;
}

bool duplicated_before_connect(int fd)
{
	uintptr_t v = fdstate_acquire(fd);
	enum fd_sharing sharing = fdstate_sharing(v);

	fdstate_put(v);
	if (sharing == FD_FORKED)
		shim_debug("fd %d: made before a fork, a child may have it: plain TCP", fd);
	else if (sharing == FD_DUPLICATED && another_descriptor(fd))
		shim_debug("fd %d: duplicated before connect: plain TCP", fd);
	else
		return false;
	return true;
}
