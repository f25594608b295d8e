/*
 * test_counters.c — named counters and gauges (shm/directory.c): names,
 * kinds, a full directory, reset, iteration, and exactness across
 * processes, including killed ones, forks and racing resets.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "testutil.h"

static int64_t value_of(shmstat_t *h, const char *name)
{
	shmstat_stat_t st;
	int rc = shmstat_stat_read(h, name, &st);
	if (rc != 0)
		fail_msg("stat %s: %s", name, shmstat_errstr(h));
	return st.value;
}

static void a_counter_is_created_on_first_get_and_counts(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c, c2;
	int64_t v;

	assert_int_equal(shmstat_counter_open(s->h, "filter_stats:total", &c), 0);
	shmstat_counter_incr(c);
	shmstat_counter_add(c, 41);
	assert_int_equal(shmstat_counter_read(s->h, c, &v), 0);
	assert_int_equal(v, 42);
	/* The same name is the same counter. */
	assert_int_equal(shmstat_counter_open(s->h, "filter_stats:total", &c2), 0);
	assert_int_equal(c.index_, c2.index_);
	assert_int_equal(shmstat_counter_add_by_name(s->h, "filter_stats:total", 8), 0);
	assert_int_equal(value_of(s->h, "filter_stats:total"), 50);
	shmstat_info_t in;
	shmstat_info(s->h, &in);
	assert_int_equal(in.counters_used, 1);
}

static void another_process_sees_the_same_counter(void **state)
{
	struct tu_seg *s = *state;
	shmstat_t *h2;
	shmstat_counter_t a, b;

	assert_int_equal(shmstat_open(s->name, NULL, &h2), 0);
	assert_int_equal(shmstat_counter_open(s->h, "x", &a), 0);
	assert_int_equal(shmstat_counter_open(h2, "x", &b), 0);
	assert_int_equal(a.index_, b.index_);
	shmstat_counter_add(a, 3);
	shmstat_counter_add(b, 4);
	/* Two handles in one process: two rows, summed. */
	assert_int_equal(value_of(h2, "x"), 7);
	shmstat_close(&h2);
	/* Its row keeps its counts after close. */
	assert_int_equal(value_of(s->h, "x"), 7);
}

static void bad_counter_names_are_refused(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c;
	char longname[SHMSTAT_NAME_MAX + 2];

	assert_int_equal(shmstat_counter_open(s->h, "", &c), SHMSTAT_ENAME);
	assert_non_null(strstr(shmstat_errstr(s->h), "empty"));
	/* A failed get still gives a handle that is safe to add to. */
	shmstat_counter_add(c, 1);
	assert_int_equal(shmstat_counter_open(s->h, NULL, &c), SHMSTAT_ENAME);
	assert_int_equal(shmstat_counter_open(s->h, "a\nb", &c), SHMSTAT_ENAME);
	memset(longname, 'a', sizeof(longname));
	longname[SHMSTAT_NAME_MAX + 1] = '\0';
	assert_int_equal(shmstat_counter_open(s->h, longname, &c), SHMSTAT_ENAME);
	assert_non_null(strstr(shmstat_errstr(s->h), "longer than 200"));
	longname[SHMSTAT_NAME_MAX] = '\0'; /* exactly 200 is fine */
	assert_int_equal(shmstat_counter_open(s->h, longname, &c), 0);
	shmstat_counter_add(c, 2);
	assert_int_equal(value_of(s->h, longname), 2);
}

static void a_name_is_either_a_counter_or_a_gauge(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c;
	shmstat_gauge_t g;

	assert_int_equal(shmstat_counter_open(s->h, "c", &c), 0);
	assert_int_equal(shmstat_gauge_open(s->h, "c", &g), SHMSTAT_EKIND);
	assert_non_null(strstr(shmstat_errstr(s->h), "is a counter"));
	shmstat_gauge_add(g, 5); /* safe on the failed handle */
	assert_int_equal(shmstat_gauge_open(s->h, "g", &g), 0);
	assert_int_equal(shmstat_counter_open(s->h, "g", &c), SHMSTAT_EKIND);
}

