/* SPDX-License-Identifier: MIT */
/*
 * ws-loadgen: WebSocket load generator for echo servers (bench/run.sh --only ws).
 *
 *   ws-loadgen echo      --host H --port P [--path /echo] --conns C --size N --seconds S
 *                        [--warmup S] [--threads T] [--binary] [--deflate] [--compressible]
 *                        [--server-pid PID]
 *   ws-loadgen handshake --host H --port P [--path /echo] --seconds S [--threads T]
 *   ws-loadgen idle      --host H --port P [--path /echo] --conns C [--hold S]
 *
 * echo: C WebSocket connections (the upgrades done first, then not timed), each sends an
 *   N-byte message (text, or binary with --binary) and waits for the whole echo before
 *   sending the next; T threads (default 2) drive their share of non-blocking connections
 *   with level-triggered epoll. Latency (send start to the last byte of the echo, inflated
 *   and verified) goes into the histogram of sn-loadgen; only exchanges completing after the
 *   warm-up count, and starved=N counts the connections that completed none.
 *   The messages are made before the clock starts, so that the client spends its time on
 *   the exchange and not on making data: a pool of 64, each kept as its payload and as a
 *   whole masked frame ready to send (one mask key for every frame: a server cannot tell,
 *   and unmasking costs it the same). Each connection sends them in turn from its own
 *   starting point. Text is pseudo-random letters, or with --compressible JSON-like lines
 *   that differ per message (about 8:1 on their own); --binary sends bytes.
 *   --deflate: offers permessage-deflate as a browser does ("permessage-deflate;
 *   client_max_window_bits") and fails unless the server accepts; each pool message is then
 *   compressed on its own (zlib level 6, a fresh stream: valid with or without context
 *   takeover, for any window that holds the message) and the echo is inflated (context
 *   takeover unless the server said server_no_context_takeover).
 *   --server-pid PID: also reads the CPU time (user + system, /proc/PID/stat) the server
 *   and this process use over the measured window, and reports each per exchange
 *   (server_cpu_us=, client_cpu_us=), and the context switches of the server's threads per
 *   exchange (server_csw=): on a machine where both share a few CPUs, the rate alone cannot
 *   tell a server that is cheaper from one that leaves the client more CPU, nor one that
 *   sleeps and wakes per message from one that does not.
 * handshake: T threads loop: connect, upgrade (verifying the 101 and its accept key), send a
 *   close 1000, wait for the server's close frame, close with a RST (SO_LINGER {1, 0}: no
 *   TIME_WAIT), until S seconds pass. The figure is completed cycles per second.
 * idle: C connections upgraded, and one 4-byte text message echoed (and checked) on each, so
 *   that every session has received and sent; then "idle C ready" on stdout, and the
 *   connections are held for S seconds (default 10), or until SIGTERM/SIGINT, or until stdin
 *   (when it is a pipe) reaches end-of-file; then "result idle ...". bench/run.sh reads the
 *   server's VmRSS meanwhile: the memory an idle WebSocket connection costs.
 *
 * The client's framing is its own and minimal: frames masked as RFC 6455 wants of a client
 * (one key per connection), fragments reassembled, pings answered with pongs; any protocol
 * error, close or mismatching byte fails the run. Every connection uses the sample key of RFC
 * 6455 section 1.3, whose accept value is known, so no SHA-1 is needed here. One "result ..."
 * line on stdout per successful run, human text on stderr; exit status 1 on any error, 2 on
 * bad usage. Every loop is bounded by a deadline. Self-contained: libc, pthreads and zlib.
 */
#define LG_NAME "ws-loadgen"
#include "loadgen.h"
#include "procstat.h"

#include <fcntl.h>
#include <zlib.h>

#define MAX_CONNS 100000
#define MAX_THREADS 64
#define MAX_SIZE (64L << 20)
#define HEAD_MAX 4096
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

struct opts {
    const char *host, *port, *path;
    long conns, size, threads, server_pid;
    double seconds, warmup, hold;
    int binary, deflate, compressible;
};

/* What the server agreed to in its permessage-deflate answer. */
struct pmd {
    int on;
    int client_bits; /* the window the client may use: 9-15 */
    int client_no_ctx, server_no_ctx;
};

/* ---- the opening handshake ------------------------------------------------ */

/* Polls fd for ev until deadline; 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
    for (;;) {
        uint64_t t = now_ns();
        if (t >= deadline || g_stop)
            return 0;
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, (int)((deadline - t) / 1000000u) + 1);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* Sends all of p on a blocking or non-blocking fd before deadline. */
static int send_all(int fd, const void *p, size_t len, uint64_t deadline)
{
    const char *s = p;
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) <= 0)
                return -1;
            continue;
        }
        if (n <= 0)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One recv on a non-blocking fd, waiting for it until deadline: the count, 0 at the end of
 * the stream, or -1 (errno; EAGAIN when the deadline passed). */
