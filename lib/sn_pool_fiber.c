/* SPDX-License-Identifier: MIT */
/*
 * sn_pool_fiber.c: the worker pool in fiber mode (sn_pool_config.fibers).
 *
 * A fixed set of scheduler threads (fiber_threads; 0 = one per CPU) runs the
 * jobs as fibers (sn_fiber.c): each job gets a stack of its own and runs
 * blocking-style code, and a socknet call that would wait parks the fiber,
 * not the thread. max_threads bounds the jobs running at once (fibers), the
 * queue holds the jobs beyond that, as in the thread pool.
 *
 * A submit from outside picks the least loaded scheduler thread, puts the
 * job in that thread's inbox and writes its eventfd; the thread spawns a
 * fiber for each job it finds there. A submit from one of the pool's own
 * threads (the server's acceptor fibers) spawns the fiber right there, with
 * no inbox and no wake-up, unless that thread is busier than the least
 * loaded one by more than the slack: two jobs, plus an eighth of the least
 * loaded thread's. So a burst of a few connections is spread over the
 * threads (all 16 of a burst on one thread left the other CPUs idle while
 * that one was saturated), and thousands are handed over only when a thread
 * is an eighth ahead. A finished job's fiber takes the next queued job and
 * starts it on its own thread.
 *
 * Service fibers (sn__fpool_spawn_each on every thread, sn__fpool_spawn_on
 * on one) run outside the count of jobs; the thread lives on until they
 * return.
 *
 * One mutex, fp->mu, guards the pool and every inbox; it is never held
 * while a job or the drop callback runs. Each scheduler thread runs with a
 * hold on its scheduler until the pool stops and it has no job left.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "sn_fiber.h"
#include "sn_pool_int.h"
#include "sn_util.h"
#include "socknet.h"

#define SN_FPOOL_THREADS_MAX 1024
#define SN_FPOOL_SLACK_SHIFT 3 /* the slack: 2 + the least load >> this */

struct fjob {
    sn_job_fn fn;
    void *arg;
    struct fthread *t;
    struct fjob *next;
    sn_job_fn undo; /* service fibers only: called when it cannot start */
    int64_t at;     /* queued jobs: when (sn_now_ms), for fpool_expire */
};

struct fthread {
    struct sn__fpool *fp;
    pthread_t tid;
    int efd;            /* eventfd: jobs in the inbox, or stop */
    sn_sched *sched;    /* set by the thread itself */
    struct fjob *inbox; /* under fp->mu */
    int load;           /* jobs given to this thread, not finished (fp->mu) */
    int start_rc;       /* 0 while starting, 1 running, or its error */
};

struct sn__fpool {
    pthread_mutex_t mu;
    int nthreads, max_active, queue_size;
    size_t stack_size;
    sn_job_fn drop;
    struct fthread *threads;
    struct fjob *qhead, *qtail; /* jobs waiting for a slot */
    int qcount, active;
    bool stopping, stopped;
    pthread_cond_t done;
    uint64_t started, completed, refused;
};

static void run_job(void *arg);

/* The pool thread the caller runs on, if any. */
static _Thread_local struct fthread *tl_fthread;

/* ---- under fp->mu ------------------------------------------------------------ */

static struct fthread *least_loaded(sn__fpool *fp)
{
    struct fthread *best = &fp->threads[0];
    for (int i = 1; i < fp->nthreads; i++)
        if (fp->threads[i].load < best->load)
            best = &fp->threads[i];
    return best;
}

static struct fjob *queue_pop(sn__fpool *fp)
{
    struct fjob *j = fp->qhead;
    fp->qhead = j->next;
    if (fp->qhead == NULL)
        fp->qtail = NULL;
    fp->qcount--;
    return j;
}

/* The thread may leave once stopping with no job of its own. */
static bool may_leave(const sn__fpool *fp, const struct fthread *t)
{
    return fp->stopping && t->load == 0 && t->inbox == NULL;
}

/* ---- the scheduler threads --------------------------------------------------------- */

/* A job could not get a fiber (no memory for a stack): it is dropped when
 * the pool has a drop callback (the server's closes the connection), else
 * run here on the scheduler itself, which then waits with it. */
