/* SPDX-License-Identifier: MIT */
/*
 * sn_sock.c: stream sockets, TCP and local (Unix-domain): connect with one
 * deadline over every resolved address, listen (for local paths: a stale
 * socket file reclaimed, the file's mode, unlinked on close), accept,
 * options through one table, state, peer credentials, half-close.
 *
 * Every descriptor is non-blocking and close-on-exec from birth.
 */
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "sn_sock_int.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

#define BACKLOG_DEFAULT 511

/* ---- options: the engine of sn_sockopt.c ------------------------------------ */

static bool is_listening(const void *sock)
{
    return ((const sn_sock *)sock)->state == SN_SOCK_LISTENING;
}

/* sn_sock to the option engine. */
static const sn__optkind tcp_opts = {
    .kind = SN__OPT_TCP,
    .fd = offsetof(sn_sock, fd),
    .family = offsetof(sn_sock, family),
    .listening = is_listening,
    .kept = {[SN__KEPT_READ_TIMEOUT] = offsetof(sn_sock, read_timeout_ms),
             [SN__KEPT_WRITE_TIMEOUT] = offsetof(sn_sock, write_timeout_ms),
             [SN__KEPT_CONNECT_TIMEOUT] = offsetof(sn_sock, connect_timeout_ms)},
};

/* A listener changed after listen no longer matches its accept_opt:
 * accepted sockets get accept_opt set one by one from now on. */
static void options_changed(sn_sock *s)
{
    atomic_store_explicit(&s->inherits, -1, memory_order_relaxed);
}

int sn_sock_set_option(sn_sock *s, int opt, int value)
{
    int rc = sn__opt_set(&tcp_opts, s, opt, value);
    if (rc == 0)
        options_changed(s);
    return rc;
}

int sn_sock_get_option(const sn_sock *s, int opt, int *value)
{
    return sn__opt_get(&tcp_opts, s, opt, value);
}

int sn_sock_apply_options(sn_sock *s, const sn_sock_options *opt)
{
    int rc = sn__opt_apply(&tcp_opts, s, opt);
    if (rc > 0 || (rc < 0 && s != NULL))
        options_changed(s); /* after an error, some may have been set */
    return SN_MIN(rc, 0);
}

/* ---- creating and wrapping ------------------------------------------------- */

int sn__sock_wrap(sn_sock **out, int fd, int state, int family)
{
    sn_sock *s = sn__calloc(1, sizeof *s);
    if (s == NULL)
        return SN_ENOMEM;
    s->fd = fd;
    s->state = state;
    s->family = family;
    s->read_timeout_ms = SN__READ_TIMEOUT_DEFAULT;
    s->write_timeout_ms = SN__WRITE_TIMEOUT_DEFAULT;
    s->connect_timeout_ms = SN__CONNECT_TIMEOUT_DEFAULT;
    s->rcvtimeo_ms = -1;
    *out = s;
    return 0;
}

/* A new stream socket of the address's family (TCP, or local), wrapped. */
static int sock_open(sn_sock **out, int family)
{
    int proto = family == AF_UNIX ? 0 : IPPROTO_TCP;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (fd < 0)
        return -errno;
    int rc = sn__sock_wrap(out, fd, SN_SOCK_OPEN, family);
    if (rc < 0)
        close(fd);
    return rc;
}

/* The options as the library applies them to sockets of a family it
 * creates: on TCP, NODELAY on unless turned off. */
static sn_sock_options effective_options(const sn_sock_options *opt, int family)
{
    sn_sock_options o = {0};
    if (opt != NULL)
        o = *opt;
    if (o.nodelay == 0 && family != AF_UNIX)
        o.nodelay = SN_ON;
    return o;
}

/* ---- connect --------------------------------------------------------------- */

/* A local connect: done at once, or refused at once, or EAGAIN while the
 * listener's backlog is full. The kernel offers nothing to poll for then
 * (a blocking connect waits inside it), so this tries again after a pause
 * that doubles up to 50 ms, until the deadline. */
