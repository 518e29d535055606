/* SPDX-License-Identifier: MIT */
/*
 * sn_hub_redis.c: the hub's Redis engine: rooms that span servers, with
 * one order per room everywhere and no message lost in silence. The
 * promises are in include/socknet/hub.h; this is how they are kept.
 *
 * In Redis, per room (keys and channels start with the prefix, "sn:"):
 *   PREFIX r:ROOM:m   a hash: e (the room's epoch), s (its last number)
 *   PREFIX r:ROOM:s   a stream of the last `history` messages, with the IDs
 *                     0-1, 0-2, ...: a range of numbers is an XRANGE
 *   PREFIX r:ROOM     the channel its messages are published on
 * and per hub PREFIX n:NODE, the channel of its liveness probes.
 *
 * A publish is one script (PUBLISH_LUA): it makes the epoch if the room has
 * none (a random number the publisher offers; the stream starts afresh),
 * numbers the message (HINCRBY), appends it to the stream (XADD MAXLEN ~)
 * and publishes it. The message on the wire, in the stream as on the
 * channel, is "EPOCH:SEQ:NODE:TOKEN:TYPE:" and the payload: NODE and TOKEN
 * name the publishing hub and its excluded session, if any.
 *
 * Two connections, each a plain socket, with hiredis's reply reader and
 * command formatter only (a hiredis context is neither thread-safe nor
 * safe to time out):
 *  - the subscriber (sub): SUBSCRIBE / UNSUBSCRIBE / PING, written and
 *    read by the engine's thread alone;
 *  - the command connection (cmd): written by publishers (under e->mu,
 *    pipelined: a request joins the FIFO of those waiting for a reply) and
 *    by the engine's thread (baselines, refills, probes, the script); read
 *    by the engine's thread, which answers each request in turn.
 *
 * A room here (eroom) joins as hub.h says: SUBSCRIBE, the confirmation,
 * then HMGET of (epoch, number): the baseline. Messages from the channel
 * wait in the room's pending queue until it is in step, and go to the hub
 * in numbers' order: a number already delivered is a duplicate (dropped,
 * counted); a missing one starts a refill (XRANGE); a new epoch or
 * numbers the history no longer has are a gap, signalled.
 *
 * Locks: e->mu guards everything publishers and the hub's threads touch
 * (the room table, the cmd connection's output and FIFO, the counters).
 * The engine's thread calls the hub (sn__hub_deliver, ...) only after it
 * let e->mu go: it collects what to do under the lock (struct acts) and
 * does it after.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_hub_engine.h"
#include "sn_hub_redis.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

#ifndef SN_HAVE_HIREDIS

int sn_hub_redis_new(sn_hub_engine **out, const sn_hub_redis_config *cfg)
{
    (void)cfg;
    if (out != NULL)
        *out = NULL;
    return SN_EHUB_NOREDIS;
}

#else

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <hiredis.h>

#define R_PORT_DEFAULT 6379
#define R_PREFIX_DEFAULT "sn:"
#define R_PREFIX_MAX 64
#define R_HISTORY_DEFAULT 1000
#define R_CONNECT_DEFAULT 2000
#define R_PUBLISH_DEFAULT 2000
#define R_PROBE_DEFAULT 1000
#define R_PROBE_TIMEOUT_DEFAULT 3000
#define R_BACKOFF_MIN_DEFAULT 100
#define R_BACKOFF_MAX_DEFAULT 5000
#define R_BUCKETS 1024
#define R_SUB_BATCH 100    /* channels per SUBSCRIBE */
#define R_PENDING_MAX 4096 /* messages a room holds while out of step */
#define R_READ 65536       /* bytes per read */
#define R_PUB_ARGS 7       /* of the script: numkeys, 2 keys, 4 arguments */
#define R_RETRY_MS 100     /* after an error answer (-LOADING) */

static const char PUBLISH_LUA[] =
    "local e = redis.call('HGET', KEYS[1], 'e')\n"
    "if not e then\n"
    "  e = ARGV[3]\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'e', e, 's', 0)\n"
    "end\n"
    "local s = redis.call('HINCRBY', KEYS[1], 's', 1)\n"
    "local m = e .. ':' .. s .. ':' .. ARGV[4]\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '0-' .. s, 'm', m)\n"
    "redis.call('PUBLISH', ARGV[1], m)\n"
    "return {e, s}\n";

/* A message as it comes from Redis, parsed. */
typedef struct rmsg {
    uint64_t epoch, seq, node, token;
    int type;
    const char *data;
    size_t len;
    char *own; /* the copy data points into, when held (pending) */
} rmsg;

enum { SUB_NONE, SUB_SENT, SUB_ON, SUB_LEAVING };
enum { SYNC_NONE, SYNC_BASELINE, SYNC_REFILL, SYNC_OK };

typedef struct eroom {
    struct eroom *next;  /* hash chain */
    struct eroom *dnext; /* the dirty list */
    bool dirty;
    uint32_t hash;
    char *name; /* the hub's room name */
    char *chan; /* PREFIX r:NAME; the keys add ":m" and ":s" */
    size_t clen;
    bool want;  /* the hub has it (members here) */
    int sub;    /* SUB_* */
    int sync;   /* SYNC_* */
    bool known; /* epoch and last are from an earlier sync */
    uint64_t epoch, last;
    rmsg *pend;                 /* held while out of step, in arrival order */
    size_t npend, cpend, hpend; /* count, capacity, head */
    int reqs;                   /* requests in flight that name it */
    uint32_t gen;               /* its join: a subscription lost or left, a reopen make a new one,
                                   and an answer to a request of an older join is ignored */
    int64_t retry_at;           /* an answer was an error (-LOADING, -BUSY): the next try */
    int gap_code;               /* a gap to say that found no memory (gaps_due) */
} eroom;

/* A publisher waiting for its answer. */
typedef struct pubwait {
    sn__cv cv;
    bool done;
    int rc;
} pubwait;

enum { RQ_PUBLISH, RQ_BASELINE, RQ_REFILL, RQ_SCRIPT, RQ_INFO, RQ_PROBE, RQ_AUTH };

typedef struct rreq {
    struct rreq *next;
    int kind;
    int64_t sent; /* ms */
    eroom *room;  /* BASELINE, REFILL */
    uint32_t gen; /* the room's join it was sent for */
    uint64_t from, to;
    pubwait *w;  /* PUBLISH: NULL once the publisher gave up */
    char **argv; /* PUBLISH: the EVAL form, kept for a NOSCRIPT answer */
    size_t *argl;
} rreq;

/* A connection's state. */
typedef struct rconn {
    int fd; /* -1: down */
    redisReader *rd;
    char *out;
    size_t olen, ocap;
    int64_t retry_at;
    int backoff;
} rconn;

typedef struct redis_engine {
    sn_hub_engine base;
    sn_hub_redis_config cfg;
    char *host, *password, *prefix;
    char hist[24];
    uint64_t node;
    char nodechan[R_PREFIX_MAX + 32];
    pthread_mutex_t mu;
    sn__cv changed; /* a room's sync, or the cmd connection's state, changed */
    pthread_t thread;
    bool started;
    bool stopping; /* r_stop: publishers go at once */
    int kick, stopfd;
    rconn cmd, sub;
    rreq *fifo_head, *fifo_tail;
    char sha[41]; /* the script's SHA1, once loaded; "" before */
    char run_id[64];
    eroom *buckets[R_BUCKETS];
    eroom *dirty;
    size_t nrooms, nsubscribed;
    /* liveness: when the last probe went out, since when a PING and a
     * node message wait for their answers (0: none), when each connection
     * last brought bytes (answers queue behind a backlog: a connection that
     * brings bytes is not deaf, only behind) */
    int64_t last_probe, ping_wait, node_wait, sub_heard, cmd_heard;
    atomic_bool gap_due;      /* a room has a gap_code */
    bool retry_soon;          /* a room waits for its retry_at */
    atomic_int stall_ms;      /* the tests' sn__hub_redis_stall */
    int sub_rcvbuf;           /* and their sn__hub_redis_rcvbuf (0: the system's) */
    int sub_error, cmd_error; /* why a connection is being dropped (0: it ended) */
    uint64_t rng;
    sn_hub_engine_stats st;
} redis_engine;

