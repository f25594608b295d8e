/*
 * test_deploy.c — deploy/redis.conf as shipped, with a real redis-server
 * (only its network and file paths overridden to a private directory):
 * it loads, never evicts, and its ACL user for the bridge allows exactly
 * what shmstat-bridge sends — pushes, reconciles and a global reset go
 * through, and nothing else does: no other command, no key outside its
 * prefixes. The bridge runs with the shipped bridge.env's variables (only
 * the Redis address replaced). The unit passes `systemd-analyze verify`.
 */
#include <errno.h>
#include <sys/wait.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

#define DEFAULT_PW "CHANGE-ME-default-password"
#define BRIDGE_USER "shmstat-bridge"
#define BRIDGE_PW "CHANGE-ME-bridge-password"

/* Set the variables of deploy/bridge.env (KEY=VALUE lines, "..." quotes
 * as systemd's EnvironmentFile= takes them) but REDIS_URL, which is the
 * test's Redis. */
static int apply_env_file(const char *src, const char *url)
{
	char path[512], line[1024];
	int n = 0;

	snprintf(path, sizeof(path), "%s/deploy/bridge.env", src);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *eq = strchr(line, '=');
		if (line[0] == '#' || !eq)
			continue;
		*eq = '\0';
		char *v = eq + 1;
		size_t vl = strlen(v);
		if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
			v[vl - 1] = '\0';
			v++;
		}
		setenv(line, strcmp(line, "REDIS_URL") == 0 ? url : v, 1);
		n++;
	}
	fclose(f);
	return n;
}

static void unset_env_file(void)
{
	unsetenv("REDIS_URL");
	unsetenv("REDIS_USERNAME");
	unsetenv("REDIS_PASSWORD");
	unsetenv("SHMSTAT_BRIDGE_OPTS");
}

/* One command as the bridge's ACL user. */
static redisReply *as_bridge(struct ru_server *r, const char *fmt, ...)
{
	redisContext *c = redisConnectUnix(r->sock);
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	redisReply *rep = redisCommand(c, "AUTH %s %s", BRIDGE_USER, BRIDGE_PW);
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STATUS);
	freeReplyObject(rep);
	va_list ap;
	va_start(ap, fmt);
	rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	return rep;
}

static bool refused(redisReply *rep)
{
	bool no = rep && rep->type == REDIS_REPLY_ERROR &&
		  strncmp(rep->str, "NOPERM", 6) == 0;
	if (rep)
		freeReplyObject(rep);
	return no;
}

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
	assert_true(apply_env_file(src, r.url) >= 4);
	assert_string_equal(getenv("REDIS_USERNAME"), BRIDGE_USER);
	ru_path(&r, log, sizeof(log), "bridge.log");
	pid_t b = ru_bridge(r.dir, s.name, NULL, log, "-i", "20ms", NULL);
	unset_env_file();
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(ru_get(&r, "stats:filter_stats:ml_confident"), 41);
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(s.h, "filter_stats:ml_confident", &st), 0);
	assert_int_equal(st.global, 41);

	/* A global reset runs its own script: allowed too. */
	assert_int_equal(tu_tool(out, sizeof(out), "-n", s.name, "reset",
				 "--global", "filter_stats:*", NULL),
			 0);
	shmstat_counter_add_by_name(s.h, "filter_stats:rejected", 5);
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(ru_get(&r, "stats:filter_stats:ml_confident"), 0);
	assert_int_equal(ru_get(&r, "stats:filter_stats:rejected"), 5);

	/* Its credentials reach its own keys only. */
	freeReplyObject(ru_cmd(&r, "SET app:session secret-data"));
	assert_true(refused(as_bridge(&r, "GET app:session")));
	assert_true(refused(as_bridge(&r, "SET app:session x")));
	assert_true(refused(as_bridge(&r, "INCRBY app:n 1")));
	assert_true(refused(as_bridge(&r, "MGET stats:filter_stats:rejected app:session")));
	assert_true(refused(as_bridge(&r, "DEL app:session")));
	assert_true(refused(as_bridge(&r, "PUBLISH ch x")));
	redisReply *ok = as_bridge(&r, "GET stats:filter_stats:rejected");
	assert_non_null(ok);
	assert_int_equal(ok->type, REDIS_REPLY_STRING);
	freeReplyObject(ok);
	rep = ru_cmd(&r, "GET app:session");
	assert_string_equal(rep->str, "secret-data");
	freeReplyObject(rep);

	assert_int_equal(ru_bridge_stop(b), 0);

	/* The per-slot layout (a Redis Cluster's) under the same user. */
	struct tu_seg sp;
	tu_seg_create(&sp, "deployp", NULL);
	shmstat_counter_add_by_name(sp.h, "filter_stats:parted", 7);
	assert_true(apply_env_file(src, r.url) >= 4);
	b = ru_bridge(r.dir, sp.name, NULL, log, "-i", "20ms",
		      "--partition-by-slot", NULL);
	unset_env_file();
	assert_true(ru_wait_synced(sp.h, 10000));
	assert_int_equal(ru_get(&r, "stats:filter_stats:parted"), 7);
	assert_int_equal(tu_tool(out, sizeof(out), "-n", sp.name, "reset",
				 "--global", "filter_stats:parted", NULL),
			 0);
	assert_int_equal(ru_get(&r, "stats:filter_stats:parted"), 0);
	assert_int_equal(ru_bridge_stop(b), 0);

	/* Nothing the bridge sent was refused by the ACL. */
	assert_false(ru_file_has(log, "NOPERM"));
	assert_false(ru_file_has(log, "no permissions"));
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
	shmstat_close(&sp.h);
	shmstat_unlink(sp.name);
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

/* systemd-analyze verify of an instance of the unit (its ExecStart
 * pointed at this build's bridge): no complaint. Skipped when there is no
 * systemd-analyze. */
static void the_unit_passes_systemd_analyze_verify(void **state)
{
	(void)state;
	char out[4096], dir[] = "/tmp/shmstat-unit-XXXXXX";
	const char *src = getenv("SHMSTAT_SOURCE_ROOT");
	const char *bin = getenv("SHMSTAT_BRIDGE");

	if (tu_sh(NULL, 0, "command -v systemd-analyze >/dev/null") != 0) {
		printf("skipped: no systemd-analyze on this machine\n");
		skip();
	}
	assert_non_null(mkdtemp(dir));
	assert_int_equal(tu_sh(out, sizeof(out),
			       "sed \"s|/usr/local/sbin/shmstat-bridge|%s|\" "
			       "%s/deploy/shmstat-bridge@.service > "
			       "%s/shmstat-bridge@.service",
			       bin, src, dir),
			 0);
	int rc = tu_sh(out, sizeof(out),
		       "cd %s && systemd-analyze verify --man=no "
		       "%s/shmstat-bridge@web.service 2>&1",
		       dir, dir);
	tu_sh(NULL, 0, "rm -rf %s", dir);
	if (rc != 0 || out[0])
		fprintf(stderr, "systemd-analyze verify: %s\n", out);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_unit_passes_systemd_analyze_verify),
		cmocka_unit_test(the_shipped_redis_conf_serves_the_bridge_through_its_acl_user),
		cmocka_unit_test(a_refused_global_reset_fails_clearly_and_pushing_goes_on),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
