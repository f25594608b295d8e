/*
 * test_metric.c — shm/metric.c and the label rules of shm/directory.c:
 * labels canonicalized, histograms counted bucket by bucket across
 * processes (killed ones too) and threads, quantiles as Prometheus
 * estimates them, reset, help texts.
 */
#include <math.h>
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
	assert_int_equal(shmstat_stat_read(h, name, &st), 0);
	return st.value;
}

/* ---------------------------------------------------------------- labels */

static void labels_in_any_order_are_one_metric(void **state)
{
	struct tu_seg *s = *state;
	char out[SHMSTAT_NAME_MAX + 1];

	assert_int_equal(shmstat_counter_add_by_name(
				 s->h, "req_total{route=\"/\",code=\"200\"}", 2), 0);
	assert_int_equal(shmstat_counter_add_by_name(
				 s->h, "req_total{code=\"200\",route=\"/\"}", 3), 0);
	assert_int_equal(shmstat_counter_add_by_name(
				 s->h, "req_total{ code=\"200\", route=\"/\",}", 4), 0);
	/* The stored form is accepted too. */
	assert_int_equal(shmstat_counter_add_by_name(
				 s->h, "req_total{}{code=\"200\",route=\"/\"}", 1), 0);
	assert_int_equal(value_of(s->h, "req_total{route=\"/\",code=\"200\"}"), 10);
	shmstat_info_t in;
	shmstat_info(s->h, &in);
	assert_int_equal(in.counters_used, 1);

	int n = shmstat_name_canonical("a{z=\"1\",b=\"q\\\"\\\\\\n\",m=\"\"}", out,
				       sizeof(out));
	assert_string_equal(out, "a{b=\"q\\\"\\\\\\n\",m=\"\",z=\"1\"}");
	assert_int_equal(n, (int)strlen(out));
	assert_int_equal(shmstat_name_canonical("plain.name", out, sizeof(out)), 10);
	assert_string_equal(out, "plain.name");
	assert_int_equal(shmstat_name_canonical("a{}", out, sizeof(out)), 1);
	assert_string_equal(out, "a");
	assert_int_equal(shmstat_name_canonical("a{}{k=\"v\"}", out, sizeof(out)), 8);
	assert_string_equal(out, "a{k=\"v\"}");
	assert_int_equal(shmstat_name_canonical("a{k=\"v\"}", out, 4),
			 SHMSTAT_ERANGE);
	/* UTF-8 in names and values. */
	assert_int_equal(shmstat_name_canonical("größe{wert=\"ü\"}", out,
						sizeof(out)) > 0, 1);
	assert_string_equal(out, "größe{wert=\"ü\"}");
}

static void labels_that_break_the_rules_are_refused(void **state)
{
	struct tu_seg *s = *state;
	static const char *const bad[] = {
		"{a=\"b\"}",            /* no name */
		"a{1b=\"x\"}",          /* key */
		"a{b-c=\"x\"}",
		"a{b=x}",              /* unquoted */
		"a{b=\"x\"",           /* no } */
		"a{b=\"x}",            /* no closing quote */
		"a{b=\"x\"}junk",
		"a{b=\"\\q\"}",         /* unknown escape */
		"a{b=\"1\",b=\"2\"}",   /* twice */
		"a{__b=\"1\"}",         /* reserved */
		"a{b=\"1\"}{c=\"2\"}",
	};
	shmstat_counter_t c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (shmstat_counter_open(s->h, bad[i], &c) != SHMSTAT_ENAME)
			fail_msg("'%s' was accepted", bad[i]);
		assert_true(strlen(shmstat_errstr(s->h)) > 10);
	}
	char many[400] = "m{";
	for (int k = 0; k <= SHMSTAT_LABELS_MAX; k++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
			 "%sk%02d=\"v\"", k ? "," : "", k);
	strcat(many, "}");
	assert_int_equal(shmstat_counter_open(s->h, many, &c), SHMSTAT_ENAME);
	shmstat_info_t in;
	shmstat_info(s->h, &in);
	assert_int_equal(in.counters_used, 0); /* nothing was created */
}

/* What Redis Cluster hashes of a key: the hash tag (between the first '{'
 * and the next '}', when not empty), else the whole key. */
static size_t hashed_part(const char *key, const char **start)
{
	const char *o = strchr(key, '{');
	*start = key;
	if (o) {
		const char *c = strchr(o + 1, '}');
		if (c && c > o + 1) {
			*start = o + 1;
			return (size_t)(c - o - 1);
		}
	}
	return strlen(key);
}

