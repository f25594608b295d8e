/*
 * cache_scan.c — walks over the whole table: iter, clear, flush, sweep.
 *
 * Owns: the shared sweep cursor, and what a walk reports when parts of
 * the table were busy.
 *
 * Invariants:
 *   - One deadline per call (the lock bound, 100 ms): a walk waits for
 *     locks and busy buckets at most that long in all. A stripe it cannot
 *     lock by then (or whose bucket stays busy) is skipped for the rest of
 *     the call, without waiting again; the walk goes on with the other
 *     stripes and returns SHMSTAT_EBUSY with what it did counted (*count,
 *     *removed), saying in the error text how many stripes it skipped.
 *   - Walks read keys lock-free (under the bucket's version) and take a
 *     stripe's lock only where there is something to remove.
 *   - Sweeps and flushes visit every stripe's lock in passing (a try), so
 *     a writer that died holding one is repaired even where nobody writes.
 */
#include <sched.h>
#include <string.h>

#include "cache_impl_i.h"

/* A walk starts with no stripe skipped (ctx_load leaves the map alone:
 * a get should not pay for clearing it). */
static void walk_begin(struct ctx *c)
{
	memset(c->skipped, 0, sizeof(c->skipped));
	c->nskipped = 0;
}

static bool skipped(const struct ctx *c, uint32_t s)
{
	return c->skipped[s / 64] >> (s % 64) & 1;
}

static void skip(struct ctx *c, uint32_t s)
{
	if (!skipped(c, s)) {
		c->skipped[s / 64] |= UINT64_C(1) << (s % 64);
		c->nskipped++;
	}
}

/* Keys of one bucket, copied under its version. */
struct bucket_keys {
	int n;
	uint16_t len[WAYS];
	uint64_t expires[WAYS];
	unsigned char key[WAYS][SHMSTAT_CACHE_KEY_MAX];
};

/* 0 copied, -1 the bucket stayed busy past the call's deadline.
 * ttl_only: only the entries whose slot says they have a TTL (a sweep:
 * the others cannot expire, and are not read at all). */
static int bucket_keys(struct ctx *c, struct cache_bucket *b,
		       struct bucket_keys *out, bool ttl_only)
{
	for (uint32_t spin = 0;; spin++) {
		uint32_t v1 = atomic_load_explicit(&b->ver, memory_order_acquire);
		if (!(v1 & 1)) {
			out->n = 0;
			for (int k = 0; k < WAYS; k++) {
				uint64_t s = atomic_load_explicit(
					&b->slot[k], memory_order_relaxed);
				struct cache_entry *e;
				if (!s || (ttl_only && !(s & SLOT_TTL)) ||
				    !(e = entry_at(c, slot_off(s))))
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
		cache__unstick(c, (uint32_t)(b - c->g->bk));
		if (shmstat__now_mono_ns() > cache__deadline(c))
			return -1;
		sched_yield();
	}
}

static int busy(struct ctx *c, const char *what, uint64_t done)
{
	return cache__fail(c, shmstat__err(c->h, SHMSTAT_EBUSY,
					   "cache %s: %u stripe(s) stayed locked "
					   "past the bound and were skipped, "
					   "%u block(s) could not be freed yet; "
					   "%llu done",
					   what, c->nskipped, c->unfreed,
					   (unsigned long long)done));
}

int shmstat_cache_iter(shmstat_t *h, const char *pattern,
		       shmstat_cache_key_fn fn, void *priv)
{
	struct ctx c;
	struct bucket_keys bk;
	uint64_t now = 0, seen = 0;
	int rc;

	if ((rc = cache__ctx_read(h, &c)) < 0)
		return rc;
	if (!fn)
		return SHMSTAT_EINVAL;
	walk_begin(&c);
	for (uint64_t b = 0; b <= c.g->bmask; b++) {
		uint32_t s = stripe_of(&c, (uint32_t)b);
		if (skipped(&c, s))
			continue;
		if (bucket_keys(&c, &c.g->bk[b], &bk, false) < 0) {
			skip(&c, s); /* a stopped writer's stripe */
			continue;
		}
		for (int i = 0; i < bk.n; i++) {
			if (expired(bk.expires[i], &now) ||
			    !shmstat__glob(pattern, bk.key[i], bk.len[i]))
				continue;
			seen++;
			if ((rc = fn(bk.key[i], bk.len[i], priv)) != 0)
				return rc;
		}
	}
	return c.nskipped ? busy(&c, "iter", seen) : 0;
}

/*
 * Remove from bucket bi the entries that match (pattern) or, with
 * only_expired, that expired. Locks its stripe only when the lock-free
 * look found something to do. *live / *gone count removed live and
 * expired entries. A stripe not had in time is marked skipped.
 */
static void scrub_bucket(struct ctx *c, uint32_t bi, const char *pattern,
			 bool only_expired, uint64_t *live, uint64_t *gone)
{
	struct bucket_keys bk;
	uint64_t now = 0;
	bool any = false;
	uint32_t s = stripe_of(c, bi);

	if (skipped(c, s))
		return;
	if ((only_expired || !pattern) && bi % GROUP == 0 &&
	    cache__stripe_lock(c, s, true) == 0) {
		if (!pattern && !only_expired) /* a flush frees the spare */
			cache__spare_drop(c, s);
		cache__stripe_unlock(c, s);
	}
	if (bucket_keys(c, &c->g->bk[bi], &bk, only_expired) < 0) {
		skip(c, s);
		return;
	}
	for (int i = 0; i < bk.n && !any; i++)
		any = only_expired ? expired(bk.expires[i], &now)
				   : shmstat__glob(pattern, bk.key[i],
						   bk.len[i]);
	if (!any)
		return;
	if (cache__stripe_lock(c, s, false) < 0) {
		skip(c, s);
		return;
	}
	struct cache_bucket *b = &c->g->bk[bi];
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
				 : !shmstat__glob(pattern, e->data, e->key_len))
			continue;
		struct where w = { bi, k, slot_off(sl), e, false };
		cache__remove_locked(c, s, &w);
		if (exp) {
			cache__stat_add(c, RS_CACHE_EXPIRATIONS, 1);
			++*gone;
		} else {
			cache__stat_add(c, RS_CACHE_DELETES, 1);
			++*live;
		}
	}
	cache__stripe_unlock(c, s);
}

