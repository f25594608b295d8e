/*
 * push.c — the sync protocol. The bridge sends counters' ABSOLUTE totals
 * (never deltas) to one Lua script per chunk, which keeps, per host, the
 * last total it accepted and adds the difference to the plain global key.
 * Re-sending after any crash adds zero, so no count is lost or doubled.
 *
 * Keys (M = --meta-prefix, default "_shmstat:"; H = host id in hex):
 *   <key-prefix><name>  the global value: a plain integer (INCRBY)
 *   M m:H   hash: owner token and lease, push sequence, fence, host name
 *   M h:H   hash: name -> total accepted from host H
 *   M r:H   hash: name -> "R E": H's total when global reset E applied
 *   M hosts set of host ids;  M names set of counter names
 *   M resets hash: name -> epoch of the newest global reset
 *   M gen   count of reset-script calls that reset something
 * Invariant, for every name: global = Σ_H (h:H[name] − R of r:H[name]).
 * A push keeps it (adds new − old contribution); a global reset keeps it
 * (sets the key to 0 and every host's R to its accepted total). Every
 * write of one script call lands in the same snapshot, so a Redis restored
 * from an older RDB still satisfies it; each host then repairs its own
 * contribution by pushing its totals again.
 *
 * What a push sends: only the counters whose total differs from the one
 * Redis last acknowledged (struct bstate), or that it never acknowledged;
 * the global values of the others are read back with MGET (GET when the
 * ACL refuses MGET) in the same pipeline, so they follow other hosts
 * within one interval. The script call goes every interval even with
 * nothing to send. Our knowledge of what Redis holds is forgotten, and the
 * same push sends every counter again, when:
 *   - the per-host push sequence in m:H is below the acknowledged one
 *     (Redis lost pushes: restarted empty, older snapshot);
 *   - M gen changed since our last full push (a global reset, maybe run
 *     by another host, changed reset bases we must mirror);
 *   - a call was refused as stale (below);
 *   - a call's outcome is unknown (I/O error, replies not read): also
 *     every push after a reconnect or a bridge restart is a full one.
 * Fence: every call carries a number above all earlier calls of this
 * bridge (the wall clock in ms, or one more); the script refuses a call
 * whose fence is below the stored one. A call that timed out on a hung
 * Redis and runs after a newer one therefore changes nothing, instead of
 * writing an older total that no later push would correct.
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

/*
 * KEYS: 1 m:H, 2 h:H, 3 r:H, 4 hosts, 5 names, 6 gen, 6+i counter i's key.
 * ARGV: 1 owner token, 2 lease ms, 3 sequence acknowledged, 4 host id,
 * 5 host name, 6 fence, 7 "" (this layout), 8 m, 9 "1" when the names
 * follow, "0" when each name is its key (empty key prefix); then m
 * triples i, R, E: the reset base and epoch of counter i, only for the
 * counters that have one in the segment's mirror (the others: 0 0); then
 * the n names (when ARGV[9] is "1"); then the n totals. (ARGV[7] keeps
 * a place for a future layout: a call where it is not "" is refused.)
 * Reply: {1, seq, lost, globals, changed bases "i R E", errors {i, text},
 * gen}; {0, owner, ms left} when another bridge holds the host id; {2,
 * fence} when a call with a higher fence already ran (this one did
 * nothing). Globals are integers, or strings for a key only read.
 * Cost per counter: one INCRBY (GET when the difference is 0), a field of
 * each HMGET, a field of the HSET. Only commands the bridge's ACL user
 * of deploy/redis.conf may run (no HLEN, EXISTS, HGETALL).
 */
