/* SPDX-License-Identifier: MIT */
/*
 * sn_ws.c: the WebSocket session after the handshake: frames in and out,
 * whole messages (reassembled, inflated, validated), fragments, control
 * frames, pings on a period, the close handshake, raw mode.
 *
 * Receiving is straight-line blocking code: wait for a frame's first byte,
 * read its header, read its payload in chunks (unmasked, inflated and
 * UTF-8-checked chunk by chunk, so a bad byte fails at once and a bomb stops
 * at the limit), and loop until a data frame with FIN. Every one of those
 * waits keeps the session's liveness: pings on their period, and a failure
 * when one goes unanswered (see live_until). A peer's error is answered
 * with a close carrying the code of RFC 6455 section 7.4.1 and the error is
 * sticky.
 *
 * Locks, in the order they are taken: msg_lock (a whole message, or a
 * fragmented one from begin to end), then frame_lock (one frame). Control
 * frames take frame_lock only, so they can go between a message's
 * fragments. Both are sn__locks (sn_wait.h): a fiber that finds one taken
 * parks until it is given, instead of blocking its thread, which may run
 * the holder.
 */
#include <stdatomic.h>
#include <string.h>
#include "sn_bytes.h"
#include "sn_sock_int.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "sn_ws_deflate.h"
#include "sn_ws_frame.h"
#include "sn_ws_int.h"
#include "socknet.h"

#define SN_WS_CHUNK 65536 /* payload bytes read (and checked) at a time */
#define SN_WS_MAX_DEFAULT (16u << 20)
#define SN_WS_TIMEOUT_DEFAULT 15000
#define SN_WS_CLOSE_TIMEOUT_DEFAULT 5000

/* ---- making and freeing ------------------------------------------------------------ */

