#ifndef VMSHIM_FDPASS_H
#define VMSHIM_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* Sends len bytes as one message, with fd attached unless it is -1. */
ssize_t fdpass_send(int sock, const void *buf, size_t len, int fd);

/* Receives one message; *fd is the attached descriptor (close-on-exec) or -1. A message
 * with more than one descriptor, or a truncated one, is refused with EBADMSG. */
ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fd);

#endif
