/* SPDX-License-Identifier: MIT */
/*
 * sn_web.c: routes by path for sn_server, WebSocket and HTTP side by side
 * (see socknet/web.h).
 *
 * A connection's life in sn_web_serve: peek a request head (limits, one
 * deadline), peek its body behind it, so that the head's pointers stay
 * valid while the body is read too; route; answer or upgrade; drop the
 * request from the buffer; loop while the connection may carry another
 * request. Routes are a small array searched in order: a server has a few
 * routes, not thousands, and the search is nothing next to a handshake.
 */
#include <stdatomic.h>
#include <string.h>
#include "sn_chan_int.h"
#include "sn_util.h"
#include "sn_ws_int.h"
#include "socknet.h"

#define SN_WEB_HEADERS_MAX 64

typedef struct route {
    char *path;
    size_t len;
    int match;
    bool ws;
    sn_ws_config cfg;
    sn_web_ws_fn ws_fn;
    sn_web_http_fn http_fn;
    void *user;
} route;

struct sn_web {
    sn_web_config cfg;
    sn_ws_budget *budget; /* NULL with max_buffered SIZE_MAX */
    route *routes;
    size_t nroutes;
    atomic_int sessions;
    atomic_uint_fast64_t requests, upgrades, refused, http;
};

int sn_web_new(sn_web **out, const sn_web_config *cfg)
{
    if (out == NULL)
        return SN_EINVAL;
    sn_web_config c = {0};
    if (cfg != NULL)
        c = *cfg;
    if (c.head_timeout_ms < 0 || c.idle_timeout_ms < 0 || c.max_requests < 0 ||
        c.max_sessions < 0 || c.linger_ms < SN_OFF)
        return SN_EINVAL;
    if (c.linger_ms == 0)
        c.linger_ms = 2000;
    if (c.head_timeout_ms == 0)
        c.head_timeout_ms = 10000;
    if (c.idle_timeout_ms == 0)
        c.idle_timeout_ms = 5000;
    if (c.max_body == 0)
        c.max_body = 16384;
    if (c.max_requests == 0)
        c.max_requests = 1000;
    if (c.max_buffered == 0)
        c.max_buffered = (size_t)64 << 20;
    if (c.limits.max_headers == 0 || c.limits.max_headers > SN_WEB_HEADERS_MAX)
        c.limits.max_headers = SN_WEB_HEADERS_MAX;
    sn_web *w = sn__calloc(1, sizeof *w);
    if (w == NULL)
        return SN_ENOMEM;
    w->cfg = c;
    if (c.max_buffered != SIZE_MAX && sn_ws_budget_new(&w->budget, c.max_buffered) < 0) {
        sn__free(w);
        return SN_ENOMEM;
    }
    *out = w;
    return 0;
}

void sn_web_free(sn_web *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->nroutes; i++)
        sn__free(w->routes[i].path);
    sn__free(w->routes);
    sn_ws_budget_free(w->budget);
    sn__free(w);
}

static int add_route(sn_web *w, const char *path, int match, const route *r)
{
    if (w == NULL || path == NULL || path[0] != '/' || strpbrk(path, "?# \t\r\n") != NULL ||
        (match != SN_ROUTE_EXACT && match != SN_ROUTE_PREFIX))
        return SN_EINVAL;
    size_t len = strlen(path);
    if (match == SN_ROUTE_PREFIX && len > 1 && path[len - 1] == '/')
        len--; /* "/chat/" and "/chat" are the same prefix */
    for (size_t i = 0; i < w->nroutes; i++)
        if (w->routes[i].match == match && w->routes[i].len == len &&
            memcmp(w->routes[i].path, path, len) == 0)
            return SN_EEXIST;
    route *grown = sn__realloc(w->routes, (w->nroutes + 1) * sizeof *grown);
    if (grown == NULL)
        return SN_ENOMEM;
    w->routes = grown;
    route *n = &w->routes[w->nroutes];
    *n = *r;
    if ((n->path = sn__malloc(len + 1)) == NULL)
        return SN_ENOMEM;
    memcpy(n->path, path, len);
    n->path[len] = '\0';
    n->len = len;
    n->match = match;
    w->nroutes++;
    return 0;
}

