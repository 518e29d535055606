/* SPDX-License-Identifier: MIT */
/*
 * sn_fiber.c: fibers and the per-thread scheduler (internal), the ground of
 * the pool's and the server's fiber mode: each connection's handler runs on
 * a fiber of its own (its own stack, blocking-style code) and a few kernel
 * threads run many fibers. A socknet call that would wait parks the fiber
 * instead of the thread (sn__wait_fd): the scheduler's epoll wakes it when
 * its descriptor is ready or its deadline passes, and meanwhile the thread
 * runs the other fibers. A message then costs a switch in user space rather
 * than a kernel context switch.
 *
 * One scheduler per thread; a fiber never moves between threads. Switching
 * is sn_ctx.h's (a few instructions on x86-64, else swapcontext); the
 * sanitizers are told about every switch (ASan's start/finish_switch_fiber,
 * TSan's fiber calls) and valgrind about every stack, so that all three
 * keep working.
 *
 * Stacks: mmap'd with a guard page below. A finished fiber's stack is kept
 * for the next spawn, with its pages, so a connection costs no mmap and no
 * page fault once the scheduler is warm; but no more than SN_FIBER_CACHE
 * of them per scheduler: a stack beyond that is unmapped, so a spike of
 * connections leaves no more than the cap behind. (Giving a stack's pages
 * back as each fiber finishes, and faulting them in again for the next,
 * cost a third of the connection rate on a 2-CPU VM: bench/RESULTS.md.)
 *
 * Giving memory back after a spike: the scheduler notes the most fibers it
 * has run at once since it last trimmed. When fewer than half of that are
 * left (and at least SN_SCHED_TRIM_MIN fewer) for SN_SCHED_TRIM_DELAY_MS,
 * it trims: the cached stacks give their pages back (madvise
 * MADV_DONTNEED) but for the top page, which the next fiber writes at
 * once, and the allocator its free memory (sn__heap_trim: malloc_trim with
 * glibc, which returns what a spike's TLS sessions and buffers left free
 * in the middle of its arenas; it costs about 0.4 ms per MiB it returns).
 * At most once per SN_SCHED_TRIM_EVERY_MS per scheduler: steady load never
 * trims, a falling one a few times. MADV_DONTNEED rather than MADV_FREE:
 * the pages leave the process's RSS at once, which is what its owner sees
 * and what a container's limit counts, where MADV_FREE leaves them counted
 * until the kernel runs short of memory (6 MiB more after a spike of 3,000
 * TLS connections, measured); a page reused costs a fault either way once
 * the kernel has taken it.
 *
 * Buffers: a connection's empty read and write buffers go back to its
 * thread's scheduler while it waits (sn_chan.c), up to SN_SCHED_BUFS of
 * them, and the next connection to need one takes the one given last: an
 * idle connection holds no buffer, and the busy ones share a few warm ones.
 *
 * Sharing the CPU: to the kernel a busy scheduler thread looks like a
 * thread that never blocks, since its fibers wait in user space. Linux
 * preempts such a thread only at its tick (4 ms at HZ=250), so whatever
 * else wants that CPU (another process, a client on the same machine) waits
 * that long, and the connections it serves see it in their tails. So a
 * thread calls sched_yield between two rounds of its fibers once
 * SN_SCHED_SLICE_NS has passed since its last: the kernel runs whoever
 * waits for the CPU, or returns at once when nobody does (0.3 us per
 * 0.5 ms). It counts from the last yield, not from the last sleep: a
 * thread that sleeps for a few microseconds between messages and runs the
 * rest of the time held the CPU as long. Measured against npm ws and
 * libwebsockets with the load generator on the same 2 CPUs, it took the
 * 99th percentile of a 64-connection WebSocket echo from 8 ms to about
 * 1.4 and that of a 16-connection TCP echo from 4 ms to about 1, at the
 * same rate or a little less (bench/RESULTS.md, issue 20). Spinning
 * before sleeping (epoll_wait with no timeout for 30-100 us) was tried and
 * left out: 1-4 % at 16 connections, 15 % fewer connections a second.
 *
 * Descriptors: the first wait on a descriptor registers it in the epoll set
 * once, edge-triggered for reading and writing, and it stays there until it
 * is closed, so a wait costs no epoll_ctl. The scheduler keeps a slot per
 * descriptor: who waits on it, and the readiness an edge brought while
 * nobody waited (the waiter then goes on without parking). A slot records
 * the fiber that registered it; another fiber's first wait registers it
 * again (one epoll_ctl), so a slot left behind by a descriptor closed on
 * another thread cannot swallow a wait. sn_sock_close forgets the slot
 * (sn__fiber_forget_fd).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <string.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include "sn_ctx.h"
#include "sn_fiber.h"
#include "sn_util.h"
#include "socknet.h"

#define SN_FIBER_STACK_DEFAULT (256 * 1024)
#define SN_FIBER_KEEP 4096          /* bytes at a trimmed stack's top kept in memory */
#define SN_SCHED_TRIM_MIN 16        /* fibers the load must fall by to trim */
#define SN_SCHED_TRIM_DELAY_MS 250  /* and for this long */
#define SN_SCHED_TRIM_EVERY_MS 1000 /* at most one trim this often */
#define SN_FIBER_EVENTS 256
#define SN_SCHED_BUFS 32
#define SN_SCHED_SLICE_NS 500000     /* yield the CPU once per this long of running */
#define SN_INBOX_KEY UINT64_MAX      /* the epoll key of the inbox; others are fds */
#define SN_WATCH_OWNER UINT64_MAX    /* fd_slot.owner of a watched descriptor */
#define SN_WAKE_KEY (UINT64_MAX - 1) /* the wake-up list's eventfd */

