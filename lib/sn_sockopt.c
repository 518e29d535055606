/* SPDX-License-Identifier: MIT */
/*
 * sn_sockopt.c: the socket-option engine of TCP, local and UDP sockets: one
 * table of every option, checked, set, read and applied from an options
 * struct the same way for both kinds (sn_sock_int.h).
 */
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/socket.h>
#include "sn_sock_int.h"
#include "sn_util.h"
#include "socknet.h"

/* How an option reaches the kernel. */
enum kind {
    K_INT = 1,  /* an int sockopt */
    K_BOOL,     /* an int sockopt read back as 0/1 */
    K_LINGER,   /* struct linger: -1 = off, else seconds */
    K_TIMEOUT,  /* kept by the socket (the library's timeouts), not the kernel */
    K_FASTOPEN, /* TCP_FASTOPEN (listener) or TCP_FASTOPEN_CONNECT (0/1) */
    K_V6ONLY,   /* IPV6_V6ONLY, IPv6 sockets only; read back as 0/1 */
    K_MCAST_IF, /* an interface index: ip_mreqn on IPv4, an int on IPv6;
                   kept by the socket too, for the getter */
    K_ERROR,    /* SO_ERROR, get only, read as -errno */
};

/* How the options struct holds it (see sn__opt_apply). */
enum field_kind {
    F_NONE = 0, /* not in the options struct */
    F_SWITCH,   /* SN_ON / SN_OFF / 0 */
    F_VALUE,    /* 0 = leave; anything else is passed on */
    F_OFF_ZERO, /* 0 = leave, SN_OFF = 0, else passed on */
    F_LINGER,   /* linger (a switch) + linger_s (sn_sock_options only) */
};

struct opt_def {
    int level, name;           /* IPv4 and local sockets */
    int level6, name6;         /* IPv6 sockets */
    int min, max;              /* the setter's range */
    int dflt;                  /* K_TIMEOUT: what 0 sets */
    unsigned char kind, fkind; /* enum kind, enum field_kind */
    unsigned char kept;        /* K_TIMEOUT, K_MCAST_IF: enum sn__opt_kept */
    short opt[2];              /* its number in sock.h, udp.h; 0 = none */
    short field[2];            /* offsetof in sn_sock_options, sn_udp_options */
};

#define SAME(l, n) .level = l, .name = n, .level6 = l, .name6 = n
#define IP46(n4, n6) .level = IPPROTO_IP, .name = n4, .level6 = IPPROTO_IPV6, .name6 = n6
#define RANGE(lo, hi) .min = lo, .max = hi
#define AS(k, f) .kind = K_##k, .fkind = F_##f
#define KEEP(slot, ms) .kept = SN__KEPT_##slot, .dflt = ms
#define TCP(o, f)                                                                                  \
    .opt[SN__OPT_TCP] = SN_OPT_##o, .field[SN__OPT_TCP] = (short)offsetof(sn_sock_options, f)
#define UDP(o, f)                                                                                  \
    .opt[SN__OPT_UDP] = SN_UDP_OPT_##o, .field[SN__OPT_UDP] = (short)offsetof(sn_udp_options, f)

