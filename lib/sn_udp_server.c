/* SPDX-License-Identifier: MIT */
/*
 * sn_udp_server.c: the datagram server: one bound UDP socket and a pool of
 * workers that take turns receiving from it (recvmsg, or recvmmsg for
 * batches). The worker that receives a datagram runs the handler for it,
 * whose replies go out from the same socket: no hand-off between threads.
 *
 * The receive slots, with more workers than CPUs (else every worker simply
 * receives): at most one worker per CPU receives at a time (an owner of a
 * slot), and it keeps its slot while it runs the handlers of
 * what it received, so that the next datagram waits for a worker that is
 * awake instead of waking one that sleeps. With every worker blocked in a
 * receive of its own, the kernel woke a sleeping one per datagram: a
 * context switch each, and with 64 workers 0.75 of a single blocking
 * loop's rate (bench/RESULTS.md, issue 20). One follower is the standby:
 * while an owner runs handlers it checks every SN_UDP_HANDOFF_NS, and once
 * an owner has been in its handlers that long, the standby takes its slot
 * and receives, so a slow handler holds back the rest for at most that
 * long. Such a take-over means the handlers are slow: slots are then
 * relayed (each owner hands its slot to the standby as soon as its receive
 * returns, the classic leader and followers) until a worker's handlers
 * take less than the hand-off time. The standby sleeps without a deadline
 * once every owner has waited in its receive for SN_UDP_IDLE_NS, so an
 * idle server stays idle, and the first owner to receive wakes it. The
 * other followers wait until the standby takes a slot, and one of them
 * becomes the next standby.
 *
 * Workers are jobs of an sn_pool (max_threads = workers, no queue) that run
 * until the stop. The socket's descriptor is put in blocking mode for
 * them, with no SO_RCVTIMEO: a worker waits in the kernel until a datagram
 * comes or the stop wakes it. Replies pass MSG_DONTWAIT (sn_udp_send_to).
 *
 * Stop: the stopping flag, then shutdown(SHUT_RD) on the socket. On Linux
 * this works on an unconnected UDP socket too (it returns ENOTCONN but
 * marks the socket and wakes every waiter): each blocked receive returns a
 * datagram of 0 bytes with no address, and every later one does the same
 * at once. A real datagram always has an address, so that is never taken
 * for a stop; workers test the flag after every receive anyway. Then the
 * pool is stopped (every worker joined) and the socket closed.
 *
 * Locks, in the order they are taken:
 *   1. s->run.stop_mu  one stopper at a time (held through a whole stop);
 *   2. s->run.mu       the state (started, finished, closing) and the count
 *                      of sends in progress from threads other than the
 *                      workers;
 *   3. s->rx.mu        the receive slots (a leaf).
 * The pool's mutex is never taken under any of them (sn_pool_* is called
 * without s->run.mu). No lock is held across a receive, a send or a handler.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_run.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

#define SN_UDP_WORKERS_MAX 1024
#define SN_UDP_BUFFER_DEFAULT 65536
#define SN_UDP_BUFFER_MAX (16 * 1024 * 1024)
#define SN_UDP_BATCH_LIMIT 64
#define SN_UDP_BACKOFF_MS 10        /* after a failed receive */
#define SN_UDP_HANDOFF_NS 1000000LL /* an owner in its handlers this long loses its slot */
#define SN_UDP_IDLE_NS 50000000LL   /* owners waiting this long: the standby sleeps */

/* The counters of sn_udp_server_stats, as X(name). */
#define UDP_COUNTERS(X) X(received) X(sent) X(errors) X(truncated) X(bytes_received) X(bytes_sent)

struct sn_udp_server {
    sn_udp_server_config cfg; /* the copy; host points below */
    char *host;

    /* made by start */
    sn_udp *u;
    sn_addr local;
    sn_pool *pool;

    /* locks and flags; run.cond is broadcast when a worker ended or a
     * sender finished; run.finished: workers joined, socket closed */
    sn__run run;
    bool closing; /* the socket is about to close: no new outside sends */
    int senders;  /* sends in progress from threads other than the workers */
    int workers;  /* workers in their loop */

    struct {
        UDP_COUNTERS(SN__COUNTER_FIELD)
    } n;

