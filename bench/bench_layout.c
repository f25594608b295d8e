/*
 * bench_layout.c — what a hit's memory accesses cost, apart from the
 * cache's code: the cache_get_hit walk (the same 1,000,000 keys, the same
 * order, XXH3 of the key) doing only the loads of one table layout or
 * another, in POSIX shared memory of the cache's sizes (2^19 64-byte
 * buckets; 192 MiB of 128-byte blocks). They bound what a layout can give
 * a get at a million keys, before any check, statistic or copy rule.
 *
 *   layout_key_only          the key and its hash: what every table pays
 *   layout_bucket_only       + one bucket line (a table of tags, no data)
 *   layout_bucket_then_entry + the entry its slot names, a line apart in
 *                            the data area (the cache's layout: two
 *                            accesses in series after the key)
 *   layout_bucket_and_blocks_apart
 *                            + three blocks per bucket in an area of their
 *                            own, their 6 lines fetched with the bucket,
 *                            the entry one of them
 *   layout_bucket_and_block_adjacent
 *                            + one 128-byte block right after its bucket
 *                            (same page), fetched with it
 *   layout_entry_in_bucket_lines
 *                            the entry in the bucket's own two lines (a
 *                            table whose slot holds the whole entry)
 *   layout_slot_table_get    not loads only: a whole get, with what a
 *                            cache get must do (argument checks, hash and
 *                            length compares, bounds, the key compare, an
 *                            exact-length copy, a seqlock version before
 *                            and after, the TTL check, the use bit, a
 *                            locked statistics add), on a table of 2^21
 *                            fixed 128-byte slots that hold small entries
 *                            whole (open addressing, linear probing): the
 *                            layout a 1M-key hit would need to beat the
 *                            cache_get_hit goal (doc/cache.md)
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bench_cache_keys.h"
#include "bench_layout.h"
#include "shim.h"

#define BATCH 1000
#define NB (1u << 19)
#define DATA (192ull << 20)
#define NBLOCKS (DATA / 128)

static struct bench_keys lkeys;
static unsigned char *bk, *apart, *data, *adj;

static unsigned char *shm_area(size_t size)
{
	char name[64];

	snprintf(name, sizeof(name), "/bench-layout-%d", (int)getpid());
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		perror("bench: layout area");
		exit(2);
	}
	unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
				fd, 0);
	shm_unlink(name);
	close(fd);
	if (m == MAP_FAILED) {
		perror("bench: layout mmap");
		exit(2);
	}
	memset(m, 1, size);
	return m;
}

static void layout_init(void)
{
	if (bk)
		return;
	bk_init(&lkeys);
	bk = shm_area((size_t)NB * 64);
	apart = shm_area((size_t)NB * 384);
	data = shm_area(DATA);
	adj = shm_area((size_t)NB * 192);
	/* Each bucket names a block: a pseudo-random one of the data area,
	 * one of its three blocks apart, its adjacent block. */
	for (uint64_t i = 0; i < NB; i++) {
		uint64_t off = (i * 2654435761u) % NBLOCKS * 128;
		memcpy(bk + i * 64, &off, 8);
		uint64_t j = i % 3;
		memcpy(bk + i * 64 + 8, &j, 8);
		uint64_t a = 64;
		memcpy(adj + i * 192, &a, 8);
	}
}

static inline uint64_t load8(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

enum layout { KEY, BUCKET, ENTRY, APART, ADJACENT, IN_BUCKET };

static void walk(shim_state_t *st, enum layout how)
{
	unsigned char buf[BK_VAL];
	uint32_t x = 1;
	uint64_t acc = 0;

	layout_init();
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++) {
			uint32_t k = bk_next(&x);
			uint64_t h = XXH3_64bits(lkeys.hit + (size_t)k * BK_KEYMAX,
						 lkeys.len[k]);
			const unsigned char *b = bk + (h & (NB - 1)) * 64;
			const unsigned char *a = apart + (h & (NB - 1)) * 384;
			const unsigned char *d = adj + (h & (NB - 1)) * 192;
			switch (how) {
			case KEY:
				acc += h;
				break;
			case BUCKET:
				acc += load8(b);
				break;
			case ENTRY:
				memcpy(buf, data + load8(b) + 32, BK_VAL);
				break;
			case APART:
				for (int j = 0; j < 3; j++) {
					__builtin_prefetch(a + j * 128);
					__builtin_prefetch(a + j * 128 + 64);
				}
				memcpy(buf, a + load8(b + 8) * 128 + 32, BK_VAL);
				break;
			case ADJACENT:
				__builtin_prefetch(d + 64);
				__builtin_prefetch(d + 128);
				memcpy(buf, d + load8(d) + 32, BK_VAL);
				break;
			case IN_BUCKET:
				memcpy(buf, d + 32, BK_VAL);
				break;
			}
			acc += buf[h & 63];
			shim_keep(buf);
		}
	shim_keep(&acc);
	shim_set_items(st, shim_iterations(st));
}

SHIM_BENCH(layout_key_only)(shim_state_t *st) { walk(st, KEY); }
SHIM_BENCH(layout_bucket_only)(shim_state_t *st) { walk(st, BUCKET); }
SHIM_BENCH(layout_bucket_then_entry)(shim_state_t *st) { walk(st, ENTRY); }
SHIM_BENCH(layout_bucket_and_blocks_apart)(shim_state_t *st)
{
	walk(st, APART);
}
SHIM_BENCH(layout_bucket_and_block_adjacent)(shim_state_t *st)
{
	walk(st, ADJACENT);
}
SHIM_BENCH(layout_entry_in_bucket_lines)(shim_state_t *st)
{
	walk(st, IN_BUCKET);
}

/* ------------------------------------------------- a table of whole slots */

