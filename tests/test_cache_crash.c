/*
 * test_cache_crash.c — a cache writer that dies (SIGKILL) or stops
 * (SIGSTOP) while it holds its stripe lock, at each stage of a set (the
 * shmstat__cache_hook test hook parks it there): the others go on within
 * the bound, the entry reads old or new, and nothing leaks.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache_i.h"
#include "shmstat_i.h"
#include "test_cache_value.h"
#include "testutil.h"

#define MAXV 1024u
#define BOUND_MS 100u

struct park {
	_Atomic int target; /* stage to park at */
	_Atomic int parked;
	_Atomic int stop;   /* 1: SIGSTOP self there; 0: wait to be killed */
};
static struct park *park;

static void park_hook(int stage)
{
	if (stage != atomic_load(&park->target))
		return;
	atomic_store(&park->parked, 1);
	if (atomic_load(&park->stop)) {
		raise(SIGSTOP);
		return;
	}
	for (int i = 0; i < 60000; i++) { /* bounded: the test kills us */
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
	_exit(3);
}

static int setup(void **state)
{
	struct tu_seg *s = calloc(1, sizeof(*s));
	shmstat_options_t o = { .size = 4u << 20, .max_counters = 16,
				.max_workers = 16, .cache_max_value = MAXV };
	tu_seg_create(s, "crash", &o);
	*state = s;
	park = tu_shared(sizeof(*park));
	shmstat__cache_set_lock_timeout(BOUND_MS);
	return 0;
}

static int teardown(void **state)
{
	tu_shared_free(park, sizeof(*park));
	return tu_seg_teardown(state);
}

static uint64_t now_ms(void) { return shmstat__now_mono_ns() / 1000000u; }

/*
 * The end of a storm's writer that finished all its sets before its kill
 * came (its parent, polling the writers one after another, was slowed by
 * a loaded machine): it waits for that kill, so that every round ends in
 * one as the parent asserts. alarm() bounds the wait; SIGALRM then ends
 * the child with a status the parent reports.
 */
static void await_kill(void)
{
	alarm(120);
	for (;;)
		pause();
}

/* The value parked writers set: of another size class than "old", and too
 * large for a home block (an entry of more than 128 bytes), so that the set
 * writes a new block and publishes it (a value of the old one's class, or
 * any that fits the home block "old" may be in, is written in place: see
 * the in-place tests below). */
#define NEWV                                                                   \
	"new value, of a size class of its own, and too large for a home "     \
	"block: more than ninety-six bytes"

/* Fork a writer that sets k = val and parks at `stage`. */
static pid_t parked_writer_of(struct tu_seg *s, int stage, int stop,
			      const char *val)
{
	atomic_store(&park->target, stage);
	atomic_store(&park->parked, 0);
	atomic_store(&park->stop, stop);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmstat__cache_hook = park_hook;
		int rc = shmstat_cache_set(s->h, "k", 1, val, strlen(val), 0,
					   0);
		_exit(rc == 0 ? 0 : 1);
	}
	struct timespec ms = { 0, 1000000 };
	for (int i = 0; i < 10000 && !atomic_load(&park->parked); i++)
		nanosleep(&ms, NULL);
	assert_true(atomic_load(&park->parked));
	if (stop) { /* wait until it is really stopped */
		int st;
		assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
		assert_true(WIFSTOPPED(st));
	}
	return pid;
}

/* Fork a writer that sets k = NEWV and parks at `stage`. */
static pid_t parked_writer(struct tu_seg *s, int stage, int stop)
{
	return parked_writer_of(s, stage, stop, NEWV);
}

static void get_is(shmstat_t *h, const char *want)
{
	char buf[128];
	size_t n;
	assert_int_equal(shmstat_cache_get(h, "k", 1, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
}

/* Removing every entry leaves no block in use: the dead writer's block
 * was freed from its journal (a flush visits every stripe's lock, which
 * repairs it if nobody did before). */
static void nothing_leaked(shmstat_t *h)
{
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_flush(h, NULL), 0);
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes_used, 0);
}