static void gauges_go_up_and_down(void **state)
{
	struct tu_seg *s = *state;
	shmstat_gauge_t g;
	shmstat_stat_t st;

	assert_int_equal(shmstat_gauge_open(s->h, "inflight", &g), 0);
	shmstat_gauge_set(g, 10);
	shmstat_gauge_add(g, -15);
	assert_int_equal(shmstat_gauge_read(g), -5);
	assert_int_equal(shmstat_stat_read(s->h, "inflight", &st), 0);
	assert_int_equal(st.kind, SHMSTAT_KIND_GAUGE);
	assert_int_equal(st.value, -5);
}

static void a_full_directory_refuses_new_names_and_keeps_old_ones(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_counters = 8, .size = 2u << 20 };
	shmstat_counter_t c[8], extra;
	char name[32];

	tu_seg_create(&s, "full", &o);
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(shmstat_counter_open(s.h, name, &c[i]), 0);
	}
	assert_int_equal(shmstat_counter_open(s.h, "one-too-many", &extra),
			 SHMSTAT_EFULL);
	assert_non_null(strstr(shmstat_errstr(s.h), "directory is full"));
	for (int i = 0; i < 8; i++)
		shmstat_counter_add(c[i], (uint64_t)i + 1);
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(value_of(s.h, name), i + 1);
		/* Existing names are still found by get. */
		assert_int_equal(shmstat_counter_open(s.h, name, &extra), 0);
	}
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

struct collect {
	int n;
	char names[16][64];
	int stop_after;
};

static int collect_cb(const shmstat_stat_t *st, void *priv)
{
	struct collect *c = priv;
	snprintf(c->names[c->n++], 64, "%.60s", st->name);
	return c->stop_after && c->n >= c->stop_after ? 99 : 0;
}

static int has(const struct collect *c, const char *name)
{
	for (int i = 0; i < c->n; i++)
		if (strcmp(c->names[i], name) == 0)
			return 1;
	return 0;
}

