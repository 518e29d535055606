/* SPDX-License-Identifier: MIT */
/*
 * socknet/server.h: the threaded server.
 *
 * Listeners (one or several: IPv4 and IPv6, several ports, local sockets)
 * are watched by acceptor threads, which accept connections and hand each
 * one to the worker pool. A worker calls the handler with the connection and serves it
 * from start to close with plain blocking reads and writes; when the
 * handler returns, the server flushes and closes the connection. When the
 * handler left input unread (it answered an error and returned, say), the
 * connection lingers first (sn_conn_linger, up to linger_ms): its write side
 * is shut and what the peer still sends is dropped until the peer closes,
 * because closing with unread input makes the kernel send a reset, which
 * can destroy the answer before the peer reads it.
 *
 *     static void echo(sn_conn *c, void *user) {
 *         char buf[4096];
 *         ssize_t n;
 *         while ((n = sn_read(c, buf, sizeof buf, 0)) > 0)
 *             if (sn_write(c, buf, n, 0) < 0 || sn_flush(c, 0) < 0) break;
 *     }
 *     sn_server_config cfg = { .host = "127.0.0.1", .port = 7000, .handler = echo };
 *
 * Admission: a connection is served when a worker is idle or can be started
 * (up to `workers`), or waits in the queue (up to `queue`). Beyond that the
 * acceptor answers it at once per `overload` and counts it as refused; it
 * never blocks and never stalls the other listeners. A connection waits in
 * the queue for at most `queue_timeout_ms` (10 s by default): then an
 * acceptor answers it the same way, even when no worker ever frees up, and
 * counts it as refused and as expired. Both modes queue (in fiber mode
 * once `workers` connections are being served). When the process runs out
 * of descriptors (EMFILE), the acceptor closes the pending connection with
 * a spare descriptor kept for the purpose and backs off briefly, rather
 * than spinning.
 *
 * Stopping (sn_server_stop, from any thread, a handler included): listeners
 * close; queued connections are closed unserved; every handler blocked in a
 * read is woken (its reads return SN_ESTOPPED, writes still work, so it can
 * say goodbye); handlers get until the deadline to return; then their
 * connections are shut down for writing as well, so any further I/O fails at
 * once and the handlers return. Every thread is joined and every descriptor
 * and byte released before sn_server_stop returns (a handler stuck outside
 * socknet calls is waited for: it is the one thing the server cannot wake).
 *
 * Thread safety: sn_server_stop, sn_server_stats_get, sn_server_local_addr
 * and sn_server_is_stopping may be called from any thread; sn_server_new,
 * sn_server_start and sn_server_free belong to the owner.
 * Ownership: the server copies the configuration (strings included); it
 * owns the connections it hands to handlers: a handler must not free or
 * close them (returning is how a handler ends its connection; a stop may
 * be waking it at that very moment).
 */
#ifndef SOCKNET_SERVER_H
#define SOCKNET_SERVER_H

#include "socknet/addr.h"
#include "socknet/chan.h"
#include "socknet/common.h"
#include "socknet/sock.h"
#include "socknet/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_server sn_server;
typedef struct sn_ev sn_ev; /* socknet/event.h */

/* Serves one connection; runs on a worker thread. */
typedef void (*sn_handler)(sn_conn *c, void *user);

/* What an acceptor does with a connection the server has no room for. */
typedef enum sn_overload {
    /* CLOSE and MESSAGE first drop what the peer already sent (up to 64 KiB,
     * without waiting), so that the close is a FIN, not a reset. */
    SN_OVERLOAD_CLOSE = 0,   /* close it (the peer reads end of stream) */
    SN_OVERLOAD_RESET = 1,   /* reset it (the peer gets ECONNRESET; on a local
                                socket, only if it had sent bytes, else it
                                reads end of stream) */
    SN_OVERLOAD_MESSAGE = 2, /* send overload_message without waiting, then close */
} sn_overload;

