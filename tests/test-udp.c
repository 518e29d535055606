/* SPDX-License-Identifier: MIT */
/*
 * test-udp.c: UDP sockets and the datagram server over real loopback:
 * round trips of 0 B to 65,507 B, truncation, connected sockets and the
 * errors the network reports, IPv6 and dual stack, deadlines (threads and
 * fibers), broadcast on 127.255.255.255, multicast on lo, batches, options,
 * states, bad input, and the server end to end with several workers.
 *
 * Network: 127.0.0.0/8 and ::1 only; multicast only through lo. Every loop
 * is bounded by a count or a deadline. Where the kernel refuses multicast
 * (no route for the group on lo), that part is skipped
 * (sn_test_skip: the test is reported as skipped, not passed).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_test.h"
#include "sn_fiber.h"

/* Whether rc, from binding or starting on an IPv6 address, says this
 * machine has no IPv6; the test is then skipped. */
static bool no_ipv6(int rc)
{
    if (rc != SN_EAFNOSUPPORT && rc != SN_EADDRNOTAVAIL)
        return false;
    sn_test_skip("no IPv6 here");
    return true;
}

/* A socket bound to host, port 0. */
static sn_udp *bound(const char *host)
{
    sn_udp_config cfg = {.host = host};
    sn_udp *u = NULL;
    int rc = sn_udp_bind(&u, &cfg);
    SN_ASSERT_RC(rc, 0);
    return rc == 0 ? u : NULL;
}

static sn_addr local_of(const sn_udp *u)
{
    sn_addr a = {0};
    SN_ASSERT_RC(sn_udp_local_addr(u, &a), 0);
    return a;
}

static int get_opt(const sn_udp *u, int opt)
{
    int v = -12345;
    int rc = sn_udp_get_option(u, opt, &v);
    return rc < 0 ? rc : v;
}

/* A UDP port on 127.0.0.1 where nothing is bound (bound, then closed). */
static int free_udp_port(void)
{
    sn_udp *u = bound("127.0.0.1");
    if (u == NULL)
        return -1;
    sn_addr a = local_of(u);
    int port = sn_addr_port(&a);
    sn_udp_free(u);
    return port;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

/* ---- binding, sizes, truncation ------------------------------------------------- */

static void test_bind_v4(void)
{
    sn_udp *u = bound("127.0.0.1");
    CU_ASSERT_FATAL(u != NULL);
    CU_ASSERT_EQUAL(sn_udp_get_state(u), SN_SOCK_BOUND);
    CU_ASSERT_EQUAL(sn_udp_family(u), SN_AF_INET);
    sn_addr a = local_of(u);
    CU_ASSERT(sn_addr_port(&a) > 0);
    CU_ASSERT(sn_addr_is_loopback(&a));
    CU_ASSERT(fcntl(sn_udp_fd(u), F_GETFL) & O_NONBLOCK);
    CU_ASSERT(fcntl(sn_udp_fd(u), F_GETFD) & FD_CLOEXEC);
    sn_addr peer;
    SN_ASSERT_RC(sn_udp_remote_addr(u, &peer), SN_ENOTCONN);
    /* a second socket on the same port: in use */
    sn_udp_config cfg = {.host = "127.0.0.1", .port = sn_addr_port(&a)};
    sn_udp *v = NULL;
    SN_ASSERT_RC(sn_udp_bind(&v, &cfg), SN_EADDRINUSE);
    CU_ASSERT_PTR_NULL(v);
    /* unless both ask for REUSEPORT */
    sn_udp_free(u);
    cfg.port = 0;
    cfg.opt.reuseport = SN_ON;
    SN_ASSERT_RC(sn_udp_bind(&u, &cfg), 0);
    a = local_of(u);
    cfg.port = sn_addr_port(&a);
    SN_ASSERT_RC(sn_udp_bind(&v, &cfg), 0);
    sn_udp_free(v);
    sn_udp_free(u);
    /* NULL config: 0.0.0.0, any port */
    SN_ASSERT_RC(sn_udp_bind(&u, NULL), 0);
    a = local_of(u);
    CU_ASSERT(sn_addr_port(&a) > 0);
    sn_udp_free(u);
}

/* Sends len bytes from a to b, then back; checks bytes, sizes, addresses. */
static void round_trip(sn_udp *a, sn_udp *b, size_t len)
{
    static unsigned char out[SN_UDP_MAX_IPV6 + 16], in[SN_UDP_MAX_IPV6 + 16];
    sn_addr la = local_of(a), lb = local_of(b), from;
    size_t size = 999999;
    fill(out, len, (unsigned)len);
    memset(in, 0xee, sizeof in);
    SN_ASSERT_RC(sn_udp_send_to(a, len ? out : NULL, len, &lb, 0), (long)len);
    SN_ASSERT_RC(sn_udp_recv_from(b, in, sizeof in, &from, &size, sn_deadline_in(5000)), (long)len);
    CU_ASSERT_EQUAL(size, len);
    CU_ASSERT(memcmp(in, out, len) == 0);
    CU_ASSERT_EQUAL(in[len], 0xee); /* nothing past the datagram */
    CU_ASSERT(sn_addr_equal(&from, &la));
    /* and back, to the address it came from */
    SN_ASSERT_RC(sn_udp_send_to(b, in, len, &from, 0), (long)len);
    SN_ASSERT_RC(sn_udp_recv(a, in, sizeof in, &size, sn_deadline_in(5000)), (long)len);
    CU_ASSERT(memcmp(in, out, len) == 0);
}

static void test_round_trips_v4(void)
{
    sn_udp *a = bound("127.0.0.1"), *b = bound("127.0.0.1");
    CU_ASSERT_FATAL(a != NULL && b != NULL);
    static const size_t sizes[] = {0, 1, 1400, SN_UDP_MAX_IPV4, 0};
    for (size_t i = 0; i < SN_ARRAY_SIZE(sizes); i++)
        round_trip(a, b, sizes[i]);
    /* one byte more than IPv4 carries */
    static unsigned char big[SN_UDP_MAX_IPV4 + 1];
    sn_addr lb = local_of(b);
    SN_ASSERT_RC(sn_udp_send_to(a, big, sizeof big, &lb, 0), SN_EMSGSIZE);
    sn_udp_free(a);
    sn_udp_free(b);
}

static void test_truncation(void)
{
    sn_udp *a = bound("127.0.0.1"), *b = bound("127.0.0.1");
    CU_ASSERT_FATAL(a != NULL && b != NULL);
    unsigned char out[100], in[16];
    sn_addr lb = local_of(b), la = local_of(a), from;
    size_t size = 0;
    fill(out, sizeof out, 1);
    SN_ASSERT_RC(sn_udp_send_to(a, out, sizeof out, &lb, 0), 100);
    memset(in, 0, sizeof in);
    SN_ASSERT_RC(sn_udp_recv_from(b, in, 10, &from, &size, sn_deadline_in(5000)), SN_ETRUNCATED);
    CU_ASSERT_EQUAL(size, 100);
    CU_ASSERT(memcmp(in, out, 10) == 0);
    CU_ASSERT_EQUAL(in[10], 0); /* exactly cap bytes written */
    CU_ASSERT(sn_addr_equal(&from, &la));
    /* the datagram was consumed: nothing is left */
    SN_ASSERT_RC(sn_udp_recv(b, in, sizeof in, NULL, sn_deadline_in(0)), SN_ETIMEDOUT);
    /* a zero-byte buffer learns the size of any datagram but an empty one */
    SN_ASSERT_RC(sn_udp_send_to(a, out, 42, &lb, 0), 42);
    SN_ASSERT_RC(sn_udp_recv(b, NULL, 0, &size, sn_deadline_in(5000)), SN_ETRUNCATED);
    CU_ASSERT_EQUAL(size, 42);
    SN_ASSERT_RC(sn_udp_send_to(a, NULL, 0, &lb, 0), 0);
    SN_ASSERT_RC(sn_udp_recv(b, NULL, 0, &size, sn_deadline_in(5000)), 0);
    CU_ASSERT_EQUAL(size, 0);
    sn_udp_free(a);
    sn_udp_free(b);
}

/* ---- connected sockets ------------------------------------------------------------- */

static void test_connected(void)
{
    sn_udp *srv = bound("127.0.0.1"), *other = bound("127.0.0.1"), *c = NULL;
    CU_ASSERT_FATAL(srv != NULL && other != NULL);
    sn_addr ls = local_of(srv), lc, peer, from;
    char buf[64];
    SN_ASSERT_RC(sn_udp_connect(&c, "127.0.0.1", sn_addr_port(&ls), NULL), 0);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(sn_udp_get_state(c), SN_SOCK_CONNECTED);
    SN_ASSERT_RC(sn_udp_remote_addr(c, &peer), 0);
    CU_ASSERT(sn_addr_equal(&peer, &ls));
    lc = local_of(c);
    CU_ASSERT(sn_addr_port(&lc) > 0);

    SN_ASSERT_RC(sn_udp_send(c, "hello", 5, 0), 5);
    SN_ASSERT_RC(sn_udp_recv_from(srv, buf, sizeof buf, &from, NULL, sn_deadline_in(5000)), 5);
    CU_ASSERT(sn_addr_equal(&from, &lc));
    /* a stranger's datagram is filtered out; the peer's gets through */
    SN_ASSERT_RC(sn_udp_send_to(other, "stranger", 8, &lc, 0), 8);
    SN_ASSERT_RC(sn_udp_send_to(srv, "reply", 5, &lc, 0), 5);
    SN_ASSERT_RC(sn_udp_recv_from(c, buf, sizeof buf, &from, NULL, sn_deadline_in(5000)), 5);
    CU_ASSERT(memcmp(buf, "reply", 5) == 0);
    CU_ASSERT(sn_addr_equal(&from, &ls));
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(0)), SN_ETIMEDOUT);

    /* dissolve the association: the port the kernel picked at connect is
     * given up */
    SN_ASSERT_RC(sn_udp_set_peer(c, NULL), 0);
    CU_ASSERT_EQUAL(sn_udp_get_state(c), SN_SOCK_OPEN);
    SN_ASSERT_RC(sn_udp_remote_addr(c, &peer), SN_ENOTCONN);
    SN_ASSERT_RC(sn_udp_send(c, "x", 1, 0), SN_ENOTCONN);
    /* connect a bound socket to a peer */
    SN_ASSERT_RC(sn_udp_set_peer(other, &ls), 0);
    CU_ASSERT_EQUAL(sn_udp_get_state(other), SN_SOCK_CONNECTED);
    SN_ASSERT_RC(sn_udp_send(other, "z", 1, 0), 1);
    SN_ASSERT_RC(sn_udp_recv(srv, buf, sizeof buf, NULL, sn_deadline_in(5000)), 1);
    /* a socket sn_udp_bind bound keeps its port */
    sn_addr before = local_of(other), after;
    SN_ASSERT_RC(sn_udp_set_peer(other, NULL), 0);
    CU_ASSERT_EQUAL(sn_udp_get_state(other), SN_SOCK_BOUND);
    after = local_of(other);
    CU_ASSERT(sn_addr_equal(&before, &after));
    SN_ASSERT_RC(sn_udp_send_to(srv, "back", 4, &after, 0), 4);
    SN_ASSERT_RC(sn_udp_recv(other, buf, sizeof buf, NULL, sn_deadline_in(5000)), 4);
    sn_udp_free(c);
    sn_udp_free(srv);
    sn_udp_free(other);
}

