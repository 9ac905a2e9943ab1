/* Start-up chores of the daemons (include/vmshim/daemon.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
