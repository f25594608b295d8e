/*
 * log.c — the bridge's logging: one line per message on stderr; errors
 * also go into the status in the segment. No message ever holds a
 * password: callers pass addresses from redis_conf_addr() and Redis' own
 * error text, which names neither.
 *
 * On a terminal or in a file a line is "TIME shmstat-bridge[PID] LEVEL:
 * MESSAGE". Under systemd ($JOURNAL_STREAM names our stderr) it is
 * "<N>LEVEL: MESSAGE": journald takes the priority N from the prefix
 * (so `journalctl -p err` finds the errors) and adds time and pid itself.
 *
 * Warnings and errors are rate limited per kind (the format string of the
 * call), not per text: in 30 s one kind prints at most 3 lines and never
 * the same text twice, so the same failure for many keys, or two
 * alternating, cannot flood, while a new cause still shows; the next line
 * after the window counts what was held back; the held lines go to the
 * debug level. Known Redis and hiredis error
 * texts get their cause and the next step appended (explain()).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bridge_i.h"
#include "shmstat_i.h"

#define LOG_EVERY_NS 30000000000ull
#define LOG_KINDS 64
#define LOG_BURST 3 /* lines of one kind per window */

int log_level = SHMSTAT_LOG_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
	const char *kind;
	uint64_t since_ns;   /* this window began */
	uint64_t last_hash;  /* text of the last line printed */
	unsigned printed;    /* lines printed in this window */
	unsigned held;
} kinds[LOG_KINDS];

static bool journal;
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;

static void journal_check(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long long dev, ino;

	journal = v && sscanf(v, "%llu:%llu", &dev, &ino) == 2 &&
		  fstat(STDERR_FILENO, &st) == 0 &&
		  (unsigned long long)st.st_dev == dev &&
		  (unsigned long long)st.st_ino == ino;
}

bool log_journal(void)
{
	pthread_once(&journal_once, journal_check);
	return journal;
}

static uint64_t text_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* Rate limit per kind: in a window of LOG_EVERY_NS a kind prints at most
 * LOG_BURST lines and never the same text twice (so a new cause still
 * shows, and many keys or two alternating ones do not flood). false: held
 * back (counted); true: print, with *held the lines held back in the
 * window before. Call with log_lock held. */
static bool kind_due(const char *kind, const char *msg, unsigned *held)
{
	uint64_t now = shmstat__now_mono_ns(), h = text_hash(msg);
	size_t i, free_i = LOG_KINDS, oldest = 0;

	*held = 0;
	for (i = 0; i < LOG_KINDS; i++) {
		if (kinds[i].kind == kind)
			break;
		if (!kinds[i].kind && free_i == LOG_KINDS)
			free_i = i;
		if (kinds[i].since_ns < kinds[oldest].since_ns)
			oldest = i;
	}
	if (i == LOG_KINDS) {
		i = free_i < LOG_KINDS ? free_i : oldest;
		kinds[i].kind = kind;
		kinds[i].since_ns = now;
		kinds[i].last_hash = h;
		kinds[i].printed = 1;
		kinds[i].held = 0;
		return true;
	}
	if (now - kinds[i].since_ns < LOG_EVERY_NS) {
		if (h == kinds[i].last_hash || kinds[i].printed >= LOG_BURST) {
			kinds[i].held++;
			return false;
		}
		kinds[i].printed++;
		kinds[i].last_hash = h;
		return true;
	}
	*held = kinds[i].held;
	kinds[i].held = 0;
	kinds[i].printed = 1;
	kinds[i].since_ns = now;
	kinds[i].last_hash = h;
	return true;
}

static void emit(int level, const char *msg)
{
	static const char *names[] = {
		[SHMSTAT_LOG_ERROR] = "error",
		[SHMSTAT_LOG_WARNING] = "warning",
		[SHMSTAT_LOG_INFO] = "info",
		[SHMSTAT_LOG_DEBUG] = "debug",
	};
	/* syslog priorities: err, warning, info, debug */
	static const int prio[] = {
		[SHMSTAT_LOG_ERROR] = 3,
		[SHMSTAT_LOG_WARNING] = 4,
		[SHMSTAT_LOG_INFO] = 6,
		[SHMSTAT_LOG_DEBUG] = 7,
	};
	bool known = level >= 0 && level <= SHMSTAT_LOG_DEBUG && names[level];
	const char *name = known ? names[level] : "log";

	/* One write per line, so lines of several bridges do not mix. */
	if (log_journal()) {
		fprintf(stderr, "<%d>%s: %s\n", known ? prio[level] : 6, name,
			msg);
		return;
	}
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s shmstat-bridge[%d] %s: %s\n", ts, (int)getpid(),
		name, msg);
}

static void append(char *msg, size_t size, const char *s)
{
	size_t n = strlen(msg);
	snprintf(msg + n, size - n, "%s", s);
}

