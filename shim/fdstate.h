/* What the shim knows about a file descriptor, found by number without a lock.
 *
 * A slot is 0 for the vast majority of descriptors: nothing to do. An odd slot marks a
 * fresh TCP socket from socket(), not yet connected or listening: bit 0 is FD_FRESH_TCP,
 * the bits above it say which options (tcp_opts_bit, FD_OPT_SOCKET_LEVEL) the application
 * set on it, so that a swap reads only those; then FD_FRESH_DUPLICATED, and from FD_FRESH_GENERATION_SHIFT on
 * the fork generation the socket was made in (fdstate_sharing). Any other slot is a pointer
 * to a struct fd_state, shared (counted) between duplicates.
 *
 * Safe reclamation. A hook may read a slot while another thread closes the descriptor and
 * drops the state it found. States are therefore never returned to malloc: a state whose
 * last reference goes is pushed onto a free list and later reused as another state
 * (type-stable memory, like the kernel's SLAB_TYPESAFE_BY_RCU). A pointer read from a slot
 * so always points at some fd_state, and a reader (fdstate_acquire) takes a reference only
 * while the count is not zero, then checks that the slot still holds that state; otherwise
 * it lets go and reads again. Readers never lock, and slots of descriptors the shim does
 * not track are read as before. Dropping a state (close, dup2 onto a number) is atomic
 * operations only, with no free(): async-signal-safe. The cost is that memory for states
 * stays with the process at its high-water mark of states alive at once. */
#ifndef VMSHIM_FDSTATE_H
#define VMSHIM_FDSTATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "tcpopts.h"
#include "vmshim/proto.h"

#define FD_FRESH_TCP ((uintptr_t)1)
/* The option bit after the TCP options' (tcp_opts_bit): one of the SOL_SOCKET options a swap
 * carries over was set (swap_carries). */
#define FD_OPT_SOCKET_LEVEL (TCP_OPT_INTS + 1)
#define FD_FRESH_DUPLICATED ((uintptr_t)1 << (TCP_OPT_INTS + 3))
#define FD_FRESH_GENERATION_SHIFT (TCP_OPT_INTS + 4)

enum fd_kind {
	FD_PRECONNECT = 1, /* a fresh TCP socket with epoll registrations to remember */
	FD_REDIRECTED,     /* a vsock connection presented as TCP */
	FD_SIBLING_LISTENER, /* a TCP listener registered with helperd */
};

#define FD_OPTIONS_UNKNOWN (~0u) /* a socket the shim did not see being made */

struct epoll_reg {
	struct epoll_reg *next;
	int epfd;
	struct epoll_event event;
};

struct fd_state {
	atomic_int refs; /* 0 while on the free list */
	struct fd_state *next_free;
	enum fd_kind kind;
	int family; /* FD_REDIRECTED: the application's socket family, AF_INET or AF_INET6 */
	union {
		struct { /* FD_PRECONNECT */
			/* recursive: a swap holds it while it replays the registrations */
			pthread_mutex_t lock;
			struct epoll_reg *regs;
			atomic_uint options_set;
			atomic_int swapper; /* the thread swapping this socket out, or 0 */
			/* FD_FRESH_DUPLICATED and the fork generation, as in a fresh mark */
			_Atomic uintptr_t sharing;
			/* A sibling connect going on in the background (pending.h): 1 while fd
			 * holds the placeholder (the word a blocking connect() waits on), then 0. */
			atomic_int pending;
			int kept; /* while pending, under lock: the application's TCP socket */
			atomic_int outcome; /* enum pending_outcome, once pending is 0 */
			atomic_int error; /* TCP's error that connect() had no chance to say */
		} pre;
		struct { /* FD_REDIRECTED */
			struct sockaddr_storage local, peer;
			socklen_t local_len, peer_len;
			struct tcp_opts opts;
			/* connect() said EINPROGRESS and has not been called since */
			atomic_bool in_progress;
			/* connect(AF_UNSPEC) ended the connection (disconnect.c) */
			atomic_bool disconnected;
			/* the directions shut down in this process (shutdown.c): SHUT_RD + 1 bits */
			atomic_uint shut;
		} conn;
		struct { /* FD_SIBLING_LISTENER; all but options_set fixed once it is set */
			uint16_t port;
			atomic_uint options_set; /* accepted sockets inherit these */
			/* helperd's channel for the listener (arrivals.h), or -1, and its inode:
			 * the application may close a number it does not know it has */
			int channel;
			ino_t channel_ino;
			uint8_t secret[VMSHIM_SECRET_LEN]; /* what its doorbells carry */
		} listener;
	};
};

/* The slot of fd, or 0. */
uintptr_t fdstate_peek(int fd);

/* The slot of fd, with a reference to the state if it holds one: valid however other
 * threads close or duplicate fd, until given back with fdstate_put. */
uintptr_t fdstate_acquire(int fd);

/* The state of fd if it is of that kind, with a reference (fdstate_release), else NULL. */
struct fd_state *fdstate_acquire_kind(int fd, enum fd_kind kind);

