/*
 * test_tool.c — the shmstat tool (tools/shmstat.c) as a user runs it:
 * output, JSON, exit statuses, --help for every command.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "testutil.h"

#define OUT 65536
static char out[OUT];

/* Run a shell command line with $T the tool; stdout and stderr into out.
 * Returns the exit status (128+signal when killed). */
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char full[4200];
	snprintf(full, sizeof(full), "T=\"$SHMSTAT_TOOL\"; { %s ; } 2>&1", cmd);
	FILE *p = popen(full, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, OUT - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void help_is_given_for_the_tool_and_every_command(void **state)
{
	(void)state;
	const char *cmds[] = { "create", "destroy", "list", "get", "incr",
			       "set", "reset", "info", "reap", "health", "ls" };
	assert_int_equal(tu_tool(out, OUT, "--help", NULL), 0);
	assert_non_null(strstr(out, "usage: shmstat"));
	/* The cache line names every subcommand, expire too. */
	assert_non_null(strstr(out, "cache get|set|expire|del|ttl|keys|clear|flush|stats"));
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		/* Listed in the main help, and has its own. */
		assert_non_null(strstr(out, cmds[i]));
		char own[OUT];
		assert_int_equal(tu_tool(own, OUT, cmds[i], "--help", NULL), 0);
		char want[64];
		snprintf(want, sizeof(want), "usage: shmstat [-n NAME] %s", cmds[i]);
		assert_non_null(strstr(own, want));
		/* Each ends with the exit statuses. */
		assert_non_null(strstr(own, "exit status: 0 "));
	}
}

/* exitcodes.h: 0 success, 1 not found, 2 segment, 3 failed, 64 usage. */
static void usage_errors_exit_64_and_missing_segments_exit_2(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "absent");
	assert_int_equal(tu_tool(out, OUT, "no-such-command", NULL), 64);
	assert_int_equal(tu_tool(out, OUT, NULL), 64);
	assert_int_equal(tu_tool(out, OUT, "-n", "../etc", "list", NULL), 64);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "--bogus", NULL), 64);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "health", "--bogus", NULL), 64);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "bogus", NULL), 64);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", NULL), 2);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "info", NULL), 2);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "x", NULL), 2);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "destroy", NULL), 2);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "get", "k", NULL), 2);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", "--size", "12x", NULL), 64);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", "--size", "100", NULL), 64);
}

static void not_found_exits_1_and_a_failed_operation_3(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "codes");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "nope", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "--global", "nope", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "get", "nokey", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "del", "nokey", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "v", "--xx", NULL), 1);
	/* The segment exists: creating it again is a failed operation. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 3);
	/* A counter where a gauge is: neither a typo nor a miss. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "set", "g", "1", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "g", NULL), 3);
	shmstat_unlink(name);
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
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 3);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "filter_stats:a", NULL), 0);
	assert_string_equal(out, "1\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "filter_stats:a", "41", NULL), 0);
	assert_string_equal(out, "42\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "filter_stats:a", "-1", NULL), 64);
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
	assert_non_null(strstr(out, "layout:    2.1"));
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
	assert_non_null(strstr(out, "\"layout\": \"2.1\""));
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
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-p", "-j", NULL), 64);
	shmstat_unlink(name);
}

static void numbers_on_the_command_line_are_decimal(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "dec");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "y", "010", NULL), 0);
	assert_string_equal(out, "10\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "set", "g", "-010", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "g", NULL), 0);
	assert_string_equal(out, "-10\n");
	assert_int_equal(sh("$T -n %s incr y 0x10", name), 64);
	assert_non_null(strstr(out, "decimal"));
	assert_int_equal(sh("$T -n %s incr y 9223372036854775808", name), 64);
	assert_non_null(strstr(out, "out of range"));
	assert_int_equal(sh("$T -n %s set g 9223372036854775808", name), 64);
	assert_non_null(strstr(out, "out of the signed 64-bit range"));
	/* Nothing was added by the refused calls. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "y", NULL), 0);
	assert_string_equal(out, "10\n");
	/* Durations: -w takes 250ms, 0.25 (seconds) and refuses 250x. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-w", "250ms", "-c", "1", NULL), 0);
	assert_non_null(strstr(out, "every 250ms"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-w", "0.25", "-c", "1", NULL), 0);
	assert_non_null(strstr(out, "every 250ms"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-w", "250x", NULL), 64);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-w", "10ms", NULL), 64);
	shmstat_unlink(name);
}

static void filters_repeat_and_a_caret_or_X_excludes(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "flt");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "b:two", "2", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "a:one", "1", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "c:three", "3", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "x:big", "100", NULL), 0);
	/* A header, then rows by name. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", NULL), 0);
	assert_true(strncmp(out, "NAME ", 5) == 0);
	char *a = strstr(out, "a:one"), *b = strstr(out, "b:two"),
	     *c = strstr(out, "c:three"), *x = strstr(out, "x:big");
	assert_true(a && b && c && x && a < b && b < c && c < x);
	/* Two -f: both kept (the second does not replace the first). */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-f", "a:*", "-f", "c:*", NULL), 0);
	assert_non_null(strstr(out, "a:one"));
	assert_non_null(strstr(out, "c:three"));
	assert_null(strstr(out, "b:two"));
	/* ^GLOB excludes, and so does -X. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-f", "^x*", NULL), 0);
	assert_non_null(strstr(out, "a:one"));
	assert_null(strstr(out, "x:big"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-X", "x*", "-X", "a*", NULL), 0);
	assert_non_null(strstr(out, "b:two"));
	assert_null(strstr(out, "x:big"));
	assert_null(strstr(out, "a:one"));
	/* The JSON and the exposition take the same filters. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-p", "-f", "a:*",
				 "-f", "x:*", "-X", "x:*", NULL), 0);
	assert_non_null(strstr(out, "shmstat_a_one_total"));
	assert_null(strstr(out, "shmstat_x_big_total"));
	assert_null(strstr(out, "shmstat_b_two_total"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-j", "-X", "a:*",
				 "-f", "^c:*", NULL), 0);
	assert_non_null(strstr(out, "\"b:two\": 2"));
	assert_non_null(strstr(out, "\"x:big\": 100"));
	assert_null(strstr(out, "a:one"));
	assert_null(strstr(out, "c:three"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-j", "-f", "zz*",
				 "-f", "yy*", NULL), 1);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-p", "-f", "zz*",
				 NULL), 1);
	/* Nothing matched: exit 1. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-f", "zzz*", NULL), 1);
	/* --sort value: largest first. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "--sort", "value", NULL), 0);
	a = strstr(out, "a:one"), b = strstr(out, "b:two"), c = strstr(out, "c:three"),
	x = strstr(out, "x:big");
	assert_true(a && b && c && x && x < c && c < b && b < a);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "--sort", "rate", NULL), 64);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "--sort", "size", NULL), 64);
	shmstat_unlink(name);
}

/* -p -o FILE: a reader polling the file while the tool rewrites it over
 * and over sees a whole exposition every time. */
