/*
 * export.c — the segment as documents: the live-stats JSON, the Prometheus
 * text exposition, and the health verdict. One implementation, used by the
 * shmstat tool, the bridge's HTTP endpoints and any program that wants to
 * serve its own /metrics.
 *
 * Every document is written through one sink (struct out): a stdio stream
 * or a caller's buffer. Each format is one function over the sink, so the
 * FILE * and the buffer entry points cannot drift apart.
 *
 * Validity: the library accepts only counter and gauge names that are
 * UTF-8 without control characters (directory.c), and every byte of such
 * a name can be written into JSON, a Prometheus label value and a HELP
 * line by escaping alone. The segment is still untrusted input: a name
 * that breaks the rule (another program wrote it) is never copied raw:
 * JSON gets U+FFFD for each bad byte, and the exposition leaves the name
 * out (two such names could become one series) and says so in a comment.
 *
 * Prometheus families of user names (the rule the manual documents):
 *   1. "shmstat_" + the name with every character outside [A-Za-z0-9_]
 *      (':' too: it is reserved for recording rules; a multibyte UTF-8
 *      character is one character) replaced by '_';
 *   2. counters end in "_total", added only when not already there;
 *      gauges never do (a trailing "_total" is dropped, repeatedly), so a
 *      counter and a gauge never share a family;
 *   3. a family that would be one of shmstat's own metric names (own[]
 *      below, which the bridge's also are) becomes "shmstat_user_" + the
 *      rest: no own name starts with "shmstat_user_";
 *   4. names that end in the same family are one family, one HELP and
 *      TYPE (and a comment saying how many names met), one series per
 *      name, told apart by the name="..." label that every user series
 *      carries; series in byte order of the name.
 * The writer walks families: a HELP, a TYPE, then the family's series,
 * each a label set and a value. Histograms and user labels fit in as more
 * series of a family; HELP text as another source for the HELP line.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmstat_i.h"

/* ---------------------------------------------------------------- sink */

struct out {
	FILE *f;      /* the stream, or NULL: the buffer */
	char *buf;    /* the caller's buffer (may be NULL when cap == 0) */
	size_t cap;
	size_t n;     /* bytes of the document so far, written or not */
	bool failed;  /* a stream write failed */
};

static void out_mem(struct out *o, const char *s, size_t len)
{
	if (o->f) {
		if (len && fwrite(s, 1, len, o->f) != len)
			o->failed = true;
	} else if (o->n < o->cap) {
		size_t room = o->cap - o->n;
		memcpy(o->buf + o->n, s, len < room ? len : room);
	}
	/* The buffer sink counts on past its end: that is the needed size. */
	o->n += len;
}

