/*
 * shmstat.h — the one public header of libshmstat.
 *
 * libshmstat keeps named counters, gauges, histograms (names may carry
 * labels; families may carry help text) and a TTL cache in one POSIX
 * shared-memory segment per namespace ("/shmstat.<name>"), shared by every
 * process of a host that opens it: prefork workers, the shmstat tool and the
 * shmstat-bridge daemon. doc/segment.md describes the layout and the crash
 * rules behind the contracts below.
 *
 * Conventions
 *   - Every fallible call returns 0 or a negative SHMSTAT_E* code;
 *     shmstat_strerror() names the code, shmstat_errstr() gives the reason
 *     of the calling thread's last failure.
 *   - Reads copy out into the caller's memory: no pointer into the segment
 *     ever leaves the library.
 *   - The library never prints; see shmstat_log_set().
 *   - ABI: the counter, gauge and histogram handles, struct shmstat_hist_
 *     (which the inline observe reads) and the inline increment and
 *     observe are ABI (the handles' sizes are checked by a test). Version
 *     0.x promises no ABI for the other structs (options, outputs):
 *     rebuild against the header you run with. They carry reserved space
 *     so that they can grow without changing size.
 *
 * Every function states, in the same three slots:
 *   Concurrency: who may call it at once (threads sharing a shmstat_t,
 *                processes sharing a segment);
 *   Ordering:    what a reader in another thread or process may observe;
 *   Killed:      what a caller killed inside it (SIGKILL) leaves behind.
 * "Any" below means any number of threads of any processes at once.
 *
 * Threads and processes
 *   A shmstat_t may be shared by any number of threads for every call, the
 *   counter hot path included: no increment is ever lost. Each shmstat_t
 *   owns a row of counter cells in the segment; the first thread that
 *   counts through it owns the row and adds with a plain load and store
 *   (no lock prefix, no shared line). Up to three other threads take a row
 *   of their own (plain adds too, through a function call) while more than
 *   half of the segment's rows are free, and give it back when they exit;
 *   any further thread adds atomically into a second row of the same
 *   shmstat_t. A thread that counts a lot is fastest with a shmstat_t of
 *   its own. After fork() a child counts into a row of its own, claimed
 *   when it first counts, so a child that only execs holds no row.
 *   Processes: every call may run in any number of processes at once.
 *
 * Truncation: a process that can write the segment's file can shrink it
 * under the others, whose next access of a lost page is a SIGBUS that no
 * library can turn into an error. That is why shmstat_open() refuses a
 * segment owned by another user unless asked (SHMSTAT_O_OWNER, _GROUP,
 * _RDONLY); a program that attaches to a segment others can write handles
 * SIGBUS itself (the shmstat tool prints a clear error and exits).
 */
#ifndef SHMSTAT_H
#define SHMSTAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#if !defined(__x86_64__) && !defined(__aarch64__)
#include <pthread.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define SHMSTAT_VERSION_MAJOR 0
#define SHMSTAT_VERSION_MINOR 2

/* Segment names: [A-Za-z0-9_.-]{1,64}, not "." or containing "..". */
#define SHMSTAT_SEGNAME_MAX 64
/* Counter and gauge names: 1..200 bytes of UTF-8, no control characters
 * (0x00-0x1f, 0x7f); any other name is refused (ENAME, and a reason that
 * names the offset of the first bad byte), so that every document the
 * library writes can carry every name. */
#define SHMSTAT_NAME_MAX 200
/* Human-readable reasons are at most this long, with the NUL. */
#define SHMSTAT_ERRSTR_LEN 256
/* Counters and gauges saturate here: they never wrap. */
#define SHMSTAT_VALUE_MAX INT64_MAX

/*
 * Error codes, one table: X(name, value, message).
 * shmstat_strerror(SHMSTAT_EFOO) returns the message.
 * EEXIST is about segments (shmstat_open with SHMSTAT_O_EXCL); EKEYEXISTS
 * about cache keys (SHMSTAT_CACHE_NX).
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
	X(EKEYEXISTS, -21, "key exists")                                       \
	X(ELEASE, -22, "lease held by another caller")                         \
	X(EOWNER, -23, "segment is owned by another user")                     \
	X(ERDONLY, -24, "handle is read-only")

enum shmstat_error {
#define SHMSTAT_ENUM_(name, value, msg) SHMSTAT_##name = (value),
	SHMSTAT_ERRORS(SHMSTAT_ENUM_)
#undef SHMSTAT_ENUM_
};

/* Name of an error code; never NULL ("unknown error" for a foreign code).
 * Concurrency: any. */
const char *shmstat_strerror(int err);

typedef struct shmstat shmstat_t;

/* Flags for shmstat_options_t.flags. */
#define SHMSTAT_O_CREATE 0x1u /* create the segment when it does not exist */
#define SHMSTAT_O_EXCL 0x2u   /* with CREATE: fail with EEXIST if it exists */
#define SHMSTAT_O_RDONLY 0x4u /* map read-only: inspect, never write */
#define SHMSTAT_O_OWNER 0x8u  /* the segment's owner must be owner_uid */
#define SHMSTAT_O_GROUP 0x10u /* the segment's group must be group_gid */

/*
 * Options for shmstat_open(). A zeroed struct (or NULL) means: attach to an
 * existing segment owned by this process's effective user. Every zero field
 * means its default. Sizes matter only when this call creates the segment;
 * an attacher reads them from the header.
 */
typedef struct shmstat_options {
	unsigned flags;          /* SHMSTAT_O_* */
	unsigned mode;           /* permission bits at creation; 0 = 0600;
	                          * world-writable (o+w) is refused: EINVAL */
	size_t size;             /* total bytes; 0 = 32 MiB */
	uint32_t max_counters;   /* counters + gauges; 0 = 4096 */
	uint32_t max_workers;    /* rows for concurrent processes; 0 = 128 */
	size_t cache_max_value;  /* largest cache value; 0 = 1 MiB */
	uint32_t wait_ms;        /* wait for a concurrent creator; 0 = 2000 */
	uint32_t owner_uid;      /* with SHMSTAT_O_OWNER: the expected owner */
	uint32_t group_gid;      /* with SHMSTAT_O_GROUP: the expected group */
	uint32_t cache_home_pct; /* percent of the cache's value memory made
	                          * home blocks (faster hits of entries of at
	                          * most 128 bytes); 0 = none, at most 90 */
	uint32_t reserved_[4];
} shmstat_options_t;