static int key_of(const shmstat_stat_t *st, void *priv)
{
	char *out = priv;
	if (st->kind == SHMSTAT_KIND_COUNTER)
		snprintf(out, SHMSTAT_NAME_MAX + 16, "app:%s", st->name);
	return 0;
}

static void the_redis_key_of_a_labelled_name_hashes_whole(void **state)
{
	struct tu_seg *s = *state;
	char key[SHMSTAT_NAME_MAX + 16] = "";
	const char *start;

	assert_int_equal(shmstat_counter_add_by_name(
				 s->h, "req_total{code=\"200\",route=\"/{x}\"}", 1), 0);
	/* The key the bridge gives it: key prefix + the stored name. */
	shmstat_iter(s->h, NULL, key_of, key);
	assert_string_equal(key, "app:req_total{}{code=\"200\",route=\"/{x}\"}");
	assert_int_equal(hashed_part(key, &start), strlen(key));
	assert_ptr_equal(start, key);
}

static void label_sets_are_bounded_by_the_directory(void **state)
{
	(void)state;
	struct tu_seg t;
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL,
				.max_counters = 16 };
	char name[64];
	int ok = 0, rc = 0;

	tu_seg_create(&t, "card", &o);
	for (int i = 0; i < 100 && rc == 0; i++) {
		snprintf(name, sizeof(name), "req{user=\"%d\"}", i);
		if ((rc = shmstat_counter_add_by_name(t.h, name, 1)) == 0)
			ok++;
	}
	assert_int_equal(rc, SHMSTAT_EFULL);
	assert_int_equal(ok, 16);
	assert_int_equal(value_of(t.h, "req{user=\"3\"}"), 1); /* still there */
	shmstat_close(&t.h);
	shmstat_unlink(t.name);
}

/* ------------------------------------------------------------ histograms */

static const double B4[] = { 1, 2, 4, 8 };

static void a_histogram_counts_each_bucket_and_the_sum(void **state)
{
	struct tu_seg *s = *state;
	shmstat_histogram_t hg;
	shmstat_histogram_stat_t hs;

	assert_int_equal(shmstat_histogram_open(s->h, "lat{route=\"/\"}", B4, 4,
						&hg), 0);
	static const double v[] = { 0, 0.5, 1, 1.5, 2, 3.25, 8, 9, 1e6, -3, NAN };
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		shmstat_histogram_observe(hg, v[i]);
	assert_int_equal(shmstat_histogram_read(s->h, "lat{route=\"/\"}", &hs), 0);
	assert_string_equal(hs.name, "lat{route=\"/\"}");
	assert_int_equal(hs.nbuckets, 5);
	assert_true(hs.le[0] == 1 && hs.le[3] == 8 && isinf(hs.le[4]));
	/* le=1: 0 0.5 1 -3(as 0); le=2: 1.5 2; le=4: 3.25; le=8: 8;
	 * +Inf: 9 1e6. NaN is not counted. */
	static const uint64_t want[] = { 4, 2, 1, 1, 2 };
	for (int k = 0; k < 5; k++)
		assert_int_equal(hs.buckets[k], want[k]);
	assert_int_equal(hs.count, 10);
	assert_true(fabs(hs.sum - (0.5 + 1 + 1.5 + 2 + 3.25 + 8 + 9 + 1e6)) < 1e-6);
	/* Its entries: the sum and 5 buckets. */
	shmstat_info_t in;
	shmstat_info(s->h, &in);
	assert_int_equal(in.counters_used, 6);
	/* A second open with the same bounds is the same histogram; with
	 * none, it takes the existing bounds; others are refused. */
	shmstat_histogram_t h2;
	assert_int_equal(shmstat_histogram_open(s->h, "lat{route=\"/\"}", B4, 4,
						&h2), 0);
	assert_int_equal(shmstat_histogram_open(s->h, "lat{route=\"/\"}", NULL, 0,
						&h2), 0);
	shmstat_histogram_observe(h2, 1.75);
	assert_int_equal(shmstat_histogram_read(s->h, "lat{route=\"/\"}", &hs), 0);
	assert_int_equal(hs.buckets[1], 3);
	static const double other[] = { 1, 2, 5 };
	assert_int_equal(shmstat_histogram_open(s->h, "lat{route=\"/\"}", other, 3,
						&h2), SHMSTAT_EKIND);
	assert_non_null(strstr(shmstat_errstr(s->h), "other bucket bounds"));
	/* The failed handle observes nowhere, and never faults. */
	shmstat_histogram_observe(h2, 1);
	shmstat_histogram_observe_ts(&h2, 1);
	/* Names: a counter is not a histogram, nor the other way. */
	shmstat_counter_t c;
	assert_int_equal(shmstat_counter_open(s->h, "lat{route=\"/\"}", &c),
			 SHMSTAT_EKIND);
	assert_int_equal(shmstat_counter_open(s->h, "lat{__le=\"1\",route=\"/\"}", &c),
			 SHMSTAT_ENAME);
	assert_int_equal(shmstat_histogram_open(s->h, "lat{le=\"x\"}", B4, 4, &h2),
			 SHMSTAT_ENAME);
	static const double bad1[] = { 1, 1 }, bad2[] = { 1, INFINITY };
	assert_int_equal(shmstat_histogram_open(s->h, "b", bad1, 2, &h2), SHMSTAT_EINVAL);
	assert_int_equal(shmstat_histogram_open(s->h, "b", bad2, 2, &h2), SHMSTAT_EINVAL);
	assert_int_equal(shmstat_histogram_open(s->h, "b", B4, 0, &h2), SHMSTAT_EINVAL);
	assert_int_equal(shmstat_histogram_open(s->h, "b", NULL, 0, &h2),
			 SHMSTAT_ENOTFOUND);
	/* By name, as the tool does. */
	assert_int_equal(shmstat_histogram_observe_by_name(s->h, "lat{route=\"/\"}", 3), 0);
	assert_int_equal(shmstat_histogram_read(s->h, "lat{route=\"/\"}", &hs), 0);
	assert_int_equal(hs.count, 12);
	double e[4];
	assert_int_equal(shmstat_buckets_exponential(0.001, 10, 4, e), 0);
	assert_true(fabs(e[3] - 1) < 1e-12);
	assert_int_equal(shmstat_buckets_exponential(0, 10, 4, e), SHMSTAT_EINVAL);
}

