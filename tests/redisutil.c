/*
 * redisutil.c — see redisutil.h. Every wait is a bounded poll.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "redisutil.h"
#include "testutil.h"

void ru_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

uint64_t ru_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ru_path(const struct ru_server *r, char *buf, size_t len, const char *file)
{
	snprintf(buf, len, "%s/%s", r->dir, file);
}

static redisContext *ru_connect(struct ru_server *r)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);

	if (!c)
		return NULL;
	if (c->err) {
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (r->password[0]) {
		redisReply *rep = redisCommand(c, "AUTH %s", r->password);
		if (rep)
			freeReplyObject(rep);
	}
	return c;
}

redisReply *ru_cmd(struct ru_server *r, const char *fmt, ...)
{
	redisContext *c = ru_connect(r);
	va_list ap;

	if (!c)
		return NULL;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	return rep;
}

long long ru_hlen(struct ru_server *r, const char *key)
{
	redisReply *rep = ru_cmd(r, "HLEN %s", key);
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
	long long n = rep->integer;
	freeReplyObject(rep);
	return n;
}

bool ru_exists(struct ru_server *r, const char *key)
{
	redisReply *rep = ru_cmd(r, "EXISTS %s", key);
	assert_non_null(rep);
	bool e = rep->integer == 1;
	freeReplyObject(rep);
	return e;
}

long long ru_get(struct ru_server *r, const char *key)
{
	redisReply *rep = ru_cmd(r, "GET %s", key);
	long long v = LLONG_MIN;

	assert_non_null(rep);
	if (rep->type == REDIS_REPLY_STRING)
		v = strtoll(rep->str, NULL, 10);
	else if (rep->type != REDIS_REPLY_NIL)
		fail_msg("GET %s: reply type %d", key, rep->type);
	freeReplyObject(rep);
	return v;
}

void ru_start(struct ru_server *r)
{
	char log[256];

	if (!r->dir[0]) {
		snprintf(r->dir, sizeof(r->dir), "/tmp/shmstat-redis-XXXXXX");
		assert_non_null(mkdtemp(r->dir));
		snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
		snprintf(r->url, sizeof(r->url), "unix://%s", r->sock);
	}
	ru_path(r, log, sizeof(log), "redis.log");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *argv[40] = { "redis-server" };
		int n = 1;
		if (r->config)
			argv[n++] = r->config;
		const char *net[] = {
			"--port", "0", "--unixsocket", r->sock,
			"--unixsocketperm", "700", "--dir", r->dir, "--save",
			"", "--appendonly", "no", "--logfile", log,
			"--daemonize", "no", "--bind", "127.0.0.1",
		};
		for (size_t i = 0; i < sizeof(net) / sizeof(net[0]); i++)
			argv[n++] = net[i];
		if (r->password[0]) {
			argv[n++] = "--requirepass";
			argv[n++] = r->password;
		}
		for (size_t i = 0; r->extra && r->extra[i] && n < 39; i++)
			argv[n++] = r->extra[i];
		argv[n] = NULL;
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(devnull, 1);
		/* A test that fails half-way must not leave a server holding
		 * its output open: it dies with the test. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execvp("redis-server", (char *const *)argv);
		_exit(127);
	}
	r->pid = pid;
	uint64_t deadline = ru_mono_ms() + 5000;
	for (;;) {
		redisReply *rep = ru_cmd(r, "PING");
		if (rep) {
			bool loading = rep->type == REDIS_REPLY_ERROR &&
				       strncmp(rep->str, "LOADING", 7) == 0;
			freeReplyObject(rep);
			if (!loading)
				return;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			r->pid = 0;
			fail_msg("redis-server exited at start (see %s)", log);
		}
		if (ru_mono_ms() > deadline)
			fail_msg("redis-server did not answer within 5 s");
		ru_sleep_ms(10);
	}
}

void ru_stop(struct ru_server *r)
{
	if (!r->pid)
		return;
	kill(r->pid, SIGCONT);
	kill(r->pid, SIGTERM);
	int st;
	uint64_t deadline = ru_mono_ms() + 5000;
	while (waitpid(r->pid, &st, WNOHANG) == 0) {
		if (ru_mono_ms() > deadline) {
			kill(r->pid, SIGKILL);
			waitpid(r->pid, &st, 0);
			break;
		}
		ru_sleep_ms(5);
	}
	r->pid = 0;
	unlink(r->sock);
}

void ru_restart(struct ru_server *r)
{
	ru_stop(r);
	ru_start(r);
}

void ru_pause(struct ru_server *r)
{
	assert_true(r->pid > 0);
	kill(r->pid, SIGSTOP);
}

void ru_resume(struct ru_server *r)
{
	assert_true(r->pid > 0);
	kill(r->pid, SIGCONT);
}

void ru_destroy(struct ru_server *r)
{
	char cmd[300];

	ru_stop(r);
	if (r->dir[0] && strncmp(r->dir, "/tmp/shmstat-redis-", 19) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", r->dir);
	}
	r->dir[0] = '\0';
}

pid_t ru_bridge(const char *dir, const char *seg, const char *url,
		const char *log, ...)
{
	const char *bin = getenv("SHMSTAT_BRIDGE");
	const char *argv[48];
	char pidfile[300];
	int n = 0;
	va_list ap;

	assert_non_null(bin);
	snprintf(pidfile, sizeof(pidfile), "%s/bridge.%s.pid", dir, seg);
	argv[n++] = bin;
	argv[n++] = "-n";
	argv[n++] = seg;
	if (url) {
		argv[n++] = "-u";
		argv[n++] = url;
	}
	argv[n++] = "--pidfile";
	argv[n++] = pidfile;
	va_start(ap, log);
	while (n < 46 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

int ru_bridge_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	return tu_wait(pid, 15000);
}

bool ru_wait_synced(shmstat_t *h, int timeout_ms)
{
	shmstat_sync_status_t st;
	uint64_t deadline = ru_mono_ms() + (uint64_t)timeout_ms;
	uint64_t start_ok;

	if (shmstat_sync_status_read(h, &st) < 0)
		return false;
	start_ok = st.pushes_ok;
	while (ru_mono_ms() < deadline) {
		if (shmstat_sync_status_read(h, &st) == 0 &&
		    st.pushes_ok >= start_ok + 2 && st.pending == 0)
			return true;
		ru_sleep_ms(5);
	}
	return false;
}

bool ru_file_has(const char *path, const char *s)
{
	FILE *f = fopen(path, "r");
	char *buf;
	bool found = false;

	if (!f)
		return false;
	buf = malloc(1 << 20);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	found = strstr(buf, s) != NULL;
	free(buf);
	fclose(f);
	return found;
}

bool ru_wait_file_has(const char *path, const char *s, int timeout_ms)
{
	uint64_t deadline = ru_mono_ms() + (uint64_t)timeout_ms;

	while (ru_mono_ms() < deadline) {
		if (ru_file_has(path, s))
			return true;
		ru_sleep_ms(10);
	}
	return ru_file_has(path, s);
}

int tu_wait_nohang(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, WNOHANG) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int ru_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

pid_t ru_spawn(const char *log, const char *const argv[])
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		int lf = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(devnull, 0);
		dup2(lf >= 0 ? lf : devnull, 1);
		dup2(lf >= 0 ? lf : devnull, 2);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

void ru_kill(pid_t pid)
{
	int st;

	if (pid <= 0)
		return;
	kill(pid, SIGCONT);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

redisReply *ru_tcp_cmd(int port, const char *fmt, ...)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	va_list ap;

	if (!c)
		return NULL;
	if (c->err) {
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	return rep;
}

bool ru_wait_port(int port, int timeout_ms)
{
	uint64_t deadline = ru_mono_ms() + (uint64_t)timeout_ms;

	do {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return true;
		ru_sleep_ms(10);
	} while (ru_mono_ms() < deadline);
	return false;
}

int ru_pair_setup(void **state, const char *ta, const char *tb)
{
	static const shmstat_options_t small = {
		.size = 4u << 20, .max_counters = 256, .max_workers = 16,
	};
	struct ru_pair *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	ru_start(&f->r);
	ru_path(&f->r, f->log, sizeof(f->log), "bridge.log");
	tu_seg_create(&f->a, ta, &small);
	tu_seg_create(&f->b, tb, &small);
	*state = f;
	return 0;
}

int ru_pair_teardown(void **state)
{
	struct ru_pair *f = *state;
	if (getenv("RU_KEEP_LOG") == NULL)
		unlink(f->log);
	ru_destroy(&f->r);
	shmstat_close(&f->a.h);
	shmstat_unlink(f->a.name);
	shmstat_close(&f->b.h);
	shmstat_unlink(f->b.name);
	free(f);
	return 0;
}
