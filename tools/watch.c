/*
 * watch.c — `shmstat list -w`: a live view of every counter and gauge that
 * passes the filters, with its value and its rate per second since the
 * previous refresh, and the bridge's state on a line of its own.
 *
 * On a terminal it runs on ncurses (as varnishstat does): the screen
 * follows resizes, every counter is reachable by scrolling, and keys
 * change the sort. Whatever ends it (q, Ctrl-C, SIGTERM, --count, a
 * segment truncated under it) gives the terminal back as it was. Not on a
 * terminal it prints one frame after another, so it can be piped or
 * logged; a write that fails (a closed pipe, a full disk) ends it.
 */
#include <curses.h>
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "tools_i.h"

static volatile sig_atomic_t stop;
static bool curses_on;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void screen_end(void)
{
	if (!curses_on)
		return;
	curses_on = false;
	endwin();
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

struct row {
	shmstat_stat_t st;
	double rate;  /* per second; NAN when unknown (first frame, gauge) */
};

struct view {
	shmstat_t *h;
	const char *seg;
	const struct tool_filter *flt;
	bool human;
	enum tool_sort sort;
	uint64_t interval_ns;
	int64_t *prev;  /* previous value per directory index */
	uint8_t *seen;
	uint32_t max_counters;
	struct row *rows;
	size_t n;
	size_t top;     /* first row shown */
	char head[256], bridge[256];
};

static const char *const sort_names[] = { "name", "value", "rate" };

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->st.name,
		      ((const struct row *)b)->st.name);
}

static int cmp_value(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->st.value != y->st.value)
		return x->st.value < y->st.value ? 1 : -1;
	return cmp_name(a, b);
}

static int cmp_rate(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	double rx = isnan(x->rate) ? -INFINITY : x->rate;
	double ry = isnan(y->rate) ? -INFINITY : y->rate;
	if (rx != ry)
		return rx < ry ? 1 : -1;
	return cmp_name(a, b);
}

static void sort_rows(struct view *v)
{
	static int (*const cmp[])(const void *, const void *) = {
		cmp_name, cmp_value, cmp_rate
	};
	if (v->n > 1)
		qsort(v->rows, v->n, sizeof(*v->rows), cmp[v->sort]);
}

/* The bridge's state in one line. */
static void bridge_text(shmstat_t *h, char *buf, size_t len)
{
	shmstat_sync_status_t st;

	if (shmstat_sync_status_read(h, &st) < 0) {
		snprintf(buf, len, "bridge: status unreadable");
		return;
	}
	if (!st.alive) {
		snprintf(buf, len, "bridge: not running (values are this host's only)");
		return;
	}
	uint64_t now = shmstat__now_realtime_ns();
	double ago = st.last_push_ns && now > st.last_push_ns
			     ? (double)(now - st.last_push_ns) / 1e9
			     : -1;
	if (st.connected)
		snprintf(buf, len,
			 "bridge: pid %d connected to %s, last push %.1fs ago, "
			 "%" PRIu64 " pending",
			 st.bridge_pid, st.redis_addr, ago, st.pending);
	else
		snprintf(buf, len,
			 "bridge: pid %d DISCONNECTED from %s (%.60s), %" PRIu64
			 " pending, lag %.1fs",
			 st.bridge_pid, st.redis_addr, st.last_error, st.pending,
			 (double)st.lag_ms / 1e3);
}

/* Read the segment once: values, rates against the previous frame. */
static int sample(struct view *v, double dt)
{
	shmstat_stat_t *st;
	size_t n;
	int rc = tool_collect(v->h, v->flt, &st, &n);

	if (rc < 0)
		return rc;
	struct row *rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows) {
		free(st);
		return SHMSTAT_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t ix = st[i].index;
		rows[i].st = st[i];
		rows[i].rate = NAN;
		/* A histogram shows its count, as the table does, and the
		 * rate of its observations. */
		shmstat_histogram_stat_t hs;
		if (st[i].kind == SHMSTAT_KIND_HISTOGRAM)
			rows[i].st.value =
				shmstat_histogram_read(v->h, st[i].name, &hs) == 0 &&
						hs.count <= INT64_MAX
					? (int64_t)hs.count
					: 0;
		if (ix >= v->max_counters)
			continue;
		/* A value below the last one was reset: no rate for that
		 * frame (as Prometheus' rate() takes a drop for a reset). */
		if (dt > 0 && v->seen[ix] && st[i].kind != SHMSTAT_KIND_GAUGE &&
		    rows[i].st.value >= v->prev[ix])
			rows[i].rate =
				(double)(rows[i].st.value - v->prev[ix]) / dt;
		v->prev[ix] = rows[i].st.value;
		v->seen[ix] = 1;
	}
	free(st);
	free(v->rows);
	v->rows = rows;
	v->n = n;
	sort_rows(v);
	char ts[64], every[32];
	iso_time(ts, sizeof(ts), shmstat__now_realtime_ns());
	shmstat__duration_str(every, sizeof(every), v->interval_ns);
	snprintf(v->head, sizeof(v->head), "shmstat %s  %s  source: %s  every %s",
		 v->seg, ts, tool_source(v->h), every);
	bridge_text(v->h, v->bridge, sizeof(v->bridge));
	return 0;
}

