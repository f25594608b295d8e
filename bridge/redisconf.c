/*
 * redisconf.c — parse where Redis is (see redisconf.h). Bad input gets a
 * reason that names the bad part; the password never appears in one.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redisconf.h"

void redis_conf_init(struct redis_conf *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->host, "127.0.0.1");
	c->port = 6379;
}

static int fail(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Decode s[0..n) with %XX escapes into out; -1 when bad or too long. */
static int decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];
		if (ch == '%') {
			int a, b;
			if (i + 2 >= n)
				return -1;
			a = hexval((unsigned char)s[i + 1]);
			b = hexval((unsigned char)s[i + 2]);
			if (a < 0 || b < 0)
				return -1;
			ch = a * 16 + b;
			i += 2;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return 0;
}

static int parse_int(const char *s, size_t n, long min, long max, int *out)
{
	char buf[32], *end;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)buf[i]))
			return -1;
	errno = 0;
	long v = strtol(buf, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* Parse "user:password@" (either part may be empty). */
static int parse_userinfo(struct redis_conf *c, const char *s, size_t n,
			  char *err, size_t errlen)
{
	const char *colon = memchr(s, ':', n);
	size_t ulen = colon ? (size_t)(colon - s) : n;

	if (decode(s, ulen, c->user, sizeof(c->user)) < 0)
		return fail(err, errlen,
			    "bad user name in the Redis URL (bad %%-escape or "
			    "longer than %zu bytes)",
			    sizeof(c->user) - 1);
	if (colon) {
		/* %XX escapes are decoded; a password with a '%' that starts
		 * no escape was pasted as it is, and is taken so. */
		const char *pw = colon + 1;
		size_t pl = n - ulen - 1;
		if (decode(pw, pl, c->password, sizeof(c->password)) < 0) {
			if (pl >= sizeof(c->password))
				return fail(err, errlen,
					    "password in the Redis URL longer "
					    "than %zu bytes",
					    sizeof(c->password) - 1);
			memcpy(c->password, pw, pl);
			c->password[pl] = '\0';
		}
	}
	return 0;
}

/* "?db=N" query of a unix:// URL; other parameters are refused. */
static int parse_query(struct redis_conf *c, const char *q, char *err,
		       size_t errlen)
{
	if (strncmp(q, "db=", 3) != 0 ||
	    parse_int(q + 3, strlen(q + 3), 0, 1 << 20, &c->db) < 0)
		return fail(err, errlen,
			    "bad query in the Redis URL (only ?db=N is "
			    "understood)");
	return 0;
}

/* A list "host:port,host:port..." in [p, end): each entry a host and
 * an optional port. 0, or -1 with err naming the bad entry (`what`). */
static int check_hostports(const char *p, const char *end, const char *what,
			   char *err, size_t errlen)
{
	for (const char *e = p; e <= end;) {
		const char *comma = memchr(e, ',', (size_t)(end - e));
		const char *ee = comma ? comma : end;
		const char *colon = NULL;
		for (const char *s = e; s < ee; s++)
			if (*s == ':')
				colon = s;
		int port;
		if (ee == e || colon == e ||
		    (colon && parse_int(colon + 1, (size_t)(ee - colon - 1), 1,
					65535, &port) < 0))
			return fail(err, errlen,
				    "bad %s '%.*s' in the Redis URL "
				    "(host:port)",
				    what, (int)(ee - e > 60 ? 60 : ee - e), e);
		if (!comma)
			break;
		e = comma + 1;
	}
	return 0;
}

/* redis+sentinel://[user:password@]host:port[,host:port...]/MASTER[/db] */
static int parse_sentinel(struct redis_conf *c, const char *p, char *err,
			  size_t errlen)
{
	const char *slash = strchr(p, '/');
	const char *at = NULL;

	if (!slash)
		return fail(err, errlen,
			    "redis+sentinel:// URL needs the master's name: "
			    "redis+sentinel://host:port[,host:port...]/MASTER");
	for (const char *s = p; s < slash; s++)
		if (*s == '@')
			at = s;
	if (at) {
		if (parse_userinfo(c, p, (size_t)(at - p), err, errlen) < 0)
			return -1;
		p = at + 1;
	}
	size_t n = (size_t)(slash - p);
	if (n == 0)
		return fail(err, errlen,
			    "redis+sentinel:// URL names no sentinel");
	if (n >= sizeof(c->sentinels))
		return fail(err, errlen, "sentinel list longer than %zu bytes",
			    sizeof(c->sentinels) - 1);
	/* Each entry host:port (port default 26379). */
	if (check_hostports(p, slash, "sentinel", err, errlen) < 0)
		return -1;
	memcpy(c->sentinels, p, n);
	c->sentinels[n] = '\0';
	const char *m = slash + 1;
	const char *mend = m + strcspn(m, "/?");
	if (mend == m || (size_t)(mend - m) >= sizeof(c->master))
		return fail(err, errlen,
			    "redis+sentinel:// URL needs the master's name "
			    "(1 to %zu bytes) after the sentinels",
			    sizeof(c->master) - 1);
	memcpy(c->master, m, (size_t)(mend - m));
	c->master[mend - m] = '\0';
	if (*mend == '/' && mend[1]) {
		const char *db = mend + 1;
		if (parse_int(db, strlen(db), 0, 1 << 20, &c->db) < 0)
			return fail(err, errlen,
				    "bad database '%.20s' in the Redis URL (a "
				    "number)",
				    db);
	} else if (*mend == '?')
		return fail(err, errlen,
			    "bad query '%.40s' in the Redis URL (none is "
			    "understood after the master's name)",
			    mend);
	c->tls = 0;
	c->path[0] = '\0';
	c->nodes[0] = '\0';
	return 0;
}

int redis_conf_url(struct redis_conf *c, const char *url, char *err,
		   size_t errlen)
{
	const char *p;

	if (!url || !*url)
		return fail(err, errlen, "empty Redis URL");
	if (strncmp(url, "redis+sentinel://", 17) == 0)
		return parse_sentinel(c, url + 17, err, errlen);
	c->tls = strncmp(url, "rediss://", 9) == 0;
	c->master[0] = '\0';
	if (strncmp(url, "unix://", 7) == 0) {
		p = url + 7;
		/* The last '@': a password may hold '@', '/', '?' or '#'
		 * unencoded; a socket path never holds '@'. */
		const char *at = strrchr(p, '@');
		if (at) {
			if (parse_userinfo(c, p, (size_t)(at - p), err,
					   errlen) < 0)
				return -1;
			p = at + 1;
		}
		const char *q = strchr(p, '?');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n == 0 || p[0] != '/')
			return fail(err, errlen,
				    "unix:// Redis URL needs an absolute socket "
				    "path (unix:///path/to/redis.sock)");
		if (n >= sizeof(c->path))
			return fail(err, errlen,
				    "unix socket path longer than %zu bytes",
				    sizeof(c->path) - 1);
		memcpy(c->path, p, n);
		c->path[n] = '\0';
		c->host[0] = '\0';
		c->nodes[0] = '\0';
		c->tls = 0;
		c->master[0] = '\0';
		if (q && parse_query(c, q + 1, err, errlen) < 0)
			return -1;
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0 && !c->tls) {
		const char *colon = strstr(url, "://");
		size_t sl = colon ? (size_t)(colon - url) : 0;
		/* Name the scheme only when it looks like one: text before
		 * "://" could be a password pasted without one. */
		if (sl && sl <= 16 && strspn(url, "abcdefghijklmnopqrstuvwxyz"
						  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
						  "0123456789+.-") == sl)
			return fail(err, errlen,
				    "unsupported Redis URL scheme '%.*s': use "
				    "redis://[user:password@]host:port/db, "
				    "rediss:// (TLS), "
				    "redis+sentinel://host:port,.../MASTER or "
				    "unix:///path",
				    (int)sl, url);
		return fail(err, errlen,
			    "not a Redis URL (no scheme): use "
			    "redis://[user:password@]host:port/db, rediss:// "
			    "(TLS), redis+sentinel://host:port,.../MASTER or "
			    "unix:///path");
	}
	p = url + (c->tls ? 9 : 8);
	/* The last '@' of the whole URL ends the user information: a
	 * password may hold '@', '/', '?', '#' or ':' unencoded, and host,
	 * port, db and query never hold '@'. */
	const char *at = strrchr(p, '@');
	if (at) {
		if (parse_userinfo(c, p, (size_t)(at - p), err, errlen) < 0)
			return -1;
		p = at + 1;
	}
	const char *end = p + strcspn(p, "/?");
	/* More nodes after a ',' (a Redis Cluster's: where to ask for its
	 * map when the first is down): kept as given, checked here. */
	const char *comma = memchr(p, ',', (size_t)(end - p));
	c->nodes[0] = '\0';
	if (comma) {
		if (check_hostports(comma + 1, end, "node", err, errlen) < 0)
			return -1;
		size_t nl = (size_t)(end - comma - 1);
		if (nl >= sizeof(c->nodes))
			return fail(err, errlen,
				    "node list longer than %zu bytes",
				    sizeof(c->nodes) - 1);
		memcpy(c->nodes, comma + 1, nl);
		c->nodes[nl] = '\0';
	}
	const char *hpend = comma ? comma : end;
	/* host[:port], host may be [v6] */
	const char *hend, *port = NULL;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(hpend - p));
		if (!rb)
			return fail(err, errlen,
				    "unclosed '[' in the Redis URL host");
		p++;
		hend = rb;
		if (rb + 1 < hpend) {
			if (rb[1] != ':')
				return fail(err, errlen,
					    "bad text after ']' in the Redis "
					    "URL");
			port = rb + 2;
		}
	} else {
		const char *colon = memchr(p, ':', (size_t)(hpend - p));
		hend = colon ? colon : hpend;
		if (colon)
			port = colon + 1;
	}
	size_t hlen = (size_t)(hend - p);
	if (hlen >= sizeof(c->host))
		return fail(err, errlen, "Redis host name too long");
	if (hlen) {
		memcpy(c->host, p, hlen);
		c->host[hlen] = '\0';
	}
	if (port && parse_int(port, (size_t)(hpend - port), 1, 65535,
			      &c->port) < 0)
		/* Not echoed: with an '@' missing, it may be a password. */
		return fail(err, errlen,
			    "bad port in the Redis URL (a number 1-65535)");
	c->path[0] = '\0';
	if (*end == '/') {
		const char *db = end + 1;
		const char *q = strchr(db, '?');
		size_t n = q ? (size_t)(q - db) : strlen(db);
		if (n && parse_int(db, n, 0, 1 << 20, &c->db) < 0)
			return fail(err, errlen,
				    "bad database in the Redis URL (a number "
				    "after the '/')");
		end = q ? q : db + n;
	}
	if (*end == '?')
		return parse_query(c, end + 1, err, errlen);
	return 0;
}

