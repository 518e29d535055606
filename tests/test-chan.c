/* SPDX-License-Identifier: MIT */
/*
 * test-chan.c: connections and their buffered channels, over real TCP
 * sockets on 127.0.0.1. The peer is a raw descriptor driven with send and
 * recv (from a helper thread where the test itself must block), or a second
 * sn_conn.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sched.h>
#include <unistd.h>
#include "sn_test.h"
#include "sn_chan_int.h"
#include "sn_fiber.h"

/* ---- helpers -------------------------------------------------------------- */

/* A connection on one end of a loopback pair; *peer gets the raw other end. */
static sn_conn *conn_pair(int *peer, const sn_conn_config *cfg)
{
    int a, b;
    sn_sock *s;
    sn_conn *c = NULL;
    CU_ASSERT_FATAL(sn_test_tcp_pair(&a, &b) == 0);
    CU_ASSERT_FATAL(sn_sock_from_fd(&s, a) == 0);
    CU_ASSERT_FATAL(sn_conn_new(&c, s, cfg) == 0);
    *peer = b;
    return c;
}

static void peer_send(int fd, const void *buf, size_t len)
{
    CU_ASSERT_EQUAL(sn_test_write_all(fd, buf, len), 0);
}

static void peer_str(int fd, const char *s)
{
    peer_send(fd, s, strlen(s));
}

/* Closes the peer with SO_LINGER 0: the kernel sends a reset. */
static void peer_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Bytes the peer can read now, without waiting (0 when none). */
static ssize_t peer_try_recv(int fd, void *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
    return n < 0 ? 0 : n;
}

static void fill_pattern(unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)((i * 131 + seed + (i >> 12)) & 0xff);
}

static ssize_t line(sn_conn *c, char *buf, size_t cap, int mode)
{
    return sn_read_line(c, buf, cap, mode, sn_deadline_in(5000));
}

#define ASSERT_LINE(c, mode, want)                                                                 \
    do {                                                                                           \
        char lb_[256];                                                                             \
        ssize_t ln_ = line((c), lb_, sizeof lb_, (mode));                                          \
        SN_ASSERT_RC(ln_, (ssize_t)(sizeof(want) - 1));                                            \
        if (ln_ == (ssize_t)(sizeof(want) - 1)) {                                                  \
            CU_ASSERT(memcmp(lb_, (want), sizeof(want) - 1) == 0);                                 \
            CU_ASSERT_EQUAL(lb_[ln_], '\0');                                                       \
        }                                                                                          \
    } while (0)

/* A deadline is never early; late by up to 5 s, as a machine under load
 * may delay a thread (a deadline that is ignored shows all the same). */
#define ASSERT_ELAPSED(start, dl_ms)                                                               \
    do {                                                                                           \
        int64_t el_ = sn_now_ms() - (start);                                                       \
        if (el_ < (dl_ms)-5 || el_ >= (dl_ms) + 5000)                                              \
            fprintf(stderr, "%s:%d: elapsed %lld ms, deadline %d ms\n", __FILE__, __LINE__,        \
                    (long long)el_, (int)(dl_ms));                                                 \
        CU_ASSERT(el_ >= (dl_ms)-5 && el_ < (dl_ms) + 5000);                                       \
    } while (0)

/* A peer thread that sends data in chunks with a pause between them. */
struct trickle {
    pthread_t th;
    int fd;
    const char *data;
    size_t len, chunk;
    int delay_ms;
    atomic_bool stop;
};

static void *trickle_run(void *arg)
{
    struct trickle *t = arg;
    for (size_t off = 0; off < t->len && !atomic_load(&t->stop); off += t->chunk) {
        sn_test_write_all(t->fd, t->data + off, SN_MIN(t->chunk, t->len - off));
        sn_test_sleep_ms(t->delay_ms);
    }
    return NULL;
}

static void trickle_start(struct trickle *t, int fd, const char *data, size_t len, size_t chunk,
                          int delay_ms)
{
    t->fd = fd;
    t->data = data;
    t->len = len;
    t->chunk = chunk;
    t->delay_ms = delay_ms;
    atomic_init(&t->stop, false);
    CU_ASSERT_FATAL(pthread_create(&t->th, NULL, trickle_run, t) == 0);
}

static void trickle_stop(struct trickle *t)
{
    atomic_store(&t->stop, true);
    pthread_join(t->th, NULL);
}

/* A peer thread that reads len bytes and compares them with a pattern. */
struct sink {
    pthread_t th;
    int fd;
    size_t len;
    unsigned seed;
    int delay_ms; /* before it starts reading */
    int rc;
    bool same;
};

static void *sink_run(void *arg)
{
    struct sink *k = arg;
    unsigned char *got = malloc(k->len), *want = malloc(k->len);
    sn_test_sleep_ms(k->delay_ms);
    k->rc = sn_test_read_all(k->fd, got, k->len, 30000);
    fill_pattern(want, k->len, k->seed);
    k->same = k->rc == 0 && memcmp(got, want, k->len) == 0;
    free(got);
    free(want);
    return NULL;
}

static void sink_start(struct sink *k, int fd, size_t len, unsigned seed, int delay_ms)
{
    k->fd = fd;
    k->len = len;
    k->seed = seed;
    k->delay_ms = delay_ms;
    CU_ASSERT_FATAL(pthread_create(&k->th, NULL, sink_run, k) == 0);
}

/* ---- life cycle ------------------------------------------------------------ */

static void test_new_and_getters(void)
{
    int peer;
    int x;
    sn_conn *c = conn_pair(&peer, NULL);
    CU_ASSERT_PTR_NOT_NULL(sn_conn_sock(c));
    CU_ASSERT_EQUAL(sn_sock_get_state(sn_conn_sock(c)), SN_SOCK_CONNECTED);
    CU_ASSERT_PTR_NULL(sn_conn_data(c));
    sn_conn_set_data(c, &x);
    CU_ASSERT_PTR_EQUAL(sn_conn_data(c), &x);
    CU_ASSERT_EQUAL(sn_conn_error(c), 0);
    CU_ASSERT_EQUAL(sn_available(c), 0);
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    sn_conn_stats st;
    sn_conn_stats_get(c, &st);
    CU_ASSERT(st.bytes_read == 0 && st.bytes_written == 0 && st.read_calls == 0 &&
              st.write_calls == 0);
    sn_conn_free(c);
    sn_conn_free(NULL);
    close(peer);
}

static void test_new_errors(void)
{
    int a, b;
    sn_sock *s;
    sn_conn *c = NULL;
    CU_ASSERT_FATAL(sn_test_tcp_pair(&a, &b) == 0);
    CU_ASSERT_FATAL(sn_sock_from_fd(&s, a) == 0);
    SN_ASSERT_RC(sn_conn_new(NULL, s, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_conn_new(&c, NULL, NULL), SN_EINVAL);
    sn_conn_config bad = {.read_buffer = 8192, .read_buffer_max = 4096};
    SN_ASSERT_RC(sn_conn_new(&c, s, &bad), SN_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    sn_sock_free(s);
    close(b);

    /* a socket that is not connected */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(sn_sock_from_fd(&s, fd) == 0);
    SN_ASSERT_RC(sn_conn_new(&c, s, NULL), SN_EBADSTATE);
    sn_sock_free(s);
}

static void test_close_keeps_getters(void)
{
    int peer;
    char buf[16];
    sn_conn *c = conn_pair(&peer, NULL);
    sn_conn_set_data(c, buf);
    CU_ASSERT_EQUAL(sn_write_str(c, "last words", 0), 10);
    SN_ASSERT_RC(sn_conn_close(c, sn_deadline_in(5000)), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 10, 5000), 0);
    CU_ASSERT(memcmp(buf, "last words", 10) == 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 1, 5000), SN_EOF);
    CU_ASSERT_PTR_EQUAL(sn_conn_data(c), buf);
    CU_ASSERT_EQUAL(sn_sock_get_state(sn_conn_sock(c)), SN_SOCK_CLOSED);
    CU_ASSERT_EQUAL(sn_sock_fd(sn_conn_sock(c)), -1);
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, 0), SN_ECLOSED);
    SN_ASSERT_RC(sn_write(c, "x", 1, 0), SN_ECLOSED);
    SN_ASSERT_RC(sn_flush(c, 0), SN_ECLOSED);
    SN_ASSERT_RC(sn_conn_error(c), SN_ECLOSED);
    SN_ASSERT_RC(sn_conn_close(c, 0), 0);
    sn_conn_free(c);
    close(peer);
}

static void test_connect(void)
{
    int lfd = -1, port = -1;
    sn_sock *l;
    sn_listen_config lc = {.host = "127.0.0.1"};
    sn_addr la;
    CU_ASSERT_FATAL(sn_tcp_listen(&l, &lc) == 0);
    CU_ASSERT_FATAL(sn_sock_local_addr(l, &la) == 0);
    port = sn_addr_port(&la);
    lfd = sn_sock_fd(l);
    sn_conn *c = NULL;
    SN_ASSERT_RC(sn_conn_connect(&c, "127.0.0.1", port, NULL, NULL, sn_deadline_in(5000)), 0);
    CU_ASSERT_FATAL(c != NULL);
    sn_sock *srv;
    CU_ASSERT_FATAL(sn_sock_accept(l, &srv, sn_deadline_in(5000)) == 0);
    sn_conn *sc;
    CU_ASSERT_FATAL(sn_conn_new(&sc, srv, NULL) == 0);
    CU_ASSERT_EQUAL(sn_printf(c, 0, "hello %d\r\n", 42), 10);
    SN_ASSERT_RC(sn_flush(c, 0), 0);
    ASSERT_LINE(sc, SN_LINE_CRLF, "hello 42");
    sn_conn_free(sc);
    sn_conn_free(c);
    (void)lfd;
    sn_sock_free(l);

    int free_port = sn_test_free_port();
    c = NULL;
    SN_ASSERT_RC(sn_conn_connect(&c, "127.0.0.1", free_port, NULL, NULL, sn_deadline_in(5000)),
                 SN_ECONNREFUSED);
    CU_ASSERT_PTR_NULL(c);
}

/* ---- reading some ------------------------------------------------------------ */

static void test_read_some(void)
{
    int peer;
    char buf[64];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "hello");
    SN_ASSERT_RC(sn_read(c, buf, 2, sn_deadline_in(5000)), 2);
    CU_ASSERT(memcmp(buf, "he", 2) == 0);
    CU_ASSERT_EQUAL(sn_available(c), 3);
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, sn_deadline_in(5000)), 3);
    CU_ASSERT(memcmp(buf, "llo", 3) == 0);
    SN_ASSERT_RC(sn_read(c, buf, 0, 0), SN_EINVAL);
    sn_conn_free(c);
    close(peer);
}

