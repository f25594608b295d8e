/*
 * metric.c — histograms and help texts, on top of the directory.
 *
 * A histogram is made of ordinary counter cells: the histogram's own
 * directory entry (DF_HIST) counts the sum, in millionths, and each bucket
 * is an entry of its own (DF_HBUCKET) counting the observations of that
 * bucket alone. So everything counters have, histograms have with no code
 * of their own: rows summed by readers, dead workers' rows adopted, reset
 * by raising bases, the bridge pushing each cell as a counter (a cluster
 * histogram in Redis is exact, cell by cell). An observation is two adds
 * into the observer's row; the count is the sum of the buckets, so count
 * and the +Inf bucket can never disagree.
 *
 * A bucket entry records its histogram's entry index and its bucket
 * number (reserved[4]) and its bound (reserved[5]), written before the
 * entry is published, so readers find a histogram's buckets by one pass
 * over the directory; the histogram's entry records the number of buckets
 * and a hash of the bounds, so that a second open with other bounds is
 * refused instead of mixing two bucket layouts.
 *
 * Help texts live in a table of their own (REG_HELP, layout 2.1), one
 * entry per family, under a sequence word (layout_i.h).
 */
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmstat_i.h"

struct hist_desc {
	struct shmstat_hist_ d;
	struct hist_desc *next;
};

/* The description failed opens hand out: every observation takes the
 * slow path (vbits_ 0), which drops it on the sink row. */
static const struct shmstat_hist_ sink_hist;
extern struct shmstat_row_ shmstat__sink_row;

void shmstat__hist_free(struct shmstat *h)
{
	struct hist_desc *d = atomic_exchange(&h->hists, NULL);

	while (d) {
		struct hist_desc *next = d->next;
		free(d);
		d = next;
	}
}

