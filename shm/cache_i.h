/*
 * cache_i.h — what segment.c needs from the cache (cache.c owns the
 * REG_CACHE region's internal layout).
 */
#ifndef SHMSTAT_CACHE_I_H
#define SHMSTAT_CACHE_I_H

#include <stddef.h>
#include <stdint.h>

struct shmstat;

/* Smallest cache region that can hold one value of max_value bytes. */
uint64_t shmstat__cache_min_size(uint64_t max_value);
/* Lay out a zeroed region of `size` bytes at `region` (creator only). */
int shmstat__cache_init(unsigned char *region, uint64_t size,
			uint64_t max_value);
/* Check the region's own header before trusting it (every attacher). */
int shmstat__cache_validate(const unsigned char *region, uint64_t size,
			    uint64_t max_value);
/* Bytes of the region in use, for shmstat_info(). */
uint64_t shmstat__cache_bytes_used(const struct shmstat *h);

#endif /* SHMSTAT_CACHE_I_H */
