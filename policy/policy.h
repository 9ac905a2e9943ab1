/* The policy: which guests are co-resident, what they own, which ports they expose.
 * Format: policy/FORMAT.md. Parsed by helperd only; the shim sees the table built from it. */
#ifndef VMSHIM_POLICY_H
#define VMSHIM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vmshim/relayproto.h"

#define POLICY_NAME_MAX 32
#define POLICY_LINE_MAX 65536
#define POLICY_DEFAULT_VSOCK_BASE 1048576u
#define POLICY_DEFAULT_CONNECT_TIMEOUT_MS 1000u
#define POLICY_DEFAULT_LIVENESS_MS 3000u
#define POLICY_PORT_WORDS (65536 / 64)

struct policy_prefix {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order; IPv4 uses the first 4 bytes */
	unsigned len;     /* prefix length */
	unsigned line;
};

struct policy_ports {
	uint64_t allowed[POLICY_PORT_WORDS]; /* bit P set: TCP port P may be redirected */
};

struct policy_peer {
	char name[POLICY_NAME_MAX + 1];
	unsigned line; /* of its `peer` statement */
	uint32_t cid;
	uint32_t vsock_base;
	uint32_t control_port; /* vsock port of its helperd, for the other helperds */
	/* The addresses it may own; none: no address (helperd refuses every claim and warns) */
	struct policy_prefix *prefixes; /* the first single address of a family stands for it */
	size_t n_prefixes;
	struct policy_ports ports; /* own rules, or the global ones */
	bool via_relay; /* reached through the host's vmshim-relay, not directly */
	char uuid[37];  /* told by the relay (`peers relay`): its libvirt domain's; else empty */
};

struct policy {
	struct policy_peer *peers;
	size_t n_peers;
	int self; /* index into peers, or -1 when the file has no `self` */
	uint32_t connect_timeout_ms;
	uint32_t liveness_ms; /* a peer silent this long is taken as gone */
	/* The host's vmshim-relay, if the file names one (`relay CID PORT [hybrid]`). Its
	 * connections come from the 1023 vsock ports from relay_first_source on, or, on a host
	 * with hybrid vsock, from any port (FORMAT.md). */
	bool has_relay, relay_hybrid;
	bool peers_from_relay; /* `peers relay`: the host tells the siblings (helperd/hostpeers.h) */
	uint32_t relay_cid, relay_port, relay_first_source;
	/* TCP ports that may be relayed where half-closes are lost (`without-half-close`) */
	struct policy_ports without_half_close;
};

/* Parses and validates a whole file, which none but root may be able to change
 * (policy_file_trusted). On success returns 0 and *out; on failure returns -1, leaves *out
 * untouched and writes "FILE:LINE: what is wrong" (or "FILE: ...") into err. */
int policy_load(const char *path, struct policy **out, char *err, size_t errlen);

/* The same from an open stream; path names it in the errors. */
int policy_read(FILE *f, const char *path, struct policy **out, char *err, size_t errlen);

/* policy_load, with more statements read after the file's as if they ended it (peers the
 * relay told of: helperd/hostpeers.h); their lines count on from the file's last. */
int policy_load_more(const char *path, const char *more, struct policy **out, char *err,
		     size_t errlen);

void policy_free(struct policy *policy);

/* Whether a vsock connection from cid:port is one the relay made. */
static inline bool policy_from_relay(const struct policy *policy, uint32_t cid, uint32_t port)
{
	return policy->has_relay && cid == policy->relay_cid &&
	       (policy->relay_hybrid ||
		(port >= policy->relay_first_source && port - policy->relay_first_source < RELAYPROTO_SOURCE_PORTS));
}

/* Index of the peer called name, or -1. */
int policy_find_peer(const struct policy *policy, const char *name);

static inline int policy_port_allowed(const struct policy_ports *ports, unsigned port)
{
	return port < 65536 && (ports->allowed[port / 64] >> (port % 64)) & 1;
}

#endif
