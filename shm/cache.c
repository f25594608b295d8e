/*
 * cache.c — the TTL key/value cache in REG_CACHE.
 *
 * Layout of the region (offsets from its start, all in cache_hdr):
 *
 *   cache_hdr        4096 bytes: magic, geometry, size classes, the sweep
 *                    cursor, the page pool and its lock
 *   stripe[S]        a robust lock per stripe, its journal, its leases
 *   class[C]         a robust lock per size class, its partial-page list
 *   bucket[B]        64 bytes: version, flags, 7 slots (tag | offset)
 *   page_hdr[P]      which class a page serves, its free list
 *   pages            P pages of page_size bytes, cut into blocks
 *
 * A key hashes (XXH3) to a home bucket; buckets come in groups of four and
 * a key lives in one bucket of its home's group (the home first; a home
 * that overflowed is flagged so lookups know to look further). A group
 * belongs to one stripe, whose lock every writer of the group holds.
 *
 * Invariants:
 *   - Readers take no lock. A bucket's version is odd while a writer
 *     changes its slots. A reader copies what it needs, then re-reads the
 *     version and retries when it changed. A block is freed only after the
 *     version of the bucket that referenced it was bumped, so a reader that
 *     copied from a block being reused sees a changed version.
 *   - A value is written into a fresh block before it is published by one
 *     64-bit store into the slot: readers (and a crash) see the old value
 *     or the new one, never a mix.
 *   - Every writer that unlinks or publishes a block records (offset,
 *     generation) in its stripe's journal first. A robust mutex hands the
 *     next locker EOWNERDEAD when a holder dies; it then repairs the stripe
 *     from the journal (frees a block nobody references, marks a published
 *     one live, evens odd versions). Class and pool locks repair by
 *     rebuilding their lists from the blocks' and pages' states.
 *   - Lock order: stripe, then class, then pool. A stripe lock is only
 *     ever *tried* while another stripe is held (eviction), so there is no
 *     deadlock, and every wait is bounded (lock_timeout_ms).
 *   - The region is untrusted input: every offset read from it is checked
 *     against the region before use (entry_at); geometry is re-checked at
 *     the start of every call (ctx_load).
 *   - Statistics live in the caller's row (atomic adds: the threads
 *     sharing a handle share its row); a get writes no line shared with
 *     other processes, except a block's CLOCK bit, and only when it is
 *     not set yet.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache_i.h"
#include "shmstat_i.h"

#define CACHE_MAGIC UINT64_C(0x3145484341434853) /* "SHCACHE1" LE */
#define CACHE_VERSION 1u
#define CACHE_HDR_SIZE 4096u
#define WAYS 7
#define GROUP 4u
#define MAX_CLASSES 64u
#define ENT_HDR 40u
#define BLOCK_ALIGN 16u
#define MIN_BLOCK 64u
#define MIN_PAGE (64u << 10)
#define NLEASES 2
#define PAGE_NONE 0xffffffffu
/* XXX Set on a home bucket when a key of its group lives elsewhere in the
 * group, never cleared: lookups of a once-overflowed home keep looking at
 * the whole group (a few extra lines; never a wrong answer). Clearing it
 * needs a scan of the group for keys homed there at each removal. */
#define BKT_OVERFLOW 1u
#define OFF_BITS 40
#define OFF_MASK ((UINT64_C(1) << OFF_BITS) - 1)
#define GEN_MASK 0xffffffu
#define MAX_VALUE_LIMIT (UINT32_MAX / 2)

enum ent_state { ENT_FREE = 0, ENT_ALLOC = 1, ENT_LIVE = 2 };

/* A robust, process-shared mutex and the journal of its holder. */
struct cache_lock {
	pthread_mutex_t m;
	_Atomic uint64_t j_new; /* (gen << 40 | off) of a block being published */
	_Atomic uint64_t j_old; /* ... of a block being unlinked */
	uint64_t reserved;
};
_Static_assert(sizeof(pthread_mutex_t) == 40, "pthread_mutex_t size");
_Static_assert(sizeof(struct cache_lock) == 64, "cache_lock size");

/* A lease of shmstat_cache_fetch(); guarded by its stripe's lock. */
struct cache_lease {
	uint64_t hash;
	int32_t pid; /* 0: free */
	uint32_t reserved;
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
	_Atomic uint64_t slot[WAYS]; /* tag << 48 | offset; 0 = empty */
};
_Static_assert(sizeof(struct cache_bucket) == 64, "bucket is a cache line");

/* Guarded by the lock of class `cls` (or the pool lock when free). */
struct cache_page {
	uint32_t cls;       /* PAGE_NONE when in the pool */
	uint32_t nblocks;
	uint32_t nfree;     /* free blocks, including those never used */
	uint32_t free_head; /* block + 1 */
	uint32_t bump;      /* blocks [bump, nblocks) were never used */
	uint32_t next, prev; /* page + 1: partial list, or pool list (next) */
	uint32_t reserved;
};
_Static_assert(sizeof(struct cache_page) == 32, "page header size");

/* The start of every block. Key, then value, follow. */
struct cache_entry {
	_Atomic uint32_t state; /* enum ent_state */
	uint32_t next_free;     /* block + 1, while free */
	uint32_t gen;           /* +1 at every allocation */
	uint16_t key_len;
	_Atomic uint8_t ref;    /* CLOCK bit */
	uint8_t reserved;
	uint32_t val_len;
	uint32_t reserved2;
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
	uint64_t class_size[MAX_CLASSES];
	uint8_t pad0[640 - 608];
	_Atomic uint64_t sweep_cursor; /* next bucket to sweep */
	uint8_t pad1[56];
	_Atomic uint64_t page_hand;    /* next page to empty when stealing */
	uint8_t pad2[56];
	struct cache_lock pool;        /* guards pool_head and free pages */
	uint32_t pool_head;            /* page + 1 */
	uint32_t reserved0;
	uint8_t reserved[CACHE_HDR_SIZE - 840];
};
_Static_assert(sizeof(struct cache_hdr) == CACHE_HDR_SIZE, "cache header");
_Static_assert(offsetof(struct cache_hdr, class_size) == 96, "class sizes");
_Static_assert(offsetof(struct cache_hdr, sweep_cursor) == 640, "cursor");
_Static_assert(offsetof(struct cache_hdr, pool) == 768, "pool lock");

/* ------------------------------------------------------------ test hooks */

static _Atomic uint64_t test_clock_ms;
static _Atomic uint32_t lock_timeout_ms = 100;
void (*shmstat__cache_hook)(int stage);

void shmstat__cache_set_clock(uint64_t ms)
{
	atomic_store_explicit(&test_clock_ms, ms, memory_order_relaxed);
}

void shmstat__cache_set_lock_timeout(uint32_t ms)
{
	atomic_store_explicit(&lock_timeout_ms, ms ? ms : 100,
			      memory_order_relaxed);
}

/*
 * The cache's clock in ms. CLOCK_MONOTONIC_COARSE: does not jump with the
 * wall clock, is the same in every process, and costs a few ns (a full
 * CLOCK_MONOTONIC read costs more than a whole hit). Read only when an
 * entry has a TTL.
 */
uint64_t shmstat__cache_now_ms(void)
{
	uint64_t t = atomic_load_explicit(&test_clock_ms, memory_order_relaxed);
	struct timespec ts;

	if (t)
		return t;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void hook(int stage)
{
	if (__builtin_expect(shmstat__cache_hook != NULL, 0))
		shmstat__cache_hook(stage);
}

/* -------------------------------------------------------------- geometry */

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
static bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }
static uint64_t pow2_floor(uint64_t v)
{
	uint64_t p = 1;
	while (p <= v / 2)
		p <<= 1;
	return p;
}

static uint64_t largest_block(uint64_t max_value)
{
	return align_up(ENT_HDR + SHMSTAT_CACHE_KEY_MAX + max_value, BLOCK_ALIGN);
}

static uint64_t page_size_for(uint64_t max_value)
{
	uint64_t big = align_up(largest_block(max_value), 4096);
	return big > MIN_PAGE ? big : MIN_PAGE;
}

uint64_t shmstat__cache_min_size(uint64_t max_value)
{
	if (max_value > MAX_VALUE_LIMIT)
		return UINT64_MAX / 2;
	return page_size_for(max_value) + (32u << 10);
}

/* Everything ctx_load and validate check: the geometry is sane and every
 * table lies inside a region of `size` bytes. */
static bool geo_ok(const struct cache_hdr *g, uint64_t size)
{
	uint64_t end;

	if (g->region_size != size || g->nclasses == 0 ||
	    g->nclasses > MAX_CLASSES || !is_pow2(g->nbuckets) ||
	    g->nbuckets < GROUP || !is_pow2(g->nstripes) ||
	    g->nstripes > g->nbuckets / GROUP || g->npages == 0 ||
	    g->page_size < MIN_PAGE || g->page_size > (UINT64_C(1) << 36) ||
	    g->max_value == 0 || g->max_value > MAX_VALUE_LIMIT)
		return false;
	if (g->stripes_off < CACHE_HDR_SIZE ||
	    g->classes_off < g->stripes_off + (uint64_t)g->nstripes * 128 ||
	    g->buckets_off < g->classes_off + (uint64_t)g->nclasses * 128 ||
	    g->pages_off < g->buckets_off + (uint64_t)g->nbuckets * 64 ||
	    g->data_off < g->pages_off + (uint64_t)g->npages * 32 ||
	    g->data_off > size || g->stripes_off % 64 || g->classes_off % 64 ||
	    g->buckets_off % 64 || g->pages_off % 64 || g->data_off % 64)
		return false;
	end = g->data_off + (uint64_t)g->npages * g->page_size;
	if (end > size || end > OFF_MASK)
		return false;
	return true;
}

static bool classes_ok(const struct cache_hdr *g)
{
	for (uint32_t i = 0; i < g->nclasses; i++) {
		uint64_t s = g->class_size[i];
		if (s < MIN_BLOCK || s % BLOCK_ALIGN || s > g->page_size ||
		    (i && s <= g->class_size[i - 1]))
			return false;
	}
	return g->class_size[g->nclasses - 1] >= largest_block(g->max_value);
}

