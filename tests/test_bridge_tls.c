/*
 * test_bridge_tls.c — shmstat-bridge over rediss:// against real
 * redis-server TLS ports on 127.0.0.1, with certificates this test makes
 * with openssl: a CA, a server certificate for 127.0.0.1/localhost, an
 * expired one (signed under faketime), one for another host, a second CA,
 * a client certificate. A push succeeds (client certificate required by
 * the server), survives a Redis restart and a hung Redis (the command
 * timeout); a wrong CA, an expired certificate and a wrong host name are
 * refused with messages that say which; --tls-no-verify and
 * --tls-server-name do what they say. Each server also listens on a unix
 * socket, where the test reads the keys.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

enum { GOOD, EXPIRED, WRONGHOST, NSRV };

struct srv {
	struct ru_server r;
	int port;
	char portstr[16], cert[300], key[300], ca[300];
	const char *extra[16];
};

struct fx {
	char dir[128];
	struct srv s[NSRV];
};

static struct fx *F;

static const shmstat_options_t small = {
	.size = 4u << 20, .max_counters = 64, .max_workers = 8,
};

static void path(char *buf, size_t len, const char *file)
{
	snprintf(buf, len, "%s/%s", F->dir, file);
}

static void make_certs(void)
{
	char out[4096];
	/* EC keys: fast. The expired certificate is signed 10 days in the
	 * past for one day. */
	int rc = tu_sh(out, sizeof(out),
		"cd %s && K=\"-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes\" && "
		"openssl req -x509 $K -keyout ca.key -out ca.crt -days 2 -subj /CN=shmstat-test-ca && "
		"openssl req -x509 $K -keyout other.key -out other.crt -days 2 -subj /CN=other-ca && "
		"for n in good expired wronghost client; do "
		"openssl req $K -keyout $n.key -out $n.csr -subj /CN=$n || exit 1; done && "
		"printf \"subjectAltName=IP:127.0.0.1,DNS:localhost\\n\" > good.ext && "
		"cp good.ext expired.ext && "
		"printf \"subjectAltName=DNS:other.example,IP:10.9.9.9\\n\" > wronghost.ext && "
		"printf \"extendedKeyUsage=clientAuth\\n\" > client.ext && "
		"S=\"-CA ca.crt -CAkey ca.key -CAcreateserial\" && "
		"openssl x509 -req -in good.csr $S -out good.crt -days 2 -extfile good.ext && "
		"openssl x509 -req -in wronghost.csr $S -out wronghost.crt -days 2 -extfile wronghost.ext && "
		"openssl x509 -req -in client.csr $S -out client.crt -days 2 -extfile client.ext && "
		"faketime -f -10d openssl x509 -req -in expired.csr $S -out expired.crt -days 1 -extfile expired.ext && "
		"openssl x509 -in expired.crt -noout -checkend 0; test $? = 1",
		F->dir);
	if (rc != 0)
		fail_msg("making the certificates failed (%d): %s", rc, out);
}

static void start_server(struct srv *s, const char *name, bool auth_clients)
{
	char f[64];

	s->port = ru_free_port();
	snprintf(s->portstr, sizeof(s->portstr), "%d", s->port);
	snprintf(f, sizeof(f), "%s.crt", name);
	path(s->cert, sizeof(s->cert), f);
	snprintf(f, sizeof(f), "%s.key", name);
	path(s->key, sizeof(s->key), f);
	path(s->ca, sizeof(s->ca), "ca.crt");
	const char *e[] = { "--tls-port", s->portstr, "--tls-cert-file",
			    s->cert, "--tls-key-file", s->key,
			    "--tls-ca-cert-file", s->ca, "--tls-auth-clients",
			    auth_clients ? "yes" : "no", NULL };
	memcpy(s->extra, e, sizeof(e));
	s->r.extra = s->extra;
	ru_start(&s->r);
	assert_true(ru_wait_port(s->port, 5000));
}

static int group_setup(void **state)
{
	(void)state;
	F = calloc(1, sizeof(*F));
	assert_non_null(F);
	snprintf(F->dir, sizeof(F->dir), "/tmp/shmstat-tls-XXXXXX");
	assert_non_null(mkdtemp(F->dir));
	make_certs();
	start_server(&F->s[GOOD], "good", true);
	start_server(&F->s[EXPIRED], "expired", false);
	start_server(&F->s[WRONGHOST], "wronghost", false);
	return 0;
}

