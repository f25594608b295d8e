/*
 * cache_cmd.c — `shmstat cache`: read and edit the segment's TTL cache.
 * One function per subcommand; each output format is one function.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmstat.h"
#include "shmstat_i.h"
#include "tools_i.h"

const char usage_cache[] =
	"usage: shmstat [-n NAME] cache SUBCOMMAND [ARGS]\n"
	"\n"
	"Read and edit the segment's TTL cache.\n"
	"  get KEY [-r|--raw] print the value alone and a newline (-r: its bytes\n"
	"                     alone, no newline: a -x value back byte for\n"
	"                     byte); exit 1 on a miss\n"
	"  set KEY VALUE [--ex SECONDS | --px MS | --ttl TIME] [--nx|--xx]\n"
	"  set KEY -x|--stdin [...]\n"
	"                     store VALUE (-x: all of stdin's bytes, as they\n"
	"                     are; for values too large for an argument, or\n"
	"                     binary; more than the segment's maximum value:\n"
	"                     exit 3) under KEY; expire after SECONDS or MS\n"
	"                     (whole numbers, as redis-cli's SET EX and PX), or\n"
	"                     TIME (250ms, 1.5s, 2m, 1h; a bare number is\n"
	"                     seconds; 0: never; above 0 but below 1 ms: 1 ms);\n"
	"                     default: never; --nx: only if\n"
	"                     absent, --xx: only if present (exit 1 when not)\n"
	"  expire KEY (--ex SECONDS | --px MS | --ttl TIME)\n"
	"                     give a present key a new TTL from now (--ttl 0:\n"
	"                     never expires); exit 1 when absent\n"
	"  del KEY            remove KEY; exit 1 when it was absent\n"
	"  ttl KEY            remaining milliseconds, -1 for no TTL; exit 1 when\n"
	"                     absent\n"
	"  keys [GLOB]        keys matching GLOB (fnmatch syntax; default all),\n"
	"                     one a line; bytes outside printable ASCII and '\\'\n"
	"                     are written as \\xHH (GLOB itself is raw bytes);\n"
	"                     exit 1 when GLOB matched none\n"
	"  clear GLOB         remove the keys matching GLOB; print how many\n"
	"                     (0: exit 1)\n"
	"  flush              remove every key; print how many\n"
	"  stats [-j]         hits, misses, hit rate, sets, deletes, evictions,\n"
	"                     expirations, errors, entries, bytes used and free,\n"
	"                     the largest value the segment takes; -j: as JSON\n"
	"Keys and values are the argument's bytes; '--' ends the options.\n"
	"-e (--escaped), with get, set, expire, del and ttl: KEY is written as\n"
	"keys prints it, \\xHH for a byte and \\\\ for a backslash (a key with\n"
	"a newline or a NUL byte can be named so).\n"
	"get, set, expire, del, clear and flush need write access to the\n"
	"segment (a get marks the entry used and counts the hit or miss);\n"
	"stats, keys and ttl only read.\n"
	"\n" TOOL_EXIT_HELP;

static int lib_err(shmstat_t *h, int rc)
{
	/* The library's reasons name the cache already ("cache value of
	 * ...", "cache stripe ..."): not "cache: cache ...". */
	const char *why = shmstat_errstr(h);
	tool_err(strncmp(why, "cache", 5) == 0 ? "%s" : "cache: %s", why);
	return tool_status(rc);
}

static int usage_err(const char *fmt, const char *arg)
{
	fprintf(stderr, "shmstat: cache: ");
	fprintf(stderr, fmt, arg);
	fputs("\n(see 'shmstat cache --help')\n", stderr);
	return TOOL_USAGE;
}

/* --ex SECONDS, --px MS (as redis-cli's SET EX and PX: whole, at least
 * 1) and --ttl TIME (shm/parse.c's duration; 0: never), also as --opt=V. */
static bool ttl_opt(const char *s)
{
	static const char *const opts[] = { "--ex", "--px", "--ttl" };
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(opts[i]);
		if (strncmp(s, opts[i], n) == 0 && (s[n] == '\0' || s[n] == '='))
			return true;
	}
	return false;
}

