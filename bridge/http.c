/*
 * http.c — the bridge's HTTP endpoints (off unless --http is given):
 *
 *   GET /metrics   the Prometheus exposition of the segment (the same as
 *                  `shmstat list -p`) plus the bridge's own push metrics
 *   GET /health    the health JSON of `shmstat health -j`; 200 when
 *                  healthy or degraded, 503 when broken
 *   GET /stats     the live-stats JSON of `shmstat list -j`; with
 *                  ?scope=global that of `shmstat list -j --global`
 *   anything else  404 (405 for a method other than GET or HEAD)
 *
 * libmicrohttpd serves them from one internal thread of its own, so a slow
 * or hostile client never delays the sync loop in the main thread: the
 * HTTP thread reads the segment through a handle of its own, and reads the
 * bridge's push metrics from a snapshot the main thread publishes with RCU
 * (urcu-bp: the HTTP thread is not ours to register).
 *
 * Slow or half-open clients cannot hold the endpoints: at most
 * HTTP_MAX_CONNECTIONS connections, at most HTTP_PER_IP of them from one
 * client address (one local user cannot take them all), an idle timeout,
 * and a deadline for the whole connection (request and response): a
 * watchdog thread shuts down a connection older than HTTP_DEADLINE_S, so a
 * client that trickles a byte at a time is cut too. A request's memory is
 * bounded.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>
#include <urcu/urcu-bp.h>

#include "bridge_i.h"
#include "shmstat_i.h"

#define HTTP_MAX_CONNECTIONS 256
#define HTTP_PER_IP 8          /* connections from one client address */
#define HTTP_TIMEOUT_S 5       /* idle */
#define HTTP_DEADLINE_S 5      /* whole connection */
#define HTTP_MEMORY_LIMIT (16 * 1024) /* per connection: bounds the URL */

