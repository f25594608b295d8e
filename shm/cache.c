/*
 * cache.c — the TTL key/value cache in REG_CACHE: the table, its readers
 * and writers. (cache_impl_i.h maps the region and the other cache files.)
 *
 * Owns: the geometry (planned at creation, checked and copied into the
 * handle at attach), the bucket table (versions, slots, the overflow
 * flag), the lock-free readers (get, exists, ttl), the writers (set,
 * delete, expire) and the statistics.
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
 *     or the new one, never a mix. A writer journals the blocks it
 *     publishes and unlinks (cache_repair.c).
 *   - Except an overwrite of the same size class (overwrite_in_place): it
 *     writes over the old value while the bucket's version is odd, so
 *     readers retry; it journals the entry first (j_ovr), and a writer
 *     killed during the copy loses the entry (the repair removes it while
 *     the bucket is still odd): never a torn value, sometimes no value.
 *   - A get of a key whose home block (a segment made with home blocks:
 *     cache_home.c) holds it reads that block first, under the block's
 *     own version; every writer that changes an entry in a home block
 *     makes that version odd before it changes the slot, so the slots
 *     stay the truth.
 *   - Nothing of the region's header is read after attach: the geometry
 *     is the handle's copy (struct cache_geo), and every offset read from
 *     a slot is checked against it (entry_at) before use.
 *   - Statistics live in the caller's row (atomic adds: the threads
 *     sharing a handle share its row); a get writes no line shared with
 *     other processes, except a block's CLOCK bit, and only when it is
 *     not set yet.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache_impl_i.h"

/* ------------------------------------------------------------ test hooks */

static _Atomic uint64_t test_clock_ms;
void (*shmstat__cache_hook)(int stage);

