/* Unit tests of the policy parser (policy/FORMAT.md) against the files in
 * tests/unit/fixtures/policy: valid/ files are loaded and their values checked; each invalid/
 * file must be rejected with "FILE:LINE: message" at the expected line. Files too big or too
 * odd to keep in git (huge lines, NUL bytes) are written to a temporary file at run time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fixture.h"
#include "owner_check.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "policy.h"
#include "table_build.h"

#define PDIR FIXTURES "/policy"

/* --- helpers --------------------------------------------------------------------------- */

static struct policy *load_valid(const char *name)
{
	char path[512];

	snprintf(path, sizeof path, PDIR "/valid/%s", name);
	return load_path(path);
}

/* Loads path, which must fail at line (0: a file-level error) with phrase in the message. */
static void expect_error(const char *path, unsigned line, const char *phrase)
{
	static int sentinel;
	struct policy *pol = (struct policy *)&sentinel;
	char err[1024], want[512];

	memset(err, 'X', sizeof err);
	assert_int_equal(read_path(path, &pol, err, sizeof err), -1);
	assert_ptr_equal(pol, (struct policy *)&sentinel); /* *out untouched */
	assert_non_null(memchr(err, '\0', sizeof err));
	if (line)
		snprintf(want, sizeof want, "%s:%u: ", path, line);
	else
		snprintf(want, sizeof want, "%s: ", path);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error should start with \"%s\", got \"%s\"", want, err);
	if (!strstr(err, phrase))
		fail_msg("error should say \"%s\", got \"%s\"", phrase, err);
}

static void assert_prefix(const struct policy_prefix *p, const char *addr, unsigned len)
{
	uint8_t want[16] = { 0 };
	int family = strchr(addr, ':') ? AF_INET6 : AF_INET;

	assert_non_null(p);
	assert_int_equal(inet_pton(family, addr, want), 1);
	assert_int_equal(p->family, family);
	assert_int_equal(p->len, len);
	assert_memory_equal(p->addr, want, family == AF_INET ? 4 : 16);
}

/* ports: zero-terminated lists of ports that must be allowed and must not be. */
static void assert_ports(const struct policy_peer *peer, const unsigned *yes, const unsigned *no)
{
	for (; *yes; yes++)
		if (!policy_port_allowed(&peer->ports, *yes))
			fail_msg("peer %s: port %u should be allowed", peer->name, *yes);
	for (; *no; no++)
		if (policy_port_allowed(&peer->ports, *no))
			fail_msg("peer %s: port %u should not be allowed", peer->name, *no);
}

#define PORTS(...) ((const unsigned[]){ __VA_ARGS__, 0 })

static unsigned count_ports(const struct policy_peer *peer)
{
	unsigned n = 0;

	for (unsigned p = 0; p < 65536; p++)
		n += (unsigned)policy_port_allowed(&peer->ports, p);
	return n;
}

