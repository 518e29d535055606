/* SPDX-License-Identifier: MIT */
/*
 * sn_udp.c: UDP sockets: bind, connect, send to, receive from (truncation
 * reported through MSG_TRUNC), batches through recvmmsg / sendmmsg,
 * options through one table, multicast membership, state.
 *
 * Every descriptor is non-blocking and close-on-exec from birth, and every
 * call that must not wait passes MSG_DONTWAIT. A receive that must wait
 * blocks in recvmsg, bounded by SO_RCVTIMEO (sn__rcvtimeo_until), once the
 * descriptor has been switched to blocking mode: one system call per
 * datagram instead of poll + recvmsg, as on TCP (sn_transport.c). On a
 * fiber it waits through sn__wait_fd instead, which parks the fiber.
 * Sends wait (rarely: only a full send buffer makes them) through
 * sn__wait_fd.
 */
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_sock_int.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

#define BATCH_CHUNK 64 /* mmsghdrs on the stack per system call */

struct sn_udp {
    int fd;           /* -1 once closed */
    atomic_int state; /* sn_sock_state; a send may move it from open to bound */
    int family;       /* AF_INET / AF_INET6 */
    bool blocking;    /* the descriptor is in blocking mode (for receives) */
    int rcvtimeo_ms;  /* SO_RCVTIMEO as set: 0 none, -1 unknown */
    int read_timeout_ms, write_timeout_ms; /* resolved: ms, -1 never */
    int mcast_if;                          /* SN_UDP_OPT_MULTICAST_IF as set */
    sn_addr bound;                         /* what sn_udp_bind bound, with the port it got; empty if
                                              the socket was never bound explicitly */
    atomic_bool canceled;                  /* sn_udp_cancel: every call fails at once */
};

/* SN_ECANCELED once sn_udp_cancel ran, else 0. */
static int canceled(const sn_udp *u)
{
    return atomic_load(&u->canceled) ? SN_ECANCELED : 0;
}

/* ---- options: the engine of sn_sockopt.c ------------------------------------ */

/* sn_udp to the option engine. */
static const sn__optkind udp_opts = {
    .kind = SN__OPT_UDP,
    .fd = offsetof(sn_udp, fd),
    .family = offsetof(sn_udp, family),
    .kept = {[SN__KEPT_READ_TIMEOUT] = offsetof(sn_udp, read_timeout_ms),
             [SN__KEPT_WRITE_TIMEOUT] = offsetof(sn_udp, write_timeout_ms),
             [SN__KEPT_MCAST_IF] = offsetof(sn_udp, mcast_if)},
};

int sn_udp_set_option(sn_udp *u, int opt, int value)
{
    return sn__opt_set(&udp_opts, u, opt, value);
}

int sn_udp_get_option(const sn_udp *u, int opt, int *value)
{
    return sn__opt_get(&udp_opts, u, opt, value);
}

int sn_udp_apply_options(sn_udp *u, const sn_udp_options *opt)
{
    return SN_MIN(sn__opt_apply(&udp_opts, u, opt), 0);
}

/* ---- creating ---------------------------------------------------------------- */

/* A new UDP socket of an address family, with opt applied. */
static int udp_new(sn_udp **out, int family, const sn_udp_options *opt)
{
    if (family == AF_UNIX)
        return SN_EAFNOSUPPORT; /* "unix:..." names a local stream socket */
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0)
        return -errno;
    sn_udp *u = sn__calloc(1, sizeof *u);
    if (u == NULL) {
        close(fd);
        return SN_ENOMEM;
    }
    u->fd = fd;
    atomic_init(&u->state, SN_SOCK_OPEN);
    u->family = family;
    u->read_timeout_ms = SN__READ_TIMEOUT_DEFAULT;
    u->write_timeout_ms = SN__WRITE_TIMEOUT_DEFAULT;
    int rc = opt != NULL ? sn_udp_apply_options(u, opt) : 0;
    if (rc < 0) {
        sn_udp_free(u);
        return rc;
    }
    *out = u;
    return 0;
}

