/*
 * sync.c — the engine's side of the bridge: the status region (REG_SYNC),
 * the cluster-wide value and reset base of each counter, and the
 * global-reset request. Nothing here knows about Redis.
 *
 * Invariants
 *   - The status has one writer, the segment's bridge (its pidfile keeps it
 *     alone). It is a sequence lock: `seq` is odd while the bridge writes;
 *     readers copy, then check `seq` did not move, and retry a bounded
 *     number of times. Fields are copied with relaxed atomic loads so a
 *     reader racing the writer reads torn-free words and then discards them.
 *   - A counter's cluster-wide value is published value first, then
 *     global_ns with release: a reader that acquires global_ns sees the
 *     value written with it (or a newer one).
 *   - dir_entry.reserved[0] is the counter's reset base (its total, as
 *     pushed, when the newest global reset applied to it), reserved[1] a
 *     tag of the Redis key it was made for (the bridge's choice). Written
 *     by the bridge only.
 *   - The reset request is written by any process: a CAS takes
 *     reset_state from idle to "being written by <pid>" (a writer that died
 *     there is taken over), the glob and epoch are filled, then the state
 *     becomes pending with release. The bridge reads a pending request with
 *     acquire and marks it done (done_id release) before making it idle.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmstat_i.h"
#include "sync_i.h"

#define SEQ_RETRIES 1000
#define RESET_IDLE 0u
#define RESET_WRITING 1u
#define RESET_PENDING 2u
#define RESET_RBASE 0
#define RESET_TAG 1

static inline uint64_t rword(uint32_t st, int32_t pid)
{
	return (uint64_t)st | ((uint64_t)(uint32_t)pid << 2);
}
static inline uint32_t rstate(uint64_t w) { return (uint32_t)(w & 3u); }
static inline int32_t rpid(uint64_t w) { return (int32_t)(uint32_t)(w >> 2); }

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000L };
	nanosleep(&ts, NULL);
}

#define LD(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define ST(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)

/* Byte-wise relaxed copy, so a racing writer gives stale bytes, not UB. */
static void copy_in(char *dst, const char *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	dst[len - 1] = '\0';
}

static void copy_out(char *dst, const char *src, size_t len)
{
	size_t n = strnlen(src, len - 1);
	for (size_t i = 0; i < len; i++)
		__atomic_store_n(&dst[i], i < n ? src[i] : '\0',
				 __ATOMIC_RELAXED);
}

/* Every field of the status, as stored (no ordering of its own). */
static void status_copy(const struct sync_status *s, shmstat_sync_status_t *out)
{
	memset(out, 0, sizeof(*out));
	out->bridge_pid = atomic_load_explicit(&s->bridge_pid,
					       memory_order_relaxed);
	out->connected = (int)LD(s->connected);
	out->bridge_start = LD(s->bridge_start);
	out->heartbeat_ns = LD(s->heartbeat_ns);
	out->last_push_ns = LD(s->last_push_ns);
	out->last_error_ns = LD(s->last_error_ns);
	out->pending = LD(s->pending);
	out->lag_ms = LD(s->lag_ms);
	out->pushes_ok = LD(s->pushes_ok);
	out->pushes_failed = LD(s->pushes_failed);
	out->epoch = LD(s->epoch);
	out->interval_ms = LD(s->interval_ms);
	out->seq_acked = LD(s->seq_acked);
	out->host_id = LD(s->host_id);
	copy_in(out->last_error, s->last_error, sizeof(out->last_error));
	copy_in(out->redis_addr, s->redis_addr, sizeof(out->redis_addr));
	copy_in(out->source, s->source, sizeof(out->source));
	copy_in(out->meta_prefix, s->meta_prefix,
		sizeof(out->meta_prefix));
	out->refused_keys = LD(s->refused_keys);
	out->reserved_names = LD(s->reserved_names);
	copy_in(out->refused_key, s->refused_key,
		sizeof(out->refused_key));
	copy_in(out->reserved_name, s->reserved_name,
		sizeof(out->reserved_name));
}

