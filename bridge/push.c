/*
 * push.c — the sync protocol (v2). What syncs is a SOURCE: one
 * incarnation of one segment (host id, segment name, the random nonce
 * made at its creation; bridge.c). The bridge knows what Redis accepted
 * from its source for every key, computes each delta itself and sends
 * plain INCRBYs with an HSET of the new totals in one WATCHed MULTI/EXEC
 * transaction. No arithmetic on totals happens in Redis' Lua: exact to
 * 2^63 - 1.
 *
 * Keys (M = --meta-prefix, default "_shmstat:"; S = source id; K = a
 * counter's Redis key, --key-prefix + name). doc/bridge.md has the table
 * with each key's one writer and when it is reclaimed.
 *   K            the cluster-wide value: a plain integer
 *   M s:S        hash: owner token, owner_exp (lease end, Redis ms), seq
 *                (bumped by every write to S's bookkeeping), host,
 *                segment, kp (key prefix), pushed_ms, reset_done
 *   M t:S        hash: K -> "T" or "T B G": S's counter total Redis
 *                accepted (T), its total when the reset of generation G
 *                applied (B); S contributes T - B to K
 *   M g:S        hash: K -> V, the gauge value S contributes to K
 *   M i:H:SEG    string: the current source of segment SEG on host H
 *   M sources    sorted set: S -> lease end (Redis ms)
 *   M feed       stream: one entry per chunk of changed keys (s: the
 *                source, k: the keys, NUL-separated); trimmed to the
 *                last FEED_KEEP_MS
 *   M keys       set of every key any source pushed (a reset's scope)
 *   M rgen       the reset generation (INCR by each reset)
 *   M resets     sorted set K -> generation of its last reset
 *   M gauges     set of keys gauges feed (a reset refuses them)
 * Invariant, for every K: K = sum over sources S of S's contribution, a
 * counter's contribution being T - B, or 0 when K's last reset is newer
 * than G. One transaction writes a source's deltas and its new T (and B,
 * G) together, so every snapshot of Redis (an RDB, a lagging replica)
 * satisfies it too.
 *
 * A push, per group of at most BRIDGE_GROUP counters:
 *   read (one round trip): WATCH M s:S and M rgen; S's owner, lease and
 *     seq; Redis' clock; the resets since the generation we applied; the
 *     feed after the entry we read last (first group only); the
 *     bookkeeping of the counters we do not know (after a start or any
 *     doubt).
 *   decide: refused when another bridge holds S's lease; when seq is not
 *     the one we wrote last, our knowledge is void (Redis lost writes, or
 *     another bridge withdrew our gauges): forget it and read again.
 *   write (one round trip): MULTI, the lease, INCRBY K delta for every
 *     changed counter, HSET of the new totals, XADD of the feed entry,
 *     EXEC; then MGET of the keys others changed.
 *     EXEC fails when M s:S or M rgen changed after the WATCH: nothing
 *     was written, the group is read again.
 * A call that times out on a hung Redis and runs later is harmless: its
 * deltas and totals land together, and our next push reads the totals
 * again (the connection was dropped, so everything is unknown).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge_i.h"
#include "layout_i.h"
#include "shmstat_i.h"
#include "sync_i.h"

#define FEED_KEEP_MS 600000u /* feed entries older than this are trimmed */
#define FEED_MAX "4096"      /* entries read per push; more: read all */

/* A growing array of argv strings for one command. Strings we format
 * live in blocks that never move (one allocation per ~64 KiB, not one per
 * argument). */
struct blk {
	struct blk *next;
	size_t used, cap;
	char data[];
};

struct args {
	const char **v;
	size_t *len;
	int n, cap;
	struct blk *blk;
};

static int args_push(struct args *a, const char *s, size_t len)
{
	if (a->n == a->cap) {
		int cap = a->cap ? a->cap * 2 : 64;
		const char **v = realloc(a->v, (size_t)cap * sizeof(*v));
		if (!v)
			return -1;
		a->v = v;
		size_t *l = realloc(a->len, (size_t)cap * sizeof(*l));
		if (!l)
			return -1;
		a->len = l;
		a->cap = cap;
	}
	a->v[a->n] = s;
	a->len[a->n] = len;
	a->n++;
	return 0;
}

/* Room for len + 1 bytes in the current block. */
static char *args_room(struct args *a, size_t len)
{
	struct blk *k = a->blk;

	if (!k || k->cap - k->used < len + 1) {
		size_t cap = len + 1 > 65536 ? len + 1 : 65536;
		k = malloc(sizeof(*k) + cap);
		if (!k)
			return NULL;
		k->next = a->blk;
		k->used = 0;
		k->cap = cap;
		a->blk = k;
	}
	return k->data + k->used;
}

/* Push the len bytes just written at p (from args_room). */
static int args_commit(struct args *a, char *p, size_t len)
{
	p[len] = '\0';
	a->blk->used += len + 1;
	return args_push(a, p, len);
}

/* s1 followed by s2, copied. */
static int args_cat(struct args *a, const char *s1, size_t l1, const char *s2,
		    size_t l2)
{
	char *p = args_room(a, l1 + l2);

	if (!p)
		return -1;
	memcpy(p, s1, l1);
	memcpy(p + l1, s2, l2);
	return args_commit(a, p, l1 + l2);
}

static int args_str(struct args *a, const char *s)
{
	return args_cat(a, s, strlen(s), "", 0);
}

static int args_i64(struct args *a, int64_t v)
{
	char buf[24], *e = buf + sizeof(buf), *q = e;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do
		*--q = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--q = '-';
	return args_cat(a, q, (size_t)(e - q), "", 0);
}

