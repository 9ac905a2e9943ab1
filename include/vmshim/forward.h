/* Forwarding between two connected stream sockets, both ways, until both directions are
 * closed: the relay's sessions (vsock to vsock) and the guest-wide bridge's connections
 * (TCP to vsock). A forward is spliced in the kernel (splice.h) whenever the kernel takes the
 * pair, and copied in user space otherwise, through a buffer of `buffer` bytes per direction:
 *
 *   COPY --(nothing pending either way, no EOF yet, splice_add takes the pair)--> SPLICED
 *   COPY --(splice_add refused: bytes in flight)--> COPY, tried again FORWARD_RETRY_MS later
 *          (at the next tick when it was the first try: a program's first bytes, which the
 *          copies pass on at once)
 *   COPY --(splice_add refused: every pair taken)--> COPY, tried again FORWARD_RETRY_MS later
 *   SPLICED --(bytes queue in the kernel beyond the buffer: a slow reader, or a kernel
 *   |          slower than the writer; bytes left where the kernel will not forward them)
 *   |          --> LEAVING: the kernel takes no more; the copy reads at once, writes a
 *   |              direction only after the kernel has sent what it took that way
 *   LEAVING --(the kernel has sent all it took)--> COPY
 *
 * Each direction's EOF is passed on (shutdown(SHUT_WR)) once every byte before it is
 * through; an end that takes no more (hang-up, EPIPE) loses what is owed to it, and its peer's
 * writes fail from then on, as on a direct connection. The forward ends when both directions
 * are shut, or on an error: ops->ended, after which the forward is not touched again. */
#ifndef VMSHIM_FORWARD_H
#define VMSHIM_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "vmshim/loop.h"

struct splice_engine;
struct forward;

enum forward_path {
	FORWARD_COPY,    /* through the buffers, in user space */
	FORWARD_SPLICED, /* the kernel's sockmap (splice.h) */
	FORWARD_LEAVING, /* copies read; the kernel takes no more but still sends what it took */
};

/* How long a copied forward waits before it tries the kernel again. */
#define FORWARD_RETRY_MS 1000
/* How often the owner calls forward_tick; also at once when the engine's splice_wake_fd
 * turns readable (a kernel queue past its limit). */
#define FORWARD_TICK_MS 100
/* Why a forward ends when the kernel dropped bytes of it that could not be rescued. */
#define FORWARD_LOST_IN_KERNEL "reset: the kernel lost bytes giving it back"

/* One side: the owner keeps it, makes its watch (loop_add) with this end as the watch's
 * owner, and hands its events to forward_on_event once forwarding has begun. */
struct forward_end {
	struct watch w;
	struct forward *f;
	bool eof;  /* its peer will send no more */
	bool gone; /* it takes nothing more (hang-up, or EPIPE on a send) */
	bool shut; /* shutdown(SHUT_WR) passed on to it */
	uint32_t armed; /* the events epoll has for it; FORWARD_ARMED_UNKNOWN after a one-shot */
};
#define FORWARD_ARMED_UNKNOWN UINT32_MAX

/* Bytes on their way from one end to the other (copy path). */
struct forward_dir {
	uint8_t *buf;
	uint32_t size;       /* `buffer`, or more for bytes rescued from the kernel */
	uint32_t head, tail; /* pending bytes are buf[head, tail) */
};

enum forward_event { FORWARD_SPLICE, FORWARD_TAKE_BACK, FORWARD_RESCUE };

struct forward_ops {
	/* The forward is over (why, for the log; reset: by an error, not because both sides
	 * closed): the owner stops it (forward_stop), closes both ends and counts its bytes
	 * (forward_moved). */
	void (*ended)(struct forward *f, const char *why, bool reset);
	/* It was spliced, taken back, or got bytes the kernel dropped while pausing. */
	void (*counted)(struct forward *f, enum forward_event what);
};

struct forward {
	struct forward_end *end[2]; /* the owner's; dir[i] carries end[i]'s bytes to the other */
	const struct forward_ops *ops;
	struct splice_engine *engine; /* NULL: copies only */
	uint32_t buffer;              /* bytes per direction, and the kernel's queue's bound */
	unsigned long id;             /* for the log */
	enum forward_path path;
	unsigned splice_id;
	uint64_t window_full_seen[2]; /* splice_window_full at the last tick, per direction */
	int64_t splice_retry_ms;      /* when a copied forward may try the kernel again */
	unsigned taken_back;          /* times the kernel had it and gave it back to the copies */
	const char *taken_back_why;   /* the last time's reason (a constant, JSON as is) */
	struct forward_dir dir[2];
	unsigned long long moved[2]; /* from end i, by copies and by past splices */
};

/* The end across from e. */
static inline struct forward_end *forward_other(struct forward *f, const struct forward_end *e)
{
	return e == f->end[0] ? f->end[1] : f->end[0];
}

/* Begins forwarding between the ends' sockets (non-blocking, watched): 0, or -1 with errno
 * (ENOMEM: no buffers; EIO: the kernel lost bytes giving the pair back) and nothing ended. */
int forward_begin(struct forward *f);

/* Events on end e (its watch's). */
void forward_on_event(struct forward_end *e, uint32_t events);

/* Every FORWARD_TICK_MS: watches the kernel's queues of a spliced forward, writes again what
 * is owed to an end that had no room (how a vsock peer that closed without reading is found:
 * its socket raises no hang-up while bytes from it wait unread, only EPIPE on a send), and
 * splices a copied one again when it may. */
void forward_tick(struct forward *f, int64_t now_ms);

/* Passes each EOF on once its direction is drained, ends the forward when nothing more can
 * flow, else sets what both ends wait for. */
void forward_settle(struct forward *f);

/* Gives epoll the events end e waits for, with no system call when it has them already. A
 * one-shot is always armed again. */
void forward_watch(struct forward_end *e, uint32_t events);

/* Out of the kernel's hands, buffers freed; the owner closes the ends. */
void forward_stop(struct forward *f);

/* Bytes forwarded from end i so far, by copies and by the kernel. */
unsigned long long forward_moved(const struct forward *f, int i);

/* Bytes taken from end i and not yet written to the other: in the kernel's queue and in the
 * buffer. */
unsigned long long forward_queued(const struct forward *f, int i);

/* How often the kernel found the reader's window full, sending what came from end i, in this
 * splice. */
unsigned long long forward_window_full(const struct forward *f, int i);

#endif
