/*
 * segment.c — creating, attaching, validating and unmapping the segment.
 *
 * Invariants kept here:
 *   - The header's magic is written last, with release order: a process
 *     that reads SEG_MAGIC with acquire order sees a complete header and
 *     initialized regions. A zero magic means "being built".
 *   - Creation is O_CREAT|O_EXCL: exactly one process creates; the others
 *     attach once the magic is published, waiting at most wait_ms.
 *   - Nothing read from the segment is trusted before validate() has
 *     checked it against the real size of the shared-memory object, so a
 *     truncated, foreign or corrupt segment gives an error, never a fault.
 *     The geometry is then copied into the handle and never re-read.
 *   - Ownership is checked on the open file before anything is mapped: a
 *     segment another user can write (and so truncate under us, which is a
 *     SIGBUS no check can prevent) is attached only when the caller asked
 *     for it (see shmstat_open() in shmstat.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_i.h"
#include "shmstat_i.h"

#define DEFAULT_SIZE (32u << 20)
#define DEFAULT_COUNTERS 4096u
#define DEFAULT_WORKERS 128u
#define DEFAULT_CACHE_MAX_VALUE (1u << 20)
#define DEFAULT_WAIT_MS 2000u
#define MAX_COUNTERS (1u << 24)
#define MAX_WORKERS 4096u
#define MAX_SIZE (UINT64_C(1) << 40)

static const char *const region_names[REG_ALL] = {
	"registry", "directory", "rows", "sync", "cache", "help",
};

int shmstat_name_check(const char *name)
{
	size_t n;

	if (!name)
		return SHMSTAT_ENAME;
	n = strlen(name);
	if (n == 0 || n > SHMSTAT_SEGNAME_MAX)
		return SHMSTAT_ENAME;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return SHMSTAT_ENAME;
	}
	if (strcmp(name, ".") == 0 || strstr(name, ".."))
		return SHMSTAT_ENAME;
	return SHMSTAT_OK;
}

const char *shmstat__name_problem(const char *name)
{
	if (!name)
		return "no name was given";
	size_t n = strlen(name);
	if (n == 0)
		return "the name is empty (use 1 to 64 of [A-Za-z0-9_.-])";
	if (n > SHMSTAT_SEGNAME_MAX)
		return "the name is longer than 64 characters";
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return c == '/' ? "a '/' is not allowed (use 1 to 64 of "
					  "[A-Za-z0-9_.-])"
					: "it holds a character outside "
					  "[A-Za-z0-9_.-]";
	}
	if (strcmp(name, ".") == 0)
		return "'.' alone is not a name";
	if (strstr(name, ".."))
		return "'..' is not allowed in a name";
	return NULL;
}

static void shm_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/shmstat.%s", name);
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

struct geometry {
	uint64_t size;
	uint32_t counters, workers, row_stride;
	uint64_t cache_max_value;
	uint32_t cache_home_pct;
	struct seg_region region[REG_ALL];
};

static int plan(const shmstat_options_t *o, struct geometry *g)
{
	uint64_t off = SEG_HDR_SIZE;

	g->size = o->size ? o->size : DEFAULT_SIZE;
	g->counters = o->max_counters ? o->max_counters : DEFAULT_COUNTERS;
	g->workers = o->max_workers ? o->max_workers : DEFAULT_WORKERS;
	g->cache_max_value =
		o->cache_max_value ? o->cache_max_value : DEFAULT_CACHE_MAX_VALUE;
	g->cache_home_pct = o->cache_home_pct;
	if (g->cache_home_pct > 90)
		return shmstat__err(NULL, SHMSTAT_EINVAL,
				    "cache_home_pct %u is above the limit 90",
				    g->cache_home_pct);
	if (g->counters > MAX_COUNTERS)
		return shmstat__err(NULL, SHMSTAT_EINVAL,
				    "max_counters %u is above the limit %u",
				    g->counters, MAX_COUNTERS);
	if (g->workers > MAX_WORKERS)
		return shmstat__err(NULL, SHMSTAT_EINVAL,
				    "max_workers %u is above the limit %u",
				    g->workers, MAX_WORKERS);
	if (g->size > MAX_SIZE)
		return shmstat__err(NULL, SHMSTAT_EINVAL,
				    "size %llu is above the limit %llu",
				    (unsigned long long)g->size,
				    (unsigned long long)MAX_SIZE);
	g->row_stride = (uint32_t)align_up(ROW_HDR_BYTES + 8ull * g->counters,
					   SEG_ALIGN);
	uint64_t sizes[REG_COUNT] = {
		[REG_REGISTRY] = (uint64_t)g->workers * sizeof(struct worker_slot),
		[REG_DIRECTORY] = (uint64_t)g->counters * sizeof(struct dir_entry),
		/* W rows and the overflow row. */
		[REG_ROWS] = ((uint64_t)g->workers + 1) * g->row_stride,
		[REG_SYNC] = sizeof(struct sync_status),
	};
	for (int r = 0; r < REG_CACHE; r++) {
		g->region[r].off = off;
		g->region[r].size = align_up(sizes[r], SEG_ALIGN);
		off += g->region[r].size;
	}
	/* 2.1: the help table, before the cache (which takes the rest). */
	g->region[REG_HELP].off = off;
	g->region[REG_HELP].size = (uint64_t)help_entries(g->counters) *
				   sizeof(struct help_entry);
	off += g->region[REG_HELP].size;
	uint64_t cmin = shmstat__cache_min_size(g->cache_max_value);
	if (cmin == 0)
		return shmstat__err(NULL, SHMSTAT_EINVAL,
				    "cache_max_value %llu is above the limit %u",
				    (unsigned long long)g->cache_max_value,
				    CACHE_MAX_VALUE_LIMIT);
	uint64_t need = off + cmin;
	if (g->size < need)
		return shmstat__err(NULL, SHMSTAT_EINVAL,
				    "size %llu is too small for %u counters, "
				    "%u workers and a cache of values up to "
				    "%llu bytes (%u pages of one largest value "
				    "each): need at least %llu bytes, or a "
				    "smaller cache_max_value",
				    (unsigned long long)g->size, g->counters,
				    g->workers,
				    (unsigned long long)g->cache_max_value,
				    CACHE_MIN_PAGES, (unsigned long long)need);
	g->size = align_up(g->size, (uint64_t)sysconf(_SC_PAGESIZE));
	g->region[REG_CACHE].off = off;
	g->region[REG_CACHE].size = g->size - off;
	return 0;
}

