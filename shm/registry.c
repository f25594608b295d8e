/*
 * registry.c — which process owns which row of counter cells, and the
 * increment's slow path.
 *
 * Every shmstat_t that counts claims one slot of the registry and writes
 * only its own row, so no two processes write one cache line on the hot
 * path. Within the process, the first thread that counts through the
 * handle owns the row (row.owner_ = its thread token) and adds with a plain
 * load and store. Up to SHMSTAT_XROWS other threads each take an extra row
 * of their own (plain adds too) while more than half the registry is free,
 * and give it back when they exit; any further thread adds atomically into
 * the handle's second row (acells), claimed when such a thread first
 * counts. A plain store and an atomic add never meet on one cell, and no
 * two live threads own one row, so none is lost.
 *
 * Rows are adopted, never erased. A process that closes frees its slot and
 * leaves its cells as they are; a process killed without closing keeps its
 * slot until someone sees it dead and frees it. The next claimer of that
 * slot goes on adding on top of the cells it finds. Readers sum every row
 * ever used (below the high-water mark), free or not, plus the overflow
 * row, so a process's counts are neither lost nor counted twice when it
 * dies, and no reader ever sees a total go backwards: nothing is ever moved
 * from one place to another, so there is no window in which a value is in
 * two places or in none. (The alternative of folding a dead row into a
 * "retired" array needs a crash-safe journal for the fold and makes readers
 * retry around it; adoption needs neither.)
 *
 * Dead means: the pid is gone, or reused (start time), or a zombie, or the
 * process no longer maps the segment at the address it claimed the row
 * from (it exec'd). A row whose owner this process cannot judge (another
 * pid namespace, /proc not readable) is kept.
 *
 * No free row: the handle counts into the segment's overflow row, with
 * atomic adds like every thread there, so counts still land exactly.
 *
 * The state of a slot is one 64-bit word (layout_i.h): state, owner pid and
 * a generation, changed only by CAS, so two claimers, or a claimer and a
 * reaper, can never both win one slot.
 *
 * fork(): a child inherits its parent's handles, whose rows are the
 * parent's. A pthread_atfork child handler forgets them in every handle of
 * the child, so the child claims rows of its own when it first counts (a
 * child that only execs never claims one).
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmstat_i.h"

/* Open handles of this process, for the fork handler. fork_lock also
 * serializes claims within the process, so that no claim is half done
 * when fork() copies the process. */
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shmstat *open_list;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void) { pthread_mutex_lock(&fork_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&fork_lock); }

/* Runs in the child, single-threaded, before fork() returns there. The
 * parent's slots stay the parent's; the child claims when it counts. */
static void fork_child(void)
{
	for (struct shmstat *h = open_list; h; h = h->next_open) {
		/* owner_ first: an inherited counter handle then takes the
		 * slow path, which claims, and never reads cells. */
		__atomic_store_n(&h->row.owner_, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&h->row.cells, NULL, __ATOMIC_RELAXED);
		atomic_store_explicit(&h->row_state, ROW_NONE,
				      memory_order_relaxed);
		atomic_store_explicit(&h->acells, NULL, memory_order_relaxed);
		h->slot = -1;
		h->aslot = -1;
		for (int k = 0; k < SHMSTAT_XROWS; k++) {
			__atomic_store_n(&h->xrow[k].owner, 0, __ATOMIC_RELAXED);
			h->xrow[k].cells = NULL;
			h->xrow[k].slot = -1;
		}
		atomic_store_explicit(&h->xrow_denied, false,
				      memory_order_relaxed);
	}
	pthread_mutex_unlock(&fork_lock);
}

static void atfork_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void shmstat__fork_register(struct shmstat *h)
{
	pthread_once(&atfork_once, atfork_init);
	pthread_mutex_lock(&fork_lock);
	h->next_open = open_list;
	open_list = h;
	pthread_mutex_unlock(&fork_lock);
}

void shmstat__fork_unregister(struct shmstat *h)
{
	pthread_mutex_lock(&fork_lock);
	for (struct shmstat **p = &open_list; *p; p = &(*p)->next_open) {
		if (*p == h) {
			*p = h->next_open;
			break;
		}
	}
	pthread_mutex_unlock(&fork_lock);
}

