/*
 * conn.c — the bridge's Redis connection: connect with a timeout (to the
 * address given, or to the master the sentinels name), TLS when asked
 * (tls.c), a timeout on every command, AUTH (password or ACL user) and
 * SELECT after every (re)connect, ROLE checked (a replica is refused), the
 * scripts loaded, and a warning when Redis may evict our keys. A Redis
 * Cluster (any node given) is found by INFO: then one connection per
 * master, each set up alike, and conn_slot() chooses the one a hash
 * slot's commands go to. Every command of the bridge goes through
 * conn_command / conn_flush / conn_reply, plain or TLS alike. A context
 * that saw any error is discarded: hiredis leaves it unusable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "bridge_i.h"
#include "shmstat_i.h"

static struct timeval tv_ms(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	return tv;
}

const char *conn_errtext(const struct bridge *b, const redisReply *r)
{
	if (r && r->type == REDIS_REPLY_ERROR)
		return r->str;
	if (b->rc && b->rc->err)
		return b->rc->errstr[0] ? b->rc->errstr : "I/O error";
	if (!b->rc)
		return b->conn_err[0] ? b->conn_err : "not connected";
	return "unexpected reply";
}

static void cl_close_all(struct bridge *b);

void conn_close(struct bridge *b)
{
	cl_close_all(b);
	tls_close(b);
	b->wrong_role = false;
	b->pushed_conn = false;
	if (b->rc) {
		redisFree(b->rc);
		b->rc = NULL;
	}
	b->status.connected = 0;
}

void conn_fini(struct bridge *b)
{
	conn_close(b);
	tls_fini(b);
	free(b->cl);
	b->cl = NULL;
}

static void check_role_error(struct bridge *b, const redisReply *r)
{
	if (r && r->type == REDIS_REPLY_ERROR &&
	    (strncmp(r->str, "READONLY", 8) == 0 ||
	     strncmp(r->str, "MASTERDOWN", 10) == 0))
		b->wrong_role = true;
	if (r && r->type == REDIS_REPLY_ERROR &&
	    (strncmp(r->str, "MOVED ", 6) == 0 ||
	     strncmp(r->str, "ASK ", 4) == 0 ||
	     strncmp(r->str, "TRYAGAIN", 8) == 0 ||
	     strncmp(r->str, "CLUSTERDOWN", 11) == 0))
		b->moved = true;
}

int conn_flush(struct bridge *b)
{
	int done = 0;

	if (b->tls)
		return tls_flush(b);
	while (!done)
		if (redisBufferWrite(b->rc, &done) != REDIS_OK)
			return -1;
	return 0;
}

redisReply *conn_reply(struct bridge *b)
{
	void *r = NULL;

	if (b->tls)
		r = tls_reply(b);
	else if (redisGetReply(b->rc, &r) != REDIS_OK)
		r = NULL;
	check_role_error(b, r);
	return r;
}

redisReply *conn_command(struct bridge *b, int argc, const char **argv,
			 const size_t *len)
{
	if (redisAppendCommandArgv(b->rc, argc, argv, len) != REDIS_OK)
		return NULL;
	return conn_reply(b);
}

/* One command, argv form (binary-safe). NULL on I/O error. */
static redisReply *cmd(struct bridge *b, int argc, const char **argv)
{
	return conn_command(b, argc, argv, NULL);
}

static int load_script(struct bridge *b, const char *src, char sha[41],
		       const char *what)
{
	const char *argv[] = { "SCRIPT", "LOAD", src };
	redisReply *r = cmd(b, 3, argv);

	if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "SCRIPT LOAD of the %s script failed on %s: %s",
			     what, b->cf->addr, conn_errtext(b, r));
		if (r)
			freeReplyObject(r);
		return -1;
	}
	memcpy(sha, r->str, 40);
	sha[40] = '\0';
	freeReplyObject(r);
	return 0;
}

/* The first commands on a plain TCP connection that the server drops at
 * once: most likely a port that takes TLS only. */
