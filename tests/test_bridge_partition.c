/*
 * test_bridge_partition.c — the partitioned layout of the sync protocol
 * (--partition-by-slot: the bookkeeping of a Redis Cluster, per hash slot;
 * bridge/push.c, bridge/slot.c) on a real standalone redis-server, the
 * bridge in process: the slot function against Redis' own CLUSTER KEYSLOT,
 * counters over many slots pushed exactly with every bookkeeping key in
 * the slot of the counters it serves, two sources summing, a global reset
 * over many slots, Redis flushed, a clean stop withdrawing gauges in every
 * slot, a retired incarnation, the cost of a push with one change, and the
 * refusals (a layout switch, a meta prefix with a brace).
 */
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge_i.h"
#include "redisutil.h"
#include "shmstat_i.h"
#include "sync_i.h"
#include "testutil.h"

#define NC 300 /* counters: over ~300 slots */

struct host {
	struct tu_seg s;
	struct bconf cf;
	struct bridge b;
};

struct fx {
	struct ru_server r;
	struct host a, b;
};

static const shmstat_options_t opts = {
	.size = 8u << 20, .max_counters = 1024, .max_workers = 16,
};

static void host_start(struct fx *f, struct host *x, const char *hex,
		       const char *mp, bool parted)
{
	bconf_defaults(&x->cf);
	x->cf.segment = x->s.name;
	snprintf(x->cf.redis.path, sizeof(x->cf.redis.path), "%s", f->r.sock);
	snprintf(x->cf.addr, sizeof(x->cf.addr), "%s", f->r.url);
	x->cf.meta_prefix = mp;
	x->cf.connect_timeout_ms = x->cf.command_timeout_ms = 5000;
	x->cf.owner_ttl_ms = 60000;
	x->cf.partition_by_slot = parted;
	x->cf.host_id = strtoull(hex, NULL, 16);
	x->cf.host_id_set = true;
	assert_int_equal(bridge_init(&x->b, &x->cf, x->s.h), 0);
}

static void host_fini(struct host *x)
{
	bridge_fini(&x->b);
	shmstat_close(&x->s.h);
	shmstat_unlink(x->s.name);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	signal(SIGPIPE, SIG_IGN);
	log_level = SHMSTAT_LOG_ERROR;
	ru_start(&f->r);
	tu_seg_create(&f->a.s, "pta", &opts);
	tu_seg_create(&f->b.s, "ptb", &opts);
	host_start(f, &f->a, "a1", "_shmstat:", true);
	host_start(f, &f->b, "b2", "_shmstat:", true);
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

static void gauge(struct host *x, const char *name, int64_t v)
{
	shmstat_gauge_t g;
	assert_int_equal(shmstat_gauge_open(x->s.h, name, &g), 0);
	shmstat_gauge_set(g, v);
}

static void push(struct host *x)
{
	if (!x->b.rc)
		assert_int_equal(conn_open(&x->b), 0);
	assert_int_equal(push_all(&x->b), 0);
	assert_int_equal(x->b.status.pending, 0);
	assert_int_equal(shmstat__sync_status_write(x->s.h, &x->b.status), 0);
}

static void cname(char *buf, size_t len, int i)
{
	snprintf(buf, len, "c%03d", i);
}

static int64_t global_of(struct host *x, const char *name)
{
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(x->s.h, name, &st), 0);
	assert_true(st.global_ns != 0);
	return st.global;
}

/* The slots counters c000..c(n-1) fall in. */
static unsigned nslots(int n)
{
	static unsigned char seen[SLOT_COUNT];
	char k[32];
	unsigned c = 0;

	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < n; i++) {
		cname(k, sizeof(k), i);
		unsigned s = slot_of(k, strlen(k));
		c += !seen[s];
		seen[s] = 1;
	}
	return c;
}

/* ----------------------------------------------------------------- slots */

