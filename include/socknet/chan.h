/* SPDX-License-Identifier: MIT */
/*
 * socknet/chan.h: connections and their buffered channels.
 *
 * An sn_conn is a connected socket plus a transport (plain TCP or a local
 * socket here; TLS adds wolfSSL under the same calls) plus a buffered reader and a buffered
 * writer. Handlers read and write with plain blocking calls:
 *
 *     char line[1024];
 *     ssize_t n;
 *     while ((n = sn_read_line(c, line, sizeof line, SN_LINE_ANY, 0)) >= 0) {
 *         sn_printf(c, 0, "you said: %s\n", line);
 *         if (sn_flush(c, 0) < 0) break;
 *     }
 *
 * Deadlines: every call that can wait takes an sn_deadline (socknet/common.h)
 * that covers the whole call: all N bytes, the whole line, the whole flush.
 * SN_DEADLINE_DEFAULT (0) means "the socket's read (or write) timeout from
 * the start of this call", 60 s unless configured.
 *
 * Errors: reads return SN_EOF once the peer has closed and nothing is left
 * in the buffer. Errors of the stream itself (reset, EOF, a failed direct
 * write) are sticky: every later call of that direction returns the same
 * code. A deadline that expires (SN_ETIMEDOUT) or a limit that is hit
 * (SN_ELINETOOLONG, SN_ETOOBIG) is not sticky and consumes nothing: the
 * bytes stay buffered and the call can be repeated, unless the call says
 * otherwise (sn_read_exact beyond the buffer, direct writes). A call that
 * needs a buffer it cannot allocate returns SN_ENOMEM, which is not sticky.
 * When a server stops it wakes its connections: reads then return
 * SN_ESTOPPED (sticky) where they would have returned SN_EOF, and if the
 * stop's deadline passes, every call returns SN_ESTOPPED at once.
 *
 * Memory: the read buffer (4 KiB by default) is allocated on the first read
 * that needs it and may grow up to read_buffer_max (64 KiB by default) for a
 * line, a delimiter or a peek; the write buffer (4 KiB) is allocated on the
 * first buffered write (never, with autoflush, for a connection whose
 * writes each go out whole). Reads into a caller buffer at least as large as the
 * read buffer, and writes at least as large as the write buffer, skip the
 * copy and go straight between the caller's memory and the socket.
 * On a fiber (fiber mode) a connection holds its buffers only while it uses
 * them: a read that must wait with nothing buffered gives the read buffer
 * back before it parks, and a flush that empties the write buffer gives that
 * back, to a few the thread keeps for its connections; an idle connection
 * holds neither. Pointers into the read buffer (sn_peek, sn_read_line_ref)
 * are valid until the next read call, as always.
 *
 * Thread safety: one thread may read while another writes; two readers or
 * two writers need the caller's own lock. sn_conn_cancel, sn_conn_error,
 * sn_conn_sock and sn_conn_stats_get may be called from any thread (until
 * sn_conn_free); sn_available belongs to
 * the reader, sn_pending to the writer, sn_conn_set_data/sn_conn_data to
 * the connection's owner.
 * Ownership: sn_conn_new takes ownership of the sn_sock on success;
 * sn_conn_free closes and releases both. Connections handed to a server
 * handler belong to the server: do not free them.
 */
#ifndef SOCKNET_CHAN_H
#define SOCKNET_CHAN_H

#include <stdarg.h>
#include <sys/uio.h>
#include "socknet/common.h"
#include "socknet/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_conn sn_conn;

typedef struct sn_conn_config {
    size_t read_buffer;     /* bytes; 0 = 4096 */
    size_t read_buffer_max; /* bytes the read buffer may grow to for a line,
                               a delimiter, a peek or an exact read;
                               0 = 65536 (or read_buffer, if larger) */
    size_t write_buffer;    /* bytes; 0 = 4096 */
    int autoflush;          /* SN_ON: every write call also flushes (a
                               write with nothing buffered goes straight
                               from the caller's memory, and a connection
                               that only writes so never allocates a write
                               buffer; when such a write times out, the
                               unsent rest stays buffered and the call
                               returns SN_ETIMEDOUT: retry with sn_flush,
                               not the write); default SN_OFF (flush with
                               sn_flush) */
} sn_conn_config;

