/* SPDX-License-Identifier: MIT */
/*
 * socknet/ws.h: WebSocket sessions (RFC 6455) with permessage-deflate (RFC
 * 7692), server and client, over a buffered connection (plain or TLS).
 *
 * A session is made by sn_ws_accept (server: from a request head read with
 * sn_http_read_request) or sn_ws_connect / sn_ws_handshake (client). Then:
 *
 *     sn_ws_msg m;
 *     while (sn_ws_recv(ws, &m, SN_DEADLINE_NEVER) == 0)       // whole messages
 *         sn_ws_send(ws, m.type, m.data, m.len, sn_deadline_in(5000));
 *     sn_ws_close(ws, SN_WS_NORMAL, "bye", sn_deadline_in(5000));
 *
 * What the session does by itself (unless raw): answers pings, reassembles
 * fragments, validates text as UTF-8 as it arrives, enforces the frame and
 * message limits, sends a ping whenever ping_period_ms has passed without
 * one while a receive waits (the session's beginning counts as one: the
 * first ping goes a period after the handshake, as Ktor's pingPeriod, not
 * at once), gives up after timeout_ms without an answer, answers a close
 * and reports it (sn_ws_close_code / sn_ws_close_reason).
 *
 * Pings and their timeout hold wherever a receive waits: for a frame, in
 * the middle of a frame's header or payload, between a message's fragments,
 * between the pieces of sn_ws_recv_part. What answers a ping: between
 * messages, any frame (a pong, a message, the peer's own ping: as Ktor and
 * OkHttp); inside a message, a pong, or 4 KiB of the message's payload (a
 * peer in the middle of a frame cannot send a pong until the frame ends, so
 * its bytes speak for it; a trickle of a few bytes does not, nor do empty
 * fragments or the peer's own pings). So a peer that stops or trickles in
 * the middle of a message and ignores pings is cut with 1011 within
 * ping_period_ms + timeout_ms, however long the caller's deadline (even
 * SN_DEADLINE_NEVER); a slow honest peer is not: between fragments its
 * stack answers pings, and inside one frame 4 KiB per timeout_ms (273 bytes
 * a second at the default) is far below any real link. There is no bound
 * on a whole message beyond that: a peer that answers pings is alive, and
 * holds no more than an idle one (its memory is capped by max_message).
 * For one, give the receive a deadline: sn_ws_recv's dl bounds a whole
 * message. Without ping_period_ms no ping goes, and only the caller's
 * deadline ends a wait.
 *
 * Memory: a message being received is held whole (sn_ws_recv) in a buffer
 * of the session's, which grows as the message does (for a compressed one,
 * as it inflates: up to about 1,000 times what the peer sent), up to
 * max_message. Sessions may share a budget (sn_ws_budget, below; every
 * sn_web router has one, 64 MiB unless configured): each session's buffer
 * holds its first 128 KiB on its own, and everything beyond that is taken
 * from the budget as the buffer grows. When the budget is spent, the
 * message that needs more fails with SN_EWS_BUSY and the session closes
 * with 1013 (try again later): the process does not grow, and peers that
 * stop in the middle of large messages can hold no more than the budget,
 * and only until their pings go unanswered (above). A buffer that grew
 * beyond 128 KiB is freed (and its share given back) when the next receive
 * begins, so an idle session holds at most 128 KiB of message buffer; a
 * streamed receive (sn_ws_recv_part) never needs more than that.
 *
 * A peer that breaks the protocol gets the close code RFC 6455 section
 * 7.4.1 names (1002, 1007, 1009; 1011 when no answer to a ping came in
 * time; 1013 when the budget is spent) with the error's text as the reason (sn_strerror: "WebSocket
 * frame or message larger than the limit"), and the call returns the matching error; errors are
 * sticky.
 *
 * Thread safety: one thread (or fiber) receives at a time; sends (messages,
 * fragments, pings, close) are safe from any thread at any time, also while
 * another receives: a per-session lock keeps frames whole, and a message
 * sent in fragments keeps other messages out until its last part (control
 * frames still go between its fragments). The locks are fiber-aware.
 * sn_ws_cancel may be called from any thread until sn_ws_free.
 * Ownership: sn_ws_accept and sn_ws_handshake give the caller a session over
 * the caller's connection, which must outlive the session and is still the
 * caller's to free after sn_ws_free; a session from sn_ws_connect owns its
 * connection, and sn_ws_free frees both. A session handed to an sn_web
 * handler belongs to the router, which frees it when the handler returns.
 * The configuration is copied; its subprotocol list and TLS context are
 * used only while the handshake runs. What a receive gives (sn_ws_msg,
 * sn_ws_part, sn_ws_frame) points into the session until the next receive;
 * the strings of sn_ws_target, sn_ws_subprotocol and sn_ws_close_reason
 * live until sn_ws_free.
 */
