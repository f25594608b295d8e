/*
 * test_cache_stress.c — the cache under several processes at once:
 * mixed get/set/delete with self-checking values (no torn read, ever), and
 * a stampede of 16 processes on one missing key (exactly one computes).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache_i.h"
#include "shmstat_i.h"
#include "test_cache_value.h"
#include "testutil.h"

#define NPROC 4
#define OPS 30000
#define NKEYS 8000
#define MAXV 1024u

struct report {
	uint64_t reads, hits, torn, sets, set_errors, deletes, other_errors;
};

static void worker(const char *name, int id, struct report *r)
{
	shmstat_t *h = NULL;
	unsigned char buf[MAXV];
	char key[32];
	uint32_t seed = 0x9e3779b9u * (uint32_t)(id + 1);

	if (shmstat_open(name, NULL, &h))
		_exit(2);
	for (uint32_t op = 0; op < OPS; op++) {
		seed = seed * 1664525u + 1013904223u;
		uint32_t k = (seed >> 8) % NKEYS, what = (seed >> 4) % 10;
		int kl = snprintf(key, sizeof(key), "stress:%u", k);
		size_t n = 0;
		int rc;
		if (what < 6) {
			r->reads++;
			rc = shmstat_cache_get(h, key, (size_t)kl, buf,
					       sizeof(buf), &n);
			if (rc == 0) {
				r->hits++;
				if (!check_value(buf, n, k))
					r->torn++;
			} else if (rc != SHMSTAT_ENOTFOUND) {
				r->other_errors++;
			}
		} else if (what < 9) {
			n = make_value(buf, k, op * NPROC + (uint32_t)id);
			rc = shmstat_cache_set(h, key, (size_t)kl, buf, n, 0, 0);
			if (rc == 0)
				r->sets++;
			else
				r->set_errors++;
		} else {
			rc = shmstat_cache_delete(h, key, (size_t)kl);
			if (rc == 0)
				r->deletes++;
			else if (rc != SHMSTAT_ENOTFOUND)
				r->other_errors++;
		}
	}
	shmstat_close(&h);
	_exit(0);
}

/*
 * 4 processes, 30,000 mixed operations each on 8,000 keys whose values
 * (8 to 632 bytes, so blocks of many size classes are freed and reused)
 * do not all fit: sets evict, blocks are reused under readers.
 */
static void mixed_processes_never_read_a_torn_value(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .size = 2u << 20, .max_counters = 16,
				.max_workers = 16, .cache_max_value = MAXV };
	tu_seg_create(&s, "stress", &o);
	struct report *rep = tu_shared(sizeof(*rep) * NPROC);
	pid_t pid[NPROC];

	for (int i = 0; i < NPROC; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0)
			worker(s.name, i, &rep[i]);
	}
	for (int i = 0; i < NPROC; i++)
		assert_int_equal(tu_wait(pid[i], 120000), 0);
	struct report t = { 0 };
	for (int i = 0; i < NPROC; i++) {
		t.reads += rep[i].reads;
		t.hits += rep[i].hits;
		t.torn += rep[i].torn;
		t.sets += rep[i].sets;
		t.set_errors += rep[i].set_errors;
		t.deletes += rep[i].deletes;
		t.other_errors += rep[i].other_errors;
	}
	print_message("reads %llu hits %llu torn %llu sets %llu set errors "
		      "%llu deletes %llu\n",
		      (unsigned long long)t.reads, (unsigned long long)t.hits,
		      (unsigned long long)t.torn, (unsigned long long)t.sets,
		      (unsigned long long)t.set_errors,
		      (unsigned long long)t.deletes);
	assert_int_equal(t.torn, 0);
	assert_int_equal(t.other_errors, 0);
	assert_int_equal(t.set_errors, 0);
	assert_true(t.hits > t.reads / 10); /* the reads did read values */
	shmstat_cache_stats_t st;
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.sets, t.sets);
	assert_int_equal(st.hits, t.hits);
	assert_true(st.evictions > 0);
	/* Everything left verifies, and removing it all leaves no block in
	 * use: nothing leaked. */
	unsigned char buf[MAXV];
	char key[32];
	for (uint32_t k = 0; k < NKEYS; k++) {
		size_t n;
		int kl = snprintf(key, sizeof(key), "stress:%u", k);
		if (shmstat_cache_get(s.h, key, (size_t)kl, buf, sizeof(buf),
				      &n) == 0)
			assert_true(check_value(buf, n, k));
	}
	assert_int_equal(shmstat_cache_flush(s.h, NULL), 0);
	assert_int_equal(shmstat_cache_stats(s.h, &st), 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes_used, 0);
	tu_shared_free(rep, sizeof(*rep) * NPROC);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/*
 * One key rewritten 20,000 times or more with a growing sequence number, in
 * values of sizes that move it between its home block and the slab
 * (13 to 300 bytes), now and then deleted and set again, while another
 * process sets keys that contest its home: two readers never see a
 * sequence number smaller than one they saw before (no old value comes
 * back through the home block after the slot moved on: each reads by
 * gets, which look in the home block first, and fetches, which go by the
 * bucket, in turn), and every value they read is whole.
 */
