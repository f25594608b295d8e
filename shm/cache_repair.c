/*
 * cache_repair.c — the cache's locks, and what a killed holder leaves.
 *
 * Owns: struct cache_lock (stripe, class and pool locks), the call's
 * deadline, the journal records of a stripe and their repair after its
 * holder died (repair_stripe, settle).
 *
 * A lock is one 64-bit word in the segment: 0 free, else the holder's pid
 * (low 32 bits) and the low 32 bits of its start time (field 22 of
 * /proc/<pid>/stat; 0 when unknown). Taken by CAS 0 -> self; a caller that
 * finds it held spins a little, then sleeps on the word's low half with
 * futex(FUTEX_WAIT) in slices of at most 10 ms until the call's deadline;
 * the unlocker wakes one sleeper when the waiters hint says there is one.
 *
 * Invariants:
 *   - Every bit pattern of a lock is a valid state. A word whose pid is
 *     not a live process, or whose start time is not that process's, has a
 *     dead holder: the first caller to CAS it to itself owns the lock and
 *     repairs what it guards before going on (a stripe from its journal, a
 *     class or the pool by rebuilding their lists from the pages' and
 *     blocks' states). A word naming a live process is waited for, never
 *     past the deadline. A garbage waiters count costs a futex wake.
 *   - The word is judged and taken over as one value (pid and start time
 *     together, by CAS of the exact word seen), so a lock handed to a live
 *     process meanwhile is never taken from it.
 *   - Every writer that unlinks or publishes a block records (offset,
 *     generation) in its stripe's journal first (j_old, j_new); the repair
 *     frees a block nobody references, marks a published one live, evens
 *     odd bucket versions. A writer that overwrites a value in place
 *     records the entry in j_ovr; the repair removes that entry when its
 *     bucket is still odd (the copy may be torn), before it evens any
 *     version, so no reader ever sees the torn value. A record is cleared only once acted on, so a
 *     repairer killed in there leaves it to the next (the action is
 *     idempotent).
 *   - All processes using a segment share one pid namespace (as the
 *     registry's slot owners do): a pid is judged in ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cache_impl_i.h"

_Atomic uint32_t cache__lock_timeout_ms = 100;

void shmstat__cache_set_lock_timeout(uint32_t ms)
{
	atomic_store_explicit(&cache__lock_timeout_ms, ms ? ms : 100,
			      memory_order_relaxed);
}

uint64_t cache__deadline(struct ctx *c)
{
	if (!c->deadline)
		c->deadline = shmstat__now_mono_ns() +
			      (uint64_t)atomic_load_explicit(
				      &cache__lock_timeout_ms,
				      memory_order_relaxed) *
				      1000000u;
	return c->deadline;
}

/* ------------------------------------------------------------ who am I */

/* This process's lock word; 0 until first needed, again 0 in a child
 * (the inline fast path in cache_impl_i.h reads it too). */
_Atomic uint64_t cache__self_word;
static _Thread_local int32_t self_tid;
static _Thread_local int32_t self_tid_pid;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void self_child(void)
{
	atomic_store_explicit(&cache__self_word, 0, memory_order_relaxed);
}
static void self_init(void) { pthread_atfork(NULL, NULL, self_child); }

static uint64_t me(void)
{
	uint64_t w = atomic_load_explicit(&cache__self_word, memory_order_relaxed);

	if (__builtin_expect(w != 0, 1))
		return w;
	pthread_once(&self_once, self_init);
	pid_t pid = getpid();
	w = (uint64_t)(uint32_t)shmstat__proc_start(pid) << 32 | (uint32_t)pid;
	atomic_store_explicit(&cache__self_word, w, memory_order_relaxed);
	return w;
}

int32_t cache__self_pid(void) { return (int32_t)(uint32_t)me(); }

int32_t cache__self_tid(void)
{
	int32_t pid = cache__self_pid();

	/* A forked child's thread has a new tid: look again. */
	if (self_tid_pid != pid) {
		self_tid = (int32_t)syscall(SYS_gettid);
		self_tid_pid = pid;
	}
	return self_tid;
}

/* Dead by kill() alone (cheap: a try lock asks only this), or also by
 * /proc: a zombie, or a pid reused since. */
static bool holder_dead(uint64_t w, bool cheap)
{
	uint32_t pid = (uint32_t)w, start = (uint32_t)(w >> 32);
	uint64_t now = 0;
	char state = 0;

	if (!w)
		return false;
	if (pid == 0 || pid > INT32_MAX)
		return true; /* names no process: garbage */
	if (w == me())
		return false; /* another thread of this process */
	if (!shmstat__proc_alive((pid_t)pid, 0))
		return true;
	if (cheap || !shmstat__proc_stat((pid_t)pid, &now, &state))
		return false; /* kill() said it exists: trust that */
	/* A killed holder not yet reaped by its parent is a zombie: dead. */
	if (state == 'Z' || state == 'X')
		return true;
	return start && now && (uint32_t)now != start; /* pid reused */
}

