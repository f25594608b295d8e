/*
 * cache_home.c — home blocks: 128-byte blocks at the place a key's hash
 * names, so that a get finds a small entry without reading its bucket
 * first (one dependent miss fewer: doc/cache.md, "Home blocks").
 *
 * Owns: the home region (cache_hdr.home_tags_off, home_off and nhome: the
 * tags, then the blocks, after the pages, laid out at creation from
 * cache_home_pct), each home block's state, generation, version word
 * (hver) and tag, and each stripe's count of its home blocks in use
 * (lk.home_used).
 *
 * Invariants:
 *   - Each group of four buckets has hpg home blocks (nhome = hpg times the
 *     groups), i / hpg the group: home block i serves keys whose home
 *     bucket is in that one group (which of its blocks, other bits of the
 *     hash say: shmstat__cache_home_index), so of one stripe, and it
 *     changes only under that stripe's lock; only that group's slots can
 *     name it.
 *   - The slots stay the truth: a home entry is referenced by its key's
 *     slot like any block, and every path through the buckets (get_full,
 *     the scans, the repair) treats it as one. A home block belongs to no
 *     class, is on no free list, and is never a stripe's spare.
 *   - A home block whose version is even and whose state is LIVE holds,
 *     whole, the entry its key's slot names: every change of it (a new
 *     entry written and published, an in-place overwrite, an unlink, a
 *     free) is made while its version is odd, and the version goes odd
 *     before the slot changes. So a reader that finds its key there, with
 *     the same even version before and after its copy, has the value that
 *     the slot named at that moment (get_hit in cache.c).
 *   - A writer killed with a version odd leaves the block to the bucket
 *     path (readers pass it by) until the stripe's repair, which evens it
 *     when the block is LIVE and referenced (then its content is whole: a
 *     torn in-place overwrite is settled, and removed, before) and frees
 *     it otherwise. (One window stays open: a writer killed after its
 *     in-place copy, the block even and whole, its bucket still odd; the
 *     repair removes that entry, and between clearing the slot and
 *     freeing the block a reader may still take the whole value, as it
 *     could have an instant before.)
 *   - A home wanted by a new entry of another key: an occupant read since
 *     the last such contest keeps it (its use bit is cleared: CLOCK's
 *     second chance); one not read moves to a block of the slab, so the
 *     home goes to what is read, and memory pressure evicts in the slab
 *     alone. A home block no slot references (its writer killed, or bytes
 *     not written by the cache) is reclaimed at once.
 */
#include <string.h>

#include "cache_impl_i.h"

