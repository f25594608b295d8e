/*
 * test_bridge_sync.c — shmstat-bridge against a real redis-server: keys
 * are plain integers equal to the totals, the cluster-wide values come
 * back into the segment, two hosts sum, gauges sum, a global reset counts
 * from zero, two segments with one host id sum, a second bridge is
 * refused, SIGTERM pushes once more, and the tool shows it all.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

static int setup(void **state) { return ru_pair_setup(state, "bra", "brb"); }
static int teardown(void **state) { return ru_pair_teardown(state); }

static void add(shmstat_t *h, const char *name, uint64_t n)
{
	assert_int_equal(shmstat_counter_add_by_name(h, name, n), 0);
}

static int64_t global_of(shmstat_t *h, const char *name)
{
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(h, name, &st), 0);
	assert_true(st.global_ns != 0);
	return st.global;
}

static void keys_are_plain_integers_equal_to_the_totals(void **state)
{
	struct ru_pair *f = *state;
	shmstat_gauge_t g;

	add(f->a.h, "filter_stats:ml_confident", 5);
	add(f->a.h, "filter_stats:rejected", 7);
	assert_int_equal(shmstat_gauge_open(f->a.h, "inflight", &g), 0);
	shmstat_gauge_set(g, -3);
	pid_t p = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			    "10ms", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "filter_stats:ml_confident"), 5);
	assert_int_equal(ru_get(&f->r, "filter_stats:rejected"), 7);
	assert_int_equal(ru_get(&f->r, "inflight"), -3);
	assert_int_equal(global_of(f->a.h, "filter_stats:ml_confident"), 5);

	add(f->a.h, "filter_stats:ml_confident", 10);
	shmstat_gauge_set(g, 4);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "filter_stats:ml_confident"), 15);
	assert_int_equal(ru_get(&f->r, "inflight"), 4);
	assert_int_equal(global_of(f->a.h, "filter_stats:ml_confident"), 15);

	/* The tool: reconciled, fresh values say source redis. */
	char out[8192];
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "get",
				 "--global", "filter_stats:ml_confident", NULL),
			 0);
	assert_string_equal(out, "15\n");
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "list",
				 "-j", NULL),
			 0);
	/* The plain document is this segment's: local, and says so. */
	assert_non_null(strstr(out, "\"scope\": \"local\""));
	assert_non_null(strstr(out, "\"source\": \"local\""));
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "list",
				 "-j", "--global", NULL),
			 0);
	assert_non_null(strstr(out, "\"scope\": \"global\""));
	assert_non_null(strstr(out, "\"source\": \"redis\""));
	assert_non_null(strstr(out, "\"filter_stats:ml_confident\": 15"));
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "get",
				 "-j", "filter_stats:rejected", NULL),
			 0);
	assert_non_null(strstr(out, "\"source\": \"redis\""));
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "info",
				 "-j", NULL),
			 0);
	assert_non_null(strstr(out, "\"connected\": true"));
	assert_non_null(strstr(out, "\"pending\": 0"));
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "info",
				 NULL),
			 0);
	assert_non_null(strstr(out, "bridge:    connected"));

	/* Stopped bridge: the global values are stale. */
	assert_int_equal(ru_bridge_stop(p), 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "list",
				 "-j", "--global", NULL),
			 0);
	assert_non_null(strstr(out, "\"source\": \"stale\""));
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "info",
				 NULL),
			 0);
	assert_non_null(strstr(out, "bridge:    not running"));
}

static void a_key_prefix_is_prepended(void **state)
{
	struct ru_pair *f = *state;

	add(f->a.h, "hits", 3);
	pid_t p = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			    "10ms", "--key-prefix", "app:", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "app:hits"), 3);
	assert_int_equal(ru_get(&f->r, "hits"), LLONG_MIN);
	assert_int_equal(ru_bridge_stop(p), 0);
}

