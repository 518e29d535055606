/* SPDX-License-Identifier: MIT */
/*
 * test-ws.c: WebSocket sessions end to end over loopback TCP: the server
 * side (sn_http_read_request + sn_ws_accept) on a thread, the client side
 * (sn_ws_handshake) on the test's thread. Echoes of every size, fragments,
 * subprotocols, permessage-deflate at several settings, pings, the close
 * handshake, a ping period with a silent peer, a receive deadline inside
 * a message, sends from another thread, and a peer that breaks the rules
 * byte by byte (frames written straight to the socket) getting the right
 * close code.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_test.h"
#include "sn_ws_frame.h"
#include "sn_ws_int.h"

/* ---- a server session on a thread -------------------------------------------------- */

enum srv_mode { ECHO, RECV_ONE, SILENT_RECV };

struct srv {
    sn_conn *c;
    sn_ws_config cfg;
    enum srv_mode mode;
    int recv_ms; /* each receive's deadline; 0 = 10 s (3 s when silent) */
    int accept_rc;
    int recv_rc; /* the receive that ended the loop */
    int close_code;
    char close_reason[128];
    char proto[32];
    bool deflate;
    int messages;
    sn_ws_msg last;
    char last_data[64];
    pthread_t tid;
};

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    sn_http_header h[32];
    sn_http_request req;
    int rc = sn_http_read_request(s->c, NULL, h, 32, &req, sn_deadline_in(5000));
    sn_ws *ws = NULL;
    if (rc > 0)
        rc = sn_ws_accept(&ws, s->c, &req, &s->cfg, sn_deadline_in(5000));
    s->accept_rc = rc < 0 ? rc : 0;
    if (ws == NULL)
        return NULL;
    if (sn_ws_subprotocol(ws) != NULL)
        snprintf(s->proto, sizeof s->proto, "%s", sn_ws_subprotocol(ws));
    s->deflate = sn_ws_deflate_on(ws);
    sn_ws_msg m;
    for (;;) {
        int ms = s->recv_ms ? s->recv_ms : s->mode == SILENT_RECV ? 3000 : 10000;
        rc = sn_ws_recv(ws, &m, sn_deadline_in(ms));
        if (rc < 0)
            break;
        s->messages++;
        s->last = m;
        snprintf(s->last_data, sizeof s->last_data, "%.*s", (int)SN_MIN(m.len, 60), (char *)m.data);
        if (s->mode == ECHO && sn_ws_send(ws, m.type, m.data, m.len, sn_deadline_in(10000)) < 0)
            break;
    }
    s->recv_rc = rc;
    s->close_code = sn_ws_close_code(ws);
    snprintf(s->close_reason, sizeof s->close_reason, "%s", sn_ws_close_reason(ws));
    sn_ws_free(ws);
    return NULL;
}

/* A loopback pair: the server side runs srv_main; *client is connected. */
static void srv_start(struct srv *s, sn_conn **client)
{
    sn_sock *a, *b;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    SN_ASSERT_RC(sn_conn_new(client, a, NULL), 0);
    SN_ASSERT_RC(sn_conn_new(&s->c, b, NULL), 0);
    CU_ASSERT_FATAL(pthread_create(&s->tid, NULL, srv_main, s) == 0);
}

static void srv_join(struct srv *s)
{
    pthread_join(s->tid, NULL);
    sn_conn_free(s->c);
}

static int client(sn_ws **ws, sn_conn *c, const sn_ws_config *cfg, int *status)
{
    return sn_ws_handshake(ws, c, "127.0.0.1", "/echo", "X-Test: 1\r\n", cfg, status,
                           sn_deadline_in(5000));
}

/* ---- echo ------------------------------------------------------------------------------ */

static void echo_sizes(const sn_ws_config *scfg, const sn_ws_config *ccfg, bool want_deflate)
{
    struct srv s = {.cfg = scfg ? *scfg : (sn_ws_config){0}, .mode = ECHO};
    sn_conn *c;
    sn_ws *ws;
    int status;
    srv_start(&s, &c);
    SN_ASSERT_RC(client(&ws, c, ccfg, &status), 0);
    CU_ASSERT_EQUAL(status, 101);
    CU_ASSERT_EQUAL(sn_ws_deflate_on(ws), want_deflate);
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20};
    uint8_t *buf = malloc(1 << 20);
    CU_ASSERT_FATAL(buf != NULL);
    for (size_t i = 0; i < (1 << 20); i++)
        buf[i] = (uint8_t)("websocket text "[i % 15]);
    for (size_t i = 0; i < SN_ARRAY_SIZE(sizes); i++) {
        int type = i % 2 ? SN_WS_BINARY : SN_WS_TEXT;
        SN_ASSERT_RC(sn_ws_send(ws, type, buf, sizes[i], sn_deadline_in(10000)), 0);
        sn_ws_msg m;
        SN_ASSERT_RC(sn_ws_recv(ws, &m, sn_deadline_in(10000)), 0);
        CU_ASSERT_EQUAL(m.type, type);
        CU_ASSERT_EQUAL(m.len, sizes[i]);
        CU_ASSERT(m.len == sizes[i] && memcmp(m.data, buf, m.len) == 0);
    }
    SN_ASSERT_RC(sn_ws_close(ws, SN_WS_NORMAL, "done", sn_deadline_in(5000)), 0);
    CU_ASSERT_EQUAL(sn_ws_close_code(ws), SN_WS_NORMAL); /* the server echoed ours */
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
    SN_ASSERT_RC(s.accept_rc, 0);
    SN_ASSERT_RC(s.recv_rc, SN_ECLOSED);
    CU_ASSERT_EQUAL(s.close_code, SN_WS_NORMAL);
    CU_ASSERT_STRING_EQUAL(s.close_reason, "done");
    CU_ASSERT_EQUAL(s.deflate, want_deflate);
    free(buf);
}

