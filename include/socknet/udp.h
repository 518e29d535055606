/* SPDX-License-Identifier: MIT */
/*
 * socknet/udp.h: UDP sockets: bind, connect to a default peer, send to an
 * address, receive with the sender's address and a deadline, truncation
 * reported, options with getters, broadcast, multicast, batches of
 * datagrams (recvmmsg / sendmmsg), and a datagram server with a worker pool.
 *
 *     sn_udp *u;
 *     sn_udp_config cfg = { .host = "127.0.0.1", .port = 0 };
 *     if (sn_udp_bind(&u, &cfg) < 0) return;
 *     char buf[2048];
 *     sn_addr from;
 *     ssize_t n = sn_udp_recv_from(u, buf, sizeof buf, &from, NULL, sn_deadline_in(1000));
 *     if (n >= 0) sn_udp_send_to(u, buf, (size_t)n, &from, 0);
 *
 * Datagrams are whole: a send sends one datagram (0 bytes up to 65,507 on
 * IPv4, 65,527 on IPv6) or fails; a receive returns one datagram. A
 * datagram larger than the caller's buffer is never cut silently: the
 * receive fills the buffer, reports the datagram's real size and returns
 * SN_ETRUNCATED (the batch receive sets a per-message flag instead).
 *
 * Deadlines (socknet/common.h) as on TCP: SN_DEADLINE_DEFAULT is the
 * socket's read (or write) timeout from the start of the call, 60 s unless
 * set; SN_DEADLINE_NEVER waits for as long as it takes. A receive waits for
 * a datagram; a send waits only when the socket's send buffer is full. A
 * receive that must wait blocks inside recvmsg, bounded by SO_RCVTIMEO (one
 * system call per datagram); on a fiber of a socknet server it parks the
 * fiber instead.
 *
 * Connected sockets: sn_udp_connect (or sn_udp_set_peer) gives a socket a
 * default peer. The kernel then delivers only that peer's datagrams, and
 * errors the network reports about the peer (ICMP port unreachable: nothing
 * listens there) come back as SN_ECONNREFUSED from a later send or
 * receive, once per report. Unconnected sockets receive from anyone and
 * hear no such errors.
 *
 * IPv6: a socket bound to an IPv6 address is IPv6-only by default (v6only);
 * with v6only SN_OFF it is dual stack: IPv4 peers then appear as
 * IPv4-mapped IPv6 addresses (::ffff:192.0.2.1), and an IPv4 sn_addr given
 * to a send is mapped the same way.
 *
 * Thread safety: an sn_udp belongs to one thread, except that the sends
 * (sn_udp_send, sn_udp_send_to, sn_udp_send_batch) and the getters may be
 * called from other threads at the same time as one receiving thread; every
 * datagram is sent whole by one system call. sn_udp_cancel may be called
 * from any thread until sn_udp_free. The server is fully
 * thread-safe (see sn_udp_server below).
 * Ownership: sn_udp_bind, sn_udp_open and sn_udp_connect give the caller a
 * new sn_udp; sn_udp_free closes and releases it. Buffers and addresses
 * stay the caller's.
 */
#ifndef SOCKNET_UDP_H
#define SOCKNET_UDP_H

#include "socknet/addr.h"
#include "socknet/common.h"
#include "socknet/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_udp sn_udp;

/* The largest UDP payloads: 65,535 less the UDP header (8) and, on IPv4,
 * the IP header (20); IPv6's payload length leaves its own header out. */
#define SN_UDP_MAX_IPV4 65507
#define SN_UDP_MAX_IPV6 65527

/*
 * Socket options, each with a setter and a getter (sn_udp_set_option /
 * sn_udp_get_option) and a field in sn_udp_options.
 *
 * Defaults: the system's for every kernel option (TTL 64, multicast TTL 1,
 * multicast loopback on, broadcast off, no address or port reuse, buffer
 * sizes from net.core.rmem_default / wmem_default); read and write
 * timeouts 60000 ms.
 */
