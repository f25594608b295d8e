/*
 * util.c — small helpers with no state: clocks, process identity (pid plus
 * start time, so that a reused pid is never taken for a dead owner), the
 * name hash and glob matching.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "shmstat_i.h"

uint64_t shmstat__now_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shmstat__now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shmstat__proc_start(pid_t pid)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and ')': skip to the
	 * last ')', then field 3 is the state; start time is field 22. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return 0;
	}
	return strtoull(p + 1, NULL, 10);
}

int shmstat__proc_alive(pid_t pid, uint64_t start)
{
	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	if (start != 0) {
		uint64_t now = shmstat__proc_start(pid);
		/* 0: /proc says nothing (hidepid, another namespace): trust
		 * kill(), which said the pid exists. */
		if (now != 0 && now != start)
			return 0; /* the pid was reused */
	}
	return 1;
}

uint64_t shmstat__pidns(void)
{
	struct stat st;

	/* Not cached: a process may enter another namespace (setns), and
	 * this is only called off the hot path. */
	if (stat("/proc/self/ns/pid", &st) < 0)
		return 0;
	return (uint64_t)st.st_ino;
}

uint64_t shmstat__hash(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}

/* A [:name:] class at p (after "[:"): 1 ch is in it, 0 not, -1 no such
 * class; *end after the closing ":]". */
static int glob_class(const char *p, unsigned char ch, const char **end)
{
	static const struct {
		const char *name;
		int (*fn)(int);
	} cls[] = {
		{ "alnum", isalnum }, { "alpha", isalpha }, { "blank", isblank },
		{ "cntrl", iscntrl }, { "digit", isdigit }, { "graph", isgraph },
		{ "lower", islower }, { "print", isprint }, { "punct", ispunct },
		{ "space", isspace }, { "upper", isupper }, { "xdigit", isxdigit },
	};
	for (size_t i = 0; i < sizeof(cls) / sizeof(cls[0]); i++) {
		size_t n = strlen(cls[i].name);
		if (strncmp(p, cls[i].name, n) == 0 && p[n] == ':' &&
		    p[n + 1] == ']') {
			*end = p + n + 2;
			return ch < 128 && cls[i].fn(ch) != 0;
		}
	}
	return -1;
}

/* One [...] set at p (after the '['): 1 match, 0 no, -1 not a set. */
static int glob_set(const char *p, unsigned char ch, const char **end)
{
	bool neg = false, ok = false;
	const char *start;

	if (*p == '!' || *p == '^')
		neg = true, p++;
	start = p;
	while (*p && (*p != ']' || p == start)) {
		unsigned char lo, hi;
		if (p[0] == '[' && p[1] == ':') {
			const char *e;
			int m = glob_class(p + 2, ch, &e);
			if (m >= 0) {
				ok |= m == 1;
				p = e;
				continue;
			}
		}
		if (*p == '\\' && p[1])
			p++;
		lo = hi = (unsigned char)*p++;
		if (*p == '-' && p[1] && p[1] != ']') {
			p++;
			if (*p == '\\' && p[1])
				p++;
			hi = (unsigned char)*p++;
		}
		if (ch >= lo && ch <= hi)
			ok = true;
	}
	if (*p != ']')
		return -1;
	*end = p + 1;
	return ok != neg;
}

/*
 * fnmatch(3) without flags (* ? [...] [!...] [:class:] and \ escapes),
 * over a byte string that may hold NUL bytes and be of any length: the
 * one glob of the tree (counter names, cache keys, the bridge's resets).
 * A '[' that opens no valid set matches itself; a pattern ending in a
 * lone backslash matches nothing. Iterative, with one star
 * to come back to: linear in len for each star, no recursion.
 */
bool shmstat__glob(const char *pattern, const void *str, size_t n)
{
	const unsigned char *s = str;
	const char *p = pattern, *star = NULL;
	size_t i = 0, star_i = 0;

	if (!p)
		return true;
	for (;;) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			star = p;
			star_i = i;
			continue;
		}
		if (i == n) {
			if (*p == '\0')
				return true;
		} else {
			const char *np = p + 1;
			int m;
			if (*p == '\0')
				m = 0;
			else if (*p == '?')
				m = 1;
			else if (*p == '[') {
				m = glob_set(p + 1, s[i], &np);
				if (m < 0)
					m = s[i] == '[', np = p + 1;
			} else if (*p == '\\') {
				/* A trailing \ matches nothing (as fnmatch). */
				m = p[1] && s[i] == (unsigned char)p[1];
				np = p + 2;
			} else {
				m = s[i] == (unsigned char)*p;
			}
			if (m) {
				p = np;
				i++;
				continue;
			}
		}
		if (!star || star_i >= n)
			return false;
		p = star;
		i = ++star_i;
	}
}
