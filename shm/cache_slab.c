/*
 * cache_slab.c — the cache's value memory: pages, size classes, blocks.
 *
 * Owns: the page pool (cache_hdr.pool_head, under the pool lock), each
 * size class's partial-page list and its pages' free lists (under the
 * class lock), a block's state word (FREE / ALLOC / LIVE) and generation.
 *
 * Invariants:
 *   - A page is in the pool (cls == PAGE_NONE) or serves exactly one
 *     class; its blocks are [0, bump) ever used, [bump, nblocks) never
 *     (free whatever their bytes say). A class whose block is larger than
 *     a page has one block per run of cspan() pages: the head serves the
 *     class, the others are PAGE_TAIL naming the head. A tail whose head
 *     does not cover it (a writer killed while taking or giving back a
 *     run) goes back to the pool at the next rebuild of the pool.
 *   - A block leaves a free list only after its (offset, generation) is in
 *     its stripe's journal (pop_locked), so a killed writer's block is
 *     found again by the repair.
 *   - Lists are hints that are checked as they are used: a list that does
 *     not match the pages' and blocks' states is rebuilt from them
 *     (rebuild_class, rebuild_pool), never followed out of the region.
 *   - Class sizes and blocks per page come from the handle's geometry,
 *     never from the region.
 *   - A stripe may keep one spare block (ALLOC, referenced by no slot, of
 *     a one-page class) in its lock's `spare` word: an overwrite of that
 *     class publishes its new value there and keeps the old block as the
 *     next spare, taking no class lock. The old block is kept only after
 *     its bucket's version moved (readers that copied from it retry), and
 *     every step is journaled (j_new, j_old) before the spare word
 *     changes, so a killed writer's repair frees whatever the word no
 *     longer names; a spare whose generation moved is dropped, not used.
 */
#include "cache_impl_i.h"

/* Unlink page p from class cl's partial list. Class lock held. */
static void partial_unlink(struct ctx *c, struct cache_class *cl, uint32_t p)
{
	struct cache_page *pg = &c->g->pg[p], *n = page_at(c, pg->next),
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
	struct cache_page *pg = &c->g->pg[p], *n = page_at(c, cl->partial);

	pg->prev = 0;
	pg->next = cl->partial;
	if (n)
		n->prev = p + 1;
	cl->partial = p + 1;
}

/* Take a run of span free pages for a large class. Pool lock held;
 * first fit, O(pages). UINT32_MAX when there is none. */
static uint32_t run_find(struct ctx *c, uint32_t span)
{
	uint32_t len = 0;

	for (uint32_t p = 0; p < c->g->npages; p++) {
		len = c->g->pg[p].cls == PAGE_NONE ? len + 1 : 0;
		if (len == span)
			return p + 1 - span;
	}
	return UINT32_MAX;
}

static bool run_take(struct ctx *c, uint32_t cls, uint32_t span)
{
	struct cache_class *cl = &c->g->cl[cls];

	if (cache__pool_lock(c) < 0)
		return false;
	uint32_t p0 = run_find(c, span);
	if (p0 == UINT32_MAX) {
		cache__pool_unlock(c);
		return false;
	}
	/* Tails first, head last (as in page_take); then the pool is
	 * relinked without them. */
	for (uint32_t q = p0 + 1; q < p0 + span; q++) {
		c->g->pg[q].prev = p0 + 1;
		c->g->pg[q].next = 0;
		__atomic_store_n(&c->g->pg[q].cls, PAGE_TAIL, __ATOMIC_RELEASE);
	}
	struct cache_page *pg = &c->g->pg[p0];
	pg->nblocks = 1;
	pg->nfree = 1;
	pg->free_head = 0;
	pg->bump = 0;
	pg->next = pg->prev = 0;
	__atomic_store_n(&pg->cls, cls, __ATOMIC_RELEASE);
	cache__rebuild_pool(c);
	cache__pool_unlock(c);
	cl->npages++;
	partial_push(c, cl, p0);
	return true;
}