/* In the order of sock.h's numbers, and of udp.h's but for the timeouts. */
static const struct opt_def opt_table[] = {
    {SAME(IPPROTO_TCP, TCP_NODELAY), RANGE(0, 1), AS(BOOL, SWITCH), TCP(NODELAY, nodelay)},
    {SAME(SOL_SOCKET, SO_KEEPALIVE), RANGE(0, 1), AS(BOOL, SWITCH), TCP(KEEPALIVE, keepalive)},
    {SAME(IPPROTO_TCP, TCP_KEEPIDLE), RANGE(1, 32767), AS(INT, VALUE),
     TCP(KEEPIDLE, keepalive_idle_s)},
    {SAME(IPPROTO_TCP, TCP_KEEPINTVL), RANGE(1, 32767), AS(INT, VALUE),
     TCP(KEEPINTVL, keepalive_interval_s)},
    {SAME(IPPROTO_TCP, TCP_KEEPCNT), RANGE(1, 127), AS(INT, VALUE), TCP(KEEPCNT, keepalive_count)},
    {SAME(SOL_SOCKET, SO_LINGER), RANGE(-1, 65535), AS(LINGER, LINGER), TCP(LINGER, linger)},
    {SAME(SOL_SOCKET, SO_RCVBUF), RANGE(1, INT_MAX / 2), AS(INT, VALUE), TCP(RCVBUF, rcvbuf),
     UDP(RCVBUF, rcvbuf)},
    {SAME(SOL_SOCKET, SO_SNDBUF), RANGE(1, INT_MAX / 2), AS(INT, VALUE), TCP(SNDBUF, sndbuf),
     UDP(SNDBUF, sndbuf)},
    {SAME(SOL_SOCKET, SO_REUSEADDR), RANGE(0, 1), AS(BOOL, SWITCH), TCP(REUSEADDR, reuseaddr),
     UDP(REUSEADDR, reuseaddr)},
    {SAME(SOL_SOCKET, SO_REUSEPORT), RANGE(0, 1), AS(BOOL, SWITCH), TCP(REUSEPORT, reuseport),
     UDP(REUSEPORT, reuseport)},
    {SAME(SOL_SOCKET, SO_BROADCAST), RANGE(0, 1), AS(BOOL, SWITCH), UDP(BROADCAST, broadcast)},
    {KEEP(READ_TIMEOUT, SN__READ_TIMEOUT_DEFAULT), RANGE(-1, INT_MAX), AS(TIMEOUT, VALUE),
     TCP(READ_TIMEOUT, read_timeout_ms), UDP(READ_TIMEOUT, read_timeout_ms)},
    {KEEP(WRITE_TIMEOUT, SN__WRITE_TIMEOUT_DEFAULT), RANGE(-1, INT_MAX), AS(TIMEOUT, VALUE),
     TCP(WRITE_TIMEOUT, write_timeout_ms), UDP(WRITE_TIMEOUT, write_timeout_ms)},
    {KEEP(CONNECT_TIMEOUT, SN__CONNECT_TIMEOUT_DEFAULT), RANGE(-1, INT_MAX), AS(TIMEOUT, VALUE),
     TCP(CONNECT_TIMEOUT, connect_timeout_ms)},
    {IP46(IP_TOS, IPV6_TCLASS), RANGE(0, 255), AS(INT, VALUE), TCP(TOS, tos), UDP(TOS, tos)},
    {IP46(IP_TTL, IPV6_UNICAST_HOPS), RANGE(1, 255), AS(INT, VALUE), UDP(TTL, ttl)},
    {SAME(SOL_SOCKET, SO_OOBINLINE), RANGE(0, 1), AS(BOOL, SWITCH), TCP(OOBINLINE, oobinline)},
    {SAME(IPPROTO_TCP, TCP_FASTOPEN), RANGE(0, 65535), AS(FASTOPEN, OFF_ZERO),
     TCP(FASTOPEN, fastopen)},
    {SAME(IPPROTO_IPV6, IPV6_V6ONLY), RANGE(0, 1), AS(V6ONLY, NONE),
     .opt = {SN_OPT_V6ONLY, SN_UDP_OPT_V6ONLY}},
    {IP46(IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS), RANGE(0, 255), AS(INT, OFF_ZERO),
     UDP(MULTICAST_TTL, multicast_ttl)},
    {IP46(IP_MULTICAST_LOOP, IPV6_MULTICAST_LOOP), RANGE(0, 1), AS(BOOL, SWITCH),
     UDP(MULTICAST_LOOP, multicast_loop)},
    {IP46(IP_MULTICAST_IF, IPV6_MULTICAST_IF), RANGE(0, INT_MAX), AS(MCAST_IF, VALUE),
     KEEP(MCAST_IF, 0), UDP(MULTICAST_IF, multicast_if)},
    {SAME(SOL_SOCKET, SO_ERROR), RANGE(0, 0), AS(ERROR, NONE),
     .opt = {SN_OPT_ERROR, SN_UDP_OPT_ERROR}},
};

/* The row of option number opt of a kind, or NULL. */
static const struct opt_def *opt_find(int kind, int opt)
{
    for (size_t i = 0; opt > 0 && i < SN_ARRAY_SIZE(opt_table); i++)
        if (opt_table[i].opt[kind] == opt)
            return &opt_table[i];
    return NULL;
}