static void test_echo(void)
{
    echo_sizes(NULL, NULL, false);
}

static void test_echo_server_masks(void)
{
    sn_ws_config scfg = {.mask = SN_ON}, ccfg = {.mask = SN_ON};
    echo_sizes(&scfg, &ccfg, false);
}

static void test_deflate_settings(void)
{
    sn_ws_config scfg = {.deflate = SN_ON}, ccfg = {.deflate = SN_ON};
    echo_sizes(&scfg, &ccfg, true); /* defaults: 15 bits, takeover */
    echo_sizes(&scfg, NULL, false); /* the client does not offer */
    echo_sizes(NULL, &ccfg, false); /* the server does not accept */
    for (int bits = 8; bits <= 15; bits += 7) {
        scfg.deflate_cfg = (sn_ws_deflate_config){.server_max_window_bits = bits,
                                                  .client_max_window_bits = bits,
                                                  .server_no_context_takeover = SN_ON};
        ccfg.deflate_cfg = (sn_ws_deflate_config){.client_max_window_bits = 23 - bits,
                                                  .server_max_window_bits = 23 - bits,
                                                  .client_no_context_takeover = SN_ON,
                                                  .threshold = 1};
        echo_sizes(&scfg, &ccfg, true);
    }
}

static void test_subprotocols(void)
{
    static const char *const srv_protos[] = {"chat.v2", "chat.v1"};
    static const char *const cli_protos[] = {"chat.v1", "chat.v2"};
    sn_ws_config scfg = {.subprotocols = srv_protos, .nsubprotocols = 2};
    sn_ws_config ccfg = {.subprotocols = cli_protos, .nsubprotocols = 2};
    struct srv s = {.cfg = scfg, .mode = ECHO};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    SN_ASSERT_RC(client(&ws, c, &ccfg, NULL), 0);
    CU_ASSERT_STRING_EQUAL(sn_ws_subprotocol(ws), "chat.v2"); /* the server's preference */
    sn_ws_close(ws, SN_WS_NORMAL, NULL, sn_deadline_in(5000));
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
    CU_ASSERT_STRING_EQUAL(s.proto, "chat.v2");
}

/* ---- fragments and threads ------------------------------------------------------------ */

static void test_fragments(void)
{
    for (int z = 0; z < 2; z++) {
        sn_ws_config cfg = {.deflate = z ? SN_ON : SN_OFF};
        struct srv s = {.cfg = cfg, .mode = ECHO};
        sn_conn *c;
        sn_ws *ws;
        srv_start(&s, &c);
        SN_ASSERT_RC(client(&ws, c, &cfg, NULL), 0);
        /* "κόσμε" cut inside characters, and a ping between the fragments */
        const char *text = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 hello";
        size_t len = strlen(text);
        SN_ASSERT_RC(sn_ws_send_begin(ws, SN_WS_TEXT, 0), 0);
        for (size_t off = 0; off < len; off += 3) {
            size_t n = SN_MIN((size_t)3, len - off);
            SN_ASSERT_RC(sn_ws_ping(ws, "p", 1, sn_deadline_in(5000)), 0);
            SN_ASSERT_RC(sn_ws_send_part(ws, text + off, n, off + n == len, sn_deadline_in(5000)),
                         0);
        }
        SN_ASSERT_RC(sn_ws_send_part(ws, "x", 1, true, 0), SN_EBADSTATE); /* no message open */
        sn_ws_msg m;
        SN_ASSERT_RC(sn_ws_recv(ws, &m, sn_deadline_in(5000)), 0); /* pongs taken on the way */
        CU_ASSERT(m.type == SN_WS_TEXT && m.len == len && memcmp(m.data, text, len) == 0);
        sn_ws_close(ws, SN_WS_NORMAL, NULL, sn_deadline_in(5000));
        sn_ws_free(ws);
        sn_conn_free(c);
        srv_join(&s);
        CU_ASSERT_EQUAL(s.messages, 1);
    }
}

struct sender {
    sn_ws *ws;
    int n, errors;
};

static void *send_many(void *arg)
{
    struct sender *sd = arg;
    char msg[32];
    for (int i = 0; i < sd->n; i++) {
        snprintf(msg, sizeof msg, "message %d", i);
        if (sn_ws_send(sd->ws, SN_WS_TEXT, msg, strlen(msg), sn_deadline_in(5000)) < 0)
            sd->errors++;
    }
    return NULL;
}

static void test_send_from_other_threads(void)
{
    struct srv s = {.mode = ECHO};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    SN_ASSERT_RC(client(&ws, c, NULL, NULL), 0);
    enum { THREADS = 4, EACH = 200 };
    struct sender sd[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        sd[i] = (struct sender){.ws = ws, .n = EACH};
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, send_many, &sd[i]) == 0);
    }
    int got = 0; /* this thread receives the echoes meanwhile */
    sn_ws_msg m;
    while (got < THREADS * EACH && sn_ws_recv(ws, &m, sn_deadline_in(10000)) == 0) {
        CU_ASSERT(m.len > 8 && memcmp(m.data, "message ", 8) == 0);
        got++;
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(sd[i].errors, 0);
    }
    CU_ASSERT_EQUAL(got, THREADS * EACH);
    sn_ws_close(ws, SN_WS_NORMAL, NULL, sn_deadline_in(5000));
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
}

/* ---- streaming: messages in pieces both ways ------------------------------------------- */

