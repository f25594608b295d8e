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
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "bench_cache_keys.h"
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
