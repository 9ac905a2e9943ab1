/* The copy path of forward.c (forward.h): a buffer per direction, read and written without
 * blocking. For forward.c alone. */
#ifndef VMSHIM_FORWARD_COPY_H
#define VMSHIM_FORWARD_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "vmshim/forward.h"

/* 0, or -1 if the buffers cannot be had. */
int copy_start(struct forward *f);

/* Moves what it can after events on end e, then settles the forward (which may end it). */
void copy_on_event(struct forward *f, struct forward_end *e, uint32_t events);

/* Writes again what is owed to an end that had no room, and settles the forward if it did
 * (true: the forward may have ended). */
bool copy_tick(struct forward *f);

/* Puts n bytes from end i ahead of anything read from it later (splice_rescued's); 0, or -1
 * without the memory. */
int copy_preload(struct forward *f, int i, const uint8_t *bytes, size_t n);

/* Bytes read from end i not yet written to the other. */
uint32_t copy_pending(const struct forward *f, int i);

/* What end e waits for next. */
uint32_t copy_interest(const struct forward *f, const struct forward_end *e);

void copy_free(struct forward *f);

/* Whether end `to` still has bytes to get from the kernel (a LEAVING forward): copies to it
 * wait for them, so that the order holds. forward.c's. */
bool forward_kernel_sending(const struct forward *f, const struct forward_end *to);

#endif