static void spawn_or_drop(struct fthread *t, struct fjob *j)
{
    if (sn__fiber_spawn(t->sched, run_job, j, t->fp->stack_size) == 0)
        return;
    (t->fp->drop != NULL ? t->fp->drop : j->fn)(j->arg);
    sn__fpool *fp = t->fp;
    sn__mutex_lock(&fp->mu);
    fp->active--;
    t->load--;
    fp->completed++;
    if (may_leave(fp, t))
        sn__sched_hold(t->sched, false);
    sn__mutex_unlock(&fp->mu);
    sn__free(j);
}

static void run_service(void *arg)
{
    struct fjob *j = arg;
    sn_job_fn fn = j->fn;
    void *fn_arg = j->arg;
    sn__free(j);
    fn(fn_arg);
}

static void spawn_service(struct fthread *t, struct fjob *j)
{
    if (sn__fiber_spawn(t->sched, run_service, j, t->fp->stack_size) == 0)
        return;
    j->undo(j->arg);
    sn__free(j);
}

/* The eventfd is readable: spawn a fiber for every job in the inbox. */
static void on_inbox(void *arg)
{
    struct fthread *t = arg;
    sn__fpool *fp = t->fp;
    uint64_t n;
    (void)!read(t->efd, &n, sizeof n);
    sn__mutex_lock(&fp->mu);
    struct fjob *list = t->inbox;
    t->inbox = NULL;
    if (may_leave(fp, t))
        sn__sched_hold(t->sched, false);
    sn__mutex_unlock(&fp->mu);
    while (list != NULL) {
        struct fjob *j = list;
        list = j->next;
        if (j->undo != NULL)
            spawn_service(t, j);
        else
            spawn_or_drop(t, j);
    }
}

/* A job's fiber: the job, then the next queued one on this thread. */
static void run_job(void *arg)
{
    struct fjob *j = arg;
    struct fthread *t = j->t;
    sn__fpool *fp = t->fp;
    j->fn(j->arg);
    sn__free(j);
    sn__mutex_lock(&fp->mu);
    fp->completed++;
    struct fjob *next = NULL;
    if (fp->qcount > 0 && !(fp->stopping && fp->drop != NULL)) {
        next = queue_pop(fp);
        next->t = t; /* takes over this job's slot */
        fp->started++;
    } else {
        fp->active--;
        t->load--;
    }
    if (may_leave(fp, t))
        sn__sched_hold(t->sched, false);
    sn__mutex_unlock(&fp->mu);
    if (next != NULL)
        spawn_or_drop(t, next);
}

static void *thread_main(void *arg)
{
    struct fthread *t = arg;
    sn__fpool *fp = t->fp;
    sn_sched *sched = NULL;
    int rc = sn__sched_new(&sched);
    tl_fthread = t;
    if (rc == 0)
        rc = sn__sched_set_inbox(sched, t->efd, on_inbox, t);
    sn__mutex_lock(&fp->mu);
    t->sched = sched;
    t->start_rc = rc < 0 ? rc : 1;
    if (rc == 0)
        sn__sched_hold(sched, !may_leave(fp, t));
    sn__cond_broadcast(&fp->done);
    sn__mutex_unlock(&fp->mu);
    if (rc == 0)
        sn__sched_run(sched);
    sn__sched_free(sched);
    tl_fthread = NULL;
    return NULL;
}

/* ---- the pool ---------------------------------------------------------------------- */

/* Starts the scheduler threads and waits until each has its scheduler.
 * On failure fp->nthreads is the number started (to stop and join). */
