/* Reading a policy file: lines, statements, and the checks each statement can make on its own
 * (policy/FORMAT.md). The checks that need the whole file are in validate.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_addr.h"
#include "policy_internal.h"
#include "vmshim/ports.h"

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

/* The state of one load while it reads lines. */
struct parser {
	struct policy_build *b;
	unsigned line;
	char *err;
	size_t errlen;
	char **args; /* the arguments of the current statement, pointing into the line */
	size_t n_args, cap_args;
};

struct statement {
	const char *keyword;
	const char *usage;
	const char *item; /* for lists: what one item is; NULL for one argument */
	int (*parse)(struct parser *ps);
};

/* --- errors ---------------------------------------------------------------------------- */

static void verror(char *err, size_t errlen, const char *path, unsigned line, const char *fmt,
		   va_list ap)
{
	int n;

	if (!err || errlen == 0)
		return;
	if (line)
		n = snprintf(err, errlen, "%s:%u: ", path, line);
	else
		n = snprintf(err, errlen, "%s: ", path);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

void policy_error(char *err, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(err, errlen, path, line, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 3))) static int fail(struct parser *ps, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(ps->err, ps->errlen, ps->b->path, ps->line, fmt, ap);
	va_end(ap);
	return -1;
}

/* Quotes a word for a message, cut short if it is long: 'word' or 'wo...'. */
static const char *quote(const char *s, char buf[80])
{
	size_t n = strlen(s);

	if (n > 64)
		snprintf(buf, 80, "'%.64s...'", s);
	else
		snprintf(buf, 80, "'%s'", s);
	return buf;
}

/* --- words ----------------------------------------------------------------------------- */

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static char *skip_blanks(char *p)
{
	while (is_blank(*p))
		p++;
	return p;
}

static int push_arg(struct parser *ps, char *arg)
{
	if (ps->n_args == ps->cap_args) {
		size_t cap = ps->cap_args ? ps->cap_args * 2 : 16;
		char **args = realloc(ps->args, cap * sizeof *args);
		if (!args)
			return fail(ps, "out of memory");
		ps->args = args;
		ps->cap_args = cap;
	}
	ps->args[ps->n_args++] = arg;
	return 0;
}

/* Splits s in place into ps->args. Words are separated by blanks; in a list also by one
 * comma, with or without blanks around it. */
static int split_args(struct parser *ps, char *s, const char *keyword, int list)
{
	int comma = 0; /* a comma was read after the last word */

	ps->n_args = 0;
	for (char *p = skip_blanks(s);; p = skip_blanks(p)) {
		if (*p == '\0') {
			if (comma)
				return fail(ps, "trailing comma in the %s list", keyword);
			return 0;
		}
		if (list && *p == ',') {
			if (ps->n_args == 0 || comma)
				return fail(ps, "empty item in the %s list (a stray comma)", keyword);
			comma = 1;
			p++;
			continue;
		}
		char *word = p;
		while (*p && !is_blank(*p) && !(list && *p == ','))
			p++;
		comma = 0;
		if (*p == ',') {
			comma = 1;
			*p++ = '\0';
		} else if (*p) {
			*p++ = '\0';
		}
		if (push_arg(ps, word) < 0)
			return -1;
	}
}

/* --- values ---------------------------------------------------------------------------- */

int policy_parse_number(const char *s, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;
	int overflow = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return -1;
		if (v > (UINT64_MAX - d) / base)
			overflow = 1;
		else
			v = v * base + d;
	}
	*out = overflow ? UINT64_MAX : v;
	return 0;
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > POLICY_NAME_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int check_name(struct parser *ps, const char *s)
{
	char q[80];

	if (!valid_name(s))
		return fail(ps, "bad peer name %s: a name is 1-32 of A-Z a-z 0-9 . _ -",
			    quote(s, q));
	return 0;
}

/* Reads one port, 1..65535: 0, or -1 if s is not a number, or -2 if it is out of range. */
static int port_value(const char *s, unsigned *port)
{
	uint64_t v;

	if (policy_parse_number(s, &v) < 0)
		return -1;
	if (v < 1 || v > 65535)
		return -2;
	*port = (unsigned)v;
	return 0;
}

