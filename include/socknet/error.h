/* SPDX-License-Identifier: MIT */
/*
 * socknet/error.h: the one list of error codes.
 *
 * Every call returns 0 (or a byte count) on success and a negative SN_E*
 * code on failure. System errors are -errno (SN_ECONNRESET == -ECONNRESET
 * on Linux); the library's own codes live from -1000 down, grouped by layer:
 *
 *     -1000..-1099  streams and channels      -1300..-1399  HTTP
 *     -1100..-1199  addresses and sockets     -1400..-1499  WebSocket
 *     -1200..-1299  TLS                       -1500..-1599  pool, server, hub
 *
 * There is no thread-local "last error": the code returned is the error.
 */
#ifndef SOCKNET_ERROR_H
#define SOCKNET_ERROR_H

#include <errno.h>
#include "socknet/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* System errors the library returns, as -errno. XX(name, message). */
#define SN_SYS_ERRNO_MAP(XX)                                                                       \
    XX(EPERM, "operation not permitted")                                                           \
    XX(ENOENT, "no such file or directory")                                                        \
    XX(EINTR, "interrupted system call")                                                           \
    XX(EIO, "input/output error")                                                                  \
    XX(EBADF, "bad file descriptor")                                                               \
    XX(EAGAIN, "resource temporarily unavailable")                                                 \
    XX(ENOMEM, "out of memory")                                                                    \
    XX(EACCES, "permission denied")                                                                \
    XX(EFAULT, "bad address")                                                                      \
    XX(EBUSY, "resource busy")                                                                     \
    XX(EEXIST, "already exists")                                                                   \
    XX(EINVAL, "invalid argument")                                                                 \
    XX(ENFILE, "too many open files in system")                                                    \
    XX(EMFILE, "too many open files")                                                              \
    XX(ENOSPC, "no space left on device")                                                          \
    XX(ENODEV, "no such device")                                                                   \
    XX(EPIPE, "broken pipe")                                                                       \
    XX(ERANGE, "result out of range")                                                              \
    XX(ENAMETOOLONG, "file name too long")                                                         \
    XX(ENOSYS, "function not implemented")                                                         \
    XX(ENOTSOCK, "socket operation on non-socket")                                                 \
    XX(EMSGSIZE, "message too long")                                                               \
    XX(ENOPROTOOPT, "protocol not available")                                                      \
    XX(EPROTONOSUPPORT, "protocol not supported")                                                  \
    XX(EOPNOTSUPP, "operation not supported")                                                      \
    XX(EAFNOSUPPORT, "address family not supported")                                               \
    XX(EADDRINUSE, "address already in use")                                                       \
    XX(EADDRNOTAVAIL, "address not available")                                                     \
    XX(ENETDOWN, "network is down")                                                                \
    XX(ENETUNREACH, "network is unreachable")                                                      \
    XX(ECONNABORTED, "connection aborted")                                                         \
    XX(ECONNRESET, "connection reset by peer")                                                     \
    XX(ENOBUFS, "no buffer space available")                                                       \
    XX(EISCONN, "socket is already connected")                                                     \
    XX(ENOTCONN, "socket is not connected")                                                        \
    XX(ETIMEDOUT, "timed out")                                                                     \
    XX(ECONNREFUSED, "connection refused")                                                         \
    XX(EHOSTUNREACH, "host is unreachable")                                                        \
    XX(EALREADY, "operation already in progress")                                                  \
    XX(EINPROGRESS, "operation in progress")                                                       \
    XX(ECANCELED, "operation canceled")