static void iteration_filters_by_glob_and_stops_on_request(void **state)
{
	struct tu_seg *s = *state;
	struct collect c = { 0 };

	shmstat_counter_add_by_name(s->h, "filter_stats:a", 1);
	shmstat_counter_add_by_name(s->h, "filter_stats:b", 1);
	shmstat_counter_add_by_name(s->h, "cache:hits", 1);
	assert_int_equal(shmstat_iter(s->h, "filter_stats:*", collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_true(has(&c, "filter_stats:a") && has(&c, "filter_stats:b"));
	memset(&c, 0, sizeof(c));
	assert_int_equal(shmstat_iter(s->h, NULL, collect_cb, &c), 0);
	assert_int_equal(c.n, 3);
	memset(&c, 0, sizeof(c));
	c.stop_after = 1;
	assert_int_equal(shmstat_iter(s->h, NULL, collect_cb, &c), 99);
	assert_int_equal(c.n, 1);
}

static void reset_by_glob_zeroes_only_the_matching_counters(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t a;
	shmstat_gauge_t g;
	uint64_t n;

	shmstat_counter_open(s->h, "filter_stats:a", &a);
	shmstat_counter_add(a, 10);
	shmstat_counter_add_by_name(s->h, "other", 5);
	shmstat_gauge_open(s->h, "filter_stats:g", &g);
	shmstat_gauge_set(g, 7);
	assert_int_equal(shmstat_reset(s->h, "filter_stats:*", &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(value_of(s->h, "filter_stats:a"), 0);
	assert_int_equal(value_of(s->h, "filter_stats:g"), 0);
	assert_int_equal(value_of(s->h, "other"), 5);
	/* Counting goes on from zero; the total still has everything. */
	shmstat_counter_add(a, 3);
	shmstat_stat_t st;
	shmstat_stat_read(s->h, "filter_stats:a", &st);
	assert_int_equal(st.value, 3);
	assert_int_equal(st.total, 13);
	assert_int_equal(shmstat_reset(s->h, NULL, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(value_of(s->h, "other"), 0);
}

/* ------------------------------------------------------------ exactness */

#define PROCS 8
#define COUNTERS 16
#define PER_PROC 1000000

static void eight_processes_count_exactly(void **state)
{
	struct tu_seg *s = *state;
	pid_t pids[PROCS];

	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			shmstat_t *h;
			shmstat_counter_t c[COUNTERS];
			char name[32];
			if (shmstat_open(s->name, NULL, &h))
				_exit(10);
			for (int i = 0; i < COUNTERS; i++) {
				snprintf(name, sizeof(name), "c%02d", i);
				if (shmstat_counter_open(h, name, &c[i]))
					_exit(11);
			}
			for (int k = 0; k < PER_PROC; k++)
				shmstat_counter_incr(c[(k + p) % COUNTERS]);
			shmstat_close(&h);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++)
		assert_int_equal(tu_wait(pids[p], 120000), 0);
	char name[32];
	int64_t sum = 0;
	for (int i = 0; i < COUNTERS; i++) {
		snprintf(name, sizeof(name), "c%02d", i);
		int64_t v = value_of(s->h, name);
		assert_int_equal(v, (int64_t)PROCS * PER_PROC / COUNTERS);
		sum += v;
	}
	assert_int_equal(sum, (int64_t)PROCS * PER_PROC);
}

/*
 * Workers record their progress after each increment in memory the test
 * owns; some are SIGKILLed mid-run. After the dead are reaped and their
 * rows adopted by new workers, the totals equal what was recorded, plus at
 * most one per killed worker (killed between the add and the record).
 */
struct progress {
	volatile uint64_t done[PROCS];
	volatile int ready;
};

static void killed_workers_lose_nothing_and_count_nothing_twice(void **state)
{
	struct tu_seg *s = *state;
	struct progress *pr = tu_shared(sizeof(*pr));
	pid_t pids[PROCS];
	const int killed = 3;

	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			shmstat_t *h;
			shmstat_counter_t c[COUNTERS];
			char name[32];
			if (shmstat_open(s->name, NULL, &h))
				_exit(10);
			for (int i = 0; i < COUNTERS; i++) {
				snprintf(name, sizeof(name), "k%02d", i);
				if (shmstat_counter_open(h, name, &c[i]))
					_exit(11);
			}
			__atomic_fetch_add(&pr->ready, 1, __ATOMIC_RELEASE);
			/* The killed ones run until killed; bounded anyway. */
			uint64_t n = p < killed ? 1000ull * PER_PROC : PER_PROC / 4;
			for (uint64_t k = 0; k < n; k++) {
				shmstat_counter_incr(c[k % COUNTERS]);
				__atomic_store_n(&pr->done[p], k + 1,
						 __ATOMIC_RELEASE);
			}
			shmstat_close(&h);
			_exit(0);
		}
	}
	/* Kill each victim once it has visibly made progress. */
	for (int p = 0; p < killed; p++) {
		for (int spin = 0; __atomic_load_n(&pr->done[p], __ATOMIC_ACQUIRE) < 1000;
		     spin++) {
			assert_true(spin < 20000000);
			sched_yield();
		}
		kill(pids[p], SIGKILL);
	}
	for (int p = 0; p < PROCS; p++) {
		int st = tu_wait(pids[p], 120000);
		assert_int_equal(st, p < killed ? 128 + SIGKILL : 0);
	}
	shmstat_info_t in;
	shmstat_info(s->h, &in);
	assert_int_equal(in.workers_dead, killed);
	uint32_t reaped;
	assert_int_equal(shmstat_reap(s->h, &reaped), 0);
	assert_int_equal(reaped, killed);
	shmstat_info(s->h, &in);
	assert_int_equal(in.workers_dead, 0);

	uint64_t recorded = 0;
	for (int p = 0; p < PROCS; p++)
		recorded += pr->done[p];
	uint64_t total = 0;
	char name[32];
	for (int i = 0; i < COUNTERS; i++) {
		snprintf(name, sizeof(name), "k%02d", i);
		total += (uint64_t)value_of(s->h, name);
	}
	assert_true(total >= recorded);
	assert_true(total <= recorded + killed);

	/* New workers adopt the freed rows and add on top: still exact. */
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			shmstat_t *h;
			if (shmstat_open(s->name, NULL, &h) ||
			    shmstat_counter_add_by_name(h, "k00", 1000))
				_exit(1);
			shmstat_close(&h);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++)
		assert_int_equal(tu_wait(pids[p], 30000), 0);
	uint64_t total2 = 0;
	for (int i = 0; i < COUNTERS; i++) {
		snprintf(name, sizeof(name), "k%02d", i);
		total2 += (uint64_t)value_of(s->h, name);
	}
	assert_int_equal(total2, total + PROCS * 1000);
	tu_shared_free(pr, sizeof(*pr));
}

/*
 * A reader that sums while workers count and die never sees a total go
 * backwards: rows are adopted, never moved or erased.
 */
static void a_reader_never_sees_the_total_go_backwards(void **state)
{
	struct tu_seg *s = *state;
	struct progress *pr = tu_shared(sizeof(*pr));
	pid_t pids[4];
	shmstat_counter_t c;

	assert_int_equal(shmstat_counter_open(s->h, "mono", &c), 0);
	for (int round = 0; round < 6; round++) {
		for (int p = 0; p < 4; p++) {
			pids[p] = fork();
			if (pids[p] == 0) {
				shmstat_t *h;
				shmstat_counter_t cc;
				if (shmstat_open(s->name, NULL, &h) ||
				    shmstat_counter_open(h, "mono", &cc))
					_exit(1);
				for (uint64_t k = 0; k < 2000000; k++) {
					shmstat_counter_incr(cc);
					__atomic_store_n(&pr->done[p], k + 1,
							 __ATOMIC_RELEASE);
				}
				_exit(0); /* no close: like a crash */
			}
		}
		int64_t last = 0;
		for (int i = 0; i < 20000; i++) {
			int64_t v;
			assert_int_equal(shmstat_counter_read(s->h, c, &v), 0);
			assert_true(v >= last);
			last = v;
			if (i == 100)
				kill(pids[round % 4], SIGKILL);
			if (i % 1000 == 0) {
				uint32_t r;
				shmstat_reap(s->h, &r);
			}
		}
		for (int p = 0; p < 4; p++)
			tu_wait(pids[p], 60000);
		uint32_t r;
		shmstat_reap(s->h, &r);
		int64_t v;
		shmstat_counter_read(s->h, c, &v);
		assert_true(v >= last);
	}
	tu_shared_free(pr, sizeof(*pr));
}

/*
 * A reset racing increments loses none: the value after the reset counts
 * every increment made after the reset returned, and none made before it
 * began.
 */
struct racing {
	volatile uint64_t done[4];
	volatile int go;
};

static void a_reset_racing_increments_loses_none(void **state)
{
	struct tu_seg *s = *state;
	struct racing *r = tu_shared(sizeof(*r));
	const uint64_t per = 3000000;
	pid_t pids[4];
	shmstat_counter_t c;

	assert_int_equal(shmstat_counter_open(s->h, "race", &c), 0);
	for (int p = 0; p < 4; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			shmstat_t *h;
			shmstat_counter_t cc;
			if (shmstat_open(s->name, NULL, &h) ||
			    shmstat_counter_open(h, "race", &cc))
				_exit(1);
			__atomic_fetch_add(&r->go, 1, __ATOMIC_RELEASE);
			for (uint64_t k = 0; k < per; k++) {
				shmstat_counter_incr(cc);
				__atomic_store_n(&r->done[p], k + 1,
						 __ATOMIC_RELEASE);
			}
			shmstat_close(&h);
			_exit(0);
		}
	}
	while (__atomic_load_n(&r->go, __ATOMIC_ACQUIRE) < 4)
		sched_yield();
	/* Wait until counting is under way, then reset in the middle. */
	while (__atomic_load_n(&r->done[0], __ATOMIC_ACQUIRE) < per / 10)
		sched_yield();
	uint64_t before = 0, after = 0;
	for (int p = 0; p < 4; p++)
		before += __atomic_load_n(&r->done[p], __ATOMIC_ACQUIRE);
	assert_int_equal(shmstat_reset(s->h, "race", NULL), 0);
	for (int p = 0; p < 4; p++)
		after += __atomic_load_n(&r->done[p], __ATOMIC_ACQUIRE);
	for (int p = 0; p < 4; p++)
		assert_int_equal(tu_wait(pids[p], 120000), 0);
	int64_t v;
	assert_int_equal(shmstat_counter_read(s->h, c, &v), 0);
	uint64_t all = 4 * per;
	/* Done after the reset returned: counted. Done before it began:
	 * not counted. In between: either. A worker records its progress
	 * just after each add, so each may have one add in the base that its
	 * record did not show yet when `after` was read: at most 4 in all. */
	assert_true(v >= 0);
	/* Written as sums, not differences: when the workers finish before
	 * the reset, `after` is `all`, and all - after - 4 would wrap. */
	assert_true((uint64_t)v + after + 4 >= all);
	assert_true((uint64_t)v + before <= all);
	shmstat_stat_t st;
	shmstat_stat_read(s->h, "race", &st);
	assert_int_equal(st.total, all); /* rows untouched by the reset */
	tu_shared_free(r, sizeof(*r));
}

/*
 * Handles taken in a master before fork() count into each child's own
 * row: totals exact, rows distinct from each other and from the master's.
 */
struct forked {
	volatile int32_t slot[4];
};

static void handles_taken_before_fork_count_into_each_childs_row(void **state)
{
	struct tu_seg *s = *state;
	struct forked *f = tu_shared(sizeof(*f));
	shmstat_counter_t c;
	pid_t pids[4];

	assert_int_equal(shmstat_counter_open(s->h, "forked", &c), 0);
	shmstat_counter_add(c, 5);
	int32_t master = s->h->slot;
	assert_true(master >= 0);
	for (int p = 0; p < 4; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			for (int k = 0; k < 100000; k++)
				shmstat_counter_incr(c);
			f->slot[p] = s->h->slot;
			_exit(0); /* the inherited handle counts; no close */
		}
	}
	for (int p = 0; p < 4; p++)
		assert_int_equal(tu_wait(pids[p], 60000), 0);
	int64_t v;
	assert_int_equal(shmstat_counter_read(s->h, c, &v), 0);
	assert_int_equal(v, 5 + 4 * 100000);
	for (int p = 0; p < 4; p++) {
		assert_true(f->slot[p] >= 0);
		assert_int_not_equal(f->slot[p], master);
		for (int q = 0; q < p; q++)
			assert_int_not_equal(f->slot[p], f->slot[q]);
	}
	/* The master's own row is untouched by the children. */
	assert_int_equal(shmstat__row_cells(s->h, (uint32_t)master)[c.index_], 5);
	tu_shared_free(f, sizeof(*f));
}