void log_explain(char *msg, size_t size)
{
	static const char eagain[] = "Resource temporarily unavailable";
	char *p = strstr(msg, eagain);

	if (p) {
		/* hiredis reports a command timeout as EAGAIN. */
		char rest[512];
		snprintf(rest, sizeof(rest), "%s", p + strlen(eagain));
		*p = '\0';
		append(msg, size,
		       "timed out: no reply within --command-timeout (Redis "
		       "busy, stopped or unreachable; the bridge retries, "
		       "counts stay pending; raise --command-timeout if Redis "
		       "is only slow)");
		append(msg, size, rest);
	} else if (strstr(msg, "Connection timed out")) {
		append(msg, size,
		       " (no answer within --connect-timeout: is the address "
		       "right and reachable?)");
	} else if (strstr(msg, "Connection refused")) {
		append(msg, size,
		       " (is redis-server running and listening there?)");
	} else if (strstr(msg, "READONLY")) {
		append(msg, size,
		       " (this Redis is a read-only replica: after a failover "
		       "it is no longer the master; point the bridge at the "
		       "master, counts stay pending meanwhile)");
	} else if (strstr(msg, "ASK ") || strstr(msg, "TRYAGAIN")) {
		append(msg, size,
		       " (a hash slot is being moved between two masters: its "
		       "counts stay pending and are pushed once the move "
		       "ends; a move left open by an interrupted reshard "
		       "needs 'redis-cli --cluster fix')");
	} else if (strstr(msg, "MOVED ")) {
		append(msg, size,
		       " (the cluster's slot map changed: it is read again "
		       "and the slot pushed at the next interval)");
	} else if (strstr(msg, "CLUSTERDOWN")) {
		append(msg, size,
		       " (slots without a master: a failover under way, or "
		       "a master without a replica is down; counts stay "
		       "pending)");
	} else if (strstr(msg, "NOPERM") && strstr(msg, "keys")) {
		append(msg, size,
		       " (the ACL user's key patterns must cover --key-prefix "
		       "and --meta-prefix: ~<key prefix>* ~<meta prefix>*, see "
		       "deploy/redis.conf)");
	} else if (strstr(msg, "NOPERM")) {
		append(msg, size,
		       " (add that command to the bridge's ACL user, see "
		       "deploy/redis.conf)");
	} else if (strstr(msg, "can't run this command")) {
		/* Redis does not name the command a script was refused. */
		append(msg, size,
		       " (the ACL user lacks a command the script calls: the "
		       "reset and withdraw scripts call GET SET INCR INCRBY "
		       "DEL HGET HSET HGETALL HINCRBY SISMEMBER ZADD ZREM XADD; "
		       "see deploy/redis.conf)");
	} else if (strstr(msg, "can't access at least one of the keys")) {
		append(msg, size,
		       " (the ACL user's key patterns must cover --key-prefix "
		       "and --meta-prefix, see deploy/redis.conf)");
	} else if (strstr(msg, "WRONGPASS")) {
		append(msg, size,
		       " (check the user name and the password: "
		       "REDIS_USERNAME, REDIS_PASSWORD or --password-file)");
	} else if (strstr(msg, "NOAUTH")) {
		append(msg, size,
		       " (Redis wants a password: set REDIS_PASSWORD or "
		       "--password-file)");
	} else if (strstr(msg, "LOADING")) {
		append(msg, size,
		       " (Redis is loading its data set; the bridge retries)");
	} else if (strstr(msg, "OOM ")) {
		append(msg, size,
		       " (Redis reached maxmemory under noeviction: counts stay "
		       "pending; raise maxmemory)");
	} else if (strstr(msg, "MASTERDOWN")) {
		append(msg, size,
		       " (the replica lost its master; the bridge retries)");
	}
}

static void vlog(int level, const char *kind, bool explain, const char *fmt,
		 va_list ap)
{
	char msg[1024];

	if (level > log_level && level > SHMSTAT_LOG_WARNING)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (explain)
		log_explain(msg, sizeof(msg));
	pthread_mutex_lock(&log_lock);
	if (level <= SHMSTAT_LOG_WARNING) {
		unsigned held;
		if (!kind_due(kind, msg, &held)) {
			pthread_mutex_unlock(&log_lock);
			if (log_level >= SHMSTAT_LOG_DEBUG)
				emit(SHMSTAT_LOG_DEBUG, msg);
			return;
		}
		if (held) {
			char more[64];
			snprintf(more, sizeof(more),
				 " [%u more like this in the last %llu s]",
				 held, LOG_EVERY_NS / 1000000000ull);
			append(msg, sizeof(msg), more);
		}
	}
	pthread_mutex_unlock(&log_lock);
	if (level <= log_level)
		emit(level, msg);
}

static void say(int level, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(int level, const char *kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, kind, false, fmt, ap);
	va_end(ap);
}

void blog(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fmt, true, fmt, ap);
	va_end(ap);
}

void bridge_error(struct bridge *b, int level, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_explain(msg, sizeof(msg));
	snprintf(b->status.last_error, sizeof(b->status.last_error), "%s",
		 msg);
	b->status.last_error_ns = shmstat__now_realtime_ns();
	say(level, fmt, "%s", msg);
}