/* Take a page from the pool for class cls. Class lock held. */
static bool page_take(struct ctx *c, uint32_t cls)
{
	struct cache_class *cl = &c->g->cl[cls];

	if (cspan(c, cls) > 1)
		return run_take(c, cls, cspan(c, cls));
	if (cache__pool_lock(c) < 0)
		return false;
	uint32_t p1 = c->g->hdr->pool_head;
	struct cache_page *pg = page_at(c, p1);
	if (!pg || pg->cls != PAGE_NONE) {
		if (pg)
			cache__rebuild_pool(c); /* a bad list: start over */
		cache__pool_unlock(c);
		return false;
	}
	/* Fields first, class last: a crash leaves a page that the pool's
	 * rebuild skips (cls set) and the class's rebuild takes whole. */
	pg->nblocks = cblocks(c, cls);
	pg->nfree = pg->nblocks;
	pg->free_head = 0;
	pg->bump = 0;
	uint32_t next = pg->next;
	pg->next = pg->prev = 0;
	__atomic_store_n(&pg->cls, cls, __ATOMIC_RELEASE);
	c->g->hdr->pool_head = next;
	cache__pool_unlock(c);
	cl->npages++;
	partial_push(c, cl, p1 - 1);
	return true;
}

static void page_give_back(struct ctx *c, struct cache_class *cl, uint32_t p)
{
	struct cache_page *pg = &c->g->pg[p];

	if (cache__pool_lock(c) < 0)
		return; /* stays an empty page of its class */
	partial_unlink(c, cl, p);
	if (cl->npages)
		cl->npages--;
	pg->free_head = 0;
	pg->bump = 0;
	uint32_t span = cspan(c, pg->cls < c->g->nclasses ? pg->cls : 0);
	__atomic_store_n(&pg->cls, PAGE_NONE, __ATOMIC_RELEASE);
	if (span > 1) { /* a run: its tails too (orphans if we die here) */
		for (uint32_t q = p + 1; q < p + span && q < c->g->npages; q++)
			if (c->g->pg[q].cls == PAGE_TAIL && c->g->pg[q].prev == p + 1)
				__atomic_store_n(&c->g->pg[q].cls, PAGE_NONE,
						 __ATOMIC_RELEASE);
		cache__rebuild_pool(c);
	} else {
		pg->next = c->g->hdr->pool_head;
		c->g->hdr->pool_head = p + 1;
	}
	cache__pool_unlock(c);
}

/*
 * Pop a free block of class cls; its (offset, gen) goes into journal *j
 * before the block leaves the free list. Class lock held. 0 when the class
 * has no free block and the pool no page.
 */