static void host_identity(struct seg_header *hdr)
{
	char buf[128] = "";
	int fd;

	if (gethostname(hdr->host_name, sizeof(hdr->host_name) - 1) < 0)
		strcpy(hdr->host_name, "unknown");
	/* Prefer the machine id: stable across renames. */
	fd = open("/etc/machine-id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
	}
	if (buf[0])
		hdr->host_id = shmstat__hash(buf, strlen(buf));
	else
		hdr->host_id = shmstat__hash(hdr->host_name,
					     strlen(hdr->host_name));
}

/* A random nonce: a recreated segment is a new sync source. Falls back
 * to a hash of the creation time, pid and host when getrandom fails. */
static void source_nonce(struct seg_header *hdr)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v) ||
	    v == 0) {
		char buf[160];
		int n = snprintf(buf, sizeof(buf), "%llu|%d|%llu|%s",
				 (unsigned long long)hdr->created_ns,
				 (int)hdr->creator_pid,
				 (unsigned long long)shmstat__now_mono_ns(),
				 hdr->host_name);
		v = shmstat__hash(buf, (size_t)n) | 1u;
	}
	hdr->source_nonce = v;
}

/* Build the header and regions in a fresh mapping; publish the magic last. */
static int build(struct shmstat *h, const struct geometry *g)
{
	struct seg_header *hdr = (struct seg_header *)(void *)h->base;

	/* ftruncate gave zeroed memory: every region's initial state is 0. */
	hdr->ver_major = SEG_LAYOUT_MAJOR;
	hdr->ver_minor = SEG_LAYOUT_MINOR;
	hdr->hdr_size = SEG_HDR_SIZE;
	hdr->total_size = g->size;
	hdr->created_ns = shmstat__now_realtime_ns();
	hdr->creator_pid = (int32_t)getpid();
	hdr->creator_start = shmstat__proc_start(getpid());
	hdr->max_counters = g->counters;
	hdr->max_workers = g->workers;
	hdr->row_stride = g->row_stride;
	hdr->nregions = REG_ALL;
	hdr->cache_max_value = g->cache_max_value;
	memcpy(hdr->region, g->region, sizeof(g->region));
	host_identity(hdr);
	source_nonce(hdr);
	int rc = shmstat__cache_init(h->base + g->region[REG_CACHE].off,
				     g->region[REG_CACHE].size,
				     g->cache_max_value, g->cache_home_pct);
	if (rc < 0)
		return shmstat__err(NULL, rc, "cannot lay out the cache region");
	atomic_store_explicit(&hdr->magic, SEG_MAGIC, memory_order_release);
	return 0;
}

