/*
 * test_cache_fuzz.c — the cache region is untrusted input. Random bytes of
 * a filled region (its header, buckets, page headers, entries) are
 * overwritten; then a fresh attach must refuse the segment or every cache
 * call must return a defined result (0 or a SHMSTAT_E* code) without
 * reading or writing outside the segment (run it under -Dsanitize=true).
 *
 * The bytes of the pthread mutexes are left alone: a scribbled mutex is a
 * denial of service for any pthread user (calls give up after the lock
 * bound), not something the library can check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Byte ranges holding mutexes: the pool's, each stripe's, each class's. */
static bool in_mutex(const unsigned char *cache, uint64_t o)
{
	uint64_t stripes, classes;
	uint32_t ns, nc;
	memcpy(&ns, cache + 44, 4);
	memcpy(&nc, cache + 48, 4);
	memcpy(&stripes, cache + 56, 8);
	memcpy(&classes, cache + 64, 8);
	if (o >= 768 && o < 768 + 40)
		return true;
	if (o >= stripes && o < stripes + (uint64_t)ns * 128 &&
	    (o - stripes) % 128 < 40)
		return true;
	if (o >= classes && o < classes + (uint64_t)nc * 128 &&
	    (o - classes) % 128 < 40)
		return true;
	return false;
}

static void scribbled_cache_regions_give_defined_results(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .size = 1u << 20, .max_counters = 16,
				.max_workers = 8, .cache_max_value = MAXV };
	tu_seg_create(&s, "cfuzz", &o);
	shmstat__cache_set_lock_timeout(5);
	char key[32], val[MAXV], buf[MAXV];
	memset(val, 'v', sizeof(val));
	for (int i = 0; i < 600; i++) {
		int kl = snprintf(key, sizeof(key), "fz:%d", i);
		assert_int_equal(shmstat_cache_set(s.h, key, (size_t)kl, val,
						   (size_t)(i * 13) % MAXV,
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

	for (int r = 0; r < ROUNDS; r++) {
		memcpy(cache, snap, csz);
		int flips = 1 + r % 16;
		for (int f = 0; f < flips; f++) {
			seed = seed * 1664525u + 1013904223u;
			/* Mostly the tables (header, buckets, page headers),
			 * sometimes the entries. */
			uint64_t span = (r % 4) ? data_off : csz;
			uint64_t at = (seed >> 3) % span;
			if (in_mutex(cache, at))
				continue;
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
							      buf, sizeof(buf),
							      &n)));
			assert_true(is_code(shmstat_cache_set(
				h, key, (size_t)kl, val, (size_t)(i * 11) % MAXV,
				0, 0)));
			assert_true(is_code(shmstat_cache_ttl(h, key, (size_t)kl,
							      &ttl)));
			if (i % 8 == 0) {
				assert_true(is_code(shmstat_cache_delete(
					h, key, (size_t)kl)));
				assert_true(is_code(shmstat_cache_expire(
					h, key, (size_t)kl, 5)));
				assert_true(is_code(shmstat_cache_fetch(
					h, key, (size_t)kl, buf, sizeof(buf),
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
	assert_true(refused > 0 && used > 0);
	memcpy(cache, snap, csz);
	free(snap);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(scribbled_cache_regions_give_defined_results),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
