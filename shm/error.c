/*
 * error.c — the error vocabulary (one table, in shmstat.h), the per-thread
 * reason string, and the log hook. The library never prints: diagnostics go
 * to the hook the program installs, and are dropped when there is none.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
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

/* Atomic: a diagnostic in one thread may race shmstat_log_set() in
 * another (the header asks to set it first; this keeps a late call from
 * being a data race, though the pair may mix old and new). */
static _Atomic(shmstat_log_fn) log_fn;
static _Atomic(void *) log_priv;

void shmstat_log_set(shmstat_log_fn fn, void *priv)
{
	atomic_store_explicit(&log_priv, priv, memory_order_relaxed);
	atomic_store_explicit(&log_fn, fn, memory_order_release);
}

void shmstat__log(int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	shmstat_log_fn fn = atomic_load_explicit(&log_fn, memory_order_acquire);
	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(level, msg, atomic_load_explicit(&log_priv, memory_order_relaxed));
}
