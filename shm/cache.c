/*
 * cache.c — the TTL cache in REG_CACHE. Placeholder until the cache lands:
 * the region is reserved and zeroed so the layout does not change then.
 */
#include "cache_i.h"
#include "shmstat_i.h"

uint64_t shmstat__cache_min_size(uint64_t max_value)
{
	return 4096 + max_value;
}

int shmstat__cache_init(unsigned char *region, uint64_t size,
			uint64_t max_value)
{
	(void)region;
	(void)size;
	(void)max_value;
	return 0;
}

int shmstat__cache_validate(const unsigned char *region, uint64_t size,
			    uint64_t max_value)
{
	(void)region;
	(void)size;
	(void)max_value;
	return 0;
}

uint64_t shmstat__cache_bytes_used(const struct shmstat *h)
{
	(void)h;
	return 0;
}