static void test_read_direct_into_caller(void)
{
    int peer;
    static unsigned char out[6000], in[8192];
    sn_conn *c = conn_pair(&peer, NULL); /* read buffer 4096 */
    fill_pattern(out, sizeof out, 1);
    peer_send(peer, out, sizeof out);
    sn_test_sleep_ms(20); /* let it all arrive */
    /* a caller buffer at least as large as the read buffer bypasses it, so
     * one call can return more than the buffer could hold */
    ssize_t n = sn_read(c, in, sizeof in, sn_deadline_in(5000));
    CU_ASSERT(n > 4096 && n <= 6000);
    size_t got = n > 0 ? (size_t)n : 0;
    while (got < sizeof out && n > 0) {
        n = sn_read(c, in + got, sizeof in - got, sn_deadline_in(5000));
        got += n > 0 ? (size_t)n : 0;
    }
    CU_ASSERT_EQUAL(got, sizeof out);
    CU_ASSERT(memcmp(in, out, sizeof out) == 0);
    CU_ASSERT_EQUAL(sn_available(c), 0);
    sn_conn_free(c);
    close(peer);
}

static void test_read_eof_is_sticky(void)
{
    int peer;
    char buf[8];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "ab");
    close(peer);
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, sn_deadline_in(5000)), 2);
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, sn_deadline_in(5000)), SN_EOF);
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, sn_deadline_in(5000)), SN_EOF);
    SN_ASSERT_RC(sn_conn_error(c), SN_EOF);
    sn_conn_free(c);
}

static void test_read_timeout_not_sticky(void)
{
    int peer;
    char buf[8];
    sn_conn *c = conn_pair(&peer, NULL);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, sn_deadline_in(150)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 150);
    CU_ASSERT_EQUAL(sn_conn_error(c), 0);
    peer_str(peer, "x");
    sn_test_sleep_ms(20);
    /* a deadline in the past still takes what has arrived */
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, sn_deadline_in(0)), 1);
    sn_conn_free(c);
    close(peer);
}

static void test_read_default_deadline(void)
{
    int peer;
    char buf[8];
    sn_conn *c = conn_pair(&peer, NULL);
    SN_ASSERT_RC(sn_sock_set_option(sn_conn_sock(c), SN_OPT_READ_TIMEOUT, 150), 0);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, SN_DEADLINE_DEFAULT), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 150);
    t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, SN_LINE_LF, SN_DEADLINE_DEFAULT), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 150);
    sn_conn_free(c);
    close(peer);
}

/* ---- reading exactly -------------------------------------------------------- */

static void test_read_exact(void)
{
    int peer;
    char buf[16];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "01234");
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read_exact(c, buf, 10, sn_deadline_in(150)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 150);
    CU_ASSERT_EQUAL(sn_available(c), 5); /* nothing consumed */
    peer_str(peer, "56789abc");
    SN_ASSERT_RC(sn_read_exact(c, buf, 10, sn_deadline_in(5000)), 10);
    CU_ASSERT(memcmp(buf, "0123456789", 10) == 0);
    SN_ASSERT_RC(sn_read_exact(c, buf, 0, 0), 0);
    SN_ASSERT_RC(sn_read_exact(c, buf, 3, sn_deadline_in(5000)), 3);
    CU_ASSERT(memcmp(buf, "abc", 3) == 0);
    peer_str(peer, "xy");
    close(peer);
    SN_ASSERT_RC(sn_read_exact(c, buf, 3, sn_deadline_in(5000)), SN_EOF);
    SN_ASSERT_RC(sn_read_exact(c, buf, 3, sn_deadline_in(5000)), SN_EOF);
    sn_conn_free(c);
}

static void test_read_exact_beyond_max(void)
{
    int peer;
    size_t n = 300000;
    unsigned char *out = malloc(n), *in = malloc(n);
    sn_conn_config cfg = {.read_buffer_max = 65536};
    sn_conn *c = conn_pair(&peer, &cfg);
    fill_pattern(out, n, 7);
    struct trickle t;
    trickle_start(&t, peer, (const char *)out, n, 50000, 5);
    const void *p;
    CU_ASSERT(sn_peek(c, 100, &p, sn_deadline_in(5000)) >= 100); /* some already buffered */
    SN_ASSERT_RC(sn_read_exact(c, in, n, sn_deadline_in(10000)), (ssize_t)n);
    CU_ASSERT(memcmp(in, out, n) == 0);
    trickle_stop(&t);
    sn_conn_free(c);
    close(peer);
    free(out);
    free(in);
}

static void test_read_exact_beyond_max_timeout_is_sticky(void)
{
    int peer;
    size_t n = 100000;
    char *in = malloc(n), *out = calloc(1, n);
    sn_conn_config cfg = {.read_buffer_max = 8192};
    sn_conn *c = conn_pair(&peer, &cfg);
    /* nothing sent: a timeout before any byte is taken is not sticky */
    SN_ASSERT_RC(sn_read_exact(c, in, n, sn_deadline_in(50)), SN_ETIMEDOUT);
    CU_ASSERT_EQUAL(sn_conn_error(c), 0);
    peer_send(peer, out, n / 2);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read_exact(c, in, n, sn_deadline_in(200)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 200);
    SN_ASSERT_RC(sn_conn_error(c), SN_ETIMEDOUT);
    peer_send(peer, out, n / 2);
    SN_ASSERT_RC(sn_read(c, in, 10, sn_deadline_in(1000)), SN_ETIMEDOUT);
    sn_conn_free(c);
    close(peer);
    free(in);
    free(out);
}

/* ---- lines ------------------------------------------------------------------ */

static void test_lines_lf(void)
{
    int peer;
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "a\nbb\r\n\nccc\n");
    ASSERT_LINE(c, SN_LINE_LF, "a");
    ASSERT_LINE(c, SN_LINE_LF, "bb\r"); /* strict LF keeps the CR */
    ASSERT_LINE(c, SN_LINE_LF, "");
    ASSERT_LINE(c, SN_LINE_LF, "ccc");
    CU_ASSERT_EQUAL(sn_available(c), 0);
    sn_conn_free(c);
    close(peer);
}

static void test_lines_crlf(void)
{
    int peer;
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "a\r\nb\nc\r\n\r\nd\re\r\n");
    ASSERT_LINE(c, SN_LINE_CRLF, "a");
    ASSERT_LINE(c, SN_LINE_CRLF, "b\nc"); /* a bare LF is an ordinary byte */
    ASSERT_LINE(c, SN_LINE_CRLF, "");
    ASSERT_LINE(c, SN_LINE_CRLF, "d\re");
    sn_conn_free(c);
    close(peer);
}

static void test_lines_any(void)
{
    int peer;
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "a\nb\r\nc\r\r\n\n\r\n");
    ASSERT_LINE(c, SN_LINE_ANY, "a");
    ASSERT_LINE(c, SN_LINE_ANY, "b");
    ASSERT_LINE(c, SN_LINE_ANY, "c\r");
    ASSERT_LINE(c, SN_LINE_ANY, "");
    ASSERT_LINE(c, SN_LINE_ANY, "");
    sn_conn_free(c);
    close(peer);
}

static void test_line_bad_arguments(void)
{
    int peer;
    char buf[8];
    const char *l;
    sn_conn *c = conn_pair(&peer, NULL);
    SN_ASSERT_RC(sn_read_line(c, buf, 0, SN_LINE_LF, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, 7, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, -1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_read_line_ref(c, &l, 0, 3, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_read_until(c, "", 0, buf, sizeof buf, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_read_until(c, NULL, 1, buf, sizeof buf, 0), SN_EINVAL);
    sn_conn_free(c);
    close(peer);
}

/* A CR at the end of what has arrived must wait for the next byte. */
static void test_line_cr_lf_split(void)
{
    static const int modes[] = {SN_LINE_LF, SN_LINE_CRLF, SN_LINE_ANY};
    for (size_t m = 0; m < SN_ARRAY_SIZE(modes); m++) {
        int peer;
        char buf[64];
        sn_conn *c = conn_pair(&peer, NULL);
        peer_str(peer, "abc\r");
        SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, modes[m], sn_deadline_in(100)), SN_ETIMEDOUT);
        CU_ASSERT_EQUAL(sn_available(c), 4);
        peer_str(peer, "\nnext\r\n");
        ssize_t n = line(c, buf, sizeof buf, modes[m]);
        if (modes[m] == SN_LINE_LF) {
            SN_ASSERT_RC(n, 4);
            CU_ASSERT_STRING_EQUAL(buf, "abc\r");
        } else {
            SN_ASSERT_RC(n, 3);
            CU_ASSERT_STRING_EQUAL(buf, "abc");
        }
        SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_CRLF), 4);
        CU_ASSERT_STRING_EQUAL(buf, "next");
        sn_conn_free(c);
        close(peer);
    }
}

/* A CR in the last byte of a full read buffer, with the LF still to come. */
static void test_line_cr_at_buffer_end(void)
{
    int peer;
    char buf[64];
    sn_conn_config cfg = {.read_buffer = 16, .read_buffer_max = 64};
    sn_conn *c = conn_pair(&peer, &cfg);
    peer_str(peer, "0123456789abcde\r");
    SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, SN_LINE_CRLF, sn_deadline_in(100)), SN_ETIMEDOUT);
    CU_ASSERT_EQUAL(sn_available(c), 16);
    peer_str(peer, "\n");
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_CRLF), 15);
    CU_ASSERT_STRING_EQUAL(buf, "0123456789abcde");
    /* the same with the line exactly filling cap - 1 */
    peer_str(peer, "0123456789\r");
    SN_ASSERT_RC(sn_read_line(c, buf, 11, SN_LINE_ANY, sn_deadline_in(100)), SN_ETIMEDOUT);
    peer_str(peer, "\n");
    SN_ASSERT_RC(sn_read_line(c, buf, 11, SN_LINE_ANY, sn_deadline_in(5000)), 10);
    CU_ASSERT_STRING_EQUAL(buf, "0123456789");
    sn_conn_free(c);
    close(peer);
}

static void test_line_nul_bytes(void)
{
    int peer;
    char buf[16];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_send(peer, "a\0b\n\0\r\n", 7);
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_LF), 3);
    CU_ASSERT(memcmp(buf, "a\0b\0", 4) == 0);
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_ANY), 1);
    CU_ASSERT(buf[0] == '\0' && buf[1] == '\0');
    sn_conn_free(c);
    close(peer);
}

