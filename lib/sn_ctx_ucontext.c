/* SPDX-License-Identifier: MIT */
/* sn_ctx_ucontext.c: fiber contexts with getcontext/makecontext/swapcontext,
 * for machines without an assembly switch (see sn_ctx.h). */
#include <stdlib.h>
#include "sn_ctx.h"

void sn__ctx_make(sn__ctx *c, char *stack, size_t size, void (*entry)(void))
{
    if (getcontext(&c->uc) < 0)
        abort(); /* cannot fail on Linux */
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, entry, 0);
}

void sn__ctx_switch(sn__ctx *from, sn__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
