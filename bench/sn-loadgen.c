/* SPDX-License-Identifier: MIT */
/*
 * sn-loadgen: TCP and UDP load generator for echo servers (bench/run.sh).
 *
 *   sn-loadgen pingpong --host H --port P --conns C --size N --seconds S [--warmup S]
 *                       [--threads T] [--server-pid PID]
 *   sn-loadgen bulk     --host H --port P --size BYTES --count K
 *   sn-loadgen connect  --host H --port P --seconds S [--threads T]
 *   sn-loadgen idle     --host H --port P --conns C --hold S
 *   sn-loadgen udp-pingpong --host H --port P --conns C --size N --seconds S [--warmup S]
 *                       [--threads T] [--batch B] [--server-pid PID]
 *   (pingpong, bulk, connect and idle take --unix PATH instead of --host H --port P: a local
 *   stream socket)
 *
 * pingpong: C connections, each sends an N-byte message and waits for the whole echo before
 *   sending the next; T threads (default 2, one per core) drive their share of non-blocking
 *   connections with level-triggered epoll. Latency (send start to last echoed byte) goes
 *   into a log-bucket histogram (16 sub-buckets per power of two, about 6 % resolution,
 *   fixed size). Only exchanges completing after the warm-up count; starved=N counts the
 *   connections that completed none.
 * bulk: one connection; a writer thread sends K messages of BYTES while a reader thread reads
 *   the echo; MiB/s is the payload of one direction over the wall time.
 * connect: T threads loop connect, send 1 byte, read the echo, close, until S seconds pass.
 *   The client closes with SO_LINGER {1, 0}, i.e. a RST: neither side keeps the connection
 *   in TIME_WAIT, so the loop does not exhaust the ephemeral port range.
 * idle: C connections, one echoed byte each, then "idle C ready" on stdout and hold for S
 *   seconds, or until SIGTERM/SIGINT, or until stdin reaches end-of-file when stdin is a pipe
 *   or socket (a terminal or /dev/null stdin is not watched), then close them all.
 * udp-pingpong: C connected UDP sockets over T threads (epoll), each with one round of B
 *   datagrams of N bytes in flight (sendmmsg / recvmmsg when B > 1); the next round starts
 *   when every echo of this one is back. The figure is datagrams echoed per second; latency
 *   is per round. A round missing echoes after 200 ms counts them lost and starts over; more
 *   than 5 % lost fails the run.
 *
 * --server-pid PID (pingpong, udp-pingpong): also reads, over the measured window, the CPU time
 *   the server and this process use and the context switches of the server's threads
 *   (procstat.h), and reports each per exchange: server_cpu_us=, client_cpu_us=, server_csw=.
 *
 * Every echoed byte is verified. One "result ..." line on stdout per successful run (none on
 * failure), human text on stderr; exit status 1 on any error, 2 on bad usage. Every loop is
 * bounded by a count or a deadline. Self-contained: libc + pthreads.
 */
#define LG_NAME "sn-loadgen"
#include "loadgen.h"
#include "procstat.h"

#define MAX_CONNS 100000
#define MAX_THREADS 64

struct opts {
    const char *host, *port, *local;
    long conns, size, count, threads, batch, server_pid;
    double seconds, warmup, hold;
};

/* Pattern byte j of message seq of a connection (pingpong): differs between messages. */
static inline unsigned char pat(uint32_t seq, long j)
{
    return (unsigned char)(seq * 131u + (uint32_t)j * 7u + ((uint32_t)j >> 8));
}

/* ---- pingpong -------------------------------------------------------------- */

struct pp_conn {
    int fd;
    int want_out; /* EPOLLOUT registered */
    uint32_t seq;
    long sent, rcvd;
    uint64_t t0;
    uint64_t measured; /* round trips completed in the measured period */
};

struct pp_thread {
    pthread_t tid;
    const struct opts *o;
    int *fds;
    long nconns;
    uint64_t t_measure, t_end;
    struct hist hist;
    long starved; /* open connections without a measured round trip */
    long errors;
};

