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


/*
 * The segment remembers the meta prefix its totals were pushed under, and
 * whether in the partitioned layout (--partition-by-slot, or a Redis
 * Cluster: the prefix is recorded followed by "{}", the mark of the
 * tagged key names). Pushing them again under another prefix, or in the
 * other layout (whose bookkeeping the bridge would not see), would add
 * them a second time: refuse with what to do instead. 0 or -1 (refused).
 */
static int mode_check(struct bridge *b, bool parted, bool layout)
{
	const struct bconf *cf = b->cf;
	const char *mp = cf->meta_prefix;
	char was[sizeof(b->was_mp)];
	size_t wl = strlen(b->was_mp);
	bool was_parted = wl >= 2 && strcmp(b->was_mp + wl - 2, "{}") == 0;

	if (parted && (strchr(mp, '{') || strchr(mp, '}'))) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "--meta-prefix '%s' holds '{' or '}': with "
			     "--partition-by-slot (and on a Redis Cluster) the "
			     "bookkeeping keys carry a hash tag after the "
			     "prefix; choose a prefix without braces",
			     mp);
		b->refused = true;
		b->misconfigured = true;
		return -1;
	}
	memcpy(was, b->was_mp, wl + 1);
	if (was_parted)
		was[wl - 2] = '\0';
	if (!b->was_pushed || !b->was_mp[0])
		return 0;
	if (strcmp(was, mp) != 0) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "segment '%s' was pushed with --meta-prefix '%s'; "
			     "with '%s' its totals would be counted twice. "
			     "Start the bridge with --meta-prefix '%s', or "
			     "recreate the segment to start a new source",
			     cf->segment, was, mp, was);
		b->refused = true;
		return -1;
	}
	if (layout && was_parted && !parted) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "segment '%s' was pushed in the per-slot layout "
			     "(a Redis Cluster's); pushing it in the "
			     "standalone layout would miss that bookkeeping "
			     "and count it twice. Start the bridge with "
			     "--partition-by-slot, or recreate the segment",
			     cf->segment);
		b->refused = true;
		return -1;
	}
	if (layout && !was_parted && parted) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "segment '%s' was pushed in the standalone layout: "
			     "%s keeps the bookkeeping per slot and would count "
			     "it twice. Push it as before; to move it to a "
			     "Redis Cluster, recreate the segment (see "
			     "doc/bridge.md)",
			     cf->segment,
			     b->cluster ? "a Redis Cluster"
					: "--partition-by-slot");
		b->refused = true;
		return -1;
	}
	return 0;
}

int bridge_layout_check(struct bridge *b)
{
	if (b->layout_checked)
		return 0;
	if (mode_check(b, b->parted, true) < 0)
		return -1;
	b->layout_checked = true;
	snprintf(b->status.meta_prefix, sizeof(b->status.meta_prefix), "%s%s",
		 b->cf->meta_prefix, b->parted ? "{}" : "");
	return 0;
}

static void parts_free(struct bridge *b);

/* The names of the keys of b->source's bookkeeping: untagged, or (the
 * partitioned layout) those about no one slot under the home tag. */
static void names(struct bridge *b)
{
	const char *mp = b->cf->meta_prefix;
	const char *h = b->parted ? "{" SLOT_HOME_TAG "}" : "";

	snprintf(b->k_src, sizeof(b->k_src), "%s%ss:%s", mp, h, b->source);
	snprintf(b->k_tot, sizeof(b->k_tot), "%st:%s", mp, b->source);
	snprintf(b->k_gau, sizeof(b->k_gau), "%sg:%s", mp, b->source);
	snprintf(b->k_inc, sizeof(b->k_inc), "%s%si:%s:%s", mp, h,
		 b->host_hex, b->cf->segment);
	snprintf(b->k_sources, sizeof(b->k_sources), "%s%ssources", mp, h);
	snprintf(b->k_feed, sizeof(b->k_feed), "%s%sfeed", mp, h);
	snprintf(b->k_keys, sizeof(b->k_keys), "%skeys", mp);
	snprintf(b->k_rgen, sizeof(b->k_rgen), "%srgen", mp);
	snprintf(b->k_resets, sizeof(b->k_resets), "%sresets", mp);
	snprintf(b->k_gauges, sizeof(b->k_gauges), "%sgauges", mp);
	snprintf(b->k_parts, sizeof(b->k_parts), "%s%sparts", mp, h);
	snprintf(b->k_pset, sizeof(b->k_pset), "%s%sp:%s", mp, h, b->source);
}

/* The partition table: one partition with the untagged names, or room
 * for one per slot. */
static int parts_alloc(struct bridge *b)
{
	b->nparts_max = b->parted ? SLOT_COUNT : 1;
	b->part = calloc(b->nparts_max, sizeof(*b->part));
	if (!b->part)
		return -1;
	if (b->parted)
		return 0;
	struct bpart *p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	p->k_src = b->k_src;
	p->k_tot = b->k_tot;
	p->k_gau = b->k_gau;
	p->k_feed = b->k_feed;
	p->k_keys = b->k_keys;
	p->k_rgen = b->k_rgen;
	p->k_resets = b->k_resets;
	p->k_gauges = b->k_gauges;
	p->seq = b->status.seq_acked;
	p->seq_known = true;
	b->part[0] = p;
	return 0;
}

