/* The shim's side of the counter page. */
#include <stdlib.h>
#include <sys/mman.h>

#include "counters.h"
#include "helperd_client.h"
#include "shim.h"
#include "table_client.h"
#include "vmshim/clock.h"
#include "vmshim/proto.h"

/* The page, and the helperd instance (table_instance) it came from. The page is
 * writable by every shimmed program, so nothing in it decides anything: a shim asks for a
 * new page only when the table, which only root writes, names another instance. */
struct held_page {
	struct vmshim_counters *c;
	uint32_t instance;
};
static _Atomic(struct held_page *) page;
static _Atomic int64_t next_ask_ms; /* at most one request a second */
/* Counted while there was no page to count in (another thread was still asking for it, or
 * helperd did not answer): added to the next page. */
static _Atomic uint64_t held[VMSHIM_COUNT_N];

/* The page of the running helperd, asked for at most once a second. A page of a helperd
 * that stopped is left mapped (another thread may still be adding to it): one page per
 * restart of helperd, which only root can cause. */
static struct held_page *fetch(struct held_page *old, uint32_t instance)
{
	int64_t now = vmshim_now_ms(), when = atomic_load(&next_ask_ms);
	struct vmshim_reply reply;
	int fd;

	if (now < when || !atomic_compare_exchange_strong(&next_ask_ms, &when, now + 1000))
		return NULL;
	if (helperd_call(VMSHIM_REQ_COUNTERS, 0, -1, &reply, &fd) < 0 || reply.status != 0)
		return NULL; /* with status 0 the reply check guarantees the descriptor */
	struct held_page *hp = malloc(sizeof(*hp));
	struct vmshim_counters *c =
		mmap(NULL, VMSHIM_COUNTERS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	real.close(fd);
	if (!hp || c == MAP_FAILED || c->magic != VMSHIM_COUNTERS_MAGIC) {
		if (c != MAP_FAILED)
			munmap(c, VMSHIM_COUNTERS_SIZE);
		free(hp);
		return NULL;
	}
	*hp = (struct held_page){.c = c, .instance = instance};
	if (!atomic_compare_exchange_strong(&page, &old, hp)) {
		munmap(c, VMSHIM_COUNTERS_SIZE); /* another thread was first: use its page */
		free(hp);
		return old;
	}
	return hp;
}

void shim_count(enum vmshim_count what)
{
	struct held_page *hp = atomic_load_explicit(&page, memory_order_acquire);
	uint32_t instance = table_instance();

	if (instance && (!hp || hp->instance != instance))
		hp = fetch(hp, instance);
	struct vmshim_counters *c = hp && hp->instance == instance ? hp->c : NULL;
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
