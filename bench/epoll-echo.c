/* SPDX-License-Identifier: MIT */
/*
 * epoll-echo: the reference server for bench/run.sh.
 *
 *   epoll-echo [--host H] [--port P]
 *   epoll-echo --unix PATH        (the same on a local socket; prints "listening on unix:PATH")
 *
 * A plain, single-threaded, level-triggered epoll TCP echo server: non-blocking accept4 in
 * batches, a 256-event epoll batch, reads of up to 64 KiB echoed straight back from one shared
 * buffer, up to 16 reads per event while reads come back full (so a bulk stream does not pay
 * an epoll_wait per 64 KiB and one busy connection cannot starve the rest). A partial write
 * parks the rest in a per-connection pending buffer and switches the connection from EPOLLIN
 * to EPOLLOUT until it drains, so a slow reader applies back-pressure instead of growing
 * memory. TCP_NODELAY on accepted sockets. Per idle connection it keeps one 32-byte struct.
 *
 * Prints "listening on H:PORT" on stdout once ready (port 0 = any free port); SIGINT or
 * SIGTERM → exit status 0. Self-contained: libc only.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_BUF (64 * 1024)
#define ACCEPT_BATCH 256
#define READS_PER_EVENT 16

struct conn {
    int fd;
    size_t pend_off; /* bytes of pend already written */
    size_t pend_len; /* bytes in pend (0 = nothing pending, reading) */
    char *pend;
};

static volatile sig_atomic_t g_stop;
static char g_buf[READ_BUF];
static int g_spare_fd = -1; /* reserve descriptor for EMFILE recovery */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int make_listener(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, one = 1, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "epoll-echo: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        fprintf(stderr, "epoll-echo: cannot listen on %s:%s: %s\n", host, port, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

/* A local (Unix-domain) listener at path: a socket file already there is
 * replaced (the bench gives each run a fresh path; a plain file is refused). */
static int make_local_listener(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    if (strlen(path) >= sizeof sun.sun_path) {
        fprintf(stderr, "epoll-echo: %s: path too long\n", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "epoll-echo: cannot listen on unix:%s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int print_ready(int lfd, const char *host)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char hbuf[NI_MAXHOST], sbuf[NI_MAXSERV];

    if (getsockname(lfd, (struct sockaddr *)&ss, &len) < 0 ||
        getnameinfo((struct sockaddr *)&ss, len, hbuf, sizeof hbuf, sbuf, sizeof sbuf,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return -1;
    printf("listening on %s:%s\n", host, sbuf);
    return fflush(stdout) == 0 ? 0 : -1;
}

static void conn_close(struct conn *c)
{
    close(c->fd); /* also removes it from the epoll set */
    free(c->pend);
    free(c);
}

static int set_interest(int ep, struct conn *c, unsigned int events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes pend; returns 1 when drained, 0 when more remains, -1 on error. */
static int flush_pending(struct conn *c)
{
    while (c->pend_off < c->pend_len) {
        ssize_t n = send(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        c->pend_off += (size_t)n;
    }
    free(c->pend);
    c->pend = NULL;
    c->pend_off = c->pend_len = 0;
    return 1;
}

/* Parks buf[0..len) as the pending output and waits for EPOLLOUT. */
static int park(int ep, struct conn *c, const char *buf, size_t len)
{
    c->pend = malloc(len);
    if (!c->pend)
        return -1;
    memcpy(c->pend, buf, len);
    c->pend_off = 0;
    c->pend_len = len;
    return set_interest(ep, c, EPOLLOUT);
}

/* Reads up to 64 KiB and echoes it. Returns 1 when the socket may hold more to read, 0 when
 * it is drained or the echo was parked, -1 when the connection is finished. */
static int echo_once(int ep, struct conn *c)
{
    ssize_t n, w = 0;

    do
        n = recv(c->fd, g_buf, sizeof g_buf, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    while (w < n) {
        ssize_t k = send(c->fd, g_buf + w, (size_t)(n - w), MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return park(ep, c, g_buf + w, (size_t)(n - w));
        if (k < 0)
            return -1;
        w += k;
    }
    return n == (ssize_t)sizeof g_buf;
}

/* Echoes until the socket is drained, at most READS_PER_EVENT times so that one busy
 * connection cannot starve the others (level-triggered: the rest is reported again). */
static int on_readable(int ep, struct conn *c)
{
    int rc = 1;
    for (int i = 0; i < READS_PER_EVENT && rc == 1; i++)
        rc = echo_once(ep, c);
    return rc < 0 ? -1 : 0;
}

static int on_writable(int ep, struct conn *c)
{
    int rc = flush_pending(c);
    if (rc <= 0)
        return rc;
    return set_interest(ep, c, EPOLLIN);
}

static void on_conn_event(int ep, struct conn *c, unsigned int events)
{
    int rc;
    if (c->pend_len)
        rc = on_writable(ep, c);
    else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        rc = on_readable(ep, c);
    else
        rc = 0;
    if (rc < 0)
        conn_close(c);
}

static int add_conn(int ep, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    struct epoll_event ev;
    int one = 1;

    if (!c)
        goto fail;
    c->fd = fd;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        goto fail;
    return 0;
fail:
    free(c);
    close(fd);
    return -1;
}

/* Out of descriptors: accept and drop one connection so the listener does not spin. */
static void shed_one(int lfd)
{
    int fd;
    if (g_spare_fd >= 0)
        close(g_spare_fd);
    fd = accept(lfd, NULL, NULL);
    if (fd >= 0)
        close(fd);
    g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_accept(int ep, int lfd)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            add_conn(ep, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE)
            shed_one(lfd);
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            perror("epoll-echo: accept4");
        return;
    }
}

static int serve(int lfd)
{
    struct epoll_event evs[MAX_EVENTS];
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        perror("epoll-echo: epoll");
        return -1;
    }
    while (!g_stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("epoll-echo: epoll_wait");
            close(ep);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                on_accept(ep, lfd);
            else
                on_conn_event(ep, evs[i].data.ptr, evs[i].events);
        }
    }
    close(ep); /* connections are reclaimed by exit */
    return 0;
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: epoll-echo [--host H] [--port P] | --unix PATH\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "0", *local = NULL;
    int lfd, rc;

    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = argv[i + 1];
        else if (strcmp(argv[i], "--unix") == 0)
            local = argv[i + 1];
        else
            usage();
    }
    raise_nofile();
    if (install_signals() < 0)
        return 1;
    g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (local != NULL) {
        lfd = make_local_listener(local);
        if (lfd < 0)
            return 1;
        printf("listening on unix:%s\n", local);
        fflush(stdout);
    } else {
        lfd = make_listener(host, port);
        if (lfd < 0 || print_ready(lfd, host) < 0)
            return 1;
    }
    rc = serve(lfd);
    close(lfd);
    if (local != NULL)
        unlink(local);
    return rc == 0 ? 0 : 1;
}
