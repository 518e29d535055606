/* SPDX-License-Identifier: MIT */
/*
 * test-fiber.c: fibers and the per-thread scheduler: order of running,
 * yields, waits on descriptors with and without deadlines, sleeps, many
 * fibers, deep stacks, stack reuse, a stack cache that a spike cannot grow
 * and that gives its pages back, one scheduler per thread; connections
 * on a fiber that give their buffers back while they wait, and reads past
 * their deadline.
 * Checks inside fibers only record; the assertions run on the test's own
 * stack (a failed fatal assertion must not jump across stacks).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_test.h"
#include "sn_fiber.h"

static char trace[64];
static size_t ntrace;

static void note(char c)
{
    if (ntrace + 1 < sizeof trace)
        trace[ntrace++] = c;
    trace[ntrace] = '\0';
}

static void yielder(void *arg)
{
    const char *name = arg;
    for (int i = 0; i < 3; i++) {
        note(name[0]);
        sn__fiber_yield();
    }
}

static void test_run_order_and_yield(void)
{
    sn_sched *s;
    ntrace = 0;
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    CU_ASSERT_PTR_NULL(sn__fiber_self());
    SN_ASSERT_RC(sn__fiber_spawn(s, yielder, "a", 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, yielder, "b", 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, yielder, "c", 0), 0);
    sn__sched_run(s);
    CU_ASSERT_STRING_EQUAL(trace, "abcabcabc");
    sn__sched_free(s);
}

/* Two fibers play ping-pong over a socket pair, waiting on their ends. */
struct player {
    int fd;
    int rounds;
    bool serve; /* sends first */
    int errors;
};

static int recv_one(int fd, char *c)
{
    for (;;) {
        ssize_t n = recv(fd, c, 1, MSG_DONTWAIT);
        if (n == 1)
            return 0;
        if (n == 0 || errno != EAGAIN)
            return -1;
        if (sn__fiber_wait_fd(fd, POLLIN, sn_deadline_in(5000)) < 0)
            return -1;
    }
}

static void player(void *arg)
{
    struct player *p = arg;
    char c = 'x';
    for (int i = 0; i < p->rounds; i++) {
        if (p->serve && send(p->fd, &c, 1, MSG_DONTWAIT) != 1)
            p->errors++;
        if (recv_one(p->fd, &c) < 0)
            p->errors++;
        if (!p->serve && send(p->fd, &c, 1, MSG_DONTWAIT) != 1)
            p->errors++;
    }
}

static void test_ping_pong(void)
{
    int sv[2];
    sn_sched *s;
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    struct player a = {sv[0], 20000, true, 0}, b = {sv[1], 20000, false, 0};
    SN_ASSERT_RC(sn__fiber_spawn(s, player, &a, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, player, &b, 0), 0);
    sn__sched_run(s);
    CU_ASSERT_EQUAL(a.errors, 0);
    CU_ASSERT_EQUAL(b.errors, 0);
    sn__sched_free(s);
    close(sv[0]);
    close(sv[1]);
}

/* A wait that times out, then a wait on the same descriptor that succeeds:
 * the timed-out registration must not wake anybody later. */
struct waiter {
    int fd;
    int rc1, rc2;
    int64_t elapsed;
};

static void waiter(void *arg)
{
    struct waiter *w = arg;
    int64_t t0 = sn_now_ms();
    w->rc1 = sn__fiber_wait_fd(w->fd, POLLIN, sn_deadline_in(60));
    w->elapsed = sn_now_ms() - t0;
    w->rc2 = sn__fiber_wait_fd(w->fd, POLLIN, sn_deadline_in(5000));
}

static void writer_later(void *arg)
{
    int *fd = arg;
    sn__fiber_sleep_until(sn_deadline_in(150));
    (void)!send(*fd, "z", 1, MSG_DONTWAIT);
}

static void test_wait_deadline(void)
{
    int sv[2];
    sn_sched *s;
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    struct waiter w = {.fd = sv[0]};
    SN_ASSERT_RC(sn__fiber_spawn(s, waiter, &w, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, writer_later, &sv[1], 0), 0);
    sn__sched_run(s);
    SN_ASSERT_RC(w.rc1, SN_ETIMEDOUT);
    CU_ASSERT(w.elapsed >= 55 && w.elapsed < 1000);
    SN_ASSERT_RC(w.rc2, 0);
    sn__sched_free(s);
    close(sv[0]);
    close(sv[1]);
}

/* Descriptors are registered once, edge-triggered: an edge that comes while
 * the fiber does something else must not be lost. */
struct busy {
    int fd;
    int rc1, rc2;
    int64_t elapsed;
};

static void busy_reader(void *arg)
{
    struct busy *b = arg;
    b->rc1 = sn__fiber_wait_fd(b->fd, POLLIN, sn_deadline_in(20)); /* registers */
    sn__fiber_sleep_until(sn_deadline_in(150));                    /* the byte comes now */
    int64_t t0 = sn_now_ms();
    b->rc2 = sn__fiber_wait_fd(b->fd, POLLIN, sn_deadline_in(3000));
    b->elapsed = sn_now_ms() - t0;
}