static void the_slot_function_is_redis_own(void **state)
{
	struct ru_server c = { 0 };
	char bs[16];
	/* A free bus port (the default, port + 10000, is 10000 for port 0:
	 * two runs at once would collide). */
	snprintf(bs, sizeof(bs), "%d", ru_free_port());
	const char *const extra[] = { "--cluster-enabled", "yes",
				      "--cluster-port", bs, NULL };
	static const char *const keys[] = {
		"foo", "bar", "{user1000}.following", "{user1000}.followers",
		"foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{}", "}{",
		"req{}{code=\"200\"}", "_shmstat:{home}sources", "a", "",
		"123456789",
	};

	(void)state;
	/* The documented values first. */
	assert_int_equal(slot_of("foo", 3), 12182);
	assert_int_equal(slot_of("123456789", 9), 0x31c3 & 16383);
	assert_int_equal(slot_of("{user1000}.following", 20), 3443);
	assert_int_equal(slot_of("{user1000}.followers", 20), 3443);
	c.extra = extra;
	ru_start(&c);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		redisReply *r = ru_cmd(&c, "CLUSTER KEYSLOT %b", keys[i],
				       strlen(keys[i]));
		assert_non_null(r);
		assert_int_equal(r->type, REDIS_REPLY_INTEGER);
		assert_int_equal(slot_of(keys[i], strlen(keys[i])), r->integer);
		freeReplyObject(r);
	}
	/* Every slot's tag maps to it, and is short; Redis agrees on a
	 * sample. */
	for (unsigned s = 0; s < SLOT_COUNT; s++) {
		const char *t = slot_tag(s);
		char k[40];
		assert_true(strlen(t) >= 1 && strlen(t) <= 4);
		int n = snprintf(k, sizeof(k), "_shmstat:{%s}feed", t);
		assert_int_equal(slot_of(k, (size_t)n), s);
		if (s % 1024 == 7) {
			redisReply *r = ru_cmd(&c, "CLUSTER KEYSLOT %s", k);
			assert_non_null(r);
			assert_int_equal(r->integer, (long long)s);
			freeReplyObject(r);
		}
	}
	ru_destroy(&c);
}

/* ----------------------------------------------------------------- push */

/* Every bookkeeping key under the meta prefix is in the slot of the
 * counters it serves (its tag's slot holds one of them) or at home; none
 * is untagged. */
static void check_layout(struct fx *f, int n, const char *also)
{
	static unsigned char used[SLOT_COUNT];
	char k[32];
	unsigned home = slot_of(SLOT_HOME_TAG, strlen(SLOT_HOME_TAG));

	memset(used, 0, sizeof(used));
	used[slot_of(also, strlen(also))] = 1;
	for (int i = 0; i < n; i++) {
		cname(k, sizeof(k), i);
		used[slot_of(k, strlen(k))] = 1;
	}
	redisReply *r = ru_cmd(&f->r, "KEYS _shmstat:*");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_true(r->elements > 0);
	for (size_t i = 0; i < r->elements; i++) {
		const char *key = r->element[i]->str;
		size_t len = r->element[i]->len;
		assert_true(len > 10 && key[9] == '{');
		unsigned s = slot_of(key, len);
		if (strncmp(key + 9, "{" SLOT_HOME_TAG "}", 6) == 0)
			assert_int_equal(s, home);
		else if (!used[s])
			fail_msg("bookkeeping key %s in slot %u: no counter "
				 "there", key, s);
	}
	freeReplyObject(r);
}

