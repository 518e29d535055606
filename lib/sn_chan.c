/* SPDX-License-Identifier: MIT */
/*
 * sn_chan.c: connections and their buffered channels.
 *
 * A connection is a socket, a transport (plain TCP, or TLS) and two
 * independent halves: the reader (rbuf, rerr, ...) used by one thread and
 * the writer (wbuf, werr, ...) used by one thread, possibly another. Only
 * `wake`, the sticky errors and the counters are read across threads,
 * through relaxed atomics that each have one writer (sn__conn_wake's CAS
 * aside); there is no lock on either path.
 *
 * Syscalls: after a receive that left the socket empty, the next read waits
 * before it receives: on plain TCP in one blocking recv bounded by
 * SO_RCVTIMEO (sn_transport.c), else poll + recv (on a fiber: the fiber
 * parks in its scheduler's epoll, and a blocking recv would stall the
 * thread); never a recv that only says EAGAIN. Otherwise it receives first, without waiting. A
 * flush is one sendmsg while the socket takes everything. A ping-pong thus costs one recv and one
 * sendmsg per message.
 *
 * Every public call turns its deadline into an absolute one once, at the
 * start, and every wait inside the call uses it: a whole line or a whole
 * flush gets one deadline, not one per system call.
 *
 * The read buffer holds unread bytes in rbuf[rpos, rlen). It is allocated on
 * the first read that needs it, and grows (after compacting) up to rmax for
 * lines, delimiters, peeks and exact reads. One spare byte past rcap lets
 * sn_read_line_ref NUL-terminate any line in place. The write buffer holds
 * unsent bytes in wbuf[woff, wlen), plus one spare byte for vsnprintf's NUL.
 *
 * On a scheduler's thread (fiber mode) a connection holds its buffers only
 * while it uses them: a read that must wait with nothing buffered hands the
 * read buffer back to the scheduler before it parks (rpark), and a flush that
 * empties the write buffer hands that back (wreset). An idle connection then
 * holds neither, and the busy connections of a thread take turns with the few
 * buffers the scheduler keeps (sn__sched_buf_take), warm in the cache. On a
 * plain thread the buffers stay with the connection, which blocks in recv
 * into its read buffer.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "sn_chan_int.h"
#include "sn_fiber.h"
#include "sn_sock_int.h"
#include "sn_transport.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

#define SN_RBUF_DEFAULT SN_CONN_BUF_DEFAULT
#define SN_RBUF_MAX_DEFAULT 65536
#define SN_WBUF_DEFAULT SN_CONN_BUF_DEFAULT
#define SN_IOV_STACK 16

struct sn_conn {
    sn_sock *sock;
    sn_transport *t; /* &plain, or a TLS transport */
    sn_transport plain;
    void *data;
    bool closed;
    bool lingered; /* sn_conn_linger ran: it does not run twice */

    /* reader */
    char *rbuf;
    size_t rcap, rpos, rlen;
    size_t rinit, rmax;
    atomic_int rerr; /* sticky; consulted only once the buffer is drained */
    bool rdrained;   /* the last recv emptied the socket: wait before the next */

    /* writer */
    char *wbuf;
    size_t wcap, woff, wlen;
    size_t wcap0;      /* wcap as configured (sn__conn_try_writev may grow it) */
    atomic_int werr;   /* sticky */
    atomic_bool wshut; /* sn_shutdown_write done: writes fail, not an error */
    bool autoflush;

    atomic_int wake; /* 0, or the level given to sn__conn_wake */
    atomic_uint_fast64_t bytes_read, bytes_written, read_calls, write_calls;
};