static void out_str(struct out *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

static void out_chr(struct out *o, char c)
{
	out_mem(o, &c, 1);
}

/* Numbers and fixed words only: names go through put_text(). */
static void out_fmt(struct out *o, const char *fmt, ...) SHMSTAT_PRINTF(2, 3);
static void out_fmt(struct out *o, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;

	va_start(ap, fmt);
	int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	/* Our longest line (a family, a segment name, two labels' text) is
	 * about 300 bytes; a longer one is our bug. Never a cut document. */
	assert(k >= 0 && (size_t)k < sizeof(tmp));
	if (k < 0 || (size_t)k >= sizeof(tmp)) {
		o->failed = true;
		return;
	}
	out_mem(o, tmp, (size_t)k);
}

static struct out out_stream(FILE *f)
{
	return (struct out){ .f = f };
}

static struct out out_buffer(char *buf, size_t len)
{
	return (struct out){ .buf = buf, .cap = buf ? len : 0 };
}

/*
 * End a document. A stream: ESYS if any write failed. A buffer: NUL
 * after the document, *needed = its length + 1, and ERANGE (a NUL-ended
 * prefix in buf) when the buffer is smaller than that.
 */
static int out_end(shmstat_t *h, struct out *o, size_t *needed)
{
	if (o->f) {
		if (o->failed || ferror(o->f))
			return h ? shmstat__err(h, SHMSTAT_ESYS, "write failed")
				 : SHMSTAT_ESYS;
		return 0;
	}
	size_t need = o->n + 1;
	if (needed)
		*needed = need;
	if (o->failed)
		return h ? shmstat__err(h, SHMSTAT_ESYS, "formatting failed")
			 : SHMSTAT_ESYS;
	if (o->cap >= need) {
		o->buf[o->n] = '\0';
		return 0;
	}
	if (o->cap)
		o->buf[o->cap - 1] = '\0';
	return h ? shmstat__err(h, SHMSTAT_ERANGE,
				"the document needs %zu bytes, the buffer has "
				"%zu",
				need, o->cap)
		 : SHMSTAT_ERANGE;
}

/* --------------------------------------------------------------- text */

enum esc {
	ESC_JSON,  /* inside a JSON string: " \ and controls escaped */
	ESC_LABEL, /* a Prometheus label value: \ " and newline escaped */
	ESC_HELP,  /* a Prometheus HELP text: \ and newline escaped */
};

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/*
 * s[0..len) escaped for its place. Well-formed UTF-8 passes through;
 * each byte that starts no valid sequence becomes U+FFFD, and a control
 * character the place cannot carry becomes U+FFFD too, so no input can
 * make the document invalid.
 */
static void put_text(struct out *o, const char *s, size_t len, enum esc e)
{
	for (size_t i = 0; i < len;) {
		/* A run of bytes that pass as they are, in one write. */
		size_t run = i;
		while (run < len && (unsigned char)s[run] >= 0x20 &&
		       (unsigned char)s[run] < 0x7f && s[run] != '\\' &&
		       s[run] != '"' && s[run] != '\n')
			run++;
		if (run > i) {
			out_mem(o, s + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = (unsigned char)s[i];
		size_t n = shmstat__utf8_seq(s + i, len - i);

		if (n == 0) {
			out_str(o, e == ESC_JSON ? "\\ufffd" : replacement);
			i++;
			continue;
		}
		if (n > 1) {
			out_mem(o, s + i, n);
			i += n;
			continue;
		}
		i++;
		if (c == '\\' || (c == '"' && e != ESC_HELP)) {
			out_chr(o, '\\');
			out_chr(o, (char)c);
		} else if (c == '\n' && e != ESC_JSON) {
			out_str(o, "\\n");
		} else if (c < 0x20 || c == 0x7f) {
			if (e == ESC_JSON)
				out_fmt(o, "\\u%04x", c);
			else
				out_str(o, replacement);
		} else {
			out_chr(o, (char)c);
		}
	}
}

static void put_json_str(struct out *o, const char *s, size_t len)
{
	out_chr(o, '"');
	put_text(o, s, len, ESC_JSON);
	out_chr(o, '"');
}

void shmstat__json_str(FILE *f, const char *s, size_t len)
{
	struct out o = out_stream(f);

	put_json_str(&o, s, len);
}

void shmstat__iso8601(char *buf, size_t len, uint64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000u);
	struct tm tm;

	gmtime_r(&sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%06uZ", (unsigned)(ns % 1000000000u / 1000u));
}

const char *shmstat_source(shmstat_t *h)
{
	return shmstat_sync_fresh(h, 0) == 1 ? "redis" : "local";
}

/* ---------------------------------------------------------- live stats */

struct json_ctx {
	shmstat_t *h;
	struct out *o;
	int kind;
	int n;
	bool global;
};

static void put_json_double(struct out *o, double v)
{
	char b[40];
	if (!isfinite(v)) {
		out_str(o, "null");
		return;
	}
	shmstat__fmt_bound(b, sizeof(b), v);
	out_str(o, b);
}

static int json_member(const shmstat_stat_t *st, void *priv)
{
	struct json_ctx *c = priv;
	char d[SHMSTAT_NAME_MAX + 1];

	if (st->kind != c->kind)
		return 0;
	size_t dl = shmstat__key_display(st->name, st->name_len, d);
	out_str(c->o, c->n++ ? ",\n    " : "\n    ");
	put_json_str(c->o, d, dl);
	if (st->kind != SHMSTAT_KIND_HISTOGRAM) {
		if (!c->global)
			out_fmt(c->o, ": %" PRId64, st->value);
		else if (st->global_ns)
			out_fmt(c->o, ": %" PRId64, st->global);
		else
			out_str(c->o, ": null"); /* never read back from Redis */
		return 0;
	}
	shmstat_histogram_stat_t hs;
	if (shmstat__hist_stat(c->h, st->index, &hs) < 0 ||
	    (c->global && !hs.global_ns)) {
		out_str(c->o, ": null");
		return 0;
	}
	/* Cluster-wide: every bucket and the sum as the bridge read them
	 * back, each a counter to it. */
	out_fmt(c->o, ": {\"count\": %" PRIu64 ", \"sum\": ",
		c->global ? hs.global_count : hs.count);
	put_json_double(c->o, c->global ? hs.global_sum : hs.sum);
	out_str(c->o, ", \"buckets\": [");
	uint64_t cum = 0;
	for (uint32_t k = 0; k < hs.nbuckets; k++) {
		cum += c->global ? hs.global_buckets[k] : hs.buckets[k];
		out_str(c->o, k ? ", [" : "[");
		if (isinf(hs.le[k]))
			out_str(c->o, "\"+Inf\"");
		else
			put_json_double(c->o, hs.le[k]);
		out_fmt(c->o, ", %" PRIu64 "]", cum);
	}
	out_str(c->o, "]}");
	return 0;
}

/* Which names a document holds: a glob (NULL = all) and, for programs
 * with filters a glob cannot say (the tool's repeated -f and -X), a
 * predicate on top of it. */
struct xfilter {
	const char *pattern;
	shmstat__export_match_fn match;
	void *priv;
};

struct xiter_ctx {
	const struct xfilter *f;
	shmstat_stat_fn fn;
	void *priv;
};

static int xiter_one(const shmstat_stat_t *st, void *priv)
{
	struct xiter_ctx *x = priv;
	return x->f->match(st, x->f->priv) ? x->fn(st, x->priv) : 0;
}

static int xiter(shmstat_t *h, const struct xfilter *f, shmstat_stat_fn fn,
		 void *priv)
{
	if (!f->match)
		return shmstat_iter(h, f->pattern, fn, priv);
	struct xiter_ctx x = { f, fn, priv };
	return shmstat_iter(h, f->pattern, xiter_one, &x);
}

/* The live-stats JSON, local values or (global) the cluster-wide ones the
 * bridge wrote back: source "redis" only when those are fresh. */
static int json_doc(shmstat_t *h, const struct xfilter *f, bool global,
		    struct out *o)
{
	struct json_ctx c = { .h = h, .o = o, .kind = SHMSTAT_KIND_COUNTER,
			      .global = global };
	char ts[64];
	int rc;

	shmstat__iso8601(ts, sizeof(ts), shmstat__now_realtime_ns());
	out_fmt(o, "{\n  \"timestamp\": \"%s\",\n  \"scope\": \"%s\",\n"
		   "  \"source\": \"%s\",\n  \"segment\": ",
		ts, global ? "global" : "local",
		!global ? "local"
		: shmstat_sync_fresh(h, 0) == 1 ? "redis" : "stale");
	put_json_str(o, h->name, strlen(h->name));
	out_str(o, ",\n  \"counters\": {");
	if ((rc = xiter(h, f, json_member, &c)) < 0)
		return rc;
	out_str(o, c.n ? "\n  },\n  \"gauges\": {" : "},\n  \"gauges\": {");
	c.kind = SHMSTAT_KIND_GAUGE;
	c.n = 0;
	if ((rc = xiter(h, f, json_member, &c)) < 0)
		return rc;
	out_str(o, c.n ? "\n  },\n  \"histograms\": {"
		       : "},\n  \"histograms\": {");
	c.kind = SHMSTAT_KIND_HISTOGRAM;
	c.n = 0;
	if ((rc = xiter(h, f, json_member, &c)) < 0)
		return rc;
	out_str(o, c.n ? "\n  }\n}\n" : "}\n}\n");
	return 0;
}

static int json_stream(shmstat_t *h, const struct xfilter *x, bool global,
		       FILE *f)
{
	if (!h || !f)
		return SHMSTAT_EINVAL;
	struct out o = out_stream(f);
	int rc = json_doc(h, x, global, &o);
	return rc < 0 ? rc : out_end(h, &o, NULL);
}

static int json_buf(shmstat_t *h, const char *pattern, bool global, char *buf,
		    size_t len, size_t *needed)
{
	if (needed)
		*needed = 0;
	if (!h || (!buf && len))
		return SHMSTAT_EINVAL;
	struct out o = out_buffer(buf, len);
	struct xfilter x = { .pattern = pattern };
	int rc = json_doc(h, &x, global, &o);
	return rc < 0 ? rc : out_end(h, &o, needed);
}

int shmstat_export_json(shmstat_t *h, const char *pattern, FILE *f)
{
	struct xfilter x = { .pattern = pattern };
	return json_stream(h, &x, false, f);
}

int shmstat_export_json_buf(shmstat_t *h, const char *pattern, char *buf,
			    size_t len, size_t *needed)
{
	return json_buf(h, pattern, false, buf, len, needed);
}

int shmstat_export_json_global(shmstat_t *h, const char *pattern, FILE *f)
{
	struct xfilter x = { .pattern = pattern };
	return json_stream(h, &x, true, f);
}

int shmstat__export_json_match(shmstat_t *h, bool global,
			       shmstat__export_match_fn match, void *priv,
			       FILE *f)
{
	struct xfilter x = { .match = match, .priv = priv };
	return json_stream(h, &x, global, f);
}

int shmstat_export_json_global_buf(shmstat_t *h, const char *pattern,
				   char *buf, size_t len, size_t *needed)
{
	return json_buf(h, pattern, true, buf, len, needed);
}

/* ---------------------------------------------------------- Prometheus */

#define PROM_OWN_PREFIX "shmstat_"
#define PROM_USER_PREFIX "shmstat_user_"
#define PROM_FAMILY_MAX                                                        \
	(sizeof(PROM_USER_PREFIX) - 1 + SHMSTAT_NAME_MAX + sizeof("_total"))

/*
 * Every metric name shmstat writes itself: the families below and the
 * bridge's (bridge/http.c appends them to this exposition on /metrics),
 * with a histogram's _bucket, _sum and _count. A user family that would
 * be one of them moves under shmstat_user_. Add an own metric here
 * first: test_export checks that every family written is listed.
 */
static const struct {
	const char *name;
	const char *type;
} own[] = {
	{ "shmstat_counters_used", "gauge" },
	{ "shmstat_counters_max", "gauge" },
	{ "shmstat_workers", "gauge" },
	{ "shmstat_row_overflows_total", "counter" },
	{ "shmstat_cache_hits_total", "counter" },
	{ "shmstat_cache_misses_total", "counter" },
	{ "shmstat_cache_sets_total", "counter" },
	{ "shmstat_cache_deletes_total", "counter" },
	{ "shmstat_cache_evictions_total", "counter" },
	{ "shmstat_cache_expirations_total", "counter" },
	{ "shmstat_cache_errors_total", "counter" },
	{ "shmstat_cache_entries", "gauge" },
	{ "shmstat_cache_bytes", "gauge" },
	{ "shmstat_cache_hit_ratio", "gauge" },
	{ "shmstat_bridge_up", "gauge" },
	{ "shmstat_bridge_redis_connected", "gauge" },
	{ "shmstat_bridge_pushes_total", "counter" },
	{ "shmstat_bridge_last_push_timestamp_seconds", "gauge" },
	{ "shmstat_bridge_pending_changes", "gauge" },
	{ "shmstat_bridge_lag_seconds", "gauge" },
	/* the bridge's own, written by bridge/http.c */
	{ "shmstat_bridge_push_duration_seconds", "histogram" },
	{ "shmstat_bridge_process_pushes_total", "counter" },
};

bool shmstat__prom_own(const char *metric)
{
	static const char *const hist_suffix[] = { "_bucket", "_sum", "_count" };
	size_t ml = strlen(metric);

	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		size_t l = strlen(own[i].name);
		if (strncmp(metric, own[i].name, l) != 0)
			continue;
		if (ml == l)
			return true;
		if (strcmp(own[i].type, "histogram") != 0)
			continue;
		for (size_t k = 0; k < 3; k++)
			if (strcmp(metric + l, hist_suffix[k]) == 0)
				return true;
	}
	return false;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t l = strlen(suffix);
	return len >= l && memcmp(s + len - l, suffix, l) == 0;
}

/*
 * The family of a user name part (rules 1-3 at the top). out holds
 * PROM_FAMILY_MAX bytes; *moved tells whether rule 3 applied, *changed
 * whether a character was replaced.
 */
static void prom_family(char *out, const char *name, size_t name_len,
			int kind, bool *moved, bool *changed)
{
	size_t o = sizeof(PROM_OWN_PREFIX) - 1;

	*changed = false;
	memcpy(out, PROM_OWN_PREFIX, o);
	for (size_t i = 0; i < name_len;) {
		unsigned char c = (unsigned char)name[i];
		size_t n = shmstat__utf8_seq(name + i, name_len - i);
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_';
		out[o++] = ok ? (char)c : '_';
		*changed |= !ok;
		i += n ? n : 1; /* one '_' per character, or per bad byte */
	}
	if (kind == SHMSTAT_KIND_COUNTER) {
		if (!ends_with(out, o, "_total")) {
			memcpy(out + o, "_total", 6);
			o += 6;
		}
	} else if (kind == SHMSTAT_KIND_GAUGE) {
		while (ends_with(out, o, "_total")) {
			o -= 6;
			*changed = true; /* the name label says what it was */
		}
	}
	out[o] = '\0';
	*moved = shmstat__prom_own(out);
	if (*moved) {
		size_t own_len = sizeof(PROM_OWN_PREFIX) - 1;
		size_t user_len = sizeof(PROM_USER_PREFIX) - 1;
		memmove(out + user_len, out + own_len, o - own_len + 1);
		memcpy(out, PROM_USER_PREFIX, user_len);
		assert(!shmstat__prom_own(out)); /* own[] has no shmstat_user_ */
	}
}

struct series {
	char family[PROM_FAMILY_MAX];
	bool moved, changed;
	size_t blen;      /* the name part of st.name */
	size_t lab;       /* user labels in exposition form: st.name + lab */
	size_t llen;
	bool has_name;    /* the user labels have a key "name" */
	bool has_segment; /* ... or "segment" */
	shmstat_stat_t st;
	shmstat_histogram_stat_t *hs; /* histograms */
};

struct collect {
	shmstat_t *h;
	struct series *v;
	size_t n, cap;
	size_t skipped; /* names the library would not accept */
	int rc;
};

static int collect_one(const shmstat_stat_t *st, void *priv)
{
	struct collect *c = priv;
	char key[SHMSTAT_NAME_MAX + 1];
	size_t klen, blen;

	if (st->kind == SHMSTAT_KIND_HBUCKET)
		return 0; /* written with their histogram */
	if (shmstat__name_key(NULL, st->name, st->name_len, true, key, &klen,
			      &blen) < 0 ||
	    klen != st->name_len || memcmp(key, st->name, klen) != 0) {
		c->skipped++;
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct series *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return SHMSTAT_ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	struct series *s = &c->v[c->n];
	s->st = *st;
	s->hs = NULL;
	if (st->kind == SHMSTAT_KIND_HISTOGRAM) {
		if (!(s->hs = malloc(sizeof(*s->hs))))
			return SHMSTAT_ENOMEM;
		if (shmstat__hist_stat(c->h, st->index, s->hs) < 0) {
			free(s->hs);
			return 0; /* gone meanwhile: cannot happen */
		}
	}
	c->n++;
	s->blen = blen;
	/* Stored form: name{}{labels}: the labels are s->st.name[blen+3..len-1). */
	s->lab = klen > blen ? blen + 3 : klen;
	s->llen = klen > blen ? klen - blen - 4 : 0;
	s->has_name = s->has_segment = false;
	/* Keys sit at the start or after a ',' outside a value; a value's
	 * bytes cannot fake one: quotes in it are escaped. */
	bool in_value = false;
	for (size_t k = 0; k < s->llen; k++) {
		const char *p = s->st.name + s->lab + k;
		if (in_value) {
			if (*p == '\\')
				k++; /* an escape: skip what it escapes */
			else if (*p == '"')
				in_value = false;
			continue;
		}
		if (*p == '"') {
			in_value = true;
			continue;
		}
		if (k && p[-1] != ',')
			continue;
		if (s->llen - k >= 6 && memcmp(p, "name=\"", 6) == 0)
			s->has_name = true;
		if (s->llen - k >= 9 && memcmp(p, "segment=\"", 9) == 0)
			s->has_segment = true;
	}
	prom_family(s->family, st->name, blen, st->kind, &s->moved,
		    &s->changed);
	return 0;
}

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	size_t l = al < bl ? al : bl;
	int c = memcmp(a, b, l);
	return c ? c : (al > bl) - (al < bl);
}

static int by_family(const void *a, const void *b)
{
	const struct series *x = a, *y = b;
	int c = strcmp(x->family, y->family);
	if (c == 0)
		c = (x->st.kind > y->st.kind) - (x->st.kind < y->st.kind);
	if (c == 0)
		c = bytes_cmp(x->st.name, x->blen, y->st.name, y->blen);
	if (c == 0)
		c = bytes_cmp(x->st.name + x->lab, x->llen, y->st.name + y->lab,
			      y->llen);
	/* A name twice (another program's bytes): the first entry first. */
	return c ? c : (x->st.index > y->st.index) - (x->st.index < y->st.index);
}

static void prom_head(struct out *o, const char *family, const char *type)
{
	out_fmt(o, "# TYPE %s %s\n", family, type);
}

/* An own family's HELP and TYPE (its name must be in own[]). */
static void own_family(struct out *o, const char *family, const char *type,
		       const char *help)
{
	assert(shmstat__prom_own(family));
	out_fmt(o, "# HELP %s ", family);
	out_str(o, help);
	out_chr(o, '\n');
	prom_head(o, family, type);
}

/* The start of a series of an own family: name{segment="..."[,extra]}
 * and the space before the value. Segment names need no escaping
 * ([A-Za-z0-9_.-]). */
static void own_series(struct out *o, const char *family, const char *seg,
		       const char *extra)
{
	out_fmt(o, "%s{segment=\"%s\"%s%s} ", family, seg, extra ? "," : "",
		extra ? extra : "");
}

static const char *type_word(int kind)
{
	return kind == SHMSTAT_KIND_COUNTER ? "counter"
	       : kind == SHMSTAT_KIND_GAUGE ? "gauge"
					    : "histogram";
}

/* A user family's HELP and TYPE lines; v[0..n) are its series. */
static void user_family(shmstat_t *h, struct out *o, const struct series *v,
			size_t n, size_t names)
{
	bool moved = false;
	char help[SHMSTAT_HELP_MAX + 1];
	int hl = SHMSTAT_ENOTFOUND;

	for (size_t k = 0; k < n; k++) {
		moved |= v[k].moved;
		if (hl < 0 && (k == 0 || bytes_cmp(v[k].st.name, v[k].blen,
						   v[k - 1].st.name,
						   v[k - 1].blen) != 0))
			hl = shmstat__help_find(h, v[k].st.name, v[k].blen,
						help, sizeof(help));
	}
	out_fmt(o, "# HELP %s ", v[0].family);
	if (hl >= 0) {
		put_text(o, help, (size_t)hl, ESC_HELP);
		out_chr(o, '\n');
	} else if (names == 1) {
		out_fmt(o, "shmstat %s ", type_word(v[0].st.kind));
		put_text(o, v[0].st.name, v[0].blen, ESC_HELP);
		out_chr(o, '\n');
	} else {
		out_fmt(o, "shmstat %s, %zu names (the name label tells them "
			   "apart)\n",
			type_word(v[0].st.kind), names);
	}
	if (names > 1)
		out_fmt(o, "# shmstat: %zu names sanitize to %s; the name "
			   "label tells them apart\n",
			names, v[0].family);
	if (moved)
		out_fmt(o, "# shmstat: %s%s is shmstat's own; names that map to "
			   "it are exported as %s\n",
			PROM_OWN_PREFIX, v[0].family + sizeof(PROM_USER_PREFIX) - 1,
			v[0].family);
	prom_head(o, v[0].family, type_word(v[0].st.kind));
}

/* The label set of a user series: segment, the name label when needed,
 * the user's labels, and extra (le="..."), in braces. */
static void user_labels(struct out *o, const char *seg, const struct series *s,
			bool name_label, const char *extra)
{
	/* A user's own segment (or name) label keeps its key; ours moves. */
	out_fmt(o, "{%s=\"%s\"", s->has_segment ? "shmstat_segment" : "segment",
		seg);
	if (name_label) {
		out_str(o, s->has_name ? ",shmstat_name=\"" : ",name=\"");
		put_text(o, s->st.name, s->blen, ESC_LABEL);
		out_chr(o, '"');
	}
	if (s->llen) {
		out_chr(o, ',');
		/* exposition form already */
		out_mem(o, s->st.name + s->lab, s->llen);
	}
	if (extra) {
		out_chr(o, ',');
		out_str(o, extra);
	}
	out_chr(o, '}');
}

static void put_double(struct out *o, double v)
{
	char b[40];
	shmstat__fmt_bound(b, sizeof(b), v);
	out_str(o, b);
}

/* One user series (a histogram: its buckets, sum and count). */
static void user_series(struct out *o, const char *seg, const struct series *s,
			bool name_label)
{
	if (!s->hs) {
		out_str(o, s->family);
		user_labels(o, seg, s, name_label, NULL);
		out_fmt(o, " %" PRId64 "\n", s->st.value);
		return;
	}
	const shmstat_histogram_stat_t *hs = s->hs;
	uint64_t cum = 0;
	bool inf = false;
	for (uint32_t k = 0; k < hs->nbuckets; k++) {
		char le[64] = "le=\"";
		cum += hs->buckets[k];
		inf |= isinf(hs->le[k]);
		shmstat__fmt_bound(le + 4, sizeof(le) - 6, hs->le[k]);
		strcat(le, "\"");
		out_fmt(o, "%s_bucket", s->family);
		user_labels(o, seg, s, name_label, le);
		out_fmt(o, " %" PRIu64 "\n", cum);
	}
	if (!inf) { /* its +Inf entry was never made: the count is exact */
		out_fmt(o, "%s_bucket", s->family);
		user_labels(o, seg, s, name_label, "le=\"+Inf\"");
		out_fmt(o, " %" PRIu64 "\n", hs->count);
	}
	out_fmt(o, "%s_sum", s->family);
	user_labels(o, seg, s, name_label, NULL);
	out_chr(o, ' ');
	put_double(o, hs->sum);
	out_chr(o, '\n');
	out_fmt(o, "%s_count", s->family);
	user_labels(o, seg, s, name_label, NULL);
	out_fmt(o, " %" PRIu64 "\n", hs->count);
}

/* Is family f (a gauge's) one of the series names of a histogram family? */
static bool hist_series_name(const struct collect *c, const char *f)
{
	static const char *const suf[] = { "_bucket", "_sum", "_count" };
	size_t fl = strlen(f);

	for (size_t k = 0; k < 3; k++) {
		size_t sl = strlen(suf[k]);
		if (fl <= sl || strcmp(f + fl - sl, suf[k]) != 0)
			continue;
		for (size_t i = 0; i < c->n; i++)
			if (c->v[i].st.kind == SHMSTAT_KIND_HISTOGRAM &&
			    strlen(c->v[i].family) == fl - sl &&
			    memcmp(c->v[i].family, f, fl - sl) == 0)
				return true;
	}
	return false;
}

static void prom_user(shmstat_t *h, struct out *o, const char *seg,
		      struct collect *c)
{
	if (c->skipped)
		out_fmt(o, "# shmstat: %zu names left out: not valid UTF-8 or "
			   "holding control characters (the segment was "
			   "written by another program)\n",
			c->skipped);
	/* qsort() must not see the NULL of an empty segment. */
	if (c->n > 1)
		qsort(c->v, c->n, sizeof(*c->v), by_family);
	for (size_t i = 0; i < c->n;) {
		size_t j = i + 1, k2;
		while (j < c->n && strcmp(c->v[j].family, c->v[i].family) == 0)
			j++;
		/* One kind per family: a histogram and a gauge "x" both give
		 * shmstat_x; the first kind (counter, gauge, histogram) is
		 * written, the others are left out and said so. */
		for (k2 = i + 1; k2 < j && c->v[k2].st.kind == c->v[i].st.kind;
		     k2++)
			;
		if (k2 < j)
			out_fmt(o, "# shmstat: %zu series of family %s left "
				   "out: they are not a %s\n",
				j - k2, c->v[i].family,
				type_word(c->v[i].st.kind));
		if (c->v[i].st.kind == SHMSTAT_KIND_GAUGE &&
		    hist_series_name(c, c->v[i].family)) {
			out_fmt(o, "# shmstat: gauge family %s left out: a "
				   "histogram's series have that name\n",
				c->v[i].family);
			i = j;
			continue;
		}
		size_t names = 1;
		bool changed = c->v[i].changed;
		for (size_t k = i + 1; k < k2; k++) {
			if (bytes_cmp(c->v[k].st.name, c->v[k].blen,
				      c->v[k - 1].st.name,
				      c->v[k - 1].blen) != 0)
				names++;
			changed |= c->v[k].changed;
		}
		/* The name label only when it tells something: the family
		 * holds several names, or the name had to be changed. */
		bool name_label = names > 1 || changed;
		user_family(h, o, c->v + i, k2 - i, names);
		for (size_t k = i; k < k2; k++) {
			/* A segment that lists a name twice (another
			 * program's bytes): one series, the first entry's. */
			if (k > i && strcmp(c->v[k].st.name,
					    c->v[k - 1].st.name) == 0)
				continue;
			user_series(o, seg, &c->v[k], name_label);
		}
		i = j;
	}
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].hs);
	free(c->v);
}

