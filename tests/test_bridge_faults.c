/*
 * test_bridge_faults.c — shmstat-bridge when things go wrong: Redis
 * restarted empty, restored from an older RDB, a wrong password, an
 * unreachable server, error replies (a key that is not an integer, OOM,
 * a flushed script cache), --tls-* options without rediss:// and an evicting maxmemory-policy.
 * Each time: clear log lines, the bridge keeps retrying, no crash, and
 * nothing lost once Redis is usable again.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

struct fx {
	struct ru_server r;
	struct tu_seg a;
	char log[256];
};

static const shmstat_options_t small = {
	.size = 4u << 20, .max_counters = 256, .max_workers = 16,
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	ru_start(&f->r);
	ru_path(&f->r, f->log, sizeof(f->log), "bridge.log");
	tu_seg_create(&f->a, "brf", &small);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	ru_destroy(&f->r);
	shmstat_close(&f->a.h);
	shmstat_unlink(f->a.name);
	free(f);
	return 0;
}

static void add(shmstat_t *h, const char *name, uint64_t n)
{
	assert_int_equal(shmstat_counter_add_by_name(h, name, n), 0);
}

static bool alive(pid_t pid)
{
	return kill(pid, 0) == 0 && tu_wait_nohang(pid) < 0;
}

static pid_t start(struct fx *f, const char *url)
{
	return ru_bridge(f->r.dir, f->a.name, url, f->log, "-i", "10ms",
			 "--command-timeout", "300ms", "--connect-timeout",
			 "300ms", "--backoff-max", "100ms", NULL);
}

static void redis_restarted_empty_is_exact_after_the_next_push(void **state)
{
	struct fx *f = *state;

	add(f->a.h, "a", 10);
	add(f->a.h, "b", 1);
	pid_t p = start(f, f->r.url);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "a"), 10);
	ru_restart(&f->r);
	add(f->a.h, "a", 5);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "a"), 15);
	assert_int_equal(ru_get(&f->r, "b"), 1);
	assert_true(ru_file_has(f->log, "lost pushes"));
	assert_int_equal(ru_bridge_stop(p), 0);
}

static void redis_restored_from_an_older_rdb_is_exact_after_the_next_push(
	void **state)
{
	struct fx *f = *state;

	add(f->a.h, "a", 10);
	pid_t p = start(f, f->r.url);
	assert_true(ru_wait_synced(f->a.h, 10000));
	redisReply *rep = ru_cmd(&f->r, "SAVE");
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STATUS);
	freeReplyObject(rep);
	add(f->a.h, "a", 5);
	add(f->a.h, "new", 2);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "a"), 15);
	/* Stop without saving: the RDB on disk is the older snapshot. */
	ru_stop(&f->r);
	add(f->a.h, "a", 1);
	ru_start(&f->r);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "a"), 16);
	assert_int_equal(ru_get(&f->r, "new"), 2);
	assert_true(ru_file_has(f->log, "lost pushes"));
	assert_int_equal(ru_bridge_stop(p), 0);
}

static void a_wrong_password_is_logged_without_it_and_retried(void **state)
{
	struct fx *f = *state;
	char url[300];

	ru_stop(&f->r);
	strcpy(f->r.password, "rightpw");
	ru_start(&f->r);
	snprintf(url, sizeof(url), "unix://:wr0ngsecret@%s", f->r.sock);
	add(f->a.h, "a", 7);
	pid_t p = start(f, url);
	assert_true(ru_wait_file_has(f->log, "WRONGPASS", 10000));
	shmstat_sync_status_t st;
	/* The log is written before the status: wait for the status. */
	for (int i = 0; i < 500; i++) {
		assert_int_equal(shmstat_sync_status_read(f->a.h, &st), 0);
		if (strstr(st.last_error, "AUTH"))
			break;
		ru_sleep_ms(10);
	}
	assert_int_equal(st.connected, 0);
	assert_non_null(strstr(st.last_error, "AUTH"));
	assert_true(alive(p));
	/* Redis learns the bridge's password: it gets in and pushes all. */
	redisReply *rep = ru_cmd(&f->r, "CONFIG SET requirepass wr0ngsecret");
	assert_non_null(rep);
	freeReplyObject(rep);
	strcpy(f->r.password, "wr0ngsecret");
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "a"), 7);
	assert_int_equal(ru_bridge_stop(p), 0);
	assert_false(ru_file_has(f->log, "wr0ngsecret"));
}