/* Writes len bytes to a new temporary file; its name goes into path. */
static void write_temp(char path[64], const char *data, size_t len)
{
	snprintf(path, 64, "/tmp/test_policy_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* --- valid files ----------------------------------------------------------------------- */

static void test_empty_file(void **state)
{
	(void)state;
	struct policy *pol = load_valid("empty.policy");
	assert_int_equal(pol->n_peers, 0);
	assert_int_equal(pol->self, -1);
	assert_int_equal(pol->connect_timeout_ms, POLICY_DEFAULT_CONNECT_TIMEOUT_MS);
	assert_int_equal(policy_find_peer(pol, "alpha"), -1);
	policy_free(pol);
}

static void test_comments_only(void **state)
{
	(void)state;
	struct policy *pol = load_valid("comments_only.policy");
	assert_int_equal(pol->n_peers, 0);
	assert_int_equal(pol->self, -1);
	assert_int_equal(pol->connect_timeout_ms, 1000);
	policy_free(pol);
}

/* The example of FORMAT.md itself. */
static void test_format_example(void **state)
{
	(void)state;
	struct policy *pol = load_valid("format_example.policy");
	assert_int_equal(pol->n_peers, 2);
	assert_int_equal(pol->self, 0);
	assert_int_equal(pol->connect_timeout_ms, 1000);

	const struct policy_peer *a = &pol->peers[0], *b = &pol->peers[1];
	assert_string_equal(a->name, "alpha");
	assert_int_equal(a->line, 8);
	assert_int_equal(a->cid, 3);
	assert_int_equal(a->vsock_base, POLICY_DEFAULT_VSOCK_BASE);
	assert_int_equal(a->n_prefixes, 1);
	assert_prefix(&a->prefixes[0], "198.18.0.1", 32);
	assert_int_equal(a->prefixes[0].line, 10);
	assert_ptr_equal(stand_for(a, AF_INET), &a->prefixes[0]);
	assert_null(stand_for(a, AF_INET6));
	assert_ports(a, PORTS(1024, 8080, 65535, 5431, 5433), PORTS(1, 80, 443, 1023, 5432));

	assert_string_equal(b->name, "beta");
	assert_int_equal(b->line, 12);
	assert_int_equal(b->cid, 4);
	assert_int_equal(b->vsock_base, 2000000);
	assert_int_equal(b->n_prefixes, 3);
	assert_prefix(&b->prefixes[0], "198.18.0.2", 32);
	assert_prefix(&b->prefixes[1], "198.18.2.0", 24);
	assert_prefix(&b->prefixes[2], "2001:db8::2", 128);
	assert_int_equal(b->prefixes[1].line, 14);
	assert_int_equal(b->prefixes[2].line, 15);
	assert_ptr_equal(stand_for(b, AF_INET), &b->prefixes[0]);
	assert_ptr_equal(stand_for(b, AF_INET6), &b->prefixes[2]);
	assert_ports(b, PORTS(80, 443, 8000, 8050, 8100), PORTS(79, 81, 442, 444, 1024, 5432, 7999, 8101, 65535));
	assert_int_equal(count_ports(b), 2 + 101);

	assert_int_equal(policy_find_peer(pol, "beta"), 1);
	assert_int_equal(policy_find_peer(pol, "gamma"), -1);
	policy_free(pol);
}

static void test_comments_everywhere(void **state)
{
	(void)state;
	struct policy *pol = load_valid("comments.policy");
	assert_int_equal(pol->n_peers, 2);
	assert_int_equal(pol->self, 0);
	assert_int_equal(pol->connect_timeout_ms, 250);
	const struct policy_peer *a = &pol->peers[0], *b = &pol->peers[1];
	assert_string_equal(a->name, "alpha");
	assert_int_equal(a->line, 6);
	assert_int_equal(a->cid, 5);
	assert_int_equal(a->n_prefixes, 2);
	assert_prefix(&a->prefixes[0], "198.18.0.1", 32);
	assert_prefix(&a->prefixes[1], "198.18.1.0", 24);
	assert_ports(a, PORTS(80), PORTS(443, 22));
	assert_int_equal(count_ports(a), 1);
	assert_string_equal(b->name, "beta");
	assert_int_equal(b->cid, 6);
	assert_int_equal(b->n_prefixes, 1);
	assert_prefix(stand_for(b, AF_INET6), "2001:db8::6", 128);
	assert_null(stand_for(b, AF_INET));
	assert_int_equal(count_ports(b), 0); /* own rules: deny 22 and no allow */
	policy_free(pol);
}

static void test_commas(void **state)
{
	(void)state;
	struct policy *pol = load_valid("commas.policy");
	const struct policy_peer *a = &pol->peers[0];
	assert_int_equal(a->n_prefixes, 5);
	assert_prefix(&a->prefixes[0], "198.18.0.1", 32);
	assert_prefix(&a->prefixes[1], "198.18.4.0", 24);
	assert_prefix(&a->prefixes[2], "198.18.5.0", 24);
	assert_prefix(&a->prefixes[3], "198.18.6.0", 24);
	assert_prefix(&a->prefixes[4], "2001:db8::1", 128);
	assert_ports(a, PORTS(22, 23, 80, 443, 9000, 10000), PORTS(8080, 9001, 9002, 24));
	assert_int_equal(count_ports(a), 6);
	policy_free(pol);
}

static void test_ipv6(void **state)
{
	(void)state;
	struct policy *pol = load_valid("ipv6.policy");
	assert_int_equal(pol->n_peers, 2);
	const struct policy_peer *six = &pol->peers[0], *both = &pol->peers[1];
	assert_int_equal(six->n_prefixes, 5);
	assert_prefix(&six->prefixes[0], "2001:db8::5", 128);
	assert_prefix(&six->prefixes[1], "2001:db8:1::", 48);
	assert_prefix(&six->prefixes[2], "2001:db8:2:3::", 64);
	assert_prefix(&six->prefixes[3], "2001:db8::7", 128);
	assert_prefix(&six->prefixes[4], "2001:db8:abcd::", 48);
	assert_null(stand_for(six, AF_INET));
	assert_ptr_equal(stand_for(six, AF_INET6), &six->prefixes[0]);
	assert_ports(six, PORTS(22), PORTS(80));
	assert_int_equal(both->n_prefixes, 4);
	assert_prefix(&both->prefixes[0], "2001:db8:ff00::", 40);
	assert_ptr_equal(stand_for(both, AF_INET6), &both->prefixes[1]);
	assert_prefix(stand_for(both, AF_INET6), "2001:db8::9", 128);
	assert_ptr_equal(stand_for(both, AF_INET), &both->prefixes[2]);
	assert_prefix(stand_for(both, AF_INET), "198.18.0.9", 32);
	assert_prefix(&both->prefixes[3], "2001:db8::102:304", 128);
	assert_int_equal(count_ports(both), 0); /* no allow anywhere */
	policy_free(pol);
}

static void test_cid_shared_apart(void **state)
{
	(void)state;
	struct policy *pol = load_valid("cid_shared.policy");
	static const struct {
		const char *name;
		uint32_t cid, base;
	} want[] = {
		{ "ns1", 1, 1048576 }, { "ns2", 1, 1245184 }, { "ns3", 1, 851968 },
		{ "vm", 3, 1048576 },  { "vm2", 3, 2000000 },
	};
	assert_int_equal(pol->n_peers, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_string_equal(pol->peers[i].name, want[i].name);
		assert_int_equal(pol->peers[i].cid, want[i].cid);
		assert_int_equal(pol->peers[i].vsock_base, want[i].base);
	}
	policy_free(pol);
}

static void test_numbers_and_limits(void **state)
{
	(void)state;
	struct policy *pol = load_valid("numbers.policy");
	assert_int_equal(pol->connect_timeout_ms, 60000);
	assert_int_equal(pol->n_peers, 3);
	const struct policy_peer *hex = &pol->peers[0], *top = &pol->peers[1], *low = &pol->peers[2];
	assert_int_equal(hex->cid, 16);
	assert_int_equal(hex->vsock_base, 0x100000);
	assert_ports(hex, PORTS(80, 8080, 8081), PORTS(8082, 0x50 + 1));
	assert_int_equal(top->cid, 4294967294u);
	assert_int_equal(top->vsock_base, 4294770687u);
	assert_int_equal((uint64_t)top->vsock_base + 196607, 4294967294u);
	assert_int_equal(low->cid, 3);
	assert_int_equal(low->vsock_base, 1024);
	assert_ports(low, PORTS(65535), PORTS(65534, 1));
	policy_free(pol);
}

static void test_global_vs_peer_ports(void **state)
{
	(void)state;
	struct policy *pol = load_valid("ports.policy");
	assert_int_equal(pol->n_peers, 4);
	const struct policy_peer *p = pol->peers;
	/* global: allow 1-65535 deny 22 25 */
	assert_ports(&p[0], PORTS(1, 21, 23, 24, 26, 80, 7000, 65535), PORTS(22, 25));
	assert_int_equal(count_ports(&p[0]), 65535 - 2);
	/* deny only: own rules, nothing allowed */
	assert_int_equal(count_ports(&p[1]), 0);
	/* own: allow 22 1000-2000, deny 1500 1990-2010 */
	assert_ports(&p[2], PORTS(22, 1000, 1499, 1501, 1989), PORTS(25, 80, 999, 1500, 1990, 2000, 2001, 65535));
	assert_int_equal(count_ports(&p[2]), 1 + (1989 - 1000 + 1) - 1);
	/* overlapping: allow 100-200 150-300, deny 1-120 290-1000 */
	assert_ports(&p[3], PORTS(121, 200, 201, 289), PORTS(99, 100, 120, 290, 300, 301));
	assert_int_equal(count_ports(&p[3]), 289 - 121 + 1);
	policy_free(pol);
}

static void test_no_allow_means_nothing(void **state)
{
	(void)state;
	struct policy *pol = load_valid("no_allow.policy");
	assert_int_equal(pol->n_peers, 1);
	assert_int_equal(count_ports(&pol->peers[0]), 0);
	policy_free(pol);
}

static void test_timeout_min(void **state)
{
	(void)state;
	struct policy *pol = load_valid("timeout_min.policy");
	assert_int_equal(pol->connect_timeout_ms, 1);
	assert_int_equal(pol->n_peers, 0);
	policy_free(pol);
}

static void test_cid_only(void **state)
{
	(void)state;
	struct policy *pol = load_valid("cid_only.policy");
	assert_int_equal(pol->liveness_ms, 900);
	assert_int_equal(pol->n_peers, 2);
	assert_int_equal(pol->peers[0].n_prefixes, 0);
	assert_null(stand_for(&pol->peers[0], AF_INET));
	assert_int_equal(pol->peers[0].control_port, POLICY_DEFAULT_VSOCK_BASE + 131072);
	assert_int_equal(pol->peers[1].control_port, 5000);
	policy_free(pol);
}

static void test_first_single_address(void **state)
{
	(void)state;
	struct policy *pol = load_valid("first_single.policy");
	const struct policy_peer *a = &pol->peers[0];
	assert_int_equal(a->n_prefixes, 6);
	assert_ptr_equal(stand_for(a, AF_INET), &a->prefixes[2]);
	assert_prefix(stand_for(a, AF_INET), "198.18.0.9", 32);
	assert_int_equal(stand_for(a, AF_INET)->line, 4);
	assert_ptr_equal(stand_for(a, AF_INET6), &a->prefixes[4]);
	assert_prefix(stand_for(a, AF_INET6), "2001:db8::a", 128);
	assert_prefix(&a->prefixes[5], "2001:db8::b", 128);
	policy_free(pol);
}

static void test_self_names_later_peer(void **state)
{
	(void)state;
	struct policy *pol = load_valid("self_last.policy");
	assert_int_equal(pol->self, 1);
	assert_string_equal(pol->peers[pol->self].name, "zeta");
	policy_free(pol);
}

/* The shipped example must stay valid. Tests run from the top of the repo. */
static void test_example_policy(void **state)
{
	(void)state;
	struct policy *pol = load_path("policy/example.policy");
	assert_int_equal(pol->n_peers, 2);
	assert_int_equal(pol->self, policy_find_peer(pol, "web"));
	const struct policy_peer *web = &pol->peers[0], *db = &pol->peers[1];
	assert_string_equal(web->name, "web");
	assert_string_equal(db->name, "db");
	assert_non_null(stand_for(web, AF_INET));
	assert_non_null(stand_for(web, AF_INET6));
	assert_non_null(stand_for(db, AF_INET));
	assert_non_null(stand_for(db, AF_INET6));
	assert_ports(web, PORTS(80, 443, 8080), PORTS(22, 5432, 6379));
	assert_ports(db, PORTS(5432, 6379, 9187), PORTS(80, 443, 8080));
	policy_free(pol);
}

/* Every file in valid/ loads; every file in invalid/ is listed in invalid_cases below. */
struct invalid_case {
	const char *name;
	unsigned line;
	const char *phrase;
};

static const struct invalid_case invalid_cases[] = {
	{ "unknown_keyword", 2, "unknown keyword 'allwo'" },
	{ "keyword_comma", 1, "unknown keyword 'allow,80'" },
	{ "args_cid_two", 2, "cid takes 1 argument, got 2" },
	{ "args_peer_none", 1, "peer takes 1 argument, got 0" },
	{ "args_self_two", 1, "self takes 1 argument, got 2" },
	{ "allow_empty", 1, "allow needs at least one port" },
	{ "address_empty", 3, "address needs at least one address" },
	{ "self_after_peer", 4, "self must come before the first peer (peer alpha at line 1)" },
	{ "timeout_after_peer", 4, "connect-timeout must come before the first peer" },
	{ "cid_outside_peer", 1, "cid outside a peer block" },
	{ "address_outside_peer", 2, "address outside a peer block" },
	{ "vsock_base_outside_peer", 1, "vsock-base outside a peer block" },
	{ "peer_duplicate", 7, "duplicate peer name 'alpha' (first at line 1)" },
	{ "peer_name_bad", 1, "bad peer name 'al/pha'" },
	{ "peer_name_long", 1, "bad peer name" },
	{ "self_name_bad", 1, "bad peer name 'al*pha'" },
	{ "cid_missing", 4, "peer beta has no cid" },
	{ "cid_twice", 4, "cid given twice for peer alpha (first at line 2)" },
	{ "cid_zero", 2, "cid 0 is the hypervisor" },
	{ "cid_two", 2, "cid 2 is the host" },
	{ "cid_any", 2, "VMADDR_CID_ANY" },
	{ "cid_any_decimal", 2, "VMADDR_CID_ANY" },
	{ "cid_33bits", 2, "cid '4294967296' does not fit in 32 bits" },
	{ "cid_huge", 2, "does not fit in 32 bits" },
	{ "cid_junk", 2, "cid '3x' is not a number" },
	{ "cid_negative", 2, "cid '-3' is not a number" },
	{ "cid_hex_empty", 2, "cid '0x' is not a number" },
	{ "vsock_base_low", 3, "vsock-base '1023' is below 1024" },
	{ "vsock_base_high", 3, "vsock-base '4294770688' is too high" },
	{ "vsock_base_twice", 3, "vsock-base given twice for peer alpha (first at line 2)" },
	{ "cid_shared_overlap", 6, "peer ns2 shares cid 1 with peer ns1 (line 1)" },
	{ "cid_shared_default", 4, "both have the default vsock-base" },
	{ "cid_shared_below", 8, "overlap 2000000..2196607 of peer ns1" },
	{ "addr_bad4", 3, "bad IPv4 address '198.18.0.256'" },
	{ "addr_short4", 3, "bad IPv4 address '198.18.1'" },
	{ "addr_bad6", 3, "bad IPv6 address '2001:db8:::1'" },
	{ "addr_zone6", 3, "bad IPv6 address" },
	{ "prefix_len_big4", 3, "prefix length 33 of 198.18.0.0 is out of range 0..32" },
	{ "prefix_len_big6", 3, "out of range 0..128" },
	{ "prefix_len_junk", 3, "prefix length '2x' of 198.18.0.0 is not a number" },
	{ "prefix_len_empty", 3, "missing prefix length" },
	{ "host_bits4", 3, "198.18.1.1/24 has host bits set (the prefix is 198.18.1.0/24)" },
	{ "host_bits6", 3, "2001:db8::1/64 has host bits set (the prefix is 2001:db8::/64)" },
	{ "loopback4", 3, "127.0.0.1 is loopback" },
	{ "loopback4_prefix", 3, "96.0.0.0/3 contains loopback" },
	{ "loopback6", 3, "::1 is loopback" },
	{ "unspecified4", 3, "0.0.0.0 is the unspecified address" },
	{ "unspecified6", 3, ":: is the unspecified address" },
	{ "default_route4", 3, "0.0.0.0/0 contains" },
	{ "multicast4", 3, "224.0.0.251 is multicast" },
	{ "multicast6", 3, "ff02::1 is multicast" },
	{ "mapped6", 3, "is IPv4-mapped IPv6" },
	{ "mapped6_prefix", 4, "IPv4-mapped" },
	{ "broadcast4", 3, "255.255.255.255 is the broadcast address" },
	{ "overlap_across4", 8, "198.18.0.0/16 overlaps 198.18.0.5 of peer alpha (line 3)" },
	{ "overlap_within4", 4, "198.18.0.0/24 overlaps 198.18.0.1 of peer alpha (line 3)" },
	{ "overlap_within_line4", 3, "198.18.5.0/24 overlaps 198.18.4.0/22 of peer alpha (line 3)" },
	{ "overlap_across6", 6, "2001:db8:1:2::3 overlaps 2001:db8:1::/48 of peer alpha (line 3)" },
	{ "overlap_within6", 4, "2001:db8::/32 overlaps 2001:db8::1 of peer alpha (line 3)" },
	{ "address_twice", 6, "198.18.0.1 is already owned by peer alpha (line 3)" },
	{ "overlap_first_in_file", 4, "198.18.0.1 overlaps 198.18.0.0/16 of peer alpha (line 3)" },
	{ "no_single4", 4, "peer beta owns IPv4 prefix 198.18.2.0/24 (line 6) but no single IPv4 address" },
	{ "no_single6", 1, "no single IPv6 address" },
	{ "control_port_low", 3, "control-port '1023' is out of range 1024..4294967294" },
	{ "control_port_twice", 4, "control-port given twice for peer alpha (first at line 3)" },
	{ "control_port_shared", 7, "control-port 5000 of peer beta is also the control port of peer alpha (line 1), which has the same cid" },
	{ "control_port_in_block", 6, "control-port 1048580 of peer beta lies in the vsock ports 1048576..1245183 of peer alpha, which has the same cid" },
	{ "liveness_low", 1, "liveness-timeout '299' is out of range 300..600000" },
	{ "liveness_high", 1, "liveness-timeout '600001' is out of range 300..600000" },
	{ "liveness_twice", 2, "liveness-timeout given twice (first at line 1)" },
	{ "port_zero", 1, "port '0' is out of range 1..65535" },
	{ "port_big", 1, "port '65536' is out of range 1..65535" },
	{ "port_range_big", 2, "port '65536' in '1-65536' is out of range" },
	{ "port_reversed", 1, "port range '9000-8000' is reversed" },
	{ "port_junk", 1, "bad port 'http'" },
	{ "port_range_junk", 1, "bad port '80-'" },
	{ "port_negative", 1, "bad port '-5'" },
	{ "port_range_three", 1, "bad port '1-2-3'" },
	{ "comma_double", 1, "empty item in the allow list" },
	{ "comma_leading", 1, "empty item in the allow list" },
	{ "comma_trailing", 1, "trailing comma in the allow list" },
	{ "comma_single_arg", 1, "bad peer name 'alpha,'" },
	{ "self_unknown", 2, "self names unknown peer 'gamma'" },
	{ "self_twice", 2, "self given twice (first at line 1)" },
	{ "timeout_zero", 1, "connect-timeout '0' is out of range 1..60000" },
	{ "timeout_big", 1, "connect-timeout '60001' is out of range 1..60000" },
	{ "timeout_junk", 1, "connect-timeout '1s' is not a number" },
	{ "timeout_twice", 2, "connect-timeout given twice (first at line 1)" },
	{ "lowest_line_wins", 1, "self names unknown peer 'nobody'" },
	{ "relay_after_peer", 3, "relay must come before the first peer" },
	{ "via_without_relay", 3, "peer alpha is reached via relay, but the file has no 'relay CID PORT'" },
	{ "via_bad", 4, "via 'hosts': a peer is reached 'direct' or via 'relay'" },
	{ "via_twice", 5, "via given twice for peer alpha (first at line 4)" },
	{ "relay_bad_word", 1, "relay: 'fast' is not 'hybrid'" },
	{ "relay_one_arg", 1, "relay takes 2 or 3 arguments, got 1" },
	{ "relay_cid_zero", 1, "relay cid '0' is not a cid" },
	{ "relay_port_low", 1, "relay port '1023' is out of range 1024..4294966271" },
	{ "relay_twice", 2, "relay given twice (first at line 1)" },
	{ "relay_in_block", 1, "the relay's vsock ports 1000500..1001523 overlap 1000000..1196607 of peer alpha, which has the same cid" },
	{ "error_after_valid", 8, "port '70000' is out of range" },
	{ "without_half_close_in_block", 3, "without-half-close must come before the first peer (peer alpha at line 1)" },
	{ "without_half_close_empty", 1, "without-half-close needs at least one port" },
	{ "without_half_close_port_zero", 1, "port '0' is out of range 1..65535" },
	{ "without_half_close_junk", 1, "bad port 'http'" },
	{ "peers_without_relay", 1, "peers relay, but the file has no 'relay CID PORT'" },
	{ "peers_bad", 2, "peers 'libvirt': the one source of peers is 'relay'" },
	{ "peers_after_peer", 4, "peers must come before the first peer (peer a at line 2)" },
};

#define N_INVALID (sizeof invalid_cases / sizeof invalid_cases[0])

static void test_relay(void **state)
{
	struct policy *pol = load_valid("relay.policy");

	(void)state;
	assert_true(pol->has_relay);
	assert_false(pol->relay_hybrid);
	assert_int_equal(pol->relay_cid, 2);
	assert_int_equal(pol->relay_port, 5460);
	assert_false(pol->peers[0].via_relay);
	assert_true(pol->peers[1].via_relay);
	assert_false(pol->peers[2].via_relay);
	/* CID 2 is no peer's: the relay's connections come from privileged ports */
	assert_int_equal(pol->relay_first_source, 1);
	assert_true(policy_from_relay(pol, 2, 1));
	assert_true(policy_from_relay(pol, 2, 1023));
	assert_false(policy_from_relay(pol, 2, 1024));
	assert_false(policy_from_relay(pol, 3, 5));
	policy_free(pol);
}

static void test_relay_shared_hybrid(void **state)
{
	struct policy *pol = load_valid("relay_shared.policy");

	(void)state;
	assert_true(pol->relay_hybrid);
	/* the relay shares CID 1 with the peers: its ports follow its own */
	assert_int_equal(pol->relay_first_source, 5461);
	/* hybrid: its VMM connects from any port of the relay's CID */
	assert_true(policy_from_relay(pol, 1, 2131072));
	assert_false(policy_from_relay(pol, 2, 5461));
	policy_free(pol);
}

/* `peers relay`: the file names only this guest; the relay's siblings are read after it
 * (helperd/hostpeers.c) and checked as if the file had them, on lines after its own. */
static void test_peers_relay(void **state)
{
	struct policy *pol = load_valid("peers_relay.policy"), *merged;
	char err[512];

	(void)state;
	assert_true(pol->peers_from_relay);
	assert_int_equal(pol->n_peers, 1);
	policy_free(pol);
	assert_int_equal(policy_load_more(PDIR "/valid/peers_relay.policy",
					  "peer beta\n cid 1\n vsock-base 3000000\n"
					  " control-port 3500000\n via relay\n address 198.18.0.2\n",
					  &merged, err, sizeof err),
			 0);
	assert_int_equal(merged->n_peers, 2);
	assert_string_equal(merged->peers[1].name, "beta");
	assert_true(merged->peers[1].via_relay);
	assert_int_equal(merged->peers[1].control_port, 3500000);
	/* the file's port rules are the sibling's too */
	assert_true(policy_port_allowed(&merged->peers[1].ports, 80));
	assert_false(policy_port_allowed(&merged->peers[1].ports, 81));
	policy_free(merged);
	/* a sibling that overlaps the file's own is refused as the file would be, its lines
	 * counted on after the file's (8 lines, a blank one, then the sibling's block) */
	assert_int_equal(policy_load_more(PDIR "/valid/peers_relay.policy",
					  "peer beta\n cid 1\n vsock-base 2000000\n via relay\n",
					  &merged, err, sizeof err),
			 -1);
	assert_non_null(strstr(err, "peers_relay.policy:12: "));
	assert_non_null(strstr(err, "overlap"));
}

static void test_without_half_close(void **state)
{
	struct policy *pol = load_valid("without_half_close.policy");
	static const unsigned listed[] = {80, 443, 6379, 8000, 8001, 8002};
	unsigned n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
		assert_true(policy_port_allowed(&pol->without_half_close, listed[i]));
	for (unsigned port = 0; port < 65536; port++)
		n += (unsigned)policy_port_allowed(&pol->without_half_close, port);
	assert_int_equal(n, sizeof listed / sizeof listed[0]);
	policy_free(pol);
	/* without the statement: no port */
	pol = load_valid("relay.policy");
	for (unsigned port = 0; port < 65536; port++)
		assert_false(policy_port_allowed(&pol->without_half_close, port));
	policy_free(pol);
}

static void test_fixture_dirs(void **state)
{
	(void)state;
	DIR *d = opendir(PDIR "/valid");
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		policy_free(load_valid(e->d_name));
		n++;
	}
	closedir(d);
	assert_true(n >= 10);

	d = opendir(PDIR "/invalid");
	assert_non_null(d);
	n = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int listed = 0;
		for (size_t i = 0; i < N_INVALID; i++) {
			char file[128];
			snprintf(file, sizeof file, "%s.policy", invalid_cases[i].name);
			listed |= strcmp(file, e->d_name) == 0;
		}
		if (!listed)
			fail_msg("invalid/%s has no entry in invalid_cases", e->d_name);
		n++;
	}
	closedir(d);
	assert_int_equal(n, N_INVALID);
}