static void two_hosts_sum_and_each_sees_the_sum(void **state)
{
	struct ru_pair *f = *state;
	shmstat_gauge_t ga, gb;

	add(f->a.h, "req", 100);
	add(f->b.h, "req", 23);
	add(f->b.h, "only_b", 9);
	assert_int_equal(shmstat_gauge_open(f->a.h, "conns", &ga), 0);
	assert_int_equal(shmstat_gauge_open(f->b.h, "conns", &gb), 0);
	shmstat_gauge_set(ga, 10);
	shmstat_gauge_set(gb, 5);
	pid_t pa = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			     "10ms", "--host-id", "a1", NULL);
	pid_t pb = ru_bridge(f->r.dir, f->b.name, f->r.url, f->log, "-i",
			     "10ms", "--host-id", "b2", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	/* Once more each, so each has read the other's contribution. */
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_int_equal(ru_get(&f->r, "req"), 123);
	assert_int_equal(ru_get(&f->r, "only_b"), 9);
	assert_int_equal(ru_get(&f->r, "conns"), 15);
	assert_int_equal(global_of(f->a.h, "req"), 123);
	assert_int_equal(global_of(f->b.h, "req"), 123);
	assert_int_equal(global_of(f->a.h, "conns"), 15);

	add(f->a.h, "req", 1);
	add(f->b.h, "req", 2);
	shmstat_gauge_set(gb, -1);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "req"), 126);
	assert_int_equal(ru_get(&f->r, "conns"), 9);
	assert_int_equal(global_of(f->a.h, "req"), 126);
	assert_int_equal(global_of(f->b.h, "req"), 126);

	/* Bookkeeping: both sources, under the documented prefix, keyed by
	 * the Redis key. */
	redisReply *rep = ru_cmd(&f->r, "ZCARD _shmstat:sources");
	assert_non_null(rep);
	assert_int_equal(rep->integer, 2);
	freeReplyObject(rep);
	shmstat_sync_status_t st;
	assert_int_equal(shmstat_sync_status_read(f->a.h, &st), 0);
	assert_memory_equal(st.source, "00000000000000a1.", 17);
	rep = ru_cmd(&f->r, "HGET _shmstat:t:%s req", st.source);
	assert_non_null(rep);
	assert_string_equal(rep->str, "101");
	freeReplyObject(rep);
	/* B stops cleanly: its gauge leaves the sum, its counts stay. */
	assert_int_equal(ru_bridge_stop(pb), 0);
	assert_int_equal(ru_get(&f->r, "conns"), 10);
	assert_int_equal(ru_get(&f->r, "req"), 126);
	assert_true(ru_file_has(f->log, "gauges withdrawn"));
	assert_int_equal(ru_bridge_stop(pa), 0);
	assert_int_equal(ru_get(&f->r, "conns"), 0);
}

static void a_global_reset_counts_every_host_from_zero(void **state)
{
	struct ru_pair *f = *state;
	char out[4096];

	add(f->a.h, "jobs:done", 40);
	add(f->b.h, "jobs:done", 2);
	add(f->a.h, "other", 5);
	pid_t pa = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			     "10ms", "--host-id", "a1", NULL);
	pid_t pb = ru_bridge(f->r.dir, f->b.name, f->r.url, f->log, "-i",
			     "10ms", "--host-id", "b2", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_int_equal(ru_get(&f->r, "jobs:done"), 42);

	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "reset",
				 "--global", "jobs:*", NULL),
			 0);
	assert_string_equal(out, "1\n");
	assert_int_equal(ru_get(&f->r, "jobs:done"), 0);
	assert_int_equal(ru_get(&f->r, "other"), 5);
	/* Local values are untouched. */
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(f->a.h, "jobs:done", &st), 0);
	assert_int_equal(st.value, 40);

	add(f->a.h, "jobs:done", 1);
	add(f->b.h, "jobs:done", 3);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "jobs:done"), 4);
	assert_int_equal(global_of(f->a.h, "jobs:done"), 4);

	/* The reset survives a Redis that comes back empty: the hosts
	 * mirror their reset bases in the segment. */
	ru_restart(&f->r);
	assert_true(ru_wait_synced(f->a.h, 15000));
	assert_true(ru_wait_synced(f->b.h, 15000));
	assert_int_equal(ru_get(&f->r, "jobs:done"), 4);
	assert_int_equal(ru_get(&f->r, "other"), 5);
	assert_int_equal(ru_bridge_stop(pa), 0);
	assert_int_equal(ru_bridge_stop(pb), 0);

	/* Without a bridge the tool refuses and changes nothing: the
	 * operation failed (3), not a miss. */
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "reset",
				 "--global", "jobs:*", NULL),
			 3);
}