static void status_alive(shmstat_sync_status_t *out)
{
	out->alive = out->bridge_pid > 0 &&
		     shmstat__proc_alive(out->bridge_pid, out->bridge_start);
}

int shmstat_sync_status_read(shmstat_t *h, shmstat_sync_status_t *out)
{
	if (!h || !out)
		return SHMSTAT_EINVAL;
	struct sync_status *s = h->sync;

	for (int i = 0; i < SEQ_RETRIES; i++) {
		uint64_t s1 = atomic_load_explicit(&s->seq,
						   memory_order_acquire);
		if (s1 & 1u) {
			if (i > 16)
				pause_us(50);
			continue;
		}
		status_copy(s, out);
		/* Order the copies before the re-check of seq. */
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&s->seq, memory_order_relaxed) != s1)
			continue;
		status_alive(out);
		return 0;
	}
	return shmstat__err(h, SHMSTAT_EBUSY,
			    "bridge status is being written for too long "
			    "(a bridge stopped mid-write?)");
}

/* The status as its one writer reads it: no seqlock, so a bridge killed
 * in the middle of a write (seq left odd) does not keep the next bridge,
 * which holds the pidfile and so is the only writer, from reading what it
 * continues from. */
int shmstat__sync_status_read_owner(shmstat_t *h, shmstat_sync_status_t *out)
{
	if (!h || !out)
		return SHMSTAT_EINVAL;
	status_copy(h->sync, out);
	status_alive(out);
	return 0;
}

int shmstat__sync_status_write(shmstat_t *h, const shmstat_sync_status_t *st)
{
	if (!h || !st)
		return SHMSTAT_EINVAL;
	struct sync_status *s = h->sync;
	uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);

	/* A bridge killed mid-write left seq odd: the next writer (the only
	 * one, by the pidfile) continues from there. */
	seq |= 1u;
	atomic_store_explicit(&s->seq, seq, memory_order_relaxed);
	/* The odd seq must be visible before any field changes. */
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&s->bridge_pid, st->bridge_pid,
			      memory_order_relaxed);
	ST(s->connected, (uint32_t)st->connected);
	ST(s->bridge_start, st->bridge_start);
	ST(s->heartbeat_ns, st->heartbeat_ns);
	ST(s->last_push_ns, st->last_push_ns);
	ST(s->last_error_ns, st->last_error_ns);
	ST(s->pending, st->pending);
	ST(s->lag_ms, st->lag_ms);
	ST(s->pushes_ok, st->pushes_ok);
	ST(s->pushes_failed, st->pushes_failed);
	ST(s->epoch, st->epoch);
	ST(s->interval_ms, st->interval_ms);
	ST(s->seq_acked, st->seq_acked);
	ST(s->host_id, st->host_id);
	copy_out(s->last_error, st->last_error, sizeof(s->last_error));
	copy_out(s->redis_addr, st->redis_addr, sizeof(s->redis_addr));
	copy_out(s->source, st->source, sizeof(s->source));
	copy_out(s->meta_prefix, st->meta_prefix, sizeof(s->meta_prefix));
	ST(s->refused_keys, st->refused_keys);
	ST(s->reserved_names, st->reserved_names);
	copy_out(s->refused_key, st->refused_key, sizeof(s->refused_key));
	copy_out(s->reserved_name, st->reserved_name,
		 sizeof(s->reserved_name));
	/* Fields before the even seq that tells readers they are whole. */
	atomic_store_explicit(&s->seq, seq + 1, memory_order_release);
	return 0;
}

int shmstat_sync_fresh(shmstat_t *h, uint64_t max_age_ms)
{
	shmstat_sync_status_t st;
	int rc = shmstat_sync_status_read(h, &st);

	if (rc < 0)
		return rc;
	if (!st.alive || !st.connected || st.last_push_ns == 0)
		return 0;
	if (max_age_ms == 0) {
		max_age_ms = 3 * st.interval_ms;
		if (max_age_ms < 2000)
			max_age_ms = 2000;
	}
	uint64_t now = shmstat__now_realtime_ns();
	if (st.last_push_ns > now)
		return 1; /* clock stepped back: the push is as recent as can be */
	return (now - st.last_push_ns) / 1000000u <= max_age_ms;
}

