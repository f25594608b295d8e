/*
 * layout_i.h — the shared-memory layout: every struct that lives in the
 * segment, and the checks that keep it stable. Private to libshmstat.
 *
 * The segment is untrusted input: whoever reads a field written by another
 * process bounds-checks it (segment.c validates the header and regions once
 * at attach; per-entry fields are checked where they are read).
 *
 *   +------------------+ 0
 *   | seg_header       |   4096 bytes, magic published last (release)
 *   +------------------+ region[REG_REGISTRY]
 *   | worker_slot[W]   |   who owns which row
 *   +------------------+ region[REG_DIRECTORY]
 *   | dir_entry[C]     |   name -> index, open addressing, never removed
 *   +------------------+ region[REG_ROWS]
 *   | row[W + 1]       |   row_stride bytes each: ROW_HDR_BYTES of per-worker
 *   |                  |   cache statistics, then C uint64 counter cells;
 *   |                  |   row[W] is the shared overflow row (atomic adds)
 *   +------------------+ region[REG_SYNC]
 *   | sync_status      |   written by the bridge, read by everyone
 *   +------------------+ region[REG_CACHE]
 *   | cache            |   owned by cache.c
 *   +------------------+ total_size
 *
 * Compatibility: a reader refuses another major version. A minor bump may
 * only give meaning to reserved bytes or append regions.
 */
#ifndef SHMSTAT_LAYOUT_I_H
#define SHMSTAT_LAYOUT_I_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "shmstat.h"

#define SEG_MAGIC UINT64_C(0x31544154534d4853) /* "SHMSTAT1" little-endian */
/* 2.0: the overflow row after the W rows; worker_slot.map_base; the
 * directory's WRITING word carries the writer's start time, and DEAD. */
/* 2.1: the help region (REG_HELP, table index 5, between sync and cache);
 * directory entry flags and reserved[4..5] for histograms. A 2.0 reader
 * sees a histogram's entries as counters. */
#define SEG_LAYOUT_MAJOR 2
#define SEG_LAYOUT_MINOR 1
#define SEG_HDR_SIZE 4096u
#define SEG_ALIGN 128u /* every region starts on a 128-byte boundary */

/* Every atomic type stored in the segment must be lock-free, or two
 * processes would each use a private lock and not exclude each other. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

enum seg_region_id {
	REG_REGISTRY = 0,
	REG_DIRECTORY = 1,
	REG_ROWS = 2,
	REG_SYNC = 3,
	REG_CACHE = 4,
	REG_COUNT = 5, /* regions every 2.x segment has */
	REG_HELP = 5,  /* 2.1: help texts; absent (nregions 5) in 2.0 */
	REG_ALL = 6,   /* regions this build creates */
};

struct seg_region {
	uint64_t off;
	uint64_t size;
};

struct seg_header {
	/* 0 while the creator builds the segment; SEG_MAGIC once published. */
	_Atomic uint64_t magic;
	uint16_t ver_major;
	uint16_t ver_minor;
	uint32_t hdr_size;
	uint64_t total_size;
	uint64_t created_ns;    /* CLOCK_REALTIME */
	uint64_t host_id;
	int32_t creator_pid;
	uint32_t flags;
	uint64_t creator_start; /* creator's start time, clock ticks since boot */
	uint32_t max_counters;
	uint32_t max_workers;
	uint32_t row_stride;    /* bytes between two rows, multiple of SEG_ALIGN */
	uint32_t nregions;
	uint64_t cache_max_value;
	/* Mutable, shared: */
	_Atomic uint32_t workers_hwm;   /* slots ever claimed: readers sum these */
	_Atomic uint32_t counters_used; /* directory entries in use */
	_Atomic uint64_t row_overflows; /* claims that found no free row */
	/* A random number made at creation, so each incarnation of a
	 * segment is its own sync source (never 0; the bridge still derives
	 * one from the creation time if it reads 0). */
	uint64_t source_nonce;
	/* CLOCK_REALTIME of the last claim that found no free row: health
	 * looks at recent ones. In bytes older builds leave 0 (unknown). */
	_Atomic uint64_t row_overflow_ns;
	uint64_t reserved_a[2];
	struct seg_region region[SHMSTAT_MAX_REGIONS];
	char host_name[64];
	uint8_t reserved[SEG_HDR_SIZE - 320];
};
_Static_assert(sizeof(struct seg_header) == SEG_HDR_SIZE, "header size");
_Static_assert(offsetof(struct seg_header, magic) == 0, "magic first");
_Static_assert(offsetof(struct seg_header, ver_major) == 8, "version");
_Static_assert(offsetof(struct seg_header, total_size) == 16, "total size");
_Static_assert(offsetof(struct seg_header, region) == 128, "region table");
_Static_assert(offsetof(struct seg_header, host_name) == 256, "host name");