static int plan(uint64_t size, uint64_t max_value, struct cache_hdr *g)
{
	uint64_t big = largest_block(max_value), s = MIN_BLOCK, off;
	uint32_t n = 0;

	if (max_value == 0 || max_value > MAX_VALUE_LIMIT)
		return SHMSTAT_EINVAL;
	memset(g, 0, sizeof(*g));
	g->magic = CACHE_MAGIC;
	g->version = CACHE_VERSION;
	g->hdr_size = CACHE_HDR_SIZE;
	g->region_size = size;
	g->max_value = max_value;
	g->page_size = page_size_for(max_value);
	/* Classes ~1.25 apart, so a value wastes at most a fifth of its
	 * block; the last class holds the largest entry. */
	while (s < big && n < MAX_CLASSES - 1) {
		g->class_size[n++] = s;
		s = align_up(s + (s / 4 > BLOCK_ALIGN ? s / 4 : BLOCK_ALIGN),
			     BLOCK_ALIGN);
	}
	g->class_size[n++] = big;
	g->nclasses = n;
	if (size < g->page_size + CACHE_HDR_SIZE)
		return SHMSTAT_ENOSPC;
	/* One bucket (7 slots) per 384 bytes: at a typical entry of ~128
	 * bytes the table is about half full, so a home rarely overflows. */
	uint64_t nb = pow2_floor((size - g->page_size) / 384);
	if (nb < 16)
		nb = 16;
	if (nb > (UINT64_C(1) << 31))
		nb = UINT64_C(1) << 31;
	uint64_t ns = pow2_floor(size / (32u << 10));
	if (ns < 16)
		ns = 16;
	if (ns > 1024)
		ns = 1024;
	if (ns > nb / GROUP)
		ns = nb / GROUP;
	g->nbuckets = (uint32_t)nb;
	g->nstripes = (uint32_t)ns;
	g->stripes_off = CACHE_HDR_SIZE;
	g->classes_off = g->stripes_off + ns * 128;
	g->buckets_off = g->classes_off + (uint64_t)n * 128;
	g->pages_off = g->buckets_off + nb * 64;
	off = g->pages_off;
	if (off + 64 + g->page_size + 32 > size)
		return SHMSTAT_ENOSPC;
	uint64_t np = (size - off - 64) / (g->page_size + 32);
	while (np > 0 && align_up(off + np * 32, 64) + np * g->page_size > size)
		np--;
	if (np == 0 || np > UINT32_MAX - 1)
		return SHMSTAT_ENOSPC;
	g->npages = (uint32_t)np;
	g->data_off = align_up(off + np * 32, 64);
	return geo_ok(g, size) && classes_ok(g) ? 0 : SHMSTAT_ENOSPC;
}

static int lock_init(struct cache_lock *l)
{
	pthread_mutexattr_t a;
	int r;

	if (pthread_mutexattr_init(&a))
		return SHMSTAT_ESYS;
	r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!r)
		r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!r)
		r = pthread_mutex_init(&l->m, &a);
	pthread_mutexattr_destroy(&a);
	return r ? SHMSTAT_ESYS : 0;
}

int shmstat__cache_init(unsigned char *region, uint64_t size,
			uint64_t max_value)
{
	struct cache_hdr g;
	int rc = plan(size, max_value, &g);

	if (rc < 0)
		return rc;
	memcpy(region, &g, sizeof(g));
	struct cache_hdr *hdr = (struct cache_hdr *)(void *)region;
	if ((rc = lock_init(&hdr->pool)) < 0)
		return rc;
	struct cache_stripe *st = (void *)(region + g.stripes_off);
	for (uint32_t i = 0; i < g.nstripes; i++)
		if ((rc = lock_init(&st[i].lk)) < 0)
			return rc;
	struct cache_class *cl = (void *)(region + g.classes_off);
	for (uint32_t i = 0; i < g.nclasses; i++)
		if ((rc = lock_init(&cl[i].lk)) < 0)
			return rc;
	struct cache_page *pg = (void *)(region + g.pages_off);
	for (uint32_t p = 0; p < g.npages; p++) {
		pg[p].cls = PAGE_NONE;
		pg[p].next = p + 1 < g.npages ? p + 2 : 0;
	}
	hdr->pool_head = 1;
	return 0;
}

int shmstat__cache_validate(const unsigned char *region, uint64_t size,
			    uint64_t max_value)
{
	const struct cache_hdr *g = (const void *)region;

	if (size < CACHE_HDR_SIZE || g->magic != CACHE_MAGIC ||
	    g->version != CACHE_VERSION || g->hdr_size != CACHE_HDR_SIZE ||
	    g->max_value != max_value || !geo_ok(g, size) || !classes_ok(g))
		return SHMSTAT_ECORRUPT;
	return 0;
}

/* ------------------------------------------------------------------ ctx */

/* What one call needs, loaded and checked from the header at its start. */
struct ctx {
	struct shmstat *h;
	unsigned char *base;
	struct cache_hdr *hdr;
	uint64_t data_off, data_end, page_size, max_value;
	uint32_t bmask, smask, nclasses, npages;
	struct cache_stripe *st;
	struct cache_class *cl;
	struct cache_bucket *bk;
	struct cache_page *pg;
};

/*
 * Statistics of handles that found no row (all rows held by live
 * processes): process-local, one record per segment (its name, creation
 * time and creator), so one segment's fallback counts never show in
 * another's. Records live as long as the process (a few per segment ever
 * used without a row); a child starts from zero, as it has its own rows.
 */
struct local_stats {
	struct local_stats *next;
	char name[SHMSTAT_SEGNAME_MAX + 1];
	uint64_t created_ns;
	int32_t creator_pid;
	_Atomic uint64_t v[RS_COUNT_];
};
static pthread_mutex_t local_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t local_once = PTHREAD_ONCE_INIT;
static struct local_stats *local_head;

static void local_prepare(void) { pthread_mutex_lock(&local_lock); }
static void local_parent(void) { pthread_mutex_unlock(&local_lock); }
static void local_child(void)
{
	for (struct local_stats *l = local_head; l; l = l->next)
		for (int i = 0; i < RS_COUNT_; i++)
			atomic_store_explicit(&l->v[i], 0,
					      memory_order_relaxed);
	pthread_mutex_unlock(&local_lock);
}
static void local_init(void)
{
	pthread_atfork(local_prepare, local_parent, local_child);
}

/* The fallback record of h's segment; created when `create`, else NULL
 * when there is none (or no memory: the counts are then dropped). */
static struct local_stats *local_of(const struct shmstat *h, bool create)
{
	struct local_stats *l;
	uint64_t created = h->hdr->created_ns;
	int32_t creator = h->hdr->creator_pid;

	pthread_once(&local_once, local_init);
	pthread_mutex_lock(&local_lock);
	for (l = local_head; l; l = l->next)
		if (l->created_ns == created && l->creator_pid == creator &&
		    strcmp(l->name, h->name) == 0)
			break;
	if (!l && create && (l = calloc(1, sizeof(*l)))) {
		memcpy(l->name, h->name, sizeof(l->name));
		l->name[sizeof(l->name) - 1] = '\0';
		l->created_ns = created;
		l->creator_pid = creator;
		l->next = local_head;
		local_head = l;
	}
	pthread_mutex_unlock(&local_lock);
	return l;
}

static int ctx_peek(struct shmstat *h, struct ctx *c)
{
	struct cache_hdr *g;

	if (!h)
		return SHMSTAT_EINVAL;
	g = (struct cache_hdr *)(void *)h->cache;
	if (!g || h->cache_size < CACHE_HDR_SIZE || !geo_ok(g, h->cache_size))
		return shmstat__err(h, SHMSTAT_ECORRUPT,
				    "segment '%s': the cache header is corrupt",
				    h->name);
	c->h = h;
	c->base = h->cache;
	c->hdr = g;
	c->data_off = g->data_off;
	c->page_size = g->page_size;
	c->npages = g->npages;
	c->data_end = g->data_off + (uint64_t)g->npages * g->page_size;
	c->max_value = g->max_value;
	c->bmask = g->nbuckets - 1;
	c->smask = g->nstripes - 1;
	c->nclasses = g->nclasses;
	c->st = (void *)(h->cache + g->stripes_off);
	c->cl = (void *)(h->cache + g->classes_off);
	c->bk = (void *)(h->cache + g->buckets_off);
	c->pg = (void *)(h->cache + g->pages_off);
	return 0;
}

/* ctx_peek, and the first cache call of a handle claims its row. */
static int ctx_load(struct shmstat *h, struct ctx *c)
{
	int rc = ctx_peek(h, c);

	/* Gets write too (reference bits, expiry): not through a mapping
	 * without write access. */
	if (rc == 0 && h->rdonly)
		return shmstat__err(h, SHMSTAT_ERDONLY,
				    "segment '%s' is open read-only", h->name);
	if (rc == 0 && !h->row.cells)
		(void)shmstat__row_claim(h);
	return rc;
}

/*
 * Count into the handle's row. Unlike a counter cell (one writer, plain
 * load + store), a row's cache statistics may be written by every thread
 * that shares the handle, so they are added atomically: the line is this
 * process's own, so the lock prefix costs a few ns and no sharing. No
 * row: the segment's process-local record.
 */
static void stat_add(struct ctx *c, enum row_stat s, uint64_t n)
{
	int32_t w = c->h->slot;

	if (w >= 0 && (uint32_t)w < c->h->max_workers) {
		atomic_fetch_add_explicit(
			&shmstat__row_stats(c->h, (uint32_t)w)[s], n,
			memory_order_relaxed);
	} else {
		struct local_stats *l = local_of(c->h, true);
		if (l)
			atomic_fetch_add_explicit(&l->v[s], n,
						  memory_order_relaxed);
	}
}

static int fail(struct ctx *c, int rc)
{
	/* Misses and unmet NX / XX conditions are answers, not errors. */
	if (rc != SHMSTAT_ENOTFOUND && rc != SHMSTAT_EKEYEXISTS &&
	    rc != SHMSTAT_ERANGE)
		stat_add(c, RS_CACHE_ERRORS, 1);
	return rc;
}

static uint16_t slot_tag(uint64_t s) { return (uint16_t)(s >> 48); }
static uint64_t slot_off(uint64_t s) { return s & OFF_MASK; }
static uint16_t hash_tag(uint64_t hash) { return (uint16_t)((hash >> 48) | 1); }
static uint64_t make_slot(uint64_t hash, uint64_t off)
{
	return (uint64_t)hash_tag(hash) << 48 | off;
}

