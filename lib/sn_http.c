/* SPDX-License-Identifier: MIT */
/*
 * sn_http.c: the HTTP/1.1 request-head parser (strict, stateless,
 * allocation-free; see socknet/http.h for what strict means), reading a head
 * from a connection, and tiny responses.
 *
 * The parser walks the bytes once, straight down: empty lines, the request
 * line (method SP target SP version CRLF), then header lines until an empty
 * one. Whenever the bytes run out it decides between "give me more"
 * (SN_EAGAIN) and "too big already" by the limits, so that a reader stops
 * early on an oversized head.
 */
#include <limits.h>
#include <string.h>
#include <strings.h>
#include "sn_sock_int.h"
#include "sn_util.h"
#include "socknet.h"

#define SN_HTTP_MAX_HEAD 8192
#define SN_HTTP_MAX_LINE 4096
#define SN_HTTP_MAX_HEADERS 64

struct parse {
    const char *buf;
    size_t n;    /* bytes looked at: min(len, max_head) */
    bool capped; /* there were max_head bytes or more */
    size_t max_line;
};

/* tchar (RFC 9110 section 5.6.2): the characters of methods and names. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* A field-value character: visible, obs-text, space or tab. */
static bool is_value_char(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* The bytes ran out in the line that starts at ls: SN_EAGAIN, unless the
 * line or the head is already over its limit. */
static int need_more(const struct parse *ps, size_t ls, bool request_line)
{
    if (ps->n - ls >= ps->max_line)
        return request_line ? SN_EHTTP_URI_TOO_LONG : SN_EHTTP_HEAD_TOO_BIG;
    return ps->capped ? SN_EHTTP_HEAD_TOO_BIG : SN_EAGAIN;
}

/* CRLF at *p: 1 and past it, 0 when the bytes end first, or SN_EHTTP_BAD. */
static int crlf(const struct parse *ps, size_t *p)
{
    if (*p == ps->n)
        return 0;
    if (ps->buf[*p] != '\r')
        return SN_EHTTP_BAD;
    if (*p + 1 == ps->n)
        return 0;
    if (ps->buf[*p + 1] != '\n')
        return SN_EHTTP_BAD;
    *p += 2;
    return 1;
}

/* The path and query of the target (origin-form "/p?q", asterisk-form "*",
 * or absolute-form "scheme://authority/p?q"). */
static int split_target(sn_http_request *r)
{
    const char *t = r->target, *end = t + r->target_len;
    const char *path = t;
    if (t[0] != '/' && !(r->target_len == 1 && t[0] == '*')) {
        const char *sep = memchr(t, ':', r->target_len);
        if (sep == NULL || sep == t || end - sep < 3 || memcmp(sep, "://", 3) != 0)
            return SN_EHTTP_BAD;
        for (const char *s = t; s < sep; s++)
            if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (s > t && ((*s >= '0' && *s <= '9') || *s == '+' || *s == '-' || *s == '.'))))
                return SN_EHTTP_BAD;
        path = sep + 3;
        while (path < end && *path != '/' && *path != '?')
            path++;
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    r->path = path;
    r->path_len = (size_t)((q != NULL ? q : end) - path);
    r->query = q != NULL ? q + 1 : NULL;
    r->query_len = q != NULL ? (size_t)(end - q - 1) : 0;
    return 0;
}

/* "HTTP/1.x" at *p; 1 and past it, 0 for more bytes, or an error. */
static int version(const struct parse *ps, size_t *p, int *minor)
{
    static const char proto[] = "HTTP/";
    size_t have = ps->n - *p;
    const char *v = ps->buf + *p;
    if (memcmp(v, proto, have < 5 ? have : 5) != 0)
        return SN_EHTTP_BAD;
    for (size_t i = 5; i < have && i < 8; i++)
        if (i == 6 ? v[i] != '.' : !(v[i] >= '0' && v[i] <= '9'))
            return SN_EHTTP_BAD;
    if (have < 8)
        return 0;
    if (v[5] != '1')
        return SN_EHTTP_VERSION;
    *minor = v[7] - '0';
    *p += 8;
    return 1;
}

/* The request line from *p. Returns 1 and past it, or what need_more or a
 * check says. */
static int request_line(const struct parse *ps, size_t *p, sn_http_request *r)
{
    const char *b = ps->buf;
    size_t ls = *p, i = ls;
    while (i < ps->n && is_tchar((unsigned char)b[i]))
        i++;
    if (i == ps->n)
        return need_more(ps, ls, true);
    if (i == ls || b[i] != ' ')
        return SN_EHTTP_BAD;
    r->method = b + ls;
    r->method_len = i - ls;
    size_t ts = ++i;
    while (i < ps->n && (unsigned char)b[i] > 0x20 && (unsigned char)b[i] < 0x7f)
        i++;
    if (i == ps->n)
        return need_more(ps, ls, true);
    if (i == ts || b[i] != ' ')
        return SN_EHTTP_BAD;
    r->target = b + ts;
    r->target_len = i - ts;
    i++;
    int rc = version(ps, &i, &r->minor_version);
    if (rc == 1)
        rc = crlf(ps, &i);
    if (rc == 0)
        return need_more(ps, ls, true);
    if (rc < 0)
        return rc;
    if (i - ls > ps->max_line)
        return SN_EHTTP_URI_TOO_LONG;
    if ((rc = split_target(r)) < 0)
        return rc;
    *p = i;
    return 1;
}