typedef enum sn_udp_opt {
    SN_UDP_OPT_RCVBUF = 1,     /* bytes, 1..INT_MAX/2; the getter reports the
                                  kernel's value, which Linux doubles for
                                  bookkeeping (and clamps to its limits) */
    SN_UDP_OPT_SNDBUF,         /* bytes; likewise */
    SN_UDP_OPT_REUSEADDR,      /* 0/1: SO_REUSEADDR (set before bind) */
    SN_UDP_OPT_REUSEPORT,      /* 0/1: SO_REUSEPORT (set before bind) */
    SN_UDP_OPT_BROADCAST,      /* 0/1: SO_BROADCAST (sends to a broadcast
                                  address fail with SN_EACCES without it) */
    SN_UDP_OPT_TOS,            /* 0..255: IP_TOS, or IPV6_TCLASS on IPv6 */
    SN_UDP_OPT_TTL,            /* 1..255: IP_TTL, or IPV6_UNICAST_HOPS */
    SN_UDP_OPT_READ_TIMEOUT,   /* ms, or SN_TIMEOUT_NEVER; 0 restores the
                                  default (the getter then reports 60000) */
    SN_UDP_OPT_WRITE_TIMEOUT,  /* ms, or SN_TIMEOUT_NEVER; 0 = default 60000 */
    SN_UDP_OPT_V6ONLY,         /* 0/1: IPV6_V6ONLY (IPv6 sockets only; the
                                  kernel takes it only before bind) */
    SN_UDP_OPT_MULTICAST_TTL,  /* 0..255: IP_MULTICAST_TTL, or
                                  IPV6_MULTICAST_HOPS (0 = this host only) */
    SN_UDP_OPT_MULTICAST_LOOP, /* 0/1: IP_MULTICAST_LOOP or IPV6_MULTICAST_LOOP:
                                  whether this host's own members of a group
                                  receive what the socket sends to it */
    SN_UDP_OPT_MULTICAST_IF,   /* interface index (if_nametoindex(3)), 0 =
                                  the system's choice: where multicast
                                  sends go out (IP_MULTICAST_IF or
                                  IPV6_MULTICAST_IF) */
    SN_UDP_OPT_ERROR,          /* get only: pending socket error, as SN_E* or
                                  0 (reading it clears it); setting: SN_EINVAL */
} sn_udp_opt;

/* Sets one option. Returns 0, SN_EINVAL (NULL u, unknown option, value out
 * of range, or SN_UDP_OPT_ERROR), SN_ENOPROTOOPT (V6ONLY on IPv4),
 * SN_EBADSTATE (closed socket), SN_ENODEV (MULTICAST_IF: no such
 * interface), or the system's -errno (e.g. SN_EINVAL for V6ONLY after
 * bind). */
SN_API int sn_udp_set_option(sn_udp *u, int opt, int value);

/* Reads one option into *value (switches read 0 or 1; MULTICAST_IF reads
 * the index last set, 0 if none). Same errors as the setter; SN_EINVAL
 * also for a NULL value. */
SN_API int sn_udp_get_option(const sn_udp *u, int opt, int *value);

/* The options applied to a socket as it is created (before bind). Every
 * field's zero keeps the default; switches take SN_ON or SN_OFF. */
typedef struct sn_udp_options {
    int rcvbuf;           /* bytes; 0 = system */
    int sndbuf;           /* bytes; 0 = system */
    int reuseaddr;        /* SN_ON / SN_OFF (default) */
    int reuseport;        /* SN_ON / SN_OFF (default) */
    int broadcast;        /* SN_ON / SN_OFF (default) */
    int tos;              /* 1..255; 0 = system (0) */
    int ttl;              /* 1..255; 0 = system (64) */
    int read_timeout_ms;  /* ms; 0 = 60000; SN_TIMEOUT_NEVER */
    int write_timeout_ms; /* ms; 0 = 60000; SN_TIMEOUT_NEVER */
    int multicast_ttl;    /* 1..255; 0 = system (1); SN_OFF = 0 (this host only) */
    int multicast_loop;   /* SN_ON (system default) / SN_OFF */
    int multicast_if;     /* interface index; 0 = system */
} sn_udp_options;

