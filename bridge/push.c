/*
 * push.c — the sync protocol. Each interval the bridge sends every
 * counter's ABSOLUTE total (never a delta) to one Lua script per chunk,
 * which keeps, per host, the last total it accepted and adds the
 * difference to the plain global key. Re-sending after any crash adds
 * zero, so no count is lost or doubled.
 *
 * Keys (M = --meta-prefix, default "_shmstat:"; H = host id in hex):
 *   <key-prefix><name>  the global value: a plain integer (INCRBY)
 *   M m:H   hash: owner token and lease, push sequence, host name
 *   M h:H   hash: name -> total accepted from host H
 *   M r:H   hash: name -> "R E": H's total when global reset E applied
 *   M hosts set of host ids;  M names set of counter names
 *   M resets hash: name -> epoch of the newest global reset
 * Invariant, for every name: global = Σ_H (h:H[name] − R of r:H[name]).
 * A push keeps it (adds new − old contribution); a global reset keeps it
 * (sets the key to 0 and every host's R to its accepted total). Every
 * write of one script call lands in the same snapshot, so a Redis restored
 * from an older RDB still satisfies it; each host then repairs its own
 * contribution by pushing its totals again. The per-host push sequence in
 * m:H tells the bridge that Redis lost pushes (stored < acknowledged).
 * Reset bases are mirrored in the segment (dir_entry), so a Redis that
 * comes back empty gets them back from the hosts (newest epoch wins).
 *
 * XXX Lua numbers are doubles: totals and deltas are exact up to 2^53.
 * XXX Keys are computed inside the reset script: not Redis Cluster-safe.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge_i.h"
#include "shmstat_i.h"

const char push_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local m = redis.call('HMGET', KEYS[1], 'owner', 'owner_exp', 'seq')\n"
	"if m[1] and m[1] ~= ARGV[1] and tonumber(m[2] or '0') > now then\n"
	"  return {0, m[1], string.format('%d', tonumber(m[2]) - now)}\n"
	"end\n"
	"local seq = tonumber(m[3] or '0')\n"
	"local lost = 0\n"
	"if seq < tonumber(ARGV[3]) then lost = 1 end\n"
	"seq = seq + 1\n"
	"local n = #KEYS - 5\n"
	"local names = {}\n"
	"for i = 1, n do names[i] = ARGV[3 * i + 3] end\n"
	"local acc, rs = {}, {}\n"
	"if n > 0 then\n"
	"  acc = redis.call('HMGET', KEYS[2], unpack(names))\n"
	"  rs = redis.call('HMGET', KEYS[3], unpack(names))\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'owner_exp',\n"
	"  string.format('%d', now + tonumber(ARGV[2])), 'seq',\n"
	"  string.format('%d', seq), 'name', ARGV[5], 'pushed_ms',\n"
	"  string.format('%d', now))\n"
	"redis.call('SADD', KEYS[4], ARGV[4])\n"
	"local g, ch, errs, hset, rset, newn = {}, {}, {}, {}, {}, {}\n"
	"for i = 1, n do\n"
	"  local ts = ARGV[3 * i + 4]\n"
	"  local total = tonumber(ts)\n"
	"  local a, b = string.match(ARGV[3 * i + 5], '^(-?%d+) (%d+)$')\n"
	"  local hr, he = tonumber(a or '0'), tonumber(b or '0')\n"
	"  local sr, se = 0, 0\n"
	"  if rs[i] then\n"
	"    a, b = string.match(rs[i], '^(-?%d+) (%d+)$')\n"
	"    sr, se = tonumber(a or '0'), tonumber(b or '0')\n"
	"  end\n"
	"  local r, e = sr, se\n"
	"  if he > se then r, e = hr, he end\n"
	"  local old = 0\n"
	"  if acc[i] then old = tonumber(acc[i]) - sr end\n"
	"  local d = (total - r) - old\n"
	"  local v\n"
	"  if d ~= 0 then\n"
	"    v = redis.pcall('INCRBY', KEYS[5 + i], string.format('%d', d))\n"
	"  else\n"
	"    v = redis.pcall('GET', KEYS[5 + i])\n"
	"  end\n"
	"  if type(v) == 'table' and v.err then\n"
	"    g[i] = ''\n"
	"    errs[#errs + 1] = string.format('%d', i)\n"
	"    errs[#errs + 1] = v.err\n"
	"  else\n"
	"    if v == false or v == nil then v = '0' end\n"
	"    if type(v) == 'number' then v = string.format('%d', v) end\n"
	"    g[i] = v\n"
	"    if acc[i] ~= ts then\n"
	"      hset[#hset + 1] = names[i]\n"
	"      hset[#hset + 1] = ts\n"
	"    end\n"
	"    if not acc[i] then newn[#newn + 1] = names[i] end\n"
	"    if e ~= se or not rs[i] and e ~= 0 then\n"
	"      rset[#rset + 1] = names[i]\n"
	"      rset[#rset + 1] = string.format('%d %d', r, e)\n"
	"    end\n"
	"    if e ~= he or r ~= hr then\n"
	"      ch[#ch + 1] = string.format('%d %d %d', i, r, e)\n"
	"    end\n"
	"  end\n"
	"end\n"
	"if #hset > 0 then redis.call('HSET', KEYS[2], unpack(hset)) end\n"
	"if #rset > 0 then redis.call('HSET', KEYS[3], unpack(rset)) end\n"
	"if #newn > 0 then redis.call('SADD', KEYS[5], unpack(newn)) end\n"
	"return {1, string.format('%d', seq), lost, g, ch, errs}\n";

/* KEYS[1] hosts set, KEYS[2] resets hash; ARGV[1] meta prefix, ARGV[2]
 * key prefix, ARGV[3] epoch, ARGV[4..] names. Idempotent per epoch. */
