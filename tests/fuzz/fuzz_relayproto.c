/* libFuzzer target: the relay's messages (include/vmshim/relayproto.h), which a guest sends
 * (REQUEST, ASK_SIBLINGS), the relay answers (REPLY, SIBLINGS' header and entries) and a
 * destination reads (FROM). The first byte picks the message, the rest is it. Whatever the bytes, checking them must neither crash nor read
 * out of bounds, and whatever is accepted must encode back to the very same message: no
 * field is read loosely. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmshim/relayproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t sizes[] = {RELAYPROTO_REQUEST_SIZE, RELAYPROTO_REPLY_SIZE,
				       RELAYPROTO_FROM_SIZE, RELAYPROTO_SIBLINGS_HEADER_SIZE,
				       RELAYPROTO_SIBLING_SIZE};
	uint8_t again[RELAYPROTO_SIBLING_SIZE];
	struct relayproto_addr addr;
	struct relayproto_sibling sibling;
	enum relayproto_status status;
	uint32_t source;
	uint16_t count;
	bool asks;
	const char *why = NULL;

	if (size < 1 || data[0] >= sizeof sizes / sizeof sizes[0] || size - 1 != sizes[data[0]])
		return 0;
	const uint8_t *msg = data + 1;
	switch (data[0]) {
	case 0:
		if (relayproto_parse_request(msg, &addr, &source, &asks, &why) < 0)
			break;
		if (asks)
			relayproto_ask_siblings(again, source);
		else
			relayproto_request(again, addr.cid, addr.port, source, addr.flags);
		if (memcmp(again, msg, RELAYPROTO_REQUEST_SIZE) != 0)
			abort();
		return 0;
	case 1:
		if (relayproto_parse_reply(msg, &status, &why) < 0)
			break;
		relayproto_reply(again, status);
		if (memcmp(again, msg, RELAYPROTO_REPLY_SIZE) != 0 ||
		    strcmp(relayproto_status_name(status), "unknown") == 0)
			abort();
		return 0;
	case 2:
		if (relayproto_parse_from(msg, &addr, &why) < 0)
			break;
		relayproto_from(again, addr.cid, addr.port, addr.flags);
		if (memcmp(again, msg, RELAYPROTO_FROM_SIZE) != 0)
			abort();
		return 0;
	case 3:
		if (relayproto_parse_siblings_header(msg, &count, &why) < 0)
			break;
		relayproto_siblings_header(again, count);
		if (memcmp(again, msg, RELAYPROTO_SIBLINGS_HEADER_SIZE) != 0)
			abort();
		return 0;
	case 4:
		if (relayproto_parse_sibling(msg, &sibling, &why) < 0)
			break;
		relayproto_sibling(again, &sibling);
		if (memcmp(again, msg, RELAYPROTO_SIBLING_SIZE) != 0)
			abort();
		return 0;
	}
	/* refused: and says why */
	if (!why || !why[0])
		abort();
	return 0;
}
