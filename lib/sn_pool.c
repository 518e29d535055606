/* SPDX-License-Identifier: MIT */
/*
 * sn_pool.c: the worker pool (the shape of libuv's threadpool).
 *
 * One mutex, p->mu, guards everything in struct sn_pool and every worker's
 * fields. Each worker waits on its own condition variable (w->cond, used
 * with p->mu), so a submit can hand a job to one chosen idle worker without
 * waking the others; the stopper waits on p->done. Every wait sits in a
 * while loop. Lock order: p->mu is the only lock this file takes, and it is
 * never held while a job, the drop callback or pthread_join runs, so jobs
 * may submit to their own pool.
 *
 * Where a job goes (sn_pool_submit, under p->mu):
 *   1. an idle worker: the most recently idled one (LIFO, so cold workers
 *      stay idle and get reaped) takes it in w->job and is signalled;
 *   2. else a new worker, while fewer than max_threads run, starts with it;
 *   3. else the ring buffer of queue_size slots (allocated once) holds it;
 *   4. else SN_EQUEUEFULL.
 * A worker goes idle only when the ring is empty, and a job is queued only
 * when no worker is idle, so no job waits while a worker sleeps. Each queued
 * job has the time it was queued: sn__pool_expire takes those that waited
 * too long off the head of the ring (every worker is busy then, so the
 * caller, the server's acceptor, does it).
 *
 * Thread lifetime: a worker leaving (idle reaping, or stop) puts its record
 * on p->dead and is joined by whoever next takes that list: a submit, the
 * next worker to leave, or the stopper. So no thread is ever detached and
 * at most a few finished threads wait to be joined.
 *
 * Engines: the pool in fiber mode is sn_pool_fiber.c's; sn_pool_* calls go
 * to either through p->engine's table, and this file's own functions are
 * the thread engine's (tpool_*).
 *
 * Memory after a spike: a reaped worker that leaves the pool at half the
 * threads it had at its peak (or back at min_threads, SN_POOL_TRIM_MIN
 * fewer) gives the allocator's free memory back (sn__heap_trim), after it
 * has joined the workers that left before it, so what they freed on their
 * way out (their TLS caches too) is free by then.
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "sn_fiber.h"
#include "sn_pool_int.h"
#include "sn_util.h"
#include "socknet.h"

#define SN_POOL_MAX_DEFAULT 256
#define SN_POOL_MAX_LIMIT 65536
#define SN_POOL_QUEUE_DEFAULT 64
#define SN_POOL_QUEUE_LIMIT (1 << 24)
#define SN_POOL_IDLE_DEFAULT 10000
#define SN_POOL_STACK_DEFAULT (256 * 1024)
#define SN_POOL_TRIM_MIN 16 /* threads the pool must shrink by to trim */

struct job {
    sn_job_fn fn; /* NULL: none */
    void *arg;
    int64_t at; /* queued jobs: when (sn_now_ms), for sn__pool_expire */
};

struct worker {
    sn_pool *pool;
    pthread_t tid;
    char *stack; /* its mapping (a guard page, then the stack), unmapped once joined */
    size_t stack_len;
    pthread_cond_t cond; /* with p->mu: a job was handed over, or stop */
    struct job job;      /* handed over by a submit, not yet started */
    bool idle;           /* on the idle list */
    struct worker *prev; /* idle list (doubly linked: reaping unlinks) */
    struct worker *next; /* idle list, or the dead list */
};

struct sn_pool {
    const sn__pool_engine *engine; /* the thread engine below, or the fibers' */
    void *state;                   /* the engine's: this pool, or an sn__fpool */
    pthread_mutex_t mu;
    pthread_cond_t done; /* threads reached 0, or the stop finished */

    /* configuration, fixed at creation */
    int min_threads, max_threads, queue_size, idle_ms;
    size_t stack_size;
    sn_job_fn drop;
    void (*on_thread_error)(int err, void *user);
    void *user;

    /* the queue: a ring of queue_size slots */
    struct job *ring;
    int qhead, qcount;

    struct worker *idle; /* idle workers, most recent first */
    struct worker *dead; /* workers that left and wait to be joined */
    int threads, busy;
    int threads_peak; /* most threads since the last trim */
    bool stopping;    /* no more submits; queued jobs are dropped or drained */
    bool stopped;     /* the stop finished: every worker joined */

    uint64_t started, completed, refused, threads_created, threads_reaped, thread_failures;
};

/* ---- the queue (under p->mu) --------------------------------------------- */

static void ring_push(sn_pool *p, sn_job_fn fn, void *arg)
{
    int i = (p->qhead + p->qcount) % p->queue_size;
    p->ring[i] = (struct job){fn, arg, sn_now_ms()};
    p->qcount++;
}