static uint32_t home_of(const struct ctx *c, uint64_t hash)
{
	return (uint32_t)hash & c->bmask;
}
static uint32_t stripe_of(const struct ctx *c, uint32_t bucket)
{
	return (bucket / GROUP) & c->smask;
}

/* A block's header at offset off, or NULL when off is not a block. */
static struct cache_entry *entry_at(const struct ctx *c, uint64_t off)
{
	if (off < c->data_off || off >= c->data_end ||
	    (off - c->data_off) % BLOCK_ALIGN ||
	    c->data_end - off < ENT_HDR)
		return NULL;
	return (struct cache_entry *)(void *)(c->base + off);
}

/* Do key_len + val_len of the entry at off fit inside the data area? */
static bool entry_fits(const struct ctx *c, uint64_t off, uint64_t klen,
		       uint64_t vlen)
{
	return klen <= SHMSTAT_CACHE_KEY_MAX && vlen <= c->max_value &&
	       c->data_end - off - ENT_HDR >= klen + vlen;
}

static bool expired(uint64_t expires, uint64_t *now)
{
	if (!expires)
		return false;
	if (!*now)
		*now = shmstat__cache_now_ms();
	return *now >= expires;
}

static uint64_t deadline_ns(void)
{
	return shmstat__now_mono_ns() +
	       (uint64_t)atomic_load_explicit(&lock_timeout_ms,
					      memory_order_relaxed) *
		       1000000u;
}

/* ---------------------------------------------------------------- locks */

static void repair_stripe(struct ctx *c, uint32_t s);
static void rebuild_class(struct ctx *c, uint32_t cls);
static void rebuild_pool(struct ctx *c);

/*
 * Lock l, waiting at most lock_timeout_ms (try: not at all). On EOWNERDEAD
 * the previous holder died inside: *dead tells the caller to repair before
 * pthread_mutex_consistent(). EBUSY when not had in time.
 */
