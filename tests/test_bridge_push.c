/*
 * test_bridge_push.c — the push protocol of shmstat-bridge (bridge/push.c,
 * run in process through bridge_init) against a real redis-server: only
 * changed counters are sent (checked with MONITOR), the global values
 * follow what other sources change, a Redis restarted empty gets every
 * counter back within one push, a global reset run by another source
 * reaches counters this one does not send, a stale transaction changes
 * nothing, an ACL without MGET still refreshes; sources (a recreated
 * segment adds to the history, several segments per host sum), prefix and
 * identity changes, exactness to 2^63 - 1, refused keys, reserved names,
 * gauge resets and withdrawal, bounded bookkeeping over 1,000
 * recreations, and the upgrade from the host-keyed bookkeeping.
 */
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge_i.h"
#include "redisutil.h"
#include "shmstat_i.h"
#include "sync_i.h"
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

static void host_start(struct fx *f, struct host *x, const char *hex,
		       const char *kp, const char *mp)
{
	bconf_defaults(&x->cf);
	x->cf.segment = x->s.name;
	snprintf(x->cf.redis.path, sizeof(x->cf.redis.path), "%s", f->r.sock);
	snprintf(x->cf.addr, sizeof(x->cf.addr), "%s", f->r.url);
	x->cf.key_prefix = kp;
	x->cf.meta_prefix = mp;
	x->cf.connect_timeout_ms = x->cf.command_timeout_ms = 5000;
	x->cf.owner_ttl_ms = 60000;
	if (hex) {
		x->cf.host_id = strtoull(hex, NULL, 16);
		x->cf.host_id_set = true;
	}
	assert_int_equal(bridge_init(&x->b, &x->cf, x->s.h), 0);
}

static void host_init(struct fx *f, struct host *x, const char *tag,
		      const char *hex)
{
	tu_seg_create(&x->s, tag, &small);
	host_start(f, x, hex, "", "_shmstat:");
}

static void host_fini(struct host *x)
{
	bridge_fini(&x->b);
	shmstat_close(&x->s.h);
	shmstat_unlink(x->s.name);
}

/* The bridge writes its status to the segment, as the daemon does. */
static void status_save(struct host *x)
{
	assert_int_equal(shmstat__sync_status_write(x->s.h, &x->b.status), 0);
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
	status_save(x);
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
	char name[32], src[200];
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
	push(&f->a);

	/* Nothing changed: the lease and sequence are checked and renewed,
	 * no counter is sent. */
	snprintf(src, sizeof(src), "\"_shmstat:s:%s\"", f->a.b.source);
	mon_start(f, &m);
	push(&f->a);
	mon_stop(f, &m);
	assert_int_equal(f->a.b.last_sent, 0);
	assert_true(mon_has(&m, "WATCH", src));
	assert_true(mon_has(&m, "HSET", src));
	assert_false(mon_has(&m, "INCRBY", "cold:"));
	assert_false(mon_has(&m, "INCRBY", "hot"));
	assert_false(mon_has(&m, "MGET", "cold:"));
	free(m.text);
	/* ... and B's earlier push is in A's global value already. */
	assert_int_equal(global_of(&f->a, "cold:00"), 1 + 5);

	/* One counter changes: only it is sent, as a plain INCRBY. */
	add(&f->a, "hot", 2);
	mon_start(f, &m);
	push(&f->a);
	mon_stop(f, &m);
	assert_int_equal(f->a.b.last_sent, 1);
	assert_true(mon_has(&m, "INCRBY", "\"hot\" \"2\""));
	assert_false(mon_has(&m, "INCRBY", "cold:"));
	free(m.text);
	assert_int_equal(ru_get(&f->r, "hot"), 3);
	assert_int_equal(global_of(&f->a, "hot"), 3);

	/* Another source changes a counter A does not change: A reads that
	 * one key back (the feed), not every key. */
	add(&f->b, "cold:00", 10);
	push(&f->b);
	mon_start(f, &m);
	push(&f->a);
	mon_stop(f, &m);
	assert_int_equal(f->a.b.last_sent, 0);
	assert_int_equal(f->a.b.last_refreshed, 1);
	assert_true(mon_has(&m, "MGET", "\"cold:00\""));
	assert_false(mon_has(&m, "MGET", "cold:07"));
	free(m.text);
	assert_int_equal(ru_get(&f->r, "cold:00"), 16);
	assert_int_equal(global_of(&f->a, "cold:00"), 16);
	assert_int_equal(total_of(&f->a, "cold:00"), 1);
}

