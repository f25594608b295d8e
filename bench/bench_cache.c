/*
 * bench_cache.c — the cache's hot paths against a process-local hash
 * table, in one binary and one run so the ratios are measured side by side.
 * 1,000,000 keys of 16 to 32 bytes, 64-byte values, visited in a
 * pseudo-random order (so both tables miss the CPU caches alike). The
 * cache's segment has three quarters of its memory in home blocks
 * (doc/cache.md): the entries (32 + key + value <= 128 bytes) are small.
 *
 *   cache_get_hit      shmstat_cache_get() of a present key, copied out
 *   cache_get_miss     shmstat_cache_get() of an absent key
 *   cache_set          shmstat_cache_set() overwriting a present key
 *   baseline_hash_get  GHashTable (g_str_hash, g_str_equal) lookup of the
 *                      same keys, with the same 64-byte copy out
 *   cache_get_hit_hot, baseline_hash_get_hot
 *                      the same over 1,000 hot keys (all in the CPU caches)
 *   baseline_hash_set  GHashTable overwrite of a present key with a fresh
 *                      64-byte copy of the value (what cache_set does)
 *   pair_get_hit, pair_get_hit_hot, pair_set
 *                      the cache and GHashTable side by side: batches of
 *                      the cache operation and of its baseline taken in
 *                      turn, each timed on its own, so that what else
 *                      runs on a shared machine falls on both alike. The
 *                      counters: cache_ns and hash_ns (the mean time of
 *                      one operation of each), ratio (the median, over
 *                      the pairs of batches, of the cache batch's time
 *                      over the baseline batch's)
 *   pair_get_hit_slab, pair_get_hit_hot_slab
 *                      the same as pair_get_hit(_hot) on a segment without
 *                      home blocks: what they give, in the same run
 *   pair_slot_table_get
 *                      the same pairs with bench_layout.c's table of fixed
 *                      128-byte slots (a whole get, not the cache) in the
 *                      cache's place: what that layout gives against the
 *                      same baseline in the same run (counter table_ns)
 */
#include <glib.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_cache_keys.h"
#include "bench_layout.h"
#include "shim.h"
#include "shmstat.h"

#define BATCH 1000
#define HOT 1000u

/* The cache's segments: [1] with three quarters of its memory in home
 * blocks (what the cache_* and pair_* benchmarks use), [0] without (the
 * *_slab pairs). */
static shmstat_t *cseg[2];
static char cseg_name[2][64];
static struct bench_keys keys;
static GHashTable *table;

static void cseg_remove(void)
{
	for (int i = 0; i < 2; i++)
		if (cseg[i]) {
			shmstat_close(&cseg[i]);
			shmstat_unlink(cseg_name[i]);
		}
}

static void data_init(void)
{
	if (keys.hit)
		return;
	bk_init(&keys);
}

static shmstat_t *seg_of(int home)
{
	unsigned char v[BK_VAL];
	static int registered;

	if (cseg[home])
		return cseg[home];
	data_init();
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL,
				.size = BK_SEG_SIZE, .max_counters = 64,
				.max_workers = 16, .cache_max_value = 4096,
				.cache_home_pct = home ? 75 : 0 };
	snprintf(cseg_name[home], sizeof(cseg_name[home]), "bench-cache-%d-%d",
		 (int)getpid(), home);
	if (shmstat_open(cseg_name[home], &o, &cseg[home]) < 0) {
		fprintf(stderr, "bench: %s\n", shmstat_errstr(NULL));
		exit(2);
	}
	if (!registered++)
		atexit(cseg_remove);
	for (uint32_t i = 0; i < BK_N; i++) {
		bk_value(v, i, 0);
		if (shmstat_cache_set(cseg[home],
				      keys.hit + (size_t)i * BK_KEYMAX,
				      keys.len[i], v, BK_VAL, 0, 0) < 0) {
			fprintf(stderr, "bench: fill: %s\n",
				shmstat_errstr(cseg[home]));
			exit(2);
		}
	}
	return cseg[home];
}

static shmstat_t *cache_seg(void) { return seg_of(1); }