static void stream_echo(bool deflate)
{
    sn_ws_config cfg = {.deflate = deflate ? SN_ON : SN_OFF};
    struct srv s = {.cfg = cfg, .mode = ECHO};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    SN_ASSERT_RC(client(&ws, c, &cfg, NULL), 0);
    enum { LEN = 3000000, PIECE = 100000 }; /* whole characters */
    uint8_t *buf = malloc(LEN), *got = malloc(LEN);
    CU_ASSERT_FATAL(buf != NULL && got != NULL);
    for (size_t i = 0; i < LEN; i++)
        buf[i] = (uint8_t)("stream \xce\xba "[i % 10]); /* UTF-8, cut anywhere by pieces */
    for (int round = 0; round < 2; round++) {
        SN_ASSERT_RC(sn_ws_send_begin(ws, SN_WS_TEXT, sn_deadline_in(5000)), 0);
        for (size_t off = 0; off < LEN; off += PIECE)
            SN_ASSERT_RC(sn_ws_send_part(ws, buf + off, SN_MIN((size_t)PIECE, LEN - off),
                                         off + PIECE >= LEN, sn_deadline_in(5000)),
                         0);
        size_t n = 0, pieces = 0;
        sn_ws_part p;
        bool last = false;
        while (!last) {
            SN_ASSERT_RC(sn_ws_recv_part(ws, &p, sn_deadline_in(10000)), 0);
            CU_ASSERT_EQUAL(p.type, SN_WS_TEXT);
            CU_ASSERT_EQUAL(p.first, pieces == 0);
            CU_ASSERT_FATAL(p.len <= 65536); /* bounded, inflated or not */
            CU_ASSERT_FATAL(n + p.len <= LEN);
            memcpy(got + n, p.data, p.len);
            n += p.len;
            pieces++;
            last = p.last;
            if (pieces == 1) { /* inside a streamed message, whole receives are refused */
                sn_ws_msg m;
                SN_ASSERT_RC(sn_ws_recv(ws, &m, 0), SN_EBADSTATE);
            }
        }
        CU_ASSERT(n == LEN && memcmp(got, buf, LEN) == 0);
        CU_ASSERT(pieces >= LEN / 65536);
    }
    /* a short message whole, after streamed ones */
    SN_ASSERT_RC(sn_ws_send(ws, SN_WS_BINARY, "", 0, sn_deadline_in(5000)), 0);
    sn_ws_part p;
    SN_ASSERT_RC(sn_ws_recv_part(ws, &p, sn_deadline_in(5000)), 0);
    CU_ASSERT(p.first && p.last && p.len == 0 && p.type == SN_WS_BINARY);
    SN_ASSERT_RC(sn_ws_close(ws, SN_WS_NORMAL, NULL, sn_deadline_in(5000)), 0);
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
    free(buf);
    free(got);
}

/* A streamed message over the receiver's max_message fails with 1009 once
 * the limit is passed, compressed or not. */
static void stream_limit(bool deflate)
{
    sn_ws_config scfg = {.deflate = deflate ? SN_ON : SN_OFF};
    sn_ws_config ccfg = {.deflate = scfg.deflate, .max_message = 1 << 20};
    struct srv s = {.cfg = scfg, .mode = ECHO};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    SN_ASSERT_RC(client(&ws, c, &ccfg, NULL), 0);
    size_t len = 2 << 20;
    char *buf = malloc(len);
    CU_ASSERT_FATAL(buf != NULL);
    memset(buf, 'z', len);
    SN_ASSERT_RC(sn_ws_send(ws, SN_WS_BINARY, buf, len, sn_deadline_in(5000)), 0);
    sn_ws_part p;
    size_t n = 0;
    int rc;
    while ((rc = sn_ws_recv_part(ws, &p, sn_deadline_in(5000))) == 0)
        n += p.len;
    SN_ASSERT_RC(rc, SN_EWS_TOO_BIG);
    CU_ASSERT(n <= (1 << 20));
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
    /* the server, still sending, may see the reset before the client's 1009 */
    free(buf);
}

static void test_streaming(void)
{
    stream_echo(false);
    stream_echo(true);
    stream_limit(false);
    stream_limit(true);
}

/* ---- pings and timeouts ------------------------------------------------------------------ */

static void test_ping_period(void)
{
    /* a client that answers: pings go and come back, nothing fails */
    sn_ws_config scfg = {.ping_period_ms = 30, .timeout_ms = 300};
    struct srv s = {.cfg = scfg, .mode = ECHO};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    sn_ws_config raw = {.raw = SN_ON};
    SN_ASSERT_RC(client(&ws, c, &raw, NULL), 0);
    int pings = 0;
    sn_ws_frame f;
    int64_t end = sn_now_ms() + 400;
    while (sn_now_ms() < end && sn_ws_recv_frame(ws, &f, sn_deadline_in(1000)) == 0) {
        CU_ASSERT_EQUAL(f.opcode, SN_WS_PING);
        pings++;
        SN_ASSERT_RC(sn_ws_send_frame(ws, true, SN_WS_PONG, f.data, f.len, 0), 0);
    }
    CU_ASSERT(pings >= 5);
    /* now silent: after the timeout the server gives up with 1011 (the
     * bound is loose: a loaded machine delays threads by seconds) */
    int64_t t0 = sn_now_ms();
    int rc;
    while ((rc = sn_ws_recv_frame(ws, &f, t0 + 10000)) == 0 && f.opcode == SN_WS_PING)
        ;
    SN_ASSERT_RC(rc, 0);
    CU_ASSERT_EQUAL(f.opcode, SN_WS_CLOSE);
    CU_ASSERT_FATAL(f.len >= 2);
    CU_ASSERT_EQUAL(((const uint8_t *)f.data)[0] << 8 | ((const uint8_t *)f.data)[1], 1011);
    CU_ASSERT(sn_now_ms() - t0 >= 250); /* not before the timeout */
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
    SN_ASSERT_RC(s.recv_rc, SN_ETIMEDOUT);
}

