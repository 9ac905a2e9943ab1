#ifndef HELPERD_CONTROL_H
#define HELPERD_CONTROL_H

/* Opens RUNDIR/helperd.sock, where the shims of this guest ask (include/vmshim/proto.h). */
#include <stdint.h>

int control_open(const char *rundir);
/* Closes the connections that have not asked within their time. */
void control_expire(int64_t now_ms);
void control_close(void);

#endif
