/* SPDX-License-Identifier: MIT */
/*
 * test-event.c: the event model (socknet/event.h), on real loopback
 * sockets: messages in order, each callback type once, the peer's close, a
 * close from another thread while idle, while a callback blocks and while
 * a connect waits, the loop's stop; clients the loop connects (bind, a
 * timeout, TLS and why it failed), UDP with the sender's address,
 * WebSocket sessions with their pings and close handshake; unsubscribing
 * inside a callback, and a blocked callback holding up only its own socket.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sn_test.h"

static sn_tls_source ca_src;

/* Every test runs twice: fiber mode, then thread mode. */
static int g_fibers = SN_ON;

/* A loop in the current mode; in thread mode with a few workers at least,
 * so that a callback that blocks leaves workers for the others. */
static int loop_new(sn_loop **l, int threads)
{
    if (g_fibers == SN_OFF && threads < 4)
        threads = 4;
    return sn_loop_new(l, &(sn_loop_config){.fibers = g_fibers, .threads = threads});
}

/* What a socket's callbacks saw. */
struct seen {
    atomic_int connects, messages, closes, errors;
    atomic_int close_error;
    char got[256];
    atomic_size_t len;    /* of got, stored after its bytes */
    bool echo;            /* write each message back */
    int block_ms;         /* a message callback that waits this long on a read */
    atomic_int block_rc;  /* what that read returned */
    atomic_int order_bad; /* an event after the close, or before the connect */
};

static void on_connect(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct seen *s = user;
    (void)e;
    CU_ASSERT_EQUAL(ev->type, SN_EV_CONNECT);
    atomic_fetch_add(&s->connects, 1);
}

static void on_message(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct seen *s = user;
    if (atomic_load(&s->connects) != 1 || atomic_load(&s->closes) != 0)
        atomic_store(&s->order_bad, 1);
    atomic_fetch_add(&s->messages, 1);
    size_t len = atomic_load(&s->len);
    size_t n = ev->len < sizeof s->got - 1 - len ? ev->len : sizeof s->got - 1 - len;
    memcpy(s->got + len, ev->data, n);
    atomic_store(&s->len, len + n);
    if (s->echo) {
        CU_ASSERT_EQUAL(sn_write(sn_ev_conn(e), ev->data, ev->len, 0), (ssize_t)ev->len);
        SN_ASSERT_RC(sn_flush(sn_ev_conn(e), sn_deadline_in(5000)), 0);
    }
    if (s->block_ms > 0) {
        char b;
        atomic_store(&s->block_rc, (int)sn_read(sn_ev_conn(e), &b, 1, sn_deadline_in(s->block_ms)));
    }
}

static void on_close(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct seen *s = user;
    (void)e;
    atomic_store(&s->close_error, ev->error);
    atomic_fetch_add(&s->closes, 1);
}

static void on_error(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct seen *s = user;
    (void)e;
    (void)ev;
    atomic_fetch_add(&s->errors, 1);
}

/* An event socket over one end of a loopback pair; *peer is the other end. */
static sn_ev *ev_pair(sn_loop *l, struct seen *s, int *peer)
{
    sn_sock *a, *b;
    sn_conn *c;
    sn_ev *e;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    SN_ASSERT_RC(sn_conn_new(&c, a, NULL), 0);
    SN_ASSERT_RC(sn_ev_from_conn(&e, l, c), 0);
    sn_ev_on(e, SN_EV_CONNECT, on_connect, s);
    sn_ev_on(e, SN_EV_MESSAGE, on_message, s);
    sn_ev_on(e, SN_EV_CLOSE, on_close, s);
    sn_ev_on(e, SN_EV_ERROR, on_error, s);
    *peer = dup(sn_sock_fd(b));
    sn_sock_free(b);
    return e;
}

#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        for (int i_ = 0; i_ < 500 && !(cond); i_++)                                                \
            sn_test_sleep_ms(10);                                                                  \
        CU_ASSERT(cond);                                                                           \
    } while (0)

static void test_echo_in_order_and_peer_close(void)
{
    sn_loop *l;
    struct seen s = {.echo = true};
    int peer;
    char buf[64];
    SN_ASSERT_RC(loop_new(&l, 2), 0);
    sn_ev *e = ev_pair(l, &s, &peer);
    SN_ASSERT_RC(sn_ev_start(e), 0);
    SN_ASSERT_RC(sn_ev_start(e), SN_EBADSTATE);
    for (int i = 0; i < 10; i++) {
        char m[8];
        snprintf(m, sizeof m, "m%d;", i);
        SN_ASSERT_RC(sn_test_write_all(peer, m, strlen(m)), 0);
        SN_ASSERT_RC(sn_test_read_all(peer, buf, strlen(m), 5000), 0);
        CU_ASSERT(memcmp(buf, m, strlen(m)) == 0);
    }
    WAIT_FOR(atomic_load(&s.len) == 30);
    CU_ASSERT_STRING_EQUAL(s.got, "m0;m1;m2;m3;m4;m5;m6;m7;m8;m9;");
    close(peer);
    WAIT_FOR(atomic_load(&s.closes) == 1);
    CU_ASSERT_EQUAL(atomic_load(&s.close_error), SN_EOF);
    CU_ASSERT_EQUAL(atomic_load(&s.connects), 1);
    CU_ASSERT_EQUAL(atomic_load(&s.errors), 0);
    CU_ASSERT_EQUAL(atomic_load(&s.order_bad), 0);
    sn_loop_free(l);
    CU_ASSERT_EQUAL(atomic_load(&s.closes), 1);         /* once */
    SN_ASSERT_RC(sn_ev_send(e, "x", 1, 0), SN_ECLOSED); /* the handle outlives it */
    SN_ASSERT_RC(sn_ev_close(e), 0);
    sn_ev_free(e);
}