static void test_connected_refused(void)
{
    int port = free_udp_port();
    CU_ASSERT_FATAL(port > 0);
    sn_udp *c = NULL;
    char buf[16];
    SN_ASSERT_RC(sn_udp_connect(&c, "127.0.0.1", port, NULL), 0);
    CU_ASSERT_FATAL(c != NULL);
    /* ICMP port unreachable comes back as an error on the next receive */
    SN_ASSERT_RC(sn_udp_send(c, "anyone?", 7, 0), 7);
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000)), SN_ECONNREFUSED);
    /* once per report: then the socket waits again */
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(0)), SN_ETIMEDOUT);
    /* or on the next send */
    SN_ASSERT_RC(sn_udp_send(c, "again", 5, 0), 5);
    int rc = 5;
    for (int i = 0; i < 100 && rc == 5; i++) {
        rc = (int)sn_udp_send(c, "again", 5, 0);
        if (rc == 5)
            sn_test_sleep_ms(5);
    }
    SN_ASSERT_RC(rc, SN_ECONNREFUSED);
    /* or read from SO_ERROR, which clears it */
    SN_ASSERT_RC(sn_udp_send(c, "more", 4, 0), 4);
    int err = 0;
    for (int i = 0; i < 100 && err == 0; i++) {
        SN_ASSERT_RC(sn_udp_get_option(c, SN_UDP_OPT_ERROR, &err), 0);
        if (err == 0)
            sn_test_sleep_ms(5);
    }
    SN_ASSERT_RC(err, SN_ECONNREFUSED);
    SN_ASSERT_RC(get_opt(c, SN_UDP_OPT_ERROR), 0);
    sn_udp_free(c);
}

static void test_unconnected_send(void)
{
    sn_udp *u = bound("127.0.0.1");
    CU_ASSERT_FATAL(u != NULL);
    SN_ASSERT_RC(sn_udp_send(u, "x", 1, 0), SN_ENOTCONN);
    SN_ASSERT_RC(sn_udp_send_to(u, "x", 1, NULL, 0), SN_ENOTCONN);
    sn_addr empty = {0};
    SN_ASSERT_RC(sn_udp_send_to(u, "x", 1, &empty, 0), SN_ENOTCONN);
    /* an unconnected socket hears no ICMP errors */
    int port = free_udp_port();
    sn_addr nobody;
    sn_addr_from_ip(&nobody, "127.0.0.1", port);
    SN_ASSERT_RC(sn_udp_send_to(u, "x", 1, &nobody, 0), 1);
    char buf[4];
    SN_ASSERT_RC(sn_udp_recv(u, buf, sizeof buf, NULL, sn_deadline_in(50)), SN_ETIMEDOUT);
    sn_udp_free(u);
}

/* ---- IPv6 ---------------------------------------------------------------------------------- */

static void test_ipv6(void)
{
    sn_udp_config cfg = {.host = "::1"};
    sn_udp *a = NULL, *b = NULL;
    int rc = sn_udp_bind(&a, &cfg);
    if (no_ipv6(rc))
        return;
    SN_ASSERT_RC(rc, 0);
    SN_ASSERT_RC(sn_udp_bind(&b, &cfg), 0);
    CU_ASSERT_FATAL(a != NULL && b != NULL);
    CU_ASSERT_EQUAL(sn_udp_family(a), SN_AF_INET6);
    CU_ASSERT_EQUAL(get_opt(a, SN_UDP_OPT_V6ONLY), 1);
    sn_addr la = local_of(a);
    char text[SN_ADDR_STRLEN];
    sn_addr_format_ip(&la, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "::1");
    static const size_t sizes[] = {0, 1, 1400, SN_UDP_MAX_IPV4, SN_UDP_MAX_IPV6};
    for (size_t i = 0; i < SN_ARRAY_SIZE(sizes); i++)
        round_trip(a, b, sizes[i]);
    /* an IPv4 socket cannot have an IPv6 peer */
    sn_udp *v4 = bound("127.0.0.1");
    SN_ASSERT_RC(sn_udp_set_peer(v4, &la), SN_EAFNOSUPPORT);
    SN_ASSERT_RC(sn_udp_send_to(v4, "x", 1, &la, 0), SN_EAFNOSUPPORT);
    sn_udp_free(v4);
    /* sn_udp_connect by name picks the family */
    sn_udp *c = NULL;
    char buf[8];
    sn_addr lb = local_of(b);
    SN_ASSERT_RC(sn_udp_connect(&c, "::1", sn_addr_port(&lb), NULL), 0);
    CU_ASSERT_EQUAL(sn_udp_family(c), SN_AF_INET6);
    SN_ASSERT_RC(sn_udp_send(c, "six", 3, 0), 3);
    SN_ASSERT_RC(sn_udp_recv(b, buf, sizeof buf, NULL, sn_deadline_in(5000)), 3);
    sn_udp_free(c);
    sn_udp_free(a);
    sn_udp_free(b);
}

static void test_dual_stack(void)
{
    sn_udp_config cfg = {.host = "::", .v6only = SN_OFF};
    sn_udp *d = NULL;
    int rc = sn_udp_bind(&d, &cfg);
    if (no_ipv6(rc))
        return;
    SN_ASSERT_RC(rc, 0);
    CU_ASSERT_EQUAL(get_opt(d, SN_UDP_OPT_V6ONLY), 0);
    sn_addr ld = local_of(d), from, to4;
    sn_udp *c = bound("127.0.0.1");
    sn_addr lc = local_of(c);
    char buf[8];
    sn_addr_from_ip(&to4, "127.0.0.1", sn_addr_port(&ld));
    SN_ASSERT_RC(sn_udp_send_to(c, "four", 4, &to4, 0), 4);
    SN_ASSERT_RC(sn_udp_recv_from(d, buf, sizeof buf, &from, NULL, sn_deadline_in(5000)), 4);
    /* the IPv4 sender appears IPv4-mapped */
    CU_ASSERT_EQUAL(sn_addr_family(&from), SN_AF_INET6);
    CU_ASSERT(IN6_IS_ADDR_V4MAPPED(&from.u.in6.sin6_addr));
    CU_ASSERT_EQUAL(sn_addr_port(&from), sn_addr_port(&lc));
    /* replying to the mapped address and to the plain IPv4 one both work */
    SN_ASSERT_RC(sn_udp_send_to(d, "re1", 3, &from, 0), 3);
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000)), 3);
    SN_ASSERT_RC(sn_udp_send_to(d, "re2", 3, &lc, 0), 3);
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000)), 3);
    CU_ASSERT(memcmp(buf, "re2", 3) == 0);
    sn_udp_free(c);
    sn_udp_free(d);
}

/* ---- deadlines ---------------------------------------------------------------------------- */

