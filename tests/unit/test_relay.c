/* Unit tests of the relay's messages (common/relayproto.c) and its host policy
 * (relay/host_policy.c, relay/FORMAT.md): every rule of a message refuses when broken, and
 * every error of a host policy names its file and line; which guests libvirt's domains are
 * (relay/host_domains.c); what a reloaded host policy keeps of the old one's grants
 * (relay/regrant.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "host_domains.h"
#include "host_policy.h"
#include "hybrid_line.h"
#include "hybrid_path.h"
#include "regrant.h"
#include "vmshim/relayproto.h"
#include "owner_check.h"

/* --- messages ---------------------------------------------------------------------------- */

static void test_request_round_trip(void **state)
{
	uint8_t msg[RELAYPROTO_REQUEST_SIZE];
	struct relayproto_addr dest;
	uint32_t source;
	const char *why = NULL;

	(void)state;
	relayproto_request(msg, 4, 2008080, 1131072 + 40000, 0);
	assert_memory_equal(msg, "VMSR\x01\x01\x00\x00", 8);
	assert_int_equal(relayproto_parse_request(msg, &dest, &source, NULL, &why), 0);
	assert_int_equal(dest.cid, 4);
	assert_int_equal(dest.port, 2008080);
	assert_int_equal(dest.flags, 0);
	assert_int_equal(source, 1131072 + 40000);
	relayproto_request(msg, 4, 2008080, 1131072 + 40000, RELAYPROTO_REQUEST_HALF_CLOSE);
	assert_memory_equal(msg, "VMSR\x01\x01\x00\x01", 8);
	assert_int_equal(relayproto_parse_request(msg, &dest, &source, NULL, &why), 0);
	assert_int_equal(dest.flags, RELAYPROTO_REQUEST_HALF_CLOSE);
}

/* ASK_SIBLINGS and SIBLINGS: a round trip of each, and the rules a hostile relay or guest
 * would break. */
static void test_siblings_messages(void **state)
{
	uint8_t ask[RELAYPROTO_REQUEST_SIZE], head[RELAYPROTO_SIBLINGS_HEADER_SIZE],
		msg[RELAYPROTO_SIBLING_SIZE];
	struct relayproto_sibling in = {.name = "pool-a",
					.uuid = "0f0e0d0c-0b0a-0908-0706-050403020100",
					.cid = 3,
					.vsock_base = 1048576,
					.control_port = 1179648,
					.flags = RELAYPROTO_SIBLING_REACHES,
					.n_addrs = 2,
					.addrs = {{AF_INET, 32, {198, 18, 0, 9}},
						  {AF_INET6, 64, {0x20, 0x01, 0x0d, 0xb8}}}},
				   out;
	struct relayproto_addr dest;
	uint32_t source;
	uint16_t count;
	bool asks;
	const char *why = NULL;

	(void)state;
	relayproto_ask_siblings(ask, 1131072 + 7);
	assert_int_equal(relayproto_parse_request(ask, &dest, &source, &asks, &why), 0);
	assert_true(asks);
	assert_int_equal(source, 1131072 + 7);
	/* a relay that knows only REQUEST takes it for a bad request */
	assert_int_equal(relayproto_parse_request(ask, &dest, &source, NULL, &why), -1);
	assert_string_equal(why, "unexpected message type");
	ask[11] = 1;
	assert_int_equal(relayproto_parse_request(ask, &dest, &source, &asks, &why), -1);
	assert_string_equal(why, "a destination in ASK_SIBLINGS");

	relayproto_siblings_header(head, 2);
	assert_int_equal(relayproto_parse_siblings_header(head, &count, &why), 0);
	assert_int_equal(count, 2);
	relayproto_siblings_header(head, RELAYPROTO_SIBLINGS_MAX + 1);
	assert_int_equal(relayproto_parse_siblings_header(head, &count, &why), -1);

	relayproto_sibling(msg, &in);
	assert_int_equal(relayproto_parse_sibling(msg, &out, &why), 0);
	assert_string_equal(out.name, "pool-a");
	assert_string_equal(out.uuid, in.uuid);
	assert_int_equal(out.cid, 3);
	assert_int_equal(out.control_port, 1179648);
	assert_int_equal(out.n_addrs, 2);
	assert_int_equal(out.addrs[1].family, AF_INET6);
	assert_memory_equal(out.addrs[0].addr, in.addrs[0].addr, 4);
	static const struct {
		size_t offset;
		uint8_t value;
		const char *why;
	} broken[] = {
		{0, 0, "a name that is not a policy name"},
		{3, '/', "a name that is not a policy name"},
		{7, 'x', "a name that is not a policy name"}, /* after its NUL */
		{44, 8, "unknown flags"},
		{45, 5, "too many addresses"},
		{46, 1, "reserved bytes not zero"},
		{50, 'X', "a UUID that is not one"},
		{84, 5, "an address of no known family"},
		{85, 33, "a prefix longer than its address"},
		{92, 1, "reserved bytes of an address not zero"}, /* past an IPv4 address */
		{84 + 2 * 20, 4, "an unused address not zero"},
	};
	for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
		uint8_t bad[RELAYPROTO_SIBLING_SIZE];
		memcpy(bad, msg, sizeof bad);
		bad[broken[i].offset] = broken[i].value;
		why = NULL;
		assert_int_equal(relayproto_parse_sibling(bad, &out, &why), -1);
		assert_string_equal(why, broken[i].why);
	}
}