static void test_line_ref(void)
{
    int peer;
    const char *l;
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "first\r\nsecond\nthird");
    SN_ASSERT_RC(sn_read_line_ref(c, &l, 0, SN_LINE_ANY, sn_deadline_in(5000)), 5);
    CU_ASSERT_STRING_EQUAL(l, "first");
    SN_ASSERT_RC(sn_read_line_ref(c, &l, 0, SN_LINE_ANY, sn_deadline_in(5000)), 6);
    CU_ASSERT_STRING_EQUAL(l, "second");
    SN_ASSERT_RC(sn_read_line_ref(c, &l, 3, SN_LINE_ANY, sn_deadline_in(100)), SN_ELINETOOLONG);
    close(peer);
    SN_ASSERT_RC(sn_read_line_ref(c, &l, 0, SN_LINE_ANY, sn_deadline_in(5000)), 5);
    CU_ASSERT_STRING_EQUAL(l, "third");
    SN_ASSERT_RC(sn_read_line_ref(c, &l, 0, SN_LINE_ANY, sn_deadline_in(5000)), SN_EOF);
    sn_conn_free(c);
}

/* ---- line limits -------------------------------------------------------------- */

/* cap - 1 bytes of line: one more is SN_ELINETOOLONG, and nothing is
 * consumed, with or without the line's end having arrived. */
static void test_line_too_long_by_cap(void)
{
    static const int modes[] = {SN_LINE_LF, SN_LINE_CRLF, SN_LINE_ANY};
    static const char *const ends[] = {"\n", "\r\n", "\r\n"};
    for (size_t m = 0; m < SN_ARRAY_SIZE(modes); m++) {
        int peer;
        char buf[64];
        sn_conn *c = conn_pair(&peer, NULL);
        /* no ending yet: detected without waiting for one */
        peer_str(peer, "0123456789");
        SN_ASSERT_RC(sn_read_line(c, buf, 8, modes[m], sn_deadline_in(5000)), SN_ELINETOOLONG);
        peer_str(peer, ends[m]);
        SN_ASSERT_RC(sn_read_line(c, buf, 10, modes[m], sn_deadline_in(5000)), SN_ELINETOOLONG);
        SN_ASSERT_RC(sn_read_line(c, buf, 11, modes[m], sn_deadline_in(5000)), 10);
        CU_ASSERT_STRING_EQUAL(buf, "0123456789");
        CU_ASSERT_EQUAL(sn_available(c), 0);
        /* the bytes stay readable after the error */
        peer_str(peer, "abcdefghij");
        peer_str(peer, ends[m]);
        SN_ASSERT_RC(sn_read_line(c, buf, 5, modes[m], sn_deadline_in(5000)), SN_ELINETOOLONG);
        CU_ASSERT_EQUAL(sn_available(c), 10 + strlen(ends[m]));
        SN_ASSERT_RC(sn_read_exact(c, buf, 4, sn_deadline_in(5000)), 4);
        CU_ASSERT(memcmp(buf, "abcd", 4) == 0);
        SN_ASSERT_RC(sn_discard(c, 2, 0), 0);
        SN_ASSERT_RC(sn_read_line(c, buf, 5, modes[m], sn_deadline_in(5000)), 4);
        CU_ASSERT_STRING_EQUAL(buf, "ghij");
        sn_conn_free(c);
        close(peer);
    }
}

static void test_line_too_long_by_buffer_max(void)
{
    int peer;
    char big[200], buf[256];
    sn_conn_config cfg = {.read_buffer = 16, .read_buffer_max = 64};
    sn_conn *c = conn_pair(&peer, &cfg);
    memset(big, 'x', sizeof big);
    peer_send(peer, big, 100);
    peer_str(peer, "\n");
    SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, SN_LINE_LF, sn_deadline_in(5000)),
                 SN_ELINETOOLONG);
    CU_ASSERT_EQUAL(sn_available(c), 64); /* grown to the limit, nothing consumed */
    const char *l;
    SN_ASSERT_RC(sn_read_line_ref(c, &l, 0, SN_LINE_ANY, sn_deadline_in(5000)), SN_ELINETOOLONG);
    /* every byte is still there */
    SN_ASSERT_RC(sn_read_exact(c, buf, 64, sn_deadline_in(5000)), 64);
    SN_ASSERT_RC(sn_read_exact(c, buf + 64, 37, sn_deadline_in(5000)), 37);
    CU_ASSERT(memcmp(buf, big, 100) == 0 && buf[100] == '\n');
    /* a line and its ending that fill read_buffer_max exactly fit */
    peer_send(peer, big, 63);
    peer_str(peer, "\n");
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_LF), 63);
    peer_send(peer, big, 62);
    peer_str(peer, "\r\n");
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_CRLF), 62);
    peer_send(peer, big, 63);
    peer_str(peer, "\r\n");
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_CRLF), SN_ELINETOOLONG);
    sn_conn_free(c);
    close(peer);
}

/* ---- end of stream ------------------------------------------------------------ */

static void test_line_eof(void)
{
    static const int modes[] = {SN_LINE_LF, SN_LINE_CRLF, SN_LINE_ANY};
    for (size_t m = 0; m < SN_ARRAY_SIZE(modes); m++) {
        int peer;
        char buf[16];
        /* with an unterminated last line */
        sn_conn *c = conn_pair(&peer, NULL);
        peer_str(peer, "one\r\ntwo");
        close(peer);
        if (modes[m] == SN_LINE_LF)
            ASSERT_LINE(c, modes[m], "one\r");
        else
            ASSERT_LINE(c, modes[m], "one");
        if (modes[m] == SN_LINE_ANY) {
            ASSERT_LINE(c, modes[m], "two");
        } else {
            SN_ASSERT_RC(line(c, buf, sizeof buf, modes[m]), SN_EUNTERMINATED);
            SN_ASSERT_RC(line(c, buf, sizeof buf, modes[m]), SN_EUNTERMINATED);
            CU_ASSERT_EQUAL(sn_available(c), 3);
            SN_ASSERT_RC(sn_read(c, buf, sizeof buf, 0), 3);
            CU_ASSERT(memcmp(buf, "two", 3) == 0);
        }
        SN_ASSERT_RC(line(c, buf, sizeof buf, modes[m]), SN_EOF);
        SN_ASSERT_RC(line(c, buf, sizeof buf, modes[m]), SN_EOF);
        sn_conn_free(c);

        /* without one */
        c = conn_pair(&peer, NULL);
        peer_str(peer, "one\r\n");
        close(peer);
        if (modes[m] == SN_LINE_LF)
            ASSERT_LINE(c, modes[m], "one\r");
        else
            ASSERT_LINE(c, modes[m], "one");
        SN_ASSERT_RC(line(c, buf, sizeof buf, modes[m]), SN_EOF);
        sn_conn_free(c);

        /* nothing at all */
        c = conn_pair(&peer, NULL);
        close(peer);
        SN_ASSERT_RC(line(c, buf, sizeof buf, modes[m]), SN_EOF);
        sn_conn_free(c);
    }
}

static void test_line_eof_unterminated_too_long(void)
{
    int peer;
    char buf[8];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "0123456789");
    close(peer);
    SN_ASSERT_RC(sn_read_line(c, buf, 5, SN_LINE_ANY, sn_deadline_in(5000)), SN_ELINETOOLONG);
    CU_ASSERT_EQUAL(sn_available(c), 10);
    sn_conn_free(c);
}

/* ---- deadlines on lines ---------------------------------------------------------- */

static void test_deadline_mid_line(void)
{
    int peer;
    char buf[64];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "hello wor");
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, SN_LINE_ANY, sn_deadline_in(200)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 200);
    CU_ASSERT_EQUAL(sn_conn_error(c), 0);
    peer_str(peer, "ld\n");
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_ANY), 11);
    CU_ASSERT_STRING_EQUAL(buf, "hello world");
    sn_conn_free(c);
    close(peer);
}

/* One deadline covers the whole line, however the bytes trickle in. */
static void test_deadline_covers_whole_line(void)
{
    int peer;
    char data[101], buf[128];
    memset(data, 'y', 100);
    data[100] = '\n';
    sn_conn *c = conn_pair(&peer, NULL);
    struct trickle t;
    trickle_start(&t, peer, data, sizeof data, 1, 30);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, SN_LINE_LF, sn_deadline_in(300)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 300);
    t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read_until(c, "\n", 1, buf, sizeof buf, sn_deadline_in(200)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 200);
    t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read_exact(c, buf, 100, sn_deadline_in(200)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 200);
    trickle_stop(&t);
    sn_conn_free(c);
    close(peer);
}

/* ---- byte by byte ------------------------------------------------------------- */

typedef ssize_t (*read_op)(sn_conn *c, char *buf, size_t cap, int arg, sn_deadline dl);

static ssize_t op_line(sn_conn *c, char *buf, size_t cap, int mode, sn_deadline dl)
{
    return sn_read_line(c, buf, cap, mode, dl);
}

static ssize_t op_until4(sn_conn *c, char *buf, size_t cap, int arg, sn_deadline dl)
{
    (void)arg;
    return sn_read_until(c, "\r\n\r\n", 4, buf, cap, dl);
}

static ssize_t op_until1(sn_conn *c, char *buf, size_t cap, int arg, sn_deadline dl)
{
    (void)arg;
    return sn_read_until(c, ";", 1, buf, cap, dl);
}

/* Sends msg one byte at a time; after each byte the operation may not
 * complete before its last byte (it times out, consuming nothing); then it
 * returns want. */
static void feed_bytewise(read_op op, int arg, const char *msg, const char *want, size_t cap)
{
    int peer;
    char buf[256];
    sn_conn_config cfg = {.read_buffer = 8, .read_buffer_max = 256}; /* grows as it goes */
    sn_conn *c = conn_pair(&peer, &cfg);
    size_t len = strlen(msg);
    ssize_t n = SN_ETIMEDOUT;
    for (size_t i = 0; i < len && n == SN_ETIMEDOUT; i++) {
        peer_send(peer, msg + i, 1);
        n = op(c, buf, cap, arg, sn_deadline_in(0));
        if (n != SN_ETIMEDOUT && i + 1 < len) {
            fprintf(stderr, "%s: completed after %zu of %zu bytes\n", want, i + 1, len);
            CU_FAIL("completed early");
        }
    }
    if (n == SN_ETIMEDOUT) /* the last bytes had not arrived in time */
        n = op(c, buf, cap, arg, sn_deadline_in(5000));
    SN_ASSERT_RC(n, (ssize_t)strlen(want));
    if (n == (ssize_t)strlen(want))
        CU_ASSERT(memcmp(buf, want, (size_t)n) == 0);
    /* the next message follows intact */
    peer_str(peer, "z");
    close(peer);
    SN_ASSERT_RC(sn_read(c, buf, 1, sn_deadline_in(5000)), 1);
    CU_ASSERT_EQUAL(buf[0], 'z');
    sn_conn_free(c);
}

