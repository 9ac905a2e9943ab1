/* The checks that need the whole file (policy/FORMAT.md): every peer complete, every address
 * with one owner, vsock blocks of peers on one CID apart, `self` naming a peer. Then the
 * finishing touches: each peer's ports, the addresses that stand for it, the self index.
 *
 * Every check reports what it finds; the problem on the lowest line is the one the user
 * sees, so the answer does not depend on the order of the checks. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"
#include "policy_addr.h"
#include "policy_internal.h"
#include "table_build.h"
#include "vmshim/ports.h"
#include "vmshim/relayproto.h"

struct check {
	unsigned line; /* of the first problem found so far; 0 while none */
	char msg[512];
};

__attribute__((format(printf, 3, 4))) static void report(struct check *c, unsigned line,
							  const char *fmt, ...)
{
	va_list ap;

	if (c->line && c->line <= line)
		return;
	c->line = line;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
}

static const char *family_name(int family)
{
	return family == AF_INET ? "IPv4" : "IPv6";
}

/* The first entry of the family in the peer. */
static const struct policy_prefix *first_of(const struct policy_peer *peer, int family)
{
	for (size_t i = 0; i < peer->n_prefixes; i++)
		if (peer->prefixes[i].family == family)
			return &peer->prefixes[i];
	return NULL;
}

static void check_peers(const struct policy_build *b, struct check *c)
{
	static const int families[] = { AF_INET, AF_INET6 };
	char shown[POLICY_PREFIX_STRLEN];

	for (size_t i = 0; i < b->pol->n_peers; i++) {
		const struct policy_peer *peer = &b->pol->peers[i];
		if (!b->state[i].cid_line)
			report(c, peer->line, "peer %s has no cid", peer->name);
		for (size_t f = 0; f < 2; f++) {
			const struct policy_prefix *any = first_of(peer, families[f]);
			if (any && !policy_first_single(peer->prefixes, peer->n_prefixes, families[f]))
				report(c, peer->line,
				       "peer %s owns %s prefix %s (line %u) but no single %s "
				       "address (one without /LEN) to stand for it",
				       peer->name, family_name(families[f]),
				       policy_prefix_format(any, shown), any->line,
				       family_name(families[f]));
		}
	}
}

struct owned {
	const struct policy_prefix *p;
	const struct policy_peer *peer;
};

static int owned_cmp(const void *a, const void *b)
{
	return policy_prefix_cmp(((const struct owned *)a)->p, ((const struct owned *)b)->p);
}

/* Sorted, prefixes either nest or are apart, so if any two overlap then two neighbours do.
 * Only then is the file searched pair by pair, to report the first overlap in file order. */
static int check_overlaps(const struct policy_build *b, struct check *c)
{
	const struct policy *pol = b->pol;
	char shown[POLICY_PREFIX_STRLEN], other[POLICY_PREFIX_STRLEN];
	size_t n = 0, k = 0;
	int overlap = 0;

	for (size_t i = 0; i < pol->n_peers; i++)
		n += pol->peers[i].n_prefixes;
	if (n < 2)
		return 0;
	struct owned *in_file = malloc(n * sizeof *in_file);
	struct owned *sorted = malloc(n * sizeof *sorted);
	if (!in_file || !sorted) {
		free(in_file);
		free(sorted);
		return -1;
	}
	for (size_t i = 0; i < pol->n_peers; i++)
		for (size_t j = 0; j < pol->peers[i].n_prefixes; j++)
			in_file[k++] = (struct owned){ &pol->peers[i].prefixes[j], &pol->peers[i] };
	memcpy(sorted, in_file, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, owned_cmp);
	for (size_t i = 1; i < n && !overlap; i++)
		overlap = policy_prefix_overlaps(sorted[i - 1].p, sorted[i].p);

	for (size_t j = 1; j < n && overlap; j++) {
		for (size_t i = 0; i < j; i++) {
			const struct policy_prefix *a = in_file[i].p, *later = in_file[j].p;
			if (!policy_prefix_overlaps(a, later))
				continue;
			policy_prefix_format(later, shown);
			policy_prefix_format(a, other);
			if (policy_prefix_cmp(a, later) == 0)
				report(c, later->line, "%s is already owned by peer %s (line %u)",
				       shown, in_file[i].peer->name, a->line);
			else
				report(c, later->line, "%s overlaps %s of peer %s (line %u)", shown,
				       other, in_file[i].peer->name, a->line);
			overlap = 0;
			break;
		}
	}
	free(in_file);
	free(sorted);
	return 0;
}

