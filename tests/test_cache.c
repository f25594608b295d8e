/*
 * test_cache.c — shm/cache.c: the API's contract one call at a time (a
 * fresh segment per test), TTLs through the injectable clock, limits, glob
 * patterns, statistics, eviction's hit rate, and the cache header's
 * validation at attach.
 */
#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache_i.h"
#include "shmstat_i.h"
#include "testutil.h"

#define MAXV 1024u

static int setup_small(void **state)
{
	struct tu_seg *s = calloc(1, sizeof(*s));
	shmstat_options_t o = { .size = 4u << 20, .max_counters = 64,
				.max_workers = 16, .cache_max_value = MAXV };
	tu_seg_create(s, "cache", &o);
	*state = s;
	shmstat__cache_set_clock(0);
	return 0;
}

static int teardown(void **state)
{
	shmstat__cache_hook = NULL;
	shmstat__cache_set_clock(0);
	return tu_seg_teardown(state);
}

static shmstat_t *H(void **state) { return ((struct tu_seg *)*state)->h; }

static int set_s(shmstat_t *h, const char *k, const char *v, uint64_t ttl,
		 int mode)
{
	return shmstat_cache_set(h, k, strlen(k), v, strlen(v), ttl, mode);
}

static int get_s(shmstat_t *h, const char *k, char *buf, size_t len)
{
	size_t n = 0;
	int rc = shmstat_cache_get(h, k, strlen(k), buf, len - 1, &n);
	if (rc == 0)
		buf[n] = '\0';
	return rc;
}

static void set_then_get_returns_a_copy_of_the_value(void **state)
{
	shmstat_t *h = H(state);
	char buf[64];

	assert_int_equal(set_s(h, "user:1", "alice", 0, 0), 0);
	assert_int_equal(get_s(h, "user:1", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "alice");
	assert_int_equal(set_s(h, "user:1", "bob", 0, 0), 0);
	assert_int_equal(get_s(h, "user:1", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "bob");
	assert_int_equal(get_s(h, "user:2", buf, sizeof(buf)), SHMSTAT_ENOTFOUND);
	/* An empty value is a value. */
	assert_int_equal(shmstat_cache_set(h, "e", 1, NULL, 0, 0, 0), 0);
	size_t n = 99;
	assert_int_equal(shmstat_cache_get(h, "e", 1, NULL, 0, &n), 0);
	assert_int_equal(n, 0);
}

static void a_small_buffer_gets_erange_and_the_needed_length(void **state)
{
	shmstat_t *h = H(state);
	char buf[4];
	size_t n = 0;

	assert_int_equal(set_s(h, "k", "0123456789", 0, 0), 0);
	assert_int_equal(shmstat_cache_get(h, "k", 1, buf, sizeof(buf), &n),
			 SHMSTAT_ERANGE);
	assert_int_equal(n, 10);
}

static void keys_are_binary_and_nul_bytes_count(void **state)
{
	shmstat_t *h = H(state);
	const char k1[] = { 'a', 0, 'b' }, k2[] = { 'a', 0, 'c' };
	char buf[8];
	size_t n;

	assert_int_equal(shmstat_cache_set(h, k1, 3, "1", 1, 0, 0), 0);
	assert_int_equal(shmstat_cache_set(h, k2, 3, "2", 1, 0, 0), 0);
	assert_int_equal(shmstat_cache_get(h, k1, 3, buf, 8, &n), 0);
	assert_memory_equal(buf, "1", 1);
	assert_int_equal(shmstat_cache_get(h, k2, 3, buf, 8, &n), 0);
	assert_memory_equal(buf, "2", 1);
	assert_int_equal(shmstat_cache_get(h, "a", 1, buf, 8, &n),
			 SHMSTAT_ENOTFOUND);
	/* A value with NUL bytes comes back whole. */
	const char v[] = { 0, 1, 0, 2 };
	assert_int_equal(shmstat_cache_set(h, "v", 1, v, 4, 0, 0), 0);
	assert_int_equal(shmstat_cache_get(h, "v", 1, buf, 8, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, v, 4);
}

static void limits_give_clear_errors(void **state)
{
	shmstat_t *h = H(state);
	char key[SHMSTAT_CACHE_KEY_MAX + 1], *big = calloc(1, MAXV + 1);
	size_t n;

	memset(key, 'k', sizeof(key));
	assert_int_equal(shmstat_cache_set(h, key, 0, "v", 1, 0, 0),
			 SHMSTAT_EINVAL);
	assert_non_null(strstr(shmstat_errstr(h), "1 to 250"));
	assert_int_equal(shmstat_cache_set(h, NULL, 3, "v", 1, 0, 0),
			 SHMSTAT_EINVAL);
	assert_int_equal(shmstat_cache_set(h, key, sizeof(key), "v", 1, 0, 0),
			 SHMSTAT_EINVAL);
	assert_int_equal(shmstat_cache_get(h, key, sizeof(key), NULL, 0, &n),
			 SHMSTAT_EINVAL);
	assert_int_equal(shmstat_cache_set(h, key, SHMSTAT_CACHE_KEY_MAX, big,
					   MAXV, 0, 0),
			 0);
	assert_int_equal(shmstat_cache_set(h, "big", 3, big, MAXV + 1, 0, 0),
			 SHMSTAT_ETOOBIG);
	assert_non_null(strstr(shmstat_errstr(h), "maximum"));
	assert_int_equal(shmstat_cache_exists(h, "big", 3), 0);
	assert_int_equal(shmstat_cache_get(h, key, SHMSTAT_CACHE_KEY_MAX, big,
					   MAXV, &n),
			 0);
	assert_int_equal(n, MAXV);
	assert_int_equal(set_s(h, "m", "v", 0, 7), SHMSTAT_EINVAL);
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.max_value, MAXV);
	/* A caller's bad key or value is not the cache's error: it neither
	 * counts nor degrades health. */
	assert_int_equal(st.errors, 0);
	free(big);
}

static void nx_and_xx_respect_presence(void **state)
{
	shmstat_t *h = H(state);
	char buf[16];

	assert_int_equal(set_s(h, "k", "a", 0, SHMSTAT_CACHE_XX),
			 SHMSTAT_ENOTFOUND);
	assert_int_equal(set_s(h, "k", "a", 0, SHMSTAT_CACHE_NX), 0);
	assert_int_equal(set_s(h, "k", "b", 0, SHMSTAT_CACHE_NX),
			 SHMSTAT_EKEYEXISTS);
	assert_int_equal(set_s(h, "k", "c", 0, SHMSTAT_CACHE_XX), 0);
	assert_int_equal(get_s(h, "k", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "c");
}

static void delete_and_exists(void **state)
{
	shmstat_t *h = H(state);

	assert_int_equal(set_s(h, "k", "a", 0, 0), 0);
	assert_int_equal(shmstat_cache_exists(h, "k", 1), 1);
	assert_int_equal(shmstat_cache_delete(h, "k", 1), 0);
	assert_int_equal(shmstat_cache_exists(h, "k", 1), 0);
	assert_int_equal(shmstat_cache_delete(h, "k", 1), SHMSTAT_ENOTFOUND);
}

static void ttl_expiry_and_touch_follow_the_injected_clock(void **state)
{
	shmstat_t *h = H(state);
	char buf[16];
	int64_t ttl;

	shmstat__cache_set_clock(1000000);
	assert_int_equal(set_s(h, "s", "v", 1000, 0), 0);
	assert_int_equal(set_s(h, "p", "v", 0, 0), 0);
	assert_int_equal(shmstat_cache_ttl(h, "s", 1, &ttl), 0);
	assert_int_equal(ttl, 1000);
	assert_int_equal(shmstat_cache_ttl(h, "p", 1, &ttl), 0);
	assert_int_equal(ttl, -1);
	shmstat__cache_set_clock(1000999);
	assert_int_equal(get_s(h, "s", buf, sizeof(buf)), 0);
	assert_int_equal(shmstat_cache_ttl(h, "s", 1, &ttl), 0);
	assert_int_equal(ttl, 1);
	/* Sliding expiration: touch gives it 500 ms from now. */
	assert_int_equal(shmstat_cache_expire(h, "s", 1, 500), 0);
	shmstat__cache_set_clock(1001400);
	assert_int_equal(get_s(h, "s", buf, sizeof(buf)), 0);
	shmstat__cache_set_clock(1001498);
	assert_int_equal(shmstat_cache_exists(h, "s", 1), 1);
	shmstat__cache_set_clock(1001499); /* 1000999 + 500 */
	assert_int_equal(get_s(h, "s", buf, sizeof(buf)), SHMSTAT_ENOTFOUND);
	assert_int_equal(shmstat_cache_ttl(h, "s", 1, &ttl), SHMSTAT_ENOTFOUND);
	assert_int_equal(shmstat_cache_expire(h, "s", 1, 10),
			 SHMSTAT_ENOTFOUND);
	/* An expired key is absent for NX. */
	assert_int_equal(set_s(h, "t", "v", 10, 0), 0);
	shmstat__cache_set_clock(1001509);
	assert_int_equal(set_s(h, "t", "w", 0, SHMSTAT_CACHE_NX), 0);
	/* expire(0) removes the TTL. */
	assert_int_equal(set_s(h, "u", "v", 10, 0), 0);
	assert_int_equal(shmstat_cache_expire(h, "u", 1, 0), 0);
	shmstat__cache_set_clock(9000000);
	assert_int_equal(shmstat_cache_exists(h, "u", 1), 1);
	assert_int_equal(shmstat_cache_exists(h, "p", 1), 1);
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_true(st.expirations >= 1);
}

static void sweep_removes_expired_entries_in_bounded_steps(void **state)
{
	shmstat_t *h = H(state);
	char k[16];
	uint64_t total = 0, n;

	shmstat__cache_set_clock(5000);
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		assert_int_equal(set_s(h, k, "v", i < 60 ? 10 : 0, 0), 0);
	}
	shmstat__cache_set_clock(6000);
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.entries, 100); /* nothing removed them yet */
	/* One step covers at most its buckets; steps in turn cover all. */
	assert_int_equal(shmstat_cache_sweep(h, 1, &n), 0);
	assert_true(n <= 7);
	total += n;
	for (int i = 0; i < 100000 && total < 60; i++) {
		assert_int_equal(shmstat_cache_sweep(h, 64, &n), 0);
		total += n;
	}
	assert_int_equal(total, 60);
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.entries, 40);
	assert_int_equal(st.expirations, 60);
}

