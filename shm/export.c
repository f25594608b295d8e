/*
 * export.c — the segment as documents: the live-stats JSON, the Prometheus
 * text exposition, and the health verdict. One implementation, used by the
 * shmstat tool, the bridge's HTTP endpoints and any program that wants to
 * serve its own /metrics.
 *
 * Prometheus names: a counter or gauge called "filter_stats:ml-confident"
 * becomes the family shmstat_filter_stats_ml_confident_total (counters) or
 * shmstat_<name> (gauges): every byte outside [A-Za-z0-9_] turns into '_'
 * (':' too: it is reserved for recording rules), and a leading digit gets a
 * '_'. Every series also carries name="<the original name>", so two names
 * that sanitize alike ("a-b", "a.b") stay two distinct series of one
 * family, and a comment line says they collided. A gauge whose family name
 * would equal a counter's gets the suffix _gauge (a family has one type).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmstat_i.h"

/* ------------------------------------------------------------ helpers */

void shmstat__json_str(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
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
	FILE *f;
	int kind;
	int n;
	bool global;
};

static int json_member(const shmstat_stat_t *st, void *priv)
{
	struct json_ctx *c = priv;

	if (st->kind != c->kind)
		return 0;
	fputs(c->n++ ? ",\n    " : "\n    ", c->f);
	shmstat__json_str(c->f, st->name, st->name_len);
	if (!c->global)
		fprintf(c->f, ": %" PRId64, st->value);
	else if (st->global_ns)
		fprintf(c->f, ": %" PRId64, st->global);
	else
		fputs(": null", c->f); /* never read back from Redis */
	return 0;
}

/* The live-stats JSON, local values or (global) the cluster-wide ones the
 * bridge wrote back: source "redis" only when those are fresh. */
static int export_json(shmstat_t *h, const char *pattern, bool global,
		       FILE *f)
{
	struct json_ctx c = { .f = f, .kind = SHMSTAT_KIND_COUNTER,
			      .global = global };
	char ts[64];
	int rc;

	if (!h || !f)
		return SHMSTAT_EINVAL;
	shmstat__iso8601(ts, sizeof(ts), shmstat__now_realtime_ns());
	fprintf(f, "{\n  \"timestamp\": \"%s\",\n  \"scope\": \"%s\",\n"
		   "  \"source\": \"%s\",\n  \"segment\": ",
		ts, global ? "global" : "local",
		!global ? "local"
		: shmstat_sync_fresh(h, 0) == 1 ? "redis" : "stale");
	shmstat__json_str(f, h->name, strlen(h->name));
	fputs(",\n  \"counters\": {", f);
	if ((rc = shmstat_iter(h, pattern, json_member, &c)) < 0)
		return rc;
	fputs(c.n ? "\n  },\n  \"gauges\": {" : "},\n  \"gauges\": {", f);
	c.kind = SHMSTAT_KIND_GAUGE;
	c.n = 0;
	if ((rc = shmstat_iter(h, pattern, json_member, &c)) < 0)
		return rc;
	fputs(c.n ? "\n  }\n}\n" : "}\n}\n", f);
	return ferror(f) ? shmstat__err(h, SHMSTAT_ESYS, "write failed") : 0;
}

int shmstat_export_json(shmstat_t *h, const char *pattern, FILE *f)
{
	return export_json(h, pattern, false, f);
}

int shmstat_export_json_global(shmstat_t *h, const char *pattern, FILE *f)
{
	return export_json(h, pattern, true, f);
}

/* ---------------------------------------------------------- Prometheus */

#define PROM_NAME_MAX (8 + 2 * SHMSTAT_NAME_MAX + 16)

struct series {
	char metric[PROM_NAME_MAX];
	shmstat_stat_t st;
};

struct collect {
	struct series *v;
	size_t n, cap;
};

static int collect_one(const shmstat_stat_t *st, void *priv)
{
	struct collect *c = priv;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct series *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return SHMSTAT_ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++].st = *st;
	return 0;
}