static void redis_restarted_empty_gets_every_counter_back_in_one_push(
	void **state)
{
	struct fx *f = *state;
	char name[32], tot[200];

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
	snprintf(tot, sizeof(tot), "_shmstat:t:%s", f->a.b.source);
	assert_int_equal(ru_hlen(&f->r, tot), NCOLD);

	/* Same again while the connection survives: Redis forgets
	 * everything (FLUSHALL) between two pushes of a live bridge. The
	 * sequence check sees it, and the same push sends every counter. */
	push(&f->a);
	assert_int_equal(f->a.b.last_sent, 0);
	redisReply *r = ru_cmd(&f->r, "FLUSHALL");
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
	/* A learnt of the reset from the resets feed: it rewrote that one
	 * counter's bookkeeping, nothing else. */
	assert_false(f->a.b.last_full);
	assert_int_equal(f->a.b.last_sent, 1);
	assert_int_equal(global_of(&f->a, "jobs"), 0);
	int64_t base;
	uint64_t tag;
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(f->a.s.h, "jobs", &st), 0);
	assert_int_equal(shmstat__sync_rbase_get(f->a.s.h, st.index, &base,
						&tag),
			 0);
	assert_int_equal(base, 10);
	assert_true(tag != 0);
	push(&f->a);
	assert_false(f->a.b.last_full);
	assert_int_equal(f->a.b.last_sent, 0);
	add(&f->b, "jobs", 1);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "jobs"), 1);
	/* A labelled name is matched in its canonical form, as everywhere. */
	add(&f->a, "req{code=\"200\"}", 6);
	add(&f->a, "req{code=\"500\"}", 2);
	push(&f->a);
	assert_int_equal(shmstat_sync_reset_request(f->a.s.h, "req{code=\"5*",
						    &id),
			 0);
	push(&f->a);
	assert_int_equal(shmstat_sync_reset_wait(f->a.s.h, id, 0, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ru_get(&f->r, "req{}{code=\"500\"}"), 0);
	assert_int_equal(ru_get(&f->r, "req{}{code=\"200\"}"), 6);

	/* Redis comes back empty: the sources bring the reset back (without
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

/*
 * A global reset asked for while Redis is down, and Redis back empty: the
 * resetting source sends its totals again first, then runs the reset, so
 * its counts from before the reset are cleared. (Run first, the reset
 * found nothing and the repair brought them all back.) The counts made
 * after the request go with the repair and are cleared too: the limit
 * doc/bridge.md states.
 */
static void a_reset_queued_over_an_empty_restart_clears_the_resetters_counts(
	void **state)
{
	struct fx *f = *state;
	uint64_t id, n;

	add(&f->a, "jobs", 10);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "jobs"), 10);
	ru_restart(&f->r);
	assert_int_equal(shmstat_sync_reset_request(f->a.s.h, "jobs", &id), 0);
	add(&f->a, "jobs", 100);
	if (push_all(&f->a.b) < 0)
		assert_null(f->a.b.rc);
	push(&f->a);
	assert_int_equal(shmstat_sync_reset_wait(f->a.s.h, id, 0, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ru_get(&f->r, "jobs"), 0);
	add(&f->a, "jobs", 5);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "jobs"), 5);
	assert_int_equal(global_of(&f->a, "jobs"), 5);
}

/*
 * A global reset asked for over a reconnect to a Redis that kept its data
 * (a network blip): it runs before the push, so the counts made after the
 * request count after the reset.
 */
static void a_reset_queued_over_a_reconnect_keeps_the_counts_after_it(
	void **state)
{
	struct fx *f = *state;
	uint64_t id, n;

	add(&f->a, "jobs", 10);
	push(&f->a);
	conn_close(&f->a.b);
	assert_int_equal(shmstat_sync_reset_request(f->a.s.h, "jobs", &id), 0);
	add(&f->a, "jobs", 50);
	push(&f->a);
	assert_int_equal(shmstat_sync_reset_wait(f->a.s.h, id, 0, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ru_get(&f->r, "jobs"), 50);
	push(&f->a);
	assert_int_equal(global_of(&f->a, "jobs"), 50);
}

/*
 * A counter still at 0, never sent (nothing to say yet), whose key another
 * source resets: it takes the reset's generation with nothing to write,
 * and is not left pending for ever (with a lag that grows while health
 * says healthy); its later counts go to Redis as usual.
 */
static void a_reset_of_a_counter_still_at_zero_leaves_nothing_pending(
	void **state)
{
	struct fx *f = *state;
	uint64_t id, n;

	add(&f->a, "zz", 5);
	add(&f->b, "zz", 0);
	push(&f->a);
	push(&f->b);
	assert_int_equal(shmstat_sync_reset_request(f->a.s.h, "zz", &id), 0);
	push(&f->a);
	assert_int_equal(shmstat_sync_reset_wait(f->a.s.h, id, 0, &n), 0);
	assert_int_equal(n, 1);
	push(&f->b); /* asserts that nothing is pending */
	push(&f->b);
	add(&f->b, "zz", 2);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "zz"), 2);
}

