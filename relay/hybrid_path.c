/* Reaching a hybrid VM's sockets without following links (hybrid_path.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "hybrid_path.h"

/* path opened with flags, refusing a symbolic link anywhere along it (ELOOP). */
static int open_no_links(const char *path, int flags)
{
	struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
			       .resolve = RESOLVE_NO_SYMLINKS};

	return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
}

/* bind(2) takes a path, not a directory descriptor: binds name inside dir by entering dir
 * for the call. The relay is single-threaded. Mode 0660 through the umask, so the socket
 * never exists with another one (no chmod by name afterwards). */
static int bind_in(int fd, int dir, const char *name)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int rc = -1, err;

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", name);
	if (cwd < 0)
		return -1;
	if (fchdir(dir) == 0) {
		mode_t old = umask(0117);
		rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
		umask(old);
	}
	err = errno;
	if (fchdir(cwd) < 0 && rc == 0) {
		err = errno;
		rc = -1;
	}
	close(cwd);
	errno = err;
	return rc;
}

int hybrid_listen(const char *path, uint32_t port, int backlog, struct hybrid_sock *hs)
{
	const char *slash = strrchr(path, '/');
	char dir[HOST_HYBRID_PATH_MAX];
	struct stat st;
	int fd = -1, err;

	*hs = (struct hybrid_sock){.dir = -1};
	snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	snprintf(hs->name, sizeof hs->name, "%s_%" PRIu32, slash + 1, port);
	hs->dir = open_no_links(dir, O_PATH | O_DIRECTORY);
	if (hs->dir < 0)
		return -1;
	/* a previous relay's socket; anything else there stays, and bind fails */
	if (fstatat(hs->dir, hs->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode))
		unlinkat(hs->dir, hs->name, 0);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind_in(fd, hs->dir, hs->name) < 0 ||
	    fstatat(hs->dir, hs->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || listen(fd, backlog) < 0)
		goto fail;
	hs->dev = st.st_dev;
	hs->ino = st.st_ino;
	return fd;
fail:
	err = errno;
	if (fd >= 0)
		close(fd);
	close(hs->dir);
	hs->dir = -1;
	errno = err;
	return -1;
}

void hybrid_unbind(struct hybrid_sock *hs)
{
	struct stat st;

	if (hs->dir < 0)
		return;
	if (fstatat(hs->dir, hs->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == hs->dev &&
	    st.st_ino == hs->ino)
		unlinkat(hs->dir, hs->name, 0);
	close(hs->dir);
	hs->dir = -1;
}

int hybrid_dial_path(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int target = open_no_links(path, O_PATH), fd = -1, err = ENOTSOCK;

	if (target < 0)
		return -1;
	if (fstat(target, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* the descriptor's own link: the socket found above, whatever the path names now */
		snprintf(sun.sun_path, sizeof sun.sun_path, "/proc/self/fd/%d", target);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		err = errno;
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0 &&
		    errno != EINPROGRESS) {
			err = errno;
			close(fd);
			fd = -1;
		}
	}
	close(target);
	errno = err;
	return fd;
}
