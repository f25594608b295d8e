/*
 * redisconf.h — where Redis is and how to log in: parsed from a URL
 * (redis://[user:password@]host:port/db, unix:///path?db=N) or from the
 * environment such services already use (REDIS_URL, or REDIS_HOST, REDIS_PORT,
 * REDIS_DB, REDIS_PASSWORD, REDIS_USERNAME). Shared by shmstat-bridge and
 * any tool that talks to the same Redis; no hiredis here.
 */
#ifndef SHMSTAT_REDISCONF_H
#define SHMSTAT_REDISCONF_H

#include <stdbool.h>
#include <stddef.h>

#define REDISCONF_ERR_LEN 256

struct redis_conf {
	char host[256];      /* TCP host; "" with a unix socket */
	int port;            /* TCP port, default 6379 */
	char path[256];      /* unix socket path; "" for TCP */
	int db;              /* SELECT db, default 0 */
	char user[128];      /* ACL user; "" = password only (or none) */
	char password[256];  /* "" = no AUTH */
	int tls;             /* rediss://: TLS to host:port */
	/* redis+sentinel://: the master's name and the sentinels, as
	 * "host:port,host:port"; host/port above are then unused. */
	char master[128];
	char sentinels[512];
	/* redis://h1:p1,h2:p2...: the nodes after the first, as given
	 * ("h2:p2,..."); only a Redis Cluster may be given several. */
	char nodes[512];
	char sentinel_user[128];     /* $REDIS_SENTINEL_USERNAME */
	char sentinel_password[256]; /* $REDIS_SENTINEL_PASSWORD */
};

/* Defaults: 127.0.0.1:6379, db 0, no AUTH. */
void redis_conf_init(struct redis_conf *c);

/*
 * Parse a URL into c (fields not in the URL keep their values). Percent
 * escapes in user and password are decoded. rediss:// is redis:// over
 * TLS; redis://host:port,host:port.../db names several nodes of one Redis
 * Cluster (asked in turn for its map); redis+sentinel://[user:password@]host:port[,host:port...]/MASTER[/db]
 * names the sentinels to ask for MASTER (user and password are the
 * master's). Returns 0, or -1 with a reason in err that never holds the
 * password.
 */
int redis_conf_url(struct redis_conf *c, const char *url, char *err,
		   size_t errlen);

/*
 * Apply the environment: REDIS_URL if set (then REDIS_PASSWORD and
 * REDIS_USERNAME still apply when the URL has none), else REDIS_HOST,
 * REDIS_PORT, REDIS_DB, REDIS_PASSWORD, REDIS_USERNAME. -1 and err on a
 * bad value.
 */
int redis_conf_env(struct redis_conf *c, char *err, size_t errlen);

/*
 * Read the password from a file (one line; a trailing newline is dropped).
 * Refused when group or others have any access to the file, or it is not
 * a regular file. -1 and err (naming the file, never its content).
 */
int redis_conf_password_file(struct redis_conf *c, const char *path,
			     char *err, size_t errlen);

/*
 * Overwrite the password of a URL in place ("redis://u:***@h"), clearing
 * the bytes freed: for the process title. true when there was one.
 */
bool redis_url_hide_password(char *url);

/* "host:port/db" or "unix:path/db": for logs and the status, no password. */
void redis_conf_addr(const struct redis_conf *c, char *buf, size_t len);

#endif
