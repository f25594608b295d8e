/*
 * test_segment.c — creating, attaching and refusing segments (shm/segment.c).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache_i.h"
#include "layout_i.h"
#include "shmstat_i.h"
#include "testutil.h"

static int raw_fd(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/shmstat.%s", name);
	return shm_open(path, O_RDWR, 0);
}

/* Map the raw object of a closed segment, for the tests that damage it. */
static struct seg_header *raw_map(const char *name, size_t *len)
{
	int fd = raw_fd(name);
	struct stat st;
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED, fd, 0);
	close(fd);
	assert_true(p != MAP_FAILED);
	*len = (size_t)st.st_size;
	return p;
}

static void created_segment_is_attached_with_the_same_geometry(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .max_counters = 100, .max_workers = 10,
				.size = 4u << 20 };
	tu_seg_create(&s, "geom", &o);
	shmstat_t *h2;
	assert_int_equal(shmstat_open(s.name, NULL, &h2), 0);
	shmstat_info_t a, b;
	assert_int_equal(shmstat_info(s.h, &a), 0);
	assert_int_equal(shmstat_info(h2, &b), 0);
	assert_int_equal(b.max_counters, 100);
	assert_int_equal(b.max_workers, 10);
	assert_int_equal(b.size, 4u << 20);
	assert_int_equal(b.layout_major, SEG_LAYOUT_MAJOR);
	assert_int_equal(a.created_ns, b.created_ns);
	assert_int_equal(b.creator_pid, getpid());
	/* Regions lie inside the segment, in order, without overlap: all
	 * of them, the help table (2.1) too, with what it holds. */
	assert_int_equal(shmstat_help_set(h2, "req_total", "Requests."), 0);
	assert_int_equal(shmstat_info(h2, &b), 0);
	assert_int_equal(b.nregions, REG_ALL);
	uint64_t end = SEG_HDR_SIZE;
	int help = -1;
	for (uint32_t r = 0; r < b.nregions; r++) {
		assert_true(b.region[r].offset >= end);
		end = b.region[r].offset + b.region[r].size;
		if (strcmp(b.region[r].name, "help") == 0)
			help = (int)r;
	}
	assert_true(end <= b.size);
	assert_true(help >= 0);
	assert_int_equal(b.region[help].used, sizeof(struct help_entry));
	shmstat_close(&h2);
	assert_null(h2);
	shmstat_close(&s.h);
	assert_int_equal(shmstat_unlink(s.name), 0);
}

static void invalid_segment_names_are_refused(void **state)
{
	(void)state;
	/* 65 characters: one too many. */
	const char *too_long = "0123456789012345678901234567890123456789"
			       "0123456789012345678901234";
	const char *bad[] = { "", "a/b", "..", ".", "a..b", "sp ace", "tab\t",
			      "x\n", "é", too_long };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		shmstat_t *h = (shmstat_t *)0x1;
		shmstat_options_t o = { .flags = SHMSTAT_O_CREATE };
		assert_int_equal(shmstat_name_check(bad[i]), SHMSTAT_ENAME);
		assert_int_equal(shmstat_open(bad[i], &o, &h), SHMSTAT_ENAME);
		assert_null(h);
		assert_non_null(strstr(shmstat_errstr(NULL), "invalid segment name"));
	}
	assert_int_equal(shmstat_open(NULL, NULL, &(shmstat_t *){ 0 }), SHMSTAT_ENAME);
	assert_int_equal(shmstat_name_check("a-Z_0.9"), 0);
	assert_int_equal(shmstat_name_check(
				 "0123456789012345678901234567890123456789"
				 "012345678901234567890123"), 0); /* 64 */
}

static void attaching_a_missing_segment_gives_enoent(void **state)
{
	(void)state;
	char name[64];
	shmstat_t *h;
	tu_name(name, sizeof(name), "missing");
	assert_int_equal(shmstat_open(name, NULL, &h), SHMSTAT_ENOENT);
	assert_null(h);
	assert_non_null(strstr(shmstat_errstr(NULL), "no segment"));
	assert_int_equal(shmstat_unlink(name), SHMSTAT_ENOENT);
}