    /* the receive slots (see the top of the file), under rx.mu */
    struct {
        pthread_mutex_t mu;
        sn__cv standby_cv;     /* the standby waits here */
        sn__cv follow_cv;      /* the other followers */
        struct rx_rec *owners; /* the workers holding a slot */
        int slots, nowners;    /* slots: at most one per CPU */
        bool standby;          /* a follower is the standby */
        bool standby_asleep;   /* it waits with no deadline */
        atomic_bool relay;     /* handlers are slow: pass the slot on after each
                                  receive (written under mu, peeked without) */
    } rx;
};

/* A worker's part in the receive slots (under s->rx.mu). */
struct rx_rec {
    bool owner;          /* it holds a slot */
    bool receiving;      /* in its receive, not its handlers */
    int64_t since;       /* sn__now_ns: when that receive (or those handlers) began */
    struct rx_rec *next; /* on s->rx.owners */
};

/* The server whose worker the calling thread is: a stop from a handler must
 * not wait for itself, and its replies need no gate. */
static _Thread_local sn_udp_server *tl_server;

/* Replies held while a worker handles a batch of several datagrams, sent
 * together (sendmmsg) after its last handler: copies in an arena of
 * SN_UDP_REPLY_ROOM bytes per datagram of the batch (a worker without
 * batches has none). */
#define SN_UDP_REPLY_ROOM 2048
struct replies {
    bool on; /* a batch is being handled: replies wait */
    int n;
    sn_udp_msg msgs[SN_UDP_BATCH_LIMIT];
    char *arena;
    size_t used, cap;
};
static _Thread_local struct replies *tl_replies;
static void replies_flush(sn_udp_server *s, struct replies *r);

static void report(sn_udp_server *s, int err, const char *what)
{
    if (s->cfg.on_error != NULL)
        s->cfg.on_error(s, err, what, s->cfg.user);
}

/* ---- a worker's buffers ------------------------------------------------------ */

struct wbufs {
    int n;
    char *data;                    /* n * buffer_size */
    struct mmsghdr *mm;            /* n */
    struct iovec *iov;             /* n */
    struct sockaddr_storage *from; /* n */
};

static void wbufs_free(struct wbufs *b)
{
    sn__free(b->data);
    sn__free(b->mm);
    sn__free(b->iov);
    sn__free(b->from);
}

static int wbufs_new(struct wbufs *b, int n, size_t size)
{
    memset(b, 0, sizeof *b);
    b->n = n;
    b->data = sn__malloc((size_t)n * size);
    b->mm = sn__calloc((size_t)n, sizeof *b->mm);
    b->iov = sn__calloc((size_t)n, sizeof *b->iov);
    b->from = sn__calloc((size_t)n, sizeof *b->from);
    if (b->data == NULL || b->mm == NULL || b->iov == NULL || b->from == NULL) {
        wbufs_free(b);
        return SN_ENOMEM;
    }
    for (int i = 0; i < n; i++)
        b->iov[i] = (struct iovec){.iov_base = b->data + (size_t)i * size, .iov_len = size};
    return 0;
}

/* ---- the workers ---------------------------------------------------------------- */

/* Receives up to b->n datagrams, blocking for the first: the number
 * received, or -errno. */
static int receive(sn_udp_server *s, struct wbufs *b)
{
    for (int i = 0; i < b->n; i++)
        b->mm[i].msg_hdr = (struct msghdr){.msg_name = &b->from[i],
                                           .msg_namelen = sizeof b->from[i],
                                           .msg_iov = &b->iov[i],
                                           .msg_iovlen = 1};
    int fd = sn_udp_fd(s->u);
    if (b->n == 1) {
        ssize_t n = recvmsg(fd, &b->mm[0].msg_hdr, MSG_TRUNC);
        if (n < 0)
            return -errno;
        b->mm[0].msg_len = (unsigned)n;
        return 1;
    }
    int k = recvmmsg(fd, b->mm, (unsigned)b->n, MSG_TRUNC | MSG_WAITFORONE, NULL);
    return k < 0 ? -errno : k;
}

/* Hands datagram i to the handler, or drops it if it is truncated and the
 * handler does not take those. */