static int entry_check(shmstat_t *h, uint32_t index)
{
	if (!h)
		return SHMSTAT_EINVAL;
	if (index >= h->max_counters)
		return shmstat__err(h, SHMSTAT_EINVAL,
				    "counter index %u out of range (%u)", index,
				    h->max_counters);
	uint64_t w = atomic_load_explicit(&h->dir[index].state,
					  memory_order_acquire);
	if ((w & 3u) != DIR_READY)
		return shmstat__err(h, SHMSTAT_ENOTFOUND,
				    "no counter at index %u", index);
	return 0;
}

int shmstat__sync_global_set(shmstat_t *h, uint32_t index, int64_t value,
			    uint64_t ns)
{
	int rc = entry_check(h, index);

	if (rc < 0)
		return rc;
	if (ns == 0)
		ns = 1;
	struct dir_entry *e = &h->dir[index];
	atomic_store_explicit(&e->global, value, memory_order_relaxed);
	atomic_store_explicit(&e->global_ns, ns, memory_order_release);
	return 0;
}

int shmstat__sync_rbase_get(shmstat_t *h, uint32_t index, int64_t *base,
			    uint64_t *tag)
{
	int rc = entry_check(h, index);

	if (rc < 0)
		return rc;
	struct dir_entry *e = &h->dir[index];
	if (base)
		*base = (int64_t)LD(e->reserved[RESET_RBASE]);
	if (tag)
		*tag = LD(e->reserved[RESET_TAG]);
	return 0;
}

int shmstat__sync_rbase_set(shmstat_t *h, uint32_t index, int64_t base,
			    uint64_t tag)
{
	int rc = entry_check(h, index);

	if (rc < 0)
		return rc;
	struct dir_entry *e = &h->dir[index];
	ST(e->reserved[RESET_RBASE], (uint64_t)base);
	ST(e->reserved[RESET_TAG], tag);
	return 0;
}

int shmstat_sync_reset_request(shmstat_t *h, const char *glob,
			       uint64_t *req_id)
{
	if (!h || !glob)
		return SHMSTAT_EINVAL;
	struct sync_status *s = h->sync;
	size_t len = strlen(glob);
	if (len == 0 || len >= sizeof(s->reset_glob))
		return shmstat__err(h, SHMSTAT_EINVAL,
				    "reset pattern must be 1 to %zu bytes",
				    sizeof(s->reset_glob) - 1);
	int32_t me = (int32_t)getpid();
	uint64_t w = atomic_load_explicit(&s->reset_state,
					  memory_order_acquire);
	uint64_t deadline = shmstat__now_mono_ns() + 1000000000u;

	for (;;) {
		uint32_t st = rstate(w);
		if (st == RESET_PENDING)
			return shmstat__err(h, SHMSTAT_EBUSY,
					    "another global reset is pending "
					    "(the bridge has not run it yet)");
		if (st == RESET_WRITING && shmstat__proc_alive(rpid(w), 0)) {
			if (shmstat__now_mono_ns() > deadline)
				return shmstat__err(h, SHMSTAT_EBUSY,
						    "process %d is writing a "
						    "reset request",
						    rpid(w));
			pause_us(1000);
			w = atomic_load_explicit(&s->reset_state,
						 memory_order_acquire);
			continue;
		}
		/* Idle, or written by a process that died: take it. */
		if (atomic_compare_exchange_strong_explicit(
			    &s->reset_state, &w, rword(RESET_WRITING, me),
			    memory_order_acq_rel, memory_order_acquire))
			break;
	}
	copy_out(s->reset_glob, glob, sizeof(s->reset_glob));
	/* The epoch is the request's time in ms, kept strictly above the
	 * previous one so that two requests never share an epoch. */
	uint64_t ep = shmstat__now_realtime_ns() / 1000000u;
	uint64_t prev = LD(s->reset_epoch_ms);
	if (ep <= prev)
		ep = prev + 1;
	ST(s->reset_epoch_ms, ep);
	uint64_t id = atomic_load_explicit(&s->reset_req_id,
					   memory_order_relaxed) + 1;
	atomic_store_explicit(&s->reset_req_id, id, memory_order_relaxed);
	/* Publish: the bridge that acquires PENDING sees glob, epoch, id. */
	atomic_store_explicit(&s->reset_state, rword(RESET_PENDING, me),
			      memory_order_release);
	if (req_id)
		*req_id = id;
	return 0;
}