/* Threads sharing one handle: none of their increments is lost, through
 * the inline add (C) and through the exported one (FFI). Six threads: the
 * row's owner, SHMSTAT_XROWS with rows of their own, and two that add
 * atomically into the second row. */
#define THREADS 6
#define PER_THREAD 300000
struct shared_counter {
	shmstat_counter_t c;
	shmstat_t *h;
	int mode; /* 0 inline, 1 exported, 2 by name */
	/* Every thread counts once, then waits for all: all of them are
	 * alive and counting at once, so every path is taken, whatever the
	 * scheduler does. */
	pthread_barrier_t all_counting;
};

static void *count_thread(void *arg)
{
	struct shared_counter *sc = arg;
	for (int k = 0; k < PER_THREAD; k++) {
		if (k == 8)
			pthread_barrier_wait(&sc->all_counting);
		if (sc->mode == 0)
			shmstat_counter_incr(sc->c);
		else if (sc->mode == 1)
			shmstat_counter_add_ts(&sc->c, 1);
		else if (k % 8 == 0) /* a lookup each: fewer, same check */
			shmstat_counter_add_by_name(sc->h, "threads:byname", 8);
	}
	return NULL;
}

static void threads_sharing_a_handle_lose_no_increment(void **state)
{
	struct tu_seg *s = *state;
	const char *names[3] = { "threads:inline", "threads:ts", "threads:byname" };

	for (int mode = 0; mode < 3; mode++) {
		struct shared_counter sc = { .h = s->h, .mode = mode };
		pthread_t t[THREADS];
		int64_t v;
		pthread_barrier_init(&sc.all_counting, NULL, THREADS);
		assert_int_equal(shmstat_counter_open(s->h, names[mode], &sc.c), 0);
		for (int i = 0; i < THREADS; i++)
			assert_int_equal(pthread_create(&t[i], NULL, count_thread,
							&sc),
					 0);
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		assert_int_equal(shmstat_counter_read(s->h, sc.c, &v), 0);
		assert_int_equal(v, (int64_t)THREADS * PER_THREAD);
		pthread_barrier_destroy(&sc.all_counting);
	}
}

