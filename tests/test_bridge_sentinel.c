/*
 * test_bridge_sentinel.c — shmstat-bridge with redis+sentinel:// against
 * a real master, a replica and three redis-sentinel processes on loopback
 * ports (free ports picked at start; every process dies with the test).
 * The master, the replica and the sentinels all require a password (the
 * sentinels' through $REDIS_SENTINEL_PASSWORD). Under load (counters
 * incremented all along), the master is killed with SIGKILL; the
 * sentinels promote the replica (down-after-milliseconds 500); the same
 * bridge, never restarted, follows it and every key is exact. The time
 * from the kill to the bridge's first connection to the new master is
 * printed. A bridge pointed at the replica itself is refused (ROLE). And
 * without Sentinel: a master turned replica under a running bridge
 * (READONLY) is left, refused while it is a replica, and pushed to again
 * once it is a master.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

#define NCOUNTERS 10
#define MPW "m-pw/?#@% x"
#define SPW "s-pw"

struct fx {
	char dir[128];
	struct ru_server m, r;
	int mport, rport, sport[3];
	char mps[16], rps[16];
	const char *mextra[8], *rextra[12];
	pid_t sent[3];
	struct tu_seg a;
	char log[300];
};

static const shmstat_options_t small = {
	.size = 4u << 20, .max_counters = 64, .max_workers = 8,
};

static redisReply *scmd(int port, const char *fmt, const char *arg)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	redisReply *a = redisCommand(c, "AUTH %s", SPW);
	if (a)
		freeReplyObject(a);
	redisReply *rep = redisCommand(c, fmt, arg);
	redisFree(c);
	return rep;
}

/* Does every sentinel know the replica and the two other sentinels? */
static bool sentinels_ready(struct fx *f)
{
	for (int i = 0; i < 3; i++) {
		redisReply *r = scmd(f->sport[i], "SENTINEL replicas %s", "mm");
		bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
		if (r)
			freeReplyObject(r);
		r = scmd(f->sport[i], "SENTINEL sentinels %s", "mm");
		ok = ok && r && r->type == REDIS_REPLY_ARRAY && r->elements == 2;
		if (r)
			freeReplyObject(r);
		if (!ok)
			return false;
	}
	return true;
}

static void start_sentinel(struct fx *f, int i)
{
	char conf[300], log[300];

	f->sport[i] = ru_free_port();
	snprintf(conf, sizeof(conf), "%s/sentinel%d.conf", f->dir, i);
	snprintf(log, sizeof(log), "%s/sentinel%d.log", f->dir, i);
	FILE *c = fopen(conf, "w");
	assert_non_null(c);
	fprintf(c,
		"port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
		"requirepass %s\nsentinel sentinel-pass %s\n"
		"sentinel monitor mm 127.0.0.1 %d 2\n"
		"sentinel auth-pass mm \"%s\"\n"
		"sentinel down-after-milliseconds mm 500\n"
		"sentinel failover-timeout mm 5000\n"
		"sentinel parallel-syncs mm 1\n",
		f->sport[i], f->dir, SPW, SPW, f->mport, MPW);
	fclose(c);
	const char *argv[] = { "redis-sentinel", conf, NULL };
	f->sent[i] = ru_spawn(log, argv);
	assert_true(ru_wait_port(f->sport[i], 5000));
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/shmstat-sentinel-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->log, sizeof(f->log), "%s/bridge.log", f->dir);

	f->mport = ru_free_port();
	snprintf(f->mps, sizeof(f->mps), "%d", f->mport);
	const char *me[] = { "--port", f->mps, "--masterauth", MPW, NULL };
	memcpy(f->mextra, me, sizeof(me));
	f->m.extra = f->mextra;
	snprintf(f->m.password, sizeof(f->m.password), "%s", MPW);
	ru_start(&f->m);

	f->rport = ru_free_port();
	snprintf(f->rps, sizeof(f->rps), "%d", f->rport);
	const char *re[] = { "--port", f->rps, "--replicaof", "127.0.0.1",
			     f->mps, "--masterauth", MPW, NULL };
	memcpy(f->rextra, re, sizeof(re));
	f->r.extra = f->rextra;
	snprintf(f->r.password, sizeof(f->r.password), "%s", MPW);
	ru_start(&f->r);

	for (int i = 0; i < 3; i++)
		start_sentinel(f, i);
	uint64_t deadline = ru_mono_ms() + 20000;
	while (!sentinels_ready(f)) {
		if (ru_mono_ms() > deadline)
			fail_msg("the sentinels did not find each other and "
				 "the replica within 20 s (see %s)",
				 f->dir);
		ru_sleep_ms(100);
	}
	tu_seg_create(&f->a, "snt", &small);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char out[256];

	for (int i = 0; i < 3; i++)
		ru_kill(f->sent[i]);
	ru_destroy(&f->m);
	ru_destroy(&f->r);
	shmstat_close(&f->a.h);
	shmstat_unlink(f->a.name);
	if (!getenv("KEEP"))
		tu_sh(out, sizeof(out), "rm -rf %s", f->dir);
	free(f);
	return 0;
}

