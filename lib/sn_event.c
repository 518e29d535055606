/* SPDX-License-Identifier: MIT */
/*
 * sn_event.c: the event model (socknet/event.h).
 *
 * A loop runs over a pool: its own (sn_loop_new), or a server's (event
 * mode, sn_event_int.h). Starting a socket runs attach() on one of the
 * pool's workers: the connect (or listening) callback, then the watch.
 *
 * Fiber mode: the worker's thread's scheduler watches the descriptor
 * (sn__sched_watch), and the socket lives on that thread from then on.
 * When the descriptor has something (bytes, a datagram, the peer's end,
 * an error, the shutdown of a close), the scheduler runs dispatch() on one
 * of its dispatcher fibers: it takes what can be read without waiting,
 * hands each piece to the message callback (16 at most, then it queues
 * itself again behind the thread's other sockets), and re-arms the watch,
 * or finishes the socket. A WebSocket with pings has a timer: one ticker
 * fiber per thread looks at its thread's sessions when the soonest is due
 * and kicks their watches (sn__sched_kick), so the dispatch sends the
 * ping, or fails the session whose peer did not answer.
 *
 * Thread mode: one poller thread per loop, with an epoll of its own where
 * each socket is registered EPOLLONESHOT (level-triggered: what a dispatch
 * left unread fires again at the re-arm). It hands each socket with an
 * event to a worker thread (sn_pool_submit of dispatch()), and looks at
 * the WebSocket sessions' pings between two waits. `armed`, under pmu,
 * says whether a socket may be handed over (it is not while its dispatch
 * runs), so that an event and a ping's time never start two. A socket
 * that ended is freed by the poller once it waits anew: an event of it
 * may still be in the poller's hands until then.
 *
 * Either way one dispatch at a time per socket, so callbacks never overlap
 * and keep the order of things.
 *
 * Closing from any thread: the closing error is set and the socket
 * cancelled (its connect, connection, session or UDP socket), which wakes
 * the watch or the blocked call; the dispatch, or the callback in
 * progress, sees the error, runs the close callback, and frees what the
 * socket held on its own worker. The handle (struct sn_ev) lives on while
 * its owner holds it: two references, the loop's until the end and the
 * caller's until sn_ev_free.
 *
 * Locks: l->mu guards the list of sockets and each socket's state and
 * connection pointer, so that a close or a stop never reaches a socket that
 * is being freed (a finishing socket is DONE under l->mu before it is
 * freed); l->pmu the poller's state (thread mode); e->wlock serializes the
 * sends with each other and with the end (release) and the dispatch's
 * trimming of the write buffer. Order: l->mu, then a gate's or pmu.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "sn_chan_int.h"
#include "sn_event_int.h"
#include "sn_fiber.h"
#include "sn_pool_int.h"
#include "sn_sock_int.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "sn_ws_int.h"
#include "sn_ws_share.h"
#include "socknet.h"

enum ev_state { EV_NEW, EV_STARTED, EV_DONE };
enum ev_kind { EV_CONN, EV_WS, EV_UDP };

/* Messages one dispatch hands over before it lets the thread's other
 * sockets have their turn (it queues itself again behind them). */
#define EV_BATCH 16
/* What one receive of a dispatch takes at most: a datagram's largest size
 * and then some, and for a stream what a bulk transfer wants per system
 * call (a connection's own 4 KiB buffer would take 16 for one of these).
 * Allocated for the dispatch's run, not held while the socket idles. */
#define EV_BUF 65536

struct sn_loop {
    sn_pool *pool;
    bool own_pool; /* made by sn_loop_new (else a server's) */
    bool fibers;   /* fiber mode (else thread mode: the poller below) */
    pthread_mutex_t mu;
    sn__cv cond; /* broadcast under mu when a socket left the list */
    sn_ev *list;
    int count; /* on list */
    bool stopping;
    /* thread mode: a poller thread, its epoll, an eventfd that wakes it;
     * pmu guards each socket's armed flag, the WebSocket sessions with
     * pings (ticked) and the sockets that ended (dead: freed by the poller
     * once no event of theirs can be in its hands) */
    int ep, wake;
    pthread_t poller;
    bool poller_on, poller_quit;
    pthread_mutex_t pmu;
    sn_ev *ticked, *dead, *dead_old;
};

/* sn_ev_connect's request: copies of what the caller gave. */
struct ev_connect {
    char *host, *name, *bind_host;
    int port, timeout_ms;
    bool has_sock;
    sn_sock_options sock;
    sn_tls *tls;
    sn__connect_gate gate;
};

struct sn_ev {
    sn_loop *l;
    int kind;      /* enum ev_kind */
    sn_conn *c;    /* EV_CONN, EV_WS: the connection (set by a connect under l->mu) */
    sn_ws *ws;     /* EV_WS */
    bool own_conn; /* EV_WS: c is freed after ws */
    sn_udp *u;     /* EV_UDP */
    int fd;
    struct {
        sn_ev_fn fn;
        void *user;
    } on[SN_EV_TYPES];
    int state;              /* enum ev_state, under l->mu */
    bool watched;           /* its scheduler watches fd (the socket's thread's alone) */
    atomic_int closing;     /* 0, or the error the socket is closing with */
    sn_ev *prev, *next;     /* l->list, under l->mu */
    struct ev_connect *req; /* sn_ev_connect's, or NULL */
    sn__lock wlock;         /* sends, the trim of the write buffer, and gone */
    atomic_bool gone;       /* closed: sends fail (what it held is freed under wlock) */
    atomic_int refs;        /* the loop's until it is finished, the caller's handle */
    sn_ev *tprev, *tnext;   /* its ticker's list (EV_WS with pings), or l->dead */
    bool ticked;            /* on that list */
    bool armed;             /* thread mode: the poller may dispatch it (under pmu) */
};

