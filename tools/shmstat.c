/*
 * shmstat — inspect and edit a shmstat segment.
 *
 * A thin CLI: parse arguments, attach, call one do_<command>(). Each output
 * format (table, JSON) is one function. Exit statuses: exitcodes.h.
 * Every command's output is checked before exit (a full disk or a closed
 * pipe is an error), and a segment truncated under the tool ends it with
 * a message naming the segment, not "Bus error".
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmstat.h"
#include "shmstat_i.h"
#include "sync_cmd.h"
#include "tools_i.h"

#ifndef SHMSTAT_VERSION_STRING
#error "SHMSTAT_VERSION_STRING comes from meson.build's project version"
#endif

static const char *prog = "shmstat";

static const char usage_main[] =
	"usage: shmstat [-n NAME] COMMAND [ARGS]\n"
	"\n"
	"Inspect and edit a shmstat shared-memory segment.\n"
	"\n"
	"options:\n"
	"  -n NAME        segment name (default: $SHMSTAT_NAME, else 'default')\n"
	"  -h, --help     this help; 'shmstat COMMAND --help' for a command\n"
	"  -V, --version  print the version\n"
	"\n"
	"commands:\n"
	"  create [--size BYTES] [--counters N] [--workers N]\n"
	"         [--max-value BYTES] [--home PCT] [--mode OCTAL]\n"
	"                     create the segment\n"
	"  destroy            remove the segment's name\n"
	"  ls [-j]            the host's segments: owner, mode, size, workers,\n"
	"                     bridge\n"
	"  list [-f GLOB]... [-X GLOB]... [--sort KEY]\n"
	"       [-j [--global] | -p | -w [TIME]]\n"
	"       [-o FILE]     counters, gauges and histograms: table, JSON,\n"
	"                     Prometheus, live view\n"
	"  get [-j] [--global] NAME\n"
	"                     print one value (--global: the cluster-wide one)\n"
	"  incr NAME [N]      add N (default 1) to a counter, creating it\n"
	"  set NAME VALUE     set a gauge, creating it\n"
	"  observe [--buckets B,...] NAME VALUE\n"
	"                     count VALUE into a histogram (created with the\n"
	"                     buckets, default: request latency in seconds)\n"
	"  help NAME [TEXT]   print or set the help text of a metric family\n"
	"  reset [GLOB]       reset matching counters (default: all)\n"
	"  reset --global GLOB  reset them in Redis, for every host\n"
	"  info [-j]          layout, sizes, region usage, workers\n"
	"  reap               free rows of processes that died\n"
	"  health [-j] [--no-bridge]\n"
	"                     exit 0 healthy, 1 degraded, 2 broken; says why\n"
	"  cache get|set|expire|del|ttl|keys|clear|flush|stats ...\n"
	"                     the TTL cache ('shmstat cache --help')\n"
	"\n"
	"TIME is a number and a unit: 250ms, 1.5s, 2m, 1h (units ns us ms s m\n"
	"h d); a bare number is seconds. Numbers are decimal: 010 is ten.\n"
	"\n" TOOL_EXIT_HELP;

void tool_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Exit status for a library error code (exitcodes.h). */
int tool_status(int rc)
{
	switch (rc) {
	case SHMSTAT_OK:
		return TOOL_OK;
	case SHMSTAT_ENOTFOUND:
		return TOOL_NOTFOUND;
	case SHMSTAT_ENOENT:
	case SHMSTAT_ETRUNC:
	case SHMSTAT_EMAGIC:
	case SHMSTAT_EVERSION:
	case SHMSTAT_ECORRUPT:
	case SHMSTAT_EINIT:
	case SHMSTAT_EPERM:
	case SHMSTAT_EOWNER:
		return TOOL_SEGMENT;
	case SHMSTAT_EINVAL:
	case SHMSTAT_ENAME:
		return TOOL_USAGE;
	default:
		return TOOL_FAILED;
	}
}

/* Commands that only read attach read-only: they work on a segment of
 * another user that lets them read it, and can never write to it. */
static int attach(const char *name, shmstat_t **h)
{
	return tool_attach(name, true, h);
}

static int attach_rw(const char *name, shmstat_t **h)
{
	return tool_attach(name, false, h);
}

/* A segment truncated (or a page of it taken away) under the tool
 * raises SIGBUS on the next read of the lost pages. The handler jumps
 * back to main, which restores the terminal and says which segment. */
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_armed;
void (*tool_on_fault)(void);

static void on_sigbus(int sig)
{
	if (!fault_armed) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	siglongjmp(fault_jmp, 1);
}

/* The library's own formatting, so the tool and the exporters agree. */
void json_str(FILE *f, const char *s, size_t len)
{
	shmstat__json_str(f, s, len);
}

void iso_time(char *buf, size_t len, uint64_t ns)
{
	shmstat__iso8601(buf, len, ns);
}

/* A decimal whole number in [min, max] (shm/parse.c: "010" is ten). */
bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return shmstat__parse_u64(s, min, max, out) == SHMSTAT_PARSE_OK;
}

/* getopt over a command's own arguments; returns false on --help. */
struct cmd {
	const char *name;
	int (*run)(const char *seg, int argc, char **argv);
	const char *usage;
};

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

/*
 * After "no counter, gauge or histogram NAME": a name close to it (a
 * typo), or, for a histogram's family given without its labels, one of
 * its labelled names.
 */