typedef struct sn_server_config {
    /* Listeners: host/port for one, or an array for several (then host,
     * port and sockopt are ignored). host as in sn_listen_config: NULL or
     * "" = all IPv4 addresses; "unix:PATH" or "unix:@NAME" = a local
     * (Unix-domain) socket, served exactly like TCP in both modes (a stale
     * socket file is reclaimed at start, the file is removed at stop: see
     * socknet/sock.h). sockopt must then hold no TCP option. */
    const char *host;
    int port;                          /* 0 = the kernel picks */
    const sn_listen_config *listeners; /* copied */
    int nlisteners;
    sn_sock_options sockopt; /* for the single host/port listener and its
                                connections (per-listener otherwise) */

    /* TLS (socknet/tls.h): a server context (SN_TLS_SERVER) for every
     * listener, or with `listeners`, listener_tls[i] for listener i (NULL
     * entries serve plain TCP). NULL = plain TCP. The server keeps its own
     * references. The handshake runs on the worker (the fiber, in fiber
     * mode) before the handler, within the context's handshake timeout,
     * never on an acceptor; a stop wakes it like a read. A failed handshake
     * closes the connection without calling the handler or on_close,
     * counts in stats.tls_failures and its kind's tls_fail_* counter, and
     * goes to on_error with the client's address and the reason (see
     * on_error). sn_server_set_tls swaps contexts while
     * the server runs (new certificates without dropping connections). */
    sn_tls *tls;
    sn_tls *const *listener_tls;

    sn_handler handler; /* this, or on_client */
    void *user;         /* passed to the handler and every event */
    /* Event mode (socknet/event.h), instead of a handler: each connection,
     * after its TLS handshake, becomes an event socket on the server's own
     * workers (fibers or threads, as configured below), and on_client(e,
     * user) runs first, on that worker, to set its callbacks with sn_ev_on
     * (OpenHarmony's server.on('connect', client => client.on(...))); its
     * connect callback follows. Between events a connection holds no
     * worker, no stack and no buffer, so `workers` bounds the callbacks
     * running at once, not the connections. The handle is the server's:
     * valid inside the socket's callbacks, longer with sn_ev_hold. A stop
     * closes the event sockets (close error SN_ESTOPPED) after the
     * acceptors and waits for their callbacks; do not call sn_server_stop
     * or sn_server_free from an event callback (signal another thread).
     * on_close does not run for them: their close event does. */
    void (*on_client)(sn_ev *e, void *user);

    int acceptors;      /* acceptor threads; 0 = 1; in fiber mode an
                           acceptor fiber per listener instead (see
                           fibers) */
    int workers;        /* most connections served at once (worker
                           threads); 0 = 256 */
    int min_workers;    /* workers kept when idle; 0 = 0 */
    int queue;          /* accepted connections waiting for a worker;
                           0 = 64; SN_OFF = none */
    int worker_idle_ms; /* ms; 0 = 10000; SN_TIMEOUT_NEVER = never reaped */
    size_t stack_size;  /* bytes per worker (or fiber, in fiber mode);
                           0 = 256 KiB; only touched pages cost memory */
    /* SN_ON: fiber mode. Each connection's handler runs on a fiber of its
     * own (its own stack, the same blocking-style calls), and fiber_threads
     * threads (0 = one per CPU) run them all: a socknet call that would
     * wait parks the fiber and its thread serves other connections
     * meanwhile. A message then costs a switch in user space instead of a
     * kernel context switch, and `workers` (connections served at once)
     * may go up to 1,048,576. The price: a handler must not block its
     * thread outside socknet calls (sleep, a long lock, slow file or
     * database I/O), which would stall every connection of that thread;
     * such handlers belong in the default thread mode. min_workers and
     * worker_idle_ms do not apply; stats.threads counts the fiber threads.
     * The fiber threads also accept: one acceptor fiber per listener
     * (listener i's on fiber thread i, modulo their number), so that a new
     * connection finds the thread that is awake rather than waking another.
     * The new connection's fiber starts on that thread, with no hand-over,
     * unless it is busier than the least busy one by more than 2
     * connections plus an eighth of that one's; then it goes to that one.
     * A fiber thread that runs fibers yields its CPU every 0.5 ms to
     * whatever else waits for it (see sn_pool_config.fibers).
     * `acceptors` does not apply. sn_sleep_ms
     * and sn_yield (common.h) sleep or yield the fiber only; a lock held
     * across a socknet call that waits must be an sn_mutex (common.h), as
     * a pthread mutex there can stop the thread for good.
     * Memory after a spike: each fiber thread keeps the stacks of up to 64
     * finished fibers for the next connections and unmaps the rest as
     * they finish; once its connections fall below half their peak (for
     * 250 ms, at most once a second) it gives those stacks' pages back,
     * but for the top 4 KiB of each, and the allocator's free memory
     * (malloc_trim, with glibc). So a spike of 3,000 connections leaves
     * 256 KiB of stack per fiber thread behind, not hundreds of MiB. In
     * thread mode the memory of a spike comes back as its idle workers
     * are reaped (worker_idle_ms).
     * Default SN_OFF: a worker thread per connection being served. */
    int fibers;
    int fiber_threads;
    sn_conn_config conn; /* buffers of each connection */
    int stop_timeout_ms; /* ms: sn_server_free's grace period, and
                            sn_server_stop's for timeout 0; 0 = 5000;
                            SN_TIMEOUT_NEVER = wait for the handlers */
    int linger_ms;       /* ms a connection whose handler left input unread
                            lingers (see above); 0 = 2000; SN_OFF = close at
                            once (the peer may get a reset) */

    int overload;                 /* sn_overload; default SN_OVERLOAD_CLOSE */
    const char *overload_message; /* with SN_OVERLOAD_MESSAGE; copied; NULL =
                                     "server busy\r\n" */
    /* ms a connection may wait in the queue; 0 = 10000 (the HTTP head's
     * and the TLS handshake's deadline: a peer that has heard nothing for
     * that long is better told to try again); SN_TIMEOUT_NEVER = until a
     * worker frees up or the server stops. Past it an acceptor answers the
     * connection per `overload`, within a few ms (unless a worker takes it
     * first). */
    int queue_timeout_ms;

    /* Events (OpenHarmony's listening / connect / close / error). Each may
     * be NULL. on_listening and on_connect run on an acceptor thread (an
     * acceptor fiber in fiber mode, or in sn_server_start), so keep them
     * short; on_connect returning
     * non-zero refuses the connection (closed at once, counted as
     * rejected). on_close runs on the worker after the handler returned,
     * before the connection is closed, with its sticky error (SN_EOF for
     * an orderly close by the peer, SN_ESTOPPED when a stop woke it, 0 when
     * the handler returned first).
     * on_error reports what the server absorbed, with a short static
     * description, on the acceptor thread (or fiber): failed accepts
     * (EMFILE: the server keeps a spare descriptor per acceptor, up to 8,
     * to accept and close what is pending; ...),
     * a connection closed for want of memory, a failed poll, and worker
     * threads the system refused (the connection then waits in the queue,
     * or is refused per `overload` when the queue is full).
     * It also reports each failed TLS handshake, from the worker that ran
     * it (several at once: make on_error thread-safe), with err the
     * handshake's error (SN_ETLS_VERIFY, SN_ETIMEDOUT, SN_EOF, ...) and
     * what "TLS handshake with 192.0.2.7:50312 failed: " and the reason
     * (sn_tls_reason), valid during the call; a handshake a stop cut
     * short is counted, not reported. From there sn_server_stop acts as
     * from a handler. */
    void (*on_listening)(sn_server *s, const sn_addr *addr, void *user);
    int (*on_connect)(sn_server *s, const sn_addr *peer, void *user);
    void (*on_close)(sn_conn *c, int err, void *user);
    void (*on_error)(sn_server *s, int err, const char *what, void *user);
} sn_server_config;

