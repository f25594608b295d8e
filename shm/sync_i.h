/*
 * sync_i.h — the writers of the sync state, for shmstat-bridge only (it
 * links the static library; they are not part of libshmstat's ABI). The
 * readers and the reset request are public, in shmstat.h.
 */
#ifndef SHMSTAT_SYNC_I_H
#define SHMSTAT_SYNC_I_H

#include "shmstat.h"

/*
 * Write the whole status (the `alive` field is ignored). For the one
 * bridge of the segment only: two concurrent writers would corrupt the
 * sequence lock. Readers see either the old or the new status, whole.
 */
int shmstat__sync_status_write(shmstat_t *h, const shmstat_sync_status_t *st);
/* The status read by its one writer (the bridge holding the pidfile),
 * without the seqlock: what a bridge killed mid-write left. */
int shmstat__sync_status_read_owner(shmstat_t *h, shmstat_sync_status_t *out);

/*
 * Store the cluster-wide value of counter or gauge `index` and when it was
 * read (CLOCK_REALTIME ns, not 0). Bridge only. A reader that sees the new
 * global_ns (acquire) sees the value that goes with it.
 */
int shmstat__sync_global_set(shmstat_t *h, uint32_t index, int64_t value,
			    uint64_t ns);

/*
 * The reset base and epoch of counter `index`: its total (as pushed) when
 * the newest global reset the bridge has seen applied to it, and that
 * reset's epoch (0, 0 when never reset). Set by the bridge only; read by
 * the bridge (another reader may see the two fields from different
 * writes).
 */
int shmstat__sync_rbase_get(shmstat_t *h, uint32_t index, int64_t *base,
			    uint64_t *tag);
int shmstat__sync_rbase_set(shmstat_t *h, uint32_t index, int64_t base,
			    uint64_t tag);

/*
 * Bridge side of the request: 1 and the glob, id and epoch (CLOCK_REALTIME
 * ms of the request, unique per segment) when one is pending, 0 when none.
 * A request stays pending until shmstat__sync_reset_done(), so a bridge that
 * dies while executing it executes it again after restart (the bridge makes
 * that idempotent with the epoch).
 */
int shmstat__sync_reset_take(shmstat_t *h, char *glob, size_t len,
			    uint64_t *req_id, uint64_t *epoch_ms);
int shmstat__sync_reset_done(shmstat_t *h, uint64_t req_id, uint64_t count,
			    int rc);

#endif
