/* What helperd and vmshim-relay both do when they start. */
#ifndef VMSHIM_DAEMON_H
#define VMSHIM_DAEMON_H

/* Raises the soft limit of open files to the hard one: each connection a daemon holds costs
 * it descriptors, and thousands may be open. */
void daemon_raise_fd_limit(void);

/* Makes sure dir exists, is a directory and is writable by this user alone, and takes the
 * lock file dir/NAME.lock that keeps a second daemon called name out. The lock's
 * descriptor, or -1 once logged. */
int daemon_rundir(const char *dir, const char *name);

/* Tells the service manager that the daemon serves from now on (systemd's Type=notify:
 * READY=1 to the datagram socket $NOTIFY_SOCKET), so that units ordered after it start only
 * then. Nothing without $NOTIFY_SOCKET. */
void daemon_notify_ready(void);

#endif