/* Applies every non-default (non-zero) field of opt to u, through
 * sn_udp_set_option. A switch other than 0, SN_ON or SN_OFF and any value
 * out of range give SN_EINVAL. Stops at the first failure and returns its
 * code, else 0. */
SN_API int sn_udp_apply_options(sn_udp *u, const sn_udp_options *opt);

typedef struct sn_udp_config {
    const char *host;   /* local address: numeric ip or name; NULL or "" =
                           "0.0.0.0" (all IPv4); "::" = all IPv6 */
    int port;           /* 0 = the kernel picks (read it with sn_udp_local_addr) */
    int v6only;         /* IPv6 hosts: SN_ON (default) = IPv6 only; SN_OFF =
                           dual stack (IPv4 peers as ::ffff:a.b.c.d) */
    sn_udp_options opt; /* applied before bind */
} sn_udp_config;

/* Creates a UDP socket bound to cfg->host:cfg->port (a name that resolves
 * to several addresses binds the first) with cfg->opt applied before bind.
 * cfg NULL binds 0.0.0.0 on a port the kernel picks. State: bound.
 * Returns 0, SN_EADDRINUSE, SN_EACCES (privileged port), SN_EADDRNOTAVAIL
 * (no such local address), a resolver error (SN_ENONAME, ...),
 * SN_EBADADDR (port out of range), SN_EAFNOSUPPORT (a "unix:" host: local
 * sockets are streams only, socknet/sock.h), SN_EINVAL (NULL out, bad
 * v6only or option), SN_EMFILE, SN_ENOMEM. *out is untouched on error. */
SN_API int sn_udp_bind(sn_udp **out, const sn_udp_config *cfg);

/* Creates an unbound UDP socket of family SN_AF_INET or SN_AF_INET6 (0
 * means SN_AF_INET) with opt (may be NULL) applied. State: open; the
 * kernel binds it to a free port on its first send (state: bound). An IPv6
 * socket is left as the system makes it (dual stack unless
 * net.ipv6.bindv6only is set), so it can send to IPv4 addresses too.
 * Returns 0, SN_EINVAL (NULL out, unknown family, bad option),
 * SN_EAFNOSUPPORT (no IPv6 in this system), SN_EMFILE, SN_ENOMEM. */
SN_API int sn_udp_open(sn_udp **out, int family, const sn_udp_options *opt);

/* Creates a UDP socket connected to host:port (a name or numeric ip), with
 * opt (may be NULL) applied. Nothing is sent: a connected UDP socket only
 * fixes its peer, so this is the first address the name resolves to,
 * unless the system cannot reach that one at all (no route, no IPv6): then
 * the next, up to 16. State: connected.
 * Returns 0, a resolver error (SN_ENONAME, SN_ERESOLVE_AGAIN,
 * SN_ERESOLVE), SN_EBADADDR (port outside 0..65535), SN_EAFNOSUPPORT (a
 * "unix:" host), SN_EINVAL (NULL out, NULL or "" host, bad option),
 * SN_ENETUNREACH, SN_EMFILE, SN_ENOMEM.
 * *out is untouched on error. The resolver has no deadline. */
SN_API int sn_udp_connect(sn_udp **out, const char *host, int port, const sn_udp_options *opt);

/* Gives u a default peer (connect(2)): sends without an address go there
 * and only its datagrams are received. An IPv4 peer of a dual-stack IPv6
 * socket is mapped. peer NULL (or an empty address) dissolves the
 * association: a socket made by sn_udp_bind keeps its address and port
 * (state: bound); one the kernel bound on its first send or connect gives
 * its port up (state: open; the next send picks one). Returns 0,
 * SN_EBADSTATE (closed), SN_EAFNOSUPPORT (an IPv6 peer for an IPv4
 * socket), SN_ENETUNREACH, SN_EADDRINUSE (dissolving: another socket took
 * the port meanwhile; state: open), SN_EINVAL (NULL u), or -errno. */