int sn_web_route_ws(sn_web *w, const char *path, int match, const sn_ws_config *cfg,
                    sn_web_ws_fn fn, void *user)
{
    route r = {.ws = true, .ws_fn = fn, .user = user};
    sn_ws_config checked;
    if (fn == NULL || sn__ws_config_check(&checked, cfg) < 0)
        return SN_EINVAL; /* sn_ws_accept resolves it again: the check is early */
    if (cfg != NULL)
        r.cfg = *cfg;
    if (r.cfg.budget == NULL && w != NULL)
        r.cfg.budget = w->budget;
    return add_route(w, path, match, &r);
}

int sn_web_route_http(sn_web *w, const char *path, int match, sn_web_http_fn fn, void *user)
{
    route r = {.http_fn = fn, .user = user};
    if (fn == NULL)
        return SN_EINVAL;
    return add_route(w, path, match, &r);
}

/* The route for path: an exact match, else the longest prefix that ends at
 * a segment boundary ("/chat" takes "/chat/x", not "/chatx"), else NULL. */
static const route *find_route(const sn_web *w, const char *path, size_t len)
{
    const route *best = NULL;
    for (size_t i = 0; i < w->nroutes; i++) {
        const route *r = &w->routes[i];
        if (r->match == SN_ROUTE_EXACT) {
            if (r->len == len && memcmp(r->path, path, len) == 0)
                return r;
        } else if (r->len <= len && memcmp(r->path, path, r->len) == 0 &&
                   (r->len == len || path[r->len] == '/' || r->len == 1) &&
                   (best == NULL || r->len > best->len)) {
            best = r;
        }
    }
    return best;
}

static void count(atomic_uint_fast64_t *ctr)
{
    atomic_fetch_add_explicit(ctr, 1, memory_order_relaxed);
}

/* After an answer that ends the connection: lingers, so that what the
 * client is still sending does not turn the close into a reset. */
static void linger(const sn_web *w, sn_conn *c)
{
    if (w->cfg.linger_ms > 0 && sn_conn_error(c) == 0)
        sn_conn_linger(c, w->cfg.linger_ms);
}

/* Answers status with Connection: close, for what the router refuses. */
static void refuse(sn_web *w, sn_conn *c, int status, const char *headers)
{
    count(&w->refused);
    if (sn_http_respond(c, status, headers, NULL, 0, true, sn_deadline_in(1000)) == 0)
        linger(w, c);
}

/* A WebSocket route: checks the origin and the session limit, upgrades and
 * runs the handler. The request's pointers die at the session's first read,
 * so everything is looked at before the handshake. */
static void serve_ws(sn_web *w, sn_conn *c, const route *r, const sn_http_request *req, size_t used)
{
    if (w->cfg.origin != NULL) {
        const sn_http_header *o = sn_http_find(req, "Origin");
        if (!w->cfg.origin(o ? o->value : NULL, o ? o->value_len : 0, req, w->cfg.origin_user)) {
            refuse(w, c, 403, NULL);
            return;
        }
    }
    int open = atomic_fetch_add(&w->sessions, 1) + 1;
    if (w->cfg.max_sessions > 0 && open > w->cfg.max_sessions) {
        atomic_fetch_sub(&w->sessions, 1);
        refuse(w, c, 503, "Retry-After: 1\r\n");
        return;
    }
    sn_ws *ws;
    if (sn_discard(c, used, SN_DEADLINE_DEFAULT) == 0 && /* buffered: no wait */
        sn_ws_accept(&ws, c, req, &r->cfg, sn_deadline_in(w->cfg.head_timeout_ms)) == 0) {
        count(&w->upgrades);
        r->ws_fn(ws, r->user);
        if (ws->rerr == 0 && !atomic_load(&ws->close_sent)) /* the handler just returned */
            sn_ws_close(ws, sn__conn_wake_level(c) ? SN_WS_GOING_AWAY : SN_WS_NORMAL, NULL,
                        sn_deadline_in(1000));
        sn_ws_free(ws);
    } else {
        count(&w->refused); /* sn_ws_accept answered it */
        linger(w, c);
    }
    atomic_fetch_sub(&w->sessions, 1);
}

