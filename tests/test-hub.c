/* SPDX-License-Identifier: MIT */
/*
 * test-hub.c: the broadcast hub with real sessions over loopback TCP (the
 * server side an sn_ws the hub writes to, the client side reading frames
 * from its socket) and pull subscriptions: one order under many concurrent
 * publishers, every slow-member policy with a peer that stops reading,
 * members leaving and sessions freed mid-broadcast, counters, and every
 * message's reference count back to zero. SN_TEST_QUICK=1 (valgrind) runs
 * every test with fewer messages and rounds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_test.h"
#include "sn_wait.h"
#include "sn_ws_int.h"
#include "ws-peer.h"

static long MANY = 3000; /* messages in the no-loss tests */

/* Reads a text message "<n>" (or "<tag> <n>") and returns n, or -1. */
static long read_number(sn_conn *c, int ms)
{
    char buf[128];
    int op;
    long n = read_frame(c, &op, buf, sizeof buf - 1, ms);
    if (n < 0 || op != SN_WS_TEXT)
        return -1;
    buf[n] = '\0';
    const char *sp = strrchr(buf, ' ');
    return strtol(sp ? sp + 1 : buf, NULL, 10);
}

static int publish_number(sn_hub *h, const char *room, long n)
{
    char text[32];
    int len = snprintf(text, sizeof text, "%ld", n);
    return sn_hub_publish(h, room, SN_WS_TEXT, text, (size_t)len, NULL, SN_DEADLINE_DEFAULT);
}

static void hub_empty(sn_hub *h)
{
    sn_hub_stats st;
    sn_hub_stats_get(h, &st);
    for (int i = 0; i < 100 && st.rooms > 0; i++) { /* a writer may still be ending a flush */
        sn_test_sleep_ms(10);
        sn_hub_stats_get(h, &st);
    }
    CU_ASSERT_EQUAL(st.rooms, 0);
    CU_ASSERT_EQUAL(st.members, 0);
    CU_ASSERT_EQUAL(st.sessions, 0);
    CU_ASSERT_EQUAL(st.messages, 0); /* every reference given back */
}

/* ---- pull subscriptions ---------------------------------------------------------------- */

static void test_pull_basics(void)
{
    sn_hub *h;
    SN_ASSERT_RC(sn_hub_new(&h, NULL), 0);
    SN_ASSERT_RC(sn_hub_publish(h, "none", SN_WS_TEXT, "x", 1, NULL, 0), SN_EHUB_NOROOM);
    sn_hub_sub *a, *b;
    SN_ASSERT_RC(sn_hub_subscribe(h, "news", &a), 0);
    SN_ASSERT_RC(sn_hub_subscribe(h, "news", &b), 0);
    SN_ASSERT_RC(sn_hub_publish(h, "news", SN_WS_TEXT, "hello", 5, NULL, 0), 2);
    SN_ASSERT_RC(sn_hub_publish(h, "news", SN_WS_BINARY, "\0\1", 2, NULL, 0), 2);
    sn_hub_stats st;
    sn_hub_stats_get(h, &st);
    CU_ASSERT_EQUAL(st.messages, 2); /* one per message, shared by both */
    for (int i = 0; i < 2; i++) {
        sn_hub_sub *s = i ? b : a;
        sn_hub_msg *m;
        uint64_t seq;
        size_t len;
        SN_ASSERT_RC(sn_hub_sub_recv(s, &m, &seq, sn_deadline_in(1000)), 0);
        CU_ASSERT_EQUAL(seq, 1);
        CU_ASSERT_EQUAL(sn_hub_msg_type(m), SN_WS_TEXT);
        CU_ASSERT(memcmp(sn_hub_msg_data(m, &len), "hello", 5) == 0 && len == 5);
        sn_hub_msg_unref(m);
        SN_ASSERT_RC(sn_hub_sub_recv(s, &m, &seq, sn_deadline_in(1000)), 0);
        CU_ASSERT_EQUAL(seq, 2);
        CU_ASSERT_EQUAL(sn_hub_msg_type(m), SN_WS_BINARY);
        CU_ASSERT(memcmp(sn_hub_msg_data(m, &len), "\0\1", 2) == 0 && len == 2);
        sn_hub_msg_unref(m);
        int64_t t0 = sn_now_ms();
        SN_ASSERT_RC(sn_hub_sub_recv(s, &m, NULL, sn_deadline_in(50)), SN_ETIMEDOUT);
        CU_ASSERT(sn_now_ms() - t0 >= 45);
    }
    sn_hub_room_stats rs;
    SN_ASSERT_RC(sn_hub_room_stats_get(h, "news", &rs), 0);
    CU_ASSERT_EQUAL(rs.members, 2);
    CU_ASSERT_EQUAL(rs.seq, 2);
    CU_ASSERT_EQUAL(rs.delivered, 4);
    CU_ASSERT_EQUAL(rs.queued, 0);
    sn_hub_room_info info[4];
    CU_ASSERT_EQUAL(sn_hub_rooms(h, info, 4), 1);
    CU_ASSERT_STRING_EQUAL(info[0].name, "news");
    CU_ASSERT_EQUAL(info[0].members, 2);
    /* a message left queued is given back when its subscriber leaves */
    SN_ASSERT_RC(sn_hub_publish(h, "news", SN_WS_TEXT, "left", 4, NULL, 0), 2);
    sn_hub_unsubscribe(a);
    sn_hub_unsubscribe(b);
    SN_ASSERT_RC(sn_hub_room_stats_get(h, "news", &rs), SN_EHUB_NOROOM); /* gone when empty */
    hub_empty(h);
    sn_hub_free(h);
}