int sn__ws_config_check(sn_ws_config *out, const sn_ws_config *cfg)
{
    sn_ws_config c = {0};
    if (cfg != NULL)
        c = *cfg;
    const sn_ws_deflate_config *d = &c.deflate_cfg;
    if (c.ping_period_ms < 0 || c.timeout_ms < 0 || c.close_timeout_ms < 0 || d->level < 0 ||
        d->level > 9 || d->mem_level < 0 || d->mem_level > 9 ||
        (d->client_max_window_bits != 0 &&
         (d->client_max_window_bits < 8 || d->client_max_window_bits > 15)) ||
        (d->server_max_window_bits != 0 &&
         (d->server_max_window_bits < 8 || d->server_max_window_bits > 15)) ||
        (c.subprotocols == NULL && c.nsubprotocols > 0))
        return SN_EINVAL;
    if (c.max_frame == 0)
        c.max_frame = SN_WS_MAX_DEFAULT;
    if (c.max_message == 0)
        c.max_message = SN_WS_MAX_DEFAULT;
    if (c.timeout_ms == 0)
        c.timeout_ms = SN_WS_TIMEOUT_DEFAULT;
    if (c.close_timeout_ms == 0)
        c.close_timeout_ms = SN_WS_CLOSE_TIMEOUT_DEFAULT;
    if (c.deflate_cfg.level == 0)
        c.deflate_cfg.level = 1; /* zlib's fastest: see ws.h */
    if (c.deflate_cfg.mem_level == 0)
        c.deflate_cfg.mem_level = 8;
    if (c.deflate_cfg.threshold == 0)
        c.deflate_cfg.threshold = 64;
    if (c.deflate_cfg.client_max_window_bits == 0)
        c.deflate_cfg.client_max_window_bits = 15;
    if (c.deflate_cfg.server_max_window_bits == 0)
        c.deflate_cfg.server_max_window_bits = 15;
    if (c.raw == SN_ON) {
        c.deflate = SN_OFF;   /* raw mode hands frames over as they are */
        c.ping_period_ms = 0; /* and sends nothing by itself */
    }
    *out = c;
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = sn__malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int sn__ws_new(sn_ws **out, sn_conn *c, bool server, const sn_ws_config *cfg, const sn__pmd *pmd,
               const char *subprotocol, size_t subprotocol_len, const char *target,
               size_t target_len)
{
    sn_ws *ws = sn__calloc(1, sizeof *ws);
    if (ws == NULL)
        return SN_ENOMEM;
    ws->c = c;
    ws->server = server;
    ws->cfg = *cfg;
    ws->cfg.subprotocols = NULL;
    ws->cfg.nsubprotocols = 0;
    ws->mask_out = !server || cfg->mask == SN_ON;
    /* a client with mask on also takes masked frames, from a server that
     * was asked to mask (not RFC 6455: a client must refuse them) */
    ws->masking_in = server ? SN_WS_MASKED : cfg->mask == SN_ON ? SN_WS_EITHER : SN_WS_UNMASKED;
    ws->pmd = *pmd;
    ws->msg.budget = cfg->budget;
    ws->last_ping = sn_now_ms(); /* the first ping waits a period too */
    sn__lock_init(&ws->msg_lock);
    sn__lock_init(&ws->frame_lock);
    int rc = 0;
    if (subprotocol != NULL && (ws->subprotocol = dup_n(subprotocol, subprotocol_len)) == NULL)
        rc = SN_ENOMEM;
    if (rc == 0 && (ws->target = dup_n(target, target_len)) == NULL)
        rc = SN_ENOMEM;
    if (rc == 0 && ws->mask_out) {
        if (wc_InitRng(&ws->rng) != 0)
            rc = SN_ENOMEM;
        else
            ws->rng_ready = true;
    }
    if (rc == 0 && pmd->on) {
        const sn_ws_deflate_config *d = &cfg->deflate_cfg;
        rc = sn__deflate_new(&ws->def, pmd->tx_bits, pmd->tx_reset, d->level, d->mem_level);
        if (rc == 0)
            rc = sn__inflate_new(&ws->inf, pmd->rx_bits, pmd->rx_reset);
    }
    if (rc < 0) {
        sn_ws_free(ws);
        return rc;
    }
    *out = ws;
    return 0;
}

int sn_ws_cancel(sn_ws *ws)
{
    return ws == NULL ? SN_EINVAL : sn_conn_cancel(ws->c);
}

void sn_ws_free(sn_ws *ws)
{
    if (ws == NULL)
        return;
    if (ws->ext_release != NULL)
        ws->ext_release(ws, ws->ext);
    sn__deflate_free(ws->def);
    sn__inflate_free(ws->inf);
    sn__bytes_free(&ws->msg);
    sn__free(ws->zin);
    sn__bytes_free(&ws->zout);
    sn__bytes_free(&ws->masked);
    if (ws->frag_type != 0) /* freed in the middle of a message sent in parts */
        sn__lock_give(&ws->msg_lock);
    if (ws->rng_ready)
        wc_FreeRng(&ws->rng);
    sn__lock_destroy(&ws->msg_lock);
    sn__lock_destroy(&ws->frame_lock);
    if (ws->own_conn)
        sn_conn_free(ws->c);
    sn__free(ws->subprotocol);
    sn__free(ws->target);
    sn__free(ws);
}

const char *sn_ws_target(const sn_ws *ws)
{
    return ws != NULL ? ws->target : NULL;
}

sn_conn *sn_ws_conn(sn_ws *ws)
{
    return ws != NULL ? ws->c : NULL;
}

const char *sn_ws_subprotocol(const sn_ws *ws)
{
    return ws != NULL ? ws->subprotocol : NULL;
}

bool sn_ws_deflate_on(const sn_ws *ws)
{
    return ws != NULL && ws->pmd.on;
}

int sn_ws_close_code(const sn_ws *ws)
{
    return ws != NULL ? atomic_load(&ws->close_code) : 0;
}

const char *sn_ws_close_reason(const sn_ws *ws)
{
    return ws != NULL ? ws->close_reason : "";
}

/* ---- sending frames (frame_lock held) -------------------------------------------- */

static int64_t send_deadline(const sn_ws *ws, sn_deadline dl)
{
    return sn__deadline_abs(dl, sn_conn_sock(ws->c)->write_timeout_ms);
}

/* One frame: header, then the payload (masked through a scratch buffer
 * when the session masks, else straight from the caller's memory). The
 * caller flushes. */
static int put_frame(sn_ws *ws, bool fin, uint8_t rsv, uint8_t opcode, const void *data, size_t len,
                     int64_t dl)
{
    uint8_t head[SN_WS_HEAD_MAX], key[4];
    if (ws->mask_out && wc_RNG_GenerateBlock(&ws->rng, key, sizeof key) != 0)
        return SN_EIO;
    size_t hlen = sn__ws_head_encode(head, fin, rsv, opcode, ws->mask_out ? key : NULL, len);
    if (!ws->mask_out) {
        struct iovec iov[2] = {{head, hlen}, {(void *)data, len}};
        ssize_t rc = sn_writev(ws->c, iov, len > 0 ? 2 : 1, dl);
        return rc < 0 ? (int)rc : 0;
    }
    ssize_t rc = sn_write(ws->c, head, hlen, dl);
    for (size_t off = 0; rc >= 0 && off < len; off += SN_WS_CHUNK) {
        size_t n = SN_MIN(len - off, (size_t)SN_WS_CHUNK);
        ws->masked.len = 0;
        if (sn__bytes_reserve(&ws->masked, n) < 0)
            return SN_ENOMEM;
        memcpy(ws->masked.p, (const uint8_t *)data + off, n);
        sn__ws_mask(ws->masked.p, n, key, off);
        rc = sn_write(ws->c, ws->masked.p, n, dl);
    }
    return rc < 0 ? (int)rc : 0;
}

/* A control frame, whole and flushed, between any other frames. */
static int send_control(sn_ws *ws, uint8_t opcode, const void *data, size_t len, int64_t dl)
{
    sn__lock_take(&ws->frame_lock);
    int rc = SN_EBADSTATE;
    if (!atomic_load(&ws->close_sent) || opcode != SN_WS_CLOSE) {
        if (atomic_load(&ws->close_sent))
            rc = SN_EBADSTATE; /* nothing after a close */
        else if ((rc = put_frame(ws, true, 0, opcode, data, len, dl)) == 0)
            rc = sn_flush(ws->c, dl);
        if (rc == 0 && opcode == SN_WS_CLOSE)
            atomic_store(&ws->close_sent, true);
    }
    sn__lock_give(&ws->frame_lock);
    return rc;
}

/* A close frame's payload: the code (0 = none) and the reason. */
static int close_payload(uint8_t out[125], int code, const char *reason, size_t *len)
{
    if (reason == NULL)
        reason = ""; /* not NULL: memcpy and the validator get a real pointer */
    size_t rlen = strlen(reason);
    if (code == 0) {
        *len = 0;
        return rlen == 0 ? 0 : SN_EINVAL; /* a reason needs a code */
    }
    if (!sn__ws_close_code_ok(code) || rlen > 123 ||
        sn__utf8_step(0, (const uint8_t *)reason, rlen) != 0)
        return SN_EINVAL;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (rlen > 0) /* reason may be NULL */
        memcpy(out + 2, reason, rlen);
    *len = 2 + rlen;
    return 0;
}

int sn_ws_close_send(sn_ws *ws, int code, const char *reason, sn_deadline dl)
{
    uint8_t p[125];
    size_t len;
    if (ws == NULL)
        return SN_EINVAL;
    int rc = close_payload(p, code, reason, &len);
    if (rc < 0)
        return rc;
    if (atomic_load(&ws->close_sent))
        return 0;
    rc = send_control(ws, SN_WS_CLOSE, p, len, send_deadline(ws, dl));
    return rc == SN_EBADSTATE ? 0 : rc; /* another thread sent one meanwhile */
}

int sn_ws_ping(sn_ws *ws, const void *data, size_t len, sn_deadline dl)
{
    if (ws == NULL || len > 125 || (data == NULL && len > 0))
        return SN_EINVAL;
    return send_control(ws, SN_WS_PING, data, len, send_deadline(ws, dl));
}

/* ---- sending messages ---------------------------------------------------------------- */

static bool data_type_ok(int type)
{
    return type == SN_WS_TEXT || type == SN_WS_BINARY;
}

int sn_ws_send(sn_ws *ws, int type, const void *data, size_t len, sn_deadline dl)
{
    if (ws == NULL || !data_type_ok(type) || (data == NULL && len > 0))
        return SN_EINVAL;
    int64_t deadline = send_deadline(ws, dl);
    sn__lock_take(&ws->msg_lock);
    int rc = 0;
    uint8_t rsv = 0;
    if (ws->pmd.on && len >= ws->cfg.deflate_cfg.threshold) {
        ws->zout.len = 0;
        rc = sn__deflate_push(ws->def, data, len, true, &ws->zout);
        data = ws->zout.p;
        len = ws->zout.len;
        rsv = 4;
    }
    if (rc == 0) {
        sn__lock_take(&ws->frame_lock);
        if (atomic_load(&ws->close_sent))
            rc = SN_EBADSTATE;
        else if ((rc = put_frame(ws, true, rsv, (uint8_t)type, data, len, deadline)) == 0)
            rc = sn_flush(ws->c, deadline);
        sn__lock_give(&ws->frame_lock);
    }
    sn__lock_give(&ws->msg_lock);
    return rc;
}

int sn_ws_send_begin(sn_ws *ws, int type, sn_deadline dl)
{
    (void)dl;
    if (ws == NULL || !data_type_ok(type))
        return SN_EINVAL;
    sn__lock_take(&ws->msg_lock); /* held until the last part */
    ws->frag_type = type;
    ws->frag_first = true;
    ws->frag_z = ws->pmd.on; /* the length is unknown: compress the lot */
    return 0;
}

int sn_ws_send_part(sn_ws *ws, const void *data, size_t len, bool last, sn_deadline dl)
{
    if (ws == NULL || (data == NULL && len > 0))
        return SN_EINVAL;
    if (ws->frag_type == 0)
        return SN_EBADSTATE; /* no sn_ws_send_begin */
    int64_t deadline = send_deadline(ws, dl);
    int rc = 0;
    if (ws->frag_z) {
        ws->zout.len = 0;
        rc = sn__deflate_push(ws->def, data, len, last, &ws->zout);
        data = ws->zout.p;
        len = ws->zout.len;
    }
    uint8_t opcode = ws->frag_first ? (uint8_t)ws->frag_type : SN_WS_CONTINUATION;
    uint8_t rsv = ws->frag_first && ws->frag_z ? 4 : 0;
    if (rc == 0) {
        sn__lock_take(&ws->frame_lock);
        if (atomic_load(&ws->close_sent))
            rc = SN_EBADSTATE;
        else if ((rc = put_frame(ws, last, rsv, opcode, data, len, deadline)) == 0)
            rc = sn_flush(ws->c, deadline);
        sn__lock_give(&ws->frame_lock);
    }
    ws->frag_first = false;
    if (last || rc < 0) { /* an error ends the message too: the stream is broken */
        ws->frag_type = 0;
        sn__lock_give(&ws->msg_lock);
    }
    return rc;
}

int sn_ws_send_frame(sn_ws *ws, bool fin, int opcode, const void *data, size_t len, sn_deadline dl)
{
    if (ws == NULL || opcode < 0 || opcode > 15 || (data == NULL && len > 0))
        return SN_EINVAL;
    if (ws->cfg.raw != SN_ON)
        return SN_EBADSTATE;
    int64_t deadline = send_deadline(ws, dl);
    sn__lock_take(&ws->frame_lock);
    int rc = put_frame(ws, fin, 0, (uint8_t)opcode, data, len, deadline);
    if (rc == 0)
        rc = sn_flush(ws->c, deadline);
    if (rc == 0 && opcode == SN_WS_CLOSE)
        atomic_store(&ws->close_sent, true);
    sn__lock_give(&ws->frame_lock);
    return rc;
}

/* ---- receiving ----------------------------------------------------------------------- */

static int64_t recv_deadline(const sn_ws *ws, sn_deadline dl)
{
    return sn__deadline_abs(dl, sn_conn_sock(ws->c)->read_timeout_ms);
}

/* The session fails: the peer gets a close with code and the error's text as
 * its reason (when one is to be sent and none was), and err sticks. After
 * the peer's own error, the connection lingers (sn_conn_linger) for up to
 * close_timeout_ms: what the peer is still sending (the rest of a message
 * too big, say) is read and dropped until it closes, so that the close
 * reaches it instead of a reset. */
static int fail(sn_ws *ws, int code, int err)
{
    if (code != 0 && !atomic_load(&ws->close_sent)) {
        uint8_t p[125]; /* a control frame's payload at most */
        const char *why = sn_strerror(err);
        size_t n = strnlen(why, sizeof p - 2);
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        memcpy(p + 2, why, n);
        if (send_control(ws, SN_WS_CLOSE, p, 2 + n, sn_deadline_in(1000)) == 0 &&
            err != SN_ETIMEDOUT && err != SN_ESTOPPED)
            sn_conn_linger(ws->c, ws->cfg.close_timeout_ms);
    }
    if (ws->rerr == 0)
        ws->rerr = err;
    sn__bytes_free(&ws->msg); /* nothing more will be received: its budget goes back */
    if (atomic_load(&ws->close_code) == 0)
        atomic_store(&ws->close_code, SN_WS_ABNORMAL);
    return err;
}

/* Empties the message buffer for the next receive, and frees it when it
 * grew beyond its own allowance: an idle session keeps at most
 * SN__BYTES_OWN, and nothing of the budget. */
static void msg_reset(sn_ws *ws)
{
    ws->msg.len = 0;
    if (ws->msg.cap > SN__BYTES_OWN)
        sn__bytes_free(&ws->msg);
}

/* The close code for a receive error. */
static int code_for(int err)
{
    switch (err) {
    case SN_EWS_PROTOCOL:
        return SN_WS_PROTOCOL_ERROR;
    case SN_EWS_UTF8:
    case SN_EWS_DEFLATE:
        return SN_WS_INVALID_DATA;
    case SN_EWS_TOO_BIG:
        return SN_WS_TOO_BIG;
    case SN_EWS_BUSY:
        return SN_WS_TRY_AGAIN; /* the server's budget, not this message, is the limit */
    case SN_ESTOPPED:
        return SN_WS_GOING_AWAY; /* the server stops: reads end, writes still go */
    case SN_ENOMEM:
        return SN_WS_INTERNAL;
    default:
        return 0; /* the connection failed: nothing can be sent */
    }
}

/* Liveness, wherever a receive waits (for a frame, inside a header, inside
 * a payload, between fragments): a ping goes when ping_period_ms has passed
 * since the last one (or since the session began: the first waits a period
 * too), and the session fails when one goes unanswered for timeout_ms.
 * Between messages any frame answers; inside a message only a pong, or
 * SN_WS_ALIVE bytes of data payload (a peer inside a frame cannot send a
 * pong before the frame ends; a trickle is no answer). */
#define SN_WS_ALIVE 4096

/* When a wait must stop to look at the pings: the next one's time, the end
 * of the unanswered one's wait, or dl, whichever comes first. */
static int64_t live_until(const sn_ws *ws, int64_t dl)
{
    int64_t until = dl;
    if (ws->cfg.ping_period_ms > 0)
        until = SN_MIN(until, ws->last_ping + ws->cfg.ping_period_ms);
    if (ws->ping_sent_at != 0)
        until = SN_MIN(until, ws->ping_sent_at + ws->cfg.timeout_ms);
    return until;
}

/* After a wait stopped at live_until: fails the session (close 1011) when a
 * ping went unanswered for timeout_ms, sends a ping when one is due.
 * Returns 0 (wait again), SN_ETIMEDOUT (dl passed), or the error. */
static int live_tick(sn_ws *ws, int64_t dl)
{
    int64_t now = sn_now_ms();
    if (ws->ping_sent_at != 0 && now >= ws->ping_sent_at + ws->cfg.timeout_ms)
        return fail(ws, SN_WS_INTERNAL, SN_ETIMEDOUT); /* the peer is gone */
    int64_t period = ws->cfg.ping_period_ms;
    if (period > 0 && now >= ws->last_ping + period) {
        uint8_t stamp[8];
        for (int i = 0; i < 8; i++)
            stamp[i] = (uint8_t)(now >> (56 - 8 * i));
        int rc = send_control(ws, SN_WS_PING, stamp, sizeof stamp, sn_deadline_in(1000));
        if (rc < 0 && rc != SN_EBADSTATE)
            return rc;
        ws->last_ping = now;
        if (rc == 0 && ws->ping_sent_at == 0) { /* (none after our close) */
            ws->ping_sent_at = now;
            ws->alive_bytes = 0;
        }
        return 0;
    }
    return now >= dl ? SN_ETIMEDOUT : 0;
}

/* The peer answered the ping (or nothing was waiting for an answer). */
static void live_answered(sn_ws *ws)
{
    ws->ping_sent_at = 0;
}

/* Waits until n bytes are buffered, keeping liveness (sn_peek's returns). */
static ssize_t peek_live(sn_ws *ws, size_t n, const void **p, int64_t dl)
{
    for (;;) {
        ssize_t got = sn_peek(ws->c, n, p, live_until(ws, dl));
        if (got != SN_ETIMEDOUT)
            return got;
        int rc = live_tick(ws, dl);
        if (rc < 0)
            return rc;
    }
}

/* Waits for a frame's first byte until dl, keeping liveness. */
static int wait_frame(sn_ws *ws, int64_t dl)
{
    const void *p;
    ssize_t n = peek_live(ws, 1, &p, dl);
    if (n > 0)
        return 0;
    return n == SN_EOF ? SN_ECLOSED : (int)n;
}

/* Reads and decodes a frame header (its first byte is there). */
static int read_head(sn_ws *ws, sn__ws_head *h, int64_t dl)
{
    const void *p;
    ssize_t n = peek_live(ws, 2, &p, dl);
    for (;;) {
        if (n < 0)
            return n == SN_EOF ? SN_ECLOSED : (int)n;
        if (n < 2)
            return SN_ECLOSED; /* the stream ended inside a header */
        int rc = sn__ws_head_decode(p, (size_t)n, h);
        if (rc > 0)
            return sn_discard(ws->c, (size_t)rc, dl);
        if (rc < 0)
            return rc;
        size_t need = 2 + (((const uint8_t *)p)[1] & 0x80 ? 4 : 0);
        uint8_t l7 = ((const uint8_t *)p)[1] & 0x7f;
        need += l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
        if ((size_t)n >= need)
            return SN_EWS_PROTOCOL; /* not reached: decode had the bytes */
        n = peek_live(ws, need, &p, dl);
        if (n >= 0 && (size_t)n < need)
            return SN_ECLOSED; /* the stream ended inside a header */
    }
}

/* Reads len payload bytes into dst, unmasking them (pos: their offset in
 * the frame), keeping liveness; a data frame's bytes count towards an
 * answer to a ping. */
static int read_payload(sn_ws *ws, const sn__ws_head *h, uint8_t *dst, size_t len, uint64_t pos,
                        int64_t dl)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = sn_read(ws->c, dst + got, len - got, live_until(ws, dl)); /* large: no copy */
        if (n == SN_ETIMEDOUT) {
            int rc = live_tick(ws, dl);
            if (rc < 0)
                return rc;
            continue;
        }
        if (n < 0)
            return n == SN_EOF ? SN_ECLOSED : (int)n;
        got += (size_t)n;
        if (h->opcode < SN_WS_CLOSE && ws->ping_sent_at != 0 &&
            (ws->alive_bytes += (size_t)n) >= SN_WS_ALIVE)
            live_answered(ws);
    }
    if (h->masked)
        sn__ws_mask(dst, len, h->mask, pos);
    return 0;
}