struct block {
	uint32_t cid, base;
	size_t peer;
};

static int block_cmp(const void *a, const void *b)
{
	const struct block *x = a, *y = b;

	if (x->cid != y->cid)
		return x->cid < y->cid ? -1 : 1;
	if (x->base != y->base)
		return x->base < y->base ? -1 : 1;
	return x->peer < y->peer ? -1 : x->peer > y->peer;
}

/* Blocks are all the same size, so sorted by CID and base only neighbours need comparing. */
static int check_blocks(const struct policy_build *b, struct check *c)
{
	const struct policy *pol = b->pol;
	size_t n = 0;

	struct block *blocks = malloc((pol->n_peers ? pol->n_peers : 1) * sizeof *blocks);
	if (!blocks)
		return -1;
	for (size_t i = 0; i < pol->n_peers; i++)
		if (b->state[i].cid_line)
			blocks[n++] = (struct block){ pol->peers[i].cid, pol->peers[i].vsock_base, i };
	qsort(blocks, n, sizeof *blocks, block_cmp);
	for (size_t i = 1; i < n; i++) {
		const struct block *x = &blocks[i - 1], *y = &blocks[i];
		if (x->cid != y->cid || y->base - x->base >= VMSHIM_PORT_BLOCK)
			continue;
		size_t first = x->peer < y->peer ? x->peer : y->peer;
		size_t later = x->peer < y->peer ? y->peer : x->peer;
		const struct policy_peer *p = &pol->peers[later], *q = &pol->peers[first];
		const struct policy_peer_state *ps = &b->state[later], *qs = &b->state[first];
		report(c, ps->base_line ? ps->base_line : p->line,
		       "peer %s shares cid %u with peer %s (line %u) and its vsock ports "
		       "%u..%u overlap %u..%u of peer %s%s",
		       p->name, p->cid, q->name, q->line, p->vsock_base,
		       p->vsock_base + (VMSHIM_PORT_BLOCK - 1), q->vsock_base,
		       q->vsock_base + (VMSHIM_PORT_BLOCK - 1), q->name,
		       !ps->base_line && !qs->base_line ? " (both have the default vsock-base: "
							  "give one another)"
							: "");
	}
	free(blocks);
	return 0;
}

static uint32_t control_port_of(const struct policy_build *b, size_t i)
{
	const struct policy_peer *p = &b->pol->peers[i];

	return b->state[i].control_line ? p->control_port : p->vsock_base + VMSHIM_CONTROL_OFFSET;
}

/* A control port given by hand must not be another's, nor inside a block of its CID. */
static void check_control_ports(const struct policy_build *b, struct check *c)
{
	const struct policy *pol = b->pol;

	for (size_t i = 0; i < pol->n_peers; i++) {
		const struct policy_peer_state *st = &b->state[i];
		uint32_t port = control_port_of(b, i);

		if (!st->control_line)
			continue;
		for (size_t j = 0; j < pol->n_peers; j++) {
			const struct policy_peer *q = &pol->peers[j];
			if (q->cid != pol->peers[i].cid)
				continue;
			if (j < i && port == control_port_of(b, j))
				report(c, st->control_line,
				       "control-port %u of peer %s is also the control port of "
				       "peer %s (line %u), which has the same cid",
				       port, pol->peers[i].name, q->name, q->line);
			else if (port >= q->vsock_base && port - q->vsock_base < VMSHIM_PORT_BLOCK)
				report(c, st->control_line,
				       "control-port %u of peer %s lies in the vsock ports %u..%u "
				       "of peer %s, which has the same cid",
				       port, pol->peers[i].name, q->vsock_base,
				       q->vsock_base + VMSHIM_PORT_BLOCK - 1, q->name);
		}
	}
}

