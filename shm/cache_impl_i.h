/*
 * cache_impl_i.h — what the files of the cache share, and nothing else
 * includes: the layout of the REG_CACHE region, the per-call context, and
 * the functions one cache file calls in another.
 *
 * The files and what each owns:
 *   cache.c         the table: geometry (planned at creation, read once
 *                   at attach), the lock-free readers, the writers (set,
 *                   delete, expire), statistics
 *   cache_repair.c  the locks (an owner word and a futex) and what a
 *                   killed holder leaves: the journal, and its repair
 *   cache_slab.c    the value memory: pages, size classes, blocks
 *   cache_evict.c   making room: CLOCK within a class, stealing pages
 *   cache_scan.c    whole-table walks: iter, clear, flush, sweep
 *   cache_lease.c   stampede leases: fetch and lease_release
 *
 * Layout of the region (offsets from its start, all in cache_hdr):
 *
 *   cache_hdr        4096 bytes: magic, geometry, size classes, the sweep
 *                    cursor, the page pool and its lock
 *   stripe[S]        a lock per stripe, its journal, its leases
 *   class[C]         a lock per size class, its partial-page list
 *   bucket[B]        64 bytes: version, flags, 7 slots (tag | offset)
 *   page_hdr[P]      which class a page serves, its free list
 *   pages            P pages of page_size bytes, cut into blocks; a block
 *                    larger than a page spans a run of whole pages (its
 *                    head page serves its class, the rest are PAGE_TAIL)
 *
 * Invariants every file keeps:
 *   - The region is untrusted input: any byte of it may be anything, and
 *     every pattern must give a defined result (never a crash, never a
 *     wait past the call's deadline). Geometry is read once, at attach,
 *     into the handle (struct cache_geo) and never read from the region
 *     again; every offset that is read from the region is checked against
 *     that geometry before use (entry_at, page_at, csize).
 *   - Lock order: stripe, then class, then pool. A stripe is only ever
 *     *tried* while another stripe is held (eviction), so there is no
 *     deadlock.
 *   - One deadline per call (struct ctx's deadline): every wait of a call
 *     for a lock or a busy bucket ends by it; after it, locks are only
 *     tried.
 */
#ifndef SHMSTAT_CACHE_IMPL_I_H
#define SHMSTAT_CACHE_IMPL_I_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache_i.h"
#include "shmstat_i.h"

/* XXH3 inlined into the cache's hot paths (the same function, so the same
 * values, as shmstat__hash()): a call into the library costs a tenth of a
 * hit for a 16-32 byte key. */
#define XXH_INLINE_ALL
#include <xxhash.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define CACHE_MAGIC UINT64_C(0x3145484341434853) /* "SHCACHE1" LE */
/* 4: home blocks (cache_home.c); 3: 32-byte entry headers, the in-place
 * journal (j_ovr); 2: owner-word locks (1 held pthread mutexes) */
#define CACHE_VERSION 4u
#define CACHE_HDR_SIZE 4096u
#define WAYS 7
#define GROUP 4u /* (shmstat__cache_home_index divides by it too) */
#define ENT_HDR 32u
#define BLOCK_ALIGN 16u
#define MIN_BLOCK 64u
#define MIN_PAGE (64u << 10)
#define NLEASES 2
#define PAGE_NONE 0xffffffffu
#define PAGE_TAIL 0xfffffffeu /* a page inside a larger block's run */
#define MAX_STRIPES 1024u
/* A home block: where a small entry (header, key and value in at most
 * this many bytes) can live at a place its hash names (cache_home.c). */
#define HOME_BLOCK 128u
/* A set that overwrites a value of the same size class, in a block of at
 * most this many bytes, writes it in place (under the bucket's version)
 * instead of into a new block: see shmstat_cache_set(). Larger values go
 * to a new block, so readers of the bucket never wait for a long copy. */
#define INPLACE_MAX 4096u
/* XXX Set on a home bucket when a key of its group lives elsewhere in the
 * group, never cleared: lookups of a once-overflowed home keep looking at
 * the whole group (a few extra lines; never a wrong answer). Clearing it
 * needs a scan of the group for keys homed there at each removal. */
#define BKT_OVERFLOW 1u
#define OFF_BITS 40
#define OFF_MASK ((UINT64_C(1) << OFF_BITS) - 1)
/* In a slot: its entry has a TTL (a hint for the sweep, which reads only
 * those entries; readers ignore it). */
