/* Unit tests of the decision table: table_build() (policy/table_build.c) turns a policy into a
 * body, vmshim_table_route() and vmshim_table_self_exposes() (policy/table_lookup.c) read it.
 *
 * Policies come from tests/unit/fixtures/table, from files generated at run time (many peers)
 * or, for prefix lengths no valid policy can hold (IPv6 /1../31 cannot stay inside
 * 2001:db8::/32, and every /1 contains loopback or multicast), from a struct policy built here.
 * Lookups are checked against explicit values and against an oracle that matches prefixes
 * bit by bit, independently of the ranges the table stores.
 *
 * The robustness tests copy a body into a heap block of exactly `capacity` bytes before
 * corrupting it, so that the ASan build (make SAN=1) reports any read outside
 * [body, body + capacity). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "policy.h"
#include "table_build.h"
#include "vmshim/ports.h"
#include "vmshim/table.h"

#define TDIR FIXTURES "/table"

/* Peer indexes in basic.policy. */
enum { ALPHA, BETA, GAMMA, DELTA, EPSILON, ZETA, N_BASIC };

/* --- helpers --------------------------------------------------------------------------- */

static struct policy *load_path(const char *path)
{
	struct policy *pol = NULL;
	char err[1024];

	if (policy_load(path, &pol, err, sizeof err) != 0)
		fail_msg("%s should load, but: %s", path, err);
	assert_non_null(pol);
	return pol;
}

static struct policy *load_fixture(const char *name)
{
	char path[512];

	snprintf(path, sizeof path, TDIR "/%s", name);
	return load_path(path);
}

/* A built body and its size. */
struct table {
	struct vmshim_table_body *body;
	uint32_t size;
};

static struct table build(const struct policy *pol, int self)
{
	struct table t = { 0 };

	t.body = table_build(pol, self, &t.size);
	assert_non_null(t.body);
	assert_true(t.size >= sizeof(struct vmshim_table_body));
	assert_int_equal(t.body->size, t.size);
	return t;
}

/* Parses a textual address; returns its family. */
static int parse_addr(const char *text, uint8_t addr[16])
{
	int family = strchr(text, ':') ? AF_INET6 : AF_INET;

	memset(addr, 0, 16);
	if (inet_pton(family, text, addr) != 1)
		fail_msg("bad address in test: %s", text);
	return family;
}

static const char *addr_str(int family, const uint8_t *addr, char buf[INET6_ADDRSTRLEN])
{
	return inet_ntop(family, addr, buf, INET6_ADDRSTRLEN);
}

static enum vmshim_verdict route(const struct table *t, const char *addr_text, uint16_t port,
				 struct vmshim_route *out)
{
	uint8_t addr[16];
	int family = parse_addr(addr_text, addr);

	memset(out, 0xa5, sizeof *out);
	return vmshim_table_route(t->body, t->size, family, addr, port, out);
}

static void expect_direct(const struct table *t, const char *addr_text, uint16_t port)
{
	struct vmshim_route r;
	enum vmshim_verdict v = route(t, addr_text, port, &r);

	if (v != VMSHIM_DIRECT)
		fail_msg("%s port %u: verdict %d, want DIRECT", addr_text, port, v);
}

/* self_addr_text: the address the route must carry as this guest's, NULL if none. */
static void expect_sibling(const struct table *t, const char *addr_text, uint16_t port,
			   uint32_t cid, uint32_t base, uint32_t self_base, uint32_t timeout_ms,
			   const char *self_addr_text)
{
	struct vmshim_route r;
	uint8_t want_self[16];
	int family = parse_addr(addr_text, want_self);
	enum vmshim_verdict v = route(t, addr_text, port, &r);

	if (v != VMSHIM_SIBLING)
		fail_msg("%s port %u: verdict %d, want SIBLING", addr_text, port, v);
	assert_int_equal(r.cid, cid);
	assert_int_equal(r.port, base + (family == AF_INET6 ? 65536u : 0u) + port);
	assert_int_equal(r.port, vmshim_listen_port(base, family == AF_INET6, port));
	assert_int_equal(r.source_base, self_base + 131072u);
	assert_int_equal(r.timeout_ms, timeout_ms);
	if (!self_addr_text) {
		assert_int_equal(r.has_self_addr, 0);
		return;
	}
	assert_int_equal(r.has_self_addr, 1);
	assert_int_equal(parse_addr(self_addr_text, want_self), family);
	assert_memory_equal(r.self_addr, want_self, family == AF_INET6 ? 16 : 4);
}