static void test_edge_while_busy(void)
{
    int sv[2];
    sn_sched *s;
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    struct busy b = {.fd = sv[0]};
    SN_ASSERT_RC(sn__fiber_spawn(s, busy_reader, &b, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, writer_later, &sv[1], 0), 0);
    sn__sched_run(s);
    SN_ASSERT_RC(b.rc1, SN_ETIMEDOUT);
    SN_ASSERT_RC(b.rc2, 0);
    CU_ASSERT(b.elapsed < 1000);
    sn__sched_free(s);
    close(sv[0]);
    close(sv[1]);
}

/* A reader and a writer fiber parked on the same descriptor at once. */
#define RW_BYTES (1 << 20)

struct rw {
    int fd;
    size_t moved;
    int errors;
};

static void rw_writer(void *arg)
{
    static char chunk[16384];
    struct rw *w = arg;
    while (w->moved < RW_BYTES) {
        ssize_t n = send(w->fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            w->moved += (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            if (sn__fiber_wait_fd(w->fd, POLLOUT, sn_deadline_in(5000)) < 0)
                w->errors++;
        } else {
            w->errors++;
            return;
        }
    }
}

static void rw_reader(void *arg)
{
    struct rw *r = arg;
    char c;
    if (recv_one(r->fd, &c) < 0 || c != 'r')
        r->errors++;
    r->moved = 1;
}

/* The peer drains the writer's megabyte slowly, then answers the reader. */
static void rw_peer(void *arg)
{
    static char buf[65536];
    struct rw *p = arg;
    sn__fiber_sleep_until(sn_deadline_in(50));
    while (p->moved < RW_BYTES) {
        ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            p->moved += (size_t)n;
        else if (n < 0 && errno == EAGAIN)
            sn__fiber_wait_fd(p->fd, POLLIN, sn_deadline_in(5000));
        else
            break;
    }
    if (send(p->fd, "r", 1, MSG_DONTWAIT) != 1)
        p->errors++;
}

static void test_reader_and_writer(void)
{
    int sv[2];
    sn_sched *s;
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    struct rw r = {.fd = sv[0]}, w = {.fd = sv[0]}, p = {.fd = sv[1]};
    SN_ASSERT_RC(sn__fiber_spawn(s, rw_reader, &r, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, rw_writer, &w, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, rw_peer, &p, 0), 0);
    sn__sched_run(s);
    CU_ASSERT_EQUAL(r.errors + w.errors + p.errors, 0);
    CU_ASSERT_EQUAL(r.moved, 1);
    CU_ASSERT(w.moved >= RW_BYTES);
    CU_ASSERT_EQUAL(p.moved, w.moved);
    sn__sched_free(s);
    close(sv[0]);
    close(sv[1]);
}

/* Closing a descriptor wakes the fiber parked on it, and a new descriptor
 * with the same number is waited on afresh. */
struct reuse {
    int fd;
    int rc;
    int64_t elapsed;
    int reused; /* rounds that got the same number again */
    int errors;
};

static void parked_reader(void *arg)
{
    struct reuse *r = arg;
    int64_t t0 = sn_now_ms();
    r->rc = sn__fiber_wait_fd(r->fd, POLLIN, sn_deadline_in(5000));
    r->elapsed = sn_now_ms() - t0;
}

static void closer(void *arg)
{
    struct reuse *r = arg;
    sn__fiber_sleep_until(sn_deadline_in(30));
    sn__fiber_forget_fd(r->fd);
    close(r->fd);
}

static void reopener(void *arg)
{
    struct reuse *r = arg;
    int last = -1;
    for (int i = 0; i < 4; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) {
            r->errors++;
            return;
        }
        r->reused += sv[0] == last;
        last = sv[0];
        if (sn__fiber_wait_fd(sv[0], POLLIN, sn_deadline_in(10)) != SN_ETIMEDOUT)
            r->errors++; /* registered, nothing to read */
        (void)!send(sv[1], "x", 1, MSG_DONTWAIT);
        if (sn__fiber_wait_fd(sv[0], POLLIN, sn_deadline_in(3000)) != 0)
            r->errors++;
        sn__fiber_forget_fd(sv[0]);
        close(sv[0]);
        close(sv[1]);
    }
}

static void test_close_and_reuse(void)
{
    int sv[2];
    sn_sched *s;
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    struct reuse r = {.fd = sv[0]}, o = {0};
    SN_ASSERT_RC(sn__fiber_spawn(s, parked_reader, &r, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, closer, &r, 0), 0);
    sn__sched_run(s);
    SN_ASSERT_RC(r.rc, 0);
    CU_ASSERT(r.elapsed < 1000);
    SN_ASSERT_RC(sn__fiber_spawn(s, reopener, &o, 0), 0);
    sn__sched_run(s);
    CU_ASSERT_EQUAL(o.errors, 0);
    CU_ASSERT(o.reused >= 3);
    sn__sched_free(s);
    close(sv[1]);
}

/* The last line and the peer's FIN arrive before the scheduler looks: one
 * edge carries both. The reader gets the line from a short receive (so its
 * connection counts the socket as drained and waits before it receives
 * again), and must then see the end at once rather than wait for an edge
 * that has already come. */
struct line_eof {
    sn_conn *c;
    int peer;
    ssize_t first, second;
    int64_t second_ms;
    char line[32];
};

