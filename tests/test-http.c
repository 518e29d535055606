/* SPDX-License-Identifier: MIT */
/*
 * test-http.c: the HTTP/1.1 request-head parser, strict about every rule it
 * states, fed whole, byte by byte, and right before a guard page (so that a
 * read past the end faults); reading a head from a connection with limits
 * and one deadline; responses.
 */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_test.h"

#define MAXH 16

/* Parses text with its bytes ending right before an inaccessible page. */
static int parse_guarded(const char *text, size_t len, const sn_http_limits *lim, sn_http_header *h,
                         size_t nh, sn_http_request *r)
{
    static char *page;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    if (page == NULL) {
        page = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED || mprotect(page + 3 * ps, ps, PROT_NONE) != 0)
            return -999;
    }
    if (len > 3 * ps)
        return -998;
    char *at = page + 3 * ps - len;
    memcpy(at, text, len);
    return sn_http_parse_request(at, len, lim, h, nh, r);
}

/* Every proper prefix must say SN_EAGAIN, and the whole text `want`. */
static void check_prefixes(const char *text, int want)
{
    size_t len = strlen(text);
    sn_http_header h[MAXH];
    sn_http_request r;
    for (size_t i = 0; i < len; i++) {
        int rc = parse_guarded(text, i, NULL, h, MAXH, &r);
        if (rc == want)
            return; /* an error found early is found for good; a head may be followed */
        if (rc != SN_EAGAIN) {
            fprintf(stderr, "prefix %zu of %s: %s\n", i, text, sn_err_name(rc));
            CU_FAIL("a prefix did not ask for more");
            return;
        }
    }
    SN_ASSERT_RC(parse_guarded(text, len, NULL, h, MAXH, &r), want);
}

static bool eq(const char *p, size_t len, const char *want)
{
    return p != NULL && strlen(want) == len && memcmp(p, want, len) == 0;
}

static void test_simple_get(void)
{
    const char *req = "GET /chat/room?x=1&y HTTP/1.1\r\n"
                      "Host: example.com\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: keep-alive, Upgrade\r\n"
                      "X-Empty:\r\n"
                      "X-Spaces: \t a b \t \r\n"
                      "\r\n"
                      "BODY";
    sn_http_header h[MAXH];
    sn_http_request r;
    size_t head = strlen(req) - 4;
    SN_ASSERT_RC(parse_guarded(req, strlen(req), NULL, h, MAXH, &r), (int)head);
    CU_ASSERT_EQUAL(r.head_len, head);
    CU_ASSERT(eq(r.method, r.method_len, "GET"));
    CU_ASSERT(eq(r.target, r.target_len, "/chat/room?x=1&y"));
    CU_ASSERT(eq(r.path, r.path_len, "/chat/room"));
    CU_ASSERT(eq(r.query, r.query_len, "x=1&y"));
    CU_ASSERT_EQUAL(r.minor_version, 1);
    CU_ASSERT_EQUAL(r.nheaders, 5);
    CU_ASSERT(eq(h[0].name, h[0].name_len, "Host"));
    CU_ASSERT(eq(h[0].value, h[0].value_len, "example.com"));
    CU_ASSERT(eq(h[3].name, h[3].name_len, "X-Empty"));
    CU_ASSERT_EQUAL(h[3].value_len, 0);
    CU_ASSERT(eq(h[4].value, h[4].value_len, "a b"));
    CU_ASSERT(sn_http_method_is(&r, "GET"));
    CU_ASSERT(!sn_http_method_is(&r, "get"));
    const sn_http_header *up = sn_http_find(&r, "upgrade");
    CU_ASSERT_FATAL(up != NULL);
    CU_ASSERT(eq(up->value, up->value_len, "websocket"));
    CU_ASSERT_PTR_NULL(sn_http_find(&r, "Origin"));
    CU_ASSERT_EQUAL(sn_http_count(&r, "HOST"), 1);
    const sn_http_header *conn = sn_http_find(&r, "Connection");
    CU_ASSERT(sn_http_has_token(conn->value, conn->value_len, "upgrade"));
    CU_ASSERT(sn_http_has_token(conn->value, conn->value_len, "Keep-Alive"));
    CU_ASSERT(!sn_http_has_token(conn->value, conn->value_len, "close"));
    CU_ASSERT(!sn_http_has_token(conn->value, conn->value_len, "upgr"));
    check_prefixes(req, (int)head);
}

