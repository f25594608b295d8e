/*
 * bridge_i.h — what the files of shmstat-bridge share: its configuration,
 * its state, logging, the Redis connection (conn.c) and the sync protocol
 * (push.c). Everything runs in one thread.
 */
#ifndef SHMSTAT_BRIDGE_I_H
#define SHMSTAT_BRIDGE_I_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "redisconf.h"
#include "shmstat.h"

#define BRIDGE_CHUNK 1000 /* counters per script call: keeps each short */

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
	uint64_t owner_ttl_ms;     /* lease on the host id in Redis */
	uint64_t host_id;          /* 0: the segment's */
	bool host_id_set;
	int log_level;             /* SHMSTAT_LOG_* */
	bool once;                 /* push once and exit */
	const char *http;          /* --http [HOST:]PORT, NULL: off */
};

/* Per counter, indexed by directory index: what Redis last accepted. A
 * counter is sent to the push script only while !known or its total
 * differs from acked; otherwise its global value is only read back. */
struct bstate {
	int64_t acked;             /* total Redis last acknowledged */
	bool known;                /* acked is meaningful */
};

struct bridge {
	struct bconf *cf;
	shmstat_t *h;
	redisContext *rc;          /* NULL while disconnected */
	char push_sha[41];
	char reset_sha[41];
	char host_hex[17];
	char host_name[64];
	char token[33];            /* owner token of this segment's bridge */
	uint32_t max_counters;
	struct bstate *st;
	shmstat_sync_status_t status;
	uint64_t dirty_since_ns;   /* first unpushed change, 0 when none */
	bool full_push;            /* Redis lost data: push everything */
	uint64_t fence;            /* last push fence sent (see push.c) */
	int64_t reset_gen;         /* Redis' global-reset generation ... */
	bool reset_gen_known;      /* ... as of our last full push */
	bool no_mget;              /* MGET refused (ACL): refresh with GET */
	uint32_t last_sent;        /* counters sent by the last push */
	uint32_t last_refreshed;   /* global values only read back */
	bool last_full;            /* the last push sent every counter */
	bool refused;              /* host id owned by another bridge */
	uint64_t last_policy_warn_ns;
};

/* log.c */
extern int log_level; /* SHMSTAT_LOG_*: messages above it are dropped */
void blog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Record an error in the status (and log it at `level`). */
void bridge_error(struct bridge *b, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* main.c */
extern volatile sig_atomic_t bridge_stop;

/* conn.c */
/* Connect, AUTH, SELECT, load the scripts, check maxmemory-policy. 0 or -1
 * (error recorded, context freed). */
int conn_open(struct bridge *b);
void conn_close(struct bridge *b);
/* Text of an error: hiredis I/O error or an error reply. */
const char *conn_errtext(const struct bridge *b, const redisReply *r);

/* http.c: the HTTP endpoints, in a thread of libmicrohttpd's. */
int http_start(const char *segment, const char *listen);
void http_stop(void);
/* Main thread, after each push: publish the push metrics. */
void http_record_push(double seconds, bool ok);

/* push.c */
/* Run pending global resets, push the counters Redis has not acknowledged
 * (all of them after a loss), read back the global values of the others.
 * 0 or -1 (on an I/O error the connection is closed). */
int push_all(struct bridge *b);
/* Update the pending count only, for a bridge that cannot push now. */
void push_account(struct bridge *b);
extern const char push_lua[];
extern const char reset_lua[];

#endif