static void tls_hint(struct bridge *b)
{
	if (b->rc && (b->rc->err == REDIS_ERR_EOF ||
	     (b->rc->err == REDIS_ERR_IO && strstr(b->rc->errstr, "reset"))))
		blog(SHMSTAT_LOG_ERROR,
		     "Redis %s closed the connection at its first command: if "
		     "that port takes TLS only, use rediss://",
		     b->cf->addr);
}

/* allkeys-* may evict the bookkeeping keys (and with them exactness);
 * volatile-* only evicts keys with a TTL, and ours have none. */
static void check_policy(struct bridge *b)
{
	const char *argv[] = { "INFO", "memory" };
	redisReply *r = cmd(b, 2, argv);

	if (!r)
		return;
	if (r->type == REDIS_REPLY_STRING) {
		const char *p = strstr(r->str, "maxmemory_policy:");
		if (p) {
			p += strlen("maxmemory_policy:");
			size_t n = strcspn(p, "\r\n");
			if (n > 7 && strncmp(p, "allkeys", 7) == 0)
				blog(SHMSTAT_LOG_WARNING,
				     "Redis %s has maxmemory-policy %.*s: it "
				     "may evict the counters' keys and the "
				     "bridge's bookkeeping under '%s', and then "
				     "totals are no longer exact; use "
				     "noeviction (or a volatile-* policy)",
				     b->cf->addr, (int)n, p,
				     b->cf->meta_prefix);
		}
	}
	freeReplyObject(r);
}

/* A replica accepts reads and refuses every write: refuse it at connect,
 * so "connected" means pushes can succeed. ROLE not allowed (an ACL
 * without it): not checked. */
static int check_role(struct bridge *b)
{
	const char *argv[] = { "ROLE" };
	redisReply *r = cmd(b, 1, argv);

	if (!r) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "the first command on Redis %s (%s) failed: %s",
			     b->cf->addr, b->node, conn_errtext(b, NULL));
		return -1;
	}
	int ret = 0;
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(r->element[0]->str, "master") != 0) {
		const char *role = r->element[0]->str;
		char of[300] = "";
		if (strcmp(role, "slave") == 0 && r->elements >= 3 &&
		    r->element[1]->type == REDIS_REPLY_STRING &&
		    r->element[2]->type == REDIS_REPLY_INTEGER)
			snprintf(of, sizeof(of), " of %s:%lld",
				 r->element[1]->str, r->element[2]->integer);
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "Redis %s (%s) is a %s%s, not a master: it "
			     "refuses writes; %s",
			     b->cf->addr, b->node,
			     strcmp(role, "slave") == 0 ? "replica" : role, of,
			     b->cf->redis.master[0]
				     ? "the sentinels will be asked again"
				     : "point the bridge at the master, or use "
				       "redis+sentinel:// to follow failovers");
		ret = -1;
	} else if (r->type == REDIS_REPLY_ERROR) {
		blog(SHMSTAT_LOG_DEBUG, "ROLE refused by Redis %s (%s): role "
			"not checked", b->cf->addr, r->str);
	}
	freeReplyObject(r);
	return ret;
}

/* ------------------------------------------------------------- cluster
 *
 * A Redis Cluster: the node table (the masters CLUSTER SLOTS names and
 * the slots each serves) lives in b->cl. Every node's connection is set
 * up as the first one is (TLS, AUTH, the scripts); b->rc and
 * b->tls are always the connection of node cl->cur, the one conn_slot()
 * chose last. The table's addresses outlive conn_close(): they are where
 * conn_open() looks for the cluster when the address given is down (its
 * master killed and replaced). */

#define CL_NODES 128

struct cnode {
	char host[256];
	int port;
	redisContext *rc; /* NULL: not connected */
	void *tls;
	uint64_t down_until_ns; /* could not be reached: not tried again
				   before this (monotonic) */
};

struct cltab {
	struct cnode node[CL_NODES];
	int n;
	int cur;                 /* b->rc is node[cur]'s; -1: the seed's */
	uint8_t slot[16384];     /* node index + 1; 0: served by no master */
	unsigned masters;
};

static struct cltab *cltab(struct bridge *b)
{
	if (!b->cl)
		b->cl = calloc(1, sizeof(struct cltab));
	return b->cl;
}