static int collect(const void *key, size_t klen, void *priv)
{
	char *out = priv;
	strncat(out, key, klen);
	strcat(out, ",");
	return 0;
}

static int stop_at_first(const void *key, size_t klen, void *priv)
{
	(void)key;
	(void)klen;
	++*(int *)priv;
	return 42;
}

static void clear_and_iterate_by_glob(void **state)
{
	shmstat_t *h = H(state);
	char keys[256] = "";
	uint64_t n;
	int calls = 0;

	assert_int_equal(set_s(h, "llm:a", "1", 0, 0), 0);
	assert_int_equal(set_s(h, "llm:b", "1", 0, 0), 0);
	assert_int_equal(set_s(h, "llm:cc", "1", 0, 0), 0);
	assert_int_equal(set_s(h, "ml:a", "1", 0, 0), 0);
	assert_int_equal(shmstat_cache_iter(h, "llm:?", collect, keys), 0);
	assert_int_equal(strlen(keys), strlen("llm:a,llm:b,"));
	assert_non_null(strstr(keys, "llm:a,"));
	assert_non_null(strstr(keys, "llm:b,"));
	assert_int_equal(shmstat_cache_iter(h, NULL, stop_at_first, &calls), 42);
	assert_int_equal(calls, 1);
	keys[0] = '\0';
	assert_int_equal(shmstat_cache_iter(h, "[m]l:*", collect, keys), 0);
	assert_string_equal(keys, "ml:a,");
	assert_int_equal(shmstat_cache_clear(h, "llm:*", &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(shmstat_cache_exists(h, "ml:a", 4), 1);
	assert_int_equal(shmstat_cache_clear(h, "nothing*", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(set_s(h, "x", "1", 0, 0), 0);
	assert_int_equal(shmstat_cache_flush(h, &n), 0);
	assert_int_equal(n, 2);
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.deletes, 5);
}

static void glob_matches_binary_keys(void **state)
{
	shmstat_t *h = H(state);
	const char k[] = { 'a', 0, 'z' };
	uint64_t n;

	assert_int_equal(shmstat_cache_set(h, k, 3, "v", 1, 0, 0), 0);
	assert_int_equal(set_s(h, "a*z", "v", 0, 0), 0);
	assert_int_equal(set_s(h, "[x]", "v", 0, 0), 0);
	/* An escaped star matches only a star. */
	assert_int_equal(shmstat_cache_clear(h, "a\\*z", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(shmstat_cache_clear(h, "\\[x]", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(shmstat_cache_clear(h, "a?z", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(shmstat_cache_clear(h, "[!a]*", &n), 0);
	assert_int_equal(n, 0);
}

static void statistics_count_every_outcome(void **state)
{
	shmstat_t *h = H(state);
	shmstat_cache_stats_t st;
	char buf[8];

	assert_int_equal(set_s(h, "a", "1", 0, 0), 0);
	assert_int_equal(set_s(h, "b", "1", 0, 0), 0);
	assert_int_equal(get_s(h, "a", buf, 8), 0);
	assert_int_equal(get_s(h, "a", buf, 8), 0);
	assert_int_equal(get_s(h, "a", buf, 8), 0);
	assert_int_equal(get_s(h, "c", buf, 8), SHMSTAT_ENOTFOUND);
	assert_int_equal(shmstat_cache_delete(h, "b", 1), 0);
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.hits, 3);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.sets, 2);
	assert_int_equal(st.deletes, 1);
	assert_int_equal(st.entries, 1);
	assert_true(st.hit_rate > 0.74 && st.hit_rate < 0.76);
	assert_true(st.bytes_used >= 64 && st.bytes_free > 1000000);
	/* Another process's counts add up in this one's view. */
	pid_t pid = fork();
	if (pid == 0) {
		shmstat_t *c = NULL;
		if (shmstat_open(((struct tu_seg *)*state)->name, NULL, &c))
			_exit(1);
		get_s(c, "a", buf, 8);
		get_s(c, "zz", buf, 8);
		shmstat_close(&c);
		_exit(0);
	}
	assert_int_equal(tu_wait(pid, 10000), 0);
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.hits, 4);
	assert_int_equal(st.misses, 2);
}

/*
 * A full cache evicts instead of failing, and keeps a hot set.
 *
 * Setup: values of 200 bytes (one size class of 256-byte blocks); the
 * cache holds C of them. The data set is 10 C distinct keys: a hot set of
 * H = C / 2 keys read every round, and a cold stream of C / 8 new keys per
 * round, each missed and then set, until 10 C keys have been written.
 *
 * Why the figure: with CLOCK, every hot key is read (its bit set) once per
 * round, and a turn of the hand over C blocks takes C - H = C / 2
 * evictions = 4 rounds of cold inserts. So the hand always finds a hot
 * key's bit set and passes it, and evicts cold keys (inserted with the bit
 * clear) instead: after the first round every hot read hits. We assert
 * at least 95% hot hits over rounds 2.. (5% slack for the set-associative
 * evictions of a full bucket group, which are not LRU). A cache with
 * random or FIFO eviction would keep a hot key with probability near
 * (C - H) / C per turn and fall well below that; LRU would be 100%.
 */
static void a_full_cache_evicts_and_keeps_the_hot_set(void **state)
{
	shmstat_t *h = H(state);
	/* 190 bytes: every key of the test ("fill:0" to "cold:99999"), its
	 * value and the entry header fall in one size class (240 bytes), so
	 * the first eviction is the memory's limit for all of them. */
	char key[32], val[190], buf[256];
	size_t n;
	shmstat_cache_stats_t st;

	memset(val, 'v', sizeof(val));
	/* Find C: fill with distinct keys until the first eviction. */
	uint32_t C = 0;
	for (;; C++) {
		snprintf(key, sizeof(key), "fill:%u", C);
		assert_int_equal(shmstat_cache_set(h, key, strlen(key), val,
						   sizeof(val), 0, 0),
				 0);
		assert_int_equal(shmstat_cache_stats(h, &st), 0);
		if (st.evictions)
			break;
		assert_true(C < 100000);
	}
	assert_int_equal(shmstat_cache_flush(h, NULL), 0);
	uint32_t H = C / 2, cold = 0, rounds = 0;
	uint64_t hot_reads = 0, hot_hits = 0;
	for (uint32_t i = 0; i < H; i++) {
		snprintf(key, sizeof(key), "hot:%u", i);
		assert_int_equal(shmstat_cache_set(h, key, strlen(key), val,
						   sizeof(val), 0, 0),
				 0);
	}
	while (cold < 10 * C) {
		rounds++;
		for (uint32_t i = 0; i < H; i++) {
			snprintf(key, sizeof(key), "hot:%u", i);
			int rc = shmstat_cache_get(h, key, strlen(key), buf,
						   sizeof(buf), &n);
			if (rounds > 1) {
				hot_reads++;
				hot_hits += rc == 0;
			}
			if (rc == SHMSTAT_ENOTFOUND)
				assert_int_equal(
					shmstat_cache_set(h, key, strlen(key),
							  val, sizeof(val), 0,
							  0),
					0);
		}
		for (uint32_t i = 0; i < C / 8; i++, cold++) {
			snprintf(key, sizeof(key), "cold:%u", cold);
			assert_int_equal(shmstat_cache_get(h, key, strlen(key),
							   buf, sizeof(buf),
							   &n),
					 SHMSTAT_ENOTFOUND);
			assert_int_equal(shmstat_cache_set(h, key, strlen(key),
							   val, sizeof(val), 0,
							   0),
					 0);
		}
	}
	double rate = (double)hot_hits / (double)hot_reads;
	print_message("C=%u entries, %u rounds, hot hit rate %.4f\n", C, rounds,
		      rate);
	assert_true(rate >= 0.95);
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_true(st.evictions >= 9 * C);
	assert_true(st.entries <= C + 1);
}

/* Values of another size class still get memory once one class holds it
 * all: whole pages are emptied and handed over. */
static void a_full_cache_serves_a_new_size_class(void **state)
{
	shmstat_t *h = H(state);
	char key[32], small[40], big[MAXV], buf[MAXV];
	size_t n;

	memset(small, 's', sizeof(small));
	memset(big, 'b', sizeof(big));
	for (uint32_t i = 0; i < 200000; i++) {
		snprintf(key, sizeof(key), "s:%u", i);
		assert_int_equal(shmstat_cache_set(h, key, strlen(key), small,
						   sizeof(small), 0, 0),
				 0);
	}
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_true(st.evictions > 0);
	for (uint32_t i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "b:%u", i);
		assert_int_equal(shmstat_cache_set(h, key, strlen(key), big,
						   sizeof(big), 0, 0),
				 0);
		assert_int_equal(shmstat_cache_get(h, key, strlen(key), buf,
						   sizeof(buf), &n),
				 0);
		assert_int_equal(n, sizeof(big));
		assert_memory_equal(buf, big, sizeof(big));
	}
}

static void fetch_leases_a_miss_to_one_caller(void **state)
{
	shmstat_t *h = H(state);
	char buf[16];
	size_t n;
	int out;

	shmstat__cache_set_clock(100000);
	assert_int_equal(shmstat_cache_fetch(h, "q", 1, buf, sizeof(buf), &n,
					     1000, 0, &out),
			 0);
	assert_int_equal(out, SHMSTAT_CACHE_LEASED);
	/* Another process misses too: the lease is held, it gives up. */
	pid_t pid = fork();
	if (pid == 0) {
		int o = -1;
		int rc = shmstat_cache_fetch(h, "q", 1, buf, sizeof(buf), &n,
					     1000, 0, &o);
		_exit(rc == SHMSTAT_ELEASE ? 0 : 1);
	}
	assert_int_equal(tu_wait(pid, 10000), 0);
	assert_int_equal(shmstat_cache_set(h, "q", 1, "ans", 3, 50, 0), 0);
	assert_int_equal(shmstat_cache_fetch(h, "q", 1, buf, sizeof(buf), &n,
					     1000, 0, &out),
			 0);
	assert_int_equal(out, SHMSTAT_CACHE_HIT);
	assert_memory_equal(buf, "ans", 3);
	/* Expired: one caller recomputes, the others get the stale value. */
	shmstat__cache_set_clock(100050);
	assert_int_equal(shmstat_cache_fetch(h, "q", 1, buf, sizeof(buf), &n,
					     1000, 0, &out),
			 0);
	assert_int_equal(out, SHMSTAT_CACHE_LEASED);
	pid = fork();
	if (pid == 0) {
		int o = -1;
		char b[16];
		int rc = shmstat_cache_fetch(h, "q", 1, b, sizeof(b), &n, 1000,
					     0, &o);
		_exit(rc == 0 && o == SHMSTAT_CACHE_STALE && n == 3 &&
				      memcmp(b, "ans", 3) == 0
			      ? 0
			      : 1);
	}
	assert_int_equal(tu_wait(pid, 10000), 0);
	/* Given up: the next caller gets the lease. */
	assert_int_equal(shmstat_cache_lease_release(h, "q", 1), 0);
	assert_int_equal(shmstat_cache_lease_release(h, "q", 1),
			 SHMSTAT_ENOTFOUND);
	pid = fork();
	if (pid == 0) {
		int o = -1;
		int rc = shmstat_cache_fetch(h, "q", 1, buf, sizeof(buf), &n,
					     1000, 0, &o);
		_exit(rc == 0 && o == SHMSTAT_CACHE_LEASED ? 0 : 1);
	}
	assert_int_equal(tu_wait(pid, 10000), 0);
	/* That child died holding it: the lease is free again at once, not
	 * only after its 1000 ms. */
	assert_int_equal(shmstat_cache_fetch(h, "q", 1, buf, sizeof(buf), &n,
					     1000, 0, &out),
			 0);
	assert_int_equal(out, SHMSTAT_CACHE_LEASED);
	/* A lease that ran out is free too, holder alive or not. */
	shmstat__cache_set_clock(101100);
	pid = fork();
	if (pid == 0) {
		int o = -1;
		int rc = shmstat_cache_fetch(h, "q", 1, buf, sizeof(buf), &n,
					     1000, 0, &o);
		_exit(rc == 0 && o == SHMSTAT_CACHE_LEASED ? 0 : 1);
	}
	assert_int_equal(tu_wait(pid, 10000), 0);
}

static void a_corrupt_cache_header_is_refused_at_attach(void **state)
{
	struct tu_seg *s = *state;
	size_t size;
	unsigned char *base = shmstat__base(s->h, &size);
	uint64_t off = s->h->hdr->region[REG_CACHE].off;
	shmstat_t *h2 = NULL;

	/* nbuckets (offset 40) no longer a power of two. */
	uint32_t saved;
	memcpy(&saved, base + off + 40, 4);
	uint32_t bad = saved + 1;
	memcpy(base + off + 40, &bad, 4);
	assert_int_equal(shmstat_open(s->name, NULL, &h2), SHMSTAT_ECORRUPT);
	assert_non_null(strstr(shmstat_errstr(NULL), "cache"));
	/* The handle already open never reads the header again: it goes on
	 * with the geometry it checked at attach. */
	assert_int_equal(shmstat_cache_set(s->h, "k", 1, "v", 1, 0, 0), 0);
	assert_int_equal(shmstat_cache_exists(s->h, "k", 1), 1);
	memcpy(base + off + 40, &saved, 4);
	assert_int_equal(shmstat_open(s->name, NULL, &h2), 0);
	shmstat_close(&h2);
}

static void the_minimum_size_holds_one_largest_value(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_counters = 8, .max_workers = 2,
				.cache_max_value = 100000 };
	/* Find the smallest segment that opens, then use the value. */
	o.size = 4096 + 8 * 64 + 2 * 128 + 4096 + 4096 + 8 * 320 +
		 shmstat__cache_min_size(100000) + 16384;
	tu_seg_create(&s, "min", &o);
	char *v = malloc(100000), *b = malloc(100000);
	size_t n;
	memset(v, 'x', 100000);
	assert_int_equal(shmstat_cache_set(s.h, "k", 1, v, 100000, 0, 0), 0);
	assert_int_equal(shmstat_cache_set(s.h, "k2", 2, v, 100000, 0, 0), 0);
	assert_int_equal(shmstat_cache_get(s.h, "k2", 2, b, 100000, &n), 0);
	assert_memory_equal(b, v, 100000);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
	free(v);
	free(b);
}


/* ------------------------------------------------ reviewed defects */

/* The offset of the block in the first used slot of the table. */
static uint64_t first_block(shmstat_t *h)
{
	unsigned char *c = h->cache;
	uint32_t nb;
	uint64_t boff;

	memcpy(&nb, c + 40, 4);
	memcpy(&boff, c + 72, 8);
	for (uint32_t b = 0; b < nb; b++)
		for (int k = 0; k < 7; k++) {
			uint64_t sl;
			memcpy(&sl, c + boff + (uint64_t)b * 64 + 8 + k * 8, 8);
			if (sl)
				return sl & ((UINT64_C(1) << 40) - 1);
		}
	return 0;
}

/*
 * An entry whose value length is corrupt (above the segment's maximum) is
 * the same to every path: a get, a fetch (with or without a wait) and a
 * ttl give SHMSTAT_ECORRUPT at once; a set replaces it; a flush leaves
 * nothing behind.
 */
static void a_corrupt_entry_is_ecorrupt_to_get_and_fetch(void **state)
{
	shmstat_t *h = H(state);
	char buf[64];
	size_t n;
	int out;
	int64_t ttl;

	assert_int_equal(set_s(h, "k", "abc", 0, 0), 0);
	uint64_t off = first_block(h);
	assert_true(off != 0);
	uint32_t bad = 0x7fffffff, good;
	memcpy(&good, h->cache + off + 12, 4); /* val_len */
	assert_int_equal(good, 3);
	memcpy(h->cache + off + 12, &bad, 4);
	/* In a child, so that a fetch that never returns fails the test
	 * instead of hanging it. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = shmstat_cache_fetch(h, "k", 1, buf, sizeof(buf), &n,
					     100, 0, &out);
		int rc2 = shmstat_cache_fetch(h, "k", 1, buf, sizeof(buf), &n,
					      100, 200, &out);
		_exit(rc == SHMSTAT_ECORRUPT && rc2 == SHMSTAT_ECORRUPT ? 0
									 : 1);
	}
	assert_int_equal(tu_wait(pid, 5000), 0);
	assert_int_equal(shmstat_cache_get(h, "k", 1, buf, sizeof(buf), &n),
			 SHMSTAT_ECORRUPT);
	assert_non_null(strstr(shmstat_errstr(h), "corrupt"));
	assert_int_equal(shmstat_cache_ttl(h, "k", 1, &ttl), SHMSTAT_ECORRUPT);
	/* A writer replaces it. */
	assert_int_equal(set_s(h, "k", "fixed", 0, 0), 0);
	assert_int_equal(get_s(h, "k", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "fixed");
	assert_int_equal(shmstat_cache_flush(h, NULL), 0);
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.entries, 0);
}

/*
 * A delete whose free of the block cannot get the size class's lock (its
 * holder is stopped) still removes the key, and the block it could not
 * free is not lost: once the holder goes on, a flush leaves no block in
 * use.
 */
static void a_free_that_misses_the_class_lock_leaks_nothing(void **state)
{
	shmstat_t *h = H(state);
	_Atomic int *flag = tu_shared(sizeof(*flag));
	shmstat_cache_stats_t st;

	shmstat__cache_set_lock_timeout(50);
	assert_int_equal(set_s(h, "k", "abc", 0, 0), 0); /* class 0 */
	uint64_t *m0 = shmstat__cache_lock_word(h, 2, 0);
	assert_non_null(m0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* holds class 0's lock: its word names this pid */
		struct timespec ms = { 0, 1000000 };
		uint64_t free_w = 0;
		while (!__atomic_compare_exchange_n(m0, &free_w,
						    (uint64_t)getpid(), false,
						    __ATOMIC_ACQUIRE,
						    __ATOMIC_RELAXED))
			free_w = 0;
		atomic_store(flag, 1);
		for (int i = 0; i < 10000 && atomic_load(flag) != 2; i++)
			nanosleep(&ms, NULL);
		__atomic_store_n(m0, 0, __ATOMIC_RELEASE);
		_exit(0);
	}
	struct timespec ms = { 0, 1000000 };
	for (int i = 0; i < 10000 && !atomic_load(flag); i++)
		nanosleep(&ms, NULL);
	assert_int_equal(atomic_load(flag), 1);
	assert_int_equal(shmstat_cache_delete(h, "k", 1), 0);
	assert_int_equal(shmstat_cache_exists(h, "k", 1), 0);
	atomic_store(flag, 2);
	assert_int_equal(tu_wait(pid, 10000), 0);
	shmstat__cache_set_lock_timeout(0);
	assert_int_equal(shmstat_cache_flush(h, NULL), 0);
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes_used, 0);
	tu_shared_free(flag, sizeof(*flag));
}

#define THREAD_GETS 200000

static void *hammer_gets(void *arg)
{
	shmstat_t *h = arg;
	char buf[8];
	size_t n;

	for (int i = 0; i < THREAD_GETS; i++)
		if (shmstat_cache_get(h, "k", 1, buf, sizeof(buf), &n) != 0)
			return arg;
	return NULL;
}

/* shmstat.h: a shmstat_t may be shared by threads for the cache. Three
 * threads getting through one handle at once: every hit is counted, and
 * the process holds one row. */
static void threads_sharing_a_handle_lose_no_statistics(void **state)
{
	shmstat_t *h = H(state);
	pthread_t t[2];
	void *r[2];
	shmstat_cache_stats_t st;

	assert_int_equal(set_s(h, "k", "v", 0, 0), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer_gets, h), 0);
	assert_null(hammer_gets(h));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], &r[i]), 0);
		assert_null(r[i]);
	}
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.hits, 3 * THREAD_GETS);
	assert_int_equal(st.sets, 1);
	shmstat_info_t in;
	assert_int_equal(shmstat_info(h, &in), 0);
	assert_int_equal(in.workers_live, 1);
}

