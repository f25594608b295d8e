/*
 * test_export.c — the documents of shm/export.c: the Prometheus text
 * exposition checked line by line by a parser written from the format's
 * rules (expo.c), the live-stats JSON and the health JSON checked by a
 * strict JSON reader written here, the buffer forms against the stream
 * forms, and the names the documents must carry: UTF-8 only, escaped,
 * never colliding with shmstat's own families.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expo.h"
#include "layout_i.h"
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

static char *capture_health(shmstat_t *h, const shmstat_health_t *hs)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(shmstat_export_health_json(h, hs, f), 0);
	fclose(f);
	return buf;
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* ------------------------------------------------------- a JSON reader */

/*
 * A strict reader of the JSON our documents use (RFC 8259: objects,
 * strings, numbers, null), failing the test on anything else. It records
 * every string it decodes (\u escapes back to UTF-8) and the number after
 * each member name, so a test can ask "is name N there, with value V?".
 */
struct jdoc {
	const char *p;
	char keys[512][512];
	double vals[512];
	int nkeys;
};

static void jws(struct jdoc *j)
{
	while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
		j->p++;
}

static void jput(char *out, size_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xc0 | cp >> 6);
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*o)++] = (char)(0xe0 | cp >> 12);
		out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	}
}

static void jstring(struct jdoc *j, char *out, size_t cap)
{
	size_t o = 0;
	assert_int_equal(*j->p, '"');
	const char *start = ++j->p;
	while (*j->p != '"') {
		unsigned char c = (unsigned char)*j->p;
		assert_true(c >= 0x20); /* raw controls are not JSON */
		assert_true(o + 4 < cap);
		if (c == '\\') {
			j->p++;
			const char *esc = strchr("\"\\/bfnrt", *j->p);
			if (*j->p == 'u') {
				unsigned v;
				assert_int_equal(sscanf(j->p + 1, "%4x", &v), 1);
				for (int k = 1; k <= 4; k++)
					assert_true(isxdigit((unsigned char)j->p[k]));
				assert_false(v >= 0xd800 && v <= 0xdfff);
				jput(out, &o, v);
				j->p += 5;
				continue;
			}
			assert_non_null(esc);
			assert_true(*j->p != '\0');
			out[o++] = "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"];
			j->p++;
			continue;
		}
		out[o++] = (char)c;
		j->p++;
	}
	assert_true(expo_utf8_ok(start, (size_t)(j->p - start)));
	j->p++;
	out[o] = '\0';
}

static void jvalue(struct jdoc *j, int key);

static void jobject(struct jdoc *j)
{
	assert_int_equal(*j->p, '{');
	j->p++;
	jws(j);
	if (*j->p == '}') {
		j->p++;
		return;
	}
	for (;;) {
		jws(j);
		assert_true(j->nkeys < 512);
		int k = j->nkeys++;
		jstring(j, j->keys[k], sizeof(j->keys[k]));
		jws(j);
		assert_int_equal(*j->p, ':');
		j->p++;
		jws(j);
		jvalue(j, k);
		jws(j);
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		assert_int_equal(*j->p, '}');
		j->p++;
		return;
	}
}

static void jvalue(struct jdoc *j, int key)
{
	char sink[2048];

	j->vals[key] = NAN;
	if (*j->p == '{') {
		jobject(j);
	} else if (*j->p == '"') {
		jstring(j, sink, sizeof(sink));
	} else if (strncmp(j->p, "null", 4) == 0) {
		j->p += 4;
	} else {
		char *end;
		assert_true(*j->p == '-' || isdigit((unsigned char)*j->p));
		j->vals[key] = strtod(j->p, &end);
		assert_true(end != j->p);
		j->p = end;
	}
}

static void json_parse(const char *doc, struct jdoc *j)
{
	memset(j, 0, sizeof(*j));
	j->p = doc;
	jws(j);
	jobject(j);
	jws(j);
	assert_int_equal(*j->p, '\0'); /* one document, nothing after it */
}

/* The value after member name key (NAN for a non-number), or fail. */
static double json_get(const struct jdoc *j, const char *key)
{
	for (int i = 0; i < j->nkeys; i++)
		if (strcmp(j->keys[i], key) == 0)
			return j->vals[i];
	fail_msg("no member '%s' in the JSON", key);
	return NAN;
}