const char push_lua[] =
	"if ARGV[7] and ARGV[7] ~= '' then\n"
	"  return redis.error_reply('shmstat: unknown push layout')\n"
	"end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local m = redis.call('HMGET', KEYS[1], 'owner', 'owner_exp', 'seq',\n"
	"  'fence')\n"
	"if m[1] and m[1] ~= ARGV[1] and tonumber(m[2] or '0') > now then\n"
	"  return {0, m[1], string.format('%d', tonumber(m[2]) - now)}\n"
	"end\n"
	"if m[4] and tonumber(m[4]) > tonumber(ARGV[6]) then\n"
	"  return {2, m[4]}\n"
	"end\n"
	"local seq = tonumber(m[3] or '0')\n"
	"local lost = 0\n"
	"if seq < tonumber(ARGV[3]) then lost = 1 end\n"
	"seq = seq + 1\n"
	"redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'owner_exp',\n"
	"  string.format('%d', now + tonumber(ARGV[2])), 'seq',\n"
	"  string.format('%d', seq), 'fence', ARGV[6], 'name', ARGV[5],\n"
	"  'pushed_ms', string.format('%d', now))\n"
	"redis.call('SADD', KEYS[4], ARGV[4])\n"
	"local gen = redis.call('GET', KEYS[6]) or '0'\n"
	"local n = #KEYS - 6\n"
	"local g, ch, errs = {}, {}, {}\n"
	"if n > 0 then\n"
	"  local NA, no, ns, to, ts = ARGV, 0, 1, 0, 1\n"
	"  local mr, me, nm = {}, {}, 0\n"
	"  nm = tonumber(ARGV[8])\n"
	"  for k = 10, 9 + 3 * nm, 3 do\n"
	"    local i = tonumber(ARGV[k])\n"
	"    mr[i], me[i] = tonumber(ARGV[k + 1]), tonumber(ARGV[k + 2])\n"
	"  end\n"
	"  no = 9 + 3 * nm\n"
	"  if ARGV[9] == '0' then NA, to = KEYS, no; no = 6 else to = no + n end\n"
	"  local names = {}\n"
	"  for i = 1, n do names[i] = NA[no + ns * i] end\n"
	"  local acc = redis.call('HMGET', KEYS[2], unpack(names))\n"
	"  local rs = redis.call('HMGET', KEYS[3], unpack(names))\n"
	"  local hset, rset, newn = {}, {}, {}\n"
	"  local nh, nr, nn, nc, ne = 0, 0, 0, 0, 0\n"
	"  for i = 1, n do\n"
	"    local name, tot = names[i], ARGV[to + ts * i]\n"
	"    local a = acc[i]\n"
	"    local r, e, sr, se = 0, 0, 0, 0\n"
	"    local s = rs[i]\n"
	"    if s then\n"
	"      local x, y = string.match(s, '^(-?%d+) (%d+)$')\n"
	"      sr, se = tonumber(x or '0'), tonumber(y or '0')\n"
	"      r, e = sr, se\n"
	"    end\n"
	"    local hr, he = 0, 0\n"
	"    if nm > 0 then\n"
	"      hr, he = mr[i] or 0, me[i] or 0\n"
	"      if he > se then r, e = hr, he end\n"
	"    end\n"
	"    local d = tonumber(tot) - r\n"
	"    if a then d = d - (tonumber(a) - sr) end\n"
	"    local v\n"
	"    if d ~= 0 then\n"
	"      v = redis.pcall('INCRBY', KEYS[6 + i], string.format('%d', d))\n"
	"    else\n"
	"      v = redis.pcall('GET', KEYS[6 + i]) or 0\n"
	"    end\n"
	"    if type(v) == 'table' then\n"
	"      g[i] = ''\n"
	"      errs[ne + 1] = i\n"
	"      errs[ne + 2] = v.err or 'error'\n"
	"      ne = ne + 2\n"
	"    else\n"
	"      g[i] = v\n"
	"      if a ~= tot then\n"
	"        hset[nh + 1] = name\n"
	"        hset[nh + 2] = tot\n"
	"        nh = nh + 2\n"
	"      end\n"
	"      if not a then\n"
	"        nn = nn + 1\n"
	"        newn[nn] = name\n"
	"      end\n"
	"      if e ~= se then\n"
	"        rset[nr + 1] = name\n"
	"        rset[nr + 2] = string.format('%d %d', r, e)\n"
	"        nr = nr + 2\n"
	"      end\n"
	"      if e ~= he or r ~= hr then\n"
	"        nc = nc + 1\n"
	"        ch[nc] = string.format('%d %d %d', i, r, e)\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  if nh > 0 then redis.call('HSET', KEYS[2], unpack(hset)) end\n"
	"  if nr > 0 then redis.call('HSET', KEYS[3], unpack(rset)) end\n"
	"  if nn > 0 then redis.call('SADD', KEYS[5], unpack(newn)) end\n"
	"end\n"
	"return {1, string.format('%d', seq), lost, g, ch, errs, gen}\n";