/* A transaction built from what Redis held before the bridge's last push
 * (as a call that timed out on a hung Redis and runs late): EXEC refuses
 * it, since the source's record changed after its WATCH. */
static void a_stale_transaction_changes_nothing(void **state)
{
	struct fx *f = *state;
	char src[200], tot[200];

	add(&f->a, "x", 5);
	push(&f->a);
	snprintf(src, sizeof(src), "_shmstat:s:%s", f->a.b.source);
	snprintf(tot, sizeof(tot), "_shmstat:t:%s", f->a.b.source);

	struct timeval tv = { 5, 0 };
	redisContext *c = redisConnectUnixWithTimeout(f->r.sock, tv);
	assert_non_null(c);
	redisReply *r = redisCommand(c, "WATCH %s _shmstat:rgen", src);
	freeReplyObject(r);
	add(&f->a, "x", 2);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "x"), 7);
	freeReplyObject(redisCommand(c, "MULTI"));
	freeReplyObject(redisCommand(c, "INCRBY x 999"));
	freeReplyObject(redisCommand(c, "HSET %s x 1004", tot));
	r = redisCommand(c, "EXEC");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_NIL);
	freeReplyObject(r);
	redisFree(c);
	assert_int_equal(ru_get(&f->r, "x"), 7);
	r = ru_cmd(&f->r, "HGET %s x", tot);
	assert_string_equal(r->str, "7");
	freeReplyObject(r);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "x"), 7);
}

#define BRIDGE_ACL                                                             \
	"+auth +hello +ping +select +info +evalsha +eval +script|load "        \
	"+get +set +incr +incrby +hget +hmget +hset +hdel +hgetall "           \
	"+hincrby +sadd +sismember +srem +sscan +del +exists +time +watch "    \
	"+unwatch +multi +exec +zadd +zrem +zmscore +zrangebyscore +xadd "     \
	"+xrange +xrevrange"

static void without_mget_in_the_acl_values_are_read_with_get(void **state)
{
	struct fx *f = *state;

	redisReply *r = ru_cmd(&f->r, "ACL SETUSER old on >pw ~* -@all "
				      BRIDGE_ACL);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	snprintf(f->a.cf.redis.user, sizeof(f->a.cf.redis.user), "old");
	snprintf(f->a.cf.redis.password, sizeof(f->a.cf.redis.password), "pw");
	add(&f->a, "shared", 1);
	add(&f->b, "shared", 2);
	push(&f->a); /* MGET refused: logged, switched to GET */
	assert_true(f->a.b.no_mget);
	push(&f->b);
	push(&f->a);
	add(&f->b, "shared", 4);
	push(&f->b);
	push(&f->a);
	assert_int_equal(f->a.b.last_sent, 0);
	assert_int_equal(global_of(&f->a, "shared"), 7);
}

/* ------------------------------------------------------------- sources */

/* Recreate x's segment under the same name (what a reboot does). */
static void create_again(struct host *x, const shmstat_options_t *o)
{
	shmstat_options_t opt = *o;
	opt.flags |= SHMSTAT_O_CREATE | SHMSTAT_O_EXCL;
	assert_int_equal(shmstat_open(x->s.name, &opt, &x->s.h), 0);
}

static void recreate(struct fx *f, struct host *x, const char *hex,
		     bool clean)
{
	if (clean)
		assert_int_equal(push_withdraw(&x->b), 0);
	bridge_fini(&x->b);
	shmstat_close(&x->s.h);
	assert_int_equal(shmstat_unlink(x->s.name), 0);
	create_again(x, &small);
	host_start(f, x, hex, "", "_shmstat:");
}

static void a_recreated_segment_adds_to_the_history(void **state)
{
	struct fx *f = *state;
	char old[64], key[200];

	/* Pushed 1000, then the segment is recreated (a reboot) and counts
	 * 5: the key holds 1005. The old bridge was killed: its lease still
	 * runs, and the new source pushes anyway. */
	f->a.b.cf->owner_ttl_ms = 400;
	add(&f->a, "req", 1000);
	push(&f->a);
	snprintf(old, sizeof(old), "%s", f->a.b.source);
	recreate(f, &f->a, "a1", false);
	assert_string_not_equal(old, f->a.b.source);
	add(&f->a, "req", 5);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "req"), 1005);
	assert_int_equal(global_of(&f->a, "req"), 1005);
	/* Once the old lease has ended the old source is retired: its
	 * bookkeeping goes, its counts stay. */
	snprintf(key, sizeof(key), "_shmstat:t:%s", old);
	for (int i = 0; i < 100 && ru_exists(&f->r, key); i++) {
		ru_sleep_ms(50);
		push(&f->a);
	}
	assert_false(ru_exists(&f->r, key));
	assert_int_equal(ru_get(&f->r, "req"), 1005);
	add(&f->a, "req", 1);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "req"), 1006);

	/* Recreated again after a clean stop: retired at once. */
	snprintf(old, sizeof(old), "%s", f->a.b.source);
	recreate(f, &f->a, "a1", true);
	add(&f->a, "req", 2);
	push(&f->a);
	snprintf(key, sizeof(key), "_shmstat:s:%s", old);
	assert_false(ru_exists(&f->r, key));
	assert_int_equal(ru_get(&f->r, "req"), 1008);
}

