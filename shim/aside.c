/* The shim's own descriptors, out of the application's way (aside.h). */
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>

#include "aside.h"
#include "shim.h"

int fd_aside_floor(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) < 0 || lim.rlim_cur > INT_MAX)
		return -1;
	return (int)(lim.rlim_cur - lim.rlim_cur / 4);
}

int fd_aside(int fd, int floor)
{
	if (fd < 0 || floor < 0 || fd >= floor)
		return fd;
	int high = real.fcntl(fd, F_DUPFD_CLOEXEC, floor);
	if (high < 0)
		return fd;
	real.close(fd);
	return high;
}

int fd_aside_dup(int fd, int floor)
{
	int high = floor < 0 ? -1 : real.fcntl(fd, F_DUPFD_CLOEXEC, floor);

	return high >= 0 ? high : real.fcntl(fd, F_DUPFD_CLOEXEC, 0);
}