static void the_textfile_is_replaced_whole_while_a_reader_races_it(void **state)
{
	(void)state;
	char name[64], dir[] = "/tmp/shmstat-textfile-XXXXXX", file[128];
	tu_name(name, sizeof(name), "txt");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	shmstat_t *h;
	assert_int_equal(shmstat_open(name, NULL, &h), 0);
	for (int i = 0; i < 300; i++) {
		char c[32];
		snprintf(c, sizeof(c), "ctr_%03d", i);
		assert_int_equal(shmstat_counter_add_by_name(h, c, (uint64_t)i), 0);
	}
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/shmstat.prom", dir);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-p", "-o", file, NULL), 0);
	struct stat sb;
	assert_int_equal(stat(file, &sb), 0);
	/* Readable by node_exporter's user: the umask's mode, not 0600. */
	mode_t um = umask(0);
	umask(um);
	assert_int_equal(sb.st_mode & 0777, 0666 & ~um);
	pid_t w = fork();
	assert_true(w >= 0);
	if (w == 0) {
		char cmd[512];
		snprintf(cmd, sizeof(cmd),
			 "for i in $(seq 40); do \"$SHMSTAT_TOOL\" -n %s list -p -o %s "
			 "|| exit 1; done", name, file);
		_exit(system(cmd) == 0 ? 0 : 1);
	}
	static char buf[1 << 20];
	int reads = 0, whole = 0;
	int wst = -1;
	for (int i = 0; i < 200000 && waitpid(w, &wst, WNOHANG) == 0; i++) {
		int fd = open(file, O_RDONLY);
		assert_true(fd >= 0);
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		assert_true(n > 0);
		buf[n] = '\0';
		reads++;
		/* Every counter, the segment's families, a final newline. */
		int series = 0;
		for (char *p = buf; (p = strstr(p, "\nshmstat_ctr_")); p++)
			series++;
		if (series == 300 && strstr(buf, "shmstat_counters_used") &&
		    buf[n - 1] == '\n')
			whole++;
	}
	/* The writer has exited, or the loop ran out: then wait for it. */
	if (wst == -1)
		assert_int_equal(tu_wait(w, 60000), 0);
	else
		assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
	assert_true(reads > 0);
	assert_int_equal(whole, reads);
	/* No temporary file is left behind. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", dir);
	assert_int_equal(system(cmd), 0);
	unlink(file);
	rmdir(dir);
	shmstat_close(&h);
	shmstat_unlink(name);
}

static void ls_shows_each_segment_with_owner_mode_and_bridge(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "ls");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", "--mode", "0640",
				 "--counters", "100", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "a", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "ls", NULL), 0);
	assert_true(strncmp(out, "NAME ", 5) == 0);
	char *l = strstr(out, name);
	assert_non_null(l);
	char *eol = strchr(l, '\n');
	assert_non_null(eol);
	*eol = '\0';
	assert_non_null(strstr(l, " 0640 "));
	assert_non_null(strstr(l, " 1/100 "));
	assert_non_null(strstr(l, "never ran"));
	if (access("/usr/bin/python3", X_OK) == 0)
		assert_int_equal(sh("$T ls -j | /usr/bin/python3 -c 'import json,sys; "
				    "d=[s for s in json.load(sys.stdin) if s[\"name\"]==\"%s\"]; "
				    "assert d[0][\"mode\"]==\"0640\" and d[0][\"counters\"]==1'",
				    name),
				 0);
	shmstat_unlink(name);
}

static void a_mistyped_segment_name_gets_a_suggestion(void **state)
{
	(void)state;
	char name[64], typo[64];
	tu_name(name, sizeof(name), "suggest");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	snprintf(typo, sizeof(typo), "%s", name);
	typo[strlen(typo) - 1] = 'x'; /* "...suggesx" */
	assert_int_equal(sh("$T -n %s list", typo), 2);
	char want[128];
	snprintf(want, sizeof(want), "did you mean '%s'?", name);
	assert_non_null(strstr(out, want));
	shmstat_unlink(name);
}