/* 2^e and the neighbours of a double, without libm. */
static double pow2(int e)
{
	double r = 1;
	for (; e > 0; e--)
		r *= 2;
	for (; e < 0; e++)
		r /= 2;
	return r;
}

static double beside(double v, int dir)
{
	uint64_t u;
	if (v == 0)
		return dir > 0 ? 0x1p-1074 : -0x1p-1074;
	memcpy(&u, &v, sizeof(u));
	u += (v > 0) == (dir > 0) ? 1 : (uint64_t)-1;
	memcpy(&v, &u, sizeof(v));
	return v;
}

/* The inline path's bucket table agrees with the definition (the first
 * bound >= v) for random bounds and values: bounds on both sides of
 * zero, tiny and huge, values exactly on a bound, just beside one,
 * subnormal, and past the inline path's range. */
static void every_value_lands_in_the_first_bucket_whose_bound_holds_it(void **state)
{
	struct tu_seg *s = *state;
	unsigned seed = 4242;
	char name[32];

	for (int round = 0; round < 40; round++) {
		double b[SHMSTAT_HIST_BOUNDS_MAX];
		size_t n = 1 + (size_t)rand_r(&seed) % SHMSTAT_HIST_BOUNDS_MAX;
		double x = round % 5 == 0 ? -1.0 : round % 5 == 1 ? 0.0 :
			   pow2(rand_r(&seed) % 40 - 30);
		for (size_t k = 0; k < n; k++) {
			b[k] = x;
			x += round % 3 == 0 ? pow2(rand_r(&seed) % 10 - 12)
					    : x > 0 ? x * (0.01 + (rand_r(&seed) % 300) / 100.0)
						    : 0.5;
		}
		shmstat_histogram_t hg;
		snprintf(name, sizeof(name), "prop%d", round);
		assert_int_equal(shmstat_histogram_open(s->h, name, b, n, &hg), 0);
		shmstat_histogram_stat_t before, after;
		assert_int_equal(shmstat_histogram_read(s->h, name, &before), 0);
		for (int i = 0; i < 60; i++) {
			double v;
			size_t at = (size_t)rand_r(&seed) % n;
			switch (rand_r(&seed) % 6) {
			case 0: v = b[at]; break;
			case 1: v = beside(b[at], 1); break;
			case 2: v = beside(b[at], -1); break;
			case 3: v = (double)rand_r(&seed) * pow2(-(rand_r(&seed) % 60)); break;
			case 4: v = 4294.0 * (rand_r(&seed) % 3); break;
			default: v = 0x1p-1070 * (rand_r(&seed) % 4); break; /* subnormal */
			}
			double e = v < 0 ? 0 : v; /* negative counts as 0 */
			size_t want = 0;
			while (want < n && e > b[want])
				want++;
			shmstat_histogram_observe(hg, v);
			assert_int_equal(shmstat_histogram_read(s->h, name, &after), 0);
			for (size_t k = 0; k <= n; k++) {
				uint64_t d = after.buckets[k] - before.buckets[k];
				if (d != (k == want))
					fail_msg("bounds %zu from %g, v=%a: bucket %zu "
						 "changed by %llu, want bucket %zu",
						 n, b[0], v, k, (unsigned long long)d,
						 want);
			}
			before = after;
		}
	}
}

