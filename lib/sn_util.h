/* SPDX-License-Identifier: MIT */
/*
 * sn_util.h: the chores every layer shares (internal; rank 0, sn_util.c):
 * array and min/max macros, allocation, pthread wrappers that abort on
 * misuse, deadlines, descriptors. Internal names start with sn__; nothing
 * here is exported from the shared library (hidden visibility), but the
 * tests link the convenience library and may call these.
 */
#ifndef SN_UTIL_H
#define SN_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "socknet.h"

#define SN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SN_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- allocation: every internal allocation goes through these ---------- */
void *sn__malloc(size_t n);
void *sn__calloc(size_t count, size_t size);
void *sn__realloc(void *p, size_t n);
char *sn__strdup(const char *s); /* NULL gives NULL */
void sn__free(void *p);
/* Tests: make the allocation after n more succeed fail (n = 0: the next
 * one); a negative n turns injection off. Counts allocations from every
 * thread. */
void sn__alloc_fail_after(long n);
/* Allocations that have not been freed, for leak checks in tests. */
long sn__alloc_live(void);

/* ---- locks: a pthread error is a bug, so these abort on one ------------ */
void sn__mutex_init(pthread_mutex_t *m);
void sn__mutex_destroy(pthread_mutex_t *m);
void sn__mutex_lock(pthread_mutex_t *m);
void sn__mutex_unlock(pthread_mutex_t *m);
void sn__cond_init(pthread_cond_t *c); /* on CLOCK_MONOTONIC */
void sn__cond_destroy(pthread_cond_t *c);
void sn__cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
/* Waits until signalled or the absolute monotonic deadline (ms;
 * SN_DEADLINE_NEVER waits forever). Returns 0, or SN_ETIMEDOUT. */
int sn__cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ms);
void sn__cond_signal(pthread_cond_t *c);
void sn__cond_broadcast(pthread_cond_t *c);
/* Room for what glibc takes from the top of a thread's stack before the
 * thread runs: its descriptor and the static TLS of the program and every
 * library loaded at start (wolfSSL's ECC caches: 49 KiB in Debian's build,
 * 1.4 MiB in one built with --enable-sp for every curve). A thread given a
 * stack of N bytes has N minus that to run on, and none at all when it is
 * larger: glibc then refuses to create it (EINVAL). The pools add this to
 * the stacks they ask for. The PT_TLS segments loaded (dl_iterate_phdr)
 * plus 256 KiB, summed once. */
size_t sn__thread_overhead(void);

/* ---- deadlines ---------------------------------------------------------- */
/* The monotonic clock of sn_now_ms, in nanoseconds. */
int64_t sn__now_ns(void);
/* Turns a caller's deadline into an absolute one: SN_DEADLINE_DEFAULT
 * becomes now + default_ms (default_ms < 0: never). */
int64_t sn__deadline_abs(sn_deadline dl, int default_ms);
/* Milliseconds left until an absolute deadline, as poll() wants them:
 * -1 for never, 0 when passed, rounded up, capped at INT_MAX. */
int sn__poll_timeout(int64_t deadline_ms);
/* Sets fd's SO_RCVTIMEO so that a blocking receive returns by the absolute
 * deadline (SN_DEADLINE_NEVER: no timeout). *timeo_ms is the value last set
 * (ms; 0 none, -1 unknown); a value that still fits is kept, so most calls
 * make no system call. Returns 0, SN_ETIMEDOUT (the deadline has passed),
 * or -errno. Used where a receive blocks in the kernel instead of poll +
 * receive (never on a fiber). */
int sn__rcvtimeo_until(int fd, int *timeo_ms, int64_t deadline_ms);

/* ---- descriptors -------------------------------------------------------- */
int sn__fd_nonblock_cloexec(int fd); /* 0 or -errno */
/* Maps a getaddrinfo() error to SN_ENONAME / SN_ERESOLVE_AGAIN / ... */
int sn__gai_error(int gai_err);

#endif