#ifndef SOCKNET_WS_H
#define SOCKNET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "socknet/chan.h"
#include "socknet/common.h"
#include "socknet/http.h"
#include "socknet/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A WebSocket session (thread safety and ownership: see the top of this
 * file). */
typedef struct sn_ws sn_ws;

/* Message and frame types (the opcodes of RFC 6455). */
enum sn_ws_type {
    SN_WS_CONTINUATION = 0, /* raw mode only */
    SN_WS_TEXT = 1,
    SN_WS_BINARY = 2,
    SN_WS_CLOSE = 8, /* raw mode only */
    SN_WS_PING = 9,  /* raw mode only */
    SN_WS_PONG = 10, /* raw mode only */
};

/* Close codes (RFC 6455 section 7.4.1, and IANA's registry). */
enum sn_ws_close_code {
    SN_WS_NORMAL = 1000,
    SN_WS_GOING_AWAY = 1001,
    SN_WS_PROTOCOL_ERROR = 1002,
    SN_WS_UNSUPPORTED = 1003,
    SN_WS_NO_STATUS = 1005, /* never sent: the peer's close had no code */
    SN_WS_ABNORMAL = 1006,  /* never sent: the connection ended without a close */
    SN_WS_INVALID_DATA = 1007,
    SN_WS_POLICY = 1008,
    SN_WS_TOO_BIG = 1009,
    SN_WS_EXTENSION = 1010,
    SN_WS_INTERNAL = 1011,
    SN_WS_SERVICE_RESTART = 1012,
    SN_WS_TRY_AGAIN = 1013,
};

/* permessage-deflate parameters. On a server they say what it accepts of a
 * client's offer; on a client, what it offers. Zero = default.
 *
 * Memory per session with deflate on (zlib 1.2.13's allocations, measured;
 * a 256-byte window compresses with 512, see lib/sn_ws_deflate.c):
 *
 *     compressing, by window bits / mem_level:
 *       15/8 (default) 262 KiB   15/4 142 KiB   15/1 135 KiB
 *       12/8 150 KiB   12/4 30 KiB   10/4 18 KiB   9/4 16 KiB   9/1 9 KiB
 *     decompressing, by window bits: 15: 39 KiB, 12: 11 KiB, 9 or 8: 7.5 KiB
 *
 * Each is allocated when the first compressed message goes out or comes
 * in, and held until sn_ws_free: an idle session, or one whose messages
 * stay under the threshold, costs nothing. Receive buffers come on top:
 * the message being received and handled, kept between messages only up
 * to 128 KiB (64 KiB when streamed; see "Memory" at the top of the file).
 *
 * Without deflate an idle server session in fiber mode costs about 1 KiB of
 * session, the connection's own few hundred bytes and the one page of stack
 * that its handshake and a plain message touch: about 7 KiB per idle
 * connection in ws-echo, measured (bench/run.sh --only ws). Its read and
 * write buffers (4 KiB each unless configured) are held only while a
 * message comes in or goes out (see chan.h); in thread mode they stay with
 * the connection, beside a thread. A wss session costs about 96 KiB idle:
 * wolfSSL's session state, and the stack its handshake touched (about
 * 32 KiB resident); the TLS read-ahead buffer (17 KiB) is given back while
 * a fiber waits, as the others are. */
