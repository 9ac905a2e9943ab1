/* The hybrid handshake's lines (hybrid_line.h). The answer comes from the VMM, whose user
 * need not be root: it is parsed to the byte, never with scanf's leniency. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hybrid_line.h"
#include "vmshim/ports.h"

int hybrid_connect_line(char *buf, uint32_t port)
{
	return snprintf(buf, 24, "CONNECT %" PRIu32 "\n", port);
}

int hybrid_parse_ok(const char *line, size_t len, uint32_t *port)
{
	uint64_t v = 0;

	if (len < 5 || len > HYBRID_OK_MAX || memcmp(line, "OK ", 3) != 0 || line[len - 1] != '\n' ||
	    line[3] == '0')
		return 0;
	for (size_t i = 3; i < len - 1; i++) {
		if (line[i] < '0' || line[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (v > VMSHIM_VSOCK_PORT_MAX)
		return 0;
	*port = (uint32_t)v;
	return 1;
}