/* ------------------------------------------------------------- names */

/* Names a user may well choose: quotes, backslashes, colons, dots,
 * multibyte UTF-8 (2, 3 and 4 bytes), a leading digit. */
static const char *const nasty[] = {
	"quote\"back\\slash", "filter_stats:ml_confident", "größe.bytes",
	"日本語", "emoji😀count", "9lives", "a\\\\b", "\"\"",
};

static void valid_utf8_names_are_accepted(void **state)
{
	struct tu_seg *s = *state;
	shmstat_gauge_t g;

	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++)
		assert_int_equal(shmstat_counter_add_by_name(s->h, nasty[i], 1), 0);
	/* U+FFFD itself, U+10FFFF, U+E000 (just past the surrogates). */
	assert_int_equal(shmstat_counter_add_by_name(s->h, "r\xef\xbf\xbd", 1), 0);
	assert_int_equal(shmstat_counter_add_by_name(s->h, "m\xf4\x8f\xbf\xbf", 1), 0);
	assert_int_equal(shmstat_gauge_open(s->h, "p\xee\x80\x80", &g), 0);
}

/* Each way a byte string fails to be UTF-8 is refused by every call that
 * takes a name, with ENAME and a reason that names the byte offset. */
static void names_that_are_not_utf8_are_refused_with_the_offset(void **state)
{
	struct tu_seg *s = *state;
	static const struct {
		const char *name;
		const char *offset;
	} bad[] = {
		{ "caf\xe9", "offset 3" },               /* Latin-1 é */
		{ "\xff", "offset 0" },                  /* never in UTF-8 */
		{ "ab\x80", "offset 2" },                /* lone continuation */
		{ "x\xc0\xafy", "offset 1" },            /* overlong '/' */
		{ "x\xe0\x80\xafy", "offset 1" },        /* overlong, 3 bytes */
		{ "s\xed\xa0\x80", "offset 1" },         /* surrogate U+D800 */
		{ "big\xf4\x90\x80\x80", "offset 3" },   /* above U+10FFFF */
		{ "cut\xe2\x82", "offset 3" },           /* truncated € */
		{ "ok\xe2\x82\xac\xe2", "offset 5" },    /* € then a cut one */
	};
	shmstat_counter_t c;
	shmstat_gauge_t g;
	shmstat_stat_t st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(shmstat_counter_add_by_name(s->h, bad[i].name, 1),
				 SHMSTAT_ENAME);
		const char *why = shmstat_errstr(s->h);
		if (!strstr(why, "not valid UTF-8") || !strstr(why, bad[i].offset))
			fail_msg("name %zu: reason '%s'", i, why);
		/* The reason itself is printable UTF-8. */
		assert_true(expo_utf8_ok(why, strlen(why)));
		assert_int_equal(shmstat_counter_open(s->h, bad[i].name, &c),
				 SHMSTAT_ENAME);
		assert_int_equal(shmstat_gauge_open(s->h, bad[i].name, &g),
				 SHMSTAT_ENAME);
		assert_int_equal(shmstat_stat_read(s->h, bad[i].name, &st),
				 SHMSTAT_ENAME);
	}
	/* Nothing was created. */
	shmstat_info_t in;
	assert_int_equal(shmstat_info(s->h, &in), 0);
	assert_int_equal(in.counters_used, 0);
	/* A control character is refused with its offset too. */
	assert_int_equal(shmstat_counter_add_by_name(s->h, "a\nb", 1), SHMSTAT_ENAME);
	assert_non_null(strstr(shmstat_errstr(s->h), "control character (0x0a) at "
						     "byte offset 1"));
}

/*
 * Random byte strings, most of them near the edges of UTF-8 (lead bytes,
 * continuation bytes, E0/ED/F0/F4 and their neighbours): the library
 * accepts a name exactly when an independent reading of RFC 3629 (expo.c)
 * says it is UTF-8 without control characters, and every accepted name
 * comes back from both documents as its own bytes. Fixed seed, bounded.
 */
