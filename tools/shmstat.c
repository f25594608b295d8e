/*
 * shmstat — inspect and edit a shmstat segment.
 *
 * A thin CLI: parse arguments, attach, call one do_<command>(). Each output
 * format (table, JSON) is one function. Exit status: 0 success, 1 usage or
 * lookup error, 2 segment missing or invalid.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
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

#define EXIT_USAGE 1
#define EXIT_SEGMENT 2

static const char *prog = "shmstat";

static const char usage_main[] =
	"usage: shmstat [-n NAME] COMMAND [ARGS]\n"
	"\n"
	"Inspect and edit a shmstat shared-memory segment.\n"
	"\n"
	"options:\n"
	"  -n NAME     segment name (default: $SHMSTAT_NAME, else 'default')\n"
	"  -h, --help  this help; 'shmstat COMMAND --help' for a command\n"
	"  -V          print the version\n"
	"\n"
	"commands:\n"
	"  create [--size BYTES] [--counters N] [--workers N]\n"
	"         [--max-value BYTES] [--mode OCTAL]\n"
	"                     create the segment\n"
	"  destroy            remove the segment's name\n"
	"  list [-f GLOB] [-j [--global] | -p | -w [SECS]]\n"
	"                     counters and gauges: table, JSON, Prometheus,\n"
	"                     live view\n"
	"  get [-j] [--global] NAME\n"
	"                     print one value (--global: the cluster-wide one)\n"
	"  incr NAME [N]      add N (default 1) to a counter, creating it\n"
	"  set NAME VALUE     set a gauge, creating it\n"
	"  reset [GLOB]       reset matching counters (default: all)\n"
	"  reset --global GLOB  reset them in Redis, for every host\n"
	"  info [-j]          layout, sizes, region usage, workers\n"
	"  reap               free rows of processes that died\n"
	"  health [-j] [--no-bridge]\n"
	"                     exit 0 healthy, 1 degraded, 2 broken; says why\n"
	"  cache get|set|del|ttl|keys|clear|flush|stats ...  the TTL cache\n"
	"\n"
	"exit status: 0 success, 1 usage or lookup error, 2 segment missing or\n"
	"invalid.\n";

void tool_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Exit status for a library error code. */
int tool_status(int rc)
{
	switch (rc) {
	case SHMSTAT_ENOENT:
	case SHMSTAT_ETRUNC:
	case SHMSTAT_EMAGIC:
	case SHMSTAT_EVERSION:
	case SHMSTAT_ECORRUPT:
	case SHMSTAT_EINIT:
	case SHMSTAT_EPERM:
		return EXIT_SEGMENT;
	default:
		return EXIT_USAGE;
	}
}

static int attach(const char *name, shmstat_t **h)
{
	int rc = shmstat_open(name, NULL, h);

	if (rc < 0) {
		tool_err("%s", shmstat_errstr(NULL));
		return tool_status(rc);
	}
	return 0;
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

/* Parse a non-negative integer that fits in [min, max]. */
bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
	char *end;

	if (!s || !*s)
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 0);
	if (errno || *end)
		return false;
	*out = v;
	return true;
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

/* ------------------------------------------------------------------ create */

static const char usage_create[] =
	"usage: shmstat [-n NAME] create [--size BYTES] [--counters N]\n"
	"                               [--workers N] [--max-value BYTES]\n"
	"                               [--mode OCTAL]\n"
	"\n"
	"Create the segment. Fails (exit 1) if it exists.\n"
	"  --size BYTES       total size (default 33554432 = 32 MiB; the cache\n"
	"                     gets what the counters leave)\n"
	"  --counters N       counters + gauges it can hold (default 4096)\n"
	"  --workers N        processes that can count at once (default 128)\n"
	"  --max-value BYTES  largest cache value (default 1048576)\n"
	"  --mode OCTAL       permissions (default 0600; 0660 for a group)\n";