static int args_fmt(struct args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int args_fmt(struct args *a, const char *fmt, ...)
{
	char buf[600];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	return args_cat(a, buf, (size_t)n, "", 0);
}

static void args_free(struct args *a)
{
	while (a->blk) {
		struct blk *k = a->blk;
		a->blk = k->next;
		free(k);
	}
	free(a->v);
	free(a->len);
	memset(a, 0, sizeof(*a));
}

static int args_pushk(struct args *a, const struct bridge *b, uint32_t x)
{
	return args_push(a, b->keys[x], b->keylen[x]);
}

/* ------------------------------------------------------------- snapshot */

struct item {
	uint32_t index;
	uint8_t kind;
	int64_t total; /* counter: total since creation; gauge: value */
};

struct snap {
	struct item *v;
	size_t n, cap;
	struct bridge *b;
	int err;
};

#define FL_CLEAN 1u
#define FL_SKIP 2u
#define FL_GAUGE 4u

/* Bring the compact copy (flag, ack) of counter x's state up to date:
 * after every change of b->st[x]. */
static void settle(struct bridge *b, uint32_t x)
{
	const struct bstate *s = &b->st[x];
	uint8_t f = s->kind == SHMSTAT_KIND_GAUGE ? FL_GAUGE : 0;

	if (s->reserved_name || !b->keys[x])
		f |= FL_SKIP; /* reserved, or no counter at x (yet) */
	else if (s->known && (f & FL_GAUGE ? s->in_redis != 0
					   : s->rgen <= s->gen))
		f |= FL_CLEAN;
	b->flag[x] = f;
	b->ack[x] = s->in_redis ? s->acked : 0;
}

/* The key map: our counters by Redis key, to find what a feed entry
 * names without a directory lookup. Keys are added once, never removed. */
static void kmap_add(struct bridge *b, uint32_t x)
{
	uint32_t i = (uint32_t)shmstat__hash(b->keys[x], b->keylen[x]) &
		     b->kmask;

	while (b->kmap[i])
		i = (i + 1) & b->kmask;
	b->kmap[i] = x + 1;
}

static int64_t kmap_find(const struct bridge *b, const char *k, size_t len)
{
	uint32_t i = (uint32_t)shmstat__hash(k, len) & b->kmask;

	for (uint32_t n = 0; n <= b->kmask && b->kmap[i]; n++) {
		uint32_t x = b->kmap[i] - 1;
		if (b->keylen[x] == len && memcmp(b->keys[x], k, len) == 0)
			return x;
		i = (i + 1) & b->kmask;
	}
	return -1;
}

static bool is_reserved(const struct bridge *b, const char *key, size_t len)
{
	size_t ml = strlen(b->cf->meta_prefix);
	return len >= ml && memcmp(key, b->cf->meta_prefix, ml) == 0;
}

static int collect_one(const shmstat_stat_t *st, void *priv)
{
	struct snap *sn = priv;
	struct bridge *b = sn->b;

	if (st->index >= b->max_counters)
		return 0;
	if (sn->n == sn->cap) {
		size_t cap = sn->cap ? sn->cap * 2 : 256;
		struct item *v = realloc(sn->v, cap * sizeof(*v));
		if (!v)
			return SHMSTAT_ENOMEM;
		sn->v = v;
		sn->cap = cap;
	}
	uint32_t x = st->index;
	if (!b->keys[x]) {
		/* A directory entry never changes its name: build its key
		 * once. */
		size_t kpl = strlen(b->cf->key_prefix);
		char *k = malloc(kpl + st->name_len + 1);
		if (!k)
			return SHMSTAT_ENOMEM;
		memcpy(k, b->cf->key_prefix, kpl);
		memcpy(k + kpl, st->name, st->name_len);
		k[kpl + st->name_len] = '\0';
		b->keys[x] = k;
		b->keylen[x] = (uint32_t)(kpl + st->name_len);
		kmap_add(b, x);
		unsigned sl = b->parted ? slot_of(k, b->keylen[x]) : 0;
		struct bpart *p = bridge_part(b, sl);
		if (!p)
			return SHMSTAT_ENOMEM;
		b->cpart[x] = (uint16_t)sl;
		b->cnext[x] = p->first;
		p->first = x + 1;
		if (is_reserved(b, k, b->keylen[x])) {
			b->st[x].reserved_name = 1;
			b->status.reserved_names++;
			snprintf(b->status.reserved_name,
				 sizeof(b->status.reserved_name), "%.127s",
				 st->name);
			blog(SHMSTAT_LOG_WARNING,
			     "counter '%s' is never pushed: its key '%s' is "
			     "under the meta prefix '%s' (the bridge's "
			     "bookkeeping); rename it",
			     st->name, k, b->cf->meta_prefix);
		}
	}
	struct item *it = &sn->v[sn->n++];
	it->index = x;
	it->kind = (uint8_t)st->kind;
	it->total = st->kind == SHMSTAT_KIND_GAUGE ? st->value
						   : (int64_t)st->total;
	b->st[x].kind = it->kind;
	settle(b, x);
	return 0;
}

static bool pending_one(const struct bridge *b, const struct item *it)
{
	const struct bstate *s = &b->st[it->index];

	if (s->reserved_name)
		return false;
	if (!s->known)
		return true;
	if (it->kind == SHMSTAT_KIND_GAUGE)
		return !s->in_redis || s->acked != it->total;
	return s->acked != it->total || s->rgen > s->gen ||
	       (!s->in_redis && it->total != 0);
}

static void count_pending(struct bridge *b, const struct snap *sn)
{
	uint64_t pending = 0, refused = 0;

	for (size_t i = 0; i < sn->n; i++) {
		if (pending_one(b, &sn->v[i]))
			pending++;
		if (b->st[sn->v[i].index].refused)
			refused++;
	}
	b->status.pending = pending;
	b->status.refused_keys = refused;
	if (!refused)
		b->status.refused_key[0] = '\0';
}

/*
 * The snapshot: every counter's total and every gauge's value, read once;
 * it keeps those that need sending (all others are what Redis holds).
 * The directory is walked (names, keys) only when it holds a name we have
 * not seen: entries never move or go, so otherwise the totals are read by
 * index, without touching the names.
 */
static int collect(struct bridge *b, struct snap *sn)
{
	struct shmstat *h = b->h;
	uint32_t used = atomic_load_explicit(&h->hdr->counters_used,
					     memory_order_acquire);

	sn->b = b;
	if (used != b->nidx || !b->nidx) {
		int rc = shmstat_iter(h, NULL, collect_one, sn);
		if (rc < 0) {
			bridge_error(b, SHMSTAT_LOG_ERROR,
				     "reading the segment: %s",
				     shmstat_errstr(h));
			return -1;
		}
		size_t k = 0;
		for (size_t i = 0; i < sn->n; i++) {
			b->idx[i] = sn->v[i].index;
			if (pending_one(b, &sn->v[i]))
				sn->v[k++] = sn->v[i];
		}
		b->nidx = (uint32_t)sn->n;
		sn->n = k;
	} else {
		/* The rows' cells, found once: a total is their sum. Every
		 * array is walked in index order; entries without a counter
		 * are FL_SKIP. */
		uint32_t hwm = shmstat__hwm(h);
		const uint64_t *one = hwm ? shmstat__row_cells(h, 0) : NULL;
		size_t k = 0;
		for (uint32_t x = 0; x < b->max_counters; x++) {
			uint8_t f = b->flag[x];
			if (f & FL_SKIP)
				continue;
			int64_t total;
			if (f & FL_GAUGE) {
				total = atomic_load_explicit(&h->dir[x].gauge,
							     memory_order_relaxed);
			} else if (hwm == 1) {
				total = (int64_t)__atomic_load_n(&one[x],
								 __ATOMIC_RELAXED);
			} else {
				uint64_t sum = 0;
				for (uint32_t w = 0; w < hwm; w++)
					sum += __atomic_load_n(
						&shmstat__row_cells(h, w)[x],
						__ATOMIC_RELAXED);
				total = (int64_t)sum;
			}
			if ((f & FL_CLEAN) && total == b->ack[x])
				continue;
			if (k == sn->cap) {
				size_t cap = sn->cap ? sn->cap * 2 : 1024;
				struct item *v = realloc(sn->v, cap * sizeof(*v));
				if (!v) {
					bridge_error(b, SHMSTAT_LOG_ERROR,
						     "out of memory");
					return -1;
				}
				sn->v = v;
				sn->cap = cap;
			}
			struct item *it = &sn->v[k++];
			it->index = x;
			it->kind = b->st[x].kind;
			it->total = total;
		}
		sn->n = k;
	}
	count_pending(b, sn);
	return 0;
}

void push_account(struct bridge *b)
{
	struct snap sn = { 0 };

	if (collect(b, &sn) == 0 && b->status.pending && !b->dirty_since_ns)
		b->dirty_since_ns = shmstat__now_realtime_ns();
	free(sn.v);
}

/* Forget what Redis holds: every counter is read again. */
static void forget_all(struct bridge *b)
{
	for (uint32_t i = 0; i < b->max_counters; i++) {
		b->st[i].known = 0;
		settle(b, i);
	}
	for (uint32_t i = 0; i < b->nparts_max; i++)
		if (b->part[i]) {
			b->part[i]->feed_known = false;
			b->part[i]->rgen_valid = false;
		}
	b->hfeed_known = false;
}

/* Forget what Redis holds of one partition (its sequence was not ours):
 * its counters are read again; it goes into M parts again (Redis may
 * have lost that too). Without partitions: forget_all. */
static void forget_part(struct bridge *b, struct bpart *p)
{
	if (!b->parted) {
		forget_all(b);
		return;
	}
	for (uint32_t x = p->first; x; x = b->cnext[x - 1]) {
		b->st[x - 1].known = 0;
		settle(b, x - 1);
	}
	p->feed_known = false;
	p->rgen_valid = false;
	p->in_parts = false;
}

/* The sequence of p's bookkeeping as Redis acknowledged it. The status
 * shows it without partitions; with, the number of transactions Redis
 * acknowledged (any non-zero value says the source was pushed). */
static void seq_set(struct bridge *b, struct bpart *p, uint64_t v, bool ok)
{
	p->seq = v;
	p->seq_known = true;
	if (!b->parted)
		b->status.seq_acked = v;
	else if (ok)
		b->status.seq_acked++;
}

/* The feed positions are void (MGET refused): every value is read. */
static void forget_feeds(struct bridge *b)
{
	for (uint32_t i = 0; i < b->nparts_max; i++)
		if (b->part[i])
			b->part[i]->feed_known = false;
}

void push_forget(struct bridge *b)
{
	if (b->st)
		forget_all(b);
}

/* ---------------------------------------------------------------- replies */

static bool parse_i64(const char *s, size_t len, int64_t *out)
{
	char buf[32], *end;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	if (*end || errno)
		return false;
	*out = v;
	return true;
}

static bool parse_u64(const redisReply *e, uint64_t *out)
{
	int64_t v;

	if (e->type == REDIS_REPLY_INTEGER) {
		*out = e->integer < 0 ? 0 : (uint64_t)e->integer;
		return true;
	}
	if (e->type != REDIS_REPLY_STRING)
		return false;
	/* Sorted-set scores come back as doubles ("12" or "1.2e+1"). */
	if (parse_i64(e->str, e->len, &v)) {
		*out = v < 0 ? 0 : (uint64_t)v;
		return true;
	}
	double d = strtod(e->str, NULL);
	*out = d < 0 ? 0 : (uint64_t)d;
	return true;
}

static bool reply_i64(const redisReply *e, int64_t *out)
{
	if (e->type == REDIS_REPLY_INTEGER) {
		*out = e->integer;
		return true;
	}
	return e->type == REDIS_REPLY_STRING && parse_i64(e->str, e->len, out);
}

/* A counter field: "T" or "T B G". */
static bool parse_field(const redisReply *e, int64_t *t, int64_t *bs,
			uint64_t *g)
{
	char buf[80];
	long long a, c;
	unsigned long long d;

	if (e->type != REDIS_REPLY_STRING || e->len >= sizeof(buf))
		return false;
	memcpy(buf, e->str, e->len);
	buf[e->len] = '\0';
	int n = sscanf(buf, "%lld %lld %llu", &a, &c, &d);
	if (n == 1) {
		*t = a;
		*bs = 0;
		*g = 0;
		return true;
	}
	if (n != 3)
		return false;
	*t = a;
	*bs = c;
	*g = d;
	return true;
}

/* Index of our counter with Redis key k, or -1. */
static int64_t index_of_key(struct bridge *b, const char *k, size_t len)
{
	return kmap_find(b, k, len);
}

/* ------------------------------------------------------------- resetting */

static int reset_refused(struct bridge *b, uint64_t id, const redisReply *r)
{
	if (!r)
		return -1;
	shmstat__sync_reset_done(b->h, id, 0,
				r->type == REDIS_REPLY_ERROR &&
						strncmp(r->str, "NOPERM", 6) == 0
					? SHMSTAT_EPERM
					: SHMSTAT_ESYS);
	return 0;
}

static redisReply *run_script(struct bridge *b, const char *sha,
			      const char *src, struct args *a)
{
	a->v[0] = "EVALSHA";
	a->len[0] = 7;
	a->v[1] = sha;
	a->len[1] = 40;
	redisReply *r = conn_command(b, a->n, a->v, a->len);
	if (r && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0) {
		freeReplyObject(r);
		blog(SHMSTAT_LOG_INFO,
		     "Redis %s forgot a script (NOSCRIPT): sending it with "
		     "EVAL",
		     b->cf->addr);
		a->v[0] = "EVAL";
		a->len[0] = 4;
		a->v[1] = src;
		a->len[1] = strlen(src);
		r = conn_command(b, a->n, a->v, a->len);
	}
	return r;
}

/* The glob of a global reset meets a name in its canonical form, as the
 * local reset and the tool's filters do: `req{code="200"}`, not the stored
 * `req{}{code="200"}` that is the Redis key. */
static bool reset_matches(const char *glob, const char *name, size_t len)
{
	char d[SHMSTAT_NAME_MAX + 1];

	if (len > SHMSTAT_NAME_MAX)
		return shmstat__glob(glob, name, len);
	size_t dl = shmstat__key_display(name, len, d);
	return shmstat__glob(glob, d, dl);
}

/* ------------------------------------------------------------ partitions */

/* A key this push changed, for the home feed (partitioned). Out of
 * memory: the hint is lost, the slot's own feed still has it. */
static void hint_add(struct bridge *b, uint32_t x)
{
	if (b->nhint == b->hint_cap) {
		size_t cap = b->hint_cap ? b->hint_cap * 2 : 256;
		uint32_t *v = realloc(b->hint, cap * sizeof(*v));
		if (!v)
			return;
		b->hint = v;
		b->hint_cap = cap;
	}
	b->hint[b->nhint++] = x;
}

/* A reply that says the slot is served elsewhere or not now (Redis
 * Cluster): nothing of that slot was written; try again later. */
static bool redirected(const struct bridge *b, const redisReply *r)
{
	if (b->moved)
		return true;
	if (!r || r->type != REDIS_REPLY_ERROR)
		return false;
	return strncmp(r->str, "MOVED ", 6) == 0 ||
	       strncmp(r->str, "ASK ", 4) == 0 ||
	       strncmp(r->str, "TRYAGAIN", 8) == 0 ||
	       strncmp(r->str, "CLUSTERDOWN", 11) == 0;
}

static unsigned home_slot(void)
{
	return slot_of(SLOT_HOME_TAG, strlen(SLOT_HOME_TAG));
}

/* Talk to the master of the home slot (sources, incarnations, M parts). */
static int at_home(struct bridge *b)
{
	return conn_slot(b, home_slot());
}

/* The name of source o's bookkeeping key `what` ("s:", "t:", "g:") in
 * slot sl's partition. */
static void pkey(const struct bridge *b, char *buf, size_t len, unsigned sl,
		 const char *what, const char *o)
{
	snprintf(buf, len, "%s{%s}%s%s", b->cf->meta_prefix, slot_tag(sl),
		 what, o);
}

/* The slots a set at home holds (M parts, M p:S), as bits. 0; 1 refused
 * (logged: *err gets the reply's text); 2 redirected (try later); -1 I/O
 * error. */
static int home_slots(struct bridge *b, const char *key, uint8_t *bits,
		      char *err, size_t errlen)
{
	char cursor[32] = "0";

	if (at_home(b) < 0)
		return -1;
	for (int round = 0; round < 100000; round++) {
		const char *argv[] = { "SSCAN", key, cursor, "COUNT", "1000" };
		redisReply *r = conn_command(b, 5, argv, NULL);
		if (!r)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING) {
			int ret = redirected(b, r) ? 2 : 1;
			snprintf(err, errlen, "%s", conn_errtext(b, r));
			freeReplyObject(r);
			return ret;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		redisReply *set = r->element[1];
		for (size_t i = 0; i < set->elements; i++) {
			int64_t v;
			if (reply_i64(set->element[i], &v) && v >= 0 &&
			    v < (int64_t)SLOT_COUNT)
				bits[v / 8] |= (uint8_t)(1u << (v % 8));
		}
		freeReplyObject(r);
		if (strcmp(cursor, "0") == 0)
			break;
	}
	return 0;
}

/* An entry without keys in the home feed: `who` (a source, "reset")
 * changed keys in many slots: every bridge reads every slot's feed at its
 * next push. 0 or -1 (I/O error). */
static int home_note(struct bridge *b, const char *who)
{
	char cut[24];

	snprintf(cut, sizeof(cut), "%" PRIu64,
		 b->redis_ms > FEED_KEEP_MS ? b->redis_ms - FEED_KEEP_MS : 0);
	const char *argv[] = { "XADD", b->k_feed, "MINID", "~", cut, "*", "s",
			       who, "k", "" };
	if (at_home(b) < 0)
		return -1;
	redisReply *r = conn_command(b, 10, argv, NULL);
	if (!r)
		return -1;
	freeReplyObject(r);
	return 0;
}

static bool bit(const uint8_t *bits, unsigned i)
{
	return bits[i / 8] & (1u << (i % 8));
}

static bool reset_matches(const char *glob, const char *name, size_t len);
static int withdraw_slots(struct bridge *b, const char *o, const char *how,
			  uint64_t t);

/*
 * A global reset in the partitioned layout: per slot any source wrote
 * (M parts, at home), reset.lua over that slot's keys (its M keys), the
 * keys passed as KEYS so a cluster routes and checks them. Each slot's
 * call is idempotent by request id (reset_done in this source's record of
 * the slot): a reset that fails half way is run again, whole, at the next
 * push with the same id, and the slots done already skip it. Done when
 * every slot is.
 */
static int run_reset_parted(struct bridge *b, const char *glob, uint64_t id)
{
	const char *kp = b->cf->key_prefix;
	size_t kpl = strlen(kp);
	uint8_t *bits = calloc(SLOT_COUNT / 8, 1);
	char idbuf[32], err[200] = "";
	long long skipped = 0;
	int ret = 0;

	if (!bits) {
		bridge_error(b, SHMSTAT_LOG_ERROR, "out of memory");
		return -1;
	}
	if (id != b->reset_id) {
		b->reset_id = id;
		b->reset_n = 0;
	}
	snprintf(idbuf, sizeof(idbuf), "%" PRIu64, id);
	int rc = home_slots(b, b->k_parts, bits, err, sizeof(err));
	if (rc) {
		if (rc > 0)
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "global reset '%s': SSCAN of %s failed: %s",
				     glob, b->k_parts, err);
		if (rc == 1)
			shmstat__sync_reset_done(b->h, id, 0, SHMSTAT_ESYS);
		free(bits);
		return rc < 0 ? -1 : 0;
	}
	{
		/* The script leaves reset_done in our record of each slot:
		 * those slots are ours to clean up when we are retired. */
		struct args ps = { 0 };
		rc = args_push(&ps, "SADD", 4) | args_str(&ps, b->k_pset);
		for (unsigned sl = 0; sl < SLOT_COUNT && rc == 0; sl++)
			if (bit(bits, sl))
				rc |= args_fmt(&ps, "%u", sl);
		redisReply *r = rc || ps.n < 3
					? NULL
					: conn_command(b, ps.n, ps.v, ps.len);
		bool io = !rc && ps.n >= 3 && !r;
		args_free(&ps);
		if (r)
			freeReplyObject(r);
		if (io) {
			free(bits);
			return -1;
		}
	}
	for (unsigned sl = 0; sl < SLOT_COUNT; sl++) {
		if (!bit(bits, sl))
			continue;
		struct bpart *p = bridge_part(b, sl);
		struct args k = { 0 }, a = { 0 };
		char cursor[32] = "0";
		if (!p) {
			bridge_error(b, SHMSTAT_LOG_ERROR, "out of memory");
			ret = -1;
			goto out;
		}
		if (conn_slot(b, sl) < 0) {
			ret = -1;
			goto out;
		}
		rc = 0;
		for (int round = 0; round < 1000000 && rc == 0; round++) {
			const char *argv[] = { "SSCAN", p->k_keys, cursor,
					       "COUNT", "1000" };
			redisReply *r = conn_command(b, 5, argv, NULL);
			if (!r || r->type != REDIS_REPLY_ARRAY ||
			    r->elements != 2 ||
			    r->element[0]->type != REDIS_REPLY_STRING) {
				bridge_error(b, SHMSTAT_LOG_WARNING,
					     "global reset '%s': SSCAN of %s "
					     "failed: %s",
					     glob, p->k_keys, conn_errtext(b, r));
				if (r && !redirected(b, r))
					reset_refused(b, id, r);
				ret = r ? 0 : -1;
				if (r)
					freeReplyObject(r);
				args_free(&k);
				goto out;
			}
			snprintf(cursor, sizeof(cursor), "%s",
				 r->element[0]->str);
			redisReply *set = r->element[1];
			for (size_t i = 0; i < set->elements; i++) {
				redisReply *e = set->element[i];
				if (e->type != REDIS_REPLY_STRING ||
				    e->len < kpl ||
				    memcmp(e->str, kp, kpl) != 0 ||
				    is_reserved(b, e->str, e->len) ||
				    !reset_matches(glob, e->str + kpl,
						   e->len - kpl))
					continue;
				rc |= args_cat(&k, e->str, e->len, "", 0);
			}
			freeReplyObject(r);
			if (strcmp(cursor, "0") == 0)
				break;
		}
		if (!k.n) {
			args_free(&k);
			continue;
		}
		rc |= args_push(&a, "EVALSHA", 7) | args_push(&a, "", 0);
		rc |= args_fmt(&a, "%d", 5 + k.n);
		rc |= args_str(&a, p->k_rgen) | args_str(&a, p->k_resets);
		rc |= args_str(&a, p->k_feed) | args_str(&a, p->k_gauges);
		rc |= args_str(&a, p->k_src);
		for (int i = 0; i < k.n && rc == 0; i++)
			rc |= args_push(&a, k.v[i], k.len[i]);
		rc |= args_str(&a, idbuf);
		if (rc) {
			args_free(&a);
			args_free(&k);
			bridge_error(b, SHMSTAT_LOG_ERROR, "out of memory");
			ret = -1;
			goto out;
		}
		redisReply *r = run_script(b, b->reset_sha, reset_lua, &a);
		args_free(&a);
		args_free(&k);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_INTEGER) {
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "global reset '%s' failed in slot %u: %s",
				     glob, sl, conn_errtext(b, r));
			/* Redirected: the next push runs it again. */
			if (r && !redirected(b, r))
				reset_refused(b, id, r);
			ret = r ? 0 : -1;
			if (r)
				freeReplyObject(r);
			goto out;
		}
		if (r->element[0]->integer > 0)
			b->reset_n += (uint64_t)r->element[0]->integer;
		skipped += r->element[1]->integer;
		freeReplyObject(r);
	}
	if (skipped)
		blog(SHMSTAT_LOG_WARNING,
		     "global reset '%s': %lld gauge%s left alone (a gauge is "
		     "a level each source sets: reset it where it is set)",
		     glob, skipped, skipped == 1 ? "" : "s");
	if (home_note(b, "reset") < 0) {
		ret = -1;
		goto out;
	}
	shmstat__sync_reset_done(b->h, id, b->reset_n, 0);
	blog(SHMSTAT_LOG_INFO, "global reset '%s': %" PRIu64 " keys set to 0",
	     glob, b->reset_n);
out:
	free(bits);
	return ret;
}

/*
 * Run a pending `shmstat reset --global` request: the keys are every key
 * any source ever pushed (M keys) under our key prefix
 * whose name matches the glob; reset.lua resets them in one call, so the
 * request is applied once (idempotent by request id) and ordered by Redis.
 */
static int run_reset(struct bridge *b)
{
	char glob[256], idbuf[32];
	uint64_t id, epoch;
	int rc = shmstat__sync_reset_take(b->h, glob, sizeof(glob), &id, &epoch);

	if (rc <= 0)
		return 0;
	if (b->parted)
		return run_reset_parted(b, glob, id);
	const char *kp = b->cf->key_prefix;
	size_t kpl = strlen(kp);
	struct args a = { 0 };
	char cursor[32] = "0";
	int ret = 0;

	snprintf(idbuf, sizeof(idbuf), "%" PRIu64, id);
	rc = args_push(&a, "EVALSHA", 7) | args_push(&a, "", 0) |
	     args_push(&a, "5", 1) | args_str(&a, b->k_rgen) |
	     args_str(&a, b->k_resets) | args_str(&a, b->k_feed) |
	     args_str(&a, b->k_gauges) | args_str(&a, b->k_src) |
	     args_str(&a, idbuf);
	for (int round = 0; round < 1000000 && rc == 0; round++) {
		const char *argv[] = { "SSCAN", b->k_keys, cursor, "COUNT",
				       "1000" };
		redisReply *r = conn_command(b, 5, argv, NULL);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING) {
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "global reset '%s': SSCAN failed: %s",
				     glob, conn_errtext(b, r));
			ret = reset_refused(b, id, r);
			if (r)
				freeReplyObject(r);
			goto out;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		redisReply *set = r->element[1];
		for (size_t i = 0; i < set->elements; i++) {
			redisReply *e = set->element[i];
			if (e->type != REDIS_REPLY_STRING || e->len < kpl ||
			    memcmp(e->str, kp, kpl) != 0 ||
			    is_reserved(b, e->str, e->len) ||
			    !reset_matches(glob, e->str + kpl, e->len - kpl))
				continue;
			rc |= args_cat(&a, e->str, e->len, "", 0);
		}
		freeReplyObject(r);
		if (strcmp(cursor, "0") == 0)
			break;
	}
	if (rc) {
		bridge_error(b, SHMSTAT_LOG_ERROR, "out of memory");
		ret = -1;
		goto out;
	}
	redisReply *r = run_script(b, b->reset_sha, reset_lua, &a);
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "global reset '%s' failed: %s", glob,
			     conn_errtext(b, r));
		ret = reset_refused(b, id, r);
		if (r)
			freeReplyObject(r);
		goto out;
	}
	long long n = r->element[0]->integer;
	long long skipped = r->element[1]->integer;
	freeReplyObject(r);
	if (n < 0)
		n = 0; /* this request already ran (the bridge restarted) */
	if (skipped)
		blog(SHMSTAT_LOG_WARNING,
		     "global reset '%s': %lld gauge%s left alone (a gauge is "
		     "a level each source sets: reset it where it is set)",
		     glob, skipped, skipped == 1 ? "" : "s");
	shmstat__sync_reset_done(b->h, id, (uint64_t)n, 0);
	blog(SHMSTAT_LOG_INFO, "global reset '%s': %lld keys set to 0", glob,
	     n);