const char reset_lua[] =
	"local hosts = redis.call('SMEMBERS', KEYS[1])\n"
	"local ep = ARGV[3]\n"
	"local n = 0\n"
	"for i = 4, #ARGV do\n"
	"  local name = ARGV[i]\n"
	"  local done = redis.call('HGET', KEYS[2], name)\n"
	"  if not done or tonumber(done) < tonumber(ep) then\n"
	"    for _, h in ipairs(hosts) do\n"
	"      local a = redis.call('HGET', ARGV[1] .. 'h:' .. h, name)\n"
	"      if a then\n"
	"        redis.call('HSET', ARGV[1] .. 'r:' .. h, name, a .. ' ' .. ep)\n"
	"      end\n"
	"    end\n"
	"    redis.call('SET', ARGV[2] .. name, '0')\n"
	"    redis.call('HSET', KEYS[2], name, ep)\n"
	"    n = n + 1\n"
	"  end\n"
	"end\n"
	"return n\n";

/* A growing array of argv strings for one command. */
struct args {
	const char **v;
	size_t *len;
	char **own; /* strings we allocated */
	int n, cap, nown;
};

static int args_push(struct args *a, const char *s, size_t len, bool own)
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
		char **o = realloc(a->own, (size_t)cap * sizeof(*o));
		if (!o)
			return -1;
		a->own = o;
		a->cap = cap;
	}
	a->v[a->n] = s;
	a->len[a->n] = len;
	a->n++;
	if (own)
		a->own[a->nown++] = (char *)s;
	return 0;
}