static void test_deadlines(void)
{
    sn_udp *a = bound("127.0.0.1"), *b = bound("127.0.0.1");
    CU_ASSERT_FATAL(a != NULL && b != NULL);
    char buf[16];
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_udp_recv(b, buf, sizeof buf, NULL, sn_deadline_in(100)), SN_ETIMEDOUT);
    CU_ASSERT(sn_now_ms() - t0 >= 100);
    /* a deadline already passed still takes what is queued */
    sn_addr lb = local_of(b);
    SN_ASSERT_RC(sn_udp_send_to(a, "q", 1, &lb, 0), 1);
    int rc = SN_ETIMEDOUT;
    for (int i = 0; i < 100 && rc == SN_ETIMEDOUT; i++)
        if ((rc = (int)sn_udp_recv(b, buf, sizeof buf, NULL, sn_deadline_in(0))) == SN_ETIMEDOUT)
            sn_test_sleep_ms(5);
    SN_ASSERT_RC(rc, 1);
    /* the default deadline is the read timeout */
    SN_ASSERT_RC(sn_udp_set_option(b, SN_UDP_OPT_READ_TIMEOUT, 60), 0);
    t0 = sn_now_ms();
    SN_ASSERT_RC(sn_udp_recv(b, buf, sizeof buf, NULL, SN_DEADLINE_DEFAULT), SN_ETIMEDOUT);
    CU_ASSERT(sn_now_ms() - t0 >= 60);
    /* a shorter deadline after a longer one (SO_RCVTIMEO is lowered) */
    SN_ASSERT_RC(sn_udp_recv(b, buf, sizeof buf, NULL, sn_deadline_in(1000)), SN_ETIMEDOUT);
    t0 = sn_now_ms();
    SN_ASSERT_RC(sn_udp_recv(b, buf, sizeof buf, NULL, sn_deadline_in(20)), SN_ETIMEDOUT);
    CU_ASSERT(sn_now_ms() - t0 < 1000);
    sn_udp_free(a);
    sn_udp_free(b);
}

/* A datagram sent from another thread after a delay. */
struct late {
    pthread_t tid;
    sn_addr to;
    int delay_ms;
};

static void *send_late(void *arg)
{
    struct late *l = arg;
    sn_udp *u = NULL;
    sn_test_sleep_ms(l->delay_ms);
    if (sn_udp_open(&u, SN_AF_INET, NULL) == 0)
        sn_udp_send_to(u, "late", 4, &l->to, 0);
    sn_udp_free(u);
    return NULL;
}

static void test_recv_waits(void)
{
    sn_udp *b = bound("127.0.0.1");
    CU_ASSERT_FATAL(b != NULL);
    struct late l = {.to = local_of(b), .delay_ms = 50};
    char buf[8];
    CU_ASSERT_FATAL(pthread_create(&l.tid, NULL, send_late, &l) == 0);
    SN_ASSERT_RC(sn_udp_recv(b, buf, sizeof buf, NULL, SN_DEADLINE_NEVER), 4);
    pthread_join(l.tid, NULL);
    /* batch receive waits too */
    sn_udp_msg m = {.buf = buf, .cap = sizeof buf};
    CU_ASSERT_FATAL(pthread_create(&l.tid, NULL, send_late, &l) == 0);
    SN_ASSERT_RC(sn_udp_recv_batch(b, &m, 1, sn_deadline_in(5000)), 1);
    CU_ASSERT_EQUAL(m.len, 4);
    pthread_join(l.tid, NULL);
    sn_udp_free(b);
}

/* On a fiber a receive parks the fiber: the other fiber runs meanwhile. */
struct fiber_case {
    sn_udp *u;
    sn_addr to;
    ssize_t got, timed;
    int ticks;
    bool done;
};

static void fiber_receiver(void *arg)
{
    struct fiber_case *fc = arg;
    char buf[8];
    fc->timed = sn_udp_recv(fc->u, buf, sizeof buf, NULL, sn_deadline_in(30));
    fc->got = sn_udp_recv(fc->u, buf, sizeof buf, NULL, sn_deadline_in(5000));
    fc->done = true;
}

static void fiber_ticker(void *arg)
{
    struct fiber_case *fc = arg;
    sn_udp *u = NULL;
    for (int i = 0; i < 10; i++) {
        fc->ticks++;
        sn__fiber_sleep_until(sn_now_ms() + 5);
    }
    if (sn_udp_open(&u, SN_AF_INET, NULL) == 0)
        sn_udp_send_to(u, "fiber", 5, &fc->to, 0);
    sn_udp_free(u);
}

static void test_recv_on_fiber(void)
{
    struct fiber_case fc = {.u = bound("127.0.0.1")};
    CU_ASSERT_FATAL(fc.u != NULL);
    fc.to = local_of(fc.u);
    sn_sched *s;
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, fiber_receiver, &fc, 0), 0);
    SN_ASSERT_RC(sn__fiber_spawn(s, fiber_ticker, &fc, 0), 0);
    sn__sched_run(s);
    sn__sched_free(s);
    CU_ASSERT(fc.done);
    SN_ASSERT_RC(fc.timed, SN_ETIMEDOUT);
    SN_ASSERT_RC(fc.got, 5);
    CU_ASSERT_EQUAL(fc.ticks, 10);
    /* the fiber never switched the descriptor to blocking mode */
    CU_ASSERT(fcntl(sn_udp_fd(fc.u), F_GETFL) & O_NONBLOCK);
    sn_udp_free(fc.u);
}

/* ---- broadcast and multicast -------------------------------------------------------- */

static void test_broadcast_loopback(void)
{
    sn_udp_config rc_cfg = {.host = "0.0.0.0"};
    sn_udp *r = NULL, *s = NULL;
    SN_ASSERT_RC(sn_udp_bind(&r, &rc_cfg), 0);
    SN_ASSERT_RC(sn_udp_open(&s, SN_AF_INET, NULL), 0);
    CU_ASSERT_FATAL(r != NULL && s != NULL);
    sn_addr lr = local_of(r), bcast;
    char buf[8];
    /* 127.255.255.255 is lo's broadcast address: nothing leaves the host */
    sn_addr_from_ip(&bcast, "127.255.255.255", sn_addr_port(&lr));
    CU_ASSERT_EQUAL(get_opt(s, SN_UDP_OPT_BROADCAST), 0);
    SN_ASSERT_RC(sn_udp_send_to(s, "b", 1, &bcast, 0), SN_EACCES);
    SN_ASSERT_RC(sn_udp_set_option(s, SN_UDP_OPT_BROADCAST, 1), 0);
    CU_ASSERT_EQUAL(get_opt(s, SN_UDP_OPT_BROADCAST), 1);
    SN_ASSERT_RC(sn_udp_send_to(s, "b", 1, &bcast, 0), 1);
    SN_ASSERT_RC(sn_udp_recv(r, buf, sizeof buf, NULL, sn_deadline_in(5000)), 1);
    sn_udp_free(r);
    sn_udp_free(s);
}

/* Sends to group:port through lo; the receiver r waits up to wait_ms. */
static int multicast_round(sn_udp *s, sn_udp *r, const char *group, int port, int wait_ms)
{
    sn_addr g;
    char buf[16];
    int rc = sn_addr_from_ip(&g, group, port);
    if (rc < 0)
        return rc;
    if ((rc = (int)sn_udp_send_to(s, "mcast", 5, &g, 0)) < 0)
        return rc;
    return (int)sn_udp_recv(r, buf, sizeof buf, NULL, sn_deadline_in(wait_ms));
}

static void test_multicast_v4(void)
{
    const char *group = "239.255.0.1";
    unsigned lo = if_nametoindex("lo");
    char lo_index[16];
    snprintf(lo_index, sizeof lo_index, "%u", lo);
    sn_udp_config rcfg = {.host = "0.0.0.0", .opt = {.reuseaddr = SN_ON}};
    sn_udp_options sopt = {.multicast_if = (int)lo, .multicast_loop = SN_ON, .multicast_ttl = 1};
    sn_udp *r = NULL, *s = NULL;
    SN_ASSERT_RC(sn_udp_bind(&r, &rcfg), 0);
    SN_ASSERT_RC(sn_udp_open(&s, SN_AF_INET, &sopt), 0);
    CU_ASSERT_FATAL(r != NULL && s != NULL && lo > 0);
    CU_ASSERT_EQUAL(get_opt(s, SN_UDP_OPT_MULTICAST_IF), (int)lo);
    CU_ASSERT_EQUAL(get_opt(s, SN_UDP_OPT_MULTICAST_LOOP), 1);
    CU_ASSERT_EQUAL(get_opt(s, SN_UDP_OPT_MULTICAST_TTL), 1);
    sn_addr lr = local_of(r);
    int port = sn_addr_port(&lr);

    int rc = sn_udp_join(r, group, "lo");
    if (rc == SN_ENODEV) {
        sn_test_skip("the kernel refuses IPv4 multicast on lo (ENODEV)");
        goto out;
    }
    SN_ASSERT_RC(rc, 0);
    SN_ASSERT_RC(sn_udp_join(r, group, lo_index), SN_EADDRINUSE); /* lo by index: joined */
    rc = multicast_round(s, r, group, port, 5000);
    if (rc == SN_ENETUNREACH || rc == SN_ENODEV) {
        sn_test_skip("no route for 239.255.0.1 through lo; sending not tested");
    } else {
        /* (MULTICAST_LOOP cannot be seen through lo: lo delivers whatever
         * goes out on it, looped or not) */
        SN_ASSERT_RC(rc, 5);
    }
    SN_ASSERT_RC(sn_udp_leave(r, group, "lo"), 0);
    SN_ASSERT_RC(sn_udp_leave(r, group, "lo"), SN_EADDRNOTAVAIL);
    if (rc == 5) /* after leaving, nothing arrives */
        SN_ASSERT_RC(multicast_round(s, r, group, port, 100), SN_ETIMEDOUT);
out:
    sn_udp_free(r);
    sn_udp_free(s);
}