static void killed_at(void **state, int stage, const char *expect)
{
	struct tu_seg *s = *state;

	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "old", 3, 0, 0), 0);
	pid_t pid = parked_writer(s, stage, 0);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid, 10000), 128 + SIGKILL);
	/* Readers go on at once (a reader repairs a dead holder's odd
	 * bucket with a trylock); the value is old or new, never a mix. */
	uint64_t t0 = now_ms();
	get_is(s->h, expect);
	assert_true(now_ms() - t0 < 10 * BOUND_MS);
	/* Writers too: the robust lock hands the next one EOWNERDEAD. */
	assert_int_equal(shmstat_cache_set(s->h, "other", 5, "x", 1, 0, 0), 0);
	assert_int_equal(shmstat_cache_delete(s->h, "other", 5), 0);
	get_is(s->h, expect);
	nothing_leaked(s->h);
	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "again", 5, 0, 0), 0);
	get_is(s->h, "again");
}

static void a_writer_killed_holding_the_lock_leaves_the_old_value(void **state)
{
	killed_at(state, CACHE_HOOK_LOCKED, "old");
}

static void a_writer_killed_before_publishing_leaves_the_old_value(void **state)
{
	killed_at(state, CACHE_HOOK_WRITTEN, "old");
}

static void a_writer_killed_after_publishing_leaves_the_new_value(void **state)
{
	killed_at(state, CACHE_HOOK_PUBLISHED, NEWV);
}

/*
 * The process that repairs a dead writer's stripe dies too, in the middle
 * of the repair: the next one repairs it again, and the first writer's
 * block is not lost.
 */
static void a_repairer_killed_while_repairing_leaks_nothing(void **state)
{
	struct tu_seg *s = *state;

	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "old", 3, 0, 0), 0);
	pid_t pid = parked_writer(s, CACHE_HOOK_WRITTEN, 0);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid, 10000), 128 + SIGKILL);
	/* The next writer of the stripe repairs it, and dies there. */
	pid = parked_writer(s, CACHE_HOOK_SETTLING, 0);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid, 10000), 128 + SIGKILL);
	get_is(s->h, "old");
	nothing_leaked(s->h);
}

/*
 * The holder is stopped inside its odd-version window: a get on its bucket
 * reports a miss, a set of the key SHMSTAT_EBUSY, each after the bound and
 * not waiting for the holder (asserted with a generous margin: within 2 s,
 * while the holder stays stopped for longer). Keys of other stripes are
 * untouched: their sets succeed. After SIGCONT the writer finishes and all
 * is consistent.
 */
#define MARGIN_MS 2000u

static void a_stopped_writer_makes_nobody_wait_past_the_bound(void **state)
{
	struct tu_seg *s = *state;
	char buf[128];
	size_t n;

	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "old", 3, 0, 0), 0);
	pid_t pid = parked_writer(s, CACHE_HOOK_PUBLISHED, 1);
	uint64_t t0 = now_ms();
	assert_int_equal(shmstat_cache_get(s->h, "k", 1, buf, sizeof(buf), &n),
			 SHMSTAT_ENOTFOUND);
	uint64_t t1 = now_ms();
	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "mine", 4, 0, 0),
			 SHMSTAT_EBUSY);
	uint64_t t2 = now_ms();
	print_message("stopped holder: get gave up after %llu ms, set after "
		      "%llu ms (bound %u ms)\n",
		      (unsigned long long)(t1 - t0),
		      (unsigned long long)(t2 - t1), BOUND_MS);
	assert_true(t1 - t0 < MARGIN_MS);
	assert_true(t2 - t1 < MARGIN_MS);
	/* A key in another stripe: its set succeeds (one in the stopped
	 * stripe would give SHMSTAT_EBUSY, as above). */
	char key[16];
	int done = 0;
	for (int i = 0; i < 1000 && !done; i++) {
		int kl = snprintf(key, sizeof(key), "o%d", i);
		int rc = shmstat_cache_set(s->h, key, (size_t)kl, "v", 1, 0, 0);
		if (rc == 0) {
			assert_int_equal(shmstat_cache_delete(s->h, key,
							      (size_t)kl),
					 0);
			done = 1;
		} else {
			assert_int_equal(rc, SHMSTAT_EBUSY);
		}
	}
	assert_true(done);
	/* The holder was stopped all along. */
	int st;
	assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
	kill(pid, SIGCONT);
	assert_int_equal(tu_wait(pid, 10000), 0);
	get_is(s->h, NEWV);
	nothing_leaked(s->h);
}

