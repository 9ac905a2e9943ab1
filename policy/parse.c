/* Reading a policy file: lines, statements, and the checks each statement can make on its own
 * (policy/FORMAT.md). The checks that need the whole file are in validate.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_addr.h"
#include "policy_internal.h"
#include "statements.h"
#include "vmshim/ports.h"
#include "vmshim/relayproto.h"

/* A failed allocation inside uthash marks the entry instead of exiting. */
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) ((obj)->oom = 1)
#include <uthash.h>

struct policy_name {
	char name[POLICY_NAME_MAX + 1];
	size_t index; /* into policy->peers */
	int oom;
	UT_hash_handle hh;
};

static struct policy_build *build(struct stmt_reader *ps)
{
	return ps->ctx;
}

/* --- statements ------------------------------------------------------------------------ */

static struct policy_peer *current_peer(struct stmt_reader *ps)
{
	struct policy *pol = build(ps)->pol;

	return pol->n_peers ? &pol->peers[pol->n_peers - 1] : NULL;
}

static struct policy_peer_state *current_state(struct stmt_reader *ps)
{
	return &build(ps)->state[build(ps)->pol->n_peers - 1];
}

static int before_peers(struct stmt_reader *ps, const char *keyword)
{
	struct policy_peer *peer = current_peer(ps);

	if (peer)
		return stmt_fail(ps, "%s must come before the first peer (peer %s at line %u)", keyword,
			    build(ps)->pol->peers[0].name, build(ps)->pol->peers[0].line);
	return 0;
}

static struct policy_peer *in_block(struct stmt_reader *ps, const char *keyword)
{
	struct policy_peer *peer = current_peer(ps);

	if (!peer)
		stmt_fail(ps, "%s outside a peer block: it belongs after a 'peer NAME' line", keyword);
	return peer;
}

static int st_self(struct stmt_reader *ps)
{
	struct policy_build *b = build(ps);

	if (before_peers(ps, "self") < 0)
		return -1;
	if (b->self_line)
		return stmt_fail(ps, "self given twice (first at line %u)", b->self_line);
	if (stmt_name(ps, ps->args[0], "peer") < 0)
		return -1;
	snprintf(b->self_name, sizeof b->self_name, "%s", ps->args[0]);
	b->self_line = ps->line;
	return 0;
}