/*
 * Open the segment "/shmstat.<name>" (on Linux /dev/shm/shmstat.<name>).
 *
 * Creation: with SHMSTAT_O_CREATE, many processes may call this at once on
 * a missing segment: exactly one creates it (O_EXCL), the others wait (up
 * to wait_ms) until its header is published, and all attach. Creation
 * reserves the memory (posix_fallocate), so a full /dev/shm gives
 * SHMSTAT_ENOSPC here rather than SIGBUS later.
 *
 * Attaching validates size, magic, layout version and every region before
 * use: ETRUNC, EMAGIC, EVERSION (a segment of another layout major version,
 * or a cache region of another format, i.e. made by another build: the
 * message names both versions; a newer minor of the same major attaches),
 * ECORRUPT, EINIT are distinct.
 *
 * Ownership: a segment whose owner is not this process's effective user is
 * refused with SHMSTAT_EOWNER (the reason names the segment, its path,
 * owner, group and mode), unless
 *   - SHMSTAT_O_RDONLY is given (reading cannot hurt the caller's data), or
 *   - SHMSTAT_O_OWNER is given and the owner is owner_uid, or
 *   - SHMSTAT_O_GROUP is given, the group is group_gid and the mode lets
 *     the group read and write, or
 *   - the mode lets the group read and write and the caller is a member of
 *     the segment's group.
 * SHMSTAT_O_OWNER and SHMSTAT_O_GROUP are checks, not only permissions: a
 * segment with another owner (resp. group) than the one named is refused,
 * even when this user owns it. Creating applies no check (we own it).
 *
 * Read-only (SHMSTAT_O_RDONLY, not with O_CREATE): the segment is mapped
 * without write access. Every read works (stat, iter, info, export,
 * health, cache stats, and cache get, exists, ttl and iter, which through
 * such a handle mark no entry used, count no hit or miss and remove no
 * expired entry); every call that would write returns SHMSTAT_ERDONLY:
 * counter and gauge open, reset, reap, cache writes and fetch.
 *
 * On success *out is a new handle; on failure *out is NULL and
 * shmstat_errstr(NULL) gives the reason in this thread.
 *
 * Concurrency: any. Ordering: a handle opened after another process's
 * shmstat_counter_open() returned sees that counter. Killed: a creator
 * killed before publishing leaves an object with a zero magic; attachers
 * wait wait_ms for it and then fail with EINIT ("never initialized"), and
 * the segment must be removed (shmstat_unlink, `shmstat destroy`) before it
 * can be created again. A creator killed before sizing it leaves an empty
 * object (EINIT likewise). An attacher killed inside holds nothing.
 */
int shmstat_open(const char *name, const shmstat_options_t *opts,
		 shmstat_t **out);

/*
 * Release the handle's rows (their counts stay in the segment), unmap,
 * free, and set *h to NULL. Accepts NULL and a pointer to NULL.
 * Concurrency: the caller must be the handle's last user: no other thread
 * may be inside a call on it, or call one after (their behaviour would be
 * undefined, as for free()). Counter and gauge handles taken from it die
 * with it. Ordering: every increment made through it before is in the
 * segment (release) before its rows can be claimed again. Killed: its rows
 * stay claimed by a dead process until someone reaps them (shmstat_reap,
 * or a claimer that finds no free row); nothing is lost.
 */
void shmstat_close(shmstat_t **h);

/* Remove the segment's name; processes that have it open keep it mapped.
 * Concurrency: any; one unlink of a name wins, the others get ENOENT. */
int shmstat_unlink(const char *name);

/* Check a segment name; 0 when valid, SHMSTAT_ENAME otherwise. Any. */
int shmstat_name_check(const char *name);

/*
 * The reason for the calling thread's last failure (of a call on any
 * handle, or of shmstat_open()), or "no error". The text lives in
 * thread-local storage: threads sharing a handle each see their own.
 * Valid until this thread's next failing call. Never NULL. h is accepted
 * for symmetry and may be NULL. A cache miss is an answer, not a
 * failure, and sets no reason: SHMSTAT_ENOTFOUND from get, exists, ttl,
 * expire, delete and lease_release leaves the text as it was (read it
 * after a code that is a failure).
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

/*
 * Route the library's diagnostics to fn (NULL: drop them, the default).
 * fn is called in whichever thread hits the problem, possibly in several
 * threads at once and in a fork() child before fork() returns there
 * (where it must only do async-signal-safe work); it must not call back
 * into libshmstat. msg is valid during the call only.
 * Concurrency: call it once, before other threads use the library; a call
 * racing a diagnostic may see the old or the new fn with the other's priv.
 */
void shmstat_log_set(shmstat_log_fn fn, void *priv);

/* ---------------------------------------------------------------- counters */

/*
 * The row a handle counts into. Lives in the process-local shmstat_t.
 * owner_ is the thread token (shmstat_thread_token_()) of the thread that
 * adds with plain stores, 0 while no thread does (then every add takes
 * shmstat_counter_add_ts()). Not for use outside the inline functions.
 */
struct shmstat_row_ {
	uint64_t *cells;
	uintptr_t owner_;
};

/*
 * A counter handle: ABI, 16 bytes. Obtain with shmstat_counter_open();
 * valid until shmstat_close() of the shmstat_t it came from; may be copied
 * and shared by threads.
 */
typedef struct shmstat_counter {
	struct shmstat_row_ *row_;
	uint32_t index_;
	uint32_t reserved_;
} shmstat_counter_t;

/*
 * Get a handle to the counter `name`, creating it when missing. The first
 * open of a shmstat_t claims its row.
 * Errors: ENAME (empty, too long, control characters), EKIND (a gauge has
 * that name), EFULL (directory full: existing counters keep working),
 * ERDONLY. When every row is held by a live process the handle still
 * counts exactly, into the segment's shared overflow row with atomic adds
 * (slower, and shared by every process there): the call returns 0, the
 * log hook gets a warning, shmstat_info() says so (handle_row ==
 * SHMSTAT_ROW_OVERFLOW, row_overflows), and so do `shmstat info` and
 * `shmstat health`.
 * On failure *out is a handle whose adds go nowhere (never a fault).
 * Concurrency: any; processes opening one new name at once get one counter.
 * Ordering: the name is visible to every reader once this returns.
 * Killed: a caller killed while inserting the name leaves an entry the
 * next inserter repairs (see doc/segment.md); the name is not created.
 */
int shmstat_counter_open(shmstat_t *h, const char *name, shmstat_counter_t *out);

/*
 * The thread token of the calling thread: its thread pointer, unique among
 * the live threads of a process. For the inline increment.
 */
static inline uintptr_t shmstat_thread_token_(void)
{
#if defined(__has_builtin)
#if __has_builtin(__builtin_thread_pointer) && \
	(defined(__x86_64__) || defined(__aarch64__))
#define SHMSTAT_HAVE_TP_ 1
	return (uintptr_t)__builtin_thread_pointer();
#endif
#endif
#ifndef SHMSTAT_HAVE_TP_
#if defined(__x86_64__)
	uintptr_t t;
	__asm__("mov %%fs:0, %0" : "=r"(t));
	return t;
#else
	return (uintptr_t)pthread_self();
#endif
#endif
}

