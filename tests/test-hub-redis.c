/* SPDX-License-Identifier: MIT */
/*
 * test-hub-redis.c: rooms across servers, on a real redis-server this test
 * starts on a free loopback port (and kills, restarts, pauses and
 * reconfigures): three hubs in this process, each with its own Redis
 * engine, stand for three servers. Every test checks the promises of
 * socknet/hub.h: the same (epoch, number) -> message map and the same
 * order on every hub, nothing twice, and whatever was lost signalled.
 * Skips (77) when libsocknet was built without hiredis or there is no
 * redis-server.
 */
#include <stdio.h>
#include "sn_test.h"

#ifndef SN_HAVE_HIREDIS
int main(void)
{
    fprintf(stderr, "libsocknet was built without hiredis: skipped\n");
    return 77;
}
#else

#include <hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sn_hub_engine.h"
#include "sn_hub_redis.h"
#include "sn_test.h"
#include "sn_ws_int.h"
#include "ws-peer.h"

#define HUBS 3

/* The engines' probe timeout: 1 s, longer where the test runs slowly
 * (valgrind, a sanitizer), so that a slow engine is not taken for a deaf
 * connection; the DEBUG SLEEP test sleeps past it. */
static int PROBE_TIMEOUT = 1000;
static int FAULT_PER = 400; /* messages per publisher (one per hub) in the fault tests */

/* ---- a redis-server of the test's own -------------------------------------------- */

static int redis_port;
static pid_t redis_pid = -1;
static char redis_dir[256];

static redisContext *redis_ctl(void)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    if (c != NULL && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Runs a command on a connection of its own; returns the reply (the
 * caller frees it) or NULL. */
static redisReply *redis_cmd(const char *fmt, ...)
{
    redisContext *c = redis_ctl();
    if (c == NULL)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static void redis_do(const char *cmd)
{
    redisReply *r = redis_cmd(cmd); /* its words are the arguments */
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "redis: %s: %s\n", cmd, r != NULL ? r->str : "no answer");
    freeReplyObject(r);
}

static bool redis_up(void)
{
    redisReply *r = redis_cmd("PING");
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok;
}

/* Starts redis-server on redis_port (no persistence: a restart forgets
 * every room, a new epoch). */
static bool redis_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", redis_dir, "--enable-debug-command", "yes",
               "--loglevel", "warning", "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return false;
    redis_pid = pid;
    for (int i = 0; i < 500 && !redis_up(); i++)
        sn_test_sleep_ms(10);
    return redis_up();
}

static void redis_kill(void)
{
    if (redis_pid <= 0)
        return;
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = -1;
}

/* ---- hubs ------------------------------------------------------------------------- */

static int next_rcvbuf; /* for the next hub_new's subscriber connection */

/* A hub on the test's Redis: history as the engine's, rooms set by
 * room_fn (NULL: none), queues with room for a whole test's messages. */
static sn_hub *hub_make(size_t history, sn_hub_room_fn room_fn)
{
    sn_hub_engine *e;
    sn_hub_redis_config rc = {.port = (uint16_t)redis_port,
                              .history = history,
                              .probe_ms = 200,
                              .probe_timeout_ms = PROBE_TIMEOUT,
                              .backoff_min_ms = 20,
                              .backoff_max_ms = 200};
    SN_ASSERT_RC(sn_hub_redis_new(&e, &rc), 0);
    if (next_rcvbuf > 0)
        sn__hub_redis_rcvbuf(e, next_rcvbuf);
    next_rcvbuf = 0;
    sn_hub *h;
    /* the tests read after the publishers are done: room for all */
    sn_hub_config hc = {
        .engine = e, .room = {.max_queue = 100000, .max_queue_bytes = 1 << 30}, .room_fn = room_fn};
    SN_ASSERT_RC(sn_hub_new(&h, &hc), 0);
    return h;
}

static sn_hub *hub_new(void)
{
    return hub_make(0, NULL);
}

static sn_hub_engine_stats engine_stats(sn_hub *h)
{
    sn_hub_engine_stats st;
    sn_hub_engine_stats_get(h, &st);
    return st;
}

static bool engine_up(sn_hub *h)
{
    sn_hub_engine_stats st;
    sn_hub_engine_stats_get(h, &st);
    return st.up;
}

static bool room_synced(sn_hub *h, const char *room)
{
    sn_hub_room_stats st;
    return sn_hub_room_stats_get(h, room, &st) == 0 && st.synced;
}

/* What a subscription received: (epoch, seq) and the payload, in order. */
typedef struct got {
    uint64_t *epoch, *seq;
    char **text;
    bool *gap_before; /* a gap was signalled just before it */
    size_t n, cap;
    size_t gaps;
    bool gap_next;
} got;