/* Close one connection that is not b's current one. */
static void drop(struct bridge *b, redisContext **rc, void **tls)
{
	redisContext *keep_rc = b->rc;
	void *keep_tls = b->tls;

	b->rc = *rc;
	b->tls = *tls;
	tls_close(b);
	if (b->rc)
		redisFree(b->rc);
	b->rc = keep_rc;
	b->tls = keep_tls;
	*rc = NULL;
	*tls = NULL;
}

static void cl_close_all(struct bridge *b)
{
	struct cltab *t = b->cl;

	if (!t)
		return;
	for (int i = 0; i < t->n; i++) {
		struct cnode *n = &t->node[i];
		if (n->rc == b->rc) {
			n->rc = NULL; /* b's: closed by conn_close */
			n->tls = NULL;
		} else if (n->rc) {
			drop(b, &n->rc, &n->tls);
		}
	}
	t->cur = -1;
}

static void format_node(char *buf, size_t len, const char *host, int port)
{
	bool v6 = strchr(host, ':') != NULL;
	snprintf(buf, len, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
		 port);
}

/* A database other than 0 on a Redis Cluster: an option that cannot
 * work, whatever the retries (the daemon exits 1). */
static void cluster_db_error(struct bridge *b)
{
	bridge_error(b, SHMSTAT_LOG_ERROR,
		     "Redis %s (%s) is a Redis Cluster, which has only "
		     "database 0: drop '/%d' from the URL (or unset REDIS_DB)",
		     b->cf->addr, b->node, b->cf->redis.db);
	b->misconfigured = true;
}

/* Set up the connection just made in b->rc (b->node names it): TLS as
 * `host`, the command timeout, keepalive, AUTH, SELECT, the scripts
 * (ROLE is conn_open's: a cluster's replica may answer CLUSTER SLOTS).
 * 0, or -1 with the error recorded (b->rc left for the caller to
 * close). */
static int node_setup(struct bridge *b, const char *host, bool unix_sock)
{
	struct bconf *cf = b->cf;
	redisContext *c = b->rc;

	if (cf->redis.tls && tls_start(b, host) < 0)
		return -1;
	if (redisSetTimeout(c, tv_ms(cf->command_timeout_ms)) != REDIS_OK) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "cannot set the command timeout: %s", c->errstr);
		return -1;
	}
	if (!unix_sock)
		redisEnableKeepAlive(c);
	if (!cf->redis.tls && !unix_sock) {
		/* The first command of a plain TCP connection: a port that
		 * takes TLS only drops it here (NOAUTH is an answer too). */
		const char *ping[] = { "PING" };
		redisReply *r = cmd(b, 1, ping);
		if (!r) {
			tls_hint(b);
			bridge_error(b, SHMSTAT_LOG_ERROR, "PING on Redis %s (%s) "
				     "failed: %s",
				     cf->addr, b->node, conn_errtext(b, NULL));
			return -1;
		}
		freeReplyObject(r);
	}
	if (cf->redis.password[0]) {
		const char *argv[3] = { "AUTH" };
		int argc = 1;
		if (cf->redis.user[0])
			argv[argc++] = cf->redis.user;
		argv[argc++] = cf->redis.password;
		redisReply *r = cmd(b, argc, argv);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			/* The reply names neither user nor password. */
			bridge_error(b, SHMSTAT_LOG_ERROR,
				     "AUTH%s%s on Redis %s (%s) failed: %s",
				     cf->redis.user[0] ? " as user " : "",
				     cf->redis.user, cf->addr, b->node,
				     conn_errtext(b, r));
			if (r)
				freeReplyObject(r);
			return -1;
		}
		freeReplyObject(r);
	}
	if (cf->redis.db != 0 && !b->cluster) {
		char db[16];
		snprintf(db, sizeof(db), "%d", cf->redis.db);
		const char *argv[] = { "SELECT", db };
		redisReply *r = cmd(b, 2, argv);
		if (r && r->type == REDIS_REPLY_ERROR &&
		    strstr(r->str, "cluster mode")) {
			cluster_db_error(b);
			freeReplyObject(r);
			return -1;
		}
		if (!r || r->type == REDIS_REPLY_ERROR) {
			bridge_error(b, SHMSTAT_LOG_ERROR,
				     "SELECT %s on Redis %s failed: %s", db,
				     cf->addr, conn_errtext(b, r));
			if (r)
				freeReplyObject(r);
			return -1;
		}
		freeReplyObject(r);
	}
	if (load_script(b, reset_lua, b->reset_sha, "reset") < 0 ||
	    load_script(b, withdraw_lua, b->withdraw_sha, "withdraw") < 0)
		return -1;
	return b->rc->err ? -1 : 0;
}