/* Wraps a connected socket (TCP or local) in a plain connection. cfg may be NULL.
 * Returns 0 (the connection now owns sock), SN_EBADSTATE (sock is not
 * connected), SN_EINVAL (read_buffer > read_buffer_max), SN_ENOMEM (sock
 * is still the caller's). */
SN_API int sn_conn_new(sn_conn **out, sn_sock *sock, const sn_conn_config *cfg);

/* Connects to host:port and wraps the socket: sn_tcp_connect followed by
 * sn_conn_new, so host may also be "unix:PATH" or "unix:@NAME" (a local
 * socket; port ignored). Same errors as those two. opt and cfg may be
 * NULL. */
SN_API int sn_conn_connect(sn_conn **out, const char *host, int port, const sn_sock_options *opt,
                           const sn_conn_config *cfg, sn_deadline dl);

/* Flushes what is buffered (within the deadline), then closes. Returns 0,
 * or the flush's error when bytes were left to send (SN_ETIMEDOUT, or the
 * write side's sticky error); the connection is closed either way, and
 * later I/O calls return SN_ECLOSED. Closing again returns 0. The
 * connection stays valid for its getters until sn_conn_free. */
SN_API int sn_conn_close(sn_conn *c, sn_deadline dl);

/* Cancels the connection from any thread or fiber, OpenHarmony's close()
 * from anywhere: a call blocked in it (a read, a write, a flush, a TLS
 * handshake in sn_tls_upgrade, a WebSocket receive) returns SN_ECANCELED at
 * once, and so does every later I/O call; the socket is shut down both
 * ways, so the peer reads the end of the stream. Buffered bytes are not
 * delivered or sent. The connection stays valid: whoever owns it still
 * closes and frees it (sn_conn_close then returns SN_ECANCELED if bytes
 * were left unsent), which is what makes cancelling safe at any time: it
 * never frees or closes what another thread is using, and a cancel that
 * meets the owner's close does nothing. Any number of times; after
 * sn_conn_free it must not be called. Returns 0, or SN_EINVAL for NULL. */
SN_API int sn_conn_cancel(sn_conn *c);

/* A graceful end after an error answer (a lingering close, as web servers
 * do): flushes, shuts the write side down (TLS: close_notify first), then
 * reads and drops whatever the peer still sends until it closes its side
 * or ms pass. Without it, closing with unread input makes the kernel send
 * a reset, and a reset can destroy the answer before the peer reads it
 * (an HTTP 400 after a request whose body is still coming, a WebSocket
 * close 1009 for a message that is still arriving). The WebSocket session
 * (after a close for a peer's error) and the sn_web router (after its own
 * error answers) call it; the connection is then only good for closing.
 * A server stop ends the wait (the stop shuts reads down). A second call
 * returns 0 at once.
 * Returns 0 (the peer closed), SN_ETIMEDOUT (ms passed: close anyway; a
 * peer that keeps sending holds the connection no longer than that),
 * SN_EINVAL (c NULL, ms negative), SN_ECLOSED (already closed), or the
 * socket's error. */
SN_API int sn_conn_linger(sn_conn *c, int ms);

/* Closes without flushing (unsent buffered bytes are dropped) and releases
 * the connection and its socket. NULL is a no-op. */
SN_API void sn_conn_free(sn_conn *c);

/* The socket underneath: for options, state and addresses. Still owned by
 * the connection. */
SN_API sn_sock *sn_conn_sock(sn_conn *c);

/* A pointer for the application, NULL at first. */
SN_API void sn_conn_set_data(sn_conn *c, void *data);
SN_API void *sn_conn_data(const sn_conn *c);