static void name_hint(shmstat_t *h, const char *name)
{
	shmstat_stat_t *v;
	size_t n, best = SIZE_MAX;
	char close[SHMSTAT_NAME_MAX + 1] = "", fam[SHMSTAT_NAME_MAX + 1] = "";
	char want[SHMSTAT_NAME_MAX + 1];
	struct tool_filter all = { 0 };

	/* Compared in canonical form, as the names are (labels sorted). */
	if (shmstat_name_canonical(name, want, sizeof(want)) < 0)
		snprintf(want, sizeof(want), "%s", name);
	name = want;
	size_t nl = strlen(name);
	if (tool_collect(h, &all, &v, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char d[SHMSTAT_NAME_MAX + 1];
		if (v[i].kind == SHMSTAT_KIND_HBUCKET ||
		    shmstat_name_canonical(v[i].name, d, sizeof(d)) < 0)
			continue;
		if (!fam[0] && strncmp(d, name, nl) == 0 && d[nl] == '{')
			snprintf(fam, sizeof(fam), "%s", d);
		size_t k = tool_distance(name, d);
		if (k < best) {
			best = k;
			snprintf(close, sizeof(close), "%s", d);
		}
	}
	free(v);
	/* Close enough to be a typo: a quarter of the name, 1 to 3 edits,
	 * and never a name that shares nothing with it (short names). */
	size_t limit = nl / 4 < 1 ? 1 : nl / 4 > 3 ? 3 : nl / 4;
	if (limit >= nl)
		limit = nl ? nl - 1 : 0;
	if (fam[0])
		fprintf(stderr, "shmstat: '%s' is named with its labels, e.g. "
				"'%s' ('shmstat list -f \"%s{*\"' lists them)\n",
			name, fam, name);
	else if (close[0] && best <= limit)
		fprintf(stderr, "shmstat: did you mean '%s'?\n", close);
}

/* ------------------------------------------------------------------ create */

static const char usage_create[] =
	"usage: shmstat [-n NAME] create [--size BYTES] [--counters N]\n"
	"                               [--workers N] [--max-value BYTES]\n"
	"                               [--home PCT] [--mode OCTAL]\n"
	"\n"
	"Create the segment. Fails (exit 3) if it exists.\n"
	"  --size BYTES       total size (default 32M = 33554432; the cache\n"
	"                     gets what the counters leave)\n"
	"  --counters N       counters + gauges it can hold (default 4096)\n"
	"  --workers N        processes that can count at once (default 128)\n"
	"  --max-value BYTES  largest cache value (default 1M = 1048576)\n"
	"  --home PCT         percent of the cache's value memory, 0 to 90,\n"
	"                     made home blocks: 128-byte blocks at the place\n"
	"                     each key's hash names, where a hit on an entry\n"
	"                     of at most 128 bytes (32 + key + value) costs\n"
	"                     one memory access fewer (default 0: none); an\n"
	"                     entry at home takes all 128 bytes, and no larger\n"
	"                     value can use them. A share too small for one\n"
	"                     block per group of four buckets gives none\n"
	"                     (said on stderr)\n"
	"  --mode OCTAL       permissions (default 0600; 0660 for a group); a\n"
	"                     world-writable mode (o+w, e.g. 0666) is refused:\n"
	"                     any local user could truncate the segment and\n"
	"                     crash every worker\n"
	"Numbers are decimal: --counters 1 to 16777216, --workers 1 to 4096,\n"
	"--size 1 to 1099511627776 (1T), --max-value 1 to 2147483647 (the\n"
	"library then checks that the tables fit). BYTES may end in K, M, G\n"
	"or T (or KiB ... TiB), 1024-based: --size 256M, --max-value 64K.\n"
	"\n" TOOL_EXIT_HELP;

static int do_create(const char *seg, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, 's' },
		{ "counters", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' },
		{ "max-value", required_argument, NULL, 'v' },
		{ "home", required_argument, NULL, 'H' },
		{ "mode", required_argument, NULL, 'm' },
		{ 0, 0, 0, 0 },
	};
	/* The allowed range of each number (the library's limits). */
	static const struct {
		uint64_t min, max;
	} range[] = {
		{ 1, UINT64_C(1) << 40 }, /* --size */
		{ 1, 1u << 24 },	  /* --counters */
		{ 1, 4096 },		  /* --workers */
		{ 1, INT32_MAX },	  /* --max-value: the cache's limit */
		{ 0, 90 },		  /* --home */
	};
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL };
	uint64_t v = 0;
	int c, opt = 0, prc = 0;

	while ((c = getopt_long(argc, argv, "s:c:w:v:H:m:", lo, NULL)) != -1) {
		opt = c == 's'	 ? 0
		      : c == 'c' ? 1
		      : c == 'w' ? 2
		      : c == 'v' ? 3
		      : c == 'H' ? 4
				 : 5;
		/* Sizes in bytes take K, M, G, T; counts are plain numbers. */
		if (c != 'm' && opt < 5 &&
		    (prc = (c == 's' || c == 'v'
				    ? shmstat__parse_size
				    : shmstat__parse_u64)(optarg, range[opt].min,
							  range[opt].max, &v)) != 0)
			goto bad;
		switch (c) {
		case 's':
			o.size = (size_t)v;
			break;
		case 'c':
			o.max_counters = (uint32_t)v;
			break;
		case 'w':
			o.max_workers = (uint32_t)v;
			break;
		case 'v':
			o.cache_max_value = (size_t)v;
			break;
		case 'H':
			o.cache_home_pct = (uint32_t)v;
			break;
		case 'm': {
			/* The one octal number: a mode, as chmod takes it. */
			char *end;
			errno = 0;
			unsigned long m = strtoul(optarg, &end, 8);
			if (errno || *end || !*optarg || *optarg == '-' ||
			    *optarg == '+' || m == 0 || m > 0777) {
				tool_err("create: bad value '%s' for --mode (an "
					 "octal mode, 0001 to 0777, e.g. 0600 "
					 "or 0660)",
					 optarg);
				return TOOL_USAGE;
			}
			o.mode = (unsigned)m;
			break;
		}
		default:
			fputs(usage_create, stderr);
			return TOOL_USAGE;
		}
	}
	if (optind != argc) {
		tool_err("create: unexpected argument '%s'", argv[optind]);
		return TOOL_USAGE;
	}
	shmstat_t *h;
	int rc = shmstat_open(seg, &o, &h);
	if (rc < 0) {
		tool_open_error(seg, rc);
		return rc == SHMSTAT_EEXIST || rc == SHMSTAT_ENOSPC ? TOOL_FAILED
		       : rc == SHMSTAT_EPERM			     ? TOOL_SEGMENT
								     : tool_status(rc);
	}
	shmstat_info_t info;
	shmstat_info(h, &info);
	printf("created segment '%s': %" PRIu64 " bytes, %u counters, %u "
	       "workers",
	       seg, info.size, info.max_counters, info.max_workers);
	if (info.cache_home_blocks)
		printf(", %u cache home blocks", info.cache_home_blocks);
	putchar('\n');
	if (o.cache_home_pct && !info.cache_home_blocks)
		tool_err("create: --home %u gave no home blocks: at this size "
			 "that share is too small for one block per group of "
			 "four buckets (a larger --home or --size gives some)",
			 o.cache_home_pct);
	shmstat_close(&h);
	return tool_stdout_check();
