/* libFuzzer target: helperd's replies as the shim receives them (shim/helperd_client.c, and
 * shim/accept.c for a claim). Input: one byte for how many descriptors to attach (0 to 3),
 * one for the request answered (low 3 bits, unknown types included) and the family of the
 * listener a claim is for (bit 3: AF_INET6, else AF_INET), then the message. Whatever
 * arrives, receiving and checking it must neither crash nor leave a descriptor open, and a
 * reply the checks accept must be one the shim can use as it is. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_fdpass.h"
#include "vmshim/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_ip_family(uint16_t family)
{
	return family == AF_INET || family == AF_INET6;
}

/* Aborts unless an accepted reply obeys every rule of include/vmshim/proto.h. */
static void assert_usable(uint32_t type, const struct vmshim_reply *reply, const uint8_t *msg,
			  size_t msg_len, ssize_t n, int fd)
{
	bool success = reply->status == 0;

	if (n != (ssize_t)sizeof(*reply) || msg_len != sizeof(*reply) ||
	    memcmp(reply, msg, sizeof(*reply)) != 0 || reply->magic != VMSHIM_PROTO_MAGIC ||
	    reply->status < 0 || reply->status > VMSHIM_STATUS_MAX)
		abort();
	if (type != VMSHIM_REQ_REGISTER && type != VMSHIM_REQ_CLAIM && type != VMSHIM_REQ_COUNTERS)
		abort();
	if ((fd >= 0) != (success && type != VMSHIM_REQ_REGISTER))
		abort();
	if (type == VMSHIM_REQ_CLAIM && success &&
	    !(is_ip_family(reply->peer.family) && is_ip_family(reply->local.family)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmshim_reply reply;
	const char *why = NULL;
	int fd;

	if (size < 2 || size - 2 > FUZZ_MAX_MESSAGE)
		return 0;
	unsigned n_fds = data[0] % (FUZZ_MAX_FDS + 1);
	uint32_t type = data[1] & 7;
	int listener_family = data[1] & 8 ? AF_INET6 : AF_INET;
	const uint8_t *msg = data + 2;
	size_t msg_len = size - 2;
	int open_before = fuzz_open_fds();

	ssize_t n = fuzz_pass(msg, msg_len, n_fds, &reply, sizeof(reply), &fd);
	if (proto_check_reply(type, &reply, n, fd >= 0, &why) == 0) {
		assert_usable(type, &reply, msg, msg_len, n, fd);
		if (type == VMSHIM_REQ_CLAIM && reply.status == 0 &&
		    proto_check_claim(&reply, listener_family, &why) == 0 &&
		    listener_family == AF_INET &&
		    (reply.peer.family != AF_INET || reply.local.family != AF_INET))
			abort(); /* an IPv4 listener can show only IPv4 endpoints */
	} else if (!why || !*why) {
		abort();
	}
	if (fd >= 0)
		close(fd);
	if (fuzz_open_fds() != open_before)
		abort();
	return 0;
}
