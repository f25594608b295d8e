/*
 * bridge_i.h — what the files of shmstat-bridge share: its configuration,
 * its state, logging, the Redis connection (conn.c) and the sync protocol
 * (push.c). Everything runs in one thread. The daemon (main.c), its tests
 * and bench/bench_sync.c set a bridge up with bridge_init() and tear it
 * down with bridge_fini().
 */
#ifndef SHMSTAT_BRIDGE_I_H
#define SHMSTAT_BRIDGE_I_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "redisconf.h"
#include "shmstat.h"

#define BRIDGE_CHUNK 1000  /* keys per command: keeps each short */
#define BRIDGE_GROUP 10000 /* counters per transaction: bounds memory */

struct bconf {
	const char *segment;
	struct redis_conf redis;
	char addr[300];            /* redis_conf_addr(): no password */
	const char *key_prefix;    /* prepended to counter names; "" */
	const char *meta_prefix;   /* bookkeeping keys; "_shmstat:" */
	const char *pidfile;
	uint64_t interval_ms;      /* 1000 */
	uint64_t connect_timeout_ms;
	uint64_t command_timeout_ms;
	uint64_t backoff_min_ms;
	uint64_t backoff_max_ms;
	uint64_t owner_ttl_ms;     /* lease on the source in Redis */
	uint64_t gauge_expiry_ms;  /* withdraw gauges of sources whose lease
				      expired that long ago (300 s) */
	uint64_t host_id;          /* 0: the segment's */
	bool host_id_set;
	int log_level;             /* SHMSTAT_LOG_* */
	bool once;                 /* push once and exit */
	const char *http;          /* --http [HOST:]PORT, NULL: off */
	/* TLS (rediss://): NULL = not given. */
	const char *tls_ca_file, *tls_ca_dir;
	const char *tls_cert, *tls_key;
	const char *tls_server_name; /* default: the host connected to */
	bool tls_no_verify;        /* --tls-no-verify: explicit opt-out */
	bool partition_by_slot;    /* --partition-by-slot: the Cluster's
				      bookkeeping layout (push.c) */
};

/* The bookkeeping of one Redis Cluster hash slot: a PARTITION (push.c).
 * Partitioned (b->parted), every counter key belongs to the partition of
 * its slot, whose bookkeeping keys carry a hash tag of that slot;
 * otherwise there is one partition with the untagged names. Key names
 * point into one block (partitioned) or at struct bridge's k_* fields. */
struct bpart {
	unsigned slot;
	const char *k_src, *k_tot, *k_gau, *k_feed, *k_keys, *k_rgen;
	const char *k_resets, *k_gauges;
	char *names;               /* the block, NULL: not ours to free */
	uint64_t seq;              /* M s:S's seq as we wrote it last */
	uint64_t feed_ms, feed_seq; /* feed entry id read up to */
	uint64_t swept_ms;         /* Redis' clock when its feed was read */
	bool feed_known;
	uint64_t rgen_known;       /* reset generation applied up to */
	bool rgen_valid;
	bool seq_known;            /* seq was read since the start */
	bool in_parts;             /* in M parts and M p:S (partitioned) */
	bool need;                 /* run its transaction this push (a reset
				      or a trimmed feed seen in its feed) */
	bool refreshed;            /* this push read all its values */
	bool sweep, hinted;        /* this push reads its feed / the values
				      the home feed named */
	uint32_t first;            /* its first counter + 1 (b->cnext), 0 */
};

/* Per counter, indexed by directory index: what this source's bookkeeping
 * in Redis holds for the counter's key (struct in push.c's comment). */
struct bstate {
	int64_t acked;             /* T: total (gauge: value) Redis holds */
	int64_t base;              /* B: total when the last reset applied */
	int64_t mbase;             /* B as mirrored in the segment */
	uint64_t gen;              /* G: that reset's generation in Redis */
	uint64_t rgen;             /* newest reset of the key we know of */
	uint8_t known;             /* acked/base/gen mirror Redis */
	uint8_t kind;              /* SHMSTAT_KIND_* at the last snapshot */
	uint8_t refused;           /* Redis refused the key last time */
	uint8_t reserved_name;     /* key under the meta prefix: never sent */
	uint8_t in_redis;          /* Redis holds a field for the key */
	uint8_t tried;             /* push_no when Redis last refused it */
	uint8_t hinted;            /* partitioned: another source changed it
				      (M{home}feed): read its value */
	uint8_t pad[1];
};