SN_API int sn_udp_set_peer(sn_udp *u, const sn_addr *peer);

/* Sends one datagram of len bytes (0 is allowed; buf may then be NULL) to
 * the address to (to NULL or empty: the connected peer). Waits only while
 * the send buffer is full, up to the deadline (SN_DEADLINE_DEFAULT = the
 * write timeout). Returns len, or SN_EMSGSIZE (larger than the protocol
 * allows), SN_ENOTCONN (no address and no peer), SN_EAFNOSUPPORT (an
 * address of the other family), SN_EACCES (broadcast without
 * SN_UDP_OPT_BROADCAST), SN_ECONNREFUSED (connected: a datagram before was
 * refused by the peer), SN_ENETUNREACH, SN_ETIMEDOUT, SN_EBADSTATE
 * (closed), SN_EINVAL (NULL u, or NULL buf with len > 0), or -errno. */
SN_API ssize_t sn_udp_send_to(sn_udp *u, const void *buf, size_t len, const sn_addr *to,
                              sn_deadline dl);

/* sn_udp_send_to the connected peer. SN_ENOTCONN when not connected. */
SN_API ssize_t sn_udp_send(sn_udp *u, const void *buf, size_t len, sn_deadline dl);

/* Receives one datagram into buf (cap bytes; buf may be NULL when cap is 0),
 * waiting for one up to the deadline (SN_DEADLINE_DEFAULT = the read
 * timeout). from (may be NULL) gets the sender; size (may be NULL) gets the
 * datagram's real size, whether or not it fit.
 * Returns the datagram's size (0..cap: it fit, 0 for an empty datagram),
 * or SN_ETRUNCATED: the datagram was larger than cap; buf holds its first
 * cap bytes, *size its real size, *from the sender, and the rest is gone
 * (the datagram is consumed).
 * Other errors: SN_ETIMEDOUT (nothing arrived; nothing consumed),
 * SN_ECONNREFUSED (connected: the peer refused an earlier datagram),
 * SN_EBADSTATE (closed), SN_EINVAL (NULL u, or NULL buf with cap > 0), or
 * -errno. *from and *size are set only when a datagram was received. */
SN_API ssize_t sn_udp_recv_from(sn_udp *u, void *buf, size_t cap, sn_addr *from, size_t *size,
                                sn_deadline dl);

/* sn_udp_recv_from without the sender's address. */
SN_API ssize_t sn_udp_recv(sn_udp *u, void *buf, size_t cap, size_t *size, sn_deadline dl);

/*
 * Batches: many datagrams per system call (recvmmsg / sendmmsg), for
 * programs that move many small datagrams. Each message has its own
 * buffer and address.
 */
typedef struct sn_udp_msg {
    void *buf;     /* send: the datagram; receive: room for it */
    size_t len;    /* send: its length; receive: set to the bytes stored in buf */
    size_t cap;    /* receive: room in buf (unused by sends) */
    size_t size;   /* receive: set to the datagram's real size */
    int truncated; /* receive: set to 1 when size > cap (buf holds the first
                      cap bytes), else 0 */
    sn_addr addr;  /* send: the destination (empty: the connected peer);
                      receive: set to the sender */
} sn_udp_msg;

/* The most messages one batch call takes. A larger n is clamped: the call
 * then receives or sends at most this many and returns that count, so a
 * sender compares the result with the count it passed, clamped. */
#define SN_UDP_BATCH_MAX 1024

/* Receives up to n datagrams into msgs[0..n): waits for the first up to
 * the deadline (SN_DEADLINE_DEFAULT = the read timeout), then takes the
 * ones already queued without waiting. Returns the number received (>= 1;
 * each message's len, size, truncated and addr are set), or SN_ETIMEDOUT,
 * SN_ECONNREFUSED, SN_EBADSTATE (closed), SN_EINVAL (NULL u or msgs, n < 1,
 * or a NULL buf with cap > 0), or -errno. A truncated datagram is not an
 * error here: check each message's truncated flag. */
