/*
 * test_bridge_histogram.c — a histogram across hosts: two segments (two
 * hosts) observe into one labelled histogram, a real shmstat-bridge per
 * host pushes to a real redis-server, and Redis then holds the cluster
 * histogram exactly, bucket by bucket, and the sum: each cell under the
 * key the manual documents (the stored name), and each host reads the same
 * cluster-wide histogram back. Only the data keys are read, never the
 * bridge's bookkeeping.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

static int setup(void **state) { return ru_pair_setup(state, "bha", "bhb"); }
static int teardown(void **state) { return ru_pair_teardown(state); }

#define NAME "http_request_duration_seconds{route=\"/\",code=\"200\"}"
/* Its keys: the stored names (the bridge runs with no key prefix). */
#define SUM_KEY "http_request_duration_seconds{}{code=\"200\",route=\"/\"}"
#define BUCKET_KEY(le)                                                         \
	"http_request_duration_seconds{}{__le=\"" le "\",code=\"200\",route=\"/\"}"

static const double bounds[] = { 0.01, 0.1, 1 };

static void observe(shmstat_t *h, const double *v, size_t n)
{
	shmstat_histogram_t hg;
	assert_int_equal(shmstat_histogram_open(h, NAME, bounds, 3, &hg), 0);
	for (size_t i = 0; i < n; i++)
		shmstat_histogram_observe(hg, v[i]);
}

static void a_two_host_histogram_is_exact_in_redis(void **state)
{
	struct ru_pair *f = *state;
	static const double va[] = { 0.005, 0.05, 0.05, 0.5, 2, 0.0001 };
	static const double vb[] = { 0.05, 0.7, 0.9, 30 };

	observe(f->a.h, va, 6);
	observe(f->b.h, vb, 4);
	pid_t pa = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			     "10ms", "--host-id", "a1", NULL);
	pid_t pb = ru_bridge(f->r.dir, f->b.name, f->r.url, f->log, "-i",
			     "10ms", "--host-id", "b2", NULL);
	for (int round = 0; round < 2; round++) {
		/* Twice each: each host then has read the other's part. */
		assert_true(ru_wait_synced(f->a.h, 10000));
		assert_true(ru_wait_synced(f->b.h, 10000));
	}
	/* Buckets hold the observations of that bucket alone; the sum is
	 * in millionths. */
	assert_int_equal(ru_get(&f->r, BUCKET_KEY("0.01")), 2);
	assert_int_equal(ru_get(&f->r, BUCKET_KEY("0.1")), 3);
	assert_int_equal(ru_get(&f->r, BUCKET_KEY("1")), 3);
	assert_int_equal(ru_get(&f->r, BUCKET_KEY("+Inf")), 2);
	long long want = 0;
	for (size_t i = 0; i < 6; i++)
		want += (long long)(va[i] * SHMSTAT_HIST_SUM_SCALE + 0.5);
	for (size_t i = 0; i < 4; i++)
		want += (long long)(vb[i] * SHMSTAT_HIST_SUM_SCALE + 0.5);
	assert_int_equal(ru_get(&f->r, SUM_KEY), want);

	/* Each host reads the cluster histogram back. */
	shmstat_histogram_stat_t hs;
	static const uint64_t cum[] = { 2, 5, 8, 10 };
	for (int k = 0; k < 2; k++) {
		shmstat_t *h = k ? f->b.h : f->a.h;
		assert_int_equal(shmstat_histogram_read(h, NAME, &hs), 0);
		assert_true(hs.global_ns != 0);
		assert_int_equal(hs.global_count, 10);
		assert_true(fabs(hs.global_sum - (double)want / 1e6) < 1e-9);
		uint64_t c = 0;
		for (int b = 0; b < 4; b++) {
			c += hs.global_buckets[b];
			assert_int_equal(c, cum[b]);
		}
		assert_int_equal(hs.count, k ? 4 : 6); /* the local view */
	}
	/* And so does the tool. */
	char out[4096];
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "get", "-j",
				 "--global", NAME, NULL), 0);
	assert_non_null(strstr(out, "\"count\": 10"));
	assert_non_null(strstr(out, "[\"+Inf\", 10]"));
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->b.name, "list", "-j",
				 "--global", NULL), 0);
	assert_non_null(strstr(out, "\"histograms\": {\n    "
				    "\"http_request_duration_seconds{code=\\\"200\\\","
				    "route=\\\"/\\\"}\": {\"count\": 10, "));
	assert_non_null(strstr(out, "\"buckets\": [[0.01, 2], [0.1, 5], [1, 8], "
				    "[\"+Inf\", 10]]}"));

	/* More observations on one host: the next push adds exactly them. */
	static const double more[] = { 0.02, 0.02 };
	observe(f->b.h, more, 2);
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_int_equal(ru_get(&f->r, BUCKET_KEY("0.1")), 5);
	assert_int_equal(ru_get(&f->r, BUCKET_KEY("0.01")), 2);
	assert_int_equal(ru_bridge_stop(pa), 0);
	assert_int_equal(ru_bridge_stop(pb), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			a_two_host_histogram_is_exact_in_redis, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
