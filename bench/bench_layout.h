/*
 * bench_layout.h — the fixed-slot table of bench_layout.c, for the
 * side-by-side benchmark in bench_cache.c (pair_slot_table_get).
 */
#ifndef SHMSTAT_BENCH_LAYOUT_H
#define SHMSTAT_BENCH_LAYOUT_H

#include <stddef.h>

/* Fill the table of 2^21 128-byte slots with the bench's 1,000,000 keys
 * and values (once). */
void layout_slots_init(void);
/* A whole get on it: 0 a hit (the value in buf, *vlen its length), -1
 * absent, -2 a length out of bounds, -3 busy, -4 expired, -5 a bad
 * argument. */
int layout_slot_get(const char *k, size_t kl, unsigned char *buf,
		    size_t buflen, size_t *vlen);

#endif