/* --- generated files ------------------------------------------------------------------- */

static void test_long_comment_line(void **state)
{
	(void)state;
	char path[64];
	size_t n = 10000;
	char *text = malloc(n + 100);
	int k = sprintf(text, "peer alpha\n\tcid 3\n\taddress 198.18.0.1 # ");
	memset(text + k, 'x', n);
	k += (int)n;
	k += sprintf(text + k, "\n\tallow 80\n");
	write_temp(path, text, (size_t)k);
	struct policy *pol = load_path(path);
	assert_int_equal(pol->n_peers, 1);
	assert_prefix(stand_for(&pol->peers[0], AF_INET), "198.18.0.1", 32);
	assert_ports(&pol->peers[0], PORTS(80), PORTS(81));
	policy_free(pol);
	unlink(path);
	free(text);
}

/* A line of exactly POLICY_LINE_MAX bytes (without its newline) with a long allow list. */
static void test_longest_line(void **state)
{
	(void)state;
	char path[64];
	char *text = malloc(POLICY_LINE_MAX + 200);
	int k = sprintf(text, "peer alpha\n\tcid 3\n\taddress 198.18.0.1\n");
	int start = k;
	unsigned last = 0;

	k += sprintf(text + k, "allow");
	for (unsigned p = 2; k - start + 8 < POLICY_LINE_MAX; p += 3) {
		k += sprintf(text + k, p % 2 ? ", %u" : " %u", p);
		last = p;
	}
	while (k - start < POLICY_LINE_MAX)
		text[k++] = ' ';
	assert_int_equal(k - start, POLICY_LINE_MAX);
	text[k++] = '\n';
	write_temp(path, text, (size_t)k);
	struct policy *pol = load_path(path);
	const struct policy_peer *a = &pol->peers[0];
	assert_true(last > 30000);
	for (unsigned p = 1; p <= last + 1; p++)
		assert_int_equal(policy_port_allowed(&a->ports, p), p % 3 == 2 && p <= last);
	policy_free(pol);
	unlink(path);
	free(text);
}