/* A TTL above SHMSTAT_CACHE_TTL_MAX is that maximum: ttl reports it,
 * never a negative number (-1 means "no TTL"). */
static void a_huge_ttl_is_clamped_and_never_negative(void **state)
{
	shmstat_t *h = H(state);
	int64_t ttl;

	shmstat__cache_set_clock(1000);
	assert_int_equal(set_s(h, "a", "v", UINT64_MAX, 0), 0);
	assert_int_equal(shmstat_cache_ttl(h, "a", 1, &ttl), 0);
	assert_true(ttl == (int64_t)SHMSTAT_CACHE_TTL_MAX);
	assert_int_equal(set_s(h, "b", "v", (uint64_t)INT64_MAX + 5, 0), 0);
	assert_int_equal(shmstat_cache_ttl(h, "b", 1, &ttl), 0);
	assert_true(ttl == (int64_t)SHMSTAT_CACHE_TTL_MAX);
	assert_int_equal(set_s(h, "c", "v", SHMSTAT_CACHE_TTL_MAX, 0), 0);
	assert_int_equal(shmstat_cache_ttl(h, "c", 1, &ttl), 0);
	assert_true(ttl == (int64_t)SHMSTAT_CACHE_TTL_MAX);
	assert_int_equal(shmstat_cache_expire(h, "c", 1, UINT64_MAX), 0);
	shmstat__cache_set_clock(2000);
	assert_int_equal(shmstat_cache_ttl(h, "c", 1, &ttl), 0);
	assert_true(ttl == (int64_t)SHMSTAT_CACHE_TTL_MAX - 1000);
	assert_int_equal(shmstat_cache_exists(h, "a", 1), 1);
}