/* A field on several lines is one list: sn_http_find_next walks its lines in
 * order, sn_http_field_has_token searches them all, and sn_http_keep_alive
 * reads every Connection line. */
static void test_repeated_fields(void)
{
    const char *req = "GET / HTTP/1.1\r\n"
                      "Connection: keep-alive\r\n"
                      "Host: a\r\n"
                      "connection: Upgrade\r\n"
                      "Sec-WebSocket-Protocol: a, b\r\n"
                      "CONNECTION:\r\n"
                      "Sec-WebSocket-Protocol: c\r\n"
                      "\r\n";
    sn_http_header h[MAXH];
    sn_http_request r;
    SN_ASSERT_RC(parse_guarded(req, strlen(req), NULL, h, MAXH, &r), (int)strlen(req));
    CU_ASSERT_FATAL(r.nheaders == 6);
    const sn_http_header *want[] = {&h[0], &h[2], &h[4]};
    size_t n = 0;
    for (const sn_http_header *c = NULL; (c = sn_http_find_next(&r, "Connection", c)) != NULL;)
        CU_ASSERT(n < 3 && c == want[n++]);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(n, sn_http_count(&r, "Connection"));
    CU_ASSERT_PTR_EQUAL(sn_http_find_next(&r, "connection", NULL), sn_http_find(&r, "Connection"));
    CU_ASSERT_PTR_EQUAL(sn_http_find_next(&r, "Connection", &h[1]), &h[2]); /* after any header */
    CU_ASSERT_PTR_EQUAL(sn_http_find_next(&r, "Sec-WebSocket-Protocol", &h[3]), &h[5]);
    CU_ASSERT_PTR_NULL(sn_http_find_next(&r, "Sec-WebSocket-Protocol", &h[5]));
    CU_ASSERT_PTR_NULL(sn_http_find_next(&r, "Origin", NULL));
    sn_http_header other = h[0];
    CU_ASSERT_PTR_NULL(sn_http_find_next(&r, "Connection", &other)); /* not one of r's */
    CU_ASSERT_PTR_NULL(sn_http_find_next(NULL, "Connection", NULL));
    CU_ASSERT_PTR_NULL(sn_http_find_next(&r, NULL, NULL));

    CU_ASSERT(sn_http_field_has_token(&r, "Connection", "upgrade")); /* the second line */
    CU_ASSERT(sn_http_field_has_token(&r, "connection", "KEEP-ALIVE"));
    CU_ASSERT(!sn_http_field_has_token(&r, "Connection", "close"));
    CU_ASSERT(!sn_http_field_has_token(&r, "Connection", "upgr"));
    CU_ASSERT(!sn_http_field_has_token(&r, "Connection", ""));
    CU_ASSERT(sn_http_field_has_token(&r, "Sec-WebSocket-Protocol", "b"));
    CU_ASSERT(sn_http_field_has_token(&r, "Sec-WebSocket-Protocol", "c"));
    CU_ASSERT(!sn_http_field_has_token(&r, "Sec-WebSocket-Protocol", "a, b"));
    CU_ASSERT(!sn_http_field_has_token(&r, "Origin", "a"));
    CU_ASSERT(!sn_http_field_has_token(NULL, "Connection", "upgrade"));
    CU_ASSERT(!sn_http_field_has_token(&r, NULL, "upgrade"));
    CU_ASSERT(!sn_http_field_has_token(&r, "Connection", NULL));
    CU_ASSERT(sn_http_keep_alive(&r));
    check_prefixes(req, (int)strlen(req));

    static const struct {
        const char *head;
        bool keep;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: Upgrade\r\nConnection: x, CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: x\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
    };
    for (size_t i = 0; i < SN_ARRAY_SIZE(cases); i++) {
        SN_ASSERT_RC(parse_guarded(cases[i].head, strlen(cases[i].head), NULL, h, MAXH, &r),
                     (int)strlen(cases[i].head));
        if (sn_http_keep_alive(&r) != cases[i].keep)
            fprintf(stderr, "keep-alive of %s: not %d\n", cases[i].head, cases[i].keep);
        CU_ASSERT_EQUAL(sn_http_keep_alive(&r), cases[i].keep);
    }
    CU_ASSERT(!sn_http_keep_alive(NULL));
}

