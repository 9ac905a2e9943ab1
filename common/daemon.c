/* Start-up chores of the daemons (include/vmshim/daemon.h). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmshim/daemon.h"
#include "vmshim/log.h"

void daemon_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("cannot raise the limit of open files to %llu: %m",
			 (unsigned long long)rl.rlim_max);
}

int daemon_rundir(const char *dir, const char *name)
{
	struct stat st;
	char lock[4096];

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		log_err("cannot create run directory %s: %m", dir);
		return -1;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err("run directory %s is not a directory", dir);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		log_err("run directory %s must belong to uid %u and be writable by it alone", dir,
			(unsigned)geteuid());
		return -1;
	}
	snprintf(lock, sizeof(lock), "%s/%s.lock", dir, name);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			log_err("%s: another %s uses this run directory", lock, name);
		else
			log_err("%s: %m", lock);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

void daemon_notify_ready(void)
{
	static const char ready[] = "READY=1";
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = path ? strlen(path) : 0;

	if (len == 0 || len >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
		return;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@') /* the abstract namespace */
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, ready, sizeof(ready) - 1, MSG_NOSIGNAL, (struct sockaddr *)&sa,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		log_warn("cannot tell the service manager at %s that it is ready: %m", path);
	if (fd >= 0)
		close(fd);
}