static void random_names_are_accepted_exactly_when_utf8(void **state)
{
	struct tu_seg *s = *state;
	static const unsigned char edge[] = {
		0x00, 0x1f, 0x20, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
		0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
		0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff, 0x22, 0x5c, 0x3a,
	};
	static char names[300][16];
	static struct expo e;
	static struct jdoc j;
	int accepted = 0, refused = 0;
	unsigned seed = 12345;

	for (int i = 0; i < 3000 && accepted < 250; i++) {
		char name[16];
		size_t len = 0;
		for (int c = 1 + rand_r(&seed) % 3; c > 0 && len < 11; c--) {
			int how = rand_r(&seed) % 4;
			if (how == 0) { /* any byte */
				name[len++] = (char)rand_r(&seed);
			} else if (how == 1) { /* a byte near an edge */
				name[len++] = (char)edge[rand_r(&seed) % sizeof(edge)];
			} else { /* a lead byte and continuations near theirs */
				static const unsigned char lead[] = {
					0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef,
					0xf0, 0xf1, 0xf4, 0xc1, 0xf5, 0x61,
				};
				static const unsigned char cont[] = {
					0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
				};
				unsigned char l = lead[rand_r(&seed) % sizeof(lead)];
				int n = l >= 0xf0 ? 3 : l >= 0xe0 ? 2 : l >= 0xc0 ? 1 : 0;
				n += rand_r(&seed) % 5 == 0 ? -1 : 0; /* cut short */
				name[len++] = (char)l;
				for (int k = 0; k < n; k++)
					name[len++] = (char)cont[rand_r(&seed) % sizeof(cont)];
			}
		}
		name[len] = '\0';
		len = strlen(name); /* a NUL cut it short */
		if (len == 0)
			continue;
		bool ok = expo_utf8_ok(name, len);
		for (size_t k = 0; k < len; k++)
			if ((unsigned char)name[k] < 0x20 || name[k] == 0x7f)
				ok = false;
		if (memchr(name, '{', len))
			continue; /* labels: test_labels has those */
		int rc = shmstat_counter_add_by_name(s->h, name, 1);
		if (ok != (rc == 0))
			fail_msg("name %d (%zu bytes, first 0x%02x): library %d, "
				 "RFC 3629 says %s",
				 i, len, (unsigned char)name[0], rc,
				 ok ? "valid" : "invalid");
		if (rc == 0) {
			bool seen = false;
			for (int k = 0; k < accepted; k++)
				seen |= strcmp(names[k], name) == 0;
			if (!seen)
				snprintf(names[accepted++], sizeof(names[0]), "%s", name);
		} else {
			assert_int_equal(rc, SHMSTAT_ENAME);
			refused++;
		}
	}
	assert_true(accepted > 50 && refused > 50); /* both sides were tried */
	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	for (int k = 0; k < accepted; k++)
		if (!expo_user_counter(&e, names[k]))
			fail_msg("accepted name %d not in the exposition", k);
	free(doc);
	doc = capture(s->h, shmstat_export_json);
	json_parse(doc, &j);
	for (int k = 0; k < accepted; k++)
		assert_false(isnan(json_get(&j, names[k])));
	free(doc);
}

/* ---------------------------------------------------------- Prometheus */

static void prometheus_output_parses_under_the_exposition_rules(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;
	shmstat_gauge_t g;

	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++)
		shmstat_counter_add_by_name(s->h, nasty[i], 10 + i);
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
	/* Every name is there under its own name label, unescaped back to
	 * the bytes it was stored as. */
	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++) {
		int found = 0;
		for (int n = 0; n < e.n; n++)
			if (strcmp(e.s[n].label_name, nasty[i]) == 0) {
				found++;
				assert_true(e.s[n].value == (double)(10 + i));
			}
		/* A name exported as itself carries no name label. */
		const struct sample *u = expo_user_counter(&e, nasty[i]);
		if (!found && u && !u->label_name[0]) {
			found = 1;
			assert_true(u->value == (double)(10 + i));
		}
		if (found != 1)
			fail_msg("'%s' found %d times", nasty[i], found);
	}
	x = expo_find(&e, "shmstat_filter_stats_ml_confident_total",
		      "filter_stats:ml_confident");
	assert_non_null(x);
	assert_non_null(expo_find(&e, "shmstat_9lives_total", "9lives"));
	x = expo_find(&e, "shmstat_quote_back_slash_total", "quote\"back\\slash");
	assert_non_null(x);
	/* One '_' per character, however many bytes it takes. */
	assert_non_null(expo_find(&e, "shmstat_gr__e_bytes_total", "größe.bytes"));
	assert_non_null(expo_find(&e, "shmstat_____total", "日本語"));
	assert_non_null(expo_find(&e, "shmstat_emoji_count_total", "emoji😀count"));
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

