/* SPDX-License-Identifier: MIT */
/*
 * socknet/sock.h: stream sockets, TCP and local (Unix-domain): connect
 * with a deadline, listen, accept, socket options with getters, state,
 * addresses, peer credentials, half-close.
 *
 * Local sockets. A host "unix:PATH" or "unix:@NAME" (socknet/addr.h) in
 * sn_tcp_connect, sn_listen_config or an sn_addr makes the same calls work
 * on a local stream socket (AF_UNIX, SOCK_STREAM) instead of TCP; the port
 * is ignored. Everything else is the same: connections (socknet/chan.h),
 * deadlines, the server and its handlers. What differs:
 *   - Options: a local socket takes RCVBUF, SNDBUF, the three timeouts and
 *     ERROR; every TCP or IP option (NODELAY, KEEPALIVE..., LINGER,
 *     REUSEADDR, REUSEPORT, TOS, OOBINLINE, FASTOPEN, V6ONLY) gives
 *     SN_ENOPROTOOPT, from the setter, the getter and from sn_sock_options
 *     (the library's defaults, NODELAY on and listeners' REUSEADDR on,
 *     apply to TCP only).
 *   - Listening on a path: if bind finds the path taken,
 *       - by a socket nobody listens on (a connect to it is refused: its
 *         server died without removing it), the stale file is removed and
 *         bound again;
 *       - by a socket someone listens on: SN_EADDRINUSE (that listener sees
 *         one connection open and close: the probe);
 *       - by anything that is not a socket: SN_EEXIST, and nothing is
 *         removed.
 *
 *     The check and the removal are not one atomic step: two processes
 *     starting on the same stale path at the same moment need a lock file
 *     of their own. Closing the listener (sn_sock_close, sn_sock_free, a
 *     server's stop) removes the file, if it is still the one it bound.
 *     An abstract name ("unix:@NAME") has no file: it is free as soon as
 *     its socket closes, and a live one gives SN_EADDRINUSE.
 *   - A name longer than SN_LOCAL_PATH_MAX (107) bytes: SN_ENAMETOOLONG.
 *   - Connecting while the listener's backlog is full waits (retrying with
 *     short pauses, the kernel has nothing to poll for) until the deadline.
 *   - sn_sock_peer_cred gives the peer process's pid, uid and gid.
 *   - Addresses print as "unix:PATH", "unix:@NAME", or "unix:" for the
 *     unnamed end of a connection (a client's, usually).
 *
 * An sn_sock owns one file descriptor. Reading and writing go through a
 * connection (socknet/chan.h), which adds buffering and deadlines; the
 * sn_sock carries the options, the state and the default read and write
 * timeouts those connections use.
 *
 * Descriptor mode: the library never depends on it (every call that must
 * not wait passes MSG_DONTWAIT or polls first). Sockets it creates or
 * adopts are non-blocking; accepted ones are blocking (it saves a system
 * call per connection); a connection switches its descriptor to blocking
 * the first time a read must wait, and from then on waits inside recv,
 * bounded by SO_RCVTIMEO: one system call per wait instead of poll + recv.
 *
 * Thread safety: an sn_sock belongs to one thread, except that
 * sn_sock_shutdown_write and the getters may be called from another thread
 * while the owner is blocked in I/O on it.
 * Ownership: sn_tcp_connect, sn_tcp_listen, sn_sock_accept and
 * sn_sock_from_fd give the caller a new sn_sock; sn_sock_free closes it and
 * releases it.
 */
#ifndef SOCKNET_SOCK_H
#define SOCKNET_SOCK_H

#include "socknet/addr.h"
#include "socknet/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_sock sn_sock;

/* Socket states, as OpenHarmony's getState reports them. */
typedef enum sn_sock_state {
    SN_SOCK_CLOSED = 0,    /* closed (or never opened) */
    SN_SOCK_OPEN = 1,      /* created, neither bound nor connected */
    SN_SOCK_BOUND = 2,     /* bound to a local address */
    SN_SOCK_LISTENING = 3, /* accepting connections */
    SN_SOCK_CONNECTED = 4, /* connected to a peer */
    /* connected, and the peer's close has been seen: a read met the end of
     * its stream (TCP FIN, TLS close_notify) or a reset. Sending may still
     * work (a peer that shut down only its sending side still reads). */
    SN_SOCK_PEER_CLOSED = 5,
} sn_sock_state;