out:
	args_free(&a);
	return ret;
}

/* ---------------------------------------------------------------- pushing */

/* One queued command of the write transaction and what it is about. */
enum op_kind { OP_OTHER, OP_INCRBY, OP_FEED };

struct op {
	uint8_t kind;
	uint32_t item; /* OP_INCRBY: index into the group */
};

/* What a group decides for one counter. */
struct plan {
	int64_t delta;
	int64_t base;
	uint64_t gen;
	bool write;  /* its field changes */
	bool bad;    /* out of range: not sent */
	bool newg;   /* a gauge key Redis does not hold yet */
};

struct txn {
	const struct snap *sn;
	const uint32_t *grp; /* indexes into sn->v */
	size_t ng;
	bool first;          /* also read the feed and refresh (one
				partition: the partitioned layout reads
				the feeds apart, feeds_node) */
	struct bpart *p;     /* the partition of every counter in grp */
};

static int flush_out(struct bridge *b)
{
	return conn_flush(b);
}

static int append(struct bridge *b, struct args *a, int *nrep)
{
	int rc = redisAppendCommandArgv(b->rc, a->n, a->v, a->len);
	args_free(a);
	if (rc != REDIS_OK)
		return -1;
	(*nrep)++;
	/* Keep hiredis' output buffer small: write as we go. */
	if (sdslen(b->rc->obuf) > (1u << 20))
		return flush_out(b);
	return 0;
}

static int append_cmd(struct bridge *b, int *nrep, int argc,
		      const char **argv)
{
	if (redisAppendCommandArgv(b->rc, argc, argv, NULL) != REDIS_OK)
		return -1;
	(*nrep)++;
	return 0;
}

static redisReply *get_reply(struct bridge *b)
{
	return conn_reply(b);
}

/* Read and drop n replies; -1 on I/O error. */
static int drain(struct bridge *b, int n)
{
	for (int i = 0; i < n; i++) {
		redisReply *r = get_reply(b);
		if (!r)
			return -1;
		freeReplyObject(r);
	}
	return 0;
}

static void set_global(struct bridge *b, uint32_t x, const redisReply *e,
		       uint64_t now)
{
	int64_t v;

	if (e->type == REDIS_REPLY_NIL)
		shmstat__sync_global_set(b->h, x, 0, now);
	else if (reply_i64(e, &v))
		shmstat__sync_global_set(b->h, x, v, now);
}

static void refused_key(struct bridge *b, uint32_t x, const char *why)
{
	if (!b->st[x].refused)
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "key '%s' on Redis %s: %s (its count stays "
			     "pending)",
			     b->keys[x], b->cf->addr, why);
	b->st[x].refused = 1;
	b->st[x].tried = b->push_no;
	snprintf(b->status.refused_key, sizeof(b->status.refused_key),
		 "%.127s", b->keys[x]);
}

static uint64_t key_tag(const struct bridge *b, uint32_t x)
{
	return shmstat__hash(b->keys[x], b->keylen[x]) | 1u;
}

/* The MGET of keys others changed (or of all ours when the feed is not
 * known): appended after EXEC, in chunks. */
struct refresh {
	uint32_t *x;
	size_t n, cap;
};

static int refresh_add(struct refresh *f, uint32_t x)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 256;
		uint32_t *v = realloc(f->x, cap * sizeof(*v));
		if (!v)
			return -1;
		f->x = v;
		f->cap = cap;
	}
	f->x[f->n++] = x;
	return 0;
}

/* Queue the reads of the values of the m counters x[0..m): one MGET, or
 * one GET each when MGET is refused; *n counts the replies to read.
 * 0, or -1 (out of memory, I/O). */
static int refresh_requests(struct bridge *b, struct args *a,
			    const uint32_t *x, size_t m, size_t *n)
{
	if (b->no_mget) {
		for (size_t j = 0; j < m; j++) {
			const char *v[2] = { "GET", b->keys[x[j]] };
			size_t l[2] = { 3, b->keylen[x[j]] };
			if (redisAppendCommandArgv(b->rc, 2, v, l) != REDIS_OK)
				return -1;
			(*n)++;
		}
		return 0;
	}
	int rc = args_push(a, "MGET", 4), q = 0;
	for (size_t j = 0; j < m; j++)
		rc |= args_pushk(a, b, x[j]);
	if (rc || append(b, a, &q) < 0)
		return -1;
	*n += (size_t)q;
	return 0;
}

/* The n replies of a refresh (MGET chunks, or one GET per key when MGET
 * is refused) into the global values of rf's counters, in order. Every
 * reply is read. 0; 1 when one was an error (a refused MGET sets no_mget:
 * GET from then on), the values being read again next time; -1 on an I/O
 * error. */
static int refresh_replies(struct bridge *b, const struct refresh *rf,
			   size_t n, uint64_t ns)
{
	bool gets = b->no_mget, refused = false;
	size_t pos = 0;

	for (size_t c = 0; c < n; c++) {
		redisReply *r = get_reply(b);
		if (!r)
			return -1;
		if (gets) {
			if (pos < rf->n)
				set_global(b, rf->x[pos++], r, ns);
		} else if (r->type == REDIS_REPLY_ARRAY) {
			for (size_t j = 0; j < r->elements && pos < rf->n; j++)
				set_global(b, rf->x[pos++], r->element[j], ns);
		} else if (r->type == REDIS_REPLY_ERROR && !refused) {
			refused = true;
			if (strncmp(r->str, "NOPERM", 6) == 0) {
				blog(SHMSTAT_LOG_WARNING,
				     "Redis %s refuses MGET (%s): reading the "
				     "global values with GET instead; allow "
				     "+mget for the bridge's ACL user",
				     b->cf->addr, r->str);
				b->no_mget = true;
			}
		}
		freeReplyObject(r);
	}
	return refused;
}


/* withdraw.lua for another source O ("retire" or "expired", with its
 * time argument): the reply, or NULL on an I/O error or when the
 * arguments could not be built (*built false). */
static redisReply *withdraw_other(struct bridge *b, const char *o,
				  const char *how, uint64_t t, bool *built)
{
	const char *mp = b->cf->meta_prefix;
	struct args a = { 0 };
	char tb[24];
	int rc = 0;

	snprintf(tb, sizeof(tb), "%" PRIu64, t);
	rc |= args_push(&a, "EVALSHA", 7) | args_push(&a, "", 0);
	rc |= args_push(&a, "5", 1);
	rc |= args_fmt(&a, "%sg:%s", mp, o) | args_fmt(&a, "%ss:%s", mp, o);
	rc |= args_str(&a, b->k_feed) | args_fmt(&a, "%st:%s", mp, o);
	rc |= args_str(&a, b->k_sources);
	rc |= args_str(&a, o) | args_str(&a, how) | args_str(&a, tb);
	*built = rc == 0;
	if (rc) {
		args_free(&a);
		return NULL;
	}
	redisReply *r = run_script(b, b->withdraw_sha, withdraw_lua, &a);
	args_free(&a);
	return r;
}

/*
 * Retire the previous incarnation O of this segment (the segment was
 * recreated: a reboot, `shmstat destroy` and `create`): its counts stay
 * in the keys, its gauges are withdrawn, its bookkeeping is dropped. Only
 * once O's lease has ended. 1 done, 0 not yet, -1 I/O error.
 */
static int retire(struct bridge *b, const char *o, uint64_t now)
{
	bool built;
	redisReply *r = withdraw_other(b, o, "retire", now, &built);

	if (!r)
		return built ? -1 : 0;
	int done = r->type == REDIS_REPLY_INTEGER && r->integer == 0;
	if (done)
		blog(SHMSTAT_LOG_INFO,
		     "segment '%s' was recreated: retired its previous "
		     "source %s (its counts stay in the keys)",
		     b->cf->segment, o);
	else if (r->type == REDIS_REPLY_ERROR)
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "retiring source %s on Redis %s: %s", o,
			     b->cf->addr, r->str);
	freeReplyObject(r);
	return done;
}

/* Withdraw the gauges of a source whose lease ended long ago. */
static int withdraw_expired(struct bridge *b, const char *o, uint64_t cut)
{
	bool built;
	redisReply *r = withdraw_other(b, o, "expired", cut, &built);

	if (!r)
		return built ? -1 : 0;
	if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0)
		blog(SHMSTAT_LOG_INFO,
		     "source %s: lease ended over %" PRIu64 " ms ago; its "
		     "gauges are withdrawn from the sums",
		     o, b->cf->gauge_expiry_ms);
	freeReplyObject(r);
	return 0;
}

int push_withdraw(struct bridge *b)
{
	struct args a = { 0 };
	int rc = 0;

	if (!b->rc)
		return -1;
	if (b->parted) {
		int d = withdraw_slots(b, b->source, "stop", 0);
		if (d < 0)
			conn_close(b);
		if (d != 1) {
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "withdrawing the gauges on Redis %s: "
				     "not done in every slot",
				     b->cf->addr);
			return -1;
		}
		for (uint32_t i = 0; i < b->max_counters; i++)
			if (b->st[i].kind == SHMSTAT_KIND_GAUGE) {
				b->st[i].known = 0;
				settle(b, i);
			}
		return 0;
	}
	rc |= args_push(&a, "EVALSHA", 7) | args_push(&a, "", 0);
	rc |= args_push(&a, "5", 1) | args_str(&a, b->k_gau);
	rc |= args_str(&a, b->k_src) | args_str(&a, b->k_feed);
	rc |= args_str(&a, b->k_tot) | args_str(&a, b->k_sources);
	rc |= args_str(&a, b->source);
	rc |= args_str(&a, "stop") | args_str(&a, "0");
	if (rc) {
		args_free(&a);
		return -1;
	}
	redisReply *r = run_script(b, b->withdraw_sha, withdraw_lua, &a);
	args_free(&a);
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "withdrawing the gauges on Redis %s: %s",
			     b->cf->addr, conn_errtext(b, r));
		if (r)
			freeReplyObject(r);
		else
			conn_close(b);
		return -1;
	}
	struct bpart *p0 = b->part[0];
	if (r->integer > 0 && p0->seq + 1 == (uint64_t)r->integer)
		seq_set(b, p0, (uint64_t)r->integer, true);
	else
		forget_all(b);
	freeReplyObject(r);
	for (uint32_t i = 0; i < b->max_counters; i++)
		if (b->st[i].kind == SHMSTAT_KIND_GAUGE) {
			b->st[i].known = 0;
			settle(b, i);
		}
	return 0;
}

/* Undo the bookkeeping of keys whose INCRBY Redis refused in the
 * transaction that just ran (its HSET of their totals did run). */
static int undo_refused(struct bridge *b, const struct txn *t,
			const bool *bad)
{
	struct args ht = { 0 }, hg = { 0 }, dt = { 0 }, dg = { 0 };
	int rc = 0, nrep = 0;
	size_t n = 0;

	const struct bpart *p = t->p;
	rc |= args_push(&ht, "HSET", 4) | args_str(&ht, p->k_tot);
	rc |= args_push(&hg, "HSET", 4) | args_str(&hg, p->k_gau);
	rc |= args_push(&dt, "HDEL", 4) | args_str(&dt, p->k_tot);
	rc |= args_push(&dg, "HDEL", 4) | args_str(&dg, p->k_gau);
	for (size_t i = 0; i < t->ng; i++) {
		if (!bad[i])
			continue;
		const struct item *it = &t->sn->v[t->grp[i]];
		const struct bstate *s = &b->st[it->index];
		bool g = it->kind == SHMSTAT_KIND_GAUGE;
		n++;
		if (!s->in_redis) {
			rc |= args_pushk(g ? &dg : &dt, b, it->index);
			continue;
		}
		struct args *h = g ? &hg : &ht;
		rc |= args_pushk(h, b, it->index);
		if (g || (s->base == 0 && s->gen == 0))
			rc |= args_i64(h, s->acked);
		else
			rc |= args_fmt(h, "%" PRId64 " %" PRId64 " %" PRIu64,
				       s->acked, s->base, s->gen);
	}
	if (!n || rc) {
		args_free(&ht);
		args_free(&hg);
		args_free(&dt);
		args_free(&dg);
		return rc ? -1 : 0;
	}
	const char *multi[] = { "MULTI" };
	const char *exec[] = { "EXEC" };
	const char *bump[] = { "HINCRBY", p->k_src, "seq", "1" };
	rc = append_cmd(b, &nrep, 1, multi);
	struct args *all[] = { &ht, &hg, &dt, &dg };
	for (int i = 0; i < 4; i++) {
		if (all[i]->n > 2 && rc == 0)
			rc = append(b, all[i], &nrep);
		else
			args_free(all[i]);
	}
	if (rc == 0)
		rc = append_cmd(b, &nrep, 4, bump);
	if (rc == 0)
		rc = append_cmd(b, &nrep, 1, exec);
	if (rc < 0)
		return -1;
	for (int i = 0; i < nrep; i++) {
		redisReply *r = get_reply(b);
		if (!r)
			return -1;
		if (i == nrep - 1 && r->type == REDIS_REPLY_ARRAY &&
		    r->elements > 0) {
			redisReply *e = r->element[r->elements - 1];
			if (e->type == REDIS_REPLY_INTEGER)
				seq_set(b, t->p, (uint64_t)e->integer, true);
		}
		freeReplyObject(r);
	}
	return 0;
}


/* ------------------------------------------------------------------ feed */

/* A stream entry id "ms-seq". */
static bool parse_fid(const redisReply *e, uint64_t *ms, uint64_t *seq)
{
	unsigned long long a, c;

	if (e->type != REDIS_REPLY_STRING ||
	    sscanf(e->str, "%llu-%llu", &a, &c) != 2)
		return false;
	*ms = a;
	*seq = c;
	return true;
}

static bool fid_after(uint64_t ms, uint64_t seq, uint64_t ms2, uint64_t seq2)
{
	return ms > ms2 || (ms == ms2 && seq > seq2);
}

/* The feed entry of keys k[0..n): XADD M feed MINID ~ cut * s S k
 * "k1\0k2...". */
static int build_xadd(struct bridge *b, struct args *a, const char *feed,
		      const uint32_t *k, size_t n, uint64_t now)
{
	size_t len = 0;
	char cut[24];
	int rc = 0;

	snprintf(cut, sizeof(cut), "%" PRIu64,
		 now > FEED_KEEP_MS ? now - FEED_KEEP_MS : 0);
	rc |= args_push(a, "XADD", 4) | args_str(a, feed);
	rc |= args_push(a, "MINID", 5) | args_push(a, "~", 1);
	rc |= args_str(a, cut) | args_push(a, "*", 1);
	rc |= args_push(a, "s", 1) | args_str(a, b->source);
	rc |= args_push(a, "k", 1);
	for (size_t i = 0; i < n; i++)
		len += b->keylen[k[i]] + (i > 0);
	char *p = args_room(a, len);
	if (rc || !p)
		return -1;
	char *q = p;
	for (size_t i = 0; i < n; i++) {
		if (i)
			*q++ = '\0';
		memcpy(q, b->keys[k[i]], b->keylen[k[i]]);
		q += b->keylen[k[i]];
	}
	return args_commit(a, p, len);
}

/* The keys of one feed entry, unless it is ours: refresh those we have. */
static int feed_entry(struct bridge *b, const redisReply *fields,
		      struct refresh *rf, bool *reset)
{
	const redisReply *src = NULL, *keys = NULL;

