/* SPDX-License-Identifier: MIT */
/*
 * test-tls.c: TLS over loopback with real peers: the library's server and
 * client against each other, a bare wolfSSL client speaking TLS 1.1, and
 * openssl s_client speaking TLS 1.0. The certificates come from
 * tests/gen-pki.sh, run into the build directory at the start.
 *
 * Covered: one-way and mutual TLS (RSA and ECDSA); client certificates
 * missing, from another CA, expired; host name mismatch (and the opt-out);
 * an untrusted server; TLS 1.0/1.1 refused; each version with a chosen
 * cipher; configuration errors (lists that select nothing, TLS 1.2 suites
 * that no key of the server can serve, bad keys and passwords); ALPN
 * chosen by the server and mismatched; SNI choosing the certificate; resumption with tickets and
 * without; upgrade of a plain connection; the handshake deadline against a silent peer; the limit
 * on concurrent handshakes; reload under load; close_notify and half-close; fiber mode;
 * introspection.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include "sn_test.h"
#include "sn_fiber.h"
#include "sn_tls_int.h"

/* ---- the PKI ---------------------------------------------------------------------- */

/* The path of a PKI file (made by sn_test_pki on first use). */
static const char *pki(const char *name)
{
    return sn_test_pki(name);
}

static sn_tls_source ca_src, ca2_src;

#define CERT(base)                                                                                 \
    (sn_tls_cert)                                                                                  \
    {                                                                                              \
        .chain = {.file = pki(base ".pem")}, .key = {.file = pki(base ".key") }                    \
    }

/* ---- helpers ---------------------------------------------------------------------- */

static sn_tls *mk(const sn_tls_config *cfg)
{
    sn_tls *t = NULL;
    int rc = sn_tls_new(&t, cfg);
    SN_ASSERT_RC(rc, 0);
    return t;
}

static sn_tls *server_ctx(const char *base)
{
    sn_tls_config cfg = {.role = SN_TLS_SERVER};
    cfg.cert = (sn_tls_cert){.chain = {.file = pki(base)}};
    char key[1200];
    snprintf(key, sizeof key, "%s", pki(base));
    strcpy(strrchr(key, '.'), ".key");
    cfg.cert.key.file = key;
    return mk(&cfg);
}

static sn_tls *client_ctx(void)
{
    sn_tls_config cfg = {.role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1};
    return mk(&cfg);
}

/* What a server handler saw, copied out of the connection. */
typedef struct seen {
    atomic_int calls;
    int version;
    char cipher[96];
    char sni[96];
    char alpn[32];
    char peer_subject[256];
    int peer_count;
    int peer_verified;
    char local_subject[256];
    char sigalg[32]; /* the server's own signature, or "" */
    int first_read;  /* the first read's result */
} seen;

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

static void record(sn_conn *c, seen *s)
{
    sn_tls_info info;
    if (sn_tls_info_get(c, &info) != 0)
        return;
    s->version = info.version;
    copy(s->cipher, sizeof s->cipher, info.cipher);
    copy(s->sni, sizeof s->sni, info.server_name);
    copy(s->alpn, sizeof s->alpn, info.alpn);
    s->peer_verified = info.peer_verified;
    sn_tls_x509 x;
    s->peer_count = sn_tls_peer_cert(c, 0, &x);
    copy(s->peer_subject, sizeof s->peer_subject, s->peer_count > 0 ? x.subject : "");
    if (sn_tls_local_cert(c, &x) == 0)
        copy(s->local_subject, sizeof s->local_subject, x.subject);
    if (sn_tls_sigalg_used(c, s->sigalg, sizeof s->sigalg) < 0)
        s->sigalg[0] = '\0';
}

/* Echoes lines (waiting up to 30 s for each: under valgrind a connection may
 * sit idle while other tests in it run); records the first one's TLS state. */
static void echo(sn_conn *c, void *user)
{
    seen *s = user;
    if (s != NULL && atomic_load(&s->calls) == 0)
        record(c, s);
    char line[1024];
    ssize_t n;
    bool first = true;
    while ((n = sn_read_line(c, line, sizeof line, SN_LINE_LF, sn_deadline_in(30000))) >= 0) {
        first = false;
        if (sn_printf(c, 0, "%s\n", line) < 0 || sn_flush(c, 0) < 0)
            break;
    }
    if (s != NULL && first)
        s->first_read = (int)n;
    if (s != NULL)
        atomic_fetch_add(&s->calls, 1);
}

static sn_server *start(sn_tls *tls, sn_handler h, void *user, bool fibers)
{
    sn_server_config cfg = {.host = "127.0.0.1",
                            .tls = tls,
                            .handler = h,
                            .user = user,
                            .fibers = fibers ? SN_ON : 0,
                            .fiber_threads = 2};
    sn_server *s = NULL;
    SN_ASSERT_RC(sn_server_new(&s, &cfg), 0);
    if (s != NULL)
        SN_ASSERT_RC(sn_server_start(s), 0);
    return s;
}

static sn_server_stats sstats(sn_server *s)
{
    sn_server_stats st;
    sn_server_stats_get(s, &st);
    return st;
}

/* Connects over TCP to 127.0.0.1:port and upgrades with `name`. */
static int tls_dial(sn_conn **out, sn_tls *t, int port, const char *name)
{
    sn_conn *c;
    int rc = sn_conn_connect(&c, "127.0.0.1", port, NULL, NULL, sn_deadline_in(5000));
    if (rc < 0)
        return rc;
    if ((rc = sn_tls_upgrade(c, t, name, sn_deadline_in(5000))) < 0) {
        if (getenv("SN_TEST_VERBOSE"))
            fprintf(stderr, "upgrade: %s: %s\n", sn_err_name(rc), sn_tls_reason(c));
        sn_conn_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Starts an echo server, dials it and reads the client's TLS state. */
static sn_server *start_dial(sn_tls *st, sn_tls *ct, sn_conn **c, sn_tls_info *info)
{
    sn_server *s = start(st, echo, NULL, false);
    SN_ASSERT_RC(tls_dial(c, ct, sn_server_port(s), "localhost"), 0);
    SN_ASSERT_RC(sn_tls_info_get(*c, info), 0);
    return s;
}

/* A line round trip: 0, or the error (the first read is where a TLS 1.3
 * client learns that the server refused its certificate). */
static int roundtrip(sn_conn *c, const char *msg)
{
    char line[1024];
    int rc = (int)sn_printf(c, 0, "%s\n", msg);
    if (rc >= 0)
        rc = sn_flush(c, 0);
    if (rc >= 0)
        rc = (int)sn_read_line(c, line, sizeof line, SN_LINE_LF, sn_deadline_in(5000));
    if (rc >= 0 && strcmp(line, msg) != 0)
        rc = SN_EINVAL;
    return rc < 0 ? rc : 0;
}

/* Dials, round-trips one line, closes. */
static int dial_echo(sn_tls *t, int port, const char *name)
{
    sn_conn *c;
    int rc = tls_dial(&c, t, port, name);
    if (rc < 0)
        return rc;
    rc = roundtrip(c, "hello over tls");
    sn_conn_free(c);
    return rc;
}

static bool is_tls_error(int rc)
{
    return rc <= SN_ETLS && rc >= SN_ENOTLS;
}

/* ---- handshakes on a socket pair, without a server ---------------------------------- */

struct side {
    sn_conn *c;
    sn_tls *t;
    const char *name;
    int rc;
};

static void *server_side(void *arg)
{
    struct side *s = arg;
    s->rc = sn_tls_upgrade(s->c, s->t, NULL, sn_deadline_in(5000));
    if (s->rc < 0 && getenv("SN_TEST_VERBOSE"))
        fprintf(stderr, "server: %s\n", sn_tls_reason(s->c));
    if (s->rc < 0)
        sn_conn_close(s->c, 0); /* as a server does: the client sees the end */
    if (s->rc == 0) {
        sn_write_str(s->c, "ok\n", 0);
        s->rc = sn_flush(s->c, 0);
    }
    return NULL;
}

/* Runs both handshakes on a connected pair; *crc is the client's upgrade
 * or first read result. */
static void pair(sn_tls *st, sn_tls *ct, const char *name, int *src, int *crc)
{
    sn_sock *a, *b;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    struct side srv = {.t = st}, cli = {.t = ct, .name = name};
    SN_ASSERT_RC(sn_conn_new(&cli.c, a, NULL), 0);
    SN_ASSERT_RC(sn_conn_new(&srv.c, b, NULL), 0);
    pthread_t tid;
    pthread_create(&tid, NULL, server_side, &srv);
    cli.rc = sn_tls_upgrade(cli.c, ct, name, sn_deadline_in(5000));
    if (cli.rc == 0) {
        char line[16];
        ssize_t n = sn_read_line(cli.c, line, sizeof line, SN_LINE_LF, sn_deadline_in(5000));
        cli.rc = n < 0 ? (int)n : 0;
    }
    if (cli.rc < 0 && getenv("SN_TEST_VERBOSE"))
        fprintf(stderr, "client: %s\n", sn_tls_reason(cli.c));
    if (cli.rc < 0)
        sn_conn_close(cli.c, 0); /* the server may wait for more */
    pthread_join(tid, NULL);
    if (getenv("SN_TEST_VERBOSE"))
        fprintf(stderr, "pair: server %s (%s), client %s (%s)\n", sn_err_name(srv.rc),
                sn_tls_reason(srv.c), sn_err_name(cli.rc), sn_tls_reason(cli.c));
    *src = srv.rc;
    *crc = cli.rc;
    sn_conn_free(cli.c);
    sn_conn_free(srv.c);
}

/* ---- tests: basics ------------------------------------------------------------------ */

static void test_one_way(void)
{
    seen sv = {0};
    sn_tls *st = server_ctx("server-rsa.pem"), *ct = client_ctx();
    sn_server *s = start(st, echo, &sv, false);
    sn_conn *c;
    SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(s), "localhost"), 0);
    CU_ASSERT_EQUAL(sn_conn_is_tls(c), 1);
    SN_ASSERT_RC(roundtrip(c, "hello"), 0);

    sn_tls_info info;
    SN_ASSERT_RC(sn_tls_info_get(c, &info), 0);
    CU_ASSERT_EQUAL(info.version, SN_TLS_1_3);
    CU_ASSERT_STRING_EQUAL(info.version_name, "TLSv1.3");
    CU_ASSERT_PTR_NOT_NULL_FATAL(info.cipher);
    CU_ASSERT_EQUAL(strncmp(info.cipher, "TLS_", 4), 0);
    CU_ASSERT_STRING_EQUAL(info.server_name, "localhost");
    CU_ASSERT_EQUAL(info.peer_verified, 1);
    CU_ASSERT_EQUAL(info.verify_result, 0);
    CU_ASSERT_EQUAL(info.resumed, 0);
    CU_ASSERT_PTR_NULL(info.alpn);

    sn_tls_x509 x;
    SN_ASSERT_RC(sn_tls_peer_cert(c, 0, &x), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(x.subject, "CN=localhost"));
    CU_ASSERT_PTR_NOT_NULL(strstr(x.issuer, "CN=socknet test CA"));
    CU_ASSERT_PTR_NOT_NULL(strstr(x.san, "localhost"));
    CU_ASSERT(x.not_before > 1600000000 && x.not_before <= time(NULL));
    CU_ASSERT_EQUAL(x.not_after - x.not_before, 825 * 86400); /* gen-pki.sh: -days 825 */
    CU_ASSERT(strlen(x.serial) > 0);
    CU_ASSERT(x.der_len > 100 && x.der[0] == 0x30);
    char pem[8192];
    ssize_t n = sn_tls_x509_pem(&x, pem, sizeof pem);
    CU_ASSERT(n > 0 && strncmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0);
    SN_ASSERT_RC(sn_tls_x509_pem(&x, pem, 10), SN_ERANGE);
    SN_ASSERT_RC(sn_tls_peer_cert(c, 1, &x), SN_ENOENT);
    SN_ASSERT_RC(sn_tls_local_cert(c, &x), SN_ENOENT); /* the client sent none */
    char buf[64];
    SN_ASSERT_RC(sn_tls_peer_sigalgs(c, buf, sizeof buf), SN_ETLS_UNAVAILABLE);
    sn_conn_free(c);

    WAIT_UNTIL(atomic_load(&sv.calls) == 1, 5000);
    CU_ASSERT_EQUAL(sv.version, SN_TLS_1_3);
    CU_ASSERT_STRING_EQUAL(sv.sni, "localhost");
    CU_ASSERT_PTR_NOT_NULL(strstr(sv.local_subject, "CN=localhost"));
    CU_ASSERT_STRING_EQUAL(sv.sigalg, "RSA-PSS+SHA256"); /* RSA in TLS 1.3 is PSS */
    SN_ASSERT_RC(sv.peer_count, SN_ENOENT);
    sn_server_free(s);
    sn_tls_free(st);
    sn_tls_free(ct);
}