/*
 * On a small registry threads take extra rows only while more than half
 * of it is free, and give them back when they exit: the rows stay with
 * the handle for the next threads, and every count lands.
 */
static void threads_take_rows_of_their_own_only_while_rows_are_to_spare(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_workers = 4, .max_counters = 16,
				.size = 2u << 20 };
	tu_seg_create(&s, "spare", &o);
	struct shared_counter sc = { .h = s.h, .mode = 0 };
	pthread_t t[THREADS];
	int64_t v;

	pthread_barrier_init(&sc.all_counting, NULL, THREADS);

	assert_int_equal(shmstat_counter_open(s.h, "spare", &sc.c), 0);
	for (int round = 1; round <= 2; round++) {
		for (int i = 0; i < THREADS; i++)
			assert_int_equal(pthread_create(&t[i], NULL, count_thread,
							&sc),
					 0);
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		assert_int_equal(shmstat_counter_read(s.h, sc.c, &v), 0);
		assert_int_equal(v, (int64_t)round * THREADS * PER_THREAD);
		/* Of 4 rows: the primary, one extra (then 2 of 4 were free:
		 * not more than half), the atomic second row. */
		shmstat_info_t in;
		assert_int_equal(shmstat_info(s.h, &in), 0);
		assert_int_equal(in.workers_live, 3);
		int extra = 0;
		for (int k = 0; k < SHMSTAT_XROWS; k++) {
			/* Given back by the threads that exited. */
			assert_int_equal(__atomic_load_n(&s.h->xrow[k].owner,
							 __ATOMIC_ACQUIRE),
					 0);
			extra += s.h->xrow[k].slot >= 0;
		}
		assert_int_equal(extra, 1);
	}
	pthread_barrier_destroy(&sc.all_counting);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/* A counter never wraps: it stops at INT64_MAX, in the library's value,
 * its total and every document it writes. */