static void dispatch(sn_udp_server *s, struct wbufs *b, int i)
{
    const struct msghdr *h = &b->mm[i].msg_hdr;
    sn_udp_dgram d = {.data = b->iov[i].iov_base, .size = b->mm[i].msg_len, .server = s};
    if (h->msg_namelen == 0)
        return; /* no sender: the stop's wake-up, not a datagram */
    d.len = SN_MIN(d.size, b->iov[i].iov_len);
    d.truncated = d.size > d.len;
    memcpy(&d.from.u.ss, &b->from[i], SN_MIN(h->msg_namelen, sizeof d.from.u));
    d.from.len = SN_MIN(h->msg_namelen, sizeof d.from.u);
    sn__counter_add(&s->n.received, 1);
    sn__counter_add(&s->n.bytes_received, d.len);
    if (d.truncated) {
        sn__counter_add(&s->n.truncated, 1);
        if (s->cfg.deliver_truncated != SN_ON) {
            report(s, SN_ETRUNCATED, "datagram larger than buffer_size; dropped");
            return;
        }
    }
    s->cfg.handler(&d, s->cfg.user);
}

static void owner_add(sn_udp_server *s, struct rx_rec *me)
{
    me->owner = true;
    me->next = s->rx.owners;
    s->rx.owners = me;
    s->rx.nowners++;
}

static void owner_remove(sn_udp_server *s, struct rx_rec *me)
{
    for (struct rx_rec **p = &s->rx.owners; *p != NULL; p = &(*p)->next)
        if (*p == me) {
            *p = me->next;
            me->owner = false;
            s->rx.nowners--;
            return;
        }
}

/* The owner longest in its handlers, or NULL when every owner receives. */
static struct rx_rec *longest_handling(const sn_udp_server *s)
{
    struct rx_rec *r = NULL;
    for (struct rx_rec *o = s->rx.owners; o != NULL; o = o->next)
        if (!o->receiving && (r == NULL || o->since < r->since))
            r = o;
    return r;
}

/* Whether every owner has waited in its receive for SN_UDP_IDLE_NS. */
static bool owners_idle(const sn_udp_server *s, int64_t now)
{
    for (const struct rx_rec *o = s->rx.owners; o != NULL; o = o->next)
        if (!o->receiving || now - o->since < SN_UDP_IDLE_NS)
            return false;
    return true;
}

/* Takes a receive slot for worker me (see the top of the file): at once if
 * it kept one or one is free, else as a follower. False when the server
 * stops. */
static bool take_slot(sn_udp_server *s, struct rx_rec *me)
{
    bool standby = false;
    sn__mutex_lock(&s->rx.mu);
    for (;;) {
        if (sn__run_stopping(&s->run))
            break;
        int64_t now = sn__now_ns();
        struct rx_rec *slow = standby ? longest_handling(s) : NULL;
        if (slow != NULL && now - slow->since < SN_UDP_HANDOFF_NS)
            slow = NULL;
        if (me->owner || s->rx.nowners < s->rx.slots || slow != NULL) {
            if (slow != NULL) { /* it loses its slot to this one */
                owner_remove(s, slow);
                s->rx.relay = true;
            }
            if (!me->owner)
                owner_add(s, me);
            if (standby)
                s->rx.standby = false;
            if (!s->rx.standby) /* a follower becomes the next standby */
                sn__cv_signal(&s->rx.follow_cv);
            me->receiving = true;
            me->since = now;
            sn__mutex_unlock(&s->rx.mu);
            return true;
        }
        if (!standby && !s->rx.standby)
            s->rx.standby = standby = true;
        struct rx_rec *h = longest_handling(s);
        if (!standby) {
            sn__cv_wait(&s->rx.follow_cv, &s->rx.mu, SN_DEADLINE_NEVER);
        } else if (h == NULL && owners_idle(s, now)) {
            s->rx.standby_asleep = true;
            sn__cv_wait(&s->rx.standby_cv, &s->rx.mu, SN_DEADLINE_NEVER);
            s->rx.standby_asleep = false;
        } else {
            /* in ms, rounded up: it never wakes early for the take-over */
            int64_t at = (h != NULL ? h->since : now) + SN_UDP_HANDOFF_NS;
            sn__cv_wait(&s->rx.standby_cv, &s->rx.mu, at / 1000000 + 1);
        }
    }
    if (standby)
        s->rx.standby = false;
    sn__mutex_unlock(&s->rx.mu);
    return false;
}

