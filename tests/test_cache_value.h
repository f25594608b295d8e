/*
 * test_cache_value.h — values that prove themselves, for the cache tests
 * that check no reader ever sees a torn or mixed value: key id, version,
 * length, a payload derived from them, and a hash of all that. Half of
 * two versions, or of two keys, fails the hash or the id.
 */
#ifndef SHMSTAT_TEST_CACHE_VALUE_H
#define SHMSTAT_TEST_CACHE_VALUE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "shmstat_i.h"

struct hdr_v {
	uint32_t key;
	uint32_t version;
	uint32_t len; /* payload bytes */
	uint32_t pad;
	uint64_t sum;
};

/* At most sizeof(struct hdr_v) + 607 bytes. */
static inline size_t make_value(unsigned char *buf, uint32_t key,
				uint32_t version)
{
	struct hdr_v hv = { key, version, 8 + (key * 7 + version * 13) % 600,
			    0, 0 };
	unsigned char *p = buf + sizeof(hv);
	for (uint32_t i = 0; i < hv.len; i++)
		p[i] = (unsigned char)(key * 31 + version * 17 + i);
	hv.sum = shmstat__hash(p, hv.len) ^ ((uint64_t)key << 32 | version);
	memcpy(buf, &hv, sizeof(hv));
	return sizeof(hv) + hv.len;
}

static inline bool check_value(const unsigned char *buf, size_t n,
			       uint32_t key)
{
	struct hdr_v hv;
	if (n < sizeof(hv))
		return false;
	memcpy(&hv, buf, sizeof(hv));
	if (hv.key != key || hv.len != n - sizeof(hv))
		return false;
	const unsigned char *p = buf + sizeof(hv);
	for (uint32_t i = 0; i < hv.len; i++)
		if (p[i] != (unsigned char)(key * 31 + hv.version * 17 + i))
			return false;
	return hv.sum ==
	       (shmstat__hash(p, hv.len) ^ ((uint64_t)key << 32 | hv.version));
}

#endif