/*
 * The out-of-line increment: what shmstat_counter_add() does, as an
 * exported function for callers that cannot use an inline function (FFI:
 * ctypes, cffi, PHP FFI, LuaJIT; other languages' bindings). Thread-safe:
 * the row's owner thread adds with a plain load and store, as do up to
 * three other threads into rows of their own; any other thread atomically
 * into its handle's second row. Saturates at SHMSTAT_VALUE_MAX.
 * c may be NULL (nothing happens).
 * Concurrency: any. Ordering: relaxed; a reader sees the add eventually,
 * never a torn value. Killed: the add happened or it did not.
 * Cost (bench/, one run): owner thread ~ the inline add plus a call;
 * a thread with a row of its own ~ a call and a few loads; other threads
 * one atomic add on a line shared by this process's atomic threads only.
 */
void shmstat_counter_add_ts(const shmstat_counter_t *c, uint64_t n);

/* shmstat_counter_add_ts() for the inline function below, with the
 * handle's fields as scalars (no address of the caller's copy escapes, so
 * the handle stays in registers). Not for direct use. */
void shmstat_counter_add_slow_(struct shmstat_row_ *row, uint32_t index,
			       uint64_t n);

/*
 * The hot path: add n to the counter. For the row's owner thread: no
 * syscall, no lock, no heap, no lock prefix (a plain load and store of a
 * line no other thread writes). Other threads, and an n of 2^32 or more,
 * take shmstat_counter_add_ts(). A counter never wraps: it saturates at
 * SHMSTAT_VALUE_MAX (a cell may pass that value by small adds, which every
 * reader shows as SHMSTAT_VALUE_MAX; it would take 2^63 more increments to
 * wrap it). Concurrency, ordering, killed: as shmstat_counter_add_ts().
 * Signals: a signal handler that counts through a handle whose row its
 * thread owns may lose its add when it interrupts that thread's own add of
 * the same counter (a plain load and store); count from handlers through
 * another shmstat_t.
 * (GCC builtins rather than <stdatomic.h> so that C++ can include this.)
 */
static inline void shmstat_counter_add(shmstat_counter_t c, uint64_t n)
{
	struct shmstat_row_ *r = c.row_;
	if (__builtin_expect(__atomic_load_n(&r->owner_, __ATOMIC_RELAXED) ==
				     shmstat_thread_token_() &&
			     n < (UINT64_C(1) << 32),
			     1)) {
		uint64_t *cell = r->cells + c.index_;
		__atomic_store_n(cell, __atomic_load_n(cell, __ATOMIC_RELAXED) + n,
				 __ATOMIC_RELAXED);
	} else {
		shmstat_counter_add_slow_(r, c.index_, n);
	}
}

static inline void shmstat_counter_incr(shmstat_counter_t c)
{
	shmstat_counter_add(c, 1);
}

/*
 * Look up (or create) by name and add: for scripts and the CLI, not hot.
 * Errors as shmstat_counter_open(). Concurrency, ordering, killed: as
 * shmstat_counter_open() then shmstat_counter_add_ts().
 */
int shmstat_counter_add_by_name(shmstat_t *h, const char *name, uint64_t n);

/* Kinds of named values (histograms: see below; shmstat_iter() gives a
 * histogram's entry as SHMSTAT_KIND_HISTOGRAM, whose value and total are
 * its sum in millionths, and each bucket as SHMSTAT_KIND_HBUCKET). */
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
 * A counter's sum saturates at SHMSTAT_VALUE_MAX, as every output shows it.
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
	uint64_t reserved_[4];
} shmstat_stat_t;

/*
 * Read a counter's value through its handle (sums every row). EINVAL when
 * c is not from h. Concurrency: any. Ordering: a value never goes
 * backwards between two reads in one thread, except across a reset; an
 * add that returned in this thread is seen. Killed: nothing to leave.
 */
int shmstat_counter_read(shmstat_t *h, shmstat_counter_t c, int64_t *value);

/* Read one counter or gauge by name; ENOTFOUND when it does not exist.
 * Concurrency, ordering: as shmstat_counter_read(). */
int shmstat_stat_read(shmstat_t *h, const char *name, shmstat_stat_t *out);

/*
 * Call fn for every counter and gauge whose name matches the glob `pattern`
 * (fnmatch(3) rules; NULL = all), in directory order. *st is valid during
 * the call only. A non-zero return from fn stops the iteration and is
 * returned. Concurrency: any, while other processes add names and count;
 * a name added meanwhile may or may not be seen, a name present throughout
 * is seen once. Ordering: each value as shmstat_counter_read().
 */
typedef int (*shmstat_stat_fn)(const shmstat_stat_t *st, void *priv);
int shmstat_iter(shmstat_t *h, const char *pattern, shmstat_stat_fn fn,
		 void *priv);

/*
 * Reset every counter whose name matches `pattern` (NULL = all): record the
 * current sum as the counter's base. Never writes workers' rows, so an
 * increment racing a reset is counted either before or after it, never
 * lost. Gauges that match are set to 0. *count (may be NULL) gets how many.
 * Concurrency: any; concurrent resets only ever raise a base. Ordering: a
 * reader that sees the new base sees the sum it was taken from. Killed:
 * counters before the kill point are reset, the others not.
 */
int shmstat_reset(shmstat_t *h, const char *pattern, uint64_t *count);

/* ------------------------------------------------------------------ gauges */

typedef struct shmstat_gauge {
	int64_t *cell_;
	uint32_t index_;
	uint32_t reserved_;
} shmstat_gauge_t;

/*
 * Get a handle to the gauge `name`, creating it (at 0) when missing.
 * Errors: ENAME, EKIND (a counter has that name), EFULL, ERDONLY; on
 * failure *out is a handle whose operations touch a private sink.
 * Concurrency, ordering, killed: as shmstat_counter_open().
 */
int shmstat_gauge_open(shmstat_t *h, const char *name, shmstat_gauge_t *out);

/*
 * Set, add to (delta may be negative) and read a gauge: one atomic
 * operation each on the gauge's one shared cell, so none is lost. add
 * saturates at INT64_MIN and INT64_MAX. Concurrency: any. Ordering:
 * relaxed: gauges are not ordered with each other or with counters (a
 * reader may see a later set of gauge A before an earlier set of gauge
 * B); all writes of one gauge are seen in one order by everyone. Killed:
 * the operation happened or it did not.
 */
void shmstat_gauge_set(shmstat_gauge_t g, int64_t v);
void shmstat_gauge_add(shmstat_gauge_t g, int64_t delta);
int64_t shmstat_gauge_read(shmstat_gauge_t g);