static void test_bytewise_lines(void)
{
    feed_bytewise(op_line, SN_LINE_LF, "a line\r fed one byte at a time\n",
                  "a line\r fed one byte at a time", 64);
    feed_bytewise(op_line, SN_LINE_CRLF, "bare\nLF, bare\rCR\r\n", "bare\nLF, bare\rCR", 64);
    feed_bytewise(op_line, SN_LINE_ANY, "any\r\n", "any", 64);
    feed_bytewise(op_line, SN_LINE_ANY, "lf only\n", "lf only", 64);
    feed_bytewise(op_line, SN_LINE_CRLF, "\r\n", "", 64);
}

static void test_bytewise_until(void)
{
    feed_bytewise(op_until4, 0, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHost: x",
                  64);
    feed_bytewise(op_until4, 0, "\r\n\r\r\n\r\n", "\r\n\r", 64);
    feed_bytewise(op_until1, 0, "key=value;", "key=value", 64);
}

static ssize_t op_line_ref(sn_conn *c, char *buf, size_t cap, int mode, sn_deadline dl)
{
    const char *l;
    ssize_t n = sn_read_line_ref(c, &l, cap - 1, mode, dl);
    if (n >= 0) {
        CU_ASSERT_EQUAL(l[n], '\0');
        memcpy(buf, l, (size_t)n);
    }
    return n;
}

static ssize_t op_exact(sn_conn *c, char *buf, size_t cap, int n, sn_deadline dl)
{
    (void)cap;
    return sn_read_exact(c, buf, (size_t)n, dl);
}

/* A peek of n bytes, consumed once it succeeds. */
static ssize_t op_peek(sn_conn *c, char *buf, size_t cap, int n, sn_deadline dl)
{
    const void *p;
    (void)cap;
    ssize_t got = sn_peek(c, (size_t)n, &p, dl);
    if (got < 0)
        return got;
    CU_ASSERT(got >= n);
    memcpy(buf, p, (size_t)n);
    SN_ASSERT_RC(sn_discard(c, (size_t)n, 0), 0);
    return n;
}

static void test_bytewise_other_paths(void)
{
    feed_bytewise(op_line_ref, SN_LINE_CRLF, "by\nref\r\n", "by\nref", 64);
    feed_bytewise(op_line_ref, SN_LINE_LF, "ref lf\r\n", "ref lf\r", 64);
    feed_bytewise(op_line_ref, SN_LINE_ANY, "ref any\r\n", "ref any", 64);
    /* read_exact and peek grow the 8-byte buffer as the bytes come */
    feed_bytewise(op_exact, 20, "exactly twenty bytes", "exactly twenty bytes", 64);
    feed_bytewise(op_peek, 12, "peek at this", "peek at this", 64);
}

/* ---- read until -------------------------------------------------------------- */

static void test_until_split_delimiter(void)
{
    int peer;
    char buf[64];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "head\r\n");
    SN_ASSERT_RC(sn_read_until(c, "\r\n\r\n", 4, buf, sizeof buf, sn_deadline_in(50)),
                 SN_ETIMEDOUT);
    peer_str(peer, "\r");
    SN_ASSERT_RC(sn_read_until(c, "\r\n\r\n", 4, buf, sizeof buf, sn_deadline_in(50)),
                 SN_ETIMEDOUT);
    CU_ASSERT_EQUAL(sn_available(c), 7);
    peer_str(peer, "\nbody;a;;");
    SN_ASSERT_RC(sn_read_until(c, "\r\n\r\n", 4, buf, sizeof buf, sn_deadline_in(5000)), 4);
    CU_ASSERT(memcmp(buf, "head", 4) == 0);
    SN_ASSERT_RC(sn_read_until(c, ";", 1, buf, sizeof buf, sn_deadline_in(5000)), 4);
    CU_ASSERT(memcmp(buf, "body", 4) == 0);
    SN_ASSERT_RC(sn_read_until(c, ";", 1, buf, sizeof buf, sn_deadline_in(5000)), 1);
    SN_ASSERT_RC(sn_read_until(c, ";", 1, buf, sizeof buf, sn_deadline_in(5000)), 0);
    sn_conn_free(c);
    close(peer);
}

static void test_until_limits_and_eof(void)
{
    int peer;
    char buf[300];
    sn_conn_config cfg = {.read_buffer = 16, .read_buffer_max = 64};
    sn_conn *c = conn_pair(&peer, &cfg);
    peer_str(peer, "0123456789--");
    SN_ASSERT_RC(sn_read_until(c, "--", 2, buf, 9, sn_deadline_in(5000)), SN_ELINETOOLONG);
    CU_ASSERT_EQUAL(sn_available(c), 12);
    SN_ASSERT_RC(sn_read_until(c, "--", 2, buf, 10, sn_deadline_in(5000)), 10);
    /* by read_buffer_max */
    memset(buf, 'q', 100);
    peer_send(peer, buf, 100);
    SN_ASSERT_RC(sn_read_until(c, "--", 2, buf, sizeof buf, sn_deadline_in(5000)), SN_ELINETOOLONG);
    CU_ASSERT_EQUAL(sn_available(c), 64);
    SN_ASSERT_RC(sn_discard(c, 100, sn_deadline_in(5000)), 0);
    peer_str(peer, "tail");
    close(peer);
    SN_ASSERT_RC(sn_read_until(c, "--", 2, buf, sizeof buf, sn_deadline_in(5000)),
                 SN_EUNTERMINATED);
    CU_ASSERT_EQUAL(sn_available(c), 4);
    SN_ASSERT_RC(sn_discard(c, 4, 0), 0);
    SN_ASSERT_RC(sn_read_until(c, "--", 2, buf, sizeof buf, sn_deadline_in(5000)), SN_EOF);
    sn_conn_free(c);
}

/* ---- peek, discard, available ------------------------------------------------- */

static void test_peek(void)
{
    int peer;
    const void *p;
    char buf[16];
    sn_conn_config cfg = {.read_buffer = 16, .read_buffer_max = 64};
    sn_conn *c = conn_pair(&peer, &cfg);
    SN_ASSERT_RC(sn_peek(c, 0, &p, 0), 0);
    SN_ASSERT_RC(sn_peek(c, 65, &p, 0), SN_ETOOBIG);
    SN_ASSERT_RC(sn_peek(c, 1, &p, sn_deadline_in(50)), SN_ETIMEDOUT);
    peer_str(peer, "abcdef");
    ssize_t n = sn_peek(c, 3, &p, sn_deadline_in(5000));
    CU_ASSERT(n >= 3);
    CU_ASSERT(memcmp(p, "abc", 3) == 0);
    CU_ASSERT_EQUAL(sn_available(c), (size_t)n);
    /* a peek larger than the initial buffer grows it */
    char big[40];
    memset(big, 'B', sizeof big);
    peer_send(peer, big, sizeof big);
    SN_ASSERT_RC(sn_peek(c, 46, &p, sn_deadline_in(5000)), 46);
    CU_ASSERT(memcmp(p, "abcdefBBB", 9) == 0);
    SN_ASSERT_RC(sn_peek(c, 0, &p, 0), 46);
    SN_ASSERT_RC(sn_read(c, buf, 6, 0), 6);
    CU_ASSERT(memcmp(buf, "abcdef", 6) == 0);
    /* the stream ends before n: what there is */
    close(peer);
    SN_ASSERT_RC(sn_peek(c, 50, &p, sn_deadline_in(5000)), 40);
    SN_ASSERT_RC(sn_discard(c, 40, 0), 0);
    SN_ASSERT_RC(sn_peek(c, 1, &p, sn_deadline_in(5000)), SN_EOF);
    sn_conn_free(c);
}

static void test_discard_and_available(void)
{
    int peer;
    static unsigned char data[10000];
    unsigned char buf[16];
    sn_conn *c = conn_pair(&peer, NULL);
    fill_pattern(data, sizeof data, 3);
    peer_send(peer, data, sizeof data);
    SN_ASSERT_RC(sn_discard(c, 9990, sn_deadline_in(5000)), 0);
    SN_ASSERT_RC(sn_read_exact(c, buf, 10, sn_deadline_in(5000)), 10);
    CU_ASSERT(memcmp(buf, data + 9990, 10) == 0);
    CU_ASSERT_EQUAL(sn_available(c), 0);
    SN_ASSERT_RC(sn_discard(c, 0, 0), 0);
    peer_send(peer, data, 5);
    SN_ASSERT_RC(sn_discard(c, 10, sn_deadline_in(100)), SN_ETIMEDOUT);
    CU_ASSERT_EQUAL(sn_available(c), 0); /* the dropped bytes stay dropped */
    peer_send(peer, data, 5);
    SN_ASSERT_RC(sn_discard(c, 3, sn_deadline_in(5000)), 0);
    CU_ASSERT_EQUAL(sn_available(c), 2);
    close(peer);
    SN_ASSERT_RC(sn_discard(c, 10, sn_deadline_in(5000)), SN_EOF);
    sn_conn_free(c);
}

/* ---- stream errors -------------------------------------------------------------- */

static void *reset_later(void *arg)
{
    sn_test_sleep_ms(100);
    peer_reset(*(int *)arg);
    return NULL;
}

static void test_peer_reset(void)
{
    int peer;
    char buf[64];
    pthread_t th;
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "first\npartial");
    ASSERT_LINE(c, SN_LINE_LF, "first");
    CU_ASSERT_FATAL(pthread_create(&th, NULL, reset_later, &peer) == 0);
    ssize_t n = sn_read_line(c, buf, sizeof buf, SN_LINE_LF, sn_deadline_in(5000));
    pthread_join(th, NULL);
    SN_ASSERT_RC(n, SN_ECONNRESET);
    SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, SN_LINE_LF, sn_deadline_in(5000)), SN_ECONNRESET);
    SN_ASSERT_RC(sn_conn_error(c), SN_ECONNRESET);
    /* the partial line is still there to take */
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, 0), 7);
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, 0), SN_ECONNRESET);
    SN_ASSERT_RC(sn_read_exact(c, buf, 4, 0), SN_ECONNRESET);
    sn_conn_free(c);
}

/* ---- writing ------------------------------------------------------------------ */