/* Parses "N" or "N-M" and sets those ports in set. */
static int parse_ports(struct parser *ps, char *item, struct policy_ports *set)
{
	char q[80], q2[80];
	unsigned lo = 0, hi = 0;
	char *dash = strchr(item, '-');
	int rc;

	if (!dash) {
		rc = port_value(item, &lo);
		hi = lo;
		if (rc == -2)
			return fail(ps, "port %s is out of range 1..65535", quote(item, q));
	} else {
		*dash = '\0';
		const char *part = item;
		rc = port_value(item, &lo);
		if (rc == 0) {
			part = dash + 1;
			rc = port_value(part, &hi);
		}
		if (rc == -2)
			quote(part, q2);
		*dash = '-';
		if (rc == -2)
			return fail(ps, "port %s in %s is out of range 1..65535", q2, quote(item, q));
	}
	if (rc < 0)
		return fail(ps, "bad port %s: ports are N or N-M, 1 <= N <= M <= 65535",
			    quote(item, q));
	if (lo > hi)
		return fail(ps, "port range %s is reversed: %u is above %u", quote(item, q), lo, hi);
	for (unsigned p = lo; p <= hi; p++)
		set->allowed[p / 64] |= (uint64_t)1 << (p % 64);
	return 0;
}

/* --- statements ------------------------------------------------------------------------ */

static struct policy_peer *current_peer(struct parser *ps)
{
	struct policy *pol = ps->b->pol;

	return pol->n_peers ? &pol->peers[pol->n_peers - 1] : NULL;
}

static struct policy_peer_state *current_state(struct parser *ps)
{
	return &ps->b->state[ps->b->pol->n_peers - 1];
}

static int before_peers(struct parser *ps, const char *keyword)
{
	struct policy_peer *peer = current_peer(ps);

	if (peer)
		return fail(ps, "%s must come before the first peer (peer %s at line %u)", keyword,
			    ps->b->pol->peers[0].name, ps->b->pol->peers[0].line);
	return 0;
}

static struct policy_peer *in_block(struct parser *ps, const char *keyword)
{
	struct policy_peer *peer = current_peer(ps);

	if (!peer)
		fail(ps, "%s outside a peer block: it belongs after a 'peer NAME' line", keyword);
	return peer;
}

static int st_self(struct parser *ps)
{
	struct policy_build *b = ps->b;

	if (before_peers(ps, "self") < 0)
		return -1;
	if (b->self_line)
		return fail(ps, "self given twice (first at line %u)", b->self_line);
	if (check_name(ps, ps->args[0]) < 0)
		return -1;
	snprintf(b->self_name, sizeof b->self_name, "%s", ps->args[0]);
	b->self_line = ps->line;
	return 0;
}

/* A number of milliseconds the file may give once, before the first peer. */
static int global_ms(struct parser *ps, const char *keyword, unsigned *line, uint64_t min,
		     uint64_t max, uint32_t *out)
{
	char q[80];
	uint64_t v;

	if (before_peers(ps, keyword) < 0)
		return -1;
	if (*line)
		return fail(ps, "%s given twice (first at line %u)", keyword, *line);
	if (policy_parse_number(ps->args[0], &v) < 0)
		return fail(ps, "%s %s is not a number", keyword, quote(ps->args[0], q));
	if (v < min || v > max)
		return fail(ps, "%s %s is out of range %llu..%llu ms", keyword,
			    quote(ps->args[0], q), (unsigned long long)min, (unsigned long long)max);
	*out = (uint32_t)v;
	*line = ps->line;
	return 0;
}

static int st_connect_timeout(struct parser *ps)
{
	return global_ms(ps, "connect-timeout", &ps->b->timeout_line, 1, 60000,
			 &ps->b->pol->connect_timeout_ms);
}

static int st_liveness(struct parser *ps)
{
	return global_ms(ps, "liveness-timeout", &ps->b->liveness_line, 300, 600000,
			 &ps->b->pol->liveness_ms);
}