static void prom_name(char *out, size_t len, const char *name,
		      size_t name_len, const char *suffix)
{
	size_t o = (size_t)snprintf(out, len, "shmstat_");
	for (size_t i = 0; i < name_len && o + 1 < len; i++) {
		unsigned char c = (unsigned char)name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_';
		out[o++] = ok ? (char)c : '_';
	}
	out[o < len ? o : len - 1] = '\0';
	snprintf(out + strlen(out), len - strlen(out), "%s", suffix);
}

static int by_metric(const void *a, const void *b)
{
	const struct series *x = a, *y = b;
	int c = strcmp(x->metric, y->metric);
	if (c)
		return c;
	return strcmp(x->st.name, y->st.name);
}

/* A label value: backslash, double quote and newline escaped. */
static void prom_label(FILE *f, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' || s[i] == '"')
			fputc('\\', f);
		if (s[i] == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(s[i], f);
	}
}

/* HELP text: only backslash and newline are escaped. */
static void prom_help(FILE *f, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\')
			fputs("\\\\", f);
		else if (s[i] == '\n')
			fputs("\\n", f);
		else
			fputc(s[i], f);
	}
}

static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_segment(shmstat_t *h, FILE *f, const char *seg)
{
	shmstat_info_t in;
	shmstat_info(h, &in);
	family(f, "shmstat_counters_used", "gauge",
	       "Counters and gauges in the directory.");
	fprintf(f, "shmstat_counters_used{segment=\"%s\"} %u\n", seg,
		in.counters_used);
	family(f, "shmstat_counters_max", "gauge",
	       "Counters and gauges the directory can hold.");
	fprintf(f, "shmstat_counters_max{segment=\"%s\"} %u\n", seg,
		in.max_counters);
	family(f, "shmstat_workers", "gauge",
	       "Rows of the worker registry by state.");
	fprintf(f, "shmstat_workers{segment=\"%s\",state=\"live\"} %u\n", seg,
		in.workers_live);
	fprintf(f, "shmstat_workers{segment=\"%s\",state=\"dead\"} %u\n", seg,
		in.workers_dead);
	fprintf(f, "shmstat_workers{segment=\"%s\",state=\"free\"} %u\n", seg,
		in.workers_free);
	family(f, "shmstat_row_overflows_total", "counter",
	       "Processes that found no free row and counted locally.");
	fprintf(f, "shmstat_row_overflows_total{segment=\"%s\"} %" PRIu64 "\n",
		seg, in.row_overflows);
}

static void prom_cache(shmstat_t *h, FILE *f, const char *seg)
{
	shmstat_cache_stats_t cs;
	static const struct {
		const char *name, *help;
		size_t off;
	} ctr[] = {
		{ "hits", "Cache gets that found a live value.",
		  offsetof(shmstat_cache_stats_t, hits) },
		{ "misses", "Cache gets that found nothing live.",
		  offsetof(shmstat_cache_stats_t, misses) },
		{ "sets", "Successful cache sets.",
		  offsetof(shmstat_cache_stats_t, sets) },
		{ "deletes", "Cache entries removed by delete, clear, flush.",
		  offsetof(shmstat_cache_stats_t, deletes) },
		{ "evictions", "Live cache entries evicted to make room.",
		  offsetof(shmstat_cache_stats_t, evictions) },
		{ "expirations", "Expired cache entries removed.",
		  offsetof(shmstat_cache_stats_t, expirations) },
		{ "errors", "Cache calls that failed.",
		  offsetof(shmstat_cache_stats_t, errors) },
	};
	char name[64];

	if (shmstat_cache_stats(h, &cs) < 0)
		return;
	for (size_t i = 0; i < sizeof(ctr) / sizeof(ctr[0]); i++) {
		snprintf(name, sizeof(name), "shmstat_cache_%s_total", ctr[i].name);
		family(f, name, "counter", ctr[i].help);
		fprintf(f, "%s{segment=\"%s\"} %" PRIu64 "\n", name, seg,
			*(const uint64_t *)(const void *)((const char *)&cs + ctr[i].off));
	}
	family(f, "shmstat_cache_entries", "gauge", "Entries in the cache.");
	fprintf(f, "shmstat_cache_entries{segment=\"%s\"} %" PRIu64 "\n", seg,
		cs.entries);
	family(f, "shmstat_cache_bytes", "gauge",
	       "Bytes of the cache's value memory, used and free.");
	fprintf(f, "shmstat_cache_bytes{segment=\"%s\",state=\"used\"} %" PRIu64 "\n",
		seg, cs.bytes_used);
	fprintf(f, "shmstat_cache_bytes{segment=\"%s\",state=\"free\"} %" PRIu64 "\n",
		seg, cs.bytes_free);
	family(f, "shmstat_cache_hit_ratio", "gauge",
	       "Hits over hits plus misses since creation.");
	fprintf(f, "shmstat_cache_hit_ratio{segment=\"%s\"} %.6f\n", seg,
		cs.hit_rate);
}