bad:
	if (prc == SHMSTAT_PARSE_RANGE)
		tool_err("create: --%s %s is out of range: %" PRIu64 " to %" PRIu64,
			 lo[opt].name, optarg, range[opt].min, range[opt].max);
	else if (opt == 0 || opt == 3)
		tool_err("create: --%s takes " SHMSTAT_SIZE_SYNTAX ", %" PRIu64
			 " to %" PRIu64 ", not '%s'",
			 lo[opt].name, range[opt].min, range[opt].max, optarg);
	else
		tool_err("create: --%s takes a decimal whole number (%" PRIu64
			 " to %" PRIu64 "), not '%s'",
			 lo[opt].name, range[opt].min, range[opt].max, optarg);
	return TOOL_USAGE;
}

/* ----------------------------------------------------------------- destroy */

static const char usage_destroy[] =
	"usage: shmstat [-n NAME] destroy\n"
	"\n"
	"Remove the segment's name. Processes that have it open keep using it\n"
	"until they close it; new opens no longer find it.\n"
	"\n" TOOL_EXIT_HELP;

static int do_destroy(const char *seg, int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		tool_err("destroy: unexpected argument '%s'", argv[1]);
		return TOOL_USAGE;
	}
	int rc = shmstat_unlink(seg);
	char why[512];
	if (rc == SHMSTAT_EPERM && tool_unlink_perm_text(seg, why, sizeof(why))) {
		tool_err("destroy: %s", why);
		return TOOL_SEGMENT;
	}
	if (rc < 0) {
		tool_open_error(seg, rc);
		return rc == SHMSTAT_ENAME ? TOOL_USAGE : TOOL_SEGMENT;
	}
	return 0;
}

/* -------------------------------------------------------------------- list */

static const char usage_list[] =
	"usage: shmstat [-n NAME] list [-f GLOB]... [-X GLOB]... [--sort KEY]\n"
	"                             [-j [--global] | -p |\n"
	"                              -w [TIME] [-c COUNT] [-H]]\n"
	"                             [-o FILE]\n"
	"\n"
	"Print every counter, gauge and histogram (or those the filters pass)\n"
	"with its value: a table with a header line, sorted by name unless\n"
	"--sort. A histogram's VALUE is its count, followed by its sum and\n"
	"the p50, p90 and p99 estimated from the buckets as Prometheus'\n"
	"histogram_quantile() does: linear interpolation within the bucket\n"
	"the rank falls in (a rank in the +Inf bucket gives the highest\n"
	"finite bound). Labelled names show as name{key=\"value\",...}.\n"
	"  -f GLOB     only names matching GLOB (fnmatch rules, e.g.\n"
	"              'filter_stats:*'); repeat it for more; a GLOB starting\n"
	"              with ^ excludes instead ('^cache:*'). A name is shown when\n"
	"              it matches an -f (or there is none) and no exclusion\n"
	"  -X GLOB     exclude names matching GLOB (the same as -f '^GLOB')\n"
	"  --sort KEY  name (the default, byte order), value (largest first) or\n"
	"              rate (the live view only: fastest first)\n"
	"  -p, --prometheus\n"
	"              the Prometheus text format (counters as shmstat_<name>_total,\n"
	"              gauges as shmstat_<name>, histograms as shmstat_<name>_bucket,\n"
	"              _sum and _count; labels as given; the original name in a\n"
	"              name label when it had to be changed; cache and bridge\n"
	"              metrics too): for node_exporter's textfile collector, with -o\n"
	"  -o FILE     write to FILE atomically: a temporary file in the same\n"
	"              directory, renamed over FILE when complete, so a reader\n"
	"              never sees a partial file (Debian's node_exporter reads\n"
	"              /var/lib/prometheus/node-exporter/*.prom); a FILE that\n"
	"              is a device, FIFO, socket or directory is refused; '-' is\n"
	"              standard output\n"
	"  -j          JSON: {\"timestamp\", \"scope\", \"source\", \"segment\",\n"
	"              \"counters\": {...}, \"gauges\": {...}, \"histograms\":\n"
	"              {name: {\"count\", \"sum\", \"buckets\": [[le, cumulative\n"
	"              count], ...]}}}: this segment's values (scope and source\n"
	"              \"local\")\n"
	"  --global    with -j: each one's cluster-wide value from Redis (scope\n"
	"              \"global\"; source \"redis\" when the bridge reconciled\n"
	"              them recently, else \"stale\"; null when never read); a\n"
	"              histogram's are the sum over hosts, bucket by bucket\n"
	"  -w [TIME]   live view: redraw every TIME (default 1s, 50ms to 1h; a\n"
	"              bare number is seconds) with each counter's rate per\n"
	"              second; keys: q quits, arrows/PgUp/PgDn/Home/End scroll,\n"
	"              n, v, r sort by name, value, rate\n"
	"  -c COUNT    with -w: stop after COUNT refreshes\n"
	"  -H          with -w: humanize large numbers (1.23M)\n"
	"With -f, the table and -j exit 1 when no name matched.\n"
	"\n" TOOL_EXIT_HELP;

/* sum=S p50=A p90=B p99=C (global: the cluster-wide view). */
static void hist_summary(FILE *f, const shmstat_histogram_stat_t *hs,
			 int global)
{
	static const double q[] = { 0.5, 0.9, 0.99 };
	static const char *const qn[] = { "p50", "p90", "p99" };

	fprintf(f, "sum=%.6g", global ? hs->global_sum : hs->sum);
	for (int k = 0; k < 3; k++) {
		double v = shmstat_histogram_quantile(hs, q[k], global);
		if (isnan(v))
			fprintf(f, " %s=-", qn[k]);
		else
			fprintf(f, " %s=%.6g", qn[k], v);
	}
}

static void hist_json(const shmstat_histogram_stat_t *hs, int global,
		      const char *ts, const char *source)
{
	static const double q[] = { 0.5, 0.9, 0.99 };
	static const char *const qn[] = { "p50", "p90", "p99" };
	const uint64_t *b = global ? hs->global_buckets : hs->buckets;
	uint64_t cum = 0;

	fputs("{\"name\": ", stdout);
	json_str(stdout, hs->name, strlen(hs->name));
	char num[40];
	shmstat__fmt_bound(num, sizeof(num), global ? hs->global_sum : hs->sum);
	printf(", \"kind\": \"histogram\", \"count\": %" PRIu64
	       ", \"sum\": %s, \"buckets\": [",
	       global ? hs->global_count : hs->count, num);
	for (uint32_t k = 0; k < hs->nbuckets; k++) {
		cum += b[k];
		if (isinf(hs->le[k])) {
			printf("%s[\"+Inf\", %" PRIu64 "]", k ? ", " : "", cum);
		} else {
			shmstat__fmt_bound(num, sizeof(num), hs->le[k]);
			printf("%s[%s, %" PRIu64 "]", k ? ", " : "", num, cum);
		}
	}
	fputs("]", stdout);
	for (int k = 0; k < 3; k++) {
		double v = shmstat_histogram_quantile(hs, q[k], global);
		shmstat__fmt_bound(num, sizeof(num), v);
		printf(", \"%s\": %s", qn[k], isnan(v) ? "null" : num);
	}
	printf(", \"timestamp\": \"%s\", \"source\": \"%s\"}\n", ts, source);
}