bool shmstat__slot_dead(const struct shmstat *h, const struct worker_slot *s,
			uint64_t word)
{
	uint32_t st = slot_state(word);

	if (st != SLOT_CLAIMED && st != SLOT_LIVE)
		return false;
	/* A pid from another pid namespace (a sidecar container sharing
	 * /dev/shm, say) names some other process here, or none: judging it
	 * would hand a live worker's row to a second writer. Such a slot is
	 * freed only by a process of its own namespace. */
	uint64_t ns = atomic_load_explicit(&s->pidns, memory_order_relaxed);
	uint64_t mine = shmstat__pidns();
	if (ns && mine && ns != mine)
		return false;
	/* A CLAIMED slot has no start time yet: judge by the pid alone. */
	uint64_t start = st == SLOT_LIVE
				 ? atomic_load_explicit(&s->start,
							memory_order_relaxed)
				 : 0;
	pid_t pid = slot_pid(word);
	if (!shmstat__proc_alive(pid, start))
		return true;
	if (st != SLOT_LIVE)
		return false;
	/* Alive, but does it still hold the row? After exec it no longer
	 * maps the segment where it claimed the row from. */
	uint64_t base = atomic_load_explicit(&s->map_base, memory_order_relaxed);
	if (!base || !h->seg_ino)
		return false;
	if (shmstat__proc_maps(pid, base, h->seg_ino) != 0)
		return false;
	/* Read the word again: the owner may have closed, and a new owner
	 * (whose map_base we did not read) claimed it since. */
	return atomic_load_explicit(&s->word, memory_order_acquire) == word;
}

/* Take slot w, whose word we read as `old`, for this process. */
static bool take(struct shmstat *h, uint32_t w, uint64_t old, pid_t pid,
		 uint64_t start, uint64_t *gen_out)
{
	struct worker_slot *s = &h->slots[w];
	uint64_t gen = slot_gen(old) + 1;
	uint64_t claimed = slot_word(SLOT_CLAIMED, pid, gen);

	if (!atomic_compare_exchange_strong_explicit(&s->word, &old, claimed,
						     memory_order_acq_rel,
						     memory_order_relaxed))
		return false;
	atomic_store_explicit(&s->start, start, memory_order_relaxed);
	atomic_store_explicit(&s->pidns, shmstat__pidns(), memory_order_relaxed);
	atomic_store_explicit(&s->map_base, (uint64_t)(uintptr_t)h->base,
			      memory_order_relaxed);
	atomic_store_explicit(&s->claimed_ns, shmstat__now_realtime_ns(),
			      memory_order_relaxed);
	/* Readers must include this row before we write to it. */
	uint32_t hwm = atomic_load_explicit(&h->hdr->workers_hwm,
					    memory_order_relaxed);
	while (hwm < w + 1 &&
	       !atomic_compare_exchange_weak_explicit(&h->hdr->workers_hwm, &hwm,
						      w + 1, memory_order_acq_rel,
						      memory_order_relaxed))
		;
	atomic_store_explicit(&s->word, slot_word(SLOT_LIVE, pid, gen),
			      memory_order_release);
	*gen_out = gen;
	return true;
}

/* A free slot, else one whose owner is dead: its index, or -1. */
static int32_t claim_slot(struct shmstat *h, uint64_t *gen)
{
	pid_t pid = getpid();
	uint64_t start = shmstat__proc_start(pid);

	/* First a free slot (lowest first keeps the high-water mark low and
	 * readers fast), then one whose owner died. */
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t w = 0; w < h->max_workers; w++) {
			struct worker_slot *s = &h->slots[w];
			uint64_t word = atomic_load_explicit(
				&s->word, memory_order_acquire);
			bool ok = pass == 0 ? slot_state(word) == SLOT_FREE
					    : shmstat__slot_dead(h, s, word);
			if (ok && take(h, w, word, pid, start, gen)) {
				h->owner_pid = pid;
				return (int32_t)w;
			}
		}
	}
	atomic_fetch_add_explicit(&h->hdr->row_overflows, 1,
				  memory_order_relaxed);
	atomic_store_explicit(&h->hdr->row_overflow_ns,
			      shmstat__now_realtime_ns(), memory_order_relaxed);
	shmstat__log(SHMSTAT_LOG_WARNING,
		     "shmstat: segment '%s': all %u rows are held by live "
		     "processes; process %d counts in the shared overflow row "
		     "(exact, slower; raise max_workers)",
		     h->name, h->max_workers, (int)pid);
	return -1;
}

