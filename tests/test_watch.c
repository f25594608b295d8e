/*
 * test_watch.c — `shmstat list -w` (tools/watch.c, on ncurses) under a real
 * pseudo-terminal: it redraws in place, shows a rate while a worker counts,
 * scrolls to counters below the screen, sorts by a key, follows a resize,
 * exits 0 on 'q' and on SIGINT, and restores the terminal (leaves the
 * alternate screen, shows the cursor). Bounded: every wait has a deadline.
 *
 * ncurses sends only what changed on the screen; where a test must read
 * whole names it presses Ctrl-L (repaint everything) first.
 */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <regex.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "testutil.h"

static char screen[1 << 18]; /* the raw transcript */
static size_t seen;

/*
 * A small terminal: enough of xterm's control sequences (cursor moves,
 * erase, repeat) to know what the screen shows, since ncurses sends only
 * what changed. Attributes, modes and charsets are ignored.
 */
#define VT_ROWS 64
#define VT_COLS 160
static char vt[VT_ROWS][VT_COLS];
static int vt_rows = 20, vt_cols = 120, vt_y, vt_x, vt_state, vt_np;
static int vt_par[16];
static bool vt_priv;
static char vt_last = ' ';

static void vt_reset(int rows, int cols)
{
	memset(vt, ' ', sizeof(vt));
	vt_rows = rows;
	vt_cols = cols;
	vt_y = vt_x = vt_state = 0;
}

static void vt_put(char c)
{
	if (vt_x >= vt_cols) {
		vt_x = 0;
		if (vt_y < vt_rows - 1)
			vt_y++;
	}
	vt[vt_y][vt_x++] = c;
	vt_last = c;
}

static int vt_p(int i, int def)
{
	return i < vt_np && vt_par[i] > 0 ? vt_par[i] : def;
}

static void vt_clamp(void)
{
	if (vt_y < 0)
		vt_y = 0;
	if (vt_y >= vt_rows)
		vt_y = vt_rows - 1;
	if (vt_x < 0)
		vt_x = 0;
	if (vt_x > vt_cols)
		vt_x = vt_cols;
}

static void vt_csi(char f)
{
	int n = vt_p(0, 1);
	if (vt_priv)
		return; /* modes: ?1049h, ?25l ... */
	switch (f) {
	case 'H': case 'f': vt_y = vt_p(0, 1) - 1; vt_x = vt_p(1, 1) - 1; break;
	case 'A': vt_y -= n; break;
	case 'B': vt_y += n; break;
	case 'C': vt_x += n; break;
	case 'D': vt_x -= n; break;
	case 'G': case '`': vt_x = n - 1; break;
	case 'd': vt_y = n - 1; break;
	case 'b': for (int i = 0; i < n; i++) vt_put(vt_last); break;
	case 'X':
		for (int i = 0; i < n && vt_x + i < vt_cols; i++)
			vt[vt_y][vt_x + i] = ' ';
		break;
	case 'K': {
		int m = vt_np ? vt_par[0] : 0;
		int from = m == 0 ? vt_x : 0, to = m == 1 ? vt_x + 1 : vt_cols;
		for (int i = from; i < to && i < vt_cols; i++)
			vt[vt_y][i] = ' ';
		break;
	}
	case 'J': {
		int m = vt_np ? vt_par[0] : 0;
		if (m == 2 || m == 3) {
			memset(vt, ' ', sizeof(vt));
			break;
		}
		for (int i = vt_x; i < vt_cols; i++)
			vt[vt_y][i] = ' ';
		for (int y = vt_y + 1; y < vt_rows; y++)
			memset(vt[y], ' ', VT_COLS);
		break;
	}
	case 'P':
		memmove(&vt[vt_y][vt_x], &vt[vt_y][vt_x + n > vt_cols ? vt_cols : vt_x + n],
			(size_t)(vt_x + n < vt_cols ? vt_cols - vt_x - n : 0));
		break;
	default: break; /* m, r, t, ... */
	}
	vt_clamp();
}