/* The sticky error of the read side (or of the write side when the read
 * side has none), or 0. A half-close (sn_shutdown_write) is not an error. */
SN_API int sn_conn_error(const sn_conn *c);

typedef struct sn_conn_stats {
    uint64_t bytes_read;    /* bytes received from the transport */
    uint64_t bytes_written; /* bytes handed to the transport */
    uint64_t read_calls;    /* transport reads that returned data */
    uint64_t write_calls;   /* transport writes that sent data */
} sn_conn_stats;

/* Byte counters; safe from any thread (values may lag by one call). */
SN_API void sn_conn_stats_get(const sn_conn *c, sn_conn_stats *out);

/* ---- reading ----------------------------------------------------------- */

/* Reads what is available, 1 to len bytes, waiting for at least one.
 * Buffered bytes come first; with none buffered and len at least the read
 * buffer's size, it receives straight into buf. Returns the count, SN_EOF,
 * SN_ETIMEDOUT, SN_EINVAL (len 0), or the stream's error (SN_ECONNRESET,
 * ...). */
SN_API ssize_t sn_read(sn_conn *c, void *buf, size_t len, sn_deadline dl);

/* Reads exactly n bytes. Returns n (0 for n == 0), or: SN_EOF when the
 * stream ends first (sticky; the bytes before it are not returned),
 * SN_ETIMEDOUT, the stream's error. When n fits in read_buffer_max a
 * timeout consumes nothing and the call can be repeated; a larger n is read
 * straight into buf, and a timeout after some bytes were taken is then
 * sticky for the read side. */
SN_API ssize_t sn_read_exact(sn_conn *c, void *buf, size_t n, sn_deadline dl);

/* Line endings for sn_read_line. */
typedef enum sn_line_mode {
    SN_LINE_LF = 0,   /* strict: "\n" ends a line; a "\r" before it is kept */
    SN_LINE_CRLF = 1, /* strict: only "\r\n" ends a line; a bare "\n" or
                         "\r" is an ordinary byte */
    SN_LINE_ANY = 2,  /* lenient: "\n" or "\r\n" ends a line, and a last
                         line without an ending is returned at end of stream */
} sn_line_mode;

/*
 * Reads one line into buf (cap bytes, including a terminating NUL) and
 * returns its length without the line ending, which is consumed.
 *   - A line that does not fit (no ending within the first cap - 1 bytes,
 *     or within read_buffer_max bytes) returns SN_ELINETOOLONG and consumes
 *     nothing: the caller may sn_discard or sn_read the bytes, or close.
 *   - At end of stream with an unterminated last line: SN_LINE_ANY returns
 *     it (the next call returns SN_EOF); the strict modes return
 *     SN_EUNTERMINATED and leave the bytes buffered (sn_available tells how
 *     many, sn_read reads them).
 *   - SN_EOF when the stream ended with nothing left; SN_ETIMEDOUT (nothing
 *     consumed); the stream's error; SN_EINVAL (cap 0, bad mode).
 * A line may contain NUL bytes; the length returned counts them.
 */
SN_API ssize_t sn_read_line(sn_conn *c, char *buf, size_t cap, int mode, sn_deadline dl);

/* Like sn_read_line, without a copy: *line points into the read buffer,
 * NUL-terminated, valid until the next read call on c. max bounds the line
 * length (0 = read_buffer_max). */
SN_API ssize_t sn_read_line_ref(sn_conn *c, const char **line, size_t max, int mode,
                                sn_deadline dl);

/* Reads up to and including the delimiter (dlen >= 1 bytes), copies the
 * bytes before it into buf and returns their count; the delimiter is
 * consumed but not copied. No NUL is added. Limits, end of stream
 * (SN_EUNTERMINATED when bytes remain, SN_EOF when none) and deadlines as
 * in sn_read_line's strict modes; SN_ELINETOOLONG when the delimiter is not
 * found within cap bytes or read_buffer_max. */