/* The library's own errors. XX(name, value, message). */
#define SN_LIB_ERRNO_MAP(XX)                                                                       \
    XX(EOF, -1000, "end of stream")                                                                \
    XX(ELINETOOLONG, -1001, "line longer than the limit")                                          \
    XX(EUNTERMINATED, -1002, "stream ended inside a line")                                         \
    XX(ETOOBIG, -1003, "request larger than the buffer limit")                                     \
    XX(ECLOSED, -1004, "connection closed")                                                        \
    XX(EBADADDR, -1100, "malformed address")                                                       \
    XX(ENONAME, -1101, "host name not found")                                                      \
    XX(ERESOLVE_AGAIN, -1102, "temporary failure in name resolution")                              \
    XX(ERESOLVE, -1103, "name resolution failed")                                                  \
    XX(EBADSTATE, -1104, "socket is in the wrong state for this call")                             \
    XX(ETRUNCATED, -1105, "datagram larger than the buffer (truncated)")                           \
    XX(ETLS, -1200, "TLS error")                                                                   \
    XX(ETLS_HANDSHAKE, -1201, "TLS handshake failed")                                              \
    XX(ETLS_VERIFY, -1202, "TLS certificate verification failed")                                  \
    XX(ETLS_HOSTNAME, -1203, "TLS certificate does not match the host name")                       \
    XX(ETLS_NO_CERT, -1204, "TLS peer sent no certificate")                                        \
    XX(ETLS_VERSION, -1205, "no TLS protocol version in common")                                   \
    XX(ETLS_CIPHER, -1206, "no TLS cipher suite in common")                                        \
    XX(ETLS_ALPN, -1207, "no ALPN protocol in common")                                             \
    XX(ETLS_ALERT, -1208, "TLS peer sent a fatal alert")                                           \
    XX(ETLS_CERT, -1209, "TLS certificate or key cannot be loaded")                                \
    XX(ETLS_CONFIG, -1210, "invalid TLS configuration")                                            \
    XX(ETLS_UNAVAILABLE, -1211, "not available from this TLS library")                             \
    XX(ENOTLS, -1212, "not a TLS connection")                                                      \
    XX(EHTTP_BAD, -1300, "malformed HTTP request")                                                 \
    XX(EHTTP_URI_TOO_LONG, -1301, "HTTP request line too long")                                    \
    XX(EHTTP_HEAD_TOO_BIG, -1302, "HTTP header section too large")                                 \
    XX(EHTTP_VERSION, -1303, "HTTP version not supported")                                         \
    XX(EHTTP_LENGTH, -1304, "HTTP request body without a Content-Length")                          \
    XX(EHTTP_BODY_TOO_BIG, -1305, "HTTP request body too large")                                   \
    XX(EWS_PROTOCOL, -1400, "WebSocket protocol violation")                                        \
    XX(EWS_UTF8, -1401, "invalid UTF-8 in a WebSocket text")                                       \
    XX(EWS_TOO_BIG, -1402, "WebSocket frame or message larger than the limit")                     \
    XX(EWS_DEFLATE, -1403, "invalid compressed WebSocket data")                                    \
    XX(EWS_HANDSHAKE, -1404, "WebSocket handshake refused or malformed")                           \
    XX(EWS_BUSY, -1405, "WebSocket message memory budget spent; try again later")                  \
    XX(ESTOPPED, -1500, "stopped")                                                                 \
    XX(EQUEUEFULL, -1501, "queue full")                                                            \
    XX(EREFUSED, -1502, "refused by the application")                                              \
    XX(EHUB_SLOW, -1503, "disconnected from the room for being too slow")                          \
    XX(EHUB_NOROOM, -1504, "no such room")                                                         \
    XX(EHUB_DOWN, -1505, "the hub's engine (Redis) cannot be reached")                             \
    XX(EHUB_GAP, -1506, "messages of the room were lost on this server (a gap)")                   \
    XX(EHUB_NOREDIS, -1507, "libsocknet was built without hiredis (configure --with-hiredis)")

typedef enum sn_errno {
#define SN_XX_SYS(name, msg) SN_##name = -name,
    SN_SYS_ERRNO_MAP(SN_XX_SYS)
#undef SN_XX_SYS
#define SN_XX_LIB(name, value, msg) SN_##name = value,
        SN_LIB_ERRNO_MAP(SN_XX_LIB)
#undef SN_XX_LIB
} sn_errno;

/* A message for any code: SN_E* codes, other -errno values (via the C
 * library) and 0 ("success"). Never NULL; the string is static. */
SN_API const char *sn_strerror(int err);

/* The code's name without the SN_ prefix ("ECONNRESET", "EOF"), or
 * "UNKNOWN" for a code not in the lists above. Never NULL; static. */
SN_API const char *sn_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
