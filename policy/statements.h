/* Files of one statement per line: the guest policy (parse.c) and the relay's host policy
 * (relay/host_policy.c) share the syntax of policy/FORMAT.md ("Syntax") and its messages. */
#ifndef VMSHIM_STATEMENTS_H
#define VMSHIM_STATEMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct stmt_reader {
	const char *path;
	unsigned line;
	char *err;
	size_t errlen;
	char **args; /* the arguments of the current statement, pointing into the line */
	size_t n_args, cap_args;
	void *ctx; /* the caller's */
};

struct stmt_def {
	const char *keyword;
	const char *usage;
	const char *item; /* for lists: what one item is; NULL for one argument */
	int (*parse)(struct stmt_reader *r);
};

/* Reads f to its end, one statement per line, each handed to its definition's parse.
 * Returns 0, or -1 once "PATH:LINE: what is wrong" is in r->err. Free r->args after. */
int stmt_read(FILE *f, struct stmt_reader *r, const struct stmt_def *defs, size_t n_defs);

/* Writes "PATH:LINE: message" into r->err and returns -1. */
__attribute__((format(printf, 2, 3))) int stmt_fail(struct stmt_reader *r, const char *fmt, ...);

/* A word for a message: 'word', or 'wo...' if long. */
const char *stmt_quote(const char *s, char buf[80]);

/* Whether s is a name: 1-32 of A-Z a-z 0-9 . _ - */
bool stmt_name_ok(const char *s);

/* Checks a name (stmt_name_ok); what says what it names ("peer", "guest"). */
int stmt_name(struct stmt_reader *r, const char *s, const char *what);

/* Parses "N" or "N-M", min <= N <= M <= max; what names one item ("port", "vsock port"). */
int stmt_range(struct stmt_reader *r, char *item, const char *what, uint64_t min, uint64_t max,
	       uint64_t *lo, uint64_t *hi);

/* The one number argument of keyword, min..max; unit ("ms", or "") follows the range in
 * the message. *line keeps where it was given, so a second time is an error. */
int stmt_number_once(struct stmt_reader *r, const char *keyword, unsigned *line, uint64_t min,
		     uint64_t max, const char *unit, uint64_t *out);

/* The argument of `cid N` in the block of a VM (what: "peer", "guest"): 1 (the local
 * kernel: tests) or 3..4294967294. */
int stmt_cid(struct stmt_reader *r, const char *what, uint32_t *out);

/* The argument of `vsock-base N`: at least 1024, and the block of VMSHIM_PORT_BLOCK ports
 * from it ends at VMSHIM_VSOCK_PORT_MAX or below (vmshim/ports.h). */
int stmt_vsock_base(struct stmt_reader *r, uint32_t *out);

/* Parses a decimal or 0x-hexadecimal number with nothing around it. Returns 0, or -1 if s is
 * not a number. A number too big for 64 bits reads as UINT64_MAX so that range checks fail. */
int policy_parse_number(const char *s, uint64_t *out);

/* Writes "PATH:LINE: message" into err, or "PATH: message" when line is 0. */
__attribute__((format(printf, 5, 6))) void policy_error(char *err, size_t errlen,
							 const char *path, unsigned line,
							 const char *fmt, ...);

/* The policy file f (opened from path) may be read only if none but root can change it:
 * root's or the reader's own (root's) and writable by its owner alone. It is the file
 * opened that counts, so another user's file renamed over it fails too. 0, or -1 with
 * "PATH: belongs to uid N ..." in err; what names the policy ("the host policy"). */
int policy_file_trusted(FILE *f, const char *path, const char *what, char *err, size_t errlen);

#endif