static void counters_over_many_slots_are_exact(void **state)
{
	struct fx *f = *state;
	char k[32], key[200];

	assert_true(nslots(NC) > 250);
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		add(&f->a, k, (uint64_t)i + 1);
	}
	gauge(&f->a, "g1", 7);
	push(&f->a);
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		assert_int_equal(ru_get(&f->r, k), i + 1);
		/* Its total, in the t: hash of its slot. */
		unsigned s = slot_of(k, strlen(k));
		snprintf(key, sizeof(key), "_shmstat:{%s}t:%s", slot_tag(s),
			 f->a.b.source);
		redisReply *r = ru_cmd(&f->r, "HGET %s %s", key, k);
		assert_non_null(r);
		assert_int_equal(r->type, REDIS_REPLY_STRING);
		assert_int_equal(atoll(r->str), i + 1);
		freeReplyObject(r);
	}
	assert_int_equal(ru_get(&f->r, "g1"), 7);
	/* No key of the untagged layout. */
	assert_false(ru_exists(&f->r, "_shmstat:feed"));
	assert_false(ru_exists(&f->r, "_shmstat:keys"));
	/* The slots it wrote, at home. */
	snprintf(key, sizeof(key), "_shmstat:{home}p:%s", f->a.b.source);
	redisReply *r = ru_cmd(&f->r, "SCARD %s", key);
	assert_non_null(r);
	bool g1_alone = true;
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		if (slot_of(k, strlen(k)) == slot_of("g1", 2))
			g1_alone = false;
	}
	assert_int_equal(r->integer, (long long)nslots(NC) + g1_alone);
	freeReplyObject(r);
	check_layout(f, NC, "g1");

	/* More counts, one push: exact again; a push without changes sends
	 * no counter. */
	for (int i = 0; i < NC; i += 3) {
		cname(k, sizeof(k), i);
		add(&f->a, k, 1000);
	}
	push(&f->a);
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		assert_int_equal(ru_get(&f->r, k), i + 1 + (i % 3 ? 0 : 1000));
	}
	push(&f->a);
	assert_int_equal(f->a.b.last_sent, 0);
}

static void two_sources_sum_and_see_each_other(void **state)
{
	struct fx *f = *state;
	char k[32];

	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		add(&f->a, k, 1);
		add(&f->b, k, 10);
	}
	push(&f->a);
	push(&f->b);
	push(&f->a); /* reads b's changes in its feeds */
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		assert_int_equal(ru_get(&f->r, k), 11);
		assert_int_equal(global_of(&f->a, k), 11);
		assert_int_equal(global_of(&f->b, k), 11);
	}
	/* One change of b: a learns it from that slot's feed. */
	add(&f->b, "c007", 5);
	push(&f->b);
	push(&f->a);
	assert_int_equal(global_of(&f->a, "c007"), 16);
	assert_int_equal(f->a.b.last_sent, 0);
	/* A hint lost (the home feed gone): the slot's own feed has the
	 * change, and a's pushes read every slot's feed in turn. */
	add(&f->b, "c008", 5);
	push(&f->b);
	redisReply *r = ru_cmd(&f->r, "DEL _shmstat:{home}feed");
	assert_non_null(r);
	freeReplyObject(r);
	int n = 0;
	for (; n < 40 && global_of(&f->a, "c008") != 16; n++)
		push(&f->a);
	assert_int_equal(global_of(&f->a, "c008"), 16);
	assert_true(n > 0);
}

static void a_global_reset_covers_every_slot(void **state)
{
	struct fx *f = *state;
	char k[32];
	uint64_t id, n = 0;

	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		add(&f->a, k, 3);
		add(&f->b, k, 4);
	}
	add(&f->a, "other", 9);
	push(&f->a);
	push(&f->b);
	assert_int_equal(shmstat_sync_reset_request(f->a.s.h, "c*", &id), 0);
	push(&f->a);
	assert_int_equal(shmstat_sync_reset_wait(f->a.s.h, id, 0, &n), 0);
	assert_int_equal(n, NC);
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		assert_int_equal(ru_get(&f->r, k), 0);
	}
	assert_int_equal(ru_get(&f->r, "other"), 9);
	/* Counts after it, from both sources, on top of 0; b's earlier
	 * counts are not pushed again. */
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		add(&f->a, k, 1);
		add(&f->b, k, 2);
	}
	push(&f->b);
	push(&f->a);
	push(&f->b);
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		assert_int_equal(ru_get(&f->r, k), 3);
	}
	assert_int_equal(ru_get(&f->r, "other"), 9);
	/* A reset that failed half way is run again with the same id: the
	 * slots it was done in (their reset_done) are not reset twice. */
	static unsigned char done[SLOT_COUNT];
	memset(done, 0, sizeof(done));
	assert_int_equal(shmstat_sync_reset_request(f->a.s.h, "c*", &id), 0);
	uint64_t want = 0;
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		unsigned s = slot_of(k, strlen(k));
		if (i % 2 == 0 && !done[s]) {
			redisReply *r = ru_cmd(&f->r,
					       "HSET _shmstat:{%s}s:%s "
					       "reset_done %" PRIu64,
					       slot_tag(s), f->a.b.source, id);
			assert_non_null(r);
			freeReplyObject(r);
			done[s] = 1;
		}
	}
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		want += !done[slot_of(k, strlen(k))];
	}
	assert_true(want > 50 && want < NC - 50);
	push(&f->a);
	assert_int_equal(shmstat_sync_reset_wait(f->a.s.h, id, 0, &n), 0);
	assert_int_equal(n, want);
	push(&f->b);
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		assert_int_equal(ru_get(&f->r, k),
				 done[slot_of(k, strlen(k))] ? 3 : 0);
	}
	assert_int_equal(ru_get(&f->r, "other"), 9);
}