static void test_multicast_v6(void)
{
    const char *group = "ff12::5e:1";
    sn_udp_config rcfg = {.host = "::", .opt = {.reuseaddr = SN_ON}};
    sn_udp *r = NULL, *s = NULL;
    int rc = sn_udp_bind(&r, &rcfg);
    if (no_ipv6(rc))
        return;
    SN_ASSERT_RC(rc, 0);
    unsigned lo = if_nametoindex("lo");
    sn_udp_options sopt = {.multicast_if = (int)lo, .multicast_ttl = 1};
    SN_ASSERT_RC(sn_udp_open(&s, SN_AF_INET6, &sopt), 0);
    CU_ASSERT_FATAL(r != NULL && s != NULL);
    CU_ASSERT_EQUAL(get_opt(s, SN_UDP_OPT_MULTICAST_IF), (int)lo);
    sn_addr lr = local_of(r);
    rc = sn_udp_join(r, group, "lo");
    if (rc == SN_ENODEV) {
        sn_test_skip("the kernel refuses IPv6 multicast on lo (ENODEV)");
        goto out;
    }
    SN_ASSERT_RC(rc, 0);
    SN_ASSERT_RC(sn_udp_join(r, group, "lo"), SN_EADDRINUSE);
    rc = multicast_round(s, r, group, sn_addr_port(&lr), 5000);
    if (rc == SN_ENETUNREACH || rc == SN_ENODEV || rc == SN_EADDRNOTAVAIL)
        sn_test_skip("lo has no IPv6 multicast route here (sending refused); join/leave tested");
    else
        SN_ASSERT_RC(rc, 5);
    SN_ASSERT_RC(sn_udp_leave(r, group, "lo"), 0);
    SN_ASSERT_RC(sn_udp_leave(r, group, "lo"), SN_EADDRNOTAVAIL);
out:
    sn_udp_free(r);
    sn_udp_free(s);
}

static void test_multicast_v4_group_on_dual_stack(void)
{
    sn_udp_config rcfg = {.host = "::", .v6only = SN_OFF};
    sn_udp *r = NULL;
    int rc = sn_udp_bind(&r, &rcfg);
    if (no_ipv6(rc))
        return;
    SN_ASSERT_RC(rc, 0);
    rc = sn_udp_join(r, "239.255.0.2", "lo");
    if (rc == SN_ENODEV) {
        sn_test_skip("the kernel refuses IPv4 multicast on lo (ENODEV)");
    } else {
        SN_ASSERT_RC(rc, 0);
        sn_udp_options sopt = {.multicast_if = (int)if_nametoindex("lo")};
        sn_udp *s = NULL;
        SN_ASSERT_RC(sn_udp_open(&s, SN_AF_INET, &sopt), 0);
        sn_addr lr = local_of(r);
        rc = multicast_round(s, r, "239.255.0.2", sn_addr_port(&lr), 5000);
        if (rc == SN_ENETUNREACH)
            sn_test_skip("no route for 239.255.0.2 through lo; sending not tested");
        else
            SN_ASSERT_RC(rc, 5);
        SN_ASSERT_RC(sn_udp_leave(r, "239.255.0.2", "lo"), 0);
        sn_udp_free(s);
    }
    sn_udp_free(r);
}

static void test_multicast_errors(void)
{
    sn_udp *u = bound("0.0.0.0");
    CU_ASSERT_FATAL(u != NULL);
    SN_ASSERT_RC(sn_udp_join(u, "127.0.0.1", "lo"), SN_EINVAL); /* not multicast */
    SN_ASSERT_RC(sn_udp_join(u, "239.300.0.1", "lo"), SN_EBADADDR);
    SN_ASSERT_RC(sn_udp_join(u, "ff12::1", "lo"), SN_EAFNOSUPPORT);
    SN_ASSERT_RC(sn_udp_join(u, "239.255.0.3", "no-such-if0"), SN_ENODEV);
    SN_ASSERT_RC(sn_udp_join(u, "239.255.0.3", "987654"), SN_ENODEV);
    SN_ASSERT_RC(sn_udp_join(u, NULL, "lo"), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_join(NULL, "239.255.0.3", "lo"), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_leave(u, "239.255.0.3", "lo"), SN_EADDRNOTAVAIL);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_MULTICAST_IF, 987654), SN_ENODEV);
    sn_udp_close(u);
    SN_ASSERT_RC(sn_udp_join(u, "239.255.0.3", "lo"), SN_EBADSTATE);
    sn_udp_free(u);
}

/* ---- batches --------------------------------------------------------------------------------- */

/* Receives want datagrams into msgs, in as many calls as it takes. */
static int recv_all(sn_udp *u, sn_udp_msg *msgs, int want)
{
    int got = 0;
    for (int calls = 0; got < want && calls < want + 10; calls++) {
        int k = sn_udp_recv_batch(u, msgs + got, want - got, sn_deadline_in(5000));
        if (k < 0)
            return k;
        got += k;
    }
    return got;
}

static void test_batch(void)
{
    sn_udp *a = bound("127.0.0.1"), *b = bound("127.0.0.1");
    CU_ASSERT_FATAL(a != NULL && b != NULL);
    enum { N = 10, CAP = 2000 };
    static unsigned char out[N][CAP + 100], in[N][CAP];
    sn_udp_msg sm[N], rm[N];
    sn_addr la = local_of(a), lb = local_of(b);
    for (int i = 0; i < N; i++) {
        size_t len = i == 0 ? 0 : i == 1 ? CAP + 100 : (size_t)i * 150;
        fill(out[i], len, (unsigned)i);
        sm[i] = (sn_udp_msg){.buf = out[i], .len = len, .addr = lb};
        rm[i] = (sn_udp_msg){.buf = in[i], .cap = CAP};
    }
    SN_ASSERT_RC(sn_udp_send_batch(a, sm, N, 0), N);
    SN_ASSERT_RC(recv_all(b, rm, N), N);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(rm[i].size, sm[i].len);
        CU_ASSERT_EQUAL(rm[i].truncated, i == 1);
        CU_ASSERT_EQUAL(rm[i].len, i == 1 ? (size_t)CAP : sm[i].len);
        CU_ASSERT(memcmp(rm[i].buf, out[i], rm[i].len) == 0);
        CU_ASSERT(sn_addr_equal(&rm[i].addr, &la));
    }
    /* nothing more: a batch receive times out like any receive */
    SN_ASSERT_RC(sn_udp_recv_batch(b, rm, N, sn_deadline_in(20)), SN_ETIMEDOUT);
    /* connected: messages without an address go to the peer */
    SN_ASSERT_RC(sn_udp_set_peer(a, &lb), 0);
    for (int i = 0; i < N; i++)
        memset(&sm[i].addr, 0, sizeof sm[i].addr);
    SN_ASSERT_RC(sn_udp_send_batch(a, sm + 2, 3, 0), 3);
    SN_ASSERT_RC(recv_all(b, rm, 3), 3);
    CU_ASSERT_EQUAL(rm[2].size, sm[4].len);
    /* a failure after the first message: the count sent so far */
    sm[3].len = SN_UDP_MAX_IPV4 + 1;
    static unsigned char big[SN_UDP_MAX_IPV4 + 1];
    sm[3].buf = big;
    SN_ASSERT_RC(sn_udp_send_batch(a, sm + 2, 3, 0), 1);
    SN_ASSERT_RC(sn_udp_send_batch(a, sm + 3, 2, 0), SN_EMSGSIZE);
    SN_ASSERT_RC(recv_all(b, rm, 1), 1);
    sn_udp_free(a);
    sn_udp_free(b);
}

static void test_batch_many(void)
{
    sn_udp *a = bound("127.0.0.1"), *b = bound("127.0.0.1");
    CU_ASSERT_FATAL(a != NULL && b != NULL);
    enum { N = 150 };
    static uint32_t out[N], in[N];
    static sn_udp_msg sm[N], rm[N];
    sn_addr lb = local_of(b);
    SN_ASSERT_RC(sn_udp_set_option(b, SN_UDP_OPT_RCVBUF, 1 << 20), 0);
    for (int i = 0; i < N; i++) {
        out[i] = (uint32_t)i * 2654435761u;
        sm[i] = (sn_udp_msg){.buf = &out[i], .len = sizeof out[i], .addr = lb};
        rm[i] = (sn_udp_msg){.buf = &in[i], .cap = sizeof in[i]};
    }
    SN_ASSERT_RC(sn_udp_send_batch(a, sm, N, 0), N);
    SN_ASSERT_RC(recv_all(b, rm, N), N);
    for (int i = 0; i < N; i++) /* UDP on loopback keeps the order */
        CU_ASSERT_EQUAL(in[i], out[i]);
    sn_udp_free(a);
    sn_udp_free(b);
}

/* ---- options -------------------------------------------------------------------------------- */

