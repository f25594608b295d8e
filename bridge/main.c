/*
 * shmstat-bridge — one daemon per segment: every interval it pushes what
 * changed to Redis (push.c) and writes the cluster-wide values back into
 * the segment. Workers never wait on it:
 * when Redis is down the engine works as before and the bridge catches up
 * when Redis returns.
 *
 * This file: options (command line, then $SHMSTAT_BRIDGE_OPTS before
 * them), the password file, the pidfile, waiting for the segment,
 * readiness for systemd, signals, the main loop with capped exponential
 * backoff and jitter, and the status in the segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#else
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#endif

#include "bridge_i.h"
#include "shmstat_i.h"
#include "sync_i.h"

#define EXIT_USAGE 1
#define EXIT_SEGMENT 2
#define EXIT_REFUSED 3
#define EXIT_MOVED 4 /* the segment's name went to another segment */
#define EXIT_NOPUSH 5 /* --once did not push (the log says why) */

volatile sig_atomic_t bridge_stop;

/* The options parsed: $SHMSTAT_BRIDGE_OPTS's words, then argv's. Global,
 * so it stays reachable for as long as the options point into it. */
char **bridge_argv;

static bool wait_segment;        /* --wait-segment */
static uint64_t wait_segment_ms; /* UINT64_MAX: for ever */

/* Readiness and status for systemd (Type=notify): libsystemd's
 * sd_notify, or without it the same datagram to $NOTIFY_SOCKET sent here
 * (a path, or '@' for an abstract name). Nothing without $NOTIFY_SOCKET. */
static void notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, msg);
#else
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t n;

	if (!path || (path[0] != '/' && path[0] != '@') ||
	    (n = strlen(path)) >= sizeof(a.sun_path))
		return;
	memcpy(a.sun_path, path, n);
	if (path[0] == '@')
		a.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&a,
	       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	close(fd);
#endif
}