#define SLOT_TTL (UINT64_C(1) << 47)
#define GEN_MASK 0xffffffu
#define MAX_VALUE_LIMIT CACHE_MAX_VALUE_LIMIT

enum ent_state { ENT_FREE = 0, ENT_ALLOC = 1, ENT_LIVE = 2 };

/*
 * A lock and the journal of its holder (cache_repair.c). `word` is the
 * holder: its pid in the low 32 bits, the low 32 bits of its start time
 * above (0: unknown), 0 when free. Every value is a valid state: a pid
 * that names no live process (or a process started at another time) is a
 * dead holder, taken over by CAS and repaired.
 */
struct cache_lock {
	_Atomic uint64_t word;
	_Atomic uint32_t waiters; /* callers asleep on the word (a hint) */
	uint32_t reserved0;
	_Atomic uint64_t j_new; /* (gen << 40 | off) of a block being published */
	_Atomic uint64_t j_old; /* ... of a block being unlinked */
	_Atomic uint64_t spare; /* stripes: (gen << 40 | off) of an ALLOC
				 * block kept for the next overwrite */
	_Atomic uint64_t j_ovr; /* stripes: ... of a LIVE entry whose value
				 * is being overwritten in place */
	uint64_t home_used;     /* stripes: its home blocks not free (a
				 * count the repair redoes) */
	uint64_t reserved[1];
};
_Static_assert(sizeof(struct cache_lock) == 64, "cache_lock size");

/* A lease of shmstat_cache_fetch(); guarded by its stripe's lock. */
struct cache_lease {
	uint64_t hash;
	int32_t pid; /* 0: free */
	int32_t tid; /* the holding thread of pid */
	uint64_t until_ms;
	uint64_t reserved2;
};
_Static_assert(sizeof(struct cache_lease) == 32, "cache_lease size");

struct cache_stripe {
	struct cache_lock lk;
	struct cache_lease lease[NLEASES];
};
_Static_assert(sizeof(struct cache_stripe) == 128, "cache_stripe size");

struct cache_class {
	struct cache_lock lk;
	uint32_t partial;      /* page + 1 of the first page with a free block */
	uint32_t npages;
	_Atomic uint64_t hand; /* CLOCK hand: page << 32 | block */
	uint64_t reserved[6];
};
_Static_assert(sizeof(struct cache_class) == 128, "cache_class size");

struct cache_bucket {
	_Atomic uint32_t ver;   /* odd while written */
	_Atomic uint32_t flags; /* BKT_OVERFLOW */
	_Atomic uint64_t slot[WAYS]; /* tag << 48 | SLOT_TTL | offset; 0 = empty */
};
_Static_assert(sizeof(struct cache_bucket) == 64, "bucket is a cache line");

/* Guarded by the lock of class `cls` (or the pool lock when free or a
 * tail). */
struct cache_page {
	uint32_t cls;       /* PAGE_NONE in the pool, PAGE_TAIL in a run */
	uint32_t nblocks;
	uint32_t nfree;     /* free blocks, including those never used */
	uint32_t free_head; /* block + 1 */
	uint32_t bump;      /* blocks [bump, nblocks) were never used */
	uint32_t next, prev; /* page + 1: partial list, or pool list (next);
			      * a tail: prev = its run's head + 1 */
	uint32_t reserved;
};
_Static_assert(sizeof(struct cache_page) == 32, "page header size");

/*
 * The start of every block. Key, then value, follow. 32 bytes, so that the
 * header and a key of up to 32 bytes share one line, and a block of a
 * 64-byte-multiple class holds a small entry in the fewest lines.
 */
struct cache_entry {
	_Atomic uint8_t state;  /* enum ent_state (any other value: none) */
	_Atomic uint8_t ref;    /* CLOCK bit */
	uint16_t key_len;
	union {
		uint32_t next_free; /* block + 1, while free */
		/* A home block's version (it is on no free list): odd
		 * while the block changes (cache_home.c). */
		_Atomic uint32_t hver;
	};
	uint32_t gen;           /* +1 at every allocation */
	uint32_t val_len;
	uint64_t hash;
	_Atomic uint64_t expires; /* cache clock ms; 0 = never */
	unsigned char data[];
};
_Static_assert(sizeof(struct cache_entry) == ENT_HDR, "entry header size");

