/* SPDX-License-Identifier: MIT */
/*
 * sn_hub.c: rooms, members, reference-counted messages, fan-out with
 * per-member bounded queues, pull subscriptions, writer threads on epoll.
 * The design is described in include/socknet/hub.h.
 *
 * Objects:
 *  - a message: one complete unmasked frame, shared by reference count;
 *  - a room: its members (an array), its sequence number, its counters,
 *    all under the room's mutex;
 *  - a member: a queue of (message, sequence) entries, under its room's
 *    mutex; either a session's (through a link) or a pull subscription's;
 *  - a link: one per session in the hub: the session, its memberships, its
 *    registration in the epoll set (keyed by slot and generation, so a
 *    stale event never reaches a freed link).
 *
 * Locks, in the order they are taken: hub->mu (rooms by name, links,
 * memberships), then a room's mu (its members' queues and counters, its
 * dirty list), then hub->runq_mu (rooms waiting for a writer's flush) or a
 * session's write locks, only ever tried (sn__ws_try_send_frames).
 * Delivery under a room's mutex is a non-blocking send and nothing else.
 * A writer thread serving a link counts itself in link->users (under
 * hub->mu); whoever changes a link's memberships or frees it waits for
 * users to reach 0 (hub->idle), so writers walk a link's members unlocked.
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "sn_hub_engine.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "sn_ws_frame.h"
#include "sn_ws_share.h"
#include "socknet.h"

#define HUB_BUCKETS 1024
#define HUB_QUEUE_DEFAULT 1024
#define HUB_QUEUE_BYTES_DEFAULT (1u << 20)
#define HUB_WAIT_DEFAULT 1000
#define HUB_MAX_MESSAGE_DEFAULT (1u << 20)
#define HUB_CLOSE_TIMEOUT_DEFAULT 2000
#define HUB_SWEEP_MS 100
#define HUB_STOP_KEY UINT64_MAX
#define HUB_KICK_KEY (UINT64_MAX - 1)
#define HUB_BATCH 64        /* frames in one writev */
#define HUB_FLUSH_CHUNK 64  /* members flushed per hold of a room's mutex */
#define HUB_BUSY_MEMBERS 16 /* a room this big ... */
#define HUB_BUSY_NS 1000000 /* ... publishing again within this is busy */
#define HUB_EVENTS 64
#define HUB_RETRY_MAX 64
#define HUB_PAYLOAD 16 /* a message's payload starts here in its buffer (aligned) */

struct sn_hub_msg {
    atomic_long refs;
    sn_hub *hub;
    int type;
    uint64_t epoch;                     /* from an engine; 0: a local room's */
    size_t flen;                        /* bytes of the whole frame */
    uint8_t *frame;                     /* into buf: the header ends where the payload starts */
    alignas(max_align_t) uint8_t buf[]; /* header, payload at HUB_PAYLOAD, a NUL */
};

typedef struct entry {
    sn_hub_msg *msg; /* NULL: a gap (subscriptions only) */
    uint64_t seq;
} entry;

typedef struct room room;
typedef struct hub_link hub_link;

typedef struct member {
    room *room;
    hub_link *link;           /* NULL: a pull subscription */
    struct member *link_next; /* the link's memberships */
    size_t idx;               /* in room->members */
    entry *q;                 /* ring of qcap entries */
    size_t qcap, qhead, qlen, qbytes;
    uint64_t delivered, dropped;
    bool dead;         /* no more deliveries (closed, failed, evicted) */
    bool gap_owed;     /* a subscription's gap, its place dropped by the policy */
    bool disconnected; /* evicted by SN_HUB_DISCONNECT */
    int closing;       /* evicted, its close frame (this code) not sent yet */
    bool dirty;        /* in its room's dirty list */
    size_t dirty_idx;
    int64_t close_by; /* when to cut the connection if it is still not sent */
} member;

struct sn_hub_sub {
    member m; /* first: a member is freed as its subscription */
    sn__cv avail;
    sn_hub *hub;
};

struct room {
    room *next; /* hash chain */
    uint32_t hash;
    char *name;
    sn_hub_room_config cfg;
    int refs; /* publishers between lookup and done; under hub->mu */
    pthread_mutex_t mu;
    sn__cv space; /* SN_HUB_WAIT publishers wait here */
    int waiters;
    member **members;
    size_t n, cap;
    member **dirty; /* members with queued messages for the room's flush */
    size_t ndirty, dcap;
    bool scheduled;      /* in the hub's run queue, or being flushed */
    room *run_next;      /* the run queue; under hub->runq_mu */
    int64_t last_pub_ns; /* when the last publish ended */
    uint64_t seq, delivered, direct, dropped, disconnected;
    bool spans;     /* through the engine (set when made, never changed) */
    bool synced;    /* spans: the engine's join is done */
    uint64_t epoch; /* spans: of seq */
    uint64_t gaps;
};

struct hub_link {
    sn_hub *hub;
    sn_ws *ws;
    int fd;
    uint64_t key; /* the epoll key: generation << 32 | slot */
    member *members;
    atomic_bool armed; /* EPOLLOUT is armed */
    int users;         /* writers serving it; under hub->mu */
};

