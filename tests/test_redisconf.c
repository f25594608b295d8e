/*
 * test_redisconf.c — bridge/redisconf.c: Redis URLs and the environment
 * such services already use; bad input gets a clear reason without the password.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static void tls_and_sentinel_urls_are_parsed(void **state)
{
	struct redis_conf c;
	char err[REDISCONF_ERR_LEN], addr[600];

	(void)state;
	assert_int_equal(url(&c, "rediss://u:p%2Fw@redis.example:6380/3", err),
			 0);
	assert_int_equal(c.tls, 1);
	assert_string_equal(c.host, "redis.example");
	assert_int_equal(c.port, 6380);
	assert_int_equal(c.db, 3);
	assert_string_equal(c.user, "u");
	assert_string_equal(c.password, "p/w");
	redis_conf_addr(&c, addr, sizeof(addr));
	assert_string_equal(addr, "tls:redis.example:6380/3");
	assert_int_equal(url(&c, "redis+sentinel://:pw@a:26379,b:26380,c/mymaster/2",
			     err),
			 0);
	assert_int_equal(c.tls, 0);
	assert_string_equal(c.sentinels, "a:26379,b:26380,c");
	assert_string_equal(c.master, "mymaster");
	assert_int_equal(c.db, 2);
	assert_string_equal(c.password, "pw");
	redis_conf_addr(&c, addr, sizeof(addr));
	assert_string_equal(addr, "sentinel:a:26379,b:26380,c/mymaster/2");
	assert_null(strstr(addr, "pw"));
	/* A later plain URL is no longer TLS nor Sentinel. */
	assert_int_equal(url(&c, "redis://h:1/0", err), 0);
	assert_int_equal(c.tls, 0);
	assert_string_equal(c.master, "");
}

static void a_cluster_url_names_several_nodes(void **state)
{
	struct redis_conf c;
	char err[REDISCONF_ERR_LEN], addr[600];

	(void)state;
	assert_int_equal(url(&c, "redis://u:p,w@n1:7000,n2:7001,[::1]:7002,n4",
			     err),
			 0);
	assert_string_equal(c.host, "n1");
	assert_int_equal(c.port, 7000);
	assert_string_equal(c.nodes, "n2:7001,[::1]:7002,n4");
	assert_string_equal(c.user, "u");
	assert_string_equal(c.password, "p,w");
	redis_conf_addr(&c, addr, sizeof(addr));
	assert_string_equal(addr, "n1:7000,n2:7001,[::1]:7002,n4/0");
	assert_int_equal(url(&c, "rediss://:pw@a:1,b:2/0", err), 0);
	assert_int_equal(c.tls, 1);
	assert_string_equal(c.nodes, "b:2");
	redis_conf_addr(&c, addr, sizeof(addr));
	assert_string_equal(addr, "tls:a:1,b:2/0");
	/* One node: none more. */
	assert_int_equal(url(&c, "redis://a:1", err), 0);
	assert_string_equal(c.nodes, "");
	assert_int_equal(url(&c, "redis://:topsecret@a:1,b:x", err), -1);
	assert_non_null(strstr(err, "bad node 'b:x'"));
	assert_null(strstr(err, "topsecret"));
	assert_int_equal(url(&c, "redis://:topsecret@a:1,", err), -1);
	assert_non_null(strstr(err, "bad node"));
}

static void bad_urls_are_refused_without_the_password(void **state)
{
	struct redis_conf c;
	char err[REDISCONF_ERR_LEN];

	(void)state;
	assert_int_equal(url(&c, "redis+sentinel://u:topsecret@h:1,:2/m", err),
			 -1);
	assert_non_null(strstr(err, "sentinel"));
	assert_null(strstr(err, "topsecret"));
	assert_int_equal(url(&c, "redis+sentinel://u:topsecret@h:1", err), -1);
	assert_non_null(strstr(err, "master's name"));
	assert_null(strstr(err, "topsecret"));
	assert_int_equal(url(&c, "redis+sentinel://u:topsecret@h:1/m/x", err),
			 -1);
	assert_non_null(strstr(err, "database"));
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

#define PW "Zq/x?Kw#j@V%7 yT:e"
#define PW_ENC "Zq%2Fx%3FKw%23j%40V%257%20yT%3Ae"

static bool holds_part_of(const char *text, const char *pw)
{
	for (size_t i = 0; i + 4 <= strlen(pw); i++) {
		char part[5];
		memcpy(part, pw + i, 4);
		part[4] = '\0';
		if (strstr(text, part))
			return true;
	}
	return false;
}

/* / ? # @ % : and blanks, plain (the last '@' ends the password) and
 * %-encoded, in redis:// and unix:// URLs; the "bad port
 * 'Zm9vYmFy'" leak included. */
static void passwords_with_special_characters_parse_plain_or_encoded(void **state)
{
	struct redis_conf c;
	char err[REDISCONF_ERR_LEN];

	(void)state;
	const char *ok[] = {
		"redis://u:" PW "@db.example:6380/3",
		"redis://u:" PW_ENC "@db.example:6380/3",
	};
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(url(&c, ok[i], err), 0);
		assert_string_equal(c.password, PW);
		assert_string_equal(c.user, "u");
		assert_string_equal(c.host, "db.example");
		assert_int_equal(c.port, 6380);
		assert_int_equal(c.db, 3);
	}
	assert_int_equal(url(&c, "unix://:" PW "@/run/r.sock?db=2", err), 0);
	assert_string_equal(c.password, PW);
	assert_string_equal(c.path, "/run/r.sock");
	assert_int_equal(c.db, 2);
	assert_int_equal(url(&c, "redis://:Zm9v/YmFy@h:1", err), 0);
	assert_string_equal(c.password, "Zm9v/YmFy");
	/* Refused, never echoed: */
	const char *bad[] = {
		"redis://h:Zm9vYmFy",         /* the '@' forgotten */
		"redis://h:" PW,
		"redis://:" PW "@h:0",
		"redis://:" PW "@h/x" PW,
		"redis://:" PW "@h?" PW,
		"unix://:" PW "@relative",
		"Zq/x?Kw#j://h",
		"r" PW,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(url(&c, bad[i], err), -1);
		assert_false(holds_part_of(err, PW));
		assert_false(holds_part_of(err, "Zm9vYmFy"));
	}
}

