/*
 * cache_i.h — what segment.c needs from the cache (cache.c owns the
 * REG_CACHE region's internal layout), and the hooks the tests use.
 */
#ifndef SHMSTAT_CACHE_I_H
#define SHMSTAT_CACHE_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shmstat;
struct cache_hdr;
struct cache_stripe;
struct cache_class;
struct cache_bucket;
struct cache_page;

#define CACHE_MAX_CLASSES 64u
#define CACHE_CLASS_QUICK 256u
/* Pages a cache has beyond the run one largest value spans: a geometry
 * with fewer is refused. */
#define CACHE_MIN_PAGES 2u
/* Home blocks per group of four buckets, at most (cache_home.c). */
#define CACHE_HOME_PER_GROUP 256u
/* The largest cache_max_value. */
#define CACHE_MAX_VALUE_LIMIT (UINT32_MAX / 2)

/*
 * The cache region's geometry, read from its header and checked once, at
 * attach, into the handle: no call reads it from the region again (a
 * process scribbling on the header cannot make another one index out).
 */
struct cache_geo {
	bool ok;
	uint32_t nbuckets, nstripes, nclasses, npages;
	uint64_t region_size, max_value, page_size;
	uint64_t stripes_off, classes_off, buckets_off, pages_off, data_off;
	uint64_t data_end;
	uint64_t data_span; /* data_end - data_off - ENT_HDR: an entry at
			     * data_off + rel fits when rel + key + value
			     * lengths <= data_span */
	uint32_t page_shift; /* log2(page_size) when a power of two, else 0 */
	uint64_t class_size[CACHE_MAX_CLASSES];
	uint32_t class_blocks[CACHE_MAX_CLASSES]; /* blocks per page (>= 1) */
	uint32_t class_span[CACHE_MAX_CLASSES];   /* pages per block (>= 1) */
	/* The class of a block of n bytes, n <= 16 * CACHE_CLASS_QUICK,
	 * at [(n + 15) / 16]. */
	uint8_t class_quick[CACHE_CLASS_QUICK + 1];
	/* The tables in this process's mapping, located once. */
	uint32_t bmask, smask;
	uint64_t home_off; /* the home blocks (cache_home.c); nhome 0: none */
	uint32_t nhome;
	uint32_t hpg;      /* home blocks per bucket group: nhome / groups */
	_Atomic uint16_t *home_tags;
	unsigned char *base;
	struct cache_hdr *hdr; /* only its mutable fields are read */
	struct cache_stripe *st;
	struct cache_class *cl;
	struct cache_bucket *bk;
	struct cache_page *pg;
};

/* The home block of a key's hash (g->nhome not 0): one of the hpg blocks
 * of its home bucket's group (of four), picked by hash bits that neither
 * the bucket (the low bits) nor the slot's tag (the top 16) use. (One block, not a choice of
 * two: a get then knows the block's address from the hash alone and reads
 * it while it checks the block's tag; two would make it wait for the tags
 * to know which, and measured slower at a million keys.) */
static inline uint64_t shmstat__cache_home_index(const struct cache_geo *g,
						 uint64_t hash)
{
	return (uint64_t)(((uint32_t)hash & g->bmask) / 4) * g->hpg +
	       (((hash >> 32) & 0xffff) * g->hpg >> 16);
}

/* Smallest cache region for max_value (the run of pages of its largest
 * entry, CACHE_MIN_PAGES more pages, and the tables); 0 when max_value is
 * 0 or above CACHE_MAX_VALUE_LIMIT. */
uint64_t shmstat__cache_min_size(uint64_t max_value);
/* Lay out a zeroed region of `size` bytes at `region` (creator only). */
int shmstat__cache_init(unsigned char *region, uint64_t size,
			uint64_t max_value, uint32_t home_pct);
/* Check the region's own header before trusting it (every attacher), and
 * copy its geometry into *geo. SHMSTAT_EVERSION when the region carries
 * the cache's magic but another format version (*version: that one, and
 * shmstat__cache_format() is this build's); ECORRUPT otherwise. The cache
 * format has no minor: any change of it is a new version. */
int shmstat__cache_validate(const unsigned char *region, uint64_t size,
			    uint64_t max_value, struct cache_geo *geo,
			    uint32_t *version);
/* The cache format version this build reads and writes. */
uint32_t shmstat__cache_format(void);
/* Bytes of the region in use, for shmstat_info(). */
uint64_t shmstat__cache_bytes_used(const struct shmstat *h);

/*
 * Test hooks (process-local; tests and benchmarks only).
 *
 * shmstat__cache_set_clock(ms): from now on the cache's clock reads `ms`
 * (milliseconds) in this process and its children forked later; 0 goes
 * back to CLOCK_MONOTONIC_COARSE. TTL tests move time without sleeping.
 */
void shmstat__cache_set_clock(uint64_t ms);
/* The cache's clock now, in ms. */
uint64_t shmstat__cache_now_ms(void);

/* Where a writer is inside its critical section, for the crash tests. */
enum cache_hook_stage {
	CACHE_HOOK_LOCKED = 1,    /* stripe locked, nothing changed yet */
	CACHE_HOOK_WRITTEN = 2,   /* new entry written, not yet published */
	CACHE_HOOK_PUBLISHED = 3, /* new entry published, old not yet freed */
	CACHE_HOOK_SETTLING = 4,  /* repairing a dead holder's stripe: a
				   * journal record read, not yet acted on */
	CACHE_HOOK_OVERWRITING = 5, /* overwriting a value in place: half
				     * of the new value copied */
	CACHE_HOOK_GET_FULL = 6,  /* a get going the whole way, not by the
				   * common hit's own path (no lock held) */
};
/* Called by writers at each stage while they hold the stripe lock, and
 * by a get at CACHE_HOOK_GET_FULL; NULL (the default) costs one
 * predictable branch. A crash test sets it in a child to stop or kill
 * that child at a chosen point; a test counts the gets that went the
 * whole way. */
extern void (*shmstat__cache_hook)(int stage);

/* The deadline of one call: how long it may wait in all for locks and
 * for buckets being written before it gives up (default 100 ms). */
void shmstat__cache_set_lock_timeout(uint32_t ms);

/* The 64-bit lock word of the pool (kind 0), stripe i (kind 1) or size
 * class i (kind 2), so that a test can hold a lock from another process
 * (store its pid) or scribble on it; NULL when out of range. */
void *shmstat__cache_lock_word(struct shmstat *h, int kind, uint32_t i);

#endif /* SHMSTAT_CACHE_I_H */