static void three_segments_on_one_host_sum_without_a_host_id(void **state)
{
	struct fx *f = *state;
	struct host c;

	/* f->a and f->b have a --host-id; c and two more do not. */
	struct host x[3];
	for (int i = 0; i < 3; i++) {
		char tag[8];
		snprintf(tag, sizeof(tag), "tri%d", i);
		tu_seg_create(&x[i].s, tag, &small);
		host_start(f, &x[i], NULL, "", "_shmstat:");
		add(&x[i], "hits", (uint64_t)(i + 1) * 100);
	}
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 3; i++)
			push(&x[i]);
	assert_int_equal(ru_get(&f->r, "hits"), 600);
	for (int i = 0; i < 3; i++)
		assert_int_equal(global_of(&x[i], "hits"), 600);
	assert_string_not_equal(x[0].b.source, x[1].b.source);
	assert_memory_equal(x[0].b.source, x[1].b.source, 16);
	for (int i = 0; i < 3; i++)
		host_fini(&x[i]);
	(void)c;
}

static void a_second_bridge_for_one_source_is_refused(void **state)
{
	struct fx *f = *state;
	struct host y;

	add(&f->a, "x", 1);
	push(&f->a);
	/* Another bridge on the same segment (another token). */
	y.s = f->a.s;
	host_start(f, &y, "a1", "", "_shmstat:");
	snprintf(y.b.token, sizeof(y.b.token), "another-bridge");
	assert_int_equal(conn_open(&y.b), 0);
	assert_int_equal(push_all(&y.b), -1);
	assert_true(y.b.refused);
	assert_non_null(strstr(y.b.status.last_error, "another live bridge"));
	bridge_fini(&y.b);
	assert_int_equal(ru_get(&f->r, "x"), 1);
}

static void a_key_prefix_change_loses_and_doubles_nothing(void **state)
{
	struct fx *f = *state;

	add(&f->a, "n", 100);
	add(&f->b, "n", 5);
	push(&f->a);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "n"), 105);
	/* A restarts with --key-prefix stats: the old key keeps what was
	 * added to it; the new key starts from A's full total. */
	bridge_fini(&f->a.b);
	host_start(f, &f->a, "a1", "stats:", "_shmstat:");
	add(&f->a, "n", 1);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "n"), 105);
	assert_int_equal(ru_get(&f->r, "stats:n"), 101);
	/* And back: the old key gets only what changed since. */
	bridge_fini(&f->a.b);
	host_start(f, &f->a, "a1", "", "_shmstat:");
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "n"), 106);
	assert_int_equal(ru_get(&f->r, "stats:n"), 101);
}

static void a_meta_prefix_or_host_id_change_is_refused(void **state)
{
	struct fx *f = *state;
	struct bconf cf;
	struct bridge b;

	add(&f->a, "n", 100);
	push(&f->a);
	bconf_defaults(&cf);
	cf.segment = f->a.s.name;
	cf.meta_prefix = "other:";
	cf.host_id = 0xa1;
	cf.host_id_set = true;
	assert_int_equal(bridge_init(&b, &cf, f->a.s.h), -1);
	assert_true(b.refused);
	cf.meta_prefix = "_shmstat:";
	cf.host_id = 0xa2;
	assert_int_equal(bridge_init(&b, &cf, f->a.s.h), -1);
	assert_true(b.refused);
	cf.host_id = 0xa1;
	assert_int_equal(bridge_init(&b, &cf, f->a.s.h), 0);
	bridge_fini(&b);
	assert_int_equal(ru_get(&f->r, "n"), 100);
}

/* A bridge killed while writing its status leaves the status's sequence
 * odd: readers say so (EBUSY), and the next bridge, the only writer,
 * still starts and continues from it. */