/* ------------------------------------------------------------------ labels
 *
 * A name may carry labels: name{key="value",...}. Every call that takes a
 * counter, gauge or histogram name accepts it; keys may come in any order
 * and the same metric with its labels in another order is the same metric.
 *   - name: the part before '{': 1 or more bytes, no '{';
 *   - key: [A-Za-z_][A-Za-z0-9_]*, not starting with "__" (reserved), each
 *     key once, at most SHMSTAT_LABELS_MAX keys;
 *   - value: between double quotes, escaped as in the Prometheus text
 *     format: \\ for a backslash, \" for a quote, \n for a newline (no
 *     other escape, no raw control character);
 *   - pairs separated by ',' (a trailing ',' and spaces after ',' and '{'
 *     are accepted); "name{}" is "name".
 * The canonical form has the keys sorted (bytewise) and no spaces:
 * shmstat_name_canonical() gives it.
 *
 * Stored form and Redis keys: the directory (and shmstat_stat_t.name, and
 * so the key the bridge gives it in Redis) holds a labelled name as
 * name{}{key="value",...}: the empty "{}" first makes Redis Cluster hash
 * the whole key (a key's hash tag is what lies between its first '{' and
 * the next '}', and an empty one counts as none), so series of one label
 * set are spread over the slots like any other keys. Every call accepts
 * the stored form as well. SHMSTAT_NAME_MAX bounds the stored form.
 * Cardinality is bounded by the directory: every label set is one entry
 * (EFULL when none is left).
 */
#define SHMSTAT_LABELS_MAX 16

/*
 * Write the canonical form of name (either form) into out[0..len): its
 * length (without the NUL) on success; ENAME (reason in shmstat_errstr())
 * for a name that is not valid; ERANGE when len is too small (len of
 * SHMSTAT_NAME_MAX + 1 always suffices). Concurrency: any.
 */
int shmstat_name_canonical(const char *name, char *out, size_t len);

/* -------------------------------------------------------------- histograms
 *
 * A histogram counts observations (a latency, a size: values >= 0) into
 * buckets with Prometheus-style upper bounds (an observation v falls in
 * the first bucket whose bound is >= v; the last bucket, +Inf, takes the
 * rest) and sums them. Its cells are ordinary counter cells in the rows:
 * each bucket is a directory entry of its own (counting the observations
 * of that bucket alone, not cumulated), and the histogram's own entry
 * counts the sum, as an integer in millionths (SHMSTAT_HIST_SUM_SCALE) of
 * the observed unit, each observation rounded to the nearest millionth.
 * The count is the sum of the buckets (so count and +Inf bucket never
 * disagree). Reads sum rows like counters, dead workers' rows are adopted
 * like counters, reset works like counters, and the bridge syncs the
 * buckets and the sum as counters: in Redis the cluster histogram is the
 * sum over hosts, bucket by bucket, exactly.
 *
 * Directory entries: 1 + the number of buckets (the bounds and +Inf). The
 * bucket of bound X of histogram name{L} is named name{__le="X",L} (stored
 * as name{}{__le="X",L}; keys sorted as always), X the shortest decimal
 * that reads back as the bound; "+Inf" for the last one. The sum's key is
 * the histogram's own name.
 */
#define SHMSTAT_KIND_HISTOGRAM 3 /* a histogram (its entry holds the sum) */
#define SHMSTAT_KIND_HBUCKET 4   /* one bucket of a histogram */
/* shmstat_stat_t.name holds the stored form (see labels): the key the
 * bridge uses. shmstat_name_canonical() turns it into the canonical one. */
#define SHMSTAT_HIST_BOUNDS_MAX 32
#define SHMSTAT_HIST_SUM_SCALE 1000000
/* An observation at or above this (and +Inf) saturates the sum, which then
 * stays at its maximum: the tool and the Python binding refuse them. */
#define SHMSTAT_HIST_VALUE_MAX 9.2e12
/* Request latency in seconds: prometheus_client's default buckets. */
#define SHMSTAT_LATENCY_BOUNDS                                                 \
	{ 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,    \
	  5.0, 7.5, 10.0 }
#define SHMSTAT_LATENCY_NBOUNDS 14

/* Process-local description of an open histogram: for the inline
 * observe only. tab_ maps a value's top 14 bits (sign, exponent, two
 * mantissa bits) to the first bucket it can fall in, so that the search
 * takes a step or two whatever the number of buckets. vbits_: the inline
 * path takes values whose bits are below it (v >= 0 and below 4294, so
 * that the sum's add stays below 2^32; not NaN). */
#define SHMSTAT_HIST_TAB_ 8192
struct shmstat_hist_ {
	uint32_t n_;                             /* finite bounds */
	uint32_t sum_;                           /* cell of the sum */
	uint64_t vbits_;
	double bound_[SHMSTAT_HIST_BOUNDS_MAX + 1]; /* +Inf after the last */
	uint32_t cell_[SHMSTAT_HIST_BOUNDS_MAX + 1]; /* bucket cells, +Inf last */
	uint8_t tab_[SHMSTAT_HIST_TAB_];
};

/* A histogram handle: ABI, 16 bytes; valid until shmstat_close() of the
 * shmstat_t it came from; may be copied and shared by threads. */
typedef struct shmstat_histogram {
	struct shmstat_row_ *row_;
	const struct shmstat_hist_ *d_;
} shmstat_histogram_t;

/*
 * Fill out[0..count) with start, start*factor, ... (Prometheus'
 * ExponentialBuckets). EINVAL unless start > 0, factor > 1 and 1 <= count
 * <= SHMSTAT_HIST_BOUNDS_MAX. Concurrency: any.
 */
int shmstat_buckets_exponential(double start, double factor, size_t count,
				double *out);

/*
 * Get a handle to the histogram `name` with the bucket bounds
 * bounds[0..n) (finite, strictly increasing, 1 <= n <=
 * SHMSTAT_HIST_BOUNDS_MAX; +Inf is implied), creating it when missing.
 * bounds NULL (n 0): the bounds of the existing histogram (ENOTFOUND when
 * there is none). Errors: ENAME (also: the name leaves no room for its
 * buckets' names, or carries a label "le"), EINVAL (bounds), EKIND (the
 * name is a counter or gauge, or the histogram exists with other bounds:
 * the reason says which), EFULL (the directory cannot take its entries;
 * those made stay, and a later open with room completes them), ERDONLY.
 * On failure *out is a handle whose observations go nowhere.
 * Concurrency, ordering: as shmstat_counter_open(). Killed: as for
 * counters, per entry; a histogram some of whose buckets were never made
 * reads them as empty until the next open makes them.
 */
int shmstat_histogram_open(shmstat_t *h, const char *name,
			   const double *bounds, size_t n,
			   shmstat_histogram_t *out);

/* The out-of-line observe (FFI, other threads): thread-safe as
 * shmstat_counter_add_ts(). NaN is ignored; a negative value counts as 0;
 * +Inf, and any value of SHMSTAT_HIST_VALUE_MAX (9.2e12) or more, counts
 * in the +Inf bucket and saturates the sum, which then stays at its
 * maximum (as Prometheus' sum becomes +Inf): the Python binding and the
 * tool refuse them. hg may be NULL. */