static int connect_local(int fd, const sn_addr *addr, int64_t deadline)
{
    int64_t pause = 1;
    for (;;) {
        if (connect(fd, &addr->u.sa, addr->len) == 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        int64_t now = sn_now_ms();
        if (now >= deadline)
            return SN_ETIMEDOUT;
        sn_sleep_ms(SN_MIN(pause, deadline - now));
        pause = SN_MIN(pause * 2, 50);
    }
}

/* Starts a non-blocking connect and waits for it until the deadline. */
static int connect_wait(int fd, const sn_addr *addr, int64_t deadline)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (addr->u.sa.sa_family == AF_UNIX)
        return connect_local(fd, addr, deadline);
    if (connect(fd, &addr->u.sa, addr->len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    int rc = sn__wait_fd(fd, POLLOUT, deadline);
    if (rc < 0)
        return rc;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

/* What a connect tries each address with. */
struct connect_try {
    sn_sock **out;
    const sn_sock_options *opt;
    int64_t deadline;
    int bind;               /* enum bind_kind */
    sn_addr bind_to;        /* with BIND_ADDR */
    sn__connect_gate *gate; /* or NULL */
};

/* What a client binds before it connects (opt's bind_host, bind_port). */
enum bind_kind {
    BIND_NONE, /* neither is set */
    BIND_ANY,  /* the port alone, on the any-address of each address's family */
    BIND_ADDR, /* bind_to, for the addresses of its family */
};

/* Reads opt's bind fields into t: 0, or SN_EBADADDR. */
static int bind_prepare(struct connect_try *t, const sn_sock_options *opt)
{
    t->bind = BIND_NONE;
    if (opt == NULL || !sn__opt_binds(opt))
        return 0;
    if (opt->bind_port < 0 || opt->bind_port > 65535)
        return SN_EBADADDR;
    t->bind = opt->bind_host == NULL ? BIND_ANY : BIND_ADDR;
    if (t->bind == BIND_ANY)
        return 0;
    if (strncmp(opt->bind_host, "unix:", 5) == 0)
        return opt->bind_port != 0 ? SN_EBADADDR
                                   : sn_addr_from_path(&t->bind_to, opt->bind_host + 5);
    return *opt->bind_host == '\0' ? SN_EBADADDR
                                   : sn_addr_from_ip(&t->bind_to, opt->bind_host, opt->bind_port);
}

/* Binds s, about to connect to addr, as t says. 0 or -errno. */
static int bind_local(sn_sock *s, const struct connect_try *t, const sn_addr *addr)
{
    sn_addr any = {0};
    const sn_addr *to = &t->bind_to;
    if (t->bind == BIND_NONE)
        return 0;
    if (t->bind == BIND_ANY) {
        int port = t->opt->bind_port;
        int rc = addr->u.sa.sa_family == AF_INET6  ? sn_addr_from_ip(&any, "::", port)
                 : addr->u.sa.sa_family == AF_INET ? sn_addr_from_ip(&any, "0.0.0.0", port)
                                                   : SN_EBADADDR; /* a port for a local client */
        if (rc < 0)
            return rc;
        to = &any;
    }
    if (bind(s->fd, &to->u.sa, to->len) < 0)
        return -errno;
    s->state = SN_SOCK_BOUND;
    return 0;
}

/* Publishes s as the socket being connected: 0, or SN_ECANCELED. */
static int gate_enter(sn__connect_gate *g, sn_sock *s)
{
    if (g == NULL)
        return 0;
    sn__mutex_lock(&g->mu);
    bool canceled = g->canceled;
    if (!canceled)
        g->sock = s;
    sn__mutex_unlock(&g->mu);
    return canceled ? SN_ECANCELED : 0;
}

/* The connect is over: whether it was cancelled meanwhile. */
static bool gate_leave(sn__connect_gate *g)
{
    if (g == NULL)
        return false;
    sn__mutex_lock(&g->mu);
    g->sock = NULL;
    bool canceled = g->canceled;
    sn__mutex_unlock(&g->mu);
    return canceled;
}

void sn__connect_gate_init(sn__connect_gate *g)
{
    sn__mutex_init(&g->mu);
    g->sock = NULL;
    g->canceled = false;
}

void sn__connect_gate_destroy(sn__connect_gate *g)
{
    sn__mutex_destroy(&g->mu);
}

void sn__connect_gate_cancel(sn__connect_gate *g)
{
    sn__mutex_lock(&g->mu);
    g->canceled = true;
    if (g->sock != NULL)
        sn_sock_cancel(g->sock); /* wakes the wait for the connect */
    sn__mutex_unlock(&g->mu);
}

static int connect_one(const sn_addr *addr, void *arg)
{
    struct connect_try *t = arg;
    sn_sock *s;
    sn_sock_options o = effective_options(t->opt, addr->u.sa.sa_family);
    int rc = sock_open(&s, addr->u.sa.sa_family);
    if (rc < 0)
        return rc;
    if ((rc = sn_sock_apply_options(s, &o)) < 0 || (rc = bind_local(s, t, addr)) < 0)
        goto fail;
    if ((rc = gate_enter(t->gate, s)) < 0)
        goto fail;
    rc = connect_wait(s->fd, addr, t->deadline);
    if (gate_leave(t->gate))
        rc = SN_ECANCELED;
    if (rc < 0)
        goto fail;
    s->state = SN_SOCK_CONNECTED;
    *t->out = s;
    return 0;
fail:
    sn_sock_free(s);
    return rc;
}

/* Tries each address in turn within one deadline, dl or the connect
 * timeout of opt; the last error wins. */
static int connect_list(sn_sock **out, const sn_addr *addrs, int n, const sn_sock_options *opt,
                        sn_deadline dl, sn__connect_gate *gate)
{
    struct connect_try t = {.out = out, .opt = opt, .gate = gate};
    int ms = opt != NULL ? opt->connect_timeout_ms : 0;
    if (ms < SN_TIMEOUT_NEVER)
        return SN_EINVAL;
    int rc = bind_prepare(&t, opt);
    if (rc < 0)
        return rc;
    sn_addr same[SN__CONNECT_MAX_ADDRS]; /* with a bind address: the addresses of its family */
    if (t.bind == BIND_ADDR) {
        int kept = 0;
        for (int i = 0; i < n; i++)
            if (addrs[i].u.sa.sa_family == t.bind_to.u.sa.sa_family)
                same[kept++] = addrs[i];
        if (kept == 0)
            return SN_EAFNOSUPPORT;
        addrs = same;
        n = kept;
    }
    t.deadline = sn__deadline_abs(dl, ms == 0 ? SN__CONNECT_TIMEOUT_DEFAULT : ms);
    return sn__try_each(addrs, n, connect_one, &t);
}

int sn_tcp_connect(sn_sock **out, const char *host, int port, const sn_sock_options *opt,
                   sn_deadline dl)
{
    return sn__tcp_connect_gated(out, host, port, opt, dl, NULL);
}

int sn__tcp_connect_gated(sn_sock **out, const char *host, int port, const sn_sock_options *opt,
                          sn_deadline dl, sn__connect_gate *g)
{
    sn_addr addrs[SN__CONNECT_MAX_ADDRS];
    if (out == NULL)
        return SN_EINVAL;
    int n = sn__resolve_peer(host, port, addrs, SN_ARRAY_SIZE(addrs));
    return n < 0 ? n : connect_list(out, addrs, n, opt, dl, g);
}

int sn_tcp_connect_addr(sn_sock **out, const sn_addr *addr, const sn_sock_options *opt,
                        sn_deadline dl)
{
    if (out == NULL || sn_addr_family(addr) == 0)
        return SN_EINVAL;
    return connect_list(out, addr, 1, opt, dl, NULL);
}

/* ---- listen and accept ----------------------------------------------------- */

/* What a listener applies before bind: REUSEADDR on by default, V6ONLY as
 * configured (on by default), and every option except FASTOPEN, which
 * means a queue length only once the socket listens. */
static int listen_prepare(sn_sock *s, const sn_listen_config *cfg)
{
    sn_sock_options o = effective_options(&cfg->opt, s->family);
    int rc;
    if (cfg->v6only != 0 && cfg->v6only != SN_ON && cfg->v6only != SN_OFF)
        return SN_EINVAL;
    if (sn__opt_binds(&o))
        return SN_EINVAL; /* a client's fields: a listener binds host and port */
    if (o.reuseaddr == 0 && s->family != AF_UNIX)
        o.reuseaddr = SN_ON;
    o.fastopen = 0;
    if ((rc = sn_sock_apply_options(s, &o)) < 0)
        return rc;
    if (s->family == AF_INET6)
        rc = sn_sock_set_option(s, SN_OPT_V6ONLY, cfg->v6only != SN_OFF);
    return rc;
}

/* ---- local listeners: stale files, mode, unlink on close ------------------ */

/* Whether a local address names a file (not an abstract name). */
static bool local_is_path(const sn_addr *addr)
{
    return addr->u.sa.sa_family == AF_UNIX && addr->u.un.sun_path[0] != '\0';
}

/* bind() found something at a local path. A socket nobody listens on (a
 * connect is refused: its server died without unlinking it) is removed, and
 * 0 says "bind again". A live one (the connect is accepted or queued, or
 * cannot be tried) gives SN_EADDRINUSE; a file that is not a socket,
 * SN_EEXIST. Nothing but a stale socket is ever removed. */
static int local_reclaim(const sn_addr *addr)
{
    struct stat st;
    const char *path = addr->u.un.sun_path;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno; /* gone meanwhile: bind again */
    if (!S_ISSOCK(st.st_mode))
        return SN_EEXIST;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int err = connect(fd, &addr->u.sa, addr->len) < 0 ? errno : 0;
    close(fd);
    if (err == ENOENT)
        return 0;
    if (err != ECONNREFUSED)
        return SN_EADDRINUSE;
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* The path to remember for removal: made absolute if it is relative, so a
 * later chdir does not send the removal elsewhere. NULL: no memory. */
static char *local_abs_path(const char *path)
{
    char cwd[4096];
    if (path[0] == '/' || getcwd(cwd, sizeof cwd) == NULL)
        return sn__strdup(path); /* a cwd too long to hold: the path as given */
    size_t n = strlen(cwd), m = strlen(path);
    char *p = sn__malloc(n + m + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, cwd, n);
    p[n] = '/';
    memcpy(p + n + 1, path, m + 1);
    return p;
}

/* Binds a local address: a stale socket file is reclaimed once; the file
 * gets cfg->mode and is remembered (absolute path, device, inode), so that
 * closing the listener removes it, and only it. */
static int local_bind(sn_sock *s, const sn_addr *addr, const sn_listen_config *cfg)
{
    int rc = bind(s->fd, &addr->u.sa, addr->len) < 0 ? -errno : 0;
    if (rc == SN_EADDRINUSE && local_is_path(addr) && (rc = local_reclaim(addr)) == 0)
        rc = bind(s->fd, &addr->u.sa, addr->len) < 0 ? -errno : 0;
    if (rc < 0 || !local_is_path(addr))
        return rc;
    struct stat st;
    const char *path = addr->u.un.sun_path;
    if (lstat(path, &st) < 0)
        return -errno; /* removed meanwhile: not ours to unlink */
    if ((s->path = local_abs_path(path)) == NULL) {
        unlink(path);
        return SN_ENOMEM;
    }
    s->path_dev = st.st_dev;
    s->path_ino = st.st_ino;
    if (cfg->mode != 0 && chmod(path, (mode_t)cfg->mode) < 0)
        return -errno;
    return 0;
}

/* Removes a listener's socket file if it is still the one it bound (a
 * successor may have replaced it). */
static void local_unlink(sn_sock *s)
{
    struct stat st;
    if (s->path == NULL)
        return;
    if (lstat(s->path, &st) == 0 && st.st_dev == s->path_dev && st.st_ino == s->path_ino)
        unlink(s->path);
    sn__free(s->path);
    s->path = NULL;
}

/* Binds and listens; then FASTOPEN, which needs a listening socket. */
static int listen_bind(sn_sock *s, const sn_addr *addr, const sn_listen_config *cfg)
{
    int backlog = cfg->backlog != 0 ? cfg->backlog : BACKLOG_DEFAULT;
    if (addr->u.sa.sa_family == AF_UNIX) {
        int rc = local_bind(s, addr, cfg);
        if (rc < 0)
            return rc;
    } else if (bind(s->fd, &addr->u.sa, addr->len) < 0) {
        return -errno;
    }
    s->state = SN_SOCK_BOUND;
    if (listen(s->fd, backlog) < 0)
        return -errno;
    s->state = SN_SOCK_LISTENING;
    if (cfg->opt.fastopen == 0)
        return 0;
    int qlen = cfg->opt.fastopen == SN_OFF ? 0 : cfg->opt.fastopen;
    return sn_sock_set_option(s, SN_OPT_FASTOPEN, qlen);
}

/* The options accepted sockets get: the listener's, less what only a
 * listener uses. */
static sn_sock_options accepted_options(const sn_sock_options *opt, int family)
{
    sn_sock_options o = effective_options(opt, family);
    o.reuseaddr = 0;
    o.reuseport = 0;
    o.fastopen = 0;
    return o;
}

/* A descriptor's SO_RCVTIMEO in ms (0 = none), or -errno. */
static int rcvtimeo_of(int fd)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) < 0)
        return -errno;
    return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

/* Gives the listener the SO_RCVTIMEO its accepted sockets' connections will
 * want for a read with the default timeout (see sn_transport.c), so that
 * they inherit it rather than set it each. No effect on accept itself: the
 * listener is non-blocking. */
static int listen_rcvtimeo(sn_sock *s)
{
    int t = s->accept_opt.read_timeout_ms;
    if (t == 0)
        t = SN__READ_TIMEOUT_DEFAULT;
    int want = t > 0 ? t - t / 4 : 0;
    struct timeval tv = {.tv_sec = want / 1000, .tv_usec = (want % 1000) * 1000};
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return -errno;
    int got = rcvtimeo_of(s->fd); /* the kernel rounds it to its ticks */
    if (got < 0)
        return got;
    s->rcvtimeo_ms = got;
    return 0;
}

int sn_tcp_listen(sn_sock **out, const sn_listen_config *cfg)
{
    sn_addr addr;
    sn_sock *s;
    if (out == NULL || cfg == NULL || cfg->backlog < 0 || cfg->mode > 07777)
        return SN_EINVAL;
    int rc = sn_resolve(cfg->host, cfg->port, SN_AF_ANY, &addr, 1);
    if (rc < 0)
        return rc;
    if (cfg->mode != 0 && !local_is_path(&addr))
        return SN_EINVAL; /* only a file has a mode */
    if ((rc = sock_open(&s, addr.u.sa.sa_family)) < 0)
        return rc;
    if ((rc = listen_prepare(s, cfg)) < 0 || (rc = listen_bind(s, &addr, cfg)) < 0)
        goto fail;
    s->accept_opt = accepted_options(&cfg->opt, s->family);
    if ((rc = listen_rcvtimeo(s)) < 0)
        goto fail;
    atomic_store(&s->inherits, 0); /* set-up done: the first accept checks */
    *out = s;
    return 0;
fail:
    sn_sock_free(s);
    return rc;
}

/* Whether the kernel gave an accepted socket every option of its listener:
 * each option accept_opt sets reads the same from both, and so does
 * SO_RCVTIMEO. */
static bool options_inherited(const sn_sock *listener, const sn_sock *s)
{
    return sn__opt_inherited(&tcp_opts, listener, s, &listener->accept_opt) &&
           rcvtimeo_of(s->fd) == listener->rcvtimeo_ms;
}

/* Gives an accepted socket its listener's options. The first accept checks
 * whether the kernel copied them already (Linux does); if so, later accepts
 * skip the setsockopt calls and only copy the timeouts, which live here. */
static int accepted_setup(sn_sock *listener, sn_sock *s)
{
    int inherits = atomic_load_explicit(&listener->inherits, memory_order_relaxed);
    if (inherits == 0) {
        inherits = options_inherited(listener, s) ? 1 : -1;
        atomic_store_explicit(&listener->inherits, inherits, memory_order_relaxed);
    }
    if (inherits < 0)
        return sn_sock_apply_options(s, &listener->accept_opt);
    const sn_sock_options *o = &listener->accept_opt;
    sn_sock_options timeouts = {.read_timeout_ms = o->read_timeout_ms,
                                .write_timeout_ms = o->write_timeout_ms,
                                .connect_timeout_ms = o->connect_timeout_ms};
    s->rcvtimeo_ms = listener->rcvtimeo_ms;
    return sn_sock_apply_options(s, &timeouts);
}

/* accept4 once: a new descriptor, SN_EAGAIN, or -errno. */
static int accept_fd(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return SN_EAGAIN;
        if (errno != EINTR)
            return -errno;
    }
}

int sn__sock_accept_now(sn_sock *listener, sn_sock **out)
{
    sn_sock *s;
    if (listener == NULL || out == NULL)
        return SN_EINVAL;
    if (listener->fd < 0 || listener->state != SN_SOCK_LISTENING)
        return SN_EBADSTATE;
    int fd = accept_fd(listener->fd);
    if (fd < 0)
        return fd;
    int rc = sn__sock_wrap(&s, fd, SN_SOCK_CONNECTED, listener->family);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    s->blocking = true;
    if ((rc = accepted_setup(listener, s)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    sn_sock_free(s);
    return rc;
}

int sn_sock_accept(sn_sock *listener, sn_sock **out, sn_deadline dl)
{
    int64_t deadline = sn__deadline_abs(dl, -1);
    if (listener == NULL || out == NULL)
        return SN_EINVAL;
    for (;;) {
        if (atomic_load(&listener->canceled))
            return SN_ECANCELED;
        int rc = sn__sock_accept_now(listener, out);
        if (rc != SN_EAGAIN)
            return rc < 0 && atomic_load(&listener->canceled) ? SN_ECANCELED : rc;
        if ((rc = sn__wait_fd(listener->fd, POLLIN, deadline)) < 0)
            return rc;
    }
}

/* ---- adopting a descriptor ------------------------------------------------- */

/* The state a socket descriptor is in, and its family. */
static int fd_state(int fd, int *state, int *family)
{
    sn_addr local, peer;
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
        return -errno;
    int rc = sn__sock_name(fd, &local, false);
    if (rc < 0)
        return rc;
    *family = local.u.sa.sa_family;
    bool named = *family == AF_UNIX ? local.len > offsetof(struct sockaddr_un, sun_path)
                                    : sn_addr_port(&local) > 0;
    if (listening)
        *state = SN_SOCK_LISTENING;
    else if (sn__sock_name(fd, &peer, true) == 0)
        *state = SN_SOCK_CONNECTED;
    else
        *state = named ? SN_SOCK_BOUND : SN_SOCK_OPEN;
    return 0;
}

int sn_sock_from_fd(sn_sock **out, int fd)
{
    int state, family;
    if (out == NULL)
        return SN_EINVAL;
    int rc = fd_state(fd, &state, &family);
    if (rc == 0)
        rc = sn__fd_nonblock_cloexec(fd);
    if (rc == 0)
        rc = sn__sock_wrap(out, fd, state, family);
    return rc;
}

/* ---- state, addresses, closing ------------------------------------------- */

const char *sn_sock_state_name(int state)
{
    static const char *const names[] = {
        [SN_SOCK_CLOSED] = "closed",       [SN_SOCK_OPEN] = "open",
        [SN_SOCK_BOUND] = "bound",         [SN_SOCK_LISTENING] = "listening",
        [SN_SOCK_CONNECTED] = "connected", [SN_SOCK_PEER_CLOSED] = "peer closed",
    };
    if (state < 0 || (size_t)state >= SN_ARRAY_SIZE(names))
        return "unknown";
    return names[state];
}

bool sn__opt_binds(const sn_sock_options *o)
{
    return o->bind_host != NULL || o->bind_port != 0;
}

int sn_sock_cancel(sn_sock *s)
{
    if (s == NULL)
        return SN_EINVAL;
    return sn__sock_cancel(&s->canceled, &s->fd);
}

void sn__sock_peer_closed(sn_sock *s)
{
    int connected = SN_SOCK_CONNECTED;
    atomic_compare_exchange_strong(&s->state, &connected, SN_SOCK_PEER_CLOSED);
}

int sn_sock_get_state(const sn_sock *s)
{
    return s != NULL && s->fd >= 0 ? s->state : SN_SOCK_CLOSED;
}

int sn_sock_fd(const sn_sock *s)
{
    return s != NULL ? s->fd : -1;
}

int sn_sock_local_addr(const sn_sock *s, sn_addr *out)
{
    if (s == NULL)
        return SN_EINVAL;
    return sn__sock_name(s->state != SN_SOCK_OPEN ? s->fd : -1, out, false); /* open: none yet */
}

int sn_sock_remote_addr(const sn_sock *s, sn_addr *out)
{
    return s != NULL ? sn__sock_name(s->fd, out, true) : SN_EINVAL;
}

int sn_sock_peer_cred(const sn_sock *s, sn_peer_cred *out)
{
    struct ucred uc;
    socklen_t len = sizeof uc;
    if (s == NULL || out == NULL)
        return SN_EINVAL;
    if (s->fd < 0)
        return SN_EBADSTATE;
    if (s->family != AF_UNIX)
        return SN_ENOPROTOOPT;
    int state = s->state;
    if (state != SN_SOCK_CONNECTED && state != SN_SOCK_PEER_CLOSED)
        return SN_ENOTCONN;
    if (getsockopt(s->fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
        return -errno;
    *out = (sn_peer_cred){.pid = uc.pid, .uid = uc.uid, .gid = uc.gid};
    return 0;
}

int sn_sock_shutdown_write(sn_sock *s)
{
    if (s == NULL)
        return SN_EINVAL;
    if (s->fd < 0)
        return SN_EBADSTATE;
    if (s->state == SN_SOCK_LISTENING)
        return SN_ENOTCONN; /* Linux would accept and ignore it */
    return shutdown(s->fd, SHUT_WR) < 0 ? -errno : 0;
}

int sn_sock_close(sn_sock *s)
{
    if (s == NULL || s->fd < 0)
        return 0;
    local_unlink(s); /* while the descriptor still holds the name */
    int rc = sn__sock_close_fd(&s->fd);
    s->state = SN_SOCK_CLOSED;
    return rc;
}

void sn_sock_free(sn_sock *s)
{
    if (s == NULL)
        return;
    sn_sock_close(s);
    sn__free(s);
}