static int mlock(struct cache_lock *l, bool try, bool *dead)
{
	int r = pthread_mutex_trylock(&l->m);

	*dead = false;
	if (r == EBUSY && !try) {
		struct timespec ts;
		uint64_t ns = deadline_ns();
		ts.tv_sec = (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		r = pthread_mutex_clocklock(&l->m, CLOCK_MONOTONIC, &ts);
	}
	if (r == 0)
		return 0;
	if (r == EOWNERDEAD) {
		*dead = true;
		return 0;
	}
	if (r == EBUSY || r == ETIMEDOUT)
		return SHMSTAT_EBUSY;
	return SHMSTAT_ECORRUPT; /* ENOTRECOVERABLE, EINVAL: a bad lock */
}

static int stripe_lock(struct ctx *c, uint32_t s, bool try)
{
	bool dead;
	int rc = mlock(&c->st[s].lk, try, &dead);

	if (rc < 0) {
		if (!try)
			shmstat__err(c->h, rc,
				     "cache stripe %u: lock not had within "
				     "%u ms (its holder is stopped?)",
				     s, atomic_load(&lock_timeout_ms));
		return rc;
	}
	if (dead) {
		shmstat__log(SHMSTAT_LOG_WARNING,
			     "shmstat: cache stripe %u: holder died, repaired",
			     s);
		repair_stripe(c, s);
		pthread_mutex_consistent(&c->st[s].lk.m);
	}
	return 0;
}

static void stripe_unlock(struct ctx *c, uint32_t s)
{
	pthread_mutex_unlock(&c->st[s].lk.m);
}

static int class_lock(struct ctx *c, uint32_t cls)
{
	bool dead;
	int rc = mlock(&c->cl[cls].lk, false, &dead);

	if (rc < 0)
		return shmstat__err(c->h, rc, "cache class %u: lock not had "
				    "in time", cls);
	if (dead) {
		rebuild_class(c, cls);
		pthread_mutex_consistent(&c->cl[cls].lk.m);
	}
	return 0;
}

static void class_unlock(struct ctx *c, uint32_t cls)
{
	pthread_mutex_unlock(&c->cl[cls].lk.m);
}

static int pool_lock(struct ctx *c)
{
	bool dead;
	int rc = mlock(&c->hdr->pool, false, &dead);

	if (rc < 0)
		return rc;
	if (dead) {
		rebuild_pool(c);
		pthread_mutex_consistent(&c->hdr->pool.m);
	}
	return 0;
}

/* ------------------------------------------------------------ allocator */

static uint32_t class_for(const struct ctx *c, uint64_t need)
{
	const uint64_t *cs = c->hdr->class_size;
	uint32_t lo = 0, hi = c->nclasses - 1;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (cs[mid] >= need)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Class size of cls, or 0 when the header's table is bad. */
static uint64_t csize(const struct ctx *c, uint32_t cls)
{
	uint64_t s = cls < c->nclasses ? c->hdr->class_size[cls] : 0;
	return s >= MIN_BLOCK && s <= c->page_size ? s : 0;
}

static struct cache_page *page_at(const struct ctx *c, uint32_t p1)
{
	return p1 && p1 <= c->npages ? &c->pg[p1 - 1] : NULL;
}

static struct cache_entry *block(const struct ctx *c, uint32_t p, uint32_t b,
				 uint64_t cs)
{
	return entry_at(c, c->data_off + (uint64_t)p * c->page_size +
				   (uint64_t)b * cs);
}

/* Unlink page p from class cl's partial list. Class lock held. */
static void partial_unlink(struct ctx *c, struct cache_class *cl, uint32_t p)
{
	struct cache_page *pg = &c->pg[p], *n = page_at(c, pg->next),
			  *pr = page_at(c, pg->prev);

	if (pr)
		pr->next = pg->next;
	else if (cl->partial == p + 1)
		cl->partial = pg->next;
	if (n)
		n->prev = pg->prev;
	pg->next = pg->prev = 0;
}

static void partial_push(struct ctx *c, struct cache_class *cl, uint32_t p)
{
	struct cache_page *pg = &c->pg[p], *n = page_at(c, cl->partial);

	pg->prev = 0;
	pg->next = cl->partial;
	if (n)
		n->prev = p + 1;
	cl->partial = p + 1;
}

/* Take a page from the pool for class cls. Class lock held. */
static bool page_take(struct ctx *c, uint32_t cls, uint64_t cs)
{
	struct cache_class *cl = &c->cl[cls];

	if (pool_lock(c) < 0)
		return false;
	uint32_t p1 = c->hdr->pool_head;
	struct cache_page *pg = page_at(c, p1);
	if (!pg || pg->cls != PAGE_NONE) {
		if (pg)
			rebuild_pool(c); /* a bad list: start over from pages */
		pthread_mutex_unlock(&c->hdr->pool.m);
		return false;
	}
	/* Fields first, class last: a crash leaves a page that the pool's
	 * rebuild skips (cls set) and the class's rebuild takes whole. */
	pg->nblocks = (uint32_t)(c->page_size / cs);
	pg->nfree = pg->nblocks;
	pg->free_head = 0;
	pg->bump = 0;
	uint32_t next = pg->next;
	pg->next = pg->prev = 0;
	__atomic_store_n(&pg->cls, cls, __ATOMIC_RELEASE);
	c->hdr->pool_head = next;
	pthread_mutex_unlock(&c->hdr->pool.m);
	cl->npages++;
	partial_push(c, cl, p1 - 1);
	return true;
}

static void page_give_back(struct ctx *c, struct cache_class *cl, uint32_t p)
{
	struct cache_page *pg = &c->pg[p];

	if (pool_lock(c) < 0)
		return; /* stays an empty page of its class */
	partial_unlink(c, cl, p);
	if (cl->npages)
		cl->npages--;
	pg->free_head = 0;
	pg->bump = 0;
	__atomic_store_n(&pg->cls, PAGE_NONE, __ATOMIC_RELEASE);
	pg->next = c->hdr->pool_head;
	c->hdr->pool_head = p + 1;
	pthread_mutex_unlock(&c->hdr->pool.m);
}

static uint64_t jword(uint64_t off, uint32_t gen)
{
	return (uint64_t)(gen & GEN_MASK) << OFF_BITS | off;
}

/*
 * Pop a free block of class cls; its (offset, gen) goes into journal *j
 * before the block leaves the free list. Class lock held. 0 when the class
 * has no free block and the pool no page.
 */
static uint64_t pop_locked(struct ctx *c, uint32_t cls, _Atomic uint64_t *j)
{
	struct cache_class *cl = &c->cl[cls];
	uint64_t cs = csize(c, cls);

	if (!cs)
		return 0;
	for (int tries = 0; tries < 4; tries++) {
		if (!cl->partial && !page_take(c, cls, cs))
			return 0;
		uint32_t p = cl->partial - 1;
		struct cache_page *pg = page_at(c, cl->partial);
		if (!pg || pg->cls != cls || pg->nblocks != c->page_size / cs ||
		    pg->bump > pg->nblocks) {
			rebuild_class(c, cls);
			continue;
		}
		uint32_t b;
		struct cache_entry *e;
		if (pg->free_head && pg->free_head <= pg->bump) {
			b = pg->free_head - 1;
		} else if (!pg->free_head && pg->bump < pg->nblocks) {
			b = pg->bump;
		} else {
			rebuild_class(c, cls);
			continue;
		}
		e = block(c, p, b, cs);
		/* A block past bump is free whatever its state says (a
		 * writer killed in here may have left ALLOC on it). */
		if (!e || (b < pg->bump &&
			   atomic_load_explicit(&e->state,
						memory_order_relaxed) != ENT_FREE)) {
			rebuild_class(c, cls);
			continue;
		}
		/* A block first cut from a page that served another class
		 * seeds its generation from the old bytes there. Harmless: a
		 * journal record is cleared before its block is freed
		 * (remove_locked), so no record can name a block that has
		 * since been given to another class. */
		uint32_t gen = e->gen + 1;
		uint64_t off = (uint64_t)((unsigned char *)e - c->base);
		e->gen = gen;
		atomic_store_explicit(j, jword(off, gen), memory_order_relaxed);
		atomic_store_explicit(&e->state, ENT_ALLOC, memory_order_release);
		if (b == pg->bump && !pg->free_head)
			pg->bump++;
		else
			pg->free_head = e->next_free;
		if (--pg->nfree == 0)
			partial_unlink(c, cl, p);
		return off;
	}
	return 0;
}

/* Free the block at off (state FREE, back on its page's list). The caller
 * holds the lock of the stripe that referenced it, or none for a block no
 * one can reference. false when it could not (bad block, or the class lock
 * not had in time: a LIVE block is then garbage for evict_block). */
static bool block_free(struct ctx *c, uint64_t off)
{
	struct cache_entry *e = entry_at(c, off);
	uint64_t rel = off - c->data_off;
	uint32_t p = (uint32_t)(rel / c->page_size);
	struct cache_page *pg;
	uint64_t cs;

	if (!e || p >= c->npages)
		return false;
	pg = &c->pg[p];
	uint32_t cls = __atomic_load_n(&pg->cls, __ATOMIC_ACQUIRE);
	if (!(cs = csize(c, cls)) || (rel % c->page_size) % cs)
		return false;
	if (class_lock(c, cls) < 0)
		return false; /* a LIVE block: evict_block reclaims it */
	uint32_t b = (uint32_t)((rel % c->page_size) / cs);
	if (pg->cls != cls || b >= pg->bump || b >= pg->nblocks ||
	    atomic_load_explicit(&e->state, memory_order_relaxed) == ENT_FREE) {
		class_unlock(c, cls);
		return false;
	}
	e->next_free = pg->free_head;
	atomic_store_explicit(&e->state, ENT_FREE, memory_order_release);
	pg->free_head = b + 1;
	struct cache_class *cl = &c->cl[cls];
	if (++pg->nfree == 1)
		partial_push(c, cl, p);
	if (pg->nfree >= pg->nblocks)
		page_give_back(c, cl, p);
	class_unlock(c, cls);
	return true;
}

/* Recount class cls from its pages' block states. Class lock held. */
static void rebuild_class(struct ctx *c, uint32_t cls)
{
	struct cache_class *cl = &c->cl[cls];
	uint64_t cs = csize(c, cls);

	cl->partial = 0;
	cl->npages = 0;
	if (!cs)
		return;
	for (uint32_t p = 0; p < c->npages; p++) {
		struct cache_page *pg = &c->pg[p];
		if (pg->cls != cls)
			continue;
		pg->nblocks = (uint32_t)(c->page_size / cs);
		if (pg->bump > pg->nblocks)
			pg->bump = pg->nblocks;
		pg->free_head = 0;
		pg->nfree = pg->nblocks - pg->bump;
		for (uint32_t b = pg->bump; b-- > 0;) {
			struct cache_entry *e = block(c, p, b, cs);
			if (e && atomic_load_explicit(&e->state,
						      memory_order_relaxed) ==
					 ENT_FREE) {
				e->next_free = pg->free_head;
				pg->free_head = b + 1;
				pg->nfree++;
			}
		}
		cl->npages++;
		pg->next = pg->prev = 0;
		if (pg->nfree)
			partial_push(c, cl, p);
	}
}

/* Relink the pool from the pages marked free. Pool lock held. */
static void rebuild_pool(struct ctx *c)
{
	c->hdr->pool_head = 0;
	for (uint32_t p = c->npages; p-- > 0;) {
		if (c->pg[p].cls != PAGE_NONE)
			continue;
		c->pg[p].next = c->hdr->pool_head;
		c->hdr->pool_head = p + 1;
	}
}

/* ---------------------------------------------------------------- buckets */

/* Begin/end a change of bucket b's slots (its stripe lock held). */
static uint32_t ver_begin(struct cache_bucket *b)
{
	uint32_t v = atomic_load_explicit(&b->ver, memory_order_relaxed) | 1u;

	atomic_store_explicit(&b->ver, v, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return v;
}

static void ver_end(struct cache_bucket *b, uint32_t v)
{
	atomic_store_explicit(&b->ver, v + 1, memory_order_release);
}

/* Where a key is, found under its stripe lock. */
struct where {
	uint32_t bucket;
	int way;
	uint64_t off;
	struct cache_entry *e;
	bool corrupt; /* its value length does not fit (see entry_ok) */
};

/*
 * The key test both the lock-free reader and the writers apply to the
 * entry e at off: 1 it is key's entry, 0 it is not, -1 it is key's entry
 * but its value length is corrupt (above the maximum, or past the data
 * area). Every length is checked before the key bytes are compared.
 */
static int entry_ok(const struct ctx *c, const struct cache_entry *e,
		    uint64_t off, const void *key, size_t klen, uint64_t hash,
		    uint32_t vl)
{
	if (e->key_len != klen || e->hash != hash ||
	    !entry_fits(c, off, klen, 0) || memcmp(e->data, key, klen) != 0)
		return 0;
	return entry_fits(c, off, klen, vl) ? 1 : -1;
}

/* Find key in its group (w->corrupt: found, with a corrupt value
 * length). Stripe lock held. */
static bool find_locked(struct ctx *c, const void *key, size_t klen,
			uint64_t hash, struct where *w)
{
	uint32_t home = home_of(c, hash), g0 = home & ~(GROUP - 1);
	uint16_t tag = hash_tag(hash);

	for (uint32_t i = 0; i < GROUP; i++) {
		uint32_t bi = i == 0 ? home : g0 + ((home - g0 + i) % GROUP);
		struct cache_bucket *b = &c->bk[bi];
		for (int k = 0; k < WAYS; k++) {
			uint64_t s = atomic_load_explicit(&b->slot[k],
							  memory_order_relaxed);
			struct cache_entry *e;
			if (!s || slot_tag(s) != tag ||
			    !(e = entry_at(c, slot_off(s))))
				continue;
			int ok = entry_ok(c, e, slot_off(s), key, klen, hash,
					  e->val_len);
			if (!ok)
				continue;
			*w = (struct where){ bi, k, slot_off(s), e, ok < 0 };
			return true;
		}
		if (i == 0 && !(atomic_load_explicit(&b->flags,
						     memory_order_relaxed) &
				BKT_OVERFLOW))
			break;
	}
	return false;
}

/* Remove the entry at w (stripe s held): unlink, bump, free. */
static void remove_locked(struct ctx *c, uint32_t s, const struct where *w)
{
	struct cache_bucket *b = &c->bk[w->bucket];
	_Atomic uint64_t *j = &c->st[s].lk.j_old;

	atomic_store_explicit(j, jword(w->off, w->e->gen), memory_order_relaxed);
	uint32_t v = ver_begin(b);
	atomic_store_explicit(&b->slot[w->way], 0, memory_order_relaxed);
	ver_end(b, v);
	/* The record goes before the free, so it never outlives the block
	 * (a page emptied and given to another class could otherwise put a
	 * stranger's block, with a generation seeded from old bytes, under
	 * it). Dying in between leaves a LIVE, unreferenced block: garbage
	 * that evict_block and a flush reclaim. */
	atomic_store_explicit(j, 0, memory_order_relaxed);
	block_free(c, w->off);
}

/* Is the block at off referenced from a slot of its key's group? */
static bool referenced(struct ctx *c, uint64_t off, uint64_t hash,
		       struct where *w)
{
	uint32_t g0 = home_of(c, hash) & ~(GROUP - 1);

	for (uint32_t i = 0; i < GROUP; i++)
		for (int k = 0; k < WAYS; k++) {
			uint64_t s = atomic_load_explicit(&c->bk[g0 + i].slot[k],
							  memory_order_relaxed);
			if (s && slot_off(s) == off) {
				if (w)
					*w = (struct where){ g0 + i, k, off,
							     entry_at(c, off),
							     false };
				return true;
			}
		}
	return false;
}

/* Act on one journal record (see settle). */
static void settle_word(struct ctx *c, uint64_t word, uint64_t off,
			struct cache_entry *e)
{
	/* A generation that moved on: the block was freed and reused since,
	 * it is someone else's now. (Its hash may still be that of its
	 * previous life when the writer died before writing it; then it was
	 * never published, and `referenced` finds it nowhere.) */
	if (!e || (e->gen & GEN_MASK) != word >> OFF_BITS)
		return;
	uint32_t st = atomic_load_explicit(&e->state, memory_order_relaxed);
	if (st == ENT_FREE)
		return;
	if (referenced(c, off, e->hash, NULL))
		atomic_store_explicit(&e->state, ENT_LIVE, memory_order_release);
	else
		block_free(c, off);
}

/* Settle one journal record of stripe s after its holder died. */
static void settle(struct ctx *c, _Atomic uint64_t *j)
{
	uint64_t word = atomic_load_explicit(j, memory_order_relaxed);
	uint64_t off = word & OFF_MASK;
	struct cache_entry *e = entry_at(c, off);

	if (word)
		hook(CACHE_HOOK_SETTLING);
	settle_word(c, word, off, e);
	/* Cleared only once acted on: a repairer that dies in there leaves
	 * the record for the next one (the action is idempotent). */
	atomic_store_explicit(j, 0, memory_order_relaxed);
}

/* The holder of stripe s died: even out its groups' versions, settle its
 * journal. Runs with the lock, before pthread_mutex_consistent(). */
static void repair_stripe(struct ctx *c, uint32_t s)
{
	uint32_t ngroups = (c->bmask + 1) / GROUP;

	for (uint32_t g = s; g < ngroups; g += c->smask + 1)
		for (uint32_t i = 0; i < GROUP; i++) {
			struct cache_bucket *b = &c->bk[g * GROUP + i];
			uint32_t v = atomic_load_explicit(&b->ver,
							  memory_order_relaxed);
			if (v & 1)
				atomic_store_explicit(&b->ver, v + 1,
						      memory_order_release);
		}
	settle(c, &c->st[s].lk.j_new);
	settle(c, &c->st[s].lk.j_old);
}

/* --------------------------------------------------------------- eviction */

/*
 * Remove the entry in block off to make room (held: the stripe this
 * process holds, or UINT32_MAX). Other stripes are only tried: a busy one
 * skips the victim. Returns true when it went.
 *
 * A block that is LIVE but referenced from no slot of its key's group is
 * garbage: its remover unlinked it and then could not free it (the size
 * class's lock was held by a stopped process past the bound; or it died
 * after a repair). Only a writer of that group, holding its stripe lock,
 * unlinks or publishes such a block, so when under that lock the block is
 * still LIVE with the generation and hash read before, it is freed here.
 * (Why not keep the record in the journal and retry at the next lock: a
 * stripe's journal holds one record, and retrying would make every writer
 * of the stripe wait for a class lock whose holder is stopped.)
 * garbage_only: leave live entries alone (the flush's pass).
 */
static bool evict_block(struct ctx *c, uint32_t held, uint64_t off,
			bool garbage_only)
{
	struct cache_entry *e = entry_at(c, off);
	struct where w;
	uint64_t now = 0;

	if (!e)
		return false;
	uint32_t gen = __atomic_load_n(&e->gen, __ATOMIC_RELAXED);
	if (atomic_load_explicit(&e->state, memory_order_acquire) != ENT_LIVE)
		return false;
	uint64_t hash = __atomic_load_n(&e->hash, __ATOMIC_RELAXED);
	uint32_t s = stripe_of(c, home_of(c, hash));
	if (s != held && stripe_lock(c, s, true) < 0)
		return false;
	bool ok = false;
	if (referenced(c, off, hash, &w) && w.e) {
		if (!garbage_only) {
			bool exp = expired(
				atomic_load_explicit(&e->expires,
						     memory_order_relaxed),
				&now);
			remove_locked(c, s, &w);
			stat_add(c, exp ? RS_CACHE_EXPIRATIONS
					: RS_CACHE_EVICTIONS,
				 1);
			ok = true;
		}
	} else if (atomic_load_explicit(&e->state, memory_order_acquire) ==
			   ENT_LIVE &&
		   e->gen == gen && e->hash == hash) {
		ok = block_free(c, off);
	}
	if (s != held)
		stripe_unlock(c, s);
	return ok;
}

/*
 * CLOCK over the blocks of class cls: a set reference bit buys a second
 * chance (cleared as the hand passes), an expired or unreferenced entry is
 * the victim. Bounded by two turns of the class's blocks.
 */
static bool evict_in_class(struct ctx *c, uint32_t held, uint32_t cls)
{
	struct cache_class *cl = &c->cl[cls];
	uint64_t cs = csize(c, cls), now = 0;
	uint32_t npg = __atomic_load_n(&cl->npages, __ATOMIC_RELAXED);

	if (!cs || !npg)
		return false;
	uint64_t per = c->page_size / cs;
	uint64_t budget = 2 * (uint64_t)npg * per + c->npages + 16;
	uint64_t hand = atomic_load_explicit(&cl->hand, memory_order_relaxed);
	uint32_t p = (uint32_t)(hand >> 32), b = (uint32_t)hand;
	bool done = false;

	for (uint64_t step = 0; step < budget && !done; step++) {
		if (p >= c->npages)
			p = 0, b = 0;
		struct cache_page *pg = &c->pg[p];
		uint32_t bump = __atomic_load_n(&pg->bump, __ATOMIC_RELAXED);
		if (__atomic_load_n(&pg->cls, __ATOMIC_RELAXED) != cls ||
		    b >= bump || b >= per) {
			p++, b = 0;
			continue;
		}
		struct cache_entry *e = block(c, p, b, cs);
		uint64_t off = c->data_off + (uint64_t)p * c->page_size +
			       (uint64_t)b * cs;
		b++;
		if (!e || atomic_load_explicit(&e->state,
					       memory_order_relaxed) != ENT_LIVE)
			continue;
		if (!expired(atomic_load_explicit(&e->expires,
						  memory_order_relaxed),
			     &now) &&
		    atomic_load_explicit(&e->ref, memory_order_relaxed)) {
			atomic_store_explicit(&e->ref, 0, memory_order_relaxed);
			continue;
		}
		done = evict_block(c, held, off, false);
	}
	atomic_store_explicit(&cl->hand, (uint64_t)p << 32 | b,
			      memory_order_relaxed);
	return done;
}

/*
 * Empty whole pages, of any class, so that they go back to the pool: how a
 * class that owns no page (or too few) gets memory when all of it is
 * given out. Tries a few pages from a shared hand.
 */
static bool evict_page(struct ctx *c, uint32_t held)
{
	for (int tries = 0; tries < 8; tries++) {
		uint32_t p = (uint32_t)(atomic_fetch_add_explicit(
						&c->hdr->page_hand, 1,
						memory_order_relaxed) %
					c->npages);
		struct cache_page *pg = &c->pg[p];
		uint32_t cls = __atomic_load_n(&pg->cls, __ATOMIC_RELAXED);
		uint64_t cs = csize(c, cls);
		if (!cs)
			continue;
		uint32_t bump = __atomic_load_n(&pg->bump, __ATOMIC_RELAXED);
		for (uint32_t b = 0; b < bump && b < c->page_size / cs; b++)
			evict_block(c, held,
				    c->data_off + (uint64_t)p * c->page_size +
					    (uint64_t)b * cs,
				    false);
		if (__atomic_load_n(&pg->cls, __ATOMIC_RELAXED) == PAGE_NONE)
			return true;
	}
	return false;
}

/* A block for `need` bytes, journaled in stripe s (held); 0 when full. */
static int alloc_block(struct ctx *c, uint32_t s, uint64_t need,
		       uint64_t *off)
{
	uint32_t cls = class_for(c, need);
	int rc;

	if (!csize(c, cls) || csize(c, cls) < need)
		return SHMSTAT_ECORRUPT;
	for (int tries = 0; tries < 16; tries++) {
		if ((rc = class_lock(c, cls)) < 0)
			return rc;
		*off = pop_locked(c, cls, &c->st[s].lk.j_new);
		class_unlock(c, cls);
		if (*off)
			return 0;
		/* Full: the least recently used of the same class first;
		 * when the class has none to give, a whole page. */
		if (!evict_in_class(c, s, cls))
			evict_page(c, s);
	}
	return SHMSTAT_EFULL;
}

/* --------------------------------------------------------------- readers */

struct rd {
	uint32_t vlen;
	uint64_t expires;
	struct cache_entry *e;
};

/*
 * One consistent look at bucket b for key: 1 found (value copied when it
 * fits buflen), 0 absent, 2 found with a corrupt value length (entry_ok),
 * -1 the bucket changed or is being written.
 * Lock-free: the reads of the entry race with writers by design and are
 * validated by the version; every offset and length is bounds-checked
 * before it is used, so a racing or corrupt entry cannot make us read
 * outside the region or write outside buf.
 */
static int bucket_read(struct ctx *c, struct cache_bucket *b, uint16_t tag,
		       const void *key, size_t klen, uint64_t hash, void *buf,
		       size_t buflen, struct rd *r)
{
	uint32_t v1 = atomic_load_explicit(&b->ver, memory_order_acquire);
	int res = 0;

	if (v1 & 1)
		return -1;
	for (int k = 0; k < WAYS; k++) {
		uint64_t s = atomic_load_explicit(&b->slot[k],
						  memory_order_relaxed);
		struct cache_entry *e;
		if (!s || slot_tag(s) != tag || !(e = entry_at(c, slot_off(s))))
			continue;
		/* The block spans up to three lines: ask for all of them at
		 * once rather than one miss after the other. */
		__builtin_prefetch((const char *)e + 64);
		__builtin_prefetch((const char *)e + 128);
		uint32_t vl = e->val_len;
		int ok = entry_ok(c, e, slot_off(s), key, klen, hash, vl);
		if (!ok)
			continue;
		if (ok < 0) {
			r->vlen = vl;
			res = 2;
			break;
		}
		r->vlen = vl;
		r->expires = atomic_load_explicit(&e->expires,
						  memory_order_relaxed);
		r->e = e;
		if (buf && vl <= buflen)
			memcpy(buf, e->data + klen, vl);
		res = 1;
		break;
	}
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&b->ver, memory_order_relaxed) != v1)
		return -1;
	return res;
}

static int group_read(struct ctx *c, const void *key, size_t klen,
		      uint64_t hash, void *buf, size_t buflen, struct rd *r)
{
	uint32_t home = home_of(c, hash), g0 = home & ~(GROUP - 1);
	uint16_t tag = hash_tag(hash);
	int rc = bucket_read(c, &c->bk[home], tag, key, klen, hash, buf,
			     buflen, r);

	if (rc != 0 || !(atomic_load_explicit(&c->bk[home].flags,
					      memory_order_relaxed) &
			 BKT_OVERFLOW))
		return rc;
	for (uint32_t i = 1; i < GROUP; i++) {
		rc = bucket_read(c, &c->bk[g0 + (home - g0 + i) % GROUP], tag,
				 key, klen, hash, buf, buflen, r);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/*
 * A bucket that stays odd: its writer may be dead (the trylock repairs
 * that), or gone without evening it (a scribbled segment). Holding the
 * lock, an odd version can only be a leftover: even it. Never waits.
 */
static void unstick(struct ctx *c, uint32_t bucket)
{
	uint32_t s = stripe_of(c, bucket), g0 = bucket & ~(GROUP - 1);

	if (stripe_lock(c, s, true) < 0)
		return;
	for (uint32_t i = 0; i < GROUP; i++) {
		struct cache_bucket *b = &c->bk[g0 + i];
		uint32_t v = atomic_load_explicit(&b->ver, memory_order_relaxed);
		if (v & 1)
			atomic_store_explicit(&b->ver, v + 1,
					      memory_order_release);
	}
	stripe_unlock(c, s);
}

/*
 * Look key up without a lock: 1 found, 0 absent, 2 its entry is corrupt,
 * -1 its bucket stayed busy past the bound (a stopped writer). A bucket that stays odd may
 * belong to a writer that died: a trylock repairs it (no wait).
 */
static int lookup(struct ctx *c, const void *key, size_t klen, uint64_t hash,
		  void *buf, size_t buflen, struct rd *r)
{
	uint64_t deadline = 0;

	for (uint32_t spin = 0;; spin++) {
		int rc = group_read(c, key, klen, hash, buf, buflen, r);
		if (rc >= 0)
			return rc;
		if (spin < 64)
			continue;
		if (!deadline)
			deadline = deadline_ns();
		unstick(c, home_of(c, hash));
		if (shmstat__now_mono_ns() > deadline)
			return -1;
		sched_yield();
	}
}

/* What a reader returns for lookup's 2. */
static int corrupt_entry(struct ctx *c, const struct rd *r)
{
	return fail(c, shmstat__err(c->h, SHMSTAT_ECORRUPT,
				    "cache entry of this key is corrupt (value "
				    "length %u): a set or delete replaces it",
				    r->vlen));
}

static int check_key(struct shmstat *h, const void *key, size_t klen)
{
	if (!key || klen == 0 || klen > SHMSTAT_CACHE_KEY_MAX)
		return shmstat__err(h, SHMSTAT_EINVAL,
				    "cache key of %zu bytes: keys are 1 to %u "
				    "bytes",
				    key ? klen : 0, SHMSTAT_CACHE_KEY_MAX);
	return 0;
}

/* Drop key if it is (still) expired; never waits for the lock. */
static void expire_lazily(struct ctx *c, const void *key, size_t klen,
			  uint64_t hash)
{
	uint32_t s = stripe_of(c, home_of(c, hash));
	struct where w;
	uint64_t now = 0;

	if (stripe_lock(c, s, true) < 0)
		return;
	if (find_locked(c, key, klen, hash, &w) && !w.corrupt &&
	    expired(atomic_load_explicit(&w.e->expires, memory_order_relaxed),
		    &now)) {
		remove_locked(c, s, &w);
		stat_add(c, RS_CACHE_EXPIRATIONS, 1);
	}
	stripe_unlock(c, s);
}

int shmstat_cache_get(shmstat_t *h, const void *key, size_t klen, void *buf,
		      size_t buflen, size_t *vlen)
{
	struct ctx c;
	struct rd r;
	uint64_t now = 0;
	int rc;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0 || (!buf && buflen))
		return fail(&c, rc < 0 ? rc : SHMSTAT_EINVAL);
	uint64_t hash = shmstat__hash(key, klen);
	rc = lookup(&c, key, klen, hash, buf, buflen, &r);
	if (rc == 2)
		return corrupt_entry(&c, &r);
	if (rc == 1 && expired(r.expires, &now)) {
		expire_lazily(&c, key, klen, hash);
		rc = 0;
	}
	if (rc != 1) {
		stat_add(&c, RS_CACHE_MISSES, 1);
		return rc == 0 ? SHMSTAT_ENOTFOUND
			       : shmstat__err(h, SHMSTAT_ENOTFOUND,
					      "cache bucket busy past the bound: "
					      "reported as a miss");
	}
	/* The CLOCK bit: written only when not yet set, so a hot key's
	 * line stays shared-clean in every reader's cache. */
	if (!atomic_load_explicit(&r.e->ref, memory_order_relaxed))
		atomic_store_explicit(&r.e->ref, 1, memory_order_relaxed);
	stat_add(&c, RS_CACHE_HITS, 1);
	if (vlen)
		*vlen = r.vlen;
	if (r.vlen > buflen)
		return shmstat__err(h, SHMSTAT_ERANGE,
				    "cache value of %u bytes does not fit a "
				    "buffer of %zu",
				    r.vlen, buflen);
	return 0;
}

int shmstat_cache_exists(shmstat_t *h, const void *key, size_t klen)
{
	struct ctx c;
	struct rd r;
	uint64_t now = 0;
	int rc;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0)
		return fail(&c, rc);
	rc = lookup(&c, key, klen, shmstat__hash(key, klen), NULL, 0, &r);
	if (rc == 2)
		return corrupt_entry(&c, &r);
	return rc == 1 && !expired(r.expires, &now);
}

int shmstat_cache_ttl(shmstat_t *h, const void *key, size_t klen,
		      int64_t *ttl_ms)
{
	struct ctx c;
	struct rd r;
	uint64_t now = 0;
	int rc;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0 || !ttl_ms)
		return fail(&c, rc < 0 ? rc : SHMSTAT_EINVAL);
	rc = lookup(&c, key, klen, shmstat__hash(key, klen), NULL, 0, &r);
	if (rc == 2)
		return corrupt_entry(&c, &r);
	if (rc != 1 || expired(r.expires, &now))
		return SHMSTAT_ENOTFOUND;
	if (!r.expires)
		*ttl_ms = -1;
	else /* a deadline set by an older version may lie further out */
		*ttl_ms = r.expires - now > SHMSTAT_CACHE_TTL_MAX
				  ? (int64_t)SHMSTAT_CACHE_TTL_MAX
				  : (int64_t)(r.expires - now);
	return 0;
}