/* One writer per counter: a relaxed load and store, no locked instruction. */
static inline void count(atomic_uint_fast64_t *ctr, uint64_t n)
{
    atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline int wake_level(const sn_conn *c)
{
    return atomic_load_explicit(&c->wake, memory_order_relaxed);
}

/* The error of a woken connection: a cancel's, or a server stop's. */
static inline int woken_err(const sn_conn *c)
{
    return wake_level(c) >= SN__WAKE_CANCEL ? SN_ECANCELED : SN_ESTOPPED;
}

/* The sticky errors are atomics only so that sn_conn_error may read them
 * from any thread; each has one writer, and relaxed order is enough. */
static inline int read_err(const sn_conn *c)
{
    return atomic_load_explicit(&c->rerr, memory_order_relaxed);
}

/* Whether an error says the peer closed: its end of stream, or a reset
 * (seen by a read, or by a send as EPIPE). */
static inline bool peer_gone(int err)
{
    return err == SN_EOF || err == SN_ECONNRESET || err == SN_EPIPE;
}

static inline int stick_read_err(sn_conn *c, int err)
{
    atomic_store_explicit(&c->rerr, err, memory_order_relaxed);
    if (peer_gone(err))
        sn__sock_peer_closed(c->sock);
    return err;
}

static inline int write_err(const sn_conn *c)
{
    return atomic_load_explicit(&c->werr, memory_order_relaxed);
}

static inline int stick_write_err(sn_conn *c, int err)
{
    atomic_store_explicit(&c->werr, err, memory_order_relaxed);
    if (peer_gone(err))
        sn__sock_peer_closed(c->sock);
    return err;
}

/* The end of the stream: SN_EOF, or the woken error (a stop, a cancel) when woken. */
static int read_end(sn_conn *c)
{
    return stick_read_err(c, atomic_load(&c->wake) ? woken_err(c) : SN_EOF);
}

/* Level 2 of sn__conn_wake fails every read at once, even from the buffer. */
static inline int rcheck(sn_conn *c)
{
    if (wake_level(c) >= 2)
        return stick_read_err(c, woken_err(c));
    return 0;
}

static inline size_t rbuffered(const sn_conn *c)
{
    return c->rlen - c->rpos;
}

static inline void rconsume(sn_conn *c, size_t n)
{
    c->rpos += n;
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
}

/* A buffer of size bytes: one the thread's scheduler keeps, else a new one. */
static char *buf_new(size_t size)
{
    char *p = sn__sched_buf_take(size);
    return p != NULL ? p : sn__malloc(size);
}

/* Hands a buffer that holds nothing back to the thread's scheduler, or frees it. */
static void buf_drop(char *p, size_t size)
{
    if (p != NULL && !sn__sched_buf_give(p, size))
        sn__free(p);
}

/* ---- life cycle ------------------------------------------------------------ */

int sn_conn_new(sn_conn **out, sn_sock *sock, const sn_conn_config *cfg)
{
    static const sn_conn_config defaults;
    if (out == NULL || sock == NULL)
        return SN_EINVAL;
    if (cfg == NULL)
        cfg = &defaults;
    if (sock->fd < 0 || sock->state != SN_SOCK_CONNECTED)
        return SN_EBADSTATE;
    size_t rinit = cfg->read_buffer ? cfg->read_buffer : SN_RBUF_DEFAULT;
    size_t rmax = cfg->read_buffer_max ? cfg->read_buffer_max : SN_MAX(rinit, SN_RBUF_MAX_DEFAULT);
    if (rinit > rmax)
        return SN_EINVAL;
    sn_conn *c = sn__calloc(1, sizeof *c);
    if (c == NULL)
        return SN_ENOMEM;
    c->sock = sock;
    sn__transport_plain_init(&c->plain, sock->fd, sock->blocking, sock->rcvtimeo_ms);
    c->t = &c->plain;
    c->rinit = rinit;
    c->rmax = rmax;
    c->wcap = cfg->write_buffer ? cfg->write_buffer : SN_WBUF_DEFAULT;
    c->wcap0 = c->wcap;
    c->autoflush = cfg->autoflush == SN_ON;
    *out = c;
    return 0;
}

int sn_conn_connect(sn_conn **out, const char *host, int port, const sn_sock_options *opt,
                    const sn_conn_config *cfg, sn_deadline dl)
{
    sn_sock *s;
    int rc = sn_tcp_connect(&s, host, port, opt, dl);
    if (rc < 0)
        return rc;
    if ((rc = sn_conn_new(out, s, cfg)) < 0)
        sn_sock_free(s);
    return rc;
}

void sn__conn_set_transport(sn_conn *c, sn_transport *t)
{
    if (c->t != &c->plain)
        c->t->vt->release(c->t);
    c->t = t;
}

sn_transport *sn__conn_transport(const sn_conn *c)
{
    return c->t;
}

void sn__conn_fail(sn_conn *c, int err)
{
    stick_read_err(c, err);
    stick_write_err(c, err);
}

static void release_transport(sn_conn *c)
{
    if (c->t != &c->plain) {
        c->t->vt->release(c->t);
        c->t = &c->plain;
    }
}

int sn_conn_close(sn_conn *c, sn_deadline dl)
{
    if (c->closed)
        return 0;
    int rc = sn_pending(c) > 0 ? sn_flush(c, dl) : 0;
    release_transport(c);
    sn_sock_close(c->sock);
    c->closed = true;
    stick_read_err(c, SN_ECLOSED);
    stick_write_err(c, SN_ECLOSED);
    atomic_store_explicit(&c->wshut, false, memory_order_relaxed);
    c->rpos = c->rlen = 0;
    c->woff = c->wlen = 0;
    return rc;
}

#define SN_LINGER_CHUNK 65536 /* bytes dropped per receive while lingering */

int sn_conn_linger(sn_conn *c, int ms)
{
    if (c == NULL || ms < 0)
        return SN_EINVAL;
    if (c->closed)
        return SN_ECLOSED;
    if (c->lingered)
        return 0;
    c->lingered = true;
    int64_t end = sn_now_ms() + ms;
    if (!atomic_load_explicit(&c->wshut, memory_order_relaxed))
        sn_shutdown_write(c, end); /* flushed, and TLS's close_notify sent, when it can be */
    int fd = c->sock->fd;
    shutdown(fd, SHUT_WR); /* whatever the transport did: the peer reads end of stream */
    c->rpos = c->rlen = 0; /* what was buffered is dropped too */
    /* a heap buffer for what is dropped: lingering is rare, a fiber's
     * stack is small (MSG_TRUNC would drop TCP input without a copy, but
     * sanitizers take it for a write of that size) */
    char small[256], *buf = sn__malloc(SN_LINGER_CHUNK);
    size_t cap = buf != NULL ? SN_LINGER_CHUNK : sizeof small;
    if (buf == NULL)
        buf = small;
    int rc;
    for (;;) {
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n == 0) {
            read_end(c);
            rc = 0;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            rc = stick_read_err(c, -errno);
            break;
        }
        if ((rc = sn__wait_fd(fd, POLLIN, end)) < 0)
            break; /* SN_ETIMEDOUT: the peer is still sending, or silent */
    }
    if (buf != small)
        sn__free(buf);
    return rc;
}