static const char usage[] =
	"usage: shmstat-bridge [-n NAME] [options]\n"
	"\n"
	"Push the counters of a shmstat segment to Redis every interval and\n"
	"write the cluster-wide values back into the segment.\n"
	"\n"
	"options:\n"
	"  -n NAME                segment (default: $SHMSTAT_NAME, else "
	"'default')\n"
	"  -u, --redis-url URL    redis://[user:password@]host:port/db,\n"
	"                         rediss://... (TLS),\n"
	"                         redis+sentinel://[user:password@]host:port\n"
	"                         [,host:port...]/MASTER[/db] (Sentinel; its\n"
	"                         own AUTH from $REDIS_SENTINEL_PASSWORD and\n"
	"                         $REDIS_SENTINEL_USERNAME),\n"
	"                         redis://host:port[,host:port...] (any\n"
	"                         nodes of a Redis Cluster: found by itself)\n"
	"                         or unix:///path/to/socket[?db=N] (default:\n"
	"                         $REDIS_URL, else $REDIS_HOST, $REDIS_PORT,\n"
	"                         $REDIS_DB, else 127.0.0.1:6379/0; password\n"
	"                         and ACL user also from $REDIS_PASSWORD and\n"
	"                         $REDIS_USERNAME; a password here is\n"
	"                         visible to local users: prefer those)\n"
	"  --password-file FILE   the Redis password, one line, mode 0600\n"
	"                         (default: $REDIS_PASSWORD_FILE)\n"
	"  -i, --interval TIME    push interval (default 1s; 10ms at least)\n"
	"  --connect-timeout TIME connecting to Redis (default 2s)\n"
	"  --command-timeout TIME every command (default 2s)\n"
	"  --backoff-max TIME     longest wait between reconnects (default "
	"5s)\n"
	"  --key-prefix STR       prepended to every counter's key (default "
	"none)\n"
	"  --meta-prefix STR      prefix of the bridge's bookkeeping keys\n"
	"                         (default '_shmstat:')\n"
	"  --host-id HEX          host part of the source id (default: the\n"
	"                         segment's, from /etc/machine-id)\n"
	"  --owner-ttl TIME       lease on the source in Redis (default:\n"
	"                         3 intervals + the command timeout, at least "
	"2s)\n"
	"  --gauge-expiry TIME    withdraw the gauges of a source whose lease\n"
	"                         ended that long ago (default 300s)\n"
	"  --pidfile PATH         default $RUNTIME_DIRECTORY, else\n"
	"                         $XDG_RUNTIME_DIR, else /run/shmstat:\n"
	"                         shmstat-bridge.NAME.pid (never follows\n"
	"                         a symbolic link)\n"
	"  --wait-segment[=TIME]  wait for the segment to be created (for\n"
	"                         ever, or TIME) instead of exiting 2\n"
	"  --once                 push once and exit (0 when the push "
	"succeeded,\n"
	"                         5 when it could not)\n"
	"  --http [HOST:]PORT     serve GET /metrics, /health and /stats on\n"
	"                         HOST (default 127.0.0.1; [::1] for IPv6);\n"
	"                         off by default\n"
	"  --tls-ca-file FILE     CA certificates (PEM) that sign the server's\n"
	"                         certificate (default: the system's store)\n"
	"  --tls-ca-dir DIR       the same, as an OpenSSL hashed directory\n"
	"  --tls-cert FILE        client certificate (PEM chain)\n"
	"  --tls-key FILE         its private key (default: in --tls-cert)\n"
	"  --tls-server-name NAME name the certificate must hold (and SNI;\n"
	"                         default: the host of the URL)\n"
	"  --tls-no-verify        do not check the server's certificate\n"
	"  --partition-by-slot    keep the bookkeeping per hash slot, as on a\n"
	"                         Redis Cluster (implied there), on a\n"
	"                         standalone Redis too\n"
	"  -v, -q                 more, less logging (levels: error, "
	"warning,\n"
	"                         info, debug; default info)\n"
	"  -h, --help             this help;  -V  the version\n"
	"\n"
	"TIME is " SHMSTAT_DURATION_SYNTAX ".\n"
	"$SHMSTAT_BRIDGE_OPTS: options read before the command line's\n"
	"(split at blanks; '...' and \"...\" quote).\n"
	"SIGTERM and SIGINT push once more and exit 0.\n"
	"exit status: 0 stopped by a signal (or --once pushed), 1 usage or\n"
	"configuration error (also one found at connect: a database other\n"
	"than 0 on a Redis Cluster), 2 segment missing or invalid, 3 refused\n"
	"(another bridge serves the segment, or the options would count its\n"
	"totals twice: see the message), 4 the segment was removed or\n"
	"recreated under it (pushed a last time; start it again for the new\n"
	"segment), 5 --once could not push (Redis unreachable, refused the\n"
	"login or the push; the log says why).\n";

static void on_signal(int sig)
{
	(void)sig;
	bridge_stop = 1;
}

/* A TIME option in the tool's one syntax (shmstat__parse_duration), as
 * whole milliseconds from min to a day. */
static bool parse_time(const char *s, uint64_t min, uint64_t *out)
{
	uint64_t ns;

	if (shmstat__parse_duration(s, min * 1000000u, 86400000000000ull,
				    &ns) != SHMSTAT_PARSE_OK)
		return false;
	*out = ns / 1000000u;
	return true;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	/* A signal cuts it short (no SA_RESTART): the loop checks the flag. */
	nanosleep(&ts, NULL);
}

static void status_write(struct bridge *b)
{
	uint64_t now = shmstat__now_realtime_ns();

	b->status.heartbeat_ns = now;
	b->status.lag_ms = b->status.pending && b->dirty_since_ns &&
				   now > b->dirty_since_ns
			   ? (now - b->dirty_since_ns) / 1000000u
			   : 0;
	shmstat__sync_status_write(b->h, &b->status);
}

static uint64_t backoff(const struct bconf *cf, unsigned attempt)
{
	uint64_t d = cf->backoff_min_ms;

	for (unsigned i = 0; i < attempt && d < cf->backoff_max_ms; i++)
		d *= 2;
	if (d > cf->backoff_max_ms)
		d = cf->backoff_max_ms;
	/* Jitter: half fixed, half random, so hosts do not retry in step. */
	return d / 2 + (uint64_t)random() % (d / 2 + 1);
}

