/* The table file. helperd is its only writer; shims map it read-only. The file is created
 * under a temporary name and renamed into place, so a shim never maps a half-made table. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helperd.h"
#include "vmshim/log.h"
#include "publish.h"
#include "vmshim/table.h"

#define MIN_CAPACITY (64u * 1024)

static struct {
	struct vmshim_table_header *hdr;
	size_t len;
	char path[PATH_MAX];
} table;

static void *body_of(struct vmshim_table_header *hdr)
{
	return (char *)hdr + VMSHIM_TABLE_HEADER_SIZE;
}

/* Room for twice the body, so that most policy reloads rewrite the file in place. */
static uint32_t capacity_for(uint32_t size)
{
	uint32_t cap = MIN_CAPACITY;

	while (cap < 2 * size)
		cap *= 2;
	return cap;
}

static void write_body(struct vmshim_table_header *hdr, const void *body, uint32_t size)
{
	uint32_t seq = atomic_load_explicit(&hdr->seq, memory_order_relaxed);

	atomic_store_explicit(&hdr->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	memcpy(body_of(hdr), body, size);
	atomic_store_explicit(&hdr->seq, seq + 2, memory_order_release);
}

/* A file left by an earlier helperd that died: shims still map it, tell them it is over. */
static void supersede_leftover(int fd)
{
	struct stat st;

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size >= (off_t)VMSHIM_TABLE_HEADER_SIZE) {
		struct vmshim_table_header *old =
			mmap(NULL, VMSHIM_TABLE_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (old != MAP_FAILED) {
			if (old->magic == VMSHIM_TABLE_MAGIC)
				atomic_store(&old->state, VMSHIM_TABLE_SUPERSEDED);
			munmap(old, VMSHIM_TABLE_HEADER_SIZE);
		}
	}
	close(fd);
}

/* This helperd's instance number: random, never 0 (0 is "no table" to a shim). */
static uint32_t instance(void)
{
	static uint32_t id;

	while (id == 0)
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (uint32_t)getpid() << 16 ^ (uint32_t)vmshim_now_ms();
	return id;
}

static int create_file(const char *rundir, const void *body, uint32_t size)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	uint32_t cap = capacity_for(size);
	size_t len = VMSHIM_TABLE_HEADER_SIZE + cap;

	snprintf(path, sizeof(path), "%s/%s", rundir, VMSHIM_TABLE_FILE);
	snprintf(tmp, sizeof(tmp), "%s/.%s.new", rundir, VMSHIM_TABLE_FILE);
	unlink(tmp);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		log_err("cannot create %s: %m", tmp);
		return -1;
	}
	/* 0644 whatever the umask: every program on the guest must be able to read it. */
	if (fchmod(fd, 0644) < 0 || ftruncate(fd, (off_t)len) < 0) {
		log_err("cannot size %s: %m", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	struct vmshim_table_header *hdr =
		mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (hdr == MAP_FAILED) {
		log_err("cannot map %s: %m", tmp);
		unlink(tmp);
		return -1;
	}
	hdr->magic = VMSHIM_TABLE_MAGIC;
	hdr->version = VMSHIM_TABLE_VERSION;
	hdr->capacity = cap;
	hdr->instance = instance();
	atomic_store(&hdr->heartbeat_ms, (uint64_t)vmshim_now_ms());
	write_body(hdr, body, size);
	atomic_store(&hdr->state, VMSHIM_TABLE_LIVE);

	/* Superseded only once the new file is in place, so that shims find it. */
	int leftover = table.hdr ? -1 : open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (rename(tmp, path) < 0) {
		log_err("cannot rename %s to %s: %m", tmp, path);
		munmap(hdr, len);
		unlink(tmp);
		if (leftover >= 0)
			close(leftover);
		return -1;
	}
	supersede_leftover(leftover);
	if (table.hdr) {
		atomic_store(&table.hdr->state, VMSHIM_TABLE_SUPERSEDED);
		munmap(table.hdr, table.len);
	}
	table.hdr = hdr;
	table.len = len;
	snprintf(table.path, sizeof(table.path), "%s", path);
	return 0;
}

int publish_table(const char *rundir, const void *body, uint32_t size)
{
	if (table.hdr && size <= table.hdr->capacity) {
		write_body(table.hdr, body, size);
		return 0;
	}
	return create_file(rundir, body, size);
}

void publish_heartbeat(void)
{
	if (table.hdr)
		atomic_store_explicit(&table.hdr->heartbeat_ms, (uint64_t)vmshim_now_ms(),
				      memory_order_release);
}

void publish_close(void)
{
	if (!table.hdr)
		return;
	atomic_store(&table.hdr->state, VMSHIM_TABLE_CLOSED);
	unlink(table.path);
	munmap(table.hdr, table.len);
	table.hdr = NULL;
}
