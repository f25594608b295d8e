/*
 * test_promtool.c — the exposition of shm/export.c as Prometheus itself
 * reads it: `promtool check metrics` (the parser and the linter of the
 * Prometheus server) on documents written for names chosen to be hard:
 * quotes, backslashes, multibyte UTF-8, colons, names that sanitize alike,
 * names that would meet shmstat's own families, _total in the name.
 * promtool comes with Debian's prometheus package (scripts/deps.sh); the
 * test is skipped, saying so, only when it is missing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "testutil.h"

static char promtool[4096];

static bool find_promtool(void)
{
	const char *path = getenv("PATH");
	char dirs[8192];

	snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
	for (char *save, *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(promtool, sizeof(promtool), "%s/promtool", d);
		if (access(promtool, X_OK) == 0)
			return true;
	}
	return false;
}

/* Run promtool check metrics on doc; its output into out. Exit status. */
static int check_metrics(const char *doc, char *out, size_t outlen)
{
	char path[] = "/tmp/shmstat-promtool-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t len = strlen(doc);
	assert_int_equal(write(fd, doc, len), (ssize_t)len);
	close(fd);
	char cmd[8192];
	snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s' 2>&1", promtool, path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t got = fread(out, 1, outlen - 1, p);
	out[got] = '\0';
	int st = pclose(p);
	unlink(path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *exposition(shmstat_t *h)
{
	size_t need = 0;
	assert_int_equal(shmstat_export_prometheus_buf(h, NULL, NULL, 0, &need),
			 SHMSTAT_ERANGE);
	char *buf = malloc(need + 4096); /* room for a value that grows */
	assert_non_null(buf);
	assert_int_equal(shmstat_export_prometheus_buf(h, NULL, buf, need + 4096,
						       NULL), 0);
	return buf;
}

static void promtool_accepts_the_exposition_for_hard_names(void **state)
{
	struct tu_seg *s = *state;
	static const char *const counters[] = {
		"quote\"back\\slash", "back\\\\slash\\", "filter_stats:ml_confident",
		"größe.bytes", "日本語", "emoji😀count", "9lives",
		"req:by-host", "req:by.host", "req_by_host", /* one family */
		"http_requests_total", "http_requests",  /* one family */
		"cache:hits", "cache_hits_total", "user:cache:hits", /* moved */
		"bridge:pushes", "row_overflows", "\"",
	};
	static const char *const gauges[] = {
		"workers.busy", "queue_total",  /* shmstat_queue, a gauge */
		"cache.entries", "workers", "bridge_up", "ü", "x\"y\\z",
	};
	shmstat_gauge_t g;
	char out[16384];

	if (!find_promtool()) {
		print_message("promtool not found in PATH: skipped (Debian package "
			      "prometheus; scripts/deps.sh installs it)\n");
		skip();
	}
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		assert_int_equal(shmstat_counter_add_by_name(s->h, counters[i], i + 1), 0);
	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
		assert_int_equal(shmstat_gauge_open(s->h, gauges[i], &g), 0);
		shmstat_gauge_set(g, -(int64_t)i);
	}
	char k[] = "key";
	shmstat_cache_set(s->h, k, 3, "v", 1, 0, SHMSTAT_CACHE_ALWAYS);

	char *doc = exposition(s->h);
	int rc = check_metrics(doc, out, sizeof(out));
	if (rc != 0 || out[0]) {
		/* stdio, not print_message(): cmocka cuts long messages. */
		fprintf(stderr, "--- the document:\n%s--- promtool check "
				"metrics (exit %d):\n%s\n", doc, rc, out);
		fail_msg("promtool check metrics refused the exposition");
	}
	free(doc);

	/* The checker is not blind: the document before this library's
	 * rules (a second HELP for shmstat's own family) is refused. */
	static const char dup[] =
		"# HELP shmstat_cache_hits_total a\n"
		"# TYPE shmstat_cache_hits_total counter\n"
		"shmstat_cache_hits_total{name=\"cache:hits\"} 1\n"
		"# HELP shmstat_cache_hits_total b\n"
		"# TYPE shmstat_cache_hits_total counter\n"
		"shmstat_cache_hits_total 2\n";
	assert_int_not_equal(check_metrics(dup, out, sizeof(out)), 0);
	assert_int_not_equal(check_metrics("# HELP a_total x\n# TYPE a_total counter\n"
					   "a_total{name=\"\xe9\"} 1\n",
					   out, sizeof(out)), 0);
}

/* Counters, gauges and histograms with labels (quotes, backslashes,
 * newlines, UTF-8 in values), UTF-8 names, help texts: clean for
 * promtool's parser and its linter. */
static void promtool_accepts_histograms_labels_and_help(void **state)
{
	struct tu_seg *s = *state;
	static const double b[] = { 0.005, 0.01, 0.1, 1, 10 };
	shmstat_histogram_t hg;
	shmstat_gauge_t g;
	char out[16384];

	if (!find_promtool()) {
		print_message("promtool not found in PATH: skipped (Debian package "
			      "prometheus; scripts/deps.sh installs it)\n");
		skip();
	}
	assert_int_equal(shmstat_counter_add_by_name(
				 s->h, "http_requests_total{route=\"/\",code=\"200\"}", 3), 0);
	assert_int_equal(shmstat_counter_add_by_name(
				 s->h, "http_requests_total{code=\"500\",route=\"/a\\\"b\\\\c\"}", 1), 0);
	assert_int_equal(shmstat_counter_add_by_name(
				 s->h, "größe_total{wert=\"ü\\n\"}", 2), 0);
	assert_int_equal(shmstat_counter_add_by_name(s->h, "plain_events", 4), 0);
	assert_int_equal(shmstat_gauge_open(s->h, "inflight{pool=\"a\"}", &g), 0);
	shmstat_gauge_set(g, 5);
	assert_int_equal(shmstat_gauge_open(s->h, "日本語{name=\"x\"}", &g), 0);
	assert_int_equal(shmstat_histogram_open(s->h,
		"http_request_duration_seconds{route=\"/\"}", b, 5, &hg), 0);
	for (int i = 0; i < 100; i++)
		shmstat_histogram_observe(hg, i * 0.013);
	assert_int_equal(shmstat_histogram_open(s->h,
		"http_request_duration_seconds{route=\"/q\\\"\"}", b, 5, &hg), 0);
	shmstat_histogram_observe(hg, 0.5);
	assert_int_equal(shmstat_histogram_open(s->h, "payload_bytes", NULL, 0,
						&hg), SHMSTAT_ENOTFOUND);
	double e[8];
	assert_int_equal(shmstat_buckets_exponential(64, 4, 8, e), 0);
	assert_int_equal(shmstat_histogram_open(s->h, "payload_bytes", e, 8, &hg), 0);
	shmstat_histogram_observe(hg, 1000);
	assert_int_equal(shmstat_help_set(s->h, "http_requests_total",
					  "Requests by route and code."), 0);
	assert_int_equal(shmstat_help_set(s->h, "http_request_duration_seconds",
					  "Request latency, \"quoted\" \\ and\nsplit."), 0);

	char *doc = exposition(s->h);
	int rc = check_metrics(doc, out, sizeof(out));
	if (rc != 0 || out[0]) {
		fprintf(stderr, "--- the document:\n%s--- promtool check "
				"metrics (exit %d):\n%s\n", doc, rc, out);
		fail_msg("promtool check metrics refused the exposition");
	}
	/* What a prometheus_client user expects to find. */
	assert_non_null(strstr(doc, "# TYPE shmstat_http_request_duration_seconds histogram\n"));
	assert_non_null(strstr(doc, "shmstat_http_request_duration_seconds_bucket{segment="));
	assert_non_null(strstr(doc, ",route=\"/\",le=\"+Inf\"} 100\n"));
	assert_non_null(strstr(doc, "# HELP shmstat_http_requests_total Requests by route and code.\n"));
	assert_null(strstr(doc, "_total_total"));
	assert_null(strstr(doc, "name=\"http_requests_total\""));
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			promtool_accepts_histograms_labels_and_help,
			tu_seg_setup, tu_seg_teardown),
		cmocka_unit_test_setup_teardown(
			promtool_accepts_the_exposition_for_hard_names,
			tu_seg_setup, tu_seg_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
