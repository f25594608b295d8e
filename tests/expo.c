/*
 * expo.c — a test-side parser of the Prometheus text exposition format
 * (0.0.4), written from the format's rules, not from our exporter.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expo.h"
#include "testutil.h"

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

/* Well-formed UTF-8 (RFC 3629), written here from the RFC's table so the
 * test does not trust the library's own check. */
static bool utf8_ok(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 3;
			if (c == 0xe0)
				lo = 0xa0;
			if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 4;
			if (c == 0xf0)
				lo = 0x90;
			if (c == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if (i + n > len || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k < n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += n;
	}
	return true;
}

bool expo_utf8_ok(const char *s, size_t len)
{
	return utf8_ok((const unsigned char *)s, len);
}

int expo_family(struct expo *e, const char *name)
{
	for (int i = 0; i < e->nfam; i++)
		if (strcmp(e->types[i], name) == 0)
			return i;
	return -1;
}

static bool sample_in_family(struct expo *e, const char *name,
			     const char *family)
{
	if (strcmp(name, family) == 0)
		return true;
	int f = expo_family(e, family);
	if (f < 0 || strcmp(e->type_of[f], "histogram") != 0)
		return false;
	size_t fl = strlen(family);
	if (strncmp(name, family, fl) != 0)
		return false;
	const char *suf = name + fl;
	return strcmp(suf, "_bucket") == 0 || strcmp(suf, "_sum") == 0 ||
	       strcmp(suf, "_count") == 0;
}

/*
 * Parse one exposition document. Fails the test on the first line that
 * breaks the rules: UTF-8, metric and label names, quoting and escapes,
 * values, at most one HELP and one TYPE per family, TYPE before its
 * samples, samples of a family together, no series twice.
 */
void expo_parse(const char *doc, struct expo *e)
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
		if (!utf8_ok((const unsigned char *)buf, len))
			fail_msg("line %d: not valid UTF-8", lineno);
		if (len == 0)
			continue;
		if (buf[0] == '#') {
			char kw[8], name[512], rest[2048] = "";
			if (sscanf(buf, "# %7s %511s %2047[^\n]", kw, name, rest) >= 2 &&
			    (strcmp(kw, "HELP") == 0 || strcmp(kw, "TYPE") == 0)) {
				if (!metric_name_ok(name, strlen(name)))
					fail_msg("line %d: bad family name '%s'", lineno, name);
				if (strcmp(kw, "HELP") == 0) {
					for (int k = 0; k < e->nhelp; k++)
						if (strcmp(e->helps[k], name) == 0)
							fail_msg("line %d: second HELP for %s",
								 lineno, name);
					assert_true(e->nhelp < 512);
					snprintf(e->helps[e->nhelp++], 512, "%s", name);
					/* Only \\ and \n are escapes in HELP text. */
					for (const char *p = rest; *p; p++)
						if (*p == '\\') {
							p++;
							if (*p != '\\' && *p != 'n')
								fail_msg("line %d: bad escape in HELP",
									 lineno);
						}
				}
				if (strcmp(kw, "TYPE") == 0) {
					assert_int_equal(expo_family(e, name), -1);
					assert_true(strcmp(rest, "counter") == 0 ||
						    strcmp(rest, "gauge") == 0 ||
						    strcmp(rest, "histogram") == 0);
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
		/* Its family was typed just before: counters and gauges by the
		 * same name, histograms with _bucket, _sum, _count. */
		if (!sample_in_family(e, s->name, current))
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

static bool clean_name(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

const struct sample *expo_find(const struct expo *e, const char *metric,
			       const char *name_label)
{
	for (int i = 0; i < e->n; i++)
		if (strcmp(e->s[i].name, metric) == 0 &&
		    (!name_label || strcmp(e->s[i].label_name, name_label) == 0))
			return &e->s[i];
	/* A name that needs no sanitizing and meets no other name in its
	 * family carries no name label: its metric says it. */
	if (name_label && clean_name(name_label))
		for (int i = 0; i < e->n; i++)
			if (strcmp(e->s[i].name, metric) == 0 &&
			    !e->s[i].label_name[0] &&
			    strncmp(metric, "shmstat_", 8) == 0 &&
			    strstr(metric, name_label))
				return &e->s[i];
	return NULL;
}

const struct sample *expo_user_counter(const struct expo *e, const char *name)
{
	char metric[600];
	size_t l = strlen(name);

	for (int i = 0; i < e->n; i++)
		if (strcmp(e->s[i].label_name, name) == 0)
			return &e->s[i];
	if (!clean_name(name))
		return NULL;
	snprintf(metric, sizeof(metric), "shmstat_%s%s", name,
		 l >= 6 && strcmp(name + l - 6, "_total") == 0 ? "" : "_total");
	return expo_find(e, metric, name);
}

