#ifndef HELPERD_SOCKDIAG_H
#define HELPERD_SOCKDIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmshim/endpoint.h"

/* A TCP socket in LISTEN state, as the kernel reports it. */
struct sockdiag_listener {
	uint64_t inode;
	uint64_t cgroup; /* the cgroup v2 id of the program that made it; 0 if unknown */
	struct vmshim_endpoint bound;
	uid_t uid;
	bool v6only;
};

/* Every TCP listener in this network namespace, IPv4 and IPv6, sorted by inode, in a
 * malloc'ed array (*listeners, *count). Returns 0, or -1 if the kernel could not be asked
 * (no inet_diag or tcp_diag; logged as a warning): then nothing can be said about liveness. */
int sockdiag_listeners(struct sockdiag_listener **listeners, size_t *count);

/* Whether the listener with that inode is in such an array. */
bool sockdiag_has(const struct sockdiag_listener *listeners, size_t count, uint64_t inode);

/* The cookie of this network namespace's TCP socket with local address src and peer dst,
 * both of one family (as bpf_get_socket_cookie() gives it): 0, or -1 with errno (ENOENT: no
 * such socket). */
int sockdiag_tcp_cookie(const struct vmshim_endpoint *src, const struct vmshim_endpoint *dst,
			uint64_t *cookie);

/* Whether the listener with that inode is the one the kernel finds listening at bound (its
 * address, or the wildcard, and port), in one exact lookup rather than a list of all: false
 * also for another member of its SO_REUSEPORT group, which the lookup may pick instead. */
bool sockdiag_listens_at(const struct vmshim_endpoint *bound, uint64_t inode);

#endif