/*
 * A handle that found no free row counts into process-local statistics:
 * they show in the stats of its own segment, and in no other segment's.
 */
/* A handle that found no free row counts its cache statistics into the
 * segment's overflow row, as its counters: they are its segment's only,
 * seen by every process, and stay after it closes. (Before: a
 * process-local record, lost when the process exited.) */
static void fallback_statistics_stay_with_their_segment(void **state)
{
	(void)state;
	struct tu_seg a, b;
	shmstat_options_t o = { .size = 2u << 20, .max_counters = 8,
				.max_workers = 1, .cache_max_value = MAXV };
	shmstat_t *a2 = NULL;
	shmstat_cache_stats_t st;
	char buf[16];

	tu_seg_create(&a, "fba", &o);
	tu_seg_create(&b, "fbb", &o);
	assert_int_equal(set_s(a.h, "k", "v", 0, 0), 0); /* a.h: the row */
	assert_int_equal(shmstat_open(a.name, NULL, &a2), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(get_s(a2, "k", buf, sizeof(buf)), 0);
	assert_true(a2->slot < 0); /* it did count in the fallback */
	assert_int_equal(shmstat_cache_stats(b.h, &st), 0);
	assert_int_equal(st.hits, 0);
	assert_int_equal(shmstat_cache_stats(a2, &st), 0);
	assert_int_equal(st.hits, 5);
	assert_int_equal(st.sets, 1);
	shmstat_close(&a2);
	/* Another process, after the handle closed, sees them. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmstat_t *c = NULL;
		shmstat_cache_stats_t cs;
		int ok = shmstat_open(a.name, NULL, &c) == 0 &&
			 shmstat_cache_stats(c, &cs) == 0 && cs.hits == 5 &&
			 cs.sets == 1;
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(tu_wait(pid, 10000), 0);
	shmstat_close(&a.h);
	shmstat_unlink(a.name);
	shmstat_close(&b.h);
	shmstat_unlink(b.name);
}

/* shmstat cache: every subcommand, its output and exit status. */
static void the_cache_command_does_what_its_help_says(void **state)
{
	struct tu_seg *s = *state;
	const char *n = s->name;
	char out[4096];

	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "set",
				 "llm:q1", "an answer", "--px", "60000", NULL),
			 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "get",
				 "llm:q1", NULL),
			 0);
	assert_string_equal(out, "an answer\n");
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "get",
				 "nope", NULL),
			 1);
	assert_string_equal(out, "");
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "set",
				 "llm:q1", "x", "--nx", NULL),
			 1);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "set",
				 "llm:q2", "y", "--xx", NULL),
			 1);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "set",
				 "--", "-k", "-v", NULL),
			 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "ttl",
				 "llm:q1", NULL),
			 0);
	assert_true(atoi(out) > 50000 && atoi(out) <= 60000);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "ttl",
				 "--", "-k", NULL),
			 0);
	assert_string_equal(out, "-1\n");
	/* --ex SECONDS, --px MS, and expire with them. */
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "set",
				 "ex", "1", "--ex", "90", NULL),
			 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "ttl",
				 "ex", NULL),
			 0);
	assert_true(atoi(out) > 80000 && atoi(out) <= 90000);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "expire",
				 "ex", "--px", "5000", NULL),
			 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "ttl",
				 "ex", NULL),
			 0);
	assert_true(atoi(out) > 4000 && atoi(out) <= 5000);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "expire",
				 "ex", "--ttl=0", NULL), /* 0: never */
			 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "ttl",
				 "ex", NULL),
			 0);
	assert_string_equal(out, "-1\n");
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "expire",
				 "nope", "--ex", "1", NULL),
			 1);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "expire",
				 "ex", NULL),
			 64); /* a usage error: no TTL */
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "set",
				 "ex", "v", "--ex", "1", "--px", "2", NULL),
			 64);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "del",
				 "ex", NULL),
			 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "keys",
				 "llm:*", NULL),
			 0);
	assert_string_equal(out, "llm:q1\n");
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "stats",
				 "-j", NULL),
			 0);
	assert_non_null(strstr(out, "\"hits\": 1,"));
	assert_non_null(strstr(out, "\"misses\": 1,"));
	assert_non_null(strstr(out, "\"entries\": 2,"));
	assert_non_null(strstr(out, "\"hit_rate\": 0.5000"));
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "stats",
				 NULL),
			 0);
	assert_non_null(strstr(out, "hit_rate:     0.5000"));
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "clear",
				 "llm:*", NULL),
			 0);
	assert_string_equal(out, "1\n");
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "del",
				 "--", "-k", NULL),
			 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "del",
				 "--", "-k", NULL),
			 1);
	assert_int_equal(set_s(s->h, "z", "1", 0, 0), 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "flush",
				 NULL),
			 0);
	assert_string_equal(out, "1\n");
	const char *subs[] = { "get", "set", "expire", "del", "ttl", "keys",
			       "clear", "flush", "stats" };
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache",
					 subs[i], "--help", NULL),
				 0);
		assert_non_null(strstr(out, "usage: shmstat [-n NAME] cache"));
	}
	/* Usage errors: 64 (tools/exitcodes.h). */
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "get",
				 NULL),
			 64);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "bogus",
				 NULL),
			 64);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", n, "cache", "set",
				 "k", "v", "--ttl", "soon", NULL),
			 64);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", "no-such-seg-x",
				 "cache", "get", "k", NULL),
			 2);
}