int redis_conf_env(struct redis_conf *c, char *err, size_t errlen)
{
	const char *v;

	if ((v = getenv("REDIS_URL")) && *v) {
		if (redis_conf_url(c, v, err, errlen) < 0)
			return -1;
	} else {
		if ((v = getenv("REDIS_HOST")) && *v) {
			if (strlen(v) >= sizeof(c->host))
				return fail(err, errlen,
					    "REDIS_HOST is too long");
			if (v[0] == '/') {
				strcpy(c->path, v);
				c->host[0] = '\0';
			} else {
				strcpy(c->host, v);
				c->path[0] = '\0';
			}
		}
		if ((v = getenv("REDIS_PORT")) && *v &&
		    parse_int(v, strlen(v), 1, 65535, &c->port) < 0)
			return fail(err, errlen,
				    "REDIS_PORT must be 1-65535, not '%.20s'",
				    v);
		if ((v = getenv("REDIS_DB")) && *v &&
		    parse_int(v, strlen(v), 0, 1 << 20, &c->db) < 0)
			return fail(err, errlen,
				    "REDIS_DB must be a number, not '%.20s'",
				    v);
	}
	if (!c->password[0] && (v = getenv("REDIS_PASSWORD")) && *v) {
		if (strlen(v) >= sizeof(c->password))
			return fail(err, errlen, "REDIS_PASSWORD is too long");
		strcpy(c->password, v);
	}
	if (!c->user[0] && (v = getenv("REDIS_USERNAME")) && *v) {
		if (strlen(v) >= sizeof(c->user))
			return fail(err, errlen, "REDIS_USERNAME is too long");
		strcpy(c->user, v);
	}
	if ((v = getenv("REDIS_SENTINEL_PASSWORD")) && *v) {
		if (strlen(v) >= sizeof(c->sentinel_password))
			return fail(err, errlen,
				    "REDIS_SENTINEL_PASSWORD is too long");
		strcpy(c->sentinel_password, v);
	}
	if ((v = getenv("REDIS_SENTINEL_USERNAME")) && *v) {
		if (strlen(v) >= sizeof(c->sentinel_user))
			return fail(err, errlen,
				    "REDIS_SENTINEL_USERNAME is too long");
		strcpy(c->sentinel_user, v);
	}
	return 0;
}

