/*
 * shmstat.h — the one public header of libshmstat.
 *
 * libshmstat keeps named counters, gauges and a TTL cache in one POSIX
 * shared-memory segment per namespace ("/shmstat.<name>"), shared by every
 * process of a host that opens it: prefork workers, the shmstat tool and the
 * shmstat-bridge daemon.
 *
 * Conventions
 *   - Every fallible call returns 0 or a negative SHMSTAT_E* code;
 *     shmstat_strerror() names the code, shmstat_errstr() gives the reason
 *     of the last failure on a handle (or of the last failed shmstat_open()
 *     in this thread, with NULL).
 *   - Reads copy out into the caller's memory: no pointer into the segment
 *     ever leaves the library.
 *   - The library never prints; see shmstat_log_set().
 *   - Everything is opaque except the counter handle and its inline
 *     increment, which are ABI (their size is checked by a test).
 *
 * Threads and processes
 *   A shmstat_t may be used by several threads for everything except the
 *   counter hot path: every shmstat_t owns one row of counter cells in the
 *   segment, and shmstat_counter_add() writes that row without a lock
 *   prefix, so the counters taken from one shmstat_t are incremented by one
 *   thread at a time. A threaded program opens one shmstat_t per counting
 *   thread. After fork() the child gets a row of its own automatically
 *   (a pthread_atfork handler), so handles taken in a master before fork()
 *   count into each child's own row.
 */
#ifndef SHMSTAT_H
#define SHMSTAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMSTAT_VERSION_MAJOR 0
#define SHMSTAT_VERSION_MINOR 1

/* Segment names: [A-Za-z0-9_.-]{1,64}, not "." or containing "..". */
#define SHMSTAT_SEGNAME_MAX 64
/* Counter and gauge names: 1..200 bytes, no control characters. */
#define SHMSTAT_NAME_MAX 200
/* Human-readable reasons are at most this long, with the NUL. */
#define SHMSTAT_ERRSTR_LEN 256

/*
 * Error codes, one table: X(name, value, message).
 * shmstat_strerror(SHMSTAT_EFOO) returns the message.
 */
#define SHMSTAT_ERRORS(X)                                                      \
	X(OK, 0, "success")                                                    \
	X(EINVAL, -1, "invalid argument")                                      \
	X(ENAME, -2, "invalid name")                                           \
	X(ENOENT, -3, "no such segment")                                       \
	X(EEXIST, -4, "segment already exists")                                \
	X(ENOMEM, -5, "out of memory")                                         \
	X(ENOSPC, -6, "no space left for the segment")                         \
	X(ETRUNC, -7, "segment is truncated")                                  \
	X(EMAGIC, -8, "not a shmstat segment (bad magic)")                     \
	X(EVERSION, -9, "segment has an incompatible layout version")          \
	X(ECORRUPT, -10, "segment is corrupt")                                 \
	X(EINIT, -11, "segment was never initialized")                         \
	X(EFULL, -12, "table is full")                                         \
	X(ENOTFOUND, -13, "not found")                                         \
	X(EKIND, -14, "name exists with another kind")                         \
	X(ETOOBIG, -15, "too big")                                             \
	X(ERANGE, -16, "buffer too small")                                     \
	X(EBUSY, -17, "busy: lock not acquired in time")                       \
	X(EPERM, -18, "permission denied")                                     \
	X(ESYS, -19, "system call failed")                                     \
	X(ENOTSUP, -20, "not supported")                                       \
	X(EEXISTS, -21, "key exists")                                          \
	X(ELEASE, -22, "lease held by another caller")

enum shmstat_error {
#define SHMSTAT_ENUM_(name, value, msg) SHMSTAT_##name = (value),
	SHMSTAT_ERRORS(SHMSTAT_ENUM_)
#undef SHMSTAT_ENUM_
};

/* Name of an error code; never NULL ("unknown error" for a foreign code). */
const char *shmstat_strerror(int err);

typedef struct shmstat shmstat_t;

/* Flags for shmstat_options_t.flags. */
#define SHMSTAT_O_CREATE 0x1u /* create the segment when it does not exist */
#define SHMSTAT_O_EXCL 0x2u   /* with CREATE: fail with EEXIST if it exists */

