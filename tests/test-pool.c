/* SPDX-License-Identifier: MIT */
/* test-pool.c: the worker pool: admission, limits, reaping, stop, stats. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "sn_test.h"
#include "sn_pool_int.h"

/* ---- helpers ---------------------------------------------------------------- */

/* A gate jobs block on until the test opens it. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open = 1;

static void gate_close(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = 0;
    pthread_mutex_unlock(&gate_mu);
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static atomic_int ran, running, max_running, dropped;

static void reset_counters(void)
{
    atomic_store(&ran, 0);
    atomic_store(&running, 0);
    atomic_store(&max_running, 0);
    atomic_store(&dropped, 0);
}

/* Counts itself, tracks concurrency, waits at the gate. */
static void gated_job(void *arg)
{
    (void)arg;
    int now = atomic_fetch_add(&running, 1) + 1;
    int m = atomic_load(&max_running);
    while (now > m && !atomic_compare_exchange_weak(&max_running, &m, now))
        ;
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    atomic_fetch_sub(&running, 1);
    atomic_fetch_add(&ran, 1);
}

static void count_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
}

static void drop_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&dropped, 1);
}

/* Waits up to ms for *v to reach want. */
static int wait_for(atomic_int *v, int want, int ms)
{
    int64_t dl = sn_now_ms() + ms;
    while (atomic_load(v) != want && sn_now_ms() < dl)
        sn_test_sleep_ms(1);
    return atomic_load(v);
}

static sn_pool_stats stats(sn_pool *p)
{
    sn_pool_stats st;
    sn_pool_stats_get(p, &st);
    return st;
}

/* Waits up to ms for the pool to report `threads` workers. */
static int wait_threads(sn_pool *p, int threads, int ms)
{
    int64_t dl = sn_now_ms() + ms;
    while (stats(p).threads != threads && sn_now_ms() < dl)
        sn_test_sleep_ms(5);
    return stats(p).threads;
}

/* Before each test (the runner's hook): counters at zero, the gate open. */
static void reset(void)
{
    reset_counters();
    gate_release();
}

/* ---- tests ------------------------------------------------------------------ */

static void test_jobs_run(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, NULL), 0);
    for (int i = 0; i < 100; i++)
        SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&ran, 100, 10000), 100);
    SN_ASSERT_RC(sn_pool_stop(p), 0);
    sn_pool_stats st = stats(p);
    CU_ASSERT_EQUAL(st.started, 100);
    CU_ASSERT_EQUAL(st.completed, 100);
    CU_ASSERT_EQUAL(st.refused, 0);
    CU_ASSERT_EQUAL(st.threads, 0);
    CU_ASSERT(st.threads_created >= 1 && st.threads_created <= 100);
    sn_pool_free(p);
}

static void test_invalid_arguments(void)
{
    sn_pool *p = NULL;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.min_threads = 5, .max_threads = 4}), SN_EINVAL);
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.max_threads = 65537}), SN_EINVAL);
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.max_threads = -3}), SN_EINVAL);
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.min_threads = -1}), SN_EINVAL);
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.queue_size = -5}), SN_EINVAL);
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.idle_ms = -7}), SN_EINVAL);
    SN_ASSERT_RC(sn_pool_new(NULL, NULL), SN_EINVAL);
    CU_ASSERT_PTR_NULL(p);
    SN_ASSERT_RC(sn_pool_new(&p, NULL), 0);
    SN_ASSERT_RC(sn_pool_submit(p, NULL, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_pool_submit(NULL, count_job, NULL), SN_EINVAL);
    sn_pool_free(p);
    sn_pool_free(NULL);
}

static void test_max_threads_respected(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.max_threads = 4, .queue_size = 100}), 0);
    gate_close();
    for (int i = 0; i < 50; i++)
        SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&running, 4, 5000), 4);
    sn_test_sleep_ms(20); /* give a fifth one the chance to start (it must not) */
    sn_pool_stats st = stats(p);
    CU_ASSERT_EQUAL(st.threads, 4);
    CU_ASSERT_EQUAL(st.busy, 4);
    CU_ASSERT_EQUAL(st.queued, 46);
    gate_release();
    CU_ASSERT_EQUAL(wait_for(&ran, 50, 10000), 50);
    CU_ASSERT_EQUAL(atomic_load(&max_running), 4);
    st = stats(p);
    CU_ASSERT_EQUAL(st.threads_created, 4);
    sn_pool_free(p);
}