static void test_line_too_long(void **state)
{
	(void)state;
	char path[64];
	size_t n = POLICY_LINE_MAX + 1;
	char *text = malloc(n + 100);
	int k = sprintf(text, "peer alpha\n");
	memset(text + k, '#', n);
	k += (int)n;
	k += sprintf(text + k, "\n\tcid 3\n");
	write_temp(path, text, (size_t)k);
	expect_error(path, 2, "line is 65537 bytes long, more than 65536");
	unlink(path);
	free(text);
}

static void test_huge_line_without_newline(void **state)
{
	(void)state;
	char path[64];
	size_t n = 1 << 20;
	char *text = malloc(n);
	memset(text, ' ', n);
	write_temp(path, text, n);
	expect_error(path, 1, "more than 65536");
	unlink(path);
	free(text);
}

static void test_nul_byte(void **state)
{
	(void)state;
	char path[64];
	static const char text[] = "peer alpha\n\tcid 3\0 4\n\taddress 198.18.0.1\n";
	write_temp(path, text, sizeof text - 1);
	expect_error(path, 2, "NUL byte at column 7");
	unlink(path);
}

static void test_nul_byte_in_comment(void **state)
{
	(void)state;
	char path[64];
	static const char text[] = "# a comment\0 with a NUL\n";
	write_temp(path, text, sizeof text - 1);
	expect_error(path, 1, "NUL byte at column 12");
	unlink(path);
}

