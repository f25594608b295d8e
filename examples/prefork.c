/*
 * prefork — a prefork master and its workers counting filter decisions in
 * a shmstat segment, the way a gunicorn or PHP-FPM pool would.
 *
 * The master opens the segment and takes the counter handles before it
 * forks; each worker inherits them and, thanks to the library's fork
 * handler, counts into its own row. Each worker records M random decisions
 * (ml_confident / llm_fallback / rejected, plus total_samples), then the
 * master waits for them and prints the totals and the expected sum.
 *
 * With -d SECONDS each worker instead records decisions for that long, at
 * the pace of a busy web worker (batches with short pauses), so that a
 * live view has something to show; each worker reports how many it made
 * through memory the master shares with it, and the master checks the
 * counters against that.
 *
 * usage: prefork [-n SEGMENT] [-w WORKERS] [-m DECISIONS | -d SECONDS] [-c]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmstat.h"

static const char usage[] =
	"usage: prefork [-n SEGMENT] [-w WORKERS] [-m DECISIONS | -d SECONDS] [-c]\n"
	"\n"
	"Fork WORKERS processes (default 4) that each record DECISIONS random\n"
	"filter decisions (default 100000) in segment SEGMENT (default:\n"
	"$SHMSTAT_NAME, else 'default'), then print the totals.\n"
	"  -d SECONDS  record for that long instead, at a web worker's pace\n"
	"  -c          create the segment if it does not exist\n";

enum { TOTAL, ML_CONFIDENT, LLM_FALLBACK, REJECTED, NCOUNTERS };
static const char *const names[NCOUNTERS] = {
	"filter_stats:total_samples",
	"filter_stats:ml_confident",
	"filter_stats:llm_fallback",
	"filter_stats:rejected",
};

static long parse(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 100000000) {
		fprintf(stderr, "prefork: bad %s '%s'\n", what, s);
		exit(1);
	}
	return v;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One decision: 80% confident, 15% fall back to the LLM, 5% rejected. */
static void decide(shmstat_counter_t *c, unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	unsigned r = (*seed >> 16) % 100;
	int d = r < 80 ? ML_CONFIDENT : r < 95 ? LLM_FALLBACK : REJECTED;
	shmstat_counter_incr(c[d]);
	shmstat_counter_incr(c[TOTAL]);
}

/* What one worker does with its inherited handles; returns how many. */
static long worker(shmstat_counter_t *c, long decisions, double seconds,
		   unsigned seed)
{
	if (seconds <= 0) {
		for (long i = 0; i < decisions; i++)
			decide(c, &seed);
		return decisions;
	}
	long n = 0;
	double end = now_s() + seconds;
	struct timespec pause = { 0, 200000 }; /* "waiting for the client" */
	while (now_s() < end) {
		for (int i = 0; i < 100; i++, n++)
			decide(c, &seed);
		nanosleep(&pause, NULL);
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *seg = getenv("SHMSTAT_NAME");
	long workers = 4, decisions = 100000;
	double seconds = 0;
	shmstat_options_t o = { 0 };
	int opt;

	if (!seg || !*seg)
		seg = "default";
	while ((opt = getopt(argc, argv, "n:w:m:d:ch")) != -1) {
		switch (opt) {
		case 'n':
			seg = optarg;
			break;
		case 'w':
			workers = parse(optarg, "worker count");
			break;
		case 'm':
			decisions = parse(optarg, "decision count");
			break;
		case 'd':
			seconds = (double)parse(optarg, "duration");
			if (seconds > 3600) {
				fputs("prefork: -d is at most 3600\n", stderr);
				return 1;
			}
			break;
		case 'c':
			o.flags |= SHMSTAT_O_CREATE;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 1;
		}
	}
	if (optind != argc || workers > 1024) {
		fputs(usage, stderr);
		return 1;
	}
	/* Each worker's count of decisions, shared with the master. */
	long *done = mmap(NULL, (size_t)workers * sizeof(long),
			  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (done == MAP_FAILED) {
		perror("prefork: mmap");
		return 1;
	}

	shmstat_t *h;
	if (shmstat_open(seg, &o, &h) < 0) {
		fprintf(stderr, "prefork: %s\n", shmstat_errstr(NULL));
		return 2;
	}
	shmstat_counter_t c[NCOUNTERS];
	int64_t before[NCOUNTERS];
	for (int i = 0; i < NCOUNTERS; i++) {
		if (shmstat_counter_open(h, names[i], &c[i]) < 0 ||
		    shmstat_counter_read(h, c[i], &before[i]) < 0) {
			fprintf(stderr, "prefork: %s: %s\n", names[i],
				shmstat_errstr(h));
			return 1;
		}
	}

	if (seconds > 0)
		printf("master %d: forking %ld workers, deciding for %.0f s, "
		       "into segment '%s'\n",
		       (int)getpid(), workers, seconds, seg);
	else
		printf("master %d: forking %ld workers x %ld decisions into "
		       "segment '%s'\n",
		       (int)getpid(), workers, decisions, seg);
	fflush(stdout);
	for (long w = 0; w < workers; w++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("prefork: fork");
			return 1;
		}
		if (pid == 0) {
			done[w] = worker(c, decisions, seconds, (unsigned)getpid());
			shmstat_close(&h);
			_exit(0);
		}
	}
	int failed = 0;
	for (long w = 0; w < workers; w++) {
		int st;
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}

	int64_t now[NCOUNTERS];
	for (int i = 0; i < NCOUNTERS; i++)
		shmstat_counter_read(h, c[i], &now[i]);
	printf("%-30s %12s %12s\n", "counter", "this run", "value");
	for (int i = 0; i < NCOUNTERS; i++)
		printf("%-30s %12" PRId64 " %12" PRId64 "\n", names[i],
		       now[i] - before[i], now[i]);
	int64_t run = now[TOTAL] - before[TOTAL];
	int64_t parts = (now[ML_CONFIDENT] - before[ML_CONFIDENT]) +
			(now[LLM_FALLBACK] - before[LLM_FALLBACK]) +
			(now[REJECTED] - before[REJECTED]);
	long expected = 0;
	for (long w = 0; w < workers; w++)
		expected += done[w];
	int ok = !failed && run == expected && parts == run;
	printf("workers recorded %ld samples: %s\n", expected,
	       ok ? "exact" : "MISMATCH");
	shmstat_close(&h);
	return ok ? 0 : 1;
}
