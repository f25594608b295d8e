/*
 * test_fuzz.c — random bytes over a segment's header, registry and
 * directory: opening, listing, reading info and counting must give a result
 * or an error, never a crash (run it under -Dsanitize=true for ASan's
 * view). Bounded: a fixed number of rounds from a fixed seed, so a failure
 * reproduces.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "testutil.h"

#define IN_PROCESS_ROUNDS 3000
#define TOOL_ROUNDS 60

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int count_cb(const shmstat_stat_t *st, void *priv)
{
	(void)st;
	(*(int *)priv)++;
	return 0;
}

struct target {
	struct tu_seg s;
	unsigned char *raw;  /* our own mapping of the object */
	unsigned char *good; /* a copy of the damaged span before damage */
	size_t span;         /* header + registry + directory */
};

static void target_make(struct target *t)
{
	shmstat_options_t o = { .max_counters = 64, .max_workers = 8,
				.size = 2u << 20 };
	char name[32];
	tu_seg_create(&t->s, "fuzz", &o);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), i % 5 ? "fuzz:c%d" : "fuzz:g%d", i);
		if (i % 5)
			shmstat_counter_add_by_name(t->s.h, name, (uint64_t)i);
		else {
			shmstat_gauge_t g;
			shmstat_gauge_open(t->s.h, name, &g);
			shmstat_gauge_set(g, -i);
		}
	}
	size_t size;
	t->raw = shmstat__base(t->s.h, &size);
	const struct seg_header *hdr = (const void *)t->raw;
	t->span = hdr->region[REG_DIRECTORY].off + hdr->region[REG_DIRECTORY].size;
	t->good = malloc(t->span);
	memcpy(t->good, t->raw, t->span);
}

static void damage(struct target *t)
{
	memcpy(t->raw, t->good, t->span);
	int hits = 1 + (int)(next() % 16);
	for (int i = 0; i < hits; i++) {
		/* Half the hits in the header, where damage matters most. */
		size_t at = next() % (next() % 2 ? SEG_HDR_SIZE : t->span);
		size_t len = 1 + next() % 8;
		for (size_t k = 0; k < len && at + k < t->span; k++)
			t->raw[at + k] = (unsigned char)next();
	}
}

static void random_damage_never_crashes_the_library(void **state)
{
	(void)state;
	struct target t;
	int opened = 0, refused = 0;

	target_make(&t);
	for (int round = 0; round < IN_PROCESS_ROUNDS; round++) {
		damage(&t);
		shmstat_t *h;
		int rc = shmstat_open(t.s.name, NULL, &h);
		if (rc < 0) {
			assert_true(rc == SHMSTAT_ETRUNC || rc == SHMSTAT_EMAGIC ||
				    rc == SHMSTAT_EVERSION ||
				    rc == SHMSTAT_ECORRUPT || rc == SHMSTAT_EINIT);
			refused++;
			continue;
		}
		opened++;
		int n = 0;
		shmstat_info_t in;
		shmstat_stat_t st;
		(void)shmstat_iter(h, NULL, count_cb, &n);
		(void)shmstat_info(h, &in);
		(void)shmstat_stat_read(h, "fuzz:c1", &st);
		(void)shmstat_reset(h, "fuzz:c2*", NULL);
		uint32_t reaped;
		(void)shmstat_reap(h, &reaped);
		shmstat_counter_t c;
		if (shmstat_counter_open(h, "fuzz:new", &c) == 0)
			shmstat_counter_add(c, 1);
		shmstat_close(&h);
	}
	/* Both kinds of outcome happened: the damage reached what is
	 * validated and what is not. */
	assert_true(opened > 0);
	assert_true(refused > 0);
	memcpy(t.raw, t.good, t.span);
	free(t.good);
	shmstat_close(&t.s.h);
	shmstat_unlink(t.s.name);
}

/* The tool reading a damaged segment exits 0, 1 or 2, never by a signal. */
static void random_damage_never_crashes_the_tool(void **state)
{
	(void)state;
	struct target t;
	char out[1 << 16];

	target_make(&t);
	for (int round = 0; round < TOOL_ROUNDS; round++) {
		damage(&t);
		int rc = tu_tool(out, sizeof(out), "-n", t.s.name, "list", NULL);
		assert_true(rc <= 2);
		rc = tu_tool(out, sizeof(out), "-n", t.s.name, "info", "-j", NULL);
		assert_true(rc <= 2);
		rc = tu_tool(out, sizeof(out), "-n", t.s.name, "list", "-j", NULL);
		assert_true(rc <= 2);
	}
	memcpy(t.raw, t.good, t.span);
	free(t.good);
	shmstat_close(&t.s.h);
	shmstat_unlink(t.s.name);
}

/*
 * Another process rewriting an entry while we read it: the length we copy
 * with is the one we checked, never a second read. A thread flips a
 * name's length between a sane and an absurd value (a bounded number of
 * times) while this thread iterates; under ASan an overflow would stop
 * the test, and every name read must be within bounds. (Whether a reader
 * that re-reads the length fails here depends on the compiler keeping
 * both loads; the reader now reads it once, atomically.)
 */
struct flipper {
	uint16_t *len;
	volatile int stop;
};

static void *flip(void *p)
{
	struct flipper *f = p;
	for (long i = 0; i < 20000000 && !f->stop; i++)
		__atomic_store_n(f->len, (uint16_t)(i % 2 ? 4000 : 3),
				 __ATOMIC_RELAXED);
	return NULL;
}

static int check_len(const shmstat_stat_t *st, void *priv)
{
	(void)priv;
	assert_true(st->name_len <= SHMSTAT_NAME_MAX);
	assert_int_equal(strlen(st->name), st->name_len);
	return 0;
}

static void a_length_changing_under_a_reader_is_never_trusted(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_counters = 8, .size = 2u << 20 };
	tu_seg_create(&s, "flip", &o);
	shmstat_counter_add_by_name(s.h, "abc", 1);
	size_t size;
	unsigned char *raw = shmstat__base(s.h, &size);
	const struct seg_header *hdr = (const void *)raw;
	struct dir_entry *dir = (void *)(raw + hdr->region[REG_DIRECTORY].off);
	struct dir_entry *e = NULL;
	for (int i = 0; i < 8; i++)
		if (dir[i].name_len == 3)
			e = &dir[i];
	assert_non_null(e);
	struct flipper f = { .len = &e->name_len };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, flip, &f), 0);
	int corrupt = 0, fine = 0;
	for (int i = 0; i < 20000; i++) {
		int rc = shmstat_iter(s.h, NULL, check_len, NULL);
		if (rc == SHMSTAT_ECORRUPT)
			corrupt++;
		else if (rc == 0)
			fine++;
		else
			fail_msg("iter: %d", rc);
		shmstat_stat_t st;
		rc = shmstat_stat_read(s.h, "abc", &st);
		assert_true(rc == 0 || rc == SHMSTAT_ECORRUPT ||
			    rc == SHMSTAT_ENOTFOUND);
	}
	f.stop = 1;
	pthread_join(t, NULL);
	assert_true(fine > 0);
	e->name_len = 3;
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_damage_never_crashes_the_library),
		cmocka_unit_test(random_damage_never_crashes_the_tool),
		cmocka_unit_test(a_length_changing_under_a_reader_is_never_trusted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