/*
 * Options for shmstat_open(). A zeroed struct (or NULL) means: attach to an
 * existing segment. Every zero field means its default. Sizes matter only
 * when this call creates the segment; an attacher reads them from the header.
 */
typedef struct shmstat_options {
	unsigned flags;          /* SHMSTAT_O_* */
	unsigned mode;           /* permission bits at creation; 0 = 0600 */
	size_t size;             /* total bytes; 0 = 32 MiB */
	uint32_t max_counters;   /* counters + gauges; 0 = 4096 */
	uint32_t max_workers;    /* rows for concurrent processes; 0 = 128 */
	size_t cache_max_value;  /* largest cache value; 0 = 1 MiB */
	uint32_t wait_ms;        /* wait for a concurrent creator; 0 = 2000 */
	uint32_t reserved_[7];
} shmstat_options_t;

/*
 * Open the segment "/shmstat.<name>". With SHMSTAT_O_CREATE, many processes
 * may call this at once on a missing segment: exactly one creates it, the
 * others wait (up to wait_ms) until its header is published, and all attach.
 * Creation reserves the memory (posix_fallocate), so a full /dev/shm gives
 * SHMSTAT_ENOSPC here rather than SIGBUS later.
 * Attaching validates size, magic, layout version and every region before
 * use: ETRUNC, EMAGIC, EVERSION, ECORRUPT, EINIT are distinct.
 * On success *out is a new handle; on failure *out is NULL and
 * shmstat_errstr(NULL) gives the reason in this thread.
 */
int shmstat_open(const char *name, const shmstat_options_t *opts,
		 shmstat_t **out);

/*
 * Release the handle's row (its counts stay in the segment), unmap, free,
 * and set *h to NULL. Accepts NULL and a pointer to NULL.
 */
void shmstat_close(shmstat_t **h);

/* Remove the segment's name; processes that have it open keep it mapped. */
int shmstat_unlink(const char *name);

/* Check a segment name; 0 when valid, SHMSTAT_ENAME otherwise. */
int shmstat_name_check(const char *name);

/*
 * The reason for the last failure on h, or with h == NULL the last failed
 * shmstat_open() of this thread. Valid until the next call on h (or the next
 * shmstat_open() in this thread). Never NULL.
 */
const char *shmstat_errstr(const shmstat_t *h);

/* Log levels for the log hook. */
enum shmstat_log_level {
	SHMSTAT_LOG_ERROR = 3,
	SHMSTAT_LOG_WARNING = 4,
	SHMSTAT_LOG_INFO = 6,
	SHMSTAT_LOG_DEBUG = 7,
};
typedef void (*shmstat_log_fn)(int level, const char *msg, void *priv);

/* Route the library's diagnostics to fn (NULL: drop them, the default). */
void shmstat_log_set(shmstat_log_fn fn, void *priv);

/* ---------------------------------------------------------------- counters */

/*
 * The row a handle counts into. Lives in the process-local shmstat_t;
 * after fork() the child's copy is pointed at the child's own row.
 * Not for use outside the inline functions below.
 */
struct shmstat_row_ {
	uint64_t *cells;
};

/*
 * A counter handle: ABI, 16 bytes. Obtain with shmstat_counter_get();
 * valid until shmstat_close() of the shmstat_t it came from; may be copied.
 */
typedef struct shmstat_counter {
	struct shmstat_row_ *row_;
	uint32_t index_;
	uint32_t reserved_;
} shmstat_counter_t;

/*
 * Get a handle to the counter `name`, creating it when missing.
 * Errors: ENAME (empty, too long, control characters), EKIND (a gauge has
 * that name), EFULL (directory full: existing counters keep working),
 * EFULL also when no row is free for this process (see max_workers).
 */
int shmstat_counter_get(shmstat_t *h, const char *name, shmstat_counter_t *out);

/*
 * The hot path: add n to the counter. No syscall, no lock, no heap, no lock
 * prefix: the row belongs to this process (see "Threads and processes").
 * Relaxed ordering: a reader sees the add eventually, never a torn value.
 * (GCC builtins rather than <stdatomic.h> so that C++ can include this.)
 */
static inline void shmstat_counter_add(shmstat_counter_t c, uint64_t n)
{
	uint64_t *cell = c.row_->cells + c.index_;
	__atomic_store_n(cell, __atomic_load_n(cell, __ATOMIC_RELAXED) + n,
			 __ATOMIC_RELAXED);
}

