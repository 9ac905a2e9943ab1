/* A socket the shim has tried to take to a sibling and given back to TCP tells guest-wide
 * mode's programs (helperd/guestwide.bpf.c) to leave it alone, so that no connection is
 * tried over vsock twice: a setsockopt() at a level no kernel has, which those programs
 * take for themselves and, where they are not attached, the kernel refuses (ENOPROTOOPT)
 * without changing anything. It concerns only the caller's own socket. */
#ifndef VMSHIM_OWNPATH_H
#define VMSHIM_OWNPATH_H

#define VMSHIM_SOCKOPT_LEVEL 0x564d5348 /* "VMSH" */
#define VMSHIM_SOCKOPT_OWN_PATH 1

#endif