void sn_conn_free(sn_conn *c)
{
    if (c == NULL)
        return;
    release_transport(c);
    sn_sock_free(c->sock);
    buf_drop(c->rbuf, c->rcap + 1);
    buf_drop(c->wbuf, c->wcap + 1);
    sn__free(c);
}

sn_sock *sn_conn_sock(sn_conn *c)
{
    return c->sock;
}

void sn_conn_set_data(sn_conn *c, void *data)
{
    c->data = data;
}

void *sn_conn_data(const sn_conn *c)
{
    return c->data;
}

int sn_conn_error(const sn_conn *c)
{
    int err = read_err(c);
    if (err == 0 && !atomic_load_explicit(&c->wshut, memory_order_relaxed))
        err = write_err(c);
    return err;
}

void sn_conn_stats_get(const sn_conn *c, sn_conn_stats *out)
{
    out->bytes_read = atomic_load_explicit(&c->bytes_read, memory_order_relaxed);
    out->bytes_written = atomic_load_explicit(&c->bytes_written, memory_order_relaxed);
    out->read_calls = atomic_load_explicit(&c->read_calls, memory_order_relaxed);
    out->write_calls = atomic_load_explicit(&c->write_calls, memory_order_relaxed);
}

int sn_conn_cancel(sn_conn *c)
{
    if (c == NULL)
        return SN_EINVAL;
    sn__conn_wake(c, SN__WAKE_CANCEL);
    return 0;
}

int sn__conn_wake_level(const sn_conn *c)
{
    return wake_level(c);
}

void sn__conn_wake(sn_conn *c, int level)
{
    int cur = atomic_load(&c->wake);
    while (cur < level && !atomic_compare_exchange_weak(&c->wake, &cur, level))
        ;
    sn__sock_shutdown_gated(&c->sock->fd, level >= 2 ? SHUT_RDWR : SHUT_RD);
}

/* ---- reading: the transport ------------------------------------------------ */

static int64_t rdeadline(const sn_conn *c, sn_deadline dl)
{
    return sn__deadline_abs(dl, c->sock->read_timeout_ms);
}

static int64_t wdeadline(const sn_conn *c, sn_deadline dl)
{
    return sn__deadline_abs(dl, c->sock->write_timeout_ms);
}

/* Whether a wait for input could go without the read buffer: it parks,
 * with nothing buffered here or in the transport (nothing decrypted). */
static bool rparkable(const sn_conn *c)
{
    return rbuffered(c) == 0 && sn__wait_parks() && c->t->vt->pending(c->t) == 0;
}

/* Whether the next receive must wait that way: the last one emptied the socket. */
static bool rpark_due(const sn_conn *c)
{
    return c->rdrained && rparkable(c);
}

/* Receives up to len bytes into buf, waiting until the deadline. Returns the
 * count, SN_ETIMEDOUT (not sticky), or the sticky end or error of the stream.
 * When the last receive emptied the socket, it waits first: with a transport
 * that can block in its receive that is one system call, else poll + recv;
 * either way no receive that only says EAGAIN. With park (buf is the empty
 * read buffer), a receive on a fiber that finds the socket empty returns
 * SN_EAGAIN instead of waiting, for rfill to wait without the buffer. */
static ssize_t recv_transport(sn_conn *c, void *buf, size_t len, int64_t dl, bool park)
{
    const sn_transport_vtable *vt = c->t->vt;
    short want = POLLIN;
    int err = read_err(c);
    if (err)
        return err;
    if (wake_level(c) >= 2)
        return stick_read_err(c, woken_err(c));
    bool wait_first = c->rdrained && vt->pending(c->t) == 0;
    ssize_t n;
    for (;;) {
        if (wait_first && vt->recv_wait != NULL && !sn__wait_parks()) { /* may block */
            n = vt->recv_wait(c->t, buf, len, dl);
            break;
        }
        if (wait_first) {
            int rc = sn__wait_fd(c->t->fd, want, dl);
            if (rc == SN_ETIMEDOUT)
                return rc;
            if (rc < 0)
                return stick_read_err(c, rc);
        }
        n = vt->recv(c->t, buf, len, &want);
        if (n != SN_EAGAIN)
            break;
        if (park && want == POLLIN && rparkable(c)) {
            c->rdrained = true; /* rfill parks, then receives */
            return SN_EAGAIN;
        }
        wait_first = true;
    }
    if (n > 0) {
        c->rdrained = (size_t)n < len;
        count(&c->bytes_read, (uint64_t)n);
        count(&c->read_calls, 1);
        return n;
    }
    if (n == 0)
        return read_end(c);
    if (n == SN_ETIMEDOUT)
        return n;
    return stick_read_err(c, atomic_load(&c->wake) ? woken_err(c) : (int)n);
}

/* Makes room in the buffer for `need` unread bytes in all, and at least one
 * more than are buffered now: receives go to the free tail, so it compacts
 * when the tail is too short (or under an eighth of the buffer), and grows by
 * doubling up to rmax. Returns 0, SN_ETOOBIG (need more than rmax),
 * SN_ENOMEM. */
