/* SPDX-License-Identifier: MIT */
/*
 * tls-bench: TLS figures of libsocknet against references measured in the
 * same run, in one process over loopback (make bench-tls runs it, and
 * bench/tls-run.sh with Debian's and a tuned wolfSSL).
 *
 *   tls-bench PKI_DIR [--seconds S] [--rounds N] [--only pingpong|handshakes|bulk]
 *
 * Rows (each "row NAME ours REF ratio" on stdout, human text on stderr):
 *   pingpong-16, pingpong-64  64-byte echo round trips per second over C
 *       connections (a client thread each), TLS 1.3 through the socknet
 *       server (fiber mode) against plain TCP through the same server;
 *       alternating rounds of each (5, or --rounds), medians.
 *   handshakes-full, handshakes-resumed  TLS 1.3 handshakes per second (two
 *       client threads: connect, handshake, one echoed byte, close), the
 *       socknet server (thread mode) against a bare wolfSSL server with a
 *       thread per connection; resumed ones present the last ticket.
 *       handshakes-full-iter: the same against a bare wolfSSL server that
 *       serves every connection on one thread (see RESULTS.md for why).
 *   bulk  MiB/s of one 16 KiB-write stream (TLS_AES_128_GCM_SHA256) into a
 *       socknet handler that discards it, against wolfCrypt's own
 *       AES-128-GCM encryption speed on this machine (one thread, 16 KiB
 *       blocks); bulk-vs-gcm-pair: against the slower of two threads, one
 *       encrypting and one decrypting at the same time, as the two ends of a
 *       stream do; bulk-vs-bare: against the same stream between a bare
 *       wolfSSL client and server; plain TCP for scale.
 * Every loop is bounded by time and count. ECDSA P-256 certificates.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <socknet.h>

#define MAX_CLIENTS 64
#define MSG 64

static const char *pki;
static double seconds = 3;
static atomic_int stop_flag;

static const char *path(const char *name)
{
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", pki, name);
    return b;
}

static double now_s(void)
{
    return (double)sn_now_ms() / 1000.0;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "tls-bench: %s: %s\n", what, sn_strerror(rc));
    exit(1);
}

static sn_tls *server_tls(void)
{
    sn_tls_config c = {
        .role = SN_TLS_SERVER,
        .cert = {.chain = {.file = path("server-ec.pem")}, .key = {.file = path("server-ec.key")}}};
    sn_tls *t;
    int rc = sn_tls_new(&t, &c);
    if (rc < 0)
        die("server context", rc);
    return t;
}

static sn_tls *client_tls(void)
{
    sn_tls_source ca = {.file = path("ca.pem")};
    sn_tls_config c = {
        .role = SN_TLS_CLIENT, .ca = &ca, .nca = 1, .ciphers_tls13 = "TLS13-AES128-GCM-SHA256"};
    sn_tls *t;
    int rc = sn_tls_new(&t, &c);
    if (rc < 0)
        die("client context", rc);
    return t;
}

/* ---- the socknet servers --------------------------------------------------------- */

static void echo(sn_conn *c, void *user)
{
    (void)user;
    char buf[16384];
    ssize_t n;
    while ((n = sn_read(c, buf, sizeof buf, sn_deadline_in(30000))) > 0)
        if (sn_write(c, buf, (size_t)n, 0) < 0 || sn_flush(c, 0) < 0)
            break;
}

/* Reads until end of stream, then answers the byte count. */
static void sink(sn_conn *c, void *user)
{
    (void)user;
    static char buf[1 << 16];
    uint64_t total = 0;
    ssize_t n;
    while ((n = sn_read(c, buf, sizeof buf, sn_deadline_in(30000))) > 0)
        total += (uint64_t)n;
    sn_printf(c, 0, "%llu\n", (unsigned long long)total);
}

static sn_server *serve(sn_tls *tls, sn_handler h, int fibers)
{
    sn_server_config cfg = {.host = "127.0.0.1",
                            .tls = tls,
                            .handler = h,
                            .workers = 1024,
                            .fibers = fibers ? SN_ON : SN_OFF,
                            .queue = 1024};
    sn_server *s;
    int rc = sn_server_new(&s, &cfg);
    if (rc == 0)
        rc = sn_server_start(s);
    if (rc < 0)
        die("server", rc);
    return s;
}