/* An owner's receive returned: its handlers begin. With the slots relayed
 * its slot passes to the standby now; a standby asleep is woken to keep
 * watch. */
static void slot_received(sn_udp_server *s, struct rx_rec *me)
{
    sn__mutex_lock(&s->rx.mu);
    if (me->owner) {
        me->receiving = false;
        me->since = sn__now_ns();
        if (s->rx.relay)
            owner_remove(s, me);
        if (s->rx.relay || s->rx.standby_asleep)
            sn__cv_signal(&s->rx.standby_cv);
    }
    sn__mutex_unlock(&s->rx.mu);
}

/* The handlers of one receive took `ns`: quick ones end a relay. */
static void slot_handled(sn_udp_server *s, int64_t ns)
{
    if (ns >= SN_UDP_HANDOFF_NS || !atomic_load_explicit(&s->rx.relay, memory_order_relaxed))
        return;
    sn__mutex_lock(&s->rx.mu);
    s->rx.relay = false;
    sn__mutex_unlock(&s->rx.mu);
}

/* Gives up a slot, not for a slow handler: after a failed receive, so that
 * another worker receives while this one backs off. */
static void slot_leave(sn_udp_server *s, struct rx_rec *me)
{
    sn__mutex_lock(&s->rx.mu);
    if (me->owner) {
        owner_remove(s, me);
        sn__cv_signal(&s->rx.standby_cv);
    }
    sn__mutex_unlock(&s->rx.mu);
}

/* Slots are taken only with more workers than slots: with a worker per
 * slot (the default, one per CPU) every worker simply receives. */
static void worker_loop(sn_udp_server *s, struct wbufs *b, struct rx_rec *me)
{
    bool slotted = s->cfg.workers > s->rx.slots;
    while (slotted ? take_slot(s, me) : !sn__run_stopping(&s->run)) {
        int k = receive(s, b);
        if (slotted)
            slot_received(s, me);
        if (k == SN_EINTR)
            continue;
        if (k < 0) {
            if (sn__run_stopping(&s->run))
                break;
            sn__counter_add(&s->n.errors, 1);
            report(s, k, "receive failed");
            if (slotted)
                slot_leave(s, me);
            poll(NULL, 0, SN_UDP_BACKOFF_MS); /* never spin on a persistent error */
            continue;
        }
        int64_t t0 = slotted ? sn__now_ns() : 0;
        struct replies *r = tl_replies; /* NULL without batches */
        if (r != NULL)
            r->on = k > 1;
        for (int i = 0; i < k && !sn__run_stopping(&s->run); i++)
            dispatch(s, b, i);
        if (r != NULL) {
            r->on = false;
            if (r->n > 0)
                replies_flush(s, r);
        }
        if (slotted)
            slot_handled(s, sn__now_ns() - t0);
    }
}

static void worker(void *arg)
{
    sn_udp_server *s = arg;
    struct wbufs b;
    struct replies *r = NULL; /* only batches hold replies */
    if ((s->cfg.batch > 1 && (r = sn__calloc(1, sizeof *r)) == NULL) ||
        wbufs_new(&b, s->cfg.batch, s->cfg.buffer_size) < 0) {
        sn__free(r);
        sn__counter_add(&s->n.errors, 1);
        report(s, SN_ENOMEM, "out of memory for a worker's buffers; worker not started");
        return;
    }
    if (r != NULL)
        r->cap = (size_t)s->cfg.batch * SN_UDP_REPLY_ROOM;
    sn__mutex_lock(&s->run.mu);
    s->workers++;
    sn__mutex_unlock(&s->run.mu);

    struct rx_rec me = {0};
    tl_server = s;
    tl_replies = r;
    worker_loop(s, &b, &me);
    tl_replies = NULL;
    tl_server = NULL;
    sn__mutex_lock(&s->rx.mu); /* a worker that ends leaves its slot free */
    if (me.owner)
        owner_remove(s, &me);
    sn__mutex_unlock(&s->rx.mu);

    sn__mutex_lock(&s->run.mu);
    s->workers--;
    sn__cv_broadcast(&s->run.cond);
    sn__mutex_unlock(&s->run.mu);
    wbufs_free(&b);
    if (r != NULL)
        sn__free(r->arena);
    sn__free(r);
}