static void test_target_forms(void)
{
    sn_http_header h[MAXH];
    sn_http_request r;
    const char *a = "OPTIONS * HTTP/1.1\r\n\r\n";
    SN_ASSERT_RC(parse_guarded(a, strlen(a), NULL, h, MAXH, &r), (int)strlen(a));
    CU_ASSERT(eq(r.path, r.path_len, "*"));
    CU_ASSERT_PTR_NULL(r.query);
    const char *b = "GET http://example.com:8080/p/q?z HTTP/1.0\r\n\r\n";
    SN_ASSERT_RC(parse_guarded(b, strlen(b), NULL, h, MAXH, &r), (int)strlen(b));
    CU_ASSERT(eq(r.path, r.path_len, "/p/q"));
    CU_ASSERT(eq(r.query, r.query_len, "z"));
    CU_ASSERT_EQUAL(r.minor_version, 0);
    const char *c = "GET ws://example.com HTTP/1.1\r\n\r\n";
    SN_ASSERT_RC(parse_guarded(c, strlen(c), NULL, h, MAXH, &r), (int)strlen(c));
    CU_ASSERT_EQUAL(r.path_len, 0);
    const char *d = "GET /? HTTP/1.1\r\n\r\n";
    SN_ASSERT_RC(parse_guarded(d, strlen(d), NULL, h, MAXH, &r), (int)strlen(d));
    CU_ASSERT(eq(r.path, r.path_len, "/"));
    CU_ASSERT(r.query != NULL && r.query_len == 0);
    /* HTTP/1.2 is still 1.x (RFC 9110 section 6.2) */
    const char *e = "GET / HTTP/1.2\r\n\r\n";
    SN_ASSERT_RC(parse_guarded(e, strlen(e), NULL, h, MAXH, &r), (int)strlen(e));
    CU_ASSERT_EQUAL(r.minor_version, 2);
    /* empty lines before the request line are skipped */
    const char *f = "\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    SN_ASSERT_RC(parse_guarded(f, strlen(f), NULL, h, MAXH, &r), (int)strlen(f));
    CU_ASSERT(eq(r.method, r.method_len, "GET"));
    /* and every prefix of them asks for more (a CR alone too: found by fuzzing) */
    for (size_t cut = 0; cut < strlen(f); cut++)
        SN_ASSERT_RC(parse_guarded(f, cut, NULL, h, MAXH, &r), SN_EAGAIN);
}