static void exclusive_create_of_an_existing_segment_gives_eexist(void **state)
{
	struct tu_seg *s = *state;
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL };
	shmstat_t *h;
	assert_int_equal(shmstat_open(s->name, &o, &h), SHMSTAT_EEXIST);
	/* Without EXCL, CREATE attaches to the existing one. */
	o.flags = SHMSTAT_O_CREATE;
	assert_int_equal(shmstat_open(s->name, &o, &h), 0);
	shmstat_info_t a, b;
	shmstat_info(s->h, &a);
	shmstat_info(h, &b);
	assert_int_equal(a.created_ns, b.created_ns);
	shmstat_close(&h);
}

static void truncated_segment_gives_etrunc_not_sigbus(void **state)
{
	struct tu_seg *s = *state;
	shmstat_t *h;
	int fd = raw_fd(s->name);
	assert_true(fd >= 0);
	/* Shorter than its header says. */
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_ETRUNC);
	assert_non_null(strstr(shmstat_errstr(NULL), "truncated"));
	/* Shorter than a header. */
	assert_int_equal(ftruncate(fd, 100), 0);
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_ETRUNC);
	close(fd);
}

static void wrong_magic_gives_emagic(void **state)
{
	struct tu_seg *s = *state;
	size_t len;
	struct seg_header *hdr = raw_map(s->name, &len);
	shmstat_t *h;
	atomic_store(&hdr->magic, UINT64_C(0x0123456789abcdef));
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_EMAGIC);
	assert_non_null(strstr(shmstat_errstr(NULL), "not a shmstat segment"));
	munmap(hdr, len);
}

static void another_major_version_gives_eversion(void **state)
{
	struct tu_seg *s = *state;
	size_t len;
	struct seg_header *hdr = raw_map(s->name, &len);
	shmstat_t *h;
	hdr->ver_major = SEG_LAYOUT_MAJOR + 1;
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_EVERSION);
	char want[64];
	snprintf(want, sizeof(want), "layout version %u.", SEG_LAYOUT_MAJOR + 1);
	assert_non_null(strstr(shmstat_errstr(NULL), want));
	/* And an older one: a 1.x segment is named as such. */
	hdr->ver_major = 1;
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_EVERSION);
	assert_non_null(strstr(shmstat_errstr(NULL), "layout version 1."));
	snprintf(want, sizeof(want), "this build reads %u.x", SEG_LAYOUT_MAJOR);
	assert_non_null(strstr(shmstat_errstr(NULL), want));
	/* A newer minor version of our major is accepted. */
	hdr->ver_major = SEG_LAYOUT_MAJOR;
	hdr->ver_minor = SEG_LAYOUT_MINOR + 1;
	assert_int_equal(shmstat_open(s->name, NULL, &h), 0);
	shmstat_close(&h);
	munmap(hdr, len);
}

/* The rule of layout_i.h: a minor bump only gives meaning to reserved
 * bytes or appends regions, so a segment of a newer minor attaches, counts
 * and caches, and reports its own version. */
static void a_newer_minor_layout_attaches_and_works(void **state)
{
	struct tu_seg *s = *state;
	size_t len;
	struct seg_header *hdr = raw_map(s->name, &len);
	hdr->ver_minor = SEG_LAYOUT_MINOR + 1;
	shmstat_t *h;
	assert_int_equal(shmstat_open(s->name, NULL, &h), 0);
	assert_int_equal(shmstat_counter_add_by_name(h, "c", 3), 0);
	assert_int_equal(shmstat_cache_set(h, "k", 1, "v", 1, 0, 0), 0);
	char v[8];
	size_t n;
	assert_int_equal(shmstat_cache_get(h, "k", 1, v, sizeof(v), &n), 0);
	shmstat_info_t in;
	assert_int_equal(shmstat_info(h, &in), 0);
	assert_int_equal(in.layout_major, SEG_LAYOUT_MAJOR);
	assert_int_equal(in.layout_minor, SEG_LAYOUT_MINOR + 1);
	shmstat_close(&h);
	/* Read-only too (the tool's inspecting commands). */
	shmstat_options_t ro = { .flags = SHMSTAT_O_RDONLY };
	assert_int_equal(shmstat_open(s->name, &ro, &h), 0);
	shmstat_close(&h);
	munmap(hdr, len);
}

/* A cache region of another format (another build of shmstat) is named
 * as a version mismatch with both versions, not as corruption. */
