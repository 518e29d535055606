/* SPDX-License-Identifier: MIT */
/*
 * test-web.c: the router (socknet/web.h) behind a real sn_server on
 * loopback, in thread mode and in fiber mode: routing (exact, prefix,
 * longest prefix, segment boundaries, query), the statuses the router
 * answers itself, HTTP keep-alive, pipelining and bodies, the origin hook,
 * the session limit, a handler that returns with its session open,
 * close 1001 on a server stop, peers that stall inside a message (cut with
 * 1011) or are slow but live (kept), and the stack depth of a plain
 * session.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_test.h"
#include "sn_fiber.h"
#include "sn_ws_frame.h"

struct fixture {
    sn_web *web;
    sn_server *srv;
    int port;
    atomic_int ws_served;
    atomic_int stop_rc;   /* what the handler's last receive returned */
    atomic_int http_hits; /* prefix handler */
    atomic_int parts;     /* pieces ws_parts received */
};

static void ws_echo(sn_ws *ws, void *user)
{
    struct fixture *f = user;
    sn_ws_msg m;
    int rc;
    atomic_fetch_add(&f->ws_served, 1);
    while ((rc = sn_ws_recv(ws, &m, SN_DEADLINE_NEVER)) == 0) {
        if (m.len == 6 && memcmp(m.data, "return", 6) == 0)
            return; /* the router closes the session (1000) */
        if (sn_ws_send(ws, m.type, m.data, m.len, sn_deadline_in(5000)) < 0)
            break;
    }
    atomic_store(&f->stop_rc, rc);
}

/* Receives messages as streams of pieces, without a deadline. */
static void ws_parts(sn_ws *ws, void *user)
{
    struct fixture *f = user;
    sn_ws_part p;
    int rc;
    while ((rc = sn_ws_recv_part(ws, &p, SN_DEADLINE_NEVER)) == 0)
        atomic_fetch_add(&f->parts, 1);
    atomic_store(&f->stop_rc, rc);
}

/* Answers "<path>|<query>|<body>" for the route it is given as user. */
static int http_show(sn_conn *c, const sn_http_request *req, const void *body, size_t len,
                     void *user)
{
    char out[512];
    int n = snprintf(out, sizeof out, "%s:%.*s|%.*s|%.*s", (const char *)user, (int)req->path_len,
                     req->path, req->query ? (int)req->query_len : 0, req->query ? req->query : "",
                     (int)len, body ? (const char *)body : "");
    return sn_http_respond(c, 200, "Content-Type: text/plain\r\n", out, (size_t)n,
                           !sn_http_keep_alive(req), sn_deadline_in(2000));
}

static bool origin_ok(const char *origin, size_t len, const sn_http_request *req, void *user)
{
    (void)req, (void)user;
    return origin == NULL || (len == 16 && memcmp(origin, "http://localhost", 16) == 0);
}

static const sn_ws_config deflate_on = {.deflate = SN_ON};
static const char *const protos[] = {"chat.v2", "chat.v1"}; /* the server's preference */
static const sn_ws_config with_protos = {.subprotocols = protos, .nsubprotocols = 2};
static const sn_ws_config pinging = {.ping_period_ms = 300};
static const sn_ws_config live = {.ping_period_ms = 200, .timeout_ms = 300};
static const sn_ws_config large = {.max_message = 8 << 20, .deflate = SN_ON};
static const sn_ws_config small = {.max_message = 1024};

static void start_tls(struct fixture *f, int fibers, const sn_web_config *wcfg, sn_tls *tls)
{
    memset(f, 0, sizeof *f);
    SN_ASSERT_RC(sn_web_new(&f->web, wcfg), 0);
    SN_ASSERT_RC(sn_web_route_ws(f->web, "/echo", SN_ROUTE_EXACT, NULL, ws_echo, f), 0);
    SN_ASSERT_RC(sn_web_route_ws(f->web, "/rooms/", SN_ROUTE_PREFIX, NULL, ws_echo, f), 0);
    SN_ASSERT_RC(sn_web_route_ws(f->web, "/zecho", SN_ROUTE_EXACT, &deflate_on, ws_echo, f), 0);
    SN_ASSERT_RC(sn_web_route_ws(f->web, "/proto", SN_ROUTE_EXACT, &with_protos, ws_echo, f), 0);
    SN_ASSERT_RC(sn_web_route_ws(f->web, "/ping", SN_ROUTE_EXACT, &pinging, ws_echo, f), 0);
    SN_ASSERT_RC(sn_web_route_ws(f->web, "/live", SN_ROUTE_EXACT, &live, ws_echo, f), 0);
    SN_ASSERT_RC(sn_web_route_ws(f->web, "/liveparts", SN_ROUTE_EXACT, &live, ws_parts, f), 0);
    SN_ASSERT_RC(sn_web_route_ws(f->web, "/big", SN_ROUTE_EXACT, &large, ws_echo, f), 0);
    SN_ASSERT_RC(sn_web_route_ws(f->web, "/small", SN_ROUTE_EXACT, &small, ws_echo, f), 0);
    SN_ASSERT_RC(sn_web_route_http(f->web, "/", SN_ROUTE_EXACT, http_show, "root"), 0);
    SN_ASSERT_RC(sn_web_route_http(f->web, "/static", SN_ROUTE_PREFIX, http_show, "static"), 0);
    SN_ASSERT_RC(sn_web_route_http(f->web, "/static/deep", SN_ROUTE_PREFIX, http_show, "deep"), 0);
    SN_ASSERT_RC(sn_web_route_http(f->web, "/static/x", SN_ROUTE_EXACT, http_show, "x"), 0);
    sn_server_config sc = {
        .host = "127.0.0.1", .handler = sn_web_serve, .user = f->web, .fibers = fibers, .tls = tls};
    SN_ASSERT_RC(sn_server_new(&f->srv, &sc), 0);
    SN_ASSERT_RC(sn_server_start(f->srv), 0);
    f->port = sn_server_port(f->srv);
}

static void start(struct fixture *f, int fibers, const sn_web_config *wcfg)
{
    start_tls(f, fibers, wcfg, NULL);
}

static void finish(struct fixture *f)
{
    sn_server_free(f->srv);
    sn_web_free(f->web);
}

/* Sends raw request bytes, reads the whole answer until the server closes
 * or timeout_ms passes; returns what came, NUL-terminated, in buf. */
