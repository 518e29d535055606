/* SPDX-License-Identifier: MIT */
/*
 * sn_wait.c: waiting, the same for both modes (see sn_wait.h).
 *
 * A condition variable keeps its waiters in a queue of nodes that live on
 * the waiters' stacks. A thread waits on a pthread condition of its node;
 * a fiber parks with a ticket (sn__fiber_park_ticket) that its node holds,
 * and a signal unparks it with that ticket, from any thread: a stale
 * ticket (the fiber timed out meanwhile and waits for something else now)
 * wakes nothing. The signal happens under the queue's lock, and a waiter
 * that timed out takes that lock before it leaves, so a waiter is never
 * woken after it left, and its node is never touched after.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include "sn_fiber.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

struct sn__waiter {
    sn__waiter *next, *prev;
    sn_fiber *fiber;      /* a fiber's, or NULL: a thread's */
    uint64_t ticket;      /* the fiber's park */
    pthread_cond_t *cond; /* a thread's */
    bool woken;
};

/* ---- the condition variable ------------------------------------------------------ */

void sn__cv_init(sn__cv *cv)
{
    sn__mutex_init(&cv->qmu);
    cv->head = cv->tail = NULL;
}

void sn__cv_destroy(sn__cv *cv)
{
    sn__mutex_destroy(&cv->qmu);
}

static void enqueue(sn__cv *cv, sn__waiter *w)
{
    w->next = NULL;
    w->prev = cv->tail;
    if (cv->tail != NULL)
        cv->tail->next = w;
    else
        cv->head = w;
    cv->tail = w;
}

static void unlink_waiter(sn__cv *cv, sn__waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        cv->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        cv->tail = w->prev;
}

/* Wakes w, taken off the queue (qmu held). */
static void wake(sn__waiter *w)
{
    w->woken = true;
    if (w->fiber != NULL)
        sn__fiber_unpark(w->fiber, w->ticket);
    else
        sn__cond_signal(w->cond);
}

int sn__cv_wait(sn__cv *cv, pthread_mutex_t *mu, int64_t deadline)
{
    sn__waiter w = {.fiber = sn__fiber_self()};
    int rc = 0;
    sn__mutex_lock(&cv->qmu);
    enqueue(cv, &w); /* before mu goes: a change made under mu finds w */
    sn__mutex_unlock(mu);
    if (w.fiber != NULL) {
        w.ticket = sn__fiber_park_ticket();
        sn__mutex_unlock(&cv->qmu); /* a signal now unparks the park below */
        rc = sn__fiber_park(deadline);
        sn__mutex_lock(&cv->qmu);
    } else {
        pthread_cond_t cond;
        sn__cond_init(&cond);
        w.cond = &cond;
        while (!w.woken && rc == 0)
            rc = sn__cond_wait_until(&cond, &cv->qmu, deadline);
        sn__cond_destroy(&cond);
    }
    if (w.woken)
        rc = 0; /* a signal and the deadline at once: the signal was used */
    else
        unlink_waiter(cv, &w);
    sn__mutex_unlock(&cv->qmu);
    sn__mutex_lock(mu);
    return rc;
}

void sn__cv_signal(sn__cv *cv)
{
    sn__mutex_lock(&cv->qmu);
    sn__waiter *w = cv->head;
    if (w != NULL) {
        unlink_waiter(cv, w);
        wake(w);
    }
    sn__mutex_unlock(&cv->qmu);
}

void sn__cv_broadcast(sn__cv *cv)
{
    sn__mutex_lock(&cv->qmu);
    sn__waiter *w;
    while ((w = cv->head) != NULL) {
        unlink_waiter(cv, w);
        wake(w);
    }
    sn__mutex_unlock(&cv->qmu);
}

/* ---- the lock ----------------------------------------------------------------------- */

void sn__lock_init(sn__lock *l)
{
    atomic_init(&l->held, false);
    atomic_init(&l->waiters, 0);
    sn__mutex_init(&l->mu);
    sn__cv_init(&l->turn);
}