/* One header line from *p into h. Returns 1 and past it, 2 at the empty
 * line that ends the head (past it too), or need_more's or a check's
 * answer. */
static int header_line(const struct parse *ps, size_t *p, sn_http_header *h)
{
    const char *b = ps->buf;
    size_t ls = *p, i = ls;
    int rc = crlf(ps, &i);
    if (rc != SN_EHTTP_BAD) { /* an empty line, or the start of one */
        if (rc == 0)
            return need_more(ps, ls, false);
        *p = i;
        return 2;
    }
    while (i < ps->n && is_tchar((unsigned char)b[i]))
        i++;
    if (i == ps->n)
        return need_more(ps, ls, false);
    if (i == ls || b[i] != ':') /* also a folded line, or a space before ':' */
        return SN_EHTTP_BAD;
    h->name = b + ls;
    h->name_len = i - ls;
    i++;
    while (i < ps->n && (b[i] == ' ' || b[i] == '\t'))
        i++;
    size_t vs = i;
    while (i < ps->n && is_value_char((unsigned char)b[i]))
        i++;
    size_t ve = i;
    while (ve > vs && (b[ve - 1] == ' ' || b[ve - 1] == '\t'))
        ve--;
    h->value = b + vs;
    h->value_len = ve - vs;
    if ((rc = crlf(ps, &i)) == 0)
        return need_more(ps, ls, false);
    if (rc < 0)
        return rc;
    if (i - ls > ps->max_line)
        return SN_EHTTP_HEAD_TOO_BIG;
    *p = i;
    return 1;
}

int sn_http_parse_request(const char *buf, size_t len, const sn_http_limits *lim,
                          sn_http_header *headers, size_t max_headers, sn_http_request *out)
{
    if ((buf == NULL && len > 0) || out == NULL || (headers == NULL && max_headers > 0))
        return SN_EINVAL;
    size_t max_head = lim != NULL && lim->max_head ? lim->max_head : SN_HTTP_MAX_HEAD;
    size_t max_hdrs = lim != NULL && lim->max_headers ? lim->max_headers : SN_HTTP_MAX_HEADERS;
    struct parse ps = {
        .buf = buf,
        .n = SN_MIN(len, max_head),
        .capped = len >= max_head,
        .max_line = lim != NULL && lim->max_line ? lim->max_line : SN_HTTP_MAX_LINE,
    };
    max_hdrs = SN_MIN(max_hdrs, max_headers);
    *out = (sn_http_request){.headers = headers};

    size_t p = 0;
    while (p + 1 < ps.n && buf[p] == '\r' && buf[p + 1] == '\n')
        p += 2; /* empty lines before the request line */
    if (p + 1 == ps.n && buf[p] == '\r')
        return need_more(&ps, p, true); /* the CR of one more: its LF may follow */
    int rc = request_line(&ps, &p, out);
    if (rc < 0)
        return rc;
    for (;;) {
        sn_http_header h;
        if ((rc = header_line(&ps, &p, &h)) < 0)
            return rc;
        if (rc == 2)
            break;
        if (out->nheaders == max_hdrs)
            return SN_EHTTP_HEAD_TOO_BIG;
        headers[out->nheaders++] = h;
    }
    out->head_len = p;
    return p > (size_t)INT_MAX ? SN_EHTTP_HEAD_TOO_BIG : (int)p;
}

int sn_http_peek_request(sn_conn *c, const sn_http_limits *lim, sn_http_header *headers,
                         size_t max_headers, sn_http_request *out, sn_deadline dl)
{
    if (c == NULL || out == NULL)
        return SN_EINVAL;
    /* one deadline for the whole head, however many reads it takes */
    int64_t deadline = sn__deadline_abs(dl, sn_conn_sock(c)->read_timeout_ms);
    size_t have = 0;
    for (;;) {
        const void *data;
        ssize_t n = sn_peek(c, have + 1, &data, deadline);
        if (n == SN_ETOOBIG) /* longer than the connection's buffer may grow */
            return SN_EHTTP_HEAD_TOO_BIG;
        if (n < 0)
            return n == SN_EOF && have > 0 ? SN_EHTTP_BAD : (int)n;
        if ((size_t)n <= have)
            return SN_EHTTP_BAD; /* the stream ended inside the head */
        int rc = sn_http_parse_request(data, (size_t)n, lim, headers, max_headers, out);
        if (rc != SN_EAGAIN)
            return rc;
        have = (size_t)n;
    }
}

