/*
 * directory.c — named counters and gauges: the directory that maps a name
 * to an index, and everything that reads or resets by name.
 *
 * The directory is an open-addressing table with linear probing over
 * max_counters entries. Entries are never removed, and an entry's state
 * only moves forward (EMPTY -> WRITING -> READY), so:
 *   - inserting is lock-free: CAS EMPTY -> WRITING(pid), fill, publish READY
 *     with release order;
 *   - two processes inserting one name at once meet at the same entry (they
 *     probe the same sequence), and the one that loses the CAS waits for
 *     READY and compares, so a name never appears twice;
 *   - a name lies before the first EMPTY entry of its probe sequence, so a
 *     lookup stops there.
 * A writer that dies between WRITING and READY leaves an entry no one has
 * counted into yet: the next inserter that finds the pid dead takes it
 * over with a CAS on the same word.
 *
 * A counter's value = Σ rows[w][i] − base[i]. Reset raises base to the
 * current sum (monotonically); it never writes a row, so an increment that
 * races it is counted either before or after it.
 */
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmstat_i.h"

#define WRITER_WAIT_NS UINT64_C(1000000000) /* 1 s for a live writer */

static inline uint32_t dstate(uint64_t w) { return (uint32_t)(w & 3u); }
static inline int32_t dpid(uint64_t w) { return (int32_t)(uint32_t)(w >> 2); }
static inline uint64_t dword(uint32_t st, int32_t pid)
{
	return (uint64_t)st | ((uint64_t)(uint32_t)pid << 2);
}

int shmstat__name_check_counter(const char *name, size_t len)
{
	if (!name || len == 0 || len > SHMSTAT_NAME_MAX)
		return SHMSTAT_ENAME;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return SHMSTAT_ENAME;
	}
	/* Every document the library writes (JSON, Prometheus) must be able
	 * to carry the name as it is. */
	if (shmstat__utf8_check(name, len, NULL) < 0)
		return SHMSTAT_ENAME;
	return 0;
}

static int name_error(struct shmstat *h, const char *name)
{
	size_t len = name ? strlen(name) : 0, at = 0;

	if (len == 0)
		return shmstat__err(h, SHMSTAT_ENAME, "empty counter name");
	if (len > SHMSTAT_NAME_MAX)
		return shmstat__err(h, SHMSTAT_ENAME,
				    "counter name of %zu bytes is longer than "
				    "%d",
				    len, SHMSTAT_NAME_MAX);
	/* The reason quotes only the valid part before the bad byte, so the
	 * message itself stays printable UTF-8. */
	while (at < len && (unsigned char)name[at] >= 0x20 &&
	       (unsigned char)name[at] != 0x7f)
		at++;
	if (at < len)
		return shmstat__err(h, SHMSTAT_ENAME,
				    "counter name holds a control character "
				    "(0x%02x) at byte offset %zu",
				    (unsigned char)name[at], at);
	shmstat__utf8_check(name, len, &at);
	size_t q = at < 60 ? at : 60; /* cut at a character boundary */
	while (q > 0 && q < at && ((unsigned char)name[q] & 0xc0u) == 0x80u)
		q--;
	return shmstat__err(h, SHMSTAT_ENAME,
			    "counter name is not valid UTF-8 at byte offset "
			    "%zu (0x%02x, after '%.*s%s')",
			    at, (unsigned char)name[at], (int)q, name,
			    q < at ? "..." : "");
}

/*
 * A READY entry's length and kind, read once and checked. Another process
 * (a buggy or hostile one) may change them at any time: whatever we use
 * must be the copy we checked, never a second read of the segment.
 */
struct entry_view {
	uint16_t len;
	uint8_t kind;
};

static bool entry_read(const struct dir_entry *e, struct entry_view *v)
{
	v->len = __atomic_load_n(&e->name_len, __ATOMIC_RELAXED);
	v->kind = __atomic_load_n(&e->kind, __ATOMIC_RELAXED);
	return v->len >= 1 && v->len <= SHMSTAT_NAME_MAX &&
	       (v->kind == SHMSTAT_KIND_COUNTER || v->kind == SHMSTAT_KIND_GAUGE);
}

/*
 * Wait until entry e leaves WRITING(pid). Returns the new state word, or
 * the WRITING word if the writer died or overran the bound.
 */
