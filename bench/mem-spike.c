/* SPDX-License-Identifier: MIT */
/*
 * mem-spike: a spike of connections against an echo server, and the
 * server's memory before, at the peak and after it ends (bench/mem-run.sh).
 *
 *   mem-spike --port P [--host H] --conns N [--threads T] [--tls CA_FILE]
 *             [--pid SERVER_PID] [--spikes K] [--after-ms A,B,...] [--warmup W]
 *
 * T threads (default 2) open N connections (default 3000) between them,
 * each with a blocking connect, a TLS 1.3 handshake with --tls (the
 * server's certificate checked against CA_FILE), and one 64-byte message
 * echoed and checked, and keep every connection open. When all N are up,
 * the server's VmRSS is read (the peak; VmHWM is reported too), then every
 * connection is closed at once (with RST: no TIME_WAIT, so runs back to
 * back do not run out of ports) and VmRSS is read again at each of the
 * times in --after-ms (default 1000,5000) after the close. With --spikes K
 * the whole spike is repeated K times (the figures after the last one).
 * The client frees its TLS session as soon as the echo is checked: the
 * server keeps its own, so the client's memory stays small.
 *
 * --warmup W: before the figure "before", W connections are opened the same
 * way and closed again, 2 s ahead (default 0). A server's memory after its
 * first few connections is its true resting state: with TLS, wolfCrypt's
 * fixed-point ECC tables (FP_ECC in Debian's wolfSSL, up to 15 tables of
 * about 0.8 MiB per thread) fill up within the first handshakes and stay.
 *
 * Output: one line on stdout,
 *   result mem-spike conns=N tls=0|1 spikes=K warmup=W before_kib=.. peak_kib=.. hwm_kib=..
 *       threads_peak=.. after_1000ms_kib=.. after_5000ms_kib=.. spike_s=..
 * human text on stderr; exit status 1 on any failure (no result line), 2 on
 * bad usage. Every loop is bounded by a count; every socket call by a 10 s
 * timeout. libc, pthreads and wolfSSL only (it does not use libsocknet).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#define MAX_CONNS 20000
#define MAX_THREADS 64
#define MAX_AFTER 16
#define MSG 64

static const char *host = "127.0.0.1";
static int port;
static int conns = 3000, threads = 2, spikes = 1, warmup;
static long server_pid;
static WOLFSSL_CTX *ctx; /* --tls */
static int fds[MAX_CONNS];
static long after_ms[MAX_AFTER] = {1000, 5000};
static int nafter = 2;

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: mem-spike --port P [--host H] --conns N [--threads T] "
                    "[--tls CA_FILE] [--pid SERVER_PID] [--spikes K] [--after-ms A,B,...] "
                    "[--warmup W]\n");
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* A field of /proc/PID/status in KiB (or a count), or -1. */
static long status_field(const char *name)
{
    char path[64], line[256];
    size_t len = strlen(name);
    long v = -1;
    if (server_pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%ld/status", server_pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            v = strtol(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* One connection: connect, handshake, one message echoed; the descriptor,
 * or -1 (the reason on stderr). */
static int open_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) {
        perror("mem-spike: socket");
        return -1;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("mem-spike: connect");
        close(fd);
        return -1;
    }
    char out[MSG], in[MSG];
    for (int i = 0; i < MSG; i++)
        out[i] = (char)('a' + (fd + i) % 26);
    int ok = 0;
    if (ctx != NULL) {
        WOLFSSL *ssl = wolfSSL_new(ctx);
        int got = 0, n = 1;
        if (ssl != NULL && wolfSSL_set_fd(ssl, fd) == WOLFSSL_SUCCESS &&
            wolfSSL_connect(ssl) == WOLFSSL_SUCCESS && wolfSSL_write(ssl, out, MSG) == MSG) {
            for (int k = 0; k < MSG && got < MSG && n > 0; k++)
                if ((n = wolfSSL_read(ssl, in + got, MSG - got)) > 0)
                    got += n;
            ok = got == MSG;
        }
        if (!ok)
            fprintf(stderr, "mem-spike: TLS connection failed (%d)\n",
                    ssl ? wolfSSL_get_error(ssl, 0) : -1);
        wolfSSL_free(ssl); /* no close_notify: the connection stays open */
    } else {
        ssize_t got = 0, n = 1;
        if (send(fd, out, MSG, MSG_NOSIGNAL) == MSG)
            for (int k = 0; k < MSG && got < MSG && n > 0; k++)
                if ((n = recv(fd, in + got, (size_t)(MSG - got), 0)) > 0)
                    got += n;
        ok = got == MSG;
        if (!ok)
            fprintf(stderr, "mem-spike: echo failed: %s\n", n < 0 ? strerror(errno) : "closed");
    }
    if (ok && memcmp(in, out, MSG) != 0) {
        fprintf(stderr, "mem-spike: wrong echo\n");
        ok = 0;
    }
    if (!ok) {
        close(fd);
        return -1;
    }
    return fd;
}