static ssize_t recv_by(int fd, void *buf, size_t len, uint64_t deadline)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0 || (errno != EAGAIN && errno != EINTR))
            return n;
        int w = wait_fd(fd, POLLIN, deadline);
        if (w <= 0) {
            if (w == 0)
                errno = EAGAIN;
            return -1;
        }
    }
}

/* Reads until the end of the response head (at most HEAD_MAX bytes) into buf, NUL-terminated;
 * the bytes after the head stay in buf after it: *extra is their count. Returns the head's
 * length or -1. */
static long read_head(int fd, char *buf, size_t cap, size_t *extra, uint64_t deadline)
{
    size_t have = 0;
    while (have < cap - 1) {
        ssize_t n = recv_by(fd, buf + have, cap - 1 - have, deadline);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            long head = end + 4 - buf;
            *extra = have - (size_t)head;
            return head;
        }
    }
    return -1;
}

/* The value of header name in head (case-insensitive name), copied to out; 0 or -1. */
static int header_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        const char *s = l + 2;
        if (strncasecmp(s, name, nl) != 0 || s[nl] != ':')
            continue;
        s += nl + 1;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strcspn(s, "\r");
        if (n >= cap)
            return -1;
        memcpy(out, s, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

/* Parses the server's permessage-deflate answer into p; -1 if it is not one we can honour. */
static int parse_pmd(const char *ext, struct pmd *p)
{
    *p = (struct pmd){.client_bits = 15};
    if (strncmp(ext, "permessage-deflate", 18) != 0 || strchr(ext, ','))
        return -1;
    p->on = 1;
    for (const char *s = strchr(ext, ';'); s; s = strchr(s + 1, ';')) {
        while (*++s == ' ')
            ;
        if (!strncmp(s, "client_no_context_takeover", 26))
            p->client_no_ctx = 1;
        else if (!strncmp(s, "server_no_context_takeover", 26))
            p->server_no_ctx = 1;
        else if (!strncmp(s, "client_max_window_bits=", 23))
            p->client_bits = atoi(s + 23);
    }
    return p->client_bits >= 9 && p->client_bits <= 15 ? 0 : -1;
}

/* Upgrades fd (any blocking mode): request, 101, accept key, deflate answer. The bytes read
 * after the head go to rest (*nrest of them, at most HEAD_MAX). Returns 0 or -1. */
static int ws_upgrade(int fd, const struct opts *o, struct pmd *pmd, char *rest, size_t *nrest)
{
    char req[1024], head[HEAD_MAX + 1], val[256];
    uint64_t deadline = now_ns() + (uint64_t)IO_TIMEOUT_S * 1000000000u;
    size_t extra = 0;
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     o->path, o->host, o->port,
                     o->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                  "client_max_window_bits\r\n"
                                : "");
    const char *why = "send";
    *pmd = (struct pmd){.client_bits = 15};
    if (send_all(fd, req, (size_t)n, deadline) < 0)
        goto fail;
    why = "no response head";
    long hl = read_head(fd, head, sizeof head, &extra, deadline);
    if (hl < 0)
        goto fail;
    errno = 0; /* what fails from here on is the response, not a system call */
    why = "not 101";
    if (strncmp(head, "HTTP/1.1 101 ", 13) != 0)
        goto fail;
    why = "wrong Sec-WebSocket-Accept";
    if (header_value(head, "Sec-WebSocket-Accept", val, sizeof val) < 0 ||
        strcmp(val, WS_ACCEPT) != 0)
        goto fail;
    why = "permessage-deflate refused or unusable";
    if (header_value(head, "Sec-WebSocket-Extensions", val, sizeof val) == 0) {
        if (!o->deflate || parse_pmd(val, pmd) < 0)
            goto fail;
    } else if (o->deflate) {
        goto fail;
    }
    memcpy(rest, head + hl, extra);
    *nrest = extra;
    return 0;
fail:
    if (!g_stop)
        fprintf(stderr, "ws-loadgen: upgrade: %s: %s\n", why, errno ? strerror(errno) : "protocol");
    return -1;
}

/* ---- frames ---------------------------------------------------------------- */

