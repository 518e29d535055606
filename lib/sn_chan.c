/*
 * sn_chan.c: connections and their buffered channels.
 *
 * A connection is a socket, a transport (plain TCP, or TLS) and two
 * independent halves: the reader (rbuf, rerr, ...) used by one thread and
 * the writer (wbuf, werr, ...) used by one thread, possibly another. Only
 * `wake` and the counters are shared between threads, through atomics; there
 * is no lock on either path.
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
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "sn_int.h"

#define SN_RBUF_DEFAULT 4096
#define SN_RBUF_MAX_DEFAULT 65536
#define SN_WBUF_DEFAULT 4096
#define SN_IOV_STACK 16

struct sn_conn {
    sn_sock *sock;
    sn_transport *t; /* &plain, or a TLS transport */
    sn_transport plain;
    void *data;
    bool closed;

    /* reader */
    char *rbuf;
    size_t rcap, rpos, rlen;
    size_t rinit, rmax;
    int rerr;       /* sticky; consulted only once the buffer is drained */
    bool rdrained;  /* the last recv emptied the socket: wait before the next */

    /* writer */
    char *wbuf;
    size_t wcap, woff, wlen;
    int werr; /* sticky */
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

static inline int woken(const sn_conn *c)
{
    return atomic_load_explicit(&c->wake, memory_order_relaxed);
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
    sn__transport_plain_init(&c->plain, sock->fd);
    c->t = &c->plain;
    c->rinit = rinit;
    c->rmax = rmax;
    c->wcap = cfg->write_buffer ? cfg->write_buffer : SN_WBUF_DEFAULT;
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
    int rc = sn_flush(c, dl);
    release_transport(c);
    sn_sock_close(c->sock);
    c->closed = true;
    c->rerr = c->werr = SN_ECLOSED;
    c->rpos = c->rlen = 0;
    c->woff = c->wlen = 0;
    return rc;
}

void sn_conn_free(sn_conn *c)
{
    if (c == NULL)
        return;
    release_transport(c);
    sn_sock_free(c->sock);
    sn__free(c->rbuf);
    sn__free(c->wbuf);
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
    return c->rerr ? c->rerr : c->werr;
}

void sn_conn_stats_get(const sn_conn *c, sn_conn_stats *out)
{
    out->bytes_read = atomic_load_explicit(&c->bytes_read, memory_order_relaxed);
    out->bytes_written = atomic_load_explicit(&c->bytes_written, memory_order_relaxed);
    out->read_calls = atomic_load_explicit(&c->read_calls, memory_order_relaxed);
    out->write_calls = atomic_load_explicit(&c->write_calls, memory_order_relaxed);
}

