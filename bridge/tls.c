/*
 * tls.c — Redis over TLS with OpenSSL, under hiredis 0.14 (which has no
 * TLS). hiredis still connects the TCP socket (same connect timeout,
 * keepalive), formats commands into the context's output buffer and parses
 * replies with its reader; this file only moves the bytes: SSL_write of
 * the output buffer, SSL_read into redisReaderFeed. The socket keeps the
 * send/receive timeouts hiredis set on it, so every command has the same
 * timeout as on a plain connection, and reconnection and backoff are the
 * daemon's, as for TCP.
 *
 * Verification is on unless --tls-no-verify: the chain against the CA
 * file/directory (else the system's store), and the name: an IP address
 * against the certificate's IP SANs, a host name against its DNS names.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bridge_i.h"

static void ssl_errtext(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "%s", strerror(errno ? errno : EIO));
	ERR_clear_error();
}

static bool is_ip(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* Called when the server asks for a client certificate and none is
 * configured: remember it, to name the cause when the server then drops
 * the connection (TLS 1.3 refuses after the handshake, at the first
 * command, by an alert or a reset). */
static int no_client_cert(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
	struct bridge *b = SSL_get_app_data(ssl);

	(void)x509;
	(void)pkey;
	if (b)
		b->tls_cert_asked = true;
	return 0;
}

/* The SSL_CTX, made once per bridge from the options. */
static SSL_CTX *tls_ctx(struct bridge *b)
{
	const struct bconf *cf = b->cf;
	char e[256];

	if (b->tls_ctx)
		return b->tls_ctx;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		ssl_errtext(e, sizeof(e));
		bridge_error(b, SHMSTAT_LOG_ERROR, "TLS: %s", e);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (cf->tls_ca_file || cf->tls_ca_dir) {
		if (SSL_CTX_load_verify_locations(ctx, cf->tls_ca_file,
						  cf->tls_ca_dir) != 1) {
			ssl_errtext(e, sizeof(e));
			bridge_error(b, SHMSTAT_LOG_ERROR,
				     "TLS: cannot load the CA %s '%s': %s",
				     cf->tls_ca_file ? "file" : "directory",
				     cf->tls_ca_file ? cf->tls_ca_file
						     : cf->tls_ca_dir,
				     e);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ssl_errtext(e, sizeof(e));
		bridge_error(b, SHMSTAT_LOG_ERROR,
			     "TLS: cannot load the system's CA store: %s", e);
		goto fail;
	}
	if (cf->tls_cert) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cf->tls_cert) != 1) {
			ssl_errtext(e, sizeof(e));
			bridge_error(b, SHMSTAT_LOG_ERROR,
				     "TLS: cannot load the client certificate "
				     "'%s': %s",
				     cf->tls_cert, e);
			goto fail;
		}
		const char *key = cf->tls_key ? cf->tls_key : cf->tls_cert;
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			ssl_errtext(e, sizeof(e));
			bridge_error(b, SHMSTAT_LOG_ERROR,
				     "TLS: cannot use the client key '%s': %s",
				     key, e);
			goto fail;
		}
	}
	if (!cf->tls_cert)
		SSL_CTX_set_client_cert_cb(ctx, no_client_cert);
	SSL_CTX_set_verify(ctx, cf->tls_no_verify ? SSL_VERIFY_NONE
						  : SSL_VERIFY_PEER,
			   NULL);
	b->tls_ctx = ctx;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_check(struct bridge *b)
{
	return tls_ctx(b) ? 0 : -1;
}

/* Why verification failed, in words an operator can act on. */
static void verify_text(const struct bridge *b, long v, const char *name,
			char *buf, size_t len)
{
	const char *what = X509_verify_cert_error_string(v);

	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		snprintf(buf, len,
			 "the server's certificate has expired (%s): renew it "
			 "on the Redis server",
			 what);
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		snprintf(buf, len,
			 "the server's certificate is not yet valid (%s): "
			 "check the clocks",
			 what);
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(buf, len,
			 "the server's certificate is not for '%s' (%s): "
			 "connect by a name it holds, or give that name with "
			 "--tls-server-name",
			 name, what);
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		snprintf(buf, len,
			 "the server's certificate is not signed by a trusted "
			 "CA (%s): give the CA that signed it with "
			 "--tls-ca-file or --tls-ca-dir%s",
			 what,
			 b->cf->tls_ca_file || b->cf->tls_ca_dir
				 ? " (the one given is not it)"
				 : "");
		break;
	default:
		snprintf(buf, len, "certificate verification failed: %s", what);
	}
}

