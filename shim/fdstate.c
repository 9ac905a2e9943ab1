/* A two-level array indexed by descriptor number: the upper level is fixed, the lower one
 * allocated in pages of 4096 slots the first time a descriptor in that range needs a mark.
 * Pages come from mmap, not malloc: dup() in a signal handler may need one while the thread
 * it interrupted holds malloc's lock. */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdstate.h"
#include "shim.h"

#define SLOTS_PER_PAGE 4096
#define PAGES 4096 /* 16M descriptors */

static _Atomic(_Atomic uintptr_t *) pages[PAGES];

#define PAGE_BYTES (SLOTS_PER_PAGE * sizeof(_Atomic uintptr_t))

static _Atomic uintptr_t *new_page(_Atomic(_Atomic uintptr_t *) *page)
{
	_Atomic uintptr_t *p = NULL, *fresh = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE,
						   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (fresh == MAP_FAILED)
		return NULL;
	if (atomic_compare_exchange_strong(page, &p, fresh))
		return fresh;
	munmap(fresh, PAGE_BYTES); /* another thread won; p now holds its page */
	return p;
}

/* Inlined: every hook passes here, for every descriptor. */
static inline __attribute__((always_inline)) _Atomic uintptr_t *slot(int fd, int create)
{
	if (fd < 0 || fd >= SLOTS_PER_PAGE * PAGES)
		return NULL;
	_Atomic(_Atomic uintptr_t *) *page = &pages[fd / SLOTS_PER_PAGE];
	_Atomic uintptr_t *p = atomic_load_explicit(page, memory_order_acquire);

	if (!p && create)
		p = new_page(page);
	return p ? &p[fd % SLOTS_PER_PAGE] : NULL;
}

uintptr_t fdstate_peek(int fd)
{
	_Atomic uintptr_t *s = slot(fd, 0);

	return s ? atomic_load_explicit(s, memory_order_acquire) : 0;
}

/* Released states, reused by fdstate_new (see fdstate.h). Anyone pushes; only the holder of
 * pop_lock pops, so a state cannot leave and come back between a pop's read and its
 * compare-and-swap (no ABA). */
static _Atomic(struct fd_state *) free_list;
static pthread_mutex_t pop_lock = PTHREAD_MUTEX_INITIALIZER;

static void push_free(struct fd_state *st)
{
	struct fd_state *head = atomic_load_explicit(&free_list, memory_order_relaxed);

	do
		st->next_free = head;
	while (!atomic_compare_exchange_weak_explicit(&free_list, &head, st, memory_order_release,
						      memory_order_relaxed));
}

/* A released state, or NULL when there is none or another thread is popping (a trylock, so
 * that a signal handler never waits for the thread it interrupted). */
static struct fd_state *pop_free(void)
{
	if (pthread_mutex_trylock(&pop_lock) != 0)
		return NULL;
	struct fd_state *head = atomic_load_explicit(&free_list, memory_order_acquire);
	while (head && !atomic_compare_exchange_weak_explicit(&free_list, &head, head->next_free,
							       memory_order_acquire,
							       memory_order_acquire))
		;
	pthread_mutex_unlock(&pop_lock);
	return head;
}

/* A reference to st unless its count already reached zero (released, maybe reused). */
static bool ref_unless_zero(struct fd_state *st)
{
	int n = atomic_load(&st->refs);

	while (n > 0 && !atomic_compare_exchange_weak(&st->refs, &n, n + 1))
		;
	return n > 0;
}

/* A reference to the state v, which was in slot s, if it still is there. */
static bool hold(_Atomic uintptr_t *s, uintptr_t v)
{
	if (!ref_unless_zero(fdstate_ptr(v)))
		return false;
	if (atomic_load(s) == v)
		return true;
	fdstate_put(v);
	return false;
}

/* fdstate_acquire, inlined where descriptors the shim does not track pass by. */
static inline uintptr_t acquire(int fd)
{
	_Atomic uintptr_t *s = slot(fd, 0);
	uintptr_t v = s ? atomic_load_explicit(s, memory_order_acquire) : 0;

	/* again only when another thread changed the slot meanwhile */
	while (fdstate_ptr(v) && !hold(s, v))
		v = atomic_load_explicit(s, memory_order_acquire);
	return v;
}

uintptr_t fdstate_acquire(int fd)
{
	return acquire(fd);
}

struct fd_state *fdstate_acquire_kind(int fd, enum fd_kind kind)
{
	struct fd_state *st = fdstate_ptr(acquire(fd));

	if (st && st->kind != kind) {
		fdstate_release(st);
		st = NULL;
	}
	return st;
}

static atomic_uint fork_generation;

void fdstate_before_fork(void)
{
	atomic_fetch_add(&fork_generation, 1);
}

uintptr_t fdstate_fresh_mark(void)
{
	return FD_FRESH_TCP | (uintptr_t)atomic_load(&fork_generation) << FD_FRESH_GENERATION_SHIFT;
}