/* ---- what the engine's thread does after it lets e->mu go -------------------------- */

enum { ACT_DELIVER, ACT_GAP, ACT_SYNCED };

typedef struct act {
    int kind;
    const char *room; /* its eroom's name: freed by the engine's thread only */
    rmsg m;           /* ACT_DELIVER (m.own freed after) */
    int code;         /* ACT_GAP */
    bool synced;      /* ACT_SYNCED (m.epoch) */
} act;

typedef struct acts {
    act *a;
    size_t n, cap;
} acts;

/* Records an action. Returns false without the memory for it (the caller
 * makes its room fall out of step: see deliver). */
static bool acts_add(acts *as, act a)
{
    if (as->n == as->cap) {
        size_t cap = as->cap ? as->cap * 2 : 64;
        act *p = sn__realloc(as->a, cap * sizeof *p);
        if (p == NULL)
            return false;
        as->a = p;
        as->cap = cap;
    }
    as->a[as->n++] = a;
    return true;
}

/* The gaps that found no memory for an action: one room at a time, its
 * name copied under e->mu, said after. */
static void gaps_due(redis_engine *e)
{
    char name[SN_HUB_NAME_MAX + 1];
    for (;;) {
        int code = 0;
        sn__mutex_lock(&e->mu);
        for (size_t b = 0; b < R_BUCKETS && code == 0; b++)
            for (eroom *r = e->buckets[b]; r != NULL && code == 0; r = r->next)
                if (r->gap_code != 0) {
                    code = r->gap_code;
                    r->gap_code = 0;
                    snprintf(name, sizeof name, "%s", r->name);
                }
        if (code == 0)
            atomic_store(&e->gap_due, false);
        sn__mutex_unlock(&e->mu);
        if (code == 0)
            return;
        sn__hub_gap(e->base.hub, name, code);
    }
}

static void acts_run(redis_engine *e, acts *as)
{
    sn_hub *h = e->base.hub;
    for (size_t i = 0; i < as->n; i++) {
        act *a = &as->a[i];
        switch (a->kind) {
        case ACT_DELIVER:
            sn__hub_deliver(h, a->room, a->m.type, a->m.data, a->m.len, a->m.epoch, a->m.seq,
                            a->m.node == e->node ? a->m.token : 0);
            free(a->m.own);
            break;
        case ACT_GAP:
            sn__hub_gap(h, a->room, a->code);
            break;
        default:
            sn__hub_synced(h, a->room, a->synced, a->m.epoch);
        }
    }
    as->n = 0;
    if (atomic_load(&e->gap_due))
        gaps_due(e);
}

/* ---- small things ---------------------------------------------------------------- */

static uint64_t rng_next(redis_engine *e)
{
    uint64_t x = e->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    e->rng = x;
    return x * 2685821657736338717ull;
}

static uint32_t hash_name(const char *s)
{
    uint32_t x = 2166136261u;
    for (; *s; s++)
        x = (x ^ (uint8_t)*s) * 16777619u;
    return x;
}

/* Parses a decimal number of n bytes; false if it is not one. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* "EPOCH:SEQ:NODE:TOKEN:TYPE:payload" */
static bool parse_msg(const char *s, size_t n, rmsg *m)
{
    uint64_t f[5];
    size_t at = 0;
    for (int i = 0; i < 5; i++) {
        const char *c = memchr(s + at, ':', n - at);
        if (c == NULL || !parse_u64(s + at, (size_t)(c - (s + at)), &f[i]))
            return false;
        at = (size_t)(c - s) + 1;
    }
    if (f[4] != SN_WS_TEXT && f[4] != SN_WS_BINARY)
        return false;
    *m = (rmsg){.epoch = f[0],
                .seq = f[1],
                .node = f[2],
                .token = f[3],
                .type = (int)f[4],
                .data = s + at,
                .len = n - at};
    return true;
}

static bool reply_is(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == n && memcmp(r->str, s, n) == 0;
}

static bool reply_u64(const redisReply *r, uint64_t *out)
{
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
        *out = (uint64_t)r->integer;
        return true;
    }
    return r->type == REDIS_REPLY_STRING && parse_u64(r->str, r->len, out);
}

/* ---- output ------------------------------------------------------------------------- */

/* Appends a command to a connection's output. */
static int out_cmd(rconn *c, int argc, const char **argv, const size_t *argl)
{
    char *cmd;
    int n = redisFormatCommandArgv(&cmd, argc, argv, argl);
    if (n < 0)
        return SN_ENOMEM;
    if (c->olen + (size_t)n > c->ocap) {
        size_t cap = SN_MAX(c->ocap * 2, c->olen + (size_t)n);
        char *p = sn__realloc(c->out, cap);
        if (p == NULL) {
            redisFreeCommand(cmd);
            return SN_ENOMEM;
        }
        c->out = p;
        c->ocap = cap;
    }
    memcpy(c->out + c->olen, cmd, (size_t)n);
    c->olen += (size_t)n;
    redisFreeCommand(cmd);
    return 0;
}