int sn_udp_open(sn_udp **out, int family, const sn_udp_options *opt)
{
    int af = sn__af_of(family);
    if (out == NULL || af < 0)
        return SN_EINVAL;
    return udp_new(out, af == AF_UNSPEC ? AF_INET : af, opt); /* a socket needs one: IPv4 */
}

int sn_udp_bind(sn_udp **out, const sn_udp_config *cfg)
{
    static const sn_udp_config defaults;
    sn_addr addr, local = {0};
    socklen_t len = sizeof local.u;
    sn_udp *u;
    if (cfg == NULL)
        cfg = &defaults;
    if (out == NULL || (cfg->v6only != 0 && cfg->v6only != SN_ON && cfg->v6only != SN_OFF))
        return SN_EINVAL;
    int rc = sn_resolve(cfg->host, cfg->port, SN_AF_ANY, &addr, 1);
    if (rc < 0)
        return rc;
    if ((rc = udp_new(&u, addr.u.sa.sa_family, &cfg->opt)) < 0)
        return rc;
    if (u->family == AF_INET6 &&
        (rc = sn_udp_set_option(u, SN_UDP_OPT_V6ONLY, cfg->v6only != SN_OFF)) < 0)
        goto fail;
    if (bind(u->fd, &addr.u.sa, addr.len) < 0 || getsockname(u->fd, &local.u.sa, &len) < 0) {
        rc = -errno;
        goto fail;
    }
    local.len = len;
    u->bound = addr;
    sn_addr_set_port(&u->bound, sn_addr_port(&local));
    atomic_store(&u->state, SN_SOCK_BOUND);
    *out = u;
    return 0;
fail:
    sn_udp_free(u);
    return rc;
}

/* An IPv4 address as the IPv4-mapped IPv6 address ::ffff:a.b.c.d. */
static void map_v4(const sn_addr *in, sn_addr *out)
{
    memset(out, 0, sizeof *out);
    out->u.in6.sin6_family = AF_INET6;
    out->u.in6.sin6_port = in->u.in4.sin_port;
    out->u.in6.sin6_addr.s6_addr[10] = 0xff;
    out->u.in6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&out->u.in6.sin6_addr.s6_addr[12], &in->u.in4.sin_addr, 4);
    out->len = sizeof out->u.in6;
}

/* The address to hand the kernel for this socket: IPv4 ones are mapped on
 * an IPv6 socket (a dual-stack one reaches them so; an IPv6-only one
 * reports the network unreachable). */
static const sn_addr *for_socket(const sn_udp *u, const sn_addr *a, sn_addr *tmp)
{
    if (u->family != AF_INET6 || sn_addr_family(a) != SN_AF_INET)
        return a;
    map_v4(a, tmp);
    return tmp;
}

/* Dissolves the association. Linux then drops a local port it picked at
 * bind (port 0), so a socket sn_udp_bind bound is bound again to the same
 * address and port: its port stays what the caller read. */
static int disconnect(sn_udp *u)
{
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    sn_addr a = {0};
    socklen_t len = sizeof a.u;
    if (connect(u->fd, &unspec, sizeof unspec) < 0 || getsockname(u->fd, &a.u.sa, &len) < 0)
        return -errno;
    a.len = len;
    if (sn_addr_port(&a) > 0) {
        atomic_store(&u->state, SN_SOCK_BOUND);
        return 0;
    }
    atomic_store(&u->state, SN_SOCK_OPEN);
    if (u->bound.len == 0)
        return 0; /* bound by the kernel on a send or connect: it picks again */
    if (bind(u->fd, &u->bound.u.sa, u->bound.len) < 0)
        return -errno;
    atomic_store(&u->state, SN_SOCK_BOUND);
    return 0;
}

int sn_udp_set_peer(sn_udp *u, const sn_addr *peer)
{
    sn_addr tmp;
    if (u == NULL)
        return SN_EINVAL;
    if (u->fd < 0)
        return SN_EBADSTATE;
    if (sn_addr_family(peer) == 0)
        return disconnect(u);
    const sn_addr *a = for_socket(u, peer, &tmp);
    if (u->family == AF_INET && sn_addr_family(a) != SN_AF_INET)
        return SN_EAFNOSUPPORT;
    if (connect(u->fd, &a->u.sa, a->len) < 0)
        return -errno;
    atomic_store(&u->state, SN_SOCK_CONNECTED);
    return 0;
}