/*
 * A lock held by a stopped process: a child stores its pid in the lock
 * word (what holding it means) and stops itself. Returns its pid; the
 * caller kills it (a dead holder: the next caller takes the lock over).
 */
static pid_t stopped_holder(shmstat_t *h, int kind, uint32_t first,
			    uint32_t last)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (uint32_t i = first; i <= last; i++) {
			uint64_t *w = shmstat__cache_lock_word(h, kind, i);
			uint64_t free_w = 0;
			if (!w)
				continue;
			for (int t = 0; t < 100000 &&
					!__atomic_compare_exchange_n(
						w, &free_w, (uint64_t)getpid(),
						false, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED);
			     t++)
				free_w = 0;
		}
		raise(SIGSTOP);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
	assert_true(WIFSTOPPED(st));
	return pid;
}

static void end_holder(pid_t pid)
{
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid, 10000), 128 + SIGKILL);
}

static uint64_t live_entries(shmstat_t *h)
{
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	return st.entries;
}

/*
 * A stopped holder of one stripe: flush and clear wait for it once (the
 * call's deadline), skip its stripe, do all the rest, and say so: EBUSY
 * with the count of what they removed. (Before: 100 ms per non-empty
 * bucket of that stripe, seconds in all.)
 */
static void a_stopped_stripe_holder_bounds_flush_and_clear(void **state)
{
	struct tu_seg *s = *state;
	char key[16];
	uint64_t n = 0, total = 3000;

	for (uint32_t i = 0; i < total; i++) {
		int kl = snprintf(key, sizeof(key), "s%u", i);
		assert_int_equal(shmstat_cache_set(s->h, key, (size_t)kl, "v",
						   1, 0, 0),
				 0);
	}
	pid_t pid = stopped_holder(s->h, 1, 0, 0);
	uint64_t t0 = now_ms();
	assert_int_equal(shmstat_cache_clear(s->h, "s1*", &n), SHMSTAT_EBUSY);
	uint64_t t1 = now_ms();
	assert_non_null(strstr(shmstat_errstr(s->h), "skipped"));
	assert_true(n > 0 && n < 1111);
	assert_int_equal(shmstat_cache_flush(s->h, &n), SHMSTAT_EBUSY);
	uint64_t t2 = now_ms();
	print_message("stopped stripe holder: clear %llu ms, flush %llu ms "
		      "(bound %u ms)\n",
		      (unsigned long long)(t1 - t0),
		      (unsigned long long)(t2 - t1), BOUND_MS);
	assert_true(t1 - t0 < 10 * BOUND_MS);
	assert_true(t2 - t1 < 10 * BOUND_MS);
	uint64_t left = live_entries(s->h);
	assert_true(n > 0 && left > 0 && left < total / 16);
	end_holder(pid);
	assert_int_equal(shmstat_cache_flush(s->h, &n), 0);
	assert_int_equal(n, left);
	nothing_leaked(s->h);
}

/*
 * A stopped holder of a size class's lock: a flush waits for it once,
 * removes every entry (their blocks stay in use until the holder goes)
 * and says EBUSY (before: 100 ms per entry, 10 s for these 100, and 0).
 * A set that must steal a page from that class gives up at once instead
 * of waiting on each of the page's blocks (before: past 20 s); with home
 * blocks, one that fits its free home succeeds at once, taking no class
 * lock. The values are of 100 bytes: too large for a home block, so they
 * live in the slab in both runs.
 */
