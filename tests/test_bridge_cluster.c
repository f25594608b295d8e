/*
 * test_bridge_cluster.c — shmstat-bridge and Redis Cluster: not supported
 * (a push is one transaction over the keys of many slots). A node of a
 * real cluster-enabled redis-server is refused at connect with a message
 * that says so and what to use instead, and nothing is written to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redisutil.h"
#include "testutil.h"

static const shmstat_options_t small = {
	.size = 4u << 20, .max_counters = 64, .max_workers = 8,
};

static void a_cluster_node_is_refused_clearly(void **state)
{
	struct ru_server r = { 0 };
	struct tu_seg a;
	char log[300];
	static const char *const extra[] = { "--cluster-enabled", "yes", NULL };

	(void)state;
	r.extra = extra;
	ru_start(&r);
	ru_path(&r, log, sizeof(log), "bridge.log");
	tu_seg_create(&a, "cls", &small);
	assert_int_equal(shmstat_counter_add_by_name(a.h, "c", 3), 0);
	pid_t p = ru_bridge(r.dir, a.name, r.url, log, "--once", NULL);
	assert_int_equal(tu_wait(p, 15000), 1);
	assert_true(ru_file_has(log, "is a Redis Cluster node: the bridge does "
				     "not support Redis Cluster"));
	redisReply *rep = ru_cmd(&r, "DBSIZE");
	assert_non_null(rep);
	assert_int_equal(rep->integer, 0);
	freeReplyObject(rep);
	shmstat_close(&a.h);
	shmstat_unlink(a.name);
	ru_destroy(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_cluster_node_is_refused_clearly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