enum {
	OPT_CONNECT_TIMEOUT = 256,
	OPT_COMMAND_TIMEOUT,
	OPT_BACKOFF_MAX,
	OPT_KEY_PREFIX,
	OPT_META_PREFIX,
	OPT_HOST_ID,
	OPT_OWNER_TTL,
	OPT_GAUGE_EXPIRY,
	OPT_PIDFILE,
	OPT_ONCE,
	OPT_HTTP,
	OPT_TLS_CA_FILE,
	OPT_TLS_CA_DIR,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_SERVER_NAME,
	OPT_TLS_NO_VERIFY,
	OPT_PASSWORD_FILE,
	OPT_WAIT_SEGMENT,
	OPT_PARTITION_BY_SLOT,
};

/* $SHMSTAT_BRIDGE_OPTS split into words: blanks separate, '...' and
 * "..." quote (\\ escapes in "..."). -1 on an unclosed quote. */
static int split_opts(const char *s, char ***out, int *n)
{
	char **v = NULL, *w = malloc(strlen(s) + 1);
	int count = 0;

	if (!w)
		return -1;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (!*s)
			break;
		size_t o = 0;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
			char q = *s;
			if (q == '\'' || q == '"') {
				s++;
				while (*s && *s != q) {
					if (q == '"' && *s == '\\' && s[1])
						s++;
					w[o++] = *s++;
				}
				if (*s != q) {
					free(w);
					free(v);
					return -1;
				}
				s++;
			} else {
				w[o++] = *s++;
			}
		}
		w[o] = '\0';
		char **nv = realloc(v, sizeof(*v) * (size_t)(count + 1));
		char *word = strdup(w);
		if (!nv || !word) {
			free(word);
			free(nv ? nv : v);
			free(w);
			return -1;
		}
		v = nv;
		v[count++] = word;
	}
	free(w);
	*out = v;
	*n = count;
	return 0;
}

