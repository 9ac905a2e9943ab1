/* Unit tests of the decision table: table_build() (policy/table_build.c) turns a policy into a
 * body, vmshim_table_route() and vmshim_table_self_exposes() (common/table.c) read it.
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

#include "fixture.h"

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

	t.body = table_build(pol, self, NULL, &t.size);
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
	const struct policy_prefix *mine = stand_for(me, family);
	assert_int_equal(r.cid, dst->cid);
	assert_int_equal(r.port, vmshim_listen_port(dst->vsock_base, family == AF_INET6, port));
	assert_int_equal(r.source_base, me->vsock_base + VMSHIM_SOURCE_OFFSET);
	assert_int_equal(r.timeout_ms, pol->connect_timeout_ms);
	assert_int_equal(r.has_self_addr, mine != NULL);
	if (mine)
		assert_memory_equal(r.self_addr, mine->addr, family == AF_INET ? 4 : 16);
	assert_int_equal(r.half_close, !policy_port_allowed(&pol->without_half_close, port));
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
	assert_int_equal(b->n_portsets, 2 * N_BASIC + 1);
	assert_int_equal(b->without_half_close, 2 * N_BASIC);
	assert_int_equal(b->n_ranges4, 9); /* alpha 2, beta 2, gamma 2, epsilon 1, zeta 2 */
	assert_int_equal(b->n_ranges6, 5); /* alpha 1, beta 2, delta 2 */
	assert_int_equal(b->peers_off % 8, 0);
	assert_int_equal(b->ranges4_off % 8, 0);
	assert_int_equal(b->ranges6_off % 8, 0);
	assert_int_equal(b->portsets_off % 8, 0);
	assert_true(b->peers_off >= sizeof *b);
	assert_true(b->ranges4_off >= b->peers_off + N_BASIC * sizeof(struct vmshim_table_peer));
	assert_true(b->ranges6_off >= b->ranges4_off + 9 * sizeof(struct vmshim_range4));
	assert_true(b->portsets_off >= b->ranges6_off + 5 * sizeof(struct vmshim_range6));
	assert_int_equal(b->size, b->portsets_off + (2 * N_BASIC + 1) * VMSHIM_PORTSET_WORDS * 8);

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
		assert_true(p[i].portset6 < b->n_portsets);
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
			if (stand_for(peer, AF_INET))
				check_oracle(&t, pol, ALPHA, AF_INET, stand_for(peer, AF_INET)->addr, (uint16_t)port);
			if (stand_for(peer, AF_INET6))
				check_oracle(&t, pol, ALPHA, AF_INET6, stand_for(peer, AF_INET6)->addr, (uint16_t)port);
		}
	}
	free(t.body);
	policy_free(pol);
}

/* `without-half-close 80, 2000-2001`: only those ports may take a relay path that loses
 * half-closes; every other asks the relay for one that carries them. */
