/*
 * shmstat_i.h — what the files of libshmstat share with each other and with
 * the in-tree programs (tools/, bridge/, tests/, bench/). Not installed.
 * The shared library exports only the public shmstat_<word> names (see
 * libshmstat.map); the in-tree programs link the static library, which is
 * how they reach these shmstat__ internals.
 */
#ifndef SHMSTAT_I_H
#define SHMSTAT_I_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "cache_i.h"
#include "layout_i.h"
#include "shmstat.h"

#define SHMSTAT_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* States of a handle's primary row (struct shmstat.row_state). */
enum row_state {
	ROW_NONE = 0,     /* no row yet: the next count or open claims one */
	ROW_OWN = 1,      /* row.cells is our slot's row */
	ROW_SHARED = 2,   /* row.cells is the segment's overflow row */
};

/* Extra per-thread rows a handle may take (registry.c). */
#define SHMSTAT_XROWS 3

struct hist_desc; /* metric.c */

/* The process-local handle. */
struct shmstat {
	char name[SHMSTAT_SEGNAME_MAX + 1];
	unsigned char *base;         /* the mapping */
	size_t size;                 /* mapped bytes == header total_size */
	struct seg_header *hdr;
	struct worker_slot *slots;
	struct dir_entry *dir;
	unsigned char *rows;
	struct sync_status *sync;
	unsigned char *cache;        /* REG_CACHE, cache_size bytes */
	uint64_t cache_size;
	struct cache_geo cache_geo;  /* read once at attach (cache.c) */
	/* Geometry copied from the validated header: never re-read, so a
	 * process that scribbles on the header cannot make us index out. */
	uint32_t max_counters;
	uint32_t max_workers;
	uint32_t row_stride;
	bool rdonly;                 /* mapped without PROT_WRITE */
	/* The segment's file at attach: for the maps check and info. */
	uint64_t seg_ino;
	uint32_t seg_uid, seg_gid, seg_mode;
	uint32_t seg_blksize; /* st_blksize of its file: its memory's page */
	/* Primary row: row.cells is what counter handles dereference; the
	 * thread whose token is row.owner_ adds with plain stores. Changed
	 * under the registry lock (registry.c); row_state is read without it
	 * (acquire) by the slow path. */
	struct shmstat_row_ row;
	_Atomic int row_state;       /* enum row_state */
	int32_t slot;                /* slot of row, -1 if none (or shared) */
	uint64_t slot_gen;
	/* Second row, for threads other than row.owner_: atomic adds only.
	 * NULL until such a thread counts; the overflow row when no slot. */
	_Atomic(uint64_t *) acells;
	int32_t aslot;               /* its slot, -1 if none (or shared) */
	uint64_t aslot_gen;
	/* Extra rows for threads other than row.owner_, each owned by one
	 * thread at a time (plain adds), taken while the registry has rows
	 * to spare and given back when the thread exits; owner is a thread
	 * token, 0 free (atomic). cells/slot: set once by the first taker. */
	struct {
		uintptr_t owner;
		uint64_t *cells;
		int32_t slot;
		uint64_t gen;
	} xrow[SHMSTAT_XROWS];
	_Atomic bool xrow_denied;    /* the registry had none to spare */
	pid_t owner_pid;             /* process that claimed the slots */
	/* Help table (layout 2.1), NULL in a 2.0 segment. */
	struct help_entry *help;
	uint32_t help_n;
	/* Histogram descriptions handed out by histogram_open (metric.c),
	 * freed by close: a lock-free list. */
	_Atomic(struct hist_desc *) hists;
	struct shmstat *next_open;   /* list of open handles, for fork */
};

/* error.c */
int shmstat__err(struct shmstat *h, int code, const char *fmt, ...)
	SHMSTAT_PRINTF(3, 4);
int shmstat__errno(struct shmstat *h, int code, const char *what);
void shmstat__log(int level, const char *fmt, ...) SHMSTAT_PRINTF(2, 3);
char *shmstat__open_errbuf(void);

/* util */
uint64_t shmstat__now_realtime_ns(void);
uint64_t shmstat__now_mono_ns(void);
/* Start time (field 22) and state (field 3) of /proc/<pid>/stat; false
 * when it cannot be read (no such process, or no /proc). */
bool shmstat__proc_stat(pid_t pid, uint64_t *start, char *state);
/* Start time of pid (field 22 of /proc/<pid>/stat), 0 when unknown. */
uint64_t shmstat__proc_start(pid_t pid);
/* 1 alive, 0 dead (gone, a zombie, or the pid reused: start time known
 * and different). */
