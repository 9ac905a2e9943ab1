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

static const char *why;

static struct vmshim_request request(uint32_t type)
{
	return (struct vmshim_request){.magic = VMSHIM_PROTO_MAGIC, .type = type, .port = 8080};
}

/* A successful reply; for a claim, the endpoints of an IPv4 connection. */
static struct vmshim_reply success(void)
{
	return (struct vmshim_reply){
		.magic = VMSHIM_PROTO_MAGIC,
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

static const char *check_claim(struct vmshim_reply reply, int listener_family)
{
	why = NULL;
	return proto_check_claim(&reply, listener_family, &why) == 0 ? NULL : why;
}

static void test_request_accepted(void **state)
{
	(void)state;
	assert_null(check_request(request(VMSHIM_REQ_REGISTER), REQ_SIZE, true));
	assert_null(check_request(request(VMSHIM_REQ_CLAIM), REQ_SIZE, true));
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
	assert_string_equal(check_request(request(VMSHIM_REQ_COUNTERS + 1), REQ_SIZE, false),
			    "unknown type");
	assert_string_equal(check_request(request(UINT32_MAX), REQ_SIZE, true), "unknown type");
}

static void test_request_fd(void **state)
{
	(void)state;
	assert_string_equal(check_request(request(VMSHIM_REQ_REGISTER), REQ_SIZE, false),
			    "descriptor missing");
	assert_string_equal(check_request(request(VMSHIM_REQ_CLAIM), REQ_SIZE, false),
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
	assert_null(check_reply(VMSHIM_REQ_REGISTER, refusal(0), REPLY_SIZE, false));
	assert_null(check_reply(VMSHIM_REQ_REGISTER, refusal(EACCES), REPLY_SIZE, false));
	assert_null(check_reply(VMSHIM_REQ_CLAIM, success(), REPLY_SIZE, true));
	assert_null(check_reply(VMSHIM_REQ_CLAIM, refusal(ENOENT), REPLY_SIZE, false));
	assert_null(check_reply(VMSHIM_REQ_COUNTERS, refusal(0), REPLY_SIZE, true));
	assert_null(check_reply(VMSHIM_REQ_COUNTERS, refusal(ENOENT), REPLY_SIZE, false));
	/* A refused claim names no endpoints, and none is looked at. */
	assert_null(check_reply(VMSHIM_REQ_CLAIM, refusal(VMSHIM_STATUS_MAX), REPLY_SIZE, false));
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
	struct vmshim_reply reply = success();
	reply.magic ^= 1;
	assert_string_equal(check_reply(VMSHIM_REQ_CLAIM, reply, REPLY_SIZE, true), "bad magic");
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
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, refusal(0), REPLY_SIZE, true),
			    "descriptor where none belongs");
	assert_string_equal(check_reply(VMSHIM_REQ_REGISTER, refusal(EACCES), REPLY_SIZE, true),
			    "descriptor where none belongs");
	assert_string_equal(check_reply(VMSHIM_REQ_CLAIM, success(), REPLY_SIZE, false),
			    "descriptor missing");
	assert_string_equal(check_reply(VMSHIM_REQ_CLAIM, refusal(ENOENT), REPLY_SIZE, true),
			    "descriptor where none belongs");
	assert_string_equal(check_reply(VMSHIM_REQ_COUNTERS, refusal(0), REPLY_SIZE, false),
			    "descriptor missing");
	assert_string_equal(check_reply(VMSHIM_REQ_COUNTERS, refusal(ENOENT), REPLY_SIZE, true),
			    "descriptor where none belongs");
}

static void test_reply_claim_families(void **state)
{
	(void)state;
	struct vmshim_reply reply = success();
	reply.peer.family = AF_UNIX;
	assert_string_equal(check_reply(VMSHIM_REQ_CLAIM, reply, REPLY_SIZE, true),
			    "endpoint of unknown family");
	reply = success();
	reply.local.family = 0;
	assert_string_equal(check_reply(VMSHIM_REQ_CLAIM, reply, REPLY_SIZE, true),
			    "endpoint of unknown family");
	reply.peer.family = reply.local.family = AF_INET6;
	assert_null(check_reply(VMSHIM_REQ_CLAIM, reply, REPLY_SIZE, true));
}

static void test_claim_presentable(void **state)
{
	(void)state;
	struct vmshim_reply reply = success();
	assert_null(check_claim(reply, AF_INET));
	assert_null(check_claim(reply, AF_INET6)); /* shown IPv4-mapped */
	reply.peer.family = AF_INET6;
	assert_string_equal(check_claim(reply, AF_INET), "IPv6 endpoint for an IPv4 listener");
	assert_null(check_claim(reply, AF_INET6));
	reply = success();
	reply.local.family = AF_INET6;
	assert_string_equal(check_claim(reply, AF_INET), "IPv6 endpoint for an IPv4 listener");
	assert_null(check_claim(reply, AF_INET6));
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
		cmocka_unit_test(test_reply_claim_families),
		cmocka_unit_test(test_claim_presentable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