static void vt_feed(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		switch (vt_state) {
		case 0:
			if (c == '\033')
				vt_state = 1;
			else if (c == '\r')
				vt_x = 0;
			else if (c == '\n') {
				if (vt_y < vt_rows - 1)
					vt_y++;
			} else if (c == '\b') {
				if (vt_x > 0)
					vt_x--;
			} else if ((unsigned char)c >= 0x20)
				vt_put(c);
			break;
		case 1:
			if (c == '[') {
				vt_state = 2;
				vt_np = 0;
				vt_priv = false;
				memset(vt_par, 0, sizeof(vt_par));
			} else if (c == '(' || c == ')') {
				vt_state = 3;
			} else {
				vt_state = 0; /* ESC =, ESC >, ESC 7 ... */
			}
			break;
		case 2:
			if (c == '?' || c == '>') {
				vt_priv = true;
			} else if (c >= '0' && c <= '9') {
				if (vt_np == 0)
					vt_np = 1;
				vt_par[vt_np - 1] = vt_par[vt_np - 1] * 10 + (c - '0');
			} else if (c == ';') {
				if (vt_np == 0)
					vt_np = 1;
				if (vt_np < 16)
					vt_np++;
			} else {
				vt_csi(c);
				vt_state = 0;
			}
			break;
		default:
			vt_state = 0;
		}
	}
}

/* The screen as text: rows joined by newlines, trailing blanks cut. */
static char *vt_text(void)
{
	static char text[VT_ROWS * (VT_COLS + 1) + 1];
	size_t n = 0;
	for (int y = 0; y < vt_rows; y++) {
		int e = vt_cols;
		while (e > 0 && vt[y][e - 1] == ' ')
			e--;
		memcpy(text + n, vt[y], (size_t)e);
		n += (size_t)e;
		text[n++] = '\n';
	}
	text[n] = '\0';
	return text;
}

static bool pump(int fd, int wait_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, wait_ms) <= 0)
		return true;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n <= 0)
		return false; /* EIO: the child closed the terminal */
	vt_feed(buf, (size_t)n);
	if (seen + (size_t)n + 1 >= sizeof(screen))
		seen = 0; /* keep the tail: a long run wraps */
	memcpy(screen + seen, buf, (size_t)n);
	seen += (size_t)n;
	screen[seen] = '\0';
	return true;
}

/* Read what the pty shows until `re` matches the screen, or timeout_ms
 * passes. */
static bool wait_screen(int fd, const char *re, int timeout_ms)
{
	regex_t rx;
	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	uint64_t deadline = shmstat__now_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	bool ok = false;
	for (;;) {
		if (regexec(&rx, vt_text(), 0, NULL, 0) == 0) {
			ok = true;
			break;
		}
		if (shmstat__now_mono_ns() >= deadline || !pump(fd, 20))
			break;
	}
	regfree(&rx);
	return ok;
}

/* Drain until EOF (the child exited) or timeout. */
static void drain(int fd, int timeout_ms)
{
	uint64_t deadline = shmstat__now_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	while (shmstat__now_mono_ns() < deadline && pump(fd, 50))
		;
}

/* Does the screen show needle? */
static const char *on_screen(const char *needle)
{
	return strstr(vt_text(), needle);
}

static pid_t spawn_watch(const char *seg, int *master)
{
	const char *tool = getenv("SHMSTAT_TOOL");
	struct winsize ws = { .ws_row = 20, .ws_col = 120 };
	assert_non_null(tool);
	pid_t pid = forkpty(master, NULL, NULL, &ws);
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("TERM", "xterm", 1);
		execl(tool, tool, "-n", seg, "list", "-w", "0.1", NULL);
		_exit(127);
	}
	seen = 0;
	screen[0] = '\0';
	vt_reset(ws.ws_row, ws.ws_col);
	return pid;
}