struct bridge {
	struct bconf *cf;
	shmstat_t *h;
	/* The segment's file at init (st_dev, st_ino; seg_ino 0: unknown). */
	uint64_t seg_dev, seg_ino;
	redisContext *rc;          /* NULL while disconnected */
	void *tls;                 /* SSL * of rc (rediss://), else NULL */
	void *tls_ctx;             /* SSL_CTX *, made at the first connect */
	bool tls_cert_asked;       /* the server asked for a client
				      certificate and we have none */
	char node[300];            /* host:port connected to (Sentinel: the
				      master it named) */
	unsigned sentinel_next;    /* the sentinel asked first next time */
	bool wrong_role;           /* a reply said READONLY / not a master:
				      reconnect (and ask Sentinel again) */
	/* Redis Cluster (conn.c): b->rc and b->tls are the connection of
	 * the node conn_slot() chose last; the others are kept in cl. */
	bool cluster;              /* connected to a Redis Cluster */
	bool moved;                /* a reply said MOVED/ASK/TRYAGAIN/
				      CLUSTERDOWN: the slot map is read
				      again at the next conn_slot() */
	void *cl;                  /* conn.c's node table, NULL: none */
	char conn_err[400];        /* why the last connection failed (no
				      password): what conn_errtext() says
				      while disconnected */
	char reset_sha[41];
	char withdraw_sha[41];
	char host_hex[17];
	char host_name[64];
	char source[40];           /* "<host id>.<nonce>", both 16 hex */
	char token[33];            /* owner token of this source's bridge */
	char old_token[33];        /* what the host-keyed protocol used */
	bool migrate_checked;      /* looked for host-keyed bookkeeping */
	/* Bookkeeping key names (meta prefix + ...). */
	char k_src[160], k_tot[160], k_gau[160], k_inc[300];
	char k_sources[96], k_feed[96], k_keys[96], k_rgen[96];
	char k_resets[96], k_gauges[96];
	uint32_t max_counters;
	struct bstate *st;
	char **keys;               /* per index: key-prefix + name, or NULL */
	uint32_t *keylen;
	shmstat_sync_status_t status;
	uint64_t dirty_since_ns;   /* first unpushed change, 0 when none */
	uint64_t redis_ms;         /* Redis' clock at the last push */
	bool started;              /* the incarnation check ran */
	bool no_mget;              /* MGET refused (ACL): refresh with GET */
	uint32_t last_sent;        /* counters sent by the last push */
	uint32_t last_refreshed;   /* global values only read back */
	bool last_full;            /* the last push read every field */
	bool refused;              /* the source is owned or retired */
	bool pushed_conn;          /* a push on this connection succeeded
				      (its sequence checked, a Redis that
				      lost writes repaired): a pending
				      global reset may run */
	bool misconfigured;        /* refused for an option that cannot
				      work (exit 1, not 3): a meta prefix
				      with braces in the per-slot layout,
				      a database other than 0 on a Redis
				      Cluster */
	bool reset_seen;           /* a push learnt of a reset */
	uint8_t push_no;           /* pushes, modulo 256 */
	/* What the snapshot compares with, compact: a counter is in step
	 * with Redis when (flag & FL_CLEAN) and its total is ack[]; FL_SKIP:
	 * never sent (reserved name); FL_GAUGE: a gauge. Kept by settle()
	 * in push.c from struct bstate. */
	int64_t *ack;
	uint8_t *flag;
	uint32_t *idx;             /* directory indexes in use, in order */
	uint32_t *kmap;            /* Redis key -> index + 1 (open addressing) */
	uint32_t kmask;            /* kmap slots - 1 */
	uint32_t nidx;
	/* Partitions (push.c): parted = --partition-by-slot or a cluster.
	 * part[] is indexed by slot (partitioned; NULL until a counter of
	 * the slot is met) or holds part[0] only; cpart[x] is counter x's
	 * index in part[], cnext[x] the next counter of its partition + 1. */
	bool parted;
	struct bpart **part;
	uint32_t nparts_max;       /* 16384 or 1 */
	uint16_t *cpart;
	uint32_t *cnext;
	char k_parts[96];          /* M{home}parts: slots any source wrote */
	char k_pset[160];          /* M{home}p:S: slots this source wrote */
	uint32_t parts_added;      /* slots of ours in M{home}p:S */
	uint64_t reset_id, reset_n; /* the reset being run, keys reset */
	/* The home feed (M{home}feed): hints of what changed where. */
	uint64_t hfeed_ms, hfeed_seq;
	bool hfeed_known;
	bool home_written;         /* our home record was written */
	bool sweep_all;            /* read every slot's feed this push */
	uint32_t sweep_next;       /* the slot the next sweep starts at */
	uint32_t *hint;            /* keys this push changed (indexes) */
	size_t nhint, hint_cap;
	/* The layout the segment's status recorded at init (bridge.c):
	 * checked when known (a cluster is found at connect). */
	char was_mp[64];
	bool was_pushed;
	bool layout_checked;
};