static void line_eof_reader(void *arg)
{
    struct line_eof *e = arg;
    e->first = sn_read_line(e->c, e->line, sizeof e->line, SN_LINE_ANY, sn_deadline_in(3000));
    int64_t t0 = sn_now_ms();
    e->second = sn_read_line(e->c, e->line, sizeof e->line, SN_LINE_ANY, sn_deadline_in(3000));
    e->second_ms = sn_now_ms() - t0;
}

static void line_eof_sender(void *arg)
{
    struct line_eof *e = arg;
    (void)!send(e->peer, "last\n", 5, MSG_NOSIGNAL); /* loopback: delivered in the call */
    shutdown(e->peer, SHUT_WR);
}

static void test_line_and_eof_in_one_edge(void)
{
    for (int round = 0; round < 2; round++) { /* TCP, then a local socket pair */
        int a, b;
        if (round == 0) {
            CU_ASSERT_FATAL(sn_test_tcp_pair(&a, &b) == 0);
        } else {
            int sv[2];
            CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
            a = sv[0], b = sv[1];
        }
        sn_sock *sock;
        struct line_eof e = {.peer = b};
        SN_ASSERT_RC(sn_sock_from_fd(&sock, a), 0);
        SN_ASSERT_RC(sn_conn_new(&e.c, sock, NULL), 0);
        sn_sched *s;
        SN_ASSERT_RC(sn__sched_new(&s), 0);
        SN_ASSERT_RC(sn__fiber_spawn(s, line_eof_reader, &e, 0), 0); /* parks: nothing yet */
        SN_ASSERT_RC(sn__fiber_spawn(s, line_eof_sender, &e, 0), 0);
        sn__sched_run(s);
        sn__sched_free(s);
        CU_ASSERT_EQUAL(e.first, 4);
        CU_ASSERT_STRING_EQUAL(e.line, "last");
        SN_ASSERT_RC(e.second, SN_EOF);
        CU_ASSERT(e.second_ms < 1000);
        sn_conn_free(e.c);
        close(b);
    }
}

/* Connections on a scheduler's thread hold their buffers only while they use
 * them: three readers echo lines; whenever all of them wait with nothing
 * buffered, every buffer they used is back in the scheduler's cache, and while
 * each holds half a line, each holds exactly its read buffer. */
#define BUF_CONNS 3
#define BUF_ROUNDS 3

struct buf_conn {
    sn_conn *c;
    int peer, idx, errors;
};

struct buf_drive {
    struct buf_conn *bc;
    long base, idle[BUF_ROUNDS], partial, after;
    int errors;
};

static void buf_reader(void *arg)
{
    struct buf_conn *b = arg;
    char line[64], want[64];
    for (int k = 0; k <= BUF_ROUNDS; k++) { /* the last line comes in two halves */
        sn_deadline dl = sn_deadline_in(3000);
        ssize_t n = sn_read_line(b->c, line, sizeof line, SN_LINE_LF, dl);
        snprintf(want, sizeof want, "c%d r%d", b->idx, k);
        if (n != (ssize_t)strlen(want) || strcmp(line, want) != 0 ||
            sn_write_str(b->c, line, dl) < 0 || sn_write(b->c, "\n", 1, dl) < 0 ||
            sn_flush(b->c, dl) < 0) {
            b->errors++;
            return;
        }
    }
    if (sn_read_line(b->c, line, sizeof line, SN_LINE_LF, sn_deadline_in(3000)) != SN_EOF)
        b->errors++; /* waits, holding nothing, until the driver is done */
}

/* The library's live allocations, less the buffers the scheduler keeps. */
static long held(void)
{
    void *p[64];
    int n = 0;
    while (n < 64 && (p[n] = sn__sched_buf_take(SN_SCHED_BUF_BYTES)) != NULL)
        n++;
    long live = sn__alloc_live() - n;
    while (n > 0)
        sn__sched_buf_give(p[--n], SN_SCHED_BUF_BYTES);
    return live;
}

/* Sends line k to every peer: whole (half 0), or its first or second half. */
static void buf_send(struct buf_drive *d, int k, int half)
{
    for (int i = 0; i < BUF_CONNS; i++) {
        char msg[64];
        int n = half == 2 ? snprintf(msg, sizeof msg, "%d\n", k)
                          : snprintf(msg, sizeof msg, half ? "c%d r" : "c%d r%d\n", i, k);
        d->errors += send(d->bc[i].peer, msg, (size_t)n, MSG_NOSIGNAL) != n;
    }
    sn_sleep_ms(30); /* the readers take it and go back to waiting */
}

/* Every peer gets its echo of line k. */
static void buf_echoes(struct buf_drive *d, int k)
{
    for (int i = 0; i < BUF_CONNS; i++) {
        char want[64], got[64];
        size_t n = (size_t)snprintf(want, sizeof want, "c%d r%d\n", i, k), have = 0;
        for (int tries = 0; have < n && tries < 100; tries++) {
            ssize_t r = recv(d->bc[i].peer, got + have, n - have, MSG_DONTWAIT);
            if (r > 0)
                have += (size_t)r;
            else
                sn_sleep_ms(10);
        }
        d->errors += have != n || memcmp(got, want, n) != 0;
    }
}

