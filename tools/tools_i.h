/*
 * tools_i.h — helpers shared by the files of the shmstat tool. Each
 * command lives in a do_<command>(seg, argc, argv) that returns the exit
 * status; argv[0] is the command's name, getopt is reset before the call.
 */
#ifndef SHMSTAT_TOOLS_I_H
#define SHMSTAT_TOOLS_I_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "shmstat.h"

/* Print "shmstat: <message>" on stderr. */
void tool_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Exit status for a library error: 2 for a missing or invalid segment. */
int tool_status(int rc);
/* A JSON string literal of s[0..len), escaped. */
void json_str(FILE *f, const char *s, size_t len);
/* ISO 8601 UTC with microseconds. */
void iso_time(char *buf, size_t len, uint64_t ns);
/* "redis" when the bridge reconciled the values recently, else "local". */
const char *tool_source(shmstat_t *h);
/* A whole number in [min, max] (decimal, 0x hex or 0 octal). */
bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A number as digits, or humanized (1.23M) when human is set. */
void tool_number(char *buf, size_t len, double v, bool human);
/* The live view of `list -w`: redraw every interval seconds until q,
 * Ctrl-C or `count` frames (count <= 0: no limit). Returns exit status. */
int tool_watch(shmstat_t *h, const char *seg, const char *pattern,
	       double interval, long count, bool human);

/* shmstat health (health.c). */
extern const char usage_health[];
int do_health(const char *seg, int argc, char **argv);
/* shmstat cache (cache_cmd.c). */
extern const char usage_cache[];
int do_cache(const char *seg, int argc, char **argv);

#endif /* SHMSTAT_TOOLS_I_H */
