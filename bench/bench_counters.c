/*
 * bench_counters.c — the counter hot path against process-local baselines,
 * in one binary and one run so the ratios are measured side by side.
 *
 *   counter_add            shmstat_counter_add() through a handle, by the
 *                          thread that owns the handle's row (plain add)
 *   counter_add_ts         shmstat_counter_add_ts(), the exported (FFI)
 *                          increment, by the owner thread
 *   counter_add_other      shmstat_counter_add() by a thread that is not
 *                          the row's owner (a row of its own: plain add
 *                          after a call)
 *   counter_add_atomic     the same on a registry with no rows to spare:
 *                          an atomic add into the handle's second row
 *   counter_add_threads    4 threads sharing one handle, aggregate ns/op
 *                          (one owner, three atomic on one shared line)
 *   counter_add_by_name    look the name up, then add (setup-style use)
 *   histogram_observe      shmstat_histogram_observe() by the owner thread
 *                          (default latency buckets, values spread over
 *                          them): a bucket search and two plain adds
 *   histogram_observe_ts   shmstat_histogram_observe_ts(), the exported one
 *   counter_read           sum one counter over 8 rows (8 writers' worth)
 *   baseline_local_plain   a plain increment of a process-local variable
 *   baseline_local_atomic  a relaxed atomic add on a process-local variable
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shim.h"
#include "shmstat.h"

#define BATCH 1000
#define READ_ROWS 8

static shmstat_t *seg;
static char seg_name[64];

static void seg_remove(void)
{
	shmstat_close(&seg);
	shmstat_unlink(seg_name);
}

static shmstat_t *bench_seg(void)
{
	if (seg)
		return seg;
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL };
	snprintf(seg_name, sizeof(seg_name), "bench-%d", (int)getpid());
	if (shmstat_open(seg_name, &o, &seg) < 0) {
		fprintf(stderr, "bench: %s\n", shmstat_errstr(NULL));
		exit(2);
	}
	atexit(seg_remove);
	return seg;
}

SHIM_BENCH(counter_add)(shim_state_t *st)
{
	shmstat_counter_t c;
	if (shmstat_counter_open(bench_seg(), "bench:add", &c) < 0) {
		shim_skip(st, shmstat_errstr(seg));
		return;
	}
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++)
			shmstat_counter_add(c, 1);
	shim_set_items(st, shim_iterations(st));
}

/* Latencies spread over the default buckets, as a web service's are. */
static const double lat[16] = {
	0.003, 0.012, 0.04, 0.02, 0.09, 0.007, 0.3, 0.015,
	0.06, 0.004, 0.8, 0.03, 0.011, 2.0, 0.05, 0.2,
};

SHIM_BENCH(histogram_observe)(shim_state_t *st)
{
	static const double b[] = SHMSTAT_LATENCY_BOUNDS;
	shmstat_histogram_t hg;
	if (shmstat_histogram_open(bench_seg(), "bench:observe", b,
				   SHMSTAT_LATENCY_NBOUNDS, &hg) < 0) {
		shim_skip(st, shmstat_errstr(seg));
		return;
	}
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++)
			shmstat_histogram_observe(hg, lat[i & 15]);
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(histogram_observe_ts)(shim_state_t *st)
{
	static const double b[] = SHMSTAT_LATENCY_BOUNDS;
	shmstat_histogram_t hg;
	if (shmstat_histogram_open(bench_seg(), "bench:observe_ts", b,
				   SHMSTAT_LATENCY_NBOUNDS, &hg) < 0) {
		shim_skip(st, shmstat_errstr(seg));
		return;
	}
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++)
			shmstat_histogram_observe_ts(&hg, lat[i & 15]);
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(counter_add_ts)(shim_state_t *st)
{
	shmstat_counter_t c;
	if (shmstat_counter_open(bench_seg(), "bench:add_ts", &c) < 0) {
		shim_skip(st, shmstat_errstr(seg));
		return;
	}
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++)
			shmstat_counter_add_ts(&c, 1);
	shim_set_items(st, shim_iterations(st));
}

/* A handle whose row another thread owns: every add is atomic. */
static void *own_row(void *arg)
{
	shmstat_counter_incr(*(shmstat_counter_t *)arg);
	return NULL;
}

