/* SPDX-License-Identifier: MIT */
/*
 * sn_bytes.c: growable byte buffers and the budget they may share
 * (sn_ws_budget of ws.h): a buffer's capacity beyond its own
 * SN__BYTES_OWN bytes is taken from the budget as it grows and given back
 * when it is freed, so that many sessions' large messages stay under one
 * limit.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "sn_bytes.h"
#include "sn_util.h"
#include "socknet.h"

struct sn_ws_budget {
    size_t limit;
    atomic_size_t used, peak;
    atomic_uint_fast64_t refused; /* takes refused */
};

int sn_ws_budget_new(sn_ws_budget **out, size_t limit)
{
    if (out == NULL || limit == 0)
        return SN_EINVAL;
    sn_ws_budget *b = sn__calloc(1, sizeof *b);
    if (b == NULL)
        return SN_ENOMEM;
    b->limit = limit;
    *out = b;
    return 0;
}

void sn_ws_budget_stats_get(const sn_ws_budget *b, sn_ws_budget_stats *out)
{
    if (b == NULL || out == NULL)
        return;
    *out = (sn_ws_budget_stats){
        .limit = b->limit,
        .used = atomic_load(&b->used),
        .peak = atomic_load(&b->peak),
        .refused = atomic_load(&b->refused),
    };
}

void sn_ws_budget_free(sn_ws_budget *b)
{
    sn__free(b);
}

/* Takes n bytes of the budget: true, or false (nothing taken) when that
 * would pass its limit. */
static bool budget_take(sn_ws_budget *b, size_t n)
{
    size_t used = atomic_load_explicit(&b->used, memory_order_relaxed);
    do {
        if (n > b->limit - used) {
            atomic_fetch_add_explicit(&b->refused, 1, memory_order_relaxed);
            return false;
        }
    } while (!atomic_compare_exchange_weak(&b->used, &used, used + n));
    size_t peak = atomic_load_explicit(&b->peak, memory_order_relaxed);
    while (used + n > peak && !atomic_compare_exchange_weak(&b->peak, &peak, used + n))
        ;
    return true;
}

static void budget_give(sn_ws_budget *b, size_t n)
{
    atomic_fetch_sub(&b->used, n);
}

/* What a buffer of cap bytes charges to its budget. */
static size_t charged(size_t cap)
{
    return cap > SN__BYTES_OWN ? cap - SN__BYTES_OWN : 0;
}

int sn__bytes_reserve(sn__bytes *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return SN_ENOMEM;
        cap *= 2;
    }
    size_t more = charged(cap) - charged(b->cap);
    if (b->budget != NULL && more > 0 && !budget_take(b->budget, more))
        return SN_EWS_BUSY;
    uint8_t *p = sn__realloc(b->p, cap);
    if (p == NULL) {
        if (b->budget != NULL && more > 0)
            budget_give(b->budget, more);
        return SN_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sn__bytes_free(sn__bytes *b)
{
    if (b->budget != NULL && charged(b->cap) > 0)
        budget_give(b->budget, charged(b->cap));
    sn__free(b->p);
    *b = (sn__bytes){.budget = b->budget};
}