/*
 * Worker registry. `word` packs the state, the owner's pid and a generation
 * so that every transition is one CAS and a stale CAS (ABA) fails:
 *   bits 0-1 state, bits 2-33 pid, bits 34-63 generation.
 * FREE -> CLAIMED (pid set in the same CAS) -> LIVE (start time written)
 * -> FREE on close, or on reap once the owner is known to be dead.
 */
enum slot_state { SLOT_FREE = 0, SLOT_CLAIMED = 1, SLOT_LIVE = 2 };

struct worker_slot {
	_Atomic uint64_t word;
	_Atomic uint64_t start;      /* owner's start time, clock ticks */
	_Atomic uint64_t claimed_ns; /* CLOCK_REALTIME of the claim */
	/* Owner's pid namespace (inode of /proc/self/ns/pid), 0 unknown
	 * (a 1.0 segment). A pid means nothing in another namespace. */
	_Atomic uint64_t pidns;
	/* Address at which the owner mapped the segment (layout 2.0): a
	 * process that no longer maps the segment there (it exec'd, or it is
	 * a zombie) holds the row no more. 0 unknown. */
	_Atomic uint64_t map_base;
	uint64_t reserved[3];
};
_Static_assert(sizeof(struct worker_slot) == 64, "worker slot size");

static inline uint32_t slot_state(uint64_t w) { return (uint32_t)(w & 3u); }
static inline int32_t slot_pid(uint64_t w)
{
	return (int32_t)(uint32_t)((w >> 2) & 0xffffffffu);
}
static inline uint64_t slot_gen(uint64_t w) { return w >> 34; }
static inline uint64_t slot_word(uint32_t state, int32_t pid, uint64_t gen)
{
	return (uint64_t)state | ((uint64_t)(uint32_t)pid << 2) |
	       ((gen & ((UINT64_C(1) << 30) - 1)) << 34);
}

/* Index of the shared overflow row: after the max_workers rows. Counts
 * land there, with atomic adds, when no row of one's own can be had. */
#define ROW_OVERFLOW(max_workers) (max_workers)

/*
 * Per-row header: per-worker cache statistics, so that no cache operation
 * writes a line shared with another process. Readers sum across rows.
 */
#define ROW_HDR_BYTES 128u
enum row_stat {
	RS_CACHE_HITS,
	RS_CACHE_MISSES,
	RS_CACHE_SETS,
	RS_CACHE_DELETES,
	RS_CACHE_EVICTIONS,
	RS_CACHE_EXPIRATIONS,
	RS_CACHE_ERRORS,
	RS_COUNT_, /* up to 16 */
};
_Static_assert(RS_COUNT_ <= ROW_HDR_BYTES / 8, "row header holds the stats");

/*
 * Directory entry: one per counter or gauge. Its index in the directory is
 * the counter's index into every row. Entries are never removed, so probe
 * chains never break and an index, once handed out, stays valid.
 *   state word: bits 0-1 state; WRITING only: bits 2-33 the writer's pid,
 *   bits 34-63 the low 30 bits of its start time (0 unknown), so that a
 *   reused pid is not taken for the writer even if it died right after
 *   its CAS.
 * EMPTY -> WRITING(pid, start) -> READY, or WRITING -> DEAD. A writer that
 * dies in WRITING leaves an entry nobody counts in yet: an inserter that
 * finds it dead takes it over by CAS; one that cannot judge it (another
 * pid namespace, or a writer stuck past the bound) marks it DEAD, which
 * probes step over and nobody ever reuses, so a stalled writer that wakes
 * up fails its publishing CAS and inserts elsewhere.
 */
enum dir_state { DIR_EMPTY = 0, DIR_WRITING = 1, DIR_READY = 2, DIR_DEAD = 3 };

struct dir_entry {
	_Atomic uint64_t state;
	uint64_t hash;           /* XXH3 of the name, for probing */
	uint16_t name_len;
	uint8_t kind;            /* SHMSTAT_KIND_COUNTER or _GAUGE */
	uint8_t flags;           /* 2.1: DF_* (histogram cells are counters) */
	uint32_t reserved0;
	_Atomic uint64_t base;   /* counters: sum at the last local reset */
	_Atomic int64_t gauge;   /* gauges: the value */
	_Atomic int64_t global;  /* cluster-wide value from the bridge */
	_Atomic uint64_t global_ns;
	/* reserved[0..1]: sync.c's reset base of this counter and a tag of
	 * the Redis key it was made for, written by the bridge only.
	 * reserved[2..3] (layout 2.0): the WRITING writer's pid namespace
	 * and CLOCK_REALTIME ns of its CAS, stored just after it.
	 * reserved[4..5] (layout 2.1), histograms: DF_HIST: [4] the number
	 * of buckets (+Inf included), [5] a hash of the bounds; DF_HBUCKET:
	 * [4] the histogram's entry index | bucket number << 32, [5] the
	 * bound's IEEE 754 bits. Written before READY, never after. */
	uint64_t reserved[8];
	char name[SHMSTAT_NAME_MAX]; /* not NUL-terminated: name_len bytes */
};
_Static_assert(sizeof(struct dir_entry) == 320, "directory entry size");
_Static_assert(offsetof(struct dir_entry, name) == 120, "name offset");