void shmstat__fmt_bound(char *buf, size_t len, double v)
{
	if (isinf(v)) {
		snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	double a = fabs(v);
	/* Plain decimals where they read well (0.005, 10), else the
	 * shortest exponent form; always the shortest that reads back. */
	if (v == 0 || (a >= 1e-6 && a < 1e15))
		for (int p = 0; p <= 17; p++) {
			snprintf(buf, len, "%.*f", p, v);
			if (strtod(buf, NULL) == v)
				return;
		}
	for (int p = 1; p <= 17; p++) {
		snprintf(buf, len, "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

int shmstat_buckets_exponential(double start, double factor, size_t count,
				double *out)
{
	if (!out || !(start > 0) || !(factor > 1) || count < 1 ||
	    count > SHMSTAT_HIST_BOUNDS_MAX || !isfinite(start) ||
	    !isfinite(factor))
		return shmstat__err(NULL, SHMSTAT_EINVAL,
				    "exponential buckets need start > 0, "
				    "factor > 1 and 1 to %d buckets",
				    SHMSTAT_HIST_BOUNDS_MAX);
	double v = start;
	for (size_t i = 0; i < count; i++, v *= factor) {
		if (!isfinite(v))
			return shmstat__err(NULL, SHMSTAT_EINVAL,
					    "exponential buckets overflow");
		out[i] = v;
	}
	return 0;
}

static uint64_t dbits(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof(b));
	return b;
}

static double bitsd(uint64_t b)
{
	double v;
	memcpy(&v, &b, sizeof(v));
	return v;
}

/* The bucket entries of histogram i: bounds and cells by bucket number.
 * Returns how many of the n buckets were found (have[k] says which). */
static uint32_t find_buckets(struct shmstat *h, uint32_t i, uint32_t n,
			     double *le, uint32_t *cell, bool *have)
{
	uint32_t found = 0;

	for (uint32_t k = 0; k < n; k++)
		have[k] = false;
	for (uint32_t b = 0; b < h->max_counters; b++) {
		struct dir_entry *e = &h->dir[b];
		if (shmstat__dir_kind(e, NULL) != SHMSTAT_KIND_HBUCKET)
			continue;
		uint64_t r4 = __atomic_load_n(&e->reserved[DR_HIST],
					      __ATOMIC_RELAXED);
		uint32_t k = (uint32_t)(r4 >> 32);
		if ((uint32_t)r4 != i || k >= n || have[k])
			continue;
		have[k] = true;
		le[k] = bitsd(__atomic_load_n(&e->reserved[DR_BOUND],
					      __ATOMIC_RELAXED));
		cell[k] = b;
		found++;
	}
	return found;
}

/* The key of bucket k's entry: the histogram's labels plus __le. */
static int bucket_key(struct shmstat *h, const char *key, size_t klen,
		      size_t blen, double bound, char *out, size_t *olen)
{
	char name[SHMSTAT_NAME_MAX + 64], le[40];
	size_t b2;

	shmstat__fmt_bound(le, sizeof(le), bound);
	if (klen == blen)
		snprintf(name, sizeof(name), "%.*s{__le=\"%s\"}", (int)klen,
			 key, le);
	else /* key[blen..] is "{}{...}" */
		snprintf(name, sizeof(name), "%.*s{__le=\"%s\",%.*s", (int)blen,
			 key, le, (int)(klen - blen - 3), key + blen + 3);
	if (strlen(name) > SHMSTAT_NAME_MAX)
		return shmstat__err(h, SHMSTAT_ENAME,
				    "histogram name '%.60s' leaves no room for "
				    "its buckets' names (%d bytes)",
				    key, SHMSTAT_NAME_MAX);
	return shmstat__name_key(h, name, strlen(name), true, out, olen, &b2);
}

static uint64_t dbits(double v);
static double bitsd(uint64_t b);

/* The search table: slot j covers the doubles whose top 14 bits (sign,
 * exponent, two mantissa bits) are j; it holds the bucket of the slot's
 * smallest value. Filled up to the inline path's limit, 4294. */
static void hist_pad(struct shmstat_hist_ *d)
{
	uint64_t lim = dbits(4294.0);

	d->bound_[d->n_] = INFINITY;
	uint32_t k = 0;
	for (uint64_t j = 0; j <= (lim >> 50) && j < SHMSTAT_HIST_TAB_; j++) {
		double v = bitsd(j << 50);
		while (k < d->n_ && v > d->bound_[k])
			k++;
		d->tab_[j] = (uint8_t)k;
	}
	d->vbits_ = lim;
}

/* Open (create with bounds, else find) histogram `name` into *d. */
static int hist_open(struct shmstat *h, const char *name, const double *bounds,
		     size_t n, struct shmstat_hist_ *d)
{
	char key[SHMSTAT_NAME_MAX + 1];
	size_t klen, blen;
	uint32_t i;
	int rc;

	if ((rc = shmstat__name_key(h, name, name ? strlen(name) : 0, false,
				    key, &klen, &blen)) < 0)
		return rc;
	if (klen > blen && (strstr(key + blen, "{le=\"") ||
			    strstr(key + blen, ",le=\"")))
		return shmstat__err(h, SHMSTAT_ENAME,
				    "histogram '%.60s': the label 'le' is the "
				    "bucket's",
				    name);
	if (!bounds) {
		rc = shmstat__dir_lookup(h, key, klen, SHMSTAT_KIND_HISTOGRAM,
					 false, &i);
		if (rc == SHMSTAT_ENOTFOUND)
			return shmstat__err(h, rc, "no histogram '%.80s'", name);
		if (rc < 0)
			return rc;
		uint64_t nb = __atomic_load_n(&h->dir[i].reserved[DR_HIST],
					      __ATOMIC_RELAXED);
		double le[SHMSTAT_HIST_BOUNDS_MAX + 1];
		uint32_t cell[SHMSTAT_HIST_BOUNDS_MAX + 1];
		bool have[SHMSTAT_HIST_BOUNDS_MAX + 1];
		if (nb < 2 || nb > SHMSTAT_HIST_BOUNDS_MAX + 1)
			return shmstat__err(h, SHMSTAT_ECORRUPT,
					    "histogram '%.80s' has %llu "
					    "buckets",
					    name, (unsigned long long)nb);
		if (find_buckets(h, i, (uint32_t)nb, le, cell, have) != nb)
			return shmstat__err(h, SHMSTAT_ENOTFOUND,
					    "histogram '%.80s' is incomplete: "
					    "open it with its bounds",
					    name);
		d->n_ = (uint32_t)nb - 1;
		d->sum_ = i;
		memcpy(d->bound_, le, sizeof(double) * d->n_);
		memcpy(d->cell_, cell, sizeof(uint32_t) * nb);
		hist_pad(d);
		return 0;
	}
	if (n < 1 || n > SHMSTAT_HIST_BOUNDS_MAX)
		return shmstat__err(h, SHMSTAT_EINVAL,
				    "a histogram has 1 to %d bounds, not %zu",
				    SHMSTAT_HIST_BOUNDS_MAX, n);
	for (size_t k = 0; k < n; k++)
		if (!isfinite(bounds[k]) || (k && !(bounds[k] > bounds[k - 1])))
			return shmstat__err(h, SHMSTAT_EINVAL,
					    "histogram bounds must be finite "
					    "and strictly increasing (bound "
					    "%zu)",
					    k);
	uint64_t hash = shmstat__hash(bounds, n * sizeof(double));
	rc = shmstat__dir_lookup_x(h, key, klen, SHMSTAT_KIND_HISTOGRAM, true,
				   n + 1, hash, &i);
	if (rc < 0)
		return rc;
	if (__atomic_load_n(&h->dir[i].reserved[DR_HIST], __ATOMIC_RELAXED) !=
		    n + 1 ||
	    __atomic_load_n(&h->dir[i].reserved[DR_BOUND], __ATOMIC_RELAXED) !=
		    hash)
		return shmstat__err(h, SHMSTAT_EKIND,
				    "histogram '%.80s' exists with other "
				    "bucket bounds",
				    name);
	d->n_ = (uint32_t)n;
	d->sum_ = i;
	memcpy(d->bound_, bounds, sizeof(double) * n);
	for (size_t k = 0; k <= n; k++) {
		char bk[SHMSTAT_NAME_MAX + 1];
		size_t bl;
		double bound = k < n ? bounds[k] : INFINITY;
		uint64_t r4 = i | (uint64_t)k << 32;
		uint32_t c;
		if ((rc = bucket_key(h, key, klen, blen, bound, bk, &bl)) < 0)
			return rc;
		rc = shmstat__dir_lookup_x(h, bk, bl, SHMSTAT_KIND_HBUCKET, true,
					   r4, dbits(bound), &c);
		if (rc < 0)
			return rc;
		if (__atomic_load_n(&h->dir[c].reserved[DR_HIST],
				    __ATOMIC_RELAXED) != r4)
			return shmstat__err(h, SHMSTAT_ECORRUPT,
					    "bucket %zu of histogram '%.80s' "
					    "belongs to another entry",
					    k, name);
		d->cell_[k] = c;
	}
	hist_pad(d);
	return 0;
}

int shmstat_histogram_open(shmstat_t *h, const char *name,
			   const double *bounds, size_t n,
			   shmstat_histogram_t *out)
{
	struct hist_desc *hd;
	int rc;

	if (!out)
		return SHMSTAT_EINVAL;
	*out = (shmstat_histogram_t){ .row_ = &shmstat__sink_row,
				      .d_ = &sink_hist };
	if (!h)
		return SHMSTAT_EINVAL;
	if (h->rdonly)
		return shmstat__err(h, SHMSTAT_ERDONLY,
				    "segment '%s' is open read-only: cannot "
				    "observe",
				    h->name);
	if (!(hd = calloc(1, sizeof(*hd))))
		return shmstat__err(h, SHMSTAT_ENOMEM, "out of memory");
	if ((rc = hist_open(h, name, bounds, n, &hd->d)) < 0 ||
	    (rc = shmstat__row_claim(h)) < 0) {
		free(hd);
		return rc;
	}
	hd->next = atomic_load(&h->hists);
	while (!atomic_compare_exchange_weak(&h->hists, &hd->next, hd))
		;
	*out = (shmstat_histogram_t){ .row_ = &h->row, .d_ = &hd->d };
	return 0;
}

void shmstat_histogram_observe_slow_(struct shmstat_row_ *row,
				     const struct shmstat_hist_ *d, double v)
{
	if (!row || !d || isnan(v))
		return;
	if (v < 0)
		v = 0;
	uint32_t k = 0;
	while (k < d->n_ && v > d->bound_[k])
		k++;
	double u = v * SHMSTAT_HIST_SUM_SCALE + 0.5;
	uint64_t units = u >= 9.2e18 ? (uint64_t)INT64_MAX : (uint64_t)u;
	shmstat_counter_t c = { .row_ = row, .index_ = d->cell_[k] };
	shmstat_counter_add_ts(&c, 1);
	c.index_ = d->sum_;
	shmstat_counter_add_ts(&c, units);
}

void shmstat_histogram_observe_ts(const shmstat_histogram_t *hg, double v)
{
	if (hg)
		shmstat_histogram_observe_slow_(hg->row_, hg->d_, v);
}

int shmstat_histogram_observe_by_name(shmstat_t *h, const char *name, double v)
{
	struct shmstat_hist_ d;
	int rc;

	if (!h)
		return SHMSTAT_EINVAL;
	if (h->rdonly)
		return shmstat__err(h, SHMSTAT_ERDONLY,
				    "segment '%s' is open read-only", h->name);
	if ((rc = hist_open(h, name, NULL, 0, &d)) < 0 ||
	    (rc = shmstat__row_claim(h)) < 0)
		return rc;
	shmstat_histogram_observe_slow_(&h->row, &d, v);
	return 0;
}

/* Value (rows minus base) and global of cell i. */
static void cell_read(struct shmstat *h, uint32_t i, uint64_t *value,
		      uint64_t *global, uint64_t *gns)
{
	struct dir_entry *e = &h->dir[i];
	uint64_t base = atomic_load_explicit(&e->base, memory_order_acquire);
	uint64_t total = shmstat__counter_total(h, i);
	*value = base <= total ? total - base : 0;
	*gns = atomic_load_explicit(&e->global_ns, memory_order_acquire);
	int64_t g = atomic_load_explicit(&e->global, memory_order_relaxed);
	*global = g > 0 ? (uint64_t)g : 0;
}

int shmstat__hist_stat(struct shmstat *h, uint32_t i,
		       shmstat_histogram_stat_t *out)
{
	double le[SHMSTAT_HIST_BOUNDS_MAX + 1];
	uint32_t cell[SHMSTAT_HIST_BOUNDS_MAX + 1];
	bool have[SHMSTAT_HIST_BOUNDS_MAX + 1];
	uint16_t len;

	memset(out, 0, sizeof(*out));
	if (shmstat__dir_kind(&h->dir[i], &len) != SHMSTAT_KIND_HISTOGRAM)
		return SHMSTAT_ENOTFOUND;
	char key[SHMSTAT_NAME_MAX + 1];
	memcpy(key, h->dir[i].name, SHMSTAT_NAME_MAX);
	shmstat__key_display(key, len, out->name);
	uint64_t nb = __atomic_load_n(&h->dir[i].reserved[DR_HIST],
				      __ATOMIC_RELAXED);
	if (nb > SHMSTAT_HIST_BOUNDS_MAX + 1)
		nb = SHMSTAT_HIST_BOUNDS_MAX + 1;
	find_buckets(h, i, (uint32_t)nb, le, cell, have);
	uint64_t v, g, gns, min_ns = UINT64_MAX;
	for (uint32_t k = 0; k < nb; k++) {
		if (!have[k])
			continue; /* never made (an opener was killed) */
		uint32_t o = out->nbuckets++;
		out->le[o] = le[k];
		cell_read(h, cell[k], &v, &g, &gns);
		out->buckets[o] = v;
		out->global_buckets[o] = g;
		out->count += v;
		out->global_count += g;
		if (gns < min_ns)
			min_ns = gns;
	}
	cell_read(h, i, &v, &g, &gns);
	out->sum = (double)v / SHMSTAT_HIST_SUM_SCALE;
	out->global_sum = (double)g / SHMSTAT_HIST_SUM_SCALE;
	if (gns < min_ns)
		min_ns = gns;
	out->global_ns = min_ns == UINT64_MAX ? 0 : min_ns;
	return 0;
}

int shmstat_histogram_read(shmstat_t *h, const char *name,
			   shmstat_histogram_stat_t *out)
{
	char key[SHMSTAT_NAME_MAX + 1];
	size_t klen, blen;
	uint32_t i;
	int rc;

	if (!h || !out)
		return SHMSTAT_EINVAL;
	if ((rc = shmstat__name_key(h, name, name ? strlen(name) : 0, false,
				    key, &klen, &blen)) < 0)
		return rc;
	rc = shmstat__dir_lookup(h, key, klen, SHMSTAT_KIND_HISTOGRAM, false,
				 &i);
	if (rc == SHMSTAT_ENOTFOUND)
		return shmstat__err(h, rc, "no histogram '%.80s'", name);
	if (rc < 0)
		return rc;
	return shmstat__hist_stat(h, i, out);
}

double shmstat_histogram_quantile(const shmstat_histogram_stat_t *st,
				  double q, int global)
{
	if (!st || st->nbuckets < 1 || isnan(q))
		return NAN;
	const uint64_t *b = global ? st->global_buckets : st->buckets;
	uint64_t count = 0;
	for (uint32_t k = 0; k < st->nbuckets; k++)
		count += b[k];
	if (count == 0)
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	double rank = q * (double)count;
	uint64_t cum = 0;
	uint32_t k = 0;
	for (; k < st->nbuckets; k++) {
		if ((double)(cum + b[k]) >= rank)
			break;
		cum += b[k];
	}
	if (k >= st->nbuckets)
		k = st->nbuckets - 1;
	if (isinf(st->le[k]))
		return st->nbuckets >= 2 ? st->le[st->nbuckets - 2] : NAN;
	double start = k == 0 ? (st->le[0] > 0 ? 0 : st->le[0]) : st->le[k - 1];
	double end = st->le[k];
	if (k == 0 && end <= 0)
		return end;
	if (b[k] == 0)
		return start;
	return start + (end - start) * ((rank - (double)cum) / (double)b[k]);
}

/* ---------------------------------------------------------------- help */

#define HELP_WAIT_NS UINT64_C(100000000) /* 100 ms for a writer */

/* The family (name part) of name into fam; its length, or < 0. */
static int family_of(struct shmstat *h, const char *name, char *fam)
{
	char key[SHMSTAT_NAME_MAX + 1];
	size_t klen, blen;
	int rc = shmstat__name_key(h, name, name ? strlen(name) : 0, true, key,
				   &klen, &blen);
	if (rc < 0)
		return rc;
	memcpy(fam, key, blen);
	fam[blen] = '\0';
	return (int)blen;
}

static bool help_is(const struct help_entry *e, uint64_t hash, const char *f,
		    size_t fl)
{
	return e->hash == hash && e->name_len == fl &&
	       memcmp(e->name, f, fl) == 0;
}

static void help_write(struct help_entry *e, uint64_t seq_odd, uint64_t hash,
		       const char *f, size_t fl, const char *t, size_t tl)
{
	e->hash = hash;
	e->name_len = (uint16_t)fl;
	memcpy(e->name, f, fl);
	e->text_len = (uint16_t)tl;
	memcpy(e->text, t, tl);
	atomic_store_explicit(&e->seq, seq_odd + 1, memory_order_release);
}

int shmstat_help_set(shmstat_t *h, const char *name, const char *text)
{
	char fam[SHMSTAT_NAME_MAX + 1];
	int fl;

	if (!h || !text)
		return SHMSTAT_EINVAL;
	if (h->rdonly)
		return shmstat__err(h, SHMSTAT_ERDONLY,
				    "segment '%s' is open read-only", h->name);
	if (!h->help)
		return shmstat__err(h, SHMSTAT_ENOTSUP,
				    "segment '%s' (layout 2.0) has no help "
				    "table: recreate it",
				    h->name);
	if ((fl = family_of(h, name, fam)) < 0)
		return fl;
	size_t tl = strlen(text);
	if (tl > SHMSTAT_HELP_MAX)
		return shmstat__err(h, SHMSTAT_EINVAL,
				    "help text of %zu bytes is longer than %d",
				    tl, SHMSTAT_HELP_MAX);
	size_t at;
	if (shmstat__utf8_check(text, tl, &at) < 0)
		return shmstat__err(h, SHMSTAT_EINVAL,
				    "help text is not valid UTF-8 at byte "
				    "offset %zu",
				    at);
	for (size_t k = 0; k < tl; k++)
		if (((unsigned char)text[k] < 0x20 && text[k] != '\n') ||
		    text[k] == 0x7f)
			return shmstat__err(h, SHMSTAT_EINVAL,
					    "help text holds a control "
					    "character at byte offset %zu",
					    k);
	uint64_t hash = shmstat__hash(fam, (size_t)fl);
	uint32_t n = h->help_n, i = (uint32_t)(hash % n);
	for (uint32_t probe = 0; probe < n;
	     probe++, i = (i + 1 == n) ? 0 : i + 1) {
		struct help_entry *e = &h->help[i];
		uint64_t deadline = shmstat__now_mono_ns() + HELP_WAIT_NS;
		for (;;) {
			uint64_t seq = atomic_load_explicit(
				&e->seq, memory_order_acquire);
			if (seq == 0) {
				if (!atomic_compare_exchange_strong(&e->seq,
								    &seq, 1))
					continue;
				help_write(e, 1, hash, fam, (size_t)fl, text,
					   tl);
				return 0;
			}
			if (seq & 1) {
				if (shmstat__now_mono_ns() < deadline) {
					sched_yield();
					continue;
				}
				/* Left odd past the bound: take it over if it
				 * is ours (its writer died), else pass. */
				if (e->hash != hash)
					break;
				if (!atomic_compare_exchange_strong(
					    &e->seq, &seq, seq + 2))
					continue;
				help_write(e, seq + 2, hash, fam, (size_t)fl,
					   text, tl);
				return 0;
			}
			if (!help_is(e, hash, fam, (size_t)fl))
				break;
			if (!atomic_compare_exchange_strong(&e->seq, &seq,
							    seq + 1))
				continue;
			help_write(e, seq + 1, hash, fam, (size_t)fl, text, tl);
			return 0;
		}
	}
	return shmstat__err(h, SHMSTAT_EFULL,
			    "the help table is full (%u families)", n);
}

/* Help of family f[0..fl) into buf (cap bytes, NUL-ended): its length,
 * or ENOTFOUND / ERANGE. */
int shmstat__help_find(struct shmstat *h, const char *f, size_t fl, char *buf,
		       size_t cap)
{
	if (!h->help)
		return SHMSTAT_ENOTFOUND;
	uint64_t hash = shmstat__hash(f, fl);
	uint32_t n = h->help_n, i = (uint32_t)(hash % n);
	for (uint32_t probe = 0; probe < n;
	     probe++, i = (i + 1 == n) ? 0 : i + 1) {
		struct help_entry *e = &h->help[i];
		for (int tries = 0; tries < 1000; tries++) {
			uint64_t s1 = atomic_load_explicit(
				&e->seq, memory_order_acquire);
			if (s1 == 0)
				return SHMSTAT_ENOTFOUND;
			if (s1 & 1) {
				sched_yield();
				continue;
			}
			char text[sizeof(e->text)];
			bool mine = help_is(e, hash, f, fl);
			uint16_t tl = e->text_len;
			if (tl > SHMSTAT_HELP_MAX)
				tl = SHMSTAT_HELP_MAX;
			memcpy(text, e->text, tl);
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(&e->seq,
						 memory_order_relaxed) != s1)
				continue;
			if (!mine)
				break;
			if ((size_t)tl + 1 > cap)
				return SHMSTAT_ERANGE;
			memcpy(buf, text, tl);
			buf[tl] = '\0';
			return tl;
		}
	}
	return SHMSTAT_ENOTFOUND;
}

int shmstat_help_get(shmstat_t *h, const char *name, char *buf, size_t len)
{
	char fam[SHMSTAT_NAME_MAX + 1];
	int fl, rc;

	if (!h || (!buf && len))
		return SHMSTAT_EINVAL;
	if ((fl = family_of(h, name, fam)) < 0)
		return fl;
	rc = shmstat__help_find(h, fam, (size_t)fl, buf, len);
	if (rc == SHMSTAT_ENOTFOUND)
		return shmstat__err(h, rc, "no help for '%.80s'", fam);
	if (rc == SHMSTAT_ERANGE)
		return shmstat__err(h, rc, "the help text needs more bytes");
	return rc;
}