void sn__lock_destroy(sn__lock *l)
{
    sn__cv_destroy(&l->turn);
    sn__mutex_destroy(&l->mu);
}

bool sn__lock_try(sn__lock *l)
{
    bool free = false;
    return atomic_compare_exchange_strong(&l->held, &free, true);
}

/* A taker counts itself in waiters before its last look, and a giver
 * clears held before it looks at waiters (both sequentially consistent):
 * either the giver sees the taker and wakes it, or the taker sees the lock
 * free. The giver takes mu before the signal, so that a taker that counted
 * itself is in the queue by then. */
void sn__lock_take(sn__lock *l)
{
    if (sn__lock_try(l))
        return;
    sn__mutex_lock(&l->mu);
    atomic_fetch_add(&l->waiters, 1);
    while (!sn__lock_try(l))
        sn__cv_wait(&l->turn, &l->mu, SN_DEADLINE_NEVER);
    atomic_fetch_sub(&l->waiters, 1);
    sn__mutex_unlock(&l->mu);
}

void sn__lock_give(sn__lock *l)
{
    atomic_store(&l->held, false);
    if (atomic_load(&l->waiters) == 0)
        return;
    sn__mutex_lock(&l->mu);
    sn__mutex_unlock(&l->mu);
    sn__cv_signal(&l->turn);
}

/* ---- descriptors, sleeping, yielding ------------------------------------------------ */

bool sn__wait_parks(void)
{
    return sn__fiber_self() != NULL;
}

static _Thread_local void *tl_local; /* a plain thread's sn__task_local */

void *sn__task_local(void)
{
    sn_fiber *f = sn__fiber_self();
    return f != NULL ? sn__fiber_local(f) : tl_local;
}

void sn__task_set_local(void *p)
{
    sn_fiber *f = sn__fiber_self();
    if (f != NULL)
        sn__fiber_set_local(f, p);
    else
        tl_local = p;
}

int sn__wait_fd(int fd, short events, int64_t deadline_ms)
{
    if (sn__wait_parks()) /* park the fiber, not the thread */
        return sn__fiber_wait_fd(fd, events, deadline_ms);
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int rc = poll(&pfd, 1, sn__poll_timeout(deadline_ms));
        if (rc > 0)
            return 0;
        if (rc == 0) {
            if (deadline_ms != SN_DEADLINE_NEVER && sn_now_ms() >= deadline_ms)
                return SN_ETIMEDOUT;
            continue; /* woke early (the clock's rounding): wait the rest */
        }
        if (errno != EINTR)
            return -errno;
    }
}

int sn_sleep_ms(int64_t ms)
{
    if (ms < 0)
        return SN_EINVAL;
    int64_t deadline = sn_deadline_in(ms);
    if (sn__fiber_self() != NULL)
        return ms == 0 ? 0 : sn__fiber_sleep_until(deadline);
    for (int64_t left = ms; left > 0; left = deadline - sn_now_ms()) {
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (long)(left % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* a signal: sleep the rest */
    }
    return 0;
}

void sn_yield(void)
{
    if (sn__fiber_self() != NULL)
        sn__fiber_yield();
    else
        sched_yield();
}

/* ---- the public mutex (common.h) ----------------------------------------------------- */

struct sn_mutex {
    sn__lock lock;
};

int sn_mutex_new(sn_mutex **out)
{
    if (out == NULL)
        return SN_EINVAL;
    sn_mutex *m = sn__malloc(sizeof *m);
    if (m == NULL)
        return SN_ENOMEM;
    sn__lock_init(&m->lock);
    *out = m;
    return 0;
}

void sn_mutex_lock(sn_mutex *m)
{
    sn__lock_take(&m->lock);
}

int sn_mutex_trylock(sn_mutex *m)
{
    return sn__lock_try(&m->lock) ? 0 : SN_EBUSY;
}

void sn_mutex_unlock(sn_mutex *m)
{
    sn__lock_give(&m->lock);
}

void sn_mutex_free(sn_mutex *m)
{
    if (m == NULL)
        return;
    sn__lock_destroy(&m->lock);
    sn__free(m);
}