/* KEYS[1] hosts set, KEYS[2] resets hash, KEYS[3] gen; ARGV[1] meta
 * prefix, ARGV[2] key prefix, ARGV[3] epoch, ARGV[4..] names. Idempotent
 * per epoch. gen counts the calls that reset something: a bridge that sees
 * it change pushes every counter, to learn its new reset bases. */
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
	"if n > 0 then redis.call('INCRBY', KEYS[3], 1) end\n"
	"return n\n";

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
	char names_key[512], resets_key[512], hosts_key[512], gen_key[512];
	snprintf(names_key, sizeof(names_key), "%snames", mp);
	snprintf(resets_key, sizeof(resets_key), "%sresets", mp);
	snprintf(hosts_key, sizeof(hosts_key), "%shosts", mp);
	snprintf(gen_key, sizeof(gen_key), "%sgen", mp);

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
			if (args_cat(&match, e->str, e->len, "", 0) < 0) {
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
		if (args_push(&a, "EVALSHA", 7) < 0 ||
		    args_push(&a, b->reset_sha, 40) < 0 ||
		    args_push(&a, "3", 1) < 0 ||
		    args_push(&a, hosts_key, strlen(hosts_key)) < 0 ||
		    args_push(&a, resets_key, strlen(resets_key)) < 0 ||
		    args_push(&a, gen_key, strlen(gen_key)) < 0 ||
		    args_push(&a, mp, strlen(mp)) < 0 ||
		    args_push(&a, b->cf->key_prefix,
			      strlen(b->cf->key_prefix)) < 0 ||
		    args_push(&a, ep, strlen(ep)) < 0) {
			args_free(&a);
			ret = -1;
			goto out;
		}
		int rc = 0;
		for (int i = 0; i < n; i++)
			rc |= args_push(&a, match.v[off + i],
					match.len[off + i]);
		if (rc) {
			args_free(&a);
			ret = -1;
			goto out;
		}
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

/* Build the script call for the n items idx[0..n). */
static int build_push(struct bridge *b, const struct items *it,
		      const uint32_t *idx, size_t n, bool sha, struct args *a)
{
	const char *mp = b->cf->meta_prefix;
	const char *kp = b->cf->key_prefix;
	size_t kpl = strlen(kp);
	int rc = 0;

	rc |= args_push(a, sha ? "EVALSHA" : "EVAL", sha ? 7 : 4);
	rc |= sha ? args_push(a, b->push_sha, 40)
		  : args_push(a, push_lua, strlen(push_lua));
	rc |= args_i64(a, (int64_t)n + 6);
	rc |= args_fmt(a, "%sm:%s", mp, b->host_hex);
	rc |= args_fmt(a, "%sh:%s", mp, b->host_hex);
	rc |= args_fmt(a, "%sr:%s", mp, b->host_hex);
	rc |= args_fmt(a, "%shosts", mp);
	rc |= args_fmt(a, "%snames", mp);
	rc |= args_fmt(a, "%sgen", mp);
	for (size_t i = 0; i < n; i++) {
		const struct item *x = &it->v[idx[i]];
		rc |= args_cat(a, kp, kpl, x->name, x->name_len);
	}
	rc |= args_str(a, b->token);
	rc |= args_i64(a, (int64_t)b->cf->owner_ttl_ms);
	rc |= args_i64(a, (int64_t)b->status.seq_acked);
	rc |= args_str(a, b->host_hex);
	rc |= args_str(a, b->host_name);
	rc |= args_i64(a, (int64_t)b->fence);
	/* ARGV 7..9, then the reset bases the mirror holds (m is known
	 * once they are counted), the names unless they are the keys, the
	 * totals. */
	rc |= args_push(a, "", 0);
	int mpos = a->n;
	rc |= args_push(a, "0", 1);
	rc |= args_push(a, kpl ? "1" : "0", 1);
	int64_t m = 0;
	for (size_t i = 0; i < n; i++) {
		const struct item *x = &it->v[idx[i]];
		int64_t rb = 0;
		uint64_t ep = 0;
		shmstat_sync_rbase_get(b->h, x->index, &rb, &ep);
		if (rb == 0 && ep == 0)
			continue;
		rc |= args_i64(a, (int64_t)i + 1);
		rc |= args_i64(a, rb);
		rc |= args_i64(a, (int64_t)ep);
		m++;
	}
	if (m && !rc) {
		char buf[24];
		int l = snprintf(buf, sizeof(buf), "%" PRId64, m);
		char *p = args_room(a, (size_t)l);
		if (!p)
			return -1;
		memcpy(p, buf, (size_t)l);
		p[l] = '\0';
		a->blk->used += (size_t)l + 1;
		a->v[mpos] = p;
		a->len[mpos] = (size_t)l;
	}
	for (size_t i = 0; i < n && kpl; i++) {
		const struct item *x = &it->v[idx[i]];
		rc |= args_push(a, x->name, x->name_len);
	}
	for (size_t i = 0; i < n; i++)
		rc |= args_i64(a, it->v[idx[i]].total);
	return rc ? -1 : 0;
}

/* MGET of the keys of idx[0..n): their global values only. */
static int build_refresh(struct bridge *b, const struct items *it,
			 const uint32_t *idx, size_t n, struct args *a)
{
	const char *kp = b->cf->key_prefix;
	size_t kpl = strlen(kp);
	int rc = args_push(a, "MGET", 4);

	for (size_t i = 0; i < n; i++) {
		const struct item *x = &it->v[idx[i]];
		rc |= args_cat(a, kp, kpl, x->name, x->name_len);
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

/* An integer reply, or a string holding one. */
static bool reply_i64(const redisReply *e, int64_t *out)
{
	if (e->type == REDIS_REPLY_INTEGER) {
		*out = e->integer;
		return true;
	}
	return e->type == REDIS_REPLY_STRING && parse_i64(e->str, e->len, out);
}

/* What the replies of one pass said, beyond each counter's own result. */
struct pass {
	int failed;          /* calls that failed (nothing to redo now) */
	bool lost;           /* Redis' sequence was below ours */
	bool stale;          /* a call with a higher fence had run */
	uint64_t stale_fence;
	bool gen_seen;       /* some call returned the reset generation */
	bool gen_diff;       /* ... and not all the same */
	int64_t gen_min;
	uint64_t seq;        /* highest sequence a call returned, 0: none */
};

/* Forget what Redis accepted: every counter goes in the next pass. */
static void forget_all(struct bridge *b)
{
	for (uint32_t i = 0; i < b->max_counters; i++)
		b->st[i].known = false;
}

static void forget(struct bridge *b, const struct items *it,
		   const uint32_t *idx, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t x = it->v[idx[i]].index;
		if (x < b->max_counters)
			b->st[x].known = false;
	}
}

/* Apply one script reply for idx[0..n). */
static void apply_push(struct bridge *b, const struct items *it,
		       const uint32_t *idx, size_t n, redisReply *r,
		       uint64_t now, struct pass *p)
{
	if (r->type == REDIS_REPLY_ERROR) {
		/* The script did not run (OOM, BUSY, NOPERM, ...). */
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "push to Redis %s: error reply: %s", b->cf->addr,
			     r->str);
		forget(b, it, idx, n);
		p->failed++;
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "push: unexpected reply type %d from Redis %s",
			     r->type, b->cf->addr);
		forget(b, it, idx, n);
		p->failed++;
		return;
	}
	if (r->element[0]->integer == 0) {
		b->refused = true;
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "host id %s is in use on Redis %s by another live "
			     "bridge (two hosts configured with the same host "
			     "id? see --host-id); refusing to push",
			     b->host_hex, b->cf->addr);
		p->failed++;
		return;
	}
	if (r->element[0]->integer == 2) {
		/* A call of ours that timed out ran later than a newer one,
		 * or a previous bridge's clock was ahead: this call did
		 * nothing. Take a higher fence and push everything. */
		int64_t f;
		if (reply_i64(r->element[1], &f) && f > 0 &&
		    (uint64_t)f > p->stale_fence)
			p->stale_fence = (uint64_t)f;
		p->stale = true;
		return;
	}
	int64_t seq, gen;
	if (r->elements != 7 || r->element[3]->type != REDIS_REPLY_ARRAY ||
	    r->element[3]->elements != n ||
	    r->element[4]->type != REDIS_REPLY_ARRAY ||
	    r->element[5]->type != REDIS_REPLY_ARRAY ||
	    !reply_i64(r->element[6], &gen)) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "push: malformed reply from Redis %s",
			     b->cf->addr);
		forget(b, it, idx, n);
		p->failed++;
		return;
	}
	if (!reply_i64(r->element[1], &seq))
		seq = 0;
	if (r->element[2]->integer == 1)
		p->lost = true;
	if (seq > 0 && (uint64_t)seq > p->seq)
		p->seq = (uint64_t)seq;
	if (p->gen_seen && gen != p->gen_min)
		p->gen_diff = true;
	if (!p->gen_seen || gen < p->gen_min)
		p->gen_min = gen;
	p->gen_seen = true;
	/* Counters whose key Redis refused (e.g. not an integer). */
	redisReply *errs = r->element[5];
	bool *bad = calloc(n ? n : 1, sizeof(bool));
	if (!bad) {
		forget(b, it, idx, n);
		p->failed++;
		return;
	}
	for (size_t i = 0; i + 1 < errs->elements; i += 2) {
		int64_t k;
		if (!reply_i64(errs->element[i], &k) || k < 1 ||
		    (size_t)k > n)
			continue;
		bad[k - 1] = true;
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "key '%s%s' on Redis %s: %s (its count stays "
			     "pending)",
			     b->cf->key_prefix, it->v[idx[k - 1]].name,
			     b->cf->addr,
			     errs->element[i + 1]->type == REDIS_REPLY_STRING
				     ? errs->element[i + 1]->str
				     : "error");
	}
	redisReply *g = r->element[3];
	for (size_t i = 0; i < n; i++) {
		const struct item *x = &it->v[idx[i]];
		int64_t v;
		if (bad[i])
			continue;
		if (reply_i64(g->element[i], &v))
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
		shmstat_sync_rbase_set(b->h, it->v[idx[k - 1]].index, rb, ep);
		if (ep > b->status.epoch)
			b->status.epoch = ep;
	}
}