/* Sends what the socket takes. Returns 0 or -errno (the connection broke). */
static int out_flush(rconn *c)
{
    size_t done = 0;
    while (done < c->olen) {
        ssize_t n = send(c->fd, c->out + done, c->olen - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    memmove(c->out, c->out + done, c->olen - done);
    c->olen -= done;
    return 0;
}

static void kick(redis_engine *e)
{
    eventfd_write(e->kick, 1);
}

/* ---- the command connection's requests (e->mu held) ------------------------------- */

/* Puts a request whose command is in cmd's output at the end of the FIFO. */
static void fifo_push(redis_engine *e, rreq *q, int kind)
{
    q->kind = kind;
    q->sent = sn_now_ms();
    q->next = NULL;
    if (e->fifo_tail != NULL)
        e->fifo_tail->next = q;
    else
        e->fifo_head = q;
    e->fifo_tail = q;
}

static void req_free(rreq *q)
{
    if (q->argv != NULL)
        for (int i = 0; i < R_PUB_ARGS; i++)
            sn__free(q->argv[i]);
    sn__free(q->argv);
    sn__free(q->argl);
    if (q->room != NULL)
        q->room->reqs--;
    sn__free(q);
}

/* Sends a command of the engine's own on cmd, with its request. */
static rreq *cmd_send(redis_engine *e, int kind, int argc, const char **argv, const size_t *argl)
{
    if (e->cmd.fd < 0)
        return NULL;
    rreq *q = sn__calloc(1, sizeof *q); /* first: an answer never lacks its request */
    if (q == NULL || out_cmd(&e->cmd, argc, argv, argl) < 0) {
        sn__free(q);
        return NULL;
    }
    fifo_push(e, q, kind);
    return q;
}

/* ---- rooms (e->mu held) -------------------------------------------------------------- */

static eroom *room_find(redis_engine *e, const char *name)
{
    uint32_t x = hash_name(name);
    for (eroom *r = e->buckets[x % R_BUCKETS]; r != NULL; r = r->next)
        if (r->hash == x && strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

/* The room of a channel name ("PREFIX r:NAME"), or NULL. */
static eroom *room_of_chan(redis_engine *e, const char *chan, size_t n)
{
    size_t p = strlen(e->prefix);
    if (n <= p + 2 || n - p - 2 > SN_HUB_NAME_MAX || memcmp(chan, e->prefix, p) != 0 ||
        memcmp(chan + p, "r:", 2) != 0)
        return NULL;
    char name[SN_HUB_NAME_MAX + 1];
    memcpy(name, chan + p + 2, n - p - 2);
    name[n - p - 2] = 0;
    return room_find(e, name);
}

static void pend_clear(eroom *r);

/* The room's join starts again: what it waits for is ignored when it
 * comes, and it takes a baseline once subscribed. */
static void rejoin(eroom *r)
{
    r->gen++;
    r->sync = SYNC_NONE;
    pend_clear(r);
}

static void mark(redis_engine *e, eroom *r)
{
    if (r->dirty)
        return;
    r->dirty = true;
    r->dnext = e->dirty;
    e->dirty = r;
}

static void pend_clear(eroom *r)
{
    if (r->npend == 0)
        return;
    for (size_t i = 0; i < r->npend; i++)
        free(r->pend[(r->hpend + i) % r->cpend].own);
    r->npend = r->hpend = 0;
}

static void room_free(redis_engine *e, eroom *r)
{
    eroom **p = &e->buckets[r->hash % R_BUCKETS];
    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    e->nrooms--;
    pend_clear(r);
    sn__free(r->pend);
    sn__free(r->name);
    sn__free(r->chan);
    sn__free(r);
}

static void r_room_open(sn_hub_engine *base, const char *name)
{
    redis_engine *e = (redis_engine *)base;
    sn__mutex_lock(&e->mu);
    eroom *r = room_find(e, name);
    if (r == NULL && (r = sn__calloc(1, sizeof *r)) != NULL) {
        size_t n = strlen(name), p = strlen(e->prefix);
        r->name = sn__strdup(name);
        r->chan = sn__malloc(p + 2 + n + 3);
        if (r->name == NULL || r->chan == NULL) {
            sn__free(r->name);
            sn__free(r->chan);
            sn__free(r);
            r = NULL;
        } else {
            r->clen = p + 2 + n;
            memcpy(r->chan, e->prefix, p);
            memcpy(r->chan + p, "r:", 2);
            memcpy(r->chan + p + 2, name, n + 1);
            r->hash = hash_name(name);
            r->next = e->buckets[r->hash % R_BUCKETS];
            e->buckets[r->hash % R_BUCKETS] = r;
            e->nrooms++;
        }
    }
    if (r != NULL) {
        if (!r->want) { /* made again here: a new join, whatever the old one left */
            r->known = false;
            rejoin(r);
        }
        r->want = true;
        mark(e, r);
        kick(e);
    }
    /* without memory the room stays local to its members here until the
     * hub makes it again: its publishers still reach Redis, nothing comes
     * back to them; the hub cannot be told from under its own lock */
    sn__mutex_unlock(&e->mu);
}

static void r_room_close(sn_hub_engine *base, const char *name)
{
    redis_engine *e = (redis_engine *)base;
    sn__mutex_lock(&e->mu);
    eroom *r = room_find(e, name);
    if (r != NULL) {
        r->want = false;
        mark(e, r);
        kick(e);
    }
    sn__mutex_unlock(&e->mu);
}

/* ---- a room in step ------------------------------------------------------------------ */

/* Holds a message while the room is out of step. A room that would hold
 * more than R_PENDING_MAX lets them all go: they are in the history, and
 * the room's next baseline refills them (or says they are gone). */
static void pend_push(eroom *r, const rmsg *m)
{
    if (r->npend == R_PENDING_MAX) {
        pend_clear(r);
        if (r->sync == SYNC_OK)
            r->sync = SYNC_NONE; /* a baseline again, then the refill */
        return;
    }
    if (r->npend == r->cpend) {
        size_t cap = r->cpend ? r->cpend * 2 : 16;
        rmsg *p = sn__malloc(cap * sizeof *p);
        if (p == NULL) {
            pend_clear(r);
            r->sync = SYNC_NONE;
            return;
        }
        for (size_t i = 0; i < r->npend; i++)
            p[i] = r->pend[(r->hpend + i) % r->cpend];
        sn__free(r->pend);
        r->pend = p;
        r->cpend = cap;
        r->hpend = 0;
    }
    rmsg c = *m;
    c.own = malloc(m->len + 1);
    if (c.own == NULL) {
        pend_clear(r);
        r->sync = SYNC_NONE;
        return;
    }
    memcpy(c.own, m->data, m->len);
    c.data = c.own;
    r->pend[(r->hpend + r->npend) % r->cpend] = c;
    r->npend++;
}

static rmsg *pend_front(eroom *r)
{
    return r->npend > 0 ? &r->pend[r->hpend] : NULL;
}

static void pend_pop(eroom *r)
{
    r->hpend = (r->hpend + 1) % r->cpend;
    r->npend--;
}

/* Signals a gap in the room. Without memory to record that, the room
 * keeps it (gap_code) and gaps_due says it after the others. */
static void gap(redis_engine *e, eroom *r, int code, acts *as)
{
    e->st.gaps++;
    if (!acts_add(as, (act){.kind = ACT_GAP, .room = r->name, .code = code})) {
        r->gap_code = code;
        atomic_store(&e->gap_due, true);
    }
}

/* Sends the XRANGE of the room's missing numbers [from, to]. */
static void refill(redis_engine *e, eroom *r, uint64_t from, uint64_t to)
{
    char a[32], b[32], key[R_PREFIX_MAX + SN_HUB_NAME_MAX + 8];
    snprintf(a, sizeof a, "0-%" PRIu64, from);
    snprintf(b, sizeof b, "0-%" PRIu64, to);
    snprintf(key, sizeof key, "%s:s", r->chan);
    const char *argv[] = {"XRANGE", key, a, b};
    size_t argl[] = {6, strlen(key), strlen(a), strlen(b)};
    rreq *q = cmd_send(e, RQ_REFILL, 4, argv, argl);
    if (q == NULL) {
        r->sync = SYNC_NONE; /* again when the connection is back */
        return;
    }
    q->room = r;
    q->gen = r->gen;
    q->from = from;
    q->to = to;
    r->reqs++;
    r->sync = SYNC_REFILL;
}

/* Hands message m (numbered r->last + 1; its copy m->own, if any, goes
 * with it) to the hub. Without memory for that the room falls out of step
 * before it: the next baseline refills it from the history. */
static void deliver(redis_engine *e, eroom *r, rmsg *m, acts *as)
{
    if (!acts_add(as, (act){.kind = ACT_DELIVER, .room = r->name, .m = *m})) {
        free(m->own);
        r->sync = SYNC_NONE;
        pend_clear(r);
        mark(e, r);
        return;
    }
    r->last = m->seq;
    e->st.received++;
}

/* Delivers what the room holds, in order, while it is in step: a number
 * delivered already is dropped, a new epoch is a gap, a missing number
 * starts a refill (and the rest waits for it). */
static void advance(redis_engine *e, eroom *r, acts *as)
{
    rmsg *m;
    while (r->sync == SYNC_OK && (m = pend_front(r)) != NULL) {
        if (r->epoch != 0 && m->epoch != r->epoch) {
            /* the room's numbers began again (Redis restarted, or lost the
             * room): what came before this epoch's messages is unknown */
            gap(e, r, SN_WS_SERVICE_RESTART, as);
            r->epoch = m->epoch;
            r->last = 0;
            acts_add(
                as,
                (act){.kind = ACT_SYNCED, .room = r->name, .synced = true, .m.epoch = r->epoch});
        }
        r->epoch = m->epoch;
        if (m->seq <= r->last) {
            e->st.duplicates++;
            free(m->own);
            pend_pop(r);
        } else if (m->seq == r->last + 1) {
            rmsg c = *m;
            pend_pop(r);
            deliver(e, r, &c, as);
        } else {
            refill(e, r, r->last + 1, m->seq - 1);
        }
    }
}

/* A message from the room's channel. */
static void on_message(redis_engine *e, eroom *r, const rmsg *m, acts *as)
{
    if (!r->want || r->sub != SUB_ON)
        return; /* left, or not yet confirmed: not ours to deliver */
    pend_push(r, m);
    advance(e, r, as);
}

/* An answer was an error: the request goes again after a pause. */
static void retry_later(redis_engine *e, eroom *r)
{
    r->sync = SYNC_NONE;
    r->retry_at = sn_now_ms() + R_RETRY_MS;
    mark(e, r);
}

/* After a lost connection: the numbers up to seq that the room does not
 * hold (what it holds from the channel needs no refill). */
static void resync_refill(redis_engine *e, eroom *r, uint64_t seq)
{
    const rmsg *p = pend_front(r);
    uint64_t to = p != NULL && p->seq - 1 < seq ? p->seq - 1 : seq;
    if (to > r->last)
        refill(e, r, r->last + 1, to);
}

/* HMGET's answer: the room's (epoch, number) now. */
static void on_baseline(redis_engine *e, eroom *r, const redisReply *rep, acts *as)
{
    uint64_t epoch = 0, seq = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        (rep->element[0]->type != REDIS_REPLY_NIL && !reply_u64(rep->element[0], &epoch)) ||
        (rep->element[1]->type != REDIS_REPLY_NIL && !reply_u64(rep->element[1], &seq))) {
        retry_later(e, r); /* -LOADING, -BUSY: again in a moment */
        return;
    }
    if (!r->want || r->sub != SUB_ON)
        return;
    r->sync = SYNC_OK;
    if (!r->known) { /* a first join: what came before is not its members' */
        r->known = true;
        r->epoch = epoch;
        r->last = seq;
    } else if (epoch == r->epoch && seq >= r->last) {
        /* in step again after a lost connection: what was missed is in the
         * history (or older than it: the refill says) */
        resync_refill(e, r, seq);
    } else {
        /* the room's numbers began again (a new epoch, or Redis went back to
         * an older state): a gap, unless nothing had been seen yet; then the
         * new epoch's numbers from 1, as far as the history has them */
        if (r->epoch != 0 || r->last > 0)
            gap(e, r, SN_WS_SERVICE_RESTART, as);
        r->epoch = epoch;
        r->last = 0;
        resync_refill(e, r, seq);
    }
    acts_add(as, (act){.kind = ACT_SYNCED, .room = r->name, .synced = true, .m.epoch = r->epoch});
    advance(e, r, as);
}

/* XRANGE's answer: the numbers [q->from, q->to], or what the history still
 * has of them. */
static void on_refill(redis_engine *e, eroom *r, const rreq *q, const redisReply *rep, acts *as)
{
    if (!r->want || r->sub != SUB_ON)
        return;
    if (rep->type != REDIS_REPLY_ARRAY) {
        retry_later(e, r);
        return;
    }
    r->sync = SYNC_OK;
    bool new_epoch = false;
    for (size_t i = 0; i < rep->elements && r->sync == SYNC_OK; i++) {
        const redisReply *en = rep->element[i];
        rmsg m;
        if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
            en->element[1]->type != REDIS_REPLY_ARRAY || en->element[1]->elements != 2 ||
            !parse_msg(en->element[1]->element[1]->str, en->element[1]->element[1]->len, &m))
            continue;
        if (m.epoch != r->epoch && r->epoch != 0) {
            new_epoch = true; /* the room began again meanwhile: advance() says so */
            break;
        }
        if (m.seq <= r->last)
            continue;
        if (m.seq > r->last + 1) { /* older than the history */
            gap(e, r, SN_WS_TRY_AGAIN, as);
            r->last = m.seq - 1;
        }
        if ((m.own = malloc(m.len + 1)) != NULL) {
            memcpy(m.own, m.data, m.len);
            m.data = m.own;
        }
        if (m.own == NULL) {
            r->sync = SYNC_NONE;
            mark(e, r);
            break;
        }
        e->st.refilled++;
        deliver(e, r, &m, as);
    }
    if (r->sync != SYNC_OK)
        return;                          /* out of memory: again from the next baseline */
    if (r->last < q->to && !new_epoch) { /* the rest is gone too */
        gap(e, r, SN_WS_TRY_AGAIN, as);
        r->last = q->to;
    }
    advance(e, r, as);
}

/* ---- connections ---------------------------------------------------------------------- */

static int backoff_next(redis_engine *e, rconn *c)
{
    c->backoff =
        c->backoff == 0 ? e->cfg.backoff_min_ms : SN_MIN(c->backoff * 2, e->cfg.backoff_max_ms);
    int jitter = (int)(rng_next(e) % (uint64_t)(c->backoff + 1)) - c->backoff / 2; /* +-50 % */
    return SN_MAX(1, c->backoff + jitter);
}

/* Connects (blocking, up to connect_timeout_ms): *fd and *rd, for c (the
 * caller sets them under e->mu). Returns 0 or an error. */
static int conn_open(redis_engine *e, rconn *c, int *out_fd, redisReader **out_rd)
{
    sn_sock *s;
    int rc =
        sn_tcp_connect(&s, e->host, e->cfg.port, NULL, sn_deadline_in(e->cfg.connect_timeout_ms));
    if (rc < 0)
        return rc;
    int fd = fcntl(sn_sock_fd(s), F_DUPFD_CLOEXEC, 0); /* the engine keeps a plain one */
    sn_sock_free(s);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c == &e->sub && e->sub_rcvbuf > 0) /* too late for the handshake's window: fine */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &e->sub_rcvbuf, sizeof e->sub_rcvbuf);
    redisReader *rd = redisReaderCreate();
    if (rd == NULL) {
        close(fd);
        return SN_ENOMEM;
    }
    *out_fd = fd;
    *out_rd = rd;
    return 0;
}

