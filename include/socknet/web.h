/* SPDX-License-Identifier: MIT */
/*
 * socknet/web.h: routes by path for the server: WebSocket endpoints (Ktor's
 * webSocket("/path")) and plain HTTP handlers side by side, behind the
 * strict HTTP front door of socknet/http.h.
 *
 *     sn_web *web;
 *     sn_web_new(&web, NULL);
 *     sn_web_route_ws(web, "/echo", SN_ROUTE_EXACT, &wscfg, echo, NULL);
 *     sn_web_route_http(web, "/", SN_ROUTE_EXACT, index_page, NULL);
 *     sn_server_config sc = { .port = 8080, .handler = sn_web_serve, .user = web };
 *
 * For each connection sn_web_serve reads request heads (one deadline per
 * head, limits from the configuration), finds the route and answers what it
 * cannot route: 400 (a malformed head, a target not starting with '/'),
 * 404 (no route), 405 (a WebSocket route asked with another method than
 * GET), 411 (a chunked body), 413 (a body beyond max_body), 414, 426 (a
 * WebSocket route asked without an upgrade, with Sec-WebSocket-Version:
 * 13), 431, 403 (the origin hook said no), 503 (max_sessions sessions are
 * open already), 505, and 408 when a head does not come whole within
 * head_timeout_ms (slowloris; a kept connection that stays idle, with no
 * byte of a next request, is closed without one). After such an answer the
 * connection lingers (sn_conn_linger, up to linger_ms: what the client is
 * still sending is read and dropped until it closes) and closes, so the
 * answer reaches the client instead of a reset.
 *
 * Routing: an exact route matches its path only; a prefix route "/chat"
 * matches "/chat" and every path below it ("/chat/", "/chat/room"), never
 * "/chatroom". An exact match wins over prefixes; among prefixes the
 * longest wins. The query ("?x=1") is not part of the path.
 *
 * A WebSocket route completes the handshake (sn_ws_accept with the route's
 * configuration) and calls its handler with the session. When the handler
 * returns, a session that is still open is closed (1000, or 1001 when the
 * server is stopping) and freed: the handler never frees it. When the
 * server stops, a session blocked in sn_ws_recv gets SN_ESTOPPED and sends
 * close 1001 (going away) by itself.
 *
 * An HTTP route's handler gets the request and its whole body (read before
 * the call, at most max_body bytes) and answers on the connection, usually
 * with sn_http_respond. Returning 0 lets the connection carry the next
 * request when the client allows it (sn_http_keep_alive); non-zero closes
 * it (return non-zero after answering with Connection: close).
 *
 * Thread safety: add routes before the server starts; sn_web_serve then
 * runs on many workers at once, and sn_web_stats_get from any thread.
 * Ownership: sn_web_free after the server is freed. Paths are copied;
 * WebSocket configurations are copied except their subprotocol lists,
 * which must outlive the router.
 */
#ifndef SOCKNET_WEB_H
#define SOCKNET_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "socknet/chan.h"
#include "socknet/common.h"
#include "socknet/http.h"
#include "socknet/ws.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_web sn_web;

enum sn_route_match { SN_ROUTE_EXACT = 0, SN_ROUTE_PREFIX = 1 };

/* A WebSocket endpoint: runs for the life of the session (see above).
 * sn_ws_target(ws) is the request target. */
typedef void (*sn_web_ws_fn)(sn_ws *ws, void *user);

/* An HTTP endpoint: req and body (len bytes, NULL when 0) stay valid until
 * it returns; it must not read from c. Returns 0 to keep the connection
 * (see above), non-zero to close it. */
typedef int (*sn_web_http_fn)(sn_conn *c, const sn_http_request *req, const void *body, size_t len,
                              void *user);

/* The origin hook: origin is the Origin header's value (not NUL-terminated;
 * NULL when the client sent none, as non-browser clients do). Returns true
 * to accept the WebSocket handshake, false for 403. */
typedef bool (*sn_web_origin_fn)(const char *origin, size_t len, const sn_http_request *req,
                                 void *user);

typedef struct sn_web_config {
    sn_http_limits limits;   /* request heads; zero = http.h's defaults; the
                                connection's read_buffer_max must hold a head
                                (and a body) */
    int head_timeout_ms;     /* for each whole head (slowloris); 0 = 10000 */
    int idle_timeout_ms;     /* between requests on a kept connection; 0 = 5000 */
    size_t max_body;         /* bytes of an HTTP request's body; 0 = 16384 */
    int max_requests;        /* per connection; 0 = 1000 */
    int max_sessions;        /* WebSocket sessions open at once, beyond which
                                handshakes get 503; 0 = no limit */
    size_t max_buffered;     /* bytes: the router's budget for messages being
                                received (sn_ws_budget, see ws.h), shared by
                                the sessions of every route whose
                                configuration names none: each session's
                                first 128 KiB are its own, the rest comes
                                from here, and a message that finds it spent
                                fails with close 1013; 0 = 64 MiB (four
                                messages of the default max_message at once);
                                SIZE_MAX = no budget */
    int linger_ms;           /* ms a connection lingers after the router's own
                                error answer (see above); 0 = 2000; SN_OFF =
                                close at once (the client may get a reset) */
    sn_web_origin_fn origin; /* NULL = every origin */
    void *origin_user;
} sn_web_config;

/* cfg may be NULL. Returns 0, SN_EINVAL (a negative value), SN_ENOMEM. */
SN_API int sn_web_new(sn_web **out, const sn_web_config *cfg);

/* Adds a WebSocket route. path starts with '/'; match is an sn_route_match;
 * cfg may be NULL (defaults). Returns 0, SN_EINVAL (bad path, match or
 * configuration), SN_EEXIST (the same path and match twice), SN_ENOMEM. */
SN_API int sn_web_route_ws(sn_web *w, const char *path, int match, const sn_ws_config *cfg,
                           sn_web_ws_fn fn, void *user);

/* Adds an HTTP route; as sn_web_route_ws. */
SN_API int sn_web_route_http(sn_web *w, const char *path, int match, sn_web_http_fn fn, void *user);

/* The server handler: pass it as sn_server_config.handler with the router
 * as .user. */
SN_API void sn_web_serve(sn_conn *c, void *web);

typedef struct sn_web_stats {
    int sessions;      /* WebSocket sessions open now */
    uint64_t requests; /* request heads read */
    uint64_t upgrades; /* WebSocket handshakes completed */
    uint64_t refused;  /* answered 4xx/5xx by the router itself */
    uint64_t http;     /* requests given to HTTP handlers */
    size_t buffered;   /* bytes of the budget held now (see max_buffered) */
    uint64_t busy;     /* messages failed with 1013: the budget was spent */
} sn_web_stats;

SN_API void sn_web_stats_get(sn_web *w, sn_web_stats *out);

/* NULL is a no-op. Not while a server serves with it. */
SN_API void sn_web_free(sn_web *w);

#ifdef __cplusplus
}
#endif
#endif
