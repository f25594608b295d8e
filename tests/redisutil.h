/*
 * redisutil.h — a real redis-server for tests: started by the test on a
 * unix socket in a mkdtemp directory (port 0, no persistence unless the
 * test saves), stopped, restarted, paused (SIGSTOP); commands through
 * hiredis; and helpers to run shmstat-bridge ($SHMSTAT_BRIDGE) against it.
 */
#ifndef SHMSTAT_REDISUTIL_H
#define SHMSTAT_REDISUTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "shmstat.h"
#include "testutil.h"

struct ru_server {
	char dir[128];        /* the mkdtemp directory */
	char sock[192];       /* dir/redis.sock */
	char url[224];        /* unix://<sock> */
	char password[64];    /* requirepass when set before ru_start */
	const char *config;   /* a redis.conf to start from (the options
				 above override its network and files) */
	const char *const *extra; /* more arguments (NULL-terminated), after
				     ours: e.g. --port N, --tls-port N */
	pid_t pid;            /* 0 when stopped */
};

/* Start (first call creates the directory); fails the test when Redis
 * does not answer within 5 s. */
void ru_start(struct ru_server *r);
/* Stop (SIGTERM, no save unless the test called SAVE), wait. */
void ru_stop(struct ru_server *r);
void ru_restart(struct ru_server *r);
/* SIGSTOP / SIGCONT: a hung Redis. */
void ru_pause(struct ru_server *r);
void ru_resume(struct ru_server *r);
/* Stop and remove the directory. */
void ru_destroy(struct ru_server *r);

/* One command (redisCommand format) on a fresh connection, with AUTH when
 * a password is set. NULL when Redis cannot be reached. Free the reply. */
redisReply *ru_cmd(struct ru_server *r, const char *fmt, ...);
/* Integer value of a key; LLONG_MIN when missing. Fails on other errors. */
long long ru_get(struct ru_server *r, const char *key);
/* HLEN of a key (fails on an error); does a key exist? */
long long ru_hlen(struct ru_server *r, const char *key);
bool ru_exists(struct ru_server *r, const char *key);
/* path of a file in the server's directory. */
void ru_path(const struct ru_server *r, char *buf, size_t len,
	     const char *file);

/* Start shmstat-bridge on segment seg against url (may be NULL: no -u),
 * stderr appended to log; pidfile in dir. Extra arguments NULL-terminated. */
pid_t ru_bridge(const char *dir, const char *seg, const char *url,
		const char *log, ...);
/* SIGTERM and wait (bounded): its exit status. */
int ru_bridge_stop(pid_t pid);
/* Wait until the bridge has completed two pushes that began after this
 * call with nothing pending (so every count made before the call is in
 * Redis and reconciled). false on timeout. */
bool ru_wait_synced(shmstat_t *h, int timeout_ms);
/* waitpid(WNOHANG): exit status when it ended, -1 while it runs. */
int tu_wait_nohang(pid_t pid);
/* Does the file contain s? */
bool ru_file_has(const char *path, const char *s);
/* Wait until the file contains s. */
bool ru_wait_file_has(const char *path, const char *s, int timeout_ms);
/* Sleep ms. */
void ru_sleep_ms(int ms);
/* CLOCK_MONOTONIC in ms: for deadlines and the times tests print. */
uint64_t ru_mono_ms(void);

/* A TCP port on 127.0.0.1 that nothing listened on a moment ago. */
int ru_free_port(void);
/* Fork and exec argv (PATH search), stdout/stderr to log, killed with the
 * test (PR_SET_PDEATHSIG). */
pid_t ru_spawn(const char *log, const char *const argv[]);
/* SIGKILL and reap. */
void ru_kill(pid_t pid);
/* One command (redisCommand format) to 127.0.0.1:port, plain TCP, 2 s
 * timeouts. NULL when unreachable. */
redisReply *ru_tcp_cmd(int port, const char *fmt, ...);
/* Wait until something accepts TCP connections on 127.0.0.1:port. */
bool ru_wait_port(int port, int timeout_ms);

/* Two segments (4 MiB, 256 counters, 16 rows) and one redis-server, with
 * a log file in its directory: the fixture of the two-host bridge tests.
 * ru_pair_setup makes it (segments tagged ta and tb) as *state;
 * ru_pair_teardown stops Redis and removes both segments (the log stays
 * with RU_KEEP_LOG set). */
struct ru_pair {
	struct ru_server r;
	struct tu_seg a, b;
	char log[256];
};
int ru_pair_setup(void **state, const char *ta, const char *tb);
int ru_pair_teardown(void **state);

#endif