static inline void shmstat_counter_incr(shmstat_counter_t c)
{
	shmstat_counter_add(c, 1);
}

/* Look up (or create) by name and add: for scripts and the CLI, not hot. */
int shmstat_counter_add_by_name(shmstat_t *h, const char *name, uint64_t n);

/* Kinds of named values. */
enum shmstat_kind {
	SHMSTAT_KIND_COUNTER = 1,
	SHMSTAT_KIND_GAUGE = 2,
};

/*
 * A copied-out view of one counter or gauge.
 *   value:  what this host shows: for a counter, the sum of all rows minus
 *           the last reset's base; for a gauge, its value.
 *   total:  counters: the sum of all rows, never reset locally (what the
 *           bridge pushes); gauges: the value.
 *   global, global_ns: the cluster-wide value the bridge last wrote back and
 *           when (CLOCK_REALTIME ns); global_ns == 0 when never.
 */
typedef struct shmstat_stat {
	char name[SHMSTAT_NAME_MAX + 1];
	uint32_t name_len;
	int kind;
	uint32_t index;
	int64_t value;
	uint64_t total;
	int64_t global;
	uint64_t global_ns;
} shmstat_stat_t;

/* Read a counter's value through its handle (sums every row). */
int shmstat_counter_read(shmstat_t *h, shmstat_counter_t c, int64_t *value);

/* Read one counter or gauge by name; ENOTFOUND when it does not exist. */
int shmstat_stat_get(shmstat_t *h, const char *name, shmstat_stat_t *out);

/*
 * Call fn for every counter and gauge whose name matches the glob `pattern`
 * (fnmatch(3) rules; NULL = all), in directory order. *st is valid during
 * the call only. A non-zero return from fn stops the iteration and is
 * returned. Safe while other processes add counters and increment.
 */
typedef int (*shmstat_stat_fn)(const shmstat_stat_t *st, void *priv);
int shmstat_iter(shmstat_t *h, const char *pattern, shmstat_stat_fn fn,
		 void *priv);

/*
 * Reset every counter whose name matches `pattern` (NULL = all): record the
 * current sum as the counter's base. Never writes workers' rows, so an
 * increment racing a reset is counted either before or after it, never
 * lost. Gauges that match are set to 0. *count (may be NULL) gets how many.
 */
int shmstat_reset(shmstat_t *h, const char *pattern, uint64_t *count);

/* ------------------------------------------------------------------ gauges */

typedef struct shmstat_gauge {
	int64_t *cell_;
	uint32_t index_;
	uint32_t reserved_;
} shmstat_gauge_t;

/* Get a handle to the gauge `name`, creating it (at 0) when missing. */
int shmstat_gauge_get(shmstat_t *h, const char *name, shmstat_gauge_t *out);

/* Set, add to (delta may be negative) and read a gauge: one atomic op each. */
void shmstat_gauge_set(shmstat_gauge_t g, int64_t v);
void shmstat_gauge_add(shmstat_gauge_t g, int64_t delta);
int64_t shmstat_gauge_read(shmstat_gauge_t g);

/* ------------------------------------------------------------- inspection */

/* Usage of one region of the segment. */
typedef struct shmstat_region_info {
	const char *name;  /* static string */
	uint64_t offset;
	uint64_t size;
	uint64_t used;     /* bytes in use */
} shmstat_region_info_t;

#define SHMSTAT_MAX_REGIONS 8

typedef struct shmstat_info {
	char name[SHMSTAT_SEGNAME_MAX + 1];
	uint16_t layout_major, layout_minor;
	uint64_t size;
	uint64_t created_ns;       /* CLOCK_REALTIME */
	int32_t creator_pid;
	uint64_t host_id;
	char host_name[64];
	uint32_t max_counters, counters_used;
	uint32_t max_workers;
	uint32_t workers_live;     /* claimed by a process that is alive */
	uint32_t workers_dead;     /* claimed by a process that is gone */
	uint32_t workers_free;
	uint32_t workers_hwm;      /* rows ever used */
	uint64_t row_overflows;    /* processes that found no free row */
	uint64_t cache_max_value;
	uint32_t nregions;
	shmstat_region_info_t region[SHMSTAT_MAX_REGIONS];
	uint64_t source_nonce;     /* random, made at creation; 0: older segment */
} shmstat_info_t;