static void got_add(got *g, uint64_t epoch, uint64_t seq, const char *text)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 256;
        g->epoch = realloc(g->epoch, g->cap * sizeof *g->epoch);
        g->seq = realloc(g->seq, g->cap * sizeof *g->seq);
        g->text = realloc(g->text, g->cap * sizeof *g->text);
        g->gap_before = realloc(g->gap_before, g->cap * sizeof *g->gap_before);
    }
    g->gap_before[g->n] = g->gap_next;
    g->gap_next = false;
    g->epoch[g->n] = epoch;
    g->seq[g->n] = seq;
    g->text[g->n] = strdup(text);
    g->n++;
}

static void got_free(got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->text[i]);
    free(g->epoch);
    free(g->seq);
    free(g->text);
    free(g->gap_before);
    *g = (got){0};
}

/* Takes what the subscription has until `want` messages came or ms
 * passed with nothing new. */
static void drain(sn_hub_sub *s, got *g, size_t want, int ms)
{
    while (g->n < want) {
        sn_hub_msg *m;
        uint64_t seq;
        int rc = sn_hub_sub_recv(s, &m, &seq, sn_deadline_in(ms));
        if (rc == SN_EHUB_GAP) {
            g->gaps++;
            g->gap_next = true;
            continue;
        }
        if (rc < 0)
            break;
        got_add(g, sn_hub_msg_epoch(m), seq, sn_hub_msg_data(m, NULL));
        sn_hub_msg_unref(m);
    }
}

/* Every (epoch, seq) once, in increasing order within an epoch. */
static void check_order(const got *g)
{
    for (size_t i = 1; i < g->n; i++)
        if (g->epoch[i] == g->epoch[i - 1] && g->seq[i] <= g->seq[i - 1]) {
            fprintf(stderr, "out of order at %zu: %" PRIu64 " after %" PRIu64 "\n", i, g->seq[i],
                    g->seq[i - 1]);
            CU_FAIL("out of order or twice");
            return;
        }
}

/* Lost == signalled: every number that is missing (a jump, or a new
 * epoch) comes right after a gap. */
static void check_signalled(const got *g)
{
    for (size_t i = 1; i < g->n; i++) {
        bool next = g->epoch[i] == g->epoch[i - 1] && g->seq[i] == g->seq[i - 1] + 1;
        if (!next && !g->gap_before[i]) {
            fprintf(stderr,
                    "lost in silence before %zu: %" PRIu64 ":%" PRIu64 " after %" PRIu64 ":%" PRIu64
                    "\n",
                    i, g->epoch[i], g->seq[i], g->epoch[i - 1], g->seq[i - 1]);
            CU_FAIL("messages lost without a gap");
            return;
        }
    }
}

/* Where two hubs saw the same (epoch, number), they saw the same message,
 * and in the same order. */
static void check_agree(const got *a, const got *b)
{
    size_t j = 0;
    for (size_t i = 0; i < a->n; i++) {
        for (j = 0; j < b->n && (b->epoch[j] != a->epoch[i] || b->seq[j] != a->seq[i]); j++)
            ;
        if (j < b->n && strcmp(a->text[i], b->text[j]) != 0) {
            fprintf(stderr, "%" PRIu64 ":%" PRIu64 " is %s on one hub, %s on another\n",
                    a->epoch[i], a->seq[i], a->text[i], b->text[j]);
            CU_FAIL("one number, two messages");
            return;
        }
    }
}

/* Whether a message a publisher was told went through reached g. */
static bool got_has(const got *g, const char *text)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->text[i], text) == 0)
            return true;
    return false;
}

/* Two subscriptions saw the same messages under the same numbers, in the
 * same order. */
static void check_same(const got *a, const got *b)
{
    CU_ASSERT_EQUAL(a->n, b->n);
    for (size_t i = 0; i < a->n && i < b->n; i++)
        if (a->epoch[i] != b->epoch[i] || a->seq[i] != b->seq[i] ||
            strcmp(a->text[i], b->text[i]) != 0) {
            fprintf(stderr, "differ at %zu: %" PRIu64 "/%s and %" PRIu64 "/%s\n", i, a->seq[i],
                    a->text[i], b->seq[i], b->text[i]);
            CU_FAIL("two hubs saw different messages or orders");
            return;
        }
}

/* ---- publishers ------------------------------------------------------------------- */

typedef struct pub {
    sn_hub *h;
    const char *room;
    int id, count;
    int ok, down, other;
} pub;