static int args_fmt(struct args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int args_fmt(struct args *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (args_push(a, s, (size_t)n, true) < 0) {
		free(s);
		return -1;
	}
	return 0;
}

static void args_free(struct args *a)
{
	for (int i = 0; i < a->nown; i++)
		free(a->own[i]);
	free(a->v);
	free(a->len);
	free(a->own);
	memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------ collecting */

struct item {
	uint32_t index;
	int kind;
	int64_t total;
	char name[SHMSTAT_NAME_MAX + 1];
	uint32_t name_len;
};

struct items {
	struct item *v;
	size_t n, cap;
};

static int collect_one(const shmstat_stat_t *st, void *priv)
{
	struct items *it = priv;

	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 256;
		struct item *v = realloc(it->v, cap * sizeof(*v));
		if (!v)
			return SHMSTAT_ENOMEM;
		it->v = v;
		it->cap = cap;
	}
	struct item *x = &it->v[it->n++];
	x->index = st->index;
	x->kind = st->kind;
	x->total = st->kind == SHMSTAT_KIND_GAUGE ? st->value
						  : (int64_t)st->total;
	memcpy(x->name, st->name, st->name_len + 1);
	x->name_len = st->name_len;
	return 0;
}

/* ------------------------------------------------------------- resetting */

/*
 * A reset that Redis refused with an error reply (NOPERM from an ACL, a
 * script error): end the request with an error so `shmstat reset --global`
 * says so, and go on pushing; the connection is still good. Only an I/O
 * error (no reply) makes run_reset() fail and the connection be dropped.
 */
static int reset_refused(struct bridge *b, uint64_t id, const redisReply *r)
{
	if (!r)
		return -1;
	shmstat_sync_reset_done(b->h, id, 0,
				r->type == REDIS_REPLY_ERROR &&
						strncmp(r->str, "NOPERM", 6) == 0
					? SHMSTAT_EPERM
					: SHMSTAT_ESYS);
	return 0;
}

/* Run a pending `shmstat reset --global` request. */
static int run_reset(struct bridge *b)
{
	char glob[256];
	uint64_t id, epoch;
	int rc = shmstat_sync_reset_take(b->h, glob, sizeof(glob), &id, &epoch);

	if (rc <= 0)
		return 0;
	const char *mp = b->cf->meta_prefix;
	char names_key[512], resets_key[512], hosts_key[512];
	snprintf(names_key, sizeof(names_key), "%snames", mp);
	snprintf(resets_key, sizeof(resets_key), "%sresets", mp);
	snprintf(hosts_key, sizeof(hosts_key), "%shosts", mp);

	/* Which names exist cluster-wide: SSCAN the names set, match with
	 * the engine's own glob rules. Bounded by the set's size. */
	struct args match = { 0 };
	char cursor[32] = "0";
	int ret = 0;
	for (int round = 0; round < 1000000; round++) {
		const char *argv[] = { "SSCAN", names_key, cursor, "COUNT",
				       "1000" };
		redisReply *r = redisCommandArgv(b->rc, 5, argv, NULL);
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
			if (e->type != REDIS_REPLY_STRING ||
			    !shmstat__glob(glob, e->str, e->len))
				continue;
			char *s = strndup(e->str, e->len);
			if (!s || args_push(&match, s, e->len, true) < 0) {
				free(s);
				freeReplyObject(r);
				ret = -1;
				goto out;
			}
		}
		freeReplyObject(r);
		if (strcmp(cursor, "0") == 0)
			break;
	}
	uint64_t count = 0;
	char ep[32];
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	for (int off = 0; off < match.n || off == 0; off += 500) {
		struct args a = { 0 };
		int n = match.n - off < 500 ? match.n - off : 500;
		if (args_push(&a, "EVALSHA", 7, false) < 0 ||
		    args_push(&a, b->reset_sha, 40, false) < 0 ||
		    args_push(&a, "2", 1, false) < 0 ||
		    args_push(&a, hosts_key, strlen(hosts_key), false) < 0 ||
		    args_push(&a, resets_key, strlen(resets_key), false) < 0 ||
		    args_push(&a, mp, strlen(mp), false) < 0 ||
		    args_push(&a, b->cf->key_prefix,
			      strlen(b->cf->key_prefix), false) < 0 ||
		    args_push(&a, ep, strlen(ep), false) < 0) {
			args_free(&a);
			ret = -1;
			goto out;
		}
		for (int i = 0; i < n; i++)
			args_push(&a, match.v[off + i], match.len[off + i],
				  false);
		redisReply *r = redisCommandArgv(b->rc, a.n, a.v, a.len);
		if (r && r->type == REDIS_REPLY_ERROR &&
		    strncmp(r->str, "NOSCRIPT", 8) == 0) {
			freeReplyObject(r);
			a.v[0] = "EVAL";
			a.len[0] = 4;
			a.v[1] = reset_lua;
			a.len[1] = strlen(reset_lua);
			r = redisCommandArgv(b->rc, a.n, a.v, a.len);
		}
		args_free(&a);
		if (!r || r->type != REDIS_REPLY_INTEGER) {
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "global reset '%s' failed: %s", glob,
				     conn_errtext(b, r));
			ret = reset_refused(b, id, r);
			if (r)
				freeReplyObject(r);
			goto out;
		}
		count += (uint64_t)r->integer;
		freeReplyObject(r);
		if (n == 0)
			break;
	}
	if (epoch > b->status.epoch)
		b->status.epoch = epoch;
	shmstat_sync_reset_done(b->h, id, count, 0);
	blog(SHMSTAT_LOG_INFO, "global reset '%s' (epoch %" PRIu64
	     "): %" PRIu64 " keys set to 0", glob, epoch, count);
