#ifndef VMSHIM_LOG_H
#define VMSHIM_LOG_H

#include <syslog.h>

/* The daemons' log (helperd, vmshim-relay): stderr, or syslog once the daemon has detached;
 * name goes in front of every line. */
void log_open(const char *name, int to_syslog, int debug);
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