static void *pub_main(void *arg)
{
    pub *p = arg;
    for (int i = 0; i < p->count; i++) {
        char text[64];
        snprintf(text, sizeof text, "p%d-%d", p->id, i);
        int rc = sn_hub_publish(p->h, p->room, SN_WS_TEXT, text, strlen(text), NULL,
                                SN_DEADLINE_DEFAULT);
        if (rc == 0)
            p->ok++;
        else if (rc == SN_EHUB_DOWN || rc == SN_ETIMEDOUT)
            p->down++;
        else
            p->other++;
    }
    return NULL;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_one_order(void)
{
    sn_hub *h[HUBS];
    sn_hub_sub *s[HUBS];
    for (int i = 0; i < HUBS; i++) {
        h[i] = hub_new();
        SN_ASSERT_RC(sn_hub_subscribe(h[i], "lobby", &s[i]), 0);
    }
    for (int i = 0; i < HUBS; i++)
        WAIT_UNTIL(room_synced(h[i], "lobby"), 5000);
    for (int i = 0; i < HUBS; i++)
        CU_ASSERT(room_synced(h[i], "lobby"));
    const size_t PER = (size_t)FAULT_PER * 3 / 4;
    pub p[HUBS * 2];
    pthread_t t[HUBS * 2];
    for (int i = 0; i < HUBS * 2; i++) {
        p[i] = (pub){.h = h[i % HUBS], .room = "lobby", .id = i, .count = (int)PER};
        pthread_create(&t[i], NULL, pub_main, &p[i]);
    }
    for (int i = 0; i < HUBS * 2; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL((size_t)p[i].ok, PER);
    }
    got g[HUBS] = {{0}};
    for (int i = 0; i < HUBS; i++) {
        drain(s[i], &g[i], HUBS * 2 * PER, 3000);
        if (g[i].n != HUBS * 2 * PER)
            fprintf(stderr, "hub %d: %zu messages (%" PRIu64 "..%" PRIu64 "), %zu gaps\n", i,
                    g[i].n, g[i].n ? g[i].seq[0] : 0, g[i].n ? g[i].seq[g[i].n - 1] : 0, g[i].gaps);
        CU_ASSERT_EQUAL(g[i].n, HUBS * 2 * PER);
        CU_ASSERT_EQUAL(g[i].gaps, 0);
        check_order(&g[i]);
    }
    for (int i = 1; i < HUBS; i++)
        check_same(&g[0], &g[i]);
    sn_hub_engine_stats st;
    sn_hub_engine_stats_get(h[0], &st);
    CU_ASSERT(st.up);
    CU_ASSERT_EQUAL(st.published, 2 * PER);
    CU_ASSERT_EQUAL(st.gaps, 0);
    for (int i = 0; i < HUBS; i++) {
        got_free(&g[i]);
        sn_hub_unsubscribe(s[i]);
        sn_hub_free(h[i]);
    }
}

/* Rooms named local-* stay on their server. */
static void local_rooms(const char *room, sn_hub_room_config *cfg, void *user)
{
    (void)user;
    cfg->local = strncmp(room, "local-", 6) == 0;
}

static void publish_n(sn_hub *h, const char *room, int from, int n, int want)
{
    for (int i = from; i < from + n; i++) {
        char text[32];
        snprintf(text, sizeof text, "m%d", i);
        SN_ASSERT_RC(
            sn_hub_publish(h, room, SN_WS_TEXT, text, strlen(text), NULL, SN_DEADLINE_DEFAULT),
            want);
    }
}

/* kill -9 of Redis, and its restart: publishing fails at once meanwhile,
 * local rooms go on, members stay; after the restart the room's numbers
 * begin again (a new epoch), which every member is told (a gap). */
static void test_redis_restart(void)
{
    sn_hub *h = hub_make(0, local_rooms);
    sn_hub *h2 = hub_new();
    sn_hub_sub *s, *s2, *loc;
    SN_ASSERT_RC(sn_hub_subscribe(h, "restart", &s), 0);
    SN_ASSERT_RC(sn_hub_subscribe(h2, "restart", &s2), 0);
    SN_ASSERT_RC(sn_hub_subscribe(h, "local-x", &loc), 0);
    WAIT_UNTIL(room_synced(h, "restart") && room_synced(h2, "restart"), 5000);
    publish_n(h, "restart", 0, 10, 0);
    got a = {0}, b = {0};
    drain(s, &a, 10, 3000);
    drain(s2, &b, 10, 3000);
    CU_ASSERT_EQUAL(a.n, 10);
    uint64_t epoch1 = a.n > 0 ? a.epoch[0] : 0;

    redis_kill();
    WAIT_UNTIL(!engine_up(h), 3000);
    CU_ASSERT(!engine_up(h));
    publish_n(h, "restart", 10, 3, SN_EHUB_DOWN); /* at once, not after a timeout */
    SN_ASSERT_RC(sn_hub_publish(h, "local-x", SN_WS_TEXT, "here", 4, NULL, SN_DEADLINE_DEFAULT), 1);
    sn_hub_msg *m;
    SN_ASSERT_RC(sn_hub_sub_recv(loc, &m, NULL, sn_deadline_in(1000)), 0);
    sn_hub_msg_unref(m);

    CU_ASSERT(redis_start());
    WAIT_UNTIL(engine_up(h) && engine_up(h2) && room_synced(h, "restart") &&
                   room_synced(h2, "restart"),
               5000);
    CU_ASSERT(engine_up(h));
    publish_n(h2, "restart", 100, 10, 0);
    drain(s, &a, 20, 3000);
    drain(s2, &b, 20, 3000);
    CU_ASSERT_EQUAL(a.n, 20);
    CU_ASSERT_EQUAL(a.gaps, 1); /* said once, in its place */
    CU_ASSERT_EQUAL(b.gaps, 1);
    check_order(&a);
    check_same(&a, &b);
    if (a.n == 20) {
        CU_ASSERT_NOT_EQUAL(a.epoch[10], epoch1);
        CU_ASSERT_EQUAL(a.seq[10], 1);
    }
    sn_hub_room_stats st;
    SN_ASSERT_RC(sn_hub_room_stats_get(h, "restart", &st), 0);
    CU_ASSERT_EQUAL(st.gaps, 1);
    got_free(&a);
    got_free(&b);
    sn_hub_unsubscribe(s);
    sn_hub_unsubscribe(s2);
    sn_hub_unsubscribe(loc);
    sn_hub_free(h);
    sn_hub_free(h2);
    redis_do("FLUSHALL");
}

/* ---- WebSocket members ----------------------------------------------------------- */

/* A frame's payload as a string: ws-peer.h's read_frame, NUL-terminated. */
static long read_text(sn_conn *c, int *op, char *buf, size_t cap, int ms)
{
    long n = read_frame(c, op, buf, cap - 1, ms);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* Sessions on two hubs: what one publishes reaches the members on both,
 * the sender's own server included, but not the excluded sender; a new
 * epoch (Redis restarted) closes them with 1012. */
static void test_ws_members(void)
{
    sn_hub *h[2] = {hub_new(), hub_new()};
    peer p[4];
    for (int i = 0; i < 4; i++) {
        peer_open(&p[i], false);
        SN_ASSERT_RC(sn_hub_join(h[i % 2], "ws", p[i].ws), 0);
    }
    WAIT_UNTIL(room_synced(h[0], "ws") && room_synced(h[1], "ws"), 5000);
    SN_ASSERT_RC(sn_hub_publish(h[0], "ws", SN_WS_TEXT, "one", 3, NULL, SN_DEADLINE_DEFAULT), 0);
    SN_ASSERT_RC(sn_hub_publish(h[1], "ws", SN_WS_TEXT, "two", 3, p[1].ws, SN_DEADLINE_DEFAULT), 0);
    char buf[64];
    int op;
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(read_text(p[i].client, &op, buf, sizeof buf, 3000), 3);
        CU_ASSERT_STRING_EQUAL(buf, "one");
        if (i != 1) { /* p[1] sent "two", excluding itself */
            CU_ASSERT_EQUAL(read_text(p[i].client, &op, buf, sizeof buf, 3000), 3);
            CU_ASSERT_STRING_EQUAL(buf, "two");
        }
    }
    CU_ASSERT_EQUAL(read_text(p[1].client, &op, buf, sizeof buf, 200), SN_ETIMEDOUT);

    redis_kill();
    CU_ASSERT(redis_start());
    WAIT_UNTIL(engine_up(h[0]) && engine_up(h[1]) && room_synced(h[0], "ws") &&
                   room_synced(h[1], "ws"),
               5000);
    for (int i = 0; i < 4; i++) { /* a new epoch: every member is told */
        CU_ASSERT_EQUAL(read_text(p[i].client, &op, buf, sizeof buf, 3000), 2);
        CU_ASSERT_EQUAL(op, SN_WS_CLOSE);
        CU_ASSERT_EQUAL(((uint8_t)buf[0] << 8) | (uint8_t)buf[1], SN_WS_SERVICE_RESTART);
    }
    sn_hub_room_stats st;
    SN_ASSERT_RC(sn_hub_room_stats_get(h[0], "ws", &st), 0);
    CU_ASSERT_EQUAL(st.gaps, 1);
    for (int i = 0; i < 4; i++)
        peer_close(&p[i]);
    sn_hub_free(h[0]);
    sn_hub_free(h[1]);
    redis_do("FLUSHALL");
}

/* A join while Redis is down completes when it is back; a publish to the
 * room meanwhile says Redis is down. */
static void test_join_while_down(void)
{
    redis_kill();
    sn_hub *h = hub_new();
    sn_hub_sub *s;
    SN_ASSERT_RC(sn_hub_subscribe(h, "later", &s), 0);
    SN_ASSERT_RC(sn_hub_publish(h, "later", SN_WS_TEXT, "x", 1, NULL, SN_DEADLINE_DEFAULT),
                 SN_EHUB_DOWN);
    CU_ASSERT(!room_synced(h, "later"));
    CU_ASSERT(redis_start());
    WAIT_UNTIL(room_synced(h, "later"), 5000);
    CU_ASSERT(room_synced(h, "later"));
    SN_ASSERT_RC(sn_hub_publish(h, "later", SN_WS_TEXT, "y", 1, NULL, SN_DEADLINE_DEFAULT), 0);
    sn_hub_msg *m;
    uint64_t seq;
    SN_ASSERT_RC(sn_hub_sub_recv(s, &m, &seq, sn_deadline_in(3000)), 0); /* no gap: a new join */
    CU_ASSERT_EQUAL(seq, 1);
    sn_hub_msg_unref(m);
    /* a room with no member here is published to all the same */
    SN_ASSERT_RC(sn_hub_publish(h, "nobody-here", SN_WS_TEXT, "z", 1, NULL, SN_DEADLINE_DEFAULT),
                 0);
    sn_hub_unsubscribe(s);
    sn_hub_free(h);
    redis_do("FLUSHALL");
}

/* Redis restarts in the middle of a join (after the subscription, before
 * or while the baseline is read): the join completes on the new Redis. */
static void test_restart_during_join(void)
{
    sn_hub *h = hub_new(), *h2 = hub_new();
    WAIT_UNTIL(engine_up(h) && engine_up(h2), 5000);
    sn_hub_sub *s, *s2;
    SN_ASSERT_RC(sn_hub_subscribe(h, "j", &s), 0);
    redis_kill(); /* the SUBSCRIBE or the HMGET is on its way */
    CU_ASSERT(redis_start());
    SN_ASSERT_RC(sn_hub_subscribe(h2, "j", &s2), 0);
    WAIT_UNTIL(room_synced(h, "j") && room_synced(h2, "j"), 5000);
    CU_ASSERT(room_synced(h, "j") && room_synced(h2, "j"));
    SN_ASSERT_RC(sn_hub_publish(h2, "j", SN_WS_TEXT, "after", 5, NULL, SN_DEADLINE_DEFAULT), 0);
    got a = {0}, b = {0};
    drain(s, &a, 1, 3000);
    drain(s2, &b, 1, 3000);
    CU_ASSERT_EQUAL(a.n, 1);
    CU_ASSERT_EQUAL(b.n, 1);
    check_same(&a, &b);
    got_free(&a);
    got_free(&b);
    sn_hub_unsubscribe(s);
    sn_hub_unsubscribe(s2);
    sn_hub_free(h);
    sn_hub_free(h2);
    redis_do("FLUSHALL");
}

/* A room joined before anything was published in it (no epoch yet): its
 * subscriber connection is cut and the room's first messages, a new epoch,
 * are published meanwhile elsewhere: they are refilled, not skipped. */
static void test_first_epoch_while_cut(void)
{
    sn_hub *h = hub_new(), *h2 = hub_new();
    sn_hub_sub *s;
    SN_ASSERT_RC(sn_hub_subscribe(h, "e", &s), 0);
    WAIT_UNTIL(room_synced(h, "e") && engine_up(h2), 5000);
    redis_do("CLIENT KILL TYPE pubsub");
    publish_n(h2, "e", 0, 3, 0);
    got g = {0};
    drain(s, &g, 3, 5000);
    CU_ASSERT_EQUAL(g.n, 3);
    CU_ASSERT_EQUAL(g.gaps, 0);
    check_order(&g);
    if (g.n == 3)
        CU_ASSERT_EQUAL(g.seq[0], 1);
    got_free(&g);
    sn_hub_unsubscribe(s);
    sn_hub_free(h);
    sn_hub_free(h2);
    redis_do("FLUSHALL");
}

/* Small queues (3 messages, drop-oldest) that overflow right after a gap:
 * the gap is still said, before what follows it. */
static void small_queues(const char *room, sn_hub_room_config *cfg, void *user)
{
    (void)room, (void)user;
    cfg->max_queue = 3;
}

static void test_gap_in_a_full_queue(void)
{
    sn_hub *h = hub_make(0, small_queues);
    sn_hub_sub *s;
    SN_ASSERT_RC(sn_hub_subscribe(h, "q", &s), 0);
    WAIT_UNTIL(room_synced(h, "q"), 5000);
    publish_n(h, "q", 0, 2, 0);
    WAIT_UNTIL(engine_stats(h).received == 2, 3000);
    redis_kill();
    CU_ASSERT(redis_start());
    WAIT_UNTIL(engine_up(h) && room_synced(h, "q"), 5000);
    publish_n(h, "q", 10, 5, 0); /* 2 + the gap + 5 > 3: the oldest go */
    WAIT_UNTIL(engine_stats(h).received == 7, 3000);
    got g = {0};
    drain(s, &g, 100, 300);
    CU_ASSERT_EQUAL(g.gaps, 1);
    check_signalled(&g);
    CU_ASSERT(g.n >= 1 && g.gap_before[0]); /* said before the new epoch's first left */
    got_free(&g);
    sn_hub_unsubscribe(s);
    sn_hub_free(h);
    redis_do("FLUSHALL");
}

typedef struct busy {
    int rc;
} busy;

static void *busy_script(void *arg)
{
    busy *b = arg;
    redisReply *r = redis_cmd("EVAL %s 0", "local t = redis.call('TIME') while true do end");
    b->rc = r != NULL; /* killed: an error answer */
    freeReplyObject(r);
    return NULL;
}

/* Redis busy with a long script (every command answered -BUSY) while a
 * room joins: the join is tried again until Redis answers, then works. */
static void test_join_while_busy(void)
{
    redis_do("CONFIG SET busy-reply-threshold 100");
    sn_hub *h = hub_new(), *h2 = hub_new();
    WAIT_UNTIL(engine_up(h) && engine_up(h2), 5000);
    busy b = {0};
    pthread_t t;
    pthread_create(&t, NULL, busy_script, &b);
    sn_test_sleep_ms(300); /* past the threshold: -BUSY from now on */
    sn_hub_sub *s, *s2;
    SN_ASSERT_RC(sn_hub_subscribe(h, "busy", &s), 0);
    SN_ASSERT_RC(sn_hub_subscribe(h2, "busy", &s2), 0);
    sn_test_sleep_ms(500);
    redis_do("SCRIPT KILL");
    pthread_join(t, NULL);
    WAIT_UNTIL(room_synced(h, "busy") && room_synced(h2, "busy"), 10000);
    CU_ASSERT(room_synced(h, "busy") && room_synced(h2, "busy"));
    publish_n(h, "busy", 0, 5, 0);
    got a = {0}, c = {0};
    drain(s, &a, 5, 3000);
    drain(s2, &c, 5, 3000);
    CU_ASSERT_EQUAL(a.n, 5);
    check_same(&a, &c);
    got_free(&a);
    got_free(&c);
    sn_hub_unsubscribe(s);
    sn_hub_unsubscribe(s2);
    sn_hub_free(h);
    sn_hub_free(h2);
    redis_do("CONFIG SET busy-reply-threshold 5000");
    redis_do("FLUSHALL");
}

/* ---- faults mid-stream ---------------------------------------------------------- */

typedef struct fpub {
    sn_hub *h;
    int id;
    size_t size; /* of each message */
    char **ok;   /* the texts Redis took (rc 0) */
    int nok, down;
} fpub;

static void *fpub_main(void *arg)
{
    fpub *p = arg;
    char *text = malloc(p->size + 1);
    int count = p->size > 1000 ? 400 : FAULT_PER; /* big ones: enough to pass Redis's limit */
    p->ok = calloc((size_t)count, sizeof *p->ok);
    for (int i = 0; i < count; i++) {
        int n = snprintf(text, p->size + 1, "h%d-%d|", p->id, i);
        memset(text + n, 'x', p->size > (size_t)n ? p->size - (size_t)n : 0);
        text[p->size > (size_t)n ? p->size : (size_t)n] = 0;
        int rc =
            sn_hub_publish(p->h, "f", SN_WS_TEXT, text, strlen(text), NULL, SN_DEADLINE_DEFAULT);
        if (rc == 0)
            p->ok[p->nok++] = strdup(text);
        else if (rc == SN_EHUB_DOWN || rc == SN_ETIMEDOUT)
            p->down++;
        else
            fprintf(stderr, "publish: %s\n", sn_err_name(rc));
        sn_sleep_ms(1);
    }
    free(text);
    return NULL;
}

typedef struct fault_run {
    int rcvbuf0; /* hub 0's subscriber receive buffer (0: the system's) */
    sn_hub *h[HUBS];
    got g[HUBS];
    fpub p[HUBS];
} fault_run;

/* Three hubs, a subscription and a publisher on each; fault() mid-stream;
 * then, once every hub is back in step, a last message from each, and the
 * checks every fault shares: one order, lost == signalled, one message per
 * number, and with no gap on a hub everything Redis took is there. */
static void fault_test(fault_run *f, size_t history, size_t size, void (*fault)(fault_run *f))
{
    sn_hub_sub *s[HUBS];
    pthread_t t[HUBS];
    for (int i = 0; i < HUBS; i++) {
        next_rcvbuf = i == 0 ? f->rcvbuf0 : 0;
        f->h[i] = hub_make(history, NULL);
        SN_ASSERT_RC(sn_hub_subscribe(f->h[i], "f", &s[i]), 0);
    }
    for (int i = 0; i < HUBS; i++)
        WAIT_UNTIL(room_synced(f->h[i], "f"), 5000);
    for (int i = 0; i < HUBS; i++) {
        f->p[i] = (fpub){.h = f->h[i], .id = i, .size = size};
        pthread_create(&t[i], NULL, fpub_main, &f->p[i]);
    }
    sn_test_sleep_ms(150);
    fault(f);
    for (int i = 0; i < HUBS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < HUBS; i++)
        WAIT_UNTIL(engine_up(f->h[i]) && room_synced(f->h[i], "f"), 10000);
    for (int i = 0; i < HUBS; i++) {
        char end[16];
        snprintf(end, sizeof end, "end-%d", i);
        SN_ASSERT_RC(
            sn_hub_publish(f->h[i], "f", SN_WS_TEXT, end, strlen(end), NULL, SN_DEADLINE_DEFAULT),
            0);
    }
    for (int i = 0; i < HUBS; i++) {
        got *g = &f->g[i];
        for (int ends = 0; ends < HUBS;) { /* until the three ends came */
            size_t before = g->n;
            drain(s[i], g, g->n + 1, 3000);
            if (g->n == before)
                break;
            ends += strncmp(g->text[g->n - 1], "end-", 4) == 0;
        }
        CU_ASSERT(got_has(g, "end-0") && got_has(g, "end-1") && got_has(g, "end-2"));
        check_order(g);
        check_signalled(g);
        if (g->gaps == 0) /* nothing lost: every message Redis took is here */
            for (int k = 0; k < HUBS; k++)
                for (int j = 0; j < f->p[k].nok; j++)
                    if (!got_has(g, f->p[k].ok[j])) {
                        fprintf(stderr, "hub %d lost %.20s with no gap\n", i, f->p[k].ok[j]);
                        CU_FAIL("a message Redis took was lost in silence");
                        j = f->p[k].nok;
                        k = HUBS;
                    }
    }
    for (int i = 0; i < HUBS; i++)
        for (int j = i + 1; j < HUBS; j++)
            check_agree(&f->g[i], &f->g[j]);
    for (int i = 0; i < HUBS; i++)
        sn_hub_unsubscribe(s[i]);
}

static void fault_done(fault_run *f)
{
    for (int i = 0; i < HUBS; i++) {
        got_free(&f->g[i]);
        for (int j = 0; j < f->p[i].nok; j++)
            free(f->p[i].ok[j]);
        free(f->p[i].ok);
        sn_hub_free(f->h[i]);
    }
    redis_do("FLUSHALL");
}

static void kill_pubsub(fault_run *f)
{
    (void)f;
    redis_do("CLIENT KILL TYPE pubsub");
}

/* Redis cuts every subscriber connection: each hub makes its own again,
 * refills what it missed from the history, and loses nothing. */
static void test_fault_client_kill(void)
{
    fault_run f = {0};
    fault_test(&f, 0, 32, kill_pubsub);
    for (int i = 0; i < HUBS; i++) {
        sn_hub_engine_stats st = engine_stats(f.h[i]);
        CU_ASSERT(st.failures >= 1);
        CU_ASSERT_EQUAL(st.gaps, 0);
        CU_ASSERT_EQUAL(f.g[i].gaps, 0);
        CU_ASSERT_EQUAL(f.p[i].down, 0); /* cmd was never cut */
    }
    fault_done(&f);
}

static void debug_sleep(fault_run *f)
{
    (void)f;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "DEBUG SLEEP %d", 2 * PROBE_TIMEOUT / 1000);
    redis_do(cmd);
}

