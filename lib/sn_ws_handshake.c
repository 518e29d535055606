/* SPDX-License-Identifier: MIT */
/*
 * sn_ws_handshake.c: the WebSocket opening handshakes (RFC 6455 section 4),
 * server and client, with subprotocol and permessage-deflate negotiation
 * (RFC 7692 section 7.1): every window size 8-15 either way, context
 * takeover or not, offers declined one by one until one can be accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include "sn_sock_int.h"
#include "sn_util.h"
#include "sn_ws_frame.h"
#include "sn_ws_int.h"
#include "socknet.h"

#define SN_WS_KEY_LEN 24 /* base64 of 16 bytes */
#define SN_WS_RESPONSE_MAX 8192

/* ---- extension headers: name *( ";" param [ "=" value ] ), offers split by "," ---- */

struct cursor {
    const char *p, *end;
};

static void skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* A token, or a quoted string when quoted_ok: into out (NUL-terminated). */
static bool take_token(struct cursor *c, char *out, size_t cap, bool quoted_ok)
{
    size_t n = 0;
    skip_ws(c);
    bool quoted = quoted_ok && c->p < c->end && *c->p == '"';
    if (quoted)
        c->p++;
    while (c->p < c->end && n + 1 < cap) {
        char ch = *c->p;
        if (quoted ? ch == '"' : (ch == ';' || ch == ',' || ch == '=' || ch == ' ' || ch == '\t'))
            break;
        out[n++] = ch;
        c->p++;
    }
    if (quoted) {
        if (c->p == c->end || *c->p != '"')
            return false;
        c->p++;
    }
    out[n] = '\0';
    skip_ws(c);
    return n > 0;
}

/* One parameter of permessage-deflate: its name and value ("" when none).
 * Returns 1, 0 at the end of the offer, or -1 when malformed. */
static int take_param(struct cursor *c, char *name, char *value, size_t cap)
{
    skip_ws(c);
    if (c->p == c->end || *c->p == ',')
        return 0;
    if (*c->p != ';')
        return -1;
    c->p++;
    if (!take_token(c, name, cap, false))
        return -1;
    value[0] = '\0';
    if (c->p < c->end && *c->p == '=') {
        c->p++;
        if (!take_token(c, value, cap, true))
            return -1;
    }
    return 1;
}

/* Window bits from a parameter value: 8-15, or -1. */
static int window_bits(const char *v)
{
    if (v[0] < '0' || v[0] > '9' || strlen(v) > 2)
        return -1;
    int n = atoi(v);
    return n >= 8 && n <= 15 && (v[0] != '0') ? n : -1;
}

/* A permessage-deflate offer or answer, as sent. */
struct pmd_params {
    bool snct, cnct; /* server_ / client_no_context_takeover */
    int smwb;        /* server_max_window_bits: 0 absent, else 8-15 */
    int cmwb;        /* client_max_window_bits: 0 absent, -1 without value, else 8-15 */
};

/* Reads the parameters of one offer (the cursor is past its name).
 * Returns false for an unknown, repeated or malformed parameter. */
static bool read_params(struct cursor *c, struct pmd_params *pp)
{
    char name[64], value[64];
    int rc;
    *pp = (struct pmd_params){0};
    while ((rc = take_param(c, name, value, sizeof name)) == 1) {
        if (strcmp(name, "server_no_context_takeover") == 0 && !pp->snct && value[0] == 0)
            pp->snct = true;
        else if (strcmp(name, "client_no_context_takeover") == 0 && !pp->cnct && value[0] == 0)
            pp->cnct = true;
        else if (strcmp(name, "server_max_window_bits") == 0 && pp->smwb == 0 &&
                 (pp->smwb = window_bits(value)) > 0)
            ;
        else if (strcmp(name, "client_max_window_bits") == 0 && pp->cmwb == 0 &&
                 (value[0] == 0 || window_bits(value) > 0))
            pp->cmwb = value[0] == 0 ? -1 : window_bits(value);
        else
            return false;
    }
    return rc == 0;
}

/* Skips to the next offer (past a ','); false at the end. */
static bool next_offer(struct cursor *c)
{
    while (c->p < c->end && *c->p != ',') {
        if (*c->p == '"') { /* a quoted value may hold a ',' */
            c->p++;
            while (c->p < c->end && *c->p != '"')
                c->p++;
        }
        if (c->p < c->end)
            c->p++;
    }
    if (c->p == c->end)
        return false;
    c->p++;
    return true;
}