static void test_plain_conn_is_not_tls(void)
{
    sn_sock *a, *b;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    sn_conn *c;
    SN_ASSERT_RC(sn_conn_new(&c, a, NULL), 0);
    sn_tls_info info;
    sn_tls_x509 x;
    CU_ASSERT_EQUAL(sn_conn_is_tls(c), 0);
    SN_ASSERT_RC(sn_tls_info_get(c, &info), SN_ENOTLS);
    SN_ASSERT_RC(sn_tls_peer_cert(c, 0, &x), SN_ENOTLS);
    SN_ASSERT_RC(sn_tls_local_cert(c, &x), SN_ENOTLS);
    SN_ASSERT_RC(sn_tls_peer_sigalgs(c, NULL, 0), SN_ENOTLS);
    CU_ASSERT_STRING_EQUAL(sn_tls_reason(c), "");
    sn_conn_free(c);
    sn_sock_free(b);
}

static void test_mutual(void)
{
    const char *pairs[][2] = {{"server-rsa", "client-rsa"}, {"server-ec", "client-ec"}};
    for (int i = 0; i < 2; i++) {
        seen sv = {0};
        sn_tls_config scfg = {
            .role = SN_TLS_SERVER, .ca = &ca_src, .nca = 1, .verify = SN_TLS_VERIFY_REQUIRED};
        char chain[1200], key[1200];
        snprintf(chain, sizeof chain, "%s.pem", pki(pairs[i][0]));
        snprintf(key, sizeof key, "%s.key", pki(pairs[i][0]));
        scfg.cert = (sn_tls_cert){.chain = {.file = chain}, .key = {.file = key}};
        sn_tls *st = mk(&scfg);
        sn_tls_config ccfg = {.role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1};
        char cchain[1200], ckey[1200];
        snprintf(cchain, sizeof cchain, "%s.pem", pki(pairs[i][1]));
        snprintf(ckey, sizeof ckey, "%s.key", pki(pairs[i][1]));
        ccfg.cert = (sn_tls_cert){.chain = {.file = cchain}, .key = {.file = ckey}};
        sn_tls *ct = mk(&ccfg);
        sn_server *s = start(st, echo, &sv, false);
        sn_conn *c;
        SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(s), "localhost"), 0);
        SN_ASSERT_RC(roundtrip(c, "mutual"), 0);
        sn_tls_x509 x;
        SN_ASSERT_RC(sn_tls_local_cert(c, &x), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(x.subject, pairs[i][1]));
        char used[32];
        SN_ASSERT_RC(sn_tls_sigalg_used(c, used, sizeof used), i == 0 ? 14 : 12);
        CU_ASSERT_STRING_EQUAL(used, i == 0 ? "RSA-PSS+SHA256" : "ECDSA+SHA256");
        sn_conn_free(c);
        WAIT_UNTIL(atomic_load(&sv.calls) == 1, 5000);
        CU_ASSERT_PTR_NOT_NULL(strstr(sv.peer_subject, pairs[i][1]));
        CU_ASSERT_EQUAL(sv.peer_verified, 1);
        CU_ASSERT_EQUAL(sv.peer_count, 1);
        sn_server_free(s);
        sn_tls_free(st);
        sn_tls_free(ct);
    }
}

/* A server requiring client certificates against clients that have none,
 * one from another CA, an expired one: every handshake fails, on both
 * sides, and the handler never runs. Both versions. */
static void test_client_cert_rejected(void)
{
    const char *certs[] = {NULL, "client-ca2", "client-expired"};
    const int want_server[] = {SN_ETLS_NO_CERT, SN_ETLS_VERIFY, SN_ETLS_VERIFY};
    for (int v = 0; v < 2; v++) {
        int ver = v == 0 ? SN_TLS_1_2 : SN_TLS_1_3;
        sn_tls_config scfg = {.role = SN_TLS_SERVER,
                              .cert = CERT("server-rsa"),
                              .ca = &ca_src,
                              .nca = 1,
                              .verify = SN_TLS_VERIFY_REQUIRED,
                              .max_version = ver,
                              .min_version = ver};
        sn_tls *st = mk(&scfg);
        for (int i = 0; i < 3; i++) {
            sn_tls_config ccfg = {.role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1};
            char chain[1200], key[1200];
            if (certs[i] != NULL) {
                snprintf(chain, sizeof chain, "%s.pem", pki(certs[i]));
                snprintf(key, sizeof key, "%s.key", pki(certs[i]));
                ccfg.cert = (sn_tls_cert){.chain = {.file = chain}, .key = {.file = key}};
            }
            sn_tls *ct = mk(&ccfg);
            int src, crc;
            pair(st, ct, "localhost", &src, &crc);
            SN_ASSERT_RC(src, want_server[i]);
            CU_ASSERT(is_tls_error(crc) || crc == SN_EOF || crc == SN_ECONNRESET);
            sn_tls_free(ct);
        }
        sn_tls_free(st);
    }
}

static void test_optional_client_cert(void)
{
    sn_tls_config scfg = {.role = SN_TLS_SERVER,
                          .cert = CERT("server-rsa"),
                          .ca = &ca_src,
                          .nca = 1,
                          .verify = SN_TLS_VERIFY_OPTIONAL};
    sn_tls *st = mk(&scfg), *ct = client_ctx();
    int src, crc;
    pair(st, ct, "localhost", &src, &crc);
    SN_ASSERT_RC(src, 0);
    SN_ASSERT_RC(crc, 0);
    sn_tls_config bad = {
        .role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1, .cert = CERT("client-ca2")};
    sn_tls *ct2 = mk(&bad);
    pair(st, ct2, "localhost", &src, &crc);
    SN_ASSERT_RC(src, SN_ETLS_VERIFY); /* sent, so verified */
    sn_tls_free(st);
    sn_tls_free(ct);
    sn_tls_free(ct2);
}

static void test_hostname(void)
{
    sn_tls *st = server_ctx("server-wrong.pem"), *ct = client_ctx();
    int src, crc;
    pair(st, ct, "localhost", &src, &crc);
    SN_ASSERT_RC(crc, SN_ETLS_HOSTNAME);
    CU_ASSERT(src < 0);
    pair(st, ct, "wrong.example", &src, &crc);
    SN_ASSERT_RC(crc, 0);
    SN_ASSERT_RC(src, 0);

    /* the explicit opt-out: the chain is still verified */
    sn_tls_config cfg = {.role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1, .verify_hostname = SN_OFF};
    sn_tls *lax = mk(&cfg);
    pair(st, lax, "localhost", &src, &crc);
    SN_ASSERT_RC(crc, 0);
    /* a name is required while host names are checked */
    sn_sock *a, *b;
    sn_conn *c;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    SN_ASSERT_RC(sn_conn_new(&c, a, NULL), 0);
    SN_ASSERT_RC(sn_tls_upgrade(c, ct, NULL, sn_deadline_in(100)), SN_EINVAL);
    sn_conn_free(c);
    sn_sock_free(b);
    sn_tls_free(st);
    sn_tls_free(ct);
    sn_tls_free(lax);
}

static void test_untrusted_server(void)
{
    sn_tls *st = server_ctx("server-rsa.pem");
    sn_tls_config cfg = {.role = SN_TLS_CLIENT, .ca = &ca2_src, .nca = 1};
    sn_tls *ct = mk(&cfg);
    int src, crc;
    pair(st, ct, "localhost", &src, &crc);
    SN_ASSERT_RC(crc, SN_ETLS_VERIFY);
    CU_ASSERT(src < 0);
    /* no CA given: the system's, which do not know the test CA */
    sn_tls_config sys = {.role = SN_TLS_CLIENT};
    sn_tls *syst = mk(&sys);
    pair(st, syst, "localhost", &src, &crc);
    SN_ASSERT_RC(crc, SN_ETLS_VERIFY);
    sn_tls_free(syst);
    /* a directory of CA files */
    char dir[1200];
    snprintf(dir, sizeof dir, "%s", pki("cadir"));
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/'", dir, pki("ca.pem"), dir);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    sn_tls_config dcfg = {.role = SN_TLS_CLIENT, .ca_dir = dir};
    sn_tls *dirt = mk(&dcfg);
    pair(st, dirt, "localhost", &src, &crc);
    SN_ASSERT_RC(crc, 0);
    sn_tls_free(dirt);
    sn_tls_config none = {.role = SN_TLS_CLIENT, .verify = SN_TLS_VERIFY_NONE};
    sn_tls *blind = mk(&none);
    pair(st, blind, NULL, &src, &crc);
    SN_ASSERT_RC(crc, 0);
    sn_tls_free(st);
    sn_tls_free(ct);
    sn_tls_free(blind);
}

/* A plain TCP socket connected to the server (the test fails without). */
static int raw_dial(sn_server *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sn_addr a;
    sn_addr_from_ip(&a, "127.0.0.1", sn_server_port(s));
    CU_ASSERT_EQUAL_FATAL(connect(fd, &a.u.sa, a.len), 0);
    return fd;
}

/* A bare wolfSSL client session over fd, verifying nothing. */
static WOLFSSL *bare_session(int fd, WOLFSSL_METHOD *method, WOLFSSL_CTX **ctx)
{
    *ctx = wolfSSL_CTX_new(method);
    CU_ASSERT_PTR_NOT_NULL_FATAL(*ctx);
    wolfSSL_CTX_set_verify(*ctx, WOLFSSL_VERIFY_NONE, NULL);
    WOLFSSL *ssl = wolfSSL_new(*ctx);
    wolfSSL_set_fd(ssl, fd);
    return ssl;
}

/* ---- versions and ciphers -------------------------------------------------------------- */

/* A bare wolfSSL client speaking only TLS 1.1. */
static void test_tls11_refused(void)
{
    sn_tls *st = server_ctx("server-rsa.pem");
    sn_server *s = start(st, echo, NULL, false);
    int fd = raw_dial(s);
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl = bare_session(fd, wolfTLSv1_1_client_method(), &ctx);
    CU_ASSERT_NOT_EQUAL(wolfSSL_connect(ssl), WOLFSSL_SUCCESS);
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    close(fd);
    WAIT_UNTIL(sstats(s).tls_failures == 1, 5000);
    CU_ASSERT_EQUAL(sstats(s).tls_failures, 1);
    sn_server_free(s);
    sn_tls_free(st);
}

static void bye_handler(sn_conn *c, void *user)
{
    (void)user;
    sn_write_str(c, "bye", 0); /* the server flushes and closes after the handler */
}

/* A bare wolfSSL client sees the server's close as a close_notify
 * (WOLFSSL_ERROR_ZERO_RETURN), not as a bare end of TCP. */
static void test_close_notify(void)
{
    sn_tls *st = server_ctx("server-ec.pem");
    sn_server *s = start(st, bye_handler, NULL, false);
    int fd = raw_dial(s);
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl = bare_session(fd, wolfTLSv1_3_client_method(), &ctx);
    CU_ASSERT_EQUAL(wolfSSL_connect(ssl), WOLFSSL_SUCCESS);
    char buf[16];
    CU_ASSERT_EQUAL(wolfSSL_read(ssl, buf, sizeof buf), 3);
    int r = wolfSSL_read(ssl, buf, sizeof buf);
    CU_ASSERT_EQUAL(r, 0);
    CU_ASSERT_EQUAL(wolfSSL_get_error(ssl, r), WOLFSSL_ERROR_ZERO_RETURN);
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    close(fd);
    sn_server_free(s);
    sn_tls_free(st);
}

/* openssl s_client insisting on TLS 1.0. */
static void test_tls10_refused(void)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "openssl not found: TLS 1.0 not tried\n");
        return;
    }
    sn_tls *st = server_ctx("server-rsa.pem");
    sn_server *s = start(st, echo, NULL, false);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "echo hi | timeout 10 openssl s_client -connect 127.0.0.1:%d -tls1 "
             "-cipher DEFAULT@SECLEVEL=0 >/dev/null 2>&1",
             sn_server_port(s));
    CU_ASSERT_NOT_EQUAL(system(cmd), 0);
    WAIT_UNTIL(sstats(s).tls_failures == 1, 5000);
    CU_ASSERT_EQUAL(sstats(s).tls_failures, 1);
    sn_server_free(s);
    sn_tls_free(st);
}