SN_API int sn_udp_recv_batch(sn_udp *u, sn_udp_msg *msgs, int n, sn_deadline dl);

/* Sends msgs[0..n) in order, in as few system calls as the kernel allows,
 * waiting while the send buffer is full up to the deadline
 * (SN_DEADLINE_DEFAULT = the write timeout). Returns n when all were sent; when a
 * message fails after some were sent, the number sent (the failing one is
 * msgs[returned count]; sending it again reports its error); when the
 * first fails, its error, as sn_udp_send_to. SN_EINVAL also for NULL msgs
 * or n < 1. */
SN_API int sn_udp_send_batch(sn_udp *u, const sn_udp_msg *msgs, int n, sn_deadline dl);

/*
 * Multicast (IPv4 and IPv6). group is a numeric multicast address of the
 * socket's family ("239.255.0.1", "ff15::1234"; an IPv4 group on a
 * dual-stack IPv6 socket is also accepted). iface names the interface:
 * NULL or "" = the system's choice (the route to the group), else a name
 * ("eth0", "lo") or a decimal index ("1"). To receive a group's datagrams
 * the socket must also be bound to the group's port (and to the wildcard
 * address, or to the group itself).
 * Returns 0, SN_EBADADDR (malformed group), SN_EINVAL (not a multicast
 * address, NULL arguments), SN_EAFNOSUPPORT (an IPv6 group on an IPv4
 * socket), SN_ENODEV (no such interface, or no route for the group),
 * SN_EADDRINUSE (join: joined already), SN_EADDRNOTAVAIL (leave: not
 * joined), SN_EBADSTATE (closed), or -errno.
 */
SN_API int sn_udp_join(sn_udp *u, const char *group, const char *iface);
SN_API int sn_udp_leave(sn_udp *u, const char *group, const char *iface);

/* The state (sn_sock_state: SN_SOCK_OPEN, SN_SOCK_BOUND, SN_SOCK_CONNECTED
 * or SN_SOCK_CLOSED); SN_SOCK_CLOSED for NULL. */
SN_API int sn_udp_get_state(const sn_udp *u);

/* The local address (with the port the kernel chose). Returns 0,
 * SN_EBADSTATE (closed, or open and not bound yet), SN_EINVAL (NULL
 * arguments), or -errno. */
SN_API int sn_udp_local_addr(const sn_udp *u, sn_addr *out);

/* The connected peer. Returns 0, SN_ENOTCONN, SN_EBADSTATE (closed),
 * SN_EINVAL, or -errno. */
SN_API int sn_udp_remote_addr(const sn_udp *u, sn_addr *out);

/* SN_AF_INET or SN_AF_INET6; 0 for NULL. */
SN_API int sn_udp_family(const sn_udp *u);

/* The descriptor (still owned by the sn_udp; its mode and SO_RCVTIMEO are
 * the library's), or -1 once closed. */
SN_API int sn_udp_fd(const sn_udp *u);

/* Closes the descriptor (state: closed); the sn_udp stays valid for its
 * getters until sn_udp_free. Returns 0 or -errno (the descriptor is closed
 * either way); closing a closed socket returns 0. Not while another thread
 * uses the socket: that thread cancels it first (sn_udp_cancel). */
SN_API int sn_udp_close(sn_udp *u);

/* Cancels the socket from any thread or fiber: a receive or send blocked
 * in it returns SN_ECANCELED at once, and so does every later receive or
 * send. The socket stays open and valid until its owner closes and frees
 * it; a cancel that meets the owner's close does nothing, so cancelling is
 * safe at any time before sn_udp_free. Any number of times. Returns 0, or
 * SN_EINVAL for NULL. */
SN_API int sn_udp_cancel(sn_udp *u);

/* Closes if open and releases u. NULL is a no-op. */
SN_API void sn_udp_free(sn_udp *u);