static void get_hit(shim_state_t *st, uint32_t span)
{
	shmstat_t *h = cache_seg();
	unsigned char buf[BK_VAL];
	uint32_t x = 1, misses = 0;
	size_t n;

	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++) {
			uint32_t k = bk_next(&x) % span;
			misses += shmstat_cache_get(h,
						    keys.hit + (size_t)k * BK_KEYMAX,
						    keys.len[k], buf, sizeof(buf),
						    &n) != 0;
			shim_keep(buf);
		}
	if (misses)
		shim_skip(st, "a get of a stored key missed");
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(cache_get_hit)(shim_state_t *st) { get_hit(st, BK_N); }
SHIM_BENCH(cache_get_hit_hot)(shim_state_t *st) { get_hit(st, HOT); }

SHIM_BENCH(cache_get_miss)(shim_state_t *st)
{
	shmstat_t *h = cache_seg();
	unsigned char buf[BK_VAL];
	uint32_t x = 1, hits = 0;
	size_t n;

	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++) {
			uint32_t k = bk_next(&x);
			hits += shmstat_cache_get(h,
						  keys.miss + (size_t)k * BK_KEYMAX,
						  keys.len[k], buf, sizeof(buf),
						  &n) == 0;
		}
	if (hits)
		shim_skip(st, "a get of an absent key hit");
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(cache_set)(shim_state_t *st)
{
	shmstat_t *h = cache_seg();
	unsigned char v[BK_VAL];
	uint32_t x = 1, errors = 0;

	bk_value(v, 0, 1);
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++) {
			uint32_t k = bk_next(&x);
			v[0] = (unsigned char)k;
			errors += shmstat_cache_set(h,
						    keys.hit + (size_t)k * BK_KEYMAX,
						    keys.len[k], v, BK_VAL, 0,
						    0) != 0;
		}
	if (errors)
		shim_skip(st, "a set failed");
	shim_set_items(st, shim_iterations(st));
}

static void table_init(void)
{
	data_init();
	if (table)
		return;
	table = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);
	for (uint32_t i = 0; i < BK_N; i++) {
		unsigned char *v = g_malloc(BK_VAL);
		bk_value(v, i, 0);
		g_hash_table_insert(table, keys.hit + (size_t)i * BK_KEYMAX, v);
	}
}

static void hash_get(shim_state_t *st, uint32_t span)
{
	unsigned char buf[BK_VAL];
	uint32_t x = 1, misses = 0;

	table_init();
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++) {
			uint32_t k = bk_next(&x) % span;
			const unsigned char *v = g_hash_table_lookup(
				table, keys.hit + (size_t)k * BK_KEYMAX);
			if (v)
				memcpy(buf, v, BK_VAL);
			else
				misses++;
			shim_keep(buf);
		}
	if (misses)
		shim_skip(st, "a lookup missed");
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(baseline_hash_get)(shim_state_t *st) { hash_get(st, BK_N); }
SHIM_BENCH(baseline_hash_get_hot)(shim_state_t *st) { hash_get(st, HOT); }

/* The same overwrite as cache_set: a fresh copy of the value replaces the
 * old one (freed by the table), the key stays. */
SHIM_BENCH(baseline_hash_set)(shim_state_t *st)
{
	unsigned char v[BK_VAL];
	uint32_t x = 1;

	table_init();
	bk_value(v, 0, 1);
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++) {
			uint32_t k = bk_next(&x);
			v[0] = (unsigned char)k;
			g_hash_table_insert(table,
					    keys.hit + (size_t)k * BK_KEYMAX,
					    g_memdup2(v, BK_VAL));
		}
	shim_set_items(st, shim_iterations(st));
}

/* ------------------------------------------------------- side by side */

#define PAIR 2000	/* operations per batch of each side */
/* Pairs kept for the median: a run of the default length times a few
 * hundred; past this many, the median is of the first MAX_PAIRS while the
 * means (cache_ns, hash_ns) are of all. */
#define MAX_PAIRS 65536

enum pair_op { PAIR_GET, PAIR_SET, PAIR_SLOT };

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One batch of the cache side: n operations from the walk at *x. */
static uint32_t cache_batch(shmstat_t *h, enum pair_op op, uint32_t span,
			    uint32_t *x, unsigned char *v)
{
	uint32_t bad = 0;
	size_t n;

	for (int i = 0; i < PAIR; i++) {
		uint32_t k = bk_next(x) % span;
		const char *key = keys.hit + (size_t)k * BK_KEYMAX;
		if (op == PAIR_GET) {
			bad += shmstat_cache_get(h, key, keys.len[k], v, BK_VAL,
						 &n) != 0;
		} else if (op == PAIR_SLOT) {
			bad += layout_slot_get(key, keys.len[k], v, BK_VAL,
					       &n) != 0;
		} else {
			v[0] = (unsigned char)k;
			bad += shmstat_cache_set(h, key, keys.len[k], v, BK_VAL,
						 0, 0) != 0;
		}
		shim_keep(v);
	}
	return bad;
}

