/* The shim's view of helperd's decision table: a read-only shared mapping, read under the
 * table's sequence lock. Once mapped, a lookup costs no system call; while helperd is
 * absent, the shim tries to map the table at most once a second. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include "table_client.h"

#define RETRY_MS 1000
#define READ_TRIES 64

static _Atomic(const struct vmshim_table_header *) mapped;
static _Atomic int64_t next_open_ms;
static atomic_flag opening = ATOMIC_FLAG_INIT;

static int64_t now_ms(void)
{
	struct timespec ts;

	/* The coarse clock is read from the vDSO: no system call. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct vmshim_table_header *map_table(void)
{
	char path[sizeof(shim_config.rundir) + 16];
	struct stat st;
	const struct vmshim_table_header *hdr = NULL;

	snprintf(path, sizeof(path), "%s/" VMSHIM_TABLE_FILE, shim_config.rundir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && st.st_size >= (off_t)VMSHIM_TABLE_HEADER_SIZE) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			hdr = p;
			if (hdr->magic != VMSHIM_TABLE_MAGIC || hdr->version != VMSHIM_TABLE_VERSION ||
			    (off_t)VMSHIM_TABLE_HEADER_SIZE + hdr->capacity > st.st_size) {
				munmap(p, (size_t)st.st_size);
				hdr = NULL;
			}
		}
	}
	real.close(fd);
	return hdr;
}

/* The live table, or NULL. A superseded table is replaced by the new file; the old mapping
 * stays, since another thread may still be reading it (this happens only when a policy
 * outgrows the table's capacity). */
static const struct vmshim_table_header *live_table(void)
{
	const struct vmshim_table_header *hdr = atomic_load_explicit(&mapped, memory_order_acquire);
	int64_t now = now_ms();

	if (!hdr || atomic_load_explicit(&hdr->state, memory_order_acquire) ==
			    VMSHIM_TABLE_SUPERSEDED) {
		if (now < atomic_load_explicit(&next_open_ms, memory_order_relaxed) ||
		    atomic_flag_test_and_set(&opening))
			return NULL;
		atomic_store_explicit(&next_open_ms, now + RETRY_MS, memory_order_relaxed);
		const struct vmshim_table_header *fresh = map_table();
		if (fresh)
			atomic_store_explicit(&mapped, fresh, memory_order_release);
		atomic_flag_clear(&opening);
		hdr = fresh;
		shim_debug("table %s/%s %s", shim_config.rundir, VMSHIM_TABLE_FILE,
			   hdr ? "mapped" : "not available");
		if (!hdr)
			return NULL;
	}
	if (atomic_load_explicit(&hdr->state, memory_order_acquire) != VMSHIM_TABLE_LIVE)
		return NULL;
	int64_t beat = (int64_t)atomic_load_explicit(&hdr->heartbeat_ms, memory_order_acquire);
	if (now - beat > VMSHIM_TABLE_STALE_MS)
		return NULL;
	return hdr;
}

static const struct vmshim_table_body *body_of(const struct vmshim_table_header *hdr)
{
	return (const void *)((const char *)hdr + VMSHIM_TABLE_HEADER_SIZE);
}

/* Runs a lookup under the sequence lock; a torn or contended read means "direct". */
#define SEQ_READ(hdr, expr)                                                                        \
	({                                                                                         \
		enum vmshim_verdict v_ = VMSHIM_DIRECT;                                            \
		for (int try_ = 0; try_ < READ_TRIES; try_++) {                                    \
			uint32_t s_ = atomic_load_explicit(&(hdr)->seq, memory_order_acquire);      \
			if (s_ & 1)                                                                \
				continue;                                                          \
			v_ = (expr);                                                               \
			atomic_thread_fence(memory_order_acquire);                                 \
			if (atomic_load_explicit(&(hdr)->seq, memory_order_relaxed) == s_ &&       \
			    v_ != VMSHIM_TORN)                                                     \
				break;                                                             \
			v_ = VMSHIM_DIRECT;                                                        \
		}                                                                                  \
		v_;                                                                                \
	})

enum vmshim_verdict table_route(int family, const uint8_t *addr, uint16_t port,
				struct vmshim_route *out)
{
	const struct vmshim_table_header *hdr = live_table();

	if (!hdr)
		return VMSHIM_DIRECT;
	return SEQ_READ(hdr, vmshim_table_route(body_of(hdr), hdr->capacity, family, addr, port,
						out));
}

int table_self_exposes(uint16_t port)
{
	const struct vmshim_table_header *hdr = live_table();

	if (!hdr)
		return 0;
	return SEQ_READ(hdr, vmshim_table_self_exposes(body_of(hdr), hdr->capacity, port)) ==
	       VMSHIM_SIBLING;
}