	if (fields->type != REDIS_REPLY_ARRAY)
		return 0;
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *f = fields->element[i];
		if (f->type != REDIS_REPLY_STRING || f->len != 1)
			continue;
		if (f->str[0] == 's')
			src = fields->element[i + 1];
		else if (f->str[0] == 'k')
			keys = fields->element[i + 1];
	}
	if (!keys || keys->type != REDIS_REPLY_STRING)
		return 0;
	if (src && src->type == REDIS_REPLY_STRING &&
	    strcmp(src->str, b->source) == 0)
		return 0;
	if (src && src->type == REDIS_REPLY_STRING &&
	    strcmp(src->str, "reset") == 0)
		*reset = true;
	const char *p = keys->str, *end = keys->str + keys->len;
	while (p < end) {
		const char *z = memchr(p, '\0', (size_t)(end - p));
		size_t l = z ? (size_t)(z - p) : (size_t)(end - p);
		int64_t x = index_of_key(b, p, l);
		if (x >= 0 && refresh_add(rf, (uint32_t)x) < 0)
			return -1;
		p += l + 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- upgrade */

/*
 * The previous release kept, per host id H, M m:H (owner token, lease,
 * sequence), M h:H (name -> total accepted) and M r:H (name -> "R E":
 * reset base and epoch). When m:H's owner token is the one that release
 * gave THIS segment, its bookkeeping is this source's: it moves, in one
 * transaction, into M t:S / M g:S (counter "T R 0", gauge T - R), so the
 * keys are neither lowered nor counted twice. Another host's (another
 * token) is left for its own bridge to migrate. 0 done or nothing to do,
 * 2 refused (logged), -1 I/O error.
 */
static int migrate(struct bridge *b)
{
	const char *mp = b->cf->meta_prefix;
	char km[200], kh[200], kr[200], khosts[100];
	int ret = 0;

	snprintf(km, sizeof(km), "%sm:%s", mp, b->host_hex);
	snprintf(kh, sizeof(kh), "%sh:%s", mp, b->host_hex);
	snprintf(kr, sizeof(kr), "%sr:%s", mp, b->host_hex);
	snprintf(khosts, sizeof(khosts), "%shosts", mp);
	const char *w[] = { "WATCH", km, kh, kr, b->k_src };
	const char *g1[] = { "HGET", km, "owner" };
	const char *g2[] = { "HGETALL", kh };
	const char *g3[] = { "HGETALL", kr };
	const char *g4[] = { "EXISTS", b->k_src };
	int n = 0;
	if (append_cmd(b, &n, 5, w) || append_cmd(b, &n, 3, g1) ||
	    append_cmd(b, &n, 2, g2) || append_cmd(b, &n, 2, g3) ||
	    append_cmd(b, &n, 2, g4))
		return -1;
	redisReply *r[5] = { 0 };
	for (int i = 0; i < 5; i++)
		if (!(r[i] = get_reply(b))) {
			ret = -1;
			goto out;
		}
	bool ours = r[1]->type == REDIS_REPLY_STRING &&
		    strcmp(r[1]->str, b->old_token) == 0;
	if (!ours || r[2]->type != REDIS_REPLY_ARRAY ||
	    r[3]->type != REDIS_REPLY_ARRAY || r[4]->type != REDIS_REPLY_INTEGER) {
		if (r[1]->type == REDIS_REPLY_STRING && !ours)
			blog(SHMSTAT_LOG_INFO,
			     "host-keyed bookkeeping of host %s belongs to "
			     "another segment (another owner); left alone",
			     b->host_hex);
		goto unwatch;
	}
	if (r[4]->integer == 1) {
		b->refused = true;
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "Redis %s holds both this segment's host-keyed "
			     "bookkeeping (%s) and its source's (%s): was an "
			     "older bridge started after this one? Stop every "
			     "shmstat-bridge of this segment, delete %s, %s "
			     "and %s (their counts are in the keys already) "
			     "and start this bridge again",
			     b->cf->addr, kh, b->k_src, km, kh, kr);
		ret = 2;
		goto unwatch;
	}
	struct args ht = { 0 }, hg = { 0 }, sg = { 0 }, fd = { 0 };
	int rc = 0, nrep = 0;
	rc |= args_push(&ht, "HSET", 4) | args_str(&ht, b->k_tot);
	rc |= args_push(&hg, "HSET", 4) | args_str(&hg, b->k_gau);
	rc |= args_push(&sg, "SADD", 4) | args_str(&sg, b->k_gauges);
	rc |= args_push(&fd, "SADD", 4) | args_str(&fd, b->k_keys);
	const char *kp = b->cf->key_prefix;
	size_t kpl = strlen(kp);
	size_t moved = 0;
	for (size_t i = 0; i + 1 < r[2]->elements && !rc; i += 2) {
		redisReply *name = r[2]->element[i], *tv = r[2]->element[i + 1];
		int64_t t, rb = 0;
		if (name->type != REDIS_REPLY_STRING || !reply_i64(tv, &t))
			continue;
		for (size_t j = 0; j + 1 < r[3]->elements; j += 2)
			if (r[3]->element[j]->len == name->len &&
			    memcmp(r[3]->element[j]->str, name->str,
				   name->len) == 0) {
				long long x;
				if (sscanf(r[3]->element[j + 1]->str, "%lld",
					   &x) == 1)
					rb = x;
				break;
			}
		char key[400];
		if (kpl + name->len >= sizeof(key))
			continue;
		memcpy(key, kp, kpl);
		memcpy(key + kpl, name->str, name->len);
		key[kpl + name->len] = '\0';
		size_t kl = kpl + name->len;
		shmstat_stat_t st;
		bool gauge = shmstat_stat_read(b->h, key + kpl, &st) == 0 &&
			     st.kind == SHMSTAT_KIND_GAUGE;
		if (gauge) {
			int64_t v;
			if (__builtin_sub_overflow(t, rb, &v))
				continue;
			rc |= args_cat(&hg, key, kl, "", 0) | args_i64(&hg, v);
			rc |= args_cat(&sg, key, kl, "", 0);
		} else if (rb) {
			rc |= args_cat(&ht, key, kl, "", 0);
			rc |= args_fmt(&ht, "%" PRId64 " %" PRId64 " 0", t, rb);
		} else {
			rc |= args_cat(&ht, key, kl, "", 0) | args_i64(&ht, t);
		}
		rc |= args_cat(&fd, key, kl, "", 0);
		moved++;
	}
	if (rc) {
		args_free(&ht);
		args_free(&hg);
		args_free(&sg);
		args_free(&fd);
		ret = 2;
		goto unwatch;
	}
	const char *multi[] = { "MULTI" };
	const char *del[] = { "DEL", km, kh, kr };
	const char *srem[] = { "SREM", khosts, b->host_hex };
	const char *hs[] = { "HSET", b->k_src, "seq", "1", "owner", b->token,
			     "owner_exp", "0", "migrated_from", b->host_hex };
	const char *exec[] = { "EXEC" };
	rc = append_cmd(b, &nrep, 1, multi);
	struct args *all[] = { &ht, &hg, &sg, &fd };
	for (int i = 0; i < 4; i++) {
		if (rc == 0 && all[i]->n > 2)
			rc = append(b, all[i], &nrep);
		else
			args_free(all[i]);
	}
	rc |= append_cmd(b, &nrep, 4, del);
	rc |= append_cmd(b, &nrep, 3, srem);
	rc |= append_cmd(b, &nrep, 10, hs);
	rc |= append_cmd(b, &nrep, 1, exec);
	if (rc) {
		ret = -1;
		goto out;
	}
	redisReply *ex = NULL;
	for (int i = 0; i < nrep; i++) {
		redisReply *x = get_reply(b);
		if (!x) {
			ret = -1;
			goto out;
		}
		if (i == nrep - 1)
			ex = x;
		else
			freeReplyObject(x);
	}
	if (!ex) {
		ret = -1;
		goto out;
	}
	if (ex->type == REDIS_REPLY_ARRAY) {
		blog(SHMSTAT_LOG_INFO,
		     "upgraded the bookkeeping of host %s (%zu names) to "
		     "source %s",
		     b->host_hex, moved, b->source);
		seq_set(b, b->part[0], 1, false);
		forget_all(b);
		b->migrate_checked = true;
	} else {
		ret = 2; /* changed meanwhile: look again next push */
	}
	freeReplyObject(ex);
	goto out;
unwatch:
	b->migrate_checked = ret == 0;
	{
		const char *uw[] = { "UNWATCH" };
		redisReply *u = conn_command(b, 1, uw, NULL);
		if (!u)
			ret = -1;
		else
			freeReplyObject(u);
	}
out:
	for (int i = 0; i < 5; i++)
		if (r[i])
			freeReplyObject(r[i]);
	return ret;
}

/*
 * One group: read, decide, write. 0 done; 1 read again (our knowledge was
 * void, or EXEC was aborted); 2 refused or failed (logged); -1 I/O error.
 */
/* The read half of a group, sent: what run_txn reads back. */
struct reads {
	uint32_t *unk;       /* the counters we do not know */
	size_t nunk;
	int nrep;            /* replies */
	bool read_resets, read_feed, read_inc, read_exp;
	bool sent;           /* in flight: sent behind the previous group's
				write (partitioned: the next slot's) */
	bool broken;         /* its replies were read and its WATCH cleared
				(the previous group sent a transaction
				after it): the group is read again */
};

/* Queue the read half of group t (not flushed). 0; -1 I/O error or out
 * of memory (rd->unk may be set: the caller frees it). */
static int send_reads(struct bridge *b, const struct txn *t,
		      struct reads *rd)
{
	const size_t ng = t->ng;
	const struct snap *sn = t->sn;
	struct bpart *p = t->p;
	struct args a = { 0 };
	char rg[32], fp[32], cut[32];
	int nrep = 0;

	rd->read_resets = p->rgen_valid;
	rd->read_feed = t->first && p->feed_known;
	rd->read_inc = !b->started && !b->parted;
	rd->read_exp = t->first && b->redis_ms > b->cf->gauge_expiry_ms;
	rd->nunk = 0;
	rd->unk = malloc((ng ? ng : 1) * sizeof(*rd->unk));
	if (!rd->unk)
		return -1;
	uint32_t *unk = rd->unk;
	for (size_t i = 0; i < ng; i++)
		if (!b->st[sn->v[t->grp[i]].index].known)
			unk[rd->nunk++] = sn->v[t->grp[i]].index;
	size_t nunk = rd->nunk;

	const char *watch[] = { "WATCH", p->k_src, p->k_rgen };
	const char *hm[] = { "HMGET", p->k_src, "owner", "owner_exp", "seq" };
	const char *tm[] = { "TIME" };
	const char *grg[] = { "GET", p->k_rgen };
	const char *xl[] = { "XREVRANGE", p->k_feed, "+", "-", "COUNT", "1" };
	const char *xo[] = { "XRANGE", p->k_feed, "-", "+", "COUNT", "1" };
	const char *gi[] = { "GET", b->k_inc };
	snprintf(rg, sizeof(rg), "(%" PRIu64, p->rgen_known);
	snprintf(fp, sizeof(fp), "(%" PRIu64 "-%" PRIu64, p->feed_ms,
		 p->feed_seq);
	snprintf(cut, sizeof(cut), "%" PRIu64,
		 rd->read_exp ? b->redis_ms - b->cf->gauge_expiry_ms : 0);
	const char *zr[] = { "ZRANGEBYSCORE", p->k_resets, rg, "+inf",
			     "WITHSCORES" };
	const char *xr[] = { "XRANGE", p->k_feed, fp, "+", "COUNT", FEED_MAX };
	const char *ze[] = { "ZRANGEBYSCORE", b->k_sources, "-inf", cut,
			     "LIMIT", "0", "4" };
	int rc = append_cmd(b, &nrep, 3, watch);
	rc |= append_cmd(b, &nrep, 5, hm);
	rc |= append_cmd(b, &nrep, 1, tm);
	rc |= append_cmd(b, &nrep, 2, grg);
	if (rd->read_resets)
		rc |= append_cmd(b, &nrep, 5, zr);
	/* The feed: its newest entry (where to read from, after reading
	 * every value), or its oldest (was it trimmed past where we read?)
	 * and what came after our position. */
	if (t->first)
		rc |= append_cmd(b, &nrep, 6, p->feed_known ? xo : xl);
	if (rd->read_feed)
		rc |= append_cmd(b, &nrep, 6, xr);
	if (rd->read_inc)
		rc |= append_cmd(b, &nrep, 2, gi);
	if (rd->read_exp)
		rc |= append_cmd(b, &nrep, 7, ze);
	for (size_t off = 0; off < nunk && rc == 0; off += BRIDGE_CHUNK) {
		size_t n = nunk - off < BRIDGE_CHUNK ? nunk - off : BRIDGE_CHUNK;
		const char *what[3][2] = { { "HMGET", p->k_tot },
					   { "HMGET", p->k_gau },
					   { "ZMSCORE", p->k_resets } };
		for (int w = 0; w < 3 && rc == 0; w++) {
			rc |= args_push(&a, what[w][0], strlen(what[w][0]));
			rc |= args_str(&a, what[w][1]);
			for (size_t i = 0; i < n; i++)
				rc |= args_pushk(&a, b, unk[off + i]);
			rc = rc ? -1 : append(b, &a, &nrep);
		}
	}
	args_free(&a);
	rd->nrep = nrep;
	return rc ? -1 : 0;
}

/*
 * One group: read, decide, write. 0 done; 1 read again (our knowledge was
 * void, or EXEC was aborted); 2 refused or failed (logged); -1 I/O error.
 * rd: its read half, sent already (rd->sent) or not. next (may be NULL):
 * a group of another slot on the same connection whose read half goes
 * behind this group's write, one round trip for both (partitioned), into
 * *nrd.
 */