static void test_queue_full(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.max_threads = 2, .queue_size = 3}), 0);
    gate_close();
    for (int i = 0; i < 5; i++)
        SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0);
    SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), SN_EQUEUEFULL);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), SN_EQUEUEFULL);
    sn_pool_stats st = stats(p);
    CU_ASSERT_EQUAL(st.queued, 3);
    CU_ASSERT_EQUAL(st.refused, 2);
    CU_ASSERT_EQUAL(st.threads, 2);
    gate_release();
    CU_ASSERT_EQUAL(wait_for(&ran, 5, 10000), 5);
    /* room again */
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&ran, 6, 10000), 6);
    sn_pool_free(p);
}

static void test_queue_off(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.max_threads = 2, .queue_size = SN_OFF}), 0);
    gate_close();
    SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0);
    SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0);
    SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), SN_EQUEUEFULL);
    CU_ASSERT_EQUAL(stats(p).queued, 0);
    gate_release();
    CU_ASSERT_EQUAL(wait_for(&ran, 2, 10000), 2);
    /* both workers idle now: a submit is handed to one of them */
    int64_t dl = sn_now_ms() + 5000;
    while (stats(p).busy != 0 && sn_now_ms() < dl)
        sn_test_sleep_ms(1);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&ran, 3, 10000), 3);
    CU_ASSERT_EQUAL(stats(p).threads_created, 2);
    sn_pool_free(p);
}

/* The queue's wait limit (sn__pool_expire, internal: the server's acceptors
 * call it): jobs queued at or before the cutoff leave the queue, oldest
 * first, through the callback and not run; the others stay. */
static void check_expire(const sn_pool_config *cfg)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, cfg), 0);
    gate_close();
    SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0); /* the one worker */
    CU_ASSERT_EQUAL(wait_for(&running, 1, 5000), 1);
    int64_t before = sn_now_ms();
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    int64_t first = sn_now_ms();
    while (sn_now_ms() == first)
        sn_test_sleep_ms(1);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    CU_ASSERT_EQUAL(stats(p).queued, 3);

    /* none queued that early: the oldest's time comes back */
    int64_t oldest = sn__pool_expire(p, before - 1, drop_job);
    CU_ASSERT(oldest >= before && oldest <= first);
    CU_ASSERT_EQUAL(atomic_load(&dropped), 0);
    /* the first only */
    oldest = sn__pool_expire(p, first, drop_job);
    CU_ASSERT(oldest > first && oldest != SN_DEADLINE_NEVER);
    CU_ASSERT_EQUAL(atomic_load(&dropped), 1);
    CU_ASSERT_EQUAL(stats(p).queued, 2);
    /* the rest */
    CU_ASSERT(sn__pool_expire(p, sn_now_ms(), drop_job) == SN_DEADLINE_NEVER);
    CU_ASSERT_EQUAL(atomic_load(&dropped), 3);
    CU_ASSERT_EQUAL(stats(p).queued, 0);

    gate_release();
    CU_ASSERT_EQUAL(wait_for(&ran, 1, 10000), 1); /* only the gated job ran */
    SN_ASSERT_RC(sn_pool_stop(p), 0);
    CU_ASSERT_EQUAL(atomic_load(&ran), 1);
    CU_ASSERT_EQUAL(atomic_load(&dropped), 3);
    sn_pool_free(p);
}

static void test_queue_expire(void)
{
    check_expire(&(sn_pool_config){.max_threads = 1, .queue_size = 4});
}

static void test_queue_expire_fibers(void)
{
    check_expire(
        &(sn_pool_config){.max_threads = 1, .queue_size = 4, .fibers = SN_ON, .fiber_threads = 1});
}