int shmstat_sync_reset_wait(shmstat_t *h, uint64_t req_id,
			    uint32_t timeout_ms, uint64_t *count)
{
	if (!h)
		return SHMSTAT_EINVAL;
	struct sync_status *s = h->sync;
	uint64_t deadline = shmstat__now_mono_ns() +
			    (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		uint64_t done = atomic_load_explicit(&s->reset_done_id,
						     memory_order_acquire);
		if (done >= req_id) {
			int64_t rc = atomic_load_explicit(
				&s->reset_done_rc, memory_order_relaxed);
			if (count)
				*count = atomic_load_explicit(
					&s->reset_done_count,
					memory_order_relaxed);
			if (done == req_id && rc < 0)
				return shmstat__err(h, (int)rc,
						    "the bridge could not run "
						    "the reset: %s",
						    shmstat_strerror((int)rc));
			return 0;
		}
		if (shmstat__now_mono_ns() > deadline)
			return shmstat__err(h, SHMSTAT_EBUSY,
					    "the reset request is still pending "
					    "after %u ms",
					    timeout_ms);
		pause_us(2000);
	}
}

int shmstat__sync_reset_take(shmstat_t *h, char *glob, size_t len,
			    uint64_t *req_id, uint64_t *epoch_ms)
{
	if (!h || !glob || len == 0)
		return SHMSTAT_EINVAL;
	struct sync_status *s = h->sync;
	uint64_t w = atomic_load_explicit(&s->reset_state,
					  memory_order_acquire);
	if (rstate(w) != RESET_PENDING)
		return 0;
	char tmp[sizeof(s->reset_glob)];
	copy_in(tmp, s->reset_glob, sizeof(tmp));
	if (strlen(tmp) >= len)
		return shmstat__err(h, SHMSTAT_ERANGE, "glob buffer too small");
	memcpy(glob, tmp, strlen(tmp) + 1);
	if (req_id)
		*req_id = atomic_load_explicit(&s->reset_req_id,
					       memory_order_relaxed);
	if (epoch_ms)
		*epoch_ms = LD(s->reset_epoch_ms);
	return 1;
}

int shmstat__sync_reset_done(shmstat_t *h, uint64_t req_id, uint64_t count,
			    int rc)
{
	if (!h)
		return SHMSTAT_EINVAL;
	struct sync_status *s = h->sync;
	uint64_t w = atomic_load_explicit(&s->reset_state,
					  memory_order_acquire);

	if (rstate(w) != RESET_PENDING ||
	    atomic_load_explicit(&s->reset_req_id, memory_order_relaxed) !=
		    req_id)
		return shmstat__err(h, SHMSTAT_ENOTFOUND,
				    "reset request %llu is not pending",
				    (unsigned long long)req_id);
	atomic_store_explicit(&s->reset_done_count, count,
			      memory_order_relaxed);
	atomic_store_explicit(&s->reset_done_rc, rc, memory_order_relaxed);
	/* Result before the id that announces it. */
	atomic_store_explicit(&s->reset_done_id, req_id, memory_order_release);
	/* Only the bridge moves PENDING on, so this CAS cannot lose. */
	atomic_compare_exchange_strong_explicit(&s->reset_state, &w,
						rword(RESET_IDLE, 0),
						memory_order_release,
						memory_order_relaxed);
	return 0;
}