static void bump(struct fx *f, unsigned round)
{
	char name[16];

	snprintf(name, sizeof(name), "c%u", round % NCOUNTERS);
	assert_int_equal(shmstat_counter_add_by_name(f->a.h, name,
						     1 + round % 7),
			 0);
}

static void a_failover_is_followed_without_a_restart_and_loses_nothing(
	void **state)
{
	struct fx *f = *state;
	char url[300], newmaster[64];
	unsigned round = 0;

	/* Pointed at the replica directly: refused, not "connected". */
	snprintf(url, sizeof(url), "redis://:m-pw%%2F%%3F%%23%%40%%25%%20x@"
		 "127.0.0.1:%d/0", f->rport);
	pid_t q = ru_bridge(f->dir, f->a.name, url, f->log, "--once", NULL);
	assert_int_equal(tu_wait(q, 15000), 5);
	snprintf(newmaster, sizeof(newmaster), "is a replica of 127.0.0.1:%d",
		 f->mport);
	assert_true(ru_file_has(f->log, newmaster));
	assert_true(ru_file_has(f->log, "use redis+sentinel://"));
	assert_false(ru_file_has(f->log, "m-pw"));

	/* Sentinels with a wrong sentinel password: refused, no password
	 * in the log. */
	snprintf(url, sizeof(url),
		 "redis+sentinel://:m-pw%%2F%%3F%%23%%40%%25%%20x@127.0.0.1:%d/mm",
		 f->sport[0]);
	setenv("REDIS_SENTINEL_PASSWORD", "wrong-sentinel-pw", 1);
	q = ru_bridge(f->dir, f->a.name, url, f->log, "--once", NULL);
	unsetenv("REDIS_SENTINEL_PASSWORD");
	assert_int_equal(tu_wait(q, 15000), 5);
	assert_true(ru_file_has(f->log, "named master 'mm' (last: AUTH failed"));
	assert_false(ru_file_has(f->log, "wrong-sentinel-pw"));
	assert_false(ru_file_has(f->log, "m-pw"));

	snprintf(url, sizeof(url),
		 "redis+sentinel://:m-pw%%2F%%3F%%23%%40%%25%%20x@127.0.0.1:%d,"
		 "127.0.0.1:%d,127.0.0.1:%d/mm",
		 f->sport[0], f->sport[1], f->sport[2]);
	setenv("REDIS_SENTINEL_PASSWORD", SPW, 1);
	pid_t p = ru_bridge(f->dir, f->a.name, url, f->log, "-i", "50ms",
			    "--backoff-max", "200ms", "--connect-timeout",
			    "500ms", "--command-timeout", "500ms", NULL);
	unsetenv("REDIS_SENTINEL_PASSWORD");
	for (; round < 200; round++)
		bump(f, round);
	assert_true(ru_wait_synced(f->a.h, 15000));
	assert_true(ru_file_has(f->log, "(master at 127.0.0.1:"));
	assert_true(ru_get(&f->m, "c0") > 0);

	/* Under load: the master dies. */
	uint64_t t0 = ru_mono_ms();
	ru_kill(f->m.pid);
	f->m.pid = 0;
	snprintf(newmaster, sizeof(newmaster), "(master at 127.0.0.1:%d)",
		 f->rport);
	uint64_t deadline = t0 + 30000, t_conn = 0;
	while (ru_mono_ms() < deadline) {
		bump(f, round++);
		if (ru_file_has(f->log, newmaster)) {
			t_conn = ru_mono_ms();
			break;
		}
		ru_sleep_ms(5);
	}
	assert_true(t_conn != 0);
	for (unsigned k = 0; k < 200; k++)
		bump(f, round++);
	assert_true(ru_wait_synced(f->a.h, 15000));
	uint64_t t_sync = ru_mono_ms();
	assert_int_equal(tu_wait_nohang(p), -1); /* the same bridge */
	for (int i = 0; i < NCOUNTERS; i++) {
		char name[16];
		int64_t v = 0;
		shmstat_counter_t c;
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(shmstat_counter_open(f->a.h, name, &c), 0);
		assert_int_equal(shmstat_counter_read(f->a.h, c, &v), 0);
		assert_int_equal(ru_get(&f->r, name), (long long)v);
	}
	printf("failover: kill -9 of the master to the bridge connected to "
	       "the promoted replica %llu ms, to every key exact %llu ms "
	       "(%u increments)\n",
	       (unsigned long long)(t_conn - t0),
	       (unsigned long long)(t_sync - t0), round);
	assert_int_equal(ru_bridge_stop(p), 0);
}

