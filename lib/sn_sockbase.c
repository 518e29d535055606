/* SPDX-License-Identifier: MIT */
/*
 * sn_sockbase.c: the chores of stream and datagram sockets alike: a
 * socket's addresses, closing its descriptor, trying resolved addresses in
 * turn (sn_sock_int.h).
 */
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sn_fiber.h"
#include "sn_sock_int.h"
#include "sn_util.h"
#include "socknet.h"

/* ---- cancelling from any thread ------------------------------------------------------ */

/* A shutdown from another thread must not reach a descriptor number that its
 * socket closed meanwhile (the number may be a new socket's by then). The
 * shutdown and the close of one descriptor field take the same gate: a
 * mutex of a small table, picked by the field's address. Each is held for
 * one system call and never across a wait, so a plain mutex serves fibers
 * too; the I/O calls never take it. */
#define SN_GATES 64
static pthread_mutex_t gates[SN_GATES];
static pthread_once_t gates_once = PTHREAD_ONCE_INIT;

static void gates_init(void)
{
    for (int i = 0; i < SN_GATES; i++)
        sn__mutex_init(&gates[i]);
}

static pthread_mutex_t *gate_of(const int *fd)
{
    pthread_once(&gates_once, gates_init);
    uintptr_t a = (uintptr_t)fd;
    return &gates[(a >> 4 ^ a >> 10) % SN_GATES];
}

void sn__sock_shutdown_gated(const int *fd, int how)
{
    pthread_mutex_t *g = gate_of(fd);
    sn__mutex_lock(g);
    if (*fd >= 0)
        shutdown(*fd, how);
    sn__mutex_unlock(g);
}

int sn__sock_cancel(atomic_bool *canceled, const int *fd)
{
    atomic_store(canceled, true);
    /* wakes an accept, a receive blocked in the kernel, a fiber parked on
     * the socket (an unconnected UDP socket says ENOTCONN, but is marked
     * all the same) */
    sn__sock_shutdown_gated(fd, SHUT_RDWR);
    return 0;
}

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
    pthread_mutex_t *g = gate_of(fd);
    sn__mutex_lock(g); /* no shutdown from another thread is under way */
    int rc = close(*fd) < 0 && errno != EINTR ? -errno : 0;
    *fd = -1;
    sn__mutex_unlock(g);
    return rc;
}