static int rreserve(sn_conn *c, size_t need)
{
    size_t have = rbuffered(c);
    need = SN_MAX(need, have + 1);
    if (need > c->rmax)
        return SN_ETOOBIG;
    if (c->rbuf != NULL && c->rpos + need <= c->rcap && c->rcap - c->rlen >= c->rcap / 8)
        return 0;
    size_t cap = c->rcap ? c->rcap : c->rinit;
    while (cap < need)
        cap *= 2;
    cap = SN_MIN(cap, c->rmax);
    if (cap > c->rcap || c->rbuf == NULL) {
        /* + 1: room for a NUL */
        char *p = c->rbuf == NULL ? buf_new(cap + 1) : sn__realloc(c->rbuf, cap + 1);
        if (p == NULL)
            return SN_ENOMEM;
        c->rbuf = p;
        c->rcap = cap;
    }
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, have);
        c->rpos = 0;
        c->rlen = have;
    }
    return 0;
}

/* Hands the read buffer back to the thread's scheduler, then waits for the
 * socket to be readable: an idle connection's wait may last for ever, and its
 * buffer meanwhile serves the thread's other connections. A deadline already
 * past still takes what has arrived: the first time (!tried) it does not
 * wait. Returns 0 (receive now), or what recv_transport would for its wait. */
static void rdrop(sn_conn *c);

static int rpark(sn_conn *c, int64_t dl, bool tried)
{
    if (wake_level(c) >= 2)
        return stick_read_err(c, woken_err(c));
    rdrop(c);
    int rc = !tried && sn__poll_timeout(dl) == 0 ? 0 : sn__wait_fd(c->t->fd, POLLIN, dl);
    if (rc == SN_ETIMEDOUT)
        return rc;
    if (rc < 0)
        return stick_read_err(c, rc);
    c->rdrained = false;
    return 0;
}

/* Receives more bytes into the buffer, growing it toward `need` unread bytes
 * if that is what the caller waits for. Returns the count received or an
 * error (SN_ETOOBIG when the buffer is full at rmax). */
static ssize_t rfill(sn_conn *c, size_t need, int64_t dl)
{
    int rc = read_err(c);
    if (rc)
        return rc;
    for (bool tried = false;; tried = true) {
        if (rpark_due(c) && (rc = rpark(c, dl, tried)) < 0)
            return rc;
        if ((rc = rreserve(c, need)) < 0)
            return rc;
        ssize_t n = recv_transport(c, c->rbuf + c->rlen, c->rcap - c->rlen, dl, rbuffered(c) == 0);
        if (n > 0)
            c->rlen += (size_t)n;
        if (n != SN_EAGAIN) /* else the socket was empty: park without the buffer */
            return n;
    }
}

/* ---- reading: the calls ------------------------------------------------------ */

ssize_t sn_read(sn_conn *c, void *buf, size_t len, sn_deadline dl)
{
    if (len == 0)
        return SN_EINVAL;
    size_t have = rbuffered(c);
    if (have == 0) {
        if (len >= c->rinit) /* large enough: no copy through the buffer */
            return recv_transport(c, buf, len, rdeadline(c, dl), false);
        ssize_t n = rfill(c, 1, rdeadline(c, dl));
        if (n < 0)
            return n;
        have = rbuffered(c);
    } else if (wake_level(c) >= 2) {
        return stick_read_err(c, woken_err(c));
    }
    size_t n = SN_MIN(have, len);
    memcpy(buf, c->rbuf + c->rpos, n);
    rconsume(c, n);
    return (ssize_t)n;
}

/* Waits until at least n bytes are buffered (n <= rmax). Returns 0, or the
 * stream's end or error, SN_ETIMEDOUT, SN_ETOOBIG. */
static int rwant(sn_conn *c, size_t n, int64_t dl)
{
    while (rbuffered(c) < n) {
        ssize_t got = rfill(c, n, dl);
        if (got < 0)
            return (int)got;
    }
    return 0;
}

/* sn_read_exact beyond rmax: the buffered bytes, then straight into buf.
 * Once bytes are taken, a timeout cuts the stream and is sticky. */
static ssize_t read_exact_direct(sn_conn *c, char *buf, size_t n, int64_t dl)
{
    size_t done = SN_MIN(rbuffered(c), n);
    if (done > 0) {
        memcpy(buf, c->rbuf + c->rpos, done);
        rconsume(c, done);
    }
    while (done < n) {
        ssize_t got = recv_transport(c, buf + done, n - done, dl, false);
        if (got == SN_ETIMEDOUT && done > 0)
            return stick_read_err(c, SN_ETIMEDOUT);
        if (got < 0)
            return got;
        done += (size_t)got;
    }
    return (ssize_t)n;
}

ssize_t sn_read_exact(sn_conn *c, void *buf, size_t n, sn_deadline dl)
{
    int64_t abs = rdeadline(c, dl);
    int rc = rcheck(c);
    if (rc < 0 || n == 0)
        return rc;
    if (n > c->rmax)
        return read_exact_direct(c, buf, n, abs);
    if ((rc = rwant(c, n, abs)) < 0)
        return rc;
    memcpy(buf, c->rbuf + c->rpos, n);
    rconsume(c, n);
    return (ssize_t)n;
}

/*
 * Finds the end of a line among the buffered bytes, searching from offset
 * *scan (bytes before it hold no usable line end). Returns the line length
 * and sets *term to the ending's length, or returns -1 when there is none
 * yet (and advances *scan). A "\r" at the end of the buffer is left for the
 * next search, which looks back at it when it finds the "\n".
 */
