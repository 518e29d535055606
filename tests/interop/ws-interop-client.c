/* SPDX-License-Identifier: MIT */
/*
 * ws-interop-client: the library's WebSocket client against a real peer,
 * the npm `ws` server of tests/interop/ws-server.js (started by run.js).
 *
 *   ws-interop-client [--deflate] [--server-deflate] ws://127.0.0.1:PORT
 *
 * --deflate offers permessage-deflate; --server-deflate says the server
 * accepts it, so that the client checks what was agreed. Messages of 0 B
 * to 8 MiB, text and binary, whole and in fragments, must come back byte
 * for byte; pings from the server are answered with their payload; pings
 * sent in raw mode get their pongs; close codes and reasons go both ways;
 * a peer's invalid UTF-8 and a message over the limit get 1007 and 1009.
 * Prints "ws-interop-client: N checks passed" and exits 0, or prints the
 * first failure and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <socknet.h>

#define T_MS 30000
#define MAX (8u << 20)

static int checks;
static const char *base;
static bool offer, agreed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "ws-interop-client: %s:%d: ", __FILE__, __LINE__);                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
        checks++;                                                                                  \
    } while (0)

/* xorshift32: the same bytes on every run. */
static uint32_t next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* n bytes: random, a compressible pattern, or UTF-8 text of 1- to 4-byte
 * characters (filled up with ASCII where a character would not fit). */
static void fill(uint8_t *p, size_t n, int kind, uint32_t seed)
{
    static const char *const chars[] = {
        "a", "echo ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "z", "\xe4\xb8\xad"};
    uint32_t x = seed | 1;
    size_t i = 0;
    while (i < n) {
        if (kind == 0) {
            p[i++] = (uint8_t)next(&x);
        } else if (kind == 1) {
            p[i] = (uint8_t)((i % 251) ^ ((i >> 12) & 0xff));
            i++;
        } else {
            const char *c = chars[next(&x) % (sizeof chars / sizeof chars[0])];
            size_t len = strlen(c);
            if (i + len > n)
                c = "x", len = 1;
            memcpy(p + i, c, len);
            i += len;
        }
    }
}

static sn_ws *open_ws(const char *path, const sn_ws_config *cfg)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    sn_ws *ws;
    int status = 0;
    int rc = sn_ws_connect(&ws, url, NULL, cfg, &status, sn_deadline_in(T_MS));
    CHECK(rc == 0, "connect %s: %s (HTTP %d)", url, sn_strerror(rc), status);
    CHECK(status == 101, "connect %s: HTTP %d", url, status);
    return ws;
}

static sn_ws *open_default(const char *path)
{
    sn_ws_config cfg = {.deflate = offer ? SN_ON : SN_OFF};
    sn_ws *ws = open_ws(path, &cfg);
    CHECK(sn_ws_deflate_on(ws) == agreed, "%s: deflate %s", path,
          sn_ws_deflate_on(ws) ? "on" : "off");
    return ws;
}

static void recv_msg(sn_ws *ws, sn_ws_msg *m, const char *what)
{
    int rc = sn_ws_recv(ws, m, sn_deadline_in(T_MS));
    CHECK(rc == 0, "%s: receive: %s", what, sn_strerror(rc));
}

static void expect(sn_ws *ws, int type, const void *data, size_t len, const char *what)
{
    sn_ws_msg m;
    recv_msg(ws, &m, what);
    CHECK(m.type == type, "%s: type %d back", what, m.type);
    CHECK(m.len == len, "%s: %zu bytes back, %zu sent", what, m.len, len);
    CHECK(len == 0 || memcmp(m.data, data, len) == 0, "%s: bytes differ", what);
}

static void echo(sn_ws *ws, int type, const void *data, size_t len, const char *what)
{
    int rc = sn_ws_send(ws, type, data, len, sn_deadline_in(T_MS));
    CHECK(rc == 0, "%s: send: %s", what, sn_strerror(rc));
    expect(ws, type, data, len, what);
}

