/*
 * conn.c — the bridge's Redis connection: connect with a timeout (to the
 * address given, or to the master the sentinels name), TLS when asked
 * (tls.c), a timeout on every command, AUTH (password or ACL user) and
 * SELECT after every (re)connect, ROLE checked (a replica is refused), the
 * scripts loaded, and a warning when Redis may evict our keys. Every
 * command of the bridge goes through conn_command / conn_flush /
 * conn_reply, plain or TLS alike. A context that saw any error is
 * discarded: hiredis leaves it unusable.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "bridge_i.h"

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
	return "unexpected reply";
}

void conn_close(struct bridge *b)
{
	tls_close(b);
	b->wrong_role = false;
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
}

static void check_role_error(struct bridge *b, const redisReply *r)
{
	if (r && r->type == REDIS_REPLY_ERROR &&
	    (strncmp(r->str, "READONLY", 8) == 0 ||
	     strncmp(r->str, "MASTERDOWN", 10) == 0))
		b->wrong_role = true;
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

int conn_slot(struct bridge *b, unsigned slot)
{
	(void)slot;
	if (!b->cluster)
		return b->rc ? 0 : -1;
	return -1; /* not built yet: check_cluster refuses a cluster */
}

/* A push is one MULTI over keys of many slots: a Redis Cluster node
 * would refuse it (CROSSSLOT, MOVED). Say so at connect. */
static int check_cluster(struct bridge *b)
{
	const char *argv[] = { "INFO", "cluster" };
	redisReply *r = cmd(b, 2, argv);

	if (!r)
		return -1;
	int ret = 0;
	if (r->type == REDIS_REPLY_STRING &&
	    strstr(r->str, "cluster_enabled:1")) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "Redis %s (%s) is a Redis Cluster node: the bridge "
			     "does not support Redis Cluster (a push is one "
			     "transaction over many slots); use a standalone "
			     "Redis or a Sentinel group (redis+sentinel://)",
			     b->cf->addr, b->node);
		ret = -1;
	}
	freeReplyObject(r);
	return ret;
}

int conn_open(struct bridge *b)
{
	struct bconf *cf = b->cf;
	struct timeval ct = tv_ms(cf->connect_timeout_ms);
	redisContext *c;
	char host[256];
	int port = cf->redis.port;

	conn_close(b);
	snprintf(host, sizeof(host), "%s", cf->redis.host);
	if (cf->redis.master[0]) {
		if (sentinel_master(b, host, sizeof(host), &port) < 0)
			return -1;
	}
	if (cf->redis.path[0])
		snprintf(b->node, sizeof(b->node), "unix:%s", cf->redis.path);
	else
		snprintf(b->node, sizeof(b->node), "%s%s%s:%d",
			 strchr(host, ':') ? "[" : "", host,
			 strchr(host, ':') ? "]" : "", port);
	if (cf->redis.path[0])
		c = redisConnectUnixWithTimeout(cf->redis.path, ct);
	else
		c = redisConnectWithTimeout(host, port, ct);
	if (!c) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "cannot connect to Redis %s: out of memory",
			     cf->addr);
		return -1;
	}
	if (c->err) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "cannot connect to Redis %s%s%s: %s", cf->addr,
			     cf->redis.master[0] ? " at " : "",
			     cf->redis.master[0] ? b->node : "", c->errstr);
		redisFree(c);
		return -1;
	}
	b->rc = c;
	if (cf->redis.tls && tls_start(b, host) < 0)
		goto fail;
	if (redisSetTimeout(c, tv_ms(cf->command_timeout_ms)) != REDIS_OK) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "cannot set the command timeout: %s", c->errstr);
		goto fail;
	}
	if (!cf->redis.path[0])
		redisEnableKeepAlive(c);
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
				     "AUTH%s%s on Redis %s failed: %s",
				     cf->redis.user[0] ? " as user " : "",
				     cf->redis.user, cf->addr,
				     conn_errtext(b, r));
			if (r)
				freeReplyObject(r);
			goto fail;
		}
		freeReplyObject(r);
	}
	if (cf->redis.db != 0) {
		char db[16];
		snprintf(db, sizeof(db), "%d", cf->redis.db);
		const char *argv[] = { "SELECT", db };
		redisReply *r = cmd(b, 2, argv);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			bridge_error(b, SHMSTAT_LOG_ERROR,
				     "SELECT %s on Redis %s failed: %s", db,
				     cf->addr, conn_errtext(b, r));
			if (r)
				freeReplyObject(r);
			goto fail;
		}
		freeReplyObject(r);
	}
	if (check_role(b) < 0 || check_cluster(b) < 0)
		goto fail;
	if (load_script(b, reset_lua, b->reset_sha, "reset") < 0 ||
	    load_script(b, withdraw_lua, b->withdraw_sha, "withdraw") < 0)
		goto fail;
	/* Our knowledge of Redis is void after a reconnect: a call whose
	 * reply we did not read may have run. */
	push_forget(b);
	check_policy(b);
	if (b->rc->err)
		goto fail;
	b->status.connected = 1;
	if (cf->redis.master[0] || cf->redis.tls)
		blog(SHMSTAT_LOG_INFO, "connected to Redis %s (%s%s)", cf->addr,
		     cf->redis.master[0] ? "master at " : "TLS to ", b->node);
	else
		blog(SHMSTAT_LOG_INFO, "connected to Redis %s", cf->addr);
	return 0;
fail:
	conn_close(b);
	return -1;
}
