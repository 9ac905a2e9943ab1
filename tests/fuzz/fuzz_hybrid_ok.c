/* libFuzzer target: the answer of a hybrid VMM to the relay's CONNECT (relay/hybrid_line.h),
 * which a VMM's user, not root, controls. Whatever the bytes, parsing them must neither
 * crash nor read out of bounds, and an accepted answer must be exactly "OK <port>\n" as the
 * relay would print that port: no sign, spaces, leading zeros or anything after. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid_line.h"
#include "vmshim/ports.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char again[32];
	uint32_t port = 0;

	if (!hybrid_parse_ok((const char *)data, size, &port))
		return 0;
	int n = snprintf(again, sizeof again, "OK %" PRIu32 "\n", port);
	if (port == 0 || port > VMSHIM_VSOCK_PORT_MAX || (size_t)n != size ||
	    memcmp(again, data, size) != 0)
		abort();
	return 0;
}
