/* SPDX-License-Identifier: MIT */
/*
 * hub-load: load for a chat server (examples/chat, or the npm ws reference
 * bench/ws-chat-ref.mjs): WebSocket clients in one room at /chat/ROOM.
 *
 *   hub-load --port P[,P2,...] [--host H] [--room R] [--pid PID[,PID2,...]]
 *            [--redis-pid PID]
 *            fanout --subs N --msgs M [--window W | --rate R] [--stalled K] [--size B]
 *            idle --members N
 *
 * With several ports (chat servers on one Redis, examples/chat --redis) the
 * subscribers are spread over them in turn and the publisher is on the
 * first; the servers' CPU is summed over the PIDs, and Redis's is reported
 * apart (--redis-pid). --rate R publishes R messages a second instead of
 * keeping a window (the latency at a fixed load).
 *
 * fanout: N subscribers read (on 2 threads, epoll); K more subscribers
 * connect first and never read (their receive buffers are small); one
 * publisher sends M text messages of B bytes (default 64) holding the send
 * time, keeping at most W (default 32) messages not yet received by every
 * reading subscriber. Prints deliveries per second to the reading
 * subscribers, the publish-to-arrival latency p50/p99, and the server's
 * VmRSS and threads (from /proc/PID/status) before and at the end.
 * idle: N members connect and join, then the server's VmRSS and threads.
 *
 * Output: one line of key=value pairs. Every wait is bounded (60 s).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "procstat.h"

#define READERS 2
#define HIST_US 1000000 /* latency buckets of 1 µs up to 1 s */
#define LIMIT_MS 60000

#define MAX_SERVERS 16

static const char *host = "127.0.0.1", *room = "bench";
static int port, ports[MAX_SERVERS], nports, server_pids[MAX_SERVERS], npids, server_pid, redis_pid;

/* A comma-separated list of numbers into out (at most MAX_SERVERS). */
static int num_list(const char *s, int *out)
{
    int n = 0;
    for (char *end; *s != '\0' && n < MAX_SERVERS; s = *end == ',' ? end + 1 : end) {
        out[n++] = (int)strtol(s, &end, 10);
        if (end == s)
            return 0;
    }
    return n;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "hub-load: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* VmRSS (KiB) and Threads of the server. */
static void server_status(long *rss_kb, long *threads)
{
    char path[64], line[256];
    *rss_kb = *threads = -1;
    snprintf(path, sizeof path, "/proc/%d/status", server_pid);
    FILE *f = server_pid > 0 ? fopen(path, "r") : NULL;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        sscanf(line, "VmRSS: %ld", rss_kb);
        sscanf(line, "Threads: %ld", threads);
    }
    if (f != NULL)
        fclose(f);
}

/* CPU time (user + system, seconds) the servers have used, or -1. */
static double server_cpu(void)
{
    double t = 0;
    for (int i = 0; i < npids; i++)
        t += proc_cpu_s(server_pids[i]);
    return npids > 0 ? t : -1;
}

/* A blocking connect and WebSocket handshake to /chat/ROOM?name=NAME on
 * the server at ports[k % nports]. */
static int ws_open_on(int k, const char *name, int rcvbuf);

static int ws_open(const char *name, int rcvbuf)
{
    return ws_open_on(0, name, rcvbuf);
}

static int ws_open_on(int k, const char *name, int rcvbuf)
{
    int to = ports[k % nports];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)to)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /chat/%s?name=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     room, name, host, to);
    if (write(fd, req, (size_t)n) != n)
        die("write");
    char c, last4[4] = {0};
    while (memcmp(last4, "\r\n\r\n", 4) != 0) { /* the 101's head, byte by byte */
        if (read(fd, &c, 1) != 1)
            die("handshake");
        memmove(last4, last4 + 1, 3);
        last4[3] = c;
    }
    return fd;
}

/* A masked text frame (key 0: the payload goes as it is). */
static void ws_send(int fd, const char *text, size_t len)
{
    uint8_t f[16 + 4096];
    size_t h = 2;
    f[0] = 0x81;
    if (len < 126) {
        f[1] = (uint8_t)(0x80 | len);
    } else {
        f[1] = 0x80 | 126;
        f[2] = (uint8_t)(len >> 8);
        f[3] = (uint8_t)len;
        h = 4;
    }
    memset(f + h, 0, 4);
    memcpy(f + h + 4, text, len);
    size_t total = h + 4 + len, off = 0;
    while (off < total) {
        ssize_t n = write(fd, f + off, total - off);
        if (n < 0)
            die("publish");
        off += (size_t)n;
    }
}

/* ---- subscribers ---------------------------------------------------------------- */

typedef struct sub {
    int fd;
    uint8_t buf[65536];
    size_t len;
    bool warm; /* got a warm-up message */
} sub;