/* A number of milliseconds the file may give once, before the first peer. */
static int global_ms(struct stmt_reader *ps, const char *keyword, unsigned *line, uint64_t min,
		     uint64_t max, uint32_t *out)
{
	uint64_t v;

	if (before_peers(ps, keyword) < 0 ||
	    stmt_number_once(ps, keyword, line, min, max, "ms", &v) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int st_connect_timeout(struct stmt_reader *ps)
{
	return global_ms(ps, "connect-timeout", &build(ps)->timeout_line, 1, 60000,
			 &build(ps)->pol->connect_timeout_ms);
}

static int st_liveness(struct stmt_reader *ps)
{
	return global_ms(ps, "liveness-timeout", &build(ps)->liveness_line, 300, 600000,
			 &build(ps)->pol->liveness_ms);
}

/* relay CID PORT [hybrid]: where the host's vmshim-relay listens, and whether the host's
 * vsock is hybrid (its VMM makes the relay's connections, from any port). */
static int st_relay(struct stmt_reader *ps)
{
	struct policy_build *b = build(ps);
	uint64_t cid, port;
	char q[80];

	if (before_peers(ps, "relay") < 0)
		return -1;
	if (b->relay_line)
		return stmt_fail(ps, "relay given twice (first at line %u)", b->relay_line);
	if (ps->n_args < 2 || ps->n_args > 3)
		return stmt_fail(ps, "relay takes 2 or 3 arguments, got %zu (relay CID PORT [hybrid])",
				 ps->n_args);
	if (ps->n_args == 3 && strcmp(ps->args[2], "hybrid") != 0)
		return stmt_fail(ps, "relay: %s is not 'hybrid' (relay CID PORT [hybrid])",
				 stmt_quote(ps->args[2], q));
	if (policy_parse_number(ps->args[0], &cid) < 0 || cid == 0 || cid >= UINT32_MAX)
		return stmt_fail(ps, "relay cid %s is not a cid: 1 (tests), 2 (the host) or "
				     "3..4294967294",
				 stmt_quote(ps->args[0], q));
	if (policy_parse_number(ps->args[1], &port) < 0 || port < 1024 ||
	    port > VMSHIM_VSOCK_PORT_MAX - RELAYPROTO_SOURCE_PORTS)
		return stmt_fail(ps, "relay port %s is out of range 1024..%u",
				 stmt_quote(ps->args[1], q),
				 VMSHIM_VSOCK_PORT_MAX - RELAYPROTO_SOURCE_PORTS);
	b->pol->has_relay = true;
	b->pol->relay_cid = (uint32_t)cid;
	b->pol->relay_port = (uint32_t)port;
	b->pol->relay_hybrid = ps->n_args == 3;
	b->relay_line = ps->line;
	return 0;
}

/* peers relay: the host's relay tells the peers, beside those the file lists. */
static int st_peers(struct stmt_reader *ps)
{
	struct policy_build *b = build(ps);
	char q[80];

	if (before_peers(ps, "peers") < 0)
		return -1;
	if (strcmp(ps->args[0], "relay") != 0)
		return stmt_fail(ps, "peers %s: the one source of peers is 'relay' (peers relay)",
				 stmt_quote(ps->args[0], q));
	b->pol->peers_from_relay = true;
	b->peers_line = ps->line;
	return 0;
}

static int grow_peers(struct stmt_reader *ps)
{
	struct policy_build *b = build(ps);
	size_t cap = b->cap_peers ? b->cap_peers * 2 : 8;

	struct policy_peer *peers = realloc(b->pol->peers, cap * sizeof *peers);
	if (!peers)
		return stmt_fail(ps, "out of memory");
	b->pol->peers = peers;
	struct policy_peer_state *state = realloc(b->state, cap * sizeof *state);
	if (!state)
		return stmt_fail(ps, "out of memory");
	b->state = state;
	b->cap_peers = cap;
	return 0;
}

static int st_peer(struct stmt_reader *ps)
{
	struct policy_build *b = build(ps);
	const char *name = ps->args[0];
	struct policy_name *known;

	if (stmt_name(ps, name, "peer") < 0)
		return -1;
	HASH_FIND_STR(b->names, name, known);
	if (known)
		return stmt_fail(ps, "duplicate peer name '%s' (first at line %u)", name,
			    b->pol->peers[known->index].line);
	if (b->pol->n_peers == b->cap_peers && grow_peers(ps) < 0)
		return -1;

	struct policy_name *entry = calloc(1, sizeof *entry);
	if (!entry)
		return stmt_fail(ps, "out of memory");
	snprintf(entry->name, sizeof entry->name, "%s", name);
	entry->index = b->pol->n_peers;
	HASH_ADD_STR(b->names, name, entry);
	if (entry->oom) {
		free(entry);
		return stmt_fail(ps, "out of memory");
	}

	struct policy_peer *peer = &b->pol->peers[b->pol->n_peers];
	memset(peer, 0, sizeof *peer);
	snprintf(peer->name, sizeof peer->name, "%s", name);
	peer->line = ps->line;
	peer->vsock_base = POLICY_DEFAULT_VSOCK_BASE;
	memset(&b->state[b->pol->n_peers], 0, sizeof b->state[0]);
	b->pol->n_peers++;
	return 0;
}

/* A statement that peer's block has at most once (cid, vsock-base, control-port, via), whose
 * line is kept in *line. 0, or -1 once the error is reported. */
static int once_per_peer(struct stmt_reader *ps, const char *keyword,
			 const struct policy_peer *peer, unsigned *line)
{
	if (*line)
		return stmt_fail(ps, "%s given twice for peer %s (first at line %u)", keyword,
				 peer->name, *line);
	*line = ps->line;
	return 0;
}

static int st_cid(struct stmt_reader *ps)
{
	struct policy_peer *peer = in_block(ps, "cid");

	if (!peer || once_per_peer(ps, "cid", peer, &current_state(ps)->cid_line) < 0)
		return -1;
	return stmt_cid(ps, "peer", &peer->cid);
}

static int st_vsock_base(struct stmt_reader *ps)
{
	struct policy_peer *peer = in_block(ps, "vsock-base");

	if (!peer || once_per_peer(ps, "vsock-base", peer, &current_state(ps)->base_line) < 0)
		return -1;
	return stmt_vsock_base(ps, &peer->vsock_base);
}

static int st_control_port(struct stmt_reader *ps)
{
	struct policy_peer *peer = in_block(ps, "control-port");
	uint64_t v;
	char q[80];

	if (!peer || once_per_peer(ps, "control-port", peer, &current_state(ps)->control_line) < 0)
		return -1;
	if (policy_parse_number(ps->args[0], &v) < 0)
		return stmt_fail(ps, "control-port %s is not a number", stmt_quote(ps->args[0], q));
	if (v < 1024 || v > VMSHIM_VSOCK_PORT_MAX)
		return stmt_fail(ps, "control-port %s is out of range 1024..%u", stmt_quote(ps->args[0], q),
			    VMSHIM_VSOCK_PORT_MAX);
	peer->control_port = (uint32_t)v;
	return 0;
}

static int st_via(struct stmt_reader *ps)
{
	struct policy_peer *peer = in_block(ps, "via");
	char q[80];

	if (!peer || once_per_peer(ps, "via", peer, &current_state(ps)->via_line) < 0)
		return -1;
	if (strcmp(ps->args[0], "relay") != 0 && strcmp(ps->args[0], "direct") != 0)
		return stmt_fail(ps, "via %s: a peer is reached 'direct' or via 'relay'",
				 stmt_quote(ps->args[0], q));
	peer->via_relay = strcmp(ps->args[0], "relay") == 0;
	return 0;
}

static int st_address(struct stmt_reader *ps)
{
	struct policy_peer *peer = in_block(ps, "address");
	char why[256];

	if (!peer)
		return -1;
	size_t n = peer->n_prefixes + ps->n_args;
	struct policy_prefix *prefixes = realloc(peer->prefixes, n * sizeof *prefixes);
	if (!prefixes)
		return stmt_fail(ps, "out of memory");
	peer->prefixes = prefixes;
	for (size_t i = 0; i < ps->n_args; i++) {
		struct policy_prefix *p = &peer->prefixes[peer->n_prefixes];
		if (policy_prefix_parse(ps->args[i], p, why, sizeof why) < 0)
			return stmt_fail(ps, "%s", why);
		p->line = ps->line;
		peer->n_prefixes++;
	}
	return 0;
}

/* Adds the statement's list of TCP ports (N or N-M) to set. */
static int add_ports(struct stmt_reader *ps, struct policy_ports *set)
{
	for (size_t i = 0; i < ps->n_args; i++) {
		uint64_t lo, hi;
		if (stmt_range(ps, ps->args[i], "port", 1, 65535, &lo, &hi) < 0)
			return -1;
		for (uint64_t port = lo; port <= hi; port++)
			set->allowed[port / 64] |= (uint64_t)1 << (port % 64);
	}
	return 0;
}

static int port_rule(struct stmt_reader *ps, int allow)
{
	struct policy_ports *set;

	if (current_peer(ps)) {
		struct policy_peer_state *st = current_state(ps);
		st->has_rules = 1;
		set = allow ? &st->allow : &st->deny;
	} else {
		set = allow ? &build(ps)->global_allow : &build(ps)->global_deny;
	}
	return add_ports(ps, set);
}

/* without-half-close PORTS...: the TCP ports whose protocols never shut down one direction
 * alone; only those may be relayed on a path that loses half-closes. */
static int st_without_half_close(struct stmt_reader *ps)
{
	if (before_peers(ps, "without-half-close") < 0)
		return -1;
	return add_ports(ps, &build(ps)->pol->without_half_close);
}

static int st_allow(struct stmt_reader *ps)
{
	return port_rule(ps, 1);
}

static int st_deny(struct stmt_reader *ps)
{
	return port_rule(ps, 0);
}

static const struct stmt_def statements[] = {
	{ "self", "self NAME", NULL, st_self },
	{ "connect-timeout", "connect-timeout MS", NULL, st_connect_timeout },
	{ "allow", "allow PORTS...", "port", st_allow },
	{ "deny", "deny PORTS...", "port", st_deny },
	{ "peer", "peer NAME", NULL, st_peer },
	{ "cid", "cid N", NULL, st_cid },
	{ "address", "address A[/LEN]...", "address", st_address },
	{ "vsock-base", "vsock-base N", NULL, st_vsock_base },
	{ "control-port", "control-port N", NULL, st_control_port },
	{ "liveness-timeout", "liveness-timeout MS", NULL, st_liveness },
	{ "relay", "relay CID PORT [hybrid]", "argument", st_relay },
	{ "via", "via relay|direct", NULL, st_via },
	{ "peers", "peers relay", NULL, st_peers },
	{ "without-half-close", "without-half-close PORTS...", "port", st_without_half_close },
};

static void build_free(struct policy_build *b)
{
	struct policy_name *entry, *tmp;

	HASH_ITER(hh, b->names, entry, tmp) {
		HASH_DEL(b->names, entry);
		free(entry);
	}
	free(b->state);
	policy_free(b->pol);
}

int policy_read(FILE *f, const char *path, struct policy **out, char *err, size_t errlen)
{
	struct policy_build b = { .path = path };
	struct stmt_reader ps = { .path = path, .err = err, .errlen = errlen, .ctx = &b };
	int rc = -1;

	if (err && errlen)
		err[0] = '\0';
	b.pol = calloc(1, sizeof *b.pol);
	if (!b.pol) {
		policy_error(err, errlen, path, 0, "out of memory");
		goto out;
	}
	b.pol->self = -1;
	b.pol->connect_timeout_ms = POLICY_DEFAULT_CONNECT_TIMEOUT_MS;
	b.pol->liveness_ms = POLICY_DEFAULT_LIVENESS_MS;

	if (stmt_read(f, &ps, statements, sizeof statements / sizeof statements[0]) < 0 ||
	    policy_validate(&b, err, errlen) < 0)
		goto out;

	*out = b.pol;
	b.pol = NULL;
	rc = 0;
out:
	free(ps.args);
	build_free(&b);
	return rc;
}

/* The file's text (trusted: checked on the stream it is read from) and more after it, in
 * one stream. NULL with err set. */
static FILE *file_and_more(FILE *f, const char *path, const char *more, char **text,
			   size_t *len, char *err, size_t errlen)
{
	FILE *all = open_memstream(text, len);
	char buf[4096];
	size_t n;

	while (all && (n = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, n, all);
	if (!all || ferror(f) || fprintf(all, "\n%s", more) < 0 || fclose(all) != 0) {
		policy_error(err, errlen, path, 0, "cannot read: %s", strerror(errno));
		return NULL;
	}
	return fmemopen(*text, *len, "r");
}

int policy_load_more(const char *path, const char *more, struct policy **out, char *err,
		     size_t errlen)
{
	FILE *f = fopen(path, "re"), *all = NULL;
	char *text = NULL;
	size_t len = 0;

	if (!f) {
		policy_error(err, errlen, path, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	/* whoever could change it could give a peer this guest's addresses */
	int rc = policy_file_trusted(f, path, "the policy", err, errlen);
	if (rc == 0 && more) {
		all = file_and_more(f, path, more, &text, &len, err, errlen);
		rc = all ? policy_read(all, path, out, err, errlen) : -1;
	} else if (rc == 0)
		rc = policy_read(f, path, out, err, errlen);
	if (all)
		fclose(all);
	free(text);
	fclose(f);
	return rc;
}

int policy_load(const char *path, struct policy **out, char *err, size_t errlen)
{
	return policy_load_more(path, NULL, out, err, errlen);
}

void policy_free(struct policy *policy)
{
	if (!policy)
		return;
	for (size_t i = 0; i < policy->n_peers; i++)
		free(policy->peers[i].prefixes);
	free(policy->peers);
	free(policy);
}

int policy_find_peer(const struct policy *policy, const char *name)
{
	if (!policy || !name)
		return -1;
	for (size_t i = 0; i < policy->n_peers; i++)
		if (strcmp(policy->peers[i].name, name) == 0)
			return (int)i;
	return -1;
}
