/* What the shims count for `vmshimctl status`, in a page helperd shares with them: a sealed
 * memfd (it can neither shrink nor grow, so no program can make the others fault on it),
 * handed to each shim once over the control socket. A shim adds with relaxed atomics: no
 * lock, no system call. Any shimmed program can write the page, so the figures are
 * statistics, and nothing in it is ever read for a decision: a shim takes a new page only
 * when the table (root's, read-only) names another helperd instance. */
#ifndef VMSHIM_COUNTERS_H
#define VMSHIM_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#define VMSHIM_COUNTERS_MAGIC 0x43534d56u /* "VMSC" */
#define VMSHIM_COUNTERS_SIZE 4096u

enum vmshim_count {
	VMSHIM_COUNT_REDIRECTED,       /* connects that went to a sibling over vsock */
	VMSHIM_COUNT_FALLBACK_REFUSED, /* fell back to TCP: the sibling refused or reset */
	VMSHIM_COUNT_FALLBACK_TIMEOUT, /* ... the vsock connect took longer than allowed */
	VMSHIM_COUNT_FALLBACK_ERROR,   /* ... the vsock connect failed otherwise */
	VMSHIM_COUNT_FALLBACK_LOCAL,   /* ... this side could not set it up (socket, port) */
	VMSHIM_COUNT_N,
};

struct vmshim_counters {
	uint32_t magic;
	uint32_t pad;
	_Atomic uint64_t n[VMSHIM_COUNT_N];
};

#endif
