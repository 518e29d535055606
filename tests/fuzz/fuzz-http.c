/* SPDX-License-Identifier: MIT */
/*
 * fuzz-http: the HTTP/1.1 request-head parser (sn_http_parse_request) and
 * the helpers that read a parsed head. The first byte chooses tight or
 * default limits; the rest is the head. Properties: the parser returns a
 * length within the input or one of its documented errors; everything it
 * fills in points into the input; a strict prefix of a complete head is
 * incomplete (SN_EAGAIN), never a different verdict; sn_http_find_next walks
 * as many lines of a field as sn_http_count counts, and a token is in the
 * field (sn_http_field_has_token) when it is in one of its lines.
 */
#include "fuzz.h"
#include "sn_util.h"

static bool inside(const uint8_t *buf, size_t len, const char *p, size_t n)
{
    return (const uint8_t *)p >= buf && (const uint8_t *)p + n <= buf + len;
}

static void read_head(const uint8_t *buf, int rc, const sn_http_request *r)
{
    size_t n = (size_t)rc;
    FUZZ_ASSERT(r->head_len == n);
    FUZZ_ASSERT(inside(buf, n, r->method, r->method_len) && r->method_len > 0);
    FUZZ_ASSERT(inside(buf, n, r->target, r->target_len) && r->target_len > 0);
    FUZZ_ASSERT(inside((const uint8_t *)r->target, r->target_len, r->path, r->path_len));
    FUZZ_ASSERT(r->query == NULL || inside(buf, n, r->query, r->query_len));
    FUZZ_ASSERT(r->minor_version >= 0 && r->minor_version <= 9);
    for (size_t i = 0; i < r->nheaders; i++) {
        const sn_http_header *h = &r->headers[i];
        FUZZ_ASSERT(inside(buf, n, h->name, h->name_len) && h->name_len > 0);
        FUZZ_ASSERT(h->value_len == 0 || inside(buf, n, h->value, h->value_len));
        sn_http_has_token(h->value, h->value_len, "upgrade");
        FUZZ_ASSERT(sn_http_find(r, "x") == NULL || sn_http_count(r, "x") > 0);
    }
    size_t len;
    int cl = sn_http_content_length(r, &len);
    FUZZ_ASSERT(cl == 0 || cl == SN_EHTTP_BAD || cl == SN_EHTTP_LENGTH);
    sn_http_keep_alive(r);
    sn_http_method_is(r, "GET");
    const sn_http_header *h = sn_http_find(r, "sec-websocket-key");
    FUZZ_ASSERT(h == NULL || sn_http_count(r, "Sec-WebSocket-Key") >= 1);
    size_t lines = 0;
    bool upgrade = false;
    for (h = NULL; (h = sn_http_find_next(r, "connection", h)) != NULL; lines++)
        upgrade = upgrade || sn_http_has_token(h->value, h->value_len, "upgrade");
    FUZZ_ASSERT(lines == sn_http_count(r, "Connection"));
    FUZZ_ASSERT(sn_http_field_has_token(r, "Connection", "Upgrade") == upgrade);
}

static bool known_error(int rc)
{
    return rc == SN_EAGAIN || rc == SN_EHTTP_BAD || rc == SN_EHTTP_URI_TOO_LONG ||
           rc == SN_EHTTP_HEAD_TOO_BIG || rc == SN_EHTTP_VERSION;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sn_http_limits tight = {.max_head = 300, .max_line = 100, .max_headers = 6};
    const sn_http_limits *lim = data[0] & 1 ? &tight : NULL;
    size_t max_headers = data[0] & 2 ? 3 : 64;
    uint8_t *buf = fuzz_copy(data + 1, size - 1);
    size_t len = size - 1;
    sn_http_header headers[64];
    sn_http_request r;
    int rc = sn_http_parse_request((const char *)buf, len, lim, headers, max_headers, &r);
    if (rc > 0) {
        FUZZ_ASSERT((size_t)rc <= len);
        FUZZ_ASSERT(r.nheaders <= max_headers);
        read_head(buf, rc, &r);
        for (size_t cut = (size_t)rc / 2; cut < (size_t)rc; cut += SN_MAX((size_t)rc / 8, 1))
            FUZZ_ASSERT(sn_http_parse_request((const char *)buf, cut, lim, headers, max_headers,
                                              &r) == SN_EAGAIN);
    } else {
        FUZZ_ASSERT(known_error(rc));
        FUZZ_ASSERT(sn_http_status_for(rc) >= 400 || rc == SN_EAGAIN);
    }
    free(buf);
    return 0;
}