static sub *subs;
static int nsubs, msgs, window_ = 32;
static atomic_int *got;      /* per message: subscribers that have it */
static atomic_int warm_subs; /* subscribers that got a warm-up message */
static atomic_long deliveries;
static atomic_int_fast64_t last_arrival;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int completed = -1; /* every message up to this one reached every subscriber */
static atomic_bool stop;
static uint32_t *hist[READERS];

static void on_text(sub *s, uint32_t *h, const uint8_t *p, size_t n)
{
    const char *t = memmem(p, n, "\"text\":\"", 8);
    if (t == NULL)
        return;
    t += 8;
    if (*t == 'W') {
        if (!s->warm) {
            s->warm = true;
            atomic_fetch_add(&warm_subs, 1);
        }
        return;
    }
    long long sent;
    int seq;
    if (sscanf(t, "T%lld S%d", &sent, &seq) != 2 || seq < 0 || seq >= msgs)
        return;
    int64_t now = now_ns();
    int64_t us = (now - sent) / 1000;
    h[us < HIST_US ? us : HIST_US - 1]++;
    atomic_fetch_add_explicit(&deliveries, 1, memory_order_relaxed);
    atomic_store_explicit(&last_arrival, now, memory_order_relaxed);
    if (atomic_fetch_add(&got[seq], 1) + 1 == nsubs) {
        pthread_mutex_lock(&mu);
        if (seq > completed)
            completed = seq;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
}

/* Parses the frames in s's buffer. */
static void frames(sub *s, uint32_t *h)
{
    size_t off = 0;
    while (s->len - off >= 2) {
        const uint8_t *p = s->buf + off;
        uint64_t n = p[1] & 0x7f;
        size_t hl = 2;
        if (n == 126) {
            if (s->len - off < 4)
                break;
            n = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (n == 127) {
            if (s->len - off < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | p[2 + i];
            hl = 10;
        }
        if (n > sizeof s->buf - 16) {
            fprintf(stderr, "hub-load: frame of %llu bytes\n", (unsigned long long)n);
            exit(1);
        }
        if (s->len - off < hl + n)
            break;
        if ((p[0] & 0x0f) == 1)
            on_text(s, h, p + hl, (size_t)n);
        off += hl + (size_t)n;
    }
    memmove(s->buf, s->buf + off, s->len - off);
    s->len -= off;
}

static void *reader(void *arg)
{
    int id = (int)(intptr_t)arg;
    int ep = epoll_create1(0);
    for (int i = id; i < nsubs; i += READERS) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &subs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev);
    }
    struct epoll_event evs[64];
    while (!atomic_load(&stop)) {
        int n = epoll_wait(ep, evs, 64, 100);
        for (int i = 0; i < n; i++) {
            sub *s = evs[i].data.ptr;
            ssize_t r = recv(s->fd, s->buf + s->len, sizeof s->buf - s->len, MSG_DONTWAIT);
            if (r == 0) {
                fprintf(stderr, "hub-load: a subscriber was closed\n");
                exit(1);
            }
            if (r > 0) {
                s->len += (size_t)r;
                frames(s, hist[id]);
            }
        }
    }
    close(ep);
    return NULL;
}

static double percentile(double q)
{
    uint64_t total = 0, seen = 0;
    for (int r = 0; r < READERS; r++)
        for (int i = 0; i < HIST_US; i++)
            total += hist[r][i];
    for (int i = 0; i < HIST_US; i++) {
        for (int r = 0; r < READERS; r++)
            seen += hist[r][i];
        if (total > 0 && (double)seen >= q * (double)total)
            return i;
    }
    return -1;
}

static void publish(int fd, const char *tag, int seq, int size)
{
    char text[4096];
    int n = tag[0] == 'W' ? snprintf(text, sizeof text, "W")
                          : snprintf(text, sizeof text, "T%lld S%d ", (long long)now_ns(), seq);
    while (n < size)
        text[n++] = 'x';
    ws_send(fd, text, (size_t)n);
}

static int fanout(int argc, char **argv)
{
    int stalled = 0, size = 64, rate = 0;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--subs") == 0)
            nsubs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--msgs") == 0)
            msgs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--window") == 0)
            window_ = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--stalled") == 0)
            stalled = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0)
            size = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = atoi(argv[i + 1]);
    }
    if (nsubs <= 0 || msgs <= 0 || window_ <= 0 || size < 32 || size > 4000 || rate < 0)
        return 2;
    long rss0, th0, rss1, th1;
    server_status(&rss0, &th0);
    char name[32];
    for (int i = 0; i < stalled; i++) {
        snprintf(name, sizeof name, "stalled%d", i);
        ws_open(name, 4096); /* never read */
    }
    subs = calloc((size_t)nsubs, sizeof *subs);
    got = calloc((size_t)msgs, sizeof *got);
    for (int r = 0; r < READERS; r++)
        hist[r] = calloc(HIST_US, sizeof *hist[r]);
    for (int i = 0; i < nsubs; i++) {
        snprintf(name, sizeof name, "s%d", i);
        subs[i].fd = ws_open_on(i, name, 0);
    }
    int pub = ws_open("pub", 0);
    pthread_t rt[READERS];
    for (int r = 0; r < READERS; r++)
        pthread_create(&rt[r], NULL, reader, (void *)(intptr_t)r);
    /* warm-up: until every subscriber is in the room */
    int64_t limit = now_ns() + (int64_t)LIMIT_MS * 1000000;
    while (atomic_load(&warm_subs) < nsubs && now_ns() < limit) {
        publish(pub, "W", 0, size);
        usleep(20000);
    }
    usleep(200000); /* the last warm-ups drain */
    double cpu0 = server_cpu(), rcpu0 = redis_pid > 0 ? proc_cpu_s(redis_pid) : -1;
    int64_t t0 = now_ns();
    for (int i = 0; i < msgs && now_ns() < limit; i++) {
        if (rate > 0) { /* a fixed load: the i-th message at t0 + i / rate */
            int64_t at = t0 + (int64_t)i * 1000000000 / rate, wait = at - now_ns();
            if (wait > 0)
                usleep((useconds_t)(wait / 1000));
            publish(pub, "T", i, size);
            continue;
        }
        pthread_mutex_lock(&mu);
        while (completed < i - window_ && now_ns() < limit) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 10000000;
            if (ts.tv_nsec >= 1000000000)
                ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&cv, &mu, &ts);
        }
        pthread_mutex_unlock(&mu);
        publish(pub, "T", i, size);
    }
    pthread_mutex_lock(&mu);
    while (completed < msgs - 1 && now_ns() < limit) {
        pthread_mutex_unlock(&mu);
        usleep(1000);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    server_status(&rss1, &th1);
    double cpu = server_cpu() - cpu0;
    double rcpu = redis_pid > 0 ? proc_cpu_s(redis_pid) - rcpu0 : -1;
    atomic_store(&stop, true);
    for (int r = 0; r < READERS; r++)
        pthread_join(rt[r], NULL);
    double secs = (double)(atomic_load(&last_arrival) - t0) / 1e9;
    long d = atomic_load(&deliveries);
    printf("deliveries=%ld want=%ld secs=%.3f rate=%.0f p50_us=%.0f p99_us=%.0f "
           "rss_before_kb=%ld rss_kb=%ld threads=%ld server_cpu_s=%.2f cpu_us_per_delivery=%.2f "
           "redis_cpu_s=%.2f complete=%d\n",
           d, (long)nsubs * msgs, secs, secs > 0 ? d / secs : 0, percentile(0.50), percentile(0.99),
           rss0, rss1, th1, cpu, d > 0 ? cpu * 1e6 / (double)d : 0, rcpu, completed == msgs - 1);
    return completed == msgs - 1 ? 0 : 1;
}