static void test_buffered_writes_and_flush(void)
{
    int peer;
    char buf[32];
    sn_conn *c = conn_pair(&peer, NULL);
    SN_ASSERT_RC(sn_write(c, "abc", 3, 0), 3);
    SN_ASSERT_RC(sn_write_str(c, "def", 0), 3);
    SN_ASSERT_RC(sn_write(c, "", 0, 0), 0);
    SN_ASSERT_RC(sn_write(c, "ghi", 3, 0), 3);
    CU_ASSERT_EQUAL(sn_pending(c), 9);
    sn_test_sleep_ms(20);
    CU_ASSERT_EQUAL(peer_try_recv(peer, buf, sizeof buf), 0); /* nothing sent yet */
    SN_ASSERT_RC(sn_flush(c, sn_deadline_in(5000)), 0);
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 9, 5000), 0);
    CU_ASSERT(memcmp(buf, "abcdefghi", 9) == 0);
    sn_conn_stats st;
    sn_conn_stats_get(c, &st);
    CU_ASSERT_EQUAL(st.bytes_written, 9);
    CU_ASSERT_EQUAL(st.write_calls, 1);
    SN_ASSERT_RC(sn_flush(c, 0), 0); /* nothing to do */
    sn_conn_free(c);
    close(peer);
}

static void test_buffer_fills_and_sends(void)
{
    int peer;
    char buf[64];
    sn_conn_config cfg = {.write_buffer = 16};
    sn_conn *c = conn_pair(&peer, &cfg);
    SN_ASSERT_RC(sn_write(c, "0123456789", 10, 0), 10);
    SN_ASSERT_RC(sn_write(c, "abcdefghij", 10, 0), 10); /* does not fit: the first 10 go */
    CU_ASSERT_EQUAL(sn_pending(c), 10);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 10, 5000), 0);
    CU_ASSERT(memcmp(buf, "0123456789", 10) == 0);
    SN_ASSERT_RC(sn_flush(c, 0), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 10, 5000), 0);
    CU_ASSERT(memcmp(buf, "abcdefghij", 10) == 0);
    sn_conn_free(c);
    close(peer);
}

static void test_printf(void)
{
    int peer;
    char want[2048], buf[2048];
    sn_conn_config cfg = {.write_buffer = 64};
    sn_conn *c = conn_pair(&peer, &cfg);
    SN_ASSERT_RC(sn_printf(c, 0, "%d-%s|", 42, "x"), 5);
    CU_ASSERT_EQUAL(sn_pending(c), 5);
    /* 50 more fit in place (55 buffered), 30 do not: flushed first */
    SN_ASSERT_RC(sn_printf(c, 0, "%050d", 7), 50);
    SN_ASSERT_RC(sn_printf(c, 0, "%030d", 8), 30);
    CU_ASSERT_EQUAL(sn_pending(c), 30);
    /* longer than the buffer: formatted aside, sent after what is buffered */
    char big[1001];
    memset(big, 'L', 1000);
    big[1000] = '\0';
    SN_ASSERT_RC(sn_printf(c, 0, "<%s>", big), 1002);
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    SN_ASSERT_RC(sn_printf(c, 0, "%s", ""), 0);
    SN_ASSERT_RC(sn_printf(c, 0, "end"), 3);
    SN_ASSERT_RC(sn_flush(c, 0), 0);
    int n = snprintf(want, sizeof want, "%d-%s|%050d%030d<%s>end", 42, "x", 7, 8, big);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, (size_t)n, 5000), 0);
    CU_ASSERT(memcmp(buf, want, (size_t)n) == 0);
    sn_conn_free(c);
    close(peer);
}

static void test_writev(void)
{
    int peer;
    char buf[8192];
    static char big[5000];
    sn_conn *c = conn_pair(&peer, NULL);
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    SN_ASSERT_RC(sn_writev(c, iov, 3, 0), 5);
    CU_ASSERT_EQUAL(sn_pending(c), 5);
    SN_ASSERT_RC(sn_writev(c, iov, 0, 0), 0);
    SN_ASSERT_RC(sn_writev(c, iov, -1, 0), SN_EINVAL);
    /* at least the buffer size: straight out, after what is buffered */
    memset(big, 'W', sizeof big);
    struct iovec iov2[2] = {{big, 3000}, {big + 3000, 2000}};
    SN_ASSERT_RC(sn_writev(c, iov2, 2, sn_deadline_in(5000)), 5000);
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 5005, 5000), 0);
    CU_ASSERT(memcmp(buf, "abcde", 5) == 0 && memcmp(buf + 5, big, 5000) == 0);
    /* many buffers, more than fit on the stack */
    struct iovec many[40];
    for (int i = 0; i < 40; i++)
        many[i] = (struct iovec){big, 200};
    SN_ASSERT_RC(sn_writev(c, many, 40, sn_deadline_in(5000)), 8000);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 8000, 5000), 0);
    CU_ASSERT(memcmp(buf, big, 200) == 0 && memcmp(buf + 7800, big, 200) == 0);
    sn_conn_free(c);
    close(peer);
}

static void test_large_write(void)
{
    int peer;
    size_t n = 8u << 20;
    unsigned char *data = malloc(n);
    fill_pattern(data, n, 11);
    sn_conn *c = conn_pair(&peer, NULL);
    struct sink k;
    sink_start(&k, peer, n, 11, 0);
    /* a few bytes buffered, then the rest in one direct gather */
    SN_ASSERT_RC(sn_write(c, data, 5, 0), 5);
    SN_ASSERT_RC(sn_write(c, data + 5, n - 5, sn_deadline_in(20000)), (ssize_t)(n - 5));
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    pthread_join(k.th, NULL);
    SN_ASSERT_RC(k.rc, 0);
    CU_ASSERT(k.same);
    sn_conn_stats st;
    sn_conn_stats_get(c, &st);
    CU_ASSERT_EQUAL(st.bytes_written, n);
    CU_ASSERT(st.write_calls >= 1);
    sn_conn_free(c);
    close(peer);
    free(data);
}

/* Smaller socket buffers on both sides, so a few MiB cannot all go into
 * them. (Not tiny: a receive window under the loopback MSS makes TCP crawl.) */
static void shrink_buffers(sn_conn *c, int peer)
{
    int small = 65536;
    setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(sn_sock_fd(sn_conn_sock(c)), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
}

static void test_write_deadline_then_complete(void)
{
    int peer;
    size_t n = 4u << 20;
    unsigned char *data = malloc(n);
    fill_pattern(data, n, 5);
    sn_conn_config cfg = {.write_buffer = 8u << 20};
    sn_conn *c = conn_pair(&peer, &cfg);
    shrink_buffers(c, peer);
    SN_ASSERT_RC(sn_write(c, data, n, 0), (ssize_t)n); /* buffered: below write_buffer */
    CU_ASSERT_EQUAL(sn_pending(c), n);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_flush(c, sn_deadline_in(200)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 200);
    size_t left = sn_pending(c);
    CU_ASSERT(left > 0 && left < n);
    CU_ASSERT_EQUAL(sn_conn_error(c), 0);
    /* the peer starts reading: the second flush sends the rest */
    struct sink k;
    sink_start(&k, peer, n, 5, 0);
    SN_ASSERT_RC(sn_flush(c, sn_deadline_in(20000)), 0);
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    pthread_join(k.th, NULL);
    SN_ASSERT_RC(k.rc, 0);
    CU_ASSERT(k.same);
    sn_conn_free(c);
    close(peer);
    free(data);
}

static void test_direct_write_timeout_is_sticky(void)
{
    int peer;
    size_t n = 4u << 20;
    unsigned char *data = calloc(1, n);
    sn_conn *c = conn_pair(&peer, NULL);
    shrink_buffers(c, peer);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_write(c, data, n, sn_deadline_in(200)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 200);
    SN_ASSERT_RC(sn_conn_error(c), SN_ETIMEDOUT); /* the stream is cut mid-message */
    SN_ASSERT_RC(sn_write(c, "x", 1, 0), SN_ETIMEDOUT);
    SN_ASSERT_RC(sn_flush(c, 0), SN_ETIMEDOUT);
    sn_conn_free(c);
    close(peer);
    free(data);
}

static void test_write_to_closed_peer(void)
{
    int peer;
    char buf[8];
    sn_conn *c = conn_pair(&peer, NULL);
    close(peer);
    int rc = 0;
    for (int i = 0; i < 200 && rc >= 0; i++) {
        rc = (int)sn_write(c, "data", 4, 0);
        if (rc >= 0)
            rc = sn_flush(c, sn_deadline_in(1000));
        if (rc >= 0)
            sn_test_sleep_ms(5);
    }
    if (rc != SN_EPIPE && rc != SN_ECONNRESET)
        fprintf(stderr, "write to a closed peer: %s\n", sn_err_name(rc));
    CU_ASSERT(rc == SN_EPIPE || rc == SN_ECONNRESET);
    SN_ASSERT_RC(sn_flush(c, 0), rc);
    SN_ASSERT_RC(sn_write(c, "x", 1, 0), rc);
    SN_ASSERT_RC(sn_printf(c, 0, "%d", 1), rc);
    SN_ASSERT_RC(sn_conn_error(c), rc);
    /* the read side sees the end or the reset */
    ssize_t r = sn_read(c, buf, sizeof buf, sn_deadline_in(5000));
    CU_ASSERT(r == SN_EOF || r == SN_ECONNRESET);
    sn_conn_free(c);
}

static void test_autoflush(void)
{
    int peer;
    char buf[16];
    sn_conn_config cfg = {.autoflush = SN_ON};
    sn_conn *c = conn_pair(&peer, &cfg);
    SN_ASSERT_RC(sn_write(c, "ab", 2, 0), 2);
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 2, 5000), 0);
    SN_ASSERT_RC(sn_printf(c, 0, "%d", 123), 3);
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf + 2, 3, 5000), 0);
    struct iovec iov[2] = {{"c", 1}, {"d", 1}};
    SN_ASSERT_RC(sn_writev(c, iov, 2, 0), 2);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf + 5, 2, 5000), 0);
    CU_ASSERT(memcmp(buf, "ab123cd", 7) == 0);
    sn_conn_free(c);
    close(peer);
}

/* With autoflush, a write with nothing buffered goes straight out: no write
 * buffer is allocated for it. */
static void test_autoflush_writes_through(void)
{
    int peer;
    char buf[64];
    sn_conn_config cfg = {.autoflush = SN_ON};
    sn_conn *c = conn_pair(&peer, &cfg);
    long live = sn__alloc_live();
    for (int i = 0; i < 10; i++) {
        SN_ASSERT_RC(sn_write(c, "0123456789", 10, 0), 10);
        CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 10, 5000), 0);
        CU_ASSERT(memcmp(buf, "0123456789", 10) == 0);
    }
    struct iovec iov[3] = {{"a", 1}, {"", 0}, {"bc", 2}};
    SN_ASSERT_RC(sn_writev(c, iov, 3, 0), 3);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 3, 5000), 0);
    CU_ASSERT(memcmp(buf, "abc", 3) == 0);
    CU_ASSERT_EQUAL(sn__alloc_live(), live);
    sn_conn_free(c);
    close(peer);
}