struct share {
    int first, count, failed;
};

static void *opener(void *arg)
{
    struct share *s = arg;
    for (int i = 0; i < s->count; i++)
        if ((fds[s->first + i] = open_one()) < 0) {
            s->failed = 1;
            break;
        }
    return NULL;
}

/* Closes with RST (SO_LINGER 0), as sn-loadgen connect does. */
static void close_all(void)
{
    struct linger lg = {1, 0};
    for (int i = 0; i < MAX_CONNS; i++)
        if (fds[i] >= 0) {
            setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(fds[i]);
            fds[i] = -1;
        }
}

/* Opens n connections (T threads); every one in fds[] is open, or -1. */
static int spike(int n)
{
    pthread_t tid[MAX_THREADS];
    struct share sh[MAX_THREADS];
    int per = n / threads, extra = n % threads, first = 0, failed = 0;
    for (int i = 0; i < MAX_CONNS; i++)
        fds[i] = -1;
    for (int t = 0; t < threads; t++) {
        sh[t] = (struct share){.first = first, .count = per + (t < extra)};
        first += sh[t].count;
        if (pthread_create(&tid[t], NULL, opener, &sh[t]) != 0) {
            fprintf(stderr, "mem-spike: pthread_create failed\n");
            exit(1);
        }
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        failed |= sh[t].failed;
    }
    return failed ? -1 : 0;
}

static void parse_after(const char *s)
{
    char *end;
    nafter = 0;
    while (*s != '\0' && nafter < MAX_AFTER) {
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 600000 || (*end != ',' && *end != '\0'))
            usage();
        if (nafter > 0 && v <= after_ms[nafter - 1])
            usage(); /* ascending */
        after_ms[nafter++] = v;
        s = *end == ',' ? end + 1 : end;
    }
    if (nafter == 0)
        usage();
}

static long num(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    const char *ca = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        if (strcmp(f, "--host") == 0)
            host = v;
        else if (strcmp(f, "--port") == 0)
            port = (int)num(v, 1, 65535);
        else if (strcmp(f, "--conns") == 0)
            conns = (int)num(v, 1, MAX_CONNS);
        else if (strcmp(f, "--threads") == 0)
            threads = (int)num(v, 1, MAX_THREADS);
        else if (strcmp(f, "--warmup") == 0)
            warmup = (int)num(v, 0, MAX_CONNS);
        else if (strcmp(f, "--spikes") == 0)
            spikes = (int)num(v, 1, 100);
        else if (strcmp(f, "--pid") == 0)
            server_pid = num(v, 1, 1L << 30);
        else if (strcmp(f, "--tls") == 0)
            ca = v;
        else if (strcmp(f, "--after-ms") == 0)
            parse_after(v);
        else
            usage();
        i++;
    }
    if (port == 0)
        usage();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (ca != NULL) {
        wolfSSL_Init();
        ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
        if (ctx == NULL || wolfSSL_CTX_load_verify_locations(ctx, ca, NULL) != WOLFSSL_SUCCESS) {
            fprintf(stderr, "mem-spike: %s: cannot load the CA\n", ca);
            return 1;
        }
    }
    if (warmup > 0) {
        if (spike(warmup) < 0) {
            close_all();
            return 1;
        }
        close_all();
        sleep_ms(2000);
    }
    long before = status_field("VmRSS"), peak = -1, hwm = -1, nthreads = -1;
    long after[MAX_AFTER];
    double t_spike = 0;
    for (int k = 0; k < spikes; k++) {
        double t0 = now_s();
        if (spike(conns) < 0) {
            close_all();
            return 1;
        }
        t_spike = now_s() - t0;
        fprintf(stderr, "mem-spike: spike %d: %d connections up in %.2f s\n", k + 1, conns,
                t_spike);
        sleep_ms(500); /* the server settles: every handler is waiting on its connection */
        peak = status_field("VmRSS");
        hwm = status_field("VmHWM");
        nthreads = status_field("Threads");
        close_all();
        long slept = 0;
        for (int j = 0; j < nafter; j++) {
            sleep_ms(after_ms[j] - slept);
            slept = after_ms[j];
            after[j] = status_field("VmRSS");
            fprintf(stderr, "mem-spike: %ld ms after the close: VmRSS %ld KiB\n", after_ms[j],
                    after[j]);
        }
    }
    printf("result mem-spike conns=%d tls=%d spikes=%d warmup=%d before_kib=%ld peak_kib=%ld "
           "hwm_kib=%ld threads_peak=%ld",
           conns, ctx != NULL, spikes, warmup, before, peak, hwm, nthreads);
    for (int j = 0; j < nafter; j++)
        printf(" after_%ldms_kib=%ld", after_ms[j], after[j]);
    printf(" spike_s=%.2f\n", t_spike);
    wolfSSL_CTX_free(ctx);
    return 0;
}
