/* The relay's status socket, RUNDIR/status, and its client. */
#ifndef RELAY_STATUS_H
#define RELAY_STATUS_H

int status_open(const char *rundir);
void status_close(const char *rundir);

/* Closes readers that did not take their answer within STATUS_SEND_MS; called every tick. */
void status_tick(void);

/* `vmshim-relay status`: prints the relay's answer. The exit status. */
int status_print(const char *rundir);

#endif