typedef struct sn_ws_deflate_config {
    int level;        /* zlib level 1-9; 0 = 1 (fastest: on 4 KiB JSON-like
                         messages with context takeover, half the CPU of
                         level 6 for about 20 % more bytes) */
    int mem_level;    /* zlib memLevel 1-9; 0 = 8 */
    size_t threshold; /* messages shorter than this go uncompressed; 0 = 64 */
    /* Window bits 8-15 (0 = 15). A server asks the client for at most
     * client_max_window_bits when the client allows it, and compresses
     * with at most server_max_window_bits; a client offers both. */
    int client_max_window_bits;
    int server_max_window_bits;
    int client_no_context_takeover; /* SN_ON: ask for / agree to it */
    int server_no_context_takeover; /* SN_ON: ask for / agree to it */
} sn_ws_deflate_config;

/* A budget of memory for messages being received, shared by sessions
 * (see "Memory" at the top of this file): safe from any thread. */
typedef struct sn_ws_budget sn_ws_budget;

/* A budget of limit bytes (more than 0). Returns 0, SN_EINVAL, SN_ENOMEM. */
SN_API int sn_ws_budget_new(sn_ws_budget **out, size_t limit);

typedef struct sn_ws_budget_stats {
    size_t limit;     /* bytes */
    size_t used;      /* bytes held by message buffers now */
    size_t peak;      /* the most ever held at once */
    uint64_t refused; /* growths refused (each failed a message with 1013) */
} sn_ws_budget_stats;

SN_API void sn_ws_budget_stats_get(const sn_ws_budget *b, sn_ws_budget_stats *out);

/* NULL is a no-op. After every session that uses it is freed. */
SN_API void sn_ws_budget_free(sn_ws_budget *b);

/* A session's options (Ktor's WebSocketOptions and more). Zero = default. */
typedef struct sn_ws_config {
    size_t max_frame;     /* payload bytes of one received frame; 0 = 16 MiB */
    size_t max_message;   /* bytes of one received message, inflated; 0 = 16 MiB */
    int ping_period_ms;   /* ms; a ping after this long without a ping sent,
                             while a receive waits (inside a message too); the
                             session's beginning counts as a ping sent, so the
                             first goes one period after the handshake;
                             0 = none */
    int timeout_ms;       /* ms; after a ping, no answer for this long (any
                             frame between messages; a pong or 4 KiB of
                             payload inside one, see the top of this file):
                             the session fails with SN_ETIMEDOUT (close 1011
                             is sent); 0 = 15000 */
    int close_timeout_ms; /* the close handshake; 0 = 5000 */
    int mask;             /* SN_ON: a server masks what it sends (a client always
                             does); default off */
    int utf8;             /* SN_OFF: text is not validated; default on */
    int raw;              /* SN_ON: raw mode (sn_ws_recv_frame / sn_ws_send_frame,
                             no automatic behaviour: no deflate, no pings,
                             ping_period_ms is ignored) */
    int deflate;          /* SN_ON: permessage-deflate when the peer agrees */
    sn_ws_deflate_config deflate_cfg;
    /* Subprotocols: a server's in its order of preference (the first the
     * client offers wins), a client's to offer. NULL = none. */
    const char *const *subprotocols;
    size_t nsubprotocols;
    /* sn_ws_connect to a wss:// URL: the client TLS context (socknet/tls.h;
     * its CAs, client certificate, versions...). NULL = a default client
     * context made for the call: the system's CAs, the host name checked.
     * Servers take TLS from their listener (sn_server_config.tls). */
    sn_tls *tls;
    /* sn_ws_connect to a wss:// URL: where it writes why the TLS handshake
     * failed (as sn_tls_reason tells it), or why the default context could
     * not be made (as sn_tls_new's reason: no system CA store, say);
     * NUL-terminated, cut at tls_reason_cap bytes (SN_TLS_REASON_MAX is
     * enough); "" otherwise. NULL = nowhere. */
    char *tls_reason;
    size_t tls_reason_cap;
    /* The budget that message buffers beyond 128 KiB draw on (see "Memory"
     * at the top of this file); it must outlive the session. NULL = none
     * (only max_message bounds a session), except on an sn_web route,
     * where NULL means the router's budget. */
    sn_ws_budget *budget;
} sn_ws_config;

/* A received message: data points into the session's buffer and stays
 * valid until the next receive. Text is UTF-8 (unless utf8 is off) and is
 * followed by a NUL byte not counted in len. */