/* A write-through that times out keeps the unsent rest buffered: the flush
 * that follows sends it, and the peer gets every byte once, in order. */
static void test_autoflush_timeout_keeps_rest(void)
{
    int peer;
    size_t max = 16u << 20, chunk = 60000, off = 0;
    unsigned char *data = malloc(max);
    fill_pattern(data, max, 9);
    sn_conn_config cfg = {.autoflush = SN_ON, .write_buffer = 65536};
    sn_conn *c = conn_pair(&peer, &cfg);
    shrink_buffers(c, peer);
    ssize_t rc = 0;
    while (off + chunk <= max) {
        rc = sn_write(c, data + off, chunk, sn_deadline_in(100));
        off += chunk; /* taken either way: sent, or buffered on a timeout */
        if (rc != (ssize_t)chunk)
            break;
    }
    SN_ASSERT_RC(rc, SN_ETIMEDOUT);
    CU_ASSERT(sn_pending(c) > 0 && sn_pending(c) <= chunk);
    CU_ASSERT_EQUAL(sn_conn_error(c), 0);
    struct sink k;
    sink_start(&k, peer, off, 9, 0);
    SN_ASSERT_RC(sn_flush(c, sn_deadline_in(20000)), 0);
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    pthread_join(k.th, NULL);
    SN_ASSERT_RC(k.rc, 0);
    CU_ASSERT(k.same);
    sn_conn_free(c);
    close(peer);
    free(data);
}

static void test_shutdown_write(void)
{
    int peer;
    char buf[16];
    sn_conn *c = conn_pair(&peer, NULL);
    SN_ASSERT_RC(sn_write_str(c, "bye", 0), 3);
    SN_ASSERT_RC(sn_shutdown_write(c, sn_deadline_in(5000)), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 3, 5000), 0);
    CU_ASSERT(memcmp(buf, "bye", 3) == 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 1, 5000), SN_EOF);
    /* reading goes on */
    peer_str(peer, "ok\n");
    ASSERT_LINE(c, SN_LINE_LF, "ok");
    SN_ASSERT_RC(sn_write(c, "x", 1, 0), SN_EPIPE);
    CU_ASSERT_EQUAL(sn_conn_error(c), 0); /* a half-close is not an error */
    SN_ASSERT_RC(sn_conn_close(c, 0), 0);
    sn_conn_free(c);
    close(peer);
}

/* ---- waking (the server stopping) ------------------------------------------------ */

struct reader {
    pthread_t th;
    sn_conn *c;
    ssize_t rc;
    int64_t done_ms;
    char buf[64];
};

static void *reader_run(void *arg)
{
    struct reader *r = arg;
    r->rc = sn_read_line(r->c, r->buf, sizeof r->buf, SN_LINE_ANY, SN_DEADLINE_NEVER);
    r->done_ms = sn_now_ms();
    return NULL;
}

/* Starts a reader blocked in sn_read_line, wakes it at level, and returns
 * what it returned. */
static ssize_t wake_blocked_reader(sn_conn *c, int level)
{
    struct reader r = {.c = c};
    CU_ASSERT_FATAL(pthread_create(&r.th, NULL, reader_run, &r) == 0);
    sn_test_sleep_ms(100);
    int64_t t0 = sn_now_ms();
    sn__conn_wake(c, level);
    pthread_join(r.th, NULL);
    CU_ASSERT(r.done_ms - t0 < 1000); /* promptly */
    return r.rc;
}

static void test_wake_level1(void)
{
    int peer;
    char buf[32];
    sn_conn *c = conn_pair(&peer, NULL);
    SN_ASSERT_RC(wake_blocked_reader(c, 1), SN_ESTOPPED);
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, 0), SN_ESTOPPED); /* sticky */
    /* writes still work */
    SN_ASSERT_RC(sn_write_str(c, "goodbye\n", 0), 8);
    SN_ASSERT_RC(sn_flush(c, sn_deadline_in(5000)), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 8, 5000), 0);
    CU_ASSERT(memcmp(buf, "goodbye\n", 8) == 0);
    sn_conn_free(c);
    close(peer);
}

static void test_wake_level1_delivers_buffered_first(void)
{
    int peer;
    char buf[32];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "a\nb\nlast");
    sn_test_sleep_ms(20);
    ASSERT_LINE(c, SN_LINE_ANY, "a");
    sn__conn_wake(c, 1);
    ASSERT_LINE(c, SN_LINE_ANY, "b");
    ASSERT_LINE(c, SN_LINE_ANY, "last"); /* unterminated, then stopped */
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_ANY), SN_ESTOPPED);
    SN_ASSERT_RC(sn_conn_error(c), SN_ESTOPPED);
    sn_conn_free(c);
    close(peer);
}

static void test_wake_level2(void)
{
    int peer;
    char buf[32];
    const void *p;
    sn_conn *c = conn_pair(&peer, NULL);
    SN_ASSERT_RC(wake_blocked_reader(c, 2), SN_ESTOPPED);
    SN_ASSERT_RC(sn_write(c, "x", 1, 0), SN_ESTOPPED);
    SN_ASSERT_RC(sn_flush(c, 0), SN_ESTOPPED);
    SN_ASSERT_RC(sn_printf(c, 0, "x"), SN_ESTOPPED);
    sn_conn_free(c);
    close(peer);

    /* at once, even with bytes buffered */
    c = conn_pair(&peer, NULL);
    peer_str(peer, "a\nb\n");
    sn_test_sleep_ms(20);
    ASSERT_LINE(c, SN_LINE_ANY, "a");
    SN_ASSERT_RC(sn_write(c, "pending", 7, 0), 7);
    sn__conn_wake(c, 2);
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_ANY), SN_ESTOPPED);
    SN_ASSERT_RC(sn_read(c, buf, sizeof buf, 0), SN_ESTOPPED);
    SN_ASSERT_RC(sn_peek(c, 1, &p, 0), SN_ESTOPPED);
    SN_ASSERT_RC(sn_read_exact(c, buf, 1, 0), SN_ESTOPPED);
    SN_ASSERT_RC(sn_flush(c, 0), SN_ESTOPPED);
    sn_conn_free(c);
    close(peer);
}

struct flusher {
    pthread_t th;
    sn_conn *c;
    int rc;
    int64_t done_ms;
};

static void *flusher_run(void *arg)
{
    struct flusher *f = arg;
    f->rc = sn_flush(f->c, SN_DEADLINE_NEVER);
    f->done_ms = sn_now_ms();
    return NULL;
}

/* A connection with 4 MiB written into its buffer, small socket buffers,
 * and a peer that does not read: its flush will block. */
static sn_conn *stuck_writer(int *peer, char **data)
{
    size_t n = 4u << 20;
    sn_conn_config cfg = {.write_buffer = 8u << 20};
    sn_conn *c = conn_pair(peer, &cfg);
    *data = calloc(1, n);
    shrink_buffers(c, *peer);
    SN_ASSERT_RC(sn_write(c, *data, n, 0), (ssize_t)n);
    return c;
}

static void test_wake_level2_blocked_writer(void)
{
    int peer;
    char *data;
    sn_conn *c = stuck_writer(&peer, &data);
    struct flusher f = {.c = c};
    CU_ASSERT_FATAL(pthread_create(&f.th, NULL, flusher_run, &f) == 0);
    sn_test_sleep_ms(100);
    int64_t t0 = sn_now_ms();
    sn__conn_wake(c, 2);
    pthread_join(f.th, NULL);
    SN_ASSERT_RC(f.rc, SN_ESTOPPED);
    CU_ASSERT(f.done_ms - t0 < 1000);
    sn_conn_free(c);
    close(peer);
    free(data);
}

/* ---- cancelling from another thread -------------------------------------------------- */

static void cancel_conn(void *arg)
{
    SN_ASSERT_RC(sn_conn_cancel(arg), 0);
}

/* A read blocked with no deadline returns SN_ECANCELED as soon as another
 * thread cancels; every later call does too; the peer sees the end. */
static void test_cancel_blocked_read(void)
{
    int peer;
    char buf[16];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "x");
    CU_ASSERT_EQUAL(sn_read(c, buf, 1, SN_DEADLINE_NEVER), 1);
    sn_test_later *l = sn_test_later_start(100, cancel_conn, c);
    int64_t t0 = sn_now_ms();
    CU_ASSERT_EQUAL(sn_read(c, buf, sizeof buf, SN_DEADLINE_NEVER), SN_ECANCELED);
    int64_t took = sn_now_ms() - t0;
    CU_ASSERT(took >= 90 && took < 1000);
    sn_test_later_join(l);
    peer_str(peer, "late");
    CU_ASSERT_EQUAL(sn_read(c, buf, sizeof buf, sn_deadline_in(1000)), SN_ECANCELED);
    CU_ASSERT_EQUAL(sn_write(c, "y", 1, 0), SN_ECANCELED);
    CU_ASSERT_EQUAL(sn_conn_error(c), SN_ECANCELED);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 1, 5000), SN_EOF); /* shut down both ways */
    SN_ASSERT_RC(sn_conn_cancel(c), 0);                            /* again: nothing more */
    SN_ASSERT_RC(sn_conn_close(c, 0), 0);
    SN_ASSERT_RC(sn_conn_cancel(c), 0); /* after the close: does nothing */
    sn_conn_free(c);
    close(peer);
    CU_ASSERT_EQUAL(sn_conn_cancel(NULL), SN_EINVAL);
}

/* A flush blocked on a full socket ends the same way. */
static void test_cancel_blocked_flush(void)
{
    int peer;
    char *data;
    sn_conn *c = stuck_writer(&peer, &data);
    sn_test_later *l = sn_test_later_start(100, cancel_conn, c);
    CU_ASSERT_EQUAL(sn_flush(c, SN_DEADLINE_NEVER), SN_ECANCELED);
    sn_test_later_join(l);
    CU_ASSERT_EQUAL(sn_conn_close(c, 0), SN_ECANCELED); /* bytes were left */
    sn_conn_free(c);
    close(peer);
    free(data);
}

/* On a fiber: the read parks, and a cancel from a plain thread wakes it. */
struct fiber_read {
    sn_conn *c;
    ssize_t rc;
    int64_t took;
};

static void fiber_read_run(void *arg)
{
    struct fiber_read *f = arg;
    char buf[16];
    int64_t t0 = sn_now_ms();
    f->rc = sn_read(f->c, buf, sizeof buf, SN_DEADLINE_NEVER);
    f->took = sn_now_ms() - t0;
}

