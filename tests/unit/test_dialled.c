/* Unit tests of the DIALLED message (common/dialled.c), which helperd reads from any peer
 * guest: each rule has a case that only it refuses, next to messages that pass. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "vmshim/dialled.h"

static const struct vmshim_endpoint v4 = {.family = AF_INET, .port = 8080,
					  .addr = {198, 18, 0, 2}};
static const struct vmshim_endpoint v6 = {.family = AF_INET6, .port = 443,
					  .addr = {0xfd, [15] = 2}};

static const char *refusal(const uint8_t msg[DIALLED_SIZE])
{
	struct vmshim_endpoint ep;
	const char *why = NULL;

	assert_int_equal(dialled_parse(msg, &ep, &why), -1);
	return why;
}

static void test_round_trip(void **state)
{
	const struct vmshim_endpoint *cases[] = {&v4, &v6};
	uint8_t msg[DIALLED_SIZE];

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct vmshim_endpoint ep;
		const char *why = NULL;
		dialled_encode(msg, cases[i]);
		assert_int_equal(dialled_parse(msg, &ep, &why), 0);
		assert_memory_equal(&ep, cases[i], sizeof(ep));
	}
	dialled_encode(msg, &v4);
	assert_memory_equal(msg, "VMSD\x01\x04\x1f\x90\xc6\x12\x00\x02", 12);
}

static void test_rules(void **state)
{
	uint8_t msg[DIALLED_SIZE];

	(void)state;
	dialled_encode(msg, &v4);
	msg[0] = 'X';
	assert_string_equal(refusal(msg), "bad magic");
	dialled_encode(msg, &v4);
	msg[4] = 2;
	assert_string_equal(refusal(msg), "unknown version");
	dialled_encode(msg, &v4);
	msg[5] = 5;
	assert_string_equal(refusal(msg), "unknown address family");
	dialled_encode(msg, &v4);
	msg[23] = 1;
	assert_string_equal(refusal(msg), "an IPv4 address with more than 4 bytes");
	dialled_encode(msg, &v4);
	msg[6] = msg[7] = 0;
	assert_string_equal(refusal(msg), "port 0");
	struct vmshim_endpoint mapped = {.family = AF_INET6, .port = 80,
					 .addr = {[10] = 0xff, [11] = 0xff, 198, 18, 0, 2}};
	dialled_encode(msg, &mapped);
	assert_string_equal(refusal(msg), "an IPv4-mapped IPv6 address (IPv4 is sent as IPv4)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