static void prom_segment(shmstat_t *h, struct out *o, const char *seg)
{
	shmstat_info_t in;

	if (shmstat_info(h, &in) < 0)
		return;
	own_family(o, "shmstat_counters_used", "gauge",
		   "Counters and gauges in the directory.");
	own_series(o, "shmstat_counters_used", seg, NULL);
	out_fmt(o, "%u\n", in.counters_used);
	own_family(o, "shmstat_counters_max", "gauge",
		   "Counters and gauges the directory can hold.");
	own_series(o, "shmstat_counters_max", seg, NULL);
	out_fmt(o, "%u\n", in.max_counters);
	own_family(o, "shmstat_workers", "gauge",
		   "Rows of the worker registry by state.");
	own_series(o, "shmstat_workers", seg, "state=\"live\"");
	out_fmt(o, "%u\n", in.workers_live);
	own_series(o, "shmstat_workers", seg, "state=\"dead\"");
	out_fmt(o, "%u\n", in.workers_dead);
	own_series(o, "shmstat_workers", seg, "state=\"free\"");
	out_fmt(o, "%u\n", in.workers_free);
	own_family(o, "shmstat_row_overflows_total", "counter",
		   "Processes that found no free row and counted locally.");
	own_series(o, "shmstat_row_overflows_total", seg, NULL);
	out_fmt(o, "%" PRIu64 "\n", in.row_overflows);
}