/* A control frame in the middle of things: pings answered, pongs noted,
 * a close answered and reported (SN_ECLOSED). */
static int on_control(sn_ws *ws, const sn__ws_head *h, int64_t dl)
{
    int rc = read_payload(ws, h, ws->ctl, (size_t)h->len, 0, dl);
    if (rc < 0)
        return rc;
    switch (h->opcode) {
    case SN_WS_PING:
        rc = send_control(ws, SN_WS_PONG, ws->ctl, (size_t)h->len, dl);
        return rc == SN_EBADSTATE ? 0 : rc; /* after our close: no pong */
    case SN_WS_PONG:
        live_answered(ws);
        return 0;
    default: { /* close */
        int code;
        size_t rlen;
        rc = sn__ws_close_parse(ws->ctl, (size_t)h->len, &code, &rlen);
        if (rc < 0)
            return rc;
        memcpy(ws->close_reason, ws->ctl + 2, rlen);
        ws->close_reason[rlen] = '\0';
        atomic_store(&ws->close_code, code);
        ws->close_received = true;
        if (!atomic_load(&ws->close_sent)) { /* echo it (RFC 6455 section 5.5.1) */
            size_t n = code == SN_WS_CLOSE_NO_STATUS ? 0 : 2;
            send_control(ws, SN_WS_CLOSE, ws->ctl, n, dl);
        }
        return SN_ECLOSED;
    }
    }
}

