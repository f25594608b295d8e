/*
 * test_bridge_chaos.c — bounded chaos: 4 workers increment while the test
 * SIGKILLs and restarts the bridge 20 times at random moments, restarts
 * Redis empty, stops and starts it, and SIGSTOPs it for longer than the
 * command timeout. At the end every key equals the sum of the increments.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

#define WORKERS 4
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
	struct tu_seg s;
	char log[256];
	shmstat_options_t o = { .size = 4u << 20, .max_counters = 64,
				.max_workers = 16 };
	(void)state;

	ru_start(&r);
	ru_path(&r, log, sizeof(log), "bridge.log");
	tu_seg_create(&s, "chaos", &o);
	struct shared *sh = tu_shared(sizeof(*sh));
	pid_t wp[WORKERS];
	for (int w = 0; w < WORKERS; w++) {
		wp[w] = fork();
		assert_true(wp[w] >= 0);
		if (wp[w] == 0)
			worker(s.name, sh, w);
	}
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	printf("# chaos seed %u\n", seed);
	pid_t b = bridge(&r, s.name, log);
	for (int round = 0; round < 20; round++) {
		ru_sleep_ms(20 + (int)(rand_r(&seed) % 100));
		kill(b, SIGKILL);
		assert_int_equal(tu_wait(b, 10000), 128 + SIGKILL);
		switch (round) {
		case 5: /* Redis restarted empty, no bridge running. */
			ru_restart(&r);
			break;
		case 10: /* Redis stopped a while, bridge comes up first. */
			ru_stop(&r);
			b = bridge(&r, s.name, log);
			ru_sleep_ms(150);
			ru_start(&r);
			continue;
		case 15: /* Redis hangs longer than the command timeout. */
			b = bridge(&r, s.name, log);
			ru_sleep_ms(60);
			ru_pause(&r);
			ru_sleep_ms(600);
			ru_resume(&r);
			continue;
		}
		b = bridge(&r, s.name, log);
	}
	sh->stop = 1;
	for (int w = 0; w < WORKERS; w++)
		assert_int_equal(tu_wait(wp[w], 30000), 0);
	assert_true(ru_wait_synced(s.h, 30000));

	for (int i = 0; i < NAMES; i++) {
		char name[32];
		uint64_t want = 0;
		for (int w = 0; w < WORKERS; w++)
			want += sh->count[w][i];
		snprintf(name, sizeof(name), "chaos:%d", i);
		shmstat_stat_t st;
		assert_int_equal(shmstat_stat_read(s.h, name, &st), 0);
		assert_int_equal(st.total, want);
		assert_int_equal(ru_get(&r, name), (long long)want);
		assert_int_equal(st.global, (int64_t)want);
		assert_true(want > 0);
	}
	assert_int_equal(ru_bridge_stop(b), 0);
	tu_shared_free(sh, sizeof(*sh));
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			every_key_is_exact_after_kills_restarts_and_a_hang),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