void sn__conn_wake(sn_conn *c, int level)
{
    int cur = atomic_load(&c->wake);
    while (cur < level && !atomic_compare_exchange_weak(&c->wake, &cur, level))
        ;
    shutdown(c->sock->fd, level >= 2 ? SHUT_RDWR : SHUT_RD);
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

/* The end of the stream: SN_EOF, or SN_ESTOPPED when the server woke us. */
static int read_end(sn_conn *c)
{
    c->rerr = woken(c) ? SN_ESTOPPED : SN_EOF;
    return c->rerr;
}

/* Receives up to len bytes into buf, waiting until the deadline. Returns the
 * count, SN_ETIMEDOUT (not sticky), or the sticky end or error of the stream.
 * When the last receive emptied the socket, it waits first: that saves the
 * receive that would only say EAGAIN. */
static ssize_t xrecv(sn_conn *c, void *buf, size_t len, int64_t dl)
{
    short want = POLLIN;
    if (c->rerr)
        return c->rerr;
    if (woken(c) >= 2)
        return c->rerr = SN_ESTOPPED;
    bool wait_first = c->rdrained && c->t->vt->pending(c->t) == 0;
    for (;;) {
        if (wait_first) {
            int rc = sn__wait_fd(c->t->fd, want, dl);
            if (rc == SN_ETIMEDOUT)
                return rc;
            if (rc < 0)
                return c->rerr = rc;
        }
        ssize_t n = c->t->vt->recv(c->t, buf, len, &want);
        if (n > 0) {
            c->rdrained = (size_t)n < len;
            count(&c->bytes_read, (uint64_t)n);
            count(&c->read_calls, 1);
            return n;
        }
        if (n == 0)
            return read_end(c);
        if (n != SN_EAGAIN)
            return c->rerr = woken(c) ? SN_ESTOPPED : (int)n;
        wait_first = true;
    }
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
        char *p = sn__realloc(c->rbuf, cap + 1); /* + 1: room for a NUL */
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

/* Receives more bytes into the buffer, growing it toward `need` unread bytes
 * if that is what the caller waits for. Returns the count received or an
 * error (SN_ETOOBIG when the buffer is full at rmax). */
static ssize_t rfill(sn_conn *c, size_t need, int64_t dl)
{
    if (c->rerr)
        return c->rerr;
    int rc = rreserve(c, need);
    if (rc < 0)
        return rc;
    ssize_t n = xrecv(c, c->rbuf + c->rlen, c->rcap - c->rlen, dl);
    if (n > 0)
        c->rlen += (size_t)n;
    return n;
}

/* ---- reading: the calls ------------------------------------------------------ */

ssize_t sn_read(sn_conn *c, void *buf, size_t len, sn_deadline dl)
{
    if (len == 0)
        return SN_EINVAL;
    size_t have = rbuffered(c);
    if (have == 0) {
        if (len >= c->rinit) /* large enough: no copy through the buffer */
            return xrecv(c, buf, len, rdeadline(c, dl));
        ssize_t n = rfill(c, 1, rdeadline(c, dl));
        if (n < 0)
            return n;
        have = rbuffered(c);
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

ssize_t sn_read_exact(sn_conn *c, void *buf, size_t n, sn_deadline dl)
{
    int64_t abs = rdeadline(c, dl);
    if (n <= c->rmax) {
        int rc = rwant(c, n, abs);
        if (rc < 0)
            return rc;
        memcpy(buf, c->rbuf + c->rpos, n);
        rconsume(c, n);
        return (ssize_t)n;
    }
    size_t done = SN_MIN(rbuffered(c), n);
    if (done > 0)
        memcpy(buf, c->rbuf + c->rpos, done);
    rconsume(c, done);
    while (done < n) {
        ssize_t got = xrecv(c, (char *)buf + done, n - done, abs);
        if (got < 0)
            return c->rerr = (int)got; /* bytes were taken: the stream is cut */
        done += (size_t)got;
    }
    return (ssize_t)n;
}

/*
 * Finds the end of a line among the buffered bytes, searching from offset
 * *scan (bytes before it hold no usable line end). Returns the line length
 * and sets *term to the ending's length, or returns -1 when there is none
 * yet (and advances *scan).
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

/* The shared part of the line readers: on success *line points at the line
 * in the buffer, NUL-terminated, and the line and its ending are consumed. */
static ssize_t read_line_in_buffer(sn_conn *c, const char **line, size_t max, int mode,
                                   sn_deadline dl)
{
    if (mode < SN_LINE_LF || mode > SN_LINE_ANY)
        return SN_EINVAL;
    size_t termmax = mode == SN_LINE_LF ? 1 : 2;
    size_t limit = SN_MIN(max, c->rmax > termmax ? c->rmax - termmax : 0);
    size_t scan = 0, term = 0;
    int64_t abs = 0;
    bool abs_set = false;
    for (;;) {
        ssize_t len = c->rbuf != NULL ? find_eol(c, mode, &scan, &term) : -1;
        if (len >= 0) {
            if ((size_t)len > limit)
                return SN_ELINETOOLONG;
            char *p = c->rbuf + c->rpos;
            p[len] = '\0';
            *line = p;
            c->rpos += (size_t)len + term; /* consumed; p stays valid until the next read */
            if (c->rpos == c->rlen)
                c->rpos = c->rlen = 0; /* compacting later moves nothing we point at */
            return len;
        }
        if (rbuffered(c) >= limit + termmax)
            return SN_ELINETOOLONG;
        if (!abs_set) {
            abs = rdeadline(c, dl);
            abs_set = true;
        }
        ssize_t n = rfill(c, rbuffered(c) + 1, abs);
        if (n == SN_ETOOBIG)
            return SN_ELINETOOLONG;
        if (n == SN_EOF || n == SN_ESTOPPED) {
            size_t have = rbuffered(c);
            if (have == 0)
                return n;
            if (mode != SN_LINE_ANY)
                return SN_EUNTERMINATED;
            if (have > limit)
                return SN_ELINETOOLONG;
            char *p = c->rbuf + c->rpos;
            p[have] = '\0'; /* the spare byte past rcap makes room */
            *line = p;
            c->rpos = c->rlen = 0;
            return (ssize_t)have;
        }
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
    if (n > 0) {
        int rc = rwant(c, n, rdeadline(c, dl));
        if (rc < 0 && !((rc == SN_EOF || rc == SN_ESTOPPED) && rbuffered(c) > 0))
            return rc;
    }
    *data = c->rbuf ? c->rbuf + c->rpos : "";
    return (ssize_t)rbuffered(c);
}

int sn_discard(sn_conn *c, size_t n, sn_deadline dl)
{
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
        if (woken(c) >= 2)
            return SN_ESTOPPED;
        ssize_t n = c->t->vt->sendv(c->t, iov, iovcnt, &want);
        if (n == SN_EAGAIN) {
            int rc = sn__wait_fd(c->t->fd, want, dl);
            if (rc < 0)
                return rc;
            continue;
        }
        if (n < 0)
            return woken(c) >= 2 ? SN_ESTOPPED : (int)n;
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
static int werror(sn_conn *c, int rc)
{
    if (rc != SN_ETIMEDOUT)
        c->werr = rc;
    return rc;
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
        c->woff = c->wlen = 0;
    return rc < 0 ? werror(c, rc) : 0;
}

static int wcheck(sn_conn *c)
{
    if (c->werr)
        return c->werr;
    if (woken(c) >= 2)
        return c->werr = SN_ESTOPPED;
    return 0;
}

/* Room for len more bytes in the buffer, flushing if needed. len < wcap. */
static int wroom(sn_conn *c, size_t len, int64_t dl)
{
    if (c->wbuf == NULL && (c->wbuf = sn__malloc(c->wcap + 1)) == NULL)
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
    if (n + 1 > (int)SN_ARRAY_SIZE(stack) && (iov = sn__malloc((size_t)(n + 1) * sizeof *iov)) == NULL)
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
        return c->werr = rc; /* part of the caller's bytes went out */
    return werror(c, rc);
}

ssize_t sn_writev(sn_conn *c, const struct iovec *iov, int iovcnt, sn_deadline dl)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX - 1)
        return SN_EINVAL;
    int rc = wcheck(c);
    if (rc < 0)
        return rc;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    int64_t abs = wdeadline(c, dl);
    if (total >= c->wcap)
        return write_direct(c, iov, iovcnt, total, abs);
    if ((rc = wroom(c, total, abs)) < 0)
        return rc;
    for (int i = 0; i < iovcnt; i++) {
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
        c->werr == 0 && woken(c) < 2) {
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
    int n = vsnprintf(c->wbuf + c->wlen, c->wcap - c->wlen + 1, fmt, ap);
    ssize_t out = n;
    if (n < 0) {
        out = SN_EINVAL;
    } else if ((size_t)n <= c->wcap - c->wlen) {
        c->wlen += (size_t)n; /* formatted in place */
        if (c->autoflush && (rc = wflush(c, abs)) < 0)
            out = rc;
    } else if ((size_t)n < c->wcap) { /* fits once the buffer is sent */
        if ((rc = wroom(c, (size_t)n, abs)) < 0)
            out = rc;
        else {
            vsnprintf(c->wbuf + c->wlen, c->wcap - c->wlen + 1, fmt, again);
            c->wlen += (size_t)n;
            if (c->autoflush && (rc = wflush(c, abs)) < 0)
                out = rc;
        }
    } else { /* larger than the buffer: format aside, send directly */
        char *tmp = sn__malloc((size_t)n + 1);
        if (tmp == NULL) {
            out = SN_ENOMEM;
        } else {
            vsnprintf(tmp, (size_t)n + 1, fmt, again);
            struct iovec iov = {tmp, (size_t)n};
            out = write_direct(c, &iov, 1, (size_t)n, abs);
            sn__free(tmp);
        }
    }
    va_end(again);
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
        return werror(c, rc);
    c->werr = SN_EPIPE; /* nothing more can be sent */
    return 0;
}