static void a_stopped_class_holder_bounds_flush_and_a_page_stealing_set(
	void **state)
{
	struct tu_seg *s = *state;
	char key[16];
	uint64_t n = 0;
	shmstat_cache_stats_t st;

	char v100[100];
	shmstat_info_t info;
	memset(v100, 'c', sizeof(v100));
	assert_int_equal(shmstat_info(s->h, &info), 0);
	for (uint32_t i = 0; i < 100; i++) {
		int kl = snprintf(key, sizeof(key), "c%u", i);
		assert_int_equal(shmstat_cache_set(s->h, key, (size_t)kl, v100,
						   sizeof(v100), 0, 0),
				 0);
	}
	/* Their class: 160 bytes (classes 64, 80, 96, 128, 160, ...). */
	pid_t pid = stopped_holder(s->h, 2, 4, 4);
	uint64_t t0 = now_ms();
	assert_int_equal(shmstat_cache_flush(s->h, &n), SHMSTAT_EBUSY);
	uint64_t t1 = now_ms();
	assert_int_equal(n, 100);
	assert_int_equal(live_entries(s->h), 0);
	assert_true(t1 - t0 < 10 * BOUND_MS);
	end_holder(pid);
	assert_int_equal(shmstat_cache_flush(s->h, &n), 0);
	nothing_leaked(s->h);

	/* Every page to one class of large values... */
	unsigned char big[900];
	memset(big, 'b', sizeof(big));
	for (uint32_t i = 0; i < 20000; i++) {
		int kl = snprintf(key, sizeof(key), "b%u", i);
		assert_int_equal(shmstat_cache_set(s->h, key, (size_t)kl, big,
						   sizeof(big), 0, 0),
				 0);
		if (i % 500 == 499) {
			assert_int_equal(shmstat_cache_stats(s->h, &st), 0);
			if (st.evictions > 0)
				break;
		}
	}
	assert_true(st.evictions > 0);
	/* ... whose lock (every class but the small one) a stopped process
	 * holds: a small value needs a page, and none can be emptied. */
	pid = stopped_holder(s->h, 2, 1, 63);
	t0 = now_ms();
	int rc = shmstat_cache_set(s->h, "small", 5, "x", 1, 0, 0);
	t1 = now_ms();
	print_message("page-stealing set with a stopped class holder: %d "
		      "after %llu ms\n",
		      rc, (unsigned long long)(t1 - t0));
	if (info.cache_home_blocks)
		assert_int_equal(rc, 0); /* its home was free */
	else
		assert_true(rc == SHMSTAT_EFULL || rc == SHMSTAT_EBUSY);
	assert_true(t1 - t0 < 10 * BOUND_MS);
	end_holder(pid);
	assert_int_equal(shmstat_cache_set(s->h, "small", 5, "x", 1, 0, 0), 0);
	nothing_leaked(s->h);
}

/*
 * A holder killed and not yet reaped by its parent (a zombie, as in a
 * prefork master between SIGKILL and waitpid) is dead: its lock is taken
 * over at once, not waited for until the deadline.
 */
static void a_killed_holder_not_yet_reaped_is_taken_over(void **state)
{
	struct tu_seg *s = *state;

	pid_t pid = stopped_holder(s->h, 1, 0, 63); /* every stripe */
	kill(pid, SIGKILL);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(shmstat_cache_set(s->h, "z", 1, "v", 1, 0, 0), 0);
	uint64_t t1 = now_ms();
	print_message("set over a zombie holder: %llu ms\n",
		      (unsigned long long)(t1 - t0));
	assert_true(t1 - t0 < BOUND_MS / 2);
	assert_int_equal(tu_wait(pid, 10000), 128 + SIGKILL);
	assert_int_equal(shmstat_cache_exists(s->h, "z", 1), 1);
	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "v", 1, 0, 0), 0);
	get_is(s->h, "v");
	nothing_leaked(s->h);
}

/*
 * Writers killed at random moments, over and over, while they set and
 * delete (inside the allocator's locks too): afterwards every entry
 * verifies and removing them all leaves no block in use.
 */