/* What a fresh mark says of duplicates: FD_FRESH_DUPLICATED and the generation. */
static uintptr_t sharing_bits(uintptr_t mark)
{
	return mark & ~(FD_FRESH_DUPLICATED - 1);
}

struct fd_state *fdstate_new(enum fd_kind kind, int family)
{
	struct fd_state *st = pop_free();

	if (st && st->kind == FD_PRECONNECT)
		for (struct epoll_reg *r = st->pre.regs, *next; r; r = next) {
			next = r->next;
			free(r);
		}
	if (!st && !(st = malloc(sizeof(*st))))
		return NULL;
	/* Only the count is ever read by a thread that found this state in a slot before it
	 * was released: everything else starts afresh. */
	memset((char *)st + sizeof(st->refs), 0, sizeof(*st) - sizeof(st->refs));
	st->kind = kind;
	st->family = family;
	if (kind == FD_PRECONNECT) {
		pthread_mutexattr_t attr;
		pthread_mutexattr_init(&attr);
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&st->pre.lock, &attr);
		pthread_mutexattr_destroy(&attr);
		st->pre.kept = -1;
		atomic_init(&st->pre.sharing, sharing_bits(fdstate_fresh_mark()));
	}
	if (kind == FD_SIBLING_LISTENER)
		st->listener.channel = -1;
	atomic_store(&st->refs, 1);
	return st;
}

bool fdstate_channel_ours(const struct fd_state *ls)
{
	struct stat st;

	return ls->listener.channel >= 0 && fstat(ls->listener.channel, &st) == 0 &&
	       S_ISSOCK(st.st_mode) && st.st_ino == ls->listener.channel_ino;
}

/* The last reference went: the epoll registrations of a pre-connect state are freed when
 * the state is reused, not here, where a signal handler may be; a listener's channel is
 * closed (async-signal-safe). */
void fdstate_put(uintptr_t value)
{
	struct fd_state *st = fdstate_ptr(value);

	if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
		return;
	if (st->kind == FD_SIBLING_LISTENER && fdstate_channel_ours(st))
		real.close(st->listener.channel);
	push_free(st);
}

int fdstate_set(int fd, uintptr_t value)
{
	_Atomic uintptr_t *s = slot(fd, value != 0);

	if (!s) {
		if (value == 0)
			return 0;
		fdstate_put(value);
		errno = ENOMEM;
		return -1;
	}
	fdstate_put(atomic_exchange(s, value));
	return 0;
}

int fdstate_replace(int fd, uintptr_t expected, uintptr_t value)
{
	_Atomic uintptr_t *s = slot(fd, value != 0);

	if (!s || !atomic_compare_exchange_strong(s, &expected, value)) {
		fdstate_put(value);
		return -1;
	}
	fdstate_put(expected);
	return 0;
}

int fdstate_reserve(int fd)
{
	if (slot(fd, 1))
		return 0;
	errno = ENOMEM;
	return -1;
}

uintptr_t fdstate_take(int fd)
{
	_Atomic uintptr_t *s = slot(fd, 0);

	return s ? atomic_exchange(s, 0) : 0;
}

enum fd_sharing fdstate_sharing(uintptr_t value)
{
	struct fd_state *st = fdstate_ptr(value);
	uintptr_t sharing = fdstate_is_fresh(value) ? sharing_bits(value)
			    : st && st->kind == FD_PRECONNECT ? atomic_load(&st->pre.sharing)
							      : sharing_bits(fdstate_fresh_mark());

	if (sharing >> FD_FRESH_GENERATION_SHIFT != fdstate_fresh_mark() >> FD_FRESH_GENERATION_SHIFT)
		return FD_FORKED;
	return sharing & FD_FRESH_DUPLICATED ? FD_DUPLICATED : FD_ALONE;
}

unsigned fdstate_options_set(uintptr_t value)
{
	struct fd_state *st = fdstate_ptr(value);

	if (fdstate_is_fresh(value))
		return (unsigned)((value & (FD_FRESH_DUPLICATED - 1)) >> 1);
	if (st && st->kind == FD_PRECONNECT)
		return atomic_load(&st->pre.options_set);
	if (st && st->kind == FD_SIBLING_LISTENER)
		return atomic_load(&st->listener.options_set);
	return FD_OPTIONS_UNKNOWN;
}

void fdstate_note_option(int fd, int bit)
{
	_Atomic uintptr_t *s = slot(fd, 0);
	uintptr_t v = s ? atomic_load(s) : 0;

	while (fdstate_is_fresh(v) && !atomic_compare_exchange_weak(s, &v, v | (uintptr_t)2 << bit))
		;
	if (!fdstate_ptr(v))
		return;
	v = acquire(fd);
	struct fd_state *st = fdstate_ptr(v);
	if (st && st->kind == FD_PRECONNECT)
		atomic_fetch_or(&st->pre.options_set, 1u << bit);
	else if (st && st->kind == FD_SIBLING_LISTENER)
		atomic_fetch_or(&st->listener.options_set, 1u << bit);
	fdstate_put(v);
}