static int by_name(const void *a, const void *b)
{
	const shmstat_stat_t *x = a, *y = b;
	return strcmp(x->name, y->name);
}

static int by_value(const void *a, const void *b)
{
	const shmstat_stat_t *x = a, *y = b;
	if (x->value != y->value)
		return x->value < y->value ? 1 : -1;
	return strcmp(x->name, y->name);
}

static int list_table(shmstat_t *h, const struct tool_filter *flt,
		      enum tool_sort sort, FILE *f, size_t *shown)
{
	shmstat_stat_t *v;
	size_t n;
	int rc = tool_collect(h, flt, &v, &n);

	if (rc < 0)
		return rc;
	if (n > 1)
		qsort(v, n, sizeof(*v), sort == SORT_VALUE ? by_value : by_name);
	fprintf(f, "%-50s %20s  %s\n", "NAME", "VALUE", "KIND");
	for (size_t i = 0; i < n; i++) {
		char nm[SHMSTAT_NAME_MAX + 64];
		tool_pad(nm, sizeof(nm), v[i].name, strlen(v[i].name), 50, false);
		if (v[i].kind != SHMSTAT_KIND_HISTOGRAM) {
			fprintf(f, "%s %20" PRId64 "  %s\n", nm, v[i].value,
				v[i].kind == SHMSTAT_KIND_GAUGE ? "gauge"
								: "counter");
			continue;
		}
		shmstat_histogram_stat_t hs;
		if (shmstat_histogram_read(h, v[i].name, &hs) < 0)
			continue; /* cannot happen: names are never removed */
		fprintf(f, "%s %20" PRIu64 "  histogram  ", nm, hs.count);
		hist_summary(f, &hs, 0);
		fputc('\n', f);
	}
	free(v);
	*shown = n;
	return 0;
}

/* The documents hold what the filters pass, names in their canonical
 * form as the table shows them; a histogram's buckets go with it. */
static bool list_match(const shmstat_stat_t *st, void *priv)
{
	char d[SHMSTAT_NAME_MAX + 1];

	if (st->kind == SHMSTAT_KIND_HBUCKET)
		return true;
	size_t dl = shmstat__key_display(st->name, st->name_len, d);
	return tool_filter_match(priv, d, dl);
}

/* -w's optional operand: -w, -w 0.5, -w 250ms. */
static int watch_operand(int argc, char **argv, uint64_t *interval_ns)
{
	if (optind >= argc || argv[optind][0] == '-')
		return 0;
	const char *s = argv[optind];
	int rc = shmstat__parse_duration(s, 50000000ull, 3600000000000ull,
					 interval_ns);
	if (rc == SHMSTAT_PARSE_SYNTAX && !(s[0] >= '0' && s[0] <= '9') &&
	    s[0] != '.')
		return 0; /* not a number: leave it for the "unexpected" check */
	if (rc != SHMSTAT_PARSE_OK) {
		tool_err("list: -w takes a time from 50ms to 1h (" SHMSTAT_DURATION_SYNTAX
			 "), not '%s'",
			 s);
		return TOOL_USAGE;
	}
	optind++;
	return 0;
}

static int do_list(const char *seg, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "prometheus", no_argument, NULL, 'p' },
		{ "sort", required_argument, NULL, 'S' },
		{ "global", no_argument, NULL, 'g' },
		{ 0, 0, 0, 0 },
	};
	struct tool_filter flt = { 0 };
	enum tool_sort sort = SORT_NAME;
	bool json = false, watch = false, human = false, prom = false;
	bool global = false;
	const char *outpath = NULL;
	uint64_t interval_ns = 1000000000ull;
	long count = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "f:X:jpwc:Ho:", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			prom = true;
			break;
		case 'f':
		case 'X':
			if (!tool_filter_add(&flt, optarg, c == 'X')) {
				tool_err("list: at most %d -f and %d -X",
					 TOOL_FILTERS_MAX, TOOL_FILTERS_MAX);
				return TOOL_USAGE;
			}
			break;
		case 'S':
			if (!tool_sort_parse(optarg, &sort)) {
				tool_err("list: --sort takes name, value or rate, "
					 "not '%s'",
					 optarg);
				return TOOL_USAGE;
			}
			break;
		case 'o':
			outpath = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'g':
			global = true;
			break;
		case 'w':
			watch = true;
			if ((rc = watch_operand(argc, argv, &interval_ns)))
				return rc;
			break;
		case 'c': {
			uint64_t v;
			if (!parse_u64(optarg, 1, 1000000000, &v)) {
				tool_err("list: -c takes a count from 1 to "
					 "1000000000, not '%s'",
					 optarg);
				return TOOL_USAGE;
			}
			count = (long)v;
			break;
		}
		case 'H':
			human = true;
			break;
		default:
			fputs(usage_list, stderr);
			return TOOL_USAGE;
		}
	}
	if (optind != argc) {
		tool_err("list: unexpected argument '%s' (use -f GLOB)",
			 argv[optind]);
		return TOOL_USAGE;
	}
	if (json + watch + prom > 1) {
		tool_err("list: choose one of -j, -p and -w");
		return TOOL_USAGE;
	}
	if (global && !json) {
		tool_err("list: --global goes with -j");
		return TOOL_USAGE;
	}
	if ((count || human) && !watch) {
		tool_err("list: %s goes with -w (the live view)",
			 count ? "-c" : "-H");
		return TOOL_USAGE;
	}
	if ((json || prom) && sort != SORT_NAME) {
		tool_err("list: --sort is for the table and the live view");
		return TOOL_USAGE;
	}
	if (sort == SORT_RATE && !watch) {
		tool_err("list: --sort rate needs the live view (-w): a rate "
			 "takes two readings");
		return TOOL_USAGE;
	}
	if (watch && outpath) {
		tool_err("list: -o is not for the live view");
		return TOOL_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach(seg, &h)))
		return rc;
	if (watch) {
		rc = tool_watch(h, seg, &flt, interval_ns, count, human, sort);
		shmstat_close(&h);
		return rc;
	}
	struct tool_out out;
	if ((rc = tool_out_open(&out, outpath))) {
		shmstat_close(&h);
		return rc;
	}
	size_t shown = 1;
	if (prom || json) {
		rc = prom ? shmstat__export_prometheus_match(h, list_match,
							     &flt, out.f)
			  : shmstat__export_json_match(h, global, list_match,
						       &flt, out.f);
		/* Did the filters pass anything? (The document is written
		 * either way: a textfile keeps shmstat's own metrics.) */
		shmstat_stat_t *v;
		if (rc == 0 && flt.ninc + flt.nexc &&
		    tool_collect(h, &flt, &v, &shown) == 0)
			free(v);
	} else {
		rc = list_table(h, &flt, sort, out.f, &shown);
	}
	if (rc < 0 && rc != SHMSTAT_ESYS)
		tool_err("%s", shmstat_errstr(h));
	shmstat_close(&h);
	/* A library write failure is the output's: tool_out_close says it. */
	int st = tool_out_close(&out, rc == 0 || rc == SHMSTAT_ESYS);
	if (rc < 0 && rc != SHMSTAT_ESYS)
		return tool_status(rc);
	if (st)
		return st;
	if (rc < 0)
		return TOOL_FAILED;
	if (flt.ninc + flt.nexc && shown == 0) {
		tool_err("list: no counter, gauge or histogram matches the "
			 "filters");
		return TOOL_NOTFOUND;
	}
	return TOOL_OK;
}

