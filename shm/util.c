/*
 * util.c — small helpers with no state: clocks, process identity (pid plus
 * start time, so that a reused pid is never taken for a dead owner), the
 * name hash, glob matching and UTF-8 validation (RFC 3629: the rule every
 * counter and gauge name obeys, so that every document can carry it).
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
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

/* Start time (field 22) and state (field 3) of /proc/<pid>/stat; false
 * when it cannot be read. */
static bool proc_stat(pid_t pid, uint64_t *start, char *state)
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

	return proc_stat(pid, &start, &state) ? start : 0;
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
	if (!proc_stat(pid, &now, &state))
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

bool shmstat__glob(const char *pattern, const char *s, size_t len)
{
	char name[SHMSTAT_NAME_MAX + 1];

	if (!pattern)
		return true;
	if (len > SHMSTAT_NAME_MAX)
		len = SHMSTAT_NAME_MAX;
	memcpy(name, s, len);
	name[len] = '\0';
	return fnmatch(pattern, name, 0) == 0;
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