bool cache__holder_dead(uint64_t w) { return holder_dead(w, false); }

/* ---------------------------------------------------------------- locks */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static _Atomic uint32_t *futex_half(struct cache_lock *l)
{
	_Atomic uint32_t *p = (_Atomic uint32_t *)(void *)&l->word;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	p++;
#endif
	return p;
}

static void futex_wait(struct cache_lock *l, uint32_t val, uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };

	(void)syscall(SYS_futex, futex_half(l), FUTEX_WAIT, val, &ts, NULL, 0);
}

void cache__lock_wake(struct cache_lock *l)
{
	(void)syscall(SYS_futex, futex_half(l), FUTEX_WAKE, 1, NULL, NULL, 0);
}

void cache__lock_init(struct cache_lock *l)
{
	atomic_store_explicit(&l->word, 0, memory_order_relaxed);
	atomic_store_explicit(&l->waiters, 0, memory_order_relaxed);
}

/*
 * Take l. 0 taken; 1 taken from a dead holder (the caller repairs what it
 * guards before anything else); SHMSTAT_EBUSY not had by the call's
 * deadline (try: not had at once).
 */
static int lk_take(struct ctx *c, struct cache_lock *l, bool try)
{
	uint64_t self = me(), w = 0;

	if (atomic_compare_exchange_strong_explicit(&l->word, &w, self,
						    memory_order_acquire,
						    memory_order_relaxed))
		return 0;
	for (uint32_t spin = 0;; spin++) {
		w = atomic_load_explicit(&l->word, memory_order_relaxed);
		if (w == 0) {
			if (atomic_compare_exchange_weak_explicit(
				    &l->word, &w, self, memory_order_acquire,
				    memory_order_relaxed))
				return 0;
			continue;
		}
		/* A try asks kill() only; a waiter /proc too, once it
		 * is about to sleep. */
		if ((try || spin >= 64) && holder_dead(w, try)) {
			if (atomic_compare_exchange_strong_explicit(
				    &l->word, &w, self, memory_order_acquire,
				    memory_order_relaxed))
				return 1;
			continue;
		}
		if (try)
			return SHMSTAT_EBUSY;
		if (spin < 64) {
			cpu_relax();
			continue;
		}
		uint64_t now = shmstat__now_mono_ns(), end = cache__deadline(c);
		if (now >= end)
			return SHMSTAT_EBUSY;
		uint64_t ns = end - now;
		if (ns > 10000000u)
			ns = 10000000u; /* look at the holder again now and then */
		atomic_fetch_add_explicit(&l->waiters, 1, memory_order_seq_cst);
		futex_wait(l, (uint32_t)w, ns);
		atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
	}
}

static void repair_stripe(struct ctx *c, uint32_t s);

int cache__stripe_lock(struct ctx *c, uint32_t s, bool try)
{
	int rc = lk_take(c, &c->g->st[s].lk, try);

	if (rc < 0) {
		if (!try)
			shmstat__err(c->h, rc,
				     "cache stripe %u: lock not had within "
				     "%u ms (its holder is stopped, or the "
				     "machine overloaded?)",
				     s,
				     atomic_load(&cache__lock_timeout_ms));
		return rc;
	}
	if (rc == 1) {
		shmstat__log(SHMSTAT_LOG_WARNING,
			     "shmstat: cache stripe %u: holder died, repaired",
			     s);
		repair_stripe(c, s);
	}
	return 0;
}

void cache__stripe_unlock(struct ctx *c, uint32_t s)
{
	cache_lock_give(&c->g->st[s].lk);
}

int cache__class_lock(struct ctx *c, uint32_t cls, bool try)
{
	int rc = lk_take(c, &c->g->cl[cls].lk, try);

	if (rc < 0)
		return try ? rc
			   : shmstat__err(c->h, rc,
					  "cache class %u: lock not had in "
					  "time (its holder is stopped, or the "
					  "machine overloaded?)",
					  cls);
	if (rc == 1)
		cache__rebuild_class(c, cls);
	return 0;
}

void cache__class_unlock(struct ctx *c, uint32_t cls)
{
	cache_lock_give(&c->g->cl[cls].lk);
}

int cache__pool_lock(struct ctx *c)
{
	int rc = lk_take(c, &c->g->hdr->pool, false);

	if (rc < 0)
		return rc;
	if (rc == 1)
		cache__rebuild_pool(c);
	return 0;
}

void cache__pool_unlock(struct ctx *c) { cache_lock_give(&c->g->hdr->pool); }