/* Fill *out; checks liveness of each claimed row's process. */
int shmstat_info(shmstat_t *h, shmstat_info_t *out);

/*
 * Free the rows of processes that exited or were killed without closing
 * (pid + process start time, so a reused pid is not mistaken for the
 * owner). Their counts stay in the segment: a row is adopted, never erased.
 * *reaped (may be NULL) gets how many. Any process may call it at any time.
 */
int shmstat_reap(shmstat_t *h, uint32_t *reaped);

/* -------------------------------------------------------------------- sync
 *
 * The engine's side of shmstat-bridge. It knows nothing about Redis: it
 * keeps the bridge's status, the cluster-wide value of each counter, the
 * per-counter reset base of global resets, and the global-reset request
 * that `shmstat reset --global` leaves for the bridge.
 *
 * Writers: one bridge per segment (its pidfile guarantees it) writes the
 * status, the global values and the reset bases; any process may read them
 * at any time. No worker call ever waits on any of this.
 */

/* A copied-out view of the bridge's status. */
typedef struct shmstat_sync_status {
	int32_t bridge_pid;      /* 0 when no bridge ever ran or it stopped */
	int alive;               /* bridge_pid is a live process (read only) */
	int connected;           /* its last Redis command succeeded */
	uint64_t bridge_start;   /* its start time, clock ticks since boot */
	uint64_t heartbeat_ns;   /* CLOCK_REALTIME of its last loop */
	uint64_t last_push_ns;   /* CLOCK_REALTIME of the last good push */
	uint64_t last_error_ns;
	uint64_t pending;        /* counters changed and not yet pushed */
	uint64_t lag_ms;         /* age of the oldest unpushed change */
	uint64_t pushes_ok;
	uint64_t pushes_failed;
	uint64_t epoch;          /* newest global-reset epoch seen (ms) */
	uint64_t interval_ms;
	uint64_t seq_acked;      /* last push sequence Redis acknowledged */
	uint64_t host_id;        /* host id the bridge pushes as */
	char last_error[256];    /* "" when none; never holds a password */
	char redis_addr[128];    /* host:port/db or unix socket path */
	char source[40];         /* source id: host id, segment, nonce */
	char meta_prefix[64];    /* prefix of the bookkeeping it pushed to */
	uint64_t refused_keys;   /* keys Redis refused (they stay pending) */
	uint64_t reserved_names; /* names never written: key under the meta
				    prefix */
	char refused_key[128];   /* one refused key, "" when none */
	char reserved_name[128]; /* one reserved name, "" when none */
} shmstat_sync_status_t;

/*
 * Copy the status out. Lock-free reader of a sequence lock: retries while
 * the bridge writes (bounded: SHMSTAT_EBUSY if it never settles, e.g. a
 * bridge stopped mid-write). Any process, any time. Fills `alive` from the
 * pid and start time.
 */
int shmstat_sync_status_read(shmstat_t *h, shmstat_sync_status_t *out);


/*
 * 1 when the bridge is alive, connected, and pushed (and so reconciled the
 * cluster-wide values) within max_age_ms (0: three intervals, at least
 * 2 s); 0 otherwise; negative on error. Any process, any time.
 */
int shmstat_sync_fresh(shmstat_t *h, uint64_t max_age_ms);


/*
 * Ask the bridge to reset, in Redis, every counter whose name matches the
 * glob (fnmatch rules, 1..255 bytes). Any process; requests from several
 * processes are serialised: SHMSTAT_EBUSY while another request is still
 * pending. *req_id gets the request's id, for shmstat_sync_reset_wait().
 * The request stays in the segment until a bridge takes it.
 */
int shmstat_sync_reset_request(shmstat_t *h, const char *glob,
			       uint64_t *req_id);

/*
 * Wait up to timeout_ms (bounded poll) for request req_id to be done.
 * 0 and *count = names reset; SHMSTAT_EBUSY on timeout (it stays pending);
 * or the bridge's error code for it.
 */
int shmstat_sync_reset_wait(shmstat_t *h, uint64_t req_id,
			    uint32_t timeout_ms, uint64_t *count);


