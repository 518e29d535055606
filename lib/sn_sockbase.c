/* SPDX-License-Identifier: MIT */
/*
 * sn_sockbase.c: the chores of stream and datagram sockets alike: a
 * socket's addresses, closing its descriptor, trying resolved addresses in
 * turn (sn_sock_int.h).
 */
#include <unistd.h>
#include "sn_fiber.h"
#include "sn_sock_int.h"
#include "socknet.h"

/* Errors after which the next address may still work. */
static bool try_next(int rc)
{
    return rc == SN_ECONNREFUSED || rc == SN_ENETUNREACH || rc == SN_EHOSTUNREACH ||
           rc == SN_EADDRNOTAVAIL || rc == SN_EAFNOSUPPORT || rc == SN_ECONNRESET;
}

int sn__try_each(const sn_addr *addrs, int n, int (*try_one)(const sn_addr *addr, void *arg),
                 void *arg)
{
    int rc = SN_ENONAME;
    for (int i = 0; i < n; i++) {
        rc = try_one(&addrs[i], arg);
        if (!try_next(rc))
            break;
    }
    return rc;
}

int sn__sock_name(int fd, sn_addr *out, bool peer)
{
    sn_addr a = {0};
    socklen_t len = sizeof a.u;
    if (out == NULL)
        return SN_EINVAL;
    if (fd < 0)
        return SN_EBADSTATE;
    int rc = peer ? getpeername(fd, &a.u.sa, &len) : getsockname(fd, &a.u.sa, &len);
    if (rc < 0)
        return -errno;
    a.len = len;
    *out = a;
    return 0;
}

int sn__sock_close_fd(int *fd)
{
    /* the scheduler of the calling thread, if it has one, drops what it
     * knows of fd before the number can be reused (nothing on a plain
     * thread): no mode test here */
    sn__fiber_forget_fd(*fd);
    int rc = close(*fd) < 0 && errno != EINTR ? -errno : 0;
    *fd = -1;
    return rc;
}