static void a_flushed_redis_gets_everything_back(void **state)
{
	struct fx *f = *state;
	char k[32];

	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		add(&f->a, k, 2);
		add(&f->b, k, 5);
	}
	push(&f->a);
	push(&f->b);
	redisReply *r = ru_cmd(&f->r, "FLUSHALL");
	assert_non_null(r);
	freeReplyObject(r);
	add(&f->a, "c001", 1);
	push(&f->a);
	push(&f->b);
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		assert_int_equal(ru_get(&f->r, k), 7 + (i == 1));
	}
	/* The slots are known again at home: a reset reaches them all. */
	uint64_t id, n = 0;
	assert_int_equal(shmstat_sync_reset_request(f->b.s.h, "*", &id), 0);
	push(&f->b);
	assert_int_equal(shmstat_sync_reset_wait(f->b.s.h, id, 0, &n), 0);
	assert_int_equal(n, NC);
	/* Redis restarted empty (no persistence): the same. */
	add(&f->a, "c002", 4);
	push(&f->a);
	push(&f->b);
	ru_restart(&f->r);
	conn_close(&f->a.b);
	conn_close(&f->b.b);
	push(&f->a);
	push(&f->b);
	/* What came after the reset, nothing from before it (a key whose
	 * contribution is 0 is not written again). */
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		long long v = ru_get(&f->r, k);
		if (i == 2)
			assert_int_equal(v, 4);
		else if (v != LLONG_MIN)
			assert_int_equal(v, 0);
	}
}

static void a_clean_stop_withdraws_gauges_in_every_slot(void **state)
{
	struct fx *f = *state;
	char k[32];

	for (int i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "g%02d", i);
		gauge(&f->a, k, i + 1);
		gauge(&f->b, k, 100);
	}
	add(&f->a, "c000", 5);
	push(&f->a);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "g05"), 106);
	assert_int_equal(push_withdraw(&f->a.b), 0);
	for (int i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "g%02d", i);
		assert_int_equal(ru_get(&f->r, k), 100);
	}
	assert_int_equal(ru_get(&f->r, "c000"), 5);
	/* Its lease ended; M sources no longer holds it. */
	redisReply *r = ru_cmd(&f->r, "ZSCORE _shmstat:{home}sources %s",
			       f->a.b.source);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_NIL);
	freeReplyObject(r);
	/* Started again: its gauges are back, once. */
	push(&f->a);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "g05"), 106);
}

static void gauges_of_an_expired_source_leave_every_slot(void **state)
{
	struct fx *f = *state;
	char k[32], key[200];

	for (int i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "g%02d", i);
		gauge(&f->a, k, 1000);
		gauge(&f->b, k, i);
	}
	add(&f->a, "c000", 5);
	f->a.b.cf->owner_ttl_ms = 300;
	f->b.b.cf->gauge_expiry_ms = 200;
	push(&f->a);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "g07"), 1007);
	/* a's bridge dies (no clean stop): once its lease has ended for the
	 * expiry, b withdraws a's gauges in every slot, its counts stay. */
	char old[64];
	snprintf(old, sizeof(old), "%s", f->a.b.source);
	bridge_fini(&f->a.b);
	host_start(f, &f->a, "a1", "_shmstat:", true); /* not pushing */
	snprintf(key, sizeof(key), "_shmstat:{home}sources");
	bool gone = false;
	for (int i = 0; i < 100 && !gone; i++) {
		ru_sleep_ms(20);
		push(&f->b);
		redisReply *r = ru_cmd(&f->r, "ZSCORE %s %s", key, old);
		assert_non_null(r);
		gone = r->type == REDIS_REPLY_NIL;
		freeReplyObject(r);
	}
	assert_true(gone);
	for (int i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "g%02d", i);
		assert_int_equal(ru_get(&f->r, k), i);
		assert_int_equal(global_of(&f->b, k), i);
	}
	assert_int_equal(ru_get(&f->r, "c000"), 5);
	/* It comes back: its gauges count again, once. */
	push(&f->a);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "g07"), 1007);
}