out:
	args_free(&match);
	return ret;
}

/* --------------------------------------------------------------- pushing */

/* Build the script call for items [off, off+n). */
static int build_push(struct bridge *b, struct items *it, size_t off, size_t n,
		      bool sha, struct args *a)
{
	const char *mp = b->cf->meta_prefix;
	const char *kp = b->cf->key_prefix;
	int rc = 0;

	rc |= args_push(a, sha ? "EVALSHA" : "EVAL", sha ? 7 : 4, false);
	rc |= sha ? args_push(a, b->push_sha, 40, false)
		  : args_push(a, push_lua, strlen(push_lua), false);
	rc |= args_fmt(a, "%zu", n + 5);
	rc |= args_fmt(a, "%sm:%s", mp, b->host_hex);
	rc |= args_fmt(a, "%sh:%s", mp, b->host_hex);
	rc |= args_fmt(a, "%sr:%s", mp, b->host_hex);
	rc |= args_fmt(a, "%shosts", mp);
	rc |= args_fmt(a, "%snames", mp);
	for (size_t i = 0; i < n; i++)
		rc |= args_fmt(a, "%s%s", kp, it->v[off + i].name);
	rc |= args_push(a, b->token, strlen(b->token), false);
	rc |= args_fmt(a, "%" PRIu64, b->cf->owner_ttl_ms);
	rc |= args_fmt(a, "%" PRIu64, b->status.seq_acked);
	rc |= args_push(a, b->host_hex, strlen(b->host_hex), false);
	rc |= args_push(a, b->host_name, strlen(b->host_name), false);
	for (size_t i = 0; i < n; i++) {
		struct item *x = &it->v[off + i];
		int64_t rb = 0;
		uint64_t ep = 0;
		shmstat_sync_rbase_get(b->h, x->index, &rb, &ep);
		rc |= args_push(a, x->name, x->name_len, false);
		rc |= args_fmt(a, "%" PRId64, x->total);
		rc |= args_fmt(a, "%" PRId64 " %" PRIu64, rb, ep);
	}
	return rc ? -1 : 0;
}

static bool parse_i64(const char *s, size_t len, int64_t *out)
{
	char buf[32], *end;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	long long v = strtoll(buf, &end, 10);
	if (*end)
		return false;
	*out = v;
	return true;
}