struct sn_hub {
    sn_hub_config cfg;
    pthread_mutex_t mu;
    sn__cv idle; /* a link's users fell to 0 */
    room *buckets[HUB_BUCKETS];
    size_t nrooms, nmembers, nsessions;
    hub_link **slots; /* by slot number; NULL: free */
    uint32_t *gens;
    size_t nslots;
    atomic_long messages;
    atomic_long closing; /* members with a close frame waiting */
    atomic_uint_fast64_t published, wakeups, gaps;
    int ep, stopfd, kickfd;
    pthread_mutex_t runq_mu; /* the run queue: rooms with dirty members */
    room *runq_head, *runq_tail;
    pthread_t *writers;
    int nwriters;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- messages ------------------------------------------------------------------- */

/* Whether a message of type, data and len may be published. */
static bool msg_ok(const sn_hub *h, int type, const void *data, size_t len)
{
    return (type == SN_WS_TEXT || type == SN_WS_BINARY) && (data != NULL || len == 0) &&
           len <= h->cfg.max_message;
}

static int msg_new(sn_hub *h, int type, const void *data, size_t len, sn_hub_msg **out)
{
    if (!msg_ok(h, type, data, len))
        return SN_EINVAL;
    uint8_t head[SN_WS_HEAD_MAX];
    size_t hlen = sn__ws_head_encode(head, true, 0, (uint8_t)type, NULL, len);
    sn_hub_msg *m = sn__malloc(sizeof *m + HUB_PAYLOAD + len + 1);
    if (m == NULL)
        return SN_ENOMEM;
    atomic_init(&m->refs, 1);
    m->hub = h;
    m->type = type;
    m->flen = hlen + len;
    m->frame = m->buf + HUB_PAYLOAD - hlen;
    memcpy(m->frame, head, hlen);
    if (len > 0)
        memcpy(m->buf + HUB_PAYLOAD, data, len);
    m->buf[HUB_PAYLOAD + len] = 0;
    atomic_fetch_add(&h->messages, 1);
    *out = m;
    return 0;
}

static sn_hub_msg *msg_ref(sn_hub_msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void sn_hub_msg_unref(sn_hub_msg *m)
{
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    atomic_fetch_sub(&m->hub->messages, 1);
    sn__free(m);
}

int sn_hub_msg_type(const sn_hub_msg *m)
{
    return m->type;
}

uint64_t sn_hub_msg_epoch(const sn_hub_msg *m)
{
    return m->epoch;
}

const void *sn_hub_msg_data(const sn_hub_msg *m, size_t *len)
{
    if (len != NULL)
        *len = (size_t)(m->frame + m->flen - (m->buf + HUB_PAYLOAD));
    return m->buf + HUB_PAYLOAD;
}

/* ---- a member's queue (room->mu held) ----------------------------------------------- */

static bool q_full(const member *m, const sn_hub_msg *msg)
{
    const sn_hub_room_config *c = &m->room->cfg;
    return m->qlen >= c->max_queue || (m->qlen > 0 && m->qbytes + msg->flen > c->max_queue_bytes);
}

static int q_push(member *m, sn_hub_msg *msg, uint64_t seq)
{
    if (m->qlen == m->qcap) { /* grows as needed: an idle member holds none */
        size_t cap = m->qcap ? m->qcap * 2 : 8;
        entry *q = sn__malloc(cap * sizeof *q);
        if (q == NULL)
            return SN_ENOMEM;
        for (size_t i = 0; i < m->qlen; i++)
            q[i] = m->q[(m->qhead + i) % m->qcap];
        sn__free(m->q);
        m->q = q;
        m->qcap = cap;
        m->qhead = 0;
    }
    m->q[(m->qhead + m->qlen) % m->qcap] = (entry){msg != NULL ? msg_ref(msg) : NULL, seq};
    m->qlen++;
    m->qbytes += msg != NULL ? msg->flen : 0;
    return 0;
}

static entry q_pop(member *m)
{
    entry e = m->q[m->qhead];
    m->qhead = (m->qhead + 1) % m->qcap;
    m->qlen--;
    m->qbytes -= e.msg != NULL ? e.msg->flen : 0;
    if (m->qlen == 0) { /* an idle member gives its queue back */
        sn__free(m->q);
        m->q = NULL;
        m->qcap = m->qhead = 0;
    }
    return e;
}

/* Drops everything queued; returns how many. */
static size_t q_clear(member *m)
{
    size_t n = m->qlen;
    while (m->qlen > 0)
        sn_hub_msg_unref(q_pop(m).msg);
    return n;
}

/* A queue got shorter: a waiting publisher may go on. */
static void room_space(room *r)
{
    if (r->waiters > 0)
        sn__cv_broadcast(&r->space);
}

/* ---- delivery (room->mu held) --------------------------------------------------------- */

static void arm(sn_hub *h, hub_link *l)
{
    if (atomic_exchange(&l->armed, true))
        return;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLONESHOT, .data.u64 = l->key};
    epoll_ctl(h->ep, EPOLL_CTL_MOD, l->fd, &ev); /* fails only for a closed fd */
}

/* The member's session failed: no more deliveries. */
static void member_fail(room *r, member *m)
{
    m->dead = true;
    size_t n = q_clear(m);
    m->dropped += n;
    r->dropped += n;
    room_space(r);
}

static void close_done(member *m)
{
    m->closing = 0;
    atomic_fetch_sub(&m->link->hub->closing, 1);
}

/* An evicted member's close frame, once the socket takes it; then the
 * receiving side is shut, so that the session's handler ends at once.
 * Returns SN_EAGAIN / SN_EBUSY while it waits. */
static int send_close(member *m)
{
    int code = m->closing;
    uint8_t frame[4] = {0x80 | SN_WS_CLOSE, 2, (uint8_t)(code >> 8), (uint8_t)code};
    int rc = sn__ws_try_send_frame(m->link->ws, frame, sizeof frame, true);
    if (rc == SN_EAGAIN || rc == SN_EBUSY)
        return rc;
    shutdown(m->link->fd, rc >= 0 ? SHUT_RD : SHUT_RDWR);
    close_done(m);
    return 0;
}

/* Closes a session's membership with code: the queue is dropped and a
 * close frame goes out as soon as the socket takes it (within the hub's
 * close_timeout_ms, else the connection is cut). */
static void member_close(sn_hub *h, room *r, member *m, int code)
{
    member_fail(r, m);
    m->closing = code;
    m->close_by = sn_now_ms() + h->cfg.close_timeout_ms;
    atomic_fetch_add(&h->closing, 1);
    if (send_close(m) < 0)
        arm(h, m->link);
}

/* SN_HUB_DISCONNECT: closed with the room's close_code. A subscription
 * learns it from sn_hub_sub_recv. */
static void member_evict(sn_hub *h, room *r, member *m)
{
    m->disconnected = true;
    r->disconnected++;
    if (m->link == NULL) {
        member_fail(r, m);
        sn__cv_broadcast(&((sn_hub_sub *)m)->avail);
        return;
    }
    member_close(h, r, m, r->cfg.close_code);
}

static void delivered(room *r, member *m, bool direct)
{
    m->delivered++;
    r->delivered++;
    r->direct += direct;
}

/* Writes the member's queue out, in order, as far as the socket takes it.
 * Returns 0 (empty), SN_EAGAIN (the socket is full), SN_EBUSY (another
 * sender holds the session), or an error (the member failed). */
static int write_queue(room *r, member *m)
{
    if (m->closing)
        return send_close(m);
    while (m->qlen > 0 && !m->dead) {
        struct iovec iov[HUB_BATCH]; /* queued frames, in order, in one writev */
        int n = 0, taken;
        for (; n < HUB_BATCH && (size_t)n < m->qlen; n++) {
            const sn_hub_msg *msg = m->q[(m->qhead + (size_t)n) % m->qcap].msg;
            iov[n] = (struct iovec){msg->frame, msg->flen};
        }
        int rc = sn__ws_try_send_frames(m->link->ws, iov, n, &taken);
        for (int i = 0; i < taken; i++) {
            sn_hub_msg_unref(q_pop(m).msg);
            delivered(r, m, false);
        }
        if (taken > 0)
            room_space(r);
        if (rc == SN_EAGAIN || rc == SN_EBUSY)
            return rc;
        if (rc < 0) {
            member_fail(r, m);
            return rc;
        }
        if (rc == 1 || taken < n)
            return SN_EAGAIN; /* the socket is full, or the rest of a frame waits */
    }
    return 0;
}

/* The member's queue is full: the room's policy. Returns true when the
 * message may be queued now. *missed: SN_HUB_WAIT's member missed it. */
static bool apply_policy(sn_hub *h, room *r, member *m, const sn_hub_msg *msg, bool *missed)
{
    switch (r->cfg.policy) {
    case SN_HUB_DROP_OLDEST:
        while (m->qlen > 0 && q_full(m, msg)) {
            entry e = q_pop(m);
            if (e.msg == NULL) { /* a gap is never dropped: said before the rest */
                m->gap_owed = true;
                continue;
            }
            sn_hub_msg_unref(e.msg);
            m->dropped++;
            r->dropped++;
        }
        return true;
    case SN_HUB_DISCONNECT:
        member_evict(h, r, m);
        return false;
    case SN_HUB_WAIT:
        *missed = true;
        /* fall through */
    default: /* SN_HUB_DROP_NEWEST */
        m->dropped++;
        r->dropped++;
        return false;
    }
}

/* Gives the message to one member: straight to its socket when nothing is
 * queued before it, else to its queue. Returns whether the member got it. */
/* Puts the member in its room's dirty list (the room's next flush). */
static void mark_dirty(room *r, member *m)
{
    if (m->dirty)
        return;
    if (r->ndirty == r->dcap) {
        size_t cap = r->dcap ? r->dcap * 2 : 16;
        member **d = sn__realloc(r->dirty, cap * sizeof *d);
        if (d == NULL)
            return; /* the member's queue waits for its next publish or EPOLLOUT */
        r->dirty = d;
        r->dcap = cap;
    }
    m->dirty = true;
    m->dirty_idx = r->ndirty;
    r->dirty[r->ndirty++] = m;
}

static void unmark_dirty(room *r, member *m)
{
    if (!m->dirty)
        return;
    r->dirty[m->dirty_idx] = r->dirty[--r->ndirty];
    r->dirty[m->dirty_idx]->dirty_idx = m->dirty_idx;
    m->dirty = false;
}

/* Gives the room's dirty members to the writer threads. */
static void schedule(sn_hub *h, room *r)
{
    if (r->scheduled || r->ndirty == 0)
        return;
    r->scheduled = true;
    sn__mutex_lock(&h->runq_mu);
    r->run_next = NULL;
    if (h->runq_tail != NULL)
        h->runq_tail->run_next = r;
    else
        h->runq_head = r;
    h->runq_tail = r;
    sn__mutex_unlock(&h->runq_mu);
    eventfd_write(h->kickfd, 1);
}

/* Gives the message to one member: straight to its socket when nothing is
 * queued before it and the room is not busy; else to its queue, flushed by
 * a writer thread: at the room's flush when it is busy (many frames per
 * writev), when its socket becomes writable otherwise. Returns whether the
 * member got it. */
static bool offer(sn_hub *h, room *r, member *m, sn_hub_msg *msg, uint64_t seq, bool batch,
                  bool *missed)
{
    if (m->qlen == 0 && m->link != NULL && !batch) {
        int rc = sn__ws_try_send_frame(m->link->ws, msg->frame, msg->flen, false);
        if (rc == 0 || rc == 1) {
            delivered(r, m, true);
            if (rc == 1)
                arm(h, m->link);
            return true;
        }
        if (rc != SN_EAGAIN && rc != SN_EBUSY) {
            member_fail(r, m);
            return false;
        }
    }
    if (q_full(m, msg) && m->link != NULL && batch && write_queue(r, m) < 0 && m->dead)
        return false; /* full before its flush: written now if the socket takes it */
    if (q_full(m, msg) && !apply_policy(h, r, m, msg, missed))
        return false;
    if (q_push(m, msg, seq) < 0) {
        m->dropped++;
        r->dropped++;
        return false;
    }
    if (m->link == NULL)
        sn__cv_signal(&((sn_hub_sub *)m)->avail);
    else if (batch)
        mark_dirty(r, m);
    else
        arm(h, m->link);
    return true;
}

/* Whom a message is not for: a dead member, the session `exclude` or the
 * session whose link's key is `exclude_key` - 1 (an engine's message;
 * 0: none). */
static bool excluded(const member *m, const sn_ws *exclude, uint64_t exclude_key)
{
    return m->dead || (m->link != NULL && ((exclude != NULL && m->link->ws == exclude) ||
                                           (exclude_key != 0 && m->link->key + 1 == exclude_key)));
}

/* SN_HUB_WAIT: whether a member that will get msg has a full queue. */
static bool someone_full(const room *r, const sn_hub_msg *msg, const sn_ws *exclude)
{
    for (size_t i = 0; i < r->n; i++)
        if (!excluded(r->members[i], exclude, 0) && q_full(r->members[i], msg))
            return true;
    return false;
}

/* Gives msg, numbered seq, to every member of the room (r->mu held).
 * Returns the members reached, or SN_ETIMEDOUT (SN_HUB_WAIT: missed). */
static int fan_out(sn_hub *h, room *r, sn_hub_msg *msg, uint64_t seq, const sn_ws *exclude,
                   uint64_t exclude_key, bool batch)
{
    int reached = 0;
    bool missed = false;
    /* a busy room (a big one publishing again soon, or a flush under way)
     * is written by the writer threads, many frames per system call */
    batch = batch || r->scheduled ||
            (r->n >= HUB_BUSY_MEMBERS && now_ns() - r->last_pub_ns < HUB_BUSY_NS);
    for (size_t i = 0; i < r->n; i++) {
        member *m = r->members[i];
        if (!excluded(m, exclude, exclude_key) && offer(h, r, m, msg, seq, batch, &missed))
            reached++;
    }
    schedule(h, r);
    r->last_pub_ns = now_ns(); /* the end of this one: the next one soon is "busy" */
    return missed ? SN_ETIMEDOUT : reached;
}

/* Accepts msg in the room (its sequence number) and gives it to every
 * member. Returns the members reached, or SN_ETIMEDOUT (SN_HUB_WAIT). */
static int publish_room(sn_hub *h, room *r, sn_hub_msg *msg, const sn_ws *exclude, sn_deadline dl)
{
    sn__mutex_lock(&r->mu);
    if (r->cfg.policy == SN_HUB_WAIT) {
        int64_t until = SN_MIN(sn_now_ms() + r->cfg.wait_ms, sn__deadline_abs(dl, r->cfg.wait_ms));
        while (someone_full(r, msg, exclude)) {
            r->waiters++;
            int rc = sn__cv_wait(&r->space, &r->mu, until);
            r->waiters--;
            if (rc == SN_ETIMEDOUT)
                break;
        }
    }
    int rc = fan_out(h, r, msg, ++r->seq, exclude, 0, false);
    sn__mutex_unlock(&r->mu);
    atomic_fetch_add_explicit(&h->published, 1, memory_order_relaxed);
    return rc;
}

/* ---- rooms (hub->mu held) --------------------------------------------------------- */

static uint32_t name_hash(const char *s)
{
    uint32_t x = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        x = (x ^ (uint8_t)*s) * 16777619u;
    return x;
}

static bool name_ok(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = strnlen(name, SN_HUB_NAME_MAX + 1);
    return n > 0 && n <= SN_HUB_NAME_MAX;
}

static room *room_find(sn_hub *h, const char *name)
{
    uint32_t x = name_hash(name);
    for (room *r = h->buckets[x % HUB_BUCKETS]; r != NULL; r = r->next)
        if (r->hash == x && strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

/* A room's settings: the hub's, as room_fn changes them. */
static sn_hub_room_config room_config(sn_hub *h, const char *name)
{
    sn_hub_room_config cfg = h->cfg.room;
    if (h->cfg.room_fn != NULL) {
        sn_hub_room_config c = cfg;
        h->cfg.room_fn(name, &c, h->cfg.user);
        if (c.policy >= SN_HUB_DROP_OLDEST && c.policy <= SN_HUB_WAIT && c.max_queue > 0 &&
            c.max_queue_bytes > 0 && c.wait_ms >= 0 &&
            (c.close_code == 1008 || c.close_code == 1013))
            cfg = c; /* else the hub's settings stand */
    }
    return cfg;
}

static int room_get(sn_hub *h, const char *name, room **out)
{
    room *r = room_find(h, name);
    if (r != NULL) {
        *out = r;
        return 0;
    }
    if ((r = sn__calloc(1, sizeof *r)) == NULL || (r->name = sn__strdup(name)) == NULL) {
        sn__free(r);
        return SN_ENOMEM;
    }
    r->hash = name_hash(name);
    r->cfg = room_config(h, name);
    r->spans = h->cfg.engine != NULL && !r->cfg.local;
    if (r->spans)
        h->cfg.engine->ops->room_open(h->cfg.engine, name);
    sn__mutex_init(&r->mu);
    sn__cv_init(&r->space);
    r->next = h->buckets[r->hash % HUB_BUCKETS];
    h->buckets[r->hash % HUB_BUCKETS] = r;
    h->nrooms++;
    *out = r;
    return 0;
}

/* Frees the room if nobody is in it or about to publish to it. */
static void room_release(sn_hub *h, room *r)
{
    sn__mutex_lock(&r->mu);
    bool busy = r->n > 0 || r->refs > 0 || r->scheduled;
    sn__mutex_unlock(&r->mu);
    if (busy)
        return; /* a writer flushing it releases it when done */
    room **p = &h->buckets[r->hash % HUB_BUCKETS];
    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    h->nrooms--;
    if (r->spans)
        h->cfg.engine->ops->room_close(h->cfg.engine, r->name);
    sn__mutex_destroy(&r->mu);
    sn__cv_destroy(&r->space);
    sn__free(r->members);
    sn__free(r->dirty);
    sn__free(r->name);
    sn__free(r);
}

static int room_add(room *r, member *m)
{
    sn__mutex_lock(&r->mu);
    int rc = 0;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        member **a = sn__realloc(r->members, cap * sizeof *a);
        if (a == NULL)
            rc = SN_ENOMEM;
        else {
            r->members = a;
            r->cap = cap;
        }
    }
    if (rc == 0) {
        m->room = r;
        m->idx = r->n;
        r->members[r->n++] = m;
    }
    sn__mutex_unlock(&r->mu);
    return rc;
}

/* Takes the member out of its room and frees it (its link's list is the
 * caller's). What was queued for it is dropped. */
static void member_remove(sn_hub *h, member *m)
{
    room *r = m->room;
    sn__mutex_lock(&r->mu);
    r->members[m->idx] = r->members[--r->n];
    r->members[m->idx]->idx = m->idx;
    unmark_dirty(r, m);
    size_t n = q_clear(m);
    m->dropped += n;
    if (m->closing)
        close_done(m);
    room_space(r); /* a waiting publisher need not wait for it any more */
    sn__mutex_unlock(&r->mu);
    h->nmembers--;
    if (m->link == NULL)
        sn__cv_destroy(&((sn_hub_sub *)m)->avail);
    sn__free(m);
    room_release(h, r);
}

/* ---- links: a session's presence in the hub (hub->mu held) ----------------------------- */

static hub_link *link_at(sn_hub *h, uint64_t key)
{
    uint32_t slot = (uint32_t)key;
    if (slot >= h->nslots || h->slots[slot] == NULL || h->gens[slot] != (uint32_t)(key >> 32))
        return NULL;
    return h->slots[slot];
}

/* Waits until no writer serves the link (hub->mu is released meanwhile). */
static void link_quiet(sn_hub *h, hub_link *l)
{
    while (l->users > 0)
        sn__cv_wait(&h->idle, &h->mu, SN_DEADLINE_NEVER);
}

static void on_ws_free(sn_ws *ws, void *ext);

static int slot_get(sn_hub *h, uint32_t *out)
{
    for (size_t i = 0; i < h->nslots; i++)
        if (h->slots[i] == NULL) {
            *out = (uint32_t)i;
            return 0;
        }
    size_t n = h->nslots ? h->nslots * 2 : 16;
    hub_link **s = sn__realloc(h->slots, n * sizeof *s);
    if (s != NULL)
        h->slots = s;
    uint32_t *g = s ? sn__realloc(h->gens, n * sizeof *g) : NULL;
    if (g == NULL)
        return SN_ENOMEM;
    h->gens = g;
    for (size_t i = h->nslots; i < n; i++) {
        h->slots[i] = NULL;
        h->gens[i] = 0;
    }
    *out = (uint32_t)h->nslots;
    h->nslots = n;
    return 0;
}

static int link_new(sn_hub *h, sn_ws *ws, hub_link **out)
{
    uint32_t slot;
    hub_link *l = sn__calloc(1, sizeof *l);
    if (l == NULL || slot_get(h, &slot) < 0) {
        sn__free(l);
        return SN_ENOMEM;
    }
    l->hub = h;
    l->ws = ws;
    l->fd = sn__ws_fd(ws);
    l->key = (uint64_t)h->gens[slot] << 32 | slot;
    atomic_init(&l->armed, false);
    struct epoll_event ev = {.events = EPOLLONESHOT, .data.u64 = l->key}; /* disarmed */
    if (epoll_ctl(h->ep, EPOLL_CTL_ADD, l->fd, &ev) < 0) {
        int err = -errno;
        sn__free(l);
        return err;
    }
    h->slots[slot] = l;
    h->nsessions++;
    sn__ws_set_ext(ws, l, on_ws_free);
    *out = l;
    return 0;
}

static void link_free(sn_hub *h, hub_link *l)
{
    uint32_t slot = (uint32_t)l->key;
    epoll_ctl(h->ep, EPOLL_CTL_DEL, l->fd, NULL);
    h->slots[slot] = NULL;
    h->gens[slot]++; /* events still in flight for it are now stale */
    h->nsessions--;
    sn__ws_set_ext(l->ws, NULL, NULL);
    sn__free(l);
}

static member **link_find(hub_link *l, const char *name)
{
    member **p = &l->members;
    while (*p != NULL && strcmp((*p)->room->name, name) != 0)
        p = &(*p)->link_next;
    return p;
}

/* The session's link in this hub (NULL: none); SN_EBUSY: another hub's. */
static int link_of(sn_hub *h, sn_ws *ws, hub_link **out)
{
    hub_link *l = sn__ws_ext(ws);
    *out = l;
    if (l != NULL && l->hub != h)
        return SN_EBUSY;
    if (l != NULL)
        link_quiet(h, l);
    return 0;
}

/* ---- joining and leaving ---------------------------------------------------------------- */

int sn_hub_join(sn_hub *h, const char *name, sn_ws *ws)
{
    if (h == NULL || ws == NULL || !name_ok(name) || sn__ws_masks(ws))
        return SN_EINVAL;
    sn__mutex_lock(&h->mu);
    hub_link *l;
    room *r = NULL;
    member *m = NULL;
    int rc = link_of(h, ws, &l);
    if (rc == 0 && l != NULL && *link_find(l, name) != NULL)
        rc = SN_EEXIST;
    if (rc == 0)
        rc = room_get(h, name, &r);
    bool made = rc == 0 && l == NULL;
    if (made)
        rc = link_new(h, ws, &l);
    made = made && rc == 0;
    if (rc == 0 && (m = sn__calloc(1, sizeof *m)) == NULL)
        rc = SN_ENOMEM;
    if (rc == 0)
        m->link = l; /* before publishers can see it */
    if (rc == 0 && (rc = room_add(r, m)) == 0) {
        m->link_next = l->members;
        l->members = m;
        h->nmembers++;
        m = NULL;
    }
    sn__free(m);
    if (rc == 0)
        sn__ws_trim(ws); /* an idle member holds no write buffer */
    if (rc < 0 && made)
        link_free(h, l);
    if (rc < 0 && r != NULL)
        room_release(h, r);
    sn__mutex_unlock(&h->mu);
    return rc;
}

int sn_hub_leave(sn_hub *h, const char *name, sn_ws *ws)
{
    if (h == NULL || ws == NULL || name == NULL)
        return SN_EINVAL;
    sn__mutex_lock(&h->mu);
    hub_link *l;
    int rc = link_of(h, ws, &l) == 0 && l != NULL ? 0 : SN_ENOENT;
    member **p = rc == 0 ? link_find(l, name) : NULL;
    if (p != NULL && *p != NULL) {
        member *m = *p;
        *p = m->link_next;
        member_remove(h, m);
        if (l->members == NULL)
            link_free(h, l);
    } else {
        rc = SN_ENOENT;
    }
    sn__mutex_unlock(&h->mu);
    return rc;
}

void sn_hub_leave_all(sn_hub *h, sn_ws *ws)
{
    if (h == NULL || ws == NULL)
        return;
    sn__mutex_lock(&h->mu);
    hub_link *l;
    if (link_of(h, ws, &l) == 0 && l != NULL) {
        while (l->members != NULL) {
            member *m = l->members;
            l->members = m->link_next;
            member_remove(h, m);
        }
        link_free(h, l);
    }
    sn__mutex_unlock(&h->mu);
}

static void on_ws_free(sn_ws *ws, void *ext)
{
    sn_hub_leave_all(((hub_link *)ext)->hub, ws);
}

/* ---- publishing ---------------------------------------------------------------------- */

/* The room by name, held against its release (NULL: no member here). */
static room *room_hold(sn_hub *h, const char *name)
{
    sn__mutex_lock(&h->mu);
    room *r = room_find(h, name);
    if (r != NULL)
        r->refs++;
    sn__mutex_unlock(&h->mu);
    return r;
}

static void room_unhold(sn_hub *h, room *r)
{
    sn__mutex_lock(&h->mu);
    r->refs--;
    room_release(h, r);
    sn__mutex_unlock(&h->mu);
}

/* Publishes through the engine: to a spanning room, whether it has members
 * here or not (exclude is found by its link's key: the message comes back
 * from the engine). Returns 1 when the room is a local one. */
static int publish_spanning(sn_hub *h, const char *name, int type, const void *data, size_t len,
                            const sn_ws *exclude, sn_deadline dl)
{
    sn__mutex_lock(&h->mu);
    room *r = room_find(h, name);
    bool spans = r != NULL ? r->spans : !room_config(h, name).local;
    /* the session's link in this hub (none: it is in none of its rooms) */
    hub_link *l = exclude != NULL ? sn__ws_ext(exclude) : NULL;
    uint64_t key = l != NULL && l->hub == h ? l->key + 1 : 0; /* 0 is none; a key may be 0 */
    sn__mutex_unlock(&h->mu);
    if (!spans)
        return 1;
    sn_hub_engine *e = h->cfg.engine;
    return e->ops->publish(e, name, type, data, len, key, dl);
}

int sn_hub_publish(sn_hub *h, const char *name, int type, const void *data, size_t len,
                   const sn_ws *exclude, sn_deadline dl)
{
    if (h == NULL || name == NULL)
        return SN_EINVAL;
    int rc;
    if (h->cfg.engine != NULL) {
        if (!name_ok(name) || !msg_ok(h, type, data, len))
            return SN_EINVAL;
        if ((rc = publish_spanning(h, name, type, data, len, exclude, dl)) <= 0)
            return rc;
    }
    sn_hub_msg *msg;
    if ((rc = msg_new(h, type, data, len, &msg)) < 0)
        return rc;
    room *r = room_hold(h, name);
    rc = SN_EHUB_NOROOM;
    if (r != NULL) {
        rc = publish_room(h, r, msg, exclude, dl);
        room_unhold(h, r);
    }
    sn_hub_msg_unref(msg);
    return rc;
}

int sn_hub_publish_all(sn_hub *h, int type, const void *data, size_t len, const sn_ws *exclude,
                       sn_deadline dl)
{
    if (h == NULL)
        return SN_EINVAL;
    sn_hub_msg *msg;
    int rc = msg_new(h, type, data, len, &msg);
    if (rc < 0)
        return rc;
    sn__mutex_lock(&h->mu);
    room **all = sn__malloc((h->nrooms + 1) * sizeof *all);
    size_t n = 0;
    for (size_t b = 0; all != NULL && b < HUB_BUCKETS; b++)
        for (room *r = h->buckets[b]; r != NULL; r = r->next, n++) {
            r->refs++;
            all[n] = r;
        }
    sn__mutex_unlock(&h->mu);
    int64_t until = sn__deadline_abs(dl, h->cfg.room.wait_ms);
    int reached = all != NULL ? 0 : SN_ENOMEM, first_err = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i]->spans)
            rc = publish_spanning(h, all[i]->name, type, data, len, exclude, until);
        else
            rc = publish_room(h, all[i], msg, exclude, until);
        if (rc < 0 && first_err == 0)
            first_err = rc;
        reached += rc > 0 ? rc : 0;
    }
    sn__mutex_lock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        all[i]->refs--;
        room_release(h, all[i]);
    }
    sn__mutex_unlock(&h->mu);
    sn__free(all);
    sn_hub_msg_unref(msg);
    return first_err < 0 ? first_err : reached;
}

