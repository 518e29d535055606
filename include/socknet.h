/* SPDX-License-Identifier: MIT */
/*
 * socknet.h: simple synchronous network servers and clients in C.
 *
 * A program writes `#include <socknet.h>`, which includes every header
 * below, and links with -lsocknet (`pkg-config --cflags --libs socknet`).
 * Each socknet/ header also compiles on its own.
 *
 * The user writes a handler that reads and writes with ordinary blocking
 * calls (read a line, read exactly N bytes, write, printf, flush), each with
 * a deadline; the library does the rest: listening, accepting, a pool of
 * worker threads (or fibers), buffering, TLS, WebSocket, rooms, overload
 * and a graceful stop. No event loop need ever be seen; where callbacks
 * suit better, the event model gives any socket OpenHarmony's on('message'
 * | 'connect' | 'close' | 'error') instead (socknet_event(3)).
 *
 * Modules: a header each, and a manual page each, which documents every
 * call of the header (man sn_read_line opens socknet_chan(3)):
 *
 *     socknet/common.h  socknet_common(3)  deadlines, version, on/off switches
 *     socknet/error.h   socknet_error(3)   the error codes, sn_strerror
 *     socknet/addr.h    socknet_addr(3)    IPv4, IPv6 and local addresses
 *     socknet/sock.h    socknet_sock(3)    TCP and local sockets, options
 *     socknet/chan.h    socknet_chan(3)    connections: buffered reads, writes
 *     socknet/pool.h    socknet_pool(3)    the worker pool
 *     socknet/tls.h     socknet_tls(3)     TLS over wolfSSL
 *     socknet/server.h  socknet_server(3)  the threaded (or fiber) server
 *     socknet/udp.h     socknet_udp(3)     UDP sockets and datagram server
 *     socknet/http.h    socknet_http(3)    HTTP/1.1 request heads
 *     socknet/ws.h      socknet_ws(3)      WebSocket sessions
 *     socknet/web.h     socknet_web(3)     routes: WebSocket, HTTP endpoints
 *     socknet/hub.h     socknet_hub(3)     rooms: the broadcast hub
 *     socknet/event.h   socknet_event(3)   the event model: callbacks per socket
 *
 * Where to start: a server is an sn_server_config with a handler, then
 * sn_server_new and sn_server_start (socknet_server(3)); the handler reads
 * and writes its sn_conn (socknet_chan(3)). A client is sn_conn_connect,
 * or sn_tls_connect for TLS. A WebSocket server routes paths with sn_web_new
 * and sn_web_route_ws and serves them with sn_web_serve as the server's
 * handler (socknet_web(3)). Callbacks instead of a handler: sn_loop_new and
 * sn_ev_client or sn_ev_from_conn, or a server's on_client (socknet_event(3)).
 *
 * Errors: every call returns 0 (or a byte count) on success and a negative
 * SN_E* code on failure; system errors are -errno, the library's own codes
 * lie from -1000 down (socknet_error(3)). sn_strerror and sn_err_name tell
 * what a code means. There is no thread-local "last error".
 *
 * Deadlines: every call that can wait takes an sn_deadline, an absolute
 * time on the monotonic clock that covers the whole call (a whole line, all
 * N bytes, a whole flush), and may be shared by several calls
 * (sn_deadline_in(5000): 5 s from now). SN_DEADLINE_DEFAULT (0) is the
 * socket's read or write timeout, 60 s unless configured, from the start of
 * the call; SN_DEADLINE_NEVER waits as long as it takes (socknet_common(3)).
 *
 * Thread safety: stated on every type in its header. In short, a
 * connection may be read by one thread while another writes; the pool, the
 * servers, the loops and the hub are fully thread-safe; an event socket's
 * sends and close work from any thread; a TLS context is immutable and
 * shared by any number of threads; sockets, addresses and everything else
 * belong to one thread. The library never calls exit, installs no signal
 * handler and never raises SIGPIPE.
 *
 * Ownership: what sn_X_new makes, sn_X_free releases (NULL is a no-op);
 * configuration structs are copied, and in them zero means the documented
 * default.
 */
#ifndef SOCKNET_H
#define SOCKNET_H

#include "socknet/common.h"
#include "socknet/error.h"
#include "socknet/addr.h"
#include "socknet/sock.h"
#include "socknet/chan.h"
#include "socknet/pool.h"
#include "socknet/tls.h"
#include "socknet/server.h"
#include "socknet/udp.h"
#include "socknet/http.h"
#include "socknet/ws.h"
#include "socknet/web.h"
#include "socknet/hub.h"
#include "socknet/event.h"

#endif
