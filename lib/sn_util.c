/* SPDX-License-Identifier: MIT */
/* sn_util.c: allocation, locks, clocks and deadlines shared by the library. */
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "sn_util.h"
#include "socknet.h"

/* ---- allocation ---------------------------------------------------------- */

static atomic_long fail_countdown = -1; /* < 0: no injection */
static atomic_long live_allocs;

static bool alloc_should_fail(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (n >= 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &n, n - 1))
            return n == 0;
    }
    return false;
}

void sn__alloc_fail_after(long n)
{
    atomic_store(&fail_countdown, n < 0 ? -1 : n);
}

long sn__alloc_live(void)
{
    return atomic_load(&live_allocs);
}

void *sn__malloc(size_t n)
{
    if (alloc_should_fail())
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p != NULL)
        atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return p;
}

void *sn__calloc(size_t count, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p != NULL)
        atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return p;
}

void *sn__realloc(void *p, size_t n)
{
    if (p == NULL)
        return sn__malloc(n);
    if (alloc_should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

char *sn__strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = sn__malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

void sn__free(void *p)
{
    if (p == NULL)
        return;
    atomic_fetch_sub_explicit(&live_allocs, 1, memory_order_relaxed);
    free(p);
}

/* ---- locks ---------------------------------------------------------------- */

static void or_abort(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "socknet: %s failed: %s\n", what, strerror(rc));
        abort();
    }
}

void sn__mutex_init(pthread_mutex_t *m)
{
    or_abort(pthread_mutex_init(m, NULL), "pthread_mutex_init");
}

void sn__mutex_destroy(pthread_mutex_t *m)
{
    or_abort(pthread_mutex_destroy(m), "pthread_mutex_destroy");
}

void sn__mutex_lock(pthread_mutex_t *m)
{
    or_abort(pthread_mutex_lock(m), "pthread_mutex_lock");
}

void sn__mutex_unlock(pthread_mutex_t *m)
{
    or_abort(pthread_mutex_unlock(m), "pthread_mutex_unlock");
}

void sn__cond_init(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    or_abort(pthread_condattr_init(&attr), "pthread_condattr_init");
    or_abort(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC), "pthread_condattr_setclock");
    or_abort(pthread_cond_init(c, &attr), "pthread_cond_init");
    pthread_condattr_destroy(&attr);
}

void sn__cond_destroy(pthread_cond_t *c)
{
    or_abort(pthread_cond_destroy(c), "pthread_cond_destroy");
}

void sn__cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    or_abort(pthread_cond_wait(c, m), "pthread_cond_wait");
}

int sn__cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ms)
{
    if (deadline_ms == SN_DEADLINE_NEVER) {
        sn__cond_wait(c, m);
        return 0;
    }
    struct timespec ts = {
        .tv_sec = deadline_ms / 1000,
        .tv_nsec = (deadline_ms % 1000) * 1000000L,
    };
    int rc = pthread_cond_timedwait(c, m, &ts);
    if (rc == ETIMEDOUT)
        return SN_ETIMEDOUT;
    or_abort(rc, "pthread_cond_timedwait");
    return 0;
}

void sn__cond_signal(pthread_cond_t *c)
{
    or_abort(pthread_cond_signal(c), "pthread_cond_signal");
}

void sn__cond_broadcast(pthread_cond_t *c)
{
    or_abort(pthread_cond_broadcast(c), "pthread_cond_broadcast");
}

/* ---- clocks and deadlines ------------------------------------------------- */

/* ---- threads ------------------------------------------------------------- */

static int add_tls(struct dl_phdr_info *info, size_t size, void *sum)
{
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_TLS)
            *(size_t *)sum += info->dlpi_phdr[i].p_memsz + info->dlpi_phdr[i].p_align;
    return 0;
}

static size_t thread_overhead;
static pthread_once_t overhead_once = PTHREAD_ONCE_INIT;

/* Every loaded object's thread-locals (a sanitizer's state among them:
 * ThreadSanitizer's is over 700 KiB), plus 256 KiB for glibc's
 * descriptor, its surplus and what a sanitizer asks beyond its
 * thread-locals (only touched pages cost memory). */
static void measure_overhead(void)
{
    size_t sum = 0;
    dl_iterate_phdr(add_tls, &sum);
    thread_overhead = sum + 256 * 1024;
}

size_t sn__thread_overhead(void)
{
    pthread_once(&overhead_once, measure_overhead);
    return thread_overhead;
}

int64_t sn__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sn_now_ms(void)
{
    return sn__now_ns() / 1000000;
}

sn_deadline sn_deadline_in(int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return SN_DEADLINE_NEVER;
    int64_t now = sn_now_ms();
    if (timeout_ms >= SN_DEADLINE_NEVER - now)
        return SN_DEADLINE_NEVER;
    /* 0 would read as SN_DEADLINE_DEFAULT; the clock is never that early */
    return now + timeout_ms;
}

int64_t sn__deadline_abs(sn_deadline dl, int default_ms)
{
    if (dl != SN_DEADLINE_DEFAULT)
        return dl;
    return sn_deadline_in(default_ms);
}

int sn__poll_timeout(int64_t deadline_ms)
{
    if (deadline_ms == SN_DEADLINE_NEVER)
        return -1;
    int64_t left = deadline_ms - sn_now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * SO_RCVTIMEO for a blocking receive that must end by the deadline. Setting
 * it is a system call, so a value already set is kept while it lies between
 * half the time left and all of it; a new value is three quarters of the
 * time left. Calls that each wait with the default timeout (60 s from their
 * start) thus set it once per socket, and a receive that times out early
 * simply receives again with a fresh value.
 */
int sn__rcvtimeo_until(int fd, int *timeo_ms, int64_t deadline_ms)
{
    int left = sn__poll_timeout(deadline_ms); /* -1: never */
    int want;
    if (left == 0)
        return SN_ETIMEDOUT;
    if (left < 0) {
        if (*timeo_ms == 0)
            return 0;
        want = 0; /* none */
    } else {
        if (*timeo_ms > 0 && *timeo_ms <= left && *timeo_ms >= left / 2)
            return 0;
        want = left - left / 4;
    }
    struct timeval tv = {.tv_sec = want / 1000, .tv_usec = (want % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return -errno;
    *timeo_ms = want;
    return 0;
}

/* ---- descriptors ---------------------------------------------------------- */

int sn__fd_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

int sn__gai_error(int gai_err)
{
    switch (gai_err) {
    case EAI_NONAME:
    case EAI_NODATA:
        return SN_ENONAME;
    case EAI_AGAIN:
        return SN_ERESOLVE_AGAIN;
    case EAI_MEMORY:
        return SN_ENOMEM;
    case EAI_FAMILY:
    case EAI_ADDRFAMILY:
        return SN_EAFNOSUPPORT;
    case EAI_SYSTEM:
        return errno ? -errno : SN_ERESOLVE;
    default:
        return SN_ERESOLVE;
    }
}
