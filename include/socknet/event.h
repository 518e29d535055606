/* SPDX-License-Identifier: MIT */
/*
 * socknet/event.h: OpenHarmony's event model beside the handlers. A socket
 * in event mode has callbacks for what happens to it (message, connect,
 * listening, close, error) instead of a handler that blocks on it; while
 * nothing happens it holds no thread, no fiber, no stack and no buffer,
 * only its descriptor in a poller and a record of about 300 bytes.
 *
 *     sn_loop *loop;
 *     sn_loop_new(&loop, NULL);
 *     sn_ev *e;
 *     sn_ev_client(&e, loop);                        constructTCPSocketInstance()
 *     sn_ev_on(e, SN_EV_MESSAGE, on_message, app);   tcp.on('message', ...)
 *     sn_ev_on(e, SN_EV_CLOSE, on_close, app);       tcp.on('close', ...)
 *     sn_sock_options so = {.bind_host = "127.0.0.1"};   tcp.bind(...)
 *     sn_ev_connect(e, &(sn_ev_connect_config){.host = "127.0.0.1", .port = 7000,
 *                                              .sock = &so, .timeout_ms = 6000});
 *     sn_ev_send(e, "hello\n", 6, sn_deadline_in(1000));       tcp.send(...)
 *     sn_ev_close(e);                                tcp.close(), from any thread
 *     ...
 *     sn_ev_free(e);                                 the handle, when done with it
 *     sn_loop_free(loop);
 *
 * Sockets come into event mode in one of four ways: sn_ev_client and
 * sn_ev_connect (a TCP, local or TLS client that the loop connects, the
 * connect event after the handshake), sn_ev_from_conn (a connection you
 * hold: a client, or one you accepted), sn_ev_from_ws (a WebSocket
 * session, client or server) and sn_ev_from_udp (a UDP socket).
 *
 * Callbacks run on the loop's workers, never on a poller thread. In fiber
 * mode (the default) each fiber thread's scheduler watches its sockets and
 * starts a fiber for one that has something to say, so a message costs no
 * hand-off between threads; in thread mode a poller thread hands the
 * socket to a worker thread. A server runs its connections as event
 * sockets on its own workers (sn_server_config.on_client). For one socket they run one at a time,
 * in the order things happened: connect (or listening) first, then the messages, then error (when
 * an error ended it) and close, which is always last and always comes, once. Inside a callback the
 * blocking calls work as in any handler (on sn_ev_conn(e), sn_ev_ws(e) or sn_ev_udp(e): read more
 * with a deadline, write, flush), and a callback that blocks holds up only its own socket. Locks
 * held across such a call must be sn_mutex (common.h), as in any fiber.
 *
 * Events or a handler? A handler (server.h) reads like the protocol:
 * request, answer, next. Events suit many mostly idle sockets (each costs
 * its descriptor and a few hundred bytes, against a fiber's stack for a
 * handler), code ported from OpenHarmony or Node, and clients that react
 * to what comes rather than ask.
 *
 * Thread safety: sn_loop_* from any thread but the loop's own (stop and
 * free wait for the callbacks). sn_ev_on / sn_ev_off before the start, or
 * inside the socket's own callbacks (also unsubscribing the running one).
 * sn_ev_send, sn_ev_send_text, sn_ev_close_ws and sn_ev_close from any
 * thread, at any time until sn_ev_free; sends are serialized with each
 * other. Writing directly on sn_ev_conn(e) inside a callback is fine as
 * long as no other thread calls sn_ev_send on that socket meanwhile.
 * Ownership: the sn_ev_from_* calls hand the connection, session or UDP
 * socket to the loop (also when they fail with anything but SN_EINVAL);
 * the loop frees it after the close callback. The sn_ev handle is the
 * caller's until sn_ev_free, which only lets go of it (the socket lives on
 * until it closes): after the close, calls on it return SN_ECLOSED, so the
 * handle never dangles. A server handler's connection or an sn_web
 * handler's session belongs to its server: do not hand it to a loop.
 * What an event gives (data, addr, reason) is valid until the callback
 * returns (data: or until it reads from the socket).
 */
#ifndef SOCKNET_EVENT_H
#define SOCKNET_EVENT_H

#include "socknet/chan.h"
#include "socknet/common.h"
#include "socknet/http.h"
#include "socknet/tls.h"
#include "socknet/udp.h"
#include "socknet/ws.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_loop sn_loop;
typedef struct sn_loop_config {
    /* SN_ON (the default, 0): fiber mode. Each fiber thread's scheduler is
     * the poller of its sockets and runs their callbacks on fibers, with no
     * hand-off between threads; a callback must not block its thread
     * outside socknet calls (see socknet/pool.h). SN_OFF: thread mode. One
     * poller thread (epoll) hands each socket with an event to a worker
     * thread, which runs its callbacks and hands it back: for callbacks
     * that block outside socknet (files, a database, long locks). */
    int fibers;
    /* fiber mode: the fiber threads, 0 = one per CPU; thread mode: the
     * most worker threads (callbacks running at once), 0 = 16; at most
     * 65536 */
    int threads;
} sn_loop_config;