/* Names that sanitize alike are one family: one HELP, one TYPE, and a
 * series per name, in byte order of the name. */
static void names_that_sanitize_alike_are_one_family(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;

	shmstat_counter_add_by_name(s->h, "req_a_b", 3);
	shmstat_counter_add_by_name(s->h, "req:a.b", 2);
	shmstat_counter_add_by_name(s->h, "req:a-b", 1);
	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	assert_true(expo_find(&e, "shmstat_req_a_b_total", "req:a-b")->value == 1);
	assert_true(expo_find(&e, "shmstat_req_a_b_total", "req:a.b")->value == 2);
	assert_true(expo_find(&e, "shmstat_req_a_b_total", "req_a_b")->value == 3);
	assert_int_equal(count_of(doc, "# TYPE shmstat_req_a_b_total "), 1);
	assert_non_null(strstr(doc, "# HELP shmstat_req_a_b_total shmstat counter, "
				    "3 names (the name label tells them apart)\n"
				    "# shmstat: 3 names sanitize to "
				    "shmstat_req_a_b_total; the name label tells "
				    "them apart\n"));
	const char *p1 = strstr(doc, "name=\"req:a-b\"");
	const char *p2 = strstr(doc, "name=\"req:a.b\"");
	const char *p3 = strstr(doc, "name=\"req_a_b\"");
	assert_true(p1 && p2 && p3 && p1 < p2 && p2 < p3);
	free(doc);
}

/* A counter's family ends in _total once; a gauge's never, so the two
 * kinds cannot meet in one family. */
static void total_is_never_doubled_and_kinds_never_share_a_family(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;
	shmstat_gauge_t g;

	shmstat_counter_add_by_name(s->h, "http_requests_total", 7);
	shmstat_counter_add_by_name(s->h, "http_requests", 1);
	shmstat_counter_add_by_name(s->h, "x", 5);
	shmstat_gauge_open(s->h, "x_total", &g); /* a gauge shmstat_x_total? */
	shmstat_gauge_set(g, 7);
	shmstat_gauge_open(s->h, "y_total_total", &g);
	shmstat_gauge_set(g, 8);
	shmstat_gauge_open(s->h, "total", &g);
	shmstat_gauge_set(g, 9);
	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	for (int i = 0; i < e.nfam; i++)
		assert_null(strstr(e.types[i], "_total_total"));
	assert_true(expo_find(&e, "shmstat_http_requests_total",
			      "http_requests_total")->value == 7);
	assert_true(expo_find(&e, "shmstat_http_requests_total",
			      "http_requests")->value == 1);
	assert_true(expo_find(&e, "shmstat_x_total", "x")->value == 5);
	assert_string_equal(e.type_of[expo_family(&e, "shmstat_x_total")], "counter");
	assert_true(expo_find(&e, "shmstat_x", "x_total")->value == 7);
	assert_string_equal(e.type_of[expo_family(&e, "shmstat_x")], "gauge");
	assert_true(expo_find(&e, "shmstat_y", "y_total_total")->value == 8);
	assert_true(expo_find(&e, "shmstat", "total")->value == 9);
	free(doc);
}

/* A user name whose family would be one of shmstat's own moves under
 * shmstat_user_, and shmstat's own family stays its own: one HELP, one
 * TYPE, its own value. */
