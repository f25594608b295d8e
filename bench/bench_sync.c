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

#include "../bridge/bridge_i.h"
#include "shim.h"
#include "shmstat.h"

#define PUSH_N 10000
#define CPU_N 1000
#define CPU_WINDOW_S 5
#define BATCH 1000

static struct {
	pid_t pid;
	char dir[128];
	char sock[192];
	char url[224];
} rs;

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
	}
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 1);
		execlp("redis-server", "redis-server", "--port", "0",
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

static shmstat_t *seg_create(char *name, size_t len, uint32_t counters)
{
	static unsigned seq;
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL,
				.max_counters = counters,
				.max_workers = 8,
				.size = 24u << 20 };
	shmstat_t *h;

	snprintf(name, len, "bench-sync-%d-%u", (int)getpid(), seq++);
	if (shmstat_open(name, &o, &h) < 0) {
		fprintf(stderr, "bench: %s\n", shmstat_errstr(NULL));
		return NULL;
	}
	return h;
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
	redisContext *rc = redisConnectUnix(rs.sock);
	double ms = -1;

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
	if (rc)
		redisFree(rc);
	return ms;
}

/* One push of PUSH_N counters of which `changed` changed since the last
 * push (a different `changed` of them each time). */
static void push_bench(shim_state_t *st, int changed)
{
	static shmstat_counter_t c[PUSH_N];
	static struct bconf cf;
	static struct bridge b;
	char seg[64];

	if (redis_start() < 0) {
		shim_skip(st, "redis-server did not start");
		return;
	}
	shmstat_t *h = seg_create(seg, sizeof(seg), 16384);
	if (!h || make_counters(h, c, PUSH_N) < 0) {
		shim_skip(st, "segment");
		return;
	}
	log_level = SHMSTAT_LOG_ERROR;
	memset(&cf, 0, sizeof(cf));
	memset(&b, 0, sizeof(b));
	redis_conf_init(&cf.redis);
	snprintf(cf.redis.path, sizeof(cf.redis.path), "%s", rs.sock);
	snprintf(cf.addr, sizeof(cf.addr), "%s", rs.url);
	cf.key_prefix = "";
	cf.meta_prefix = "_shmstat:";
	cf.interval_ms = 1000;
	cf.connect_timeout_ms = cf.command_timeout_ms = 5000;
	cf.owner_ttl_ms = 60000;
	b.cf = &cf;
	b.h = h;
	b.max_counters = 16384;
	b.st = calloc(16384, sizeof(*b.st));
	snprintf(b.host_hex, sizeof(b.host_hex), "%016x", (unsigned)getpid());
	snprintf(b.host_name, sizeof(b.host_name), "bench");
	snprintf(b.token, sizeof(b.token), "bench%d", (int)getpid());
	if (!b.st || conn_open(&b) < 0 || push_all(&b) < 0) {
		shim_skip(st, "first push failed");
		goto out;
	}
	int failed = 0, next = 0;
	double cpu0 = redis_cpu_ms();
	while (shim_run_batch(st, 1)) {
		for (int i = 0; i < changed; i++) {
			shmstat_counter_add(c[next], 1);
			next = (next + 1) % PUSH_N;
		}
		if (push_all(&b) < 0 || b.status.pending != 0)
			failed++;
	}
	double cpu1 = redis_cpu_ms();
	shim_set_items(st, shim_iterations(st) * PUSH_N);
	if (cpu0 >= 0 && cpu1 >= 0 && shim_iterations(st) > 0)
		shim_counter(st, "redis_cpu_ms_per_push",
			     (cpu1 - cpu0) / (double)shim_iterations(st));
	shim_counter(st, "failed", failed);
out:
	conn_close(&b);
	free(b.st);
	seg_destroy(&h, seg);
	redisContext *rc = redisConnectUnix(rs.sock);
	if (rc && !rc->err)
		freeReplyObject(redisCommand(rc, "FLUSHALL"));
	if (rc)
		redisFree(rc);
}

SHIM_BENCH(sync_push_10k_changed)(shim_state_t *st)
{
	push_bench(st, PUSH_N);
}

SHIM_BENCH(sync_push_10k_1pct_changed)(shim_state_t *st)
{
	push_bench(st, PUSH_N / 100);
}

SHIM_BENCH(sync_push_10k_unchanged)(shim_state_t *st)
{
	push_bench(st, 0);
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
	double cpu0 = redis_cpu_ms();
	while (shim_run_batch(st, 1)) {
		for (int i = 0; i < PUSH_N; i++) {
			snprintf(key, sizeof(key), "bench:incr:%05d", i);
			redisAppendCommand(rc, "INCRBY %s 1", key);
		}
		for (int i = 0; i < PUSH_N; i++) {
			void *r;
			if (redisGetReply(rc, &r) == REDIS_OK)
				freeReplyObject(r);
		}
	}
	double cpu1 = redis_cpu_ms();
	shim_set_items(st, shim_iterations(st) * PUSH_N);
	if (cpu0 >= 0 && cpu1 >= 0 && shim_iterations(st) > 0)
		shim_counter(st, "redis_cpu_ms_per_push",
			     (cpu1 - cpu0) / (double)shim_iterations(st));
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
	char pidfile[256], host_id[32];

	if (!bin)
		return -1;
	snprintf(pidfile, sizeof(pidfile), "%s/bridge.%s.pid", rs.dir, seg);
	/* Every segment of this benchmark is on one host: give each bridge
	 * its own host id, or Redis refuses the second as a duplicate. */
	snprintf(host_id, sizeof(host_id), "%x%04x", (unsigned)getpid(),
		 ++spawned);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 2);
		execl(bin, bin, "-n", seg, "-u", rs.url, "-i", interval,
		      "--pidfile", pidfile, "--backoff-max", "200ms", "-q",
		      "--host-id", host_id,
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
