/* SPDX-License-Identifier: MIT */
/*
 * sn_addr.c: socket addresses: strict parsing of "ip:port" / "[ip6]:port"
 * and "unix:PATH" / "unix:@NAME", formatting, comparison, and name
 * resolution through getaddrinfo.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "sn_sock_int.h"
#include "sn_util.h"
#include "socknet.h"

/* Longest ip text we accept: an IPv6 address, '%', an interface name. */
#define IP_TEXT_MAX (INET6_ADDRSTRLEN + 1 + IF_NAMESIZE)

/* The prefix of a local address's text, and where sun_path starts. */
#define LOCAL_PREFIX "unix:"
#define LOCAL_PREFIX_LEN (sizeof LOCAL_PREFIX - 1)
#define SUN_OFF offsetof(struct sockaddr_un, sun_path)

static bool is_local_text(const char *text)
{
    return strncmp(text, LOCAL_PREFIX, LOCAL_PREFIX_LEN) == 0;
}

static bool port_ok(int port)
{
    return port >= 0 && port <= 65535;
}

/* Whole string of 1..5 digits, value 0..65535. */
static int parse_port(const char *p, int *port)
{
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n > 5 || p[n] != '\0')
        return SN_EBADADDR;
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    if (!port_ok(v))
        return SN_EBADADDR;
    *port = v;
    return 0;
}

/* No spaces, controls, or characters that cannot be in a host. */
static bool host_chars_ok(const char *h, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= 0x20 || c >= 0x7f || c == '[' || c == ']' || c == '/' || c == '\\')
            return false;
    }
    return true;
}

/* The port text after the host: "" (default port) or ":digits". */
static int split_port(const char *rest, int *port, int default_port)
{
    if (*rest == '\0') {
        if (!port_ok(default_port))
            return SN_EBADADDR;
        *port = default_port;
        return 0;
    }
    if (*rest != ':')
        return SN_EBADADDR;
    return parse_port(rest + 1, port);
}

/* Finds the host part of text: [*h, *h + *n), and where the port starts.
 * A host in brackets must be IPv6 (hold a ':'); a bare host with one ':'
 * ends there; a bare host with more is IPv6 and has no port. */
static int split_host(const char *text, const char **h, size_t *n, const char **rest)
{
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || memchr(text + 1, ':', (size_t)(close - text - 1)) == NULL)
            return SN_EBADADDR;
        *h = text + 1;
        *n = (size_t)(close - text - 1);
        *rest = close + 1;
    } else {
        const char *first = strchr(text, ':');
        bool one_colon = first != NULL && strchr(first + 1, ':') == NULL;
        *h = text;
        *n = one_colon ? (size_t)(first - text) : strlen(text);
        *rest = text + *n;
    }
    return host_chars_ok(*h, *n) ? 0 : SN_EBADADDR;
}

int sn_hostport_split(const char *text, char *host, size_t cap, int *port, int default_port)
{
    const char *h, *rest;
    size_t n;
    int p;
    if (text == NULL || host == NULL || port == NULL)
        return SN_EINVAL;
    int rc = split_host(text, &h, &n, &rest);
    if (rc == 0)
        rc = split_port(rest, &p, default_port);
    if (rc < 0)
        return rc;
    if (n >= cap)
        return SN_ENOSPC;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = p;
    return 0;
}

/* An interface name or a decimal index, as after '%' in "fe80::1%eth0". */
static int parse_scope(const char *scope, uint32_t *id)
{
    size_t n = strspn(scope, "0123456789");
    if (n > 0 && n <= 10 && scope[n] == '\0') {
        unsigned long long v = strtoull(scope, NULL, 10);
        *id = (uint32_t)v;
        return v <= UINT32_MAX ? 0 : SN_EBADADDR;
    }
    *id = if_nametoindex(scope);
    return *id == 0 ? SN_EBADADDR : 0;
}

