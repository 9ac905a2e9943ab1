/* A two-level array indexed by descriptor number: the upper level is fixed, the lower one
 * allocated in pages of 4096 slots the first time a descriptor in that range needs a mark. */
#include <errno.h>
#include <stdlib.h>

#include "fdstate.h"
#include "shim.h"

#define SLOTS_PER_PAGE 4096
#define PAGES 4096 /* 16M descriptors */

static _Atomic(_Atomic uintptr_t *) pages[PAGES];

static _Atomic uintptr_t *slot(int fd, int create)
{
	if (fd < 0 || fd >= SLOTS_PER_PAGE * PAGES)
		return NULL;
	_Atomic(_Atomic uintptr_t *) *page = &pages[fd / SLOTS_PER_PAGE];
	_Atomic uintptr_t *p = atomic_load_explicit(page, memory_order_acquire);

	if (!p && create) {
		_Atomic uintptr_t *fresh = calloc(SLOTS_PER_PAGE, sizeof(*fresh));
		if (!fresh)
			return NULL;
		if (atomic_compare_exchange_strong(page, &p, fresh))
			p = fresh;
		else
			free(fresh); /* another thread won; p now holds its page */
	}
	return p ? &p[fd % SLOTS_PER_PAGE] : NULL;
}

uintptr_t fdstate_peek(int fd)
{
	_Atomic uintptr_t *s = slot(fd, 0);

	return s ? atomic_load_explicit(s, memory_order_acquire) : 0;
}

struct fd_state *fdstate_get(int fd, enum fd_kind kind)
{
	struct fd_state *st = fdstate_ptr(fdstate_peek(fd));

	return st && st->kind == kind ? st : NULL;
}

struct fd_state *fdstate_new(enum fd_kind kind, int family)
{
	struct fd_state *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	atomic_init(&st->refs, 1);
	st->kind = kind;
	st->family = family;
	if (kind == FD_PRECONNECT)
		pthread_mutex_init(&st->pre.lock, NULL);
	return st;
}

void fdstate_put(uintptr_t value)
{
	struct fd_state *st = fdstate_ptr(value);

	if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
		return;
	if (st->kind == FD_PRECONNECT) {
		for (struct epoll_reg *r = st->pre.regs, *next; r; r = next) {
			next = r->next;
			free(r);
		}
		pthread_mutex_destroy(&st->pre.lock);
	}
	free(st);
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

uintptr_t fdstate_take(int fd)
{
	_Atomic uintptr_t *s = slot(fd, 0);

	return s ? atomic_exchange(s, 0) : 0;
}

unsigned fdstate_options_set(uintptr_t value)
{
	struct fd_state *st = fdstate_ptr(value);

	if (fdstate_is_fresh(value))
		return (unsigned)(value >> 1);
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
	struct fd_state *st = fdstate_ptr(v);
	if (st && st->kind == FD_PRECONNECT)
		atomic_fetch_or(&st->pre.options_set, 1u << bit);
	else if (st && st->kind == FD_SIBLING_LISTENER)
		atomic_fetch_or(&st->listener.options_set, 1u << bit);
}

void fdstate_dup(int oldfd, int newfd)
{
	struct fd_state *st = fdstate_ptr(fdstate_peek(oldfd));

	if (st && st->kind != FD_PRECONNECT) {
		atomic_fetch_add(&st->refs, 1);
		fdstate_set(newfd, (uintptr_t)st);
	} else {
		fdstate_set(newfd, 0);
	}
}

struct fd_state *fdstate_redirected(int fd)
{
	struct fd_state *st = fdstate_get(fd, FD_REDIRECTED);
	int saved = errno, domain = 0;
	socklen_t len = sizeof(domain);

	if (!st)
		return NULL;
	if (real.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_VSOCK) {
		fdstate_set(fd, 0);
		st = NULL;
	}
	errno = saved;
	return st;
}

void fdstate_clear_range(unsigned first, unsigned last)
{
	for (unsigned fd = first; fd <= last && fd < SLOTS_PER_PAGE * PAGES; fd++) {
		if (!atomic_load_explicit(&pages[fd / SLOTS_PER_PAGE], memory_order_acquire)) {
			fd |= SLOTS_PER_PAGE - 1; /* skip the whole missing page */
			continue;
		}
		fdstate_put(fdstate_take((int)fd));
	}
}
