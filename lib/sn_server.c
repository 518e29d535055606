/* SPDX-License-Identifier: MIT */
/*
 * sn_server.c: listeners, acceptor threads, admission, handler dispatch and
 * the graceful stop.
 *
 * Locks, in the order they are taken:
 *   1. s->run.stop_mu  one stopper at a time (held through a whole stop);
 *   2. s->run.mu       the connection list, the counts, the stop state;
 *   3. s->spare_mu the spare descriptors (a leaf: nothing is taken under it).
 * The pool's own mutex is never nested with either: sn_pool_* is called
 * without s->run.mu, and the pool calls back (jobs, the drop callback) without
 * its mutex. s->run.mu is never held across I/O that can wait or across a user
 * callback; the one system call made under it is sn__conn_wake's
 * shutdown(2), which never blocks, and which must not race with the close
 * of that connection's descriptor (a connection leaves the RUNNING state,
 * under s->run.mu, before it is closed).
 *
 * A connection's record (struct sconn) is on s->conns from the moment an
 * acceptor admits it until it is closed: QUEUED while the pool holds it,
 * RUNNING while a worker serves it (handler, on_close), CLOSING during the
 * final flush. Stop wakes the RUNNING ones and waits for them; QUEUED ones
 * are closed unserved (by the pool's drop callback, or by the job itself
 * when it starts after the stop began). A QUEUED one that has waited
 * queue_timeout_ms is taken off the pool's queue by an acceptor, which
 * answers it per `overload` (refuse_expired): every acceptor does that
 * after each batch of accepts and wakes up for the next one to expire, so
 * the limit holds while every worker is busy.
 *
 * Stop (sn_server_stop), under s->run.stop_mu:
 *   1. stopping = 1; the eventfd wakes the acceptors, which exit; join
 *      them; close the listeners and the eventfd;
 *   2. wake every RUNNING connection at level 1 (reads give SN_ESTOPPED,
 *      writes work) and wait until none runs, up to the deadline;
 *   3. past the deadline, wake the rest at level 2 (all I/O fails) and wait
 *      for them without a deadline;
 *   4. stop the pool: queued connections are dropped (closed) and every
 *      worker joined.
 * From a handler (or its on_close), steps 2 and 3 leave out the caller's
 * own connection and step 4 is left for a later stop from outside (the one
 * in sn_server_free at the latest), because the pool cannot join the thread
 * that calls it. From an acceptor callback (on_connect, on_error) a stop
 * only begins: it sets the flag and wakes everybody, and returns.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_chan_int.h"
#include "sn_event_int.h"
#include "sn_fiber.h"
#include "sn_pool_int.h"
#include "sn_run.h"
#include "sn_sock_int.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

#define SN_SERVER_ACCEPTORS_MAX 64
#define SN_SERVER_LISTENERS_MAX 256
#define SN_SERVER_WORKERS_DEFAULT 256
#define SN_SERVER_STOP_DEFAULT 5000
/* ms a connection may wait in the queue: the HTTP head's and TLS handshake's deadline */
#define SN_SERVER_QUEUE_TIMEOUT_DEFAULT 10000
#define SN_SERVER_LINGER_DEFAULT 2000
#define SN_SERVER_BATCH 32       /* accepts per listener per wakeup */
#define SN_SERVER_SPARES_MAX 8   /* spare descriptors: one per acceptor, up to this */
#define SN_SERVER_BACKOFF_MS 10  /* after EMFILE and other accept failures */
#define SN_SERVER_FLUSH_MS 1000  /* the final flush of a served connection */
#define SN_SERVER_DROP_MAX 65536 /* unread bytes dropped before a refusal */
#define SN_SERVER_BUSY_MESSAGE "server busy\r\n"

enum sconn_state { C_QUEUED, C_RUNNING, C_CLOSING };

struct sconn {
    sn_server *s;
    sn_conn *c;
    sn_tls *tls;               /* the listener's TLS context then, or NULL */
    struct sconn *prev, *next; /* s->conns */
    int state;                 /* enum sconn_state, under s->run.mu */
};

struct acceptor {
    sn_server *s;
    pthread_t tid;
    struct pollfd *pfd; /* [0] the eventfd, [1..] the listeners */
};

/* A fiber-mode listener's acceptor fiber. */
struct lfiber {
    sn_server *s;
    int i; /* the listener */
    struct acceptor acc;
};

/* Go / abort for acceptors waiting for sn_server_start to finish. */
enum { GO_WAIT = 0, GO_RUN, GO_ABORT };

/* The counters of sn_server_stats read without the lock, as X(name)
 * (left as written: clang-format reflows the list differently each run). */
// clang-format off
#define SERVER_COUNTERS(X)                                                                         \
    X(accepted) X(refused) X(expired) X(rejected) X(accept_errors) X(tls_failures)                 \
    X(tls_fail_cert) X(tls_fail_version) X(tls_fail_cipher) X(tls_fail_alpn)                      \
    X(tls_fail_timeout) X(tls_fail_closed) X(tls_fail_other)
// clang-format on

struct sn_server {
    sn_server_config cfg; /* the copy; host, listeners, message point below */
    sn_listen_config *lcfg;
    int nl;
    sn_tls **tls; /* [nl], per listener, NULL = plain; swapped under s->run.mu */
    char *message;
    size_t message_len;

    /* made by sn_server_start */
    sn_sock **lsock;
    sn_addr *laddr;
    sn_pool *pool;
    sn_loop *loop;        /* event mode: over pool */
    struct acceptor *acc; /* thread mode */
    int wakefd;           /* thread mode: wakes the acceptors */
    /* fiber mode: an acceptor fiber per listener */
    struct lfiber *lfib;
    int fiber_acceptors;  /* live ones (s->run.mu) */
    struct sconn acc_tag; /* an acceptor fiber's local, to know it by */

    /* spare descriptors for EMFILE (libuv's trick), shared by the acceptors:
     * one that runs out of descriptors closes a spare, accepts and closes
     * what is pending, and opens it again */
    pthread_mutex_t spare_mu;
    int *spares; /* -1: used up, to open again */
    int nspares;
    atomic_int spares_missing;

