/* The shim's own descriptors, out of the application's way (aside.h). */
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>

#include "aside.h"
#include "shim.h"

int fd_aside(int fd)
{
	struct rlimit lim;

	if (fd < 0 || getrlimit(RLIMIT_NOFILE, &lim) < 0 || lim.rlim_cur > INT_MAX)
		return fd;
	int floor = (int)(lim.rlim_cur - lim.rlim_cur / 4);
	if (fd >= floor)
		return fd;
	int high = real.fcntl(fd, F_DUPFD_CLOEXEC, floor);
	if (high < 0)
		return fd;
	real.close(fd);
	return high;
}
