#include <time.h>

#include "helperd.h"

struct helperd helperd = {.self = -1};

int64_t helperd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