/* ---- ping-pong ----------------------------------------------------------------------- */

struct pp {
    sn_tls *tls; /* NULL: plain */
    int port;
    uint64_t count;
};

static void *pp_client(void *arg)
{
    struct pp *p = arg;
    sn_conn *c;
    int rc = p->tls ? sn_tls_connect(&c, p->tls, "localhost", p->port, NULL, NULL, 0)
                    : sn_conn_connect(&c, "127.0.0.1", p->port, NULL, NULL, 0);
    if (rc < 0)
        die("ping-pong connect", rc);
    char out[MSG], in[MSG];
    memset(out, 'x', sizeof out);
    while (!atomic_load(&stop_flag)) {
        if (sn_write(c, out, MSG, 0) < 0 || sn_flush(c, 0) < 0 ||
            sn_read_exact(c, in, MSG, sn_deadline_in(10000)) != MSG)
            die("ping-pong", sn_conn_error(c));
        p->count++;
    }
    sn_conn_free(c);
    return NULL;
}

static double pingpong(sn_tls *tls, int port, int conns)
{
    struct pp p[MAX_CLIENTS];
    pthread_t tid[MAX_CLIENTS];
    atomic_store(&stop_flag, 0);
    for (int i = 0; i < conns; i++) {
        p[i] = (struct pp){tls, port, 0};
        pthread_create(&tid[i], NULL, pp_client, &p[i]);
    }
    usleep(300000); /* connected and warm */
    uint64_t before = 0, after = 0;
    for (int i = 0; i < conns; i++)
        before += p[i].count;
    double t0 = now_s();
    usleep((useconds_t)(seconds * 1e6));
    for (int i = 0; i < conns; i++)
        after += p[i].count;
    double dt = now_s() - t0;
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < conns; i++)
        pthread_join(tid[i], NULL);
    return (double)(after - before) / dt;
}

/* ---- handshakes: a bare wolfSSL server, thread per connection ------------------------ */

struct bare {
    int lfd;
    WOLFSSL_CTX *ctx;
    int iterative; /* serve each connection on the acceptor thread itself */
    int sink;      /* read to the end, answer the byte count (bulk) */
};

/* The bare sink: what `sink` does, on wolfSSL directly. */
static void bare_sink(WOLFSSL *ssl)
{
    static char buf[1 << 16];
    unsigned long long total = 0;
    int n;
    if (wolfSSL_accept(ssl) != WOLFSSL_SUCCESS)
        return;
    while ((n = wolfSSL_read(ssl, buf, sizeof buf)) > 0)
        total += (unsigned long long)n;
    n = snprintf(buf, 64, "%llu\n", total);
    wolfSSL_write(ssl, buf, n);
}

static void *bare_conn(void *arg)
{
    WOLFSSL *ssl = arg;
    char b[64];
    if (wolfSSL_accept(ssl) == WOLFSSL_SUCCESS) {
        int n;
        while ((n = wolfSSL_read(ssl, b, sizeof b)) > 0)
            if (wolfSSL_write(ssl, b, n) != n)
                break;
        wolfSSL_shutdown(ssl);
    }
    int fd = wolfSSL_get_fd(ssl);
    wolfSSL_free(ssl);
    close(fd);
    return NULL;
}

/* A connection thread frees its fixed-point ECC cache before it exits. */
static void *bare_thread(void *arg)
{
    bare_conn(arg);
    wc_ecc_fp_free();
    return NULL;
}

static void *bare_acceptor(void *arg)
{
    struct bare *b = arg;
    for (;;) {
        int fd = accept(b->lfd, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listener was shut down */
        int one = 1;     /* as socknet's sockets: no Nagle delay on the last flight */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        WOLFSSL *ssl = wolfSSL_new(b->ctx);
        wolfSSL_set_fd(ssl, fd);
        if (b->sink) {
            bare_sink(ssl);
            wolfSSL_free(ssl);
            close(fd);
            continue;
        }
        if (b->iterative) {
            bare_conn(ssl);
            continue;
        }
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &a, bare_thread, ssl);
        pthread_attr_destroy(&a);
    }
}

