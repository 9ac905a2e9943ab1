/* libFuzzer target: frames a peer helperd could send (include/vmshim/peerproto.h). Whatever
 * the bytes, checking them must neither crash nor read out of bounds, and whatever is
 * accepted must encode back to the very same frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmshim/peerproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct peerproto_announce a;
	static uint8_t again[PEERPROTO_HEADER_SIZE + PEERPROTO_MAX_PAYLOAD];
	unsigned type;
	const char *why;

	if (size < PEERPROTO_HEADER_SIZE)
		return 0;
	long len = peerproto_header(data, &type, &why);
	if (len < 0 || (size_t)len != size - PEERPROTO_HEADER_SIZE)
		return 0;
	if (peerproto_parse_announce(data + PEERPROTO_HEADER_SIZE, (size_t)len, &a, &why) < 0)
		return 0;
	long n = peerproto_encode_announce(&a, again);
	if (n != (long)size || memcmp(again, data, size) != 0)
		abort();
	return 0;
}