/* ---- telling the sanitizers and valgrind about stacks ------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SN_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define SN_TSAN 1
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SN_VALGRIND 1
#endif
#endif

struct sn_fiber {
    sn__ctx ctx;
    sn_sched *sched;
    void (*fn)(void *);
    void *arg;
    char *stack; /* the usable stack (above the guard page) */
    size_t stack_size;
    unsigned vg_id;  /* valgrind's stack id */
    void *tsan;      /* TSan's fiber */
    void *asan_fake; /* ASan's fake stack while switched away */
    void *local;     /* the owner's pointer (sn__fiber_local) */
    uint64_t id;     /* this life of the fiber (structs are reused) */
    bool done;
    bool queued;      /* on the run queue */
    int wait_fd;      /* registered in epoll while parked on it, else -1 */
    short revents;    /* what woke it */
    int64_t deadline; /* ms, while parked; SN_DEADLINE_NEVER */
    size_t heap_idx;  /* in the deadline heap, or SIZE_MAX */
    sn_fiber *next;   /* run queue or a cache list */
    /* sn__fiber_park: the last ticket taken (never reset, so an old one
     * never matches a later park), whether the fiber is parked with it,
     * and whether sn__fiber_unpark ended that park */
    uint64_t ticket;
    bool ticket_parked, unparked, parked_ever;
    /* on its scheduler's wake-up list, under sched->wake_mu */
    bool wake_listed;
    uint64_t wake_ticket;
    sn_fiber *wake_next;
    bool dispatcher; /* runs watches (dispatcher_main) */
};

/* A descriptor as the scheduler knows it (see the top of the file): a
 * reader and a writer may wait on it at once (two fibers). */
struct fd_slot {
    sn_fiber *rd, *wr;           /* parked on it, or NULL */
    uint64_t owner;              /* id of the fiber that registered it; 0 = not registered;
                                    SN_WATCH_OWNER: a watch did, for every fiber */
    uint32_t ready;              /* events seen and not yet used by a wait */
    bool armed;                  /* the watch may fire (its function does not run) */
    bool queued;                 /* on the scheduler's ready-watch queue (kept when forgotten) */
    int wq_next;                 /* the next descriptor on that queue, or -1 */
    void (*watch_fn)(void *arg); /* sn__sched_watch's, or NULL */
    void *watch_arg;
};

struct sn_sched {
    int ep;
    struct fd_slot *fds; /* indexed by descriptor */
    size_t nfds;
    uint64_t next_id;
    sn__ctx main;
    void *main_tsan;
    const void *main_stack; /* ASan: the thread's own stack, for switching back */
    size_t main_stack_size;
    sn_fiber *cur;
    sn_fiber *head, *tail; /* run queue */
    sn_fiber *cache;       /* finished fibers kept for their stacks, newest first */
    size_t ncache;         /* at most SN_FIBER_CACHE */
    size_t nwarm;          /* the first nwarm of them have their pages */
    size_t peak;           /* most fibers live since the last trim */
    int64_t trim_at;       /* when the load fell: trim then; 0 = not falling */
    int64_t trimmed_at;    /* the last trim */
    uint64_t mapped, unmapped, trims;
    sn_fiber **heap; /* parked fibers with a deadline, soonest first */
    size_t nheap, capheap;
    size_t live; /* fibers not finished */
    bool hold;   /* keep running with no fiber left */
    void (*inbox_fn)(void *arg);
    void *inbox_arg;
    /* fibers other threads unparked (sn__fiber_unpark), for this thread to
     * make ready; wake_fd (an eventfd in the epoll set) says there are some */
    pthread_mutex_t wake_mu;
    sn_fiber *wakes;
    int wake_fd;
    void *bufs[SN_SCHED_BUFS]; /* connection buffers of SN_SCHED_BUF_BYTES */
    size_t nbufs;
    /* watches that fired, for the dispatcher fibers, oldest first (fds; -1 =
     * none); dispatchers alive and not parked inside a watch's function */
    int wq_head, wq_tail;
    size_t disp_free;
    /* the dispatcher that waits, parked, for the next watch that fires
     * (one is kept, so that each edge does not start and end a fiber), or
     * NULL; disp_quit tells it to end (nothing else is left to run) */
    sn_fiber *disp_idle;
    bool disp_quit;
    int64_t yielded; /* sn__now_ns: the last sched_yield (share_cpu) */
};

static _Thread_local sn_sched *tl_sched;

#ifdef SN_TSAN
static void *tsan_current(void)
{
    return __tsan_get_current_fiber();
}
static void *tsan_create(void)
{
    return __tsan_create_fiber(0);
}
static void tsan_destroy(void *f)
{
    __tsan_destroy_fiber(f);
}
static void tsan_switch(void *f)
{
    __tsan_switch_to_fiber(f, 0);
}
#else
static void *tsan_current(void)
{
    return NULL;
}
static void *tsan_create(void)
{
    return NULL;
}
static void tsan_destroy(void *f)
{
    (void)f;
}
static void tsan_switch(void *f)
{
    (void)f;
}
#endif