/* Connect b->rc to host:port (or the unix socket path) and set it up.
 * 0, or -1 with the error recorded and b->rc NULL. */
static int node_open(struct bridge *b, const char *host, int port,
		     const char *path)
{
	struct bconf *cf = b->cf;
	struct timeval ct = tv_ms(cf->connect_timeout_ms);
	redisContext *c;

	b->rc = NULL;
	b->tls = NULL;
	if (path)
		snprintf(b->node, sizeof(b->node), "unix:%s", path);
	else
		format_node(b->node, sizeof(b->node), host, port);
	c = path ? redisConnectUnixWithTimeout(path, ct)
		 : redisConnectWithTimeout(host, port, ct);
	if (!c) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "cannot connect to Redis %s: out of memory",
			     cf->addr);
		return -1;
	}
	if (c->err) {
		bool other = cf->redis.master[0] || b->cluster ||
			     cf->redis.nodes[0];
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "cannot connect to Redis %s%s%s: %s", cf->addr,
			     other ? " at " : "", other ? b->node : "",
			     c->errstr);
		snprintf(b->conn_err, sizeof(b->conn_err), "%.260s: %.120s",
			 b->node, c->errstr);
		redisFree(c);
		return -1;
	}
	b->rc = c;
	if (node_setup(b, host, path != NULL) < 0) {
		tls_close(b);
		redisFree(b->rc);
		b->rc = NULL;
		return -1;
	}
	return 0;
}

/* Is b->rc a Redis Cluster node? 1 yes, 0 no, -1 I/O error. */
static int is_cluster(struct bridge *b)
{
	const char *argv[] = { "INFO", "cluster" };
	redisReply *r = cmd(b, 2, argv);

	if (!r)
		return -1;
	int yes = r->type == REDIS_REPLY_STRING &&
		  strstr(r->str, "cluster_enabled:1") != NULL;
	freeReplyObject(r);
	return yes;
}

static int cl_find(struct cltab *t, const char *host, int port)
{
	for (int i = 0; i < t->n; i++)
		if (t->node[i].port == port &&
		    strcmp(t->node[i].host, host) == 0)
			return i;
	return -1;
}

/* Read the slot map from b->rc (CLUSTER SLOTS): the masters, the slots
 * each serves. Connections of nodes still in the table are kept. 0, -1
 * on an I/O error, -2 on a reply we cannot use (recorded). */
static int cl_load(struct bridge *b)
{
	struct cltab *t = cltab(b);
	const char *argv[] = { "CLUSTER", "SLOTS" };

	if (!t) {
		bridge_error(b, SHMSTAT_LOG_ERROR, "out of memory");
		return -2;
	}
	redisReply *r = cmd(b, 2, argv);
	if (!r)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "CLUSTER SLOTS on Redis %s (%s): %s", b->cf->addr,
			     b->node, conn_errtext(b, r));
		freeReplyObject(r);
		return -2;
	}
	memset(t->slot, 0, sizeof(t->slot));
	t->masters = 0;
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER ||
		    e->element[2]->type != REDIS_REPLY_ARRAY ||
		    e->element[2]->elements < 2)
			continue;
		redisReply *m = e->element[2];
		long long lo = e->element[0]->integer;
		long long hi = e->element[1]->integer;
		if (m->element[0]->type != REDIS_REPLY_STRING ||
		    m->element[1]->type != REDIS_REPLY_INTEGER || lo < 0 ||
		    hi > 16383 || lo > hi)
			continue;
		/* An empty address: the node we asked. */
		const char *host = m->element[0]->len ? m->element[0]->str
						      : b->cf->redis.host;
		int port = (int)m->element[1]->integer;
		int k = cl_find(t, host, port);
		if (k < 0) {
			if (t->n == CL_NODES)
				continue;
			k = t->n++;
			memset(&t->node[k], 0, sizeof(t->node[k]));
			snprintf(t->node[k].host, sizeof(t->node[k].host), "%s",
				 host);
			t->node[k].port = port;
			t->masters++;
		} else {
			bool seen = false;
			for (int s = 0; s < 16384 && !seen; s++)
				seen = t->slot[s] == k + 1;
			if (!seen)
				t->masters++;
		}
		memset(t->slot + lo, k + 1, (size_t)(hi - lo + 1));
	}
	freeReplyObject(r);
	unsigned served = 0;
	for (int s = 0; s < 16384; s++)
		served += t->slot[s] != 0;
	if (served == 0) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "Redis Cluster %s serves no hash slot yet (not "
			     "formed: redis-cli --cluster create; or every "
			     "master is down): connecting again later",
			     b->cf->addr);
		return -2;
	}
	if (served < 16384)
		blog(SHMSTAT_LOG_WARNING,
		     "Redis Cluster %s: %u of 16384 slots are served by no "
		     "master (a failover under way, or the cluster is "
		     "incomplete); their counters stay pending",
		     b->cf->addr, 16384 - served);
	return 0;
}

