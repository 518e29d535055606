/* SPDX-License-Identifier: MIT */
/*
 * socknet/hub.h: the broadcast hub: rooms of WebSocket sessions (and pull
 * subscriptions), fan-out where no slow member holds back the others.
 *
 *     sn_hub *hub;
 *     sn_hub_config hc = { .room = { .policy = SN_HUB_DROP_OLDEST } };
 *     sn_hub_new(&hub, &hc);
 *     // in a WebSocket handler:
 *     sn_hub_join(hub, "lobby", ws);
 *     while (sn_ws_recv(ws, &m, SN_DEADLINE_NEVER) == 0)
 *         sn_hub_publish(hub, "lobby", m.type, m.data, m.len, NULL, SN_DEADLINE_DEFAULT);
 *     // leaving is automatic when the session is freed
 *
 * Rooms are made by the first join (or subscription) and removed when their
 * last member leaves. A session may be in many rooms (of one hub).
 *
 * Delivery, and why it needs neither a thread per member nor a context
 * switch per message:
 *  - A published message is encoded once, as a complete unmasked WebSocket
 *    frame, in one reference-counted buffer shared by every recipient.
 *  - Under the room's mutex the hub gives it the room's next sequence
 *    number and hands it to each member in turn. A member whose queue is
 *    empty is written to at once, from the publisher's thread, with one
 *    non-blocking send, if its session's write lock is free: the common
 *    case costs a system call and no wake-up of anyone. Bytes the socket
 *    did not take stay in the session's write buffer and the member counts
 *    as pending.
 *  - Otherwise (socket full, lock busy, earlier messages still queued) the
 *    message's reference goes to the member's bounded queue (a limit in
 *    messages and one in bytes) and the member's socket is armed for
 *    EPOLLOUT in the hub's epoll set. A small fixed set of writer threads
 *    (sn_hub_config.writers) waits there and flushes each member's queue,
 *    in order, with non-blocking sends, when its socket becomes writable.
 *  - A busy room (16 members or more publishing again within 1 ms of the
 *    last publish, or a flush under way) is not written from the
 *    publisher: the message only goes to the queues, the room goes to the
 *    writers' run queue (one eventfd wake-up per flush, not per message),
 *    and a writer sends each member all its queued frames in one writev.
 *    The publisher then costs a few nanoseconds per member and the sockets
 *    one system call per member per flush, not per message. A queue that
 *    fills before its flush is written at once if the socket takes it, so
 *    batching never makes a member that keeps up lose a message.
 *  - Order: sequence numbers are given under the room's mutex, a member's
 *    queue is first in, first out, and nothing is written to a member
 *    directly while its queue holds anything, so message N+1 never goes
 *    before N. Every member of a room, the sender included, sees the room's
 *    messages in the one order the hub accepted them. (Messages of
 *    different rooms have no order between them.)
 *  - No lock of the hub is ever held across a blocking write: under a room
 *    mutex the hub only tries non-blocking sends.
 *
 * Slow members: when a member's queue is full the room's policy decides.
 *
 *     SN_HUB_DROP_OLDEST  the oldest queued message is dropped for that member
 *                         (the default; live feeds, chat);
 *     SN_HUB_DROP_NEWEST  the new message is dropped for that member;
 *     SN_HUB_DISCONNECT   the member's queue is dropped and it is closed with
 *                         close_code (1008 or 1013) as soon as its socket
 *                         takes the close frame (at most close_timeout_ms,
 *                         then the connection is cut); its session's receive
 *                         then ends. A pull subscription gets SN_EHUB_SLOW;
 *     SN_HUB_WAIT         the publisher waits, up to wait_ms and its own
 *                         deadline, for room in every full queue; a member
 *                         still full then misses the message and the call
 *                         returns SN_ETIMEDOUT (the others got it).
 *
 * A member that keeps up never loses a message. Only SN_HUB_WAIT lets a
 * slow member slow a publisher, and then only up to the deadline.
 *
 * A pull subscription (sn_hub_subscribe) is a member without a socket: any
 * thread waits on it with a deadline (a condition variable), for consumers
 * that are not WebSocket sessions (a TCP line protocol, a logger).
 *
 * Sessions whose frames are masked (clients, or a server with mask on)
 * cannot share an encoded frame and cannot join (SN_EINVAL). Messages go
 * uncompressed, also to sessions with permessage-deflate.
 *
 * Thread safety: every call is safe from any thread, and from fibers: a
 * publisher waiting for room under SN_HUB_WAIT and sn_hub_sub_recv park
 * their fiber (the other fibers of its thread go on) or block their
 * thread, and a wake-up reaches either.
 * Lock order (lib/sn_hub.c): hub, then room, then the run queue or a
 * session's write locks (only tried, never waited for).
 * Ownership: the hub holds no session; a session leaves its rooms when it
 * is freed (sn_ws_free, or when its sn_web handler returns), so the hub
 * must outlive the sessions and subscriptions: sn_hub_free after
 * sn_server_free. A message from sn_hub_sub_recv is the caller's until
 * sn_hub_msg_unref.
 *
 * Rooms across servers (an engine; today Redis, sn_hub_redis_new):
 *
 *     sn_hub_engine *redis;
 *     sn_hub_redis_new(&redis, &(sn_hub_redis_config){.host = "10.0.0.5"});
 *     sn_hub_new(&hub, &(sn_hub_config){.engine = redis});  // the hub owns it
 *
 * Every server's hub with an engine on the same Redis shares its rooms:
 * a message published on any of them reaches the members on all of them.
 * The promises, and how they are kept:
 *  - One order per room everywhere. A publish is one script in Redis that
 *    numbers the message in its room, appends it to the room's capped
 *    history (a stream of `history` messages) and publishes it. Every hub,
 *    the publisher's own included, delivers only what comes back from
 *    Redis, in the room's numbers: no server delivers a message before
 *    Redis has numbered it, and every member everywhere sees the room's
 *    messages in the one order Redis numbered them.
 *  - Joins without a race. A room's first member on a server makes the
 *    hub subscribe to the room's channel, wait for Redis's confirmation and
 *    then read the room's number: messages up to it came before the join,
 *    the ones after it are delivered, none twice, none lost. A publish to
 *    a room that is still joining waits for the join to end (within the
 *    engine's publish_timeout_ms).
 *  - Gaps are refilled, or said. A missing number (a connection that broke,
 *    a subscriber cut by Redis's client-output-buffer-limit for pubsub
 *    clients, which is what happens when a whole server falls behind) is
 *    refilled from the room's history. What cannot be refilled (older than
 *    the history, or Redis restarted and the room's numbers began again:
 *    a new epoch) is a gap, signalled in the room on this server: its
 *    WebSocket members are closed with 1012 (a new epoch) or 1013 (older
 *    than the history), its pull subscriptions get SN_EHUB_GAP once, at
 *    the place of the gap, and go on after it; the room's and the engine's
 *    `gaps` counters move. Nothing is skipped in silence.
 *  - Redis down. Publishing to a room that spans servers fails at once with
 *    SN_EHUB_DOWN; members stay connected and get what comes once Redis is
 *    back (reconnects with backoff and jitter, rooms resubscribed in
 *    batches, refilled or signalled as above). Local rooms (room config
 *    `local`) never touch Redis and keep working.
 *  - Liveness. The subscriber connection is probed every probe_ms (PING,
 *    and a message to the hub's own channel through the other connection):
 *    a connection that stops hearing is dropped and made again within
 *    probe_timeout_ms, and its rooms resynchronized.
 *  - Back-pressure. The engine's thread never waits in the hub: a message
 *    from Redis goes to each member under the room's policy, except that
 *    SN_HUB_WAIT does not wait for it (a member whose queue is full misses
 *    it, counted in its `dropped`, as SN_HUB_DROP_NEWEST would).
 * Redis has no TLS in the hiredis this builds with (0.14): keep it on
 * loopback or a private network. The engine needs a libsocknet configured
 * with hiredis (configure --with-hiredis; found by pkg-config by default):
 * without it, sn_hub_redis_new returns SN_EHUB_NOREDIS.
 */
