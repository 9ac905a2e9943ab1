/* A hybrid VM's sockets (its VMM's PATH, the relay's PATH_PORT) lie in a directory that the
 * VMM's user may own, and the relay is root: it reaches them only along a path without
 * symbolic links, so that user cannot point it at anything else (a root-only socket to
 * connect to, a root-only directory to create or delete in). */
#ifndef RELAY_HYBRID_PATH_H
#define RELAY_HYBRID_PATH_H

#include <stdint.h>
#include <sys/types.h>

#include "host_policy.h"

/* The relay's listening socket PATH_PORT, and what is needed to remove it, and only it. */
struct hybrid_sock {
	int dir; /* PATH's directory, opened without following links; -1: none */
	char name[HOST_HYBRID_PATH_MAX + 12];
	dev_t dev;
	ino_t ino;
};

/* A non-blocking Unix socket listening at PATH_PORT with mode 0660 from its creation (a
 * previous relay's socket there is removed first); -1 with errno. */
int hybrid_listen(const char *path, uint32_t port, int backlog, struct hybrid_sock *hs);

/* Removes PATH_PORT if it is still the socket hybrid_listen made, and closes hs->dir. */
void hybrid_unbind(struct hybrid_sock *hs);

/* A non-blocking connection under way to the socket at path, which must be a socket reached
 * without links; -1 with errno (ELOOP: a link on the way). */
int hybrid_dial_path(const char *path);

#endif