static int bare_start(struct bare *b, pthread_t *tid)
{
    b->ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
    wolfSSL_CTX_use_certificate_chain_file(b->ctx, path("server-ec.pem"));
    wolfSSL_CTX_use_PrivateKey_file(b->ctx, path("server-ec.key"), WOLFSSL_FILETYPE_PEM);
    b->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(b->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(b->lfd, 1024) < 0)
        die("bare listen", -errno);
    getsockname(b->lfd, (struct sockaddr *)&a, &len);
    pthread_create(tid, NULL, bare_acceptor, b);
    return ntohs(a.sin_port);
}

/* ---- handshakes: the client side (bare wolfSSL, the same for both servers) ----------- */

struct hs {
    WOLFSSL_CTX *ctx;
    int port;
    int resume;
    uint64_t count;
};

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect", -errno);
    return fd;
}

static void *hs_client(void *arg)
{
    struct hs *h = arg;
    WOLFSSL_SESSION *sess = NULL;
    for (int i = 0; i < 1000000 && !atomic_load(&stop_flag); i++) {
        int fd = dial(h->port);
        WOLFSSL *ssl = wolfSSL_new(h->ctx);
        wolfSSL_set_fd(ssl, fd);
        if (h->resume && sess != NULL)
            wolfSSL_set_session(ssl, sess);
        char b = 'x';
        if (wolfSSL_connect(ssl) != WOLFSSL_SUCCESS || wolfSSL_write(ssl, &b, 1) != 1 ||
            wolfSSL_read(ssl, &b, 1) != 1)
            die("handshake", SN_ETLS_HANDSHAKE);
        if (h->resume && i > 0 && !wolfSSL_session_reused(ssl))
            die("resumption", SN_ETLS);
        if (h->resume) {
            wolfSSL_SESSION_free(sess);
            sess = wolfSSL_get1_session(ssl);
        }
        wolfSSL_shutdown(ssl);
        wolfSSL_free(ssl);
        close(fd);
        h->count++;
    }
    wolfSSL_SESSION_free(sess);
    return NULL;
}

static double handshakes(int port, int resume)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    wolfSSL_CTX_load_verify_locations(ctx, path("ca.pem"), NULL);
    struct hs h[2] = {{ctx, port, resume, 0}, {ctx, port, resume, 0}};
    pthread_t tid[2];
    atomic_store(&stop_flag, 0);
    double t0 = now_s();
    for (int i = 0; i < 2; i++)
        pthread_create(&tid[i], NULL, hs_client, &h[i]);
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(tid[i], NULL);
    double dt = now_s() - t0;
    wolfSSL_CTX_free(ctx);
    return (double)(h[0].count + h[1].count) / dt;
}

/* ---- bulk ------------------------------------------------------------------------------ */

static double bulk(sn_tls *tls, int port)
{
    sn_conn *c;
    int rc = tls ? sn_tls_connect(&c, tls, "localhost", port, NULL, NULL, 0)
                 : sn_conn_connect(&c, "127.0.0.1", port, NULL, NULL, 0);
    if (rc < 0)
        die("bulk connect", rc);
    sn_tls_info info; /* the references run this suite: so must we */
    if (tls &&
        (sn_tls_info_get(c, &info) < 0 || strcmp(info.cipher, "TLS_AES_128_GCM_SHA256") != 0))
        die("bulk: not TLS_AES_128_GCM_SHA256", SN_ETLS_CIPHER);
    static char buf[16384];
    memset(buf, 'b', sizeof buf);
    uint64_t sent = 0;
    double t0 = now_s();
    for (int i = 0; i < 1000000 && now_s() - t0 < seconds; i++) {
        if (sn_write(c, buf, sizeof buf, 0) < 0)
            die("bulk write", sn_conn_error(c));
        sent += sizeof buf;
    }
    char line[64];
    if (sn_shutdown_write(c, 0) < 0 ||
        sn_read_line(c, line, sizeof line, SN_LINE_LF, sn_deadline_in(30000)) < 0)
        die("bulk end", sn_conn_error(c));
    double dt = now_s() - t0;
    if (strtoull(line, NULL, 10) != sent)
        die("bulk count", SN_EIO);
    sn_conn_free(c);
    return (double)sent / dt / (1 << 20);
}

