/*
 * test_bridge_push.c — the push protocol of shmstat-bridge (bridge/push.c,
 * run in process) against a real redis-server: only counters Redis has
 * not acknowledged are sent (checked with MONITOR), the global values of
 * the others follow other hosts' pushes at the next push, a Redis
 * restarted empty gets every counter back within one push, a global reset
 * run by another host reaches counters this host does not send, a late
 * call with a lower fence changes nothing, and an ACL without MGET still
 * refreshes the global values.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge_i.h"
#include "redisutil.h"
#include "testutil.h"

#define NCOLD 50

struct host {
	struct tu_seg s;
	struct bconf cf;
	struct bridge b;
};

struct fx {
	struct ru_server r;
	struct host a, b;
};

static const shmstat_options_t small = {
	.size = 4u << 20, .max_counters = 256, .max_workers = 16,
};

static void host_init(struct fx *f, struct host *x, const char *tag,
		      const char *hex)
{
	tu_seg_create(&x->s, tag, &small);
	redis_conf_init(&x->cf.redis);
	snprintf(x->cf.redis.path, sizeof(x->cf.redis.path), "%s", f->r.sock);
	snprintf(x->cf.addr, sizeof(x->cf.addr), "%s", f->r.url);
	x->cf.key_prefix = "";
	x->cf.meta_prefix = "_shmstat:";
	x->cf.interval_ms = 1000;
	x->cf.connect_timeout_ms = x->cf.command_timeout_ms = 5000;
	x->cf.owner_ttl_ms = 60000;
	x->b.cf = &x->cf;
	x->b.h = x->s.h;
	x->b.max_counters = small.max_counters;
	x->b.st = calloc(small.max_counters, sizeof(*x->b.st));
	assert_non_null(x->b.st);
	snprintf(x->b.host_hex, sizeof(x->b.host_hex), "%016llx",
		 strtoull(hex, NULL, 16));
	snprintf(x->b.host_name, sizeof(x->b.host_name), "%s", tag);
	snprintf(x->b.token, sizeof(x->b.token), "tok-%s", hex);
}

static void host_fini(struct host *x)
{
	conn_close(&x->b);
	free(x->b.st);
	shmstat_close(&x->s.h);
	shmstat_unlink(x->s.name);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	signal(SIGPIPE, SIG_IGN); /* hiredis writes with plain write() */
	log_level = SHMSTAT_LOG_ERROR;
	ru_start(&f->r);
	host_init(f, &f->a, "pua", "a1");
	host_init(f, &f->b, "pub", "b2");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	host_fini(&f->a);
	host_fini(&f->b);
	ru_destroy(&f->r);
	free(f);
	return 0;
}

static void add(struct host *x, const char *name, uint64_t n)
{
	assert_int_equal(shmstat_counter_add_by_name(x->s.h, name, n), 0);
}

/* One push; connects first when needed. */
static void push(struct host *x)
{
	if (!x->b.rc)
		assert_int_equal(conn_open(&x->b), 0);
	assert_int_equal(push_all(&x->b), 0);
	assert_int_equal(x->b.status.pending, 0);
}

static int64_t global_of(struct host *x, const char *name)
{
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(x->s.h, name, &st), 0);
	assert_true(st.global_ns != 0);
	return st.global;
}

static uint64_t total_of(struct host *x, const char *name)
{
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(x->s.h, name, &st), 0);
	return st.total;
}

static void cold_name(char *buf, size_t len, int i)
{
	snprintf(buf, len, "cold:%02d", i);
}

/* ------------------------------------------------------------ MONITOR */

struct mon {
	redisContext *c;
	char *text; /* the top-level commands seen, one per line */
	size_t len;
};

static void mon_start(struct fx *f, struct mon *m)
{
	struct timeval tv = { 5, 0 };
	m->c = redisConnectUnixWithTimeout(f->r.sock, tv);
	assert_non_null(m->c);
	assert_int_equal(m->c->err, 0);
	redisSetTimeout(m->c, tv);
	redisReply *r = redisCommand(m->c, "MONITOR");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	m->text = NULL;
	m->len = 0;
}