static void buf_driver(void *arg)
{
    struct buf_drive *d = arg;
    sn_sleep_ms(30); /* every reader waits on its empty socket */
    d->base = held();
    for (int k = 0; k < BUF_ROUNDS; k++) {
        buf_send(d, k, 0);
        d->idle[k] = held();
        buf_echoes(d, k);
    }
    buf_send(d, BUF_ROUNDS, 1);
    d->partial = held();
    buf_send(d, BUF_ROUNDS, 2);
    d->after = held();
    buf_echoes(d, BUF_ROUNDS);
    for (int i = 0; i < BUF_CONNS; i++)
        shutdown(d->bc[i].peer, SHUT_WR);
}

static void test_idle_holds_no_buffer(void)
{
    struct buf_conn bc[BUF_CONNS];
    struct buf_drive d = {.bc = bc};
    const sn_conn_config cfg = {.autoflush = SN_OFF};
    sn_sched *s;
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    for (int i = 0; i < BUF_CONNS; i++) {
        int a;
        sn_sock *sock;
        bc[i] = (struct buf_conn){.idx = i};
        CU_ASSERT_FATAL(sn_test_tcp_pair(&a, &bc[i].peer) == 0);
        SN_ASSERT_RC(sn_sock_from_fd(&sock, a), 0);
        SN_ASSERT_RC(sn_conn_new(&bc[i].c, sock, &cfg), 0);
        SN_ASSERT_RC(sn__fiber_spawn(s, buf_reader, &bc[i], 0), 0);
    }
    SN_ASSERT_RC(sn__fiber_spawn(s, buf_driver, &d, 0), 0);
    sn__sched_run(s);
    CU_ASSERT_EQUAL(d.errors, 0);
    for (int k = 0; k < BUF_ROUNDS; k++)
        CU_ASSERT_EQUAL(d.idle[k], d.base);
    CU_ASSERT_EQUAL(d.partial, d.base + BUF_CONNS); /* each holds its read buffer */
    CU_ASSERT_EQUAL(d.after, d.base);
    for (int i = 0; i < BUF_CONNS; i++) {
        CU_ASSERT_EQUAL(bc[i].errors, 0);
        sn_conn_free(bc[i].c); /* its buffers (none) and the scheduler's go */
        close(bc[i].peer);
    }
    sn__sched_free(s);
}

/* On a fiber, a read whose deadline has passed still takes what has arrived,
 * also right after a receive that emptied the socket. */
struct late_read {
    sn_conn *c;
    int peer;
    ssize_t first, second;
    char got[2];
};

static void late_reader(void *arg)
{
    struct late_read *l = arg;
    l->first = sn_read(l->c, l->got, 1, sn_deadline_in(3000)); /* "a": the socket is empty */
    sn_sleep_ms(30);                                           /* "b" arrives meanwhile */
    l->second = sn_read(l->c, l->got + 1, 1, sn_deadline_in(0));
}

static void late_sender(void *arg)
{
    struct late_read *l = arg;
    (void)!send(l->peer, "a", 1, MSG_NOSIGNAL);
    sn_sleep_ms(10);
    (void)!send(l->peer, "b", 1, MSG_NOSIGNAL);
}

static void test_late_read_takes_what_arrived(void)
{
    int a;
    sn_sock *sock;
    struct late_read l = {0};
    sn_sched *s;
    CU_ASSERT_FATAL(sn_test_tcp_pair(&a, &l.peer) == 0);
    SN_ASSERT_RC(sn_sock_from_fd(&sock, a), 0);
    SN_ASSERT_RC(sn_conn_new(&l.c, sock, NULL), 0);
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, late_reader, &l, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, late_sender, &l, 0), 0);
    sn__sched_run(s);
    sn__sched_free(s);
    SN_ASSERT_RC(l.first, 1);
    SN_ASSERT_RC(l.second, 1);
    CU_ASSERT(memcmp(l.got, "ab", 2) == 0);
    sn_conn_free(l.c);
    close(l.peer);
}

/* sn_sleep_ms and sn_yield on a fiber leave the thread to the others. */
static void public_sleeper(void *arg)
{
    int *rc = arg;
    note('s');
    *rc = sn_sleep_ms(50);
    note('S');
}

static void public_yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++) {
        note('y');
        sn_yield();
    }
}

static void test_public_sleep_and_yield(void)
{
    sn_sched *s;
    int rc = -1;
    ntrace = 0;
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, public_sleeper, &rc, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, public_yielder, NULL, 0), 0);
    int64_t t0 = sn_now_ms();
    sn__sched_run(s);
    int64_t took = sn_now_ms() - t0;
    SN_ASSERT_RC(rc, 0);
    CU_ASSERT_STRING_EQUAL(trace, "syyS");
    CU_ASSERT(took >= 49 && took < 2000);
    sn__sched_free(s);
    /* on a plain thread */
    t0 = sn_now_ms();
    SN_ASSERT_RC(sn_sleep_ms(30), 0);
    CU_ASSERT(sn_now_ms() - t0 >= 29);
    SN_ASSERT_RC(sn_sleep_ms(0), 0);
    SN_ASSERT_RC(sn_sleep_ms(-1), SN_EINVAL);
    sn_yield();
}

/* Many fibers sleeping for different times wake in deadline order. */
static int woke[1000], nwoke;
static int64_t base;

static void sleeper(void *arg)
{
    int i = (int)(intptr_t)arg;
    sn__fiber_sleep_until(base + 20 + (i * 7919) % 200);
    woke[nwoke++] = (i * 7919) % 200;
}