/* As `nobody`, a root-owned 0600 segment: the error names it all. */
static void permission_denied_names_segment_path_owner_and_mode(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0) {
		skip();
		return;
	}
	char name[64], dir[] = "/tmp/shmstat-perm-XXXXXX";
	tu_name(name, sizeof(name), "perm");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	/* A copy of the tool that nobody may run (the build tree may not). */
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(sh("cp \"$T\" %s/shmstat && chmod 755 %s/shmstat", dir, dir), 0);
	assert_int_equal(sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
			    "%s/shmstat -n %s list", dir, name), 2);
	char want[256];
	snprintf(want, sizeof(want),
		 "segment '%s' (/dev/shm/shmstat.%s): permission denied: owned by "
		 "root:root, mode 0600", name, name);
	assert_non_null(strstr(out, want));
	/* The cache commands too (they need write access, a get as well). */
	assert_int_equal(sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
			    "%s/shmstat -n %s cache get k", dir, name), 2);
	assert_non_null(strstr(out, want));
	assert_int_equal(sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
			    "%s/shmstat -n %s cache set k v", dir, name), 2);
	assert_non_null(strstr(out, want));
	/* health says the same, as its reason for "broken". */
	assert_int_equal(sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
			    "%s/shmstat -n %s health", dir, name), 2);
	assert_non_null(strstr(out, want));
	/* cache stats only reads: a 0640 segment of its group is enough
	 * (a get still needs write access). */
	char path[128];
	snprintf(path, sizeof(path), "/dev/shm/shmstat.%s", name);
	assert_int_equal(sh("chgrp nogroup %s && chmod 0640 %s", path, path), 0);
	assert_int_equal(sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
			    "%s/shmstat -n %s cache stats", dir, name), 0);
	assert_non_null(strstr(out, "hits"));
	assert_int_equal(sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
			    "%s/shmstat -n %s cache keys", dir, name), 0);
	assert_int_equal(sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
			    "%s/shmstat -n %s cache ttl k", dir, name), 1);
	assert_int_equal(sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
			    "%s/shmstat -n %s cache get k", dir, name), 2);
	/* The owner whose own mode bits deny it is told so, not to "run as"
	 * itself. */
	assert_int_equal(sh("chown nobody %s && chmod 0444 %s", path, path), 0);
	assert_int_equal(sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
			    "%s/shmstat -n %s cache get k", dir, name), 2);
	assert_non_null(strstr(out, "owned by you (nobody), mode 0444"));
	assert_non_null(strstr(out, "chmod u+rw"));
	sh("rm -rf %s", dir);
	shmstat_unlink(name);
}

static void write_errors_exit_3_with_a_message(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "full");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "a", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "v", NULL), 0);
	const char *cmds[] = { "list", "list -j", "list -p", "info", "info -j",
			       "get a", "get -j a", "cache keys", "cache stats", "ls",
			       "health --no-bridge", "--help", "-V" };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(sh("$T -n %s %s >/dev/full", name, cmds[i]), 3);
		assert_non_null(strstr(out, "error writing the output"));
	}
	/* The write error wins over the command's own status: health's
	 * "degraded" (1) whose words were lost is 3, and broken (2) too. */
	assert_int_equal(sh("$T -n %s health >/dev/full", name), 3);
	assert_non_null(strstr(out, "error writing the output"));
	assert_int_equal(sh("$T -n %s health -j >/dev/full", name), 3);
	assert_int_equal(sh("$T -n %s-absent health >/dev/full", name), 3);
	/* A miss prints nothing, so it keeps its 1. */
	assert_int_equal(sh("$T -n %s get nope >/dev/full", name), 1);
	/* -o into a directory that is not there: nothing written, exit 3. */
	assert_int_equal(sh("$T -n %s list -p -o /nonexistent/x.prom", name), 3);
	shmstat_unlink(name);
}

static void the_live_view_ends_on_a_closed_pipe(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "pipe");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	/* SIGPIPE ignored, as some parents leave it: the write error ends it. */
	assert_int_equal(sh("trap '' PIPE; { timeout 30 $T -n %s list -w 50ms; "
			    "echo \"rc=$?\" >&2; } | head -1 >/dev/null", name), 0);
	assert_non_null(strstr(out, "rc=3"));
	assert_non_null(strstr(out, "error writing the output"));
	shmstat_unlink(name);
}

/* The segment's file truncated while the tool reads it: a message naming
 * the segment and exit 2, not "Bus error". */