static struct job ring_pop(sn_pool *p)
{
    struct job j = p->ring[p->qhead];
    p->qhead = (p->qhead + 1) % p->queue_size;
    p->qcount--;
    return j;
}

/* ---- idle list (under p->mu) --------------------------------------------- */

static void idle_push(sn_pool *p, struct worker *w)
{
    w->prev = NULL;
    w->next = p->idle;
    if (p->idle != NULL)
        p->idle->prev = w;
    p->idle = w;
    w->idle = true;
}

static void idle_remove(sn_pool *p, struct worker *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        p->idle = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->idle = false;
}

/* ---- joining finished workers -------------------------------------------- */

/* Takes the dead list (under p->mu); join it with reap_dead after unlocking. */
static struct worker *take_dead(sn_pool *p)
{
    struct worker *d = p->dead;
    p->dead = NULL;
    return d;
}

/* Joins and frees workers that have left (without p->mu: a leaving worker
 * may still be joining others, which takes no lock). */
static void reap_dead(struct worker *d)
{
    while (d != NULL) {
        struct worker *next = d->next;
        pthread_join(d->tid, NULL);
        munmap(d->stack, d->stack_len);
        sn__cond_destroy(&d->cond);
        sn__free(d);
        d = next;
    }
}

/* ---- workers --------------------------------------------------------------- */

/* Whether the pool shrank enough since its peak to give memory back (under
 * p->mu); if so, the peak starts again from here. */
static bool shrank(sn_pool *p)
{
    int peak = p->threads_peak, n = p->threads;
    if (peak < 2 * n + SN_POOL_TRIM_MIN && (n > p->min_threads || peak < n + SN_POOL_TRIM_MIN))
        return false;
    p->threads_peak = n;
    return true;
}

/* Waits idle (under p->mu) until a job is handed over, the pool stops, or
 * idle_ms pass while more than min_threads run. Returns true when this
 * worker should leave because it was idle too long. */
static bool wait_idle(sn_pool *p, struct worker *w)
{
    bool reapable = p->threads > p->min_threads && p->idle_ms >= 0;
    int64_t dl = reapable ? sn_now_ms() + p->idle_ms : SN_DEADLINE_NEVER;
    int rc = 0;
    idle_push(p, w);
    while (w->job.fn == NULL && !p->stopping && rc == 0)
        rc = sn__cond_wait_until(&w->cond, &p->mu, dl);
    if (w->idle)
        idle_remove(p, w); /* stop or timeout; a submit unlinks it itself */
    return w->job.fn == NULL && !p->stopping && p->threads > p->min_threads && rc != 0;
}

/* The next job for worker w (under p->mu), or false when it should leave.
 * Once stopping with a drop callback, queued jobs are the stopper's. */
