/* SPDX-License-Identifier: MIT */
/*
 * sn_ctx_x86_64.c: a new fiber's first frame for the assembly switch in
 * sn_ctx_x86_64_switch.S. The switch pops, from the saved stack pointer up: the
 * x87 control word (8 bytes), MXCSR (8 bytes), r15, r14, r13, r12, rbx,
 * rbp, then returns. So a new stack holds their start values and, as the
 * return address, the entry function; the zero above it stands for entry's
 * own return address (it never returns). The saved pointer is 16-byte
 * aligned, which leaves rsp as a call would (8 mod 16) when entry starts.
 */
#include <stdint.h>
#include <string.h>
#include "sn_ctx.h"

void sn__ctx_make(sn__ctx *c, char *stack, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 80);
    memset(sp, 0, 80);
    sp[0] = 0x037f; /* x87 control word: the ABI's default */
    sp[1] = 0x1f80; /* MXCSR: the ABI's default */
    /* sp[2..7]: r15, r14, r13, r12, rbx, rbp = 0 (rbp 0 ends backtraces) */
    sp[8] = (uint64_t)(uintptr_t)entry;
    sp[9] = 0;
    c->sp = sp;
}