static void test_options(void)
{
    sn_udp *u = bound("127.0.0.1");
    CU_ASSERT_FATAL(u != NULL);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_RCVBUF, 100000), 0);
    CU_ASSERT(get_opt(u, SN_UDP_OPT_RCVBUF) >= 100000);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_SNDBUF, 100000), 0);
    CU_ASSERT(get_opt(u, SN_UDP_OPT_SNDBUF) >= 100000);
    static const int switches[] = {SN_UDP_OPT_REUSEADDR, SN_UDP_OPT_REUSEPORT, SN_UDP_OPT_BROADCAST,
                                   SN_UDP_OPT_MULTICAST_LOOP};
    for (size_t i = 0; i < SN_ARRAY_SIZE(switches); i++) {
        SN_ASSERT_RC(sn_udp_set_option(u, switches[i], 1), 0);
        CU_ASSERT_EQUAL(get_opt(u, switches[i]), 1);
        SN_ASSERT_RC(sn_udp_set_option(u, switches[i], 0), 0);
        CU_ASSERT_EQUAL(get_opt(u, switches[i]), 0);
        SN_ASSERT_RC(sn_udp_set_option(u, switches[i], 2), SN_EINVAL);
    }
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_TOS, 0x28), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_TOS), 0x28);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_TTL, 7), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_TTL), 7);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_TTL, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_MULTICAST_TTL, 0), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_MULTICAST_TTL), 0);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_MULTICAST_TTL, 255), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_MULTICAST_TTL), 255);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_MULTICAST_TTL, 256), SN_EINVAL);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_MULTICAST_IF), 0);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_MULTICAST_IF, (int)if_nametoindex("lo")), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_MULTICAST_IF), (int)if_nametoindex("lo"));
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_MULTICAST_IF, 0), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_MULTICAST_IF), 0);
    /* timeouts: 0 restores the default; SN_TIMEOUT_NEVER */
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_READ_TIMEOUT), 60000);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_READ_TIMEOUT, 1500), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_READ_TIMEOUT), 1500);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_READ_TIMEOUT, 0), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_READ_TIMEOUT), 60000);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_WRITE_TIMEOUT, SN_TIMEOUT_NEVER), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_WRITE_TIMEOUT), SN_TIMEOUT_NEVER);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_WRITE_TIMEOUT, -2), SN_EINVAL);
    /* V6ONLY is for IPv6; ERROR is read only; unknown options */
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_V6ONLY, 1), SN_ENOPROTOOPT);
    SN_ASSERT_RC(sn_udp_get_option(u, SN_UDP_OPT_V6ONLY, &(int){0}), SN_ENOPROTOOPT);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_ERROR, 0), SN_EINVAL);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_ERROR), 0);
    SN_ASSERT_RC(sn_udp_set_option(u, 0, 1), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_set_option(u, 999, 1), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_get_option(u, SN_UDP_OPT_TTL, NULL), SN_EINVAL);
    sn_udp_free(u);

    /* all at once, as a socket is made */
    sn_udp_options o = {.rcvbuf = 50000,
                        .broadcast = SN_ON,
                        .tos = 0x10,
                        .ttl = 9,
                        .read_timeout_ms = 1234,
                        .write_timeout_ms = SN_TIMEOUT_NEVER,
                        .multicast_ttl = SN_OFF,
                        .multicast_loop = SN_OFF};
    SN_ASSERT_RC(sn_udp_open(&u, SN_AF_INET, &o), 0);
    CU_ASSERT(get_opt(u, SN_UDP_OPT_RCVBUF) >= 50000);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_BROADCAST), 1);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_TOS), 0x10);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_TTL), 9);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_READ_TIMEOUT), 1234);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_WRITE_TIMEOUT), SN_TIMEOUT_NEVER);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_MULTICAST_TTL), 0);
    CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_MULTICAST_LOOP), 0);
    sn_udp_free(u);
    sn_udp_options bad = {.broadcast = 7};
    u = NULL;
    SN_ASSERT_RC(sn_udp_open(&u, SN_AF_INET, &bad), SN_EINVAL);
    bad = (sn_udp_options){.ttl = 300};
    SN_ASSERT_RC(sn_udp_open(&u, SN_AF_INET, &bad), SN_EINVAL);
    CU_ASSERT_PTR_NULL(u);

    /* IPv6: TCLASS, hop limits, V6ONLY before bind */
    if (sn_udp_open(&u, SN_AF_INET6, NULL) == 0) {
        SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_TOS, 0x20), 0);
        CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_TOS), 0x20);
        SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_TTL, 33), 0);
        CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_TTL), 33);
        SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_MULTICAST_TTL, 4), 0);
        CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_MULTICAST_TTL), 4);
        SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_V6ONLY, 1), 0);
        CU_ASSERT_EQUAL(get_opt(u, SN_UDP_OPT_V6ONLY), 1);
        sn_udp_free(u);
    }
}

/* ---- state, closing, bad input ------------------------------------------------------ */

static void test_states(void)
{
    sn_udp *u = NULL, *b = bound("127.0.0.1");
    sn_addr a, lb = local_of(b);
    SN_ASSERT_RC(sn_udp_open(&u, 0, NULL), 0);
    CU_ASSERT_FATAL(u != NULL && b != NULL);
    CU_ASSERT_EQUAL(sn_udp_get_state(u), SN_SOCK_OPEN);
    CU_ASSERT_EQUAL(sn_udp_family(u), SN_AF_INET);
    SN_ASSERT_RC(sn_udp_local_addr(u, &a), SN_EBADSTATE);
    /* the first send binds it */
    SN_ASSERT_RC(sn_udp_send_to(u, "s", 1, &lb, 0), 1);
    CU_ASSERT_EQUAL(sn_udp_get_state(u), SN_SOCK_BOUND);
    SN_ASSERT_RC(sn_udp_local_addr(u, &a), 0);
    CU_ASSERT(sn_addr_port(&a) > 0);
    SN_ASSERT_RC(sn_udp_set_peer(u, &lb), 0);
    CU_ASSERT_EQUAL(sn_udp_get_state(u), SN_SOCK_CONNECTED);
    CU_ASSERT_STRING_EQUAL(sn_sock_state_name(sn_udp_get_state(u)), "connected");
    /* closed: every call says so; the getters still work */
    int fd = sn_udp_fd(u);
    CU_ASSERT(fd >= 0);
    SN_ASSERT_RC(sn_udp_close(u), 0);
    SN_ASSERT_RC(sn_udp_close(u), 0);
    CU_ASSERT_EQUAL(sn_udp_get_state(u), SN_SOCK_CLOSED);
    CU_ASSERT_EQUAL(sn_udp_fd(u), -1);
    char buf[4];
    sn_udp_msg m = {.buf = buf, .cap = sizeof buf};
    SN_ASSERT_RC(sn_udp_send_to(u, "s", 1, &lb, 0), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_send(u, "s", 1, 0), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_recv(u, buf, sizeof buf, NULL, 0), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_recv_batch(u, &m, 1, 0), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_send_batch(u, &m, 1, 0), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_local_addr(u, &a), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_remote_addr(u, &a), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_set_peer(u, &lb), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_set_option(u, SN_UDP_OPT_TTL, 5), SN_EBADSTATE);
    sn_udp_free(u);
    sn_udp_free(b);
    sn_udp_free(NULL);
    CU_ASSERT_EQUAL(sn_udp_get_state(NULL), SN_SOCK_CLOSED);
    CU_ASSERT_EQUAL(sn_udp_fd(NULL), -1);
    CU_ASSERT_EQUAL(sn_udp_family(NULL), 0);
}