void shmstat_histogram_observe_ts(const shmstat_histogram_t *hg, double v);
void shmstat_histogram_observe_slow_(struct shmstat_row_ *row,
				     const struct shmstat_hist_ *d, double v);

/*
 * The hot path: count v into its bucket and add it to the sum: two plain
 * adds into the row for the row's owner thread (a table lookup by the
 * value's exponent and a step or two over the bounds first); any other thread, NaN, negative values and values of
 * 4294 or more take shmstat_histogram_observe_ts(). Threads, signals,
 * saturation: as shmstat_counter_add(). Concurrency: any. Ordering:
 * relaxed: a reader may see the bucket before the sum. Killed: each of the
 * two adds happened or not.
 */
static inline void shmstat_histogram_observe(shmstat_histogram_t hg, double v)
{
	struct shmstat_row_ *r = hg.row_;
	const struct shmstat_hist_ *d = hg.d_;
	uint64_t bits;
	__builtin_memcpy(&bits, &v, sizeof(bits));
	/* One unsigned compare: negative values and NaN have larger bits. */
	if (__builtin_expect(__atomic_load_n(&r->owner_, __ATOMIC_RELAXED) ==
				     shmstat_thread_token_() &&
			     bits < d->vbits_,
			     1)) {
		uint32_t k = d->tab_[bits >> 50];
		while (__builtin_expect(v > d->bound_[k], 0)) /* [n_]: +Inf */
			k++;
		uint64_t *c = r->cells;
		uint64_t *b = c + d->cell_[k], *s = c + d->sum_;
		__atomic_store_n(b, __atomic_load_n(b, __ATOMIC_RELAXED) + 1,
				 __ATOMIC_RELAXED);
		/* v < 4294: a signed conversion is exact and cheaper. */
		__atomic_store_n(s,
				 __atomic_load_n(s, __ATOMIC_RELAXED) +
					 (uint64_t)(int64_t)(v * SHMSTAT_HIST_SUM_SCALE +
							     0.5),
				 __ATOMIC_RELAXED);
	} else {
		shmstat_histogram_observe_slow_(r, d, v);
	}
}

/* Look up (or, with bounds, create) by name and observe: for scripts and
 * the CLI. Errors as shmstat_histogram_open(). */
int shmstat_histogram_observe_by_name(shmstat_t *h, const char *name,
				      double v);

/*
 * A copied-out view of one histogram. buckets[k] counts the observations
 * of bucket k alone (le[k-1] < v <= le[k]); le[nbuckets - 1] is +Inf.
 * value view: as counters (rows minus the last reset); global view: what
 * the bridge last wrote back (global_ns 0: never, or not for every cell).
 */
typedef struct shmstat_histogram_stat {
	char name[SHMSTAT_NAME_MAX + 1]; /* canonical form */
	uint32_t nbuckets;
	double le[SHMSTAT_HIST_BOUNDS_MAX + 1];
	uint64_t buckets[SHMSTAT_HIST_BOUNDS_MAX + 1];
	uint64_t count;
	double sum;
	uint64_t global_buckets[SHMSTAT_HIST_BOUNDS_MAX + 1];
	uint64_t global_count;
	double global_sum;
	uint64_t global_ns;
	uint64_t reserved_[4];
} shmstat_histogram_stat_t;

/* Read a histogram by name (either form). ENOTFOUND, EKIND (not a
 * histogram). Concurrency, ordering: each cell as shmstat_counter_read(). */
int shmstat_histogram_read(shmstat_t *h, const char *name,
			   shmstat_histogram_stat_t *out);

/*
 * Estimate the q-quantile (0 <= q <= 1) of the observations as Prometheus'
 * histogram_quantile() does: find the bucket the rank q*count falls in and
 * interpolate linearly within it (between the bucket's lower bound, 0 for
 * the first, and its upper bound); a rank in the +Inf bucket gives the
 * highest finite bound. global: use the global view. NaN when there are no
 * observations. Concurrency: any (reads *st only).
 */
double shmstat_histogram_quantile(const shmstat_histogram_stat_t *st,
				  double q, int global);

/* ---------------------------------------------------------------- help
 *
 * Help text per metric family (the name without labels), kept in the
 * segment and written as the family's # HELP line. Up to
 * SHMSTAT_HELP_MAX bytes of UTF-8 (newlines and backslashes are escaped on
 * output, other control characters refused). Setting it again replaces
 * it. The table holds max_counters / 16 families (at least 8): EFULL past
 * that. A segment created by layout 2.0 has no table: ENOTSUP.
 */
#define SHMSTAT_HELP_MAX 800

/* Set the help of the family of name (labels, if any, are ignored).
 * Errors: ENAME, EINVAL (text), EFULL, ENOTSUP, ERDONLY, EBUSY (another
 * writer held the entry past 100 ms). Concurrency: any; concurrent sets of
 * one family leave one of the texts. Killed: the text may be left
 * unreadable (the family then shows the default help until set again). */
int shmstat_help_set(shmstat_t *h, const char *name, const char *text);

/* Copy the help of the family of name into buf[0..len) (NUL-ended): its
 * length, ENOTFOUND when none is set, ERANGE when len is too small. */
int shmstat_help_get(shmstat_t *h, const char *name, char *buf, size_t len);

/* ------------------------------------------------------------- inspection */

/* Usage of one region of the segment. */
typedef struct shmstat_region_info {
	const char *name;  /* static string */
	uint64_t offset;
	uint64_t size;
	uint64_t used;     /* bytes in use */
} shmstat_region_info_t;

#define SHMSTAT_MAX_REGIONS 8

/* shmstat_info_t.handle_row: no row claimed yet / the shared overflow row. */
#define SHMSTAT_ROW_NONE (-1)
#define SHMSTAT_ROW_OVERFLOW (-2)

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
	uint64_t row_overflows;    /* claims that found no free row and count
				      in the shared overflow row */
	uint64_t cache_max_value;
	uint32_t nregions;
	/* Every region of the segment that this build knows (the help
	 * table too, from 2.1), in the order they lie in it. */
	shmstat_region_info_t region[SHMSTAT_MAX_REGIONS];
	/* The segment's file: owner, group, permission bits (at attach). */
	uint32_t owner_uid, owner_gid, mode;
	int read_only;             /* this handle was opened SHMSTAT_O_RDONLY */
	int32_t handle_row;        /* this handle's row, or SHMSTAT_ROW_* */
	uint32_t dir_dead;         /* directory entries lost to dead inserts */
	uint64_t source_nonce;     /* random, made at creation: the sync source */
	/* The page size the segment's file system says it uses for the
	 * file (st_blksize at attach): 4096, or 2097152 on a tmpfs mounted
	 * huge=within_size, which gives the file huge pages (fewer TLB
	 * misses, faster cache hits at millions of keys). It is the mount's
	 * word: with huge=advise (not used here) it says 2 MiB without
	 * them, and a segment made before a remount keeps its pages. */
	uint32_t page_size;
	/* The cache's home blocks (cache_home_pct at creation; 0: none). */
	uint32_t cache_home_blocks;
	/* CLOCK_REALTIME of the last claim that found no free row (0: none,
	 * or made by an older build). */
	uint64_t row_overflow_ns;
	uint64_t reserved_[6];
} shmstat_info_t;