static void test_bad_arguments(void)
{
    sn_hub *h;
    sn_hub_config bad = {.room = {.close_code = 1000}};
    SN_ASSERT_RC(sn_hub_new(&h, &bad), SN_EINVAL);
    bad = (sn_hub_config){.room = {.policy = 9}};
    SN_ASSERT_RC(sn_hub_new(&h, &bad), SN_EINVAL);
    sn_hub_config c = {.max_message = 8};
    SN_ASSERT_RC(sn_hub_new(&h, &c), 0);
    sn_hub_sub *s;
    char name[SN_HUB_NAME_MAX + 2];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    SN_ASSERT_RC(sn_hub_subscribe(h, name, &s), SN_EINVAL);
    SN_ASSERT_RC(sn_hub_subscribe(h, "", &s), SN_EINVAL);
    SN_ASSERT_RC(sn_hub_subscribe(h, "r", &s), 0);
    SN_ASSERT_RC(sn_hub_publish(h, "r", SN_WS_TEXT, "123456789", 9, NULL, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_hub_publish(h, "r", SN_WS_PING, "1", 1, NULL, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_hub_publish(h, "r", SN_WS_TEXT, "12345678", 8, NULL, 0), 1);
    /* a masking session cannot share frames */
    peer p;
    peer_open(&p, false);
    p.ws->mask_out = true;
    SN_ASSERT_RC(sn_hub_join(h, "r", p.ws), SN_EINVAL);
    p.ws->mask_out = false;
    SN_ASSERT_RC(sn_hub_join(h, "r", p.ws), 0);
    SN_ASSERT_RC(sn_hub_join(h, "r", p.ws), SN_EEXIST);
    SN_ASSERT_RC(sn_hub_leave(h, "other", p.ws), SN_ENOENT);
    sn_hub *h2;
    SN_ASSERT_RC(sn_hub_new(&h2, NULL), 0);
    SN_ASSERT_RC(sn_hub_join(h2, "r", p.ws), SN_EBUSY); /* one hub per session */
    SN_ASSERT_RC(sn_hub_leave(h, "r", p.ws), 0);
    SN_ASSERT_RC(sn_hub_leave(h, "r", p.ws), SN_ENOENT);
    peer_close(&p);
    sn_hub_unsubscribe(s);
    hub_empty(h);
    sn_hub_free(h);
    sn_hub_free(h2);
}

/* ---- one order under many publishers ------------------------------------------------------ */

#define PUBLISHERS 8
static int PER_PUBLISHER = 1500; /* SN_TEST_QUICK (valgrind): fewer of everything */
#define SUBSCRIBERS 4

struct pub_arg {
    sn_hub *h;
    int id;
    int failures;
};

static void *publisher(void *arg)
{
    struct pub_arg *a = arg;
    for (int i = 0; i < PER_PUBLISHER; i++) {
        uint32_t v[2] = {(uint32_t)a->id, (uint32_t)i};
        if (sn_hub_publish(a->h, "order", SN_WS_BINARY, v, sizeof v, NULL, 0) != SUBSCRIBERS)
            a->failures++;
    }
    return NULL;
}

struct sub_arg {
    sn_hub_sub *s;
    uint32_t *got; /* publisher id << 16 | index, by sequence number - 1 */
    int errors;
};

static void *subscriber(void *arg)
{
    struct sub_arg *a = arg;
    int next[PUBLISHERS] = {0};
    for (uint64_t want = 1; want <= (uint64_t)PUBLISHERS * PER_PUBLISHER; want++) {
        sn_hub_msg *m;
        uint64_t seq;
        if (sn_hub_sub_recv(a->s, &m, &seq, sn_deadline_in(10000)) < 0) {
            a->errors++;
            return NULL;
        }
        const uint32_t *v = sn_hub_msg_data(m, NULL);
        if (seq != want || v[0] >= PUBLISHERS || v[1] != (uint32_t)next[v[0]]++)
            a->errors++; /* a gap, or a publisher's messages out of its order */
        a->got[seq - 1] = v[0] << 16 | v[1];
        sn_hub_msg_unref(m);
    }
    return NULL;
}

static void test_one_order_many_publishers(void)
{
    sn_hub *h;
    sn_hub_config c = {.room = {.policy = SN_HUB_WAIT, .max_queue = 64, .wait_ms = 10000}};
    SN_ASSERT_RC(sn_hub_new(&h, &c), 0);
    struct sub_arg subs[SUBSCRIBERS];
    pthread_t st[SUBSCRIBERS], pt[PUBLISHERS];
    for (int i = 0; i < SUBSCRIBERS; i++) {
        subs[i] = (struct sub_arg){.got = calloc(PUBLISHERS * PER_PUBLISHER, sizeof(uint32_t))};
        SN_ASSERT_RC(sn_hub_subscribe(h, "order", &subs[i].s), 0);
        CU_ASSERT_FATAL(pthread_create(&st[i], NULL, subscriber, &subs[i]) == 0);
    }
    struct pub_arg pubs[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++) {
        pubs[i] = (struct pub_arg){.h = h, .id = i};
        CU_ASSERT_FATAL(pthread_create(&pt[i], NULL, publisher, &pubs[i]) == 0);
    }
    for (int i = 0; i < PUBLISHERS; i++) {
        pthread_join(pt[i], NULL);
        CU_ASSERT_EQUAL(pubs[i].failures, 0);
    }
    for (int i = 0; i < SUBSCRIBERS; i++) {
        pthread_join(st[i], NULL);
        CU_ASSERT_EQUAL(subs[i].errors, 0);
        /* every subscriber saw the one order */
        CU_ASSERT(memcmp(subs[i].got, subs[0].got, (size_t)PUBLISHERS * PER_PUBLISHER * 4) == 0);
        sn_hub_member_stats ms;
        sn_hub_sub_stats_get(subs[i].s, &ms);
        CU_ASSERT_EQUAL(ms.delivered, (uint64_t)PUBLISHERS * PER_PUBLISHER);
        CU_ASSERT_EQUAL(ms.dropped, 0);
    }
    for (int i = 0; i < SUBSCRIBERS; i++) {
        sn_hub_unsubscribe(subs[i].s);
        free(subs[i].got);
    }
    hub_empty(h);
    sn_hub_free(h);
}

/* ---- policies, with pull subscriptions ---------------------------------------------------- */

static sn_hub *policy_hub(int policy, int wait_ms)
{
    sn_hub *h;
    sn_hub_config c = {.room = {.policy = policy, .max_queue = 4, .wait_ms = wait_ms}};
    SN_ASSERT_RC(sn_hub_new(&h, &c), 0);
    return h;
}

static void expect_numbers(sn_hub_sub *s, long from, long to)
{
    for (long want = from; want <= to; want++) {
        sn_hub_msg *m;
        SN_ASSERT_RC(sn_hub_sub_recv(s, &m, NULL, sn_deadline_in(1000)), 0);
        if (m == NULL)
            return;
        CU_ASSERT_EQUAL(strtol(sn_hub_msg_data(m, NULL), NULL, 10), want);
        sn_hub_msg_unref(m);
    }
}

static void test_policy_drop_oldest_newest(void)
{
    for (int policy = SN_HUB_DROP_OLDEST; policy <= SN_HUB_DROP_NEWEST; policy++) {
        sn_hub *h = policy_hub(policy, 0);
        sn_hub_sub *slow, *fast;
        SN_ASSERT_RC(sn_hub_subscribe(h, "r", &slow), 0);
        SN_ASSERT_RC(sn_hub_subscribe(h, "r", &fast), 0);
        for (long i = 1; i <= 10; i++) {
            publish_number(h, "r", i);
            expect_numbers(fast, i, i); /* one that keeps up loses nothing */
        }
        sn_hub_member_stats ms;
        sn_hub_sub_stats_get(slow, &ms);
        CU_ASSERT_EQUAL(ms.queued, 4);
        CU_ASSERT_EQUAL(ms.dropped, 6);
        if (policy == SN_HUB_DROP_OLDEST)
            expect_numbers(slow, 7, 10);
        else
            expect_numbers(slow, 1, 4);
        sn_hub_sub_stats_get(fast, &ms);
        CU_ASSERT_EQUAL(ms.delivered, 10);
        CU_ASSERT_EQUAL(ms.dropped, 0);
        sn_hub_unsubscribe(slow);
        sn_hub_unsubscribe(fast);
        hub_empty(h);
        sn_hub_free(h);
    }
}

static void test_policy_disconnect_pull(void)
{
    sn_hub *h = policy_hub(SN_HUB_DISCONNECT, 0);
    sn_hub_sub *slow;
    SN_ASSERT_RC(sn_hub_subscribe(h, "r", &slow), 0);
    for (long i = 1; i <= 4; i++)
        SN_ASSERT_RC(publish_number(h, "r", i), 1);
    SN_ASSERT_RC(publish_number(h, "r", 5), 0); /* the fifth finds it full */
    sn_hub_msg *m;
    SN_ASSERT_RC(sn_hub_sub_recv(slow, &m, NULL, sn_deadline_in(1000)), SN_EHUB_SLOW);
    SN_ASSERT_RC(sn_hub_sub_recv(slow, &m, NULL, sn_deadline_in(1000)), SN_EHUB_SLOW);
    sn_hub_member_stats ms;
    sn_hub_sub_stats_get(slow, &ms);
    CU_ASSERT(ms.disconnected);
    CU_ASSERT_EQUAL(ms.queued, 0);
    sn_hub_room_stats rs;
    SN_ASSERT_RC(sn_hub_room_stats_get(h, "r", &rs), 0);
    CU_ASSERT_EQUAL(rs.disconnected, 1);
    SN_ASSERT_RC(publish_number(h, "r", 6), 0); /* nothing more for it */
    sn_hub_unsubscribe(slow);
    hub_empty(h);
    sn_hub_free(h);
}

struct slow_reader {
    sn_hub_sub *s;
    int delay_ms, count;
    long last;
};

static void *slow_reader_main(void *arg)
{
    struct slow_reader *r = arg;
    for (int i = 0; i < r->count; i++) {
        sn_test_sleep_ms(r->delay_ms);
        sn_hub_msg *m;
        if (sn_hub_sub_recv(r->s, &m, NULL, sn_deadline_in(5000)) < 0)
            return NULL;
        r->last = strtol(sn_hub_msg_data(m, NULL), NULL, 10);
        sn_hub_msg_unref(m);
    }
    return NULL;
}

static void test_policy_wait(void)
{
    /* a slow reader: the publisher waits for it and nothing is lost */
    sn_hub *h = policy_hub(SN_HUB_WAIT, 5000);
    sn_hub_sub *s;
    SN_ASSERT_RC(sn_hub_subscribe(h, "r", &s), 0);
    struct slow_reader r = {.s = s, .delay_ms = 2, .count = 40};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, slow_reader_main, &r) == 0);
    for (long i = 1; i <= 40; i++)
        SN_ASSERT_RC(publish_number(h, "r", i), 1);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(r.last, 40);
    sn_hub_member_stats ms;
    sn_hub_sub_stats_get(s, &ms);
    CU_ASSERT_EQUAL(ms.dropped, 0);
    /* nobody reads: the publisher waits up to its deadline, then the
     * member misses the message */
    for (long i = 41; i <= 44; i++)
        SN_ASSERT_RC(publish_number(h, "r", i), 1);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_hub_publish(h, "r", SN_WS_TEXT, "45", 2, NULL, sn_deadline_in(100)),
                 SN_ETIMEDOUT);
    int64_t waited = sn_now_ms() - t0;
    CU_ASSERT(waited >= 90 && waited < 3000);
    sn_hub_sub_stats_get(s, &ms);
    CU_ASSERT_EQUAL(ms.dropped, 1);
    CU_ASSERT_EQUAL(ms.queued, 4);
    expect_numbers(s, 41, 44);
    sn_hub_unsubscribe(s);
    hub_empty(h);
    sn_hub_free(h);
}