static int group_teardown(void **state)
{
	char out[256];

	(void)state;
	for (int i = 0; i < NSRV; i++)
		ru_destroy(&F->s[i].r);
	if (!getenv("KEEP")) tu_sh(out, sizeof(out), "rm -rf %s", F->dir);
	free(F);
	return 0;
}

struct t {
	struct tu_seg a;
	char log[300], url[128], ca[300], other_ca[300], cert[300], key[300];
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	tu_seg_create(&t->a, "tls", &small);
	path(t->log, sizeof(t->log), "bridge.log");
	unlink(t->log);
	path(t->ca, sizeof(t->ca), "ca.crt");
	path(t->other_ca, sizeof(t->other_ca), "other.crt");
	path(t->cert, sizeof(t->cert), "client.crt");
	path(t->key, sizeof(t->key), "client.key");
	for (int i = 0; i < NSRV; i++) {
		redisReply *r = ru_cmd(&F->s[i].r, "FLUSHALL");
		if (r)
			freeReplyObject(r);
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	shmstat_close(&t->a.h);
	shmstat_unlink(t->a.name);
	free(t);
	return 0;
}

static const char *url(struct t *t, int srv, const char *host)
{
	snprintf(t->url, sizeof(t->url), "rediss://%s:%d/0", host,
		 F->s[srv].port);
	return t->url;
}

/* A push with --once: its exit status. */
static int once(struct t *t, int srv, const char *host, const char *a1,
		const char *a2, const char *a3)
{
	pid_t p = ru_bridge(F->dir, t->a.name, url(t, srv, host), t->log,
			    "--once", "--connect-timeout", "3s", a1, a2, a3,
			    NULL);
	return tu_wait(p, 20000);
}

static void a_push_over_tls_succeeds_and_survives_restart_and_hang(void **state)
{
	struct t *t = *state;
	struct ru_server *r = &F->s[GOOD].r;

	assert_int_equal(shmstat_counter_add_by_name(t->a.h, "c", 41), 0);
	pid_t p = ru_bridge(F->dir, t->a.name, url(t, GOOD, "127.0.0.1"),
			    t->log, "-i", "100ms", "--backoff-max", "200ms",
			    "--command-timeout", "500ms", "--tls-ca-file",
			    t->ca, "--tls-cert", t->cert, "--tls-key", t->key,
			    NULL);
	assert_true(ru_wait_synced(t->a.h, 15000));
	assert_int_equal(ru_get(r, "c"), 41);
	assert_true(ru_file_has(t->log, "(TLS to 127.0.0.1:"));

	/* Redis restarted empty: reconnect, everything back. */
	ru_restart(r);
	assert_true(ru_wait_port(F->s[GOOD].port, 5000));
	assert_int_equal(shmstat_counter_add_by_name(t->a.h, "c", 1), 0);
	assert_true(ru_wait_synced(t->a.h, 15000));
	assert_int_equal(ru_get(r, "c"), 42);

	/* A hung Redis: the command timeout holds on TLS too. */
	ru_pause(r);
	assert_int_equal(shmstat_counter_add_by_name(t->a.h, "c", 1), 0);
	bool timed_out = ru_wait_file_has(t->log, "timed out (command timeout "
						  "500 ms)",
					  15000);
	ru_resume(r);
	assert_true(timed_out);
	assert_true(ru_wait_synced(t->a.h, 15000));
	assert_int_equal(ru_get(r, "c"), 43);
	assert_int_equal(ru_bridge_stop(p), 0);
}

static void without_a_client_certificate_the_server_refuses_saying_so(void **state)
{
	struct t *t = *state;

	assert_int_equal(shmstat_counter_add_by_name(t->a.h, "c", 1), 0);
	assert_int_equal(once(t, GOOD, "127.0.0.1", "--tls-ca-file", t->ca,
			      NULL),
			 5);
	/* Refused by an alert, or a reset before it is read: either way
	 * the message names the client certificate. */
	assert_true(ru_file_has(t->log, "a client certificate (--tls-cert, "
					"--tls-key)"));
	assert_int_equal(ru_get(&F->s[GOOD].r, "c"), LLONG_MIN);
}

static void a_wrong_ca_is_refused_saying_so(void **state)
{
	struct t *t = *state;

	assert_int_equal(shmstat_counter_add_by_name(t->a.h, "c", 1), 0);
	assert_int_equal(once(t, GOOD, "127.0.0.1", "--tls-ca-file",
			      t->other_ca, NULL),
			 5);
	assert_true(ru_file_has(t->log, "not signed by a trusted CA"));
	assert_true(ru_file_has(t->log, "--tls-ca-file"));
	assert_int_equal(ru_get(&F->s[GOOD].r, "c"), LLONG_MIN);
}

static void an_expired_certificate_is_refused_saying_so(void **state)
{
	struct t *t = *state;

	assert_int_equal(shmstat_counter_add_by_name(t->a.h, "c", 5), 0);
	assert_int_equal(once(t, EXPIRED, "127.0.0.1", "--tls-ca-file", t->ca,
			      NULL),
			 5);
	assert_true(ru_file_has(t->log, "certificate has expired"));
	assert_int_equal(ru_get(&F->s[EXPIRED].r, "c"), LLONG_MIN);
	/* The explicit opt-out connects, and says what it gives up. */
	assert_int_equal(once(t, EXPIRED, "127.0.0.1", "--tls-no-verify", NULL,
			      NULL),
			 0);
	assert_true(ru_file_has(t->log, "is not checked"));
	assert_int_equal(ru_get(&F->s[EXPIRED].r, "c"), 5);
}

static void a_certificate_for_another_host_is_refused_saying_so(void **state)
{
	struct t *t = *state;

	assert_int_equal(shmstat_counter_add_by_name(t->a.h, "c", 7), 0);
	assert_int_equal(once(t, WRONGHOST, "127.0.0.1", "--tls-ca-file", t->ca,
			      NULL),
			 5);
	assert_true(ru_file_has(t->log, "is not for '127.0.0.1'"));
	assert_int_equal(once(t, WRONGHOST, "localhost", "--tls-ca-file", t->ca,
			      NULL),
			 5);
	assert_true(ru_file_has(t->log, "is not for 'localhost'"));
	assert_int_equal(ru_get(&F->s[WRONGHOST].r, "c"), LLONG_MIN);
	/* The name the certificate holds, given explicitly: verified. */
	assert_int_equal(once(t, WRONGHOST, "127.0.0.1", "--tls-ca-file", t->ca,
			      "--tls-server-name=other.example"),
			 0);
	assert_int_equal(ru_get(&F->s[WRONGHOST].r, "c"), 7);
}

static void a_missing_ca_file_is_a_usage_error(void **state)
{
	struct t *t = *state;

	assert_int_equal(once(t, GOOD, "127.0.0.1", "--tls-ca-file",
			      "/nonexistent/ca.crt", NULL),
			 1);
	assert_true(ru_file_has(t->log, "cannot load the CA file "
					"'/nonexistent/ca.crt'"));
}

/* redis:// to a port that takes TLS only: the server drops the plain
 * connection at its first command; the log says to use rediss://. */
static void plain_redis_to_a_tls_port_says_to_use_rediss(void **state)
{
	struct t *t = *state;
	char u[128];

	snprintf(u, sizeof(u), "redis://127.0.0.1:%d/0", F->s[GOOD].port);
	pid_t p = ru_bridge(F->dir, t->a.name, u, t->log, "--once",
			    "--connect-timeout", "3s", "--command-timeout",
			    "3s", NULL);
	assert_int_equal(tu_wait(p, 20000), 5);
	assert_true(ru_file_has(t->log, "if that port takes TLS only, use "
					"rediss://"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(a_push_over_tls_succeeds_and_survives_restart_and_hang),
		T(without_a_client_certificate_the_server_refuses_saying_so),
		T(a_wrong_ca_is_refused_saying_so),
		T(an_expired_certificate_is_refused_saying_so),
		T(a_certificate_for_another_host_is_refused_saying_so),
		T(a_missing_ca_file_is_a_usage_error),
		T(plain_redis_to_a_tls_port_says_to_use_rediss),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