static size_t exchange(int port, const char *request, char *buf, size_t cap, int timeout_ms)
{
    sn_conn *c;
    SN_ASSERT_RC(sn_conn_connect(&c, "127.0.0.1", port, NULL, NULL, sn_deadline_in(2000)), 0);
    SN_ASSERT_RC(sn_test_write_all(sn_sock_fd(sn_conn_sock(c)), request, strlen(request)), 0);
    size_t got = 0;
    ssize_t n;
    int64_t until = sn_now_ms() + timeout_ms;
    while (got + 1 < cap && (n = sn_read(c, buf + got, cap - 1 - got, until)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    sn_conn_free(c);
    return got;
}

static void expect_status(int port, const char *request, const char *status, const char *body)
{
    char buf[4096];
    exchange(port, request, buf, sizeof buf, 3000);
    bool ok = strncmp(buf, status, strlen(status)) == 0 && (body == NULL || strstr(buf, body));
    if (!ok)
        fprintf(stderr, "request %.40s...: got %.200s\n", request, buf);
    CU_ASSERT(ok);
}

#define UPGRADE(path, extra)                                                                       \
    "GET " path " HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"            \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" extra "\r\n"

static void routing(int fibers)
{
    struct fixture f;
    sn_web_config wc = {.origin = origin_ok, .max_body = 100};
    start(&f, fibers, &wc);
    expect_status(f.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 ",
                  "root:/|");
    expect_status(f.port, "GET /?a=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                  "HTTP/1.1 200 ", "root:/|a=1|");
    expect_status(f.port, "GET /static HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                  "HTTP/1.1 200 ", "static:/static|");
    expect_status(f.port, "GET /static/a/b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                  "HTTP/1.1 200 ", "static:/static/a/b|");
    expect_status(f.port, "GET /static/deep/er HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                  "HTTP/1.1 200 ", "deep:"); /* the longest prefix */
    expect_status(f.port, "GET /static/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                  "HTTP/1.1 200 ", "x:"); /* exact beats prefix */
    expect_status(f.port, "GET /staticx HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 404 ", NULL);
    expect_status(f.port, "GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 404 ", NULL);
    expect_status(f.port, "GET /rooms HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 426 ",
                  "Sec-WebSocket-Version: 13\r\n");
    expect_status(f.port, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                  "HTTP/1.1 405 ", "Allow: GET");
    expect_status(f.port, "GET http://a/static/y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                  "HTTP/1.1 200 ", "static:/static/y|"); /* absolute form (RFC 9112 3.2.2) */
    expect_status(f.port, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 ", NULL);
    expect_status(f.port, "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", "HTTP/1.1 400 ", NULL);
    expect_status(f.port, "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/1.1 505 ", NULL);
    expect_status(f.port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                  "HTTP/1.1 411 ", NULL);
    expect_status(f.port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
                  "HTTP/1.1 413 ", NULL);
    expect_status(f.port,
                  "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                  "HTTP/1.1 400 ", NULL);
    char big[9000];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    strcpy(big + sizeof big - 20, " HTTP/1.1\r\n\r\n");
    expect_status(f.port, big, "HTTP/1.1 414 ", NULL);
    expect_status(f.port, UPGRADE("/echo", "Origin: http://evil\r\n"), "HTTP/1.1 403 ", NULL);
    expect_status(f.port, UPGRADE("/echo", "Origin: http://localhost\r\n"), "HTTP/1.1 101 ", NULL);
    expect_status(f.port, UPGRADE("/rooms/lobby", ""), "HTTP/1.1 101 ", NULL);
    sn_web_stats st;
    sn_web_stats_get(f.web, &st);
    CU_ASSERT_EQUAL(st.upgrades, 2);
    CU_ASSERT_EQUAL(st.refused, 12);
    finish(&f);
}

static void test_routing_threads(void)
{
    routing(SN_OFF);
}

static void test_routing_fibers(void)
{
    routing(SN_ON);
}

/* Sends raw request bytes and returns the answer's head (up to its empty
 * line, NUL-terminated) in buf; "" when none came. */
static void answer_head(int port, const char *request, char *buf, size_t cap)
{
    sn_conn *c;
    SN_ASSERT_RC(sn_conn_connect(&c, "127.0.0.1", port, NULL, NULL, sn_deadline_in(2000)), 0);
    SN_ASSERT_RC(sn_test_write_all(sn_sock_fd(sn_conn_sock(c)), request, strlen(request)), 0);
    ssize_t n = sn_read_until(c, "\r\n\r\n", 4, buf, cap - 5, sn_deadline_in(3000));
    if (n < 0)
        n = 0;
    strcpy(buf + n, n > 0 ? "\r\n\r\n" : "");
    sn_conn_free(c);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: a\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define V13 "Sec-WebSocket-Version: 13\r\n"
#define UP "Upgrade: websocket\r\nConnection: Upgrade\r\n"
/* the answer to KEY, RFC 6455 section 1.3's example */
#define SWITCHING                                                                                  \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"            \
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
#define REFUSED(status) "HTTP/1.1 " status "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

/* A field on several lines is one list (RFC 9110 section 5.3): Connection
 * and Upgrade are searched on every line, extension offers and
 * subprotocols taken from every line in order; Sec-WebSocket-Key and
 * Sec-WebSocket-Version must come once. Byte-exact answers. */
static void handshake_lists(int fibers)
{
    static const struct {
        const char *request, *answer;
    } cases[] = {
        /* Connection on two lines, "Upgrade" on the second */
        {GET("/echo") "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n" KEY
             V13 "\r\n",
         SWITCHING "\r\n"},
        /* Upgrade on two lines, apart */
        {GET("/echo") "Upgrade: h2c\r\nConnection: Upgrade\r\n" KEY "upgrade: websocket\r\n" V13
                      "\r\n",
         SWITCHING "\r\n"},
        /* two Connection lines, neither with "upgrade" */
        {GET("/echo") "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: close\r\n" KEY
             V13 "\r\n",
         "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
        /* the first line's offer is declined (window bits 7), the second's taken */
        {GET("/zecho") UP KEY V13 "Sec-WebSocket-Extensions: x-webkit-deflate-frame, "
                                  "permessage-deflate; server_max_window_bits=7\r\n"
                                  "Sec-WebSocket-Extensions: permessage-deflate; "
                                  "server_max_window_bits=10\r\n\r\n",
         SWITCHING
         "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n\r\n"},
        /* both acceptable: the first offer wins */
        {GET("/zecho") UP KEY V13 "Sec-WebSocket-Extensions: permessage-deflate; "
                                  "server_max_window_bits=12\r\n"
                                  "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
         SWITCHING
         "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n\r\n"},
        /* chat.v2 is on the second line, and the server prefers it */
        {GET("/proto") UP KEY V13 "Sec-WebSocket-Protocol: other, chat.v1\r\n"
                                  "Sec-WebSocket-Protocol: chat.v2\r\n\r\n",
         SWITCHING "Sec-WebSocket-Protocol: chat.v2\r\n\r\n"},
        {GET("/proto") UP KEY V13 "Sec-WebSocket-Protocol: other\r\n"
                                  "Sec-WebSocket-Protocol: x, chat.v1\r\n\r\n",
         SWITCHING "Sec-WebSocket-Protocol: chat.v1\r\n\r\n"},
        /* Sec-WebSocket-Key twice, the same or another; Sec-WebSocket-Version twice */
        {GET("/echo") UP KEY KEY V13 "\r\n", REFUSED("400 Bad Request")},
        {GET("/echo") UP KEY "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n" V13 "\r\n",
         REFUSED("400 Bad Request")},
        {GET("/echo") UP KEY V13 V13 "\r\n", REFUSED("400 Bad Request")},
    };
    struct fixture f;
    start(&f, fibers, NULL);
    for (size_t i = 0; i < SN_ARRAY_SIZE(cases); i++) {
        char buf[1024];
        answer_head(f.port, cases[i].request, buf, sizeof buf);
        if (strcmp(buf, cases[i].answer) != 0)
            fprintf(stderr, "case %zu: got\n%s\nwant\n%s\n", i, buf, cases[i].answer);
        CU_ASSERT_STRING_EQUAL(buf, cases[i].answer);
    }
    sn_web_stats st; /* counted after the answer went: it may lag behind it */
    WAIT_UNTIL((sn_web_stats_get(f.web, &st), st.upgrades == 6 && st.refused == 4), 3000);
    CU_ASSERT_EQUAL(st.upgrades, 6);
    CU_ASSERT_EQUAL(st.refused, 4);
    finish(&f);
}

static void test_handshake_lists_threads(void)
{
    handshake_lists(SN_OFF);
}

static void test_handshake_lists_fibers(void)
{
    handshake_lists(SN_ON);
}

/* Reads a ping from the server (unmasked, whole) and answers it with a
 * masked pong. Returns the time the ping's first bytes came, or -1. */
static int64_t take_ping(sn_conn *c)
{
    static const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t head[SN_WS_HEAD_MAX], payload[125];
    if (sn_read_exact(c, head, 2, sn_deadline_in(5000)) != 2)
        return -1;
    int64_t at = sn_now_ms();
    size_t len = head[1];
    CU_ASSERT_EQUAL(head[0], 0x89); /* FIN, ping */
    CU_ASSERT_FATAL(len <= 125);    /* and unmasked */
    SN_ASSERT_RC(sn_read_exact(c, payload, len, sn_deadline_in(5000)), (ssize_t)len);
    size_t n = sn__ws_head_encode(head, true, 0, SN_WS_PONG, key, len);
    sn__ws_mask(payload, len, key, 0);
    SN_ASSERT_RC(sn_write(c, head, n, 0), (ssize_t)n);
    SN_ASSERT_RC(sn_write(c, payload, len, 0), (ssize_t)len);
    SN_ASSERT_RC(sn_flush(c, sn_deadline_in(2000)), 0);
    return at;
}

/* The first ping goes one period (300 ms) after the session began, not at
 * once, then one each period. A raw client times it from before its request
 * (the session cannot begin earlier), so the bound is a lower one: a loaded
 * machine delays pings, never hastens them. */
static void first_ping(int fibers)
{
    struct fixture f;
    start(&f, fibers, NULL);
    sn_conn *c;
    char head[512];
    SN_ASSERT_RC(sn_conn_connect(&c, "127.0.0.1", f.port, NULL, NULL, sn_deadline_in(2000)), 0);
    int64_t t0 = sn_now_ms();
    const char *req = UPGRADE("/ping", "");
    SN_ASSERT_RC(sn_test_write_all(sn_sock_fd(sn_conn_sock(c)), req, strlen(req)), 0);
    ssize_t n = sn_read_until(c, "\r\n\r\n", 4, head, sizeof head - 1, sn_deadline_in(3000));
    CU_ASSERT_FATAL(n > 0);
    head[n] = '\0';
    CU_ASSERT(strncmp(head, "HTTP/1.1 101 ", 13) == 0);
    int64_t first = take_ping(c);
    int64_t second = take_ping(c);
    if (first - t0 < 300)
        fprintf(stderr, "the first ping came %lld ms after the request\n", (long long)(first - t0));
    CU_ASSERT(first >= 0 && first - t0 >= 300);
    CU_ASSERT(second >= 0); /* and the next period's */
    sn_conn_free(c);
    finish(&f);
}

static void test_first_ping_threads(void)
{
    first_ping(SN_OFF);
}

static void test_first_ping_fibers(void)
{
    first_ping(SN_ON);
}

/* ---- liveness inside a message (issue 16) ---------------------------------------------- */

/* A raw client on path, after its 101: the session has begun. */
static sn_conn *ws_open(const struct fixture *f, const char *path)
{
    sn_conn *c;
    char req[512], head[512];
    SN_ASSERT_RC(sn_conn_connect(&c, "127.0.0.1", f->port, NULL, NULL, sn_deadline_in(2000)), 0);
    snprintf(req, sizeof req, UPGRADE("%s", ""), path);
    SN_ASSERT_RC(sn_test_write_all(sn_sock_fd(sn_conn_sock(c)), req, strlen(req)), 0);
    ssize_t n = sn_read_until(c, "\r\n\r\n", 4, head, sizeof head - 1, sn_deadline_in(3000));
    CU_ASSERT_FATAL(n > 0);
    head[n] = '\0';
    CU_ASSERT_FATAL(strncmp(head, "HTTP/1.1 101 ", 13) == 0);
    return c;
}

/* Writes bytes as they are (the server may have closed: then they go nowhere). */
static void put(sn_conn *c, const void *p, size_t n)
{
    ssize_t rc = send(sn_sock_fd(sn_conn_sock(c)), p, n, MSG_NOSIGNAL);
    (void)rc;
}

/* A frame's header, masked with a zero key: its payload goes as it is. */
static void put_head(sn_conn *c, bool fin, int opcode, size_t len)
{
    static const uint8_t zero_key[4];
    uint8_t head[SN_WS_HEAD_MAX];
    put(c, head, sn__ws_head_encode(head, fin, 0, (uint8_t)opcode, zero_key, len));
}

/* Reads the server's next frame by dl: returns its opcode (or an error),
 * its length in *len and its first cap bytes in buf. */
static int take_frame(sn_conn *c, uint8_t *buf, size_t cap, size_t *len, int64_t dl)
{
    uint8_t h[10], chunk[4096];
    ssize_t n = sn_read_exact(c, h, 2, dl);
    if (n < 0)
        return (int)n;
    uint64_t l = h[1] & 0x7f;
    size_t ext = l == 126 ? 2 : l == 127 ? 8 : 0;
    if (ext > 0 && (n = sn_read_exact(c, h + 2, ext, sn_deadline_in(3000))) < 0)
        return (int)n;
    for (size_t i = 0; ext > 0 && i < ext; i++)
        l = (i == 0 ? 0 : l << 8) | h[2 + i];
    for (uint64_t got = 0; got < l; got += (size_t)n) {
        size_t k = (size_t)SN_MIN(l - got, (uint64_t)sizeof chunk);
        if ((n = sn_read_exact(c, chunk, k, sn_deadline_in(3000))) < 0)
            return (int)n;
        if (got < cap)
            memcpy(buf + got, chunk, SN_MIN(k, cap - (size_t)got));
    }
    *len = (size_t)l;
    return h[0] & 0x0f;
}

/* Drops the server's pings until its close (returns the code) or 5 s;
 * calls step (when given) every 150 ms meanwhile. */
static int await_close(sn_conn *c, void (*step)(sn_conn *c))
{
    uint8_t p[128];
    size_t len = 0;
    int64_t end = sn_now_ms() + 5000, next = sn_now_ms() + 150;
    while (sn_now_ms() < end) {
        int op = take_frame(c, p, sizeof p, &len, step != NULL ? next : end);
        if (step != NULL && sn_now_ms() >= next) {
            step(c);
            next += 150;
        }
        if (op == SN_WS_CLOSE)
            return len >= 2 ? p[0] << 8 | p[1] : 0;
        if (op < 0 && op != SN_ETIMEDOUT)
            return op;
    }
    return SN_ETIMEDOUT;
}

/* What the handler's receive returned (waits up to 5 s for it to end). */
static int handler_rc(struct fixture *f)
{
    int rc;
    for (int i = 0; (rc = atomic_load(&f->stop_rc)) == 0 && i < 500; i++)
        usleep(10000);
    atomic_store(&f->stop_rc, 0);
    return rc;
}

static void header_only(sn_conn *c) /* 2 of a masked header's 6 bytes */
{
    put(c, "\x81\x8a", 2);
}

static void length_cut(sn_conn *c) /* 1 of a 16-bit length's 2 bytes */
{
    put(c, "\x82\xfe\x01", 3);
}

static void first_fragment(sn_conn *c) /* a whole fragment, not the last */
{
    put_head(c, false, SN_WS_TEXT, 3);
    put(c, "abc", 3);
}

static void trickle_head(sn_conn *c) /* a frame of 100 bytes, to come one by one */
{
    put_head(c, true, SN_WS_BINARY, 100);
}

static void trickle(sn_conn *c)
{
    put(c, "t", 1);
}

static void stream_cut(sn_conn *c) /* a piece, then the next frame stops inside */
{
    first_fragment(c);
    put_head(c, true, SN_WS_CONTINUATION, 10);
    put(c, "de", 2);
}

static const struct stall {
    const char *what, *path;
    void (*send)(sn_conn *c);
    void (*step)(sn_conn *c);
} stalls[] = {
    {"a frame's header", "/live", header_only, NULL},
    {"its extended length", "/live", length_cut, NULL},
    {"between fragments", "/live", first_fragment, NULL},
    {"a payload trickled", "/live", trickle_head, trickle},
    {"a streamed receive", "/liveparts", stream_cut, NULL},
};

/* A peer that stops inside a message and ignores pings (period 200 ms,
 * timeout 300 ms) is cut with 1011 wherever it stops, though the handler
 * receives without a deadline; its receive returns SN_ETIMEDOUT. */
static void stalled_peers(int fibers)
{
    struct fixture f;
    start(&f, fibers, NULL);
    for (size_t i = 0; i < sizeof stalls / sizeof stalls[0]; i++) {
        const struct stall *t = &stalls[i];
        sn_conn *c = ws_open(&f, t->path);
        int64_t t0 = sn_now_ms();
        t->send(c);
        int code = await_close(c, t->step);
        int64_t took = sn_now_ms() - t0;
        int rc = handler_rc(&f);
        if (code != 1011 || rc != SN_ETIMEDOUT || took < 250)
            fprintf(stderr, "%s: close %d after %lld ms, handler %s\n", t->what, code,
                    (long long)took, sn_err_name(rc));
        CU_ASSERT_EQUAL(code, 1011);
        CU_ASSERT_EQUAL(rc, SN_ETIMEDOUT);
        CU_ASSERT(took >= 250); /* a ping went, and its timeout passed */
        sn_conn_free(c);
    }
    CU_ASSERT(atomic_load(&f.parts) >= 1); /* the streamed message's first piece */
    finish(&f);
}

static void test_stalled_peers_threads(void)
{
    stalled_peers(SN_OFF);
}

static void test_stalled_peers_fibers(void)
{
    stalled_peers(SN_ON);
}

/* Answers the server's pings that came within ms; returns how many. */
static int answer_pings(sn_conn *c, int ms)
{
    uint8_t p[128];
    size_t len;
    int n = 0, op;
    int64_t until = sn_now_ms() + ms;
    while ((op = take_frame(c, p, sizeof p, &len, until)) == SN_WS_PING) {
        put_head(c, true, SN_WS_PONG, len);
        put(c, p, len);
        n++;
    }
    CU_ASSERT_EQUAL(op, SN_ETIMEDOUT);
    return n;
}

/* The server's next data frame (pings dropped): its opcode and length. */
static int take_data(sn_conn *c, uint8_t *buf, size_t cap, size_t *len)
{
    int op;
    while ((op = take_frame(c, buf, cap, len, sn_deadline_in(5000))) == SN_WS_PING)
        ;
    return op;
}

/* Slow but live peers are not cut: one that sends a message in 1-byte
 * fragments every 100 ms for 1.3 s and answers pings between them, and one
 * that sends a 96 KiB frame in 8 KiB pieces every 100 ms (it cannot answer
 * inside a frame: its bytes count). Both take more than a ping period and
 * its timeout (200 + 300 ms). */
static void slow_peers(int fibers)
{
    struct fixture f;
    start(&f, fibers, NULL);
    uint8_t buf[128];
    size_t len;
    sn_conn *c = ws_open(&f, "/live");
    int pongs = 0;
    for (int i = 0; i < 12; i++) {
        put_head(c, false, i == 0 ? SN_WS_TEXT : SN_WS_CONTINUATION, 1);
        put(c, "x", 1);
        pongs += answer_pings(c, 100);
    }
    put_head(c, true, SN_WS_CONTINUATION, 1);
    put(c, "x", 1);
    CU_ASSERT_EQUAL(take_data(c, buf, sizeof buf, &len), SN_WS_TEXT);
    CU_ASSERT(len == 13 && memcmp(buf, "xxxxxxxxxxxxx", 13) == 0);
    CU_ASSERT(pongs >= 1); /* pings came inside the message */
    sn_conn_free(c);

    c = ws_open(&f, "/live");
    static uint8_t piece[8192];
    memset(piece, 'y', sizeof piece);
    put_head(c, true, SN_WS_BINARY, 12 * sizeof piece);
    for (int i = 0; i < 12; i++) {
        put(c, piece, sizeof piece);
        usleep(100000);
    }
    CU_ASSERT_EQUAL(take_data(c, buf, sizeof buf, &len), SN_WS_BINARY);
    CU_ASSERT_EQUAL(len, 12 * sizeof piece);
    CU_ASSERT_EQUAL(buf[0], 'y');
    sn_conn_free(c);
    finish(&f);
}

static void test_slow_peers_threads(void)
{
    slow_peers(SN_OFF);
}

static void test_slow_peers_fibers(void)
{
    slow_peers(SN_ON);
}

/* ---- the router's budget for messages being received (issue 16) ------------------ */

/* A client on /big that sends len bytes of a message as a fragment that is
 * not the last, and stops there; with deflate, the whole message,
 * compressed (a fragment that is not the last may stay in zlib). */
static sn_ws *partial(const struct fixture *f, size_t len, bool deflate)
{
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/big", f->port);
    sn_ws_config cc = {.deflate = deflate ? SN_ON : SN_OFF};
    sn_ws *ws;
    SN_ASSERT_RC(sn_ws_connect(&ws, url, NULL, &cc, NULL, sn_deadline_in(3000)), 0);
    CU_ASSERT_EQUAL(sn_ws_deflate_on(ws), deflate);
    uint8_t *zeros = calloc(1, len);
    CU_ASSERT_FATAL(zeros != NULL);
    SN_ASSERT_RC(sn_ws_send_begin(ws, SN_WS_BINARY, 0), 0);
    SN_ASSERT_RC(sn_ws_send_part(ws, zeros, len, deflate, sn_deadline_in(3000)), 0);
    free(zeros);
    return ws;
}

/* The close code the server sent, once it closes (or an error). */
static int closed_with(sn_ws *ws)
{
    sn_ws_msg m;
    int rc = sn_ws_recv(ws, &m, sn_deadline_in(5000));
    return rc == SN_ECLOSED ? sn_ws_close_code(ws) : rc;
}

/* Waits up to 5 s for the router's budget to hold exactly want bytes. */
static size_t buffered_becomes(struct fixture *f, size_t want)
{
    sn_web_stats st;
    for (int i = 0; i < 500; i++) {
        sn_web_stats_get(f->web, &st);
        if (st.buffered == want)
            break;
        usleep(10000);
    }
    return st.buffered;
}

/* Peers that stop inside large messages hold the budget and no more: with
 * 1 MiB, two 400 KiB fragments take 384 KiB each (a buffer's first 128 KiB
 * are its own); a third, and a compressed message of 4 KiB that inflates
 * to 4 MiB, get close 1013 instead of growing the process; small messages
 * still go through; the budget comes back when the peers leave. */
static void budget(int fibers)
{
    struct fixture f;
    sn_web_config wc = {.max_buffered = 1 << 20};
    start(&f, fibers, &wc);
    sn_ws *a = partial(&f, 400 << 10, false), *b = partial(&f, 400 << 10, false);
    CU_ASSERT_EQUAL(buffered_becomes(&f, 2 * (384 << 10)), 2 * (384 << 10));

    sn_ws *c = partial(&f, 400 << 10, false);
    CU_ASSERT_EQUAL(closed_with(c), SN_WS_TRY_AGAIN);
    CU_ASSERT(strstr(sn_ws_close_reason(c), "budget") != NULL);
    sn_ws_free(c);
    sn_ws *z = partial(&f, 4 << 20, true);
    CU_ASSERT_EQUAL(closed_with(z), SN_WS_TRY_AGAIN);
    sn_ws_free(z);
    CU_ASSERT_EQUAL(buffered_becomes(&f, 2 * (384 << 10)), 2 * (384 << 10));
    sn_web_stats st;
    sn_web_stats_get(f.web, &st);
    CU_ASSERT(st.busy >= 2);

    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/echo", f.port);
    sn_ws *honest;
    SN_ASSERT_RC(sn_ws_connect(&honest, url, NULL, NULL, NULL, sn_deadline_in(3000)), 0);
    sn_ws_msg m;
    SN_ASSERT_RC(sn_ws_send(honest, SN_WS_TEXT, "still here", 10, sn_deadline_in(3000)), 0);
    SN_ASSERT_RC(sn_ws_recv(honest, &m, sn_deadline_in(3000)), 0);
    CU_ASSERT(m.len == 10 && memcmp(m.data, "still here", 10) == 0);
    SN_ASSERT_RC(sn_ws_close(honest, SN_WS_NORMAL, NULL, sn_deadline_in(3000)), 0);
    sn_ws_free(honest);

    sn_ws_free(a);
    sn_ws_free(b);
    CU_ASSERT_EQUAL(buffered_becomes(&f, 0), 0);
    finish(&f);
}

static void test_budget_threads(void)
{
    budget(SN_OFF);
}

static void test_budget_fibers(void)
{
    budget(SN_ON);
}

/* A budget of its own, outside a router: whole messages and raw frames
 * draw on it; a message that finds it spent fails with SN_EWS_BUSY. */
static void test_budget_api(void)
{
    sn_ws_budget *bud;
    SN_ASSERT_RC(sn_ws_budget_new(&bud, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_budget_new(NULL, 1), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_budget_new(&bud, 200 << 10), 0);
    sn_ws_budget_stats bs;
    sn_ws_budget_stats_get(bud, &bs);
    CU_ASSERT(bs.limit == 200 << 10 && bs.used == 0 && bs.peak == 0 && bs.refused == 0);
    sn_web_config wc = {.max_buffered = SIZE_MAX}; /* no router budget */
    struct fixture f;
    start(&f, SN_ON, &wc);
    sn_web_stats st;
    sn_web_stats_get(f.web, &st);
    CU_ASSERT_EQUAL(st.buffered, 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/big", f.port);
    sn_ws_config cc = {.budget = bud};
    sn_ws *ws;
    SN_ASSERT_RC(sn_ws_connect(&ws, url, NULL, &cc, NULL, sn_deadline_in(3000)), 0);
    uint8_t *data = calloc(1, 300 << 10);
    CU_ASSERT_FATAL(data != NULL);
    sn_ws_msg m;
    /* 200 KiB: a 256 KiB buffer, 128 KiB of it from the budget */
    SN_ASSERT_RC(sn_ws_send(ws, SN_WS_BINARY, data, 200 << 10, sn_deadline_in(3000)), 0);
    SN_ASSERT_RC(sn_ws_recv(ws, &m, sn_deadline_in(3000)), 0);
    CU_ASSERT_EQUAL(m.len, 200 << 10);
    sn_ws_budget_stats_get(bud, &bs);
    CU_ASSERT(bs.used == 128 << 10 && bs.peak == 128 << 10);
    /* 300 KiB needs 384 KiB of it */
    SN_ASSERT_RC(sn_ws_send(ws, SN_WS_BINARY, data, 300 << 10, sn_deadline_in(3000)), 0);
    SN_ASSERT_RC(sn_ws_recv(ws, &m, sn_deadline_in(3000)), SN_EWS_BUSY);
    sn_ws_budget_stats_get(bud, &bs);
    CU_ASSERT(bs.used == 0 && bs.refused == 1); /* the failed session gave it back */
    sn_ws_free(ws);
    free(data);
    sn_ws_budget_free(bud);
    finish(&f);
}

/* ---- error answers arrive, not resets (issue 16) ----------------------------------- */

/* Sends what as the request, then n junk bytes, and reads only after the
 * server had time to answer and close: whatever arrived, until end of
 * stream or an error (returned), into buf. */
static int answer_after_junk(int port, const char *what, size_t n, char *buf, size_t cap)
{
    sn_conn *c;
    SN_ASSERT_RC(sn_conn_connect(&c, "127.0.0.1", port, NULL, NULL, sn_deadline_in(2000)), 0);
    int fd = sn_sock_fd(sn_conn_sock(c));
    char *junk = malloc(n);
    CU_ASSERT_FATAL(junk != NULL);
    memset(junk, 'j', n);
    put(c, what, strlen(what));
    put(c, junk, n);
    free(junk);
    usleep(200000); /* the server answers and closes meanwhile */
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = recv(fd, buf + got, cap - 1 - got, 0)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    int rc = r < 0 ? -errno : 0;
    sn_conn_free(c);
    return rc;
}

/* A bad request followed by more input gets its 400 and a clean end of
 * stream (the server lingers until the client closes), where an abrupt
 * close would reset the connection and destroy the answer; a 1009 for a
 * WebSocket message still arriving likewise. A client that goes on sending
 * is cut after linger_ms. */
static void lingering(int fibers)
{
    struct fixture f;
    sn_web_config wc = {.linger_ms = 500};
    start(&f, fibers, &wc);
    char buf[4096];
    SN_ASSERT_RC(
        answer_after_junk(f.port, "GET / HTTP/1.1\r\nHost a\r\n\r\n", 64 << 10, buf, sizeof buf),
        0);
    CU_ASSERT(strncmp(buf, "HTTP/1.1 400 ", 13) == 0);

    /* a WebSocket message over max_message (1024): close 1009, then end of stream */
    sn_conn *c = ws_open(&f, "/small");
    put_head(c, true, SN_WS_BINARY, 256 << 10);
    char *payload = calloc(1, 256 << 10);
    CU_ASSERT_FATAL(payload != NULL);
    put(c, payload, 256 << 10);
    free(payload);
    usleep(200000);
    uint8_t p[128];
    size_t len = 0;
    CU_ASSERT_EQUAL(take_frame(c, p, sizeof p, &len, sn_now_ms() + 3000), SN_WS_CLOSE);
    CU_ASSERT(len >= 2 && (p[0] << 8 | p[1]) == SN_WS_TOO_BIG);
    CU_ASSERT_EQUAL(sn_read(c, p, sizeof p, sn_deadline_in(3000)), SN_EOF);
    sn_conn_free(c);
    CU_ASSERT_EQUAL(handler_rc(&f), SN_EWS_TOO_BIG);

    /* a client that keeps sending: cut after linger_ms, its answer read */
    SN_ASSERT_RC(sn_conn_connect(&c, "127.0.0.1", f.port, NULL, NULL, sn_deadline_in(2000)), 0);
    int fd = sn_sock_fd(sn_conn_sock(c));
    put(c, "BAD\r\n\r\n", 7);
    int64_t t0 = sn_now_ms(), cut = 0;
    size_t got = 0;
    while (sn_now_ms() - t0 < 3000 && cut == 0) {
        if (send(fd, "more", 4, MSG_NOSIGNAL) < 0)
            cut = sn_now_ms() - t0;
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        usleep(20000);
    }
    buf[got] = '\0';
    CU_ASSERT(strncmp(buf, "HTTP/1.1 400 ", 13) == 0);
    CU_ASSERT(cut >= 400 && cut < 2000);
    if (cut < 400 || cut >= 2000)
        fprintf(stderr, "a client that keeps sending was cut after %lld ms\n", (long long)cut);
    sn_conn_free(c);
    finish(&f);
}

static void test_lingering_threads(void)
{
    lingering(SN_OFF);
}

static void test_lingering_fibers(void)
{
    lingering(SN_ON);
}

static void test_keep_alive_and_bodies(void)
{
    struct fixture f;
    start(&f, SN_ON, NULL);
    /* three pipelined requests, one with a body, the last asking to close */
    char buf[4096];
    exchange(f.port,
             "GET /static/1 HTTP/1.1\r\nHost: a\r\n\r\n"
             "POST /static/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
             "GET /static/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
             buf, sizeof buf, 3000);
    const char *a = strstr(buf, "static:/static/1||");
    const char *b = strstr(buf, "static:/static/2||hello");
    const char *c = strstr(buf, "static:/static/3||");
    CU_ASSERT(a != NULL && b != NULL && c != NULL && a < b && b < c);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Connection: close\r\n"));
    /* HTTP/1.0 closes after one answer unless asked otherwise */
    exchange(f.port, "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n", buf, sizeof buf, 3000);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "root:"));
    CU_ASSERT_PTR_NULL(strstr(strstr(buf, "root:") + 1, "root:"));
    finish(&f);
}

static void test_idle_and_slow_heads(void)
{
    struct fixture f;
    sn_web_config wc = {.head_timeout_ms = 300, .idle_timeout_ms = 200};
    start(&f, SN_ON, &wc);
    char buf[512];
    int64_t t0 = sn_now_ms();
    exchange(f.port, "GET / HTTP/1.1\r\nHost: a\r\n", buf, sizeof buf, 3000); /* never ends */
    int64_t took = sn_now_ms() - t0;
    CU_ASSERT(took >= 250 && took < 2500);
    CU_ASSERT(strncmp(buf, "HTTP/1.1 408 ", 13) == 0); /* a head too slow: 408, then the close */
    t0 = sn_now_ms();
    exchange(f.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf, 3000);
    took = sn_now_ms() - t0;
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "root:"));
    CU_ASSERT(took >= 150 && took < 2500); /* kept, then closed after idle_timeout_ms */
    finish(&f);
}

static void test_sessions(void)
{
    struct fixture f;
    sn_web_config wc = {.max_sessions = 2};
    start(&f, SN_ON, &wc);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/echo", f.port);
    sn_ws *a, *b, *c;
    int status;
    SN_ASSERT_RC(sn_ws_connect(&a, url, NULL, NULL, &status, sn_deadline_in(3000)), 0);
    SN_ASSERT_RC(sn_ws_connect(&b, url, NULL, NULL, &status, sn_deadline_in(3000)), 0);
    SN_ASSERT_RC(sn_ws_connect(&c, url, NULL, NULL, &status, sn_deadline_in(3000)),
                 SN_EWS_HANDSHAKE);
    CU_ASSERT_EQUAL(status, 503);
    CU_ASSERT_STRING_EQUAL(sn_ws_target(a), "/echo");
    /* a handler that returns: the router closes with 1000 */
    SN_ASSERT_RC(sn_ws_send(a, SN_WS_TEXT, "return", 6, sn_deadline_in(2000)), 0);
    sn_ws_msg m;
    SN_ASSERT_RC(sn_ws_recv(a, &m, sn_deadline_in(3000)), SN_ECLOSED);
    CU_ASSERT_EQUAL(sn_ws_close_code(a), SN_WS_NORMAL);
    sn_ws_free(a);
    /* a stop: the blocked session sends 1001 */
    SN_ASSERT_RC(sn_ws_send(b, SN_WS_TEXT, "hi", 2, sn_deadline_in(2000)), 0);
    SN_ASSERT_RC(sn_ws_recv(b, &m, sn_deadline_in(3000)), 0);
    sn_server_stop(f.srv, 2000);
    SN_ASSERT_RC(sn_ws_recv(b, &m, sn_deadline_in(3000)), SN_ECLOSED);
    CU_ASSERT_EQUAL(sn_ws_close_code(b), SN_WS_GOING_AWAY);
    CU_ASSERT_EQUAL(atomic_load(&f.stop_rc), SN_ESTOPPED);
    sn_ws_free(b);
    sn_web_stats st;
    sn_web_stats_get(f.web, &st);
    CU_ASSERT_EQUAL(st.sessions, 0);
    CU_ASSERT_EQUAL(st.upgrades, 2);
    finish(&f);
}

/* A plain WebSocket session in fiber mode touches one page of its fiber's
 * stack: the handshake and a message stay within 4 KiB of the top, so an idle
 * session keeps one page resident. The handler reports how deep its fresh
 * stack was ever written after a message went both ways. The first session
 * only warms up: the first call of each library function goes through the
 * dynamic linker's lazy binding, about 2.5 KiB deeper, once per process; the
 * second, opened while the first is still open, gets a fresh stack. Checked
 * in optimized builds without sanitizers or valgrind (their frames are
 * bigger, and valgrind calls the bytes below the stack pointer undefined). */
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define SN_TEST_STACK_DEPTH 1
#else
#define SN_TEST_STACK_DEPTH 0
#endif

static void ws_depth(sn_ws *ws, void *user)
{
    (void)user;
    sn_ws_msg m;
    char out[32];
    if (sn_ws_recv(ws, &m, sn_deadline_in(3000)) != 0 ||
        sn_ws_send(ws, m.type, m.data, m.len, sn_deadline_in(3000)) != 0 ||
        sn_ws_recv(ws, &m, sn_deadline_in(3000)) != 0)
        return;
    int n = snprintf(out, sizeof out, "%zu", sn__fiber_stack_touched(sn__fiber_self()));
    sn_ws_send(ws, SN_WS_TEXT, out, (size_t)n, sn_deadline_in(3000));
}

/* Opens a session to url, echoes a message and asks for the depth. */
static long session_depth(const char *url, sn_ws **ws)
{
    sn_ws_msg m;
    char text[32] = "";
    SN_ASSERT_RC(sn_ws_connect(ws, url, NULL, NULL, NULL, sn_deadline_in(3000)), 0);
    SN_ASSERT_RC(sn_ws_send(*ws, SN_WS_TEXT, "hello", 5, sn_deadline_in(2000)), 0);
    SN_ASSERT_RC(sn_ws_recv(*ws, &m, sn_deadline_in(3000)), 0);
    SN_ASSERT_RC(sn_ws_send(*ws, SN_WS_TEXT, "depth?", 6, sn_deadline_in(2000)), 0);
    if (sn_ws_recv(*ws, &m, sn_deadline_in(3000)) != 0)
        return -1;
    snprintf(text, sizeof text, "%.*s", (int)m.len, (const char *)m.data);
    return strtol(text, NULL, 10);
}

static void test_session_stack(void)
{
    if (!SN_TEST_STACK_DEPTH || sn_test_under_valgrind())
        return;
    sn_web *web;
    sn_server *srv;
    SN_ASSERT_RC(sn_web_new(&web, NULL), 0);
    SN_ASSERT_RC(sn_web_route_ws(web, "/depth", SN_ROUTE_EXACT, NULL, ws_depth, NULL), 0);
    sn_server_config sc = {
        .host = "127.0.0.1", .handler = sn_web_serve, .user = web, .fibers = SN_ON};
    SN_ASSERT_RC(sn_server_new(&srv, &sc), 0);
    SN_ASSERT_RC(sn_server_start(srv), 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/depth", sn_server_port(srv));
    sn_ws *warm, *ws;
    session_depth(url, &warm);
    long depth = session_depth(url, &ws);
    if (depth <= 0 || depth > 4096)
        fprintf(stderr, "a plain session's stack: %ld bytes below the top\n", depth);
    CU_ASSERT(depth > 0 && depth <= 4096);
    sn_ws_free(ws);
    sn_ws_free(warm);
    sn_server_free(srv);
    sn_web_free(web);
}

static void test_bad_routes(void)
{
    sn_web *w;
    sn_web_config bad = {.max_sessions = -1};
    SN_ASSERT_RC(sn_web_new(&w, &bad), SN_EINVAL);
    SN_ASSERT_RC(sn_web_new(&w, NULL), 0);
    SN_ASSERT_RC(sn_web_route_http(w, "nope", SN_ROUTE_EXACT, http_show, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_web_route_http(w, "/a?b", SN_ROUTE_EXACT, http_show, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_web_route_http(w, "/a", 7, http_show, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_web_route_http(w, "/a", SN_ROUTE_EXACT, NULL, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_web_route_http(w, "/a", SN_ROUTE_PREFIX, http_show, NULL), 0);
    SN_ASSERT_RC(sn_web_route_http(w, "/a/", SN_ROUTE_PREFIX, http_show, NULL), SN_EEXIST);
    sn_ws_config wc = {.deflate_cfg = {.level = 10}};
    SN_ASSERT_RC(sn_web_route_ws(w, "/w", SN_ROUTE_EXACT, &wc, ws_echo, NULL), SN_EINVAL);
    sn_web_free(w);
    sn_web_free(NULL);
}

/* wss: the router behind a TLS listener. A client trusting the test CA
 * gets its echoes, compressed or not; the default context (the system's
 * CAs) refuses the server; plain ws:// to the TLS port fails. */
static void test_wss(void)
{
    sn_tls_config sc = {.role = SN_TLS_SERVER,
                        .cert = {.chain = {.file = sn_test_pki("server-rsa.pem")},
                                 .key = {.file = sn_test_pki("server-rsa.key")}}};
    sn_tls_config cc = {
        .role = SN_TLS_CLIENT, .ca = &(sn_tls_source){.file = sn_test_pki("ca.pem")}, .nca = 1};
    sn_tls *stls = NULL, *ctls = NULL;
    SN_ASSERT_RC(sn_tls_new(&stls, &sc), 0);
    SN_ASSERT_RC(sn_tls_new(&ctls, &cc), 0);
    CU_ASSERT_FATAL(stls != NULL && ctls != NULL);
    size_t big = 200000;
    char *buf = malloc(big);
    CU_ASSERT_FATAL(buf != NULL);
    for (size_t i = 0; i < big; i++)
        buf[i] = "secure websocket "[i % 17];
    for (int mode = 0; mode < 2; mode++) {
        struct fixture f;
        int fibers = mode ? SN_ON : SN_OFF;
        start_tls(&f, fibers, NULL, stls);
        char url[64], plain[64];
        snprintf(url, sizeof url, "wss://127.0.0.1:%d/zecho", f.port);
        snprintf(plain, sizeof plain, "ws://127.0.0.1:%d/echo", f.port);
        for (int z = 0; z < 2; z++) {
            sn_ws_config wc = {.tls = ctls, .deflate = z ? SN_ON : SN_OFF};
            sn_ws *ws;
            SN_ASSERT_RC(sn_ws_connect(&ws, url, NULL, &wc, NULL, sn_deadline_in(5000)), 0);
            CU_ASSERT_EQUAL(sn_conn_is_tls(sn_ws_conn(ws)), 1);
            CU_ASSERT_EQUAL(sn_ws_deflate_on(ws), z == 1);
            static const size_t sizes[] = {0, 5, 70000, 200000};
            for (size_t i = 0; i < SN_ARRAY_SIZE(sizes); i++) {
                SN_ASSERT_RC(sn_ws_send(ws, SN_WS_TEXT, buf, sizes[i], sn_deadline_in(5000)), 0);
                sn_ws_msg m;
                SN_ASSERT_RC(sn_ws_recv(ws, &m, sn_deadline_in(5000)), 0);
                CU_ASSERT(m.len == sizes[i] && memcmp(m.data, buf, m.len) == 0);
            }
            SN_ASSERT_RC(sn_ws_close(ws, SN_WS_NORMAL, "done", sn_deadline_in(5000)), 0);
            sn_ws_free(ws);
        }
        sn_ws *ws = NULL;
        SN_ASSERT_RC(sn_ws_connect(&ws, url, NULL, NULL, NULL, sn_deadline_in(5000)),
                     SN_ETLS_VERIFY);
        char why[SN_TLS_REASON_MAX] = "stale";
        sn_ws_config rc = {.tls_reason = why, .tls_reason_cap = sizeof why};
        SN_ASSERT_RC(sn_ws_connect(&ws, url, NULL, &rc, NULL, sn_deadline_in(5000)),
                     SN_ETLS_VERIFY);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "the peer's certificate: "));
        rc.tls = ctls; /* a context that trusts it: "" */
        SN_ASSERT_RC(sn_ws_connect(&ws, url, NULL, &rc, NULL, sn_deadline_in(5000)), 0);
        CU_ASSERT_STRING_EQUAL(why, "");
        sn_ws_free(ws);
        CU_ASSERT(sn_ws_connect(&ws, plain, NULL, NULL, NULL, sn_deadline_in(5000)) < 0);
        finish(&f);
        CU_ASSERT_EQUAL(atomic_load(&f.ws_served), 3); /* the echoes, and the tls_reason "" one */
    }
    free(buf);
    sn_tls_free(stls);
    sn_tls_free(ctls);
}

static CU_TestInfo tests[] = {
    {"routing and the router's own answers, thread mode", test_routing_threads},
    {"routing and the router's own answers, fiber mode", test_routing_fibers},
    {"handshake fields on several lines, byte-exact answers, thread mode",
     test_handshake_lists_threads},
    {"handshake fields on several lines, byte-exact answers, fiber mode",
     test_handshake_lists_fibers},
    {"the first ping goes a period after the handshake, thread mode", test_first_ping_threads},
    {"the first ping goes a period after the handshake, fiber mode", test_first_ping_fibers},
    {"a peer stalled inside a message is cut with 1011, thread mode", test_stalled_peers_threads},
    {"a peer stalled inside a message is cut with 1011, fiber mode", test_stalled_peers_fibers},
    {"slow peers that answer pings or make progress stay, thread mode", test_slow_peers_threads},
    {"slow peers that answer pings or make progress stay, fiber mode", test_slow_peers_fibers},
    {"the router's budget holds under peers stalled in large messages, thread mode",
     test_budget_threads},
    {"the router's budget holds under peers stalled in large messages, fiber mode",
     test_budget_fibers},
    {"a budget of one's own: whole messages fail with SN_EWS_BUSY", test_budget_api},
    {"error answers arrive before a lingering close, thread mode", test_lingering_threads},
    {"error answers arrive before a lingering close, fiber mode", test_lingering_fibers},
    {"keep-alive, pipelining, bodies, HTTP/1.0", test_keep_alive_and_bodies},
    {"a slow head and an idle connection time out", test_idle_and_slow_heads},
    {"session limit, a returning handler, close 1001 on stop", test_sessions},
    {"bad routes and configurations", test_bad_routes},
    {"a plain session's fiber stack stays in one page", test_session_stack},
    {"wss: the router behind a TLS listener, both modes", test_wss},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("web", tests, 120);
}
