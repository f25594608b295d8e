/*
 * test_cache_fuzz.c — the cache region is untrusted input. Random bytes of
 * a filled region (its header, buckets, page headers, entries) are
 * overwritten (the lock words too); then a fresh attach must refuse the
 * segment or every cache call must return a defined result (0 or a
 * SHMSTAT_E* code) within the lock bound, without reading or writing
 * outside the segment (run it under -Dsanitize=true).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_i.h"
#include "shmstat_i.h"
#include "testutil.h"

#define MAXV 512u
#define ROUNDS 400

static bool is_code(int rc)
{
	return rc <= 0 && rc >= SHMSTAT_ELEASE;
}

static int count_keys(const void *key, size_t klen, void *priv)
{
	(void)key;
	(void)klen;
	++*(int *)priv;
	return 0;
}

/* Where the locks are: the pool's, each stripe's, each class's (the
 * whole line of each: the owner word, the waiters, the journal words
 * j_new, j_old, j_ovr and the spare word). */
static uint64_t lock_at(const unsigned char *cache, uint32_t n)
{
	uint64_t stripes, classes;
	uint32_t ns, nc;
	memcpy(&ns, cache + 44, 4);
	memcpy(&nc, cache + 48, 4);
	memcpy(&stripes, cache + 56, 8);
	memcpy(&classes, cache + 64, 8);
	n %= 1 + ns + nc;
	if (n == 0)
		return 768;
	if (n <= ns)
		return stripes + (uint64_t)(n - 1) * 128;
	return classes + (uint64_t)(n - 1 - ns) * 128;
}