/* ---- configuration -------------------------------------------------------------- */

/* Whether v is a switch's value: 0 (the default), SN_ON or SN_OFF. */
static bool is_switch(int v)
{
    return v == 0 || v == SN_ON || v == SN_OFF;
}

static int check_config(const sn_udp_server_config *c)
{
    if (c->handler == NULL || c->port < 0 || c->port > 65535)
        return SN_EINVAL;
    if (c->workers < 0 || c->workers > SN_UDP_WORKERS_MAX || c->batch < 0 ||
        c->batch > SN_UDP_BATCH_LIMIT || c->buffer_size > SN_UDP_BUFFER_MAX)
        return SN_EINVAL;
    if (!is_switch(c->v6only) || !is_switch(c->deliver_truncated))
        return SN_EINVAL;
    return 0;
}

static int cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)SN_MIN(n, SN_UDP_WORKERS_MAX);
}

/* The configuration as the server keeps it: defaults filled in, no host
 * (the server keeps its own copy). */
static sn_udp_server_config with_defaults(const sn_udp_server_config *cfg)
{
    sn_udp_server_config c = *cfg;
    c.host = NULL;
    if (c.workers == 0)
        c.workers = cpus();
    if (c.buffer_size == 0)
        c.buffer_size = SN_UDP_BUFFER_DEFAULT;
    if (c.batch == 0)
        c.batch = 1;
    return c;
}

int sn_udp_server_new(sn_udp_server **out, const sn_udp_server_config *cfg)
{
    int rc = out == NULL || cfg == NULL ? SN_EINVAL : check_config(cfg);
    if (rc < 0)
        return rc;
    sn_udp_server *s = sn__calloc(1, sizeof *s);
    char *host = cfg->host != NULL ? sn__strdup(cfg->host) : NULL;
    if (s == NULL || (cfg->host != NULL && host == NULL)) {
        sn__free(s);
        sn__free(host);
        return SN_ENOMEM;
    }
    s->cfg = with_defaults(cfg);
    s->host = host;
    sn__run_init(&s->run);
    sn__mutex_init(&s->rx.mu);
    s->rx.slots = SN_MIN(s->cfg.workers, cpus());
    sn__cv_init(&s->rx.standby_cv);
    sn__cv_init(&s->rx.follow_cv);
    *out = s;
    return 0;
}

/* ---- start and stop ---------------------------------------------------------------- */

/* Binds the socket and makes its descriptor block for the workers. A stop
 * that began meanwhile wins (SN_EBADSTATE). */
static int open_socket(sn_udp_server *s)
{
    sn_udp_config uc = {
        .host = s->host, .port = s->cfg.port, .v6only = s->cfg.v6only, .opt = s->cfg.opt};
    sn_udp *u;
    int off = 0;
    int rc = sn_udp_bind(&u, &uc);
    if (rc < 0)
        return rc;
    if ((rc = sn_udp_local_addr(u, &s->local)) < 0 ||
        (rc = ioctl(sn_udp_fd(u), FIONBIO, &off) < 0 ? -errno : 0) < 0) {
        sn_udp_free(u);
        return rc;
    }
    sn__mutex_lock(&s->run.mu);
    bool stopping = sn__run_stopping(&s->run);
    if (!stopping)
        s->u = u; /* from now on a stop shuts it down */
    sn__mutex_unlock(&s->run.mu);
    if (stopping) {
        sn_udp_free(u);
        return SN_EBADSTATE;
    }
    return 0;
}

static int start_workers(sn_udp_server *s)
{
    sn_pool_config pc = {
        .max_threads = s->cfg.workers,
        .queue_size = SN_OFF,
        .idle_ms = SN_TIMEOUT_NEVER,
        .stack_size = s->cfg.stack_size,
    };
    int rc = sn_pool_new(&s->pool, &pc);
    for (int i = 0; rc == 0 && i < s->cfg.workers; i++)
        rc = sn_pool_submit(s->pool, worker, s);
    return rc == SN_EQUEUEFULL ? SN_EAGAIN : rc; /* no thread for a worker */
}