#ifdef SN_VALGRIND
static unsigned vg_register(char *lo, size_t size)
{
    return VALGRIND_STACK_REGISTER(lo, lo + size);
}
static void vg_deregister(unsigned id)
{
    VALGRIND_STACK_DEREGISTER(id);
}
#else
static unsigned vg_register(char *lo, size_t size)
{
    (void)lo, (void)size;
    return 0;
}
static void vg_deregister(unsigned id)
{
    (void)id;
}
#endif

#ifdef SN_ASAN
static void asan_start(void **save, const void *bottom, size_t size)
{
    __sanitizer_start_switch_fiber(save, bottom, size);
}
static void asan_finish(void *save, const void **bottom, size_t *size)
{
    __sanitizer_finish_switch_fiber(save, bottom, size);
}
#else
static void asan_start(void **save, const void *bottom, size_t size)
{
    (void)save, (void)bottom, (void)size;
}
static void asan_finish(void *save, const void **bottom, size_t *size)
{
    (void)save, (void)bottom, (void)size;
}
#endif

/* ---- stacks ------------------------------------------------------------------- */

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static int stack_alloc(sn_fiber *f, size_t size)
{
    size_t page = page_size();
    size = (size + page - 1) / page * page;
    char *p = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return SN_ENOMEM;
    if (mprotect(p, page, PROT_NONE) < 0) { /* the guard page */
        munmap(p, size + page);
        return SN_ENOMEM;
    }
    f->stack = p + page;
    f->stack_size = size;
    f->vg_id = vg_register(f->stack, size);
    return 0;
}

static void fiber_destroy(sn_fiber *f)
{
    vg_deregister(f->vg_id);
    munmap(f->stack - page_size(), f->stack_size + page_size());
    sn__free(f);
}

/* Gives the pages of f's stack back, all but the top SN_FIBER_KEEP bytes
 * (the next fiber's first frames); they read as zeros when touched again.
 * The guard page below is not part of f->stack and keeps its protection. */
static void stack_release(sn_fiber *f)
{
    if (f->stack_size > SN_FIBER_KEEP)
        (void)madvise(f->stack, f->stack_size - SN_FIBER_KEEP, MADV_DONTNEED);
}

/* A finished fiber's stack, kept with its pages while the cache has room,
 * else unmapped. */
static void cache_keep(sn_sched *s, sn_fiber *f)
{
    if (s->ncache == SN_FIBER_CACHE) {
        fiber_destroy(f);
        s->unmapped++;
        return;
    }
    f->next = s->cache;
    s->cache = f;
    s->ncache++;
    s->nwarm++;
}

/* The newest cached fiber if its stack holds `want` bytes, taken off the
 * cache; else NULL. */
static sn_fiber *cache_take(sn_sched *s, size_t want)
{
    sn_fiber *f = s->cache;
    if (f == NULL || f->stack_size < want)
        return NULL;
    s->cache = f->next;
    s->ncache--;
    if (s->nwarm > 0)
        s->nwarm--;
    return f;
}

/* ---- the deadline heap (parked fibers with a deadline, soonest on top) ------------ */

static void heap_set(sn_sched *s, size_t i, sn_fiber *f)
{
    s->heap[i] = f;
    f->heap_idx = i;
}

static void heap_up(sn_sched *s, size_t i)
{
    sn_fiber *f = s->heap[i];
    while (i > 0 && s->heap[(i - 1) / 2]->deadline > f->deadline) {
        heap_set(s, i, s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(s, i, f);
}

static void heap_down(sn_sched *s, size_t i)
{
    sn_fiber *f = s->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->nheap)
            break;
        if (c + 1 < s->nheap && s->heap[c + 1]->deadline < s->heap[c]->deadline)
            c++;
        if (s->heap[c]->deadline >= f->deadline)
            break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, f);
}

static int heap_push(sn_sched *s, sn_fiber *f)
{
    if (s->nheap == s->capheap) {
        size_t cap = s->capheap ? s->capheap * 2 : 64;
        sn_fiber **h = sn__realloc(s->heap, cap * sizeof *h);
        if (h == NULL)
            return SN_ENOMEM;
        s->heap = h;
        s->capheap = cap;
    }
    heap_set(s, s->nheap++, f);
    heap_up(s, s->nheap - 1);
    return 0;
}

static void heap_remove(sn_sched *s, sn_fiber *f)
{
    size_t i = f->heap_idx;
    sn_fiber *last = s->heap[--s->nheap];
    f->heap_idx = SIZE_MAX;
    if (last == f)
        return;
    heap_set(s, i, last);
    heap_down(s, i);
    heap_up(s, last->heap_idx);
}

/* ---- running ---------------------------------------------------------------------- */

static void make_ready(sn_sched *s, sn_fiber *f)
{
    if (f->queued)
        return;
    f->queued = true;
    f->next = NULL;
    if (s->tail != NULL)
        s->tail->next = f;
    else
        s->head = f;
    s->tail = f;
}

