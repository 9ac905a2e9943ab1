/* Finding the real calls and reading the environment. Nothing here runs in a constructor:
 * the first interposed call does it, so loading the shim costs a program nothing. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fdstate.h"
#include "shim.h"
#include "source_port.h"
#include "table_client.h"
#include "vmshim/proto.h"

struct real_calls real;
struct shim_config shim_config;
atomic_bool shim_ready;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void *next_symbol(const char *name, void *ours)
{
	void *sym = dlsym(RTLD_NEXT, name);

	/* Calling ourselves again would recurse forever: better to fail loudly. */
	if (!sym || sym == ours) {
		static const char msg[] = "vmshim: cannot find the real socket calls\n";
		(void)!write(2, msg, sizeof(msg) - 1);
		abort();
	}
	return sym;
}

/* The knobs are the invoking user's: a set-user-ID program (in secure-execution mode, when
 * /etc/ld.so.preload loads the shim into it) must not let them redirect, silence or point
 * it at another helperd. */
static bool env_flag(const char *name)
{
	const char *v = secure_getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

#define RESOLVE(name) real.name = next_symbol(#name, (void *)name)

static void init_once_fn(void)
{
	RESOLVE(socket);
	RESOLVE(connect);
	RESOLVE(listen);
	RESOLVE(accept);
	RESOLVE(accept4);
	RESOLVE(getpeername);
	RESOLVE(getsockname);
	RESOLVE(getsockopt);
	RESOLVE(setsockopt);
	RESOLVE(shutdown);
	RESOLVE(sendto);
	RESOLVE(sendmsg);
	RESOLVE(sendmmsg);
	RESOLVE(close);
	RESOLVE(close_range);
	RESOLVE(dup);
	RESOLVE(dup2);
	RESOLVE(dup3);
	RESOLVE(fcntl);
	RESOLVE(epoll_ctl);
	RESOLVE(ioctl);

	shim_config.disabled = env_flag("VMSHIM_DISABLE");
	shim_config.debug = env_flag("VMSHIM_DEBUG");
	const char *rundir = secure_getenv("VMSHIM_RUNDIR");
	if (!rundir || !*rundir || strlen(rundir) >= sizeof(shim_config.rundir))
		rundir = VMSHIM_DEFAULT_RUNDIR;
	strcpy(shim_config.rundir, rundir);
	if ((size_t)snprintf(shim_config.control_socket, sizeof(shim_config.control_socket),
			     "%s/%s", rundir, VMSHIM_SOCKET_FILE) >= sizeof(shim_config.control_socket))
		shim_config.control_socket[0] = 0;
	pthread_atfork(fdstate_before_fork, NULL, NULL);
	pthread_atfork(NULL, NULL, table_client_after_fork);
	pthread_atfork(NULL, NULL, source_port_after_fork);
	atomic_store_explicit(&shim_ready, true, memory_order_release);
}

/* Signals wait while this thread initializes: a handler that calls close() or dup2() would
 * wait here for the thread it interrupted. */
void shim_init_slow(void)
{
	int saved = errno;
	sigset_t all, was;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &was);
	pthread_once(&init_once, init_once_fn);
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	errno = saved;
}

void shim_log(const char *fmt, ...)
{
	char line[512];
	int saved = errno;
	int n = snprintf(line, sizeof(line), "vmshim[%d]: ", (int)getpid());
	va_list ap;

	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(2, line, (size_t)n);
	errno = saved;
}