/* The same stream from a bare wolfSSL client into the bare sink. */
static double bulk_bare(int port)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    wolfSSL_CTX_load_verify_locations(ctx, path("ca.pem"), NULL);
    wolfSSL_CTX_set_cipher_list(ctx, "TLS13-AES128-GCM-SHA256");
    int fd = dial(port);
    WOLFSSL *ssl = wolfSSL_new(ctx);
    wolfSSL_set_fd(ssl, fd);
    if (wolfSSL_connect(ssl) != WOLFSSL_SUCCESS)
        die("bare bulk", SN_ETLS_HANDSHAKE);
    static char buf[16384];
    memset(buf, 'b', sizeof buf);
    uint64_t sent = 0;
    double t0 = now_s();
    for (int i = 0; i < 1000000 && now_s() - t0 < seconds; i++) {
        if (wolfSSL_write(ssl, buf, sizeof buf) != (int)sizeof buf)
            die("bare bulk write", SN_EIO);
        sent += sizeof buf;
    }
    wolfSSL_shutdown(ssl);
    shutdown(fd, SHUT_WR);
    char line[64] = {0};
    int n = wolfSSL_read(ssl, line, sizeof line - 1);
    double dt = now_s() - t0;
    if (n <= 0 || strtoull(line, NULL, 10) != sent)
        die("bare bulk count", SN_EIO);
    wolfSSL_free(ssl);
    close(fd);
    wolfSSL_CTX_free(ctx);
    return (double)sent / dt / (1 << 20);
}

/* wolfCrypt's AES-128-GCM on 16 KiB blocks, MiB/s: encryption (decrypt 0)
 * or decryption of what was encrypted (decrypt 1). */
static double aesgcm_one(int decrypt)
{
    Aes aes;
    static _Thread_local byte in[16384], out[16384];
    byte key[16] = {1}, iv[12] = {2}, tag[16];
    wc_AesInit(&aes, NULL, INVALID_DEVID);
    wc_AesGcmSetKey(&aes, key, sizeof key);
    wc_AesGcmEncrypt(&aes, out, in, sizeof in, iv, sizeof iv, tag, sizeof tag, NULL, 0);
    uint64_t bytes = 0;
    double t0 = now_s();
    for (int i = 0; i < 10000000 && now_s() - t0 < seconds; i++) {
        if (decrypt && wc_AesGcmDecrypt(&aes, in, out, sizeof in, iv, sizeof iv, tag, sizeof tag,
                                        NULL, 0) != 0)
            die("AES-GCM decrypt", SN_EIO);
        if (!decrypt)
            wc_AesGcmEncrypt(&aes, out, in, sizeof in, iv, sizeof iv, tag, sizeof tag, NULL, 0);
        bytes += sizeof in;
    }
    double dt = now_s() - t0;
    wc_AesFree(&aes);
    return (double)bytes / dt / (1 << 20);
}

static double aesgcm(void)
{
    return aesgcm_one(0);
}

struct gcm_job {
    int decrypt;
    double speed;
};

static void *gcm_thread(void *arg)
{
    struct gcm_job *j = arg;
    j->speed = aesgcm_one(j->decrypt);
    return NULL;
}

/* What a TLS stream needs: one thread encrypting while another decrypts,
 * at once; the slower of the two bounds the stream. */