    /* locks and flags; run.cond is broadcast when go changed or a
     * connection finished; run.finished: every step of the stop is done */
    sn__run run;
    int go;
    bool acceptors_down; /* step 1 of the stop is done */
    int stop_rc;

    struct sconn *conns;
    int running; /* RUNNING + CLOSING */
    uint64_t closed, bytes_read, bytes_written;
    uint64_t handed; /* event mode: connections handed to the loop */
    struct {
        SERVER_COUNTERS(SN__COUNTER_FIELD)
    } n;
};

/* The connection the calling worker serves, and the server whose acceptor
 * the calling thread is: a stop from either must not wait for itself. */
static _Thread_local sn_server *tl_acceptor;

/* The connection the caller serves: its task's (a fiber's in fiber mode,
 * where fibers of one thread take turns, else its thread's). */
static struct sconn *current_conn(void)
{
    return sn__task_local();
}

static void set_current_conn(struct sconn *r)
{
    sn__task_set_local(r);
}

/* Whether the caller is one of s's acceptors (thread or fiber). */
static bool on_acceptor(const sn_server *s)
{
    return tl_acceptor == s || current_conn() == &s->acc_tag;
}

static void report(sn_server *s, int err, const char *what)
{
    if (s->cfg.on_error != NULL)
        s->cfg.on_error(s, err, what, s->cfg.user);
}

/* ---- the connection list (under s->run.mu) --------------------------------------- */

static void conn_link(sn_server *s, struct sconn *r)
{
    r->prev = NULL;
    r->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = r;
    s->conns = r;
}

static void conn_unlink(sn_server *s, struct sconn *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        s->conns = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
}

/* Wakes every running connection but `own` (under s->run.mu). */
static void wake_running(sn_server *s, int level, const struct sconn *own)
{
    for (struct sconn *r = s->conns; r != NULL; r = r->next)
        if (r->state == C_RUNNING && r != own)
            sn__conn_wake(r->c, level);
}

static int running_others(const sn_server *s, const struct sconn *own)
{
    return s->running - (own != NULL ? 1 : 0);
}

/* ---- closing what is not served ----------------------------------------------- */

/* Reads and drops what the peer sent, without waiting, so that the close
 * sends FIN rather than RST (the kernel resets when unread data remains). */
