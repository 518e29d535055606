/* SPDX-License-Identifier: MIT */
/*
 * sn_chan_int.h: what a connection (sn_chan.c) offers beyond chan.h
 * (internal; rank 4): wake-ups for the server's stop, the transport swap
 * for TLS, and the hub's non-blocking writes.
 */
#ifndef SN_CHAN_INT_H
#define SN_CHAN_INT_H

#include <stdbool.h>
#include <sys/uio.h>
#include "sn_transport.h"
#include "socknet.h"

/* The server wakes a connection's reader when it stops: level 1 = reads
 * return SN_ESTOPPED once the buffer is drained (writes still work);
 * level 2 = every I/O call fails with SN_ESTOPPED at once; level 3
 * (SN__WAKE_CANCEL, sn_conn_cancel) = every I/O call fails with
 * SN_ECANCELED at once. A level never goes down. Any thread, also while
 * the owner closes the connection (the shutdown that wakes it is gated
 * against the close: sn__sock_shutdown_gated); not after sn_conn_free. */
#define SN__WAKE_CANCEL 3
void sn__conn_wake(sn_conn *c, int level);
/* The level a stop woke c with (0 = not woken). Any thread. */
int sn__conn_wake_level(const sn_conn *c);
/* Replaces the plain transport (for TLS). The connection takes t. */
void sn__conn_set_transport(sn_conn *c, sn_transport *t);
/* The connection's transport (its plain one unless replaced). */
sn_transport *sn__conn_transport(const sn_conn *c);
/* Makes err the sticky error of both directions (a failed TLS upgrade). */
void sn__conn_fail(sn_conn *c, int err);

/* The hub's non-blocking writes; the caller holds the connection's writing
 * side. try_flush: one send of what is buffered: 0 (all out), SN_EAGAIN
 * (some left) or the sticky error. try_writev: with nothing buffered, one
 * send of the n buffers (frames, for the hub); *taken = the buffers taken:
 * sent whole, or the last one in part with its rest buffered (for
 * try_flush). Returns 0 (nothing of a taken buffer is left), 1 (the rest
 * of the last taken one is buffered), SN_EAGAIN (none taken: the socket is
 * full or bytes are buffered already) or the sticky error. */
int sn__conn_try_flush(sn_conn *c);
/* Frees the write buffer if it holds nothing (it is made again when
 * needed): for connections about to idle. The caller holds the writing side. */
void sn__conn_trim(sn_conn *c);
/* Frees the read buffer if it holds nothing unread, and lets the
 * transport give back what it holds while idle: for a connection about to
 * idle outside a wait (the event model's). The reader's. */
void sn__conn_rtrim(sn_conn *c);
/* Whether a read now would find nothing: none unread, none held by the
 * transport, and the last receive left the socket empty (it took less
 * than it asked for). A watch that stops here loses nothing: bytes that
 * come after that receive make a new edge. The reader's. */
bool sn__conn_drained(const sn_conn *c);
/* A poller says the socket is readable: the next read receives before it
 * waits (else a read after one that emptied the socket waits first, and
 * with a deadline already past would not receive at all). The reader's. */
void sn__conn_readable(sn_conn *c);
/* Whether the peer's input has ended and all of it was read: a read saw
 * its end of stream or a reset, and nothing is left unread. No input can
 * follow (the server then needs no FIONREAD to know). The reader's. */
bool sn__conn_input_ended(const sn_conn *c);
int sn__conn_try_writev(sn_conn *c, const struct iovec *iov, int n, int *taken);

#endif
