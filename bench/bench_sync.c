/*
 * bench_sync.c — the sync protocol against a local redis-server that the
 * benchmark starts itself (unix socket in a temporary directory, port 0,
 * no persistence):
 *
 *   sync_push_10k_changed        one push of 10,000 changed counters: the
 *                                bridge's own push code, in process; time
 *                                per iteration = one push; Redis' own CPU
 *                                per push (INFO cpu) as redis_cpu_ms_per_push
 *   sync_push_10k_1pct_changed   one push of 10,000 counters of which 100
 *                                changed
 *   sync_push_10k_unchanged      one push of 10,000 counters, none changed
 *                                (the sequence check and the refresh of the
 *                                global values)
 *   sync_push_10k_changed_tcp / _tls
 *                                the same over TCP on 127.0.0.1, and over
 *                                TLS (rediss://, certificates made with
 *                                openssl at start; skipped without it)
 *   sync_push_10k_*_parted       the same in the partitioned layout
 *                                (--partition-by-slot) on the one Redis
 *   sync_push_10k_*_cluster      the same on a real Redis Cluster of three
 *                                masters over TCP on 127.0.0.1 (made by
 *                                redis-cli --cluster create); Redis' CPU
 *                                is the sum of the three
 *   sync_push_1k_changed         one push of 1,000 counters, all changed:
 *                                the reference of sync_steady_100k_1pct
 *   sync_steady_100k_1pct        100,000 counters, 1,000 changed per
 *                                interval while another source changes
 *                                1,000 of its own: Redis' and this
 *                                bridge's CPU per interval
 *   sync_steady_100k_1pct_alone  the same, the other source changing
 *                                nothing
 *   bridge_rss_100k_counters     the daemon's memory at 100,000 counters
 *   baseline_incrby_10k_pipelined  10,000 plain INCRBYs, pipelined: the
 *                                floor the push is compared with
 *   bridge_cpu_1000_counters_1s  shmstat-bridge (the real daemon) at a 1 s
 *                                interval with 1,000 counters all changing:
 *                                its CPU time (wait4 rusage) over a 5 s
 *                                window, as ms of CPU per second
 *   counter_add_bridge_redis_up / _redis_down
 *                                the hot path while a bridge pushes every
 *                                10 ms to a live Redis, and while Redis is
 *                                stopped and the bridge retries
 *
 * The daemon is $SHMSTAT_BRIDGE, else ../bridge/shmstat-bridge next to
 * this binary.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bridge_i.h"
#include "shim.h"
#include "shmstat.h"

#define PUSH_N 10000
#define STEADY_N 100000
#define STEADY_CHANGED 1000
#define CPU_N 1000
#define CPU_WINDOW_S 5
#define BATCH 1000

static struct {
	pid_t pid;
	char dir[128];
	char sock[192];
	char url[224];
	int port, tls_port;    /* TCP and TLS ports on 127.0.0.1 */
	char ca[256];          /* "" when the certificates could not be made */
} rs;

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int port = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* A CA and a server certificate for 127.0.0.1 in rs.dir; rs.ca set. */
static void make_certs(void)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "cd %s && exec >/dev/null 2>&1 && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
		 "-nodes' && openssl req -x509 $K -keyout ca.key -out ca.crt "
		 "-days 2 -subj /CN=bench-ca && openssl req $K -keyout s.key "
		 "-out s.csr -subj /CN=s && echo subjectAltName=IP:127.0.0.1 "
		 "> s.ext && openssl x509 -req -in s.csr -CA ca.crt -CAkey "
		 "ca.key -CAcreateserial -out s.crt -days 2 -extfile s.ext "
		 ">/dev/null 2>&1",
		 rs.dir);
	if (system(cmd) == 0)
		snprintf(rs.ca, sizeof(rs.ca), "%s/ca.crt", rs.dir);
	else
		fprintf(stderr, "bench: no certificates: TLS benchmarks "
				"skipped\n");
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void redis_stop(void)
{
	int st;

	if (!rs.pid)
		return;
	kill(rs.pid, SIGCONT);
	kill(rs.pid, SIGTERM);
	waitpid(rs.pid, &st, 0);
	rs.pid = 0;
	unlink(rs.sock);
}

static void redis_cleanup(void)
{
	char cmd[200];

	redis_stop();
	if (rs.dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rs.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench: could not remove %s\n", rs.dir);
	}
}