/* ---- pull subscriptions ------------------------------------------------------------------ */

int sn_hub_subscribe(sn_hub *h, const char *name, sn_hub_sub **out)
{
    if (h == NULL || out == NULL || !name_ok(name))
        return SN_EINVAL;
    sn_hub_sub *s = sn__calloc(1, sizeof *s);
    if (s == NULL)
        return SN_ENOMEM;
    sn__cv_init(&s->avail);
    s->hub = h;
    sn__mutex_lock(&h->mu);
    room *r;
    int rc = room_get(h, name, &r);
    if (rc == 0 && (rc = room_add(r, &s->m)) < 0)
        room_release(h, r);
    if (rc == 0)
        h->nmembers++;
    sn__mutex_unlock(&h->mu);
    if (rc < 0) {
        sn__cv_destroy(&s->avail);
        sn__free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void sn_hub_unsubscribe(sn_hub_sub *s)
{
    if (s == NULL)
        return;
    sn_hub *h = s->hub;
    sn__mutex_lock(&h->mu);
    member_remove(h, &s->m);
    sn__mutex_unlock(&h->mu);
}

int sn_hub_sub_recv(sn_hub_sub *s, sn_hub_msg **out, uint64_t *seq, sn_deadline dl)
{
    if (s == NULL || out == NULL)
        return SN_EINVAL;
    int64_t until = sn__deadline_abs(dl, -1);
    member *m = &s->m;
    room *r = m->room;
    sn__mutex_lock(&r->mu);
    int rc = 0;
    while (m->qlen == 0 && !m->gap_owed && !m->dead && rc == 0)
        rc = sn__cv_wait(&s->avail, &r->mu, until);
    if (m->gap_owed) {
        m->gap_owed = false;
        rc = SN_EHUB_GAP;
    } else if (m->qlen > 0) {
        entry e = q_pop(m);
        *out = e.msg;
        if (seq != NULL)
            *seq = e.seq;
        rc = e.msg != NULL ? 0 : SN_EHUB_GAP;
        if (rc == 0)
            delivered(r, m, false);
        room_space(r);
    } else if (m->dead) {
        rc = SN_EHUB_SLOW;
    }
    sn__mutex_unlock(&r->mu);
    return rc;
}

/* ---- counters ---------------------------------------------------------------------------- */

static void member_stats(const member *m, sn_hub_member_stats *out)
{
    *out = (sn_hub_member_stats){
        .delivered = m->delivered,
        .dropped = m->dropped,
        .queued = m->qlen,
        .queued_bytes = m->qbytes,
        .disconnected = m->disconnected,
    };
}

int sn_hub_room_stats_get(sn_hub *h, const char *name, sn_hub_room_stats *out)
{
    if (h == NULL || name == NULL || out == NULL)
        return SN_EINVAL;
    sn__mutex_lock(&h->mu);
    room *r = room_find(h, name);
    if (r != NULL) {
        sn__mutex_lock(&r->mu);
        *out = (sn_hub_room_stats){
            .members = r->n,
            .seq = r->seq,
            .delivered = r->delivered,
            .direct = r->direct,
            .dropped = r->dropped,
            .disconnected = r->disconnected,
            .spans = r->spans,
            .synced = r->synced,
            .epoch = r->epoch,
            .gaps = r->gaps,
        };
        for (size_t i = 0; i < r->n; i++)
            out->queued += r->members[i]->qlen;
        sn__mutex_unlock(&r->mu);
    }
    sn__mutex_unlock(&h->mu);
    return r != NULL ? 0 : SN_EHUB_NOROOM;
}

int sn_hub_member_stats_get(sn_hub *h, const char *name, const sn_ws *ws, sn_hub_member_stats *out)
{
    if (h == NULL || name == NULL || ws == NULL || out == NULL)
        return SN_EINVAL;
    sn__mutex_lock(&h->mu);
    hub_link *l = sn__ws_ext(ws);
    member *m = l != NULL && l->hub == h ? *link_find(l, name) : NULL;
    if (m != NULL) {
        sn__mutex_lock(&m->room->mu);
        member_stats(m, out);
        sn__mutex_unlock(&m->room->mu);
    }
    sn__mutex_unlock(&h->mu);
    return m != NULL ? 0 : SN_ENOENT;
}

void sn_hub_sub_stats_get(sn_hub_sub *s, sn_hub_member_stats *out)
{
    sn__mutex_lock(&s->m.room->mu);
    member_stats(&s->m, out);
    sn__mutex_unlock(&s->m.room->mu);
}

void sn_hub_stats_get(sn_hub *h, sn_hub_stats *out)
{
    sn__mutex_lock(&h->mu);
    *out = (sn_hub_stats){
        .rooms = h->nrooms,
        .members = h->nmembers,
        .sessions = h->nsessions,
        .messages = atomic_load(&h->messages),
        .published = atomic_load(&h->published),
        .wakeups = atomic_load(&h->wakeups),
        .gaps = atomic_load(&h->gaps),
    };
    sn__mutex_unlock(&h->mu);
}

void sn_hub_engine_stats_get(sn_hub *h, sn_hub_engine_stats *out)
{
    *out = (sn_hub_engine_stats){0};
    if (h != NULL && h->cfg.engine != NULL)
        h->cfg.engine->ops->stats(h->cfg.engine, out);
}

void sn_hub_engine_free(sn_hub_engine *e)
{
    if (e != NULL)
        e->ops->free(e);
}

sn_hub_engine *sn__hub_engine(sn_hub *h)
{
    return h->cfg.engine;
}

/* ---- from the engine's thread ----------------------------------------------------------- */

void sn__hub_deliver(sn_hub *h, const char *name, int type, const void *data, size_t len,
                     uint64_t epoch, uint64_t seq, uint64_t exclude)
{
    room *r = room_hold(h, name);
    if (r == NULL)
        return;
    sn_hub_msg *msg;
    if (msg_new(h, type, data, len, &msg) == 0) {
        msg->epoch = epoch;
        sn__mutex_lock(&r->mu);
        r->seq = seq;
        r->epoch = epoch;
        /* the writer threads write it: the engine's thread only queues, and
         * goes back to reading Redis */
        fan_out(h, r, msg, seq, NULL, exclude, true);
        sn__mutex_unlock(&r->mu);
        atomic_fetch_add_explicit(&h->published, 1, memory_order_relaxed);
        sn_hub_msg_unref(msg);
    } else {
        sn__mutex_lock(&r->mu); /* no memory: every member misses it, counted */
        r->seq = seq;
        for (size_t i = 0; i < r->n; i++)
            if (!excluded(r->members[i], NULL, exclude)) {
                r->members[i]->dropped++;
                r->dropped++;
            }
        sn__mutex_unlock(&r->mu);
    }
    room_unhold(h, r);
}

void sn__hub_gap(sn_hub *h, const char *name, int close_code)
{
    room *r = room_hold(h, name);
    if (r == NULL)
        return;
    sn__mutex_lock(&r->mu);
    r->gaps++;
    atomic_fetch_add(&h->gaps, 1);
    for (size_t i = 0; i < r->n; i++) {
        member *m = r->members[i];
        if (m->dead)
            continue;
        if (m->link != NULL) {
            member_close(h, r, m, close_code);
        } else if (q_push(m, NULL, r->seq) == 0) { /* a gap in the queue, in its place */
            sn__cv_signal(&((sn_hub_sub *)m)->avail);
        } else { /* no memory even for that: it cannot go on in silence */
            member_fail(r, m);
            sn__cv_broadcast(&((sn_hub_sub *)m)->avail);
        }
    }
    sn__mutex_unlock(&r->mu);
    room_unhold(h, r);
}

void sn__hub_synced(sn_hub *h, const char *name, bool synced, uint64_t epoch)
{
    room *r = room_hold(h, name);
    if (r == NULL)
        return;
    sn__mutex_lock(&r->mu);
    r->synced = synced;
    if (synced && epoch != 0)
        r->epoch = epoch;
    sn__mutex_unlock(&r->mu);
    room_unhold(h, r);
}

size_t sn_hub_rooms(sn_hub *h, sn_hub_room_info *out, size_t cap)
{
    size_t n = 0;
    sn__mutex_lock(&h->mu);
    for (size_t b = 0; b < HUB_BUCKETS; b++)
        for (room *r = h->buckets[b]; r != NULL; r = r->next, n++) {
            if (n >= cap)
                continue;
            snprintf(out[n].name, sizeof out[n].name, "%s", r->name);
            sn__mutex_lock(&r->mu);
            out[n].members = r->n;
            sn__mutex_unlock(&r->mu);
        }
    sn__mutex_unlock(&h->mu);
    return n;
}

int sn_hub_room_sessions(sn_hub *h, const char *name, void (*fn)(sn_ws *ws, void *user), void *user)
{
    if (h == NULL || name == NULL || fn == NULL)
        return SN_EINVAL;
    sn__mutex_lock(&h->mu);
    room *r = room_find(h, name);
    int n = SN_EHUB_NOROOM;
    if (r != NULL) {
        n = 0;
        sn__mutex_lock(&r->mu);
        for (size_t i = 0; i < r->n; i++)
            if (r->members[i]->link != NULL) {
                fn(r->members[i]->link->ws, user);
                n++;
            }
        sn__mutex_unlock(&r->mu);
    }
    sn__mutex_unlock(&h->mu);
    return n;
}

/* ---- writer threads ------------------------------------------------------------------------ */

/* Serves a link whose socket became writable: what its session buffered,
 * then each membership's queue. Returns true when a lock was taken (try
 * again soon: an event would come at once and spin). */
static bool serve(sn_hub *h, uint64_t key)
{
    sn__mutex_lock(&h->mu);
    hub_link *l = link_at(h, key);
    if (l != NULL)
        l->users++;
    sn__mutex_unlock(&h->mu);
    if (l == NULL)
        return false; /* stale: the session left */
    atomic_fetch_add_explicit(&h->wakeups, 1, memory_order_relaxed);
    atomic_store(&l->armed, false); /* before the work: a later queueing re-arms */
    int rc = sn__ws_try_flush(l->ws);
    bool busy = rc == SN_EBUSY, more = rc == SN_EAGAIN;
    for (member *m = l->members; m != NULL && (rc == 0 || rc == SN_EBUSY); m = m->link_next) {
        sn__mutex_lock(&m->room->mu);
        rc = rc < 0 ? rc : write_queue(m->room, m);
        sn__mutex_unlock(&m->room->mu);
        busy |= rc == SN_EBUSY;
        more |= rc == SN_EAGAIN;
    }
    if (more)
        arm(h, l);
    sn__mutex_lock(&h->mu);
    if (--l->users == 0)
        sn__cv_broadcast(&h->idle);
    sn__mutex_unlock(&h->mu);
    return busy && !more;
}

/* Flushes a scheduled room: every dirty member's queue in as few writes as
 * the sockets allow, a chunk of members per hold of the room's mutex so
 * that publishers go on meanwhile (and queue more for the next pass). A
 * member whose socket is full is left to EPOLLOUT. */
static void flush_room(sn_hub *h, room *r)
{
    sn__mutex_lock(&r->mu);
    while (r->ndirty > 0) {
        for (int i = 0; i < HUB_FLUSH_CHUNK && r->ndirty > 0; i++) {
            member *m = r->dirty[r->ndirty - 1];
            unmark_dirty(r, m);
            int rc = write_queue(r, m);
            if (rc == SN_EAGAIN || rc == SN_EBUSY)
                arm(h, m->link);
        }
        sn__mutex_unlock(&r->mu);
        sn__mutex_lock(&r->mu);
    }
    r->scheduled = false;
    bool empty = r->n == 0;
    sn__mutex_unlock(&r->mu);
    if (empty) { /* its last member left while it was scheduled */
        sn__mutex_lock(&h->mu);
        room_release(h, r);
        sn__mutex_unlock(&h->mu);
    }
}

static void run_rooms(sn_hub *h)
{
    eventfd_t v;
    eventfd_read(h->kickfd, &v);
    for (;;) {
        sn__mutex_lock(&h->runq_mu);
        room *r = h->runq_head;
        if (r != NULL && (h->runq_head = r->run_next) == NULL)
            h->runq_tail = NULL;
        sn__mutex_unlock(&h->runq_mu);
        if (r == NULL)
            return;
        flush_room(h, r);
    }
}

/* Cuts the connections of evicted members whose close frame could not go
 * out in time (their peer reads nothing). */
static void sweep(sn_hub *h)
{
    int64_t now = sn_now_ms();
    sn__mutex_lock(&h->mu);
    for (size_t i = 0; i < h->nslots; i++)
        for (member *m = h->slots[i] ? h->slots[i]->members : NULL; m; m = m->link_next) {
            sn__mutex_lock(&m->room->mu);
            if (m->closing && now >= m->close_by) {
                shutdown(m->link->fd, SHUT_RDWR);
                close_done(m);
            }
            sn__mutex_unlock(&m->room->mu);
        }
    sn__mutex_unlock(&h->mu);
}

static int writer_timeout(sn_hub *h, int nretry, int64_t *next_sweep)
{
    if (atomic_load(&h->closing) > 0) {
        int64_t now = sn_now_ms();
        if (now >= *next_sweep) {
            sweep(h);
            *next_sweep = now + HUB_SWEEP_MS;
        }
        return nretry > 0 ? 1 : HUB_SWEEP_MS;
    }
    return nretry > 0 ? 1 : -1;
}

static void *writer_main(void *arg)
{
    sn_hub *h = arg;
    struct epoll_event ev[HUB_EVENTS];
    uint64_t retry[HUB_RETRY_MAX], again[HUB_RETRY_MAX];
    int nretry = 0;
    int64_t next_sweep = 0;
    for (;;) {
        int n = epoll_wait(h->ep, ev, HUB_EVENTS, writer_timeout(h, nretry, &next_sweep));
        int nagain = 0;
        for (int i = 0; i < nretry; i++)
            if (serve(h, retry[i]) && nagain < HUB_RETRY_MAX)
                again[nagain++] = retry[i];
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == HUB_STOP_KEY)
                return NULL;
            if (ev[i].data.u64 == HUB_KICK_KEY) {
                run_rooms(h);
                continue;
            }
            if (serve(h, ev[i].data.u64) && nagain < HUB_RETRY_MAX)
                again[nagain++] = ev[i].data.u64;
        }
        memcpy(retry, again, (size_t)nagain * sizeof *again);
        nretry = nagain;
    }
}