/* ---- WebSocket members --------------------------------------------------------------------- */

struct reader {
    peer *p;
    long count;     /* messages expected */
    long got, last; /* received, the last number */
    int errors;     /* out of order */
    bool gaps_ok;   /* a slow member: numbers increase, with gaps */
    int timeout_ms; /* for each frame; 0 = 10000 */
    int end;        /* what ended the read: 0, or an error / -opcode */
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    r->last = 0;
    while (r->got < r->count) {
        char buf[128];
        int op;
        long n = read_frame(r->p->client, &op, buf, sizeof buf - 1,
                            r->timeout_ms ? r->timeout_ms : 10000);
        if (n < 0 || op != SN_WS_TEXT) {
            r->end = n < 0 ? (int)n : -op;
            break;
        }
        buf[n] = '\0';
        long v = strtol(buf, NULL, 10);
        if (r->gaps_ok ? v <= r->last : v != r->last + 1)
            r->errors++;
        r->last = v;
        r->got++;
    }
    return NULL;
}

static void test_ws_delivery_and_exclude(void)
{
    sn_hub *h;
    SN_ASSERT_RC(sn_hub_new(&h, NULL), 0);
    peer p[3];
    for (int i = 0; i < 3; i++) {
        peer_open(&p[i], false);
        SN_ASSERT_RC(sn_hub_join(h, "lobby", p[i].ws), 0);
    }
    SN_ASSERT_RC(sn_hub_join(h, "other", p[0].ws), 0);
    struct reader r[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct reader){.p = &p[i], .count = MANY};
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, reader_main, &r[i]) == 0);
    }
    for (long n = 1; n <= MANY; n++)
        SN_ASSERT_RC(publish_number(h, "lobby", n), 3);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(r[i].got, MANY);
        CU_ASSERT_EQUAL(r[i].errors, 0);
    }
    /* excluding the sender; a session in two rooms */
    SN_ASSERT_RC(sn_hub_publish(h, "lobby", SN_WS_TEXT, "x 1", 3, p[0].ws, 0), 2);
    SN_ASSERT_RC(sn_hub_publish(h, "other", SN_WS_TEXT, "y 2", 3, NULL, 0), 1);
    CU_ASSERT_EQUAL(read_number(p[1].client, 1000), 1);
    CU_ASSERT_EQUAL(read_number(p[2].client, 1000), 1);
    CU_ASSERT_EQUAL(read_number(p[0].client, 1000), 2); /* not its own "x 1" */
    SN_ASSERT_RC(sn_hub_publish_all(h, SN_WS_TEXT, "z 3", 3, NULL, 0), 4);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(read_number(p[i].client, 1000), 3);
    CU_ASSERT_EQUAL(read_number(p[0].client, 1000), 3); /* in both rooms */
    sn_hub_room_stats rs;
    SN_ASSERT_RC(sn_hub_room_stats_get(h, "lobby", &rs), 0);
    CU_ASSERT_EQUAL(rs.delivered, (uint64_t)(3 * MANY + 2 + 3));
    CU_ASSERT(rs.direct > 0);
    sn_hub_member_stats ms;
    SN_ASSERT_RC(sn_hub_member_stats_get(h, "lobby", p[1].ws, &ms), 0);
    CU_ASSERT_EQUAL(ms.delivered, (uint64_t)(MANY + 2));
    sn_hub_stats hs;
    sn_hub_stats_get(h, &hs);
    CU_ASSERT_EQUAL(hs.sessions, 3);
    CU_ASSERT_EQUAL(hs.members, 4);
    for (int i = 0; i < 3; i++)
        peer_close(&p[i]); /* leaves by itself */
    hub_empty(h);
    sn_hub_free(h);
}