/* Raw mode sends nothing by itself: with a ping period set, no ping goes
 * (it used to send pings, and then fail a session whose peer sent other
 * frames, never counted as answers). */
static void test_raw_no_pings(void)
{
    struct srv s = {.mode = ECHO};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    sn_ws_config raw = {.raw = SN_ON, .ping_period_ms = 30, .timeout_ms = 30};
    SN_ASSERT_RC(client(&ws, c, &raw, NULL), 0);
    sn_ws_frame f;
    SN_ASSERT_RC(sn_ws_recv_frame(ws, &f, sn_deadline_in(300)), SN_ETIMEDOUT); /* no pong */
    SN_ASSERT_RC(sn_ws_send_frame(ws, true, SN_WS_TEXT, "hi", 2, sn_deadline_in(1000)), 0);
    SN_ASSERT_RC(sn_ws_recv_frame(ws, &f, sn_deadline_in(3000)), 0);
    CU_ASSERT(f.opcode == SN_WS_TEXT && f.len == 2);
    SN_ASSERT_RC(sn_ws_close(ws, SN_WS_NORMAL, NULL, sn_deadline_in(3000)), 0);
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
}

static void test_recv_deadline_not_sticky(void)
{
    struct srv s = {.mode = ECHO};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    SN_ASSERT_RC(client(&ws, c, NULL, NULL), 0);
    sn_ws_msg m;
    SN_ASSERT_RC(sn_ws_recv(ws, &m, sn_deadline_in(50)), SN_ETIMEDOUT);
    SN_ASSERT_RC(sn_ws_send(ws, SN_WS_TEXT, "again", 5, 0), 0);
    SN_ASSERT_RC(sn_ws_recv(ws, &m, sn_deadline_in(5000)), 0);
    CU_ASSERT(m.len == 5 && memcmp(m.data, "again", 5) == 0);
    sn_ws_close(ws, SN_WS_GOING_AWAY, "bye", sn_deadline_in(5000));
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
    CU_ASSERT_EQUAL(s.close_code, SN_WS_GOING_AWAY);
}

static void cancel_ws(void *arg)
{
    SN_ASSERT_RC(sn_ws_cancel(arg), 0);
}

/* A receive blocked with no deadline returns SN_ECANCELED when another
 * thread cancels the session; sends too; no close frame goes out, and the
 * server sees the connection end (1006). */
static void test_cancel_blocked_recv(void)
{
    struct srv s = {.mode = SILENT_RECV};
    sn_conn *c;
    sn_ws *ws;
    sn_ws_msg m;
    srv_start(&s, &c);
    SN_ASSERT_RC(client(&ws, c, NULL, NULL), 0);
    sn_test_later *l = sn_test_later_start(100, cancel_ws, ws);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_ws_recv(ws, &m, SN_DEADLINE_NEVER), SN_ECANCELED);
    CU_ASSERT(sn_now_ms() - t0 >= 90 && sn_now_ms() - t0 < 2000);
    sn_test_later_join(l);
    SN_ASSERT_RC(sn_ws_send(ws, SN_WS_TEXT, "late", 4, 0), SN_ECANCELED);
    SN_ASSERT_RC(sn_ws_recv(ws, &m, sn_deadline_in(100)), SN_ECANCELED);
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
    CU_ASSERT_EQUAL(s.messages, 0);
    CU_ASSERT_EQUAL(s.close_code, SN_WS_ABNORMAL);
    CU_ASSERT_EQUAL(sn_ws_cancel(NULL), SN_EINVAL);
}

/* A caller's deadline shorter than the ping rule still ends a receive that
 * waits inside a message, as before: SN_ETIMEDOUT, sticky, and no close
 * (the timeout is the caller's, not the peer's fault). The ping period is
 * 20 times the deadline, so neither a ping nor a 1011 comes first. */
static void test_recv_deadline_inside_message(void)
{
    struct srv s = {
        .cfg = {.ping_period_ms = 2000, .timeout_ms = 300}, .mode = ECHO, .recv_ms = 100};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    sn_ws_config raw = {.raw = SN_ON};
    SN_ASSERT_RC(client(&ws, c, &raw, NULL), 0);
    int fd = sn_sock_fd(sn_conn_sock(c));
    SN_ASSERT_RC(sn_test_write_all(fd, "\x81\x8a", 2), 0); /* a header's first 2 of 6 bytes */
    srv_join(&s); /* the receive ended; the server's end of the connection is closed */
    SN_ASSERT_RC(s.recv_rc, SN_ETIMEDOUT);
    sn_ws_frame f;
    int rc = sn_ws_recv_frame(ws, &f, sn_deadline_in(5000));
    if (rc == 0)
        fprintf(stderr, "a frame came: opcode %d\n", f.opcode);
    SN_ASSERT_RC(rc, SN_ECLOSED); /* no ping, no close: just the end */
    sn_ws_free(ws);
    sn_conn_free(c);
    CU_ASSERT_EQUAL(s.messages, 0);
}

/* ---- a peer that breaks the rules ---------------------------------------------------------- */

/* Writes a frame straight to the socket (masked with mask, when given). */
static void raw_frame(sn_conn *c, uint8_t b0, const uint8_t *mask, const void *data, size_t len)
{
    uint8_t head[SN_WS_HEAD_MAX], buf[256];
    size_t n = sn__ws_head_encode(head, b0 & 0x80, (b0 >> 4) & 7, b0 & 15, mask, len);
    memcpy(buf, data, len);
    if (mask != NULL)
        sn__ws_mask(buf, len, mask, 0);
    int fd = sn_sock_fd(sn_conn_sock(c));
    SN_ASSERT_RC(sn_test_write_all(fd, head, n), 0);
    SN_ASSERT_RC(sn_test_write_all(fd, buf, len), 0);
}