struct cache_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;
	uint64_t region_size;
	uint64_t max_value;
	uint64_t page_size;
	uint32_t nbuckets, nstripes, nclasses, npages;
	uint64_t stripes_off, classes_off, buckets_off, pages_off, data_off;
	uint64_t class_size[CACHE_MAX_CLASSES];
	uint8_t pad0[640 - 608];
	_Atomic uint64_t sweep_cursor; /* next bucket to sweep */
	uint8_t pad1[56];
	_Atomic uint64_t page_hand;    /* next page to empty when stealing */
	uint8_t pad2[56];
	struct cache_lock pool;        /* guards pool_head and free pages */
	uint32_t pool_head;            /* page + 1 */
	uint32_t reserved0;
	uint64_t home_off; /* the home blocks, after their tags; 0: none */
	uint32_t nhome;    /* home blocks: 0, or a multiple of nbuckets / 4 */
	uint32_t reserved1;
	uint64_t home_tags_off; /* their tags (uint16_t each), after the pages */
	uint8_t reserved[CACHE_HDR_SIZE - 864];
};
_Static_assert(sizeof(struct cache_hdr) == CACHE_HDR_SIZE, "cache header");
_Static_assert(offsetof(struct cache_hdr, class_size) == 96, "class sizes");
_Static_assert(offsetof(struct cache_hdr, sweep_cursor) == 640, "cursor");
_Static_assert(offsetof(struct cache_hdr, pool) == 768, "pool lock");

/*
 * What one call needs: the handle's geometry (read once at attach) and
 * the tables it locates, plus the call's deadline and what a scan skipped.
 */
struct ctx {
	struct shmstat *h;
	const struct cache_geo *g; /* the handle's: tables located once */
	uint64_t deadline;    /* mono ns; 0 until the call first waits */
	uint32_t unfreed;     /* blocks unlinked but not freed (class busy) */
	uint32_t removed;     /* entries this call removed (any stripe) */
	uint32_t nskipped;    /* stripes a scan could not lock in time */
	uint64_t skipped[MAX_STRIPES / 64];
};

/* Where a key is, found under its stripe lock. */
struct where {
	uint32_t bucket;
	int way;
	uint64_t off;
	struct cache_entry *e;
	bool corrupt; /* its value length does not fit (see entry_ok) */
};

/* --------------------------------------------------- small shared helpers */

extern _Atomic uint32_t cache__lock_timeout_ms;

static inline void cache_hook(int stage)
{
	if (__builtin_expect(shmstat__cache_hook != NULL, 0))
		shmstat__cache_hook(stage);
}

static inline uint64_t cache_hash(const void *key, size_t klen)
{
	return XXH3_64bits(key, klen);
}

static inline uint16_t slot_tag(uint64_t s) { return (uint16_t)(s >> 48); }
static inline uint64_t slot_off(uint64_t s) { return s & OFF_MASK; }
static inline uint16_t hash_tag(uint64_t hash)
{
	return (uint16_t)((hash >> 48) | 1);
}
static inline uint64_t make_slot(uint64_t hash, uint64_t off)
{
	return (uint64_t)hash_tag(hash) << 48 | off;
}
static inline uint32_t home_of(const struct ctx *c, uint64_t hash)
{
	return (uint32_t)hash & c->g->bmask;
}
static inline uint32_t stripe_of(const struct ctx *c, uint32_t bucket)
{
	return (bucket / GROUP) & c->g->smask;
}
static inline uint64_t jword(uint64_t off, uint32_t gen)
{
	return (uint64_t)(gen & GEN_MASK) << OFF_BITS | off;
}

/* A block's header at offset off, or NULL when off is not a block. */
static inline struct cache_entry *entry_at(const struct ctx *c, uint64_t off)
{
	/* One unsigned compare for both ends: off - data_off wraps when off
	 * lies below the data area. */
	uint64_t rel = off - c->g->data_off;
	if (rel > c->g->data_span || rel % BLOCK_ALIGN)
		return NULL;
	return (struct cache_entry *)(void *)(c->g->base + off);
}

/* Do key_len + val_len of the entry at off fit inside the data area? */
static inline bool entry_fits(const struct ctx *c, uint64_t off, uint64_t klen,
			      uint64_t vlen)
{
	return klen <= SHMSTAT_CACHE_KEY_MAX && vlen <= c->g->max_value &&
	       c->g->data_end - off - ENT_HDR >= klen + vlen;
}

static inline bool expired(uint64_t expires, uint64_t *now)
{
	if (!expires)
		return false;
	if (!*now)
		*now = shmstat__cache_now_ms();
	return *now >= expires;
}

/*
 * Do the n bytes at a and b match? Keys of 8 to 32 bytes (the common case)
 * without a call or a loop: 16 to 32 by two overlapping 16-byte compares
 * where SSE2 is (every x86-64), else (and 8 to 15) by four overlapping
 * 8-byte loads.
 */