static uint64_t *overflow_cells(const struct shmstat *h)
{
	return shmstat__row_cells(h, ROW_OVERFLOW(h->max_workers));
}

static void claim_locked(struct shmstat *h)
{
	if (atomic_load_explicit(&h->row_state, memory_order_relaxed) !=
	    ROW_NONE)
		return;
	int32_t w = claim_slot(h, &h->slot_gen);
	h->slot = w;
	__atomic_store_n(&h->row.cells,
			 w >= 0 ? shmstat__row_cells(h, (uint32_t)w)
				: overflow_cells(h),
			 __ATOMIC_RELEASE);
	atomic_store_explicit(&h->row_state, w >= 0 ? ROW_OWN : ROW_SHARED,
			      memory_order_release);
}

int shmstat__row_claim(struct shmstat *h)
{
	if (h->rdonly)
		return shmstat__err(h, SHMSTAT_ERDONLY,
				    "segment '%s' is open read-only", h->name);
	if (atomic_load_explicit(&h->row_state, memory_order_acquire) !=
	    ROW_NONE)
		return 0;
	pthread_mutex_lock(&fork_lock);
	claim_locked(h);
	pthread_mutex_unlock(&fork_lock);
	return 0;
}

/* The second row, for threads other than the owner: claimed once. */
static uint64_t *second_row(struct shmstat *h)
{
	uint64_t *c = atomic_load_explicit(&h->acells, memory_order_acquire);

	if (c)
		return c;
	pthread_mutex_lock(&fork_lock);
	c = atomic_load_explicit(&h->acells, memory_order_relaxed);
	if (!c) {
		int32_t w = claim_slot(h, &h->aslot_gen);
		h->aslot = w;
		c = w >= 0 ? shmstat__row_cells(h, (uint32_t)w)
			   : overflow_cells(h);
		atomic_store_explicit(&h->acells, c, memory_order_release);
	}
	pthread_mutex_unlock(&fork_lock);
	return c;
}

/* More than half the registry free? Then a thread may take a row of its
 * own; below that, rows are kept for processes. fork_lock held. */
static bool rows_to_spare(const struct shmstat *h)
{
	uint32_t free_slots = 0;

	for (uint32_t w = 0; w < h->max_workers; w++)
		if (slot_state(atomic_load_explicit(&h->slots[w].word,
						    memory_order_relaxed)) ==
		    SLOT_FREE)
			free_slots++;
	return free_slots > h->max_workers / 2;
}

/* Threads that took an extra row give it back when they exit. */
static pthread_key_t xrow_key;
static pthread_once_t xrow_once = PTHREAD_ONCE_INIT;

static void xrow_thread_exit(void *unused)
{
	uintptr_t me = shmstat_thread_token_();

	(void)unused;
	pthread_mutex_lock(&fork_lock);
	for (struct shmstat *h = open_list; h; h = h->next_open)
		for (int k = 0; k < SHMSTAT_XROWS; k++) {
			uintptr_t o = me;
			/* Release: our plain adds happen before the next
			 * owner's. The row stays the handle's. */
			__atomic_compare_exchange_n(&h->xrow[k].owner, &o, 0,
						    false, __ATOMIC_RELEASE,
						    __ATOMIC_RELAXED);
		}
	pthread_mutex_unlock(&fork_lock);
}

static void xrow_key_init(void)
{
	(void)pthread_key_create(&xrow_key, xrow_thread_exit);
}

