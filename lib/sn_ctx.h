/* SPDX-License-Identifier: MIT */
/*
 * sn_ctx.h: execution contexts for fibers (internal). Two implementations,
 * chosen by configure (--with-context): sn_ctx_x86_64.c with
 * sn_ctx_x86_64_switch.S (callee-saved registers and the stack pointer, no
 * system call) and sn_ctx_ucontext.c (swapcontext).
 */
#ifndef SN_CTX_H
#define SN_CTX_H

#include <stddef.h>
#include <ucontext.h>

typedef struct sn__ctx {
    void *sp;      /* asm: the saved stack pointer */
    ucontext_t uc; /* ucontext: the saved context */
} sn__ctx;

/* Prepares c to start entry (which must never return) on the stack
 * [stack, stack + size). */
void sn__ctx_make(sn__ctx *c, char *stack, size_t size, void (*entry)(void));

/* Saves the running context in from and continues in to. Returns when
 * something switches back to from. */
void sn__ctx_switch(sn__ctx *from, sn__ctx *to);

#endif