/* What a connect tries each address with. */
struct connect_try {
    sn_udp **out;
    const sn_udp_options *opt;
};

static int connect_one(const sn_addr *addr, void *arg)
{
    struct connect_try *t = arg;
    sn_udp *u;
    int rc = udp_new(&u, addr->u.sa.sa_family, t->opt);
    if (rc < 0)
        return rc;
    if ((rc = sn_udp_set_peer(u, addr)) < 0) {
        sn_udp_free(u);
        return rc;
    }
    *t->out = u;
    return 0;
}

int sn_udp_connect(sn_udp **out, const char *host, int port, const sn_udp_options *opt)
{
    sn_addr addrs[SN__CONNECT_MAX_ADDRS];
    struct connect_try t = {.out = out, .opt = opt};
    int n = out != NULL ? sn__resolve_peer(host, port, addrs, SN_ARRAY_SIZE(addrs)) : SN_EINVAL;
    return n < 0 ? n : sn__try_each(addrs, n, connect_one, &t);
}

/* ---- sending ------------------------------------------------------------------ */

/* A successful send binds an open socket (the kernel picks a port). */
static void note_sent(sn_udp *u)
{
    int open = SN_SOCK_OPEN;
    if (atomic_load_explicit(&u->state, memory_order_relaxed) == SN_SOCK_OPEN)
        atomic_compare_exchange_strong(&u->state, &open, SN_SOCK_BOUND);
}

/* A send error as the caller should see it. */
static int send_error(int err)
{
    return err == EDESTADDRREQ ? SN_ENOTCONN : -err;
}

/* Fills a msghdr for one datagram to `to` (NULL or empty: the peer). */
static void msg_for_send(const sn_udp *u, struct msghdr *m, struct iovec *iov, const void *buf,
                         size_t len, const sn_addr *to, sn_addr *tmp)
{
    *iov = (struct iovec){.iov_base = (void *)buf, .iov_len = len};
    *m = (struct msghdr){.msg_iov = iov, .msg_iovlen = 1};
    if (sn_addr_family(to) != 0) {
        const sn_addr *a = for_socket(u, to, tmp);
        m->msg_name = (void *)&a->u.sa;
        m->msg_namelen = a->len;
    }
}