static void scribble(uint64_t seg_size, size_t maxv, int rounds)
{
	struct tu_seg s;
	shmstat_options_t o = { .size = seg_size, .max_counters = 16,
				.max_workers = 8, .cache_max_value = maxv };
	tu_seg_create(&s, "cfuzz", &o);
	shmstat__cache_set_lock_timeout(5);
	char key[32], *val = malloc(maxv), *buf = malloc(maxv);
	memset(val, 'v', maxv);
	for (int i = 0; i < 600; i++) {
		int kl = snprintf(key, sizeof(key), "fz:%d", i);
		assert_int_equal(shmstat_cache_set(s.h, key, (size_t)kl, val,
						   (size_t)(i * 13) % maxv,
						   i % 3 ? 0 : 100000, 0),
				 0);
	}
	size_t size;
	unsigned char *base = shmstat__base(s.h, &size);
	uint64_t coff = s.h->hdr->region[REG_CACHE].off;
	uint64_t csz = s.h->hdr->region[REG_CACHE].size;
	unsigned char *cache = base + coff;
	unsigned char *snap = malloc(csz);
	memcpy(snap, cache, csz);
	uint64_t data_off;
	memcpy(&data_off, cache + 88, 8);
	uint32_t seed = 4242;
	int refused = 0, used = 0;

	for (int r = 0; r < rounds; r++) {
		memcpy(cache, snap, csz);
		int flips = 1 + r % 16;
		for (int f = 0; f < flips; f++) {
			seed = seed * 1664525u + 1013904223u;
			/* Mostly the tables (header, buckets, page headers),
			 * sometimes the entries. */
			uint64_t span = (r % 4) ? data_off : csz;
			uint64_t at = (seed >> 3) % span;
			if (r % 5 == 0) /* a lock's bytes */
				at = lock_at(cache, seed >> 8) + (seed >> 3) % 64;
			seed = seed * 1664525u + 1013904223u;
			cache[at] = (unsigned char)(seed >> 24);
		}
		shmstat_t *h = NULL;
		int rc = shmstat_open(s.name, NULL, &h);
		if (rc != 0) {
			assert_int_equal(rc, SHMSTAT_ECORRUPT);
			refused++;
			continue;
		}
		used++;
		for (int i = 0; i < 40; i++) {
			int kl = snprintf(key, sizeof(key), "fz:%d", (i * 37) % 700);
			size_t n;
			int64_t ttl;
			uint64_t cnt;
			int out, calls = 0;
			assert_true(is_code(shmstat_cache_get(h, key, (size_t)kl,
							      buf, maxv,
							      &n)));
			assert_true(is_code(shmstat_cache_set(
				h, key, (size_t)kl, val, (size_t)(i * 11) % maxv,
				0, 0)));
			assert_true(is_code(shmstat_cache_ttl(h, key, (size_t)kl,
							      &ttl)));
			if (i % 8 == 0) {
				assert_true(is_code(shmstat_cache_delete(
					h, key, (size_t)kl)));
				assert_true(is_code(shmstat_cache_expire(
					h, key, (size_t)kl, 5)));
				assert_true(is_code(shmstat_cache_fetch(
					h, key, (size_t)kl, buf, maxv,
					&n, 100, 0, &out)));
				assert_true(is_code(shmstat_cache_iter(
					h, "fz:1*", count_keys, &calls)));
				assert_true(is_code(shmstat_cache_sweep(
					h, 256, &cnt)));
			}
		}
		shmstat_cache_stats_t st;
		uint64_t cnt;
		assert_true(is_code(shmstat_cache_stats(h, &st)));
		assert_true(is_code(shmstat_cache_clear(h, "fz:2*", &cnt)));
		shmstat_info_t in;
		assert_int_equal(shmstat_info(h, &in), 0);
		shmstat_close(&h);
	}
	print_message("%d scribbled regions refused at attach, %d used\n",
		      refused, used);
	/* Both outcomes met (in the small region, whose header is a larger
	 * share of the bytes scribbled on, over its many rounds). */
	assert_true(used > 0 && (refused > 0 || rounds < ROUNDS));
	memcpy(cache, snap, csz);
	free(snap);
	free(val);
	free(buf);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

static void scribbled_cache_regions_give_defined_results(void **state)
{
	(void)state;
	scribble(1u << 20, MAXV, ROUNDS);
}

/* The same with values larger than a page: runs of pages (PAGE_TAIL
 * pages naming their head) in the page table that is scribbled on. */
static void scribbled_regions_with_page_runs_give_defined_results(
	void **state)
{
	(void)state;
	scribble(4u << 20, 200u << 10, ROUNDS / 4);
}

/*
 * Lock bytes crafted as the pthread mutexes they once were: a robust
 * priority-inheritance kind with an owner that does not exist, a
 * priority-protect kind, all ones, a live holder (pid 1). Every call
 * returns a defined code within the bound; none aborts. (Before: glibc
 * assertions, exit 134.) In a child, so an abort is a failed assertion.
 */
static void crafted_lock_bytes_give_defined_results(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .size = 1u << 20, .max_counters = 16,
				.max_workers = 8, .cache_max_value = MAXV };
	tu_seg_create(&s, "clock", &o);
	shmstat__cache_set_lock_timeout(20);
	unsigned char *cache = s.h->cache;
	uint32_t ns, nc;
	memcpy(&ns, cache + 44, 4);
	memcpy(&nc, cache + 48, 4);
	for (int pat = 0; pat < 5; pat++) {
		for (uint32_t n = 0; n < 1 + ns + nc; n++) {
			unsigned char *l = cache + lock_at(cache, n);
			int32_t w[10] = { 0 };
			switch (pat) {
			case 0: /* robust | PI | pshared, owner gone */
				w[0] = 0x3ffffff0; w[2] = 0x3ffffff0;
				w[4] = 16 | 32 | 128;
				break;
			case 1: /* priority protect | pshared, ceiling 99 */
				w[0] = 99 << 19; w[4] = 64 | 128;
				break;
			case 2:
				memset(w, 0xff, sizeof(w));
				break;
			case 3: /* a live process holds it: wait, then EBUSY */
				w[0] = 1;
				break;
			case 4: /* free, but a garbage waiter count */
				w[2] = 0x7fffffff;
				break;
			}
			memcpy(l, w, sizeof(w));
		}
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			shmstat_t *h = NULL;
			char buf[64];
			size_t len;
			uint64_t cnt;
			int out, calls = 0, bad = 0;
			if (shmstat_open(s.name, NULL, &h) != 0)
				_exit(2);
			uint64_t t0 = shmstat__now_mono_ns();
			for (int i = 0; i < 20; i++) {
				char key[16];
				int kl = snprintf(key, sizeof(key), "k%d", i);
				bad += !is_code(shmstat_cache_set(
					h, key, (size_t)kl, "v", 1, 0, 0));
				bad += !is_code(shmstat_cache_get(
					h, key, (size_t)kl, buf, sizeof(buf),
					&len));
				bad += !is_code(shmstat_cache_fetch(
					h, key, (size_t)kl, buf, sizeof(buf),
					&len, 100, 0, &out));
				bad += !is_code(shmstat_cache_delete(
					h, key, (size_t)kl));
			}
			bad += !is_code(shmstat_cache_sweep(h, 0, &cnt));
			bad += !is_code(shmstat_cache_iter(h, NULL, count_keys,
							   &calls));
			bad += !is_code(shmstat_cache_clear(h, "k*", &cnt));
			bad += !is_code(shmstat_cache_flush(h, &cnt));
			/* 84 calls, each within its 20 ms deadline, mostly far
			 * less: 10 s is a bound no healthy run comes near. */
			if (shmstat__now_mono_ns() - t0 > 10000000000u)
				bad++;
			shmstat_close(&h);
			_exit(bad ? 1 : 0);
		}
		int rc = tu_wait(pid, 30000);
		print_message("lock pattern %d: child exit %d\n", pat, rc);
		assert_int_equal(rc, 0);
	}
	shmstat__cache_set_lock_timeout(0);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/* Where key's entry is: its bucket, its offset (0: not found), its
 * generation. Read from the layout: buckets of 64 bytes (version, flags,
 * 7 slots of tag << 48 | offset), entries of a 32-byte header (key length
 * at 2, generation at 8) and the key. */
