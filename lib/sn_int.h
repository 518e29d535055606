/* SPDX-License-Identifier: MIT */
/*
 * sn_int.h: what several files of the library share. Not installed.
 * Internal names start with sn__; nothing here is exported from the shared
 * library (hidden visibility), but the tests link the convenience library
 * and may call these.
 */
#ifndef SN_INT_H
#define SN_INT_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/uio.h>
#include "socknet.h"

#define SN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SN_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- allocation: every internal allocation goes through these ---------- */
void *sn__malloc(size_t n);
void *sn__calloc(size_t count, size_t size);
void *sn__realloc(void *p, size_t n);
char *sn__strdup(const char *s); /* NULL gives NULL */
void sn__free(void *p);
/* Tests: make the allocation after n more succeed fail (n = 0: the next
 * one); a negative n turns injection off. Counts allocations from every
 * thread. */
void sn__alloc_fail_after(long n);
/* Allocations that have not been freed, for leak checks in tests. */
long sn__alloc_live(void);

/* ---- locks: a pthread error is a bug, so these abort on one ------------ */
void sn__mutex_init(pthread_mutex_t *m);
void sn__mutex_destroy(pthread_mutex_t *m);
void sn__mutex_lock(pthread_mutex_t *m);
void sn__mutex_unlock(pthread_mutex_t *m);
void sn__cond_init(pthread_cond_t *c); /* on CLOCK_MONOTONIC */
void sn__cond_destroy(pthread_cond_t *c);
void sn__cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
/* Waits until signalled or the absolute monotonic deadline (ms;
 * SN_DEADLINE_NEVER waits forever). Returns 0, or SN_ETIMEDOUT. */
int sn__cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ms);
void sn__cond_signal(pthread_cond_t *c);
void sn__cond_broadcast(pthread_cond_t *c);

/* ---- deadlines ---------------------------------------------------------- */
/* Turns a caller's deadline into an absolute one: SN_DEADLINE_DEFAULT
 * becomes now + default_ms (default_ms < 0: never). */
int64_t sn__deadline_abs(sn_deadline dl, int default_ms);
/* Milliseconds left until an absolute deadline, as poll() wants them:
 * -1 for never, 0 when passed, rounded up, capped at INT_MAX. */
int sn__poll_timeout(int64_t deadline_ms);
/* Sets fd's SO_RCVTIMEO so that a blocking receive returns by the absolute
 * deadline (SN_DEADLINE_NEVER: no timeout). *timeo_ms is the value last set
 * (ms; 0 none, -1 unknown); a value that still fits is kept, so most calls
 * make no system call. Returns 0, SN_ETIMEDOUT (the deadline has passed),
 * or -errno. Used where a receive blocks in the kernel instead of poll +
 * receive (never on a fiber). */
int sn__rcvtimeo_until(int fd, int *timeo_ms, int64_t deadline_ms);

/* ---- descriptors -------------------------------------------------------- */
int sn__fd_nonblock_cloexec(int fd); /* 0 or -errno */
/* Maps a getaddrinfo() error to SN_ENONAME / SN_ERESOLVE_AGAIN / ... */
int sn__gai_error(int gai_err);

/* ---- sockets (sn_sock.c) ------------------------------------------------ */
struct sn_sock {
    int fd;        /* -1 once closed */
    int state;     /* sn_sock_state */
    bool blocking; /* the descriptor is in blocking mode (accepted ones are:
                      every call passes MSG_DONTWAIT or polls anyway, and a
                      connection's blocking receive saves a poll) */
    int family;    /* AF_INET / AF_INET6 / AF_UNIX */
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
    /* local listeners bound to a path: the path, and the file's device and
     * inode, to remove it on close if it is still ours; else NULL */
    char *path;
    dev_t path_dev;
    ino_t path_ino;
};

/* Wraps a descriptor in a new sn_sock with default timeouts. On failure
 * (SN_ENOMEM) the descriptor is still the caller's to close. */