ssize_t sn_udp_send_to(sn_udp *u, const void *buf, size_t len, const sn_addr *to, sn_deadline dl)
{
    struct msghdr m;
    struct iovec iov;
    sn_addr tmp;
    if (u == NULL || (buf == NULL && len > 0))
        return SN_EINVAL;
    if (u->fd < 0)
        return SN_EBADSTATE;
    int64_t deadline = sn__deadline_abs(dl, u->write_timeout_ms);
    msg_for_send(u, &m, &iov, buf, len, to, &tmp);
    for (;;) {
        int rc = canceled(u);
        if (rc < 0)
            return rc;
        ssize_t n = sendmsg(u->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            note_sent(u);
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return send_error(errno);
        if ((rc = sn__wait_fd(u->fd, POLLOUT, deadline)) < 0)
            return rc;
    }
}

ssize_t sn_udp_send(sn_udp *u, const void *buf, size_t len, sn_deadline dl)
{
    if (u != NULL && u->fd >= 0 && atomic_load(&u->state) != SN_SOCK_CONNECTED)
        return SN_ENOTCONN;
    return sn_udp_send_to(u, buf, len, NULL, dl);
}

/* sendmmsg of up to BATCH_CHUNK messages without waiting: the number sent,
 * SN_EAGAIN, or an error. */
static int send_chunk(sn_udp *u, const sn_udp_msg *msgs, int n)
{
    struct mmsghdr mm[BATCH_CHUNK];
    struct iovec iov[BATCH_CHUNK];
    sn_addr tmp[BATCH_CHUNK];
    for (int i = 0; i < n; i++) {
        msg_for_send(u, &mm[i].msg_hdr, &iov[i], msgs[i].buf, msgs[i].len, &msgs[i].addr, &tmp[i]);
        mm[i].msg_len = 0;
    }
    for (;;) {
        int k = sendmmsg(u->fd, mm, (unsigned)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k >= 0)
            return k;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? SN_EAGAIN : send_error(errno);
    }
}

int sn_udp_send_batch(sn_udp *u, const sn_udp_msg *msgs, int n, sn_deadline dl)
{
    if (u == NULL || msgs == NULL || n < 1)
        return SN_EINVAL;
    if (u->fd < 0)
        return SN_EBADSTATE;
    n = SN_MIN(n, SN_UDP_BATCH_MAX);
    for (int i = 0; i < n; i++)
        if (msgs[i].buf == NULL && msgs[i].len > 0)
            return SN_EINVAL;
    int64_t deadline = sn__deadline_abs(dl, u->write_timeout_ms);
    int sent = 0;
    while (sent < n) {
        int k = canceled(u);
        if (k == 0)
            k = send_chunk(u, msgs + sent, SN_MIN(n - sent, BATCH_CHUNK));
        if (k > 0) {
            note_sent(u);
            sent += k;
            continue;
        }
        if (k == SN_EAGAIN)
            k = sn__wait_fd(u->fd, POLLOUT, deadline);
        if (k < 0)
            return sent > 0 && k != SN_ECANCELED ? sent : k;
    }
    return sent;
}

/* ---- receiving ---------------------------------------------------------------- */

/* Puts the descriptor in blocking mode (once), so that a receive can wait
 * in the kernel; every other call passes MSG_DONTWAIT anyway. */
static int make_blocking(sn_udp *u)
{
    int off = 0;
    if (u->blocking)
        return 0;
    if (ioctl(u->fd, FIONBIO, &off) < 0)
        return -errno;
    u->blocking = true;
    return 0;
}

/* How the next receive attempt goes: 0 = blocking in the kernel (until
 * SO_RCVTIMEO), MSG_DONTWAIT = poll first or the deadline has passed. */
static int recv_mode(sn_udp *u, int64_t deadline, int *flags)
{
    *flags = MSG_DONTWAIT;
    if (sn__wait_parks() || sn__poll_timeout(deadline) == 0) /* a fiber must not block */
        return 0;
    int rc = make_blocking(u);
    if (rc == 0)
        rc = sn__rcvtimeo_until(u->fd, &u->rcvtimeo_ms, deadline);
    if (rc == 0)
        *flags = 0;
    return rc == SN_ETIMEDOUT ? 0 : rc;
}

/* After a receive found nothing: SN_ETIMEDOUT past the deadline, else 0
 * once it may try again (on a fiber, when the socket is readable). */
static int recv_wait(sn_udp *u, int flags, int64_t deadline)
{
    if (sn__poll_timeout(deadline) == 0)
        return SN_ETIMEDOUT;
    if (flags & MSG_DONTWAIT)
        return sn__wait_fd(u->fd, POLLIN, deadline);
    return 0; /* SO_RCVTIMEO ran out early, or a signal: receive again */
}

/* recvmsg into m, waiting until the deadline. The datagram's real size
 * (MSG_TRUNC), or an error. */
static ssize_t recv_one(sn_udp *u, struct msghdr *m, socklen_t namecap, int64_t deadline)
{
    for (;;) {
        int flags;
        int rc = canceled(u);
        if (rc == 0)
            rc = recv_mode(u, deadline, &flags);
        if (rc < 0)
            return rc;
        m->msg_namelen = namecap;
        m->msg_flags = 0;
        ssize_t n = recvmsg(u->fd, m, flags | MSG_TRUNC);
        if ((rc = canceled(u)) < 0) /* the cancel's shutdown gives an empty "datagram" */
            return rc;
        if (n >= 0)
            return n;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if ((rc = recv_wait(u, flags, deadline)) < 0)
            return rc;
    }
}

/* The sender in a received msghdr, as an sn_addr. */
static void addr_from(sn_addr *out, const struct sockaddr_storage *ss, socklen_t len)
{
    memset(out, 0, sizeof *out);
    len = SN_MIN(len, (socklen_t)sizeof out->u);
    memcpy(&out->u.ss, ss, len);
    out->len = len;
}

ssize_t sn_udp_recv_from(sn_udp *u, void *buf, size_t cap, sn_addr *from, size_t *size,
                         sn_deadline dl)
{
    struct sockaddr_storage ss;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr m = {.msg_name = &ss, .msg_iov = &iov, .msg_iovlen = 1};
    if (u == NULL || (buf == NULL && cap > 0))
        return SN_EINVAL;
    if (u->fd < 0)
        return SN_EBADSTATE;
    ssize_t n = recv_one(u, &m, sizeof ss, sn__deadline_abs(dl, u->read_timeout_ms));
    if (n < 0)
        return n;
    if (from != NULL)
        addr_from(from, &ss, m.msg_namelen);
    if (size != NULL)
        *size = (size_t)n;
    return (size_t)n > cap ? SN_ETRUNCATED : n;
}

ssize_t sn_udp_recv(sn_udp *u, void *buf, size_t cap, size_t *size, sn_deadline dl)
{
    return sn_udp_recv_from(u, buf, cap, NULL, size, dl);
}

/* recvmmsg of up to BATCH_CHUNK messages, waiting for the first until the
 * deadline: the number received, or an error. */
static int recv_chunk(sn_udp *u, sn_udp_msg *msgs, int n, int64_t deadline)
{
    struct mmsghdr mm[BATCH_CHUNK];
    struct iovec iov[BATCH_CHUNK];
    for (;;) {
        int flags;
        int rc = canceled(u);
        if (rc == 0)
            rc = recv_mode(u, deadline, &flags);
        if (rc < 0)
            return rc;
        for (int i = 0; i < n; i++) {
            iov[i] = (struct iovec){.iov_base = msgs[i].buf, .iov_len = msgs[i].cap};
            mm[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &msgs[i].addr.u.ss,
                                                 .msg_namelen = sizeof msgs[i].addr.u,
                                                 .msg_iov = &iov[i],
                                                 .msg_iovlen = 1}};
        }
        int k = recvmmsg(u->fd, mm, (unsigned)n, flags | MSG_TRUNC | MSG_WAITFORONE, NULL);
        if ((rc = canceled(u)) < 0)
            return rc;
        for (int i = 0; i < k; i++) {
            sn_udp_msg *x = &msgs[i];
            x->size = mm[i].msg_len;
            x->truncated = x->size > x->cap;
            x->len = SN_MIN(x->size, x->cap);
            x->addr.len = mm[i].msg_hdr.msg_namelen;
        }
        if (k >= 0)
            return k;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if ((rc = recv_wait(u, flags, deadline)) < 0)
            return rc;
    }
}