static void another_cache_format_gives_eversion_naming_both(void **state)
{
	struct tu_seg *s = *state;
	size_t len;
	struct seg_header *hdr = raw_map(s->name, &len);
	unsigned char *cache = (unsigned char *)hdr + hdr->region[REG_CACHE].off;
	uint32_t ver, ours = shmstat__cache_format();
	memcpy(&ver, cache + 8, sizeof(ver)); /* after the u64 magic */
	assert_int_equal(ver, ours);
	ver = ours + 1;
	memcpy(cache + 8, &ver, sizeof(ver));
	shmstat_t *h;
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_EVERSION);
	char want[128];
	snprintf(want, sizeof(want), "cache format version %u; this build reads "
		 "cache format %u", ours + 1, ours);
	assert_non_null(strstr(shmstat_errstr(NULL), want));
	assert_null(strstr(shmstat_errstr(NULL), "invalid"));
	/* Its magic broken: that is corruption. */
	memcpy(cache + 8, &ours, sizeof(ours));
	cache[0] ^= 0xff;
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_ECORRUPT);
	cache[0] ^= 0xff;
	assert_int_equal(shmstat_open(s->name, NULL, &h), 0);
	shmstat_close(&h);
	munmap(hdr, len);
}

static void region_outside_the_segment_gives_ecorrupt(void **state)
{
	struct tu_seg *s = *state;
	size_t len;
	struct seg_header *hdr = raw_map(s->name, &len);
	shmstat_t *h;
	struct seg_region saved = hdr->region[REG_ROWS];

	hdr->region[REG_ROWS].off = len - SEG_ALIGN; /* runs past the end */
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_ECORRUPT);
	assert_non_null(strstr(shmstat_errstr(NULL), "outside the segment"));
	hdr->region[REG_ROWS].off = UINT64_MAX - 127; /* overflows off+size */
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_ECORRUPT);
	hdr->region[REG_ROWS] = hdr->region[REG_DIRECTORY]; /* overlap */
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_ECORRUPT);
	assert_non_null(strstr(shmstat_errstr(NULL), "overlap"));
	hdr->region[REG_ROWS] = saved;
	hdr->max_counters = hdr->max_counters * 2; /* rows too small now */
	assert_int_equal(shmstat_open(s->name, NULL, &h), SHMSTAT_ECORRUPT);
	munmap(hdr, len);
}

static void a_segment_its_creator_never_built_gives_einit(void **state)
{
	(void)state;
	char name[64], path[80];
	shmstat_options_t o = { .wait_ms = 50 };
	shmstat_t *h;

	tu_name(name, sizeof(name), "unbuilt");
	snprintf(path, sizeof(path), "/shmstat.%s", name);
	int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	/* Size 0: the creator died before sizing it; the way out names the
	 * segment. */
	assert_int_equal(shmstat_open(name, &o, &h), SHMSTAT_EINIT);
	char want[128];
	snprintf(want, sizeof(want), "remove it with 'shmstat -n %s destroy'",
		 name);
	assert_non_null(strstr(shmstat_errstr(NULL), want));
	/* Sized, magic still 0: died while building. */
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_int_equal(shmstat_open(name, &o, &h), SHMSTAT_EINIT);
	assert_non_null(strstr(shmstat_errstr(NULL), "never initialized"));
	close(fd);
	shm_unlink(path);
}

static mode_t seg_mode(const char *name)
{
	struct stat st;
	int fd = raw_fd(name);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	return st.st_mode & 07777;
}

static void mode_is_0600_unless_asked(void **state)
{
	(void)state;
	struct tu_seg a, b;
	shmstat_options_t o = { .mode = 0660 };
	mode_t old = umask(022); /* the umask must not weaken the request */
	tu_seg_create(&a, "mode", NULL);
	tu_seg_create(&b, "mode", &o);
	umask(old);
	assert_int_equal(seg_mode(a.name), 0600);
	assert_int_equal(seg_mode(b.name), 0660);
	shmstat_close(&a.h);
	shmstat_close(&b.h);
	shmstat_unlink(a.name);
	shmstat_unlink(b.name);
}

/* A world-writable segment lets any local user truncate it and crash
 * every worker: refused at creation, with the reason, nothing created. */