static void test_cancel_read_on_fiber(void)
{
    int peer;
    struct fiber_read f = {.c = conn_pair(&peer, NULL)};
    sn_sched *sch;
    SN_ASSERT_RC(sn__sched_new(&sch), 0);
    SN_ASSERT_RC(sn__fiber_spawn(sch, fiber_read_run, &f, 0), 0);
    sn_test_later *l = sn_test_later_start(100, cancel_conn, f.c);
    sn__sched_run(sch);
    sn_test_later_join(l);
    sn__sched_free(sch);
    CU_ASSERT_EQUAL(f.rc, SN_ECANCELED);
    CU_ASSERT(f.took >= 90 && f.took < 1000);
    sn_conn_free(f.c);
    close(peer);
}

/* A cancel that meets the owner's close and free never reaches another
 * socket's descriptor: the numbers freed are reused at once here. */
struct cancel_race {
    sn_conn *c;
    atomic_bool go;
};

static void *cancel_race_run(void *arg)
{
    struct cancel_race *r = arg;
    while (!atomic_load(&r->go))
        sched_yield();
    sn_conn_cancel(r->c);
    return NULL;
}

static void test_cancel_races_close(void)
{
    for (int i = 0; i < 200; i++) {
        int peer, a, b;
        struct cancel_race r = {.c = conn_pair(&peer, NULL)};
        pthread_t t;
        CU_ASSERT_FATAL(pthread_create(&t, NULL, cancel_race_run, &r) == 0);
        atomic_store(&r.go, true);
        sn_conn_close(r.c, 0);
        /* the closed number goes to a new pair at once: a late shutdown
         * would end it */
        CU_ASSERT_FATAL(sn_test_tcp_pair(&a, &b) == 0);
        pthread_join(t, NULL);
        sn_conn_free(r.c);
        CU_ASSERT_EQUAL(sn_test_write_all(a, "ok", 2), 0);
        char buf[2];
        CU_ASSERT_EQUAL(sn_test_read_all(b, buf, 2, 5000), 0);
        close(a);
        close(b);
        close(peer);
    }
}

/* ---- two connections, counters ------------------------------------------------------ */

struct echo {
    pthread_t th;
    sn_conn *c;
    int lines;
};

static void *echo_run(void *arg)
{
    struct echo *e = arg;
    const char *l;
    ssize_t n;
    while ((n = sn_read_line_ref(e->c, &l, 0, SN_LINE_LF, sn_deadline_in(10000))) >= 0) {
        sn_write(e->c, l, (size_t)n, 0);
        sn_write(e->c, "\n", 1, 0);
        if (sn_flush(e->c, sn_deadline_in(10000)) < 0)
            break;
        e->lines++;
    }
    return NULL;
}

struct watcher {
    pthread_t th;
    sn_conn *c;
    atomic_bool stop;
    bool monotonic;
};

static void *watcher_run(void *arg)
{
    struct watcher *w = arg;
    sn_conn_stats prev = {0}, st;
    while (!atomic_load(&w->stop)) {
        sn_conn_stats_get(w->c, &st);
        if (st.bytes_read < prev.bytes_read || st.bytes_written < prev.bytes_written ||
            st.read_calls < prev.read_calls || st.write_calls < prev.write_calls)
            w->monotonic = false;
        (void)sn_conn_error(w->c);
        prev = st;
        sn_test_sleep_ms(1); /* no spinning: valgrind runs one thread at a time */
    }
    return NULL;
}

static void test_ping_pong_and_counters(void)
{
    sn_sock *cs, *ss;
    sn_conn *c, *s;
    CU_ASSERT_FATAL(sn_test_sock_pair(&cs, &ss) == 0);
    CU_ASSERT_FATAL(sn_conn_new(&c, cs, NULL) == 0);
    CU_ASSERT_FATAL(sn_conn_new(&s, ss, NULL) == 0);
    struct echo e = {.c = s};
    struct watcher w = {.c = s, .monotonic = true};
    atomic_init(&w.stop, false);
    CU_ASSERT_FATAL(pthread_create(&e.th, NULL, echo_run, &e) == 0);
    CU_ASSERT_FATAL(pthread_create(&w.th, NULL, watcher_run, &w) == 0);
    enum { N = 1000 };
    uint64_t total = 0;
    for (int i = 0; i < N; i++) {
        char want[32], got[32];
        int len = snprintf(want, sizeof want, "message %d", i);
        CU_ASSERT_EQUAL(sn_printf(c, 0, "%s\n", want), len + 1);
        CU_ASSERT_EQUAL(sn_flush(c, sn_deadline_in(10000)), 0);
        ssize_t n = sn_read_line(c, got, sizeof got, SN_LINE_LF, sn_deadline_in(10000));
        SN_ASSERT_RC(n, len);
        if (n != len || memcmp(got, want, (size_t)len) != 0) {
            fprintf(stderr, "message %d of %d\n", i, N);
            CU_FAIL("echo differs");
            break;
        }
        total += (uint64_t)len + 1;
    }
    SN_ASSERT_RC(sn_shutdown_write(c, sn_deadline_in(5000)), 0);
    pthread_join(e.th, NULL);
    atomic_store(&w.stop, true);
    pthread_join(w.th, NULL);
    CU_ASSERT(w.monotonic);
    CU_ASSERT_EQUAL(e.lines, N);
    SN_ASSERT_RC(sn_conn_error(s), SN_EOF);
    sn_conn_stats cst, sst;
    sn_conn_stats_get(c, &cst);
    sn_conn_stats_get(s, &sst);
    CU_ASSERT_EQUAL(cst.bytes_written, total);
    CU_ASSERT_EQUAL(cst.bytes_read, total);
    CU_ASSERT_EQUAL(sst.bytes_read, total);
    CU_ASSERT_EQUAL(sst.bytes_written, total);
    CU_ASSERT_EQUAL(cst.write_calls, N); /* one send per flush */
    CU_ASSERT_EQUAL(sst.write_calls, N);
    CU_ASSERT_EQUAL(cst.read_calls, N); /* one receive per echoed line */
    sn_conn_free(c);
    sn_conn_free(s);
}

/* ---- allocation failures, leaks ------------------------------------------------------ */

static void test_alloc_failure_in_new(void)
{
    int a, b;
    sn_sock *s;
    sn_conn *c = NULL;
    CU_ASSERT_FATAL(sn_test_tcp_pair(&a, &b) == 0);
    CU_ASSERT_FATAL(sn_sock_from_fd(&s, a) == 0);
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(sn_conn_new(&c, s, NULL), SN_ENOMEM);
    sn__alloc_fail_after(-1);
    CU_ASSERT_PTR_NULL(c);
    /* the socket is still the caller's, and still usable */
    SN_ASSERT_RC(sn_conn_new(&c, s, NULL), 0);
    sn_conn_free(c);
    close(b);
}

static void test_alloc_failure_in_buffers(void)
{
    int peer;
    char buf[8192];
    static char big[6000];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "hi\n");
    /* the lazy read buffer */
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_LF), SN_ENOMEM);
    sn__alloc_fail_after(-1);
    CU_ASSERT_EQUAL(sn_conn_error(c), 0);
    ASSERT_LINE(c, SN_LINE_LF, "hi");
    /* its growth for a long line */
    memset(big, 'g', sizeof big);
    peer_send(peer, big, sizeof big);
    peer_str(peer, "\n");
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_LF), SN_ENOMEM);
    sn__alloc_fail_after(-1);
    SN_ASSERT_RC(line(c, buf, sizeof buf, SN_LINE_LF), (ssize_t)sizeof big);
    /* the lazy write buffer */
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(sn_write(c, "x", 1, 0), SN_ENOMEM);
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(sn_printf(c, 0, "%d", 5), SN_ENOMEM);
    sn__alloc_fail_after(-1);
    CU_ASSERT_EQUAL(sn_pending(c), 0);
    SN_ASSERT_RC(sn_write(c, "x", 1, 0), 1);
    /* a printf longer than the buffer formats into a temporary */
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(sn_printf(c, 0, "%5000d", 1), SN_ENOMEM);
    sn__alloc_fail_after(-1);
    CU_ASSERT_EQUAL(sn_conn_error(c), 0);
    SN_ASSERT_RC(sn_flush(c, 0), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 1, 5000), 0);
    CU_ASSERT_EQUAL(buf[0], 'x');
    sn_conn_free(c);
    close(peer);
}

/* A whole session, closed by the caller: the runner checks that nothing leaks. */
static void test_no_leaks_across_a_session(void)
{
    int peer;
    char buf[64];
    sn_conn *c = conn_pair(&peer, NULL);
    peer_str(peer, "x\n");
    ASSERT_LINE(c, SN_LINE_LF, "x");
    SN_ASSERT_RC(sn_printf(c, 0, "y\n"), 2);
    SN_ASSERT_RC(sn_conn_close(c, sn_deadline_in(5000)), 0);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, buf, 2, 5000), 0);
    sn_conn_free(c);
    close(peer);
}

/* ---- more: exact reads beyond the buffer, states, many lines ------------------ */

/* A peer thread that sends len bytes and then, if told, closes its end. */
struct sender {
    pthread_t th;
    int fd;
    const unsigned char *data;
    size_t len;
    bool close_after;
    int rc;
};

static void *sender_run(void *arg)
{
    struct sender *s = arg;
    s->rc = sn_test_write_all(s->fd, s->data, s->len);
    if (s->close_after)
        close(s->fd);
    return NULL;
}

static void sender_start(struct sender *s, int fd, const unsigned char *data, size_t len,
                         bool close_after)
{
    s->fd = fd;
    s->data = data;
    s->len = len;
    s->close_after = close_after;
    CU_ASSERT_FATAL(pthread_create(&s->th, NULL, sender_run, s) == 0);
}

/* A peer thread that sends one byte after a delay. */
struct later {
    pthread_t th;
    int fd, delay_ms;
    int64_t sent_at;
};

static void *later_run(void *arg)
{
    struct later *l = arg;
    sn_test_sleep_ms(l->delay_ms);
    l->sent_at = sn_now_ms();
    (void)!send(l->fd, "x", 1, MSG_NOSIGNAL);
    return NULL;
}

static void later_start(struct later *l, int fd, int delay_ms)
{
    l->fd = fd;
    l->delay_ms = delay_ms;
    CU_ASSERT_FATAL(pthread_create(&l->th, NULL, later_run, l) == 0);
}

/* A read that waits blocks in recv under SO_RCVTIMEO, which the transport
 * keeps while it fits the deadline: deadlines of every length in turn, long
 * after short and short after long, each end on time, and a read without a
 * deadline waits as long as it takes. */