static int start_threads(sn__fpool *fp)
{
    int rc = 0, started = 0;
    while (started < fp->nthreads) {
        struct fthread *t = &fp->threads[started];
        t->fp = fp;
        if ((t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
            rc = -errno;
            break;
        }
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        /* the scheduler's own stack; glibc takes its TLS from it first */
        pthread_attr_setstacksize(&attr, 256 * 1024 + sn__thread_overhead());
        int err = pthread_create(&t->tid, &attr, thread_main, t);
        pthread_attr_destroy(&attr);
        if (err != 0) {
            rc = SN_EAGAIN;
            close(t->efd);
            break;
        }
        started++;
    }
    sn__mutex_lock(&fp->mu);
    for (int k = 0; k < started; k++) {
        while (fp->threads[k].start_rc == 0)
            sn__cond_wait(&fp->done, &fp->mu);
        if (fp->threads[k].start_rc < 0 && rc == 0)
            rc = fp->threads[k].start_rc;
    }
    fp->nthreads = started; /* the ones to join */
    sn__mutex_unlock(&fp->mu);
    return rc;
}

static void fpool_free(void *e);

int sn__fpool_new(sn__fpool **out, const sn_pool_config *c)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = c->fiber_threads ? c->fiber_threads : (int)(cpus > 0 ? cpus : 1);
    int max = c->max_threads ? c->max_threads : 256;
    int queue = c->queue_size == SN_OFF ? 0 : c->queue_size ? c->queue_size : 64;
    if (n < 1 || n > SN_FPOOL_THREADS_MAX || max < 1 || max > (1 << 24) || queue < 0 ||
        queue > (1 << 24))
        return SN_EINVAL;
    sn__fpool *fp = sn__calloc(1, sizeof *fp);
    if (fp == NULL)
        return SN_ENOMEM;
    if ((fp->threads = sn__calloc((size_t)n, sizeof *fp->threads)) == NULL) {
        sn__free(fp);
        return SN_ENOMEM;
    }
    fp->nthreads = n;
    fp->max_active = max;
    fp->queue_size = queue;
    fp->stack_size = c->stack_size;
    fp->drop = c->drop;
    sn__mutex_init(&fp->mu);
    sn__cond_init(&fp->done);
    int rc = start_threads(fp);
    if (rc < 0) {
        fpool_free(fp);
        return rc;
    }
    *out = fp;
    return 0;
}

/* The thread a new job goes to (under fp->mu): the caller's own when it is
 * one of the pool's and not much busier than the least loaded. */
static struct fthread *pick_thread(sn__fpool *fp)
{
    struct fthread *least = least_loaded(fp);
    struct fthread *own = tl_fthread;
    int slack = 2 + (least->load >> SN_FPOOL_SLACK_SHIFT);
    if (own != NULL && own->fp == fp && own->load <= least->load + slack)
        return own;
    return least;
}

static int fpool_submit(void *e, sn_job_fn fn, void *arg)
{
    sn__fpool *fp = e;
    struct fjob *j = sn__malloc(sizeof *j);
    if (j == NULL)
        return SN_ENOMEM;
    *j = (struct fjob){.fn = fn, .arg = arg};
    struct fthread *t = NULL;
    int rc = 0;
    sn__mutex_lock(&fp->mu);
    if (fp->stopping) {
        rc = SN_ESTOPPED;
    } else if (fp->active < fp->max_active) {
        t = pick_thread(fp);
        j->t = t;
        t->load++;
        fp->active++;
        fp->started++;
        if (t != tl_fthread) {
            j->next = t->inbox;
            t->inbox = j;
        }
    } else if (fp->qcount < fp->queue_size) {
        j->at = sn_now_ms();
        if (fp->qtail != NULL)
            fp->qtail->next = j;
        else
            fp->qhead = j;
        fp->qtail = j;
        fp->qcount++;
    } else {
        fp->refused++;
        rc = SN_EQUEUEFULL;
    }
    sn__mutex_unlock(&fp->mu);
    if (rc < 0) {
        sn__free(j);
    } else if (t == tl_fthread && t != NULL) {
        spawn_or_drop(t, j); /* on this thread: no inbox, no wake-up */
    } else if (t != NULL) {
        uint64_t one = 1;
        (void)!write(t->efd, &one, sizeof one);
    }
    return rc;
}

/* A service fiber on each of the threads from `first`, `n` of them: all
 * are on their way, or none is. */
