/* Unit tests of the checks on helperd's control socket (common/proto.c): helperd's of the
 * requests it receives, the shim's of the replies. Each rule has a case that only it
 * refuses, next to a well-formed message that passes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/socket.h>

#include "vmshim/proto.h"

#define REQ_SIZE ((ssize_t)sizeof(struct vmshim_request))
#define REPLY_SIZE ((ssize_t)sizeof(struct vmshim_reply))
#define ARRIVAL_SIZE ((ssize_t)sizeof(struct vmshim_arrival))

static const char *why;

static struct vmshim_request request(uint32_t type)
{
	return (struct vmshim_request){.magic = VMSHIM_PROTO_MAGIC, .type = type, .port = 8080};
}

/* An arrival of an IPv4 connection. */
static struct vmshim_arrival arrival(void)
{
	return (struct vmshim_arrival){
		.magic = VMSHIM_ARRIVAL_MAGIC,
		.peer = {.family = AF_INET, .port = 40000, .addr = {198, 18, 0, 2}},
		.local = {.family = AF_INET, .port = 7000, .addr = {198, 18, 0, 1}},
	};
}

static struct vmshim_reply refusal(int32_t status)
{
	return (struct vmshim_reply){.magic = VMSHIM_PROTO_MAGIC, .status = status};
}

static const char *check_request(struct vmshim_request req, ssize_t n, bool with_fd)
{
	why = NULL;
	return proto_check_request(&req, n, with_fd, &why) == 0 ? NULL : why;
}

static const char *check_reply(uint32_t type, struct vmshim_reply reply, ssize_t n, bool with_fd)
{
	why = NULL;
	return proto_check_reply(type, &reply, n, with_fd, &why) == 0 ? NULL : why;
}

static const char *check_arrival(struct vmshim_arrival a, ssize_t n, bool with_fd,
				 int listener_family)
{
	why = NULL;
	return proto_check_arrival(&a, n, with_fd, listener_family, &why) == 0 ? NULL : why;
}

static void test_request_accepted(void **state)
{
	(void)state;
	assert_null(check_request(request(VMSHIM_REQ_REGISTER), REQ_SIZE, true));
	assert_null(check_request(request(VMSHIM_REQ_CLOSED), REQ_SIZE, false));
	assert_null(check_request(request(VMSHIM_REQ_STATUS), REQ_SIZE, false));
	assert_null(check_request(request(VMSHIM_REQ_COUNTERS), REQ_SIZE, false));
}

static void test_request_size(void **state)
{
	(void)state;
	assert_string_equal(check_request(request(VMSHIM_REQ_STATUS), -1, false), "unreadable");
	assert_string_equal(check_request(request(VMSHIM_REQ_STATUS), REQ_SIZE - 1, false),
			    "wrong size");
	assert_string_equal(check_request(request(VMSHIM_REQ_STATUS), 0, false), "wrong size");
}

static void test_request_magic(void **state)
{
	(void)state;
	struct vmshim_request req = request(VMSHIM_REQ_STATUS);
	req.magic ^= 1;
	assert_string_equal(check_request(req, REQ_SIZE, false), "bad magic");
}

static void test_request_type(void **state)
{
	(void)state;
	assert_string_equal(check_request(request(0), REQ_SIZE, false), "unknown type");
	/* CLAIM, withdrawn */
	assert_string_equal(check_request(request(2), REQ_SIZE, true), "unknown type");
	assert_string_equal(check_request(request(VMSHIM_REQ_COUNTERS + 1), REQ_SIZE, false),
			    "unknown type");
	assert_string_equal(check_request(request(UINT32_MAX), REQ_SIZE, true), "unknown type");
}

static void test_request_fd(void **state)
{
	(void)state;
	assert_string_equal(check_request(request(VMSHIM_REQ_REGISTER), REQ_SIZE, false),
			    "descriptor missing");
	assert_string_equal(check_request(request(VMSHIM_REQ_CLOSED), REQ_SIZE, true),
			    "descriptor where none belongs");
	assert_string_equal(check_request(request(VMSHIM_REQ_STATUS), REQ_SIZE, true),
			    "descriptor where none belongs");
	assert_string_equal(check_request(request(VMSHIM_REQ_COUNTERS), REQ_SIZE, true),
			    "descriptor where none belongs");
}

static void test_reply_accepted(void **state)
{
	(void)state;
	assert_null(check_reply(VMSHIM_REQ_REGISTER, refusal(0), REPLY_SIZE, true));
	assert_null(check_reply(VMSHIM_REQ_REGISTER, refusal(EACCES), REPLY_SIZE, false));
	assert_null(
		check_reply(VMSHIM_REQ_REGISTER, refusal(VMSHIM_STATUS_MAX), REPLY_SIZE, false));
	assert_null(check_reply(VMSHIM_REQ_COUNTERS, refusal(0), REPLY_SIZE, true));
	assert_null(check_reply(VMSHIM_REQ_COUNTERS, refusal(ENOENT), REPLY_SIZE, false));
}

static void test_reply_size(void **state)
{
	(void)state;
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, refusal(0), -1, false), "unreadable");
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, refusal(0), REPLY_SIZE - 1, false),
			    "wrong size");
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, refusal(0), 0, false), "wrong size");
}

