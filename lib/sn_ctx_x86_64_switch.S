/* SPDX-License-Identifier: MIT */
/*
 * sn_ctx_x86_64_switch.S: sn__ctx_switch(from, to) for x86-64 System V:
 * saves the callee-saved registers, the x87 control word and MXCSR on the running
 * stack, stores the stack pointer in from->sp (offset 0), loads to->sp and
 * restores the same from there. No system call, no signal mask: fibers
 * never change it. The frame layout is sn_ctx_x86_64.c's.
 */
    .text
    .globl  sn__ctx_switch
    .hidden sn__ctx_switch
    .type   sn__ctx_switch, @function
    .p2align 4
sn__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $16, %rsp
    stmxcsr 8(%rsp)
    fnstcw  (%rsp)
    movq    %rsp, (%rdi)
    movq    (%rsi), %rsp
    fldcw   (%rsp)
    ldmxcsr 8(%rsp)
    addq    $16, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   sn__ctx_switch, .-sn__ctx_switch

    .section .note.GNU-stack, "", @progbits
