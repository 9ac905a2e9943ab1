#ifndef HELPERD_CONTROL_H
#define HELPERD_CONTROL_H

/* Opens RUNDIR/helperd.sock, where the shims of this guest ask (include/vmshim/proto.h). */
int control_open(const char *rundir);
void control_close(void);

#endif