/* Checks and copies the configuration; binds nothing yet.
 * Returns 0, SN_EINVAL (no handler, bad counts, bad listener), SN_ENOMEM. */
SN_API int sn_server_new(sn_server **out, const sn_server_config *cfg);

/* Binds every listener, starts the acceptors and the pool, and returns.
 * Returns 0, or the first listener's error (SN_EADDRINUSE, ...; nothing
 * is left open), SN_EBADSTATE (started before), SN_EAGAIN (no thread). */
SN_API int sn_server_start(sn_server *s);

/* The address listener idx (0-based, in configuration order) is bound to,
 * with the port the kernel chose for port 0. Returns 0, SN_EINVAL (no such
 * listener), SN_EBADSTATE (not started). */
SN_API int sn_server_local_addr(sn_server *s, int idx, sn_addr *out);

/* The port of listener 0, or a negative SN_E* code (see above;
 * SN_EAFNOSUPPORT for a local socket, which has none). */
SN_API int sn_server_port(sn_server *s);

/* Gracefully stops (see above), waiting at most timeout_ms for handlers
 * before forcing their connections (0 = stop_timeout_ms; SN_TIMEOUT_NEVER
 * = wait for them). A handler's connection gets up to one more second to
 * flush what the handler left buffered.
 * Idempotent: a later (or concurrent) call waits until the stop is complete
 * and returns the same result.
 * From a handler (or on_close) it does everything except wait for the
 * caller's own connection and join the worker threads: that part is left
 * to a later sn_server_stop from outside the handlers, or sn_server_free;
 * if another stop is already running, it returns 0 at once; in fiber mode
 * it does not wait for the other handlers either (they need the caller's
 * thread to finish). From on_connect or on_error on an acceptor thread
 * (on_error for a failed TLS handshake runs on a worker, and acts as from
 * a handler) it only begins the stop (no new connections are served, handlers are
 * woken) and returns 0.
 * Before sn_server_start it marks the server stopped (start then returns
 * SN_EBADSTATE). Returns 0, or SN_ETIMEDOUT when connections had to be
 * forced. */