/* Threads of one process missing one key at once: one computes. */
#define LEASE_THREADS 8

struct lease_race {
	shmstat_t *h;
	pthread_barrier_t go;
	_Atomic int leased, refused, other;
};

static void *fetch_once(void *arg)
{
	struct lease_race *lr = arg;
	char buf[16];
	size_t n;
	int out = -1;

	pthread_barrier_wait(&lr->go);
	int rc = shmstat_cache_fetch(lr->h, "tl", 2, buf, sizeof(buf), &n,
				     10000, 0, &out);
	if (rc == 0 && out == SHMSTAT_CACHE_LEASED)
		atomic_fetch_add(&lr->leased, 1);
	else if (rc == SHMSTAT_ELEASE)
		atomic_fetch_add(&lr->refused, 1);
	else
		atomic_fetch_add(&lr->other, 1);
	/* Stay alive until all have asked: a lease whose thread is gone is
	 * free again. */
	pthread_barrier_wait(&lr->go);
	return NULL;
}

static void threads_of_one_process_lease_a_miss_once(void **state)
{
	struct lease_race lr = { .h = H(state) };
	pthread_t t[LEASE_THREADS];

	pthread_barrier_init(&lr.go, NULL, LEASE_THREADS);
	for (int i = 0; i < LEASE_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, fetch_once, &lr), 0);
	for (int i = 0; i < LEASE_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&lr.go);
	assert_int_equal(atomic_load(&lr.leased), 1);
	assert_int_equal(atomic_load(&lr.refused), LEASE_THREADS - 1);
	assert_int_equal(atomic_load(&lr.other), 0);
	/* The holder is a thread that is gone now: the lease is free. */
	int out = -1;
	char buf[16];
	size_t n;
	assert_int_equal(shmstat_cache_fetch(H(state), "tl", 2, buf,
					     sizeof(buf), &n, 10000, 0, &out),
			 0);
	assert_int_equal(out, SHMSTAT_CACHE_LEASED);
	assert_int_equal(shmstat_cache_lease_release(H(state), "tl", 2), 0);
}

struct stale_fetch {
	shmstat_t *h;
	int rc, out;
	char buf[16];
};

static void *fetch_stale(void *arg)
{
	struct stale_fetch *f = arg;
	size_t n;

	f->rc = shmstat_cache_fetch(f->h, "sk", 2, f->buf, sizeof(f->buf), &n,
				    10000, 0, &f->out);
	return NULL;
}

static void hits_and_misses(shmstat_t *h, uint64_t hits, uint64_t misses)
{
	shmstat_cache_stats_t st;

	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.hits, hits);
	assert_int_equal(st.misses, misses);
}

/*
 * Keys that share a home bucket beyond its 7 ways live in the other
 * buckets of its group: each is found, once counted, and a key absent
 * from that overflowed home is a miss, once counted, as is one absent
 * from a home that never overflowed. (A hit of the home bucket and a
 * miss of a home that never overflowed are served without the group
 * walk: this holds both ways to the same answers.)
 */
static void keys_past_their_homes_ways_are_found_and_misses_counted_once(
	void **state)
{
	shmstat_t *h = H(state);
	uint32_t bmask = h->cache_geo.bmask, home = UINT32_MAX;
	char keys[13][16], buf[16];
	int n = 0;

	/* 13 keys of one home: 12 stored (5 past its 7 ways), 1 absent. */
	for (int i = 0; n < 13 && i < 1000000; i++) {
		char k[16];
		snprintf(k, sizeof(k), "o%d", i);
		uint32_t b = (uint32_t)shmstat__hash(k, strlen(k)) & bmask;
		if (home == UINT32_MAX)
			home = b;
		if (b == home)
			memcpy(keys[n++], k, sizeof(k));
	}
	assert_int_equal(n, 13);
	for (int i = 0; i < 12; i++)
		assert_int_equal(set_s(h, keys[i], keys[i], 0, 0), 0);
	for (int i = 0; i < 12; i++) {
		memset(buf, 0, sizeof(buf));
		assert_int_equal(get_s(h, keys[i], buf, sizeof(buf)), 0);
		assert_string_equal(buf, keys[i]);
	}
	hits_and_misses(h, 12, 0);
	assert_int_equal(get_s(h, keys[12], buf, sizeof(buf)),
			 SHMSTAT_ENOTFOUND);
	hits_and_misses(h, 12, 1);
	/* A key of another group of 4 buckets, which holds nothing. */
	bool asked = false;
	for (int i = 0; i < 1000 && !asked; i++) {
		char k[16];
		snprintf(k, sizeof(k), "p%d", i);
		uint32_t b = (uint32_t)shmstat__hash(k, strlen(k)) & bmask;
		if ((b & ~3u) == (home & ~3u))
			continue;
		assert_int_equal(get_s(h, k, buf, sizeof(buf)),
				 SHMSTAT_ENOTFOUND);
		asked = true;
	}
	assert_true(asked);
	hits_and_misses(h, 12, 2);
	/* A buffer too small: nothing counted. */
	assert_int_equal(get_s(h, keys[0], buf, 2), SHMSTAT_ERANGE);
	hits_and_misses(h, 12, 2);
}

/*
 * The common calls take the hit's own path (get_hit), and the others the
 * whole way: a hit of the home bucket, a hit of an entry whose TTL has
 * not passed, a miss of a home that never overflowed; then a buffer too
 * small and an expired entry, which must go the whole way. (A get_hit that
 * always fell back would give the same answers, only slower.)
 */
static uint64_t full_gets;
static void count_full_gets(int stage)
{
	full_gets += stage == CACHE_HOOK_GET_FULL;
}

static void the_common_gets_take_the_hits_own_path(void **state)
{
	shmstat_t *h = H(state);
	char buf[16];

	shmstat__cache_set_clock(1000);
	assert_int_equal(set_s(h, "k", "v1", 0, 0), 0);
	assert_int_equal(set_s(h, "t", "v2", 100, 0), 0);
	full_gets = 0;
	shmstat__cache_hook = count_full_gets;
	uint64_t n0 = full_gets;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(get_s(h, "k", buf, sizeof(buf)), 0);
		assert_int_equal(get_s(h, "t", buf, sizeof(buf)), 0);
	}
	assert_int_equal(get_s(h, "absent", buf, sizeof(buf)),
			 SHMSTAT_ENOTFOUND);
	assert_int_equal(full_gets - n0, 0);
	assert_int_equal(get_s(h, "k", buf, 2), SHMSTAT_ERANGE);
	assert_int_equal(full_gets - n0, 1);
	shmstat__cache_set_clock(2000); /* t expired */
	assert_int_equal(get_s(h, "t", buf, sizeof(buf)), SHMSTAT_ENOTFOUND);
	assert_int_equal(full_gets - n0, 2);
	shmstat__cache_hook = NULL;
	hits_and_misses(h, 200, 2);
}