typedef struct sn_ws_msg {
    int type; /* SN_WS_TEXT or SN_WS_BINARY */
    const void *data;
    size_t len;
} sn_ws_msg;

/* A frame as raw mode gives it: payload unmasked, pointing into the
 * session's buffer until the next receive. */
typedef struct sn_ws_frame {
    bool fin;
    int rsv; /* RSV1..RSV3 as bits 2..0 */
    int opcode;
    const void *data;
    size_t len;
} sn_ws_frame;

/* Server side: completes the opening handshake of the upgrade request req
 * (read from c with sn_http_read_request): checks it (GET, HTTP/1.1, one
 * Host, "websocket" in Upgrade and "upgrade" in Connection, one
 * Sec-WebSocket-Key of 16 bytes, one Sec-WebSocket-Version: 13), negotiates
 * subprotocol and permessage-deflate, sends 101 and makes the session.
 * Upgrade, Connection, Sec-WebSocket-Protocol and Sec-WebSocket-Extensions
 * may each come on several lines, one list (RFC 9110 section 5.3): tokens
 * are looked for on every line, offers taken from every line in order. A
 * bad request is answered (405 for another method; 426 without the upgrade
 * tokens, or with Sec-WebSocket-Version: 13 for another version; 400
 * otherwise, a repeated Host, Sec-WebSocket-Key or Sec-WebSocket-Version
 * included) and refused with SN_EWS_HANDSHAKE. cfg may be NULL. The
 * session uses c (which stays the caller's to free after sn_ws_free).
 * Returns 0, SN_EWS_HANDSHAKE, SN_EINVAL, SN_ENOMEM, or the connection's
 * error. */
SN_API int sn_ws_accept(sn_ws **out, sn_conn *c, const sn_http_request *req,
                        const sn_ws_config *cfg, sn_deadline dl);

/* Client side on a connected c: sends the upgrade request for host and
 * path (extra_headers: lines ending in CRLF, or NULL), checks the 101 and its
 * Sec-WebSocket-Accept, subprotocol and extensions (Upgrade, Connection and
 * Sec-WebSocket-Extensions are read on every line, as one list each; a
 * second Sec-WebSocket-Accept or Sec-WebSocket-Protocol is refused).
 * *status (may be NULL) gets the answer's HTTP status, or 0 when none came.
 * Returns 0, SN_EWS_HANDSHAKE (refused, or a bad answer), or the
 * connection's error. */
SN_API int sn_ws_handshake(sn_ws **out, sn_conn *c, const char *host, const char *path,
                           const char *extra_headers, const sn_ws_config *cfg, int *status,
                           sn_deadline dl);

/* Connects to a ws:// or wss:// URL (ws://host[:port][/path], port 80 by
 * default; wss:// over TLS with cfg->tls, port 443 by default, the host
 * name sent as SNI and verified) and handshakes, all within dl. The session
 * owns the connection (sn_ws_free frees it). Returns 0, SN_EBADADDR (not a
 * ws:// or wss:// URL), a connect error, a TLS error (SN_ETLS_*, see
 * sn_tls_upgrade; cfg->tls_reason receives the reason), or
 * sn_ws_handshake's. */
SN_API int sn_ws_connect(sn_ws **out, const char *url, const char *extra_headers,
                         const sn_ws_config *cfg, int *status, sn_deadline dl);

/* Frees the session (and its connection, when sn_ws_connect made it)
 * without a close handshake, also in the middle of a message sent in parts
 * (by the thread that sends it: the message stays unfinished for the
 * peer); NULL is fine. */
SN_API void sn_ws_free(sn_ws *ws);

/* Cancels the session from any thread or fiber (its connection's
 * sn_conn_cancel): a receive or send blocked in it, or waiting for
 * another sender, returns SN_ECANCELED at once, and so does every later
 * call; no close frame is sent (the connection is shut down: the peer sees
 * it end, close code 1006). The session stays valid until its owner frees
 * it. For a close handshake from another thread instead, send the
 * close frame there (sn_ws_close_send, below): the receiver then sees the
 * peer's answer. Any number of times, until sn_ws_free. Returns 0, or
 * SN_EINVAL for NULL. */