/* The same batch on the GHashTable. */
static uint32_t hash_batch(enum pair_op op, uint32_t span, uint32_t *x,
			   unsigned char *v)
{
	uint32_t bad = 0;

	for (int i = 0; i < PAIR; i++) {
		uint32_t k = bk_next(x) % span;
		char *key = keys.hit + (size_t)k * BK_KEYMAX;
		if (op != PAIR_SET) {
			const unsigned char *p = g_hash_table_lookup(table, key);
			if (p)
				memcpy(v, p, BK_VAL);
			else
				bad++;
		} else {
			v[0] = (unsigned char)k;
			g_hash_table_insert(table, key, g_memdup2(v, BK_VAL));
		}
		shim_keep(v);
	}
	return bad;
}

/*
 * Batches of each side in turn. The two walks visit the same keys in the
 * same order, half a cycle apart, so that one side never finds in the CPU
 * caches the keys the other side just read. Which side goes first swaps
 * every pair.
 */
static void pair_on(shim_state_t *st, enum pair_op op, uint32_t span,
		    shmstat_t *h)
{
	static double ratio[MAX_PAIRS];
	unsigned char v[BK_VAL];
	uint32_t xc = 1, xh = 1, bad = 0, np = 0, nr = 0;
	uint64_t tc = 0, th = 0, ops = 0;

	table_init();
	if (op == PAIR_SLOT)
		layout_slots_init();
	bk_value(v, 0, 1);
	for (uint32_t i = 0; i < BK_N / 2; i++)
		(void)bk_next(&xc);
	while (shim_run_batch(st, 2 * PAIR)) {
		uint64_t t0, t1, t2, dc, dh;
		if (np % 2 == 0) {
			t0 = mono_ns();
			bad += cache_batch(h, op, span, &xc, v);
			t1 = mono_ns();
			bad += hash_batch(op, span, &xh, v);
			t2 = mono_ns();
			dc = t1 - t0;
			dh = t2 - t1;
		} else {
			t0 = mono_ns();
			bad += hash_batch(op, span, &xh, v);
			t1 = mono_ns();
			bad += cache_batch(h, op, span, &xc, v);
			t2 = mono_ns();
			dh = t1 - t0;
			dc = t2 - t1;
		}
		tc += dc;
		th += dh;
		ops += PAIR;
		if (nr < MAX_PAIRS && dh)
			ratio[nr++] = (double)dc / (double)dh;
		np++;
	}
	if (bad) {
		shim_skip(st, op == PAIR_SET ? "a set failed"
					     : "a get of a stored key missed");
		return;
	}
	if (nr == 0 || ops == 0) {
		shim_skip(st, "no pair of batches was timed");
		return;
	}
	qsort(ratio, nr, sizeof(*ratio), cmp_double);
	shim_counter(st, op == PAIR_SLOT ? "table_ns" : "cache_ns",
		     (double)tc / (double)ops);
	shim_counter(st, "hash_ns", (double)th / (double)ops);
	shim_counter(st, "ratio", nr % 2 ? ratio[nr / 2]
					 : (ratio[nr / 2 - 1] + ratio[nr / 2]) / 2);
	shim_set_items(st, shim_iterations(st));
}

static void pair(shim_state_t *st, enum pair_op op, uint32_t span)
{
	pair_on(st, op, span, cache_seg());
}

SHIM_BENCH(pair_get_hit)(shim_state_t *st) { pair(st, PAIR_GET, BK_N); }
SHIM_BENCH(pair_get_hit_hot)(shim_state_t *st) { pair(st, PAIR_GET, HOT); }
SHIM_BENCH(pair_set)(shim_state_t *st) { pair(st, PAIR_SET, BK_N); }
SHIM_BENCH(pair_get_hit_slab)(shim_state_t *st)
{
	pair_on(st, PAIR_GET, BK_N, seg_of(0));
}
SHIM_BENCH(pair_get_hit_hot_slab)(shim_state_t *st)
{
	pair_on(st, PAIR_GET, HOT, seg_of(0));
}
SHIM_BENCH(pair_slot_table_get)(shim_state_t *st)
{
	pair(st, PAIR_SLOT, BK_N);
}
