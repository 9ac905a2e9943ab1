/* The clock of helperd's heartbeat, its deadlines and the relay's: CLOCK_MONOTONIC_COARSE in
 * milliseconds, the same for helperd and every shim. The coarse clock is read from the vDSO,
 * without a system call. */
#ifndef VMSHIM_CLOCK_H
#define VMSHIM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t vmshim_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