static void a_recreated_segment_retires_the_old_source(void **state)
{
	struct fx *f = *state;
	char old[64], key[200];

	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "g%02d", i);
		gauge(&f->a, key, 3);
	}
	add(&f->a, "req", 1000);
	f->a.b.cf->owner_ttl_ms = 400;
	push(&f->a);
	snprintf(old, sizeof(old), "%s", f->a.b.source);
	/* The bridge is killed and the segment recreated (a reboot): once
	 * the old lease ends, the new source retires the old one in every
	 * slot: its gauges leave the sums, its counts stay. */
	bridge_fini(&f->a.b);
	shmstat_close(&f->a.s.h);
	assert_int_equal(shmstat_unlink(f->a.s.name), 0);
	shmstat_options_t o = opts;
	o.flags |= SHMSTAT_O_CREATE | SHMSTAT_O_EXCL;
	assert_int_equal(shmstat_open(f->a.s.name, &o, &f->a.s.h), 0);
	host_start(f, &f->a, "a1", "_shmstat:", true);
	assert_string_not_equal(old, f->a.b.source);
	add(&f->a, "req", 5);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "req"), 1005);
	snprintf(key, sizeof(key), "_shmstat:{home}s:%s", old);
	for (int i = 0; i < 100 && ru_exists(&f->r, key); i++) {
		ru_sleep_ms(50);
		push(&f->a);
	}
	assert_false(ru_exists(&f->r, key));
	assert_int_equal(ru_get(&f->r, "req"), 1005);
	assert_int_equal(ru_get(&f->r, "g03"), 0);
	snprintf(key, sizeof(key), "_shmstat:{home}p:%s", old);
	assert_false(ru_exists(&f->r, key));
	unsigned s = slot_of("req", 3);
	snprintf(key, sizeof(key), "_shmstat:{%s}t:%s", slot_tag(s), old);
	assert_false(ru_exists(&f->r, key));
	snprintf(key, sizeof(key), "_shmstat:{%s}t:%s", slot_tag(s),
		 f->a.b.source);
	assert_int_equal(ru_hlen(&f->r, key), 1);
}

/* A slot whose bookkeeping changed behind the bridge's back (here: lost
 * with its key, as a restore of that slot would) is not written from
 * stale knowledge: its transaction (or the sweep) finds another
 * sequence, the slot is read again and its counters pushed whole. */
static void a_slot_lost_behind_the_bridge_is_pushed_whole(void **state)
{
	struct fx *f = *state;
	char k[32];

	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		add(&f->a, k, 5);
	}
	push(&f->a);
	push(&f->a);
	unsigned s = slot_of("c005", 4);
	redisReply *r = ru_cmd(&f->r, "DEL c005 _shmstat:{%s}s:%s "
				      "_shmstat:{%s}t:%s",
			       slot_tag(s), f->a.b.source, slot_tag(s),
			       f->a.b.source);
	assert_non_null(r);
	freeReplyObject(r);
	add(&f->a, "c005", 1);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "c005"), 6);
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		if (slot_of(k, strlen(k)) == s)
			assert_int_equal(ru_get(&f->r, k), 5 + (i == 5));
	}
}

/* A key Redis refuses (not an integer) stays pending, its field
 * restored; the slots after it (whose reads rode with its transaction)
 * are pushed all the same. */