/* Apply one script reply for items [off, off+n). 0, or -1 (logged). */
static int apply_reply(struct bridge *b, struct items *it, size_t off,
		       size_t n, redisReply *r, uint64_t now)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "push: unexpected reply type %d from Redis %s",
			     r->type, b->cf->addr);
		return -1;
	}
	if (r->element[0]->integer == 0) {
		b->refused = true;
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "host id %s is in use on Redis %s by another live "
			     "bridge (two hosts configured with the same host "
			     "id? see --host-id); refusing to push",
			     b->host_hex, b->cf->addr);
		return -1;
	}
	if (r->elements != 6 || r->element[3]->type != REDIS_REPLY_ARRAY ||
	    r->element[3]->elements != n ||
	    r->element[4]->type != REDIS_REPLY_ARRAY ||
	    r->element[5]->type != REDIS_REPLY_ARRAY) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "push: malformed reply from Redis %s",
			     b->cf->addr);
		return -1;
	}
	int64_t seq;
	if (!parse_i64(r->element[1]->str, r->element[1]->len, &seq))
		seq = 0;
	if (r->element[2]->integer == 1 && !b->full_push) {
		blog(SHMSTAT_LOG_WARNING,
		     "Redis %s lost pushes (its sequence for host %s is below "
		     "%" PRIu64 ": restarted empty or restored from an older "
		     "snapshot); pushing every total again",
		     b->cf->addr, b->host_hex, b->status.seq_acked);
		b->full_push = true;
	}
	if ((uint64_t)seq > b->status.seq_acked)
		b->status.seq_acked = (uint64_t)seq;
	/* Counters whose key Redis refused (e.g. not an integer). */
	redisReply *errs = r->element[5];
	bool *bad = calloc(n ? n : 1, sizeof(bool));
	if (!bad)
		return -1;
	for (size_t i = 0; i + 1 < errs->elements; i += 2) {
		int64_t k;
		if (!parse_i64(errs->element[i]->str, errs->element[i]->len,
			       &k) ||
		    k < 1 || (size_t)k > n)
			continue;
		bad[k - 1] = true;
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "key '%s%s' on Redis %s: %s (its count stays "
			     "pending)",
			     b->cf->key_prefix, it->v[off + k - 1].name,
			     b->cf->addr, errs->element[i + 1]->str);
	}
	redisReply *g = r->element[3];
	for (size_t i = 0; i < n; i++) {
		struct item *x = &it->v[off + i];
		int64_t v;
		if (bad[i])
			continue;
		if (g->element[i]->type == REDIS_REPLY_STRING &&
		    parse_i64(g->element[i]->str, g->element[i]->len, &v))
			shmstat_sync_global_set(b->h, x->index, v, now);
		if (x->index < b->max_counters) {
			b->st[x->index].acked = x->total;
			b->st[x->index].known = true;
		}
	}
	free(bad);
	redisReply *ch = r->element[4];
	for (size_t i = 0; i < ch->elements; i++) {
		long long k, rb;
		unsigned long long ep;
		if (ch->element[i]->type != REDIS_REPLY_STRING ||
		    sscanf(ch->element[i]->str, "%lld %lld %llu", &k, &rb,
			   &ep) != 3 ||
		    k < 1 || (size_t)k > n)
			continue;
		shmstat_sync_rbase_set(b->h, it->v[off + k - 1].index, rb, ep);
		if (ep > b->status.epoch)
			b->status.epoch = ep;
	}
	return 0;
}

static void count_pending(struct bridge *b, struct items *it)
{
	uint64_t pending = 0;

	for (size_t i = 0; i < it->n; i++) {
		uint32_t x = it->v[i].index;
		if (x >= b->max_counters || !b->st[x].known ||
		    b->st[x].acked != it->v[i].total)
			pending++;
	}
	b->status.pending = pending;
}

static int collect(struct bridge *b, struct items *it)
{
	int rc = shmstat_iter(b->h, NULL, collect_one, it);

	if (rc < 0) {
		bridge_error(b, SHMSTAT_LOG_ERROR, "reading the segment: %s",
			     shmstat_errstr(b->h));
		return -1;
	}
	count_pending(b, it);
	return 0;
}

void push_account(struct bridge *b)
{
	struct items it = { 0 };

	if (collect(b, &it) == 0 && b->status.pending && !b->dirty_since_ns)
		b->dirty_since_ns = shmstat__now_realtime_ns();
	free(it.v);
}