static void test_control_char(void **state)
{
	(void)state;
	char path[64];
	static const char text[] = "peer alpha\n\tcid 3\n\taddress 198.18.0.1\x1b[0m\n";
	write_temp(path, text, sizeof text - 1);
	expect_error(path, 3, "unexpected control character 0x1b at column 20");
	unlink(path);
}

static void test_carriage_return(void **state)
{
	(void)state;
	char path[64];
	static const char text[] = "peer alpha\r\n\tcid 3\r\n";
	write_temp(path, text, sizeof text - 1);
	expect_error(path, 1, "0x0d at column 11 (a carriage return");
	unlink(path);
}

/* Enough peers and addresses that every array is reallocated many times over. */
static void test_many_peers(void **state)
{
	(void)state;
	char path[64];
	size_t cap = 300 * 160;
	char *text = malloc(cap);
	size_t k = 0;

	k += (size_t)sprintf(text + k, "self p299\nallow 443\n");
	for (unsigned i = 0; i < 300; i++)
		k += (size_t)sprintf(text + k,
				     "peer p%u\n\tcid 1\n\tvsock-base %u\n\taddress 198.%u.%u.0/25\n"
				     "\taddress 198.%u.%u.200\n\taddress 2001:db8::%x\n",
				     i, 1024 + i * 196608u, 18 + i / 256, i % 256, 18 + i / 256,
				     i % 256, i + 1);
	assert_true(k < cap);
	write_temp(path, text, k);
	struct policy *pol = load_path(path);
	assert_int_equal(pol->n_peers, 300);
	assert_int_equal(pol->self, 299);
	for (unsigned i = 0; i < 300; i++) {
		const struct policy_peer *peer = &pol->peers[i];
		char name[16], addr[32];
		snprintf(name, sizeof name, "p%u", i);
		assert_string_equal(peer->name, name);
		assert_int_equal(policy_find_peer(pol, name), (int)i);
		assert_int_equal(peer->cid, 1);
		assert_int_equal(peer->vsock_base, 1024 + i * 196608u);
		assert_int_equal(peer->n_prefixes, 3);
		assert_ptr_equal(stand_for(peer, AF_INET), &peer->prefixes[1]);
		snprintf(addr, sizeof addr, "198.%u.%u.200", 18 + i / 256, i % 256);
		assert_prefix(stand_for(peer, AF_INET), addr, 32);
		assert_ptr_equal(stand_for(peer, AF_INET6), &peer->prefixes[2]);
		snprintf(addr, sizeof addr, "2001:db8::%x", i + 1);
		assert_prefix(stand_for(peer, AF_INET6), addr, 128);
		assert_ports(peer, PORTS(443), PORTS(80));
	}
	policy_free(pol);
	unlink(path);
	free(text);
}