static int pp_interest(int ep, struct pp_conn *c, int want_out)
{
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (c->want_out == want_out)
        return 0;
    c->want_out = want_out;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends the rest of the current message. */
static int pp_send(int ep, struct pp_conn *c, unsigned char *scratch, long size)
{
    while (c->sent < size) {
        for (long j = c->sent; j < size; j++)
            scratch[j] = pat(c->seq, j);
        ssize_t n = send(c->fd, scratch + c->sent, (size_t)(size - c->sent), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return pp_interest(ep, c, 1);
        if (n < 0) {
            perror("sn-loadgen: send");
            return -1;
        }
        c->sent += n;
    }
    return pp_interest(ep, c, 0);
}

static int pp_start(int ep, struct pp_conn *c, unsigned char *scratch, long size)
{
    c->seq++;
    c->sent = c->rcvd = 0;
    c->t0 = now_ns();
    return pp_send(ep, c, scratch, size);
}

static int pp_verify(const struct pp_conn *c, const unsigned char *buf, long n)
{
    for (long j = 0; j < n; j++)
        if (buf[j] != pat(c->seq, c->rcvd + j)) {
            fprintf(stderr, "sn-loadgen: echo mismatch at byte %ld of message %u\n", c->rcvd + j,
                    (unsigned)c->seq);
            return -1;
        }
    return 0;
}

static int pp_readable(int ep, struct pp_thread *t, struct pp_conn *c, unsigned char *scratch,
                       unsigned char *rbuf)
{
    long size = t->o->size;
    ssize_t n = recv(c->fd, rbuf, (size_t)(size - c->rcvd), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        fprintf(stderr, "sn-loadgen: recv: %s\n", io_error(n));
        return -1;
    }
    if (c->rcvd + n > c->sent) {
        fprintf(stderr, "sn-loadgen: echo ahead of what was sent\n");
        return -1;
    }
    if (pp_verify(c, rbuf, n) < 0)
        return -1;
    c->rcvd += n;
    if (c->rcvd < size)
        return 0;
    uint64_t now = now_ns();
    if (now >= t->t_measure && now < t->t_end) {
        hist_add(&t->hist, now - c->t0);
        c->measured++;
    }
    return pp_start(ep, c, scratch, size);
}

static void pp_drop(struct pp_thread *t, struct pp_conn *c)
{
    t->errors++;
    close(c->fd);
    c->fd = -1;
}

static int pp_setup(struct pp_thread *t, int ep, struct pp_conn *cs, unsigned char *scratch)
{
    for (long i = 0; i < t->nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        cs[i] = (struct pp_conn){.fd = t->fds[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
            return -1;
    }
    for (long i = 0; i < t->nconns; i++)
        if (pp_start(ep, &cs[i], scratch, t->o->size) < 0)
            pp_drop(t, &cs[i]);
    return 0;
}

static void pp_loop(struct pp_thread *t, int ep, unsigned char *scratch, unsigned char *rbuf)
{
    struct epoll_event evs[256];
    while (!g_stop && now_ns() < t->t_end) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) {
            t->errors++;
            return;
        }
        for (int i = 0; i < n; i++) {
            struct pp_conn *c = evs[i].data.ptr;
            int rc = 0;
            if (c->fd < 0)
                continue;
            if (evs[i].events & EPOLLOUT)
                rc = pp_send(ep, c, scratch, t->o->size);
            if (rc == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                rc = pp_readable(ep, t, c, scratch, rbuf);
            if (rc < 0)
                pp_drop(t, c);
        }
    }
}

static void *pp_main(void *arg)
{
    struct pp_thread *t = arg;
    struct pp_conn *cs = calloc((size_t)t->nconns, sizeof *cs);
    unsigned char *scratch = malloc((size_t)t->o->size);
    unsigned char *rbuf = malloc((size_t)t->o->size);
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (!cs || !scratch || !rbuf || ep < 0 || pp_setup(t, ep, cs, scratch) < 0) {
        fprintf(stderr, "sn-loadgen: thread setup failed\n");
        t->errors++;
        goto out;
    }
    pp_loop(t, ep, scratch, rbuf);
    for (long i = 0; i < t->nconns; i++)
        t->starved += cs[i].fd >= 0 && cs[i].measured == 0;
out:
    if (ep >= 0)
        close(ep);
    free(cs);
    free(scratch);
    free(rbuf);
    return NULL;
}

static int pp_run_threads(const struct opts *o, int *fds, struct pp_thread *th, int nth,
                          struct proc_window *win)
{
    uint64_t start = now_ns();
    uint64_t t_measure = start + (uint64_t)(o->warmup * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(o->seconds * 1e9);
    long base = 0;
    int started = 0;

    for (int i = 0; i < nth; i++) {
        long share = o->conns / nth + (i < o->conns % nth);
        th[i].o = o;
        th[i].fds = fds + base;
        th[i].nconns = share;
        th[i].t_measure = t_measure;
        th[i].t_end = t_end;
        base += share;
        if (pthread_create(&th[i].tid, NULL, pp_main, &th[i]) != 0)
            break;
        started++;
    }
    if (win->pid) {
        sleep_until(t_measure);
        proc_window_read(win);
        sleep_until(t_end);
        proc_window_read(win);
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i].tid, NULL);
    return started == nth ? 0 : -1;
}

static int pp_report(const struct opts *o, struct pp_thread *th, int nth, double secs,
                     const struct proc_window *win)
{
    static struct hist all;
    long errors = 0, starved = 0;

    for (int i = 0; i < nth; i++) {
        hist_merge(&all, &th[i].hist);
        errors += th[i].errors;
        starved += th[i].starved;
    }
    double rate = (double)all.n / secs;
    double p50 = hist_quantile_us(&all, 0.50), p99 = hist_quantile_us(&all, 0.99);
    double p999 = hist_quantile_us(&all, 0.999);
    fprintf(stderr,
            "pingpong: %ld conns x %ld B: %.0f round trips/s, p50 %.1f us, p99 %.1f us, "
            "p99.9 %.1f us; %ld errors, %ld connections starved\n",
            o->conns, o->size, rate, p50, p99, p999, errors, starved);
    if (errors || all.n == 0) {
        fprintf(stderr, "sn-loadgen: pingpong failed (%ld connection errors, %llu exchanges)\n",
                errors, (unsigned long long)all.n);
        return -1;
    }
    printf("result pingpong conns=%ld size=%ld msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f "
           "p999_us=%.1f exchanges=%llu starved=%ld",
           o->conns, o->size, rate, p50, p99, p999, (unsigned long long)all.n, starved);
    int rc = win->pid ? proc_window_print(win, all.n, stdout) : 0;
    printf("\n");
    return rc;
}

static int cmd_pingpong(const struct opts *o)
{
    int nth = (int)(o->threads < o->conns ? o->threads : o->conns);
    struct pp_thread *th = calloc((size_t)nth, sizeof *th);
    int *fds = malloc((size_t)o->conns * sizeof *fds);
    int rc = -1;

    if (!th || !fds)
        goto out;
    fprintf(stderr, "pingpong: connecting %ld to %s:%s\n", o->conns, o->host, o->port);
    if (connect_many(fds, o->conns) < 0)
        goto out;
    struct proc_window win = {.pid = o->server_pid};
    if (pp_run_threads(o, fds, th, nth, &win) == 0 && !g_stop)
        rc = pp_report(o, th, nth, o->seconds, &win);
    close_all(fds, o->conns);
out:
    free(fds);
    free(th);
    return rc;
}

/* ---- bulk ------------------------------------------------------------------ */

struct bulk {
    int fd;
    long size, count;
    unsigned char *pattern; /* size + 251 bytes; message k starts at pattern + k % 251 */
    int write_err, read_err;
};

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *bulk_writer(void *arg)
{
    struct bulk *b = arg;
    for (long k = 0; k < b->count && !g_stop; k++)
        if (write_all(b->fd, b->pattern + k % 251, (size_t)b->size) < 0) {
            fprintf(stderr, "sn-loadgen: bulk send: %s\n", io_error(-1));
            b->write_err = 1;
            break;
        }
    shutdown(b->fd, SHUT_WR);
    return NULL;
}

/* Compares buf (n bytes at stream offset off) against the expected stream. */
static int bulk_check(const struct bulk *b, uint64_t off, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        uint64_t k = off / (uint64_t)b->size, r = off % (uint64_t)b->size;
        size_t m = (size_t)((uint64_t)b->size - r) < n ? (size_t)((uint64_t)b->size - r) : n;
        if (memcmp(buf, b->pattern + k % 251 + r, m) != 0) {
            fprintf(stderr, "sn-loadgen: bulk echo mismatch in message %llu\n",
                    (unsigned long long)k);
            return -1;
        }
        off += m;
        buf += m;
        n -= m;
    }
    return 0;
}

static int bulk_read(struct bulk *b, unsigned char *buf, size_t cap)
{
    uint64_t total = (uint64_t)b->size * (uint64_t)b->count, off = 0;
    while (off < total && !g_stop) {
        size_t want = total - off < cap ? (size_t)(total - off) : cap;
        ssize_t n = recv(b->fd, buf, want, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "sn-loadgen: bulk recv: %s\n", io_error(n));
            return -1;
        }
        if (bulk_check(b, off, buf, (size_t)n) < 0)
            return -1;
        off += (uint64_t)n;
    }
    return off == total ? 0 : -1;
}

static int bulk_connect(void)
{
    int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    set_io_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0) {
        perror("sn-loadgen: connect");
        close(fd);
        return -1;
    }
    return fd;
}

