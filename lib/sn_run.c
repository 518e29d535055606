/* SPDX-License-Identifier: MIT */
/* sn_run.c: the life both servers share (see sn_run.h). */
#include "sn_run.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

void sn__run_init(sn__run *r)
{
    sn__mutex_init(&r->stop_mu);
    sn__mutex_init(&r->mu);
    sn__cv_init(&r->cond);
    r->started = r->finished = false;
    atomic_init(&r->stopping, false);
}

void sn__run_destroy(sn__run *r)
{
    sn__cv_destroy(&r->cond);
    sn__mutex_destroy(&r->mu);
    sn__mutex_destroy(&r->stop_mu);
}

int sn__run_may_start(sn__run *r)
{
    sn__mutex_lock(&r->mu);
    bool bad = r->started || atomic_load(&r->stopping);
    sn__mutex_unlock(&r->mu);
    return bad ? SN_EBADSTATE : 0;
}

bool sn__run_started(sn__run *r)
{
    sn__mutex_lock(&r->mu);
    bool started = r->started;
    sn__mutex_unlock(&r->mu);
    return started;
}

bool sn__run_begin_stop(sn__run *r)
{
    return !atomic_exchange(&r->stopping, true);
}

bool sn__run_stopping(const sn__run *r)
{
    return atomic_load(&((sn__run *)r)->stopping);
}

int sn__run_local_addr(sn__run *r, const sn_addr *addrs, int n, int idx, sn_addr *out)
{
    if (!sn__run_started(r))
        return SN_EBADSTATE;
    if (idx < 0 || idx >= n)
        return SN_EINVAL;
    *out = addrs[idx]; /* set before started, never changed after */
    return 0;
}