int shmstat__proc_alive(pid_t pid, uint64_t start);
/* Does pid map the object of inode ino at address base? 1 yes, 0 no,
 * -1 cannot tell (no /proc, not allowed to read it). */
int shmstat__proc_maps(pid_t pid, uint64_t base, uint64_t ino);
/* This process's pid namespace (inode of /proc/self/ns/pid), 0 unknown. */
uint64_t shmstat__pidns(void);
uint64_t shmstat__hash(const void *data, size_t len);

/* registry.c */
/* Is the owner of a claimed slot known to be dead? false for a free slot
 * and for an owner in another pid namespace (it cannot be judged). */
bool shmstat__slot_dead(const struct shmstat *h, const struct worker_slot *s,
			uint64_t word);
/* Give h its primary row (a slot, else the overflow row): 0, or
 * ERDONLY. Idempotent. */
int shmstat__row_claim(struct shmstat *h);
void shmstat__row_release(struct shmstat *h);
void shmstat__fork_register(struct shmstat *h);
void shmstat__fork_unregister(struct shmstat *h);

static inline uint64_t *shmstat__row_cells(const struct shmstat *h, uint32_t w)
{
	return (uint64_t *)(void *)(h->rows + (size_t)w * h->row_stride +
				    ROW_HDR_BYTES);
}
static inline _Atomic uint64_t *shmstat__row_stats(const struct shmstat *h,
						   uint32_t w)
{
	return (_Atomic uint64_t *)(void *)(h->rows + (size_t)w * h->row_stride);
}
/* Bounded copy of the high-water mark of rows ever claimed. */
static inline uint32_t shmstat__hwm(const struct shmstat *h)
{
	uint32_t n = atomic_load_explicit(&h->hdr->workers_hwm,
					  memory_order_acquire);
	return n > h->max_workers ? h->max_workers : n;
}
/* a + b, saturated at INT64_MAX (counters never wrap). */
static inline uint64_t shmstat__sat_add(uint64_t a, uint64_t b)
{
	uint64_t s = a + b;
	return (s < a || s > (uint64_t)INT64_MAX) ? (uint64_t)INT64_MAX : s;
}
/* Sum of one per-row statistic (RS_*) across every row. */
uint64_t shmstat__row_stat_sum(const struct shmstat *h, enum row_stat s);

/* directory.c */
/* Find or create name; *index gets the entry. create=false: ENOTFOUND. */
int shmstat__dir_lookup(struct shmstat *h, const char *name, size_t len,
			int kind, bool create, uint32_t *index);
/* Copy out entry i; ENOTFOUND when not READY, ECORRUPT when invalid. */
int shmstat__dir_stat(struct shmstat *h, uint32_t i, shmstat_stat_t *out);
/* Sum of counter i over every row and the overflow row, saturated. */
uint64_t shmstat__counter_total(const struct shmstat *h, uint32_t i);
int shmstat__name_check_counter(const char *name, size_t len);
/* The view kind of a READY entry: SHMSTAT_KIND_* (histogram and bucket
 * from the flags), 0 when invalid; *len gets its checked length. */
int shmstat__dir_kind(const struct dir_entry *e, uint16_t *len);
/* Insert with histogram metadata (reserved[4], [5]) filled before READY. */
int shmstat__dir_lookup_x(struct shmstat *h, const char *name, size_t len,
			  int kind, bool create, uint64_t r4, uint64_t r5,
			  uint32_t *index);
/* Raise the base of counter i to its current sum. */
void shmstat__dir_reset_one(struct shmstat *h, uint32_t i);

/* metric.c: labels, histograms, help. */
/* The stored form of name (either form) into out (SHMSTAT_NAME_MAX + 1
 * bytes), its length in *olen and the length of the name part in *blen.
 * reserved: allow "__" keys (histogram cells). 0 or ENAME (reason set on
 * h). */
int shmstat__name_key(struct shmstat *h, const char *name, size_t len,
		      bool reserved, char *out, size_t *olen, size_t *blen);
/* Stored form -> canonical form (drop the "{}" after the name), into out
 * (SHMSTAT_NAME_MAX + 1 bytes); its length. */
size_t shmstat__key_display(const char *key, size_t len, char *out);
void shmstat__hist_free(struct shmstat *h);
/* Histogram entry i copied out; ENOTFOUND when it is not one. */
int shmstat__hist_stat(struct shmstat *h, uint32_t i,
		       shmstat_histogram_stat_t *out);