/* The name of a state ("closed", "open", "bound", "listening",
 * "connected", "peer closed"); "unknown" otherwise. Static. */
SN_API const char *sn_sock_state_name(int state);

/*
 * Socket options. Each has a setter and a getter through
 * sn_sock_set_option / sn_sock_get_option, and a field in sn_sock_options
 * for configuring sockets the library creates (clients, listeners, and the
 * connections a listener accepts).
 *
 * Defaults, and why:
 *
 *     NODELAY     on. Writes go through a buffered writer that sends a whole
 *                 message per flush, so Nagle's algorithm can only add delay
 *                 (up to 40 ms against delayed ACKs). Ktor does the same;
 *                 OpenHarmony leaves Nagle on.
 *     KEEPALIVE   off, as the system; KEEPIDLE/KEEPINTVL/KEEPCNT system.
 *     LINGER      off: close returns at once, the kernel sends what is left.
 *     RCVBUF, SNDBUF  system: setting one turns off the kernel's autotuning.
 *     REUSEADDR   on for listeners (restart without waiting out TIME_WAIT),
 *                 off for clients.
 *     REUSEPORT   off.
 *     READ_TIMEOUT, WRITE_TIMEOUT  60000 ms: the default deadline of a read
 *                 or write on a connection (SN_DEADLINE_DEFAULT), so a silent
 *                 peer cannot hold a thread forever. SN_TIMEOUT_NEVER lifts it.
 *     CONNECT_TIMEOUT  30000 ms: the default deadline of sn_tcp_connect.
 *     TOS         system (0).
 *     OOBINLINE   off.
 *     FASTOPEN    off.
 */
typedef enum sn_sock_opt {
    SN_OPT_NODELAY = 1,     /* 0/1: TCP_NODELAY */
    SN_OPT_KEEPALIVE,       /* 0/1: SO_KEEPALIVE */
    SN_OPT_KEEPIDLE,        /* s, 1..32767: idle time before probes */
    SN_OPT_KEEPINTVL,       /* s, 1..32767: time between probes */
    SN_OPT_KEEPCNT,         /* 1..127: probes before the peer is dead */
    SN_OPT_LINGER,          /* -1 = off; s 0..65535 = close waits up to s seconds
                               for unsent data (0 = reset the connection) */
    SN_OPT_RCVBUF,          /* bytes, 1..INT_MAX/2; the getter reports the
                               kernel's value, which Linux doubles for
                               bookkeeping (and clamps to its limits) */
    SN_OPT_SNDBUF,          /* bytes; likewise */
    SN_OPT_REUSEADDR,       /* 0/1: SO_REUSEADDR */
    SN_OPT_REUSEPORT,       /* 0/1: SO_REUSEPORT */
    SN_OPT_READ_TIMEOUT,    /* ms, or SN_TIMEOUT_NEVER; setting 0 restores the
                               default (the getter then reports 60000) */
    SN_OPT_WRITE_TIMEOUT,   /* ms, or SN_TIMEOUT_NEVER; 0 = default 60000 */
    SN_OPT_CONNECT_TIMEOUT, /* ms, or SN_TIMEOUT_NEVER; 0 = default 30000 */
    SN_OPT_TOS,             /* 0..255: IP_TOS, or IPV6_TCLASS on IPv6. On TCP
                               the kernel owns the two ECN bits (0x03), so
                               the getter may differ from the value set there */
    SN_OPT_OOBINLINE,       /* 0/1: SO_OOBINLINE */
    SN_OPT_FASTOPEN,        /* listener: queue length 0..65535 (0 = off);
                               other sockets: 0/1 (TCP_FASTOPEN_CONNECT),
                               which the kernel takes only before connect */
    SN_OPT_V6ONLY,          /* 0/1: IPV6_V6ONLY (IPv6 sockets only; the kernel
                               takes it only before bind) */
    SN_OPT_ERROR,           /* get only: pending socket error, as SN_E* or 0
                               (reading it clears it); setting: SN_EINVAL */
} sn_sock_opt;