static void row_text(const struct view *v, const struct row *r, int width,
		     char *buf, size_t len)
{
	char val[32], rate[32];

	tool_number(val, sizeof(val), (double)r->st.value, v->human);
	if (r->st.kind == SHMSTAT_KIND_GAUGE)
		snprintf(rate, sizeof(rate), "(gauge)");
	else if (isnan(r->rate))
		snprintf(rate, sizeof(rate), "-");
	else
		tool_number(rate, sizeof(rate), r->rate, v->human);
	/* Columns are characters (UTF-8), not bytes; a longer name is cut
	 * at a character's start. The name's bytes and up to width blanks: */
	char nm[2 * SHMSTAT_NAME_MAX + 8];
	tool_pad(nm, sizeof(nm), r->st.name, r->st.name_len, width, true);
	snprintf(buf, len, "%s %16s %14s", nm, val, rate);
}

/* ------------------------------------------------------------ terminal */

static int body_lines(void)
{
	int n = LINES - 4; /* head, bridge, column names ... footer */
	return n > 0 ? n : 0;
}

static void clamp_top(struct view *v)
{
	size_t body = (size_t)body_lines();
	if (v->n <= body)
		v->top = 0;
	else if (v->top > v->n - body)
		v->top = v->n - body;
}

static void line(int y, const char *s, int attr)
{
	if (y >= LINES)
		return;
	if (attr)
		attron(attr);
	/* The row fits COLS columns by construction; a byte count would
	 * cut names of multibyte characters short. */
	mvaddstr(y, 0, s);
	clrtoeol();
	if (attr)
		attroff(attr);
}

static void draw(struct view *v)
{
	char buf[2 * SHMSTAT_NAME_MAX + 128];
	int width = COLS - 33;

	if (width > SHMSTAT_NAME_MAX)
		width = SHMSTAT_NAME_MAX;
	if (width < 16)
		width = 16;
	clamp_top(v);
	erase();
	line(0, v->head, A_BOLD);
	line(1, v->bridge, 0);
	snprintf(buf, sizeof(buf), "%-*s %16s %14s", width, "NAME", "VALUE",
		 "RATE/s");
	line(2, buf, A_REVERSE);
	int body = body_lines();
	for (int i = 0; i < body && v->top + (size_t)i < v->n; i++) {
		row_text(v, &v->rows[v->top + (size_t)i], width, buf, sizeof(buf));
		line(3 + i, buf, 0);
	}
	size_t last = v->top + (size_t)body < v->n ? v->top + (size_t)body : v->n;
	snprintf(buf, sizeof(buf),
		 "rows %zu-%zu of %zu  sort: %s  q quits, arrows/PgUp/PgDn "
		 "scroll, n v r sort",
		 v->n ? v->top + 1 : 0, last, v->n, sort_names[v->sort]);
	line(LINES - 1, buf, A_REVERSE);
	refresh();
}

/* A key: true when the screen must be redrawn. */
static bool key(struct view *v, int k)
{
	size_t body = (size_t)body_lines();

	switch (k) {
	case 'q':
	case 'Q':
		stop = 1;
		return false;
	case KEY_DOWN:
	case 'j':
		v->top++;
		break;
	case KEY_UP:
	case 'k':
		if (v->top)
			v->top--;
		break;
	case KEY_NPAGE:
	case ' ':
		v->top += body ? body : 1;
		break;
	case KEY_PPAGE:
	case 'b':
		v->top = v->top > body ? v->top - body : 0;
		break;
	case KEY_HOME:
	case 'g':
		v->top = 0;
		break;
	case KEY_END:
	case 'G':
		v->top = v->n;
		break;
	case 'n':
	case 'v':
	case 'r':
		v->sort = k == 'n' ? SORT_NAME : k == 'v' ? SORT_VALUE : SORT_RATE;
		sort_rows(v);
		break;
	case 12: /* Ctrl-L: repaint everything */
		clearok(curscr, TRUE);
		break;
	case KEY_RESIZE:
		clearok(curscr, TRUE);
		break;
	default:
		return false;
	}
	clamp_top(v);
	return true;
}