/*
 * A hit is a value returned, once per call: a get whose buffer is too
 * small counts nothing (its retry counts the hit), and a fetch counts one
 * miss when its caller is to compute and one hit when it returns a value,
 * the expired one included. (Before: ERANGE counted a hit, so a tool or
 * Python get of a large value counted two; a fetch that waited counted a
 * miss and then a hit.)
 */
static void a_call_counts_one_hit_or_one_miss(void **state)
{
	shmstat_t *h = H(state);
	char buf[16];
	size_t n;
	int out = -1;

	shmstat__cache_set_clock(1000);
	assert_int_equal(set_s(h, "sk", "old", 100, 0), 0);
	assert_int_equal(shmstat_cache_get(h, "sk", 2, buf, 1, &n),
			 SHMSTAT_ERANGE);
	hits_and_misses(h, 0, 0);
	assert_int_equal(shmstat_cache_get(h, "sk", 2, buf, sizeof(buf), &n), 0);
	hits_and_misses(h, 1, 0);
	shmstat__cache_set_clock(2000); /* expired */
	assert_int_equal(shmstat_cache_fetch(h, "sk", 2, buf, sizeof(buf), &n,
					     10000, 0, &out),
			 0);
	assert_int_equal(out, SHMSTAT_CACHE_LEASED);
	hits_and_misses(h, 1, 1);
	/* Another thread, while this one computes: the expired value. */
	struct stale_fetch f = { .h = h, .out = -1 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, fetch_stale, &f), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(f.rc, 0);
	assert_int_equal(f.out, SHMSTAT_CACHE_STALE);
	assert_memory_equal(f.buf, "old", 3);
	hits_and_misses(h, 2, 1);
	/* Again: the expired value again, another hit. */
	f.out = -1;
	assert_int_equal(pthread_create(&t, NULL, fetch_stale, &f), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(f.rc, 0);
	assert_int_equal(f.out, SHMSTAT_CACHE_STALE);
	hits_and_misses(h, 3, 1);
	assert_int_equal(set_s(h, "sk", "new", 0, 0), 0);
	assert_int_equal(shmstat_cache_fetch(h, "sk", 2, buf, sizeof(buf), &n,
					     10000, 0, &out),
			 0);
	assert_int_equal(out, SHMSTAT_CACHE_HIT);
	hits_and_misses(h, 4, 1);
	shmstat__cache_set_clock(0);
}

static int count_key(const void *key, size_t klen, void *priv)
{
	(void)key;
	(void)klen;
	(*(int *)priv)++;
	return 0;
}

/*
 * A read-only handle reads the cache (the header's promise): get, exists,
 * ttl and iter work, and write nothing (its mapping has no write access,
 * so a write would fault): no hit counted, an expired entry left in
 * place. Writes and fetch say ERDONLY. (Before: every cache read but
 * stats returned ERDONLY.)
 */
static void a_read_only_handle_reads_the_cache(void **state)
{
	struct tu_seg *s = *state;
	shmstat_options_t ro = { .flags = SHMSTAT_O_RDONLY };
	shmstat_t *r = NULL;
	shmstat_cache_stats_t st;
	char buf[16];
	size_t n;
	int64_t ttl;
	int out, keys = 0;

	shmstat__cache_set_clock(1000);
	assert_int_equal(set_s(s->h, "a", "value", 0, 0), 0);
	assert_int_equal(set_s(s->h, "t", "gone", 100, 0), 0);
	shmstat__cache_set_clock(2000); /* t expired */
	assert_int_equal(shmstat_open(s->name, &ro, &r), 0);
	assert_int_equal(shmstat_cache_get(r, "a", 1, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "value", 5);
	assert_int_equal(shmstat_cache_get(r, "a", 1, buf, 2, &n),
			 SHMSTAT_ERANGE);
	assert_int_equal(shmstat_cache_exists(r, "a", 1), 1);
	assert_int_equal(shmstat_cache_ttl(r, "a", 1, &ttl), 0);
	assert_true(ttl == -1);
	assert_int_equal(shmstat_cache_get(r, "t", 1, buf, sizeof(buf), &n),
			 SHMSTAT_ENOTFOUND);
	assert_int_equal(shmstat_cache_get(r, "x", 1, buf, sizeof(buf), &n),
			 SHMSTAT_ENOTFOUND);
	assert_int_equal(shmstat_cache_iter(r, "*", count_key, &keys), 0);
	assert_int_equal(keys, 1);
	assert_int_equal(shmstat_cache_set(r, "b", 1, "v", 1, 0, 0),
			 SHMSTAT_ERDONLY);
	assert_int_equal(shmstat_cache_fetch(r, "b", 1, buf, sizeof(buf), &n,
					     0, 0, &out),
			 SHMSTAT_ERDONLY);
	assert_int_equal(shmstat_cache_stats(r, &st), 0);
	assert_int_equal(st.hits, 0);
	assert_int_equal(st.misses, 0);
	assert_int_equal(st.entries, 2); /* t is still there */
	shmstat_close(&r);
	shmstat__cache_set_clock(0);
}

/*
 * The geometry is read once, at attach: a process that keeps rewriting
 * the header's page count (to 0, to huge, back) while another uses the
 * cache cannot make it read out of the region. (Before: the header was
 * checked, then read again, and stats crashed.) In a child, so that a
 * crash is a failed assertion rather than a dead test run.
 */
struct flipper {
	unsigned char *at;
	_Atomic int stop;
};

static void *flip_npages(void *arg)
{
	struct flipper *f = arg;
	uint32_t orig, v[3] = { 0, 0x7fffffffu, 0 };

	memcpy(&orig, f->at, 4);
	v[2] = orig;
	for (uint32_t i = 0; i < 50000000u && !atomic_load(&f->stop); i++)
		__atomic_store_n((uint32_t *)(void *)f->at, v[i % 3],
				 __ATOMIC_RELAXED);
	__atomic_store_n((uint32_t *)(void *)f->at, orig, __ATOMIC_RELAXED);
	return NULL;
}

static void a_header_rewritten_after_attach_is_never_trusted(void **state)
{
	shmstat_t *h = H(state);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct flipper f = { h->cache + 52, 0 }; /* npages */
		pthread_t t;
		shmstat_cache_stats_t st;
		shmstat_info_t in;
		char key[16], buf[64];
		size_t n;
		int bad = 0;
		if (pthread_create(&t, NULL, flip_npages, &f))
			_exit(2);
		for (int i = 0; i < 3000; i++) {
			int kl = snprintf(key, sizeof(key), "hr%d", i % 300);
			bad += shmstat_cache_set(h, key, (size_t)kl, "v", 1, 0,
						 0) != 0;
			bad += shmstat_cache_get(h, key, (size_t)kl, buf,
						 sizeof(buf), &n) != 0;
			if (i % 10 == 0) {
				bad += shmstat_cache_stats(h, &st) != 0;
				bad += shmstat_info(h, &in) != 0;
			}
		}
		atomic_store(&f.stop, 1);
		pthread_join(t, NULL);
		_exit(bad ? 1 : 0);
	}
	assert_int_equal(tu_wait(pid, 60000), 0);
}

/*
 * A large maximum value does not make every page that large: in a 32 MiB
 * segment with 16 MiB values, a thousand small entries and a 1000-byte
 * one all stay (before: one page, and the 1000-byte set evicted the
 * thousand), a 16 MiB value fits too, and the statistics count entries.
 * Impossible sizes are refused with numbers that make sense.
 */
static void a_large_max_value_leaves_the_memory_usable(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .size = 32u << 20, .max_counters = 16,
				.max_workers = 4, .cache_max_value = 16u << 20 };
	shmstat_cache_stats_t st;
	char key[16];

	tu_seg_create(&s, "large", &o);
	for (int i = 0; i < 1000; i++) {
		int kl = snprintf(key, sizeof(key), "sm%d", i);
		assert_int_equal(shmstat_cache_set(s.h, key, (size_t)kl, "v", 1,
						   0, 0),
				 0);
	}
	char *mid = calloc(1, 1000);
	assert_int_equal(shmstat_cache_set(s.h, "mid", 3, mid, 1000, 0, 0), 0);
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.entries, 1001);
	size_t big_n = 16u << 20, n;
	unsigned char *big = malloc(big_n), *back = malloc(big_n);
	for (size_t i = 0; i < big_n; i++)
		big[i] = (unsigned char)(i * 31 + 7);
	assert_int_equal(shmstat_cache_set(s.h, "big", 3, big, big_n, 0, 0), 0);
	assert_int_equal(shmstat_cache_get(s.h, "big", 3, back, big_n, &n), 0);
	assert_int_equal(n, big_n);
	assert_memory_equal(back, big, big_n);
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.entries, 1002);
	assert_true(st.bytes_used >= big_n);
	/* A second one replaces the first (one fits), then goes itself. */
	big[0] ^= 1;
	assert_int_equal(shmstat_cache_set(s.h, "big", 3, big, big_n, 0, 0), 0);
	assert_int_equal(shmstat_cache_get(s.h, "big", 3, back, big_n, &n), 0);
	assert_memory_equal(back, big, big_n);
	assert_int_equal(shmstat_cache_delete(s.h, "big", 3), 0);
	assert_int_equal(shmstat_cache_flush(s.h, NULL), 0);
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes_used, 0);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);

	/* Impossible sizes: said plainly. */
	shmstat_t *h = NULL;
	char name[64];
	snprintf(name, sizeof(name), "t%d-imp", (int)getpid());
	shmstat_options_t bad = { .flags = SHMSTAT_O_CREATE, .size = 32u << 20,
				  .cache_max_value = (size_t)3 << 30 };
	assert_int_equal(shmstat_open(name, &bad, &h), SHMSTAT_EINVAL);
	assert_non_null(strstr(shmstat_errstr(NULL), "above the limit"));
	bad.cache_max_value = (size_t)1 << 30;
	assert_int_equal(shmstat_open(name, &bad, &h), SHMSTAT_EINVAL);
	const char *e = strstr(shmstat_errstr(NULL), "need at least ");
	assert_non_null(e);
	unsigned long long need = strtoull(e + 14, NULL, 10);
	assert_true(need > (1ull << 30) && need < (3ull << 30));
	free(mid);
	free(big);
	free(back);
}