int sn_udp_recv_batch(sn_udp *u, sn_udp_msg *msgs, int n, sn_deadline dl)
{
    if (u == NULL || msgs == NULL || n < 1)
        return SN_EINVAL;
    if (u->fd < 0)
        return SN_EBADSTATE;
    n = SN_MIN(n, SN_UDP_BATCH_MAX);
    for (int i = 0; i < n; i++) {
        if (msgs[i].buf == NULL && msgs[i].cap > 0)
            return SN_EINVAL;
        memset(&msgs[i].addr, 0, sizeof msgs[i].addr);
    }
    int got = recv_chunk(u, msgs, SN_MIN(n, BATCH_CHUNK), sn__deadline_abs(dl, u->read_timeout_ms));
    /* more than a chunk asked for and the first chunk came back full: take
     * what else is queued, without waiting */
    while (got > 0 && got < n && got % BATCH_CHUNK == 0) {
        int k = recv_chunk(u, msgs + got, SN_MIN(n - got, BATCH_CHUNK), sn_deadline_in(0));
        if (k <= 0)
            break;
        got += k;
    }
    return got;
}

/* ---- multicast -------------------------------------------------------------- */

/* An interface by name or decimal index; NULL or "" = 0 (the system's
 * choice). SN_ENODEV when there is no such interface. */
