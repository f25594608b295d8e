/*
 * log.c — the bridge's logging: one line per message on stderr with a
 * time and a level; errors also go into the status in the segment. No
 * message ever holds a password: callers pass addresses from
 * redis_conf_addr() and Redis' own error text, which names neither.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge_i.h"
#include "shmstat_i.h"

int log_level = SHMSTAT_LOG_INFO;

void blog(int level, const char *fmt, ...)
{
	static const char *names[] = {
		[SHMSTAT_LOG_ERROR] = "error",
		[SHMSTAT_LOG_WARNING] = "warning",
		[SHMSTAT_LOG_INFO] = "info",
		[SHMSTAT_LOG_DEBUG] = "debug",
	};
	char msg[1024], ts[32];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* One write per line, so lines of several bridges do not mix. */
	fprintf(stderr, "%s shmstat-bridge[%d] %s: %s\n", ts, (int)getpid(),
		level >= 0 && level <= SHMSTAT_LOG_DEBUG && names[level]
			? names[level]
			: "log",
		msg);
}

void bridge_error(struct bridge *b, int level, const char *fmt, ...)
{
	static char last[256];
	static uint64_t last_ns;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint64_t now = shmstat__now_realtime_ns();
	snprintf(b->status.last_error, sizeof(b->status.last_error), "%s",
		 msg);
	b->status.last_error_ns = now;
	/* The same error every retry: log it again every 30 s only. */
	if (strcmp(msg, last) == 0 && now - last_ns < 30000000000u) {
		blog(SHMSTAT_LOG_DEBUG, "%s", msg);
		return;
	}
	snprintf(last, sizeof(last), "%s", msg);
	last_ns = now;
	blog(level, "%s", msg);
}