/* 128-bit (or 32-bit) big-endian arithmetic on address bytes. */
static void addr_inc(uint8_t *a, unsigned n)
{
	for (unsigned i = n; i-- > 0;)
		if (++a[i] != 0)
			return;
}

static void addr_dec(uint8_t *a, unsigned n)
{
	for (unsigned i = n; i-- > 0;)
		if (a[i]-- != 0)
			return;
}

static int addr_is(const uint8_t *a, unsigned n, uint8_t byte)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i] != byte)
			return 0;
	return 1;
}

/* First and last address of the prefix addr/len (n bytes long). */
static void prefix_bounds(const uint8_t *addr, unsigned len, unsigned n, uint8_t *first,
			  uint8_t *last)
{
	for (unsigned bit = 0; bit < n * 8; bit++) {
		uint8_t m = (uint8_t)(0x80 >> (bit % 8));
		int b = bit < len ? addr[bit / 8] & m : 0;

		first[bit / 8] = (uint8_t)(b ? first[bit / 8] | m : first[bit / 8] & ~m);
		b = bit < len ? b : 1;
		last[bit / 8] = (uint8_t)(b ? last[bit / 8] | m : last[bit / 8] & ~m);
	}
}

static int prefix_contains(const struct policy_prefix *p, int family, const uint8_t *addr)
{
	if (p->family != family)
		return 0;
	for (unsigned bit = 0; bit < p->len; bit++) {
		uint8_t m = (uint8_t)(0x80 >> (bit % 8));
		if ((p->addr[bit / 8] & m) != (addr[bit / 8] & m))
			return 0;
	}
	return 1;
}

/* The oracle: the peer owning addr by a linear scan of the policy, or -1. */
static int oracle_owner(const struct policy *pol, int family, const uint8_t *addr)
{
	int owner = -1;

	for (size_t i = 0; i < pol->n_peers; i++)
		for (size_t j = 0; j < pol->peers[i].n_prefixes; j++)
			if (prefix_contains(&pol->peers[i].prefixes[j], family, addr)) {
				if (owner >= 0)
					fail_msg("test policy has overlapping prefixes");
				owner = (int)i;
			}
	return owner;
}

/* Checks one lookup against the oracle; returns the verdict. */
static enum vmshim_verdict check_oracle(const struct table *t, const struct policy *pol, int self,
					int family, const uint8_t *addr, uint16_t port)
{
	struct vmshim_route r;
	char text[INET6_ADDRSTRLEN];
	int owner = oracle_owner(pol, family, addr);
	enum vmshim_verdict want = VMSHIM_DIRECT;

	if (owner >= 0 && self >= 0 && owner != self &&
	    policy_port_allowed(&pol->peers[owner].ports, port))
		want = VMSHIM_SIBLING;
	memset(&r, 0xa5, sizeof r);
	enum vmshim_verdict got = vmshim_table_route(t->body, t->size, family, addr, port, &r);
	if (got != want)
		fail_msg("%s port %u: verdict %d, want %d (owner %d, self %d)",
			 addr_str(family, addr, text), port, got, want, owner, self);
	if (want != VMSHIM_SIBLING)
		return got;

	const struct policy_peer *dst = &pol->peers[owner], *me = &pol->peers[self];
	const struct policy_prefix *mine = family == AF_INET ? me->addr4 : me->addr6;
	assert_int_equal(r.cid, dst->cid);
	assert_int_equal(r.port, vmshim_listen_port(dst->vsock_base, family == AF_INET6, port));
	assert_int_equal(r.source_base, me->vsock_base + VMSHIM_SOURCE_OFFSET);
	assert_int_equal(r.timeout_ms, pol->connect_timeout_ms);
	assert_int_equal(r.has_self_addr, mine != NULL);
	if (mine)
		assert_memory_equal(r.self_addr, mine->addr, family == AF_INET ? 4 : 16);
	return got;
}