int sn_http_read_request(sn_conn *c, const sn_http_limits *lim, sn_http_header *headers,
                         size_t max_headers, sn_http_request *out, sn_deadline dl)
{
    if (c == NULL || out == NULL)
        return SN_EINVAL;
    int64_t deadline = sn__deadline_abs(dl, sn_conn_sock(c)->read_timeout_ms);
    int rc = sn_http_peek_request(c, lim, headers, max_headers, out, deadline);
    if (rc > 0) {
        int drc = sn_discard(c, (size_t)rc, deadline);
        return drc < 0 ? drc : rc;
    }
    return rc;
}

/* ---- looking at a parsed request --------------------------------------------------- */

static bool name_is(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

const sn_http_header *sn_http_find(const sn_http_request *r, const char *name)
{
    return sn_http_find_next(r, name, NULL);
}

/* The index just after prev in r's headers: 0 for NULL, r->nheaders when
 * prev is not one of them. The range is checked on integers first, since C
 * defines pointer subtraction only inside one array; then the walk over a
 * field's lines is linear, not quadratic in the number of headers. */
static size_t index_after(const sn_http_request *r, const sn_http_header *prev)
{
    if (prev == NULL)
        return 0;
    uintptr_t p = (uintptr_t)prev, first = (uintptr_t)r->headers;
    if (p < first || p >= first + r->nheaders * sizeof *prev || (p - first) % sizeof *prev)
        return r->nheaders;
    return (size_t)(prev - r->headers) + 1;
}

const sn_http_header *sn_http_find_next(const sn_http_request *r, const char *name,
                                        const sn_http_header *prev)
{
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = index_after(r, prev); i < r->nheaders; i++) {
        const sn_http_header *h = &r->headers[i];
        if (name_is(h->name, h->name_len, name))
            return h;
    }
    return NULL;
}

size_t sn_http_count(const sn_http_request *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; r != NULL && name != NULL && i < r->nheaders; i++)
        n += name_is(r->headers[i].name, r->headers[i].name_len, name);
    return n;
}

bool sn_http_has_token(const char *value, size_t len, const char *token)
{
    size_t i = 0;
    if (value == NULL || token == NULL)
        return false;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t s = i;
        while (i < len && value[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
            e--;
        if (e > s && name_is(value + s, e - s, token))
            return true;
    }
    return false;
}

bool sn_http_field_has_token(const sn_http_request *r, const char *name, const char *token)
{
    for (const sn_http_header *h = NULL; (h = sn_http_find_next(r, name, h)) != NULL;)
        if (sn_http_has_token(h->value, h->value_len, token))
            return true;
    return false;
}

bool sn_http_method_is(const sn_http_request *r, const char *m)
{
    return r != NULL && m != NULL && strlen(m) == r->method_len &&
           memcmp(r->method, m, r->method_len) == 0;
}

bool sn_http_keep_alive(const sn_http_request *r)
{
    if (r == NULL || sn_http_field_has_token(r, "Connection", "close"))
        return false;
    return r->minor_version > 0 || sn_http_field_has_token(r, "Connection", "keep-alive");
}

int sn_http_content_length(const sn_http_request *r, size_t *len)
{
    if (r == NULL || len == NULL)
        return SN_EINVAL;
    if (sn_http_find(r, "Transfer-Encoding") != NULL)
        return SN_EHTTP_LENGTH; /* chunked bodies are not read here */
    size_t n = sn_http_count(r, "Content-Length");
    *len = 0;
    if (n == 0)
        return 0;
    const sn_http_header *h = sn_http_find(r, "Content-Length");
    if (n > 1 || h->value_len == 0 || h->value_len > 15)
        return SN_EHTTP_BAD; /* two lengths could be read two ways */
    size_t v = 0;
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] < '0' || h->value[i] > '9')
            return SN_EHTTP_BAD;
        v = v * 10 + (size_t)(h->value[i] - '0');
    }
    *len = v;
    return 0;
}

int sn_http_status_for(int err)
{
    switch (err) {
    case SN_EHTTP_BAD:
        return 400;
    case SN_EHTTP_URI_TOO_LONG:
        return 414;
    case SN_EHTTP_HEAD_TOO_BIG:
        return 431;
    case SN_EHTTP_VERSION:
        return 505;
    case SN_EHTTP_LENGTH:
        return 411;
    case SN_EHTTP_BODY_TOO_BIG:
        return 413;
    case SN_ETIMEDOUT:
        return 408; /* the request did not come whole in time */
    default:
        return 500;
    }
}

const char *sn_http_reason(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int sn_http_respond(sn_conn *c, int status, const char *extra_headers, const void *body, size_t len,
                    bool close, sn_deadline dl)
{
    if (c == NULL || status < 100 || status > 599 || (body == NULL && len > 0))
        return SN_EINVAL;
    ssize_t rc = sn_printf(c, dl, "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n%s\r\n", status,
                           sn_http_reason(status), extra_headers != NULL ? extra_headers : "", len,
                           close ? "Connection: close\r\n" : "");
    if (rc >= 0 && len > 0)
        rc = sn_write(c, body, len, dl);
    if (rc >= 0)
        rc = sn_flush(c, dl);
    return rc < 0 ? (int)rc : 0;
}
