/* Guest-wide mode: TCP connects to siblings from every program of a cgroup, not only those
 * under the shim (Go, static binaries, raw system calls, io_uring). Programs of the kernel's
 * (guestwide.bpf.c) send each such connect to the bridge, a TCP listener of helperd's on
 * loopback, which carries it to the sibling over vsock (bridge.c). Root enables it with
 * helperd's --guest-wide; the programs are attached for helperd's life only. */
#ifndef HELPERD_GUESTWIDE_H
#define HELPERD_GUESTWIDE_H

#include <stdbool.h>
#include <stdint.h>

#include "vmshim/table.h"

/* The address the bridge listens on (and the programs send connects to). */
#define GUESTWIDE_BRIDGE_ADDR "127.86.83.78"

/* Loads and attaches the programs to the cgroup at cgroup_path and opens the bridge.
 * 0, or -1 (logged). */
int guestwide_start(const char *cgroup_path);

/* Whether guest-wide mode runs. */
bool guestwide_on(void);

/* Takes a newly published table: the programs redirect by it from now on, and the bridge
 * routes by it. */
void guestwide_mirror(const struct vmshim_table_body *body, uint32_t size);

/* Where a connect to addr:port (IPv4, network order) goes by the table in force. */
enum vmshim_verdict guestwide_route(const uint8_t addr[4], uint16_t port,
				    struct vmshim_route *route);

void guestwide_stop(void);

#endif