static void test_bad_input(void)
{
    sn_udp *u = NULL;
    sn_udp_config cfg = {.host = "127.0.0.1", .port = 70000};
    SN_ASSERT_RC(sn_udp_bind(&u, &cfg), SN_EBADADDR);
    cfg = (sn_udp_config){.host = "999.1.2.3.invalid"};
    CU_ASSERT(sn_udp_bind(&u, &cfg) < 0);
    cfg = (sn_udp_config){.host = "::1", .v6only = 7};
    SN_ASSERT_RC(sn_udp_bind(&u, &cfg), SN_EINVAL);
    cfg = (sn_udp_config){.host = "192.0.2.200"}; /* not an address of this host */
    SN_ASSERT_RC(sn_udp_bind(&u, &cfg), SN_EADDRNOTAVAIL);
    SN_ASSERT_RC(sn_udp_bind(NULL, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_open(&u, 5, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_open(NULL, SN_AF_INET, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_connect(&u, "", 9, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_connect(&u, NULL, 9, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_connect(NULL, "127.0.0.1", 9, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_connect(&u, "127.0.0.1", -1, NULL), SN_EBADADDR);
    SN_ASSERT_RC(sn_udp_connect(&u, "nowhere.invalid", 9, NULL), SN_ENONAME);
    CU_ASSERT_PTR_NULL(u);

    u = bound("127.0.0.1");
    CU_ASSERT_FATAL(u != NULL);
    sn_addr lu = local_of(u);
    char buf[4];
    sn_udp_msg m = {.buf = NULL, .cap = 4};
    SN_ASSERT_RC(sn_udp_send_to(NULL, "x", 1, &lu, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_send_to(u, NULL, 1, &lu, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_send(NULL, "x", 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_recv_from(NULL, buf, 4, NULL, NULL, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_recv_from(u, NULL, 4, NULL, NULL, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_recv_batch(u, &m, 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_recv_batch(u, NULL, 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_recv_batch(u, &m, 0, 0), SN_EINVAL);
    m.len = 4;
    SN_ASSERT_RC(sn_udp_send_batch(u, &m, 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_send_batch(NULL, &m, 1, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_set_peer(NULL, &lu), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_local_addr(u, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_remote_addr(NULL, &lu), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_apply_options(u, NULL), SN_EINVAL);
    sn_udp_free(u);

    /* out of memory: nothing leaks */
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(sn_udp_open(&u, SN_AF_INET, NULL), SN_ENOMEM);
    sn__alloc_fail_after(-1);
}

/* ---- the server ------------------------------------------------------------------------- */

struct app {
    atomic_int handled;
    atomic_int busy, busy_max; /* "slow" handlers running, the most at once */
    atomic_int errors;
    atomic_int last_err;
    atomic_int truncated_seen;
    atomic_int stop_requests;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool released;
};

static void app_init(struct app *a)
{
    memset(a, 0, sizeof *a);
    sn__mutex_init(&a->mu);
    sn__cond_init(&a->cond);
}

static void app_destroy(struct app *a)
{
    sn__cond_destroy(&a->cond);
    sn__mutex_destroy(&a->mu);
}

/* Echoes; "hold" waits (at most 5 s) until "release" arrives on another
 * worker; "stop" stops the server from the handler. */
static void on_dgram(const sn_udp_dgram *d, void *user)
{
    struct app *a = user;
    atomic_fetch_add(&a->handled, 1);
    if (d->truncated)
        atomic_fetch_add(&a->truncated_seen, 1);
    if (d->len == 4 && memcmp(d->data, "hold", 4) == 0) {
        sn__mutex_lock(&a->mu);
        int64_t dl = sn_now_ms() + 5000;
        while (!a->released && sn__cond_wait_until(&a->cond, &a->mu, dl) == 0)
            ;
        sn__mutex_unlock(&a->mu);
    } else if (d->len == 7 && memcmp(d->data, "release", 7) == 0) {
        sn__mutex_lock(&a->mu);
        a->released = true;
        sn__cond_broadcast(&a->cond);
        sn__mutex_unlock(&a->mu);
    } else if (d->len == 4 && memcmp(d->data, "slow", 4) == 0) {
        int now = atomic_fetch_add(&a->busy, 1) + 1, max = atomic_load(&a->busy_max);
        while (now > max && !atomic_compare_exchange_weak(&a->busy_max, &max, now))
            ;
        poll(NULL, 0, 100); /* a handler that blocks its worker */
        atomic_fetch_sub(&a->busy, 1);
    } else if (d->len == 4 && memcmp(d->data, "stop", 4) == 0) {
        atomic_fetch_add(&a->stop_requests, 1);
        sn_udp_server_stop(d->server);
    }
    sn_udp_reply(d, d->data, d->len);
}

static void on_error(sn_udp_server *s, int err, const char *what, void *user)
{
    struct app *a = user;
    (void)s;
    (void)what;
    atomic_fetch_add(&a->errors, 1);
    atomic_store(&a->last_err, err);
}

static sn_udp_server *start_server(struct app *a, int workers, int batch, size_t buffer)
{
    sn_udp_server_config cfg = {.host = "127.0.0.1",
                                .handler = on_dgram,
                                .user = a,
                                .workers = workers,
                                .batch = batch,
                                .buffer_size = buffer,
                                .on_error = on_error};
    sn_udp_server *s = NULL;
    SN_ASSERT_RC(sn_udp_server_new(&s, &cfg), 0);
    if (s != NULL)
        SN_ASSERT_RC(sn_udp_server_start(s), 0);
    return s;
}

/* A client socket connected to the server. */
static sn_udp *client_of(sn_udp_server *s)
{
    sn_udp *c = NULL;
    SN_ASSERT_RC(sn_udp_connect(&c, "127.0.0.1", sn_udp_server_port(s), NULL), 0);
    return c;
}

struct echo_client {
    pthread_t tid;
    sn_udp_server *s;
    int rounds;
    int ok;
};

static void *echo_client_main(void *arg)
{
    struct echo_client *ec = arg;
    static const size_t sizes[] = {0, 1, 64, 1400, 9000, SN_UDP_MAX_IPV4};
    unsigned char *out = malloc(SN_UDP_MAX_IPV4), *in = malloc(SN_UDP_MAX_IPV4 + 1);
    sn_udp *c = NULL;
    if (out == NULL || in == NULL ||
        sn_udp_connect(&c, "127.0.0.1", sn_udp_server_port(ec->s), NULL) < 0)
        goto out;
    /* UDP may drop a datagram when a receive buffer is full (64 KiB
     * datagrams, a loaded machine): a datagram with no echo within a
     * second is sent again, up to 5 times; late echoes of earlier
     * attempts are skipped. */
    for (int i = 0; i < ec->rounds; i++) {
        size_t len = sizes[i % SN_ARRAY_SIZE(sizes)];
        fill(out, len, (unsigned)i);
        bool echoed = false;
        for (int attempt = 0; attempt < 5 && !echoed; attempt++) {
            if (sn_udp_send(c, out, len, 0) != (ssize_t)len)
                continue;
            int64_t until = sn_now_ms() + 1000;
            ssize_t n;
            while (!echoed && (n = sn_udp_recv(c, in, SN_UDP_MAX_IPV4 + 1, NULL, until)) >= 0)
                echoed = n == (ssize_t)len && memcmp(in, out, len) == 0;
        }
        ec->ok += echoed;
    }
out:
    sn_udp_free(c);
    free(out);
    free(in);
    return NULL;
}

static void test_server_echo(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = start_server(&a, 4, 0, 0);
    CU_ASSERT_FATAL(s != NULL);
    sn_addr local;
    SN_ASSERT_RC(sn_udp_server_local_addr(s, &local), 0);
    CU_ASSERT(sn_addr_port(&local) > 0);
    CU_ASSERT_EQUAL(sn_udp_server_port(s), sn_addr_port(&local));
    sn_udp_server_stats st = {0};
    WAIT_UNTIL((sn_udp_server_stats_get(s, &st), st.workers == 4), 5000);
    enum { CLIENTS = 3, ROUNDS = 60 };
    struct echo_client ec[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        ec[i] = (struct echo_client){.s = s, .rounds = ROUNDS};
        CU_ASSERT_FATAL(pthread_create(&ec[i].tid, NULL, echo_client_main, &ec[i]) == 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(ec[i].tid, NULL);
        CU_ASSERT_EQUAL(ec[i].ok, ROUNDS);
    }
    /* a reply is counted after its send returns: the client may be faster;
     * datagrams sent again are received and echoed again */
    WAIT_UNTIL(
        (sn_udp_server_stats_get(s, &st), st.sent >= CLIENTS * ROUNDS && st.sent == st.received),
        5000);
    CU_ASSERT_EQUAL(st.workers, 4);
    CU_ASSERT(st.received >= CLIENTS * ROUNDS);
    CU_ASSERT_EQUAL(st.sent, st.received);
    CU_ASSERT_EQUAL(st.errors, 0);
    CU_ASSERT_EQUAL(st.truncated, 0);
    CU_ASSERT_EQUAL(st.bytes_received, st.bytes_sent);
    CU_ASSERT(st.bytes_received > (uint64_t)SN_UDP_MAX_IPV4 * CLIENTS);
    SN_ASSERT_RC(sn_udp_server_stop(s), 0);
    sn_udp_server_stats_get(s, &st);
    CU_ASSERT_EQUAL(st.workers, 0);
    SN_ASSERT_RC(sn_udp_server_stop(s), 0); /* idempotent */
    sn_udp_server_free(s);
    app_destroy(&a);
}

static void test_server_workers_in_parallel(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = start_server(&a, 3, 0, 0);
    CU_ASSERT_FATAL(s != NULL);
    sn_udp *c = client_of(s);
    char buf[16];
    /* "hold" keeps one worker busy until "release" is handled by another */
    SN_ASSERT_RC(sn_udp_send(c, "hold", 4, 0), 4);
    WAIT_UNTIL(atomic_load(&a.handled) == 1, 5000);
    SN_ASSERT_RC(sn_udp_send(c, "ping", 4, 0), 4);
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000)), 4);
    CU_ASSERT(memcmp(buf, "ping", 4) == 0); /* served while "hold" waits */
    SN_ASSERT_RC(sn_udp_send(c, "release", 7, 0), 7);
    int got_hold = 0, got_release = 0;
    for (int i = 0; i < 2; i++) {
        ssize_t n = sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000));
        got_hold += n == 4 && memcmp(buf, "hold", 4) == 0;
        got_release += n == 7;
    }
    CU_ASSERT_EQUAL(got_hold, 1);
    CU_ASSERT_EQUAL(got_release, 1);
    sn_udp_free(c);
    sn_udp_server_free(s);
    app_destroy(&a);
}

/* More workers than CPUs (up to 32): the server's workers then take turns
 * receiving, one per CPU at a time. */
static int workers_past_cpus(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return (int)(cpus < 1 ? 2 : cpus > 16 ? 32 : 2 * cpus);
}

/* Handlers that block: the receive slots pass on, and every worker runs
 * one at once (one receiving per CPU must not mean one handling). */
static void test_server_slow_handlers_spread(void)
{
    struct app a;
    app_init(&a);
    int workers = workers_past_cpus();
    sn_udp_server *s = start_server(&a, workers, 0, 0);
    CU_ASSERT_FATAL(s != NULL);
    sn_udp *c = client_of(s);
    char buf[16];
    for (int i = 0; i < 2 * workers; i++)
        SN_ASSERT_RC(sn_udp_send(c, "slow", 4, 0), 4);
    int back = 0;
    for (int i = 0; i < 2 * workers; i++)
        back += sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000)) == 4;
    CU_ASSERT_EQUAL(back, 2 * workers);
    CU_ASSERT_EQUAL(atomic_load(&a.busy_max), workers);
    sn_udp_free(c);
    sn_udp_server_free(s);
    app_destroy(&a);
}

/* The context switches all threads of this process have made. */
static long long ctxt_switches(void)
{
    long long sum = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[64], line[128];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/status", e->d_name);
        FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "r");
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            long long n;
            if (sscanf(line, "voluntary_ctxt_switches: %lld", &n) == 1 ||
                sscanf(line, "nonvoluntary_ctxt_switches: %lld", &n) == 1)
                sum += n;
        }
        if (f != NULL)
            fclose(f);
    }
    if (d != NULL)
        closedir(d);
    return sum;
}

/* An idle server's workers sleep: after a datagram, once the owner of the
 * receive slots have waited 50 ms, nobody wakes until the next one
 * (a standby watching every millisecond would wake about 300 times). */
static void test_server_idle_stays_idle(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = start_server(&a, workers_past_cpus(), 0, 0);
    CU_ASSERT_FATAL(s != NULL);
    sn_udp *c = client_of(s);
    char buf[16];
    SN_ASSERT_RC(sn_udp_send(c, "ping", 4, 0), 4);
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000)), 4);
    poll(NULL, 0, 200);
    long long before = ctxt_switches();
    poll(NULL, 0, 300);
    long long woke = ctxt_switches() - before;
    CU_ASSERT(woke < 30); /* this thread's own sleep, /proc reads; not the workers */
    if (woke >= 30)
        fprintf(stderr, "idle server: %lld context switches in 300 ms\n", woke);
    sn_udp_free(c);
    sn_udp_server_free(s);
    app_destroy(&a);
}

static void test_server_stop_wakes_idle_workers(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = start_server(&a, 8, 4, 0);
    CU_ASSERT_FATAL(s != NULL);
    sn_udp_server_stats st = {0};
    WAIT_UNTIL((sn_udp_server_stats_get(s, &st), st.workers == 8), 5000);
    CU_ASSERT_EQUAL(st.workers, 8);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_udp_server_stop(s), 0);
    CU_ASSERT(sn_now_ms() - t0 < 2000); /* woken, not timed out */
    sn_udp_server_stats_get(s, &st);
    CU_ASSERT_EQUAL(st.workers, 0);
    CU_ASSERT_EQUAL(st.received, 0); /* the wake-up is not a datagram */
    /* after the stop: no sends, no restart */
    sn_addr to;
    sn_addr_from_ip(&to, "127.0.0.1", 9);
    SN_ASSERT_RC(sn_udp_server_send_to(s, "x", 1, &to), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_server_start(s), SN_EBADSTATE);
    sn_udp_server_free(s);
    app_destroy(&a);
}

static void test_server_stop_from_handler(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = start_server(&a, 2, 0, 0);
    CU_ASSERT_FATAL(s != NULL);
    sn_udp *c = client_of(s);
    char buf[8];
    SN_ASSERT_RC(sn_udp_send(c, "stop", 4, 0), 4);
    /* the reply after the stop began still goes out */
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000)), 4);
    sn_udp_server_stats st = {0};
    WAIT_UNTIL((sn_udp_server_stats_get(s, &st), st.workers == 0), 5000);
    CU_ASSERT_EQUAL(st.workers, 0);
    CU_ASSERT_EQUAL(atomic_load(&a.stop_requests), 1);
    sn_udp_free(c);
    sn_udp_server_free(s); /* completes the stop */
    app_destroy(&a);
}