/* Fill *out; checks liveness of each claimed row's process.
 * Concurrency: any. Ordering: a snapshot of independent fields. */
int shmstat_info(shmstat_t *h, shmstat_info_t *out);

/*
 * Free the rows of processes that hold them no more: exited, killed
 * without closing, zombies, and processes that exec'd (they no longer map
 * the segment where they claimed the row). A reused pid is not taken for
 * the owner (pid + process start time). Their counts stay in the segment:
 * a row is adopted, never erased. *reaped (may be NULL) gets how many.
 * A row held by a process this one cannot inspect (another pid namespace,
 * or /proc not readable for it) is kept. ERDONLY on a read-only handle.
 * Concurrency: any process, any time (claimers reap too when no row is
 * free). Killed: each row is freed by one CAS; none is half freed.
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
 * Locks and bounds: reads take no lock. Writes take one of many striped
 * locks (an owner word in the segment; a holder that died is taken over
 * and what it left half done is repaired). Every call has one deadline,
 * 100 ms, for all its waits together: when a holder is stopped (SIGSTOP)
 * a get reports a miss, a write returns SHMSTAT_EBUSY, and a whole-table
 * call (clear, flush, iter, sweep) skips what stayed locked, goes on with
 * the rest and returns SHMSTAT_EBUSY with what it did counted.
 *
 * Memory: when the cache is full a set evicts the entries used least
 * recently (approximately: CLOCK); expired entries are removed when met
 * and by shmstat_cache_sweep(). Values larger than a page take a run of
 * pages, so a large maximum does not waste the memory of small values.
 * Statistics are kept per process (no line is shared between processes on
 * a get) and summed by shmstat_cache_stats().
 *
 * Corruption: the cache region is untrusted: any bytes there (lock words
 * included) give defined results, never a crash or a wait past the
 * deadline. Its geometry is checked once, at shmstat_open(), and never
 * read again. An entry whose stored value length is impossible makes a
 * get, exists, ttl or fetch of its key return SHMSTAT_ECORRUPT (at once);
 * a set of the key replaces it and a delete removes it.
 *
 * Every function below says, in three slots:
 *   Concurrency: who may call it at once;
 *   Ordering:    what another thread or process may observe;
 *   Killed:      what a caller killed inside it (SIGKILL) leaves behind.
 * For all of them a shmstat_t may be shared by threads; its statistics
 * are added atomically and miss no count.
 */
#define SHMSTAT_CACHE_KEY_MAX 250
/* The longest TTL, in ms (about 292 million years): a longer ttl_ms given
 * to shmstat_cache_set() or shmstat_cache_expire() is this one. */
#define SHMSTAT_CACHE_TTL_MAX ((uint64_t)INT64_MAX)

/* Modes of shmstat_cache_set(). */
enum shmstat_cache_mode {
	SHMSTAT_CACHE_ALWAYS = 0, /* create or replace */
	SHMSTAT_CACHE_NX = 1,     /* only if absent: else SHMSTAT_EKEYEXISTS */
	SHMSTAT_CACHE_XX = 2,     /* only if present: else SHMSTAT_ENOTFOUND */
};

/*
 * Store a copy of val[0..vlen) under key with a TTL of ttl_ms (0 = none).
 * An expired entry counts as absent for NX and XX. When the memory for the
 * value's size class is used up, entries are evicted to make room.
 * Errors: EINVAL (key length, mode), ETOOBIG (value above the maximum),
 * EKEYEXISTS / ENOTFOUND (mode not met), EBUSY (a lock not had by the
 * deadline), EFULL (nothing could be evicted: every candidate was
 * locked), ECORRUPT.
 * Concurrency: any; sets of one key are applied one at a time, the last
 * one wins. Ordering: a get that starts after this returned sees the new
 * value (or a later one); a concurrent get sees the old value or the new,
 * never a mix (a value of the old one's size class, up to 4 KiB with its
 * key, is written over it in place while readers of its bucket retry).
 * Killed: the key holds the old value or the new one, never a mix, and no
 * memory is lost (the next caller to take the lock repairs); except that a
 * caller killed while it wrote a value in place leaves the key absent
 * (the repair removes the entry it was writing, never shows half of it).
 */
int shmstat_cache_set(shmstat_t *h, const void *key, size_t klen,
		      const void *val, size_t vlen, uint64_t ttl_ms, int mode);

/*
 * Copy the value of key into buf[0..buflen) and its length into *vlen.
 * 0 on a hit; SHMSTAT_ENOTFOUND on a miss (absent, expired, or the bucket
 * held by a stopped writer past the deadline); SHMSTAT_ERANGE when buflen
 * is too small (*vlen = the length needed; counted neither as a hit nor
 * as a miss: the retry with a buffer that fits counts the hit);
 * SHMSTAT_ECORRUPT when the key's entry is corrupt. buf may be NULL when
 * buflen is 0.
 * Concurrency: any; takes no lock. Ordering: as shmstat_cache_set(): one
 * whole value, the latest set that returned before this began or a later
 * one. Killed: nothing to leave (it writes only a use bit).
 */
int shmstat_cache_get(shmstat_t *h, const void *key, size_t klen, void *buf,
		      size_t buflen, size_t *vlen);

/*
 * Remove key. 0, or SHMSTAT_ENOTFOUND when it was absent (or expired).
 * Concurrency: any. Ordering: a get that starts after this returned
 * misses (unless a set came after). Killed: the key is there or gone,
 * and its memory is freed by the repair.
 */
int shmstat_cache_delete(shmstat_t *h, const void *key, size_t klen);

/* 1 when key holds a live (unexpired) value, 0 when not, or an error.
 * Counts neither a hit nor a miss. Concurrency, ordering and killed: as
 * shmstat_cache_get(). */
int shmstat_cache_exists(shmstat_t *h, const void *key, size_t klen);

/*
 * Remaining time to live of key in *ttl_ms: -1 when it never expires,
 * else 0 to SHMSTAT_CACHE_TTL_MAX. SHMSTAT_ENOTFOUND when absent or
 * expired. Concurrency, ordering and killed: as shmstat_cache_get().
 */
int shmstat_cache_ttl(shmstat_t *h, const void *key, size_t klen,
		      int64_t *ttl_ms);