static void unwatch(sn_ev *e);
static int poller_start(sn_loop *l);
static void poller_stop(sn_loop *l);

/* ---- the loop ---------------------------------------------------------------------- */

/* A loop over pool (fiber mode or not, as fibers says); the poller too in
 * thread mode. */
static int loop_make(sn_loop **out, sn_pool *pool, bool fibers, bool own_pool)
{
    sn_loop *l = sn__calloc(1, sizeof *l);
    if (l == NULL)
        return SN_ENOMEM;
    l->pool = pool;
    l->own_pool = own_pool;
    l->fibers = fibers;
    l->ep = l->wake = -1;
    sn__mutex_init(&l->mu);
    sn__mutex_init(&l->pmu);
    sn__cv_init(&l->cond);
    int rc = fibers ? 0 : poller_start(l);
    if (rc < 0) {
        l->own_pool = false; /* the caller's still */
        sn_loop_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

int sn_loop_new(sn_loop **out, const sn_loop_config *cfg)
{
    sn_loop_config c = cfg != NULL ? *cfg : (sn_loop_config){0};
    if (out == NULL || c.threads < 0 || c.threads > 65536 ||
        (c.fibers != 0 && c.fibers != SN_ON && c.fibers != SN_OFF))
        return SN_EINVAL;
    bool fibers = c.fibers != SN_OFF;
    sn_pool_config pc = {.max_threads = fibers          ? 1 << 20
                                        : c.threads > 0 ? c.threads
                                                        : 16,
                         .queue_size = fibers ? SN_OFF : 1 << 24,
                         .fibers = fibers ? SN_ON : SN_OFF,
                         .fiber_threads = fibers ? c.threads : 0};
    sn_pool *pool;
    int rc = sn_pool_new(&pool, &pc);
    if (rc < 0)
        return rc;
    if ((rc = loop_make(out, pool, fibers, true)) < 0)
        sn_pool_free(pool);
    return rc;
}

int sn__loop_for_server(sn_loop **out, sn_pool *pool, int workers)
{
    if (sn__pool_fibers(pool) != NULL)
        return loop_make(out, pool, true, false);
    /* thread mode: a pool of its own, so that the server's queue limits,
     * expiry and drop never meet a dispatch */
    sn_pool_config pc = {.max_threads = workers, .queue_size = 1 << 24};
    sn_pool *own;
    int rc = sn_pool_new(&own, &pc);
    if (rc < 0)
        return rc;
    if ((rc = loop_make(out, own, false, true)) < 0)
        sn_pool_free(own);
    return rc;
}

static void link_ev(sn_loop *l, sn_ev *e)
{
    l->count++;
    e->prev = NULL;
    e->next = l->list;
    if (l->list != NULL)
        l->list->prev = e;
    l->list = e;
}

static void unlink_ev(sn_loop *l, sn_ev *e)
{
    l->count--;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        l->list = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
}

/* ---- the ping ticker of a thread's WebSocket sessions ------------------------------ */

/* The WebSocket sessions with pings of a ticker (fiber mode) or a
 * poller (thread mode): e->tprev, e->tnext, e->ticked. */
static void ticked_push(sn_ev **head, sn_ev *e)
{
    e->tprev = NULL;
    e->tnext = *head;
    if (*head != NULL)
        (*head)->tprev = e;
    *head = e;
    e->ticked = true;
}

static void ticked_remove(sn_ev **head, sn_ev *e)
{
    if (e->tprev != NULL)
        e->tprev->tnext = e->tnext;
    else
        *head = e->tnext;
    if (e->tnext != NULL)
        e->tnext->tprev = e->tprev;
    e->ticked = false;
}

struct ticker {
    sn_ev *head;
    sn_fiber *f;
    uint64_t ticket;
    bool parked;
};
static _Thread_local struct ticker *tl_ticker;

/* Kicks the sessions whose liveness is due, lets their dispatches run,
 * and sleeps until the next one is due (a second at most, so that a
 * session added meanwhile, or one whose callback is busy, waits no
 * longer). */
static void ticker_main(void *arg)
{
    struct ticker *t = arg;
    t->f = sn__fiber_self();
    while (t->head != NULL) {
        int64_t now = sn_now_ms();
        for (sn_ev *e = t->head; e != NULL; e = e->tnext)
            if (sn__ws_due(e->ws) <= now)
                sn__sched_kick(e->fd); /* the dispatch pings, or fails it */
        sn__fiber_yield();
        now = sn_now_ms();
        int64_t next = now + 1000;
        for (sn_ev *e = t->head; e != NULL; e = e->tnext) {
            int64_t due = sn__ws_due(e->ws);
            if (due > now && due < next)
                next = due;
        }
        t->ticket = sn__fiber_park_ticket();
        t->parked = true;
        sn__fiber_park(next);
        t->parked = false;
    }
    tl_ticker = NULL;
    sn__free(t);
}

static int ticker_add(sn_ev *e)
{
    struct ticker *t = tl_ticker;
    if (t == NULL) {
        if ((t = sn__calloc(1, sizeof *t)) == NULL)
            return SN_ENOMEM;
        int rc = sn__fiber_spawn(sn__sched_self(), ticker_main, t, 0);
        if (rc < 0) {
            sn__free(t);
            return rc;
        }
        tl_ticker = t;
    }
    ticked_push(&t->head, e);
    return 0;
}

static void ticker_remove(sn_ev *e)
{
    struct ticker *t = tl_ticker;
    if (!e->ticked || t == NULL)
        return;
    ticked_remove(&t->head, e);
    if (t->head == NULL && t->parked)
        sn__fiber_unpark(t->f, t->ticket); /* nothing left: it ends */
}

/* ---- events -------------------------------------------------------------------------- */

static void emit(sn_ev *e, const sn_ev_info *ev)
{
    if (e->on[ev->type].fn != NULL)
        e->on[ev->type].fn(e, ev, e->on[ev->type].user);
}

/* Lets go of one reference; the last frees the handle. */
static void unref(sn_ev *e)
{
    if (atomic_fetch_sub(&e->refs, 1) != 1)
        return;
    sn__lock_destroy(&e->wlock);
    sn__free(e);
}

/* Frees what the socket holds, on its own thread (or when it never
 * started); a send in progress ends first (the socket was cancelled, so it
 * ends at once), and later ones find it gone. */
static void release(sn_ev *e)
{
    if (!sn__lock_try(&e->wlock)) { /* another thread sends */
        if (e->kind == EV_UDP)
            sn_udp_cancel(e->u);
        else if (e->c != NULL)
            sn_conn_cancel(e->c);
        sn__lock_take(&e->wlock);
    }
    atomic_store(&e->gone, true);
    if (e->kind == EV_WS)
        sn_ws_free(e->ws);
    if (e->kind == EV_UDP)
        sn_udp_free(e->u);
    else if (e->kind == EV_CONN || e->own_conn)
        sn_conn_free(e->c);
    if (e->req != NULL) {
        sn__connect_gate_destroy(&e->req->gate);
        sn__free(e->req->host);
        sn__free(e->req->name);
        sn__free(e->req->bind_host);
        sn__free(e->req);
        e->req = NULL;
    }
    sn__lock_give(&e->wlock);
}

/* Why the socket ended, in words: the TLS alert or verification, the
 * WebSocket peer's close reason, or the error's text. */
static const char *reason_for(sn_ev *e, int err)
{
    if (e->kind == EV_WS && e->ws != NULL && *sn_ws_close_reason(e->ws) != '\0')
        return sn_ws_close_reason(e->ws);
    if (e->c != NULL && sn_conn_is_tls(e->c) && *sn_tls_reason(e->c) != '\0')
        return sn_tls_reason(e->c);
    return sn_strerror(err);
}

/* The socket's end, on its own thread: the error and close callbacks,
 * then it goes. */
static void finish(sn_ev *e, int err)
{
    sn_loop *l = e->l;
    unwatch(e);
    int closing = atomic_load(&e->closing);
    if (closing != 0)
        err = closing;
    else if (err == SN_ECLOSED && e->kind == EV_WS)
        err = SN_EOF; /* the peer's close frame: the peer closed */
    int code = e->kind == EV_WS ? sn_ws_close_code(e->ws) : 0;
    const char *why = reason_for(e, err);
    if (err != SN_EOF && err != closing)
        emit(e, &(sn_ev_info){.type = SN_EV_ERROR, .error = err, .ws_code = code, .reason = why});
    atomic_store(&e->gone, true); /* new sends fail from here: SN_ECLOSED */
    emit(e, &(sn_ev_info){.type = SN_EV_CLOSE, .error = err, .ws_code = code, .reason = why});
    sn__mutex_lock(&l->mu);
    e->state = EV_DONE; /* no close reaches it from now on */
    sn__mutex_unlock(&l->mu);
    release(e);
    /* the last touch of l: once the list is empty, a stop may free it */
    sn__mutex_lock(&l->mu);
    unlink_ev(l, e);
    bool deferred = !l->fibers && e->watched;
    if (deferred) { /* the poller may hold an event of it: the poller frees it */
        sn__mutex_lock(&l->pmu);
        e->tnext = l->dead;
        l->dead = e;
        sn__mutex_unlock(&l->pmu);
    }
    sn__cv_broadcast(&l->cond);
    sn__mutex_unlock(&l->mu);
    if (!deferred)
        unref(e);
}

/* ---- watching: the scheduler's watch (fiber mode) or the poller (thread mode) ---- */

static void dispatch(void *arg);

static bool pinged(sn_ev *e)
{
    return e->kind == EV_WS && sn__ws_due(e->ws) != INT64_MAX;
}

static void poller_wake(sn_loop *l)
{
    uint64_t one = 1;
    while (write(l->wake, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

#define EV_EPOLL (EPOLLIN | EPOLLRDHUP | EPOLLONESHOT)

static int tick(sn_ev *e);

/* Starts watching the socket, on the thread it will live on (fiber mode)
 * or any (thread mode). 0 or an error (finish unwatches). */
static int watch(sn_ev *e)
{
    sn_loop *l = e->l;
    if (l->fibers) {
        int rc = sn__sched_watch(e->fd, dispatch, e);
        e->watched = rc == 0;
        return rc == 0 && pinged(e) ? tick(e) : rc;
    }
    /* From the ADD on a worker may run its dispatch, and even end it: e is
     * not touched after the unlock. */
    bool ping = pinged(e);
    sn__mutex_lock(&l->pmu);
    struct epoll_event ev = {.events = EV_EPOLL, .data.ptr = e};
    e->armed = true;
    int rc = epoll_ctl(l->ep, EPOLL_CTL_ADD, e->fd, &ev) < 0 ? -errno : 0;
    e->armed = rc == 0;
    e->watched = rc == 0;
    if (rc == 0 && ping) { /* its pings go on while it idles */
        ticked_push(&l->ticked, e);
        poller_wake(l); /* its first ping may come before the poller's next look */
    }
    sn__mutex_unlock(&l->pmu);
    return rc;
}

/* Fiber mode: a WebSocket with pings, watched already: its pings go on
 * while it idles (the thread's ticker). */
static int tick(sn_ev *e)
{
    return ticker_add(e);
}

/* A dispatch is done: the socket waits for its next event; more says that
 * it stopped with more to read (level-triggered in thread mode: the poller
 * sees it again). */
static void rearm(sn_ev *e, bool more)
{
    sn_loop *l = e->l;
    if (l->fibers) {
        sn__sched_rearm(e->fd);
        if (more)
            sn__sched_kick(e->fd); /* again, after the thread's other sockets */
        return;
    }
    sn__mutex_lock(&l->pmu);
    struct epoll_event ev = {.events = EV_EPOLL, .data.ptr = e};
    e->armed = true;
    epoll_ctl(l->ep, EPOLL_CTL_MOD, e->fd, &ev);
    sn__mutex_unlock(&l->pmu);
}

static void unwatch(sn_ev *e)
{
    sn_loop *l = e->l;
    if (l->fibers) {
        if (e->watched)
            sn__sched_unwatch(e->fd);
        ticker_remove(e);
        return;
    }
    sn__mutex_lock(&l->pmu);
    if (e->watched)
        epoll_ctl(l->ep, EPOLL_CTL_DEL, e->fd, NULL);
    e->armed = false;
    if (e->ticked)
        ticked_remove(&l->ticked, e);
    sn__mutex_unlock(&l->pmu);
}

/* Thread mode, under pmu: hands an armed socket to a worker. A refused job
 * (out of memory) leaves it armed for the poller's next look. */
static void poller_dispatch(sn_loop *l, sn_ev *e)
{
    if (!e->armed)
        return; /* running, or ended */
    e->armed = false;
    if (sn_pool_submit(l->pool, dispatch, e) < 0) {
        struct epoll_event ev = {.events = EV_EPOLL, .data.ptr = e};
        e->armed = true;
        epoll_ctl(l->ep, EPOLL_CTL_MOD, e->fd, &ev);
    }
}

/* Thread mode, under pmu: dispatches the WebSocket sessions whose liveness
 * is due (the dispatch pings, or fails the session); the ms until the next
 * one, a second at most, or -1 for none. */
static int poller_ticks(sn_loop *l)
{
    if (l->ticked == NULL)
        return -1;
    int64_t now = sn_now_ms(), next = now + 1000;
    for (sn_ev *e = l->ticked; e != NULL; e = e->tnext) {
        if (!e->armed)
            continue; /* its dispatch runs: it is looked at after */
        int64_t due = sn__ws_due(e->ws);
        if (due <= now)
            poller_dispatch(l, e);
        else if (due < next)
            next = due;
    }
    return (int)(next - now);
}

static void free_dead(sn_ev *e)
{
    while (e != NULL) {
        sn_ev *next = e->tnext;
        unref(e);
        e = next;
    }
}

/* Thread mode's poller: hands each socket with an event to a worker. A
 * socket that ended is freed only once the poller waits anew after its
 * removal from epoll, so that no event of it is still in the poller's
 * hands. */
static void *poller_main(void *arg)
{
    sn_loop *l = arg;
    struct epoll_event evs[64];
    for (;;) {
        sn__mutex_lock(&l->pmu);
        sn_ev *dead = l->dead; /* out of epoll: no wait from now on reports them */
        l->dead = NULL;
        bool quit = l->poller_quit;
        int timeout = quit ? 0 : poller_ticks(l);
        sn__mutex_unlock(&l->pmu);
        if (quit) {
            free_dead(dead);
            return NULL;
        }
        int n = epoll_wait(l->ep, evs, SN_ARRAY_SIZE(evs), timeout);
        sn__mutex_lock(&l->pmu);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;
                while (read(l->wake, &v, sizeof v) < 0 && errno == EINTR)
                    ;
            } else {
                poller_dispatch(l, evs[i].data.ptr);
            }
        }
        sn__mutex_unlock(&l->pmu);
        free_dead(dead);
    }
}

static int poller_start(sn_loop *l)
{
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    int rc = 0;
    if (l->ep < 0 || l->wake < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake, &ev) < 0)
        rc = -errno;
    else if ((rc = -pthread_create(&l->poller, NULL, poller_main, l)) == 0)
        l->poller_on = true;
    if (rc < 0)
        rc = rc == -EAGAIN ? SN_EAGAIN : rc;
    return rc;
}

static void poller_stop(sn_loop *l)
{
    if (l->poller_on) {
        sn__mutex_lock(&l->pmu);
        l->poller_quit = true;
        sn__mutex_unlock(&l->pmu);
        poller_wake(l);
        pthread_join(l->poller, NULL);
        l->poller_on = false;
    }
    free_dead(l->dead);
    l->dead = NULL;
}

/* Gives back the write buffer of an idle connection, unless a sender is
 * writing. */
static void trim(sn_ev *e)
{
    if (e->kind == EV_UDP)
        return;
    sn__conn_rtrim(e->c); /* (in fiber mode the wait gave it back already) */
    if (e->kind == EV_WS) {
        sn__ws_rtrim(e->ws);
        sn__ws_trim(e->ws);
    } else if (sn__lock_try(&e->wlock)) {
        sn__conn_trim(e->c);
        sn__lock_give(&e->wlock);
    }
}

/* The dispatch's buffer (see EV_BUF). */
static void *ev_buf(void **buf)
{
    if (*buf == NULL)
        *buf = sn__malloc(EV_BUF);
    return *buf;
}

/* Bytes as they came: what the connection can read without waiting, up to
 * EV_BUF at a time (straight from the socket when the connection's buffer
 * is empty). */
static int take_conn(sn_ev *e, void **buf, int *taken)
{
    if (ev_buf(buf) == NULL)
        return SN_ENOMEM;
    ssize_t n = sn_read(e->c, *buf, EV_BUF, sn_deadline_in(0));
    if (n == SN_ETIMEDOUT)
        return 1; /* nothing more now */
    if (n < 0)
        return (int)n;
    emit(e, &(sn_ev_info){.type = SN_EV_MESSAGE, .data = *buf, .len = (size_t)n});
    (*taken)++;
    return sn__conn_drained(e->c) ? 1 : 0; /* nothing more: no receive to learn it */
}

/* A whole WebSocket message, when its first byte is there. */
static int take_ws(sn_ev *e, int *taken)
{
    sn_ws_msg m;
    int rc = sn__ws_recv_ready(e->ws, &m);
    if (rc != 0)
        return rc;
    emit(e, &(sn_ev_info){.type = SN_EV_MESSAGE, .data = m.data, .len = m.len, .ws_type = m.type});
    (*taken)++;
    return sn__conn_drained(e->c) ? 1 : 0;
}

/* A datagram and its sender. A refused earlier datagram (a connected
 * socket) is an error event; the socket goes on. */
static int take_udp(sn_ev *e, void **buf, int *taken)
{
    if (ev_buf(buf) == NULL)
        return SN_ENOMEM;
    sn_addr from;
    ssize_t n = sn_udp_recv_from(e->u, *buf, EV_BUF, &from, NULL, sn_deadline_in(0));
    if (n == SN_ETIMEDOUT)
        return 1;
    if (n == SN_ECONNREFUSED) {
        emit(e, &(sn_ev_info){.type = SN_EV_ERROR, .error = (int)n, .reason = sn_strerror((int)n)});
        return 0;
    }
    if (n < 0 && n != SN_ETRUNCATED)
        return (int)n;
    size_t len = n < 0 ? EV_BUF : (size_t)n;
    emit(e, &(sn_ev_info){.type = SN_EV_MESSAGE, .data = *buf, .len = len, .addr = &from});
    (*taken)++;
    return 0;
}

/* What can be read without waiting, piece by piece, to the message
 * callback; then the watch again, or the end. */
static void dispatch(void *arg)
{
    sn_ev *e = arg;
    void *buf = NULL;
    int taken = 0, rc = 0;
    if (e->kind != EV_UDP)
        sn__conn_readable(e->c); /* the watch says so */
    while (rc == 0 && atomic_load(&e->closing) == 0 && taken < EV_BATCH)
        rc = e->kind == EV_CONN ? take_conn(e, &buf, &taken)
             : e->kind == EV_WS ? take_ws(e, &taken)
                                : take_udp(e, &buf, &taken);
    sn__free(buf);
    if (rc < 0 || atomic_load(&e->closing) != 0) {
        finish(e, rc < 0 ? rc : 0);
        return;
    }
    trim(e); /* an idle socket holds no buffer */
    rearm(e, rc == 0);
}

/* The start, on a fiber of the thread the socket will live on. */
static void attach(void *arg)
{
    sn_ev *e = arg;
    if (atomic_load(&e->closing) == 0) {
        sn_addr a = {0};
        if (e->kind == EV_UDP) {
            sn_udp_local_addr(e->u, &a);
            emit(e, &(sn_ev_info){.type = SN_EV_LISTENING, .addr = &a});
        } else {
            sn_sock_remote_addr(sn_conn_sock(e->c), &a);
            emit(e, &(sn_ev_info){.type = SN_EV_CONNECT, .addr = &a});
        }
    }
    /* closing from here on: its cancel shut the socket down, so the watch
     * fires at once and dispatch finishes it; never both */
    int rc = atomic_load(&e->closing) == 0 ? watch(e) : 1;
    if (rc != 0)
        finish(e, rc < 0 ? rc : 0);
}

/* sn_ev_connect's job: the connect (and the TLS handshake), then as a
 * socket that was given connected. */
static void connect_job(void *arg)
{
    sn_ev *e = arg;
    struct ev_connect *r = e->req;
    sn_deadline dl = r->timeout_ms > 0 ? sn_deadline_in(r->timeout_ms) : SN_DEADLINE_DEFAULT;
    sn_sock *s;
    sn_conn *c = NULL;
    int rc =
        sn__tcp_connect_gated(&s, r->host, r->port, r->has_sock ? &r->sock : NULL, dl, &r->gate);
    if (rc == 0 && (rc = sn_conn_new(&c, s, NULL)) < 0)
        sn_sock_free(s);
    if (rc == 0) {
        sn__mutex_lock(&e->l->mu); /* a close from now on cancels c */
        e->c = c;
        e->fd = sn_sock_fd(s);
        sn__mutex_unlock(&e->l->mu);
        if (atomic_load(&e->closing) != 0)
            rc = SN_ECANCELED;
    }
    if (rc == 0 && r->tls != NULL)
        rc = sn_tls_upgrade(c, r->tls, r->name != NULL ? r->name : r->host, dl);
    if (rc < 0) {
        finish(e, rc);
        return;
    }
    attach(e);
}

static int ev_new(sn_ev **out, sn_loop *l, int kind)
{
    sn_ev *e = sn__calloc(1, sizeof *e);
    if (e == NULL)
        return SN_ENOMEM;
    e->l = l;
    e->kind = kind;
    e->fd = -1;
    sn__lock_init(&e->wlock);
    atomic_init(&e->refs, 2);
    *out = e;
    return 0;
}

/* Puts a new socket on the loop's list, or frees it when the loop stops. */
static int ev_link(sn_ev **out, sn_ev *e)
{
    sn_loop *l = e->l;
    sn__mutex_lock(&l->mu);
    bool stopping = l->stopping;
    if (!stopping)
        link_ev(l, e);
    sn__mutex_unlock(&l->mu);
    if (stopping) {
        release(e);
        unref(e);
        unref(e);
        return SN_ESTOPPED;
    }
    *out = e;
    return 0;
}

/* A new socket over a connection, not yet on the list; NULL (c freed)
 * without memory. */
static sn_ev *conn_ev(sn_loop *l, sn_conn *c)
{
    sn_ev *e;
    if (ev_new(&e, l, EV_CONN) < 0) {
        sn_conn_free(c);
        return NULL;
    }
    e->c = c;
    e->fd = sn_sock_fd(sn_conn_sock(c));
    return e;
}

int sn_ev_from_conn(sn_ev **out, sn_loop *l, sn_conn *c)
{
    if (out == NULL || l == NULL || c == NULL)
        return SN_EINVAL;
    sn_ev *e = conn_ev(l, c);
    return e != NULL ? ev_link(out, e) : SN_ENOMEM;
}

int sn_ev_from_ws(sn_ev **out, sn_loop *l, sn_ws *ws, int own_conn)
{
    if (out == NULL || l == NULL || ws == NULL || (own_conn != 0 && own_conn != 1))
        return SN_EINVAL;
    sn_ev *e;
    if (ev_new(&e, l, EV_WS) < 0) {
        sn_conn *c = sn_ws_conn(ws);
        sn_ws_free(ws);
        if (own_conn)
            sn_conn_free(c);
        return SN_ENOMEM;
    }
    e->ws = ws;
    e->c = sn_ws_conn(ws);
    e->own_conn = own_conn;
    e->fd = sn_sock_fd(sn_conn_sock(e->c));
    return ev_link(out, e);
}

int sn_ev_from_udp(sn_ev **out, sn_loop *l, sn_udp *u)
{
    if (out == NULL || l == NULL || u == NULL)
        return SN_EINVAL;
    sn_ev *e;
    if (ev_new(&e, l, EV_UDP) < 0) {
        sn_udp_free(u);
        return SN_ENOMEM;
    }
    e->u = u;
    e->fd = sn_udp_fd(u);
    return ev_link(out, e);
}

int sn_ev_client(sn_ev **out, sn_loop *l)
{
    if (out == NULL || l == NULL)
        return SN_EINVAL;
    sn_ev *e;
    if (ev_new(&e, l, EV_CONN) < 0)
        return SN_ENOMEM;
    return ev_link(out, e);
}

int sn_ev_on(sn_ev *e, int type, sn_ev_fn fn, void *user)
{
    if (e == NULL || type < SN_EV_MESSAGE || type >= SN_EV_TYPES)
        return SN_EINVAL;
    e->on[type].fn = fn;
    e->on[type].user = user;
    return 0;
}

int sn_ev_off(sn_ev *e, int type)
{
    return sn_ev_on(e, type, NULL, NULL);
}

/* NEW to STARTED, and the job that starts it; back to NEW if the pool
 * refuses the job. */
static int start(sn_ev *e, void (*job)(void *arg))
{
    if (atomic_load(&e->gone))
        return SN_ECLOSED; /* (its loop may be gone too) */
    sn__mutex_lock(&e->l->mu);
    int rc = e->state != EV_NEW ? SN_EBADSTATE : 0;
    if (job == attach && e->kind == EV_CONN && e->c == NULL)
        rc = SN_EBADSTATE; /* a client: sn_ev_connect starts it */
    if (rc == 0)
        e->state = EV_STARTED;
    sn__mutex_unlock(&e->l->mu);
    if (rc == 0 && (rc = sn_pool_submit(e->l->pool, job, e)) < 0) {
        sn__mutex_lock(&e->l->mu);
        e->state = EV_NEW;
        sn__mutex_unlock(&e->l->mu);
    }
    return rc;
}

int sn_ev_start(sn_ev *e)
{
    if (e == NULL)
        return SN_EINVAL;
    return start(e, attach);
}

static char *dup_or_null(const char *s, int *rc)
{
    if (s == NULL)
        return NULL;
    char *d = sn__malloc(strlen(s) + 1);
    if (d == NULL)
        *rc = SN_ENOMEM;
    else
        strcpy(d, s);
    return d;
}

int sn_ev_connect(sn_ev *e, const sn_ev_connect_config *cfg)
{
    if (e == NULL || cfg == NULL || cfg->host == NULL || cfg->port < 0 || cfg->port > 65535 ||
        cfg->timeout_ms < 0)
        return SN_EINVAL;
    if (atomic_load(&e->gone))
        return SN_ECLOSED; /* (its loop may be gone too) */
    sn__mutex_lock(&e->l->mu);
    bool client = e->kind == EV_CONN && e->c == NULL && e->req == NULL && e->state == EV_NEW;
    sn__mutex_unlock(&e->l->mu);
    if (!client)
        return SN_EBADSTATE;
    struct ev_connect *r = sn__calloc(1, sizeof *r);
    if (r == NULL)
        return SN_ENOMEM;
    int rc = 0;
    r->host = dup_or_null(cfg->host, &rc);
    r->name = dup_or_null(cfg->server_name, &rc);
    r->port = cfg->port;
    r->timeout_ms = cfg->timeout_ms;
    r->tls = cfg->tls;
    if (cfg->sock != NULL) {
        r->has_sock = true;
        r->sock = *cfg->sock;
        r->sock.bind_host = r->bind_host = dup_or_null(cfg->sock->bind_host, &rc);
    }
    sn__connect_gate_init(&r->gate);
    sn__mutex_lock(&e->l->mu);
    e->req = r; /* freed with the socket */
    sn__mutex_unlock(&e->l->mu);
    if (rc < 0)
        return rc;
    return start(e, connect_job);
}

sn_conn *sn_ev_conn(sn_ev *e)
{
    return e != NULL && e->kind != EV_UDP ? e->c : NULL;
}

sn_ws *sn_ev_ws(sn_ev *e)
{
    return e != NULL ? e->ws : NULL;
}

sn_udp *sn_ev_udp(sn_ev *e)
{
    return e != NULL ? e->u : NULL;
}

/* (kind changes under wlock only: sn_ev_accept_ws) */
static int send_locked(sn_ev *e, int ws_type, const void *data, size_t len, sn_deadline dl)
{
    if (atomic_load(&e->gone))
        return SN_ECLOSED;
    if (e->kind == EV_WS)
        return sn_ws_send(e->ws, ws_type, data, len, dl);
    if (e->kind == EV_UDP) {
        ssize_t n = sn_udp_send(e->u, data, len, dl);
        return n < 0 ? (int)n : 0;
    }
    if (e->c == NULL)
        return SN_ENOTCONN;
    ssize_t n = sn_write(e->c, data, len, dl);
    return n < 0 ? (int)n : sn_flush(e->c, dl);
}

static int send_any(sn_ev *e, int ws_type, const void *data, size_t len, sn_deadline dl)
{
    if (e == NULL || (data == NULL && len > 0))
        return SN_EINVAL;
    sn__lock_take(&e->wlock);
    int rc = send_locked(e, ws_type, data, len, dl);
    sn__lock_give(&e->wlock);
    return rc;
}

int sn_ev_send(sn_ev *e, const void *data, size_t len, sn_deadline dl)
{
    return send_any(e, SN_WS_BINARY, data, len, dl);
}

int sn_ev_send_text(sn_ev *e, const char *text, sn_deadline dl)
{
    if (e == NULL || text == NULL)
        return SN_EINVAL;
    return send_any(e, SN_WS_TEXT, text, strlen(text), dl);
}

int sn_ev_close_ws(sn_ev *e, int code, const char *reason)
{
    if (e == NULL)
        return SN_EINVAL;
    sn__lock_take(&e->wlock);
    int rc = e->kind != EV_WS        ? SN_EBADSTATE
             : atomic_load(&e->gone) ? SN_ECLOSED
                                     : sn_ws_close_send(e->ws, code, reason, sn_deadline_in(1000));
    sn__lock_give(&e->wlock);
    return rc;
}

int sn_ev_accept_ws(sn_ev *e, const char *path, const sn_ws_config *cfg, sn_deadline dl)
{
    if (e == NULL)
        return SN_EINVAL;
    if (e->kind != EV_CONN || e->watched || e->c == NULL)
        return SN_EBADSTATE; /* the connect callback of a connection's socket only */
    sn_http_header h[32];
    sn_http_request req;
    int rc = sn_http_read_request(e->c, NULL, h, SN_ARRAY_SIZE(h), &req, dl);
    if (rc < 0) {
        if (rc != SN_EOF && rc != SN_ECANCELED && sn_conn_error(e->c) == 0)
            sn_http_respond(e->c, sn_http_status_for(rc), NULL, NULL, 0, true, dl);
        return rc;
    }
    if (path != NULL && (req.path_len != strlen(path) || memcmp(req.path, path, req.path_len))) {
        static const char body[] = "no WebSocket here\n";
        sn_http_respond(e->c, 404, "Content-Type: text/plain\r\n", body, sizeof body - 1, true, dl);
        return SN_EWS_HANDSHAKE;
    }
    sn_ws *ws;
    if ((rc = sn_ws_accept(&ws, e->c, &req, cfg, dl)) < 0)
        return rc;
    sn__lock_take(&e->wlock);  /* the kind, against a send from another thread */
    sn__mutex_lock(&e->l->mu); /* and a close */
    e->ws = ws;
    e->own_conn = true;
    e->kind = EV_WS;
    sn__mutex_unlock(&e->l->mu);
    sn__lock_give(&e->wlock);
    return 0; /* attach watches it (and ticks its pings) as a session */
}

int sn_ev_hold(sn_ev *e)
{
    if (e == NULL)
        return SN_EINVAL;
    atomic_fetch_add(&e->refs, 1);
    return 0;
}

int sn__ev_adopt(sn_loop *l, sn_conn *c, void (*setup)(sn_ev *e, void *user), void *user)
{
    sn_ev *e = conn_ev(l, c);
    if (e == NULL)
        return SN_ENOMEM;
    setup(e, user);
    /* started from the first: a close or a stop only cancels it; one that
     * stops now gets its close callback all the same */
    sn__mutex_lock(&l->mu);
    e->state = EV_STARTED;
    link_ev(l, e);
    if (l->stopping)
        atomic_store(&e->closing, SN_ESTOPPED);
    sn__mutex_unlock(&l->mu);
    attach(e); /* here: on this fiber's thread, or this worker */
    sn_ev_free(e);
    return 0;
}

void sn_ev_free(sn_ev *e)
{
    if (e != NULL)
        unref(e);
}

/* Sets the closing error (the first wins) and wakes the socket, under
 * l->mu. A socket never started is finished by a job of its own. */
static void close_locked(sn_ev *e, int err)
{
    int none = 0;
    if (!atomic_compare_exchange_strong(&e->closing, &none, err))
        return;
    if (e->state == EV_NEW) {
        if (sn_pool_submit(e->l->pool, attach, e) == 0)
            e->state = EV_STARTED; /* attach sees the error and finishes it */
        return;
    }
    if (e->state != EV_STARTED)
        return;
    if (e->kind == EV_WS && err == SN_ESTOPPED && !sn__ws_masks(e->ws)) {
        /* a server's session says goodbye (1001) when its socket takes it
         * at once, as a handler's does when a stop ends its read */
        static const uint8_t going_away[] = {0x88, 0x02, 0x03, 0xe9};
        /* SN_EBUSY: a sender holds the session. Its own dispatch may be
         * trimming its buffer for a moment (thread mode): a few tries */
        for (int i = 0; i < 200; i++) {
            if (sn__ws_try_send_frame(e->ws, going_away, sizeof going_away, true) != SN_EBUSY)
                break;
            sched_yield();
        }
    }
    if (e->kind == EV_UDP)
        sn_udp_cancel(e->u);
    else if (e->c != NULL)
        sn_conn_cancel(e->c); /* a session's too */
    else if (e->req != NULL)
        sn__connect_gate_cancel(&e->req->gate);
}

int sn_ev_close(sn_ev *e)
{
    if (e == NULL)
        return SN_EINVAL;
    if (atomic_load(&e->gone))
        return 0; /* closed (the loop may be gone too) */
    sn__mutex_lock(&e->l->mu);
    if (e->state != EV_DONE)
        close_locked(e, SN_ECLOSED);
    sn__mutex_unlock(&e->l->mu);
    return 0;
}

/* Closes every socket and waits for their ends; stops the poller. */
static void loop_end(sn_loop *l)
{
    sn__mutex_lock(&l->mu);
    l->stopping = true;
    for (sn_ev *e = l->list; e != NULL; e = e->next)
        close_locked(e, SN_ESTOPPED);
    while (l->list != NULL)
        sn__cv_wait(&l->cond, &l->mu, SN_DEADLINE_NEVER);
    sn__mutex_unlock(&l->mu);
    poller_stop(l);
}

int sn_loop_stop(sn_loop *l)
{
    if (l == NULL)
        return SN_EINVAL;
    loop_end(l);
    return l->own_pool ? sn_pool_stop(l->pool) : 0;
}

void sn__loop_end(sn_loop *l)
{
    loop_end(l);
}

int sn__loop_count(sn_loop *l)
{
    sn__mutex_lock(&l->mu);
    int n = l->count;
    sn__mutex_unlock(&l->mu);
    return n;
}

void sn_loop_free(sn_loop *l)
{
    if (l == NULL)
        return;
    loop_end(l);
    if (l->own_pool)
        sn_pool_free(l->pool);
    if (l->ep >= 0)
        close(l->ep);
    if (l->wake >= 0)
        close(l->wake);
    sn__cv_destroy(&l->cond);
    sn__mutex_destroy(&l->pmu);
    sn__mutex_destroy(&l->mu);
    sn__free(l);
}