static void a_segment_truncated_under_the_tool_is_named_not_a_bus_error(void **state)
{
	(void)state;
	char name[64], path[128], outf[] = "/tmp/shmstat-bus-XXXXXX";
	tu_name(name, sizeof(name), "bus");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "a", NULL), 0);
	int ofd = mkstemp(outf);
	assert_true(ofd >= 0);
	int errp[2];
	assert_int_equal(pipe(errp), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(ofd, 1);
		dup2(errp[1], 2);
		close(errp[0]);
		const char *tool = getenv("SHMSTAT_TOOL");
		execl(tool, tool, "-n", name, "list", "-w", "50ms", NULL);
		_exit(127);
	}
	close(errp[1]);
	/* Wait (bounded) for its first frame: it is attached. */
	struct stat sb = { 0 };
	for (int i = 0; i < 1000 && (fstat(ofd, &sb) == 0 && sb.st_size == 0); i++)
		usleep(10000);
	assert_true(sb.st_size > 0);
	snprintf(path, sizeof(path), "/dev/shm/shmstat.%s", name);
	assert_int_equal(truncate(path, 4096), 0);
	int st = tu_wait(pid, 20000);
	ssize_t n = read(errp[0], out, OUT - 1);
	out[n > 0 ? n : 0] = '\0';
	close(errp[0]);
	close(ofd);
	unlink(outf);
	assert_int_equal(st, 2);
	char want[320];
	snprintf(want, sizeof(want), "segment '%s' (%s) was truncated", name, path);
	assert_non_null(strstr(out, want));
	shmstat_unlink(name);
}

/* cache set: --ex SECONDS and --px MS as redis-cli's SET EX/PX, --ttl
 * TIME in the one duration syntax (a bare number is seconds). */
static void cache_ttls_take_ex_px_and_a_duration(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "ttl");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	const struct {
		const char *opt, *val;
		long lo, hi; /* remaining ms: at most what was set */
	} c[] = {
		{ "--ex", "60", 50000, 60000 },   { "--px", "1500", 1, 1500 },
		{ "--ttl", "2m", 110000, 120000 }, { "--ttl", "90", 80000, 90000 },
		{ "--ttl", "250ms", 1, 250 },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "v",
					 c[i].opt, c[i].val, NULL), 0);
		assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "ttl", "k", NULL), 0);
		long ms = atol(out);
		assert_true(ms >= c[i].lo && ms <= c[i].hi);
	}
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "v", "--ttl=0", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "ttl", "k", NULL), 0);
	assert_string_equal(out, "-1\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "v", "--ttl", "0.000s", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "ttl", "k", NULL), 0);
	assert_string_equal(out, "-1\n");
	/* A TIME above 0 but below the parser's nanosecond is 1 ms, not
	 * never: the key is gone (exit 1) or has at most 1 ms left. */
	const char *tiny[] = { "0.5ns", "0.0000000001" };
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "v", "--ttl", tiny[i], NULL), 0);
		int rc = tu_tool(out, OUT, "-n", name, "cache", "ttl", "k", NULL);
		assert_true(rc == 1 || (rc == 0 && atol(out) >= 0 && atol(out) <= 1));
		assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "v", NULL), 0);
		assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "expire", "k", "--ttl", tiny[i], NULL), 0);
		rc = tu_tool(out, OUT, "-n", name, "cache", "ttl", "k", NULL);
		assert_true(rc == 1 || (rc == 0 && atol(out) >= 0 && atol(out) <= 1));
	}
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "v", NULL), 0);
	const char *bad[][2] = { { "--ex", "0" }, { "--ex", "1.5" }, { "--px", "1s" },
				 { "--ttl", "5x" }, { "--ttl", "-1" } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "w",
					 bad[i][0], bad[i][1], NULL), 64);
	/* Refused: the value stayed. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "get", "k", NULL), 0);
	assert_string_equal(out, "v\n");
	shmstat_unlink(name);
}

/* cache set -x: the value is stdin's bytes as they are (NUL bytes, no
 * newline dropped, larger than one argument may be); -x with a VALUE
 * too is a usage error. */
static void cache_set_takes_the_value_from_stdin(void **state)
{
	(void)state;
	char name[64], path[128];
	tu_name(name, sizeof(name), "stdin");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	snprintf(path, sizeof(path), "/tmp/%s.val", name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	for (unsigned i = 0; i < 300000; i++)
		fputc((int)((i * 7u) % 251u), f);
	fputc('\n', f);
	fclose(f);
	assert_int_equal(sh("$T -n %s cache set big -x --ttl 1h < %s", name, path),
			 0);
	/* get prints the value and a newline. */
	assert_int_equal(sh("$T -n %s cache get big > %s.out && "
			    "head -c -1 %s.out | cmp -s - %s", name, path, path,
			    path),
			 0);
	/* get -r (--raw): the bytes alone, as they went in; and the hit
	 * of a value larger than the first buffer counts once. */
	shmstat_t *h = NULL;
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_open(name, NULL, &h), 0);
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	uint64_t hits = st.hits;
	assert_int_equal(sh("$T -n %s cache get -r big | cmp -s - %s", name,
			    path),
			 0);
	assert_int_equal(sh("$T -n %s cache get big --raw | cmp -s - %s", name,
			    path),
			 0);
	assert_int_equal(shmstat_cache_stats(h, &st), 0);
	assert_int_equal(st.hits, hits + 2);
	shmstat_close(&h);
	assert_int_equal(sh("$T -n %s cache set big v -x < %s", name, path), 64);
	assert_int_equal(sh("$T -n %s cache set k --stdin < /dev/null", name), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "get", "k", NULL), 0);
	assert_string_equal(out, "\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "get", "-r", "k",
				 NULL),
			 0);
	assert_string_equal(out, "");
	assert_int_equal(sh("$T -n %s cache set k v -r", name), 64);
	assert_int_equal(sh("$T -n %s cache expire k -x --ttl 1s", name), 64);
	sh("rm -f %s %s.out", path, path);
	shmstat_unlink(name);
}

