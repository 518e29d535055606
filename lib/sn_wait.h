/* SPDX-License-Identifier: MIT */
/*
 * sn_wait.h: waiting, the same for both modes (internal). Every wait in the
 * library goes through here: on a fiber it parks the fiber (its thread runs
 * the others meanwhile), on a plain thread it blocks the thread, and a
 * wake-up from either kind of caller reaches either kind of waiter. No
 * other file asks which mode it runs in for a wait.
 *
 *     sn__wait_fd       a descriptor's readiness, by a deadline
 *     sn_sleep_ms, sn_yield (public, common.h)
 *     sn__cv            a condition variable used with a pthread mutex
 *                       that is only held for short, non-waiting sections
 *     sn__lock          a lock that may be held across waits (a message
 *                       being written, say): a second taker waits on it
 *
 * Lock order: a caller's mutex, then an sn__cv's queue lock, then (inside
 * sn_fiber.c) a scheduler's wake-up list lock. No waiting under the last
 * two.
 */
#ifndef SN_WAIT_H
#define SN_WAIT_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Whether a wait by the caller parks (a fiber: its thread serves other
 * connections meanwhile, so memory the caller does not need while it
 * waits is worth lending out) or blocks its thread (which may then block
 * in a receive itself: one system call instead of poll and receive). The
 * one question other files ask about the mode, and they ask it here. */
bool sn__wait_parks(void);

/* Waits until fd is ready for events (POLLIN / POLLOUT) or the deadline.
 * Returns 0 (ready, or error/hangup condition: the next I/O call tells),
 * SN_ETIMEDOUT, or -errno. Retries on EINTR. On a fiber it parks the
 * fiber (sn__fiber_wait_fd) instead of blocking the thread. */
int sn__wait_fd(int fd, short events, int64_t deadline_ms);

/* A pointer of the caller's task: its fiber's, or its thread's (a fiber's
 * neighbours on its thread each have their own). NULL at first. */
void *sn__task_local(void);
void sn__task_set_local(void *p);

/* A waiter: on the waiting caller's stack while it waits. */
typedef struct sn__waiter sn__waiter;

/* A condition variable. Waiters queue in order; a signal wakes the one
 * that waited longest. */
typedef struct sn__cv {
    pthread_mutex_t qmu; /* the queue; never held while waiting */
    sn__waiter *head, *tail;
} sn__cv;

void sn__cv_init(sn__cv *cv);
void sn__cv_destroy(sn__cv *cv);
/* Releases mu (held by the caller), waits for a signal or the deadline
 * (SN_DEADLINE_NEVER: none), takes mu again. Returns 0 (signalled) or
 * SN_ETIMEDOUT; as with pthreads, the caller checks its condition in a
 * loop. */
int sn__cv_wait(sn__cv *cv, pthread_mutex_t *mu, int64_t deadline);
/* Wakes the longest waiter / every waiter; the caller may hold the mutex
 * the waiters use or not. */
void sn__cv_signal(sn__cv *cv);
void sn__cv_broadcast(sn__cv *cv);

/* A lock that may be held across waits. Taking a free lock and giving one
 * nobody waits for are an atomic operation each; the mutex and the queue
 * are for waiters only. */
typedef struct sn__lock {
    atomic_bool held;
    atomic_int waiters; /* takers that found it held */
    pthread_mutex_t mu; /* between a taker's last look and its wait */
    sn__cv turn;
} sn__lock;

void sn__lock_init(sn__lock *l);
void sn__lock_destroy(sn__lock *l);
void sn__lock_take(sn__lock *l);
bool sn__lock_try(sn__lock *l);
void sn__lock_give(sn__lock *l);

#endif