static void conn_close(rconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->rd != NULL)
        redisReaderFree(c->rd);
    c->rd = NULL;
    c->olen = 0;
}

/* The answer every request still waiting on cmd gets when it is lost. */
static void fifo_fail(redis_engine *e)
{
    for (rreq *q; (q = e->fifo_head) != NULL;) {
        e->fifo_head = q->next;
        if (q->kind == RQ_PUBLISH && q->w != NULL) {
            q->w->done = true;
            q->w->rc = SN_EHUB_DOWN;
            sn__cv_broadcast(&q->w->cv);
        }
        if (q->room != NULL && q->room->sync != SYNC_OK)
            q->room->sync = SYNC_NONE;
        req_free(q);
    }
    e->fifo_tail = NULL;
}

static void rooms_each(redis_engine *e, void (*fn)(redis_engine *e, eroom *r, acts *as), acts *as)
{
    for (size_t b = 0; b < R_BUCKETS; b++)
        for (eroom *r = e->buckets[b], *next; r != NULL; r = next) {
            next = r->next;
            fn(e, r, as);
        }
}

/* The subscriber connection is gone: every room out of step (known: what
 * it delivered stands), made dirty to subscribe again. */
static void room_unsubscribed(redis_engine *e, eroom *r, acts *as)
{
    if (r->sub == SUB_ON || r->sub == SUB_SENT)
        acts_add(as, (act){.kind = ACT_SYNCED, .room = r->name, .synced = false});
    r->sub = SUB_NONE;
    rejoin(r); /* known stays: what it delivered stands, the rest is refilled */
    mark(e, r);
}