SN_API ssize_t sn_read_until(sn_conn *c, const void *delim, size_t dlen, void *buf, size_t cap,
                             sn_deadline dl);

/* Waits until at least n bytes are buffered (n <= read_buffer_max) and
 * points *data at them without consuming them. Returns the number buffered
 * (>= n), or fewer than n but more than 0 when the stream ended first,
 * SN_EOF (ended, nothing buffered), SN_ETIMEDOUT, SN_ETOOBIG (n larger
 * than read_buffer_max), the stream's error. n == 0 returns what is
 * buffered now without waiting. */
SN_API ssize_t sn_peek(sn_conn *c, size_t n, const void **data, sn_deadline dl);

/* Reads and drops exactly n bytes. Returns 0, SN_EOF, SN_ETIMEDOUT (the
 * bytes dropped so far stay dropped), the stream's error. */
SN_API int sn_discard(sn_conn *c, size_t n, sn_deadline dl);

/* Bytes buffered and readable without waiting. */
SN_API size_t sn_available(const sn_conn *c);

/* ---- writing ----------------------------------------------------------- */

/* Appends to the write buffer; when it fills, sends it. A write at least
 * as large as the write buffer goes straight to the socket after what is
 * buffered, in one writev, without a copy. Returns len, SN_ETIMEDOUT
 * (bytes not sent stay buffered, except in a direct write, where the error
 * is then sticky), or the stream's error (SN_EPIPE, SN_ECONNRESET). */
SN_API ssize_t sn_write(sn_conn *c, const void *buf, size_t len, sn_deadline dl);

/* sn_write of a NUL-terminated string (without the NUL). */
SN_API ssize_t sn_write_str(sn_conn *c, const char *s, sn_deadline dl);

/* Writes iovcnt buffers in order as one sn_write of their bytes: appended
 * to the write buffer, or, when the total is at least the write buffer's
 * size, sent straight after what is buffered, in one writev, without a
 * copy. Returns the total of the iov_len (0 when it is 0), or:
 * SN_EINVAL (iovcnt negative or above IOV_MAX - 1, or a total above
 * SSIZE_MAX; nothing taken); SN_ETIMEDOUT (nothing of this call taken,
 * except in a direct write that had sent some of it, where the error is
 * then sticky, and in an autoflush write smaller than the write buffer,
 * where the unsent rest stays buffered: retry with sn_flush, not the
 * write); SN_ENOMEM (no buffer: nothing taken, except when such an
 * autoflush write timed out and cannot keep its rest, which is then
 * sticky); SN_ESTOPPED (a stopping server's deadline has passed;
 * sticky); or the stream's sticky error (SN_EPIPE after sn_shutdown_write
 * or from the peer, SN_ECONNRESET, SN_ECLOSED after sn_conn_close). */
SN_API ssize_t sn_writev(sn_conn *c, const struct iovec *iov, int iovcnt, sn_deadline dl);

/* Formats into the write buffer. Returns the bytes written, or an error as
 * sn_write, or SN_EINVAL for a bad format. */
SN_API ssize_t sn_printf(sn_conn *c, sn_deadline dl, const char *fmt, ...) SN_PRINTF(3, 4);
SN_API ssize_t sn_vprintf(sn_conn *c, sn_deadline dl, const char *fmt, va_list ap) SN_PRINTF(3, 0);

/* Sends everything buffered. Returns 0, SN_ETIMEDOUT (what is unsent
 * stays buffered; call again), or the stream's error. */
SN_API int sn_flush(sn_conn *c, sn_deadline dl);

/* Bytes buffered and not yet sent. */
SN_API size_t sn_pending(const sn_conn *c);

/* Flushes, then shuts down the sending side: the peer reads end of
 * stream, and this side can still read. Later writes return SN_EPIPE.
 * Returns 0 or a flush/socket error. */
SN_API int sn_shutdown_write(sn_conn *c, sn_deadline dl);

#ifdef __cplusplus
}
#endif
#endif
