/*
 * sentinel.c — where the master is, from Redis Sentinel. At every
 * (re)connect the bridge asks the sentinels of the redis+sentinel:// URL in
 * turn, starting with the one that answered last: SENTINEL
 * get-master-addr-by-name MASTER. conn.c then connects there and checks
 * ROLE, so a stale answer (a sentinel that has not seen the failover yet)
 * is refused and asked again after the backoff. A failover is followed
 * without a restart: the old master's connection fails (or answers
 * READONLY once it is demoted), the bridge reconnects and asks again.
 * Sentinels are asked over plain TCP, with AUTH when
 * $REDIS_SENTINEL_PASSWORD (and $REDIS_SENTINEL_USERNAME) are set; each
 * one bounded by the connect and command timeouts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "bridge_i.h"

static struct timeval tv_ms(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	return tv;
}

/* The i-th "host:port" of the list; false past the end. */
static bool nth(const char *list, unsigned i, char *host, size_t hostlen,
		int *port)
{
	const char *e = list;

	for (unsigned k = 0; k < i; k++) {
		e = strchr(e, ',');
		if (!e)
			return false;
		e++;
	}
	size_t n = strcspn(e, ",");
	const char *colon = NULL;
	for (const char *s = e; s < e + n; s++)
		if (*s == ':')
			colon = s;
	size_t hn = colon ? (size_t)(colon - e) : n;
	if (hn && e[0] == '[' && e[hn - 1] == ']') {
		e++;
		hn -= 2;
	}
	if (hn >= hostlen)
		hn = hostlen - 1;
	memcpy(host, e, hn);
	host[hn] = '\0';
	*port = colon ? atoi(colon + 1) : 26379;
	return true;
}

static unsigned count(const char *list)
{
	unsigned n = 1;

	for (const char *s = list; *s; s++)
		n += *s == ',';
	return n;
}

/* Ask one sentinel. 1: found; 0: it does not know; -1: unreachable. */
static int ask(struct bridge *b, const char *sh, int sp, char *host,
	       size_t hostlen, int *port, char *why, size_t whylen)
{
	const struct bconf *cf = b->cf;
	redisContext *c = redisConnectWithTimeout(
		sh, sp, tv_ms(cf->connect_timeout_ms));
	redisReply *r = NULL;
	int ret = -1;

	if (!c) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if (c->err) {
		snprintf(why, whylen, "%s", c->errstr);
		goto out;
	}
	redisSetTimeout(c, tv_ms(cf->command_timeout_ms));
	if (cf->redis.sentinel_password[0]) {
		const char *argv[3] = { "AUTH" };
		int argc = 1;
		if (cf->redis.sentinel_user[0])
			argv[argc++] = cf->redis.sentinel_user;
		argv[argc++] = cf->redis.sentinel_password;
		r = redisCommandArgv(c, argc, argv, NULL);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "AUTH failed: %s",
				 r ? r->str : c->errstr);
			goto out;
		}
		freeReplyObject(r);
	}
	const char *argv[] = { "SENTINEL", "get-master-addr-by-name",
			       cf->redis.master };
	r = redisCommandArgv(c, 3, argv, NULL);
	if (!r) {
		snprintf(why, whylen, "%s", c->errstr);
		goto out;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(why, whylen, "%s", r->str);
		goto out;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(why, whylen, "it knows no master named '%s'",
			 cf->redis.master);
		ret = 0;
		goto out;
	}
	snprintf(host, hostlen, "%s", r->element[0]->str);
	*port = atoi(r->element[1]->str);
	ret = 1;
out:
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return ret;
}

int sentinel_master(struct bridge *b, char *host, size_t hostlen, int *port)
{
	const char *list = b->cf->redis.sentinels;
	unsigned n = count(list);
	char why[256] = "", sh[256];
	int sp;

	for (unsigned k = 0; k < n; k++) {
		unsigned i = (b->sentinel_next + k) % n;
		if (!nth(list, i, sh, sizeof(sh), &sp))
			continue;
		int rc = ask(b, sh, sp, host, hostlen, port, why, sizeof(why));
		if (rc == 1) {
			b->sentinel_next = i;
			blog(SHMSTAT_LOG_DEBUG,
			     "sentinel %s:%d: master '%s' is at %s:%d", sh, sp,
			     b->cf->redis.master, host, *port);
			return 0;
		}
		blog(SHMSTAT_LOG_DEBUG, "sentinel %s:%d: %s", sh, sp, why);
	}
	bridge_error(b, SHMSTAT_LOG_WARNING,
		     "no sentinel of %s named master '%s' (last: %s)",
		     b->cf->addr, b->cf->redis.master, why);
	return -1;
}