/* ---- the hub ---------------------------------------------------------------------------- */

static int config_check(sn_hub_config *out, const sn_hub_config *cfg)
{
    sn_hub_config c = {0};
    if (cfg != NULL)
        c = *cfg;
    sn_hub_room_config *r = &c.room;
    if (r->policy < SN_HUB_DROP_OLDEST || r->policy > SN_HUB_WAIT || r->wait_ms < 0 ||
        c.writers < 0 || c.close_timeout_ms < 0 ||
        (r->close_code != 0 && r->close_code != 1008 && r->close_code != 1013))
        return SN_EINVAL;
    if (r->max_queue == 0)
        r->max_queue = HUB_QUEUE_DEFAULT;
    if (r->max_queue_bytes == 0)
        r->max_queue_bytes = HUB_QUEUE_BYTES_DEFAULT;
    if (r->wait_ms == 0)
        r->wait_ms = HUB_WAIT_DEFAULT;
    if (r->close_code == 0)
        r->close_code = SN_WS_TRY_AGAIN;
    if (c.writers == 0)
        c.writers = 1;
    if (c.max_message == 0)
        c.max_message = HUB_MAX_MESSAGE_DEFAULT;
    if (c.close_timeout_ms == 0)
        c.close_timeout_ms = HUB_CLOSE_TIMEOUT_DEFAULT;
    *out = c;
    return 0;
}

