/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ws-recv: a WebSocket session receiving what a peer sent, as bytes on
 * a real socket: frame headers, payloads, fragments, control frames between
 * them, closes, UTF-8 and permessage-deflate, through sn_ws_recv (or
 * sn_ws_recv_frame in raw mode) until the session ends. The first byte
 * chooses server or client, deflate and its window bits, context takeover,
 * raw mode and UTF-8 validation; the rest is what the peer sent, followed
 * by the end of the stream. A thread drains what the session answers
 * (pongs, its close). Properties: the session ends, with an error the
 * header documents and before its deadline (so nothing waits on data that
 * is there); every message is within the limit and, as text, UTF-8 ending
 * in a NUL; nothing leaks (LeakSanitizer).
 */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include "fuzz.h"
#include "sn_ws_frame.h"
#include "sn_ws_int.h"

#define MAX_MESSAGE 65536

static void *drain(void *arg)
{
    char buf[16384];
    while (read(*(int *)arg, buf, sizeof buf) > 0)
        ;
    return NULL;
}

static bool ended_well(int rc)
{
    return rc == SN_ECLOSED || rc == SN_EWS_PROTOCOL || rc == SN_EWS_UTF8 || rc == SN_EWS_TOO_BIG ||
           rc == SN_EWS_DEFLATE || rc == SN_EOF || rc == SN_EBADSTATE || rc == SN_ECONNRESET ||
           rc == SN_EPIPE;
}

static int receive_all(sn_ws *ws, bool raw, bool utf8)
{
    sn_deadline dl = sn_deadline_in(10000);
    int rc;
    if (raw) {
        sn_ws_frame f;
        while ((rc = sn_ws_recv_frame(ws, &f, dl)) == 0)
            FUZZ_ASSERT(f.len <= MAX_MESSAGE && f.opcode >= 0 && f.opcode < 16);
        return rc;
    }
    sn_ws_msg m;
    while ((rc = sn_ws_recv(ws, &m, dl)) == 0) {
        FUZZ_ASSERT(m.len <= MAX_MESSAGE);
        FUZZ_ASSERT(m.type == SN_WS_TEXT || m.type == SN_WS_BINARY);
        if (m.type == SN_WS_TEXT) {
            FUZZ_ASSERT(((const char *)m.data)[m.len] == '\0');
            FUZZ_ASSERT(!utf8 || sn__utf8_step(0, m.data, m.len) == 0);
        }
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    uint8_t o = data[0];
    bool server = o & 1, raw = (o & 0xc0) == 0xc0, utf8 = (o & 0xc0) != 0x80;
    sn__pmd pmd = {
        .on = (o & 2) && !raw, .rx_bits = 8 + ((o >> 2) & 7), .tx_bits = 15, .rx_reset = o & 0x20};
    sn_ws_config in = {.max_frame = MAX_MESSAGE,
                       .max_message = MAX_MESSAGE,
                       .close_timeout_ms = 1000,
                       .raw = raw ? SN_ON : SN_OFF,
                       .utf8 = utf8 ? SN_ON : SN_OFF,
                       .deflate = pmd.on ? SN_ON : SN_OFF};
    sn_ws_config cfg;
    FUZZ_ASSERT(sn__ws_config_check(&cfg, &in) == 0);

    int sv[2];
    FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    FUZZ_ASSERT(write(sv[1], data + 1, size - 1) == (ssize_t)(size - 1));
    shutdown(sv[1], SHUT_WR);
    pthread_t t;
    FUZZ_ASSERT(pthread_create(&t, NULL, drain, &sv[1]) == 0);

    sn_sock *s;
    sn_conn *c;
    sn_ws *ws;
    FUZZ_ASSERT(sn_sock_from_fd(&s, sv[0]) == 0);
    FUZZ_ASSERT(sn_conn_new(&c, s, NULL) == 0);
    FUZZ_ASSERT(sn__ws_new(&ws, c, server, &cfg, &pmd, NULL, 0, "/", 1) == 0);
    int rc = receive_all(ws, raw, utf8);
    if (!ended_well(rc)) {
        fprintf(stderr, "fuzz-ws-recv: the session ended with %s\n", sn_err_name(rc));
        abort();
    }
    sn_ws_close_code(ws);
    sn_ws_free(ws);
    sn_conn_free(c); /* closes sv[0]: the drain thread sees the end */
    pthread_join(t, NULL);
    close(sv[1]);
    return 0;
}