static void a_world_writable_mode_is_refused_at_creation(void **state)
{
	(void)state;
	char name[64];
	tu_name(name, sizeof(name), "oww");
	const unsigned modes[] = { 0666, 0602, 0777, 0622 };
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		shmstat_options_t o = { .flags = SHMSTAT_O_CREATE, .mode = modes[i] };
		shmstat_t *h = (shmstat_t *)0x1;
		assert_int_equal(shmstat_open(name, &o, &h), SHMSTAT_EINVAL);
		assert_null(h);
		const char *e = shmstat_errstr(NULL);
		assert_non_null(strstr(e, "world-writable"));
		assert_non_null(strstr(e, "any local user could truncate it and "
					  "crash every worker"));
		assert_non_null(strstr(e, "0660"));
		assert_int_equal(raw_fd(name), -1); /* nothing was created */
	}
	/* Group-writable is what sharing needs: accepted. */
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE, .mode = 0664 };
	shmstat_t *h;
	assert_int_equal(shmstat_open(name, &o, &h), 0);
	shmstat_close(&h);
	shmstat_unlink(name);
}

/* A bad name's reason says what is wrong with that name, and speaks of
 * '..' only for a name that holds it. */
static void a_bad_segment_names_reason_says_what_is_wrong(void **state)
{
	(void)state;
	const char *too_long = "0123456789012345678901234567890123456789"
			       "0123456789012345678901234";
	const struct {
		const char *name, *want;
	} c[] = {
		{ "", "empty" },
		{ "a/b", "'/' is not allowed" },
		{ "x\xff", "a character outside [A-Za-z0-9_.-]" },
		{ "sp ace", "a character outside [A-Za-z0-9_.-]" },
		{ too_long, "longer than 64" },
		{ "a..b", "'..' is not allowed" },
		{ ".", "'.' alone" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		shmstat_t *h;
		assert_int_equal(shmstat_open(c[i].name, NULL, &h), SHMSTAT_ENAME);
		const char *e = shmstat_errstr(NULL);
		assert_non_null(strstr(e, c[i].want));
		if (!strstr(c[i].name, ".."))
			assert_null(strstr(e, ".."));
		assert_int_equal(shmstat_unlink(c[i].name), SHMSTAT_ENAME);
		assert_non_null(strstr(shmstat_errstr(NULL), c[i].want));
	}
}

static void creation_that_cannot_reserve_memory_gives_enospc(void **state)
{
	(void)state;
	char name[64];
	/* Far more than /dev/shm holds: posix_fallocate fails up front. */
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE,
				.size = (size_t)1 << 40 };
	shmstat_t *h;
	tu_name(name, sizeof(name), "nospc");
	assert_int_equal(shmstat_open(name, &o, &h), SHMSTAT_ENOSPC);
	assert_non_null(strstr(shmstat_errstr(NULL), "cannot reserve"));
	/* Nothing is left behind under the name. */
	assert_int_equal(shmstat_open(name, NULL, &h), SHMSTAT_ENOENT);
}

static void a_size_too_small_for_the_tables_gives_einval(void **state)
{
	(void)state;
	char name[64];
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE, .size = 8192 };
	shmstat_t *h;
	tu_name(name, sizeof(name), "small");
	assert_int_equal(shmstat_open(name, &o, &h), SHMSTAT_EINVAL);
	assert_non_null(strstr(shmstat_errstr(NULL), "too small"));
	o.size = 0;
	o.max_workers = 100000;
	assert_int_equal(shmstat_open(name, &o, &h), SHMSTAT_EINVAL);
}

/*
 * Twenty processes start at the same moment on a segment that does not
 * exist: exactly one creates it, all attach, and every one sees a whole
 * header (the geometry asked for) and can count.
 */
#define RACERS 20
struct race {
	volatile int go;
	volatile int rc[RACERS];
	volatile uint32_t counters[RACERS];
	volatile int creator[RACERS];
};

static void twenty_processes_creating_at_once_all_attach_to_one(void **state)
{
	(void)state;
	char name[64];
	struct race *r = tu_shared(sizeof(*r));
	pid_t pids[RACERS];

	tu_name(name, sizeof(name), "race");
	for (int i = 0; i < RACERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			shmstat_options_t o = { .flags = SHMSTAT_O_CREATE,
						.max_counters = 777,
						.size = 8u << 20 };
			shmstat_t *h;
			while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
				;
			r->rc[i] = shmstat_open(name, &o, &h);
			if (r->rc[i] == 0) {
				shmstat_info_t in;
				shmstat_info(h, &in);
				r->counters[i] = in.max_counters;
				r->creator[i] = in.creator_pid == getpid();
				shmstat_counter_add_by_name(h, "racers", 1);
				shmstat_close(&h);
			}
			_exit(0);
		}
	}
	__atomic_store_n(&r->go, 1, __ATOMIC_RELEASE);
	int creators = 0;
	for (int i = 0; i < RACERS; i++) {
		assert_int_equal(tu_wait(pids[i], 30000), 0);
		assert_int_equal(r->rc[i], 0);
		assert_int_equal(r->counters[i], 777);
		creators += r->creator[i];
	}
	assert_int_equal(creators, 1);
	shmstat_t *h;
	shmstat_stat_t st;
	assert_int_equal(shmstat_open(name, NULL, &h), 0);
	assert_int_equal(shmstat_stat_read(h, "racers", &st), 0);
	assert_int_equal(st.value, RACERS);
	shmstat_close(&h);
	shmstat_unlink(name);
	tu_shared_free(r, sizeof(*r));
}