int tls_start(struct bridge *b, const char *host)
{
	const struct bconf *cf = b->cf;
	redisContext *c = b->rc;
	SSL_CTX *ctx = tls_ctx(b);
	char e[256];

	if (!ctx)
		return -1;
	const char *name = cf->tls_server_name ? cf->tls_server_name : host;
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, c->fd) != 1) {
		ssl_errtext(e, sizeof(e));
		bridge_error(b, SHMSTAT_LOG_ERROR, "TLS: %s", e);
		SSL_free(ssl);
		return -1;
	}
	b->tls_cert_asked = false;
	SSL_set_app_data(ssl, b);
	if (!is_ip(name))
		SSL_set_tlsext_host_name(ssl, name);
	if (!cf->tls_no_verify) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		int ok = is_ip(name) ? X509_VERIFY_PARAM_set1_ip_asc(vp, name)
				     : X509_VERIFY_PARAM_set1_host(vp, name, 0);
		if (ok != 1) {
			ssl_errtext(e, sizeof(e));
			bridge_error(b, SHMSTAT_LOG_ERROR,
				     "TLS: bad server name '%s': %s", name, e);
			SSL_free(ssl);
			return -1;
		}
	}
	/* The handshake is bounded by the connect timeout, then commands by
	 * the command timeout (conn_open sets it after this). */
	uint64_t ms = cf->connect_timeout_ms;
	struct timeval tv = { (time_t)(ms / 1000),
			      (suseconds_t)(ms % 1000) * 1000 };
	redisSetTimeout(c, tv);
	ERR_clear_error();
	errno = 0;
	int r = SSL_connect(ssl);
	if (r != 1) {
		long v = SSL_get_verify_result(ssl);
		int se = SSL_get_error(ssl, r);
		if (v != X509_V_OK)
			verify_text(b, v, name, e, sizeof(e));
		else if ((se == SSL_ERROR_SYSCALL || se == SSL_ERROR_WANT_READ ||
			  se == SSL_ERROR_WANT_WRITE) &&
			 (errno == EAGAIN || errno == EWOULDBLOCK))
			snprintf(e, sizeof(e),
				 "no answer within the connect timeout "
				 "(%llu ms): is the port a TLS port?",
				 (unsigned long long)ms);
		else if (se == SSL_ERROR_SYSCALL && !ERR_peek_error())
			snprintf(e, sizeof(e),
				 "the server closed the connection during the "
				 "handshake (a plain port, or it refused our "
				 "certificate?)");
		else
			ssl_errtext(e, sizeof(e));
		ERR_clear_error();
		bridge_error(b, SHMSTAT_LOG_WARNING,
			     "TLS handshake with Redis %s failed: %s", cf->addr,
			     e);
		SSL_free(ssl);
		return -1;
	}
	b->tls = ssl;
	return 0;
}

void tls_close(struct bridge *b)
{
	if (b->tls) {
		SSL_free(b->tls);
		b->tls = NULL;
	}
}

void tls_fini(struct bridge *b)
{
	tls_close(b);
	if (b->tls_ctx) {
		SSL_CTX_free(b->tls_ctx);
		b->tls_ctx = NULL;
	}
}

/* Mark the context failed, as hiredis does on an I/O error. */
static int io_fail(struct bridge *b, int ssl_rc, const char *op)
{
	redisContext *c = b->rc;
	int se = SSL_get_error(b->tls, ssl_rc);
	int en = errno;
	char e[100];

	if (b->tls_cert_asked && ERR_GET_REASON(ERR_peek_error()) !=
					 SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED &&
	    (se == SSL_ERROR_ZERO_RETURN || se == SSL_ERROR_SYSCALL ||
	     se == SSL_ERROR_SSL) &&
	    en != EAGAIN && en != EWOULDBLOCK)
		snprintf(e, sizeof(e), "the server dropped the connection "
				       "after asking for a client certificate "
				       "(--tls-cert, --tls-key)");
	else if ((se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE ||
	     se == SSL_ERROR_SYSCALL) &&
	    (en == EAGAIN || en == EWOULDBLOCK))
		snprintf(e, sizeof(e), "timed out (command timeout %llu ms)",
			 (unsigned long long)b->cf->command_timeout_ms);
	else if (se == SSL_ERROR_ZERO_RETURN ||
		 (se == SSL_ERROR_SYSCALL && ssl_rc == 0))
		snprintf(e, sizeof(e), "connection closed by the server");
	else if (se == SSL_ERROR_SYSCALL && en)
		snprintf(e, sizeof(e), "%s", strerror(en));
	else if (ERR_GET_REASON(ERR_peek_error()) ==
		 SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)
		snprintf(e, sizeof(e), "the server requires a client "
				       "certificate (--tls-cert, --tls-key)");
	else if (ERR_GET_REASON(ERR_peek_error()) ==
			 SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
		 ERR_GET_REASON(ERR_peek_error()) ==
			 SSL_R_TLSV1_ALERT_UNKNOWN_CA)
		snprintf(e, sizeof(e), "the server refused our client "
				       "certificate");
	else
		ssl_errtext(e, sizeof(e));
	ERR_clear_error();
	c->err = REDIS_ERR_IO;
	snprintf(c->errstr, sizeof(c->errstr), "TLS %s: %s", op, e);
	return -1;
}

int tls_flush(struct bridge *b)
{
	redisContext *c = b->rc;

	if (c->err)
		return -1;
	while (sdslen(c->obuf) > 0) {
		size_t n = sdslen(c->obuf);
		if (n > (1u << 30))
			n = 1u << 30;
		ERR_clear_error();
		errno = 0;
		int w = SSL_write(b->tls, c->obuf, (int)n);
		if (w <= 0)
			return io_fail(b, w, "write");
		sdsrange(c->obuf, w, -1);
	}
	return 0;
}

redisReply *tls_reply(struct bridge *b)
{
	redisContext *c = b->rc;
	void *r = NULL;
	char buf[16384];

	if (c->err)
		return NULL;
	for (;;) {
		if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
			c->err = c->reader->err ? c->reader->err
						: REDIS_ERR_PROTOCOL;
			snprintf(c->errstr, sizeof(c->errstr), "%s",
				 c->reader->errstr);
			return NULL;
		}
		if (r) {
			b->tls_cert_asked = false; /* it accepted us */
			return r;
		}
		if (tls_flush(b) < 0)
			return NULL;
		ERR_clear_error();
		errno = 0;
		int n = SSL_read(b->tls, buf, sizeof(buf));
		if (n <= 0) {
			io_fail(b, n, "read");
			return NULL;
		}
		if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
			c->err = REDIS_ERR_PROTOCOL;
			snprintf(c->errstr, sizeof(c->errstr), "%s",
				 c->reader->errstr);
			return NULL;
		}
	}
}
