/*
 * cache_cmd.c — `shmstat cache`: read and edit the segment's TTL cache.
 * One function per subcommand; each output format is one function.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmstat.h"
#include "tools_i.h"

const char usage_cache[] =
	"usage: shmstat [-n NAME] cache SUBCOMMAND [ARGS]\n"
	"\n"
	"Read and edit the segment's TTL cache.\n"
	"  get KEY            print the value alone (and a newline); exit 1 on\n"
	"                     a miss\n"
	"  set KEY VALUE [--ttl MS|--px MS|--ex SECONDS] [--nx|--xx]\n"
	"                     store VALUE under KEY; --ttl and --px: expire\n"
	"                     after MS milliseconds, --ex: after SECONDS\n"
	"                     (default 0: never); --nx: only if absent, --xx:\n"
	"                     only if present (exit 1 when not)\n"
	"  expire KEY --ttl MS|--px MS|--ex SECONDS\n"
	"                     give a present key a new TTL from now (0: never\n"
	"                     expires); exit 1 when absent\n"
	"  del KEY            remove KEY; exit 1 when it was absent\n"
	"  ttl KEY            remaining milliseconds, -1 for no TTL; exit 1 when\n"
	"                     absent\n"
	"  keys [GLOB]        keys matching GLOB (fnmatch syntax; default all),\n"
	"                     one a line; bytes outside printable ASCII and '\\'\n"
	"                     are written as \\xHH\n"
	"  clear GLOB         remove the keys matching GLOB; print how many\n"
	"  flush              remove every key; print how many\n"
	"  stats [-j]         hits, misses, hit rate, sets, deletes, evictions,\n"
	"                     expirations, errors, entries, bytes used and free;\n"
	"                     -j: as JSON\n"
	"Keys and values are the argument's bytes; '--' ends the options.\n"
	"\n"
	"exit status: 0 success, 1 usage error or miss, 2 segment missing or\n"
	"invalid.\n";

static int lib_err(shmstat_t *h, int rc)
{
	tool_err("cache: %s", shmstat_errstr(h));
	return tool_status(rc);
}

static int usage_err(const char *fmt, const char *arg)
{
	fprintf(stderr, "shmstat: cache: ");
	fprintf(stderr, fmt, arg);
	fputs("\n(see 'shmstat cache --help')\n", stderr);
	return 1;
}

/* Split args into options (known flags) and positionals. */
struct args {
	const char *pos[4];
	int npos;
	uint64_t ttl;
	bool has_ttl;
	int mode;
	bool json;
};

/* --ttl / --px MS, --ex SECONDS (as "--opt V" or "--opt=V"): 1 taken (and
 * *i moved past a separate value), 0 not a TTL option, -1 bad value. */
static int ttl_opt(int argc, char **argv, int *i, struct args *a)
{
	static const char *const names[] = { "--ttl", "--px", "--ex" };
	const char *s = argv[*i], *v = NULL;
	int k;

	for (k = 0; k < 3; k++) {
		size_t n = strlen(names[k]);
		if (strncmp(s, names[k], n) == 0 && (s[n] == '\0' || s[n] == '='))
			break;
	}
	if (k == 3)
		return 0;
	if (strchr(s, '='))
		v = strchr(s, '=') + 1;
	else if (*i + 1 < argc)
		v = argv[++*i];
	uint64_t max = k == 2 ? UINT64_MAX / 2000 : UINT64_MAX / 2;
	if (a->has_ttl) {
		usage_err("%s: one of --ttl, --px, --ex", s);
		return -1;
	}
	if (!v || !parse_u64(v, 0, max, &a->ttl)) {
		usage_err(k == 2 ? "--ex needs seconds, got '%s'"
				 : "--ttl and --px need milliseconds, got '%s'",
			  v ? v : "");
		return -1;
	}
	if (k == 2)
		a->ttl *= 1000;
	a->has_ttl = true;
	return 1;
}

/* Options by subcommand: TTL (--ttl, --px, --ex), mode (--nx, --xx), -j. */
enum { OPT_TTL = 1, OPT_MODE = 2, OPT_J = 4 };

