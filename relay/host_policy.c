/* Reading and checking the host policy (relay/FORMAT.md), and the questions the relay asks
 * of it. The syntax and its messages are the guest policy's (policy/statements.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host_policy.h"
#include "policy.h"
#include "policy_addr.h"
#include "statements.h"
#include "vmshim/ports.h"
#include "vmshim/relayproto.h"


/* A reach statement as written: names are resolved once every guest is known. */
struct pending_reach {
	size_t from;
	char to[33];
	struct host_port_range *ranges;
	size_t n_ranges;
	unsigned line;
};

struct host_build {
	struct host_policy *pol;
	unsigned port_line, max_line, per_guest_line, buffer_line, connect_line, request_line;
	unsigned libvirt_line;
	struct guest_lines {
		unsigned cid, base, control, hybrid, domains; /* where each was given; 0: not yet */
	} *lines; /* per guest */
	struct pending_reach *reach;
	size_t n_reach;
};

static struct host_build *build(struct stmt_reader *r)
{
	return r->ctx;
}

static struct host_guest *current_guest(struct stmt_reader *r, const char *keyword)
{
	struct host_policy *pol = build(r)->pol;

	if (!pol->n_guests) {
		stmt_fail(r, "%s outside a guest block: it belongs after a 'guest NAME' line",
			  keyword);
		return NULL;
	}
	return &pol->guests[pol->n_guests - 1];
}