/* Writes text to a new temporary file; its name goes into path. */
static void write_temp(char path[64], const char *text, size_t len)
{
	snprintf(path, 64, "/tmp/test_table_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* A heap copy of a body in a block of exactly capacity bytes, so that ASan sees overruns. */
static struct vmshim_table_body *exact_copy(const struct table *t, uint32_t capacity)
{
	void *p = malloc(capacity);

	assert_true(p != NULL || capacity == 0);
	if (!p)
		p = malloc(1);
	memcpy(p, t->body, capacity < t->size ? capacity : t->size);
	if (capacity > t->size)
		memset((char *)p + t->size, 0, capacity - t->size);
	return p;
}

/* --- the basic policy ------------------------------------------------------------------ */

static const uint32_t base_of[N_BASIC] = { 1048576, 2000000, 3000000, 4000000, 1048576, 5000000 };

static void test_basic_layout(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	assert_int_equal(pol->n_peers, N_BASIC);
	assert_int_equal(pol->self, ALPHA);
	struct table t = build(pol, ALPHA);
	const struct vmshim_table_body *b = t.body;

	assert_int_equal(b->self, ALPHA);
	assert_int_equal(b->connect_timeout_ms, 750);
	assert_int_equal(b->n_peers, N_BASIC);
	assert_int_equal(b->n_portsets, N_BASIC);
	assert_int_equal(b->n_ranges4, 10); /* alpha 2, beta 2, gamma 2, epsilon 1, zeta 2 + 1 */
	assert_int_equal(b->n_ranges4, 2 + 2 + 2 + 1 + 2 + 1 - 1);
	assert_int_equal(b->n_ranges6, 5); /* alpha 1, beta 2, delta 2 */
	assert_int_equal(b->peers_off % 8, 0);
	assert_int_equal(b->ranges4_off % 8, 0);
	assert_int_equal(b->ranges6_off % 8, 0);
	assert_int_equal(b->portsets_off % 8, 0);
	assert_true(b->peers_off >= sizeof *b);
	assert_true(b->ranges4_off >= b->peers_off + N_BASIC * sizeof(struct vmshim_table_peer));
	assert_true(b->ranges6_off >= b->ranges4_off + 10 * sizeof(struct vmshim_range4));
	assert_true(b->portsets_off >= b->ranges6_off + 5 * sizeof(struct vmshim_range6));
	assert_int_equal(b->size, b->portsets_off + N_BASIC * VMSHIM_PORTSET_WORDS * 8);

	/* Ranges sorted and disjoint. */
	const struct vmshim_range4 *r4 = (const void *)((const char *)b + b->ranges4_off);
	for (uint32_t i = 0; i + 1 < b->n_ranges4; i++)
		assert_true(r4[i].last < r4[i + 1].first);
	const struct vmshim_range6 *r6 = (const void *)((const char *)b + b->ranges6_off);
	for (uint32_t i = 0; i + 1 < b->n_ranges6; i++)
		assert_true(r6[i].last_hi < r6[i + 1].first_hi ||
			    (r6[i].last_hi == r6[i + 1].first_hi && r6[i].last_lo < r6[i + 1].first_lo));

	/* Peers: their first single address stands for them. */
	const struct vmshim_table_peer *p = (const void *)((const char *)b + b->peers_off);
	uint8_t a[16];
	assert_int_equal(p[GAMMA].flags, VMSHIM_PEER_HAS_ADDR4);
	parse_addr("198.18.0.3", a);
	assert_memory_equal(p[GAMMA].addr4, a, 4);
	assert_int_equal(p[DELTA].flags, VMSHIM_PEER_HAS_ADDR6);
	parse_addr("2001:db8::4", a);
	assert_memory_equal(p[DELTA].addr6, a, 16);
	assert_int_equal(p[BETA].flags, VMSHIM_PEER_HAS_ADDR4 | VMSHIM_PEER_HAS_ADDR6);
	for (int i = 0; i < N_BASIC; i++) {
		assert_int_equal(p[i].cid, 3 + i);
		assert_int_equal(p[i].vsock_base, base_of[i]);
		assert_true(p[i].portset < b->n_portsets);
	}
	free(t.body);
	policy_free(pol);
}

static void test_route_to_siblings(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table t = build(pol, ALPHA);
	const uint32_t me = base_of[ALPHA];

	/* beta's own rules: 80, 443, 8000-8100 except 8050 */
	expect_sibling(&t, "198.18.0.2", 80, 4, 2000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "198.18.0.2", 443, 4, 2000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "198.18.2.77", 8000, 4, 2000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "198.18.2.77", 8100, 4, 2000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "2001:db8::2", 443, 4, 2000000, me, 750, "2001:db8::1");
	expect_sibling(&t, "2001:db8:2:ffff:ffff:ffff:ffff:ffff", 80, 4, 2000000, me, 750,
		       "2001:db8::1");
	/* The vsock port numbers themselves, spelt out once. */
	struct vmshim_route r;
	assert_int_equal(route(&t, "198.18.0.2", 80, &r), VMSHIM_SIBLING);
	assert_int_equal(r.port, 2000080);
	assert_int_equal(r.source_base, 1048576 + 131072);
	assert_int_equal(route(&t, "2001:db8::2", 80, &r), VMSHIM_SIBLING);
	assert_int_equal(r.port, 2000000 + 65536 + 80);

	/* gamma and delta: the global rules (1024-65535, not 5432) */
	expect_sibling(&t, "198.18.0.3", 1024, 5, 3000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "198.18.3.200", 65535, 5, 3000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "198.18.3.200", 5431, 5, 3000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "2001:db8::4", 5433, 6, 4000000, me, 750, "2001:db8::1");
	expect_sibling(&t, "2001:db8:4::1234", 2000, 6, 4000000, me, 750, "2001:db8::1");
	expect_sibling(&t, "198.18.0.6", 1024, 8, 5000000, me, 750, "198.18.0.1");
	free(t.body);
	policy_free(pol);
}

static void test_route_port_rules(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table t = build(pol, ALPHA);

	/* The destination's rules decide: beta's own rules replace the global ones... */
	expect_direct(&t, "198.18.0.2", 8050);  /* denied by beta */
	expect_direct(&t, "198.18.2.1", 1024);  /* allowed globally, not by beta */
	expect_direct(&t, "2001:db8::2", 8101);
	expect_direct(&t, "198.18.0.2", 79);
	expect_direct(&t, "198.18.0.2", 0);
	/* ... and the global ones apply to gamma and delta. */
	expect_direct(&t, "198.18.0.3", 5432);
	expect_direct(&t, "198.18.0.3", 1023);
	expect_direct(&t, "198.18.0.3", 80);
	expect_direct(&t, "2001:db8::4", 5432);
	expect_direct(&t, "2001:db8::4", 0);
	/* epsilon allows nothing */
	for (unsigned port = 0; port < 65536; port += 97)
		expect_direct(&t, "198.18.0.5", (uint16_t)port);
	expect_direct(&t, "198.18.0.5", 65535);
	expect_direct(&t, "198.18.0.5", 1024);

	/* Every port of every peer, against the policy. */
	for (int dst = 0; dst < N_BASIC; dst++) {
		const struct policy_peer *peer = &pol->peers[dst];
		for (unsigned port = 0; port < 65536; port++) {
			if (peer->addr4)
				check_oracle(&t, pol, ALPHA, AF_INET, peer->addr4->addr, (uint16_t)port);
			if (peer->addr6)
				check_oracle(&t, pol, ALPHA, AF_INET6, peer->addr6->addr, (uint16_t)port);
		}
	}
	free(t.body);
	policy_free(pol);
}

static void test_route_prefix_edges(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table t = build(pol, ALPHA);
	const uint32_t me = base_of[ALPHA];

	/* beta 198.18.2.0/24: below it is alpha's (self) /24, above it nobody's. */
	expect_sibling(&t, "198.18.2.0", 80, 4, 2000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "198.18.2.255", 80, 4, 2000000, me, 750, "198.18.0.1");
	expect_direct(&t, "198.18.1.255", 80);
	expect_direct(&t, "198.18.3.0", 80);
	/* gamma 198.18.3.128/25: nobody below, zeta's /23 right above */
	expect_sibling(&t, "198.18.3.128", 2000, 5, 3000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "198.18.3.255", 2000, 5, 3000000, me, 750, "198.18.0.1");
	expect_direct(&t, "198.18.3.127", 2000);
	expect_sibling(&t, "198.18.4.0", 2000, 8, 5000000, me, 750, "198.18.0.1");
	expect_sibling(&t, "198.18.5.255", 2000, 8, 5000000, me, 750, "198.18.0.1");
	expect_direct(&t, "198.18.6.0", 2000);
	/* single addresses: their neighbours are other peers' or nobody's */
	expect_direct(&t, "198.18.0.0", 2000);
	expect_direct(&t, "198.18.0.4", 2000);
	expect_direct(&t, "198.18.0.7", 2000);
	/* beta 2001:db8:2::/48 and delta 2001:db8:4::/64 */
	expect_sibling(&t, "2001:db8:2::", 443, 4, 2000000, me, 750, "2001:db8::1");
	expect_direct(&t, "2001:db8:1:ffff:ffff:ffff:ffff:ffff", 443);
	expect_direct(&t, "2001:db8:3::", 443);
	expect_sibling(&t, "2001:db8:4::", 2000, 6, 4000000, me, 750, "2001:db8::1");
	expect_sibling(&t, "2001:db8:4::ffff:ffff:ffff:ffff", 2000, 6, 4000000, me, 750,
		       "2001:db8::1");
	expect_direct(&t, "2001:db8:3:ffff:ffff:ffff:ffff:ffff", 2000);
	expect_direct(&t, "2001:db8:4:1::", 2000);
	expect_direct(&t, "2001:db8::3", 2000);
	expect_direct(&t, "2001:db8::5", 2000);
	free(t.body);
	policy_free(pol);
}

static void test_route_self_and_unknown(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table t = build(pol, ALPHA);

	/* this guest's own addresses */
	expect_direct(&t, "198.18.0.1", 2000);
	expect_direct(&t, "198.18.1.0", 2000);
	expect_direct(&t, "198.18.1.128", 2000);
	expect_direct(&t, "198.18.1.255", 2000);
	expect_direct(&t, "2001:db8::1", 2000);
	/* nobody's */
	expect_direct(&t, "198.18.0.100", 2000);
	expect_direct(&t, "198.19.255.255", 2000);
	expect_direct(&t, "0.0.0.0", 2000);
	expect_direct(&t, "255.255.255.255", 2000);
	expect_direct(&t, "10.0.0.1", 2000);
	expect_direct(&t, "2001:db8::99", 2000);
	expect_direct(&t, "::", 2000);
	expect_direct(&t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 2000);
	/* an IPv4 address given as IPv6 bytes is not the IPv4 address */
	expect_direct(&t, "::ffff:198.18.0.2", 80);
	expect_direct(&t, "::c612:2", 80);
	free(t.body);
	policy_free(pol);
}

/* The same policy seen from other guests: the route carries the right self. */
static void test_route_other_selves(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");

	/* beta: alpha is now a sibling with the global rules */
	struct table t = build(pol, BETA);
	assert_int_equal(t.body->self, BETA);
	expect_sibling(&t, "198.18.1.7", 1024, 3, 1048576, 2000000, 750, "198.18.0.2");
	expect_sibling(&t, "2001:db8::1", 1024, 3, 1048576, 2000000, 750, "2001:db8::2");
	expect_direct(&t, "198.18.0.2", 80);
	expect_direct(&t, "198.18.2.9", 80);
	free(t.body);

	/* gamma has no IPv6 address: an IPv6 sibling route has no self address */
	t = build(pol, GAMMA);
	expect_sibling(&t, "2001:db8::2", 80, 4, 2000000, 3000000, 750, NULL);
	expect_sibling(&t, "198.18.0.2", 80, 4, 2000000, 3000000, 750, "198.18.0.3");
	expect_direct(&t, "198.18.3.130", 2000); /* its own */
	free(t.body);

	/* delta has no IPv4 address */
	t = build(pol, DELTA);
	expect_sibling(&t, "198.18.2.3", 443, 4, 2000000, 4000000, 750, NULL);
	expect_sibling(&t, "2001:db8:2::3", 443, 4, 2000000, 4000000, 750, "2001:db8::4");
	free(t.body);

	/* no self: nothing is a sibling */
	t = build(pol, -1);
	assert_int_equal(t.body->self, VMSHIM_NO_SELF);
	for (int dst = 0; dst < N_BASIC; dst++)
		for (unsigned port = 1; port < 65536; port += 61) {
			const struct policy_peer *peer = &pol->peers[dst];
			if (peer->addr4)
				assert_int_equal(check_oracle(&t, pol, -1, AF_INET, peer->addr4->addr,
							      (uint16_t)port),
						 VMSHIM_DIRECT);
			if (peer->addr6)
				assert_int_equal(check_oracle(&t, pol, -1, AF_INET6, peer->addr6->addr,
							      (uint16_t)port),
						 VMSHIM_DIRECT);
		}
	expect_direct(&t, "198.18.0.2", 80);
	expect_direct(&t, "2001:db8::2", 80);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 80), VMSHIM_DIRECT);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 1024), VMSHIM_DIRECT);
	free(t.body);
	policy_free(pol);
}

