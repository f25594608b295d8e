/*
 * test_watch.c — `shmstat list -w` (tools/watch.c) under a real
 * pseudo-terminal: it redraws in place, shows a rate while a worker counts,
 * exits 0 on 'q' and on SIGINT, and restores the terminal (leaves the
 * alternate screen, shows the cursor). Bounded: every wait has a deadline.
 */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "testutil.h"

static char screen[1 << 18];
static size_t seen;

/* Read what the pty shows until `re` matches the whole transcript, or
 * timeout_ms passes. */
static bool wait_screen(int fd, const char *re, int timeout_ms)
{
	regex_t rx;
	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	uint64_t deadline = shmstat__now_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	bool ok = false;
	while (!ok && shmstat__now_mono_ns() < deadline) {
		screen[seen] = '\0';
		if (regexec(&rx, screen, 0, NULL, 0) == 0) {
			ok = true;
			break;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = read(fd, screen + seen, sizeof(screen) - 1 - seen);
		if (n <= 0)
			break; /* EIO: the child closed the terminal */
		seen += (size_t)n;
		if (seen + 1 >= sizeof(screen))
			seen = 0; /* keep the tail: a long run wraps */
	}
	regfree(&rx);
	return ok;
}

/* Drain until EOF (the child exited) or timeout. */
static void drain(int fd, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 50) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = read(fd, screen + seen, sizeof(screen) - 1 - seen);
		if (n <= 0)
			return;
		seen += (size_t)n;
		if (seen + 1 >= sizeof(screen))
			seen = 0;
	}
}

static pid_t spawn_watch(const char *seg, int *master)
{
	const char *tool = getenv("SHMSTAT_TOOL");
	struct winsize ws = { .ws_row = 30, .ws_col = 120 };
	assert_non_null(tool);
	pid_t pid = forkpty(master, NULL, NULL, &ws);
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("TERM", "xterm", 1);
		execl(tool, tool, "-n", seg, "list", "-w", "0.1", NULL);
		_exit(127);
	}
	seen = 0;
	return pid;
}

static void the_live_view_shows_a_rate_and_quits_on_q(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c;
	int fd;

	assert_int_equal(shmstat_counter_open(s->h, "req:served", &c), 0);
	pid_t pid = spawn_watch(s->name, &fd);
	/* It switched to the alternate screen and drew a frame. */
	assert_true(wait_screen(fd, "\033\\[\\?1049h", 10000));
	assert_true(wait_screen(fd, "req:served", 10000));
	assert_true(wait_screen(fd, "q quits", 10000));
	/* Count steadily while it refreshes: a positive rate appears. */
	bool rate = false;
	for (int i = 0; i < 400 && !rate; i++) {
		shmstat_counter_add(c, 1000);
		/* value, then a rate with at least 3 digits */
		rate = wait_screen(fd, "req:served +[0-9]+ +[1-9][0-9]{2,}", 25);
	}
	assert_true(rate);
	assert_int_equal(write(fd, "q", 1), 1);
	drain(fd, 10000);
	assert_int_equal(tu_wait(pid, 10000), 0);
	screen[seen] = '\0';
	/* The terminal is restored: cursor shown, alternate screen left. */
	assert_non_null(strstr(screen, "\033[?25h\033[?1049l"));
	close(fd);
}

static void the_live_view_quits_on_ctrl_c_and_restores_the_terminal(void **state)
{
	struct tu_seg *s = *state;
	int fd;

	shmstat_counter_add_by_name(s->h, "x", 1);
	pid_t pid = spawn_watch(s->name, &fd);
	assert_true(wait_screen(fd, "q quits", 10000));
	kill(pid, SIGINT);
	drain(fd, 10000);
	assert_int_equal(tu_wait(pid, 10000), 0);
	screen[seen] = '\0';
	assert_non_null(strstr(screen, "\033[?1049l"));
	close(fd);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tu_seg_setup, tu_seg_teardown)
	const struct CMUnitTest tests[] = {
		T(the_live_view_shows_a_rate_and_quits_on_q),
		T(the_live_view_quits_on_ctrl_c_and_restores_the_terminal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
