#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

void tu_name(char *buf, size_t len, const char *tag)
{
	static unsigned seq;
	snprintf(buf, len, "t%d-%u-%.40s", (int)getpid(), seq++, tag);
}

void tu_seg_create(struct tu_seg *s, const char *tag, const shmstat_options_t *o)
{
	tu_name(s->name, sizeof(s->name), tag);
	shmstat_options_t opt = o ? *o : (shmstat_options_t){ 0 };
	opt.flags |= SHMSTAT_O_CREATE | SHMSTAT_O_EXCL;
	/* The cache suites run a second time with home blocks. */
	const char *home = getenv("SHMSTAT_TEST_CACHE_HOME");
	if (home && !opt.cache_home_pct)
		opt.cache_home_pct = (uint32_t)atoi(home);
	s->opts = opt;
	int rc = shmstat_open(s->name, &opt, &s->h);
	if (rc != 0)
		fail_msg("create %s: %s", s->name, shmstat_errstr(NULL));
}

int tu_seg_setup(void **state)
{
	struct tu_seg *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	tu_seg_create(s, "seg", NULL);
	*state = s;
	return 0;
}

int tu_seg_teardown(void **state)
{
	struct tu_seg *s = *state;
	if (!s)
		return 0;
	shmstat_close(&s->h);
	shmstat_unlink(s->name);
	free(s);
	*state = NULL;
	return 0;
}

void *tu_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

void tu_shared_free(void *p, size_t len) { munmap(p, len); }

int tu_wait(pid_t pid, int timeout_ms)
{
	struct timespec ts = { 0, 1000000 };
	int st;
	for (int waited = 0;; waited++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		assert_true(r == 0);
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail_msg("process %d did not end within %d ms", (int)pid,
				 timeout_ms);
		}
		nanosleep(&ts, NULL);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

int tu_tool(char *out, size_t outlen, const char *arg0, ...)
{
	const char *tool = getenv("SHMSTAT_TOOL");
	const char *argv[32];
	int n = 0, fds[2];
	va_list ap;

	assert_non_null(tool);
	argv[n++] = tool;
	argv[n] = arg0;
	if (arg0) {
		n++;
		va_start(ap, arg0);
		while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
			n++;
		va_end(ap);
	}
	argv[n] = NULL;
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(tool, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	size_t got = 0;
	char sink[4096];
	for (;;) {
		char *dst = out && got + 1 < outlen ? out + got : sink;
		size_t room = out && got + 1 < outlen ? outlen - 1 - got : sizeof(sink);
		ssize_t r = read(fds[0], dst, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (dst != sink)
			got += (size_t)r;
	}
	close(fds[0]);
	if (out && outlen)
		out[got] = '\0';
	return tu_wait(pid, 60000);
}

int tu_sh(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	size_t n = 0;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	/* A bound on every command: a hung one fails the test, never the
	 * whole suite's timeout. */
	char full[2100];
	snprintf(full, sizeof(full), "timeout 60 sh -c '%s' 2>&1", cmd);
	FILE *p = popen(full, "r");
	assert_non_null(p);
	if (out && outlen) {
		while (n + 1 < outlen) {
			size_t r = fread(out + n, 1, outlen - 1 - n, p);
			if (r == 0)
				break;
			n += r;
		}
		out[n] = '\0';
	} else {
		char sink[512];
		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	int st = pclose(p);
	if (st < 0)
		return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}