static void test_malformed(void)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        {"GET / HTTP/1.1\n\n", SN_EHTTP_BAD},                   /* bare LF */
        {"GET / HTTP/1.1\r\nHost: a\n\r\n", SN_EHTTP_BAD},      /* bare LF after a header */
        {"GET / HTTP/1.1\rX\r\n\r\n", SN_EHTTP_BAD},            /* bare CR */
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", SN_EHTTP_BAD},   /* space before the colon */
        {"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", SN_EHTTP_BAD}, /* obsolete folding */
        {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", SN_EHTTP_BAD},   /* leading space */
        {"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", SN_EHTTP_BAD},   /* control in a value */
        {"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", SN_EHTTP_BAD},   /* DEL in a value */
        {"GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", SN_EHTTP_BAD},    /* NUL (cut: see below) */
        {"GET / HTTP/1.1\r\n: b\r\n\r\n", SN_EHTTP_BAD},        /* empty name */
        {"GET / HTTP/1.1\r\nA(b): c\r\n\r\n", SN_EHTTP_BAD},    /* not a token */
        {"GET / HTTP/1.1\r\nAb\r\n\r\n", SN_EHTTP_BAD},         /* no colon */
        {"G(T / HTTP/1.1\r\n\r\n", SN_EHTTP_BAD},               /* method not a token */
        {" GET / HTTP/1.1\r\n\r\n", SN_EHTTP_BAD},              /* leading space */
        {"GET  / HTTP/1.1\r\n\r\n", SN_EHTTP_BAD},              /* two spaces */
        {"GET / x HTTP/1.1\r\n\r\n", SN_EHTTP_BAD},             /* a space in the target */
        {"GET /\x7f HTTP/1.1\r\n\r\n", SN_EHTTP_BAD},           /* DEL in the target */
        {"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", SN_EHTTP_BAD},       /* raw UTF-8 in the target */
        {"GET /\r\n\r\n", SN_EHTTP_BAD},                        /* HTTP/0.9 */
        {"GET / HTTP/1.1 \r\n\r\n", SN_EHTTP_BAD},              /* space after the version */
        {"GET / http/1.1\r\n\r\n", SN_EHTTP_BAD},               /* lower-case protocol */
        {"GET / HTTP/1\r\n\r\n", SN_EHTTP_BAD},                 /* short version */
        {"GET / HTTP/1.x\r\n\r\n", SN_EHTTP_BAD},               /* not a digit */
        {"GET / HTTP/2.0\r\n\r\n", SN_EHTTP_VERSION},           /* another major version */
        {"GET / HTTP/0.9\r\n\r\n", SN_EHTTP_VERSION},           /* another major version */
        {"GET x HTTP/1.1\r\n\r\n", SN_EHTTP_BAD},               /* no form of target */
        {"GET 1http://a/ HTTP/1.1\r\n\r\n", SN_EHTTP_BAD},      /* bad scheme */
        {"GET :// HTTP/1.1\r\n\r\n", SN_EHTTP_BAD},             /* no scheme */
    };
    sn_http_header h[MAXH];
    sn_http_request r;
    for (size_t i = 0; i < SN_ARRAY_SIZE(cases); i++) {
        const char *t = cases[i].text;
        size_t len = strlen(t);
        if (i == 8) /* the NUL case: its bytes go past the NUL */
            len = sizeof "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n" - 1;
        int rc = parse_guarded(t, len, NULL, h, MAXH, &r);
        if (rc != cases[i].want)
            fprintf(stderr, "case %zu: %s\n", i, sn_err_name(rc));
        CU_ASSERT_EQUAL(rc, cases[i].want);
        if (i != 8)
            check_prefixes(t, cases[i].want);
    }
}