static void a_refused_key_leaves_the_other_slots_exact(void **state)
{
	struct fx *f = *state;
	char k[32];

	redisReply *r = ru_cmd(&f->r, "SET c010 notanumber");
	assert_non_null(r);
	freeReplyObject(r);
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		add(&f->a, k, 2);
	}
	assert_int_equal(conn_open(&f->a.b), 0);
	for (int n = 0; n < 3; n++) {
		assert_int_equal(push_all(&f->a.b), 0);
		assert_int_equal(f->a.b.status.pending, 1);
		assert_int_equal(f->a.b.status.refused_keys, 1);
	}
	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		if (i != 10)
			assert_int_equal(ru_get(&f->r, k), 2);
	}
	r = ru_cmd(&f->r, "DEL c010");
	assert_non_null(r);
	freeReplyObject(r);
	add(&f->a, "c011", 1);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "c010"), 2);
	assert_int_equal(ru_get(&f->r, "c011"), 3);
}

/* A push with one changed counter costs a bounded number of commands,
 * however many slots the source wrote: the feeds (two reads per slot,
 * pipelined), the lease and one slot's transaction. */
static void one_change_costs_one_slot(void **state)
{
	struct fx *f = *state;
	char k[32];

	for (int i = 0; i < NC; i++) {
		cname(k, sizeof(k), i);
		add(&f->a, k, 1);
	}
	push(&f->a);
	push(&f->a);
	redisReply *r = ru_cmd(&f->r, "CONFIG RESETSTAT");
	assert_non_null(r);
	freeReplyObject(r);
	add(&f->a, "c100", 1);
	push(&f->a);
	assert_int_equal(f->a.b.last_sent, 1);
	r = ru_cmd(&f->r, "INFO commandstats");
	assert_non_null(r);
	const char *w = strstr(r->str, "cmdstat_watch:calls=");
	const char *x = strstr(r->str, "cmdstat_exec:calls=");
	const char *in = strstr(r->str, "cmdstat_incrby:calls=");
	assert_non_null(w);
	assert_non_null(x);
	assert_non_null(in);
	assert_int_equal(atoi(w + 20), 1);         /* one slot's WATCH */
	assert_int_equal(atoi(x + 19), 2);         /* it, and the lease */
	assert_int_equal(atoi(in + 21), 1);
	freeReplyObject(r);
	assert_int_equal(ru_get(&f->r, "c100"), 2);
}

/* ------------------------------------------------------------- refusals */

static void switching_the_layout_is_refused(void **state)
{
	struct fx *f = *state;

	add(&f->a, "req", 1);
	push(&f->a);
	bridge_fini(&f->a.b);
	/* The same segment without --partition-by-slot: refused at the
	 * first push (a cluster could still choose the layout), nothing
	 * written twice. */
	bconf_defaults(&f->a.cf);
	f->a.cf.segment = f->a.s.name;
	snprintf(f->a.cf.redis.path, sizeof(f->a.cf.redis.path), "%s",
		 f->r.sock);
	snprintf(f->a.cf.addr, sizeof(f->a.cf.addr), "%s", f->r.url);
	f->a.cf.host_id = 0xa1;
	f->a.cf.host_id_set = true;
	assert_int_equal(bridge_init(&f->a.b, &f->a.cf, f->a.s.h), 0);
	assert_int_equal(conn_open(&f->a.b), 0);
	assert_int_equal(push_all(&f->a.b), -1);
	assert_true(f->a.b.refused);
	assert_non_null(strstr(f->a.b.status.last_error,
			       "pushing it in the standalone layout would "
			       "miss that bookkeeping"));
	assert_true(strlen(f->a.b.status.last_error) < 255); /* all of it */
	assert_non_null(strstr(f->a.b.status.last_error,
			       "Start the bridge with --partition-by-slot"));
	assert_int_equal(ru_get(&f->r, "req"), 1);
	assert_false(ru_exists(&f->r, "_shmstat:feed"));
	bridge_fini(&f->a.b);
	/* And back: it pushes as before. */
	host_start(f, &f->a, "a1", "_shmstat:", true);
	add(&f->a, "req", 1);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "req"), 2);

	/* A segment pushed without partitions refuses them. */
	add(&f->b, "req", 1);
	bridge_fini(&f->b.b);
	host_start(f, &f->b, "b2", "_shmstat:", false);
	push(&f->b);
	assert_int_equal(ru_get(&f->r, "req"), 3);
	bridge_fini(&f->b.b);
	bconf_defaults(&f->b.cf);
	f->b.cf.segment = f->b.s.name;
	f->b.cf.partition_by_slot = true;
	f->b.cf.host_id = 0xb2;
	f->b.cf.host_id_set = true;
	assert_int_equal(bridge_init(&f->b.b, &f->b.cf, f->b.s.h), -1);
	assert_true(f->b.b.refused);
	assert_non_null(strstr(f->b.b.status.last_error,
			       "was pushed in the standalone layout"));
	assert_non_null(strstr(f->b.b.status.last_error,
			       "to move it to a Redis Cluster, recreate the "
			       "segment (see doc/bridge.md)"));
	bridge_fini(&f->b.b);
	host_start(f, &f->b, "b2", "_shmstat:", false);
}