#ifndef SOCKNET_HUB_H
#define SOCKNET_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "socknet/common.h"
#include "socknet/ws.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_hub sn_hub;
typedef struct sn_hub_sub sn_hub_sub;
typedef struct sn_hub_msg sn_hub_msg;

/* What happens when a member's queue is full (see above). */
enum sn_hub_policy {
    SN_HUB_DROP_OLDEST = 0,
    SN_HUB_DROP_NEWEST = 1,
    SN_HUB_DISCONNECT = 2,
    SN_HUB_WAIT = 3,
};

#define SN_HUB_NAME_MAX 255 /* bytes of a room's name */

/* A room's settings. Zero = default. */
typedef struct sn_hub_room_config {
    int policy;             /* an sn_hub_policy; 0 = SN_HUB_DROP_OLDEST */
    size_t max_queue;       /* messages queued per member; 0 = 1024 */
    size_t max_queue_bytes; /* bytes queued per member (frames); 0 = 1 MiB */
    int wait_ms;            /* SN_HUB_WAIT: longest wait of a publisher; 0 = 1000 */
    int close_code;         /* SN_HUB_DISCONNECT: 1008 or 1013; 0 = 1013 */
    bool local;             /* with an engine: this room stays on this server */
} sn_hub_room_config;

/* Called when a room is made, with the hub's room settings in *cfg, which
 * it may change. Under the hub's lock: it must not call the hub. */