static void a_status_left_mid_write_does_not_stop_the_next_bridge(void **state)
{
	struct fx *f = *state;
	struct bconf cf;
	struct bridge b;
	shmstat_sync_status_t st;

	add(&f->a, "n", 3);
	push(&f->a);
	struct shmstat *h = f->a.s.h;
	atomic_fetch_or(&h->sync->seq, 1u); /* killed between the stores */
	assert_int_equal(shmstat_sync_status_read(h, &st), SHMSTAT_EBUSY);
	bconf_defaults(&cf);
	cf.segment = f->a.s.name;
	cf.host_id = 0xa1;
	cf.host_id_set = true;
	assert_int_equal(bridge_init(&b, &cf, h), 0);
	assert_true(b.status.pushes_ok >= 1); /* continued, not zeroed */
	assert_int_equal(shmstat__sync_status_write(h, &b.status), 0);
	assert_int_equal(shmstat_sync_status_read(h, &st), 0);
	bridge_fini(&b);
}

/* ------------------------------------------------------------- numbers */

static void totals_are_exact_to_int64_max(void **state)
{
	struct fx *f = *state;

	/* 2^53 + 1 over two sources: a double would round it. */
	add(&f->a, "big", UINT64_C(1) << 53);
	add(&f->b, "big", 1);
	push(&f->a);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "big"), (1LL << 53) + 1);
	/* INT64_MAX exactly, and one more is refused for that key only. */
	add(&f->a, "max", INT64_MAX);
	add(&f->a, "fine", 1);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "max"), INT64_MAX);
	add(&f->b, "max", 1);
	add(&f->b, "fine", 2);
	assert_int_equal(conn_open(&f->b.b), 0);
	assert_int_equal(push_all(&f->b.b), 0);
	assert_int_equal(ru_get(&f->r, "max"), INT64_MAX);
	assert_int_equal(ru_get(&f->r, "fine"), 3);
	assert_int_equal(f->b.b.status.pending, 1);
	assert_int_equal(f->b.b.status.refused_keys, 1);
	assert_string_equal(f->b.b.status.refused_key, "max");
	/* Its bookkeeping still says what Redis added: pending stays. */
	assert_int_equal(push_all(&f->b.b), 0);
	assert_int_equal(f->b.b.status.pending, 1);
	assert_int_equal(ru_get(&f->r, "max"), INT64_MAX);
	/* One source's own total cannot pass it: the engine saturates the
	 * counter at INT64_MAX, so there is nothing beyond it to send. */
	add(&f->a, "max", 1);
	assert_int_equal(push_all(&f->a.b), 0);
	assert_int_equal(ru_get(&f->r, "max"), INT64_MAX);
	assert_int_equal(f->a.b.status.refused_keys, 0);
}

static void a_refused_key_stays_pending_and_degrades_health(void **state)
{
	struct fx *f = *state;
	shmstat_health_t hs;

	add(&f->a, "ok", 1);
	add(&f->a, "word", 1);
	push(&f->a);
	redisReply *r = ru_cmd(&f->r, "SET word abc");
	freeReplyObject(r);
	add(&f->a, "word", 1);
	add(&f->a, "ok", 1);
	assert_int_equal(push_all(&f->a.b), 0);
	f->a.b.status.bridge_pid = getpid();
	f->a.b.status.bridge_start = 0;
	f->a.b.status.connected = 1;
	status_save(&f->a);
	assert_int_equal(ru_get(&f->r, "ok"), 2);
	assert_int_equal(f->a.b.status.pending, 1);
	assert_int_equal(shmstat_health(f->a.s.h, 0, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_DEGRADED);
	assert_non_null(strstr(hs.bridge, "'word'"));
	/* Fixed in Redis: the next push sends it, exactly once. */
	r = ru_cmd(&f->r, "SET word 1");
	freeReplyObject(r);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "word"), 2);
	assert_int_equal(f->a.b.status.refused_keys, 0);
}

/*
 * A push whose INCRBY of one key Redis refuses, and which reads in the
 * same round trip the values other sources changed: those values land on
 * their own counters (the undo of the refused key's bookkeeping is read
 * after them, not in their place), and the refused key's global value is
 * left alone.
 */
