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
 * counted into yet: the next inserter that finds it dead (pid gone, or
 * reused: the word carries the writer's start time) takes it over with a
 * CAS on the same word. An entry whose writer cannot be judged (another
 * pid namespace) or stays WRITING past the bound is marked DEAD: probes
 * step over it and nobody reuses it, and the writer, should it wake up,
 * fails its publishing CAS (WRITING -> READY) and inserts further on. So
 * nothing can leave a name routed through an entry stuck for good.
 * Lookups that do not create never wait on a WRITING entry: the name
 * being written is not there yet, and a name further on may be.
 *
 * A counter's value = Σ rows[w][i] − base[i]. Reset raises base to the
 * current sum (monotonically); it never writes a row, so an increment that
 * races it is counted either before or after it.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmstat_i.h"

#define WRITER_WAIT_NS UINT64_C(1000000000) /* 1 s for a live writer */
#define START_BITS 30
#define START_MASK ((UINT64_C(1) << START_BITS) - 1)
/* dir_entry.reserved[] words given meaning by layout 2.0. */
#define DR_PIDNS 2
#define DR_SINCE 3

static inline uint32_t dstate(uint64_t w) { return (uint32_t)(w & 3u); }
static inline int32_t dpid(uint64_t w)
{
	return (int32_t)(uint32_t)((w >> 2) & 0xffffffffu);
}
static inline uint64_t dstart(uint64_t w) { return w >> 34; }
static inline uint64_t dword(uint32_t st, int32_t pid, uint64_t start)
{
	return (uint64_t)st | ((uint64_t)(uint32_t)pid << 2) |
	       ((start & START_MASK) << 34);
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

/* What is wrong with a counter's, a gauge's or a stat's name; `what` says
 * which, so a gauge's bad name is not called a counter's. */
static int name_error(struct shmstat *h, const char *name, const char *what)
{
	size_t len = name ? strlen(name) : 0, at = 0;

	if (len == 0)
		return shmstat__err(h, SHMSTAT_ENAME, "empty %s name", what);
	if (len > SHMSTAT_NAME_MAX)
		return shmstat__err(h, SHMSTAT_ENAME,
				    "%s name of %zu bytes is longer than "
				    "%d",
				    what, len, SHMSTAT_NAME_MAX);
	/* The reason quotes only the valid part before the bad byte, so the
	 * message itself stays printable UTF-8. */
	while (at < len && (unsigned char)name[at] >= 0x20 &&
	       (unsigned char)name[at] != 0x7f)
		at++;
	if (at < len)
		return shmstat__err(h, SHMSTAT_ENAME,
				    "%s name holds a control character "
				    "(0x%02x) at byte offset %zu",
				    what, (unsigned char)name[at], at);
	shmstat__utf8_check(name, len, &at);
	size_t q = at < 60 ? at : 60; /* cut at a character boundary */
	while (q > 0 && q < at && ((unsigned char)name[q] & 0xc0u) == 0x80u)
		q--;
	return shmstat__err(h, SHMSTAT_ENAME,
			    "%s name is not valid UTF-8 at byte offset "
			    "%zu (0x%02x, after '%.*s%s')",
			    what, at, (unsigned char)name[at], (int)q, name,
			    q < at ? "..." : "");
}

/* ---------------------------------------------------------------- labels */

struct lpair {
	const char *k, *v; /* v: the escaped text between the quotes */
	size_t kl, vl;
};

static int lpair_cmp(const void *a, const void *b)
{
	const struct lpair *x = a, *y = b;
	size_t l = x->kl < y->kl ? x->kl : y->kl;
	int c = memcmp(x->k, y->k, l);
	return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

static bool key_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool key_char(char c)
{
	return key_start(c) || (c >= '0' && c <= '9');
}

/*
 * Parse name[0..len) (either form) into its name part and sorted pairs.
 * 0, or ENAME with the reason on h.
 */
static int parse_labels(struct shmstat *h, const char *s, size_t len,
			bool reserved, size_t *blen, struct lpair *p,
			size_t *np)
{
	const char *brace = memchr(s, '{', len);
	size_t n = 0;

	*np = 0;
	if (!brace) {
		*blen = len;
		return 0;
	}
	size_t i = (size_t)(brace - s);
	*blen = i;
	if (i == 0)
		return shmstat__err(h, SHMSTAT_ENAME,
				    "name '%.60s' has labels but no name "
				    "before '{'",
				    s);
	i++;
	/* The stored form: name{}{...}. */
	if (i + 1 < len && s[i] == '}' && s[i + 1] == '{')
		i += 2;
	for (;;) {
		while (i < len && s[i] == ' ')
			i++;
		if (i < len && s[i] == '}')
			break;
		if (i >= len || !key_start(s[i]))
			return shmstat__err(h, SHMSTAT_ENAME,
					    "labels of '%.60s': a label name "
					    "([A-Za-z_][A-Za-z0-9_]*) expected "
					    "at byte offset %zu",
					    s, i);
		size_t k0 = i;
		while (i < len && key_char(s[i]))
			i++;
		size_t kl = i - k0;
		if (!reserved && kl >= 2 && s[k0] == '_' && s[k0 + 1] == '_')
			return shmstat__err(h, SHMSTAT_ENAME,
					    "labels of '%.60s': label names "
					    "starting with '__' are reserved",
					    s);
		if (i + 1 >= len || s[i] != '=' || s[i + 1] != '"')
			return shmstat__err(h, SHMSTAT_ENAME,
					    "labels of '%.60s': '=\"' expected "
					    "after label '%.*s'",
					    s, (int)kl, s + k0);
		i += 2;
		size_t v0 = i;
		while (i < len && s[i] != '"') {
			if (s[i] == '\\') {
				if (i + 1 >= len ||
				    (s[i + 1] != '\\' && s[i + 1] != '"' &&
				     s[i + 1] != 'n'))
					return shmstat__err(
						h, SHMSTAT_ENAME,
						"labels of '%.60s': only \\\\, "
						"\\\" and \\n are escapes in a "
						"label value (byte offset %zu)",
						s, i);
				i++;
			}
			i++;
		}
		if (i >= len)
			return shmstat__err(h, SHMSTAT_ENAME,
					    "labels of '%.60s': the value of "
					    "'%.*s' has no closing quote",
					    s, (int)kl, s + k0);
		if (n == SHMSTAT_LABELS_MAX)
			return shmstat__err(h, SHMSTAT_ENAME,
					    "'%.60s' has more than %d labels",
					    s, SHMSTAT_LABELS_MAX);
		p[n++] = (struct lpair){ s + k0, s + v0, kl, i - v0 };
		i++;
		while (i < len && s[i] == ' ')
			i++;
		if (i < len && s[i] == ',') {
			i++;
			continue;
		}
		if (i < len && s[i] == '}')
			break;
		return shmstat__err(h, SHMSTAT_ENAME,
				    "labels of '%.60s': ',' or '}' expected at "
				    "byte offset %zu",
				    s, i);
	}
	if (i + 1 != len)
		return shmstat__err(h, SHMSTAT_ENAME,
				    "'%.60s': nothing may follow the labels' "
				    "'}'",
				    s);
	if (n > 1)
		qsort(p, n, sizeof(*p), lpair_cmp);
	for (size_t k = 1; k < n; k++)
		if (lpair_cmp(&p[k - 1], &p[k]) == 0)
			return shmstat__err(h, SHMSTAT_ENAME,
					    "'%.60s': label '%.*s' appears "
					    "twice",
					    s, (int)p[k].kl, p[k].k);
	*np = n;
	return 0;
}

/* name part + pairs in the stored form (sep "{}{") or the canonical one
 * ("{"); the length, or 0 when it does not fit cap bytes with the NUL. */
static size_t labels_write(char *out, size_t cap, const char *s, size_t blen,
			   const struct lpair *p, size_t n, const char *open)
{
	size_t o = 0;
#define PUT(ptr, l)                                                            \
	do {                                                                   \
		if (o + (l) >= cap)                                            \
			return 0;                                              \
		memcpy(out + o, (ptr), (l));                                   \
		o += (l);                                                      \
	} while (0)
	PUT(s, blen);
	if (n) {
		PUT(open, strlen(open));
		for (size_t k = 0; k < n; k++) {
			if (k)
				PUT(",", 1);
			PUT(p[k].k, p[k].kl);
			PUT("=\"", 2);
			PUT(p[k].v, p[k].vl);
			PUT("\"", 1);
		}
		PUT("}", 1);
	}
#undef PUT
	out[o] = '\0';
	return o;
}

int shmstat__name_key(struct shmstat *h, const char *name, size_t len,
		      bool reserved, char *out, size_t *olen, size_t *blen)
{
	struct lpair p[SHMSTAT_LABELS_MAX];
	size_t n;
	int rc;

	/* The bytes as given: UTF-8 without control characters, and not
	 * over the limit even before "{}" is added. */
	if (shmstat__name_check_counter(name, len) < 0)
		return name_error(h, name, "metric");
	if ((rc = parse_labels(h, name, len, reserved, blen, p, &n)) < 0)
		return rc;
	size_t o = labels_write(out, SHMSTAT_NAME_MAX + 1, name, *blen, p, n,
				"{}{");
	if (o == 0)
		return shmstat__err(h, SHMSTAT_ENAME,
				    "'%.60s...' is longer than %d bytes in "
				    "its stored form (name{}{labels})",
				    name, SHMSTAT_NAME_MAX);
	*olen = o;
	return 0;
}

size_t shmstat__key_display(const char *key, size_t len, char *out)
{
	const char *b = memchr(key, '{', len);
	size_t o = 0;

	if (b && (size_t)(b - key) + 2 < len && b[1] == '}' && b[2] == '{') {
		size_t bl = (size_t)(b - key);
		memmove(out, key, bl);
		memmove(out + bl, b + 2, len - bl - 2);
		o = len - 2;
	} else {
		memmove(out, key, len);
		o = len;
	}
	out[o] = '\0';
	return o;
}

int shmstat_name_canonical(const char *name, char *out, size_t len)
{
	struct lpair p[SHMSTAT_LABELS_MAX];
	char tmp[SHMSTAT_NAME_MAX + 1];
	size_t n, blen, klen;
	int rc;

	if (!out)
		return SHMSTAT_EINVAL;
	size_t nl = name ? strlen(name) : 0;
	if ((rc = shmstat__name_key(NULL, name, nl, true, tmp, &klen,
				    &blen)) < 0)
		return rc;
	if ((rc = parse_labels(NULL, tmp, klen, true, &blen, p, &n)) < 0)
		return rc;
	size_t o = labels_write(out, len, tmp, blen, p, n, "{");
	if (o == 0)
		return shmstat__err(NULL, SHMSTAT_ERANGE,
				    "the canonical name needs %zu bytes",
				    klen - (n ? 2 : 0) + 1);
	return (int)o;
}

/*
 * A READY entry's length and kind, read once and checked. Another process
 * (a buggy or hostile one) may change them at any time: whatever we use
 * must be the copy we checked, never a second read of the segment.
 */
struct entry_view {
	uint16_t len;
	uint8_t kind; /* the view kind: SHMSTAT_KIND_* */
};

static int view_kind(uint8_t kind, uint8_t flags)
{
	if (kind == SHMSTAT_KIND_GAUGE && flags == 0)
		return SHMSTAT_KIND_GAUGE;
	if (kind != SHMSTAT_KIND_COUNTER)
		return 0;
	if (flags == 0)
		return SHMSTAT_KIND_COUNTER;
	if (flags == DF_HIST)
		return SHMSTAT_KIND_HISTOGRAM;
	if (flags == DF_HBUCKET)
		return SHMSTAT_KIND_HBUCKET;
	return 0;
}

static bool entry_read(const struct dir_entry *e, struct entry_view *v)
{
	v->len = __atomic_load_n(&e->name_len, __ATOMIC_RELAXED);
	v->kind = (uint8_t)view_kind(__atomic_load_n(&e->kind, __ATOMIC_RELAXED),
				     __atomic_load_n(&e->flags, __ATOMIC_RELAXED));
	return v->len >= 1 && v->len <= SHMSTAT_NAME_MAX && v->kind != 0;
}

int shmstat__dir_kind(const struct dir_entry *e, uint16_t *len)
{
	struct entry_view v;

	if (dstate(atomic_load_explicit(&e->state, memory_order_acquire)) !=
		    DIR_READY ||
	    !entry_read(e, &v))
		return 0;
	if (len)
		*len = v.len;
	return v.kind;
}

static const char *kind_word(int kind)
{
	switch (kind) {
	case SHMSTAT_KIND_GAUGE:
		return "gauge";
	case SHMSTAT_KIND_HISTOGRAM:
		return "histogram";
	case SHMSTAT_KIND_HBUCKET:
		return "histogram bucket";
	default:
		return "counter";
	}
}

/* The WRITING word for this process. */
static uint64_t my_writing_word(void)
{
	return dword(DIR_WRITING, (int32_t)getpid(),
		     shmstat__proc_start(getpid()));
}

enum writer_verdict { WR_ALIVE, WR_DEAD, WR_UNKNOWN };

/* Is the writer of WRITING word `word` on entry e known to be gone? */
static enum writer_verdict judge_writer(const struct dir_entry *e,
					uint64_t word)
{
	uint64_t ns = __atomic_load_n(&e->reserved[DR_PIDNS], __ATOMIC_RELAXED);
	uint64_t mine = shmstat__pidns();

	if (ns && mine && ns != mine)
		return WR_UNKNOWN; /* its pid means nothing here */
	pid_t pid = dpid(word);
	if (!shmstat__proc_alive(pid, 0))
		return WR_DEAD;
	uint64_t start = dstart(word);
	uint64_t now = shmstat__proc_start(pid);
	if (start && now && (now & START_MASK) != start)
		return WR_DEAD; /* the pid was reused */
	return WR_ALIVE;
}

/*
 * Wait until entry e leaves WRITING word `word`. Returns the new state
 * word, or `word` when the writer is gone (*v says how) or overran the
 * bound (*v = WR_ALIVE or WR_UNKNOWN).
 */
static uint64_t wait_writer(struct dir_entry *e, uint64_t word,
			    enum writer_verdict *v)
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
		*v = judge_writer(e, word);
		if (*v == WR_DEAD || shmstat__now_mono_ns() > deadline)
			return word;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
}

/*
 * Fill entry e, which we hold as WRITING word `word`, and publish it.
 * false when someone marked it DEAD meanwhile (we stalled past the
 * bound): the caller then goes on probing.
 */
static bool fill(struct shmstat *h, struct dir_entry *e, uint64_t word,
		 const char *name, size_t len, uint64_t hash, int kind,
		 uint64_t r4, uint64_t r5)
{
	__atomic_store_n(&e->reserved[DR_PIDNS], shmstat__pidns(),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&e->reserved[DR_SINCE], shmstat__now_realtime_ns(),
			 __ATOMIC_RELAXED);
	e->hash = hash;
	e->name_len = (uint16_t)len;
	e->kind = (uint8_t)(kind == SHMSTAT_KIND_GAUGE ? SHMSTAT_KIND_GAUGE
						      : SHMSTAT_KIND_COUNTER);
	e->flags = (uint8_t)(kind == SHMSTAT_KIND_HISTOGRAM ? DF_HIST
			     : kind == SHMSTAT_KIND_HBUCKET ? DF_HBUCKET
							    : 0);
	__atomic_store_n(&e->reserved[DR_HIST], r4, __ATOMIC_RELAXED);
	__atomic_store_n(&e->reserved[DR_BOUND], r5, __ATOMIC_RELAXED);
	memcpy(e->name, name, len);
	atomic_store_explicit(&e->base, 0, memory_order_relaxed);
	atomic_store_explicit(&e->gauge, 0, memory_order_relaxed);
	atomic_store_explicit(&e->global, 0, memory_order_relaxed);
	atomic_store_explicit(&e->global_ns, 0, memory_order_relaxed);
	/* Publish: whoever reads READY (acquire) sees the name and kind. */
	if (!atomic_compare_exchange_strong_explicit(
		    &e->state, &word, dword(DIR_READY, 0, 0),
		    memory_order_release, memory_order_relaxed))
		return false;
	atomic_fetch_add_explicit(&h->hdr->counters_used, 1,
				  memory_order_relaxed);
	return true;
}

int shmstat__dir_lookup(struct shmstat *h, const char *name, size_t len,
			int kind, bool create, uint32_t *index)
{
	return shmstat__dir_lookup_x(h, name, len, kind, create, 0, 0, index);
}

int shmstat__dir_lookup_x(struct shmstat *h, const char *name, size_t len,
			  int kind, bool create, uint64_t r4, uint64_t r5,
			  uint32_t *index)
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
		case DIR_EMPTY: {
			if (!create)
				return SHMSTAT_ENOTFOUND;
			uint64_t mine = my_writing_word();
			if (!atomic_compare_exchange_strong_explicit(
				    &e->state, &word, mine,
				    memory_order_acq_rel, memory_order_acquire))
				goto again; /* word now holds what won */
			if (!fill(h, e, mine, name, len, hash, kind, r4, r5))
				continue; /* declared dead while we stalled */
			*index = i;
			return 0;
		}
		case DIR_DEAD:
			continue;
		case DIR_WRITING: {
			/* Not ours to read yet: a lookup that does not
			 * create steps over it (the name is not there yet). */
			if (!create)
				continue;
			enum writer_verdict v = WR_ALIVE;
			uint64_t now = wait_writer(e, word, &v);
			if (now != word) {
				word = now;
				goto again;
			}
			if (v == WR_DEAD) {
				/* The writer died mid-insert: take the entry
				 * over. Its fill never finished, so
				 * counters_used never counted it. */
				uint64_t mine = my_writing_word();
				if (!atomic_compare_exchange_strong_explicit(
					    &e->state, &word, mine,
					    memory_order_acq_rel,
					    memory_order_acquire))
					goto again;
				if (!fill(h, e, mine, name, len, hash, kind, r4, r5))
					continue;
				*index = i;
				return 0;
			}
			/* Stuck past the bound, or not ours to judge: no one
			 * may use it again, and we go on. */
			if (!atomic_compare_exchange_strong_explicit(
				    &e->state, &word, dword(DIR_DEAD, 0, 0),
				    memory_order_acq_rel, memory_order_acquire))
				goto again;
			atomic_fetch_add_explicit(&h->hdr->counters_used, 1,
						  memory_order_relaxed);
			shmstat__log(SHMSTAT_LOG_WARNING,
				     "shmstat: segment '%s': directory entry "
				     "%u was left half-written by process %d; "
				     "marked dead",
				     h->name, i, (int)dpid(word));
			continue;
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
			if (v.kind != kind && kind != 0) {
				char d[SHMSTAT_NAME_MAX + 1];
				size_t dl = shmstat__key_display(name, len, d);
				return shmstat__err(h, SHMSTAT_EKIND,
						    "'%.*s' is a %s",
						    (int)(dl > 120 ? 120 : dl),
						    d, kind_word(v.kind));
			}
			*index = i;
			return 0;
		}
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
	uint64_t sum = 0, any = 0;
	bool ovf = false;

	/* Saturating sum without a branch per row: a cell above INT64_MAX
	 * is saturated (the inline add does not check: small adds past the
	 * limit read as the limit), and so is a sum that overflows. */
	for (uint32_t w = 0; w < hwm; w++) {
		uint64_t v = __atomic_load_n(&shmstat__row_cells(h, w)[i],
					     __ATOMIC_RELAXED);
		any |= v;
		ovf |= __builtin_add_overflow(sum, v, &sum);
	}
	uint64_t v = __atomic_load_n(
		&shmstat__row_cells(h, ROW_OVERFLOW(h->max_workers))[i],
		__ATOMIC_RELAXED);
	any |= v;
	ovf |= __builtin_add_overflow(sum, v, &sum);
	if (ovf || (any >> 63) || sum > (uint64_t)INT64_MAX)
		return (uint64_t)INT64_MAX;
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
	if (v.kind != SHMSTAT_KIND_GAUGE) {
		/* Base first: it only grows and is at most the sum at the time
		 * it was taken, so value read this way is never negative. */
		uint64_t base = atomic_load_explicit(&e->base,
						     memory_order_acquire);
		out->total = shmstat__counter_total(h, i);
		/* Both are at most INT64_MAX; a base above the sum can only
		 * come from a scribbled segment. */
		out->value = base <= out->total ? (int64_t)(out->total - base)
						: 0;
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

/* Neutral sink for handles whose open failed: an add through them is lost
 * but never faults (owner_ 0: every add goes to shmstat_counter_add_ts,
 * which drops it). One per process, shared by every failed handle. */
static uint64_t sink_cells[1];
struct shmstat_row_ shmstat__sink_row = { sink_cells, 0 };

int shmstat_counter_open(shmstat_t *h, const char *name, shmstat_counter_t *out)
{
	uint32_t i = 0;
	int rc;

	if (!out)
		return SHMSTAT_EINVAL;
	*out = (shmstat_counter_t){ .row_ = &shmstat__sink_row, .index_ = 0 };
	if (!h)
		return SHMSTAT_EINVAL;
	if (h->rdonly)
		return shmstat__err(h, SHMSTAT_ERDONLY,
				    "segment '%s' is open read-only: cannot "
				    "count",
				    h->name);
	char key[SHMSTAT_NAME_MAX + 1];
	size_t len = name ? strlen(name) : 0, blen;
	/* The bytes first, so the reason names the kind asked for. */
	if (shmstat__name_check_counter(name, len) < 0)
		return name_error(h, name, "counter");
	if ((rc = shmstat__name_key(h, name, len, false, key, &len, &blen)) < 0)
		return rc;
	rc = shmstat__dir_lookup(h, key, len, SHMSTAT_KIND_COUNTER, true, &i);
	if (rc < 0)
		return rc;
	/* The first open of a handle claims its row (a slot, or the shared
	 * overflow row: counting stays exact either way). */
	if ((rc = shmstat__row_claim(h)) < 0)
		return rc;
	*out = (shmstat_counter_t){ .row_ = &h->row, .index_ = i };
	return 0;
}

int shmstat_counter_add_by_name(shmstat_t *h, const char *name, uint64_t n)
{
	shmstat_counter_t c;
	int rc = shmstat_counter_open(h, name, &c);

	if (rc < 0)
		return rc;
	shmstat_counter_add_ts(&c, n);
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

int shmstat_stat_read(shmstat_t *h, const char *name, shmstat_stat_t *out)
{
	uint32_t i = 0;
	int rc;

	if (!h || !out)
		return SHMSTAT_EINVAL;
	char key[SHMSTAT_NAME_MAX + 1];
	size_t len = name ? strlen(name) : 0, blen;
	/* The bytes first, so the reason names the kind asked for. */
	if (shmstat__name_check_counter(name, len) < 0)
		return name_error(h, name, "counter or gauge");
	if ((rc = shmstat__name_key(h, name, len, true, key, &len, &blen)) < 0)
		return rc;
	rc = shmstat__dir_lookup(h, key, len, 0, false, &i);
	if (rc == SHMSTAT_ENOTFOUND)
		return shmstat__err(h, rc, "no counter, gauge or histogram '%.80s'",
				    name);
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
		if (pattern) {
			char d[SHMSTAT_NAME_MAX + 1];
			size_t dl = shmstat__key_display(st.name, st.name_len, d);
			if (!shmstat__glob(pattern, d, dl))
				continue;
		}
		rc = fn(&st, priv);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void shmstat__dir_reset_one(struct shmstat *h, uint32_t i)
{
	struct dir_entry *e = &h->dir[i];
	uint64_t total = shmstat__counter_total(h, i);
	uint64_t old = atomic_load_explicit(&e->base, memory_order_relaxed);

	/* Only raise the base: a slower concurrent reset must not bring
	 * back counts a faster one cleared. */
	while (old < total &&
	       !atomic_compare_exchange_weak_explicit(&e->base, &old, total,
						      memory_order_release,
						      memory_order_relaxed))
		;
}

int shmstat_reset(shmstat_t *h, const char *pattern, uint64_t *count)
{
	uint64_t n = 0;

	if (!h)
		return SHMSTAT_EINVAL;
	if (h->rdonly)
		return shmstat__err(h, SHMSTAT_ERDONLY,
				    "segment '%s' is open read-only", h->name);
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
		/* Buckets go with their histogram, never alone. */
		if (v.kind == SHMSTAT_KIND_HBUCKET)
			continue;
		char d[SHMSTAT_NAME_MAX + 1];
		memcpy(d, e->name, SHMSTAT_NAME_MAX);
		size_t dl = shmstat__key_display(d, v.len, d);
		if (!shmstat__glob(pattern, d, dl))
			continue;
		if (v.kind == SHMSTAT_KIND_GAUGE) {
			atomic_store_explicit(&e->gauge, 0,
					      memory_order_relaxed);
		} else {
			shmstat__dir_reset_one(h, i);
		}
		if (v.kind == SHMSTAT_KIND_HISTOGRAM) {
			for (uint32_t b = 0; b < h->max_counters; b++)
				if (shmstat__dir_kind(&h->dir[b], NULL) ==
					    SHMSTAT_KIND_HBUCKET &&
				    (uint32_t)__atomic_load_n(
					    &h->dir[b].reserved[DR_HIST],
					    __ATOMIC_RELAXED) == i)
					shmstat__dir_reset_one(h, b);
		}
		n++;
	}
	if (count)
		*count = n;
	return 0;
}

int shmstat_gauge_open(shmstat_t *h, const char *name, shmstat_gauge_t *out)
{
	static int64_t gauge_sink;
	uint32_t i = 0;
	int rc;

	if (!out)
		return SHMSTAT_EINVAL;
	*out = (shmstat_gauge_t){ .cell_ = &gauge_sink };
	if (!h)
		return SHMSTAT_EINVAL;
	if (h->rdonly)
		return shmstat__err(h, SHMSTAT_ERDONLY,
				    "segment '%s' is open read-only", h->name);
	char key[SHMSTAT_NAME_MAX + 1];
	size_t len = name ? strlen(name) : 0, blen;
	/* The bytes first, so the reason names the kind asked for. */
	if (shmstat__name_check_counter(name, len) < 0)
		return name_error(h, name, "gauge");
	if ((rc = shmstat__name_key(h, name, len, false, key, &len, &blen)) < 0)
		return rc;
	rc = shmstat__dir_lookup(h, key, len, SHMSTAT_KIND_GAUGE, true, &i);
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
	int64_t v = __atomic_load_n(g.cell_, __ATOMIC_RELAXED), s;

	/* Saturate instead of wrapping, with a CAS so no add is lost. */
	do {
		if (delta > 0 && v > INT64_MAX - delta)
			s = INT64_MAX;
		else if (delta < 0 && v < INT64_MIN - delta)
			s = INT64_MIN;
		else
			s = v + delta;
	} while (!__atomic_compare_exchange_n(g.cell_, &v, s, true,
					      __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
}

int64_t shmstat_gauge_read(shmstat_gauge_t g)
{
	return __atomic_load_n(g.cell_, __ATOMIC_RELAXED);
}