static int spawn_service_on(sn__fpool *fp, int first, int n, sn_job_fn fn, sn_job_fn undo,
                            void *arg)
{
    struct fjob **js = sn__calloc((size_t)n, sizeof *js);
    if (js == NULL)
        return SN_ENOMEM;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if ((js[i] = sn__malloc(sizeof *js[i])) == NULL)
            rc = SN_ENOMEM;
        else
            *js[i] =
                (struct fjob){.fn = fn, .arg = arg, .t = &fp->threads[first + i], .undo = undo};
    }
    sn__mutex_lock(&fp->mu);
    if (rc == 0 && fp->stopping)
        rc = SN_ESTOPPED;
    for (int i = 0; i < n && rc == 0; i++) {
        js[i]->next = js[i]->t->inbox;
        js[i]->t->inbox = js[i];
    }
    sn__mutex_unlock(&fp->mu);
    for (int i = 0; i < n; i++) {
        uint64_t one = 1;
        if (rc == 0)
            (void)!write(js[i]->t->efd, &one, sizeof one);
        else
            sn__free(js[i]);
    }
    sn__free(js);
    return rc;
}

int sn__fpool_spawn_each(sn__fpool *fp, sn_job_fn fn, sn_job_fn undo, void *arg)
{
    return spawn_service_on(fp, 0, fp->nthreads, fn, undo, arg);
}

int sn__fpool_spawn_on(sn__fpool *fp, int thread, sn_job_fn fn, sn_job_fn undo, void *arg)
{
    if (thread < 0 || thread >= fp->nthreads)
        return SN_EINVAL;
    return spawn_service_on(fp, thread, 1, fn, undo, arg);
}

int sn__fpool_threads(const sn__fpool *fp)
{
    return fp->nthreads;
}

static void fpool_stats(void *e, sn_pool_stats *out)
{
    sn__fpool *fp = e;
    sn__mutex_lock(&fp->mu);
    *out = (sn_pool_stats){
        .threads = fp->stopped ? 0 : fp->nthreads,
        .busy = fp->active,
        .queued = fp->qcount,
        .started = fp->started,
        .completed = fp->completed,
        .refused = fp->refused,
        .threads_created = (uint64_t)fp->nthreads,
    };
    sn__mutex_unlock(&fp->mu);
}

static int64_t fpool_expire(void *e, int64_t cutoff, sn_job_fn with)
{
    sn__fpool *fp = e;
    sn__mutex_lock(&fp->mu);
    while (fp->qcount > 0 && fp->qhead->at <= cutoff) { /* oldest first */
        struct fjob *j = queue_pop(fp);
        sn__mutex_unlock(&fp->mu);
        with(j->arg);
        sn__free(j);
        sn__mutex_lock(&fp->mu);
    }
    int64_t oldest = fp->qcount > 0 ? fp->qhead->at : SN_DEADLINE_NEVER;
    sn__mutex_unlock(&fp->mu);
    return oldest;
}

static int fpool_stop(void *e)
{
    sn__fpool *fp = e;
    sn__mutex_lock(&fp->mu);
    if (fp->stopping) {
        while (!fp->stopped)
            sn__cond_wait(&fp->done, &fp->mu);
        sn__mutex_unlock(&fp->mu);
        return 0;
    }
    fp->stopping = true;
    struct fjob *dropped = NULL;
    if (fp->drop != NULL) {
        dropped = fp->qhead;
        fp->qhead = fp->qtail = NULL;
        fp->qcount = 0;
    }
    sn__mutex_unlock(&fp->mu);
    while (dropped != NULL) {
        struct fjob *j = dropped;
        dropped = j->next;
        fp->drop(j->arg);
        sn__free(j);
    }
    uint64_t one = 1;
    for (int i = 0; i < fp->nthreads; i++)
        (void)!write(fp->threads[i].efd, &one, sizeof one); /* look at stopping */
    for (int i = 0; i < fp->nthreads; i++)
        pthread_join(fp->threads[i].tid, NULL);
    sn__mutex_lock(&fp->mu);
    fp->stopped = true;
    sn__cond_broadcast(&fp->done);
    sn__mutex_unlock(&fp->mu);
    return 0;
}

static void fpool_free(void *e)
{
    sn__fpool *fp = e;
    if (fp == NULL)
        return;
    fpool_stop(fp);
    for (int i = 0; i < fp->nthreads; i++)
        close(fp->threads[i].efd);
    sn__free(fp->threads);
    sn__cond_destroy(&fp->done);
    sn__mutex_destroy(&fp->mu);
    sn__free(fp);
}

const sn__pool_engine sn__fiber_engine = {
    .submit = fpool_submit,
    .expire = fpool_expire,
    .stats = fpool_stats,
    .stop = fpool_stop,
    .free = fpool_free,
};
