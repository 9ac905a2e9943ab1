/* The shim's view of helperd's decision table: a read-only shared mapping, read under the
 * table's sequence lock. Once mapped, a lookup costs no system call; while helperd is
 * absent, the shim tries to map the table at most once a second. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"
#include "table_client.h"

#define RETRY_MS 1000
#define READ_TRIES 64

static _Atomic(const struct vmshim_table_header *) mapped;
static _Atomic ino_t mapped_ino;
static _Atomic int64_t next_open_ms;
/* Held only while looking for a table file, never on a lookup in a usable one. */
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;

/* Maps the table file unless it is the one already mapped. */
static void map_table(void)
{
	char path[sizeof(shim_config.rundir) + 16];
	struct stat st;

	snprintf(path, sizeof(path), "%s/" VMSHIM_TABLE_FILE, shim_config.rundir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size >= (off_t)VMSHIM_TABLE_HEADER_SIZE &&
	    (st.st_ino != atomic_load(&mapped_ino) || !atomic_load(&mapped))) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		const struct vmshim_table_header *hdr = p;
		if (p == MAP_FAILED) {
			/* nothing mapped */
		} else if (hdr->magic != VMSHIM_TABLE_MAGIC || hdr->version != VMSHIM_TABLE_VERSION ||
			   (off_t)VMSHIM_TABLE_HEADER_SIZE + hdr->capacity > st.st_size) {
			munmap(p, (size_t)st.st_size);
		} else {
			/* The old mapping stays: another thread may still be reading it. A new
			 * file appears only when helperd restarts or the policy outgrows it. */
			atomic_store(&mapped_ino, st.st_ino);
			atomic_store_explicit(&mapped, hdr, memory_order_release);
			shim_debug("mapped table %s", path);
		}
	}
	real.close(fd);
}

static int usable(const struct vmshim_table_header *hdr, int64_t now)
{
	return hdr && atomic_load_explicit(&hdr->state, memory_order_acquire) == VMSHIM_TABLE_LIVE &&
	       now - (int64_t)atomic_load_explicit(&hdr->heartbeat_ms, memory_order_acquire) <=
		       VMSHIM_TABLE_STALE_MS;
}

/* The live table, or NULL. When there is none, or it is closed, stale or superseded, the
 * file is looked at again, at most once a second after a look that found nothing usable.
 * Threads that arrive while another looks wait for its result: the first connections of a
 * program must not fall back to TCP only because they came at once. */
static const struct vmshim_table_header *live_table(void)
{
	const struct vmshim_table_header *hdr = atomic_load_explicit(&mapped, memory_order_acquire);
	int64_t now = vmshim_now_ms();

	if (usable(hdr, now))
		return hdr;
	if (now < atomic_load_explicit(&next_open_ms, memory_order_acquire))
		return NULL;
	pthread_mutex_lock(&map_lock);
	hdr = atomic_load_explicit(&mapped, memory_order_acquire);
	if (!usable(hdr, now) && now >= atomic_load_explicit(&next_open_ms, memory_order_acquire)) {
		map_table();
		hdr = atomic_load_explicit(&mapped, memory_order_acquire);
		if (!usable(hdr, now))
			atomic_store_explicit(&next_open_ms, now + RETRY_MS, memory_order_release);
	}
	pthread_mutex_unlock(&map_lock);
	return usable(hdr, now) ? hdr : NULL;
}

void table_client_after_fork(void)
{
	/* The child has one thread: whoever held the lock in the parent is not here. */
	pthread_mutex_init(&map_lock, NULL);
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

uint32_t table_instance(void)
{
	const struct vmshim_table_header *hdr = live_table();

	return hdr ? hdr->instance : 0;
}

int table_self_exposes(uint16_t port)
{
	const struct vmshim_table_header *hdr = live_table();

	if (!hdr)
		return 0;
	return SEQ_READ(hdr, vmshim_table_self_exposes(body_of(hdr), hdr->capacity, port)) ==
	       VMSHIM_SIBLING;
}