struct bpart *bridge_part(struct bridge *b, unsigned slot)
{
	if (!b->parted)
		return b->part[0];
	slot &= SLOT_COUNT - 1;
	if (b->part[slot])
		return b->part[slot];
	const char *mp = b->cf->meta_prefix, *tag = slot_tag(slot);
	const char *what[] = { "s:", "t:", "g:", "feed", "keys", "rgen",
			       "resets", "gauges" };
	size_t room = 0;
	for (int i = 0; i < 8; i++)
		room += strlen(mp) + strlen(tag) + 2 + strlen(what[i]) +
			(i < 3 ? strlen(b->source) : 0) + 1;
	struct bpart *p = calloc(1, sizeof(*p));
	char *q = malloc(room);
	if (!p || !q) {
		free(p);
		free(q);
		return NULL;
	}
	p->names = q;
	const char **dst[] = { &p->k_src, &p->k_tot, &p->k_gau, &p->k_feed,
			       &p->k_keys, &p->k_rgen, &p->k_resets,
			       &p->k_gauges };
	for (int i = 0; i < 8; i++) {
		*dst[i] = q;
		q += sprintf(q, "%s{%s}%s%s", mp, tag, what[i],
			     i < 3 ? b->source : "") + 1;
	}
	p->slot = slot;
	b->part[slot] = p;
	return p;
}

int bridge_parted(struct bridge *b)
{
	if (b->parted)
		return 0;
	if (mode_check(b, true, true) < 0)
		return -1;
	b->layout_checked = true;
	/* Forget the directory: the snapshot meets every name again and
	 * puts its key in the partition of its slot. */
	for (uint32_t i = 0; i < b->max_counters; i++) {
		free(b->keys[i]);
		b->keys[i] = NULL;
		b->keylen[i] = 0;
		b->cpart[i] = 0;
		b->cnext[i] = 0;
		memset(&b->st[i], 0, sizeof(b->st[i]));
	}
	memset(b->flag, 2 /* FL_SKIP */, b->max_counters ? b->max_counters : 1);
	memset(b->kmap, 0, ((size_t)b->kmask + 1) * sizeof(*b->kmap));
	b->nidx = 0;
	b->status.reserved_names = 0;
	parts_free(b);
	b->parted = true;
	names(b);
	if (parts_alloc(b) < 0) {
		blog(SHMSTAT_LOG_ERROR, "out of memory");
		b->refused = true;
		return -1;
	}
	snprintf(b->status.meta_prefix, sizeof(b->status.meta_prefix),
		 "%s{}", b->cf->meta_prefix);
	blog(SHMSTAT_LOG_INFO,
	     "Redis Cluster: the bookkeeping is kept per hash slot (the "
	     "layout of --partition-by-slot)");
	return 0;
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
	snprintf(b->was_mp, sizeof(b->was_mp), "%s", s->meta_prefix);
	b->was_pushed = s->seq_acked != 0;
	/* The layout is known now with --partition-by-slot; without, a
	 * Redis Cluster found at connect may still choose it. */
	if (mode_check(b, cf->partition_by_slot, cf->partition_by_slot) < 0)
		return -1;
	b->layout_checked = cf->partition_by_slot || !b->was_pushed ||
			    !b->was_mp[0];
	/* Counted again by this bridge as it meets them. */
	s->refused_keys = s->reserved_names = 0;
	s->refused_key[0] = s->reserved_name[0] = '\0';
	snprintf(s->source, sizeof(s->source), "%s", b->source);
	if (b->layout_checked)
		snprintf(s->meta_prefix, sizeof(s->meta_prefix), "%s%s", mp,
			 cf->partition_by_slot ? "{}" : "");
	s->host_id = host_id;
	s->interval_ms = cf->interval_ms;

	b->parted = cf->partition_by_slot;
	names(b);
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
	b->cpart = calloc(n, sizeof(*b->cpart));
	b->cnext = calloc(n, sizeof(*b->cnext));
	if (!b->st || !b->keys || !b->keylen || !b->idx || !b->ack ||
	    !b->flag || !b->kmap || !b->cpart || !b->cnext ||
	    parts_alloc(b) < 0) {
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

static void parts_free(struct bridge *b)
{
	if (b->part)
		for (uint32_t i = 0; i < b->nparts_max; i++)
			if (b->part[i]) {
				free(b->part[i]->names);
				free(b->part[i]);
			}
	free(b->part);
	b->part = NULL;
	b->nparts_max = 0;
}

void bridge_fini(struct bridge *b)
{
	conn_fini(b);
	parts_free(b);
	free(b->cpart);
	free(b->cnext);
	free(b->hint);
	b->hint = NULL;
	b->nhint = b->hint_cap = 0;
	b->cpart = NULL;
	b->cnext = NULL;
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