/* Push durations, in seconds: the histogram's upper bounds. */
static const double buckets[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct push_metrics {
	uint64_t count[NBUCKETS + 1]; /* cumulative at export; +Inf last */
	uint64_t n;
	double sum;
	uint64_t ok, failed;
};

/* The snapshot the HTTP thread reads. Written by the main thread only. */
static struct push_metrics *current;
static struct push_metrics mine; /* the main thread's running copy */

/* Open connections, for the deadline: added when libmicrohttpd starts
 * one, removed when it closes it (before it closes the socket), under
 * conns_lock; the watchdog shuts down the socket of those past the
 * deadline, and libmicrohttpd then closes them. */
struct conn {
	struct conn *next, **prev;
	int fd;
	bool cut;
	uint64_t start_ns;
};
static struct conn *conns;
static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conns_cond = PTHREAD_COND_INITIALIZER;
static bool watchdog_stop;
static pthread_t watchdog;
static bool watchdog_running;
static uint64_t cut_total;

static struct MHD_Daemon *daemon_;
static shmstat_t *http_h;
static char bound[80];

void http_record_push(double seconds, bool ok)
{
	size_t i = 0;

	while (i < NBUCKETS && seconds > buckets[i])
		i++;
	mine.count[i]++;
	mine.n++;
	mine.sum += seconds;
	if (ok)
		mine.ok++;
	else
		mine.failed++;
	if (!daemon_)
		return;
	struct push_metrics *snap = malloc(sizeof(*snap));
	if (!snap)
		return; /* the reader keeps the previous snapshot */
	*snap = mine;
	struct push_metrics *old = rcu_xchg_pointer(&current, snap);
	/* Readers that may still hold `old` finish before it is freed. */
	urcu_bp_synchronize_rcu();
	free(old);
}

static void bridge_metrics(FILE *f, const char *seg)
{
	struct push_metrics m = { 0 };

	urcu_bp_read_lock();
	struct push_metrics *s = rcu_dereference(current);
	if (s)
		m = *s;
	urcu_bp_read_unlock();

	fputs("# HELP shmstat_bridge_push_duration_seconds Time of one push "
	      "of every counter to Redis.\n"
	      "# TYPE shmstat_bridge_push_duration_seconds histogram\n",
	      f);
	uint64_t cum = 0;
	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += m.count[i];
		fprintf(f, "shmstat_bridge_push_duration_seconds_bucket{segment=\"%s\",le=\"%g\"} %" PRIu64 "\n",
			seg, buckets[i], cum);
	}
	cum += m.count[NBUCKETS];
	fprintf(f, "shmstat_bridge_push_duration_seconds_bucket{segment=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
		   "shmstat_bridge_push_duration_seconds_sum{segment=\"%s\"} %.6f\n"
		   "shmstat_bridge_push_duration_seconds_count{segment=\"%s\"} %" PRIu64 "\n",
		seg, cum, seg, m.sum, seg, m.n);
	fprintf(f, "# HELP shmstat_bridge_process_pushes_total Pushes by this "
		   "bridge process, by result.\n"
		   "# TYPE shmstat_bridge_process_pushes_total counter\n"
		   "shmstat_bridge_process_pushes_total{segment=\"%s\",result=\"ok\"} %" PRIu64 "\n"
		   "shmstat_bridge_process_pushes_total{segment=\"%s\",result=\"failed\"} %" PRIu64 "\n",
		seg, m.ok, seg, m.failed);
	pthread_mutex_lock(&conns_lock);
	uint64_t cut = cut_total;
	pthread_mutex_unlock(&conns_lock);
	fprintf(f, "# HELP shmstat_bridge_http_deadline_cuts_total HTTP "
		   "connections shut down at the deadline of %d s.\n"
		   "# TYPE shmstat_bridge_http_deadline_cuts_total counter\n"
		   "shmstat_bridge_http_deadline_cuts_total{segment=\"%s\"} %" PRIu64 "\n",
		HTTP_DEADLINE_S, seg, cut);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code,
			     const char *type, char *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	enum MHD_Result ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code,
				  const char *text)
{
	char *body = strdup(text);
	return body ? reply(c, code, "text/plain; charset=utf-8", body,
			    strlen(body))
		    : MHD_NO;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "only GET and HEAD\n");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return MHD_NO;
	unsigned code = MHD_HTTP_OK;
	const char *type = "application/json";
	int rc = 0;
	if (strcmp(url, "/metrics") == 0) {
		type = "text/plain; version=0.0.4; charset=utf-8";
		rc = shmstat_export_prometheus(http_h, NULL, f);
		if (rc == 0)
			bridge_metrics(f, http_h->name);
	} else if (strcmp(url, "/stats") == 0) {
		const char *scope = MHD_lookup_connection_value(
			c, MHD_GET_ARGUMENT_KIND, "scope");
		if (scope && strcmp(scope, "global") == 0)
			rc = shmstat_export_json_global(http_h, NULL, f);
		else if (!scope || strcmp(scope, "local") == 0)
			rc = shmstat_export_json(http_h, NULL, f);
		else {
			code = MHD_HTTP_BAD_REQUEST;
			type = "text/plain; charset=utf-8";
			fputs("scope is local or global\n", f);
		}
	} else if (strcmp(url, "/health") == 0) {
		shmstat_health_t hs;
		if (shmstat_health(http_h, 0, &hs) < 0) {
			memset(&hs, 0, sizeof(hs));
			hs.status = SHMSTAT_BROKEN;
			snprintf(hs.reason, sizeof(hs.reason), "segment: %s",
				 shmstat_errstr(http_h));
			snprintf(hs.segment, sizeof(hs.segment), "invalid");
		}
		if (hs.status == SHMSTAT_BROKEN)
			code = MHD_HTTP_SERVICE_UNAVAILABLE;
		shmstat_export_health_json(http_h, &hs, f);
	} else {
		fclose(f);
		free(buf);
		return reply_text(c, MHD_HTTP_NOT_FOUND,
				  "not found: try /metrics, /health or /stats\n");
	}
	fclose(f);
	if (rc < 0) {
		free(buf);
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  shmstat_errstr(http_h));
	}
	return reply(c, code, type, buf, len);
}