/* ---------------------------------------------------------------- end sync */

/* ------------------------------------------------------------------ cache */

/*
 * A TTL key/value cache in the segment, shared by every process that opens
 * it: what an application would otherwise keep in Redis or a per-process
 * dict, at the cost of a hash lookup and a copy.
 *
 * Keys are binary (pointer + length, NUL bytes allowed), 1 to
 * SHMSTAT_CACHE_KEY_MAX bytes; a key outside that range gives
 * SHMSTAT_EINVAL. Values are 0 to cache_max_value bytes (set when the
 * segment is created, default 1 MiB; shmstat_info() reports it); a longer
 * value gives SHMSTAT_ETOOBIG. TTLs are milliseconds on a clock that does
 * not jump with the wall clock (CLOCK_MONOTONIC_COARSE, a few ms of
 * resolution); 0 means "never expires".
 *
 * Ownership: values are always copied into the caller's buffer; no pointer
 * into the segment is ever handed out. When the buffer is too small a get
 * returns SHMSTAT_ERANGE and stores the length it needs in *vlen; the
 * buffer's contents are then unspecified.
 *
 * Concurrency: every cache call may run in any number of processes and
 * threads at once. Reads take no lock: they retry while a writer changes
 * the bucket they read and never return a mix of two values. Writes take
 * one of many striped locks that survive the death of their holder: a
 * process killed in the middle of a set leaves the old value or the new
 * one, never a mix. No call waits for a lock longer than a bound (100 ms):
 * when a holder is stopped (SIGSTOP) a get reports a miss and a write
 * returns SHMSTAT_EBUSY.
 *
 * Memory: when the cache is full a set evicts the entries used least
 * recently (approximately: CLOCK); expired entries are removed when met
 * and by shmstat_cache_sweep(). Statistics are kept per process (no line
 * is shared between processes on a get) and summed by
 * shmstat_cache_stats(). A shmstat_t may be shared by threads for every
 * cache call; its statistics are added atomically and miss no count.
 *
 * Corruption: an entry whose stored value length is impossible makes a
 * get, exists, ttl or fetch of its key return SHMSTAT_ECORRUPT (at once,
 * whatever the wait); a set of the key replaces it and a delete removes it.
 */
#define SHMSTAT_CACHE_KEY_MAX 250
/* The longest TTL, in ms (about 292 million years): a longer ttl_ms given
 * to shmstat_cache_set() or shmstat_cache_expire() is this one. */
#define SHMSTAT_CACHE_TTL_MAX ((uint64_t)INT64_MAX)

/* Modes of shmstat_cache_set(). */
enum shmstat_cache_mode {
	SHMSTAT_CACHE_ALWAYS = 0, /* create or replace */
	SHMSTAT_CACHE_NX = 1,     /* only if absent: else SHMSTAT_EEXISTS */
	SHMSTAT_CACHE_XX = 2,     /* only if present: else SHMSTAT_ENOTFOUND */
};

/*
 * Store a copy of val[0..vlen) under key with a TTL of ttl_ms (0 = none).
 * An expired entry counts as absent for NX and XX. When the memory for the
 * value's size class is used up, entries are evicted to make room.
 * Errors: EINVAL (key length, mode), ETOOBIG (value above the maximum),
 * EEXISTS / ENOTFOUND (mode not met), EBUSY (lock not had within the
 * bound), EFULL (nothing could be evicted: every candidate was locked),
 * ECORRUPT.
 */
int shmstat_cache_set(shmstat_t *h, const void *key, size_t klen,
		      const void *val, size_t vlen, uint64_t ttl_ms, int mode);

/*
 * Copy the value of key into buf[0..buflen) and its length into *vlen.
 * 0 on a hit; SHMSTAT_ENOTFOUND on a miss (absent, expired, or the bucket
 * held by a stopped writer past the bound); SHMSTAT_ERANGE when buflen is
 * too small (*vlen = the length needed; counted as a hit); SHMSTAT_ECORRUPT
 * when the key's entry is corrupt. buf may be NULL when buflen is 0.
 */
int shmstat_cache_get(shmstat_t *h, const void *key, size_t klen, void *buf,
		      size_t buflen, size_t *vlen);

