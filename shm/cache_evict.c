/*
 * cache_evict.c — making room: a block for a set, by eviction when full.
 *
 * Owns: each class's CLOCK hand, the shared page hand, and the choice of
 * victims; the reclaiming of garbage (LIVE blocks no slot references).
 *
 * Invariants:
 *   - A victim is removed only under the lock of its key's stripe; a
 *     stripe other than the one the caller holds is only tried, so
 *     eviction never deadlocks and never waits on another stripe.
 *   - Every walk is bounded: CLOCK by two turns of a class's blocks, page
 *     stealing by a few pages, and a page whose class lock is busy is not
 *     emptied at all (its blocks could not be freed: unlinking them would
 *     only make garbage), so a set never waits on each block of a page.
 *   - A LIVE block referenced from no slot of its key's group is garbage
 *     (its remover unlinked it, then could not free it: the class's lock
 *     was held by a stopped process past the deadline, or it died after a
 *     repair). Only a writer of that group, holding its stripe, unlinks or
 *     publishes such a block; so when, under that lock, the block is still
 *     LIVE with the generation and hash read before, it is freed here.
 */
#include "cache_impl_i.h"

/*
 * Remove the entry in block off to make room (held: the stripe this
 * caller holds, or UINT32_MAX). Returns true when it went.
 * garbage_only: leave live entries alone (the flush's pass).
 */
bool cache__evict_block(struct ctx *c, uint32_t held, uint64_t off,
			bool garbage_only)
{
	struct cache_entry *e = entry_at(c, off);
	struct where w;
	uint64_t now = 0;

	if (!e)
		return false;
	uint32_t gen = __atomic_load_n(&e->gen, __ATOMIC_RELAXED);
	uint32_t st = atomic_load_explicit(&e->state, memory_order_acquire);
	uint64_t hash = __atomic_load_n(&e->hash, __ATOMIC_RELAXED);
	uint32_t s = stripe_of(c, home_of(c, hash));
	if (st == ENT_ALLOC) {
		/* Perhaps the spare of its old key's stripe: free it there. */
		if (s != held && cache__stripe_lock(c, s, true) < 0)
			return false;
		bool mine = atomic_load_explicit(&c->g->st[s].lk.spare,
						 memory_order_relaxed) ==
			    jword(off, gen);
		if (mine)
			cache__spare_drop(c, s);
		if (s != held)
			cache__stripe_unlock(c, s);
		return mine;
	}
	if (st != ENT_LIVE)
		return false;
	if (s != held && cache__stripe_lock(c, s, true) < 0)
		return false;
	bool ok = false;
	if (cache__referenced(c, off, hash, &w) && w.e) {
		if (!garbage_only) {
			bool exp = expired(
				atomic_load_explicit(&e->expires,
						     memory_order_relaxed),
				&now);
			cache__remove_locked(c, s, &w);
			cache__stat_add(c, exp ? RS_CACHE_EXPIRATIONS
					       : RS_CACHE_EVICTIONS,
					1);
			ok = true;
		}
	} else if (atomic_load_explicit(&e->state, memory_order_acquire) ==
			   ENT_LIVE &&
		   e->gen == gen && e->hash == hash) {
		ok = cache__block_free(c, off);
	}
	if (s != held)
		cache__stripe_unlock(c, s);
	return ok;
}

/*
 * CLOCK over the blocks of class cls: a set reference bit buys a second
 * chance (cleared as the hand passes), an expired or unreferenced entry is
 * the victim. Bounded by two turns of the class's blocks.
 */