static void a_refused_key_leaves_the_values_read_with_it_right(void **state)
{
	struct fx *f = *state;

	add(&f->a, "x", 10);
	add(&f->a, "y", 20);
	add(&f->b, "x", 1);
	add(&f->b, "y", 2);
	add(&f->b, "word", 1);
	push(&f->a);
	push(&f->b);
	push(&f->a);
	int64_t word = global_of(&f->b, "word");
	/* a changes x and y; then b's push of word is refused. */
	add(&f->a, "x", 100);
	add(&f->a, "y", 200);
	push(&f->a);
	redisReply *r = ru_cmd(&f->r, "SET word abc");
	freeReplyObject(r);
	add(&f->b, "word", 1);
	assert_int_equal(push_all(&f->b.b), 0);
	assert_int_equal(f->b.b.status.refused_keys, 1);
	assert_int_equal(ru_get(&f->r, "x"), 111);
	assert_int_equal(ru_get(&f->r, "y"), 222);
	assert_int_equal(global_of(&f->b, "x"), 111);
	assert_int_equal(global_of(&f->b, "y"), 222);
	assert_int_equal(global_of(&f->b, "word"), word);
	/* And the pushes after it stay right. */
	add(&f->a, "x", 1000);
	push(&f->a);
	assert_int_equal(push_all(&f->b.b), 0);
	assert_int_equal(global_of(&f->b, "x"), 1111);
	assert_int_equal(global_of(&f->b, "y"), 222);
	r = ru_cmd(&f->r, "SET word 1");
	freeReplyObject(r);
	push(&f->b); /* its pending 1 on top of the 1 set by hand */
	assert_int_equal(ru_get(&f->r, "word"), 2);
	assert_int_equal(global_of(&f->b, "word"), 2);
}

static void a_name_under_the_meta_prefix_is_never_written(void **state)
{
	struct fx *f = *state;

	add(&f->a, "_shmstat:gen", 7);
	add(&f->a, "_shmstat:resets", 7);
	add(&f->a, "fine", 1);
	push(&f->a);
	push(&f->a);
	assert_int_equal(f->a.b.last_sent, 0);
	assert_int_equal(f->a.b.status.reserved_names, 2);
	assert_int_equal(ru_get(&f->r, "_shmstat:gen"), LLONG_MIN);
	assert_int_equal(ru_get(&f->r, "fine"), 1);
	uint64_t id, n;
	assert_int_equal(shmstat_sync_reset_request(f->a.s.h, "*", &id), 0);
	push(&f->a);
	assert_int_equal(shmstat_sync_reset_wait(f->a.s.h, id, 0, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ru_get(&f->r, "fine"), 0);
}

/* -------------------------------------------------------------- gauges */

/* A gauge whose change does not fit 64 bits (INT64_MAX, then INT64_MIN):
 * refused and said, as a counter's is, not pending in silence. */
static void a_gauge_change_beyond_64_bits_is_refused_and_said(void **state)
{
	struct fx *f = *state;
	shmstat_gauge_t g;
	shmstat_health_t hs;

	assert_int_equal(shmstat_gauge_open(f->a.s.h, "lvl", &g), 0);
	shmstat_gauge_set(g, INT64_MAX);
	push(&f->a);
	shmstat_gauge_set(g, INT64_MIN);
	assert_int_equal(push_all(&f->a.b), 0);
	assert_int_equal(f->a.b.status.refused_keys, 1);
	assert_string_equal(f->a.b.status.refused_key, "lvl");
	f->a.b.status.bridge_pid = getpid();
	f->a.b.status.bridge_start = 0;
	f->a.b.status.connected = 1;
	status_save(&f->a);
	assert_int_equal(shmstat_health(f->a.s.h, 0, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_DEGRADED);
	assert_non_null(strstr(hs.bridge, "'lvl'"));
	/* Back in range: sent, no longer refused. */
	shmstat_gauge_set(g, 7);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "lvl"), 7);
	assert_int_equal(f->a.b.status.refused_keys, 0);
}

static void gauges_are_not_reset_and_are_withdrawn(void **state)
{
	struct fx *f = *state;
	shmstat_gauge_t ga, gb;
	uint64_t id, n;

	assert_int_equal(shmstat_gauge_open(f->a.s.h, "conns", &ga), 0);
	assert_int_equal(shmstat_gauge_open(f->b.s.h, "conns", &gb), 0);
	shmstat_gauge_set(ga, 10);
	shmstat_gauge_set(gb, 5);
	push(&f->a);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "conns"), 15);
	/* A global reset leaves a gauge alone (no value no source set). */
	assert_int_equal(shmstat_sync_reset_request(f->a.s.h, "conns", &id), 0);
	push(&f->a);
	assert_int_equal(shmstat_sync_reset_wait(f->a.s.h, id, 0, &n), 0);
	assert_int_equal(n, 0);
	shmstat_gauge_set(ga, 4);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "conns"), 9);
	/* B stops cleanly: its 5 is withdrawn. */
	assert_int_equal(push_withdraw(&f->b.b), 0);
	assert_int_equal(ru_get(&f->r, "conns"), 4);
	shmstat_gauge_set(ga, 12);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "conns"), 12);
	/* B comes back: its gauge is in the sum again. */
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "conns"), 17);
	/* B disappears without stopping: once its lease has ended for
	 * longer than the gauge expiry, A's push withdraws B's gauge. */
	f->b.b.cf->owner_ttl_ms = 100;
	push(&f->b);
	conn_close(&f->b.b);
	f->a.b.cf->gauge_expiry_ms = 100;
	push(&f->a); /* learns Redis' clock */
	for (int i = 0; i < 100 && ru_get(&f->r, "conns") != 12; i++) {
		ru_sleep_ms(20);
		push(&f->a);
	}
	push(&f->a); /* reads the withdrawal from the feed */
	assert_int_equal(ru_get(&f->r, "conns"), 12);
	assert_int_equal(global_of(&f->a, "conns"), 12);
	/* ... and when B does come back, it adds its 5 again. */
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "conns"), 17);
}