static void test_min_threads_at_creation(void)
{
    sn_pool *p;
    SN_ASSERT_RC(
        sn_pool_new(&p, &(sn_pool_config){.min_threads = 3, .max_threads = 5, .idle_ms = 20}), 0);
    sn_pool_stats st = stats(p);
    CU_ASSERT_EQUAL(st.threads, 3);
    CU_ASSERT_EQUAL(st.threads_created, 3);
    sn_test_sleep_ms(150); /* idle well past idle_ms: min_threads stay */
    st = stats(p);
    CU_ASSERT_EQUAL(st.threads, 3);
    CU_ASSERT_EQUAL(st.threads_reaped, 0);
    /* the idle workers take jobs without new threads */
    for (int i = 0; i < 20; i++)
        SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&ran, 20, 10000), 20);
    CU_ASSERT(stats(p).threads_created <= 5);
    sn_pool_free(p);
}

static void test_idle_reaping(void)
{
    sn_pool *p;
    SN_ASSERT_RC(
        sn_pool_new(&p, &(sn_pool_config){.min_threads = 1, .max_threads = 4, .idle_ms = 50}), 0);
    gate_close();
    for (int i = 0; i < 4; i++)
        SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&running, 4, 5000), 4);
    CU_ASSERT_EQUAL(stats(p).threads, 4);
    gate_release();
    CU_ASSERT_EQUAL(wait_for(&ran, 4, 5000), 4);
    CU_ASSERT_EQUAL(wait_threads(p, 1, 5000), 1);
    sn_test_sleep_ms(150); /* and no further than min_threads */
    sn_pool_stats st = stats(p);
    CU_ASSERT_EQUAL(st.threads, 1);
    CU_ASSERT_EQUAL(st.threads_reaped, st.threads_created - 1);
    CU_ASSERT(st.threads_reaped >= 3);
    /* a new burst starts threads again, and they are reaped again */
    for (int i = 0; i < 4; i++)
        SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&ran, 8, 5000), 8);
    CU_ASSERT_EQUAL(wait_threads(p, 1, 5000), 1);
    sn_pool_free(p); /* joins the reaped threads too: valgrind/tsan see no leak */
}

static void test_idle_reaping_to_zero(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.max_threads = 3, .idle_ms = 30}), 0);
    for (int i = 0; i < 30; i++)
        SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&ran, 30, 5000), 30);
    CU_ASSERT_EQUAL(wait_threads(p, 0, 5000), 0);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0); /* starts one again */
    CU_ASSERT_EQUAL(wait_for(&ran, 31, 5000), 31);
    sn_pool_free(p);
}

struct stopper {
    sn_pool *p;
    atomic_int done;
    int rc;
};

static void *stop_thread(void *arg)
{
    struct stopper *st = arg;
    st->rc = sn_pool_stop(st->p);
    atomic_store(&st->done, 1);
    return NULL;
}

static void test_stop_drops_queued(void)
{
    sn_pool *p;
    SN_ASSERT_RC(
        sn_pool_new(&p, &(sn_pool_config){.max_threads = 1, .queue_size = 10, .drop = drop_job}),
        0);
    gate_close();
    SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&running, 1, 5000), 1);
    for (int i = 0; i < 5; i++)
        SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0);
    struct stopper st = {.p = p};
    pthread_t t;
    CU_ASSERT_EQUAL(pthread_create(&t, NULL, stop_thread, &st), 0);
    /* the queued jobs are dropped at once; stop waits for the running one */
    CU_ASSERT_EQUAL(wait_for(&dropped, 5, 5000), 5);
    sn_test_sleep_ms(30);
    CU_ASSERT_EQUAL(atomic_load(&st.done), 0);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), SN_ESTOPPED);
    gate_release();
    pthread_join(t, NULL);
    SN_ASSERT_RC(st.rc, 0);
    CU_ASSERT_EQUAL(atomic_load(&ran), 1);
    CU_ASSERT_EQUAL(atomic_load(&dropped), 5);
    sn_pool_stats s = stats(p);
    CU_ASSERT_EQUAL(s.threads, 0);
    CU_ASSERT_EQUAL(s.queued, 0);
    CU_ASSERT_EQUAL(s.completed, 1);
    /* nothing runs after stop returned */
    sn_test_sleep_ms(30);
    CU_ASSERT_EQUAL(atomic_load(&ran), 1);
    sn_pool_free(p);
}