static void test_versions_and_ciphers(void)
{
    struct {
        int ver;
        const char *c12, *c13, *iana;
    } cases[] = {
        {SN_TLS_1_2, "ECDHE-RSA-AES256-GCM-SHA384", NULL, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
        {SN_TLS_1_2, "ECDHE-RSA-CHACHA20-POLY1305", NULL,
         "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
        {SN_TLS_1_3, NULL, "TLS13-AES256-GCM-SHA384", "TLS_AES_256_GCM_SHA384"},
        {SN_TLS_1_3, NULL, "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"},
    };
    for (size_t i = 0; i < SN_ARRAY_SIZE(cases); i++) {
        sn_tls_config scfg = {.role = SN_TLS_SERVER,
                              .cert = CERT("server-rsa"),
                              .ciphers_tls12 = cases[i].c12,
                              .ciphers_tls13 = cases[i].c13};
        sn_tls *st = mk(&scfg);
        sn_tls_config ccfg = {.role = SN_TLS_CLIENT,
                              .ca = &ca_src,
                              .nca = 1,
                              .min_version = cases[i].ver,
                              .max_version = cases[i].ver};
        sn_tls *ct = mk(&ccfg);
        sn_conn *c;
        sn_tls_info info;
        sn_server *s = start_dial(st, ct, &c, &info);
        CU_ASSERT_EQUAL(info.version, cases[i].ver);
        CU_ASSERT_STRING_EQUAL(info.cipher, cases[i].iana);
        if (cases[i].c12 != NULL)
            CU_ASSERT_STRING_EQUAL(info.cipher_openssl, cases[i].c12);
        SN_ASSERT_RC(roundtrip(c, "cipher"), 0);
        sn_conn_free(c);
        sn_server_free(s);
        sn_tls_free(st);
        sn_tls_free(ct);
    }
}

/* The server's order by default, the client's on request; the group the
 * client asks for. */
static void test_cipher_order_and_group(void)
{
    const char *server_list = "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256";
    const char *client_list = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384";
    for (int order = 0; order < 2; order++) {
        sn_tls_config scfg = {.role = SN_TLS_SERVER,
                              .cert = CERT("server-rsa"),
                              .max_version = SN_TLS_1_2,
                              .ciphers_tls12 = server_list,
                              .prefer_server_ciphers = order ? SN_OFF : SN_ON};
        sn_tls_config ccfg = {.role = SN_TLS_CLIENT,
                              .ca = &ca_src,
                              .nca = 1,
                              .ciphers_tls12 = client_list,
                              .groups = "P-384"};
        sn_tls *st = mk(&scfg), *ct = mk(&ccfg);
        sn_conn *c;
        sn_tls_info info;
        sn_server *s = start_dial(st, ct, &c, &info);
        CU_ASSERT_STRING_EQUAL(info.cipher_openssl, order ? "ECDHE-RSA-AES128-GCM-SHA256"
                                                          : "ECDHE-RSA-AES256-GCM-SHA384");
        CU_ASSERT_PTR_NOT_NULL(info.group);
        if (info.group != NULL)
            CU_ASSERT_PTR_NOT_NULL(strstr(info.group, "384"));
        sn_conn_free(c);
        sn_server_free(s);
        sn_tls_free(st);
        sn_tls_free(ct);
    }
}

static void test_no_shared_cipher_or_version(void)
{
    sn_tls_config scfg = {.role = SN_TLS_SERVER,
                          .cert = CERT("server-rsa"),
                          .max_version = SN_TLS_1_2,
                          .ciphers_tls12 = "ECDHE-RSA-AES256-GCM-SHA384"};
    sn_tls *st = mk(&scfg);
    sn_tls_config ccfg = {.role = SN_TLS_CLIENT,
                          .ca = &ca_src,
                          .nca = 1,
                          .ciphers_tls12 = "ECDHE-RSA-CHACHA20-POLY1305"};
    sn_tls *ct = mk(&ccfg);
    int src, crc;
    pair(st, ct, "localhost", &src, &crc);
    SN_ASSERT_RC(src, SN_ETLS_CIPHER);
    CU_ASSERT(is_tls_error(crc));

    /* a TLS 1.3-only server and a TLS 1.2-only client (the other way
     * round, wolfSSL's TLS 1.2 server sees no suite it knows: SN_ETLS_CIPHER) */
    sn_tls_config s13 = {
        .role = SN_TLS_SERVER, .cert = CERT("server-rsa"), .min_version = SN_TLS_1_3};
    sn_tls_config c12 = {.role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1, .max_version = SN_TLS_1_2};
    sn_tls *st13 = mk(&s13), *ct13 = mk(&c12);
    pair(st13, ct13, "localhost", &src, &crc);
    SN_ASSERT_RC(src, SN_ETLS_VERSION);
    SN_ASSERT_RC(crc, SN_ETLS_VERSION);
    sn_tls_free(st13);
    sn_tls_free(st);
    sn_tls_free(ct);
    sn_tls_free(ct13);
}

static void test_config_errors(void)
{
    sn_tls *t = NULL;
    sn_tls_config c = {.role = SN_TLS_CLIENT, .ciphers_tls13 = "NOT-A-CIPHER"};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    /* a TLS 1.2 list naming only TLS 1.3 suites selects nothing for 1.2 */
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ciphers_tls12 = "TLS13-AES128-GCM-SHA256"};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .sigalgs = "FOO+BAR"};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .groups = "no-such-group"};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c = (sn_tls_config){
        .role = SN_TLS_CLIENT, .min_version = SN_TLS_1_3, .max_version = SN_TLS_1_2};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .min_version = 0x0302}; /* TLS 1.1 */
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_EINVAL);
    c = (sn_tls_config){.role = SN_TLS_SERVER};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c = (sn_tls_config){.role = 7};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_EINVAL);
    c = (sn_tls_config){
        .role = SN_TLS_SERVER,
        .cert = {.chain = {.file = pki("server-rsa.pem")}, .key = {.file = pki("server-ec.key")}}};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CERT);
    c = (sn_tls_config){.role = SN_TLS_SERVER,
                        .cert = {.chain = {.file = pki("nonexistent.pem")},
                                 .key = {.file = pki("server-rsa.key")}}};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ENOENT);
    c = (sn_tls_config){.role = SN_TLS_SERVER,
                        .cert = {.chain = {.file = pki("server-rsa.pem")},
                                 .key = {.file = pki("server-enc.key")},
                                 .password = "wrong"}};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CERT);
    c.cert.password = NULL;
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CERT);
    c.cert.password = "secret";
    SN_ASSERT_RC(sn_tls_new(&t, &c), 0);
    sn_tls_free(t);
    /* good lists are taken */
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ciphers_tls12 = "ECDHE-RSA-AES128-GCM-SHA256:TYPO"};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG); /* one bad name is enough */
    c = (sn_tls_config){.role = SN_TLS_CLIENT,
                        .sigalgs = "ECDSA+SHA256:RSA-PSS+SHA256",
                        .groups = "P-256:X25519",
                        .ciphers_tls13 = "TLS13-AES128-GCM-SHA256"};
    SN_ASSERT_RC(sn_tls_new(&t, &c), 0);
    sn_tls_free(t);
}

/* A server's TLS 1.2 suites must fit one of its keys (any certificate,
 * the default one or one per name); clients are not checked (they cannot
 * know the server's key), nor are signature algorithms. */
static void test_suites_fit_keys(void)
{
    const char *rsa12 = "ECDHE-RSA-AES128-GCM-SHA256";
    sn_tls *t = NULL;
    /* an ECDSA key and RSA suites only: with 1.2 alone, and with 1.3 too */
    sn_tls_config c = {.role = SN_TLS_SERVER,
                       .cert = CERT("server-ec"),
                       .max_version = SN_TLS_1_2,
                       .ciphers_tls12 = rsa12};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c.max_version = 0;
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c.min_version = SN_TLS_1_3; /* the 1.2 list is not used */
    SN_ASSERT_RC(sn_tls_new(&t, &c), 0);
    sn_tls_free(t);
    /* an RSA key and ECDSA suites, or PSK suites (no PSK can be set up) */
    c = (sn_tls_config){.role = SN_TLS_SERVER,
                        .cert = CERT("server-rsa"),
                        .max_version = SN_TLS_1_2,
                        .ciphers_tls12 = "ECDHE-ECDSA-AES128-GCM-SHA256"};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c.ciphers_tls12 = "PSK-CHACHA20-POLY1305";
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    /* one suite that fits is enough; anonymous suites need no key */
    c.ciphers_tls12 = "ECDHE-ECDSA-AES128-GCM-SHA256:PSK-CHACHA20-POLY1305:"
                      "DHE-RSA-AES128-GCM-SHA256";
    SN_ASSERT_RC(sn_tls_new(&t, &c), 0);
    sn_tls_free(t);
    c = (sn_tls_config){.role = SN_TLS_SERVER,
                        .cert = CERT("server-ec"),
                        .max_version = SN_TLS_1_2,
                        .ciphers_tls12 = "ADH-AES128-SHA"};
    SN_ASSERT_RC(sn_tls_new(&t, &c), 0);
    sn_tls_free(t);
    /* ...but not where certificates are verified: a server asking for client
     * certificates, or a client (verifying by default), would be fooled */
    c.verify = SN_TLS_VERIFY_REQUIRED;
    c.ca = &ca_src;
    c.nca = 1;
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c = (sn_tls_config){.role = SN_TLS_CLIENT,
                        .ca = &ca_src,
                        .nca = 1,
                        .ciphers_tls12 = "ECDHE-ECDSA-AES128-GCM-SHA256:AECDH-AES128-SHA"};
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c.ciphers_tls12 = "ADH-AES128-SHA";
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
    c.verify = SN_TLS_VERIFY_NONE; /* said outright: no authentication */
    SN_ASSERT_RC(sn_tls_new(&t, &c), 0);
    sn_tls_free(t);
    /* a client with an ECDSA certificate may list RSA suites */
    c = (sn_tls_config){.role = SN_TLS_CLIENT,
                        .cert = CERT("client-ec"),
                        .ca = &ca_src,
                        .nca = 1,
                        .max_version = SN_TLS_1_2,
                        .ciphers_tls12 = rsa12};
    SN_ASSERT_RC(sn_tls_new(&t, &c), 0);
    sn_tls_free(t);

    /* RSA suites with an RSA key: taken, and a handshake uses them */
    sn_tls_config scfg = {.role = SN_TLS_SERVER,
                          .cert = CERT("server-rsa"),
                          .max_version = SN_TLS_1_2,
                          .ciphers_tls12 = rsa12};
    sn_tls *st = mk(&scfg), *ct = client_ctx();
    sn_conn *cc;
    sn_tls_info info;
    sn_server *s = start_dial(st, ct, &cc, &info);
    CU_ASSERT_STRING_EQUAL(info.cipher_openssl, rsa12);
    SN_ASSERT_RC(roundtrip(cc, "rsa suites, rsa key"), 0);
    sn_conn_free(cc);
    sn_server_free(s);
    sn_tls_free(st);

    /* certificates per name: an RSA one fits although the default (ECDSA)
     * does not; a client asking for that name gets it, one asking for
     * the default's cannot agree on a suite */
    sn_tls_cert other = CERT("server-other");
    other.name = "other.test";
    scfg = (sn_tls_config){.role = SN_TLS_SERVER,
                           .cert = CERT("server-ec"),
                           .sni_certs = &other,
                           .nsni_certs = 1,
                           .max_version = SN_TLS_1_2,
                           .ciphers_tls12 = rsa12};
    st = mk(&scfg);
    s = start(st, echo, NULL, false);
    if (tls_dial(&cc, ct, sn_server_port(s), "other.test") == 0) {
        SN_ASSERT_RC(sn_tls_info_get(cc, &info), 0);
        CU_ASSERT_STRING_EQUAL(info.cipher_openssl, rsa12);
        SN_ASSERT_RC(roundtrip(cc, "by name"), 0);
        sn_conn_free(cc);
    } else {
        CU_FAIL("no handshake with other.test");
    }
    CU_ASSERT(is_tls_error(tls_dial(&cc, ct, sn_server_port(s), "localhost")));
    sn_server_free(s);
    sn_tls_free(st);
    /* ... but ECDSA keys for every name still serve no RSA suite */
    sn_tls_cert ec_named = CERT("server-ec");
    ec_named.name = "ec.test";
    scfg.sni_certs = &ec_named;
    SN_ASSERT_RC(sn_tls_new(&t, &scfg), SN_ETLS_CONFIG);

    /* signature algorithms without the key's type are not an error:
     * wolfSSL signs with ECDSA anyway, and the client accepts it */
    scfg = (sn_tls_config){
        .role = SN_TLS_SERVER, .cert = CERT("server-ec"), .sigalgs = "RSA-PSS+SHA256:RSA+SHA256"};
    for (int v = 0; v < 2; v++) {
        scfg.max_version = v == 0 ? SN_TLS_1_2 : SN_TLS_1_3;
        st = mk(&scfg);
        sn_tls *fresh = client_ctx();
        int src, crc;
        pair(st, fresh, "localhost", &src, &crc);
        SN_ASSERT_RC(src, 0);
        SN_ASSERT_RC(crc, 0);
        sn_tls_free(st);
        sn_tls_free(fresh);
    }
    sn_tls_free(ct);
}

