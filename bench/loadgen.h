/* SPDX-License-Identifier: MIT */
/*
 * loadgen.h: what the load generators of bench/ share (sn-loadgen, ws-loadgen): the clock,
 * process setup, the server address, batched non-blocking connects, holding idle connections
 * and the latency histogram.
 * Static functions in a header, included by one .c file each: each program stays a single
 * self-contained translation unit. The includer defines LG_NAME (its name, for messages).
 */
#ifndef SN_BENCH_LOADGEN_H
#define SN_BENCH_LOADGEN_H

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_BATCH 64
#define CONNECT_TIMEOUT_MS 10000
#define IO_TIMEOUT_S 10
#define HIST_SUB 16
#define HIST_BUCKETS (64 * HIST_SUB)

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static volatile sig_atomic_t g_stop;

/* ---- small helpers ------------------------------------------------------ */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps until now_ns() reaches t, or a signal asks to stop. */
static inline void sleep_until(uint64_t t)
{
    uint64_t n;
    while (!g_stop && (n = now_ns()) < t) {
        uint64_t d = t - n;
        struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
        nanosleep(&ts, NULL);
    }
}

static inline void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static inline void setup_process(void)
{
    struct rlimit rl;
    struct sigaction sa;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static inline int resolve(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL;
    int rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, LG_NAME ": %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    memcpy(&g_addr, res->ai_addr, res->ai_addrlen);
    g_addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* --unix PATH: the local (Unix-domain) socket to talk to instead of host and port. */
static inline int resolve_local(const char *path)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&g_addr;
    if (strlen(path) >= sizeof sun->sun_path) {
        fprintf(stderr, LG_NAME ": %s: path too long\n", path);
        return -1;
    }
    memset(&g_addr, 0, sizeof g_addr);
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    g_addrlen = sizeof *sun;
    return 0;
}

/* Text for a failed recv/send that returned n (0 = end of stream; errno otherwise). */
static inline const char *io_error(ssize_t n)
{
    if (n == 0)
        return "connection closed by the server";
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return "timed out";
    return strerror(errno);
}

static inline void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static inline void set_io_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static inline void close_all(int *fds, long n)
{
    for (long i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* ---- connecting in bounded batches ---------------------------------------- */

/* Waits until every socket of the batch has connected; 0 or -1. */
static inline int await_batch(int *fds, int n)
{
    struct pollfd pfd[CONNECT_BATCH];
    uint64_t deadline = now_ns() + (uint64_t)CONNECT_TIMEOUT_MS * 1000000u;
    int left = n;

    for (int i = 0; i < n; i++)
        pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
    while (left > 0) {
        uint64_t t = now_ns();
        if (t >= deadline || g_stop) {
            fprintf(stderr, LG_NAME ": connect timed out\n");
            return -1;
        }
        int r = poll(pfd, (nfds_t)n, (int)((deadline - t) / 1000000u) + 1);
        if (r < 0 && errno != EINTR)
            return -1;
        for (int i = 0; r > 0 && i < n; i++) {
            int err = 0;
            socklen_t len = sizeof err;
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            if (getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
                fprintf(stderr, LG_NAME ": connect: %s\n", strerror(err ? err : errno));
                return -1;
            }
            pfd[i].fd = -1;
            left--;
        }
    }
    return 0;
}

/* Opens n non-blocking, TCP_NODELAY connections, CONNECT_BATCH in flight at most. */
static inline int connect_many(int *fds, long n)
{
    for (long i = 0; i < n; i++)
        fds[i] = -1;
    for (long base = 0; base < n; base += CONNECT_BATCH) {
        int m = (int)(n - base < CONNECT_BATCH ? n - base : CONNECT_BATCH);
        for (int i = 0; i < m; i++) {
            int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0)
                goto fail;
            fds[base + i] = fd;
            set_nodelay(fd);
            if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0 && errno != EINPROGRESS)
                goto fail;
        }
        if (await_batch(fds + base, m) < 0)
            goto fail_quiet;
    }
    return 0;
fail:
    fprintf(stderr, LG_NAME ": connect: %s\n", strerror(errno));
fail_quiet:
    close_all(fds, n);
    return -1;
}

/* ---- holding idle connections ------------------------------------------- */

/* True when stdin is a pipe or socket: only then does its end-of-file mean "stop holding".
 * A terminal or /dev/null (what a background job of a script gets) is ignored. */
static inline int stdin_watchable(void)
{
    struct stat st;
    return fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* Sleeps for secs, or until SIGTERM/SIGINT, or until a watched stdin reaches end-of-file. */
static inline void idle_hold(double secs)
{
    struct pollfd pfd = {.fd = stdin_watchable() ? STDIN_FILENO : -1, .events = POLLIN};
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    char buf[256];

    while (!g_stop && now_ns() < end) {
        if (poll(&pfd, 1, 50) <= 0 || !pfd.revents)
            continue;
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf); /* input is discarded */
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            break;
    }
}

/* Says "idle N ready" on stdout, holds for secs (as idle_hold), then prints the result line
 * "result NAME conns=N held_s=S". */
static inline void idle_report_hold(const char *name, long n, double secs)
{
    printf("idle %ld ready\n", n);
    fflush(stdout);
    uint64_t t0 = now_ns();
    idle_hold(secs);
    printf("result %s conns=%ld held_s=%.2f\n", name, n, (double)(now_ns() - t0) / 1e9);
}

/* ---- latency histogram ----------------------------------------------------- */

struct hist {
    uint64_t b[HIST_BUCKETS];
    uint64_t n;
};

static inline int hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    return (msb - 3) * HIST_SUB + (int)((v >> (msb - 4)) & (HIST_SUB - 1));
}

/* Midpoint of bucket i. */
static inline double hist_value(int i)
{
    if (i < HIST_SUB)
        return i;
    int msb = i / HIST_SUB + 3;
    uint64_t lo = (uint64_t)(HIST_SUB + i % HIST_SUB) << (msb - 4);
    return (double)lo + (double)((uint64_t)1 << (msb - 4)) / 2.0;
}

static inline void hist_add(struct hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->n++;
}

static inline void hist_merge(struct hist *dst, const struct hist *src)
{
    for (int i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->n += src->n;
}

/* Quantile q in microseconds (bucket midpoint). */
static inline double hist_quantile_us(const struct hist *h, double q)
{
    uint64_t rank = (uint64_t)(q * (double)h->n), seen = 0;
    if (h->n == 0)
        return 0;
    if (rank >= h->n)
        rank = h->n - 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank)
            return hist_value(i) / 1000.0;
    }
    return 0;
}

/* ---- the command line ------------------------------------------------------ */

static _Noreturn void usage(void); /* the includer's */

/* s as a whole number in [lo, hi], else usage(). */
static inline long num(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        usage();
    return v;
}

/* s as seconds in [0, 86400], else usage(). */
static inline double secs_arg(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= 0 && v <= 86400))
        usage();
    return v;
}

#endif
