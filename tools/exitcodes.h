/*
 * exitcodes.h — the exit status of every shmstat command, in one place.
 *
 * A script must tell a typo from a miss and a miss from a broken segment:
 *   0   success
 *   1   not found: a counter, gauge, cache key or cluster-wide value that
 *       does not exist, a condition that did not hold (cache set --nx/--xx),
 *       a filter that matched nothing; `health`: degraded
 *   2   the segment is missing, invalid, truncated or not permitted;
 *       `health`: broken
 *   3   the operation failed: the segment is full, a counter at its
 *       maximum, a write error (a full disk; it wins over any other
 *       status, health's too), no bridge or no answer in time. A closed
 *       pipe kills the tool by SIGPIPE (141 in the shell), as any Unix
 *       tool; with SIGPIPE ignored it is a write error: 3
 *   64  usage error: an unknown command or option, a bad value (EX_USAGE
 *       of sysexits.h, so it is never taken for one of the above)
 * health keeps 0/1/2 as healthy/degraded/broken, which the scale above
 * already says.
 */
#ifndef SHMSTAT_EXITCODES_H
#define SHMSTAT_EXITCODES_H

enum tool_exit {
	TOOL_OK = 0,
	TOOL_NOTFOUND = 1,
	TOOL_SEGMENT = 2,
	TOOL_FAILED = 3,
	TOOL_USAGE = 64,
};

/* The lines every --help ends with and the man page repeats. */
#define TOOL_EXIT_HELP                                                         \
	"exit status: 0 success; 1 not found (no such counter, key or value,\n" \
	"or nothing matched); 2 segment missing, invalid or not permitted;\n"   \
	"3 the operation failed (segment full, write error, timeout; a\n"       \
	"closed pipe is SIGPIPE, 141 in the shell, as for any command);\n"    \
	"64 usage error.\n"

#endif /* SHMSTAT_EXITCODES_H */