/* A connection is lost (deaf: dropped for an unanswered probe; else it
 * ended, or failed with *err): closed, counted, its reconnect scheduled. */
static void conn_lost(redis_engine *e, rconn *c, bool deaf, int *err)
{
    conn_close(c);
    e->st.failures += !deaf;
    e->st.deaf += deaf;
    e->st.error = deaf ? SN_ETIMEDOUT : *err != 0 ? *err : SN_EOF;
    *err = 0;
    c->retry_at = sn_now_ms() + backoff_next(e, c);
}

static void sub_down(redis_engine *e, acts *as, bool deaf)
{
    if (e->sub.fd < 0)
        return;
    conn_lost(e, &e->sub, deaf, &e->sub_error);
    e->nsubscribed = 0;
    rooms_each(e, room_unsubscribed, as);
    sn__cv_broadcast(&e->changed);
}

static void room_cmd_lost(redis_engine *e, eroom *r, acts *as)
{
    (void)as;
    if (r->sync == SYNC_BASELINE || r->sync == SYNC_REFILL)
        r->sync = SYNC_NONE;
    mark(e, r);
}

static void cmd_down(redis_engine *e, acts *as, bool deaf)
{
    if (e->cmd.fd < 0)
        return;
    conn_lost(e, &e->cmd, deaf, &e->cmd_error);
    fifo_fail(e);
    rooms_each(e, room_cmd_lost, as);
    sn__cv_broadcast(&e->changed);
}

static void send_auth(redis_engine *e, rconn *c)
{
    if (e->password == NULL)
        return;
    const char *argv[] = {"AUTH", e->password};
    size_t argl[] = {4, strlen(e->password)};
    if (c == &e->cmd)
        cmd_send(e, RQ_AUTH, 2, argv, argl);
    else
        out_cmd(c, 2, argv, argl);
}

/* Brings a connection up when it is down and its wait is over. */
/* Loads the publish script on cmd (its SHA1 comes back as RQ_SCRIPT's answer). */
static void load_script(redis_engine *e)
{
    const char *load[] = {"SCRIPT", "LOAD", PUBLISH_LUA};
    size_t loadl[] = {6, 4, sizeof PUBLISH_LUA - 1};
    cmd_send(e, RQ_SCRIPT, 3, load, loadl);
}

static void conn_up(redis_engine *e, rconn *c)
{
    if (c->fd >= 0 || sn_now_ms() < c->retry_at)
        return;
    int fd = -1;
    redisReader *rd = NULL;
    int rc = conn_open(e, c, &fd, &rd); /* unlocked: publishers see it down meanwhile */
    sn__mutex_lock(&e->mu);
    if (rc == 0) {
        c->fd = fd;
        c->rd = rd;
        c->olen = 0;
    }
    if (rc < 0) {
        e->st.failures++;
        e->st.error = rc;
        c->retry_at = sn_now_ms() + backoff_next(e, c);
        sn__mutex_unlock(&e->mu);
        return;
    }
    e->st.connects++;
    c->backoff = 0;
    *(c == &e->sub ? &e->sub_heard : &e->cmd_heard) = sn_now_ms();
    send_auth(e, c);
    if (c == &e->cmd) {
        load_script(e);
        const char *info[] = {"INFO", "server"};
        size_t infol[] = {4, 6};
        cmd_send(e, RQ_INFO, 2, info, infol);
    } else {
        const char *argv[] = {"SUBSCRIBE", e->nodechan};
        size_t argl[] = {9, strlen(e->nodechan)};
        out_cmd(c, 2, argv, argl);
        e->ping_wait = e->node_wait = 0;
    }
    /* every room to reconcile: subscriptions wait for sub, baselines for cmd */
    for (size_t b = 0; b < R_BUCKETS; b++)
        for (eroom *r = e->buckets[b]; r != NULL; r = r->next)
            mark(e, r);
    sn__cv_broadcast(&e->changed);
    sn__mutex_unlock(&e->mu);
}

/* Subscribes and unsubscribes what changed, sends the baselines due, and
 * frees the rooms nobody wants (e->mu held). */
static void reconcile(redis_engine *e)
{
    const char *subs[R_SUB_BATCH + 1], *unsubs[R_SUB_BATCH + 1];
    size_t subl[R_SUB_BATCH + 1], unsubl[R_SUB_BATCH + 1];
    int ns = 1, nu = 1;
    subs[0] = "SUBSCRIBE";
    subl[0] = 9;
    unsubs[0] = "UNSUBSCRIBE";
    unsubl[0] = 11;
    bool sub_up = e->sub.fd >= 0, cmd_up = e->cmd.fd >= 0;
    eroom *list = e->dirty, *keep = NULL;
    e->retry_soon = false;
    e->dirty = NULL;
    for (eroom *r = list, *next; r != NULL; r = next) {
        next = r->dnext;
        r->dirty = false;
        if (r->want && r->sub == SUB_NONE && sub_up) {
            subs[ns] = r->chan;
            subl[ns++] = r->clen;
            r->sub = SUB_SENT;
        } else if (!r->want && r->sub == SUB_ON && sub_up) {
            unsubs[nu] = r->chan;
            unsubl[nu++] = r->clen;
            r->sub = SUB_LEAVING;
        } else if (r->want && r->sub == SUB_ON && r->sync == SYNC_NONE && cmd_up &&
                   sn_now_ms() < r->retry_at) {
            r->dnext = keep; /* after its pause */
            keep = r;
            e->retry_soon = true;
            continue;
        } else if (r->want && r->sub == SUB_ON && r->sync == SYNC_NONE && cmd_up) {
            char key[R_PREFIX_MAX + SN_HUB_NAME_MAX + 8];
            snprintf(key, sizeof key, "%s:m", r->chan);
            const char *argv[] = {"HMGET", key, "e", "s"};
            size_t argl[] = {5, strlen(key), 1, 1};
            rreq *q = cmd_send(e, RQ_BASELINE, 4, argv, argl);
            if (q != NULL) {
                q->room = r;
                q->gen = r->gen;
                r->reqs++;
                r->sync = SYNC_BASELINE;
            }
        } else if (!r->want && (r->sub == SUB_NONE || !sub_up) && r->reqs == 0) {
            room_free(e, r);
            continue;
        } else if (!r->want && r->reqs > 0) {
            r->dnext = keep; /* freed when its requests are answered */
            keep = r;
            continue;
        }
        if (ns > R_SUB_BATCH) {
            out_cmd(&e->sub, ns, subs, subl);
            ns = 1;
        }
        if (nu > R_SUB_BATCH) {
            out_cmd(&e->sub, nu, unsubs, unsubl);
            nu = 1;
        }
    }
    if (ns > 1)
        out_cmd(&e->sub, ns, subs, subl);
    if (nu > 1)
        out_cmd(&e->sub, nu, unsubs, unsubl);
    for (eroom *r = keep, *next; r != NULL; r = next) {
        next = r->dnext;
        r->dirty = false;
        mark(e, r);
    }
}

/* ---- answers ------------------------------------------------------------------------------ */