static sn_fiber *take_ready(sn_sched *s)
{
    sn_fiber *f = s->head;
    if (f == NULL)
        return NULL;
    s->head = f->next;
    if (s->head == NULL)
        s->tail = NULL;
    f->queued = false;
    return f;
}

/* Every fiber starts here; it switches back to the scheduler for good when
 * its function returns. */
static void fiber_entry(void)
{
    sn_sched *s = tl_sched;
    sn_fiber *f = s->cur;
    asan_finish(NULL, &s->main_stack, &s->main_stack_size);
    f->fn(f->arg);
    f->done = true;
    asan_start(NULL, s->main_stack, s->main_stack_size); /* NULL: this stack is finished */
    tsan_switch(s->main_tsan);
    sn__ctx_switch(&f->ctx, &s->main); /* never resumes */
    abort();
}

/* From the scheduler's loop into f, until f parks or ends. */
static void run_fiber(sn_sched *s, sn_fiber *f)
{
    void *main_fake = NULL;
    s->cur = f;
    asan_start(&main_fake, f->stack, f->stack_size);
    tsan_switch(f->tsan);
    sn__ctx_switch(&s->main, &f->ctx);
    asan_finish(main_fake, NULL, NULL);
    s->cur = NULL;
}

static void dispatchers_enough(sn_sched *s);

/* From the running fiber back to the scheduler; returns when it is resumed. */
static void park(sn_sched *s, sn_fiber *f)
{
    if (f->dispatcher) { /* a watch's function waits: others must not wait behind it */
        s->disp_free--;
        dispatchers_enough(s);
    }
    asan_start(&f->asan_fake, s->main_stack, s->main_stack_size);
    tsan_switch(s->main_tsan);
    sn__ctx_switch(&f->ctx, &s->main);
    asan_finish(f->asan_fake, &s->main_stack, &s->main_stack_size);
    if (f->dispatcher)
        s->disp_free++;
}

/* A finished fiber: its stack is kept for the next spawn, or unmapped. */
static void forget_wake(sn_sched *s, sn_fiber *f);

static void retire(sn_sched *s, sn_fiber *f)
{
    if (f->parked_ever)
        forget_wake(s, f); /* an unpark still on its way is moot */
    tsan_destroy(f->tsan);
    f->tsan = NULL;
    s->live--;
    cache_keep(s, f);
}

/* Not under a sanitizer's allocator: glibc's malloc_trim walks glibc's own
 * arenas, which ASan's and TSan's malloc never set up (a SEGV). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SN_SANITIZER_MALLOC 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SN_SANITIZER_MALLOC 1
#endif

#if defined(__GLIBC__) && !defined(SN_SANITIZER_MALLOC)
void sn__heap_trim(void)
{
    malloc_trim(0);
}
#else
void sn__heap_trim(void) {}
#endif

/* The load fell: fewer than half the fibers of the peak are left. */
static bool load_fell(const sn_sched *s)
{
    return s->peak >= 2 * s->live + SN_SCHED_TRIM_MIN;
}

/* After a spike: the cached stacks give their pages back (those that have
 * not since the last trim), and the allocator its free memory. */
static void trim(sn_sched *s, int64_t now)
{
    sn_fiber *f = s->cache;
    for (; s->nwarm > 0; s->nwarm--, f = f->next)
        stack_release(f);
    sn__heap_trim();
    s->peak = s->live;
    s->trim_at = 0;
    s->trimmed_at = now;
    s->trims++;
}

/* Called before the loop waits: trims when the load has stayed fallen long
 * enough, and shortens the wait's timeout (ms, -1 = none) to the time the
 * trim is due. */
static int trim_when_due(sn_sched *s, int timeout)
{
    if (!load_fell(s)) {
        s->trim_at = 0;
        return timeout;
    }
    int64_t now = sn_now_ms();
    if (s->trim_at == 0)
        s->trim_at = SN_MAX(now + SN_SCHED_TRIM_DELAY_MS, s->trimmed_at + SN_SCHED_TRIM_EVERY_MS);
    if (now >= s->trim_at) {
        trim(s, now);
        return timeout;
    }
    int due = (int)(s->trim_at - now);
    return timeout < 0 || due < timeout ? due : timeout;
}

int sn__sched_new(sn_sched **out)
{
    if (tl_sched != NULL)
        return SN_EBADSTATE; /* one scheduler per thread */
    sn_sched *s = sn__calloc(1, sizeof *s);
    if (s == NULL)
        return SN_ENOMEM;
    s->wq_head = s->wq_tail = -1;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->ep < 0) {
        int rc = -errno;
        sn__free(s);
        return rc;
    }
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = SN_WAKE_KEY};
    if (s->wake_fd < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0) {
        int rc = -errno;
        if (s->wake_fd >= 0)
            close(s->wake_fd);
        close(s->ep);
        sn__free(s);
        return rc;
    }
    sn__mutex_init(&s->wake_mu);
    s->main_tsan = tsan_current();
    s->next_id = 1;
    tl_sched = s;
    *out = s;
    return 0;
}