static int redis_start(void);

/* A Redis Cluster of CL_N masters on 127.0.0.1 (no replicas), made by
 * redis-cli --cluster create in rs.dir; once per run. */
#define CL_N 3
static struct {
	pid_t pid[CL_N];
	int port[CL_N];
	bool tried;
} cs;

static bool cl_ok(int port)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	bool ok = false;

	if (c && !c->err) {
		redisReply *r = redisCommand(c, "CLUSTER INFO");
		ok = r && r->type == REDIS_REPLY_STRING &&
		     strstr(r->str, "cluster_state:ok");
		if (r)
			freeReplyObject(r);
	}
	if (c)
		redisFree(c);
	return ok;
}

static void cluster_stop(void)
{
	int st;

	for (int i = 0; i < CL_N; i++)
		if (cs.pid[i]) {
			kill(cs.pid[i], SIGTERM);
			waitpid(cs.pid[i], &st, 0);
			cs.pid[i] = 0;
		}
}

static int cluster_start(void)
{
	char cmd[512];
	size_t n;

	if (cs.pid[0])
		return 0;
	if (cs.tried || redis_start() < 0)
		return -1;
	cs.tried = true;
	atexit(cluster_stop);
	n = (size_t)snprintf(cmd, sizeof(cmd),
			     "redis-cli --cluster create --cluster-yes");
	for (int i = 0; i < CL_N; i++) {
		char port[16], bus[16], conf[256];
		cs.port[i] = free_port();
		snprintf(port, sizeof(port), "%d", cs.port[i]);
		snprintf(bus, sizeof(bus), "%d", free_port());
		snprintf(conf, sizeof(conf), "%s/nodes-%d.conf", rs.dir,
			 cs.port[i]);
		pid_t pid = fork();
		if (pid < 0)
			return -1;
		if (pid == 0) {
			int fd = open("/dev/null", O_RDWR);
			dup2(fd, 1);
			execlp("redis-server", "redis-server", "--port", port,
			       "--bind", "127.0.0.1", "--cluster-enabled",
			       "yes", "--cluster-config-file", conf,
			       "--cluster-port", bus, "--dir", rs.dir,
			       "--save", "", "--appendonly", "no",
			       (char *)NULL);
			_exit(127);
		}
		cs.pid[i] = pid;
		n += (size_t)snprintf(cmd + n, sizeof(cmd) - n,
				      " 127.0.0.1:%d", cs.port[i]);
	}
	snprintf(cmd + n, sizeof(cmd) - n, " >/dev/null 2>&1");
	for (int i = 0; i < 500; i++) {
		if (system(cmd) == 0)
			break;
		msleep(20); /* the nodes are not listening yet */
	}
	for (int i = 0; i < 1000; i++) {
		bool all = true;
		for (int k = 0; k < CL_N && all; k++)
			all = cl_ok(cs.port[k]);
		if (all)
			return 0;
		msleep(10);
	}
	return -1;
}

/* The sum over the cluster's masters of Redis' CPU (INFO cpu), ms. */
static double cluster_cpu_ms(void)
{
	static redisContext *rc[CL_N];
	double ms = 0;

	for (int i = 0; i < CL_N; i++) {
		if (!rc[i])
			rc[i] = redisConnect("127.0.0.1", cs.port[i]);
		if (!rc[i] || rc[i]->err)
			return -1;
		redisReply *r = redisCommand(rc[i], "INFO cpu");
		const char *s = r && r->type == REDIS_REPLY_STRING
					? strstr(r->str, "used_cpu_sys:")
					: NULL;
		const char *u = s ? strstr(r->str, "used_cpu_user:") : NULL;
		if (!u) {
			if (r)
				freeReplyObject(r);
			return -1;
		}
		ms += (atof(s + 13) + atof(u + 14)) * 1e3;
		freeReplyObject(r);
	}
	return ms;
}