/* A big room publishing fast is flushed by the writer threads, many frames
 * per write: still everything, in order, with a slow member in it. */
#define BIG 24
static void test_ws_big_room_batched(void)
{
    sn_hub *h;
    sn_hub_config c = {.writers = 2, .room = {.max_queue = 8}};
    SN_ASSERT_RC(sn_hub_new(&h, &c), 0);
    peer p[BIG], slow;
    struct reader r[BIG];
    pthread_t t[BIG];
    peer_open(&slow, true);
    SN_ASSERT_RC(sn_hub_join(h, "big", slow.ws), 0);
    for (int i = 0; i < BIG; i++) {
        peer_open(&p[i], false);
        SN_ASSERT_RC(sn_hub_join(h, "big", p[i].ws), 0);
    }
    for (int i = 0; i < BIG; i++) {
        r[i] = (struct reader){.p = &p[i], .count = MANY};
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, reader_main, &r[i]) == 0);
    }
    for (long n = 1; n <= MANY; n++) {
        SN_ASSERT_RC(publish_number(h, "big", n), BIG + 1);
        if (n % 8 == 0) /* keep the readers' pace: the fast members never fill */
            sn_test_sleep_ms(1);
    }
    sn_hub_room_stats rs;
    SN_ASSERT_RC(sn_hub_room_stats_get(h, "big", &rs), 0);
    for (int i = 0; i < BIG; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(r[i].got, MANY);
        CU_ASSERT_EQUAL(r[i].errors, 0);
    }
    CU_ASSERT(rs.direct < rs.delivered); /* the writers' flushes took part */
    sn_hub_member_stats ms;
    SN_ASSERT_RC(sn_hub_member_stats_get(h, "big", slow.ws, &ms), 0);
    CU_ASSERT(ms.dropped > 0);
    CU_ASSERT(ms.queued <= 8);
    for (int i = 0; i < BIG; i++)
        peer_close(&p[i]);
    peer_close(&slow);
    hub_empty(h);
    sn_hub_free(h);
}