static void test_close_from_another_thread(void)
{
    sn_loop *l;
    struct seen s = {0}, t = {.block_ms = 10000};
    int peer, peer2;
    char b;
    SN_ASSERT_RC(loop_new(&l, 0), 0);
    /* idle: no fiber runs for it; the close still reaches it */
    sn_ev *e = ev_pair(l, &s, &peer);
    SN_ASSERT_RC(sn_ev_start(e), 0);
    WAIT_FOR(atomic_load(&s.connects) == 1);
    SN_ASSERT_RC(sn_ev_close(e), 0);
    WAIT_FOR(atomic_load(&s.closes) == 1);
    CU_ASSERT_EQUAL(atomic_load(&s.close_error), SN_ECLOSED);
    CU_ASSERT_EQUAL(sn_test_read_all(peer, &b, 1, 5000), SN_EOF);
    /* a message callback blocked in a read: the read returns SN_ECANCELED */
    sn_ev *f = ev_pair(l, &t, &peer2);
    SN_ASSERT_RC(sn_ev_start(f), 0);
    SN_ASSERT_RC(sn_test_write_all(peer2, "x", 1), 0);
    WAIT_FOR(atomic_load(&t.messages) == 1);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_ev_close(f), 0);
    WAIT_FOR(atomic_load(&t.closes) == 1);
    CU_ASSERT(sn_now_ms() - t0 < 2000);
    CU_ASSERT_EQUAL(atomic_load(&t.block_rc), SN_ECANCELED);
    CU_ASSERT_EQUAL(atomic_load(&t.close_error), SN_ECLOSED);
    sn_loop_free(l);
    sn_ev_free(e);
    sn_ev_free(f);
    close(peer);
    close(peer2);
}

static void test_stop_closes_all(void)
{
    sn_loop *l;
    struct seen s[8] = {{0}};
    int peers[8];
    sn_ev *kept = NULL;
    SN_ASSERT_RC(loop_new(&l, 2), 0);
    for (int i = 0; i < 8; i++) {
        sn_ev *e = ev_pair(l, &s[i], &peers[i]);
        if (i < 6) /* two are never started: the stop closes them too */
            SN_ASSERT_RC(sn_ev_start(e), 0);
        if (i == 7)
            kept = e; /* a handle kept past the loop's end */
        else
            sn_ev_free(e); /* the socket lives on */
    }
    SN_ASSERT_RC(sn_loop_stop(l), 0);
    for (int i = 0; i < 8; i++) {
        CU_ASSERT_EQUAL(atomic_load(&s[i].closes), 1);
        CU_ASSERT_EQUAL(atomic_load(&s[i].close_error), SN_ESTOPPED);
        close(peers[i]);
    }
    sn_ev *e;
    sn_sock *a, *b;
    sn_conn *c;
    SN_ASSERT_RC(sn_test_sock_pair(&a, &b), 0);
    SN_ASSERT_RC(sn_conn_new(&c, a, NULL), 0);
    SN_ASSERT_RC(sn_ev_from_conn(&e, l, c), SN_ESTOPPED); /* c is freed */
    sn_sock_free(b);
    sn_loop_free(l);
    /* the loop is gone; the handle is not */
    SN_ASSERT_RC(sn_ev_start(kept), SN_ECLOSED);
    SN_ASSERT_RC(sn_ev_send(kept, "x", 1, 0), SN_ECLOSED);
    SN_ASSERT_RC(sn_ev_close(kept), 0);
    sn_ev_free(kept);
}

/* ---- clients the loop connects ------------------------------------------------- */

