/*
 * error.c — the error vocabulary (one table, in shmstat.h), the per-thread
 * reason string, and the log hook. The library never prints: diagnostics go
 * to the hook the program installs, and are dropped when there is none.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "shmstat_i.h"

const char *shmstat_strerror(int err)
{
	switch (err) {
#define SHMSTAT_CASE_(name, value, msg)                                         \
	case SHMSTAT_##name:                                                    \
		return msg;
		SHMSTAT_ERRORS(SHMSTAT_CASE_)
#undef SHMSTAT_CASE_
	default:
		return "unknown error";
	}
}

/* The reason for this thread's last failure. Thread-local, not in the
 * handle: threads sharing a handle would otherwise overwrite each other's
 * text while one of them reads it. */
static _Thread_local char errbuf[SHMSTAT_ERRSTR_LEN];

char *shmstat__open_errbuf(void) { return errbuf; }

const char *shmstat_errstr(const shmstat_t *h)
{
	(void)h;
	return errbuf[0] ? errbuf : "no error";
}

int shmstat__err(struct shmstat *h, int code, const char *fmt, ...)
{
	va_list ap;

	(void)h;
	va_start(ap, fmt);
	vsnprintf(errbuf, SHMSTAT_ERRSTR_LEN, fmt, ap);
	va_end(ap);
	return code;
}

int shmstat__errno(struct shmstat *h, int code, const char *what)
{
	return shmstat__err(h, code, "%s: %s", what, strerror(errno));
}

static shmstat_log_fn log_fn;
static void *log_priv;

void shmstat_log_set(shmstat_log_fn fn, void *priv)
{
	log_fn = fn;
	log_priv = priv;
}

void shmstat__log(int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!log_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_fn(level, msg, log_priv);
}