/* Inflates n bytes of a compressed frame's payload (from pos) onto the
 * message. Its own function, kept out of line, so that its 4 KiB buffer is on
 * the stack only for compressed messages: every plain message would
 * otherwise touch one more page of its fiber's stack. */
static __attribute__((noinline)) int take_zchunk(sn_ws *ws, const sn__ws_head *h, size_t n,
                                                 uint64_t pos, size_t max, int64_t dl)
{
    uint8_t zchunk[4096];
    n = SN_MIN(n, sizeof zchunk);
    int rc = n > 0 ? read_payload(ws, h, zchunk, n, pos, dl) : 0;
    bool last = h->fin && pos + n == h->len;
    if (rc == 0)
        rc = sn__inflate_push(ws->inf, zchunk, n, last, max, &ws->msg);
    return rc < 0 ? rc : (int)n;
}

/* Appends a data frame's payload to the message, in chunks: inflated when
 * the message is compressed, and checked as UTF-8 for text as it grows. */
static int take_data(sn_ws *ws, const sn__ws_head *h, bool z, bool check, uint32_t *utf8,
                     int64_t dl)
{
    size_t max = ws->cfg.max_message;
    uint64_t pos = 0;
    do { /* once at least: an empty last frame still ends a compressed message */
        size_t n = (size_t)SN_MIN(h->len - pos, (uint64_t)SN_WS_CHUNK);
        size_t before = ws->msg.len;
        if (z) {
            int rc = take_zchunk(ws, h, n, pos, max, dl);
            if (rc < 0)
                return rc;
            n = (size_t)rc;
        } else if (n > 0) {
            if (ws->msg.len + n > max)
                return SN_EWS_TOO_BIG;
            int rc = sn__bytes_reserve(&ws->msg, n + 1);
            if (rc < 0)
                return rc;
            rc = read_payload(ws, h, ws->msg.p + ws->msg.len, n, pos, dl);
            if (rc < 0)
                return rc;
            ws->msg.len += n;
        }
        if (check && ws->msg.len > before && /* (msg.p is NULL before the first byte) */
            (*utf8 = sn__utf8_step(*utf8, ws->msg.p + before, ws->msg.len - before)) ==
                SN_UTF8_REJECT)
            return SN_EWS_UTF8; /* fail fast, inside the frame */
        pos += n;
    } while (pos < h->len);
    return 0;
}