/* An answer on the subscriber connection (e->mu held). */
static void on_sub_reply(redis_engine *e, const redisReply *rep, acts *as)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        if (rep->type == REDIS_REPLY_ERROR)
            sub_down(e, as, false);
        return; /* AUTH's +OK */
    }
    const redisReply *kind = rep->element[0], *ch = rep->element[1];
    if (reply_is(kind, "pong")) {
        e->ping_wait = 0;
        return;
    }
    if (ch->type != REDIS_REPLY_STRING)
        return;
    bool node = ch->len == strlen(e->nodechan) && memcmp(ch->str, e->nodechan, ch->len) == 0;
    eroom *r = node ? NULL : room_of_chan(e, ch->str, ch->len);
    if (reply_is(kind, "message") && rep->elements == 3) {
        if (node) {
            e->node_wait = 0; /* a probe came through */
            return;
        }
        rmsg m;
        const redisReply *p = rep->element[2];
        if (r != NULL && p->type == REDIS_REPLY_STRING && parse_msg(p->str, p->len, &m))
            on_message(e, r, &m, as);
    } else if (reply_is(kind, "subscribe") && r != NULL) {
        if (r->sub == SUB_SENT) {
            r->sub = SUB_ON;
            e->nsubscribed++;
        }
        mark(e, r); /* its baseline, or an unsubscribe if it left meanwhile */
    } else if (reply_is(kind, "unsubscribe") && r != NULL) {
        if (r->sub == SUB_ON || r->sub == SUB_LEAVING)
            e->nsubscribed--;
        r->sub = SUB_NONE;
        r->known = false; /* a later join is a new one */
        rejoin(r);
        mark(e, r);
    }
}

/* Redis's run_id, from INFO server: a change is a restart. */
static void on_info(redis_engine *e, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_STRING)
        return;
    const char *p = strstr(rep->str, "run_id:");
    if (p == NULL)
        return;
    p += 7;
    size_t n = strcspn(p, "\r\n");
    if (n >= sizeof e->run_id)
        return;
    if (e->run_id[0] != 0 && (strlen(e->run_id) != n || memcmp(e->run_id, p, n) != 0))
        e->st.restarts++;
    memcpy(e->run_id, p, n);
    e->run_id[n] = 0;
}

/* A publish's command on cmd: EVALSHA when the script is loaded, else
 * EVAL, with the arguments q keeps. */
static int publish_cmd(redis_engine *e, const rreq *q)
{
    const char *argv[2 + R_PUB_ARGS];
    size_t argl[2 + R_PUB_ARGS];
    bool sha = e->sha[0] != 0;
    argv[0] = sha ? "EVALSHA" : "EVAL";
    argl[0] = sha ? 7 : 4;
    argv[1] = sha ? e->sha : PUBLISH_LUA;
    argl[1] = sha ? 40 : sizeof PUBLISH_LUA - 1;
    for (int i = 0; i < R_PUB_ARGS; i++) {
        argv[2 + i] = q->argv[i];
        argl[2 + i] = q->argl[i];
    }
    return out_cmd(&e->cmd, 2 + R_PUB_ARGS, argv, argl);
}

/* Sends a publish again, after a NOSCRIPT answer (Redis restarted, or its
 * scripts were flushed): e->sha is cleared, so in its EVAL form. */
static bool publish_again(redis_engine *e, rreq *q)
{
    if (publish_cmd(e, q) < 0)
        return false;
    q->next = NULL;
    q->sent = sn_now_ms();
    if (e->fifo_tail != NULL)
        e->fifo_tail->next = q;
    else
        e->fifo_head = q;
    e->fifo_tail = q;
    return true;
}

/* An answer on the command connection, for the oldest request (e->mu held). */
static void on_cmd_reply(redis_engine *e, const redisReply *rep, acts *as)
{
    rreq *q = e->fifo_head;
    if (q == NULL) {
        cmd_down(e, as, false); /* an answer to nothing: out of step with Redis */
        return;
    }
    if ((e->fifo_head = q->next) == NULL)
        e->fifo_tail = NULL;
    switch (q->kind) {
    case RQ_PUBLISH:
        if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
            if (e->sha[0] != 0) { /* loaded again, for the publishes to come */
                e->sha[0] = 0;
                load_script(e);
            }
            if (publish_again(e, q))
                return; /* q waits again */
        }
        if (rep->type == REDIS_REPLY_ARRAY)
            e->st.published++;
        if (q->w != NULL) {
            q->w->done = true;
            q->w->rc = rep->type == REDIS_REPLY_ARRAY ? 0 : SN_EHUB_DOWN;
            sn__cv_broadcast(&q->w->cv);
        }
        break;
    case RQ_BASELINE:
        if (q->gen != q->room->gen)
            break; /* for a join that is over */
        q->room->sync = SYNC_NONE;
        on_baseline(e, q->room, rep, as);
        sn__cv_broadcast(&e->changed); /* publishers waiting for its join */
        break;
    case RQ_REFILL:
        if (q->gen != q->room->gen)
            break;
        q->room->sync = SYNC_NONE; /* on_refill puts it in step, or not */
        on_refill(e, q->room, q, rep, as);
        break;
    case RQ_SCRIPT:
        if (rep->type == REDIS_REPLY_STRING && rep->len == 40) {
            memcpy(e->sha, rep->str, 40);
            e->sha[40] = 0;
        }
        break;
    case RQ_INFO:
        on_info(e, rep);
        break;
    case RQ_AUTH:
        if (rep->type == REDIS_REPLY_ERROR)
            cmd_down(e, as, false); /* a wrong password: tried again, with its backoff */
        break;
    default: /* RQ_PROBE */
        break;
    }
    eroom *r = q->room;
    req_free(q);
    if (r != NULL && !r->want)
        mark(e, r);
}

/* Reads what a connection has and answers it. Returns false when it broke. */
static bool conn_read(redis_engine *e, rconn *c, acts *as)
{
    char buf[R_READ];
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        *(c == &e->sub ? &e->sub_error : &e->cmd_error) = -errno;
    if (n > 0)
        *(c == &e->sub ? &e->sub_heard : &e->cmd_heard) = sn_now_ms();
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return true;
    if (n <= 0 || redisReaderFeed(c->rd, buf, (size_t)n) != REDIS_OK)
        return false;
    for (;;) {
        void *rep;
        if (redisReaderGetReply(c->rd, &rep) != REDIS_OK)
            return false;
        if (rep == NULL)
            return true;
        sn__mutex_lock(&e->mu);
        if (c == &e->sub)
            on_sub_reply(e, rep, as);
        else
            on_cmd_reply(e, rep, as);
        bool up = c->fd >= 0;
        sn__mutex_unlock(&e->mu);
        freeReplyObject(rep);
        acts_run(e, as);
        if (!up)
            return true; /* closed while answering */
    }
}

/* ---- publishing ------------------------------------------------------------------------ */

/* The script's arguments after its name: 2, the keys, the channel, the
 * history, a new epoch, the body "NODE:TOKEN:TYPE:payload". */