void sn__sched_free(sn_sched *s)
{
    if (s == NULL)
        return;
    sn_fiber *f;
    while ((f = cache_take(s, 0)) != NULL)
        fiber_destroy(f);
    while (s->nbufs > 0)
        sn__free(s->bufs[--s->nbufs]);
    sn__free(s->heap);
    sn__free(s->fds);
    close(s->wake_fd);
    sn__mutex_destroy(&s->wake_mu);
    close(s->ep);
    if (tl_sched == s)
        tl_sched = NULL;
    sn__free(s);
}

int sn__fiber_spawn(sn_sched *s, void (*fn)(void *), void *arg, size_t stack_size)
{
    size_t want = stack_size ? stack_size : SN_FIBER_STACK_DEFAULT;
    sn_fiber *f = cache_take(s, want);
    if (f == NULL) {
        if ((f = sn__calloc(1, sizeof *f)) == NULL)
            return SN_ENOMEM;
        int rc = stack_alloc(f, want);
        if (rc < 0) {
            sn__free(f);
            return rc;
        }
        s->mapped++;
    }
    sn__ctx_make(&f->ctx, f->stack, f->stack_size, fiber_entry);
    f->sched = s;
    f->fn = fn;
    f->arg = arg;
    f->done = false;
    f->asan_fake = NULL;
    f->local = NULL;
    f->id = s->next_id++;
    f->tsan = tsan_create();
    f->heap_idx = SIZE_MAX;
    f->revents = 0;
    f->parked_ever = false;
    if (++s->live > s->peak)
        s->peak = s->live;
    make_ready(s, f);
    return 0;
}

sn_fiber *sn__fiber_self(void)
{
    return tl_sched != NULL ? tl_sched->cur : NULL;
}

sn_sched *sn__sched_self(void)
{
    return tl_sched;
}

/* Bytes of the pages in [p, p + len) that are in memory. */
static size_t resident(char *p, size_t len)
{
    size_t page = page_size(), n = (len + page - 1) / page, bytes = 0;
    unsigned char vec[256];
    for (size_t i = 0; i < n; i += sizeof vec) {
        size_t k = SN_MIN(sizeof vec, n - i);
        if (mincore(p + i * page, SN_MIN(k * page, len - i * page), vec) < 0)
            return 0;
        for (size_t j = 0; j < k; j++)
            bytes += (vec[j] & 1) * page;
    }
    return bytes;
}

void sn__sched_mem_get(const sn_sched *s, sn__sched_mem *out)
{
    *out = (sn__sched_mem){.cached = s->ncache,
                           .cached_warm = s->nwarm,
                           .mapped = s->mapped,
                           .unmapped = s->unmapped,
                           .trims = s->trims};
    for (const sn_fiber *f = s->cache; f != NULL; f = f->next)
        out->resident += resident(f->stack, f->stack_size);
}

size_t sn__fiber_stack_touched(const sn_fiber *f)
{
    const char *p = f->stack, *top = f->stack + f->stack_size;
    while (p < top && *p == 0)
        p++;
    return (size_t)(top - p);
}

void *sn__sched_buf_take(size_t size)
{
    sn_sched *s = tl_sched;
    if (s == NULL || size != SN_SCHED_BUF_BYTES || s->nbufs == 0)
        return NULL;
    return s->bufs[--s->nbufs];
}

bool sn__sched_buf_give(void *p, size_t size)
{
    sn_sched *s = tl_sched;
    if (s == NULL || size != SN_SCHED_BUF_BYTES || s->nbufs == SN_SCHED_BUFS)
        return false;
    s->bufs[s->nbufs++] = p;
    return true;
}

void *sn__fiber_local(const sn_fiber *f)
{
    return f->local;
}

void sn__fiber_set_local(sn_fiber *f, void *p)
{
    f->local = p;
}

/* ---- parking with a ticket (sn_wait.c's lock and condition variable) ---------------- */

/* On the fiber's own thread: ends its park if it is still the one the
 * ticket is for. */
static void unpark_here(sn_sched *s, sn_fiber *f, uint64_t ticket)
{
    if (!f->ticket_parked || f->ticket != ticket || f->unparked)
        return;
    f->unparked = true;
    make_ready(s, f);
}

/* The wake-up list, taken whole: another thread unparked these. */
static void take_wakes(sn_sched *s)
{
    uint64_t n;
    (void)!read(s->wake_fd, &n, sizeof n); /* before the list: a later push writes again */
    sn__mutex_lock(&s->wake_mu);
    sn_fiber *f = s->wakes;
    s->wakes = NULL;
    while (f != NULL) {
        sn_fiber *next = f->wake_next;
        f->wake_listed = false;
        unpark_here(s, f, f->wake_ticket);
        f = next;
    }
    sn__mutex_unlock(&s->wake_mu);
}

/* A finished fiber leaves the wake-up list. */
static void forget_wake(sn_sched *s, sn_fiber *f)
{
    sn__mutex_lock(&s->wake_mu);
    for (sn_fiber **p = &s->wakes; f->wake_listed && *p != NULL; p = &(*p)->wake_next) {
        if (*p == f) {
            *p = f->wake_next;
            f->wake_listed = false;
        }
    }
    sn__mutex_unlock(&s->wake_mu);
}

uint64_t sn__fiber_park_ticket(void)
{
    return ++tl_sched->cur->ticket;
}