static int iface_index(const char *iface, unsigned *index)
{
    char name[IF_NAMESIZE];
    *index = 0;
    if (iface == NULL || iface[0] == '\0')
        return 0;
    size_t digits = strspn(iface, "0123456789");
    if (digits > 0 && digits <= 10 && iface[digits] == '\0') {
        unsigned long v = strtoul(iface, NULL, 10);
        if (v == 0 || v > UINT_MAX || if_indextoname((unsigned)v, name) == NULL)
            return SN_ENODEV;
        *index = (unsigned)v;
        return 0;
    }
    *index = if_nametoindex(iface);
    return *index == 0 ? SN_ENODEV : 0;
}

static bool is_multicast(const sn_addr *a)
{
    if (sn_addr_family(a) == SN_AF_INET)
        return IN_MULTICAST(ntohl(a->u.in4.sin_addr.s_addr));
    return IN6_IS_ADDR_MULTICAST(&a->u.in6.sin6_addr);
}

/* MCAST_JOIN_GROUP / MCAST_LEAVE_GROUP: one call for both families. */
static int membership(sn_udp *u, const char *group, const char *iface, int name)
{
    struct group_req gr;
    sn_addr g;
    unsigned index;
    if (u == NULL || group == NULL)
        return SN_EINVAL;
    if (u->fd < 0)
        return SN_EBADSTATE;
    int rc = sn_addr_from_ip(&g, group, 0);
    if (rc < 0)
        return rc;
    if (!is_multicast(&g))
        return SN_EINVAL;
    if (u->family == AF_INET && sn_addr_family(&g) == SN_AF_INET6)
        return SN_EAFNOSUPPORT;
    if ((rc = iface_index(iface, &index)) < 0)
        return rc;
    memset(&gr, 0, sizeof gr);
    gr.gr_interface = index;
    memcpy(&gr.gr_group, &g.u.ss, g.len);
    int level = sn_addr_family(&g) == SN_AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
    return setsockopt(u->fd, level, name, &gr, sizeof gr) < 0 ? -errno : 0;
}

int sn_udp_join(sn_udp *u, const char *group, const char *iface)
{
    return membership(u, group, iface, MCAST_JOIN_GROUP);
}

int sn_udp_leave(sn_udp *u, const char *group, const char *iface)
{
    return membership(u, group, iface, MCAST_LEAVE_GROUP);
}

/* ---- state, addresses, closing --------------------------------------------- */

int sn_udp_get_state(const sn_udp *u)
{
    return u != NULL && u->fd >= 0 ? atomic_load(&((sn_udp *)u)->state) : SN_SOCK_CLOSED;
}

int sn_udp_local_addr(const sn_udp *u, sn_addr *out)
{
    if (u == NULL)
        return SN_EINVAL;
    int state = sn_udp_get_state(u); /* open: no address yet */
    return sn__sock_name(state != SN_SOCK_CLOSED && state != SN_SOCK_OPEN ? u->fd : -1, out, false);
}

int sn_udp_remote_addr(const sn_udp *u, sn_addr *out)
{
    return u != NULL ? sn__sock_name(u->fd, out, true) : SN_EINVAL;
}

int sn_udp_family(const sn_udp *u)
{
    return u != NULL ? sn__family_of(u->family) : 0;
}

int sn_udp_fd(const sn_udp *u)
{
    return u != NULL ? u->fd : -1;
}

int sn_udp_cancel(sn_udp *u)
{
    if (u == NULL)
        return SN_EINVAL;
    return sn__sock_cancel(&u->canceled, &u->fd);
}

int sn_udp_close(sn_udp *u)
{
    if (u == NULL || u->fd < 0)
        return 0;
    atomic_store(&u->state, SN_SOCK_CLOSED);
    return sn__sock_close_fd(&u->fd);
}

void sn_udp_free(sn_udp *u)
{
    if (u == NULL)
        return;
    sn_udp_close(u);
    sn__free(u);
}