static void prom_bridge(shmstat_t *h, FILE *f, const char *seg)
{
	shmstat_sync_status_t s;

	if (shmstat_sync_status_read(h, &s) < 0)
		return;
	family(f, "shmstat_bridge_up", "gauge",
	       "1 when a bridge process serves this segment.");
	fprintf(f, "shmstat_bridge_up{segment=\"%s\"} %d\n", seg, s.alive);
	family(f, "shmstat_bridge_redis_connected", "gauge",
	       "1 when the bridge's last Redis command succeeded.");
	fprintf(f, "shmstat_bridge_redis_connected{segment=\"%s\"} %d\n", seg,
		s.alive && s.connected);
	family(f, "shmstat_bridge_pushes_total", "counter",
	       "Pushes to Redis by result.");
	fprintf(f, "shmstat_bridge_pushes_total{segment=\"%s\",result=\"ok\"} %" PRIu64 "\n",
		seg, s.pushes_ok);
	fprintf(f, "shmstat_bridge_pushes_total{segment=\"%s\",result=\"failed\"} %" PRIu64 "\n",
		seg, s.pushes_failed);
	family(f, "shmstat_bridge_last_push_timestamp_seconds", "gauge",
	       "Unix time of the last successful push (0: never).");
	fprintf(f, "shmstat_bridge_last_push_timestamp_seconds{segment=\"%s\"} %.3f\n",
		seg, (double)s.last_push_ns / 1e9);
	family(f, "shmstat_bridge_pending_changes", "gauge",
	       "Counters changed since the last push.");
	fprintf(f, "shmstat_bridge_pending_changes{segment=\"%s\"} %" PRIu64 "\n",
		seg, s.pending);
	family(f, "shmstat_bridge_lag_seconds", "gauge",
	       "Age of the oldest change not yet pushed.");
	fprintf(f, "shmstat_bridge_lag_seconds{segment=\"%s\"} %.3f\n", seg,
		(double)s.lag_ms / 1e3);
}

