/* SPDX-License-Identifier: MIT */
/*
 * sn_hub_engine.h: the seam between the hub (sn_hub.c) and an engine that
 * makes its rooms span servers (sn_hub_redis.c). The hub calls an engine
 * only through its table; an engine calls the hub through the sn__hub_*
 * functions below, from its own thread, holding none of its own locks.
 *
 * Locks: the hub calls room_open and room_close under hub->mu, and publish
 * with no lock of its own: an engine's locks come after the hub's, and an
 * engine never calls the hub while it holds one of them.
 */
#ifndef SN_HUB_ENGINE_H
#define SN_HUB_ENGINE_H

#include <stdint.h>
#include "socknet/hub.h"

typedef struct sn_hub_engine_ops {
    /* Starts the engine for hub h (its thread; connecting is its job):
     * sets e->hub first, before its thread can read it; leaves it NULL on
     * failure. */
    int (*start)(sn_hub_engine *e, sn_hub *h);
    /* Stops its thread: no call into the hub after it returns. */
    void (*stop)(sn_hub_engine *e);
    void (*free)(sn_hub_engine *e);
    /* The room (a spanning one) got its first member here / lost its last.
     * Under hub->mu: records what is wanted and returns. */
    void (*room_open)(sn_hub_engine *e, const char *room);
    void (*room_close)(sn_hub_engine *e, const char *room);
    /* Publishes to a spanning room; exclude names a session of this hub
     * not to deliver to (its link's key + 1; 0: none). Waits for the engine's
     * answer until dl. Returns 0 or an error (hub.h, sn_hub_publish). */
    int (*publish)(sn_hub_engine *e, const char *room, int type, const void *data, size_t len,
                   uint64_t exclude, sn_deadline dl);
    void (*stats)(sn_hub_engine *e, sn_hub_engine_stats *out);
} sn_hub_engine_ops;

/* Every engine starts with this. */
struct sn_hub_engine {
    const sn_hub_engine_ops *ops;
    sn_hub *hub; /* the hub that took it, or NULL */
};

/* A message of a spanning room, in the room's order (the engine has put
 * it there: no number twice, none missing without sn__hub_gap first), to
 * the room's members here; exclude as in publish, 0 unless the message
 * was published by this hub. Never waits (SN_HUB_WAIT does not apply). */
void sn__hub_deliver(sn_hub *h, const char *room, int type, const void *data, size_t len,
                     uint64_t epoch, uint64_t seq, uint64_t exclude);

/* Messages of the room were lost here: its sessions are closed with
 * close_code (1012 or 1013), its subscriptions get SN_EHUB_GAP in their
 * queue. */
void sn__hub_gap(sn_hub *h, const char *room, int close_code);

/* The hub's engine, or NULL (for the tests). */
sn_hub_engine *sn__hub_engine(sn_hub *h);

/* The room's join is done (or undone: a lost connection), for its stats. */
void sn__hub_synced(sn_hub *h, const char *room, bool synced, uint64_t epoch);

#endif