static void writers_killed_at_random_leak_nothing(void **state)
{
	struct tu_seg *s = *state;
	_Atomic uint64_t *progress = tu_shared(sizeof(uint64_t) * 4);
	uint32_t seed = 12345;

	for (int round = 0; round < 12; round++) {
		pid_t pid[4];
		for (int w = 0; w < 4; w++) {
			atomic_store(&progress[w], 0);
			pid[w] = fork();
			assert_true(pid[w] >= 0);
			if (pid[w] == 0) {
				shmstat_t *h = NULL;
				char key[16];
				unsigned char val[MAXV];
				if (shmstat_open(s->name, NULL, &h))
					_exit(2);
				for (uint32_t i = 0; i < 2000000; i++) {
					int kl = snprintf(key, sizeof(key),
							  "r%u", i % 500);
					/* Every version of a key differs:
					 * a mix of two fails the check. */
					size_t vl = make_value(
						val, i % 500,
						i * 4 + (uint32_t)w);
					if (i % 5 == 4)
						shmstat_cache_delete(h, key,
								     (size_t)kl);
					else
						shmstat_cache_set(h, key,
								  (size_t)kl,
								  val, vl, 0,
								  0);
					atomic_store(&progress[w], i + 1);
				}
				await_kill();
			}
		}
		/* Let each get some work done, then kill them all. */
		seed = seed * 1664525u + 1013904223u;
		uint64_t want = 200 + seed % 3000;
		struct timespec ms = { 0, 1000000 };
		for (int w = 0; w < 4; w++) {
			for (int i = 0; i < 20000 &&
					atomic_load(&progress[w]) < want;
			     i++)
				nanosleep(&ms, NULL);
			kill(pid[w], SIGKILL);
		}
		for (int w = 0; w < 4; w++)
			assert_int_equal(tu_wait(pid[w], 10000), 128 + SIGKILL);
	}
	/* Every value is one version's whole value, of its own key. */
	char key[16];
	unsigned char buf[MAXV];
	int present = 0;
	for (uint32_t k = 0; k < 500; k++) {
		size_t n;
		int kl = snprintf(key, sizeof(key), "r%u", k);
		if (shmstat_cache_get(s->h, key, (size_t)kl, buf, sizeof(buf),
				      &n) != 0)
			continue;
		present++;
		assert_true(check_value(buf, n, k));
	}
	assert_true(present > 0); /* the check did look at values */
	assert_int_equal(shmstat_cache_flush(s->h, NULL), 0);
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_stats(s->h, &st), 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes_used, 0);
	tu_shared_free(progress, sizeof(uint64_t) * 4);
}

/* A value of one size class that proves itself: key, version, and bytes
 * derived from both. */
static void fixed_value(unsigned char *v, uint32_t key, uint32_t ver)
{
	memcpy(v, &key, 4);
	memcpy(v + 4, &ver, 4);
	for (int i = 8; i < 64; i++)
		v[i] = (unsigned char)(key * 31 + ver * 17 + (uint32_t)i);
}

static bool fixed_ok(const unsigned char *v, size_t n, uint32_t key)
{
	uint32_t k, ver;
	unsigned char want[64];
	if (n != 64)
		return false;
	memcpy(&k, v, 4);
	memcpy(&ver, v + 4, 4);
	fixed_value(want, key, ver);
	return k == key && memcmp(v, want, 64) == 0;
}

/*
 * The same storm with every value of one size class, so that overwrites
 * go through the stripes' spare blocks: killed anywhere in there, a key
 * still reads one whole version of its own, and nothing leaks.
 */