/* A listener on 127.0.0.1 (backlog as given); its port. */
static int listen_raw(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CU_ASSERT(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              listen(fd, backlog) == 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

struct client_seen {
    struct seen s;
    char reason[256];
    char peer[64];
};

static void on_client_error(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct client_seen *c = user;
    (void)e;
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev->reason);
    snprintf(c->reason, sizeof c->reason, "%s", ev->reason);
    atomic_store(&c->s.close_error, ev->error);
    atomic_fetch_add(&c->s.errors, 1);
}

static void on_client_connect(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct client_seen *c = user;
    CU_ASSERT_PTR_NOT_NULL(sn_ev_conn(e));
    if (ev->addr != NULL)
        sn_addr_format(ev->addr, c->peer, sizeof c->peer);
    atomic_fetch_add(&c->s.connects, 1);
}

static sn_ev *client(sn_loop *l, struct client_seen *c)
{
    sn_ev *e;
    SN_ASSERT_RC(sn_ev_client(&e, l), 0);
    sn_ev_on(e, SN_EV_CONNECT, on_client_connect, c);
    sn_ev_on(e, SN_EV_MESSAGE, on_message, &c->s);
    sn_ev_on(e, SN_EV_CLOSE, on_close, &c->s);
    sn_ev_on(e, SN_EV_ERROR, on_client_error, c);
    return e;
}

static void test_client_connect_send_close(void)
{
    sn_loop *l;
    struct client_seen c = {0};
    int port;
    int lfd = listen_raw(8, &port);
    SN_ASSERT_RC(loop_new(&l, 1), 0);
    sn_ev *e = client(l, &c);
    SN_ASSERT_RC(sn_ev_start(e), SN_EBADSTATE); /* a client starts by connecting */
    SN_ASSERT_RC(sn_ev_send(e, "x", 1, 0), SN_ENOTCONN);
    sn_sock_options so = {.bind_host = "127.0.0.1"};
    sn_ev_connect_config cc = {.host = "127.0.0.1", .port = port, .sock = &so, .timeout_ms = 5000};
    SN_ASSERT_RC(sn_ev_connect(e, &cc), 0);
    SN_ASSERT_RC(sn_ev_connect(e, &cc), SN_EBADSTATE);
    int peer = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(peer >= 0);
    WAIT_FOR(atomic_load(&c.s.connects) == 1);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    CU_ASSERT_STRING_EQUAL(c.peer, want);
    /* sends from this thread while the loop's thread reads */
    SN_ASSERT_RC(sn_ev_send(e, "hello\n", 6, sn_deadline_in(5000)), 0);
    char buf[8] = {0};
    SN_ASSERT_RC(sn_test_read_all(peer, buf, 6, 5000), 0);
    CU_ASSERT_STRING_EQUAL(buf, "hello\n");
    SN_ASSERT_RC(sn_test_write_all(peer, "world", 5), 0);
    WAIT_FOR(atomic_load(&c.s.len) == 5);
    CU_ASSERT_STRING_EQUAL(c.s.got, "world");
    SN_ASSERT_RC(sn_ev_close(e), 0);
    WAIT_FOR(atomic_load(&c.s.closes) == 1);
    CU_ASSERT_EQUAL(atomic_load(&c.s.close_error), SN_ECLOSED);
    CU_ASSERT_EQUAL(atomic_load(&c.s.errors), 0);
    SN_ASSERT_RC(sn_ev_send(e, "x", 1, 0), SN_ECLOSED);
    sn_ev_free(e);
    close(peer);
    /* refused: error, then close, with the reason */
    close(lfd);
    struct client_seen r = {0};
    e = client(l, &r);
    cc.sock = NULL;
    SN_ASSERT_RC(sn_ev_connect(e, &cc), 0);
    sn_ev_free(e); /* the socket goes on to its end without the handle */
    WAIT_FOR(atomic_load(&r.s.closes) == 1);
    CU_ASSERT_EQUAL(atomic_load(&r.s.errors), 1);
    CU_ASSERT_EQUAL(atomic_load(&r.s.close_error), SN_ECONNREFUSED);
    CU_ASSERT_EQUAL(atomic_load(&r.s.connects), 0);
    CU_ASSERT(strstr(r.reason, "refused") != NULL);
    /* bad input */
    SN_ASSERT_RC(sn_ev_client(&e, l), 0);
    SN_ASSERT_RC(sn_ev_connect(e, &(sn_ev_connect_config){.port = 1}), SN_EINVAL);
    SN_ASSERT_RC(sn_ev_connect(e, &(sn_ev_connect_config){.host = "x", .port = 70000}), SN_EINVAL);
    SN_ASSERT_RC(sn_ev_on(e, 0, NULL, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_ev_on(e, SN_EV_TYPES, NULL, NULL), SN_EINVAL);
    sn_ev_free(e); /* never started: the loop's stop ends it */
    sn_loop_free(l);
}

/* A connect that cannot complete (the listener's queue is full, so the
 * SYN is dropped): its timeout, and a close from another thread. */
static void test_client_connect_timeout_and_cancel(void)
{
    sn_loop *l;
    int port;
    int lfd = listen_raw(0, &port);
    int fill[4];
    for (int i = 0; i < 4; i++) { /* fill the accept queue */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    sn_test_sleep_ms(100);
    SN_ASSERT_RC(loop_new(&l, 1), 0);
    struct client_seen t = {0}, k = {0};
    sn_ev *e = client(l, &t);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(
        sn_ev_connect(
            e, &(sn_ev_connect_config){.host = "127.0.0.1", .port = port, .timeout_ms = 300}),
        0);
    WAIT_FOR(atomic_load(&t.s.closes) == 1);
    int64_t took = sn_now_ms() - t0;
    CU_ASSERT(took >= 250 && took < 3000);
    CU_ASSERT_EQUAL(atomic_load(&t.s.close_error), SN_ETIMEDOUT);
    CU_ASSERT_EQUAL(atomic_load(&t.s.errors), 1);
    sn_ev_free(e);
    e = client(l, &k);
    SN_ASSERT_RC(
        sn_ev_connect(
            e, &(sn_ev_connect_config){.host = "127.0.0.1", .port = port, .timeout_ms = 20000}),
        0);
    sn_test_sleep_ms(200);
    t0 = sn_now_ms();
    SN_ASSERT_RC(sn_ev_close(e), 0);
    WAIT_FOR(atomic_load(&k.s.closes) == 1);
    CU_ASSERT(sn_now_ms() - t0 < 2000);
    CU_ASSERT_EQUAL(atomic_load(&k.s.close_error), SN_ECLOSED);
    CU_ASSERT_EQUAL(atomic_load(&k.s.errors), 0);
    sn_ev_free(e);
    sn_loop_free(l);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

/* A TLS server for one connection: handshake, then echo until the end. */
struct tls_srv {
    int lfd;
    sn_tls *tls;
    pthread_t tid;
};

static void *tls_srv_main(void *arg)
{
    struct tls_srv *t = arg;
    for (int i = 0; i < 2; i++) {
        sn_sock *s;
        sn_conn *c;
        if (sn_sock_from_fd(&s, accept(t->lfd, NULL, NULL)) < 0 || sn_conn_new(&c, s, NULL) < 0)
            return NULL;
        if (sn_tls_upgrade(c, t->tls, NULL, sn_deadline_in(5000)) == 0) {
            char b[64];
            ssize_t n;
            while ((n = sn_read(c, b, sizeof b, sn_deadline_in(5000))) > 0)
                if (sn_write(c, b, (size_t)n, 0) < 0 || sn_flush(c, sn_deadline_in(5000)) < 0)
                    break;
        }
        sn_conn_free(c);
    }
    return NULL;
}

static void test_client_tls(void)
{
    sn_loop *l;
    struct tls_srv srv = {0};
    int port;
    srv.lfd = listen_raw(8, &port);
    sn_tls_config sc = {.role = SN_TLS_SERVER,
                        .cert = {.chain = {.file = sn_test_pki("server-rsa.pem")},
                                 .key = {.file = sn_test_pki("server-rsa.key")}}};
    SN_ASSERT_RC(sn_tls_new(&srv.tls, &sc), 0);
    sn_tls *good, *bad;
    SN_ASSERT_RC(
        sn_tls_new(&good, &(sn_tls_config){.role = SN_TLS_CLIENT, .ca = &ca_src, .nca = 1}), 0);
    SN_ASSERT_RC(sn_tls_new(&bad, &(sn_tls_config){.role = SN_TLS_CLIENT}), 0); /* no CA */
    CU_ASSERT_FATAL(pthread_create(&srv.tid, NULL, tls_srv_main, &srv) == 0);
    SN_ASSERT_RC(loop_new(&l, 1), 0);
    struct client_seen c = {0}, f = {0};
    sn_ev *e = client(l, &c);
    c.s.echo = false;
    sn_ev_connect_config cc = {.host = "127.0.0.1",
                               .port = port,
                               .tls = good,
                               .server_name = "localhost",
                               .timeout_ms = 5000};
    SN_ASSERT_RC(sn_ev_connect(e, &cc), 0);
    WAIT_FOR(atomic_load(&c.s.connects) == 1); /* after the handshake */
    CU_ASSERT_EQUAL(sn_conn_is_tls(sn_ev_conn(e)), 1);
    SN_ASSERT_RC(sn_ev_send_text(e, "over tls", sn_deadline_in(5000)), 0);
    WAIT_FOR(atomic_load(&c.s.len) == 8);
    CU_ASSERT_STRING_EQUAL(c.s.got, "over tls");
    SN_ASSERT_RC(sn_ev_close(e), 0);
    WAIT_FOR(atomic_load(&c.s.closes) == 1);
    sn_ev_free(e);
    /* the handshake fails: error and close say why */
    e = client(l, &f);
    cc.tls = bad;
    SN_ASSERT_RC(sn_ev_connect(e, &cc), 0);
    WAIT_FOR(atomic_load(&f.s.closes) == 1);
    CU_ASSERT_EQUAL(atomic_load(&f.s.connects), 0);
    CU_ASSERT_EQUAL(atomic_load(&f.s.errors), 1);
    CU_ASSERT(atomic_load(&f.s.close_error) < 0 && atomic_load(&f.s.close_error) != SN_ECLOSED);
    CU_ASSERT(strstr(f.reason, "verify") != NULL);
    sn_ev_free(e);
    sn_loop_free(l);
    pthread_join(srv.tid, NULL);
    close(srv.lfd);
    sn_tls_free(srv.tls);
    sn_tls_free(good);
    sn_tls_free(bad);
}

/* ---- UDP ------------------------------------------------------------------------ */

struct udp_seen {
    atomic_int listening, messages, closes;
    int local_port, from_port, close_error;
    char got[64];
};

static void on_udp(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct udp_seen *u = user;
    switch (ev->type) {
    case SN_EV_LISTENING:
        u->local_port = sn_addr_port(ev->addr);
        atomic_fetch_add(&u->listening, 1);
        break;
    case SN_EV_MESSAGE: {
        u->from_port = sn_addr_port(ev->addr);
        size_t at = strlen(u->got);
        snprintf(u->got + at, sizeof u->got - at, "%.*s;", (int)ev->len, (const char *)ev->data);
        CU_ASSERT_EQUAL(sn_udp_send_to(sn_ev_udp(e), ev->data, ev->len, ev->addr, 0),
                        (ssize_t)ev->len); /* back to the sender */
        atomic_fetch_add(&u->messages, 1);
        break;
    }
    case SN_EV_CLOSE:
        u->close_error = ev->error;
        atomic_fetch_add(&u->closes, 1);
        break;
    default:
        break;
    }
}

static void test_udp(void)
{
    sn_loop *l;
    sn_udp *u, *peer;
    sn_ev *e;
    struct udp_seen s = {0};
    SN_ASSERT_RC(loop_new(&l, 1), 0);
    SN_ASSERT_RC(sn_udp_bind(&u, &(sn_udp_config){.host = "127.0.0.1"}), 0);
    SN_ASSERT_RC(sn_ev_from_udp(&e, l, u), 0);
    for (int t = SN_EV_MESSAGE; t < SN_EV_TYPES; t++)
        sn_ev_on(e, t, on_udp, &s);
    SN_ASSERT_RC(sn_ev_start(e), 0);
    WAIT_FOR(atomic_load(&s.listening) == 1);
    SN_ASSERT_RC(sn_udp_connect(&peer, "127.0.0.1", s.local_port, NULL), 0);
    sn_addr me;
    SN_ASSERT_RC(sn_udp_local_addr(peer, &me), 0);
    const char *m[3] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        char b[16];
        CU_ASSERT_EQUAL(sn_udp_send(peer, m[i], strlen(m[i]), 0), (ssize_t)strlen(m[i]));
        CU_ASSERT_EQUAL(sn_udp_recv(peer, b, sizeof b, NULL, sn_deadline_in(5000)),
                        (ssize_t)strlen(m[i])); /* the echo */
    }
    CU_ASSERT_STRING_EQUAL(s.got, "one;two;three;");
    CU_ASSERT_EQUAL(s.from_port, sn_addr_port(&me));
    SN_ASSERT_RC(sn_ev_close(e), 0);
    WAIT_FOR(atomic_load(&s.closes) == 1);
    CU_ASSERT_EQUAL(s.close_error, SN_ECLOSED);
    CU_ASSERT_EQUAL(atomic_load(&s.listening), 1);
    sn_ev_free(e);
    sn_udp_free(peer);
    sn_loop_free(l);
}

/* ---- WebSocket ------------------------------------------------------------------ */

struct ws_seen {
    atomic_int connects, messages, errors, closes;
    int close_error, ws_code, error;
    char got[64];
    bool echo;
};

static void on_ws(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct ws_seen *w = user;
    switch (ev->type) {
    case SN_EV_CONNECT:
        atomic_fetch_add(&w->connects, 1);
        break;
    case SN_EV_MESSAGE:
        CU_ASSERT_EQUAL(ev->ws_type, SN_WS_TEXT);
        snprintf(w->got, sizeof w->got, "%s", (const char *)ev->data);
        atomic_fetch_add(&w->messages, 1);
        if (w->echo)
            SN_ASSERT_RC(sn_ev_send_text(e, ev->data, sn_deadline_in(5000)), 0);
        break;
    case SN_EV_ERROR:
        w->error = ev->error;
        atomic_fetch_add(&w->errors, 1);
        break;
    case SN_EV_CLOSE:
        w->close_error = ev->error;
        w->ws_code = ev->ws_code;
        atomic_fetch_add(&w->closes, 1);
        break;
    default:
        break;
    }
}

/* The server side of a WebSocket: accepts one connection on lfd, takes the
 * upgrade, and hands the session to the loop. */
struct ws_accept {
    int lfd;
    sn_loop *l;
    sn_ws_config cfg;
    struct ws_seen *seen;
    sn_ev *e;
};

static void *ws_accept_main(void *arg)
{
    struct ws_accept *a = arg;
    sn_sock *s;
    sn_conn *c;
    sn_ws *ws;
    sn_http_header h[32];
    sn_http_request req;
    if (sn_sock_from_fd(&s, accept(a->lfd, NULL, NULL)) < 0 || sn_conn_new(&c, s, NULL) < 0)
        return NULL;
    if (sn_http_read_request(c, NULL, h, 32, &req, sn_deadline_in(5000)) <= 0 ||
        sn_ws_accept(&ws, c, &req, &a->cfg, sn_deadline_in(5000)) < 0) {
        sn_conn_free(c);
        return NULL;
    }
    SN_ASSERT_RC(sn_ev_from_ws(&a->e, a->l, ws, 1), 0);
    for (int t = SN_EV_MESSAGE; t < SN_EV_TYPES; t++)
        sn_ev_on(a->e, t, on_ws, a->seen);
    SN_ASSERT_RC(sn_ev_start(a->e), 0);
    return NULL;
}

static sn_ws *ws_pair(sn_loop *l, struct ws_accept *a)
{
    int port;
    pthread_t tid;
    char url[64];
    sn_ws *client;
    a->lfd = listen_raw(8, &port);
    a->l = l;
    CU_ASSERT_FATAL(pthread_create(&tid, NULL, ws_accept_main, a) == 0);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    SN_ASSERT_RC(sn_ws_connect(&client, url, NULL, NULL, NULL, sn_deadline_in(5000)), 0);
    pthread_join(tid, NULL);
    close(a->lfd);
    return client;
}

static void test_ws(void)
{
    sn_loop *l;
    sn_ws_msg m;
    SN_ASSERT_RC(loop_new(&l, 2), 0);
    /* echo, then the close handshake from this thread */
    struct ws_seen s = {.echo = true};
    struct ws_accept a = {.seen = &s};
    sn_ws *cl = ws_pair(l, &a);
    WAIT_FOR(atomic_load(&s.connects) == 1);
    for (int i = 0; i < 5; i++) {
        char t[16];
        snprintf(t, sizeof t, "text %d", i);
        SN_ASSERT_RC(sn_ws_send(cl, SN_WS_TEXT, t, strlen(t), sn_deadline_in(5000)), 0);
        SN_ASSERT_RC(sn_ws_recv(cl, &m, sn_deadline_in(5000)), 0);
        CU_ASSERT_EQUAL(m.len, strlen(t));
        CU_ASSERT(memcmp(m.data, t, m.len) == 0);
    }
    CU_ASSERT_EQUAL(atomic_load(&s.messages), 5);
    SN_ASSERT_RC(sn_ev_close_ws(a.e, SN_WS_NORMAL, "bye"), 0);
    SN_ASSERT_RC(sn_ws_recv(cl, &m, sn_deadline_in(5000)), SN_ECLOSED); /* and echoes it */
    CU_ASSERT_EQUAL(sn_ws_close_code(cl), SN_WS_NORMAL);
    WAIT_FOR(atomic_load(&s.closes) == 1);
    CU_ASSERT_EQUAL(s.close_error, SN_EOF);
    CU_ASSERT_EQUAL(s.ws_code, SN_WS_NORMAL);
    SN_ASSERT_RC(sn_ev_close_ws(a.e, SN_WS_NORMAL, NULL), SN_ECLOSED);
    sn_ev_free(a.e);
    sn_ws_free(cl);
    /* a peer that stops answering pings while the session idles: the
     * loop's timer pings it, then fails it (1011) */
    struct ws_seen d = {0};
    struct ws_accept b = {.seen = &d, .cfg = {.ping_period_ms = 100, .timeout_ms = 200}};
    cl = ws_pair(l, &b);
    int64_t t0 = sn_now_ms();
    WAIT_FOR(atomic_load(&d.closes) == 1);
    int64_t took = sn_now_ms() - t0;
    CU_ASSERT(took >= 250 && took < 2500);
    CU_ASSERT_EQUAL(atomic_load(&d.errors), 1);
    CU_ASSERT_EQUAL(d.error, SN_ETIMEDOUT);
    /* the client reads the pings (its pongs may meet the closed socket)
     * and then the close 1011, or the connection's end */
    int rc;
    while ((rc = sn_ws_recv(cl, &m, sn_deadline_in(5000))) == 0)
        ;
    CU_ASSERT(rc == SN_ECLOSED || rc == SN_EPIPE || rc == SN_ECONNRESET);
    if (rc == SN_ECLOSED)
        CU_ASSERT_EQUAL(sn_ws_close_code(cl), SN_WS_INTERNAL);
    sn_ev_free(b.e);
    sn_ws_free(cl);
    sn_loop_free(l);
}

/* ---- one socket's callback, the others ------------------------------------------ */

static void off_after_first(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct seen *s = user;
    (void)ev;
    atomic_fetch_add(&s->messages, 1);
    SN_ASSERT_RC(sn_ev_off(e, SN_EV_MESSAGE), 0); /* inside its own callback */
}

static void test_unsubscribe_and_blocking(void)
{
    sn_loop *l;
    SN_ASSERT_RC(loop_new(&l, 1), 0);
    struct seen u = {0};
    int upeer;
    sn_ev *e = ev_pair(l, &u, &upeer);
    sn_ev_on(e, SN_EV_MESSAGE, off_after_first, &u);
    SN_ASSERT_RC(sn_ev_start(e), 0);
    SN_ASSERT_RC(sn_test_write_all(upeer, "a", 1), 0);
    WAIT_FOR(atomic_load(&u.messages) == 1);
    SN_ASSERT_RC(sn_test_write_all(upeer, "b", 1), 0);
    SN_ASSERT_RC(sn_test_write_all(upeer, "c", 1), 0);
    sn_test_sleep_ms(200);
    CU_ASSERT_EQUAL(atomic_load(&u.messages), 1);
    close(upeer); /* the close still comes */
    WAIT_FOR(atomic_load(&u.closes) == 1);
    sn_ev_free(e);
    /* on one thread, a callback that blocks for 3 s holds up only its own
     * socket: another echoes meanwhile */
    struct seen slow = {.block_ms = 3000}, fast = {.echo = true};
    int speer, fpeer;
    sn_ev *se = ev_pair(l, &slow, &speer), *fe = ev_pair(l, &fast, &fpeer);
    SN_ASSERT_RC(sn_ev_start(se), 0);
    SN_ASSERT_RC(sn_ev_start(fe), 0);
    SN_ASSERT_RC(sn_test_write_all(speer, "s", 1), 0);
    WAIT_FOR(atomic_load(&slow.messages) == 1);
    int64_t t0 = sn_now_ms();
    for (int i = 0; i < 20; i++) {
        char b[2];
        SN_ASSERT_RC(sn_test_write_all(fpeer, "f", 1), 0);
        SN_ASSERT_RC(sn_test_read_all(fpeer, b, 1, 5000), 0);
    }
    CU_ASSERT(sn_now_ms() - t0 < 2000);
    CU_ASSERT_EQUAL(atomic_load(&slow.block_rc), 0);   /* still blocked */
    SN_ASSERT_RC(sn_test_write_all(speer, "t", 1), 0); /* its read returns */
    WAIT_FOR(atomic_load(&slow.block_rc) == 1);
    sn_loop_free(l);
    CU_ASSERT_EQUAL(atomic_load(&slow.closes), 1);
    CU_ASSERT_EQUAL(atomic_load(&fast.closes), 1);
    sn_ev_free(se);
    sn_ev_free(fe);
    close(speer);
    close(fpeer);
}

/* ---- a server in event mode ------------------------------------------------------ */

struct srv_seen {
    atomic_int clients, connects, messages, closes, stopped;
};

static void srv_ev(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct srv_seen *s = user;
    switch (ev->type) {
    case SN_EV_CONNECT:
        atomic_fetch_add(&s->connects, 1);
        break;
    case SN_EV_MESSAGE:
        atomic_fetch_add(&s->messages, 1);
        SN_ASSERT_RC(sn_ev_send(e, ev->data, ev->len, sn_deadline_in(5000)), 0);
        break;
    case SN_EV_CLOSE:
        if (ev->error == SN_ESTOPPED)
            atomic_fetch_add(&s->stopped, 1);
        atomic_fetch_add(&s->closes, 1);
        break;
    default:
        break;
    }
}

static void srv_client(sn_ev *e, void *user)
{
    struct srv_seen *s = user;
    atomic_fetch_add(&s->clients, 1);
    for (int t = SN_EV_MESSAGE; t < SN_EV_TYPES; t++)
        sn_ev_on(e, t, srv_ev, s);
}

static void test_server_events(void)
{
    struct srv_seen seen = {0};
    sn_server *srv;
    sn_server_config cfg = {.host = "127.0.0.1",
                            .on_client = srv_client,
                            .user = &seen,
                            .workers = 4,
                            .fibers = g_fibers,
                            .fiber_threads = 2};
    SN_ASSERT_RC(sn_server_new(&srv, &(sn_server_config){.host = "127.0.0.1"}), SN_EINVAL);
    cfg.handler = (sn_handler)srv_client; /* both: refused */
    SN_ASSERT_RC(sn_server_new(&srv, &cfg), SN_EINVAL);
    cfg.handler = NULL;
    SN_ASSERT_RC(sn_server_new(&srv, &cfg), 0);
    SN_ASSERT_RC(sn_server_start(srv), 0);
    int port = sn_server_port(srv);
    /* more connections than workers, all idle at once, then all echo */
    enum { N = 32 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        CU_ASSERT_FATAL(connect(fds[i], (struct sockaddr *)&a, sizeof a) == 0);
    }
    WAIT_FOR(atomic_load(&seen.connects) == N);
    for (int i = 0; i < N; i++) {
        char b[8];
        SN_ASSERT_RC(sn_test_write_all(fds[i], "ping", 4), 0);
        SN_ASSERT_RC(sn_test_read_all(fds[i], b, 4, 5000), 0);
        CU_ASSERT(memcmp(b, "ping", 4) == 0);
    }
    sn_server_stats st;
    sn_server_stats_get(srv, &st);
    CU_ASSERT_EQUAL(st.events, (uint64_t)N);
    CU_ASSERT_EQUAL(st.events_open, N);
    CU_ASSERT_EQUAL(st.active, 0); /* none holds a worker */
    close(fds[0]);                 /* one leaves: its close event, then it leaves the count */
    WAIT_FOR(atomic_load(&seen.closes) == 1);
    for (int i = 0; i < 500 && (sn_server_stats_get(srv, &st), st.events_open != N - 1); i++)
        sn_test_sleep_ms(10);
    CU_ASSERT_EQUAL(st.events_open, N - 1);
    SN_ASSERT_RC(sn_server_stop(srv, 5000), 0);
    CU_ASSERT_EQUAL(atomic_load(&seen.closes), N);
    CU_ASSERT_EQUAL(atomic_load(&seen.stopped), N - 1);
    CU_ASSERT_EQUAL(atomic_load(&seen.clients), N);
    for (int i = 1; i < N; i++) {
        char b;
        CU_ASSERT_EQUAL(sn_test_read_all(fds[i], &b, 1, 5000), SN_EOF);
        close(fds[i]);
    }
    sn_server_free(srv);
}

/* The client side of the many-connections test, in a child process (each
 * process may hold 20,000 descriptors here): n connections, one echoed
 * byte each, "r" on ready_fd, then the end of every one counted. Exits 0
 * when all n ended, 1 otherwise. */
static _Noreturn void many_clients(int port, int n, int ready_fd)
{
    int *fds = calloc((size_t)n, sizeof *fds);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0 ||
            write(fds[i], "x", 1) != 1) {
            fprintf(stderr, "many_clients: connection %d: %s\n", i, strerror(errno));
            _exit(1);
        }
    }
    for (int i = 0; i < n; i++) {
        char b;
        int rc = sn_test_read_all(fds[i], &b, 1, 20000);
        if (rc < 0) {
            fprintf(stderr, "many_clients: echo %d: %s\n", i, sn_strerror(rc));
            _exit(1);
        }
    }
    if (write(ready_fd, "r", 1) != 1)
        _exit(1);
    for (int i = 0; i < n; i++) {
        char b;
        if (sn_test_read_all(fds[i], &b, 1, 30000) != SN_EOF)
            _exit(1);
    }
    _exit(0);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

/* 19,000 idle event connections on a server with 2 fiber threads (3,000
 * under a sanitizer, 300 under valgrind): each served (a byte echoed), all
 * open at once, all closed by the stop. */
static void test_many_idle(void)
{
    long limit = sn_test_raise_nofile(20000);
    int n = (int)SN_MIN(19000L, limit - 150);
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    n = SN_MIN(n, 3000); /* 19,000 take a minute under TSan */
#endif
    if (sn_test_under_valgrind())
        n = 300;
    if (n < 1000) {
        sn_test_skip("fewer than 1,150 descriptors");
        return;
    }
    struct srv_seen seen = {0};
    sn_server *srv;
    sn_server_config cfg = {.host = "127.0.0.1",
                            .on_client = srv_client,
                            .user = &seen,
                            .workers = 64,  /* callbacks (and setups) at once */
                            .queue = 32768, /* a burst of connects waits for them */
                            .fibers = g_fibers,
                            .fiber_threads = 2,
                            .conn = {.autoflush = SN_ON}};
    SN_ASSERT_RC(sn_server_new(&srv, &cfg), 0);
    SN_ASSERT_RC(sn_server_start(srv), 0);
    long before = rss_kib();
    int pipefd[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, pipefd) == 0);
    int64_t t0 = sn_now_ms();
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        many_clients(sn_server_port(srv), n, pipefd[1]);
    close(pipefd[1]);
    char r = 0;
    CU_ASSERT_EQUAL(sn_test_read_all(pipefd[0], &r, 1, 60000), 0);
    close(pipefd[0]);
    sn_server_stats st;
    sn_server_stats_get(srv, &st);
    CU_ASSERT_EQUAL(st.events_open, n);
    CU_ASSERT_EQUAL(atomic_load(&seen.messages), n);
    long with = rss_kib();
    fprintf(stderr, "    [%d idle event connections (%s): %.2f KiB of RSS each, %ld ms]\n", n,
            g_fibers == SN_OFF ? "thread mode" : "fiber mode", (double)(with - before) / n,
            (long)(sn_now_ms() - t0));
    SN_ASSERT_RC(sn_server_stop(srv, 10000), 0);
    CU_ASSERT_EQUAL(atomic_load(&seen.stopped), n);
    int status = -1;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT(sn_now_ms() - t0 < 120000);
    sn_server_free(srv);
}

/* ---- a WebSocket server in event mode --------------------------------------------- */

static sn_ws_config g_ws_cfg = {.ping_period_ms = 60000};

static void ws_srv_message(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct srv_seen *s = user;
    atomic_fetch_add(&s->messages, 1);
    SN_ASSERT_RC(sn_ws_send(sn_ev_ws(e), ev->ws_type, ev->data, ev->len, sn_deadline_in(5000)), 0);
}

static void ws_srv_connect(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct srv_seen *s = user;
    (void)ev;
    atomic_fetch_add(&s->connects, 1);
    if (sn_ev_accept_ws(e, "/x", &g_ws_cfg, sn_deadline_in(5000)) < 0) {
        sn_ev_close(e);
        return;
    }
    SN_ASSERT_RC(sn_ev_accept_ws(e, "/x", NULL, 0), SN_EBADSTATE); /* once */
    sn_ev_on(e, SN_EV_MESSAGE, ws_srv_message, s);
}

static void ws_srv_client(sn_ev *e, void *user)
{
    sn_ev_on(e, SN_EV_CONNECT, ws_srv_connect, user);
    sn_ev_on(e, SN_EV_CLOSE, srv_ev, user);
}

static void test_ws_server_events(void)
{
    struct srv_seen seen = {0};
    sn_server *srv;
    sn_server_config cfg = {.host = "127.0.0.1",
                            .on_client = ws_srv_client,
                            .user = &seen,
                            .fibers = g_fibers,
                            .fiber_threads = 2};
    SN_ASSERT_RC(sn_server_new(&srv, &cfg), 0);
    SN_ASSERT_RC(sn_server_start(srv), 0);
    char url[64];
    sn_ws *cl, *other;
    int status = 0;
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/y", sn_server_port(srv));
    SN_ASSERT_RC(sn_ws_connect(&other, url, NULL, NULL, &status, sn_deadline_in(5000)),
                 SN_EWS_HANDSHAKE);
    CU_ASSERT_EQUAL(status, 404);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/x", sn_server_port(srv));
    SN_ASSERT_RC(sn_ws_connect(&cl, url, NULL, &(sn_ws_config){.deflate = SN_ON}, NULL,
                               sn_deadline_in(5000)),
                 0);
    sn_ws_msg m;
    for (int i = 0; i < 3; i++) {
        SN_ASSERT_RC(sn_ws_send(cl, SN_WS_TEXT, "abc", 3, sn_deadline_in(5000)), 0);
        SN_ASSERT_RC(sn_ws_recv(cl, &m, sn_deadline_in(5000)), 0);
        CU_ASSERT(m.type == SN_WS_TEXT && m.len == 3 && memcmp(m.data, "abc", 3) == 0);
    }
    CU_ASSERT_EQUAL(atomic_load(&seen.messages), 3);
    /* the stop: the idle session hears 1001 (going away) */
    SN_ASSERT_RC(sn_server_stop(srv, 5000), 0);
    SN_ASSERT_RC(sn_ws_recv(cl, &m, sn_deadline_in(5000)), SN_ECLOSED);
    CU_ASSERT_EQUAL(sn_ws_close_code(cl), SN_WS_GOING_AWAY);
    WAIT_FOR(atomic_load(&seen.closes) == 2);
    CU_ASSERT_EQUAL(atomic_load(&seen.stopped), 1);
    sn_ws_free(cl);
    sn_server_free(srv);
}

/* Thread mode: the same tests with g_fibers SN_OFF. */
#define THREADS(fn)                                                                                \
    static void fn##_threads(void)                                                                 \
    {                                                                                              \
        g_fibers = SN_OFF;                                                                         \
        fn();                                                                                      \
        g_fibers = SN_ON;                                                                          \
    }
THREADS(test_echo_in_order_and_peer_close)
THREADS(test_close_from_another_thread)
THREADS(test_stop_closes_all)
THREADS(test_client_connect_send_close)
THREADS(test_client_connect_timeout_and_cancel)
THREADS(test_client_tls)
THREADS(test_udp)
THREADS(test_ws)
THREADS(test_unsubscribe_and_blocking)
THREADS(test_server_events)
THREADS(test_many_idle)
THREADS(test_ws_server_events)

static CU_TestInfo tests[] = {
    {"echo: messages in order, the peer's close", test_echo_in_order_and_peer_close},
    {"close from another thread: idle, and under a blocked callback",
     test_close_from_another_thread},
    {"the loop's stop closes every socket", test_stop_closes_all},
    {"a client: bind, connect, send from another thread, close; refused",
     test_client_connect_send_close},
    {"a client: the connect's timeout, and a close while it waits",
     test_client_connect_timeout_and_cancel},
    {"a TLS client: connect after the handshake; a failed one says why", test_client_tls},
    {"UDP: listening, datagrams with their sender, close", test_udp},
    {"WebSocket: whole messages, close handshake, pings while idle", test_ws},
    {"unsubscribe inside a callback; a blocked callback holds up only its socket",
     test_unsubscribe_and_blocking},
    {"a server in event mode: idle connections hold no worker, stop closes them",
     test_server_events},
    {"19,000 idle event connections served, then closed by the stop", test_many_idle},
    {"a WebSocket server in event mode: upgrade in the connect callback, 404, 1001 at the stop",
     test_ws_server_events},
    {"thread mode: echo: messages in order, the peer's close",
     test_echo_in_order_and_peer_close_threads},
    {"thread mode: close from another thread: idle, and under a blocked callback",
     test_close_from_another_thread_threads},
    {"thread mode: the loop's stop closes every socket", test_stop_closes_all_threads},
    {"thread mode: a client: bind, connect, send from another thread, close; refused",
     test_client_connect_send_close_threads},
    {"thread mode: a client: the connect's timeout, and a close while it waits",
     test_client_connect_timeout_and_cancel_threads},
    {"thread mode: a TLS client: connect after the handshake; a failed one says why",
     test_client_tls_threads},
    {"thread mode: UDP: listening, datagrams with their sender, close", test_udp_threads},
    {"thread mode: WebSocket: whole messages, close handshake, pings while idle", test_ws_threads},
    {"thread mode: unsubscribe inside a callback; a blocked callback holds up only its socket",
     test_unsubscribe_and_blocking_threads},
    {"thread mode: a server in event mode: idle connections hold no worker, stop closes them",
     test_server_events_threads},
    {"thread mode: 19,000 idle event connections served, then closed by the stop",
     test_many_idle_threads},
    {"thread mode: a WebSocket server in event mode: upgrade in the connect callback, 404, 1001 "
     "at the stop",
     test_ws_server_events_threads},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    ca_src = (sn_tls_source){.file = sn_test_pki("ca.pem")};
    return sn_test_main("event", tests, 240);
}