/* Start redis-server (once per directory); 0 when it answers PING. */
static int redis_start(void)
{
	if (rs.pid)
		return 0;
	if (!rs.dir[0]) {
		snprintf(rs.dir, sizeof(rs.dir), "/tmp/shmstat-bench-XXXXXX");
		if (!mkdtemp(rs.dir))
			return -1;
		snprintf(rs.sock, sizeof(rs.sock), "%s/redis.sock", rs.dir);
		snprintf(rs.url, sizeof(rs.url), "unix://%s", rs.sock);
		atexit(redis_cleanup);
		make_certs();
	}
	char port[16], tport[16], cert[256], key[256];
	rs.port = free_port();
	rs.tls_port = free_port();
	snprintf(port, sizeof(port), "%d", rs.port);
	snprintf(tport, sizeof(tport), "%d", rs.ca[0] ? rs.tls_port : 0);
	snprintf(cert, sizeof(cert), "%s/s.crt", rs.dir);
	snprintf(key, sizeof(key), "%s/s.key", rs.dir);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 1);
		if (rs.ca[0])
			execlp("redis-server", "redis-server", "--port", port,
			       "--unixsocket", rs.sock, "--dir", rs.dir,
			       "--save", "", "--appendonly", "no", "--bind",
			       "127.0.0.1", "--tls-port", tport,
			       "--tls-cert-file", cert, "--tls-key-file", key,
			       "--tls-ca-cert-file", rs.ca,
			       "--tls-auth-clients", "no", (char *)NULL);
		execlp("redis-server", "redis-server", "--port", port,
		       "--unixsocket", rs.sock, "--dir", rs.dir, "--save", "",
		       "--appendonly", "no", "--bind", "127.0.0.1",
		       (char *)NULL);
		_exit(127);
	}
	rs.pid = pid;
	for (int i = 0; i < 500; i++) {
		struct timeval tv = { 1, 0 };
		redisContext *c = redisConnectUnixWithTimeout(rs.sock, tv);
		if (c && !c->err) {
			redisReply *r = redisCommand(c, "PING");
			int ok = r && r->type == REDIS_REPLY_STATUS;
			if (r)
				freeReplyObject(r);
			redisFree(c);
			if (ok)
				return 0;
		} else if (c) {
			redisFree(c);
		}
		msleep(10);
	}
	return -1;
}

static shmstat_t *seg_create_size(char *name, size_t len, uint32_t counters,
				  size_t size)
{
	static unsigned seq;
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL,
				.max_counters = counters,
				.max_workers = 8,
				.size = size };
	shmstat_t *h;

	snprintf(name, len, "bench-sync-%d-%u", (int)getpid(), seq++);
	if (shmstat_open(name, &o, &h) < 0) {
		fprintf(stderr, "bench: %s\n", shmstat_errstr(NULL));
		return NULL;
	}
	return h;
}

static shmstat_t *seg_create(char *name, size_t len, uint32_t counters)
{
	return seg_create_size(name, len, counters, 24u << 20);
}

static void seg_destroy(shmstat_t **h, const char *name)
{
	shmstat_close(h);
	shmstat_unlink(name);
}

