/*
 * tools_i.h — helpers shared by the files of the shmstat tool. Each
 * command lives in a do_<command>(seg, argc, argv) that returns the exit
 * status (exitcodes.h); argv[0] is the command's name, getopt is reset
 * before the call.
 */
#ifndef SHMSTAT_TOOLS_I_H
#define SHMSTAT_TOOLS_I_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "exitcodes.h"
#include "shmstat.h"

/* Print "shmstat: <message>" on stderr. */
void tool_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Exit status for a library error code (exitcodes.h). */
int tool_status(int rc);
/* A JSON string literal of s[0..len), escaped. */
void json_str(FILE *f, const char *s, size_t len);
/* ISO 8601 UTC with microseconds. */
void iso_time(char *buf, size_t len, uint64_t ns);
/* "redis" when the bridge reconciled the values recently, else "local". */
const char *tool_source(shmstat_t *h);
/* A decimal whole number in [min, max] ("010" is ten). */
bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Attach to seg for a command; on failure print why (naming the segment,
 * its path, owner and mode on a permission error; a "did you mean" for a
 * missing name) and return the exit status, else 0. `inspect`: the
 * command only reads. */
int tool_attach(const char *seg, bool inspect, shmstat_t **h);
/* Print the library's reason for a failed open of seg, as tool_attach. */
void tool_open_error(const char *seg, int rc);
/* "segment 'X' (path): permission denied: owned by U:G, mode 0600; ..."
 * into buf; false when the segment's file cannot be seen at all. */
bool tool_perm_text(const char *seg, char *buf, size_t len);
/* The same for a name another user owns that this one may not remove
 * (false when it is ours, or gone). */
bool tool_unlink_perm_text(const char *seg, char *buf, size_t len);

/* Name filters: -f GLOB (repeatable; '^GLOB' excludes), -X GLOB. A name
 * passes when it matches some include (or there is none) and no exclude. */
#define TOOL_FILTERS_MAX 32
struct tool_filter {
	const char *inc[TOOL_FILTERS_MAX];
	const char *exc[TOOL_FILTERS_MAX];
	int ninc, nexc;
};
/* Add -f's argument (exclude when it starts with '^') or -X's; false when
 * there are too many. */
bool tool_filter_add(struct tool_filter *f, const char *glob, bool exclude);
bool tool_filter_match(const struct tool_filter *f, const char *name,
		       size_t len);
/* The one glob the library can apply itself, or NULL when the filter
 * needs tool_filter_match (several globs, or an exclusion). */
const char *tool_filter_simple(const struct tool_filter *f);

enum tool_sort { SORT_NAME, SORT_VALUE, SORT_RATE };
bool tool_sort_parse(const char *s, enum tool_sort *out);

/* Every counter and gauge that passes f, into a malloc'd array. */
int tool_collect(shmstat_t *h, const struct tool_filter *f,
		 shmstat_stat_t **out, size_t *n);

/* Output: stdout (also for -o -), or with -o FILE a temporary file in
 * FILE's directory renamed over FILE only when everything was written (a
 * reader never sees a partial file). Only a regular file is ever replaced:
 * a device, FIFO, socket or directory at FILE is refused (exit 64); a
 * symlink is followed and its target replaced, the link kept. */
struct tool_out {
	FILE *f;
	const char *path;  /* NULL: stdout (no -o, or -o -) */
	const char *dest;  /* the file replaced: path, or a symlink's target */
	char target[4096]; /* a symlink's target */
	char tmp[4096];
};
int tool_out_open(struct tool_out *o, const char *path);
/* Flush, check, and rename into place (or unlink on failure); prints the
 * error; returns the exit status. ok=false: the command failed, discard. */
int tool_out_close(struct tool_out *o, bool ok);
/* Flush stdout and say so when it failed (a full disk, a closed pipe). */
int tool_stdout_check(void);

/* A number as digits, or humanized (1.23M) when human is set. */
void tool_number(char *buf, size_t len, double v, bool human);
/* The n bytes of s, then blanks up to width characters (UTF-8: one
 * column per character; wide characters, CJK or emoji, are not measured
 * as two), into buf. A name of more than width characters goes whole, or
 * with cut, as its first width - 3 characters and "...". */
void tool_pad(char *buf, size_t len, const char *s, size_t n, int width,
	      bool cut);
/* Levenshtein distance of two names of at most SHMSTAT_NAME_MAX bytes
 * (SIZE_MAX for longer ones): "did you mean" hints. */
size_t tool_distance(const char *a, const char *b);
/* The live view of `list -w`: redraw every interval_ns until q, Ctrl-C or
 * `count` frames (count <= 0: no limit). Returns the exit status. */
int tool_watch(shmstat_t *h, const char *seg, const struct tool_filter *f,
	       uint64_t interval_ns, long count, bool human,
	       enum tool_sort sort);
/* Called before the tool exits on a fault (the segment truncated under
 * it): the live view restores the terminal. */
extern void (*tool_on_fault)(void);

/* shmstat ls (segments.c). */
extern const char usage_ls[];
int do_ls(const char *seg, int argc, char **argv);
/* shmstat health (health.c). */
extern const char usage_health[];
int do_health(const char *seg, int argc, char **argv);
/* shmstat cache (cache_cmd.c). */
extern const char usage_cache[];
int do_cache(const char *seg, int argc, char **argv);

#endif /* SHMSTAT_TOOLS_I_H */
