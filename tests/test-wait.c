/* SPDX-License-Identifier: MIT */
/*
 * test-wait.c: waiting the same way in both modes (lib/sn_wait.h): the
 * condition variable and the lock, each waiter a fiber or a thread, each
 * waker a fiber or a thread, on the same scheduler or another; a waiter
 * parks (its thread runs the other fibers and makes no wake-ups of its
 * own: counted as voluntary context switches) and wakes promptly; and a
 * fiber that publishes with SN_HUB_WAIT into a full room, or waits in
 * sn_hub_sub_recv, lets the other fibers of its thread run.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "sn_test.h"
#include "sn_fiber.h"
#include "sn_wait.h"

/* ---- a scheduler on a thread of its own ---------------------------------------------- */

struct fiber_thread {
    pthread_t t;
    void (*fn[4])(void *);
    void *arg[4];
    int n;
    long switches; /* voluntary context switches of the thread while it ran */
};

static long voluntary_switches(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nvcsw;
}

static void *fiber_thread_main(void *arg)
{
    struct fiber_thread *ft = arg;
    sn_sched *s;
    SN_ASSERT_RC(sn__sched_new(&s), 0);
    for (int i = 0; i < ft->n; i++)
        SN_ASSERT_RC(sn__fiber_spawn(s, ft->fn[i], ft->arg[i], 0), 0);
    long before = voluntary_switches();
    sn__sched_run(s);
    ft->switches = voluntary_switches() - before;
    sn__sched_free(s);
    return NULL;
}

static void fibers_start(struct fiber_thread *ft)
{
    CU_ASSERT_FATAL(pthread_create(&ft->t, NULL, fiber_thread_main, ft) == 0);
}

static void fibers_join(struct fiber_thread *ft)
{
    pthread_join(ft->t, NULL);
}

/* ---- the condition variable -------------------------------------------------------- */

struct flag {
    pthread_mutex_t mu;
    sn__cv cv;
    bool set;
    int64_t woke_at;  /* when the waiter saw it */
    int rc;           /* the waiter's last sn__cv_wait */
    atomic_int ticks; /* a busy neighbour's progress */
    atomic_bool waiting;
};

static void flag_init(struct flag *f)
{
    memset(f, 0, sizeof *f);
    sn__mutex_init(&f->mu);
    sn__cv_init(&f->cv);
}

static void flag_destroy(struct flag *f)
{
    sn__cv_destroy(&f->cv);
    sn__mutex_destroy(&f->mu);
}

/* Waits for the flag (fiber or thread alike). */
static void flag_wait(void *arg)
{
    struct flag *f = arg;
    sn__mutex_lock(&f->mu);
    atomic_store(&f->waiting, true);
    while (!f->set)
        f->rc = sn__cv_wait(&f->cv, &f->mu, sn_deadline_in(5000));
    f->woke_at = sn_now_ms();
    sn__mutex_unlock(&f->mu);
}

static void flag_set(struct flag *f)
{
    sn__mutex_lock(&f->mu);
    f->set = true;
    sn__mutex_unlock(&f->mu);
    sn__cv_signal(&f->cv);
}

/* A fiber that sets the flag after 200 ms. */
static void flag_set_later(void *arg)
{
    sn_sleep_ms(200);
    flag_set(arg);
}

/* A fiber that keeps running while its neighbour waits. */
static void neighbour(void *arg)
{
    struct flag *f = arg;
    while (!f->woke_at && atomic_load(&f->ticks) < 1000) {
        atomic_fetch_add(&f->ticks, 1);
        sn_sleep_ms(10);
    }
}

static void *thread_wait(void *arg)
{
    flag_wait(arg);
    return NULL;
}

/* A fiber waits, a thread signals after 200 ms: the waiter's thread makes
 * no wake-ups of its own meanwhile (it used to poll every 1-2 ms), runs its
 * other fiber, and the waiter wakes within a few ms of the signal. */
static void test_cv_fiber_woken_by_thread(void)
{
    struct flag f;
    flag_init(&f);
    struct fiber_thread ft = {.fn = {flag_wait}, .arg = {&f}, .n = 1};
    fibers_start(&ft);
    while (!atomic_load(&f.waiting))
        sn_sleep_ms(1);
    sn_sleep_ms(200);
    int64_t set_at = sn_now_ms();
    flag_set(&f);
    fibers_join(&ft);
    CU_ASSERT_EQUAL(f.rc, 0);
    CU_ASSERT(f.woke_at - set_at < 100);
    CU_ASSERT(ft.switches < 20); /* a thread that polled each ms makes 200 */
    if (ft.switches >= 20)
        fprintf(stderr, "the waiting fiber's thread switched %ld times\n", ft.switches);
    flag_destroy(&f);
}

