/*
 * bench_cache_keys.h — the data set shared by the cache benchmarks:
 * N keys of 16 to 32 bytes (a few distinct prefixes, like real keys) and
 * 64-byte values, plus N keys that are never stored (for misses).
 */
#ifndef SHMSTAT_BENCH_CACHE_KEYS_H
#define SHMSTAT_BENCH_CACHE_KEYS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BK_N 1000000u
#define BK_VAL 64u
#define BK_KEYMAX 33u /* 32 bytes and a NUL (GHashTable wants C strings) */

struct bench_keys {
	char *hit;  /* BK_N * BK_KEYMAX, NUL-terminated */
	char *miss;
	uint8_t *len;
};

static inline void bk_make(char *k, const char *prefix, uint32_t i,
			   uint8_t *len)
{
	int n = snprintf(k, BK_KEYMAX, "%s:%u:", prefix, i);
	int want = 16 + (int)(i % 17); /* 16..32 */
	for (; n < want; n++)
		k[n] = (char)('a' + (i + (uint32_t)n) % 26);
	k[want] = '\0';
	*len = (uint8_t)want;
}

static inline void bk_init(struct bench_keys *b)
{
	static const char *const pre[] = { "user", "llm", "sess", "page" };
	uint8_t l;
	b->hit = malloc((size_t)BK_N * BK_KEYMAX);
	b->miss = malloc((size_t)BK_N * BK_KEYMAX);
	b->len = malloc(BK_N);
	if (!b->hit || !b->miss || !b->len)
		abort();
	for (uint32_t i = 0; i < BK_N; i++) {
		bk_make(b->hit + (size_t)i * BK_KEYMAX, pre[i % 4], i,
			&b->len[i]);
		bk_make(b->miss + (size_t)i * BK_KEYMAX, "none", i, &l);
	}
}

static inline void bk_value(unsigned char *v, uint32_t i, uint32_t ver)
{
	for (uint32_t j = 0; j < BK_VAL; j++)
		v[j] = (unsigned char)(i * 7 + j + ver);
}

/* A cheap pseudo-random walk over [0, BK_N): a full-period LCG mod 2^20
 * with indices >= BK_N skipped. */
static inline uint32_t bk_next(uint32_t *x)
{
	do
		*x = (*x * 1664525u + 1013904223u) & ((1u << 20) - 1);
	while (*x >= BK_N);
	return *x;
}

/* A segment big enough for BK_N entries: 144-byte blocks, buckets. */
#define BK_SEG_SIZE (320ull << 20)

#endif