/* A policy with too many peers for a decision table of TABLE_MAX_SIZE is refused at the
 * first peer beyond (before, enough peers wrapped the table's 32-bit size around); one peer
 * fewer is accepted, and its table fits. */
static void test_table_too_big(void **state)
{
	(void)state;
	char path[64], want[64];
	unsigned fit = 0;

	while (table_size(fit + 1, 0, (fit + 1) * 64ull) <= TABLE_MAX_SIZE)
		fit++;
	size_t cap = (fit + 1) * 32ull;
	char *text = malloc(cap);
	size_t k = 0, k_fit = 0;
	for (unsigned i = 0; i <= fit; i++) {
		k_fit = k;
		k += (size_t)sprintf(text + k, "peer p%u\n\tcid %u\n", i, i + 3);
	}
	assert_true(k < cap);
	write_temp(path, text, k);
	snprintf(want, sizeof want, "peer p%u is one too many", fit);
	expect_error(path, 2 * fit + 1, want);
	unlink(path);

	write_temp(path, text, k_fit); /* without the last peer */
	struct policy *pol = load_path(path);
	assert_int_equal(pol->n_peers, fit);
	uint32_t size;
	void *body = table_build(pol, 0, NULL, &size);
	assert_non_null(body);
	assert_true(size <= TABLE_MAX_SIZE);
	free(body);
	policy_free(pol);
	unlink(path);
	free(text);
}