static int parse(int argc, char **argv, unsigned allow, struct args *a)
{
	bool opts = true;

	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		int t;
		if (opts && strcmp(s, "--") == 0) {
			opts = false;
		} else if (opts && (allow & OPT_TTL) &&
			   (t = ttl_opt(argc, argv, &i, a)) != 0) {
			if (t < 0)
				return 1;
		} else if (opts && (allow & OPT_MODE) &&
			   (strcmp(s, "--nx") == 0 || strcmp(s, "--xx") == 0)) {
			int m = s[2] == 'n' ? SHMSTAT_CACHE_NX : SHMSTAT_CACHE_XX;
			if (a->mode && a->mode != m)
				return usage_err("%s: --nx and --xx exclude "
						 "each other",
						 "set");
			a->mode = m;
		} else if (opts && (allow & OPT_J) && strcmp(s, "-j") == 0) {
			a->json = true;
		} else if (opts && s[0] == '-' && s[1]) {
			return usage_err("unknown option '%s'", s);
		} else if (a->npos < 4) {
			a->pos[a->npos++] = s;
		} else {
			return usage_err("unexpected argument '%s'", s);
		}
	}
	return 0;
}

static void print_key(const unsigned char *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\')
			putchar(k[i]);
		else
			printf("\\x%02x", k[i]);
	}
	putchar('\n');
}

static int print_key_cb(const void *key, size_t klen, void *priv)
{
	(void)priv;
	print_key(key, klen);
	return 0;
}

static int cmd_get(shmstat_t *h, const char *key)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int rc;

	if (!buf)
		return 1;
	rc = shmstat_cache_get(h, key, strlen(key), buf, cap, &n);
	if (rc == SHMSTAT_ERANGE) {
		char *nb = realloc(buf, n);
		if (!nb) {
			free(buf);
			return 1;
		}
		buf = nb;
		cap = n;
		rc = shmstat_cache_get(h, key, strlen(key), buf, cap, &n);
	}
	if (rc == 0) {
		fwrite(buf, 1, n, stdout);
		putchar('\n');
	} else if (rc != SHMSTAT_ENOTFOUND) {
		free(buf);
		return lib_err(h, rc);
	}
	free(buf);
	return rc == 0 ? 0 : 1;
}

static void stats_text(const shmstat_cache_stats_t *s)
{
	printf("hits:         %" PRIu64 "\n", s->hits);
	printf("misses:       %" PRIu64 "\n", s->misses);
	printf("hit_rate:     %.4f\n", s->hit_rate);
	printf("sets:         %" PRIu64 "\n", s->sets);
	printf("deletes:      %" PRIu64 "\n", s->deletes);
	printf("evictions:    %" PRIu64 "\n", s->evictions);
	printf("expirations:  %" PRIu64 "\n", s->expirations);
	printf("errors:       %" PRIu64 "\n", s->errors);
	printf("entries:      %" PRIu64 "\n", s->entries);
	printf("bytes_used:   %" PRIu64 "\n", s->bytes_used);
	printf("bytes_free:   %" PRIu64 "\n", s->bytes_free);
	printf("max_value:    %" PRIu64 "\n", s->max_value);
}

static void stats_json(const shmstat_cache_stats_t *s)
{
	printf("{\"hits\": %" PRIu64 ", \"misses\": %" PRIu64
	       ", \"hit_rate\": %.4f, \"sets\": %" PRIu64
	       ", \"deletes\": %" PRIu64 ", \"evictions\": %" PRIu64
	       ", \"expirations\": %" PRIu64 ", \"errors\": %" PRIu64
	       ", \"entries\": %" PRIu64 ", \"bytes_used\": %" PRIu64
	       ", \"bytes_free\": %" PRIu64 ", \"max_value\": %" PRIu64 "}\n",
	       s->hits, s->misses, s->hit_rate, s->sets, s->deletes,
	       s->evictions, s->expirations, s->errors, s->entries,
	       s->bytes_used, s->bytes_free, s->max_value);
}

