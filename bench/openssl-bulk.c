/* SPDX-License-Identifier: MIT */
/*
 * openssl-bulk: the reference for tls-bench's bulk row, on OpenSSL at both
 * ends (bench/tls-run.sh runs it beside tls-bench).
 *
 *   openssl-bulk PKI_DIR [--seconds S]
 *
 * The same stream as tls-bench's bulk rows, in one process over loopback: a
 * client thread writes 16 KiB records for S seconds (default 3) over TLS 1.3
 * with TLS_AES_128_GCM_SHA256 only, then sends close_notify and half-closes;
 * a server thread (the test PKI's ECDSA P-256 certificate) reads to the end
 * in 64 KiB reads and answers the byte count, which the client checks.
 * Prints "result openssl-bulk mib_per_s=X seconds=Y cipher=NAME" on stdout.
 * Exit 0, 1 on any failure, 2 on bad usage. Bench only: configure builds it
 * when it finds libssl-dev.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SUITE "TLS_AES_128_GCM_SHA256"

static const char *pki;

static void die(const char *what)
{
    fprintf(stderr, "openssl-bulk: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static const char *path(const char *name)
{
    static char bufs[2][1024];
    static int next;
    char *b = bufs[next++ % 2];
    snprintf(b, sizeof bufs[0], "%s/%s", pki, name);
    return b;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A TLS 1.3 context that offers or accepts TLS_AES_128_GCM_SHA256 alone. */
static SSL_CTX *context(int server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(ctx, SUITE))
        die("context");
    if (server && (SSL_CTX_use_certificate_chain_file(ctx, path("server-ec.pem")) != 1 ||
                   SSL_CTX_use_PrivateKey_file(ctx, path("server-ec.key"), SSL_FILETYPE_PEM) != 1))
        die("server certificate");
    if (!server) {
        if (SSL_CTX_load_verify_locations(ctx, path("ca.pem"), NULL) != 1)
            die("CA");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
}

static void nodelay(int fd)
{
    int one = 1; /* as socknet's sockets */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The sink: one connection, read to the end, answer the byte count. */
static void *sink(void *arg)
{
    int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        die("accept");
    nodelay(fd);
    SSL_CTX *ctx = context(1);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1)
        die("server handshake");
    static char buf[1 << 16];
    unsigned long long total = 0;
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0)
        total += (unsigned long long)n;
    n = snprintf(buf, 64, "%llu\n", total);
    if (SSL_write(ssl, buf, n) != n)
        die("server answer");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return NULL;
}

static int listen_any(int *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 8) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &len) < 0)
        die("listen");
    *port = ntohs(a.sin_port);
    return lfd;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    nodelay(fd);
    return fd;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    if (argc == 4 && strcmp(argv[2], "--seconds") == 0)
        seconds = atof(argv[3]);
    else if (argc != 2)
        seconds = -1;
    if (seconds <= 0 || seconds > 60) {
        fprintf(stderr, "usage: openssl-bulk PKI_DIR [--seconds S (0-60)]\n");
        return 2;
    }
    pki = argv[1];
    int port, lfd = listen_any(&port);
    pthread_t tid;
    pthread_create(&tid, NULL, sink, &lfd);

    SSL_CTX *ctx = context(0);
    int fd = dial(port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (!SSL_set1_host(ssl, "localhost") || SSL_connect(ssl) != 1)
        die("client handshake");
    const char *cipher = SSL_get_cipher_name(ssl);
    if (strcmp(cipher, SUITE) != 0)
        die("the cipher suite is not " SUITE);
    static char buf[16384];
    memset(buf, 'b', sizeof buf);
    unsigned long long sent = 0;
    double t0 = now_s();
    for (int i = 0; i < 10000000 && now_s() - t0 < seconds; i++) {
        if (SSL_write(ssl, buf, sizeof buf) != (int)sizeof buf)
            die("write");
        sent += sizeof buf;
    }
    SSL_shutdown(ssl); /* close_notify, then the end of the stream */
    shutdown(fd, SHUT_WR);
    char line[64] = {0};
    int n = SSL_read(ssl, line, sizeof line - 1);
    double dt = now_s() - t0;
    if (n <= 0 || strtoull(line, NULL, 10) != sent)
        die("the sink's count is not what was sent");
    printf("result openssl-bulk mib_per_s=%.1f seconds=%.3f cipher=%s\n",
           (double)sent / dt / (1 << 20), dt, cipher);
    pthread_join(tid, NULL);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    close(lfd);
    return 0;
}