static void test_many_sleepers(void)
{
    sn_sched *s;
    nwoke = 0;
    base = sn_now_ms();
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    for (int i = 0; i < 1000; i++)
        SN_ASSERT_RC(sn__fiber_spawn(s, sleeper, (void *)(intptr_t)i, 16384), 0);
    sn__sched_run(s);
    CU_ASSERT_EQUAL(nwoke, 1000);
    int out_of_order = 0;
    for (int i = 1; i < nwoke; i++)
        if (woke[i] < woke[i - 1])
            out_of_order++;
    CU_ASSERT_EQUAL(out_of_order, 0);
    sn__sched_free(s);
}

/* A fiber may use most of its stack. */
static int deep_sum;

static int recurse(int n)
{
    volatile char pad[512];
    pad[0] = (char)n;
    return n == 0 ? pad[0] : recurse(n - 1) + 1 + pad[0] * 0;
}

static void deep(void *arg)
{
    (void)arg;
    volatile char big[32768];
    memset((char *)big, 1, sizeof big);
    deep_sum = big[100] + recurse(40);
}

static void test_deep_stack(void)
{
    sn_sched *s;
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, deep, NULL, 0), 0);
    sn__sched_run(s);
    CU_ASSERT_EQUAL(deep_sum, 41);
    sn__sched_free(s);
}

/* Finished fibers' stacks are reused: spawning one after another does not
 * grow the process. */
static int runs;

static void count_run(void *arg)
{
    (void)arg;
    runs++;
}

static long vm_size_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmSize: %ld", &v) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return v;
}

static void test_stack_reuse(void)
{
    sn_sched *s;
    runs = 0;
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, count_run, NULL, 0), 0);
    sn__sched_run(s);
    long vm = vm_size_kib();
    for (int i = 0; i < 2000; i++) {
        SN_ASSERT_RC(sn__fiber_spawn(s, count_run, NULL, 0), 0);
        sn__sched_run(s);
    }
    CU_ASSERT_EQUAL(runs, 2001);
    CU_ASSERT(vm_size_kib() - vm < 1024);
    sn__sched_free(s);
}

/* A spike of fibers leaves at most SN_FIBER_CACHE stacks behind (the others
 * are unmapped as they finish), and once the load has fallen the cached
 * ones give their pages back, but for the top page, and keep their guard
 * page. On a stack handed out again the spike's bytes read as zeros. */
#define SPIKE 200
#define SPIKE_TOUCH (32 * 1024)

struct spike {
    sn__sched_mem before, after; /* when the spike ended; after the trim */
    int ended;
    bool guard;            /* a reused stack still has its guard page */
    size_t reused_nonzero; /* non-zero bytes below its top page */
    size_t page;
    bool valgrind; /* which calls reads below the stack pointer errors */
};

/* Writes SPIKE_TOUCH bytes of its stack, waits for the others, ends. */
static void spiker(void *arg)
{
    struct spike *sp = arg;
    volatile char buf[SPIKE_TOUCH];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i | 1);
    sn__fiber_sleep_until(sn_deadline_in(20));
    (void)buf[0];
    sp->ended++;
}

/* Whether the page below the mapping holding p is mapped without access. */
static bool guard_below(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512], prev_perms[8] = "";
    unsigned long lo, hi, prev_hi = 0, at = (unsigned long)p;
    bool ok = false;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
            continue;
        if (lo <= at && at < hi) {
            ok = prev_hi == lo && strcmp(prev_perms, "---p") == 0;
            break;
        }
        prev_hi = hi;
        snprintf(prev_perms, sizeof prev_perms, "%s", perms);
    }
    if (f != NULL)
        fclose(f);
    return ok;
}

/* Runs on a stack taken from the trimmed cache: counts the non-zero bytes
 * the spike left in the 32 KiB below its top page (from below this frame,
 * before any call writes there), then looks for its guard page. */
static void reuser(void *arg)
{
    struct spike *sp = arg;
    char here;
    uintptr_t top = ((uintptr_t)&here + sp->page - 1) / sp->page * sp->page;
    const volatile char *lo = (const char *)(top - sp->page - SPIKE_TOUCH);
    const volatile char *hi = (const char *)SN_MIN(top - sp->page, (uintptr_t)&here - 512);
    size_t n = 0;
    for (const volatile char *q = lo; q < hi && !sp->valgrind; q++)
        n += *q != 0;
    sp->reused_nonzero = n;
    sp->guard = guard_below(&here);
}

/* Stays while the spike ends and until the scheduler has trimmed. */
static void spike_watcher(void *arg)
{
    struct spike *sp = arg;
    sn_sched *s = sn__sched_self();
    int64_t until = sn_deadline_in(5000);
    while (sp->ended < SPIKE && sn_now_ms() < until)
        sn__fiber_sleep_until(sn_deadline_in(5));
    sn__sched_mem_get(s, &sp->before);
    do
        sn__fiber_sleep_until(sn_deadline_in(50));
    while (sn__sched_mem_get(s, &sp->after), sp->after.trims == 0 && sn_now_ms() < until);
}