/* Sets the flag and wakes every worker blocked in a receive (under s->run.mu,
 * so that the socket is not closed meanwhile). True for the first call. */
static bool begin_stop(sn_udp_server *s)
{
    sn__mutex_lock(&s->run.mu);
    bool first = sn__run_begin_stop(&s->run);
    if (first && s->u != NULL && !s->closing)
        shutdown(sn_udp_fd(s->u), SHUT_RD); /* ENOTCONN, yet it wakes them */
    sn__mutex_lock(&s->rx.mu);              /* and the followers */
    sn__cv_broadcast(&s->rx.standby_cv);
    sn__cv_broadcast(&s->rx.follow_cv);
    sn__mutex_unlock(&s->rx.mu);
    sn__mutex_unlock(&s->run.mu);
    return first;
}

/* Joins the workers, waits for outside sends, closes the socket. */
static void finish_stop(sn_udp_server *s)
{
    sn_pool_stop(s->pool);
    sn__mutex_lock(&s->run.mu);
    s->closing = true;
    while (s->senders > 0)
        sn__cv_wait(&s->run.cond, &s->run.mu, SN_DEADLINE_NEVER);
    sn__mutex_unlock(&s->run.mu);
    sn_udp_close(s->u);
}

int sn_udp_server_start(sn_udp_server *s)
{
    int rc = s == NULL ? SN_EINVAL : sn__run_may_start(&s->run);
    if (rc == 0)
        rc = open_socket(s);
    if (rc < 0)
        return rc;
    if ((rc = start_workers(s)) == 0) {
        sn__mutex_lock(&s->run.mu);
        s->run.started = true;
        sn__mutex_unlock(&s->run.mu);
        return 0;
    }
    /* undo: stop the workers that did start; unless a stop came meanwhile,
     * start may be tried again */
    bool ours = begin_stop(s);
    finish_stop(s);
    sn_pool_free(s->pool);
    sn_udp_free(s->u);
    sn__mutex_lock(&s->run.mu);
    s->pool = NULL;
    s->u = NULL;
    s->closing = false;
    atomic_store(&s->rx.relay, false);
    if (ours)
        atomic_store(&s->run.stopping, false);
    sn__mutex_unlock(&s->run.mu);
    return rc;
}

int sn_udp_server_stop(sn_udp_server *s)
{
    if (s == NULL)
        return SN_EINVAL;
    begin_stop(s);
    if (!sn__run_started(&s->run) || tl_server == s)
        return 0; /* a handler cannot join its own worker: only begin */
    sn__mutex_lock(&s->run.stop_mu);
    if (!s->run.finished) {
        finish_stop(s);
        sn__mutex_lock(&s->run.mu);
        s->run.finished = true;
        sn__mutex_unlock(&s->run.mu);
    }
    sn__mutex_unlock(&s->run.stop_mu);
    return 0;
}

void sn_udp_server_free(sn_udp_server *s)
{
    if (s == NULL)
        return;
    sn_udp_server_stop(s);
    sn_pool_free(s->pool);
    sn_udp_free(s->u);
    sn__free(s->host);
    sn__run_destroy(&s->run);
    sn__cv_destroy(&s->rx.standby_cv);
    sn__cv_destroy(&s->rx.follow_cv);
    pthread_mutex_destroy(&s->rx.mu);
    sn__free(s);
}

/* ---- sending ------------------------------------------------------------------------- */

/* Counts one send's result: sent and its bytes, or an error. */
static void count_send(sn_udp_server *s, ssize_t n)
{
    if (n >= 0) {
        sn__counter_add(&s->n.sent, 1);
        sn__counter_add(&s->n.bytes_sent, (uint64_t)n);
    } else {
        sn__counter_add(&s->n.errors, 1);
    }
}

/* Sends the held replies. One that fails is counted and reported; the
 * ones after it still go. */
