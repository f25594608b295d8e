/*
 * conn.c — the bridge's Redis connection: connect with a timeout, a
 * timeout on every command, AUTH (password or ACL user) and SELECT after
 * every (re)connect, the scripts loaded, and a warning when Redis may
 * evict our keys. A context that saw any error is discarded: hiredis
 * leaves it unusable.
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
	if (b->rc) {
		redisFree(b->rc);
		b->rc = NULL;
	}
	b->status.connected = 0;
}

/* One command, argv form (binary-safe). NULL on I/O error. */
static redisReply *cmd(struct bridge *b, int argc, const char **argv)
{
	return redisCommandArgv(b->rc, argc, argv, NULL);
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

int conn_open(struct bridge *b)
{
	struct bconf *cf = b->cf;
	struct timeval ct = tv_ms(cf->connect_timeout_ms);
	redisContext *c;

	conn_close(b);
	if (cf->redis.path[0])
		c = redisConnectUnixWithTimeout(cf->redis.path, ct);
	else
		c = redisConnectWithTimeout(cf->redis.host, cf->redis.port, ct);
	if (!c) {
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "cannot connect to Redis %s: out of memory",
			     cf->addr);
		return -1;
	}
	if (c->err) {
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "cannot connect to Redis %s: %s", cf->addr,
			     c->errstr);
		redisFree(c);
		return -1;
	}
	b->rc = c;
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
	blog(SHMSTAT_LOG_INFO, "connected to Redis %s", cf->addr);
	return 0;
fail:
	conn_close(b);
	return -1;
}