static void the_live_view_shows_a_rate_and_quits_on_q(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c;
	int fd;

	assert_int_equal(shmstat_counter_open(s->h, "req:served", &c), 0);
	pid_t pid = spawn_watch(s->name, &fd);
	/* It drew a frame on the alternate screen. */
	assert_true(wait_screen(fd, "req:served", 10000));
	assert_non_null(strstr(screen, "\033[?1049h"));
	assert_true(wait_screen(fd, "q quits", 10000));
	/* Count steadily while it refreshes: a positive rate appears. */
	bool rate = false;
	for (int i = 0; i < 400 && !rate; i++) {
		shmstat_counter_add(c, 1000);
		/* value, then a rate with at least 3 digits */
		rate = wait_screen(fd, "req:served +[0-9]+ +[1-9][0-9]{2,}\n", 25);
	}
	assert_true(rate);
	assert_int_equal(write(fd, "q", 1), 1);
	drain(fd, 10000);
	assert_int_equal(tu_wait(pid, 10000), 0);
	/* The terminal is restored: cursor shown, alternate screen left. */
	assert_non_null(strstr(screen, "\033[?25h"));
	assert_non_null(strstr(screen, "\033[?1049l"));
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
	assert_non_null(strstr(screen, "\033[?1049l"));
	close(fd);
}

/* Press keys and let the view redraw. */
static void press(int fd, const char *keys)
{
	assert_int_equal(write(fd, keys, strlen(keys)), (ssize_t)strlen(keys));
}

/* 60 counters on a 20-line screen: the last ones are reached by
 * scrolling (End, PgUp, Home), a sort key reorders, a resize shows more. */
static void more_counters_than_rows_are_reached_by_scrolling(void **state)
{
	struct tu_seg *s = *state;
	int fd;

	for (int i = 0; i < 60; i++) {
		char n[32];
		snprintf(n, sizeof(n), "ctr%02d", i);
		/* Values rise with the name, except one big one in the middle. */
		shmstat_counter_add_by_name(s->h, n, i == 30 ? 1000000 : (uint64_t)i);
	}
	pid_t pid = spawn_watch(s->name, &fd);
	assert_true(wait_screen(fd, "rows 1-16 of 60", 10000));
	assert_true(wait_screen(fd, "ctr00", 10000));
	assert_null(on_screen("ctr59"));
	/* End: the last rows. */
	press(fd, "G");
	assert_true(wait_screen(fd, "rows 45-60 of 60", 10000));
	assert_true(wait_screen(fd, "ctr59", 10000));
	assert_null(on_screen("ctr00"));
	/* Arrow up (xterm in keypad mode sends ESC O A) scrolls one line. */
	press(fd, "\033OA");
	assert_true(wait_screen(fd, "rows 44-59 of 60", 10000));
	/* Home, then sort by value: the big one first. */
	press(fd, "gv");
	assert_true(wait_screen(fd, "sort: value", 10000));
	/* ctr30 (1000000) first, then ctr59, ctr58 ... */
	assert_true(wait_screen(fd, "RATE/s\nctr30 [^\n]*\nctr59 [^\n]*\nctr58 ", 10000));
	/* A taller terminal shows more rows without a key. */
	struct winsize ws = { .ws_row = 40, .ws_col = 120 };
	vt_reset(40, 120);
	assert_int_equal(ioctl(fd, TIOCSWINSZ, &ws), 0);
	kill(pid, SIGWINCH);
	assert_true(wait_screen(fd, "rows 1-36 of 60", 10000));
	assert_int_equal(write(fd, "q", 1), 1);
	drain(fd, 10000);
	assert_int_equal(tu_wait(pid, 10000), 0);
	close(fd);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tu_seg_setup, tu_seg_teardown)
	const struct CMUnitTest tests[] = {
		T(the_live_view_shows_a_rate_and_quits_on_q),
		T(the_live_view_quits_on_ctrl_c_and_restores_the_terminal),
		T(more_counters_than_rows_are_reached_by_scrolling),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