/* One global value read back (MGET element or GET reply). A missing key
 * reads as 0, as in the script. */
static void apply_value(struct bridge *b, const struct item *x,
			const redisReply *e, uint64_t now)
{
	int64_t v;

	if (e->type == REDIS_REPLY_NIL)
		shmstat_sync_global_set(b->h, x->index, 0, now);
	else if (reply_i64(e, &v))
		shmstat_sync_global_set(b->h, x->index, v, now);
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

/* One call of a pass: a script chunk, or a refresh (one MGET, or n GETs
 * when the ACL refuses MGET). */
struct call {
	enum { CALL_PUSH, CALL_MGET, CALL_GET } kind;
	size_t off, n;
	bool noscript; /* answered NOSCRIPT: send with EVAL after the rest */
};

/* The counters to send go first in idx: those Redis has not acknowledged
 * with their current total. The others follow. Returns how many to send. */
static size_t select_items(struct bridge *b, const struct items *it,
			   uint32_t *idx)
{
	size_t ns = 0, nf = it->n;

	for (size_t i = 0; i < it->n; i++) {
		uint32_t x = it->v[i].index;
		if (x >= b->max_counters || !b->st[x].known ||
		    b->st[x].acked != it->v[i].total)
			idx[ns++] = (uint32_t)i;
		else
			idx[--nf] = (uint32_t)i;
	}
	return ns;
}

/*
 * One pass: the script for idx[0..nsend) in chunks, the refresh of
 * idx[nsend..it->n), all pipelined in one round trip. 0, 1 when a call
 * could not be built (the context is still in step), -1 on an I/O error.
 */
static int run_pass(struct bridge *b, const struct items *it,
		    const uint32_t *idx, size_t nsend, struct pass *p)
{
	size_t nfresh = it->n - nsend;
	size_t npush = nsend ? (nsend + BRIDGE_CHUNK - 1) / BRIDGE_CHUNK : 1;
	size_t nref = (nfresh + BRIDGE_CHUNK - 1) / BRIDGE_CHUNK;
	struct call *calls = calloc(npush + nref, sizeof(*calls));
	size_t ncalls = 0, sent = 0;
	int ret = 0;

	if (!calls)
		return 1;
	uint64_t ms = shmstat__now_realtime_ns() / 1000000u;
	b->fence = ms > b->fence ? ms : b->fence + 1;
	for (size_t c = 0; c < npush; c++) {
		size_t off = c * BRIDGE_CHUNK;
		calls[ncalls++] = (struct call){
			CALL_PUSH, off,
			nsend - off < BRIDGE_CHUNK ? nsend - off : BRIDGE_CHUNK,
			false
		};
	}
	for (size_t c = 0; c < nref; c++) {
		size_t off = nsend + c * BRIDGE_CHUNK;
		calls[ncalls++] = (struct call){
			b->no_mget ? CALL_GET : CALL_MGET, off,
			it->n - off < BRIDGE_CHUNK ? it->n - off : BRIDGE_CHUNK,
			false
		};
	}
	for (size_t c = 0; c < ncalls; c++) {
		struct call *k = &calls[c];
		struct args a = { 0 };
		int rc = k->kind == CALL_PUSH
				 ? build_push(b, it, idx + k->off, k->n, true, &a)
				 : build_refresh(b, it, idx + k->off, k->n, &a);
		if (rc < 0) {
			args_free(&a);
			bridge_error(b, SHMSTAT_LOG_ERROR, "out of memory");
			ret = 1;
			break;
		}
		if (k->kind == CALL_GET) {
			for (int i = 1; i < a.n && rc == REDIS_OK; i++) {
				const char *v[2] = { "GET", a.v[i] };
				size_t l[2] = { 3, a.len[i] };
				rc = redisAppendCommandArgv(b->rc, 2, v, l);
			}
		} else {
			rc = redisAppendCommandArgv(b->rc, a.n, a.v, a.len);
		}
		args_free(&a);
		if (rc != REDIS_OK) {
			ret = -1;
			break;
		}
		sent++;
	}
	uint64_t now = shmstat__now_realtime_ns();
	for (size_t c = 0; c < sent && ret >= 0; c++) {
		struct call *k = &calls[c];
		size_t nrep = k->kind == CALL_GET ? k->n : 1;
		for (size_t i = 0; i < nrep; i++) {
			void *rv = NULL;
			if (redisGetReply(b->rc, &rv) != REDIS_OK || !rv) {
				ret = -1;
				break;
			}
			redisReply *r = rv;
			const uint32_t *ix = idx + k->off;
			if (k->kind == CALL_PUSH && r->type == REDIS_REPLY_ERROR &&
			    strncmp(r->str, "NOSCRIPT", 8) == 0)
				k->noscript = true;
			else if (k->kind == CALL_PUSH)
				apply_push(b, it, ix, k->n, r, now, p);
			else if (k->kind == CALL_GET)
				apply_value(b, &it->v[ix[i]], r, now);
			else if (r->type == REDIS_REPLY_ARRAY &&
				 r->elements == k->n)
				for (size_t j = 0; j < k->n; j++)
					apply_value(b, &it->v[ix[j]],
						    r->element[j], now);
			else if (r->type == REDIS_REPLY_ERROR &&
				 strncmp(r->str, "NOPERM", 6) == 0 &&
				 !b->no_mget) {
				blog(SHMSTAT_LOG_WARNING,
				     "Redis %s refuses MGET (%s): reading the "
				     "global values with GET instead; allow "
				     "+mget for the bridge's ACL user",
				     b->cf->addr, r->str);
				b->no_mget = true;
			}
			freeReplyObject(r);
		}
	}
	/* Script cache flushed or Redis restarted: those calls did not run;
	 * send their source (which caches it), now that every pipelined
	 * reply is read. */
	for (size_t c = 0; c < sent && ret >= 0; c++) {
		struct call *k = &calls[c];
		if (!k->noscript)
			continue;
		blog(SHMSTAT_LOG_INFO,
		     "Redis %s forgot the push script (NOSCRIPT): sending it "
		     "with EVAL",
		     b->cf->addr);
		struct args a = { 0 };
		if (build_push(b, it, idx + k->off, k->n, false, &a) < 0) {
			args_free(&a);
			forget(b, it, idx + k->off, k->n);
			p->failed++;
			continue;
		}
		redisReply *r = redisCommandArgv(b->rc, a.n, a.v, a.len);
		args_free(&a);
		if (!r) {
			ret = -1;
			break;
		}
		apply_push(b, it, idx + k->off, k->n, r, now, p);
		freeReplyObject(r);
	}
	if (ret == 1) {
		/* Read the replies of what was sent, so the context stays in
		 * step; their outcome is not applied, so forget it. */
		for (size_t c = 0; c < sent; c++) {
			size_t nrep = calls[c].kind == CALL_GET ? calls[c].n : 1;
			for (size_t i = 0; i < nrep; i++) {
				void *rv = NULL;
				if (redisGetReply(b->rc, &rv) != REDIS_OK) {
					ret = -1;
					break;
				}
				freeReplyObject(rv);
			}
		}
		forget_all(b);
	}
	if (ret < 0) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "push to Redis %s failed: %s", b->cf->addr,
			     conn_errtext(b, NULL));
		/* Calls may have run without our seeing their replies. */
		forget_all(b);
	}
	free(calls);
	return ret;
}