/* Sends frames that break a rule and expects the server's close code and error. */
static void expect_failure(const char *what, void (*send)(sn_conn *c), int want_code, int want_rc,
                           const sn_ws_config *scfg)
{
    struct srv s = {.cfg = scfg ? *scfg : (sn_ws_config){0}, .mode = RECV_ONE};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    sn_ws_config raw = {.raw = SN_ON};
    SN_ASSERT_RC(client(&ws, c, &raw, NULL), 0);
    send(c);
    sn_ws_frame f;
    int rc;
    while ((rc = sn_ws_recv_frame(ws, &f, sn_deadline_in(5000))) == 0 && f.opcode != SN_WS_CLOSE)
        ;
    SN_ASSERT_RC(rc, 0);
    int code = f.len >= 2 ? ((const uint8_t *)f.data)[0] << 8 | ((const uint8_t *)f.data)[1] : 0;
    if (code != want_code)
        fprintf(stderr, "%s: close %d, want %d\n", what, code, want_code);
    CU_ASSERT_EQUAL(code, want_code);
    /* the reason says why: the text of the error the server's receive returns */
    const char *why = sn_strerror(want_rc);
    CU_ASSERT_EQUAL(f.len, 2 + strlen(why));
    CU_ASSERT(f.len >= 2 && memcmp((const uint8_t *)f.data + 2, why, f.len - 2) == 0);
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
    if (s.recv_rc != want_rc)
        fprintf(stderr, "%s: %s\n", what, sn_err_name(s.recv_rc));
    SN_ASSERT_RC(s.recv_rc, want_rc);
}

static const uint8_t K[4] = {0x11, 0x22, 0x33, 0x44};

static void unmasked(sn_conn *c)
{
    raw_frame(c, 0x81, NULL, "hi", 2);
}
static void reserved_bit(sn_conn *c)
{
    raw_frame(c, 0x81 | 0x40, K, "hi", 2);
}
static void bad_opcode(sn_conn *c)
{
    raw_frame(c, 0x83, K, "hi", 2);
}
static void fragmented_ping(sn_conn *c)
{
    raw_frame(c, 0x09, K, "hi", 2);
}
static void long_ping(sn_conn *c)
{
    static uint8_t big[126];
    raw_frame(c, 0x89, K, big, sizeof big);
}
static void lone_continuation(sn_conn *c)
{
    raw_frame(c, 0x80, K, "hi", 2);
}
static void new_message_inside(sn_conn *c)
{
    raw_frame(c, 0x01, K, "a", 1);
    raw_frame(c, 0x81, K, "b", 1);
}
static void bad_utf8(sn_conn *c)
{
    raw_frame(c, 0x81, K, "ok \xed\xa0\x80", 6);
}
static void bad_utf8_split(sn_conn *c)
{
    raw_frame(c, 0x01, K, "\xce", 1); /* fine so far: a character begins */
    raw_frame(c, 0x80, K, "\x41", 1); /* not its continuation */
}
static void unfinished_utf8(sn_conn *c)
{
    raw_frame(c, 0x81, K, "\xe2\x82", 2);
}
static void too_big(sn_conn *c)
{
    static uint8_t big[200];
    raw_frame(c, 0x82, K, big, sizeof big);
}
static void bad_close_code(sn_conn *c)
{
    raw_frame(c, 0x88, K, "\x03\xed", 2); /* 1005 may not be sent */
}
static void bad_close_reason(sn_conn *c)
{
    raw_frame(c, 0x88, K, "\x03\xe8\xff", 3);
}
static void one_byte_close(sn_conn *c)
{
    raw_frame(c, 0x88, K, "\x03", 1);
}

static void test_protocol_violations(void)
{
    sn_ws_config small = {.max_message = 100};
    expect_failure("unmasked", unmasked, 1002, SN_EWS_PROTOCOL, NULL);
    expect_failure("reserved bit", reserved_bit, 1002, SN_EWS_PROTOCOL, NULL);
    expect_failure("bad opcode", bad_opcode, 1002, SN_EWS_PROTOCOL, NULL);
    expect_failure("fragmented ping", fragmented_ping, 1002, SN_EWS_PROTOCOL, NULL);
    expect_failure("long ping", long_ping, 1002, SN_EWS_PROTOCOL, NULL);
    expect_failure("lone continuation", lone_continuation, 1002, SN_EWS_PROTOCOL, NULL);
    expect_failure("new message inside", new_message_inside, 1002, SN_EWS_PROTOCOL, NULL);
    expect_failure("bad UTF-8", bad_utf8, 1007, SN_EWS_UTF8, NULL);
    expect_failure("bad UTF-8 split", bad_utf8_split, 1007, SN_EWS_UTF8, NULL);
    expect_failure("unfinished UTF-8", unfinished_utf8, 1007, SN_EWS_UTF8, NULL);
    expect_failure("too big", too_big, 1009, SN_EWS_TOO_BIG, &small);
    expect_failure("bad close code", bad_close_code, 1002, SN_EWS_PROTOCOL, NULL);
    expect_failure("bad close reason", bad_close_reason, 1007, SN_EWS_UTF8, NULL);
    expect_failure("one-byte close", one_byte_close, 1002, SN_EWS_PROTOCOL, NULL);
}