/* --------------------------------------------------------------------- get */

static const char usage_get[] =
	"usage: shmstat [-n NAME] get [-j] [--global] COUNTER\n"
	"\n"
	"Print the value of one counter or gauge, the number alone.\n"
	"Exit 1 when it does not exist.\n"
	"  -j        JSON: {\"name\", \"kind\", \"value\", \"timestamp\", \"source\"}\n"
	"  --global  the cluster-wide value shmstat-bridge last wrote back (the\n"
	"            sum over all hosts); exit 1 when it never did\n"
	"\n" TOOL_EXIT_HELP;

static int do_get(const char *seg, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "global", no_argument, NULL, 'g' },
		{ 0, 0, 0, 0 },
	};
	bool json = false, global = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "j", lo, NULL)) != -1) {
		if (c == 'g') {
			global = true;
			continue;
		}
		if (c != 'j') {
			fputs(usage_get, stderr);
			return TOOL_USAGE;
		}
		json = true;
	}
	if (argc - optind != 1) {
		tool_err("get: expected one counter name");
		fputs(usage_get, stderr);
		return TOOL_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach(seg, &h)))
		return rc;
	shmstat_histogram_stat_t hs;
	if (shmstat_histogram_read(h, argv[optind], &hs) == 0) {
		char ts[64];
		iso_time(ts, sizeof(ts), shmstat__now_realtime_ns());
		if (global && !hs.global_ns) {
			tool_err("get: '%s' has no cluster-wide value yet (no "
				 "bridge has pushed it)",
				 hs.name);
			shmstat_close(&h);
			return TOOL_NOTFOUND;
		}
		if (json) {
			hist_json(&hs, global, ts,
				  global ? "redis" : tool_source(h));
		} else {
			printf("count=%" PRIu64 " ",
			       global ? hs.global_count : hs.count);
			hist_summary(stdout, &hs, global);
			putchar('\n');
		}
		shmstat_close(&h);
		return 0;
	}
	if (global) {
		rc = sync_get_global(h, argv[optind], json);
		shmstat_close(&h);
		return rc;
	}
	shmstat_stat_t st;
	rc = shmstat_stat_read(h, argv[optind], &st);
	if (rc < 0) {
		tool_err("%s", shmstat_errstr(h));
		if (rc == SHMSTAT_ENOTFOUND)
			name_hint(h, argv[optind]);
	} else if (json) {
		char ts[64];
		iso_time(ts, sizeof(ts), shmstat__now_realtime_ns());
		char d[SHMSTAT_NAME_MAX + 1];
		size_t dl = shmstat__key_display(st.name, st.name_len, d);
		fputs("{\"name\": ", stdout);
		json_str(stdout, d, dl);
		printf(", \"kind\": \"%s\", \"value\": %" PRId64
		       ", \"timestamp\": \"%s\", \"source\": \"%s\"}\n",
		       st.kind == SHMSTAT_KIND_GAUGE ? "gauge" : "counter",
		       st.value, ts, tool_source(h));
	} else {
		printf("%" PRId64 "\n", st.value);
	}
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

/* -------------------------------------------------------------------- incr */

static const char usage_incr[] =
	"usage: shmstat [-n NAME] incr COUNTER [N]\n"
	"\n"
	"Add N (default 1; decimal, 0 to 9223372036854775807) to COUNTER,\n"
	"creating it, and print the new value. A counter stops at its maximum\n"
	"9223372036854775807: an add that would pass it is not (fully)\n"
	"counted, said on stderr, and the exit status is 3.\n"
	"\n" TOOL_EXIT_HELP;

static int do_incr(const char *seg, int argc, char **argv)
{
	uint64_t n = 1;
	int rc;

	if (argc < 2 || argc > 3) {
		tool_err("incr: expected COUNTER [N]");
		fputs(usage_incr, stderr);
		return TOOL_USAGE;
	}
	if (argc == 3 &&
	    (rc = shmstat__parse_u64(argv[2], 0, INT64_MAX, &n)) != 0) {
		tool_err("incr: N %s, not '%s'",
			 rc == SHMSTAT_PARSE_RANGE
				 ? "is out of range: 0 to 9223372036854775807"
				 : "must be a decimal whole number (0 to "
				   "9223372036854775807)",
			 argv[2]);
		return TOOL_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach_rw(seg, &h)))
		return rc;
	shmstat_counter_t c;
	rc = shmstat_counter_open(h, argv[1], &c);
	bool saturated = false;
	if (rc == 0) {
		int64_t before = 0, v;
		rc = shmstat_counter_read(h, c, &before);
		if (rc == 0) {
			shmstat_counter_add(c, n);
			rc = shmstat_counter_read(h, c, &v);
		}
		if (rc == 0) {
			printf("%" PRId64 "\n", v);
			/* Saturated: the total stopped at INT64_MAX. */
			saturated = n && v == INT64_MAX &&
				    before > INT64_MAX - (int64_t)n;
		}
	}
	if (rc < 0)
		tool_err("%s", shmstat_errstr(h));
	else if (saturated)
		tool_err("incr: counter '%s' is at its maximum %" PRId64
			 "; the add of %" PRIu64 " was not (fully) counted",
			 argv[1], INT64_MAX, n);
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : saturated ? TOOL_FAILED : 0;
}