/* A thread waits, a fiber signals. */
static void test_cv_thread_woken_by_fiber(void)
{
    struct flag f;
    flag_init(&f);
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, thread_wait, &f) == 0);
    while (!atomic_load(&f.waiting))
        sn_sleep_ms(1);
    struct fiber_thread ft = {.fn = {flag_set_later}, .arg = {&f}, .n = 1};
    int64_t t0 = sn_now_ms();
    fibers_start(&ft);
    fibers_join(&ft);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(f.rc, 0);
    CU_ASSERT(f.woke_at - t0 >= 190 && f.woke_at - t0 < 400);
    flag_destroy(&f);
}

/* Two fibers of one thread: one waits, the other signals after 200 ms;
 * a third keeps ticking meanwhile (the wait blocks nothing). */
static void test_cv_same_thread(void)
{
    struct flag f;
    flag_init(&f);
    struct fiber_thread ft = {
        .fn = {flag_wait, flag_set_later, neighbour}, .arg = {&f, &f, &f}, .n = 3};
    int64_t t0 = sn_now_ms();
    fibers_start(&ft);
    fibers_join(&ft);
    CU_ASSERT_EQUAL(f.rc, 0);
    CU_ASSERT(f.woke_at - t0 >= 190 && f.woke_at - t0 < 400);
    CU_ASSERT(atomic_load(&f.ticks) >= 10); /* about 20 in 200 ms */
    flag_destroy(&f);
}

/* A deadline with no signal: SN_ETIMEDOUT, for a fiber and a thread; a
 * late signal after the timeout wakes nothing (no stale wake-up). */
static void cv_timeout(void *arg)
{
    struct flag *f = arg;
    sn__mutex_lock(&f->mu);
    int64_t t0 = sn_now_ms();
    f->rc = sn__cv_wait(&f->cv, &f->mu, t0 + 100);
    f->woke_at = sn_now_ms() - t0;
    sn__mutex_unlock(&f->mu);
    sn__cv_signal(&f->cv); /* nobody waits: nothing happens */
    /* the fiber's next wait is not ended by anything from before */
    sn__mutex_lock(&f->mu);
    CU_ASSERT_EQUAL(sn__cv_wait(&f->cv, &f->mu, sn_now_ms() + 50), SN_ETIMEDOUT);
    sn__mutex_unlock(&f->mu);
}

static void *thread_cv_timeout(void *arg)
{
    cv_timeout(arg);
    return NULL;
}

static void test_cv_timeout(void)
{
    struct flag f;
    flag_init(&f);
    struct fiber_thread ft = {.fn = {cv_timeout}, .arg = {&f}, .n = 1};
    fibers_start(&ft);
    fibers_join(&ft);
    CU_ASSERT_EQUAL(f.rc, SN_ETIMEDOUT);
    CU_ASSERT(f.woke_at >= 95 && f.woke_at < 400);
    f.rc = 0;
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, thread_cv_timeout, &f) == 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(f.rc, SN_ETIMEDOUT);
    CU_ASSERT(f.woke_at >= 95 && f.woke_at < 400);
    flag_destroy(&f);
}

/* Broadcast: fibers on two threads and a thread, all woken. */
static void test_cv_broadcast(void)
{
    struct flag f;
    flag_init(&f);
    struct fiber_thread a = {.fn = {flag_wait, flag_wait}, .arg = {&f, &f}, .n = 2};
    struct fiber_thread b = {.fn = {flag_wait}, .arg = {&f}, .n = 1};
    pthread_t t;
    fibers_start(&a);
    fibers_start(&b);
    CU_ASSERT_FATAL(pthread_create(&t, NULL, thread_wait, &f) == 0);
    sn_sleep_ms(100);
    sn__mutex_lock(&f.mu);
    f.set = true;
    sn__mutex_unlock(&f.mu);
    sn__cv_broadcast(&f.cv);
    fibers_join(&a);
    fibers_join(&b);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(f.rc, 0);
    flag_destroy(&f);
}

/* ---- the lock ---------------------------------------------------------------------- */

struct counter {
    sn__lock lock;
    long n;            /* under lock */
    atomic_int inside; /* holders at once: never more than one */
    atomic_int most;
};