static int run_txn(struct bridge *b, const struct txn *t, struct reads *rd,
		   const struct txn *next, struct reads *nrd)
{
	const size_t ng = t->ng;
	const struct snap *sn = t->sn;
	int nrep = 0, ret = 0;
	struct args a = { 0 };
	struct plan *pl = NULL;
	struct op *ops = NULL;
	bool *bad = NULL;
	size_t nops = 0;
	struct refresh rf = { 0 };
	struct bpart *p = t->p;

	if (rd->broken) {
		ret = 1;
		goto out;
	}
	if (!rd->sent && send_reads(b, t, rd) < 0) {
		ret = -1;
		goto out;
	}
	const uint32_t *unk = rd->unk;
	const size_t nunk = rd->nunk;
	const bool read_resets = rd->read_resets, read_feed = rd->read_feed;
	const bool read_inc = rd->read_inc, read_exp = rd->read_exp;
	nrep = rd->nrep;
	pl = calloc(ng ? ng : 1, sizeof(*pl));
	if (!pl) {
		/* Its replies are on the way: read them, then give up. */
		ret = drain(b, nrep) < 0 ? -1 : 2;
		goto out;
	}

	redisReply *r;
	uint64_t now = 0, seq = 0, rgen = 0;
	uint64_t pos_ms = p->feed_ms, pos_seq = p->feed_seq;
	bool refused = false, missing = false;
	char owner[80] = "", inc[80] = "";
	int64_t owner_exp = 0;
	int got = 0;
	for (int i = 0; i < 4; i++, got++) {
		if (!(r = get_reply(b))) {
			ret = -1;
			goto out;
		}
		if (i == 1 && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
			redisReply **e = r->element;
			if (e[0]->type == REDIS_REPLY_STRING)
				snprintf(owner, sizeof(owner), "%s", e[0]->str);
			if (!reply_i64(e[1], &owner_exp))
				owner_exp = 0;
			if (!parse_u64(e[2], &seq))
				missing = e[0]->type == REDIS_REPLY_NIL;
		} else if (i == 1 || (i == 0 && r->type == REDIS_REPLY_ERROR)) {
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "push to Redis %s: %s", b->cf->addr,
				     conn_errtext(b, r));
			refused = true;
		} else if (i == 2 && r->type == REDIS_REPLY_ARRAY &&
			   r->elements == 2) {
			uint64_t s = 0, us = 0;
			parse_u64(r->element[0], &s);
			parse_u64(r->element[1], &us);
			now = s * 1000 + us / 1000;
		} else if (i == 3) {
			if (r->type == REDIS_REPLY_ERROR)
				refused = true;
			else if (!parse_u64(r, &rgen))
				rgen = 0;
		}
		freeReplyObject(r);
	}
	if (refused) {
		ret = 2;
		goto drain_out;
	}
	/* Partitioned, the lease is at home (push_home). */
	if (!b->parted && owner[0] && strcmp(owner, b->token) != 0 &&
	    owner_exp > 0 &&
	    (uint64_t)owner_exp > now) {
		b->refused = true;
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "source %s (segment '%s') is in use on Redis %s by "
			     "another live bridge (its lease ends in %" PRIu64
			     " ms); refusing to push",
			     b->source, b->cf->segment, b->cf->addr,
			     (uint64_t)owner_exp - now);
		ret = 2;
		goto drain_out;
	}
	/* Resets since the generation we applied. */
	if (read_resets) {
		if (!(r = get_reply(b))) {
			ret = -1;
			goto out;
		}
		got++;
		if (r->type == REDIS_REPLY_ARRAY)
			for (size_t i = 0; i + 1 < r->elements; i += 2) {
				uint64_t g = 0;
				redisReply *k = r->element[i];
				if (k->type != REDIS_REPLY_STRING ||
				    !parse_u64(r->element[i + 1], &g))
					continue;
				int64_t x = index_of_key(b, k->str, k->len);
				if (x >= 0 && g > b->st[x].rgen) {
					b->st[x].rgen = g;
					settle(b, (uint32_t)x);
					b->reset_seen = true;
				}
			}
		freeReplyObject(r);
	}
	bool feed_back = false;
	if (t->first) {
		if (!(r = get_reply(b))) {
			ret = -1;
			goto out;
		}
		got++;
		uint64_t ms = 0, sq = 0;
		bool one = r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
			   r->element[0]->type == REDIS_REPLY_ARRAY &&
			   r->element[0]->elements == 2 &&
			   parse_fid(r->element[0]->element[0], &ms, &sq);
		if (!p->feed_known) {
			pos_ms = one ? ms : 0;
			pos_seq = one ? sq : 0;
		} else if (one && fid_after(ms, sq, p->feed_ms, p->feed_seq)) {
			/* Trimmed past our position (or a new feed): what
			 * we missed is unknown, read every value. */
			feed_back = true;
		}
		freeReplyObject(r);
	}
	if (read_feed) {
		if (!(r = get_reply(b))) {
			ret = -1;
			goto out;
		}
		got++;
		if (r->type == REDIS_REPLY_ARRAY) {
			if (r->elements >= (size_t)atoi(FEED_MAX))
				feed_back = true;
			for (size_t i = 0; i < r->elements; i++) {
				redisReply *e = r->element[i];
				uint64_t ms, sq;
				if (e->type != REDIS_REPLY_ARRAY ||
				    e->elements != 2 ||
				    !parse_fid(e->element[0], &ms, &sq))
					continue;
				if (fid_after(ms, sq, pos_ms, pos_seq)) {
					pos_ms = ms;
					pos_seq = sq;
				}
				bool rs = false;
				if (!feed_back &&
				    feed_entry(b, e->element[1], &rf, &rs) < 0)
					feed_back = true;
			}
		} else {
			feed_back = true;
		}
		freeReplyObject(r);
	}
	if (read_inc) {
		if (!(r = get_reply(b))) {
			ret = -1;
			goto out;
		}
		got++;
		if (r->type == REDIS_REPLY_STRING)
			snprintf(inc, sizeof(inc), "%s", r->str);
		freeReplyObject(r);
	}
	char expired[4][80];
	int nexp = 0;
	if (read_exp) {
		if (!(r = get_reply(b))) {
			ret = -1;
			goto out;
		}
		got++;
		if (r->type == REDIS_REPLY_ARRAY)
			for (size_t i = 0; i < r->elements && nexp < 4; i++)
				if (r->element[i]->type == REDIS_REPLY_STRING &&
				    strcmp(r->element[i]->str, b->source))
					snprintf(expired[nexp++], 80, "%s",
						 r->element[i]->str);
		freeReplyObject(r);
	}

	/* Is what we know of our bookkeeping still what Redis holds? */
	if (!b->parted && missing && b->status.seq_acked && inc[0] &&
	    strcmp(inc, b->source) != 0) {
		b->refused = true;
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "source %s was retired: segment '%s' on host %s "
			     "was recreated since (now source %s), and this "
			     "segment's counts are in Redis already; refusing "
			     "to push them again",
			     b->source, b->cf->segment, b->host_hex, inc);
		ret = 2;
		goto drain_out;
	}
	if (!p->seq_known) {
		/* The first look at this partition since the start: its
		 * counters are read in this pipeline. */
		seq_set(b, p, seq, false);
	} else if (seq != p->seq) {
		if (seq < p->seq)
			blog(SHMSTAT_LOG_WARNING,
			     "Redis %s lost pushes (the sequence of source %s "
			     "is %" PRIu64 ", below the %" PRIu64
			     " it acknowledged: restarted empty, restored "
			     "from an older snapshot, or another Redis than "
			     "the last one); reading its bookkeeping again and "
			     "sending what it lacks",
			     b->cf->addr, b->source, seq, p->seq);
		seq_set(b, p, seq, false);
		forget_part(b, p);
		ret = 1;
		goto drain_out;
	}

	/* The bookkeeping of the counters we did not know. */
	for (size_t off = 0; off < nunk; off += BRIDGE_CHUNK) {
		size_t n = nunk - off < BRIDGE_CHUNK ? nunk - off : BRIDGE_CHUNK;
		redisReply *rt = get_reply(b), *rgz = NULL, *rz = NULL;
		if (rt)
			got++, rgz = get_reply(b);
		if (rgz)
			got++, rz = get_reply(b);
		if (rz)
			got++;
		if (!rt || !rgz || !rz) {
			if (rt)
				freeReplyObject(rt);
			if (rgz)
				freeReplyObject(rgz);
			ret = -1;
			goto out;
		}
		bool ok = rt->type == REDIS_REPLY_ARRAY && rt->elements == n &&
			  rgz->type == REDIS_REPLY_ARRAY &&
			  rgz->elements == n && rz->type == REDIS_REPLY_ARRAY &&
			  rz->elements == n;
		if (!ok) {
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "reading the bookkeeping on Redis %s: %s",
				     b->cf->addr,
				     conn_errtext(b, rt->type == REDIS_REPLY_ERROR
							     ? rt
							     : rz));
			ret = 2;
		}
		for (size_t i = 0; i < n && ok; i++) {
			uint32_t x = unk[off + i];
			struct bstate *s = &b->st[x];
			bool g = s->kind == SHMSTAT_KIND_GAUGE;
			redisReply *e = g ? rgz->element[i] : rt->element[i];
			s->acked = s->base = 0;
			s->gen = s->rgen = 0;
			s->in_redis = 0;
			if (e->type == REDIS_REPLY_STRING) {
				if (g ? !reply_i64(e, &s->acked)
				      : !parse_field(e, &s->acked, &s->base,
						     &s->gen)) {
					refused_key(b, x, "its bookkeeping "
							  "field is not ours");
					continue;
				}
				s->in_redis = 1;
			}
			parse_u64(rz->element[i], &s->rgen);
			/* The reset base mirrored in the segment survives
			 * a Redis that lost it (restarted empty, restored
			 * from before the reset). */
			int64_t mb = 0;
			uint64_t tag = 0;
			s->mbase = 0;
			if (!g && shmstat__sync_rbase_get(b->h, x, &mb, &tag) == 0 &&
			    tag == key_tag(b, x))
				s->mbase = mb;
			s->known = 1;
			settle(b, x);
			/* Its global value, whether or not we send it. */
			if ((t->first || (b->parted && !p->refreshed)) &&
			    refresh_add(&rf, x) < 0)
				feed_back = true;
		}
		freeReplyObject(rt);
		freeReplyObject(rgz);
		freeReplyObject(rz);
	}
	if (ret)
		goto out;
	if (!p->rgen_valid || rgen >= p->rgen_known) {
		p->rgen_known = rgen;
		p->rgen_valid = true;
	}

	/* Others' business before ours: a previous incarnation, sources
	 * whose lease ended long ago. */
	bool set_inc = false;
	if (read_inc) {
		if (!inc[0] || strcmp(inc, b->source) == 0) {
			set_inc = !inc[0];
			b->started = !set_inc;
		} else {
			int d = retire(b, inc, now);
			if (d < 0) {
				ret = -1;
				goto out;
			}
			set_inc = d == 1;
		}
	}
	for (int i = 0; i < nexp; i++)
		if (withdraw_expired(b, expired[i],
				     now - b->cf->gauge_expiry_ms) < 0) {
			ret = -1;
			goto out;
		}

	/* ---- decide */
	size_t nwrite = 0;
	for (size_t i = 0; i < ng; i++) {
		const struct item *it = &sn->v[t->grp[i]];
		struct bstate *s = &b->st[it->index];
		struct plan *p = &pl[i];
		if (it->kind == SHMSTAT_KIND_GAUGE) {
			int64_t old = s->in_redis ? s->acked : 0;
			p->newg = !s->in_redis;
			if (__builtin_sub_overflow(it->total, old, &p->delta)) {
				p->bad = true;
				refused_key(b, it->index,
					    "the change is beyond the range of "
					    "a 64-bit integer");
				continue;
			}
			p->write = !s->in_redis || s->acked != it->total;
		} else {
			int64_t cold = s->in_redis ? s->acked - s->base : 0;
			p->base = s->base;
			p->gen = s->gen;
			if (s->rgen > s->gen) {
				cold = 0;
				if (s->in_redis && s->acked > p->base)
					p->base = s->acked;
				p->gen = s->rgen;
			}
			/* Totals only grow: the higher base is the later
			 * reset. */
			if (s->mbase > p->base)
				p->base = s->mbase;
			int64_t cnew;
			/* A counter's total is never negative: below 0 it is
			 * a sum beyond 2^63 - 1 read as signed. */
			if (it->total < 0 ||
			    __builtin_sub_overflow(it->total, p->base, &cnew) ||
			    __builtin_sub_overflow(cnew, cold, &p->delta)) {
				p->bad = true;
				refused_key(b, it->index,
					    "the change is beyond the range of "
					    "a 64-bit integer");
				continue;
			}
			p->write = !s->in_redis || s->acked != it->total ||
				   p->base != s->base || p->gen != s->gen;
			if (!s->in_redis && it->total == 0 && p->base == 0)
				p->write = false; /* nothing to say yet */
		}
		if (p->write)
			nwrite++;
	}

	/* ---- write */
	ops = calloc(ng + 64 + ng / BRIDGE_CHUNK * 8, sizeof(*ops));
	bad = calloc(ng ? ng : 1, sizeof(*bad));
	if (!ops || !bad) {
		ret = 2;
		goto out;
	}
	int wrep = 0;
	char exp_s[24], now_s[24], seq_s[24];
	snprintf(exp_s, sizeof(exp_s), "%" PRIu64, now + b->cf->owner_ttl_ms);
	snprintf(now_s, sizeof(now_s), "%" PRIu64, now);
	snprintf(seq_s, sizeof(seq_s), "%" PRIu64, seq + 1);
	const char *multi[] = { "MULTI" };
	const char *exec[] = { "EXEC" };
	const char *hs[] = { "HSET", p->k_src, "owner", b->token, "owner_exp",
			     exp_s, "seq", seq_s, "host", b->host_name,
			     "segment", b->cf->segment, "kp",
			     b->cf->key_prefix, "pushed_ms", now_s, "proto",
			     "2" };
	/* Partitioned: the record of the slot holds its sequence (the lease
	 * and the identity are at home). */
	const char *hp[] = { "HSET", p->k_src, "seq", seq_s };
	const char *zs[] = { "ZADD", b->k_sources, exp_s, b->source };
	const char *si[] = { "SET", b->k_inc, b->source };
	int rc = append_cmd(b, &wrep, 1, multi);
	if (b->parted) {
		rc |= append_cmd(b, &wrep, 4, hp);
		ops[nops++].kind = OP_OTHER;
	} else {
		rc |= append_cmd(b, &wrep, 18, hs);
		ops[nops++].kind = OP_OTHER;
		rc |= append_cmd(b, &wrep, 4, zs);
		ops[nops++].kind = OP_OTHER;
	}
	if (set_inc) {
		rc |= append_cmd(b, &wrep, 3, si);
		ops[nops++].kind = OP_OTHER;
	}
	for (size_t off = 0; off < ng && rc == 0; off += BRIDGE_CHUNK) {
		size_t n = ng - off < BRIDGE_CHUNK ? ng - off : BRIDGE_CHUNK;
		struct args ht = { 0 }, hg = { 0 }, fd = { 0 }, sg = { 0 };
		struct args sk = { 0 };
		uint32_t *ch = malloc(n * sizeof(*ch));
		size_t nch = 0;
		if (!ch)
			rc = -1;
		for (size_t i = off; i < off + n && rc == 0; i++) {
			const struct plan *q = &pl[i];
			uint32_t x = sn->v[t->grp[i]].index;
			if (q->bad || !q->delta)
				continue;
			const char *v[3] = { "INCRBY", b->keys[x], NULL };
			size_t l[3] = { 6, b->keylen[x], 0 };
			char d[24];
			int dl = snprintf(d, sizeof(d), "%" PRId64, q->delta);
			v[2] = d;
			l[2] = (size_t)dl;
			if (redisAppendCommandArgv(b->rc, 3, v, l) != REDIS_OK)
				rc = -1;
			wrep++;
			ops[nops].kind = OP_INCRBY;
			ops[nops++].item = (uint32_t)i;
		}
		rc |= args_push(&ht, "HSET", 4) | args_str(&ht, p->k_tot);
		rc |= args_push(&hg, "HSET", 4) | args_str(&hg, p->k_gau);
		rc |= args_push(&sg, "SADD", 4) | args_str(&sg, p->k_gauges);
		rc |= args_push(&sk, "SADD", 4) | args_str(&sk, p->k_keys);
		for (size_t i = off; i < off + n && rc == 0; i++) {
			const struct plan *q = &pl[i];
			const struct item *it = &sn->v[t->grp[i]];
			if (q->bad || !q->write)
				continue;
			if (it->kind == SHMSTAT_KIND_GAUGE) {
				rc |= args_pushk(&hg, b, it->index);
				rc |= args_i64(&hg, it->total);
				if (q->newg)
					rc |= args_pushk(&sg, b, it->index);
			} else {
				rc |= args_pushk(&ht, b, it->index);
				if (q->base == 0 && q->gen == 0)
					rc |= args_i64(&ht, it->total);
				else
					rc |= args_fmt(&ht,
						       "%" PRId64 " %" PRId64
						       " %" PRIu64,
						       it->total, q->base,
						       q->gen);
			}
			if (!b->st[it->index].in_redis)
				rc |= args_pushk(&sk, b, it->index);
			if (q->delta && ch)
				ch[nch++] = it->index;
		}
		if (nch && rc == 0)
			rc = build_xadd(b, &fd, p->k_feed, ch, nch, now);
		free(ch);
		struct args *cmds[] = { &ht, &hg, &sg, &sk, &fd };
		for (int c = 0; c < 5; c++) {
			if (rc == 0 && cmds[c]->n > 2) {
				ops[nops++].kind = c == 4 ? OP_FEED : OP_OTHER;
				rc = append(b, cmds[c], &wrep);
			} else {
				args_free(cmds[c]);
			}
		}
	}
	rc |= append_cmd(b, &wrep, 1, exec);
	/* The global values of what others changed, after EXEC. */
	bool all = t->first && (!p->feed_known || feed_back);
	size_t nref = 0;
	if (t->first || b->parted) {
		if (all) {
			rf.n = 0;
			for (uint32_t i = 0; i < b->nidx; i++)
				if (!b->st[b->idx[i]].reserved_name &&
				    refresh_add(&rf, b->idx[i]) < 0)
					rc = -1;
		}
		for (size_t off = 0; off < rf.n && rc == 0; off += BRIDGE_CHUNK) {
			size_t n = rf.n - off < BRIDGE_CHUNK ? rf.n - off
							     : BRIDGE_CHUNK;
			rc = refresh_requests(b, &a, rf.x + off, n, &nref);
		}
	}
	/* The next slot's read half, in the same round trip: its WATCH
	 * comes after our EXEC (which clears the watched keys). */
	if (rc == 0 && next && nrd) {
		rc = send_reads(b, next, nrd);
		nrd->sent = rc == 0;
	}
	if (rc) {
		ret = -1;
		goto out;
	}

	/* ---- apply */
	uint64_t ns = shmstat__now_realtime_ns();
	redisReply *ex = NULL;
	char qerr[200] = "";
	for (int i = 0; i < wrep; i++) {
		if (!(r = get_reply(b))) {
			ret = -1;
			goto out;
		}
		if (i == wrep - 1) {
			ex = r;
			continue;
		}
		/* A command refused while queued (OOM, NOPERM) makes EXEC
		 * discard the transaction: say why. */
		if (r->type == REDIS_REPLY_ERROR && !qerr[0])
			snprintf(qerr, sizeof(qerr), "%s", r->str);
		freeReplyObject(r);
	}
	b->redis_ms = now;
	if (!ex) {
		ret = -1;
		goto out;
	}
	if (ex->type == REDIS_REPLY_NIL) {
		/* A reset, or a withdrawal of our gauges, ran since the
		 * WATCH: nothing was written; read again. */
		freeReplyObject(ex);
		ret = 1;
		if (drain(b, (int)nref) < 0)
			ret = -1;
		goto out;
	}
	if (ex->type != REDIS_REPLY_ARRAY || ex->elements != nops) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "push to Redis %s: the transaction failed: %s%s%s",
			     b->cf->addr, conn_errtext(b, ex), qerr[0] ? ": " : "",
			     qerr);
		freeReplyObject(ex);
		forget_part(b, p);
		ret = 2;
		if (drain(b, (int)nref) < 0)
			ret = -1;
		goto out;
	}
	seq_set(b, p, seq + 1, true);
	if (set_inc)
		b->started = true;
	bool any_bad = false;
	for (size_t k = 0; k < nops; k++) {
		redisReply *e = ex->element[k];
		if (ops[k].kind == OP_INCRBY) {
			uint32_t i = ops[k].item;
			uint32_t x = sn->v[t->grp[i]].index;
			if (e->type == REDIS_REPLY_INTEGER) {
				shmstat__sync_global_set(b->h, x, e->integer, ns);
			} else {
				bad[i] = true;
				any_bad = true;
				refused_key(b, x,
					    e->type == REDIS_REPLY_ERROR ? e->str
									 : "error");
			}
		} else if (e->type == REDIS_REPLY_ERROR) {
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "push to Redis %s: %s", b->cf->addr,
				     e->str);
			forget_part(b, p);
			ret = 2;
		}
	}
	freeReplyObject(ex);
	for (size_t i = 0; i < ng; i++) {
		const struct item *it = &sn->v[t->grp[i]];
		struct bstate *s = &b->st[it->index];
		const struct plan *q = &pl[i];
		if (q->bad || bad[i])
			continue;
		s->refused = 0;
		if (b->parted && q->delta)
			hint_add(b, it->index);
		if (q->write) {
			s->acked = it->total;
			s->in_redis = 1;
			if (it->kind != SHMSTAT_KIND_GAUGE) {
				if (q->base != s->mbase)
					shmstat__sync_rbase_set(b->h, it->index,
							       q->base,
							       key_tag(b, it->index));
				s->base = s->mbase = q->base;
				s->gen = q->gen;
			}
		} else if (it->kind != SHMSTAT_KIND_GAUGE && q->gen > s->gen) {
			/* A reset reached a counter with nothing to write (0,
			 * and no field in Redis: "nothing to say yet"): its
			 * generation is applied here, or it would stay
			 * pending for ever (rgen above gen). */
			s->gen = q->gen;
		}
		if (s->rgen < s->gen)
			s->rgen = s->gen;
		settle(b, it->index);
	}
	/* The refresh replies, next in the stream after EXEC's. */
	int rr = refresh_replies(b, &rf, nref, ns);
	if (rr < 0) {
		ret = -1;
		goto out;
	}
	/* The undo is a transaction of its own, after the next slot's read
	 * half (sent after the refresh): its EXEC would clear that WATCH.
	 * Read those replies first; that group is read again. Only then
	 * are the undo's own replies the next ones. */
	if (any_bad && nrd && nrd->sent && !nrd->broken) {
		if (drain(b, nrd->nrep) < 0) {
			ret = -1;
			goto out;
		}
		nrd->broken = true;
	}
	if (any_bad && undo_refused(b, t, bad) < 0) {
		ret = -1;
		goto out;
	}
	if (rr) {
		if (rr > 0)
			forget_feeds(b); /* read every value again */
		ret = rr < 0 ? -1 : ret;
		goto out;
	}
	if (t->first) {
		p->feed_ms = pos_ms;
		p->feed_seq = pos_seq;
		p->feed_known = true;
	}
	if (t->first)
		b->last_refreshed = (uint32_t)rf.n;
	goto out;