/* A host id names a machine, not what syncs: two segments given the
 * same --host-id are two sources, and they sum. */
static void two_segments_with_the_same_host_id_sum(void **state)
{
	struct ru_pair *f = *state;

	add(f->a.h, "x", 1);
	add(f->b.h, "x", 1);
	pid_t pa = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			     "10ms", "--host-id", "77", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	pid_t pb = ru_bridge(f->r.dir, f->b.name, f->r.url, f->log, "-i",
			     "10ms", "--host-id", "77", NULL);
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "x"), 2);
	assert_int_equal(global_of(f->a.h, "x"), 2);
	assert_int_equal(ru_bridge_stop(pa), 0);
	assert_int_equal(ru_bridge_stop(pb), 0);
}

static void one_bridge_per_segment(void **state)
{
	struct ru_pair *f = *state;
	char other[300];

	pid_t pa = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			     "10ms", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	/* Same pidfile. */
	pid_t p2 = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, NULL);
	assert_int_equal(tu_wait(p2, 10000), 3);
	assert_true(ru_file_has(f->log, "already serves segment"));
	/* Another pidfile: the status in the segment still refuses it. */
	snprintf(other, sizeof(other), "%s/other.pid", f->r.dir);
	p2 = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "--pidfile",
		       other, NULL);
	assert_int_equal(tu_wait(p2, 10000), 3);
	assert_int_equal(ru_bridge_stop(pa), 0);
}

static void sigterm_pushes_once_more_and_exits_zero(void **state)
{
	struct ru_pair *f = *state;

	add(f->a.h, "late", 1);
	pid_t p = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			    "60s", NULL);
	assert_true(ru_wait_file_has(f->log, "connected to Redis", 10000));
	shmstat_sync_status_t st;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(shmstat_sync_status_read(f->a.h, &st), 0);
		if (st.pushes_ok >= 1)
			break;
		ru_sleep_ms(10);
	}
	assert_int_equal(st.pushes_ok, 1);
	add(f->a.h, "late", 41);
	/* SIGPIPE is ignored, never fatal. */
	kill(p, SIGPIPE);
	assert_int_equal(ru_bridge_stop(p), 0);
	assert_int_equal(ru_get(&f->r, "late"), 42);
	assert_true(ru_file_has(f->log, "final push done"));
}

/* What a reboot does to a segment: /dev/shm is emptied; the application
 * creates it again. The tool does it here, with the segment's handle in
 * this test reopened after. */
static void reboot(struct ru_pair *f, struct tu_seg *x)
{
	char out[256];

	shmstat_close(&x->h);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", x->name, "destroy",
				 NULL),
			 0);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", x->name, "create",
				 "--counters", "256", "--size", "4194304",
				 NULL),
			 0);
	assert_int_equal(shmstat_open(x->name, NULL, &x->h), 0);
	(void)f;
}