static void test_stop_runs_queued_without_drop(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.max_threads = 2, .queue_size = 10}), 0);
    gate_close();
    for (int i = 0; i < 8; i++)
        SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&running, 2, 5000), 2);
    struct stopper st = {.p = p};
    pthread_t t;
    CU_ASSERT_EQUAL(pthread_create(&t, NULL, stop_thread, &st), 0);
    sn_test_sleep_ms(20);
    gate_release();
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(atomic_load(&ran), 8); /* all run before stop returned */
    CU_ASSERT_EQUAL(stats(p).completed, 8);
    sn_pool_free(p);
}

static void test_stop_idempotent(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.min_threads = 2}), 0);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    SN_ASSERT_RC(sn_pool_stop(p), 0);
    SN_ASSERT_RC(sn_pool_stop(p), 0);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), SN_ESTOPPED);
    CU_ASSERT_EQUAL(stats(p).threads, 0);
    CU_ASSERT_EQUAL(atomic_load(&ran), 1);
    sn_pool_free(p);
}

static void test_concurrent_stops(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.max_threads = 2, .drop = drop_job}), 0);
    gate_close();
    for (int i = 0; i < 4; i++)
        SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&running, 2, 5000), 2);
    struct stopper st[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        st[i] = (struct stopper){.p = p};
        CU_ASSERT_EQUAL(pthread_create(&t[i], NULL, stop_thread, &st[i]), 0);
    }
    sn_test_sleep_ms(30);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(atomic_load(&st[i].done), 0); /* all wait for the jobs */
    gate_release();
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        SN_ASSERT_RC(st[i].rc, 0);
    }
    CU_ASSERT_EQUAL(atomic_load(&ran), 2);
    CU_ASSERT_EQUAL(atomic_load(&dropped), 2);
    sn_pool_free(p);
}

static size_t seen_stack;

static void stack_job(void *arg)
{
    (void)arg;
    pthread_attr_t attr;
    size_t sz = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstacksize(&attr, &sz);
        pthread_attr_destroy(&attr);
    }
    seen_stack = sz;
    atomic_fetch_add(&ran, 1);
}

static void check_stack(size_t configured, size_t want)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.stack_size = configured}), 0);
    seen_stack = 0;
    int before = atomic_load(&ran);
    SN_ASSERT_RC(sn_pool_submit(p, stack_job, NULL), 0);
    CU_ASSERT_EQUAL(wait_for(&ran, before + 1, 5000), before + 1);
    sn_pool_free(p); /* joins: seen_stack is visible */
    /* glibc may reuse a cached stack up to 4 times larger than asked for,
     * and ThreadSanitizer adds its TLS size to small stacks; without the
     * attribute it would be 8 MiB (ulimit -s) */
    if (seen_stack < want || seen_stack >= 4 * 1024 * 1024)
        fprintf(stderr, "stack: configured %zu, seen %zu\n", configured, seen_stack);
    CU_ASSERT(seen_stack >= want && seen_stack < 4 * 1024 * 1024);
}

static void test_stack_size(void)
{
    /* ascending, so that no larger stack is in glibc's cache yet */
    check_stack(128 * 1024, 128 * 1024);
    check_stack(0, 256 * 1024);
    check_stack(1024 * 1024, 1024 * 1024);
}

/* Several threads submit at once; refused jobs are retried. */
#define SUBMITTERS 4
#define PER_SUBMITTER 2000

static sn_pool *shared_pool;
static atomic_int refusals;

