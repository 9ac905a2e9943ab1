/* One relayed connection, from the guest's request to the close of both ends:
 *
 *   REQUEST    reading the caller's REQUEST (relayproto.h), within request-timeout
 *   DIALING    connecting to the destination, within connect-timeout
 *   HANDSHAKE  hybrid destinations: waiting for "OK <port>\n" after "CONNECT <port>\n"
 *   FORWARD    FROM sent to the destination, REPLY ok to the caller; bytes flow, in the
 *              kernel (sockmap) or by copies, until both directions are closed (forward.h) */
#ifndef RELAY_SESSION_H
#define RELAY_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hybrid_line.h"
#include "vmshim/forward.h"
#include "vmshim/relayproto.h"

enum session_state { SESSION_REQUEST, SESSION_DIALING, SESSION_HANDSHAKE, SESSION_FORWARD };

/* Its two ends, ends[CALLER] and ends[DEST]: watched from the start, forwarded (forward.h)
 * from FORWARD on. */
enum { CALLER, DEST };

struct session {
	struct forward fwd; /* first: an end's forward is its session */
	struct forward_end ends[2];
	enum session_state state;
	int from, to; /* guest indices in relay.policy */
	uint32_t dest_port, source_port;
	bool port_seen; /* source_port seen by the host, not told by the guest */
	int64_t started_ms, deadline_ms;
	uint8_t request[RELAYPROTO_REQUEST_SIZE];
	char line[HYBRID_OK_MAX + 1]; /* the hybrid handshake's answer */
	unsigned have; /* bytes of request or line read so far */
	unsigned refs; /* watches not yet released by the loop */
	struct session *prev, *next;
};

/* A guest connected to the relay on fd (non-blocking). from is its index; source_port is
 * its vsock port where the host sees it (port_seen), else 0 until its request says. Takes
 * fd in every case. */
void session_start(int fd, int from, uint32_t source_port, bool port_seen);

/* Ends sessions whose request or destination is late, watches the kernel's queues of spliced
 * ones; called every SESSION_TICK_MS. */
void session_tick(void);
#define SESSION_TICK_MS FORWARD_TICK_MS

/* A reload (reload.c), while relay.policy is still the old one: ends the sessions the new
 * policy no longer grants (regrant.h), counted as revoked, and renumbers the others' guests
 * as map says. How many it ended. */
struct host_policy;
unsigned session_regrant(const struct host_policy *new, const int *map);

/* Closes every session (relay stopping). */
void session_close_all(void);

/* For status: every session, oldest first. */
void session_print(FILE *out);

/* Ends a session: closes both ends, adds its bytes to the counters. */
void session_end(struct session *s, const char *why);

#endif