static void user_names_never_collide_with_shmstat_own_families(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;
	shmstat_gauge_t g;

	shmstat_counter_add_by_name(s->h, "cache:hits", 11);
	shmstat_counter_add_by_name(s->h, "cache_hits_total", 12);
	shmstat_counter_add_by_name(s->h, "user:cache:hits", 13);
	shmstat_gauge_open(s->h, "cache.entries", &g);
	shmstat_gauge_set(g, 14);
	shmstat_gauge_open(s->h, "workers", &g);
	shmstat_gauge_set(g, 15);
	shmstat_counter_add_by_name(s->h, "row_overflows", 16);
	/* The bridge's histogram's series names are its own too. */
	shmstat_gauge_open(s->h, "bridge_push_duration_seconds_bucket", &g);
	shmstat_gauge_set(g, 17);
	shmstat_gauge_open(s->h, "bridge_push_duration_seconds", &g);
	shmstat_gauge_set(g, 18);
	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	assert_int_equal(count_of(doc, "# HELP shmstat_cache_hits_total "), 1);
	assert_int_equal(count_of(doc, "# TYPE shmstat_cache_hits_total "), 1);
	const struct sample *own = expo_find(&e, "shmstat_cache_hits_total", NULL);
	assert_non_null(own);
	assert_string_equal(own->label_name, ""); /* not a user series */
	assert_true(own->value == 0);
	assert_true(expo_find(&e, "shmstat_user_cache_hits_total", "cache:hits")->value == 11);
	assert_true(expo_find(&e, "shmstat_user_cache_hits_total", "cache_hits_total")->value == 12);
	assert_true(expo_find(&e, "shmstat_user_cache_hits_total", "user:cache:hits")->value == 13);
	assert_true(expo_find(&e, "shmstat_user_cache_entries", "cache.entries")->value == 14);
	assert_true(expo_find(&e, "shmstat_user_workers", "workers")->value == 15);
	assert_true(expo_find(&e, "shmstat_user_row_overflows_total", "row_overflows")->value == 16);
	assert_true(expo_find(&e, "shmstat_user_bridge_push_duration_seconds_bucket",
			      "bridge_push_duration_seconds_bucket")->value == 17);
	assert_true(expo_find(&e, "shmstat_user_bridge_push_duration_seconds",
			      "bridge_push_duration_seconds")->value == 18);
	assert_non_null(strstr(doc, "# shmstat: shmstat_cache_hits_total is shmstat's "
				    "own; names that map to it are exported as "
				    "shmstat_user_cache_hits_total\n"));
	/* No user series in any own family. */
	for (int i = 0; i < e.n; i++)
		if (e.s[i].label_name[0] && shmstat__prom_own(e.s[i].name))
			fail_msg("user series %s in own family", e.s[i].name);
	free(doc);
}

/* Every family the library writes is in its list of own names, so rule 3
 * protects it; the bridge's are listed too; none is under shmstat_user_. */
static void every_family_shmstat_writes_is_listed_as_its_own(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;

	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	assert_true(e.nfam > 10);
	for (int i = 0; i < e.nfam; i++) {
		if (!shmstat__prom_own(e.types[i]))
			fail_msg("%s is written but not listed as own", e.types[i]);
		assert_true(strncmp(e.types[i], "shmstat_user_", 13) != 0);
	}
	static const char *const bridge[] = {
		"shmstat_bridge_push_duration_seconds",
		"shmstat_bridge_push_duration_seconds_bucket",
		"shmstat_bridge_push_duration_seconds_sum",
		"shmstat_bridge_push_duration_seconds_count",
		"shmstat_bridge_process_pushes_total",
	};
	for (size_t i = 0; i < sizeof(bridge) / sizeof(bridge[0]); i++)
		assert_true(shmstat__prom_own(bridge[i]));
	assert_false(shmstat__prom_own("shmstat_cache_hits"));
	assert_false(shmstat__prom_own("shmstat_cache_hits_total_x"));
	assert_false(shmstat__prom_own("shmstat_workers_bucket"));
	free(doc);
}

/* Bytes another program left in the segment: a name that is not UTF-8
 * (stored behind the library's back) never makes a document invalid. */