/*
 * Check the mapped header against the object's real size and copy the
 * geometry into h. Returns 0, or an error whose reason names the field.
 */
static int validate(struct shmstat *h, uint64_t real_size)
{
	const struct seg_header *hdr = (const struct seg_header *)(void *)h->base;
	const char *n = h->name;

	if (hdr->ver_major != SEG_LAYOUT_MAJOR)
		return shmstat__err(NULL, SHMSTAT_EVERSION,
				    "segment '%s' has layout version %u.%u; "
				    "this build reads %u.x",
				    n, hdr->ver_major, hdr->ver_minor,
				    SEG_LAYOUT_MAJOR);
	if (hdr->hdr_size != SEG_HDR_SIZE)
		return shmstat__err(NULL, SHMSTAT_ECORRUPT,
				    "segment '%s': header size %u, expected %u",
				    n, hdr->hdr_size, SEG_HDR_SIZE);
	if (hdr->total_size > real_size)
		return shmstat__err(NULL, SHMSTAT_ETRUNC,
				    "segment '%s' is truncated: %llu bytes, its "
				    "header says %llu",
				    n, (unsigned long long)real_size,
				    (unsigned long long)hdr->total_size);
	if (hdr->total_size != real_size)
		return shmstat__err(NULL, SHMSTAT_ECORRUPT,
				    "segment '%s' is %llu bytes, its header "
				    "says %llu",
				    n, (unsigned long long)real_size,
				    (unsigned long long)hdr->total_size);
	if (hdr->nregions < REG_COUNT || hdr->nregions > SHMSTAT_MAX_REGIONS)
		return shmstat__err(NULL, SHMSTAT_ECORRUPT,
				    "segment '%s': %u regions, expected %u to %u",
				    n, hdr->nregions, REG_COUNT,
				    SHMSTAT_MAX_REGIONS);
	for (uint32_t r = 0; r < hdr->nregions; r++) {
		uint64_t off = hdr->region[r].off, sz = hdr->region[r].size;
		if (off < SEG_HDR_SIZE || off % SEG_ALIGN || off > real_size ||
		    sz > real_size - off)
			return shmstat__err(NULL, SHMSTAT_ECORRUPT,
					    "segment '%s': region %u (offset "
					    "%llu, size %llu) lies outside the "
					    "segment of %llu bytes",
					    n, r, (unsigned long long)off,
					    (unsigned long long)sz,
					    (unsigned long long)real_size);
		for (uint32_t q = 0; q < r; q++) {
			uint64_t qo = hdr->region[q].off;
			uint64_t qs = hdr->region[q].size;
			if (off < qo + qs && qo < off + sz)
				return shmstat__err(NULL, SHMSTAT_ECORRUPT,
						    "segment '%s': regions %u "
						    "and %u overlap",
						    n, q, r);
		}
	}
	uint32_t c = hdr->max_counters, w = hdr->max_workers;
	if (c == 0 || c > MAX_COUNTERS || w == 0 || w > MAX_WORKERS)
		return shmstat__err(NULL, SHMSTAT_ECORRUPT,
				    "segment '%s': %u counters, %u workers are "
				    "out of range",
				    n, c, w);
	if (hdr->row_stride % SEG_ALIGN ||
	    hdr->row_stride < ROW_HDR_BYTES + 8ull * c)
		return shmstat__err(NULL, SHMSTAT_ECORRUPT,
				    "segment '%s': row stride %u cannot hold "
				    "%u counters",
				    n, hdr->row_stride, c);
	const struct seg_region *rg = hdr->region;
	if (rg[REG_REGISTRY].size < (uint64_t)w * sizeof(struct worker_slot) ||
	    rg[REG_DIRECTORY].size < (uint64_t)c * sizeof(struct dir_entry) ||
	    rg[REG_ROWS].size < ((uint64_t)w + 1) * hdr->row_stride ||
	    rg[REG_SYNC].size < sizeof(struct sync_status))
		return shmstat__err(NULL, SHMSTAT_ECORRUPT,
				    "segment '%s': a region is smaller than "
				    "its table",
				    n);
	if (hdr->cache_max_value == 0 ||
	    hdr->cache_max_value > rg[REG_CACHE].size)
		return shmstat__err(NULL, SHMSTAT_ECORRUPT,
				    "segment '%s': cache value limit %llu does "
				    "not fit the cache region",
				    n, (unsigned long long)hdr->cache_max_value);

	h->hdr = (struct seg_header *)(void *)h->base;
	h->max_counters = c;
	h->max_workers = w;
	h->row_stride = hdr->row_stride;
	h->slots = (struct worker_slot *)(void *)(h->base + rg[REG_REGISTRY].off);
	h->dir = (struct dir_entry *)(void *)(h->base + rg[REG_DIRECTORY].off);
	h->rows = h->base + rg[REG_ROWS].off;
	h->sync = (struct sync_status *)(void *)(h->base + rg[REG_SYNC].off);
	h->cache = h->base + rg[REG_CACHE].off;
	h->cache_size = rg[REG_CACHE].size;
	/* 2.1: the help table, when the creator made one. */
	h->help = NULL;
	h->help_n = 0;
	if (hdr->nregions > REG_HELP &&
	    rg[REG_HELP].size >= (uint64_t)help_entries(c) * sizeof(struct help_entry)) {
		h->help = (struct help_entry *)(void *)(h->base + rg[REG_HELP].off);
		h->help_n = help_entries(c);
	}
	uint32_t cver;
	int rc = shmstat__cache_validate(h->cache, h->cache_size,
					 hdr->cache_max_value, &h->cache_geo,
					 &cver);
	if (rc == SHMSTAT_EVERSION)
		return shmstat__err(NULL, rc, "segment '%s' (layout %u.%u) has "
				    "cache format version %u; this build reads "
				    "cache format %u: it was made by another "
				    "build of shmstat",
				    n, hdr->ver_major, hdr->ver_minor, cver,
				    shmstat__cache_format());
	if (rc < 0)
		return shmstat__err(NULL, rc, "segment '%s': the cache region "
				    "is invalid", n);
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int map(struct shmstat *h, int fd, size_t len)
{
	int prot = h->rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
	void *p = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return shmstat__errno(NULL, SHMSTAT_ESYS, "mmap");
	h->base = p;
	h->size = len;
	return 0;
}

static void unmap(struct shmstat *h)
{
	if (h->base)
		munmap(h->base, h->size);
	h->base = NULL;
	h->size = 0;
}

/* We won the O_EXCL race: size, reserve, build, publish. */
static int create(struct shmstat *h, int fd, const char *path,
		  const struct geometry *g, unsigned mode)
{
	int rc;

	/* shm_open applied the umask; the caller's mode is what counts. */
	if (fchmod(fd, mode) < 0) {
		rc = shmstat__errno(NULL, SHMSTAT_ESYS, "fchmod");
		goto fail;
	}
	if (ftruncate(fd, (off_t)g->size) < 0) {
		rc = shmstat__errno(NULL, SHMSTAT_ESYS, "ftruncate");
		goto fail;
	}
	/* Reserve the pages now: on a full /dev/shm the failure is here, not a
	 * SIGBUS in some worker's first touch of a page. */
	rc = posix_fallocate(fd, 0, (off_t)g->size);
	if (rc != 0) {
		rc = shmstat__err(NULL, rc == ENOSPC ? SHMSTAT_ENOSPC : SHMSTAT_ESYS,
				  "cannot reserve %llu bytes for segment '%s': %s",
				  (unsigned long long)g->size, h->name,
				  strerror(rc));
		goto fail;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = shmstat__errno(NULL, SHMSTAT_ESYS, "fstat");
		goto fail;
	}
	h->seg_ino = (uint64_t)st.st_ino;
	h->seg_uid = (uint32_t)st.st_uid;
	h->seg_gid = (uint32_t)st.st_gid;
	h->seg_mode = (uint32_t)st.st_mode & 07777;
	h->seg_blksize = (uint32_t)st.st_blksize;
	if ((rc = map(h, fd, g->size)) < 0)
		goto fail;
	if ((rc = build(h, g)) < 0)
		goto fail;
	/* What we built must pass what every attacher checks. */
	if ((rc = validate(h, g->size)) < 0)
		goto fail;
	return 0;
fail:
	unmap(h);
	shm_unlink(path);
	return rc;
}

static bool in_group(gid_t g)
{
	gid_t groups[256];
	int n;

	if (getegid() == g)
		return true;
	n = getgroups(256, groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == g)
			return true;
	return false;
}

/* "uid 65534 (nobody)" */
static void user_str(char *buf, size_t len, uid_t u)
{
	struct passwd pw, *r = NULL;
	char tmp[1024];

	if (getpwuid_r(u, &pw, tmp, sizeof(tmp), &r) == 0 && r)
		snprintf(buf, len, "uid %u (%s)", (unsigned)u, r->pw_name);
	else
		snprintf(buf, len, "uid %u", (unsigned)u);
}

static void group_str(char *buf, size_t len, gid_t g)
{
	struct group gr, *r = NULL;
	char tmp[1024];

	if (getgrgid_r(g, &gr, tmp, sizeof(tmp), &r) == 0 && r)
		snprintf(buf, len, "gid %u (%s)", (unsigned)g, r->gr_name);
	else
		snprintf(buf, len, "gid %u", (unsigned)g);
}

/*
 * May this caller attach to the object st describes? The rule of
 * shmstat_open() in shmstat.h. Records owner, group and mode in h.
 */
static int check_owner(struct shmstat *h, const struct stat *st,
		       const shmstat_options_t *o)
{
	unsigned mode = (unsigned)st->st_mode & 07777;
	bool group_rw = (mode & 0060) == 0060;
	const char *why = NULL;
	char owner[96], group[96], me[96];

	h->seg_ino = (uint64_t)st->st_ino;
	h->seg_uid = (uint32_t)st->st_uid;
	h->seg_gid = (uint32_t)st->st_gid;
	h->seg_mode = mode;
	h->seg_blksize = (uint32_t)st->st_blksize;
	if ((o->flags & SHMSTAT_O_OWNER) && st->st_uid != (uid_t)o->owner_uid)
		why = "its owner is not the expected one";
	else if ((o->flags & SHMSTAT_O_GROUP) &&
		 (st->st_gid != (gid_t)o->group_gid || !group_rw))
		why = st->st_gid != (gid_t)o->group_gid
			      ? "its group is not the expected one"
			      : "its mode does not let the group write";
	else if ((o->flags & (SHMSTAT_O_OWNER | SHMSTAT_O_GROUP)) ||
		 h->rdonly || st->st_uid == geteuid() ||
		 (group_rw && in_group(st->st_gid)))
		return 0;
	else
		why = "it is owned by another user";
	/* What works instead: for a segment that is not the one asked for,
	 * nothing (it may be an impostor); else its owner, its group with a
	 * group-writable mode, or reading. */
	const char *hint =
		(o->flags & (SHMSTAT_O_OWNER | SHMSTAT_O_GROUP))
			? "not the segment asked for: check the name, or "
			  "remove it"
			: "write as its owner or, with mode 0660, its group; "
			  "read read-only";
	user_str(owner, sizeof(owner), st->st_uid);
	group_str(group, sizeof(group), st->st_gid);
	user_str(me, sizeof(me), geteuid());
	return shmstat__err(NULL, SHMSTAT_EOWNER,
			    "segment '%s' (/dev/shm/shmstat.%s) refused: %s: "
			    "owner %s, group %s, mode %04o; this process runs "
			    "as %s (%s)",
			    h->name, h->name, why, owner, group, mode, me,
			    hint);
}

/* Attach to an existing object; wait for a concurrent creator to publish. */
static int attach(struct shmstat *h, int fd, const shmstat_options_t *o,
		  unsigned wait_ms, bool *retry)
{
	uint64_t deadline = shmstat__now_mono_ns() + (uint64_t)wait_ms * 1000000u;
	struct stat st;

	*retry = false;
	for (;;) {
		bool timed_out = shmstat__now_mono_ns() > deadline;
		if (fstat(fd, &st) < 0)
			return shmstat__errno(NULL, SHMSTAT_ESYS, "fstat");
		int orc = check_owner(h, &st, o);
		if (orc < 0)
			return orc;
		if (st.st_nlink == 0) {
			/* The creator failed and unlinked: start over. */
			*retry = !timed_out;
			return shmstat__err(NULL, SHMSTAT_EINIT,
					    "segment '%s' was removed while "
					    "being created",
					    h->name);
		}
		if (st.st_size == 0) {
			if (timed_out)
				return shmstat__err(NULL, SHMSTAT_EINIT,
						    "segment '%s' is empty: "
						    "its creator never sized "
						    "it (remove it with "
						    "'shmstat -n %s destroy')",
						    h->name, h->name);
			sleep_ms(1);
			continue;
		}
		if ((uint64_t)st.st_size < SEG_HDR_SIZE)
			return shmstat__err(NULL, SHMSTAT_ETRUNC,
					    "segment '%s' is truncated: %lld "
					    "bytes, smaller than its header",
					    h->name, (long long)st.st_size);
		int rc = map(h, fd, (size_t)st.st_size);
		if (rc < 0)
			return rc;
		const struct seg_header *hdr = (const void *)h->base;
		uint64_t magic = atomic_load_explicit(
			&((struct seg_header *)(void *)h->base)->magic,
			memory_order_acquire);
		if (magic == SEG_MAGIC) {
			rc = validate(h, (uint64_t)st.st_size);
			if (rc < 0)
				unmap(h);
			return rc;
		}
		(void)hdr;
		unmap(h);
		if (magic != 0)
			return shmstat__err(NULL, SHMSTAT_EMAGIC,
					    "'%s' is not a shmstat segment "
					    "(magic %016llx)",
					    h->name, (unsigned long long)magic);
		if (timed_out)
			return shmstat__err(NULL, SHMSTAT_EINIT,
					    "segment '%s' was never initialized "
					    "(its creator died?); remove it with "
					    "'shmstat destroy'",
					    h->name);
		sleep_ms(1);
	}
}

int shmstat_open(const char *name, const shmstat_options_t *opts,
		 shmstat_t **out)
{
	static const shmstat_options_t zero;
	const shmstat_options_t *o = opts ? opts : &zero;
	char path[SHMSTAT_SEGNAME_MAX + 16];
	struct geometry g = { 0 };
	struct shmstat *h;
	int fd, rc;
	bool retry;

	shmstat__open_errbuf()[0] = '\0';
	if (!out)
		return shmstat__err(NULL, SHMSTAT_EINVAL, "out is NULL");
	*out = NULL;
	if (shmstat_name_check(name) < 0)
		return shmstat__err(NULL, SHMSTAT_ENAME,
				    "invalid segment name '%.80s': %s",
				    name ? name : "(null)",
				    shmstat__name_problem(name));
	if ((o->flags & SHMSTAT_O_RDONLY) && (o->flags & SHMSTAT_O_CREATE))
		return shmstat__err(NULL, SHMSTAT_EINVAL,
				    "SHMSTAT_O_RDONLY cannot create a segment");
	/* Whoever can write the file can truncate it, and every process
	 * that maps it dies of SIGBUS on its next count: never for all. */
	if ((o->flags & SHMSTAT_O_CREATE) && (o->mode & 0002))
		return shmstat__err(NULL, SHMSTAT_EINVAL,
				    "mode %04o for segment '%s' is world-writable "
				    "(o+w): any local user could truncate it and "
				    "crash every worker; use 0660 and a group "
				    "for the processes that share it",
				    o->mode & 07777, name);
	if (o->flags & SHMSTAT_O_CREATE) {
		if ((rc = plan(o, &g)) < 0)
			return rc;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return shmstat__err(NULL, SHMSTAT_ENOMEM, "out of memory");
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->slot = h->aslot = -1;
	for (int k = 0; k < SHMSTAT_XROWS; k++)
		h->xrow[k].slot = -1;
	h->rdonly = (o->flags & SHMSTAT_O_RDONLY) != 0;
	shm_path(path, sizeof(path), name);
	unsigned mode = o->mode ? (o->mode & 07777) : 0600;
	unsigned wait_ms = o->wait_ms ? o->wait_ms : DEFAULT_WAIT_MS;

	for (int attempt = 0; attempt < 100; attempt++) {
		if (o->flags & SHMSTAT_O_CREATE) {
			fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
				      (mode_t)mode);
			if (fd >= 0) {
				rc = create(h, fd, path, &g, mode);
				close(fd);
				goto done;
			}
			if (errno != EEXIST) {
				rc = shmstat__errno(NULL, errno == EACCES
							? SHMSTAT_EPERM
							: SHMSTAT_ESYS,
						    "shm_open");
				goto done;
			}
			if (o->flags & SHMSTAT_O_EXCL) {
				rc = shmstat__err(NULL, SHMSTAT_EEXIST,
						  "segment '%s' already exists",
						  name);
				goto done;
			}
		}
		fd = shm_open(path, (h->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC,
			      0);
		if (fd < 0) {
			if (errno == ENOENT && (o->flags & SHMSTAT_O_CREATE))
				continue; /* removed in between: create it */
			if (errno == ENOENT)
				rc = shmstat__err(NULL, SHMSTAT_ENOENT,
						  "no segment '%s' (create it "
						  "with 'shmstat -n %s create')",
						  name, name);
			else
				rc = shmstat__errno(NULL, errno == EACCES
							? SHMSTAT_EPERM
							: SHMSTAT_ESYS,
						    "shm_open");
			goto done;
		}
		rc = attach(h, fd, o, wait_ms, &retry);
		close(fd);
		if (rc == 0 || !retry || !(o->flags & SHMSTAT_O_CREATE))
			goto done;
	}
	rc = shmstat__err(NULL, SHMSTAT_EINIT,
			  "segment '%s' keeps being removed while opening", name);
done:
	if (rc < 0) {
		free(h);
		return rc;
	}
	shmstat__fork_register(h);
	*out = h;
	return 0;
}

void shmstat_close(shmstat_t **hp)
{
	struct shmstat *h;

	if (!hp || !*hp)
		return;
	h = *hp;
	*hp = NULL;
	shmstat__fork_unregister(h);
	shmstat__row_release(h);
	shmstat__hist_free(h);
	unmap(h);
	free(h);
}

int shmstat_unlink(const char *name)
{
	char path[SHMSTAT_SEGNAME_MAX + 16];

	if (shmstat_name_check(name) < 0)
		return shmstat__err(NULL, SHMSTAT_ENAME,
				    "invalid segment name '%.80s': %s",
				    name ? name : "(null)",
				    shmstat__name_problem(name));
	shm_path(path, sizeof(path), name);
	if (shm_unlink(path) < 0) {
		if (errno == ENOENT)
			return shmstat__err(NULL, SHMSTAT_ENOENT,
					    "no segment '%s'", name);
		return shmstat__errno(NULL, errno == EACCES ? SHMSTAT_EPERM
							    : SHMSTAT_ESYS,
				      "shm_unlink");
	}
	return 0;
}

void *shmstat__base(shmstat_t *h, size_t *size)
{
	if (size)
		*size = h->size;
	return h->base;
}

int shmstat_info(shmstat_t *h, shmstat_info_t *out)
{
	if (!h || !out)
		return SHMSTAT_EINVAL;
	const struct seg_header *hdr = h->hdr;
	uint32_t hwm = shmstat__hwm(h);

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", h->name);
	out->layout_major = hdr->ver_major;
	out->layout_minor = hdr->ver_minor;
	out->size = h->size;
	out->created_ns = hdr->created_ns;
	out->creator_pid = hdr->creator_pid;
	out->host_id = hdr->host_id;
	out->source_nonce = hdr->source_nonce;
	memcpy(out->host_name, hdr->host_name, sizeof(out->host_name) - 1);
	for (size_t i = 0; i < sizeof(out->host_name) - 1; i++)
		if (out->host_name[i] && (out->host_name[i] < 0x20 || out->host_name[i] == 0x7f))
			out->host_name[i] = '?';
	out->max_counters = h->max_counters;
	out->counters_used = atomic_load_explicit(&hdr->counters_used,
						  memory_order_relaxed);
	if (out->counters_used > h->max_counters)
		out->counters_used = h->max_counters;
	out->max_workers = h->max_workers;
	out->workers_hwm = hwm;
	out->row_overflows = atomic_load_explicit(
		&((struct seg_header *)h->hdr)->row_overflows,
		memory_order_relaxed);
	out->row_overflow_ns = atomic_load_explicit(
		&((struct seg_header *)h->hdr)->row_overflow_ns,
		memory_order_relaxed);
	out->cache_max_value = hdr->cache_max_value;
	for (uint32_t w = 0; w < h->max_workers; w++) {
		uint64_t word = atomic_load_explicit(&h->slots[w].word,
						     memory_order_acquire);
		switch (slot_state(word)) {
		case SLOT_FREE:
			out->workers_free++;
			break;
		case SLOT_CLAIMED:
		case SLOT_LIVE:
			if (shmstat__slot_dead(h, &h->slots[w], word))
				out->workers_dead++;
			else
				out->workers_live++;
			break;
		default:
			out->workers_dead++;
			break;
		}
	}
	out->owner_uid = h->seg_uid;
	out->owner_gid = h->seg_gid;
	out->mode = h->seg_mode;
	out->page_size = h->seg_blksize;
	out->cache_home_blocks = h->cache_geo.nhome;
	out->read_only = h->rdonly;
	switch (atomic_load_explicit(&h->row_state, memory_order_acquire)) {
	case ROW_OWN:
		out->handle_row = h->slot;
		break;
	case ROW_SHARED:
		out->handle_row = SHMSTAT_ROW_OVERFLOW;
		break;
	default:
		out->handle_row = SHMSTAT_ROW_NONE;
		break;
	}
	for (uint32_t i = 0; i < h->max_counters; i++)
		if ((atomic_load_explicit(&h->dir[i].state,
					  memory_order_relaxed) & 3u) == DIR_DEAD)
			out->dir_dead++;
	/* Every region the segment has: the help table too (2.1), when its
	 * creator made one. Its use: the entries written (or being). */
	uint64_t help_used = 0;
	for (uint32_t i = 0; h->help && i < h->help_n; i++)
		help_used += atomic_load_explicit(&h->help[i].seq,
						  memory_order_relaxed) != 0
				     ? sizeof(struct help_entry)
				     : 0;
	out->nregions = hdr->nregions < REG_ALL ? REG_COUNT : REG_ALL;
	uint64_t used[REG_ALL] = {
		[REG_REGISTRY] = (uint64_t)hwm * sizeof(struct worker_slot),
		[REG_DIRECTORY] = (uint64_t)out->counters_used * sizeof(struct dir_entry),
		[REG_ROWS] = ((uint64_t)hwm + 1) * h->row_stride,
		[REG_SYNC] = sizeof(struct sync_status),
		[REG_CACHE] = shmstat__cache_bytes_used(h),
		[REG_HELP] = help_used,
	};
	for (uint32_t r = 0; r < out->nregions; r++) {
		out->region[r].name = region_names[r];
		out->region[r].offset = hdr->region[r].off;
		out->region[r].size = hdr->region[r].size;
		out->region[r].used = used[r];
	}
	/* In the order they lie in the segment (help, added in 2.1, lies
	 * between sync and cache). */
	for (uint32_t r = 1; r < out->nregions; r++)
		for (uint32_t q = r; q > 0 && out->region[q - 1].offset >
						      out->region[q].offset;
		     q--) {
			shmstat_region_info_t t = out->region[q];
			out->region[q] = out->region[q - 1];
			out->region[q - 1] = t;
		}
	return 0;
}