/* Appends s to the NUL-terminated text at out (cap bytes, *n of them used), cutting it short
 * rather than overflow. The server's handshake builds its answer with this and not with
 * printf: vsnprintf's frame alone is about 1.5 KiB of stack, and every page of a fiber's
 * stack that the handshake touches stays resident for the whole session. */
static void append(char *out, size_t cap, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
}

/* Appends "; NAME=BITS" for a window size of 8-15. */
static void append_bits(char *out, size_t cap, size_t *n, const char *name, int bits)
{
    char num[3] = {(char)('0' + bits / 10), (char)('0' + bits % 10), '\0'};
    append(out, cap, n, "; ");
    append(out, cap, n, name);
    append(out, cap, n, "=");
    append(out, cap, n, bits < 10 ? num + 1 : num);
}

/* Server: the first acceptable permessage-deflate offer in the request, as
 * agreed (into *pmd) and as answered (into answer). The offers are those of
 * every Sec-WebSocket-Extensions line, in order: the lines are one list. */
static void negotiate_pmd(const sn_http_request *req, const sn_ws_config *cfg, sn__pmd *pmd,
                          char *answer, size_t cap)
{
    const sn_ws_deflate_config *d = &cfg->deflate_cfg;
    const sn_http_header *h = NULL;
    *pmd = (sn__pmd){0};
    answer[0] = '\0';
    if (cfg->deflate != SN_ON)
        return;
    while ((h = sn_http_find_next(req, "Sec-WebSocket-Extensions", h)) != NULL) {
        struct cursor c = {h->value, h->value + h->value_len};
        do {
            char name[64];
            struct pmd_params pp;
            if (!take_token(&c, name, sizeof name, false) ||
                strcmp(name, "permessage-deflate") != 0 || !read_params(&c, &pp))
                continue; /* another extension, or an offer we decline */
            pmd->on = true;
            pmd->tx_bits = pp.smwb > 0 ? SN_MIN(pp.smwb, d->server_max_window_bits)
                                       : d->server_max_window_bits;
            pmd->rx_bits = 15;
            if (pp.cmwb != 0)
                pmd->rx_bits = pp.cmwb > 0 ? SN_MIN(pp.cmwb, d->client_max_window_bits)
                                           : d->client_max_window_bits;
            pmd->tx_reset = pp.snct || d->server_no_context_takeover == SN_ON;
            pmd->rx_reset = pp.cnct || d->client_no_context_takeover == SN_ON;
            size_t n = 0;
            append(answer, cap, &n, "permessage-deflate");
            if (pmd->tx_reset)
                append(answer, cap, &n, "; server_no_context_takeover");
            if (pmd->rx_reset)
                append(answer, cap, &n, "; client_no_context_takeover");
            if (pp.smwb > 0 || pmd->tx_bits < 15)
                append_bits(answer, cap, &n, "server_max_window_bits", pmd->tx_bits);
            if (pp.cmwb != 0 && pmd->rx_bits < 15)
                append_bits(answer, cap, &n, "client_max_window_bits", pmd->rx_bits);
            return;
        } while (next_offer(&c));
    }
}

/* Server: the first of our subprotocols the client offers on any of its
 * Sec-WebSocket-Protocol lines, or NULL. */
static const char *pick_subprotocol(const sn_http_request *req, const sn_ws_config *cfg)
{
    for (size_t k = 0; k < cfg->nsubprotocols; k++)
        if (sn_http_field_has_token(req, "Sec-WebSocket-Protocol", cfg->subprotocols[k]))
            return cfg->subprotocols[k];
    return NULL;
}

/* ---- the server's side --------------------------------------------------------------- */

static int refuse(sn_conn *c, int status, const char *headers, sn_deadline dl)
{
    sn_http_respond(c, status, headers, NULL, 0, true, dl);
    return SN_EWS_HANDSHAKE;
}

/* A single header's value, when there is exactly one. */
static const sn_http_header *single_header(const sn_http_request *req, const char *name)
{
    return sn_http_count(req, name) == 1 ? sn_http_find(req, name) : NULL;
}