static int make_counters(shmstat_t *h, shmstat_counter_t *c, int n)
{
	char name[64];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "bench:sync:%05d", i);
		if (shmstat_counter_open(h, name, &c[i]) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ one push */

/* Redis' own CPU time so far (INFO cpu: used_cpu_sys + used_cpu_user), in
 * ms; -1 when unknown. */
static double redis_cpu_ms(void)
{
	/* One connection kept open: connecting would cost Redis CPU. */
	static redisContext *rc;
	static pid_t for_pid;
	double ms = -1;

	if (rc && (rc->err || for_pid != rs.pid)) {
		redisFree(rc);
		rc = NULL;
	}
	if (!rc) {
		rc = redisConnectUnix(rs.sock);
		for_pid = rs.pid;
	}
	if (rc && !rc->err) {
		redisReply *r = redisCommand(rc, "INFO cpu");
		if (r && r->type == REDIS_REPLY_STRING) {
			const char *s = strstr(r->str, "used_cpu_sys:");
			const char *u = strstr(r->str, "used_cpu_user:");
			if (s && u)
				ms = (atof(s + 13) + atof(u + 14)) * 1e3;
		}
		if (r)
			freeReplyObject(r);
	}
	return ms;
}

/* Redis' CPU in commands so far (INFO commandstats: the sum of every
 * command's usec), in ms; -1 when unknown. Without the I/O and event
 * loop that redis_cpu_ms() includes. */
static double redis_cmd_ms(void)
{
	redisContext *rc = redisConnectUnix(rs.sock);
	double ms = -1;

	if (rc && !rc->err) {
		redisReply *r = redisCommand(rc, "INFO commandstats");
		if (r && r->type == REDIS_REPLY_STRING) {
			ms = 0;
			/* EXEC's time holds its commands', counted apart. */
			for (const char *p = r->str; (p = strstr(p, "cmdstat_"));
			     p += 8) {
				const char *u = strstr(p, ",usec=");
				if (u && strncmp(p, "cmdstat_exec:", 13) &&
				    strncmp(p, "cmdstat_info:", 13) &&
				    strncmp(p, "cmdstat_config", 14))
					ms += atof(u + 6) / 1e3;
			}
		}
		if (r)
			freeReplyObject(r);
	}
	if (rc)
		redisFree(rc);
	return ms;
}

/* A bridge in process on segment h, set up as the daemon sets it up;
 * T_PARTED: on the unix socket, with --partition-by-slot (the layout of
 * a Redis Cluster); T_CLUSTER: a real cluster of CL_N masters over TCP on
 * 127.0.0.1, given the first. */
enum transport { T_UNIX, T_TCP, T_TLS, T_PARTED, T_CLUSTER };

static int bridge_open_on(struct bconf *cf, struct bridge *b, shmstat_t *h,
			  const char *seg, enum transport t)
{
	bconf_defaults(cf);
	cf->segment = seg;
	cf->partition_by_slot = t == T_PARTED;
	if (t == T_UNIX || t == T_PARTED) {
		snprintf(cf->redis.path, sizeof(cf->redis.path), "%s", rs.sock);
	} else {
		cf->redis.path[0] = '\0';
		snprintf(cf->redis.host, sizeof(cf->redis.host), "127.0.0.1");
		cf->redis.port = t == T_TLS ? rs.tls_port : rs.port;
		if (t == T_CLUSTER)
			cf->redis.port = cs.port[0];
		cf->redis.tls = t == T_TLS;
		cf->tls_ca_file = rs.ca;
	}
	snprintf(cf->addr, sizeof(cf->addr), "%s", rs.url);
	cf->connect_timeout_ms = cf->command_timeout_ms = 5000;
	cf->owner_ttl_ms = 60000;
	if (bridge_init(b, cf, h) < 0)
		return -1;
	return conn_open(b);
}

static int bridge_open(struct bconf *cf, struct bridge *b, shmstat_t *h,
		       const char *seg)
{
	return bridge_open_on(cf, b, h, seg, T_UNIX);
}

static double thread_cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One push of PUSH_N counters of which `changed` changed since the last
 * push (a different `changed` of them each time). */
static void push_bench_on(shim_state_t *st, int n_counters, int changed,
			  enum transport t)
{
	static shmstat_counter_t c[PUSH_N];
	static struct bconf cf;
	static struct bridge b;
	char seg[64];

	if (redis_start() < 0) {
		shim_skip(st, "redis-server did not start");
		return;
	}
	if (t == T_CLUSTER && cluster_start() < 0) {
		shim_skip(st, "the Redis Cluster did not form");
		return;
	}
	double (*cpu_ms)(void) = t == T_CLUSTER ? cluster_cpu_ms : redis_cpu_ms;
	shmstat_t *h = seg_create(seg, sizeof(seg), 16384);
	if (!h || make_counters(h, c, n_counters) < 0) {
		shim_skip(st, "segment");
		return;
	}
	log_level = SHMSTAT_LOG_ERROR;
	if (t == T_TLS && !rs.ca[0]) {
		shim_skip(st, "no certificates (openssl)");
		goto out;
	}
	if (bridge_open_on(&cf, &b, h, seg, t) < 0 || push_all(&b) < 0) {
		shim_skip(st, "first push failed");
		goto out;
	}
	int failed = 0, next = 0;
	double redis = 0, own = 0;
	/* Command CPU over the whole run (INFO commandstats, reset here;
	 * the INFO calls of redis_cpu_ms count in it, a few µs each). */
	redisContext *rcs = redisConnectUnix(rs.sock);
	if (rcs && !rcs->err)
		freeReplyObject(redisCommand(rcs, "CONFIG RESETSTAT"));
	if (rcs)
		redisFree(rcs);
	/* Redis' and our CPU around each push alone, measured the same way
	 * as in sync_steady_100k_1pct (INFO on a connection kept open,
	 * outside the timed part). */
	while (shim_run_batch(st, 1)) {
		shim_pause_timing(st);
		for (int i = 0; i < changed; i++) {
			shmstat_counter_add(c[next], 1);
			next = (next + 1) % n_counters;
		}
		double r0 = cpu_ms(), o0 = thread_cpu_ms();
		shim_resume_timing(st);
		if (push_all(&b) < 0 || b.status.pending != 0)
			failed++;
		shim_pause_timing(st);
		double o1 = thread_cpu_ms(), r1 = cpu_ms();
		redis += r1 - r0;
		own += o1 - o0;
		shim_resume_timing(st);
	}
	shim_set_items(st, shim_iterations(st) * (uint64_t)n_counters);
	if (shim_iterations(st) > 0) {
		shim_counter(st, "redis_cpu_ms_per_push",
			     redis / (double)shim_iterations(st));
		shim_counter(st, "bridge_cpu_ms_per_push",
			     own / (double)shim_iterations(st));
		double cmd = t == T_CLUSTER ? -1 : redis_cmd_ms();
		if (cmd >= 0)
			shim_counter(st, "redis_cmd_ms_per_push",
				     cmd / (double)shim_iterations(st));
	}
	shim_counter(st, "failed", failed);
out:
	bridge_fini(&b);
	seg_destroy(&h, seg);
	redisContext *rc = redisConnectUnix(rs.sock);
	if (rc && !rc->err)
		freeReplyObject(redisCommand(rc, "FLUSHALL"));
	if (rc)
		redisFree(rc);
	for (int i = 0; t == T_CLUSTER && i < CL_N; i++) {
		rc = redisConnect("127.0.0.1", cs.port[i]);
		if (rc && !rc->err)
			freeReplyObject(redisCommand(rc, "FLUSHALL"));
		if (rc)
			redisFree(rc);
	}
}

static void push_bench(shim_state_t *st, int n_counters, int changed)
{
	push_bench_on(st, n_counters, changed, T_UNIX);
}

SHIM_BENCH(sync_push_10k_changed)(shim_state_t *st)
{
	push_bench(st, PUSH_N, PUSH_N);
}

SHIM_BENCH(sync_push_10k_changed_tcp)(shim_state_t *st)
{
	push_bench_on(st, PUSH_N, PUSH_N, T_TCP);
}

SHIM_BENCH(sync_push_10k_changed_tls)(shim_state_t *st)
{
	push_bench_on(st, PUSH_N, PUSH_N, T_TLS);
}

SHIM_BENCH(sync_push_10k_1pct_changed)(shim_state_t *st)
{
	push_bench(st, PUSH_N, PUSH_N / 100);
}

SHIM_BENCH(sync_push_10k_unchanged)(shim_state_t *st)
{
	push_bench(st, PUSH_N, 0);
}

SHIM_BENCH(sync_push_10k_one_changed)(shim_state_t *st)
{
	push_bench(st, PUSH_N, 1);
}

/* The same pushes in the partitioned layout (--partition-by-slot, what a
 * Redis Cluster gets), on one standalone Redis: the 10,000 keys fall in
 * ~7,000 slots, each with its own bookkeeping. */
SHIM_BENCH(sync_push_10k_changed_parted)(shim_state_t *st)
{
	push_bench_on(st, PUSH_N, PUSH_N, T_PARTED);
}

SHIM_BENCH(sync_push_10k_1pct_changed_parted)(shim_state_t *st)
{
	push_bench_on(st, PUSH_N, PUSH_N / 100, T_PARTED);
}

SHIM_BENCH(sync_push_10k_unchanged_parted)(shim_state_t *st)
{
	push_bench_on(st, PUSH_N, 0, T_PARTED);
}

SHIM_BENCH(sync_push_10k_one_changed_parted)(shim_state_t *st)
{
	push_bench_on(st, PUSH_N, 1, T_PARTED);
}

/* And on a real Redis Cluster of three masters (TCP on 127.0.0.1): the
 * Redis CPU is the sum of the three. */
SHIM_BENCH(sync_push_10k_changed_cluster)(shim_state_t *st)
{
	push_bench_on(st, PUSH_N, PUSH_N, T_CLUSTER);
}

SHIM_BENCH(sync_push_10k_1pct_changed_cluster)(shim_state_t *st)
{
	push_bench_on(st, PUSH_N, PUSH_N / 100, T_CLUSTER);
}

SHIM_BENCH(sync_push_10k_unchanged_cluster)(shim_state_t *st)
{
	push_bench_on(st, PUSH_N, 0, T_CLUSTER);
}

/* The reference of sync_steady_100k_1pct: a segment of 1,000 counters,
 * all changed every push. */
SHIM_BENCH(sync_push_1k_changed)(shim_state_t *st)
{
	push_bench(st, STEADY_CHANGED, STEADY_CHANGED);
}

/*
 * 100,000 counters of which 1,000 change per interval, while another
 * source (another segment with the same 100,000 names) changes 1,000 of
 * its own: per iteration the other pushes (not measured), then ours does.
 * Bridge CPU (this thread's) and Redis CPU per interval are of our push
 * only, as in sync_push_1k_changed: the ratio is the bound.
 */
static void steady(shim_state_t *st, int others)
{
	static struct bconf cfa, cfb;
	static struct bridge ba, bb;
	char sa[64], sb[64], name[64];
	shmstat_counter_t *ca = calloc(STEADY_N, sizeof(*ca));
	shmstat_counter_t *cb = calloc(STEADY_N, sizeof(*cb));
	shmstat_t *ha = NULL, *hb = NULL;

	if (!ca || !cb || redis_start() < 0) {
		shim_skip(st, "redis-server did not start");
		goto out;
	}
	ha = seg_create_size(sa, sizeof(sa), STEADY_N + 1024, 96u << 20);
	hb = seg_create_size(sb, sizeof(sb), STEADY_N + 1024, 96u << 20);
	if (!ha || !hb) {
		shim_skip(st, "segment");
		goto out;
	}
	for (int i = 0; i < STEADY_N; i++) {
		snprintf(name, sizeof(name), "bench:steady:%06d", i);
		if (shmstat_counter_open(ha, name, &ca[i]) < 0 ||
		    shmstat_counter_open(hb, name, &cb[i]) < 0) {
			shim_skip(st, "counters");
			goto out;
		}
		shmstat_counter_add(ca[i], 1);
		shmstat_counter_add(cb[i], 1);
	}
	log_level = SHMSTAT_LOG_ERROR;
	if (bridge_open(&cfa, &ba, ha, sa) < 0 ||
	    bridge_open(&cfb, &bb, hb, sb) < 0 || push_all(&ba) < 0 ||
	    push_all(&bb) < 0 || push_all(&ba) < 0) {
		shim_skip(st, "first push failed");
		goto out;
	}
	int failed = 0, na = 0, nb = STEADY_N / 2;
	double redis = 0, own = 0;
	uint64_t refreshed = 0;
	while (shim_run_batch(st, 1)) {
		shim_pause_timing(st);
		for (int i = 0; i < others; i++) {
			shmstat_counter_add(cb[nb], 1);
			nb = (nb + 1) % STEADY_N;
		}
		if (push_all(&bb) < 0)
			failed++;
		for (int i = 0; i < STEADY_CHANGED; i++) {
			shmstat_counter_add(ca[na], 1);
			na = (na + 1) % STEADY_N;
		}
		double r0 = redis_cpu_ms(), o0 = thread_cpu_ms();
		shim_resume_timing(st);
		if (push_all(&ba) < 0 || ba.status.pending != 0)
			failed++;
		shim_pause_timing(st);
		double o1 = thread_cpu_ms(), r1 = redis_cpu_ms();
		redis += r1 - r0;
		own += o1 - o0;
		refreshed += ba.last_refreshed;
		shim_resume_timing(st);
	}
	uint64_t it = shim_iterations(st);
	if (it) {
		shim_counter(st, "redis_cpu_ms_per_interval", redis / (double)it);
		shim_counter(st, "bridge_cpu_ms_per_interval", own / (double)it);
		shim_counter(st, "keys_read_back_per_interval",
			     (double)refreshed / (double)it);
	}
	shim_counter(st, "failed", failed);
out:
	bridge_fini(&ba);
	bridge_fini(&bb);
	if (ha)
		seg_destroy(&ha, sa);
	if (hb)
		seg_destroy(&hb, sb);
	free(ca);
	free(cb);
	redisContext *rc = redisConnectUnix(rs.sock);
	if (rc && !rc->err)
		freeReplyObject(redisCommand(rc, "FLUSHALL"));
	if (rc)
		redisFree(rc);
}

SHIM_BENCH(baseline_incrby_10k_pipelined)(shim_state_t *st)
{
	if (redis_start() < 0) {
		shim_skip(st, "redis-server did not start");
		return;
	}
	redisContext *rc = redisConnectUnix(rs.sock);
	if (!rc || rc->err) {
		shim_skip(st, "connect");
		if (rc)
			redisFree(rc);
		return;
	}
	char key[64];
	double redis = 0;
	while (shim_run_batch(st, 1)) {
		shim_pause_timing(st);
		double r0 = redis_cpu_ms();
		shim_resume_timing(st);
		for (int i = 0; i < PUSH_N; i++) {
			snprintf(key, sizeof(key), "bench:incr:%05d", i);
			redisAppendCommand(rc, "INCRBY %s 1", key);
		}
		for (int i = 0; i < PUSH_N; i++) {
			void *r;
			if (redisGetReply(rc, &r) == REDIS_OK)
				freeReplyObject(r);
		}
		shim_pause_timing(st);
		redis += redis_cpu_ms() - r0;
		shim_resume_timing(st);
	}
	shim_set_items(st, shim_iterations(st) * PUSH_N);
	if (shim_iterations(st) > 0)
		shim_counter(st, "redis_cpu_ms_per_push",
			     redis / (double)shim_iterations(st));
	freeReplyObject(redisCommand(rc, "FLUSHALL"));
	redisFree(rc);
}

/* ------------------------------------------------------- the daemon */

static const char *bridge_path(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("SHMSTAT_BRIDGE");
	char self[PATH_MAX];

	if (env && *env)
		return env;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/../bridge/shmstat-bridge",
		 dirname(self));
	return access(path, X_OK) == 0 ? path : NULL;
}