static void test_limits(void)
{
    sn_http_header h[MAXH];
    sn_http_request r;
    char big[6000];
    sn_http_limits lim = {.max_head = 1024, .max_line = 256, .max_headers = 3};

    /* a request line over max_line: 414, even before it is complete */
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    SN_ASSERT_RC(parse_guarded(big, 300, &lim, h, MAXH, &r), SN_EHTTP_URI_TOO_LONG);
    SN_ASSERT_RC(parse_guarded(big, 255, &lim, h, MAXH, &r), SN_EAGAIN);
    snprintf(big, sizeof big, "GET /%0260d HTTP/1.1\r\n\r\n", 0);
    SN_ASSERT_RC(parse_guarded(big, strlen(big), &lim, h, MAXH, &r), SN_EHTTP_URI_TOO_LONG);

    /* a header line over max_line: 431 */
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nA: %0260d\r\n\r\n", 0);
    SN_ASSERT_RC(parse_guarded(big, strlen(big), &lim, h, MAXH, &r), SN_EHTTP_HEAD_TOO_BIG);
    SN_ASSERT_RC(parse_guarded(big, 200, &lim, h, MAXH, &r), SN_EAGAIN);

    /* more headers than allowed (by the limits, or by the array) */
    const char *four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    SN_ASSERT_RC(parse_guarded(four, strlen(four), &lim, h, MAXH, &r), SN_EHTTP_HEAD_TOO_BIG);
    SN_ASSERT_RC(parse_guarded(four, strlen(four), NULL, h, 2, &r), SN_EHTTP_HEAD_TOO_BIG);
    SN_ASSERT_RC(parse_guarded(four, strlen(four), NULL, h, 4, &r), (int)strlen(four));
    const char *none = "GET / HTTP/1.1\r\n\r\n";
    SN_ASSERT_RC(parse_guarded(none, strlen(none), NULL, NULL, 0, &r), (int)strlen(none));

    /* the whole head over max_head: 431 once that many bytes came */
    size_t n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\n");
    while (n < 1100)
        n += (size_t)snprintf(big + n, sizeof big - n, "X: %050d\r\n", 0);
    lim.max_headers = 64;
    SN_ASSERT_RC(parse_guarded(big, n, &lim, h, MAXH, &r), SN_EHTTP_HEAD_TOO_BIG);
    sn_http_header many[64];
    SN_ASSERT_RC(parse_guarded(big, 1000, &lim, many, 64, &r), SN_EAGAIN);
    SN_ASSERT_RC(parse_guarded(big, 1024, &lim, many, 64, &r), SN_EHTTP_HEAD_TOO_BIG);

    /* defaults: 8192 bytes, 4096 a line */
    n = (size_t)snprintf(big, sizeof big, "GET /%04100d HTTP/1.1\r\n\r\n", 0);
    SN_ASSERT_RC(parse_guarded(big, n, NULL, h, MAXH, &r), SN_EHTTP_URI_TOO_LONG);

    SN_ASSERT_RC(sn_http_parse_request(NULL, 1, NULL, h, MAXH, &r), SN_EINVAL);
    SN_ASSERT_RC(sn_http_parse_request("x", 1, NULL, h, MAXH, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_http_parse_request("x", 1, NULL, NULL, 1, &r), SN_EINVAL);
}

static void test_statuses(void)
{
    CU_ASSERT_EQUAL(sn_http_status_for(SN_EHTTP_BAD), 400);
    CU_ASSERT_EQUAL(sn_http_status_for(SN_EHTTP_URI_TOO_LONG), 414);
    CU_ASSERT_EQUAL(sn_http_status_for(SN_EHTTP_HEAD_TOO_BIG), 431);
    CU_ASSERT_EQUAL(sn_http_status_for(SN_EHTTP_VERSION), 505);
    CU_ASSERT_EQUAL(sn_http_status_for(SN_ENOMEM), 500);
    CU_ASSERT_STRING_EQUAL(sn_http_reason(426), "Upgrade Required");
    CU_ASSERT_STRING_EQUAL(sn_http_reason(404), "Not Found");
    CU_ASSERT_STRING_EQUAL(sn_http_reason(799), "Unknown");
}

/* ---- over a connection ------------------------------------------------------------ */

struct pair {
    sn_conn *srv;
    int peer; /* the client's raw descriptor */
};

static void pair_open(struct pair *p)
{
    int sv[2];
    sn_sock *s;
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    SN_ASSERT_RC(sn_sock_from_fd(&s, sv[0]), 0);
    SN_ASSERT_RC(sn_conn_new(&p->srv, s, NULL), 0);
    p->peer = sv[1];
}

static void pair_close(struct pair *p)
{
    sn_conn_free(p->srv);
    close(p->peer);
}

struct dribble {
    int fd;
    const char *text;
    int gap_ms;
    bool close_after;
};

static void *dribbler(void *arg)
{
    struct dribble *d = arg;
    for (const char *c = d->text; *c != '\0'; c++) {
        if (send(d->fd, c, 1, MSG_NOSIGNAL) != 1)
            break;
        sn_test_sleep_ms(d->gap_ms);
    }
    if (d->close_after)
        shutdown(d->fd, SHUT_WR);
    return NULL;
}

static void test_read_request(void)
{
    struct pair p;
    pair_open(&p);
    const char *req = "GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\nrest";
    struct dribble d = {.fd = p.peer, .text = req, .gap_ms = 1};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, dribbler, &d) == 0);
    sn_http_header h[MAXH];
    sn_http_request r;
    int head = (int)strlen(req) - 4;
    SN_ASSERT_RC(sn_http_read_request(p.srv, NULL, h, MAXH, &r, sn_deadline_in(10000)), head);
    CU_ASSERT(eq(r.path, r.path_len, "/echo"));
    CU_ASSERT_EQUAL(r.nheaders, 2);
    CU_ASSERT(eq(h[1].value, h[1].value_len, "websocket"));
    pthread_join(t, NULL);
    char rest[8];
    SN_ASSERT_RC(sn_read_exact(p.srv, rest, 4, sn_deadline_in(5000)), 4);
    CU_ASSERT(memcmp(rest, "rest", 4) == 0);
    pair_close(&p);
}