int shmstat_export_prometheus(shmstat_t *h, const char *pattern, FILE *f)
{
	struct collect c = { 0 };
	char seg[2 * SHMSTAT_SEGNAME_MAX + 1];
	int rc;

	if (!h || !f)
		return SHMSTAT_EINVAL;
	/* Segment names need no escaping ([A-Za-z0-9_.-]). */
	snprintf(seg, sizeof(seg), "%s", h->name);
	rc = shmstat_iter(h, pattern, collect_one, &c);
	if (rc < 0) {
		free(c.v);
		return rc;
	}
	for (size_t i = 0; i < c.n; i++) {
		const shmstat_stat_t *st = &c.v[i].st;
		prom_name(c.v[i].metric, PROM_NAME_MAX, st->name,
				   st->name_len,
				   st->kind == SHMSTAT_KIND_COUNTER ? "_total" : "");
	}
	/* A gauge whose family name equals a counter's: rename the gauge.
	 * (qsort() must not see the NULL of an empty segment.) */
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), by_metric);
	for (size_t i = 0; i + 1 < c.n; i++) {
		size_t j = i + 1;
		while (j < c.n && strcmp(c.v[j].metric, c.v[i].metric) == 0) {
			if (c.v[j].st.kind != c.v[i].st.kind) {
				struct series *g = c.v[j].st.kind == SHMSTAT_KIND_GAUGE
							   ? &c.v[j]
							   : &c.v[i];
				size_t l = strlen(g->metric);
				snprintf(g->metric + l, PROM_NAME_MAX - l, "_gauge");
			}
			j++;
		}
	}
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), by_metric);
	for (size_t i = 0; i < c.n;) {
		const struct series *s = &c.v[i];
		bool counter = s->st.kind == SHMSTAT_KIND_COUNTER;
		size_t j = i;
		while (j < c.n && strcmp(c.v[j].metric, s->metric) == 0)
			j++;
		fprintf(f, "# HELP %s shmstat %s ", s->metric,
			counter ? "counter" : "gauge");
		prom_help(f, s->st.name, s->st.name_len);
		fputc('\n', f);
		if (j - i > 1) {
			fprintf(f, "# shmstat: %zu names sanitize to %s; the name "
				   "label tells them apart\n",
				j - i, s->metric);
		}
		fprintf(f, "# TYPE %s %s\n", s->metric, counter ? "counter" : "gauge");
		for (size_t k = i; k < j; k++) {
			fprintf(f, "%s{segment=\"%s\",name=\"", c.v[k].metric, seg);
			prom_label(f, c.v[k].st.name, c.v[k].st.name_len);
			fprintf(f, "\"} %" PRId64 "\n", c.v[k].st.value);
		}
		i = j;
	}
	free(c.v);
	prom_segment(h, f, seg);
	prom_cache(h, f, seg);
	prom_bridge(h, f, seg);
	return ferror(f) ? shmstat__err(h, SHMSTAT_ESYS, "write failed") : 0;
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
	if (in.row_overflows)
		DEGRADE(workers,
			"%" PRIu64 " processes found no free row (raise --workers)",
			in.row_overflows);
	if (!(flags & SHMSTAT_HEALTH_NO_BRIDGE)) {
		rc = shmstat_sync_status_read(h, &s);
		if (rc < 0)
			DEGRADE(bridge, "status unreadable: %s", shmstat_errstr(h));
		else if (!s.alive)
			DEGRADE(bridge, "no bridge is running");
		else if (!s.connected)
			DEGRADE(bridge, "disconnected from Redis%s%s",
				s.last_error[0] ? ": " : "", s.last_error);
		else if (shmstat_sync_fresh(h, 0) != 1)
			DEGRADE(bridge, "no successful push recently");
		else if (s.refused_keys)
			DEGRADE(bridge,
				"Redis refuses %" PRIu64 " key%s (e.g. '%s'): "
				"their counts stay pending",
				s.refused_keys, s.refused_keys == 1 ? "" : "s",
				s.refused_key);
	} else {
		snprintf(out->bridge, sizeof(out->bridge), "not checked");
	}
	if (shmstat_cache_stats(h, &cs) == 0) {
		uint64_t all = cs.bytes_used + cs.bytes_free;
		out->cache_fill = all ? (double)cs.bytes_used / (double)all : 0;
		if (out->cache_fill >= 0.95)
			DEGRADE(cache, "nearly full: %.0f%% of value memory used",
				out->cache_fill * 100);
	}
#undef DEGRADE
	return 0;
}

int shmstat_export_health_json(shmstat_t *h, const shmstat_health_t *hs,
			       FILE *f)
{
	static const char *const names[] = { "healthy", "degraded", "broken" };
	char ts[64];

	if (!hs || !f || hs->status < 0 || hs->status > 2)
		return SHMSTAT_EINVAL;
	shmstat__iso8601(ts, sizeof(ts), shmstat__now_realtime_ns());
	fprintf(f, "{\n  \"status\": \"%s\",\n  \"timestamp\": \"%s\",\n"
		   "  \"segment\": ",
		names[hs->status], ts);
	if (h)
		shmstat__json_str(f, h->name, strlen(h->name));
	else
		fputs("null", f);
	fputs(",\n  \"reason\": ", f);
	shmstat__json_str(f, hs->reason, strlen(hs->reason));
	const struct {
		const char *k, *v;
	} checks[] = {
		{ "segment", hs->segment }, { "bridge", hs->bridge },
		{ "cache", hs->cache },     { "workers", hs->workers },
		{ "directory", hs->directory },
	};
	fputs(",\n  \"checks\": {", f);
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		fprintf(f, "%s\n    \"%s\": ", i ? "," : "", checks[i].k);
		shmstat__json_str(f, checks[i].v, strlen(checks[i].v));
	}
	fputs("\n  }\n}\n", f);
	return 0;
}