static void on_connection(void *cls, struct MHD_Connection *c,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			c, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct conn *e = calloc(1, sizeof(*e));
		if (!e || !ci) {
			free(e);
			*socket_context = NULL;
			return;
		}
		e->fd = ci->connect_fd;
		e->start_ns = shmstat__now_mono_ns();
		pthread_mutex_lock(&conns_lock);
		e->next = conns;
		if (conns)
			conns->prev = &e->next;
		e->prev = &conns;
		conns = e;
		pthread_mutex_unlock(&conns_lock);
		*socket_context = e;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct conn *e = *socket_context;
		if (!e)
			return;
		pthread_mutex_lock(&conns_lock);
		*e->prev = e->next;
		if (e->next)
			e->next->prev = e->prev;
		pthread_mutex_unlock(&conns_lock);
		free(e);
		*socket_context = NULL;
	}
}

static void *watchdog_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&conns_lock);
	while (!watchdog_stop) {
		uint64_t now = shmstat__now_mono_ns();
		for (struct conn *e = conns; e; e = e->next)
			if (!e->cut &&
			    now - e->start_ns > HTTP_DEADLINE_S * 1000000000ull) {
				/* The fd is still libmicrohttpd's (the entry
				 * goes before the socket is closed). */
				shutdown(e->fd, SHUT_RDWR);
				e->cut = true;
				cut_total++;
			}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&conns_cond, &conns_lock, &ts);
	}
	pthread_mutex_unlock(&conns_lock);
	return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	blog(SHMSTAT_LOG_DEBUG, "http: %s", msg);
}

/* "PORT", "HOST:PORT" or "[V6]:PORT"; HOST defaults to 127.0.0.1. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss,
			socklen_t *sl)
{
	char host[64] = "127.0.0.1", port[16];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;

	if (colon) {
		size_t hl = (size_t)(colon - spec);
		if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
			spec++;
			hl -= 2;
		}
		if (hl == 0 || hl >= sizeof(host))
			return -1;
		memcpy(host, spec, hl);
		host[hl] = '\0';
		snprintf(port, sizeof(port), "%s", colon + 1);
	} else {
		snprintf(port, sizeof(port), "%s", spec);
	}
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535)
		return -1;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sl = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int http_start(const char *segment, const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc;

	if (parse_listen(spec, &ss, &sl) < 0) {
		blog(SHMSTAT_LOG_ERROR,
		     "--http '%s': expected PORT, HOST:PORT or [V6]:PORT with a "
		     "numeric address",
		     spec);
		return -1;
	}
	if ((rc = shmstat_open(segment, NULL, &http_h)) < 0) {
		blog(SHMSTAT_LOG_ERROR, "http: %s", shmstat_errstr(NULL));
		return -1;
	}
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	daemon_ = MHD_start_daemon(
		flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR,
		(struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)HTTP_MAX_CONNECTIONS,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_PER_IP,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)HTTP_MEMORY_LIMIT, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
		NULL, MHD_OPTION_END);
	if (!daemon_) {
		blog(SHMSTAT_LOG_ERROR,
		     "http: cannot listen on %s (address in use, or not "
		     "allowed)",
		     spec);
		shmstat_close(&http_h);
		return -1;
	}
	watchdog_stop = false;
	if (pthread_create(&watchdog, NULL, watchdog_main, NULL) != 0) {
		blog(SHMSTAT_LOG_ERROR, "http: cannot start a thread");
		MHD_stop_daemon(daemon_);
		daemon_ = NULL;
		shmstat_close(&http_h);
		return -1;
	}
	watchdog_running = true;
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
	char addr[64] = "?";
	if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
			  addr, sizeof(addr));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr,
			  sizeof(addr));
	snprintf(bound, sizeof(bound), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		 addr, di ? (unsigned)di->port : 0u);
	blog(SHMSTAT_LOG_INFO, "http: listening on %s (/metrics, /health, /stats)",
	     bound);
	return 0;
}

void http_stop(void)
{
	if (watchdog_running) {
		pthread_mutex_lock(&conns_lock);
		watchdog_stop = true;
		pthread_cond_signal(&conns_cond);
		pthread_mutex_unlock(&conns_lock);
		pthread_join(watchdog, NULL);
		watchdog_running = false;
	}
	if (daemon_)
		MHD_stop_daemon(daemon_);
	daemon_ = NULL;
	shmstat_close(&http_h);
	free(rcu_xchg_pointer(&current, NULL));
}
