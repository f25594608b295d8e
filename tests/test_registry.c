/*
 * test_registry.c — rows and who owns them (shm/registry.c): claim,
 * release, reaping by pid + start time, adoption, and thousands of
 * short-lived processes on a small registry.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "testutil.h"

static void a_closed_handles_row_is_reused_by_the_next_claimer(void **state)
{
	struct tu_seg *s = *state;
	shmstat_t *a, *b;
	shmstat_counter_t c;

	assert_int_equal(shmstat_open(s->name, NULL, &a), 0);
	assert_int_equal(shmstat_counter_open(a, "x", &c), 0);
	int32_t slot = a->slot;
	shmstat_counter_add(c, 7);
	shmstat_close(&a);
	assert_int_equal(shmstat_open(s->name, NULL, &b), 0);
	assert_int_equal(shmstat_counter_open(b, "x", &c), 0);
	assert_int_equal(b->slot, slot);
	/* Adopted: the new owner adds on top of what it found. */
	shmstat_counter_add(c, 1);
	assert_int_equal(shmstat__row_cells(b, (uint32_t)slot)[c.index_], 8);
	shmstat_close(&b);
}

static void a_reader_that_never_counts_claims_no_row(void **state)
{
	struct tu_seg *s = *state;
	shmstat_t *h;
	shmstat_stat_t st;

	shmstat_counter_add_by_name(s->h, "x", 1);
	assert_int_equal(shmstat_open(s->name, NULL, &h), 0);
	assert_int_equal(shmstat_stat_read(h, "x", &st), 0);
	assert_int_equal(h->slot, -1);
	shmstat_info_t in;
	shmstat_info(h, &in);
	assert_int_equal(in.workers_live, 1); /* the fixture's handle only */
	shmstat_close(&h);
}

/* A slot whose pid is alive but whose start time differs: the pid was
 * reused by another process, so the owner is dead. */
