/* SPDX-License-Identifier: MIT */
/*
 * socknet/http.h: a strict, stateless, allocation-free parser for HTTP/1.1
 * request heads (RFC 9112), reading a head from a connection with limits and
 * one deadline, and tiny responses.
 * It is the front door of the WebSocket server: enough HTTP to route a
 * request, answer it simply, or upgrade it.
 *
 * The parser is given the bytes received so far and parses them from the
 * start each time (picohttpparser's way): it keeps no state and allocates
 * nothing. What it fills in points into the caller's bytes.
 *
 * Strict means: CRLF line endings only (a bare CR or LF is an error, so no
 * request can be read two ways); no space before a header's colon; no
 * obsolete line folding; no control characters in the request target or in
 * field values (HTAB allowed in values); the method a token; the version
 * HTTP/1.x (another major version is SN_EHTTP_VERSION). Empty lines before
 * the request line are skipped, as RFC 9112 section 2.2 allows.
 *
 * A field sent on several lines is one list: the lines' values joined by
 * commas, in order (RFC 9110 section 5.3). sn_http_find_next walks those
 * lines, and sn_http_field_has_token looks for a token in all of them;
 * sn_http_find gives the first line only, for fields that must appear once
 * (sn_http_count tells how often one did).
 *
 * Errors map to the status a server should answer (sn_http_status_for):
 * SN_EHTTP_BAD 400, SN_EHTTP_URI_TOO_LONG 414, SN_EHTTP_HEAD_TOO_BIG 431,
 * SN_EHTTP_VERSION 505; for bodies, SN_EHTTP_LENGTH 411 and
 * SN_EHTTP_BODY_TOO_BIG 413.
 */
#ifndef SOCKNET_HTTP_H
#define SOCKNET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "socknet/chan.h"
#include "socknet/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One header field: name and value point into the parsed bytes; the value
 * has no leading or trailing whitespace. Neither is NUL-terminated. */
typedef struct sn_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sn_http_header;

/* A parsed request head. Every pointer points into the parsed bytes (see
 * sn_http_read_request for how long they stay valid); none is
 * NUL-terminated.
 * Thread safety: a plain value; one thread at a time.
 * Ownership: the caller's; it owns no memory. */
typedef struct sn_http_request {
    const char *method; /* "GET", ... (case-sensitive, as sent) */
    size_t method_len;
    const char *target; /* the request target as sent: "/chat/room?x=1" */
    size_t target_len;
    const char *path; /* the target up to '?' (or all of it) */
    size_t path_len;
    const char *query; /* after '?', without it; NULL when there is no '?' */
    size_t query_len;
    int minor_version;       /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
    sn_http_header *headers; /* the caller's array, filled in order */
    size_t nheaders;
    size_t head_len; /* bytes of the head, its final empty line included */
} sn_http_request;

/* Limits on a request head; zero means the default. */
typedef struct sn_http_limits {
    size_t max_head;    /* bytes of the whole head; 0 = 8192 (SN_EHTTP_HEAD_TOO_BIG) */
    size_t max_line;    /* bytes of the request line (SN_EHTTP_URI_TOO_LONG) and of
                           each header line (SN_EHTTP_HEAD_TOO_BIG), CRLF included;
                           0 = 4096 */
    size_t max_headers; /* header fields; 0 = 64, and never more than the array
                           given (SN_EHTTP_HEAD_TOO_BIG) */
} sn_http_limits;

/* Parses the request head at the start of buf[0, len). headers has room for
 * max_headers fields. lim may be NULL (defaults).
 * Returns the head's length (> 0; also in out->head_len) once the head is
 * complete and valid; SN_EAGAIN when the bytes so far are a valid beginning
 * of a head within the limits (receive more and call again with all of
 * them); SN_EHTTP_BAD, SN_EHTTP_URI_TOO_LONG, SN_EHTTP_HEAD_TOO_BIG,
 * SN_EHTTP_VERSION (see the top of this file); SN_EINVAL for NULL
 * arguments. Limits are checked on incomplete heads too, so a reader can
 * stop as soon as a head is too big. */
SN_API int sn_http_parse_request(const char *buf, size_t len, const sn_http_limits *lim,
                                 sn_http_header *headers, size_t max_headers, sn_http_request *out);