/* --------------------------------------------------------------------- set */

static const char usage_set[] =
	"usage: shmstat [-n NAME] set GAUGE VALUE\n"
	"\n"
	"Set GAUGE to VALUE (decimal, -9223372036854775808 to\n"
	"9223372036854775807), creating it.\n"
	"\n" TOOL_EXIT_HELP;

static int do_set(const char *seg, int argc, char **argv)
{
	int64_t v;
	int rc;

	if (argc != 3) {
		tool_err("set: expected GAUGE VALUE");
		fputs(usage_set, stderr);
		return TOOL_USAGE;
	}
	if ((rc = shmstat__parse_i64(argv[2], INT64_MIN, INT64_MAX, &v)) != 0) {
		tool_err("set: VALUE %s, not '%s'",
			 rc == SHMSTAT_PARSE_RANGE
				 ? "is out of the signed 64-bit range"
				 : "must be a decimal integer",
			 argv[2]);
		return TOOL_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach_rw(seg, &h)))
		return rc;
	shmstat_gauge_t g;
	rc = shmstat_gauge_open(h, argv[1], &g);
	if (rc == 0)
		shmstat_gauge_set(g, v);
	else
		tool_err("%s", shmstat_errstr(h));
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

/* ----------------------------------------------------------------- observe */

static const char usage_observe[] =
	"usage: shmstat [-n NAME] observe [--buckets B,B,...] HISTOGRAM VALUE\n"
	"\n"
	"Count VALUE (a decimal number >= 0, e.g. 0.25) into HISTOGRAM. A\n"
	"missing histogram is created with the bucket upper bounds given\n"
	"(finite, increasing, 1 to 32 of them; +Inf is implied), by default\n"
	"request latency in seconds: 0.005,0.01,0.025,0.05,0.075,0.1,0.25,\n"
	"0.5,0.75,1,2.5,5,7.5,10. An existing one keeps its bounds (other\n"
	"bounds given are refused). Names may carry labels:\n"
	"'http_request_duration_seconds{route=\"/\"}'.\n"
	"\n" TOOL_EXIT_HELP;

static int parse_bounds(const char *s, double *b, size_t *n)
{
	*n = 0;
	while (*s) {
		char *end;
		if (*n == SHMSTAT_HIST_BOUNDS_MAX)
			return -1;
		b[*n] = strtod(s, &end);
		if (end == s || (*end && *end != ','))
			return -1;
		(*n)++;
		s = *end ? end + 1 : end;
	}
	return *n ? 0 : -1;
}

static int do_observe(const char *seg, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "buckets", required_argument, NULL, 'b' },
		{ 0, 0, 0, 0 },
	};
	double bounds[SHMSTAT_HIST_BOUNDS_MAX] = SHMSTAT_LATENCY_BOUNDS;
	size_t nb = SHMSTAT_LATENCY_NBOUNDS;
	bool given = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c != 'b') {
			fputs(usage_observe, stderr);
			return TOOL_USAGE;
		}
		if (parse_bounds(optarg, bounds, &nb) < 0) {
			tool_err("observe: --buckets takes 1 to %d decimal "
				 "numbers separated by commas, not '%s'",
				 SHMSTAT_HIST_BOUNDS_MAX, optarg);
			return TOOL_USAGE;
		}
		given = true;
	}
	if (argc - optind != 2) {
		tool_err("observe: expected HISTOGRAM VALUE");
		fputs(usage_observe, stderr);
		return TOOL_USAGE;
	}
	char *end;
	const char *vs = argv[optind + 1];
	double v = strtod(vs, &end);
	if (end == vs || *end || isnan(v) || v < 0) {
		tool_err("observe: VALUE must be a decimal number >= 0, not "
			 "'%s'",
			 vs);
		return TOOL_USAGE;
	}
	if (!isfinite(v) || v >= SHMSTAT_HIST_VALUE_MAX) {
		tool_err("observe: VALUE '%s' is out of range: a histogram "
			 "takes numbers below %g (its sum would saturate)",
			 vs, SHMSTAT_HIST_VALUE_MAX);
		return TOOL_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach_rw(seg, &h)))
		return rc;
	shmstat_histogram_t hg;
	rc = shmstat_histogram_open(h, argv[optind], NULL, 0, &hg);
	if (rc == SHMSTAT_ENOTFOUND || (rc == 0 && given))
		rc = shmstat_histogram_open(h, argv[optind], bounds, nb, &hg);
	if (rc == 0)
		shmstat_histogram_observe(hg, v);
	else
		tool_err("observe: %s", shmstat_errstr(h));
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

/* -------------------------------------------------------------------- help */

static const char usage_helptext[] =
	"usage: shmstat [-n NAME] help METRIC [TEXT]\n"
	"\n"
	"Print the help text of METRIC's family (its name without labels),\n"
	"or set it to TEXT (up to 800 bytes of UTF-8): the # HELP line of\n"
	"the Prometheus exposition. Without METRIC, the tool's help.\n"
	"\n" TOOL_EXIT_HELP;

static int do_helptext(const char *seg, int argc, char **argv)
{
	int rc;

	if (argc == 1) {
		fputs(usage_main, stdout);
		return tool_stdout_check();
	}
	if (argc > 3) {
		tool_err("help: expected METRIC [TEXT]");
		fputs(usage_helptext, stderr);
		return TOOL_USAGE;
	}
	shmstat_t *h;
	if ((rc = argc == 3 ? attach_rw(seg, &h) : attach(seg, &h)))
		return rc;
	if (argc == 3) {
		rc = shmstat_help_set(h, argv[1], argv[2]);
	} else {
		char buf[SHMSTAT_HELP_MAX + 1];
		rc = shmstat_help_get(h, argv[1], buf, sizeof(buf));
		if (rc >= 0)
			printf("%s\n", buf);
	}
	if (rc < 0)
		tool_err("help: %s", shmstat_errstr(h));
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : tool_stdout_check();
}

/* ------------------------------------------------------------------- reset */

