#ifndef VMSHIM_ASIDE_H
#define VMSHIM_ASIDE_H

/* fd, or a close-on-exec duplicate of it in the top quarter of the descriptors the process
 * may open (fd then closed): where the shim keeps its own descriptors while a connect is
 * pending, so that they do not push the application's next ones up (a program that sizes its
 * tables by its connection count, as wrk does; select()'s FD_SETSIZE). fd itself when that
 * range is full. */
int fd_aside(int fd);

/* A close-on-exec duplicate of fd there, made in one call (anywhere when that range is
 * full); -1 on error. */
int fd_aside_dup(int fd);

#endif
