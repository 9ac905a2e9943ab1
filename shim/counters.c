/* The shim's side of the counter page. */
#include <sys/mman.h>

#include "counters.h"
#include "helperd_client.h"
#include "shim.h"
#include "vmshim/proto.h"
#include "vmshim/table.h"

static _Atomic(struct vmshim_counters *) page;
static _Atomic int64_t next_ask_ms; /* at most one request a second when there is no page */
/* Counted while there was no page to count in (another thread was still asking for it, or
 * helperd did not answer): added to the next page. */
static _Atomic uint64_t held[VMSHIM_COUNT_N];

/* A page of a helperd that stopped is left mapped: another thread may still be adding to
 * it, and it is one page per helperd restart. */
static struct vmshim_counters *fetch(struct vmshim_counters *old)
{
	int64_t now = vmshim_now_ms(), when = atomic_load(&next_ask_ms);
	struct vmshim_reply reply;
	int fd;

	if (now < when || !atomic_compare_exchange_strong(&next_ask_ms, &when, now + 1000))
		return NULL;
	if (helperd_call(VMSHIM_REQ_COUNTERS, 0, -1, &reply, &fd) < 0 || reply.status != 0)
		return NULL; /* with status 0 the reply check guarantees the descriptor */
	struct vmshim_counters *c =
		mmap(NULL, VMSHIM_COUNTERS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	real.close(fd);
	if (c == MAP_FAILED)
		return NULL;
	if (c->magic != VMSHIM_COUNTERS_MAGIC) {
		munmap(c, VMSHIM_COUNTERS_SIZE);
		return NULL;
	}
	if (!atomic_compare_exchange_strong(&page, &old, c)) {
		munmap(c, VMSHIM_COUNTERS_SIZE); /* another thread was first: use its page */
		return old;
	}
	return c;
}

void shim_count(enum vmshim_count what)
{
	struct vmshim_counters *c = atomic_load_explicit(&page, memory_order_acquire);

	if (!c || atomic_load_explicit(&c->closed, memory_order_relaxed))
		c = fetch(c);
	if (!c) {
		atomic_fetch_add_explicit(&held[what], 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&c->n[what], 1, memory_order_relaxed);
	for (int i = 0; i < VMSHIM_COUNT_N; i++)
		if (atomic_load_explicit(&held[i], memory_order_relaxed))
			atomic_fetch_add_explicit(
				&c->n[i], atomic_exchange_explicit(&held[i], 0, memory_order_relaxed),
				memory_order_relaxed);
}