static void a_reused_pid_is_not_taken_for_the_owner(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_add_by_name(s->h, "x", 1);
	int32_t w = s->h->slot;
	struct worker_slot *slot = &s->h->slots[w + 1];
	uint64_t me = (uint64_t)getpid();
	uint64_t start = shmstat__proc_start(getpid());

	assert_true(start != 0);
	assert_int_equal(shmstat__proc_alive(getpid(), start), 1);
	assert_int_equal(shmstat__proc_alive(getpid(), start + 1), 0);
	atomic_store(&slot->start, start + 1);
	atomic_store(&slot->word, slot_word(SLOT_LIVE, (int32_t)me, 3));
	if (atomic_load(&s->h->hdr->workers_hwm) < (uint32_t)w + 2)
		atomic_store(&s->h->hdr->workers_hwm, (uint32_t)w + 2);
	uint32_t n;
	assert_int_equal(shmstat_reap(s->h, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(slot_state(atomic_load(&slot->word)), SLOT_FREE);
	/* Our own live slot was not touched. */
	assert_int_equal(slot_state(atomic_load(&s->h->slots[w].word)), SLOT_LIVE);
}

static void a_claim_cut_short_by_death_is_reaped(void **state)
{
	struct tu_seg *s = *state;
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	assert_int_equal(tu_wait(pid, 10000), 0);
	struct worker_slot *slot = &s->h->slots[5];
	/* Died between the claim CAS and writing its start time. */
	atomic_store(&slot->word, slot_word(SLOT_CLAIMED, pid, 9));
	uint32_t n;
	assert_int_equal(shmstat_reap(s->h, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(slot_gen(atomic_load(&slot->word)), 10);
}

/* Registry of 16 rows; 2,000 processes that each count once: half close,
 * half exit without closing (as if killed). None is refused a row, none of
 * their counts is lost. */
static void thousands_of_short_lived_processes_never_exhaust_the_registry(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_workers = 16, .max_counters = 64,
				.size = 2u << 20 };
	const int n = 2000;

	tu_seg_create(&s, "churn", &o);
	for (int i = 0; i < n; i += 8) {
		pid_t pids[8];
		for (int j = 0; j < 8; j++) {
			pids[j] = fork();
			if (pids[j] == 0) {
				shmstat_t *h;
				if (shmstat_open(s.name, NULL, &h))
					_exit(10);
				if (shmstat_counter_add_by_name(h, "churn", 1))
					_exit(11);
				if ((i + j) % 2)
					shmstat_close(&h);
				_exit(0);
			}
		}
		for (int j = 0; j < 8; j++)
			assert_int_equal(tu_wait(pids[j], 30000), 0);
	}
	shmstat_stat_t st;
	assert_int_equal(shmstat_stat_read(s.h, "churn", &st), 0);
	assert_int_equal(st.value, n);
	shmstat_info_t in;
	shmstat_info(s.h, &in);
	assert_int_equal(in.row_overflows, 0);
	assert_true(in.workers_hwm <= 16);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/* The tool's incr in a shell-style loop: each run claims and frees a row. */
static void the_tools_incr_in_a_loop_reuses_rows(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_workers = 4, .max_counters = 64,
				.size = 2u << 20 };
	char out[64];

	tu_seg_create(&s, "toolloop", &o);
	for (int i = 1; i <= 200; i++)
		assert_int_equal(tu_tool(out, sizeof(out), "-n", s.name, "incr",
					 "loop", NULL),
				 0);
	assert_int_equal(atoll(out), 200);
	shmstat_info_t in;
	shmstat_info(s.h, &in);
	assert_int_equal(in.row_overflows, 0);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/* When every row is held by a live process, a new handle still counts
 * exactly, in the shared overflow row, and says so. */
static void a_registry_full_of_live_processes_counts_in_the_overflow_row(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_workers = 2, .max_counters = 8,
				.size = 2u << 20 };
	shmstat_t *a, *b;
	shmstat_counter_t c;
	int64_t v;

	tu_seg_create(&s, "live", &o);
	assert_int_equal(shmstat_open(s.name, NULL, &a), 0);
	assert_int_equal(shmstat_open(s.name, NULL, &b), 0);
	assert_int_equal(shmstat_counter_open(s.h, "x", &c), 0);
	assert_int_equal(shmstat_counter_open(a, "x", &c), 0);
	assert_int_equal(shmstat_counter_open(b, "x", &c), 0);
	shmstat_counter_add(c, 7);
	shmstat_info_t in;
	shmstat_info(b, &in);
	assert_int_equal(in.row_overflows, 1);
	assert_int_equal(in.handle_row, SHMSTAT_ROW_OVERFLOW);
	assert_int_equal(shmstat_counter_read(b, c, &v), 0);
	assert_int_equal(v, 7);
	shmstat_close(&b);
	/* Its counts outlive it, as a row's do. */
	assert_int_equal(shmstat_counter_add_by_name(a, "x", 1), 0);
	assert_int_equal(shmstat_counter_open(a, "x", &c), 0);
	assert_int_equal(shmstat_counter_read(a, c, &v), 0);
	assert_int_equal(v, 8);
	shmstat_close(&a);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/*
 * A process in another pid namespace (a sidecar container that shares
 * /dev/shm) sees every pid of ours as dead: it must not reap our rows, or
 * a live worker's row gets a second writer. Runs the tool under
 * `unshare --pid`; skipped where namespaces cannot be made.
 */
static void a_process_in_another_pid_namespace_reaps_nothing(void **state)
{
	struct tu_seg *s = *state;
	char out[64], cmd[512];
	const char *tool = getenv("SHMSTAT_TOOL");

	if (system("unshare -Urpf --mount-proc true >/dev/null 2>&1") != 0) {
		skip();
		return;
	}
	shmstat_counter_add_by_name(s->h, "x", 1); /* our live row */
	snprintf(cmd, sizeof(cmd),
		 "unshare -Urpf --mount-proc %s -n %s reap", tool, s->name);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, sizeof(out), p));
	assert_int_equal(pclose(p), 0);
	assert_string_equal(out, "0\n");
	assert_int_equal(slot_state(atomic_load(&s->h->slots[s->h->slot].word)),
			 SLOT_LIVE);
	/* In our own namespace a dead owner is still reaped. */
	pid_t pid = fork();
	if (pid == 0) {
		shmstat_t *h;
		if (shmstat_open(s->name, NULL, &h) ||
		    shmstat_counter_add_by_name(h, "x", 1))
			_exit(1);
		_exit(0); /* no close: the row stays claimed */
	}
	assert_int_equal(tu_wait(pid, 10000), 0);
	uint32_t n;
	assert_int_equal(shmstat_reap(s->h, &n), 0);
	/* One: the child's own handle. The fixture's handle it inherited
	 * never counted in the child, so it claimed no row there. */
	assert_int_equal(n, 1);
}

/* Wait (bounded) until pid is a zombie: its parent has not reaped it. */
static void wait_zombie(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 10000; i++) {
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'Z')
			return;
		usleep(1000);
	}
	fail_msg("pid %d never became a zombie", (int)pid);
}

/* A child that exited without closing and that its parent has not waited
 * for yet is dead: its row is reaped, its counts stay. */