static pid_t bridge_spawn(const char *seg, const char *interval)
{
	static unsigned spawned;
	const char *bin = bridge_path();
	char pidfile[256];

	if (!bin)
		return -1;
	snprintf(pidfile, sizeof(pidfile), "%s/bridge.%s.pid", rs.dir, seg);
	/* Several segments on one host: each is its own source. */
	spawned++;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 2);
		execl(bin, bin, "-n", seg, "-u", rs.url, "-i", interval,
		      "--pidfile", pidfile, "--backoff-max", "200ms", "-q",
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int bridge_wait_pushed(shmstat_t *h, int timeout_ms)
{
	shmstat_sync_status_t s;

	for (int i = 0; i < timeout_ms / 5; i++) {
		if (shmstat_sync_status_read(h, &s) == 0 && s.pushes_ok > 0)
			return 0;
		msleep(5);
	}
	return -1;
}

SHIM_BENCH(bridge_cpu_1000_counters_1s)(shim_state_t *st)
{
	static shmstat_counter_t c[CPU_N];
	char seg[64];

	if (redis_start() < 0 || !bridge_path()) {
		shim_skip(st, "no redis-server or no shmstat-bridge");
		return;
	}
	shmstat_t *h = seg_create(seg, sizeof(seg), 2048);
	if (!h || make_counters(h, c, CPU_N) < 0) {
		shim_skip(st, "segment");
		return;
	}
	double cpu_ms_per_s = 0;
	while (shim_run_batch(st, 1)) {
		/* A worker keeps every counter changing, so every push
		 * carries 1,000 changed totals. */
		pid_t w = fork();
		if (w == 0) {
			for (int round = 0; round < 100 * (CPU_WINDOW_S + 3);
			     round++) {
				for (int i = 0; i < CPU_N; i++)
					shmstat_counter_add(c[i], 1);
				msleep(10);
			}
			_exit(0);
		}
		pid_t b = bridge_spawn(seg, "1s");
		bridge_wait_pushed(h, 5000);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		msleep(CPU_WINDOW_S * 1000);
		kill(b, SIGTERM);
		struct rusage ru;
		int status;
		wait4(b, &status, 0, &ru);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		kill(w, SIGKILL);
		waitpid(w, &status, 0);
		double secs = (double)(t1.tv_sec - t0.tv_sec) +
			      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		double cpu = (double)ru.ru_utime.tv_sec * 1e3 +
			     (double)ru.ru_utime.tv_usec / 1e3 +
			     (double)ru.ru_stime.tv_sec * 1e3 +
			     (double)ru.ru_stime.tv_usec / 1e3;
		/* Includes its start-up and first push: an upper bound. */
		cpu_ms_per_s = cpu / secs;
	}
	shim_counter(st, "cpu_ms_per_s", cpu_ms_per_s);
	seg_destroy(&h, seg);
}

SHIM_BENCH(sync_steady_100k_1pct)(shim_state_t *st)
{
	steady(st, STEADY_CHANGED);
}

/* The same push of 1,000 changed counters of 100,000, the other source
 * changing nothing: what reading others' changes adds is the difference. */
SHIM_BENCH(sync_steady_100k_1pct_alone)(shim_state_t *st)
{
	steady(st, 0);
}

/* kB of a /proc/<pid>/status field, -1 when missing. */
static double proc_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	double v = -1;
	size_t fl = strlen(field);

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':')
			v = atof(line + fl + 1);
	fclose(f);
	return v;
}

