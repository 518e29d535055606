/* SPDX-License-Identifier: MIT */
/*
 * sn_transport.c: the plain-TCP transport. recv and sendmsg with
 * MSG_DONTWAIT never wait, whatever the descriptor's mode; the channel above
 * waits with poll when told SN_EAGAIN. One exception saves a system call per
 * message: when the channel must wait for bytes, recv_wait blocks in recv
 * itself, bounded by SO_RCVTIMEO, instead of poll + recv. For that the
 * descriptor is switched to blocking mode the first time (accepted sockets
 * already are), which changes nothing for the MSG_DONTWAIT calls.
 * The TLS transport (wolfSSL) implements the same table.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include "sn_transport.h"
#include "sn_util.h"
#include "socknet.h"

static ssize_t plain_recv(sn_transport *t, void *buf, size_t len, short *want)
{
    for (;;) {
        ssize_t n = recv(t->fd, buf, len, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = POLLIN;
            return SN_EAGAIN;
        }
        return -errno;
    }
}

int sn__transport_blocking(sn_transport *t)
{
    if (!t->blocking) {
        int off = 0;
        if (ioctl(t->fd, FIONBIO, &off) < 0)
            return -errno;
        t->blocking = true;
    }
    return 0;
}

static ssize_t plain_recv_wait(sn_transport *t, void *buf, size_t len, int64_t deadline_ms)
{
    int rc = sn__transport_blocking(t);
    if (rc < 0)
        return rc;
    for (;;) {
        if ((rc = sn__rcvtimeo_until(t->fd, &t->timeo_ms, deadline_ms)) < 0)
            return rc;
        ssize_t n = recv(t->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        /* a signal, or SO_RCVTIMEO ran out: the deadline decides */
    }
}

static ssize_t plain_sendv(sn_transport *t, const struct iovec *iov, int iovcnt, short *want)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        /* one piece goes by send(): the kernel then copies and checks no
         * iovec array (a few percent of a small echo's system time) */
        ssize_t n = iovcnt == 1
                        ? send(t->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : sendmsg(t->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = POLLOUT;
            return SN_EAGAIN;
        }
        return -errno;
    }
}

static int plain_shutdown(sn_transport *t, short *want)
{
    (void)want;
    return shutdown(t->fd, SHUT_WR) < 0 ? -errno : 0;
}

static size_t plain_pending(sn_transport *t)
{
    (void)t;
    return 0;
}

static void plain_release(sn_transport *t)
{
    (void)t;
}

static const sn_transport_vtable plain_vtable = {
    .name = "tcp",
    .recv = plain_recv,
    .recv_wait = plain_recv_wait,
    .sendv = plain_sendv,
    .shutdown = plain_shutdown,
    .pending = plain_pending,
    .release = plain_release,
};

void sn__transport_plain_init(sn_transport *t, int fd, bool blocking, int timeo_ms)
{
    t->vt = &plain_vtable;
    t->fd = fd;
    t->blocking = blocking;
    t->timeo_ms = timeo_ms;
}