/* --------------------------------------------------------------- writers */

static uint64_t expiry(uint64_t ttl_ms)
{
	uint64_t now;

	if (!ttl_ms)
		return 0;
	if (ttl_ms > SHMSTAT_CACHE_TTL_MAX)
		ttl_ms = SHMSTAT_CACHE_TTL_MAX;
	now = shmstat__cache_now_ms();
	return ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;
}

/* A free way in key's group, flagging the home when it overflows; when
 * the group is full, its least valuable entry goes (stripe s held). */
static bool free_way(struct ctx *c, uint32_t s, uint64_t hash, uint32_t *bi,
		     int *way)
{
	uint32_t home = home_of(c, hash), g0 = home & ~(GROUP - 1);
	struct where victim = { 0, -1, 0, NULL, false };
	uint64_t now = 0;

	for (uint32_t i = 0; i < GROUP; i++) {
		uint32_t b = g0 + (home - g0 + i) % GROUP;
		for (int k = 0; k < WAYS; k++) {
			uint64_t sl = atomic_load_explicit(&c->bk[b].slot[k],
							   memory_order_relaxed);
			struct cache_entry *e = sl ? entry_at(c, slot_off(sl)) : NULL;
			if (!sl || !e) {
				if (sl) /* corrupt slot: reclaim the way */
					atomic_store_explicit(&c->bk[b].slot[k],
							      0,
							      memory_order_relaxed);
				if (i)
					atomic_fetch_or_explicit(
						&c->bk[home].flags,
						BKT_OVERFLOW,
						memory_order_relaxed);
				*bi = b;
				*way = k;
				return true;
			}
			if (victim.way < 0 ||
			    expired(atomic_load_explicit(&e->expires,
							 memory_order_relaxed),
				    &now) ||
			    !atomic_load_explicit(&e->ref, memory_order_relaxed))
				victim = (struct where){ b, k, slot_off(sl), e,
							 false };
		}
	}
	if (victim.way < 0)
		return false;
	remove_locked(c, s, &victim);
	stat_add(c, RS_CACHE_EVICTIONS, 1);
	if (victim.bucket != home)
		atomic_fetch_or_explicit(&c->bk[home].flags, BKT_OVERFLOW,
					 memory_order_relaxed);
	*bi = victim.bucket;
	*way = victim.way;
	return true;
}