static void prom_cache(shmstat_t *h, struct out *o, const char *seg)
{
	shmstat_cache_stats_t cs;
	static const struct {
		const char *name, *help;
		size_t off;
	} ctr[] = {
		{ "shmstat_cache_hits_total", "Cache gets that found a live value.",
		  offsetof(shmstat_cache_stats_t, hits) },
		{ "shmstat_cache_misses_total", "Cache gets that found nothing live.",
		  offsetof(shmstat_cache_stats_t, misses) },
		{ "shmstat_cache_sets_total", "Successful cache sets.",
		  offsetof(shmstat_cache_stats_t, sets) },
		{ "shmstat_cache_deletes_total",
		  "Cache entries removed by delete, clear, flush.",
		  offsetof(shmstat_cache_stats_t, deletes) },
		{ "shmstat_cache_evictions_total",
		  "Live cache entries evicted to make room.",
		  offsetof(shmstat_cache_stats_t, evictions) },
		{ "shmstat_cache_expirations_total", "Expired cache entries removed.",
		  offsetof(shmstat_cache_stats_t, expirations) },
		{ "shmstat_cache_errors_total", "Cache calls that failed.",
		  offsetof(shmstat_cache_stats_t, errors) },
	};

	if (shmstat_cache_stats(h, &cs) < 0)
		return;
	for (size_t i = 0; i < sizeof(ctr) / sizeof(ctr[0]); i++) {
		own_family(o, ctr[i].name, "counter", ctr[i].help);
		own_series(o, ctr[i].name, seg, NULL);
		out_fmt(o, "%" PRIu64 "\n",
			*(const uint64_t *)(const void *)((const char *)&cs +
							  ctr[i].off));
	}
	own_family(o, "shmstat_cache_entries", "gauge", "Entries in the cache.");
	own_series(o, "shmstat_cache_entries", seg, NULL);
	out_fmt(o, "%" PRIu64 "\n", cs.entries);
	own_family(o, "shmstat_cache_bytes", "gauge",
		   "Bytes of the cache's value memory, used and free.");
	own_series(o, "shmstat_cache_bytes", seg, "state=\"used\"");
	out_fmt(o, "%" PRIu64 "\n", cs.bytes_used);
	own_series(o, "shmstat_cache_bytes", seg, "state=\"free\"");
	out_fmt(o, "%" PRIu64 "\n", cs.bytes_free);
	own_family(o, "shmstat_cache_hit_ratio", "gauge",
		   "Hits over hits plus misses since creation.");
	own_series(o, "shmstat_cache_hit_ratio", seg, NULL);
	out_fmt(o, "%.6f\n", cs.hit_rate);
}

