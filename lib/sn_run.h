/* SPDX-License-Identifier: MIT */
/*
 * sn_run.h: the life both servers share (sn_server.c, sn_udp_server.c): the
 * two locks, the flags a start and a stop go through, and the calls that
 * read them; and their statistics counters. Not installed.
 *
 * Lock order: stop_mu, then mu (then whatever a server takes under mu).
 */
#ifndef SN_RUN_H
#define SN_RUN_H

#include <stdatomic.h>
#include <stdbool.h>
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

typedef struct sn__run {
    pthread_mutex_t stop_mu; /* one stopper at a time, held through a stop */
    pthread_mutex_t mu;      /* the flags below, and the server's own state */
    sn__cv cond;             /* broadcast under mu when what a stop waits for changed */
    bool started;            /* under mu: start succeeded */
    bool finished;           /* under mu: a stop went through every step */
    atomic_bool stopping;    /* set once, by the first stop */
} sn__run;

void sn__run_init(sn__run *r);
void sn__run_destroy(sn__run *r);
/* A start's first step: 0, or SN_EBADSTATE (started already, or stopping). */
int sn__run_may_start(sn__run *r);
/* Whether start succeeded (takes mu). */
bool sn__run_started(sn__run *r);
/* Sets stopping: true for the first call. Any thread. */
bool sn__run_begin_stop(sn__run *r);
bool sn__run_stopping(const sn__run *r);
/* The getter of a bound address: out = addrs[idx] of n, once started.
 * 0, SN_EBADSTATE (not started) or SN_EINVAL (idx out of range). */
int sn__run_local_addr(sn__run *r, const sn_addr *addrs, int n, int idx, sn_addr *out);

/* Statistics counters, written by any thread and read without a lock.
 * A server lists its counters once, as X(name) in a macro, and makes the
 * fields and their loads from the list:
 *     #define COUNTERS(X) X(received) X(sent)
 *     struct { COUNTERS(SN__COUNTER_FIELD) } n;       in the server
 *     COUNTERS(SN__COUNTER_LOAD)                      in its stats getter,
 * where SN__COUNTER_LOAD copies s->n.name into out->name. */
#define SN__COUNTER_FIELD(name) atomic_uint_fast64_t name;
#define SN__COUNTER_LOAD(name) out->name = atomic_load(&s->n.name);

static inline void sn__counter_add(atomic_uint_fast64_t *ctr, uint64_t n)
{
    atomic_fetch_add_explicit(ctr, n, memory_order_relaxed);
}

#endif