struct sub {
	const char *name;
	int min, max; /* positionals */
	unsigned opts;
};

static const struct sub subs[] = {
	{ "get", 1, 1, 0 },	  { "set", 2, 2, OPT_TTL | OPT_MODE },
	{ "expire", 1, 1, OPT_TTL }, { "del", 1, 1, 0 },
	{ "ttl", 1, 1, 0 },	  { "keys", 0, 1, 0 },
	{ "clear", 1, 1, 0 },	  { "flush", 0, 0, 0 },
	{ "stats", 0, 0, OPT_J },
};

int do_cache(const char *seg, int argc, char **argv)
{
	const struct sub *sub = NULL;
	struct args a;
	shmstat_t *h = NULL;
	int rc;

	if (argc < 2)
		return usage_err("%s", "a subcommand is needed");
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			sub = &subs[i];
	if (!sub)
		return usage_err("unknown subcommand '%s'", argv[1]);
	for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage_cache, stdout);
			return 0;
		}
	if ((rc = parse(argc - 2, argv + 2, sub->opts, &a)))
		return rc;
	if (a.npos < sub->min || a.npos > sub->max)
		return usage_err("%s: wrong number of arguments", sub->name);
	if (strcmp(sub->name, "expire") == 0 && !a.has_ttl)
		return usage_err("%s: needs --ttl, --px or --ex", "expire");
	if ((rc = shmstat_open(seg, NULL, &h)) < 0) {
		tool_err("%s", shmstat_errstr(NULL));
		return tool_status(rc);
	}
	const char *k = a.npos ? a.pos[0] : NULL;
	uint64_t n = 0;
	int64_t ttl;
	if (strcmp(sub->name, "get") == 0) {
		rc = cmd_get(h, k);
	} else if (strcmp(sub->name, "set") == 0) {
		rc = shmstat_cache_set(h, k, strlen(k), a.pos[1],
				       strlen(a.pos[1]), a.ttl, a.mode);
		if (rc == SHMSTAT_EEXISTS || rc == SHMSTAT_ENOTFOUND) {
			tool_err("cache: set: %s", rc == SHMSTAT_EEXISTS
							   ? "key exists (--nx)"
							   : "key is absent (--xx)");
			rc = 1;
		} else {
			rc = rc < 0 ? lib_err(h, rc) : 0;
		}
	} else if (strcmp(sub->name, "expire") == 0) {
		rc = shmstat_cache_expire(h, k, strlen(k), a.ttl);
		rc = rc == SHMSTAT_ENOTFOUND ? 1 : rc < 0 ? lib_err(h, rc) : 0;
	} else if (strcmp(sub->name, "del") == 0) {
		rc = shmstat_cache_delete(h, k, strlen(k));
		rc = rc == SHMSTAT_ENOTFOUND ? 1 : rc < 0 ? lib_err(h, rc) : 0;
	} else if (strcmp(sub->name, "ttl") == 0) {
		rc = shmstat_cache_ttl(h, k, strlen(k), &ttl);
		if (rc == 0)
			printf("%" PRId64 "\n", ttl);
		rc = rc == SHMSTAT_ENOTFOUND ? 1 : rc < 0 ? lib_err(h, rc) : 0;
	} else if (strcmp(sub->name, "keys") == 0) {
		rc = shmstat_cache_iter(h, k, print_key_cb, NULL);
		rc = rc < 0 ? lib_err(h, rc) : 0;
	} else if (strcmp(sub->name, "clear") == 0 ||
		   strcmp(sub->name, "flush") == 0) {
		rc = k ? shmstat_cache_clear(h, k, &n) : shmstat_cache_flush(h, &n);
		printf("%" PRIu64 "\n", n);
		rc = rc < 0 ? lib_err(h, rc) : 0;
	} else {
		shmstat_cache_stats_t st;
		rc = shmstat_cache_stats(h, &st);
		if (rc == 0)
			(a.json ? stats_json : stats_text)(&st);
		rc = rc < 0 ? lib_err(h, rc) : 0;
	}
	shmstat_close(&h);
	return rc;
}