static int parse_args(struct bconf *cf, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "redis-url", required_argument, NULL, 'u' },
		{ "interval", required_argument, NULL, 'i' },
		{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
		{ "command-timeout", required_argument, NULL, OPT_COMMAND_TIMEOUT },
		{ "backoff-max", required_argument, NULL, OPT_BACKOFF_MAX },
		{ "key-prefix", required_argument, NULL, OPT_KEY_PREFIX },
		{ "meta-prefix", required_argument, NULL, OPT_META_PREFIX },
		{ "host-id", required_argument, NULL, OPT_HOST_ID },
		{ "owner-ttl", required_argument, NULL, OPT_OWNER_TTL },
		{ "gauge-expiry", required_argument, NULL, OPT_GAUGE_EXPIRY },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "http", required_argument, NULL, OPT_HTTP },
		{ "tls-ca-file", required_argument, NULL, OPT_TLS_CA_FILE },
		{ "tls-ca-dir", required_argument, NULL, OPT_TLS_CA_DIR },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "tls-server-name", required_argument, NULL, OPT_TLS_SERVER_NAME },
		{ "tls-no-verify", no_argument, NULL, OPT_TLS_NO_VERIFY },
		{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
		{ "wait-segment", optional_argument, NULL, OPT_WAIT_SEGMENT },
		{ "partition-by-slot", no_argument, NULL, OPT_PARTITION_BY_SLOT },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	char err[REDISCONF_ERR_LEN];
	const char *url = NULL, *pwfile = getenv("REDIS_PASSWORD_FILE");
	char *url_in_argv = NULL;
	int c, nenv = 0;
	char **env = NULL;
	const char *opts = getenv("SHMSTAT_BRIDGE_OPTS");

	bconf_defaults(cf);
	cf->segment = getenv("SHMSTAT_NAME");
	if (!cf->segment || !*cf->segment)
		cf->segment = "default";
	if (pwfile && !*pwfile)
		pwfile = NULL;
	/* The environment's options first, the command line's after them
	 * (so they win). The words live as long as the process. */
	if (opts && split_opts(opts, &env, &nenv) < 0) {
		blog(SHMSTAT_LOG_ERROR,
		     "SHMSTAT_BRIDGE_OPTS: unclosed quote (or out of memory)");
		return EXIT_USAGE;
	}
	int all_argc = argc + nenv;
	char **all = calloc((size_t)all_argc + 1, sizeof(*all));
	bridge_argv = all; /* kept: the options point into its words */
	if (!all)
		return EXIT_USAGE;
	all[0] = argv[0];
	for (int i = 0; i < nenv; i++)
		all[1 + i] = env[i];
	for (int i = 1; i < argc; i++)
		all[nenv + i] = argv[i];
	free(env);
	int envarg_end = 1 + nenv; /* all[1..envarg_end) came from there */
	argc = all_argc;
	argv = all;

	while ((c = getopt_long(argc, argv, "n:u:i:vqhV", lo, NULL)) != -1) {
		uint64_t *t = NULL, min = 1;
		switch (c) {
		case 'n':
			cf->segment = optarg;
			break;
		case 'u':
			url = optarg;
			/* getopt has moved past the word that holds it */
			url_in_argv = optind - 1 >= envarg_end ? optarg : NULL;
			break;
		case 'i':
			t = &cf->interval_ms;
			min = 10;
			break;
		case OPT_CONNECT_TIMEOUT:
			t = &cf->connect_timeout_ms;
			break;
		case OPT_COMMAND_TIMEOUT:
			t = &cf->command_timeout_ms;
			break;
		case OPT_BACKOFF_MAX:
			t = &cf->backoff_max_ms;
			break;
		case OPT_OWNER_TTL:
			t = &cf->owner_ttl_ms;
			break;
		case OPT_GAUGE_EXPIRY:
			t = &cf->gauge_expiry_ms;
			break;
		case OPT_KEY_PREFIX:
			cf->key_prefix = optarg;
			break;
		case OPT_META_PREFIX:
			if (!*optarg) {
				blog(SHMSTAT_LOG_ERROR,
				     "--meta-prefix must not be empty");
				return EXIT_USAGE;
			}
			cf->meta_prefix = optarg;
			break;
		case OPT_HOST_ID: {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 16);
			if (errno || *end || !*optarg || v == 0 ||
			    strlen(optarg) > 16 || *optarg == '-') {
				blog(SHMSTAT_LOG_ERROR,
				     "--host-id must be 1 to 16 hex digits, not "
				     "zero: '%s'",
				     optarg);
				return EXIT_USAGE;
			}
			cf->host_id = v;
			cf->host_id_set = true;
			break;
		}
		case OPT_PIDFILE:
			cf->pidfile = optarg;
			break;
		case OPT_ONCE:
			cf->once = true;
			break;
		case OPT_HTTP:
			cf->http = optarg;
			break;
		case OPT_TLS_CA_FILE:
			cf->tls_ca_file = optarg;
			break;
		case OPT_TLS_CA_DIR:
			cf->tls_ca_dir = optarg;
			break;
		case OPT_TLS_CERT:
			cf->tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			cf->tls_key = optarg;
			break;
		case OPT_TLS_SERVER_NAME:
			cf->tls_server_name = optarg;
			break;
		case OPT_TLS_NO_VERIFY:
			cf->tls_no_verify = true;
			break;
		case OPT_PARTITION_BY_SLOT:
			cf->partition_by_slot = true;
			break;
		case OPT_PASSWORD_FILE:
			pwfile = optarg;
			break;
		case OPT_WAIT_SEGMENT:
			wait_segment = true;
			wait_segment_ms = UINT64_MAX; /* for ever */
			if (optarg)
				t = &wait_segment_ms;
			break;
		case 'v':
			if (log_level < SHMSTAT_LOG_DEBUG)
				log_level = log_level == SHMSTAT_LOG_INFO
						    ? SHMSTAT_LOG_DEBUG
						    : log_level + 1;
			break;
		case 'q':
			log_level = log_level == SHMSTAT_LOG_DEBUG
					    ? SHMSTAT_LOG_INFO
				    : log_level == SHMSTAT_LOG_INFO
					    ? SHMSTAT_LOG_WARNING
					    : SHMSTAT_LOG_ERROR;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		case 'V':
			printf("shmstat-bridge %s\n", SHMSTAT_VERSION_STRING);
			exit(0);
		default:
			/* getopt said what is wrong; the options are in
			 * --help, not repeated into a journal. */
			blog(SHMSTAT_LOG_ERROR, "see 'shmstat-bridge --help'");
			return EXIT_USAGE;
		}
		if (t && !parse_time(optarg, min, t)) {
			blog(SHMSTAT_LOG_ERROR,
			     "bad time '%s' for --%s (" SHMSTAT_DURATION_SYNTAX
			     "; at least %" PRIu64 " ms)",
			     optarg,
			     c == 'i' ? "interval"
			     : c == OPT_WAIT_SEGMENT ? "wait-segment"
						     : "timeout",
			     min);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		/* Not echoed: a password with a blank, unquoted, splits into
		 * words like this one. */
		blog(SHMSTAT_LOG_ERROR,
		     "unexpected argument (word %d): every option starts with "
		     "'-'; quote a value that holds blanks",
		     optind);
		return EXIT_USAGE;
	}
	if (shmstat_name_check(cf->segment) < 0) {
		blog(SHMSTAT_LOG_ERROR,
		     "invalid segment name '%s': use 1 to 64 of "
		     "[A-Za-z0-9_.-], not '..'",
		     cf->segment);
		return EXIT_USAGE;
	}
	if (redis_conf_env(&cf->redis, err, sizeof(err)) < 0 ||
	    (url && redis_conf_url(&cf->redis, url, err, sizeof(err)) < 0)) {
		blog(SHMSTAT_LOG_ERROR, "%s", err);
		return EXIT_USAGE;
	}
	if (url_in_argv && redis_url_hide_password(url_in_argv))
		blog(SHMSTAT_LOG_WARNING,
		     "the password in -u was visible to every local user "
		     "(ps, /proc/PID/cmdline) until now and has been removed "
		     "from the process title: give it in $REDIS_PASSWORD, "
		     "$REDIS_PASSWORD_FILE or --password-file instead");
	if (pwfile &&
	    redis_conf_password_file(&cf->redis, pwfile, err, sizeof(err)) < 0) {
		blog(SHMSTAT_LOG_ERROR, "%s", err);
		return EXIT_USAGE;
	}
	redis_conf_addr(&cf->redis, cf->addr, sizeof(cf->addr));
	if (!cf->redis.tls &&
	    (cf->tls_ca_file || cf->tls_ca_dir || cf->tls_cert || cf->tls_key ||
	     cf->tls_server_name || cf->tls_no_verify)) {
		blog(SHMSTAT_LOG_ERROR,
		     "--tls-* options need a rediss:// Redis URL (Redis %s is "
		     "not TLS)",
		     cf->addr);
		return EXIT_USAGE;
	}
	if (cf->tls_key && !cf->tls_cert) {
		blog(SHMSTAT_LOG_ERROR, "--tls-key needs --tls-cert");
		return EXIT_USAGE;
	}
	if (cf->tls_no_verify)
		blog(SHMSTAT_LOG_WARNING,
		     "--tls-no-verify: the Redis server's certificate is not "
		     "checked; anyone on the path can read and change what "
		     "the bridge sends");
	if (cf->backoff_max_ms < cf->backoff_min_ms)
		cf->backoff_max_ms = cf->backoff_min_ms;
	if (!cf->owner_ttl_ms) {
		cf->owner_ttl_ms = 3 * cf->interval_ms + cf->command_timeout_ms;
		if (cf->owner_ttl_ms < 2000)
			cf->owner_ttl_ms = 2000;
	}
	return 0;
}