static int publish_args(redis_engine *e, const char *chan, int type, const void *data, size_t len,
                        uint64_t exclude, rreq *q)
{
    char head[80];
    int hn = snprintf(head, sizeof head, "%" PRIu64 ":%" PRIu64 ":%d:", e->node, exclude, type);
    char epoch[24];
    snprintf(epoch, sizeof epoch, "%" PRIu64, (rng_next(e) >> 1) | 1);
    q->argv = sn__calloc(R_PUB_ARGS, sizeof *q->argv);
    q->argl = sn__calloc(R_PUB_ARGS, sizeof *q->argl);
    if (q->argv == NULL || q->argl == NULL)
        return SN_ENOMEM;
    size_t cl = strlen(chan);
    const char *parts[R_PUB_ARGS] = {"2", NULL, NULL, chan, e->hist, epoch, NULL};
    for (int i = 0; i < R_PUB_ARGS; i++) {
        size_t n = i == 1 || i == 2 ? cl + 2 : i == 6 ? (size_t)hn + len : strlen(parts[i]);
        if ((q->argv[i] = sn__malloc(n + 1)) == NULL)
            return SN_ENOMEM;
        if (i == 1 || i == 2)
            snprintf(q->argv[i], n + 1, "%s:%c", chan, i == 1 ? 'm' : 's');
        else if (i == 6) {
            memcpy(q->argv[i], head, (size_t)hn);
            if (len > 0)
                memcpy(q->argv[i] + hn, data, len);
        } else
            memcpy(q->argv[i], parts[i], n);
        q->argl[i] = n;
    }
    return 0;
}

/* Waits, e->mu held, until pred or the deadline; false at the deadline. */
static bool wait_until(redis_engine *e, sn__cv *cv, int64_t until)
{
    return sn__cv_wait(cv, &e->mu, until) != SN_ETIMEDOUT;
}

static int r_publish(sn_hub_engine *base, const char *name, int type, const void *data, size_t len,
                     uint64_t exclude, sn_deadline dl)
{
    redis_engine *e = (redis_engine *)base;
    int64_t until = SN_MIN(sn__deadline_abs(dl, e->cfg.publish_timeout_ms),
                           sn_now_ms() + e->cfg.publish_timeout_ms);
    char chan[R_PREFIX_MAX + SN_HUB_NAME_MAX + 4];
    snprintf(chan, sizeof chan, "%sr:%s", e->prefix, name);
    pubwait w = {.done = false};
    sn__cv_init(&w.cv);
    sn__mutex_lock(&e->mu);
    int rc = 0;
    /* a room joining here: its publishers wait for the join, so that what
     * they publish comes back to them (a number after the baseline); one
     * that is only resynchronizing refills what they publish meanwhile.
     * With either connection down the join cannot end: down at once. */
    for (eroom *r; rc == 0 && (r = room_find(e, name)) != NULL && r->want && !r->known;) {
        if (e->cmd.fd < 0 || e->sub.fd < 0 || e->stopping)
            rc = SN_EHUB_DOWN;
        else if (!wait_until(e, &e->changed, until))
            rc = SN_ETIMEDOUT;
    }
    if (rc == 0 && (e->cmd.fd < 0 || e->stopping))
        rc = SN_EHUB_DOWN;
    rreq *q = NULL;
    if (rc == 0 && (q = sn__calloc(1, sizeof *q)) == NULL)
        rc = SN_ENOMEM;
    if (rc == 0 && (rc = publish_args(e, chan, type, data, len, exclude, q)) == 0) {
        bool idle = e->cmd.olen == 0;
        if ((rc = publish_cmd(e, q)) == 0) {
            q->kind = RQ_PUBLISH;
            q->sent = sn_now_ms();
            q->w = &w;
            if (e->fifo_tail != NULL)
                e->fifo_tail->next = q;
            else
                e->fifo_head = q;
            e->fifo_tail = q;
            q = NULL;
            if (idle && out_flush(&e->cmd) < 0)
                kick(e); /* the engine's thread sees it broken */
            else if (e->cmd.olen > 0)
                kick(e); /* the rest when the socket takes it */
        }
    }
    if (q != NULL)
        req_free(q);
    while (rc == 0 && !w.done)
        if (!wait_until(e, &w.cv, until))
            break;
    if (rc == 0 && !w.done) {
        rc = SN_ETIMEDOUT; /* the answer, when it comes, finds no publisher */
        for (rreq *p = e->fifo_head; p != NULL; p = p->next)
            if (p->w == &w)
                p->w = NULL;
    } else if (rc == 0) {
        rc = w.rc;
    }
    sn__mutex_unlock(&e->mu);
    sn__cv_destroy(&w.cv);
    return rc;
}

/* ---- the engine's thread --------------------------------------------------------------- */

/* Probes the subscriber connection (PING on it, a message to the node's
 * channel through cmd) and drops a connection that stopped hearing
 * (e->mu held). */
static void probe(redis_engine *e, acts *as)
{
    int64_t now = sn_now_ms();
    if (e->sub.fd >= 0 && e->cmd.fd >= 0 && now - e->last_probe >= e->cfg.probe_ms) {
        e->last_probe = now;
        const char *ping[] = {"PING"};
        size_t pingl[] = {4};
        if (out_cmd(&e->sub, 1, ping, pingl) == 0 && e->ping_wait == 0)
            e->ping_wait = now;
        const char *pub[] = {"PUBLISH", e->nodechan, "p"};
        size_t publ[] = {7, strlen(e->nodechan), 1};
        if (cmd_send(e, RQ_PROBE, 3, pub, publ) != NULL && e->node_wait == 0)
            e->node_wait = now;
    }
    /* deaf: a PING unanswered and nothing heard for the timeout; or the
     * node's messages no longer coming (its subscriptions lost) for three
     * times that, however busy the connection */
    int64_t t = e->cfg.probe_timeout_ms;
    if (e->sub.fd >= 0 &&
        ((e->ping_wait != 0 && now - e->ping_wait > t && now - e->sub_heard > t) ||
         (e->node_wait != 0 && now - e->node_wait > 3 * t)))
        sub_down(e, as, true);
    /* an answer on cmd overdue and nothing heard: the connection is deaf */
    if (e->cmd.fd >= 0 && e->fifo_head != NULL && now - e->fifo_head->sent > t &&
        now - e->cmd_heard > t) {
        cmd_down(e, as, true);
    }
}

/* How long poll may wait: until the next probe, reconnect or overdue answer. */
static int poll_timeout(redis_engine *e)
{
    int64_t now = sn_now_ms(), next = now + e->cfg.probe_ms;
    if (e->cmd.fd < 0)
        next = SN_MIN(next, e->cmd.retry_at);
    else if (e->sub.fd < 0)
        next = SN_MIN(next, e->sub.retry_at);
    else
        next = SN_MIN(next, e->last_probe + e->cfg.probe_ms);
    if (e->retry_soon)
        next = SN_MIN(next, now + R_RETRY_MS);
    return (int)SN_MAX(0, SN_MIN(next - now, e->cfg.probe_ms));
}

static void *engine_main(void *arg)
{
    redis_engine *e = arg;
    acts as = {0};
    for (;;) {
        if (e->cmd.fd < 0)
            conn_up(e, &e->cmd);
        if (e->sub.fd < 0 && e->cmd.fd >= 0)
            conn_up(e, &e->sub);
        sn__mutex_lock(&e->mu);
        reconcile(e);
        if (e->sub.fd >= 0 && out_flush(&e->sub) < 0)
            sub_down(e, &as, false);
        if (e->cmd.fd >= 0 && out_flush(&e->cmd) < 0)
            cmd_down(e, &as, false);
        struct pollfd p[4] = {
            {.fd = e->stopfd, .events = POLLIN},
            {.fd = e->kick, .events = POLLIN},
            {.fd = e->cmd.fd, .events = POLLIN | (e->cmd.olen > 0 ? POLLOUT : 0)},
            {.fd = e->sub.fd, .events = POLLIN | (e->sub.olen > 0 ? POLLOUT : 0)},
        };
        int timeout = poll_timeout(e);
        sn__mutex_unlock(&e->mu);
        acts_run(e, &as);
        int stall = atomic_exchange(&e->stall_ms, 0);
        if (stall > 0)
            sn_sleep_ms(stall); /* a server that falls behind Redis */
        if (poll(p, 4, timeout) < 0 && errno != EINTR)
            break;
        if (p[0].revents != 0)
            break;
        if (p[1].revents != 0) {
            eventfd_t v;
            eventfd_read(e->kick, &v);
        }
        /* cmd and sub are read here only: their descriptors change here only */
        if (p[2].fd >= 0 && (p[2].revents & (POLLIN | POLLERR | POLLHUP)) &&
            !conn_read(e, &e->cmd, &as)) {
            sn__mutex_lock(&e->mu);
            cmd_down(e, &as, false);
            sn__mutex_unlock(&e->mu);
        }
        if (p[3].fd >= 0 && e->sub.fd == p[3].fd && (p[3].revents & (POLLIN | POLLERR | POLLHUP)) &&
            !conn_read(e, &e->sub, &as)) {
            sn__mutex_lock(&e->mu);
            sub_down(e, &as, false);
            sn__mutex_unlock(&e->mu);
        }
        /* judged after the reads: a stall of this thread's own is no
         * deafness of Redis's */
        sn__mutex_lock(&e->mu);
        probe(e, &as);
        sn__mutex_unlock(&e->mu);
        acts_run(e, &as);
    }
    sn__free(as.a);
    return NULL;
}