static int idle(int argc, char **argv)
{
    int n = argc >= 2 && strcmp(argv[0], "--members") == 0 ? atoi(argv[1]) : 0;
    if (n <= 0)
        return 2;
    long rss0, th0, rss1, th1;
    server_status(&rss0, &th0);
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "idle%d", i);
        ws_open(name, 0); /* kept open until exit */
    }
    sleep(1);
    server_status(&rss1, &th1);
    printf("members=%d rss_before_kb=%ld rss_kb=%ld per_member_kb=%.2f threads=%ld\n", n, rss0,
           rss1, (double)(rss1 - rss0) / n, th1);
    return 0;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = (nports = num_list(argv[i + 1], ports)) > 0 ? ports[0] : 0;
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--room") == 0)
            room = argv[i + 1];
        else if (strcmp(argv[i], "--pid") == 0)
            server_pid = (npids = num_list(argv[i + 1], server_pids)) > 0 ? server_pids[0] : 0;
        else if (strcmp(argv[i], "--redis-pid") == 0)
            redis_pid = atoi(argv[i + 1]);
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    int rc = 2;
    if (port > 0 && i < argc && strcmp(argv[i], "fanout") == 0)
        rc = fanout(argc - i - 1, argv + i + 1);
    else if (port > 0 && i < argc && strcmp(argv[i], "idle") == 0)
        rc = idle(argc - i - 1, argv + i + 1);
    if (rc == 2)
        fprintf(stderr,
                "usage: hub-load --port P[,P...] [--host H] [--room R] [--pid PID[,PID...]] "
                "[--redis-pid PID] fanout --subs N --msgs M [--window W | --rate R] "
                "[--stalled K] [--size B] | idle --members N\n");
    return rc;
}