static int run_curses(struct view *v, long count)
{
	uint64_t last = 0;
	int rc = 0;

	/* ncursesw draws UTF-8 only in a UTF-8 character locale (numbers
	 * keep the C locale's form). */
	setlocale(LC_CTYPE, "");
	if (!newterm(NULL, stdout, stdin)) {
		tool_err("list -w: cannot drive this terminal (TERM=%s)",
			 getenv("TERM") ? getenv("TERM") : "");
		return TOOL_FAILED;
	}
	curses_on = true;
	tool_on_fault = screen_end;
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);
	for (long n = 0; !stop && (count <= 0 || n < count); n++) {
		uint64_t now = shmstat__now_mono_ns();
		if ((rc = sample(v, last ? (double)(now - last) / 1e9 : 0)) < 0)
			break;
		last = now;
		draw(v);
		if (count > 0 && n + 1 >= count)
			break;
		/* Keys until the interval is over; short waits so that a
		 * signal is seen at once. */
		uint64_t until = now + v->interval_ns;
		while (!stop) {
			uint64_t t = shmstat__now_mono_ns();
			if (t >= until)
				break;
			uint64_t left = (until - t) / 1000000u + 1;
			timeout(left > 100 ? 100 : (int)left);
			int k = getch();
			if (k != ERR && key(v, k) && !stop)
				draw(v);
		}
	}
	screen_end();
	tool_on_fault = NULL;
	if (rc < 0) {
		tool_err("%s", shmstat_errstr(v->h));
		return tool_status(rc);
	}
	return TOOL_OK;
}

/* ------------------------------------------------------------ not a tty */

static int run_plain(struct view *v, long count)
{
	uint64_t last = 0;
	char buf[2 * SHMSTAT_NAME_MAX + 128];
	int rc;

	for (long n = 0; !stop && (count <= 0 || n < count); n++) {
		uint64_t now = shmstat__now_mono_ns();
		if ((rc = sample(v, last ? (double)(now - last) / 1e9 : 0)) < 0) {
			tool_err("%s", shmstat_errstr(v->h));
			return tool_status(rc);
		}
		last = now;
		printf("%s\n%s\n%-50s %16s %14s\n", v->head, v->bridge, "NAME",
		       "VALUE", "RATE/s");
		for (size_t i = 0; i < v->n; i++) {
			row_text(v, &v->rows[i], 50, buf, sizeof(buf));
			printf("%s\n", buf);
		}
		putchar('\n');
		/* A reader that went away ends the view (SIGPIPE may be
		 * ignored by whoever started us). */
		if ((rc = tool_stdout_check()))
			return rc;
		if (count > 0 && n + 1 >= count)
			break;
		uint64_t until = now + v->interval_ns;
		while (!stop) {
			uint64_t t = shmstat__now_mono_ns();
			if (t >= until)
				break;
			uint64_t left = until - t;
			if (left > 100000000u)
				left = 100000000u;
			struct timespec ts = { 0, (long)left };
			nanosleep(&ts, NULL);
		}
	}
	return TOOL_OK;
}

int tool_watch(shmstat_t *h, const char *seg, const struct tool_filter *f,
	       uint64_t interval_ns, long count, bool human,
	       enum tool_sort sort)
{
	shmstat_info_t in;
	struct view v = { .h = h, .seg = seg, .flt = f, .human = human,
			  .sort = sort, .interval_ns = interval_ns };
	struct sigaction sa = { .sa_handler = on_signal };
	int rc;

	if ((rc = shmstat_info(h, &in)) < 0) {
		tool_err("%s", shmstat_errstr(h));
		return tool_status(rc);
	}
	v.max_counters = in.max_counters;
	v.prev = calloc(in.max_counters ? in.max_counters : 1, sizeof(*v.prev));
	v.seen = calloc(in.max_counters ? in.max_counters : 1, 1);
	if (!v.prev || !v.seen) {
		free(v.prev);
		free(v.seen);
		tool_err("out of memory");
		return TOOL_FAILED;
	}
	/* Ours before ncurses starts, so it keeps them. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
		rc = run_curses(&v, count);
	else
		rc = run_plain(&v, count);
	free(v.rows);
	free(v.prev);
	free(v.seen);
	return rc;
}
