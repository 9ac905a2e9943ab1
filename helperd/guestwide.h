/* Guest-wide mode: TCP connects to siblings from every program of a cgroup, not only those
 * under the shim (Go, static binaries, raw system calls, io_uring). Programs of the kernel's
 * (guestwide.bpf.c) send each such connect to the bridge, a TCP listener of helperd's on
 * loopback, which carries it to the sibling over vsock (bridge.c). Root enables it with
 * helperd's --guest-wide; the programs are attached for helperd's life only. */
#ifndef HELPERD_GUESTWIDE_H
#define HELPERD_GUESTWIDE_H

#include <stdbool.h>
#include <stdint.h>

#include "vmshim/endpoint.h"
#include "vmshim/table.h"

/* The address the bridge listens on (and the programs send connects to), and the one its
 * connections to this guest's listeners come from. */
#define GUESTWIDE_BRIDGE_ADDR "127.86.83.78"
#define GUESTWIDE_BRIDGE_ADDR6 "::1" /* IPv6's only loopback address */
#define GUESTWIDE_INBOUND_ADDR "127.86.83.79"

/* Loads and attaches the programs to the cgroup at cgroup_path and opens the bridge.
 * 0, or -1 (logged). */
int guestwide_start(const char *cgroup_path);

/* Whether guest-wide mode runs. */
bool guestwide_on(void);

/* Takes a newly published table: the programs redirect by it from now on, and the bridge
 * routes by it. */
void guestwide_mirror(const struct vmshim_table_body *body, uint32_t size);

/* Where a connect to dest goes by the table in force. */
enum vmshim_verdict guestwide_route(const struct vmshim_endpoint *dest, struct vmshim_route *route);

/* The ids of the covered cgroup and of every one below it, as of now. */
struct guestwide_cgroups {
	bool all; /* the root: every program */
	uint64_t *ids;
	size_t n, cap;
};
int guestwide_cgroups(struct guestwide_cgroups *out);
bool guestwide_cgroups_has(const struct guestwide_cgroups *c, uint64_t id);
void guestwide_cgroups_free(struct guestwide_cgroups *c);

/* Files a connection of the bridge's to a listener of this guest, from local port `port`
 * (of GUESTWIDE_INBOUND_ADDR, or with v6 of GUESTWIDE_BRIDGE_ADDR6): the server's program
 * sees peer (the sibling's address and port) as the connection's peer and local as its own
 * name, both of the connection's family. 0, or -1. */
int guestwide_inbound_names(uint16_t port, bool v6, const struct vmshim_endpoint *peer,
			    const struct vmshim_endpoint *local);
void guestwide_inbound_forget(uint16_t port, bool v6);

/* What the programs do for want of room in the bridge (bridge.c): with full, every connect
 * stays TCP; with a user full, that user's do. */
void guestwide_bridge_full(bool full);
void guestwide_user_full(uint32_t uid, bool full);

/* Connects to siblings that stayed TCP for want of room in the bridge. */
unsigned long guestwide_no_room(void);

void guestwide_stop(void);

#endif