void sn__fiber_unpark(sn_fiber *f, uint64_t ticket)
{
    sn_sched *s = f->sched;
    if (s == tl_sched) {
        unpark_here(s, f, ticket);
        return;
    }
    sn__mutex_lock(&s->wake_mu);
    bool first = s->wakes == NULL;
    f->wake_ticket = ticket;
    if (!f->wake_listed) {
        f->wake_listed = true;
        f->wake_next = s->wakes;
        s->wakes = f;
    }
    sn__mutex_unlock(&s->wake_mu);
    if (first) { /* else a write is on its way, and take_wakes reads it first */
        uint64_t one = 1;
        (void)!write(s->wake_fd, &one, sizeof one);
    }
}

/* Fibers whose deadline has come are made ready (their wait times out). */
static void expire(sn_sched *s)
{
    int64_t now = sn_now_ms();
    while (s->nheap > 0 && s->heap[0]->deadline <= now) {
        sn_fiber *f = s->heap[0];
        heap_remove(s, f);
        make_ready(s, f);
    }
}

int sn__sched_set_inbox(sn_sched *s, int fd, void (*fn)(void *arg), void *arg)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = SN_INBOX_KEY};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    s->inbox_fn = fn;
    s->inbox_arg = arg;
    return 0;
}

void sn__sched_hold(sn_sched *s, bool hold)
{
    s->hold = hold;
}

#define SN_EV_RD (EPOLLIN | EPOLLRDHUP)
#define SN_EV_BAD (EPOLLERR | EPOLLHUP)

/* Makes the fiber parked in *w ready, if any. */
static void wake_waiter(sn_sched *s, sn_fiber **w, uint32_t events)
{
    sn_fiber *f = *w;
    if (f == NULL)
        return;
    *w = NULL;
    f->revents = (short)events;
    make_ready(s, f);
}

/* What a wait consumes of the edges kept in slot->ready. EPOLLRDHUP (and
 * SN_EV_BAD) are never consumed: the peer's end is for good, and it may come
 * in the same edge as the last data, which a receive returns without the
 * end; a reader that then waits before it receives again (a short receive
 * left the socket drained, as far as it can tell) must not wait for an edge
 * that has already come. */
#define SN_EV_CONSUMED (EPOLLIN | EPOLLOUT)

/* Clears a slot but for its place on the watch queue, which stays linked
 * (a slot forgotten or watched anew while queued is skipped or run when
 * the dispatcher comes to it). */
static void slot_reset(struct fd_slot *slot)
{
    bool queued = slot->queued;
    int next = slot->wq_next;
    memset(slot, 0, sizeof *slot);
    slot->queued = queued;
    slot->wq_next = next;
}

/* The next watch that fired, or -1. */
static int wq_take(sn_sched *s)
{
    int fd = s->wq_head;
    if (fd >= 0) {
        struct fd_slot *slot = &s->fds[fd];
        s->wq_head = slot->wq_next;
        if (s->wq_head < 0)
            s->wq_tail = -1;
        slot->queued = false;
        slot->wq_next = -1;
    }
    return fd;
}

/* A dispatcher fiber: runs the functions of the watches that fired, one
 * after another, until none is left. A scheduler keeps as few of them as
 * the functions let it: one, and another whenever all are parked inside a
 * function (a watch's function that waits holds up only its own socket),
 * so a batch of 256 edges starts one fiber, not 256. */
static void dispatcher_main(void *arg)
{
    sn_sched *s = arg;
    sn_fiber *f = s->cur;
    f->dispatcher = true;
    for (;;) {
        int fd;
        while ((fd = wq_take(s)) >= 0) {
            struct fd_slot *slot = &s->fds[fd];
            if (slot->watch_fn == NULL)
                continue; /* unwatched or closed while it waited */
            f->local = NULL;
            slot->watch_fn(slot->watch_arg);
        }
        if (s->disp_idle != NULL)
            break; /* one waits already */
        /* the queue is empty: wait for the next edge, still counted free
         * (not parked inside a function) */
        s->disp_idle = f;
        f->dispatcher = false;
        park(s, f);
        f->dispatcher = true;
        if (s->disp_quit) {
            s->disp_quit = false;
            if (s->wq_head < 0)
                break;
        }
    }
    f->dispatcher = false;
    s->disp_free--;
}

/* Starts a dispatcher when watches wait and every dispatcher alive is
 * parked inside a function. A failed spawn leaves them queued for the next
 * dispatcher that comes free. */
static void dispatchers_enough(sn_sched *s)
{
    if (s->wq_head < 0)
        return;
    if (s->disp_idle != NULL) { /* the waiting dispatcher takes them */
        make_ready(s, s->disp_idle);
        s->disp_idle = NULL;
    } else if (s->disp_free == 0 && sn__fiber_spawn(s, dispatcher_main, s, 0) == 0) {
        s->disp_free++;
    }
}

/* Nothing but the waiting dispatcher is left: it ends, so that the
 * scheduler can (a pool's stop waits for that). */
static void dispatcher_quit(sn_sched *s)
{
    s->disp_quit = true;
    make_ready(s, s->disp_idle);
    s->disp_idle = NULL;
}

/* A watched descriptor that is armed, readable (or failed) and has no
 * reader parked: it goes on the queue for the dispatchers, and the
 * readable edge is its function's to use. */