static int ttl_parse(const char *opt, const char *v, uint64_t *ms)
{
	/* The cache's clock keeps milliseconds below 2^63 ns: about 292
	 * years, 9223372036 seconds. */
	const uint64_t max_ms = UINT64_MAX / 2 / 1000000u;
	uint64_t x;
	int rc;
	char msg[160];

	/* "--nx" after "--ttl" is a missing value, "-5" a negative one. */
	if (!*v || (v[0] == '-' && !(v[1] >= '0' && v[1] <= '9') && v[1] != '.'))
		return usage_err("%s needs a value", opt);
	if (*v == '-')
		return usage_err(strncmp(opt, "--ttl", 5) == 0
					 ? "%s: a TTL cannot be negative (0 or "
					   "no option: never expires)"
					 : "%s: a TTL cannot be negative (no "
					   "option: never expires)",
				 opt);
	if (strncmp(opt, "--ex", 4) == 0) {
		if ((rc = shmstat__parse_u64(v, 1, max_ms / 1000, &x)) == 0) {
			*ms = x * 1000;
			return 0;
		}
		snprintf(msg, sizeof(msg), "--ex %%s %s", rc == SHMSTAT_PARSE_RANGE
			 ? "is out of range: 1 to 9223372036 seconds"
			 : "is not whole seconds (a decimal number, at least 1)");
		return usage_err(msg, v);
	}
	if (strncmp(opt, "--px", 4) == 0) {
		if ((rc = shmstat__parse_u64(v, 1, max_ms, &x)) == 0) {
			*ms = x;
			return 0;
		}
		snprintf(msg, sizeof(msg), "--px %%s %s", rc == SHMSTAT_PARSE_RANGE
			 ? "is out of range: 1 to 9223372036854 milliseconds"
			 : "is not whole milliseconds (a decimal number, at "
			   "least 1)");
		return usage_err(msg, v);
	}
	if ((rc = shmstat__parse_duration(v, 0, max_ms * 1000000u, &x)) == 0) {
		*ms = x / 1000000u;
		/* A TTL below a millisecond is not "never": nor is one
		 * below the nanosecond the parser keeps (0.5ns parses as
		 * 0; only a TIME whose every digit is 0 means never). */
		if (!*ms && (x || strpbrk(v, "123456789")))
			*ms = 1;
		return 0;
	}
	if (rc == SHMSTAT_PARSE_RANGE)
		return usage_err("--ttl %s is out of range (at most 9223372036s, "
				 "about 292 years; 0: never)",
				 v);
	return usage_err("--ttl %s is not a TIME: it needs "
			 SHMSTAT_DURATION_SYNTAX, v);
}

/* Split args into options (known flags) and positionals. */
struct args {
	const char *pos[4];
	int npos;
	uint64_t ttl;
	bool has_ttl;
	int mode;
	bool json;
	bool from_stdin; /* set: the value is stdin's bytes */
	bool raw;        /* get: no newline after the value */
	bool escaped;    /* KEY in keys' \xHH form */
};