/* cache -e: a KEY written as cache keys prints it (\xHH, \\) names a key
 * of any bytes, a newline and a NUL included. */
static void cache_keys_of_any_bytes_are_named_with_e(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "esc");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	shmstat_t *h = NULL;
	assert_int_equal(shmstat_open(name, NULL, &h), 0);
	assert_int_equal(shmstat_cache_set(h, "nl\nk\0\\", 6, "v1", 2, 0, 0), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "keys", NULL), 0);
	assert_string_equal(out, "nl\\x0ak\\x00\\x5c\n");
	/* What keys printed, given back with -e. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "get", "-e",
				 "nl\\x0ak\\x00\\x5c", NULL),
			 0);
	assert_string_equal(out, "v1\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "ttl",
				 "--escaped", "nl\\x0ak\\x00\\\\", NULL),
			 0);
	assert_string_equal(out, "-1\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "-e",
				 "t\\x09ab", "v2", NULL),
			 0);
	size_t n;
	char buf[8];
	assert_int_equal(shmstat_cache_get(h, "t\tab", 4, buf, sizeof(buf), &n),
			 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "del", "-e",
				 "nl\\x0ak\\x00\\x5c", NULL),
			 0);
	assert_int_equal(shmstat_cache_exists(h, "nl\nk\0\\", 6), 0);
	/* Without -e the argument is its bytes; a bad escape, or -e with a
	 * GLOB, is a usage error. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "get",
				 "t\\x09ab", NULL),
			 1);
	assert_int_equal(sh("$T -n %s cache get -e 'a\\q'", name), 64);
	assert_int_equal(sh("$T -n %s cache get -e 'a\\x4'", name), 64);
	assert_int_equal(sh("$T -n %s cache keys -e", name), 64);
	assert_int_equal(sh("$T -n %s cache clear -e 'x*'", name), 64);
	shmstat_close(&h);
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
	assert_non_null(strstr(err, "exit 64\n")); /* a usage error */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "list", "-j", NULL), 0);
	assert_non_null(strstr(out, "\"counters\": {},"));
	shmstat_unlink(name);
}

/* -o FILE only ever replaces a regular file; -o - is standard output. */
static void list_o_refuses_what_is_not_a_regular_file_and_dash_is_stdout(void **state)
{
	(void)state;
	char name[64], dir[] = "/tmp/shmstat-o-XXXXXX";
	tu_name(name, sizeof(name), "oreg");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "hits", NULL), 0);
	assert_non_null(mkdtemp(dir));
	/* A FIFO, a character device (as /dev/full), a directory and a
	 * dangling symlink: refused with exit 64, each left as it was. */
	assert_int_equal(sh("cd %s && mkfifo fifo && mkdir dir && ln -s nothing dang",
			    dir), 0);
	bool dev = geteuid() == 0 &&
		   sh("mknod %s/full c 1 7", dir) == 0;
	const char *bad[] = { "fifo", "dir", "dang", "full" };
	const char *what[] = { "is a FIFO, not a regular file", "is a directory",
			       "symlink to nothing", "is a character device" };
	for (size_t i = 0; i < (dev ? 4u : 3u); i++) {
		assert_int_equal(sh("$T -n %s list -p -o %s/%s", name, dir, bad[i]), 64);
		assert_non_null(strstr(out, what[i]));
	}
	assert_int_equal(sh("test -p %s/fifo && test -d %s/dir && test -L %s/dang",
			    dir, dir, dir), 0);
	if (dev)
		assert_int_equal(sh("test -c %s/full", dir), 0);
	/* A symlink to a regular file: the target is replaced, the link
	 * stays a link. */
	assert_int_equal(sh("cd %s && echo old > real && ln -s real link", dir), 0);
	assert_int_equal(sh("$T -n %s list -p -o %s/link", name, dir), 0);
	assert_int_equal(sh("test -L %s/link && grep -q shmstat_hits_total %s/real",
			    dir, dir), 0);
	/* -o - writes to stdout and creates no file named '-'. */
	assert_int_equal(sh("cd %s && $T -n %s list -p -o -", dir, name), 0);
	assert_non_null(strstr(out, "shmstat_hits_total"));
	assert_int_equal(sh("test ! -e %s/-", dir), 0);
	/* Nothing else was left behind (no temporary files). */
	assert_int_equal(sh("test $(ls -A %s | wc -l) -eq %d", dir, dev ? 6 : 5), 0);
	sh("rm -rf %s", dir);
	shmstat_unlink(name);
}

/* The conventions: a filter that matched nothing exits 1, and a count
 * is still printed. */
