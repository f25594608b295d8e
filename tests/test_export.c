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

#include "shmstat_i.h"
#include "testutil.h"

/* ------------------------------------------- a test-side exposition parser */

struct sample {
	char name[512];
	char labels[2048]; /* canonical: k="v",k="v" as written */
	char label_name[1024]; /* value of the name="" label, unescaped */
	double value;
};

struct expo {
	struct sample s[4096];
	int n;
	char types[512][512]; /* family -> type, in order of TYPE lines */
	char type_of[512][16];
	int nfam;
};

static bool metric_name_ok(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = isalpha((unsigned char)c) || c == '_' || c == ':' ||
			  (i > 0 && isdigit((unsigned char)c));
		if (!ok)
			return false;
	}
	return true;
}

static bool label_name_ok(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!(isalpha((unsigned char)c) || c == '_' ||
		      (i > 0 && isdigit((unsigned char)c))))
			return false;
	}
	return true;
}

static int family_index(struct expo *e, const char *name)
{
	for (int i = 0; i < e->nfam; i++)
		if (strcmp(e->types[i], name) == 0)
			return i;
	return -1;
}

/*
 * Parse one exposition document. Fails the test on the first line that
 * breaks the rules: metric and label names, quoting and escapes, values,
 * one TYPE per family before its samples, samples of a family together,
 * no series twice.
 */
static void parse_exposition(const char *doc, struct expo *e)
{
	const char *line = doc;
	char current[512] = "";
	int lineno = 0;

	memset(e, 0, sizeof(*e));
	while (*line) {
		const char *end = strchr(line, '\n');
		assert_non_null(end); /* every line ends with \n */
		size_t len = (size_t)(end - line);
		char buf[4096];
		assert_true(len < sizeof(buf));
		memcpy(buf, line, len);
		buf[len] = '\0';
		lineno++;
		line = end + 1;
		if (len == 0)
			continue;
		if (buf[0] == '#') {
			char kw[8], name[512], rest[2048] = "";
			if (sscanf(buf, "# %7s %511s %2047[^\n]", kw, name, rest) >= 2 &&
			    (strcmp(kw, "HELP") == 0 || strcmp(kw, "TYPE") == 0)) {
				if (!metric_name_ok(name, strlen(name)))
					fail_msg("line %d: bad family name '%s'", lineno, name);
				if (strcmp(kw, "TYPE") == 0) {
					assert_int_equal(family_index(e, name), -1);
					assert_true(strcmp(rest, "counter") == 0 ||
						    strcmp(rest, "gauge") == 0);
					snprintf(e->types[e->nfam], 512, "%s", name);
					snprintf(e->type_of[e->nfam], 16, "%s", rest);
					e->nfam++;
					snprintf(current, sizeof(current), "%s", name);
				}
			}
			continue; /* other comments are free text */
		}
		/* A sample: name{labels} value */
		struct sample *s = &e->s[e->n];
		size_t i = 0;
		while (i < len && buf[i] != '{' && buf[i] != ' ')
			i++;
		if (!metric_name_ok(buf, i))
			fail_msg("line %d: bad metric name in '%s'", lineno, buf);
		memcpy(s->name, buf, i);
		s->name[i] = '\0';
		/* Its family was typed just before (counters/gauges: same name). */
		if (strcmp(s->name, current) != 0)
			fail_msg("line %d: sample %s outside its family %s", lineno,
				 s->name, current);
		size_t lo = 0;
		if (buf[i] == '{') {
			i++;
			while (buf[i] != '}') {
				size_t k = i;
				while (buf[i] && buf[i] != '=')
					i++;
				if (!label_name_ok(buf + k, i - k))
					fail_msg("line %d: bad label name", lineno);
				char lname[128];
				snprintf(lname, sizeof(lname), "%.*s", (int)(i - k), buf + k);
				assert_int_equal(buf[i], '=');
				i++;
				assert_int_equal(buf[i], '"');
				i++;
				char val[1024];
				size_t v = 0;
				while (buf[i] != '"') {
					assert_true(v + 1 < sizeof(val));
					assert_true(buf[i] != '\0');
					if (buf[i] == '\\') {
						i++;
						assert_true(buf[i] == '\\' || buf[i] == '"' ||
							    buf[i] == 'n');
						val[v++] = buf[i] == 'n' ? '\n' : buf[i];
					} else {
						val[v++] = buf[i];
					}
					i++;
				}
				val[v] = '\0';
				i++;
				if (strcmp(lname, "name") == 0)
					snprintf(s->label_name, sizeof(s->label_name), "%s", val);
				lo += (size_t)snprintf(s->labels + lo, sizeof(s->labels) - lo,
						       "%s=%s;", lname, val);
				if (buf[i] == ',')
					i++;
				else
					assert_int_equal(buf[i], '}');
			}
			i++;
		}
		assert_int_equal(buf[i], ' ');
		char *vend;
		s->value = strtod(buf + i + 1, &vend);
		assert_true(vend != buf + i + 1 && *vend == '\0');
		for (int k = 0; k < e->n; k++)
			if (strcmp(e->s[k].name, s->name) == 0 &&
			    strcmp(e->s[k].labels, s->labels) == 0)
				fail_msg("line %d: series %s{%s} twice", lineno, s->name,
					 s->labels);
		e->n++;
		assert_true(e->n < 4096);
	}
}

