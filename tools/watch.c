/*
 * watch.c — `shmstat list -w`: a live view that redraws in place, with each
 * counter's value and its rate per second since the previous refresh.
 *
 * On a terminal it switches to the alternate screen, hides the cursor and
 * reads keys unbuffered (q quits); whatever ends it (q, Ctrl-C, SIGTERM,
 * --count) restores the terminal as it was. Not on a terminal it prints
 * one frame after another, so it can be piped or logged.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "tools_i.h"

static volatile sig_atomic_t stop;
static struct termios saved_tio;
static int tty_raw;
/* Erase to the end of the line: only when redrawing in place. */
static const char *el = "";

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void term_restore(void)
{
	if (!tty_raw)
		return;
	tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
	/* Show the cursor, leave the alternate screen. */
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	tty_raw = 0;
}

static void term_setup(void)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) ||
	    tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return;
	t = saved_tio;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0)
		return;
	tty_raw = 1;
	el = "\033[K";
	atexit(term_restore);
	fputs("\033[?1049h\033[?25l", stdout);
}

/* 1234567 -> "1.23M" when humanizing; plain digits otherwise. */
void tool_number(char *buf, size_t len, double v, bool human)
{
	static const char units[] = " kMGTPE";
	int u = 0;

	if (!human || fabs(v) < 10000) {
		/* Whole numbers as such; a fraction only where it says
		 * something (a rate below 100/s). */
		bool whole = fabs(v - (double)(int64_t)v) < 1e-9 || fabs(v) >= 100;
		snprintf(buf, len, whole ? "%.0f" : "%.1f", v);
		return;
	}
	while (fabs(v) >= 1000 && u < 6) {
		v /= 1000;
		u++;
	}
	snprintf(buf, len, "%.*f%c", fabs(v) < 10 ? 2 : fabs(v) < 100 ? 1 : 0,
		 v, units[u]);
}

struct frame {
	const char *pattern;
	bool human;
	double dt;          /* seconds since the previous frame, 0 on the first */
	int64_t *prev;      /* previous value per directory index */
	uint8_t *seen;
	int rows, max_rows;
};

static int frame_row(const shmstat_stat_t *st, void *priv)
{
	struct frame *f = priv;
	char val[32], rate[32];

	if (f->rows >= f->max_rows) {
		f->rows++;
		return 0;
	}
	tool_number(val, sizeof(val), (double)st->value, f->human);
	if (f->dt > 0 && f->seen[st->index] && st->kind == SHMSTAT_KIND_COUNTER)
		tool_number(rate, sizeof(rate),
			    (double)(st->value - f->prev[st->index]) / f->dt,
			    f->human);
	else
		snprintf(rate, sizeof(rate), "%s",
			 st->kind == SHMSTAT_KIND_GAUGE ? "(gauge)" : "-");
	printf("%-50.*s %16s %14s%s\n", st->name_len > 50 ? 47 : 50,
	       st->name, val, rate, el);
	f->prev[st->index] = st->value;
	f->seen[st->index] = 1;
	f->rows++;
	return 0;
}

/* The bridge's state in one line. */
static void bridge_line(shmstat_t *h)
{
	shmstat_sync_status_t st;

	if (shmstat_sync_status_read(h, &st) < 0) {
		printf("bridge: status unreadable%s\n", el);
		return;
	}
	if (!st.alive) {
		printf("bridge: not running (values are this host's only)%s\n", el);
		return;
	}
	uint64_t now = shmstat__now_realtime_ns();
	double ago = st.last_push_ns && now > st.last_push_ns
			     ? (double)(now - st.last_push_ns) / 1e9
			     : -1;
	if (st.connected)
		printf("bridge: pid %d connected to %s, last push %.1fs ago, "
		       "%" PRIu64 " pending%s\n",
		       st.bridge_pid, st.redis_addr, ago, st.pending, el);
	else
		printf("bridge: pid %d DISCONNECTED from %s (%.60s), %" PRIu64
		       " pending, lag %.1fs%s\n",
		       st.bridge_pid, st.redis_addr, st.last_error, st.pending,
		       (double)st.lag_ms / 1e3, el);
}

int tool_watch(shmstat_t *h, const char *seg, const char *pattern,
	       double interval, long count, bool human)
{
	shmstat_info_t in;
	struct frame f = { .pattern = pattern, .human = human };
	struct sigaction sa = { .sa_handler = on_signal };
	int rc = 0;

	shmstat_info(h, &in);
	f.prev = calloc(in.max_counters, sizeof(*f.prev));
	f.seen = calloc(in.max_counters, 1);
	if (!f.prev || !f.seen) {
		tool_err("out of memory");
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	term_setup();

	uint64_t last = 0;
	for (long n = 0; !stop && (count <= 0 || n < count); n++) {
		uint64_t now = shmstat__now_mono_ns();
		char ts[64];
		f.dt = last ? (double)(now - last) / 1e9 : 0;
		last = now;
		f.rows = 0;
		f.max_rows = 1 << 30;
		if (tty_raw) {
			struct winsize ws;
			/* Fit the screen: header lines and the footer. */
			f.max_rows = 20;
			if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 4)
				f.max_rows = ws.ws_row - 4;
			fputs("\033[H", stdout);
		}
		iso_time(ts, sizeof(ts), shmstat__now_realtime_ns());
		printf("shmstat %s  %s  source: %s  every %.3gs%s%s\n", seg,
		       ts, tool_source(h), interval,
		       tty_raw ? "  (q quits)" : "", el);
		bridge_line(h);
		printf("%-50s %16s %14s%s\n", "NAME", "VALUE", "RATE/s", el);
		rc = shmstat_iter(h, pattern, frame_row, &f);
		if (rc < 0) {
			term_restore();
			tool_err("%s", shmstat_errstr(h));
			break;
		}
		if (f.rows > f.max_rows)
			printf("... %d more (narrow with -f GLOB)%s\n",
			       f.rows - f.max_rows, el);
		if (tty_raw)
			fputs("\033[J", stdout); /* clear what the last frame left */
		else
			putchar('\n');
		fflush(stdout);
		if (count > 0 && n + 1 >= count)
			break;
		/* Wait for the interval, a key, or a signal. */
		int wait_ms = (int)(interval * 1000);
		uint64_t until = shmstat__now_mono_ns() + (uint64_t)wait_ms * 1000000u;
		while (!stop) {
			uint64_t t = shmstat__now_mono_ns();
			if (t >= until)
				break;
			struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
			int left = (int)((until - t) / 1000000u) + 1;
			int r = poll(&p, tty_raw ? 1 : 0, left);
			if (r > 0 && tty_raw) {
				char k;
				if (read(STDIN_FILENO, &k, 1) == 1 &&
				    (k == 'q' || k == 'Q'))
					stop = 1;
			}
		}
	}
	term_restore();
	free(f.prev);
	free(f.seen);
	return rc < 0 ? tool_status(rc) : 0;
}
