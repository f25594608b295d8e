/*
 * test_sync.c — shm/sync.c: the bridge status (sequence lock), freshness,
 * cluster-wide values, reset bases and the global-reset request.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "sync_i.h"
#include "testutil.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static shmstat_sync_status_t live_status(void)
{
	shmstat_sync_status_t st = { 0 };
	st.bridge_pid = (int32_t)getpid();
	st.bridge_start = shmstat__proc_start(getpid());
	st.connected = 1;
	st.interval_ms = 1000;
	st.last_push_ns = now_ns();
	st.pending = 3;
	st.host_id = 0x1234;
	strcpy(st.last_error, "boom");
	strcpy(st.redis_addr, "unix:/x/0");
	return st;
}

static void a_fresh_segment_has_no_bridge_and_is_local(void **state)
{
	struct tu_seg *s = *state;
	shmstat_sync_status_t st;

	assert_int_equal(shmstat_sync_status_read(s->h, &st), 0);
	assert_int_equal(st.bridge_pid, 0);
	assert_false(st.alive);
	assert_int_equal(shmstat_sync_fresh(s->h, 0), 0);
}

static void the_status_written_is_the_status_read(void **state)
{
	struct tu_seg *s = *state;
	shmstat_sync_status_t in = live_status(), out;

	snprintf(in.source, sizeof(in.source), "0000000000001234.00000000000000ab");
	snprintf(in.meta_prefix, sizeof(in.meta_prefix), "m:");
	in.refused_keys = 2;
	snprintf(in.refused_key, sizeof(in.refused_key), "bad");
	in.reserved_names = 1;
	snprintf(in.reserved_name, sizeof(in.reserved_name), "m:x");
	assert_int_equal(shmstat__sync_status_write(s->h, &in), 0);
	assert_int_equal(shmstat_sync_status_read(s->h, &out), 0);
	assert_true(out.alive);
	assert_int_equal(out.pending, 3);
	assert_int_equal(out.host_id, 0x1234);
	assert_string_equal(out.last_error, "boom");
	assert_string_equal(out.redis_addr, "unix:/x/0");
	assert_string_equal(out.source, in.source);
	assert_string_equal(out.meta_prefix, "m:");
	assert_int_equal(out.refused_keys, 2);
	assert_string_equal(out.refused_key, "bad");
	assert_int_equal(out.reserved_names, 1);
	assert_string_equal(out.reserved_name, "m:x");
	assert_int_equal(shmstat_sync_fresh(s->h, 0), 1);
}

static void values_are_local_when_the_push_is_old_or_the_bridge_is_gone(
	void **state)
{
	struct tu_seg *s = *state;
	shmstat_sync_status_t st = live_status();

	st.last_push_ns = now_ns() - 10ull * 1000000000u;
	shmstat__sync_status_write(s->h, &st);
	assert_int_equal(shmstat_sync_fresh(s->h, 0), 0);
	assert_int_equal(shmstat_sync_fresh(s->h, 60000), 1);

	st = live_status();
	st.connected = 0;
	shmstat__sync_status_write(s->h, &st);
	assert_int_equal(shmstat_sync_fresh(s->h, 0), 0);

	/* A bridge that died: its pid is gone. */
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	assert_int_equal(tu_wait(pid, 5000), 0);
	st = live_status();
	st.bridge_pid = pid;
	st.bridge_start = 0;
	shmstat__sync_status_write(s->h, &st);
	assert_int_equal(shmstat_sync_fresh(s->h, 0), 0);
}

static void a_reader_never_sees_a_half_written_status(void **state)
{
	struct tu_seg *s = *state;
	pid_t pid = fork();

	if (pid == 0) {
		shmstat_t *h;
		if (shmstat_open(s->name, NULL, &h) < 0)
			_exit(1);
		shmstat_sync_status_t st = live_status();
		for (uint64_t i = 1; i <= 200000; i++) {
			st.pending = i;
			st.lag_ms = i;
			st.pushes_ok = i;
			shmstat__sync_status_write(h, &st);
		}
		shmstat_close(&h);
		_exit(0);
	}
	shmstat_sync_status_t st;
	uint64_t last = 0;
	int reads = 0;
	for (int i = 0; i < 200000; i++) {
		int rc = shmstat_sync_status_read(s->h, &st);
		if (rc == SHMSTAT_EBUSY)
			continue;
		assert_int_equal(rc, 0);
		assert_int_equal(st.pending, st.lag_ms);
		assert_int_equal(st.pending, st.pushes_ok);
		assert_true(st.pending >= last);
		last = st.pending;
		reads++;
		if (last == 200000)
			break;
	}
	assert_int_equal(tu_wait(pid, 30000), 0);
	assert_true(reads > 0);
}

static void a_bridge_killed_mid_write_does_not_block_the_next(void **state)
{
	struct tu_seg *s = *state;
	struct sync_status *raw = s->h->sync;
	shmstat_sync_status_t st = live_status(), out;

	/* seq left odd: readers give up (bounded) with EBUSY. */
	atomic_store(&raw->seq, 7);
	assert_int_equal(shmstat_sync_status_read(s->h, &out), SHMSTAT_EBUSY);
	assert_int_equal(shmstat__sync_status_write(s->h, &st), 0);
	assert_int_equal(shmstat_sync_status_read(s->h, &out), 0);
	assert_int_equal(atomic_load(&raw->seq) & 1, 0);
}