static void a_counter_saturates_at_int64_max_everywhere(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c;
	shmstat_stat_t st;
	shmstat_t *h2;

	assert_int_equal(shmstat_counter_open(s->h, "big", &c), 0);
	shmstat_counter_add(c, INT64_MAX);
	shmstat_counter_add(c, INT64_MAX); /* inline, one row */
	shmstat_counter_add_ts(&c, UINT64_MAX);
	assert_int_equal(shmstat_stat_read(s->h, "big", &st), 0);
	assert_int_equal(st.value, INT64_MAX);
	assert_int_equal(st.total, (uint64_t)INT64_MAX);
	/* Two rows of INT64_MAX each: the sum saturates too. */
	assert_int_equal(shmstat_open(s->name, NULL, &h2), 0);
	assert_int_equal(shmstat_counter_add_by_name(h2, "big", INT64_MAX), 0);
	assert_int_equal(shmstat_counter_add_by_name(h2, "big2", 3), 0);
	assert_int_equal(shmstat_stat_read(s->h, "big", &st), 0);
	assert_int_equal(st.value, INT64_MAX);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(shmstat_export_json(s->h, "big", f), 0);
	assert_int_equal(shmstat_export_prometheus(s->h, "big", f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "\"big\": 9223372036854775807"));
	assert_non_null(strstr(buf, "} 9223372036854775807\n"));
	assert_null(strstr(buf, "-"  "9223372036854775808"));
	assert_null(strstr(buf, " -2\n"));
	free(buf);
	/* A reset still works at the limit. */
	assert_int_equal(shmstat_reset(s->h, "big", NULL), 0);
	assert_int_equal(shmstat_stat_read(s->h, "big", &st), 0);
	assert_int_equal(st.value, 0);
	/* Gauges saturate both ways. */
	shmstat_gauge_t g;
	assert_int_equal(shmstat_gauge_open(s->h, "g", &g), 0);
	shmstat_gauge_set(g, INT64_MAX - 1);
	shmstat_gauge_add(g, 5);
	assert_int_equal(shmstat_gauge_read(g), INT64_MAX);
	shmstat_gauge_set(g, INT64_MIN + 1);
	shmstat_gauge_add(g, -5);
	assert_int_equal(shmstat_gauge_read(g), INT64_MIN);
	shmstat_close(&h2);
}