static long SLOW_COUNT = 5000;

/* One member stops reading; the others get everything, in order. */
static void slow_member(int policy, sn_hub_member_stats *slow_stats, peer *slow)
{
    sn_hub *h;
    sn_hub_config c = {.room = {.policy = policy, .max_queue = 16}};
    SN_ASSERT_RC(sn_hub_new(&h, &c), 0);
    peer p[3];
    struct reader r[3];
    pthread_t t[3];
    peer_open(slow, true);
    SN_ASSERT_RC(sn_hub_join(h, "r", slow->ws), 0);
    for (int i = 0; i < 3; i++) {
        peer_open(&p[i], false);
        SN_ASSERT_RC(sn_hub_join(h, "r", p[i].ws), 0);
        r[i] = (struct reader){.p = &p[i], .count = SLOW_COUNT};
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, reader_main, &r[i]) == 0);
    }
    char pad[200];
    memset(pad, '.', sizeof pad);
    for (long n = 1; n <= SLOW_COUNT; n++) {
        char text[256];
        int len = snprintf(text, sizeof text, "%ld %.*s", n, 100, pad);
        int rc = sn_hub_publish(h, "r", SN_WS_TEXT, text, (size_t)len, NULL, 0);
        CU_ASSERT(rc >= 3);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(r[i].got, SLOW_COUNT);
        CU_ASSERT_EQUAL(r[i].errors, 0);
    }
    SN_ASSERT_RC(sn_hub_member_stats_get(h, "r", slow->ws, slow_stats), 0);
    CU_ASSERT(slow_stats->queued <= 16);
    for (int i = 0; i < 3; i++)
        peer_close(&p[i]);
    /* the slow one reads again: what is left comes in increasing order */
    struct reader sr = {.p = slow, .count = SLOW_COUNT, .gaps_ok = true, .timeout_ms = 500};
    reader_main(&sr);
    CU_ASSERT_EQUAL(sr.errors, 0);
    if (policy == SN_HUB_DROP_OLDEST)
        CU_ASSERT_EQUAL(sr.last, SLOW_COUNT); /* the newest survive */
    if (policy == SN_HUB_DISCONNECT)
        CU_ASSERT(sr.end == SN_EOF || sr.end == -SN_WS_CLOSE || sr.end == SN_ECONNRESET);
    peer_close(slow);
    hub_empty(h);
    sn_hub_free(h);
}