/* The next data frame's header, handling control frames on the way; in
 * says whether a message is in progress (then the frame must continue it);
 * between messages, a frame is waited for until first, then read within
 * deadline.
 * The frame's header is checked and its size limited. */
static int next_data_head(sn_ws *ws, sn__ws_head *h, bool in, int64_t first, int64_t deadline)
{
    for (;;) {
        int rc = in ? 0 : wait_frame(ws, first);
        if (rc == 0)
            rc = read_head(ws, h, deadline);
        if (rc == 0)
            rc = sn__ws_head_check(h, ws->pmd.on ? 4 : 0, ws->masking_in);
        if (rc == 0 && h->len > ws->cfg.max_frame)
            rc = SN_EWS_TOO_BIG;
        if (rc < 0)
            return rc;
        if (!in)
            live_answered(ws); /* between messages, any frame will do */
        if (h->opcode < SN_WS_CLOSE)
            return (h->opcode == SN_WS_CONTINUATION) != in ? SN_EWS_PROTOCOL : 0;
        if ((rc = on_control(ws, h, deadline)) < 0)
            return rc;
    }
}

/* How a receive ends: a timeout before anything came is not sticky, the
 * peer's close is reported as is, anything else fails the session. */
static int recv_end(sn_ws *ws, int rc, bool began)
{
    if (rc == SN_ETIMEDOUT && ws->rerr == 0 && !began)
        return rc; /* nothing came: try again later */
    if (rc == SN_ECLOSED && ws->close_received)
        return rc;
    return fail(ws, code_for(rc), rc); /* a timeout inside a frame sticks too */
}