SN_API int sn_ws_cancel(sn_ws *ws);

/* The session's connection. */
SN_API sn_conn *sn_ws_conn(sn_ws *ws);

/* The request target of the handshake ("/chat/room?x=1"; a client's path),
 * NUL-terminated; the session's, valid until sn_ws_free. */
SN_API const char *sn_ws_target(const sn_ws *ws);

/* The negotiated subprotocol, or NULL. */
SN_API const char *sn_ws_subprotocol(const sn_ws *ws);

/* Whether permessage-deflate is in use. */
SN_API bool sn_ws_deflate_on(const sn_ws *ws);

/* Receives the next whole message (control frames are handled on the way).
 * dl bounds the whole call, the message included. Returns 0, SN_ECLOSED
 * (the peer closed; its close was answered: see sn_ws_close_code),
 * SN_ETIMEDOUT (dl passed: not sticky before the message began, sticky
 * inside it, without a close sent; or a ping went unanswered: sticky,
 * close 1011 sent), SN_EWS_PROTOCOL, SN_EWS_UTF8, SN_EWS_TOO_BIG,
 * SN_EWS_DEFLATE, SN_EWS_BUSY (the budget is spent; close 1013), SN_ENOMEM
 * (close 1011) (the session sent the matching close), SN_EBADSTATE (raw
 * mode, or after a close), or the connection's error. */
SN_API int sn_ws_recv(sn_ws *ws, sn_ws_msg *msg, sn_deadline dl);

/* A piece of a message received as a stream (sn_ws_recv_part): data
 * points into the session's buffer until the next receive (NUL-terminated,
 * not counted in len; len may be 0). Text pieces are valid UTF-8 so far,
 * but a character may be cut between two pieces. */
typedef struct sn_ws_part {
    int type; /* SN_WS_TEXT or SN_WS_BINARY */
    const void *data;
    size_t len;
    bool first; /* the message's first piece */
    bool last;  /* its last piece: the message is whole */
} sn_ws_part;

/* Receives the next piece of a message, for messages too large to hold
 * whole: at most 64 KiB per piece, as it arrives (for a compressed message,
 * 64 KiB of inflated bytes: memory stays bounded however well the data
 * compresses). Every rule of sn_ws_recv holds
 * (control frames handled on the way, UTF-8 checked as it comes, the
 * message's total still capped by max_message; pings and their timeout
 * inside the message). dl bounds this piece only; a timeout before a piece
 * began is not sticky, one inside a frame is. Do not mix with sn_ws_recv
 * inside a message (SN_EBADSTATE). Returns as sn_ws_recv. */
SN_API int sn_ws_recv_part(sn_ws *ws, sn_ws_part *part, sn_deadline dl);

/* Sends a whole message of type SN_WS_TEXT or SN_WS_BINARY (text must be
 * UTF-8: it is not checked). Any thread. Returns 0, SN_EINVAL, SN_EBADSTATE
 * (a close was sent), or the connection's error. */
SN_API int sn_ws_send(sn_ws *ws, int type, const void *data, size_t len, sn_deadline dl);

/* Sends a message in parts, as fragments: begin with its type, then parts,
 * the one with last true ending it. Other messages wait until it ends;
 * control frames do not. Any thread, the same one from begin to end.
 *
 * sn_ws_send_begin opens the message of type SN_WS_TEXT or SN_WS_BINARY and
 * sends nothing: it waits (without a deadline: dl is not used) for a
 * message that another thread is sending to end. Calling it again on the
 * same thread before the last part never returns. Returns 0, or SN_EINVAL
 * (ws NULL, or another type). */
SN_API int sn_ws_send_begin(sn_ws *ws, int type, sn_deadline dl);

/* Sends the next part of the message sn_ws_send_begin opened as one frame
 * (len may be 0; compressed with the rest of the message when
 * permessage-deflate is on), flushed before dl; last ends the message.
 * Returns 0, or:
 *
 *     SN_EINVAL     ws NULL, or data NULL with len > 0
 *     SN_EBADSTATE  no message is open (no sn_ws_send_begin, or its last
 *                   part or a failed part ended it), or a close was sent
 *     SN_ENOMEM     no memory to compress or mask the part
 *     SN_EIO        no random mask key (a session that masks)
 *     (others)      the connection's error (SN_ETIMEDOUT when dl passes)
 *
 * Bad arguments (SN_EINVAL) and SN_EBADSTATE with no message open change
 * nothing. Any other error ends the message, unfinished for the peer:
 * close the session (sn_ws_close_send) or free it. */