static void watch_fire(sn_sched *s, struct fd_slot *slot)
{
    if (!slot->armed || slot->rd != NULL || !(slot->ready & (SN_EV_RD | SN_EV_BAD)))
        return;
    slot->armed = false;
    slot->ready &= ~(SN_EV_RD & SN_EV_CONSUMED);
    if (!slot->queued) {
        int fd = (int)(slot - s->fds);
        slot->queued = true;
        slot->wq_next = -1;
        if (s->wq_tail >= 0)
            s->fds[s->wq_tail].wq_next = fd;
        else
            s->wq_head = fd;
        s->wq_tail = fd;
    }
    dispatchers_enough(s);
}

/* An edge on a registered descriptor: wakes the waiters it is for, keeps
 * the rest for the next wait, and queues a watch it fires. */
static void fd_event(sn_sched *s, struct fd_slot *slot, uint32_t events)
{
    slot->ready |= events;
    if (slot->rd != NULL && (events & (SN_EV_RD | SN_EV_BAD))) {
        slot->ready &= ~(SN_EV_RD & SN_EV_CONSUMED);
        wake_waiter(s, &slot->rd, events);
    }
    if (slot->wr != NULL && (events & (EPOLLOUT | SN_EV_BAD))) {
        slot->ready &= ~EPOLLOUT;
        wake_waiter(s, &slot->wr, events);
    }
    watch_fire(s, slot);
}

/* Starts loading the part of a parked fiber's stack that it touches first
 * when it resumes: the switch's saved registers and the frames it returns
 * through. Called for the next ready fiber while the current one runs, so
 * that with many connections the resume does not wait on memory. */
#define SN_FIBER_PREFETCH 1024 /* bytes above the saved stack pointer */
static void prefetch_stack(const sn_fiber *f)
{
    const char *sp = f->ctx.sp; /* NULL with ucontext switching */
    if (sp == NULL)
        return;
    for (size_t off = 0; off < SN_FIBER_PREFETCH; off += 64)
        __builtin_prefetch(sp + off, 1);
}

/* Yields the CPU to whoever waits for it once a slice has passed since
 * the last yield (see the top of the file). */
static void share_cpu(sn_sched *s)
{
    if (sn__now_ns() - s->yielded < SN_SCHED_SLICE_NS)
        return;
    sched_yield();
    s->yielded = sn__now_ns();
}

void sn__sched_run(sn_sched *s)
{
    struct epoll_event evs[SN_FIBER_EVENTS];
    s->yielded = sn__now_ns();
    while (s->live > 0 || s->hold) {
        sn_fiber *f;
        while ((f = take_ready(s)) != NULL) {
            if (s->head != NULL)
                prefetch_stack(s->head);
            run_fiber(s, f);
            if (f->done)
                retire(s, f);
        }
        if (s->disp_idle != NULL && s->live == 1 && !s->hold) {
            dispatcher_quit(s);
            continue;
        }
        if (s->live == 0 && !s->hold)
            break;
        share_cpu(s);
        int timeout = s->nheap > 0 ? sn__poll_timeout(s->heap[0]->deadline) : -1;
        timeout = trim_when_due(s, timeout);
        int n = epoll_wait(s->ep, evs, SN_FIBER_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == SN_INBOX_KEY)
                s->inbox_fn(s->inbox_arg);
            else if (evs[i].data.u64 == SN_WAKE_KEY)
                take_wakes(s);
            else
                fd_event(s, &s->fds[evs[i].data.u64], evs[i].events);
        }
        expire(s);
    }
}

/* Parks the calling fiber until the deadline (or a wake-up), with f->revents
 * telling which. */
static int park_until(sn_sched *s, sn_fiber *f, int64_t deadline)
{
    f->revents = 0;
    f->deadline = deadline;
    if (deadline != SN_DEADLINE_NEVER) {
        int rc = heap_push(s, f);
        if (rc < 0)
            return rc;
    }
    park(s, f);
    if (f->heap_idx != SIZE_MAX)
        heap_remove(s, f);
    return 0;
}

int sn__fiber_sleep_until(int64_t deadline)
{
    sn_sched *s = tl_sched;
    sn_fiber *f = s->cur;
    if (deadline == SN_DEADLINE_NEVER)
        return SN_EINVAL; /* nothing would wake it */
    return park_until(s, f, deadline);
}

int sn__fiber_park(int64_t deadline)
{
    sn_sched *s = tl_sched;
    sn_fiber *f = s->cur;
    f->unparked = false;
    f->ticket_parked = true;
    f->parked_ever = true;
    int rc = park_until(s, f, deadline);
    f->ticket_parked = false;
    if (rc < 0)
        return rc;
    return f->unparked ? 0 : SN_ETIMEDOUT;
}

void sn__fiber_yield(void)
{
    sn_sched *s = tl_sched;
    make_ready(s, s->cur);
    park(s, s->cur);
}

/* The slot of fd, growing the table as needed; NULL when out of memory. */
static struct fd_slot *fd_slot(sn_sched *s, int fd)
{
    if ((size_t)fd >= s->nfds) {
        size_t n = s->nfds ? s->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct fd_slot *t = sn__realloc(s->fds, n * sizeof *t);
        if (t == NULL)
            return NULL;
        memset(t + s->nfds, 0, (n - s->nfds) * sizeof *t);
        s->fds = t;
        s->nfds = n;
    }
    return &s->fds[fd];
}