static double aesgcm_pair(void)
{
    struct gcm_job j[2] = {{0, 0}, {1, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, gcm_thread, &j[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return j[0].speed < j[1].speed ? j[0].speed : j[1].speed;
}

#define PP_ROUNDS 5
#define PP_ROUNDS_MAX 21

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n values (n odd); sorts v. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void row(const char *name, double ours, double ref, const char *unit)
{
    printf("row %-20s %12.1f %12.1f %6.2f %s\n", name, ours, ref, ours / ref, unit);
    fflush(stdout);
}

static void run_pingpong(sn_tls *st, sn_tls *ct, int rounds)
{
    sn_server *tls_fib = serve(st, echo, 1), *plain_fib = serve(NULL, echo, 1);
    int conns[] = {16, 64};
    for (int i = 0; i < 2; i++) {
        /* plain and TLS alternate for `rounds` rounds; the row has the
         * medians (the machine's noise moves single rounds by 20 %) */
        double ref[PP_ROUNDS_MAX], ours[PP_ROUNDS_MAX];
        for (int r = 0; r < rounds; r++) {
            ref[r] = pingpong(NULL, sn_server_port(plain_fib), conns[i]);
            ours[r] = pingpong(ct, sn_server_port(tls_fib), conns[i]);
            fprintf(stderr, "pingpong-%d round %d: %.0f / %.0f = %.2f\n", conns[i], r + 1, ours[r],
                    ref[r], ours[r] / ref[r]);
        }
        char name[32];
        snprintf(name, sizeof name, "pingpong-%d", conns[i]);
        row(name, median(ours, rounds), median(ref, rounds),
            "round trips/s (TLS vs plain TCP, medians of alternating rounds)");
    }
    sn_server_free(tls_fib);
    sn_server_free(plain_fib);
}

static void run_handshakes(sn_tls *st)
{
    struct bare b = {0}, bi = {.iterative = 1};
    pthread_t btid, bitid;
    int bport = bare_start(&b, &btid), biport = bare_start(&bi, &bitid);
    sn_server *tls_thr = serve(st, echo, 0);
    for (int resume = 0; resume < 2; resume++) {
        double ref = handshakes(bport, resume);
        double ours = handshakes(sn_server_port(tls_thr), resume);
        row(resume ? "handshakes-resumed" : "handshakes-full", ours, ref,
            "handshakes/s (vs bare wolfSSL, thread per connection)");
    }
    double ref = handshakes(biport, 0);
    double ours_full = handshakes(sn_server_port(tls_thr), 0);
    row("handshakes-full-iter", ours_full, ref, "handshakes/s (vs bare wolfSSL, one thread)");
    struct bare *bares[] = {&b, &bi};
    pthread_t btids[] = {btid, bitid};
    for (int i = 0; i < 2; i++) {
        shutdown(bares[i]->lfd, SHUT_RDWR);
        pthread_join(btids[i], NULL);
        close(bares[i]->lfd);
    }
    sn_server_free(tls_thr);
    wolfSSL_CTX_free(b.ctx);
    wolfSSL_CTX_free(bi.ctx);
}

static void run_bulk(sn_tls *st, sn_tls *ct)
{
    sn_server *tls_sink = serve(st, sink, 0), *plain_sink = serve(NULL, sink, 0);
    struct bare bs = {.sink = 1};
    pthread_t bstid;
    int bsport = bare_start(&bs, &bstid);
    double gcm = aesgcm(), gcm2 = aesgcm_pair();
    double ours = bulk(ct, sn_server_port(tls_sink));
    double bare = bulk_bare(bsport);
    double plain = bulk(NULL, sn_server_port(plain_sink));
    row("bulk", ours, gcm, "MiB/s (vs wolfCrypt AES-128-GCM, one thread)");
    row("bulk-vs-gcm-pair", ours, gcm2, "MiB/s (vs AES-GCM encrypting and decrypting at once)");
    row("bulk-vs-bare", ours, bare, "MiB/s (vs bare wolfSSL client and sink)");
    row("bulk-plain-tcp", plain, plain, "MiB/s (plain TCP, for scale)");
    shutdown(bs.lfd, SHUT_RDWR);
    pthread_join(bstid, NULL);
    close(bs.lfd);
    wolfSSL_CTX_free(bs.ctx);
    sn_server_free(tls_sink);
    sn_server_free(plain_sink);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    int rounds = PP_ROUNDS;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--only") == 0)
            only = argv[i + 1];
        else
            argc = 0;
    }
    if (argc < 2 || argc % 2 != 0 || seconds <= 0 || seconds > 60 || rounds < 1 ||
        rounds > PP_ROUNDS_MAX ||
        (only && strcmp(only, "pingpong") && strcmp(only, "handshakes") && strcmp(only, "bulk"))) {
        fprintf(stderr,
                "usage: tls-bench PKI_DIR [--seconds S (0-60)] [--rounds N (1-%d)]"
                " [--only pingpong|handshakes|bulk]\n",
                PP_ROUNDS_MAX);
        return 2;
    }
    pki = argv[1];
    sn_tls *st = server_tls(), *ct = client_tls();
    printf("#   %-20s %12s %12s %6s\n", "figure", "ours", "reference", "ratio");

    if (only == NULL || strcmp(only, "pingpong") == 0)
        run_pingpong(st, ct, rounds);
    if (only == NULL || strcmp(only, "handshakes") == 0)
        run_handshakes(st);
    if (only == NULL || strcmp(only, "bulk") == 0)
        run_bulk(st, ct);
    sn_tls_free(st);
    sn_tls_free(ct);
    return 0;
}