static void test_stack_cache_bounded(void)
{
    struct spike sp = {.page = (size_t)sysconf(_SC_PAGESIZE), .valgrind = sn_test_under_valgrind()};
    long live = sn__alloc_live();
    sn_sched *s;
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, spike_watcher, &sp, 0), 0);
    for (int i = 0; i < SPIKE; i++)
        SN_ASSERT_RC(sn__fiber_spawn(s, spiker, &sp, 0), 0);
    sn__sched_run(s);
    CU_ASSERT_EQUAL(sp.ended, SPIKE);
    /* when the spike had ended: the cap held, the rest was unmapped */
    CU_ASSERT_EQUAL(sp.before.mapped, SPIKE + 1);
    CU_ASSERT_EQUAL(sp.before.cached, SN_FIBER_CACHE);
    CU_ASSERT_EQUAL(sp.before.unmapped, SPIKE - SN_FIBER_CACHE);
    if (sp.before.trims == 0) /* (a slow machine may have trimmed already) */
        CU_ASSERT(sp.before.resident >= SN_FIBER_CACHE * (size_t)SPIKE_TOUCH);
    /* the load fell (201 fibers, then 1): the cached stacks gave their
     * pages back, all but the top one of each */
    CU_ASSERT(sp.after.trims >= 1);
    CU_ASSERT_EQUAL(sp.after.cached, SN_FIBER_CACHE);
    CU_ASSERT_EQUAL(sp.after.cached_warm, 0);
    CU_ASSERT(sp.after.resident <= SN_FIBER_CACHE * 4096);
    /* the watcher's stack found the cache full: unmapped */
    sn__sched_mem m;
    sn__sched_mem_get(s, &m);
    CU_ASSERT_EQUAL(m.unmapped, SPIKE + 1 - SN_FIBER_CACHE);
    /* a stack handed out again: zeros where the spike wrote, guard intact */
    SN_ASSERT_RC(sn__fiber_spawn(s, reuser, &sp, 0), 0);
    sn__sched_run(s);
    sn__sched_mem_get(s, &m);
    CU_ASSERT_EQUAL(m.mapped, SPIKE + 1);
    CU_ASSERT_EQUAL(sp.reused_nonzero, 0);
    CU_ASSERT(sp.guard);
    sn__sched_free(s);
    CU_ASSERT_EQUAL(sn__alloc_live(), live);
}

static void *second_sched(void *arg)
{
    int *rc = arg;
    sn_sched *s;
    rc[0] = sn__sched_new(&s);
    sn_sched *t;
    rc[1] = sn__sched_new(&t); /* one per thread */
    sn__sched_free(s);
    return NULL;
}

static void test_one_per_thread(void)
{
    int rc[2];
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, second_sched, rc) == 0);
    pthread_join(th, NULL);
    SN_ASSERT_RC(rc[0], 0);
    SN_ASSERT_RC(rc[1], SN_EBADSTATE);
}

/* ---- the pool in fiber mode ----------------------------------------------------- */

static atomic_int jobs_ran, jobs_dropped, gate_open;

/* Waits (parked, on its fiber) until the gate opens. */
static void gated(void *arg)
{
    (void)arg;
    while (!atomic_load(&gate_open))
        sn__fiber_sleep_until(sn_deadline_in(2));
    atomic_fetch_add(&jobs_ran, 1);
}

static void dropped_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&jobs_dropped, 1);
}

static sn_pool_stats pstats(sn_pool *p)
{
    sn_pool_stats st;
    sn_pool_stats_get(p, &st);
    return st;
}

static void wait_busy(sn_pool *p, int busy)
{
    int64_t dl = sn_now_ms() + 5000;
    while (pstats(p).busy != busy && sn_now_ms() < dl)
        sn_test_sleep_ms(2);
}

/* max_threads jobs run at once (on two threads), the queue holds the next
 * ones, then SN_EQUEUEFULL; every job runs once the gate opens. */
static void test_pool_limits(void)
{
    atomic_store(&jobs_ran, 0);
    atomic_store(&gate_open, 0);
    sn_pool *p;
    sn_pool_config cfg = {
        .fibers = SN_ON, .fiber_threads = 2, .max_threads = 100, .queue_size = 10};
    SN_ASSERT_RC(sn_pool_new(&p, &cfg), 0);
    CU_ASSERT_EQUAL(pstats(p).threads, 2);
    for (int i = 0; i < 110; i++)
        SN_ASSERT_RC(sn_pool_submit(p, gated, NULL), 0);
    SN_ASSERT_RC(sn_pool_submit(p, gated, NULL), SN_EQUEUEFULL);
    wait_busy(p, 100);
    sn_pool_stats st = pstats(p);
    CU_ASSERT_EQUAL(st.busy, 100);
    CU_ASSERT_EQUAL(st.queued, 10);
    CU_ASSERT_EQUAL(st.refused, 1);
    atomic_store(&gate_open, 1);
    wait_busy(p, 0);
    CU_ASSERT_EQUAL(atomic_load(&jobs_ran), 110);
    CU_ASSERT_EQUAL(pstats(p).completed, 110);
    SN_ASSERT_RC(sn_pool_stop(p), 0);
    SN_ASSERT_RC(sn_pool_submit(p, gated, NULL), SN_ESTOPPED);
    CU_ASSERT_EQUAL(pstats(p).threads, 0);
    sn_pool_free(p);
}