/*
 * Give a live entry a new TTL of ttl_ms from now (0 = never expires): the
 * "touch" of sliding expiration. SHMSTAT_ENOTFOUND when absent or expired.
 * Concurrency: any. Ordering: the new deadline is one atomic store: a
 * reader sees the old one or the new. Killed: the old TTL or the new.
 */
int shmstat_cache_expire(shmstat_t *h, const void *key, size_t klen,
			 uint64_t ttl_ms);

/*
 * Remove every entry whose key matches the glob `pattern` (fnmatch(3)
 * syntax: * ? [...] [:class:] and \ escapes, matched against the key's
 * bytes; NULL or "*" = all). *count (may be NULL) gets how many were
 * removed. SHMSTAT_EBUSY when a stripe stayed locked past the deadline
 * (100 ms for the whole call): it was skipped, everything else was
 * removed, *count says how many, and the error text how many stripes
 * were skipped.
 * Concurrency: any, with sets and gets going on. Ordering: entries set
 * while it runs may or may not be removed; an entry present throughout
 * and matching is removed. Killed: some entries removed, the rest not.
 */
int shmstat_cache_clear(shmstat_t *h, const char *pattern, uint64_t *count);

/*
 * Remove every entry; *count (may be NULL) gets how many. SHMSTAT_EBUSY as
 * for shmstat_cache_clear(), and also when the memory of removed entries
 * could not be freed yet (a size class's lock held by a stopped process:
 * it is freed later); 0 means the value memory is all free.
 * Concurrency, ordering and killed: as shmstat_cache_clear().
 */
int shmstat_cache_flush(shmstat_t *h, uint64_t *count);

/*
 * Call fn for the key of every live entry matching `pattern` (as for
 * shmstat_cache_clear; NULL = all), in table order. key is a copy, valid
 * during the call only. A non-zero return from fn stops the iteration and
 * is returned. SHMSTAT_EBUSY after the walk when buckets held by a
 * stopped writer were skipped.
 * Concurrency: any; takes no lock. Ordering: entries set or removed
 * meanwhile may or may not be seen, an entry present throughout is seen
 * once. Killed: nothing to leave.
 */
typedef int (*shmstat_cache_key_fn)(const void *key, size_t klen, void *priv);
int shmstat_cache_iter(shmstat_t *h, const char *pattern,
		       shmstat_cache_key_fn fn, void *priv);

/* Statistics of the cache, summed over every process. */
typedef struct shmstat_cache_stats {
	uint64_t hits;        /* gets and fetches that returned a value */
	uint64_t misses;      /* gets that found none; fetches whose caller
	                       * is to compute (or waited in vain) */
	uint64_t sets;        /* successful sets */
	uint64_t deletes;     /* entries removed by delete, clear, flush */
	uint64_t evictions;   /* live entries removed to make room */
	uint64_t expirations; /* expired entries removed */
	uint64_t errors;      /* calls that failed in the cache: not misses,
	                       * NX/XX, nor a caller's bad key or value
	                       * (EINVAL, ETOOBIG) */
	uint64_t entries;     /* entries in the table now (expired ones not
	                       * removed yet included) */
	uint64_t bytes_used;  /* bytes of the value memory not free */
	uint64_t bytes_free;  /* bytes of the value memory free */
	uint64_t max_value;   /* largest value accepted */
	double hit_rate;      /* hits / (hits + misses); 0 before any get */
} shmstat_cache_stats_t;

/* Concurrency: any; takes no lock. Ordering: each number is read on its
 * own (they need not add up at one instant). Killed: nothing to leave. */
int shmstat_cache_stats(shmstat_t *h, shmstat_cache_stats_t *out);

/*
 * Remove expired entries from the next max_buckets buckets of the table
 * (0 = a default of 1024) and advance a shared cursor, so that processes
 * calling it in turn cover the whole table. Sets run a small step now and
 * then on their own. *removed (may be NULL) gets how many went.
 * SHMSTAT_EBUSY as for shmstat_cache_clear().
 * Concurrency: any; callers share the cursor, each sweeps its own part.
 * Ordering: as shmstat_cache_clear(). Killed: some removed, the rest not.
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
 * (one thread of one process) among all to compute the value.
 *   HIT:    as shmstat_cache_get().
 *   LEASED: nobody held the lease: this thread now does, for lease_ms
 *           (0 = 10 s), and should compute the value and
 *           shmstat_cache_set() it (which releases the lease), or call
 *           shmstat_cache_lease_release() when it gives up. A lease whose
 *           thread is gone (it exited, or its process died) is free again
 *           at once; one whose holder hangs, when lease_ms runs out.
 *   STALE:  another caller holds the lease, and the expired value was
 *           still in the table: buf holds it.
 * Otherwise the caller waits, up to wait_ms, for the value to appear (HIT)
 * or the lease to become free (LEASED); then returns SHMSTAT_ELEASE.
 * *outcome gets one of enum shmstat_cache_outcome when 0 is returned.
 * Errors as for get and set, and ERANGE as for get. Statistics: each call
 * counts once, a hit when it returns a value (HIT or STALE, however long
 * it waited), a miss when it returns LEASED or ELEASE.
 * Concurrency: any; other threads of the holder's process are callers
 * like any other. Ordering: the holder's set is seen by the waiters'
 * next poll (every millisecond). Killed: a lease it held is free at once.
 * Bound: wait_ms for the value or the lease, plus the lock deadline.
 */
int shmstat_cache_fetch(shmstat_t *h, const void *key, size_t klen, void *buf,
			size_t buflen, size_t *vlen, uint32_t lease_ms,
			uint32_t wait_ms, int *outcome);

/* Give up a lease taken by shmstat_cache_fetch() without setting the
 * value. ENOTFOUND when this thread holds no lease on key.
 * Concurrency: any. Ordering: waiters see the lease free at their next
 * poll. Killed: the lease is free (its thread is gone). */
int shmstat_cache_lease_release(shmstat_t *h, const void *key, size_t klen);

/* -------------------------------------------------------------- end cache */

/* ------------------------------------------------------------------ export */

/*
 * Documents of a segment: the live-stats JSON, the Prometheus text
 * exposition and the health JSON, each written either to a stdio stream
 * the caller owns or into a caller's buffer (the _buf forms, for callers
 * without stdio: FFI, an event loop's own buffers). Both forms write the
 * same bytes. pattern filters counters and gauges by glob (NULL = all).
 * An export only reads the segment (a read-only handle will do).
 *
 * Every document is valid (UTF-8, its format's escaping) for every name
 * the library accepts. A segment is still another process's bytes: a name
 * that breaks the rule there (not written by this library) is written
 * with U+FFFD for each bad byte in JSON, and left out of the exposition
 * with a comment saying how many.
 *
 * The _buf forms: buf holds len bytes (buf may be NULL when len is 0). On
 * success buf holds the document and a NUL, and *needed (may be NULL) its
 * length plus 1. When len is smaller: SHMSTAT_ERANGE, *needed the size
 * the document needed, buf a NUL-ended prefix. Values move between calls
 * (a counter may grow a digit, a name may be added), so a caller that
 * sizes with one call and writes with the next loops on ERANGE or leaves
 * room. On other errors *needed is 0. A stream that fails to take the
 * bytes gives SHMSTAT_ESYS.
 */