static void test_server_truncated(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = start_server(&a, 1, 0, 100);
    CU_ASSERT_FATAL(s != NULL);
    sn_udp *c = client_of(s);
    char out[200], in[256];
    memset(out, 'x', sizeof out);
    SN_ASSERT_RC(sn_udp_send(c, out, 200, 0), 200);
    SN_ASSERT_RC(sn_udp_send(c, out, 100, 0), 100); /* fits exactly */
    SN_ASSERT_RC(sn_udp_recv(c, in, sizeof in, NULL, sn_deadline_in(5000)), 100);
    sn_udp_server_stats st;
    sn_udp_server_stats_get(s, &st);
    CU_ASSERT_EQUAL(st.received, 2);
    CU_ASSERT_EQUAL(st.truncated, 1);
    CU_ASSERT_EQUAL(atomic_load(&a.handled), 1); /* dropped, not handled */
    CU_ASSERT_EQUAL(atomic_load(&a.errors), 1);
    SN_ASSERT_RC(atomic_load(&a.last_err), SN_ETRUNCATED);
    sn_udp_free(c);
    sn_udp_server_free(s);

    /* delivered, flagged, when asked for */
    sn_udp_server_config cfg = {.host = "127.0.0.1",
                                .handler = on_dgram,
                                .user = &a,
                                .workers = 1,
                                .buffer_size = 100,
                                .deliver_truncated = SN_ON};
    SN_ASSERT_RC(sn_udp_server_new(&s, &cfg), 0);
    SN_ASSERT_RC(sn_udp_server_start(s), 0);
    c = client_of(s);
    SN_ASSERT_RC(sn_udp_send(c, out, 200, 0), 200);
    SN_ASSERT_RC(sn_udp_recv(c, in, sizeof in, NULL, sn_deadline_in(5000)), 100);
    CU_ASSERT_EQUAL(atomic_load(&a.truncated_seen), 1);
    sn_udp_free(c);
    sn_udp_server_free(s);
    app_destroy(&a);
}

static void test_server_batch(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = start_server(&a, 2, 8, 2048);
    CU_ASSERT_FATAL(s != NULL);
    sn_udp *c = client_of(s);
    SN_ASSERT_RC(sn_udp_set_option(c, SN_UDP_OPT_RCVBUF, 1 << 20), 0);
    enum { N = 50 };
    static uint32_t out[N], in[N];
    static sn_udp_msg sm[N], rm[N];
    for (int i = 0; i < N; i++) {
        out[i] = 0x5eed0000u + (uint32_t)i;
        sm[i] = (sn_udp_msg){.buf = &out[i], .len = sizeof out[i]};
        rm[i] = (sn_udp_msg){.buf = &in[i], .cap = sizeof in[i]};
    }
    SN_ASSERT_RC(sn_udp_send_batch(c, sm, N, 0), N);
    SN_ASSERT_RC(recv_all(c, rm, N), N);
    /* every datagram came back once (two workers: in any order) */
    int seen[N] = {0};
    for (int i = 0; i < N; i++) {
        uint32_t k = in[i] - 0x5eed0000u;
        if (k < N)
            seen[k]++;
    }
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(seen[i], 1);
    /* the replies held for each batch were all sent, and counted (after
     * the stop: a worker counts a batch's replies once sendmmsg returned) */
    SN_ASSERT_RC(sn_udp_server_stop(s), 0);
    sn_udp_server_stats st;
    sn_udp_server_stats_get(s, &st);
    CU_ASSERT_EQUAL(st.sent, N);
    CU_ASSERT_EQUAL(st.bytes_sent, N * sizeof out[0]);
    CU_ASSERT_EQUAL(st.errors, 0);
    sn_udp_free(c);
    sn_udp_server_free(s);
    app_destroy(&a);
}

/* One worker with batches: the replies it holds for a batch go out in the
 * order the handler made them, a reply too large to hold included (what
 * was held goes first). */
static void test_server_batch_reply_order(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = start_server(&a, 1, 16, 8192);
    CU_ASSERT_FATAL(s != NULL);
    sn_udp *c = client_of(s);
    SN_ASSERT_RC(sn_udp_set_option(c, SN_UDP_OPT_RCVBUF, 1 << 20), 0);
    enum { N = 40 };
    static char out[N][5000], in[N][5000];
    static sn_udp_msg sm[N], rm[N];
    for (int i = 0; i < N; i++) {
        size_t len = i % 7 == 3 ? 4000 : 16; /* some larger than a held reply may be */
        memset(out[i], 'a' + i % 26, len);
        memcpy(out[i], &i, sizeof i);
        sm[i] = (sn_udp_msg){.buf = out[i], .len = len};
        rm[i] = (sn_udp_msg){.buf = in[i], .cap = sizeof in[i]};
    }
    SN_ASSERT_RC(sn_udp_send_batch(c, sm, N, 0), N);
    SN_ASSERT_RC(recv_all(c, rm, N), N);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(rm[i].len, sm[i].len);
        CU_ASSERT(memcmp(in[i], out[i], sm[i].len) == 0);
    }
    sn_udp_free(c);
    sn_udp_server_free(s);
    app_destroy(&a);
}