/* Jobs submitted from one of the pool's own threads (as the server's acceptor
 * fibers do) are spread over the threads: of 16 long jobs submitted in a row
 * from a job on one of two threads, each thread gets at least 6. (With a slack
 * of 16 jobs, all 16 went to the submitter's thread, and the other CPU idled.) */
#define SPREAD_JOBS 16

struct spread {
    sn_pool *p;
    sn_sched *where[SPREAD_JOBS];
    atomic_int started, errors;
};

static struct spread g_spread;

static void spread_job(void *arg)
{
    sn_sched **where = arg;
    *where = sn__sched_self();
    atomic_fetch_add(&g_spread.started, 1);
    while (!atomic_load(&gate_open))
        sn__fiber_sleep_until(sn_deadline_in(2));
}

static void spread_submitter(void *arg)
{
    (void)arg;
    for (int i = 0; i < SPREAD_JOBS; i++)
        if (sn_pool_submit(g_spread.p, spread_job, &g_spread.where[i]) != 0)
            atomic_fetch_add(&g_spread.errors, 1);
}

static void test_pool_spreads_own_submits(void)
{
    atomic_store(&gate_open, 0);
    memset(&g_spread, 0, sizeof g_spread);
    sn_pool_config cfg = {.fibers = SN_ON, .fiber_threads = 2, .max_threads = 100};
    SN_ASSERT_RC(sn_pool_new(&g_spread.p, &cfg), 0);
    SN_ASSERT_RC(sn_pool_submit(g_spread.p, spread_submitter, NULL), 0);
    WAIT_UNTIL(atomic_load(&g_spread.started) == SPREAD_JOBS, 5000);
    CU_ASSERT_EQUAL(atomic_load(&g_spread.errors), 0);
    CU_ASSERT_EQUAL_FATAL(atomic_load(&g_spread.started), SPREAD_JOBS);
    int on_first = 0;
    for (int i = 0; i < SPREAD_JOBS; i++)
        on_first += g_spread.where[i] == g_spread.where[0];
    if (on_first < 6 || SPREAD_JOBS - on_first < 6)
        fprintf(stderr, "pool spread: %d and %d jobs\n", on_first, SPREAD_JOBS - on_first);
    CU_ASSERT(on_first >= 6 && SPREAD_JOBS - on_first >= 6);
    atomic_store(&gate_open, 1);
    SN_ASSERT_RC(sn_pool_stop(g_spread.p), 0);
    sn_pool_free(g_spread.p);
}

struct stopper {
    sn_pool *p;
    atomic_int done;
};

static void *stop_run(void *arg)
{
    struct stopper *st = arg;
    sn_pool_stop(st->p);
    atomic_store(&st->done, 1);
    return NULL;
}

/* Stop drops the queued jobs (drop callback) and waits for the running
 * ones; without a drop callback, it runs the queued ones first. */
static void test_pool_stop(void)
{
    for (int with_drop = 0; with_drop < 2; with_drop++) {
        long live = sn__alloc_live();
        atomic_store(&jobs_ran, 0);
        atomic_store(&jobs_dropped, 0);
        atomic_store(&gate_open, 0);
        sn_pool *p;
        sn_pool_config cfg = {.fibers = SN_ON,
                              .fiber_threads = 2,
                              .max_threads = 4,
                              .queue_size = 8,
                              .drop = with_drop ? dropped_job : NULL};
        SN_ASSERT_RC(sn_pool_new(&p, &cfg), 0);
        for (int i = 0; i < 12; i++)
            SN_ASSERT_RC(sn_pool_submit(p, gated, NULL), 0);
        wait_busy(p, 4);
        struct stopper st = {.p = p};
        pthread_t th;
        CU_ASSERT_FATAL(pthread_create(&th, NULL, stop_run, &st) == 0);
        sn_test_sleep_ms(50);
        CU_ASSERT_EQUAL(atomic_load(&st.done), 0); /* the running ones hold it */
        atomic_store(&gate_open, 1);
        pthread_join(th, NULL);
        CU_ASSERT_EQUAL(atomic_load(&jobs_ran), with_drop ? 4 : 12);
        CU_ASSERT_EQUAL(atomic_load(&jobs_dropped), with_drop ? 8 : 0);
        sn_pool_free(p);
        CU_ASSERT_EQUAL(sn__alloc_live(), live);
    }
}

/* Jobs submitted from many threads at once all run, each once. */
static void count_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&jobs_ran, 1);
}

static void *submitter(void *arg)
{
    sn_pool *p = arg;
    for (int i = 0; i < 500; i++)
        while (sn_pool_submit(p, count_job, NULL) == SN_EQUEUEFULL)
            sched_yield();
    return NULL;
}

static void test_pool_many_submitters(void)
{
    atomic_store(&jobs_ran, 0);
    sn_pool *p;
    sn_pool_config cfg = {.fibers = SN_ON, .max_threads = 64, .queue_size = 64};
    SN_ASSERT_RC(sn_pool_new(&p, &cfg), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, submitter, p) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    SN_ASSERT_RC(sn_pool_stop(p), 0);
    CU_ASSERT_EQUAL(atomic_load(&jobs_ran), 2000);
    sn_pool_free(p);
}

static void test_pool_bad_config(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.fibers = SN_ON, .fiber_threads = -1}),
                 SN_EINVAL);
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.fibers = SN_ON, .max_threads = -1}), SN_EINVAL);
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.fibers = SN_ON, .queue_size = -5}), SN_EINVAL);
}