static uint64_t entry_of(const unsigned char *cache, const char *key,
			 uint32_t *bucket, uint32_t *gen)
{
	uint32_t nb;
	uint64_t boff;
	size_t kl = strlen(key);

	memcpy(&nb, cache + 40, 4);
	memcpy(&boff, cache + 72, 8);
	for (uint32_t b = 0; b < nb; b++)
		for (int k = 0; k < 7; k++) {
			uint64_t sl, off;
			uint16_t l;
			memcpy(&sl, cache + boff + (uint64_t)b * 64 + 8 + k * 8, 8);
			off = sl & ((UINT64_C(1) << 40) - 1);
			if (!off)
				continue;
			memcpy(&l, cache + off + 2, 2);
			if (l == kl && memcmp(cache + off + 32, key, kl) == 0) {
				*bucket = b;
				memcpy(gen, cache + off + 8, 4);
				return off;
			}
		}
	return 0;
}

/*
 * The in-place journal word (j_ovr) of a stripe whose holder is dead (its
 * lock word names a pid above INT32_MAX: no process), crafted to name the
 * entry of a key with its generation while the bucket is odd (a torn
 * copy: the entry goes), the same with the bucket even (a whole value: it
 * stays), a generation that moved on (not that entry: it stays), an
 * offset that is no block, and random words. The taker repairs; every
 * call gives a defined result; the key reads whole or is absent; a flush
 * then leaves nothing in use.
 */
static void crafted_in_place_records_are_settled_safely(void **state)
{
	(void)state;
	uint32_t seed = 99;

	for (int c = 0; c < 12; c++) {
		struct tu_seg s;
		shmstat_options_t o = { .size = 1u << 20, .max_counters = 16,
					.max_workers = 8,
					.cache_max_value = MAXV };
		tu_seg_create(&s, "covr", &o);
		shmstat__cache_set_lock_timeout(20);
		char key[16], val[64], buf[64];
		memset(val, 'w', sizeof(val));
		for (int i = 0; i < 50; i++) {
			int kl = snprintf(key, sizeof(key), "o%d", i);
			assert_int_equal(shmstat_cache_set(s.h, key, (size_t)kl,
							   val, 40, 0, 0),
					 0);
		}
		unsigned char *cache = s.h->cache;
		uint32_t b = 0, gen = 0, ns;
		uint64_t off = entry_of(cache, "o7", &b, &gen), soff, boff;
		assert_true(off != 0);
		memcpy(&ns, cache + 44, 4);
		memcpy(&soff, cache + 56, 8);
		memcpy(&boff, cache + 72, 8);
		unsigned char *lk = cache + soff + (uint64_t)((b / 4) & (ns - 1)) * 128;
		uint64_t word = UINT64_C(0x80000001), rec;
		seed = seed * 1664525u + 1013904223u;
		switch (c % 6) {
		case 0: case 1: /* the entry: odd (torn), then even (whole) */
			rec = (uint64_t)(gen & 0xffffff) << 40 | off;
			break;
		case 2: /* a generation that moved on */
			rec = (uint64_t)((gen + 1) & 0xffffff) << 40 | off;
			break;
		case 3: /* no block */
			rec = off + 8;
			break;
		default:
			rec = (uint64_t)seed << 32 | (seed * 7u);
			break;
		}
		uint32_t ver;
		memcpy(&ver, cache + boff + (uint64_t)b * 64, 4);
		if (c % 6 != 1)
			ver |= 1; /* the holder died inside its odd window */
		memcpy(cache + boff + (uint64_t)b * 64, &ver, 4);
		/* A home block (cache_home.c) is odd in that window too. */
		uint64_t home_off;
		uint32_t nhome, hver;
		memcpy(&home_off, cache + 840, 8);
		memcpy(&nhome, cache + 848, 4);
		if (c % 6 != 1 && off - home_off < (uint64_t)nhome * 128) {
			memcpy(&hver, cache + off + 4, 4);
			hver |= 1;
			memcpy(cache + off + 4, &hver, 4);
		}
		memcpy(lk + 40, &rec, 8); /* j_ovr */
		memcpy(lk, &word, 8);     /* a dead holder */
		size_t n = 0;
		int rc = shmstat_cache_get(s.h, "o7", 2, buf, sizeof(buf), &n);
		assert_true(rc == 0 || rc == SHMSTAT_ENOTFOUND);
		if (rc == 0)
			assert_true(n == 40 && memcmp(buf, val, 40) == 0);
		if (c % 6 == 0)
			assert_int_equal(rc, SHMSTAT_ENOTFOUND); /* dropped */
		if (c % 6 == 1 || c % 6 == 2)
			assert_int_equal(rc, 0); /* whole: kept */
		for (int i = 0; i < 50; i++) {
			int kl = snprintf(key, sizeof(key), "o%d", i);
			assert_true(is_code(shmstat_cache_get(
				s.h, key, (size_t)kl, buf, sizeof(buf), &n)));
			assert_true(is_code(shmstat_cache_set(
				s.h, key, (size_t)kl, val, 41, 0, 0)));
		}
		shmstat_cache_stats_t st;
		assert_int_equal(shmstat_cache_flush(s.h, NULL), 0);
		assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
		assert_int_equal(st.entries, 0);
		assert_int_equal(st.bytes_used, 0);
		shmstat__cache_set_lock_timeout(0);
		shmstat_close(&s.h);
		shmstat_unlink(s.name);
	}
}