/* Sets one option. Returns 0, SN_EINVAL (NULL s, unknown option, value out
 * of range, or SN_OPT_ERROR), SN_ENOPROTOOPT (not for this kind of socket,
 * e.g. V6ONLY on IPv4, NODELAY on a local socket), SN_EBADSTATE (closed socket), or the system's
 * -errno (e.g. SN_EINVAL for V6ONLY after bind). */
SN_API int sn_sock_set_option(sn_sock *s, int opt, int value);

/* Reads one option into *value (switches read 0 or 1). Same errors as the
 * setter; SN_EINVAL also for a NULL value. */
SN_API int sn_sock_get_option(const sn_sock *s, int opt, int *value);

/* The options the library applies to the sockets it creates. Every field's
 * zero keeps the default above; on/off fields take SN_ON or SN_OFF. */
typedef struct sn_sock_options {
    int nodelay;              /* SN_ON (default) / SN_OFF */
    int keepalive;            /* SN_ON / SN_OFF (default) */
    int keepalive_idle_s;     /* s; 0 = system */
    int keepalive_interval_s; /* s; 0 = system */
    int keepalive_count;      /* 0 = system */
    int linger;               /* SN_ON / SN_OFF (default) */
    int linger_s;             /* s, with linger SN_ON (0 = reset on close) */
    int rcvbuf;               /* bytes; 0 = system */
    int sndbuf;               /* bytes; 0 = system */
    int reuseaddr;            /* SN_ON / SN_OFF; default on for listeners */
    int reuseport;            /* SN_ON / SN_OFF (default) */
    int read_timeout_ms;      /* ms; 0 = 60000; SN_TIMEOUT_NEVER */
    int write_timeout_ms;     /* ms; 0 = 60000; SN_TIMEOUT_NEVER */
    int connect_timeout_ms;   /* ms; 0 = 30000; SN_TIMEOUT_NEVER */
    int tos;                  /* 1..255; 0 = system */
    int oobinline;            /* SN_ON / SN_OFF (default) */
    int fastopen;             /* listener: queue length; client: SN_ON; 0 = off */
    /* Clients only (sn_tcp_connect, sn_tcp_connect_addr, sn_tls_connect):
     * the local address to bind before connecting, as OpenHarmony's bind()
     * then connect(). bind_host is a numeric address ("127.0.0.2", "::1",
     * "::" for any IPv6 address) or, for a local client, "unix:PATH" or
     * "unix:@NAME"; NULL binds the any-address of each address tried (with
     * bind_port set) or nothing (bind_port 0). bind_port 1..65535 picks the
     * port, 0 lets the kernel choose. With bind_host set, only the peer's
     * addresses of its family are tried. reuseaddr SN_ON lets a port be
     * bound again while its last connection is in TIME_WAIT. Listeners and
     * servers refuse either field (SN_EINVAL: they have host and port);
     * sn_sock_apply_options ignores both (a socket is bound once). */
    const char *bind_host;
    int bind_port;
} sn_sock_options;

/* Applies every non-default (non-zero) field of opt to s, through
 * sn_sock_set_option. Unlike the sockets the library creates, nodelay 0
 * leaves NODELAY as it is. A switch other than 0, SN_ON or SN_OFF, linger
 * SN_ON with a negative linger_s, and any value outside the option's range
 * give SN_EINVAL; fastopen SN_OFF sets 0. Stops at the first failure and
 * returns its code, else 0. */
SN_API int sn_sock_apply_options(sn_sock *s, const sn_sock_options *opt);