/* Certificates and CAs from memory, PEM and DER. */
static void test_memory_sources(void)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "openssl x509 -in %s -outform DER -out %s", pki("ca.pem"),
             pki("ca.der"));
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    FILE *f = fopen(pki("ca.der"), "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static uint8_t der[4096], pem[8192], key[8192];
    size_t dlen = fread(der, 1, sizeof der, f);
    fclose(f);
    f = fopen(pki("server-ec.pem"), "rb");
    size_t plen = fread(pem, 1, sizeof pem, f);
    fclose(f);
    f = fopen(pki("server-ec.key"), "rb");
    size_t klen = fread(key, 1, sizeof key, f);
    fclose(f);
    sn_tls_config scfg = {
        .role = SN_TLS_SERVER,
        .cert = {.chain = {.data = pem, .len = plen}, .key = {.data = key, .len = klen}}};
    sn_tls *st = mk(&scfg);
    sn_tls_source mem_ca = {.data = der, .len = dlen};
    sn_tls_config ccfg = {
        .role = SN_TLS_CLIENT, .ca = &mem_ca, .nca = 1, .sigalgs = "ECDSA+SHA256"};
    sn_tls *ct = mk(&ccfg);
    sn_conn *c;
    sn_tls_info info;
    sn_server *s = start_dial(st, ct, &c, &info);
    CU_ASSERT_STRING_EQUAL(info.sigalgs, "ECDSA+SHA256");
    char used[64];
    /* the client did not sign; the server's signature is not recorded */
    SN_ASSERT_RC(sn_tls_sigalg_used(c, used, sizeof used), SN_ETLS_UNAVAILABLE);
    SN_ASSERT_RC(roundtrip(c, "from memory"), 0);
    sn_conn_free(c);
    sn_server_free(s);
    sn_tls_free(st);
    sn_tls_free(ct);
}

/* ---- ALPN and SNI ----------------------------------------------------------------------- */

static void test_alpn(void)
{
    sn_tls_config scfg = {.role = SN_TLS_SERVER, .cert = CERT("server-rsa"), .alpn = "h2,http/1.1"};
    sn_tls *st = mk(&scfg);
    seen sv = {0};
    sn_server *s = start(st, echo, &sv, false);
    /* the server's preference wins over the client's order */
    sn_tls_config ccfg = {.role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1, .alpn = "http/1.1,h2"};
    sn_tls *ct = mk(&ccfg);
    sn_conn *c;
    SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(s), "localhost"), 0);
    sn_tls_info info;
    SN_ASSERT_RC(sn_tls_info_get(c, &info), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info.alpn);
    CU_ASSERT_STRING_EQUAL(info.alpn, "h2");
    SN_ASSERT_RC(roundtrip(c, "alpn"), 0);
    sn_conn_free(c);
    WAIT_UNTIL(atomic_load(&sv.calls) == 1, 5000);
    CU_ASSERT_STRING_EQUAL(sv.alpn, "h2");
    sn_server_free(s);

    /* no overlap: an error on both sides by default */
    sn_tls_config other = {.role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1, .alpn = "spdy/3"};
    sn_tls *ct2 = mk(&other);
    int src, crc;
    pair(st, ct2, "localhost", &src, &crc);
    SN_ASSERT_RC(src, SN_ETLS_ALPN);
    SN_ASSERT_RC(crc, SN_ETLS_ALPN);

    /* or go on without, when both say so */
    scfg.alpn_required = SN_OFF;
    other.alpn_required = SN_OFF;
    sn_tls *st3 = mk(&scfg), *ct3 = mk(&other);
    pair(st3, ct3, "localhost", &src, &crc);
    SN_ASSERT_RC(src, 0);
    SN_ASSERT_RC(crc, 0);
    /* a client offering no ALPN is served */
    sn_tls *plain = client_ctx();
    pair(st, plain, "localhost", &src, &crc);
    SN_ASSERT_RC(src, 0);
    SN_ASSERT_RC(crc, 0);
    sn_tls_free(plain);
    sn_tls_free(st);
    sn_tls_free(ct);
    sn_tls_free(ct2);
    sn_tls_free(st3);
    sn_tls_free(ct3);
}

static void test_sni(void)
{
    sn_tls_cert other = CERT("server-other");
    other.name = "other.test";
    sn_tls_cert wild = CERT("server-other");
    wild.name = "*.other.test";
    sn_tls_cert list[] = {other, wild};
    sn_tls_config scfg = {
        .role = SN_TLS_SERVER, .cert = CERT("server-rsa"), .sni_certs = list, .nsni_certs = 2};
    sn_tls *st = mk(&scfg), *ct = client_ctx();
    seen sv = {0};
    sn_server *s = start(st, echo, &sv, false);
    const char *names[] = {"other.test", "www.other.test", "localhost"};
    const char *want[] = {"CN=other.test", "CN=other.test", "CN=localhost"};
    for (int i = 0; i < 3; i++) {
        sn_conn *c;
        SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(s), names[i]), 0);
        sn_tls_x509 x;
        SN_ASSERT_RC(sn_tls_peer_cert(c, 0, &x), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(x.subject, want[i]));
        SN_ASSERT_RC(roundtrip(c, names[i]), 0);
        sn_conn_free(c);
    }
    WAIT_UNTIL(atomic_load(&sv.calls) == 3, 5000);
    CU_ASSERT_STRING_EQUAL(sv.sni, "other.test");
    sn_server_free(s);
    sn_tls_free(st);
    sn_tls_free(ct);
}

/* ---- resumption ---------------------------------------------------------------------- */

static int resumed_after_two(sn_tls *ct, int port)
{
    int resumed = -1;
    for (int i = 0; i < 2; i++) {
        sn_conn *c;
        if (tls_dial(&c, ct, port, "localhost") < 0)
            return -1;
        roundtrip(c, "resume"); /* reads the TLS 1.3 ticket */
        sn_tls_info info;
        sn_tls_info_get(c, &info);
        if (i == 0 && info.resumed)
            return -2;
        resumed = info.resumed;
        sn_conn_free(c);
    }
    return resumed;
}

static void test_resumption(void)
{
    for (int v = 0; v < 2; v++) {
        int ver = v == 0 ? SN_TLS_1_2 : SN_TLS_1_3;
        for (int tickets = 0; tickets < 2; tickets++) {
            sn_tls_config scfg = {.role = SN_TLS_SERVER,
                                  .cert = CERT("server-rsa"),
                                  .tickets = tickets ? SN_ON : SN_OFF};
            sn_tls_config ccfg = {.role = SN_TLS_CLIENT,
                                  .ca = &ca_src,
                                  .nca = 1,
                                  .max_version = ver,
                                  .min_version = ver,
                                  .tickets = tickets ? SN_ON : SN_OFF};
            sn_tls *st = mk(&scfg), *ct = mk(&ccfg);
            sn_server *s = start(st, echo, NULL, false);
            int r = resumed_after_two(ct, sn_server_port(s));
            if (r != tickets)
                fprintf(stderr, "version %x tickets %d: resumed %d\n", ver, tickets, r);
            CU_ASSERT_EQUAL(r, tickets);
            sn_server_free(s);
            sn_tls_free(st);
            sn_tls_free(ct);
        }
    }
}

/* A client that allows TLS 1.3 keeps no TLS 1.2 session: offered to a
 * server under the same name that now speaks TLS 1.3 (a new server, or new
 * settings), wolfSSL 5.5 would fail that handshake. */
static void test_resumption_across_versions(void)
{
    sn_tls_config old_cfg = {
        .role = SN_TLS_SERVER, .cert = CERT("server-rsa"), .max_version = SN_TLS_1_2};
    sn_tls_config new_cfg = {.role = SN_TLS_SERVER, .cert = CERT("server-rsa")};
    sn_tls *old_st = mk(&old_cfg), *new_st = mk(&new_cfg), *ct = client_ctx();
    sn_server *old_s = start(old_st, echo, NULL, false), *new_s = start(new_st, echo, NULL, false);
    /* TLS 1.2 with the old server: not resumed, so nothing is kept */
    CU_ASSERT_EQUAL(resumed_after_two(ct, sn_server_port(old_s)), 0);
    sn_conn *c;
    SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(old_s), "localhost"), 0);
    SN_ASSERT_RC(roundtrip(c, "old"), 0);
    sn_conn_free(c);
    /* the same name, now TLS 1.3: a full handshake that works */
    SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(new_s), "localhost"), 0);
    SN_ASSERT_RC(roundtrip(c, "new"), 0);
    sn_tls_info info;
    SN_ASSERT_RC(sn_tls_info_get(c, &info), 0);
    CU_ASSERT_EQUAL(info.version, SN_TLS_1_3);
    CU_ASSERT_EQUAL(info.resumed, 0);
    sn_conn_free(c);
    /* and its TLS 1.3 session is resumed as before */
    SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(new_s), "localhost"), 0);
    SN_ASSERT_RC(roundtrip(c, "again"), 0);
    SN_ASSERT_RC(sn_tls_info_get(c, &info), 0);
    CU_ASSERT_EQUAL(info.resumed, 1);
    sn_conn_free(c);
    sn_server_free(old_s);
    sn_server_free(new_s);
    sn_tls_free(old_st);
    sn_tls_free(new_st);
    sn_tls_free(ct);
}

/* ---- upgrade (STARTTLS) ------------------------------------------------------------- */

static sn_tls *starttls_ctx;

static void starttls_handler(sn_conn *c, void *user)
{
    seen *s = user;
    char line[256];
    if (sn_read_line(c, line, sizeof line, SN_LINE_CRLF, sn_deadline_in(5000)) < 0 ||
        strcmp(line, "STARTTLS") != 0)
        return;
    sn_write_str(c, "OK\r\n", 0); /* flushed by the upgrade */
    if (sn_tls_upgrade(c, starttls_ctx, NULL, 0) < 0)
        return;
    echo(c, s);
}

static void test_upgrade(void)
{
    seen sv = {0};
    starttls_ctx = server_ctx("server-rsa.pem");
    sn_tls *ct = client_ctx();
    sn_server *s = start(NULL, starttls_handler, &sv, false);
    sn_conn *c;
    SN_ASSERT_RC(sn_conn_connect(&c, "127.0.0.1", sn_server_port(s), NULL, NULL, 0), 0);
    CU_ASSERT_EQUAL(sn_conn_is_tls(c), 0);
    sn_write_str(c, "STARTTLS\r\n", 0);
    SN_ASSERT_RC(sn_flush(c, 0), 0);
    char line[64];
    SN_ASSERT_RC(sn_read_line(c, line, sizeof line, SN_LINE_CRLF, sn_deadline_in(5000)), 2);
    SN_ASSERT_RC(sn_tls_upgrade(c, ct, "localhost", sn_deadline_in(5000)), 0);
    CU_ASSERT_EQUAL(sn_conn_is_tls(c), 1);
    SN_ASSERT_RC(roundtrip(c, "now secret"), 0);
    SN_ASSERT_RC(sn_tls_upgrade(c, ct, "localhost", 0), SN_EBADSTATE); /* once */
    sn_conn_free(c);
    WAIT_UNTIL(atomic_load(&sv.calls) == 1, 5000);
    CU_ASSERT_EQUAL(sv.version, SN_TLS_1_3);
    sn_server_free(s);

    /* bytes already buffered when the upgrade comes: refused */
    sn_sock *a, *b;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    SN_ASSERT_RC(sn_conn_new(&c, a, NULL), 0);
    send(sn_sock_fd(b), "x\nearly", 7, 0);
    SN_ASSERT_RC(sn_read_line(c, line, sizeof line, SN_LINE_LF, sn_deadline_in(5000)), 1);
    SN_ASSERT_RC(sn_tls_upgrade(c, ct, "localhost", 0), SN_EBADSTATE);
    sn_conn_free(c);
    sn_sock_free(b);
    sn_tls_free(starttls_ctx);
    sn_tls_free(ct);
}

/* ---- deadlines, limits, close --------------------------------------------------------- */

