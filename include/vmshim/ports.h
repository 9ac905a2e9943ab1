/* Each peer owns a block of vsock ports (policy/FORMAT.md, "vsock ports"):
 *   base + P            its IPv4 TCP port P, where siblings connect
 *   base + 65536 + P    its IPv6 TCP port P
 *   base + 131072 + P   the source of a connection it makes from TCP port P
 *   base + 131072       (TCP port 0, never a connection's) its helperd's control port,
 *                       unless the policy gives another */
#ifndef VMSHIM_PORTS_H
#define VMSHIM_PORTS_H

#include <stdbool.h>
#include <stdint.h>

#define VMSHIM_PORT_BLOCK 196608u
#define VMSHIM_CONTROL_OFFSET 131072u
#define VMSHIM_V6_OFFSET 65536u
#define VMSHIM_SOURCE_OFFSET 131072u
#define VMSHIM_VSOCK_PORT_MAX 4294967294u /* the highest a block may use: VMADDR_PORT_ANY - 1 */
/* TCP source ports below this say root bound them (rsh, NFS "secure"). The source port of a
 * block that stands for one says nothing of the kind: any user of the guest can bind it. So
 * such connections stay TCP, and a sibling connection from one is refused. */
#define VMSHIM_TCP_PRIVILEGED_PORTS 1024u

static inline uint32_t vmshim_listen_port(uint32_t base, int ipv6, uint16_t tcp_port)
{
	return base + (ipv6 ? VMSHIM_V6_OFFSET : 0) + tcp_port;
}

static inline uint32_t vmshim_source_port(uint32_t base, uint16_t tcp_port)
{
	return base + VMSHIM_SOURCE_OFFSET + tcp_port;
}

/* A helperd's control connections come from VMSHIM_CONTROL_SOURCES ports from
 * vmshim_control_source_first: the privileged vsock ports 1..1023, which only its guest's
 * root binds, or where guests share a CID (tests), the source ports of TCP ports 1..1023 in
 * its block, which no shim connection uses. Its peers and the relay take them by this. */
#define VMSHIM_CONTROL_SOURCES (VMSHIM_TCP_PRIVILEGED_PORTS - 1)

static inline uint32_t vmshim_control_source_first(uint32_t base, bool shared_cid)
{
	return shared_cid ? vmshim_source_port(base, 1) : 1;
}

static inline bool vmshim_is_control_source(uint32_t first, uint32_t port)
{
	return port >= first && port - first < VMSHIM_CONTROL_SOURCES;
}

#endif
