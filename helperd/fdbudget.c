/* helperd's descriptors (fdbudget.h). */
#include <stdint.h>
#include <sys/resource.h>

#include "fdbudget.h"
#include "vmshim/log.h"

/* For all else: control connections, peers, listeners, connections awaiting their preface. */
#define FD_RESERVE 1536
#define FD_BUDGET_LEAST 8

unsigned fd_budget(unsigned wanted)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)wanted + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return wanted;
	rlim_t most = rl.rlim_max > want ? rl.rlim_max : want;
	struct rlimit up = {.rlim_cur = most, .rlim_max = most};
	if (setrlimit(RLIMIT_NOFILE, &up) == 0)
		return wanted;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		getrlimit(RLIMIT_NOFILE, &rl);
	unsigned got = rl.rlim_cur > FD_RESERVE + FD_BUDGET_LEAST ? (unsigned)(rl.rlim_cur - FD_RESERVE)
								  : FD_BUDGET_LEAST;
	log_warn("only %llu descriptors: room for %u of the %u that connections held for others "
		 "may take", (unsigned long long)rl.rlim_cur, got, wanted);
	return got;
}

unsigned fd_budget_part(unsigned got, unsigned part, unsigned wanted)
{
	uint64_t n = wanted ? (uint64_t)got * part / wanted : part;

	return n ? (unsigned)n : 1;
}