/* Makes a loop and its threads. cfg may be NULL. 0, SN_EINVAL, SN_ENOMEM,
 * SN_EAGAIN (no thread). */
SN_API int sn_loop_new(sn_loop **out, const sn_loop_config *cfg);
/* Closes every socket of the loop (each gets its close callback, error
 * SN_ESTOPPED), waits for their callbacks to end, and stops the threads;
 * new sockets are refused (SN_ESTOPPED). Not from a callback. 0, or
 * SN_EINVAL. */
SN_API int sn_loop_stop(sn_loop *l);
/* Stops, then frees the loop. Handles not yet freed stay valid (their
 * calls return SN_ECLOSED) until sn_ev_free. NULL is a no-op. */
SN_API void sn_loop_free(sn_loop *l);

typedef enum sn_ev_type {
    SN_EV_MESSAGE = 1,   /* bytes as they came; a whole WebSocket message; a datagram */
    SN_EV_CONNECT = 2,   /* connected (after the TLS handshake) and started */
    SN_EV_CLOSE = 3,     /* closed: the last event */
    SN_EV_ERROR = 4,     /* an error; a close follows when it ended the socket */
    SN_EV_LISTENING = 5, /* a UDP socket is started and receives */
} sn_ev_type;
#define SN_EV_TYPES 6

typedef struct sn_ev sn_ev;
typedef struct sn_ev_info {
    int type; /* sn_ev_type */
    /* MESSAGE: the bytes (a WebSocket text message is also NUL-terminated) */
    const void *data;
    size_t len;  /* MESSAGE: their number (a datagram's size) */
    int ws_type; /* MESSAGE on a WebSocket: SN_WS_TEXT or SN_WS_BINARY */
    /* MESSAGE on UDP: the sender (OpenHarmony's remoteInfo: sn_addr_format_ip,
     * sn_addr_port, sn_addr_family; its size is len); CONNECT: the peer;
     * LISTENING: the local address. NULL otherwise. */
    const sn_addr *addr;
    /* CLOSE: what ended the socket: SN_EOF (the peer closed; for a WebSocket,
     * its close frame), SN_ECLOSED (sn_ev_close), SN_ESTOPPED (the loop
     * stopped), or the error (also reported by an ERROR event just before).
     * ERROR: the error; on a connected UDP socket SN_ECONNREFUSED (an earlier
     * datagram was refused) does not end it. */
    int error;
    int ws_code; /* CLOSE and ERROR on a WebSocket: the peer's close code, or 0 */
    /* ERROR and CLOSE: why, in words: the TLS alert or verification error,
     * the WebSocket peer's close reason, or the error's text. */
    const char *reason;
} sn_ev_info;
typedef void (*sn_ev_fn)(sn_ev *e, const sn_ev_info *ev, void *user);

/* A TCP, local or TLS client for the loop to connect (OpenHarmony's socket
 * instance): set its callbacks, then sn_ev_connect. 0, SN_EINVAL,
 * SN_ENOMEM, SN_ESTOPPED (the loop stops). */
SN_API int sn_ev_client(sn_ev **out, sn_loop *l);

typedef struct sn_ev_connect_config {
    const char *host; /* a name, an address, or "unix:PATH" / "unix:@NAME" */
    int port;
    /* the socket's options, bind_host / bind_port (bind before connect)
     * included; NULL = the defaults */
    const sn_sock_options *sock;
    /* the connect and the TLS handshake together, in ms; 0 = the options'
     * connect_timeout_ms for the connect (else its default) and the
     * context's handshake timeout */
    int timeout_ms;
    sn_tls *tls;             /* a client context: TLS after the connect (kept
                                alive by the caller until the close); NULL = plain */
    const char *server_name; /* TLS: the name verified and sent (SNI); NULL = host */
} sn_ev_connect_config;

/* Starts connecting a client made by sn_ev_client; returns at once. The
 * configuration is copied. Then the connect callback runs once connected
 * (after the handshake, with TLS), or error and close do with why it failed
 * (SN_ETIMEDOUT, SN_ECONNREFUSED, a TLS error and its reason, ...); a close
 * meanwhile cancels the connect (close error SN_ECLOSED). 0, SN_EINVAL (a
 * bad field), SN_EBADSTATE (not a client, or started already), SN_ECLOSED
 * (closed, or its loop stopped), SN_ENOMEM. */
SN_API int sn_ev_connect(sn_ev *e, const sn_ev_connect_config *cfg);

/* Puts a connected connection (TCP, local or TLS) into event mode; the
 * loop owns it from now on. 0, SN_EINVAL, SN_ENOMEM, SN_ESTOPPED. */
SN_API int sn_ev_from_conn(sn_ev **out, sn_loop *l, sn_conn *c);
/* A WebSocket session (sn_ws_connect, or sn_ws_accept on a connection you
 * own): messages are whole messages, within the session's limits, and its
 * pings and their timeout go on while it idles (within a second of their
 * time). own_conn 1: the loop frees the session's connection after it (for
 * sn_ws_accept on a connection you hand over); 0: the session owns its
 * connection (sn_ws_connect). 0, SN_EINVAL, SN_ENOMEM, SN_ESTOPPED. */