static void lease_drop(struct ctx *c, uint32_t s, uint64_t hash)
{
	for (int i = 0; i < NLEASES; i++)
		if (c->st[s].lease[i].pid && c->st[s].lease[i].hash == hash)
			c->st[s].lease[i].pid = 0;
}

static int sweep(struct ctx *c, uint32_t n, uint64_t *removed);

int shmstat_cache_set(shmstat_t *h, const void *key, size_t klen,
		      const void *val, size_t vlen, uint64_t ttl_ms, int mode)
{
	static _Thread_local uint32_t nsets;
	struct ctx c;
	struct where w;
	uint64_t now = 0, off = 0;
	int rc;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0)
		return fail(&c, rc);
	if (mode < SHMSTAT_CACHE_ALWAYS || mode > SHMSTAT_CACHE_XX ||
	    (!val && vlen))
		return fail(&c, shmstat__err(h, SHMSTAT_EINVAL,
					     "cache set: bad mode or value"));
	if (vlen > c.max_value)
		return fail(&c, shmstat__err(h, SHMSTAT_ETOOBIG,
					     "cache value of %zu bytes is above "
					     "the segment's maximum of %llu",
					     vlen,
					     (unsigned long long)c.max_value));
	uint64_t hash = shmstat__hash(key, klen), exp = expiry(ttl_ms);
	uint32_t s = stripe_of(&c, home_of(&c, hash));
	if ((rc = stripe_lock(&c, s, false)) < 0)
		return fail(&c, rc);
	hook(CACHE_HOOK_LOCKED);
	/* A corrupt entry of the key counts as absent and is replaced. */
	bool found = find_locked(&c, key, klen, hash, &w);
	bool live = found && !w.corrupt &&
		    !expired(atomic_load_explicit(&w.e->expires,
						  memory_order_relaxed),
			     &now);
	if (mode == SHMSTAT_CACHE_NX && live) {
		rc = shmstat__err(h, SHMSTAT_EKEYEXISTS, "cache key exists");
		goto out;
	}
	if (mode == SHMSTAT_CACHE_XX && !live) {
		rc = shmstat__err(h, SHMSTAT_ENOTFOUND, "cache key is absent");
		goto out;
	}
	if ((rc = alloc_block(&c, s, ENT_HDR + klen + vlen, &off)) < 0) {
		if (rc == SHMSTAT_EFULL)
			shmstat__err(h, rc, "cache full: nothing could be "
				     "evicted for a %zu-byte value", vlen);
		goto out;
	}
	/* Eviction may have taken the old entry: look again. */
	found = find_locked(&c, key, klen, hash, &w);
	struct cache_entry *e = entry_at(&c, off);
	e->key_len = (uint16_t)klen;
	e->val_len = (uint32_t)vlen;
	e->hash = hash;
	atomic_store_explicit(&e->ref, 0, memory_order_relaxed);
	atomic_store_explicit(&e->expires, exp, memory_order_relaxed);
	memcpy(e->data, key, klen);
	if (vlen)
		memcpy(e->data + klen, val, vlen);
	hook(CACHE_HOOK_WRITTEN);
	if (!found) {
		if (!free_way(&c, s, hash, &w.bucket, &w.way)) {
			/* Written, unreferenced: LIVE makes it garbage that
			 * evict_block reclaims if this free fails. */
			atomic_store_explicit(&e->state, ENT_LIVE,
					      memory_order_release);
			atomic_store_explicit(&c.st[s].lk.j_new, 0,
					      memory_order_relaxed);
			block_free(&c, off);
			rc = shmstat__err(h, SHMSTAT_EFULL, "cache bucket "
					  "group full");
			goto out;
		}
	} else {
		atomic_store_explicit(&c.st[s].lk.j_old,
				      jword(w.off, w.e->gen),
				      memory_order_relaxed);
	}
	struct cache_bucket *b = &c.bk[w.bucket];
	uint32_t v = ver_begin(b);
	atomic_store_explicit(&b->slot[w.way], make_slot(hash, off),
			      memory_order_relaxed);
	hook(CACHE_HOOK_PUBLISHED);
	ver_end(b, v);
	atomic_store_explicit(&e->state, ENT_LIVE, memory_order_release);
	atomic_store_explicit(&c.st[s].lk.j_new, 0, memory_order_relaxed);
	if (found) { /* record first, as in remove_locked */
		atomic_store_explicit(&c.st[s].lk.j_old, 0,
				      memory_order_relaxed);
		block_free(&c, w.off);
	}
	lease_drop(&c, s, hash);
	stat_add(&c, RS_CACHE_SETS, 1);