static void the_process_title_loses_the_password(void **state)
{
	(void)state;
	char u1[] = "redis://u:" PW "@h:1/2";
	char u2[] = "unix://:" PW_ENC "@/run/r.sock";
	char u3[] = "redis://h:1";
	assert_true(redis_url_hide_password(u1));
	assert_string_equal(u1, "redis://u:***@h:1/2");
	/* the bytes freed are cleared (the title's length says nothing) */
	for (size_t i = strlen(u1); i < sizeof(u1); i++)
		assert_int_equal(u1[i], 0);
	assert_true(redis_url_hide_password(u2));
	assert_string_equal(u2, "unix://:***@/run/r.sock");
	assert_false(redis_url_hide_password(u3));
	assert_string_equal(u3, "redis://h:1");
	/* Short passwords: the URL never grows (argv has no room). */
	char u4[] = "redis://:pw@127.0.0.1:6379", u5[] = "redis://u:x@h,h2:2";
	char u6[] = "redis+sentinel://:abc@s:1/m";
	assert_true(redis_url_hide_password(u4));
	assert_string_equal(u4, "redis://:*@127.0.0.1:6379");
	for (size_t i = strlen(u4); i < sizeof(u4); i++)
		assert_int_equal(u4[i], 0);
	assert_true(redis_url_hide_password(u5));
	assert_string_equal(u5, "redis://u:*@h,h2:2");
	assert_true(redis_url_hide_password(u6));
	assert_string_equal(u6, "redis+sentinel://:***@s:1/m");
}

static void the_password_file_is_read_and_its_mode_checked(void **state)
{
	struct redis_conf c;
	char err[REDISCONF_ERR_LEN], dir[] = "/tmp/shmstat-pw-XXXXXX", path[64];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pw", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(PW "\n", f);
	fclose(f);
	redis_conf_init(&c);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(redis_conf_password_file(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "mode 0640"));
	assert_non_null(strstr(err, "chmod 600"));
	assert_false(holds_part_of(err, PW));
	assert_string_equal(c.password, "");
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(redis_conf_password_file(&c, path, err, sizeof(err)), -1);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(redis_conf_password_file(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.password, PW); /* the newline dropped */
	/* Empty, two lines, a directory, missing: refused, content never
	 * shown. */
	assert_int_equal(chmod(path, 0600), 0);
	f = fopen(path, "w");
	fputs(PW "\nsecond line\n", f);
	fclose(f);
	assert_int_equal(redis_conf_password_file(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "one line"));
	assert_false(holds_part_of(err, PW));
	assert_null(strstr(err, "second"));
	f = fopen(path, "w");
	fclose(f);
	assert_int_equal(redis_conf_password_file(&c, path, err, sizeof(err)), -1);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(redis_conf_password_file(&c, dir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(path);
	assert_int_equal(redis_conf_password_file(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot open"));
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(urls_with_user_password_host_port_db_parse),
		cmocka_unit_test(tls_and_sentinel_urls_are_parsed),
		cmocka_unit_test(a_cluster_url_names_several_nodes),
		cmocka_unit_test(bad_urls_are_refused_without_the_password),
		cmocka_unit_test(the_redis_environment_variables_are_read),
		cmocka_unit_test(passwords_with_special_characters_parse_plain_or_encoded),
		cmocka_unit_test(the_process_title_loses_the_password),
		cmocka_unit_test(the_password_file_is_read_and_its_mode_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
