/*
 * cache_prefork — aggregate cache throughput of 1 and 2 processes.
 *
 * Fills a segment with 1,000,000 keys (16 to 32 bytes, 64-byte values),
 * then for P = 1 and P = 2 forks P workers that each run gets (then sets)
 * of pseudo-random keys for a fixed time, and prints the aggregate
 * operations per second and the ratio of 2 processes to 1. Reads take no
 * lock and write no shared line, so gets should scale with the cores;
 * sets of distinct keys take distinct stripe locks.
 *
 * usage: cache_prefork [-t SECONDS_PER_RUN]
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_cache_keys.h"
#include "shmstat.h"

struct shared {
	_Atomic int ready, go, stop;
	_Atomic uint64_t ops[2];
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void worker(shmstat_t *h, const struct bench_keys *k, int id,
		   int sets, struct shared *sh)
{
	unsigned char buf[BK_VAL];
	uint32_t x = 1 + (uint32_t)id * 7919;
	uint64_t n = 0;
	size_t len;

	bk_value(buf, 0, 2);
	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load(&sh->go))
		;
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		for (int i = 0; i < 1000; i++) {
			uint32_t j = bk_next(&x);
			const char *key = k->hit + (size_t)j * BK_KEYMAX;
			if (sets)
				shmstat_cache_set(h, key, k->len[j], buf,
						  BK_VAL, 0, 0);
			else
				shmstat_cache_get(h, key, k->len[j], buf,
						  sizeof(buf), &len);
		}
		n += 1000;
	}
	atomic_store(&sh->ops[id], n);
	_exit(0);
}

static double run(shmstat_t *h, const struct bench_keys *k, int procs,
		  int sets, double secs, struct shared *sh)
{
	pid_t pid[2];

	memset(sh, 0, sizeof(*sh));
	for (int p = 0; p < procs; p++) {
		pid[p] = fork();
		if (pid[p] == 0)
			worker(h, k, p, sets, sh);
	}
	while (atomic_load(&sh->ready) < procs)
		;
	double t0 = now_s();
	atomic_store(&sh->go, 1);
	struct timespec ts = { (time_t)secs,
			       (long)((secs - (double)(time_t)secs) * 1e9) };
	nanosleep(&ts, NULL);
	atomic_store(&sh->stop, 1);
	double t1 = now_s();
	uint64_t total = 0;
	for (int p = 0; p < procs; p++) {
		waitpid(pid[p], NULL, 0);
		total += atomic_load(&sh->ops[p]);
	}
	return (double)total / (t1 - t0);
}

int main(int argc, char **argv)
{
	double secs = 2.0;
	int c;
	while ((c = getopt(argc, argv, "t:h")) != -1) {
		if (c == 't')
			secs = atof(optarg);
		else {
			fputs("usage: cache_prefork [-t SECONDS_PER_RUN]\n",
			      c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 1;
		}
	}
	if (secs <= 0 || secs > 60)
		secs = 2.0;
	struct bench_keys k;
	bk_init(&k);
	char name[64];
	snprintf(name, sizeof(name), "cache-prefork-%d", (int)getpid());
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL,
				.size = BK_SEG_SIZE, .max_counters = 64,
				.max_workers = 16, .cache_max_value = 4096 };
	shmstat_t *h = NULL;
	if (shmstat_open(name, &o, &h) < 0) {
		fprintf(stderr, "cache_prefork: %s\n", shmstat_errstr(NULL));
		return 2;
	}
	unsigned char v[BK_VAL];
	for (uint32_t i = 0; i < BK_N; i++) {
		bk_value(v, i, 0);
		if (shmstat_cache_set(h, k.hit + (size_t)i * BK_KEYMAX,
				      k.len[i], v, BK_VAL, 0, 0) < 0) {
			fprintf(stderr, "cache_prefork: fill: %s\n",
				shmstat_errstr(h));
			shmstat_unlink(name);
			return 2;
		}
	}
	/* One get of every key first, so that no run pays for setting the
	 * CLOCK bits (the first get of an entry writes its bit once). */
	size_t len;
	for (uint32_t i = 0; i < BK_N; i++)
		shmstat_cache_get(h, k.hit + (size_t)i * BK_KEYMAX, k.len[i], v,
				  sizeof(v), &len);
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 2;
	double g1 = run(h, &k, 1, 0, secs, sh), g2 = run(h, &k, 2, 0, secs, sh);
	double s1 = run(h, &k, 1, 1, secs, sh), s2 = run(h, &k, 2, 1, secs, sh);
	printf("cache gets/s: 1 process %.0f, 2 processes %.0f, ratio %.2f\n",
	       g1, g2, g2 / g1);
	printf("cache sets/s: 1 process %.0f, 2 processes %.0f, ratio %.2f\n",
	       s1, s2, s2 / s1);
	shmstat_close(&h);
	shmstat_unlink(name);
	return 0;
}