/* Marks the fresh TCP socket on fd, whose slot held v, as duplicated; returns the mark of
 * its duplicate (0 if fd is no fresh TCP socket). */
static uintptr_t mark_duplicated(int fd, uintptr_t v)
{
	struct fd_state *st = fdstate_ptr(v);
	_Atomic uintptr_t *s = slot(fd, 0);

	if (st && st->kind == FD_PRECONNECT) {
		uintptr_t options = (uintptr_t)atomic_load(&st->pre.options_set) << 1;
		uintptr_t sharing = atomic_fetch_or(&st->pre.sharing, FD_FRESH_DUPLICATED);
		/* FD_OPTIONS_UNKNOWN keeps every option bit: all are read at the swap */
		return FD_FRESH_TCP | (options & (FD_FRESH_DUPLICATED - 1)) | sharing |
		       FD_FRESH_DUPLICATED;
	}
	while (fdstate_is_fresh(v) && !atomic_compare_exchange_weak(s, &v, v | FD_FRESH_DUPLICATED))
		;
	return fdstate_is_fresh(v) ? v | FD_FRESH_DUPLICATED : 0;
}

void fdstate_dup(int oldfd, int newfd)
{
	uintptr_t v = acquire(oldfd);
	struct fd_state *st = fdstate_ptr(v);

	if (st && st->kind != FD_PRECONNECT) {
		fdstate_set(newfd, v); /* our reference becomes newfd's */
		return;
	}
	uintptr_t mark = mark_duplicated(oldfd, v);
	fdstate_put(v);
	fdstate_set(newfd, mark);
}

struct fd_state *fdstate_acquire_redirected(int fd)
{
	struct fd_state *st = fdstate_acquire_kind(fd, FD_REDIRECTED);
	int saved = errno, domain = 0;
	socklen_t len = sizeof(domain);

	if (!st)
		return NULL;
	if (real.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_VSOCK) {
		fdstate_replace(fd, (uintptr_t)st, 0);
		fdstate_release(st);
		st = NULL;
	}
	errno = saved;
	return st;
}

struct fd_state *fdstate_acquire_preconnect(int fd)
{
	for (;;) { /* again only when another thread changed the slot meanwhile */
		uintptr_t v = acquire(fd);
		struct fd_state *st = fdstate_ptr(v);
		if (st && st->kind == FD_PRECONNECT)
			return st;
		if (!fdstate_is_fresh(v)) {
			fdstate_put(v);
			return NULL;
		}
		if (!(st = fdstate_new(FD_PRECONNECT, 0)))
			return NULL;
		atomic_init(&st->pre.options_set, fdstate_options_set(v));
		atomic_init(&st->pre.sharing, sharing_bits(v));
		atomic_fetch_add(&st->refs, 1); /* ours, besides the slot's */
		if (fdstate_replace(fd, v, (uintptr_t)st) == 0)
			return st;
		fdstate_release(st);
	}
}

/* The swapper marks pre before it reads the slot; a closer empties the slot before it reads
 * the mark. Both are sequentially consistent, so at least one sees the other: the swap gives
 * up, or the closer waits. */
int fdstate_swap_begin(int fd, struct fd_state *pre)
{
	_Atomic uintptr_t *s = slot(fd, 1);

	if (!s) {
		errno = ENOMEM;
		return -1;
	}
	if (pre)
		atomic_store(&pre->pre.swapper, gettid());
	if (atomic_load(s) != (uintptr_t)pre) {
		fdstate_swap_end(fd, pre, NULL);
		errno = EBADF;
		return -1;
	}
	return 0;
}

int fdstate_swap_end(int fd, struct fd_state *pre, struct fd_state *st)
{
	int rc = st ? fdstate_replace(fd, (uintptr_t)pre, (uintptr_t)st) : 0;

	if (pre)
		atomic_store(&pre->pre.swapper, 0);
	return rc;
}

/* The wait lasts the few system calls between a swap's check and its end. A swapper
 * interrupted by a signal handler that closes the same descriptor is not waited for: it
 * would never go on. */
uintptr_t fdstate_retire(int fd)
{
	uintptr_t v = fdstate_take(fd);
	struct fd_state *st = fdstate_ptr(v);

	if (st && st->kind == FD_PRECONNECT) {
		int swapper = atomic_load(&st->pre.swapper);
		if (swapper && swapper != gettid())
			while (atomic_load(&st->pre.swapper))
				sched_yield();
	}
	return v;
}

void fdstate_retire_range(unsigned first, unsigned last)
{
	for (unsigned fd = first; fd <= last && fd < SLOTS_PER_PAGE * PAGES; fd++) {
		if (!atomic_load_explicit(&pages[fd / SLOTS_PER_PAGE], memory_order_acquire)) {
			fd |= SLOTS_PER_PAGE - 1; /* skip the whole missing page */
			continue;
		}
		fdstate_put(fdstate_retire((int)fd));
	}
}