static int parse_ip6(sn_addr *a, const char *ip, int port)
{
    char buf[IP_TEXT_MAX + 1];
    uint32_t scope = 0;
    size_t len = strlen(ip);
    if (len >= sizeof buf)
        return SN_EBADADDR;
    memcpy(buf, ip, len + 1);
    char *pct = strchr(buf, '%');
    if (pct != NULL) {
        *pct = '\0';
        if (parse_scope(pct + 1, &scope) < 0)
            return SN_EBADADDR;
    }
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET6, buf, &a->u.in6.sin6_addr) != 1)
        return SN_EBADADDR;
    a->u.in6.sin6_family = AF_INET6;
    a->u.in6.sin6_port = htons((uint16_t)port);
    a->u.in6.sin6_scope_id = scope;
    a->len = sizeof a->u.in6;
    return 0;
}

static int parse_ip4(sn_addr *a, const char *ip, int port)
{
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, ip, &a->u.in4.sin_addr) != 1)
        return SN_EBADADDR;
    a->u.in4.sin_family = AF_INET;
    a->u.in4.sin_port = htons((uint16_t)port);
    a->len = sizeof a->u.in4;
    return 0;
}

/* A numeric ip into a temporary, so *out stays untouched on error. */
static int parse_ip(sn_addr *out, const char *ip, int port)
{
    sn_addr a;
    int rc = strchr(ip, ':') != NULL ? parse_ip6(&a, ip, port) : parse_ip4(&a, ip, port);
    if (rc < 0)
        return rc;
    *out = a;
    return 0;
}

int sn_addr_from_path(sn_addr *out, const char *path)
{
    sn_addr a = {0};
    if (out == NULL || path == NULL)
        return SN_EINVAL;
    size_t n = strlen(path);
    if (n == 0 || (path[0] == '@' && n == 1))
        return SN_EBADADDR;
    if (n > SN_LOCAL_PATH_MAX)
        return SN_ENAMETOOLONG;
    a.u.un.sun_family = AF_UNIX;
    if (path[0] == '@') { /* abstract: a NUL, then the name, no terminator */
        memcpy(a.u.un.sun_path + 1, path + 1, n - 1);
        a.len = (socklen_t)(SUN_OFF + n);
    } else {
        memcpy(a.u.un.sun_path, path, n + 1);
        a.len = (socklen_t)(SUN_OFF + n + 1);
    }
    *out = a;
    return 0;
}

int sn_addr_parse(sn_addr *out, const char *text, int default_port)
{
    char host[IP_TEXT_MAX + 1];
    int port;
    if (out == NULL || text == NULL)
        return SN_EINVAL;
    if (is_local_text(text))
        return sn_addr_from_path(out, text + LOCAL_PREFIX_LEN);
    int rc = sn_hostport_split(text, host, sizeof host, &port, default_port);
    if (rc < 0)
        return rc == SN_ENOSPC ? SN_EBADADDR : rc;
    return parse_ip(out, host, port);
}

int sn_addr_from_ip(sn_addr *out, const char *ip, int port)
{
    if (out == NULL)
        return SN_EINVAL;
    if (!port_ok(port))
        return SN_EBADADDR;
    if (ip == NULL || ip[0] == '\0')
        ip = "0.0.0.0";
    return parse_ip(out, ip, port);
}

/* ---- families: the one mapping between SN_AF_* and AF_* --------------------- */

int sn__af_of(int family)
{
    switch (family) {
    case SN_AF_ANY:
        return AF_UNSPEC;
    case SN_AF_INET:
        return AF_INET;
    case SN_AF_INET6:
        return AF_INET6;
    default:
        return -1;
    }
}

int sn__family_of(int af)
{
    switch (af) {
    case AF_INET:
        return SN_AF_INET;
    case AF_INET6:
        return SN_AF_INET6;
    case AF_UNIX:
        return SN_AF_UNIX;
    default:
        return 0;
    }
}

int sn_addr_family(const sn_addr *a)
{
    if (a == NULL || a->len == 0)
        return 0;
    return sn__family_of(a->u.sa.sa_family);
}

/* Bytes of a local address's name: 0 unnamed; an abstract one counts its
 * leading NUL; a path does not count its terminator. */
static size_t local_name_len(const sn_addr *a)
{
    size_t n = a->len > SUN_OFF ? SN_MIN(a->len - SUN_OFF, sizeof a->u.un.sun_path) : 0;
    if (n == 0 || a->u.un.sun_path[0] == '\0')
        return n;
    return strnlen(a->u.un.sun_path, n);
}