/* Redis stops answering for 2 s (probe timeout 1 s): both connections of
 * every hub look deaf, are dropped and made again; publishers meanwhile
 * are told (down, or timed out: fate unknown), and nothing goes in
 * silence. */
static void test_fault_debug_sleep(void)
{
    fault_run f = {0};
    fault_test(&f, 0, 32, debug_sleep);
    for (int i = 0; i < HUBS; i++)
        CU_ASSERT(engine_stats(f.h[i]).deaf >= 1);
    fault_done(&f);
}

static void set_pubsub_limit(const char *limit)
{
    redisReply *r = redis_cmd("CONFIG SET client-output-buffer-limit %s", limit);
    CU_ASSERT(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

static void stall_hub0(fault_run *f)
{
    set_pubsub_limit("pubsub 256kb 0 0");
    /* long enough for the publishers' 19 MiB, also where the test runs slowly */
    sn__hub_redis_stall(sn__hub_engine(f->h[0]), 2500 * PROBE_TIMEOUT / 1000);
}

/* A whole server falls behind: its engine stops reading for 2.5 s while
 * 16 KiB messages pour in, Redis cuts it at its (lowered) output buffer
 * limit for pubsub clients, and it refills from the history (a gap for
 * what the history no longer has). */
static void test_fault_output_limit(void)
{
    fault_run f = {.rcvbuf0 = 65536};
    fault_test(&f, 0, 16384, stall_hub0);
    set_pubsub_limit("pubsub 32mb 8mb 60"); /* Redis's default */
    sn_hub_engine_stats st = engine_stats(f.h[0]);
    if (getenv("SN_TEST_VERBOSE") != NULL)
        fprintf(stderr,
                "stalled hub: failures %" PRIu64 ", deaf %" PRIu64 ", refilled %" PRIu64
                ", gaps %" PRIu64 ", received %" PRIu64 "\n",
                st.failures, st.deaf, st.refilled, st.gaps, st.received);
    CU_ASSERT(st.failures >= 1); /* cut by Redis */
    fault_done(&f);
}

/* The same with a history of 20 messages: what the stalled server missed
 * is gone from Redis too, and is signalled. */
static void test_fault_output_limit_trimmed(void)
{
    fault_run f = {.rcvbuf0 = 65536};
    fault_test(&f, 20, 16384, stall_hub0);
    set_pubsub_limit("pubsub 32mb 8mb 60"); /* Redis's default */
    CU_ASSERT(engine_stats(f.h[0]).failures >= 1);
    CU_ASSERT(f.g[0].gaps >= 1);
    CU_ASSERT(engine_stats(f.h[0]).gaps >= 1);
    fault_done(&f);
}

static void shutdown_restart(fault_run *f)
{
    (void)f;
    redis_cmd("SHUTDOWN NOSAVE"); /* no answer: it is gone */
    waitpid(redis_pid, NULL, 0);
    redis_pid = -1;
    sn_test_sleep_ms(300); /* publishers meet it down */
    CU_ASSERT(redis_start());
}

/* SHUTDOWN while publishing: the publishers are told at once, and after
 * the restart (a new epoch) every member is told of the gap. */
static void test_fault_shutdown(void)
{
    fault_run f = {0};
    fault_test(&f, 0, 32, shutdown_restart);
    for (int i = 0; i < HUBS; i++) {
        CU_ASSERT(f.p[i].down >= 1);
        CU_ASSERT_EQUAL(f.g[i].gaps, 1);
    }
    fault_done(&f);
}

static CU_TestInfo tests[] = {
    {"three hubs, one order", test_one_order},
    {"Redis killed and restarted", test_redis_restart},
    {"WebSocket members on two hubs; 1012 at a new epoch", test_ws_members},
    {"a join while Redis is down", test_join_while_down},
    {"Redis restarted during a join", test_restart_during_join},
    {"a room's first epoch while its subscriber is cut", test_first_epoch_while_cut},
    {"a gap in a full queue", test_gap_in_a_full_queue},
    {"a join while Redis is busy (-BUSY)", test_join_while_busy},
    {"fault: CLIENT KILL TYPE pubsub", test_fault_client_kill},
    {"fault: DEBUG SLEEP", test_fault_debug_sleep},
    {"fault: a server past the pubsub output limit", test_fault_output_limit},
    {"fault: the same, past the history", test_fault_output_limit_trimmed},
    {"fault: SHUTDOWN while publishing", test_fault_shutdown},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    sn_hub_engine *e;
    if (sn_hub_redis_new(&e, NULL) == SN_EHUB_NOREDIS) {
        fprintf(stderr, "libsocknet was built without hiredis: skipped\n");
        return 77;
    }
    sn_hub_engine_free(e);
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        fprintf(stderr, "no redis-server (Debian: apt-get install redis-server): skipped\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    PROBE_TIMEOUT = 3000;
#endif
    const char *q = getenv("SN_TEST_QUICK");
    if (sn_test_under_valgrind() || (q != NULL && *q != '\0' && *q != '0')) {
        PROBE_TIMEOUT = 5000;
        FAULT_PER = 100;
    }
    snprintf(redis_dir, sizeof redis_dir, "/tmp/sn-redis-%d", (int)getpid());
    mkdir(redis_dir, 0700);
    redis_port = sn_test_free_port();
    if (!redis_start()) {
        fprintf(stderr, "redis-server did not start on port %d\n", redis_port);
        return 1;
    }
    int rc = sn_test_main("hub-redis", tests, 600);
    redis_kill();
    rmdir(redis_dir);
    return rc;
}

#endif /* SN_HAVE_HIREDIS */