/* Whether key is base64 of 16 bytes. */
static bool key_ok(const sn_http_header *key)
{
    byte raw[32];
    word32 n = sizeof raw;
    return key != NULL && key->value_len == SN_WS_KEY_LEN &&
           Base64_Decode((const byte *)key->value, SN_WS_KEY_LEN, raw, &n) == 0 && n == 16;
}

/* What is wrong with an upgrade request: 0, or the status to refuse it with
 * and, in *extra, the header lines to add. Upgrade and Connection are lists,
 * read on every line (RFC 9110 section 5.3); Host, Sec-WebSocket-Key and
 * Sec-WebSocket-Version must appear once (RFC 9112 section 3.2, RFC 6455
 * section 11.3), and a repeated one is a bad request. */
static int check_request(const sn_http_request *req, const char **extra)
{
    static const char upgrade_needed[] = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                         "Sec-WebSocket-Version: 13\r\n";
    const sn_http_header *ver = sn_http_find(req, "Sec-WebSocket-Version");
    *extra = NULL;
    if (!sn_http_method_is(req, "GET")) {
        *extra = "Allow: GET\r\n";
        return 405;
    }
    if (req->minor_version < 1 || single_header(req, "Host") == NULL)
        return 400;
    if (!sn_http_field_has_token(req, "Upgrade", "websocket") ||
        !sn_http_field_has_token(req, "Connection", "upgrade")) {
        *extra = upgrade_needed;
        return 426;
    }
    if (sn_http_count(req, "Sec-WebSocket-Version") > 1)
        return 400;
    if (ver == NULL || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) {
        *extra = "Sec-WebSocket-Version: 13\r\n";
        return 426;
    }
    return key_ok(single_header(req, "Sec-WebSocket-Key")) ? 0 : 400;
}

int sn_ws_accept(sn_ws **out, sn_conn *c, const sn_http_request *req, const sn_ws_config *cfg,
                 sn_deadline dl)
{
    sn_ws_config conf;
    const char *extra;
    if (out == NULL || c == NULL || req == NULL || sn__ws_config_check(&conf, cfg) < 0)
        return SN_EINVAL;
    int64_t deadline = sn__deadline_abs(dl, sn_conn_sock(c)->write_timeout_ms);
    int status = check_request(req, &extra);
    if (status != 0)
        return refuse(c, status, extra, deadline);
    const sn_http_header *key = sn_http_find(req, "Sec-WebSocket-Key");

    char accept[SN_WS_ACCEPT_LEN + 1], ext[160];
    sn__pmd pmd;
    int rc = sn__ws_accept_key(key->value, key->value_len, accept);
    if (rc < 0)
        return refuse(c, 400, NULL, deadline);
    const char *proto = pick_subprotocol(req, &conf);
    negotiate_pmd(req, &conf, &pmd, ext, sizeof ext);
    sn_ws *ws;
    if ((rc = sn__ws_new(&ws, c, true, &conf, &pmd, proto, proto ? strlen(proto) : 0, req->target,
                         req->target_len)) < 0) {
        refuse(c, 503, NULL, deadline);
        return rc;
    }
    const char *part[] = {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: ",
                          accept,
                          proto ? "\r\nSec-WebSocket-Protocol: " : "",
                          proto ? proto : "",
                          pmd.on ? "\r\nSec-WebSocket-Extensions: " : "",
                          ext,
                          "\r\n\r\n"};
    struct iovec iov[SN_ARRAY_SIZE(part)];
    for (size_t i = 0; i < SN_ARRAY_SIZE(part); i++)
        iov[i] = (struct iovec){(void *)part[i], strlen(part[i])};
    ssize_t w = sn_writev(c, iov, (int)SN_ARRAY_SIZE(part), deadline); /* no printf: see append */
    if (w >= 0)
        w = sn_flush(c, deadline);
    if (w < 0) {
        sn_ws_free(ws);
        return (int)w;
    }
    *out = ws;
    return 0;
}

/* ---- the client's side ----------------------------------------------------------------- */