/* Reads a request head and its body, both left in c's buffer. Returns the
 * bytes they take, or an error to answer (or SN_EOF, SN_ETIMEDOUT, ...). */
static int read_request(sn_web *w, sn_conn *c, sn_http_header *h, sn_http_request *req,
                        const void **body, size_t *blen, int64_t deadline)
{
    int head = sn_http_peek_request(c, &w->cfg.limits, h, SN_WEB_HEADERS_MAX, req, deadline);
    if (head < 0)
        return head;
    int rc = sn_http_content_length(req, blen);
    if (rc < 0)
        return rc;
    *body = NULL;
    if (*blen == 0)
        return head;
    if (*blen > w->cfg.max_body)
        return SN_EHTTP_BODY_TOO_BIG;
    const void *all;
    ssize_t n = sn_peek(c, (size_t)head + *blen, &all, deadline);
    if (n == SN_ETOOBIG)
        return SN_EHTTP_BODY_TOO_BIG; /* beyond the connection's buffer */
    if (n < 0)
        return n == SN_EOF ? SN_EHTTP_BAD : (int)n;
    /* the buffer may have moved: parse the head again where it is now */
    rc = sn_http_parse_request(all, (size_t)head, &w->cfg.limits, h, SN_WEB_HEADERS_MAX, req);
    if (rc != head)
        return SN_EHTTP_BAD;
    *body = (const char *)all + head;
    return head + (int)*blen;
}

void sn_web_serve(sn_conn *c, void *web)
{
    sn_web *w = web;
    sn_http_header h[SN_WEB_HEADERS_MAX];
    for (int served = 0; served < w->cfg.max_requests; served++) {
        sn_http_request req;
        const void *body = NULL;
        size_t blen = 0;
        /* the first head has head_timeout_ms; later ones may first idle */
        int64_t deadline = sn_now_ms() + w->cfg.head_timeout_ms;
        if (served > 0) {
            const void *p;
            ssize_t n = sn_peek(c, 1, &p, sn_deadline_in(w->cfg.idle_timeout_ms));
            if (n < 0)
                return; /* idle too long, closed, or stopped */
            deadline = sn_now_ms() + w->cfg.head_timeout_ms;
        }
        int rc = read_request(w, c, h, &req, &body, &blen, deadline);
        if (rc < 0) {
            if (rc != SN_EOF && rc != SN_ESTOPPED && sn_conn_error(c) == 0)
                refuse(w, c, sn_http_status_for(rc), NULL); /* 408 for SN_ETIMEDOUT */
            return;
        }
        count(&w->requests);
        if (req.path_len == 0 || req.path[0] != '/') {
            refuse(w, c, 400, NULL); /* the asterisk form (OPTIONS *) is not served */
            return;
        }
        const route *r = find_route(w, req.path, req.path_len);
        if (r == NULL) {
            refuse(w, c, 404, NULL);
            return;
        }
        if (r->ws) {
            serve_ws(w, c, r, &req, (size_t)rc);
            return;
        }
        count(&w->http);
        bool keep = sn_http_keep_alive(&req);
        if (r->http_fn(c, &req, blen > 0 ? body : NULL, blen, r->user) != 0 || !keep ||
            sn_conn_error(c) != 0 || sn_discard(c, (size_t)rc, SN_DEADLINE_DEFAULT) < 0)
            return;
    }
}

void sn_web_stats_get(sn_web *w, sn_web_stats *out)
{
    if (w == NULL || out == NULL)
        return;
    sn_ws_budget_stats bs = {0};
    sn_ws_budget_stats_get(w->budget, &bs);
    *out = (sn_web_stats){
        .buffered = bs.used,
        .busy = bs.refused,
        .sessions = atomic_load(&w->sessions),
        .requests = atomic_load(&w->requests),
        .upgrades = atomic_load(&w->upgrades),
        .refused = atomic_load(&w->refused),
        .http = atomic_load(&w->http),
    };
}