static void names_the_library_would_refuse_never_break_a_document(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;
	static struct jdoc j;
	shmstat_stat_t st;

	shmstat_counter_add_by_name(s->h, "abc", 4);
	shmstat_counter_add_by_name(s->h, "abd", 5);
	shmstat_counter_add_by_name(s->h, "good", 6);
	shmstat_counter_add_by_name(s->h, "gooe", 7);
	assert_int_equal(shmstat_stat_read(s->h, "abc", &st), 0);
	s->h->dir[st.index].name[1] = (char)0xff;
	assert_int_equal(shmstat_stat_read(s->h, "abd", &st), 0);
	s->h->dir[st.index].name[1] = '\n';
	/* The same name in two entries: one series, the first entry's. */
	uint32_t good = 0, twin = 0;
	assert_int_equal(shmstat_stat_read(s->h, "good", &st), 0);
	good = st.index;
	assert_int_equal(shmstat_stat_read(s->h, "gooe", &st), 0);
	twin = st.index;
	s->h->dir[twin].name[3] = 'd';

	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	assert_non_null(strstr(doc, "# shmstat: 2 names left out"));
	assert_true(expo_find(&e, "shmstat_good_total", "good")->value ==
		    (good < twin ? 6 : 7));
	free(doc);
	doc = capture(s->h, shmstat_export_json);
	json_parse(doc, &j);
	assert_true(json_get(&j, "a\xef\xbf\xbd" "c") == 4);
	assert_true(json_get(&j, "a\nd") == 5);
	assert_true(json_get(&j, "good") == (good < twin ? 6 : 7));
	free(doc);
}

/* ---------------------------------------------------------------- JSON */

static void an_empty_segment_exports_valid_documents(void **state)
{
	struct tu_seg *s = *state;
	static struct expo e;
	static struct jdoc j;

	char *doc = capture(s->h, shmstat_export_prometheus);
	expo_parse(doc, &e);
	assert_non_null(expo_find(&e, "shmstat_counters_used", NULL));
	free(doc);
	doc = capture(s->h, shmstat_export_json);
	json_parse(doc, &j);
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

/* Every accepted name reads back from the JSON as the same bytes. */
static void live_stats_json_is_valid_for_every_accepted_name(void **state)
{
	struct tu_seg *s = *state;
	static struct jdoc j;
	shmstat_gauge_t g;

	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++)
		assert_int_equal(shmstat_counter_add_by_name(s->h, nasty[i], 20 + i), 0);
	assert_int_equal(shmstat_gauge_open(s->h, "tab\there", &g), SHMSTAT_ENAME);
	assert_int_equal(shmstat_gauge_open(s->h, "g/ü\"", &g), 0);
	shmstat_gauge_set(g, -3);
	char *doc = capture(s->h, shmstat_export_json);
	json_parse(doc, &j);
	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++)
		assert_true(json_get(&j, nasty[i]) == (double)(20 + i));
	assert_true(json_get(&j, "g/ü\"") == -3);
	/* Escaped as JSON wants, multibyte passed through. */
	assert_non_null(strstr(doc, "\"quote\\\"back\\\\slash\": 20"));
	assert_non_null(strstr(doc, "\"日本語\": 23"));
	free(doc);
}

/* -------------------------------------------------------------- health */

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
	/* Not required, but still said. */
	assert_string_equal(hs.bridge, "not required: no bridge is running");
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

/* Rows running out degrade health while every row is held by a live
 * process and for ten minutes after a claim found none, not for ever. */
