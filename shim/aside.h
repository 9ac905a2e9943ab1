#ifndef VMSHIM_ASIDE_H
#define VMSHIM_ASIDE_H

/* Where the shim keeps its own descriptors while a connect is pending: the top quarter of
 * the descriptors the process may open, so that they do not push the application's next
 * ones up (a program that sizes its tables by its connection count, as wrk does; select()'s
 * FD_SETSIZE). fd_aside_floor reads where it begins (-1 if it cannot be known), once for all
 * the descriptors of one connect. */
int fd_aside_floor(void);

/* fd, or a close-on-exec duplicate of it at floor or above (fd then closed); fd itself when
 * that range is full or floor is -1. */
int fd_aside(int fd, int floor);

/* A close-on-exec duplicate of fd there, made in one call (anywhere when that range is full
 * or floor is -1); -1 on error. */
int fd_aside_dup(int fd, int floor);

#endif
