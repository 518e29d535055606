/* SPDX-License-Identifier: MIT */
/*
 * sn_sock_int.h: what the stream sockets (sn_sock.c: TCP and local) and
 * the datagram sockets (sn_udp.c) share, inside the addr / sock layer: one
 * socket-option engine (sn_sockopt.c), one mapping between the SN_AF_*
 * families and the system's (sn_addr.c), and the chores of both: a
 * socket's addresses, closing, trying resolved addresses in turn
 * (sn_sockbase.c); and struct sn_sock, which the server's acceptors use
 * too (sn_server.c). Not installed; rank 3.
 */
#ifndef SN_SOCK_INT_H
#define SN_SOCK_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "socknet.h"

#define SN__READ_TIMEOUT_DEFAULT 60000    /* ms: SN_OPT_READ_TIMEOUT, SN_UDP_OPT_READ_TIMEOUT */
#define SN__WRITE_TIMEOUT_DEFAULT 60000   /* ms: the write timeouts */
#define SN__CONNECT_TIMEOUT_DEFAULT 30000 /* ms: SN_OPT_CONNECT_TIMEOUT */
#define SN__CONNECT_MAX_ADDRS 16          /* resolved addresses a connect tries */

/* ---- sockets (sn_sock.c) ---------------------------------------------------- */

struct sn_sock {
    int fd;           /* -1 once closed */
    atomic_int state; /* sn_sock_state; atomic: a read on one thread may see
                         the peer's close while another asks for the state */
    bool blocking;    /* the descriptor is in blocking mode (accepted ones are:
                         every call passes MSG_DONTWAIT or polls anyway, and a
                         connection's blocking receive saves a poll) */
    int family;       /* AF_INET / AF_INET6 / AF_UNIX */
    /* resolved timeouts, ms, -1 = never */
    int read_timeout_ms;
    int write_timeout_ms;
    int connect_timeout_ms;
    int rcvtimeo_ms;            /* SO_RCVTIMEO as the library set it: -1 unknown, 0 none */
    sn_sock_options accept_opt; /* listeners: applied to accepted sockets */
    /* listeners: whether accepted sockets come with accept_opt and
     * rcvtimeo_ms already (Linux copies a listener's options at accept):
     * 0 not known yet, 1 yes (no setsockopt per accept), -1 no */
    atomic_int inherits;
    atomic_bool canceled; /* sn_sock_cancel ran: accepts fail with SN_ECANCELED */
    /* local listeners bound to a path: the path, and the file's device and
     * inode, to remove it on close if it is still ours; else NULL */
    char *path;
    dev_t path_dev;
    ino_t path_ino;
};

/* Whether options hold a client's bind address (bind_host, bind_port),
 * which listeners refuse. */
bool sn__opt_binds(const sn_sock_options *o);
/* A read on a connection met the peer's close (end of stream or reset):
 * a connected socket's state becomes SN_SOCK_PEER_CLOSED. Any thread. */
void sn__sock_peer_closed(sn_sock *s);
/* Wraps a descriptor in a new sn_sock with default timeouts. On failure
 * (SN_ENOMEM) the descriptor is still the caller's to close. */
int sn__sock_wrap(sn_sock **out, int fd, int state, int family);
/* Accepts one pending connection without waiting: 0, SN_EAGAIN (none
 * pending) or an accept error. The new socket gets the listener's options.
 * Used by the server's acceptors, which do their own polling. */
int sn__sock_accept_now(sn_sock *listener, sn_sock **out);

/* ---- families (sn_addr.c) --------------------------------------------------- */

/* The system's family for an SN_AF_* a caller asks for: SN_AF_ANY (0) is
 * AF_UNSPEC, either IP family; SN_AF_INET and SN_AF_INET6 are AF_INET and
 * AF_INET6. -1 for anything else, SN_AF_UNIX included: a local socket is
 * chosen by its address ("unix:..."), never by a family argument. A call
 * that must make one socket without an address picks for AF_UNSPEC itself
 * (sn_udp_open: IPv4, as udp.h says). */
int sn__af_of(int family);
/* The SN_AF_* family of a system one (AF_INET, AF_INET6, AF_UNIX); 0 for
 * any other. */
int sn__family_of(int af);

/* ---- resolving a peer (sn_addr.c) -------------------------------------------- */

/* Resolves the host a client connects to (either IP family, or "unix:")
 * into out[0, max): the number of addresses, SN_EINVAL (NULL or empty
 * host), or sn_resolve's error. */
int sn__resolve_peer(const char *host, int port, sn_addr *out, size_t max);

/* ---- the chores of both kinds (sn_sockbase.c) --------------------------------- */

/* Calls try_one(addr, arg) for each of addrs[0, n) in turn until one
 * succeeds or fails with an error that the next address cannot mend (a
 * refused, reset or unreachable one can); returns the last result. */
int sn__try_each(const sn_addr *addrs, int n, int (*try_one)(const sn_addr *addr, void *arg),
                 void *arg);