/* Read what Redis ran until our marker: bounded in lines and by the 5 s
 * read timeout. Keeps the commands of clients, not those of scripts. */
static void mon_stop(struct fx *f, struct mon *m)
{
	redisReply *e = ru_cmd(&f->r, "ECHO end-of-push-marker");
	assert_non_null(e);
	freeReplyObject(e);
	bool done = false;
	for (int i = 0; i < 100000 && !done; i++) {
		void *rv = NULL;
		assert_int_equal(redisGetReply(m->c, &rv), REDIS_OK);
		redisReply *r = rv;
		assert_int_equal(r->type, REDIS_REPLY_STATUS);
		done = strstr(r->str, "end-of-push-marker") != NULL;
		if (!strstr(r->str, "[0 lua]")) {
			m->text = realloc(m->text, m->len + r->len + 2);
			assert_non_null(m->text);
			memcpy(m->text + m->len, r->str, r->len);
			m->len += r->len;
			m->text[m->len++] = '\n';
			m->text[m->len] = '\0';
		}
		freeReplyObject(r);
	}
	assert_true(done);
	redisFree(m->c);
}

/* Does a line with command cmd (quoted, as MONITOR prints it) contain
 * s? */
static bool mon_has(const struct mon *m, const char *cmd, const char *s)
{
	const char *p = m->text;
	char q[64];

	snprintf(q, sizeof(q), "] \"%s\"", cmd);
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *line = strndup(p, n);
		assert_non_null(line);
		bool hit = strstr(line, q) && strstr(line, s);
		free(line);
		if (hit)
			return true;
		p = nl ? nl + 1 : NULL;
	}
	return false;
}

/* ---------------------------------------------------------------- tests */

static void unchanged_counters_are_not_sent_and_follow_other_hosts(void **state)
{
	struct fx *f = *state;
	char name[32];
	struct mon m;

	for (int i = 0; i < NCOLD; i++) {
		cold_name(name, sizeof(name), i);
		add(&f->a, name, (uint64_t)i + 1);
	}
	add(&f->a, "hot", 1);
	add(&f->b, "cold:00", 5);
	push(&f->a);
	assert_true(f->a.b.last_full);
	assert_int_equal(f->a.b.last_sent, NCOLD + 1);
	push(&f->b);

	/* Nothing changed: the script runs (the sequence check) with no
	 * counter; the values are read with MGET. */
	mon_start(f, &m);
	push(&f->a);
	mon_stop(f, &m);
	assert_int_equal(f->a.b.last_sent, 0);
	assert_int_equal(f->a.b.last_refreshed, NCOLD + 1);
	assert_true(mon_has(&m, "EVALSHA", "_shmstat:m:00000000000000a1"));
	assert_false(mon_has(&m, "EVALSHA", "cold:"));
	assert_false(mon_has(&m, "EVALSHA", "hot"));
	assert_true(mon_has(&m, "MGET", "\"cold:07\""));
	free(m.text);
	/* ... and B's earlier push is in A's global value already. */
	assert_int_equal(global_of(&f->a, "cold:00"), 1 + 5);

	/* One counter changes: only it goes to the script. */
	add(&f->a, "hot", 2);
	mon_start(f, &m);
	push(&f->a);
	mon_stop(f, &m);
	assert_int_equal(f->a.b.last_sent, 1);
	assert_true(mon_has(&m, "EVALSHA", "\"hot\""));
	assert_false(mon_has(&m, "EVALSHA", "cold:"));
	free(m.text);
	assert_int_equal(ru_get(&f->r, "hot"), 3);
	assert_int_equal(global_of(&f->a, "hot"), 3);

	/* Another host pushes a counter A does not change: A's global value
	 * follows at A's next push (the bound: one interval). */
	add(&f->b, "cold:00", 10);
	push(&f->b);
	push(&f->a);
	assert_int_equal(f->a.b.last_sent, 0);
	assert_int_equal(ru_get(&f->r, "cold:00"), 16);
	assert_int_equal(global_of(&f->a, "cold:00"), 16);
	assert_int_equal(total_of(&f->a, "cold:00"), 1);
}

