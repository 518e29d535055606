/*
 * sn_transport.c: the plain-TCP transport. Non-blocking recv and sendmsg on
 * the descriptor; the channel above waits with poll when told SN_EAGAIN.
 * The TLS transport (wolfSSL) implements the same table.
 */
#include <sys/socket.h>
#include "sn_int.h"

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

static ssize_t plain_sendv(sn_transport *t, const struct iovec *iov, int iovcnt, short *want)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        ssize_t n = sendmsg(t->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
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
    .sendv = plain_sendv,
    .shutdown = plain_shutdown,
    .pending = plain_pending,
    .release = plain_release,
};

void sn__transport_plain_init(sn_transport *t, int fd)
{
    t->vt = &plain_vtable;
    t->fd = fd;
}