int sn__sock_wrap(sn_sock **out, int fd, int state, int family);
/* Accepts one pending connection without waiting: 0, SN_EAGAIN (none
 * pending) or an accept error. The new socket gets the listener's options.
 * Used by the server's acceptors, which do their own polling. */
int sn__sock_accept_now(sn_sock *listener, sn_sock **out);

/* ---- transports (sn_transport.c; TLS adds another) ----------------------
 * Non-blocking byte streams over a descriptor. recv and sendv return a
 * byte count (recv: 0 = end of stream), SN_EAGAIN with *want set to the
 * poll events to wait for (a TLS read may need to write), or an SN_E*
 * error. */
typedef struct sn_transport sn_transport;
typedef struct sn_transport_vtable {
    const char *name;
    ssize_t (*recv)(sn_transport *t, void *buf, size_t len, short *want);
    ssize_t (*sendv)(sn_transport *t, const struct iovec *iov, int iovcnt, short *want);
    /* Ends the sending direction (TCP FIN; TLS close_notify then FIN).
     * 0, SN_EAGAIN with *want, or an error. */
    int (*shutdown)(sn_transport *t, short *want);
    /* Optional: receives, blocking in the kernel until bytes, the end of
     * the stream, an error or the absolute deadline (SN_ETIMEDOUT). One
     * system call where poll + recv would be two. NULL: the channel polls,
     * then calls recv. */
    ssize_t (*recv_wait)(sn_transport *t, void *buf, size_t len, int64_t deadline_ms);
    /* Bytes the transport holds that can be read without the descriptor. */
    size_t (*pending)(sn_transport *t);
    /* Optional: the channel is about to wait on a fiber for input, with
     * nothing buffered; the transport may free what it holds for reading
     * and writing until it is used again. */
    void (*idle)(sn_transport *t);
    /* Releases the transport's own state; never closes the descriptor. */
    void (*release)(sn_transport *t);
} sn_transport_vtable;

struct sn_transport {
    const sn_transport_vtable *vt;
    int fd;
    bool blocking; /* the descriptor's mode, as far as recv_wait knows */
    int timeo_ms;  /* SO_RCVTIMEO as last set: -1 unknown, 0 none */
};

/* blocking: the descriptor is known to be in blocking mode already;
 * timeo_ms: its SO_RCVTIMEO if known (ms, 0 none), else -1. */
void sn__transport_plain_init(sn_transport *t, int fd, bool blocking, int timeo_ms);
/* For a recv_wait: puts t's descriptor in blocking mode, once (t->blocking
 * remembers it). 0 or -errno. */
int sn__transport_blocking(sn_transport *t);

/* ---- fibers (sn_fiber.c) -------------------------------------------------
 * One scheduler per thread, made and run on that thread; fibers never move.
 * sn__fiber_wait_fd and the sleeps park the calling fiber (a reader and a
 * writer per descriptor per scheduler); they must be called on a fiber. */
typedef struct sn_sched sn_sched;
typedef struct sn_fiber sn_fiber;
int sn__sched_new(sn_sched **out);
void sn__sched_free(sn_sched *s);
/* Runs fibers until none is left and no hold is on. */
void sn__sched_run(sn_sched *s);
/* With a hold on, sn__sched_run goes on waiting when no fiber is left. */
void sn__sched_hold(sn_sched *s, bool hold);
/* fn(arg) runs on the scheduler (not on a fiber) whenever fd is readable;
 * it must make fd unreadable again (an eventfd: read it). */
int sn__sched_set_inbox(sn_sched *s, int fd, void (*fn)(void *arg), void *arg);
/* The calling thread's scheduler, or NULL. */
sn_sched *sn__sched_self(void);
/* Connection buffers of SN_SCHED_BUF_BYTES (a default-sized read or write
 * buffer and its spare byte) that connections on a scheduler's thread hand
 * back while they wait, for the thread's other connections to reuse. take
 * gives one of size bytes, or NULL (none kept, another size, or not a
 * scheduler's thread); give keeps p, or returns false for the caller to
 * free it. */