/* A socket in the engine's hands: its kind, struct, descriptor, family. */
struct target {
    const sn__optkind *k;
    char *base;
    int fd, family;
    bool listening;
};

static struct target target_of(const sn__optkind *k, const void *sock)
{
    char *base = (char *)sock; /* the getters write nothing */
    return (struct target){.k = k,
                           .base = base,
                           .fd = *(const int *)(base + k->fd),
                           .family = *(const int *)(base + k->family),
                           .listening = k->listening != NULL && k->listening(sock)};
}

/* The value a socket keeps itself for an option (K_TIMEOUT, K_MCAST_IF). */
static int *kept_value(const struct target *t, const struct opt_def *d)
{
    return (int *)(t->base + t->k->kept[d->kept]);
}

/* An option as it applies to one socket: the kernel's level and name for
 * its family, and the range. */
struct opt_use {
    int level, name, min, max;
};

/* Whether an option means something on a local (Unix-domain) socket: the
 * buffer sizes, the library's timeouts and the pending error do; every
 * TCP and IP option would be a silent no-op there (or fail), so it is an
 * error instead. */
static bool opt_for_local(const struct opt_def *d)
{
    return d->kind == K_TIMEOUT || d->kind == K_ERROR ||
           (d->level == SOL_SOCKET && (d->name == SO_RCVBUF || d->name == SO_SNDBUF));
}

/* The option on this socket: 0, or SN_ENOPROTOOPT. */
static int opt_resolve(const struct target *s, const struct opt_def *d, struct opt_use *u)
{
    bool v6 = s->family == AF_INET6;
    *u = (struct opt_use){v6 ? d->level6 : d->level, v6 ? d->name6 : d->name, d->min, d->max};
    if (s->family == AF_UNIX && !opt_for_local(d))
        return SN_ENOPROTOOPT;
    if (d->kind == K_V6ONLY && !v6)
        return SN_ENOPROTOOPT;
    if (d->kind == K_FASTOPEN && !s->listening) {
        u->name = TCP_FASTOPEN_CONNECT;
        u->max = 1;
    }
    return 0;
}

/* Checks the socket and option, then resolves it. */
static int opt_prepare(const struct target *s, const struct opt_def *d, struct opt_use *u)
{
    if (d == NULL)
        return SN_EINVAL;
    if (s->fd < 0)
        return SN_EBADSTATE;
    return opt_resolve(s, d, u);
}

/* setsockopt of a value in the setter's form. */
static int kernel_set(const struct target *s, const struct opt_def *d, const struct opt_use *u,
                      int value)
{
    union {
        int i;
        struct linger l;
        struct ip_mreqn mr;
    } v = {.i = value};
    socklen_t len = sizeof v.i;
    char ifname[IF_NAMESIZE];
    if (d->kind == K_LINGER) {
        v.l = (struct linger){.l_onoff = value >= 0, .l_linger = value >= 0 ? value : 0};
        len = sizeof v.l;
    } else if (d->kind == K_MCAST_IF) {
        if (value != 0 && if_indextoname((unsigned)value, ifname) == NULL)
            return SN_ENODEV;
        if (s->family == AF_INET) {
            v.mr = (struct ip_mreqn){.imr_ifindex = value};
            len = sizeof v.mr;
        }
    }
    return setsockopt(s->fd, u->level, u->name, &v, len) < 0 ? -errno : 0;
}

/* getsockopt, into the form the setter takes. */
static int kernel_get(const struct target *s, const struct opt_def *d, const struct opt_use *u,
                      int *value)
{
    union {
        int i;
        struct linger l;
    } v = {0};
    socklen_t len = d->kind == K_LINGER ? sizeof v.l : sizeof v.i;
    if (getsockopt(s->fd, u->level, u->name, &v, &len) < 0)
        return -errno;
    if (d->kind == K_LINGER)
        *value = v.l.l_onoff ? v.l.l_linger : -1;
    else if (d->kind == K_ERROR)
        *value = -v.i;
    else if (d->kind == K_BOOL || d->kind == K_V6ONLY)
        *value = v.i != 0;
    else
        *value = v.i;
    return 0;
}