/* A lease holder killed and not yet reaped holds nothing: the next
 * caller gets the lease at once. */
static void a_lease_of_a_killed_unreaped_process_is_free(void **state)
{
	shmstat_t *h = H(state);
	char buf[16];
	size_t n;
	int out = -1;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int o = -1;
		int rc = shmstat_cache_fetch(h, "zl", 2, buf, sizeof(buf), &n,
					     60000, 0, &o);
		_exit(rc == 0 && o == SHMSTAT_CACHE_LEASED ? 0 : 1);
	}
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(si.si_status, 0);
	assert_int_equal(shmstat_cache_fetch(h, "zl", 2, buf, sizeof(buf), &n,
					     60000, 0, &out),
			 0);
	assert_int_equal(out, SHMSTAT_CACHE_LEASED);
	assert_int_equal(tu_wait(pid, 10000), 0);
}

/* The one glob of the tree (util.c) gives fnmatch(3)'s answer on text,
 * without flags, on the patterns counter names and cache keys use. */
static void the_glob_agrees_with_fnmatch_on_text(void **state)
{
	(void)state;
	static const char *const pats[] = {
		"*", "a*", "*b", "a?c", "[abc]x", "[!a]x", "[^a]x", "[a-c]*",
		"\\*", "\\a", "x[[:digit:]]y", "*[[:alpha:]]", "[]]", "[]a]*",
		"[!]]", "a[", "[a", "*a*b*c", "**", "?*?", "llm:*", "a\\",
		"[a-]", "[-a]z", "[[:upper:][:digit:]]",
	};
	static const char *const strs[] = {
		"", "a", "b", "ab", "abc", "ax", "bx", "cx", "*", "x5y", "xay",
		"]", "]q", "[", "a[", "[a", "aXbYc", "abcabc", "z", "-z", "A",
		"5", "a\\", "llm:", "llm:q", "-",
	};
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
		for (size_t j = 0; j < sizeof(strs) / sizeof(strs[0]); j++) {
			bool f = fnmatch(pats[i], strs[j], 0) == 0;
			bool g = shmstat__glob(pats[i], strs[j], strlen(strs[j]));
			if (f != g)
				print_message("'%s' on '%s': fnmatch %d, glob %d\n",
					      pats[i], strs[j], f, g);
			assert_true(f == g);
		}
	/* Bytes past a NUL count, and no length limit applies. */
	assert_true(shmstat__glob("a*z", "a\0b\0z", 5));
	assert_false(shmstat__glob("a", "a\0", 2));
	char longk[600];
	memset(longk, 'k', sizeof(longk));
	longk[599] = 'z';
	assert_true(shmstat__glob("k*z", longk, sizeof(longk)));
}

/* A value length above the segment's maximum, though inside the data
 * area and the caller's buffer, is impossible: ECORRUPT, as the header
 * says, never a hit of those bytes. */
static void a_value_length_above_the_maximum_is_ecorrupt_to_any_buffer(
	void **state)
{
	shmstat_t *h = H(state);
	static char big[8192];
	size_t n = 0;
	shmstat_cache_stats_t st;

	assert_int_equal(set_s(h, "k", "abc", 0, 0), 0);
	uint64_t off = first_block(h);
	assert_true(off != 0);
	uint32_t bad = MAXV + 1000; /* > max_value, < the data area */
	memcpy(h->cache + off + 12, &bad, 4);
	assert_int_equal(shmstat_cache_get(h, "k", 1, big, sizeof(big), &n),
			 SHMSTAT_ECORRUPT);
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.hits, 0);
	assert_int_equal(st.errors, 1);
}

/* An entry whose stored hash is not its key's is not that key's entry,
 * to a get as to exists (and the writers). */
static void an_entry_with_another_hash_is_not_the_keys(void **state)
{
	shmstat_t *h = H(state);
	char buf[64];
	size_t n = 0;

	assert_int_equal(set_s(h, "k", "abc", 0, 0), 0);
	uint64_t off = first_block(h);
	assert_true(off != 0);
	h->cache[off + 16] ^= 0x5a; /* the hash's low byte: the tag is its top */
	assert_int_equal(shmstat_cache_get(h, "k", 1, buf, sizeof(buf), &n),
			 SHMSTAT_ENOTFOUND);
	assert_int_equal(shmstat_cache_exists(h, "k", 1), 0);
}

/* A stored key that differs from the asked one only past its 16th byte
 * (same length, hash and tag) is not a hit: a 16..32-byte key's tail is
 * compared too. */
static void a_key_differing_in_its_tail_is_a_miss(void **state)
{
	shmstat_t *h = H(state);
	const char *k = "session:0123456789abcdef"; /* 24 bytes */
	char buf[64];

	assert_int_equal(set_s(h, k, "abc", 0, 0), 0);
	uint64_t off = first_block(h);
	assert_true(off != 0);
	h->cache[off + 32 + 20] ^= 1; /* the stored key's byte 20 */
	assert_int_equal(get_s(h, k, buf, sizeof(buf)), SHMSTAT_ENOTFOUND);
	h->cache[off + 32 + 20] ^= 1;
	assert_int_equal(get_s(h, k, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "abc");
}

/* ------------------------------------------------------------ home blocks */

/* A segment of 4 MiB with pct percent of the cache's memory in home
 * blocks; *nhome says how many it got. */
static void home_seg(struct tu_seg *s, uint32_t pct, uint32_t *nhome)
{
	shmstat_options_t o = { .size = 4u << 20, .max_counters = 16,
				.max_workers = 4, .cache_max_value = MAXV,
				.cache_home_pct = pct };
	shmstat_info_t info;

	tu_seg_create(s, "home", &o);
	assert_int_equal(shmstat_info(s->h, &info), 0);
	*nhome = info.cache_home_blocks;
}

static void drop_seg(struct tu_seg *s)
{
	shmstat_close(&s->h);
	shmstat_unlink(s->name);
}

static void get_eq(shmstat_t *h, const char *k, const char *want)
{
	char buf[MAXV];
	size_t n = 0;

	assert_int_equal(shmstat_cache_get(h, k, strlen(k), buf, sizeof(buf),
					   &n),
			 0);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
}

static void get_miss(shmstat_t *h, const char *k)
{
	char buf[MAXV];
	size_t n;

	assert_int_equal(shmstat_cache_get(h, k, strlen(k), buf, sizeof(buf),
					   &n),
			 SHMSTAT_ENOTFOUND);
}

/*
 * cache_home_pct: a whole number of home blocks per group of four
 * buckets, from at most that share of the value memory; none when the
 * share is too small for one per group; above 90 refused with the limit
 * named.
 */
static void home_blocks_are_laid_out_as_asked(void **state)
{
	(void)state;
	struct tu_seg s;
	uint32_t n50, n90, n5;
	shmstat_cache_stats_t st;

	home_seg(&s, 50, &n50);
	assert_true(n50 > 0 && n50 % (s.h->cache_geo.nbuckets / 4) == 0);
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	/* The memory: home blocks and pages together, the blocks at most
	 * half of it. */
	assert_true((uint64_t)n50 * 128 <= st.bytes_free / 2);
	drop_seg(&s);
	home_seg(&s, 90, &n90);
	assert_true(n90 >= n50);
	drop_seg(&s);
	home_seg(&s, 1, &n5);
	assert_int_equal(n5, 0);
	drop_seg(&s);

	char name[64];
	shmstat_t *h = NULL;
	tu_name(name, sizeof(name), "homebad");
	shmstat_options_t bad = { .flags = SHMSTAT_O_CREATE,
				  .cache_home_pct = 91 };
	assert_int_equal(shmstat_open(name, &bad, &h), SHMSTAT_EINVAL);
	assert_non_null(strstr(shmstat_errstr(NULL), "cache_home_pct 91"));
}

/*
 * Every change of a key reaches a get through its home block at once: an
 * overwrite in place, one of another class (to the slab and back), a
 * delete, an expiry, a clear, a flush; the statistics count the blocks.
 */
static void a_home_entry_follows_every_change(void **state)
{
	(void)state;
	struct tu_seg s;
	uint32_t nh;
	char key[32], val[MAXV];
	shmstat_cache_stats_t st;

	home_seg(&s, 50, &nh);
	assert_true(nh > 0);
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "h:%d", i);
		snprintf(val, sizeof(val), "first %d", i);
		assert_int_equal(shmstat_cache_set(s.h, key, strlen(key), val,
						   strlen(val), 0, 0),
				 0);
	}
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "h:%d", i);
		snprintf(val, sizeof(val), "first %d", i);
		get_eq(s.h, key, val);
	}
	get_eq(s.h, "h:7", "first 7");
	assert_int_equal(shmstat_cache_set(s.h, "h:7", 3, "again 7", 7, 0, 0),
			 0); /* in place */
	get_eq(s.h, "h:7", "again 7");
	memset(val, 'L', 300);
	assert_int_equal(shmstat_cache_set(s.h, "h:7", 3, val, 300, 0, 0), 0);
	char buf[MAXV];
	size_t n = 0;
	assert_int_equal(shmstat_cache_get(s.h, "h:7", 3, buf, sizeof(buf), &n),
			 0);
	assert_int_equal(n, 300);
	assert_int_equal(shmstat_cache_set(s.h, "h:7", 3, "small", 5, 0, 0), 0);
	get_eq(s.h, "h:7", "small");
	assert_int_equal(shmstat_cache_delete(s.h, "h:8", 3), 0);
	get_miss(s.h, "h:8");
	shmstat__cache_set_clock(1000);
	assert_int_equal(shmstat_cache_set(s.h, "h:9", 3, "ttl", 3, 50, 0), 0);
	get_eq(s.h, "h:9", "ttl");
	shmstat__cache_set_clock(1100);
	get_miss(s.h, "h:9");
	shmstat__cache_set_clock(0);
	uint64_t cleared = 0;
	assert_int_equal(shmstat_cache_clear(s.h, "h:1*", &cleared), 0);
	assert_int_equal(cleared, 111); /* h:1, h:10-19, h:100-199 */
	get_miss(s.h, "h:150");
	get_eq(s.h, "h:20", "first 20");
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.entries, 200 - 111 - 2);
	assert_true(st.bytes_used >= st.entries * 64);
	assert_int_equal(shmstat_cache_flush(s.h, NULL), 0);
	get_miss(s.h, "h:20");
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes_used, 0);
	drop_seg(&s);
}