static void test_reply_magic(void **state)
{
	(void)state;
	struct vmshim_reply reply = refusal(0);
	reply.magic ^= 1;
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, reply, REPLY_SIZE, true), "bad magic");
}

static void test_reply_status(void **state)
{
	(void)state;
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, refusal(-1), REPLY_SIZE, false),
			    "status not an errno value");
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, refusal(INT32_MIN), REPLY_SIZE, false),
			    "status not an errno value");
	assert_string_equal(
		check_reply(VMSHIM_REQ_REGISTER, refusal(VMSHIM_STATUS_MAX + 1), REPLY_SIZE, false),
		"status not an errno value");
}

static void test_reply_type(void **state)
{
	(void)state;
	/* CLOSED is not answered, STATUS is answered with text. */
	assert_string_equal(check_reply(VMSHIM_REQ_CLOSED, refusal(0), REPLY_SIZE, false),
			    "no such reply to this request");
	assert_string_equal(check_reply(VMSHIM_REQ_STATUS, refusal(0), REPLY_SIZE, false),
			    "no such reply to this request");
	assert_string_equal(check_reply(0, refusal(0), REPLY_SIZE, false),
			    "no such reply to this request");
	assert_string_equal(check_reply(VMSHIM_REQ_COUNTERS + 1, refusal(0), REPLY_SIZE, false),
			    "no such reply to this request");
}

static void test_reply_fd(void **state)
{
	(void)state;
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, refusal(0), REPLY_SIZE, false),
			    "descriptor missing");
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, refusal(EACCES), REPLY_SIZE, true),
			    "descriptor where none belongs");
	assert_string_equal(check_reply(VMSHIM_REQ_COUNTERS, refusal(0), REPLY_SIZE, false),
			    "descriptor missing");
	assert_string_equal(check_reply(VMSHIM_REQ_COUNTERS, refusal(ENOENT), REPLY_SIZE, true),
			    "descriptor where none belongs");
}

static void test_arrival_accepted(void **state)
{
	(void)state;
	struct vmshim_arrival a = arrival();
	assert_null(check_arrival(a, ARRIVAL_SIZE, true, AF_INET));
	assert_null(check_arrival(a, ARRIVAL_SIZE, true, AF_INET6)); /* shown IPv4-mapped */
	a.peer.family = a.local.family = AF_INET6;
	assert_null(check_arrival(a, ARRIVAL_SIZE, true, AF_INET6));
}

static void test_arrival_form(void **state)
{
	(void)state;
	struct vmshim_arrival a = arrival();
	assert_string_equal(check_arrival(a, -1, false, AF_INET), "unreadable");
	assert_string_equal(check_arrival(a, 0, false, AF_INET), "wrong size");
	assert_string_equal(check_arrival(a, ARRIVAL_SIZE - 1, true, AF_INET), "wrong size");
	assert_string_equal(check_arrival(a, ARRIVAL_SIZE, false, AF_INET), "descriptor missing");
	a.magic = VMSHIM_PROTO_MAGIC;
	assert_string_equal(check_arrival(a, ARRIVAL_SIZE, true, AF_INET), "bad magic");
	a = arrival();
	a.reserved = 1;
	assert_string_equal(check_arrival(a, ARRIVAL_SIZE, true, AF_INET), "bad magic");
}

static void test_arrival_families(void **state)
{
	(void)state;
	struct vmshim_arrival a = arrival();
	a.peer.family = AF_UNIX;
	assert_string_equal(check_arrival(a, ARRIVAL_SIZE, true, AF_INET6),
			    "endpoint of unknown family");
	a = arrival();
	a.local.family = 0;
	assert_string_equal(check_arrival(a, ARRIVAL_SIZE, true, AF_INET6),
			    "endpoint of unknown family");
	a = arrival();
	a.peer.family = AF_INET6;
	assert_string_equal(check_arrival(a, ARRIVAL_SIZE, true, AF_INET),
			    "IPv6 endpoint for an IPv4 listener");
	a = arrival();
	a.local.family = AF_INET6;
	assert_string_equal(check_arrival(a, ARRIVAL_SIZE, true, AF_INET),
			    "IPv6 endpoint for an IPv4 listener");
}

/* The sizes proto.h gives: the wire format is these structures as they are. */
static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct vmshim_request), 12);
	assert_int_equal(sizeof(struct vmshim_reply), 24);
	assert_int_equal(sizeof(struct vmshim_arrival), 48);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_accepted),
		cmocka_unit_test(test_request_size),
		cmocka_unit_test(test_request_magic),
		cmocka_unit_test(test_request_type),
		cmocka_unit_test(test_request_fd),
		cmocka_unit_test(test_reply_accepted),
		cmocka_unit_test(test_reply_size),
		cmocka_unit_test(test_reply_magic),
		cmocka_unit_test(test_reply_status),
		cmocka_unit_test(test_reply_type),
		cmocka_unit_test(test_reply_fd),
		cmocka_unit_test(test_arrival_accepted),
		cmocka_unit_test(test_arrival_form),
		cmocka_unit_test(test_arrival_families),
		cmocka_unit_test(test_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