/* ----------------------------------------------------------- bounded */

/* Bytes Redis uses for the bookkeeping keys (MEMORY USAGE of each), but
 * the change feed: it is trimmed by age, whatever the number of sources. */
static long long meta_bytes(struct fx *f)
{
	long long sum = 0;
	char cursor[32] = "0";
	do {
		redisReply *r = ru_cmd(&f->r, "SCAN %s MATCH _shmstat:* COUNT 1000",
				       cursor);
		assert_non_null(r);
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			if (strcmp(r->element[1]->element[i]->str,
				   "_shmstat:feed") == 0)
				continue;
			redisReply *m = ru_cmd(&f->r, "MEMORY USAGE %s",
					       r->element[1]->element[i]->str);
			sum += m->integer;
			freeReplyObject(m);
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	return sum;
}

static void bookkeeping_stays_bounded_over_1000_recreations(void **state)
{
	struct fx *f = *state;
	static const shmstat_options_t o = {
		.size = 3u << 19, .max_counters = 1024, .max_workers = 2,
		.cache_max_value = 4096, /* no cache needed: small and fast */
	};
	struct host x;
	char name[32];
	long long one = 0;

	tu_seg_create(&x.s, "rec", &o);
	/* One connection for all the bridges in turn (the scripts are
	 * loaded once): the test is about what stays in Redis. */
	redisContext *rc = NULL;
	for (int round = 0; round < 1000; round++) {
		host_start(f, &x, NULL, "", "_shmstat:");
		x.b.rc = rc;
		if (rc) {
			const struct bridge *p0 = &f->a.b;
			memcpy(x.b.reset_sha, p0->reset_sha, sizeof(x.b.reset_sha));
			memcpy(x.b.withdraw_sha, p0->withdraw_sha,
			       sizeof(x.b.withdraw_sha));
		}
		for (int i = 0; i < 1000; i++) {
			snprintf(name, sizeof(name), "c%04d", i);
			add(&x, name, 1);
		}
		push(&x);
		assert_int_equal(push_withdraw(&x.b), 0);
		if (round == 0)
			one = meta_bytes(f);
		rc = x.b.rc;
		if (round == 0) {
			/* Keep the script ids for the next bridges. */
			memcpy(f->a.b.reset_sha, x.b.reset_sha,
			       sizeof(x.b.reset_sha));
			memcpy(f->a.b.withdraw_sha, x.b.withdraw_sha,
			       sizeof(x.b.withdraw_sha));
		}
		x.b.rc = NULL;
		bridge_fini(&x.b);
		shmstat_close(&x.s.h);
		assert_int_equal(shmstat_unlink(x.s.name), 0);
		create_again(&x, &o);
	}
	if (rc)
		redisFree(rc);
	long long after = meta_bytes(f);
	print_message("bookkeeping: %lld bytes after one source, %lld after "
		      "1000 recreations\n", one, after);
	assert_int_equal(ru_get(&f->r, "c0000"), 1000);
	assert_int_equal(ru_get(&f->r, "c0999"), 1000);
	/* One live source's worth, give or take a few records. */
	assert_true(after < one + one / 10);
	shmstat_close(&x.s.h);
	shmstat_unlink(x.s.name);
}

/* ------------------------------------------------------------ upgrade */

static void old_host_bookkeeping_is_migrated(void **state)
{
	struct fx *f = *state;
	shmstat_info_t in;
	char tok[64], seed[256];

	/* What the previous release left for segment A (host a1): it pushed
	 * 40 of "jobs" (a global reset based it at 30) and 7 of "other". */
	add(&f->a, "jobs", 45);
	add(&f->a, "other", 7);
	assert_int_equal(shmstat_info(f->a.s.h, &in), 0);
	int sn = snprintf(seed, sizeof(seed), "%s|%" PRIu64 "|%d|%s",
			  f->a.s.name, in.created_ns, in.creator_pid,
			  in.host_name);
	snprintf(tok, sizeof(tok), "%016" PRIx64 "%016" PRIx64,
		 shmstat__hash(seed, (size_t)sn),
		 shmstat__hash(seed, (size_t)sn / 2));
	freeReplyObject(ru_cmd(&f->r, "SET jobs 12"));  /* 10 + B's 2 */
	freeReplyObject(ru_cmd(&f->r, "SET other 7"));
	freeReplyObject(ru_cmd(&f->r, "HSET _shmstat:h:00000000000000a1 "
				      "jobs 40 other 7"));
	freeReplyObject(ru_cmd(&f->r, "HSET _shmstat:r:00000000000000a1 "
				      "jobs %s", "30 1700000000000"));
	freeReplyObject(ru_cmd(&f->r, "HSET _shmstat:m:00000000000000a1 "
				      "owner %s owner_exp 0 seq 9", tok));
	freeReplyObject(ru_cmd(&f->r, "SADD _shmstat:hosts 00000000000000a1"));
	/* Another host's, with another token: left alone. */
	freeReplyObject(ru_cmd(&f->r, "HSET _shmstat:h:00000000000000b2 "
				      "jobs 2"));
	freeReplyObject(ru_cmd(&f->r, "HSET _shmstat:m:00000000000000b2 "
				      "owner other owner_exp 0 seq 3"));
	push(&f->a);
	/* jobs: 45 now, 40 accepted: +5. other: unchanged. */
	assert_int_equal(ru_get(&f->r, "jobs"), 17);
	assert_int_equal(ru_get(&f->r, "other"), 7);
	assert_false(ru_exists(&f->r, "_shmstat:h:00000000000000a1"));
	assert_false(ru_exists(&f->r, "_shmstat:m:00000000000000a1"));
	assert_true(ru_exists(&f->r, "_shmstat:h:00000000000000b2"));
	add(&f->a, "jobs", 1);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "jobs"), 18);
}