/* Remove key. 0, or SHMSTAT_ENOTFOUND when it was absent (or expired). */
int shmstat_cache_delete(shmstat_t *h, const void *key, size_t klen);

/* 1 when key holds a live (unexpired) value, 0 when not, or an error.
 * Counts neither a hit nor a miss. */
int shmstat_cache_exists(shmstat_t *h, const void *key, size_t klen);

/*
 * Remaining time to live of key in *ttl_ms: -1 when it never expires,
 * else 0 to SHMSTAT_CACHE_TTL_MAX. SHMSTAT_ENOTFOUND when absent or
 * expired.
 */
int shmstat_cache_ttl(shmstat_t *h, const void *key, size_t klen,
		      int64_t *ttl_ms);

/*
 * Give a live entry a new TTL of ttl_ms from now (0 = never expires): the
 * "touch" of sliding expiration. SHMSTAT_ENOTFOUND when absent or expired.
 */
int shmstat_cache_expire(shmstat_t *h, const void *key, size_t klen,
			 uint64_t ttl_ms);

/*
 * Remove every entry whose key matches the glob `pattern` (fnmatch(3)
 * syntax: * ? [...] and \ escapes, matched against the key's bytes; NULL
 * or "*" = all). *count (may be NULL) gets how many were removed. Entries
 * set while it runs may or may not be removed. EBUSY when a stripe stayed
 * locked past the bound (what could be removed was).
 */
int shmstat_cache_clear(shmstat_t *h, const char *pattern, uint64_t *count);

/* Remove every entry; *count (may be NULL) gets how many. */
int shmstat_cache_flush(shmstat_t *h, uint64_t *count);

/*
 * Call fn for the key of every live entry matching `pattern` (as for
 * shmstat_cache_clear; NULL = all), in table order. key is a copy, valid
 * during the call only. A non-zero return from fn stops the iteration and
 * is returned. Takes no lock; entries set or removed meanwhile may or may
 * not be seen, an entry present throughout is seen once.
 */
typedef int (*shmstat_cache_key_fn)(const void *key, size_t klen, void *priv);
int shmstat_cache_iter(shmstat_t *h, const char *pattern,
		       shmstat_cache_key_fn fn, void *priv);

/* Statistics of the cache, summed over every process. */
typedef struct shmstat_cache_stats {
	uint64_t hits;        /* gets that found a live value */
	uint64_t misses;      /* gets that did not */
	uint64_t sets;        /* successful sets */
	uint64_t deletes;     /* entries removed by delete, clear, flush */
	uint64_t evictions;   /* live entries removed to make room */
	uint64_t expirations; /* expired entries removed */
	uint64_t errors;      /* calls that failed (not misses, not NX/XX) */
	uint64_t entries;     /* entries in the table now */
	uint64_t bytes_used;  /* bytes of the value memory holding entries */
	uint64_t bytes_free;  /* bytes of the value memory free */
	uint64_t max_value;   /* largest value accepted */
	double hit_rate;      /* hits / (hits + misses); 0 before any get */
} shmstat_cache_stats_t;

int shmstat_cache_stats(shmstat_t *h, shmstat_cache_stats_t *out);

/*
 * Remove expired entries from the next max_buckets buckets of the table
 * (0 = a default of 1024) and advance a shared cursor, so that processes
 * calling it in turn cover the whole table. Any process may call it at any
 * time; sets run a small step now and then on their own. *removed (may be
 * NULL) gets how many went.
 */
int shmstat_cache_sweep(shmstat_t *h, uint32_t max_buckets, uint64_t *removed);

/* Outcomes of shmstat_cache_fetch(). */
enum shmstat_cache_outcome {
	SHMSTAT_CACHE_HIT = 0,    /* buf holds the live value */
	SHMSTAT_CACHE_LEASED = 1, /* miss: this caller computes the value */
	SHMSTAT_CACHE_STALE = 2,  /* buf holds the expired value; another
				     caller holds the lease and computes */
};