#define MONO_SETS 20000

struct mono {
	_Atomic int done;
	_Atomic uint64_t reads, hits, back, torn;
};

static size_t mono_value(unsigned char *v, uint64_t seq)
{
	size_t n = seq % 3 == 0 ? 300 : 13 + seq % 50;
	memcpy(v, &seq, 8);
	for (size_t i = 8; i < n; i++)
		v[i] = (unsigned char)(seq + i);
	return n;
}

static void mono_reader(const char *name, struct mono *m)
{
	shmstat_t *h = NULL;
	unsigned char buf[MAXV];
	uint64_t last = 0;

	if (shmstat_open(name, NULL, &h))
		_exit(2);
	for (uint32_t i = 0; i < 5000000 && !atomic_load(&m->done); i++) {
		size_t n = 0;
		int out = 0, rc;
		atomic_fetch_add(&m->reads, 1);
		/* A get (its home block first) and a fetch (its bucket) in
		 * turn: what either shows, the other never shows older. */
		if (i % 2) {
			rc = shmstat_cache_fetch(h, "mono", 4, buf, sizeof(buf),
						 &n, 1000, 0, &out);
			if (rc == 0 && out == SHMSTAT_CACHE_LEASED) {
				shmstat_cache_lease_release(h, "mono", 4);
				continue;
			}
		} else {
			rc = shmstat_cache_get(h, "mono", 4, buf, sizeof(buf), &n);
		}
		if (rc != 0)
			continue;
		atomic_fetch_add(&m->hits, 1);
		uint64_t seq;
		unsigned char want[MAXV];
		memcpy(&seq, buf, 8);
		if (n < 8 || mono_value(want, seq) != n || memcmp(buf, want, n))
			atomic_fetch_add(&m->torn, 1);
		else if (seq < last)
			atomic_fetch_add(&m->back, 1);
		else
			last = seq;
	}
	shmstat_close(&h);
	_exit(0);
}