static void test_ping_answered(void)
{
    struct srv s = {.mode = ECHO};
    sn_conn *c;
    sn_ws *ws;
    srv_start(&s, &c);
    sn_ws_config raw = {.raw = SN_ON};
    SN_ASSERT_RC(client(&ws, c, &raw, NULL), 0);
    SN_ASSERT_RC(sn_ws_send_frame(ws, true, SN_WS_PING, "are you there", 13, 0), 0);
    sn_ws_frame f;
    SN_ASSERT_RC(sn_ws_recv_frame(ws, &f, sn_deadline_in(5000)), 0);
    CU_ASSERT(f.opcode == SN_WS_PONG && f.fin && f.len == 13 &&
              memcmp(f.data, "are you there", 13) == 0);
    /* a close without a code is answered without one */
    SN_ASSERT_RC(sn_ws_send_frame(ws, true, SN_WS_CLOSE, NULL, 0, 0), 0);
    SN_ASSERT_RC(sn_ws_recv_frame(ws, &f, sn_deadline_in(5000)), 0);
    CU_ASSERT(f.opcode == SN_WS_CLOSE && f.len == 0);
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
    CU_ASSERT_EQUAL(s.close_code, SN_WS_NO_STATUS);
}

/* ---- handshakes refused --------------------------------------------------------------------- */

static void expect_refusal(const char *request, const char *want_status_line,
                           const char *want_header)
{
    struct srv s = {.mode = ECHO};
    sn_conn *c;
    srv_start(&s, &c);
    int fd = sn_sock_fd(sn_conn_sock(c));
    SN_ASSERT_RC(sn_test_write_all(fd, request, strlen(request)), 0);
    char buf[1024] = {0};
    ssize_t n, got = 0;
    while ((n = sn_read(c, buf + got, sizeof buf - 1 - (size_t)got, sn_deadline_in(5000))) > 0)
        got += n;
    CU_ASSERT(strncmp(buf, want_status_line, strlen(want_status_line)) == 0);
    if (want_header != NULL)
        CU_ASSERT(strstr(buf, want_header) != NULL);
    sn_conn_free(c);
    srv_join(&s);
    SN_ASSERT_RC(s.accept_rc, SN_EWS_HANDSHAKE);
}

