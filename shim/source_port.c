/* Local ports for sibling connections. vsock has no TIME_WAIT: a four-tuple used again soon
 * after a close meets the old connection's late packets at the peer (the SHUTDOWN sent when
 * the server finally closes its end ends the new connection). So, as the kernel does for its
 * own vsock ports, each process goes round the whole ephemeral range in order from a random
 * start, and a port comes back only after all the others have been used. */
#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "source_port.h"

#define EPHEMERAL_FIRST 32768
#define EPHEMERAL_COUNT (61000 - EPHEMERAL_FIRST)

static atomic_uint next; /* 0: this process has not chosen its start yet */

static unsigned random_start(void)
{
	unsigned seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (unsigned)ts.tv_nsec ^ (unsigned)getpid() * 2654435761u;
	}
	return seed % EPHEMERAL_COUNT + 1;
}

uint16_t source_port_next(void)
{
	unsigned n = atomic_load_explicit(&next, memory_order_relaxed);

	if (!n) /* the first thread to get here chooses; the others keep its choice */
		atomic_compare_exchange_strong(&next, &n, random_start());
	n = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
	return (uint16_t)(EPHEMERAL_FIRST + n % EPHEMERAL_COUNT);
}

void source_port_after_fork(void)
{
	/* Parent and child must not walk the same sequence. */
	atomic_store_explicit(&next, 0, memory_order_relaxed);
}