static int do_create(const char *seg, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, 's' },
		{ "counters", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' },
		{ "max-value", required_argument, NULL, 'v' },
		{ "mode", required_argument, NULL, 'm' },
		{ 0, 0, 0, 0 },
	};
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL };
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "s:c:w:v:m:", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!parse_u64(optarg, 1, UINT64_MAX, &v))
				goto bad;
			o.size = (size_t)v;
			break;
		case 'c':
			if (!parse_u64(optarg, 1, UINT32_MAX, &v))
				goto bad;
			o.max_counters = (uint32_t)v;
			break;
		case 'w':
			if (!parse_u64(optarg, 1, UINT32_MAX, &v))
				goto bad;
			o.max_workers = (uint32_t)v;
			break;
		case 'v':
			if (!parse_u64(optarg, 1, UINT64_MAX, &v))
				goto bad;
			o.cache_max_value = (size_t)v;
			break;
		case 'm': {
			char *end;
			errno = 0;
			unsigned long m = strtoul(optarg, &end, 8);
			if (errno || *end || !*optarg || m == 0 || m > 0777)
				goto bad;
			o.mode = (unsigned)m;
			break;
		}
		default:
			fputs(usage_create, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		tool_err("create: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	shmstat_t *h;
	int rc = shmstat_open(seg, &o, &h);
	if (rc < 0) {
		tool_err("%s", shmstat_errstr(NULL));
		return rc == SHMSTAT_EEXIST || rc == SHMSTAT_EINVAL ||
				       rc == SHMSTAT_ENAME
			       ? EXIT_USAGE
			       : EXIT_SEGMENT;
	}
	shmstat_info_t info;
	shmstat_info(h, &info);
	printf("created segment '%s': %" PRIu64 " bytes, %u counters, %u "
	       "workers\n",
	       seg, info.size, info.max_counters, info.max_workers);
	shmstat_close(&h);
	return 0;
bad:
	tool_err("create: bad value '%s' for --%s", optarg,
		 lo[c == 's' ? 0 : c == 'c' ? 1 : c == 'w' ? 2 : c == 'v' ? 3 : 4].name);
	return EXIT_USAGE;
}

/* ----------------------------------------------------------------- destroy */

static const char usage_destroy[] =
	"usage: shmstat [-n NAME] destroy\n"
	"\n"
	"Remove the segment's name. Processes that have it open keep using it\n"
	"until they close it; new opens no longer find it.\n";

static int do_destroy(const char *seg, int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		tool_err("destroy: unexpected argument '%s'", argv[1]);
		return EXIT_USAGE;
	}
	int rc = shmstat_unlink(seg);
	if (rc < 0) {
		tool_err("%s", shmstat_errstr(NULL));
		return rc == SHMSTAT_ENAME ? EXIT_USAGE : EXIT_SEGMENT;
	}
	return 0;
}

/* -------------------------------------------------------------------- list */

static const char usage_list[] =
	"usage: shmstat [-n NAME] list [-f GLOB] [-j [--global] | -p | -w [SECONDS] [-c COUNT] [-H]]\n"
	"\n"
	"Print every counter and gauge (or those matching GLOB) with its value.\n"
	"  -f GLOB     only names matching GLOB (fnmatch rules, e.g. 'filter_stats:*')\n"
	"  -p, --prometheus\n"
	"              the Prometheus text format (counters as shmstat_<name>_total,\n"
	"              gauges as shmstat_<name>, the original name in a label; cache\n"
	"              and bridge metrics too): for node_exporter's textfile collector\n"
	"  -w [SECS]   live view: redraw every SECS seconds (default 1, at least\n"
	"              0.05) with each counter's rate per second; q or Ctrl-C quits\n"
	"  -c COUNT    with -w: stop after COUNT refreshes\n"
	"  -H          with -w: humanize large numbers (1.23M)\n"
	"  -j       JSON: {\"timestamp\", \"scope\", \"source\", \"segment\",\n"
	"           \"counters\": {...}, \"gauges\": {...}}: this segment's values\n"
	"           (scope and source \"local\")\n"
	"  --global with -j: each one's cluster-wide value from Redis (scope\n"
	"           \"global\"; source \"redis\" when the bridge reconciled them\n"
	"           recently, else \"stale\"; null when never read)\n";