/* The reason of the last close the server got from a client. */
static void expect_last_close(const char *prefix)
{
    sn_ws *ws = open_default("/last-close");
    sn_ws_msg m;
    recv_msg(ws, &m, "last close");
    CHECK(m.type == SN_WS_TEXT && m.len >= strlen(prefix) &&
              memcmp(m.data, prefix, strlen(prefix)) == 0,
          "the server saw the close as '%.*s', not '%s'", (int)m.len, (const char *)m.data, prefix);
    CHECK(sn_ws_recv(ws, &m, sn_deadline_in(T_MS)) == SN_ECLOSED, "last close: no close");
    sn_ws_free(ws);
}

static void sizes(uint8_t *buf)
{
    static const size_t ns[] = {0, 1, 125, 126, 127, 65535, 65536, 65537, 1u << 20, MAX};
    char what[64];
    sn_ws *ws = open_default("/echo");
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        for (int kind = 0; kind < 3; kind++) {
            snprintf(what, sizeof what, "%zu B of kind %d", ns[i], kind);
            fill(buf, ns[i], kind, (uint32_t)(ns[i] + (size_t)kind));
            echo(ws, kind == 2 ? SN_WS_TEXT : SN_WS_BINARY, buf, ns[i], what);
        }
    }
    /* a message sent in three fragments comes back whole */
    fill(buf, 300000, 2, 99);
    sn_deadline dl = sn_deadline_in(T_MS);
    int rc = sn_ws_send_begin(ws, SN_WS_TEXT, dl);
    for (size_t off = 0; rc == 0 && off < 300000; off += 100000)
        rc = sn_ws_send_part(ws, buf + off, 100000, off == 200000, dl);
    CHECK(rc == 0, "fragments: %s", sn_strerror(rc));
    expect(ws, SN_WS_TEXT, buf, 300000, "fragmented text");
    /* pipelined messages come back in order */
    for (int i = 0; i < 200; i++) {
        snprintf(what, sizeof what, "message %d", i);
        CHECK(sn_ws_send(ws, SN_WS_TEXT, what, strlen(what), sn_deadline_in(T_MS)) == 0, "send");
    }
    for (int i = 0; i < 200; i++) {
        char want[64];
        snprintf(want, sizeof want, "message %d", i);
        expect(ws, SN_WS_TEXT, want, strlen(want), "pipelined");
    }
    /* our close: the server echoes code and reason, and saw them */
    int code = agreed ? 4012 : offer ? 4011 : 4010;
    rc = sn_ws_close(ws, code, "client bye \xc3\xbc", sn_deadline_in(T_MS));
    CHECK(rc == 0, "close: %s", sn_strerror(rc));
    CHECK(sn_ws_close_code(ws) == code, "close: code %d back", sn_ws_close_code(ws));
    CHECK(strcmp(sn_ws_close_reason(ws), "client bye \xc3\xbc") == 0, "close: reason '%s' back",
          sn_ws_close_reason(ws));
    sn_ws_free(ws);
    char want[64];
    snprintf(want, sizeof want, "%d client bye \xc3\xbc", code);
    expect_last_close(want);
}