static void a_reboot_keeps_the_history_and_adds_from_zero(void **state)
{
	struct ru_pair *f = *state;

	/* The bridge restarted at once, the old lease still running. */
	char before[4096], after[4096];
	assert_int_equal(tu_tool(before, sizeof(before), "-n", f->a.name,
				 "info", "-j", NULL),
			 0);
	add(f->a.h, "req", 1000);
	pid_t p = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			    "10ms", "--owner-ttl", "1s", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "req"), 1000);
	kill(p, SIGKILL);
	assert_int_equal(tu_wait(p, 10000), 128 + SIGKILL);
	reboot(f, &f->a);
	/* A new incarnation: another nonce, so another source. */
	assert_int_equal(tu_tool(after, sizeof(after), "-n", f->a.name,
				 "info", "-j", NULL),
			 0);
	const char *nb = strstr(before, "\"source_nonce\"");
	const char *na = strstr(after, "\"source_nonce\"");
	assert_non_null(nb);
	assert_non_null(na);
	assert_memory_not_equal(nb, na, 38);
	add(f->a.h, "req", 5);
	p = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i", "10ms",
		      "--owner-ttl", "1s", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "req"), 1005);
	assert_int_equal(global_of(f->a.h, "req"), 1005);

	/* Again, the bridge restarted after its lease ended. */
	kill(p, SIGKILL);
	assert_int_equal(tu_wait(p, 10000), 128 + SIGKILL);
	reboot(f, &f->a);
	add(f->a.h, "req", 7);
	ru_sleep_ms(1200);
	p = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i", "10ms",
		      "--owner-ttl", "1s", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "req"), 1012);
	assert_false(ru_file_has(f->log, "another live bridge"));
	assert_int_equal(ru_bridge_stop(p), 0);
}

/* A segment recreated under a running bridge: the bridge pushes what the
 * old one holds a last time and exits 4 (its service manager starts it
 * again, on the new segment), instead of serving a segment nobody can
 * find any more. */
static void a_bridge_whose_segment_is_recreated_pushes_and_exits_4(void **state)
{
	struct ru_pair *f = *state;

	add(f->a.h, "req", 40);
	pid_t p = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			    "10ms", "--owner-ttl", "1s", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	add(f->a.h, "req", 2); /* counted on the old one, maybe not pushed */
	reboot(f, &f->a);
	assert_int_equal(tu_wait(p, 20000), 4);
	assert_true(ru_file_has(f->log, "was removed or recreated"));
	assert_int_equal(ru_get(&f->r, "req"), 42);
	/* The bridge started again serves the new source. */
	add(f->a.h, "req", 5);
	p = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i", "10ms",
		      "--owner-ttl", "1s", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "req"), 47);
	assert_int_equal(ru_bridge_stop(p), 0);
}

/* Resets from sources whose clocks are a year and 30 s ahead of another's
 * all apply, in the order Redis received them. */
static void resets_apply_in_redis_order_whatever_the_clocks(void **state)
{
	struct ru_pair *f = *state;
	char cmd[1024];
	const char *tool = getenv("SHMSTAT_TOOL");
	const char *lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

	if (access(lib, R_OK) != 0)
		skip();
	/* Under AddressSanitizer the preloaded library comes first: let it. */
	char asan[512];
	const char *ao = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0",
		 ao ? ao : "", ao && *ao ? ":" : "");
	setenv("ASAN_OPTIONS", asan, 1);
	add(f->a.h, "jobs", 10);
	add(f->b.h, "jobs", 5);
	/* A's bridge and tool live a year ahead. */
	setenv("LD_PRELOAD", lib, 1);
	setenv("FAKETIME", "+365d", 1);
	setenv("DONT_FAKE_MONOTONIC", "1", 1);
	pid_t pa = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			     "10ms", NULL);
	unsetenv("LD_PRELOAD");
	unsetenv("FAKETIME");
	pid_t pb = ru_bridge(f->r.dir, f->b.name, f->r.url, f->log, "-i",
			     "10ms", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_int_equal(ru_get(&f->r, "jobs"), 15);

	snprintf(cmd, sizeof(cmd),
		 "LD_PRELOAD=%s FAKETIME=+365d DONT_FAKE_MONOTONIC=1 %s -n %s "
		 "reset --global jobs >/dev/null",
		 lib, tool, f->a.name);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ru_get(&f->r, "jobs"), 0);
	add(f->a.h, "jobs", 1);
	add(f->b.h, "jobs", 2);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_int_equal(ru_get(&f->r, "jobs"), 3);

	/* B's clock is a year behind A's: its reset applies all the same. */
	snprintf(cmd, sizeof(cmd), "%s -n %s reset --global jobs >/dev/null",
		 tool, f->b.name);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ru_get(&f->r, "jobs"), 0);
	add(f->a.h, "jobs", 4);
	add(f->b.h, "jobs", 8);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_int_equal(ru_get(&f->r, "jobs"), 12);

	/* And one from a tool 30 s ahead, on B. */
	snprintf(cmd, sizeof(cmd),
		 "LD_PRELOAD=%s FAKETIME=+30s DONT_FAKE_MONOTONIC=1 %s -n %s "
		 "reset --global jobs >/dev/null",
		 lib, tool, f->b.name);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ru_get(&f->r, "jobs"), 0);
	add(f->a.h, "jobs", 1);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_int_equal(ru_get(&f->r, "jobs"), 1);
	assert_int_equal(global_of(f->a.h, "jobs"), 1);
	assert_int_equal(global_of(f->b.h, "jobs"), 1);
	unsetenv("DONT_FAKE_MONOTONIC");
	assert_int_equal(ru_bridge_stop(pa), 0);
	assert_int_equal(ru_bridge_stop(pb), 0);
}