static void test_handshake_deadline(void)
{
    sn_tls_config scfg = {
        .role = SN_TLS_SERVER, .cert = CERT("server-rsa"), .handshake_timeout_ms = 300};
    sn_tls *st = mk(&scfg);
    seen sv = {0};
    sn_server *s = start(st, echo, &sv, false);
    /* a peer that connects and never speaks */
    int fd = raw_dial(s);
    char b;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CU_ASSERT_EQUAL(recv(fd, &b, 1, 0), 0); /* closed by the server */
    WAIT_UNTIL(sstats(s).tls_failures == 1, 5000);
    CU_ASSERT_EQUAL(sstats(s).tls_failures, 1);
    CU_ASSERT_EQUAL(atomic_load(&sv.calls), 0);
    close(fd);
    sn_server_free(s);

    /* the client side: a server that accepts and never answers */
    sn_sock *x, *y;
    SN_ASSERT_RC(sn_test_sock_pair(&x, &y), 0);
    sn_conn *c;
    SN_ASSERT_RC(sn_conn_new(&c, x, NULL), 0);
    sn_tls *ct = client_ctx();
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_tls_upgrade(c, ct, "localhost", sn_deadline_in(200)), SN_ETIMEDOUT);
    CU_ASSERT(sn_now_ms() - t0 < 3000);
    CU_ASSERT(strlen(sn_tls_reason(c)) > 0);
    SN_ASSERT_RC(sn_read(c, &b, 1, 0), SN_ETIMEDOUT); /* sticky */
    sn_conn_free(c);
    sn_sock_free(y);
    sn_tls_free(ct);
    sn_tls_free(st);
}

static void cancel_conn(void *arg)
{
    SN_ASSERT_RC(sn_conn_cancel(arg), 0);
}

/* A handshake waiting for a server that never answers returns
 * SN_ECANCELED at once when another thread cancels the connection. */
static void test_cancel_mid_handshake(void)
{
    sn_sock *x, *y;
    sn_conn *c;
    char b;
    SN_ASSERT_RC(sn_test_sock_pair(&x, &y), 0);
    SN_ASSERT_RC(sn_conn_new(&c, x, NULL), 0);
    sn_tls *ct = client_ctx();
    sn_test_later *l = sn_test_later_start(100, cancel_conn, c);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_tls_upgrade(c, ct, "localhost", SN_DEADLINE_NEVER), SN_ECANCELED);
    CU_ASSERT(sn_now_ms() - t0 >= 90 && sn_now_ms() - t0 < 2000);
    sn_test_later_join(l);
    SN_ASSERT_RC(sn_read(c, &b, 1, 0), SN_ECANCELED);
    sn_conn_free(c);
    sn_sock_free(y);
    sn_tls_free(ct);
}

struct dialer {
    sn_tls *t;
    int port, n, ok;
    int64_t until;
};

static void *dial_loop(void *arg)
{
    struct dialer *d = arg;
    for (int i = 0; i < d->n && sn_now_ms() < d->until; i++)
        if (dial_echo(d->t, d->port, "localhost") == 0)
            d->ok++;
        else
            d->ok = -1000000;
    return NULL;
}

/* One handshake at a time and six clients dialing at once, each within its
 * 5 s deadline: every one completes, in thread mode (waiters sleep until
 * a turn is given back: a lost wake-up leaves one asleep until its
 * deadline) and in fiber mode (waiters poll). */
static void test_handshake_limit(void)
{
    sn_tls_config scfg = {.role = SN_TLS_SERVER, .cert = CERT("server-ec"), .handshakes_max = 1};
    sn_tls *st = mk(&scfg), *ct = client_ctx();
    for (int fibers = 0; fibers < 2; fibers++) {
        sn_server *s = start(st, echo, NULL, fibers);
        struct dialer d[6];
        pthread_t tid[6];
        for (int i = 0; i < 6; i++) {
            d[i] = (struct dialer){ct, sn_server_port(s), 5, 0, sn_now_ms() + 20000};
            pthread_create(&tid[i], NULL, dial_loop, &d[i]);
        }
        int ok = 0;
        for (int i = 0; i < 6; i++) {
            pthread_join(tid[i], NULL);
            ok += d[i].ok;
        }
        CU_ASSERT_EQUAL(ok, 30);
        CU_ASSERT_EQUAL(sstats(s).tls_failures, 0);
        sn_server_free(s);
    }
    sn_tls_free(st);
    sn_tls_free(ct);
}

/* A client upgrading its end of a socket pair (the server side's turn
 * test below); its result does not matter. */
static void *client_hello(void *arg)
{
    struct side *cl = arg;
    cl->rc = sn_tls_upgrade(cl->c, cl->t, "localhost", sn_deadline_in(5000));
    return NULL;
}

/* With one handshake at a time, a peer that never speaks holds the turn
 * until its deadline: a handshake whose deadline comes first fails with
 * SN_ETIMEDOUT without starting, and a real client that came later
 * completes only after that handshake has failed. */
static void test_handshake_limit_waits(void)
{
    sn_tls_config scfg = {.role = SN_TLS_SERVER,
                          .cert = CERT("server-ec"),
                          .handshakes_max = 1,
                          .handshake_timeout_ms = 3000};
    sn_tls *st = mk(&scfg), *ct = client_ctx();
    sn_server *s = start(st, echo, NULL, false);
    int fd = raw_dial(s);
    WAIT_UNTIL(sstats(s).active == 1, 5000); /* its handshake holds the turn */

    /* a server-side upgrade on the same context whose deadline comes
     * before the turn is free gives up without starting: the client's
     * hello is still unread */
    sn_sock *a, *b;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    struct side cl = {.t = ct};
    sn_conn *sc;
    SN_ASSERT_RC(sn_conn_new(&cl.c, a, NULL), 0);
    SN_ASSERT_RC(sn_conn_new(&sc, b, NULL), 0);
    pthread_t tid;
    pthread_create(&tid, NULL, client_hello, &cl);
    char peek[5];
    int fd_b = sn_sock_fd(sn_conn_sock(sc));
    WAIT_UNTIL(recv(fd_b, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT) == 5, 5000);
    SN_ASSERT_RC(sn_tls_upgrade(sc, st, NULL, sn_deadline_in(200)), SN_ETIMEDOUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(sn_tls_reason(sc), "no handshake turn"));
    CU_ASSERT_EQUAL(recv(fd_b, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT), 5);
    CU_ASSERT_EQUAL(peek[0], 22);               /* a handshake record */
    CU_ASSERT_EQUAL(sstats(s).tls_failures, 0); /* the silent peer holds the turn still */
    sn_conn_free(sc);                           /* the client sees the end */
    pthread_join(tid, NULL);
    CU_ASSERT(cl.rc < 0);
    sn_conn_free(cl.c);

    sn_test_sleep_ms(400); /* ours then has ~600 ms of its deadline left after the turn */
    sn_conn *c;
    SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(s), "localhost"), 0);
    /* the silent one failed first (its worker counts it just after it gives
     * the turn back, so ours may be done a moment before the count is) */
    WAIT_UNTIL(sstats(s).tls_failures >= 1, 5000);
    CU_ASSERT_EQUAL(sstats(s).tls_failures, 1);
    SN_ASSERT_RC(roundtrip(c, "after my turn"), 0);
    sn_conn_free(c);
    close(fd);
    sn_server_free(s);
    sn_tls_free(st);
    sn_tls_free(ct);
}

/* Swaps the certificate while clients come and go and one connection
 * stays open across the swap. */
static void test_reload_under_load(void)
{
    sn_tls *rsa = server_ctx("server-rsa.pem"), *ecc = server_ctx("server-ec.pem");
    sn_tls *ct = client_ctx();
    sn_server *s = start(rsa, echo, NULL, false);
    int port = sn_server_port(s);
    sn_conn *old;
    SN_ASSERT_RC(tls_dial(&old, ct, port, "localhost"), 0);
    struct dialer d[4];
    pthread_t tid[4];
    for (int i = 0; i < 4; i++) {
        d[i] = (struct dialer){ct, port, 20, 0, sn_now_ms() + 20000};
        pthread_create(&tid[i], NULL, dial_loop, &d[i]);
    }
    sn_test_sleep_ms(50);
    SN_ASSERT_RC(sn_server_set_tls(s, -1, ecc), 0);
    SN_ASSERT_RC(sn_server_set_tls(s, 0, ct), SN_EINVAL); /* a client context */
    SN_ASSERT_RC(sn_server_set_tls(s, 1, ecc), SN_EINVAL);
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
        ok += d[i].ok;
    }
    CU_ASSERT_EQUAL(ok, 80);
    SN_ASSERT_RC(roundtrip(old, "still here"), 0); /* the old session goes on */
    sn_tls_x509 x;
    sn_conn_free(old);
    sn_tls_config nt = {.role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1, .tickets = SN_OFF};
    sn_tls *ct_full = mk(&nt); /* no resumption: a resumed session keeps its certificate */
    sn_conn *fresh;
    SN_ASSERT_RC(tls_dial(&fresh, ct_full, port, "localhost"), 0);
    sn_tls_peer_cert(fresh, 0, &x);
    static char pem[8192], file[8192];
    CU_ASSERT(sn_tls_x509_pem(&x, pem, sizeof pem) > 0);
    FILE *f = fopen(pki("server-ec.pem"), "r");
    size_t flen = f != NULL ? fread(file, 1, sizeof file - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    file[flen] = '\0';
    CU_ASSERT_STRING_EQUAL(pem, file); /* the new certificate, byte for byte */
    sn_conn_free(fresh);
    sn_tls_free(ct_full);
    CU_ASSERT_EQUAL(sstats(s).tls_failures, 0);
    sn_server_free(s);
    sn_tls_free(rsa);
    sn_tls_free(ecc);
    sn_tls_free(ct);
}

/* Half-close and close_notify: the client ends its side and still reads
 * the answer; the server sees a clean end of stream. */
static void half_close_handler(sn_conn *c, void *user)
{
    seen *s = user;
    char buf[256];
    size_t got = 0;
    ssize_t n;
    while ((n = sn_read(c, buf + got, sizeof buf - got, sn_deadline_in(5000))) > 0)
        got += (size_t)n;
    s->first_read = (int)n; /* how the stream ended */
    sn_printf(c, 0, "got %zu\n", got);
    sn_flush(c, 0);
    atomic_fetch_add(&s->calls, 1);
}

static void test_half_close(void)
{
    for (int fib = 0; fib < 2; fib++) {
        sn_tls *st = server_ctx("server-rsa.pem"), *ct = client_ctx();
        seen sv = {0};
        sn_server *s = start(st, half_close_handler, &sv, fib);
        sn_conn *c;
        SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(s), "localhost"), 0);
        sn_write_str(c, "0123456789", 0);
        SN_ASSERT_RC(sn_shutdown_write(c, 0), 0);
        char line[64];
        SN_ASSERT_RC(sn_read_line(c, line, sizeof line, SN_LINE_LF, sn_deadline_in(5000)), 6);
        CU_ASSERT_STRING_EQUAL(line, "got 10");
        /* the server's close sent close_notify: a clean end */
        SN_ASSERT_RC(sn_read_line(c, line, sizeof line, SN_LINE_LF, sn_deadline_in(5000)), SN_EOF);
        WAIT_UNTIL(atomic_load(&sv.calls) == 1, 5000);
        SN_ASSERT_RC(sv.first_read, SN_EOF);
        sn_conn_free(c);
        sn_server_free(s);
        sn_tls_free(st);
        sn_tls_free(ct);
    }
}

/* Echoes raw bytes as they come. */
static void raw_echo(sn_conn *c, void *user)
{
    (void)user;
    char buf[16384];
    ssize_t n;
    while ((n = sn_read(c, buf, sizeof buf, sn_deadline_in(5000))) > 0)
        if (sn_write(c, buf, (size_t)n, 0) < 0 || sn_flush(c, 0) < 0)
            break;
}

/* A large transfer byte for byte and many round trips in fiber mode; the
 * stop wakes a handler blocked in a TLS read. */
static void test_fibers_bulk_and_stop(void)
{
    sn_tls *st = server_ctx("server-ec.pem"), *ct = client_ctx();
    sn_server *s = start(st, raw_echo, NULL, true);
    sn_conn *c;
    SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(s), "localhost"), 0);
    enum { BIG = 300000 };
    static char big[BIG], back[BIG];
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)(i * 7 + i / 251);
    SN_ASSERT_RC(sn_write(c, big, BIG, 0), BIG);
    SN_ASSERT_RC(sn_flush(c, 0), 0);
    SN_ASSERT_RC(sn_read_exact(c, back, BIG, sn_deadline_in(10000)), BIG);
    CU_ASSERT_EQUAL(memcmp(big, back, BIG), 0);
    for (int i = 0; i < 200; i++)
        if (roundtrip(c, "fiber") != 0) {
            CU_FAIL("round trip");
            break;
        }
    /* the handler is now blocked in a TLS read: stop wakes it */
    SN_ASSERT_RC(sn_server_stop(s, 2000), 0);
    sn_conn_free(c);
    sn_server_free(s);
    sn_tls_free(st);
    sn_tls_free(ct);
}