/* Prometheus' histogram_quantile on data whose answer is known. */
static void quantiles_are_estimated_as_prometheus_does(void **state)
{
	struct tu_seg *s = *state;
	double b[10];
	shmstat_histogram_t hg;
	shmstat_histogram_stat_t hs;

	for (int k = 0; k < 10; k++)
		b[k] = 0.1 * (k + 1);
	assert_int_equal(shmstat_histogram_open(s->h, "q", b, 10, &hg), 0);
	assert_int_equal(shmstat_histogram_read(s->h, "q", &hs), 0);
	assert_true(isnan(shmstat_histogram_quantile(&hs, 0.5, 0))); /* empty */
	/* 1000 observations spread evenly over (0, 1]: 100 per bucket. */
	for (int i = 0; i < 1000; i++)
		shmstat_histogram_observe(hg, (i + 0.5) / 1000);
	assert_int_equal(shmstat_histogram_read(s->h, "q", &hs), 0);
	for (int k = 0; k < 10; k++)
		assert_int_equal(hs.buckets[k], 100);
	assert_true(fabs(shmstat_histogram_quantile(&hs, 0.5, 0) - 0.5) < 1e-9);
	assert_true(fabs(shmstat_histogram_quantile(&hs, 0.9, 0) - 0.9) < 1e-9);
	assert_true(fabs(shmstat_histogram_quantile(&hs, 0.99, 0) - 0.99) < 1e-9);
	/* Within the first bucket the lower bound is 0: rank 50 of 100. */
	assert_true(fabs(shmstat_histogram_quantile(&hs, 0.05, 0) - 0.05) < 1e-9);
	/* A rank in +Inf gives the highest finite bound. */
	for (int i = 0; i < 1000; i++)
		shmstat_histogram_observe(hg, 5);
	assert_int_equal(shmstat_histogram_read(s->h, "q", &hs), 0);
	assert_true(fabs(shmstat_histogram_quantile(&hs, 0.99, 0) - 1.0) < 1e-9);
	/* Half the data is in +Inf now: p25 is the old median. */
	assert_true(fabs(shmstat_histogram_quantile(&hs, 0.25, 0) - 0.5) < 1e-9);
	assert_true(isinf(shmstat_histogram_quantile(&hs, 1.5, 0)));
}

