/* A small epoll loop: each watched descriptor carries its own handler. */
#ifndef VMSHIM_LOOP_H
#define VMSHIM_LOOP_H

#include <stdint.h>

struct watch {
	int fd;
	void (*on_event)(struct watch *w, uint32_t events);
	struct watch *retired_next;
	void *owner; /* freed when the watch is retired, unless release is set */
	void (*release)(struct watch *w); /* called instead of free(owner) */
};

int loop_init(void);
int loop_add(struct watch *w, uint32_t events);
int loop_mod(struct watch *w, uint32_t events);
void loop_del(struct watch *w);

/* Stops watching w and frees w->owner (or calls w->release) once the current batch of
 * events is dispatched, so that an event already fetched for it is skipped rather than sent
 * to freed memory. The caller closes the descriptor. */
void loop_retire(struct watch *w);

/* Dispatches events until *stop becomes true. Returns 0, or -1 if epoll fails.
 * before_sleep (if not NULL) runs before each wait and once more before returning, so that
 * what a batch of events changed is acted on once for the whole batch. */
int loop_run(volatile int *stop, void (*before_sleep)(void));

/* After loop_run and the shutdown of everything watched: frees the watches retired since,
 * and closes the epoll descriptor. */
void loop_close(void);

#endif