SN_API int sn_ev_from_ws(sn_ev **out, sn_loop *l, sn_ws *ws, int own_conn);
/* A UDP socket (bound, or connected): a message per datagram, with its
 * sender; the listening event at the start. 0, SN_EINVAL, SN_ENOMEM,
 * SN_ESTOPPED. */
SN_API int sn_ev_from_udp(sn_ev **out, sn_loop *l, sn_udp *u);

/* Inside the connect callback of a server's connection (or of one from
 * sn_ev_from_conn): reads the HTTP request head, answers 404 when path is
 * given and the request's path is another (NULL: any path), else takes
 * the WebSocket upgrade (sn_ws_accept, with cfg; NULL = the defaults) and
 * makes the socket a WebSocket session: from then on its messages are
 * whole WebSocket messages (ws_type set), sn_ev_ws gives the session
 * (sn_ws_target, sn_ws_subprotocol, sends), its pings go on while it idles,
 * and sn_ev_close_ws works. All within dl. On failure the request has been
 * answered (400, 404, 405, 408, 426, ...) where it could be: close the
 * socket. 0, SN_EINVAL, SN_EBADSTATE (not in a connection's connect
 * callback), SN_EWS_HANDSHAKE (refused and answered), or the read's or
 * the handshake's error. */
SN_API int sn_ev_accept_ws(sn_ev *e, const char *path, const sn_ws_config *cfg, sn_deadline dl);

/* Sets the callback of one event type (fn NULL: none): OpenHarmony's on().
 * 0 or SN_EINVAL. */
SN_API int sn_ev_on(sn_ev *e, int type, sn_ev_fn fn, void *user);
/* Unsubscribes (OpenHarmony's off()): sn_ev_on with fn NULL. */
SN_API int sn_ev_off(sn_ev *e, int type);
/* Starts a socket from sn_ev_from_*: the connect (or listening) callback
 * first. 0, SN_EINVAL, SN_EBADSTATE (started already, or a client:
 * sn_ev_connect starts those), SN_ECLOSED (closed, or its loop stopped),
 * SN_ENOMEM. */
SN_API int sn_ev_start(sn_ev *e);

/* Sends data from any thread, whole, flushed before dl (from the close
 * callback on, SN_ECLOSED): on a connection,
 * bytes; on a WebSocket, a binary message; on a UDP socket, a datagram to
 * its connected peer (sn_udp_send_to on sn_ev_udp(e) inside a callback for
 * others). 0, SN_EINVAL, SN_ENOTCONN (a client not yet connected),
 * SN_ECLOSED (the socket is closed), or the send's error. */
SN_API int sn_ev_send(sn_ev *e, const void *data, size_t len, sn_deadline dl);
/* A WebSocket text message (UTF-8, NUL-terminated) from any thread; on
 * other sockets the text's bytes. Returns as sn_ev_send. */
SN_API int sn_ev_send_text(sn_ev *e, const char *text, sn_deadline dl);

/* The socket's connection (NULL for UDP, and for a client until its
 * connect callback), session (WebSocket) and UDP socket, for blocking
 * calls inside its callbacks and for the getters (sn_tls_cipher, the
 * addresses, sn_conn_sock). Valid until the close callback returns. */
SN_API sn_conn *sn_ev_conn(sn_ev *e);
SN_API sn_ws *sn_ev_ws(sn_ev *e);
SN_API sn_udp *sn_ev_udp(sn_ev *e);

/* Closes from any thread (OpenHarmony's close()), at once: a callback in
 * progress sees its blocking calls return SN_ECANCELED; the close
 * callback then runs (error SN_ECLOSED) and what the socket held is freed.
 * A WebSocket peer sees the connection end (1006): for a close handshake,
 * sn_ev_close_ws. Again, or after the close: nothing. 0, or SN_EINVAL. */
SN_API int sn_ev_close(sn_ev *e);
/* A WebSocket's close handshake from any thread: sends the close frame
 * (sn_ws_close_send: code 1000-1003, 1007-1014 or 3000-4999, or 0 for
 * none), and the peer's answer ends the socket (close error SN_EOF, ws_code
 * the code it echoed). 0, SN_EINVAL, SN_EBADSTATE (not a WebSocket),
 * SN_ECLOSED, or the send's error. */
SN_API int sn_ev_close_ws(sn_ev *e, int code, const char *reason);
/* Takes one more reference on the handle (any thread, while it is valid:
 * in a callback, say, for a socket a server made), released by one more
 * sn_ev_free. 0 or SN_EINVAL. */
SN_API int sn_ev_hold(sn_ev *e);
/* Lets go of the handle; the socket lives on until it closes (close it
 * first to end it). NULL is a no-op. */
SN_API void sn_ev_free(sn_ev *e);

#ifdef __cplusplus
}
#endif
#endif