static void overwriters_of_one_class_killed_at_random_leak_nothing(
	void **state)
{
	struct tu_seg *s = *state;
	_Atomic uint64_t *progress = tu_shared(sizeof(uint64_t) * 4);
	uint32_t seed = 777;

	for (int round = 0; round < 12; round++) {
		pid_t pid[4];
		for (int w = 0; w < 4; w++) {
			atomic_store(&progress[w], 0);
			pid[w] = fork();
			assert_true(pid[w] >= 0);
			if (pid[w] == 0) {
				shmstat_t *h = NULL;
				char key[16];
				unsigned char val[64];
				if (shmstat_open(s->name, NULL, &h))
					_exit(2);
				for (uint32_t i = 0; i < 2000000; i++) {
					uint32_t k = (i * 7 + (uint32_t)w) % 300;
					int kl = snprintf(key, sizeof(key),
							  "f%u", k);
					fixed_value(val, k, i * 4 + (uint32_t)w);
					shmstat_cache_set(h, key, (size_t)kl,
							  val, 64, 0, 0);
					atomic_store(&progress[w], i + 1);
				}
				await_kill();
			}
		}
		seed = seed * 1664525u + 1013904223u;
		uint64_t want = 200 + seed % 3000;
		struct timespec ms = { 0, 1000000 };
		for (int w = 0; w < 4; w++) {
			for (int i = 0; i < 20000 &&
					atomic_load(&progress[w]) < want;
			     i++)
				nanosleep(&ms, NULL);
			kill(pid[w], SIGKILL);
		}
		for (int w = 0; w < 4; w++)
			assert_int_equal(tu_wait(pid[w], 10000), 128 + SIGKILL);
	}
	char key[16];
	unsigned char buf[64];
	int present = 0;
	for (uint32_t k = 0; k < 300; k++) {
		size_t n;
		int kl = snprintf(key, sizeof(key), "f%u", k);
		if (shmstat_cache_get(s->h, key, (size_t)kl, buf, sizeof(buf),
				      &n) != 0)
			continue;
		present++;
		assert_true(fixed_ok(buf, n, k));
	}
	assert_true(present > 0);
	nothing_leaked(s->h);
	tu_shared_free(progress, sizeof(uint64_t) * 4);
}

/*
 * A value of the old one's size class is written over it in place. A
 * writer killed halfway through that copy leaves a torn value in the
 * block: the next caller to take the stripe finds the in-place record,
 * sees the bucket still odd and removes the entry. So the key is absent
 * (never half old, half new), a neighbour of the same bucket keeps its
 * value, and nothing leaks.
 */
static void a_writer_killed_mid_overwrite_in_place_loses_only_that_entry(
	void **state)
{
	struct tu_seg *s = *state;
	char buf[64];
	size_t n;

	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "old-value", 9, 0, 0),
			 0);
	pid_t pid = parked_writer_of(s, CACHE_HOOK_OVERWRITING, 0, "new-value");
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid, 10000), 128 + SIGKILL);
	uint64_t t0 = now_ms();
	assert_int_equal(shmstat_cache_get(s->h, "k", 1, buf, sizeof(buf), &n),
			 SHMSTAT_ENOTFOUND);
	assert_true(now_ms() - t0 < 10 * BOUND_MS);
	assert_int_equal(shmstat_cache_exists(s->h, "k", 1), 0);
	nothing_leaked(s->h);
	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "again", 5, 0, 0), 0);
	get_is(s->h, "again");
	/* Again, and the process that repairs it dies in the repair too: the
	 * next one finishes it. */
	pid = parked_writer_of(s, CACHE_HOOK_OVERWRITING, 0, "third");
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid, 10000), 128 + SIGKILL);
	pid = parked_writer_of(s, CACHE_HOOK_SETTLING, 0, "fourth");
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid, 10000), 128 + SIGKILL);
	assert_int_equal(shmstat_cache_get(s->h, "k", 1, buf, sizeof(buf), &n),
			 SHMSTAT_ENOTFOUND);
	nothing_leaked(s->h);
}

/* The same, killed before the copy (holding the lock) or stopped in the
 * middle of it: the first leaves the old value whole; the second makes a
 * get of the key a miss after the bound (never the torn value), and the
 * new value once it goes on. */
