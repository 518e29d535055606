/* SPDX-License-Identifier: MIT */
/*
 * test-ws-conform.c: a WebSocket conformance suite organised like the
 * Autobahn testsuite's categories, run against the server (sn_web + an echo
 * handler in a real sn_server) and, turned around, against the client
 * (sn_ws_connect + the same echo loop).
 *
 * The tester is written here from the RFCs with its own frame encoder and
 * decoder and zlib used directly, so it shares no code with the library
 * under test (the accept key aside: wolfCrypt's SHA-1 and base64, as the
 * library, because they are the reference, not the code under test).
 *
 * Each case is a script of frames the tester sends and what it must get
 * back: the echo of each message (reassembled, whatever the fragmentation),
 * pongs, or a close with the code RFC 6455 section 7.4.1 names. A case
 * passes only on exactly that; it fails on any other frame, a frame with
 * the wrong masking, a close code that differs, or a connection left open.
 *
 *   1  framing      text and binary of 0 B to 16 MiB (1 MiB with
 *                   SN_TEST_QUICK=1, for valgrind); one byte per write
 *   2  pings        ping/pong payloads, over-long ping, unsolicited pongs
 *   3  reserved     RSV bits on data and control frames
 *   4  opcodes      reserved data and control opcodes
 *   5  fragments    fragmentation, control frames between fragments,
 *                   continuation errors, fragmented control frames
 *   6  utf8         valid and invalid text, cut across fragments, fail fast
 *   7  close        close payloads, every code class, reasons, data after
 *   9  limits       frame and message limits (1009)
 *  12/13 deflate    permessage-deflate with every window size 8-15 each
 *                   way, with and without context takeover
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha.h>
#include <zlib.h>
#include "sn_test.h"

#define BIG (16u << 20)  /* the largest message: 16 MiB */
#define LIMIT (BIG + 64) /* the SUT's frame and message limit */
#define TIMEOUT_MS 10000

/* ---- the tester: one end of a connection --------------------------------------------- */

typedef struct peer {
    int fd;
    bool client; /* the tester is the client: it masks, and wants unmasked frames */
    /* permessage-deflate as agreed */
    bool pmd;
    int tx_bits, rx_bits; /* the tester's compressor, the SUT's */
    bool tx_reset, rx_reset;
    z_stream def, inf;
    bool def_on, inf_on;
    bool closed_sent;
} peer;

typedef struct frame {
    bool fin, masked;
    int rsv, op;
    uint8_t *data;
    size_t len;
} frame;

