/*
 * registry.c — which process owns which row of counter cells.
 *
 * Every process (every shmstat_t, in fact) that counts claims one slot of
 * the registry and writes only its own row, so no two processes write one
 * cache line on the hot path, and a plain load/add/store is exact.
 *
 * Rows are adopted, never erased. A process that closes frees its slot and
 * leaves its cells as they are; a process killed without closing keeps its
 * slot until someone sees it dead (pid + start time) and frees it. The next
 * claimer of that slot goes on adding on top of the cells it finds. Readers
 * sum every row ever used (below the high-water mark), free or not, so a
 * process's counts are neither lost nor counted twice when it dies, and no
 * reader ever sees a total go backwards: nothing is ever moved from one
 * place to another, so there is no window in which a value is in two
 * places or in none. (The alternative of folding a dead row into a
 * "retired" array needs a crash-safe journal for the fold and makes readers
 * retry around it; adoption needs neither.)
 *
 * The state of a slot is one 64-bit word (layout_i.h): state, owner pid and
 * a generation, changed only by CAS, so two claimers, or a claimer and a
 * reaper, can never both win one slot.
 *
 * fork(): a child inherits its parent's handles, whose row pointer points
 * at the parent's row. A pthread_atfork child handler gives every open
 * handle of the child a row of its own before fork() returns in the child.
 */
#include <pthread.h>
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

static int claim_locked(struct shmstat *h);

/* Runs in the child, single-threaded, before fork() returns there. */
static void fork_child(void)
{
	for (struct shmstat *h = open_list; h; h = h->next_open) {
		if (h->slot < 0 && !h->row.cells)
			continue; /* never counted: claims lazily as usual */
		h->slot = -1; /* the parent's slot stays the parent's */
		if (h->row_fallback)
			free(h->row.cells);
		h->row.cells = NULL;
		h->row_fallback = false;
		if (claim_locked(h) < 0)
			shmstat__log(SHMSTAT_LOG_ERROR,
				     "shmstat: child %d found no free row in "
				     "segment '%s': %s; its counts are lost",
				     (int)getpid(), h->name, h->errstr);
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

bool shmstat__slot_dead(const struct worker_slot *s, uint64_t word)
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
	return !shmstat__proc_alive(slot_pid(word), start);
}

/*
 * A row that cannot be had in the segment: the process still needs
 * somewhere to count so the inline increment cannot fault. Process-local,
 * freed by shmstat_close() (counter handles die with their shmstat_t).
 */
static int fallback_row(struct shmstat *h)
{
	h->row.cells = calloc(h->max_counters, sizeof(uint64_t));
	h->row_fallback = h->row.cells != NULL;
	return h->row.cells ? 0 : SHMSTAT_ENOMEM;
}

/* Take slot w, whose word we read as `old`, for this process. */
static bool take(struct shmstat *h, uint32_t w, uint64_t old, pid_t pid,
		 uint64_t start)
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
	h->slot = (int32_t)w;
	h->slot_gen = gen;
	h->owner_pid = pid;
	h->row.cells = shmstat__row_cells(h, w);
	return true;
}

static int claim_locked(struct shmstat *h)
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
					    : shmstat__slot_dead(s, word);
			if (ok && take(h, w, word, pid, start))
				return 0;
		}
	}
	atomic_fetch_add_explicit(&h->hdr->row_overflows, 1,
				  memory_order_relaxed);
	int rc = shmstat__err(h, SHMSTAT_EFULL,
			      "segment '%s': all %u rows are held by live "
			      "processes (raise max_workers)",
			      h->name, h->max_workers);
	if (fallback_row(h) < 0)
		return shmstat__err(h, SHMSTAT_ENOMEM, "out of memory");
	return rc;
}

int shmstat__row_claim(struct shmstat *h)
{
	int rc = 0;

	pthread_mutex_lock(&fork_lock);
	if (!h->row.cells)
		rc = claim_locked(h);
	pthread_mutex_unlock(&fork_lock);
	return rc;
}

void shmstat__row_release(struct shmstat *h)
{
	if (h->row_fallback) {
		free(h->row.cells);
		h->row_fallback = false;
	}
	h->row.cells = NULL;
	if (h->slot < 0)
		return;
	/* A child created without our fork handler (raw clone) must not free
	 * its parent's slot. */
	if (h->owner_pid == getpid()) {
		struct worker_slot *s = &h->slots[h->slot];
		uint64_t mine = slot_word(SLOT_LIVE, h->owner_pid, h->slot_gen);
		uint64_t free_word = slot_word(SLOT_FREE, 0, h->slot_gen + 1);
		/* XXX A claimer from another namespace that wins this slot
		 * next leaves its CLAIMED word with our pidns until it stores
		 * its own (a few instructions later): a reaper of our
		 * namespace judging it in that window goes by the pid alone.
		 * Clearing it here makes that "unknown", as in a 1.0
		 * segment. */
		atomic_store_explicit(&s->pidns, 0, memory_order_relaxed);
		/* Release: our last increments happen before the next owner's. */
		atomic_compare_exchange_strong_explicit(&s->word, &mine,
							free_word,
							memory_order_release,
							memory_order_relaxed);
	}
	h->slot = -1;
}

int shmstat_reap(shmstat_t *h, uint32_t *reaped)
{
	uint32_t n = 0;

	if (!h)
		return SHMSTAT_EINVAL;
	for (uint32_t w = 0; w < h->max_workers; w++) {
		struct worker_slot *s = &h->slots[w];
		uint64_t word = atomic_load_explicit(&s->word,
						     memory_order_acquire);
		if (!shmstat__slot_dead(s, word))
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
	return sum;
}