#define SN_CONN_BUF_DEFAULT 4096 /* a connection's read and write buffers */
#define SN_SCHED_BUF_BYTES (SN_CONN_BUF_DEFAULT + 1)
void *sn__sched_buf_take(size_t size);
bool sn__sched_buf_give(void *p, size_t size);
/* A pointer of the fiber's owner, NULL at first. */
void *sn__fiber_local(const sn_fiber *f);
void sn__fiber_set_local(sn_fiber *f, void *p);
/* A new fiber running fn(arg), ready to run; stack_size 0 = 256 KiB. */
int sn__fiber_spawn(sn_sched *s, void (*fn)(void *), void *arg, size_t stack_size);
/* The calling fiber, or NULL on a plain thread. */
sn_fiber *sn__fiber_self(void);
/* Tests: how far below its top f's stack has ever been written (the lowest
 * non-zero byte), in bytes. Meaningful for a stack the fiber got fresh or
 * after a trim gave its pages back (a reused one otherwise remembers its
 * earlier fibers), and not under valgrind, which calls the bytes below the
 * stack pointer undefined. */
size_t sn__fiber_stack_touched(const sn_fiber *f);
/* Finished fibers a scheduler keeps for their stacks, at most (the top of
 * sn_fiber.c says which keep their pages); stacks beyond are unmapped. */
#define SN_FIBER_CACHE 64
/* Tests and benchmarks: what a scheduler keeps of finished fibers. */
typedef struct sn__sched_mem {
    size_t cached;             /* finished fibers kept for their stacks */
    size_t cached_warm;        /* of them, those that kept their pages */
    size_t resident;           /* bytes of the cached stacks in memory */
    uint64_t mapped, unmapped; /* stacks mapped and unmapped so far */
    uint64_t trims;            /* trims after the load fell */
} sn__sched_mem;
void sn__sched_mem_get(const sn_sched *s, sn__sched_mem *out);
/* Gives the allocator's free memory back to the system: malloc_trim(0)
 * with glibc, else nothing. It walks every arena and returns the free pages
 * range by range: about 0.4 ms per MiB returned (130 ms after a spike of
 * 3,000 TLS connections), so call it when the load has fallen, not on
 * every idle. */
void sn__heap_trim(void);
void sn__fiber_yield(void);
int sn__fiber_sleep_until(int64_t deadline_ms);
/* Parking for sn_wait.c's lock and condition variable: the calling fiber
 * takes a ticket for its next park, publishes it (with itself) where a
 * waker finds it, then parks until sn__fiber_unpark with that ticket (0)
 * or the deadline (SN_ETIMEDOUT). sn__fiber_unpark may be called from any
 * thread, before the park too: it takes effect once the fiber is parked.
 * An old ticket (the fiber went on meanwhile) wakes nothing. The caller of
 * sn__fiber_unpark must keep the fiber from finishing until it returns
 * (sn_wait.c holds the queue lock that the waiter takes to leave). */
uint64_t sn__fiber_park_ticket(void);
int sn__fiber_park(int64_t deadline_ms);
void sn__fiber_unpark(sn_fiber *f, uint64_t ticket);
/* Like sn__wait_fd (sn_wait.h), parking the fiber instead of blocking the thread. */
int sn__fiber_wait_fd(int fd, short events, int64_t deadline_ms);
/* Waits for a listener to have a connection pending. Each scheduler whose
 * fiber waits on the same listener is woken alone (EPOLLEXCLUSIVE), so a
 * connection wakes one thread, not all; shutdown(2) of the listener wakes
 * them all. */
int sn__fiber_wait_accept(int fd, int64_t deadline_ms);
/* Called before fd is closed: the calling thread's scheduler (if any) drops
 * what it knows of fd, and a fiber parked on it wakes. */
void sn__fiber_forget_fd(int fd);

/* ---- the pool's engines: threads (sn_pool.c), fibers (sn_pool_fiber.c) ---
 * sn_pool calls its engine through this table, as a connection calls its
 * transport: the public calls hold no test of the mode. */
