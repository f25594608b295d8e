/*
 * test_bridge_http.c — the bridge's HTTP endpoints (bridge/http.c) over a
 * real socket on 127.0.0.1, with a real redis-server and workers counting:
 * the exposition parses, /health and /stats answer, unknown paths are
 * 404; a malformed request, a long URL and 300 slow clients neither
 * crash the bridge, nor hold the endpoints, nor stall its sync loop.
 * Every loop is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "expo.h"
#include "redisutil.h"
#include "testutil.h"

struct fixture {
	struct tu_seg seg;
	struct ru_server redis;
	pid_t bridge;
	char log[256];
	int port;
	volatile int *stop;  /* tells workers to stop */
	pid_t workers[2];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->stop = tu_shared(sizeof(int));
	tu_seg_create(&f->seg, "http", NULL);
	ru_start(&f->redis);
	snprintf(f->log, sizeof(f->log), "%s/bridge.log", f->redis.dir);
	f->bridge = ru_bridge(f->redis.dir, f->seg.name, f->redis.url, f->log,
			      "-i", "20ms", "--http", "127.0.0.1:0", NULL);
	assert_true(ru_wait_file_has(f->log, "http: listening on 127.0.0.1:", 10000));
	char buf[8192] = "";
	FILE *fp = fopen(f->log, "r");
	assert_non_null(fp);
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	char *p = strstr(buf, "listening on 127.0.0.1:");
	f->port = atoi(p + strlen("listening on 127.0.0.1:"));
	assert_true(f->port > 0);
	assert_true(ru_wait_synced(f->seg.h, 10000));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	*f->stop = 1;
	for (int i = 0; i < 2; i++)
		if (f->workers[i] > 0) {
			kill(f->workers[i], SIGKILL);
			tu_wait(f->workers[i], 30000);
		}
	tu_shared_free((void *)f->stop, sizeof(int));
	/* Clean up everything before judging, so a failure never leaves a
	 * redis-server behind. */
	int st = ru_bridge_stop(f->bridge);
	ru_destroy(&f->redis);
	shmstat_close(&f->seg.h);
	shmstat_unlink(f->seg.name);
	free(f);
	assert_int_equal(st, 0); /* SIGTERM: one more push, exit 0 */
	return 0;
}

static int connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

/* Send req, read until the server closes or timeout_ms passes. Returns
 * the bytes read (the response is NUL-terminated in out). */
static size_t exchange(int port, const char *req, size_t reqlen, char *out,
		       size_t outlen, int timeout_ms)
{
	int s = connect_to(port);
	size_t off = 0, got = 0;
	while (off < reqlen) {
		ssize_t w = send(s, req + off, reqlen - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the server may close on a hostile request */
		off += (size_t)w;
	}
	for (int waited = 0; waited < timeout_ms;) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		int r = poll(&p, 1, 50);
		if (r == 0) {
			waited += 50;
			continue;
		}
		ssize_t n = read(s, out + got, outlen - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got + 1 >= outlen)
			break;
	}
	out[got] = '\0';
	close(s);
	return got;
}

static char resp[1 << 20];

static const char *http_get(int port, const char *path)
{
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
			 path);
	exchange(port, req, (size_t)n, resp, sizeof(resp), 10000);
	return resp;
}

static uint64_t pushes_ok(shmstat_t *h)
{
	shmstat_sync_status_t st;
	assert_int_equal(shmstat_sync_status_read(h, &st), 0);
	return st.pushes_ok;
}

/* Wait until the bridge has pushed `more` times after now. */
static bool pushes_advance(shmstat_t *h, uint64_t more, int timeout_ms)
{
	uint64_t start = pushes_ok(h);
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		if (pushes_ok(h) >= start + more)
			return true;
		ru_sleep_ms(10);
	}
	return false;
}

static pid_t start_worker(const char *seg, volatile int *stop)
{
	pid_t pid = fork();
	if (pid == 0) {
		shmstat_t *h;
		shmstat_counter_t c;
		if (shmstat_open(seg, NULL, &h) ||
		    shmstat_counter_open(h, "filter_stats:total_samples", &c))
			_exit(1);
		/* Bounded: until told, or 2e9 increments. */
		for (long i = 0; i < 2000000000L; i++) {
			shmstat_counter_incr(c);
			if (i % 4096 == 0 && *stop)
				break;
		}
		shmstat_close(&h);
		_exit(0);
	}
	return pid;
}