/*
 * The datagram server: one bound socket, `workers` threads receiving
 * datagrams from it and calling the handler with each, the sender's
 * address and a way to reply:
 *
 *     static void echo(const sn_udp_dgram *d, void *user) {
 *         sn_udp_reply(d, d->data, d->len);
 *     }
 *     sn_udp_server_config cfg = { .host = "127.0.0.1", .port = 9000, .handler = echo };
 *
 * With more workers than CPUs, workers take turns: at most one per CPU
 * receives at a time, and it handles what it received before it receives
 * again, so that a datagram finds a worker awake rather than waking one
 * that sleeps (with every worker blocked in a receive of its own, each
 * datagram cost a thread switch). When a worker has been in its handlers
 * for 1 ms, another takes its turn; while handlers keep taking that long,
 * each worker gives its turn up as soon as it has received, so handlers
 * that block (a lookup, a file) still run on all the workers at once. An
 * idle server's workers all sleep. With a worker per CPU (the default)
 * every worker receives.
 *
 * Datagrams larger than buffer_size are dropped and counted (truncated)
 * unless deliver_truncated is SN_ON. With batch > 1 each worker takes up
 * to `batch` queued datagrams per system call (recvmmsg) and handles them
 * in order; the replies (sn_udp_reply, sn_udp_server_send_to) its handlers
 * make while it handles more than one are held, up to 2,048 bytes each,
 * and sent together (sendmmsg) in their order after the last handler of
 * the batch. Such a reply returns its length at once; one that then
 * fails is counted in errors and reported to on_error. A larger reply
 * sends what is held, then itself, at once. So a handler that replies and
 * then waits for the peer's answer should not run with batch > 1: its
 * reply leaves only when the batch's handlers are done.
 *
 * Stopping (sn_udp_server_stop, from any thread, a handler included): the
 * socket stops receiving (shutdown), which wakes every worker blocked in a
 * receive at once; datagrams still queued are dropped; workers finish the
 * handler they are in (replies still work) and exit; every thread is
 * joined and the socket closed before the stop returns. From a handler the
 * stop only begins (it cannot join its own thread): a later stop from
 * outside, or sn_udp_server_free, completes it.
 *
 * Thread safety: sn_udp_server_stop, sn_udp_server_stats_get,
 * sn_udp_server_local_addr, sn_udp_server_port, sn_udp_server_send_to and
 * sn_udp_reply may be called from any thread; new, start and free belong
 * to the owner. Handlers run on several workers at once.
 * Ownership: the server copies the configuration (the host string
 * included); a datagram handed to a handler (its data and address) is
 * valid only during that call.
 */
typedef struct sn_udp_server sn_udp_server;

/* One datagram, as a handler sees it. */
typedef struct sn_udp_dgram {
    const void *data;      /* its bytes (the worker's buffer) */
    size_t len;            /* bytes in data */
    size_t size;           /* the datagram's real size (> len only when
                              truncated) */
    int truncated;         /* 1: larger than buffer_size (only delivered with
                              deliver_truncated SN_ON) */
    sn_addr from;          /* the sender */
    sn_udp_server *server; /* the server that received it */
} sn_udp_dgram;

/* Handles one datagram; runs on a worker thread. */
typedef void (*sn_udp_handler)(const sn_udp_dgram *d, void *user);

