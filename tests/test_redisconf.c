/*
 * test_redisconf.c — bridge/redisconf.c: Redis URLs and the environment
 * such services already use; bad input gets a clear reason without the password.
 */
#include <stdlib.h>
#include <string.h>

#include "redisconf.h"
#include "testutil.h"

static int url(struct redis_conf *c, const char *u, char *err)
{
	redis_conf_init(c);
	return redis_conf_url(c, u, err, REDISCONF_ERR_LEN);
}

static void urls_with_user_password_host_port_db_parse(void **state)
{
	struct redis_conf c;
	char err[REDISCONF_ERR_LEN];

	(void)state;
	assert_int_equal(url(&c, "redis://u:p%40ss@db.example:6380/3", err), 0);
	assert_string_equal(c.user, "u");
	assert_string_equal(c.password, "p@ss");
	assert_string_equal(c.host, "db.example");
	assert_int_equal(c.port, 6380);
	assert_int_equal(c.db, 3);
	assert_int_equal(url(&c, "redis://:secret@h", err), 0);
	assert_string_equal(c.user, "");
	assert_string_equal(c.password, "secret");
	assert_int_equal(c.port, 6379);
	assert_int_equal(url(&c, "redis://[::1]:7000/0", err), 0);
	assert_string_equal(c.host, "::1");
	assert_int_equal(c.port, 7000);
	assert_int_equal(url(&c, "unix:///run/redis.sock?db=2", err), 0);
	assert_string_equal(c.path, "/run/redis.sock");
	assert_int_equal(c.db, 2);
}

static void bad_urls_are_refused_without_the_password(void **state)
{
	struct redis_conf c;
	char err[REDISCONF_ERR_LEN];

	(void)state;
	assert_int_equal(url(&c, "rediss://u:topsecret@h:6380", err), -1);
	assert_non_null(strstr(err, "not supported yet"));
	assert_null(strstr(err, "topsecret"));
	assert_int_equal(url(&c, "redis://u:topsecret@h:99999", err), -1);
	assert_non_null(strstr(err, "port"));
	assert_null(strstr(err, "topsecret"));
	assert_int_equal(url(&c, "redis://u:topsecret@h/x", err), -1);
	assert_null(strstr(err, "topsecret"));
	assert_int_equal(url(&c, "http://h", err), -1);
	assert_int_equal(url(&c, "unix://relative", err), -1);
	assert_int_equal(url(&c, "redis://b%zzd:topsecret@h", err), -1);
	assert_null(strstr(err, "topsecret"));
	assert_null(strstr(err, "b%zzd"));
	/* A '%' that starts no escape: the password was pasted as it is. */
	assert_int_equal(url(&c, "redis://u:bad%zz@h", err), 0);
	assert_string_equal(c.password, "bad%zz");
}

static void the_redis_environment_variables_are_read(void **state)
{
	struct redis_conf c;
	char err[REDISCONF_ERR_LEN];

	(void)state;
	unsetenv("REDIS_URL");
	setenv("REDIS_HOST", "cache.local", 1);
	setenv("REDIS_PORT", "6390", 1);
	setenv("REDIS_DB", "4", 1);
	setenv("REDIS_PASSWORD", "pw", 1);
	setenv("REDIS_USERNAME", "app", 1);
	redis_conf_init(&c);
	assert_int_equal(redis_conf_env(&c, err, sizeof(err)), 0);
	assert_string_equal(c.host, "cache.local");
	assert_int_equal(c.port, 6390);
	assert_int_equal(c.db, 4);
	assert_string_equal(c.password, "pw");
	assert_string_equal(c.user, "app");
	char addr[300];
	redis_conf_addr(&c, addr, sizeof(addr));
	assert_string_equal(addr, "cache.local:6390/4");

	setenv("REDIS_URL", "redis://other:1/2", 1);
	redis_conf_init(&c);
	assert_int_equal(redis_conf_env(&c, err, sizeof(err)), 0);
	assert_string_equal(c.host, "other");
	assert_string_equal(c.password, "pw"); /* the URL has none */

	setenv("REDIS_URL", "", 1);
	setenv("REDIS_PORT", "many", 1);
	redis_conf_init(&c);
	assert_int_equal(redis_conf_env(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_PORT"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(urls_with_user_password_host_port_db_parse),
		cmocka_unit_test(bad_urls_are_refused_without_the_password),
		cmocka_unit_test(the_redis_environment_variables_are_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
