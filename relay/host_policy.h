/* The relay's host policy: which guests it serves, how each is reached (vhost-vsock by CID,
 * or hybrid vsock by its Unix socket), which guest may reach which, and the limits.
 * Format: relay/FORMAT.md.
 *
 * Two forms. As written (host_policy_load), a block without `cid` stands for libvirt
 * domains: the running one of its name, or with `domains PATTERN...`, every running one
 * whose name matches (a group). In force (host_domains_in_force), every guest is one VM
 * with its CID: the written guests as they are and a guest of its own for each domain a
 * block stands for, its reach that of its block. Every question below is asked of the
 * policy in force. */
#ifndef RELAY_HOST_POLICY_H
#define RELAY_HOST_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "policy.h"
#include "vmshim/relayproto.h"

#define HOST_DEFAULT_PORT 5460u
#define HOST_DEFAULT_MAX_CONNECTIONS 4096u
#define HOST_DEFAULT_MAX_PER_GUEST 512u
#define HOST_DEFAULT_BUFFER (256u * 1024)
#define HOST_DEFAULT_CONNECT_TIMEOUT_MS 1000u
#define HOST_DEFAULT_REQUEST_TIMEOUT_MS 1000u
/* Room after a hybrid socket path for "_PORT". */
#define HOST_HYBRID_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 12)

struct host_port_range {
	uint32_t lo, hi;
};

/* Whom one guest may reach, and on which vsock ports (none listed: the vmshim ports of that
 * guest, host_vmshim_port). */
struct host_reach {
	size_t guest;
	struct host_port_range *ranges;
	size_t n_ranges;
	unsigned line;
};

#define HOST_GUEST_NAME_MAX 32
#define HOST_UUID_LEN 36 /* as libvirt prints it */

struct host_guest {
	char name[HOST_GUEST_NAME_MAX + 1];
	unsigned line;
	uint32_t cid;
	bool shares_cid;      /* with another guest (tests): known by its vsock port block */
	uint32_t vsock_base;  /* its vmshim port block, as its guest policy says */
	uint32_t control_port; /* its helperd's, as its guest policy says */
	char hybrid[HOST_HYBRID_PATH_MAX]; /* its hybrid vsock socket; empty: vhost-vsock */
	bool loses_half_close; /* its VMM (hybrid, without `half-close`) drops half-closes */
	struct host_reach *reach;
	size_t n_reach;
	/* The addresses it may own, told to its siblings (`address`) */
	struct policy_prefix owned[RELAYPROTO_SIBLING_ADDRS];
	size_t n_owned;
	/* As written: whether the block stands for libvirt domains, and its patterns (none:
	 * the domain of its name). In force: whether the guest is a domain, its UUID, and the
	 * block it came from (for a written guest, its own name). */
	bool libvirt;
	char **patterns;
	size_t n_patterns;
	char uuid[HOST_UUID_LEN + 1];
	char block[HOST_GUEST_NAME_MAX + 1];
};

struct host_policy {
	uint32_t port; /* where guests reach the relay */
	uint32_t max_connections, max_per_guest;
	uint32_t buffer; /* bytes per direction of a copied connection */
	uint32_t connect_timeout_ms, request_timeout_ms;
	char libvirt_uri[256]; /* empty: no guests from libvirt */
	struct host_guest *guests;
	size_t n_guests;
};

/* 0 and *out, or -1 with "FILE:LINE: what is wrong" in err. */
int host_policy_load(const char *path, struct host_policy **out, char *err, size_t errlen);
void host_policy_free(struct host_policy *p);

/* The vhost-vsock guest a connection from (cid, port) came from, or -1. */
int host_guest_calling(const struct host_policy *p, uint32_t cid, uint32_t port);

/* The guest that owns vsock port `port` of `cid` (a destination), or -1. */
int host_guest_owning(const struct host_policy *p, uint32_t cid, uint32_t port);

/* Whether `port` is one of the vsock ports vmshim uses in guest g: where its helperd accepts
 * sibling connections (base + 1..65535, base + 65537..131071) and its control port. */
bool host_vmshim_port(const struct host_guest *g, uint32_t port);

/* Whether a connection from `port` of guest g comes from its helperd's control ports
 * (vmshim/ports.h). A hybrid guest's port is what it says: true. */
bool host_helperd_port(const struct host_guest *g, uint32_t port);

/* Whether a half-close crosses a session from guest `from` to guest `to`: not where
 * either one's VMM loses them (README, "Host side"). */
bool host_half_close(const struct host_policy *p, size_t from, size_t to);

/* Whether guest `from` may reach `port` of guest `to`. */
bool host_may_reach(const struct host_policy *p, size_t from, size_t to, uint32_t port);

/* Whether the relay shares its CID with guests (test set-ups: every guest with CID 1 runs
 * in the relay's own kernel). Then its connections to guests come from the 1023 ports after
 * its own port; otherwise from the privileged ports 1..1023 (policy/FORMAT.md, `relay`). */
bool host_shares_cid(const struct host_policy *p);

#endif