static void replies_flush(sn_udp_server *s, struct replies *r)
{
    bool on = r->on;
    r->on = false; /* on_error may send: that goes straight out */
    int done = 0;
    while (done < r->n) {
        int k = sn_udp_send_batch(s->u, r->msgs + done, r->n - done, SN_DEADLINE_DEFAULT);
        int sent = k > 0 ? k : 0;
        for (int i = done; i < done + sent; i++)
            count_send(s, (ssize_t)r->msgs[i].len);
        done += sent;
        if (done < r->n) { /* msgs[done] failed: drop it, said */
            ssize_t err = k < 0 ? k
                                : sn_udp_send_to(s->u, r->msgs[done].buf, r->msgs[done].len,
                                                 &r->msgs[done].addr, SN_DEADLINE_DEFAULT);
            count_send(s, err); /* it may go this time */
            if (err < 0)
                report(s, (int)err, "a reply held for the batch could not be sent; dropped");
            done++;
        }
    }
    r->n = 0;
    r->used = 0;
    r->on = on;
}

/* Holds a reply of the batch being handled: true when it was taken. */
static bool reply_hold(struct replies *r, const void *buf, size_t len, const sn_addr *to)
{
    if (r->n == SN_UDP_BATCH_LIMIT || r->used + len > r->cap || (buf == NULL && len > 0))
        return false; /* the last: sn_udp_send_to says SN_EINVAL */
    if (r->arena == NULL && (r->arena = sn__malloc(r->cap)) == NULL)
        return false;
    memcpy(r->arena + r->used, buf, len);
    r->msgs[r->n++] = (sn_udp_msg){.buf = r->arena + r->used, .len = len, .addr = *to};
    r->used += len;
    return true;
}

/* Sends from the server's socket. A worker sends straight away (the socket
 * outlives the workers), or holds the reply while it handles a batch; any
 * other thread passes the gate that keeps the socket open until its send
 * returns. */
static ssize_t server_send(sn_udp_server *s, const void *buf, size_t len, const sn_addr *to)
{
    bool outside = tl_server != s;
    struct replies *r = outside ? NULL : tl_replies;
    if (r != NULL && r->on) {
        if (len <= SN_UDP_REPLY_ROOM && reply_hold(r, buf, len, to))
            return (ssize_t)len;
        replies_flush(s, r); /* in order: what was held goes first */
    }
    if (outside) {
        sn__mutex_lock(&s->run.mu);
        bool ok = s->run.started && !s->closing;
        s->senders += ok;
        sn__mutex_unlock(&s->run.mu);
        if (!ok)
            return SN_EBADSTATE;
    }
    ssize_t n = sn_udp_send_to(s->u, buf, len, to, SN_DEADLINE_DEFAULT);
    count_send(s, n);
    if (outside) {
        sn__mutex_lock(&s->run.mu);
        if (--s->senders == 0)
            sn__cv_broadcast(&s->run.cond);
        sn__mutex_unlock(&s->run.mu);
    }
    return n;
}

ssize_t sn_udp_reply(const sn_udp_dgram *d, const void *buf, size_t len)
{
    if (d == NULL || d->server == NULL)
        return SN_EINVAL;
    return server_send(d->server, buf, len, &d->from);
}

ssize_t sn_udp_server_send_to(sn_udp_server *s, const void *buf, size_t len, const sn_addr *to)
{
    if (s == NULL || sn_addr_family(to) == 0)
        return SN_EINVAL;
    return server_send(s, buf, len, to);
}

/* ---- getters ------------------------------------------------------------------------- */

int sn_udp_server_local_addr(sn_udp_server *s, sn_addr *out)
{
    if (s == NULL || out == NULL)
        return SN_EINVAL;
    return sn__run_local_addr(&s->run, &s->local, 1, 0, out);
}

int sn_udp_server_port(sn_udp_server *s)
{
    sn_addr a;
    int rc = sn_udp_server_local_addr(s, &a);
    return rc < 0 ? rc : sn_addr_port(&a);
}

void sn_udp_server_stats_get(sn_udp_server *s, sn_udp_server_stats *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return;
    sn__mutex_lock(&s->run.mu);
    out->workers = s->workers;
    sn__mutex_unlock(&s->run.mu);
    UDP_COUNTERS(SN__COUNTER_LOAD)
}