static void prom_bridge(shmstat_t *h, struct out *o, const char *seg)
{
	shmstat_sync_status_t s;

	if (shmstat_sync_status_read(h, &s) < 0)
		return;
	own_family(o, "shmstat_bridge_up", "gauge",
		   "1 when a bridge process serves this segment.");
	own_series(o, "shmstat_bridge_up", seg, NULL);
	out_fmt(o, "%d\n", s.alive);
	own_family(o, "shmstat_bridge_redis_connected", "gauge",
		   "1 when the bridge's last Redis command succeeded.");
	own_series(o, "shmstat_bridge_redis_connected", seg, NULL);
	out_fmt(o, "%d\n", s.alive && s.connected);
	own_family(o, "shmstat_bridge_pushes_total", "counter",
		   "Pushes to Redis by result.");
	own_series(o, "shmstat_bridge_pushes_total", seg, "result=\"ok\"");
	out_fmt(o, "%" PRIu64 "\n", s.pushes_ok);
	own_series(o, "shmstat_bridge_pushes_total", seg, "result=\"failed\"");
	out_fmt(o, "%" PRIu64 "\n", s.pushes_failed);
	own_family(o, "shmstat_bridge_last_push_timestamp_seconds", "gauge",
		   "Unix time of the last successful push (0: never).");
	own_series(o, "shmstat_bridge_last_push_timestamp_seconds", seg, NULL);
	out_fmt(o, "%.3f\n", (double)s.last_push_ns / 1e9);
	own_family(o, "shmstat_bridge_pending_changes", "gauge",
		   "Counters changed since the last push.");
	own_series(o, "shmstat_bridge_pending_changes", seg, NULL);
	out_fmt(o, "%" PRIu64 "\n", s.pending);
	own_family(o, "shmstat_bridge_lag_seconds", "gauge",
		   "Age of the oldest change not yet pushed.");
	own_series(o, "shmstat_bridge_lag_seconds", seg, NULL);
	out_fmt(o, "%.3f\n", (double)s.lag_ms / 1e3);
}

