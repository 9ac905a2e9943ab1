/* The TCP options a redirected connection starts with: the kernel's defaults for a new TCP
 * socket, read once per process and family from a scratch socket, overlaid with the options
 * the application set on its own socket, read from that socket. Reading every option of
 * every swapped socket cost 18 system calls on each side of each sibling connection. */
#include <pthread.h>
#include <stdbool.h>

#include "shim.h"
#include "tcpopts.h"

static struct tcp_opts defaults[2];
static bool have_defaults[2];
static pthread_once_t once[2] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

static void read_defaults(int v6)
{
	int fd = real.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	tcp_opts_capture(&defaults[v6], fd, real.getsockopt, TCP_OPTS_ALL);
	real.close(fd);
	have_defaults[v6] = true;
}

static void read_defaults4(void)
{
	read_defaults(0);
}

static void read_defaults6(void)
{
	read_defaults(1);
}

void tcp_opts_start(struct tcp_opts *opts, int family, int fd, unsigned options_set)
{
	int v6 = family == AF_INET6;

	pthread_once(&once[v6], v6 ? read_defaults6 : read_defaults4);
	if (have_defaults[v6])
		*opts = defaults[v6];
	else
		options_set = TCP_OPTS_ALL;
	tcp_opts_capture(opts, fd, real.getsockopt, options_set);
}