/* A local address's text without "unix:": the path as it is, or "@" and
 * the abstract name with odd bytes escaped. tmp holds SN_ADDR_STRLEN. */
static int local_text(const sn_addr *a, char *tmp)
{
    const char *p = a->u.un.sun_path;
    size_t n = local_name_len(a), len = 0;
    if (n == 0 || p[0] != '\0') {
        memcpy(tmp, p, n);
        tmp[n] = '\0';
        return (int)n;
    }
    tmp[len++] = '@';
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            len += (size_t)snprintf(tmp + len, SN_ADDR_STRLEN - len, "\\x%02x", c);
        else
            tmp[len++] = (char)c;
    }
    tmp[len] = '\0';
    return (int)len;
}

/* Copies text into buf if it fits (with the NUL). */
static int copy_out(const char *text, int len, char *buf, size_t cap)
{
    if (len < 0 || (size_t)len >= cap) {
        if (buf != NULL && cap > 0)
            buf[0] = '\0';
        return SN_ENOSPC;
    }
    memcpy(buf, text, (size_t)len + 1);
    return len;
}

/* The ip text, with "%scope" for a scoped IPv6 address. tmp holds
 * SN_ADDR_STRLEN bytes. Returns the length or SN_EAFNOSUPPORT. */
static int ip_text(const sn_addr *a, char *tmp)
{
    int fam = sn_addr_family(a);
    if (fam == SN_AF_INET) {
        inet_ntop(AF_INET, &a->u.in4.sin_addr, tmp, SN_ADDR_STRLEN);
        return (int)strlen(tmp);
    }
    if (fam == SN_AF_UNIX)
        return local_text(a, tmp);
    if (fam != SN_AF_INET6)
        return SN_EAFNOSUPPORT;
    inet_ntop(AF_INET6, &a->u.in6.sin6_addr, tmp, SN_ADDR_STRLEN);
    size_t n = strlen(tmp);
    uint32_t scope = a->u.in6.sin6_scope_id;
    char name[IF_NAMESIZE];
    if (scope == 0)
        return (int)n;
    if (if_indextoname(scope, name) != NULL)
        return (int)n + snprintf(tmp + n, SN_ADDR_STRLEN - n, "%%%s", name);
    return (int)n + snprintf(tmp + n, SN_ADDR_STRLEN - n, "%%%u", (unsigned)scope);
}

int sn_addr_format_ip(const sn_addr *a, char *buf, size_t cap)
{
    char tmp[SN_ADDR_STRLEN];
    int len = ip_text(a, tmp);
    if (len < 0) {
        if (buf != NULL && cap > 0)
            buf[0] = '\0';
        return len;
    }
    return copy_out(tmp, len, buf, cap);
}

int sn_addr_format(const sn_addr *a, char *buf, size_t cap)
{
    char ip[SN_ADDR_STRLEN], tmp[SN_ADDR_STRLEN + 16];
    int len = ip_text(a, ip);
    if (len < 0) {
        if (buf != NULL && cap > 0)
            buf[0] = '\0';
        return len;
    }
    int fam = sn_addr_family(a);
    if (fam == SN_AF_UNIX)
        len = snprintf(tmp, sizeof tmp, LOCAL_PREFIX "%s", ip);
    else
        len = snprintf(tmp, sizeof tmp, fam == SN_AF_INET6 ? "[%s]:%d" : "%s:%d", ip,
                       sn_addr_port(a));
    return copy_out(tmp, len, buf, cap);
}

int sn_addr_port(const sn_addr *a)
{
    switch (sn_addr_family(a)) {
    case SN_AF_INET:
        return ntohs(a->u.in4.sin_port);
    case SN_AF_INET6:
        return ntohs(a->u.in6.sin6_port);
    default:
        return SN_EAFNOSUPPORT;
    }
}

int sn_addr_set_port(sn_addr *a, int port)
{
    int fam = sn_addr_family(a);
    if (fam != SN_AF_INET && fam != SN_AF_INET6)
        return SN_EAFNOSUPPORT;
    if (!port_ok(port))
        return SN_EBADADDR;
    if (fam == SN_AF_INET)
        a->u.in4.sin_port = htons((uint16_t)port);
    else
        a->u.in6.sin6_port = htons((uint16_t)port);
    return 0;
}