static void every_error_code_has_a_distinct_message(void **state)
{
	(void)state;
	const int codes[] = {
#define C_(name, value, msg) SHMSTAT_##name,
		SHMSTAT_ERRORS(C_)
#undef C_
	};
	size_t n = sizeof(codes) / sizeof(codes[0]);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_string_not_equal(shmstat_strerror(codes[i]),
						shmstat_strerror(codes[j]));
	assert_string_equal(shmstat_strerror(12345), "unknown error");
}

static void close_accepts_null_and_clears_the_pointer(void **state)
{
	(void)state;
	shmstat_t *h = NULL;
	shmstat_close(NULL);
	shmstat_close(&h);
	assert_null(h);
}

/* The inline hot path's structs are ABI. */
static void hot_path_structs_keep_their_size(void **state)
{
	(void)state;
	assert_int_equal(sizeof(shmstat_counter_t), 16);
	assert_int_equal(offsetof(shmstat_counter_t, index_), 8);
	assert_int_equal(sizeof(struct shmstat_row_), 16);
	assert_int_equal(sizeof(shmstat_gauge_t), 16);
	assert_int_equal(sizeof(shmstat_histogram_t), 16);
}

/*
 * A segment squatted by another user (nobody creates shmstat.NAME before
 * the service) is refused by a root service opening with O_CREATE, with an
 * error naming segment, path, owner and mode; accepted when the caller
 * names that owner, or attaches read-only.
 */
static void a_segment_squatted_by_another_user_is_refused(void **state)
{
	(void)state;
	char name[SHMSTAT_SEGNAME_MAX + 1], out[4096];
	const char *tool = getenv("SHMSTAT_TOOL");
	shmstat_t *h = NULL;

	tu_name(name, sizeof(name), "squat");
	assert_int_equal(tu_sh(out, sizeof(out),
			       TU_AS_NOBODY "%s -n %s create --mode 0644",
			       tool, name),
			 0);
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE };
	assert_int_equal(shmstat_open(name, &o, &h), SHMSTAT_EOWNER);
	assert_null(h);
	const char *e = shmstat_errstr(NULL);
	char want[256];
	snprintf(want, sizeof(want), "segment '%s' (/dev/shm/shmstat.%s)", name,
		 name);
	assert_non_null(strstr(e, want));
	assert_non_null(strstr(e, "owner uid 65534 (nobody)"));
	assert_non_null(strstr(e, "mode 0644"));
	/* Naming the owner we expect: accepted; another owner: refused. */
	o = (shmstat_options_t){ .flags = SHMSTAT_O_OWNER, .owner_uid = 65534 };
	assert_int_equal(shmstat_open(name, &o, &h), 0);
	shmstat_close(&h);
	o.owner_uid = 0;
	assert_int_equal(shmstat_open(name, &o, &h), SHMSTAT_EOWNER);
	/* Read-only inspection is fine; writing through it is refused. */
	o = (shmstat_options_t){ .flags = SHMSTAT_O_RDONLY };
	assert_int_equal(shmstat_open(name, &o, &h), 0);
	shmstat_counter_t c;
	shmstat_gauge_t g;
	assert_int_equal(shmstat_counter_open(h, "x", &c), SHMSTAT_ERDONLY);
	shmstat_counter_add(c, 1); /* the sink: no fault */
	assert_int_equal(shmstat_gauge_open(h, "g", &g), SHMSTAT_ERDONLY);
	shmstat_gauge_set(g, 1); /* the sink: no fault */
	assert_int_equal(shmstat_reset(h, NULL, NULL), SHMSTAT_ERDONLY);
	assert_int_equal(shmstat_reap(h, NULL), SHMSTAT_ERDONLY);
	assert_int_equal(shmstat_cache_set(h, "k", 1, "v", 1, 0, 0),
			 SHMSTAT_ERDONLY);
	shmstat_info_t in;
	assert_int_equal(shmstat_info(h, &in), 0);
	assert_int_equal(in.owner_uid, 65534);
	assert_int_equal(in.mode, 0644);
	assert_true(in.read_only);
	shmstat_close(&h);
	/* The tool says who owns it. */
	assert_int_equal(tu_sh(out, sizeof(out), "%s -n %s info", tool, name), 0);
	assert_non_null(strstr(out, "owner:     uid 65534, gid 65534, mode 0644"));
	/* A group-shared mode of a group we are not in is still refused. */
	assert_int_equal(tu_sh(out, sizeof(out), "chmod 0660 /dev/shm/shmstat.%s",
			       name),
			 0);
	assert_int_equal(shmstat_open(name, NULL, &h), SHMSTAT_EOWNER);
	o = (shmstat_options_t){ .flags = SHMSTAT_O_GROUP, .group_gid = 65534 };
	assert_int_equal(shmstat_open(name, &o, &h), 0);
	shmstat_close(&h);
	shmstat_unlink(name);
}