/*
 * A flush's last pass: free every LIVE block that no slot references
 * (evict_block's garbage), so that a flush that returns 0 leaves no block
 * in use. Stripes are only tried; one busy counts as skipped.
 */
static void reclaim_garbage(struct ctx *c)
{
	for (uint32_t p = 0; p < c->g->npages; p++) {
		uint32_t cls = __atomic_load_n(&c->g->pg[p].cls, __ATOMIC_RELAXED);
		uint64_t cs = csize(c, cls);
		if (!cs)
			continue;
		uint32_t bump = __atomic_load_n(&c->g->pg[p].bump,
						__ATOMIC_RELAXED);
		for (uint32_t b = 0; b < bump && b < cblocks(c, cls); b++) {
			struct cache_entry *e = block(c, p, b, cs);
			if (!e || atomic_load_explicit(&e->state,
						       memory_order_relaxed) !=
					  ENT_LIVE)
				continue;
			uint64_t hash = __atomic_load_n(&e->hash,
							__ATOMIC_RELAXED);
			uint32_t s = stripe_of(c, home_of(c, hash));
			if (!cache__evict_block(c, UINT32_MAX,
						block_off(c, p, b, cs), true) &&
			    atomic_load_explicit(&e->state,
						 memory_order_relaxed) ==
				    ENT_LIVE &&
			    !cache__referenced(c, block_off(c, p, b, cs), hash,
					       NULL))
				skip(c, s); /* garbage left behind */
		}
	}
}

int shmstat_cache_clear(shmstat_t *h, const char *pattern, uint64_t *count)
{
	struct ctx c;
	uint64_t live = 0, gone = 0;
	int rc;

	if ((rc = cache__ctx_load(h, &c)) < 0)
		return rc;
	if (pattern && strcmp(pattern, "*") == 0)
		pattern = NULL;
	walk_begin(&c);
	for (uint64_t b = 0; b <= c.g->bmask; b++)
		scrub_bucket(&c, (uint32_t)b, pattern, false, &live, &gone);
	if (!pattern) {
		c.unfreed = 0; /* what the pass below cannot free counts */
		reclaim_garbage(&c);
		for (uint32_t s = 0; c.g->nhome && s <= c.g->smask; s++) {
			if (cache__stripe_lock(&c, s, true) < 0) {
				skip(&c, s);
				continue;
			}
			(void)cache__home_reclaim(&c, s);
			cache__stripe_unlock(&c, s);
		}
	}
	if (count)
		*count = live;
	if (c.nskipped || c.unfreed)
		return busy(&c, pattern ? "clear" : "flush", live);
	return 0;
}

int shmstat_cache_flush(shmstat_t *h, uint64_t *count)
{
	return shmstat_cache_clear(h, NULL, count);
}

int cache__sweep(struct ctx *c, uint32_t n, uint64_t *removed)
{
	uint64_t live = 0, gone = 0;
	uint64_t start = atomic_fetch_add_explicit(&c->g->hdr->sweep_cursor, n,
						   memory_order_relaxed);

	walk_begin(c);

	for (uint32_t i = 0; i < n; i++)
		scrub_bucket(c, (uint32_t)((start + i) & c->g->bmask), NULL, true,
			     &live, &gone);
	if (removed)
		*removed = gone;
	return (int)c->nskipped;
}

int shmstat_cache_sweep(shmstat_t *h, uint32_t max_buckets, uint64_t *removed)
{
	struct ctx c;
	int rc;

	if ((rc = cache__ctx_load(h, &c)) < 0)
		return rc;
	if (!max_buckets)
		max_buckets = 1024;
	if (max_buckets > c.g->bmask + 1)
		max_buckets = c.g->bmask + 1;
	uint64_t gone = 0;
	if (cache__sweep(&c, max_buckets, &gone) > 0) {
		if (removed)
			*removed = gone;
		return busy(&c, "sweep", gone);
	}
	if (removed)
		*removed = gone;
	return 0;
}