static const char usage_reset[] =
	"usage: shmstat [-n NAME] reset [GLOB]\n"
	"       shmstat [-n NAME] reset --global GLOB\n"
	"\n"
	"Reset the counters matching GLOB (default: all) to zero on this host\n"
	"(gauges that match are set to 0) and print how many. Increments that\n"
	"race the reset are never lost. A GLOB that matched nothing prints 0\n"
	"and exits 1.\n"
	"  --global GLOB  set the Redis keys of the counters matching GLOB to 0\n"
	"                 for the whole cluster, through this segment's\n"
	"                 shmstat-bridge (waits up to 10 s for it); every host's\n"
	"                 later increments count from there. Local values stay.\n"
	"                 Prints how many keys were reset (0: exit 1). No\n"
	"                 bridge running, or no answer in time: exit 3.\n"
	"\n" TOOL_EXIT_HELP;

static int do_reset(const char *seg, int argc, char **argv)
{
	int rc;

	if (argc >= 2 && strcmp(argv[1], "--global") == 0) {
		if (argc != 3) {
			tool_err("reset: --global needs exactly one GLOB");
			return TOOL_USAGE;
		}
		shmstat_t *h;
		if ((rc = attach_rw(seg, &h)))
			return rc;
		rc = sync_reset_global(h, argv[2]);
		shmstat_close(&h);
		return rc;
	}
	if (argc > 2) {
		tool_err("reset: expected at most one GLOB");
		return TOOL_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach_rw(seg, &h)))
		return rc;
	uint64_t n;
	rc = shmstat_reset(h, argc == 2 ? argv[1] : NULL, &n);
	if (rc < 0)
		tool_err("%s", shmstat_errstr(h));
	else
		printf("%" PRIu64 "\n", n);
	shmstat_close(&h);
	if (rc < 0)
		return tool_status(rc);
	/* A filter that matched nothing: 1, as the conventions say. */
	return argc == 2 && n == 0 ? TOOL_NOTFOUND : TOOL_OK;
}

/* -------------------------------------------------------------------- info */

static const char usage_info[] =
	"usage: shmstat [-n NAME] info [-j]\n"
	"\n"
	"Show the layout version, size, creation, owner and mode, the page\n"
	"size of its memory (2 MiB where its file system gives huge pages),\n"
	"usage of each region, the rows held by live processes and by\n"
	"processes that ended (a row keeps its counts and the next process\n"
	"reuses it: a worker that exited, cleanly or not, or a restarted\n"
	"server leaves such rows; they are not errors), and the status of\n"
	"the shmstat-bridge: connected or not, last push, pending changes,\n"
	"lag, last error, and whether values are reconciled (source:\n"
	"redis). Attaches read-only.\n"
	"  -j  JSON\n"
	"\n" TOOL_EXIT_HELP;

static void info_table(const shmstat_info_t *in)
{
	char ts[64];

	iso_time(ts, sizeof(ts), in->created_ns);
	printf("segment:   %s\n", in->name);
	printf("layout:    %u.%u\n", in->layout_major, in->layout_minor);
	printf("size:      %" PRIu64 " bytes\n", in->size);
	printf("created:   %s by pid %d\n", ts, in->creator_pid);
	printf("host:      %s (id %016" PRIx64 ")\n", in->host_name,
	       in->host_id);
	printf("owner:     uid %u, gid %u, mode %04o\n", in->owner_uid,
	       in->owner_gid, in->mode);
	printf("nonce:     %016" PRIx64 " (this incarnation, for the bridge)\n",
	       in->source_nonce);
	if (in->page_size >= (1u << 20) && in->page_size % (1u << 20) == 0)
		printf("pages:     %u MiB (huge pages)\n", in->page_size >> 20);
	else
		printf("pages:     %u bytes (its file system offers no huge "
		       "pages)\n",
		       in->page_size);
	printf("counters:  %u of %u\n", in->counters_used, in->max_counters);
	printf("workers:   %u live, %u free of %u (%u rows used)\n",
	       in->workers_live, in->workers_free, in->max_workers,
	       in->workers_hwm);
	if (in->workers_dead)
		printf("ended:     %u rows of processes that ended (their counts "
		       "kept, reused by the next process)\n",
		       in->workers_dead);
	if (in->row_overflows) {
		char last[64] = "";
		if (in->row_overflow_ns) {
			char t[48];
			iso_time(t, sizeof(t), in->row_overflow_ns);
			snprintf(last, sizeof(last), ", the last at %s", t);
		}
		printf("overflow:  %" PRIu64 " claims found no free row and "
		       "count in the shared overflow row (exact, slower)%s\n",
		       in->row_overflows, last);
	}
	printf("cache:     values up to %" PRIu64 " bytes", in->cache_max_value);
	if (in->cache_home_blocks)
		printf("; %u home blocks (%" PRIu64 " bytes)",
		       in->cache_home_blocks,
		       (uint64_t)in->cache_home_blocks * 128);
	putchar('\n');
	printf("regions:   %-10s %12s %12s %12s\n", "name", "offset", "size",
	       "used");
	for (uint32_t r = 0; r < in->nregions; r++)
		printf("           %-10s %12" PRIu64 " %12" PRIu64 " %12" PRIu64
		       "\n",
		       in->region[r].name, in->region[r].offset,
		       in->region[r].size, in->region[r].used);
}

static void info_json(const shmstat_info_t *in)
{
	char ts[64];

	iso_time(ts, sizeof(ts), in->created_ns);
	/* When a claim last found no free row: a string, or null. */
	char last[72] = "null";
	if (in->row_overflow_ns) {
		char t[64];
		iso_time(t, sizeof(t), in->row_overflow_ns);
		snprintf(last, sizeof(last), "\"%s\"", t);
	}
	fputs("{\n  \"segment\": ", stdout);
	json_str(stdout, in->name, strlen(in->name));
	printf(",\n  \"layout\": \"%u.%u\",\n  \"size\": %" PRIu64
	       ",\n  \"created\": \"%s\",\n  \"creator_pid\": %d,\n"
	       "  \"host\": ",
	       in->layout_major, in->layout_minor, in->size, ts,
	       in->creator_pid);
	json_str(stdout, in->host_name, strlen(in->host_name));
	printf(",\n  \"owner\": {\"uid\": %u, \"gid\": %u, \"mode\": \"%04o\"}",
	       in->owner_uid, in->owner_gid, in->mode);
	printf(",\n  \"host_id\": \"%016" PRIx64 "\",\n"
	       "  \"source_nonce\": \"%016" PRIx64 "\",\n"
	       "  \"counters\": {\"used\": %u, \"max\": %u},\n"
	       "  \"workers\": {\"live\": %u, \"dead\": %u, \"free\": %u, "
	       "\"max\": %u, \"rows_used\": %u, \"overflows\": %" PRIu64
	       ", \"overflow_last\": %s},\n"
	       "  \"cache_max_value\": %" PRIu64 ",\n"
	       "  \"cache_home_blocks\": %u,\n  \"page_size\": %u,\n"
	       "  \"regions\": [",
	       in->host_id, in->source_nonce, in->counters_used,
	       in->max_counters, in->workers_live, in->workers_dead, in->workers_free,
	       in->max_workers, in->workers_hwm, in->row_overflows, last,
	       in->cache_max_value, in->cache_home_blocks, in->page_size);
	for (uint32_t r = 0; r < in->nregions; r++)
		printf("%s\n    {\"name\": \"%s\", \"offset\": %" PRIu64
		       ", \"size\": %" PRIu64 ", \"used\": %" PRIu64 "}",
		       r ? "," : "", in->region[r].name, in->region[r].offset,
		       in->region[r].size, in->region[r].used);
	fputs("\n  ]", stdout); /* sync_info() closes the object */
}

