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
	/* Our row: row.cells is what counter handles dereference. */
	struct shmstat_row_ row;
	int32_t slot;                /* claimed slot, -1 if none */
	bool row_fallback;           /* row.cells is process-local (no slot) */
	uint64_t slot_gen;
	pid_t owner_pid;             /* process that claimed `slot` */
	struct shmstat *next_open;   /* list of open handles, for fork */
	char errstr[SHMSTAT_ERRSTR_LEN];
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
/* Start time of pid (field 22 of /proc/<pid>/stat), 0 when unknown. */
uint64_t shmstat__proc_start(pid_t pid);
/* 1 alive, 0 dead, judged by pid and (when known) start time. */
int shmstat__proc_alive(pid_t pid, uint64_t start);
/* This process's pid namespace (inode of /proc/self/ns/pid), 0 unknown. */
uint64_t shmstat__pidns(void);
uint64_t shmstat__hash(const void *data, size_t len);

/* registry.c */
/* Is the owner of a claimed slot known to be dead? false for a free slot
 * and for an owner in another pid namespace (it cannot be judged). */
bool shmstat__slot_dead(const struct worker_slot *s, uint64_t word);
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
/* Sum of one per-row statistic (RS_*) across every row. */
uint64_t shmstat__row_stat_sum(const struct shmstat *h, enum row_stat s);

/* directory.c */
/* Find or create name; *index gets the entry. create=false: ENOTFOUND. */
int shmstat__dir_lookup(struct shmstat *h, const char *name, size_t len,
			int kind, bool create, uint32_t *index);
/* Copy out entry i; ENOTFOUND when not READY, ECORRUPT when invalid. */
int shmstat__dir_stat(struct shmstat *h, uint32_t i, shmstat_stat_t *out);
/* Sum of counter i over every row. */
uint64_t shmstat__counter_total(const struct shmstat *h, uint32_t i);
int shmstat__name_check_counter(const char *name, size_t len);

/* fnmatch(3) rules without flags over len bytes (NULs allowed, any
 * length): the one glob of the tree. NULL pattern matches all. */
bool shmstat__glob(const char *pattern, const void *s, size_t len);

/* export.c: a JSON string literal of s[0..len) (quotes included, escaped
 * as JSON requires); ISO 8601 UTC with microseconds. */
void shmstat__json_str(FILE *f, const char *s, size_t len);
void shmstat__iso8601(char *buf, size_t len, uint64_t ns);

/* Test hooks: a map of the raw segment for tests and the fuzz tool. */
void *shmstat__base(shmstat_t *h, size_t *size);

#endif /* SHMSTAT_I_H */
