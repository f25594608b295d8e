/*
 * error.c — the error vocabulary (one table, in shmstat.h), the per-handle
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

/* The reason for the last failed shmstat_open() of this thread: open has no
 * handle yet to carry it. */
static _Thread_local char open_errbuf[SHMSTAT_ERRSTR_LEN];

char *shmstat__open_errbuf(void) { return open_errbuf; }

const char *shmstat_errstr(const shmstat_t *h)
{
	const char *s = h ? h->errstr : open_errbuf;
	return s[0] ? s : "no error";
}

int shmstat__err(struct shmstat *h, int code, const char *fmt, ...)
{
	char *buf = h ? h->errstr : open_errbuf;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, SHMSTAT_ERRSTR_LEN, fmt, ap);
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