static int prom_doc(shmstat_t *h, const struct xfilter *x, struct out *o)
{
	struct collect c = { .h = h };
	char seg[SHMSTAT_SEGNAME_MAX + 1];

	snprintf(seg, sizeof(seg), "%s", h->name);
	int rc = xiter(h, x, collect_one, &c);
	if (rc < 0) {
		collect_free(&c);
		return rc;
	}
	prom_user(h, o, seg, &c);
	collect_free(&c);
	prom_segment(h, o, seg);
	prom_cache(h, o, seg);
	prom_bridge(h, o, seg);
	return 0;
}

int shmstat_export_prometheus(shmstat_t *h, const char *pattern, FILE *f)
{
	if (!h || !f)
		return SHMSTAT_EINVAL;
	struct out o = out_stream(f);
	struct xfilter x = { .pattern = pattern };
	int rc = prom_doc(h, &x, &o);
	return rc < 0 ? rc : out_end(h, &o, NULL);
}

int shmstat__export_prometheus_match(shmstat_t *h,
				     shmstat__export_match_fn match,
				     void *priv, FILE *f)
{
	if (!h || !f)
		return SHMSTAT_EINVAL;
	struct out o = out_stream(f);
	struct xfilter x = { .match = match, .priv = priv };
	int rc = prom_doc(h, &x, &o);
	return rc < 0 ? rc : out_end(h, &o, NULL);
}