SHIM_BENCH(counter_add_other)(shim_state_t *st)
{
	static shmstat_t *h;
	shmstat_counter_t c;
	pthread_t t;

	if (!h && shmstat_open(seg_name[0] ? seg_name : (bench_seg(), seg_name),
			       NULL, &h) < 0) {
		shim_skip(st, shmstat_errstr(NULL));
		return;
	}
	shmstat_counter_open(h, "bench:other", &c);
	/* Another thread counts first: it owns the row from then on. */
	pthread_create(&t, NULL, own_row, &c);
	pthread_join(t, NULL);
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++)
			shmstat_counter_add(c, 1);
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(counter_add_atomic)(shim_state_t *st)
{
	static shmstat_t *h;
	static char name[64];
	shmstat_counter_t c;
	pthread_t t;

	if (!h) {
		/* Two rows: the owner's, then none to spare for threads. */
		shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL,
					.max_workers = 2, .max_counters = 16,
					.size = 2u << 20 };
		snprintf(name, sizeof(name), "bench-atomic-%d", (int)getpid());
		if (shmstat_open(name, &o, &h) < 0) {
			shim_skip(st, shmstat_errstr(NULL));
			return;
		}
		shmstat_unlink(name); /* gone when we exit */
	}
	shmstat_counter_open(h, "bench:atomic", &c);
	pthread_create(&t, NULL, own_row, &c);
	pthread_join(t, NULL);
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++)
			shmstat_counter_add(c, 1);
	shim_set_items(st, shim_iterations(st));
}

/* 4 threads share one handle, each doing `n` adds. */
#define SHARE_THREADS 4
struct share {
	shmstat_counter_t c;
	int64_t n;
};

static void *share_run(void *arg)
{
	struct share *sh = arg;
	for (int64_t i = 0; i < sh->n; i++)
		shmstat_counter_add(sh->c, 1);
	return NULL;
}

SHIM_BENCH(counter_add_threads)(shim_state_t *st)
{
	static shmstat_t *h;
	struct share sh;
	pthread_t t[SHARE_THREADS];

	if (!h && shmstat_open(seg_name[0] ? seg_name : (bench_seg(), seg_name),
			       NULL, &h) < 0) {
		shim_skip(st, shmstat_errstr(NULL));
		return;
	}
	shmstat_counter_open(h, "bench:threads", &sh.c);
	/* Each batch: SHARE_THREADS threads of BATCH*50 adds each, counted
	 * as that many operations, so the time per op is the aggregate. */
	sh.n = BATCH * 50;
	while (shim_run_batch(st, sh.n * SHARE_THREADS)) {
		for (int i = 0; i < SHARE_THREADS; i++)
			pthread_create(&t[i], NULL, share_run, &sh);
		for (int i = 0; i < SHARE_THREADS; i++)
			pthread_join(t[i], NULL);
	}
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(counter_add_by_name)(shim_state_t *st)
{
	shmstat_t *h = bench_seg();
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++)
			shmstat_counter_add_by_name(h, "filter_stats:by_name", 1);
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(counter_read)(shim_state_t *st)
{
	shmstat_t *h = bench_seg(), *w[READ_ROWS];
	shmstat_counter_t c;
	int64_t v = 0;

	/* READ_ROWS handles = READ_ROWS rows, as with that many workers. */
	for (int i = 0; i < READ_ROWS; i++) {
		if (shmstat_open(seg_name, NULL, &w[i]) < 0 ||
		    shmstat_counter_add_by_name(w[i], "bench:read", 1) < 0) {
			shim_skip(st, shmstat_errstr(NULL));
			return;
		}
	}
	shmstat_counter_open(h, "bench:read", &c);
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++) {
			shmstat_counter_read(h, c, &v);
			shim_keep(&v);
		}
	shim_set_items(st, shim_iterations(st));
	for (int i = 0; i < READ_ROWS; i++)
		shmstat_close(&w[i]);
}

SHIM_BENCH(baseline_local_plain)(shim_state_t *st)
{
	uint64_t x = 0;
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++) {
			x++;
			shim_keep(&x); /* one load/add/store per op, as in memory */
		}
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(baseline_local_atomic)(shim_state_t *st)
{
	_Atomic uint64_t x = 0;
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++)
			atomic_fetch_add_explicit(&x, 1, memory_order_relaxed);
	shim_keep(&x);
	shim_set_items(st, shim_iterations(st));
}