out:
	stripe_unlock(&c, s);
	if (rc < 0)
		return fail(&c, rc);
	/* Now and then a set sweeps a few buckets, so expired entries go
	 * even where nobody reads them and nobody runs a sweep. */
	if ((++nsets & 255) == 0)
		sweep(&c, 64, NULL);
	return 0;
}

static int do_delete(struct ctx *c, uint32_t s, struct where *w,
		     uint64_t arg);

/* Run fn on key's entry under its stripe lock. A corrupt entry of the
 * key is removed (counted as a delete) and the key is then absent. */
static int with_entry(shmstat_t *h, const void *key, size_t klen,
		      int (*fn)(struct ctx *, uint32_t, struct where *,
				uint64_t),
		      uint64_t arg)
{
	struct ctx c;
	struct where w;
	uint64_t now = 0;
	int rc;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0)
		return fail(&c, rc);
	uint64_t hash = shmstat__hash(key, klen);
	uint32_t s = stripe_of(&c, home_of(&c, hash));
	if ((rc = stripe_lock(&c, s, false)) < 0)
		return fail(&c, rc);
	if (!find_locked(&c, key, klen, hash, &w)) {
		rc = SHMSTAT_ENOTFOUND;
	} else if (w.corrupt) {
		/* Repaired by removal: a delete did what it was asked. */
		remove_locked(&c, s, &w);
		stat_add(&c, RS_CACHE_DELETES, 1);
		rc = fn == do_delete ? 0 : SHMSTAT_ENOTFOUND;
	} else if (expired(atomic_load_explicit(&w.e->expires,
						memory_order_relaxed),
			   &now)) {
		remove_locked(&c, s, &w);
		stat_add(&c, RS_CACHE_EXPIRATIONS, 1);
		rc = SHMSTAT_ENOTFOUND;
	} else {
		rc = fn(&c, s, &w, arg);
	}
	stripe_unlock(&c, s);
	return rc;
}

static int do_delete(struct ctx *c, uint32_t s, struct where *w, uint64_t arg)
{
	(void)arg;
	remove_locked(c, s, w);
	stat_add(c, RS_CACHE_DELETES, 1);
	return 0;
}

static int do_expire(struct ctx *c, uint32_t s, struct where *w, uint64_t ttl)
{
	(void)c;
	(void)s;
	/* One atomic store: a reader sees the old deadline or the new. */
	atomic_store_explicit(&w->e->expires, expiry(ttl), memory_order_relaxed);
	return 0;
}

int shmstat_cache_delete(shmstat_t *h, const void *key, size_t klen)
{
	return with_entry(h, key, klen, do_delete, 0);
}

int shmstat_cache_expire(shmstat_t *h, const void *key, size_t klen,
			 uint64_t ttl_ms)
{
	return with_entry(h, key, klen, do_expire, ttl_ms);
}

/* ------------------------------------------------------ patterns, scans */

/* One [...] set at p (after the '['): 1 match, 0 no, -1 not a set. */
static int glob_set(const char *p, unsigned char ch, const char **end)
{
	bool neg = false, ok = false;
	const char *start;

	if (*p == '!' || *p == '^')
		neg = true, p++;
	start = p;
	while (*p && (*p != ']' || p == start)) {
		unsigned char lo, hi;
		if (*p == '\\' && p[1])
			p++;
		lo = hi = (unsigned char)*p++;
		if (*p == '-' && p[1] && p[1] != ']') {
			p++;
			if (*p == '\\' && p[1])
				p++;
			hi = (unsigned char)*p++;
		}
		if (ch >= lo && ch <= hi)
			ok = true;
	}
	if (*p != ']')
		return -1;
	*end = p + 1;
	return ok != neg;
}

/* fnmatch(3) without flags, over a byte string that may hold NULs. */
static bool glob(const char *p, const unsigned char *s, size_t n)
{
	const char *star = NULL;
	size_t i = 0, star_i = 0;

	if (!p)
		return true;
	for (;;) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			star = p;
			star_i = i;
			continue;
		}
		if (i == n)
			return *p == '\0';
		const char *np = p + 1;
		int m;
		if (*p == '\0')
			m = 0;
		else if (*p == '?')
			m = 1;
		else if (*p == '[') {
			m = glob_set(p + 1, s[i], &np);
			if (m < 0)
				m = s[i] == '[', np = p + 1;
		} else if (*p == '\\' && p[1]) {
			m = s[i] == (unsigned char)p[1];
			np = p + 2;
		} else {
			m = s[i] == (unsigned char)*p;
		}
		if (m) {
			p = np;
			i++;
			continue;
		}
		if (!star)
			return false;
		p = star;
		i = ++star_i;
	}
}

/* Keys of one bucket, copied under its version. */
struct bucket_keys {
	int n;
	uint16_t len[WAYS];
	uint64_t expires[WAYS];
	unsigned char key[WAYS][SHMSTAT_CACHE_KEY_MAX];
};

/* 0 copied, -1 the bucket stayed busy past the bound. */
static int bucket_keys(struct ctx *c, struct cache_bucket *b,
		       struct bucket_keys *out)
{
	uint64_t deadline = 0;

	for (uint32_t spin = 0;; spin++) {
		uint32_t v1 = atomic_load_explicit(&b->ver, memory_order_acquire);
		if (!(v1 & 1)) {
			out->n = 0;
			for (int k = 0; k < WAYS; k++) {
				uint64_t s = atomic_load_explicit(
					&b->slot[k], memory_order_relaxed);
				struct cache_entry *e;
				if (!s || !(e = entry_at(c, slot_off(s))))
					continue;
				uint16_t kl = e->key_len;
				if (!kl || !entry_fits(c, slot_off(s), kl, 0))
					continue;
				out->len[out->n] = kl;
				out->expires[out->n] = atomic_load_explicit(
					&e->expires, memory_order_relaxed);
				memcpy(out->key[out->n], e->data, kl);
				out->n++;
			}
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(&b->ver, memory_order_relaxed) ==
			    v1)
				return 0;
		}
		if (spin < 64)
			continue;
		if (!deadline)
			deadline = deadline_ns();
		unstick(c, (uint32_t)(b - c->bk));
		if (shmstat__now_mono_ns() > deadline)
			return -1;
		sched_yield();
	}
}

int shmstat_cache_iter(shmstat_t *h, const char *pattern,
		       shmstat_cache_key_fn fn, void *priv)
{
	struct ctx c;
	struct bucket_keys bk;
	uint64_t now = 0;
	int rc;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if (!fn)
		return SHMSTAT_EINVAL;
	for (uint64_t b = 0; b <= c.bmask; b++) {
		if (bucket_keys(&c, &c.bk[b], &bk) < 0)
			continue; /* a stopped writer's bucket: skipped */
		for (int i = 0; i < bk.n; i++) {
			if (expired(bk.expires[i], &now) ||
			    !glob(pattern, bk.key[i], bk.len[i]))
				continue;
			if ((rc = fn(bk.key[i], bk.len[i], priv)) != 0)
				return rc;
		}
	}
	return 0;
}

/*
 * Remove from bucket b the entries that match (pattern) or, with
 * only_expired, that expired. Locks its stripe only when the lock-free
 * look found something to do. *live / *gone count removed live and
 * expired entries.
 */
static int scrub_bucket(struct ctx *c, uint32_t bi, const char *pattern,
			bool only_expired, uint64_t *live, uint64_t *gone)
{
	struct bucket_keys bk;
	uint64_t now = 0;
	bool any = false;
	int rc;

	/* Sweeps and flushes also visit every stripe's lock in passing, so
	 * a writer that died holding one is repaired (its journal settled)
	 * even where nobody writes again. A try: never waits. */
	if ((only_expired || !pattern) && bi % GROUP == 0 &&
	    stripe_lock(c, stripe_of(c, bi), true) == 0)
		stripe_unlock(c, stripe_of(c, bi));
	if (bucket_keys(c, &c->bk[bi], &bk) < 0)
		return SHMSTAT_EBUSY;
	for (int i = 0; i < bk.n && !any; i++)
		any = only_expired ? expired(bk.expires[i], &now)
				   : glob(pattern, bk.key[i], bk.len[i]);
	if (!any)
		return 0;
	uint32_t s = stripe_of(c, bi);
	if ((rc = stripe_lock(c, s, false)) < 0)
		return rc;
	struct cache_bucket *b = &c->bk[bi];
	for (int k = 0; k < WAYS; k++) {
		uint64_t sl = atomic_load_explicit(&b->slot[k],
						   memory_order_relaxed);
		struct cache_entry *e = sl ? entry_at(c, slot_off(sl)) : NULL;
		if (!e || !entry_fits(c, slot_off(sl), e->key_len, 0))
			continue;
		bool exp = expired(atomic_load_explicit(&e->expires,
							memory_order_relaxed),
				   &now);
		if (only_expired ? !exp
				 : !glob(pattern, e->data, e->key_len))
			continue;
		struct where w = { bi, k, slot_off(sl), e, false };
		remove_locked(c, s, &w);
		if (exp) {
			stat_add(c, RS_CACHE_EXPIRATIONS, 1);
			++*gone;
		} else {
			stat_add(c, RS_CACHE_DELETES, 1);
			++*live;
		}
	}
	stripe_unlock(c, s);
	return 0;
}