/* The extension offer a client sends, from its configuration. */
static void client_offer(const sn_ws_config *cfg, char *out, size_t cap)
{
    const sn_ws_deflate_config *d = &cfg->deflate_cfg;
    size_t n = 0;
    out[0] = '\0';
    append(out, cap, &n, "permessage-deflate");
    if (d->client_max_window_bits < 15)
        append_bits(out, cap, &n, "client_max_window_bits", d->client_max_window_bits);
    else
        append(out, cap, &n, "; client_max_window_bits");
    if (d->server_max_window_bits < 15)
        append_bits(out, cap, &n, "server_max_window_bits", d->server_max_window_bits);
    if (d->client_no_context_takeover == SN_ON)
        append(out, cap, &n, "; client_no_context_takeover");
    if (d->server_no_context_takeover == SN_ON)
        append(out, cap, &n, "; server_no_context_takeover");
}

/* The server's answer to our offer, the list element at the cursor: what it
 * agreed, or false when the answer is not one our offer allows. */
static bool client_accept_pmd(struct cursor *c, const sn_ws_config *cfg, sn__pmd *pmd)
{
    const sn_ws_deflate_config *d = &cfg->deflate_cfg;
    char name[64];
    struct pmd_params pp;
    if (!take_token(c, name, sizeof name, false) || strcmp(name, "permessage-deflate") != 0 ||
        !read_params(c, &pp))
        return false; /* only the extension we offered */
    if (pp.cmwb == -1 || (pp.cmwb > 0 && pp.cmwb > d->client_max_window_bits))
        return false;
    if ((d->server_max_window_bits < 15 && (pp.smwb == 0 || pp.smwb > d->server_max_window_bits)) ||
        (d->server_no_context_takeover == SN_ON && !pp.snct))
        return false; /* what we asked for was not granted */
    *pmd = (sn__pmd){
        .on = true,
        .tx_bits = pp.cmwb > 0 ? pp.cmwb : d->client_max_window_bits,
        .rx_bits = pp.smwb > 0 ? pp.smwb : 15,
        .tx_reset = pp.cnct || d->client_no_context_takeover == SN_ON,
        .rx_reset = pp.snct,
    };
    return true;
}

/* One Sec-WebSocket-Extensions line of the server's answer. The lines are
 * one list (RFC 6455 erratum 3433), which may hold the one extension we
 * offer, once; empty elements are ignored (RFC 9110 section 5.6.1). pmd->on
 * says an earlier line agreed to it. */
static bool client_accept_exts(const char *v, size_t len, const sn_ws_config *cfg, sn__pmd *pmd)
{
    struct cursor c = {v, v + len};
    for (;;) {
        while (c.p < c.end && (*c.p == ',' || *c.p == ' ' || *c.p == '\t'))
            c.p++;
        if (c.p == c.end)
            return true;
        if (cfg->deflate != SN_ON || pmd->on || !client_accept_pmd(&c, cfg, pmd))
            return false; /* an extension we did not offer, or ours twice */
    }
}

/* Reads the answer's head (status line and headers) into the connection's
 * buffer; *head points at it, *len is its length with the empty line. */
static int read_response(sn_conn *c, const char **head, size_t *len, int64_t dl)
{
    size_t have = 0;
    for (;;) {
        const void *data;
        ssize_t n = sn_peek(c, have + 1, &data, dl);
        if (n < 0)
            return n == SN_EOF ? SN_EWS_HANDSHAKE : (int)n;
        if ((size_t)n <= have)
            return SN_EWS_HANDSHAKE; /* the stream ended inside the head */
        const char *end = memmem(data, (size_t)n, "\r\n\r\n", 4);
        if (end != NULL) {
            *head = data;
            *len = (size_t)(end + 4 - (const char *)data);
            return 0;
        }
        if ((size_t)n >= SN_WS_RESPONSE_MAX)
            return SN_EWS_HANDSHAKE;
        have = (size_t)n;
    }
}

/* The answer's headers, one at a time: false at the empty line. */
static bool next_header(const char **p, const char *end, sn_http_header *h)
{
    const char *eol = memmem(*p, (size_t)(end - *p), "\r\n", 2);
    if (eol == NULL || eol == *p)
        return false;
    const char *colon = memchr(*p, ':', (size_t)(eol - *p));
    if (colon == NULL) {
        h->name_len = 0; /* malformed: the caller fails */
        *p = eol + 2;
        return true;
    }
    const char *v = colon + 1, *ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    *h = (sn_http_header){*p, (size_t)(colon - *p), v, (size_t)(ve - v)};
    *p = eol + 2;
    return true;
}