/*
 * The documented limit of a restore: Redis restored from a snapshot taken
 * before a reset forgets the reset. A source that pushed after the reset
 * (its bridge running) brings it back for its own counts, from the base
 * mirrored in its segment; a source whose bridge did not learn of the
 * reset before the restore counts its old contribution again.
 */
static void a_restore_before_a_reset_is_undone_by_live_sources(void **state)
{
	struct ru_pair *f = *state;

	add(f->a.h, "jobs", 10);
	add(f->b.h, "jobs", 5);
	pid_t pa = ru_bridge(f->r.dir, f->a.name, f->r.url, f->log, "-i",
			     "10ms", NULL);
	pid_t pb = ru_bridge(f->r.dir, f->b.name, f->r.url, f->log, "-i",
			     "10ms", NULL);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	redisReply *rep = ru_cmd(&f->r, "SAVE");
	freeReplyObject(rep);
	char out[64];
	assert_int_equal(tu_tool(out, sizeof(out), "-n", f->a.name, "reset",
				 "--global", "jobs", NULL),
			 0);
	assert_true(ru_wait_synced(f->a.h, 10000));
	assert_true(ru_wait_synced(f->b.h, 10000));
	assert_int_equal(ru_get(&f->r, "jobs"), 0);
	/* Redis comes back from the snapshot taken before the reset. */
	ru_stop(&f->r);
	ru_start(&f->r);
	assert_true(ru_wait_synced(f->a.h, 15000));
	assert_true(ru_wait_synced(f->b.h, 15000));
	assert_int_equal(ru_get(&f->r, "jobs"), 0);
	assert_int_equal(ru_bridge_stop(pa), 0);
	assert_int_equal(ru_bridge_stop(pb), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			keys_are_plain_integers_equal_to_the_totals, setup,
			teardown),
		cmocka_unit_test_setup_teardown(a_key_prefix_is_prepended,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			two_hosts_sum_and_each_sees_the_sum, setup, teardown),
		cmocka_unit_test_setup_teardown(
			a_global_reset_counts_every_host_from_zero, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			two_segments_with_the_same_host_id_sum, setup,
			teardown),
		cmocka_unit_test_setup_teardown(one_bridge_per_segment, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			sigterm_pushes_once_more_and_exits_zero, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			a_reboot_keeps_the_history_and_adds_from_zero, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			a_bridge_whose_segment_is_recreated_pushes_and_exits_4,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			resets_apply_in_redis_order_whatever_the_clocks, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			a_restore_before_a_reset_is_undone_by_live_sources,
			setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