static void test_ws_slow_member_drop_oldest(void)
{
    sn_hub_member_stats ms;
    peer slow;
    slow_member(SN_HUB_DROP_OLDEST, &ms, &slow);
    CU_ASSERT(ms.dropped > 0);
    CU_ASSERT(!ms.disconnected);
}

static void test_ws_slow_member_drop_newest(void)
{
    sn_hub_member_stats ms;
    peer slow;
    slow_member(SN_HUB_DROP_NEWEST, &ms, &slow);
    CU_ASSERT(ms.dropped > 0);
}

static void test_ws_slow_member_disconnect(void)
{
    sn_hub_member_stats ms;
    peer slow;
    slow_member(SN_HUB_DISCONNECT, &ms, &slow);
    CU_ASSERT(ms.disconnected);
    CU_ASSERT_EQUAL(ms.queued, 0);
}

/* A member that reads slowly under SN_HUB_WAIT loses nothing. */
static void test_ws_wait_no_loss(void)
{
    sn_hub *h;
    sn_hub_config c = {.room = {.policy = SN_HUB_WAIT, .max_queue = 8, .wait_ms = 10000}};
    SN_ASSERT_RC(sn_hub_new(&h, &c), 0);
    peer p;
    peer_open(&p, true);
    SN_ASSERT_RC(sn_hub_join(h, "r", p.ws), 0);
    struct reader r = {.p = &p, .count = MANY};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, reader_main, &r) == 0);
    char pad[600];
    memset(pad, '.', sizeof pad);
    for (long n = 1; n <= MANY; n++) {
        char text[700];
        int len = snprintf(text, sizeof text, "%ld %s", n, n % 7 ? "" : "x");
        SN_ASSERT_RC(sn_hub_publish(h, "r", SN_WS_TEXT, text, (size_t)len, NULL, 0), 1);
    }
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(r.got, MANY);
    CU_ASSERT_EQUAL(r.errors, 0);
    peer_close(&p);
    hub_empty(h);
    sn_hub_free(h);
}