/* dir_entry.flags (layout 2.1). */
#define DF_HIST 0x1u    /* a histogram: its cell counts the sum */
#define DF_HBUCKET 0x2u /* a bucket of a histogram */
#define DR_HIST 4
#define DR_BOUND 5

/*
 * Help text of one metric family (layout 2.1, REG_HELP). Open addressing
 * by the hash of the family name; entries are never removed. `seq` is a
 * sequence word: 0 empty, odd while a writer writes, even (>= 2) readable.
 * A writer CASes it even -> odd, writes, stores odd + 1 (release); readers
 * copy and check that it did not change. A writer killed in between leaves
 * it odd: readers skip the entry, and the next writer of the family takes
 * it over after 100 ms.
 */
#define HELP_ENTRY_SIZE 1024u
struct help_entry {
	_Atomic uint64_t seq;
	uint64_t hash;
	uint16_t name_len;
	uint16_t text_len;
	uint32_t reserved0;
	char name[SHMSTAT_NAME_MAX];
	char text[HELP_ENTRY_SIZE - 24 - SHMSTAT_NAME_MAX];
};
_Static_assert(sizeof(struct help_entry) == HELP_ENTRY_SIZE, "help entry");
_Static_assert(sizeof(((struct help_entry *)0)->text) >= SHMSTAT_HELP_MAX,
	       "help text fits");
/* Help entries for a directory of c entries. */
static inline uint32_t help_entries(uint32_t c)
{
	return c / 16 > 8 ? c / 16 : 8;
}

/*
 * Sync status: written by the bridge (one writer, guarded by its pidfile),
 * read by everyone. `seq` is a sequence lock: odd while the bridge writes;
 * readers retry a bounded number of times.
 */
struct sync_status {
	_Atomic uint64_t seq;
	_Atomic int32_t bridge_pid;
	uint32_t connected;        /* 1 when the last command succeeded */
	uint64_t bridge_start;     /* bridge's start time, clock ticks */
	uint64_t heartbeat_ns;     /* CLOCK_REALTIME of the bridge's last loop */
	uint64_t last_push_ns;     /* CLOCK_REALTIME of the last good push */
	uint64_t last_error_ns;
	uint64_t pending;          /* counters changed since the last push */
	uint64_t lag_ms;           /* age of the oldest unpushed change */
	uint64_t pushes_ok;
	uint64_t pushes_failed;
	uint64_t epoch;            /* global reset epoch last seen */
	uint64_t interval_ms;
	char last_error[256];
	char redis_addr[128];      /* host:port/db or socket path, no password */
	/* Layout 1.0 reserved bytes given meaning by sync.c: */
	uint64_t seq_acked;        /* last push sequence Redis acknowledged */
	uint64_t host_id;          /* host id the bridge pushes as */
	/* Global reset request: written by any process (shmstat reset
	 * --global), outside the seqlock. reset_state packs bits 0-1 state
	 * (0 idle, 1 being written, 2 pending) and bits 2-33 the writer's pid. */
	_Atomic uint64_t reset_state;
	_Atomic uint64_t reset_req_id;   /* id of the last request written */
	uint64_t reset_epoch_ms;         /* CLOCK_REALTIME ms of the request */
	_Atomic uint64_t reset_done_id;  /* last request the bridge finished */
	_Atomic uint64_t reset_done_count; /* names it reset */
	_Atomic int64_t reset_done_rc;   /* 0, or a negative SHMSTAT_E* */
	char reset_glob[256];            /* NUL-terminated */
	/* Layout 1.1 reserved bytes given meaning by the sync protocol v2
	 * (inside the seqlock, like the fields above reset_state): */
	char source[40];           /* source id the bridge pushes as */
	char meta_prefix[64];      /* meta prefix its bookkeeping lives under */
	uint64_t refused_keys;     /* keys Redis refused in the last push */
	uint64_t reserved_names;   /* names whose key is under the meta prefix */
	char refused_key[128];     /* one of them */
	char reserved_name[128];   /* one of them */
	uint8_t reserved[4096 - 800 - 376];
};
_Static_assert(sizeof(struct sync_status) == 4096, "sync status size");
_Static_assert(offsetof(struct sync_status, seq_acked) == 480, "sync status");
_Static_assert(offsetof(struct sync_status, reset_glob) == 544,
	       "sync status reset request");
_Static_assert(offsetof(struct sync_status, source) == 800,
	       "sync status v2 fields");

#endif /* SHMSTAT_LAYOUT_I_H */