static void reset_clears_a_histogram_like_counters(void **state)
{
	struct tu_seg *s = *state;
	shmstat_histogram_t hg;
	shmstat_histogram_stat_t hs;
	uint64_t n;

	assert_int_equal(shmstat_histogram_open(s->h, "r{a=\"1\"}", B4, 4, &hg), 0);
	assert_int_equal(shmstat_counter_add_by_name(s->h, "r_other", 5), 0);
	for (int i = 0; i < 10; i++)
		shmstat_histogram_observe(hg, i);
	/* The glob sees the canonical form. */
	assert_int_equal(shmstat_reset(s->h, "r{a=*", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(shmstat_histogram_read(s->h, "r{a=\"1\"}", &hs), 0);
	assert_int_equal(hs.count, 0);
	assert_true(hs.sum == 0);
	for (uint32_t k = 0; k < hs.nbuckets; k++)
		assert_int_equal(hs.buckets[k], 0);
	assert_int_equal(value_of(s->h, "r_other"), 5);
	shmstat_histogram_observe(hg, 3);
	assert_int_equal(shmstat_histogram_read(s->h, "r{a=\"1\"}", &hs), 0);
	assert_int_equal(hs.count, 1);
	assert_int_equal(hs.buckets[2], 1);
	assert_true(fabs(hs.sum - 3) < 1e-9);
}

/*
 * 8 processes observe, recording their progress after each observation;
 * 3 are SIGKILLed mid-run. After the dead are reaped, every bucket holds
 * what was recorded for it, plus at most one per killed process (killed
 * between the observation and the record), and the sum likewise; the
 * rows are adopted by new processes and counting stays exact.
 */
#define PROCS 8
#define PER_PROC 20000
static const double VALS[] = { 0.5, 1.5, 3, 6, 100 }; /* one per bucket */
#define NV (sizeof(VALS) / sizeof(VALS[0]))

struct progress {
	volatile uint64_t done[PROCS];
};

static void killed_observers_lose_nothing_bucket_by_bucket(void **state)
{
	struct tu_seg *s = *state;
	struct progress *pr = tu_shared(sizeof(*pr));
	pid_t pids[PROCS];
	const int killed = 3;
	shmstat_histogram_t hg;

	assert_int_equal(shmstat_histogram_open(s->h, "ks", B4, 4, &hg), 0);
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			shmstat_t *h;
			shmstat_histogram_t c;
			if (shmstat_open(s->name, NULL, &h) ||
			    shmstat_histogram_open(h, "ks", NULL, 0, &c))
				_exit(10);
			uint64_t n = p < killed ? 1000ull * PER_PROC : PER_PROC;
			for (uint64_t k = 0; k < n; k++) {
				shmstat_histogram_observe(c, VALS[k % NV]);
				__atomic_store_n(&pr->done[p], k + 1,
						 __ATOMIC_RELEASE);
			}
			shmstat_close(&h);
			_exit(0);
		}
	}
	for (int p = 0; p < killed; p++) {
		for (int spin = 0;
		     __atomic_load_n(&pr->done[p], __ATOMIC_ACQUIRE) < 1000;
		     spin++) {
			assert_true(spin < 20000000);
			sched_yield();
		}
		kill(pids[p], SIGKILL);
	}
	for (int p = 0; p < PROCS; p++)
		assert_int_equal(tu_wait(pids[p], 120000),
				 p < killed ? 128 + SIGKILL : 0);
	uint32_t reaped;
	assert_int_equal(shmstat_reap(s->h, &reaped), 0);
	assert_int_equal(reaped, killed);

	uint64_t want[NV] = { 0 };
	double want_sum = 0;
	for (int p = 0; p < PROCS; p++)
		for (size_t v = 0; v < NV; v++) {
			uint64_t n = pr->done[p] / NV + (v < pr->done[p] % NV);
			want[v] += n;
			want_sum += (double)n * VALS[v];
		}
	shmstat_histogram_stat_t hs;
	assert_int_equal(shmstat_histogram_read(s->h, "ks", &hs), 0);
	for (size_t v = 0; v < NV; v++) {
		if (hs.buckets[v] < want[v] || hs.buckets[v] > want[v] + killed)
			fail_msg("bucket %zu: %llu, recorded %llu (+ at most %d)",
				 v, (unsigned long long)hs.buckets[v],
				 (unsigned long long)want[v], killed);
	}
	assert_true(hs.sum >= want_sum - 1e-3);
	assert_true(hs.sum <= want_sum + killed * 100 + 1e-3);

	/* New processes adopt the freed rows and add on top: exact. */
	shmstat_histogram_stat_t before = hs;
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			shmstat_t *h;
			shmstat_histogram_t c;
			if (shmstat_open(s->name, NULL, &h) ||
			    shmstat_histogram_open(h, "ks", NULL, 0, &c))
				_exit(1);
			for (int k = 0; k < 100; k++)
				shmstat_histogram_observe(c, 1.5);
			shmstat_close(&h);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++)
		assert_int_equal(tu_wait(pids[p], 60000), 0);
	assert_int_equal(shmstat_histogram_read(s->h, "ks", &hs), 0);
	for (size_t v = 0; v < NV; v++)
		assert_int_equal(hs.buckets[v],
				 before.buckets[v] + (v == 1 ? PROCS * 100 : 0));
	assert_true(fabs(hs.sum - before.sum - PROCS * 150.0) < 1e-3);
	tu_shared_free(pr, sizeof(*pr));
}

/* Threads sharing one histogram handle: the owner adds plainly, others
 * through rows of their own or atomically; nothing is lost. */
