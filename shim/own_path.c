/* The shim's fallbacks to TCP are its own (own_path.h). One system call, on a fallback
 * only; where guest-wide mode is off the kernel refuses it and nothing changes. */
#include <sys/socket.h>

#include "own_path.h"
#include "shim.h"
#include "vmshim/ownpath.h"

void own_path_mark(int fd)
{
	int one = 1;

	real.setsockopt(fd, VMSHIM_SOCKOPT_LEVEL, VMSHIM_SOCKOPT_OWN_PATH, &one, sizeof(one));
}