/* "redis" when the bridge reconciled the values recently, else "local".
 * Concurrency: any. Ordering: reads the bridge's status once. Killed:
 * nothing to leave (a read). */
const char *shmstat_source(shmstat_t *h);

/*
 * The live-stats JSON: {"timestamp", "scope": "local", "source": "local",
 * "segment", "counters": {name: value}, "gauges": {name: value},
 * "histograms": {name: {"count", "sum", "buckets": [[le, cumulative
 * count], ..., ["+Inf", count]]}}}: this segment's own values; names in
 * their canonical form.
 * Concurrency: any, with every other call on the segment; a shmstat_t may
 * be shared (a failure's reason is per handle: shmstat_errstr()).
 * Ordering: each counter and gauge is read once, as shmstat_iter() reads
 * it; the document is not one instant's snapshot (an increment racing the
 * export is in it or in the next one; no counter goes backwards from one
 * export to the next unless reset). Killed: the segment is unchanged (an
 * export only reads); f or buf holds a partial document.
 */
int shmstat_export_json(shmstat_t *h, const char *pattern, FILE *f);
int shmstat_export_json_buf(shmstat_t *h, const char *pattern, char *buf,
			    size_t len, size_t *needed);
/*
 * The same with each counter's and gauge's cluster-wide value as the bridge
 * last read it from Redis (null when never read): "scope": "global",
 * "source": "redis" when the bridge reconciled them recently, else
 * "stale". Concurrency, ordering, killed: as shmstat_export_json().
 */
int shmstat_export_json_global(shmstat_t *h, const char *pattern, FILE *f);
int shmstat_export_json_global_buf(shmstat_t *h, const char *pattern,
				   char *buf, size_t len, size_t *needed);

/*
 * The Prometheus text exposition (format 0.0.4): the counters, gauges and
 * histograms, then the segment's own metrics (shmstat_counters_*,
 * shmstat_workers, shmstat_row_overflows_total), the cache's
 * (shmstat_cache_*) and the bridge's (shmstat_bridge_*). A family per name
 * (its part before the labels); each series carries segment="..." and the
 * name's labels. The family:
 *   1. "shmstat_" + the name with each character outside [A-Za-z0-9_]
 *      (':' included, a multibyte character counting as one) as '_';
 *   2. a counter's family ends in "_total" (added only when the name does
 *      not already end so: http_requests_total gives
 *      shmstat_http_requests_total); a gauge's never does (trailing
 *      "_total" dropped), so a counter and a gauge never share a family; a
 *      histogram's is as written, with the series _bucket{le="..."}
 *      (cumulative, +Inf last), _sum and _count;
 *   3. a family that would be one of shmstat's own metric names
 *      (shmstat_cache_hits_total for a counter "cache:hits") is
 *      "shmstat_user_" + the rest instead (shmstat_user_cache_hits_total);
 *      no own name starts with shmstat_user_;
 *   4. names that give the same family are one family (one HELP and TYPE,
 *      and a comment line saying how many names met), in byte order of the
 *      name, then of the labels;
 *   5. a series carries name="<the name as given>" only when that tells
 *      something: several names met in the family (rule 4), or the name
 *      had to be changed (rule 1, or a gauge's dropped "_total"); a user
 *      label "name" (or "segment") keeps its key and ours is called
 *      shmstat_name (shmstat_segment) in that series;
 *   6. one kind per family: when a histogram and a gauge (or a counter
 *      named to end in "_total") give one family, the first kind in the
 *      order counter, gauge, histogram is written and the others are left
 *      out with a comment; so is a gauge whose family is one of a
 *      histogram's series names;
 *   7. # HELP is the family's help text (shmstat_help_set()), else
 *      "shmstat <kind> <name>".
 * Concurrency, Ordering, Killed: as shmstat_export_json().
 */
int shmstat_export_prometheus(shmstat_t *h, const char *pattern, FILE *f);
int shmstat_export_prometheus_buf(shmstat_t *h, const char *pattern,
				  char *buf, size_t len, size_t *needed);

/* Health: what `shmstat health` and the bridge's /health report. */
enum shmstat_health_status {
	SHMSTAT_HEALTHY = 0,
	SHMSTAT_DEGRADED = 1, /* works, but numbers may be local or lost */
	SHMSTAT_BROKEN = 2,   /* segment missing or invalid */
};
#define SHMSTAT_HEALTH_NO_BRIDGE 0x1u /* do not require a running bridge */
/* A claim that found no free row degrades health this long (seconds). */
#define SHMSTAT_HEALTH_ROWS_WINDOW_S 600u

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
 * disconnected, stale or refused keys by Redis (unless
 * SHMSTAT_HEALTH_NO_BRIDGE: then `bridge` says "not required: " and its
 * state, and the verdict ignores it), cache calls failed (locks held past their
 * bound, nothing evictable, corrupt entries: at least 10 failed calls and
 * 1% of all calls; a full cache that evicts is healthy, cache_fill only
 * reports its fill), the directory is 90% full, or every row is held by
 * a live process, or one found no free row in the last
 * SHMSTAT_HEALTH_ROWS_WINDOW_S (10 minutes; such a process goes on
 * counting in the shared overflow row, exactly, until it closes the
 * segment, also after that). (A segment that cannot be opened is broken: the caller knows
 * that from shmstat_open().)
 * Concurrency: any. Ordering: each check reads its part of the segment
 * once, one after another. Killed: the segment is unchanged (it only
 * reads); *out is the caller's, partly filled.
 */
int shmstat_health(shmstat_t *h, unsigned flags, shmstat_health_t *out);

/*
 * The health JSON: {"status", "timestamp", "segment", "reason", "checks":
 * {"segment", "bridge", "cache", "workers", "directory"}}. h may be NULL
 * (a segment that could not be opened: "segment": null). The strings of
 * *hs are read up to their field's size, so any bytes there still give
 * valid JSON.
 * Concurrency: any; *hs is only read. Ordering: reads only *hs and the
 * handle's name, not the segment. Killed: f or buf holds a partial
 * document.
 */
int shmstat_export_health_json(shmstat_t *h, const shmstat_health_t *hs,
			       FILE *f);
int shmstat_export_health_json_buf(shmstat_t *h, const shmstat_health_t *hs,
				   char *buf, size_t len, size_t *needed);

/* ------------------------------------------------------------- end export */

#ifdef __cplusplus
}
#endif

#endif /* SHMSTAT_H */