typedef struct sn__pool_engine {
    int (*submit)(void *e, sn_job_fn fn, void *arg);
    int64_t (*expire)(void *e, int64_t cutoff, sn_job_fn with); /* see sn__pool_expire */
    void (*stats)(void *e, sn_pool_stats *out);
    int (*stop)(void *e);
    void (*free)(void *e);
} sn__pool_engine;
extern const sn__pool_engine sn__fiber_engine;

typedef struct sn__fpool sn__fpool;
int sn__fpool_new(sn__fpool **out, const sn_pool_config *cfg);
/* Runs fn(arg) on a fiber of every scheduler thread, outside the count of
 * jobs; a thread lives until its fiber returns (pool stop waits for that).
 * undo(arg) runs instead on a thread where the fiber cannot start. Returns
 * 0, SN_ENOMEM or SN_ESTOPPED (then nothing runs). */
int sn__fpool_spawn_each(sn__fpool *fp, sn_job_fn fn, sn_job_fn undo, void *arg);
int sn__fpool_threads(const sn__fpool *fp);
/* The fiber engine of a pool made with fibers on, else NULL. */
sn__fpool *sn__pool_fibers(sn_pool *p);
/* The queue's wait limit (both engines): takes every job queued at or
 * before cutoff (an sn_now_ms time) off the queue and calls with(arg) for
 * each instead of running it, outside the pool's lock, on the calling
 * thread. Returns when the oldest job still queued was queued, or
 * SN_DEADLINE_NEVER when none is. */
int64_t sn__pool_expire(sn_pool *p, int64_t cutoff, sn_job_fn with);

/* ---- connections (sn_chan.c): what the server needs --------------------- */
/* The server wakes a connection's reader when it stops: level 1 = reads
 * return SN_ESTOPPED once the buffer is drained (writes still work);
 * level 2 = every I/O call fails with SN_ESTOPPED at once. Safe from any
 * thread while the owner is blocked in I/O, but not while the owner may be
 * closing the connection (the descriptor could be reused): the server
 * excludes that with its CLOSING state, under its mutex. */
void sn__conn_wake(sn_conn *c, int level);
/* The level a stop woke c with (0 = not woken). Any thread. */
int sn__conn_wake_level(const sn_conn *c);
/* Replaces the plain transport (for TLS). The connection takes t. */
void sn__conn_set_transport(sn_conn *c, sn_transport *t);
/* The connection's transport (its plain one unless replaced). */
sn_transport *sn__conn_transport(const sn_conn *c);
/* Tests: bytes of the buffers a TLS connection's transport holds now (its
 * read-ahead and scratch buffers); 0 for a plain connection (sn_tls.c). */
size_t sn__tls_held(const sn_conn *c);
/* Makes err the sticky error of both directions (a failed TLS upgrade). */
void sn__conn_fail(sn_conn *c, int err);

/* The hub's non-blocking writes; the caller holds the connection's writing
 * side. try_flush: one send of what is buffered: 0 (all out), SN_EAGAIN
 * (some left) or the sticky error. try_writev: with nothing buffered, one
 * send of the n buffers (frames, for the hub); *taken = the buffers taken:
 * sent whole, or the last one in part with its rest buffered (for
 * try_flush). Returns 0 (nothing of a taken buffer is left), 1 (the rest
 * of the last taken one is buffered), SN_EAGAIN (none taken: the socket is
 * full or bytes are buffered already) or the sticky error. */
int sn__conn_try_flush(sn_conn *c);
/* Frees the write buffer if it holds nothing (it is made again when
 * needed): for connections about to idle. The caller holds the writing side. */
void sn__conn_trim(sn_conn *c);
int sn__conn_try_writev(sn_conn *c, const struct iovec *iov, int n, int *taken);