static void test_server_send_to_and_ipv6(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server_config cfg = {.host = "::1", .handler = on_dgram, .user = &a, .workers = 2};
    sn_udp_server *s = NULL;
    SN_ASSERT_RC(sn_udp_server_new(&s, &cfg), 0);
    int rc = sn_udp_server_start(s);
    if (no_ipv6(rc)) {
        sn_udp_server_free(s);
        app_destroy(&a);
        return;
    }
    SN_ASSERT_RC(rc, 0);
    sn_udp_config ccfg = {.host = "::1"};
    sn_udp *c = NULL;
    SN_ASSERT_RC(sn_udp_bind(&c, &ccfg), 0);
    sn_addr lc = local_of(c), ls;
    char buf[8];
    SN_ASSERT_RC(sn_udp_server_local_addr(s, &ls), 0);
    SN_ASSERT_RC(sn_udp_send_to(c, "v6", 2, &ls, 0), 2);
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000)), 2);
    /* the owner sends on the server's socket from its own thread */
    SN_ASSERT_RC(sn_udp_server_send_to(s, "push", 4, &lc), 4);
    SN_ASSERT_RC(sn_udp_recv(c, buf, sizeof buf, NULL, sn_deadline_in(5000)), 4);
    CU_ASSERT(memcmp(buf, "push", 4) == 0);
    SN_ASSERT_RC(sn_udp_server_send_to(s, "x", 1, NULL), SN_EINVAL);
    sn_udp_server_stats st = {0};
    WAIT_UNTIL((sn_udp_server_stats_get(s, &st), st.sent == 2), 5000);
    CU_ASSERT_EQUAL(st.sent, 2);
    sn_udp_free(c);
    sn_udp_server_free(s);
    app_destroy(&a);
}

static void test_server_config(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = NULL;
    sn_udp_server_config cfg = {.host = "127.0.0.1"};
    SN_ASSERT_RC(sn_udp_server_new(&s, &cfg), SN_EINVAL); /* no handler */
    cfg.handler = on_dgram;
    cfg.user = &a;
    sn_udp_server_config bad = cfg;
    bad.workers = 5000;
    SN_ASSERT_RC(sn_udp_server_new(&s, &bad), SN_EINVAL);
    bad = cfg;
    bad.batch = 65;
    SN_ASSERT_RC(sn_udp_server_new(&s, &bad), SN_EINVAL);
    bad = cfg;
    bad.port = 65536;
    SN_ASSERT_RC(sn_udp_server_new(&s, &bad), SN_EINVAL);
    bad = cfg;
    bad.deliver_truncated = 3;
    SN_ASSERT_RC(sn_udp_server_new(&s, &bad), SN_EINVAL);
    bad = cfg;
    bad.buffer_size = (size_t)1 << 30;
    SN_ASSERT_RC(sn_udp_server_new(&s, &bad), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_server_new(NULL, &cfg), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_server_new(&s, NULL), SN_EINVAL);
    CU_ASSERT_PTR_NULL(s);

    /* before start: no address; a port in use fails and leaves nothing */
    sn_udp *taken = bound("127.0.0.1");
    sn_addr lt = local_of(taken);
    cfg.port = sn_addr_port(&lt);
    SN_ASSERT_RC(sn_udp_server_new(&s, &cfg), 0);
    sn_addr la;
    SN_ASSERT_RC(sn_udp_server_local_addr(s, &la), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_server_port(s), SN_EBADSTATE);
    SN_ASSERT_RC(sn_udp_server_start(s), SN_EADDRINUSE);
    sn_udp_free(taken);
    SN_ASSERT_RC(sn_udp_server_start(s), 0); /* the port is free now */
    SN_ASSERT_RC(sn_udp_server_start(s), SN_EBADSTATE);
    sn_udp_server_free(s);
    /* stopped before it started */
    cfg.port = 0;
    SN_ASSERT_RC(sn_udp_server_new(&s, &cfg), 0);
    SN_ASSERT_RC(sn_udp_server_stop(s), 0);
    SN_ASSERT_RC(sn_udp_server_start(s), SN_EBADSTATE);
    sn_udp_server_free(s);
    sn_udp_server_free(NULL);
    SN_ASSERT_RC(sn_udp_server_stop(NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_udp_reply(NULL, "x", 1), SN_EINVAL);
    app_destroy(&a);
}

static void test_server_default_workers(void)
{
    struct app a;
    app_init(&a);
    sn_udp_server *s = start_server(&a, 0, 0, 0);
    CU_ASSERT_FATAL(s != NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    sn_udp_server_stats st = {0};
    WAIT_UNTIL((sn_udp_server_stats_get(s, &st), st.workers == (int)cpus), 5000);
    CU_ASSERT_EQUAL(st.workers, (int)cpus);
    sn_udp_server_free(s);
    app_destroy(&a);
}

/* ---- cancelling from another thread ---------------------------------------------------- */

static void cancel_udp(void *arg)
{
    SN_ASSERT_RC(sn_udp_cancel(arg), 0);
}

struct udp_recv_fiber {
    sn_udp *u;
    ssize_t rc;
};

static void udp_recv_fiber(void *arg)
{
    struct udp_recv_fiber *f = arg;
    char buf[16];
    f->rc = sn_udp_recv(f->u, buf, sizeof buf, NULL, SN_DEADLINE_NEVER);
}

/* A receive blocked in the kernel (a plain thread) and one parked on a
 * fiber both return SN_ECANCELED when another thread cancels; later
 * receives and sends too, never an empty datagram. */
static void test_cancel(void)
{
    char buf[16];
    sn_udp_msg m = {.buf = buf, .cap = sizeof buf};
    sn_udp *u = bound("127.0.0.1"), *v = bound("127.0.0.1");
    sn_addr to = local_of(v);
    sn_test_later *l = sn_test_later_start(100, cancel_udp, u);
    int64_t t0 = sn_now_ms();
    CU_ASSERT_EQUAL(sn_udp_recv(u, buf, sizeof buf, NULL, SN_DEADLINE_NEVER), SN_ECANCELED);
    CU_ASSERT(sn_now_ms() - t0 >= 90 && sn_now_ms() - t0 < 1000);
    sn_test_later_join(l);
    CU_ASSERT_EQUAL(sn_udp_recv(u, buf, sizeof buf, NULL, sn_deadline_in(100)), SN_ECANCELED);
    CU_ASSERT_EQUAL(sn_udp_recv_batch(u, &m, 1, sn_deadline_in(100)), SN_ECANCELED);
    CU_ASSERT_EQUAL(sn_udp_send_to(u, "x", 1, &to, 0), SN_ECANCELED);
    CU_ASSERT_EQUAL(sn_udp_send_batch(u, &(sn_udp_msg){.buf = "x", .len = 1, .addr = to}, 1, 0),
                    SN_ECANCELED);
    SN_ASSERT_RC(sn_udp_close(u), 0);
    SN_ASSERT_RC(sn_udp_cancel(u), 0); /* after the close: nothing */
    sn_udp_free(u);
    /* on a fiber */
    struct udp_recv_fiber f = {.u = v};
    sn_sched *sch;
    SN_ASSERT_RC(sn__sched_new(&sch), 0);
    SN_ASSERT_RC(sn__fiber_spawn(sch, udp_recv_fiber, &f, 0), 0);
    l = sn_test_later_start(100, cancel_udp, v);
    sn__sched_run(sch);
    sn_test_later_join(l);
    sn__sched_free(sch);
    CU_ASSERT_EQUAL(f.rc, SN_ECANCELED);
    sn_udp_free(v);
    CU_ASSERT_EQUAL(sn_udp_cancel(NULL), SN_EINVAL);
}

static CU_TestInfo tests[] = {
    {"cancel from another thread: blocked, on a fiber, later calls", test_cancel},
    {"bind IPv4, port 0, reuse", test_bind_v4},
    {"round trips 0 B, 1 B, 1400 B, 65507 B over IPv4", test_round_trips_v4},
    {"truncation reports the real size", test_truncation},
    {"connected socket: peer, filtering, dissolving", test_connected},
    {"connected socket: port unreachable is SN_ECONNREFUSED", test_connected_refused},
    {"unconnected sends need an address", test_unconnected_send},
    {"IPv6 round trips on ::1", test_ipv6},
    {"dual stack: IPv4 peers mapped", test_dual_stack},
    {"deadlines and the read timeout", test_deadlines},
    {"receives wait for a late datagram", test_recv_waits},
    {"a receive on a fiber parks the fiber", test_recv_on_fiber},
    {"broadcast on 127.255.255.255 needs SO_BROADCAST", test_broadcast_loopback},
    {"multicast IPv4 on lo: join, receive, loop, leave", test_multicast_v4},
    {"multicast IPv6 on lo: join, leave", test_multicast_v6},
    {"multicast IPv4 group on a dual-stack socket", test_multicast_v4_group_on_dual_stack},
    {"multicast bad input", test_multicast_errors},
    {"batch send and receive, truncated flag, partial sends", test_batch},
    {"batches larger than one system call's chunk", test_batch_many},
    {"options set and read back", test_options},
    {"states and a closed socket", test_states},
    {"bad input gives clear errors", test_bad_input},
    {"server: echo with 4 workers and 3 clients", test_server_echo},
    {"server: workers handle datagrams in parallel", test_server_workers_in_parallel},
    {"server: blocking handlers run on every worker at once", test_server_slow_handlers_spread},
    {"server: an idle server's workers sleep", test_server_idle_stays_idle},
    {"server: stop wakes idle workers at once", test_server_stop_wakes_idle_workers},
    {"server: stop from a handler", test_server_stop_from_handler},
    {"server: truncated datagrams dropped or flagged", test_server_truncated},
    {"server: batch receive", test_server_batch},
    {"server: batch replies keep their order", test_server_batch_reply_order},
    {"server: IPv6 and send_to from the owner", test_server_send_to_and_ipv6},
    {"server: configuration and start errors", test_server_config},
    {"server: one worker per CPU by default", test_server_default_workers},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("udp", tests, 120);
}