static const struct sample *find(const struct expo *e, const char *metric,
				 const char *name_label)
{
	for (int i = 0; i < e->n; i++)
		if (strcmp(e->s[i].name, metric) == 0 &&
		    (!name_label || strcmp(e->s[i].label_name, name_label) == 0))
			return &e->s[i];
	return NULL;
}

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
	shmstat_gauge_get(s->h, "workers.busy", &g);
	shmstat_gauge_set(g, -4);
	char k[] = "k";
	shmstat_cache_set(s->h, k, 1, "v", 1, 0, SHMSTAT_CACHE_ALWAYS);
	char v[4];
	size_t vl;
	shmstat_cache_get(s->h, k, 1, v, sizeof(v), &vl);

	char *doc = capture(s->h, shmstat_export_prometheus);
	parse_exposition(doc, &e);
	const struct sample *x;
	x = find(&e, "shmstat_filter_stats_ml_confident_total",
		 "filter_stats:ml_confident");
	assert_non_null(x);
	assert_true(x->value == 120);
	x = find(&e, "shmstat_9lives_total", "9lives");
	assert_non_null(x);
	x = find(&e, "shmstat_quote_back_slash_total", "quote\"back\\slash");
	assert_non_null(x);
	assert_true(x->value == 3);
	x = find(&e, "shmstat_workers_busy", "workers.busy");
	assert_non_null(x);
	assert_true(x->value == -4);
	assert_non_null(find(&e, "shmstat_cache_hits_total", NULL));
	assert_true(find(&e, "shmstat_cache_hits_total", NULL)->value == 1);
	assert_non_null(find(&e, "shmstat_bridge_up", NULL));
	assert_non_null(find(&e, "shmstat_workers", NULL));
	int fi = family_index(&e, "shmstat_filter_stats_ml_confident_total");
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
	shmstat_gauge_get(s->h, "x_total", &g); /* would be shmstat_x_total */
	shmstat_gauge_set(g, 7);
	char *doc = capture(s->h, shmstat_export_prometheus);
	parse_exposition(doc, &e);
	assert_true(find(&e, "shmstat_req_a_b_total", "req:a-b")->value == 1);
	assert_true(find(&e, "shmstat_req_a_b_total", "req:a.b")->value == 2);
	assert_true(find(&e, "shmstat_req_a_b_total", "req_a_b")->value == 3);
	assert_non_null(strstr(doc, "# shmstat: 3 names sanitize to shmstat_req_a_b_total"));
	assert_true(find(&e, "shmstat_x_total", "x")->value == 5);
	assert_true(find(&e, "shmstat_x_total_gauge", "x_total")->value == 7);
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
		T(live_stats_json_has_timestamp_source_and_values),
		T(health_is_degraded_without_a_bridge_and_names_why),
		cmocka_unit_test(health_is_degraded_when_the_directory_is_nearly_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