static void test_self_exposes(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");

	for (int self = 0; self < N_BASIC; self++) {
		struct table t = build(pol, self);
		for (unsigned port = 0; port < 65536; port++) {
			enum vmshim_verdict want = policy_port_allowed(&pol->peers[self].ports, port)
							   ? VMSHIM_SIBLING
							   : VMSHIM_DIRECT;
			enum vmshim_verdict got = vmshim_table_self_exposes(t.body, t.size,
									    (uint16_t)port);
			if (got != want)
				fail_msg("self %d port %u: %d, want %d", self, port, got, want);
		}
		free(t.body);
	}

	struct table t = build(pol, ALPHA); /* global rules */
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 1024), VMSHIM_SIBLING);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 65535), VMSHIM_SIBLING);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 1023), VMSHIM_DIRECT);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 5432), VMSHIM_DIRECT);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 0), VMSHIM_DIRECT);
	free(t.body);
	t = build(pol, BETA); /* own rules */
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 80), VMSHIM_SIBLING);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 8100), VMSHIM_SIBLING);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 8050), VMSHIM_DIRECT);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 1024), VMSHIM_DIRECT);
	free(t.body);
	t = build(pol, EPSILON);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 1024), VMSHIM_DIRECT);
	free(t.body);
	policy_free(pol);
}

