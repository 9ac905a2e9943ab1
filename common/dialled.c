/* The DIALLED message (include/vmshim/dialled.h). */
#include <netinet/in.h>
#include <string.h>

#include "vmshim/bigendian.h"
#include "vmshim/dialled.h"

static const uint8_t magic[5] = {'V', 'M', 'S', 'D', 1}; /* and the version */

void dialled_encode(uint8_t out[DIALLED_SIZE], const struct vmshim_endpoint *dest)
{
	memset(out, 0, DIALLED_SIZE);
	memcpy(out, magic, sizeof(magic));
	out[5] = dest->family == AF_INET ? 4 : 6;
	put16(out + 6, dest->port);
	memcpy(out + 8, dest->addr, dest->family == AF_INET ? 4 : 16);
}

int dialled_parse(const uint8_t in[DIALLED_SIZE], struct vmshim_endpoint *dest, const char **why)
{
	static const uint8_t zero[12];

	if (memcmp(in, magic, 4) != 0)
		*why = "bad magic";
	else if (in[4] != magic[4])
		*why = "unknown version";
	else if (in[5] != 4 && in[5] != 6)
		*why = "unknown address family";
	else if (in[5] == 4 && memcmp(in + 12, zero, sizeof(zero)) != 0)
		*why = "an IPv4 address with more than 4 bytes";
	else if (in[5] == 6 && memcmp(in + 8, zero, 10) == 0 && in[18] == 0xff && in[19] == 0xff)
		*why = "an IPv4-mapped IPv6 address (IPv4 is sent as IPv4)";
	else if (get16(in + 6) == 0)
		*why = "port 0";
	else {
		*dest = (struct vmshim_endpoint){
			.family = in[5] == 4 ? AF_INET : AF_INET6,
			.port = get16(in + 6),
		};
		memcpy(dest->addr, in + 8, 16);
		return 0;
	}
	return -1;
}