void *shmstat__cache_lock_word(struct shmstat *h, int kind, uint32_t i)
{
	struct ctx c;

	if (cache__ctx_load(h, &c) < 0)
		return NULL;
	if (kind == 0)
		return &c.g->hdr->pool.word;
	if (kind == 1)
		return i <= c.g->smask ? &c.g->st[i].lk.word : NULL;
	return i < c.g->nclasses ? &c.g->cl[i].lk.word : NULL;
}

/* --------------------------------------------------------------- repair */

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
	if (cache__referenced(c, off, e->hash, NULL))
		atomic_store_explicit(&e->state, ENT_LIVE, memory_order_release);
	else
		cache__block_free(c, off);
}

/* Settle one journal record of stripe s after its holder died. */
static void settle(struct ctx *c, _Atomic uint64_t *j)
{
	uint64_t word = atomic_load_explicit(j, memory_order_relaxed);
	uint64_t off = word & OFF_MASK;
	struct cache_entry *e = entry_at(c, off);

	if (word)
		cache_hook(CACHE_HOOK_SETTLING);
	settle_word(c, word, off, e);
	/* Cleared only once acted on: a repairer that dies in there leaves
	 * the record for the next one (the action is idempotent). */
	atomic_store_explicit(j, 0, memory_order_relaxed);
}

/*
 * Settle the in-place record of stripe s (see overwrite_in_place in
 * cache.c): the entry it names is LIVE, of that generation, and
 * referenced from a slot whose bucket is still odd: its holder died while
 * copying the new value over the old one, and the value may be torn. The
 * entry is unlinked (the bucket stays odd until repair_stripe evens it,
 * so no reader has seen it since) and its block freed. An even bucket
 * means the holder died before the copy began or after it ended: the
 * value is whole, old or new, and stays. A block already unlinked (a
 * repairer killed after unlinking it) is freed.
 */
static void settle_overwrite(struct ctx *c, _Atomic uint64_t *j)
{
	uint64_t word = atomic_load_explicit(j, memory_order_relaxed);
	uint64_t off = word & OFF_MASK;
	struct cache_entry *e = entry_at(c, off);
	struct where w;

	if (word)
		cache_hook(CACHE_HOOK_SETTLING);
	if (e && (e->gen & GEN_MASK) == word >> OFF_BITS &&
	    atomic_load_explicit(&e->state, memory_order_relaxed) == ENT_LIVE) {
		if (!cache__referenced(c, off, e->hash, &w)) {
			cache__block_free(c, off);
		} else if (atomic_load_explicit(&c->g->bk[w.bucket].ver,
					       memory_order_relaxed) &
			   1) {
			atomic_store_explicit(&c->g->bk[w.bucket].slot[w.way], 0,
					      memory_order_relaxed);
			atomic_thread_fence(memory_order_release);
			cache__block_free(c, off);
		}
	}
	atomic_store_explicit(j, 0, memory_order_relaxed);
}

/* The holder of stripe s died: settle an in-place overwrite (while its
 * bucket is still odd), even out its groups' versions, settle its
 * journal. Runs holding the lock, before anything else uses the stripe. */
static void repair_stripe(struct ctx *c, uint32_t s)
{
	uint32_t ngroups = (c->g->bmask + 1) / GROUP;

	settle_overwrite(c, &c->g->st[s].lk.j_ovr);

	for (uint32_t g = s; g < ngroups; g += c->g->smask + 1)
		for (uint32_t i = 0; i < GROUP; i++) {
			struct cache_bucket *b = &c->g->bk[g * GROUP + i];
			uint32_t v = atomic_load_explicit(&b->ver,
							  memory_order_relaxed);
			if (v & 1)
				atomic_store_explicit(&b->ver, v + 1,
						      memory_order_release);
		}
	settle(c, &c->g->st[s].lk.j_new);
	settle(c, &c->g->st[s].lk.j_old);
	cache__home_repair(c, s);
	/* The spare word: kept when it still names an unreferenced ALLOC
	 * block of its generation, else forgotten (settle freed it, or it
	 * was never completed). */
	uint64_t w = atomic_load_explicit(&c->g->st[s].lk.spare,
					  memory_order_relaxed);
	struct cache_entry *e = w ? entry_at(c, w & OFF_MASK) : NULL;
	if (w && (!e || (e->gen & GEN_MASK) != w >> OFF_BITS ||
		  atomic_load_explicit(&e->state, memory_order_relaxed) !=
			  ENT_ALLOC ||
		  cache__referenced(c, w & OFF_MASK, e->hash, NULL)))
		atomic_store_explicit(&c->g->st[s].lk.spare, 0,
				      memory_order_relaxed);
}