/* Without Sentinel: the master the bridge talks to is made a replica
 * (REPLICAOF). The next push gets READONLY: the bridge drops the
 * connection, refuses the replica at reconnect (ROLE), says so, and
 * pushes again once the server is a master again; nothing lost. */
static void a_master_turned_replica_is_left_and_rejoined(void **state)
{
	struct ru_server m = { 0 }, o = { 0 };
	struct tu_seg a;
	char mp[16], op[16], url[128], log[300], want[96];
	(void)state;

	int mport = ru_free_port(), oport = ru_free_port();
	snprintf(mp, sizeof(mp), "%d", mport);
	snprintf(op, sizeof(op), "%d", oport);
	const char *me[] = { "--port", mp, NULL };
	const char *oe[] = { "--port", op, NULL };
	m.extra = me;
	o.extra = oe;
	ru_start(&m);
	ru_start(&o);
	ru_path(&m, log, sizeof(log), "bridge.log");
	tu_seg_create(&a, "ro", &small);
	assert_int_equal(shmstat_counter_add_by_name(a.h, "c", 5), 0);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", mport);
	pid_t p = ru_bridge(m.dir, a.name, url, log, "-i", "50ms",
			    "--backoff-max", "200ms", NULL);
	assert_true(ru_wait_synced(a.h, 15000));
	assert_int_equal(ru_get(&m, "c"), 5);

	redisReply *r = ru_cmd(&m, "REPLICAOF 127.0.0.1 %s", op);
	assert_non_null(r);
	freeReplyObject(r);
	assert_int_equal(shmstat_counter_add_by_name(a.h, "c", 2), 0);
	assert_true(ru_wait_file_has(log, "refuses writes (READONLY", 15000));
	snprintf(want, sizeof(want), "is a replica of 127.0.0.1:%d", oport);
	assert_true(ru_wait_file_has(log, want, 15000));

	r = ru_cmd(&m, "REPLICAOF NO ONE");
	assert_non_null(r);
	freeReplyObject(r);
	assert_true(ru_wait_synced(a.h, 15000));
	/* Its data came from the other (empty) server, then this source
	 * pushed its full total again. */
	assert_int_equal(ru_get(&m, "c"), 7);
	assert_int_equal(ru_bridge_stop(p), 0);
	shmstat_close(&a.h);
	shmstat_unlink(a.name);
	ru_destroy(&m);
	ru_destroy(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_master_turned_replica_is_left_and_rejoined),
		cmocka_unit_test_setup_teardown(
			a_failover_is_followed_without_a_restart_and_loses_nothing,
			setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
