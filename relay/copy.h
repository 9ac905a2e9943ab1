/* Forwarding in user space, where the kernel cannot splice: a buffer of the host policy's
 * `buffer` bytes per direction, so a connection holds at most twice that on the host. A
 * direction whose source reached EOF is shut down on its destination once its buffer is
 * empty (half-close); an end that takes no more (hang-up, EPIPE) loses what is owed to it and
 * its peer's writes fail, as on a direct connection. The session ends when both directions
 * are shut, or on an error. */
#ifndef RELAY_COPY_H
#define RELAY_COPY_H

#include <stdint.h>

#include "session.h"

/* 0, or -1 if the buffers cannot be had. */
int copy_start(struct session *s);

/* Moves what it can after events on end e, then settles the session (which may end it). */
void copy_on_event(struct session *s, struct end *e, uint32_t events);

/* Every tick: writes again what is owed to an end that had no room. This is how a vsock
 * peer that closed without reading is found: its socket raises no hang-up while bytes from
 * it wait unread, only EPIPE on a send. */
void copy_tick(struct session *s);

/* Puts n bytes from end `from` ahead of anything read from it later (splice_rescued's);
 * 0, or -1 without the memory. */
int copy_preload(struct session *s, const struct end *from, const uint8_t *bytes, size_t n);

/* Bytes read from end `from` not yet written to the other. */
uint32_t copy_pending(const struct session *s, const struct end *from);

/* What end e waits for next. */
uint32_t copy_interest(const struct session *s, const struct end *e);

void copy_free(struct session *s);

#endif