/*
 * A flush's last pass: free every LIVE block that no slot references
 * (evict_block's garbage), so that "flush" leaves no block in use even
 * after a free that missed its class lock. Stripes are only tried.
 */
static void reclaim_garbage(struct ctx *c)
{
	for (uint32_t p = 0; p < c->npages; p++) {
		uint32_t cls = __atomic_load_n(&c->pg[p].cls, __ATOMIC_RELAXED);
		uint64_t cs = csize(c, cls);
		if (!cs)
			continue;
		uint32_t bump = __atomic_load_n(&c->pg[p].bump,
						__ATOMIC_RELAXED);
		for (uint32_t b = 0; b < bump && b < c->page_size / cs; b++) {
			struct cache_entry *e = block(c, p, b, cs);
			if (e && atomic_load_explicit(&e->state,
						      memory_order_relaxed) ==
					 ENT_LIVE)
				evict_block(c, UINT32_MAX,
					    (uint64_t)((unsigned char *)e -
						       c->base),
					    true);
		}
	}
}

int shmstat_cache_clear(shmstat_t *h, const char *pattern, uint64_t *count)
{
	struct ctx c;
	uint64_t live = 0, gone = 0;
	int rc, first = 0;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if (pattern && strcmp(pattern, "*") == 0)
		pattern = NULL;
	for (uint64_t b = 0; b <= c.bmask; b++) {
		rc = scrub_bucket(&c, (uint32_t)b, pattern, false, &live, &gone);
		if (rc < 0 && !first)
			first = rc;
	}
	if (!pattern)
		reclaim_garbage(&c);
	if (count)
		*count = live;
	if (first < 0)
		return fail(&c, shmstat__err(h, first, "cache clear: a bucket "
					     "stayed locked; it was skipped"));
	return 0;
}

int shmstat_cache_flush(shmstat_t *h, uint64_t *count)
{
	return shmstat_cache_clear(h, NULL, count);
}

static int sweep(struct ctx *c, uint32_t n, uint64_t *removed)
{
	uint64_t live = 0, gone = 0;
	uint64_t start = atomic_fetch_add_explicit(&c->hdr->sweep_cursor, n,
						   memory_order_relaxed);

	for (uint32_t i = 0; i < n; i++)
		(void)scrub_bucket(c, (uint32_t)((start + i) & c->bmask), NULL,
				   true, &live, &gone);
	if (removed)
		*removed = gone;
	return 0;
}

int shmstat_cache_sweep(shmstat_t *h, uint32_t max_buckets, uint64_t *removed)
{
	struct ctx c;
	int rc;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if (!max_buckets)
		max_buckets = 1024;
	if (max_buckets > c.bmask + 1)
		max_buckets = c.bmask + 1;
	return sweep(&c, max_buckets, removed);
}

/* ------------------------------------------------------------ statistics */

static void usage(const struct ctx *c, uint64_t *entries, uint64_t *used)
{
	*entries = *used = 0;
	for (uint32_t p = 0; p < c->npages; p++) {
		const struct cache_page *pg = &c->pg[p];
		uint32_t cls = __atomic_load_n(&pg->cls, __ATOMIC_RELAXED);
		uint64_t cs = csize(c, cls);
		uint32_t nb = __atomic_load_n(&pg->nblocks, __ATOMIC_RELAXED);
		uint32_t nf = __atomic_load_n(&pg->nfree, __ATOMIC_RELAXED);
		if (!cs || nf > nb)
			continue;
		*entries += nb - nf;
		*used += (uint64_t)(nb - nf) * cs;
	}
}

int shmstat_cache_stats(shmstat_t *h, shmstat_cache_stats_t *out)
{
	struct ctx c;
	uint64_t v[RS_COUNT_];
	int rc;

	if (!out)
		return SHMSTAT_EINVAL;
	/* Only reads: works on a read-only handle too. */
	if ((rc = ctx_peek(h, &c)) < 0)
		return rc;
	struct local_stats *l = local_of(h, false);
	for (int s = 0; s < RS_COUNT_; s++)
		v[s] = shmstat__row_stat_sum(h, (enum row_stat)s) +
		       (l ? atomic_load_explicit(&l->v[s],
						 memory_order_relaxed)
			  : 0);
	memset(out, 0, sizeof(*out));
	out->hits = v[RS_CACHE_HITS];
	out->misses = v[RS_CACHE_MISSES];
	out->sets = v[RS_CACHE_SETS];
	out->deletes = v[RS_CACHE_DELETES];
	out->evictions = v[RS_CACHE_EVICTIONS];
	out->expirations = v[RS_CACHE_EXPIRATIONS];
	out->errors = v[RS_CACHE_ERRORS];
	usage(&c, &out->entries, &out->bytes_used);
	uint64_t total = (uint64_t)c.npages * c.page_size;
	out->bytes_free = total > out->bytes_used ? total - out->bytes_used : 0;
	out->max_value = c.max_value;
	if (out->hits + out->misses)
		out->hit_rate = (double)out->hits /
				(double)(out->hits + out->misses);
	return 0;
}

uint64_t shmstat__cache_bytes_used(const struct shmstat *h)
{
	struct ctx c = { 0 };
	uint64_t entries, used;

	if (ctx_peek((struct shmstat *)h, &c) < 0)
		return 0;
	usage(&c, &entries, &used);
	return c.data_off + used;
}

/* ----------------------------------------------------- stampede leases */

/* Under stripe s: is a live lease on hash held by someone else? Take it
 * when free. Returns 1 taken, 0 held by another. */
static int lease_try(struct ctx *c, uint32_t s, uint64_t hash,
		     uint32_t lease_ms)
{
	struct cache_lease *free_l = NULL;
	uint64_t now = shmstat__cache_now_ms();
	int32_t me = (int32_t)getpid();

	for (int i = 0; i < NLEASES; i++) {
		struct cache_lease *l = &c->st[s].lease[i];
		bool alive = l->pid && now < l->until_ms &&
			     shmstat__proc_alive(l->pid, 0);
		if (alive && l->hash == hash && l->pid != me)
			return 0;
		if (!alive || l->hash == hash)
			free_l = free_l ? free_l : l;
	}
	/* No free record (many leases in one stripe): the caller computes
	 * without protection rather than waiting for nothing. */
	if (free_l) {
		free_l->hash = hash;
		free_l->pid = me;
		free_l->until_ms = now + lease_ms;
	}
	return 1;
}

int shmstat_cache_fetch(shmstat_t *h, const void *key, size_t klen, void *buf,
			size_t buflen, size_t *vlen, uint32_t lease_ms,
			uint32_t wait_ms, int *outcome)
{
	struct ctx c;
	struct rd r;
	int rc;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0 || !outcome || (!buf && buflen))
		return fail(&c, rc < 0 ? rc : SHMSTAT_EINVAL);
	if (!lease_ms)
		lease_ms = 10000;
	uint64_t hash = shmstat__hash(key, klen);
	uint32_t s = stripe_of(&c, home_of(&c, hash));
	uint64_t until = shmstat__now_mono_ns() + (uint64_t)wait_ms * 1000000u;
	bool counted = false;

	for (;;) {
		uint64_t now = 0;
		rc = lookup(&c, key, klen, hash, buf, buflen, &r);
		if (rc == 2)
			return corrupt_entry(&c, &r);
		bool have = rc == 1, stale = have && expired(r.expires, &now);
		if (have && !stale) {
			stat_add(&c, RS_CACHE_HITS, 1);
			*outcome = SHMSTAT_CACHE_HIT;
			goto copied;
		}
		if (!counted)
			stat_add(&c, RS_CACHE_MISSES, 1);
		counted = true;
		if ((rc = stripe_lock(&c, s, false)) < 0)
			return fail(&c, rc);
		struct where w;
		/* Set meanwhile? Then copy it now: under the lock it cannot
		 * change, and find_locked checks it as a reader does. */
		bool fresh = find_locked(&c, key, klen, hash, &w) &&
			     !w.corrupt &&
			     !expired(atomic_load_explicit(&w.e->expires,
							   memory_order_relaxed),
				      &now);
		int took = 0;
		if (fresh) {
			r.vlen = w.e->val_len;
			if (buf && r.vlen <= buflen)
				memcpy(buf, w.e->data + klen, r.vlen);
		} else {
			took = lease_try(&c, s, hash, lease_ms);
		}
		stripe_unlock(&c, s);
		if (fresh) {
			stat_add(&c, RS_CACHE_HITS, 1);
			*outcome = SHMSTAT_CACHE_HIT;
			goto copied;
		}
		if (took) {
			*outcome = SHMSTAT_CACHE_LEASED;
			if (vlen)
				*vlen = 0;
			return 0;
		}
		if (stale) {
			*outcome = SHMSTAT_CACHE_STALE;
			goto copied;
		}
		/* Every turn ends here: the wait is bounded by wait_ms. */
		if (shmstat__now_mono_ns() >= until)
			return shmstat__err(h, SHMSTAT_ELEASE,
					    "cache fetch: another caller holds "
					    "the lease; no value within %u ms",
					    wait_ms);
		struct timespec ts = { 0, 1000000 }; /* poll: 1 ms */
		nanosleep(&ts, NULL);
	}
copied:
	if (vlen)
		*vlen = r.vlen;
	if (r.vlen > buflen)
		return shmstat__err(h, SHMSTAT_ERANGE,
				    "cache value of %u bytes does not fit a "
				    "buffer of %zu",
				    r.vlen, buflen);
	return 0;
}

int shmstat_cache_lease_release(shmstat_t *h, const void *key, size_t klen)
{
	struct ctx c;
	int rc;

	if ((rc = ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0)
		return fail(&c, rc);
	uint64_t hash = shmstat__hash(key, klen);
	uint32_t s = stripe_of(&c, home_of(&c, hash));
	int32_t me = (int32_t)getpid();
	if ((rc = stripe_lock(&c, s, false)) < 0)
		return fail(&c, rc);
	rc = SHMSTAT_ENOTFOUND;
	for (int i = 0; i < NLEASES; i++) {
		struct cache_lease *l = &c.st[s].lease[i];
		if (l->pid == me && l->hash == hash) {
			l->pid = 0;
			rc = 0;
		}
	}
	stripe_unlock(&c, s);
	return rc;
}