static void test_read_waits_with_any_deadline(void)
{
    int peer;
    char b;
    sn_conn *c = conn_pair(&peer, NULL);
    int fd = sn_sock_fd(sn_conn_sock(c));
    peer_str(peer, "a");
    SN_ASSERT_RC(sn_read(c, &b, 1, sn_deadline_in(1000)), 1);
    static const int order[] = {300, 40, 600, 20, 200};
    for (size_t i = 0; i < SN_ARRAY_SIZE(order); i++) {
        int64_t t0 = sn_now_ms();
        SN_ASSERT_RC(sn_read(c, &b, 1, sn_deadline_in(order[i])), SN_ETIMEDOUT);
        ASSERT_ELAPSED(t0, order[i]);
        /* the same length again, with a byte that comes in time */
        struct later l;
        t0 = sn_now_ms();
        later_start(&l, peer, order[i] / 4);
        int rc = (int)sn_read(c, &b, 1, sn_deadline_in(order[i]));
        pthread_join(l.th, NULL);
        if (rc == SN_ETIMEDOUT) { /* only if the sender came late (a loaded machine) */
            CU_ASSERT(l.sent_at >= t0 + order[i] - 5);
            rc = (int)sn_read(c, &b, 1, sn_deadline_in(5000));
        }
        SN_ASSERT_RC(rc, 1);
    }
    CU_ASSERT((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0); /* switched on the first wait */
    struct later l;
    later_start(&l, peer, 150);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read(c, &b, 1, SN_DEADLINE_NEVER), 1);
    ASSERT_ELAPSED(t0, 150);
    pthread_join(l.th, NULL);
    /* and back to a deadline after none */
    t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read(c, &b, 1, sn_deadline_in(50)), SN_ETIMEDOUT);
    ASSERT_ELAPSED(t0, 50);
    sn_conn_free(c);
    close(peer);
}

static void test_read_exact_8mib(void)
{
    int peer;
    size_t n = 8u << 20;
    unsigned char *out = malloc(n), *in = malloc(n);
    CU_ASSERT_FATAL(out != NULL && in != NULL);
    fill_pattern(out, n, 13);
    sn_conn *c = conn_pair(&peer, NULL); /* read_buffer_max 64 KiB */
    struct sender s;
    sender_start(&s, peer, out, n, false);
    memset(in, 0, n);
    SN_ASSERT_RC(sn_read_exact(c, in, n, sn_deadline_in(30000)), (ssize_t)n);
    pthread_join(s.th, NULL);
    SN_ASSERT_RC(s.rc, 0);
    CU_ASSERT(memcmp(in, out, n) == 0);
    sn_conn_stats st;
    sn_conn_stats_get(c, &st);
    CU_ASSERT_EQUAL(st.bytes_read, n);
    CU_ASSERT_EQUAL(sn_available(c), 0);
    sn_conn_free(c);
    close(peer);

    /* the peer closes after 1 MiB of the 8 */
    c = conn_pair(&peer, NULL);
    sender_start(&s, peer, out, 1u << 20, true);
    SN_ASSERT_RC(sn_read_exact(c, in, n, sn_deadline_in(30000)), SN_EOF);
    pthread_join(s.th, NULL);
    SN_ASSERT_RC(sn_read_exact(c, in, n, sn_deadline_in(5000)), SN_EOF);
    SN_ASSERT_RC(sn_read_exact(c, in, 1, sn_deadline_in(5000)), SN_EOF);
    SN_ASSERT_RC(sn_conn_error(c), SN_EOF);
    CU_ASSERT(memcmp(in, out, 1u << 20) == 0); /* what came went straight to buf */
    sn_conn_free(c);
    free(out);
    free(in);
}

static void test_new_bad_state(void)
{
    sn_conn *c = NULL;
    /* a listener */
    sn_sock *l;
    sn_listen_config lc = {.host = "127.0.0.1"};
    CU_ASSERT_FATAL(sn_tcp_listen(&l, &lc) == 0);
    SN_ASSERT_RC(sn_conn_new(&c, l, NULL), SN_EBADSTATE);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(sn_sock_get_state(l), SN_SOCK_LISTENING); /* still the caller's */
    sn_sock_free(l);

    /* a closed socket */
    int a, b;
    sn_sock *s;
    CU_ASSERT_FATAL(sn_test_tcp_pair(&a, &b) == 0);
    CU_ASSERT_FATAL(sn_sock_from_fd(&s, a) == 0);
    SN_ASSERT_RC(sn_sock_close(s), 0);
    SN_ASSERT_RC(sn_conn_new(&c, s, NULL), SN_EBADSTATE);
    CU_ASSERT_PTR_NULL(c);
    sn_sock_free(s);
    close(b);
}

/* Many lines in one send, longer than the read buffer: lines straddle the
 * buffer's end and it compacts under them. */
static void test_many_lines_one_send(void)
{
    enum { N = 2000 };
    int peer;
    size_t len = 0;
    char *all = malloc((size_t)N * 32);
    CU_ASSERT_FATAL(all != NULL);
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(all + len, "%d:%.*s\r\n", i, i % 17, "abcdefghijklmnopq");
    sn_conn *c = conn_pair(&peer, NULL);
    struct sender s;
    sender_start(&s, peer, (const unsigned char *)all, len, true);
    for (int i = 0; i < N; i++) {
        char want[32], buf[64];
        const char *l;
        int wl = snprintf(want, sizeof want, "%d:%.*s", i, i % 17, "abcdefghijklmnopq");
        ssize_t n;
        switch (i % 3) {
        case 0:
            n = sn_read_line(c, buf, sizeof buf, SN_LINE_CRLF, sn_deadline_in(5000));
            l = buf;
            break;
        case 1:
            n = sn_read_line_ref(c, &l, 0, SN_LINE_ANY, sn_deadline_in(5000));
            break;
        default:
            n = sn_read_until(c, "\r\n", 2, buf, sizeof buf, sn_deadline_in(5000));
            l = buf;
            break;
        }
        if (n != wl || memcmp(l, want, (size_t)wl) != 0) {
            fprintf(stderr, "line %d: got %zd, want \"%s\"\n", i, n, want);
            CU_FAIL("line differs");
            break;
        }
    }
    pthread_join(s.th, NULL);
    char buf[8];
    SN_ASSERT_RC(sn_read_line(c, buf, sizeof buf, SN_LINE_ANY, sn_deadline_in(5000)), SN_EOF);
    sn_conn_stats st;
    sn_conn_stats_get(c, &st);
    CU_ASSERT_EQUAL(st.bytes_read, len);
    sn_conn_free(c);
    free(all);
}

static CU_TestInfo tests[] = {
    {"new and getters", test_new_and_getters},
    {"new: errors", test_new_errors},
    {"close keeps the getters", test_close_keeps_getters},
    {"connect", test_connect},
    {"read some", test_read_some},
    {"read straight into a large caller buffer", test_read_direct_into_caller},
    {"read: end of stream is sticky", test_read_eof_is_sticky},
    {"read: a timeout is not sticky", test_read_timeout_not_sticky},
    {"read: the default deadline is the read timeout", test_read_default_deadline},
    {"read exact", test_read_exact},
    {"read exact beyond read_buffer_max", test_read_exact_beyond_max},
    {"read exact beyond read_buffer_max: timeout is sticky",
     test_read_exact_beyond_max_timeout_is_sticky},
    {"lines: LF", test_lines_lf},
    {"lines: CRLF", test_lines_crlf},
    {"lines: ANY", test_lines_any},
    {"lines: bad arguments", test_line_bad_arguments},
    {"lines: CR and LF in two sends", test_line_cr_lf_split},
    {"lines: CR at the end of a full buffer", test_line_cr_at_buffer_end},
    {"lines: NUL bytes", test_line_nul_bytes},
    {"lines: by reference", test_line_ref},
    {"lines: too long by cap", test_line_too_long_by_cap},
    {"lines: too long by read_buffer_max", test_line_too_long_by_buffer_max},
    {"lines: end of stream in each mode", test_line_eof},
    {"lines: unterminated last line too long", test_line_eof_unterminated_too_long},
    {"deadline expiry mid-line loses nothing", test_deadline_mid_line},
    {"one deadline covers the whole operation", test_deadline_covers_whole_line},
    {"lines fed one byte at a time", test_bytewise_lines},
    {"until fed one byte at a time", test_bytewise_until},
    {"line_ref, exact and peek fed one byte at a time", test_bytewise_other_paths},
    {"until: delimiters split across sends", test_until_split_delimiter},
    {"until: limits and end of stream", test_until_limits_and_eof},
    {"peek", test_peek},
    {"discard and available", test_discard_and_available},
    {"peer reset mid-read", test_peer_reset},
    {"buffered writes and flush", test_buffered_writes_and_flush},
    {"a full write buffer is sent", test_buffer_fills_and_sends},
    {"printf", test_printf},
    {"writev", test_writev},
    {"8 MiB write read concurrently", test_large_write},
    {"write deadline, then the rest", test_write_deadline_then_complete},
    {"direct write timeout is sticky", test_direct_write_timeout_is_sticky},
    {"write to a closed peer", test_write_to_closed_peer},
    {"autoflush", test_autoflush},
    {"autoflush writes through", test_autoflush_writes_through},
    {"autoflush timeout keeps the rest", test_autoflush_timeout_keeps_rest},
    {"shutdown write", test_shutdown_write},
    {"wake level 1", test_wake_level1},
    {"wake level 1 delivers buffered lines first", test_wake_level1_delivers_buffered_first},
    {"wake level 2", test_wake_level2},
    {"wake level 2 ends a blocked flush", test_wake_level2_blocked_writer},
    {"cancel: a blocked read returns SN_ECANCELED", test_cancel_blocked_read},
    {"cancel: a blocked flush returns SN_ECANCELED", test_cancel_blocked_flush},
    {"cancel: a read parked on a fiber", test_cancel_read_on_fiber},
    {"cancel: racing the owner's close", test_cancel_races_close},
    {"ping-pong between two connections; counters", test_ping_pong_and_counters},
    {"allocation failure in sn_conn_new", test_alloc_failure_in_new},
    {"allocation failure in the buffers", test_alloc_failure_in_buffers},
    {"no leak across a session", test_no_leaks_across_a_session},
    {"read exact of 8 MiB, and the peer closing midway", test_read_exact_8mib},
    {"reads wait in recv with any deadline", test_read_waits_with_any_deadline},
    {"new: listening or closed socket", test_new_bad_state},
    {"many lines in one send", test_many_lines_one_send},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("chan", tests, 150);
}