static inline bool key_eq(const unsigned char *a, const void *bv, size_t n)
{
	const unsigned char *b = bv;
	uint64_t x[4], y[4];

#if defined(__SSE2__)
	/* The first and the last 16 bytes of each: half the instructions
	 * of the 8-byte loads below. */
	if (n - 16 <= 16) {
		__m128i a0 = _mm_loadu_si128((const __m128i *)(const void *)a);
		__m128i b0 = _mm_loadu_si128((const __m128i *)(const void *)b);
		__m128i a1 = _mm_loadu_si128(
			(const __m128i *)(const void *)(a + n - 16));
		__m128i b1 = _mm_loadu_si128(
			(const __m128i *)(const void *)(b + n - 16));
		__m128i eq = _mm_and_si128(_mm_cmpeq_epi8(a0, b0),
					   _mm_cmpeq_epi8(a1, b1));
		return _mm_movemask_epi8(eq) == 0xffff;
	}
#endif
	if (n - 8 <= 24) {
		size_t h = n >= 16 ? 8 : n - 8;
		__builtin_memcpy(&x[0], a, 8);
		__builtin_memcpy(&y[0], b, 8);
		__builtin_memcpy(&x[1], a + h, 8);
		__builtin_memcpy(&y[1], b + h, 8);
		__builtin_memcpy(&x[2], a + n - 8 - h, 8);
		__builtin_memcpy(&y[2], b + n - 8 - h, 8);
		__builtin_memcpy(&x[3], a + n - 8, 8);
		__builtin_memcpy(&y[3], b + n - 8, 8);
		return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) |
			(x[3] ^ y[3])) == 0;
	}
	return __builtin_memcmp(a, b, n) == 0;
}

/*
 * Copy a value of n bytes: 16 to 64 bytes (the common small value) by four
 * overlapping 16-byte moves, without a call; others by memcpy. Reads and
 * writes only the n bytes. (In a get at a million keys the instructions
 * after the entry's load delay the next get's loads: a call to memcpy
 * there costs more than its own time.)
 */
static inline void value_copy(void *dv, const void *sv, size_t n)
{
	unsigned char *d = dv;
	const unsigned char *s = sv;

	if (n - 16 <= 48) {
		size_t h = n >= 32 ? 16 : n - 16;
		__builtin_memcpy(d, s, 16);
		__builtin_memcpy(d + h, s + h, 16);
		__builtin_memcpy(d + n - 16 - h, s + n - 16 - h, 16);
		__builtin_memcpy(d + n - 16, s + n - 16, 16);
		return;
	}
	__builtin_memcpy(d, s, n);
}

/* Begin a change of bucket b's slots (its stripe lock held): the version
 * odd, then a release fence (what preceded comes first); ver_end makes it
 * even again. */
