/*
 * testutil.h — what every test shares: a fresh, uniquely named segment per
 * test (setup/teardown), process helpers, and shared memory owned by the
 * test (not by the segment) for children to report progress in.
 */
#ifndef SHMSTAT_TESTUTIL_H
#define SHMSTAT_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "shmstat.h"

/* A segment name unique to this process and call: "t<pid>-<n>-<tag>". */
void tu_name(char *buf, size_t len, const char *tag);

/* Per-test fixture: creates a segment (default options unless *opts set
 * before) and removes it afterwards. */
struct tu_seg {
	char name[SHMSTAT_SEGNAME_MAX + 1];
	shmstat_options_t opts;
	shmstat_t *h;
};
int tu_seg_setup(void **state);    /* default options */
int tu_seg_teardown(void **state);
/* Create a segment with o into s (asserts success). With
 * SHMSTAT_TEST_CACHE_HOME=PCT in the environment, a cache_home_pct of 0
 * becomes PCT: the cache suites run again with home blocks. */
void tu_seg_create(struct tu_seg *s, const char *tag,
		   const shmstat_options_t *o);

/* Anonymous shared memory (MAP_SHARED|MAP_ANONYMOUS) that forked children
 * write and the test reads; survives children that are killed. */
void *tu_shared(size_t len);
void tu_shared_free(void *p, size_t len);

/* Wait for pid; returns its exit status, or 128+signal. Fails the test if
 * it does not end within timeout_ms. */
int tu_wait(pid_t pid, int timeout_ms);

/* Run the shmstat tool (SHMSTAT_TOOL) with a NULL-terminated argv after
 * the program name; captures stdout into out (may be NULL). Returns the
 * exit status, or 128+signal. */
int tu_tool(char *out, size_t outlen, const char *arg0, ...);

/* Run `sh -c CMD` (printf-style, no single quotes in it), bounded to 60 s,
 * with stdout and stderr captured into out (may be NULL). Returns the exit
 * status, or 128+signal. */
int tu_sh(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Run a command as user nobody: "setpriv ... CMD". */
#define TU_AS_NOBODY "setpriv --reuid=nobody --regid=nogroup --clear-groups "

#endif