/*
 * A home block crafted to pass every check but the lengths: LIVE, an even
 * version, its tag, the hash of a 200-byte key, that key's bytes, a key
 * length of 200 and a value length of the maximum, in the last home block
 * of the region, the rest of the key and a value after it. A get of that
 * key reads nothing outside the block: a miss (the bucket knows no such
 * key), never a hit nor a crash. (Before: the bound on the value
 * length wrapped for a key over 96 bytes, and the get copied the
 * maximum from past the block's end.)
 */
static void a_home_block_with_a_long_key_reads_nothing_past_it(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .size = 4u << 20, .max_counters = 16,
				.max_workers = 8, .cache_max_value = MAXV,
				.cache_home_pct = 50 };
	tu_seg_create(&s, "clong", &o);
	const struct cache_geo *g = &s.h->cache_geo;
	assert_true(g->nhome > 0);
	/* A set first, so the handle has its row (the common hit's path). */
	assert_int_equal(shmstat_cache_set(s.h, "other", 5, "v", 1, 0, 0), 0);
	char key[200];
	uint64_t hash = 0;
	int found = 0;
	for (uint32_t n = 0; n < 100000000u && !found; n++) {
		memset(key, 'k', sizeof(key));
		memcpy(key, &n, sizeof(n));
		hash = shmstat__hash(key, sizeof(key));
		found = shmstat__cache_home_index(g, hash) == g->nhome - 1;
	}
	assert_true(found);
	unsigned char *b = g->base + g->home_off + (uint64_t)(g->nhome - 1) * 128;
	uint16_t klen = sizeof(key), tag = (uint16_t)((hash >> 48) | 1);
	uint32_t even = 2, vlen = MAXV;
	b[0] = 2; /* LIVE */
	memcpy(b + 2, &klen, 2);
	memcpy(b + 4, &even, 4);
	memcpy(b + 12, &vlen, 4);
	memcpy(b + 16, &hash, 8);
	memset(b + 24, 0, 8);
	memcpy(b + 32, key, 96); /* all the block holds of it */
	/* The rest of the key and the value after the block, where the
	 * region still has bytes: a get that trusted the lengths would
	 * match the key there and return a hit. */
	uint64_t end = (uint64_t)(b - g->base) + 128;
	if (end + 104 + MAXV <= g->region_size) {
		memcpy(b + 128, key + 96, 104);
		memset(b + 128 + 104, 'v', MAXV);
	}
	g->home_tags[g->nhome - 1] = tag;
	char *buf = malloc(MAXV);
	size_t n = 0;
	assert_int_equal(shmstat_cache_get(s.h, key, sizeof(key), buf, MAXV, &n),
			 SHMSTAT_ENOTFOUND);
	free(buf);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crafted_in_place_records_are_settled_safely),
		cmocka_unit_test(a_home_block_with_a_long_key_reads_nothing_past_it),
		cmocka_unit_test(scribbled_cache_regions_give_defined_results),
		cmocka_unit_test(crafted_lock_bytes_give_defined_results),
		cmocka_unit_test(
			scribbled_regions_with_page_runs_give_defined_results),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
