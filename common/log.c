#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

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

static void log_va(int priority, const char *fmt, va_list ap)
{
	static const char *const names[] = {
		[LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_INFO] = "info",
		[LOG_DEBUG] = "debug",
	};

	if (use_syslog) {
		vsyslog(priority, fmt, ap);
	} else {
		fprintf(stderr, "%s: %s: ", who, names[priority] ? names[priority] : "log");
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
}

void log_msg(int priority, const char *fmt, ...)
{
	va_list ap;

	if (priority == LOG_DEBUG && !show_debug)
		return;
	va_start(ap, fmt);
	log_va(priority, fmt, ap);
	va_end(ap);
}

/* What one source said in its current window. Sources share a slot when their keys hash
 * alike: the table stays this size whoever floods, at worst two sources share one limit. */
struct limit {
	uint64_t source;
	int64_t window_start_ms;
	unsigned lines, suppressed;
};

static struct limit limits[LOG_LIMIT_SLOTS];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say_suppressed(struct limit *l)
{
	if (l->suppressed)
		log_msg(LOG_WARNING, "%u similar lines about %s %" PRIu64 " suppressed",
			l->suppressed, log_source_kind(l->source), l->source & UINT32_MAX);
	l->suppressed = 0;
}

const char *log_source_kind(uint64_t source)
{
	switch (source >> 32) {
	case LOG_KIND_UID: return "uid";
	case LOG_KIND_CID: return "cid";
	default: return "source";
	}
}

void log_limited(uint64_t source, int priority, const char *fmt, ...)
{
	struct limit *l = &limits[(source * 0x9e3779b97f4a7c15ull) >> 58 & (LOG_LIMIT_SLOTS - 1)];
	int64_t now = now_ms();
	va_list ap;

	if (priority == LOG_DEBUG && !show_debug)
		return;
	if (l->source != source || now - l->window_start_ms >= LOG_LIMIT_WINDOW_MS) {
		say_suppressed(l);
		*l = (struct limit){.source = source, .window_start_ms = now};
	}
	if (l->lines >= LOG_LIMIT_BURST) {
		l->suppressed++;
		return;
	}
	l->lines++;
	va_start(ap, fmt);
	log_va(priority, fmt, ap);
	va_end(ap);
}

void log_limited_flush(void)
{
	int64_t now = now_ms();

	for (size_t i = 0; i < LOG_LIMIT_SLOTS; i++)
		if (now - limits[i].window_start_ms >= LOG_LIMIT_WINDOW_MS)
			say_suppressed(&limits[i]);
}