static void test_route_half_close(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table t = build(pol, ALPHA);
	struct vmshim_route r;

	assert_int_equal(route(&t, "198.18.0.2", 80, &r), VMSHIM_SIBLING);
	assert_int_equal(r.half_close, 0);
	assert_int_equal(route(&t, "198.18.0.2", 443, &r), VMSHIM_SIBLING);
	assert_int_equal(r.half_close, 1);
	assert_int_equal(route(&t, "2001:db8::4", 2001, &r), VMSHIM_SIBLING);
	assert_int_equal(r.half_close, 0);
	assert_int_equal(route(&t, "198.18.0.3", 2002, &r), VMSHIM_SIBLING);
	assert_int_equal(r.half_close, 1);
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
			if (stand_for(peer, AF_INET))
				assert_int_equal(check_oracle(&t, pol, -1, AF_INET, stand_for(peer, AF_INET)->addr,
							      (uint16_t)port),
						 VMSHIM_DIRECT);
			if (stand_for(peer, AF_INET6))
				assert_int_equal(check_oracle(&t, pol, -1, AF_INET6, stand_for(peer, AF_INET6)->addr,
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

/* --- prefix lengths -------------------------------------------------------------------- */

/* Checks the first, last, a middle address of each prefix of pol, and the addresses just
 * outside it on both sides, against the oracle. Returns how many addresses were checked. */
static unsigned check_prefix_edges(const struct table *t, const struct policy *pol, int self,
				   uint16_t port)
{
	unsigned n = 0;

	for (size_t i = 0; i < pol->n_peers; i++)
		for (size_t j = 0; j < pol->peers[i].n_prefixes; j++) {
			const struct policy_prefix *p = &pol->peers[i].prefixes[j];
			unsigned bytes = p->family == AF_INET ? 4 : 16;
			uint8_t first[16] = { 0 }, last[16] = { 0 }, a[16];
			int want = self < 0 || (int)i == self ? VMSHIM_DIRECT : VMSHIM_SIBLING;

			prefix_bounds(p->addr, p->len, bytes, first, last);
			assert_memory_equal(first, p->addr, bytes); /* no host bits */
			assert_int_equal(check_oracle(t, pol, self, p->family, first, port), want);
			assert_int_equal(check_oracle(t, pol, self, p->family, last, port), want);
			memcpy(a, first, 16);
			if (p->len < bytes * 8) { /* a middle address */
				a[p->len / 8] ^= (uint8_t)(0x80 >> (p->len % 8));
				a[bytes - 1] ^= 0x01;
				assert_int_equal(check_oracle(t, pol, self, p->family, a, port), want);
			}
			memcpy(a, first, 16);
			if (!addr_is(a, bytes, 0x00)) {
				addr_dec(a, bytes);
				check_oracle(t, pol, self, p->family, a, port);
			}
			memcpy(a, last, 16);
			if (!addr_is(a, bytes, 0xff)) {
				addr_inc(a, bytes);
				check_oracle(t, pol, self, p->family, a, port);
			}
			n += 5;
		}
	return n;
}

static void test_v6_prefix_lengths(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("v6lengths.policy");
	static const unsigned want_lens[] = { 33, 40, 47, 63, 64, 65, 66, 96, 100, 126, 127, 128 };
	int seen[129] = { 0 };

	for (size_t i = 0; i < pol->n_peers; i++)
		for (size_t j = 0; j < pol->peers[i].n_prefixes; j++)
			seen[pol->peers[i].prefixes[j].len]++;
	for (size_t i = 0; i < sizeof want_lens / sizeof want_lens[0]; i++)
		assert_true(seen[want_lens[i]] > 0);

	for (int self = -1; self < 3; self++) {
		struct table t = build(pol, self);
		assert_true(check_prefix_edges(&t, pol, self, 1000) > 100);
		free(t.body);
	}

	/* Spelt out, self = me: adjacent prefixes of different peers across the 64-bit halves. */
	struct table t = build(pol, 0);
	struct vmshim_route r;
	assert_int_equal(route(&t, "2001:db8:1:5:7fff:ffff:ffff:ffff", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 8); /* p65 */
	assert_int_equal(route(&t, "2001:db8:1:5:8000::", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 9); /* p66 */
	assert_int_equal(route(&t, "2001:db8:1:5:bfff:ffff:ffff:ffff", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 9);
	expect_direct(&t, "2001:db8:1:5:c000::", 1);
	assert_int_equal(route(&t, "2001:db8:1:3:ffff:ffff:ffff:ffff", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 6); /* p63 */
	assert_int_equal(route(&t, "2001:db8:1:4::", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 7); /* p64 */
	assert_int_equal(route(&t, "2001:db8:1:4:ffff:ffff:ffff:ffff", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 7);
	assert_int_equal(route(&t, "2001:db8:1:5::", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 8);
	expect_direct(&t, "2001:db8:1:1:ffff:ffff:ffff:ffff", 1);
	assert_int_equal(route(&t, "2001:db8:1:7::1", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 11); /* p127 */
	assert_int_equal(route(&t, "2001:db8:1:7::2", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 12); /* p128 */
	expect_direct(&t, "2001:db8:1:7::3", 1);
	assert_int_equal(route(&t, "2001:db8:1:7::7", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 12);
	expect_direct(&t, "2001:db8:1:7::8", 1);
	assert_int_equal(route(&t, "2001:db8:1:8::1fff:ffff", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 14); /* p100, two adjacent /100s */
	expect_direct(&t, "2001:db8:1:8::2000:0", 1);
	expect_direct(&t, "2001:db8:1:7:ffff:ffff:ffff:ffff", 1);
	assert_int_equal(route(&t, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1, &r), VMSHIM_SIBLING);
	assert_int_equal(r.cid, 4); /* p33 runs to the end of 2001:db8::/32 */
	expect_direct(&t, "2001:db9::", 1);
	expect_direct(&t, "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", 1);
	free(t.body);
	policy_free(pol);
}

/* Every prefix length of both families, in a policy built here: no valid policy file can
 * hold the short ones inside the documentation ranges. The prefix is a fixed bit pattern cut
 * to the length; this guest's single address differs from it in the first bit. */
static void check_length(int family, unsigned len)
{
	static const uint8_t pattern[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xa5, 0xa5, 0x5a, 0x5a,
					     0xc3, 0xc3, 0x3c, 0x3c, 0x96, 0x96, 0x69, 0x69 };
	static const uint8_t pattern4[4] = { 198, 18, 0xa5, 0x5a };
	unsigned bytes = family == AF_INET ? 4 : 16;
	struct policy_prefix pre[2] = { { .family = family, .len = bytes * 8 },
					{ .family = family, .len = len } };
	struct policy_peer peers[2] = { { .cid = 3, .vsock_base = 1048576 },
					{ .cid = 4, .vsock_base = 2000000 } };
	struct policy pol = { .peers = peers, .n_peers = 2, .self = 0, .connect_timeout_ms = 9 };
	uint8_t first[16] = { 0 }, last[16] = { 0 }, a[16];

	memcpy(pre[0].addr, family == AF_INET ? pattern4 : pattern, bytes);
	pre[0].addr[0] ^= 0x80;
	prefix_bounds(family == AF_INET ? pattern4 : pattern, len, bytes, first, last);
	memcpy(pre[1].addr, first, bytes);
	for (int i = 0; i < 2; i++) {
		peers[i].prefixes = &pre[i];
		peers[i].n_prefixes = 1;
		memset(peers[i].ports.allowed, 0xff, sizeof peers[i].ports.allowed);
	}
	struct table t = build(&pol, 0);

	/* The stored range is the prefix's first and last address. */
	if (family == AF_INET) {
		const struct vmshim_range4 *r = (const void *)((const char *)t.body + t.body->ranges4_off);
		assert_int_equal(t.body->n_ranges4, 2);
		const struct vmshim_range4 *mine = r[0].peer == 1 ? &r[0] : &r[1];
		uint32_t f, l;
		memcpy(&f, first, 4);
		memcpy(&l, last, 4);
		assert_int_equal(mine->peer, 1);
		assert_int_equal(mine->first, ntohl(f));
		assert_int_equal(mine->last, ntohl(l));
	} else {
		const struct vmshim_range6 *r = (const void *)((const char *)t.body + t.body->ranges6_off);
		assert_int_equal(t.body->n_ranges6, 2);
		const struct vmshim_range6 *mine = r[0].peer == 1 ? &r[0] : &r[1];
		uint64_t v[4] = { 0 };
		for (int i = 0; i < 8; i++) {
			v[0] = v[0] << 8 | first[i];
			v[1] = v[1] << 8 | first[8 + i];
			v[2] = v[2] << 8 | last[i];
			v[3] = v[3] << 8 | last[8 + i];
		}
		assert_int_equal(mine->peer, 1);
		if (mine->first_hi != v[0] || mine->first_lo != v[1] || mine->last_hi != v[2] ||
		    mine->last_lo != v[3])
			fail_msg("/%u: range %016llx%016llx..%016llx%016llx, want %016llx%016llx.."
				 "%016llx%016llx",
				 len, (unsigned long long)mine->first_hi,
				 (unsigned long long)mine->first_lo, (unsigned long long)mine->last_hi,
				 (unsigned long long)mine->last_lo, (unsigned long long)v[0],
				 (unsigned long long)v[1], (unsigned long long)v[2],
				 (unsigned long long)v[3]);
	}

	/* Lookups at the edges and inside. */
	assert_int_equal(check_oracle(&t, &pol, 0, family, first, 22), VMSHIM_SIBLING);
	assert_int_equal(check_oracle(&t, &pol, 0, family, last, 22), VMSHIM_SIBLING);
	assert_int_equal(check_oracle(&t, &pol, 0, family,
				      family == AF_INET ? pattern4 : pattern, 22),
			 VMSHIM_SIBLING);
	memcpy(a, first, 16);
	if (!addr_is(a, bytes, 0x00)) {
		addr_dec(a, bytes);
		assert_int_equal(check_oracle(&t, &pol, 0, family, a, 22), VMSHIM_DIRECT);
	}
	memcpy(a, last, 16);
	if (!addr_is(a, bytes, 0xff)) {
		addr_inc(a, bytes);
		assert_int_equal(check_oracle(&t, &pol, 0, family, a, 22), VMSHIM_DIRECT);
	}
	/* A host part of alternating bits, and one around the 64-bit boundary. */
	for (unsigned bit = len; bit < bytes * 8; bit++) {
		memcpy(a, first, 16);
		a[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
		assert_int_equal(check_oracle(&t, &pol, 0, family, a, 22), VMSHIM_SIBLING);
	}
	for (unsigned bit = 0; bit < len; bit++) { /* one network bit flipped: outside */
		memcpy(a, first, 16);
		a[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
		assert_int_equal(check_oracle(&t, &pol, 0, family, a, 22), VMSHIM_DIRECT);
	}
	free(t.body);
}

static void test_all_prefix_lengths(void **state)
{
	(void)state;
	for (unsigned len = 1; len <= 32; len++)
		check_length(AF_INET, len);
	for (unsigned len = 1; len <= 128; len++)
		check_length(AF_INET6, len);
}

/* --- corrupt bodies -------------------------------------------------------------------- */

/* Destinations and ports probed on every corrupt body, with self = alpha in basic.policy;
 * then self_exposes for two ports. An intact body answers "SSSSSDDDDSD". */
static const struct {
	const char *addr;
	uint16_t port;
} probes[] = {
	{ "198.18.0.2", 80 },	 /* beta */
	{ "198.18.2.9", 8000 },	 /* beta's /24 */
	{ "198.18.0.3", 2000 },	 /* gamma */
	{ "2001:db8::2", 443 },	 /* beta */
	{ "2001:db8:4::1", 2000 }, /* delta's /64 */
	{ "198.18.0.1", 2000 },	 /* self */
	{ "198.18.9.9", 80 },	 /* nobody */
	{ "2001:db8::99", 80 },	 /* nobody */
	{ "2001:db8::1", 80 },	 /* self */
};
#define N_PROBES (sizeof probes / sizeof probes[0])
#define N_VERDICTS (N_PROBES + 2)
#define INTACT "SSSSSDDDDSD"

/* The verdicts on body (capacity bytes) as a string of S, D and T. */
static void verdicts(const struct vmshim_table_body *body, uint32_t capacity,
		     char out[N_VERDICTS + 1])
{
	static const char letter[] = { 'T', 'D', 'S' };

	for (size_t i = 0; i < N_VERDICTS; i++) {
		enum vmshim_verdict v;
		if (i < N_PROBES) {
			uint8_t addr[16];
			struct vmshim_route r;
			int family = parse_addr(probes[i].addr, addr);
			v = vmshim_table_route(body, capacity, family, addr, probes[i].port, &r);
		} else {
			v = vmshim_table_self_exposes(body, capacity, i == N_PROBES ? 1024 : 5432);
		}
		if (v < VMSHIM_TORN || v > VMSHIM_SIBLING)
			fail_msg("verdict %d out of range", v);
		out[i] = letter[v + 1];
	}
	out[N_VERDICTS] = '\0';
}

/* want: one letter per verdict; '?' accepts any. */
static void assert_verdicts(const char *what, const char *got, const char *want)
{
	for (size_t i = 0; i < N_VERDICTS; i++)
		if (want[i] != '?' && want[i] != got[i])
			fail_msg("%s: verdicts %s, want %s", what, got, want);
}

enum target {
	BODY,	/* a field of the body header, at off */
	PEER,	/* a field of peer idx, at off */
	R4PEER, /* the peer of every IPv4 range */
	R6PEER, /* the peer of every IPv6 range */
};

enum how {
	SET,	   /* value */
	ADD,	   /* current + value */
	SIZE_PLUS, /* body size + value */
	FIT4,	   /* as many IPv4 ranges as fit in the body, + value */
};

struct corruption {
	const char *name;
	enum target target;
	size_t off;
	uint32_t idx;
	enum how how;
	int64_t value;
	const char *want;
};

#define B(field) BODY, offsetof(struct vmshim_table_body, field), 0
#define P(i, field) PEER, offsetof(struct vmshim_table_peer, field), i

static const struct corruption corruptions[] = {
	{ "nothing", B(size), ADD, 0, INTACT },
	{ "size > capacity", B(size), SIZE_PLUS, 1, "TTTTTTTTTTT" },
	{ "size huge", B(size), SET, UINT32_MAX, "TTTTTTTTTTT" },
	{ "size 0", B(size), SET, 0, "TTTTTTTTTTT" },
	{ "size just the header", B(size), SET, sizeof(struct vmshim_table_body), "TTTTTTTTTTT" },
	{ "size short of the portsets", B(size), SIZE_PLUS, -8, "TTTTTDDDDTT" },
	{ "n_ranges4 huge", B(n_ranges4), SET, UINT32_MAX, "TTTSSTTDDSD" },
	{ "n_ranges4 * 12 wraps 32 bits", B(n_ranges4), SET, 0x15555556, "TTTSSTTDDSD" },
	{ "n_ranges4 all that fit", B(n_ranges4), FIT4, 0, "?????????SD" },
	{ "n_ranges4 one more than fit", B(n_ranges4), FIT4, 1, "TTTSSTTDDSD" },
	{ "ranges4_off at size", B(ranges4_off), SIZE_PLUS, 0, "TTTSSTTDDSD" },
	{ "ranges4_off huge", B(ranges4_off), SET, 0xfffffff8u, "TTTSSTTDDSD" },
	{ "ranges4_off odd", B(ranges4_off), ADD, 1, "TTTSSTTDDSD" },
	{ "ranges4_off 4-aligned", B(ranges4_off), ADD, 4, "TTTSSTTDDSD" },
	{ "ranges4_off 0 (the header)", B(ranges4_off), SET, 0, "?????????SD" },
	{ "n_ranges6 huge", B(n_ranges6), SET, UINT32_MAX, "SSSTTDDTTSD" },
	{ "n_ranges6 * 40 wraps 32 bits", B(n_ranges6), SET, 0x6666667, "SSSTTDDTTSD" },
	{ "ranges6_off at size", B(ranges6_off), SIZE_PLUS, 0, "SSSTTDDTTSD" },
	{ "ranges6_off huge", B(ranges6_off), SET, 0xfffffff8u, "SSSTTDDTTSD" },
	{ "ranges6_off 4-aligned", B(ranges6_off), ADD, 4, "SSSTTDDTTSD" },
	{ "ranges6_off odd", B(ranges6_off), ADD, 3, "SSSTTDDTTSD" },
	{ "n_peers huge", B(n_peers), SET, UINT32_MAX, "TTTTTDDDDTT" },
	{ "n_peers * 36 wraps 32 bits", B(n_peers), SET, 0x71c71c8, "TTTTTDDDDTT" },
	{ "n_peers 0", B(n_peers), SET, 0, "TTTTTDDDDTT" },
	{ "n_peers 1: only self", B(n_peers), SET, 1, "TTTTTDDDDSD" },
	{ "peers_off at size", B(peers_off), SIZE_PLUS, 0, "TTTTTDDDDTT" },
	{ "peers_off huge", B(peers_off), SET, 0xfffffff8u, "TTTTTDDDDTT" },
	{ "peers_off 4-aligned", B(peers_off), ADD, 4, "TTTTTDDDDTT" },
	{ "peers_off odd", B(peers_off), ADD, 1, "TTTTTDDDDTT" },
	{ "peers_off 0 (the header)", B(peers_off), SET, 0, "?????DDDD??" },
	{ "n_portsets huge", B(n_portsets), SET, UINT32_MAX, "TTTTTDDDDTT" },
	{ "n_portsets * 8192 wraps 32 bits", B(n_portsets), SET, 0x80000, "TTTTTDDDDTT" },
	{ "n_portsets 0", B(n_portsets), SET, 0, "TTTTTDDDDTT" },
	{ "portsets_off at size", B(portsets_off), SIZE_PLUS, 0, "TTTTTDDDDTT" },
	{ "portsets_off one word on", B(portsets_off), ADD, 8, "TTTTTDDDDTT" },
	{ "portsets_off 4-aligned", B(portsets_off), ADD, 4, "TTTTTDDDDTT" },
	{ "portsets_off huge", B(portsets_off), SET, 0xfffffff8u, "TTTTTDDDDTT" },
	{ "beta's portset out of range", P(BETA, portset), SET, 2 * N_BASIC + 1, "TTSSSDDDDSD" },
	{ "beta's IPv6 portset out of range", P(BETA, portset6), SET, 2 * N_BASIC + 1, "SSSTSDDDDSD" },
	{ "beta's portset huge", P(BETA, portset), SET, UINT32_MAX, "TTSSSDDDDSD" },
	{ "beta's portset * 8192 wraps", P(BETA, portset), SET, 0x80000, "TTSSSDDDDSD" },
	{ "self's portset out of range", P(ALPHA, portset), SET, 2 * N_BASIC + 1, "SSSSSDDDDTT" },
	{ "without_half_close out of range", B(without_half_close), SET, 2 * N_BASIC + 1, "TTTTTDDDDSD" },
	{ "without_half_close huge", B(without_half_close), SET, UINT32_MAX, "TTTTTDDDDSD" },
	{ "IPv4 owners out of range", R4PEER, 0, 0, SET, N_BASIC, "TTTSSTDDDSD" },
	{ "IPv4 owners huge", R4PEER, 0, 0, SET, UINT32_MAX - 1, "TTTSSTDDDSD" },
	{ "IPv4 owners: nobody", R4PEER, 0, 0, SET, UINT32_MAX, "DDDSSDDDDSD" },
	{ "IPv6 owners out of range", R6PEER, 0, 0, SET, N_BASIC, "SSSTTDDDTSD" },
	{ "IPv6 owners: nobody", R6PEER, 0, 0, SET, UINT32_MAX, "SSSDDDDDDSD" },
	{ "self out of range", B(self), SET, N_BASIC, "TTTTTTDDTTT" },
	{ "self huge", B(self), SET, UINT32_MAX - 1, "TTTTTTDDTTT" },
	{ "self none", B(self), SET, VMSHIM_NO_SELF, "DDDDDDDDDDD" },
};

static void corrupt(const struct table *t, struct vmshim_table_body *b, const struct corruption *c)
{
	uint32_t cur, v;
	unsigned char *base = (unsigned char *)b;

	switch (c->target) {
	case BODY:
		break;
	case PEER:
		base += b->peers_off + c->idx * sizeof(struct vmshim_table_peer);
		break;
	case R4PEER:
	case R6PEER: {
		uint32_t n = c->target == R4PEER ? b->n_ranges4 : b->n_ranges6;
		size_t sz = c->target == R4PEER ? sizeof(struct vmshim_range4) : sizeof(struct vmshim_range6);
		size_t off = (c->target == R4PEER ? b->ranges4_off : b->ranges6_off) +
			     (c->target == R4PEER ? offsetof(struct vmshim_range4, peer)
						  : offsetof(struct vmshim_range6, peer));
		v = (uint32_t)c->value;
		for (uint32_t i = 0; i < n; i++)
			memcpy((unsigned char *)b + off + i * sz, &v, 4);
		return;
	}
	}
	memcpy(&cur, base + c->off, 4);
	switch (c->how) {
	case SET:
		v = (uint32_t)c->value;
		break;
	case ADD:
		v = cur + (uint32_t)c->value;
		break;
	case SIZE_PLUS:
		v = t->size + (uint32_t)c->value;
		break;
	case FIT4:
	default:
		v = (t->size - b->ranges4_off) / (uint32_t)sizeof(struct vmshim_range4) + (uint32_t)c->value;
		break;
	}
	memcpy(base + c->off, &v, 4);
}

static void test_corrupt_bodies(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table t = build(pol, ALPHA);
	char got[N_VERDICTS + 1];

	for (size_t i = 0; i < sizeof corruptions / sizeof corruptions[0]; i++) {
		const struct corruption *c = &corruptions[i];
		struct vmshim_table_body *b = exact_copy(&t, t.size);
		corrupt(&t, b, c);
		verdicts(b, t.size, got);
		assert_verdicts(c->name, got, c->want);
		free(b);
	}
	free(t.body);
	policy_free(pol);
}

/* Capacities that cannot hold the body, or not even its header, and some that hold more. */
static void test_capacities(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table t = build(pol, ALPHA);
	const uint32_t header = sizeof(struct vmshim_table_body);
	const uint32_t caps[] = { 0, 1, 4, header - 1, header, header + 8, t.body->peers_off + 8,
				  t.body->portsets_off, t.size - 8, t.size - 1 };
	char got[N_VERDICTS + 1];

	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		char what[64];
		struct vmshim_table_body *b = exact_copy(&t, caps[i]);
		snprintf(what, sizeof what, "capacity %u of %u", caps[i], t.size);
		verdicts(b, caps[i], got);
		assert_verdicts(what, got, "TTTTTTTTTTT");
		free(b);
	}
	/* The same body in a bigger mapping answers as usual... */
	struct vmshim_table_body *b = exact_copy(&t, t.size + 4096);
	verdicts(b, t.size + 4096, got);
	assert_verdicts("capacity size + 4096", got, INTACT);
	/* ... and still within its size only when size grows into the spare room. */
	b->size = t.size + 4096;
	b->n_ranges4 = (b->size - b->ranges4_off) / (uint32_t)sizeof(struct vmshim_range4);
	verdicts(b, t.size + 4096, got);
	assert_verdicts("size grown to capacity", got, "?????????SD");
	free(b);
	free(t.body);
	policy_free(pol);
}

/* Ranges out of order (a half-written sort): lookups may miss, but stay inside. */
static void test_unsorted_ranges(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table t = build(pol, ALPHA);
	struct vmshim_table_body *b = exact_copy(&t, t.size);
	struct vmshim_range4 *r4 = (void *)((char *)b + b->ranges4_off);
	struct vmshim_range6 *r6 = (void *)((char *)b + b->ranges6_off);
	char got[N_VERDICTS + 1];

	for (uint32_t i = 0; i < b->n_ranges4 / 2; i++) {
		struct vmshim_range4 tmp = r4[i];
		r4[i] = r4[b->n_ranges4 - 1 - i];
		r4[b->n_ranges4 - 1 - i] = tmp;
	}
	for (uint32_t i = 0; i < b->n_ranges6 / 2; i++) {
		struct vmshim_range6 tmp = r6[i];
		r6[i] = r6[b->n_ranges6 - 1 - i];
		r6[b->n_ranges6 - 1 - i] = tmp;
	}
	r4[0].first = UINT32_MAX; /* an inverted range */
	r4[0].last = 0;
	verdicts(b, t.size, got);
	assert_verdicts("reversed ranges", got, "?????????SD");
	free(b);
	free(t.body);
	policy_free(pol);
}

/* --- fuzzing --------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint32_t interesting(const struct table *t)
{
	static const uint32_t values[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 36, 40, 44, 48, 4096,
					   8192, 0x80000, 0x15555556, 0x6666667, 0x71c71c8,
					   0x7fffffff, 0x80000000u, 0xfffffff8u, UINT32_MAX - 1,
					   UINT32_MAX };
	switch (rng() % 4) {
	case 0:
		return t->size + (uint32_t)(rng() % 17) - 8;
	case 1:
		return (uint32_t)rng();
	default:
		return values[rng() % (sizeof values / sizeof values[0])];
	}
}

static void test_fuzz(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table t = build(pol, ALPHA);
	const uint32_t arrays_end = t.body->portsets_off; /* header, peers and ranges */
	unsigned counts[3] = { 0 };

	rng_state = 0x9e3779b97f4a7c15ull;
	for (int iter = 0; iter < 2000; iter++) {
		/* Mostly the exact size; sometimes a capacity a little short or long. */
		uint32_t cap = t.size;
		if (rng() % 8 == 0)
			cap = t.size + (uint32_t)(rng() % 64) - 32;
		struct vmshim_table_body *b = exact_copy(&t, cap);
		unsigned char *bytes = (unsigned char *)b;
		uint32_t limit = cap < t.size ? cap : t.size;
		unsigned n = 1 + (unsigned)(rng() % 6);

		for (unsigned k = 0; k < n; k++) {
			switch (rng() % 4) {
			case 0: /* any byte */
				bytes[rng() % limit] ^= (uint8_t)(1 + rng() % 255);
				break;
			case 1: /* a byte of the header, peers or ranges */
				bytes[rng() % (arrays_end < limit ? arrays_end : limit)] ^=
					(uint8_t)(1 + rng() % 255);
				break;
			case 2: { /* a header field */
				uint32_t v = interesting(&t);
				memcpy(bytes + 4 * (rng() % 11), &v, 4);
				break;
			}
			default: { /* a 32-bit word of the peers or ranges */
				uint32_t v = interesting(&t);
				uint32_t word = (uint32_t)(rng() % ((arrays_end - 44) / 4));
				if (44 + 4 * word + 4 <= limit)
					memcpy(bytes + 44 + 4 * word, &v, 4);
				break;
			}
			}
		}
		char got[N_VERDICTS + 1];
		verdicts(b, cap, got);
		for (int k = 0; k < 8; k++) { /* and random destinations in the policy's space */
			uint8_t a[16] = { 198, (uint8_t)(18 + rng() % 2), (uint8_t)(rng() % 8),
					  (uint8_t)rng() };
			struct vmshim_route r;
			int family = AF_INET;
			if (k % 2) {
				static const uint8_t net[4] = { 0x20, 0x01, 0x0d, 0xb8 };
				memcpy(a, net, 4);
				for (int i = 4; i < 16; i++)
					a[i] = rng() % 3 ? 0 : (uint8_t)rng();
				family = AF_INET6;
			}
			enum vmshim_verdict v = vmshim_table_route(b, cap, family, a, (uint16_t)rng(), &r);
			assert_true(v >= VMSHIM_TORN && v <= VMSHIM_SIBLING);
			counts[v + 1]++;
		}
		free(b);
	}
	/* The corruptions must not all have been fatal: lookups still run deep. */
	print_message("fuzz: %u torn, %u direct, %u sibling\n", counts[0], counts[1], counts[2]);
	assert_true(counts[0] > 0);
	assert_true(counts[1] > 0);
	assert_true(counts[2] > 0);
	free(t.body);
	policy_free(pol);
}

/* With views (helperd's discovery), a sibling gets routes only while it is up, only to what
 * it owns, and only to the ports it serves (and the policy allows). */
static void test_views(void **state)
{
	(void)state;
	struct policy *pol = load_fixture("basic.policy");
	struct table_peer_view views[N_BASIC] = {0};
	static uint64_t served4[POLICY_PORT_WORDS], served6[POLICY_PORT_WORDS];
	struct policy_prefix beta_owns = {.family = AF_INET, .len = 32, .addr = {198, 18, 0, 2}};
	uint8_t addr[16];
	struct vmshim_route r;
	uint32_t size;

	served4[80 / 64] |= 1ull << (80 % 64);
	views[ALPHA] = (struct table_peer_view){.owned = pol->peers[ALPHA].prefixes,
						.n_owned = pol->peers[ALPHA].n_prefixes};
	views[BETA] = (struct table_peer_view){.up = 0, .owned = &beta_owns, .n_owned = 1,
					       .served4 = served4, .served6 = served6};
	struct vmshim_table_body *b = table_build(pol, ALPHA, views, &size);
	parse_addr("198.18.0.2", addr);
	assert_int_equal(vmshim_table_route(b, size, AF_INET, addr, 80, &r), VMSHIM_DIRECT);
	free(b);

	views[BETA].up = 1;
	b = table_build(pol, ALPHA, views, &size);
	assert_int_equal(vmshim_table_route(b, size, AF_INET, addr, 80, &r), VMSHIM_SIBLING);
	assert_int_equal(r.port, pol->peers[BETA].vsock_base + 80);
	assert_int_equal(vmshim_table_route(b, size, AF_INET, addr, 8000, &r), VMSHIM_DIRECT);
	parse_addr("198.18.2.9", addr); /* beta's by policy, but not claimed */
	assert_int_equal(vmshim_table_route(b, size, AF_INET, addr, 80, &r), VMSHIM_DIRECT);
	parse_addr("2001:db8::2", addr); /* nor this */
	assert_int_equal(vmshim_table_route(b, size, AF_INET6, addr, 443, &r), VMSHIM_DIRECT);
	/* This guest's own ports: what the policy allows, served or not. */
	assert_int_equal(vmshim_table_self_exposes(b, size, 2000), VMSHIM_SIBLING);
	free(b);
	policy_free(pol);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_layout),
		cmocka_unit_test(test_route_to_siblings),
		cmocka_unit_test(test_route_port_rules),
		cmocka_unit_test(test_route_half_close),
		cmocka_unit_test(test_route_prefix_edges),
		cmocka_unit_test(test_route_self_and_unknown),
		cmocka_unit_test(test_route_other_selves),
		cmocka_unit_test(test_self_exposes),
		cmocka_unit_test(test_empty_policy),
		cmocka_unit_test(test_many_peers),
		cmocka_unit_test(test_v6_prefix_lengths),
		cmocka_unit_test(test_all_prefix_lengths),
		cmocka_unit_test(test_corrupt_bodies),
		cmocka_unit_test(test_capacities),
		cmocka_unit_test(test_unsorted_ranges),
		cmocka_unit_test(test_fuzz),
		cmocka_unit_test(test_views),
	};
	return cmocka_run_group_tests_name("table", tests, NULL, NULL);
}