/* The pidfile: opened without following a symbolic link (O_NOFOLLOW, and
 * the directory opened first with O_NOFOLLOW too), a regular file with one
 * link, locked with flock() for as long as the bridge runs: a second
 * bridge for the segment finds it locked. Never in /tmp: $RUNTIME_DIRECTORY
 * (systemd's RuntimeDirectory=), else $XDG_RUNTIME_DIR (a user's own),
 * else /run/shmstat (created 0755 when missing). */
struct pidfile {
	int dirfd, fd;
	char name[NAME_MAX + 1];
};

static int pidfile_take(const struct bconf *cf, struct pidfile *pf,
			char *path, size_t len, int *status)
{
	char dir[PATH_MAX];
	const char *d;

	pf->dirfd = pf->fd = -1;
	*status = EXIT_USAGE;
	if (cf->pidfile) {
		snprintf(path, len, "%s", cf->pidfile);
		const char *slash = strrchr(cf->pidfile, '/');
		if (slash == cf->pidfile)
			snprintf(dir, sizeof(dir), "/");
		else if (slash)
			snprintf(dir, sizeof(dir), "%.*s",
				 (int)(slash - cf->pidfile), cf->pidfile);
		else
			snprintf(dir, sizeof(dir), ".");
		snprintf(pf->name, sizeof(pf->name), "%s",
			 slash ? slash + 1 : cf->pidfile);
		if (!pf->name[0]) {
			blog(SHMSTAT_LOG_ERROR,
			     "--pidfile %s names a directory, not a file",
			     path);
			return -1;
		}
	} else {
		if ((d = getenv("RUNTIME_DIRECTORY")) && *d) {
			/* systemd may give several, ':'-separated */
			snprintf(dir, sizeof(dir), "%.*s", (int)strcspn(d, ":"),
				 d);
		} else if ((d = getenv("XDG_RUNTIME_DIR")) && *d) {
			snprintf(dir, sizeof(dir), "%s", d);
		} else {
			snprintf(dir, sizeof(dir), "/run/shmstat");
			if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
				blog(SHMSTAT_LOG_ERROR,
				     "cannot create %s for the pidfile: %s "
				     "(create it, or give --pidfile PATH or "
				     "$RUNTIME_DIRECTORY)",
				     dir, strerror(errno));
				return -1;
			}
		}
		snprintf(pf->name, sizeof(pf->name), "shmstat-bridge.%s.pid",
			 cf->segment);
		if ((size_t)snprintf(path, len, "%.*s/%s", (int)(len / 2), dir,
				     pf->name) >= len) {
			blog(SHMSTAT_LOG_ERROR, "pidfile path too long");
			return -1;
		}
	}
	pf->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (pf->dirfd < 0) {
		blog(SHMSTAT_LOG_ERROR,
		     "cannot open the pidfile's directory %s: %s%s", dir,
		     strerror(errno),
		     errno == ELOOP || errno == ENOTDIR
			     ? " (a symbolic link is not followed)"
			     : "");
		return -1;
	}
	pf->fd = openat(pf->dirfd, pf->name,
			O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
			0644);
	struct stat st;
	if (pf->fd < 0 || fstat(pf->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1) {
		int e = pf->fd < 0 ? errno : 0;
		blog(SHMSTAT_LOG_ERROR, "cannot use pidfile %s: %s", path,
		     e == ELOOP ? "it is a symbolic link (not followed)"
		     : e	? strerror(e)
			: "not a regular file with one link");
		goto fail;
	}
	if (flock(pf->fd, LOCK_EX | LOCK_NB) < 0) {
		char buf[32] = "";
		ssize_t n = pread(pf->fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		blog(SHMSTAT_LOG_ERROR,
		     "another shmstat-bridge (pid %d) already serves segment "
		     "'%s' (pidfile %s)",
		     atoi(buf), cf->segment, path);
		*status = EXIT_REFUSED;
		goto fail;
	}
	*status = 0;
	return 0;
fail:
	if (pf->fd >= 0)
		close(pf->fd);
	close(pf->dirfd);
	pf->fd = pf->dirfd = -1;
	return -1;
}

static void pidfile_put(struct pidfile *pf)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (ftruncate(pf->fd, 0) < 0 || pwrite(pf->fd, buf, (size_t)n, 0) != n)
		blog(SHMSTAT_LOG_WARNING, "cannot write the pidfile: %s",
		     strerror(errno));
}