static int do_info(const char *seg, int argc, char **argv)
{
	bool json = false;
	int c, rc;

	while ((c = getopt(argc, argv, "j")) != -1) {
		if (c != 'j') {
			fputs(usage_info, stderr);
			return TOOL_USAGE;
		}
		json = true;
	}
	if (optind != argc) {
		tool_err("info: unexpected argument '%s'", argv[optind]);
		return TOOL_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach(seg, &h)))
		return rc;
	shmstat_info_t in;
	rc = shmstat_info(h, &in);
	if (rc == 0) {
		json ? info_json(&in) : info_table(&in);
		sync_info(h, stdout, json);
	} else
		tool_err("%s", shmstat_errstr(h));
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

/* -------------------------------------------------------------------- reap */

static const char usage_reap[] =
	"usage: shmstat [-n NAME] reap\n"
	"\n"
	"Free the rows of processes that died without closing the segment and\n"
	"print how many. Their counts stay: the next process adopts the row.\n"
	"\n" TOOL_EXIT_HELP;

static int do_reap(const char *seg, int argc, char **argv)
{
	int rc;

	if (argc > 1) {
		tool_err("reap: unexpected argument '%s'", argv[1]);
		return TOOL_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach_rw(seg, &h)))
		return rc;
	uint32_t n;
	rc = shmstat_reap(h, &n);
	if (rc == 0)
		printf("%u\n", n);
	else
		tool_err("%s", shmstat_errstr(h));
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

static const struct cmd cmds[] = {
	{ "ls", do_ls, usage_ls },
	{ "create", do_create, usage_create },
	{ "destroy", do_destroy, usage_destroy },
	{ "list", do_list, usage_list },
	{ "get", do_get, usage_get },
	{ "incr", do_incr, usage_incr },
	{ "set", do_set, usage_set },
	{ "observe", do_observe, usage_observe },
	{ "help", do_helptext, usage_helptext },
	{ "reset", do_reset, usage_reset },
	{ "info", do_info, usage_info },
	{ "reap", do_reap, usage_reap },
	{ "health", do_health, usage_health },
	{ "cache", do_cache, usage_cache },
};

/* Run a command with SIGBUS turned into a message naming the segment. */
static int run_guarded(const struct cmd *cmd, const char *seg, int argc,
		       char **argv)
{
	struct sigaction sa = { .sa_handler = on_sigbus };

	sigemptyset(&sa.sa_mask);
	if (sigsetjmp(fault_jmp, 1)) {
		fault_armed = 0;
		if (tool_on_fault)
			tool_on_fault();
		tool_err("segment '%s' (/dev/shm/shmstat.%s) was truncated or "
			 "replaced while being read (SIGBUS); its values are not "
			 "readable now",
			 seg, seg);
		/* What the command had allocated is abandoned with its stack;
		 * end here, without exit handlers that would look at it. */
		fflush(stdout);
		_exit(TOOL_SEGMENT);
	}
	sigaction(SIGBUS, &sa, NULL);
	fault_armed = 1;
	int rc = cmd->run(seg, argc, argv);
	fault_armed = 0;
	/* Whatever the command printed must have reached its reader: a lost
	 * output is said, and its 3 wins over the command's own status
	 * (health's 0, 1 and 2 too: a status whose words were lost would be
	 * taken for the words). A command that printed nothing (a miss,
	 * a usage error) keeps its status, as its output cannot fail. */
	int out = tool_stdout_check();
	return out ? out : rc;
}

int main(int argc, char **argv)
{
	const char *seg = getenv("SHMSTAT_NAME");
	int c;

	struct sigaction sa = { .sa_handler = on_sigbus };
	sigaction(SIGBUS, &sa, NULL);

	if (!seg || !*seg)
		seg = "default";
	static const struct option lo[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0, 0, 0, 0 },
	};
	while ((c = getopt_long(argc, argv, "+n:hV", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			seg = optarg;
			break;
		case 'h':
			fputs(usage_main, stdout);
			return tool_stdout_check();
		case 'V':
			printf("shmstat %s\n", SHMSTAT_VERSION_STRING);
			return tool_stdout_check();
		default:
			fputs(usage_main, stderr);
			return TOOL_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(usage_main, stderr);
		return TOOL_USAGE;
	}
	if (shmstat_name_check(seg) < 0 && strcmp(argv[optind], "ls") != 0) {
		/* Printed as \xHH where not printable: the name may hold
		 * any byte. */
		fprintf(stderr, "%s: invalid segment name '", prog);
		for (const unsigned char *p = (const unsigned char *)seg; *p; p++)
			if (*p >= 0x20 && *p < 0x7f && *p != '\\')
				fputc(*p, stderr);
			else
				fprintf(stderr, "\\x%02x", *p);
		fprintf(stderr, "': %s\n", shmstat__name_problem(seg));
		return TOOL_USAGE;
	}
	argc -= optind;
	argv += optind;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[0], cmds[i].name) != 0)
			continue;
		if (wants_help(argc, argv)) {
			fputs(cmds[i].usage, stdout);
			return tool_stdout_check();
		}
		optind = 1;
		return run_guarded(&cmds[i], seg, argc, argv);
	}
	tool_err("unknown command '%s' (see 'shmstat --help')", argv[0]);
	return TOOL_USAGE;
}