static void health_is_degraded_while_rows_run_out_and_ten_minutes_after(
	void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_workers = 2, .max_counters = 8,
				.size = 2u << 20 };
	shmstat_t *a, *b;
	shmstat_counter_t c;
	shmstat_health_t hs;

	tu_seg_create(&s, "rows", &o);
	assert_int_equal(shmstat_open(s.name, NULL, &a), 0);
	assert_int_equal(shmstat_open(s.name, NULL, &b), 0);
	assert_int_equal(shmstat_counter_open(s.h, "x", &c), 0);
	assert_int_equal(shmstat_health(s.h, SHMSTAT_HEALTH_NO_BRIDGE, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_HEALTHY);
	/* Both rows held: the next process would overflow. */
	assert_int_equal(shmstat_counter_open(a, "x", &c), 0);
	assert_int_equal(shmstat_health(s.h, SHMSTAT_HEALTH_NO_BRIDGE, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_DEGRADED);
	assert_non_null(strstr(hs.workers, "all 2 rows are held by live "
					   "processes"));
	/* One did; then a row is free again: degraded, for now. */
	assert_int_equal(shmstat_counter_open(b, "x", &c), 0);
	shmstat_close(&a);
	assert_int_equal(shmstat_health(s.h, SHMSTAT_HEALTH_NO_BRIDGE, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_DEGRADED);
	assert_non_null(strstr(hs.workers, "1 process found no free row, the "
					   "last "));
	/* Ten minutes and a second later: healthy. */
	_Atomic uint64_t *t = &s.h->hdr->row_overflow_ns;
	atomic_store(t, shmstat__now_realtime_ns() -
				(SHMSTAT_HEALTH_ROWS_WINDOW_S + 1) * 1000000000ull);
	assert_int_equal(shmstat_health(s.h, SHMSTAT_HEALTH_NO_BRIDGE, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_HEALTHY);
	assert_string_equal(hs.workers, "ok");
	/* A claim of an older build (no time kept) counts as recent. */
	atomic_store(t, 0);
	assert_int_equal(shmstat_health(s.h, SHMSTAT_HEALTH_NO_BRIDGE, &hs), 0);
	assert_int_equal(hs.status, SHMSTAT_DEGRADED);
	shmstat_close(&b);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/* Whatever a caller puts in the struct (quotes, a newline, bytes that are
 * not UTF-8, a field with no NUL), the health JSON stays valid. */
static void health_json_is_valid_for_any_text_in_the_verdict(void **state)
{
	struct tu_seg *s = *state;
	static struct jdoc j;
	shmstat_health_t hs;

	assert_int_equal(shmstat_health(s->h, 0, &hs), 0);
	snprintf(hs.reason, sizeof(hs.reason), "bridge: \"x\"\\\n\t\xff end");
	snprintf(hs.bridge, sizeof(hs.bridge), "größe 😀");
	memset(hs.cache, 'c', sizeof(hs.cache)); /* no NUL at all */
	char *doc = capture_health(s->h, &hs);
	json_parse(doc, &j);
	assert_non_null(strstr(doc, "\"reason\": \"bridge: \\\"x\\\"\\\\\\u000a"
				    "\\u0009\\ufffd end\""));
	int found = 0;
	for (int i = 0; i < j.nkeys; i++)
		found += strcmp(j.keys[i], "bridge") == 0;
	assert_int_equal(found, 1);
	assert_non_null(strstr(doc, "\"bridge\": \"größe 😀\""));
	free(doc);
	doc = capture_health(NULL, &hs);
	json_parse(doc, &j);
	assert_non_null(strstr(doc, "\"segment\": null"));
	free(doc);
}

/* --------------------------------------------------------- buffer forms */

/* A document with its "timestamp" line taken out (it moves between two
 * calls); everything else must be byte for byte the same. */
static void drop_timestamp(char *doc)
{
	char *t = strstr(doc, "\"timestamp\": ");
	if (!t)
		return;
	char *nl = strchr(t, '\n');
	assert_non_null(nl);
	memmove(t, nl + 1, strlen(nl + 1) + 1);
}

typedef int (*buf_fn)(shmstat_t *, const void *, char *, size_t, size_t *);

static int json_buf(shmstat_t *h, const void *arg, char *b, size_t l, size_t *n)
{
	(void)arg;
	return shmstat_export_json_buf(h, NULL, b, l, n);
}

static int prom_buf(shmstat_t *h, const void *arg, char *b, size_t l, size_t *n)
{
	(void)arg;
	return shmstat_export_prometheus_buf(h, NULL, b, l, n);
}

static int health_buf(shmstat_t *h, const void *arg, char *b, size_t l, size_t *n)
{
	return shmstat_export_health_json_buf(h, arg, b, l, n);
}

/* Size with a NULL buffer, fail one byte short, succeed at the size; the
 * bytes equal the stream form's. */
static void check_buffer_form(shmstat_t *h, buf_fn fn, const void *arg,
			      const char *stream_doc)
{
	size_t need = 0, again = 0;

	assert_int_equal(fn(h, arg, NULL, 0, &need), SHMSTAT_ERANGE);
	assert_true(need > 1);
	char *buf = malloc(need);
	assert_non_null(buf);
	memset(buf, 'x', need);
	assert_int_equal(fn(h, arg, buf, need - 1, &again), SHMSTAT_ERANGE);
	assert_true(again == need);
	assert_int_equal(buf[need - 2], '\0'); /* a NUL-ended prefix */
	if (h)
		assert_non_null(strstr(shmstat_errstr(h), "needs"));
	assert_int_equal(fn(h, arg, buf, need, &again), 0);
	assert_true(again == need);
	assert_int_equal(strlen(buf), need - 1);
	char *a = strdup(buf), *b = strdup(stream_doc);
	drop_timestamp(a);
	drop_timestamp(b);
	assert_string_equal(a, b);
	/* needed may be NULL. */
	assert_int_equal(fn(h, arg, buf, need, NULL), 0);
	free(a);
	free(b);
	free(buf);
}

static void buffer_forms_write_the_stream_bytes_and_say_the_size(void **state)
{
	struct tu_seg *s = *state;
	shmstat_health_t hs;

	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++)
		shmstat_counter_add_by_name(s->h, nasty[i], 1);
	shmstat_counter_add_by_name(s->h, "cache:hits", 2);
	char *doc = capture(s->h, shmstat_export_json);
	check_buffer_form(s->h, json_buf, NULL, doc);
	free(doc);
	doc = capture(s->h, shmstat_export_prometheus);
	check_buffer_form(s->h, prom_buf, NULL, doc);
	free(doc);
	assert_int_equal(shmstat_health(s->h, 0, &hs), 0);
	doc = capture_health(s->h, &hs);
	check_buffer_form(s->h, health_buf, &hs, doc);
	free(doc);
	doc = capture_health(NULL, &hs);
	check_buffer_form(NULL, health_buf, &hs, doc);
	free(doc);
	/* A buffer with room to spare. */
	char big[1 << 16];
	size_t need;
	assert_int_equal(shmstat_export_prometheus_buf(s->h, "cache*", big,
						       sizeof(big), &need), 0);
	assert_int_equal(strlen(big) + 1, need);
	assert_non_null(strstr(big, "name=\"cache:hits\""));
	assert_null(strstr(big, "name=\"9lives\""));
	/* Bad arguments. */
	assert_int_equal(shmstat_export_json_buf(NULL, NULL, big, 1, &need), SHMSTAT_EINVAL);
	assert_int_equal(shmstat_export_json_buf(s->h, NULL, NULL, 5, &need), SHMSTAT_EINVAL);
	assert_int_equal(shmstat_export_health_json_buf(s->h, NULL, big, 1, &need),
			 SHMSTAT_EINVAL);
}

/* A stream that cannot be written gives ESYS with a reason. */
static void a_stream_that_fails_gives_an_error(void **state)
{
	struct tu_seg *s = *state;
	shmstat_health_t hs;

	FILE *f = fopen("/dev/full", "w");
	assert_non_null(f);
	setvbuf(f, NULL, _IONBF, 0);
	assert_int_equal(shmstat_export_prometheus(s->h, NULL, f), SHMSTAT_ESYS);
	assert_non_null(strstr(shmstat_errstr(s->h), "write failed"));
	assert_int_equal(shmstat_export_json(s->h, NULL, f), SHMSTAT_ESYS);
	assert_int_equal(shmstat_health(s->h, 0, &hs), 0);
	assert_int_equal(shmstat_export_health_json(s->h, &hs, f), SHMSTAT_ESYS);
	fclose(f);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tu_seg_setup, tu_seg_teardown)
	const struct CMUnitTest tests[] = {
		T(valid_utf8_names_are_accepted),
		T(names_that_are_not_utf8_are_refused_with_the_offset),
		T(random_names_are_accepted_exactly_when_utf8),
		T(prometheus_output_parses_under_the_exposition_rules),
		T(names_that_sanitize_alike_are_one_family),
		T(total_is_never_doubled_and_kinds_never_share_a_family),
		T(user_names_never_collide_with_shmstat_own_families),
		T(every_family_shmstat_writes_is_listed_as_its_own),
		T(names_the_library_would_refuse_never_break_a_document),
		T(an_empty_segment_exports_valid_documents),
		T(live_stats_json_has_timestamp_source_and_values),
		T(live_stats_json_is_valid_for_every_accepted_name),
		T(health_is_degraded_without_a_bridge_and_names_why),
		cmocka_unit_test(health_is_degraded_when_the_directory_is_nearly_full),
		cmocka_unit_test(
			health_is_degraded_while_rows_run_out_and_ten_minutes_after),
		T(health_json_is_valid_for_any_text_in_the_verdict),
		T(buffer_forms_write_the_stream_bytes_and_say_the_size),
		T(a_stream_that_fails_gives_an_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