static int recv_ready(const sn_ws *ws)
{
    if (ws->cfg.raw == SN_ON)
        return SN_EBADSTATE;
    if (ws->rerr != 0)
        return ws->rerr;
    return ws->close_received ? SN_ECLOSED : 0;
}

/* A whole message: its first frame waited for until first, the message
 * read within deadline. */
static int recv_msg(sn_ws *ws, sn_ws_msg *msg, int64_t first, int64_t deadline)
{
    if (ws == NULL || msg == NULL)
        return SN_EINVAL;
    int rc = recv_ready(ws);
    if (rc == 0 && ws->part.type != 0)
        rc = SN_EBADSTATE; /* a message is being streamed */
    if (rc < 0)
        return rc;
    int type = 0;
    bool z = false;
    uint32_t utf8 = 0;
    msg_reset(ws);
    for (;;) {
        sn__ws_head h;
        rc = next_data_head(ws, &h, type != 0, first, deadline);
        if (rc < 0)
            return recv_end(ws, rc, type != 0);
        if (type == 0) {
            type = h.opcode;
            z = h.rsv & 4;
        }
        bool check = type == SN_WS_TEXT && ws->cfg.utf8 != SN_OFF;
        rc = take_data(ws, &h, z, check, &utf8, deadline);
        if (rc == 0 && h.fin && check && utf8 != 0)
            rc = SN_EWS_UTF8; /* the message ends inside a character */
        if (rc == 0 && h.fin)
            rc = sn__bytes_reserve(&ws->msg, 1);
        if (rc < 0)
            return recv_end(ws, rc, true);
        if (h.fin) {
            ws->msg.p[ws->msg.len] = '\0';
            *msg = (sn_ws_msg){.type = type, .data = ws->msg.p, .len = ws->msg.len};
            return 0;
        }
    }
}

