/* SPDX-License-Identifier: MIT */
/*
 * ws-floor: the least a WebSocket echo server can do, as a yardstick for bench/run.sh.
 *
 *   ws-floor [--host H] [--port P] [--threads T]
 *
 * Not a server to copy: it is here to show what the kernel leaves to any server on the
 * machine the benchmark runs on, so that "ours against ws" can be read next to "the floor
 * against ws" measured in the same run. It does the minimum per message and nothing a
 * real server must:
 *
 * - T threads (default 2), each with its own SO_REUSEPORT listener and its own
 *   level-triggered epoll: no shared accept queue, no locks, no hand-off between threads.
 * - The opening handshake: reads the request head, answers 101 with the accept key of its
 *   Sec-WebSocket-Key (wolfCrypt's SHA-1 and base64). Path, version and the other headers
 *   are not checked; no extension is accepted.
 * - Frames: each complete frame read is echoed as it came (opcode and FIN kept, so a
 *   fragmented message comes back fragmented), unmasked, its header rewritten; a ping is
 *   answered with a pong, a close with a close, and then the connection is closed. All the
 *   replies to one read leave in one send. No UTF-8 validation, no limits beyond a 16 MiB
 *   frame, no deadlines, no ping period.
 * - TCP_NODELAY on accepted sockets; reads of up to 64 KiB; a partial send parks the rest
 *   and switches the connection to EPOLLOUT until it drains.
 *
 * Prints "listening on H:PORT" once every thread listens (port 0 = a free port, then shared
 * by the threads); SIGINT or SIGTERM → exit status 0. libc, pthreads and wolfCrypt.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha.h>

#define MAX_THREADS 64
#define MAX_EVENTS 256
#define READ_MAX (64 * 1024)
#define FRAME_MAX (16L << 20)
#define HEAD_MAX 8192
#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455, section 1.3 */

