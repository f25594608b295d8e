/*
 * test_tool.c — the shmstat tool (tools/shmstat.c) as a user runs it:
 * output, JSON, exit statuses, --help for every command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "testutil.h"

#define OUT 65536
static char out[OUT];

static void help_is_given_for_the_tool_and_every_command(void **state)
{
	(void)state;
	const char *cmds[] = { "create", "destroy", "list", "get", "incr",
			       "set", "reset", "info", "reap", "health" };
	assert_int_equal(tu_tool(out, OUT, "--help", NULL), 0);
	assert_non_null(strstr(out, "usage: shmstat"));
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		/* Listed in the main help, and has its own. */
		assert_non_null(strstr(out, cmds[i]));
		char own[OUT];
		assert_int_equal(tu_tool(own, OUT, cmds[i], "--help", NULL), 0);
		char want[64];
		snprintf(want, sizeof(want), "usage: shmstat [-n NAME] %s", cmds[i]);
		assert_non_null(strstr(own, want));
	}
}

static void usage_errors_exit_1_and_missing_segments_exit_2(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "absent");
	assert_int_equal(tu_tool(out, OUT, "no-such-command", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", "../etc", "list", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", NULL), 2);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "info", NULL), 2);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "x", NULL), 2);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "destroy", NULL), 2);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", "--size", "12x", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", "--size", "100", NULL), 1);
}

static void create_list_get_incr_reset_destroy(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "cli");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", "--size", "4194304",
				 "--counters", "100", NULL), 0);
	assert_non_null(strstr(out, "4194304 bytes, 100 counters"));
	/* A second create of the same name is refused. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "filter_stats:a", NULL), 0);
	assert_string_equal(out, "1\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "filter_stats:a", "41", NULL), 0);
	assert_string_equal(out, "42\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "filter_stats:a", "-1", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "other", "5", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "set", "inflight", "-3", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "filter_stats:a", NULL), 0);
	assert_string_equal(out, "42\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "inflight", NULL), 0);
	assert_string_equal(out, "-3\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "nope", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-f", "filter_stats:*", NULL), 0);
	assert_non_null(strstr(out, "filter_stats:a"));
	assert_null(strstr(out, "other"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "reset", "filter_stats:*", NULL), 0);
	assert_string_equal(out, "1\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "filter_stats:a", NULL), 0);
	assert_string_equal(out, "0\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "other", NULL), 0);
	assert_string_equal(out, "5\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "info", NULL), 0);
	assert_non_null(strstr(out, "layout:    2.0"));
	assert_non_null(strstr(out, "counters:  3 of 100"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "destroy", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", NULL), 2);
}

static void segment_name_comes_from_the_environment(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "env");
	setenv("SHMSTAT_NAME", name, 1);
	assert_int_equal(tu_tool(out, OUT, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "incr", "x", NULL), 0);
	unsetenv("SHMSTAT_NAME");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "x", NULL), 0);
	assert_string_equal(out, "1\n");
	shmstat_unlink(name);
}

/* JSON: the fields the live-stats consumers read, names escaped. */
static void json_output_carries_timestamp_source_and_escaped_names(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "json");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "q\"uote\\d", "7", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "set", "g", "-2", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-j", NULL), 0);
	assert_non_null(strstr(out, "\"timestamp\": \"20"));
	assert_non_null(strstr(out, "\"source\": \"local\""));
	assert_non_null(strstr(out, "\"q\\\"uote\\\\d\": 7"));
	assert_non_null(strstr(out, "\"gauges\": {\n    \"g\": -2"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "-j", "g", NULL), 0);
	assert_non_null(strstr(out, "\"kind\": \"gauge\", \"value\": -2"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "info", "-j", NULL), 0);
	assert_non_null(strstr(out, "\"layout\": \"2.0\""));
	assert_non_null(strstr(out, "\"regions\": ["));
	/* If python3 is there, the documents must parse as JSON. */
	if (access("/usr/bin/python3", X_OK) == 0) {
		char cmd[512];
		snprintf(cmd, sizeof(cmd),
			 "for c in 'list -j' 'info -j' 'get -j g'; do "
			 "\"$SHMSTAT_TOOL\" -n %s $c | python3 -c "
			 "'import json,sys; json.load(sys.stdin)' || exit 1; done",
			 name);
		assert_int_equal(system(cmd), 0);
	}
	shmstat_unlink(name);
}

/* Each of health's exit codes, in a scenario that causes it. */
static void health_exits_0_healthy_1_degraded_2_broken(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "health");
	/* Broken: no segment. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "health", NULL), 2);
	assert_non_null(strstr(out, "broken: segment: no segment"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "health", "-j", NULL), 2);
	assert_non_null(strstr(out, "\"status\": \"broken\""));
	/* Degraded: no bridge serves it. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "health", NULL), 1);
	assert_string_equal(out, "degraded: bridge: no bridge is running\n");
	/* Healthy when a bridge is not required. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "health", "--no-bridge", NULL), 0);
	assert_non_null(strstr(out, "healthy"));
	/* Broken again: a foreign magic. */
	shmstat_t *h;
	assert_int_equal(shmstat_open(name, NULL, &h), 0);
	size_t len;
	unsigned char *raw = shmstat__base(h, &len);
	raw[0] ^= 0xff;
	assert_int_equal(tu_tool(out, OUT, "-n", name, "health", NULL), 2);
	assert_non_null(strstr(out, "not a shmstat segment"));
	raw[0] ^= 0xff;
	shmstat_close(&h);
	shmstat_unlink(name);
}

static void list_prometheus_prints_the_text_format(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "prom");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "filter_stats:rejected", "5", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-p", NULL), 0);
	assert_non_null(strstr(out, "# TYPE shmstat_filter_stats_rejected_total counter\n"
				    "shmstat_filter_stats_rejected_total{segment=\""));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-p", "-j", NULL), 1);
	shmstat_unlink(name);
}

/* A name that is not UTF-8 is refused: exit 1, the reason on stderr,
 * nothing created. */
static void incr_refuses_a_name_that_is_not_utf8(void **state)
{
	(void)state;
	char name[64], cmd[512], err[512] = "";
	tu_name(name, sizeof(name), "utf8");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	snprintf(cmd, sizeof(cmd), "\"$SHMSTAT_TOOL\" -n %s incr 'caf\xe9' 2>&1; "
		 "echo \"exit $?\"", name);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	err[fread(err, 1, sizeof(err) - 1, p)] = '\0';
	pclose(p);
	assert_non_null(strstr(err, "not valid UTF-8 at byte offset 3"));
	assert_non_null(strstr(err, "exit 1\n"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-j", NULL), 0);
	assert_non_null(strstr(out, "\"counters\": {},"));
	shmstat_unlink(name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(help_is_given_for_the_tool_and_every_command),
		cmocka_unit_test(usage_errors_exit_1_and_missing_segments_exit_2),
		cmocka_unit_test(create_list_get_incr_reset_destroy),
		cmocka_unit_test(segment_name_comes_from_the_environment),
		cmocka_unit_test(json_output_carries_timestamp_source_and_escaped_names),
		cmocka_unit_test(health_exits_0_healthy_1_degraded_2_broken),
		cmocka_unit_test(list_prometheus_prints_the_text_format),
		cmocka_unit_test(incr_refuses_a_name_that_is_not_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