static void a_writer_stopped_mid_overwrite_in_place_shows_no_torn_value(
	void **state)
{
	struct tu_seg *s = *state;
	char buf[64];
	size_t n;

	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "old-value", 9, 0, 0),
			 0);
	pid_t pid = parked_writer_of(s, CACHE_HOOK_LOCKED, 0, "new-value");
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid, 10000), 128 + SIGKILL);
	get_is(s->h, "old-value");
	pid = parked_writer_of(s, CACHE_HOOK_OVERWRITING, 1, "new-value");
	uint64_t t0 = now_ms();
	assert_int_equal(shmstat_cache_get(s->h, "k", 1, buf, sizeof(buf), &n),
			 SHMSTAT_ENOTFOUND);
	assert_true(now_ms() - t0 < MARGIN_MS);
	int st;
	assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
	kill(pid, SIGCONT);
	assert_int_equal(tu_wait(pid, 10000), 0);
	get_is(s->h, "new-value");
	nothing_leaked(s->h);
}

/* A value of VBIG bytes that proves itself: its version at both ends and
 * in every byte between. A reader that saw two versions (a torn copy)
 * fails the check. */
#define VBIG 1000u
static void big_value(unsigned char *v, uint32_t ver)
{
	memcpy(v, &ver, 4);
	for (uint32_t i = 4; i < VBIG - 4; i++)
		v[i] = (unsigned char)(ver * 13 + i);
	memcpy(v + VBIG - 4, &ver, 4);
}

static bool big_ok(const unsigned char *v, size_t n)
{
	uint32_t a, b;
	if (n != VBIG)
		return false;
	memcpy(&a, v, 4);
	memcpy(&b, v + VBIG - 4, 4);
	if (a != b)
		return false;
	for (uint32_t i = 4; i < VBIG - 4; i++)
		if (v[i] != (unsigned char)(a * 13 + i))
			return false;
	return true;
}

/* In the storm's writers: hold the in-place copy open for ~50 us, so
 * that most kills land in the middle of a copy. */
static void slow_copy_hook(int stage)
{
	if (stage != CACHE_HOOK_OVERWRITING)
		return;
	uint64_t end = shmstat__now_mono_ns() + 50000;
	while (shmstat__now_mono_ns() < end)
		;
}

struct storm {
	_Atomic uint64_t progress[3];
	_Atomic int stop;
	_Atomic uint64_t hits, misses, torn, errors;
};

/*
 * Writers overwrite one hot key in place (every value 1000 bytes, one size
 * class) and are killed at random moments, over and over, while readers
 * in other processes read it all along and check every value they get.
 * No reader ever sees a torn value; after each repair the key reads a
 * whole version or is absent; at the end, removing everything leaves no
 * block in use. The writers hold each copy open a little (a test hook),
 * so that most kills land in the middle of one. Bounded: 12 rounds, each
 * writer killed after at most 320 sets (or 20 s); readers stop when told
 * or after 60 s.
 */