static int cmd_bulk(const struct opts *o)
{
    struct bulk b = {.fd = -1, .size = o->size, .count = o->count};
    size_t cap = 256 * 1024;
    unsigned char *rbuf = malloc(cap);
    pthread_t wt;
    int rc = -1;

    b.pattern = malloc((size_t)o->size + 251);
    if (!rbuf || !b.pattern)
        goto out;
    for (long i = 0; i < o->size + 251; i++)
        b.pattern[i] = (unsigned char)(i % 251);
    b.fd = bulk_connect();
    if (b.fd < 0)
        goto out;
    uint64_t t0 = now_ns();
    if (pthread_create(&wt, NULL, bulk_writer, &b) != 0)
        goto out;
    b.read_err = bulk_read(&b, rbuf, cap) < 0;
    if (b.read_err)
        shutdown(b.fd, SHUT_RDWR); /* unblock the writer */
    pthread_join(wt, NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    if (b.read_err || b.write_err || g_stop)
        goto out;
    double mib = (double)o->size * (double)o->count / 1048576.0;
    printf("result bulk size=%ld count=%ld mib_per_s=%.1f seconds=%.3f\n", o->size, o->count,
           mib / secs, secs);
    fprintf(stderr, "bulk: %.0f MiB echoed in %.3f s: %.1f MiB/s\n", mib, secs, mib / secs);
    rc = 0;
out:
    if (b.fd >= 0)
        close(b.fd);
    free(b.pattern);
    free(rbuf);
    return rc;
}

/* ---- connect rate ---------------------------------------------------------- */

struct cr_thread {
    pthread_t tid;
    uint64_t t_end;
    uint64_t done;
    long errors;
};

/* One connect / 1-byte echo / RST close cycle. */
static int cr_once(unsigned char tag)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    unsigned char in = 0;
    const char *what = "socket";
    ssize_t n = -1;
    int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        goto fail;
    set_io_timeouts(fd);
    set_nodelay(fd);
    what = "connect";
    if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0)
        goto fail;
    what = "send";
    if (send(fd, &tag, 1, MSG_NOSIGNAL) != 1)
        goto fail;
    what = "recv";
    do
        n = recv(fd, &in, 1, 0);
    while (n < 0 && errno == EINTR && !g_stop);
    if (n != 1 || in != tag)
        goto fail;
    /* RST instead of FIN: no TIME_WAIT on either side, ephemeral ports are reused at once. */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return 0;