void shmstat__cache_set_clock(uint64_t ms)
{
	atomic_store_explicit(&test_clock_ms, ms, memory_order_relaxed);
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

/*
 * A page holds one largest block when that leaves many pages (1/64 of the
 * region or less); else pages are 1/64 of the region (at least MIN_PAGE)
 * and the large classes' blocks span runs of pages: a large maximum
 * value does not make the pages of small values large too.
 */
static uint64_t page_size_for(uint64_t size, uint64_t max_value)
{
	uint64_t big = align_up(largest_block(max_value), 4096);
	uint64_t cap = pow2_floor(size / 64);

	if (cap < MIN_PAGE)
		cap = MIN_PAGE;
	if (big > cap)
		return cap;
	return big > MIN_PAGE ? big : MIN_PAGE;
}

static uint32_t span_of(uint64_t cs, uint64_t page)
{
	return cs > page ? (uint32_t)((cs + page - 1) / page) : 1;
}

static int plan(uint64_t size, uint64_t max_value, uint32_t home_pct,
		struct cache_hdr *g);

/* The smallest region plan() lays out for max_value (every larger one
 * works too: plan trades buckets for pages), 0 when none can. */
uint64_t shmstat__cache_min_size(uint64_t max_value)
{
	struct cache_hdr g;
	uint64_t lo, hi;

	if (max_value == 0 || max_value > MAX_VALUE_LIMIT)
		return 0;
	hi = 2 * (largest_block(max_value) + 4 * MIN_PAGE) + (1u << 20);
	while (plan(hi, max_value, 0, &g) != 0)
		hi += hi / 4;
	lo = hi / 2;
	while (hi - lo > 4096) { /* plan succeeds at hi, not (yet) at lo */
		uint64_t mid = lo + (hi - lo) / 2;
		if (plan(mid, max_value, 0, &g) == 0)
			hi = mid;
		else
			lo = mid;
	}
	return align_up(hi, 4096);
}

/* What validate checks (on its one copy of the header): the geometry is
 * sane and every table lies inside a region of `size` bytes. */
static bool geo_ok(const struct cache_hdr *g, uint64_t size)
{
	uint64_t end;

	if (g->region_size != size || g->nclasses == 0 ||
	    g->nclasses > CACHE_MAX_CLASSES || !is_pow2(g->nbuckets) ||
	    g->nbuckets < GROUP || !is_pow2(g->nstripes) ||
	    g->nstripes > MAX_STRIPES ||
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
	if (g->npages > size / g->page_size)
		return false;
	end = g->data_off + (uint64_t)g->npages * g->page_size;
	if (end > size || end > OFF_MASK)
		return false;
	/* Home blocks: none, or 1 to CACHE_HOME_PER_GROUP per bucket group
	 * (so the keys of a home block have their home bucket in one group,
	 * of one stripe), after their tags, after the pages. */
	if (!g->nhome)
		return g->home_off == 0;
	if (g->nhome % (g->nbuckets / GROUP) ||
	    g->nhome / (g->nbuckets / GROUP) > CACHE_HOME_PER_GROUP ||
	    g->home_tags_off < end || g->home_tags_off % 64 ||
	    g->home_tags_off > size ||
	    (size - g->home_tags_off) / 2 < g->nhome ||
	    g->home_off < g->home_tags_off + (uint64_t)g->nhome * 2 ||
	    g->home_off % HOME_BLOCK || g->home_off > size ||
	    (size - g->home_off) / HOME_BLOCK < g->nhome ||
	    g->home_off + (uint64_t)g->nhome * HOME_BLOCK > OFF_MASK)
		return false;
	return true;
}

static bool classes_ok(const struct cache_hdr *g)
{
	for (uint32_t i = 0; i < g->nclasses; i++) {
		uint64_t s = g->class_size[i];
		if (s < MIN_BLOCK || s % BLOCK_ALIGN ||
		    (i && s <= g->class_size[i - 1]))
			return false;
	}
	uint64_t last = g->class_size[g->nclasses - 1];
	return last >= largest_block(g->max_value) &&
	       last <= largest_block(g->max_value) + MIN_BLOCK &&
	       span_of(last, g->page_size) + CACHE_MIN_PAGES <= g->npages;
}

static int plan(uint64_t size, uint64_t max_value, uint32_t home_pct,
		struct cache_hdr *g)
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
	g->page_size = page_size_for(size, max_value);
	/* Classes at most 1.25 apart, so an entry wastes at most a quarter
	 * of its block; the last class holds the largest entry. And on a
	 * grid that keeps blocks in the fewest cache lines: 64, 80, 96,
	 * then steps of 32 (a block 32 bytes off a line holds an entry of
	 * more than size - 32 bytes in as few lines as an aligned one
	 * would), then from 256 multiples of 64 (every block starts a
	 * line). So a hit reads no line more than the entry needs. */
	while (s < big && n < CACHE_MAX_CLASSES - 1) {
		g->class_size[n++] = s;
		s = s < 96 ? s + 16 : s < 256 ? s + 32 : s + s / 4 / 64 * 64;
	}
	g->class_size[n++] = big;
	g->nclasses = n;
	if (size < g->page_size + CACHE_HDR_SIZE)
		return SHMSTAT_ENOSPC;
	/* One bucket (7 slots) per 384 bytes: at a typical entry of ~128
	 * bytes the table is about half full, so a home rarely overflows. */
	uint64_t nb = pow2_floor((size - g->page_size) / 384), np = 0;
	if (nb < 16)
		nb = 16;
	if (nb > (UINT64_C(1) << 31))
		nb = UINT64_C(1) << 31;
	/* The largest value's run and CACHE_MIN_PAGES more: fewer buckets
	 * when needed. */
	uint64_t want = span_of(big, g->page_size) + CACHE_MIN_PAGES;
	for (;; nb /= 2) {
		uint64_t ns = pow2_floor(size / (32u << 10));
		if (ns < 16)
			ns = 16;
		if (ns > MAX_STRIPES)
			ns = MAX_STRIPES;
		if (ns > nb / GROUP)
			ns = nb / GROUP;
		g->nbuckets = (uint32_t)nb;
		g->nstripes = (uint32_t)ns;
		g->stripes_off = CACHE_HDR_SIZE;
		g->classes_off = g->stripes_off + ns * 128;
		g->buckets_off = g->classes_off + (uint64_t)n * 128;
		g->pages_off = g->buckets_off + nb * 64;
		off = g->pages_off;
		np = 0;
		if (off + 64 + g->page_size + 32 <= size) {
			np = (size - off - 64) / (g->page_size + 32);
			while (np > 0 && align_up(off + np * 32, 64) +
						     np * g->page_size >
					     size)
				np--;
		}
		if (np >= want || nb <= 16)
			break;
	}
	if (np < want || np > UINT32_MAX - 1)
		return SHMSTAT_ENOSPC;
	g->data_off = align_up(off + np * 32, 64);
	/* Home blocks: at most home_pct percent of the value memory, in a
	 * whole number of them per bucket group (at most
	 * CACHE_HOME_PER_GROUP, and fewer than 2^32 in all), taken from the
	 * end of the pages; fewer when the pages left would not hold the
	 * largest value; none when not one per group fits. */
	if (home_pct) {
		uint64_t ng = g->nbuckets / GROUP;
		uint64_t per = np * g->page_size / 100 * home_pct / HOME_BLOCK /
			       ng;
		if (per > CACHE_HOME_PER_GROUP)
			per = CACHE_HOME_PER_GROUP;
		if (per > UINT32_MAX / ng)
			per = UINT32_MAX / ng;
		for (; per >= 1; per--) {
			uint64_t nh = per * ng;
			/* The tags, the blocks on a 128-byte grid. */
			uint64_t bytes = nh * 2 + HOME_BLOCK + nh * HOME_BLOCK;
			uint64_t take = (bytes + g->page_size - 1) / g->page_size;
			if (take < np && np - take >= want) {
				np -= take;
				g->nhome = (uint32_t)nh;
				g->home_tags_off = g->data_off + np * g->page_size;
				g->home_off = align_up(g->home_tags_off + nh * 2,
						       HOME_BLOCK);
				break;
			}
		}
	}
	g->npages = (uint32_t)np;
	return geo_ok(g, size) && classes_ok(g) ? 0 : SHMSTAT_ENOSPC;
}

static void geo_copy(const struct cache_hdr *h, unsigned char *base,
		     struct cache_geo *g)
{
	memset(g, 0, sizeof(*g));
	g->bmask = h->nbuckets - 1;
	g->smask = h->nstripes - 1;
	g->base = base;
	g->hdr = (struct cache_hdr *)(void *)base;
	g->st = (void *)(base + h->stripes_off);
	g->cl = (void *)(base + h->classes_off);
	g->bk = (void *)(base + h->buckets_off);
	g->pg = (void *)(base + h->pages_off);
	g->nbuckets = h->nbuckets;
	g->nstripes = h->nstripes;
	g->nclasses = h->nclasses;
	g->npages = h->npages;
	g->region_size = h->region_size;
	g->max_value = h->max_value;
	g->page_size = h->page_size;
	g->stripes_off = h->stripes_off;
	g->classes_off = h->classes_off;
	g->buckets_off = h->buckets_off;
	g->pages_off = h->pages_off;
	g->data_off = h->data_off;
	g->data_end = h->data_off + (uint64_t)h->npages * h->page_size;
	if (h->nhome) {
		g->nhome = h->nhome;
		g->hpg = h->nhome / (h->nbuckets / GROUP);
		g->home_off = h->home_off;
		g->home_tags = (_Atomic uint16_t *)(void *)(base +
							    h->home_tags_off);
		g->data_end = h->home_off + (uint64_t)h->nhome * HOME_BLOCK;
	}
	g->data_span = g->data_end - g->data_off - ENT_HDR; /* geo_ok: > 0 */
	if (is_pow2(h->page_size))
		g->page_shift = (uint32_t)__builtin_ctzll(h->page_size);
	for (uint32_t i = 0; i < h->nclasses; i++) {
		g->class_size[i] = h->class_size[i];
		uint64_t cs = h->class_size[i];
		g->class_blocks[i] =
			cs > h->page_size ? 1 : (uint32_t)(h->page_size / cs);
		g->class_span[i] = span_of(cs, h->page_size);
	}
	/* The smallest class of at least 16 * q bytes (classes are
	 * multiples of 16, so that is the class of every n in the step). */
	for (uint32_t q = 0, i = 0; q <= CACHE_CLASS_QUICK; q++) {
		while (i + 1 < h->nclasses && h->class_size[i] < 16u * q)
			i++;
		g->class_quick[q] = (uint8_t)i;
	}
	g->ok = true;
}


static void ctx_of(const struct cache_geo *g, struct ctx *c)
{
	c->g = g;
	c->deadline = 0;
	c->unfreed = 0;
	c->removed = 0;
	c->nskipped = 0;
}

int shmstat__cache_init(unsigned char *region, uint64_t size,
			uint64_t max_value, uint32_t home_pct)
{
	struct cache_hdr g;
	struct cache_geo geo;
	struct ctx c;
	int rc = plan(size, max_value, home_pct, &g);

	if (rc < 0)
		return rc;
	memcpy(region, &g, sizeof(g));
	geo_copy(&g, region, &geo);
	ctx_of(&geo, &c);
	cache__lock_init(&c.g->hdr->pool);
	for (uint32_t i = 0; i < g.nstripes; i++)
		cache__lock_init(&c.g->st[i].lk);
	for (uint32_t i = 0; i < g.nclasses; i++)
		cache__lock_init(&c.g->cl[i].lk);
	cache__init_pages(&c);
	return 0;
}

uint32_t shmstat__cache_format(void)
{
	return CACHE_VERSION;
}

int shmstat__cache_validate(const unsigned char *region, uint64_t size,
			    uint64_t max_value, struct cache_geo *geo,
			    uint32_t *version)
{
	struct cache_hdr g;

	memset(geo, 0, sizeof(*geo));
	*version = 0;
	if (size < CACHE_HDR_SIZE)
		return SHMSTAT_ECORRUPT;
	/* One copy, then only the copy is checked and used: the region may
	 * change under us while we look. */
	memcpy(&g, region, sizeof(g));
	*version = g.version;
	/* Another build's cache: named as such, not as corrupt. */
	if (g.magic == CACHE_MAGIC && g.version != CACHE_VERSION)
		return SHMSTAT_EVERSION;
	if (g.magic != CACHE_MAGIC ||
	    g.hdr_size != CACHE_HDR_SIZE || g.max_value != max_value ||
	    !geo_ok(&g, size) || !classes_ok(&g))
		return SHMSTAT_ECORRUPT;
	geo_copy(&g, (unsigned char *)(uintptr_t)region, geo);
	return 0;
}

/* ------------------------------------------------------------------ ctx */

/* The handle's geometry, read once at attach: nothing here reads the
 * region's header. */
static inline __attribute__((always_inline)) int
ctx_peek(struct shmstat *h, struct ctx *c)
{
	if (!h)
		return SHMSTAT_EINVAL;
	if (__builtin_expect(!h->cache || !h->cache_geo.ok, 0))
		return shmstat__err(h, SHMSTAT_ECORRUPT,
				    "segment '%s': the cache header is corrupt",
				    h->name);
	ctx_of(&h->cache_geo, c);
	c->h = h;
	return 0;
}

/*
 * ctx_peek, and the first cache call of a handle claims its row. A
 * read-only handle never has a row: a call that writes (rdonly_ok false)
 * gets ERDONLY; one that only reads (get, exists, ttl, iter: rdonly_ok)
 * goes on, and then writes nothing (no use bit, no statistics, no lazy
 * expiry, no repair of a stuck bucket: the mapping has no write access,
 * a write would fault). Both cases are in the branch a handle with a row
 * never takes, so they cost the others nothing.
 */
static inline __attribute__((always_inline)) int
ctx_open(struct shmstat *h, struct ctx *c, bool rdonly_ok)
{
	int rc = ctx_peek(h, c);

	if (__builtin_expect(rc == 0 && !h->row.cells, 0)) {
		if (h->rdonly)
			return rdonly_ok ? 0
					 : shmstat__err(h, SHMSTAT_ERDONLY,
							"segment '%s' is open "
							"read-only",
							h->name);
		(void)shmstat__row_claim(h);
	}
	return rc;
}

static inline __attribute__((always_inline)) int
ctx_load(struct shmstat *h, struct ctx *c)
{
	return ctx_open(h, c, false);
}

static inline __attribute__((always_inline)) int
ctx_read(struct shmstat *h, struct ctx *c)
{
	return ctx_open(h, c, true);
}

int cache__ctx_load(struct shmstat *h, struct ctx *c)
{
	return ctx_load(h, c);
}

int cache__ctx_read(struct shmstat *h, struct ctx *c)
{
	return ctx_read(h, c);
}

/*
 * Count into the handle's row. Unlike a counter cell (one writer, plain
 * load + store), a row's cache statistics may be written by every thread
 * that shares the handle, so they are added atomically: the line is this
 * process's own, so the lock prefix costs a few ns and no sharing, and a
 * process that uses the cache from many threads still takes one row
 * (counting plainly from the owner thread, as counters do, would give the
 * others a second row: tried, and it ran out of rows where processes had
 * one each, for a gain within the benchmark's noise).
 */
static inline __attribute__((always_inline)) void
stat_add(struct ctx *c, enum row_stat s, uint64_t n)
{
	int32_t w = c->h->slot;

	if (w >= 0 && (uint32_t)w < c->h->max_workers) {
		atomic_fetch_add_explicit(
			&shmstat__row_stats(c->h, (uint32_t)w)[s], n,
			memory_order_relaxed);
	} else if (!c->h->rdonly) {
		/* No row of its own (every row held by a live process): the
		 * segment's overflow row, atomically, as its counters do, so
		 * every process sees the counts and none is lost at exit. A
		 * read-only handle counts nothing. */
		atomic_fetch_add_explicit(
			&shmstat__row_stats(c->h,
					    ROW_OVERFLOW(c->h->max_workers))[s],
			n, memory_order_relaxed);
	}
}

void cache__stat_add(struct ctx *c, enum row_stat s, uint64_t n)
{
	stat_add(c, s, n);
}

int cache__fail(struct ctx *c, int rc)
{
	/* Misses and unmet NX / XX conditions are answers, not errors, and a
	 * caller's bad argument (a key or value out of bounds) is the
	 * caller's: errors (and health) count what went wrong in the cache. */
	if (rc != SHMSTAT_ENOTFOUND && rc != SHMSTAT_EKEYEXISTS &&
	    rc != SHMSTAT_ERANGE && rc != SHMSTAT_EINVAL &&
	    rc != SHMSTAT_ETOOBIG)
		cache__stat_add(c, RS_CACHE_ERRORS, 1);
	return rc;
}

/* ---------------------------------------------------------------- buckets */

/*
 * The key test both the lock-free reader and the writers apply to the
 * entry e at off: 1 it is key's entry, 0 it is not, -1 it is key's entry
 * but its value length is corrupt (above the maximum, or past the data
 * area). Every length is checked before the key bytes are compared.
 */
static inline __attribute__((always_inline)) int
entry_ok(const struct ctx *c, const struct cache_entry *e,
		    uint64_t off, const void *key, size_t klen, uint64_t hash,
		    uint32_t vl)
{
	if (e->key_len != klen || e->hash != hash)
		return 0;
	/* One bounds check when the whole entry fits (the common case). */
	if (__builtin_expect(entry_fits(c, off, klen, vl), 1))
		return key_eq(e->data, key, klen) ? 1 : 0;
	if (!entry_fits(c, off, klen, 0) || !key_eq(e->data, key, klen))
		return 0;
	return -1;
}

/* Find key in its group (w->corrupt: found, with a corrupt value
 * length). Stripe lock held. */
bool cache__find_locked(struct ctx *c, const void *key, size_t klen,
			uint64_t hash, struct where *w)
{
	uint32_t home = home_of(c, hash), g0 = home & ~(GROUP - 1);
	uint16_t tag = hash_tag(hash);

	for (uint32_t i = 0; i < GROUP; i++) {
		uint32_t bi = i == 0 ? home : g0 + ((home - g0 + i) % GROUP);
		struct cache_bucket *b = &c->g->bk[bi];
		for (int k = 0; k < WAYS; k++) {
			uint64_t s = atomic_load_explicit(&b->slot[k],
							  memory_order_relaxed);
			struct cache_entry *e;
			if (slot_tag(s) != tag || !(e = entry_at(c, slot_off(s))))
				continue;
			/* A writer goes on to the entry's second line and to
			 * its page's header (an overwrite in place checks
			 * the class there): ask for both while the key is
			 * compared. */
			__builtin_prefetch((const char *)e + 64, 1);
			__builtin_prefetch((const void *)(
				(uintptr_t)c->g->pg +
				(uintptr_t)page_of(c, slot_off(s) -
							     c->g->data_off) *
					sizeof(struct cache_page)));
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
void cache__remove_locked(struct ctx *c, uint32_t s, const struct where *w)
{
	c->removed++;
	struct cache_bucket *b = &c->g->bk[w->bucket];
	_Atomic uint64_t *j = &c->g->st[s].lk.j_old;

	atomic_store_explicit(j, jword(w->off, w->e->gen), memory_order_relaxed);
	if (is_home(c, w->off))
		cache__home_begin(w->e); /* odd before the slot goes */
	uint32_t v = ver_begin(b);
	atomic_store_explicit(&b->slot[w->way], 0, memory_order_relaxed);
	ver_end(b, v);
	/* The record goes before the free, so it never outlives the block
	 * (a page emptied and given to another class could otherwise put a
	 * stranger's block, with a generation seeded from old bytes, under
	 * it). Dying in between leaves a LIVE, unreferenced block: garbage
	 * that evict_block and a flush reclaim. */
	atomic_store_explicit(j, 0, memory_order_relaxed);
	cache__block_free(c, w->off);
}

/* Is the block at off referenced from a slot of its key's group? */
bool cache__referenced(struct ctx *c, uint64_t off, uint64_t hash,
		       struct where *w)
{
	uint32_t g0 = home_of(c, hash) & ~(GROUP - 1);

	for (uint32_t i = 0; i < GROUP; i++)
		for (int k = 0; k < WAYS; k++) {
			uint64_t s = atomic_load_explicit(&c->g->bk[g0 + i].slot[k],
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

/* --------------------------------------------------------------- readers */

/*
 * One consistent look at bucket b for key: 1 found (value copied when it
 * fits buflen), 0 absent, 2 found with a corrupt value length (entry_ok),
 * -1 the bucket changed or is being written.
 * Lock-free: the reads of the entry race with writers by design and are
 * validated by the version; every offset and length is bounds-checked
 * before it is used, so a racing or corrupt entry cannot make us read
 * outside the region or write outside buf.
 */
static inline __attribute__((always_inline)) int
bucket_read(struct ctx *c, struct cache_bucket *b, uint16_t tag,
		       const void *key, size_t klen, uint64_t hash, void *buf,
		       size_t buflen, struct rd *r)
{
	uint32_t v1 = atomic_load_explicit(&b->ver, memory_order_acquire);
	int res = 0;


	if (v1 & 1)
		return -1;
	/* A branch per way, not a mask of the ways computed without one:
	 * the prediction lets the CPU load the entry while the tags are
	 * still compared, where a mask puts its computation between the
	 * bucket's load and the entry's (measured: a hot hit 20 ns against
	 * 25 with an SSE2 mask). An empty slot has tag 0, which no key has. */
	for (int k = 0; k < WAYS; k++) {
		uint64_t s = atomic_load_explicit(&b->slot[k],
						  memory_order_relaxed);
		struct cache_entry *e;
		if (slot_tag(s) != tag || !(e = entry_at(c, slot_off(s))))
			continue;
		/* The header line is being loaded: ask for the lines of the
		 * key and of (the first 64 bytes of) the value at once,
		 * rather than one miss after the other. */
		__builtin_prefetch((const char *)e + 64);
		if (((uintptr_t)e & 63) + ENT_HDR + klen + 63 >= 128)
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
			value_copy(buf, e->data + klen, vl);
		res = 1;
		break;
	}
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&b->ver, memory_order_relaxed) != v1)
		return -1;
	return res;
}

static inline __attribute__((always_inline)) int
group_read(struct ctx *c, const void *key, size_t klen,
		      uint64_t hash, void *buf, size_t buflen, struct rd *r)
{
	uint32_t home = home_of(c, hash), g0 = home & ~(GROUP - 1);
	uint16_t tag = hash_tag(hash);
	int rc = bucket_read(c, &c->g->bk[home], tag, key, klen, hash, buf,
			     buflen, r);

	if (rc != 0 || !(atomic_load_explicit(&c->g->bk[home].flags,
					      memory_order_relaxed) &
			 BKT_OVERFLOW))
		return rc;
	for (uint32_t i = 1; i < GROUP; i++) {
		rc = bucket_read(c, &c->g->bk[g0 + (home - g0 + i) % GROUP], tag,
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
void cache__unstick(struct ctx *c, uint32_t bucket)
{
	uint32_t s = stripe_of(c, bucket), g0 = bucket & ~(GROUP - 1);

	if (c->h->rdonly || cache__stripe_lock(c, s, true) < 0)
		return;
	for (uint32_t i = 0; i < GROUP; i++) {
		struct cache_bucket *b = &c->g->bk[g0 + i];
		uint32_t v = atomic_load_explicit(&b->ver, memory_order_relaxed);
		if (v & 1)
			atomic_store_explicit(&b->ver, v + 1,
					      memory_order_release);
	}
	cache__stripe_unlock(c, s);
}

/*
 * Look key up without a lock: 1 found, 0 absent, 2 its entry is corrupt,
 * -1 its bucket stayed busy past the call's deadline (a stopped writer).
 * A bucket that stays odd may belong to a writer that died: a trylock
 * repairs it (no wait).
 */
static __attribute__((noinline)) int
lookup_slow(struct ctx *c, const void *key, size_t klen, uint64_t hash,
	    void *buf, size_t buflen, struct rd *r)
{
	for (uint32_t spin = 0;; spin++) {
		int rc = group_read(c, key, klen, hash, buf, buflen, r);
		if (rc >= 0)
			return rc;
		if (spin < 64)
			continue;
		cache__unstick(c, home_of(c, hash));
		if (shmstat__now_mono_ns() > cache__deadline(c))
			return -1;
		sched_yield();
	}
}

/* The first look inline (the hot path of a get), the retries apart. */
static inline __attribute__((always_inline)) int
lookup(struct ctx *c, const void *key, size_t klen, uint64_t hash, void *buf,
       size_t buflen, struct rd *r)
{
	int rc = group_read(c, key, klen, hash, buf, buflen, r);

	return __builtin_expect(rc >= 0, 1)
		       ? rc
		       : lookup_slow(c, key, klen, hash, buf, buflen, r);
}

int cache__lookup(struct ctx *c, const void *key, size_t klen, uint64_t hash,
		  void *buf, size_t buflen, struct rd *r)
{
	return lookup(c, key, klen, hash, buf, buflen, r);
}

/* What a reader returns for lookup's 2. */
int cache__corrupt_entry(struct ctx *c, const struct rd *r)
{
	return cache__fail(c, shmstat__err(c->h, SHMSTAT_ECORRUPT,
				    "cache entry of this key is corrupt (value "
				    "length %u): a set or delete replaces it",
				    r->vlen));
}

static inline __attribute__((always_inline)) int
check_key(struct shmstat *h, const void *key, size_t klen)
{
	if (!key)
		return shmstat__err(h, SHMSTAT_EINVAL, "cache key is NULL");
	if (klen == 0 || klen > SHMSTAT_CACHE_KEY_MAX)
		return shmstat__err(h, SHMSTAT_EINVAL,
				    "cache key of %zu bytes: keys are 1 to %u "
				    "bytes",
				    klen, SHMSTAT_CACHE_KEY_MAX);
	return 0;
}

int cache__check_key(struct shmstat *h, const void *key, size_t klen)
{
	return check_key(h, key, klen);
}

/* Drop key if it is (still) expired; never waits for the lock. */
static void expire_lazily(struct ctx *c, const void *key, size_t klen,
			  uint64_t hash)
{
	uint32_t s = stripe_of(c, home_of(c, hash));
	struct where w;
	uint64_t now = 0;

	if (cache__stripe_lock(c, s, true) < 0)
		return;
	if (cache__find_locked(c, key, klen, hash, &w) && !w.corrupt &&
	    expired(atomic_load_explicit(&w.e->expires, memory_order_relaxed),
		    &now)) {
		cache__remove_locked(c, s, &w);
		cache__stat_add(c, RS_CACHE_EXPIRATIONS, 1);
	}
	cache__stripe_unlock(c, s);
}

/*
 * A get that is not the common hit: the whole way (group, retries, a
 * corrupt or expired entry, a buffer too small, misses, a handle without
 * a row or read-only). hash: the key's, when get_hit computed it, else 0
 * (then it is computed here, once the key is known to be valid).
 */
static __attribute__((noinline)) int
get_full(shmstat_t *h, const void *key, size_t klen, void *buf,
	 size_t buflen, size_t *vlen, uint64_t hash)
{
	struct ctx c;
	struct rd r;
	uint64_t now = 0;
	int rc;

	cache_hook(CACHE_HOOK_GET_FULL);
	if ((rc = ctx_read(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0 || (!buf && buflen))
		return cache__fail(&c, rc < 0 ? rc : SHMSTAT_EINVAL);
	if (!hash)
		hash = cache_hash(key, klen);
	rc = lookup(&c, key, klen, hash, buf, buflen, &r);
	if (rc == 2)
		return cache__corrupt_entry(&c, &r);
	if (rc == 1 && expired(r.expires, &now)) {
		if (!h->rdonly)
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
	if (!atomic_load_explicit(&r.e->ref, memory_order_relaxed) &&
	    !h->rdonly)
		atomic_store_explicit(&r.e->ref, 1, memory_order_relaxed);
	if (vlen)
		*vlen = r.vlen;
	/* A hit is a value returned: a buffer too small counts nothing (the
	 * caller's retry with a larger one counts the hit). */
	if (r.vlen > buflen)
		return shmstat__err(h, SHMSTAT_ERANGE,
				    "cache value of %u bytes does not fit a "
				    "buffer of %zu",
				    r.vlen, buflen);
	stat_add(&c, RS_CACHE_HITS, 1);
	return 0;
}

/*
 * A hit in the key's home block (cache_home.c), lock-free: an even version
 * before and after, the block LIVE, the key's length, hash and bytes, a
 * value that fits the block and buf, not expired; then the use bit and
 * the hit counted as get_hit does. 0 a hit; 1 anything else, having
 * changed nothing but buf (the bucket path decides: the slots are the
 * truth, the home a shortcut to what they name).
 */
static inline __attribute__((always_inline)) int
get_home(const struct cache_geo *g, unsigned char *cells, const void *key,
	 size_t klen, uint64_t hash, uint64_t hi, void *buf, size_t buflen,
	 size_t *vlen)
{
	struct cache_entry *x = (struct cache_entry *)(void *)(g->base +
							       g->home_off +
							       hi * HOME_BLOCK);
	uint32_t v1 = atomic_load_explicit(&x->hver, memory_order_acquire);
	uint32_t vl = x->val_len;

	if ((v1 & 1) ||
	    atomic_load_explicit(&x->state, memory_order_relaxed) != ENT_LIVE ||
	    x->key_len != klen || x->hash != hash || vl > buflen ||
	    klen + vl > HOME_BLOCK - ENT_HDR || vl > g->max_value ||
	    !key_eq(x->data, key, klen))
		return 1;
	value_copy(buf, x->data + klen, vl);
	uint64_t exp = atomic_load_explicit(&x->expires, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&x->hver, memory_order_relaxed) != v1)
		return 1;
	uint64_t now = 0;
	if (exp && expired(exp, &now)) /* lazily removed by get_full */
		return 1;
	if (!atomic_load_explicit(&x->ref, memory_order_relaxed))
		atomic_store_explicit(&x->ref, 1, memory_order_relaxed);
	_Atomic uint64_t *st = (_Atomic uint64_t *)(void *)(cells -
							     ROW_HDR_BYTES);
	atomic_fetch_add_explicit(&st[RS_CACHE_HITS], 1, memory_order_relaxed);
	if (vlen)
		*vlen = vl;
	return 0;
}

/*
 * The common hit, in as few instructions as it can be. At a million keys
 * a get's time is set by how many gets the CPU keeps in flight, and each
 * instruction of a hit shows in it (doc/cache.md, "Where a hit's time
 * goes"). This path serves a hit of the key's home bucket by a handle
 * that has its row, with the checks of bucket_read and entry_ok: an even
 * version before and after; a slot's offset inside the data area; the
 * entry's key length and hash the key's; a possible value length; key and
 * value inside the data area before a byte of them is read. Then the use
 * bit and the statistics as get_full sets them. Anything else (no row
 * yet, a read-only handle, a bad argument or no buffer, a busy bucket, a
 * miss in an overflowed home, an offset or length out of bounds, an
 * expired entry, a buffer too small) returns 1 having changed nothing but
 * buf (and *hashp, the key's hash once computed), and get_full goes on
 * from there. A key absent from a home that never overflowed is a miss
 * here too (SHMSTAT_ENOTFOUND, counted). Lock-free, as bucket_read: any
 * number of threads and processes at once, beside the writers.
 */
static inline __attribute__((always_inline)) int
get_hit(shmstat_t *h, const void *key, size_t klen, void *buf,
	size_t buflen, size_t *vlen, uint64_t *hashp)
{
	const struct cache_geo *g = &h->cache_geo;
	unsigned char *cells = (unsigned char *)__atomic_load_n(&h->row.cells,
							       __ATOMIC_ACQUIRE);

	if (__builtin_expect(!cells || !g->ok || !key || !buf ||
				     klen - 1 >= SHMSTAT_CACHE_KEY_MAX,
			     0))
		return 1;
	uint64_t hash = cache_hash(key, klen);
	*hashp = hash;
	struct cache_bucket *b = &g->bk[(uint32_t)hash & g->bmask];
	/* A key whose home block's tag is its own looks there first, the
	 * bucket's line fetched meanwhile (a miss there finds it on its
	 * way); any other goes to its bucket without touching the block. */
	uint64_t hi;
	if (g->nhome &&
	    atomic_load_explicit(&g->home_tags[hi = shmstat__cache_home_index(
						       g, hash)],
				 memory_order_relaxed) == hash_tag(hash)) {
		__builtin_prefetch(b);
		int rc = get_home(g, cells, key, klen, hash, hi, buf, buflen,
				  vlen);
		if (rc <= 0)
			return rc;
	}
	uint16_t tag = hash_tag(hash);
	uint32_t v1 = atomic_load_explicit(&b->ver, memory_order_acquire);
	struct cache_entry *e = NULL;
	uint64_t exp = 0;
	uint32_t vl = 0;

	if (v1 & 1)
		return 1;
	for (int k = 0; k < WAYS; k++) {
		uint64_t s = atomic_load_explicit(&b->slot[k],
						  memory_order_relaxed);
		if (__builtin_expect(slot_tag(s) != tag, 1))
			continue;
		uint64_t off = slot_off(s), rel = off - g->data_off;
		struct cache_entry *x = (struct cache_entry *)(void *)(g->base + off);
		if (rel > g->data_span || rel % BLOCK_ALIGN)
			return 1;
		vl = x->val_len;
		if (x->key_len != klen || x->hash != hash)
			continue;
		/* A possible value length (else ECORRUPT, get_full says), key
		 * and value inside the data area (no sum wraps: rel < 2^40,
		 * klen <= 250, vl < 2^32), the value inside buf. */
		if (vl > buflen || vl > g->max_value ||
		    rel + klen + vl > g->data_span)
			return 1;
		if (!key_eq(x->data, key, klen))
			continue;
		e = x;
		break;
	}
	if (e) {
		value_copy(buf, e->data + klen, vl);
		exp = atomic_load_explicit(&e->expires, memory_order_relaxed);
	}
	uint32_t flags = atomic_load_explicit(&b->flags, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&b->ver, memory_order_relaxed) != v1)
		return 1;
	/* The row's statistics sit in its header, before its cells (the
	 * handle's own row, or the overflow row: as stat_add). */
	_Atomic uint64_t *st = (_Atomic uint64_t *)(void *)(cells -
							     ROW_HDR_BYTES);
	if (!e) {
		/* Not in a home that never overflowed: absent. */
		if (flags & BKT_OVERFLOW)
			return 1;
		atomic_fetch_add_explicit(&st[RS_CACHE_MISSES], 1,
					  memory_order_relaxed);
		return SHMSTAT_ENOTFOUND;
	}
	uint64_t now = 0;
	if (exp && expired(exp, &now)) /* lazily removed there */
		return 1;
	if (!atomic_load_explicit(&e->ref, memory_order_relaxed))
		atomic_store_explicit(&e->ref, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&st[RS_CACHE_HITS], 1, memory_order_relaxed);
	if (vlen)
		*vlen = vl;
	return 0;
}

int shmstat_cache_get(shmstat_t *h, const void *key, size_t klen, void *buf,
		      size_t buflen, size_t *vlen)
{
	uint64_t hash = 0; /* a key that hashes to 0 is hashed twice */
	int rc = h ? get_hit(h, key, klen, buf, buflen, vlen, &hash) : 1;

	return rc <= 0 ? rc : get_full(h, key, klen, buf, buflen, vlen, hash);
}

int shmstat_cache_exists(shmstat_t *h, const void *key, size_t klen)
{
	struct ctx c;
	struct rd r;
	uint64_t now = 0;
	int rc;

	if ((rc = ctx_read(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0)
		return cache__fail(&c, rc);
	rc = lookup(&c, key, klen, cache_hash(key, klen), NULL, 0, &r);
	if (rc == 2)
		return cache__corrupt_entry(&c, &r);
	return rc == 1 && !expired(r.expires, &now);
}

int shmstat_cache_ttl(shmstat_t *h, const void *key, size_t klen,
		      int64_t *ttl_ms)
{
	struct ctx c;
	struct rd r;
	uint64_t now = 0;
	int rc;

	if ((rc = ctx_read(h, &c)) < 0)
		return rc;
	if ((rc = check_key(h, key, klen)) < 0 || !ttl_ms)
		return cache__fail(&c, rc < 0 ? rc : SHMSTAT_EINVAL);
	rc = lookup(&c, key, klen, cache_hash(key, klen), NULL, 0, &r);
	if (rc == 2)
		return cache__corrupt_entry(&c, &r);
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

uint64_t cache__expiry(uint64_t ttl_ms)
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
			uint64_t sl = atomic_load_explicit(&c->g->bk[b].slot[k],
							   memory_order_relaxed);
			struct cache_entry *e = sl ? entry_at(c, slot_off(sl)) : NULL;
			if (!sl || !e) {
				if (sl) /* corrupt slot: reclaim the way */
					atomic_store_explicit(&c->g->bk[b].slot[k],
							      0,
							      memory_order_relaxed);
				if (i)
					atomic_fetch_or_explicit(
						&c->g->bk[home].flags,
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
	cache__remove_locked(c, s, &victim);
	cache__stat_add(c, RS_CACHE_EVICTIONS, 1);
	if (victim.bucket != home)
		atomic_fetch_or_explicit(&c->g->bk[home].flags, BKT_OVERFLOW,
					 memory_order_relaxed);
	*bi = victim.bucket;
	*way = victim.way;
	return true;
}

/*
 * Write the value of the entry at w over its old value (stripe s held; the
 * block is of the new value's class, so it fits). Readers of the bucket see
 * its version odd meanwhile and retry, so none returns a mix of the two.
 * A writer killed in here would leave a torn value: the block is journaled
 * in j_ovr first, and the repair of the stripe removes the entry when its
 * bucket is still odd (cache_repair.c). The crash loses that one entry,
 * never shows half of it.
 */
static void overwrite_in_place(struct ctx *c, uint32_t s,
			       const struct where *w, const void *val,
			       size_t vlen, uint64_t exp)
{
	struct cache_lock *lk = &c->g->st[s].lk;
	struct cache_bucket *b = &c->g->bk[w->bucket];
	struct cache_entry *e = w->e;
	unsigned char *dst = e->data + e->key_len;
	_Atomic uint64_t *sl = &b->slot[w->way];
	uint64_t slot = atomic_load_explicit(sl, memory_order_relaxed);

	atomic_store_explicit(&lk->j_ovr, jword(w->off, e->gen),
			      memory_order_relaxed);
	uint32_t v = ver_begin(b); /* and a release fence: the record and
				    * the odd version come first */
	bool home = is_home(c, w->off);
	if (home)
		cache__home_begin(e);
	e->val_len = (uint32_t)vlen;
	atomic_store_explicit(&e->expires, exp, memory_order_relaxed);
	atomic_store_explicit(&e->ref, 0, memory_order_relaxed);
	if (__builtin_expect(shmstat__cache_hook != NULL, 0) && vlen) {
		memcpy(dst, val, vlen / 2);
		cache_hook(CACHE_HOOK_OVERWRITING);
		memcpy(dst + vlen / 2, (const unsigned char *)val + vlen / 2,
		       vlen - vlen / 2);
	} else if (vlen) {
		memcpy(dst, val, vlen);
	}
	if (!(slot & SLOT_TTL) != !exp)
		atomic_store_explicit(sl, exp ? slot | SLOT_TTL : slot & ~SLOT_TTL,
				      memory_order_relaxed);
	if (home)
		cache__home_end(e); /* every byte written: whole again */
	ver_end(b, v);
	/* The record goes after every byte of the value (a fence, not the
	 * version's release store alone, orders a later store). */
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&lk->j_ovr, 0, memory_order_relaxed);
}

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
		return cache__fail(&c, rc);
	if (mode < SHMSTAT_CACHE_ALWAYS || mode > SHMSTAT_CACHE_XX ||
	    (!val && vlen))
		return cache__fail(&c, shmstat__err(h, SHMSTAT_EINVAL,
					     "cache set: bad mode or value"));
	if (vlen > c.g->max_value)
		return cache__fail(&c, shmstat__err(h, SHMSTAT_ETOOBIG,
					     "cache value of %zu bytes is above "
					     "the segment's maximum of %llu",
					     vlen,
					     (unsigned long long)c.g->max_value));
	uint64_t hash = cache_hash(key, klen), exp = ttl_ms ? cache__expiry(ttl_ms) : 0;
	uint32_t s = stripe_of(&c, home_of(&c, hash));
	/* The bucket and the stripe's lease line while the lock is taken:
	 * their misses overlap instead of following each other. */
	__builtin_prefetch(&c.g->bk[home_of(&c, hash)], 1);
	__builtin_prefetch(&c.g->st[s].lease[0], 1);
	if ((rc = stripe_lock_fast(&c, s)) < 0)
		return cache__fail(&c, rc);
	cache_hook(CACHE_HOOK_LOCKED);
	/* A corrupt entry of the key counts as absent and is replaced. */
	bool found = cache__find_locked(&c, key, klen, hash, &w);
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
	uint32_t cls = cache__class_for(&c, ENT_HDR + klen + vlen);
	/* A value of the old one's size class is written over it: no block
	 * to allocate or free, no class lock. */
	if (found && !w.corrupt && ENT_HDR + klen + vlen <= INPLACE_MAX &&
	    block_of_class(&c, w.off, cls)) {
		overwrite_in_place(&c, s, &w, val, vlen, exp);
		goto done;
	}
	/* A small entry goes to its home block when that is free or its
	 * occupant yields it (cache_home.c); else an overwrite of the class
	 * of the stripe's spare takes it: no class lock (cache_slab.c). */
	if (!found || !is_home(&c, w.off))
		off = cache__home_take(&c, s, hash, ENT_HDR + klen + vlen);
	if (!off && found && !w.corrupt)
		off = cache__spare_take(&c, s, cls);
	if (!off &&
	    (rc = cache__alloc_block(&c, s, ENT_HDR + klen + vlen, &off)) < 0) {
		if (rc == SHMSTAT_EFULL)
			shmstat__err(h, rc, "cache full: nothing could be "
				     "evicted for a %zu-byte value", vlen);
		goto out;
	}
	/* Eviction may have taken the old entry: then look again. */
	if (c.removed)
		found = cache__find_locked(&c, key, klen, hash, &w);
	struct cache_entry *e = entry_at(&c, off);
	e->key_len = (uint16_t)klen;
	e->val_len = (uint32_t)vlen;
	e->hash = hash;
	/* A new home entry counts as read once: it keeps its home through
	 * one contest before it is read (cache_home.c). */
	atomic_store_explicit(&e->ref, is_home(&c, off), memory_order_relaxed);
	atomic_store_explicit(&e->expires, exp, memory_order_relaxed);
	memcpy(e->data, key, klen);
	if (vlen)
		memcpy(e->data + klen, val, vlen);
	cache_hook(CACHE_HOOK_WRITTEN);
	if (!found) {
		if (!free_way(&c, s, hash, &w.bucket, &w.way)) {
			/* Written, unreferenced: LIVE makes it garbage that
			 * evict_block reclaims if this free fails. */
			atomic_store_explicit(&e->state, ENT_LIVE,
					      memory_order_release);
			atomic_store_explicit(&c.g->st[s].lk.j_new, 0,
					      memory_order_relaxed);
			cache__block_free(&c, off);
			rc = shmstat__err(h, SHMSTAT_EFULL, "cache bucket "
					  "group full");
			goto out;
		}
	} else {
		atomic_store_explicit(&c.g->st[s].lk.j_old,
				      jword(w.off, w.e->gen),
				      memory_order_relaxed);
		if (is_home(&c, w.off))
			cache__home_begin(w.e); /* odd before the slot moves */
	}
	struct cache_bucket *b = &c.g->bk[w.bucket];
	uint32_t v = ver_begin(b);
	atomic_store_explicit(&b->slot[w.way],
			      make_slot(hash, off) | (exp ? SLOT_TTL : 0),
			      memory_order_relaxed);
	cache_hook(CACHE_HOOK_PUBLISHED);
	ver_end(b, v);
	atomic_store_explicit(&e->state, ENT_LIVE, memory_order_release);
	atomic_store_explicit(&c.g->st[s].lk.j_new, 0, memory_order_relaxed);
	if (is_home(&c, off))
		cache__home_publish(&c, off, hash); /* whole: readers may come */
	/* The old block: the stripe's next spare, or freed (record first,
	 * as in remove_locked). */
	if (found && (w.corrupt || !cache__spare_keep(&c, s, w.off))) {
		atomic_store_explicit(&c.g->st[s].lk.j_old, 0,
				      memory_order_relaxed);
		cache__block_free(&c, w.off);
	}
done:
	cache__lease_drop(&c, s, hash);
	stat_add(&c, RS_CACHE_SETS, 1);
out:
	stripe_unlock_fast(&c, s);
	if (rc < 0)
		return cache__fail(&c, rc);
	/* Now and then a set sweeps a few buckets, so expired entries go
	 * even where nobody reads them and nobody runs a sweep. */
	if ((++nsets & 255) == 0)
		cache__sweep(&c, 64, NULL);
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

	if ((rc = cache__ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = cache__check_key(h, key, klen)) < 0)
		return cache__fail(&c, rc);
	uint64_t hash = cache_hash(key, klen);
	uint32_t s = stripe_of(&c, home_of(&c, hash));
	if ((rc = cache__stripe_lock(&c, s, false)) < 0)
		return cache__fail(&c, rc);
	if (!cache__find_locked(&c, key, klen, hash, &w)) {
		rc = SHMSTAT_ENOTFOUND;
	} else if (w.corrupt) {
		/* Repaired by removal: a delete did what it was asked. */
		cache__remove_locked(&c, s, &w);
		cache__stat_add(&c, RS_CACHE_DELETES, 1);
		rc = fn == do_delete ? 0 : SHMSTAT_ENOTFOUND;
	} else if (expired(atomic_load_explicit(&w.e->expires,
						memory_order_relaxed),
			   &now)) {
		cache__remove_locked(&c, s, &w);
		cache__stat_add(&c, RS_CACHE_EXPIRATIONS, 1);
		rc = SHMSTAT_ENOTFOUND;
	} else {
		rc = fn(&c, s, &w, arg);
	}
	cache__stripe_unlock(&c, s);
	return rc;
}

static int do_delete(struct ctx *c, uint32_t s, struct where *w, uint64_t arg)
{
	(void)arg;
	cache__remove_locked(c, s, w);
	cache__stat_add(c, RS_CACHE_DELETES, 1);
	return 0;
}

static int do_expire(struct ctx *c, uint32_t s, struct where *w, uint64_t ttl)
{
	(void)s;
	/* One atomic store: a reader sees the old deadline or the new. */
	atomic_store_explicit(&w->e->expires, cache__expiry(ttl), memory_order_relaxed);
	/* The slot's TTL hint follows (the sweep looks at hinted slots). */
	_Atomic uint64_t *sl = &c->g->bk[w->bucket].slot[w->way];
	uint64_t v = atomic_load_explicit(sl, memory_order_relaxed);
	atomic_store_explicit(sl, ttl ? v | SLOT_TTL : v & ~SLOT_TTL,
			      memory_order_relaxed);
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

/* ------------------------------------------------------------ statistics */

/* Bytes of value memory in blocks that are not free (live entries, and
 * garbage not reclaimed yet). */
static uint64_t usage(const struct ctx *c)
{
	uint64_t used = 0;

	for (uint32_t p = 0; p < c->g->npages; p++) {
		const struct cache_page *pg = &c->g->pg[p];
		uint32_t cls = __atomic_load_n(&pg->cls, __ATOMIC_RELAXED);
		uint64_t cs = csize(c, cls);
		uint32_t nb = __atomic_load_n(&pg->nblocks, __ATOMIC_RELAXED);
		uint32_t nf = __atomic_load_n(&pg->nfree, __ATOMIC_RELAXED);
		if (!cs || nf > nb || nb > cblocks(c, cls))
			continue;
		uint32_t span = cspan(c, cls);
		used += (uint64_t)(nb - nf) *
			(span > 1 ? span * c->g->page_size : cs);
	}
	return used;
}

/* Live entries: slots that reference a block (expired ones not yet
 * removed included; blocks that no slot references are not entries). */
static uint64_t live_entries(const struct ctx *c)
{
	uint64_t n = 0;

	for (uint64_t b = 0; b <= c->g->bmask; b++)
		for (int k = 0; k < WAYS; k++) {
			uint64_t sl = atomic_load_explicit(&c->g->bk[b].slot[k],
							   memory_order_relaxed);
			n += sl && entry_at(c, slot_off(sl)) != NULL;
		}
	return n;
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
	for (int s = 0; s < RS_COUNT_; s++)
		v[s] = shmstat__row_stat_sum(h, (enum row_stat)s);
	memset(out, 0, sizeof(*out));
	out->hits = v[RS_CACHE_HITS];
	out->misses = v[RS_CACHE_MISSES];
	out->sets = v[RS_CACHE_SETS];
	out->deletes = v[RS_CACHE_DELETES];
	out->evictions = v[RS_CACHE_EVICTIONS];
	out->expirations = v[RS_CACHE_EXPIRATIONS];
	out->errors = v[RS_CACHE_ERRORS];
	out->entries = live_entries(&c);
	out->bytes_used = usage(&c) + cache__home_usage(&c);
	uint64_t total = (uint64_t)c.g->npages * c.g->page_size +
			 (uint64_t)c.g->nhome * HOME_BLOCK;
	out->bytes_free = total > out->bytes_used ? total - out->bytes_used : 0;
	out->max_value = c.g->max_value;
	if (out->hits + out->misses)
		out->hit_rate = (double)out->hits /
				(double)(out->hits + out->misses);
	return 0;
}

uint64_t shmstat__cache_bytes_used(const struct shmstat *h)
{
	struct ctx c = { 0 };
	if (ctx_peek((struct shmstat *)h, &c) < 0)
		return 0;
	return c.g->data_off + usage(&c) + cache__home_usage(&c);
}