/* policy_load as expect_owner_checked wants it. */
static int load_and_free(const char *file, char *err, size_t errlen)
{
	struct policy *pol = NULL;
	int rc = policy_load(file, &pol, err, errlen);

	assert_true(rc == 0 ? pol != NULL : pol == NULL);
	policy_free(pol);
	return rc;
}

/* Whoever could change the policy could give a peer this guest's addresses: helperd takes
 * it only from a file none but root can change (at start, by --check, on every reload). */
static void test_file_owner(void **state)
{
	(void)state;
	expect_owner_checked(load_and_free, "peer a\n cid 3\n");
}

static void test_missing_file(void **state)
{
	(void)state;
	const char *path = PDIR "/no-such-file.policy";
	expect_error(path, 0, "cannot open: No such file or directory");
}

static void test_directory(void **state)
{
	(void)state;
	expect_error(PDIR "/valid", 0, "cannot read: Is a directory");
}

static void test_small_error_buffer(void **state)
{
	(void)state;
	struct policy *pol = NULL;
	char err[8];

	assert_int_equal(read_path(PDIR "/invalid/cid_zero.policy", &pol, err, sizeof err), -1);
	assert_string_equal(err, "tests/u");
	assert_int_equal(read_path(PDIR "/invalid/cid_zero.policy", &pol, NULL, 0), -1);
	assert_null(pol);
	policy_free(NULL);
}