int conn_slot(struct bridge *b, unsigned slot)
{
	struct cltab *t = b->cl;

	if (!b->cluster)
		return b->rc ? 0 : -1;
	if (!b->rc || !t || slot > 16383)
		return -1;
	if (b->moved) {
		/* A redirect: the map is read again from the node at hand. */
		b->moved = false;
		if (cl_load(b) == -1)
			return -1;
	}
	int k = t->slot[slot] - 1;
	if (k < 0) {
		if (!b->moved) {
			snprintf(b->conn_err, sizeof(b->conn_err),
				 "hash slot %u is served by no master (a "
				 "failover under way, or a master without a "
				 "replica is down): its counts stay pending",
				 slot);
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "Redis Cluster %s: %s", b->cf->addr,
				     b->conn_err);
		}
		b->moved = true;
		return -2;
	}
	if (k == t->cur)
		return 0;
	struct cnode *n = &t->node[k];
	if (!n->rc) {
		uint64_t now = shmstat__now_mono_ns();
		if (now < n->down_until_ns)
			return -2;
		/* node[cur] keeps the connection b->rc is now. */
		redisContext *rc = b->rc;
		void *tls = b->tls;
		char node[sizeof(b->node)];
		snprintf(node, sizeof(node), "%s", b->node);
		if (node_open(b, n->host, n->port, NULL) < 0) {
			char why[sizeof(b->conn_err)];
			snprintf(why, sizeof(why), "%s", b->conn_err);
			snprintf(b->conn_err, sizeof(b->conn_err),
				 "the master of hash slot %u cannot be reached "
				 "(%.200s); its slots' counts stay pending "
				 "until it, or its promoted replica, answers",
				 slot, why);
			bridge_error(b, SHMSTAT_LOG_WARNING,
				     "Redis Cluster %s: %s", b->cf->addr,
				     b->conn_err);
			/* The others go on, on the connection they had. */
			b->rc = rc;
			b->tls = tls;
			snprintf(b->node, sizeof(b->node), "%s", node);
			n->down_until_ns = now + b->cf->backoff_max_ms * 1000000u;
			b->moved = true;
			return -2;
		}
		n->down_until_ns = 0;
		n->rc = b->rc;
		n->tls = b->tls;
	}
	b->rc = n->rc;
	b->tls = n->tls;
	t->cur = k;
	format_node(b->node, sizeof(b->node), n->host, n->port);
	return 0;
}