struct conn {
    int fd;
    int upgraded;
    int closing; /* a close frame was answered: close once the output drained */
    unsigned char *in;
    size_t in_len, in_cap;
    unsigned char *out;
    size_t out_off, out_len, out_cap;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int grow(unsigned char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    unsigned char *q = realloc(*p, n);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int out_add(struct conn *c, const void *p, size_t n)
{
    if (grow(&c->out, &c->out_cap, c->out_len + n) < 0)
        return -1;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

static void conn_free(struct conn *c)
{
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static int set_events(int ep, struct conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Sends what is queued. 1 all sent, 0 some left (EPOLLOUT armed), -1 error. */
static int flush_out(int ep, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return set_events(ep, c, EPOLLOUT) < 0 ? -1 : 0;
        } else {
            return -1;
        }
    }
    c->out_off = c->out_len = 0;
    return 1;
}

/* The 101 for a complete request head in c->in; -1 when it has no key. */
static int upgrade(struct conn *c, size_t head_len)
{
    const char *k = NULL;
    c->in[head_len - 1] = '\0';
    for (char *line = (char *)c->in; line != NULL;) {
        char *nl = strchr(line, '\n');
        if (strncasecmp(line, "Sec-WebSocket-Key:", 18) == 0) {
            k = line + 18;
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (k == NULL)
        return -1;
    while (*k == ' ' || *k == '\t')
        k++;
    size_t kl = strcspn(k, " \t\r\n");
    unsigned char buf[128], hash[WC_SHA_DIGEST_SIZE], acc[64];
    if (kl == 0 || kl + sizeof GUID > sizeof buf)
        return -1;
    memcpy(buf, k, kl);
    memcpy(buf + kl, GUID, sizeof GUID - 1);
    word32 alen = sizeof acc;
    if (wc_ShaHash(buf, (word32)(kl + sizeof GUID - 1), hash) != 0 ||
        Base64_Encode_NoNl(hash, sizeof hash, acc, &alen) != 0)
        return -1;
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %.*s\r\n\r\n",
                     (int)alen, (const char *)acc);
    memmove(c->in, c->in + head_len, c->in_len - head_len);
    c->in_len -= head_len;
    c->upgraded = 1;
    return out_add(c, resp, (size_t)n);
}

/* Echoes every complete frame in c->in. 0 ok, -1 protocol error. */
static int echo_frames(struct conn *c)
{
    size_t off = 0;
    while (!c->closing && c->in_len - off >= 2) {
        unsigned char *p = c->in + off;
        size_t avail = c->in_len - off, hl = 2;
        uint64_t len = p[1] & 0x7f;
        if (!(p[1] & 0x80))
            return -1; /* a client must mask */
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[2 + i];
            hl = 10;
        }
        if (len > FRAME_MAX)
            return -1;
        if (avail < hl + 4 + len)
            break;
        const unsigned char *key = p + hl;
        unsigned char *pl = p + hl + 4;
        for (uint64_t i = 0; i < len; i++)
            pl[i] ^= key[i & 3];
        unsigned op = p[0] & 0x0f;
        unsigned char h[10];
        size_t n = 2;
        h[0] = (unsigned char)((p[0] & 0x80) | (op == 0x9 ? 0xA : op));
        if (len < 126) {
            h[1] = (unsigned char)len;
        } else if (len < 65536) {
            h[1] = 126, h[2] = (unsigned char)(len >> 8), h[3] = (unsigned char)len, n = 4;
        } else {
            h[1] = 127, n = 10;
            for (int i = 0; i < 8; i++)
                h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        }
        if (op != 0xA) { /* a pong the client sent needs no answer */
            if (out_add(c, h, n) < 0 || out_add(c, pl, (size_t)len) < 0)
                return -1;
        }
        if (op == 0x8)
            c->closing = 1;
        off += hl + 4 + (size_t)len;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

/* Reads once and answers. 0 keep, -1 close. */
static int on_readable(int ep, struct conn *c)
{
    if (grow(&c->in, &c->in_cap, c->in_len + READ_MAX) < 0)
        return -1;
    ssize_t n = recv(c->fd, c->in + c->in_len, READ_MAX, 0);
    if (n <= 0)
        return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    c->in_len += (size_t)n;
    if (!c->upgraded) {
        unsigned char *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (e == NULL)
            return c->in_len > HEAD_MAX ? -1 : 0;
        if (upgrade(c, (size_t)(e - c->in) + 4) < 0)
            return -1;
    }
    if (echo_frames(c) < 0)
        return -1;
    int f = flush_out(ep, c);
    return f < 0 || (f == 1 && c->closing) ? -1 : 0;
}

static int make_listener(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        perror("ws-floor: listen");
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static void *serve(void *arg)
{
    int lfd = (int)(intptr_t)arg, one = 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[MAX_EVENTS];
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("ws-floor: epoll");
        exit(1);
    }
    while (!g_stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 200);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    if (nc == NULL || (nc->fd = fd, epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)) {
                        close(fd);
                        free(nc);
                    }
                }
                continue;
            }
            int rc;
            if (evs[i].events & EPOLLOUT) {
                rc = flush_out(ep, c);
                if (rc == 1)
                    rc = c->closing ? -1 : set_events(ep, c, EPOLLIN);
            } else {
                rc = on_readable(ep, c);
            }
            if (rc < 0)
                conn_free(c); /* closing the descriptor removes it from epoll */
        }
    }
    close(ep);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "0";
    long threads = 2;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
            host = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
            port = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
            threads = strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: ws-floor [--host H] [--port P] [--threads T]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "ws-floor: --threads: 1 to %d\n", MAX_THREADS);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd[MAX_THREADS];
    char portbuf[16];
    for (long t = 0; t < threads; t++) {
        if ((lfd[t] = make_listener(host, port)) < 0)
            return 1;
        if (t == 0) { /* port 0: the others bind the port the first one got */
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            getsockname(lfd[0], (struct sockaddr *)&ss, &sl);
            int p = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
            snprintf(portbuf, sizeof portbuf, "%d", p);
            port = portbuf;
        }
    }
    pthread_t th[MAX_THREADS];
    for (long t = 0; t < threads; t++)
        if (pthread_create(&th[t], NULL, serve, (void *)(intptr_t)lfd[t]) != 0) {
            fprintf(stderr, "ws-floor: pthread_create failed\n");
            return 1;
        }
    printf("listening on %s:%s\n", host, port);
    fflush(stdout);
    for (long t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    return 0;
}
