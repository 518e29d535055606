/* SPDX-License-Identifier: MIT */
/*
 * ws-peer.h: a hub member for the hub's tests (test-hub, test-hub-redis): a
 * server session over a loopback TCP pair that the hub writes to, and the
 * client's end, read frame by frame. Static inline functions in a header,
 * as tests/sn_test.h's macros: each test stays one program.
 */
#ifndef SN_TEST_WS_PEER_H
#define SN_TEST_WS_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "sn_test.h"
#include "sn_ws_int.h"

/* ---- a member: a server session the hub writes to, its client's socket ---------- */

typedef struct peer {
    sn_conn *server; /* the session's connection */
    sn_ws *ws;
    sn_conn *client; /* reads what the hub sent */
} peer;

static inline void small_buffers(int fd, int opt)
{
    int v = 4096;
    setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

static inline void peer_open(peer *p, bool small)
{
    sn_sock *a, *b;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    if (small) {
        small_buffers(sn_sock_fd(a), SO_RCVBUF);
        small_buffers(sn_sock_fd(b), SO_SNDBUF);
    }
    SN_ASSERT_RC(sn_conn_new(&p->client, a, NULL), 0);
    SN_ASSERT_RC(sn_conn_new(&p->server, b, NULL), 0);
    sn_ws_config cfg;
    sn__pmd pmd = {0};
    SN_ASSERT_RC(sn__ws_config_check(&cfg, NULL), 0);
    SN_ASSERT_RC(sn__ws_new(&p->ws, p->server, true, &cfg, &pmd, NULL, 0, "/", 1), 0);
}

/* sn_ws_free leaves the session's rooms by itself. */
static inline void peer_close(peer *p)
{
    sn_ws_free(p->ws);
    sn_conn_free(p->server);
    sn_conn_free(p->client);
    p->ws = NULL;
}

/* Reads one unmasked frame: its payload's length (into buf, cap bytes at
 * most) and *op, or an error (*op then -1 if no header came). */
static inline long read_frame(sn_conn *c, int *op, char *buf, size_t cap, int ms)
{
    uint8_t h[8];
    sn_deadline dl = sn_deadline_in(ms);
    *op = -1; /* no frame yet */
    ssize_t rc = sn_read_exact(c, h, 2, dl);
    if (rc < 0)
        return rc;
    *op = h[0] & 0x0f;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        if ((rc = sn_read_exact(c, h, 2, dl)) < 0)
            return rc;
        len = (uint64_t)h[0] << 8 | h[1];
    } else if (len == 127) {
        if ((rc = sn_read_exact(c, h, 8, dl)) < 0)
            return rc;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[i];
    }
    if (len > cap)
        return SN_ETOOBIG;
    if (len > 0 && (rc = sn_read_exact(c, buf, len, dl)) < 0)
        return rc;
    return (long)len;
}

#endif