static inline uint32_t ver_begin(struct cache_bucket *b)
{
	uint32_t v = atomic_load_explicit(&b->ver, memory_order_relaxed) | 1u;

	atomic_store_explicit(&b->ver, v, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return v;
}

static inline void ver_end(struct cache_bucket *b, uint32_t v)
{
	atomic_store_explicit(&b->ver, v + 1, memory_order_release);
}

/* Class size of cls (from the geometry), 0 when cls is no class. */
static inline uint64_t csize(const struct ctx *c, uint32_t cls)
{
	return cls < c->g->nclasses ? c->g->class_size[cls] : 0;
}
/* Blocks per page of class cls (cls valid). */
static inline uint32_t cblocks(const struct ctx *c, uint32_t cls)
{
	return c->g->class_blocks[cls];
}

/* Pages per block of class cls (cls valid): 1, or a run's length. */
static inline uint32_t cspan(const struct ctx *c, uint32_t cls)
{
	return c->g->class_span[cls];
}

/* The page of the data-area offset rel (a shift when pages are a power of
 * of two: a 64-bit division costs more than the rest of a free). */
static inline uint64_t page_of(const struct ctx *c, uint64_t rel)
{
	return c->g->page_shift ? rel >> c->g->page_shift
				: rel / c->g->page_size;
}

static inline struct cache_page *page_at(const struct ctx *c, uint32_t p1)
{
	return p1 && p1 <= c->g->npages ? &c->g->pg[p1 - 1] : NULL;
}

static inline uint64_t block_off(const struct ctx *c, uint32_t p, uint32_t b,
				 uint64_t cs)
{
	return c->g->data_off + (uint64_t)p * c->g->page_size + (uint64_t)b * cs;
}

static inline struct cache_entry *block(const struct ctx *c, uint32_t p,
					uint32_t b, uint64_t cs)
{
	return entry_at(c, block_off(c, p, b, cs));
}

/* Home block i. */
static inline struct cache_entry *home_block(const struct ctx *c, uint64_t i)
{
	return (struct cache_entry *)(void *)(c->g->base + c->g->home_off +
					      i * HOME_BLOCK);
}
/* Is off a home block? (Never a block of a page.) */
static inline bool is_home(const struct ctx *c, uint64_t off)
{
	uint64_t rel = off - c->g->home_off;
	return rel < (uint64_t)c->g->nhome * HOME_BLOCK &&
	       rel % HOME_BLOCK == 0;
}

/*
 * Is the block at off (a block: entry_at said so) a whole block of the
 * one-page class cls? Its page's class word is read from the region (and
 * checked against the geometry); a block cut off by the page's end is no
 * block. The in-place overwrite writes up to class-size bytes there only
 * when this holds.
 */
static inline bool block_of_class(const struct ctx *c, uint64_t off,
				  uint32_t cls)
{
	uint64_t rel = off - c->g->data_off, p = page_of(c, rel), in;
	uint64_t cs = csize(c, cls);

	/* A home block holds an entry of any class up to its size. */
	if (is_home(c, off))
		return cs && cs <= HOME_BLOCK;

	if (p >= c->g->npages || !cs || cspan(c, cls) != 1 ||
	    __atomic_load_n(&c->g->pg[p].cls, __ATOMIC_ACQUIRE) != cls)
		return false;
	in = rel - p * c->g->page_size;
	/* One division, of 32 bits when the page allows it. */
	uint64_t b = c->g->page_size <= UINT32_MAX ? (uint32_t)in / (uint32_t)cs
						   : in / cs;
	return b * cs == in && b < cblocks(c, cls);
}

/* ---------------------------------------------------------- cross-file */

/* cache.c */
enum row_stat;
void cache__stat_add(struct ctx *c, enum row_stat s, uint64_t n);
/* ctx for a call that only reads: a read-only handle too (cache.c). */
int cache__ctx_read(struct shmstat *h, struct ctx *c);
int cache__fail(struct ctx *c, int rc);
int cache__ctx_load(struct shmstat *h, struct ctx *c);
int cache__check_key(struct shmstat *h, const void *key, size_t klen);
uint64_t cache__expiry(uint64_t ttl_ms);
bool cache__find_locked(struct ctx *c, const void *key, size_t klen,
			uint64_t hash, struct where *w);
void cache__remove_locked(struct ctx *c, uint32_t s, const struct where *w);
bool cache__referenced(struct ctx *c, uint64_t off, uint64_t hash,
		       struct where *w);
/* Lock-free lookup: 1 found, 0 absent, 2 corrupt entry, -1 busy past the
 * call's deadline. */
struct rd {
	uint32_t vlen;
	uint64_t expires;
	struct cache_entry *e;
};
int cache__lookup(struct ctx *c, const void *key, size_t klen, uint64_t hash,
		  void *buf, size_t buflen, struct rd *r);
int cache__corrupt_entry(struct ctx *c, const struct rd *r);
void cache__unstick(struct ctx *c, uint32_t bucket);

/* cache_home.c */
/* The first bucket of the group whose keys home block i serves (hpg
 * blocks a group): its group's slots are the only ones that name i. */
static inline uint32_t home_bucket(const struct ctx *c, uint64_t i)
{
	return (uint32_t)(i / c->g->hpg) * GROUP;
}
/* The tag of home block i's entry (hash_tag of its hash), 0 when it holds
 * none: a hint readers check before they touch the block. */
static inline _Atomic uint16_t *home_tag(const struct ctx *c, uint64_t i)
{
	return &c->g->home_tags[i];
}
uint32_t cache__home_begin(struct cache_entry *e);
void cache__home_end(struct cache_entry *e);
void cache__home_publish(struct ctx *c, uint64_t off, uint64_t hash);
uint64_t cache__home_take(struct ctx *c, uint32_t s, uint64_t hash,
			  uint64_t need);
bool cache__home_free(struct ctx *c, uint64_t off);
void cache__home_repair(struct ctx *c, uint32_t s);
uint32_t cache__home_reclaim(struct ctx *c, uint32_t s);
uint64_t cache__home_usage(const struct ctx *c);

/* cache_repair.c */
/* The call's deadline (fixed at its first wait), in mono ns. */
uint64_t cache__deadline(struct ctx *c);
int cache__stripe_lock(struct ctx *c, uint32_t s, bool try);
void cache__stripe_unlock(struct ctx *c, uint32_t s);
int cache__class_lock(struct ctx *c, uint32_t cls, bool try);
void cache__class_unlock(struct ctx *c, uint32_t cls);
int cache__pool_lock(struct ctx *c);
void cache__pool_unlock(struct ctx *c);
void cache__lock_init(struct cache_lock *l);
/* The holder of the lock word w (0 free) is known to be dead. */
bool cache__holder_dead(uint64_t w);
/* pid | tid of the calling thread, for leases. */
int32_t cache__self_pid(void);
int32_t cache__self_tid(void);

/* This process's lock word (cache_repair.c); 0 until its first lock. */
extern _Atomic uint64_t cache__self_word;

/* cache__stripe_lock(c, s, false) with its common case inline: a free
 * lock taken by one CAS (the set's hot path). Anything else (held, a
 * dead holder, the first lock of this process) goes the full way. */
static inline int stripe_lock_fast(struct ctx *c, uint32_t s)
{
	uint64_t self = atomic_load_explicit(&cache__self_word,
					     memory_order_relaxed), w = 0;

	if (__builtin_expect(self != 0, 1) &&
	    atomic_compare_exchange_strong_explicit(&c->g->st[s].lk.word, &w,
						    self, memory_order_acquire,
						    memory_order_relaxed))
		return 0;
	return cache__stripe_lock(c, s, false);
}

/* Wake a caller asleep on l (cache_repair.c). */
void cache__lock_wake(struct cache_lock *l);

/* Give l back: the word cleared, and a wake only when someone sleeps on
 * it (every unlock of the cache is this). */
static inline void cache_lock_give(struct cache_lock *l)
{
	atomic_exchange_explicit(&l->word, 0, memory_order_seq_cst);
	if (__builtin_expect(atomic_load_explicit(&l->waiters,
						  memory_order_seq_cst) != 0,
			     0))
		cache__lock_wake(l);
}

/* cache__stripe_unlock(c, s), inline (the set's hot path). */
static inline void stripe_unlock_fast(struct ctx *c, uint32_t s)
{
	cache_lock_give(&c->g->st[s].lk);
}

/* cache_slab.c */
/* The smallest class whose blocks hold need bytes (need at most the
 * largest class's size). Inline: every set asks. */
static inline uint32_t cache__class_for(const struct ctx *c, uint64_t need)
{
	const uint64_t *cs = c->g->class_size;
	uint32_t lo = 0, hi = c->g->nclasses - 1;

	if (need <= 16 * CACHE_CLASS_QUICK)
		return c->g->class_quick[(need + 15) / 16];
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (cs[mid] >= need)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}
uint64_t cache__pop_locked(struct ctx *c, uint32_t cls, _Atomic uint64_t *j);
bool cache__block_free(struct ctx *c, uint64_t off);
void cache__rebuild_class(struct ctx *c, uint32_t cls);
void cache__rebuild_pool(struct ctx *c);
void cache__init_pages(struct ctx *c);
/* Stripe s held: the stripe's spare block if it is of class cls (then
 * journaled in j_new as a block being published), else 0. */
uint64_t cache__spare_take(struct ctx *c, uint32_t s, uint32_t cls);
/* Stripe s held, the old block at off unlinked and journaled in j_old:
 * keep it as the spare (true), or false (the caller frees it). */
bool cache__spare_keep(struct ctx *c, uint32_t s, uint64_t off);
/* Stripe s held: free its spare (flush, eviction, repair). */
void cache__spare_drop(struct ctx *c, uint32_t s);
/* The class of the block at off, or UINT32_MAX when it is none. */
uint32_t cache__class_of(const struct ctx *c, uint64_t off);


/* cache_evict.c */
bool cache__evict_block(struct ctx *c, uint32_t held, uint64_t off,
			bool garbage_only);
int cache__alloc_block(struct ctx *c, uint32_t s, uint64_t need,
		       uint64_t *off);

/* cache_scan.c */
/* Sweep n buckets from the shared cursor; returns the stripes skipped. */
int cache__sweep(struct ctx *c, uint32_t n, uint64_t *removed);

/* cache_lease.c */
void cache__lease_drop(struct ctx *c, uint32_t s, uint64_t hash);

#endif /* SHMSTAT_CACHE_IMPL_I_H */
