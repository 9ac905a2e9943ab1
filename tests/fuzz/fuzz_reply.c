/* libFuzzer target: helperd's replies as the shim receives them (shim/helperd_client.c), and
 * the arrivals on a listener's channel (shim/arrivals.c). Input: one byte for how many
 * descriptors to attach (0 to 3), one for the request answered (low 3 bits, unknown types
 * included; 2, once CLAIM, stands for an arrival) and the family of the listener an arrival
 * is for (bit 3: AF_INET6, else AF_INET), then the message. Whatever arrives, receiving and
 * checking it must neither crash nor leave a descriptor open, and a message the checks
 * accept must be one the shim can use as it is. */
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
	if (n != (ssize_t)sizeof(*reply) || msg_len != sizeof(*reply) ||
	    memcmp(reply, msg, sizeof(*reply)) != 0 || reply->magic != VMSHIM_PROTO_MAGIC ||
	    reply->status < 0 || reply->status > VMSHIM_STATUS_MAX)
		abort();
	if (type != VMSHIM_REQ_REGISTER && type != VMSHIM_REQ_COUNTERS)
		abort();
	if ((fd >= 0) != (reply->status == 0))
		abort();
}

/* Aborts unless an accepted arrival can be shown by a socket of the listener's family. */
static void assert_arrival_usable(const struct vmshim_arrival *a, const uint8_t *msg,
				  size_t msg_len, ssize_t n, int fd, int listener_family)
{
	if (n != (ssize_t)sizeof(*a) || msg_len != sizeof(*a) || memcmp(a, msg, sizeof(*a)) != 0 ||
	    a->magic != VMSHIM_ARRIVAL_MAGIC || a->reserved != 0 || fd < 0 ||
	    !is_ip_family(a->peer.family) || !is_ip_family(a->local.family))
		abort();
	if (listener_family == AF_INET && (a->peer.family != AF_INET || a->local.family != AF_INET))
		abort(); /* an IPv4 listener can show only IPv4 endpoints */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	union {
		struct vmshim_reply reply;
		struct vmshim_arrival arrival;
	} m;
	const char *why = NULL;
	int fd, rc;

	if (size < 2 || size - 2 > FUZZ_MAX_MESSAGE)
		return 0;
	unsigned n_fds = data[0] % (FUZZ_MAX_FDS + 1);
	uint32_t type = data[1] & 7;
	int listener_family = data[1] & 8 ? AF_INET6 : AF_INET;
	const uint8_t *msg = data + 2;
	size_t msg_len = size - 2;
	int open_before = fuzz_open_fds();
	bool arrival = type == 2;

	size_t want = arrival ? sizeof(m.arrival) : sizeof(m.reply);
	ssize_t n = fuzz_pass(msg, msg_len, n_fds, &m, want, &fd);
	if (arrival)
		rc = proto_check_arrival(&m.arrival, n, fd >= 0, listener_family, &why);
	else
		rc = proto_check_reply(type, &m.reply, n, fd >= 0, &why);
	if (rc == 0 && arrival)
		assert_arrival_usable(&m.arrival, msg, msg_len, n, fd, listener_family);
	else if (rc == 0)
		assert_usable(type, &m.reply, msg, msg_len, n, fd);
	else if (!why || !*why)
		abort();
	if (fd >= 0)
		close(fd);
	if (fuzz_open_fds() != open_before)
		abort();
	return 0;
}