struct list_ctx {
	FILE *f;
	int n;
};

static int list_table(const shmstat_stat_t *st, void *priv)
{
	struct list_ctx *c = priv;

	fprintf(c->f, "%-50s %20" PRId64 "%s\n", st->name, st->value,
		st->kind == SHMSTAT_KIND_GAUGE ? "  (gauge)" : "");
	c->n++;
	return 0;
}

static int do_list(const char *seg, int argc, char **argv)
{
	const char *pattern = NULL;
	static const struct option lo[] = {
		{ "prometheus", no_argument, NULL, 'p' },
		{ "global", no_argument, NULL, 'g' },
		{ 0, 0, 0, 0 },
	};
	bool json = false, watch = false, human = false, prom = false;
	bool global = false;
	double interval = 1;
	long count = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "f:jpwc:H", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			prom = true;
			break;
		case 'f':
			pattern = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'g':
			global = true;
			break;
		case 'w':
			watch = true;
			/* An optional operand: -w 0.5 */
			if (optind < argc && argv[optind][0] != '-') {
				char *end;
				interval = strtod(argv[optind], &end);
				if (*end || !(interval >= 0.05 && interval <= 3600)) {
					tool_err("list: -w takes seconds from "
						 "0.05 to 3600, not '%s'",
						 argv[optind]);
					return EXIT_USAGE;
				}
				optind++;
			}
			break;
		case 'c': {
			uint64_t v;
			if (!parse_u64(optarg, 1, 1000000000, &v)) {
				tool_err("list: -c takes a count, not '%s'",
					 optarg);
				return EXIT_USAGE;
			}
			count = (long)v;
			break;
		}
		case 'H':
			human = true;
			break;
		default:
			fputs(usage_list, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		tool_err("list: unexpected argument '%s' (use -f GLOB)",
			 argv[optind]);
		return EXIT_USAGE;
	}
	if (json + watch + prom > 1) {
		tool_err("list: choose one of -j, -p and -w");
		return EXIT_USAGE;
	}
	if (global && !json) {
		tool_err("list: --global goes with -j");
		return EXIT_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach(seg, &h)))
		return rc;
	if (watch) {
		rc = tool_watch(h, seg, pattern, interval, count, human);
		shmstat_close(&h);
		return rc;
	}
	if (prom) {
		rc = shmstat_export_prometheus(h, pattern, stdout);
	} else if (json) {
		rc = global ? shmstat_export_json_global(h, pattern, stdout)
			    : shmstat_export_json(h, pattern, stdout);
	} else {
		struct list_ctx lc = { .f = stdout };
		rc = shmstat_iter(h, pattern, list_table, &lc);
	}
	if (rc < 0)
		tool_err("%s", shmstat_errstr(h));
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

/* --------------------------------------------------------------------- get */