static void redis_restarted_empty_gets_every_counter_back_in_one_push(
	void **state)
{
	struct fx *f = *state;
	char name[32];

	for (int i = 0; i < NCOLD; i++) {
		cold_name(name, sizeof(name), i);
		add(&f->a, name, (uint64_t)i + 1);
	}
	push(&f->a);
	push(&f->a);
	assert_int_equal(f->a.b.last_sent, 0);
	ru_restart(&f->r);
	/* The old connection is gone: that push fails, and the next one, on
	 * a new connection, repairs everything. */
	if (push_all(&f->a.b) < 0)
		assert_null(f->a.b.rc);
	push(&f->a);
	for (int i = 0; i < NCOLD; i++) {
		cold_name(name, sizeof(name), i);
		assert_int_equal(ru_get(&f->r, name), i + 1);
	}
	redisReply *r = ru_cmd(&f->r, "HLEN _shmstat:h:00000000000000a1");
	assert_non_null(r);
	assert_int_equal(r->integer, NCOLD);
	freeReplyObject(r);

	/* Same again while the connection survives: Redis forgets
	 * everything (FLUSHALL) between two pushes of a live bridge. The
	 * sequence check sees it, and the same push sends every counter. */
	push(&f->a);
	assert_int_equal(f->a.b.last_sent, 0);
	r = ru_cmd(&f->r, "FLUSHALL");
	assert_non_null(r);
	freeReplyObject(r);
	push(&f->a);
	assert_true(f->a.b.last_full);
	for (int i = 0; i < NCOLD; i++) {
		cold_name(name, sizeof(name), i);
		assert_int_equal(ru_get(&f->r, name), i + 1);
	}
}

static void a_reset_by_another_host_reaches_counters_not_sent(void **state)
{
	struct fx *f = *state;
	uint64_t id, n;

	add(&f->a, "jobs", 10);
	add(&f->a, "other", 4);
	add(&f->b, "jobs", 3);
	push(&f->a);
	push(&f->b);
	push(&f->a);
	assert_int_equal(global_of(&f->a, "jobs"), 13);

	/* B runs the reset; A's "jobs" does not change afterwards. */
	assert_int_equal(shmstat_sync_reset_request(f->b.s.h, "jobs", &id), 0);
	push(&f->b);
	assert_int_equal(shmstat_sync_reset_wait(f->b.s.h, id, 0, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ru_get(&f->r, "jobs"), 0);
	push(&f->a);
	assert_true(f->a.b.last_full); /* the new generation was seen */
	assert_int_equal(global_of(&f->a, "jobs"), 0);
	int64_t base;
	uint64_t epoch;
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(f->a.s.h, "jobs", &st), 0);
	assert_int_equal(shmstat_sync_rbase_get(f->a.s.h, st.index, &base,
						&epoch),
			 0);
	assert_int_equal(base, 10);
	assert_true(epoch != 0);
	push(&f->a);
	assert_false(f->a.b.last_full);
	assert_int_equal(f->a.b.last_sent, 0);
	add(&f->b, "jobs", 1);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "jobs"), 1);

	/* Redis comes back empty: the hosts bring the reset back (without
	 * A's mirrored base, A would add its 10 again). */
	redisReply *r = ru_cmd(&f->r, "FLUSHALL");
	freeReplyObject(r);
	push(&f->a);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "jobs"), 1);
	assert_int_equal(ru_get(&f->r, "other"), 4);
	add(&f->a, "jobs", 2);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "jobs"), 3);
	assert_int_equal(global_of(&f->a, "jobs"), 3);
}

/* The push script called by hand the way the bridge calls it, with the
 * given fence, sending total for "x". */