/* The cells of an extra row this thread owns or can take, or NULL. */
static uint64_t *extra_row(struct shmstat *h, uintptr_t me)
{
	for (int k = 0; k < SHMSTAT_XROWS; k++)
		if (__atomic_load_n(&h->xrow[k].owner, __ATOMIC_ACQUIRE) == me)
			return h->xrow[k].cells;
	if (atomic_load_explicit(&h->xrow_denied, memory_order_relaxed))
		return NULL;
	for (int k = 0; k < SHMSTAT_XROWS; k++) {
		uintptr_t z = 0;
		if (__atomic_load_n(&h->xrow[k].owner, __ATOMIC_RELAXED) != 0 ||
		    !__atomic_compare_exchange_n(&h->xrow[k].owner, &z, me,
						 false, __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED))
			continue;
		/* Ours now. A row taken before (by a thread since gone)
		 * stays with the handle; else claim one, if rows are to
		 * spare. */
		if (!h->xrow[k].cells) {
			pthread_mutex_lock(&fork_lock);
			int32_t w = -1;
			if (rows_to_spare(h))
				w = claim_slot(h, &h->xrow[k].gen);
			if (w >= 0) {
				h->xrow[k].slot = w;
				h->xrow[k].cells =
					shmstat__row_cells(h, (uint32_t)w);
			} else {
				atomic_store_explicit(&h->xrow_denied, true,
						      memory_order_relaxed);
			}
			pthread_mutex_unlock(&fork_lock);
			if (w < 0) {
				__atomic_store_n(&h->xrow[k].owner, 0,
						 __ATOMIC_RELEASE);
				return NULL;
			}
		}
		pthread_once(&xrow_once, xrow_key_init);
		(void)pthread_setspecific(xrow_key, (void *)1);
		return h->xrow[k].cells;
	}
	return NULL;
}