/* Puts fd in the epoll set for good, edge-triggered (ev); the kernel
 * reports at once what is ready already. A registration left by another
 * fiber is replaced (EPOLLEXCLUSIVE cannot be modified, only added). */
static int fd_register(sn_sched *s, int fd, uint32_t ev)
{
    struct epoll_event e = {.events = ev | EPOLLET, .data.u64 = (uint64_t)fd};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) == 0)
        return 0;
    if (errno == EEXIST && epoll_ctl(s->ep, EPOLL_CTL_DEL, fd, NULL) == 0 &&
        epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) == 0)
        return 0;
    return -errno;
}

/* Parks the calling fiber until fd has one of `events` (POLLIN, POLLOUT),
 * registering fd with reg_events first if this fiber has not yet. */
static int wait_fd(int fd, short events, int64_t deadline, uint32_t reg_events)
{
    sn_sched *s = tl_sched;
    sn_fiber *f = s->cur;
    if (fd < 0)
        return SN_EBADF;
    if (sn__poll_timeout(deadline) == 0)
        return SN_ETIMEDOUT;
    struct fd_slot *slot = fd_slot(s, fd);
    if (slot == NULL)
        return SN_ENOMEM;
    if (slot->owner != f->id && slot->owner != SN_WATCH_OWNER) {
        int rc = fd_register(s, fd, reg_events);
        if (rc < 0)
            return rc;
        slot->owner = f->id;
        slot->ready = 0;
    }
    uint32_t want = (events & POLLIN ? SN_EV_RD : 0) | (events & POLLOUT ? EPOLLOUT : 0);
    if (slot->ready & (want | SN_EV_BAD)) { /* an edge came meanwhile */
        slot->ready &= ~(want & SN_EV_CONSUMED);
        return 0;
    }
    if (want & SN_EV_RD)
        slot->rd = f;
    if (want & EPOLLOUT)
        slot->wr = f;
    int rc = park_until(s, f, deadline);
    slot = &s->fds[fd]; /* the table may have moved */
    if (slot->rd == f)  /* woken by the other direction or the deadline */
        slot->rd = NULL;
    if (slot->wr == f)
        slot->wr = NULL;
    if (f->revents != 0)
        return rc;
    return rc < 0 ? rc : SN_ETIMEDOUT;
}

int sn__fiber_wait_fd(int fd, short events, int64_t deadline)
{
    return wait_fd(fd, events, deadline, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
}

int sn__fiber_wait_accept(int fd, int64_t deadline)
{
    return wait_fd(fd, POLLIN, deadline, EPOLLIN | EPOLLEXCLUSIVE);
}

int sn__sched_watch(int fd, void (*fn)(void *arg), void *arg)
{
    sn_sched *s = tl_sched;
    if (s == NULL || fd < 0 || fn == NULL)
        return SN_EINVAL;
    struct fd_slot *slot = fd_slot(s, fd);
    if (slot == NULL)
        return SN_ENOMEM;
    if (slot->rd != NULL || slot->wr != NULL)
        return SN_EBUSY; /* a fiber waits on it: its registration is its own */
    int rc = fd_register(s, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
    if (rc < 0)
        return rc;
    /* the registration reports what is ready already, as an edge */
    slot_reset(slot);
    slot->owner = SN_WATCH_OWNER;
    slot->armed = true;
    slot->watch_fn = fn;
    slot->watch_arg = arg;
    return 0;
}

void sn__sched_rearm(int fd)
{
    sn_sched *s = tl_sched;
    if (s == NULL || fd < 0 || (size_t)fd >= s->nfds || s->fds[fd].watch_fn == NULL)
        return;
    s->fds[fd].armed = true;
    watch_fire(s, &s->fds[fd]); /* an edge that came while its function ran */
}

void sn__sched_kick(int fd)
{
    sn_sched *s = tl_sched;
    if (s == NULL || fd < 0 || (size_t)fd >= s->nfds || s->fds[fd].watch_fn == NULL)
        return;
    s->fds[fd].ready |= EPOLLIN; /* as if an edge came: now, or at the re-arm */
    watch_fire(s, &s->fds[fd]);
}

void sn__sched_unwatch(int fd)
{
    sn_sched *s = tl_sched;
    if (s == NULL || fd < 0 || (size_t)fd >= s->nfds || s->fds[fd].watch_fn == NULL)
        return;
    struct fd_slot *slot = &s->fds[fd];
    epoll_ctl(s->ep, EPOLL_CTL_DEL, fd, NULL);
    slot->watch_fn = NULL;
    slot->watch_arg = NULL;
    slot->armed = false;
    slot->owner = 0; /* a later wait registers it again */
    slot->ready = 0;
}

void sn__fiber_forget_fd(int fd)
{
    sn_sched *s = tl_sched;
    if (s == NULL || fd < 0 || (size_t)fd >= s->nfds)
        return;
    struct fd_slot *slot = &s->fds[fd];
    /* closed under a waiting fiber: it must not sleep on */
    wake_waiter(s, &slot->rd, EPOLLERR);
    wake_waiter(s, &slot->wr, EPOLLERR);
    slot_reset(slot);
}