static const char usage_get[] =
	"usage: shmstat [-n NAME] get [-j] [--global] COUNTER\n"
	"\n"
	"Print the value of one counter or gauge, the number alone.\n"
	"Exit 1 when it does not exist.\n"
	"  -j        JSON: {\"name\", \"kind\", \"value\", \"timestamp\", \"source\"}\n"
	"  --global  the cluster-wide value shmstat-bridge last wrote back (the\n"
	"            sum over all hosts); exit 1 when it never did\n";

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
			return EXIT_USAGE;
		}
		json = true;
	}
	if (argc - optind != 1) {
		tool_err("get: expected one counter name");
		fputs(usage_get, stderr);
		return EXIT_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach(seg, &h)))
		return rc;
	if (global) {
		rc = sync_get_global(h, argv[optind], json);
		shmstat_close(&h);
		return rc;
	}
	shmstat_stat_t st;
	rc = shmstat_stat_get(h, argv[optind], &st);
	if (rc < 0) {
		tool_err("%s", shmstat_errstr(h));
	} else if (json) {
		char ts[64];
		iso_time(ts, sizeof(ts), shmstat__now_realtime_ns());
		fputs("{\"name\": ", stdout);
		json_str(stdout, st.name, st.name_len);
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
	"Add N (default 1, at most 2^63-1) to COUNTER, creating it, and print\n"
	"the new value.\n";

static int do_incr(const char *seg, int argc, char **argv)
{
	uint64_t n = 1;
	int rc;

	if (argc < 2 || argc > 3) {
		tool_err("incr: expected COUNTER [N]");
		fputs(usage_incr, stderr);
		return EXIT_USAGE;
	}
	if (argc == 3 && !parse_u64(argv[2], 0, INT64_MAX, &n)) {
		tool_err("incr: N must be a whole number from 0 to %" PRId64
			 ", not '%s'",
			 INT64_MAX, argv[2]);
		return EXIT_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach(seg, &h)))
		return rc;
	shmstat_counter_t c;
	rc = shmstat_counter_get(h, argv[1], &c);
	if (rc == 0) {
		shmstat_counter_add(c, n);
		int64_t v;
		rc = shmstat_counter_read(h, c, &v);
		if (rc == 0)
			printf("%" PRId64 "\n", v);
	}
	if (rc < 0)
		tool_err("%s", shmstat_errstr(h));
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

/* --------------------------------------------------------------------- set */

static const char usage_set[] =
	"usage: shmstat [-n NAME] set GAUGE VALUE\n"
	"\n"
	"Set GAUGE (a signed 64-bit value), creating it.\n";

static int do_set(const char *seg, int argc, char **argv)
{
	int64_t v;
	int rc;

	if (argc != 3) {
		tool_err("set: expected GAUGE VALUE");
		fputs(usage_set, stderr);
		return EXIT_USAGE;
	}
	if (!parse_i64(argv[2], &v)) {
		tool_err("set: VALUE must be a signed 64-bit integer, not '%s'",
			 argv[2]);
		return EXIT_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach(seg, &h)))
		return rc;
	shmstat_gauge_t g;
	rc = shmstat_gauge_get(h, argv[1], &g);
	if (rc == 0)
		shmstat_gauge_set(g, v);
	else
		tool_err("%s", shmstat_errstr(h));
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

/* ------------------------------------------------------------------- reset */

static const char usage_reset[] =
	"usage: shmstat [-n NAME] reset [GLOB]\n"
	"       shmstat [-n NAME] reset --global GLOB\n"
	"\n"
	"Reset the counters matching GLOB (default: all) to zero on this host\n"
	"(gauges that match are set to 0) and print how many. Increments that\n"
	"race the reset are never lost.\n"
	"  --global GLOB  set the Redis keys of the counters matching GLOB to 0\n"
	"                 for the whole cluster, through this segment's\n"
	"                 shmstat-bridge (waits up to 10 s for it); every host's\n"
	"                 later increments count from there. Local values stay.\n"
	"                 Prints how many keys were reset.\n";

static int do_reset(const char *seg, int argc, char **argv)
{
	int rc;

	if (argc >= 2 && strcmp(argv[1], "--global") == 0) {
		if (argc != 3) {
			tool_err("reset: --global needs exactly one GLOB");
			return EXIT_USAGE;
		}
		shmstat_t *h;
		if ((rc = attach(seg, &h)))
			return rc;
		rc = sync_reset_global(h, argv[2]);
		shmstat_close(&h);
		return rc;
	}
	if (argc > 2) {
		tool_err("reset: expected at most one GLOB");
		return EXIT_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach(seg, &h)))
		return rc;
	uint64_t n;
	rc = shmstat_reset(h, argc == 2 ? argv[1] : NULL, &n);
	if (rc < 0)
		tool_err("%s", shmstat_errstr(h));
	else
		printf("%" PRIu64 "\n", n);
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

/* -------------------------------------------------------------------- info */

static const char usage_info[] =
	"usage: shmstat [-n NAME] info [-j]\n"
	"\n"
	"Show the layout version, size, creation, usage of each region, the\n"
	"rows held by live and dead processes, and the status of the\n"
	"shmstat-bridge: connected or not, last push, pending changes, lag,\n"
	"last error, and whether values are reconciled (source: redis).\n"
	"  -j  JSON\n";

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
	printf("nonce:     %016" PRIx64 " (this incarnation, for the bridge)\n",
	       in->source_nonce);
	printf("counters:  %u of %u\n", in->counters_used, in->max_counters);
	printf("workers:   %u live, %u dead, %u free of %u (%u rows used)\n",
	       in->workers_live, in->workers_dead, in->workers_free,
	       in->max_workers, in->workers_hwm);
	if (in->row_overflows)
		printf("overflow:  %" PRIu64 " processes found no free row\n",
		       in->row_overflows);
	printf("cache:     values up to %" PRIu64 " bytes\n",
	       in->cache_max_value);
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
	fputs("{\n  \"segment\": ", stdout);
	json_str(stdout, in->name, strlen(in->name));
	printf(",\n  \"layout\": \"%u.%u\",\n  \"size\": %" PRIu64
	       ",\n  \"created\": \"%s\",\n  \"creator_pid\": %d,\n"
	       "  \"host\": ",
	       in->layout_major, in->layout_minor, in->size, ts,
	       in->creator_pid);
	json_str(stdout, in->host_name, strlen(in->host_name));
	printf(",\n  \"host_id\": \"%016" PRIx64 "\",\n"
	       "  \"source_nonce\": \"%016" PRIx64 "\",\n"
	       "  \"counters\": {\"used\": %u, \"max\": %u},\n"
	       "  \"workers\": {\"live\": %u, \"dead\": %u, \"free\": %u, "
	       "\"max\": %u, \"rows_used\": %u, \"overflows\": %" PRIu64 "},\n"
	       "  \"cache_max_value\": %" PRIu64 ",\n  \"regions\": [",
	       in->host_id, in->source_nonce, in->counters_used,
	       in->max_counters, in->workers_live, in->workers_dead, in->workers_free,
	       in->max_workers, in->workers_hwm, in->row_overflows,
	       in->cache_max_value);
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
			return EXIT_USAGE;
		}
		json = true;
	}
	if (optind != argc) {
		tool_err("info: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
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
	"print how many. Their counts stay: the next process adopts the row.\n";

static int do_reap(const char *seg, int argc, char **argv)
{
	int rc;

	if (argc > 1) {
		tool_err("reap: unexpected argument '%s'", argv[1]);
		return EXIT_USAGE;
	}
	shmstat_t *h;
	if ((rc = attach(seg, &h)))
		return rc;
	uint32_t n;
	rc = shmstat_reap(h, &n);
	if (rc == 0)
		printf("%u\n", n);
	shmstat_close(&h);
	return rc < 0 ? tool_status(rc) : 0;
}

static const struct cmd cmds[] = {
	{ "create", do_create, usage_create },
	{ "destroy", do_destroy, usage_destroy },
	{ "list", do_list, usage_list },
	{ "get", do_get, usage_get },
	{ "incr", do_incr, usage_incr },
	{ "set", do_set, usage_set },
	{ "reset", do_reset, usage_reset },
	{ "info", do_info, usage_info },
	{ "reap", do_reap, usage_reap },
	{ "health", do_health, usage_health },
	{ "cache", do_cache, usage_cache },
};

int main(int argc, char **argv)
{
	const char *seg = getenv("SHMSTAT_NAME");
	int c;

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
			return 0;
		case 'V':
			printf("shmstat %d.%d\n", SHMSTAT_VERSION_MAJOR,
			       SHMSTAT_VERSION_MINOR);
			return 0;
		default:
			fputs(usage_main, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	if (shmstat_name_check(seg) < 0) {
		tool_err("invalid segment name '%s': use 1 to 64 of "
			 "[A-Za-z0-9_.-], not '..'",
			 seg);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[0], cmds[i].name) != 0)
			continue;
		if (wants_help(argc, argv)) {
			fputs(cmds[i].usage, stdout);
			return 0;
		}
		optind = 1;
		return cmds[i].run(seg, argc, argv);
	}
	tool_err("unknown command '%s' (see 'shmstat --help')", argv[0]);
	return EXIT_USAGE;
}