static void test_refusals(void)
{
    const char *key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    char req[512];
    snprintf(req, sizeof req,
             "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s"
             "Sec-WebSocket-Version: 8\r\n\r\n",
             key);
    expect_refusal(req, "HTTP/1.1 426 ", "Sec-WebSocket-Version: 13\r\n");
    snprintf(req, sizeof req,
             "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             key);
    expect_refusal(req, "HTTP/1.1 405 ", "Allow: GET\r\n");
    expect_refusal("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 426 ", "Upgrade: websocket\r\n");
    expect_refusal("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   "HTTP/1.1 400 ", NULL);
    snprintf(req, sizeof req,
             "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             key);
    expect_refusal(req, "HTTP/1.1 400 ", NULL); /* no Host */
}

static void test_client_rejects_bad_answers(void)
{
    /* a server that answers 200, then one with a wrong accept key */
    static const char *answers[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    };
    for (size_t i = 0; i < SN_ARRAY_SIZE(answers); i++) {
        sn_sock *a, *b;
        sn_conn *c;
        SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
        SN_ASSERT_RC(sn_conn_new(&c, a, NULL), 0);
        SN_ASSERT_RC(sn_test_write_all(sn_sock_fd(b), answers[i], strlen(answers[i])), 0);
        sn_ws *ws = NULL;
        int status = -1;
        SN_ASSERT_RC(client(&ws, c, NULL, &status), SN_EWS_HANDSHAKE);
        CU_ASSERT_EQUAL(status, i == 0 ? 200 : 101);
        CU_ASSERT_PTR_NULL(ws);
        sn_conn_free(c);
        sn_sock_free(b);
    }
}

/* A server that reads the client's upgrade request and answers with a head
 * of its own: before, the accept key for the client's key, then after. */
struct fake {
    sn_conn *c;
    const char *before, *after;
    pthread_t tid;
};

static void *fake_main(void *arg)
{
    struct fake *fk = arg;
    sn_http_header h[32];
    sn_http_request req;
    char accept[SN_WS_ACCEPT_LEN + 1];
    if (sn_http_read_request(fk->c, NULL, h, 32, &req, sn_deadline_in(5000)) <= 0)
        return NULL;
    const sn_http_header *key = sn_http_find(&req, "Sec-WebSocket-Key");
    if (key == NULL || sn__ws_accept_key(key->value, key->value_len, accept) < 0)
        return NULL;
    sn_printf(fk->c, sn_deadline_in(5000), "%s%s%s", fk->before, accept, fk->after);
    sn_flush(fk->c, sn_deadline_in(5000));
    return NULL;
}

#define SWITCHING "HTTP/1.1 101 Switching Protocols\r\n"
#define UP "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define ACCEPT "Sec-WebSocket-Accept: "

/* The client reads the server's answer with the rule of RFC 9110 section
 * 5.3 where RFC 6455 lets a field be a list (Upgrade, Connection,
 * Sec-WebSocket-Extensions: every line, one list), and refuses a second
 * Sec-WebSocket-Accept or Sec-WebSocket-Protocol (section 11.3). */
static void test_client_reads_lists(void)
{
    static const char *const cli_protos[] = {"chat.v1", "chat.v2"};
    static const struct {
        const char *before, *after;
        int rc;
        bool deflate;
    } cases[] = {
        /* the token on the first line of a field, or on the last */
        {SWITCHING "Upgrade: websocket\r\nConnection: Upgrade\r\nConnection: keep-alive\r\n" ACCEPT,
         "\r\n\r\n", 0, false},
        {SWITCHING "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n" ACCEPT,
         "\r\n\r\n", 0, false},
        {SWITCHING "Upgrade: websocket\r\nConnection: Upgrade\r\n" ACCEPT,
         "\r\nUpgrade: h2c\r\n\r\n", 0, false},
        {SWITCHING "Upgrade: h2c\r\nConnection: Upgrade\r\n" ACCEPT,
         "\r\nupgrade: websocket\r\n\r\n", 0, false},
        {SWITCHING "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: x\r\n" ACCEPT,
         "\r\n\r\n", SN_EWS_HANDSHAKE, false},
        /* our extension on the second line; empty elements ignored */
        {SWITCHING UP "Sec-WebSocket-Extensions: ,\r\n" ACCEPT,
         "\r\nSec-WebSocket-Extensions: , permessage-deflate; server_max_window_bits=10\r\n\r\n", 0,
         true},
        /* ours twice, on two lines or one; another one beside it */
        {SWITCHING UP "Sec-WebSocket-Extensions: permessage-deflate\r\n" ACCEPT,
         "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", SN_EWS_HANDSHAKE, false},
        {SWITCHING UP "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n" ACCEPT,
         "\r\n\r\n", SN_EWS_HANDSHAKE, false},
        {SWITCHING UP "Sec-WebSocket-Extensions: permessage-deflate\r\n" ACCEPT,
         "\r\nSec-WebSocket-Extensions: x-other\r\n\r\n", SN_EWS_HANDSHAKE, false},
        /* Sec-WebSocket-Accept twice, the right one first or last */
        {SWITCHING UP ACCEPT, "\r\n" ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         SN_EWS_HANDSHAKE, false},
        {SWITCHING UP ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" ACCEPT, "\r\n\r\n",
         SN_EWS_HANDSHAKE, false},
        /* one subprotocol, once */
        {SWITCHING UP ACCEPT, "\r\nSec-WebSocket-Protocol: chat.v2\r\n\r\n", 0, false},
        {SWITCHING UP ACCEPT,
         "\r\nSec-WebSocket-Protocol: chat.v2\r\nSec-WebSocket-Protocol: chat.v1\r\n\r\n",
         SN_EWS_HANDSHAKE, false},
    };
    sn_ws_config cfg = {.deflate = SN_ON, .subprotocols = cli_protos, .nsubprotocols = 2};
    for (size_t i = 0; i < SN_ARRAY_SIZE(cases); i++) {
        struct fake fk = {.before = cases[i].before, .after = cases[i].after};
        sn_sock *a, *b;
        sn_conn *c;
        SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
        SN_ASSERT_RC(sn_conn_new(&c, a, NULL), 0);
        SN_ASSERT_RC(sn_conn_new(&fk.c, b, NULL), 0);
        CU_ASSERT_FATAL(pthread_create(&fk.tid, NULL, fake_main, &fk) == 0);
        sn_ws *ws = NULL;
        int rc = client(&ws, c, &cfg, NULL);
        if (rc != cases[i].rc)
            fprintf(stderr, "case %zu: %s\n", i, sn_err_name(rc));
        SN_ASSERT_RC(rc, cases[i].rc);
        CU_ASSERT_EQUAL(sn_ws_deflate_on(ws), cases[i].deflate);
        CU_ASSERT(ws == NULL || sn_ws_subprotocol(ws) == NULL ||
                  strcmp(sn_ws_subprotocol(ws), "chat.v2") == 0);
        pthread_join(fk.tid, NULL);
        sn_ws_free(ws);
        sn_conn_free(c);
        sn_conn_free(fk.c);
    }
}

/* What ws.h says sn_ws_send_begin, sn_ws_send_part, sn_ws_ping,
 * sn_ws_close_send and sn_ws_send_frame return, case by case. */
static void test_send_contracts(void)
{
    struct srv s = {.mode = RECV_ONE};
    sn_conn *c;
    sn_ws *ws;
    char long_reason[125];
    memset(long_reason, 'r', sizeof long_reason - 1);
    long_reason[124] = '\0';
    srv_start(&s, &c);
    SN_ASSERT_RC(client(&ws, c, NULL, NULL), 0);
    SN_ASSERT_RC(sn_ws_send_begin(NULL, SN_WS_TEXT, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_send_begin(ws, SN_WS_PING, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_send_part(ws, "x", 1, true, 0), SN_EBADSTATE); /* nothing open */
    SN_ASSERT_RC(sn_ws_ping(ws, long_reason, 126, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_ping(ws, NULL, 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_ping(ws, NULL, 0, sn_deadline_in(5000)), 0);
    SN_ASSERT_RC(sn_ws_send_frame(ws, true, SN_WS_TEXT, "x", 1, 0), SN_EBADSTATE); /* not raw */
    SN_ASSERT_RC(sn_ws_close_send(ws, 1005, NULL, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_close_send(ws, 1015, NULL, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_close_send(ws, 0, "why", 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_close_send(ws, 1000, long_reason, 0), SN_EINVAL); /* 124 bytes */
    SN_ASSERT_RC(sn_ws_close_send(ws, 4000, "\xff", 0), SN_EINVAL);
    /* a message open when the close goes: its next part fails and ends it */
    SN_ASSERT_RC(sn_ws_send_begin(ws, SN_WS_BINARY, 0), 0);
    SN_ASSERT_RC(sn_ws_send_part(ws, NULL, 1, false, 0), SN_EINVAL); /* still open */
    SN_ASSERT_RC(sn_ws_send_part(ws, "a", 1, false, sn_deadline_in(5000)), 0);
    SN_ASSERT_RC(sn_ws_close_send(ws, 1000, "bye", sn_deadline_in(5000)), 0);
    SN_ASSERT_RC(sn_ws_close_send(ws, 1001, NULL, 0), 0); /* already sent: nothing goes */
    SN_ASSERT_RC(sn_ws_send_part(ws, "b", 1, false, 0), SN_EBADSTATE);
    SN_ASSERT_RC(sn_ws_send_part(ws, "c", 1, true, 0), SN_EBADSTATE); /* ended */
    SN_ASSERT_RC(sn_ws_send_begin(ws, SN_WS_TEXT, 0), 0);             /* the lock was given back */
    SN_ASSERT_RC(sn_ws_send_part(ws, "d", 1, true, 0), SN_EBADSTATE);
    SN_ASSERT_RC(sn_ws_ping(ws, "p", 1, 0), SN_EBADSTATE);
    SN_ASSERT_RC(sn_ws_send(ws, SN_WS_TEXT, "e", 1, 0), SN_EBADSTATE);
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);

    /* raw mode: anything goes, and a close frame is the session's close */
    s = (struct srv){.mode = RECV_ONE};
    srv_start(&s, &c);
    sn_ws_config raw = {.raw = SN_ON};
    SN_ASSERT_RC(client(&ws, c, &raw, NULL), 0);
    SN_ASSERT_RC(sn_ws_send_frame(NULL, true, SN_WS_TEXT, "x", 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_send_frame(ws, true, 16, "x", 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_send_frame(ws, true, SN_WS_TEXT, NULL, 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_send_frame(ws, true, SN_WS_CLOSE, "\x03\xe8", 2, sn_deadline_in(5000)), 0);
    SN_ASSERT_RC(sn_ws_close_send(ws, 1000, NULL, 0), 0);
    SN_ASSERT_RC(sn_ws_send(ws, SN_WS_TEXT, "x", 1, 0), SN_EBADSTATE);
    SN_ASSERT_RC(sn_ws_send_frame(ws, true, SN_WS_TEXT, "x", 1, sn_deadline_in(5000)), 0);
    sn_ws_free(ws);
    sn_conn_free(c);
    srv_join(&s);
}

/* A session with permessage-deflate is made whole or not at all: each
 * allocation of sn__ws_new (the session, its target, the compressor, the
 * decompressor) may fail, giving SN_ENOMEM and leaking nothing. */
static void test_new_without_memory(void)
{
    sn_sock *a, *b;
    sn_conn *c;
    sn_ws *ws = NULL;
    sn_ws_config cfg;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    SN_ASSERT_RC(sn_conn_new(&c, a, NULL), 0);
    SN_ASSERT_RC(sn__ws_config_check(&cfg, &(sn_ws_config){.deflate = SN_ON}), 0);
    sn__pmd pmd = {.on = true, .tx_bits = 15, .rx_bits = 15};
    int rc = SN_ENOMEM;
    long n;
    for (n = 0; rc == SN_ENOMEM && n < 16; n++) {
        sn__alloc_fail_after(n);
        rc = sn__ws_new(&ws, c, true, &cfg, &pmd, NULL, 0, "/", 1);
        sn__alloc_fail_after(-1);
    }
    SN_ASSERT_RC(rc, 0);
    CU_ASSERT_EQUAL(n, 5); /* four allocations failed in turn */
    sn_ws_free(ws);
    sn_conn_free(c);
    sn_sock_free(b);
}

static void test_bad_arguments(void)
{
    sn_ws *ws;
    SN_ASSERT_RC(sn_ws_connect(&ws, "http://x/", NULL, NULL, NULL, 0), SN_EBADADDR);
    SN_ASSERT_RC(sn_ws_connect(&ws, "ws:///x", NULL, NULL, NULL, 0), SN_EBADADDR);
    sn_ws_config bad = {.deflate_cfg = {.server_max_window_bits = 16}};
    SN_ASSERT_RC(sn_ws_connect(&ws, "ws://127.0.0.1:1/", NULL, &bad, NULL, sn_deadline_in(1000)),
                 SN_ECONNREFUSED); /* the connect fails first */
    SN_ASSERT_RC(sn_ws_send(NULL, SN_WS_TEXT, "x", 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_ws_ping(NULL, NULL, 0, 0), SN_EINVAL);
    sn_ws_free(NULL);
}

static CU_TestInfo tests[] = {
    {"cancel: a receive blocked with no deadline", test_cancel_blocked_recv},
    {"echo of every size", test_echo},
    {"echo with a masking server", test_echo_server_masks},
    {"permessage-deflate: offers, answers, windows, takeover", test_deflate_settings},
    {"subprotocols: the server's preference", test_subprotocols},
    {"fragments with pings between them, UTF-8 cut anywhere", test_fragments},
    {"sends from four threads while one receives", test_send_from_other_threads},
    {"messages streamed in pieces both ways, with and without deflate", test_streaming},
    {"ping period, then a silent peer: close 1011", test_ping_period},
    {"raw mode sends no pings", test_raw_no_pings},
    {"a receive deadline is not sticky; close codes", test_recv_deadline_not_sticky},
    {"a receive deadline inside a message still applies", test_recv_deadline_inside_message},
    {"a peer breaking the rules gets the right close code", test_protocol_violations},
    {"pings answered; a close without a code", test_ping_answered},
    {"handshakes refused: 426, 405, 400", test_refusals},
    {"the client rejects bad answers", test_client_rejects_bad_answers},
    {"the client reads list fields on every line, others once", test_client_reads_lists},
    {"the send calls return what ws.h says", test_send_contracts},
    {"a session with deflate is made whole or not at all (no memory)", test_new_without_memory},
    {"bad arguments", test_bad_arguments},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("ws", tests, 120);
}