static uint64_t wait_writer(struct dir_entry *e, uint64_t word)
{
	uint64_t deadline = shmstat__now_mono_ns() + WRITER_WAIT_NS;

	for (unsigned spin = 0;; spin++) {
		uint64_t now = atomic_load_explicit(&e->state,
						    memory_order_acquire);
		if (now != word)
			return now;
		if (spin < 64) {
			sched_yield();
			continue;
		}
		if (!shmstat__proc_alive(dpid(word), 0) ||
		    shmstat__now_mono_ns() > deadline)
			return word;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
}

static void fill(struct shmstat *h, struct dir_entry *e, uint64_t word,
		 const char *name, size_t len, uint64_t hash, int kind)
{
	e->hash = hash;
	e->name_len = (uint16_t)len;
	e->kind = (uint8_t)kind;
	memcpy(e->name, name, len);
	atomic_store_explicit(&e->base, 0, memory_order_relaxed);
	atomic_store_explicit(&e->gauge, 0, memory_order_relaxed);
	atomic_store_explicit(&e->global, 0, memory_order_relaxed);
	atomic_store_explicit(&e->global_ns, 0, memory_order_relaxed);
	/* Publish: whoever reads READY (acquire) sees the name and kind. */
	atomic_store_explicit(&e->state, dword(DIR_READY, 0),
			      memory_order_release);
	(void)word;
	atomic_fetch_add_explicit(&h->hdr->counters_used, 1,
				  memory_order_relaxed);
}

int shmstat__dir_lookup(struct shmstat *h, const char *name, size_t len,
			int kind, bool create, uint32_t *index)
{
	uint64_t hash = shmstat__hash(name, len);
	uint32_t n = h->max_counters;
	uint32_t i = (uint32_t)(hash % n);

	for (uint32_t probe = 0; probe < n; probe++, i = (i + 1 == n) ? 0 : i + 1) {
		struct dir_entry *e = &h->dir[i];
		uint64_t word = atomic_load_explicit(&e->state,
						     memory_order_acquire);
	again:
		switch (dstate(word)) {
		case DIR_EMPTY:
			if (!create)
				return SHMSTAT_ENOTFOUND;
			if (!atomic_compare_exchange_strong_explicit(
				    &e->state, &word,
				    dword(DIR_WRITING, (int32_t)getpid()),
				    memory_order_acq_rel, memory_order_acquire))
				goto again; /* word now holds what won */
			fill(h, e, word, name, len, hash, kind);
			*index = i;
			return 0;
		case DIR_WRITING: {
			uint64_t now = wait_writer(e, word);
			if (now != word) {
				word = now;
				goto again;
			}
			if (!create)
				return SHMSTAT_ENOTFOUND;
			if (shmstat__proc_alive(dpid(word), 0))
				return shmstat__err(h, SHMSTAT_EBUSY,
						    "directory entry %u is "
						    "being written by live "
						    "process %d for too long",
						    i, dpid(word));
			/* The writer died mid-insert: take the entry over. */
			if (!atomic_compare_exchange_strong_explicit(
				    &e->state, &word,
				    dword(DIR_WRITING, (int32_t)getpid()),
				    memory_order_acq_rel, memory_order_acquire))
				goto again;
			/* Its fill never finished, so counters_used never
			 * counted it: fill() counts it now, once. */
			fill(h, e, word, name, len, hash, kind);
			*index = i;
			return 0;
		}
		case DIR_READY: {
			struct entry_view v;
			if (!entry_read(e, &v))
				return shmstat__err(h, SHMSTAT_ECORRUPT,
						    "directory entry %u is "
						    "corrupt",
						    i);
			/* memcmp over our own len, which v.len equals. */
			if (e->hash != hash || v.len != len ||
			    memcmp(e->name, name, len) != 0)
				continue;
			if (v.kind != kind && kind != 0)
				return shmstat__err(h, SHMSTAT_EKIND,
						    "'%.*s' is a %s", (int)len,
						    name,
						    v.kind == SHMSTAT_KIND_GAUGE
							    ? "gauge"
							    : "counter");
			*index = i;
			return 0;
		}
		default:
			return shmstat__err(h, SHMSTAT_ECORRUPT,
					    "directory entry %u has state %llu",
					    i, (unsigned long long)word);
		}
	}
	if (!create)
		return SHMSTAT_ENOTFOUND;
	return shmstat__err(h, SHMSTAT_EFULL,
			    "directory is full (%u counters and gauges): "
			    "cannot add '%.*s'",
			    n, (int)(len > 60 ? 60 : len), name);
}

uint64_t shmstat__counter_total(const struct shmstat *h, uint32_t i)
{
	uint32_t hwm = shmstat__hwm(h);
	uint64_t sum = 0;

	for (uint32_t w = 0; w < hwm; w++)
		sum += __atomic_load_n(&shmstat__row_cells(h, w)[i],
				       __ATOMIC_RELAXED);
	return sum;
}

int shmstat__dir_stat(struct shmstat *h, uint32_t i, shmstat_stat_t *out)
{
	struct dir_entry *e;

	if (i >= h->max_counters)
		return SHMSTAT_EINVAL;
	e = &h->dir[i];
	if (dstate(atomic_load_explicit(&e->state, memory_order_acquire)) !=
	    DIR_READY)
		return SHMSTAT_ENOTFOUND;
	struct entry_view v;
	if (!entry_read(e, &v))
		return shmstat__err(h, SHMSTAT_ECORRUPT,
				    "directory entry %u is corrupt", i);
	/* The whole name field, a fixed size (fast, and within the entry
	 * whatever v.len is), then cut at the length we checked. */
	memcpy(out->name, e->name, SHMSTAT_NAME_MAX);
	out->name[v.len] = '\0';
	out->name_len = v.len;
	out->kind = v.kind;
	out->index = i;
	if (v.kind == SHMSTAT_KIND_COUNTER) {
		/* Base first: it only grows and is at most the sum at the time
		 * it was taken, so value read this way is never negative. */
		uint64_t base = atomic_load_explicit(&e->base,
						     memory_order_acquire);
		out->total = shmstat__counter_total(h, i);
		out->value = (int64_t)(out->total - base);
	} else {
		out->value = atomic_load_explicit(&e->gauge,
						  memory_order_relaxed);
		out->total = (uint64_t)out->value;
	}
	out->global_ns = atomic_load_explicit(&e->global_ns,
					      memory_order_acquire);
	out->global = atomic_load_explicit(&e->global, memory_order_relaxed);
	return 0;
}

/* Neutral sink for handles whose _get failed: an add through them is lost
 * but never faults. One per process, shared by every failed handle. */
static uint64_t sink_cells[1];
static struct shmstat_row_ sink_row = { sink_cells };

int shmstat_counter_get(shmstat_t *h, const char *name, shmstat_counter_t *out)
{
	uint32_t i = 0;
	int rc;

	if (!out)
		return SHMSTAT_EINVAL;
	*out = (shmstat_counter_t){ .row_ = &sink_row, .index_ = 0 };
	if (!h)
		return SHMSTAT_EINVAL;
	size_t len = name ? strlen(name) : 0;
	if (shmstat__name_check_counter(name, len) < 0)
		return name_error(h, name);
	rc = shmstat__dir_lookup(h, name, len, SHMSTAT_KIND_COUNTER, true, &i);
	if (rc < 0)
		return rc;
	/* Only the first get of a handle claims; the rest skip the lock. */
	if (!h->row.cells)
		rc = shmstat__row_claim(h);
	else if (h->row_fallback)
		rc = shmstat__err(h, SHMSTAT_EFULL,
				  "segment '%s': no free row; this process "
				  "counts locally",
				  h->name);
	if (!h->row.cells)
		return rc;
	/* With EFULL (no free row) the handle still works, counting into
	 * process-local memory, so that a caller that ignores it is safe. */
	*out = (shmstat_counter_t){ .row_ = &h->row, .index_ = i };
	return rc;
}

int shmstat_counter_add_by_name(shmstat_t *h, const char *name, uint64_t n)
{
	shmstat_counter_t c;
	int rc = shmstat_counter_get(h, name, &c);

	if (rc < 0)
		return rc;
	shmstat_counter_add(c, n);
	return 0;
}

int shmstat_counter_read(shmstat_t *h, shmstat_counter_t c, int64_t *value)
{
	shmstat_stat_t st;
	int rc;

	if (!h || !value || c.row_ != &h->row)
		return SHMSTAT_EINVAL;
	rc = shmstat__dir_stat(h, c.index_, &st);
	if (rc < 0)
		return rc;
	*value = st.value;
	return 0;
}

int shmstat_stat_get(shmstat_t *h, const char *name, shmstat_stat_t *out)
{
	uint32_t i = 0;
	int rc;

	if (!h || !out)
		return SHMSTAT_EINVAL;
	size_t len = name ? strlen(name) : 0;
	if (shmstat__name_check_counter(name, len) < 0)
		return name_error(h, name);
	rc = shmstat__dir_lookup(h, name, len, 0, false, &i);
	if (rc == SHMSTAT_ENOTFOUND)
		return shmstat__err(h, rc, "no counter or gauge '%.80s'", name);
	if (rc < 0)
		return rc;
	return shmstat__dir_stat(h, i, out);
}

int shmstat_iter(shmstat_t *h, const char *pattern, shmstat_stat_fn fn,
		 void *priv)
{
	shmstat_stat_t st;

	if (!h || !fn)
		return SHMSTAT_EINVAL;
	for (uint32_t i = 0; i < h->max_counters; i++) {
		int rc = shmstat__dir_stat(h, i, &st);
		if (rc == SHMSTAT_ENOTFOUND)
			continue;
		if (rc < 0)
			return rc;
		if (!shmstat__glob(pattern, st.name, st.name_len))
			continue;
		rc = fn(&st, priv);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int shmstat_reset(shmstat_t *h, const char *pattern, uint64_t *count)
{
	uint64_t n = 0;

	if (!h)
		return SHMSTAT_EINVAL;
	for (uint32_t i = 0; i < h->max_counters; i++) {
		struct dir_entry *e = &h->dir[i];
		if (dstate(atomic_load_explicit(&e->state,
						memory_order_acquire)) !=
		    DIR_READY)
			continue;
		struct entry_view v;
		if (!entry_read(e, &v))
			return shmstat__err(h, SHMSTAT_ECORRUPT,
					    "directory entry %u is corrupt", i);
		if (!shmstat__glob(pattern, e->name, v.len))
			continue;
		if (v.kind == SHMSTAT_KIND_GAUGE) {
			atomic_store_explicit(&e->gauge, 0,
					      memory_order_relaxed);
		} else {
			uint64_t total = shmstat__counter_total(h, i);
			uint64_t old = atomic_load_explicit(
				&e->base, memory_order_relaxed);
			/* Only raise the base: a slower concurrent reset
			 * must not bring back counts a faster one cleared. */
			while (old < total &&
			       !atomic_compare_exchange_weak_explicit(
				       &e->base, &old, total,
				       memory_order_release,
				       memory_order_relaxed))
				;
		}
		n++;
	}
	if (count)
		*count = n;
	return 0;
}

int shmstat_gauge_get(shmstat_t *h, const char *name, shmstat_gauge_t *out)
{
	static int64_t gauge_sink;
	uint32_t i = 0;
	int rc;

	if (!out)
		return SHMSTAT_EINVAL;
	*out = (shmstat_gauge_t){ .cell_ = &gauge_sink };
	if (!h)
		return SHMSTAT_EINVAL;
	size_t len = name ? strlen(name) : 0;
	if (shmstat__name_check_counter(name, len) < 0)
		return name_error(h, name);
	rc = shmstat__dir_lookup(h, name, len, SHMSTAT_KIND_GAUGE, true, &i);
	if (rc < 0)
		return rc;
	*out = (shmstat_gauge_t){ .cell_ = (int64_t *)(void *)&h->dir[i].gauge,
				  .index_ = i };
	return 0;
}

/* Gauges are one shared cell each: any process may set or add at any time;
 * each operation is a single atomic step, so none is lost. */
void shmstat_gauge_set(shmstat_gauge_t g, int64_t v)
{
	__atomic_store_n(g.cell_, v, __ATOMIC_RELAXED);
}

void shmstat_gauge_add(shmstat_gauge_t g, int64_t delta)
{
	__atomic_fetch_add(g.cell_, delta, __ATOMIC_RELAXED);
}

int64_t shmstat_gauge_read(shmstat_gauge_t g)
{
	return __atomic_load_n(g.cell_, __ATOMIC_RELAXED);
}