/*
 * shmstat-bridge (the daemon) at 100 ms on 100,000 counters, 1% of them
 * changing per interval: its memory after its first full push and a few
 * steady ones. rss_private_mb is its own memory (RssAnon + RssFile);
 * rss_shmem_mb the pages of the segment it mapped (shared with every
 * worker, not the bridge's); hwm_mb the peak of both.
 */
SHIM_BENCH(bridge_rss_100k_counters)(shim_state_t *st)
{
	char seg[64], name[64];
	shmstat_counter_t c;

	if (redis_start() < 0 || !bridge_path()) {
		shim_skip(st, "no redis-server or no shmstat-bridge");
		return;
	}
	shmstat_t *h = seg_create_size(seg, sizeof(seg), STEADY_N + 1024,
				       96u << 20);
	if (!h) {
		shim_skip(st, "segment");
		return;
	}
	for (int i = 0; i < STEADY_N; i++) {
		snprintf(name, sizeof(name), "bench:rss:%06d", i);
		if (shmstat_counter_open(h, name, &c) < 0) {
			shim_skip(st, "counters");
			seg_destroy(&h, seg);
			return;
		}
		shmstat_counter_add(c, 1);
	}
	double priv = 0, shm = 0, hwm = 0;
	while (shim_run_batch(st, 1)) {
		pid_t b = bridge_spawn(seg, "100ms");
		bridge_wait_pushed(h, 20000);
		for (int round = 0; round < 20; round++) {
			for (int i = 0; i < STEADY_CHANGED; i++) {
				snprintf(name, sizeof(name), "bench:rss:%06d",
					 (round * STEADY_CHANGED + i) % STEADY_N);
				shmstat_counter_add_by_name(h, name, 1);
			}
			msleep(100);
		}
		priv = (proc_kb(b, "RssAnon") + proc_kb(b, "RssFile")) / 1024;
		shm = proc_kb(b, "RssShmem") / 1024;
		hwm = proc_kb(b, "VmHWM") / 1024;
		kill(b, SIGTERM);
		int status;
		waitpid(b, &status, 0);
	}
	shim_counter(st, "rss_private_mb", priv);
	shim_counter(st, "rss_shmem_mb", shm);
	shim_counter(st, "hwm_mb", hwm);
	seg_destroy(&h, seg);
}

