/* Shared by the policy parser (parse.c), the whole-file checks (validate.c) and the address
 * helpers (addr.c). Not part of the API: see policy.h. */
#ifndef VMSHIM_POLICY_INTERNAL_H
#define VMSHIM_POLICY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "statements.h"


/* What the parser knows about a peer beyond struct policy_peer; parallel to policy->peers. */
struct policy_peer_state {
	unsigned cid_line;  /* 0 while the block has no `cid` */
	unsigned base_line; /* 0 while the block has no `vsock-base` */
	unsigned control_line; /* 0 while the block has no `control-port` */
	unsigned via_line;     /* 0 while the block has no `via` */
	int has_rules;      /* the block has an allow or deny of its own */
	struct policy_ports allow, deny;
};

struct policy_name; /* the parser's hash of peer names */

/* Everything a load builds before it is either handed out or thrown away. */
struct policy_build {
	const char *path;
	struct policy *pol;
	struct policy_peer_state *state;
	size_t cap_peers;
	struct policy_name *names;
	struct policy_ports global_allow, global_deny;
	char self_name[POLICY_NAME_MAX + 1];
	unsigned self_line;    /* 0: no `self` */
	unsigned timeout_line; /* 0: no `connect-timeout` */
	unsigned liveness_line; /* 0: no `liveness-timeout` */
	unsigned relay_line;    /* 0: no `relay` */
	unsigned peers_line;    /* 0: no `peers relay` */
};

/* Runs the checks that need the whole file, then fills in ports, addr4/addr6 and self.
 * Returns 0, or -1 with "FILE:LINE: ..." in err. */
int policy_validate(struct policy_build *b, char *err, size_t errlen);

#endif