static void pidfile_drop(struct pidfile *pf)
{
	if (pf->fd < 0)
		return;
	unlinkat(pf->dirfd, pf->name, 0);
	close(pf->fd);
	close(pf->dirfd);
	pf->fd = pf->dirfd = -1;
}

/* Open the segment; with --wait-segment wait for it to be created
 * (checked every 200 ms; a signal ends the wait). */
static int open_segment(const struct bconf *cf, shmstat_t **h)
{
	uint64_t t0 = shmstat__now_mono_ns();
	bool said = false;

	for (;;) {
		int rc = shmstat_open(cf->segment, NULL, h);
		if (rc == 0) {
			if (said)
				blog(SHMSTAT_LOG_INFO, "segment '%s' is there",
				     cf->segment);
			return 0;
		}
		if (rc != SHMSTAT_ENOENT || !wait_segment) {
			blog(SHMSTAT_LOG_ERROR, "%s", shmstat_errstr(NULL));
			return -1;
		}
		uint64_t waited = (shmstat__now_mono_ns() - t0) / 1000000u;
		if (wait_segment_ms != UINT64_MAX && waited >= wait_segment_ms) {
			blog(SHMSTAT_LOG_ERROR,
			     "segment '%s' still missing after --wait-segment "
			     "%" PRIu64 " ms: %s",
			     cf->segment, wait_segment_ms, shmstat_errstr(NULL));
			return -1;
		}
		if (!said) {
			blog(SHMSTAT_LOG_INFO,
			     "segment '%s' does not exist yet: waiting for it "
			     "(--wait-segment)",
			     cf->segment);
			notify("STATUS=waiting for segment '%s' to be created",
			       cf->segment);
			said = true;
		}
		if (bridge_stop)
			return 1;
		sleep_ms(200);
	}
}