/* The WRITING word of a writer (layout_i.h). */
static uint64_t writing_word(pid_t pid, uint64_t start)
{
	return 1u | ((uint64_t)(uint32_t)pid << 2) |
	       ((start & ((UINT64_C(1) << 30) - 1)) << 34);
}

/* The directory entry name would land on (its first probe). */
static uint32_t home_of(const struct shmstat *h, const char *name)
{
	return (uint32_t)(shmstat__hash(name, strlen(name)) % h->max_counters);
}

/*
 * An insert left half done by a process whose pid is now someone else's
 * (a live pid, another start time), and one by a writer in another pid
 * namespace: names routed through those entries are still created, and
 * found, instead of EBUSY forever.
 */
static void a_half_done_insert_of_a_dead_writer_is_repaired(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c;
	uint32_t i = home_of(s->h, "stuck");
	struct dir_entry *e = &s->h->dir[i];
	int64_t v;

	/* pid 1 is alive, but it is not the writer: wrong start time. */
	uint64_t start1 = shmstat__proc_start(1);
	assert_true(start1 != 0);
	atomic_store(&e->state, writing_word(1, start1 + 7));
	assert_int_equal(shmstat_counter_open(s->h, "stuck", &c), 0);
	assert_int_equal(c.index_, i); /* taken over, not skipped */
	shmstat_counter_add(c, 3);
	assert_int_equal(shmstat_counter_read(s->h, c, &v), 0);
	assert_int_equal(v, 3);

	/* A writer we cannot judge (another pid namespace; here our own,
	 * live, pid): after the bound the entry is marked dead and the name
	 * goes further on. */
	uint32_t j = home_of(s->h, "stuck2");
	if (j == i)
		j = (j + 1) % s->h->max_counters; /* not our own entry */
	struct dir_entry *e2 = &s->h->dir[j];
	atomic_store(&e2->state, writing_word(getpid(),
					      shmstat__proc_start(getpid())));
	e2->reserved[2] = shmstat__pidns() + 1;
	shmstat_stat_t st;
	/* A lookup steps over it at once. */
	assert_int_equal(shmstat_stat_read(s->h, "stuck2", &st),
			 SHMSTAT_ENOTFOUND);
	assert_int_equal(shmstat_counter_open(s->h, "stuck2", &c), 0);
	assert_int_not_equal(c.index_, j);
	assert_int_equal(atomic_load(&e2->state) & 3u, DIR_DEAD);
	shmstat_counter_add(c, 2);
	assert_int_equal(shmstat_stat_read(s->h, "stuck2", &st), 0);
	assert_int_equal(st.value, 2);
	shmstat_info_t in;
	assert_int_equal(shmstat_info(s->h, &in), 0);
	assert_int_equal(in.dir_dead, 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tu_seg_setup, tu_seg_teardown)
	const struct CMUnitTest tests[] = {
		T(a_counter_is_created_on_first_get_and_counts),
		T(another_process_sees_the_same_counter),
		T(bad_counter_names_are_refused),
		T(a_name_is_either_a_counter_or_a_gauge),
		T(gauges_go_up_and_down),
		cmocka_unit_test(a_full_directory_refuses_new_names_and_keeps_old_ones),
		T(iteration_filters_by_glob_and_stops_on_request),
		T(reset_by_glob_zeroes_only_the_matching_counters),
		T(eight_processes_count_exactly),
		T(killed_workers_lose_nothing_and_count_nothing_twice),
		T(a_reader_never_sees_the_total_go_backwards),
		T(a_reset_racing_increments_loses_none),
		T(handles_taken_before_fork_count_into_each_childs_row),
		T(threads_sharing_a_handle_lose_no_increment),
		cmocka_unit_test(threads_take_rows_of_their_own_only_while_rows_are_to_spare),
		T(a_counter_saturates_at_int64_max_everywhere),
		T(a_half_done_insert_of_a_dead_writer_is_repaired),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