uint32_t cache__home_begin(struct cache_entry *e)
{
	uint32_t v = atomic_load_explicit(&e->hver, memory_order_relaxed) | 1u;

	atomic_store_explicit(&e->hver, v, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return v;
}

void cache__home_end(struct cache_entry *e)
{
	uint32_t v = atomic_load_explicit(&e->hver, memory_order_relaxed);

	if (v & 1)
		atomic_store_explicit(&e->hver, v + 1, memory_order_release);
}

static uint64_t home_index(const struct ctx *c, uint64_t off)
{
	return (off - c->g->home_off) / HOME_BLOCK;
}

/* The entry at home block off (stripe held) is published and whole: its
 * tag says so to readers, and its version is even again. */
void cache__home_publish(struct ctx *c, uint64_t off, uint64_t hash)
{
	struct cache_entry *e = (struct cache_entry *)(void *)(c->g->base + off);

	atomic_store_explicit(home_tag(c, home_index(c, off)), hash_tag(hash),
			      memory_order_relaxed);
	cache__home_end(e);
}

/* Free the home block at off (is_home; its stripe held). false when it
 * was free already. */
bool cache__home_free(struct ctx *c, uint64_t off)
{
	uint64_t i = home_index(c, off);
	struct cache_entry *e = home_block(c, i);
	struct cache_lock *lk = &c->g->st[stripe_of(c, home_bucket(c, i))].lk;

	if (atomic_load_explicit(&e->state, memory_order_relaxed) == ENT_FREE) {
		cache__home_end(e);
		return false;
	}
	cache__home_begin(e);
	atomic_store_explicit(home_tag(c, i), 0, memory_order_relaxed);
	atomic_store_explicit(&e->state, ENT_FREE, memory_order_release);
	if (lk->home_used)
		lk->home_used--;
	cache__home_end(e);
	return true;
}

/*
 * Move the home entry at w (stripe s held; not read since the last
 * contest) to a block of the slab, leaving its home free: false when no
 * block could be had (the home stays as it is).
 */
static bool move_out(struct ctx *c, uint32_t s, const struct where *w)
{
	struct cache_lock *lk = &c->g->st[s].lk;
	struct cache_entry *x = w->e, *e;
	uint64_t klen = x->key_len, vlen = x->val_len, off;

	if (ENT_HDR + klen + vlen > HOME_BLOCK)
		return false; /* not an entry the cache wrote: stays */
	if (cache__alloc_block(c, s, ENT_HDR + klen + vlen, &off) < 0 ||
	    !(e = entry_at(c, off)))
		return false;
	e->key_len = x->key_len;
	e->val_len = x->val_len;
	e->hash = x->hash;
	atomic_store_explicit(&e->ref, 0, memory_order_relaxed);
	atomic_store_explicit(&e->expires,
			      atomic_load_explicit(&x->expires,
						   memory_order_relaxed),
			      memory_order_relaxed);
	memcpy(e->data, x->data, klen + vlen);
	/* The home goes odd before the slot names the new block (and is
	 * journaled as a block being unlinked). */
	atomic_store_explicit(&lk->j_old, jword(w->off, x->gen),
			      memory_order_relaxed);
	cache__home_begin(x);
	struct cache_bucket *b = &c->g->bk[w->bucket];
	uint32_t v = ver_begin(b);
	uint64_t sl = atomic_load_explicit(&b->slot[w->way],
					   memory_order_relaxed);
	atomic_store_explicit(&b->slot[w->way], (sl & ~OFF_MASK) | off,
			      memory_order_relaxed);
	ver_end(b, v);
	atomic_store_explicit(&e->state, ENT_LIVE, memory_order_release);
	atomic_store_explicit(&lk->j_new, 0, memory_order_relaxed);
	atomic_store_explicit(&lk->j_old, 0, memory_order_relaxed);
	cache__home_free(c, w->off);
	return true;
}

/* Is home block i free, or made free here: its block unreferenced
 * (garbage: reclaimed) or its occupant not read since the last contest
 * (moved to the slab)? Stripe s held. */
static bool home_room(struct ctx *c, uint32_t s, uint64_t i)
{
	struct cache_entry *e = home_block(c, i);
	uint64_t off = (uint64_t)((unsigned char *)e - c->g->base);
	struct where w;

	if (atomic_load_explicit(&e->state, memory_order_relaxed) == ENT_FREE)
		return true;
	/* referenced() looks in the group of bucket home_bucket(i) (given as
	 * the hash: it takes its low bits): the one group whose slots can
	 * name this block. */
	if (!cache__referenced(c, off, home_bucket(c, i), &w)) {
		cache__home_free(c, off);
		return true;
	}
	uint64_t now = 0;
	if (expired(atomic_load_explicit(&e->expires, memory_order_relaxed),
		    &now)) {
		/* Its time is up: it goes, not to the slab. */
		cache__remove_locked(c, s, &w);
		cache__stat_add(c, RS_CACHE_EXPIRATIONS, 1);
		return true;
	}
	if (atomic_load_explicit(&e->ref, memory_order_relaxed))
		return false;
	return move_out(c, s, &w);
}

uint64_t cache__home_take(struct ctx *c, uint32_t s, uint64_t hash,
			  uint64_t need)
{
	struct cache_lock *lk = &c->g->st[s].lk;

	if (!c->g->nhome || need > HOME_BLOCK)
		return 0;
	uint64_t i = shmstat__cache_home_index(c->g, hash);
	struct cache_entry *e = home_block(c, i);
	if (!home_room(c, s, i)) {
		/* Read since the last contest: it keeps its home, and its
		 * second chance is spent. */
		atomic_store_explicit(&e->ref, 0, memory_order_relaxed);
		return 0;
	}
	uint64_t off = (uint64_t)((unsigned char *)e - c->g->base);
	uint32_t gen = e->gen + 1;
	e->gen = gen;
	atomic_store_explicit(&lk->j_new, jword(off, gen), memory_order_relaxed);
	cache__home_begin(e);
	atomic_store_explicit(&e->state, ENT_ALLOC, memory_order_release);
	lk->home_used++;
	return off;
}

/* For each home block i of stripe s (its buckets' blocks). */
#define FOR_HOME_OF_STRIPE(c, s, i)                                           \
	for (uint64_t g_ = (s); g_ < ((c)->g->bmask + 1ull) / GROUP;        \
	     g_ += (c)->g->smask + 1ull)                                     \
		for (uint64_t i = g_ * (c)->g->hpg;                           \
		     i < (g_ + 1) * (c)->g->hpg; i++)

void cache__home_repair(struct ctx *c, uint32_t s)
{
	uint64_t used = 0;

	if (!c->g->nhome)
		return;
	FOR_HOME_OF_STRIPE(c, s, i) {
		struct cache_entry *e = home_block(c, i);
		uint64_t off = (uint64_t)((unsigned char *)e - c->g->base);
		uint8_t st = atomic_load_explicit(&e->state,
						  memory_order_relaxed);
		if (atomic_load_explicit(&e->hver, memory_order_relaxed) & 1) {
			if (st != ENT_FREE &&
			    !(st == ENT_LIVE &&
			      cache__referenced(c, off, home_bucket(c, i),
						NULL))) {
				atomic_store_explicit(&e->state, ENT_FREE,
						      memory_order_release);
				st = ENT_FREE;
			}
			cache__home_end(e);
		}
		used += st != ENT_FREE;
		atomic_store_explicit(home_tag(c, i),
				      st == ENT_LIVE ? hash_tag(e->hash) : 0,
				      memory_order_relaxed);
	}
	c->g->st[s].lk.home_used = used;
}

uint32_t cache__home_reclaim(struct ctx *c, uint32_t s)
{
	uint32_t n = 0;
	uint64_t used = 0;

	if (!c->g->nhome)
		return 0;
	FOR_HOME_OF_STRIPE(c, s, i) {
		struct cache_entry *e = home_block(c, i);
		uint64_t off = (uint64_t)((unsigned char *)e - c->g->base);
		if (atomic_load_explicit(&e->state, memory_order_relaxed) ==
		    ENT_FREE)
			continue;
		if (!cache__referenced(c, off, home_bucket(c, i), NULL) &&
		    cache__home_free(c, off))
			n++;
		else
			used++;
	}
	/* Counted again while passing: a count that drifted (bytes not
	 * written by the cache) is right after a flush. */
	c->g->st[s].lk.home_used = used;
	return n;
}

uint64_t cache__home_usage(const struct ctx *c)
{
	uint64_t n = 0;

	if (!c->g->nhome)
		return 0;
	for (uint32_t s = 0; s <= c->g->smask; s++)
		n += __atomic_load_n(&c->g->st[s].lk.home_used,
				     __ATOMIC_RELAXED);
	return (n > c->g->nhome ? c->g->nhome : n) * HOME_BLOCK;
}