typedef void (*sn_hub_room_fn)(const char *room, sn_hub_room_config *cfg, void *user);

typedef struct sn_hub_engine sn_hub_engine;

typedef struct sn_hub_config {
    sn_hub_engine *engine;   /* rooms across servers (see above); NULL = none. The
                                hub owns it from a successful sn_hub_new on */
    sn_hub_room_config room; /* every room's settings, unless room_fn changes them */
    sn_hub_room_fn room_fn;  /* NULL = none */
    void *user;              /* for room_fn */
    int writers;             /* threads that flush slow members; 0 = 1 */
    size_t max_message;      /* bytes of a published message; 0 = 1 MiB */
    int close_timeout_ms;    /* SN_HUB_DISCONNECT: how long a close frame may wait
                                for a full socket before the connection is cut;
                                ms; 0 = 2000 */
} sn_hub_config;

/* Makes a hub and starts its writer threads (and its engine's thread,
 * which connects in the background). cfg may be NULL. Returns 0,
 * SN_EINVAL (a negative or unknown value, close_code not 1008 or 1013),
 * SN_EBUSY (the engine belongs to another hub), SN_ENOMEM, or -errno
 * (epoll, threads). On failure the engine is still the caller's. */
SN_API int sn_hub_new(sn_hub **out, const sn_hub_config *cfg);

/* Stops the writers and frees the hub and its engine; NULL is fine. Every
 * session and subscription must have left already. */
SN_API void sn_hub_free(sn_hub *h);

/* Adds the session to the room (made if new; a name is 1 to
 * SN_HUB_NAME_MAX bytes). Returns 0, SN_EINVAL (bad name, a masking
 * session), SN_EEXIST (already a member), SN_EBUSY (the session is in
 * another hub), SN_ENOMEM. */
SN_API int sn_hub_join(sn_hub *h, const char *room, sn_ws *ws);

/* Removes the session from the room (what was queued for it is dropped).
 * Returns 0, or SN_ENOENT (not a member). */
SN_API int sn_hub_leave(sn_hub *h, const char *room, sn_ws *ws);

/* Removes the session from every room of the hub; sn_ws_free does it. */
SN_API void sn_hub_leave_all(sn_hub *h, sn_ws *ws);

/* Publishes a message of type SN_WS_TEXT or SN_WS_BINARY (text must be
 * UTF-8; it is not checked) to every member of the room except `exclude`
 * (a session, or NULL). dl bounds the wait of SN_HUB_WAIT only (with the
 * room's wait_ms). Returns the number of members it was given to (written
 * or queued), SN_EHUB_NOROOM (no such room), SN_ETIMEDOUT (SN_HUB_WAIT:
 * some members missed it), SN_EINVAL (type, or over max_message), or
 * SN_ENOMEM.
 * A room that spans servers (an engine, and not `local`): returns 0 once
 * Redis has numbered the message (members here and elsewhere get it as it
 * comes back), after a wait for Redis's answer bounded by dl and the
 * engine's publish_timeout_ms; SN_EHUB_DOWN at once when Redis cannot be
 * reached; SN_EHUB_DOWN or SN_ETIMEDOUT when the connection broke or the
 * answer did not come in time after the message was sent: then whether
 * Redis took it is unknown (if it did, it is delivered like any other).
 * A room with no member on this server is published to all the same
 * (SN_EHUB_NOROOM is for local rooms only). */