void sn__hub_redis_rcvbuf(sn_hub_engine *base, int bytes)
{
    ((redis_engine *)base)->sub_rcvbuf = bytes;
}

void sn__hub_redis_stall(sn_hub_engine *base, int ms)
{
    atomic_store(&((redis_engine *)base)->stall_ms, ms);
    kick((redis_engine *)base);
}

/* ---- the engine ---------------------------------------------------------------------------- */

static int r_start(sn_hub_engine *base, sn_hub *h)
{
    redis_engine *e = (redis_engine *)base;
    e->base.hub = h; /* its thread calls the hub from the start */
    int rc = -pthread_create(&e->thread, NULL, engine_main, e);
    if (rc < 0) {
        e->base.hub = NULL;
        return rc;
    }
    e->started = true;
    return 0;
}

static void r_stop(sn_hub_engine *base)
{
    redis_engine *e = (redis_engine *)base;
    if (!e->started)
        return;
    sn__mutex_lock(&e->mu);
    e->stopping = true;
    sn__cv_broadcast(&e->changed); /* publishers waiting for a join go */
    sn__mutex_unlock(&e->mu);
    eventfd_write(e->stopfd, 1);
    pthread_join(e->thread, NULL);
    e->started = false;
    sn__mutex_lock(&e->mu);
    fifo_fail(e); /* a publisher still waiting learns it */
    conn_close(&e->cmd);
    conn_close(&e->sub);
    sn__mutex_unlock(&e->mu);
}

static void r_free(sn_hub_engine *base)
{
    redis_engine *e = (redis_engine *)base;
    r_stop(base);
    for (size_t b = 0; b < R_BUCKETS; b++)
        while (e->buckets[b] != NULL)
            room_free(e, e->buckets[b]);
    sn__free(e->cmd.out);
    sn__free(e->sub.out);
    if (e->kick >= 0)
        close(e->kick);
    if (e->stopfd >= 0)
        close(e->stopfd);
    sn__cv_destroy(&e->changed);
    sn__mutex_destroy(&e->mu);
    sn__free(e->host);
    sn__free(e->password);
    sn__free(e->prefix);
    sn__free(e);
}

static void r_stats(sn_hub_engine *base, sn_hub_engine_stats *out)
{
    redis_engine *e = (redis_engine *)base;
    sn__mutex_lock(&e->mu);
    *out = e->st;
    out->up = e->cmd.fd >= 0 && e->sub.fd >= 0;
    out->rooms = e->nsubscribed;
    sn__mutex_unlock(&e->mu);
}

static const sn_hub_engine_ops redis_ops = {
    .start = r_start,
    .stop = r_stop,
    .free = r_free,
    .room_open = r_room_open,
    .room_close = r_room_close,
    .publish = r_publish,
    .stats = r_stats,
};

static int config_check(sn_hub_redis_config *c, const sn_hub_redis_config *cfg)
{
    *c = cfg != NULL ? *cfg : (sn_hub_redis_config){0};
    if (c->connect_timeout_ms < 0 || c->publish_timeout_ms < 0 || c->probe_ms < 0 ||
        c->probe_timeout_ms < 0 || c->backoff_min_ms < 0 || c->backoff_max_ms < 0 ||
        (c->prefix != NULL && strlen(c->prefix) > R_PREFIX_MAX) ||
        (c->host != NULL && c->host[0] == 0))
        return SN_EINVAL;
    if (c->host == NULL)
        c->host = "127.0.0.1";
    if (c->port == 0)
        c->port = R_PORT_DEFAULT;
    if (c->prefix == NULL)
        c->prefix = R_PREFIX_DEFAULT;
    if (c->history == 0)
        c->history = R_HISTORY_DEFAULT;
    if (c->connect_timeout_ms == 0)
        c->connect_timeout_ms = R_CONNECT_DEFAULT;
    if (c->publish_timeout_ms == 0)
        c->publish_timeout_ms = R_PUBLISH_DEFAULT;
    if (c->probe_ms == 0)
        c->probe_ms = R_PROBE_DEFAULT;
    if (c->probe_timeout_ms == 0)
        c->probe_timeout_ms = R_PROBE_TIMEOUT_DEFAULT;
    if (c->backoff_min_ms == 0)
        c->backoff_min_ms = R_BACKOFF_MIN_DEFAULT;
    if (c->backoff_max_ms == 0)
        c->backoff_max_ms = R_BACKOFF_MAX_DEFAULT;
    if (c->backoff_max_ms < c->backoff_min_ms)
        c->backoff_max_ms = c->backoff_min_ms;
    return 0;
}

int sn_hub_redis_new(sn_hub_engine **out, const sn_hub_redis_config *cfg)
{
    if (out == NULL)
        return SN_EINVAL;
    sn_hub_redis_config c;
    int rc = config_check(&c, cfg);
    if (rc < 0)
        return rc;
    redis_engine *e = sn__calloc(1, sizeof *e);
    if (e == NULL)
        return SN_ENOMEM;
    e->base.ops = &redis_ops;
    e->cfg = c;
    e->cmd.fd = e->sub.fd = e->kick = e->stopfd = -1;
    sn__mutex_init(&e->mu);
    sn__cv_init(&e->changed);
    atomic_init(&e->gap_due, false);
    atomic_init(&e->stall_ms, 0);
    e->host = sn__strdup(c.host);
    e->prefix = sn__strdup(c.prefix);
    e->password = sn__strdup(c.password);
    snprintf(e->hist, sizeof e->hist, "%zu", c.history);
    if (getrandom(&e->rng, sizeof e->rng, 0) != sizeof e->rng)
        e->rng = (uint64_t)sn_now_ms() ^ (uint64_t)(uintptr_t)e;
    e->rng |= 1;
    e->node = (rng_next(e) >> 1) | 1;
    snprintf(e->nodechan, sizeof e->nodechan, "%sn:%" PRIu64, e->prefix ? e->prefix : "", e->node);
    if (e->host == NULL || e->prefix == NULL || (c.password != NULL && e->password == NULL))
        rc = SN_ENOMEM;
    else if ((e->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
             (e->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        rc = -errno;
    if (rc < 0) {
        r_free(&e->base);
        return rc;
    }
    e->cfg.host = e->host;
    e->cfg.prefix = e->prefix;
    e->cfg.password = e->password;
    *out = &e->base;
    return 0;
}

#endif /* SN_HAVE_HIREDIS */