static void metrics_parse_while_workers_count(void **state)
{
	struct fixture *f = *state;
	static struct expo e;
	f->workers[0] = start_worker(f->seg.name, f->stop);
	f->workers[1] = start_worker(f->seg.name, f->stop);

	double last = -1;
	for (int round = 0; round < 5; round++) {
		const char *r = http_get(f->port, "/metrics");
		assert_non_null(strstr(r, "HTTP/1.1 200"));
		assert_non_null(strstr(r, "text/plain; version=0.0.4"));
		const char *body = strstr(r, "\r\n\r\n");
		assert_non_null(body);
		expo_parse(body + 4, &e);
		const struct sample *s = expo_find(
			&e, "shmstat_filter_stats_total_samples_total",
			"filter_stats:total_samples");
		if (s) {
			assert_true(s->value >= last); /* never backwards */
			last = s->value;
		}
		assert_non_null(expo_find(&e, "shmstat_bridge_redis_connected", NULL));
		assert_true(expo_find(&e, "shmstat_bridge_redis_connected", NULL)->value == 1);
		assert_non_null(expo_find(&e, "shmstat_bridge_push_duration_seconds_count", NULL));
		assert_non_null(expo_find(&e, "shmstat_bridge_pending_changes", NULL));
		assert_true(expo_find(&e, "shmstat_bridge_pushes_total", NULL)->value > 0);
	}
	assert_true(last > 0);
	*f->stop = 1;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(tu_wait(f->workers[i], 30000), 0);
		f->workers[i] = 0;
	}
}

static void health_and_stats_answer_and_unknown_paths_are_404(void **state)
{
	struct fixture *f = *state;
	const char *r;

	shmstat_counter_add_by_name(f->seg.h, "filter_stats:rejected", 3);
	assert_true(ru_wait_synced(f->seg.h, 10000));
	r = http_get(f->port, "/health");
	assert_non_null(strstr(r, "HTTP/1.1 200"));
	assert_non_null(strstr(r, "\"status\": \"healthy\""));
	r = http_get(f->port, "/stats");
	assert_non_null(strstr(r, "HTTP/1.1 200"));
	assert_non_null(strstr(r, "\"source\": \"local\""));
	assert_non_null(strstr(r, "\"filter_stats:rejected\": 3"));
	r = http_get(f->port, "/stats?scope=global");
	assert_non_null(strstr(r, "HTTP/1.1 200"));
	assert_non_null(strstr(r, "\"scope\": \"global\""));
	assert_non_null(strstr(r, "\"source\": \"redis\""));
	assert_non_null(strstr(r, "\"filter_stats:rejected\": 3"));
	r = http_get(f->port, "/stats?scope=mars");
	assert_non_null(strstr(r, "HTTP/1.1 400"));
	r = http_get(f->port, "/nope");
	assert_non_null(strstr(r, "HTTP/1.1 404"));
	r = http_get(f->port, "/metrics/../etc/passwd");
	assert_non_null(strstr(r, "HTTP/1.1 404"));
	const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
			    "Connection: close\r\n\r\n";
	exchange(f->port, post, sizeof(post) - 1, resp, sizeof(resp), 10000);
	assert_non_null(strstr(resp, "HTTP/1.1 405"));
}

/* Garbage and a 200 KB URL: an error or a closed connection, and then the
 * bridge still serves and still pushes. */
static void malformed_and_huge_requests_do_not_hurt_the_bridge(void **state)
{
	struct fixture *f = *state;
	const char garbage[] = "\x01\x02 NOT HTTP AT ALL \xff\r\n\r\n";
	exchange(f->port, garbage, sizeof(garbage) - 1, resp, sizeof(resp), 5000);
	assert_true(resp[0] == '\0' || strstr(resp, "HTTP/1.1 4") != NULL);

	size_t big = 200 * 1024;
	char *req = malloc(big + 64);
	memcpy(req, "GET /", 5);
	memset(req + 5, 'a', big);
	memcpy(req + 5 + big, " HTTP/1.1\r\nHost: x\r\n\r\n", 22);
	exchange(f->port, req, big + 27, resp, sizeof(resp), 5000);
	free(req);
	assert_true(resp[0] == '\0' || strstr(resp, "HTTP/1.1 414") ||
		    strstr(resp, "HTTP/1.1 4"));

	assert_int_equal(tu_wait_nohang(f->bridge), -1); /* still running */
	assert_non_null(strstr(http_get(f->port, "/health"), "HTTP/1.1 200"));
	assert_true(pushes_advance(f->seg.h, 3, 10000));
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int connect_from(const char *src, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	struct sockaddr_in from = { .sin_family = AF_INET };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	inet_pton(AF_INET, src, &from.sin_addr);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&from, sizeof(from)), 0);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

/* GET path from source address src; the status line's code, or 0 when
 * nothing came within timeout_ms. */