static int rd(peer *p, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        if (poll(&pfd, 1, TIMEOUT_MS) <= 0)
            return -1;
        ssize_t r = read(p->fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Writes a frame: b0 is FIN|RSV|opcode as it goes on the wire. chunk > 0
 * writes it chunk bytes at a time (with TCP_NODELAY, so they travel apart). */
static void put_frame(peer *p, int b0, const void *data, size_t len, size_t chunk)
{
    size_t hl = 2;
    uint8_t *f = malloc(len + 14);
    CU_ASSERT_FATAL(f != NULL);
    f[0] = (uint8_t)b0;
    if (len < 126) {
        f[1] = (uint8_t)len;
    } else if (len < 65536) {
        f[1] = 126;
        f[2] = (uint8_t)(len >> 8), f[3] = (uint8_t)len;
        hl = 4;
    } else {
        f[1] = 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (p->client) {
        f[1] |= 0x80;
        key[0] = (uint8_t)rand();
        memcpy(f + hl, key, 4);
        hl += 4;
    }
    for (size_t i = 0; i < len; i++)
        f[hl + i] = ((const uint8_t *)data)[i] ^ (p->client ? key[i & 3] : 0);
    size_t total = hl + len, step = chunk > 0 ? chunk : total;
    if (chunk > 0) {
        int one = 1;
        setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    for (size_t off = 0; off < total; off += step) {
        if (sn_test_write_all(p->fd, f + off, SN_MIN(step, total - off)) < 0)
            break; /* the SUT may have closed already; the expectations tell */
        if (chunk > 0)
            usleep(100);
    }
    free(f);
}

/* Reads one frame. The SUT's frames must be masked exactly when the SUT is
 * the client. Returns 0 or -1 (the connection ended, or timed out). */
static int get_frame(peer *p, frame *f)
{
    uint8_t h[8];
    memset(f, 0, sizeof *f);
    if (rd(p, h, 2) < 0)
        return -1;
    f->fin = h[0] & 0x80;
    f->rsv = (h[0] >> 4) & 7;
    f->op = h[0] & 15;
    f->masked = h[1] & 0x80;
    uint64_t len = h[1] & 127;
    if (len == 126) {
        if (rd(p, h, 2) < 0)
            return -1;
        len = (uint64_t)h[0] << 8 | h[1];
    } else if (len == 127) {
        if (rd(p, h, 8) < 0)
            return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[i];
    }
    CU_ASSERT(f->masked == !p->client); /* RFC 6455 5.1 */
    CU_ASSERT_FATAL(len <= LIMIT);
    uint8_t key[4] = {0};
    if (f->masked && rd(p, key, 4) < 0)
        return -1;
    f->len = (size_t)len;
    f->data = malloc(f->len + 1);
    CU_ASSERT_FATAL(f->data != NULL);
    if (rd(p, f->data, f->len) < 0) {
        free(f->data);
        return -1;
    }
    for (size_t i = 0; f->masked && i < f->len; i++)
        f->data[i] ^= key[i & 3];
    return 0;
}

/* ---- permessage-deflate, written from RFC 7692 with zlib ------------------------------- */

static void z_start(peer *p)
{
    if (!p->pmd)
        return;
    /* zlib's raw deflate takes 9 for 8; RFC 7692 section 7.1.2.1 allows
     * it because zlib stays within 256 bytes minus its look-ahead anyway */
    CU_ASSERT_FATAL(deflateInit2(&p->def, 6, Z_DEFLATED, -SN_MAX(p->tx_bits, 9), 8,
                                 Z_DEFAULT_STRATEGY) == Z_OK);
    CU_ASSERT_FATAL(inflateInit2(&p->inf, -p->rx_bits) == Z_OK);
    p->def_on = p->inf_on = true;
}

static void z_end(peer *p)
{
    if (p->def_on)
        deflateEnd(&p->def);
    if (p->inf_on)
        inflateEnd(&p->inf);
}

/* Compresses a message; returns malloc'd bytes without the final 00 00 ff ff. */
static uint8_t *z_compress(peer *p, const void *data, size_t len, size_t *out_len)
{
    size_t cap = deflateBound(&p->def, len) + 64;
    uint8_t *out = malloc(cap);
    CU_ASSERT_FATAL(out != NULL);
    if (len == 0) { /* an empty stored block: RFC 7692 section 7.2.3.6 */
        out[0] = 0;
        *out_len = 1;
        return out;
    }
    p->def.next_in = (Bytef *)data;
    p->def.avail_in = (uInt)len;
    p->def.next_out = out;
    p->def.avail_out = (uInt)cap;
    CU_ASSERT_FATAL(deflate(&p->def, Z_SYNC_FLUSH) == Z_OK && p->def.avail_in == 0);
    *out_len = cap - p->def.avail_out;
    CU_ASSERT_FATAL(*out_len >= 4 && memcmp(out + *out_len - 4, "\0\0\xff\xff", 4) == 0);
    *out_len -= 4;
    if (p->tx_reset)
        deflateReset(&p->def);
    return out;
}

/* Inflates a whole compressed message (the tail appended); -1 on error. */
static int z_inflate(peer *p, const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    uint8_t *buf = malloc(len + 4);
    size_t cap = 4096, n = 0;
    uint8_t *o = malloc(cap);
    CU_ASSERT_FATAL(buf != NULL && o != NULL);
    memcpy(buf, in, len);
    memcpy(buf + len, "\0\0\xff\xff", 4);
    p->inf.next_in = buf;
    p->inf.avail_in = (uInt)(len + 4);
    int zr = Z_OK;
    while (p->inf.avail_in > 0 && zr == Z_OK) {
        if (n == cap) {
            cap *= 2;
            o = realloc(o, cap);
            CU_ASSERT_FATAL(o != NULL);
        }
        p->inf.next_out = o + n;
        p->inf.avail_out = (uInt)(cap - n);
        zr = inflate(&p->inf, Z_SYNC_FLUSH);
        n = cap - p->inf.avail_out;
        if (zr == Z_BUF_ERROR && p->inf.avail_out > 0)
            break;
        if (zr == Z_BUF_ERROR)
            zr = Z_OK;
    }
    free(buf);
    if (p->rx_reset)
        inflateReset(&p->inf);
    *out = o;
    *out_len = n;
    return zr == Z_OK || zr == Z_BUF_ERROR ? 0 : -1;
}

/* ---- message-level steps ---------------------------------------------------------------- */

/* Sends a whole message in one frame, compressed when z and deflate is on. */
static void send_msg(peer *p, int op, const void *data, size_t len, bool z)
{
    if (z && p->pmd) {
        size_t zl;
        uint8_t *zd = z_compress(p, data, len, &zl);
        put_frame(p, 0x80 | 0x40 | op, zd, zl, 0);
        free(zd);
    } else {
        put_frame(p, 0x80 | op, data, len, 0);
    }
}

/* The next message must be op with exactly data; pings are answered,
 * nothing else may come first. */
static bool expect_msg(peer *p, int op, const void *data, size_t len)
{
    uint8_t *all = NULL;
    size_t n = 0;
    int first_op = -1;
    bool z = false, ok = true;
    for (;;) {
        frame f;
        if (get_frame(p, &f) < 0) {
            fprintf(stderr, "  expected a message of %zu bytes, the connection ended\n", len);
            free(all);
            return false;
        }
        if (f.op >= 8) {
            fprintf(stderr, "  expected a message, got control frame %d\n", f.op);
            free(f.data);
            free(all);
            return false;
        }
        if (first_op < 0) {
            first_op = f.op;
            z = f.rsv & 4;
            ok = ok && (f.rsv & 3) == 0 && (!z || p->pmd);
        } else {
            ok = ok && f.op == 0 && f.rsv == 0;
        }
        all = realloc(all, n + f.len + 1);
        CU_ASSERT_FATAL(all != NULL);
        memcpy(all + n, f.data, f.len);
        n += f.len;
        free(f.data);
        if (f.fin)
            break;
    }
    if (z) {
        uint8_t *plain = NULL;
        size_t pl = 0;
        ok = ok && z_inflate(p, all, n, &plain, &pl) == 0;
        free(all);
        all = plain, n = pl;
    }
    ok = ok && first_op == op && n == len && (len == 0 || memcmp(all, data, len) == 0);
    if (!ok)
        fprintf(stderr, "  expected op %d with %zu bytes, got op %d with %zu\n", op, len, first_op,
                n);
    free(all);
    return ok;
}

static bool expect_pong(peer *p, const void *data, size_t len)
{
    frame f;
    if (get_frame(p, &f) < 0)
        return false;
    bool ok = f.op == 10 && f.fin && f.rsv == 0 && f.len == len &&
              (len == 0 || memcmp(f.data, data, len) == 0);
    if (!ok)
        fprintf(stderr, "  expected a pong of %zu bytes, got op %d of %zu\n", len, f.op, f.len);
    free(f.data);
    return ok;
}

/* The SUT must close with code (-1: a close without a code). The tester
 * answers (unless it closed first) and then the connection must end. */
static bool expect_close(peer *p, int code)
{
    frame f;
    if (get_frame(p, &f) < 0) {
        fprintf(stderr, "  expected close %d, the connection ended\n", code);
        return false;
    }
    int got = f.op != 8 ? -2 : f.len >= 2 ? f.data[0] << 8 | f.data[1] : -1;
    if (got != code)
        fprintf(stderr, "  expected close %d, got %s %d\n", code, f.op == 8 ? "close" : "op",
                f.op == 8 ? got : f.op);
    free(f.data);
    if (!p->closed_sent) {
        uint8_t c[2] = {(uint8_t)(SN_MAX(code, 1000) >> 8), (uint8_t)SN_MAX(code, 1000)};
        put_frame(p, 0x88, c, 2, 0);
    }
    if (!p->client)
        shutdown(p->fd, SHUT_WR); /* a server tester closes first (RFC 6455 7.1.1) */
    uint8_t b;
    bool ended = rd(p, &b, 1) < 0; /* the end, not more frames */
    if (!ended)
        fprintf(stderr, "  the connection stayed open after the close\n");
    return got == code && ended;
}

/* The tester closes normally: the SUT must answer with the same code. */
static bool close_normally(peer *p, int code, const char *reason)
{
    uint8_t c[125] = {(uint8_t)(code >> 8), (uint8_t)code};
    size_t rl = reason ? strlen(reason) : 0;
    memcpy(c + 2, reason ? reason : "", rl);
    put_frame(p, 0x88, c, 2 + rl, 0);
    p->closed_sent = true;
    return expect_close(p, code);
}

/* ---- the system under test: server ------------------------------------------------------ */

static void sut_echo(sn_ws *ws, void *user)
{
    sn_ws_msg m;
    (void)user;
    while (sn_ws_recv(ws, &m, sn_deadline_in(TIMEOUT_MS)) == 0)
        if (sn_ws_send(ws, m.type, m.data, m.len, sn_deadline_in(TIMEOUT_MS)) < 0)
            break;
}

static sn_ws_config sut_config(void)
{
    sn_ws_config c = {.max_frame = LIMIT, .max_message = LIMIT, .deflate = SN_ON};
    c.deflate_cfg.threshold = 1; /* compress everything the case sends */
    return c;
}

static struct {
    sn_web *web;
    sn_server *srv;
    int port;
} server;

/* The server every test talks to, kept across the tests: started by the
 * runner's warm-up, stopped by its cool-down. */
static void server_up(void)
{
    sn_ws_config wc = sut_config();
    sn_ws_config small = wc;
    small.max_frame = 1000;
    small.max_message = 3000;
    SN_ASSERT_RC(sn_web_new(&server.web, NULL), 0);
    SN_ASSERT_RC(sn_web_route_ws(server.web, "/echo", SN_ROUTE_EXACT, &wc, sut_echo, NULL), 0);
    SN_ASSERT_RC(sn_web_route_ws(server.web, "/small", SN_ROUTE_EXACT, &small, sut_echo, NULL), 0);
    sn_server_config sc = {.host = "127.0.0.1",
                           .handler = sn_web_serve,
                           .user = server.web,
                           .fibers = SN_ON,
                           .fiber_threads = 1,
                           .conn = {.read_buffer_max = 1 << 20}};
    SN_ASSERT_RC(sn_server_new(&server.srv, &sc), 0);
    SN_ASSERT_RC(sn_server_start(server.srv), 0);
    server.port = sn_server_port(server.srv);
}

static void server_down(void)
{
    sn_server_free(server.srv);
    sn_web_free(server.web);
}

static bool server_busy(void)
{
    sn_server_stats st;
    sn_server_stats_get(server.srv, &st);
    return st.active > 0 || st.queued > 0;
}

/* After each test (the runner's hook): the server has closed the test's
 * connections. */
static void server_idle(void)
{
    WAIT_UNTIL(!server_busy(), 5000);
}

static void accept_key(const char *key, char out[32])
{
    char in[128];
    byte sha[WC_SHA_DIGEST_SIZE];
    word32 n = 31;
    snprintf(in, sizeof in, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    CU_ASSERT_FATAL(wc_ShaHash((const byte *)in, (word32)strlen(in), sha) == 0);
    CU_ASSERT_FATAL(Base64_Encode_NoNl(sha, sizeof sha, (byte *)out, &n) == 0);
    out[n] = '\0';
}

/* Reads an HTTP head (up to the empty line) into buf. */
static int read_head(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    peer tmp = {.fd = fd};
    while (n + 1 < cap) {
        if (rd(&tmp, buf + n, 1) < 0)
            return -1;
        n++;
        buf[n] = '\0';
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            return 0;
    }
    return -1;
}

/* A deflate parameter's value in an extension line, 15 when absent, 0 when
 * present without a value. */
static int param(const char *line, const char *name)
{
    const char *s = strstr(line, name);
    if (s == NULL)
        return 15;
    s += strlen(name);
    return *s == '=' ? atoi(s + 1) : 0;
}

/* Connects to the SUT server at path with an extension offer (or NULL). */
static void connect_server(peer *p, const char *path, const char *offer)
{
    memset(p, 0, sizeof *p);
    p->client = true;
    sn_sock *s;
    SN_ASSERT_RC(sn_tcp_connect(&s, "127.0.0.1", server.port, NULL, sn_deadline_in(2000)), 0);
    p->fd = dup(sn_sock_fd(s));
    sn_sock_free(s);
    const char *key = "x3JJHMbDL1EzLkh9GBhXDw==";
    char req[512], head[2048], want[32], line[256];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
             path, key, offer ? "Sec-WebSocket-Extensions: " : "", offer ? offer : "",
             offer ? "\r\n" : "");
    SN_ASSERT_RC(sn_test_write_all(p->fd, req, strlen(req)), 0);
    CU_ASSERT_FATAL(read_head(p->fd, head, sizeof head) == 0);
    CU_ASSERT_FATAL(strncmp(head, "HTTP/1.1 101 ", 13) == 0);
    accept_key(key, want);
    snprintf(line, sizeof line, "Sec-WebSocket-Accept: %s\r\n", want);
    CU_ASSERT_FATAL(strstr(head, line) != NULL);
    const char *ext = strstr(head, "Sec-WebSocket-Extensions: ");
    CU_ASSERT_FATAL((ext != NULL) == (offer != NULL));
    if (ext != NULL) {
        size_t l = strcspn(ext, "\r");
        snprintf(line, sizeof line, "%.*s", (int)l, ext);
        p->pmd = true;
        p->rx_bits = param(line, "server_max_window_bits");
        p->tx_bits = param(line, "client_max_window_bits");
        p->rx_reset = strstr(line, "server_no_context_takeover") != NULL;
        p->tx_reset = strstr(line, "client_no_context_takeover") != NULL;
        CU_ASSERT(p->rx_bits >= 8 && p->tx_bits >= 8);
        z_start(p);
    }
}

/* The runner's warm-up: the server, and one WebSocket session served start
 * to end (handshake, an echo, a close) on its one fiber thread, so that
 * what the thread keeps for the sessions to come (the finished fiber's
 * stack, state made on its first session) is there before the counts are
 * taken. */
static void warm_up(void)
{
    peer p;
    server_up();
    CU_ASSERT_FATAL(server.srv != NULL && server.port > 0);
    connect_server(&p, "/echo", NULL);
    send_msg(&p, 1, "warm", 4, false);
    CU_ASSERT(expect_msg(&p, 1, "warm", 4));
    CU_ASSERT(close_normally(&p, 1000, NULL));
    close(p.fd);
    server_idle();
}

/* ---- the system under test: client ------------------------------------------------------- */

struct sut_client {
    int port;
    sn_ws_config cfg;
    pthread_t tid;
    int rc;
};

static void *client_main(void *arg)
{
    struct sut_client *sc = arg;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/echo", sc->port);
    sn_ws *ws;
    sc->rc = sn_ws_connect(&ws, url, NULL, &sc->cfg, NULL, sn_deadline_in(TIMEOUT_MS));
    if (sc->rc < 0)
        return NULL;
    sut_echo(ws, NULL);
    sn_ws_free(ws);
    return NULL;
}

/* Starts the SUT client and accepts it, answering its offer with answer
 * (NULL: no extension). */
static void connect_client(peer *p, struct sut_client *sc, int lfd, const char *answer)
{
    memset(p, 0, sizeof *p);
    CU_ASSERT_FATAL(pthread_create(&sc->tid, NULL, client_main, sc) == 0);
    p->fd = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(p->fd >= 0);
    char head[2048], acc[32], resp[512];
    CU_ASSERT_FATAL(read_head(p->fd, head, sizeof head) == 0);
    const char *k = strstr(head, "Sec-WebSocket-Key: ");
    CU_ASSERT_FATAL(k != NULL);
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)strcspn(k + 19, "\r"), k + 19);
    accept_key(key, acc);
    CU_ASSERT_FATAL(answer == NULL || strstr(head, "permessage-deflate") != NULL);
    snprintf(resp, sizeof resp,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
             acc, answer ? "Sec-WebSocket-Extensions: " : "", answer ? answer : "",
             answer ? "\r\n" : "");
    SN_ASSERT_RC(sn_test_write_all(p->fd, resp, strlen(resp)), 0);
    if (answer != NULL) {
        p->pmd = true;
        p->tx_bits = param(answer, "server_max_window_bits");
        p->rx_bits = param(answer, "client_max_window_bits");
        p->tx_reset = strstr(answer, "server_no_context_takeover") != NULL;
        p->rx_reset = strstr(answer, "client_no_context_takeover") != NULL;
        z_start(p);
    }
}

/* ---- running cases against both ---------------------------------------------------------- */

typedef bool (*case_fn)(peer *p, const void *arg);

typedef struct conf_case {
    const char *id;
    case_fn fn;
    const void *arg;
    bool small; /* against the small limits */
} conf_case;

static int listen_fd(int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&sin, len) == 0 && listen(fd, 8) == 0 &&
                    getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Runs each case against the server, then against the client (except
 * cases of the small limits, which are the server's routes). */
static void run_cases(const conf_case *cases, size_t n, const char *offer, const char *answer)
{
    int port, lfd = listen_fd(&port);
    for (size_t i = 0; i < n; i++) {
        peer p;
        connect_server(&p, cases[i].small ? "/small" : "/echo", offer);
        bool ok = cases[i].fn(&p, cases[i].arg);
        if (!ok)
            fprintf(stderr, "case %s against the server: FAILED\n", cases[i].id);
        CU_ASSERT(ok);
        z_end(&p);
        close(p.fd);
        if (cases[i].small)
            continue;
        struct sut_client sc = {.port = port, .cfg = sut_config()};
        if (offer == NULL)
            sc.cfg.deflate = SN_OFF;
        connect_client(&p, &sc, lfd, answer);
        ok = cases[i].fn(&p, cases[i].arg);
        if (!ok)
            fprintf(stderr, "case %s against the client: FAILED\n", cases[i].id);
        CU_ASSERT(ok);
        z_end(&p);
        close(p.fd);
        pthread_join(sc.tid, NULL);
        SN_ASSERT_RC(sc.rc, 0);
    }
    close(lfd);
}

/* ---- 1 framing ------------------------------------------------------------------------------ */

static uint8_t *pattern(size_t len)
{
    uint8_t *b = malloc(len + 1);
    CU_ASSERT_FATAL(b != NULL);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)("Hello, conformance! "[i % 20]);
    return b;
}

struct sized {
    int op;
    size_t len;
    size_t chunk;
};

static bool echo_sized(peer *p, const void *arg)
{
    const struct sized *s = arg;
    uint8_t *b = pattern(s->len);
    put_frame(p, 0x80 | s->op, b, s->len, s->chunk);
    bool ok = expect_msg(p, s->op, b, s->len) && close_normally(p, 1000, NULL);
    free(b);
    return ok;
}

static void test_framing(void)
{
    static const struct sized s[] = {
        {1, 0, 0},     {1, 125, 0},     {1, 126, 0},         {1, 127, 0}, {1, 128, 0},
        {1, 65535, 0}, {1, 65536, 0},   {2, 0, 0},           {2, 125, 0}, {2, 126, 0},
        {2, 65535, 0}, {2, 65536, 0},   {2, 1 << 20, 0},     {1, BIG, 0}, {2, BIG - 1, 0},
        {1, 200, 1},   {2, 65536, 997}, {1, 1 << 20, 65536},
    };
    conf_case c[SN_ARRAY_SIZE(s)];
    size_t n = 0;
    /* valgrind (SN_TEST_QUICK) skips the 16 MiB messages: minutes there */
    bool quick = getenv("SN_TEST_QUICK") != NULL && atoi(getenv("SN_TEST_QUICK")) > 0;
    for (size_t i = 0; i < SN_ARRAY_SIZE(s); i++)
        if (!quick || s[i].len < BIG - 1)
            c[n++] = (conf_case){"1.x", echo_sized, &s[i], false};
    run_cases(c, n, NULL, NULL);
}

/* ---- 2 pings ----------------------------------------------------------------------------------
 */

static bool ping_payload(peer *p, const void *arg)
{
    size_t len = *(const size_t *)arg;
    uint8_t *b = pattern(len);
    put_frame(p, 0x89, b, len, 0);
    bool ok = expect_pong(p, b, len) && close_normally(p, 1000, NULL);
    free(b);
    return ok;
}

static bool ping_too_long(peer *p, const void *arg)
{
    (void)arg;
    uint8_t b[126] = {0};
    put_frame(p, 0x89, b, sizeof b, 0);
    return expect_close(p, 1002);
}

static bool pong_unsolicited(peer *p, const void *arg)
{
    (void)arg;
    put_frame(p, 0x8a, "unasked", 7, 0);
    put_frame(p, 0x81, "after", 5, 0);
    return expect_msg(p, 1, "after", 5) && close_normally(p, 1000, NULL);
}

static bool ping_burst(peer *p, const void *arg)
{
    (void)arg;
    char b[16];
    for (int i = 0; i < 10; i++) {
        snprintf(b, sizeof b, "ping %d", i);
        put_frame(p, 0x89, b, strlen(b), 0);
    }
    bool ok = true;
    for (int i = 0; i < 10 && ok; i++) {
        snprintf(b, sizeof b, "ping %d", i);
        ok = expect_pong(p, b, strlen(b));
    }
    return ok && close_normally(p, 1000, NULL);
}

static bool ping_byte_by_byte(peer *p, const void *arg)
{
    (void)arg;
    put_frame(p, 0x89, "slowly", 6, 1);
    return expect_pong(p, "slowly", 6) && close_normally(p, 1000, NULL);
}

static void test_pings(void)
{
    static const size_t zero = 0, full = 125, mid = 17;
    const conf_case c[] = {
        {"2.1", ping_payload, &zero, false},      {"2.2", ping_payload, &mid, false},
        {"2.4", ping_payload, &full, false},      {"2.5", ping_too_long, NULL, false},
        {"2.6", pong_unsolicited, NULL, false},   {"2.10", ping_burst, NULL, false},
        {"2.11", ping_byte_by_byte, NULL, false},
    };
    run_cases(c, SN_ARRAY_SIZE(c), NULL, NULL);
}

/* ---- 3 reserved bits, 4 opcodes -------------------------------------------------------------- */

/* Sends a good message, then frame b0, then another good one: the first
 * is echoed, the bad frame gets 1002, the last is never echoed. */
static bool bad_frame(peer *p, const void *arg)
{
    int b0 = *(const int *)arg;
    put_frame(p, 0x81, "before", 6, 0);
    put_frame(p, b0, "bad", 3, 0);
    put_frame(p, 0x81, "after", 5, 0);
    return expect_msg(p, 1, "before", 6) && expect_close(p, 1002);
}

static void test_reserved_and_opcodes(void)
{
    static const int b0[] = {
        0x80 | 0x40 | 1,
        0x80 | 0x20 | 1,
        0x80 | 0x10 | 2,
        0x80 | 0x70 | 2,
        0x80 | 0x40 | 9,
        0x80 | 0x20 | 10,
        0x80 | 0x10 | 8, /* RSV bits without an extension */
        0x83,
        0x84,
        0x85,
        0x86,
        0x87, /* reserved data opcodes */
        0x8b,
        0x8c,
        0x8d,
        0x8e,
        0x8f, /* reserved control opcodes */
        0x03, /* a reserved opcode, fragmented */
    };
    conf_case c[SN_ARRAY_SIZE(b0)];
    for (size_t i = 0; i < SN_ARRAY_SIZE(b0); i++)
        c[i] = (conf_case){i < 7 ? "3.x" : "4.x", bad_frame, &b0[i], false};
    run_cases(c, SN_ARRAY_SIZE(c), NULL, NULL);
}

/* ---- 5 fragmentation ---------------------------------------------------------------------- */

static bool frag_simple(peer *p, const void *arg)
{
    int op = *(const int *)arg;
    put_frame(p, op, "frag", 4, 0);
    put_frame(p, 0x00, "ment", 4, 0);
    put_frame(p, 0x00, "", 0, 0);
    put_frame(p, 0x80, "ed", 2, 0);
    return expect_msg(p, op, "fragmented", 10) && close_normally(p, 1000, NULL);
}

static bool frag_with_controls(peer *p, const void *arg)
{
    (void)arg;
    put_frame(p, 0x01, "one ", 4, 0);
    put_frame(p, 0x89, "between", 7, 0);
    put_frame(p, 0x00, "two ", 4, 0);
    put_frame(p, 0x8a, "pong", 4, 0); /* unsolicited: ignored */
    put_frame(p, 0x89, "again", 5, 0);
    put_frame(p, 0x80, "three", 5, 0);
    return expect_pong(p, "between", 7) && expect_pong(p, "again", 5) &&
           expect_msg(p, 1, "one two three", 13) && close_normally(p, 1000, NULL);
}

static bool frag_one_byte_each(peer *p, const void *arg)
{
    (void)arg;
    const char *t = "one byte per frame, with a ping inside";
    size_t n = strlen(t);
    for (size_t i = 0; i < n; i++) {
        put_frame(p, (i == 0 ? 1 : 0) | (i == n - 1 ? 0x80 : 0), t + i, 1, 0);
        if (i == 10)
            put_frame(p, 0x89, "", 0, 0);
    }
    return expect_pong(p, "", 0) && expect_msg(p, 1, t, n) && close_normally(p, 1000, NULL);
}

static bool frag_bad_sequence(peer *p, const void *arg)
{
    int which = *(const int *)arg;
    put_frame(p, 0x81, "ok", 2, 0);
    if (which == 0) {
        put_frame(p, 0x80, "lone", 4, 0); /* a continuation with nothing to continue */
    } else if (which == 1) {
        put_frame(p, 0x00, "lone", 4, 0);
    } else if (which == 2) {
        put_frame(p, 0x01, "start", 5, 0);
        put_frame(p, 0x81, "new text inside", 15, 0);
    } else if (which == 3) {
        put_frame(p, 0x02, "start", 5, 0);
        put_frame(p, 0x02, "new binary inside", 17, 0);
    } else if (which == 4) {
        put_frame(p, 0x09, "frag", 4, 0); /* a fragmented ping */
        put_frame(p, 0x80, "ment", 4, 0);
    } else {
        put_frame(p, 0x08, "\x03\xe8", 2, 0); /* a fragmented close */
        put_frame(p, 0x80, "", 0, 0);
    }
    return expect_msg(p, 1, "ok", 2) && expect_close(p, 1002);
}

static void test_fragments(void)
{
    static const int text = 1, binary = 2;
    static const int bad[] = {0, 1, 2, 3, 4, 5};
    const conf_case c[] = {
        {"5.3", frag_simple, &text, false},          {"5.4", frag_simple, &binary, false},
        {"5.6", frag_with_controls, NULL, false},    {"5.9", frag_one_byte_each, NULL, false},
        {"5.10", frag_bad_sequence, &bad[0], false}, {"5.11", frag_bad_sequence, &bad[1], false},
        {"5.18", frag_bad_sequence, &bad[2], false}, {"5.19", frag_bad_sequence, &bad[3], false},
        {"5.1", frag_bad_sequence, &bad[4], false},  {"5.2", frag_bad_sequence, &bad[5], false},
    };
    run_cases(c, SN_ARRAY_SIZE(c), NULL, NULL);
}

/* ---- 6 UTF-8 ------------------------------------------------------------------------------- */

struct text {
    const char *s;
    size_t len;
};

#define T(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof lit - 1                                                                        \
    }

static const struct text valid_texts[] = {
    T(""),
    T("Hello-µ@ßöäüàá-UTF-8!!"),
    T("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
    T("\x7f"),
    T("\xc2\x80"),
    T("\xdf\xbf"),
    T("\xe0\xa0\x80"),
    T("\xef\xbf\xbf"),
    T("\xf0\x90\x80\x80"),
    T("\xf4\x8f\xbf\xbf"),
    T("\xed\x9f\xbf"),
    T("\xee\x80\x80"),
    T("\xef\xbf\xbe"), /* a noncharacter is valid UTF-8 */
};

static const struct text invalid_texts[] = {
    T("\x80"),
    T("\xbf"),
    T("\xc0\xaf"),
    T("\xc1\xbf"),
    T("\xe0\x80\xaf"),
    T("\xe0\x9f\xbf"),
    T("\xf0\x80\x80\xaf"),
    T("\xf0\x8f\xbf\xbf"),
    T("\xf4\x90\x80\x80"),
    T("\xf5\x80\x80\x80"),
    T("\xf8\x88\x80\x80\x80"),
    T("\xfe"),
    T("\xff"),
    T("\xed\xa0\x80"),
    T("\xed\xbf\xbf"),
    T("\xed\xa0\x80\xed\xb0\x80"),
    T("\xce\xba\xe1\xbd"),
    T("\xc2"),
    T("a\xe2\x82"),
    T("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"),
};

/* A text sent whole, then cut into one-byte fragments. */
static bool utf8_case(peer *p, const void *arg)
{
    const struct text *t = arg;
    bool valid = t >= valid_texts && t < valid_texts + SN_ARRAY_SIZE(valid_texts);
    put_frame(p, 0x81, t->s, t->len, 0);
    if (!valid)
        return expect_close(p, 1007);
    if (!expect_msg(p, 1, t->s, t->len))
        return false;
    for (size_t i = 0; i < t->len; i++)
        put_frame(p, (i == 0 ? 1 : 0) | (i + 1 == t->len ? 0x80 : 0), t->s + i, 1, 0);
    return (t->len == 0 || expect_msg(p, 1, t->s, t->len)) && close_normally(p, 1000, NULL);
}

static bool utf8_split_invalid(peer *p, const void *arg)
{
    const struct text *t = arg;
    for (size_t i = 0; i < t->len; i++)
        put_frame(p, (i == 0 ? 1 : 0) | (i + 1 == t->len ? 0x80 : 0), t->s + i, 1, 0);
    return expect_close(p, 1007);
}

/* Fail fast: the close must come after the first fragment, before the rest. */
static bool utf8_fail_fast(peer *p, const void *arg)
{
    (void)arg;
    put_frame(p, 0x01, "good \xed\xa0\x80 bad", 12, 0);
    bool ok = expect_close(p, 1007); /* the rest was never sent */
    return ok;
}

static void test_utf8(void)
{
    enum { NV = SN_ARRAY_SIZE(valid_texts), NI = SN_ARRAY_SIZE(invalid_texts) };
    conf_case c[NV + 2 * NI + 1];
    size_t n = 0;
    for (size_t i = 0; i < NV; i++)
        c[n++] = (conf_case){"6.valid", utf8_case, &valid_texts[i], false};
    for (size_t i = 0; i < NI; i++) {
        c[n++] = (conf_case){"6.invalid", utf8_case, &invalid_texts[i], false};
        c[n++] = (conf_case){"6.invalid-split", utf8_split_invalid, &invalid_texts[i], false};
    }
    c[n++] = (conf_case){"6.fail-fast", utf8_fail_fast, NULL, false};
    run_cases(c, n, NULL, NULL);
}

/* ---- 7 close --------------------------------------------------------------------------------- */

static bool close_code_case(peer *p, const void *arg)
{
    int code = *(const int *)arg;
    bool valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                 (code >= 3000 && code <= 4999);
    uint8_t c[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    if (!valid) {
        put_frame(p, 0x88, c, 2, 0);
        p->closed_sent = true;
        return expect_close(p, 1002);
    }
    return close_normally(p, code, "reason");
}

static bool close_empty(peer *p, const void *arg)
{
    (void)arg;
    put_frame(p, 0x88, NULL, 0, 0);
    p->closed_sent = true;
    return expect_close(p, -1); /* no code in, no code out */
}

static bool close_bad_payload(peer *p, const void *arg)
{
    int which = *(const int *)arg;
    if (which == 0)
        put_frame(p, 0x88, "\x03", 1, 0); /* one byte */
    else
        put_frame(p, 0x88, "\x03\xe8\xce\xba\xe1\xbd", 6, 0); /* a bad reason */
    p->closed_sent = true;
    return expect_close(p, which == 0 ? 1002 : 1007);
}

static bool close_long_reason(peer *p, const void *arg)
{
    (void)arg;
    char r[124];
    memset(r, 'r', 123);
    r[123] = '\0';
    return close_normally(p, 1000, r);
}

static bool close_then_data(peer *p, const void *arg)
{
    (void)arg;
    put_frame(p, 0x88, "\x03\xe8", 2, 0);
    put_frame(p, 0x81, "after the close", 15, 0);
    put_frame(p, 0x89, "ping after", 10, 0);
    p->closed_sent = true;
    return expect_close(p, 1000); /* nothing else: no echo, no pong */
}

static void test_close(void)
{
    static const int codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000,
                                3999, 4000, 4999, 0,    999,  1004, 1005, 1006, 1012, 1013,
                                1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    static const int bad[] = {0, 1};
    conf_case c[SN_ARRAY_SIZE(codes) + 5];
    size_t n = 0;
    for (size_t i = 0; i < SN_ARRAY_SIZE(codes); i++)
        c[n++] = (conf_case){"7.7/7.9", close_code_case, &codes[i], false};
    c[n++] = (conf_case){"7.3.1", close_empty, NULL, false};
    c[n++] = (conf_case){"7.3.2", close_bad_payload, &bad[0], false};
    c[n++] = (conf_case){"7.5.1", close_bad_payload, &bad[1], false};
    c[n++] = (conf_case){"7.3.4", close_long_reason, NULL, false};
    c[n++] = (conf_case){"7.1.3", close_then_data, NULL, false};
    run_cases(c, n, NULL, NULL);
}

/* ---- 9 limits ------------------------------------------------------------------------------ */

static bool limit_case(peer *p, const void *arg)
{
    int which = *(const int *)arg;
    uint8_t *b = pattern(4000);
    bool ok;
    if (which == 0) { /* at the limits: fine */
        put_frame(p, 0x02, b, 1000, 0);
        put_frame(p, 0x00, b + 1000, 1000, 0);
        put_frame(p, 0x80, b + 2000, 1000, 0);
        ok = expect_msg(p, 2, b, 3000) && close_normally(p, 1000, NULL);
    } else if (which == 1) { /* one frame too big */
        put_frame(p, 0x82, b, 1001, 0);
        ok = expect_close(p, 1009);
    } else { /* a message too big in fragments that are each fine */
        for (int i = 0; i < 4; i++)
            put_frame(p, (i == 0 ? 2 : 0) | (i == 3 ? 0x80 : 0), b, 1000, 0);
        ok = expect_close(p, 1009);
    }
    free(b);
    return ok;
}

static void test_limits(void)
{
    static const int w[] = {0, 1, 2};
    const conf_case c[] = {{"9.a", limit_case, &w[0], true},
                           {"9.b", limit_case, &w[1], true},
                           {"9.c", limit_case, &w[2], true}};
    run_cases(c, SN_ARRAY_SIZE(c), NULL, NULL);
}

/* ---- 12/13 permessage-deflate --------------------------------------------------------------- */

/* Several compressible messages, whole and fragmented, compressed and not:
 * with context takeover each depends on the ones before. */
static bool deflate_echo(peer *p, const void *arg)
{
    (void)arg;
    bool ok = p->pmd;
    uint8_t *b = pattern(70000);
    static const size_t sizes[] = {0, 1, 64, 300, 4096, 70000};
    for (size_t i = 0; ok && i < SN_ARRAY_SIZE(sizes); i++) {
        send_msg(p, 1, b, sizes[i], true);
        ok = expect_msg(p, 1, b, sizes[i]);
        send_msg(p, 2, b, sizes[i], i % 2 == 0); /* uncompressed messages mix in */
        ok = ok && expect_msg(p, 2, b, sizes[i]);
    }
    if (ok) { /* a compressed message in three fragments, RSV1 on the first only */
        size_t zl;
        uint8_t *z = z_compress(p, b, 5000, &zl);
        put_frame(p, 0x40 | 1, z, zl / 3, 0);
        put_frame(p, 0x00, z + zl / 3, zl / 3, 0);
        put_frame(p, 0x80, z + 2 * (zl / 3), zl - 2 * (zl / 3), 0);
        free(z);
        ok = expect_msg(p, 1, b, 5000);
    }
    free(b);
    return ok && close_normally(p, 1000, NULL);
}

/* RSV1 on a continuation or a control frame is still an error with deflate. */
static bool deflate_bad_rsv(peer *p, const void *arg)
{
    int which = *(const int *)arg;
    if (which == 0) {
        put_frame(p, 0x01, "ab", 2, 0);
        put_frame(p, 0x80 | 0x40, "cd", 2, 0);
    } else {
        put_frame(p, 0x80 | 0x40 | 9, "", 0, 0);
    }
    return expect_close(p, 1002);
}

static bool deflate_garbage(peer *p, const void *arg)
{
    (void)arg;
    put_frame(p, 0x80 | 0x40 | 2, "\xff\xff\xff\xff", 4, 0); /* not deflate data */
    return expect_close(p, 1007);
}

static void test_deflate(void)
{
    static const int bad[] = {0, 1};
    const conf_case extra[] = {{"13.rsv-cont", deflate_bad_rsv, &bad[0], false},
                               {"13.rsv-ctl", deflate_bad_rsv, &bad[1], false},
                               {"13.garbage", deflate_garbage, NULL, false}};
    run_cases(extra, SN_ARRAY_SIZE(extra), "permessage-deflate", "permessage-deflate");
    const conf_case echo[] = {{"12/13", deflate_echo, NULL, false}};
    char offer[160], answer[160];
    for (int bits = 8; bits <= 15; bits++) {
        for (int takeover = 0; takeover < 2; takeover++) {
            const char *nct = takeover ? "" : "; client_no_context_takeover";
            const char *nst = takeover ? "" : "; server_no_context_takeover";
            /* the server: the tester asks for windows of bits both ways */
            snprintf(offer, sizeof offer,
                     "permessage-deflate; client_max_window_bits=%d; server_max_window_bits=%d%s%s",
                     bits, bits, nct, nst);
            /* the client: the tester (a server) answers with them */
            snprintf(answer, sizeof answer,
                     "permessage-deflate; server_max_window_bits=%d; client_max_window_bits=%d%s%s",
                     bits, bits, nct, nst);
            run_cases(echo, 1, offer, answer);
        }
    }
}

static void test_deflate_declined_params(void)
{
    /* a server asked for server_max_window_bits it cannot honour (16) must
     * decline the offer, or the handshake fails: never accept it */
    peer p;
    memset(&p, 0, sizeof p);
    connect_server(&p, "/echo", "permessage-deflate; client_max_window_bits, permessage-deflate");
    CU_ASSERT(p.pmd); /* the first offer, with the client's bits left to the server */
    CU_ASSERT(deflate_echo(&p, NULL));
    z_end(&p);
    close(p.fd);
}

static CU_TestInfo tests[] = {
    {"1 framing: 0 B to 16 MiB, one byte per write", test_framing},
    {"2 pings and pongs", test_pings},
    {"3/4 reserved bits and opcodes", test_reserved_and_opcodes},
    {"5 fragmentation and control frames between fragments", test_fragments},
    {"6 UTF-8: valid, invalid, split, fail fast", test_utf8},
    {"7 close codes, payloads and reasons", test_close},
    {"9 frame and message limits", test_limits},
    {"12/13 deflate: windows 8-15 each way, with and without takeover", test_deflate},
    {"13 deflate: an offer list, the client's bits left open", test_deflate_declined_params},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    sn_test_program p = {.suite = "ws-conform",
                         .tests = tests,
                         .seconds = 300,
                         .warm_up = warm_up,
                         .cool_down = server_down,
                         .after_each = server_idle};
    return sn_test_run(&p);
}