fail:
    if (!g_stop)
        fprintf(stderr, "sn-loadgen: connect cycle: %s: %s\n", what,
                n == 1 ? "wrong echo byte" : io_error(n));
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    return -1;
}

static void *cr_main(void *arg)
{
    struct cr_thread *t = arg;
    unsigned char tag = 0;
    while (!g_stop && now_ns() < t->t_end && t->errors == 0) {
        if (cr_once(++tag) == 0)
            t->done++;
        else if (!g_stop)
            t->errors++;
    }
    return NULL;
}

static int cmd_connect(const struct opts *o)
{
    struct cr_thread th[MAX_THREADS];
    uint64_t t0 = now_ns(), done = 0;
    long errors = 0;
    int started = 0;

    for (int i = 0; i < o->threads; i++) {
        th[i] = (struct cr_thread){.t_end = t0 + (uint64_t)(o->seconds * 1e9)};
        if (pthread_create(&th[i].tid, NULL, cr_main, &th[i]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i].tid, NULL);
        done += th[i].done;
        errors += th[i].errors;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    if (g_stop || started != o->threads)
        return -1;
    fprintf(stderr, "connect: %llu connections in %.2f s: %.0f/s, %ld errors\n",
            (unsigned long long)done, secs, (double)done / secs, errors);
    if (errors || done == 0)
        return -1;
    printf("result connect threads=%ld conns_per_s=%.0f conns=%llu\n", o->threads,
           (double)done / secs, (unsigned long long)done);
    return 0;
}

/* ---- idle ------------------------------------------------------------------ */

/* One byte out on every connection, then waits for every echo. */
static int idle_ping(int *fds, long n)
{
    struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
    uint64_t deadline = now_ns() + (uint64_t)IO_TIMEOUT_S * 1000000000u;
    long left = n;
    int rc = -1;

    if (!pfd)
        return -1;
    for (long i = 0; i < n; i++) {
        pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (send(fds[i], "i", 1, MSG_NOSIGNAL) != 1)
            goto out;
    }
    while (left > 0 && !g_stop && now_ns() < deadline) {
        int r = poll(pfd, (nfds_t)n, 100);
        for (long i = 0; r > 0 && i < n; i++) {
            char c;
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            if (recv(pfd[i].fd, &c, 1, 0) != 1 || c != 'i')
                goto out;
            pfd[i].fd = -1;
            left--;
        }
    }
    rc = left == 0 ? 0 : -1;
out:
    if (rc < 0)
        fprintf(stderr, "sn-loadgen: idle: echo failed (%ld of %ld missing)\n", left, n);
    free(pfd);
    return rc;
}

static int cmd_idle(const struct opts *o)
{
    int *fds = malloc((size_t)o->conns * sizeof *fds);
    int rc = -1;

    if (!fds)
        return -1;
    fprintf(stderr, "idle: connecting %ld to %s:%s\n", o->conns, o->host, o->port);
    if (connect_many(fds, o->conns) < 0)
        goto out;
    if (idle_ping(fds, o->conns) < 0)
        goto close;
    idle_report_hold("idle", o->conns, o->hold);
    rc = 0;
close:
    close_all(fds, o->conns);
out:
    free(fds);
    return rc;
}

/* ---- udp-pingpong ---------------------------------------------------------- */

/* Each socket is connected to the server and keeps one round in flight: B datagrams of N
 * bytes (sendmmsg when B > 1), then waits until all B echoes are back (recvmmsg) before the
 * next round. A datagram carries its round's sequence number and its index in the round, then
 * a pattern of both, all checked. A round still missing echoes after UDP_LOSS_MS counts those
 * as lost and starts over; an echo of an older round is counted as late and ignored. */

#define UDP_BATCH_MAX 64
#define UDP_LOSS_MS 200
#define UDP_HDR 8

struct up_sock {
    int fd;
    uint32_t seq;
    int got;
    uint64_t seen; /* bit i: echo i of this round received */
    uint64_t t0;
    uint64_t measured;
};

struct up_thread {
    pthread_t tid;
    const struct opts *o;
    long nsocks;
    uint64_t t_measure, t_end;
    struct hist hist;
    uint64_t datagrams, sent, lost, late;
    long starved, errors;
};

static void up_fill(unsigned char *p, long size, uint32_t seq, int idx)
{
    uint16_t i16 = (uint16_t)idx;
    memcpy(p, &seq, 4);
    memcpy(p + 4, &i16, 2);
    p[6] = p[7] = 0;
    for (long j = UDP_HDR; j < size; j++)
        p[j] = pat(seq * 64u + (uint32_t)idx, j);
}

/* Starts a new round on socket c: B datagrams. */
static int up_start(struct up_thread *t, struct up_sock *c, unsigned char *scratch)
{
    long size = t->o->size;
    int b = (int)t->o->batch;
    struct mmsghdr mm[UDP_BATCH_MAX];
    struct iovec iov[UDP_BATCH_MAX];

    c->seq++;
    c->got = 0;
    c->seen = 0;
    c->t0 = now_ns();
    for (int i = 0; i < b; i++) {
        up_fill(scratch + (size_t)i * (size_t)size, size, c->seq, i);
        iov[i] =
            (struct iovec){.iov_base = scratch + (size_t)i * (size_t)size, .iov_len = (size_t)size};
        mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
    }
    int n = b == 1 ? (send(c->fd, scratch, (size_t)size, MSG_DONTWAIT) == size ? 1 : -1)
                   : sendmmsg(c->fd, mm, (unsigned)b, MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
        perror("sn-loadgen: udp send");
        return -1;
    }
    t->sent += (uint64_t)(n > 0 ? n : 0); /* unsent ones show up as lost */
    return 0;
}

/* Checks one echo; returns 1 when it completed the round, 0 otherwise, -1 on a bad echo. */
static int up_echo(struct up_thread *t, struct up_sock *c, const unsigned char *p, long n)
{
    uint32_t seq;
    uint16_t idx;
    if (n != t->o->size) {
        fprintf(stderr, "sn-loadgen: udp echo of %ld bytes, sent %ld\n", n, t->o->size);
        return -1;
    }
    memcpy(&seq, p, 4);
    memcpy(&idx, p + 4, 2);
    if (seq != c->seq) {
        t->late++;
        return 0;
    }
    if (idx >= t->o->batch || ((c->seen >> idx) & 1u)) {
        fprintf(stderr, "sn-loadgen: udp echo with a bad or repeated index %u\n", idx);
        return -1;
    }
    for (long j = UDP_HDR; j < n; j++)
        if (p[j] != pat(seq * 64u + idx, j)) {
            fprintf(stderr, "sn-loadgen: udp echo mismatch at byte %ld\n", j);
            return -1;
        }
    c->seen |= (uint64_t)1 << idx;
    return ++c->got == t->o->batch;
}

static int up_readable(struct up_thread *t, struct up_sock *c, unsigned char *scratch,
                       unsigned char *rbuf)
{
    long size = t->o->size;
    int b = (int)t->o->batch;
    struct mmsghdr mm[UDP_BATCH_MAX];
    struct iovec iov[UDP_BATCH_MAX];

    for (int rounds = 0; rounds < 64; rounds++) { /* bounded: then back to epoll */
        for (int i = 0; i < b; i++) {
            iov[i] = (struct iovec){.iov_base = rbuf + (size_t)i * (size_t)(size + 1),
                                    .iov_len = (size_t)size + 1};
            mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
        }
        int n = recvmmsg(c->fd, mm, (unsigned)b, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            perror("sn-loadgen: udp receive");
            return -1;
        }
        for (int i = 0; i < n; i++) {
            int rc = up_echo(t, c, iov[i].iov_base, (long)mm[i].msg_len);
            if (rc < 0)
                return -1;
            if (rc == 0)
                continue;
            uint64_t now = now_ns();
            if (now >= t->t_measure && now < t->t_end) {
                hist_add(&t->hist, now - c->t0);
                t->datagrams += (uint64_t)b;
                c->measured++;
            }
            if (up_start(t, c, scratch) < 0)
                return -1;
        }
    }
    return 0;
}

/* Rounds older than UDP_LOSS_MS: count what is missing as lost and start over. */
static int up_expire(struct up_thread *t, struct up_sock *cs, unsigned char *scratch)
{
    uint64_t now = now_ns();
    for (long i = 0; i < t->nsocks; i++) {
        struct up_sock *c = &cs[i];
        if (c->fd < 0 || now - c->t0 < (uint64_t)UDP_LOSS_MS * 1000000u)
            continue;
        t->lost += (uint64_t)(t->o->batch - c->got);
        if (up_start(t, c, scratch) < 0)
            return -1;
    }
    return 0;
}

static int up_open(void)
{
    int fd = socket(g_addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int buf = 1 << 20;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void up_loop(struct up_thread *t, int ep, struct up_sock *cs, unsigned char *scratch,
                    unsigned char *rbuf)
{
    struct epoll_event evs[256];
    uint64_t next_expire = now_ns();
    while (!g_stop && now_ns() < t->t_end) {
        int n = epoll_wait(ep, evs, 256, 20);
        if (n < 0 && errno != EINTR) {
            t->errors++;
            return;
        }
        for (int i = 0; i < n; i++) {
            struct up_sock *c = evs[i].data.ptr;
            if (c->fd >= 0 && up_readable(t, c, scratch, rbuf) < 0) {
                t->errors++;
                close(c->fd);
                c->fd = -1;
            }
        }
        if (now_ns() >= next_expire) {
            if (up_expire(t, cs, scratch) < 0)
                t->errors++;
            next_expire = now_ns() + 50000000u;
        }
    }
}

static void *up_main(void *arg)
{
    struct up_thread *t = arg;
    size_t per = (size_t)t->o->batch * (size_t)(t->o->size + 1);
    struct up_sock *cs = calloc((size_t)t->nsocks, sizeof *cs);
    unsigned char *scratch = malloc(per), *rbuf = malloc(per);
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (!cs || !scratch || !rbuf || ep < 0)
        goto fail;
    for (long i = 0; i < t->nsocks; i++)
        cs[i].fd = -1;
    for (long i = 0; i < t->nsocks; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        if ((cs[i].fd = up_open()) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
            goto fail;
    }
    for (long i = 0; i < t->nsocks; i++)
        if (up_start(t, &cs[i], scratch) < 0)
            goto fail;
    up_loop(t, ep, cs, scratch, rbuf);
    for (long i = 0; i < t->nsocks; i++)
        t->starved += cs[i].fd >= 0 && cs[i].measured == 0;
    goto out;
fail:
    fprintf(stderr, "sn-loadgen: udp thread setup failed: %s\n", strerror(errno));
    t->errors++;
out:
    for (long i = 0; cs && i < t->nsocks; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    if (ep >= 0)
        close(ep);
    free(cs);
    free(scratch);
    free(rbuf);
    return NULL;
}

static int cmd_udp_pingpong(const struct opts *o)
{
    int nth = (int)(o->threads < o->conns ? o->threads : o->conns), started = 0;
    struct up_thread *th = calloc((size_t)nth, sizeof *th);
    static struct hist all;
    uint64_t datagrams = 0, sent = 0, lost = 0, late = 0;
    long errors = 0, starved = 0;

    if (!th)
        return -1;
    uint64_t t_measure = now_ns() + (uint64_t)(o->warmup * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(o->seconds * 1e9);
    fprintf(stderr, "udp-pingpong: %ld sockets x %ld B x %ld in flight to %s:%s\n", o->conns,
            o->size, o->batch, o->host, o->port);
    for (int i = 0; i < nth; i++) {
        th[i] = (struct up_thread){.o = o,
                                   .t_measure = t_measure,
                                   .t_end = t_end,
                                   .nsocks = o->conns / nth + (i < o->conns % nth)};
        if (pthread_create(&th[i].tid, NULL, up_main, &th[i]) != 0)
            break;
        started++;
    }
    struct proc_window win = {.pid = o->server_pid};
    if (win.pid) {
        sleep_until(t_measure);
        proc_window_read(&win);
        sleep_until(t_end);
        proc_window_read(&win);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i].tid, NULL);
        hist_merge(&all, &th[i].hist);
        datagrams += th[i].datagrams;
        sent += th[i].sent;
        lost += th[i].lost;
        late += th[i].late;
        errors += th[i].errors;
        starved += th[i].starved;
    }
    free(th);
    if (g_stop || started != nth)
        return -1;
    double rate = (double)datagrams / o->seconds;
    double p50 = hist_quantile_us(&all, 0.50), p99 = hist_quantile_us(&all, 0.99);
    double p999 = hist_quantile_us(&all, 0.999);
    fprintf(stderr,
            "udp-pingpong: %.0f datagrams/s echoed, rounds p50 %.1f us, p99 %.1f us, "
            "p99.9 %.1f us; %llu sent, %llu lost, %llu late, %ld errors, %ld sockets starved\n",
            rate, p50, p99, p999, (unsigned long long)sent, (unsigned long long)lost,
            (unsigned long long)late, errors, starved);
    if (errors || all.n == 0 || lost * 20 > sent) {
        fprintf(stderr,
                "sn-loadgen: udp-pingpong failed (%ld errors, %llu rounds, %llu of %llu "
                "datagrams lost)\n",
                errors, (unsigned long long)all.n, (unsigned long long)lost,
                (unsigned long long)sent);
        return -1;
    }
    printf("result udp-pingpong conns=%ld size=%ld batch=%ld msgs_per_s=%.0f p50_us=%.1f "
           "p99_us=%.1f p999_us=%.1f exchanges=%llu lost=%llu starved=%ld",
           o->conns, o->size, o->batch, rate, p50, p99, p999, (unsigned long long)all.n,
           (unsigned long long)lost, starved);
    int rc = win.pid ? proc_window_print(&win, datagrams, stdout) : 0;
    printf("\n");
    return rc;
}

/* ---- command line ---------------------------------------------------------- */

static _Noreturn void usage(void)
{
    fprintf(stderr,
            "usage: sn-loadgen pingpong --host H --port P --conns C --size N --seconds S\n"
            "                           [--warmup S] [--threads T] [--server-pid PID]\n"
            "       sn-loadgen bulk     --host H --port P --size BYTES --count K\n"
            "       sn-loadgen connect  --host H --port P --seconds S [--threads T]\n"
            "       sn-loadgen idle     --host H --port P --conns C --hold S\n"
            "       sn-loadgen udp-pingpong --host H --port P --conns C --size N --seconds S\n"
            "                           [--warmup S] [--threads T] [--batch B] [--server-pid PID]\n"
            "       (pingpong, bulk, connect, idle: --unix PATH instead of --host and --port\n"
            "        talks to a local socket)\n");
    exit(2);
}

static void parse(struct opts *o, int argc, char **argv)
{
    for (int i = 2; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(k, "--host"))
            o->host = v;
        else if (!strcmp(k, "--unix"))
            o->local = v;
        else if (!strcmp(k, "--port"))
            o->port = (num(v, 1, 65535), v);
        else if (!strcmp(k, "--conns"))
            o->conns = num(v, 1, MAX_CONNS);
        else if (!strcmp(k, "--size"))
            o->size = num(v, 1, 1L << 30);
        else if (!strcmp(k, "--count"))
            o->count = num(v, 1, 1L << 30);
        else if (!strcmp(k, "--threads"))
            o->threads = num(v, 1, MAX_THREADS);
        else if (!strcmp(k, "--batch"))
            o->batch = num(v, 1, UDP_BATCH_MAX);
        else if (!strcmp(k, "--seconds"))
            o->seconds = secs_arg(v);
        else if (!strcmp(k, "--warmup"))
            o->warmup = secs_arg(v);
        else if (!strcmp(k, "--hold"))
            o->hold = secs_arg(v);
        else if (!strcmp(k, "--server-pid"))
            o->server_pid = num(v, 1, 1L << 30);
        else
            usage();
    }
    if (o->local && !o->host && !o->port) {
        o->host = "unix"; /* messages print "unix:PATH" */
        o->port = o->local;
    } else if (!o->host || !o->port || o->local) {
        usage();
    }
}

int main(int argc, char **argv)
{
    struct opts o = {
        .conns = 1, .size = 64, .count = 1, .threads = 2, .batch = 1, .seconds = 5, .hold = 10};
    int rc;

    if (argc < 2)
        usage();
    parse(&o, argc, argv);
    if (o.seconds <= 0)
        usage();
    setup_process();
    if ((o.local ? resolve_local(o.local) : resolve(o.host, o.port)) < 0)
        return 1;
    if (o.local && !strcmp(argv[1], "udp-pingpong"))
        usage();
    if (!strcmp(argv[1], "pingpong"))
        rc = cmd_pingpong(&o);
    else if (!strcmp(argv[1], "bulk"))
        rc = cmd_bulk(&o);
    else if (!strcmp(argv[1], "connect"))
        rc = cmd_connect(&o);
    else if (!strcmp(argv[1], "idle"))
        rc = cmd_idle(&o);
    else if (!strcmp(argv[1], "udp-pingpong") && o.size >= UDP_HDR && o.size <= 65507)
        rc = cmd_udp_pingpong(&o);
    else
        usage();
    return rc == 0 ? 0 : 1;
}
