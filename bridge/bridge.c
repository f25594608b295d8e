/*
 * bridge.c — setting a bridge up and down: the source it pushes as, its
 * owner token, the names of the bookkeeping keys, the per-counter state,
 * and the checks that refuse a configuration that would double-count.
 * Shared by the daemon (main.c), the tests and bench/bench_sync.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge_i.h"
#include "shmstat_i.h"
#include "sync_i.h"

void bconf_defaults(struct bconf *cf)
{
	memset(cf, 0, sizeof(*cf));
	cf->segment = "default";
	cf->key_prefix = "";
	cf->meta_prefix = "_shmstat:";
	cf->interval_ms = 1000;
	cf->connect_timeout_ms = 2000;
	cf->command_timeout_ms = 2000;
	cf->backoff_min_ms = 50;
	cf->backoff_max_ms = 5000;
	cf->gauge_expiry_ms = 300000;
	redis_conf_init(&cf->redis);
}

int bridge_init(struct bridge *b, struct bconf *cf, shmstat_t *h)
{
	shmstat_info_t info;
	const char *mp = cf->meta_prefix;

	memset(b, 0, sizeof(*b));
	b->cf = cf;
	b->h = h;
	if (strlen(mp) > 60 || strlen(cf->key_prefix) > 100) {
		blog(SHMSTAT_LOG_ERROR, "--meta-prefix longer than 60 or "
					"--key-prefix longer than 100 bytes");
		return -1;
	}
	if (shmstat_info(h, &info) < 0) {
		blog(SHMSTAT_LOG_ERROR, "%s", shmstat_errstr(h));
		return -1;
	}
	/* A bridge killed while writing the status leaves it odd for
	 * readers; this one holds the pidfile, so it is the only writer and
	 * reads it as it is. */
	int src = shmstat_sync_status_read(h, &b->status);
	if (src == SHMSTAT_EBUSY) {
		blog(SHMSTAT_LOG_INFO, "the previous bridge was stopped while "
				       "writing its status: continuing from it");
		shmstat__sync_status_read_owner(h, &b->status);
	} else if (src < 0) {
		blog(SHMSTAT_LOG_ERROR, "%s", shmstat_errstr(h));
		return -1;
	}
	/* Which file the name is now, to notice when it becomes another. */
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "/dev/shm/shmstat.%s", cf->segment);
	if (stat(path, &st) == 0) {
		b->seg_dev = (uint64_t)st.st_dev;
		b->seg_ino = (uint64_t)st.st_ino;
	}
	uint64_t host_id = cf->host_id_set ? cf->host_id : info.host_id;
	uint64_t nonce = info.source_nonce;
	if (!nonce) {
		/* A segment made before the nonce: derive one that is
		 * stable for this incarnation. */
		char nseed[256];
		int nn = snprintf(nseed, sizeof(nseed), "%s|%" PRIu64 "|%d",
				  cf->segment, info.created_ns,
				  info.creator_pid);
		nonce = shmstat__hash(nseed, (size_t)nn) | 1u;
	}
	snprintf(b->host_hex, sizeof(b->host_hex), "%016" PRIx64, host_id);
	snprintf(b->host_name, sizeof(b->host_name), "%s", info.host_name);
	snprintf(b->source, sizeof(b->source), "%016" PRIx64 ".%016" PRIx64,
		 host_id, nonce);
	/* The token names the source, so a restarted bridge of the same
	 * segment takes its lease back at once. */
	snprintf(b->token, sizeof(b->token), "%016" PRIx64 "%08x",
		 shmstat__hash(b->source, strlen(b->source)),
		 (unsigned)info.created_ns);

	/* The token the previous (host-keyed) protocol gave this segment's
	 * bridge: how the upgrade recognises its own bookkeeping. */
	char seed[256];
	int sn = snprintf(seed, sizeof(seed), "%s|%" PRIu64 "|%d|%s",
			  cf->segment, info.created_ns, info.creator_pid,
			  info.host_name);
	snprintf(b->old_token, sizeof(b->old_token), "%016" PRIx64 "%016" PRIx64,
		 shmstat__hash(seed, (size_t)sn),
		 shmstat__hash(seed, (size_t)sn / 2));

	/*
	 * The segment remembers the source and meta prefix its totals were
	 * pushed as. Pushing them again under another one would add them a
	 * second time: refuse with what to do instead.
	 */
	shmstat_sync_status_t *s = &b->status;
	if (s->seq_acked && s->source[0] && strcmp(s->source, b->source)) {
		blog(SHMSTAT_LOG_ERROR,
		     "segment '%s' was pushed as source %s; this bridge would "
		     "push it as %s (was --host-id changed?) and count its "
		     "totals twice. Start it with the previous --host-id, or "
		     "recreate the segment to start a new source",
		     cf->segment, s->source, b->source);
		b->refused = true;
		return -1;
	}
	if (s->seq_acked && !s->source[0] && s->host_id &&
	    s->host_id != host_id) {
		/* Pushed by the previous release, as another host id. */
		blog(SHMSTAT_LOG_ERROR,
		     "segment '%s' was pushed as host id %016" PRIx64
		     "; this bridge would push it as %s and count its totals "
		     "twice. Start it with --host-id %" PRIx64 " (or without "
		     "--host-id if that was the default)",
		     cf->segment, s->host_id, b->host_hex, s->host_id);
		b->refused = true;
		return -1;
	}
	if (s->seq_acked && s->meta_prefix[0] &&
	    strcmp(s->meta_prefix, mp) != 0) {
		blog(SHMSTAT_LOG_ERROR,
		     "segment '%s' was pushed with --meta-prefix '%s'; with "
		     "'%s' its totals would be counted twice. Start the bridge "
		     "with --meta-prefix '%s', or recreate the segment to start "
		     "a new source",
		     cf->segment, s->meta_prefix, mp, s->meta_prefix);
		b->refused = true;
		return -1;
	}
	/* Counted again by this bridge as it meets them. */
	s->refused_keys = s->reserved_names = 0;
	s->refused_key[0] = s->reserved_name[0] = '\0';
	snprintf(s->source, sizeof(s->source), "%s", b->source);
	snprintf(s->meta_prefix, sizeof(s->meta_prefix), "%s", mp);
	s->host_id = host_id;
	s->interval_ms = cf->interval_ms;

	snprintf(b->k_src, sizeof(b->k_src), "%ss:%s", mp, b->source);
	snprintf(b->k_tot, sizeof(b->k_tot), "%st:%s", mp, b->source);
	snprintf(b->k_gau, sizeof(b->k_gau), "%sg:%s", mp, b->source);
	snprintf(b->k_inc, sizeof(b->k_inc), "%si:%s:%s", mp, b->host_hex,
		 cf->segment);
	snprintf(b->k_sources, sizeof(b->k_sources), "%ssources", mp);
	snprintf(b->k_feed, sizeof(b->k_feed), "%sfeed", mp);
	snprintf(b->k_keys, sizeof(b->k_keys), "%skeys", mp);
	snprintf(b->k_rgen, sizeof(b->k_rgen), "%srgen", mp);
	snprintf(b->k_resets, sizeof(b->k_resets), "%sresets", mp);
	snprintf(b->k_gauges, sizeof(b->k_gauges), "%sgauges", mp);

	b->max_counters = info.max_counters;
	size_t n = info.max_counters ? info.max_counters : 1;
	b->st = calloc(n, sizeof(*b->st));
	b->keys = calloc(n, sizeof(*b->keys));
	b->keylen = calloc(n, sizeof(*b->keylen));
	b->idx = calloc(n, sizeof(*b->idx));
	b->ack = calloc(n, sizeof(*b->ack));
	size_t slots = 16;
	while (slots < 2 * n)
		slots *= 2;
	b->kmap = calloc(slots, sizeof(*b->kmap));
	b->kmask = (uint32_t)(slots - 1);
	b->flag = calloc(n, sizeof(*b->flag));
	if (!b->st || !b->keys || !b->keylen || !b->idx || !b->ack ||
	    !b->flag || !b->kmap) {
		blog(SHMSTAT_LOG_ERROR, "out of memory");
		bridge_fini(b);
		return -1;
	}
	/* No counter anywhere until the snapshot meets it. */
	memset(b->flag, 2 /* FL_SKIP */, n);
	return 0;
}

bool bridge_segment_moved(const struct bridge *b)
{
	char path[128];
	struct stat st;

	if (!b->seg_ino)
		return false;
	snprintf(path, sizeof(path), "/dev/shm/shmstat.%s", b->cf->segment);
	if (stat(path, &st) != 0)
		return errno == ENOENT;
	return (uint64_t)st.st_dev != b->seg_dev ||
	       (uint64_t)st.st_ino != b->seg_ino;
}

void bridge_fini(struct bridge *b)
{
	conn_fini(b);
	if (b->keys)
		for (uint32_t i = 0; i < b->max_counters; i++)
			free(b->keys[i]);
	free(b->keys);
	free(b->keylen);
	free(b->idx);
	free(b->ack);
	free(b->flag);
	free(b->kmap);
	b->kmap = NULL;
	b->idx = NULL;
	b->ack = NULL;
	b->flag = NULL;
	free(b->st);
	b->keys = NULL;
	b->keylen = NULL;
	b->st = NULL;
}