/* log.c */
extern int log_level; /* SHMSTAT_LOG_*: messages above it are dropped */
void blog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append the cause and next step to a known Redis/hiredis error text. */
void log_explain(char *msg, size_t size);
/* stderr goes to the journal ($JOURNAL_STREAM): "<N>" prefixes. */
bool log_journal(void);
/* Record an error in the status (and log it at `level`). */
void bridge_error(struct bridge *b, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* main.c */
extern volatile sig_atomic_t bridge_stop;

/* bridge.c */
/* Defaults of every option (what the daemon uses without flags). */
void bconf_defaults(struct bconf *cf);
/* Set up b for segment h with configuration cf (kept by pointer): the
 * source id, owner token, key names, per-counter state, the status read
 * from the segment. 0, or -1 with a message logged; b->refused when the
 * segment's status shows the configuration changed in a way that would
 * double-count (see push.c). */
int bridge_init(struct bridge *b, struct bconf *cf, shmstat_t *h);
void bridge_fini(struct bridge *b);
/* Is the segment's name no longer the segment this bridge serves (removed,
 * or given to a new segment: `shmstat destroy && shmstat create`, a new
 * source)? One stat() of its file. */
bool bridge_segment_moved(const struct bridge *b);

/* conn.c */
/* Connect, AUTH, SELECT, load the scripts, check maxmemory-policy. 0 or -1
 * (error recorded, context freed). The one place that knows the transport
 * (TCP, unix socket or TLS; the master Sentinel names; the masters of a
 * Redis Cluster). */
int conn_open(struct bridge *b);
void conn_close(struct bridge *b);
/* Text of an error: hiredis I/O error or an error reply. */
const char *conn_errtext(const struct bridge *b, const redisReply *r);
/* The I/O every command goes through (plain or TLS): one command and its
 * reply; write what redisAppendCommandArgv queued; the next reply. NULL /
 * -1 on I/O error (the context is then unusable: close it). An error
 * reply saying the server is not a master (READONLY, wrong role) sets
 * b->wrong_role. */
redisReply *conn_command(struct bridge *b, int argc, const char **argv,
			 const size_t *len);
int conn_flush(struct bridge *b);
redisReply *conn_reply(struct bridge *b);
/* Free the TLS context at bridge_fini. */
void conn_fini(struct bridge *b);
/* Redis Cluster: make b->rc (and b->tls) the connection of the master
 * that serves hash slot `slot` (0..16383), connecting to it when needed.
 * 0; -2 when that master cannot be reached now or no master serves the
 * slot (b->rc stays the connection it was: the other slots can go on;
 * the node is not tried again for --backoff-max, the map is read again);
 * -1 on an I/O error (treat as any I/O error: conn_close closes every
 * node's connection). Without a cluster: nothing to do, 0. */
int conn_slot(struct bridge *b, unsigned slot);

/* tls.c: OpenSSL under hiredis 0.14 (see the file's comment). */
/* Build the TLS context from the options now: 0, or -1 with the error
 * recorded (a bad CA, certificate or key file). */
int tls_check(struct bridge *b);
/* Handshake on b->rc's socket, verifying the server as `host` (or
 * --tls-server-name). 0, or -1 with a message saying what failed. */
int tls_start(struct bridge *b, const char *host);
void tls_close(struct bridge *b);
void tls_fini(struct bridge *b);
int tls_flush(struct bridge *b);
redisReply *tls_reply(struct bridge *b);

/* sentinel.c: where the master is. */
/* Ask the sentinels of cf->redis.sentinels for cf->redis.master's address.
 * 0 with host/port set, or -1 with a message recorded. */
int sentinel_master(struct bridge *b, char *host, size_t hostlen, int *port);

/* http.c: the HTTP endpoints, in a thread of libmicrohttpd's. */
int http_start(const char *segment, const char *listen);
void http_stop(void);
/* Main thread, after each push: publish the push metrics. */
void http_record_push(double seconds, bool ok);

/* push.c */
/* Run pending global resets, push what Redis has not acknowledged, read
 * back the global values of what other sources changed. 0 or -1 (on an
 * I/O error the connection is closed). */
int push_all(struct bridge *b);
/* Update the pending count only, for a bridge that cannot push now. */
void push_account(struct bridge *b);
/* Clean stop: withdraw this source's gauges from the sums. 0 or -1. */
int push_withdraw(struct bridge *b);
/* Forget what Redis holds (after a reconnect): everything is read again. */
void push_forget(struct bridge *b);

/* slot.c: Redis Cluster's key slots. */
#define SLOT_COUNT 16384u
/* The hash slot of a key: CRC16 (XMODEM) of the key, or of the first
 * non-empty {...} in it, modulo 16384, as Redis computes it. */
unsigned slot_of(const void *key, size_t len);
/* A short string ([0-9a-z], at most 4 bytes) whose slot is `slot`: the
 * hash tag of that slot's bookkeeping keys. */
const char *slot_tag(unsigned slot);
/* The tag of the keys that are about no one slot (sources, incarnations,
 * M parts): "home". */
#define SLOT_HOME_TAG "home"

/* bridge.c */
/* Switch b to the partitioned layout (a cluster found at connect):
 * 0, or -1 refused (logged; b->refused). */
int bridge_parted(struct bridge *b);
/* Check the layout against the one the segment was pushed in (once,
 * before the first push): 0, or -1 refused (logged; b->refused). */
int bridge_layout_check(struct bridge *b);
/* The partition of slot s (made on first use), NULL: out of memory. */
struct bpart *bridge_part(struct bridge *b, unsigned s);

/* lua.c, generated from lua/ *.lua at build time */
extern const char reset_lua[];
extern const char withdraw_lua[];

#endif