/* ---- the WebSocket codec (sn_ws_frame.c): no I/O ------------------------ */
/* opcodes: enum sn_ws_type in socknet/ws.h */
#define SN_WS_HEAD_MAX 14          /* bytes of the longest frame header */
#define SN_WS_ACCEPT_LEN 28        /* base64 of a SHA-1 */
#define SN_WS_CLOSE_NO_STATUS 1005 /* a close frame without a code */
#define SN_UTF8_REJECT 0xffffffffu

/* A frame header as sent. rsv holds RSV1..RSV3 as bits 2..0 (RSV1 = 4). */
typedef struct sn__ws_head {
    bool fin;
    uint8_t rsv;
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t len;
    size_t size; /* bytes of the header */
} sn__ws_head;

/* Decodes the header at buf[0, len): its size (2 to 14), 0 when more bytes
 * are needed, or SN_EWS_PROTOCOL (a length not in its shortest form, or
 * over 2^63). */
int sn__ws_head_decode(const uint8_t *buf, size_t len, sn__ws_head *h);
/* Masking rules for sn__ws_head_check. */
enum { SN_WS_UNMASKED = 0, SN_WS_MASKED = 1, SN_WS_EITHER = 2 };
/* 0, or SN_EWS_PROTOCOL: a reserved bit not in rsv_allowed, masking other
 * than the rule says, a reserved opcode, a fragmented, long (over 125) or
 * compressed control frame, a continuation with RSV1. */
int sn__ws_head_check(const sn__ws_head *h, uint8_t rsv_allowed, int masking);
/* Writes a header (mask NULL: unmasked); returns its size. */
size_t sn__ws_head_encode(uint8_t out[SN_WS_HEAD_MAX], bool fin, uint8_t rsv, uint8_t opcode,
                          const uint8_t *mask, uint64_t len);
/* XORs p[0, n) with the mask, p being at byte `offset` of the payload. */
void sn__ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);
/* Feeds n bytes to the UTF-8 validator: returns the new state (start and
 * end a message with 0: 0 means at a character boundary), or
 * SN_UTF8_REJECT, at the first byte that cannot be UTF-8, for good. */
uint32_t sn__utf8_step(uint32_t state, const uint8_t *p, size_t n);
/* Whether code may be sent in a close frame (RFC 6455 7.4 and IANA). */
bool sn__ws_close_code_ok(int code);
/* A close frame's payload: *code (SN_WS_CLOSE_NO_STATUS when empty) and the
 * reason's length (it follows the 2 code bytes). 0, SN_EWS_PROTOCOL (one
 * byte, or a code that may not be sent) or SN_EWS_UTF8 (the reason). */
int sn__ws_close_parse(const uint8_t *p, size_t n, int *code, size_t *reason_len);
/* The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 4.2.2):
 * 0, or SN_EINVAL (a key over 64 bytes). */
int sn__ws_accept_key(const char *key, size_t key_len, char out[SN_WS_ACCEPT_LEN + 1]);

/* ---- sharing encoded frames (sn_ws_share.c), for the hub ------------------
 * Never wait: a lock that is taken gives SN_EBUSY. */
/* Sends a complete unmasked frame: 0 (all out), 1 (the rest is buffered:
 * sn__ws_try_flush when the socket is writable), SN_EAGAIN (the socket is
 * full, nothing taken), SN_EBUSY (another sender holds the session),
 * SN_EBADSTATE (a close was sent), SN_EOPNOTSUPP (the session masks), or
 * the connection's error. is_close: the frame is a close (none may follow). */
int sn__ws_try_send_frame(sn_ws *ws, const void *frame, size_t len, bool is_close);
/* Sends n complete unmasked frames in one system call, as many as the
 * socket takes: *taken frames (the last maybe in part, its rest buffered:
 * then 1 is returned); else as sn__ws_try_send_frame. */
int sn__ws_try_send_frames(sn_ws *ws, const struct iovec *frames, int n, int *taken);
/* Sends what try_send_frame buffered: 0, SN_EAGAIN, SN_EBUSY, or an error. */
int sn__ws_try_flush(sn_ws *ws);
/* Gives back the session's empty write buffer (the hub's members idle
 * between messages, which it writes without that buffer); nothing when
 * another sender holds the session. */