static void a_reader_never_sees_a_key_go_back_in_time(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .size = 8u << 20, .max_counters = 16,
				.max_workers = 16, .cache_max_value = MAXV };
	tu_seg_create(&s, "mono", &o);
	struct mono *m = tu_shared(sizeof(*m));
	pid_t pid[3];

	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0)
			mono_reader(s.name, m);
	}
	pid[2] = fork(); /* the contender: small values of other keys */
	assert_true(pid[2] >= 0);
	if (pid[2] == 0) {
		shmstat_t *h = NULL;
		char key[32];
		if (shmstat_open(s.name, NULL, &h))
			_exit(2);
		for (uint32_t i = 0; i < 200000 && !atomic_load(&m->done); i++) {
			int kl = snprintf(key, sizeof(key), "other:%u",
					  (i * 2654435761u) % 256);
			if (shmstat_cache_set(h, key, (size_t)kl, "x", 1, 0, 0))
				_exit(3);
		}
		shmstat_close(&h);
		_exit(0);
	}
	unsigned char v[MAXV];
	/* At least MONO_SETS sets, and on until the readers have read 1,000
	 * values (at most 10 times as many sets): a slow start of theirs on
	 * a loaded machine does not leave them nothing to check. */
	for (uint64_t seq = 1; seq <= 10 * MONO_SETS &&
			       (seq <= MONO_SETS || atomic_load(&m->hits) < 1000);
	     seq++) {
		if (seq % 97 == 0)
			assert_int_equal(shmstat_cache_delete(s.h, "mono", 4), 0);
		size_t n = mono_value(v, seq);
		assert_int_equal(shmstat_cache_set(s.h, "mono", 4, v, n, 0, 0), 0);
	}
	atomic_store(&m->done, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(tu_wait(pid[i], 120000), 0);
	print_message("monotonic: %llu reads, %llu hits, %llu back in time, "
		      "%llu torn\n",
		      (unsigned long long)m->reads, (unsigned long long)m->hits,
		      (unsigned long long)m->back, (unsigned long long)m->torn);
	assert_int_equal(m->back, 0);
	assert_int_equal(m->torn, 0);
	assert_true(m->hits > 0);
	tu_shared_free(m, sizeof(*m));
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

#define NSTAMPEDE 16

struct stampede {
	_Atomic int ready, arrived, computed, hits, leased, bad;
};

static void stampeder(const char *name, struct stampede *sh)
{
	shmstat_t *h = NULL;
	char buf[64];
	size_t n = 0;
	int out = -1;
	struct timespec ms = { 0, 1000000 };

	if (shmstat_open(name, NULL, &h))
		_exit(2);
	/* All start together. */
	atomic_fetch_add(&sh->ready, 1);
	for (int i = 0; i < 20000 && atomic_load(&sh->ready) < NSTAMPEDE; i++)
		nanosleep(&ms, NULL);
	atomic_fetch_add(&sh->arrived, 1);
	int rc = shmstat_cache_fetch(h, "llm:answer", 10, buf, sizeof(buf), &n,
				     10000, 20000, &out);
	if (rc == 0 && out == SHMSTAT_CACHE_LEASED) {
		atomic_fetch_add(&sh->leased, 1);
		/* "Compute": hold the lease until everyone has asked. */
		for (int i = 0; i < 20000 &&
				atomic_load(&sh->arrived) < NSTAMPEDE;
		     i++)
			nanosleep(&ms, NULL);
		atomic_fetch_add(&sh->computed, 1);
		if (shmstat_cache_set(h, "llm:answer", 10, "42", 2, 0, 0))
			atomic_fetch_add(&sh->bad, 1);
	} else if (rc == 0 && out == SHMSTAT_CACHE_HIT && n == 2 &&
		   memcmp(buf, "42", 2) == 0) {
		atomic_fetch_add(&sh->hits, 1);
	} else {
		atomic_fetch_add(&sh->bad, 1);
	}
	shmstat_close(&h);
	_exit(0);
}

static void sixteen_processes_missing_at_once_compute_once(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .size = 2u << 20, .max_counters = 16,
				.max_workers = 32, .cache_max_value = MAXV };
	tu_seg_create(&s, "stampede", &o);
	struct stampede *sh = tu_shared(sizeof(*sh));
	pid_t pid[NSTAMPEDE];

	for (int i = 0; i < NSTAMPEDE; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0)
			stampeder(s.name, sh);
	}
	for (int i = 0; i < NSTAMPEDE; i++)
		assert_int_equal(tu_wait(pid[i], 60000), 0);
	assert_int_equal(atomic_load(&sh->leased), 1);
	assert_int_equal(atomic_load(&sh->computed), 1);
	assert_int_equal(atomic_load(&sh->hits), NSTAMPEDE - 1);
	assert_int_equal(atomic_load(&sh->bad), 0);
	tu_shared_free(sh, sizeof(*sh));
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mixed_processes_never_read_a_torn_value),
		cmocka_unit_test(sixteen_processes_missing_at_once_compute_once),
		cmocka_unit_test(a_reader_never_sees_a_key_go_back_in_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