static void a_filter_that_matched_nothing_exits_1(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "nomatch");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "incr", "a:x", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "set", "k", "v", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "reset", "zz*", NULL), 1);
	assert_string_equal(out, "0\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "reset", "a:*", NULL), 0);
	assert_string_equal(out, "1\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "keys", "zz*", NULL), 1);
	assert_string_equal(out, "");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "keys", "k*", NULL), 0);
	assert_string_equal(out, "k\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "clear", "zz*", NULL), 1);
	assert_string_equal(out, "0\n");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "clear", "k*", NULL), 0);
	assert_string_equal(out, "1\n");
	/* No filter: an empty cache is not a miss. */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "keys", NULL), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "cache", "flush", NULL), 0);
	assert_string_equal(out, "0\n");
	shmstat_unlink(name);
}

/* reset --global with no bridge to run it: the operation failed (3). */
static void reset_global_without_a_bridge_exits_3(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "rglob");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(sh("$T -n %s reset --global 'a:*'", name), 3);
	assert_non_null(strstr(out, "no shmstat-bridge is running"));
	shmstat_unlink(name);
}

/* Errors say what is wrong: the name's own fault, the allowed range. */
static void errors_say_what_is_wrong_and_the_allowed_range(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "msg");
	assert_int_equal(sh("$T -n a/b list"), 64);
	assert_non_null(strstr(out, "'/' is not allowed"));
	assert_null(strstr(out, ".."));
	assert_int_equal(sh("$T -n '' list"), 64);
	assert_non_null(strstr(out, "empty"));
	assert_int_equal(sh("$T -n \"$(printf 'x\\377')\" list"), 64);
	assert_non_null(strstr(out, "'x\\xff'"));
	assert_non_null(strstr(out, "outside [A-Za-z0-9_.-]"));
	assert_null(strstr(out, ".."));
	assert_int_equal(sh("$T -n a..b list"), 64);
	assert_non_null(strstr(out, "'..' is not allowed"));
	/* create: each number's range, no word of --mode. */
	assert_int_equal(sh("$T -n %s create --counters 0", name), 64);
	assert_non_null(strstr(out, "--counters 0 is out of range: 1 to 16777216"));
	assert_null(strstr(out, "mode"));
	assert_int_equal(sh("$T -n %s create --workers 0", name), 64);
	assert_non_null(strstr(out, "--workers 0 is out of range: 1 to 4096"));
	assert_int_equal(sh("$T -n %s create --max-value 0", name), 64);
	assert_non_null(strstr(out, "--max-value 0 is out of range: 1 to"));
	assert_int_equal(sh("$T -n %s create --counters 12k", name), 64);
	assert_non_null(strstr(out, "decimal whole number (1 to 16777216)"));
	/* Sizes take K, M, G, T (1024-based); a unit they do not take is
	 * named with the syntax, one too large with the range. */
	assert_int_equal(sh("$T -n %s create --size 8MB", name), 64);
	assert_non_null(strstr(out, "--size takes a decimal number of bytes, "
				    "optionally with K, M, G or T"));
	assert_non_null(strstr(out, "not '8MB'"));
	assert_int_equal(sh("$T -n %s create --size 2T", name), 64);
	assert_non_null(strstr(out, "--size 2T is out of range: 1 to "
				    "1099511627776"));
	assert_int_equal(sh("$T -n %s create --max-value 3G", name), 64);
	assert_non_null(strstr(out, "--max-value 3G is out of range"));
	assert_int_equal(sh("$T -n %s create --size 8M --max-value 64K", name),
			 0);
	assert_non_null(strstr(out, "8388608 bytes"));
	assert_int_equal(sh("$T -n %s cache stats", name), 0);
	assert_non_null(strstr(out, "max_value:    65536"));
	/* set -x reads one byte past the segment's maximum, no more: an
	 * endless stdin is refused at once (not buffered up to 2 GiB), and
	 * exactly the maximum is a value. */
	assert_int_equal(sh("yes | timeout 60 $T -n %s cache set k -x", name), 3);
	assert_non_null(strstr(out, "stdin holds more than the segment's "
				    "maximum value of 65536 bytes"));
	assert_int_equal(sh("head -c 65537 /dev/zero | $T -n %s cache set k -x",
			    name),
			 3);
	assert_int_equal(sh("head -c 65536 /dev/zero | $T -n %s cache set k -x",
			    name),
			 0);
	assert_int_equal(sh("$T -n %s cache get -r k | wc -c", name), 0);
	assert_int_equal(atol(out), 65536);
	assert_int_equal(sh("$T -n %s destroy", name), 0);
	/* --home: 0 to 90; info says how many blocks it made. */
	assert_int_equal(sh("$T -n %s create --home 91", name), 64);
	assert_non_null(strstr(out, "--home 91 is out of range: 0 to 90"));
	assert_int_equal(sh("$T -n %s create --home 1", name), 0);
	assert_non_null(strstr(out, "--home 1 gave no home blocks"));
	assert_int_equal(sh("$T -n %s destroy", name), 0);
	assert_int_equal(sh("$T -n %s create --size 16M --home 50", name), 0);
	assert_non_null(strstr(out, " cache home blocks"));
	assert_int_equal(sh("$T -n %s info", name), 0);
	assert_non_null(strstr(out, " home blocks ("));
	assert_int_equal(sh("$T -n %s info -j", name), 0);
	assert_non_null(strstr(out, "\"cache_home_blocks\": "));
	assert_null(strstr(out, "\"cache_home_blocks\": 0,"));
	assert_int_equal(sh("$T -n %s cache set k v", name), 0);
	assert_int_equal(sh("$T -n %s cache get k", name), 0);
	assert_non_null(strstr(out, "v"));
	assert_int_equal(sh("$T -n %s destroy", name), 0);
	/* --mode: world-writable is refused, with why. */
	assert_int_equal(sh("$T -n %s create --mode 0666", name), 64);
	assert_non_null(strstr(out, "world-writable"));
	assert_non_null(strstr(out, "crash every worker"));
	assert_int_equal(sh("$T -n %s list", name), 2); /* nothing created */
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	/* TTLs: out of range is not "not a number and a unit". */
	assert_int_equal(sh("$T -n %s cache set k v --ttl 1000000d", name), 64);
	assert_non_null(strstr(out, "out of range (at most 9223372036s"));
	assert_null(strstr(out, "needs a number"));
	assert_int_equal(sh("$T -n %s cache set k v --ttl 5x", name), 64);
	assert_non_null(strstr(out, "is not a TIME"));
	/* A missing value, a negative TTL, two TTLs: said as such. */
	assert_int_equal(sh("$T -n %s cache set k v --ex", name), 64);
	assert_non_null(strstr(out, "--ex needs a value"));
	assert_int_equal(sh("$T -n %s cache set k v --ttl=", name), 64);
	assert_non_null(strstr(out, "--ttl= needs a value"));
	assert_int_equal(sh("$T -n %s cache set k v --ttl -5", name), 64);
	assert_non_null(strstr(out, "a TTL cannot be negative (0 or"));
	assert_int_equal(sh("$T -n %s cache set k v --ex -5", name), 64);
	assert_non_null(strstr(out, "a TTL cannot be negative (no option"));
	assert_int_equal(sh("$T -n %s cache set --ttl --nx k v", name), 64);
	assert_non_null(strstr(out, "--ttl needs a value"));
	assert_int_equal(sh("$T -n %s cache set k v --ex 5 --px 6", name), 64);
	assert_non_null(strstr(out, "a TTL is given once"));
	assert_int_equal(sh("$T -n %s cache set k v --ex 99999999999999999", name), 64);
	assert_non_null(strstr(out, "out of range: 1 to 9223372036 seconds"));
	assert_int_equal(sh("$T -n %s cache set k v --ex 1.5", name), 64);
	assert_non_null(strstr(out, "not whole seconds"));
	assert_int_equal(sh("$T -n %s cache set k v --px 99999999999999999", name), 64);
	assert_non_null(strstr(out, "out of range: 1 to 9223372036854 milliseconds"));
	/* A gauge's bad name is called a gauge's. */
	assert_int_equal(sh("$T -n %s set \"$(printf 'bad\\303')\" 1", name), 64);
	assert_non_null(strstr(out, "gauge name is not valid UTF-8"));
	assert_int_equal(sh("$T -n %s incr \"$(printf 'bad\\303')\"", name), 64);
	assert_non_null(strstr(out, "counter name is not valid UTF-8"));
	/* The live view's options without the live view are refused. */
	assert_int_equal(sh("$T -n %s list -c 2", name), 64);
	assert_non_null(strstr(out, "-c goes with -w"));
	assert_int_equal(sh("$T -n %s list -H", name), 64);
	assert_non_null(strstr(out, "-H goes with -w"));
	/* An observation too large for a double is out of range, not "not
	 * a number". */
	assert_int_equal(sh("$T -n %s observe h 1e400", name), 64);
	assert_non_null(strstr(out, "VALUE '1e400' is out of range"));
	assert_int_equal(sh("$T -n %s observe h 1e13", name), 64);
	assert_non_null(strstr(out, "below 9.2e+12 (its sum would saturate)"));
	assert_int_equal(sh("$T -n %s observe h -1", name), 64);
	assert_non_null(strstr(out, "must be a decimal number >= 0"));
	/* A missing name is not only a counter's or a gauge's. */
	assert_int_equal(sh("$T -n %s get nope", name), 1);
	assert_non_null(strstr(out, "no counter, gauge or histogram 'nope'"));
	assert_null(strstr(out, "did you mean"));
	/* A typo gets the name it missed; a histogram's family without its
	 * labels, one of its names. */
	assert_int_equal(sh("$T -n %s incr filter_stats:rejected 2", name), 0);
	assert_int_equal(sh("$T -n %s get filter_stats:rejectd", name), 1);
	assert_non_null(strstr(out, "did you mean 'filter_stats:rejected'?"));
	assert_int_equal(sh("$T -n %s observe 'lat{r=\"/\"}' 0.2", name), 0);
	assert_int_equal(sh("$T -n %s get lat", name), 1);
	assert_non_null(strstr(out, "'lat' is named with its labels, e.g. "
				    "'lat{r=\"/\"}'"));
	shmstat_unlink(name);
}