int sn_ws_recv(sn_ws *ws, sn_ws_msg *msg, sn_deadline dl)
{
    int64_t deadline = ws != NULL ? recv_deadline(ws, dl) : 0;
    return recv_msg(ws, msg, deadline, deadline);
}

int sn__ws_recv_ready(sn_ws *ws, sn_ws_msg *msg)
{
    int64_t deadline = recv_deadline(ws, SN_DEADLINE_NEVER);
    int rc = recv_msg(ws, msg, sn_now_ms(), deadline);
    return rc == SN_ETIMEDOUT && ws->rerr == 0 ? 1 : rc; /* else the ping's timeout */
}

int64_t sn__ws_due(const sn_ws *ws)
{
    return live_until(ws, INT64_MAX);
}

void sn__ws_rtrim(sn_ws *ws)
{
    if (ws->part.type == 0) {
        sn__bytes_free(&ws->msg);
        sn__free(ws->zin);
        ws->zin = NULL;
    }
}

#define SN_WS_ZIN 4096 /* compressed bytes read at a time by a streamed receive */

/* The next piece of a compressed streamed message: what its frame's bytes
 * inflate to, at most SN_WS_CHUNK at a time, into ws->msg. */
static int take_zpart(sn_ws *ws, int64_t dl)
{
    struct sn__ws_part *st = &ws->part;
    if (ws->zin == NULL && (ws->zin = sn__malloc(SN_WS_ZIN + 4)) == NULL)
        return SN_ENOMEM;
    while (ws->msg.len < SN_WS_CHUNK) {
        if (st->zlen == 0 && !st->zmore) { /* more input */
            st->zoff = 0;
            if (st->pos < st->h.len) {
                size_t n = (size_t)SN_MIN(st->h.len - st->pos, (uint64_t)SN_WS_ZIN);
                int rc = read_payload(ws, &st->h, ws->zin, n, st->pos, dl);
                if (rc < 0)
                    return rc;
                st->pos += n;
                st->zlen = n;
            }
            if (st->pos == st->h.len && st->h.fin && !st->ztail) {
                memcpy(ws->zin + st->zlen, sn__inflate_tail(), 4); /* the message ends */
                st->zlen += 4;
                st->ztail = true;
            }
            if (st->zlen == 0)
                break; /* the frame is used up */
        }
        const uint8_t *in = ws->zin + st->zoff;
        size_t len = st->zlen;
        int rc =
            sn__inflate_some(ws->inf, &in, &len, SN_WS_CHUNK - ws->msg.len, &ws->msg, &st->zmore);
        if (rc < 0)
            return rc;
        st->zoff = (size_t)(in - ws->zin);
        st->zlen = len;
    }
    return 0;
}

/* The next piece of the streamed message into ws->msg: up to SN_WS_CHUNK
 * bytes of the current frame's payload, inflated when compressed; checked
 * against the message limit and, for text, as UTF-8. */
static int take_part(sn_ws *ws, int64_t dl)
{
    struct sn__ws_part *st = &ws->part;
    msg_reset(ws);
    int rc = sn__bytes_reserve(&ws->msg, SN_WS_CHUNK + 1);
    if (rc < 0)
        return rc;
    if (st->z) {
        rc = take_zpart(ws, dl);
    } else {
        size_t n = (size_t)SN_MIN(st->h.len - st->pos, (uint64_t)SN_WS_CHUNK);
        if (n > 0 && (rc = read_payload(ws, &st->h, ws->msg.p, n, st->pos, dl)) == 0) {
            ws->msg.len = n;
            st->pos += n;
        }
    }
    if (rc < 0)
        return rc;
    if (ws->msg.len > ws->cfg.max_message - st->total)
        return SN_EWS_TOO_BIG;
    if (st->check && (st->utf8 = sn__utf8_step(st->utf8, ws->msg.p, ws->msg.len)) == SN_UTF8_REJECT)
        return SN_EWS_UTF8;
    st->total += ws->msg.len;
    return 0;
}