/* SN_HUB_DISCONNECT: the close frame goes out once the session's lock is
 * free; a peer that reads nothing has its connection cut after
 * close_timeout_ms. */
static void test_ws_disconnect_close(void)
{
    sn_hub *h;
    sn_hub_config c = {.room = {.policy = SN_HUB_DISCONNECT, .max_queue = 1, .close_code = 1008},
                       .close_timeout_ms = 300};
    SN_ASSERT_RC(sn_hub_new(&h, &c), 0);
    peer p;
    peer_open(&p, false);
    SN_ASSERT_RC(sn_hub_join(h, "r", p.ws), 0);
    sn__lock_take(&p.ws->msg_lock); /* another sender holds the session */
    SN_ASSERT_RC(publish_number(h, "r", 1), 1);
    sn_hub_member_stats ms;
    SN_ASSERT_RC(sn_hub_member_stats_get(h, "r", p.ws, &ms), 0);
    CU_ASSERT_EQUAL(ms.queued, 1);
    SN_ASSERT_RC(publish_number(h, "r", 2), 0); /* full: disconnected */
    sn__lock_give(&p.ws->msg_lock);
    int op;
    char buf[16];
    long n = read_frame(p.client, &op, buf, sizeof buf, 2000);
    CU_ASSERT(n == 2 && op == SN_WS_CLOSE && (uint8_t)buf[0] == 1008 >> 8 &&
              (uint8_t)buf[1] == (1008 & 0xff));
    SN_ASSERT_RC(publish_number(h, "r", 3), 0); /* nothing more for it */
    peer_close(&p);

    /* a peer that stops reading: the backlog, then the end, no close */
    peer_open(&p, true);
    SN_ASSERT_RC(sn_hub_join(h, "r", p.ws), 0);
    char big[1000];
    memset(big, 'x', sizeof big);
    ms.disconnected = false;
    for (int i = 0; i < 100000 && !ms.disconnected; i++) {
        sn_hub_publish(h, "r", SN_WS_TEXT, big, sizeof big, NULL, 0);
        SN_ASSERT_RC(sn_hub_member_stats_get(h, "r", p.ws, &ms), 0);
    }
    CU_ASSERT(ms.disconnected);
    sn_test_sleep_ms(600);
    char frame[1100];
    int frames = 0;
    while ((n = read_frame(p.client, &op, frame, sizeof frame, 2000)) >= 0 && op == SN_WS_TEXT)
        frames++;
    CU_ASSERT(frames > 0);
    /* the end: cut, or the close when the socket took it in time */
    CU_ASSERT(n == SN_EOF || n == SN_ECONNRESET || (n == 2 && op == SN_WS_CLOSE));
    peer_close(&p);
    hub_empty(h);
    sn_hub_free(h);
}

/* ---- leaving and closing mid-broadcast, many threads --------------------------------------- */

#define CHURNERS 8
static int CHURN_ROUNDS = 60;

struct churn {
    sn_hub *h;
    int id;
    atomic_bool *stop;
    int errors;
};

static void *churn_publisher(void *arg)
{
    struct churn *c = arg;
    char room[16];
    for (long n = 0; !atomic_load(c->stop) && n < 2000000; n++) {
        snprintf(room, sizeof room, "room%ld", n % 3);
        int rc = publish_number(c->h, room, n);
        if (rc < 0 && rc != SN_EHUB_NOROOM && rc != SN_ETIMEDOUT)
            c->errors++;
        if (n % 64 == 0)
            sn_hub_publish_all(c->h, SN_WS_TEXT, "all", 3, NULL, 0);
    }
    return NULL;
}

