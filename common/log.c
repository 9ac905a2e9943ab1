#include <stdarg.h>
#include <stdio.h>

#include "vmshim/log.h"

static const char *who = "vmshim";
static int use_syslog, show_debug;

void log_open(const char *name, int to_syslog, int debug)
{
	who = name;
	use_syslog = to_syslog;
	show_debug = debug;
	if (use_syslog)
		openlog(name, LOG_PID, LOG_DAEMON);
}

void log_msg(int priority, const char *fmt, ...)
{
	static const char *const names[] = {
		[LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_INFO] = "info",
		[LOG_DEBUG] = "debug",
	};
	va_list ap;

	if (priority == LOG_DEBUG && !show_debug)
		return;
	va_start(ap, fmt);
	if (use_syslog) {
		vsyslog(priority, fmt, ap);
	} else {
		fprintf(stderr, "%s: %s: ", who, names[priority] ? names[priority] : "log");
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}