/* Takes the lock 2,000 times, yielding while it holds it sometimes. */
static void hammer(void *arg)
{
    struct counter *c = arg;
    for (int i = 0; i < 2000; i++) {
        sn__lock_take(&c->lock);
        int in = atomic_fetch_add(&c->inside, 1) + 1;
        if (in > atomic_load(&c->most))
            atomic_store(&c->most, in);
        c->n++;
        if (i % 64 == 0)
            sn_yield(); /* a holder that waits: another fiber runs meanwhile */
        atomic_fetch_sub(&c->inside, 1);
        sn__lock_give(&c->lock);
    }
}

static void *thread_hammer(void *arg)
{
    hammer(arg);
    return NULL;
}

/* Fibers on two threads and two plain threads take one lock: mutual
 * exclusion holds and every take ends. */
static void test_lock_mixed(void)
{
    struct counter c = {0};
    sn__lock_init(&c.lock);
    struct fiber_thread a = {.fn = {hammer, hammer, hammer}, .arg = {&c, &c, &c}, .n = 3};
    struct fiber_thread b = {.fn = {hammer, hammer}, .arg = {&c, &c}, .n = 2};
    pthread_t t1, t2;
    fibers_start(&a);
    fibers_start(&b);
    CU_ASSERT_FATAL(pthread_create(&t1, NULL, thread_hammer, &c) == 0);
    CU_ASSERT_FATAL(pthread_create(&t2, NULL, thread_hammer, &c) == 0);
    fibers_join(&a);
    fibers_join(&b);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CU_ASSERT_EQUAL(c.n, 7 * 2000);
    CU_ASSERT_EQUAL(atomic_load(&c.most), 1);
    CU_ASSERT(sn__lock_try(&c.lock));
    CU_ASSERT(!sn__lock_try(&c.lock));
    sn__lock_give(&c.lock);
    sn__lock_destroy(&c.lock);
}

struct held {
    sn__lock lock;
    int64_t got_at;
    atomic_bool taken;
    struct flag f; /* for neighbour */
};

static void *thread_hold(void *arg)
{
    struct held *h = arg;
    sn__lock_take(&h->lock);
    atomic_store(&h->taken, true);
    sn_sleep_ms(200);
    sn__lock_give(&h->lock);
    return NULL;
}

static void take_held(void *arg)
{
    struct held *h = arg;
    sn__lock_take(&h->lock);
    h->got_at = sn_now_ms();
    h->f.woke_at = h->got_at; /* stops the neighbour */
    sn__lock_give(&h->lock);
}

/* A thread holds the lock 200 ms; a fiber that wants it parks (its thread
 * makes no wake-ups of its own, its neighbour fiber runs) and gets it
 * within a few ms of its release. The WebSocket write lock used to yield
 * 64 times, then sleep 1 ms per try. */
static void test_lock_parks(void)
{
    struct held h = {0};
    sn__lock_init(&h.lock);
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, thread_hold, &h) == 0);
    while (!atomic_load(&h.taken))
        sn_sleep_ms(1);
    struct fiber_thread ft = {.fn = {take_held}, .arg = {&h}, .n = 1};
    fibers_start(&ft);
    pthread_join(t, NULL);
    int64_t released = sn_now_ms();
    fibers_join(&ft);
    CU_ASSERT(h.got_at - released < 100);
    CU_ASSERT(ft.switches < 20);
    if (ft.switches >= 20)
        fprintf(stderr, "the fiber waiting for the lock: its thread switched %ld times\n",
                ft.switches);
    sn__lock_destroy(&h.lock);
}

/* ---- the hub's waits on fibers ----------------------------------------------------- */

struct hub_fibers {
    sn_hub *hub;
    sn_hub_sub *sub;
    int64_t published_at, started;
    int rc;
    atomic_int ticks;
    atomic_bool done;
};

/* Publishes twice into a room whose one member holds one message: the
 * second waits (SN_HUB_WAIT) until the member takes the first. */
static void publisher(void *arg)
{
    struct hub_fibers *t = arg;
    SN_ASSERT_RC(sn_hub_publish(t->hub, "r", SN_WS_TEXT, "one", 3, NULL, 0), 1);
    t->rc = sn_hub_publish(t->hub, "r", SN_WS_TEXT, "two", 3, NULL, sn_deadline_in(3000));
    t->published_at = sn_now_ms();
    atomic_store(&t->done, true);
}

static void ticker(void *arg)
{
    struct hub_fibers *t = arg;
    while (!atomic_load(&t->done) && atomic_load(&t->ticks) < 1000) {
        atomic_fetch_add(&t->ticks, 1);
        sn_sleep_ms(10);
    }
}

/* The consumer, another fiber of the same thread: after 200 ms it takes
 * both messages with sn_hub_sub_recv (the second wait parks too). */
