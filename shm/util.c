/*
 * util.c — small helpers with no state: clocks, process identity (pid plus
 * start time, so that a reused pid is never taken for a dead owner), the
 * name hash, glob matching and UTF-8 validation (RFC 3629: the rule every
 * counter and gauge name obeys, so that every document can carry it).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
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

bool shmstat__proc_stat(pid_t pid, uint64_t *start, char *state)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and ')': skip to the
	 * last ')', then field 3 is the state; start time is field 22. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return false;
	*state = p[2];
	p++;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return false;
	}
	*start = strtoull(p + 1, NULL, 10);
	return true;
}

uint64_t shmstat__proc_start(pid_t pid)
{
	uint64_t start;
	char state;

	return shmstat__proc_stat(pid, &start, &state) ? start : 0;
}

int shmstat__proc_alive(pid_t pid, uint64_t start)
{
	uint64_t now;
	char state;

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	/* /proc says nothing (hidepid, another namespace): trust kill(),
	 * which said the pid exists. */
	if (!shmstat__proc_stat(pid, &now, &state))
		return 1;
	/* A zombie (or a process being reaped) runs no code any more: it
	 * holds nothing, however late its parent waits for it. */
	if (state == 'Z' || state == 'X' || state == 'x')
		return 0;
	if (start != 0 && now != start)
		return 0; /* the pid was reused */
	return 1;
}

int shmstat__proc_maps(pid_t pid, uint64_t base, uint64_t ino)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	/* "start-end perms offset dev inode path"; a zombie's file is empty. */
	while (getline(&line, &cap, f) > 0) {
		unsigned long long lo, hi, off, in;
		char perms[8];
		unsigned maj, min;
		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &lo, &hi, perms,
			   &off, &maj, &min, &in) == 7 &&
		    lo == base && in == ino) {
			found = 1;
			break;
		}
	}
	/* A read error (the process vanished meanwhile) tells nothing. */
	if (!found && ferror(f))
		found = -1;
	free(line);
	fclose(f);
	return found;
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

size_t shmstat__utf8_seq(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;
	uint32_t cp;

	if (len == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1fu;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0fu;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07u;
	} else {
		return 0; /* a continuation byte, 0xc0/0xc1 (overlong), >0xf4 */
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0u) != 0x80u)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	/* Overlong 3- and 4-byte forms, UTF-16 surrogates, beyond U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

int shmstat__utf8_check(const char *s, size_t len, size_t *at)
{
	for (size_t i = 0; i < len;) {
		size_t n = shmstat__utf8_seq(s + i, len - i);
		if (n == 0) {
			if (at)
				*at = i;
			return -1;
		}
		i += n;
	}
	return 0;
}
