/* libFuzzer target: the DIALLED message (include/vmshim/dialled.h), which helperd reads from
 * any peer guest. Whatever the bytes, checking them must neither crash nor read out of
 * bounds, and whatever is accepted must encode back to the very same message: no field is
 * read loosely. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmshim/dialled.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t again[DIALLED_SIZE];
	struct vmshim_endpoint dest;
	const char *why = NULL;

	if (size != DIALLED_SIZE)
		return 0;
	if (dialled_parse(data, &dest, &why) < 0) {
		if (!why || !why[0])
			abort();
		return 0;
	}
	dialled_encode(again, &dest);
	if (memcmp(again, data, DIALLED_SIZE) != 0)
		abort();
	return 0;
}
