/*
 * prefork-bench — aggregate increments per second with 1, 2, ... forked
 * processes, and the ratio to one process.
 *
 * Each process increments one shared counter through its own handle
 * (striped: its own row), OPS times. For contrast the same run measures a
 * single shared atomic cell (what a naive shared-memory counter does): its
 * cache line bounces between the cores. Then threads of one process
 * sharing one handle: the first to count owns the row (plain adds), the
 * others add atomically into the handle's second row.
 *
 * usage: prefork-bench [-p MAXPROCS] [-o OPS]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmstat.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct shared {
	_Atomic int ready;
	_Atomic int go;
	_Atomic uint64_t cell; /* the naive shared counter */
	char pad[64];
};

/* Run n processes doing ops increments each; returns seconds. */
static double run(const char *seg, int n, long ops, int striped,
		  struct shared *sh)
{
	pid_t pids[64];
	shmstat_t *h;
	shmstat_counter_t c;

	if (shmstat_open(seg, NULL, &h) < 0 ||
	    shmstat_counter_open(h, "bench:prefork", &c) < 0) {
		fprintf(stderr, "prefork-bench: %s\n", shmstat_errstr(NULL));
		exit(2);
	}
	atomic_store(&sh->ready, 0);
	atomic_store(&sh->go, 0);
	for (int p = 0; p < n; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			atomic_fetch_add(&sh->ready, 1);
			while (!atomic_load_explicit(&sh->go, memory_order_acquire))
				;
			if (striped)
				for (long i = 0; i < ops; i++)
					shmstat_counter_add(c, 1);
			else
				for (long i = 0; i < ops; i++)
					atomic_fetch_add_explicit(
						&sh->cell, 1,
						memory_order_relaxed);
			_exit(0);
		}
	}
	while (atomic_load(&sh->ready) < n)
		;
	double t0 = now();
	atomic_store_explicit(&sh->go, 1, memory_order_release);
	for (int p = 0; p < n; p++)
		waitpid(pids[p], NULL, 0);
	double t = now() - t0;
	shmstat_close(&h);
	return t;
}

struct thr {
	shmstat_counter_t c;
	long ops;
	_Atomic int *go;
};

static void *thr_run(void *arg)
{
	struct thr *t = arg;
	while (!atomic_load_explicit(t->go, memory_order_acquire))
		;
	for (long i = 0; i < t->ops; i++)
		shmstat_counter_add(t->c, 1);
	return NULL;
}

/* n threads of this process sharing one fresh handle; returns seconds. */
static double run_threads(const char *seg, int n, long ops)
{
	pthread_t t[64];
	_Atomic int go = 0;
	shmstat_t *h;
	struct thr a;

	if (shmstat_open(seg, NULL, &h) < 0 ||
	    shmstat_counter_open(h, "bench:prefork", &a.c) < 0) {
		fprintf(stderr, "prefork-bench: %s\n", shmstat_errstr(NULL));
		exit(2);
	}
	a.ops = ops;
	a.go = &go;
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, thr_run, &a);
	double t0 = now();
	atomic_store_explicit(&go, 1, memory_order_release);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	double el = now() - t0;
	shmstat_close(&h);
	return el;
}

int main(int argc, char **argv)
{
	int maxp = (int)sysconf(_SC_NPROCESSORS_ONLN);
	long ops = 200000000;
	int opt;

	while ((opt = getopt(argc, argv, "p:o:h")) != -1) {
		switch (opt) {
		case 'p':
			maxp = atoi(optarg);
			break;
		case 'o':
			ops = atol(optarg);
			break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"usage: prefork-bench [-p MAXPROCS] [-o OPS]\n"
				"Aggregate increments/s with 1..MAXPROCS "
				"processes (default: online CPUs), OPS each "
				"(default 200000000).\n");
			return opt == 'h' ? 0 : 1;
		}
	}
	if (maxp < 1 || maxp > 64 || ops < 1) {
		fprintf(stderr, "prefork-bench: bad -p or -o\n");
		return 1;
	}
	char seg[64];
	snprintf(seg, sizeof(seg), "prefork-bench-%d", (int)getpid());
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL };
	shmstat_t *h;
	if (shmstat_open(seg, &o, &h) < 0) {
		fprintf(stderr, "prefork-bench: %s\n", shmstat_errstr(NULL));
		return 2;
	}
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 2;

	printf("%-22s %6s %16s %8s\n", "mode", "n", "increments/s",
	       "ratio");
	for (int striped = 1; striped >= 0; striped--) {
		double one = 0;
		for (int n = 1; n <= maxp; n++) {
			double t = run(seg, n, ops, striped, sh);
			double rate = (double)n * (double)ops / t;
			if (n == 1)
				one = rate;
			printf("%-22s %6d %16.0f %8.2f\n",
			       striped ? "shmstat (own row)"
				       : "one shared atomic",
			       n, rate, rate / one);
			fflush(stdout);
		}
	}
	double one = 0;
	for (int n = 1; n <= maxp; n++) {
		double t = run_threads(seg, n, ops);
		double rate = (double)n * (double)ops / t;
		if (n == 1)
			one = rate;
		printf("%-22s %6d %16.0f %8.2f\n", "threads (one handle)", n,
		       rate, rate / one);
		fflush(stdout);
	}
	shmstat_stat_t st;
	shmstat_stat_read(h, "bench:prefork", &st);
	long long want = 0;
	for (int n = 1; n <= maxp; n++)
		want += 2LL * n * ops; /* processes, then threads */
	printf("counter total %lld, expected %lld: %s\n", (long long)st.value,
	       want, st.value == want ? "exact" : "MISMATCH");
	shmstat_close(&h);
	shmstat_unlink(seg);
	return st.value == want ? 0 : 1;
}
