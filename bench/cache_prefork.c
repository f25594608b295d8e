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
 * A machine shared with other jobs gives a single pair of runs a ratio
 * anywhere from 1.3 to 2.2 (a neighbour's burst lands in one run of the
 * pair and not the other). So it measures in rounds: each round runs
 * both counts back to back, in the order 1, 2 in odd rounds and 2, 1 in
 * even ones (a drift over the run favours neither), and the ratio of a
 * round is of its own two runs. It prints every round's ratio, then the
 * median over the rounds of each rate and of the ratio.
 *
 * usage: cache_prefork [-t SECONDS_PER_RUN] [-r ROUNDS]
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

#define MAX_ROUNDS 99

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

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double s[MAX_ROUNDS];

	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* Rounds of (1 process, 2 processes) runs of gets or sets; prints each
 * round's ratio and the medians. */
static void measure(shmstat_t *h, const struct bench_keys *k, int sets,
		    double secs, int rounds, struct shared *sh)
{
	double one[MAX_ROUNDS], two[MAX_ROUNDS], ratio[MAX_ROUNDS];
	const char *what = sets ? "sets" : "gets";

	printf("cache %s, ratio per round:", what);
	for (int r = 0; r < rounds; r++) {
		if (r % 2 == 0) {
			one[r] = run(h, k, 1, sets, secs, sh);
			two[r] = run(h, k, 2, sets, secs, sh);
		} else {
			two[r] = run(h, k, 2, sets, secs, sh);
			one[r] = run(h, k, 1, sets, secs, sh);
		}
		ratio[r] = two[r] / one[r];
		printf(" %.2f", ratio[r]);
		fflush(stdout);
	}
	printf("\ncache %s/s: 1 process %.0f, 2 processes %.0f, ratio %.2f "
	       "(medians of %d rounds)\n",
	       what, median(one, rounds), median(two, rounds),
	       median(ratio, rounds), rounds);
}

static const char usage[] =
	"usage: cache_prefork [-t SECONDS_PER_RUN] [-r ROUNDS]\n"
	"  -t  seconds of each run, 0.1 to 60 (default 2)\n"
	"  -r  rounds of a 1-process and a 2-process run, for gets and\n"
	"      for sets, 1 to 99 (default 5)\n";

int main(int argc, char **argv)
{
	double secs = 2.0;
	int c, rounds = 5;
	char *end;
	while ((c = getopt(argc, argv, "t:r:h")) != -1) {
		if (c == 't') {
			secs = strtod(optarg, &end);
			if (*end || !(secs >= 0.1 && secs <= 60)) {
				fprintf(stderr, "cache_prefork: -t %s: seconds "
					"are 0.1 to 60\n", optarg);
				return 1;
			}
		} else if (c == 'r') {
			long r = strtol(optarg, &end, 10);
			if (*end || r < 1 || r > MAX_ROUNDS) {
				fprintf(stderr, "cache_prefork: -r %s: rounds "
					"are 1 to %d\n", optarg, MAX_ROUNDS);
				return 1;
			}
			rounds = (int)r;
		} else {
			fputs(usage, c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 1;
		}
	}
	if (optind < argc) {
		fputs(usage, stderr);
		return 1;
	}
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
	measure(h, &k, 0, secs, rounds, sh);
	measure(h, &k, 1, secs, rounds, sh);
	shmstat_close(&h);
	shmstat_unlink(name);
	return 0;
}