static int get_from(const char *src, int port, const char *path,
		    int timeout_ms)
{
	char req[256], out[256];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 path);
	int s = connect_from(src, port);
	size_t got = 0;
	assert_int_equal(send(s, req, (size_t)n, MSG_NOSIGNAL), n);
	uint64_t t0 = now_ms();
	while (got < 12 && now_ms() - t0 < (uint64_t)timeout_ms) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = read(s, out + got, sizeof(out) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(s);
	out[got] = '\0';
	return got >= 12 && strncmp(out, "HTTP/1.1 ", 9) == 0 ? atoi(out + 9)
							     : 0;
}

/* 300 slow clients on 127.0.0.1, each sending a request a byte a second
 * (never idle, never done): at most 8 are served at once, the rest are
 * closed at once; those held are cut at the 5 s deadline however they
 * trickle. Meanwhile /metrics and /health from another address answer
 * within 2 s and the bridge pushes on its interval. */
#define SLOW 300
static void slow_clients_cannot_hold_the_endpoints(void **state)
{
	struct fixture *f = *state;
	static int fd[SLOW];
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	int open_ = 0;

	for (int i = 0; i < SLOW; i++) {
		fd[i] = connect_from("127.0.0.1", f->port);
		fcntl(fd[i], F_SETFL, O_NONBLOCK);
		send(fd[i], req, sizeof(req) - 1, MSG_NOSIGNAL);
	}
	uint64_t t0 = now_ms(), before = pushes_ok(f->seg.h);
	uint64_t last_trickle = t0, all_cut_ms = 0;
	int max_held_after_1s = 0;
	bool other_checked = false;
	/* Bounded: 15 s at most; every connection is cut well before. */
	while (now_ms() - t0 < 15000) {
		open_ = 0;
		for (int i = 0; i < SLOW; i++) {
			if (fd[i] < 0)
				continue;
			char tmp[512];
			ssize_t r = read(fd[i], tmp, sizeof(tmp));
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				close(fd[i]);
				fd[i] = -1;
				continue;
			}
			open_++;
		}
		uint64_t now = now_ms();
		if (now - t0 >= 1000 && open_ > max_held_after_1s)
			max_held_after_1s = open_;
		if (!open_) {
			all_cut_ms = now - t0;
			break;
		}
		if (!other_checked && now - t0 >= 1000) {
			/* From another address: not limited by theirs. */
			uint64_t g0 = now_ms();
			assert_int_equal(get_from("127.0.0.2", f->port,
						  "/metrics", 2000),
					 200);
			uint64_t g1 = now_ms();
			assert_int_equal(get_from("127.0.0.3", f->port,
						  "/health", 2000),
					 200);
			assert_true(now_ms() - g0 < 4000);
			printf("held after 1 s: %d; /metrics from 127.0.0.2 in "
			       "%llu ms, /health from 127.0.0.3 in %llu ms\n",
			       open_, (unsigned long long)(g1 - g0),
			       (unsigned long long)(now_ms() - g1));
			other_checked = true;
		}
		if (now - last_trickle >= 1000) {
			for (int i = 0; i < SLOW; i++)
				if (fd[i] >= 0)
					send(fd[i], "a", 1, MSG_NOSIGNAL);
			last_trickle = now;
		}
		ru_sleep_ms(50);
	}
	for (int i = 0; i < SLOW; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	printf("max held after 1 s: %d of %d; all cut after %llu ms; pushes "
	       "meanwhile: %llu\n",
	       max_held_after_1s, SLOW, (unsigned long long)all_cut_ms,
	       (unsigned long long)(pushes_ok(f->seg.h) - before));
	assert_true(other_checked);
	assert_true(max_held_after_1s <= 8);
	/* Cut at the 5 s deadline (a watchdog checks every 200 ms). */
	assert_true(all_cut_ms > 0);
	assert_true(all_cut_ms < 9000);
	/* The sync loop went on meanwhile (20 ms interval), and goes on. */
	assert_true(pushes_ok(f->seg.h) > before + 10);
	assert_true(pushes_advance(f->seg.h, 3, 10000));
	assert_int_equal(get_from("127.0.0.1", f->port, "/metrics", 2000), 200);
	const char *m = http_get(f->port, "/metrics");
	const char *cut = strstr(m, "shmstat_bridge_http_deadline_cuts_total{");
	assert_non_null(cut);
	assert_true(atoi(strchr(cut, '}') + 1) >= 1);
	assert_int_equal(tu_wait_nohang(f->bridge), -1);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(metrics_parse_while_workers_count),
		T(health_and_stats_answer_and_unknown_paths_are_404),
		T(malformed_and_huge_requests_do_not_hurt_the_bridge),
		T(slow_clients_cannot_hold_the_endpoints),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