SN_API int sn_hub_publish(sn_hub *h, const char *room, int type, const void *data, size_t len,
                          const sn_ws *exclude, sn_deadline dl);

/* Publishes to every room of this server (one encoded message shared by
 * all; rooms that span servers go through the engine one by one). Returns
 * the number of members reached here directly (local rooms), or the first
 * error (the other rooms still get it). */
SN_API int sn_hub_publish_all(sn_hub *h, int type, const void *data, size_t len,
                              const sn_ws *exclude, sn_deadline dl);

/* ---- pull subscriptions ----------------------------------------------------- */

/* Subscribes to a room (made if new). The subscription is a member with a
 * queue under the room's policy. Returns 0, SN_EINVAL, SN_ENOMEM. */
SN_API int sn_hub_subscribe(sn_hub *h, const char *room, sn_hub_sub **out);

/* Leaves and frees; NULL is fine. Not while a thread waits on it. */
SN_API void sn_hub_unsubscribe(sn_hub_sub *s);

/* Takes the next message, waiting until dl. *seq (may be NULL) gets its
 * sequence number in the room (1, 2, ...; across servers, Redis's number in
 * the room's epoch, sn_hub_msg_epoch). Returns 0 (*out is the caller's
 * reference), SN_ETIMEDOUT, SN_EHUB_GAP (messages of a room that spans
 * servers were lost here, see above: once, in the place of the lost ones;
 * the next call goes on after them), or SN_EHUB_SLOW (disconnected by
 * SN_HUB_DISCONNECT; sticky). */
SN_API int sn_hub_sub_recv(sn_hub_sub *s, sn_hub_msg **out, uint64_t *seq, sn_deadline dl);

/* A message's type (SN_WS_TEXT / SN_WS_BINARY) and payload (valid while a
 * reference is held; aligned for any type; followed by a NUL byte not
 * counted in *len). */
SN_API int sn_hub_msg_type(const sn_hub_msg *m);
SN_API const void *sn_hub_msg_data(const sn_hub_msg *m, size_t *len);

/* The epoch of the room's numbers a message came with from an engine (a
 * number Redis keeps per room, new when the room's numbers began again);
 * 0 for a message of a local room. */
SN_API uint64_t sn_hub_msg_epoch(const sn_hub_msg *m);

/* Drops a reference; the last frees the message. NULL is fine. */
SN_API void sn_hub_msg_unref(sn_hub_msg *m);

/* ---- counters ---------------------------------------------------------------- */

typedef struct sn_hub_member_stats {
    uint64_t delivered;  /* messages handed to its socket (or taken by recv) */
    uint64_t dropped;    /* messages it missed (policy, leave with a queue) */
    size_t queued;       /* messages queued now */
    size_t queued_bytes; /* their bytes */
    bool disconnected;   /* closed by SN_HUB_DISCONNECT */
} sn_hub_member_stats;

typedef struct sn_hub_room_stats {
    size_t members;        /* now, sessions and subscriptions */
    uint64_t seq;          /* messages accepted (the last sequence number) */
    uint64_t delivered;    /* to members, in all */
    uint64_t direct;       /* of which written by the publisher's thread */
    uint64_t dropped;      /* for members, by the policy */
    uint64_t disconnected; /* members closed for slowness */
    size_t queued;         /* messages queued now, over all members */
    bool spans;            /* the room spans servers (an engine, not local) */
    bool synced;           /* spans: joined and in step with Redis */
    uint64_t epoch;        /* spans: the epoch of seq (0: none seen yet) */
    uint64_t gaps;         /* spans: gaps signalled in the room */
} sn_hub_room_stats;

typedef struct sn_hub_stats {
    size_t rooms;       /* now */
    size_t members;     /* now, over all rooms */
    size_t sessions;    /* WebSocket sessions in at least one room */
    long messages;      /* encoded messages alive (reference count > 0) */
    uint64_t published; /* messages accepted, over all rooms */
    uint64_t wakeups;   /* times a writer thread served a member's socket */
    uint64_t gaps;      /* gaps signalled, over all rooms (engine) */
} sn_hub_stats;