/* --------------------------------------- the hot path, Redis up or down */

static void add_with_bridge(shim_state_t *st, int redis_up)
{
	char seg[64];
	shmstat_counter_t c;

	if (redis_start() < 0 || !bridge_path()) {
		shim_skip(st, "no redis-server or no shmstat-bridge");
		return;
	}
	shmstat_t *h = seg_create(seg, sizeof(seg), 256);
	if (!h || shmstat_counter_open(h, "bench:hot", &c) < 0) {
		shim_skip(st, "segment");
		return;
	}
	pid_t b = bridge_spawn(seg, "10ms");
	if (bridge_wait_pushed(h, 5000) < 0) {
		shim_skip(st, "the bridge did not push");
		goto out;
	}
	if (!redis_up)
		redis_stop();
	while (shim_run_batch(st, BATCH))
		for (int i = 0; i < BATCH; i++)
			shmstat_counter_add(c, 1);
	shim_set_items(st, shim_iterations(st));
out:
	kill(b, SIGTERM);
	int status;
	waitpid(b, &status, 0);
	if (!redis_up)
		redis_start();
	seg_destroy(&h, seg);
}

SHIM_BENCH(counter_add_bridge_redis_up)(shim_state_t *st)
{
	add_with_bridge(st, 1);
}

SHIM_BENCH(counter_add_bridge_redis_down)(shim_state_t *st)
{
	add_with_bridge(st, 0);
}