/* A table from a policy without peers. */
static void test_empty_policy(void **state)
{
	(void)state;
	struct policy pol = { .peers = NULL, .n_peers = 0, .self = -1, .connect_timeout_ms = 1000 };
	struct table t = build(&pol, -1);

	assert_int_equal(t.body->n_peers, 0);
	assert_int_equal(t.body->n_ranges4, 0);
	assert_int_equal(t.body->n_ranges6, 0);
	expect_direct(&t, "198.18.0.1", 80);
	expect_direct(&t, "2001:db8::1", 80);
	assert_int_equal(vmshim_table_self_exposes(t.body, t.size, 80), VMSHIM_DIRECT);
	free(t.body);
}

/* --- many peers ------------------------------------------------------------------------ */

#define MANY 200
#define MANY_SELF 57

/* Peer k owns the /24 number b = 2 (k * 73 % 200) of 198.18.0.0/15, a single address in the
 * /24 after it, the IPv6 /48 2001:db8:(b + 2)::, and 2001:db8::1:(k + 1). The file lists the
 * peers in an order unrelated to their addresses, so the table must sort. Every tenth peer
 * has its own rules (only port 80); the global rules are 1-65535 but 7. */
static struct policy *many_peers(void)
{
	char path[64];
	size_t cap = MANY * 200 + 100, k = 0;
	char *text = malloc(cap);