void sn__ws_trim(sn_ws *ws);
/* Whether sessions's frames are masked (then frames cannot be shared). */
bool sn__ws_masks(const sn_ws *ws);
/* The descriptor under the session (for epoll). */
int sn__ws_fd(sn_ws *ws);
/* A higher layer's pointer: release(ws, ext) runs first in sn_ws_free. The
 * caller serializes get and set. */
void *sn__ws_ext(const sn_ws *ws);
void sn__ws_set_ext(sn_ws *ws, void *ext, void (*release)(sn_ws *ws, void *ext));

/* ---- byte buffers (sn_bytes.c), charged to an sn_ws_budget --------------- */
/* A growable byte buffer. With a budget, the capacity beyond the buffer's
 * own SN__BYTES_OWN bytes is charged to it. */
typedef struct sn__bytes {
    uint8_t *p;
    size_t len, cap;
    sn_ws_budget *budget; /* NULL = none */
} sn__bytes;
#define SN__BYTES_OWN ((size_t)128 << 10)
/* Room for extra more bytes: 0, SN_ENOMEM, SN_EWS_BUSY (the budget is
 * spent). */
int sn__bytes_reserve(sn__bytes *b, size_t extra);
/* Frees the memory (the budget stays). */
void sn__bytes_free(sn__bytes *b);

/* ---- permessage-deflate (sn_ws_deflate.c): zlib, no I/O -------------------- */
/* A compressor and a decompressor of messages, opaque so that zlib.h stays
 * in sn_ws_deflate.c. zlib's state is allocated on first use: a session
 * that never sends or never receives a compressed message pays for the
 * small struct only. */
typedef struct sn__deflate sn__deflate;
typedef struct sn__inflate sn__inflate;
/* window_bits 8-15 (8 compresses with 9, safely), level 0-9, mem_level 1-9.
 * 0, SN_EINVAL or SN_ENOMEM (*out untouched). */
int sn__deflate_new(sn__deflate **out, int window_bits, bool no_takeover, int level, int mem_level);
void sn__deflate_free(sn__deflate *d); /* NULL is a no-op */
/* Compresses a piece of a message, appending to out; `last` ends the message
 * (sync flush, its 00 00 ff ff removed). 0, SN_ENOMEM. */
int sn__deflate_push(sn__deflate *d, const void *in, size_t len, bool last, sn__bytes *out);
/* Tests: whether zlib's state is allocated yet (by the first push). */
bool sn__deflate_ready(const sn__deflate *d);

/* window_bits 8-15. 0, SN_EINVAL or SN_ENOMEM (*out untouched). */
int sn__inflate_new(sn__inflate **out, int window_bits, bool no_takeover);
void sn__inflate_free(sn__inflate *f); /* NULL is a no-op */
/* Tests: whether zlib's state is allocated yet. */
bool sn__inflate_ready(const sn__inflate *f);
/* Inflates a piece of a compressed message, appending to out but never
 * past max bytes in all; `last` ends the message. 0, SN_EWS_TOO_BIG (more
 * than max: a decompression bomb stops there), SN_EWS_DEFLATE (corrupt),
 * SN_ENOMEM. */
int sn__inflate_push(sn__inflate *f, const void *in, size_t len, bool last, size_t max,
                     sn__bytes *out);
/* The pull side, for messages taken in bounded pieces: inflates from *in
 * (*len bytes; both advanced past what was taken) into out, adding at most
 * room bytes; *more says zlib may still hold output back (call again, even
 * with no input). The caller feeds sn__inflate_tail()'s 4 bytes after the
 * message's last byte, then calls sn__inflate_finish. 0, SN_EWS_DEFLATE,
 * SN_ENOMEM. */
int sn__inflate_some(sn__inflate *f, const uint8_t **in, size_t *len, size_t room, sn__bytes *out,
                     bool *more);
const uint8_t *sn__inflate_tail(void);
int sn__inflate_finish(sn__inflate *f);

#endif