/* Keys whose hashes name one home block: found by trying names. */
static int same_home(const struct cache_geo *g, char keys[][32], int want)
{
	uint64_t h0 = 0;
	int n = 0;

	for (int i = 0; i < 10000000 && n < want; i++) {
		snprintf(keys[n], 32, "c:%d", i);
		uint64_t h = shmstat__hash(keys[n], strlen(keys[n]));
		if (n == 0)
			h0 = h;
		if (shmstat__cache_home_index(g, h) ==
		    shmstat__cache_home_index(g, h0))
			n++;
	}
	return n;
}

/* Is key k the one in its home block? (The block's hash, at byte 16 of
 * the entry header: cache_impl_i.h.) */
static bool at_home(const struct cache_geo *g, const char *k)
{
	uint64_t h = shmstat__hash(k, strlen(k)), at;

	memcpy(&at, g->base + g->home_off + shmstat__cache_home_index(g, h) * 128 +
			    16,
	       8);
	return at == h;
}

/*
 * Keys that share a home: a new entry keeps it through one contest; one
 * not read since is moved to the slab for the next newcomer; one read
 * keeps it (its use bit spent). Every key reads its own value all along.
 */
static void keys_of_one_home_contest_it_and_none_is_lost(void **state)
{
	(void)state;
	struct tu_seg s;
	uint32_t nh;
	char k[5][32];
	shmstat_cache_stats_t st;

	home_seg(&s, 50, &nh);
	assert_true(nh > 0);
	const struct cache_geo *g = &s.h->cache_geo;
	assert_int_equal(same_home(g, k, 5), 5);
	/* k0 home; k1 to the slab (k0 new: its first contest); k2 home (k0,
	 * not read since, moved out); k3 and k4 to the slab (k2 is read
	 * between sets). */
	const int home_of_k[5] = { 0, 0, 2, 2, 2 };
	for (int i = 0; i < 5; i++) {
		assert_int_equal(shmstat_cache_set(s.h, k[i], strlen(k[i]), k[i],
						   strlen(k[i]), 0, 0),
				 0);
		assert_true(at_home(g, k[home_of_k[i]]));
		for (int j = i; j >= 0; j--)
			if (j != 0 || i < 1)
				get_eq(s.h, k[j], k[j]);
	}
	get_eq(s.h, k[0], k[0]);
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.entries, 5);
	assert_int_equal(st.evictions, 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(shmstat_cache_delete(s.h, k[i], strlen(k[i])), 0);
		get_miss(s.h, k[i]);
	}
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.bytes_used, 0);
	drop_seg(&s);
}

/* An expired entry in the home a new key wants is removed (an
 * expiration), not moved to the slab. */
static void an_expired_home_entry_goes_rather_than_moves(void **state)
{
	(void)state;
	struct tu_seg s;
	uint32_t nh;
	char k[3][32];
	shmstat_cache_stats_t st;

	home_seg(&s, 50, &nh);
	const struct cache_geo *g = &s.h->cache_geo;
	assert_int_equal(same_home(g, k, 3), 3);
	shmstat__cache_set_clock(1000);
	assert_int_equal(shmstat_cache_set(s.h, k[0], strlen(k[0]), "a", 1, 50, 0),
			 0);
	assert_int_equal(shmstat_cache_set(s.h, k[1], strlen(k[1]), "b", 1, 0, 0),
			 0); /* k0 keeps its home: its first contest */
	shmstat__cache_set_clock(1100);
	assert_int_equal(shmstat_cache_set(s.h, k[2], strlen(k[2]), "c", 1, 0, 0),
			 0);
	assert_true(at_home(g, k[2]));
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.expirations, 1);
	assert_int_equal(st.entries, 2);
	get_miss(s.h, k[0]);
	get_eq(s.h, k[1], "b");
	get_eq(s.h, k[2], "c");
	shmstat__cache_set_clock(0);
	drop_seg(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_small, teardown)
		T(set_then_get_returns_a_copy_of_the_value),
		T(a_small_buffer_gets_erange_and_the_needed_length),
		T(keys_are_binary_and_nul_bytes_count),
		T(limits_give_clear_errors),
		T(nx_and_xx_respect_presence),
		T(delete_and_exists),
		T(ttl_expiry_and_touch_follow_the_injected_clock),
		T(sweep_removes_expired_entries_in_bounded_steps),
		T(clear_and_iterate_by_glob),
		T(glob_matches_binary_keys),
		T(statistics_count_every_outcome),
		T(keys_past_their_homes_ways_are_found_and_misses_counted_once),
		T(the_common_gets_take_the_hits_own_path),
		T(a_full_cache_evicts_and_keeps_the_hot_set),
		T(a_full_cache_serves_a_new_size_class),
		T(fetch_leases_a_miss_to_one_caller),
		T(a_corrupt_cache_header_is_refused_at_attach),
		T(the_minimum_size_holds_one_largest_value),
		T(the_cache_command_does_what_its_help_says),
		T(a_corrupt_entry_is_ecorrupt_to_get_and_fetch),
		T(a_value_length_above_the_maximum_is_ecorrupt_to_any_buffer),
		T(an_entry_with_another_hash_is_not_the_keys),
		T(a_key_differing_in_its_tail_is_a_miss),
		T(a_free_that_misses_the_class_lock_leaks_nothing),
		T(threads_sharing_a_handle_lose_no_statistics),
		T(a_huge_ttl_is_clamped_and_never_negative),
		T(fallback_statistics_stay_with_their_segment),
		T(threads_of_one_process_lease_a_miss_once),
		T(a_call_counts_one_hit_or_one_miss),
		T(a_read_only_handle_reads_the_cache),
		T(a_header_rewritten_after_attach_is_never_trusted),
		T(a_large_max_value_leaves_the_memory_usable),
		T(a_lease_of_a_killed_unreaped_process_is_free),
		T(the_glob_agrees_with_fnmatch_on_text),
		T(home_blocks_are_laid_out_as_asked),
		T(a_home_entry_follows_every_change),
		T(keys_of_one_home_contest_it_and_none_is_lost),
		T(an_expired_home_entry_goes_rather_than_moves),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