int conn_open(struct bridge *b)
{
	struct bconf *cf = b->cf;
	char host[256];
	int port = cf->redis.port;
	const char *path = cf->redis.path[0] ? cf->redis.path : NULL;

	conn_close(b);
	snprintf(host, sizeof(host), "%s", cf->redis.host);
	if (cf->redis.master[0]) {
		if (sentinel_master(b, host, sizeof(host), &port) < 0)
			return -1;
	}
	bool was_cluster = b->cluster;
	int rc = node_open(b, host, port, path);
	/* The other nodes the URL names, in turn. */
	for (const char *e = cf->redis.nodes; rc < 0 && *e;) {
		size_t n = strcspn(e, ",");
		char h[256];
		int pt = 6379;
		if (n < sizeof(h)) {
			memcpy(h, e, n);
			h[n] = '\0';
			char *colon = strrchr(h, ':');
			if (colon && (h[0] != '[' || colon[-1] == ']')) {
				*colon = '\0';
				pt = atoi(colon + 1);
			}
			char *hp = h;
			if (h[0] == '[' && strlen(h) > 1 && h[strlen(h) - 1] == ']') {
				h[strlen(h) - 1] = '\0';
				hp = h + 1;
			}
			rc = node_open(b, hp, pt, NULL);
			if (rc == 0) {
				snprintf(host, sizeof(host), "%s", hp);
				port = pt;
			}
		}
		e += n + (e[n] == ',');
	}
	if (rc < 0 && was_cluster && b->cl) {
		/* The node given is down (its master killed, a failover):
		 * ask the others of the cluster as we knew it. */
		struct cltab *t = b->cl;
		for (int i = 0; i < t->n && rc < 0; i++) {
			rc = node_open(b, t->node[i].host, t->node[i].port,
				       NULL);
			if (rc == 0) {
				snprintf(host, sizeof(host), "%s",
					 t->node[i].host);
				port = t->node[i].port;
				path = NULL;
			}
		}
	}
	if (rc < 0)
		return -1;
	int cl = is_cluster(b);
	if (cl < 0)
		goto fail;
	b->cluster = cl == 1;
	if (!b->cluster && cf->redis.nodes[0]) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "the Redis URL names several nodes, but %s is not "
			     "a Redis Cluster node: give one address (or use "
			     "redis+sentinel:// for a master and replicas)",
			     b->node);
		b->misconfigured = true;
		goto fail;
	}
	if (b->cluster) {
		if (cf->redis.db != 0) {
			cluster_db_error(b);
			goto fail;
		}
		if (cf->redis.master[0]) {
			bridge_error(b, SHMSTAT_LOG_ERROR,
				     "the sentinels of %s name %s, a Redis "
				     "Cluster node: Sentinel does not manage a "
				     "Cluster; give the address of any node "
				     "of the cluster (redis://HOST:PORT)",
				     cf->addr, b->node);
			goto fail;
		}
		if (cl_load(b) != 0)
			goto fail;
		struct cltab *t = b->cl;
		int k = path ? -1 : cl_find(t, host, port);
		if (k < 0) {
			/* Not a master by this name (a replica, another
			 * address of it): kept for reading the map. */
			if (t->n == CL_NODES) {
				bridge_error(b, SHMSTAT_LOG_ERROR,
					     "Redis Cluster %s: more than %d "
					     "nodes", cf->addr, CL_NODES);
				goto fail;
			}
			k = t->n++;
			memset(&t->node[k], 0, sizeof(t->node[k]));
			snprintf(t->node[k].host, sizeof(t->node[k].host),
				 "%s", path ? path : host);
			t->node[k].port = path ? 0 : port;
		}
		t->node[k].rc = b->rc;
		t->node[k].tls = b->tls;
		t->cur = k;
	} else if (check_role(b) < 0) {
		goto fail;
	}
	/* Our knowledge of Redis is void after a reconnect: a call whose
	 * reply we did not read may have run. */
	push_forget(b);
	check_policy(b);
	if (b->rc->err)
		goto fail;
	b->status.connected = 1;
	b->conn_err[0] = '\0';
	if (b->cluster)
		blog(SHMSTAT_LOG_INFO,
		     "connected to Redis Cluster %s (%u masters; asked %s)",
		     cf->addr, ((struct cltab *)b->cl)->masters, b->node);
	else if (cf->redis.master[0] || cf->redis.tls)
		blog(SHMSTAT_LOG_INFO, "connected to Redis %s (%s%s)", cf->addr,
		     cf->redis.master[0] ? "master at " : "TLS to ", b->node);
	else
		blog(SHMSTAT_LOG_INFO, "connected to Redis %s", cf->addr);
	return 0;
fail:
	conn_close(b);
	return -1;
}