static void *churn_member(void *arg)
{
    struct churn *c = arg;
    for (int round = 0; round < CHURN_ROUNDS; round++) {
        peer p;
        peer_open(&p, round % 2 == 0);
        char room[16];
        snprintf(room, sizeof room, "room%d", (c->id + round) % 3);
        if (sn_hub_join(c->h, room, p.ws) < 0)
            c->errors++;
        sn_hub_join(c->h, "room0", p.ws); /* may be there already */
        char buf[256];
        int op;
        for (int i = 0; i < 5; i++)
            read_frame(p.client, &op, buf, sizeof buf, 20);
        if (round % 3 == 0)
            sn_hub_leave(c->h, room, p.ws); /* explicitly, the rest by closing */
        sn_hub_sub *s;
        if (sn_hub_subscribe(c->h, room, &s) == 0) {
            sn_hub_msg *m;
            if (sn_hub_sub_recv(s, &m, NULL, sn_deadline_in(5)) == 0)
                sn_hub_msg_unref(m);
            sn_hub_unsubscribe(s);
        }
        peer_close(&p); /* mid-broadcast */
    }
    return NULL;
}

static void churn(int policy)
{
    sn_hub *h;
    sn_hub_config cfg = {.room = {.policy = policy, .max_queue = 8, .wait_ms = 5}, .writers = 3};
    SN_ASSERT_RC(sn_hub_new(&h, &cfg), 0);
    atomic_bool stop = false;
    struct churn pubs[4], mems[CHURNERS];
    pthread_t pt[4], mt[CHURNERS];
    for (int i = 0; i < 4; i++) {
        pubs[i] = (struct churn){.h = h, .id = i, .stop = &stop};
        CU_ASSERT_FATAL(pthread_create(&pt[i], NULL, churn_publisher, &pubs[i]) == 0);
    }
    for (int i = 0; i < CHURNERS; i++) {
        mems[i] = (struct churn){.h = h, .id = i, .stop = &stop};
        CU_ASSERT_FATAL(pthread_create(&mt[i], NULL, churn_member, &mems[i]) == 0);
    }
    for (int i = 0; i < CHURNERS; i++) {
        pthread_join(mt[i], NULL);
        CU_ASSERT_EQUAL(mems[i].errors, 0);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++) {
        pthread_join(pt[i], NULL);
        CU_ASSERT_EQUAL(pubs[i].errors, 0);
    }
    hub_empty(h);
    sn_hub_free(h);
}

static void test_churn_drop_oldest(void)
{
    churn(SN_HUB_DROP_OLDEST);
}

static void test_churn_disconnect(void)
{
    churn(SN_HUB_DISCONNECT);
}

static void test_churn_wait(void)
{
    churn(SN_HUB_WAIT);
}

static CU_TestInfo tests[] = {
    {"pull basics", test_pull_basics},
    {"bad arguments", test_bad_arguments},
    {"one order, many publishers", test_one_order_many_publishers},
    {"policy: drop oldest, drop newest", test_policy_drop_oldest_newest},
    {"policy: disconnect (pull)", test_policy_disconnect_pull},
    {"policy: wait", test_policy_wait},
    {"sessions: delivery, exclude, two rooms", test_ws_delivery_and_exclude},
    {"sessions: a big room, batched", test_ws_big_room_batched},
    {"sessions: slow member, drop oldest", test_ws_slow_member_drop_oldest},
    {"sessions: slow member, drop newest", test_ws_slow_member_drop_newest},
    {"sessions: slow member, disconnect", test_ws_slow_member_disconnect},
    {"sessions: wait, no loss", test_ws_wait_no_loss},
    {"sessions: disconnect, the close frame", test_ws_disconnect_close},
    {"churn: drop oldest", test_churn_drop_oldest},
    {"churn: disconnect", test_churn_disconnect},
    {"churn: wait", test_churn_wait},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    const char *q = getenv("SN_TEST_QUICK");
    if (q != NULL && *q != '\0' && *q != '0') {
        PER_PUBLISHER = 150;
        CHURN_ROUNDS = 6;
        SLOW_COUNT = 1500;
        MANY = 500;
    }
    return sn_test_main("hub", tests, 600);
}