/* The table's columns count characters, not bytes: a name of multibyte
 * characters lines up with the others. */
static void the_table_aligns_names_of_multibyte_characters(void **state)
{
	(void)state;
	char name[64], want[160];
	tu_name(name, sizeof(name), "mb");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(sh("$T -n %s incr '\303\274n\303\257:c\303\270d\303\251' 8",
			    name),
			 0);
	assert_int_equal(sh("$T -n %s list", name), 0);
	/* 8 characters (12 bytes), then 42 blanks to 50 columns. */
	snprintf(want, sizeof(want), "\303\274n\303\257:c\303\270d\303\251%42s %20d  counter\n",
		 "", 8);
	assert_non_null(strstr(out, want));
	shmstat_unlink(name);
}

/* The live view shows a histogram as the table does: its count (and the
 * rate of its observations), not its sum. */
static void the_live_view_shows_a_histograms_count(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "livehist");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(sh("$T -n %s observe 'lat{r=\"/\"}' 0.342", name), 0);
	assert_int_equal(sh("$T -n %s observe 'lat{r=\"/\"}' 0.25", name), 0);
	assert_int_equal(sh("$T -n %s observe 'lat{r=\"/\"}' 7", name), 0);
	assert_int_equal(sh("$T -n %s list -w 50ms -c 1 -f 'lat*'", name), 0);
	const char *row = strstr(out, "lat{r=\"/\"}");
	assert_non_null(row);
	long v = -1;
	assert_int_equal(sscanf(row + strlen("lat{r=\"/\"}"), "%ld", &v), 1);
	assert_int_equal(v, 3);
	assert_null(strstr(out, "sum"));
	shmstat_unlink(name);
}