SN_API int sn_ws_send_part(sn_ws *ws, const void *data, size_t len, bool last, sn_deadline dl);

/* Sends a ping with len bytes of payload (at most 125; data may be NULL
 * when len is 0), flushed before dl. Any thread, also between the
 * fragments of a message. The pong comes to the receiver (sn_ws_recv takes
 * it on the way; raw mode gives it); this ping does not count for
 * ping_period_ms or timeout_ms.
 * Returns 0, SN_EINVAL (ws NULL, len over 125, or data NULL with len > 0),
 * SN_EBADSTATE (a close was sent), SN_ENOMEM or SN_EIO (masking, as for
 * sn_ws_send_part), or the connection's error. */
SN_API int sn_ws_ping(sn_ws *ws, const void *data, size_t len, sn_deadline dl);

/* The close handshake: sends a close with code (a code that may be sent;
 * 0 = none) and reason (UTF-8, up to 123 bytes; NULL = none), then reads
 * and drops frames until the peer's close comes back or dl passes (at most
 * close_timeout_ms). Returns 0 (the peer answered), SN_ETIMEDOUT, SN_EINVAL,
 * or the connection's error. Call it from the receiving side, or when no
 * one receives. */
SN_API int sn_ws_close(sn_ws *ws, int code, const char *reason, sn_deadline dl);

/* Only sends the close frame (any thread), with code and reason as for
 * sn_ws_close, flushed before dl; the receiver then sees the peer's answer
 * as SN_ECLOSED. Once a close is sent, nothing else is: sends and pings
 * return SN_EBADSTATE (raw mode's sn_ws_send_frame aside).
 * Returns 0 (sent, or a close had been sent already, by another call or by
 * the session on an error: none is sent again), SN_EINVAL (ws NULL; a code
 * that may not be sent: only 1000-1003, 1007-1014 and 3000-4999 may; a
 * reason without a code, over 123 bytes or not UTF-8), SN_ENOMEM or SN_EIO
 * (masking, as for sn_ws_send_part), or the connection's error. */
SN_API int sn_ws_close_send(sn_ws *ws, int code, const char *reason, sn_deadline dl);

/* The peer's close code (SN_WS_NO_STATUS when its close had none,
 * SN_WS_ABNORMAL when the connection ended without one), or 0 before. */
SN_API int sn_ws_close_code(const sn_ws *ws);

/* The peer's close reason, NUL-terminated ("" when none). */
SN_API const char *sn_ws_close_reason(const sn_ws *ws);

/* Raw mode: the next frame as it came (payload unmasked), whatever its
 * type. Returns 0, SN_EWS_PROTOCOL (an invalid header: nothing is sent
 * back in raw mode), SN_EWS_TOO_BIG, SN_EWS_BUSY (the frame needs more of
 * the budget than is left), SN_ETIMEDOUT, SN_EBADSTATE (not raw),
 * or the connection's error. */
SN_API int sn_ws_recv_frame(sn_ws *ws, sn_ws_frame *f, sn_deadline dl);

/* Raw mode: sends one frame as given (masked when the session masks; RSV
 * bits clear), flushed before dl. Nothing is checked against RFC 6455: a
 * control frame over 125 bytes or without fin, a reserved opcode, a frame
 * after a close all go out (for testing peers). A close frame counts as
 * the session's close: sn_ws_close_send then returns 0 and sends nothing.
 * Returns 0, SN_EINVAL (ws NULL, opcode outside 0-15, or data NULL with
 * len > 0), SN_EBADSTATE (not raw mode), SN_ENOMEM or SN_EIO (masking, as
 * for sn_ws_send_part), or the connection's error. */
SN_API int sn_ws_send_frame(sn_ws *ws, bool fin, int opcode, const void *data, size_t len,
                            sn_deadline dl);

#ifdef __cplusplus
}
#endif
#endif