/* Peers reached via the relay, and peers from it, need one; the relay's ports (its own and
 * the 1023 its connections come from, when it shares a CID with peers) must lie outside
 * their blocks. */
static void check_relay(const struct policy_build *b, struct check *c)
{
	const struct policy *pol = b->pol;

	if (b->peers_line && !b->relay_line)
		report(c, b->peers_line, "peers relay, but the file has no 'relay CID PORT'");
	for (size_t i = 0; i < pol->n_peers; i++) {
		const struct policy_peer *q = &pol->peers[i];
		if (q->via_relay && !b->relay_line)
			report(c, b->state[i].via_line,
			       "peer %s is reached via relay, but the file has no 'relay CID PORT'",
			       q->name);
		if (b->relay_line && q->cid == pol->relay_cid &&
		    pol->relay_port < q->vsock_base + VMSHIM_PORT_BLOCK &&
		    q->vsock_base <= pol->relay_port + RELAYPROTO_SOURCE_PORTS)
			report(c, b->relay_line,
			       "the relay's vsock ports %u..%u overlap %u..%u of peer %s, which "
			       "has the same cid",
			       pol->relay_port, pol->relay_port + RELAYPROTO_SOURCE_PORTS, q->vsock_base,
			       q->vsock_base + VMSHIM_PORT_BLOCK - 1, q->name);
	}
}

/* Every table helperd can build from the policy, whatever the peers announce, fits
 * TABLE_MAX_SIZE: the first peer that would take it beyond is refused. */
static void check_table_size(const struct policy_build *b, struct check *c)
{
	const struct policy *pol = b->pol;
	uint64_t ranges = 0;

	for (size_t i = 0; i < pol->n_peers; i++) {
		ranges += table_peer_ranges(&pol->peers[i]);
		uint64_t size = table_size(i + 1, 0, ranges); /* IPv6 ranges are the larger */
		if (size > TABLE_MAX_SIZE) {
			report(c, pol->peers[i].line,
			       "peer %s is one too many: the decision table for %zu peers would "
			       "take up to %llu bytes, more than the %u allowed",
			       pol->peers[i].name, i + 1, (unsigned long long)size, TABLE_MAX_SIZE);
			return;
		}
	}
}

static void finish(struct policy_build *b)
{
	struct policy *pol = b->pol;

	/* privileged ports, which only the host's root can bind; the 1023 after its own where
	 * the relay shares a CID with peers (tests) */
	pol->relay_first_source = 1;
	for (size_t i = 0; i < pol->n_peers; i++)
		if (pol->has_relay && pol->peers[i].cid == pol->relay_cid)
			pol->relay_first_source = pol->relay_port + 1;

	for (size_t i = 0; i < pol->n_peers; i++) {
		struct policy_peer *peer = &pol->peers[i];
		const struct policy_peer_state *st = &b->state[i];
		const struct policy_ports *allow = st->has_rules ? &st->allow : &b->global_allow;
		const struct policy_ports *deny = st->has_rules ? &st->deny : &b->global_deny;

		for (size_t w = 0; w < POLICY_PORT_WORDS; w++)
			peer->ports.allowed[w] = allow->allowed[w] & ~deny->allowed[w];
		peer->control_port = control_port_of(b, i);
	}
}

int policy_validate(struct policy_build *b, char *err, size_t errlen)
{
	struct check c = { 0 };
	int self = -1;

	check_peers(b, &c);
	check_control_ports(b, &c);
	check_relay(b, &c);
	check_table_size(b, &c);
	if (check_overlaps(b, &c) < 0 || check_blocks(b, &c) < 0) {
		policy_error(err, errlen, b->path, 0, "out of memory");
		return -1;
	}
	if (b->self_line) {
		self = policy_find_peer(b->pol, b->self_name);
		if (self < 0)
			report(&c, b->self_line, "self names unknown peer '%s'", b->self_name);
	}
	if (c.line) {
		policy_error(err, errlen, b->path, c.line, "%s", c.msg);
		return -1;
	}
	b->pol->self = self;
	finish(b);
	return 0;
}
