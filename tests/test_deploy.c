/*
 * test_deploy.c — deploy/redis.conf as shipped, with a real redis-server
 * (only its network and file paths overridden to a private directory):
 * it loads, never evicts, and its ACL user for the bridge allows exactly
 * what shmstat-bridge sends — pushes, reconciles and a global reset go
 * through, and nothing else does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

#define DEFAULT_PW "CHANGE-ME-default-password"
#define BRIDGE_USER "shmstat-bridge"
#define BRIDGE_PW "CHANGE-ME-bridge-password"

static void the_shipped_redis_conf_serves_the_bridge_through_its_acl_user(void **state)
{
	(void)state;
	char conf[512], log[300], out[256];
	const char *src = getenv("SHMSTAT_SOURCE_ROOT");
	struct ru_server r = { 0 };
	struct tu_seg s;

	assert_non_null(src);
	snprintf(conf, sizeof(conf), "%s/deploy/redis.conf", src);
	r.config = conf;
	snprintf(r.password, sizeof(r.password), "%s", DEFAULT_PW);
	ru_start(&r);

	/* What the file promises. */
	redisReply *rep = ru_cmd(&r, "CONFIG GET maxmemory-policy");
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	assert_string_equal(rep->element[1]->str, "noeviction");
	freeReplyObject(rep);
	rep = ru_cmd(&r, "ACL DRYRUN %s FLUSHALL", BRIDGE_USER);
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STRING); /* a refusal text */
	assert_non_null(strstr(rep->str, "no permissions"));
	freeReplyObject(rep);

	/* The bridge as that user: counts reach Redis and come back. */
	tu_seg_create(&s, "deploy", NULL);
	shmstat_counter_add_by_name(s.h, "filter_stats:ml_confident", 41);
	shmstat_counter_add_by_name(s.h, "filter_stats:rejected", 2);
	setenv("REDIS_USERNAME", BRIDGE_USER, 1);
	setenv("REDIS_PASSWORD", BRIDGE_PW, 1);
	ru_path(&r, log, sizeof(log), "bridge.log");
	pid_t b = ru_bridge(r.dir, s.name, r.url, log, "-i", "20ms", NULL);
	unsetenv("REDIS_USERNAME");
	unsetenv("REDIS_PASSWORD");
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(ru_get(&r, "filter_stats:ml_confident"), 41);
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(s.h, "filter_stats:ml_confident", &st), 0);
	assert_int_equal(st.global, 41);

	/* A global reset runs its own script: allowed too. */
	assert_int_equal(tu_tool(out, sizeof(out), "-n", s.name, "reset",
				 "--global", "filter_stats:*", NULL),
			 0);
	shmstat_counter_add_by_name(s.h, "filter_stats:rejected", 5);
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(ru_get(&r, "filter_stats:ml_confident"), 0);
	assert_int_equal(ru_get(&r, "filter_stats:rejected"), 5);

	assert_int_equal(ru_bridge_stop(b), 0);
	/* Nothing the bridge sent was refused by the ACL. */
	assert_false(ru_file_has(log, "NOPERM"));
	assert_false(ru_file_has(log, "no permissions"));
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/* A reset that Redis refuses (here: an ACL without SSCAN) ends with a
 * clear error, and the bridge goes on pushing: nothing else stops. */
static void a_refused_global_reset_fails_clearly_and_pushing_goes_on(void **state)
{
	(void)state;
	char log[300], out[256];
	struct ru_server r = { 0 };
	struct tu_seg s;

	snprintf(r.password, sizeof(r.password), "%s", DEFAULT_PW);
	ru_start(&r);
	redisReply *rep = ru_cmd(&r, "ACL SETUSER narrow on >pw ~* -@all +auth "
				     "+hello +ping +select +info +evalsha +eval "
				     "+script|load +get +mget +set +incr +incrby "
				     "+hget +hmget +hset +hdel +hgetall +hincrby "
				     "+sadd +sismember +srem +del +exists +time "
				     "+watch +unwatch +multi +exec +zadd +zrem "
				     "+zmscore +zrangebyscore +xadd +xrange "
				     "+xrevrange");
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STATUS);
	freeReplyObject(rep);
	tu_seg_create(&s, "refused", NULL);
	shmstat_counter_add_by_name(s.h, "a", 1);
	setenv("REDIS_USERNAME", "narrow", 1);
	setenv("REDIS_PASSWORD", "pw", 1);
	ru_path(&r, log, sizeof(log), "bridge.log");
	pid_t b = ru_bridge(r.dir, s.name, r.url, log, "-i", "20ms", NULL);
	unsetenv("REDIS_USERNAME");
	unsetenv("REDIS_PASSWORD");
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(tu_tool(out, sizeof(out), "-n", s.name, "reset",
				 "--global", "a", NULL),
			 3); /* the operation failed */
	assert_true(ru_file_has(log, "NOPERM"));
	shmstat_counter_add_by_name(s.h, "a", 5);
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(ru_get(&r, "a"), 6); /* not reset, still pushed */
	assert_int_equal(ru_bridge_stop(b), 0);
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_shipped_redis_conf_serves_the_bridge_through_its_acl_user),
		cmocka_unit_test(a_refused_global_reset_fails_clearly_and_pushing_goes_on),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