int main(int argc, char **argv)
{
	static struct bconf cf;
	static struct bridge b;
	char pidpath[PATH_MAX];
	int status = 0;
	shmstat_t *h = NULL;
	struct pidfile pfs, *pf = &pfs;

	if ((status = parse_args(&cf, argc, argv)))
		return status;
	if (pidfile_take(&cf, pf, pidpath, sizeof(pidpath), &status) < 0)
		return status;
	pidfile_put(pf);

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* hiredis writes with plain write(): a closed socket must give EPIPE,
	 * not kill us. */
	signal(SIGPIPE, SIG_IGN);

	/* Ready: configured, pidfile taken; the segment may come later
	 * (--wait-segment), so a bridge started before its application
	 * never holds up boot. STATUS= says what it does. */
	notify("READY=1\nMAINPID=%d", (int)getpid());
	int rc = open_segment(&cf, &h);
	if (rc != 0) {
		notify("STOPPING=1");
		pidfile_drop(pf);
		return rc < 0 ? EXIT_SEGMENT : 0;
	}
	if (bridge_init(&b, &cf, h) < 0) {
		status = b.misconfigured ? EXIT_USAGE
			 : b.refused	 ? EXIT_REFUSED
					 : EXIT_SEGMENT;
		goto out;
	}
	if (cf.redis.tls && tls_check(&b) < 0) {
		status = EXIT_USAGE; /* a CA, certificate or key file */
		goto out;
	}
	if (b.status.alive && b.status.bridge_pid != (int32_t)getpid()) {
		blog(SHMSTAT_LOG_ERROR,
		     "another shmstat-bridge (pid %d) already serves segment "
		     "'%s'",
		     b.status.bridge_pid, cf.segment);
		status = EXIT_REFUSED;
		goto out;
	}
	if (cf.http && http_start(cf.segment, cf.http) < 0) {
		status = EXIT_USAGE;
		goto out;
	}
	srandom((unsigned)(getpid() ^ shmstat__now_mono_ns()));

	/* Keep seq_acked and the push counts of the previous bridge: the
	 * sequence is how we notice that Redis lost pushes. */
	b.status.bridge_pid = (int32_t)getpid();
	b.status.bridge_start = shmstat__proc_start(getpid());
	b.status.connected = 0;
	b.status.pending = 0;
	b.status.last_error[0] = '\0';
	snprintf(b.status.redis_addr, sizeof(b.status.redis_addr), "%.127s",
		 cf.addr);
	status_write(&b);
	blog(SHMSTAT_LOG_INFO,
	     "segment '%s', host %s, source %s, Redis %s, interval %" PRIu64
	     " ms",
	     cf.segment, b.host_name, b.source, cf.addr, cf.interval_ms);

	unsigned attempt = 0;
	uint64_t next_connect = 0;
	bool pushed_once = false;
	bool moved = false;
	int shown = -1; /* connected state last told to systemd */
	while (!bridge_stop) {
		uint64_t t0 = shmstat__now_mono_ns();
		uint64_t wait = cf.interval_ms;
		if (bridge_segment_moved(&b)) {
			/* Workers still counting into the old segment are
			 * pushed once more below; the new one is a new source,
			 * for a bridge of its own. */
			blog(SHMSTAT_LOG_WARNING,
			     "segment '%s' was removed or recreated (a new "
			     "source): pushing the old one a last time, then "
			     "exiting with status %d so that a bridge starts on "
			     "the new one",
			     cf.segment, EXIT_MOVED);
			moved = true;
			break;
		}
		if (!b.rc && t0 >= next_connect) {
			/* The backoff restarts only after a good push: a
			 * Redis that accepts connections and then fails every
			 * push is retried with backoff too. */
			if (conn_open(&b) < 0 && b.misconfigured) {
				status = EXIT_USAGE; /* it cannot heal */
				break;
			} else if (!b.rc) {
				uint64_t d = backoff(&cf, attempt++);
				next_connect = t0 + d * 1000000u;
				blog(SHMSTAT_LOG_DEBUG,
				     "reconnecting in %" PRIu64 " ms", d);
			}
		}
		if (b.rc) {
			uint64_t p0 = shmstat__now_mono_ns();
			int pushed = push_all(&b) == 0;
			http_record_push((double)(shmstat__now_mono_ns() - p0) / 1e9,
					 pushed);
			if (pushed) {
				pushed_once = true;
				attempt = 0;
			}
			if (b.refused) {
				status = b.misconfigured ? EXIT_USAGE
							 : EXIT_REFUSED;
				break;
			}
			if (!b.rc) {
				uint64_t d = backoff(&cf, attempt++);
				next_connect = shmstat__now_mono_ns() +
					       d * 1000000u;
			}
		} else {
			push_account(&b);
		}
		status_write(&b);
		if ((int)b.status.connected != shown) {
			shown = b.status.connected;
			notify("STATUS=segment '%s', Redis %s: %s", cf.segment,
			       cf.addr,
			       shown ? "connected, pushing"
				     : "not connected, counts pending (see the "
				       "log)");
		}
		if (cf.once)
			break;
		uint64_t now = shmstat__now_mono_ns();
		if (!b.rc && next_connect > now &&
		    (next_connect - now) / 1000000u < wait)
			wait = (next_connect - now) / 1000000u + 1;
		uint64_t spent = (now - t0) / 1000000u;
		if (spent < wait)
			sleep_ms(wait - spent);
	}
	notify("STOPPING=1");
	if ((bridge_stop || moved) && !b.refused) {
		/* Push once more, so a clean stop leaves Redis up to date,
		 * then take this source's gauges out of the sums. */
		if (!b.rc)
			conn_open(&b);
		if (b.rc && push_all(&b) == 0 && push_withdraw(&b) == 0)
			blog(SHMSTAT_LOG_INFO, "final push done, gauges "
					       "withdrawn; exiting");
		else
			blog(SHMSTAT_LOG_WARNING,
			     "final push failed (%" PRIu64
			     " counters pending; the next bridge pushes them)",
			     b.status.pending);
	}
	if (cf.once && !pushed_once && status == 0)
		status = EXIT_NOPUSH;
	if (moved && status == 0)
		status = EXIT_MOVED;
	conn_close(&b);
	b.status.connected = 0;
	status_write(&b);
out:
	http_stop();
	bridge_fini(&b);
	shmstat_close(&h);
	pidfile_drop(pf);
	return status;
}