/* Connects to host:port over TCP, or to the local socket "unix:PATH" or
 * "unix:@NAME" (port ignored). host is a name or a numeric address;
 * every address it resolves to (up to 16) is tried in turn until one
 * connects, all within the one deadline (SN_DEADLINE_DEFAULT = the connect
 * timeout from opt, 30 s by default). The next address is tried after a
 * refusal, reset or unreachable network, host or address; any other error
 * (SN_ETIMEDOUT: the deadline is spent) ends the attempt at once. opt may
 * be NULL; NODELAY is on unless opt turns it off. On success *out is a
 * connected socket with opt applied (before connecting, so FASTOPEN works).
 * Returns 0, or the error of the last address tried (SN_ECONNREFUSED,
 * SN_ETIMEDOUT, SN_ENETUNREACH, ...; for a local socket also SN_ENOENT:
 * no such file, SN_ECONNREFUSED: nobody listens, SN_EACCES), or a resolver
 * error (SN_ENONAME, SN_ERESOLVE_AGAIN, SN_ERESOLVE), SN_EBADADDR (port out
 * of range), SN_ENAMETOOLONG, SN_ENOPROTOOPT (a TCP option for a local
 * socket),
 * SN_EINVAL (bad option, NULL out, NULL or "" host), SN_EMFILE,
 * SN_ENOMEM; with a bind address also SN_EBADADDR (a bind_host that is not
 * a numeric or local address, a bind_port outside 0..65535),
 * SN_EAFNOSUPPORT (bind_host's family is not one of the peer's
 * addresses'), SN_EADDRINUSE, SN_EADDRNOTAVAIL (not an address of this
 * machine). *out is untouched on error. */
SN_API int sn_tcp_connect(sn_sock **out, const char *host, int port, const sn_sock_options *opt,
                          sn_deadline dl);

/* Connects to one address. Same contract as sn_tcp_connect; SN_EINVAL for
 * an empty address. */
SN_API int sn_tcp_connect_addr(sn_sock **out, const sn_addr *addr, const sn_sock_options *opt,
                               sn_deadline dl);

typedef struct sn_listen_config {
    const char *host;    /* numeric ip or name; NULL or "" = "0.0.0.0" (all
                            IPv4); "::" = all IPv6; "unix:PATH" or
                            "unix:@NAME" = a local socket */
    int port;            /* 0 = the kernel picks (read it with sn_sock_local_addr);
                            ignored for a local socket */
    int backlog;         /* pending connections; 0 = 511 */
    int v6only;          /* IPv6 hosts: SN_ON (default) = IPv6 only, so "0.0.0.0"
                            and "::" can listen side by side; SN_OFF = dual stack */
    sn_sock_options opt; /* for the listener and the connections it accepts */
    unsigned mode;       /* local socket on a path: the file's permission bits
                            (0660: owner and group may connect), set before
                            it listens; 0 = as the umask leaves them */
} sn_listen_config;

/* Binds and listens, over TCP or on a local socket (see "Local sockets"
 * above: stale files, removal on close). A name that resolves to several
 * addresses binds the first. The listener gets cfg->opt (on TCP: NODELAY
 * on, REUSEADDR on unless turned off; FASTOPEN as a queue length once
 * listening); the connections it accepts get cfg->opt less REUSEADDR,
 * REUSEPORT and FASTOPEN.
 * Returns 0, SN_EADDRINUSE, SN_EACCES (privileged port, or a directory
 * the process may not write), SN_EADDRNOTAVAIL (no such local address),
 * a resolver error, SN_EBADADDR, SN_EEXIST (a local path taken by a file
 * that is not a socket), SN_ENAMETOOLONG, SN_ENOENT (a local path's
 * directory does not exist), SN_ENOPROTOOPT (a TCP option for a local
 * socket), SN_EINVAL (NULL arguments, negative backlog, bad v6only or
 * option, a mode over 07777 or for anything but a local path), SN_EMFILE,
 * SN_ENOMEM. *out is untouched on error. */
SN_API int sn_tcp_listen(sn_sock **out, const sn_listen_config *cfg);