int push_all(struct bridge *b)
{
	struct items it = { 0 };
	int ret = -1;
	size_t nchunks, sent = 0;

	if (!b->rc)
		return -1;
	if (run_reset(b) < 0)
		goto io;
	if (collect(b, &it) < 0)
		goto out;
	if (b->status.pending && !b->dirty_since_ns)
		b->dirty_since_ns = shmstat__now_realtime_ns();
	b->full_push = false;

	/* Every counter goes in every push: unchanged ones cost an HMGET
	 * slot and a GET, and bring back the other hosts' contributions. An
	 * empty segment still sends one call: it checks the sequence. */
	nchunks = it.n ? (it.n + BRIDGE_CHUNK - 1) / BRIDGE_CHUNK : 1;
	for (size_t c = 0; c < nchunks; c++) {
		size_t off = c * BRIDGE_CHUNK;
		size_t n = it.n - off < BRIDGE_CHUNK ? it.n - off : BRIDGE_CHUNK;
		struct args a = { 0 };
		if (build_push(b, &it, off, n, true, &a) < 0) {
			args_free(&a);
			bridge_error(b, SHMSTAT_LOG_ERROR, "out of memory");
			goto drain;
		}
		int rc = redisAppendCommandArgv(b->rc, a.n, a.v, a.len);
		args_free(&a);
		if (rc != REDIS_OK)
			goto drain;
		sent++;
	}
	uint64_t now = shmstat__now_realtime_ns();
	int failed = 0;
	for (size_t c = 0; c < sent; c++) {
		size_t off = c * BRIDGE_CHUNK;
		size_t n = it.n - off < BRIDGE_CHUNK ? it.n - off : BRIDGE_CHUNK;
		void *rv = NULL;
		if (redisGetReply(b->rc, &rv) != REDIS_OK || !rv) {
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "push to Redis %s failed: %s", b->cf->addr,
				     conn_errtext(b, NULL));
			goto io;
		}
		redisReply *r = rv;
		if (r->type == REDIS_REPLY_ERROR &&
		    strncmp(r->str, "NOSCRIPT", 8) == 0) {
			/* Script cache flushed or Redis restarted: the call
			 * did not run; send the source (which caches it). */
			freeReplyObject(r);
			blog(SHMSTAT_LOG_INFO,
			     "Redis %s forgot the push script (NOSCRIPT): "
			     "sending it with EVAL",
			     b->cf->addr);
			struct args a = { 0 };
			if (build_push(b, &it, off, n, false, &a) < 0) {
				args_free(&a);
				failed++;
				continue;
			}
			r = redisCommandArgv(b->rc, a.n, a.v, a.len);
			args_free(&a);
			if (!r) {
				bridge_error(b, SHMSTAT_LOG_WARNING,
					     "push to Redis %s failed: %s",
					     b->cf->addr,
					     conn_errtext(b, NULL));
				goto io;
			}
		}
		if (r->type == REDIS_REPLY_ERROR) {
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "push to Redis %s: error reply: %s",
				     b->cf->addr, r->str);
			failed++;
		} else if (apply_reply(b, &it, off, n, r, now) < 0) {
			failed++;
		}
		freeReplyObject(r);
	}
	if (sent < nchunks)
		goto io;
	count_pending(b, &it);
	if (failed) {
		b->status.pushes_failed++;
		goto out;
	}
	b->status.pushes_ok++;
	b->status.last_push_ns = now;
	b->dirty_since_ns = b->status.pending ? now : 0;
	ret = 0;
	goto out;
drain:
	/* Read the replies of what was sent, so the context stays in step. */
	for (size_t c = 0; c < sent; c++) {
		void *rv = NULL;
		if (redisGetReply(b->rc, &rv) != REDIS_OK)
			break;
		freeReplyObject(rv);
	}
	b->status.pushes_failed++;
	goto out;
io:
	b->status.pushes_failed++;
	conn_close(b);
out:
	free(it.v);
	return ret;
}