static bool evict_in_class(struct ctx *c, uint32_t held, uint32_t cls)
{
	struct cache_class *cl = &c->g->cl[cls];
	uint64_t cs = csize(c, cls), now = 0;
	uint32_t npg = __atomic_load_n(&cl->npages, __ATOMIC_RELAXED);

	if (!cs || !npg)
		return false;
	if (npg > c->g->npages)
		npg = c->g->npages;
	uint32_t per = cblocks(c, cls);
	uint64_t budget = 2 * (uint64_t)npg * per + c->g->npages + 16;
	uint64_t hand = atomic_load_explicit(&cl->hand, memory_order_relaxed);
	uint32_t p = (uint32_t)(hand >> 32), b = (uint32_t)hand;
	bool done = false;

	for (uint64_t step = 0; step < budget && !done; step++) {
		if (p >= c->g->npages)
			p = 0, b = 0;
		struct cache_page *pg = &c->g->pg[p];
		uint32_t bump = __atomic_load_n(&pg->bump, __ATOMIC_RELAXED);
		if (__atomic_load_n(&pg->cls, __ATOMIC_RELAXED) != cls ||
		    b >= bump || b >= per) {
			p++, b = 0;
			continue;
		}
		struct cache_entry *e = block(c, p, b, cs);
		uint64_t off = block_off(c, p, b, cs);
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
		done = cache__evict_block(c, held, off, false);
	}
	atomic_store_explicit(&cl->hand, (uint64_t)p << 32 | b,
			      memory_order_relaxed);
	return done;
}

/*
 * Empty page p (of any class; a tail: its run's head) so that it goes
 * back to the pool. A page whose class lock is busy now is passed over
 * (see the invariants). true when p is free afterwards.
 */
static bool evict_page_at(struct ctx *c, uint32_t held, uint32_t p)
{
	struct cache_page *pg = &c->g->pg[p];
	uint32_t cls = __atomic_load_n(&pg->cls, __ATOMIC_RELAXED);

	if (cls == PAGE_NONE)
		return true;
	uint32_t h = p;
	if (cls == PAGE_TAIL) {
		h = __atomic_load_n(&pg->prev, __ATOMIC_RELAXED) - 1;
		if (h >= p)
			return false;
		cls = __atomic_load_n(&c->g->pg[h].cls, __ATOMIC_RELAXED);
	}
	uint64_t cs = csize(c, cls);
	if (!cs || cache__class_lock(c, cls, true) < 0)
		return false;
	cache__class_unlock(c, cls);
	uint32_t bump = __atomic_load_n(&c->g->pg[h].bump, __ATOMIC_RELAXED);
	uint32_t unfreed = c->unfreed;
	for (uint32_t b = 0; b < bump && b < cblocks(c, cls); b++) {
		cache__evict_block(c, held, block_off(c, h, b, cs), false);
		if (c->unfreed != unfreed)
			break; /* its class became busy: give up */
	}
	return __atomic_load_n(&pg->cls, __ATOMIC_RELAXED) == PAGE_NONE;
}

/*
 * Empty whole pages so that they go back to the pool: how a class that
 * owns no page (or too few) gets memory when all of it is given out. For
 * a run of span pages (a large class), a window of span pages from the
 * shared hand is emptied; else a few single pages are tried.
 */
static bool evict_page(struct ctx *c, uint32_t held, uint32_t span)
{
	if (span > c->g->npages)
		return false;
	for (int tries = 0; tries < (span > 1 ? 2 : 8); tries++) {
		uint32_t p = (uint32_t)(atomic_fetch_add_explicit(
						&c->g->hdr->page_hand, span,
						memory_order_relaxed) %
					c->g->npages);
		if (p + span > c->g->npages)
			p = c->g->npages - span;
		bool all = true;
		for (uint32_t q = p; q < p + span; q++)
			all &= evict_page_at(c, held, q);
		if (all)
			return true;
	}
	return false;
}

/* A block for `need` bytes, journaled in stripe s (held); 0 when full. */
int cache__alloc_block(struct ctx *c, uint32_t s, uint64_t need,
		       uint64_t *off)
{
	uint32_t cls = cache__class_for(c, need);
	int rc;

	if (!csize(c, cls) || csize(c, cls) < need)
		return SHMSTAT_ECORRUPT;
	for (int tries = 0; tries < 16; tries++) {
		if ((rc = cache__class_lock(c, cls, false)) < 0)
			return rc;
		*off = cache__pop_locked(c, cls, &c->g->st[s].lk.j_new);
		cache__class_unlock(c, cls);
		if (*off)
			return 0;
		/* Full: the least recently used of the same class first;
		 * when the class has none to give, a whole page. */
		if (!evict_in_class(c, s, cls))
			evict_page(c, s, cspan(c, cls));
	}
	return SHMSTAT_EFULL;
}
