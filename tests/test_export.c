/*
 * test_export.c — the documents of shm/export.c: the Prometheus text
 * exposition checked line by line by a parser written from the format's
 * rules, the live-stats JSON, and the health verdict.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expo.h"
#include "shmstat_i.h"
#include "testutil.h"

static char *capture(shmstat_t *h, int (*fn)(shmstat_t *, const char *, FILE *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(fn(h, NULL, f), 0);
	fclose(f);
	return buf;
}

static void prometheus_output_parses_under_the_exposition_rules(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;
	shmstat_gauge_t g;

	shmstat_counter_add_by_name(s->h, "filter_stats:ml_confident", 120);
	shmstat_counter_add_by_name(s->h, "filter_stats:total_samples", 150);
	shmstat_counter_add_by_name(s->h, "9lives", 9);
	shmstat_counter_add_by_name(s->h, "quote\"back\\slash", 3);
	shmstat_gauge_open(s->h, "workers.busy", &g);
	shmstat_gauge_set(g, -4);
	char k[] = "k";
	shmstat_cache_set(s->h, k, 1, "v", 1, 0, SHMSTAT_CACHE_ALWAYS);
	char v[4];
	size_t vl;
	shmstat_cache_get(s->h, k, 1, v, sizeof(v), &vl);

	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	const struct sample *x;
	x = expo_find(&e, "shmstat_filter_stats_ml_confident_total",
		 "filter_stats:ml_confident");
	assert_non_null(x);
	assert_true(x->value == 120);
	x = expo_find(&e, "shmstat_9lives_total", "9lives");
	assert_non_null(x);
	x = expo_find(&e, "shmstat_quote_back_slash_total", "quote\"back\\slash");
	assert_non_null(x);
	assert_true(x->value == 3);
	x = expo_find(&e, "shmstat_workers_busy", "workers.busy");
	assert_non_null(x);
	assert_true(x->value == -4);
	assert_non_null(expo_find(&e, "shmstat_cache_hits_total", NULL));
	assert_true(expo_find(&e, "shmstat_cache_hits_total", NULL)->value == 1);
	assert_non_null(expo_find(&e, "shmstat_bridge_up", NULL));
	assert_non_null(expo_find(&e, "shmstat_workers", NULL));
	int fi = expo_family(&e, "shmstat_filter_stats_ml_confident_total");
	assert_true(fi >= 0);
	assert_string_equal(e.type_of[fi], "counter");
	free(doc);
}

/* Names that sanitize alike stay distinct series, and the collision is
 * said in a comment; a gauge that would share a counter's family is moved
 * to its own. */
static void names_that_sanitize_alike_stay_distinct(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;
	shmstat_gauge_t g;

	shmstat_counter_add_by_name(s->h, "req:a-b", 1);
	shmstat_counter_add_by_name(s->h, "req:a.b", 2);
	shmstat_counter_add_by_name(s->h, "req_a_b", 3);
	shmstat_counter_add_by_name(s->h, "x", 5);
	shmstat_gauge_open(s->h, "x_total", &g); /* would be shmstat_x_total */
	shmstat_gauge_set(g, 7);
	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	assert_true(expo_find(&e, "shmstat_req_a_b_total", "req:a-b")->value == 1);
	assert_true(expo_find(&e, "shmstat_req_a_b_total", "req:a.b")->value == 2);
	assert_true(expo_find(&e, "shmstat_req_a_b_total", "req_a_b")->value == 3);
	assert_non_null(strstr(doc, "# shmstat: 3 names sanitize to shmstat_req_a_b_total"));
	assert_true(expo_find(&e, "shmstat_x_total", "x")->value == 5);
	assert_true(expo_find(&e, "shmstat_x_total_gauge", "x_total")->value == 7);
	free(doc);
}

static void an_empty_segment_exports_valid_documents(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;

	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	assert_non_null(expo_find(&e, "shmstat_counters_used", NULL));
	free(doc);
	doc = capture(s->h, shmstat_export_json);
	assert_non_null(strstr(doc, "\"counters\": {},"));
	free(doc);
}

static void live_stats_json_has_timestamp_source_and_values(void **state)
{
	struct tu_seg *s = *state;

	shmstat_counter_add_by_name(s->h, "filter_stats:rejected", 5);
	char *doc = capture(s->h, shmstat_export_json);
	assert_non_null(strstr(doc, "\"timestamp\": \"20"));
	assert_non_null(strstr(doc, "\"source\": \"local\""));
	assert_non_null(strstr(doc, "\"filter_stats:rejected\": 5"));
	free(doc);
}

static void health_is_degraded_without_a_bridge_and_names_why(void **state)
{
	struct tu_seg *s = *state;
	shmstat_health_t hs;

	assert_int_equal(shmstat_health(s->h, 0, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_DEGRADED);
	assert_non_null(strstr(hs.reason, "no bridge is running"));
	assert_int_equal(shmstat_health(s->h, SHMSTAT_HEALTH_NO_BRIDGE, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_HEALTHY);
	assert_string_equal(hs.reason, "");
}

static void health_is_degraded_when_the_directory_is_nearly_full(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_counters = 10, .size = 2u << 20 };
	shmstat_health_t hs;
	char name[16];

	tu_seg_create(&s, "nearfull", &o);
	for (int i = 0; i < 9; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		shmstat_counter_add_by_name(s.h, name, 1);
	}
	assert_int_equal(shmstat_health(s.h, SHMSTAT_HEALTH_NO_BRIDGE, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_DEGRADED);
	assert_non_null(strstr(hs.reason, "directory: nearly full: 9 of 10"));
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tu_seg_setup, tu_seg_teardown)
	const struct CMUnitTest tests[] = {
		T(prometheus_output_parses_under_the_exposition_rules),
		T(names_that_sanitize_alike_stay_distinct),
		T(an_empty_segment_exports_valid_documents),
		T(live_stats_json_has_timestamp_source_and_values),
		T(health_is_degraded_without_a_bridge_and_names_why),
		cmocka_unit_test(health_is_degraded_when_the_directory_is_nearly_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