static bool next_job(sn_pool *p, struct worker *w, struct job *out, bool *reaped)
{
    for (;;) {
        if (w->job.fn != NULL) {
            *out = w->job;
            w->job.fn = NULL;
            return true;
        }
        if (p->qcount > 0 && !(p->stopping && p->drop != NULL)) {
            *out = ring_pop(p);
            return true;
        }
        if (p->stopping)
            return false;
        if (wait_idle(p, w)) {
            *reaped = true;
            return false;
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    sn_pool *p = w->pool;
    struct job job;
    bool reaped = false;

    sn__mutex_lock(&p->mu);
    while (next_job(p, w, &job, &reaped)) {
        p->busy++;
        p->started++;
        sn__mutex_unlock(&p->mu);
        job.fn(job.arg);
        sn__mutex_lock(&p->mu);
        p->busy--;
        p->completed++;
    }
    /* leave: hand this record to whoever joins next, join the earlier ones */
    struct worker *dead = take_dead(p);
    w->next = NULL;
    p->dead = w;
    p->threads--;
    if (reaped)
        p->threads_reaped++;
    bool trim = reaped && shrank(p);
    if (p->threads == 0)
        sn__cond_broadcast(&p->done);
    sn__mutex_unlock(&p->mu);
    reap_dead(dead);
    if (trim)
        sn__heap_trim(); /* the workers joined have freed what they held */
    return NULL;
}

/* Maps a worker's stack, a guard page below it. The pool maps its own
 * rather than let glibc: glibc keeps the stacks of exited threads in a
 * cache of its own (up to 40 MiB, with the pages they touched), so a pool
 * that shrank after a spike kept that much resident; this one is unmapped
 * once its thread is joined. */
static int stack_map(struct worker *w, size_t size)
{
    size += sn__thread_overhead(); /* glibc puts the thread's static TLS at its top */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size = (size + page - 1) / page * page;
    /* no MAP_NORESERVE: a stack the system could never give (a huge
     * stack_size) is refused here, as glibc would refuse the thread */
    char *p = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return SN_ENOMEM;
    if (mprotect(p, page, PROT_NONE) < 0) {
        munmap(p, size + page);
        return SN_ENOMEM;
    }
    w->stack = p;
    w->stack_len = size + page;
    return 0;
}

/* Starts a worker (under p->mu), optionally with its first job. Returns 0,
 * SN_ENOMEM or SN_EAGAIN; on failure nothing changed. */
static int spawn(sn_pool *p, sn_job_fn fn, void *arg)
{
    struct worker *w = sn__calloc(1, sizeof *w);
    if (w == NULL)
        return SN_ENOMEM;
    w->pool = p;
    w->job = (struct job){fn, arg, 0};
    if (stack_map(w, p->stack_size) < 0) {
        sn__free(w);
        return SN_ENOMEM;
    }
    sn__cond_init(&w->cond);

    pthread_attr_t attr;
    size_t guard = (size_t)sysconf(_SC_PAGESIZE);
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        rc = pthread_attr_setstack(&attr, w->stack + guard, w->stack_len - guard);
        if (rc == 0)
            rc = pthread_create(&w->tid, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        sn__cond_destroy(&w->cond);
        munmap(w->stack, w->stack_len);
        sn__free(w);
        return SN_EAGAIN;
    }
    p->threads++;
    p->threads_created++;
    if (p->threads > p->threads_peak)
        p->threads_peak = p->threads;
    return 0;
}

/* ---- the pool -------------------------------------------------------------- */

static int check_config(const sn_pool_config *c, sn_pool *p)
{
    p->max_threads = c->max_threads ? c->max_threads : SN_POOL_MAX_DEFAULT;
    p->min_threads = c->min_threads;
    if (c->queue_size == SN_OFF)
        p->queue_size = 0;
    else
        p->queue_size = c->queue_size ? c->queue_size : SN_POOL_QUEUE_DEFAULT;
    p->idle_ms = c->idle_ms ? c->idle_ms : SN_POOL_IDLE_DEFAULT;
    p->stack_size = c->stack_size ? c->stack_size : SN_POOL_STACK_DEFAULT;
    if (p->stack_size < (size_t)PTHREAD_STACK_MIN)
        p->stack_size = (size_t)PTHREAD_STACK_MIN;
    p->drop = c->drop;
    p->on_thread_error = c->on_thread_error;
    p->user = c->user;
    if (p->max_threads < 1 || p->max_threads > SN_POOL_MAX_LIMIT || p->min_threads < 0 ||
        p->min_threads > p->max_threads || p->queue_size < 0 ||
        p->queue_size > SN_POOL_QUEUE_LIMIT || p->idle_ms < SN_TIMEOUT_NEVER)
        return SN_EINVAL;
    return 0;
}

static const sn__pool_engine thread_engine;

int sn_pool_new(sn_pool **out, const sn_pool_config *cfg)
{
    static const sn_pool_config defaults;
    if (out == NULL)
        return SN_EINVAL;
    sn_pool *p = sn__calloc(1, sizeof *p);
    if (p == NULL)
        return SN_ENOMEM;
    if (cfg != NULL && cfg->fibers == SN_ON) {
        sn__fpool *fp;
        int rc = sn__fpool_new(&fp, cfg);
        if (rc < 0) {
            sn__free(p);
            return rc;
        }
        p->engine = &sn__fiber_engine;
        p->state = fp;
        *out = p;
        return 0;
    }
    p->engine = &thread_engine;
    p->state = p;
    int rc = check_config(cfg != NULL ? cfg : &defaults, p);
    if (rc < 0) {
        sn__free(p);
        return rc;
    }
    if (p->queue_size > 0 &&
        (p->ring = sn__calloc((size_t)p->queue_size, sizeof *p->ring)) == NULL) {
        sn__free(p);
        return SN_ENOMEM;
    }
    sn__mutex_init(&p->mu);
    sn__cond_init(&p->done);

    sn__mutex_lock(&p->mu);
    for (int i = 0; i < p->min_threads && rc == 0; i++)
        rc = spawn(p, NULL, NULL);
    sn__mutex_unlock(&p->mu);
    if (rc < 0) {
        sn_pool_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

sn__fpool *sn__pool_fibers(sn_pool *p)
{
    return p->engine == &sn__fiber_engine ? p->state : NULL;
}

int sn_pool_submit(sn_pool *p, sn_job_fn fn, void *arg)
{
    if (p == NULL || fn == NULL)
        return SN_EINVAL;
    return p->engine->submit(p->state, fn, arg);
}

int64_t sn__pool_expire(sn_pool *p, int64_t cutoff, sn_job_fn with)
{
    return p->engine->expire(p->state, cutoff, with);
}

void sn_pool_stats_get(sn_pool *p, sn_pool_stats *out)
{
    p->engine->stats(p->state, out);
}

int sn_pool_stop(sn_pool *p)
{
    return p != NULL ? p->engine->stop(p->state) : 0;
}

void sn_pool_free(sn_pool *p)
{
    if (p == NULL)
        return;
    bool fibers = p->state != p; /* the thread engine's free frees p itself */
    p->engine->free(p->state);
    if (fibers)
        sn__free(p);
}

/* ---- the thread engine ------------------------------------------------------------- */

static int tpool_submit(void *e, sn_job_fn fn, void *arg)
{
    sn_pool *p = e;
    int rc = 0, spawn_rc = 0;
    sn__mutex_lock(&p->mu);
    if (p->stopping) {
        rc = SN_ESTOPPED;
    } else if (p->idle != NULL) {
        struct worker *w = p->idle;
        idle_remove(p, w);
        w->job = (struct job){fn, arg, 0};
        sn__cond_signal(&w->cond);
    } else if (p->threads < p->max_threads && (spawn_rc = spawn(p, fn, arg)) == 0) {
        /* started with the job */
    } else if (p->qcount < p->queue_size) {
        ring_push(p, fn, arg); /* a refused thread also ends here */
    } else {
        p->refused++;
        rc = SN_EQUEUEFULL;
    }
    if (spawn_rc < 0)
        p->thread_failures++;
    struct worker *dead = take_dead(p);
    sn__mutex_unlock(&p->mu);
    reap_dead(dead);
    if (spawn_rc < 0 && p->on_thread_error != NULL)
        p->on_thread_error(spawn_rc, p->user);
    return rc;
}

static int64_t tpool_expire(void *e, int64_t cutoff, sn_job_fn with)
{
    sn_pool *p = e;
    sn__mutex_lock(&p->mu);
    /* the ring is in the order of queueing: the oldest job is at its head */
    while (p->qcount > 0 && p->ring[p->qhead].at <= cutoff) {
        struct job j = ring_pop(p);
        sn__mutex_unlock(&p->mu);
        with(j.arg);
        sn__mutex_lock(&p->mu);
    }
    int64_t oldest = p->qcount > 0 ? p->ring[p->qhead].at : SN_DEADLINE_NEVER;
    sn__mutex_unlock(&p->mu);
    return oldest;
}

static void tpool_stats(void *e, sn_pool_stats *out)
{
    sn_pool *p = e;
    sn__mutex_lock(&p->mu);
    *out = (sn_pool_stats){
        .threads = p->threads,
        .busy = p->busy,
        .queued = p->qcount,
        .started = p->started,
        .completed = p->completed,
        .refused = p->refused,
        .threads_created = p->threads_created,
        .threads_reaped = p->threads_reaped,
        .thread_failures = p->thread_failures,
    };
    sn__mutex_unlock(&p->mu);
}

/* Drops (with the drop callback) or runs every queued job, one at a time,
 * without p->mu while the callback runs. Called by the stopper only. */
static void drain_queue(sn_pool *p, sn_job_fn with)
{
    sn__mutex_lock(&p->mu);
    while (p->qcount > 0) {
        struct job j = ring_pop(p);
        sn__mutex_unlock(&p->mu);
        (with != NULL ? with : j.fn)(j.arg);
        sn__mutex_lock(&p->mu);
    }
    sn__mutex_unlock(&p->mu);
}

static int tpool_stop(void *e)
{
    sn_pool *p = e;
    sn__mutex_lock(&p->mu);
    if (p->stopping) {
        /* another stop runs, or ran: wait until it is over */
        while (!p->stopped)
            sn__cond_wait(&p->done, &p->mu);
        sn__mutex_unlock(&p->mu);
        return 0;
    }
    p->stopping = true;
    for (struct worker *w = p->idle; w != NULL; w = w->next)
        sn__cond_signal(&w->cond);
    sn__mutex_unlock(&p->mu);

    if (p->drop != NULL)
        drain_queue(p, p->drop);

    sn__mutex_lock(&p->mu);
    while (p->threads > 0)
        sn__cond_wait(&p->done, &p->mu);
    struct worker *dead = take_dead(p);
    sn__mutex_unlock(&p->mu);
    reap_dead(dead);

    /* without a drop callback the workers ran the queue; if no worker
     * could ever be started, the stopper runs what is left */
    drain_queue(p, NULL);

    sn__mutex_lock(&p->mu);
    p->stopped = true;
    sn__cond_broadcast(&p->done);
    sn__mutex_unlock(&p->mu);
    return 0;
}

static void tpool_free(void *e)
{
    sn_pool *p = e;
    tpool_stop(p);
    sn__cond_destroy(&p->done);
    sn__mutex_destroy(&p->mu);
    sn__free(p->ring);
    sn__free(p);
}

static const sn__pool_engine thread_engine = {
    .submit = tpool_submit,
    .expire = tpool_expire,
    .stats = tpool_stats,
    .stop = tpool_stop,
    .free = tpool_free,
};