/* Saturating add to a cell that other threads (or processes) add to. */
static void add_atomic(uint64_t *cell, uint64_t n)
{
	uint64_t v = __atomic_load_n(cell, __ATOMIC_RELAXED);

	/* Far from the limit a fetch-add cannot pass it: it would take 2^30
	 * concurrent adds of up to 2^32 each. */
	if (v < (UINT64_C(1) << 62) && n < (UINT64_C(1) << 32)) {
		__atomic_fetch_add(cell, n, __ATOMIC_RELAXED);
		return;
	}
	for (;;) {
		uint64_t s = shmstat__sat_add(v, n);
		if (s == v ||
		    __atomic_compare_exchange_n(cell, &v, s, true,
						__ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			return;
	}
}

/* Counter handles whose open failed point here: adds go nowhere. */
extern struct shmstat_row_ shmstat__sink_row;

void shmstat_counter_add_slow_(struct shmstat_row_ *row, uint32_t index,
			       uint64_t n)
{
	shmstat_counter_t c = { .row_ = row, .index_ = index };
	shmstat_counter_add_ts(&c, n);
}

void shmstat_counter_add_ts(const shmstat_counter_t *c, uint64_t n)
{
	if (!c || !c->row_ || c->row_ == &shmstat__sink_row)
		return;
	struct shmstat_row_ *r = c->row_;
	struct shmstat *h = (struct shmstat *)(void *)((char *)r -
						       offsetof(struct shmstat, row));
	uintptr_t me = shmstat_thread_token_();
	uint32_t i = c->index_;

	if (i >= h->max_counters)
		return;
	int st = atomic_load_explicit(&h->row_state, memory_order_acquire);
	if (st == ROW_NONE) {
		/* A fork child's first count, or a handle that never had a
		 * row claimed (a read-only one cannot get here: its opens
		 * fail). */
		if (shmstat__row_claim(h) < 0)
			return;
		st = atomic_load_explicit(&h->row_state, memory_order_acquire);
	}
	if (st == ROW_OWN) {
		uintptr_t owner = __atomic_load_n(&r->owner_, __ATOMIC_RELAXED);
		/* The first thread to count owns the row for good. */
		if (owner == 0 &&
		    __atomic_compare_exchange_n(&r->owner_, &owner, me, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			owner = me;
		if (owner == me) {
			uint64_t *cell = __atomic_load_n(&r->cells,
							 __ATOMIC_ACQUIRE) + i;
			__atomic_store_n(cell,
					 shmstat__sat_add(__atomic_load_n(
								  cell,
								  __ATOMIC_RELAXED),
							  n),
					 __ATOMIC_RELAXED);
			return;
		}
		uint64_t *x = extra_row(h, me);
		if (x) {
			uint64_t *cell = x + i;
			__atomic_store_n(cell,
					 shmstat__sat_add(__atomic_load_n(
								  cell,
								  __ATOMIC_RELAXED),
							  n),
					 __ATOMIC_RELAXED);
			return;
		}
		add_atomic(second_row(h) + i, n);
		return;
	}
	/* ROW_SHARED: the overflow row takes atomic adds only. */
	add_atomic(__atomic_load_n(&r->cells, __ATOMIC_ACQUIRE) + i, n);
}

static void release_slot(struct shmstat *h, int32_t w, uint64_t gen)
{
	struct worker_slot *s = &h->slots[w];
	uint64_t mine = slot_word(SLOT_LIVE, h->owner_pid, gen);
	uint64_t free_word = slot_word(SLOT_FREE, 0, gen + 1);

	/* XXX A claimer from another namespace that wins this slot next
	 * leaves its CLAIMED word with our pidns until it stores its own (a
	 * few instructions later): a reaper of our namespace judging it in
	 * that window goes by the pid alone. Clearing it here makes that
	 * "unknown", as in a 1.0 segment. */
	atomic_store_explicit(&s->pidns, 0, memory_order_relaxed);
	atomic_store_explicit(&s->map_base, 0, memory_order_relaxed);
	/* Release: our last increments happen before the next owner's. */
	atomic_compare_exchange_strong_explicit(&s->word, &mine, free_word,
						memory_order_release,
						memory_order_relaxed);
}

void shmstat__row_release(struct shmstat *h)
{
	/* A child created without our fork handler (raw clone) must not free
	 * its parent's slots. */
	bool ours = h->owner_pid == getpid();

	if (ours && h->slot >= 0)
		release_slot(h, h->slot, h->slot_gen);
	if (ours && h->aslot >= 0)
		release_slot(h, h->aslot, h->aslot_gen);
	for (int k = 0; k < SHMSTAT_XROWS; k++) {
		if (ours && h->xrow[k].slot >= 0)
			release_slot(h, h->xrow[k].slot, h->xrow[k].gen);
		h->xrow[k].slot = -1;
		h->xrow[k].cells = NULL;
		h->xrow[k].owner = 0;
	}
	h->slot = h->aslot = -1;
	h->row.cells = NULL;
	h->row.owner_ = 0;
	atomic_store_explicit(&h->acells, NULL, memory_order_relaxed);
	atomic_store_explicit(&h->row_state, ROW_NONE, memory_order_relaxed);
}

int shmstat_reap(shmstat_t *h, uint32_t *reaped)
{
	uint32_t n = 0;

	if (!h)
		return SHMSTAT_EINVAL;
	if (h->rdonly)
		return shmstat__err(h, SHMSTAT_ERDONLY,
				    "segment '%s' is open read-only", h->name);
	for (uint32_t w = 0; w < h->max_workers; w++) {
		struct worker_slot *s = &h->slots[w];
		uint64_t word = atomic_load_explicit(&s->word,
						     memory_order_acquire);
		if (!shmstat__slot_dead(h, s, word))
			continue;
		uint64_t free_word = slot_word(SLOT_FREE, 0, slot_gen(word) + 1);
		if (atomic_compare_exchange_strong_explicit(
			    &s->word, &word, free_word, memory_order_acq_rel,
			    memory_order_relaxed))
			n++;
	}
	if (reaped)
		*reaped = n;
	return 0;
}

uint64_t shmstat__row_stat_sum(const struct shmstat *h, enum row_stat st)
{
	uint32_t hwm = shmstat__hwm(h);
	uint64_t sum = 0;

	for (uint32_t w = 0; w < hwm; w++)
		sum += atomic_load_explicit(&shmstat__row_stats(h, w)[st],
					    memory_order_relaxed);
	sum += atomic_load_explicit(
		&shmstat__row_stats(h, ROW_OVERFLOW(h->max_workers))[st],
		memory_order_relaxed);
	return sum;
}
