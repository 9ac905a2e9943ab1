/* Unit tests of the frames helperds exchange (common/peerproto.c): what is sent is read back
 * as it was, and every broken rule is refused with its reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>

#include "vmshim/peerproto.h"

static struct peerproto_announce a, b;
static uint8_t frame[PEERPROTO_HEADER_SIZE + PEERPROTO_MAX_PAYLOAD];

static long sample(void)
{
	memset(&a, 0, sizeof(a));
	a.n_addrs = 2;
	a.addrs[0] = (struct peerproto_addr){.family = AF_INET, .len = 32, .addr = {198, 18, 0, 1}};
	a.addrs[1] = (struct peerproto_addr){.family = AF_INET6, .len = 64, .addr = {0x20, 0x01, 0x0d, 0xb8}};
	a.n_ports4 = 3;
	a.ports4[0] = 22, a.ports4[1] = 80, a.ports4[2] = 65535;
	a.n_ports6 = 1;
	a.ports6[0] = 443;
	return peerproto_encode_announce(&a, frame);
}

static const char *parse(long len)
{
	unsigned type;
	const char *why;
	long payload = peerproto_header(frame, &type, &why);

	if (payload < 0)
		return why;
	assert_int_equal(payload, len - PEERPROTO_HEADER_SIZE);
	assert_int_equal(type, PEERPROTO_ANNOUNCE);
	if (peerproto_parse_announce(frame + PEERPROTO_HEADER_SIZE, (size_t)payload, &b, &why) < 0)
		return why;
	return NULL;
}

static void test_round_trip(void **state)
{
	(void)state;
	long len = sample();
	assert_int_equal(len, PEERPROTO_HEADER_SIZE + 12 + 2 * 20 + 2 * 4);
	assert_null(parse(len));
	assert_int_equal(b.n_addrs, 2);
	assert_int_equal(b.addrs[0].family, AF_INET);
	assert_memory_equal(b.addrs[0].addr, a.addrs[0].addr, 16);
	assert_int_equal(b.addrs[1].len, 64);
	assert_int_equal(b.n_ports4, 3);
	assert_int_equal(b.ports4[2], 65535);
	assert_int_equal(b.ports6[0], 443);
}

static void test_header_refusals(void **state)
{
	(void)state;
	long len = sample();
	frame[0] ^= 1;
	assert_string_equal(parse(len), "bad magic");
	sample();
	frame[4] = 2;
	assert_string_equal(parse(len), "unknown version");
	sample();
	frame[5] = 9;
	assert_string_equal(parse(len), "unknown message type");
	sample();
	frame[7] = 1;
	assert_string_equal(parse(len), "reserved bits set");
	sample();
	frame[9] = 0x01; /* a length of 65536 + ... */
	assert_string_equal(parse(len), "oversized message");
}

static void test_payload_refusals(void **state)
{
	(void)state;
	const char *why;
	long len = sample();
	uint8_t *p = frame + PEERPROTO_HEADER_SIZE;
	size_t plen = (size_t)len - PEERPROTO_HEADER_SIZE;

	assert_int_equal(peerproto_parse_announce(p, 11, &b, &why), -1);
	assert_string_equal(why, "announcement too short");
	assert_int_equal(peerproto_parse_announce(p, plen - 1, &b, &why), -1);
	assert_string_equal(why, "length does not match the counts");
	p[3] = 65; /* 65 addresses */
	assert_int_equal(peerproto_parse_announce(p, plen, &b, &why), -1);
	assert_string_equal(why, "too many entries");
	sample();
	p[12 + 4 + 5] = 1; /* a byte after the IPv4 address */
	assert_int_equal(peerproto_parse_announce(p, plen, &b, &why), -1);
	assert_string_equal(why, "malformed address");
	sample();
	p[12 + 1] = 33; /* IPv4 /33 */
	assert_int_equal(peerproto_parse_announce(p, plen, &b, &why), -1);
	assert_string_equal(why, "malformed address");
	sample();
	p[12] = 5; /* family 5 */
	assert_int_equal(peerproto_parse_announce(p, plen, &b, &why), -1);
	assert_string_equal(why, "malformed address");
	sample();
	p[12 + 40 + 2] = 0, p[12 + 40 + 3] = 22; /* 22, 22: not increasing */
	assert_int_equal(peerproto_parse_announce(p, plen, &b, &why), -1);
	assert_string_equal(why, "ports not strictly increasing");
	sample();
	p[12 + 40] = 0, p[12 + 40 + 1] = 0; /* port 0 */
	assert_int_equal(peerproto_parse_announce(p, plen, &b, &why), -1);
	assert_string_equal(why, "ports not strictly increasing");
}

static void test_encode_limits(void **state)
{
	(void)state;
	memset(&a, 0, sizeof(a));
	a.n_addrs = PEERPROTO_MAX_ADDRS;
	a.n_ports4 = PEERPROTO_MAX_PORTS;
	for (size_t i = 0; i < a.n_ports4; i++)
		a.ports4[i] = (uint16_t)(i + 1);
	for (size_t i = 0; i < a.n_addrs; i++)
		a.addrs[i] = (struct peerproto_addr){.family = AF_INET6, .len = 128,
						     .addr = {0x20, 0x01, 0x0d, 0xb8, [15] = (uint8_t)i}};
	long len = peerproto_encode_announce(&a, frame);
	assert_true(len > 0 && len <= PEERPROTO_HEADER_SIZE + PEERPROTO_MAX_PAYLOAD);
	assert_null(parse(len));
	a.n_ports6 = 1;
	a.ports6[0] = 1;
	assert_int_equal(peerproto_encode_announce(&a, frame), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_header_refusals),
		cmocka_unit_test(test_payload_refusals),
		cmocka_unit_test(test_encode_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