/* The previous release's status recorded the host id only: another one
 * is refused, the same one is not. */
static void a_segment_of_the_previous_release_keeps_its_host_id(void **state)
{
	struct fx *f = *state;
	shmstat_sync_status_t st;
	struct bconf cf;
	struct bridge b;

	assert_int_equal(shmstat_sync_status_read(f->b.s.h, &st), 0);
	memset(st.source, 0, sizeof(st.source));
	memset(st.meta_prefix, 0, sizeof(st.meta_prefix));
	st.seq_acked = 9;
	st.host_id = 0xb2;
	assert_int_equal(shmstat__sync_status_write(f->b.s.h, &st), 0);
	bconf_defaults(&cf);
	cf.segment = f->b.s.name;
	cf.host_id = 0xb3;
	cf.host_id_set = true;
	assert_int_equal(bridge_init(&b, &cf, f->b.s.h), -1);
	assert_true(b.refused);
	cf.host_id = 0xb2;
	assert_int_equal(bridge_init(&b, &cf, f->b.s.h), 0);
	bridge_fini(&b);
}

/* `test_bridge_push recreations` runs the long recreation test alone, so
 * the suite runs it beside the others. */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(unchanged_counters_are_not_sent_and_follow_other_hosts),
		T(redis_restarted_empty_gets_every_counter_back_in_one_push),
		T(a_reset_by_another_host_reaches_counters_not_sent),
		T(a_stale_transaction_changes_nothing),
		T(without_mget_in_the_acl_values_are_read_with_get),
		T(a_recreated_segment_adds_to_the_history),
		T(three_segments_on_one_host_sum_without_a_host_id),
		T(a_second_bridge_for_one_source_is_refused),
		T(a_key_prefix_change_loses_and_doubles_nothing),
		T(a_meta_prefix_or_host_id_change_is_refused),
		T(a_status_left_mid_write_does_not_stop_the_next_bridge),
		T(totals_are_exact_to_int64_max),
		T(a_refused_key_stays_pending_and_degrades_health),
		T(a_refused_key_leaves_the_values_read_with_it_right),
		T(a_reset_queued_over_an_empty_restart_clears_the_resetters_counts),
		T(a_reset_of_a_counter_still_at_zero_leaves_nothing_pending),
		T(a_reset_queued_over_a_reconnect_keeps_the_counts_after_it),
		T(a_gauge_change_beyond_64_bits_is_refused_and_said),
		T(a_name_under_the_meta_prefix_is_never_written),
		T(gauges_are_not_reset_and_are_withdrawn),
		T(old_host_bookkeeping_is_migrated),
		T(a_segment_of_the_previous_release_keeps_its_host_id),
	};
	const struct CMUnitTest long_tests[] = {
		T(bookkeeping_stays_bounded_over_1000_recreations),
#undef T
	};
	if (argc > 1 && strcmp(argv[1], "recreations") == 0)
		return cmocka_run_group_tests(long_tests, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