/* Help of family f[0..fl) into buf (cap bytes, NUL-ended): its length,
 * ENOTFOUND or ERANGE; sets no reason. */
int shmstat__help_find(struct shmstat *h, const char *f, size_t fl, char *buf,
		       size_t cap);
/* Shortest decimal that reads back as v ("+Inf" for infinity). */
void shmstat__fmt_bound(char *buf, size_t len, double v);

/* fnmatch(3) rules without flags over len bytes (NULs allowed, any
 * length): the one glob of the tree. NULL pattern matches all. */
bool shmstat__glob(const char *pattern, const void *s, size_t len);

/* export.c: a JSON string literal of s[0..len) (quotes included, escaped
 * as JSON requires); ISO 8601 UTC with microseconds. */
void shmstat__json_str(FILE *f, const char *s, size_t len);
void shmstat__iso8601(char *buf, size_t len, uint64_t ns);
/* The live-stats JSON (global: the cluster-wide one) and the Prometheus
 * exposition of the names match() passes, for programs whose filters a
 * single glob cannot say (the tool's repeated -f and -X). */
typedef bool (*shmstat__export_match_fn)(const shmstat_stat_t *st,
					 void *priv);
int shmstat__export_json_match(shmstat_t *h, bool global,
			       shmstat__export_match_fn match, void *priv,
			       FILE *f);
int shmstat__export_prometheus_match(shmstat_t *h,
				     shmstat__export_match_fn match,
				     void *priv, FILE *f);
/* Is metric one of the names shmstat's own Prometheus families use (the
 * library's and the bridge's, histogram series included)? */
bool shmstat__prom_own(const char *metric);

/* util.c: UTF-8, the rule of every counter and gauge name. */
/* Length (1..4) of the well-formed UTF-8 sequence that starts s[0..len),
 * 0 when there is none (RFC 3629: no overlong form, no surrogate, nothing
 * above U+10FFFF, no truncated sequence). */
size_t shmstat__utf8_seq(const char *s, size_t len);
/* 0 when s[0..len) is well-formed UTF-8; else -1 and *at (may be NULL)
 * gets the offset of the first byte that starts no valid sequence. */
int shmstat__utf8_check(const char *s, size_t len, size_t *at);

/* parse.c: the numbers people type, one syntax for the tool and the
 * bridge. A duration is a decimal number with an optional fraction and a
 * unit, ns us ms s m min h d ("250ms", "1.5s", "2m", "1h"); a bare number
 * is seconds. Integers are decimal only ("010" is ten); i64 takes a sign.
 * Each returns SHMSTAT_PARSE_OK and sets *out, or SYNTAX (not a number of
 * that form) or RANGE (outside [min, max] or 64 bits); *out unchanged. */
/* What is wrong with a segment name, in words ("a '/' is not allowed"),
 * or NULL when shmstat_name_check() accepts it. A static string. */
const char *shmstat__name_problem(const char *name);

enum shmstat_parse_result {
	SHMSTAT_PARSE_OK = 0,
	SHMSTAT_PARSE_SYNTAX = -1,
	SHMSTAT_PARSE_RANGE = -2,
};
#define SHMSTAT_DURATION_SYNTAX \
	"a number and a unit (ns us ms s m h d: 250ms, 1.5s, 2m, 1h); a bare number is seconds"
int shmstat__parse_duration(const char *s, uint64_t min_ns, uint64_t max_ns,
			    uint64_t *out_ns);
int shmstat__parse_u64(const char *s, uint64_t min, uint64_t max,
		       uint64_t *out);
int shmstat__parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* A size in bytes: decimal digits, optionally K, M, G or T (or KiB, MiB,
 * GiB, TiB; 1024-based): "65536", "64K", "32M", "1GiB". */
#define SHMSTAT_SIZE_SYNTAX \
	"a decimal number of bytes, optionally with K, M, G or T (1024-based: 64K, 32M, 1G)"
int shmstat__parse_size(const char *s, uint64_t min, uint64_t max,
			uint64_t *out);
/* ns as the shortest exact duration ("1500ms", "2m"), else "1.23s". */
void shmstat__duration_str(char *buf, size_t len, uint64_t ns);

/* Test hooks: a map of the raw segment for tests and the fuzz tool. */
void *shmstat__base(shmstat_t *h, size_t *size);

#endif /* SHMSTAT_I_H */