typedef struct sn_udp_server_config {
    const char *host;   /* as in sn_udp_config; NULL or "" = "0.0.0.0" */
    int port;           /* 0 = the kernel picks */
    int v6only;         /* IPv6 hosts: SN_ON (default) / SN_OFF */
    sn_udp_options opt; /* for the socket (timeouts: the write timeout
                           bounds each reply, and each reply of a
                           batch's sending) */

    sn_udp_handler handler; /* required */
    void *user;             /* passed to the handler and on_error */

    int workers;           /* worker threads, taking turns to receive (at
                              most one per CPU at a time); 0 = the number
                              of CPUs; at most 1024 */
    size_t buffer_size;    /* bytes per datagram buffer; 0 = 65536 (any
                              IPv4 or IPv6 datagram fits); at most 16 MiB */
    int batch;             /* datagrams per receive call (recvmmsg); 0 = 1;
                              at most 64; each worker holds batch buffers */
    size_t stack_size;     /* bytes per worker; 0 = 256 KiB */
    int deliver_truncated; /* SN_ON: hand truncated datagrams to the handler
                              (d->truncated set); SN_OFF (default): drop them */

    /* What the server absorbed, with a short static description, on the
     * worker that met it: a failed receive (the worker backs off 10 ms),
     * a dropped truncated datagram (err SN_ETRUNCATED), or a reply held
     * for a batch that could not be sent (its error). May be NULL. */
    void (*on_error)(sn_udp_server *s, int err, const char *what, void *user);
} sn_udp_server_config;

/* Checks and copies the configuration; binds nothing yet. Returns 0,
 * SN_EINVAL (no handler, counts or sizes out of range, bad switch),
 * SN_ENOMEM. */
SN_API int sn_udp_server_new(sn_udp_server **out, const sn_udp_server_config *cfg);

/* Binds the socket and starts the workers. Returns 0, or the bind's error
 * (SN_EADDRINUSE, ...; nothing is left open), SN_EBADSTATE (started or
 * stopped before), SN_EAGAIN (the system refused a thread), SN_ENOMEM. */
SN_API int sn_udp_server_start(sn_udp_server *s);

/* The bound address, with the port the kernel chose. Returns 0,
 * SN_EBADSTATE (not started), SN_EINVAL. */
SN_API int sn_udp_server_local_addr(sn_udp_server *s, sn_addr *out);

/* The bound port, or a negative SN_E* code (see above). */
SN_API int sn_udp_server_port(sn_udp_server *s);

/* Replies to the sender of d: one datagram from the server's socket.
 * Returns len, or an error as sn_udp_send_to (the write timeout bounds a
 * wait for room); SN_EINVAL for NULL d. Counted in the stats (sent or
 * errors). While the worker handles a batch of several datagrams the
 * reply is held and sent with the batch's others (see batch above): len
 * comes back at once, and a failure later is counted and reported to
 * on_error. Valid during the handler call (copy d->from and use
 * sn_udp_server_send_to to answer later). */
SN_API ssize_t sn_udp_reply(const sn_udp_dgram *d, const void *buf, size_t len);

/* Sends one datagram from the server's socket to any address, from any
 * thread. Returns len, or an error as sn_udp_send_to; SN_EBADSTATE when
 * not running (not started, or stopped). From a handler while its worker
 * handles a batch, it is held as sn_udp_reply's replies are. */
SN_API ssize_t sn_udp_server_send_to(sn_udp_server *s, const void *buf, size_t len,
                                     const sn_addr *to);

/* Stops (see above). Idempotent; a concurrent call waits until the stop is
 * complete. Before sn_udp_server_start it marks the server stopped.
 * Returns 0. */
SN_API int sn_udp_server_stop(sn_udp_server *s);

typedef struct sn_udp_server_stats {
    int workers;             /* worker threads running */
    uint64_t received;       /* datagrams received (truncated ones included) */
    uint64_t sent;           /* datagrams sent (replies and send_to) */
    uint64_t errors;         /* failed receives and sends */
    uint64_t truncated;      /* datagrams larger than buffer_size */
    uint64_t bytes_received; /* bytes of the datagrams received (as stored) */
    uint64_t bytes_sent;
} sn_udp_server_stats;

/* The counters so far (they survive the stop); zeros for a NULL s. */
SN_API void sn_udp_server_stats_get(sn_udp_server *s, sn_udp_server_stats *out);

/* Stops if running and releases everything. NULL is a no-op. Not from a
 * handler. */
SN_API void sn_udp_server_free(sn_udp_server *s);

#ifdef __cplusplus
}
#endif
#endif