/* The FD_REDIRECTED state of fd, with a reference, after checking that fd still is a vsock
 * socket: a descriptor closed behind the shim's back (a raw system call) loses its state
 * here. */
struct fd_state *fdstate_acquire_redirected(int fd);

/* The FD_PRECONNECT state of fd, with a reference: the one in its slot, or a new one in
 * place of a fresh-TCP mark. NULL otherwise, or out of memory. Never in an empty slot: a
 * close() on another thread empties the slot before it frees the number (fdstate_retire),
 * so a state put there then would stand for whatever file takes the number next; a TCP
 * socket the shim did not see being made (a raw system call, one inherited through exec, a
 * second connect after TCP's failed) therefore stays TCP. */
struct fd_state *fdstate_acquire_preconnect(int fd);

/* A swap (swap.c) replaces the socket on fd only while fd's slot holds pre, a state of that
 * socket held by the swapper (or NULL for an empty slot nobody else knows of). close() and
 * dup2() onto fd empty the slot before the number is freed (fdstate_retire), and wait for a
 * swap that is between its check and its end, so a number freed and taken by another file
 * meanwhile is never swapped over.
 *
 * fdstate_swap_begin: 0 when fd's slot holds pre (and has room for the state after the
 * swap); -1 with errno EBADF when it does not, ENOMEM when there is no room. */
int fdstate_swap_begin(int fd, struct fd_state *pre);

/* Ends what fdstate_swap_begin began. st (NULL when nothing was swapped) becomes fd's state
 * if the slot still holds pre: 0. Otherwise a close() took the slot meanwhile and closes fd
 * once this returns; st is dropped: -1. */
int fdstate_swap_end(int fd, struct fd_state *pre, struct fd_state *st);

/* Empties fd's slot before the number is freed (close, dup2 onto it), after any swap onto
 * it has ended, and returns what was there (the caller owns that reference). */
uintptr_t fdstate_retire(int fd);

/* Retires descriptors first..last (close_range). */
void fdstate_retire_range(unsigned first, unsigned last);

/* A new state with one reference, or NULL when out of memory. */
struct fd_state *fdstate_new(enum fd_kind kind, int family);

/* Puts value into fd's slot and drops whatever was there. Returns -1 (ENOMEM) only when a
 * non-zero value needs a slot that cannot be allocated. */
int fdstate_set(int fd, uintptr_t value);

/* Puts value into fd's slot only if the slot holds expected, and then drops expected's
 * reference; otherwise drops value's. Returns 0 if it did, -1 if not. */
int fdstate_replace(int fd, uintptr_t expected, uintptr_t value);

/* 0 when fd's slot exists, so that a state can go there without allocating; -1 (ENOMEM)
 * when it cannot be made. */
int fdstate_reserve(int fd);

/* Empties fd's slot and returns what was there (the caller owns that reference). */
uintptr_t fdstate_take(int fd);

/* Makes newfd share oldfd's state (dup): redirected and listener states follow. A fresh or
 * pre-connect TCP socket's state belongs to one descriptor (its epoll registrations): both
 * get a fresh mark with FD_FRESH_DUPLICATED instead, so that neither is swapped alone. */
void fdstate_dup(int oldfd, int newfd);

/* The mark of a TCP socket made now. */
uintptr_t fdstate_fresh_mark(void);

/* Counts a fork (pthread_atfork's prepare): sockets made before it may have a copy in the
 * child. */
void fdstate_before_fork(void);

enum fd_sharing {
	FD_ALONE,      /* no other descriptor the shim knows of */
	FD_DUPLICATED, /* dup, dup2, dup3 or F_DUPFD made another (which may be closed since) */
	FD_FORKED,     /* the process forked since the socket was made: a child may hold it */
};

/* Whether the fresh TCP socket whose slot is value (a fresh mark or a pre-connect state)
 * may share its open file with another descriptor. */
enum fd_sharing fdstate_sharing(uintptr_t value);

/* Drops a reference to a slot's value (nothing for 0 or a fresh mark). */
void fdstate_put(uintptr_t value);

static inline struct fd_state *fdstate_ptr(uintptr_t value)
{
	return value && !(value & FD_FRESH_TCP) ? (struct fd_state *)value : NULL;
}

static inline void fdstate_release(struct fd_state *st)
{
	fdstate_put((uintptr_t)st);
}

static inline int fdstate_is_fresh(uintptr_t value)
{
	return value & FD_FRESH_TCP;
}

/* Which options (a mask of tcp_opts_bit) were set on the socket whose slot this is (a value
 * from fdstate_acquire): FD_OPTIONS_UNKNOWN when the shim cannot tell. */
unsigned fdstate_options_set(uintptr_t value);

/* Whether the number in listener state ls's channel still is the channel it was given, not
 * a number the application closed and reused. */
bool fdstate_channel_ours(const struct fd_state *ls);

/* Notes that option `bit` was set on fd, if fd is a socket whose options the shim follows. */
void fdstate_note_option(int fd, int bit);

#endif