/* One thread reads while another writes on the same TLS connection: the
 * reader blocks in the kernel (outside the session lock) while the writer
 * encrypts; every byte comes back in order. Then a read times out without
 * harming the connection, and stop wakes a thread-mode handler blocked in
 * a TLS read. */
enum { RW_TOTAL = 2000000 };

static unsigned char rw_byte(size_t i)
{
    return (unsigned char)(i * 131 + i / 977);
}

static void *rw_reader(void *arg)
{
    sn_conn *c = arg;
    static unsigned char buf[4096];
    size_t got = 0;
    intptr_t bad = 0;
    while (got < RW_TOTAL && !bad) {
        size_t want = SN_MIN(sizeof buf, (size_t)RW_TOTAL - got);
        ssize_t n = sn_read(c, buf, want, sn_deadline_in(10000));
        if (n <= 0) {
            bad = n < 0 ? n : -1;
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != rw_byte(got + (size_t)i))
                bad = -2;
        got += (size_t)n;
    }
    return (void *)bad;
}

static void test_reader_and_writer_threads(void)
{
    sn_tls *st = server_ctx("server-ec.pem"), *ct = client_ctx();
    sn_server *s = start(st, raw_echo, NULL, false);
    sn_conn *c;
    SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(s), "localhost"), 0);
    pthread_t tid;
    pthread_create(&tid, NULL, rw_reader, c);
    usleep(20000); /* the reader is blocked before the first byte */
    static unsigned char out[65536];
    size_t sent = 0, step = 1;
    while (sent < RW_TOTAL) {
        size_t n = SN_MIN(step, (size_t)RW_TOTAL - sent);
        for (size_t i = 0; i < n; i++)
            out[i] = rw_byte(sent + i);
        if (sn_write(c, out, n, sn_deadline_in(10000)) != (ssize_t)n ||
            sn_flush(c, sn_deadline_in(10000)) != 0) {
            CU_FAIL("write");
            break;
        }
        sent += n;
        step = step * 3 % sizeof out + 1; /* 1 B to 64 KiB, records of every size */
    }
    void *res;
    pthread_join(tid, &res);
    SN_ASSERT_RC((int)(intptr_t)res, 0);
    /* nothing comes: the deadline, not an error, and the connection still works */
    char b;
    SN_ASSERT_RC(sn_read(c, &b, 1, sn_deadline_in(100)), SN_ETIMEDOUT);
    SN_ASSERT_RC(sn_write(c, "z", 1, 0), 1);
    SN_ASSERT_RC(sn_flush(c, 0), 0);
    SN_ASSERT_RC(sn_read(c, &b, 1, sn_deadline_in(5000)), 1);
    CU_ASSERT_EQUAL(b, 'z');
    /* the server's handler (a thread) now waits in a TLS read: stop wakes it */
    SN_ASSERT_RC(sn_server_stop(s, 2000), 0);
    SN_ASSERT_RC(sn_read(c, &b, 1, sn_deadline_in(5000)), SN_EOF);
    sn_conn_free(c);
    sn_server_free(s);
    sn_tls_free(st);
    sn_tls_free(ct);
}

/* A TLS client on a fiber gives its read-ahead buffer back while it waits
 * with nothing to read, and takes one again to read. The reader fiber does a
 * round trip, then waits for a line that does not come; the other fiber, on
 * the same thread, looks at what the transport holds once the reader is
 * parked in that wait (it cannot run before: fibers switch only at waits). */
struct tls_idle {
    sn_tls *ct;
    int port;
    sn_conn *c;
    bool waiting; /* the reader is about to wait for the line */
    int connect_rc, trip_rc, wait_rc, again_rc;
    size_t busy, idle, after;
};

static void tls_idle_reader(void *arg)
{
    struct tls_idle *t = arg;
    char line[64];
    t->connect_rc = sn_tls_connect(&t->c, t->ct, "localhost", t->port, NULL, NULL, 0);
    if (t->connect_rc != 0)
        return;
    t->trip_rc = roundtrip(t->c, "one");
    t->busy = sn__tls_held(t->c); /* just read: the read-ahead buffer is there */
    t->waiting = true;
    t->wait_rc = (int)sn_read_line(t->c, line, sizeof line, SN_LINE_LF, sn_deadline_in(1000));
    t->again_rc = roundtrip(t->c, "two");
    t->after = sn__tls_held(t->c);
}

static void tls_idle_looker(void *arg)
{
    struct tls_idle *t = arg;
    for (int i = 0; i < 6000 && !t->waiting && t->connect_rc == 0; i++)
        sn_sleep_ms(5); /* the handshake and the first round trip: slow under valgrind */
    t->idle = t->waiting ? sn__tls_held(t->c) : (size_t)-1;
}

static void test_idle_fiber_gives_back_read_ahead(void)
{
    sn_tls *st = server_ctx("server-rsa.pem");
    struct tls_idle t = {.ct = client_ctx()};
    sn_server *s = start(st, echo, NULL, false);
    t.port = sn_server_port(s);
    sn_sched *sch;
    SN_ASSERT_RC(sn__sched_new(&sch), 0);
    SN_ASSERT_RC(sn__fiber_spawn(sch, tls_idle_reader, &t, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(sch, tls_idle_looker, &t, 0), 0);
    sn__sched_run(sch);
    sn__sched_free(sch);
    SN_ASSERT_RC(t.connect_rc, 0);
    SN_ASSERT_RC(t.trip_rc, 0);
    SN_ASSERT_RC(t.wait_rc, SN_ETIMEDOUT);
    SN_ASSERT_RC(t.again_rc, 0);
    CU_ASSERT(t.busy >= 16384);
    CU_ASSERT_EQUAL(t.idle, 0);
    CU_ASSERT(t.after >= 16384);
    if (t.c != NULL)
        sn_conn_free(t.c);
    sn_server_free(s);
    sn_tls_free(st);
    sn_tls_free(t.ct);
}

static void test_tls_connect(void)
{
    sn_tls *st = server_ctx("server-rsa.pem"), *ct = client_ctx();
    sn_server *s = start(st, echo, NULL, false);
    sn_conn *c;
    SN_ASSERT_RC(sn_tls_connect(&c, ct, "localhost", sn_server_port(s), NULL, NULL, 0), 0);
    SN_ASSERT_RC(roundtrip(c, "one call"), 0);
    SN_ASSERT_RC(sn_conn_close(c, 0), 0);
    sn_conn_free(c);
    SN_ASSERT_RC(sn_tls_connect(&c, st, "localhost", sn_server_port(s), NULL, NULL, 0), SN_EINVAL);
    /* bound before connecting, as OpenHarmony's bind() then connect() */
    sn_sock_options o = {.bind_host = "127.0.0.2"};
    sn_addr local;
    char ip[SN_ADDR_STRLEN];
    SN_ASSERT_RC(sn_tls_connect(&c, ct, "localhost", sn_server_port(s), &o, NULL, 0), 0);
    SN_ASSERT_RC(sn_sock_local_addr(sn_conn_sock(c), &local), 0);
    CU_ASSERT(sn_addr_format_ip(&local, ip, sizeof ip) > 0);
    CU_ASSERT_STRING_EQUAL(ip, "127.0.0.2");
    SN_ASSERT_RC(roundtrip(c, "bound"), 0);
    SN_ASSERT_RC(sn_conn_close(c, 0), 0);
    sn_conn_free(c);
    sn_server_free(s);
    sn_tls_free(st);
    sn_tls_free(ct);
}

/* ---- reasons ------------------------------------------------------------------------ */

/* sn_tls_new's result and reason for cfg: the code, and the reason holds
 * each of the NULL-terminated fragments. */
static void expect_new(const sn_tls_config *cfg, int want, const char *const *frags)
{
    sn_tls *t = NULL;
    char why[SN_TLS_REASON_MAX] = "stale";
    sn_tls_config c = *cfg;
    c.reason = why;
    c.reason_cap = sizeof why;
    int rc = sn_tls_new(&t, &c);
    SN_ASSERT_RC(rc, want);
    for (int i = 0; frags[i] != NULL; i++)
        if (strstr(why, frags[i]) == NULL) {
            CU_FAIL("a fragment is missing from the reason");
            fprintf(stderr, "reason \"%s\" lacks \"%s\"\n", why, frags[i]);
        }
    if (rc == 0) {
        CU_ASSERT_STRING_EQUAL(why, "");
        sn_tls_free(t);
    }
}

#define EXPECT_NEW(cfg, want, ...)                                                                 \
    expect_new(&(cfg), want, (const char *const[]){__VA_ARGS__, NULL})

/* Every configuration error names its field and value (tls.h), and the
 * names OpenSSL's and IANA's users write are taken. */
static void test_config_reasons(void)
{
    sn_tls_config c = {.role = SN_TLS_CLIENT, .ciphers_tls12 = "AES256-SHA256"};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "ciphers_tls12: AES256-SHA256 (TLS_RSA_WITH_AES_256_CBC_SHA256)",
               "not known to this wolfSSL build", "plain RSA key exchange");
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ciphers_tls12 = "TLS_RSA_WITH_AES_256_CBC_SHA256"};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "(AES256-SHA256) is not known to this wolfSSL build");
    c = (sn_tls_config){.role = SN_TLS_CLIENT,
                        .ciphers_tls12 = "ECDHE-RSA-AES128-GCM-SHA256:NO-SUCH-SUITE"};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "ciphers_tls12: NO-SUCH-SUITE is not a cipher suite name");
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ciphers_tls12 = "TLS_AES_128_GCM_SHA256"};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "TLS 1.3 suite: it belongs in ciphers_tls13");
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ciphers_tls13 = "TLS_AES_128_GCM_SHA256::x"};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "ciphers_tls13: an empty name");
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ciphers = "TLS_AES_128_GCM_SHA256:AES256-SHA256"};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "ciphers: AES256-SHA256");
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ciphers = "x", .ciphers_tls13 = "y"};
    EXPECT_NEW(c, SN_EINVAL, "ciphers: set either it or ciphers_tls12 and ciphers_tls13");
    c = (sn_tls_config){.role = SN_TLS_CLIENT,
                        .sigalgs = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha255"};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "sigalgs: rsa_pss_rsae_sha255 is not a signature algorithm");
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .groups = "X25519:P-999"};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "groups: P-999 is not a group name");
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .alpn = "h2,,http/1.1"};
    EXPECT_NEW(c, SN_EINVAL, "alpn: an empty name");
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .min_version = 0x0302};
    EXPECT_NEW(c, SN_EINVAL, "min_version: 0x0302", "TLS 1.0 and 1.1 are always refused");
    c = (sn_tls_config){.role = SN_TLS_SERVER};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "a server needs a certificate");
    c = (sn_tls_config){.role = SN_TLS_SERVER,
                        .cert = {.chain = {.file = pki("server-rsa.pem")},
                                 .key = {.file = pki("server-enc.key")},
                                 .password = "wrong"}};
    EXPECT_NEW(c, SN_ETLS_CERT, "cert.key ", "server-enc.key: wrong password");
    c.cert.password = NULL;
    EXPECT_NEW(c, SN_ETLS_CERT, "server-enc.key: the key is encrypted and no password is given");
    c.cert.key.file = pki("server-ec.key");
    EXPECT_NEW(c, SN_ETLS_CERT, "server-ec.key does not match the certificate of cert.chain ",
               "server-rsa.pem");
    c.cert.chain.file = pki("nonexistent.pem");
    EXPECT_NEW(c, SN_ENOENT, "cert.chain ", "nonexistent.pem: ");
    c.cert.chain = (sn_tls_source){.data = "not a certificate", .len = 17};
    EXPECT_NEW(c, SN_ETLS_CERT, "cert.chain (17 bytes in memory): no certificate wolfSSL can read");
    sn_tls_cert bad_sni = {.chain = {.file = pki("server-other.pem")},
                           .key = {.file = pki("server-rsa.key")},
                           .name = "other.test"};
    c = (sn_tls_config){
        .role = SN_TLS_SERVER, .cert = CERT("server-rsa"), .sni_certs = &bad_sni, .nsni_certs = 1};
    EXPECT_NEW(c, SN_ETLS_CERT, "sni_certs[0].key ", "does not match");
    sn_tls_source bad_ca = {.file = pki("server-rsa.key")};
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ca = &bad_ca, .nca = 1};
    EXPECT_NEW(c, SN_ETLS_CERT, "ca[0] ", "no CA certificate wolfSSL can read");
    c = (sn_tls_config){.role = SN_TLS_SERVER,
                        .cert = CERT("server-ec"),
                        .ciphers_tls12 = "ECDHE-RSA-AES128-GCM-SHA256"};
    EXPECT_NEW(c, SN_ETLS_CONFIG, "ciphers_tls12: no suite the server's EC key can serve");

    /* taken: IANA's and OpenSSL's names, mixed lists, both ALPN separators */
    c = (sn_tls_config){
        .role = SN_TLS_CLIENT,
        .sigalgs = "rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256:rsa_pkcs1_sha256:ed25519:"
                   "rsa_pss_pss_sha384:ECDSA+SHA384,RSA-PSS+SHA512",
        .groups = "x25519:secp256r1:prime256v1:P-384",
        .ciphers_tls12 = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
        .ciphers_tls13 = "TLS_AES_256_GCM_SHA384:TLS13-AES128-GCM-SHA256",
        .alpn = "spdy/1:http/1.1"};
    EXPECT_NEW(c, 0, NULL);
    c = (sn_tls_config){.role = SN_TLS_CLIENT,
                        .ciphers = "ECDHE-RSA-AES256-GCM-SHA384:TLS_AES_256_GCM_SHA384:"
                                   "TLS_AES_128_CCM_SHA256"};
    EXPECT_NEW(c, 0, NULL);
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ciphers = "ECDHE-RSA-AES256-GCM-SHA384"};
    EXPECT_NEW(c, 0, NULL); /* TLS 1.3 keeps its defaults, as with OpenSSL */
    /* a combined list as long as ciphers_tls12 takes */
    char many[1200] = "";
    for (int i = 0; i < 28; i++)
        strcat(many, i ? ":TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
                       : "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .ciphers = many};
    EXPECT_NEW(c, 0, NULL);
    /* no reason buffer: the code alone */
    c = (sn_tls_config){.role = SN_TLS_CLIENT, .groups = "P-999"};
    sn_tls *t = NULL;
    SN_ASSERT_RC(sn_tls_new(&t, &c), SN_ETLS_CONFIG);
}