/* Each rule: the message with one byte changed is refused, and says why. */
static void test_request_rules(void **state)
{
	static const struct {
		size_t offset;
		uint8_t value;
		const char *why;
	} broken[] = {
		{0, 'X', "bad magic"},
		{4, 2, "unknown version"},
		{5, RELAYPROTO_REPLY, "unexpected message type"},
		{6, 1, "unknown flags"},
		{7, 2, "unknown flags"},
		{7, 0x80, "unknown flags"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
		uint8_t msg[RELAYPROTO_REQUEST_SIZE];
		struct relayproto_addr dest;
		uint32_t source;
		const char *why = NULL;
		relayproto_request(msg, 4, 5, 6, RELAYPROTO_REQUEST_HALF_CLOSE);
		msg[broken[i].offset] = broken[i].value;
		assert_int_equal(relayproto_parse_request(msg, &dest, &source, NULL, &why), -1);
		assert_string_equal(why, broken[i].why);
	}
}

static void test_reply(void **state)
{
	uint8_t msg[RELAYPROTO_REPLY_SIZE];
	enum relayproto_status status;
	const char *why = NULL;

	(void)state;
	for (int s = RELAY_OK; s <= RELAY_NO_HALF_CLOSE; s++) {
		relayproto_reply(msg, (enum relayproto_status)s);
		assert_int_equal(relayproto_parse_reply(msg, &status, &why), 0);
		assert_int_equal(status, s);
	}
	relayproto_reply(msg, RELAY_OK);
	msg[6] = RELAY_NO_HALF_CLOSE + 1;
	assert_int_equal(relayproto_parse_reply(msg, &status, &why), -1);
	assert_string_equal(why, "unknown status");
	relayproto_reply(msg, RELAY_OK);
	msg[7] = 1;
	assert_int_equal(relayproto_parse_reply(msg, &status, &why), -1);
	assert_string_equal(why, "reserved byte not zero");
	uint8_t from[RELAYPROTO_FROM_SIZE];
	relayproto_from(from, 1, 2, 0); /* a FROM's first 8 bytes are no reply */
	assert_int_equal(relayproto_parse_reply(from, &status, &why), -1);
	assert_string_equal(why, "unexpected message type");
}

static void test_from(void **state)
{
	uint8_t msg[RELAYPROTO_FROM_SIZE];
	struct relayproto_addr from;
	const char *why = NULL;

	(void)state;
	relayproto_from(msg, 3, 1131080, RELAYPROTO_FROM_PORT_SEEN);
	assert_int_equal(relayproto_parse_from(msg, &from, &why), 0);
	assert_int_equal(from.cid, 3);
	assert_int_equal(from.port, 1131080);
	assert_int_equal(from.flags, RELAYPROTO_FROM_PORT_SEEN);
	relayproto_from(msg, 3, 1131080, 2);
	assert_int_equal(relayproto_parse_from(msg, &from, &why), -1);
	assert_string_equal(why, "unknown flags");
	relayproto_from(msg, 3, 1131080, 0);
	msg[4] = 0;
	assert_int_equal(relayproto_parse_from(msg, &from, &why), -1);
	assert_string_equal(why, "unknown version");
}

/* --- host policy ------------------------------------------------------------------------- */

static char path[64];

static void write_policy(const char *text)
{
	strcpy(path, "/tmp/vmshim-hostpolicy-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static struct host_policy *load(const char *text)
{
	struct host_policy *p = NULL;
	char err[512];

	write_policy(text);
	if (host_policy_load(path, &p, err, sizeof err) != 0)
		fail_msg("should load, but: %s", err);
	unlink(path);
	return p;
}

static void expect_error(const char *text, unsigned line, const char *phrase)
{
	struct host_policy *p = NULL;
	char err[512], want[128];

	write_policy(text);
	assert_int_equal(host_policy_load(path, &p, err, sizeof err), -1);
	assert_null(p);
	snprintf(want, sizeof want, "%s:%u: ", path, line);
	if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, phrase))
		fail_msg("want \"%s...%s\", got \"%s\"", want, phrase, err);
	unlink(path);
}

static void test_host_policy(void **state)
{
	struct host_policy *p = load("# a host with three guests\n"
				     "port 6000\n"
				     "max-connections 100\n"
				     "max-per-guest 10\n"
				     "buffer 65536\n"
				     "guest web\n"
				     "    cid 3\n"
				     "    reach db 4005432, 4131072\n"
				     "guest db\n"
				     "    cid 4\n"
				     "    reach web\n"
				     "guest fc\n"
				     "    cid 5\n"
				     "    hybrid /run/fc/fc.vsock\n"
				     "guest ch\n"
				     "    cid 6\n"
				     "    hybrid /run/ch/ch.vsock half-close\n");

	(void)state;
	assert_int_equal(p->port, 6000);
	assert_int_equal(p->max_connections, 100);
	assert_int_equal(p->max_per_guest, 10);
	assert_int_equal(p->buffer, 65536);
	assert_int_equal(p->connect_timeout_ms, HOST_DEFAULT_CONNECT_TIMEOUT_MS);
	assert_int_equal(p->n_guests, 4);
	assert_string_equal(p->guests[2].hybrid, "/run/fc/fc.vsock");
	assert_string_equal(p->guests[3].hybrid, "/run/ch/ch.vsock");
	/* half-closes cross vhost-vsock and a VMM that says so, not Firecracker's */
	assert_true(host_half_close(p, 0, 1));
	assert_true(host_half_close(p, 0, 3));
	assert_true(host_half_close(p, 3, 1));
	assert_false(host_half_close(p, 0, 2));
	assert_false(host_half_close(p, 2, 3));
	assert_int_equal(host_guest_calling(p, 3, 70000), 0);
	assert_int_equal(host_guest_calling(p, 5, 1), -1); /* hybrid guests call through PATH_PORT */
	assert_int_equal(host_guest_calling(p, 9, 1), -1);
	assert_int_equal(host_guest_owning(p, 4, 4005432), 1);
	assert_int_equal(host_guest_owning(p, 5, 80), 2);
	assert_true(host_may_reach(p, 0, 1, 4005432));
	assert_true(host_may_reach(p, 0, 1, 4131072));
	assert_false(host_may_reach(p, 0, 1, 4000080));
	assert_false(host_may_reach(p, 1, 2, 1048656));
	assert_false(host_may_reach(p, 2, 0, 12345));
	assert_false(host_shares_cid(p));
	host_policy_free(p);
}

/* `reach GUEST` without ports: only the vsock ports vmshim uses in GUEST (its listeners for
 * TCP ports 1..65535 of each family and its control port), at the block its guest policy
 * gives it; any other port of it (an agent that trusts the host) must be named. */
static void test_host_policy_vmshim_ports(void **state)
{
	struct host_policy *p = load("guest a\n cid 3\n reach b\n reach c\n reach d\n"
				     "reach e 22, 2000000-2000010\n"
				     "guest b\n cid 4\n"
				     "guest c\n cid 5\n vsock-base 2000000\n"
				     "guest d\n cid 6\n hybrid /run/d/v.sock\n control-port 9000\n"
				     "guest e\n cid 7\n");
	static const struct {
		size_t to;
		uint32_t port;
		bool may;
	} cases[] = {
		/* b, at the default block */
		{1, 1048576 + 80, true},
		{1, 1048576 + 65535, true},
		{1, 1048576 + 65536 + 80, true},
		{1, 1048576 + 131071, true},
		{1, 1048576 + 131072, true},  /* its helperd */
		{1, 1048576, false},          /* TCP port 0 */
		{1, 1048576 + 65536, false},
		{1, 1048576 + 131073, false}, /* a source port */
		{1, 1048575, false},
		{1, 22, false},
		{1, 9999, false},
		{1, 4294967294u, false},
		/* c, at its own block */
		{2, 2000080, true},
		{2, 2131072, true},
		{2, 1048656, false},
		/* d, whose control port is elsewhere */
		{3, 9000, true},
		{3, 1048656, true},
		{3, 1179648, false},
		/* e: the ports named, and only those */
		{4, 22, true},
		{4, 2000010, true},
		{4, 1048656, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (host_may_reach(p, 0, cases[i].to, cases[i].port) != cases[i].may)
			fail_msg("guest %s port %u: want %s", p->guests[cases[i].to].name,
				 cases[i].port, cases[i].may ? "reachable" : "refused");
	host_policy_free(p);
}

/* Guests on one CID (tests) are told apart by their blocks. */
static void test_host_policy_shared_cid(void **state)
{
	struct host_policy *p = load("guest alpha\n cid 1\n vsock-base 1000000\n reach beta\n"
				     "guest beta\n cid 1\n vsock-base 2000000\n");

	(void)state;
	assert_true(host_shares_cid(p));
	assert_int_equal(host_guest_calling(p, 1, 1000000 + 131072 + 5), 0);
	assert_int_equal(host_guest_calling(p, 1, 2000000 + 131072 + 5), 1);
	assert_int_equal(host_guest_calling(p, 1, 1000005), -1); /* a listening port */
	assert_int_equal(host_guest_owning(p, 1, 2000080), 1);
	assert_int_equal(host_guest_owning(p, 1, 3000080), -1);
	host_policy_free(p);
}

static void test_host_policy_errors(void **state)
{
	(void)state;
	expect_error("port 80\n", 1, "port '80' is out of range 1024..4294966271");
	expect_error("port 5000\nport 5001\n", 2, "port given twice (first at line 1)");
	expect_error("guest a\n cid 3\nbuffer 9000\n", 3, "buffer must come before the first guest");
	expect_error("buffer 100\n", 1, "buffer '100' is out of range 4096..67108864 bytes");
	expect_error("cid 3\n", 1, "cid outside a guest block");
	/* cid and vsock-base: the guest policy's parser and messages (stmt_cid, stmt_vsock_base) */
	static const char *const cid_and_base[][2] = {
		{"cid 2", "cid 2 is the host, not a guest (a guest's cid is 1 or 3..4294967294)"},
		{"cid 0", "cid 0 is the hypervisor, not a guest"},
		{"cid 0xffffffff", "cid '0xffffffff' is VMADDR_CID_ANY"},
		{"cid 4294967296", "cid '4294967296' does not fit in 32 bits"},
		{"cid 3x", "cid '3x' is not a number"},
		{"vsock-base 1023", "vsock-base '1023' is below 1024"},
		{"vsock-base 4294770688", "vsock-base '4294770688' is too high"},
		{"vsock-base x", "vsock-base 'x' is not a number"},
	};
	for (size_t i = 0; i < sizeof cid_and_base / sizeof cid_and_base[0]; i++) {
		char text[80];
		snprintf(text, sizeof text, "guest a\n %s\n", cid_and_base[i][0]);
		expect_error(text, 2, cid_and_base[i][1]);
	}
	expect_error("guest a\n cid 3\n cid 4\n", 3, "cid given twice for guest a (first at line 2)");
	expect_error("guest a\n", 1, "guest a has no cid");
	expect_error("guest a\n cid 3\nguest a\n", 3, "duplicate guest name 'a' (first at line 1)");
	expect_error("guest a/b\n", 1, "bad guest name 'a/b'");
	expect_error("guest a\n cid 3\nguest b\n cid 3\n", 3,
		     "guest b has the cid of guest a (line 1): guests that share a CID need a "
		     "vsock-base each");
	expect_error("guest a\n cid 1\n vsock-base 1000000\nguest b\n cid 1\n vsock-base 1100000\n",
		     4, "guest b: its vsock port block overlaps that of guest a (line 1)");
	expect_error("guest a\n cid 1\n vsock-base 5000\n", 1,
		     "guest a: its vsock port block overlaps the relay's ports 5460..6483");
	expect_error("guest a\n cid 3\n hybrid run/a.sock\n", 3, "hybrid 'run/a.sock' is not an absolute path");
	expect_error("guest a\n cid 3\n hybrid /a.sock halfclose\n", 3,
		     "hybrid: 'halfclose' is not 'half-close' (hybrid PATH [half-close])");
	expect_error("guest a\n cid 3\n hybrid /a.sock half-close half-close\n", 3,
		     "hybrid takes 1 or 2 arguments, got 3");
	expect_error("guest a\n cid 3\n hybrid\n", 3, "hybrid needs at least one argument");
	expect_error("guest a\n cid 3\n control-port 80\n", 3,
		     "control-port '80' is out of range 1024..4294967294");
	expect_error("guest a\n cid 3\n control-port 5000\n control-port 5000\n", 4,
		     "control-port given twice for guest a (first at line 3)");
	expect_error("guest a\n cid 3\n hybrid /a\nguest b\n cid 4\n hybrid /a\n", 4,
		     "guest b has the hybrid socket of guest a (line 1)");
	expect_error("guest a\n cid 3\n reach b\n", 3, "reach b: no such guest");
	expect_error("guest a\n cid 3\n reach a\n", 3, "guest a reaches itself");
	expect_error("guest a\n cid 3\n reach b\n reach b 5\nguest b\n cid 4\n", 4,
		     "reach b given twice for guest a (first at line 3)");
	expect_error("guest a\n cid 3\n reach b 9-5\nguest b\n cid 4\n", 3,
		     "vsock port range '9-5' is reversed");
	expect_error("guest a\n cid 3\n reach b 4294967295\nguest b\n cid 4\n", 3,
		     "vsock port '4294967295' is out of range 1..4294967294");
	expect_error("listen 5\n", 1, "unknown keyword 'listen'");
}

/* --- the hybrid handshake and paths ------------------------------------------------------ */

/* host_policy_load as expect_owner_checked wants it. */
static int load_and_free(const char *file, char *err, size_t errlen)
{
	struct host_policy *p = NULL;
	int rc = host_policy_load(file, &p, err, errlen);

	assert_true(rc == 0 ? p != NULL : p == NULL);
	host_policy_free(p);
	return rc;
}

/* The host policy is taken only from a file none but root can change (at start and on
 * every reload alike). */
static void test_host_policy_owner(void **state)
{
	(void)state;
	expect_owner_checked(load_and_free, "guest a\n cid 3\n");
}

/* A reload keeps the guests that are recognised and reached as before, by name; a session
 * keeps its grant only while the new policy still lets its caller reach that port. */
static void test_regrant(void **state)
{
	struct host_policy *old = load("guest web\n cid 3\n reach db 4005432 4131072\n"
				       "guest db\n cid 4\n reach web\n"
				       "guest fc\n cid 5\n hybrid /run/fc/v.sock\n reach db\n"
				       "guest gone\n cid 6\n reach db\n"
				       "guest moved\n cid 7\n reach db\n");
	/* reordered; web loses db's 4005432; fc's socket moved; gone gone; moved is CID 8 */
	struct host_policy *new = load("guest new\n cid 9\n"
				       "guest db\n cid 4\n reach web\n"
				       "guest web\n cid 3\n reach db 4131072\n"
				       "guest fc\n cid 5\n hybrid /run/fc2/v.sock\n reach db\n"
				       "guest moved\n cid 8\n reach db\n");
	int *map = regrant_map(old, new);
	struct regrant_session s;

	(void)state;
	assert_non_null(map);
	assert_int_equal(map[0], 2);
	assert_int_equal(map[1], 1);
	assert_int_equal(map[2], -1); /* another socket: another VM */
	assert_int_equal(map[3], -1);
	assert_int_equal(map[4], -1); /* another CID: another VM */
	/* web -> db 4131072: still granted; web -> db 4005432: revoked */
	s = (struct regrant_session){.from = 0, .to = 1, .source_port = 70000, .port_seen = true,
				     .dest_port = 4131072};
	assert_null(regrant_verdict(old, new, map, &s));
	s.dest_port = 4005432;
	assert_string_equal(regrant_verdict(old, new, map, &s),
			    "the host policy no longer lets its caller reach that port");
	/* db -> web's vmshim port: untouched by the reload */
	s = (struct regrant_session){.from = 1, .to = 0, .source_port = 70000, .port_seen = true,
				     .dest_port = 1048656};
	assert_null(regrant_verdict(old, new, map, &s));
	/* a caller still reading its request has no destination yet */
	s.to = -1;
	assert_null(regrant_verdict(old, new, map, &s));
	/* from or to a guest that is gone or is another VM now */
	s = (struct regrant_session){.from = 3, .to = 1, .dest_port = 4000080};
	assert_non_null(strstr(regrant_verdict(old, new, map, &s), "caller"));
	s = (struct regrant_session){.from = 1, .to = 2, .dest_port = 1048656};
	assert_non_null(strstr(regrant_verdict(old, new, map, &s), "destination"));
	free(map);
	host_policy_free(new);

	/* db's CID comes to be shared with a new guest whose port block holds the port a
	 * session of db came from: that caller is no longer db */
	new = load("guest web\n cid 3\n reach db 4005432 4131072\n"
		   "guest db\n cid 4\n vsock-base 1048576\n reach web\n"
		   "guest twin\n cid 4\n vsock-base 3000000\n"
		   "guest fc\n cid 5\n hybrid /run/fc/v.sock\n reach db\n"
		   "guest gone\n cid 6\n reach db\n"
		   "guest moved\n cid 7\n reach db\n");
	map = regrant_map(old, new);
	assert_int_equal(map[1], 1);
	s = (struct regrant_session){.from = 1, .to = 0, .source_port = 3000000 + 131072 + 5,
				     .port_seen = true, .dest_port = 1048656};
	assert_string_equal(regrant_verdict(old, new, map, &s),
			    "the port it came from is another guest's now");
	s.source_port = 1048576 + 131072 + 5;
	assert_null(regrant_verdict(old, new, map, &s));
	free(map);
	host_policy_free(new);
	host_policy_free(old);
}

/* --- guests from libvirt ------------------------------------------------------------------ */

/* The guest of p named name: its index, or -1. */
static int guest_named(const struct host_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_guests; i++)
		if (strcmp(p->guests[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void test_host_domains(void **state)
{
	struct host_policy *written = load("libvirt qemu:///system\n"
					   "guest alpha\n cid 1\n reach pool\n"
					   "guest solo\n reach pool 5000\n"
					   "guest pool\n domains pool-* batch?\n reach pool\n reach alpha\n"
					   "guest lone\n domains lone-*\n");
	/* unsorted, as libvirt may list them */
	const struct host_domain domains[] = {
		{"pool-b", "00000000-0000-0000-0000-00000000000b", 4},
		{"stray", "00000000-0000-0000-0000-000000000005", 5},
		{"solo", "00000000-0000-0000-0000-00000000000a", 10},
		{"pool-a", "00000000-0000-0000-0000-00000000000a", 3},
		{"batch7", "00000000-0000-0000-0000-000000000007", 7},
		{"lone-1", "00000000-0000-0000-0000-000000000008", 8},
		{"lone-2", "00000000-0000-0000-0000-000000000009", 9},
		{"pool-twin", "00000000-0000-0000-0000-00000000000c", 4}, /* pool-b's CID */
		{"pool-alpha-cid", "00000000-0000-0000-0000-00000000000d", 1},
		{"pool-much-too-long-a-name-for-a-guest", "00000000-0000-0000-0000-00000000000e", 11},
		{"pool-x\n", "00000000-0000-0000-0000-00000000000f", 12},
	};
	struct host_policy *p;

	(void)state;
	assert_string_equal(written->libvirt_uri, "qemu:///system");
	assert_int_equal(written->n_guests, 4);
	assert_true(written->guests[1].libvirt);
	assert_int_equal(written->guests[2].n_patterns, 2);
	/* before libvirt has listed anything: the written guests with a CID */
	assert_int_equal(host_domains_in_force(written, NULL, 0, &p), 0);
	assert_int_equal(p->n_guests, 1);
	assert_int_equal(p->guests[0].n_reach, 0);
	host_policy_free(p);

	assert_int_equal(host_domains_in_force(written, domains, sizeof domains / sizeof domains[0],
					       &p),
			 0);
	int alpha = guest_named(p, "alpha"), solo = guest_named(p, "solo"),
	    a = guest_named(p, "pool-a"), b = guest_named(p, "pool-b"),
	    batch = guest_named(p, "batch7"), l1 = guest_named(p, "lone-1"),
	    l2 = guest_named(p, "lone-2");
	assert_true(alpha >= 0 && solo >= 0 && a >= 0 && b >= 0 && batch >= 0 && l1 >= 0 && l2 >= 0);
	/* no block: no guest; a CID taken (pool-b's, first by name; alpha's), a name that is no
	 * policy name: no guest either */
	assert_int_equal(p->n_guests, 7);
	assert_int_equal(guest_named(p, "stray"), -1);
	assert_int_equal(guest_named(p, "pool-twin"), -1);
	assert_int_equal(host_guest_calling(p, 4, 1), b);
	assert_int_equal(host_guest_calling(p, 3, 1), a);
	assert_int_equal(host_guest_calling(p, 5, 1), -1);
	assert_int_equal(host_guest_calling(p, 1, 1048576 + 131072 + 1), alpha);
	assert_string_equal(p->guests[a].uuid, "00000000-0000-0000-0000-00000000000a");
	assert_string_equal(p->guests[a].block, "pool");
	assert_string_equal(p->guests[alpha].block, "alpha");
	assert_true(p->guests[a].libvirt);
	assert_false(p->guests[alpha].libvirt);
	/* a block's reach is each of its domains': the group's members each other, not
	 * themselves; solo only on port 5000; lone reaches no one, and nobody it */
	uint32_t vmshim_port = 1048576 + 80;
	assert_true(host_may_reach(p, (size_t)a, (size_t)b, vmshim_port));
	assert_true(host_may_reach(p, (size_t)batch, (size_t)a, vmshim_port));
	assert_false(host_may_reach(p, (size_t)a, (size_t)a, vmshim_port));
	assert_true(host_may_reach(p, (size_t)a, (size_t)alpha, vmshim_port));
	assert_true(host_may_reach(p, (size_t)alpha, (size_t)b, vmshim_port));
	assert_false(host_may_reach(p, (size_t)alpha, (size_t)solo, vmshim_port));
	assert_true(host_may_reach(p, (size_t)solo, (size_t)a, 5000));
	assert_false(host_may_reach(p, (size_t)solo, (size_t)a, vmshim_port));
	assert_false(host_may_reach(p, (size_t)l1, (size_t)l2, vmshim_port));
	assert_false(host_may_reach(p, (size_t)a, (size_t)l1, vmshim_port));

	/* pool-a is destroyed and pool-c gets its CID: pool-c is another VM, and a session of
	 * pool-a's is not pool-c's */
	struct host_domain next[] = {domains[0], domains[2], domains[3]};
	snprintf(next[2].name, sizeof next[2].name, "pool-c");
	next[2].uuid[35] = 'c';
	struct host_policy *q;
	assert_int_equal(host_domains_in_force(written, next, 3, &q), 0);
	int *map = regrant_map(p, q);
	assert_int_equal(map[a], -1);
	assert_int_equal(map[b], guest_named(q, "pool-b"));
	assert_int_equal(host_guest_calling(q, 3, 1), guest_named(q, "pool-c"));
	struct regrant_session s = {.from = a, .to = b, .source_port = 1048576 + 131072 + 9,
				    .port_seen = true, .dest_port = vmshim_port};
	assert_non_null(strstr(regrant_verdict(p, q, map, &s), "caller"));
	s = (struct regrant_session){.from = b, .to = alpha, .source_port = 1048576 + 131072 + 9,
				     .port_seen = true, .dest_port = vmshim_port};
	assert_null(regrant_verdict(p, q, map, &s));
	free(map);
	host_policy_free(q);
	/* the same name and CID with another UUID: another domain */
	next[2] = domains[3];
	next[2].uuid[35] = 'f';
	assert_int_equal(host_domains_in_force(written, next, 3, &q), 0);
	map = regrant_map(p, q);
	assert_int_equal(map[a], -1);
	free(map);
	host_policy_free(q);
	host_policy_free(p);
	host_policy_free(written);
}

static void test_host_domains_errors(void **state)
{
	(void)state;
	expect_error("guest a\n reach b\n", 1, "guest a has no cid (nor is there a libvirt");
	expect_error("libvirt qemu:///system\nguest a\n cid 3\n domains a*\n", 2,
		     "guest a has a cid and domains");
	expect_error("libvirt qemu:///system\nguest a\n hybrid /run/a/v.sock\n", 2,
		     "guest a: hybrid is for VMMs that libvirt does not run");
	expect_error("guest a\n cid 3\nlibvirt qemu:///system\n", 3,
		     "libvirt must come before the first guest");
	expect_error("libvirt qemu:///system\nlibvirt qemu:///session\n", 2,
		     "libvirt given twice (first at line 1)");
	expect_error("libvirt system\n", 1, "libvirt 'system' is not a libvirt URI");
	expect_error("libvirt qemu:///sys\"tem\n", 1, "is not a libvirt URI");
	expect_error("libvirt qemu:///system\nguest a\n domains a/b\n", 3,
		     "domains: bad pattern 'a/b'");
	expect_error("libvirt qemu:///system\nguest a\n domains a*\n domains b*\n", 4,
		     "domains given twice for guest a (first at line 3)");
	expect_error("libvirt qemu:///system\nguest a\n reach a\n", 3,
		     "guest a reaches itself");
}

/* The VMM's answer to CONNECT, to the byte: a hostile VMM user gets no lenient reading. */
static void test_hybrid_ok(void **state)
{
	static const struct {
		const char *line;
		uint32_t port; /* 0: refused */
	} cases[] = {
		{"OK 1073741824\n", 1073741824}, {"OK 1\n", 1},
		{"OK 4294967294\n", 4294967294u}, {"OK -1\n", 0},
		{"OK 4294967295\n", 0},		   {"OK 4294967296\n", 0},
		{"OK 99999999999\n", 0},	   {"OK +7\n", 0},
		{"OK 007\n", 0},		   {"OK 0\n", 0},
		{"OK 7 8\n", 0},		   {"OK  7\n", 0},
		{" OK 7\n", 0},			   {"OK 7\r\n", 0},
		{"OK 7", 0},			   {"OK \n", 0},
		{"ok 7\n", 0},			   {"OK 0x10\n", 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint32_t port = 0;
		int ok = hybrid_parse_ok(cases[i].line, strlen(cases[i].line), &port);
		if (ok != (cases[i].port != 0) || (ok && port != cases[i].port))
			fail_msg("'%s': got %d, port %u", cases[i].line, ok, port);
	}
	assert_int_equal(hybrid_parse_ok("OK 5\0\n", 6, &(uint32_t){0}), 0); /* a NUL inside */
}

static char dir[32];

static void in_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

/* A VMM user who owns the directory points the relay elsewhere with links: the relay
 * neither binds nor connects through one, and removes only the socket it made. */
static void test_hybrid_path(void **state)
{
	char real[48], link[48], p[64], q[80];
	struct hybrid_sock hs;
	struct stat st;
	int fd;

	(void)state;
	strcpy(dir, "/tmp/vmshim-hybrid-XXXXXX");
	assert_non_null(mkdtemp(dir));
	in_dir(real, sizeof real, "real");
	in_dir(link, sizeof link, "link");
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, link), 0);

	/* a directory that is a link */
	snprintf(p, sizeof p, "%s/v.sock", link);
	assert_int_equal(hybrid_listen(p, 5460, 1, &hs), -1);
	assert_int_equal(errno, ELOOP);

	/* a real one: mode 0660 from the start, whatever the umask */
	mode_t old = umask(0);
	snprintf(p, sizeof p, "%s/v.sock", real);
	fd = hybrid_listen(p, 5460, 1, &hs);
	umask(old);
	assert_true(fd >= 0);
	snprintf(q, sizeof q, "%s_5460", p);
	assert_int_equal(lstat(q, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);

	/* connecting: through a link to it, or a link in the directories, is refused */
	char via[80];
	in_dir(via, sizeof via, "real/to-listener");
	assert_int_equal(symlink(q, via), 0);
	assert_int_equal(hybrid_dial_path(via), -1);
	assert_int_equal(errno, ELOOP);
	snprintf(via, sizeof via, "%s/v.sock_5460", link);
	assert_int_equal(hybrid_dial_path(via), -1);
	assert_int_equal(errno, ELOOP);
	int c = hybrid_dial_path(q);
	assert_true(c >= 0);
	close(c);
	assert_int_equal(hybrid_dial_path(real), -1); /* not a socket */
	assert_int_equal(errno, ENOTSOCK);

	/* the relay removes its socket, and not what took its name */
	assert_int_equal(unlink(q), 0);
	FILE *f = fopen(q, "w");
	assert_non_null(f);
	fclose(f);
	hybrid_unbind(&hs);
	assert_int_equal(lstat(q, &st), 0);
	close(fd);
	/* ... nor does it remove a file at its name when it starts: it does not bind there */
	assert_int_equal(hybrid_listen(p, 5460, 1, &hs), -1);
	assert_int_equal(lstat(q, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(unlink(q), 0);
	fd = hybrid_listen(p, 5460, 1, &hs);
	assert_true(fd >= 0);
	hybrid_unbind(&hs);
	assert_int_equal(lstat(q, &st), -1);
	close(fd);

	in_dir(via, sizeof via, "real/to-listener");
	unlink(via);
	rmdir(real);
	unlink(link);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_request_rules),
		cmocka_unit_test(test_siblings_messages),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_from),
		cmocka_unit_test(test_host_policy),
		cmocka_unit_test(test_host_policy_vmshim_ports),
		cmocka_unit_test(test_host_policy_shared_cid),
		cmocka_unit_test(test_host_policy_errors),
		cmocka_unit_test(test_host_policy_owner),
		cmocka_unit_test(test_regrant),
		cmocka_unit_test(test_host_domains),
		cmocka_unit_test(test_host_domains_errors),
		cmocka_unit_test(test_hybrid_ok),
		cmocka_unit_test(test_hybrid_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