struct tctx {
	shmstat_histogram_t hg;
	int n;
};

static void *observe_run(void *arg)
{
	struct tctx *t = arg;
	for (int i = 0; i < t->n; i++)
		shmstat_histogram_observe(t->hg, (i % 2) ? 1.5 : 0.5);
	return NULL;
}

static void threads_sharing_a_histogram_lose_nothing(void **state)
{
	struct tu_seg *s = *state;
	struct tctx t = { .n = 50000 };
	pthread_t th[6];
	shmstat_histogram_stat_t hs;

	assert_int_equal(shmstat_histogram_open(s->h, "th", B4, 4, &t.hg), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(pthread_create(&th[i], NULL, observe_run, &t), 0);
	observe_run(&t);
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(shmstat_histogram_read(s->h, "th", &hs), 0);
	assert_int_equal(hs.count, 7 * 50000);
	assert_int_equal(hs.buckets[0], 7 * 25000);
	assert_int_equal(hs.buckets[1], 7 * 25000);
	assert_true(fabs(hs.sum - 7 * 25000 * 2.0) < 1e-3);
}

/* ------------------------------------------------------------------ help */

static void help_is_kept_replaced_and_exported(void **state)
{
	struct tu_seg *s = *state;
	char buf[SHMSTAT_HELP_MAX + 1];

	assert_int_equal(shmstat_help_get(s->h, "req_total", buf, sizeof(buf)),
			 SHMSTAT_ENOTFOUND);
	assert_int_equal(shmstat_help_set(s->h, "req_total{route=\"/\"}",
					  "Requests."), 0);
	assert_int_equal(shmstat_help_get(s->h, "req_total", buf, sizeof(buf)), 9);
	assert_string_equal(buf, "Requests.");
	assert_int_equal(shmstat_help_set(s->h, "req_total", "Requests, by route."), 0);
	assert_int_equal(shmstat_help_get(s->h, "req_total", buf, sizeof(buf)), 19);
	assert_string_equal(buf, "Requests, by route.");
	assert_int_equal(shmstat_help_get(s->h, "req_total", buf, 5), SHMSTAT_ERANGE);
	assert_int_equal(shmstat_help_set(s->h, "x", "bad\x01"), SHMSTAT_EINVAL);
	assert_int_equal(shmstat_help_set(s->h, "x", "\xff"), SHMSTAT_EINVAL);
	char big[SHMSTAT_HELP_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(shmstat_help_set(s->h, "x", big), SHMSTAT_EINVAL);
	big[SHMSTAT_HELP_MAX] = '\0';
	assert_int_equal(shmstat_help_set(s->h, "x", big), 0);
	assert_int_equal(shmstat_help_get(s->h, "x", buf, sizeof(buf)),
			 SHMSTAT_HELP_MAX);

	assert_int_equal(shmstat_counter_add_by_name(s->h, "req_total{route=\"/\"}", 1), 0);
	char *doc = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&doc, &len);
	assert_int_equal(shmstat_export_prometheus(s->h, NULL, f), 0);
	fclose(f);
	assert_non_null(strstr(doc, "# HELP shmstat_req_total Requests, by route.\n"
				    "# TYPE shmstat_req_total counter\n"));
	free(doc);

	/* The table is bounded: EFULL past it, and the rest keep theirs. */
	char name[32];
	int rc = 0, i;
	for (i = 0; i < 10000 && rc == 0; i++) {
		snprintf(name, sizeof(name), "fam%d", i);
		rc = shmstat_help_set(s->h, name, "t");
	}
	assert_int_equal(rc, SHMSTAT_EFULL);
	assert_int_equal(shmstat_help_get(s->h, "req_total", buf, sizeof(buf)), 19);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_seg_setup, tu_seg_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(labels_in_any_order_are_one_metric),
		T(labels_that_break_the_rules_are_refused),
		T(the_redis_key_of_a_labelled_name_hashes_whole),
		T(label_sets_are_bounded_by_the_directory),
		T(a_histogram_counts_each_bucket_and_the_sum),
		T(every_value_lands_in_the_first_bucket_whose_bound_holds_it),
		T(quantiles_are_estimated_as_prometheus_does),
		T(reset_clears_a_histogram_like_counters),
		T(killed_observers_lose_nothing_bucket_by_bucket),
		T(threads_sharing_a_histogram_lose_nothing),
		T(help_is_kept_replaced_and_exported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