static void drop_input(int fd)
{
    char buf[4096];
    for (size_t total = 0; total < SN_SERVER_DROP_MAX;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
}

/* Answers a connection there is no room for, per the overload policy. The
 * caller then frees it. Never waits. */
static void answer_overload(sn_server *s, sn_conn *c)
{
    int fd = sn_sock_fd(sn_conn_sock(c));
    switch (s->cfg.overload) {
    case SN_OVERLOAD_RESET: {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        break;
    }
    case SN_OVERLOAD_MESSAGE:
        (void)!send(fd, s->message, s->message_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        drop_input(fd);
        break;
    default:
        drop_input(fd);
        break;
    }
}

/* Closes a queued connection that will never be served: the pool's drop
 * callback, and what a job does when it starts after the stop began. */
static void sconn_free(struct sconn *r)
{
    sn_conn_free(r->c);
    sn_tls_free(r->tls);
    sn__free(r);
}

static void close_unserved(void *arg)
{
    struct sconn *r = arg;
    sn_server *s = r->s;
    sn__mutex_lock(&s->run.mu);
    conn_unlink(s, r);
    sn__mutex_unlock(&s->run.mu);
    sconn_free(r);
}

/* Refuses a connection the server took in but will not serve: out of the
 * list, counted, answered per `overload`, freed. */
static void refuse_conn(sn_server *s, struct sconn *r)
{
    sn__mutex_lock(&s->run.mu);
    conn_unlink(s, r);
    sn__mutex_unlock(&s->run.mu);
    sn__counter_add(&s->n.refused, 1);
    answer_overload(s, r->c);
    sconn_free(r);
}

/* The pool's expiry callback: a queued connection waited queue_timeout_ms
 * for a worker, and is answered as if the queue had been full. */
static void refuse_expired(void *arg)
{
    struct sconn *r = arg;
    sn__counter_add(&r->s->n.expired, 1);
    refuse_conn(r->s, r);
}

/* Answers every connection that has waited its queue_timeout_ms (on an
 * acceptor, between accepts). Returns when the next one will have waited
 * as long, for the acceptor's wait, or SN_DEADLINE_NEVER (none queued, or
 * no limit). */
static int64_t expire_queued(sn_server *s)
{
    int limit = s->cfg.queue_timeout_ms;
    if (limit < 0)
        return SN_DEADLINE_NEVER;
    int64_t oldest = sn__pool_expire(s->pool, sn_now_ms() - limit, refuse_expired);
    return oldest == SN_DEADLINE_NEVER ? oldest : oldest + limit;
}

/* ---- the worker's job ------------------------------------------------------------ */

/* Whether the peer sent input the handler did not read: buffered, or still
 * in the socket. A handler that read to the end of the stream (or a reset)
 * left none, and that needs no system call to know. */
static bool input_left(sn_conn *c)
{
    int n = 0;
    if (sn__conn_input_ended(c))
        return false;
    return sn_available(c) > 0 || (ioctl(sn_sock_fd(sn_conn_sock(c)), FIONREAD, &n) == 0 && n > 0);
}

static void setup_client(sn_ev *e, void *user)
{
    sn_server *s = user;
    s->cfg.on_client(e, s->cfg.user);
}

/* Event mode: the connection leaves the server's list for the loop, and
 * starts there on this worker. */
static void hand_to_loop(sn_server *s, struct sconn *r)
{
    sn_conn *c = r->c;
    r->c = NULL;
    sn__mutex_lock(&s->run.mu);
    conn_unlink(s, r);
    sn__mutex_unlock(&s->run.mu);
    sconn_free(r); /* before it is counted out, as in serve */
    sn__mutex_lock(&s->run.mu);
    s->running--;
    s->handed++;
    sn__cv_broadcast(&s->run.cond);
    sn__mutex_unlock(&s->run.mu);
    if (sn__ev_adopt(s->loop, c, setup_client, s) < 0)
        report(s, SN_ENOMEM, "out of memory for an event socket; closed");
}

/* A failed handshake (on the worker that ran it): counted by kind, and
 * reported with the client's address and the reason. */
static void tls_failed(sn_server *s, sn_conn *c, int rc)
{
    sn__counter_add(&s->n.tls_failures, 1);
    switch (rc) {
    case SN_ETLS_VERIFY:
    case SN_ETLS_NO_CERT:
    case SN_ETLS_HOSTNAME:
        sn__counter_add(&s->n.tls_fail_cert, 1);
        break;
    case SN_ETLS_VERSION:
        sn__counter_add(&s->n.tls_fail_version, 1);
        break;
    case SN_ETLS_CIPHER:
        sn__counter_add(&s->n.tls_fail_cipher, 1);
        break;
    case SN_ETLS_ALPN:
        sn__counter_add(&s->n.tls_fail_alpn, 1);
        break;
    case SN_ETIMEDOUT:
        sn__counter_add(&s->n.tls_fail_timeout, 1);
        break;
    default:
        if (rc == SN_EOF || (rc > -1000 && rc != SN_ENOMEM && rc != SN_ECANCELED)) /* left */
            sn__counter_add(&s->n.tls_fail_closed, 1);
        else
            sn__counter_add(&s->n.tls_fail_other, 1);
    }
    if (s->cfg.on_error == NULL || rc == SN_ESTOPPED) /* a stop is no failure to report */
        return;
    sn_addr peer;
    char addr[SN_ADDR_STRLEN], what[SN_ADDR_STRLEN + 320];
    if (sn_sock_remote_addr(sn_conn_sock(c), &peer) < 0 ||
        sn_addr_format(&peer, addr, sizeof addr) < 0)
        snprintf(addr, sizeof addr, "an unknown peer");
    const char *why = sn_tls_reason(c); /* "" when it failed before the handshake began */
    snprintf(what, sizeof what, "TLS handshake with %s failed: %s", addr,
             *why ? why : sn_strerror(rc));
    s->cfg.on_error(s, rc, what, s->cfg.user);
}

static void serve(void *arg)
{
    struct sconn *r = arg;
    sn_server *s = r->s;

    sn__mutex_lock(&s->run.mu);
    if (sn__run_stopping(&s->run)) {
        sn__mutex_unlock(&s->run.mu);
        close_unserved(r);
        return;
    }
    r->state = C_RUNNING;
    s->running++;
    sn__mutex_unlock(&s->run.mu);

    set_current_conn(r);
    /* TLS: the handshake runs here, on the worker, within its deadline; a
     * stop wakes it like a handler's read */
    int rc = r->tls != NULL ? sn_tls_upgrade(r->c, r->tls, NULL, SN_DEADLINE_DEFAULT) : 0;
    if (rc < 0) {
        tls_failed(s, r->c, rc);
    } else if (s->loop != NULL) {
        set_current_conn(NULL);
        hand_to_loop(s, r);
        return;
    } else {
        s->cfg.handler(r->c, s->cfg.user);
        if (s->cfg.on_close != NULL)
            s->cfg.on_close(r->c, sn_conn_error(r->c), s->cfg.user);
        /* still running: a stop ends the linger as it wakes a read */
        if (s->cfg.linger_ms > 0 && input_left(r->c))
            sn_conn_linger(r->c, s->cfg.linger_ms);
    }
    set_current_conn(NULL);

    sn__mutex_lock(&s->run.mu);
    r->state = C_CLOSING; /* from now on nobody wakes it: its fd closes */
    sn__mutex_unlock(&s->run.mu);
    sn_conn_close(r->c, sn_deadline_in(SN_SERVER_FLUSH_MS));
    sn_conn_stats st;
    sn_conn_stats_get(r->c, &st);

    sn__mutex_lock(&s->run.mu);
    conn_unlink(s, r);
    s->closed++;
    s->bytes_read += st.bytes_read;
    s->bytes_written += st.bytes_written;
    sn__mutex_unlock(&s->run.mu);
    sconn_free(r);
    /* counted out once its memory is gone: a caller that sees the server
     * idle (stats, a stop) sees nothing of the connection left */
    sn__mutex_lock(&s->run.mu);
    s->running--;
    sn__cv_broadcast(&s->run.cond);
    sn__mutex_unlock(&s->run.mu);
}

/* ---- acceptors ------------------------------------------------------------------- */

/* Hands an accepted socket to the pool, or refuses it. */
static void admit(sn_server *s, int li, sn_sock *sock)
{
    sn__counter_add(&s->n.accepted, 1);
    if (s->cfg.on_connect != NULL) {
        sn_addr peer = {0};
        sn_sock_remote_addr(sock, &peer);
        if (s->cfg.on_connect(s, &peer, s->cfg.user) != 0) {
            sn__counter_add(&s->n.rejected, 1); /* counted before the peer can see it */
            drop_input(sn_sock_fd(sock));
            sn_sock_free(sock);
            return;
        }
    }
    struct sconn *r = sn__calloc(1, sizeof *r);
    if (r == NULL || sn_conn_new(&r->c, sock, &s->cfg.conn) < 0) {
        sn__free(r);
        sn_sock_free(sock);
        sn__counter_add(&s->n.accept_errors, 1);
        report(s, SN_ENOMEM, "out of memory for a new connection; closed");
        return;
    }
    r->s = s;
    r->state = C_QUEUED;
    sn__mutex_lock(&s->run.mu);
    r->tls = s->tls[li] != NULL ? sn_tls_ref(s->tls[li]) : NULL;
    conn_link(s, r);
    sn__mutex_unlock(&s->run.mu);

    if (sn_pool_submit(s->pool, serve, r) == 0)
        return; /* r belongs to the job now */
    refuse_conn(s, r);
}

/* ---- spare descriptors ----------------------------------------------------------- */

static int spares_open(sn_server *s, int n)
{
    if ((s->spares = sn__calloc((size_t)n, sizeof *s->spares)) == NULL)
        return SN_ENOMEM;
    s->nspares = n;
    for (int i = 0; i < n; i++)
        s->spares[i] = -1;
    atomic_store(&s->spares_missing, n);
    return 0;
}

/* Opens the spares used up, if descriptors allow (cheap when none is). */
static void spares_refill(sn_server *s)
{
    if (atomic_load(&s->spares_missing) == 0)
        return;
    sn__mutex_lock(&s->spare_mu);
    for (int i = 0; i < s->nspares; i++)
        if (s->spares[i] < 0 && (s->spares[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
            atomic_fetch_sub(&s->spares_missing, 1);
    sn__mutex_unlock(&s->spare_mu);
}

/* A spare descriptor for the caller to close, or -1 when none is left. */
static int spare_take(sn_server *s)
{
    int fd = -1;
    sn__mutex_lock(&s->spare_mu);
    for (int i = 0; i < s->nspares && fd < 0; i++) {
        if ((fd = s->spares[i]) >= 0) {
            s->spares[i] = -1;
            atomic_fetch_add(&s->spares_missing, 1);
        }
    }
    sn__mutex_unlock(&s->spare_mu);
    return fd;
}

static void spares_close(sn_server *s)
{
    for (int i = 0; i < s->nspares; i++)
        if (s->spares[i] >= 0)
            close(s->spares[i]);
    sn__free(s->spares);
    s->spares = NULL;
    s->nspares = 0;
}

/* Out of descriptors: frees a spare one, accepts and closes what is pending
 * (libuv's trick), and takes the spare back. Another acceptor may take the
 * freed descriptor first and serve its connection: then the spare comes
 * back later (spares_refill), once descriptors allow. */
static void shed_pending(sn_server *s, sn_sock *listener)
{
    int spare = spare_take(s);
    if (spare < 0)
        return;
    close(spare);
    for (int i = 0; i < SN_SERVER_BATCH; i++) {
        int fd = accept4(sn_sock_fd(listener), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        sn__counter_add(&s->n.refused, 1);
        drop_input(fd);
        close(fd);
    }
    spares_refill(s);
}

/* What an acceptor does after a batch. */
enum { ACC_WAIT, ACC_MORE, ACC_BACKOFF };

/* Accepts up to a batch from listener i. Returns ACC_WAIT when none is
 * pending (or the server stops), ACC_MORE when the batch ran out first, or
 * ACC_BACKOFF when the acceptor should pause before it tries again. */
static int accept_batch(struct acceptor *a, int i)
{
    sn_server *s = a->s;
    for (int k = 0; k < SN_SERVER_BATCH; k++) {
        sn_sock *sock;
        if (sn__run_stopping(&s->run))
            return ACC_WAIT;
        int rc = sn__sock_accept_now(s->lsock[i], &sock);
        if (rc == SN_EAGAIN)
            return ACC_WAIT;
        if (rc == 0) {
            admit(s, i, sock);
            continue;
        }
        sn__counter_add(&s->n.accept_errors, 1);
        switch (rc) {
        case SN_EMFILE:
        case SN_ENFILE:
            shed_pending(s, s->lsock[i]);
            report(s, rc, "accept: out of descriptors; pending connections closed");
            return ACC_BACKOFF;
        case SN_ECONNABORTED:
        case -EPROTO:
        case -EPERM:
        case SN_EINTR:
            continue; /* that connection is gone; the next one may be fine */
        default:
            report(s, rc, "accept failed");
            return ACC_BACKOFF;
        }
    }
    return ACC_MORE;
}

/* Waits until sn_server_start says go (true) or abort (false). */
static bool acceptor_go(sn_server *s)
{
    sn__mutex_lock(&s->run.mu);
    while (s->go == GO_WAIT)
        sn__cv_wait(&s->run.cond, &s->run.mu, SN_DEADLINE_NEVER);
    bool run = s->go == GO_RUN;
    sn__mutex_unlock(&s->run.mu);
    return run;
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    sn_server *s = a->s;
    int64_t backoff_until = 0;

    tl_acceptor = s;
    bool run = acceptor_go(s);
    while (run && !sn__run_stopping(&s->run)) {
        spares_refill(s);
        int64_t expiry = expire_queued(s); /* the poll wakes up for it */
        /* backing off: watch only the eventfd until the pause is over */
        bool backoff = backoff_until > sn_now_ms();
        int n = poll(a->pfd, backoff ? 1 : (nfds_t)s->nl + 1,
                     sn__poll_timeout(backoff ? SN_MIN(backoff_until, expiry) : expiry));
        if (n < 0 && errno != EINTR) {
            report(s, -errno, "poll failed");
            backoff_until = sn_now_ms() + SN_SERVER_BACKOFF_MS;
            continue;
        }
        if (n <= 0 || backoff)
            continue;
        if (a->pfd[0].revents != 0)
            break; /* stop */
        for (int i = 0; i < s->nl; i++)
            if (a->pfd[i + 1].revents != 0 && accept_batch(a, i) == ACC_BACKOFF)
                backoff_until = sn_now_ms() + SN_SERVER_BACKOFF_MS;
    }
    tl_acceptor = NULL;
    return NULL;
}

/* Fiber mode: accepts from one listener on one scheduler thread, and the
 * pool spawns each connection's fiber right here. The listener is
 * registered edge-triggered, so the fiber accepts until none is pending
 * before it waits; it yields between batches so that the new connections
 * run. The stop wakes it by shutting the listener down. */
static void acceptor_fiber(void *arg)
{
    struct lfiber *lf = arg;
    sn_server *s = lf->s;
    struct acceptor *a = &lf->acc;
    int lfd = sn_sock_fd(s->lsock[lf->i]);
    sn__task_set_local(&s->acc_tag);
    while (!sn__run_stopping(&s->run)) {
        spares_refill(s);
        int next = accept_batch(a, lf->i);
        /* the queued connections that waited too long, also in a flood;
         * the wait below wakes up for the next one */
        int64_t expiry = expire_queued(s);
        if (next == ACC_MORE) {
            sn_yield();
        } else if (next == ACC_BACKOFF) {
            sn_sleep_ms(SN_SERVER_BACKOFF_MS);
        } else if (!sn__run_stopping(&s->run)) {
            /* the scheduler's own wait: one thread woken per connection
             * (EPOLLEXCLUSIVE), which no mode-blind wait can offer */
            int rc = sn__fiber_wait_accept(lfd, expiry);
            if (rc < 0 && rc != SN_ETIMEDOUT) {
                report(s, rc, "waiting for connections failed");
                sn_sleep_ms(SN_SERVER_BACKOFF_MS);
            }
        }
    }
    sn__task_set_local(NULL);
    sn__mutex_lock(&s->run.mu);
    s->fiber_acceptors--;
    sn__cv_broadcast(&s->run.cond);
    sn__mutex_unlock(&s->run.mu);
}

/* An acceptor fiber that could not start (no memory for its stack). */
static void acceptor_fiber_failed(void *arg)
{
    struct lfiber *lf = arg;
    sn_server *s = lf->s;
    report(s, SN_ENOMEM, "an acceptor fiber could not start");
    sn__mutex_lock(&s->run.mu);
    s->fiber_acceptors--;
    sn__cv_broadcast(&s->run.cond);
    sn__mutex_unlock(&s->run.mu);
}

/* ---- configuration ------------------------------------------------------------- */

static bool listen_config_ok(const sn_listen_config *l)
{
    return l->port >= 0 && l->port <= 65535 && l->backlog >= 0 && !sn__opt_binds(&l->opt);
}

static int check_config(const sn_server_config *c)
{
    if ((c->handler == NULL) == (c->on_client == NULL) || c->nlisteners < 0 ||
        c->nlisteners > SN_SERVER_LISTENERS_MAX)
        return SN_EINVAL;
    if ((c->listeners == NULL) != (c->nlisteners == 0))
        return SN_EINVAL;
    for (int i = 0; i < c->nlisteners; i++)
        if (!listen_config_ok(&c->listeners[i]))
            return SN_EINVAL;
    if (c->listeners == NULL && (c->port < 0 || c->port > 65535 || sn__opt_binds(&c->sockopt)))
        return SN_EINVAL;
    if (c->acceptors < 0 || c->acceptors > SN_SERVER_ACCEPTORS_MAX)
        return SN_EINVAL;
    int workers = c->workers ? c->workers : SN_SERVER_WORKERS_DEFAULT;
    int most = c->fibers == SN_ON ? 1 << 20 : 65536;
    if (c->fibers != 0 && c->fibers != SN_ON && c->fibers != SN_OFF)
        return SN_EINVAL;
    if (workers < 1 || workers > most || c->min_workers < 0 || c->min_workers > workers ||
        c->fiber_threads < 0 || c->fiber_threads > 1024)
        return SN_EINVAL;
    if (c->queue < SN_OFF || c->queue_timeout_ms < SN_TIMEOUT_NEVER || c->linger_ms < SN_OFF ||
        c->worker_idle_ms < SN_TIMEOUT_NEVER || c->stop_timeout_ms < SN_TIMEOUT_NEVER)
        return SN_EINVAL;
    if (c->overload < SN_OVERLOAD_CLOSE || c->overload > SN_OVERLOAD_MESSAGE)
        return SN_EINVAL;
    if (c->listener_tls != NULL && c->listeners == NULL)
        return SN_EINVAL;
    for (int i = 0; c->listener_tls != NULL && i < c->nlisteners; i++)
        if (c->listener_tls[i] != NULL && sn_tls_role_of(c->listener_tls[i]) != SN_TLS_SERVER)
            return SN_EINVAL;
    if (c->tls != NULL && sn_tls_role_of(c->tls) != SN_TLS_SERVER)
        return SN_EINVAL;
    if (c->conn.read_buffer != 0 && c->conn.read_buffer_max != 0 &&
        c->conn.read_buffer > c->conn.read_buffer_max)
        return SN_EINVAL;
    return 0;
}

/* Copies the listeners (one from host/port, or the array) and their hosts. */
static int copy_listeners(sn_server *s, const sn_server_config *c)
{
    s->nl = c->listeners != NULL ? c->nlisteners : 1;
    s->lcfg = sn__calloc((size_t)s->nl, sizeof *s->lcfg);
    if (s->lcfg == NULL)
        return SN_ENOMEM;
    if (c->listeners != NULL)
        memcpy(s->lcfg, c->listeners, (size_t)s->nl * sizeof *s->lcfg);
    else
        s->lcfg[0] = (sn_listen_config){.host = c->host, .port = c->port, .opt = c->sockopt};
    for (int i = 0; i < s->nl; i++)
        s->lcfg[i].host = NULL; /* ours from here on: free_config frees them */
    for (int i = 0; i < s->nl; i++) {
        const char *host = c->listeners != NULL ? c->listeners[i].host : c->host;
        if (host != NULL && (s->lcfg[i].host = sn__strdup(host)) == NULL)
            return SN_ENOMEM;
    }
    if ((s->tls = sn__calloc((size_t)s->nl, sizeof *s->tls)) == NULL)
        return SN_ENOMEM;
    for (int i = 0; i < s->nl; i++) {
        sn_tls *t = c->listener_tls != NULL ? c->listener_tls[i] : c->tls;
        s->tls[i] = t != NULL ? sn_tls_ref(t) : NULL;
    }
    return 0;
}

static void free_config(sn_server *s)
{
    for (int i = 0; s->lcfg != NULL && i < s->nl; i++)
        sn__free((char *)s->lcfg[i].host);
    for (int i = 0; s->tls != NULL && i < s->nl; i++)
        sn_tls_free(s->tls[i]);
    sn__free(s->tls);
    sn__free(s->lcfg);
    sn__free(s->message);
}

int sn_server_new(sn_server **out, const sn_server_config *cfg)
{
    if (out == NULL || cfg == NULL)
        return SN_EINVAL;
    int rc = check_config(cfg);
    if (rc < 0)
        return rc;
    sn_server *s = sn__calloc(1, sizeof *s);
    if (s == NULL)
        return SN_ENOMEM;
    s->cfg = *cfg;
    s->cfg.host = NULL;
    s->cfg.listeners = NULL;
    s->cfg.overload_message = NULL;
    s->cfg.tls = NULL;
    s->cfg.listener_tls = NULL;
    if (s->cfg.acceptors == 0)
        s->cfg.acceptors = 1;
    if (s->cfg.stop_timeout_ms == 0)
        s->cfg.stop_timeout_ms = SN_SERVER_STOP_DEFAULT;
    if (s->cfg.queue_timeout_ms == 0)
        s->cfg.queue_timeout_ms = SN_SERVER_QUEUE_TIMEOUT_DEFAULT;
    if (s->cfg.linger_ms == 0)
        s->cfg.linger_ms = SN_SERVER_LINGER_DEFAULT;
    s->wakefd = -1;
    const char *msg = cfg->overload_message ? cfg->overload_message : SN_SERVER_BUSY_MESSAGE;
    if ((rc = copy_listeners(s, cfg)) < 0 || (s->message = sn__strdup(msg)) == NULL) {
        free_config(s);
        sn__free(s);
        return SN_ENOMEM;
    }
    s->message_len = strlen(s->message);
    sn__run_init(&s->run);
    sn__mutex_init(&s->spare_mu);
    *out = s;
    return 0;
}

/* ---- start ------------------------------------------------------------------- */

static void close_listeners(sn_server *s)
{
    for (int i = 0; s->lsock != NULL && i < s->nl; i++) {
        sn_sock_free(s->lsock[i]);
        s->lsock[i] = NULL;
    }
}

static int open_listeners(sn_server *s)
{
    s->lsock = sn__calloc((size_t)s->nl, sizeof *s->lsock);
    s->laddr = sn__calloc((size_t)s->nl, sizeof *s->laddr);
    if (s->lsock == NULL || s->laddr == NULL)
        return SN_ENOMEM;
    for (int i = 0; i < s->nl; i++) {
        int rc = sn_tcp_listen(&s->lsock[i], &s->lcfg[i]);
        if (rc < 0) {
            s->lsock[i] = NULL;
            return rc;
        }
        if ((rc = sn_sock_local_addr(s->lsock[i], &s->laddr[i])) < 0)
            return rc;
    }
    return 0;
}

/* The pool could not start a worker: the connection waits in the queue. */
static void thread_refused(int err, void *user)
{
    report(user, err, "worker thread refused");
}

static int make_pool(sn_server *s)
{
    sn_pool_config pc = {
        .min_threads = s->cfg.min_workers,
        .max_threads = s->cfg.workers,
        .queue_size = s->cfg.queue,
        .idle_ms = s->cfg.worker_idle_ms,
        .stack_size = s->cfg.stack_size,
        .drop = close_unserved,
        .on_thread_error = thread_refused,
        .user = s,
        .fibers = s->cfg.fibers,
        .fiber_threads = s->cfg.fiber_threads,
    };
    return sn_pool_new(&s->pool, &pc);
}

/* Makes the acceptors; they wait for s->go. Returns 0 (all run, and the
 * server counts as started), or an error after which none runs (those
 * made are told to abort and joined). */
static int make_acceptors(sn_server *s)
{
    int n = s->cfg.acceptors;
    s->acc = sn__calloc((size_t)n, sizeof *s->acc);
    if (s->acc == NULL)
        return SN_ENOMEM;
    int made = 0, rc = 0;
    for (; made < n; made++) {
        struct acceptor *a = &s->acc[made];
        a->s = s;
        a->pfd = sn__calloc((size_t)s->nl + 1, sizeof *a->pfd);
        if (a->pfd == NULL) {
            rc = SN_ENOMEM;
            break;
        }
        a->pfd[0] = (struct pollfd){.fd = s->wakefd, .events = POLLIN};
        for (int i = 0; i < s->nl; i++)
            a->pfd[i + 1] = (struct pollfd){.fd = sn_sock_fd(s->lsock[i]), .events = POLLIN};
        if (pthread_create(&a->tid, NULL, acceptor_main, a) != 0) {
            rc = SN_EAGAIN;
            break;
        }
    }
    sn__mutex_lock(&s->run.mu);
    s->go = rc < 0 ? GO_ABORT : GO_RUN;
    s->run.started = rc == 0; /* before any handler can run and call stop */
    sn__cv_broadcast(&s->run.cond);
    sn__mutex_unlock(&s->run.mu);
    if (rc < 0) {
        for (int i = 0; i < made; i++)
            pthread_join(s->acc[i].tid, NULL);
        for (int i = 0; i <= made && i < n; i++)
            sn__free(s->acc[i].pfd);
        sn__free(s->acc);
        s->acc = NULL;
    }
    return rc;
}

/* Shuts the listeners down, which wakes every acceptor fiber (s->run.mu held,
 * or no acceptor running yet). New connections are refused from now on. */
static void shut_listeners(sn_server *s)
{
    for (int i = 0; s->lsock != NULL && i < s->nl; i++)
        if (s->lsock[i] != NULL)
            shutdown(sn_sock_fd(s->lsock[i]), SHUT_RDWR);
}

/* Waits until no acceptor fiber is left. On a fiber it sleeps in short
 * steps rather than on the condition: the acceptor fiber of its own thread
 * needs the thread to finish. */
static void wait_acceptor_fibers(sn_server *s)
{
    sn__mutex_lock(&s->run.mu);
    while (s->fiber_acceptors > 0) /* a fiber waiting here parks: its neighbours run */
        sn__cv_wait(&s->run.cond, &s->run.mu, SN_DEADLINE_NEVER);
    sn__mutex_unlock(&s->run.mu);
}

/* Fiber mode: the acceptors' records. */
static void free_acceptor_fibers(sn_server *s)
{
    sn__free(s->lfib);
    s->lfib = NULL;
}

/* Fiber mode: an acceptor fiber per listener, listener i's on scheduler
 * thread i (modulo their number). One, not one per thread: every thread
 * waiting on a listener (EPOLLEXCLUSIVE) had the kernel wake a sleeping
 * one for each new connection rather than leave it to the one awake, at
 * twice the context switches and 1.4 times the CPU per connection of one
 * acceptor (bench/RESULTS.md, issue 20); the pool still hands a new
 * connection to a less busy thread (pick_thread). Returns 0 (all are on
 * their way; the server counts as started) or an error after which none
 * runs. */
static int make_acceptor_fibers(sn_server *s, sn__fpool *fp)
{
    int n = sn__fpool_threads(fp), rc = SN_ENOMEM;
    if ((s->lfib = sn__calloc((size_t)s->nl, sizeof *s->lfib)) == NULL)
        return SN_ENOMEM;
    for (int i = 0; i < s->nl; i++)
        s->lfib[i] = (struct lfiber){.s = s, .i = i, .acc = {.s = s}};
    sn__mutex_lock(&s->run.mu);
    s->run.started = true; /* before any handler can run and call stop */
    sn__mutex_unlock(&s->run.mu);
    for (int i = 0; i < s->nl; i++) {
        sn__mutex_lock(&s->run.mu);
        s->fiber_acceptors++;
        sn__mutex_unlock(&s->run.mu);
        rc = sn__fpool_spawn_on(fp, i % n, acceptor_fiber, acceptor_fiber_failed, &s->lfib[i]);
        if (rc < 0) {
            sn__mutex_lock(&s->run.mu);
            s->fiber_acceptors--;
            s->run.started = false;
            atomic_store(&s->run.stopping, true); /* the ones started leave */
            shut_listeners(s);
            sn__mutex_unlock(&s->run.mu);
            wait_acceptor_fibers(s);
            goto fail;
        }
    }
    return 0;
fail:
    free_acceptor_fibers(s);
    return rc;
}

/* After the acceptors are gone: their records and the spares. */
static void free_acceptors(sn_server *s)
{
    free_acceptor_fibers(s);
    spares_close(s);
    for (int i = 0; s->acc != NULL && i < s->cfg.acceptors; i++)
        sn__free(s->acc[i].pfd);
    sn__free(s->acc);
    s->acc = NULL;
}

int sn_server_start(sn_server *s)
{
    int rc = s == NULL ? SN_EINVAL : sn__run_may_start(&s->run);
    if (rc < 0)
        return rc;
    if ((rc = open_listeners(s)) < 0)
        goto fail;
    if ((rc = make_pool(s)) < 0)
        goto fail;
    if (s->cfg.on_client != NULL &&
        (rc = sn__loop_for_server(&s->loop, s->pool, s->cfg.workers)) < 0)
        goto fail;
    /* The one mode test of the server, on purpose: in fiber mode the
     * acceptors are fibers of the pool's own threads (one per listener), in
     * thread mode threads of their own. */
    sn__fpool *fp = sn__pool_fibers(s->pool);
    int nacc = fp != NULL ? s->nl : s->cfg.acceptors;
    if ((rc = spares_open(s, SN_MIN(nacc, SN_SERVER_SPARES_MAX))) < 0)
        goto fail;
    spares_refill(s);
    if (fp != NULL) {
        if ((rc = make_acceptor_fibers(s, fp)) < 0)
            goto fail;
    } else {
        s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wakefd < 0) {
            rc = -errno;
            goto fail;
        }
        s->go = GO_WAIT;
        if ((rc = make_acceptors(s)) < 0)
            goto fail;
    }
    for (int i = 0; i < s->nl && s->cfg.on_listening != NULL; i++)
        s->cfg.on_listening(s, &s->laddr[i], s->cfg.user);
    return 0;

fail:
    spares_close(s);
    close_listeners(s);
    sn__free(s->lsock);
    sn__free(s->laddr);
    s->lsock = NULL;
    s->laddr = NULL;
    sn_loop_free(s->loop);
    s->loop = NULL;
    sn_pool_free(s->pool);
    s->pool = NULL;
    if (s->wakefd >= 0)
        close(s->wakefd);
    s->wakefd = -1;
    return rc;
}

/* ---- stop ---------------------------------------------------------------------- */

/* Sets the flag and wakes the acceptors. Any thread, any number of times. */
static void begin_stop(sn_server *s)
{
    sn__mutex_lock(&s->run.mu);
    bool first = sn__run_begin_stop(&s->run);
    int fd = s->acceptors_down ? -1 : s->wakefd;
    if (first && fd >= 0) {
        uint64_t one = 1;
        (void)!write(fd, &one, sizeof one);
    }
    if (first && !s->acceptors_down && s->lfib != NULL)
        shut_listeners(s);
    sn__mutex_unlock(&s->run.mu);
}

/* Step 1: the acceptors and the listeners (under s->run.stop_mu). */
static void stop_acceptors(sn_server *s)
{
    if (s->acceptors_down)
        return;
    for (int i = 0; s->acc != NULL && i < s->cfg.acceptors; i++)
        pthread_join(s->acc[i].tid, NULL);
    wait_acceptor_fibers(s);
    free_acceptors(s);
    close_listeners(s);
    sn__mutex_lock(&s->run.mu);
    if (s->wakefd >= 0)
        close(s->wakefd);
    s->wakefd = -1;
    s->acceptors_down = true;
    sn__mutex_unlock(&s->run.mu);
}

/* Steps 2 and 3: wake, wait, force, wait (under s->run.stop_mu). Returns
 * SN_ETIMEDOUT when connections had to be forced. */
static int stop_connections(sn_server *s, int timeout_ms, const struct sconn *own)
{
    if (timeout_ms == 0)
        timeout_ms = s->cfg.stop_timeout_ms;
    int64_t dl = timeout_ms < 0 ? SN_DEADLINE_NEVER : sn_now_ms() + timeout_ms;
    int rc = 0;
    sn__mutex_lock(&s->run.mu);
    wake_running(s, 1, own);
    while (running_others(s, own) > 0) {
        if (sn__cv_wait(&s->run.cond, &s->run.mu, dl) == SN_ETIMEDOUT &&
            running_others(s, own) > 0 && rc == 0) {
            rc = SN_ETIMEDOUT;
            wake_running(s, 2, own);
            dl = SN_DEADLINE_NEVER;
        }
    }
    if (rc < 0)
        s->stop_rc = rc;
    sn__mutex_unlock(&s->run.mu);
    return rc;
}

/* Step 2 without the wait, for a stop from a handler in fiber mode. */
static int wake_others(sn_server *s, const struct sconn *own)
{
    sn__mutex_lock(&s->run.mu);
    wake_running(s, 1, own);
    sn__mutex_unlock(&s->run.mu);
    return 0;
}

int sn_server_stop(sn_server *s, int timeout_ms)
{
    if (s == NULL)
        return SN_EINVAL;
    struct sconn *cur = current_conn();
    const struct sconn *own = cur != NULL && cur->s == s && cur != &s->acc_tag ? cur : NULL;
    /* A handler on a fiber must not wait for its fellow handlers: they need
     * its thread to finish. */
    bool no_wait = own != NULL && sn__wait_parks();
    begin_stop(s);

    sn__mutex_lock(&s->run.mu);
    bool started = s->run.started;
    bool acceptor = on_acceptor(s);
    if (acceptor)
        wake_running(s, 1, NULL); /* cannot join itself: only begin */
    sn__mutex_unlock(&s->run.mu);
    if (!started || acceptor)
        return 0;

    if (own != NULL) {
        /* a handler must not wait for a stop that waits for it */
        if (pthread_mutex_trylock(&s->run.stop_mu) != 0)
            return 0;
    } else {
        sn__mutex_lock(&s->run.stop_mu);
    }
    int rc = s->stop_rc;
    if (!s->run.finished) {
        stop_acceptors(s);
        rc = no_wait ? wake_others(s, own) : stop_connections(s, timeout_ms, own);
        if (own == NULL) {
            if (s->loop != NULL)
                sn__loop_end(s->loop); /* its sockets close (SN_ESTOPPED) */
            sn_pool_stop(s->pool);
            s->run.finished = true;
            rc = s->stop_rc;
        }
    }
    sn__mutex_unlock(&s->run.stop_mu);
    return rc;
}

int sn_server_is_stopping(const sn_server *s)
{
    return s != NULL && sn__run_stopping(&s->run) ? 1 : 0;
}

void sn_server_free(sn_server *s)
{
    if (s == NULL)
        return;
    sn_server_stop(s, 0);
    sn_loop_free(s->loop);
    sn_pool_free(s->pool);
    free_acceptors(s);
    sn__free(s->lsock);
    sn__free(s->laddr);
    free_config(s);
    sn__mutex_destroy(&s->spare_mu);
    sn__run_destroy(&s->run);
    sn__free(s);
}

int sn_server_set_tls(sn_server *s, int idx, sn_tls *tls)
{
    if (s == NULL || tls == NULL || idx < -1 || idx >= s->nl ||
        sn_tls_role_of(tls) != SN_TLS_SERVER)
        return SN_EINVAL;
    int first = idx < 0 ? 0 : idx, last = idx < 0 ? s->nl - 1 : idx;
    sn__mutex_lock(&s->run.mu);
    for (int i = first; i <= last; i++)
        if (s->tls[i] == NULL) {
            sn__mutex_unlock(&s->run.mu);
            return SN_EBADSTATE;
        }
    sn_tls *old[SN_SERVER_LISTENERS_MAX];
    for (int i = first; i <= last; i++) {
        old[i] = s->tls[i];
        s->tls[i] = sn_tls_ref(tls);
    }
    sn__mutex_unlock(&s->run.mu);
    for (int i = first; i <= last; i++)
        sn_tls_free(old[i]);
    return 0;
}

/* ---- getters --------------------------------------------------------------------- */

int sn_server_local_addr(sn_server *s, int idx, sn_addr *out)
{
    if (s == NULL || out == NULL)
        return SN_EINVAL;
    return sn__run_local_addr(&s->run, s->laddr, s->nl, idx, out);
}

int sn_server_port(sn_server *s)
{
    sn_addr a;
    int rc = sn_server_local_addr(s, 0, &a);
    return rc < 0 ? rc : sn_addr_port(&a);
}

void sn_server_stats_get(sn_server *s, sn_server_stats *out)
{
    memset(out, 0, sizeof *out);
    sn__mutex_lock(&s->run.mu);
    sn_pool *pool = s->run.started ? s->pool : NULL;
    out->active = s->running;
    out->closed = s->closed;
    out->events = s->handed;
    out->events_open = s->loop != NULL ? sn__loop_count(s->loop) : 0;
    out->bytes_read = s->bytes_read;
    out->bytes_written = s->bytes_written;
    for (struct sconn *r = s->conns; r != NULL; r = r->next) {
        if (r->state == C_QUEUED)
            continue;
        sn_conn_stats st;
        sn_conn_stats_get(r->c, &st);
        out->bytes_read += st.bytes_read;
        out->bytes_written += st.bytes_written;
    }
    sn__mutex_unlock(&s->run.mu);
    if (pool != NULL) {
        sn_pool_stats ps;
        sn_pool_stats_get(pool, &ps);
        out->queued = ps.queued;
        out->busy_workers = ps.busy;
        out->threads = ps.threads;
        out->thread_failures = ps.thread_failures;
    }
    SERVER_COUNTERS(SN__COUNTER_LOAD)
}