/* XORs n bytes at p with the 4-byte mask key, 8 bytes at a time. */
static void mask_bytes(unsigned char *p, size_t n, const unsigned char key[4])
{
    uint64_t k8;
    unsigned char k[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
    size_t i = 0;
    memcpy(&k8, k, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k8;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= key[i & 3];
}

/* Writes a masked frame header for len payload bytes to out; returns its length (2-14). */
static size_t frame_head(unsigned char *out, int fin, int rsv1, int opcode, size_t len,
                         const unsigned char key[4])
{
    size_t h = 2;
    out[0] = (unsigned char)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode);
    if (len < 126) {
        out[1] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        out[1] = 0x80 | 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        h = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    memcpy(out + h, key, 4);
    return h + 4;
}

/* A parsed frame header: how long it is and what it says; 0 = incomplete, -1 = invalid. */
struct fhead {
    size_t hlen;
    uint64_t len;
    int fin, rsv1, opcode;
};

static int parse_frame(const unsigned char *p, size_t n, struct fhead *f)
{
    if (n < 2)
        return 0;
    f->fin = p[0] >> 7;
    f->rsv1 = (p[0] >> 6) & 1;
    f->opcode = p[0] & 15;
    if ((p[0] & 0x30) || (p[1] & 0x80)) /* RSV2/3, or a masked server frame */
        return -1;
    f->len = p[1] & 127;
    f->hlen = 2;
    if (f->len == 126) {
        if (n < 4)
            return 0;
        f->len = (uint64_t)p[2] << 8 | p[3];
        f->hlen = 4;
    } else if (f->len == 127) {
        if (n < 10)
            return 0;
        f->len = 0;
        for (int i = 0; i < 8; i++)
            f->len = f->len << 8 | p[2 + i];
        f->hlen = 10;
    }
    return f->len <= (uint64_t)MAX_SIZE + 1024 ? 1 : -1;
}

/* ---- a growable byte buffer -------------------------------------------------- */

struct buf {
    unsigned char *p;
    size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_add(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* ---- echo ------------------------------------------------------------------- */

/* The messages the connections send, made before the clock starts: each as the plain
 * payload (what the echo must inflate to) and as a whole masked frame ready to send,
 * compressed on its own (a fresh deflate stream) with --deflate. */
struct pool {
    long n;
    unsigned char **plain;
    struct buf *frame;
};

static struct pool g_pool;

struct ec_conn {
    int fd;
    int want_out;  /* EPOLLOUT registered */
    uint32_t seq;  /* messages sent */
    long cur;      /* the pool message in flight */
    size_t tx_off; /* bytes of its frame sent */
    struct pmd pmd;
    z_stream zi;    /* the inflater (when pmd.on) */
    struct buf out; /* pongs to send after the frame; out_off of them sent */
    size_t out_off;
    struct buf in;   /* received bytes not yet parsed */
    struct buf frag; /* a fragmented message's payload so far */
    int frag_op, frag_rsv1;
    struct buf infl; /* an inflated message */
    uint64_t t0;
    uint64_t measured;
};

struct ec_thread {
    pthread_t tid;
    const struct opts *o;
    pthread_barrier_t *ready; /* every thread's upgrades done: the clock starts */
    int *fds;
    long first, nconns; /* its connections' numbers */
    uint64_t t_measure, t_end;
    struct hist hist;
    long starved, errors;
};

static const char *const words[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"};

#define POOL_MAX 64
static const unsigned char g_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Message s of the pool (o->size bytes at p, which has 256 more): letters, bytes, or
 * JSON-like lines. */
static void pool_fill(unsigned char *p, uint32_t s, const struct opts *o)
{
    if (o->binary) {
        for (long j = 0; j < o->size; j++)
            p[j] = (unsigned char)(s * 131u + (uint32_t)j * 7u + ((uint32_t)j >> 8));
    } else if (!o->compressible) {
        for (long j = 0; j < o->size; j++)
            p[j] = (unsigned char)('a' + (s * 131u + (uint32_t)j * 7u) % 26u);
    } else {
        long j = 0;
        for (uint32_t line = 0; j < o->size; line++)
            j += snprintf((char *)p + j, (size_t)(o->size - j + 1),
                          "{\"id\":%u,\"user\":\"%s\",\"room\":\"general\",\"text\":\"the quick "
                          "brown fox jumps over the lazy dog\",\"ts\":%u}\n",
                          s * 64u + line, words[(s + line) % 6], 1700000000u + s);
    }
}

/* Appends a masked frame with payload p (n bytes) to b. */
static int frame_add(struct buf *b, int rsv1, int opcode, const void *p, size_t n)
{
    if (buf_reserve(b, n + 14) < 0)
        return -1;
    unsigned char *f = b->p + b->len;
    size_t h = frame_head(f, 1, rsv1, opcode, n, g_key);
    memcpy(f + h, p, n);
    mask_bytes(f + h, n, g_key);
    b->len += h + n;
    return 0;
}

/* Compresses n bytes at p on their own (permessage-deflate, no tail) into z. */
static int pool_deflate(z_stream *zs, const unsigned char *p, size_t n, struct buf *z)
{
    size_t bound = deflateBound(zs, n) + 32;
    if (deflateReset(zs) != Z_OK || buf_reserve(z, bound) < 0)
        return -1;
    zs->next_in = (unsigned char *)p;
    zs->avail_in = (uInt)n;
    zs->next_out = z->p;
    zs->avail_out = (uInt)bound;
    if (deflate(zs, Z_SYNC_FLUSH) != Z_OK || zs->avail_in != 0 || zs->avail_out == 0)
        return -1;
    z->len = bound - zs->avail_out - 4; /* without the 00 00 ff ff tail */
    return 0;
}

static int pool_make(const struct opts *o)
{
    struct buf z = {0};
    z_stream zs = {0};
    int opcode = o->binary ? 2 : 1, rc = -1;
    long n = POOL_MAX;

    if (o->deflate && deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    g_pool.plain = calloc((size_t)n, sizeof *g_pool.plain);
    g_pool.frame = calloc((size_t)n, sizeof *g_pool.frame);
    if (!g_pool.plain || !g_pool.frame)
        goto out;
    for (g_pool.n = 0; g_pool.n < n; g_pool.n++) {
        unsigned char *p = malloc((size_t)o->size + 256);
        struct buf *f = &g_pool.frame[g_pool.n];
        if (!p)
            goto out;
        g_pool.plain[g_pool.n] = p;
        pool_fill(p, (uint32_t)g_pool.n + 1, o);
        if (o->deflate ? pool_deflate(&zs, p, (size_t)o->size, &z) < 0 ||
                             frame_add(f, 1, opcode, z.p, z.len) < 0
                       : frame_add(f, 0, opcode, p, (size_t)o->size) < 0)
            goto out;
    }
    rc = 0;
out:
    if (o->deflate)
        deflateEnd(&zs);
    free(z.p);
    return rc;
}

static void pool_free(void)
{
    for (long i = 0; i < g_pool.n; i++) {
        free(g_pool.plain[i]);
        free(g_pool.frame[i].p);
    }
    free(g_pool.plain);
    free(g_pool.frame);
}

static int ec_interest(int ep, struct ec_conn *c, int want_out)
{
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (c->want_out == want_out)
        return 0;
    c->want_out = want_out;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends the rest of p (len bytes, *off sent); 1 when all is sent, 0 on EAGAIN, -1. */
static int send_some(int fd, const unsigned char *p, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t n = send(fd, p + *off, len - *off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0) {
            perror("ws-loadgen: send");
            return -1;
        }
        *off += (size_t)n;
    }
    return 1;
}

/* Sends the message's frame, then any pongs; EPOLLOUT while some is left. */
static int ec_flush(int ep, struct ec_conn *c)
{
    const struct buf *f = &g_pool.frame[c->cur];
    int rc = send_some(c->fd, f->p, f->len, &c->tx_off);
    if (rc == 1)
        rc = send_some(c->fd, c->out.p, c->out.len, &c->out_off);
    if (rc == 1)
        c->out.len = c->out_off = 0;
    return rc < 0 ? -1 : ec_interest(ep, c, rc == 0);
}

/* Sends the connection's next message of the pool. */
static int ec_start(int ep, struct ec_conn *c)
{
    c->cur = (c->cur + 1) % g_pool.n;
    c->seq++;
    c->tx_off = 0;
    c->t0 = now_ns();
    return ec_flush(ep, c);
}

/* Inflates a compressed message (n bytes at p) into c->infl. */
static int ec_inflate(struct ec_conn *c, const unsigned char *p, size_t n, size_t want)
{
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    c->infl.len = 0;
    if (buf_reserve(&c->infl, want + 1) < 0)
        return -1;
    c->zi.next_out = c->infl.p;
    c->zi.avail_out = (uInt)(want + 1); /* one more: an over-long echo shows */
    for (int part = 0; part < 2; part++) {
        c->zi.next_in = (unsigned char *)(part ? tail : p);
        c->zi.avail_in = (uInt)(part ? 4 : n);
        int rc = inflate(&c->zi, Z_SYNC_FLUSH);
        if ((rc != Z_OK && rc != Z_BUF_ERROR) || c->zi.avail_in != 0)
            return -1;
    }
    c->infl.len = want + 1 - c->zi.avail_out;
    if (c->pmd.server_no_ctx)
        inflateReset(&c->zi);
    return 0;
}

/* A whole data message arrived: verifies it against what was sent, counts it, sends the
 * next one. */
static int ec_message(int ep, struct ec_thread *t, struct ec_conn *c, int opcode, int rsv1,
                      const unsigned char *p, size_t n)
{
    size_t want = (size_t)t->o->size;
    if (rsv1) {
        if (!c->pmd.on || ec_inflate(c, p, n, want) < 0) {
            fprintf(stderr, "ws-loadgen: bad compressed message\n");
            return -1;
        }
        p = c->infl.p;
        n = c->infl.len;
    }
    if (opcode != (t->o->binary ? 2 : 1) || n != want || memcmp(p, g_pool.plain[c->cur], n)) {
        fprintf(stderr, "ws-loadgen: echo mismatch in message %u (opcode %d, %zu bytes)\n",
                (unsigned)c->seq, opcode, n);
        return -1;
    }
    uint64_t now = now_ns();
    if (now >= t->t_measure && now < t->t_end) {
        hist_add(&t->hist, now - c->t0);
        c->measured++;
    }
    return ec_start(ep, c);
}

/* Handles one whole frame; 0 or -1. */
static int ec_frame_in(int ep, struct ec_thread *t, struct ec_conn *c, const struct fhead *f,
                       const unsigned char *p)
{
    size_t n = (size_t)f->len;
    switch (f->opcode) {
    case 1:
    case 2:
        if (c->frag_op)
            return -1;
        if (f->fin)
            return ec_message(ep, t, c, f->opcode, f->rsv1, p, n);
        c->frag_op = f->opcode;
        c->frag_rsv1 = f->rsv1;
        c->frag.len = 0;
        return buf_add(&c->frag, p, n);
    case 0:
        if (!c->frag_op || f->rsv1 || buf_add(&c->frag, p, n) < 0)
            return -1;
        if (!f->fin)
            return 0;
        int op = c->frag_op;
        c->frag_op = 0;
        return ec_message(ep, t, c, op, c->frag_rsv1, c->frag.p, c->frag.len);
    case 9: /* ping: pong */
        if (frame_add(&c->out, 0, 10, p, n) < 0)
            return -1;
        return ec_flush(ep, c);
    case 10:
        return 0;
    default:
        fprintf(stderr, "ws-loadgen: unexpected frame, opcode %d\n", f->opcode);
        return -1;
    }
}

/* Parses and handles every whole frame in c->in, then keeps the rest. */
static int ec_parse(int ep, struct ec_thread *t, struct ec_conn *c)
{
    size_t off = 0;
    struct fhead f;
    int rc;
    while ((rc = parse_frame(c->in.p + off, c->in.len - off, &f)) > 0 &&
           c->in.len - off >= f.hlen + f.len) {
        if (ec_frame_in(ep, t, c, &f, c->in.p + off + f.hlen) < 0)
            return -1;
        off += f.hlen + (size_t)f.len;
    }
    if (rc < 0) {
        fprintf(stderr, "ws-loadgen: invalid frame header\n");
        return -1;
    }
    memmove(c->in.p, c->in.p + off, c->in.len - off);
    c->in.len -= off;
    /* room for the rest of a large frame at once */
    size_t want = rc > 0 ? f.hlen + (size_t)f.len - c->in.len : 0;
    return buf_reserve(&c->in, want > 65536 ? want : 65536);
}

static int ec_readable(int ep, struct ec_thread *t, struct ec_conn *c)
{
    ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        fprintf(stderr, "ws-loadgen: recv: %s\n", io_error(n));
        return -1;
    }
    c->in.len += (size_t)n;
    return ec_parse(ep, t, c);
}

static void ec_conn_free(struct ec_conn *c)
{
    if (c->pmd.on)
        inflateEnd(&c->zi);
    free(c->out.p);
    free(c->in.p);
    free(c->frag.p);
    free(c->infl.p);
}

/* Upgrades connection i of the thread and readies its inflater. */
static int ec_open(struct ec_thread *t, struct ec_conn *c, int fd, long i)
{
    char rest[HEAD_MAX];
    size_t nrest = 0;

    *c = (struct ec_conn){.fd = fd, .cur = i % g_pool.n}; /* connections start apart */
    if (ws_upgrade(fd, t->o, &c->pmd, rest, &nrest) < 0)
        return -1;
    if (buf_reserve(&c->in, 65536) < 0 || buf_add(&c->in, rest, nrest) < 0)
        return -1;
    if (c->pmd.on && t->o->size + 262 > 1L << c->pmd.client_bits) {
        fprintf(stderr,
                "ws-loadgen: the server's client_max_window_bits=%d is too small for "
                "messages compressed on their own\n",
                c->pmd.client_bits);
        c->pmd.on = 0;
        return -1;
    }
    if (c->pmd.on && inflateInit2(&c->zi, -15) != Z_OK) {
        c->pmd.on = 0;
        return -1;
    }
    return 0;
}

/* Upgrades the thread's connections and registers them with ep. */
static int ec_setup(struct ec_thread *t, int ep, struct ec_conn *cs)
{
    for (long i = 0; i < t->nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        if (ec_open(t, &cs[i], t->fds[i], t->first + i) < 0)
            return -1; /* ec_open leaves no zlib state behind on failure */
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
            return -1;
    }
    return 0;
}

static void ec_loop(struct ec_thread *t, int ep)
{
    struct epoll_event evs[256];
    while (!g_stop && now_ns() < t->t_end) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) {
            t->errors++;
            return;
        }
        for (int i = 0; i < n; i++) {
            struct ec_conn *c = evs[i].data.ptr;
            int rc = 0;
            if (c->fd < 0)
                continue;
            if (evs[i].events & EPOLLOUT)
                rc = ec_flush(ep, c);
            if (rc == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                rc = ec_readable(ep, t, c);
            if (rc < 0) {
                t->errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->fd = -1; /* closed with the others by the caller */
            }
        }
    }
}

static void *ec_main(void *arg)
{
    struct ec_thread *t = arg;
    struct ec_conn *cs = calloc((size_t)t->nconns, sizeof *cs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int ok = cs && ep >= 0 && ec_setup(t, ep, cs) == 0;

    pthread_barrier_wait(t->ready); /* every thread gets here, set up or not */
    t->t_measure = now_ns() + (uint64_t)(t->o->warmup * 1e9);
    t->t_end = t->t_measure + (uint64_t)(t->o->seconds * 1e9);
    for (long i = 0; ok && i < t->nconns; i++)
        ok = ec_start(ep, &cs[i]) == 0;
    if (!ok) {
        fprintf(stderr, "ws-loadgen: thread setup failed\n");
        t->errors++;
        goto out;
    }
    ec_loop(t, ep);
    for (long i = 0; i < t->nconns; i++)
        t->starved += cs[i].fd >= 0 && cs[i].measured == 0;
out:
    if (ep >= 0)
        close(ep);
    for (long i = 0; cs && i < t->nconns; i++)
        ec_conn_free(&cs[i]);
    free(cs);
    return NULL;
}

static int cmd_echo(const struct opts *o)
{
    int nth = (int)(o->threads < o->conns ? o->threads : o->conns), started = 0;
    struct ec_thread *th = calloc((size_t)nth, sizeof *th);
    int *fds = malloc((size_t)o->conns * sizeof *fds);
    static struct hist all;
    long errors = 0, starved = 0, base = 0;
    pthread_barrier_t ready;
    int rc = -1;

    struct proc_window win = {.pid = o->server_pid};

    /* this thread waits at the barrier too, to time the window for --server-pid */
    if (!th || !fds || pool_make(o) < 0 ||
        pthread_barrier_init(&ready, NULL, (unsigned)nth + 1) != 0)
        goto out;
    fprintf(stderr, "echo: connecting %ld to %s:%s%s\n", o->conns, o->host, o->port, o->path);
    if (connect_many(fds, o->conns) < 0)
        goto out_barrier;
    for (int i = 0; i < nth; i++) {
        long share = o->conns / nth + (i < o->conns % nth);
        th[i] = (struct ec_thread){
            .o = o, .ready = &ready, .fds = fds + base, .first = base, .nconns = share};
        base += share;
        if (pthread_create(&th[i].tid, NULL, ec_main, &th[i]) != 0)
            abort(); /* the others would wait at the barrier for ever */
        started++;
    }
    pthread_barrier_wait(&ready); /* the threads start their clocks as this one does */
    uint64_t t0 = now_ns() + (uint64_t)(o->warmup * 1e9);
    if (o->server_pid) {
        sleep_until(t0);
        proc_window_read(&win);
        sleep_until(t0 + (uint64_t)(o->seconds * 1e9));
        proc_window_read(&win);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i].tid, NULL);
        hist_merge(&all, &th[i].hist);
        errors += th[i].errors;
        starved += th[i].starved;
    }
    close_all(fds, o->conns);
    if (g_stop || started != nth)
        goto out_barrier;
    double rate = (double)all.n / o->seconds;
    double p50 = hist_quantile_us(&all, 0.50), p99 = hist_quantile_us(&all, 0.99);
    double p999 = hist_quantile_us(&all, 0.999), mib = rate * (double)o->size / 1048576.0;
    fprintf(stderr,
            "echo: %ld conns x %ld B %s%s: %.0f round trips/s (%.1f MiB/s each way), p50 %.1f "
            "us, p99 %.1f us, p99.9 %.1f us; %ld errors, %ld connections starved\n",
            o->conns, o->size, o->binary ? "binary" : "text", o->deflate ? " deflated" : "", rate,
            mib, p50, p99, p999, errors, starved);
    if (errors || all.n == 0) {
        fprintf(stderr, "ws-loadgen: echo failed (%ld connection errors, %llu exchanges)\n", errors,
                (unsigned long long)all.n);
        goto out_barrier;
    }
    printf("result ws-echo conns=%ld size=%ld msgs_per_s=%.0f mib_per_s=%.1f p50_us=%.1f "
           "p99_us=%.1f p999_us=%.1f exchanges=%llu starved=%ld",
           o->conns, o->size, rate, mib, p50, p99, p999, (unsigned long long)all.n, starved);
    if (o->server_pid && proc_window_print(&win, all.n, stdout) < 0) {
        printf("\n");
        goto out_barrier;
    }
    printf("\n");
    rc = 0;
out_barrier:
    pthread_barrier_destroy(&ready);
out:
    pool_free();
    free(fds);
    free(th);
    return rc;
}

/* ---- idle connections ------------------------------------------------------------ */

/* Upgrades connection fd, sends a masked text message and reads its echo back; 0 or -1. */
static int idle_one(int fd, const struct opts *o, const struct buf *msg)
{
    unsigned char got[HEAD_MAX + 16];
    uint64_t deadline = now_ns() + (uint64_t)IO_TIMEOUT_S * 1000000000u;
    static const unsigned char want[] = {0x81, 4, 'i', 'd', 'l', 'e'};
    size_t have = 0;
    struct pmd pmd;

    if (ws_upgrade(fd, o, &pmd, (char *)got, &have) < 0 ||
        send_all(fd, msg->p, msg->len, deadline) < 0)
        return -1;
    while (have < sizeof want) {
        ssize_t n = recv_by(fd, got + have, sizeof got - have, deadline);
        if (n <= 0) {
            fprintf(stderr, "ws-loadgen: idle: recv: %s\n", io_error(n));
            return -1;
        }
        have += (size_t)n;
    }
    if (have != sizeof want || memcmp(got, want, sizeof want) != 0) {
        fprintf(stderr, "ws-loadgen: idle: the echo is not the 4-byte text sent\n");
        return -1;
    }
    return 0;
}

#define IDLE_BATCH 500 /* connections opened, then upgraded, at a time */

static int cmd_idle(const struct opts *o)
{
    int *fds = malloc((size_t)o->conns * sizeof *fds);
    struct buf msg = {0};
    int rc = -1;

    if (!fds || frame_add(&msg, 0, 1, "idle", 4) < 0)
        goto out;
    fprintf(stderr, "idle: connecting %ld to %s:%s%s\n", o->conns, o->host, o->port, o->path);
    /* in batches, each upgraded before the next is opened: a server cuts a
     * connection whose request head has not come within its deadline (10 s
     * is usual), and opening 19,000 first takes longer than that */
    for (long base = 0; base < o->conns; base += IDLE_BATCH) {
        long m = o->conns - base < IDLE_BATCH ? o->conns - base : IDLE_BATCH;
        if (connect_many(fds + base, m) < 0) {
            close_all(fds, base);
            goto out;
        }
        for (long i = base; i < base + m; i++)
            if (idle_one(fds[i], o, &msg) < 0) {
                fprintf(stderr, "ws-loadgen: idle: connection %ld failed\n", i);
                close_all(fds, base + m);
                goto out;
            }
    }
    idle_report_hold("ws-idle", o->conns, o->hold);
    rc = 0;
    close_all(fds, o->conns);
out:
    free(msg.p);
    free(fds);
    return rc;
}

/* ---- handshakes -------------------------------------------------------------- */

struct hs_thread {
    pthread_t tid;
    const struct opts *o;
    uint64_t t_end, done;
    long errors;
};

/* Waits for the server's close frame after ours (other frames are skipped). */
static int hs_await_close(int fd, char *buf, size_t have, size_t cap, uint64_t deadline)
{
    struct fhead f;
    for (;;) {
        int rc = parse_frame((unsigned char *)buf, have, &f);
        if (rc < 0)
            return -1;
        if (rc > 0 && have >= f.hlen + f.len) {
            if (f.opcode == 8)
                return 0;
            have -= f.hlen + (size_t)f.len;
            memmove(buf, buf + f.hlen + f.len, have);
            continue;
        }
        if (have == cap || wait_fd(fd, POLLIN, deadline) <= 0)
            return -1;
        ssize_t n = recv(fd, buf + have, cap - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
}

/* One connect / upgrade / close handshake / RST cycle. */
static int hs_once(const struct opts *o)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    static const unsigned char key[4] = {1, 2, 3, 4};
    unsigned char close_frame[8];
    char rest[HEAD_MAX];
    size_t nrest = 0;
    struct pmd pmd;
    int rc = -1;
    int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    set_io_timeouts(fd);
    set_nodelay(fd);
    if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0) {
        if (!g_stop)
            perror("ws-loadgen: connect");
        goto out;
    }
    if (ws_upgrade(fd, o, &pmd, rest, &nrest) < 0)
        goto out;
    size_t h = frame_head(close_frame, 1, 0, 8, 2, key);
    close_frame[h] = 1000 >> 8;
    close_frame[h + 1] = 1000 & 255;
    mask_bytes(close_frame + h, 2, key);
    uint64_t deadline = now_ns() + (uint64_t)IO_TIMEOUT_S * 1000000000u;
    if (send_all(fd, close_frame, h + 2, deadline) < 0 ||
        hs_await_close(fd, rest, nrest, sizeof rest, deadline) < 0) {
        if (!g_stop)
            fprintf(stderr, "ws-loadgen: no close frame back\n");
        goto out;
    }
    rc = 0;
out:
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return rc;
}

static void *hs_main(void *arg)
{
    struct hs_thread *t = arg;
    while (!g_stop && now_ns() < t->t_end && t->errors == 0) {
        if (hs_once(t->o) == 0)
            t->done++;
        else
            t->errors++;
    }
    return NULL;
}

static int cmd_handshake(const struct opts *o)
{
    struct hs_thread th[MAX_THREADS];
    uint64_t done = 0, t0 = now_ns();
    long errors = 0;
    int started = 0;

    for (int i = 0; i < o->threads; i++) {
        th[i] = (struct hs_thread){.o = o, .t_end = t0 + (uint64_t)(o->seconds * 1e9)};
        if (pthread_create(&th[i].tid, NULL, hs_main, &th[i]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i].tid, NULL);
        done += th[i].done;
        errors += th[i].errors;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    fprintf(stderr, "handshake: %llu in %.2f s: %.0f handshakes/s, %ld errors\n",
            (unsigned long long)done, secs, (double)done / secs, errors);
    if (errors || done == 0 || g_stop || started != o->threads)
        return -1;
    printf("result ws-handshake threads=%ld handshakes_per_s=%.0f handshakes=%llu\n", o->threads,
           (double)done / secs, (unsigned long long)done);
    return 0;
}

/* ---- command line -------------------------------------------------------------- */

static _Noreturn void usage(void)
{
    fprintf(stderr,
            "usage: ws-loadgen echo --host H --port P [--path /echo] --conns C --size N\n"
            "                       --seconds S [--warmup S] [--threads T] [--binary]\n"
            "                       [--deflate] [--compressible] [--server-pid PID]\n"
            "       ws-loadgen handshake --host H --port P [--path /echo] --seconds S\n"
            "                       [--threads T]\n"
            "       ws-loadgen idle --host H --port P [--path /echo] --conns C [--hold S]\n");
    exit(2);
}

static void parse(struct opts *o, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--binary"))
            o->binary = 1;
        else if (!strcmp(k, "--deflate"))
            o->deflate = 1;
        else if (!strcmp(k, "--compressible"))
            o->compressible = 1;
        else if (!v)
            usage();
        else if (i++, !strcmp(k, "--host"))
            o->host = v;
        else if (!strcmp(k, "--port"))
            o->port = (num(v, 1, 65535), v);
        else if (!strcmp(k, "--path"))
            o->path = v;
        else if (!strcmp(k, "--conns"))
            o->conns = num(v, 1, MAX_CONNS);
        else if (!strcmp(k, "--size"))
            o->size = num(v, 1, MAX_SIZE);
        else if (!strcmp(k, "--threads"))
            o->threads = num(v, 1, MAX_THREADS);
        else if (!strcmp(k, "--seconds"))
            o->seconds = secs_arg(v);
        else if (!strcmp(k, "--hold"))
            o->hold = secs_arg(v);
        else if (!strcmp(k, "--warmup"))
            o->warmup = secs_arg(v);
        else if (!strcmp(k, "--server-pid"))
            o->server_pid = num(v, 1, 1L << 22);
        else
            usage();
    }
    if (!o->host || !o->port || o->path[0] != '/' || strlen(o->path) > 512 ||
        (o->binary && o->compressible) || o->seconds <= 0)
        usage();
}

int main(int argc, char **argv)
{
    struct opts o = {
        .path = "/echo", .conns = 1, .size = 32, .threads = 2, .seconds = 5, .hold = 10};
    int rc;

    if (argc < 2)
        usage();
    parse(&o, argc, argv);
    setup_process();
    if (resolve(o.host, o.port) < 0)
        return 1;
    if (!strcmp(argv[1], "echo"))
        rc = cmd_echo(&o);
    else if (!strcmp(argv[1], "handshake"))
        rc = cmd_handshake(&o);
    else if (!strcmp(argv[1], "idle") && !o.deflate)
        rc = cmd_idle(&o);
    else
        usage();
    return rc == 0 ? 0 : 1;
}