SN_API int sn_server_stop(sn_server *s, int timeout_ms);

/* 1 once a stop has begun, else 0. Handlers may poll it. */
SN_API int sn_server_is_stopping(const sn_server *s);

typedef struct sn_server_stats {
    int active;                /* connections being served now (handler,
                                  on_close or the final flush) */
    int queued;                /* accepted, waiting for a worker (the pool's
                                  queue) */
    int busy_workers;          /* workers running a handler */
    int threads;               /* worker threads alive */
    uint64_t accepted;         /* connections accepted */
    uint64_t refused;          /* answered with the overload policy: the
                                  queue was full, or (expired) the wait */
    uint64_t expired;          /* of refused: waited queue_timeout_ms in
                                  the queue */
    uint64_t rejected;         /* refused by on_connect */
    uint64_t accept_errors;    /* failed accepts (EMFILE, ...) */
    uint64_t thread_failures;  /* worker threads the system refused (the
                                  connection then waited in the queue) */
    uint64_t tls_failures;     /* TLS handshakes that failed or timed out,
                                  of which, by kind: */
    uint64_t tls_fail_cert;    /* a certificate refused, by either side:
                                  SN_ETLS_VERIFY, SN_ETLS_NO_CERT,
                                  SN_ETLS_HOSTNAME */
    uint64_t tls_fail_version; /* no version in common (SN_ETLS_VERSION) */
    uint64_t tls_fail_cipher;  /* no suite in common (SN_ETLS_CIPHER) */
    uint64_t tls_fail_alpn;    /* no ALPN protocol in common */
    uint64_t tls_fail_timeout; /* the handshake deadline (SN_ETIMEDOUT) */
    uint64_t tls_fail_closed;  /* the client left: SN_EOF, a reset, or
                                  another socket error */
    uint64_t tls_fail_other;   /* the rest: SN_ETLS_HANDSHAKE (not TLS,
                                  a malformed message), SN_ETLS_ALERT, a
                                  stop, SN_ENOMEM */
    uint64_t closed;           /* connections served and closed (not those
                                  closed unserved by a stop) */
    uint64_t bytes_read;       /* by every connection, closed or active */
    uint64_t bytes_written;    /* (in event mode: until handed to the loop) */
    uint64_t events;           /* event mode: connections handed to the loop */
    int events_open;           /* event mode: of them, those open now */
} sn_server_stats;

SN_API void sn_server_stats_get(sn_server *s, sn_server_stats *out);

/* Replaces the TLS context of listener idx (-1: every listener) while the
 * server runs, e.g. with renewed certificates: connections accepted from
 * now on use tls, those already accepted keep the context they started
 * with. Safe from any thread. A listener that serves plain TCP stays so.
 * Returns 0, SN_EINVAL (bad idx, NULL s or tls, a client context),
 * SN_EBADSTATE (a listener of idx serves plain TCP). */
SN_API int sn_server_set_tls(sn_server *s, int idx, sn_tls *tls);

/* Stops (with stop_timeout_ms) if running, and releases everything.
 * NULL is a no-op. Not from a handler. */
SN_API void sn_server_free(sn_server *s);

#ifdef __cplusplus
}
#endif
#endif