int push_all(struct bridge *b)
{
	struct items it = { 0 };
	uint32_t *idx = NULL;
	int ret = -1;
	struct pass p = { 0 };

	if (!b->rc)
		return -1;
	if (run_reset(b) < 0)
		goto io;
	if (collect(b, &it) < 0)
		goto out;
	if (b->status.pending && !b->dirty_since_ns)
		b->dirty_since_ns = shmstat__now_realtime_ns();
	idx = malloc((it.n ? it.n : 1) * sizeof(*idx));
	if (!idx) {
		bridge_error(b, SHMSTAT_LOG_ERROR, "out of memory");
		goto failed;
	}

	/*
	 * Send only what Redis has not acknowledged; read the others' global
	 * values back. The script call goes even with nothing to send: it
	 * checks the sequence. When the replies show that our knowledge of
	 * Redis is void (it lost pushes, a stale call, a global reset we did
	 * not push through), forget it and push everything again at once.
	 */
	bool logged = false;
	for (int pass = 0; pass < 2; pass++) {
		memset(&p, 0, sizeof(p));
		size_t nsend = select_items(b, &it, idx);
		bool full = nsend == it.n;
		int rc = run_pass(b, &it, idx, nsend, &p);
		b->last_sent = (uint32_t)nsend;
		b->last_refreshed = (uint32_t)(it.n - nsend);
		b->last_full = full;
		if (rc < 0)
			goto io;
		if (rc > 0 || b->refused)
			goto failed;
		/* What Redis holds now, even when lower than before (it lost
		 * pushes): the next push compares with that. */
		if (p.seq)
			b->status.seq_acked = p.seq;
		bool redo = false;
		if (p.stale) {
			b->fence = p.stale_fence;
			forget_all(b);
			redo = true;
		}
		if (p.lost && !logged) {
			blog(SHMSTAT_LOG_WARNING,
			     "Redis %s lost pushes (its sequence for host %s "
			     "is below what it acknowledged: restarted empty or "
			     "restored from an older snapshot); pushing every "
			     "total again",
			     b->cf->addr, b->host_hex);
			logged = true;
		}
		if (p.lost && !full) {
			forget_all(b);
			redo = true;
		}
		if (p.gen_seen && !p.stale) {
			if (full) {
				b->reset_gen = p.gen_min;
				b->reset_gen_known = true;
			} else if (!b->reset_gen_known || p.gen_diff ||
				   p.gen_min != b->reset_gen) {
				/* A global reset ran: learn the new reset
				 * bases of the counters we did not send. */
				forget_all(b);
				redo = true;
			}
		}
		if (!redo)
			break;
	}
	b->full_push = b->last_full;
	count_pending(b, &it);
	if (p.failed || p.stale)
		goto failed;
	uint64_t now = shmstat__now_realtime_ns();
	b->status.pushes_ok++;
	b->status.last_push_ns = now;
	b->dirty_since_ns = b->status.pending ? now : 0;
	ret = 0;
	goto out;
failed:
	b->status.pushes_failed++;
	goto out;
io:
	b->status.pushes_failed++;
	forget_all(b);
	conn_close(b);
out:
	free(idx);
	free(it.v);
	return ret;
}