drain_out:
	if (drain(b, nrep - got) < 0)
		ret = -1;
	else {
		const char *uw[] = { "UNWATCH" };
		redisReply *u = conn_command(b, 1, uw, NULL);
		if (!u)
			ret = -1;
		else
			freeReplyObject(u);
	}
out:
	args_free(&a);
	free(rd->unk);
	rd->unk = NULL;
	free(pl);
	free(ops);
	free(bad);
	free(rf.x);
	return ret;
}

/* ------------------------------------------------------ partitioned push */

/*
 * The partitioned layout (--partition-by-slot, Redis Cluster). Every
 * transaction and script stays in one hash slot: a counter key K belongs
 * to the partition of slot(K), whose bookkeeping keys M{tag}s:S,
 * M{tag}t:S, M{tag}g:S, M{tag}feed, M{tag}keys, M{tag}rgen, M{tag}resets
 * and M{tag}gauges carry a hash tag of that slot (slot_tag). Per
 * partition the protocol is the one above (run_txn, the WATCH on that
 * slot's M s:S and M rgen). What is about no one slot lives under the
 * home tag and is written outside those transactions:
 *   M{home}s:S      S's lease (owner, owner_exp) and identity
 *   M{home}sources  S -> lease end
 *   M{home}i:H:SEG  the current source of segment SEG on host H
 *   M{home}parts    every slot any source wrote (a reset's scope)
 *   M{home}p:S      the slots S wrote (its withdrawal's scope)
 * None needs atomicity with the counts: the lease only keeps two bridges
 * of one source from taking turns (their writes are exact anyway: each
 * partition's WATCHed sequence makes the later one read again); a slot
 * goes into M parts and M p:S before its first transaction (and again
 * after Redis lost writes), so a reset or a withdrawal never misses a
 * slot, and one listed in vain costs a call that finds nothing.
 *
 * A push: at home, the lease (read, then write: two round trips); per
 * node, the feeds of every partition of ours (one pipelined round trip,
 * no WATCH) and the values others changed (one more, when there are
 * any); then per partition with changed counters (or a reset seen in its
 * feed) the two round trips of run_txn. So a push costs what changed plus
 * two commands per partition of ours on its node.
 */

#define SWEEP_MIN 64  /* slots whose feed a push reads, at least */
#define SWEEP_DIV 16  /* ... or 1/16 of ours: each read every 16 pushes */

/*
 * The partitions whose feeds this push reads (sweep) or whose values the
 * home feed named (hinted), in slot order. The first round reads every
 * slot's feed after a doubt (sweep_all: a start, the home feed trimmed or
 * lost, a reset or withdrawal in many slots), else the next SWEEP_MIN or
 * 1/SWEEP_DIV of them in turn: what a lost hint (a bridge that died
 * between a slot's transaction and its home feed entry) or a reset or
 * withdrawal would leave stale is read within SWEEP_DIV pushes. Later
 * rounds read the feeds whose position is not known.
 */
static size_t parts_select(struct bridge *b, struct bpart **v, int round)
{
	size_t n = 0, used = 0;

	for (uint32_t i = 0; i < b->nparts_max; i++)
		if (b->part[i] && b->part[i]->first)
			used++;
	size_t budget = used / SWEEP_DIV + 1;
	if (budget < SWEEP_MIN)
		budget = SWEEP_MIN;
	bool all = round == 0 && (b->sweep_all || budget >= used);
	if (round == 0 && !all) {
		uint32_t s = b->sweep_next % b->nparts_max;
		for (uint32_t k = 0; k < b->nparts_max && budget; k++) {
			struct bpart *p = b->part[(s + k) % b->nparts_max];
			if (p && p->first) {
				p->sweep = true;
				budget--;
			}
			b->sweep_next = (s + k + 1) % b->nparts_max;
		}
	}
	for (uint32_t i = 0; i < b->nparts_max; i++) {
		struct bpart *p = b->part[i];
		if (!p || !p->first)
			continue;
		if (all || !p->feed_known)
			p->sweep = true;
		if (p->sweep || p->hinted)
			v[n++] = p;
	}
	if (round == 0)
		b->sweep_all = false;
	return n;
}

/* Write the home feed's entries of the keys this push changed: other
 * bridges read those values at their next push. 0 or -1 (I/O error). */
static int write_hints(struct bridge *b)
{
	struct args a = { 0 };
	int nrep = 0, rc = 0;

	if (!b->nhint)
		return 0;
	if (at_home(b) < 0)
		return -1;
	for (size_t off = 0; off < b->nhint && rc == 0; off += BRIDGE_CHUNK) {
		size_t n = b->nhint - off < BRIDGE_CHUNK ? b->nhint - off
							 : BRIDGE_CHUNK;
		rc = build_xadd(b, &a, b->k_feed, b->hint + off, n,
				b->redis_ms);
		rc = rc ? -1 : append(b, &a, &nrep);
	}
	args_free(&a);
	b->nhint = 0;
	if (rc)
		return -1;
	return drain(b, nrep);
}

typedef int (*node_fn)(struct bridge *b, struct bpart **v, size_t n,
		       void *arg);

/* fn over v[0..n) one node at a time: the partitions whose slots one
 * master serves (conn_slot makes the same connection current) go
 * together, their commands in one pipeline. A slot map that changes
 * meanwhile sends some to a node that answers MOVED: nothing of theirs
 * is written, the next push tries again. */
static int by_node(struct bridge *b, struct bpart **v, size_t n, node_fn fn,
		   void *arg)
{
	if (!n)
		return 0;
	if (!b->cluster)
		return fn(b, v, n, arg);
	redisContext **rc = malloc(n * sizeof(*rc));
	struct bpart **g = malloc(n * sizeof(*g));
	bool *done = calloc(n, sizeof(*done));
	int ret = 0;

	if (!rc || !g || !done) {
		ret = -1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int c = conn_slot(b, v[i]->slot);
		if (c == -1) {
			ret = -1;
			goto out;
		}
		rc[i] = c == 0 ? b->rc : NULL; /* NULL: unreachable now */
	}
	for (size_t i = 0; i < n; i++) {
		size_t m = 0;
		if (done[i])
			continue;
		if (!rc[i]) {
			/* Its master cannot be reached: the slots of the
			 * others go on (these are read at a later push). */
			done[i] = true;
			if (ret < 2)
				ret = 2;
			continue;
		}
		for (size_t j = i; j < n; j++)
			if (!done[j] && rc[j] == rc[i]) {
				g[m++] = v[j];
				done[j] = true;
			}
		if (conn_slot(b, g[0]->slot) < 0) {
			ret = -1;
			goto out;
		}
		int r = fn(b, g, m, arg);
		if (r < 0) {
			ret = -1;
			goto out;
		}
		if (r > ret)
			ret = r;
	}
out:
	free(rc);
	free(g);
	free(done);
	return ret;
}

/* Was the feed of p read so long ago that entries after our position
 * may have been trimmed since (FEED_KEEP_MS)? Then its oldest entry is
 * read too. */
static bool trim_check(const struct bridge *b, const struct bpart *p)
{
	return b->redis_ms >= p->swept_ms + FEED_KEEP_MS / 2;
}

struct feedsum {
	size_t refreshed;
	bool full;
	bool forgot;         /* a slot's knowledge was void: snapshot again */
};

/* Every counter of p into rf (its values are read again). */
static int refresh_part(struct bridge *b, const struct bpart *p,
			struct refresh *rf)
{
	for (uint32_t x = p->first; x; x = b->cnext[x - 1])
		if (!b->st[x - 1].reserved_name && refresh_add(rf, x - 1) < 0)
			return -1;
	return 0;
}

/* The feeds of one node's partitions v[0..n): the keys others changed
 * since we read them (their values read in a second round trip); a reset
 * seen, or a feed trimmed past our position, makes the partition run its
 * transaction (need). 0 or -1 (I/O error). */
static int feeds_node(struct bridge *b, struct bpart **v, size_t n, void *arg)
{
	struct feedsum *fs = arg;
	uint64_t *pms = calloc(n, sizeof(*pms)), *psq = calloc(n, sizeof(*psq));
	size_t *start = calloc(n + 1, sizeof(*start));
	bool *err = calloc(n, sizeof(*err));
	struct refresh rf = { 0 };
	struct args a = { 0 };
	redisReply *r = NULL;
	int nrep = 0, ret = 0, rc = 0;
	char fp[48];

	if (!pms || !psq || !start || !err) {
		ret = -1;
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct bpart *p = v[i];
		const char *hs[] = { "HGET", p->k_src, "seq" };
		if (!p->sweep)
			continue;
		if (p->seq_known)
			rc |= append_cmd(b, &nrep, 3, hs);
		if (p->feed_known) {
			snprintf(fp, sizeof(fp), "(%" PRIu64 "-%" PRIu64,
				 p->feed_ms, p->feed_seq);
			const char *xo[] = { "XRANGE", p->k_feed, "-", "+",
					     "COUNT", "1" };
			const char *xr[] = { "XRANGE", p->k_feed, fp, "+",
					     "COUNT", FEED_MAX };
			if (trim_check(b, p))
				rc |= append_cmd(b, &nrep, 6, xo);
			rc |= append_cmd(b, &nrep, 6, xr);
		} else {
			const char *xl[] = { "XREVRANGE", p->k_feed, "+", "-",
					     "COUNT", "1" };
			rc |= append_cmd(b, &nrep, 6, xl);
		}
	}
	if (rc) {
		ret = -1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct bpart *p = v[i];
		bool known = p->feed_known, back = !known, rs = false;
		uint64_t ms = 0, sq = 0;
		start[i] = rf.n;
		pms[i] = p->feed_ms;
		psq[i] = p->feed_seq;
		/* The keys the home feed named. */
		if (p->hinted)
			for (uint32_t x = p->first; x; x = b->cnext[x - 1])
				if (b->st[x - 1].hinted) {
					b->st[x - 1].hinted = 0;
					if (refresh_add(&rf, x - 1) < 0) {
						ret = -1;
						goto out;
					}
				}
		if (!p->sweep)
			continue;
		if (p->seq_known) {
			/* Our sequence in that slot: another value says
			 * Redis lost writes (or our gauges were withdrawn):
			 * what we know of the slot is void. */
			uint64_t sq2 = 0;
			if (!(r = get_reply(b))) {
				ret = -1;
				goto out;
			}
			if (r->type == REDIS_REPLY_ERROR)
				err[i] = true;
			else if (r->type != REDIS_REPLY_NIL &&
				 !parse_u64(r, &sq2))
				err[i] = true;
			else if (sq2 != p->seq) {
				if (sq2 < p->seq)
					blog(SHMSTAT_LOG_WARNING,
					     "Redis %s lost pushes (the sequence "
					     "of source %s in slot %u is %" PRIu64
					     ", below the %" PRIu64 " it "
					     "acknowledged); reading that slot's "
					     "bookkeeping again",
					     b->cf->addr, b->source, p->slot, sq2,
					     p->seq);
				seq_set(b, p, sq2, false);
				forget_part(b, p);
				fs->forgot = true;
				err[i] = true;
			}
			freeReplyObject(r);
			r = NULL;
		}
		if (!known || trim_check(b, p)) {
			if (!(r = get_reply(b))) {
				ret = -1;
				goto out;
			}
			bool one = r->type == REDIS_REPLY_ARRAY &&
				   r->elements == 1 &&
				   r->element[0]->type == REDIS_REPLY_ARRAY &&
				   r->element[0]->elements == 2 &&
				   parse_fid(r->element[0]->element[0], &ms, &sq);
			if (r->type == REDIS_REPLY_ERROR)
				err[i] = true;
			if (!known) {
				pms[i] = one ? ms : 0;
				psq[i] = one ? sq : 0;
			} else if (one &&
				   fid_after(ms, sq, p->feed_ms, p->feed_seq)) {
				back = true; /* trimmed past our position */
			}
			freeReplyObject(r);
			r = NULL;
		}
		if (known) {
			if (!(r = get_reply(b))) {
				ret = -1;
				goto out;
			}
			if (r->type != REDIS_REPLY_ARRAY) {
				err[i] = true;
			} else {
				if (r->elements >= (size_t)atoi(FEED_MAX))
					back = true;
				for (size_t j = 0; j < r->elements; j++) {
					redisReply *e = r->element[j];
					if (e->type != REDIS_REPLY_ARRAY ||
					    e->elements != 2 ||
					    !parse_fid(e->element[0], &ms, &sq))
						continue;
					if (fid_after(ms, sq, pms[i], psq[i])) {
						pms[i] = ms;
						psq[i] = sq;
					}
					if (!back &&
					    feed_entry(b, e->element[1], &rf,
						       &rs) < 0)
						back = true;
				}
			}
			freeReplyObject(r);
			r = NULL;
		}
		if (err[i]) {
			/* Redirected, refused, or its knowledge void: its
			 * position is read again. */
			p->feed_known = false;
			rf.n = start[i];
			continue;
		}
		/* A reset seen, or one we may have missed (the feed was
		 * trimmed or its position unknown): the transaction of the
		 * slot reads its resets. */
		if (rs || back)
			p->need = true;
		if (back) {
			rf.n = start[i];
			if (refresh_part(b, p, &rf) < 0) {
				ret = -1;
				goto out;
			}
			p->refreshed = true;
			fs->full = true;
		}
	}
	start[n] = rf.n;
	/* The values: MGET per partition (one slot each), in chunks. */
	nrep = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		for (size_t off = start[i]; off < start[i + 1] && rc == 0;
		     off += BRIDGE_CHUNK) {
			size_t m = start[i + 1] - off < BRIDGE_CHUNK
					   ? start[i + 1] - off
					   : BRIDGE_CHUNK;
			size_t q = 0;
			rc = refresh_requests(b, &a, rf.x + off, m, &q);
			nrep += (int)q;
		}
	if (rc) {
		ret = -1;
		goto out;
	}
	uint64_t ns = shmstat__now_realtime_ns();
	int rr = refresh_replies(b, &rf, (size_t)nrep, ns);
	if (rr < 0) {
		ret = -1;
		goto out;
	}
	if (rr > 0) {
		/* Read every value again, next time. */
		forget_feeds(b);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (!err[i] && v[i]->sweep) {
			v[i]->swept_ms = b->redis_ms;
			v[i]->feed_ms = pms[i];
			v[i]->feed_seq = psq[i];
			v[i]->feed_known = true;
		}
	fs->refreshed += rf.n;
out:
	args_free(&a);
	free(pms);
	free(psq);
	free(start);
	free(err);
	free(rf.x);
	return ret;
}

/* The slots of v[0..n) that are not in M parts and M p:S yet go there,
 * in one transaction at home. 0, 2 failed (logged), -1 I/O error. */
static int ensure_parts(struct bridge *b, struct bpart **v, size_t n)
{
	struct args s1 = { 0 }, s2 = { 0 };
	int rc = 0, nrep = 0, ret = 0;
	size_t add = 0;

	rc |= args_push(&s1, "SADD", 4) | args_str(&s1, b->k_parts);
	rc |= args_push(&s2, "SADD", 4) | args_str(&s2, b->k_pset);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!v[i]->in_parts) {
			rc |= args_fmt(&s1, "%u", v[i]->slot);
			rc |= args_fmt(&s2, "%u", v[i]->slot);
			add++;
		}
	if (rc || !add) {
		args_free(&s1);
		args_free(&s2);
		return rc ? -1 : 0;
	}
	if (at_home(b) < 0) {
		args_free(&s1);
		args_free(&s2);
		return -1;
	}
	const char *multi[] = { "MULTI" };
	const char *card[] = { "SCARD", b->k_pset };
	const char *exec[] = { "EXEC" };
	rc = append_cmd(b, &nrep, 1, multi);
	rc |= append(b, &s1, &nrep);
	rc |= append(b, &s2, &nrep);
	rc |= append_cmd(b, &nrep, 2, card);
	rc |= append_cmd(b, &nrep, 1, exec);
	if (rc)
		return -1;
	redisReply *r = NULL;
	for (int i = 0; i < nrep; i++) {
		if (r)
			freeReplyObject(r);
		if (!(r = get_reply(b)))
			return -1;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[2]->type == REDIS_REPLY_INTEGER) {
		b->parts_added = (uint32_t)r->element[2]->integer;
		for (size_t i = 0; i < n; i++)
			v[i]->in_parts = true;
	} else {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "push to Redis %s: adding to %s failed: %s",
			     b->cf->addr, b->k_parts, conn_errtext(b, r));
		ret = 2;
	}
	freeReplyObject(r);
	return ret;
}