static ssize_t find_eol(sn_conn *c, int mode, size_t *scan, size_t *term)
{
    const char *base = c->rbuf + c->rpos;
    size_t have = rbuffered(c);
    while (*scan < have) {
        const char *lf = memchr(base + *scan, '\n', have - *scan);
        if (lf == NULL)
            break;
        size_t i = (size_t)(lf - base);
        bool cr = i > 0 && base[i - 1] == '\r';
        *scan = i + 1;
        if (mode == SN_LINE_LF) {
            *term = 1;
            return (ssize_t)i;
        }
        if (cr || mode == SN_LINE_ANY) {
            *term = cr ? 2 : 1;
            return (ssize_t)(cr ? i - 1 : i);
        }
        /* SN_LINE_CRLF and a bare LF: an ordinary byte */
    }
    *scan = have;
    return -1;
}

/* With no line end among the buffered bytes: true when they already prove
 * the line longer than limit. Only a "\r" at offset limit, in the modes
 * that take "\r\n", could still end it in time. */
static bool line_too_long(const sn_conn *c, int mode, size_t limit)
{
    size_t have = rbuffered(c);
    if (have <= limit)
        return false;
    if (mode == SN_LINE_LF || have > limit + 1)
        return true;
    return c->rbuf[c->rpos + limit] != '\r';
}

/* Hands out the buffered line of len bytes followed by a term-byte ending:
 * NUL-terminated in place (over the ending, or in the spare byte past rcap),
 * and consumed. It stays valid until the next read: only a read moves or
 * overwrites buffered bytes. */
static ssize_t take_line(sn_conn *c, const char **line, size_t len, size_t term)
{
    char *p = c->rbuf + c->rpos;
    p[len] = '\0';
    *line = p;
    rconsume(c, len + term);
    return (ssize_t)len;
}

/* The stream ended (end is SN_EOF or SN_ESTOPPED) with no line end buffered. */
static ssize_t last_line(sn_conn *c, const char **line, size_t limit, int mode, int end)
{
    size_t have = rbuffered(c);
    if (have == 0)
        return end;
    if (mode != SN_LINE_ANY)
        return SN_EUNTERMINATED;
    if (have > limit)
        return SN_ELINETOOLONG;
    return take_line(c, line, have, 0);
}

/* The shared part of the line readers: on success *line points at the line
 * in the buffer, NUL-terminated, and the line and its ending are consumed.
 * limit bounds the line's length; the line and its ending must also fit in
 * rmax. Each search resumes where the last one stopped. */
static ssize_t read_line_in_buffer(sn_conn *c, const char **line, size_t limit, int mode,
                                   sn_deadline dl)
{
    if (mode < SN_LINE_LF || mode > SN_LINE_ANY)
        return SN_EINVAL;
    int rc = rcheck(c);
    if (rc < 0)
        return rc;
    size_t scan = 0, term = 0;
    int64_t abs = 0;
    bool abs_set = false; /* resolved at the first wait, once per call */
    for (;;) {
        ssize_t len = c->rbuf != NULL ? find_eol(c, mode, &scan, &term) : -1;
        if (len >= 0)
            return (size_t)len > limit ? SN_ELINETOOLONG : take_line(c, line, (size_t)len, term);
        if (line_too_long(c, mode, limit))
            return SN_ELINETOOLONG;
        if (!abs_set) {
            abs = rdeadline(c, dl);
            abs_set = true;
        }
        ssize_t n = rfill(c, rbuffered(c) + 1, abs);
        if (n == SN_ETOOBIG)
            return SN_ELINETOOLONG;
        if (n == SN_EOF || n == SN_ESTOPPED)
            return last_line(c, line, limit, mode, (int)n);
        if (n < 0)
            return n;
    }
}

ssize_t sn_read_line_ref(sn_conn *c, const char **line, size_t max, int mode, sn_deadline dl)
{
    return read_line_in_buffer(c, line, max ? max : c->rmax, mode, dl);
}

ssize_t sn_read_line(sn_conn *c, char *buf, size_t cap, int mode, sn_deadline dl)
{
    if (cap == 0)
        return SN_EINVAL;
    const char *line;
    ssize_t len = read_line_in_buffer(c, &line, cap - 1, mode, dl);
    if (len < 0)
        return len;
    memcpy(buf, line, (size_t)len + 1);
    return len;
}

ssize_t sn_read_until(sn_conn *c, const void *delim, size_t dlen, void *buf, size_t cap,
                      sn_deadline dl)
{
    if (delim == NULL || dlen == 0 || dlen > c->rmax)
        return SN_EINVAL;
    int rc = rcheck(c);
    if (rc < 0)
        return rc;
    size_t limit = SN_MIN(cap, c->rmax - dlen);
    size_t scan = 0;
    int64_t abs = rdeadline(c, dl);
    for (;;) {
        size_t have = rbuffered(c);
        const char *base = c->rbuf ? c->rbuf + c->rpos : NULL;
        const char *hit = have >= dlen ? memmem(base + scan, have - scan, delim, dlen) : NULL;
        if (hit != NULL) {
            size_t len = (size_t)(hit - base);
            if (len > limit)
                return SN_ELINETOOLONG;
            memcpy(buf, base, len);
            rconsume(c, len + dlen);
            return (ssize_t)len;
        }
        if (have >= limit + dlen)
            return SN_ELINETOOLONG;
        scan = have >= dlen ? have - dlen + 1 : 0; /* a delimiter may straddle */
        ssize_t n = rfill(c, have + 1, abs);
        if (n == SN_ETOOBIG)
            return SN_ELINETOOLONG;
        if (n == SN_EOF || n == SN_ESTOPPED)
            return rbuffered(c) > 0 ? SN_EUNTERMINATED : n;
        if (n < 0)
            return n;
    }
}

