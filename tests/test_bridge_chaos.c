/*
 * test_bridge_chaos.c — bounded chaos: three segments on this one host
 * (three sources, no --host-id), a worker on each, while the test SIGKILLs
 * and restarts the three bridges 20 times at random moments, restarts
 * Redis empty, stops and starts it, and SIGSTOPs it for longer than the
 * command timeout. At the end every key equals the sum of the increments
 * of all three segments, and each segment reads that sum back.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

#define NSEG 3
#define WORKERS NSEG /* one per segment */
#define NAMES 8
#define MAX_ADDS 20000000u /* per worker: a bound if the test stalls */

struct shared {
	volatile int stop;
	uint64_t count[WORKERS][NAMES]; /* each row written by its worker */
};

static void worker(const char *seg, struct shared *sh, int w)
{
	shmstat_t *h;
	shmstat_counter_t c[NAMES];
	char name[32];

	if (shmstat_open(seg, NULL, &h) < 0)
		_exit(1);
	for (int i = 0; i < NAMES; i++) {
		snprintf(name, sizeof(name), "chaos:%d", i);
		if (shmstat_counter_open(h, name, &c[i]) < 0)
			_exit(2);
	}
	unsigned seed = (unsigned)getpid();
	for (uint32_t n = 0; n < MAX_ADDS && !sh->stop; n++) {
		int i = (int)(rand_r(&seed) % NAMES);
		shmstat_counter_add(c[i], 1);
		__atomic_store_n(&sh->count[w][i], sh->count[w][i] + 1,
				 __ATOMIC_RELAXED);
		if (n % 512 == 0)
			ru_sleep_ms(1); /* leave the 2 cores to the others */
	}
	shmstat_close(&h);
	_exit(0);
}

static pid_t bridge(struct ru_server *r, const char *seg, const char *log)
{
	return ru_bridge(r->dir, seg, r->url, log, "-i", "20ms",
			 "--command-timeout", "200ms", "--connect-timeout",
			 "200ms", "--backoff-max", "100ms", "-q", NULL);
}

static void every_key_is_exact_after_kills_restarts_and_a_hang(void **state)
{
	struct ru_server r = { 0 };
	struct tu_seg s[NSEG];
	char log[256];
	pid_t b[NSEG];
	shmstat_options_t o = { .size = 4u << 20, .max_counters = 64,
				.max_workers = 16 };
	(void)state;

	ru_start(&r);
	ru_path(&r, log, sizeof(log), "bridge.log");
	for (int k = 0; k < NSEG; k++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "chaos%d", k);
		tu_seg_create(&s[k], tag, &o);
	}
	struct shared *sh = tu_shared(sizeof(*sh));
	pid_t wp[WORKERS];
	for (int w = 0; w < WORKERS; w++) {
		wp[w] = fork();
		assert_true(wp[w] >= 0);
		if (wp[w] == 0)
			worker(s[w].name, sh, w);
	}
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	printf("# chaos seed %u\n", seed);
	for (int k = 0; k < NSEG; k++)
		b[k] = bridge(&r, s[k].name, log);
	for (int round = 0; round < 20; round++) {
		ru_sleep_ms(20 + (int)(rand_r(&seed) % 100));
		for (int k = 0; k < NSEG; k++) {
			kill(b[k], SIGKILL);
			assert_int_equal(tu_wait(b[k], 10000), 128 + SIGKILL);
		}
		switch (round) {
		case 5: /* Redis restarted empty, no bridge running. */
			ru_restart(&r);
			break;
		case 10: /* Redis stopped a while, bridges come up first. */
			ru_stop(&r);
			for (int k = 0; k < NSEG; k++)
				b[k] = bridge(&r, s[k].name, log);
			ru_sleep_ms(150);
			ru_start(&r);
			continue;
		case 15: /* Redis hangs longer than the command timeout. */
			for (int k = 0; k < NSEG; k++)
				b[k] = bridge(&r, s[k].name, log);
			ru_sleep_ms(60);
			ru_pause(&r);
			ru_sleep_ms(600);
			ru_resume(&r);
			continue;
		}
		for (int k = 0; k < NSEG; k++)
			b[k] = bridge(&r, s[k].name, log);
	}
	sh->stop = 1;
	for (int w = 0; w < WORKERS; w++)
		assert_int_equal(tu_wait(wp[w], 30000), 0);
	/* Twice round: each has pushed its last counts, then read the
	 * others'. */
	for (int pass = 0; pass < 2; pass++)
		for (int k = 0; k < NSEG; k++)
			assert_true(ru_wait_synced(s[k].h, 30000));

	for (int i = 0; i < NAMES; i++) {
		char name[32];
		uint64_t want = 0;
		for (int w = 0; w < WORKERS; w++)
			want += sh->count[w][i];
		snprintf(name, sizeof(name), "chaos:%d", i);
		uint64_t local = 0;
		for (int k = 0; k < NSEG; k++) {
			shmstat_stat_t st;
			assert_int_equal(shmstat_stat_read(s[k].h, name, &st), 0);
			assert_int_equal(st.total, sh->count[k][i]);
			assert_int_equal(st.global, (int64_t)want);
			local += st.total;
		}
		assert_int_equal(local, want);
		assert_int_equal(ru_get(&r, name), (long long)want);
		assert_true(want > 0);
	}
	for (int k = 0; k < NSEG; k++)
		assert_int_equal(ru_bridge_stop(b[k]), 0);
	tu_shared_free(sh, sizeof(*sh));
	ru_destroy(&r);
	for (int k = 0; k < NSEG; k++) {
		shmstat_close(&s[k].h);
		shmstat_unlink(s[k].name);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			every_key_is_exact_after_kills_restarts_and_a_hang),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