/* What the server sends of itself: fragments, pings, closes, bad text. */
static void from_server(void)
{
    sn_ws_msg m;
    sn_ws *ws = open_default("/fragments?n=100000");
    recv_msg(ws, &m, "fragments");
    CHECK(m.type == SN_WS_TEXT && m.len == 100000, "fragments: type %d, %zu bytes", m.type, m.len);
    uint8_t *copy = malloc(m.len);
    CHECK(copy != NULL, "no memory");
    memcpy(copy, m.data, m.len);
    echo(ws, SN_WS_TEXT, copy, 100000, "fragmented message echoed");
    free(copy);
    CHECK(sn_ws_close(ws, SN_WS_NORMAL, NULL, sn_deadline_in(T_MS)) == 0, "close");
    sn_ws_free(ws);

    ws = open_default("/ping?data=hello-from-ws");
    recv_msg(ws, &m, "ping");
    CHECK(m.len == 18 && memcmp(m.data, "pong:hello-from-ws", 18) == 0,
          "the server saw the pong as '%.*s'", (int)m.len, (const char *)m.data);
    CHECK(sn_ws_close(ws, SN_WS_NORMAL, NULL, sn_deadline_in(T_MS)) == 0, "close");
    sn_ws_free(ws);

    ws = open_default("/close?code=4003&reason=server%20bye%20%C3%BC");
    int rc = sn_ws_recv(ws, &m, sn_deadline_in(T_MS));
    CHECK(rc == SN_ECLOSED, "server close: %s", sn_strerror(rc));
    CHECK(sn_ws_close_code(ws) == 4003, "server close: code %d", sn_ws_close_code(ws));
    CHECK(strcmp(sn_ws_close_reason(ws), "server bye \xc3\xbc") == 0, "server close: reason '%s'",
          sn_ws_close_reason(ws));
    sn_ws_free(ws);
    expect_last_close("4003 ");

    ws = open_default("/bad-utf8");
    rc = sn_ws_recv(ws, &m, sn_deadline_in(T_MS));
    CHECK(rc == SN_EWS_UTF8, "invalid UTF-8: %s", sn_strerror(rc));
    sn_ws_free(ws);
    expect_last_close("1007 ");

    sn_ws_config small = {.deflate = offer ? SN_ON : SN_OFF, .max_message = 1000};
    ws = open_ws("/echo", &small);
    uint8_t big[2000];
    fill(big, sizeof big, 1, 5);
    CHECK(sn_ws_send(ws, SN_WS_BINARY, big, sizeof big, sn_deadline_in(T_MS)) == 0, "send");
    rc = sn_ws_recv(ws, &m, sn_deadline_in(T_MS));
    CHECK(rc == SN_EWS_TOO_BIG, "too big: %s", sn_strerror(rc));
    sn_ws_free(ws);
    expect_last_close("1009 ");
}

/* Raw mode: our pings get pongs with their payload, frames go as given. */
static void raw(void)
{
    sn_ws_config cfg = {.raw = SN_ON};
    sn_ws *ws = open_ws("/echo", &cfg);
    sn_ws_frame f;
    sn_deadline dl = sn_deadline_in(T_MS);
    CHECK(sn_ws_send_frame(ws, true, SN_WS_PING, "raw ping", 8, dl) == 0, "ping");
    CHECK(sn_ws_recv_frame(ws, &f, dl) == 0, "pong");
    CHECK(f.opcode == SN_WS_PONG && f.fin && f.len == 8 && memcmp(f.data, "raw ping", 8) == 0,
          "pong: opcode %d, %zu bytes", f.opcode, f.len);
    CHECK(sn_ws_send_frame(ws, false, SN_WS_BINARY, "ab", 2, dl) == 0, "fragment");
    CHECK(sn_ws_send_frame(ws, true, SN_WS_PING, NULL, 0, dl) == 0, "ping between fragments");
    CHECK(sn_ws_send_frame(ws, true, SN_WS_CONTINUATION, "cd", 2, dl) == 0, "fragment");
    CHECK(sn_ws_recv_frame(ws, &f, dl) == 0 && f.opcode == SN_WS_PONG && f.len == 0,
          "pong between fragments");
    CHECK(sn_ws_recv_frame(ws, &f, dl) == 0, "echo");
    CHECK(f.opcode == SN_WS_BINARY && f.fin && f.len == 4 && memcmp(f.data, "abcd", 4) == 0,
          "echo of fragments: opcode %d, %zu bytes", f.opcode, f.len);
    CHECK(sn_ws_close(ws, 4020, "raw", dl) == 0, "raw close");
    sn_ws_free(ws);
    expect_last_close("4020 raw");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--deflate") == 0)
            offer = true;
        else if (strcmp(argv[i], "--server-deflate") == 0)
            agreed = true;
        else
            base = argv[i];
    }
    if (base == NULL || strncmp(base, "ws://", 5) != 0) {
        fprintf(stderr, "usage: ws-interop-client [--deflate] [--server-deflate] ws://H:PORT\n");
        return 2;
    }
    agreed = agreed && offer;
    uint8_t *buf = malloc(MAX);
    CHECK(buf != NULL, "no memory");
    sizes(buf);
    from_server();
    if (!offer)
        raw();
    free(buf);
    printf("ws-interop-client: %d checks passed\n", checks);
    return 0;
}