static void in_place_overwriters_of_one_hot_key_killed_at_random_tear_nothing(
	void **state)
{
	struct tu_seg *s = *state;
	struct storm *sm = tu_shared(sizeof(*sm));
	unsigned char v[VBIG];
	uint32_t seed = 4711;
	pid_t rd[2];
	int dropped = 0; /* rounds whose repair removed a torn entry */

	big_value(v, 0);
	assert_int_equal(shmstat_cache_set(s->h, "hot", 3, v, VBIG, 0, 0), 0);
	for (int r = 0; r < 2; r++) {
		rd[r] = fork();
		assert_true(rd[r] >= 0);
		if (rd[r] == 0) {
			shmstat_t *h = NULL;
			unsigned char buf[VBIG];
			uint64_t end = now_ms() + 60000;
			if (shmstat_open(s->name, NULL, &h))
				_exit(2);
			while (!atomic_load(&sm->stop) && now_ms() < end) {
				size_t n = 0;
				int rc = shmstat_cache_get(h, "hot", 3, buf,
							   sizeof(buf), &n);
				if (rc == 0 && big_ok(buf, n))
					atomic_fetch_add(&sm->hits, 1);
				else if (rc == 0)
					atomic_fetch_add(&sm->torn, 1);
				else if (rc == SHMSTAT_ENOTFOUND)
					atomic_fetch_add(&sm->misses, 1);
				else
					atomic_fetch_add(&sm->errors, 1);
			}
			_exit(0);
		}
	}
	for (int round = 0; round < 12; round++) {
		pid_t pid[3];
		for (int w = 0; w < 3; w++) {
			atomic_store(&sm->progress[w], 0);
			pid[w] = fork();
			assert_true(pid[w] >= 0);
			if (pid[w] == 0) {
				shmstat_t *h = NULL;
				unsigned char val[VBIG];
				if (shmstat_open(s->name, NULL, &h))
					_exit(2);
				shmstat__cache_hook = slow_copy_hook;
				for (uint32_t i = 0; i < 2000000; i++) {
					big_value(val, i * 3 + (uint32_t)w + 1);
					shmstat_cache_set(h, "hot", 3, val, VBIG,
							  0, 0);
					atomic_store(&sm->progress[w], i + 1);
				}
				await_kill();
			}
		}
		seed = seed * 1664525u + 1013904223u;
		uint64_t want = 20 + seed % 300;
		struct timespec ms = { 0, 1000000 };
		for (int w = 0; w < 3; w++) {
			for (int i = 0; i < 20000 &&
					atomic_load(&sm->progress[w]) < want;
			     i++)
				nanosleep(&ms, NULL);
			kill(pid[w], SIGKILL);
		}
		for (int w = 0; w < 3; w++)
			assert_int_equal(tu_wait(pid[w], 10000), 128 + SIGKILL);
		/* Repaired (the next caller of the stripe): whole or absent. */
		unsigned char buf[VBIG];
		size_t n = 0;
		int rc = shmstat_cache_get(s->h, "hot", 3, buf, sizeof(buf), &n);
		assert_true(rc == SHMSTAT_ENOTFOUND || (rc == 0 && big_ok(buf, n)));
		dropped += rc == SHMSTAT_ENOTFOUND;
	}
	atomic_store(&sm->stop, 1);
	for (int r = 0; r < 2; r++)
		assert_int_equal(tu_wait(rd[r], 70000), 0);
	print_message("in-place storm: %d of 12 rounds killed a copy midway; "
		      "readers: %llu whole hits, %llu misses, %llu torn, "
		      "%llu errors\n",
		      dropped, (unsigned long long)atomic_load(&sm->hits),
		      (unsigned long long)atomic_load(&sm->misses),
		      (unsigned long long)atomic_load(&sm->torn),
		      (unsigned long long)atomic_load(&sm->errors));
	assert_int_equal(atomic_load(&sm->torn), 0);
	assert_int_equal(atomic_load(&sm->errors), 0);
	assert_true(atomic_load(&sm->hits) > 0); /* the check did look */
	/* ... and kills did land inside copies (the writers spend most of
	 * their time there). */
	assert_true(dropped > 0);
	nothing_leaked(s->h);
	big_value(v, 7);
	assert_int_equal(shmstat_cache_set(s->h, "hot", 3, v, VBIG, 0, 0), 0);
	tu_shared_free(sm, sizeof(*sm));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(a_writer_killed_holding_the_lock_leaves_the_old_value),
		T(a_writer_killed_before_publishing_leaves_the_old_value),
		T(a_writer_killed_after_publishing_leaves_the_new_value),
		T(a_repairer_killed_while_repairing_leaks_nothing),
		T(a_stopped_writer_makes_nobody_wait_past_the_bound),
		T(writers_killed_at_random_leak_nothing),
		T(a_stopped_stripe_holder_bounds_flush_and_clear),
		T(a_killed_holder_not_yet_reaped_is_taken_over),
		T(overwriters_of_one_class_killed_at_random_leak_nothing),
		T(a_stopped_class_holder_bounds_flush_and_a_page_stealing_set),
		T(a_writer_killed_mid_overwrite_in_place_loses_only_that_entry),
		T(a_writer_stopped_mid_overwrite_in_place_shows_no_torn_value),
		T(in_place_overwriters_of_one_hot_key_killed_at_random_tear_nothing),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
