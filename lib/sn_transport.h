/* SPDX-License-Identifier: MIT */
/*
 * sn_transport.h: transports (internal; rank 3, sn_transport.c; TLS adds
 * another in sn_tls.c). Non-blocking byte streams over a descriptor. recv
 * and sendv return a byte count (recv: 0 = end of stream), SN_EAGAIN with
 * *want set to the poll events to wait for (a TLS read may need to write),
 * or an SN_E* error.
 */
#ifndef SN_TRANSPORT_H
#define SN_TRANSPORT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct sn_transport sn_transport;
typedef struct sn_transport_vtable {
    const char *name;
    ssize_t (*recv)(sn_transport *t, void *buf, size_t len, short *want);
    ssize_t (*sendv)(sn_transport *t, const struct iovec *iov, int iovcnt, short *want);
    /* Ends the sending direction (TCP FIN; TLS close_notify then FIN).
     * 0, SN_EAGAIN with *want, or an error. */
    int (*shutdown)(sn_transport *t, short *want);
    /* Optional: receives, blocking in the kernel until bytes, the end of
     * the stream, an error or the absolute deadline (SN_ETIMEDOUT). One
     * system call where poll + recv would be two. NULL: the channel polls,
     * then calls recv. */
    ssize_t (*recv_wait)(sn_transport *t, void *buf, size_t len, int64_t deadline_ms);
    /* Bytes the transport holds that can be read without the descriptor. */
    size_t (*pending)(sn_transport *t);
    /* Optional: the channel is about to wait on a fiber for input, with
     * nothing buffered; the transport may free what it holds for reading
     * and writing until it is used again. */
    void (*idle)(sn_transport *t);
    /* Releases the transport's own state; never closes the descriptor. */
    void (*release)(sn_transport *t);
} sn_transport_vtable;

struct sn_transport {
    const sn_transport_vtable *vt;
    int fd;
    bool blocking; /* the descriptor's mode, as far as recv_wait knows */
    int timeo_ms;  /* SO_RCVTIMEO as last set: -1 unknown, 0 none */
};

/* blocking: the descriptor is known to be in blocking mode already;
 * timeo_ms: its SO_RCVTIMEO if known (ms, 0 none), else -1. */
void sn__transport_plain_init(sn_transport *t, int fd, bool blocking, int timeo_ms);
/* For a recv_wait: puts t's descriptor in blocking mode, once (t->blocking
 * remembers it). 0 or -errno. */
int sn__transport_blocking(sn_transport *t);

#endif