ssize_t sn_peek(sn_conn *c, size_t n, const void **data, sn_deadline dl)
{
    if (n > c->rmax)
        return SN_ETOOBIG;
    int rc = rcheck(c);
    if (rc < 0)
        return rc;
    if (n > 0 && rbuffered(c) < n) {
        rc = rwant(c, n, rdeadline(c, dl));
        if (rc < 0 && !((rc == SN_EOF || rc == SN_ESTOPPED) && rbuffered(c) > 0))
            return rc;
    }
    *data = c->rbuf ? c->rbuf + c->rpos : "";
    return (ssize_t)rbuffered(c);
}

int sn_discard(sn_conn *c, size_t n, sn_deadline dl)
{
    int rc = rcheck(c);
    if (rc < 0)
        return rc;
    int64_t abs = rdeadline(c, dl);
    for (;;) {
        size_t take = SN_MIN(rbuffered(c), n);
        rconsume(c, take);
        n -= take;
        if (n == 0)
            return 0;
        ssize_t got = rfill(c, 1, abs);
        if (got < 0)
            return (int)got;
    }
}

size_t sn_available(const sn_conn *c)
{
    return rbuffered(c);
}

/* ---- writing ----------------------------------------------------------------- */

/* Sends every byte of iov (modified as it goes) before the deadline. Returns
 * 0 or an error; *sent counts the bytes sent either way. */
static int send_all(sn_conn *c, struct iovec *iov, int iovcnt, int64_t dl, size_t *sent)
{
    short want = POLLOUT;
    *sent = 0;
    while (iovcnt > 0 && iov[0].iov_len == 0) {
        iov++;
        iovcnt--;
    }
    while (iovcnt > 0) {
        if (wake_level(c) >= 2)
            return woken_err(c);
        ssize_t n = c->t->vt->sendv(c->t, iov, iovcnt, &want);
        if (n == SN_EAGAIN) {
            int rc = sn__wait_fd(c->t->fd, want, dl);
            if (rc < 0)
                return rc;
            continue;
        }
        if (n < 0)
            return wake_level(c) >= 2 ? woken_err(c) : (int)n;
        count(&c->bytes_written, (uint64_t)n);
        count(&c->write_calls, 1);
        *sent += (size_t)n;
        size_t left = (size_t)n;
        while (iovcnt > 0 && left >= iov[0].iov_len) {
            left -= iov[0].iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov[0].iov_base = (char *)iov[0].iov_base + left;
            iov[0].iov_len -= left;
        }
    }
    return 0;
}

/* A stream error is sticky; a timeout is not. */
static int stick_unless_timeout(sn_conn *c, int rc)
{
    if (rc != SN_ETIMEDOUT)
        stick_write_err(c, rc);
    return rc;
}

/* The buffer is empty. Where waits park it goes back to the thread's
 * scheduler (the connection may now wait for long); elsewhere it stays,
 * unless a try grew it past the configured size. */
static void wreset(sn_conn *c)
{
    c->woff = c->wlen = 0;
    if (c->wcap != c->wcap0 || sn__wait_parks()) {
        buf_drop(c->wbuf, c->wcap + 1);
        c->wbuf = NULL;
        c->wcap = c->wcap0;
    }
}

static int wflush(sn_conn *c, int64_t dl)
{
    if (c->woff == c->wlen)
        return 0;
    struct iovec iov = {c->wbuf + c->woff, c->wlen - c->woff};
    size_t sent;
    int rc = send_all(c, &iov, 1, dl, &sent);
    c->woff += sent;
    if (c->woff == c->wlen)
        wreset(c);
    return rc < 0 ? stick_unless_timeout(c, rc) : 0;
}

static int wcheck(sn_conn *c)
{
    int err = write_err(c);
    if (err)
        return err;
    if (wake_level(c) >= 2)
        return stick_write_err(c, woken_err(c));
    return 0;
}

/* Room for len more bytes in the buffer, flushing if needed. len < wcap. */
static int wroom(sn_conn *c, size_t len, int64_t dl)
{
    if (c->wbuf == NULL && (c->wbuf = buf_new(c->wcap + 1)) == NULL)
        return SN_ENOMEM;
    if (c->wcap - c->wlen >= len)
        return 0;
    return wflush(c, dl); /* a complete flush empties the buffer */
}

/* Sends what is buffered and then the caller's buffers, in one gather. A
 * timeout after some of the caller's bytes left is sticky (the stream is
 * cut mid-message); before that, it is not and nothing was taken. */