static void an_unreachable_redis_is_retried_until_it_comes(void **state)
{
	struct fx *f = *state;

	ru_stop(&f->r);
	add(f->a.h, "a", 3);
	pid_t p = start(f, f->r.url);
	assert_true(ru_wait_file_has(f->log, "cannot connect to Redis", 10000));
	shmstat_sync_status_t st;
	for (int i = 0; i < 500; i++) {
		assert_int_equal(shmstat_sync_status_read(f->a.h, &st), 0);
		if (st.pending == 1)
			break;
		ru_sleep_ms(10);
	}
	assert_int_equal(st.pending, 1);
	assert_int_equal(st.connected, 0);
	assert_true(alive(p));
	add(f->a.h, "a", 1);
	ru_start(&f->r);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "a"), 4);
	assert_int_equal(ru_bridge_stop(p), 0);

	/* A TCP address nobody listens on. */
	pid_t q = ru_bridge(f->r.dir, f->a.name, "redis://127.0.0.1:1/0",
			    f->log, "-i", "10ms", "--backoff-max", "50ms",
			    NULL);
	assert_true(ru_wait_file_has(f->log, "127.0.0.1:1/0", 10000));
	assert_true(alive(q));
	assert_int_equal(ru_bridge_stop(q), 0);
	/* --once that cannot push exits 5, not 1 (kept for options that
	 * are wrong): a cron job tells the two apart. */
	q = ru_bridge(f->r.dir, f->a.name, "redis://127.0.0.1:1/0", f->log,
		      "--once", "--connect-timeout", "1s", NULL);
	assert_int_equal(tu_wait(q, 15000), 5);
	/* An unknown option: one line pointing at --help, exit 1. */
	char out[4096];
	assert_int_equal(tu_sh(out, sizeof(out), "%s --bogus",
			       getenv("SHMSTAT_BRIDGE")),
			 1);
	assert_non_null(strstr(out, "unrecognized option"));
	assert_non_null(strstr(out, "see 'shmstat-bridge --help'"));
	assert_null(strstr(out, "--interval"));
}

static void error_replies_are_logged_and_nothing_is_lost(void **state)
{
	struct fx *f = *state;

	/* A key that is not an integer: that counter waits, others go. */
	redisReply *rep = ru_cmd(&f->r, "SET bad abc");
	assert_non_null(rep);
	freeReplyObject(rep);
	add(f->a.h, "bad", 4);
	add(f->a.h, "good", 6);
	pid_t p = start(f, f->r.url);
	assert_true(ru_wait_file_has(f->log, "key 'bad'", 10000));
	assert_true(ru_wait_file_has(f->log, "not an integer", 10000));
	for (int i = 0; i < 500 && ru_get(&f->r, "good") != 6; i++)
		ru_sleep_ms(10);
	assert_int_equal(ru_get(&f->r, "good"), 6);
	/* The refused key stays pending, its lag grows, and health is
	 * degraded naming it, while pushes succeed. */
	shmstat_sync_status_t st;
	for (int i = 0; i < 500; i++) {
		assert_int_equal(shmstat_sync_status_read(f->a.h, &st), 0);
		if (st.lag_ms >= 200 && st.refused_keys == 1)
			break;
		ru_sleep_ms(10);
	}
	assert_int_equal(st.pending, 1);
	assert_int_equal(st.refused_keys, 1);
	assert_string_equal(st.refused_key, "bad");
	assert_true(st.lag_ms >= 200);
	shmstat_health_t hs;
	assert_int_equal(shmstat_health(f->a.h, 0, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_DEGRADED);
	assert_non_null(strstr(hs.reason, "'bad'"));
	rep = ru_cmd(&f->r, "DEL bad");
	freeReplyObject(rep);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "bad"), 4);

	/* The script cache flushed: pushes go on (the feed script goes with
	 * EVAL); a reset's EVALSHA gets NOSCRIPT, and EVAL follows. */
	rep = ru_cmd(&f->r, "SCRIPT FLUSH");
	freeReplyObject(rep);
	add(f->a.h, "good", 1);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "good"), 7);
	char out[256];
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "reset",
				 "--global", "bad", NULL),
			 0);
	assert_true(ru_wait_file_has(f->log, "NOSCRIPT", 10000));
	assert_int_equal(ru_get(&f->r, "bad"), 0);

	/* Out of memory: every script call is refused, then accepted. */
	rep = ru_cmd(&f->r, "CONFIG SET maxmemory 1");
	freeReplyObject(rep);
	add(f->a.h, "good", 10);
	assert_true(ru_wait_file_has(f->log, "OOM", 10000));
	assert_true(alive(p));
	rep = ru_cmd(&f->r, "CONFIG SET maxmemory 0");
	freeReplyObject(rep);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "good"), 17);
	assert_int_equal(ru_bridge_stop(p), 0);
}

static void tls_options_without_rediss_are_refused_clearly(void **state)
{
	struct fx *f = *state;

	pid_t p = ru_bridge(f->r.dir, f->a.name, "redis://u:pw1234@h:6380/0",
			    f->log, "--tls-ca-file", "/nonexistent", NULL);
	assert_int_equal(tu_wait(p, 10000), 1);
	assert_true(ru_file_has(f->log, "--tls-* options need a rediss://"));
	assert_false(ru_file_has(f->log, "pw1234"));
}

static void an_evicting_maxmemory_policy_is_warned_about(void **state)
{
	struct fx *f = *state;

	redisReply *rep = ru_cmd(&f->r, "CONFIG SET maxmemory-policy allkeys-lru");
	freeReplyObject(rep);
	pid_t p = start(f, f->r.url);
	assert_true(ru_wait_file_has(f->log, "maxmemory-policy allkeys-lru",
				     10000));
	assert_true(ru_file_has(f->log, "noeviction"));
	assert_int_equal(ru_bridge_stop(p), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(redis_restarted_empty_is_exact_after_the_next_push),
		T(redis_restored_from_an_older_rdb_is_exact_after_the_next_push),
		T(a_wrong_password_is_logged_without_it_and_retried),
		T(an_unreachable_redis_is_retried_until_it_comes),
		T(error_replies_are_logged_and_nothing_is_lost),
		T(tls_options_without_rediss_are_refused_clearly),
		T(an_evicting_maxmemory_policy_is_warned_about),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