void redis_conf_addr(const struct redis_conf *c, char *buf, size_t len)
{
	bool v6 = strchr(c->host, ':') != NULL;

	if (c->master[0])
		snprintf(buf, len, "sentinel:%s/%s/%d", c->sentinels, c->master,
			 c->db);
	else if (c->path[0])
		snprintf(buf, len, "unix:%s/%d", c->path, c->db);
	else
		snprintf(buf, len, "%s%s%s%s:%d%s%s/%d", c->tls ? "tls:" : "",
			 v6 ? "[" : "", c->host, v6 ? "]" : "", c->port,
			 c->nodes[0] ? "," : "", c->nodes, c->db);
}

int redis_conf_password_file(struct redis_conf *c, const char *path,
			     char *err, size_t errlen)
{
	char buf[sizeof(c->password) + 2];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return fail(err, errlen, "cannot open password file %s: %s",
			    path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen,
			    "password file %s is not a regular file", path);
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		return fail(err, errlen,
			    "password file %s has mode %04o: group and others "
			    "must have no access (chmod 600 %s, owned by the "
			    "user the bridge runs as)",
			    path, (unsigned)(st.st_mode & 07777), path);
	}
	while (len < sizeof(buf) &&
	       (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			return fail(err, errlen,
				    "cannot read password file %s: %s", path,
				    strerror(e));
		}
		len += (size_t)n;
	}
	close(fd);
	/* One trailing newline (what editors and echo add) is not part of
	 * the password. */
	if (len && buf[len - 1] == '\n')
		len--;
	if (len && buf[len - 1] == '\r')
		len--;
	if (len == 0 || len >= sizeof(c->password) || memchr(buf, '\n', len)) {
		memset(buf, 0, sizeof(buf));
		return fail(err, errlen,
			    "password file %s must hold one line of 1 to %zu "
			    "bytes",
			    path, sizeof(c->password) - 1);
	}
	memcpy(c->password, buf, len);
	c->password[len] = '\0';
	memset(buf, 0, sizeof(buf));
	return 0;
}

bool redis_url_hide_password(char *url)
{
	char *p = strstr(url, "://");

	if (!p)
		return false;
	p += 3;
	char *at = strrchr(p, '@');
	if (!at)
		return false;
	char *colon = memchr(p, ':', (size_t)(at - p));
	if (!colon || colon + 1 == at)
		return false;
	/* "scheme://user:***@rest": the rest moves left, the bytes after it
	 * are cleared, so neither the password nor its length stays. The
	 * URL never grows (it is argv's memory): a password of 1 or 2 bytes
	 * becomes one '*'. */
	size_t tail = strlen(at) + 1, old = strlen(url);
	size_t mask = (size_t)(at - colon - 1) >= 3 ? 3 : 1;
	memcpy(colon + 1, "***", mask);
	memmove(colon + 1 + mask, at, tail);
	size_t now = strlen(url);
	memset(url + now, 0, old - now);
	return true;
}