static int opt_set(const struct target *s, const struct opt_def *d, int value)
{
    struct opt_use u;
    int rc = opt_prepare(s, d, &u);
    if (rc < 0)
        return rc;
    if (d->kind == K_ERROR || value < u.min || value > u.max)
        return SN_EINVAL;
    if (d->kind == K_TIMEOUT) {
        *kept_value(s, d) = value != 0 ? value : d->dflt;
        return 0;
    }
    rc = kernel_set(s, d, &u, value);
    if (rc == 0 && d->kind == K_MCAST_IF)
        *kept_value(s, d) = value;
    return rc;
}

int sn__opt_set(const sn__optkind *k, void *sock, int opt, int value)
{
    if (sock == NULL)
        return SN_EINVAL;
    struct target t = target_of(k, sock);
    return opt_set(&t, opt_find(k->kind, opt), value);
}

static int opt_get(const struct target *s, const struct opt_def *d, int *value)
{
    struct opt_use u;
    int rc = opt_prepare(s, d, &u);
    if (rc < 0)
        return rc;
    if (value == NULL)
        return SN_EINVAL;
    if (d->kind == K_TIMEOUT || d->kind == K_MCAST_IF) {
        *value = *kept_value(s, d);
        return 0;
    }
    return kernel_get(s, d, &u, value);
}

int sn__opt_get(const sn__optkind *k, const void *sock, int opt, int *value)
{
    if (sock == NULL)
        return SN_EINVAL;
    struct target t = target_of(k, sock);
    return opt_get(&t, opt_find(k->kind, opt), value);
}

/* The options struct's field that holds an option for a kind; 0 when it
 * holds none. */
static int opt_field(const void *opts, const struct opt_def *d, int kind)
{
    if (d->opt[kind] == 0 || d->fkind == F_NONE)
        return 0;
    return *(const int *)((const char *)opts + d->field[kind]);
}

/* The setter's value for a non-zero field v. SN_EINVAL for a switch other
 * than SN_ON / SN_OFF, or linger on with a negative time. */
static int field_value(const void *opts, const struct opt_def *d, int v, int *value)
{
    if (d->fkind == F_VALUE || d->fkind == F_OFF_ZERO) {
        *value = d->fkind == F_OFF_ZERO && v == SN_OFF ? 0 : v;
        return 0;
    }
    if (v != SN_ON && v != SN_OFF)
        return SN_EINVAL;
    if (d->fkind == F_SWITCH) {
        *value = v == SN_ON;
        return 0;
    }
    int linger_s = ((const sn_sock_options *)opts)->linger_s;
    if (v == SN_ON && linger_s < 0)
        return SN_EINVAL; /* -1 would read as "off" */
    *value = v == SN_ON ? linger_s : -1;
    return 0;
}

int sn__opt_apply(const sn__optkind *k, void *sock, const void *opts)
{
    int any = 0;
    if (sock == NULL || opts == NULL)
        return SN_EINVAL;
    struct target t = target_of(k, sock);
    for (size_t i = 0; i < SN_ARRAY_SIZE(opt_table); i++) {
        const struct opt_def *d = &opt_table[i];
        int v = opt_field(opts, d, k->kind);
        int value;
        if (v == 0)
            continue; /* not in the struct, or the default */
        int rc = field_value(opts, d, v, &value);
        if (rc == 0)
            rc = opt_set(&t, d, value);
        if (rc < 0)
            return rc;
        any = 1;
    }
    return any;
}

bool sn__opt_inherited(const sn__optkind *k, const void *from, const void *to, const void *opts)
{
    struct target a = target_of(k, from), b = target_of(k, to);
    for (size_t i = 0; i < SN_ARRAY_SIZE(opt_table); i++) {
        const struct opt_def *d = &opt_table[i];
        int va, vb;
        if (d->kind == K_TIMEOUT || opt_field(opts, d, k->kind) == 0)
            continue;
        if (opt_get(&a, d, &va) < 0 || opt_get(&b, d, &vb) < 0 || va != vb)
            return false;
    }
    return true;
}