#define NSLOTS (1u << 21)
#define SLOT_KEY 32u
#define SLOT_VAL 64u

struct slot {
	_Atomic uint32_t ver; /* odd while written */
	uint8_t klen, vlen;   /* klen 0: empty */
	_Atomic uint8_t ref;  /* the use bit */
	uint8_t pad0;
	uint64_t hash;
	unsigned char key[SLOT_KEY];
	unsigned char val[SLOT_VAL];
	_Atomic uint64_t expires; /* ms; 0 never */
	uint64_t pad1;
};
_Static_assert(sizeof(struct slot) == 128, "a slot is a line pair");

static struct slot *slots;
static _Atomic uint64_t slot_hits;

static void slot_put(const char *k, size_t kl, const unsigned char *v)
{
	uint64_t h = XXH3_64bits(k, kl);

	for (uint32_t i = (uint32_t)h & (NSLOTS - 1);; i = (i + 1) & (NSLOTS - 1)) {
		struct slot *s = &slots[i];
		if (s->klen)
			continue;
		s->hash = h;
		s->klen = (uint8_t)kl;
		s->vlen = SLOT_VAL;
		memcpy(s->key, k, kl);
		memcpy(s->val, v, SLOT_VAL);
		return;
	}
}

void layout_slots_init(void)
{
	unsigned char v[BK_VAL];

	if (slots)
		return;
	layout_init();
	slots = (struct slot *)(void *)shm_area((size_t)NSLOTS * sizeof(struct slot));
	memset(slots, 0, (size_t)NSLOTS * sizeof(struct slot));
	for (uint32_t i = 0; i < BK_N; i++) {
		bk_value(v, i, 0);
		slot_put(lkeys.hit + (size_t)i * BK_KEYMAX, lkeys.len[i], v);
	}
}

/* Do the n bytes at a and b match? The cache's key_eq for keys of 16 to
 * 32 bytes (two overlapping 16-byte compares), repeated here as
 * copy_upto64 is: a call to memcmp in this get (through the PLT, as
 * from any program) cost 303 ns a get against 158-197 inline, more than
 * the layout's whole gain. */
static inline bool key_same(const unsigned char *a, const char *b, size_t n)
{
#if defined(__SSE2__)
	if (n - 16 <= 16) {
		__m128i a0 = _mm_loadu_si128((const __m128i *)(const void *)a);
		__m128i b0 = _mm_loadu_si128((const __m128i *)(const void *)b);
		__m128i a1 = _mm_loadu_si128(
			(const __m128i *)(const void *)(a + n - 16));
		__m128i b1 = _mm_loadu_si128(
			(const __m128i *)(const void *)(b + n - 16));
		__m128i eq = _mm_and_si128(_mm_cmpeq_epi8(a0, b0),
					   _mm_cmpeq_epi8(a1, b1));
		return _mm_movemask_epi8(eq) == 0xffff;
	}
#endif
	return memcmp(a, b, n) == 0;
}

/* Copy n <= 64 bytes by 16-byte moves: the cache's value_copy
 * (shm/cache_impl_i.h), repeated so the bench needs no library internals.
 * A plain memcpy(buf, s->val, vl) here, whose length gcc knows to be at
 * most 64, became `rep movsq` and made this get 3x slower (523-527 ns,
 * against 164-171). */
static inline void copy_upto64(unsigned char *d, const unsigned char *s,
			       size_t n)
{
	if (n - 16 <= 48) {
		size_t h = n >= 32 ? 16 : n - 16;
		memcpy(d, s, 16);
		memcpy(d + h, s + h, 16);
		memcpy(d + n - 16 - h, s + n - 16 - h, 16);
		memcpy(d + n - 16, s + n - 16, 16);
		return;
	}
	memcpy(d, s, n);
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

__attribute__((noinline)) int layout_slot_get(const char *k, size_t kl,
					      unsigned char *buf,
					      size_t buflen, size_t *vlen)
{
	if (!k || kl - 1 >= SLOT_KEY || !buf)
		return -5;
	uint64_t h = XXH3_64bits(k, kl);

	for (uint32_t p = 0, i = (uint32_t)h & (NSLOTS - 1); p < 128;
	     p++, i = (i + 1) & (NSLOTS - 1)) {
		struct slot *s = &slots[i];
		uint32_t v = atomic_load_explicit(&s->ver, memory_order_acquire);
		if (v & 1)
			return -3;
		if (!s->klen)
			return -1;
		if (s->hash != h || s->klen != kl)
			continue;
		size_t vl = s->vlen;
		if (vl > SLOT_VAL || vl > buflen)
			return -2;
		if (!key_same(s->key, k, kl))
			continue;
		copy_upto64(buf, s->val, vl);
		uint64_t exp = atomic_load_explicit(&s->expires,
						    memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&s->ver, memory_order_relaxed) != v)
			return -3;
		if (exp && now_ms() >= exp)
			return -4;
		if (!atomic_load_explicit(&s->ref, memory_order_relaxed))
			atomic_store_explicit(&s->ref, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&slot_hits, 1, memory_order_relaxed);
		*vlen = vl;
		return 0;
	}
	return -1;
}

SHIM_BENCH(layout_slot_table_get)(shim_state_t *st)
{
	unsigned char buf[BK_VAL];
	uint32_t x = 1, misses = 0;
	size_t n;

	layout_slots_init();
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++) {
			uint32_t k = bk_next(&x);
			misses += layout_slot_get(lkeys.hit + (size_t)k * BK_KEYMAX,
					   lkeys.len[k], buf, sizeof(buf),
					   &n) != 0;
			shim_keep(buf);
		}
	if (misses)
		shim_skip(st, "a get of a stored key missed");
	shim_set_items(st, shim_iterations(st));
}