/* Reads one request head from c, within the limits and before the deadline
 * dl for the whole head (a client that sends a byte at a time cannot hold
 * the connection past it). The head is consumed; what follows it (a body,
 * WebSocket frames) stays buffered in c. out's pointers point into c's read
 * buffer and stay valid until the next read on c.
 * Returns the head's length, or SN_EHTTP_* as sn_http_parse_request,
 * SN_ETIMEDOUT, SN_EOF (the peer closed before sending anything), SN_EHTTP_BAD
 * (the peer closed inside a head), or the connection's error. The limits
 * must fit the connection's read_buffer_max (SN_EINVAL otherwise). */
SN_API int sn_http_read_request(sn_conn *c, const sn_http_limits *lim, sn_http_header *headers,
                                size_t max_headers, sn_http_request *out, sn_deadline dl);

/* Like sn_http_read_request, but leaves the head in c's buffer (sn_discard
 * head-length bytes to consume it), so that its pointers stay valid while
 * a body after it is peeked too. Same returns. */
SN_API int sn_http_peek_request(sn_conn *c, const sn_http_limits *lim, sn_http_header *headers,
                                size_t max_headers, sn_http_request *out, sn_deadline dl);

/* Whether the client lets the connection carry another request (RFC 9112
 * section 9.3): never with the "close" option in Connection, else HTTP/1.1
 * always and HTTP/1.0 only with the "keep-alive" option; every Connection
 * line is read. false for NULL. */
SN_API bool sn_http_keep_alive(const sn_http_request *r);

/* The request body's length from its one Content-Length (0 when there is
 * none). Returns 0, SN_EHTTP_BAD (several, or not a decimal number below
 * 10^15), SN_EHTTP_LENGTH (a Transfer-Encoding: chunked bodies are not
 * supported; answer 411), SN_EINVAL. */
SN_API int sn_http_content_length(const sn_http_request *r, size_t *len);

/* The first header named name (case-insensitive), or NULL. */
SN_API const sn_http_header *sn_http_find(const sn_http_request *r, const char *name);

/* The next header named name (case-insensitive) after prev, in the order
 * they were sent; prev NULL gives the first (as sn_http_find). This walks
 * every line of a field sent on several lines:
 *
 *     for (const sn_http_header *h = NULL; (h = sn_http_find_next(r, "Via", h)) != NULL;)
 *         use(h->value, h->value_len);
 *
 * r: a parsed request; name: NUL-terminated; prev: NULL, or one of
 * r->headers (usually the one this function or sn_http_find returned).
 * Returns a header of r->headers (valid as long as r's), or NULL when no
 * later header has that name, r or name is NULL, or prev is not one of
 * r's headers. */
SN_API const sn_http_header *sn_http_find_next(const sn_http_request *r, const char *name,
                                               const sn_http_header *prev);

/* How many headers are named name (case-insensitive). */
SN_API size_t sn_http_count(const sn_http_request *r, const char *name);

/* Whether the comma-separated list value[0, len) holds token
 * (case-insensitive, whitespace around elements ignored), as in
 * "Connection: keep-alive, Upgrade". */
SN_API bool sn_http_has_token(const char *value, size_t len, const char *token);

/* Whether the list of the field name (case-insensitive) holds token
 * (case-insensitive), the field's lines taken as one list (RFC 9110
 * section 5.3): "Connection: keep-alive" and "Connection: Upgrade" on two
 * lines hold "upgrade" as "Connection: keep-alive, Upgrade" does. Returns
 * false when no line holds it, no header has that name, or an argument is
 * NULL. */
SN_API bool sn_http_field_has_token(const sn_http_request *r, const char *name, const char *token);

/* Whether the request's method is m (case-sensitive, as RFC 9110 says). */
SN_API bool sn_http_method_is(const sn_http_request *r, const char *m);

/* The status a server should answer for err (400, 411, 413, 414, 431, 505;
 * 408 for SN_ETIMEDOUT: the request did not come whole in time), or 500 for
 * any other code. */
SN_API int sn_http_status_for(int err);

/* The reason phrase of status ("Not Found"), or "Unknown" for a status
 * this library does not know. Never NULL; static. */
SN_API const char *sn_http_reason(int status);

/* Sends a complete response: the status line, `extra_headers` as given
 * (each line ending in CRLF, or NULL), Content-Length, Connection: close
 * when close is true, an empty line and the body (len bytes; may be 0),
 * then flushes, all before dl. Content-Type is the caller's to put in
 * extra_headers. Returns 0 or the connection's error (SN_EINVAL for a
 * status outside 100-599 or a NULL body with len > 0). */
SN_API int sn_http_respond(sn_conn *c, int status, const char *extra_headers, const void *body,
                           size_t len, bool close, sn_deadline dl);

#ifdef __cplusplus
}
#endif
#endif