static redisReply *call_script(struct fx *f, const char *fence,
			       const char *total)
{
	struct timeval tv = { 5, 0 };
	redisContext *c = redisConnectUnixWithTimeout(f->r.sock, tv);
	assert_non_null(c);
	const char *argv[] = {
		"EVAL", push_lua, "7", "_shmstat:m:00000000000000a1",
		"_shmstat:h:00000000000000a1", "_shmstat:r:00000000000000a1",
		"_shmstat:hosts", "_shmstat:names", "_shmstat:gen", "x",
		"tok-a1", "60000", "0", "00000000000000a1", "pua", fence,
		"", "0", "0", total, /* no reset bases; names are the keys */
	};
	redisReply *r = redisCommandArgv(c, 20, argv, NULL);
	redisFree(c);
	assert_non_null(r);
	return r;
}

static void a_late_call_with_a_lower_fence_changes_nothing(void **state)
{
	struct fx *f = *state;

	add(&f->a, "x", 5);
	push(&f->a);
	uint64_t fence = f->a.b.fence;
	assert_true(fence > 1);

	/* A call built before the last push (its fence is lower) runs
	 * late, as one that timed out on a hung Redis may: refused. */
	redisReply *r = call_script(f, "1", "999");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->element[0]->integer, 2);
	freeReplyObject(r);
	assert_int_equal(ru_get(&f->r, "x"), 5);
	r = ru_cmd(&f->r, "HGET _shmstat:h:00000000000000a1 x");
	assert_string_equal(r->str, "5");
	freeReplyObject(r);

	/* The same call with a current fence goes through (absolute). */
	char cur[32];
	snprintf(cur, sizeof(cur), "%llu", (unsigned long long)fence);
	r = call_script(f, cur, "7");
	assert_int_equal(r->element[0]->integer, 1);
	freeReplyObject(r);
	assert_int_equal(ru_get(&f->r, "x"), 7);

	/* A fence from the future (a previous bridge's clock was ahead):
	 * the bridge takes a higher one and pushes everything, in the same
	 * push. */
	r = ru_cmd(&f->r, "HSET _shmstat:m:00000000000000a1 fence %llu",
		   (unsigned long long)fence + 100000000ull);
	freeReplyObject(r);
	add(&f->a, "x", 1);
	push(&f->a);
	assert_true(f->a.b.last_full);
	assert_true(f->a.b.fence > fence + 100000000ull);
	assert_int_equal(ru_get(&f->r, "x"), 6);
	assert_int_equal(global_of(&f->a, "x"), 6);
}

static void without_mget_in_the_acl_values_are_read_with_get(void **state)
{
	struct fx *f = *state;

	redisReply *r = ru_cmd(&f->r, "ACL SETUSER old on >pw ~* -@all +auth "
				      "+hello +ping +select +info +evalsha "
				      "+eval +script|load +get +set +incrby "
				      "+hget +hmget +hset +sadd +smembers "
				      "+sscan +time");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	snprintf(f->a.cf.redis.user, sizeof(f->a.cf.redis.user), "old");
	snprintf(f->a.cf.redis.password, sizeof(f->a.cf.redis.password), "pw");
	add(&f->a, "shared", 1);
	add(&f->b, "shared", 2);
	push(&f->a);
	push(&f->b);
	push(&f->a); /* MGET refused: logged, switched to GET */
	assert_true(f->a.b.no_mget);
	add(&f->b, "shared", 4);
	push(&f->b);
	push(&f->a);
	assert_int_equal(f->a.b.last_sent, 0);
	assert_int_equal(global_of(&f->a, "shared"), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(unchanged_counters_are_not_sent_and_follow_other_hosts),
		T(redis_restarted_empty_gets_every_counter_back_in_one_push),
		T(a_reset_by_another_host_reaches_counters_not_sent),
		T(a_late_call_with_a_lower_fence_changes_nothing),
		T(without_mget_in_the_acl_values_are_read_with_get),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