/*
 * Withdraw the gauges of source o in every slot it wrote (M p:O), with
 * withdraw.lua's mode `how` ("stop": o is us; "expired", "retire": o's
 * lease, at home, ended before t), then remove o from M sources (retire:
 * drop its records at home too). 1 done, 0 not (yet), -1 I/O error.
 */
static int withdraw_slots(struct bridge *b, const char *o, const char *how,
			  uint64_t t)
{
	const char *mp = b->cf->meta_prefix;
	bool self = strcmp(how, "stop") == 0;
	char ks[200], kps[200], tb[24], err[200] = "";
	uint8_t *bits = calloc(SLOT_COUNT / 8, 1);
	int ret = 1;

	if (!bits)
		return 0;
	snprintf(ks, sizeof(ks), "%s{%s}s:%s", mp, SLOT_HOME_TAG, o);
	snprintf(kps, sizeof(kps), "%s{%s}p:%s", mp, SLOT_HOME_TAG, o);
	snprintf(tb, sizeof(tb), "%" PRIu64, t);
	if (!self) {
		const char *hg[] = { "HGET", ks, "owner_exp" };
		int64_t e = 0;
		if (at_home(b) < 0) {
			ret = -1;
			goto out;
		}
		redisReply *r = conn_command(b, 3, hg, NULL);
		if (!r) {
			ret = -1;
			goto out;
		}
		bool live = r->type == REDIS_REPLY_ERROR ||
			    (reply_i64(r, &e) && e >= 0 && (uint64_t)e >= t);
		freeReplyObject(r);
		if (live) {
			ret = 0;
			goto out;
		}
	}
	int rc = home_slots(b, kps, bits, err, sizeof(err));
	if (rc) {
		if (rc > 0)
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "withdrawing source %s on Redis %s: %s", o,
				     b->cf->addr, err);
		ret = rc < 0 ? -1 : 0;
		goto out;
	}
	if (self)
		for (uint32_t i = 0; i < b->nparts_max; i++)
			if (b->part[i] && b->part[i]->first)
				bits[i / 8] |= (uint8_t)(1u << (i % 8));
	for (unsigned sl = 0; sl < SLOT_COUNT; sl++) {
		if (!bit(bits, sl))
			continue;
		struct args a = { 0 };
		char kg[200], kr[200], kt[200];
		struct bpart *p = bridge_part(b, sl);
		if (!p) {
			ret = 0;
			goto out;
		}
		pkey(b, kg, sizeof(kg), sl, "g:", o);
		pkey(b, kr, sizeof(kr), sl, "s:", o);
		pkey(b, kt, sizeof(kt), sl, "t:", o);
		rc = args_push(&a, "EVALSHA", 7) | args_push(&a, "", 0);
		rc |= args_push(&a, "4", 1) | args_str(&a, kg);
		rc |= args_str(&a, kr) | args_str(&a, p->k_feed);
		rc |= args_str(&a, kt) | args_str(&a, o);
		rc |= args_str(&a, how) | args_str(&a, tb);
		if (rc || conn_slot(b, sl) < 0) {
			args_free(&a);
			ret = rc ? 0 : -1;
			goto out;
		}
		redisReply *r = run_script(b, b->withdraw_sha, withdraw_lua, &a);
		args_free(&a);
		if (!r) {
			ret = -1;
			goto out;
		}
		if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
			if (r->type == REDIS_REPLY_ERROR)
				bridge_error(b, SHMSTAT_LOG_WARNING,
					     "withdrawing source %s in slot %u "
					     "on Redis %s: %s",
					     o, sl, b->cf->addr, r->str);
			freeReplyObject(r);
			ret = 0;
			goto out;
		}
		if (self) {
			if (p->seq_known && p->seq + 1 == (uint64_t)r->integer)
				seq_set(b, p, (uint64_t)r->integer, true);
			else
				forget_part(b, p);
		}
		freeReplyObject(r);
	}
	if (home_note(b, o) < 0) {
		ret = -1;
		goto out;
	}
	{
		const char *multi[] = { "MULTI" };
		const char *zr[] = { "ZREM", b->k_sources, o };
		const char *del[] = { "DEL", ks, kps };
		const char *he[] = { "HSET", ks, "owner_exp", "0" };
		const char *exec[] = { "EXEC" };
		bool retire = strcmp(how, "retire") == 0;
		int nrep = 0;
		rc = append_cmd(b, &nrep, 1, multi);
		rc |= append_cmd(b, &nrep, 3, zr);
		if (retire)
			rc |= append_cmd(b, &nrep, 3, del);
		else if (self)
			rc |= append_cmd(b, &nrep, 4, he);
		rc |= append_cmd(b, &nrep, 1, exec);
		if (rc) {
			ret = -1;
			goto out;
		}
		for (int i = 0; i < nrep; i++) {
			redisReply *r = get_reply(b);
			if (!r) {
				ret = -1;
				goto out;
			}
			if (i == nrep - 1 && r->type != REDIS_REPLY_ARRAY)
				ret = 0;
			freeReplyObject(r);
		}
	}
out:
	free(bits);
	return ret;
}

/* One entry of the home feed: the keys another source changed are read
 * at this push; an entry without keys (a reset, a withdrawal: many slots)
 * makes every slot's feed be read. */
static void hint_entry(struct bridge *b, const redisReply *fields)
{
	const redisReply *src = NULL, *keys = NULL;

	if (fields->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *f = fields->element[i];
		if (f->type != REDIS_REPLY_STRING || f->len != 1)
			continue;
		if (f->str[0] == 's')
			src = fields->element[i + 1];
		else if (f->str[0] == 'k')
			keys = fields->element[i + 1];
	}
	if (src && src->type == REDIS_REPLY_STRING &&
	    strcmp(src->str, b->source) == 0)
		return;
	if (!keys || keys->type != REDIS_REPLY_STRING || !keys->len) {
		b->sweep_all = true;
		return;
	}
	const char *p = keys->str, *end = keys->str + keys->len;
	while (p < end) {
		const char *z = memchr(p, '\0', (size_t)(end - p));
		size_t l = z ? (size_t)(z - p) : (size_t)(end - p);
		int64_t x = index_of_key(b, p, l);
		if (x >= 0) {
			b->st[x].hinted = 1;
			b->part[b->cpart[x]]->hinted = true;
		}
		p += l + 1;
	}
}

/*
 * At home: the lease (refused while another live bridge holds it), the
 * incarnation (retire the previous one), the sources whose lease ended
 * long ago (withdraw their gauges), and whether M p:S lost slots (Redis
 * lost writes: they go in again). Read, decide, write: 0, 2 refused or
 * failed (logged), -1 I/O error.
 */
static int push_home(struct bridge *b)
{
	bool read_inc = !b->started;
	bool read_exp = b->redis_ms > b->cf->gauge_expiry_ms;
	char cut[24], owner[80] = "", inc[80] = "", expired[4][80];
	const char *hm[] = { "HMGET", b->k_src, "owner", "owner_exp" };
	const char *tm[] = { "TIME" };
	const char *sc[] = { "SCARD", b->k_pset };
	const char *gi[] = { "GET", b->k_inc };
	const char *ze[] = { "ZRANGEBYSCORE", b->k_sources, "-inf", cut,
			     "LIMIT", "0", "4" };
	char fp[48];
	snprintf(fp, sizeof(fp), "(%" PRIu64 "-%" PRIu64, b->hfeed_ms,
		 b->hfeed_seq);
	const char *xo[] = { "XRANGE", b->k_feed, "-", "+", "COUNT", "1" };
	const char *xr[] = { "XRANGE", b->k_feed, fp, "+", "COUNT", FEED_MAX };
	const char *xl[] = { "XREVRANGE", b->k_feed, "+", "-", "COUNT", "1" };
	bool known = b->hfeed_known, ferr = false;
	uint64_t pms = b->hfeed_ms, psq = b->hfeed_seq;
	int nrep = 0, rc = 0, nexp = 0, ret = 0;
	int64_t owner_exp = 0, card = 0;
	uint64_t now = 0;
	bool missing = false;

	snprintf(cut, sizeof(cut), "%" PRIu64,
		 read_exp ? b->redis_ms - b->cf->gauge_expiry_ms : 0);
	if (at_home(b) < 0)
		return -1;
	rc |= append_cmd(b, &nrep, 4, hm);
	rc |= append_cmd(b, &nrep, 1, tm);
	rc |= append_cmd(b, &nrep, 2, sc);
	if (read_inc)
		rc |= append_cmd(b, &nrep, 2, gi);
	if (read_exp)
		rc |= append_cmd(b, &nrep, 7, ze);
	/* The home feed: the keys others changed since we read it. */
	rc |= append_cmd(b, &nrep, 6, known ? xo : xl);
	if (known)
		rc |= append_cmd(b, &nrep, 6, xr);
	if (rc)
		return -1;
	int nfeed = known ? 2 : 1;
	for (int i = 0; i < nrep; i++) {
		redisReply *r = get_reply(b);
		if (!r)
			return -1;
		int what = i < 3 ? i : i == 3 && read_inc ? 3 : 4;
		if (i >= nrep - nfeed) {
			/* The home feed's replies. */
			uint64_t ms = 0, sq = 0;
			if (r->type != REDIS_REPLY_ARRAY) {
				b->sweep_all = true;
				ferr = true;
			} else if (i == nrep - nfeed) {
				bool one = r->elements == 1 &&
					   r->element[0]->type ==
						   REDIS_REPLY_ARRAY &&
					   r->element[0]->elements == 2 &&
					   parse_fid(r->element[0]->element[0],
						     &ms, &sq);
				if (!known) {
					pms = one ? ms : 0;
					psq = one ? sq : 0;
					b->sweep_all = true;
				} else if (one && fid_after(ms, sq, b->hfeed_ms,
							    b->hfeed_seq)) {
					b->sweep_all = true; /* trimmed */
				}
			} else {
				if (r->elements >= (size_t)atoi(FEED_MAX))
					b->sweep_all = true;
				for (size_t j = 0; j < r->elements; j++) {
					redisReply *e = r->element[j];
					if (e->type != REDIS_REPLY_ARRAY ||
					    e->elements != 2 ||
					    !parse_fid(e->element[0], &ms, &sq))
						continue;
					if (fid_after(ms, sq, pms, psq)) {
						pms = ms;
						psq = sq;
					}
					hint_entry(b, e->element[1]);
				}
			}
			freeReplyObject(r);
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			if (!ret)
				bridge_error(b, SHMSTAT_LOG_WARNING,
					     "push to Redis %s: %s",
					     b->cf->addr, r->str);
			ret = 2;
		} else if (what == 0 && r->type == REDIS_REPLY_ARRAY &&
			   r->elements == 2) {
			if (r->element[0]->type == REDIS_REPLY_STRING)
				snprintf(owner, sizeof(owner), "%s",
					 r->element[0]->str);
			missing = r->element[0]->type == REDIS_REPLY_NIL;
			if (!reply_i64(r->element[1], &owner_exp))
				owner_exp = 0;
		} else if (what == 1 && r->type == REDIS_REPLY_ARRAY &&
			   r->elements == 2) {
			uint64_t s = 0, us = 0;
			parse_u64(r->element[0], &s);
			parse_u64(r->element[1], &us);
			now = s * 1000 + us / 1000;
		} else if (what == 2) {
			reply_i64(r, &card);
		} else if (what == 3 && r->type == REDIS_REPLY_STRING) {
			snprintf(inc, sizeof(inc), "%s", r->str);
		} else if (what == 4 && r->type == REDIS_REPLY_ARRAY) {
			for (size_t j = 0; j < r->elements && nexp < 4; j++)
				if (r->element[j]->type == REDIS_REPLY_STRING &&
				    strcmp(r->element[j]->str, b->source))
					snprintf(expired[nexp++], 80, "%s",
						 r->element[j]->str);
		}
		freeReplyObject(r);
	}
	if (ret)
		return ret;
	b->redis_ms = now;
	if (!ferr) {
		b->hfeed_ms = pms;
		b->hfeed_seq = psq;
	}
	b->hfeed_known = !ferr;
	if (missing && b->home_written)
		b->sweep_all = true; /* Redis lost our home record */
	if (owner[0] && strcmp(owner, b->token) != 0 && owner_exp > 0 &&
	    (uint64_t)owner_exp > now) {
		b->refused = true;
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "source %s (segment '%s') is in use on Redis %s by "
			     "another live bridge (its lease ends in %" PRIu64
			     " ms); refusing to push",
			     b->source, b->cf->segment, b->cf->addr,
			     (uint64_t)owner_exp - now);
		return 2;
	}
	if (missing && b->status.seq_acked && inc[0] &&
	    strcmp(inc, b->source) != 0) {
		b->refused = true;
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "source %s was retired: segment '%s' on host %s "
			     "was recreated since (now source %s), and this "
			     "segment's counts are in Redis already; refusing "
			     "to push them again",
			     b->source, b->cf->segment, b->host_hex, inc);
		return 2;
	}
	if (card < (int64_t)b->parts_added) {
		/* Redis lost slots of M p:S (and maybe of M parts). */
		for (uint32_t i = 0; i < b->nparts_max; i++)
			if (b->part[i])
				b->part[i]->in_parts = false;
		b->parts_added = 0;
		b->sweep_all = true;
	}
	bool set_inc = false;
	if (read_inc) {
		if (!inc[0] || strcmp(inc, b->source) == 0) {
			set_inc = !inc[0];
			b->started = !set_inc;
		} else {
			int d = withdraw_slots(b, inc, "retire", now);
			if (d < 0)
				return -1;
			if (d == 1)
				blog(SHMSTAT_LOG_INFO,
				     "segment '%s' was recreated: retired its "
				     "previous source %s (its counts stay in "
				     "the keys)",
				     b->cf->segment, inc);
			set_inc = d == 1;
		}
	}
	for (int i = 0; i < nexp; i++) {
		int d = withdraw_slots(b, expired[i], "expired",
				       now - b->cf->gauge_expiry_ms);
		if (d < 0)
			return -1;
		if (d == 1)
			blog(SHMSTAT_LOG_INFO,
			     "source %s: lease ended over %" PRIu64 " ms ago; "
			     "its gauges are withdrawn from the sums",
			     expired[i], b->cf->gauge_expiry_ms);
	}
	char exp_s[24], now_s[24];
	snprintf(exp_s, sizeof(exp_s), "%" PRIu64, now + b->cf->owner_ttl_ms);
	snprintf(now_s, sizeof(now_s), "%" PRIu64, now);
	const char *multi[] = { "MULTI" };
	const char *hs[] = { "HSET", b->k_src, "owner", b->token, "owner_exp",
			     exp_s, "host", b->host_name, "segment",
			     b->cf->segment, "kp", b->cf->key_prefix,
			     "pushed_ms", now_s, "proto", "2" };
	const char *zs[] = { "ZADD", b->k_sources, exp_s, b->source };
	const char *si[] = { "SET", b->k_inc, b->source };
	const char *exec[] = { "EXEC" };
	if (at_home(b) < 0)
		return -1;
	nrep = 0;
	rc = append_cmd(b, &nrep, 1, multi);
	rc |= append_cmd(b, &nrep, 16, hs);
	rc |= append_cmd(b, &nrep, 4, zs);
	if (set_inc)
		rc |= append_cmd(b, &nrep, 3, si);
	rc |= append_cmd(b, &nrep, 1, exec);
	if (rc)
		return -1;
	char qerr[200] = "";
	for (int i = 0; i < nrep; i++) {
		redisReply *r = get_reply(b);
		if (!r)
			return -1;
		if (i == nrep - 1) {
			if (r->type == REDIS_REPLY_ARRAY) {
				if (set_inc)
					b->started = true;
				b->home_written = true;
			} else {
				bridge_error(b, SHMSTAT_LOG_WARNING,
					     "push to Redis %s: renewing the "
					     "lease failed: %s%s%s",
					     b->cf->addr, conn_errtext(b, r),
					     qerr[0] ? ": " : "", qerr);
				ret = 2;
			}
		} else if (r->type == REDIS_REPLY_ERROR && !qerr[0]) {
			/* Refused while queued (OOM, NOPERM): say why. */
			snprintf(qerr, sizeof(qerr), "%s", r->str);
		}
		freeReplyObject(r);
	}
	return ret;
}