/* getsockname (peer false) or getpeername of fd into *out. 0, SN_EINVAL
 * (out NULL), SN_EBADSTATE (fd < 0: closed, or not in a state to have
 * one), or -errno. */
int sn__sock_name(int fd, sn_addr *out, bool peer);
/* Closes a socket's descriptor (*fd >= 0), which becomes -1; the calling
 * thread's scheduler forgets it first. 0 or -errno (EINTR counts as
 * closed). Excludes sn__sock_shutdown_gated on the same field. */
int sn__sock_close_fd(int *fd);
/* shutdown(*fd, how) from any thread, unless sn__sock_close_fd closed the
 * field's descriptor: the two never overlap, so the shutdown cannot reach
 * a number reused meanwhile. */
void sn__sock_shutdown_gated(const int *fd, int how);
/* The cancel of a socket (sn_sock_cancel, sn_udp_cancel): sets *canceled,
 * which its calls check, then shuts the descriptor down both ways through
 * the gate, waking whatever waits on it. Any thread. Returns 0. */
int sn__sock_cancel(atomic_bool *canceled, const int *fd);

/* A connect that another thread may cancel (the event model's, sn_event.c):
 * the socket being connected is published under mu, so that
 * sn__connect_gate_cancel reaches it (sn_sock_cancel) while it is alive
 * and never after it is freed; a connect started or going on after the
 * cancel fails with SN_ECANCELED. */
typedef struct sn__connect_gate {
    pthread_mutex_t mu;
    sn_sock *sock; /* under mu */
    bool canceled; /* under mu */
} sn__connect_gate;
void sn__connect_gate_init(sn__connect_gate *g);
void sn__connect_gate_destroy(sn__connect_gate *g);
void sn__connect_gate_cancel(sn__connect_gate *g);
/* sn_tcp_connect through the gate g. */
int sn__tcp_connect_gated(sn_sock **out, const char *host, int port, const sn_sock_options *opt,
                          sn_deadline dl, sn__connect_gate *g);

/* ---- the option engine (sn_sockopt.c) -----------------------------------------
 * One table describes every option of both kinds of socket: how it reaches
 * the kernel on each family, its range, how sn_sock_options and
 * sn_udp_options hold it, and its number in sock.h and udp.h. */

/* Which option numbers and options struct: sock.h's (sn_sock_options) for
 * TCP and local stream sockets, or udp.h's (sn_udp_options). */
enum sn__opt_kind { SN__OPT_TCP = 0, SN__OPT_UDP = 1 };

/* The values a socket keeps itself rather than in the kernel: the
 * library's timeouts, and the multicast interface (IPv4 reads back an
 * address, not the index that was set). */
enum sn__opt_kept {
    SN__KEPT_READ_TIMEOUT,
    SN__KEPT_WRITE_TIMEOUT,
    SN__KEPT_CONNECT_TIMEOUT,
    SN__KEPT_MCAST_IF,
    SN__KEPT_N
};

/* A kind of socket as the engine sees it: where its struct holds what the
 * engine reads and writes, like the options structs' fields in the table. */
typedef struct sn__optkind {
    int kind;                /* enum sn__opt_kind */
    size_t fd;               /* offsetof the descriptor (an int; -1: closed) */
    size_t family;           /* offsetof the AF_* family (an int) */
    size_t kept[SN__KEPT_N]; /* offsetof each value it keeps (ints), where it has one */
    /* Optional: whether sock listens (SN_OPT_FASTOPEN is then the queue
     * length rather than TCP_FASTOPEN_CONNECT). */
    bool (*listening)(const void *sock);
} sn__optkind;

/* Sets option number opt (of the kind's numbers) on sock. Returns 0,
 * SN_EINVAL (sock NULL, no such option, a value out of its range, or the
 * get-only error option), SN_EBADSTATE (sock closed), SN_ENOPROTOOPT (not
 * for this family: V6ONLY on IPv4, TCP and IP options on a local socket),
 * SN_ENODEV (a multicast interface that does not exist), or the kernel's
 * -errno. */
int sn__opt_set(const sn__optkind *k, void *sock, int opt, int value);
/* Reads option opt in the form the setter takes (switches as 0 or 1,
 * linger as -1 or seconds, the pending error as -errno). Errors as the
 * setter's; SN_EINVAL for a NULL value. */
int sn__opt_get(const sn__optkind *k, const void *sock, int opt, int *value);
/* Sets every option opts (an sn_sock_options or sn_udp_options, as the
 * kind says) gives a non-zero value, in the table's order: 1 if it set
 * any, 0 if none, or the first error (SN_EINVAL for sock or opts NULL, a
 * switch other than SN_ON / SN_OFF, or linger on with a negative time). */
int sn__opt_apply(const sn__optkind *k, void *sock, const void *opts);
/* Whether every kernel option that opts sets reads the same on both
 * sockets (an accepted socket and its listener: Linux copies them). */
bool sn__opt_inherited(const sn__optkind *k, const void *from, const void *to, const void *opts);

#endif
