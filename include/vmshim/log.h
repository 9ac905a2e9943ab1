#ifndef VMSHIM_LOG_H
#define VMSHIM_LOG_H

#include <stdint.h>
#include <syslog.h>

/* The daemons' log (helperd, vmshim-relay): stderr, or syslog once the daemon has detached;
 * name goes in front of every line. */
void log_open(const char *name, int to_syslog, int debug);
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Lines that someone else can cause at will (a local user on the control socket, a peer
 * guest, a caller of the relay) are limited per source: at most LOG_LIMIT_BURST lines of
 * one source per LOG_LIMIT_WINDOW_MS; the rest are counted and reported in one
 * "N similar lines about SOURCE suppressed" line, when the source speaks again after its
 * window or at the next log_limited_flush (the daemons call it once a second). */
#define LOG_LIMIT_BURST 10
#define LOG_LIMIT_WINDOW_MS 10000
#define LOG_LIMIT_SLOTS 64 /* a power of two */

enum log_source_kind { LOG_KIND_UID = 1, LOG_KIND_CID = 2 };
#define LOG_SOURCE(kind, id) ((uint64_t)(kind) << 32 | (uint32_t)(id))

void log_limited(uint64_t source, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_limited_flush(void);
/* "uid", "cid" or "source": how a suppression line names the source. */
const char *log_source_kind(uint64_t source);

#endif