static int parse(int argc, char **argv, bool set_opts, bool j_opt,
		 bool raw_opt, struct args *a)
{
	bool opts = true;

	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		if (opts && strcmp(s, "--") == 0) {
			opts = false;
		} else if (opts && set_opts && ttl_opt(s)) {
			const char *v = strchr(s, '=');
			if (v)
				v++;
			else if (i + 1 < argc)
				v = argv[++i];
			if (a->has_ttl)
				return usage_err("%s: a TTL is given once, by "
						 "one of --ex, --px and --ttl",
						 s);
			if (ttl_parse(s, v ? v : "", &a->ttl) != 0)
				return TOOL_USAGE;
			a->has_ttl = true;
		} else if (opts && set_opts && strcmp(s, "--nx") == 0) {
			if (a->mode == SHMSTAT_CACHE_XX)
				return usage_err("%s: --nx and --xx exclude "
						 "each other",
						 "set");
			a->mode = SHMSTAT_CACHE_NX;
		} else if (opts && set_opts && strcmp(s, "--xx") == 0) {
			if (a->mode == SHMSTAT_CACHE_NX)
				return usage_err("%s: --nx and --xx exclude "
						 "each other",
						 "set");
			a->mode = SHMSTAT_CACHE_XX;
		} else if (opts && set_opts &&
			   (strcmp(s, "-x") == 0 || strcmp(s, "--stdin") == 0)) {
			a->from_stdin = true;
		} else if (opts && j_opt && strcmp(s, "-j") == 0) {
			a->json = true;
		} else if (opts && raw_opt &&
			   (strcmp(s, "-r") == 0 || strcmp(s, "--raw") == 0)) {
			a->raw = true;
		} else if (opts && (strcmp(s, "-e") == 0 ||
				    strcmp(s, "--escaped") == 0)) {
			a->escaped = true;
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

/* KEY in print_key's form (\xHH, \\) back to its bytes, in place (the
 * bytes never grow): its length, or -1 for a backslash of any other kind. */
static long unescape_key(char *k)
{
	size_t o = 0;

	for (size_t i = 0; k[i]; i++) {
		if (k[i] != '\\') {
			k[o++] = k[i];
			continue;
		}
		if (k[i + 1] == '\\') {
			k[o++] = '\\';
			i++;
		} else if (k[i + 1] == 'x' && isxdigit((unsigned char)k[i + 2]) &&
			   isxdigit((unsigned char)k[i + 3])) {
			char hex[3] = { k[i + 2], k[i + 3], 0 };
			k[o++] = (char)strtol(hex, NULL, 16);
			i += 3;
		} else {
			return -1;
		}
	}
	return (long)o;
}

static int print_key_cb(const void *key, size_t klen, void *priv)
{
	(*(uint64_t *)priv)++;
	print_key(key, klen);
	return 0;
}

static int cmd_get(shmstat_t *h, const char *key, size_t klen, bool raw)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int rc = SHMSTAT_ERANGE;

	/* A value that grew between two looks is looked at again (a few
	 * times: each look sizes the buffer for the value it saw). */
	for (int tries = 0; buf && rc == SHMSTAT_ERANGE && tries < 8; tries++) {
		rc = shmstat_cache_get(h, key, klen, buf, cap, &n);
		if (rc == SHMSTAT_ERANGE) {
			char *nb = realloc(buf, n);
			if (!nb)
				free(buf);
			buf = nb;
			cap = n;
		}
	}
	if (!buf) {
		tool_err("cache: get: out of memory for a value of %zu bytes",
			 n);
		return TOOL_FAILED;
	}
	if (rc == 0) {
		fwrite(buf, 1, n, stdout);
		if (!raw)
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
	bool set_opts, j_opt, raw_opt;
	bool one_key; /* its first positional is one KEY (-e applies) */
};

static const struct sub subs[] = {
	/* name, positionals min and max, options: TTL and NX/XX, -j, -r;
	 * a KEY (not a GLOB) */
	{ "get", 1, 1, false, false, true, true },
	{ "set", 1, 2, true, false, false, true },
	{ "expire", 1, 1, true, false, false, true },
	{ "del", 1, 1, false, false, false, true },
	{ "ttl", 1, 1, false, false, false, true },
	{ "keys", 0, 1, false, false, false, false },
	{ "clear", 1, 1, false, false, false, false },
	{ "flush", 0, 0, false, false, false, false },
	{ "stats", 0, 0, false, true, false, false },
};

/* stdin's bytes, read up to one byte past max (the segment's largest
 * value): an endless or oversized stdin is refused once that byte comes,
 * not after it has all been buffered. */
static int read_stdin(uint64_t max, char **out, size_t *len)
{
	/* cap never exceeds max + 1, so a full buffer is a value too big. */
	size_t cap = max + 1 < 65536 ? (size_t)(max + 1) : 65536, n = 0;
	char *buf = malloc(cap);

	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, stdin);
		n += got;
		if (n > max) {
			free(buf);
			tool_err("cache: set: stdin holds more than the "
				 "segment's maximum value of %llu bytes",
				 (unsigned long long)max);
			return TOOL_FAILED;
		}
		if (got == 0)
			break;
		if (n == cap) {
			/* No more than the one byte past max can come. */
			size_t ncap = (uint64_t)cap * 2 > max + 1
					      ? (size_t)(max + 1)
					      : cap * 2;
			char *nb = realloc(buf, ncap);
			if (!nb)
				free(buf);
			buf = nb;
			cap = ncap;
		}
	}
	if (!buf) {
		tool_err("cache: set: out of memory reading stdin");
		return TOOL_FAILED;
	}
	if (ferror(stdin)) {
		tool_err("cache: set: reading stdin: %s", strerror(errno));
		free(buf);
		return TOOL_FAILED;
	}
	*out = buf;
	*len = n;
	return 0;
}

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
	if ((rc = parse(argc - 2, argv + 2, sub->set_opts, sub->j_opt,
			sub->raw_opt, &a)))
		return rc;
	if (a.npos < sub->min || a.npos > sub->max)
		return usage_err("%s: wrong number of arguments", sub->name);
	if (strcmp(sub->name, "set") == 0 && a.npos != 2 - a.from_stdin)
		return usage_err("%s", a.from_stdin
					       ? "set: with -x (--stdin) the value "
						 "is stdin's: give KEY alone"
					       : "set: wrong number of arguments "
						 "(KEY VALUE, or KEY -x)");
	if (a.escaped && !sub->one_key)
		return usage_err("%s: -e names one KEY: it goes with get, set, "
				 "expire, del and ttl (a GLOB has its own \\ "
				 "escapes; ? matches any byte)",
				 sub->name);
	if (strcmp(sub->name, "expire") == 0 && a.from_stdin)
		return usage_err("%s", "expire: unknown option '-x'");
	if (strcmp(sub->name, "expire") == 0 && (a.mode || !a.has_ttl))
		return usage_err("%s: takes one of --ex, --px and --ttl, and "
				 "no --nx or --xx",
				 "expire");
	/* Read and write, even for get: a get marks the entry used and
	 * counts the hit or miss in the segment. stats, keys and ttl only
	 * read, so they attach read-only (they work where the mode lets this
	 * user read, 0640 for a group). A permission error names the
	 * segment, its owner and mode, as every command's does. */
	bool inspect = strcmp(sub->name, "stats") == 0 ||
		       strcmp(sub->name, "keys") == 0 ||
		       strcmp(sub->name, "ttl") == 0;
	if ((rc = tool_attach(seg, inspect, &h)))
		return rc;
	char *kbuf = NULL;
	const char *k = a.npos ? a.pos[0] : NULL;
	size_t kl = k ? strlen(k) : 0;
	uint64_t n = 0;
	int64_t ttl;
	if (a.escaped && k) {
		long l = (kbuf = strdup(k)) ? unescape_key(kbuf) : -2;
		if (l < 0) {
			free(kbuf);
			shmstat_close(&h);
			return l == -2 ? TOOL_FAILED
				       : usage_err("-e: '%s' has a backslash "
						   "that is not \\xHH or \\\\",
						   k);
		}
		k = kbuf;
		kl = (size_t)l;
	}
	if (strcmp(sub->name, "get") == 0) {
		rc = cmd_get(h, k, kl, a.raw);
	} else if (strcmp(sub->name, "set") == 0) {
		char *buf = NULL;
		size_t len = 0;
		const char *v = a.pos[1];
		if (a.from_stdin) {
			shmstat_cache_stats_t cs;
			if ((rc = shmstat_cache_stats(h, &cs)) < 0) {
				rc = lib_err(h, rc);
				shmstat_close(&h);
				return rc;
			}
			if ((rc = read_stdin(cs.max_value, &buf, &len)) != 0) {
				shmstat_close(&h);
				return rc;
			}
			v = buf;
		} else {
			len = strlen(v);
		}
		rc = shmstat_cache_set(h, k, kl, v, len, a.ttl, a.mode);
		free(buf);
		if (rc == SHMSTAT_EKEYEXISTS || rc == SHMSTAT_ENOTFOUND) {
			tool_err("cache: set: %s", rc == SHMSTAT_EKEYEXISTS
							   ? "key exists (--nx)"
							   : "key is absent (--xx)");
			rc = TOOL_NOTFOUND;
		} else {
			rc = rc < 0 ? lib_err(h, rc) : 0;
		}
	} else if (strcmp(sub->name, "expire") == 0) {
		rc = shmstat_cache_expire(h, k, kl, a.ttl);
		rc = rc == SHMSTAT_ENOTFOUND ? TOOL_NOTFOUND
		     : rc < 0		    ? lib_err(h, rc)
					    : 0;
	} else if (strcmp(sub->name, "del") == 0) {
		rc = shmstat_cache_delete(h, k, kl);
		rc = rc == SHMSTAT_ENOTFOUND ? 1 : rc < 0 ? lib_err(h, rc) : 0;
	} else if (strcmp(sub->name, "ttl") == 0) {
		rc = shmstat_cache_ttl(h, k, kl, &ttl);
		if (rc == 0)
			printf("%" PRId64 "\n", ttl);
		rc = rc == SHMSTAT_ENOTFOUND ? 1 : rc < 0 ? lib_err(h, rc) : 0;
	} else if (strcmp(sub->name, "keys") == 0) {
		rc = shmstat_cache_iter(h, k, print_key_cb, &n);
		/* A GLOB that matched nothing: exit 1 (no GLOB: 0). */
		rc = rc < 0 ? lib_err(h, rc) : k && n == 0 ? TOOL_NOTFOUND : 0;
	} else if (strcmp(sub->name, "clear") == 0 ||
		   strcmp(sub->name, "flush") == 0) {
		rc = k ? shmstat_cache_clear(h, k, &n) : shmstat_cache_flush(h, &n);
		printf("%" PRIu64 "\n", n);
		rc = rc < 0 ? lib_err(h, rc) : k && n == 0 ? TOOL_NOTFOUND : 0;
	} else {
		shmstat_cache_stats_t st;
		rc = shmstat_cache_stats(h, &st);
		if (rc == 0)
			(a.json ? stats_json : stats_text)(&st);
		rc = rc < 0 ? lib_err(h, rc) : 0;
	}
	free(kbuf);
	shmstat_close(&h);
	return rc;
}