static bool header_is(const sn_http_header *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Checks the server's answer against our request. Upgrade, Connection and
 * Sec-WebSocket-Extensions are lists, read on every line; Sec-WebSocket-Accept
 * and Sec-WebSocket-Protocol must appear once (RFC 6455 section 11.3). */
static int check_response(const char *head, size_t len, const char *accept, const sn_ws_config *cfg,
                          sn__pmd *pmd, const char **proto, size_t *proto_len, int *status)
{
    const char *p = head, *end = head + len;
    if (len < 12 || memcmp(head, "HTTP/1.1 ", 9) != 0)
        return SN_EWS_HANDSHAKE;
    *status = atoi(head + 9);
    if (*status != 101)
        return SN_EWS_HANDSHAKE;
    p = memmem(head, len, "\r\n", 2) + 2;
    bool upgrade = false, connection = false, accepted = false;
    int accepts = 0;
    sn_http_header h;
    *pmd = (sn__pmd){0};
    *proto = NULL;
    while (next_header(&p, end, &h)) {
        if (h.name_len == 0)
            return SN_EWS_HANDSHAKE;
        if (header_is(&h, "Upgrade"))
            upgrade = upgrade || sn_http_has_token(h.value, h.value_len, "websocket");
        else if (header_is(&h, "Connection"))
            connection = connection || sn_http_has_token(h.value, h.value_len, "upgrade");
        else if (header_is(&h, "Sec-WebSocket-Accept"))
            accepted = accepts++ == 0 && h.value_len == SN_WS_ACCEPT_LEN &&
                       memcmp(h.value, accept, h.value_len) == 0; /* a second one: no */
        else if (header_is(&h, "Sec-WebSocket-Protocol")) {
            bool offered = false;
            for (size_t i = 0; i < cfg->nsubprotocols && !offered; i++)
                offered = strlen(cfg->subprotocols[i]) == h.value_len &&
                          memcmp(cfg->subprotocols[i], h.value, h.value_len) == 0;
            if (!offered || *proto != NULL)
                return SN_EWS_HANDSHAKE; /* not one we offered, or a second one */
            *proto = h.value;
            *proto_len = h.value_len;
        } else if (header_is(&h, "Sec-WebSocket-Extensions") &&
                   !client_accept_exts(h.value, h.value_len, cfg, pmd)) {
            return SN_EWS_HANDSHAKE;
        }
    }
    return upgrade && connection && accepted ? 0 : SN_EWS_HANDSHAKE;
}

int sn_ws_handshake(sn_ws **out, sn_conn *c, const char *host, const char *path,
                    const char *extra_headers, const sn_ws_config *cfg, int *status, sn_deadline dl)
{
    sn_ws_config conf;
    int st = 0;
    if (status != NULL)
        *status = 0;
    if (out == NULL || c == NULL || host == NULL || path == NULL || path[0] != '/' ||
        sn__ws_config_check(&conf, cfg) < 0)
        return SN_EINVAL;
    int64_t deadline = sn__deadline_abs(dl, sn_conn_sock(c)->read_timeout_ms);

    byte raw[16];
    char key[SN_WS_KEY_LEN + 4], accept[SN_WS_ACCEPT_LEN + 1], offer[200], protos[512];
    word32 klen = sizeof key;
    WC_RNG rng;
    if (wc_InitRng(&rng) != 0)
        return SN_ENOMEM;
    int ok = wc_RNG_GenerateBlock(&rng, raw, sizeof raw);
    wc_FreeRng(&rng);
    if (ok != 0 || Base64_Encode_NoNl(raw, sizeof raw, (byte *)key, &klen) != 0)
        return SN_EIO;
    key[klen] = '\0';
    int rc = sn__ws_accept_key(key, klen, accept);
    if (rc < 0)
        return rc;
    client_offer(&conf, offer, sizeof offer);
    size_t pn = 0;
    protos[0] = '\0';
    for (size_t i = 0; i < conf.nsubprotocols && pn < sizeof protos; i++)
        pn += (size_t)snprintf(protos + pn, sizeof protos - pn, "%s%s", i ? ", " : "",
                               conf.subprotocols[i]);
    ssize_t w =
        sn_printf(c, deadline,
                  "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n%s%s%s%s%s%s%s\r\n",
                  path, host, key, pn ? "Sec-WebSocket-Protocol: " : "", protos, pn ? "\r\n" : "",
                  conf.deflate == SN_ON ? "Sec-WebSocket-Extensions: " : "",
                  conf.deflate == SN_ON ? offer : "", conf.deflate == SN_ON ? "\r\n" : "",
                  extra_headers ? extra_headers : "");
    if (w >= 0)
        w = sn_flush(c, deadline);
    if (w < 0)
        return (int)w;

    const char *head = NULL, *proto = NULL;
    size_t hlen = 0, proto_len = 0;
    sn__pmd pmd;
    if ((rc = read_response(c, &head, &hlen, deadline)) < 0)
        return rc;
    rc = check_response(head, hlen, accept, &conf, &pmd, &proto, &proto_len, &st);
    if (status != NULL)
        *status = st;
    if (rc < 0)
        return rc;
    if ((rc = sn_discard(c, hlen, deadline)) < 0) /* frames may follow in the buffer */
        return rc;
    return sn__ws_new(out, c, false, &conf, &pmd, proto, proto_len, path, strlen(path));
}

/* A TLS connection for wss://, with the caller's context or a default one;
 * a failed handshake's reason goes to cfg->tls_reason. */
static int connect_tls(sn_conn **out, const sn_ws_config *cfg, const char *host, int port,
                       int64_t deadline)
{
    sn_tls *tls = cfg != NULL ? cfg->tls : NULL, *own = NULL;
    char *why = cfg != NULL && cfg->tls_reason_cap > 0 ? cfg->tls_reason : NULL;
    int rc = 0;
    if (why != NULL)
        why[0] = '\0';
    if (tls == NULL)
        rc = sn_tls_new(&own, &(sn_tls_config){.role = SN_TLS_CLIENT,
                                               .reason = why,
                                               .reason_cap = why ? cfg->tls_reason_cap : 0});
    if (rc == 0 &&
        (rc = sn_tls_connect(out, tls != NULL ? tls : own, host, port, NULL, NULL, deadline)) < 0) {
        if (why != NULL && *out != NULL)
            snprintf(why, cfg->tls_reason_cap, "%s", sn_tls_reason(*out));
        sn_conn_free(*out); /* a failed handshake's connection, kept for its reason */
        *out = NULL;
    }
    sn_tls_free(own); /* the connection holds its own reference */
    return rc;
}

int sn_ws_connect(sn_ws **out, const char *url, const char *extra_headers, const sn_ws_config *cfg,
                  int *status, sn_deadline dl)
{
    char authority[300], host[300];
    int port;
    if (status != NULL)
        *status = 0;
    if (out == NULL || url == NULL)
        return SN_EINVAL;
    bool tls = strncasecmp(url, "wss://", 6) == 0;
    if ((!tls && strncasecmp(url, "ws://", 5) != 0) || strchr(url, '#') != NULL)
        return SN_EBADADDR; /* RFC 6455 section 3: no fragment in a WebSocket URI */
    const char *a = url + (tls ? 6 : 5);
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || alen >= sizeof authority)
        return SN_EBADADDR;
    memcpy(authority, a, alen);
    authority[alen] = '\0';
    const char *path = a[alen] == '/' ? a + alen : a[alen] == '?' ? NULL : "/";
    char pbuf[2048];
    if (path == NULL) { /* "ws://host?q": the path is "/" before the query */
        if (snprintf(pbuf, sizeof pbuf, "/%s", a + alen) >= (int)sizeof pbuf)
            return SN_EBADADDR;
        path = pbuf;
    }
    if (sn_hostport_split(authority, host, sizeof host, &port, tls ? 443 : 80) < 0)
        return SN_EBADADDR;
    int64_t deadline = sn__deadline_abs(dl, 30000);
    sn_conn *c;
    int rc = tls ? connect_tls(&c, cfg, host, port, deadline)
                 : sn_conn_connect(&c, host, port, NULL, NULL, deadline);
    if (rc < 0)
        return rc;
    sn_ws *ws;
    if ((rc = sn_ws_handshake(&ws, c, authority, path, extra_headers, cfg, status, deadline)) < 0) {
        sn_conn_free(c);
        return rc;
    }
    ws->own_conn = true;
    *out = ws;
    return 0;
}