static void the_global_value_is_readable_through_stat_get(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t c;
	shmstat_stat_t st;

	assert_int_equal(shmstat_counter_open(s->h, "g:x", &c), 0);
	shmstat_counter_add(c, 2);
	assert_int_equal(shmstat_stat_read(s->h, "g:x", &st), 0);
	assert_int_equal(st.global_ns, 0);
	assert_int_equal(shmstat__sync_global_set(s->h, c.index_, 99, 123), 0);
	assert_int_equal(shmstat_stat_read(s->h, "g:x", &st), 0);
	assert_int_equal(st.global, 99);
	assert_int_equal(st.global_ns, 123);
	assert_int_equal(st.value, 2);
	assert_int_equal(shmstat__sync_global_set(s->h, 100000, 1, 1),
			 SHMSTAT_EINVAL);
	assert_int_equal(shmstat__sync_global_set(s->h, (c.index_ + 1) % 4096,
						 1, 1),
			 SHMSTAT_ENOTFOUND);
}

static void the_reset_base_is_kept_per_counter(void **state)
{
	struct tu_seg *s = *state;
	shmstat_counter_t a, b;
	int64_t base;
	uint64_t ep;

	assert_int_equal(shmstat_counter_open(s->h, "a", &a), 0);
	assert_int_equal(shmstat_counter_open(s->h, "b", &b), 0);
	assert_int_equal(shmstat__sync_rbase_get(s->h, a.index_, &base, &ep), 0);
	assert_int_equal(base, 0);
	assert_int_equal(ep, 0);
	assert_int_equal(shmstat__sync_rbase_set(s->h, a.index_, 40, 1700), 0);
	assert_int_equal(shmstat__sync_rbase_get(s->h, a.index_, &base, &ep), 0);
	assert_int_equal(base, 40);
	assert_int_equal(ep, 1700);
	assert_int_equal(shmstat__sync_rbase_get(s->h, b.index_, &base, &ep), 0);
	assert_int_equal(base, 0);
}

static void a_reset_request_is_taken_done_and_waited_for(void **state)
{
	struct tu_seg *s = *state;
	char glob[256];
	uint64_t id, id2, ep, n;

	assert_int_equal(shmstat__sync_reset_take(s->h, glob, sizeof(glob), &id2,
						 &ep),
			 0);
	assert_int_equal(shmstat_sync_reset_request(s->h, "jobs:*", &id), 0);
	/* One at a time. */
	assert_int_equal(shmstat_sync_reset_request(s->h, "x", &id2),
			 SHMSTAT_EBUSY);
	assert_int_equal(shmstat_sync_reset_wait(s->h, id, 20, &n),
			 SHMSTAT_EBUSY);
	assert_int_equal(shmstat__sync_reset_take(s->h, glob, sizeof(glob), &id2,
						 &ep),
			 1);
	assert_string_equal(glob, "jobs:*");
	assert_int_equal(id2, id);
	assert_true(ep > 0);
	/* Taking does not remove it: a bridge that dies runs it again. */
	assert_int_equal(shmstat__sync_reset_take(s->h, glob, sizeof(glob), &id2,
						 &ep),
			 1);
	assert_int_equal(shmstat__sync_reset_done(s->h, id, 3, 0), 0);
	assert_int_equal(shmstat_sync_reset_wait(s->h, id, 20, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(shmstat__sync_reset_take(s->h, glob, sizeof(glob), &id2,
						 &ep),
			 0);
	/* The next one gets a later epoch. */
	uint64_t ep2;
	assert_int_equal(shmstat_sync_reset_request(s->h, "y", &id2), 0);
	assert_true(id2 > id);
	assert_int_equal(shmstat__sync_reset_take(s->h, glob, sizeof(glob), &id2,
						 &ep2),
			 1);
	assert_true(ep2 > ep);
	assert_int_equal(shmstat__sync_reset_done(s->h, id2, 0,
						 SHMSTAT_ESYS),
			 0);
	assert_int_equal(shmstat_sync_reset_wait(s->h, id2, 20, &n),
			 SHMSTAT_ESYS);
	/* Bad patterns. */
	assert_int_equal(shmstat_sync_reset_request(s->h, "", &id),
			 SHMSTAT_EINVAL);
	char big[300];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(shmstat_sync_reset_request(s->h, big, &id),
			 SHMSTAT_EINVAL);
}

static void a_requester_that_died_mid_write_is_taken_over(void **state)
{
	struct tu_seg *s = *state;
	uint64_t id;
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	assert_int_equal(tu_wait(pid, 5000), 0);
	/* State "being written by <dead pid>". */
	atomic_store(&s->h->sync->reset_state,
		     1u | ((uint64_t)(uint32_t)pid << 2));
	assert_int_equal(shmstat_sync_reset_request(s->h, "z*", &id), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, tu_seg_setup, tu_seg_teardown)
		T(a_fresh_segment_has_no_bridge_and_is_local),
		T(the_status_written_is_the_status_read),
		T(values_are_local_when_the_push_is_old_or_the_bridge_is_gone),
		T(a_reader_never_sees_a_half_written_status),
		T(a_bridge_killed_mid_write_does_not_block_the_next),
		T(the_global_value_is_readable_through_stat_get),
		T(the_reset_base_is_kept_per_counter),
		T(a_reset_request_is_taken_done_and_waited_for),
		T(a_requester_that_died_mid_write_is_taken_over),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