static int hub_fds(sn_hub *h)
{
    if ((h->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (h->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        (h->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = HUB_STOP_KEY};
    if (epoll_ctl(h->ep, EPOLL_CTL_ADD, h->stopfd, &ev) < 0)
        return -errno;
    ev = (struct epoll_event){.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = HUB_KICK_KEY};
    return epoll_ctl(h->ep, EPOLL_CTL_ADD, h->kickfd, &ev) < 0 ? -errno : 0;
}

int sn_hub_new(sn_hub **out, const sn_hub_config *cfg)
{
    if (out == NULL)
        return SN_EINVAL;
    sn_hub_config c;
    int rc = config_check(&c, cfg);
    if (rc < 0)
        return rc;
    if (c.engine != NULL && c.engine->hub != NULL)
        return SN_EBUSY;
    sn_hub *h = sn__calloc(1, sizeof *h);
    if (h == NULL)
        return SN_ENOMEM;
    h->cfg = c;
    h->ep = h->stopfd = h->kickfd = -1;
    sn__mutex_init(&h->runq_mu);
    sn__mutex_init(&h->mu);
    sn__cv_init(&h->idle);
    atomic_init(&h->messages, 0);
    atomic_init(&h->closing, 0);
    if ((rc = hub_fds(h)) == 0 &&
        (h->writers = sn__calloc((size_t)c.writers, sizeof *h->writers)) == NULL)
        rc = SN_ENOMEM;
    while (rc == 0 && h->nwriters < c.writers)
        if ((rc = -pthread_create(&h->writers[h->nwriters], NULL, writer_main, h)) == 0)
            h->nwriters++;
    if (rc == 0 && c.engine != NULL) /* it sets engine->hub before its thread runs */
        rc = c.engine->ops->start(c.engine, h);
    if (rc < 0) {
        h->cfg.engine = NULL; /* still the caller's */
        sn_hub_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void sn_hub_free(sn_hub *h)
{
    if (h == NULL)
        return;
    sn_hub_engine *e = h->cfg.engine;
    if (e != NULL) /* nothing comes from it from here on */
        e->ops->stop(e);
    if (h->stopfd >= 0 && eventfd_write(h->stopfd, 1) == 0)
        for (int i = 0; i < h->nwriters; i++)
            pthread_join(h->writers[i], NULL);
    for (room *r; (r = h->runq_head) != NULL;) { /* flushes the writers did not start */
        h->runq_head = r->run_next;
        r->scheduled = false;
        room_release(h, r);
    }
    for (size_t i = 0; i < h->nslots; i++) /* sessions that never left (a misuse) */
        if (h->slots[i] != NULL)
            sn_hub_leave_all(h, h->slots[i]->ws);
    if (h->ep >= 0)
        close(h->ep);
    if (h->stopfd >= 0)
        close(h->stopfd);
    if (h->kickfd >= 0)
        close(h->kickfd);
    sn__mutex_destroy(&h->runq_mu);
    sn__free(h->writers);
    sn__free(h->slots);
    sn__free(h->gens);
    sn__cv_destroy(&h->idle);
    sn__mutex_destroy(&h->mu);
    sn__free(h);
    if (e != NULL)
        e->ops->free(e);
}
