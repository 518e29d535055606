/* SPDX-License-Identifier: MIT */
/*
 * socknet/addr.h: socket addresses: IPv4, IPv6 and local (Unix-domain).
 *
 * An sn_addr is a plain value (copy it freely) holding an IPv4 or IPv6
 * address and port, or a local socket's name. Text forms: "192.0.2.1:80",
 * "[2001:db8::1]:80", and, where a default port is given, "192.0.2.1",
 * "2001:db8::1", "[::1]". Scoped IPv6 addresses ("[fe80::1%eth0]:80") are
 * accepted and printed.
 *
 * Local (Unix-domain) stream sockets are named in the same text, with a
 * "unix:" prefix and no port:
 *
 *     "unix:/run/app.sock"  a path in the file system (relative paths too:
 *                           "unix:app.sock"), at most 107 bytes (sun_path)
 *     "unix:@app"           a Linux abstract name ("app" with a leading NUL
 *                           byte in the kernel, no file), at most 106 bytes
 *
 * Wherever the library takes a host (sn_resolve, sn_tcp_connect,
 * sn_listen_config, the server's listeners), "unix:PATH" or "unix:@NAME"
 * means that local socket and the port is ignored, so one configuration
 * string selects TCP or a local socket. Such an address has the family
 * SN_AF_UNIX and no port. A local socket that has no name (the client end
 * of a connection, usually) prints as "unix:".
 *
 * Thread safety: a value type; functions are reentrant.
 * Ownership: the caller owns every sn_addr and buffer.
 */
#ifndef SOCKNET_ADDR_H
#define SOCKNET_ADDR_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "socknet/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
    socklen_t len; /* 0 = empty */
} sn_addr;

/* Enough for "[ipv6%scope]:65535", for "unix:" and the longest path, and
 * for "unix:@" and the longest abstract name with every byte escaped, and a
 * NUL. */
#define SN_ADDR_STRLEN 440

/* Longest path or abstract name of a local socket, in bytes. */
#define SN_LOCAL_PATH_MAX 107

/* Families: for resolution, either IP family, IPv4 only, IPv6 only; and
 * what sn_addr_family reports (SN_AF_UNIX: a local socket). */
enum { SN_AF_ANY = 0, SN_AF_UNIX = 1, SN_AF_INET = 4, SN_AF_INET6 = 6 };

/* Parses a numeric address "ip:port", "[ip6]:port" or, when default_port
 * is 0..65535, also a bare "ip" or "ip6" or "[ip6]". No name resolution.
 * The port is 1..5 decimal digits. Strict: no spaces, signs, empty parts,
 * trailing text, IPv4 in brackets or IPv6 with a port but no brackets. An
 * IPv6 scope is an interface name or a decimal index ("%lo", "%1").
 * "unix:PATH" and "unix:@NAME" give a local address (default_port is
 * ignored); see sn_addr_from_path.
 * Returns 0, SN_EBADADDR for malformed text or a port outside 0..65535,
 * SN_ENAMETOOLONG for a local name longer than SN_LOCAL_PATH_MAX bytes
 * (106 for an abstract one), SN_EINVAL for NULL arguments. *out is
 * untouched on error. */
SN_API int sn_addr_parse(sn_addr *out, const char *text, int default_port);

/* Builds a local (Unix-domain) address: a file system path ("/run/a.sock",
 * "a.sock"), or "@name" for a Linux abstract name (the kernel's leading NUL
 * byte, then "name"; it needs no file and vanishes with its socket).
 * Returns 0, SN_EBADADDR (an empty path or name), SN_ENAMETOOLONG (over
 * SN_LOCAL_PATH_MAX bytes; 106 after the '@'), SN_EINVAL (NULL arguments).
 * *out is untouched on error. */
SN_API int sn_addr_from_path(sn_addr *out, const char *path);

/* Builds an address from a numeric ip ("127.0.0.1", "::1", "fe80::1%lo")
 * and a port. NULL or "" ip means the IPv4 wildcard "0.0.0.0"; "::" is the
 * IPv6 wildcard. Returns 0, SN_EBADADDR (malformed ip, or a port outside
 * 0..65535), SN_EINVAL (NULL out). *out is untouched on error. */
SN_API int sn_addr_from_ip(sn_addr *out, const char *ip, int port);

/* Formats as "ip:port" or "[ip6]:port" (an IPv4-mapped IPv6 address is
 * printed in its IPv6 form), or "unix:PATH", "unix:@NAME" ("unix:" for an
 * unnamed local socket). A path is printed as it is; in an abstract name,
 * bytes below 0x20, 0x7f and the backslash print as "\xHH". Returns the
 * length written (without the NUL), SN_ENOSPC when cap is too small (buf
 * then holds ""), SN_EAFNOSUPPORT for an empty or unknown address. SN_ADDR_STRLEN is always enough.
 */
SN_API int sn_addr_format(const sn_addr *a, char *buf, size_t cap);

/* Formats the ip alone ("::1", "127.0.0.1", "fe80::1%lo"; a scope whose
 * interface is gone prints as its index), or a local address's path or
 * "@name" (what follows "unix:"). Same returns as above. */
SN_API int sn_addr_format_ip(const sn_addr *a, char *buf, size_t cap);

/* The port (0..65535), or SN_EAFNOSUPPORT for an empty or local address. */
SN_API int sn_addr_port(const sn_addr *a);

/* Sets the port. Returns 0, SN_EBADADDR for a port outside 0..65535,
 * SN_EAFNOSUPPORT for an empty or local address. */
SN_API int sn_addr_set_port(sn_addr *a, int port);

/* SN_AF_INET, SN_AF_INET6, SN_AF_UNIX, or 0 for an empty address. */
SN_API int sn_addr_family(const sn_addr *a);

/* 1 if a and b hold the same family, ip, port (and IPv6 scope), or the
 * same local path or abstract name, else 0. An IPv4 address never equals
 * its IPv4-mapped IPv6 form; a path never equals the abstract name of the
 * same text; two empty addresses are equal, and so are two unnamed local
 * ones. */
SN_API int sn_addr_equal(const sn_addr *a, const sn_addr *b);

/* 1 for a loopback address (127.0.0.0/8, ::1, ::ffff:127.x), else 0 (a
 * local address has no ip, so 0). */
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
 * SN_AF_ANY, SN_AF_INET or SN_AF_INET6. A host "unix:PATH" or "unix:@NAME"
 * gives its one local address (port ignored; with SN_AF_INET or
 * SN_AF_INET6, SN_EAFNOSUPPORT), as sn_addr_parse would. Names under ".invalid" fail at
 * once with SN_ENONAME without asking the resolver (RFC 6761).
 * Stores up to max addresses in out. Returns the number stored (>= 1),
 * or SN_ENONAME (no such host, or none of that family), SN_ERESOLVE_AGAIN
 * (temporary failure, try later), SN_ERESOLVE (any other resolver failure),
 * SN_EAFNOSUPPORT (a numeric host of the other family), SN_EBADADDR (port
 * outside 0..65535, or an empty local name), SN_ENAMETOOLONG (a local name
 * too long), SN_EINVAL (max 0, NULL out, unknown family),
 * SN_ENOMEM.
 * This call blocks in the system resolver and has no deadline of its own. */
SN_API int sn_resolve(const char *host, int port, int family, sn_addr *out, size_t max);

#ifdef __cplusplus
}
#endif
#endif