static void *submitter(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_SUBMITTER; i++) {
        int rc;
        while ((rc = sn_pool_submit(shared_pool, count_job, NULL)) == SN_EQUEUEFULL) {
            atomic_fetch_add(&refusals, 1);
            sched_yield();
        }
        if (rc != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_many_submitters(void)
{
    atomic_store(&refusals, 0);
    SN_ASSERT_RC(sn_pool_new(&shared_pool,
                             &(sn_pool_config){.max_threads = 3, .queue_size = 8, .idle_ms = 5}),
                 0);
    pthread_t t[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++)
        CU_ASSERT_EQUAL(pthread_create(&t[i], NULL, submitter, NULL), 0);
    for (int i = 0; i < SUBMITTERS; i++) {
        void *res;
        pthread_join(t[i], &res);
        CU_ASSERT_PTR_NULL(res);
    }
    SN_ASSERT_RC(sn_pool_stop(shared_pool), 0);
    sn_pool_stats st = stats(shared_pool);
    CU_ASSERT_EQUAL(atomic_load(&ran), SUBMITTERS * PER_SUBMITTER);
    CU_ASSERT_EQUAL(st.completed, SUBMITTERS * PER_SUBMITTER);
    CU_ASSERT_EQUAL(st.started, SUBMITTERS * PER_SUBMITTER);
    CU_ASSERT_EQUAL(st.refused, (uint64_t)atomic_load(&refusals));
    CU_ASSERT(st.threads_created <= 3 + st.threads_reaped);
    sn_pool_free(shared_pool);
}

/* A job may submit to its own pool. */
static sn_pool *chain_pool;

static void chain_job(void *arg)
{
    intptr_t left = (intptr_t)arg;
    atomic_fetch_add(&ran, 1);
    if (left > 0)
        sn_pool_submit(chain_pool, chain_job, (void *)(left - 1));
}

static void test_job_submits_job(void)
{
    SN_ASSERT_RC(sn_pool_new(&chain_pool, &(sn_pool_config){.max_threads = 1, .queue_size = 1}), 0);
    SN_ASSERT_RC(sn_pool_submit(chain_pool, chain_job, (void *)99), 0);
    CU_ASSERT_EQUAL(wait_for(&ran, 100, 5000), 100);
    sn_pool_free(chain_pool);
}

static void test_alloc_failure(void)
{
    long live = sn__alloc_live();
    int enomem = 0, ok = 0;
    for (long n = 0; n < 12; n++) {
        sn_pool *p = NULL;
        sn__alloc_fail_after(n);
        int rc = sn_pool_new(&p, &(sn_pool_config){.min_threads = 3, .queue_size = 4});
        sn__alloc_fail_after(-1);
        if (rc == SN_ENOMEM) {
            enomem++;
            CU_ASSERT_EQUAL(sn__alloc_live(), live);
            continue;
        }
        SN_ASSERT_RC(rc, 0);
        ok++;
        CU_ASSERT_EQUAL(stats(p).threads, 3);
        sn_pool_free(p);
        CU_ASSERT_EQUAL(sn__alloc_live(), live);
    }
    CU_ASSERT(enomem >= 5); /* pool, ring, three workers */
    CU_ASSERT(ok >= 1);
    /* a worker allocation failing in submit falls back to the queue */
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.max_threads = 2, .queue_size = 2}), 0);
    gate_close();
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0); /* queued: no worker */
    sn__alloc_fail_after(-1);
    CU_ASSERT_EQUAL(stats(p).queued, 1);
    CU_ASSERT_EQUAL(stats(p).threads, 0);
    SN_ASSERT_RC(sn_pool_submit(p, gated_job, NULL), 0); /* starts a worker */
    gate_release();
    CU_ASSERT_EQUAL(wait_for(&ran, 2, 5000), 2); /* it also runs the queued one */
    sn_pool_free(p);
}

static atomic_int thread_errors, last_thread_error;

static void on_thread_error(int err, void *user)
{
    CU_ASSERT_PTR_EQUAL(user, &thread_errors);
    atomic_store(&last_thread_error, err);
    atomic_fetch_add(&thread_errors, 1);
}

/* A stack no system can give (32 TiB): every new thread is refused. The
 * job waits in the queue, the refusal is counted and reported, and stop
 * drops the job. */
static void test_thread_refused(void)
{
    atomic_store(&thread_errors, 0);
    sn_pool *p;
    sn_pool_config cfg = {.max_threads = 2,
                          .queue_size = 1,
                          .stack_size = (size_t)1 << 45,
                          .drop = drop_job,
                          .on_thread_error = on_thread_error,
                          .user = &thread_errors};
    SN_ASSERT_RC(sn_pool_new(&p, &cfg), 0);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), SN_EQUEUEFULL);
    sn_pool_stats st = stats(p);
    CU_ASSERT_EQUAL(st.threads, 0);
    CU_ASSERT_EQUAL(st.queued, 1);
    CU_ASSERT_EQUAL(st.thread_failures, 2);
    CU_ASSERT_EQUAL(st.refused, 1);
    CU_ASSERT_EQUAL(atomic_load(&thread_errors), 2);
    CU_ASSERT(atomic_load(&last_thread_error) == SN_EAGAIN ||
              atomic_load(&last_thread_error) == SN_ENOMEM);
    SN_ASSERT_RC(sn_pool_stop(p), 0);
    CU_ASSERT_EQUAL(atomic_load(&dropped), 1);
    CU_ASSERT_EQUAL(atomic_load(&ran), 0);
    sn_pool_free(p);
}