static void a_zombie_holds_no_row(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c;
	int64_t v;

	assert_int_equal(shmstat_counter_open(s->h, "z", &c), 0);
	pid_t pid = fork();
	if (pid == 0) {
		shmstat_counter_add(c, 4);
		_exit(0); /* no close */
	}
	wait_zombie(pid);
	shmstat_info_t in;
	assert_int_equal(shmstat_info(s->h, &in), 0);
	assert_int_equal(in.workers_dead, 1);
	uint32_t n;
	assert_int_equal(shmstat_reap(s->h, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(shmstat_counter_read(s->h, c, &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(tu_wait(pid, 10000), 0);
}

/* Children that exec a long-running program: one that counted first
 * gives its row back (it no longer maps the segment), one that never
 * counted never took one. */
static void an_execd_child_gives_its_row_back(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c;
	shmstat_info_t in;
	int64_t v;

	assert_int_equal(shmstat_counter_open(s->h, "e", &c), 0);
	shmstat_counter_add(c, 1);
	pid_t quiet = fork();
	if (quiet == 0) {
		execlp("sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t counted = fork();
	if (counted == 0) {
		close(p[0]);
		shmstat_counter_add(c, 6);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		execlp("sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char b;
	assert_int_equal(read(p[0], &b, 1), 1); /* it counted */
	close(p[0]);
	/* Reap until the exec has happened (bounded: 10 s). */
	uint32_t n = 0, total = 0;
	for (int i = 0; i < 10000 && total == 0; i++) {
		assert_int_equal(shmstat_reap(s->h, &n), 0);
		total += n;
		if (total == 0)
			usleep(1000);
	}
	assert_int_equal(total, 1);
	assert_int_equal(shmstat_info(s->h, &in), 0);
	assert_int_equal(in.workers_live, 1); /* ours only: sleep holds none */
	assert_int_equal(shmstat_counter_read(s->h, c, &v), 0);
	assert_int_equal(v, 7);
	kill(quiet, SIGKILL);
	kill(counted, SIGKILL);
	tu_wait(quiet, 10000);
	tu_wait(counted, 10000);
}

/*
 * 150 long-lived and 50 short-lived children over the default 128 rows:
 * every increment lands. The ones that find no row count in the shared
 * overflow row, and info says so. Each child writes a byte to `ready`
 * when it has counted; the long-lived ones then block on `home` until
 * the parent closes it (EOF), at most 120 s should the test die first.
 */
static void two_hundred_processes_over_128_rows_count_exactly(void **state)
{
	(void)state;
	struct tu_seg s;
	enum { LONG = 150, SHORT = 50, PER = 1000 };
	pid_t pids[LONG + SHORT];
	shmstat_counter_t c;
	int64_t v;
	int ready[2], home[2];

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(home), 0);
	tu_seg_create(&s, "many", NULL); /* 128 rows */
	assert_int_equal(shmstat_counter_open(s.h, "many", &c), 0);
	for (int i = 0; i < LONG + SHORT; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(ready[0]);
			close(home[1]);
			for (int k = 0; k < PER; k++)
				shmstat_counter_incr(c);
			if (write(ready[1], "r", 1) != 1)
				_exit(3);
			if (i < LONG) { /* long-lived: hold the row */
				struct pollfd p = { .fd = home[0],
						    .events = POLLIN };
				(void)poll(&p, 1, 120000);
			}
			_exit(0); /* no close */
		}
	}
	close(ready[1]);
	close(home[0]);
	int got = 0;
	char b[LONG + SHORT];
	for (;;) {
		struct pollfd p = { .fd = ready[0], .events = POLLIN };
		if (got == LONG + SHORT || poll(&p, 1, 120000) <= 0)
			break;
		ssize_t r = read(ready[0], b, sizeof(b));
		if (r <= 0)
			break;
		got += (int)r;
	}
	assert_int_equal(got, LONG + SHORT);
	assert_int_equal(shmstat_counter_read(s.h, c, &v), 0);
	assert_int_equal(v, (LONG + SHORT) * PER);
	shmstat_info_t in;
	assert_int_equal(shmstat_info(s.h, &in), 0);
	assert_true(in.row_overflows > 0);
	close(home[1]); /* go home */
	for (int i = 0; i < LONG + SHORT; i++)
		assert_int_equal(tu_wait(pids[i], 60000), 0);
	close(ready[0]);
	assert_int_equal(shmstat_counter_read(s.h, c, &v), 0);
	assert_int_equal(v, (LONG + SHORT) * PER);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tu_seg_setup, tu_seg_teardown)
	const struct CMUnitTest tests[] = {
		T(a_closed_handles_row_is_reused_by_the_next_claimer),
		T(a_reader_that_never_counts_claims_no_row),
		T(a_reused_pid_is_not_taken_for_the_owner),
		T(a_claim_cut_short_by_death_is_reaped),
		T(a_process_in_another_pid_namespace_reaps_nothing),
		cmocka_unit_test(thousands_of_short_lived_processes_never_exhaust_the_registry),
		cmocka_unit_test(the_tools_incr_in_a_loop_reuses_rows),
		cmocka_unit_test(a_registry_full_of_live_processes_counts_in_the_overflow_row),
		T(a_zombie_holds_no_row),
		T(an_execd_child_gives_its_row_back),
		cmocka_unit_test(two_hundred_processes_over_128_rows_count_exactly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