static void a_second_bridge_of_a_source_is_refused(void **state)
{
	struct fx *f = *state;
	struct bconf cf;
	struct bridge b2;

	add(&f->a, "req", 1);
	push(&f->a);
	/* Another bridge of the same segment while the lease runs (held at
	 * home): refused, nothing written. */
	bconf_defaults(&cf);
	cf.segment = f->a.s.name;
	snprintf(cf.redis.path, sizeof(cf.redis.path), "%s", f->r.sock);
	snprintf(cf.addr, sizeof(cf.addr), "%s", f->r.url);
	cf.connect_timeout_ms = cf.command_timeout_ms = 5000;
	cf.owner_ttl_ms = 60000;
	cf.partition_by_slot = true;
	cf.host_id = 0xa1;
	cf.host_id_set = true;
	assert_int_equal(bridge_init(&b2, &cf, f->a.s.h), 0);
	assert_string_equal(b2.source, f->a.b.source);
	/* Its own token: as a bridge of a copy of the segment would have. */
	b2.token[0] ^= 1;
	assert_int_equal(conn_open(&b2), 0);
	add(&f->a, "req", 1);
	assert_int_equal(push_all(&b2), -1);
	assert_true(b2.refused);
	assert_non_null(strstr(b2.status.last_error, "another live bridge"));
	assert_int_equal(ru_get(&f->r, "req"), 1);
	bridge_fini(&b2);
	push(&f->a);
	assert_int_equal(ru_get(&f->r, "req"), 2);
}

static void a_meta_prefix_with_a_brace_is_refused(void **state)
{
	struct fx *f = *state;
	struct bconf cf;
	struct bridge b;

	bconf_defaults(&cf);
	cf.segment = f->a.s.name;
	cf.partition_by_slot = true;
	cf.meta_prefix = "_s{x}:";
	assert_int_equal(bridge_init(&b, &cf, f->a.s.h), -1);
	assert_true(b.refused);
	assert_true(b.misconfigured); /* the daemon exits 1: an option */
	bridge_fini(&b);
	cf.meta_prefix = "_s}:";
	assert_int_equal(bridge_init(&b, &cf, f->a.s.h), -1);
	bridge_fini(&b);
	/* Without partitions a brace is only a character. */
	cf.partition_by_slot = false;
	cf.meta_prefix = "_s{x}:";
	assert_int_equal(bridge_init(&b, &cf, f->a.s.h), 0);
	bridge_fini(&b);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_slot_function_is_redis_own),
		T(counters_over_many_slots_are_exact),
		T(two_sources_sum_and_see_each_other),
		T(a_global_reset_covers_every_slot),
		T(a_flushed_redis_gets_everything_back),
		T(a_clean_stop_withdraws_gauges_in_every_slot),
		T(gauges_of_an_expired_source_leave_every_slot),
		T(a_recreated_segment_retires_the_old_source),
		T(a_slot_lost_behind_the_bridge_is_pushed_whole),
		T(a_refused_key_leaves_the_other_slots_exact),
		T(one_change_costs_one_slot),
		T(switching_the_layout_is_refused),
		T(a_second_bridge_of_a_source_is_refused),
		T(a_meta_prefix_with_a_brace_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