static void test_free_with_idle_workers(void)
{
    sn_pool *p;
    SN_ASSERT_RC(sn_pool_new(&p, &(sn_pool_config){.min_threads = 4, .max_threads = 8}), 0);
    for (int i = 0; i < 16; i++)
        SN_ASSERT_RC(sn_pool_submit(p, count_job, NULL), 0);
    sn_pool_free(p); /* no stop first: free stops, runs or finishes everything */
    CU_ASSERT_EQUAL(atomic_load(&ran), 16);
}

/* glibc takes a thread's static TLS from the top of its stack, and this
 * program has 1 MiB of it (big_tls), four times the default stack: the
 * pools add it to the stacks they ask for (sn__thread_overhead), so their
 * threads start, and a job still has its stack_size to run on. */
static _Thread_local volatile char big_tls[1 << 20]; /* volatile: gcc drops a static only written */

static void tls_job(void *arg)
{
    (void)arg;
    volatile char frame[40 * 1024]; /* most of a 64 KiB stack */
    frame[0] = 1;
    frame[sizeof frame - 1] = 2;
    big_tls[sizeof big_tls - 1] = (char)(frame[0] + frame[sizeof frame - 1]);
    if (big_tls[sizeof big_tls - 1] == 3)
        atomic_fetch_add(&ran, 1);
}

static void test_large_static_tls(void)
{
    if (getenv("SN_TEST_VERBOSE"))
        fprintf(stderr, "overhead %zu\n", sn__thread_overhead());
    CU_ASSERT(sn__thread_overhead() > sizeof big_tls);
    for (int fibers = 0; fibers < 2; fibers++) {
        reset_counters();
        sn_pool *p = NULL;
        sn_pool_config cfg = {
            .stack_size = 64 * 1024, .fibers = fibers ? SN_ON : 0, .fiber_threads = 2};
        SN_ASSERT_RC(sn_pool_new(&p, &cfg), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        for (int i = 0; i < 8; i++)
            SN_ASSERT_RC(sn_pool_submit(p, tls_job, NULL), 0);
        CU_ASSERT_EQUAL(wait_for(&ran, 8, 10000), 8);
        sn_pool_free(p);
    }
}

static CU_TestInfo tests[] = {
    {"jobs run", test_jobs_run},
    {"threads start with 1 MiB of static TLS", test_large_static_tls},
    {"invalid arguments", test_invalid_arguments},
    {"max_threads respected", test_max_threads_respected},
    {"queue, then SN_EQUEUEFULL", test_queue_full},
    {"queue SN_OFF", test_queue_off},
    {"queued jobs past a cutoff leave the queue", test_queue_expire},
    {"queued jobs past a cutoff leave the queue (fibers)", test_queue_expire_fibers},
    {"min_threads started at creation", test_min_threads_at_creation},
    {"idle workers reaped to min_threads", test_idle_reaping},
    {"idle workers reaped to zero", test_idle_reaping_to_zero},
    {"stop drops queued jobs", test_stop_drops_queued},
    {"stop runs queued jobs without drop", test_stop_runs_queued_without_drop},
    {"stop idempotent, submit after stop", test_stop_idempotent},
    {"concurrent stops", test_concurrent_stops},
    {"stack size honoured", test_stack_size},
    {"many submitters", test_many_submitters},
    {"a job submits a job", test_job_submits_job},
    {"allocation failure", test_alloc_failure},
    {"free with idle workers", test_free_with_idle_workers},
    {"refused threads are queued, counted, reported", test_thread_refused},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    sn_test_program p = {.suite = "pool", .tests = tests, .seconds = 120, .before_each = reset};
    return sn_test_run(&p);
}