/*
 * Another user inspects a 0644 segment with the tool: list, get, info,
 * health and list -p work read-only; writing is refused with an error.
 */
static void another_user_inspects_a_0644_segment_read_only(void **state)
{
	(void)state;
	struct tu_seg s;
	shmstat_options_t o = { .mode = 0644 };
	char out[8192];
	const char *tool = getenv("SHMSTAT_TOOL");

	tu_seg_create(&s, "ro", &o);
	assert_int_equal(shmstat_counter_add_by_name(s.h, "req", 5), 0);
#define NOBODY(...) tu_sh(out, sizeof(out), TU_AS_NOBODY __VA_ARGS__)
	assert_int_equal(NOBODY("%s -n %s get req", tool, s.name), 0);
	assert_string_equal(out, "5\n");
	assert_int_equal(NOBODY("%s -n %s list", tool, s.name), 0);
	assert_non_null(strstr(out, "req"));
	assert_int_equal(NOBODY("%s -n %s list -p", tool, s.name), 0);
	assert_non_null(strstr(out, "} 5\n"));
	assert_int_equal(NOBODY("%s -n %s info", tool, s.name), 0);
	assert_non_null(strstr(out, "owner:     uid 0, gid 0, mode 0644\n"));
	assert_int_equal(NOBODY("%s -n %s health --no-bridge", tool, s.name), 0);
	/* Writing: refused, nothing changed. */
	assert_int_not_equal(NOBODY("%s -n %s incr req", tool, s.name), 0);
	assert_non_null(strstr(out, "shmstat: "));
	/* Removing it: only its owner or root may (sticky /dev/shm), and
	 * that is what is said, not the read/write advice. */
	assert_int_equal(NOBODY("%s -n %s destroy", tool, s.name), 2);
	assert_non_null(strstr(out, "is owned by root: only its owner or root "
				    "can remove it"));
	assert_null(strstr(out, "--mode"));
#undef NOBODY
	int64_t v;
	shmstat_counter_t c;
	assert_int_equal(shmstat_counter_open(s.h, "req", &c), 0);
	assert_int_equal(shmstat_counter_read(s.h, c, &v), 0);
	assert_int_equal(v, 5);
	shmstat_close(&s.h);
	shmstat_unlink(s.name);
}

/*
 * info's page_size is the page of the segment's file system: /dev/shm's
 * own (st_blksize of the segment's file), and 2 MiB on a tmpfs mounted
 * huge=within_size, where the mapping is then made of huge pages. The
 * huge mount is made in a mount namespace of a child's own, so the
 * host's /dev/shm is never touched; skipped where that is not allowed
 * (not root) or the kernel has no huge tmpfs.
 */
