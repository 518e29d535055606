/* SPDX-License-Identifier: MIT */
/*
 * sn_pool_int.h: the pool's engines (internal; rank 4): threads
 * (sn_pool.c) and fibers (sn_pool_fiber.c). sn_pool calls its engine
 * through this table, as a connection calls its transport: the public
 * calls hold no test of the mode. The server runs its acceptors on a
 * pool's fibers and expires jobs that waited too long in its queue.
 */
#ifndef SN_POOL_INT_H
#define SN_POOL_INT_H

#include <stdint.h>
#include "socknet.h"

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
/* The same on one scheduler thread (0 to sn__fpool_threads - 1); also
 * SN_EINVAL for a thread out of range. */
int sn__fpool_spawn_on(sn__fpool *fp, int thread, sn_job_fn fn, sn_job_fn undo, void *arg);
int sn__fpool_threads(const sn__fpool *fp);
/* The fiber engine of a pool made with fibers on, else NULL. */
sn__fpool *sn__pool_fibers(sn_pool *p);
/* The queue's wait limit (both engines): takes every job queued at or
 * before cutoff (an sn_now_ms time) off the queue and calls with(arg) for
 * each instead of running it, outside the pool's lock, on the calling
 * thread. Returns when the oldest job still queued was queued, or
 * SN_DEADLINE_NEVER when none is. */
int64_t sn__pool_expire(sn_pool *p, int64_t cutoff, sn_job_fn with);

#endif