/* Accepts one connection, waiting up to the deadline (SN_DEADLINE_DEFAULT
 * = no deadline for a listener). The new socket carries the listener's
 * options. Returns 0, SN_ETIMEDOUT, SN_EBADSTATE (not listening, or
 * closed), SN_EMFILE, SN_ENFILE, SN_ECONNABORTED, SN_ENOMEM (that
 * connection is then closed), SN_EINVAL (NULL arguments). */
SN_API int sn_sock_accept(sn_sock *listener, sn_sock **out, sn_deadline dl);

/* Adopts a socket descriptor created elsewhere (made non-blocking and
 * close-on-exec). The state is read from the descriptor (listening,
 * connected, bound to a port or a local name, else open); the family
 * from its local address (an adopted local listener never removes its
 * file). No option is changed; the timeouts are the defaults. On success
 * the sn_sock owns fd; on failure the caller still does. Returns 0,
 * SN_ENOTSOCK, SN_EBADF, SN_ENOMEM, SN_EINVAL (NULL out). */
SN_API int sn_sock_from_fd(sn_sock **out, int fd);

/* The state (sn_sock_state); SN_SOCK_CLOSED for NULL. It follows the
 * peer as far as the library has seen it: a connection whose read met the
 * peer's close (the end of the stream, or a reset) is SN_SOCK_PEER_CLOSED;
 * one that no call has read from since the peer closed still says
 * SN_SOCK_CONNECTED (the library does not watch idle sockets). Any
 * thread. */
SN_API int sn_sock_get_state(const sn_sock *s);

/* The local address (for a listener on port 0, the chosen port).
 * Returns 0, SN_EBADSTATE (closed, or open and not bound), SN_EINVAL (NULL
 * arguments), or -errno. */
SN_API int sn_sock_local_addr(const sn_sock *s, sn_addr *out);

/* The peer's address. Returns 0, SN_ENOTCONN, SN_EBADSTATE, or -errno. */
SN_API int sn_sock_remote_addr(const sn_sock *s, sn_addr *out);

/* The credentials of a local socket's peer process, as the kernel recorded
 * them (SO_PEERCRED) when it connected, or, seen from a client, when the
 * server's socket began to listen. */
typedef struct sn_peer_cred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
} sn_peer_cred;

/* Reads the peer's credentials. Returns 0, SN_ENOPROTOOPT (not a local
 * socket: TCP has none), SN_ENOTCONN (not connected, a listener included),
 * SN_EBADSTATE (closed), SN_EINVAL (NULL arguments), or -errno. */
SN_API int sn_sock_peer_cred(const sn_sock *s, sn_peer_cred *out);

/* The descriptor, for users who need it (still owned by the sn_sock; its
 * mode and SO_RCVTIMEO are the library's), or -1 once closed. */
SN_API int sn_sock_fd(const sn_sock *s);

/* Shuts down the sending side (the peer reads end of stream) while
 * reading goes on. Returns 0, SN_ENOTCONN (not connected, or a listener),
 * SN_EBADSTATE (closed), or -errno. */
SN_API int sn_sock_shutdown_write(sn_sock *s);

/* Closes the descriptor (state: closed); a local listener made by
 * sn_tcp_listen on a path first removes its file, if that is still the
 * one it bound. The sn_sock stays valid for its getters until
 * sn_sock_free. Returns 0 or -errno (the descriptor is closed
 * either way); closing a closed socket returns 0. */
SN_API int sn_sock_close(sn_sock *s);

/* Cancels the socket from any thread or fiber: an sn_sock_accept blocked
 * on a listener returns SN_ECANCELED at once, and so does every later one
 * (the listener is shut down and takes no more connections); a connected
 * socket is shut down both ways (for a connection's calls, use
 * sn_conn_cancel, which also makes them return SN_ECANCELED). The socket
 * stays valid until its owner frees it; a cancel that meets the owner's
 * close does nothing. Any number of times, until sn_sock_free. Returns 0,
 * or SN_EINVAL for NULL. */
SN_API int sn_sock_cancel(sn_sock *s);

/* Closes if open and releases s. NULL is a no-op. */
SN_API void sn_sock_free(sn_sock *s);

#ifdef __cplusplus
}
#endif
#endif
