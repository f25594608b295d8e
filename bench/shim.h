/*
 * shim.h — Google Benchmark for benchmark bodies written in C.
 *
 * A body is a C function that runs the measured operation in batches:
 *
 *     SHIM_BENCH(counter_add)(shim_state_t *st)
 *     {
 *             setup...;
 *             while (shim_run_batch(st, 1000))
 *                     for (int i = 0; i < 1000; i++)
 *                             op();
 *             teardown...;
 *     }
 *
 * shim_run_batch() counts `n` iterations per call, so the per-iteration
 * time Google Benchmark reports is the time of one op, with the loop's own
 * overhead spread over the batch.
 */
#ifndef SHMSTAT_BENCH_SHIM_H
#define SHMSTAT_BENCH_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shim_state shim_state_t;
typedef void (*shim_fn)(shim_state_t *st);

/* Register a benchmark (called from constructors, before main). */
void shim_register(const char *name, shim_fn fn);
/* Run another batch of n iterations? (KeepRunningBatch) */
int shim_run_batch(shim_state_t *st, int64_t n);
/* Items processed, for items_per_second; and a named counter. */
void shim_set_items(shim_state_t *st, int64_t items);
void shim_counter(shim_state_t *st, const char *name, double value);
/* Skip with a message (e.g. no Redis). */
void shim_skip(shim_state_t *st, const char *why);
/* Total iterations so far. */
int64_t shim_iterations(const shim_state_t *st);
/* Leave set-up inside the loop out of the measured time. */
void shim_pause_timing(shim_state_t *st);
void shim_resume_timing(shim_state_t *st);

/* Keep the compiler from dropping a computed value or a store. */
static inline void shim_keep(const void *p)
{
	__asm__ volatile("" : : "g"(p) : "memory");
}

#define SHIM_BENCH(name)                                                       \
	static void bench_##name(shim_state_t *st);                            \
	__attribute__((constructor)) static void register_##name(void)        \
	{                                                                      \
		shim_register(#name, bench_##name);                            \
	}                                                                      \
	static void bench_##name

#ifdef __cplusplus
}
#endif

#endif