static void consumer(void *arg)
{
    struct hub_fibers *t = arg;
    sn_sleep_ms(200);
    for (int i = 0; i < 2; i++) {
        sn_hub_msg *m;
        SN_ASSERT_RC(sn_hub_sub_recv(t->sub, &m, NULL, sn_deadline_in(3000)), 0);
        sn_hub_msg_unref(m);
    }
}

static void test_hub_waits_park(void)
{
    struct hub_fibers t = {0};
    sn_hub_config hc = {.room = {.policy = SN_HUB_WAIT, .max_queue = 1, .wait_ms = 3000}};
    SN_ASSERT_RC(sn_hub_new(&t.hub, &hc), 0);
    SN_ASSERT_RC(sn_hub_subscribe(t.hub, "r", &t.sub), 0);
    struct fiber_thread ft = {.fn = {publisher, ticker, consumer}, .arg = {&t, &t, &t}, .n = 3};
    int64_t t0 = sn_now_ms();
    fibers_start(&ft);
    fibers_join(&ft);
    CU_ASSERT_EQUAL(t.rc, 1);
    CU_ASSERT(t.published_at - t0 >= 190 && t.published_at - t0 < 1000);
    CU_ASSERT(atomic_load(&t.ticks) >= 10); /* the thread ran its other fibers */
    sn_hub_unsubscribe(t.sub);
    sn_hub_free(t.hub);
}

/* ---- the public mutex ------------------------------------------------------------- */

/* The chat example's hang, in small: a fiber holds the mutex while its
 * publish waits for room (SN_HUB_WAIT); a second fiber of the same thread
 * wants the mutex meanwhile; a third is the one that makes room. With a
 * pthread mutex the second blocks the thread and the third never runs. */
struct mutex_fibers {
    struct hub_fibers h;
    sn_mutex *m;
    int64_t second_at; /* when the second fiber got the mutex */
};

static void mutex_holder(void *arg)
{
    struct mutex_fibers *t = arg;
    sn_mutex_lock(t->m);
    SN_ASSERT_RC(sn_mutex_trylock(t->m), SN_EBUSY);
    publisher(&t->h);
    sn_mutex_unlock(t->m);
}

static void mutex_second(void *arg)
{
    struct mutex_fibers *t = arg;
    sn_sleep_ms(20); /* the holder has it by now */
    sn_mutex_lock(t->m);
    t->second_at = sn_now_ms();
    sn_mutex_unlock(t->m);
}

static void mutex_consumer(void *arg)
{
    consumer(&((struct mutex_fibers *)arg)->h);
}

static void test_mutex_parks(void)
{
    struct mutex_fibers t = {0};
    sn_hub_config hc = {.room = {.policy = SN_HUB_WAIT, .max_queue = 1, .wait_ms = 3000}};
    SN_ASSERT_RC(sn_mutex_new(&t.m), 0);
    SN_ASSERT_RC(sn_hub_new(&t.h.hub, &hc), 0);
    SN_ASSERT_RC(sn_hub_subscribe(t.h.hub, "r", &t.h.sub), 0);
    struct fiber_thread ft = {
        .fn = {mutex_holder, mutex_second, mutex_consumer}, .arg = {&t, &t, &t}, .n = 3};
    fibers_start(&ft);
    fibers_join(&ft);
    CU_ASSERT_EQUAL(t.h.rc, 1); /* the holder's second publish went through */
    CU_ASSERT(t.second_at >= t.h.published_at && t.second_at > 0);
    SN_ASSERT_RC(sn_mutex_trylock(t.m), 0);
    sn_mutex_unlock(t.m);
    sn_hub_unsubscribe(t.h.sub);
    sn_hub_free(t.h.hub);
    sn_mutex_free(t.m);
    sn_mutex_free(NULL);
    CU_ASSERT_EQUAL(sn_mutex_new(NULL), SN_EINVAL);
}

static CU_TestInfo tests[] = {
    {"cv: a fiber woken by a thread parks meanwhile", test_cv_fiber_woken_by_thread},
    {"cv: a thread woken by a fiber", test_cv_thread_woken_by_fiber},
    {"cv: fibers of one thread", test_cv_same_thread},
    {"cv: timeouts, no stale wake-up", test_cv_timeout},
    {"cv: broadcast to fibers and threads", test_cv_broadcast},
    {"lock: fibers and threads, mutual exclusion", test_lock_mixed},
    {"lock: a fiber parks while a thread holds it", test_lock_parks},
    {"hub: SN_HUB_WAIT and sn_hub_sub_recv park a fiber", test_hub_waits_park},
    {"sn_mutex: held across a hub wait, wanted by a fiber of the same thread", test_mutex_parks},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("wait", tests, 60);
}
