/*
 * cache_lease.c — stampede leases: shmstat_cache_fetch() elects one
 * caller to compute a missing value.
 *
 * Owns: each stripe's lease records (under the stripe's lock).
 *
 * Invariants:
 *   - A lease is held by one thread of one process (pid and tid): the
 *     other threads of that process wait or get the stale value like any
 *     other caller.
 *   - A lease whose thread is gone (tgkill(pid, tid, 0) says no such
 *     thread, or its process is a zombie) or whose time ran out is free; a set of the key drops its
 *     lease whoever holds it.
 *   - No free record (more leases than records in one stripe): the caller
 *     computes without protection rather than waiting for nothing.
 *   - A fetch waits at most wait_ms for the value or the lease, polling
 *     every millisecond; each of its lock waits ends by the lock bound.
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cache_impl_i.h"

/* Is thread tid of process pid running? A process killed but not yet
 * reaped (a zombie) holds nothing. */
static bool thread_alive(int32_t pid, int32_t tid)
{
	if (pid <= 0 || tid <= 0)
		return false;
	if (syscall(SYS_tgkill, pid, tid, 0) != 0 && errno != EPERM)
		return false;
	return tid != pid || !cache__holder_dead((uint32_t)pid);
}

void cache__lease_drop(struct ctx *c, uint32_t s, uint64_t hash)
{
	for (int i = 0; i < NLEASES; i++)
		if (c->g->st[s].lease[i].pid && c->g->st[s].lease[i].hash == hash)
			c->g->st[s].lease[i].pid = 0;
}

/* Under stripe s: is a live lease on hash held by another caller? Take it
 * when free. Returns 1 taken (or held by this thread), 0 held by another. */
static int lease_try(struct ctx *c, uint32_t s, uint64_t hash,
		     uint32_t lease_ms)
{
	struct cache_lease *free_l = NULL;
	uint64_t now = shmstat__cache_now_ms();
	int32_t pid = cache__self_pid(), tid = cache__self_tid();

	for (int i = 0; i < NLEASES; i++) {
		struct cache_lease *l = &c->g->st[s].lease[i];
		bool alive = l->pid && now < l->until_ms &&
			     thread_alive(l->pid, l->tid);
		bool mine = l->pid == pid && l->tid == tid;
		if (alive && l->hash == hash && !mine)
			return 0;
		if (!alive || l->hash == hash)
			free_l = free_l ? free_l : l;
	}
	if (free_l) {
		free_l->hash = hash;
		free_l->pid = pid;
		free_l->tid = tid;
		free_l->until_ms = now + lease_ms;
	}
	return 1;
}

int shmstat_cache_fetch(shmstat_t *h, const void *key, size_t klen, void *buf,
			size_t buflen, size_t *vlen, uint32_t lease_ms,
			uint32_t wait_ms, int *outcome)
{
	struct ctx c;
	struct rd r;
	int rc;

	if ((rc = cache__ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = cache__check_key(h, key, klen)) < 0 || !outcome ||
	    (!buf && buflen))
		return cache__fail(&c, rc < 0 ? rc : SHMSTAT_EINVAL);
	if (!lease_ms)
		lease_ms = 10000;
	uint64_t hash = cache_hash(key, klen);
	uint32_t s = stripe_of(&c, home_of(&c, hash));
	uint64_t until = shmstat__now_mono_ns() + (uint64_t)wait_ms * 1000000u;

	for (;;) {
		uint64_t now = 0;
		/* Each turn is a call of its own for the lock bound: the
		 * wait for the value is wait_ms, not the lock bound. */
		c.deadline = 0;
		rc = cache__lookup(&c, key, klen, hash, buf, buflen, &r);
		if (rc == 2)
			return cache__corrupt_entry(&c, &r);
		bool have = rc == 1, stale = have && expired(r.expires, &now);
		if (have && !stale) {
			*outcome = SHMSTAT_CACHE_HIT;
			goto copied;
		}
		if ((rc = cache__stripe_lock(&c, s, false)) < 0)
			return cache__fail(&c, rc);
		struct where w;
		/* Set meanwhile? Then copy it now: under the lock it cannot
		 * change, and find_locked checks it as a reader does. */
		bool fresh = cache__find_locked(&c, key, klen, hash, &w) &&
			     !w.corrupt &&
			     !expired(atomic_load_explicit(&w.e->expires,
							   memory_order_relaxed),
				      &now);
		int took = 0;
		if (fresh) {
			r.vlen = w.e->val_len;
			if (buf && r.vlen <= buflen)
				memcpy(buf, w.e->data + klen, r.vlen);
		} else {
			took = lease_try(&c, s, hash, lease_ms);
		}
		cache__stripe_unlock(&c, s);
		if (fresh) {
			*outcome = SHMSTAT_CACHE_HIT;
			goto copied;
		}
		if (took) {
			/* One count per call: a miss when the caller is to
			 * compute (or waited in vain), a hit when it returns a
			 * value, fresh or stale, however long it waited. */
			cache__stat_add(&c, RS_CACHE_MISSES, 1);
			*outcome = SHMSTAT_CACHE_LEASED;
			if (vlen)
				*vlen = 0;
			return 0;
		}
		if (stale) {
			*outcome = SHMSTAT_CACHE_STALE;
			goto copied;
		}
		/* Every turn ends here: the wait is bounded by wait_ms. */
		if (shmstat__now_mono_ns() >= until) {
			cache__stat_add(&c, RS_CACHE_MISSES, 1);
			return shmstat__err(h, SHMSTAT_ELEASE,
					    "cache fetch: another caller holds "
					    "the lease; no value within %u ms",
					    wait_ms);
		}
		struct timespec ts = { 0, 1000000 }; /* poll: 1 ms */
		nanosleep(&ts, NULL);
	}
copied:
	if (vlen)
		*vlen = r.vlen;
	if (r.vlen > buflen)
		return shmstat__err(h, SHMSTAT_ERANGE,
				    "cache value of %u bytes does not fit a "
				    "buffer of %zu",
				    r.vlen, buflen);
	cache__stat_add(&c, RS_CACHE_HITS, 1);
	return 0;
}

int shmstat_cache_lease_release(shmstat_t *h, const void *key, size_t klen)
{
	struct ctx c;
	int rc;

	if ((rc = cache__ctx_load(h, &c)) < 0)
		return rc;
	if ((rc = cache__check_key(h, key, klen)) < 0)
		return cache__fail(&c, rc);
	uint64_t hash = cache_hash(key, klen);
	uint32_t s = stripe_of(&c, home_of(&c, hash));
	int32_t pid = cache__self_pid(), tid = cache__self_tid();
	if ((rc = cache__stripe_lock(&c, s, false)) < 0)
		return cache__fail(&c, rc);
	rc = SHMSTAT_ENOTFOUND;
	for (int i = 0; i < NLEASES; i++) {
		struct cache_lease *l = &c.g->st[s].lease[i];
		if (l->pid == pid && l->tid == tid && l->hash == hash) {
			l->pid = 0;
			rc = 0;
		}
	}
	cache__stripe_unlock(&c, s);
	return rc;
}