/* ---- watches: the event model's poller -------------------------------------------- */

/* A watched end of a socket pair; the driver fiber writes to the other end. */
struct watched {
    int fd, peer;
    char got[64];
    size_t len;
    int runs, running, most_running, eofs, waited;
    bool wait_once; /* the next run also waits on fd for more, as a fiber may */
};

/* The watch's fiber: reads until the kernel has nothing more, as a watch's
 * fiber must, takes its time, then re-arms (unless the peer has gone). */
static void on_readable(void *arg)
{
    struct watched *w = arg;
    w->runs++;
    if (++w->running > w->most_running)
        w->most_running = w->running;
    bool eof = false;
    for (;;) {
        ssize_t n = recv(w->fd, w->got + w->len, sizeof w->got - 1 - w->len, MSG_DONTWAIT);
        if (n > 0) {
            w->len += (size_t)n;
            continue;
        }
        if (n == 0)
            eof = true;
        else if (w->wait_once && errno == EAGAIN) {
            w->wait_once = false;
            SN_ASSERT_RC(sn__fiber_wait_fd(w->fd, POLLIN, sn_deadline_in(5000)), 0);
            w->waited++;
            continue;
        }
        break;
    }
    sn_sleep_ms(20); /* bytes that come now bring their edge before the re-arm */
    w->running--;
    if (eof)
        w->eofs++;
    else
        sn__sched_rearm(w->fd);
}

static void watch_driver(void *arg)
{
    struct watched *w = arg;
    SN_ASSERT_RC(sn__sched_watch(w->fd, on_readable, w), 0);
    sn_sleep_ms(50);
    CU_ASSERT_EQUAL(w->runs, 0); /* nothing to read: no fiber ran */
    SN_ASSERT_RC(sn_test_write_all(w->peer, "ab", 2), 0);
    sn_sleep_ms(5);
    SN_ASSERT_RC(sn_test_write_all(w->peer, "cd", 2), 0); /* after its read, before the re-arm */
    sn_sleep_ms(100);
    CU_ASSERT_STRING_EQUAL(w->got, "abcd");
    CU_ASSERT_EQUAL(w->runs, 2);
    /* a run that waits on the descriptor itself gets the next bytes without
     * a second fiber starting */
    int before = w->runs;
    w->wait_once = true;
    SN_ASSERT_RC(sn_test_write_all(w->peer, "ef", 2), 0);
    sn_sleep_ms(50);
    SN_ASSERT_RC(sn_test_write_all(w->peer, "gh", 2), 0);
    sn_sleep_ms(100);
    CU_ASSERT_STRING_EQUAL(w->got, "abcdefgh");
    CU_ASSERT_EQUAL(w->runs, before + 1);
    CU_ASSERT_EQUAL(w->waited, 1);
    /* the peer's close runs it once more, with the end of the stream */
    close(w->peer);
    sn_sleep_ms(100);
    CU_ASSERT_EQUAL(w->eofs, 1);
    CU_ASSERT_EQUAL(w->most_running, 1);
    SN_ASSERT_RC(sn__sched_watch(-1, on_readable, w), SN_EINVAL);
    SN_ASSERT_RC(sn__sched_watch(w->fd, NULL, w), SN_EINVAL);
    sn__sched_unwatch(w->fd);
}

static void test_watch(void)
{
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    struct watched w = {.fd = sv[0], .peer = sv[1]};
    sn_sched *s;
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, watch_driver, &w, 0), 0);
    sn__sched_run(s);
    sn__sched_free(s);
    close(sv[0]);
    SN_ASSERT_RC(sn__sched_watch(sv[0], on_readable, &w), SN_EINVAL); /* no scheduler here */
}

static CU_TestInfo tests[] = {
    {"watch: one run per edge, none while idle, none lost", test_watch},
    {"run order and yield", test_run_order_and_yield},
    {"ping-pong over a socket pair", test_ping_pong},
    {"wait with a deadline, then again", test_wait_deadline},
    {"an edge while the fiber is busy is kept", test_edge_while_busy},
    {"a reader and a writer on one descriptor", test_reader_and_writer},
    {"close wakes the waiter; numbers reused", test_close_and_reuse},
    {"a line and the peer's FIN in one edge", test_line_and_eof_in_one_edge},
    {"a connection waiting with nothing buffered holds no buffer", test_idle_holds_no_buffer},
    {"a read past its deadline takes what has arrived", test_late_read_takes_what_arrived},
    {"sn_sleep_ms and sn_yield", test_public_sleep_and_yield},
    {"1,000 sleepers wake in order", test_many_sleepers},
    {"deep stack", test_deep_stack},
    {"stacks are reused", test_stack_reuse},
    {"a spike leaves a bounded stack cache, its pages given back", test_stack_cache_bounded},
    {"one scheduler per thread", test_one_per_thread},
    {"pool: limits, queue, refusal", test_pool_limits},
    {"pool: a pool thread's submits are spread over the threads", test_pool_spreads_own_submits},
    {"pool: stop with and without drop", test_pool_stop},
    {"pool: many submitters", test_pool_many_submitters},
    {"pool: bad configuration", test_pool_bad_config},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("fiber", tests, 60);
}
