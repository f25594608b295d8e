/*
 * test_bridge_secrets.c — shmstat-bridge as an operator deploys it, with a
 * real redis-server on a unix socket: passwords holding / ? # @ % : and
 * blanks (plain and %-encoded in the URL, from a file, wrong) never show
 * in a log line, `shmstat info`, /health or /stats, nor in the process
 * title; the password file's mode is checked; the pidfile is never
 * followed through a link; --wait-segment, readiness for systemd,
 * $SHMSTAT_BRIDGE_OPTS, journald priorities, per-kind rate limits and
 * explained Redis errors. Every wait is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

/* Every character an operator may paste, and none the tests print. */
#define PW "Zq/x?Kw#j@V%7 yT:e"
#define PW_ENC "Zq%2Fx%3FKw%23j%40V%257%20yT%3Ae"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Does text hold any 4 consecutive characters of the password? */
static bool holds_part_of(const char *text, const char *pw)
{
	size_t n = strlen(pw);
	for (size_t i = 0; i + 4 <= n; i++) {
		char part[5];
		memcpy(part, pw + i, 4);
		part[4] = '\0';
		if (strstr(text, part))
			return true;
	}
	return false;
}

static char *slurp(const char *path)
{
	static char buf[1 << 18];
	FILE *f = fopen(path, "r");
	size_t n = 0;
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

/* Run the bridge with argv (argv[0] ignored), stderr to log, extra
 * environment "K=V" strings (NULL-terminated list, may be NULL). */
static pid_t spawn(const char *log, const char *const *env, const char **argv)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		for (; env && *env; env++)
			putenv((char *)*env);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		argv[0] = getenv("SHMSTAT_BRIDGE");
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Exit status of pid, waiting at most timeout_ms; -1 on timeout. */
static int wait_exit(pid_t pid, int timeout_ms)
{
	for (uint64_t t0 = now_ms(); now_ms() - t0 < (uint64_t)timeout_ms;) {
		int st = tu_wait_nohang(pid);
		if (st >= 0)
			return st;
		ru_sleep_ms(10);
	}
	return -1;
}

static int http_port(const char *log)
{
	assert_true(ru_wait_file_has(log, "listening on 127.0.0.1:", 10000));
	const char *p = strstr(slurp(log), "listening on 127.0.0.1:");
	return atoi(p + strlen("listening on 127.0.0.1:"));
}

static const char *http_get(int port, const char *path)
{
	static char out[1 << 16];
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	char req[256];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 path);
	assert_int_equal(send(s, req, (size_t)n, MSG_NOSIGNAL), n);
	size_t got = 0;
	for (uint64_t t0 = now_ms(); now_ms() - t0 < 5000;) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = read(s, out + got, sizeof(out) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(s);
	out[got] = '\0';
	return out;
}

static void cmdline_of(pid_t pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	assert_true(n > 0);
	for (ssize_t i = 0; i < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = '\0';
}

/* Everything the bridge shows, for one password in the URL: the log, the
 * process title, info (text and JSON), /health, /stats. */
static void check_nothing_shows(const char *pw_in_url, bool wrong)
{
	struct ru_server r = { 0 };
	struct tu_seg s;
	char url[512], log[300], pid[300], out[8192], cmd[4096];

	snprintf(r.password, sizeof(r.password), "%s", PW);
	ru_start(&r);
	tu_seg_create(&s, "secret", NULL);
	shmstat_counter_add_by_name(s.h, "a", 3);
	snprintf(url, sizeof(url), "unix://:%s@%s", pw_in_url, r.sock);
	ru_path(&r, log, sizeof(log), "bridge.log");
	ru_path(&r, pid, sizeof(pid), "bridge.pid");
	const char *argv[] = { "", "-n", s.name, "-u", url, "--pidfile", pid,
			       "-i", "20ms", "--http", "127.0.0.1:0", NULL };
	pid_t b = spawn(log, NULL, argv);
	int port = http_port(log);
	if (wrong)
		assert_true(ru_wait_file_has(log, "WRONGPASS", 10000));
	else
		assert_true(ru_wait_synced(s.h, 10000));
	/* The title no longer holds it, and a warning said why. */
	cmdline_of(b, cmd, sizeof(cmd));
	assert_false(holds_part_of(cmd, PW));
	assert_false(holds_part_of(cmd, PW_ENC));
	assert_non_null(strstr(cmd, ":***@"));
	assert_true(ru_file_has(log, "removed from the process title"));
	if (!wrong)
		assert_int_equal(ru_get(&r, "a"), 3);

	char all[1 << 16] = "";
	size_t used = 0;
#define ADD(t) used += (size_t)snprintf(all + used, sizeof(all) - used, "%s\n", (t))
	assert_true(tu_tool(out, sizeof(out), "-n", s.name, "info", NULL) >= 0);
	ADD(out);
	assert_true(tu_tool(out, sizeof(out), "-n", s.name, "info", "-j", NULL) >= 0);
	ADD(out);
	assert_true(tu_tool(out, sizeof(out), "-n", s.name, "health", "-j", NULL) >= 0);
	ADD(out);
	ADD(http_get(port, "/health"));
	ADD(http_get(port, "/stats"));
	ADD(http_get(port, "/metrics"));
	assert_int_equal(ru_bridge_stop(b), 0);
	ADD(slurp(log));
#undef ADD
	assert_true(used < sizeof(all));
	assert_non_null(strstr(all, r.sock)); /* the address is there */
	if (wrong)
		assert_non_null(strstr(all, "check the user name and the password"));
	assert_false(holds_part_of(all, PW));
	assert_false(holds_part_of(all, PW_ENC));
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

static void a_plain_password_with_every_special_character_never_shows(void **state)
{
	(void)state;
	check_nothing_shows(PW, false);
}

static void an_encoded_password_never_shows(void **state)
{
	(void)state;
	check_nothing_shows(PW_ENC, false);
}

static void a_wrong_password_never_shows(void **state)
{
	(void)state;
	check_nothing_shows("Zq/x?Kw#j@V%7 yT:X", true);
}

/* Bad URLs: the message names the part, never the text around it. */
static void a_bad_url_never_echoes_the_password(void **state)
{
	(void)state;
	struct ru_server r = { 0 };
	char log[300], pid[300];
	const char *urls[] = {
		"redis://h:" PW,              /* no '@': looks like a port */
		"redis://:" PW "@h:99999",
		"redis://:" PW "@h/notanumber",
		"redis://:" PW "@h?x=" PW,
		"redis//:" PW "@h",
		"redis://b%zz" PW ":x@h",  /* a bad escape in the user */
	};

	ru_start(&r);
	ru_path(&r, log, sizeof(log), "bridge.log");
	ru_path(&r, pid, sizeof(pid), "bridge.pid");
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		const char *argv[] = { "", "-n", "x", "-u", urls[i],
				       "--pidfile", pid, NULL };
		assert_int_equal(wait_exit(spawn(log, NULL, argv), 10000), 1);
	}
	/* A blank in an unquoted password splits it into words. */
	const char *argv[] = { "", "-n", "x", "-u", "redis://:Zq/x?Kw#j@V%7",
			       "yT:e@h", "--pidfile", pid, NULL };
	assert_int_equal(wait_exit(spawn(log, NULL, argv), 10000), 1);
	const char *text = slurp(log);
	assert_non_null(strstr(text, "bad port"));
	assert_non_null(strstr(text, "unexpected argument"));
	assert_false(holds_part_of(text, PW));
	ru_destroy(&r);
}

/* --password-file: a file others can read is refused with a message that
 * says what to do; 0600 works, with a trailing newline. */
static void the_password_file_is_used_and_its_mode_checked(void **state)
{
	(void)state;
	struct ru_server r = { 0 };
	struct tu_seg s;
	char log[300], pid[300], pwf[300];

	snprintf(r.password, sizeof(r.password), "%s", PW);
	ru_start(&r);
	tu_seg_create(&s, "pwfile", NULL);
	shmstat_counter_add_by_name(s.h, "b", 4);
	ru_path(&r, log, sizeof(log), "bridge.log");
	ru_path(&r, pid, sizeof(pid), "bridge.pid");
	ru_path(&r, pwf, sizeof(pwf), "password");
	FILE *f = fopen(pwf, "w");
	assert_non_null(f);
	fputs(PW "\n", f);
	fclose(f);
	assert_int_equal(chmod(pwf, 0644), 0);
	const char *argv[] = { "", "-n", s.name, "-u", r.url,
			       "--password-file", pwf, "--pidfile", pid,
			       "-i", "20ms", NULL };
	assert_int_equal(wait_exit(spawn(log, NULL, argv), 10000), 1);
	assert_true(ru_file_has(log, "has mode 0644: group and others must "
				     "have no access (chmod 600"));
	assert_int_equal(chmod(pwf, 0600), 0);
	pid_t b = spawn(log, NULL, argv);
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(ru_get(&r, "b"), 4);
	assert_int_equal(ru_bridge_stop(b), 0);
	/* The same from $REDIS_PASSWORD_FILE. */
	char env[400];
	snprintf(env, sizeof(env), "REDIS_PASSWORD_FILE=%s", pwf);
	const char *envs[] = { env, NULL };
	const char *argv2[] = { "", "-n", s.name, "-u", r.url, "--pidfile",
				pid, "-i", "20ms", NULL };
	shmstat_counter_add_by_name(s.h, "b", 1);
	b = spawn(log, envs, argv2);
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(ru_get(&r, "b"), 5);
	assert_int_equal(ru_bridge_stop(b), 0);
	assert_false(holds_part_of(slurp(log), PW));
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/* The pidfile: a symbolic link in its place (file or directory) is never
 * followed; the default is $RUNTIME_DIRECTORY, else /run/shmstat. */
static void the_pidfile_is_never_followed_through_a_link(void **state)
{
	(void)state;
	struct ru_server r = { 0 };
	struct tu_seg s;
	char log[300], pid[300], victim[300], rd[300], env[400], dirlink[300];

	ru_start(&r);
	tu_seg_create(&s, "pidfile", NULL);
	ru_path(&r, log, sizeof(log), "bridge.log");
	ru_path(&r, pid, sizeof(pid), "bridge.pid");
	ru_path(&r, victim, sizeof(victim), "victim");
	FILE *f = fopen(victim, "w");
	assert_non_null(f);
	fputs("precious\n", f);
	fclose(f);
	assert_int_equal(symlink(victim, pid), 0);
	const char *argv[] = { "", "-n", s.name, "-u", r.url, "--pidfile",
			       pid, "-i", "20ms", NULL };
	assert_int_equal(wait_exit(spawn(log, NULL, argv), 10000), 1);
	assert_true(ru_file_has(log, "symbolic link"));
	assert_string_equal(slurp(victim), "precious\n");
	/* A linked directory is not followed either. */
	ru_path(&r, rd, sizeof(rd), "rundir");
	assert_int_equal(mkdir(rd, 0755), 0);
	ru_path(&r, dirlink, sizeof(dirlink), "rundir-link");
	assert_int_equal(symlink(rd, dirlink), 0);
	snprintf(env, sizeof(env), "RUNTIME_DIRECTORY=%s", dirlink);
	const char *envs[] = { env, NULL };
	const char *argv2[] = { "", "-n", s.name, "-u", r.url, "-i", "20ms",
				NULL };
	assert_int_equal(wait_exit(spawn(log, envs, argv2), 10000), 1);
	/* $RUNTIME_DIRECTORY itself: the pidfile is there, holds the pid,
	 * and a second bridge is refused (exit 3). */
	snprintf(env, sizeof(env), "RUNTIME_DIRECTORY=%s", rd);
	pid_t b = spawn(log, envs, argv2);
	assert_true(ru_wait_synced(s.h, 10000));
	char path[400];
	snprintf(path, sizeof(path), "%s/shmstat-bridge.%s.pid", rd, s.name);
	assert_int_equal(atoi(slurp(path)), (int)b);
	assert_int_equal(wait_exit(spawn(log, envs, argv2), 10000), 3);
	assert_int_equal(ru_bridge_stop(b), 0);
	assert_int_equal(access(path, F_OK), -1);
	/* Neither set: /run/shmstat (as root only: it is root's). */
	if (geteuid() == 0) {
		const char *none[] = { "RUNTIME_DIRECTORY=", "XDG_RUNTIME_DIR=",
				       NULL };
		b = spawn(log, none, argv2);
		assert_true(ru_wait_synced(s.h, 10000));
		snprintf(path, sizeof(path), "/run/shmstat/shmstat-bridge.%s.pid",
			 s.name);
		assert_int_equal(atoi(slurp(path)), (int)b);
		struct stat st;
		assert_int_equal(stat("/run/shmstat", &st), 0);
		assert_int_equal(st.st_mode & 0777, 0755);
		assert_int_equal(ru_bridge_stop(b), 0);
	}
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/* A datagram socket standing in for systemd's $NOTIFY_SOCKET. */
static int notify_socket(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	assert_true(strlen(path) < sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

/* Append what arrived on s within timeout_ms to buf until it holds want. */
static bool notified(int s, char *buf, size_t len, const char *want,
		     int timeout_ms)
{
	for (uint64_t t0 = now_ms(); now_ms() - t0 < (uint64_t)timeout_ms;) {
		if (strstr(buf, want))
			return true;
		struct pollfd p = { .fd = s, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		size_t used = strlen(buf);
		ssize_t n = recv(s, buf + used, len - used - 2, 0);
		if (n > 0) {
			buf[used + (size_t)n] = '\n';
			buf[used + (size_t)n + 1] = '\0';
		}
	}
	return strstr(buf, want) != NULL;
}

/* --wait-segment: started before the segment exists, the bridge reports
 * readiness and waits; once the segment is created it pushes. Without it
 * (or after its TIME) it exits 2. */
static void the_bridge_waits_for_its_segment_and_reports_readiness(void **state)
{
	(void)state;
	struct ru_server r = { 0 };
	struct tu_seg s;
	char log[300], pid[300], sock[300], env[400], name[64], buf[4096] = "";

	ru_start(&r);
	tu_name(name, sizeof(name), "later");
	ru_path(&r, log, sizeof(log), "bridge.log");
	ru_path(&r, pid, sizeof(pid), "bridge.pid");
	const char *argv0[] = { "", "-n", name, "-u", r.url, "--pidfile", pid,
				NULL };
	assert_int_equal(wait_exit(spawn(log, NULL, argv0), 10000), 2);
	const char *argv1[] = { "", "-n", name, "-u", r.url, "--pidfile", pid,
				"--wait-segment=300ms", NULL };
	uint64_t t0 = now_ms();
	assert_int_equal(wait_exit(spawn(log, NULL, argv1), 10000), 2);
	assert_true(now_ms() - t0 >= 300);
	assert_true(ru_file_has(log, "still missing after --wait-segment"));

	ru_path(&r, sock, sizeof(sock), "notify");
	int ns = notify_socket(sock);
	snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", sock);
	const char *envs[] = { env, NULL };
	const char *argv[] = { "", "-n", name, "-u", r.url, "--pidfile", pid,
			       "-i", "20ms", "--wait-segment", NULL };
	pid_t b = spawn(log, envs, argv);
	assert_true(notified(ns, buf, sizeof(buf), "READY=1", 10000));
	assert_true(notified(ns, buf, sizeof(buf), "STATUS=waiting for segment",
			     10000));
	assert_true(ru_wait_file_has(log, "waiting for it", 10000));
	assert_int_equal(tu_wait_nohang(b), -1); /* still there */
	/* Create the segment under that name: the bridge takes it. */
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE };
	assert_int_equal(shmstat_open(name, &o, &s.h), 0);
	snprintf(s.name, sizeof(s.name), "%s", name);
	shmstat_counter_add_by_name(s.h, "c", 9);
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(ru_get(&r, "c"), 9);
	assert_true(notified(ns, buf, sizeof(buf), "connected, pushing", 10000));
	assert_int_equal(ru_bridge_stop(b), 0);
	assert_true(notified(ns, buf, sizeof(buf), "STOPPING=1", 10000));
	close(ns);
	/* A SIGTERM while waiting ends it with 0. */
	char other[64];
	tu_name(other, sizeof(other), "never");
	const char *argv2[] = { "", "-n", other, "-u", r.url, "--pidfile", pid,
				"--wait-segment", NULL };
	b = spawn(log, NULL, argv2);
	assert_true(ru_wait_file_has(log, other, 10000));
	assert_int_equal(ru_bridge_stop(b), 0);
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/* $SHMSTAT_BRIDGE_OPTS: options from the environment file, quoted words
 * kept whole; the command line wins. */
static void options_come_from_the_environment(void **state)
{
	(void)state;
	struct ru_server r = { 0 };
	struct tu_seg s;
	char log[300], pid[300], env[1200];

	ru_start(&r);
	tu_seg_create(&s, "envopts", NULL);
	shmstat_counter_add_by_name(s.h, "d", 6);
	ru_path(&r, log, sizeof(log), "bridge.log");
	ru_path(&r, pid, sizeof(pid), "bridge.pid");
	snprintf(env, sizeof(env),
		 "SHMSTAT_BRIDGE_OPTS=-u %s --pidfile '%s' -i 20ms "
		 "--key-prefix \"env x:\" --meta-prefix _m:",
		 r.url, pid);
	const char *envs[] = { env, NULL };
	const char *argv[] = { "", "-n", s.name, "--meta-prefix", "_mine:",
			       NULL };
	pid_t b = spawn(log, envs, argv);
	assert_true(ru_wait_synced(s.h, 10000));
	assert_int_equal(ru_get(&r, "env x:d"), 6);
	redisReply *rep = ru_cmd(&r, "EXISTS _mine:sources");
	assert_non_null(rep);
	assert_int_equal(rep->integer, 1);
	freeReplyObject(rep);
	assert_int_equal(ru_bridge_stop(b), 0);
	/* An unclosed quote is a configuration error. */
	const char *bad[] = { "SHMSTAT_BRIDGE_OPTS=--key-prefix 'x", NULL };
	assert_int_equal(wait_exit(spawn(log, bad, argv), 10000), 1);
	assert_true(ru_file_has(log, "SHMSTAT_BRIDGE_OPTS: unclosed quote"));
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

static size_t count_lines_with(const char *text, const char *s)
{
	size_t n = 0;
	for (const char *p = text; (p = strstr(p, s)); p += strlen(s))
		n++;
	return n;
}

/* Under systemd ($JOURNAL_STREAM naming stderr): "<N>" priorities and no
 * time of our own. Warnings of one kind (20 keys Redis refuses) are
 * printed at most 3 times in 30 s, not once per key; a command timeout says so and what to
 * do; READONLY says the Redis is a replica; NOPERM names the command. */
static void logs_say_the_cause_and_are_rate_limited_per_kind(void **state)
{
	(void)state;
	struct ru_server r = { 0 };
	struct tu_seg s;
	char log[300], pid[300], env[100];
	struct stat st;

	ru_start(&r);
	tu_seg_create(&s, "logs", NULL);
	ru_path(&r, log, sizeof(log), "bridge.log");
	ru_path(&r, pid, sizeof(pid), "bridge.pid");
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	snprintf(env, sizeof(env), "JOURNAL_STREAM=%llu:%llu",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	const char *envs[] = { env, NULL };
	/* 20 keys that hold text in Redis: INCRBY is refused for each. */
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof(k), "bad%d", i);
		freeReplyObject(ru_cmd(&r, "SET %s text", k));
		shmstat_counter_add_by_name(s.h, k, 1);
	}
	shmstat_counter_add_by_name(s.h, "good", 1);
	const char *argv[] = { "", "-n", s.name, "-u", r.url, "--pidfile", pid,
			       "-i", "20ms", "--command-timeout", "300ms", NULL };
	pid_t b = spawn(log, envs, argv);
	assert_true(ru_wait_file_has(log, "<6>info: connected to Redis", 10000));
	/* Pushes go on for a while, every one refusing the 20 keys. */
	for (uint64_t t0 = now_ms(); ru_get(&r, "good") != 1 && now_ms() - t0 < 10000;)
		ru_sleep_ms(20);
	assert_int_equal(ru_get(&r, "good"), 1);
	shmstat_sync_status_t ss;
	uint64_t p0 = (shmstat_sync_status_read(s.h, &ss), ss.pushes_ok + ss.pushes_failed);
	for (uint64_t t0 = now_ms(); now_ms() - t0 < 10000; ru_sleep_ms(20)) {
		shmstat_sync_status_read(s.h, &ss);
		if (ss.pushes_ok + ss.pushes_failed >= p0 + 20)
			break;
	}
	const char *text = slurp(log);
	size_t refusals = count_lines_with(text, "(its count stays pending)");
	assert_true(refusals >= 1);
	assert_true(refusals <= 3); /* 3 lines of a kind per 30 s */
	/* No line carries a time of its own; every line has a priority. */
	assert_null(strstr(text, "Z shmstat-bridge["));
	assert_non_null(strstr(text, "<4>warning: key 'bad"));

	/* A hung Redis: a timeout, named as one, with the next step. */
	ru_pause(&r);
	assert_true(ru_wait_file_has(log, "timed out: no reply within "
					  "--command-timeout", 10000));
	ru_resume(&r);
	assert_false(ru_file_has(log, "Resource temporarily unavailable"));

	/* A replica: explained, whether the bridge meets it as a READONLY
	 * reply ("read-only replica: after a failover") or, reconnecting,
	 * by its ROLE ("is a replica of ..., not a master"). */
	freeReplyObject(ru_cmd(&r, "REPLICAOF 127.0.0.1 1"));
	shmstat_counter_add_by_name(s.h, "good", 1);
	assert_true(ru_wait_file_has(log, "replica", 10000));
	freeReplyObject(ru_cmd(&r, "REPLICAOF NO ONE"));
	/* (The 20 refused keys stay pending: wait for the good one.) */
	for (uint64_t t0 = now_ms(); ru_get(&r, "good") != 2 && now_ms() - t0 < 10000;)
		ru_sleep_ms(20);
	assert_int_equal(ru_get(&r, "good"), 2);
	assert_int_equal(ru_bridge_stop(b), 0);

	/* An ACL user without XADD: the message names the command. */
	freeReplyObject(ru_cmd(&r, "ACL SETUSER noxadd on >pw ~* +@all -xadd"));
	const char *envs2[] = { env, "REDIS_USERNAME=noxadd",
				"REDIS_PASSWORD=pw", NULL };
	shmstat_counter_add_by_name(s.h, "good", 1);
	b = spawn(log, envs2, argv);
	assert_true(ru_wait_file_has(log, "'xadd'", 10000));
	assert_true(ru_file_has(log, "add that command to the bridge's ACL user"));
	assert_int_equal(ru_bridge_stop(b), 0);
	/* Every line has its priority. */
	text = slurp(log);
	if (getenv("SHOW_LOG"))
		fputs(text, stdout);
	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		assert_int_equal(*l, '<');
		if (!strchr(l, '\n'))
			break;
	}
	ru_destroy(&r);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_plain_password_with_every_special_character_never_shows),
		cmocka_unit_test(an_encoded_password_never_shows),
		cmocka_unit_test(a_wrong_password_never_shows),
		cmocka_unit_test(a_bad_url_never_echoes_the_password),
		cmocka_unit_test(the_password_file_is_used_and_its_mode_checked),
		cmocka_unit_test(the_pidfile_is_never_followed_through_a_link),
		cmocka_unit_test(the_bridge_waits_for_its_segment_and_reports_readiness),
		cmocka_unit_test(options_come_from_the_environment),
		cmocka_unit_test(logs_say_the_cause_and_are_rate_limited_per_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