/* What a server's on_error heard (its user pointer, which the echo
 * handler takes for a `seen`, hence the first member). */
typedef struct heard {
    seen sv;
    pthread_mutex_t mu;
    int n;
    int err[16];
    char what[16][512];
} heard;

static void on_error_heard(sn_server *s, int err, const char *what, void *user)
{
    (void)s;
    heard *h = user;
    pthread_mutex_lock(&h->mu);
    if (h->n < 16) {
        h->err[h->n] = err;
        snprintf(h->what[h->n], sizeof h->what[0], "%s", what);
        h->n++;
    }
    pthread_mutex_unlock(&h->mu);
}

static int heard_count(heard *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* Starts an echo server in fiber mode (threads of them) whose on_error
 * fills h (its mutex made here); NULL if it could not start. */
static sn_server *start_heard(sn_tls *st, heard *h, int threads)
{
    pthread_mutex_init(&h->mu, NULL);
    sn_server_config cfg = {.host = "127.0.0.1",
                            .tls = st,
                            .handler = echo,
                            .on_error = on_error_heard,
                            .user = h,
                            .fibers = SN_ON,
                            .fiber_threads = threads};
    sn_server *s = NULL;
    SN_ASSERT_RC(sn_server_new(&s, &cfg), 0);
    if (s != NULL)
        SN_ASSERT_RC(sn_server_start(s), 0);
    return s;
}

/* The last report holds err and each fragment. */
static void expect_heard(heard *h, int n, int err, const char *f1, const char *f2)
{
    WAIT_UNTIL(heard_count(h) >= n, 20000);
    pthread_mutex_lock(&h->mu);
    int got = h->n, e = n <= 16 ? h->err[n - 1] : 0;
    char w[512];
    snprintf(w, sizeof w, "%s", n <= 16 ? h->what[n - 1] : "");
    pthread_mutex_unlock(&h->mu);
    CU_ASSERT_EQUAL(got, n);
    SN_ASSERT_RC(e, err);
    if (strncmp(w, "TLS handshake with 127.0.0.1:", 29) != 0 || strstr(w, f1) == NULL ||
        (f2 != NULL && strstr(w, f2) == NULL)) {
        CU_FAIL("on_error's text");
        fprintf(stderr, "on_error %d: \"%s\" (wanted \"%s\", \"%s\")\n", n, w, f1, f2 ? f2 : "");
    }
}

static void expect_reason(const char *why, const char *f1, const char *f2)
{
    if (strstr(why, f1) == NULL || (f2 != NULL && strstr(why, f2) == NULL)) {
        CU_FAIL("the reason");
        fprintf(stderr, "reason: \"%s\" (wanted \"%s\", \"%s\")\n", why, f1, f2 ? f2 : "");
    }
}

/* A client with cfg dials the server at port as `name`: its result, with
 * its reason (after the first read, where TLS 1.3 tells a client that its
 * certificate was refused) in why. */
static int client_try(sn_tls_config cfg, int port, const char *name, char *why, size_t cap)
{
    sn_tls *ct = mk(&cfg);
    sn_conn *c;
    int rc = sn_conn_connect(&c, "127.0.0.1", port, NULL, NULL, sn_deadline_in(5000));
    if (rc == 0) {
        if ((rc = sn_tls_upgrade(c, ct, name, sn_deadline_in(5000))) == 0)
            rc = roundtrip(c, "reasons");
        snprintf(why, cap, "%s", sn_tls_reason(c));
        sn_conn_free(c);
    }
    sn_tls_free(ct);
    return rc;
}

/* Each failed handshake says why on both sides: the client through
 * sn_tls_reason (after its first read, when TLS 1.3 lets it finish), the server
 * through on_error with the client's address, and in its counters by kind. */
static void test_handshake_reasons(void)
{
    sn_tls_source cas[] = {ca_src, ca2_src};
    sn_tls_config scfg = {.role = SN_TLS_SERVER,
                          .cert = CERT("server-rsa"),
                          .ca = cas,
                          .nca = 1,
                          .verify = SN_TLS_VERIFY_REQUIRED,
                          .alpn = "spdy/1:http/1.1",
                          /* the silent client's deadline; every other
                           * handshake must end well within it */
                          .handshake_timeout_ms = sn_test_under_valgrind() ? 8000 : 1000};
    sn_tls *st = mk(&scfg);
    heard h = {.n = 0};
    sn_server *s = start_heard(st, &h, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int port = sn_server_port(s);
    char why[256];
    sn_tls_cert client = CERT("client-rsa");
    sn_tls_config ok = {
        .role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1, .cert = client, .alpn = "http/1.1"};
    SN_ASSERT_RC(client_try(ok, port, "localhost", why, sizeof why), 0);

    /* a server the client does not trust */
    sn_tls_config c = ok;
    c.ca = &ca2_src;
    SN_ASSERT_RC(client_try(c, port, "localhost", why, sizeof why), SN_ETLS_VERIFY);
    expect_reason(why, "the peer's certificate: ", "verify error");
    expect_heard(&h, 1, SN_ETLS_VERIFY, "peer sent alert 48 (unknown_ca)",
                 "does not trust our certificate's issuer");
    /* the wrong host name */
    SN_ASSERT_RC(client_try(ok, port, "wrong.example", why, sizeof why), SN_ETLS_HOSTNAME);
    expect_reason(why, "does not match the name wrong.example", NULL);
    expect_heard(&h, 2, SN_ETLS_VERIFY, "alert 42 (bad_certificate)", "refused our certificate");
    /* a client certificate from a CA the server does not trust, expired, none */
    c = ok;
    c.cert = CERT("client-ca2");
    CU_ASSERT(is_tls_error(client_try(c, port, "localhost", why, sizeof why)));
    expect_reason(why, "peer sent alert ", "our certificate");
    expect_heard(&h, 3, SN_ETLS_VERIFY, "the peer's certificate: ", "verify error");
    c.cert = CERT("client-expired");
    CU_ASSERT(is_tls_error(client_try(c, port, "localhost", why, sizeof why)));
    expect_reason(why, "peer sent alert ", "our certificate");
    expect_heard(&h, 4, SN_ETLS_VERIFY, "certificate has expired", NULL);
    c.cert = (sn_tls_cert){0};
    CU_ASSERT(is_tls_error(client_try(c, port, "localhost", why, sizeof why)));
    expect_reason(why, "it requires a certificate and we sent none", NULL);
    expect_heard(&h, 5, SN_ETLS_NO_CERT, "the peer sent no certificate", NULL);
    /* no ALPN protocol in common: ':' separated two names, "spdy/1" is one */
    c = ok;
    c.alpn = "h2";
    SN_ASSERT_RC(client_try(c, port, "localhost", why, sizeof why), SN_ETLS_ALPN);
    expect_reason(why, "no_application_protocol", NULL);
    expect_heard(&h, 6, SN_ETLS_ALPN, "no ALPN protocol in common; ours: spdy/1,http/1.1", NULL);
    c.alpn = "spdy/1";
    SN_ASSERT_RC(client_try(c, port, "localhost", why, sizeof why), 0);
    /* TLS 1.1 */
    int fd = raw_dial(s);
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl = bare_session(fd, wolfTLSv1_1_client_method(), &ctx);
    CU_ASSERT_NOT_EQUAL(wolfSSL_connect(ssl), WOLFSSL_SUCCESS);
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    close(fd);
    expect_heard(&h, 7, SN_ETLS_VERSION, "no protocol version in common", "TLS 1.2 and 1.3");
    /* a client that leaves, one that says nothing */
    close(raw_dial(s));
    expect_heard(&h, 8, SN_EOF, "the peer closed the connection in the handshake", NULL);
    fd = raw_dial(s);
    expect_heard(&h, 9, SN_ETIMEDOUT, "handshake not done by its deadline", NULL);
    close(fd);

    sn_server_stats stats = sstats(s);
    CU_ASSERT_EQUAL(stats.tls_failures, 9);
    CU_ASSERT_EQUAL(stats.tls_fail_cert, 5);
    CU_ASSERT_EQUAL(stats.tls_fail_alpn, 1);
    CU_ASSERT_EQUAL(stats.tls_fail_version, 1);
    CU_ASSERT_EQUAL(stats.tls_fail_closed, 1);
    CU_ASSERT_EQUAL(stats.tls_fail_timeout, 1);
    CU_ASSERT_EQUAL(stats.tls_fail_cipher + stats.tls_fail_other, 0);
    sn_server_free(s);

    /* sn_tls_connect: no connection after a failed connect; after a failed
     * handshake the failed one, which tells why and shows what it saw */
    sn_tls *ct = client_ctx();
    sn_conn *conn = (sn_conn *)&h; /* not NULL: the call must set it */
    SN_ASSERT_RC(sn_tls_connect(&conn, ct, "127.0.0.1", port, NULL, NULL, sn_deadline_in(5000)),
                 SN_ECONNREFUSED);
    CU_ASSERT_PTR_NULL(conn);
    sn_tls *st2 = server_ctx("server-wrong.pem");
    s = start(st2, echo, NULL, false);
    SN_ASSERT_RC(sn_tls_connect(&conn, ct, "localhost", sn_server_port(s), NULL, NULL, 0),
                 SN_ETLS_HOSTNAME);
    CU_ASSERT_PTR_NOT_NULL_FATAL(conn);
    expect_reason(sn_tls_reason(conn), "does not match the name localhost", NULL);
    sn_tls_x509 x;
    SN_ASSERT_RC(sn_tls_peer_cert(conn, 0, &x), SN_EBADSTATE); /* no handshake done */
    char b;
    SN_ASSERT_RC(sn_read(conn, &b, 1, 0), SN_ETLS_HOSTNAME); /* sticky */
    sn_conn_free(conn);
    sn_server_free(s);
    sn_tls_free(st2);
    sn_tls_free(ct);
    sn_tls_free(st);
}

/* A stop that cuts a handshake short counts it (tls_fail_other), and does
 * not report it to on_error as the client's failure. */
static void test_stop_mid_handshake(void)
{
    sn_tls *st = server_ctx("server-rsa.pem");
    heard h = {.n = 0};
    sn_server *s = start_heard(st, &h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int fd = raw_dial(s); /* says nothing: the handshake waits (10 s) */
    WAIT_UNTIL(sstats(s).active == 1, 5000);
    SN_ASSERT_RC(sn_server_stop(s, 5000), 0);
    sn_server_stats st2 = sstats(s);
    CU_ASSERT_EQUAL(st2.tls_failures, 1);
    CU_ASSERT_EQUAL(st2.tls_fail_other, 1);
    CU_ASSERT_EQUAL(st2.tls_fail_closed, 0);
    CU_ASSERT_EQUAL(heard_count(&h), 0);
    close(fd);
    sn_server_free(s);
    pthread_mutex_destroy(&h.mu);
    sn_tls_free(st);
}

/* What a handler saw of the client's signature algorithms (asserted by
 * the test's thread). */
typedef struct sigseen {
    atomic_int calls;
    int rc, tiny_rc;
    char list[512];
} sigseen;

static void sigalgs_handler(sn_conn *c, void *user)
{
    sigseen *s = user;
    char tiny[4];
    s->rc = sn_tls_peer_sigalgs(c, s->list, sizeof s->list);
    s->tiny_rc = sn_tls_peer_sigalgs(c, tiny, sizeof tiny);
    atomic_fetch_add(&s->calls, 1);
    echo(c, NULL);
}

/* A ClientHello record (TLS 1.2 record header, hello with one suite and a
 * signature_algorithms extension of ecdsa_secp256r1_sha256 and
 * rsa_pss_rsae_sha256). */
static const uint8_t hello[] = {
    0x16, 0x03, 0x01, 0x00, 0x39, /* handshake record, 57 bytes */
    0x01, 0x00, 0x00, 0x35,       /* client_hello, 53 */
    0x03, 0x03, 1,    2,    3,    4,    5,    6,    7,    8,    9,  10, 11, 12, 13, 14, 15, 16,
    17,   18,   19,   20,   21,   22,   23,   24,   25,   26,   27, 28, 29, 30, 31, 32, /* version,
                                                                                           random */
    0x00,                                                       /* session id */
    0x00, 0x02, 0x13, 0x01,                                     /* one suite */
    0x01, 0x00,                                                 /* compression: null */
    0x00, 0x0a,                                                 /* extensions, 10 bytes */
    0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04, /* signature_algorithms */
};

/* The ClientHello reader, on good, cut, split, malformed and mangled input. */
static void test_hello_parser(void)
{
    uint16_t out[64];
    uint8_t b[sizeof hello + 16];
    SN_ASSERT_RC(sn__tls_hello_sigalgs(hello, sizeof hello, out), 2);
    CU_ASSERT(out[0] == 0x0403 && out[1] == 0x0804);
    /* a second record after it is not read */
    memcpy(b, hello, sizeof hello);
    memcpy(b + sizeof hello, "\x17\x03\x03\x00\x02zz", 7);
    SN_ASSERT_RC(sn__tls_hello_sigalgs(b, sizeof hello + 7, out), 2);
    /* every cut of it: not readable */
    for (size_t n = 0; n < sizeof hello; n++)
        SN_ASSERT_RC(sn__tls_hello_sigalgs(hello, n, out), -1);
    /* the hello split over two records: the first record is not all of it */
    memcpy(b, hello, sizeof hello);
    b[4] = 0x20; /* the record says 32 bytes; the hello 53 */
    SN_ASSERT_RC(sn__tls_hello_sigalgs(b, sizeof hello, out), -1);
    /* no extensions at all; extensions without signature_algorithms */
    memcpy(b, hello, 9 + 41);
    b[4] = 4 + 41, b[8] = 41;
    SN_ASSERT_RC(sn__tls_hello_sigalgs(b, 9 + 41, out), 0);
    memcpy(b, hello, sizeof hello);
    b[53] = 0x0b; /* ec_point_formats */
    SN_ASSERT_RC(sn__tls_hello_sigalgs(b, sizeof hello, out), 0);
    /* not a handshake record, not a client_hello */
    memcpy(b, hello, sizeof hello);
    b[0] = 0x17;
    SN_ASSERT_RC(sn__tls_hello_sigalgs(b, sizeof hello, out), -1);
    b[0] = 0x16, b[5] = 0x02;
    SN_ASSERT_RC(sn__tls_hello_sigalgs(b, sizeof hello, out), -1);
    /* lengths that run past their container */
    const size_t at[] = {43, 45, 48, 51, 55, 57}; /* session id, suites, compression, ... */
    for (size_t i = 0; i < SN_ARRAY_SIZE(at); i++) {
        memcpy(b, hello, sizeof hello);
        b[at[i]] = 0xff;
        CU_ASSERT(sn__tls_hello_sigalgs(b, sizeof hello, out) == -1);
    }
    /* random mangling: any answer, within bounds (ASan and valgrind watch) */
    unsigned seed = 21;
    for (int i = 0; i < 20000; i++) {
        memcpy(b, hello, sizeof hello);
        for (int k = 0; k < 3; k++)
            b[rand_r(&seed) % sizeof hello] = (uint8_t)rand_r(&seed);
        int n = sn__tls_hello_sigalgs(b, sizeof hello, out);
        CU_ASSERT(n >= -1 && n <= 64);
    }
}

/* A server reads the client's signature_algorithms from its ClientHello:
 * openssl s_client's exactly as given, and ours as set. */
static void test_peer_sigalgs(void)
{
    sn_tls *st = server_ctx("server-rsa.pem");
    sigseen sv = {0};
    sn_server *s = start(st, sigalgs_handler, &sv, true);
    int port = sn_server_port(s);
    if (system("command -v openssl >/dev/null 2>&1") == 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "echo hi | timeout 10 openssl s_client -connect 127.0.0.1:%d -quiet -no_ign_eof "
                 "-sigalgs 'ECDSA+SHA384:rsa_pss_rsae_sha512:RSA+SHA256' >/dev/null 2>&1",
                 port);
        CU_ASSERT_EQUAL(system(cmd), 0);
        WAIT_UNTIL(atomic_load(&sv.calls) == 1, 5000);
        SN_ASSERT_RC(sv.rc, (int)strlen(sv.list));
        SN_ASSERT_RC(sv.tiny_rc, SN_ERANGE);
        CU_ASSERT_STRING_EQUAL(sv.list,
                               "ecdsa_secp384r1_sha384:rsa_pss_rsae_sha512:rsa_pkcs1_sha256");
    }
    sn_tls_config ccfg = {.role = SN_TLS_CLIENT,
                          .ca = &ca_src,
                          .nca = 1,
                          .sigalgs = "rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256"};
    sn_tls *ct = mk(&ccfg);
    int before = atomic_load(&sv.calls);
    sn_conn *c;
    SN_ASSERT_RC(tls_dial(&c, ct, port, "localhost"), 0);
    SN_ASSERT_RC(roundtrip(c, "sigalgs"), 0);
    char buf[256];
    SN_ASSERT_RC(sn_tls_peer_sigalgs(c, buf, sizeof buf), SN_ETLS_UNAVAILABLE); /* a client */
    sn_conn_free(c);
    WAIT_UNTIL(atomic_load(&sv.calls) == before + 1, 5000);
    if (getenv("SN_TEST_VERBOSE"))
        fprintf(stderr, "wolfSSL offered %s\n", sv.list);
    CU_ASSERT(sv.rc > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(sv.list, "rsa_pss_rsae_sha256"));
    CU_ASSERT_PTR_NOT_NULL(strstr(sv.list, "ecdsa_secp256r1_sha256"));
    CU_ASSERT_PTR_NULL(strstr(sv.list, "rsa_pkcs1_sha256"));
    sn_server_free(s);
    sn_tls_free(ct);
    sn_tls_free(st);
}

/* OpenHarmony's two-way TLS example, with a suite this wolfSSL has:
 * signature algorithms in both spellings, a combined cipher list, an ALPN
 * list, a key password and a list of CAs. */
static void test_openharmony_settings(void)
{
    sn_tls_source cas[] = {ca2_src, ca_src};
    const char *sigalgs = "rsa_pss_rsae_sha256:ECDSA+SHA256";
    const char *ciphers = "ECDHE-RSA-AES256-GCM-SHA384:TLS_AES_256_GCM_SHA384";
    sn_tls_config scfg = {.role = SN_TLS_SERVER,
                          .cert = {.chain = {.file = pki("server-rsa.pem")},
                                   .key = {.file = pki("server-enc.key")},
                                   .password = "secret"},
                          .ca = cas,
                          .nca = 2,
                          .verify = SN_TLS_VERIFY_REQUIRED,
                          .sigalgs = sigalgs,
                          .ciphers = ciphers,
                          .alpn = "spdy/1:http/1.1"};
    sn_tls *st = mk(&scfg);
    seen sv = {0};
    sn_server *s = start(st, echo, &sv, false);
    for (int v = 0; v < 2; v++) {
        sn_tls_config ccfg = {.role = SN_TLS_CLIENT,
                              .cert = CERT("client-rsa"),
                              .ca = cas,
                              .nca = 2,
                              .sigalgs = sigalgs,
                              .ciphers = ciphers,
                              .alpn = "http/1.1,spdy/1",
                              .max_version = v == 0 ? SN_TLS_1_2 : SN_TLS_1_3};
        sn_tls *ct = mk(&ccfg);
        sn_conn *c;
        SN_ASSERT_RC(tls_dial(&c, ct, sn_server_port(s), "localhost"), 0);
        sn_tls_info info;
        SN_ASSERT_RC(sn_tls_info_get(c, &info), 0);
        CU_ASSERT_EQUAL(info.version, v == 0 ? SN_TLS_1_2 : SN_TLS_1_3);
        CU_ASSERT_STRING_EQUAL(info.cipher_openssl,
                               v == 0 ? "ECDHE-RSA-AES256-GCM-SHA384" : "TLS_AES_256_GCM_SHA384");
        CU_ASSERT_STRING_EQUAL(info.alpn ? info.alpn : "", "spdy/1"); /* the server's first */
        CU_ASSERT_EQUAL(info.peer_verified, 1);
        SN_ASSERT_RC(roundtrip(c, "openharmony"), 0);
        sn_conn_free(c);
        sn_tls_free(ct);
    }
    WAIT_UNTIL(atomic_load(&sv.calls) == 2, 5000);
    CU_ASSERT_PTR_NOT_NULL(strstr(sv.peer_subject, "CN=client-rsa"));
    sn_server_free(s);
    sn_tls_free(st);
}

static CU_TestInfo tests[] = {
    {"a client on a fiber gives back its read-ahead while it waits",
     test_idle_fiber_gives_back_read_ahead},
    {"one way, introspection", test_one_way},
    {"plain connection is not TLS", test_plain_conn_is_not_tls},
    {"sn_tls_connect, also bound to a local address first", test_tls_connect},
    {"a handshake cancelled from another thread", test_cancel_mid_handshake},
    {"resumption across versions", test_resumption_across_versions},
    {"a reader and a writer thread on one connection", test_reader_and_writer_threads},
    {"mutual TLS, RSA and ECDSA", test_mutual},
    {"client certificate missing, wrong CA, expired", test_client_cert_rejected},
    {"optional client certificate", test_optional_client_cert},
    {"host name mismatch and opt-out", test_hostname},
    {"untrusted server", test_untrusted_server},
    {"TLS 1.1 refused", test_tls11_refused},
    {"TLS 1.0 refused", test_tls10_refused},
    {"versions and ciphers", test_versions_and_ciphers},
    {"no shared cipher or version", test_no_shared_cipher_or_version},
    {"cipher order and group", test_cipher_order_and_group},
    {"configuration errors", test_config_errors},
    {"configuration errors say why; OpenSSL's and IANA's names", test_config_reasons},
    {"failed handshakes say why, on both sides", test_handshake_reasons},
    {"a server reads the client's signature algorithms", test_peer_sigalgs},
    {"the ClientHello reader", test_hello_parser},
    {"a stop in the middle of a handshake", test_stop_mid_handshake},
    {"OpenHarmony's two-way TLS settings", test_openharmony_settings},
    {"a server's TLS 1.2 suites fit its keys", test_suites_fit_keys},
    {"sources in memory, PEM and DER", test_memory_sources},
    {"ALPN", test_alpn},
    {"SNI picks the certificate", test_sni},
    {"resumption", test_resumption},
    {"upgrade a plain connection", test_upgrade},
    {"handshake deadline", test_handshake_deadline},
    {"handshake limit", test_handshake_limit},
    {"handshake limit: a turn waits", test_handshake_limit_waits},
    {"close sends close_notify", test_close_notify},
    {"reload under load", test_reload_under_load},
    {"half-close and close_notify", test_half_close},
    {"fibers, bulk, stop", test_fibers_bulk_and_stop},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    if (sn_test_pki("ca.pem") == NULL)
        return 1;
    ca_src = (sn_tls_source){.file = pki("ca.pem")};
    ca2_src = (sn_tls_source){.file = pki("ca2.pem")};
    return sn_test_main("tls", tests, 240);
}