static int grow_peers(struct parser *ps)
{
	struct policy_build *b = ps->b;
	size_t cap = b->cap_peers ? b->cap_peers * 2 : 8;

	struct policy_peer *peers = realloc(b->pol->peers, cap * sizeof *peers);
	if (!peers)
		return fail(ps, "out of memory");
	b->pol->peers = peers;
	struct policy_peer_state *state = realloc(b->state, cap * sizeof *state);
	if (!state)
		return fail(ps, "out of memory");
	b->state = state;
	b->cap_peers = cap;
	return 0;
}

static int st_peer(struct parser *ps)
{
	struct policy_build *b = ps->b;
	const char *name = ps->args[0];
	struct policy_name *known;

	if (check_name(ps, name) < 0)
		return -1;
	HASH_FIND_STR(b->names, name, known);
	if (known)
		return fail(ps, "duplicate peer name '%s' (first at line %u)", name,
			    b->pol->peers[known->index].line);
	if (b->pol->n_peers == b->cap_peers && grow_peers(ps) < 0)
		return -1;

	struct policy_name *entry = calloc(1, sizeof *entry);
	if (!entry)
		return fail(ps, "out of memory");
	snprintf(entry->name, sizeof entry->name, "%s", name);
	entry->index = b->pol->n_peers;
	HASH_ADD_STR(b->names, name, entry);
	if (entry->oom) {
		free(entry);
		return fail(ps, "out of memory");
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

/* The number argument of a statement that peer's block has at most once (cid, vsock-base,
 * control-port),
 * whose line is kept in *line. 0, or -1 once the error is reported. */
static int once_per_peer(struct parser *ps, const char *keyword, const struct policy_peer *peer,
			 unsigned *line, uint64_t *v)
{
	char q[80];

	if (*line)
		return fail(ps, "%s given twice for peer %s (first at line %u)", keyword, peer->name,
			    *line);
	if (policy_parse_number(ps->args[0], v) < 0)
		return fail(ps, "%s %s is not a number", keyword, quote(ps->args[0], q));
	*line = ps->line;
	return 0;
}

static int st_cid(struct parser *ps)
{
	struct policy_peer *peer = in_block(ps, "cid");
	uint64_t v;
	char q[80];

	if (!peer || once_per_peer(ps, "cid", peer, &current_state(ps)->cid_line, &v) < 0)
		return -1;
	if (v > UINT32_MAX)
		return fail(ps, "cid %s does not fit in 32 bits", quote(ps->args[0], q));
	if (v == 0)
		return fail(ps, "cid 0 is the hypervisor, not a peer (a peer's cid is 1 or "
				"3..4294967294)");
	if (v == 2)
		return fail(ps, "cid 2 is the host, not a peer (a peer's cid is 1 or "
				"3..4294967294)");
	if (v == UINT32_MAX)
		return fail(ps, "cid %s is VMADDR_CID_ANY (4294967295), not a peer",
			    quote(ps->args[0], q));
	peer->cid = (uint32_t)v;
	return 0;
}

static int st_vsock_base(struct parser *ps)
{
	struct policy_peer *peer = in_block(ps, "vsock-base");
	uint64_t v;
	char q[80];

	if (!peer ||
	    once_per_peer(ps, "vsock-base", peer, &current_state(ps)->base_line, &v) < 0)
		return -1;
	if (v < 1024)
		return fail(ps, "vsock-base %s is below 1024", quote(ps->args[0], q));
	if (v > (uint64_t)POLICY_VSOCK_MAX_END - (VMSHIM_PORT_BLOCK - 1))
		return fail(ps, "vsock-base %s is too high: its block of %u ports must end at or "
				"below %u, so the base is at most %u",
			    quote(ps->args[0], q), VMSHIM_PORT_BLOCK, POLICY_VSOCK_MAX_END,
			    POLICY_VSOCK_MAX_END - (VMSHIM_PORT_BLOCK - 1));
	peer->vsock_base = (uint32_t)v;
	return 0;
}

static int st_control_port(struct parser *ps)
{
	struct policy_peer *peer = in_block(ps, "control-port");
	uint64_t v;
	char q[80];

	if (!peer ||
	    once_per_peer(ps, "control-port", peer, &current_state(ps)->control_line, &v) < 0)
		return -1;
	if (v < 1024 || v > POLICY_VSOCK_MAX_END)
		return fail(ps, "control-port %s is out of range 1024..%u", quote(ps->args[0], q),
			    POLICY_VSOCK_MAX_END);
	peer->control_port = (uint32_t)v;
	return 0;
}

static int st_address(struct parser *ps)
{
	struct policy_peer *peer = in_block(ps, "address");
	char why[256];

	if (!peer)
		return -1;
	size_t n = peer->n_prefixes + ps->n_args;
	struct policy_prefix *prefixes = realloc(peer->prefixes, n * sizeof *prefixes);
	if (!prefixes)
		return fail(ps, "out of memory");
	peer->prefixes = prefixes;
	for (size_t i = 0; i < ps->n_args; i++) {
		struct policy_prefix *p = &peer->prefixes[peer->n_prefixes];
		if (policy_prefix_parse(ps->args[i], p, why, sizeof why) < 0)
			return fail(ps, "%s", why);
		p->line = ps->line;
		peer->n_prefixes++;
	}
	return 0;
}

static int port_rule(struct parser *ps, int allow)
{
	struct policy_ports *set;

	if (current_peer(ps)) {
		struct policy_peer_state *st = current_state(ps);
		st->has_rules = 1;
		set = allow ? &st->allow : &st->deny;
	} else {
		set = allow ? &ps->b->global_allow : &ps->b->global_deny;
	}
	for (size_t i = 0; i < ps->n_args; i++)
		if (parse_ports(ps, ps->args[i], set) < 0)
			return -1;
	return 0;
}

static int st_allow(struct parser *ps)
{
	return port_rule(ps, 1);
}

static int st_deny(struct parser *ps)
{
	return port_rule(ps, 0);
}

static const struct statement statements[] = {
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
};

/* --- lines ----------------------------------------------------------------------------- */

static int parse_line(struct parser *ps, char *line, size_t len)
{
	const struct statement *st = NULL;
	char q[80];

	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	if (len > POLICY_LINE_MAX)
		return fail(ps, "line is %zu bytes long, more than %d", len, POLICY_LINE_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == '\0')
			return fail(ps, "NUL byte at column %zu", i + 1);
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(ps, "unexpected control character 0x%02x at column %zu%s", c,
				    i + 1, c == '\r' ? " (a carriage return: DOS line ends?)" : "");
	}

	char *comment = strchr(line, '#');
	if (comment)
		*comment = '\0';
	char *p = skip_blanks(line);
	if (*p == '\0')
		return 0;
	char *keyword = p;
	while (*p && !is_blank(*p))
		p++;
	if (*p)
		*p++ = '\0';

	for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++)
		if (strcmp(keyword, statements[i].keyword) == 0)
			st = &statements[i];
	if (!st)
		return fail(ps, "unknown keyword %s", quote(keyword, q));

	if (split_args(ps, p, keyword, st->item != NULL) < 0)
		return -1;
	if (st->item && ps->n_args == 0)
		return fail(ps, "%s needs at least one %s (%s)", keyword, st->item, st->usage);
	if (!st->item && ps->n_args != 1)
		return fail(ps, "%s takes 1 argument, got %zu (%s)", keyword, ps->n_args, st->usage);
	return st->parse(ps);
}

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
	struct parser ps = { .b = &b, .err = err, .errlen = errlen };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
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

	errno = 0;
	while ((n = getline(&line, &cap, f)) != -1) {
		ps.line++;
		if (parse_line(&ps, line, (size_t)n) < 0)
			goto out;
		errno = 0;
	}
	if (ferror(f) || errno == ENOMEM) {
		policy_error(err, errlen, path, 0, "cannot read: %s",
			     strerror(errno ? errno : EIO));
		goto out;
	}
	if (policy_validate(&b, err, errlen) < 0)
		goto out;

	*out = b.pol;
	b.pol = NULL;
	rc = 0;
out:
	free(line);
	free(ps.args);
	build_free(&b);
	return rc;
}

int policy_load(const char *path, struct policy **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");

	if (!f) {
		policy_error(err, errlen, path, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	int rc = policy_read(f, path, out, err, errlen);
	fclose(f);
	return rc;
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