	assert_non_null(text);
	k += (size_t)snprintf(text + k, cap - k, "self p%u\nconnect-timeout 321\nallow 1-65535\ndeny 7\n",
			      MANY_SELF);
	for (unsigned i = 0; i < MANY; i++) {
		unsigned b = 2 * (i * 73 % MANY);
		k += (size_t)snprintf(text + k, cap - k,
				      "peer p%u\n\tcid %u\n\tvsock-base %u\n"
				      "\taddress 198.%u.%u.0/24 198.%u.%u.1\n"
				      "\taddress 2001:db8:%x::/48 2001:db8::1:%x\n%s",
				      i, 10 + i, 1024 + i * VMSHIM_PORT_BLOCK, 18 + b / 256, b % 256,
				      18 + (b + 1) / 256, (b + 1) % 256, b + 2, i + 1,
				      i % 10 == 0 ? "\tallow 80\n" : "");
	}
	assert_true(k < cap);
	write_temp(path, text, k);
	struct policy *pol = load_path(path);
	unlink(path);
	free(text);
	assert_int_equal(pol->n_peers, MANY);
	assert_int_equal(pol->self, MANY_SELF);
	return pol;
}

static void test_many_peers(void **state)
{
	(void)state;
	struct policy *pol = many_peers();
	struct table t = build(pol, MANY_SELF);
	static const uint16_t ports[] = { 80, 443, 7 };
	static const uint8_t hosts[] = { 0, 1, 2, 127, 128, 254, 255 };
	unsigned siblings = 0;

	assert_int_equal(t.body->n_ranges4, 2 * MANY);
	assert_int_equal(t.body->n_ranges6, 2 * MANY);
	/* Every /24 of 198.18.0.0/15 (owned ones, single addresses, gaps), and the /24s just
	 * around it. */
	for (unsigned net = 0; net < 514; net++) {
		uint32_t n = (198u << 24 | 18u << 16) + (net - 1) * 256u;
		for (size_t h = 0; h < sizeof hosts; h++) {
			uint32_t a = htonl(n + hosts[h]);
			for (size_t p = 0; p < 3; p++)
				siblings += check_oracle(&t, pol, MANY_SELF, AF_INET, (const uint8_t *)&a,
							 ports[p]) == VMSHIM_SIBLING;
		}
	}
	/* Every /48 2001:db8:0..403::, with its first, last and a middle address. */
	for (unsigned net = 0; net < 404; net++) {
		uint8_t first[16] = { 0x20, 0x01, 0x0d, 0xb8, (uint8_t)(net >> 8), (uint8_t)net };
		uint8_t last[16], mid[16];
		memcpy(last, first, 16);
		memset(last + 6, 0xff, 10);
		memcpy(mid, first, 16);
		mid[6] = 0x80;
		mid[15] = 0x42;
		for (size_t p = 0; p < 3; p++) {
			siblings += check_oracle(&t, pol, MANY_SELF, AF_INET6, first, ports[p]) ==
				    VMSHIM_SIBLING;
			siblings += check_oracle(&t, pol, MANY_SELF, AF_INET6, last, ports[p]) ==
				    VMSHIM_SIBLING;
			siblings += check_oracle(&t, pol, MANY_SELF, AF_INET6, mid, ports[p]) ==
				    VMSHIM_SIBLING;
		}
	}
	/* The single IPv6 addresses, and their neighbours. */
	for (unsigned i = 0; i <= MANY + 1; i++) {
		uint8_t a[16] = { 0x20, 0x01, 0x0d, 0xb8, [13] = 1, [14] = (uint8_t)(i >> 8),
				  [15] = (uint8_t)i };
		for (size_t p = 0; p < 3; p++)
			siblings += check_oracle(&t, pol, MANY_SELF, AF_INET6, a, ports[p]) ==
				    VMSHIM_SIBLING;
	}
	/* 199 siblings; IPv4: the 7 hosts of each /24 and the single address; IPv6: 3 addresses
	 * of each /48 and the single one; port 80 always, 443 for the 179 without own rules. */
	assert_int_equal(siblings, (7 + 1 + 3 + 1) * (199 + 179));
	/* A few spelt out. p57 (self) owns /24 number 322 (198.19.66.0/24) and 198.19.67.1;
	 * p0 owns 198.18.0.0/24 and has its own rules; p1 owns /24 number 146. */
	const uint32_t me = 1024 + MANY_SELF * VMSHIM_PORT_BLOCK;
	expect_sibling(&t, "198.18.0.77", 80, 10, 1024, me, 321, "198.19.67.1");
	expect_direct(&t, "198.18.0.77", 443);
	expect_sibling(&t, "198.18.146.255", 443, 11, 1024 + VMSHIM_PORT_BLOCK, me, 321,
		       "198.19.67.1");
	expect_sibling(&t, "198.18.147.1", 443, 11, 1024 + VMSHIM_PORT_BLOCK, me, 321,
		       "198.19.67.1");
	expect_direct(&t, "198.18.147.0", 443);
	expect_direct(&t, "198.18.147.2", 443);
	expect_direct(&t, "198.19.66.5", 443);
	expect_direct(&t, "198.19.67.1", 443);
	expect_sibling(&t, "2001:db8:94::", 443, 11, 1024 + VMSHIM_PORT_BLOCK, me, 321,
		       "2001:db8::1:3a");
	expect_sibling(&t, "2001:db8::1:2", 443, 11, 1024 + VMSHIM_PORT_BLOCK, me, 321,
		       "2001:db8::1:3a");
	free(t.body);
	policy_free(pol);
}