static ssize_t write_direct(sn_conn *c, const struct iovec *user, int n, size_t total, int64_t dl)
{
    struct iovec stack[SN_IOV_STACK + 1];
    struct iovec *iov = stack;
    if (n + 1 > (int)SN_ARRAY_SIZE(stack) &&
        (iov = sn__malloc((size_t)(n + 1) * sizeof *iov)) == NULL)
        return SN_ENOMEM;
    size_t pending = c->wlen - c->woff;
    iov[0].iov_base = c->wbuf ? c->wbuf + c->woff : NULL;
    iov[0].iov_len = pending;
    memcpy(iov + 1, user, (size_t)n * sizeof *iov);
    size_t sent;
    int rc = send_all(c, iov, n + 1, dl, &sent);
    if (iov != stack)
        sn__free(iov);
    size_t from_buffer = SN_MIN(sent, pending);
    c->woff += from_buffer;
    if (c->woff == c->wlen)
        c->woff = c->wlen = 0;
    if (rc == 0)
        return (ssize_t)total;
    if (sent > pending)
        return stick_write_err(c, rc); /* part of the caller's bytes went out */
    return stick_unless_timeout(c, rc);
}

/* An autoflush write with nothing buffered: sent straight from the caller's
 * memory, so a connection that only writes this way never allocates a write
 * buffer. On a timeout the unsent rest is buffered, as a buffered write
 * followed by a failed flush would have left it. total < wcap. */
static ssize_t write_through(sn_conn *c, const struct iovec *user, int n, size_t total, int64_t dl)
{
    struct iovec iov[SN_IOV_STACK];
    if (n > (int)SN_ARRAY_SIZE(iov)) {
        int rc = wroom(c, total, dl);
        if (rc < 0)
            return rc;
        for (int i = 0; i < n; i++) {
            memcpy(c->wbuf + c->wlen, user[i].iov_base, user[i].iov_len);
            c->wlen += user[i].iov_len;
        }
        return (rc = wflush(c, dl)) < 0 ? rc : (ssize_t)total;
    }
    memcpy(iov, user, (size_t)n * sizeof *iov);
    size_t sent;
    int rc = send_all(c, iov, n, dl, &sent);
    if (rc == 0)
        return (ssize_t)total;
    if (rc != SN_ETIMEDOUT)
        return stick_unless_timeout(c, rc);
    if (c->wbuf == NULL && (c->wbuf = buf_new(c->wcap + 1)) == NULL)
        return stick_write_err(c, SN_ENOMEM); /* bytes lost mid-stream */
    for (int i = 0; i < n; i++) {
        size_t skip = SN_MIN(sent, user[i].iov_len);
        sent -= skip;
        memcpy(c->wbuf + c->wlen, (const char *)user[i].iov_base + skip, user[i].iov_len - skip);
        c->wlen += user[i].iov_len - skip;
    }
    return rc;
}

ssize_t sn_writev(sn_conn *c, const struct iovec *iov, int iovcnt, sn_deadline dl)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX - 1)
        return SN_EINVAL;
    int rc = wcheck(c);
    if (rc < 0)
        return rc;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SSIZE_MAX - total)
            return SN_EINVAL;
        total += iov[i].iov_len;
    }
    int64_t abs = wdeadline(c, dl);
    if (total >= c->wcap)
        return write_direct(c, iov, iovcnt, total, abs);
    if (c->autoflush && c->woff == c->wlen)
        return write_through(c, iov, iovcnt, total, abs);
    if ((rc = wroom(c, total, abs)) < 0)
        return rc;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        memcpy(c->wbuf + c->wlen, iov[i].iov_base, iov[i].iov_len);
        c->wlen += iov[i].iov_len;
    }
    if (c->autoflush && (rc = wflush(c, abs)) < 0)
        return rc;
    return (ssize_t)total;
}

ssize_t sn_write(sn_conn *c, const void *buf, size_t len, sn_deadline dl)
{
    /* the common case, a small write that fits: a copy and nothing else */
    if (len < c->wcap && c->wbuf != NULL && c->wcap - c->wlen >= len && !c->autoflush &&
        write_err(c) == 0 && wake_level(c) < 2) {
        memcpy(c->wbuf + c->wlen, buf, len);
        c->wlen += len;
        return (ssize_t)len;
    }
    struct iovec iov = {(void *)buf, len};
    return sn_writev(c, &iov, 1, dl);
}

ssize_t sn_write_str(sn_conn *c, const char *s, sn_deadline dl)
{
    return sn_write(c, s, strlen(s), dl);
}

/* sn_vprintf of n bytes that did not fit in the free space: formats again
 * into the buffer once it is sent, or, when the text is as large as the
 * buffer, into a temporary sent straight after what is buffered. */
static ssize_t printf_again(sn_conn *c, int64_t dl, size_t n, const char *fmt, va_list ap)
{
    if (n < c->wcap) {
        int rc = wroom(c, n, dl);
        if (rc < 0)
            return rc;
        vsnprintf(c->wbuf + c->wlen, c->wcap - c->wlen + 1, fmt, ap);
        c->wlen += n;
        return (ssize_t)n;
    }
    char *tmp = sn__malloc(n + 1);
    if (tmp == NULL)
        return SN_ENOMEM;
    vsnprintf(tmp, n + 1, fmt, ap);
    struct iovec iov = {tmp, n};
    ssize_t out = write_direct(c, &iov, 1, n, dl);
    sn__free(tmp);
    return out;
}

ssize_t sn_vprintf(sn_conn *c, sn_deadline dl, const char *fmt, va_list ap)
{
    int rc = wcheck(c);
    if (rc < 0)
        return rc;
    int64_t abs = wdeadline(c, dl);
    if (c->wbuf == NULL && (rc = wroom(c, 0, abs)) < 0)
        return rc;
    va_list again;
    va_copy(again, ap);
    /* straight into the free space (and the spare byte, for the NUL) */
    int n = vsnprintf(c->wbuf + c->wlen, c->wcap - c->wlen + 1, fmt, ap);
    ssize_t out = n;
    if (n < 0)
        out = SN_EINVAL;
    else if ((size_t)n <= c->wcap - c->wlen)
        c->wlen += (size_t)n;
    else
        out = printf_again(c, abs, (size_t)n, fmt, again);
    va_end(again);
    if (out >= 0 && c->autoflush && (rc = wflush(c, abs)) < 0)
        return rc;
    return out;
}

