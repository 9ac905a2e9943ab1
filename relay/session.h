/* One relayed connection, from the guest's request to the close of both ends:
 *
 *   REQUEST    reading the caller's REQUEST (relayproto.h), within request-timeout
 *   DIALING    connecting to the destination, within connect-timeout
 *   HANDSHAKE  hybrid destinations: waiting for "OK <port>\n" after "CONNECT <port>\n"
 *   FORWARD    FROM sent to the destination, REPLY ok to the caller; bytes flow, in the
 *              kernel (sockmap) or through copy.c, until both directions are closed */
#ifndef RELAY_SESSION_H
#define RELAY_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hybrid_line.h"
#include "vmshim/loop.h"
#include "vmshim/relayproto.h"

enum session_state { SESSION_REQUEST, SESSION_DIALING, SESSION_HANDSHAKE, SESSION_FORWARD };

/* How a forwarding session's bytes move. A session is spliced whenever the kernel can take
 * it; it is taken back (LEAVING, then COPY) when bytes queue in the kernel beyond the host
 * policy's buffer (a slow reader) or wait where the kernel will not forward them, and
 * spliced again once the copy has nothing pending. */
enum forward_path {
	PATH_COPY,    /* copy.c, through the session's buffers */
	PATH_SPLICED, /* the kernel's sockmap (splice.h) */
	PATH_LEAVING, /* copy.c reads; the kernel takes no more but still sends what it took */
};

struct session;

/* One side of a session: the caller or the destination. */
struct end {
	struct watch w;
	struct session *s;
	bool eof;  /* its guest will send no more */
	bool gone; /* it takes nothing more (hang-up, or EPIPE on a send) */
	bool shut; /* shutdown(SHUT_WR) passed on to it */
	uint32_t armed; /* the events epoll has for it; ARMED_UNKNOWN after a one-shot */
};

/* Bytes on their way from one end to the other (copy path). */
struct copy_dir {
	uint8_t *buf;
	uint32_t size;       /* the host policy's buffer, or more for rescued bytes */
	uint32_t head, tail; /* pending bytes are buf[head, tail) */
};

struct session {
	struct end caller, dest;
	enum session_state state;
	int from, to; /* guest indices in relay.policy */
	uint32_t dest_port, source_port;
	bool port_seen; /* source_port seen by the host, not told by the guest */
	enum forward_path path;
	unsigned splice_id;
	uint64_t window_full_seen[2]; /* splice_window_full at the last tick, up and down */
	int64_t splice_retry_ms; /* when a copied session may try the kernel again */
	struct copy_dir up, down; /* caller to destination, destination to caller */
	unsigned long long bytes_up, bytes_down; /* moved by copies, and by past splices */
	int64_t started_ms, deadline_ms;
	uint8_t request[RELAYPROTO_REQUEST_SIZE];
	char line[HYBRID_OK_MAX + 1]; /* the hybrid handshake's answer */
	unsigned have; /* bytes of request or line read so far */
	unsigned refs; /* watches not yet released by the loop */
	unsigned long id;
	struct session *prev, *next;
};

/* Gives epoll the events end e waits for, with no system call when it has them already:
 * the copy path settles after every event. A one-shot is always armed again. */
void session_watch(struct end *e, uint32_t events);

/* The end across from e. */
static inline struct end *session_other(struct session *s, const struct end *e)
{
	return e == &s->caller ? &s->dest : &s->caller;
}

/* A guest connected to the relay on fd (non-blocking). from is its index; source_port is
 * its vsock port where the host sees it (port_seen), else 0 until its request says. Takes
 * fd in every case. */
void session_start(int fd, int from, uint32_t source_port, bool port_seen);

/* Whether end `to` still has bytes to get from the kernel (a LEAVING session): copies to it
 * wait for them, so that the order holds. */
bool session_kernel_sending(const struct session *s, const struct end *to);

/* Ends sessions whose request or destination is late, watches the kernel's queues of spliced
 * ones; called every SESSION_TICK_MS. */
void session_tick(void);
#define SESSION_TICK_MS 100

/* A reload (reload.c), while relay.policy is still the old one: ends the sessions the new
 * policy no longer grants (regrant.h), counted as revoked, and renumbers the others' guests
 * as map says. How many it ended. */
struct host_policy;
unsigned session_regrant(const struct host_policy *new, const int *map);

/* Closes every session (relay stopping). */
void session_close_all(void);

/* For status: every session, oldest first. */
void session_print(FILE *out);

/* After bytes moved or an end closed (copy.c calls it): passes each EOF on once its
 * direction is drained, ends the session when nothing more can flow, else sets what both
 * ends wait for. */
void session_settle(struct session *s);

/* Ends a session: closes both ends, adds its bytes to the counters. */
void session_end(struct session *s, const char *why);

#endif