/* Whether the current frame is used up (a compressed one: inflated too). */
static bool part_frame_done(const struct sn__ws_part *st)
{
    return st->pos == st->h.len &&
           (!st->z || (st->zlen == 0 && !st->zmore && (st->ztail || !st->h.fin)));
}

int sn_ws_recv_part(sn_ws *ws, sn_ws_part *part, sn_deadline dl)
{
    if (ws == NULL || part == NULL)
        return SN_EINVAL;
    int rc = recv_ready(ws);
    if (rc < 0)
        return rc;
    int64_t deadline = recv_deadline(ws, dl);
    struct sn__ws_part *st = &ws->part;
    bool first = false;
    while (!st->in_frame) {
        sn__ws_head h;
        rc = next_data_head(ws, &h, st->type != 0, deadline, deadline);
        if (rc < 0)
            return recv_end(ws, rc, st->type != 0);
        if (st->type == 0) {
            bool check = h.opcode == SN_WS_TEXT && ws->cfg.utf8 != SN_OFF;
            *st = (struct sn__ws_part){.type = h.opcode, .z = h.rsv & 4, .check = check};
            first = true;
        }
        st->h = h;
        st->pos = 0;
        st->in_frame = true;
    }
    rc = take_part(ws, deadline); /* an empty frame gives an empty part */
    bool last = st->h.fin && part_frame_done(st);
    if (rc == 0 && last && st->check && st->utf8 != 0)
        rc = SN_EWS_UTF8; /* the message ends inside a character */
    if (rc == 0 && last && st->z)
        rc = sn__inflate_finish(ws->inf);
    if (rc < 0)
        return recv_end(ws, rc, true);
    st->in_frame = !part_frame_done(st);
    ws->msg.p[ws->msg.len] = '\0';
    *part = (sn_ws_part){
        .type = st->type, .data = ws->msg.p, .len = ws->msg.len, .first = first, .last = last};
    if (last)
        st->type = 0;
    return 0;
}

int sn_ws_recv_frame(sn_ws *ws, sn_ws_frame *f, sn_deadline dl)
{
    if (ws == NULL || f == NULL)
        return SN_EINVAL;
    if (ws->cfg.raw != SN_ON)
        return SN_EBADSTATE;
    if (ws->rerr != 0)
        return ws->rerr;
    int64_t deadline = recv_deadline(ws, dl);
    sn__ws_head h;
    int rc = wait_frame(ws, deadline);
    if (rc == SN_ETIMEDOUT && ws->rerr == 0)
        return rc;
    if (rc == 0)
        rc = read_head(ws, &h, deadline);
    if (rc == 0 && ws->masking_in != SN_WS_EITHER && h.masked != (ws->masking_in == SN_WS_MASKED))
        rc = SN_EWS_PROTOCOL;
    if (rc == 0 && h.len > ws->cfg.max_frame)
        rc = SN_EWS_TOO_BIG;
    if (rc == 0) {
        msg_reset(ws);
        rc = sn__bytes_reserve(&ws->msg, (size_t)h.len + 1);
    }
    if (rc == 0)
        rc = read_payload(ws, &h, ws->msg.p, (size_t)h.len, 0, deadline);
    if (rc < 0) {
        if (ws->rerr == 0)
            ws->rerr = rc; /* raw mode sends nothing by itself */
        sn__bytes_free(&ws->msg);
        return rc;
    }
    ws->msg.len = (size_t)h.len;
    ws->msg.p[ws->msg.len] = '\0';
    *f = (sn_ws_frame){
        .fin = h.fin, .rsv = h.rsv, .opcode = h.opcode, .data = ws->msg.p, .len = ws->msg.len};
    return 0;
}

/* ---- the close handshake ------------------------------------------------------------- */

int sn_ws_close(sn_ws *ws, int code, const char *reason, sn_deadline dl)
{
    if (ws == NULL)
        return SN_EINVAL;
    int64_t deadline = SN_MIN(recv_deadline(ws, dl), sn_now_ms() + ws->cfg.close_timeout_ms);
    int rc = sn_ws_close_send(ws, code, reason, deadline);
    if (rc < 0)
        return rc;
    if (ws->cfg.raw == SN_ON) { /* raw: wait for a close frame, drop the rest */
        sn_ws_frame f;
        while ((rc = sn_ws_recv_frame(ws, &f, deadline)) == 0)
            if (f.opcode == SN_WS_CLOSE)
                return 0;
        return rc;
    }
    sn_ws_msg m;
    while (!ws->close_received && ws->rerr == 0 && (rc = sn_ws_recv(ws, &m, deadline)) == 0)
        ; /* messages after our close are dropped */
    return ws->close_received ? 0 : rc == SN_ECLOSED ? 0 : rc < 0 ? rc : ws->rerr;
}