int shmstat_export_prometheus_buf(shmstat_t *h, const char *pattern,
				  char *buf, size_t len, size_t *needed)
{
	if (needed)
		*needed = 0;
	if (!h || (!buf && len))
		return SHMSTAT_EINVAL;
	struct out o = out_buffer(buf, len);
	struct xfilter x = { .pattern = pattern };
	int rc = prom_doc(h, &x, &o);
	return rc < 0 ? rc : out_end(h, &o, needed);
}

/* -------------------------------------------------------------- health */

int shmstat_health(shmstat_t *h, unsigned flags, shmstat_health_t *out)
{
	shmstat_info_t in;
	shmstat_sync_status_t s;
	shmstat_cache_stats_t cs;
	int rc;

	if (!h || !out)
		return SHMSTAT_EINVAL;
	memset(out, 0, sizeof(*out));
	out->status = SHMSTAT_HEALTHY;
	snprintf(out->segment, sizeof(out->segment), "ok");
	snprintf(out->bridge, sizeof(out->bridge), "ok");
	snprintf(out->cache, sizeof(out->cache), "ok");
	snprintf(out->workers, sizeof(out->workers), "ok");
	snprintf(out->directory, sizeof(out->directory), "ok");

#define DEGRADE(field, ...)                                                    \
	do {                                                                   \
		snprintf(out->field, sizeof(out->field), __VA_ARGS__);         \
		if (out->status == SHMSTAT_HEALTHY) {                          \
			out->status = SHMSTAT_DEGRADED;                        \
			snprintf(out->reason, sizeof(out->reason), "%s: %s",   \
				 #field, out->field);                          \
		}                                                              \
	} while (0)

	if ((rc = shmstat_info(h, &in)) < 0)
		return rc;
	if (in.max_counters && in.counters_used * 10u >= in.max_counters * 9u)
		DEGRADE(directory, "nearly full: %u of %u names", in.counters_used,
			in.max_counters);
	/* Rows running out: degraded while every row is held by a live
	 * process (the next one counts in the overflow row), and for
	 * SHMSTAT_HEALTH_ROWS_WINDOW_S after a claim found none (as the
	 * alert rule's window), not for ever after one did; a claim of an
	 * older build (its time unknown) counts as recent.
	 * XXX A process that found no row keeps counting in the overflow
	 * row (exactly, slower) until it closes the segment, also after the
	 * window: nothing in the segment says it is still there. A handle
	 * that claims again now and then would close that gap. */
	uint64_t now = shmstat__now_realtime_ns(),
		 since = in.row_overflow_ns && now > in.row_overflow_ns
				 ? (now - in.row_overflow_ns) / 1000000000u
				 : 0;
	if (in.max_workers && in.workers_live >= in.max_workers)
		DEGRADE(workers,
			"all %u rows are held by live processes: the next one "
			"counts in the shared overflow row (raise --workers)",
			in.max_workers);
	else if (in.row_overflows &&
		 (!in.row_overflow_ns || since < SHMSTAT_HEALTH_ROWS_WINDOW_S))
		DEGRADE(workers,
			"%" PRIu64 " process%s found no free row, the last "
			"%" PRIu64 " s ago (raise --workers)",
			in.row_overflows, in.row_overflows == 1 ? "" : "es",
			since);
	/* The bridge's state is said either way; without a bridge
	 * required it does not degrade the verdict. */
	char bt[sizeof(out->bridge)] = "";
	rc = shmstat_sync_status_read(h, &s);
	if (rc < 0)
		snprintf(bt, sizeof(bt), "status unreadable: %s",
			 shmstat_errstr(h));
	else if (!s.alive)
		snprintf(bt, sizeof(bt), "no bridge is running");
	else if (!s.connected)
		snprintf(bt, sizeof(bt), "disconnected from Redis%s%.300s",
			 s.last_error[0] ? ": " : "", s.last_error);
	else if (shmstat_sync_fresh(h, 0) != 1)
		snprintf(bt, sizeof(bt), "no successful push recently");
	else if (s.refused_keys)
		snprintf(bt, sizeof(bt),
			 "Redis refuses %" PRIu64 " key%s (e.g. '%.127s'): "
			 "their counts stay pending",
			 s.refused_keys, s.refused_keys == 1 ? "" : "s",
			 s.refused_key);
	if (bt[0] && !(flags & SHMSTAT_HEALTH_NO_BRIDGE))
		DEGRADE(bridge, "%s", bt);
	else if (bt[0])
		snprintf(out->bridge, sizeof(out->bridge), "not required: %.360s",
			 bt);
	if (shmstat_cache_stats(h, &cs) == 0) {
		uint64_t all = cs.bytes_used + cs.bytes_free;
		out->cache_fill = all ? (double)cs.bytes_used / (double)all : 0;
		/* A full cache that evicts is doing its job: only failed
		 * calls (locks held past the bound, nothing evictable,
		 * corrupt entries) degrade it, from 1% of the calls. */
		uint64_t calls = cs.hits + cs.misses + cs.sets + cs.deletes +
				 cs.errors;
		if (cs.errors >= 10 && cs.errors * 100 >= calls)
			DEGRADE(cache,
				"%" PRIu64 " of %" PRIu64 " cache calls failed",
				cs.errors, calls);
	}
#undef DEGRADE
	return 0;
}

/* Strings of *hs are read up to their field's size: a caller's struct
 * need not be NUL-terminated for the document to stay valid. */
static void put_field(struct out *o, const char *s, size_t size)
{
	put_json_str(o, s, strnlen(s, size));
}

static int health_doc(shmstat_t *h, const shmstat_health_t *hs,
		      struct out *o)
{
	static const char *const names[] = { "healthy", "degraded", "broken" };
	char ts[64];

	shmstat__iso8601(ts, sizeof(ts), shmstat__now_realtime_ns());
	out_fmt(o, "{\n  \"status\": \"%s\",\n  \"timestamp\": \"%s\",\n"
		   "  \"segment\": ",
		names[hs->status], ts);
	if (h)
		put_json_str(o, h->name, strlen(h->name));
	else
		out_str(o, "null");
	out_str(o, ",\n  \"reason\": ");
	put_field(o, hs->reason, sizeof(hs->reason));
	const struct {
		const char *k, *v;
		size_t size;
	} checks[] = {
		{ "segment", hs->segment, sizeof(hs->segment) },
		{ "bridge", hs->bridge, sizeof(hs->bridge) },
		{ "cache", hs->cache, sizeof(hs->cache) },
		{ "workers", hs->workers, sizeof(hs->workers) },
		{ "directory", hs->directory, sizeof(hs->directory) },
	};
	out_str(o, ",\n  \"checks\": {");
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		out_fmt(o, "%s\n    \"%s\": ", i ? "," : "", checks[i].k);
		put_field(o, checks[i].v, checks[i].size);
	}
	out_str(o, "\n  }\n}\n");
	return 0;
}

int shmstat_export_health_json(shmstat_t *h, const shmstat_health_t *hs,
			       FILE *f)
{
	if (!hs || !f || hs->status < 0 || hs->status > 2)
		return SHMSTAT_EINVAL;
	struct out o = out_stream(f);
	health_doc(h, hs, &o);
	return out_end(h, &o, NULL);
}

int shmstat_export_health_json_buf(shmstat_t *h, const shmstat_health_t *hs,
				   char *buf, size_t len, size_t *needed)
{
	if (needed)
		*needed = 0;
	if (!hs || (!buf && len) || hs->status < 0 || hs->status > 2)
		return SHMSTAT_EINVAL;
	struct out o = out_buffer(buf, len);
	health_doc(h, hs, &o);
	return out_end(h, &o, needed);
}