static int global_number(struct stmt_reader *r, const char *keyword, unsigned *line, uint64_t min,
			 uint64_t max, const char *unit, uint32_t *out)
{
	uint64_t v;

	if (build(r)->pol->n_guests)
		return stmt_fail(r, "%s must come before the first guest", keyword);
	if (stmt_number_once(r, keyword, line, min, max, unit, &v) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int st_port(struct stmt_reader *r)
{
	return global_number(r, "port", &build(r)->port_line, 1024,
			     VMSHIM_VSOCK_PORT_MAX - RELAYPROTO_SOURCE_PORTS, "", &build(r)->pol->port);
}

static int st_max_connections(struct stmt_reader *r)
{
	return global_number(r, "max-connections", &build(r)->max_line, 1, 1048576, "",
			     &build(r)->pol->max_connections);
}

static int st_max_per_guest(struct stmt_reader *r)
{
	return global_number(r, "max-per-guest", &build(r)->per_guest_line, 1, 1048576, "",
			     &build(r)->pol->max_per_guest);
}

static int st_buffer(struct stmt_reader *r)
{
	return global_number(r, "buffer", &build(r)->buffer_line, 4096, 64u << 20, "bytes",
			     &build(r)->pol->buffer);
}

static int st_connect_timeout(struct stmt_reader *r)
{
	return global_number(r, "connect-timeout", &build(r)->connect_line, 1, 60000, "ms",
			     &build(r)->pol->connect_timeout_ms);
}

static int st_request_timeout(struct stmt_reader *r)
{
	return global_number(r, "request-timeout", &build(r)->request_line, 1, 60000, "ms",
			     &build(r)->pol->request_timeout_ms);
}

/* libvirt URI: the guests' CIDs come from the libvirt daemon at URI (README, "Host side").
 * Read-only access is all the relay asks of it. */
static int st_libvirt(struct stmt_reader *r)
{
	struct host_build *b = build(r);
	const char *uri = r->args[0];
	char q[80];

	if (b->pol->n_guests)
		return stmt_fail(r, "libvirt must come before the first guest");
	if (b->libvirt_line)
		return stmt_fail(r, "libvirt given twice (first at line %u)", b->libvirt_line);
	/* status prints it in a JSON string: no quote or backslash */
	if (!strstr(uri, ":/") || strlen(uri) >= sizeof b->pol->libvirt_uri ||
	    strspn(uri, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
			"-._~:/?#[]@!$&'()*+,;=%") != strlen(uri))
		return stmt_fail(r, "libvirt %s is not a libvirt URI of at most %zu bytes "
				    "(qemu:///system)",
				 stmt_quote(uri, q), sizeof b->pol->libvirt_uri - 1);
	b->libvirt_line = r->line;
	snprintf(b->pol->libvirt_uri, sizeof b->pol->libvirt_uri, "%s", uri);
	return 0;
}

static int st_guest(struct stmt_reader *r)
{
	struct host_build *b = build(r);
	struct host_policy *pol = b->pol;
	const char *name = r->args[0];

	if (stmt_name(r, name, "guest") < 0)
		return -1;
	for (size_t i = 0; i < pol->n_guests; i++)
		if (strcmp(pol->guests[i].name, name) == 0)
			return stmt_fail(r, "duplicate guest name '%s' (first at line %u)", name,
					 pol->guests[i].line);
	size_t n = pol->n_guests + 1;
	struct host_guest *guests = realloc(pol->guests, n * sizeof *guests);
	if (guests)
		pol->guests = guests;
	struct guest_lines *lines = guests ? realloc(b->lines, n * sizeof *lines) : NULL;
	if (!lines)
		return stmt_fail(r, "out of memory");
	b->lines = lines;
	lines[n - 1] = (struct guest_lines){0};
	struct host_guest *g = &pol->guests[pol->n_guests++];
	*g = (struct host_guest){.line = r->line, .vsock_base = POLICY_DEFAULT_VSOCK_BASE};
	snprintf(g->name, sizeof g->name, "%s", name);
	return 0;
}

/* The guest of the current block, with where this block gave keyword before, or NULL. */
static struct guest_lines *block_lines(struct stmt_reader *r, const char *keyword)
{
	return current_guest(r, keyword) ? &build(r)->lines[build(r)->pol->n_guests - 1] : NULL;
}

/* The guest whose block the current line is in (block_lines said there is one). */
static struct host_guest *block_guest(struct stmt_reader *r)
{
	return &build(r)->pol->guests[build(r)->pol->n_guests - 1];
}

static int once_in_block(struct stmt_reader *r, const char *keyword, unsigned *line)
{
	if (*line)
		return stmt_fail(r, "%s given twice for guest %s (first at line %u)", keyword,
				 block_guest(r)->name, *line);
	*line = r->line;
	return 0;
}

static int st_cid(struct stmt_reader *r)
{
	struct guest_lines *lines = block_lines(r, "cid");

	if (!lines || once_in_block(r, "cid", &lines->cid) < 0)
		return -1;
	return stmt_cid(r, "guest", &block_guest(r)->cid);
}

static int st_vsock_base(struct stmt_reader *r)
{
	struct guest_lines *lines = block_lines(r, "vsock-base");

	if (!lines || once_in_block(r, "vsock-base", &lines->base) < 0)
		return -1;
	return stmt_vsock_base(r, &block_guest(r)->vsock_base);
}

static int st_control_port(struct stmt_reader *r)
{
	struct guest_lines *lines = block_lines(r, "control-port");
	uint64_t v;
	char q[80];

	if (!lines || once_in_block(r, "control-port", &lines->control) < 0)
		return -1;
	if (policy_parse_number(r->args[0], &v) < 0 || v < 1024 || v > VMSHIM_VSOCK_PORT_MAX)
		return stmt_fail(r, "control-port %s is out of range 1024..%u",
				 stmt_quote(r->args[0], q), VMSHIM_VSOCK_PORT_MAX);
	block_guest(r)->control_port = (uint32_t)v;
	return 0;
}

/* hybrid PATH [half-close]: the guest's VMM socket, and whether that VMM passes half-closes
 * on (Cloud Hypervisor 53.0 and later; not Firecracker: README, "Host side"). */
static int st_hybrid(struct stmt_reader *r)
{
	struct guest_lines *lines = block_lines(r, "hybrid");
	const char *path = r->args[0];
	char q[80];

	if (!lines || once_in_block(r, "hybrid", &lines->hybrid) < 0)
		return -1;
	if (r->n_args > 2)
		return stmt_fail(r, "hybrid takes 1 or 2 arguments, got %zu (hybrid PATH "
				    "[half-close])",
				 r->n_args);
	if (r->n_args == 2 && strcmp(r->args[1], "half-close") != 0)
		return stmt_fail(r, "hybrid: %s is not 'half-close' (hybrid PATH [half-close])",
				 stmt_quote(r->args[1], q));
	if (path[0] != '/')
		return stmt_fail(r, "hybrid %s is not an absolute path", stmt_quote(path, q));
	if (strlen(path) >= HOST_HYBRID_PATH_MAX)
		return stmt_fail(r, "hybrid %s is longer than %zu bytes (a Unix socket path, and "
				    "room for _PORT after it)",
				 stmt_quote(path, q), HOST_HYBRID_PATH_MAX - 1);
	struct host_guest *g = block_guest(r);
	snprintf(g->hybrid, HOST_HYBRID_PATH_MAX, "%s", path);
	g->loses_half_close = r->n_args == 1;
	return 0;
}

/* address A[/LEN]...: what the guest (each guest of a group) may own, as in a guest
 * policy's peer block; its siblings are told (siblings.h). */
static int st_address(struct stmt_reader *r)
{
	char why[256];

	if (!current_guest(r, "address"))
		return -1;
	struct host_guest *g = block_guest(r);
	for (size_t i = 0; i < r->n_args; i++) {
		if (g->n_owned == RELAYPROTO_SIBLING_ADDRS)
			return stmt_fail(r, "guest %s: more than %u addresses", g->name,
					 RELAYPROTO_SIBLING_ADDRS);
		struct policy_prefix *p = &g->owned[g->n_owned];
		if (policy_prefix_parse(r->args[i], p, why, sizeof why) < 0)
			return stmt_fail(r, "%s", why);
		p->line = r->line;
		g->n_owned++;
	}
	return 0;
}

/* domains PATTERN...: the block is a group of libvirt domains, each running one whose name
 * matches a pattern (fnmatch) a guest of its own. */
static int st_domains(struct stmt_reader *r)
{
	struct guest_lines *lines = block_lines(r, "domains");
	char q[80];

	if (!lines || once_in_block(r, "domains", &lines->domains) < 0)
		return -1;
	struct host_guest *g = block_guest(r);
	if (!(g->patterns = calloc(r->n_args, sizeof *g->patterns)))
		return stmt_fail(r, "out of memory");
	for (size_t i = 0; i < r->n_args; i++) {
		const char *pat = r->args[i];
		size_t n = strlen(pat);
		if (n > 64 || strspn(pat, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					  "0123456789._-*?[]!") != n)
			return stmt_fail(r, "domains: bad pattern %s: 1-64 of A-Z a-z 0-9 . _ - "
					    "and * ? [ ] !",
					 stmt_quote(pat, q));
		if (!(g->patterns[g->n_patterns++] = strdup(pat)))
			return stmt_fail(r, "out of memory");
	}
	return 0;
}

static int st_reach(struct stmt_reader *r)
{
	struct host_build *b = build(r);

	if (!current_guest(r, "reach") || stmt_name(r, r->args[0], "guest") < 0)
		return -1;
	struct pending_reach *all = realloc(b->reach, (b->n_reach + 1) * sizeof *all);
	if (!all)
		return stmt_fail(r, "out of memory");
	b->reach = all;
	struct pending_reach *pr = &b->reach[b->n_reach++];
	*pr = (struct pending_reach){.from = b->pol->n_guests - 1, .line = r->line};
	snprintf(pr->to, sizeof pr->to, "%s", r->args[0]);
	if (r->n_args > 1 && !(pr->ranges = calloc(r->n_args - 1, sizeof *pr->ranges)))
		return stmt_fail(r, "out of memory");
	for (size_t i = 1; i < r->n_args; i++) {
		uint64_t lo, hi;
		if (stmt_range(r, r->args[i], "vsock port", 1, VMSHIM_VSOCK_PORT_MAX, &lo, &hi) < 0)
			return -1;
		pr->ranges[pr->n_ranges++] = (struct host_port_range){(uint32_t)lo, (uint32_t)hi};
	}
	return 0;
}

static const struct stmt_def statements[] = {
	{"port", "port N", NULL, st_port},
	{"max-connections", "max-connections N", NULL, st_max_connections},
	{"max-per-guest", "max-per-guest N", NULL, st_max_per_guest},
	{"buffer", "buffer BYTES", NULL, st_buffer},
	{"connect-timeout", "connect-timeout MS", NULL, st_connect_timeout},
	{"request-timeout", "request-timeout MS", NULL, st_request_timeout},
	{"libvirt", "libvirt URI", NULL, st_libvirt},
	{"guest", "guest NAME", NULL, st_guest},
	{"cid", "cid N", NULL, st_cid},
	{"vsock-base", "vsock-base N", NULL, st_vsock_base},
	{"control-port", "control-port N", NULL, st_control_port},
	{"hybrid", "hybrid PATH [half-close]", "argument", st_hybrid},
	{"domains", "domains PATTERN...", "pattern", st_domains},
	{"address", "address A[/LEN]...", "address", st_address},
	{"reach", "reach GUEST [VSOCK-PORTS...]", "guest", st_reach},
};

/* --- whole-file checks ------------------------------------------------------------------ */

static bool blocks_overlap(const struct host_guest *a, const struct host_guest *b)
{
	return a->vsock_base < b->vsock_base + VMSHIM_PORT_BLOCK &&
	       b->vsock_base < a->vsock_base + VMSHIM_PORT_BLOCK;
}

static int check_guests(struct stmt_reader *r)
{
	const struct host_build *b = build(r);
	struct host_policy *pol = b->pol;

	for (size_t i = 0; i < pol->n_guests; i++) {
		struct host_guest *g = &pol->guests[i];
		r->line = g->line;
		snprintf(g->block, sizeof g->block, "%s", g->name);
		if (!b->lines[i].control)
			g->control_port = g->vsock_base + VMSHIM_CONTROL_OFFSET;
		if (!b->lines[i].cid && !pol->libvirt_uri[0])
			return stmt_fail(r, "guest %s has no cid (nor is there a libvirt statement "
					    "to learn its domain's)",
					 g->name);
		if (b->lines[i].cid && b->lines[i].domains)
			return stmt_fail(r, "guest %s has a cid and domains: a group of libvirt "
					    "domains learns their CIDs from libvirt",
					 g->name);
		/* a block for libvirt domains: each domain's CID is its own (host_domains.c) */
		if ((g->libvirt = !b->lines[i].cid)) {
			if (b->lines[i].hybrid)
				return stmt_fail(r, "guest %s: hybrid is for VMMs that libvirt does "
						    "not run; give it a cid",
						 g->name);
			continue;
		}
		if (g->cid == 1 && !g->hybrid[0] &&
		    pol->port < g->vsock_base + VMSHIM_PORT_BLOCK &&
		    g->vsock_base <= pol->port + RELAYPROTO_SOURCE_PORTS)
			return stmt_fail(r, "guest %s: its vsock port block overlaps the relay's "
					    "ports %u..%u",
					 g->name, pol->port, pol->port + RELAYPROTO_SOURCE_PORTS);
		for (size_t j = 0; j < i; j++) {
			struct host_guest *o = &pol->guests[j];
			if (o->libvirt)
				continue;
			if (g->hybrid[0] && strcmp(g->hybrid, o->hybrid) == 0)
				return stmt_fail(r, "guest %s has the hybrid socket of guest %s (line "
						    "%u)",
						 g->name, o->name, o->line);
			if (g->cid != o->cid)
				continue;
			if (!b->lines[i].base || !b->lines[j].base)
				return stmt_fail(r, "guest %s has the cid of guest %s (line %u): "
						    "guests that share a CID need a vsock-base each",
						 g->name, o->name, o->line);
			g->shares_cid = o->shares_cid = true;
			if (blocks_overlap(g, o))
				return stmt_fail(r, "guest %s: its vsock port block overlaps that of "
						    "guest %s (line %u)",
						 g->name, o->name, o->line);
		}
	}
	return 0;
}

static int resolve_reach(struct stmt_reader *r)
{
	struct host_build *b = build(r);
	struct host_policy *pol = b->pol;

	for (size_t k = 0; k < b->n_reach; k++) {
		struct pending_reach *pr = &b->reach[k];
		struct host_guest *from = &pol->guests[pr->from];
		size_t to = 0;
		r->line = pr->line;
		while (to < pol->n_guests && strcmp(pol->guests[to].name, pr->to) != 0)
			to++;
		if (to == pol->n_guests)
			return stmt_fail(r, "reach %s: no such guest", pr->to);
		/* a group's members may reach each other, a guest never itself */
		if (to == pr->from && !from->n_patterns)
			return stmt_fail(r, "guest %s reaches itself: the relay is for siblings",
					 from->name);
		for (size_t i = 0; i < from->n_reach; i++)
			if (from->reach[i].guest == to)
				return stmt_fail(r, "reach %s given twice for guest %s (first at line "
						    "%u)",
						 pr->to, from->name, from->reach[i].line);
		struct host_reach *all = realloc(from->reach, (from->n_reach + 1) * sizeof *all);
		if (!all)
			return stmt_fail(r, "out of memory");
		from->reach = all;
		from->reach[from->n_reach++] = (struct host_reach){
			.guest = to, .ranges = pr->ranges, .n_ranges = pr->n_ranges, .line = pr->line};
		pr->ranges = NULL;
	}
	return 0;
}

int host_policy_load(const char *path, struct host_policy **out, char *err, size_t errlen)
{
	struct host_build b = {0};
	struct stmt_reader r = {.path = path, .err = err, .errlen = errlen, .ctx = &b};
	FILE *f = fopen(path, "re");
	int rc = -1;

	if (err && errlen)
		err[0] = '\0';
	if (!f) {
		policy_error(err, errlen, path, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	/* a VMM's user who could change it could grant its guest another's agent */
	if (policy_file_trusted(f, path, "the host policy", err, errlen) < 0)
		goto out;
	b.pol = calloc(1, sizeof *b.pol);
	if (!b.pol) {
		policy_error(err, errlen, path, 0, "out of memory");
		goto out;
	}
	*b.pol = (struct host_policy){
		.port = HOST_DEFAULT_PORT,
		.max_connections = HOST_DEFAULT_MAX_CONNECTIONS,
		.max_per_guest = HOST_DEFAULT_MAX_PER_GUEST,
		.buffer = HOST_DEFAULT_BUFFER,
		.connect_timeout_ms = HOST_DEFAULT_CONNECT_TIMEOUT_MS,
		.request_timeout_ms = HOST_DEFAULT_REQUEST_TIMEOUT_MS,
	};
	if (stmt_read(f, &r, statements, sizeof statements / sizeof statements[0]) < 0 ||
	    check_guests(&r) < 0 || resolve_reach(&r) < 0)
		goto out;
	*out = b.pol;
	b.pol = NULL;
	rc = 0;
out:
	fclose(f);
	free(r.args);
	for (size_t k = 0; k < b.n_reach; k++)
		free(b.reach[k].ranges);
	free(b.reach);
	free(b.lines);
	host_policy_free(b.pol);
	return rc;
}

void host_policy_free(struct host_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_guests; i++) {
		for (size_t k = 0; k < p->guests[i].n_reach; k++)
			free(p->guests[i].reach[k].ranges);
		free(p->guests[i].reach);
		for (size_t k = 0; k < p->guests[i].n_patterns; k++)
			free(p->guests[i].patterns[k]);
		free(p->guests[i].patterns);
	}
	free(p->guests);
	free(p);
}

/* --- questions -------------------------------------------------------------------------- */

int host_guest_calling(const struct host_policy *p, uint32_t cid, uint32_t port)
{
	for (size_t i = 0; i < p->n_guests; i++) {
		const struct host_guest *g = &p->guests[i];
		uint32_t first = vmshim_source_port(g->vsock_base, 0);
		if (g->hybrid[0] || g->cid != cid)
			continue;
		if (!g->shares_cid || (port >= first && port - first <= 65535))
			return (int)i;
	}
	return -1;
}

int host_guest_owning(const struct host_policy *p, uint32_t cid, uint32_t port)
{
	for (size_t i = 0; i < p->n_guests; i++) {
		const struct host_guest *g = &p->guests[i];
		if (g->cid != cid)
			continue;
		if (!g->shares_cid ||
		    (port >= g->vsock_base && port - g->vsock_base < VMSHIM_PORT_BLOCK))
			return (int)i;
	}
	return -1;
}

bool host_vmshim_port(const struct host_guest *g, uint32_t port)
{
	uint32_t offset = port - g->vsock_base; /* wraps below the base: then out of range */

	if (port == g->control_port)
		return true;
	return offset < VMSHIM_CONTROL_OFFSET && offset != 0 && offset != VMSHIM_V6_OFFSET;
}

bool host_helperd_port(const struct host_guest *g, uint32_t port)
{
	return g->hybrid[0] ||
	       vmshim_is_control_source(vmshim_control_source_first(g->vsock_base, g->shares_cid),
					port);
}

bool host_half_close(const struct host_policy *p, size_t from, size_t to)
{
	return !p->guests[from].loses_half_close && !p->guests[to].loses_half_close;
}

bool host_may_reach(const struct host_policy *p, size_t from, size_t to, uint32_t port)
{
	const struct host_guest *g = &p->guests[from];

	for (size_t i = 0; i < g->n_reach; i++) {
		const struct host_reach *re = &g->reach[i];
		if (re->guest != to)
			continue;
		/* unnamed: only vmshim's own ports, never an agent that trusts the host */
		if (!re->n_ranges)
			return host_vmshim_port(&p->guests[to], port);
		for (size_t k = 0; k < re->n_ranges; k++)
			if (port >= re->ranges[k].lo && port <= re->ranges[k].hi)
				return true;
		return false;
	}
	return false;
}

bool host_shares_cid(const struct host_policy *p)
{
	for (size_t i = 0; i < p->n_guests; i++)
		if (p->guests[i].cid == 1 && !p->guests[i].hybrid[0])
			return true;
	return false;
}
