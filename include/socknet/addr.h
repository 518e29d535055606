/*
 * socknet/addr.h: socket addresses, IPv4 and IPv6.
 *
 * An sn_addr is a plain value (copy it freely) holding an IPv4 or IPv6
 * address and port. Text forms: "192.0.2.1:80", "[2001:db8::1]:80", and,
 * where a default port is given, "192.0.2.1", "2001:db8::1", "[::1]".
 * Scoped IPv6 addresses ("[fe80::1%eth0]:80") are accepted and printed.
 *
 * Thread safety: a value type; functions are reentrant.
 * Ownership: the caller owns every sn_addr and buffer.
 */
#ifndef SOCKNET_ADDR_H
#define SOCKNET_ADDR_H

#include <netinet/in.h>
#include <sys/socket.h>
#include "socknet/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } u;
    socklen_t len; /* 0 = empty */
} sn_addr;

/* Enough for "[ipv6%scope]:65535" and a NUL. */
#define SN_ADDR_STRLEN 96

/* Families for resolution: either, IPv4 only, IPv6 only. */
enum { SN_AF_ANY = 0, SN_AF_INET = 4, SN_AF_INET6 = 6 };

/* Parses a numeric address "ip:port", "[ip6]:port" or, when default_port
 * is 0..65535, also a bare "ip" or "ip6" or "[ip6]". No name resolution.
 * The port is 1..5 decimal digits. Strict: no spaces, signs, empty parts,
 * trailing text, IPv4 in brackets or IPv6 with a port but no brackets. An
 * IPv6 scope is an interface name or a decimal index ("%lo", "%1").
 * Returns 0, SN_EBADADDR for malformed text or a port outside 0..65535,
 * SN_EINVAL for NULL arguments. *out is untouched on error. */
SN_API int sn_addr_parse(sn_addr *out, const char *text, int default_port);

/* Builds an address from a numeric ip ("127.0.0.1", "::1", "fe80::1%lo")
 * and a port. NULL or "" ip means the IPv4 wildcard "0.0.0.0"; "::" is the
 * IPv6 wildcard. Returns 0, SN_EBADADDR (malformed ip, or a port outside
 * 0..65535), SN_EINVAL (NULL out). *out is untouched on error. */
SN_API int sn_addr_from_ip(sn_addr *out, const char *ip, int port);

/* Formats as "ip:port" or "[ip6]:port" (an IPv4-mapped IPv6 address is
 * printed in its IPv6 form). Returns the length written (without the NUL),
 * SN_ENOSPC when cap is too small (buf then holds ""), SN_EAFNOSUPPORT for
 * an empty or unknown address. SN_ADDR_STRLEN is always enough. */
SN_API int sn_addr_format(const sn_addr *a, char *buf, size_t cap);

/* Formats the ip alone ("::1", "127.0.0.1", "fe80::1%lo"; a scope whose
 * interface is gone prints as its index). Same returns as above. */
SN_API int sn_addr_format_ip(const sn_addr *a, char *buf, size_t cap);

/* The port (0..65535), or SN_EAFNOSUPPORT for an empty address. */
SN_API int sn_addr_port(const sn_addr *a);

/* Sets the port. Returns 0, SN_EBADADDR for a port outside 0..65535,
 * SN_EAFNOSUPPORT for an empty address. */
SN_API int sn_addr_set_port(sn_addr *a, int port);

/* SN_AF_INET, SN_AF_INET6, or 0 for an empty address. */
SN_API int sn_addr_family(const sn_addr *a);

/* 1 if a and b hold the same family, ip, port (and IPv6 scope), else 0.
 * An IPv4 address never equals its IPv4-mapped IPv6 form; two empty
 * addresses are equal. */
SN_API int sn_addr_equal(const sn_addr *a, const sn_addr *b);

/* 1 for a loopback address (127.0.0.0/8, ::1, ::ffff:127.x), else 0. */
SN_API int sn_addr_is_loopback(const sn_addr *a);

/* Splits "host:port", "[ip6]:port", or a bare "host" / "ip6" / "[ip6]"
 * (then *port = default_port, which must be 0..65535, else the port is
 * required). Copies the host without brackets into host (cap bytes with
 * the NUL). The host is not resolved or checked beyond its form: it must
 * be non-empty, hold no space, control, '[', ']', '/' or '\\', and a host
 * in brackets must hold a ':' (IPv6). Text with more than one ':' and no
 * brackets is a bare IPv6 address without a port.
 * Returns 0, SN_EBADADDR (malformed or bad port), SN_ENOSPC
 * (host too long for cap), SN_EINVAL (NULL arguments). host and *port are
 * untouched on error. */
SN_API int sn_hostport_split(const char *text, char *host, size_t cap, int *port, int default_port);

/* Resolves host (a name or a numeric ip; NULL or "" = the wildcard, for
 * binding: "0.0.0.0", or "::" with SN_AF_INET6) and port with getaddrinfo,
 * for TCP, in the order the system prefers (RFC 6724). family is
 * SN_AF_ANY, SN_AF_INET or SN_AF_INET6. Names under ".invalid" fail at
 * once with SN_ENONAME without asking the resolver (RFC 6761).
 * Stores up to max addresses in out. Returns the number stored (>= 1),
 * or SN_ENONAME (no such host, or none of that family), SN_ERESOLVE_AGAIN
 * (temporary failure, try later), SN_ERESOLVE (any other resolver failure),
 * SN_EAFNOSUPPORT (a numeric host of the other family), SN_EBADADDR (port
 * outside 0..65535), SN_EINVAL (max 0, NULL out, unknown family),
 * SN_ENOMEM.
 * This call blocks in the system resolver and has no deadline of its own. */
SN_API int sn_resolve(const char *host, int port, int family, sn_addr *out, size_t max);

#ifdef __cplusplus
}
#endif
#endif