uint64_t cache__pop_locked(struct ctx *c, uint32_t cls, _Atomic uint64_t *j)
{
	struct cache_class *cl = &c->g->cl[cls];
	uint64_t cs = csize(c, cls);

	if (!cs)
		return 0;
	for (int tries = 0; tries < 4; tries++) {
		if (!cl->partial && !page_take(c, cls))
			return 0;
		uint32_t p = cl->partial - 1;
		struct cache_page *pg = page_at(c, cl->partial);
		if (!pg || pg->cls != cls || pg->nblocks != cblocks(c, cls) ||
		    pg->bump > pg->nblocks) {
			cache__rebuild_class(c, cls);
			continue;
		}
		uint32_t b;
		struct cache_entry *e;
		if (pg->free_head && pg->free_head <= pg->bump) {
			b = pg->free_head - 1;
		} else if (!pg->free_head && pg->bump < pg->nblocks) {
			b = pg->bump;
		} else {
			cache__rebuild_class(c, cls);
			continue;
		}
		e = block(c, p, b, cs);
		/* A block past bump is free whatever its state says (a
		 * writer killed in here may have left ALLOC on it). */
		if (!e || (b < pg->bump &&
			   atomic_load_explicit(&e->state,
						memory_order_relaxed) != ENT_FREE)) {
			cache__rebuild_class(c, cls);
			continue;
		}
		/* A block first cut from a page that served another class
		 * seeds its generation from the old bytes there. Harmless: a
		 * journal record is cleared before its block is freed
		 * (remove_locked), so no record can name a block that has
		 * since been given to another class. */
		uint32_t gen = e->gen + 1;
		uint64_t off = (uint64_t)((unsigned char *)e - c->g->base);
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

/*
 * Free the block at off (state FREE, back on its page's list). The caller
 * holds the lock of the stripe that referenced it, or none for a block no
 * one can reference. false when it could not: a bad block, or the class
 * lock not had by the call's deadline (a LIVE block is then garbage that
 * evict_block reclaims later; counted in c->unfreed).
 */
bool cache__block_free(struct ctx *c, uint64_t off)
{
	struct cache_entry *e = entry_at(c, off);
	uint64_t rel = off - c->g->data_off;
	uint32_t p;
	struct cache_page *pg;
	uint64_t cs, in;

	if (e && is_home(c, off))
		return cache__home_free(c, off);
	if (!e || (p = (uint32_t)page_of(c, rel)) >= c->g->npages)
		return false;
	pg = &c->g->pg[p];
	in = rel - (uint64_t)p * c->g->page_size;
	uint32_t cls = __atomic_load_n(&pg->cls, __ATOMIC_ACQUIRE);
	if (!(cs = csize(c, cls)) || in % cs)
		return false;
	if (cache__class_lock(c, cls, false) < 0) {
		c->unfreed++;
		return false;
	}
	uint32_t b = (uint32_t)(in / cs);
	if (pg->cls != cls || b >= pg->bump || b >= pg->nblocks ||
	    atomic_load_explicit(&e->state, memory_order_relaxed) == ENT_FREE) {
		cache__class_unlock(c, cls);
		return false;
	}
	e->next_free = pg->free_head;
	atomic_store_explicit(&e->state, ENT_FREE, memory_order_release);
	pg->free_head = b + 1;
	struct cache_class *cl = &c->g->cl[cls];
	if (++pg->nfree == 1)
		partial_push(c, cl, p);
	if (pg->nfree >= pg->nblocks)
		page_give_back(c, cl, p);
	cache__class_unlock(c, cls);
	return true;
}

/* Recount class cls from its pages' block states. Class lock held. */
void cache__rebuild_class(struct ctx *c, uint32_t cls)
{
	struct cache_class *cl = &c->g->cl[cls];
	uint64_t cs = csize(c, cls);

	cl->partial = 0;
	cl->npages = 0;
	if (!cs)
		return;
	for (uint32_t p = 0; p < c->g->npages; p++) {
		struct cache_page *pg = &c->g->pg[p];
		if (pg->cls != cls)
			continue;
		pg->nblocks = cblocks(c, cls);
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

/* Is page p a tail of a run whose head covers it? */
static bool tail_ok(const struct ctx *c, uint32_t p)
{
	uint32_t h1 = c->g->pg[p].prev, cls;

	if (!h1 || h1 - 1 >= p)
		return false;
	cls = __atomic_load_n(&c->g->pg[h1 - 1].cls, __ATOMIC_ACQUIRE);
	return cls < c->g->nclasses && h1 - 1 + cspan(c, cls) > p;
}

/* Relink the pool from the pages marked free; orphaned tails go back to
 * it. Pool lock held. */
void cache__rebuild_pool(struct ctx *c)
{
	for (uint32_t p = 0; p < c->g->npages; p++)
		if (c->g->pg[p].cls == PAGE_TAIL && !tail_ok(c, p))
			__atomic_store_n(&c->g->pg[p].cls, PAGE_NONE,
					 __ATOMIC_RELEASE);
	c->g->hdr->pool_head = 0;
	for (uint32_t p = c->g->npages; p-- > 0;) {
		if (c->g->pg[p].cls != PAGE_NONE)
			continue;
		c->g->pg[p].next = c->g->hdr->pool_head;
		c->g->hdr->pool_head = p + 1;
	}
}

/* A fresh region: every page in the pool. */
void cache__init_pages(struct ctx *c)
{
	for (uint32_t p = 0; p < c->g->npages; p++) {
		c->g->pg[p].cls = PAGE_NONE;
		c->g->pg[p].next = p + 1 < c->g->npages ? p + 2 : 0;
	}
	c->g->hdr->pool_head = 1;
}

uint32_t cache__class_of(const struct ctx *c, uint64_t off)
{
	if (!entry_at(c, off))
		return UINT32_MAX;
	uint64_t rel = off - c->g->data_off, p = page_of(c, rel);
	if (p >= c->g->npages)
		return UINT32_MAX;
	uint32_t cls = __atomic_load_n(&c->g->pg[p].cls, __ATOMIC_ACQUIRE);
	uint64_t cs = csize(c, cls);
	if (!cs || (rel - p * c->g->page_size) % cs)
		return UINT32_MAX;
	return cls;
}


/* The spare word w names a block still spare: ALLOC, same generation (and
 * never a home block: cache_home.c). */
static struct cache_entry *spare_valid(const struct ctx *c, uint64_t w)
{
	if (is_home(c, w & OFF_MASK))
		return NULL;
	struct cache_entry *e = w ? entry_at(c, w & OFF_MASK) : NULL;

	if (!e || (e->gen & GEN_MASK) != w >> OFF_BITS ||
	    atomic_load_explicit(&e->state, memory_order_acquire) != ENT_ALLOC)
		return NULL;
	return e;
}

uint64_t cache__spare_take(struct ctx *c, uint32_t s, uint32_t cls)
{
	struct cache_lock *lk = &c->g->st[s].lk;
	uint64_t w = atomic_load_explicit(&lk->spare, memory_order_relaxed);
	struct cache_entry *e = spare_valid(c, w);

	if (!w)
		return 0;
	if (!e || cache__class_of(c, w & OFF_MASK) == UINT32_MAX) {
		atomic_store_explicit(&lk->spare, 0, memory_order_relaxed);
		return 0; /* a stale or scribbled word: forget it */
	}
	if (cache__class_of(c, w & OFF_MASK) != cls)
		return 0;
	/* Record, then a new generation, then out of the spare word: a
	 * repair after any step frees it or finds it spare still. */
	uint64_t off = w & OFF_MASK;
	uint32_t gen = e->gen + 1;
	atomic_store_explicit(&lk->j_new, jword(off, gen), memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	e->gen = gen;
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&lk->spare, 0, memory_order_relaxed);
	return off;
}

bool cache__spare_keep(struct ctx *c, uint32_t s, uint64_t off)
{
	struct cache_lock *lk = &c->g->st[s].lk;
	struct cache_entry *e = entry_at(c, off);
	uint32_t cls = cache__class_of(c, off);

	if (!e || cls == UINT32_MAX || cspan(c, cls) > 1 ||
	    atomic_load_explicit(&lk->spare, memory_order_relaxed) != 0 ||
	    atomic_load_explicit(&e->state, memory_order_relaxed) != ENT_LIVE)
		return false;
	atomic_store_explicit(&e->state, ENT_ALLOC, memory_order_release);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&lk->spare, jword(off, e->gen),
			      memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&lk->j_old, 0, memory_order_relaxed);
	return true;
}

void cache__spare_drop(struct ctx *c, uint32_t s)
{
	struct cache_lock *lk = &c->g->st[s].lk;
	uint64_t w = atomic_load_explicit(&lk->spare, memory_order_relaxed);

	if (!w)
		return;
	/* Out of the word first: a free that misses its class lock leaves
	 * an ALLOC block nobody names (lost until the class is rebuilt),
	 * never a word naming a block that is free again. */
	struct cache_entry *e = spare_valid(c, w);
	atomic_store_explicit(&lk->j_old, w, memory_order_relaxed);
	atomic_store_explicit(&lk->spare, 0, memory_order_relaxed);
	if (e && !cache__block_free(c, w & OFF_MASK))
		atomic_store_explicit(&lk->spare, w, memory_order_relaxed);
	atomic_store_explicit(&lk->j_old, 0, memory_order_relaxed);
}