static int huge_child(const char *name, const char *tool)
{
	char out[4096];
	shmstat_t *h = NULL;
	shmstat_info_t in;

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/dev/shm", "tmpfs", 0,
		  "huge=within_size,size=64m") < 0)
		return 77;
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL,
				.size = 8u << 20 };
	if (shmstat_open(name, &o, &h) < 0 || shmstat_info(h, &in) < 0)
		return 10;
	if (in.page_size != (2u << 20))
		return 11;
	/* The mapping is made of huge pages: the cache region, written
	 * through, is mapped by PMDs (smaps counts them). */
	unsigned char v[1024] = { 0 };
	for (int i = 0; i < 2000; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		if (shmstat_cache_set(h, k, strlen(k), v, sizeof(v), 0, 0) < 0)
			return 12;
	}
	FILE *f = fopen("/proc/self/smaps", "r");
	long pmd = 0, kb;
	if (!f)
		return 13;
	while (fgets(out, sizeof(out), f))
		if (sscanf(out, "ShmemPmdMapped: %ld kB", &kb) == 1)
			pmd += kb;
	fclose(f);
	if (pmd < 2048)
		return 13;
	if (tu_sh(out, sizeof(out), "%s -n %s info", tool, name) != 0 ||
	    !strstr(out, "pages:     2 MiB (huge pages)"))
		return 14;
	shmstat_close(&h);
	shmstat_unlink(name);
	return 0;
}

static void info_names_the_page_size_of_the_segments_memory(void **state)
{
	(void)state;
	char name[SHMSTAT_SEGNAME_MAX + 1], path[128], out[4096];
	const char *tool = getenv("SHMSTAT_TOOL");
	shmstat_t *h = NULL;
	shmstat_info_t in;
	struct stat st;

	tu_name(name, sizeof(name), "pages");
	shmstat_options_t o = { .flags = SHMSTAT_O_CREATE | SHMSTAT_O_EXCL };
	assert_int_equal(shmstat_open(name, &o, &h), 0);
	assert_int_equal(shmstat_info(h, &in), 0);
	snprintf(path, sizeof(path), "/dev/shm/shmstat.%s", name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(in.page_size, (uint32_t)st.st_blksize);
	assert_true(in.page_size >= 4096);
	assert_int_equal(tu_sh(out, sizeof(out), "%s -n %s info -j", tool, name),
			 0);
	char want[64];
	snprintf(want, sizeof(want), "\"page_size\": %u,", in.page_size);
	assert_non_null(strstr(out, want));
	shmstat_close(&h);
	shmstat_unlink(name);

	tu_name(name, sizeof(name), "huge");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(huge_child(name, tool));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(created_segment_is_attached_with_the_same_geometry),
		cmocka_unit_test(invalid_segment_names_are_refused),
		cmocka_unit_test(attaching_a_missing_segment_gives_enoent),
		cmocka_unit_test_setup_teardown(
			exclusive_create_of_an_existing_segment_gives_eexist,
			tu_seg_setup, tu_seg_teardown),
		cmocka_unit_test_setup_teardown(
			truncated_segment_gives_etrunc_not_sigbus, tu_seg_setup,
			tu_seg_teardown),
		cmocka_unit_test_setup_teardown(wrong_magic_gives_emagic,
						tu_seg_setup, tu_seg_teardown),
		cmocka_unit_test_setup_teardown(
			another_major_version_gives_eversion, tu_seg_setup,
			tu_seg_teardown),
		cmocka_unit_test_setup_teardown(
			a_newer_minor_layout_attaches_and_works, tu_seg_setup,
			tu_seg_teardown),
		cmocka_unit_test_setup_teardown(
			another_cache_format_gives_eversion_naming_both,
			tu_seg_setup, tu_seg_teardown),
		cmocka_unit_test_setup_teardown(
			region_outside_the_segment_gives_ecorrupt, tu_seg_setup,
			tu_seg_teardown),
		cmocka_unit_test(a_segment_its_creator_never_built_gives_einit),
		cmocka_unit_test(mode_is_0600_unless_asked),
		cmocka_unit_test(a_world_writable_mode_is_refused_at_creation),
		cmocka_unit_test(a_bad_segment_names_reason_says_what_is_wrong),
		cmocka_unit_test(creation_that_cannot_reserve_memory_gives_enospc),
		cmocka_unit_test(a_size_too_small_for_the_tables_gives_einval),
		cmocka_unit_test(twenty_processes_creating_at_once_all_attach_to_one),
		cmocka_unit_test(every_error_code_has_a_distinct_message),
		cmocka_unit_test(close_accepts_null_and_clears_the_pointer),
		cmocka_unit_test(hot_path_structs_keep_their_size),
		cmocka_unit_test(a_segment_squatted_by_another_user_is_refused),
		cmocka_unit_test(another_user_inspects_a_0644_segment_read_only),
		cmocka_unit_test(info_names_the_page_size_of_the_segments_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