/*
 * Stampede protection: a get that, on a miss, elects exactly one caller
 * among all processes to compute the value.
 *   HIT:    as shmstat_cache_get().
 *   LEASED: nobody held the lease: this caller now does, for lease_ms
 *           (0 = 10 s), and should compute the value and
 *           shmstat_cache_set() it (which releases the lease), or call
 *           shmstat_cache_lease_release() when it gives up. A lease whose
 *           holder dies is free again at once; one whose holder hangs, when
 *           lease_ms runs out.
 *   STALE:  another caller holds the lease, and the expired value was
 *           still in the table: buf holds it.
 * Otherwise the caller waits, up to wait_ms, for the value to appear (HIT)
 * or the lease to become free (LEASED); then returns SHMSTAT_ELEASE.
 * *outcome gets one of enum shmstat_cache_outcome when 0 is returned.
 * Errors as for get and set, and ERANGE as for get.
 */
int shmstat_cache_fetch(shmstat_t *h, const void *key, size_t klen, void *buf,
			size_t buflen, size_t *vlen, uint32_t lease_ms,
			uint32_t wait_ms, int *outcome);

/* Give up a lease taken by shmstat_cache_fetch() without setting the
 * value. ENOTFOUND when this process holds no lease on key. */
int shmstat_cache_lease_release(shmstat_t *h, const void *key, size_t klen);

/* -------------------------------------------------------------- end cache */

/* ------------------------------------------------------------------ export */

/*
 * Documents of a segment, written to a stdio stream the caller owns (a
 * file, a pipe, or open_memstream() for a buffer). Any process, any time;
 * values are read as in shmstat_iter(). pattern filters counters and
 * gauges by glob (NULL = all).
 */

/* "redis" when the bridge reconciled the values recently, else "local". */
const char *shmstat_source(shmstat_t *h);

/* The live-stats JSON: {"timestamp", "scope": "local", "source": "local",
 * "segment", "counters": {name: value}, "gauges": {name: value}}: this
 * segment's own values. */
int shmstat_export_json(shmstat_t *h, const char *pattern, FILE *f);
/* The same with each counter's and gauge's cluster-wide value as the bridge
 * last read it from Redis (null when never read): "scope": "global",
 * "source": "redis" when the bridge reconciled them recently, else
 * "stale". */
int shmstat_export_json_global(shmstat_t *h, const char *pattern, FILE *f);

/*
 * The Prometheus text exposition (format 0.0.4): counters as
 * shmstat_<name>_total, gauges as shmstat_<name>, every byte of the name
 * outside [A-Za-z0-9_] replaced by '_' and the original name kept in a
 * name="..." label (so names that sanitize alike stay distinct series, and
 * a comment line says so); then the segment's own metrics, the cache's
 * statistics and the bridge's state.
 */
int shmstat_export_prometheus(shmstat_t *h, const char *pattern, FILE *f);

/* Health: what `shmstat health` and the bridge's /health report. */
enum shmstat_health_status {
	SHMSTAT_HEALTHY = 0,
	SHMSTAT_DEGRADED = 1, /* works, but numbers may be local or lost */
	SHMSTAT_BROKEN = 2,   /* segment missing or invalid */
};
#define SHMSTAT_HEALTH_NO_BRIDGE 0x1u /* do not require a running bridge */

typedef struct shmstat_health {
	int status;              /* enum shmstat_health_status */
	char reason[512];        /* the first problem, "" when healthy */
	/* One word or phrase per check: "ok" or what is wrong. */
	char segment[128];
	char bridge[384];
	char cache[128];
	char workers[128];
	char directory[128];
	double cache_fill;       /* used / (used + free) of value memory */
} shmstat_health_t;

/*
 * Judge an attached segment: degraded when the bridge is absent,
 * disconnected or stale (unless SHMSTAT_HEALTH_NO_BRIDGE), the cache's value
 * memory is 95% full, the directory 90% full, or a process found no free
 * row. (A segment that cannot be opened is broken: the caller knows that
 * from shmstat_open().)
 */
int shmstat_health(shmstat_t *h, unsigned flags, shmstat_health_t *out);

/* The health JSON: {"status", "timestamp", "segment", "reason", "checks":
 * {"segment", "bridge", "cache", "workers", "directory"}}. h may be NULL
 * (a segment that could not be opened). */
int shmstat_export_health_json(shmstat_t *h, const shmstat_health_t *hs,
			       FILE *f);

/* ------------------------------------------------------------- end export */

#ifdef __cplusplus
}
#endif

#endif /* SHMSTAT_H */