/* --- invalid files --------------------------------------------------------------------- */

static void test_invalid(void **state)
{
	const struct invalid_case *c = *state;
	char path[256];

	snprintf(path, sizeof path, PDIR "/invalid/%s.policy", c->name);
	expect_error(path, c->line, c->phrase);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_comments_only),
		cmocka_unit_test(test_format_example),
		cmocka_unit_test(test_comments_everywhere),
		cmocka_unit_test(test_commas),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_cid_shared_apart),
		cmocka_unit_test(test_numbers_and_limits),
		cmocka_unit_test(test_global_vs_peer_ports),
		cmocka_unit_test(test_no_allow_means_nothing),
		cmocka_unit_test(test_timeout_min),
		cmocka_unit_test(test_cid_only),
		cmocka_unit_test(test_first_single_address),
		cmocka_unit_test(test_self_names_later_peer),
		cmocka_unit_test(test_example_policy),
		cmocka_unit_test(test_fixture_dirs),
		cmocka_unit_test(test_relay),
		cmocka_unit_test(test_relay_shared_hybrid),
		cmocka_unit_test(test_peers_relay),
		cmocka_unit_test(test_without_half_close),
		cmocka_unit_test(test_long_comment_line),
		cmocka_unit_test(test_longest_line),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_huge_line_without_newline),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_nul_byte_in_comment),
		cmocka_unit_test(test_control_char),
		cmocka_unit_test(test_carriage_return),
		cmocka_unit_test(test_many_peers),
		cmocka_unit_test(test_table_too_big),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_file_owner),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_small_error_buffer),
	};
	size_t n_fixed = sizeof fixed / sizeof fixed[0];
	size_t n = n_fixed + N_INVALID;
	struct CMUnitTest *tests = calloc(n, sizeof *tests);
	char (*names)[96] = calloc(N_INVALID, sizeof *names);

	if (!tests || !names)
		return 1;
	memcpy(tests, fixed, sizeof fixed);
	for (size_t i = 0; i < N_INVALID; i++) {
		snprintf(names[i], sizeof names[i], "invalid/%s", invalid_cases[i].name);
		tests[n_fixed + i] = (struct CMUnitTest){
			.name = names[i],
			.test_func = test_invalid,
			.initial_state = (void *)&invalid_cases[i],
		};
	}
	int failed = _cmocka_run_group_tests("policy", tests, n, NULL, NULL);
	free(tests);
	free(names);
	return failed;
}