/* A counter stops at INT64_MAX: an add past it is said, and exits 3. */
static void incr_that_saturates_warns_and_exits_3(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "sat");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	assert_int_equal(sh("$T -n %s incr x 9223372036854775806", name), 0);
	assert_string_equal(out, "9223372036854775806\n");
	/* Reaching the maximum exactly is counted in full. */
	assert_int_equal(sh("$T -n %s incr x", name), 0);
	assert_string_equal(out, "9223372036854775807\n");
	assert_int_equal(sh("$T -n %s incr x 5", name), 3);
	assert_non_null(strstr(out, "9223372036854775807\n"));
	assert_non_null(strstr(out, "counter 'x' is at its maximum "
				    "9223372036854775807; the add of 5 was not"));
	/* Adding 0 loses nothing. */
	assert_int_equal(sh("$T -n %s incr x 0", name), 0);
	shmstat_unlink(name);
}

/* Rows of processes that ended are not called dead: they are no crash. */
static void info_words_rows_of_ended_processes_as_no_crash(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "ended");
	assert_int_equal(tu_tool(out, OUT, "-n", name, "create", NULL), 0);
	/* A child that counts and exits without closing leaves its row. */
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		shmstat_t *h;
		if (shmstat_open(name, NULL, &h) < 0 ||
		    shmstat_counter_add_by_name(h, "c", 1) < 0)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(tu_wait(p, 20000), 0);
	assert_int_equal(tu_tool(out, OUT, "-n", name, "info", NULL), 0);
	assert_null(strstr(out, "dead"));
	assert_non_null(strstr(out, "ended:     1 rows of processes that ended "
				    "(their counts kept, reused by the next "
				    "process)"));
	assert_int_equal(tu_tool(out, OUT, "-n", name, "get", "c", NULL), 0);
	assert_string_equal(out, "1\n");
	shmstat_unlink(name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(help_is_given_for_the_tool_and_every_command),
		cmocka_unit_test(usage_errors_exit_64_and_missing_segments_exit_2),
		cmocka_unit_test(not_found_exits_1_and_a_failed_operation_3),
		cmocka_unit_test(numbers_on_the_command_line_are_decimal),
		cmocka_unit_test(cache_ttls_take_ex_px_and_a_duration),
		cmocka_unit_test(cache_set_takes_the_value_from_stdin),
		cmocka_unit_test(cache_keys_of_any_bytes_are_named_with_e),
		cmocka_unit_test(filters_repeat_and_a_caret_or_X_excludes),
		cmocka_unit_test(the_textfile_is_replaced_whole_while_a_reader_races_it),
		cmocka_unit_test(ls_shows_each_segment_with_owner_mode_and_bridge),
		cmocka_unit_test(a_mistyped_segment_name_gets_a_suggestion),
		cmocka_unit_test(permission_denied_names_segment_path_owner_and_mode),
		cmocka_unit_test(write_errors_exit_3_with_a_message),
		cmocka_unit_test(the_live_view_ends_on_a_closed_pipe),
		cmocka_unit_test(a_segment_truncated_under_the_tool_is_named_not_a_bus_error),
		cmocka_unit_test(create_list_get_incr_reset_destroy),
		cmocka_unit_test(segment_name_comes_from_the_environment),
		cmocka_unit_test(json_output_carries_timestamp_source_and_escaped_names),
		cmocka_unit_test(health_exits_0_healthy_1_degraded_2_broken),
		cmocka_unit_test(list_prometheus_prints_the_text_format),
		cmocka_unit_test(incr_refuses_a_name_that_is_not_utf8),
		cmocka_unit_test(list_o_refuses_what_is_not_a_regular_file_and_dash_is_stdout),
		cmocka_unit_test(a_filter_that_matched_nothing_exits_1),
		cmocka_unit_test(reset_global_without_a_bridge_exits_3),
		cmocka_unit_test(errors_say_what_is_wrong_and_the_allowed_range),
		cmocka_unit_test(incr_that_saturates_warns_and_exits_3),
		cmocka_unit_test(the_live_view_shows_a_histograms_count),
		cmocka_unit_test(the_table_aligns_names_of_multibyte_characters),
		cmocka_unit_test(info_words_rows_of_ended_processes_as_no_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