static void test_read_request_slowloris(void)
{
    struct pair p;
    pair_open(&p);
    struct dribble d = {.fd = p.peer, .text = "GET / HTTP/1.1\r\nHost: slow\r\n\r\n", .gap_ms = 40};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, dribbler, &d) == 0);
    sn_http_header h[MAXH];
    sn_http_request r;
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_http_read_request(p.srv, NULL, h, MAXH, &r, sn_deadline_in(300)), SN_ETIMEDOUT);
    int64_t took = sn_now_ms() - t0;
    CU_ASSERT(took >= 290 && took < 2000);
    shutdown(p.peer, SHUT_RDWR); /* the dribbler stops */
    pthread_join(t, NULL);
    pair_close(&p);
}

static void test_read_request_ends(void)
{
    sn_http_header h[MAXH];
    sn_http_request r;
    struct pair p;

    pair_open(&p); /* closed before a byte */
    shutdown(p.peer, SHUT_WR);
    SN_ASSERT_RC(sn_http_read_request(p.srv, NULL, h, MAXH, &r, sn_deadline_in(5000)), SN_EOF);
    pair_close(&p);

    pair_open(&p); /* closed inside the head */
    SN_ASSERT_RC(sn_test_write_all(p.peer, "GET / HTTP/1.1\r\nHo", 18), 0);
    shutdown(p.peer, SHUT_WR);
    SN_ASSERT_RC(sn_http_read_request(p.srv, NULL, h, MAXH, &r, sn_deadline_in(5000)),
                 SN_EHTTP_BAD);
    pair_close(&p);

    pair_open(&p); /* malformed: answered at once, without waiting for the rest */
    SN_ASSERT_RC(sn_test_write_all(p.peer, "GET / HTTP/1.1\r\nHost : a\r\n", 27), 0);
    SN_ASSERT_RC(sn_http_read_request(p.srv, NULL, h, MAXH, &r, sn_deadline_in(5000)),
                 SN_EHTTP_BAD);
    pair_close(&p);

    pair_open(&p); /* too big: stops reading at the limit */
    char big[3000];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nA: ", 19);
    SN_ASSERT_RC(sn_test_write_all(p.peer, big, sizeof big), 0);
    sn_http_limits lim = {.max_head = 2048, .max_line = 4096};
    SN_ASSERT_RC(sn_http_read_request(p.srv, &lim, h, MAXH, &r, sn_deadline_in(5000)),
                 SN_EHTTP_HEAD_TOO_BIG);
    pair_close(&p);

    SN_ASSERT_RC(sn_http_read_request(NULL, NULL, h, MAXH, &r, 0), SN_EINVAL);
}

static void test_respond(void)
{
    struct pair p;
    pair_open(&p);
    SN_ASSERT_RC(sn_http_respond(p.srv, 404, "Content-Type: text/plain\r\n", "nope\n", 5, true,
                                 sn_deadline_in(5000)),
                 0);
    const char *want = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 5\r\nConnection: close\r\n\r\nnope\n";
    char got[256] = {0};
    SN_ASSERT_RC(sn_test_read_all(p.peer, got, strlen(want), 5000), 0);
    CU_ASSERT_STRING_EQUAL(got, want);
    SN_ASSERT_RC(sn_http_respond(p.srv, 204, NULL, NULL, 0, false, sn_deadline_in(5000)), 0);
    const char *want2 = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
    memset(got, 0, sizeof got);
    SN_ASSERT_RC(sn_test_read_all(p.peer, got, strlen(want2), 5000), 0);
    CU_ASSERT_STRING_EQUAL(got, want2);
    SN_ASSERT_RC(sn_http_respond(p.srv, 99, NULL, NULL, 0, false, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_http_respond(p.srv, 200, NULL, NULL, 3, false, 0), SN_EINVAL);
    pair_close(&p);
}

static CU_TestInfo tests[] = {
    {"a GET with headers, whole and in every prefix", test_simple_get},
    {"a field on several lines is one list", test_repeated_fields},
    {"origin, asterisk and absolute forms; versions; empty lines", test_target_forms},
    {"malformed heads are rejected at the first bad byte", test_malformed},
    {"limits: line, header count, head size", test_limits},
    {"statuses and reasons", test_statuses},
    {"read a head from a connection, byte by byte", test_read_request},
    {"one deadline for the whole head (slowloris)", test_read_request_slowloris},
    {"end of stream, malformed and oversized heads", test_read_request_ends},
    {"responses", test_respond},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("http", tests, 60);
}