int sn_addr_equal(const sn_addr *a, const sn_addr *b)
{
    int fam = sn_addr_family(a);
    if (fam != sn_addr_family(b))
        return 0;
    if (fam == SN_AF_INET)
        return a->u.in4.sin_port == b->u.in4.sin_port &&
               a->u.in4.sin_addr.s_addr == b->u.in4.sin_addr.s_addr;
    if (fam == SN_AF_INET6)
        return a->u.in6.sin6_port == b->u.in6.sin6_port &&
               a->u.in6.sin6_scope_id == b->u.in6.sin6_scope_id &&
               memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, sizeof(struct in6_addr)) == 0;
    if (fam == SN_AF_UNIX) {
        size_t n = local_name_len(a);
        return n == local_name_len(b) && memcmp(a->u.un.sun_path, b->u.un.sun_path, n) == 0;
    }
    return 1; /* both empty */
}

int sn_addr_is_loopback(const sn_addr *a)
{
    switch (sn_addr_family(a)) {
    case SN_AF_INET:
        return (ntohl(a->u.in4.sin_addr.s_addr) >> 24) == 127;
    case SN_AF_INET6: {
        const struct in6_addr *ip = &a->u.in6.sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(ip))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127;
    }
    default:
        return 0;
    }
}

/* ---- resolution ------------------------------------------------------------ */

/* RFC 6761: names under ".invalid" never resolve; answer at once rather
 * than wait on a DNS server that may be unreachable. */
static bool is_invalid_tld(const char *host)
{
    static const char tld[] = ".invalid";
    size_t n = strlen(host), t = sizeof tld - 1;
    if (n > 0 && host[n - 1] == '.')
        n--; /* fully qualified "x.invalid." */
    if (n == t - 1)
        return strncasecmp(host, tld + 1, n) == 0;
    return n > t && strncasecmp(host + n - t, tld, t) == 0;
}

/* The wildcard address for binding: "0.0.0.0", or "::" for IPv6 only. */
static int resolve_wildcard(int port, int family, sn_addr *out)
{
    int rc = sn_addr_from_ip(out, family == SN_AF_INET6 ? "::" : "0.0.0.0", port);
    return rc < 0 ? rc : 1;
}

/* "unix:PATH" or "unix:@NAME": one local address, for SN_AF_ANY only. */
static int resolve_local(const char *host, int family, sn_addr *out)
{
    if (family != SN_AF_ANY)
        return SN_EAFNOSUPPORT;
    int rc = sn_addr_from_path(out, host + LOCAL_PREFIX_LEN);
    return rc < 0 ? rc : 1;
}

static int copy_results(const struct addrinfo *ai, sn_addr *out, size_t max)
{
    size_t n = 0;
    for (; ai != NULL && n < max; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out[n].u || ai->ai_addrlen == 0)
            continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n].u, ai->ai_addr, ai->ai_addrlen);
        out[n].len = ai->ai_addrlen;
        n++;
    }
    return n > 0 ? (int)n : SN_ENONAME;
}

int sn_resolve(const char *host, int port, int family, sn_addr *out, size_t max)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct addrinfo *res = NULL;
    char serv[8];
    hints.ai_family = sn__af_of(family);
    if (out == NULL || max == 0 || hints.ai_family < 0)
        return SN_EINVAL;
    if (host != NULL && is_local_text(host))
        return resolve_local(host, family, out);
    if (!port_ok(port))
        return SN_EBADADDR;
    if (host == NULL || host[0] == '\0')
        return resolve_wildcard(port, family, out);
    if (is_invalid_tld(host))
        return SN_ENONAME;
    snprintf(serv, sizeof serv, "%d", port);
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, serv, &hints, &res);
    if (rc != 0)
        return sn__gai_error(rc);
    rc = copy_results(res, out, max);
    freeaddrinfo(res);
    return rc;
}

/* ---- for the sockets (sn_sock_int.h) -------------------------------------- */

int sn__resolve_peer(const char *host, int port, sn_addr *out, size_t max)
{
    if (host == NULL || host[0] == '\0')
        return SN_EINVAL;
    return sn_resolve(host, port, SN_AF_ANY, out, max);
}
