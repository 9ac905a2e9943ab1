/* Lines, words, numbers and names of a statement file (statements.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "statements.h"
#include "vmshim/ports.h"

#define LINE_MAX_BYTES 65536

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

int stmt_fail(struct stmt_reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(r->err, r->errlen, r->path, r->line, fmt, ap);
	va_end(ap);
	return -1;
}

const char *stmt_quote(const char *s, char buf[80])
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

static int push_arg(struct stmt_reader *r, char *arg)
{
	if (r->n_args == r->cap_args) {
		size_t cap = r->cap_args ? r->cap_args * 2 : 16;
		char **args = realloc(r->args, cap * sizeof *args);
		if (!args)
			return stmt_fail(r, "out of memory");
		r->args = args;
		r->cap_args = cap;
	}
	r->args[r->n_args++] = arg;
	return 0;
}

/* Splits s in place into r->args. Words are separated by blanks; in a list also by one
 * comma, with or without blanks around it. */
static int split_args(struct stmt_reader *r, char *s, const char *keyword, int list)
{
	int comma = 0; /* a comma was read after the last word */

	r->n_args = 0;
	for (char *p = skip_blanks(s);; p = skip_blanks(p)) {
		if (*p == '\0') {
			if (comma)
				return stmt_fail(r, "trailing comma in the %s list", keyword);
			return 0;
		}
		if (list && *p == ',') {
			if (r->n_args == 0 || comma)
				return stmt_fail(r, "empty item in the %s list (a stray comma)",
						 keyword);
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
		if (push_arg(r, word) < 0)
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

bool stmt_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 32 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

int stmt_name(struct stmt_reader *r, const char *s, const char *what)
{
	char q[80];

	if (!stmt_name_ok(s))
		return stmt_fail(r, "bad %s name %s: a name is 1-32 of A-Z a-z 0-9 . _ -", what,
				 stmt_quote(s, q));
	return 0;
}

/* One number of a range: 0, or -1 if s is not a number, or -2 if it is out of range. */
static int range_value(const char *s, uint64_t min, uint64_t max, uint64_t *v)
{
	if (policy_parse_number(s, v) < 0)
		return -1;
	return *v < min || *v > max ? -2 : 0;
}

int stmt_range(struct stmt_reader *r, char *item, const char *what, uint64_t min, uint64_t max,
	       uint64_t *lo, uint64_t *hi)
{
	char q[80], q2[80];
	char *dash = strchr(item, '-');
	int rc;
	unsigned long long mn = min, mx = max;

	if (!dash) {
		rc = range_value(item, min, max, lo);
		*hi = *lo;
		if (rc == -2)
			return stmt_fail(r, "%s %s is out of range %llu..%llu", what,
					 stmt_quote(item, q), mn, mx);
	} else {
		*dash = '\0';
		const char *part = item;
		rc = range_value(item, min, max, lo);
		if (rc == 0) {
			part = dash + 1;
			rc = range_value(part, min, max, hi);
		}
		if (rc == -2)
			stmt_quote(part, q2);
		*dash = '-';
		if (rc == -2)
			return stmt_fail(r, "%s %s in %s is out of range %llu..%llu", what, q2,
					 stmt_quote(item, q), mn, mx);
	}
	if (rc < 0)
		return stmt_fail(r, "bad %s %s: %ss are N or N-M, %llu <= N <= M <= %llu", what,
				 stmt_quote(item, q), what, mn, mx);
	if (*lo > *hi)
		return stmt_fail(r, "%s range %s is reversed: %llu is above %llu", what,
				 stmt_quote(item, q), (unsigned long long)*lo,
				 (unsigned long long)*hi);
	return 0;
}

int stmt_number_once(struct stmt_reader *r, const char *keyword, unsigned *line, uint64_t min,
		     uint64_t max, const char *unit, uint64_t *out)
{
	char q[80];
	uint64_t v;

	if (*line)
		return stmt_fail(r, "%s given twice (first at line %u)", keyword, *line);
	if (policy_parse_number(r->args[0], &v) < 0)
		return stmt_fail(r, "%s %s is not a number", keyword, stmt_quote(r->args[0], q));
	if (v < min || v > max)
		return stmt_fail(r, "%s %s is out of range %llu..%llu%s%s", keyword,
				 stmt_quote(r->args[0], q), (unsigned long long)min,
				 (unsigned long long)max, *unit ? " " : "", unit);
	*out = v;
	*line = r->line;
	return 0;
}

int stmt_cid(struct stmt_reader *r, const char *what, uint32_t *out)
{
	char q[80];
	uint64_t v;

	if (policy_parse_number(r->args[0], &v) < 0)
		return stmt_fail(r, "cid %s is not a number", stmt_quote(r->args[0], q));
	if (v > UINT32_MAX)
		return stmt_fail(r, "cid %s does not fit in 32 bits", stmt_quote(r->args[0], q));
	if (v == 0 || v == 2)
		return stmt_fail(r, "cid %s is the %s, not a %s (a %s's cid is 1 or 3..4294967294)",
				 v ? "2" : "0", v ? "host" : "hypervisor", what, what);
	if (v == UINT32_MAX)
		return stmt_fail(r, "cid %s is VMADDR_CID_ANY (4294967295), not a %s",
				 stmt_quote(r->args[0], q), what);
	*out = (uint32_t)v;
	return 0;
}

int stmt_vsock_base(struct stmt_reader *r, uint32_t *out)
{
	const uint32_t highest = VMSHIM_VSOCK_PORT_MAX - (VMSHIM_PORT_BLOCK - 1);
	char q[80];
	uint64_t v;

	if (policy_parse_number(r->args[0], &v) < 0)
		return stmt_fail(r, "vsock-base %s is not a number", stmt_quote(r->args[0], q));
	if (v < 1024)
		return stmt_fail(r, "vsock-base %s is below 1024", stmt_quote(r->args[0], q));
	if (v > highest)
		return stmt_fail(r, "vsock-base %s is too high: its block of %u ports must end at "
				    "or below %u, so the base is at most %u",
				 stmt_quote(r->args[0], q), VMSHIM_PORT_BLOCK, VMSHIM_VSOCK_PORT_MAX,
				 highest);
	*out = (uint32_t)v;
	return 0;
}

/* --- lines ----------------------------------------------------------------------------- */

static int read_line(struct stmt_reader *r, const struct stmt_def *defs, size_t n_defs,
		     char *line, size_t len)
{
	const struct stmt_def *st = NULL;
	char q[80];

	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	if (len > LINE_MAX_BYTES)
		return stmt_fail(r, "line is %zu bytes long, more than %d", len, LINE_MAX_BYTES);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == '\0')
			return stmt_fail(r, "NUL byte at column %zu", i + 1);
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return stmt_fail(r, "unexpected control character 0x%02x at column %zu%s",
					 c, i + 1,
					 c == '\r' ? " (a carriage return: DOS line ends?)" : "");
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

	for (size_t i = 0; i < n_defs; i++)
		if (strcmp(keyword, defs[i].keyword) == 0)
			st = &defs[i];
	if (!st)
		return stmt_fail(r, "unknown keyword %s", stmt_quote(keyword, q));

	if (split_args(r, p, keyword, st->item != NULL) < 0)
		return -1;
	if (st->item && r->n_args == 0)
		return stmt_fail(r, "%s needs at least one %s (%s)", keyword, st->item, st->usage);
	if (!st->item && r->n_args != 1)
		return stmt_fail(r, "%s takes 1 argument, got %zu (%s)", keyword, r->n_args,
				 st->usage);
	return st->parse(r);
}

int stmt_read(FILE *f, struct stmt_reader *r, const struct stmt_def *defs, size_t n_defs)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	errno = 0;
	while ((n = getline(&line, &cap, f)) != -1) {
		r->line++;
		if (read_line(r, defs, n_defs, line, (size_t)n) < 0) {
			rc = -1;
			break;
		}
		errno = 0;
	}
	if (rc == 0 && (ferror(f) || errno == ENOMEM)) {
		r->line = 0; /* the whole file */
		rc = stmt_fail(r, "cannot read: %s", strerror(errno ? errno : EIO));
	}
	free(line);
	return rc;
}