/* A room's counters. Returns 0 or SN_EHUB_NOROOM. */
SN_API int sn_hub_room_stats_get(sn_hub *h, const char *room, sn_hub_room_stats *out);

/* A session's counters in a room. Returns 0 or SN_ENOENT (not a member). */
SN_API int sn_hub_member_stats_get(sn_hub *h, const char *room, const sn_ws *ws,
                                   sn_hub_member_stats *out);

/* A subscription's counters. */
SN_API void sn_hub_sub_stats_get(sn_hub_sub *s, sn_hub_member_stats *out);

SN_API void sn_hub_stats_get(sn_hub *h, sn_hub_stats *out);

/* A room in the list: its name and member count. */
typedef struct sn_hub_room_info {
    char name[SN_HUB_NAME_MAX + 1];
    size_t members;
} sn_hub_room_info;

/* Fills out[0, cap) with rooms (in no order) and returns how many rooms
 * there are (which may be more than cap). out may be NULL when cap is 0. */
SN_API size_t sn_hub_rooms(sn_hub *h, sn_hub_room_info *out, size_t cap);

/* Names the members of a room: calls fn for each session (not for
 * subscriptions), under the room's lock (fn must not call the hub).
 * Returns the number of sessions, or SN_EHUB_NOROOM. */
SN_API int sn_hub_room_sessions(sn_hub *h, const char *room, void (*fn)(sn_ws *ws, void *user),
                                void *user);

/* ---- engines: rooms across servers -------------------------------------------- */

/* Where the Redis engine connects and how it behaves. Zero = default. */
typedef struct sn_hub_redis_config {
    const char *host;       /* name or address; NULL = "127.0.0.1" */
    uint16_t port;          /* 0 = 6379 */
    const char *password;   /* AUTH; NULL = none */
    const char *prefix;     /* of every key and channel; NULL = "sn:" (up to 64 bytes) */
    size_t history;         /* messages kept per room for refills (approximately,
                               XADD MAXLEN ~); 0 = 1000 */
    int connect_timeout_ms; /* one connect attempt; 0 = 2000 */
    int publish_timeout_ms; /* longest wait of a publish for Redis; 0 = 2000 */
    int probe_ms;           /* liveness probes of the subscriber connection; 0 = 1000 */
    int probe_timeout_ms;   /* unanswered this long: the connection is deaf; 0 = 3000 */
    int backoff_min_ms;     /* first wait before a reconnect; 0 = 100 */
    int backoff_max_ms;     /* the longest (doubling, with +-50 % jitter); 0 = 5000 */
} sn_hub_redis_config;

/* Makes a Redis engine for sn_hub_config.engine. It connects when its hub
 * starts. Returns 0, SN_EINVAL (a negative value, a prefix too long),
 * SN_ENOMEM, or SN_EHUB_NOREDIS (libsocknet was built without hiredis). */
SN_API int sn_hub_redis_new(sn_hub_engine **out, const sn_hub_redis_config *cfg);

/* Frees an engine that no hub took (sn_hub_new failed, or was never
 * called); NULL is fine. A hub frees its own. */
SN_API void sn_hub_engine_free(sn_hub_engine *e);

typedef struct sn_hub_engine_stats {
    bool up;             /* both connections to Redis are up */
    uint64_t connects;   /* connections made (both kinds) */
    uint64_t failures;   /* connect attempts that failed, and connections lost */
    int error;           /* why the last one failed (SN_E*; 0: none yet), e.g.
                            SN_ECONNREFUSED, SN_EOF (Redis closed it) */
    uint64_t deaf;       /* subscriber connections dropped for an unanswered probe */
    uint64_t restarts;   /* times Redis was seen to have restarted */
    uint64_t published;  /* messages Redis numbered for this server's publishers */
    uint64_t received;   /* messages from Redis delivered to rooms here */
    uint64_t refilled;   /* of which fetched from a room's history after a gap */
    uint64_t duplicates; /* messages seen twice and delivered once */
    uint64_t gaps;       /* gaps signalled, over all rooms */
    size_t rooms;        /* rooms subscribed now */
} sn_hub_engine_stats;

/* The counters of a hub's engine; all zero when it has none. */
SN_API void sn_hub_engine_stats_get(sn_hub *h, sn_hub_engine_stats *out);

#ifdef __cplusplus
}
#endif
#endif
