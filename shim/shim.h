/* What every part of libvmshim.so shares: the real libc calls, the configuration read from
 * the environment, and the debug log. */
#ifndef VMSHIM_SHIM_H
#define VMSHIM_SHIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#define HOOK __attribute__((visibility("default")))

/* The next definition of each call we interpose: libc's, or another preload's. */
struct real_calls {
	int (*socket)(int, int, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*shutdown)(int, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	int (*close)(int);
	int (*close_range)(unsigned, unsigned, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*ioctl)(int, unsigned long, ...);
};

struct shim_config {
	bool disabled; /* VMSHIM_DISABLE=1: every call goes straight through */
	bool debug;    /* VMSHIM_DEBUG=1: each decision is logged to stderr */
	char rundir[256]; /* VMSHIM_RUNDIR, default /run/vmshim */
	/* helperd's control socket in rundir, made once: close() may need it in a signal
	 * handler, where snprintf has no place; "" when too long for an AF_UNIX address */
	char control_socket[108];
};

extern struct real_calls real;
extern struct shim_config shim_config;
extern atomic_bool shim_ready;

void shim_init_slow(void);

/* Resolves the real calls and reads the environment, once. */
static inline void shim_init(void)
{
	if (!atomic_load_explicit(&shim_ready, memory_order_acquire))
		shim_init_slow();
}

/* True when the shim should stay out of the way entirely. */
static inline bool shim_off(void)
{
	shim_init();
	return shim_config.disabled;
}

void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define shim_debug(...)                                                                            \
	do {                                                                                       \
		if (shim_config.debug)                                                             \
			shim_log(__VA_ARGS__);                                                     \
	} while (0)

#endif
