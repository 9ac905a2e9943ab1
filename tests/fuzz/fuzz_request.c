/* libFuzzer target: requests on helperd's control socket as helperd receives them
 * (helperd/control.c). Input: one byte for how many descriptors to attach (0 to 3), then
 * the message. Whatever arrives, receiving and checking it must neither crash nor leave a
 * descriptor open, and a request the check accepts must be one helperd can act on. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_fdpass.h"
#include "vmshim/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmshim_request req;
	const char *why = NULL;
	int fd;

	if (size < 1 || size - 1 > FUZZ_MAX_MESSAGE)
		return 0;
	unsigned n_fds = data[0] % (FUZZ_MAX_FDS + 1);
	const uint8_t *msg = data + 1;
	size_t msg_len = size - 1;
	int open_before = fuzz_open_fds();

	ssize_t n = fuzz_pass(msg, msg_len, n_fds, &req, sizeof(req), &fd);
	if (proto_check_request(&req, n, fd >= 0, &why) == 0) {
		bool wants_fd = req.type == VMSHIM_REQ_REGISTER;
		if (n != (ssize_t)sizeof(req) || msg_len != sizeof(req) ||
		    memcmp(&req, msg, sizeof(req)) != 0 || req.magic != VMSHIM_PROTO_MAGIC ||
		    req.type < VMSHIM_REQ_REGISTER || req.type > VMSHIM_REQ_COUNTERS ||
		    req.type == 2 /* CLAIM, withdrawn */ ||
		    wants_fd != (fd >= 0))
			abort();
	} else if (!why || !*why) {
		abort();
	}
	if (fd >= 0)
		close(fd);
	if (fuzz_open_fds() != open_before)
		abort();
	return 0;
}