ssize_t sn_printf(sn_conn *c, sn_deadline dl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ssize_t n = sn_vprintf(c, dl, fmt, ap);
    va_end(ap);
    return n;
}

int sn_flush(sn_conn *c, sn_deadline dl)
{
    int rc = wcheck(c);
    if (rc < 0)
        return rc;
    if (c->woff == c->wlen)
        return 0;
    return wflush(c, wdeadline(c, dl));
}

size_t sn_pending(const sn_conn *c)
{
    return c->wlen - c->woff;
}

/* ---- non-blocking writes, for the hub ----------------------------------------- */

/* One non-blocking send of iov; bytes sent (0 when the socket is full) or
 * an error (made sticky). */
static ssize_t send_once(sn_conn *c, const struct iovec *iov, int n)
{
    short want = POLLOUT;
    ssize_t sent = c->t->vt->sendv(c->t, iov, n, &want);
    if (sent == SN_EAGAIN)
        return 0;
    if (sent < 0)
        return stick_unless_timeout(c, (int)sent);
    count(&c->bytes_written, (uint64_t)sent);
    count(&c->write_calls, 1);
    return sent;
}

/* The read buffer, empty, goes (back to the scheduler where waits park),
 * and the transport gives back what it holds while idle. */
static void rdrop(sn_conn *c)
{
    buf_drop(c->rbuf, c->rcap + 1);
    c->rbuf = NULL;
    c->rcap = c->rpos = c->rlen = 0;
    if (c->t->vt->idle != NULL)
        c->t->vt->idle(c->t);
}

void sn__conn_rtrim(sn_conn *c)
{
    if (c->rbuf != NULL && c->rpos == c->rlen)
        rdrop(c);
}

bool sn__conn_drained(const sn_conn *c)
{
    return c->rdrained && c->rpos == c->rlen && c->t->vt->pending(c->t) == 0;
}

bool sn__conn_input_ended(const sn_conn *c)
{
    return peer_gone(read_err(c)) && rbuffered(c) == 0 && c->t->vt->pending(c->t) == 0;
}

void sn__conn_readable(sn_conn *c)
{
    c->rdrained = false;
}

void sn__conn_trim(sn_conn *c)
{
    if (c->woff == c->wlen) {
        buf_drop(c->wbuf, c->wcap + 1);
        c->wbuf = NULL;
        c->woff = c->wlen = 0;
        c->wcap = c->wcap0;
    }
}

int sn__conn_try_flush(sn_conn *c)
{
    int rc = wcheck(c);
    if (rc < 0 || c->woff == c->wlen)
        return rc;
    struct iovec iov = {c->wbuf + c->woff, c->wlen - c->woff};
    ssize_t sent = send_once(c, &iov, 1);
    if (sent < 0)
        return (int)sent;
    c->woff += (size_t)sent;
    if (c->woff < c->wlen)
        return SN_EAGAIN;
    wreset(c);
    return 0;
}

int sn__conn_try_writev(sn_conn *c, const struct iovec *iov, int n, int *taken)
{
    int rc = wcheck(c);
    *taken = 0;
    if (rc < 0)
        return rc;
    if (c->woff != c->wlen)
        return SN_EAGAIN;
    ssize_t sent = send_once(c, iov, n);
    if (sent < 0)
        return (int)sent;
    size_t left = (size_t)sent;
    int k = 0;
    while (k < n && left >= iov[k].iov_len) /* whole buffers sent */
        left -= iov[k++].iov_len;
    *taken = k;
    if (k == n || left == 0)
        return k > 0 || n == 0 ? 0 : SN_EAGAIN;
    size_t rest = iov[k].iov_len - left; /* buffer k went in part: keep its rest */
    if (rest > c->wcap) {                /* grown for this one buffer, until it is sent */
        buf_drop(c->wbuf, c->wcap + 1);
        c->wbuf = NULL;
        c->wcap = rest;
    }
    if (c->wbuf == NULL && (c->wbuf = buf_new(c->wcap + 1)) == NULL)
        return stick_write_err(c, SN_ENOMEM); /* the stream is cut mid-frame */
    memcpy(c->wbuf, (const char *)iov[k].iov_base + left, rest);
    c->wlen = rest;
    *taken = k + 1;
    return 1;
}

int sn_shutdown_write(sn_conn *c, sn_deadline dl)
{
    int64_t abs = wdeadline(c, dl);
    int rc = sn_flush(c, abs);
    if (rc < 0)
        return rc;
    short want = POLLOUT;
    while ((rc = c->t->vt->shutdown(c->t, &want)) == SN_EAGAIN)
        if ((rc = sn__wait_fd(c->t->fd, want, abs)) < 0)
            return rc;
    if (rc < 0)
        return stick_unless_timeout(c, rc);
    atomic_store_explicit(&c->wshut, true, memory_order_relaxed);
    stick_write_err(c, SN_EPIPE); /* nothing more can be sent */
    return 0;
}
