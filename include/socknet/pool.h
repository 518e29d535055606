/* SPDX-License-Identifier: MIT */
/*
 * socknet/pool.h: the worker pool.
 *
 * A pool runs jobs on worker threads: between min_threads and max_threads,
 * started on demand when a job finds no idle worker and reaped after
 * idle_ms without work. A job is a function and an argument ("serve this
 * connection from here"): the server submits new connections, and other
 * parts of the library may hand a parked connection back the same way.
 * When every worker is busy and max_threads run, jobs wait in a bounded
 * queue; when that is full too, sn_pool_submit refuses at once with
 * SN_EQUEUEFULL instead of blocking, so the caller can answer overload.
 *
 * Thread safety: every function may be called from any thread, except
 * sn_pool_free, which must be the last call.
 * Ownership: the pool owns its threads; a job's argument stays the
 * submitter's concern (the job, or the drop callback on stop, frees it).
 */
#ifndef SOCKNET_POOL_H
#define SOCKNET_POOL_H

#include "socknet/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_pool sn_pool;

typedef void (*sn_job_fn)(void *arg);

typedef struct sn_pool_config {
    int min_threads;   /* threads kept even when idle; 0 = 0 */
    int max_threads;   /* 0 = 256; at most 65536 */
    int queue_size;    /* jobs waiting for a worker; 0 = 64; SN_OFF = none
                          (submit succeeds only when a worker can take it) */
    int idle_ms;       /* ms an idle worker above min_threads lives; 0 = 10000;
                          SN_TIMEOUT_NEVER = idle workers are never reaped */
    size_t stack_size; /* bytes per worker thread; 0 = 256 KiB (only the
                          pages a thread touches cost memory); raised to
                          PTHREAD_STACK_MIN if smaller. The pool maps
                          this plus what glibc takes from a stack for the
                          thread's static TLS (the program's and its
                          libraries', such as wolfSSL's ECC caches), so
                          that much stays for the jobs */
    /* Called on stop for each job still queued, instead of running it, so
     * its argument can be released. NULL = queued jobs are run before the
     * workers exit. */
    sn_job_fn drop;
    /* Called when the system refuses a new worker thread (err is SN_EAGAIN
     * or SN_ENOMEM), on the submitting thread, after the job was queued or
     * refused as if max_threads ran. NULL = only counted. */
    void (*on_thread_error)(int err, void *user);
    void *user; /* for on_thread_error */
    /* SN_ON: fiber mode. Jobs run as fibers (each with a stack of its own,
     * stack_size bytes) on fiber_threads threads (0 = one per
     * CPU). A socknet call that would wait parks the job's fiber and its
     * thread runs other jobs meanwhile, so max_threads (the most jobs
     * running at once) can be in the tens of thousands. Jobs must not block
     * the thread outside socknet calls (sleep, a lock held long, a slow
     * file): that stalls every job of its thread (sn_sleep_ms and sn_yield
     * wait on the fiber only). A lock held across a socknet call that waits
     * must be an sn_mutex (common.h): a pthread mutex there can stop the
     * thread for good. A job submitted from outside goes to the
     * least busy thread; one submitted from a job starts on the job's own
     * thread unless that has more jobs than the least busy one by 2 plus
     * an eighth of that one's. A fiber thread that runs fibers yields its
     * CPU (sched_yield) every 0.5 ms to whatever else waits for it,
     * so that another process, or a client on the same machine, does not
     * wait for the kernel's tick (4 ms at HZ=250); with nothing waiting it
     * goes on at once. min_threads, idle_ms and on_thread_error do not
     * apply.
     * Default SN_OFF: a thread per job. */
    int fibers;
    int fiber_threads;
} sn_pool_config;

/* Creates a pool and starts min_threads workers. cfg may be NULL.
 * Returns 0, SN_EINVAL (min > max, sizes out of range), SN_ENOMEM, or
 * SN_EAGAIN (the system refused a thread). */
SN_API int sn_pool_new(sn_pool **out, const sn_pool_config *cfg);

/* Runs fn(arg) on a worker: an idle one, or a new one while fewer than
 * max_threads run, or later from the queue (also when the system refuses a
 * new thread: the job then waits for a running worker). Never blocks on a
 * full pool. Jobs run in no particular order. A job may submit jobs.
 * Returns 0, SN_EQUEUEFULL (every worker busy and the queue full: the job
 * was not taken), SN_ESTOPPED (the pool is stopping), SN_EINVAL. */
SN_API int sn_pool_submit(sn_pool *p, sn_job_fn fn, void *arg);

typedef struct sn_pool_stats {
    int threads;        /* worker threads alive */
    int busy;           /* workers running a job */
    int queued;         /* jobs waiting */
    uint64_t started;   /* jobs started */
    uint64_t completed; /* jobs finished */
    uint64_t refused;   /* submits refused with SN_EQUEUEFULL */
    uint64_t threads_created;
    uint64_t threads_reaped;
    uint64_t thread_failures; /* new threads the system refused */
} sn_pool_stats;

SN_API void sn_pool_stats_get(sn_pool *p, sn_pool_stats *out);

/* Stops taking jobs, lets running jobs finish, drops (or runs, see
 * sn_pool_config.drop) queued ones and joins every worker. The drop
 * callback runs on the calling thread. Waits as long as the running jobs
 * take: the caller makes them return (the server wakes its handlers first).
 * Idempotent; a concurrent call waits until the first one has finished.
 * Returns 0. Must not be called from a job. */
SN_API int sn_pool_stop(sn_pool *p);

/* Stops (if needed) and releases the pool. NULL is a no-op. */
SN_API void sn_pool_free(sn_pool *p);

#ifdef __cplusplus
}
#endif
#endif