/* UNWATCH: true, or false on an I/O error. */
static bool unwatch(struct bridge *b)
{
	const char *uw[] = { "UNWATCH" };
	redisReply *u = conn_command(b, 1, uw, NULL);

	if (u)
		freeReplyObject(u);
	return u != NULL;
}

/*
 * The partitioned push: the lease at home, the feeds per node, then the
 * transactions per partition (slot order), each of at most BRIDGE_GROUP
 * counters. A partition that fails (refused, redirected) leaves its
 * counts pending and the others go on; one whose knowledge was void (rc
 * 1) or a reset seen make the snapshot be taken again and the partitions
 * that still have work run again; bounded. 0, 2 failed (logged), -1 I/O.
 */
static int push_parts(struct bridge *b, struct snap *sn, size_t *sent,
		      bool *full)
{
	struct bpart **v = malloc(SLOT_COUNT * sizeof(*v));
	uint32_t *cnt = malloc((SLOT_COUNT + 1) * sizeof(*cnt));
	uint32_t *grp = NULL;
	redisContext **node = NULL;
	struct reads cur = { 0 }, nxt = { 0 };
	struct feedsum fs = { 0 };
	int ret = 0;
	bool failed = false;

	if (!v || !cnt) {
		ret = 2;
		goto out;
	}
	for (uint32_t i = 0; i < b->nparts_max; i++)
		if (b->part[i])
			b->part[i]->refreshed = false;
	b->nhint = 0;
	ret = push_home(b);
	if (ret)
		goto out;
	for (int round = 0; round < 10; round++) {
		size_t n = parts_select(b, v, round);
		fs.forgot = false;
		int rc = by_node(b, v, n, feeds_node, &fs);
		for (size_t i = 0; i < n; i++)
			v[i]->sweep = v[i]->hinted = false;
		if (rc < 0) {
			ret = -1;
			goto out;
		}
		if (fs.forgot) {
			/* Counters the snapshot left out are pending now. */
			free(sn->v);
			memset(sn, 0, sizeof(*sn));
			if (collect(b, sn) < 0) {
				ret = 2;
				goto out;
			}
		}
		/* The pending counters by partition (a counting sort). */
		free(grp);
		grp = malloc((sn->n ? sn->n : 1) * sizeof(*grp));
		if (!grp) {
			ret = 2;
			goto out;
		}
		memset(cnt, 0, (SLOT_COUNT + 1) * sizeof(*cnt));
		for (size_t i = 0; i < sn->n; i++) {
			const struct item *it = &sn->v[i];
			const struct bstate *x = &b->st[it->index];
			if (pending_one(b, it) &&
			    !(x->refused && x->tried == b->push_no))
				cnt[b->cpart[it->index] + 1]++;
		}
		for (uint32_t s = 0; s < SLOT_COUNT; s++)
			cnt[s + 1] += cnt[s];
		for (size_t i = 0; i < sn->n; i++) {
			const struct item *it = &sn->v[i];
			const struct bstate *x = &b->st[it->index];
			if (pending_one(b, it) &&
			    !(x->refused && x->tried == b->push_no))
				grp[cnt[b->cpart[it->index]]++] = (uint32_t)i;
		}
		/* cnt[s] is now the end of slot s's run, cnt[s - 1] its
		 * start. */
		size_t nw = 0;
		for (uint32_t s = 0; s < SLOT_COUNT; s++) {
			uint32_t lo = s ? cnt[s - 1] : 0;
			struct bpart *p = b->part[s];
			if (p && (cnt[s] > lo || p->need))
				v[nw++] = p;
		}
		rc = ensure_parts(b, v, nw);
		if (rc < 0) {
			ret = -1;
			goto out;
		}
		if (rc) {
			ret = 2;
			goto out;
		}
		bool again = false;
		b->reset_seen = false;
		/* Which slots share a connection (a master): the next slot's
		 * read half rides with this one's write. */
		free(node);
		node = malloc((nw ? nw : 1) * sizeof(*node));
		if (!node) {
			ret = 2;
			goto out;
		}
		for (size_t k = 0; k < nw; k++) {
			int c = b->cluster ? conn_slot(b, v[k]->slot) : 0;
			if (c == -1) {
				ret = -1;
				goto out;
			}
			/* NULL: its master cannot be reached now; the other
			 * slots go on, its counts stay pending. */
			node[k] = c == 0 ? b->rc : NULL;
		}
		for (size_t k = 0; k < nw; k++) {
			struct bpart *p = v[k];
			uint32_t lo = p->slot ? cnt[p->slot - 1] : 0;
			uint32_t hi = cnt[p->slot];
			bool ok = true;
			if (!node[k]) {
				failed = true;
				continue;
			}
			if (!cur.sent && conn_slot(b, p->slot) < 0) {
				ret = -1;
				goto out;
			}
			for (uint32_t off = lo; ok && (off < hi || off == lo);
			     off += BRIDGE_GROUP) {
				size_t ng = hi - off < BRIDGE_GROUP ? hi - off
								    : BRIDGE_GROUP;
				struct txn t = { sn, grp + off, ng, false, p };
				/* The next slot's first group, when this is
				 * the last of this slot's. */
				struct txn tn = { sn, NULL, 0, false, NULL };
				if (off + ng >= hi && k + 1 < nw &&
				    node[k + 1] == node[k]) {
					struct bpart *q = v[k + 1];
					uint32_t ql = q->slot ? cnt[q->slot - 1]
							      : 0;
					uint32_t qh = cnt[q->slot];
					tn.grp = grp + ql;
					tn.ng = qh - ql < BRIDGE_GROUP
							? qh - ql
							: BRIDGE_GROUP;
					tn.p = q;
				}
				rc = run_txn(b, &t, &cur, tn.p ? &tn : NULL,
					     &nxt);
				cur = nxt;
				memset(&nxt, 0, sizeof(nxt));
				if (rc < 0) {
					ret = -1;
					goto out;
				}
				if (rc == 2) {
					failed = true;
					ok = false;
					if (b->refused) {
						ret = 2;
						goto out;
					}
				} else if (rc == 1) {
					again = true;
					ok = false;
				} else {
					*sent += ng;
				}
				if (hi == lo)
					break;
			}
			if (ok)
				p->need = false;
		}
		if (!again && !b->reset_seen)
			break;
		free(sn->v);
		memset(sn, 0, sizeof(*sn));
		if (collect(b, sn) < 0) {
			ret = 2;
			goto out;
		}
	}
	if (write_hints(b) < 0) {
		ret = -1;
		goto out;
	}
	if (failed)
		ret = 2;
out:
	/* A read half left in flight (a refusal stopped the push): read it
	 * and release its WATCH. */
	if (cur.sent && !cur.broken && ret != -1 &&
	    (drain(b, cur.nrep) < 0 || !unwatch(b)))
		ret = -1;
	free(cur.unk);
	*full = fs.full;
	b->last_refreshed = (uint32_t)fs.refreshed;
	free(v);
	free(cnt);
	free(grp);
	free(node);
	return ret;
}

/* A `reset --global` request waits in the segment. */
static bool reset_pending(struct bridge *b)
{
	char glob[256];

	return shmstat__sync_reset_take(b->h, glob, sizeof(glob), NULL, NULL) > 0;
}

/* Does Redis still hold this source's sequence as we wrote it last (no
 * lost writes)? One HGET; an error counts as yes (the reset then fails
 * the same way). Standalone layout only. */
static bool seq_intact(struct bridge *b)
{
	const struct bpart *p = b->part[0];
	const char *argv[] = { "HGET", p->k_src, "seq" };
	uint64_t seq = 0;

	if (!p->seq_known)
		return true;
	redisReply *r = conn_command(b, 3, argv, NULL);
	if (!r)
		return true;
	bool same = r->type == REDIS_REPLY_NIL ? p->seq == 0
		    : r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_INTEGER
			    ? parse_u64(r, &seq) && seq == p->seq
			    : true;
	freeReplyObject(r);
	return same;
}

int push_all(struct bridge *b)
{
	struct snap sn = { 0 };
	uint32_t *grp = NULL;
	int ret = -1;

	if (!b->rc)
		return -1;
	if (b->refused)
		return -1;
	/* A Redis Cluster takes the partitioned layout; the layout is
	 * checked against the segment's record once it is known. */
	if ((b->cluster && !b->parted && bridge_parted(b) < 0) ||
	    bridge_layout_check(b) < 0) {
		b->status.pushes_failed++;
		return -1;
	}
	b->push_no++;
	/* A pending global reset runs before the push, so that counts not
	 * pushed yet count after it; except on a connection that has not
	 * pushed yet to a Redis that lost this source's writes (restarted
	 * empty): there the push's repair brings the totals back first,
	 * and the reset after it clears them, instead of running on the
	 * empty Redis and being undone by the repair. */
	bool reset_first = b->parted || b->pushed_conn || !reset_pending(b) ||
			   seq_intact(b);
	if (reset_first && run_reset(b) < 0)
		goto io;
	if (collect(b, &sn) < 0)
		goto failed;
	if (b->parted) {
		/* No older release wrote this layout: nothing to upgrade. */
		if (b->status.pending && !b->dirty_since_ns)
			b->dirty_since_ns = shmstat__now_realtime_ns();
		size_t psent = 0;
		bool pfull = false;
		int rc = push_parts(b, &sn, &psent, &pfull);
		b->last_sent = (uint32_t)psent;
		b->last_full = pfull;
		if (rc < 0)
			goto io;
		if (rc)
			goto failed;
		goto pushed;
	}
	if (!b->migrate_checked) {
		int m = migrate(b);
		if (m < 0)
			goto io;
		if (m == 2)
			goto failed;
	}
	if (b->status.pending && !b->dirty_since_ns)
		b->dirty_since_ns = shmstat__now_realtime_ns();
	grp = malloc(BRIDGE_GROUP * sizeof(*grp));
	if (!grp) {
		bridge_error(b, SHMSTAT_LOG_ERROR, "out of memory");
		goto failed;
	}
	/*
	 * Groups of at most BRIDGE_GROUP counters that need work (the
	 * snapshot holds only those): the first also reads the feed and
	 * refreshes what others changed (it goes even with nothing to send:
	 * it renews the lease and checks the sequence). When a group finds
	 * our knowledge void (rc 1), or learns of a reset that makes other
	 * counters pending, the snapshot is taken again and the groups run
	 * again; bounded.
	 */
	bool first = true, full = false;
	size_t sent = 0;
	int retries = 0, rounds = 0;
	for (;;) {
		bool again = false;
		size_t cursor = 0;
		b->reset_seen = false;
		for (;;) {
			size_t ng = 0, scan = cursor;
			while (scan < sn.n && ng < BRIDGE_GROUP) {
				const struct item *it = &sn.v[scan++];
				const struct bstate *x = &b->st[it->index];
				if (pending_one(b, it) &&
				    !(x->refused && x->tried == b->push_no))
					grp[ng++] = (uint32_t)(it - sn.v);
			}
			if (!ng && !first)
				break;
			if (first && !b->part[0]->feed_known)
				full = true;
			struct txn t = { &sn, grp, ng, first, b->part[0] };
			struct reads rd = { 0 };
			int rc = run_txn(b, &t, &rd, NULL, NULL);
			if (rc < 0)
				goto io;
			if (rc == 2)
				goto failed;
			if (rc == 1) {
				if (++retries > 8) {
					bridge_error(b, SHMSTAT_LOG_WARNING,
						     "push to Redis %s: the "
						     "transaction was aborted "
						     "%d times (resets or "
						     "withdrawals running)",
						     b->cf->addr, retries);
					goto failed;
				}
				first = true;
				again = true;
				break;
			}
			sent += ng;
			first = false;
			cursor = scan;
		}
		if ((!again && !b->reset_seen) || ++rounds > 10)
			break;
		free(sn.v);
		memset(&sn, 0, sizeof(sn));
		if (collect(b, &sn) < 0)
			goto failed;
	}
	b->last_sent = (uint32_t)sent;
	b->last_full = full;
pushed:
	count_pending(b, &sn);
	uint64_t now = shmstat__now_realtime_ns();
	b->status.pushes_ok++;
	b->status.last_push_ns = now;
	b->dirty_since_ns = b->status.pending ? b->dirty_since_ns : 0;
	if (b->status.pending && !b->dirty_since_ns)
		b->dirty_since_ns = now;
	ret = 0;
	b->pushed_conn = true;
	/* The push landed whatever the reset after it does: a reset that
	 * fails stays pending (reset_refused records why), and the next
	 * round reconnects. */
	if (!reset_first && run_reset(b) < 0) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "global reset on Redis %s failed: %s", b->cf->addr,
			     conn_errtext(b, NULL));
		forget_all(b);
		conn_close(b);
	}
	goto out;
failed:
	b->status.pushes_failed++;
	if (sn.v)
		count_pending(b, &sn);
	goto out;
io:
	bridge_error(b, SHMSTAT_LOG_WARNING, "push to Redis %s failed: %s",
		     b->cf->addr, conn_errtext(b, NULL));
	b->status.pushes_failed++;
	forget_all(b);
	conn_close(b);
out:
	if (b->rc && b->wrong_role) {
		/* READONLY: the server became a replica (a failover): what
		 * it said is void; connect again (Sentinel: ask again). */
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "Redis %s (%s) refuses writes (READONLY: no "
			     "longer the master, a failover?): reconnecting%s",
			     b->cf->addr, b->node,
			     b->cf->redis.master[0]
				     ? " to the master the sentinels name"
				     : "");
		forget_all(b);
		conn_close(b);
		ret = -1;
	}
	free(grp);
	free(sn.v);
	return ret;
}
