/* The conversation between a shim and its guest's helperd: one request and at most one reply
 * per connection on helperd's SOCK_SEQPACKET Unix socket, with file descriptors passed as
 * SCM_RIGHTS. Every request that concerns a socket carries that socket, so helperd can check
 * it for itself instead of believing what it is told.
 *
 * And the arrivals: each registered listener (all sockets bound to one address and port by
 * one user, as an SO_REUSEPORT group is) has a channel, a SOCK_SEQPACKET socket pair made by
 * helperd, whose receiving end a REGISTER reply gives the shim. For each sibling connection
 * helperd sends one struct vmshim_arrival with the connection on it, then rings the
 * listener's doorbell, which carries the channel's secret as its only data. Whichever
 * process accepts a doorbell with the secret takes the next arrival: sibling connections to
 * one listener are interchangeable, as the entries of its accept queue are. The shim then
 * writes one byte, VMSHIM_HANDOVER_BYTE, back on the doorbell (vmshim/handover.h): it took
 * an arrival for it. All integers are in host byte order (both ends run on the same
 * machine), an endpoint as vmshim/endpoint.h says; the structures have no padding. */
#ifndef VMSHIM_PROTO_H
#define VMSHIM_PROTO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmshim/endpoint.h"

#define VMSHIM_SOCKET_FILE "helperd.sock"
#define VMSHIM_DEFAULT_RUNDIR "/run/vmshim"
#define VMSHIM_PROTO_MAGIC 0x564d5332u /* "VMS2": REGISTER answers with a channel */
#define VMSHIM_ARRIVAL_MAGIC 0x564d5341u /* "VMSA" */

/* The doorbell's data, and the channel's secret in a REGISTER reply. */
#define VMSHIM_SECRET_LEN 16

/* Doorbells, the loopback connections by which helperd wakes a listener for a sibling
 * connection, come from this address (or from ::1 to an IPv6-only listener). */
#define VMSHIM_DOORBELL_ADDR4 "127.86.83.77"

enum vmshim_request_type {
	/* fd: a TCP listening socket the sender wants siblings to reach (again: a process
	 * that inherited it, or whose channel's helperd is gone, asks for the channel).
	 * Reply: status, and with status 0 the listener's channel as fd and its secret. */
	VMSHIM_REQ_REGISTER = 1,
	/* 2 was CLAIM (a doorbell exchanged for its connection), withdrawn with "VMS1". */
	/* no fd: the sender closed a registered listener on `port`; check who still listens. */
	VMSHIM_REQ_CLOSED = 3,
	/* no fd; port: enum vmshim_status_form. Reply: the status (vmshimctl status) in
	 * messages of at most VMSHIM_STATUS_CHUNK bytes, then the end of the connection. */
	VMSHIM_REQ_STATUS = 4,
	/* no fd. Reply: status, and with status 0 the shims' counter page (a memfd). */
	VMSHIM_REQ_COUNTERS = 5,
};

/* What a STATUS request asks for, in its port field. */
enum vmshim_status_form {
	VMSHIM_STATUS_TEXT = 0,
	VMSHIM_STATUS_JSON = 1,
};

/* One message can carry only what fits into a socket's send buffer (about 212 KB); a
 * status with many peers and ports is longer. */
#define VMSHIM_STATUS_CHUNK 65536

/* 12 bytes. */
struct vmshim_request {
	uint32_t magic;
	uint32_t type;
	uint32_t port;
};

/* 24 bytes. */
struct vmshim_reply {
	uint32_t magic;
	int32_t status; /* 0 or an errno value */
	uint8_t secret[VMSHIM_SECRET_LEN]; /* REGISTER: the doorbells' data; else zero */
};

/* 48 bytes, on a listener's channel, with one descriptor: the sibling's vsock connection,
 * to be shown as peer connected to local. */
struct vmshim_arrival {
	uint32_t magic;    /* VMSHIM_ARRIVAL_MAGIC */
	uint32_t reserved; /* 0 */
	struct vmshim_endpoint peer, local; /* 20 bytes each (vmshim/endpoint.h) */
};

/* The largest errno value a reply's status may carry (the kernel's MAX_ERRNO). */
#define VMSHIM_STATUS_MAX 4095

/* Every message is checked by its receiver before anything in it is used: helperd's socket
 * is open to every local user, and the shim runs inside every program. In each check, n is
 * what fdpass_recv returned (negative for a message it could not take: truncated, or with
 * more than one descriptor) and with_fd whether a descriptor came. Each returns 0, or -1
 * with the reason in *why (a constant). */

/* A request as helperd received it: exactly one struct vmshim_request of a known type, with
 * a descriptor for REGISTER and none for the others. */
int proto_check_request(const struct vmshim_request *req, ssize_t n, bool with_fd,
			const char **why);

/* helperd's reply to a request of the given type, as the shim received it: exactly one
 * struct vmshim_reply, status 0 or an errno value; REGISTER and COUNTERS have a descriptor
 * with status 0 and none otherwise. CLOSED and STATUS have no such reply. */
int proto_check_reply(uint32_t type, const struct vmshim_reply *reply, ssize_t n, bool with_fd,
		      const char **why);

/* An arrival as the shim took it from a listener's channel: exactly one struct
 * vmshim_arrival with its magic, reserved zero, one descriptor, two AF_INET or AF_INET6
 * endpoints that a socket accepted on a listener of listener_family can show (IPv6 has no
 * IPv4 form). */
int proto_check_arrival(const struct vmshim_arrival *a, ssize_t n, bool with_fd,
			int listener_family, const char **why);

#endif
