/* SPDX-License-Identifier: MIT */
/*
 * sn_fiber.h: fibers and the per-thread scheduler (internal; rank 1,
 * sn_fiber.c). One scheduler per thread, made and run on that thread;
 * fibers never move. sn__fiber_wait_fd and the sleeps park the calling
 * fiber (a reader and a writer per descriptor per scheduler); they must be
 * called on a fiber. The other files wait through sn_wait.h, which asks
 * this when the caller is on a fiber.
 */
#ifndef SN_FIBER_H
#define SN_FIBER_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sn_sched sn_sched;
typedef struct sn_fiber sn_fiber;
int sn__sched_new(sn_sched **out);
void sn__sched_free(sn_sched *s);
/* Runs fibers until none is left and no hold is on. */
void sn__sched_run(sn_sched *s);
/* With a hold on, sn__sched_run goes on waiting when no fiber is left. */
void sn__sched_hold(sn_sched *s, bool hold);
/* fn(arg) runs on the scheduler (not on a fiber) whenever fd is readable;
 * it must make fd unreadable again (an eventfd: read it). */
int sn__sched_set_inbox(sn_sched *s, int fd, void (*fn)(void *arg), void *arg);
/* The calling thread's scheduler, or NULL. */
sn_sched *sn__sched_self(void);
/* Connection buffers of SN_SCHED_BUF_BYTES (a default-sized read or write
 * buffer and its spare byte) that connections on a scheduler's thread hand
 * back while they wait, for the thread's other connections to reuse. take
 * gives one of size bytes, or NULL (none kept, another size, or not a
 * scheduler's thread); give keeps p, or returns false for the caller to
 * free it. */
#define SN_CONN_BUF_DEFAULT 4096 /* a connection's read and write buffers */
#define SN_SCHED_BUF_BYTES (SN_CONN_BUF_DEFAULT + 1)
void *sn__sched_buf_take(size_t size);
bool sn__sched_buf_give(void *p, size_t size);
/* A pointer of the fiber's owner, NULL at first. */
void *sn__fiber_local(const sn_fiber *f);
void sn__fiber_set_local(sn_fiber *f, void *p);
/* A new fiber running fn(arg), ready to run; stack_size 0 = 256 KiB. */
int sn__fiber_spawn(sn_sched *s, void (*fn)(void *), void *arg, size_t stack_size);
/* The calling fiber, or NULL on a plain thread. */
sn_fiber *sn__fiber_self(void);
/* Tests: how far below its top f's stack has ever been written (the lowest
 * non-zero byte), in bytes. Meaningful for a stack the fiber got fresh or
 * after a trim gave its pages back (a reused one otherwise remembers its
 * earlier fibers), and not under valgrind, which calls the bytes below the
 * stack pointer undefined. */
size_t sn__fiber_stack_touched(const sn_fiber *f);
/* Finished fibers a scheduler keeps for their stacks, at most (the top of
 * sn_fiber.c says which keep their pages); stacks beyond are unmapped. */
#define SN_FIBER_CACHE 64
/* Tests and benchmarks: what a scheduler keeps of finished fibers. */
typedef struct sn__sched_mem {
    size_t cached;             /* finished fibers kept for their stacks */
    size_t cached_warm;        /* of them, those that kept their pages */
    size_t resident;           /* bytes of the cached stacks in memory */
    uint64_t mapped, unmapped; /* stacks mapped and unmapped so far */
    uint64_t trims;            /* trims after the load fell */
} sn__sched_mem;
void sn__sched_mem_get(const sn_sched *s, sn__sched_mem *out);
/* Gives the allocator's free memory back to the system: malloc_trim(0)
 * with glibc, else nothing. It walks every arena and returns the free pages
 * range by range: about 0.4 ms per MiB returned (130 ms after a spike of
 * 3,000 TLS connections), so call it when the load has fallen, not on
 * every idle. */
void sn__heap_trim(void);
void sn__fiber_yield(void);
int sn__fiber_sleep_until(int64_t deadline_ms);
/* Parking for sn_wait.c's lock and condition variable: the calling fiber
 * takes a ticket for its next park, publishes it (with itself) where a
 * waker finds it, then parks until sn__fiber_unpark with that ticket (0)
 * or the deadline (SN_ETIMEDOUT). sn__fiber_unpark may be called from any
 * thread, before the park too: it takes effect once the fiber is parked.
 * An old ticket (the fiber went on meanwhile) wakes nothing. The caller of
 * sn__fiber_unpark must keep the fiber from finishing until it returns
 * (sn_wait.c holds the queue lock that the waiter takes to leave). */
uint64_t sn__fiber_park_ticket(void);
int sn__fiber_park(int64_t deadline_ms);
void sn__fiber_unpark(sn_fiber *f, uint64_t ticket);
/* Like sn__wait_fd (sn_wait.h), parking the fiber instead of blocking the
 * thread. */
int sn__fiber_wait_fd(int fd, short events, int64_t deadline_ms);
/* Waits for a listener to have a connection pending. Each scheduler whose
 * fiber waits on the same listener is woken alone (EPOLLEXCLUSIVE), so a
 * connection wakes one thread, not all; shutdown(2) of the listener wakes
 * them all. */
int sn__fiber_wait_accept(int fd, int64_t deadline_ms);
/* Called before fd is closed: the calling thread's scheduler (if any) drops
 * what it knows of fd, and a fiber parked on it wakes. */
void sn__fiber_forget_fd(int fd);
/* A watch, the poller of the event model in fiber mode: once fd is
 * readable (or has failed, or its peer closed) and no fiber waits to read
 * it, the calling thread's scheduler runs fn(arg) on one of its dispatcher
 * fibers (a few per scheduler, another only when all are parked inside a
 * function), and not again until sn__sched_rearm(fd): one at a time, never
 * lost (an edge that comes while fn runs makes the re-arm queue it again).
 * An idle watched descriptor costs its slot, no fiber and no stack. fn
 * should read until the kernel has nothing more (edges are not repeated);
 * it may also wait on fd like any fiber. Called on the scheduler's thread
 * (a fiber of it, or its inbox): 0, SN_EINVAL (no scheduler, fd < 0, fn
 * NULL), SN_EBUSY (a fiber waits on fd), SN_ENOMEM, or epoll's -errno.
 * sn__sched_unwatch ends it (closing fd does too). */
int sn__sched_watch(int fd, void (*fn)(void *arg), void *arg);
void sn__sched_rearm(int fd);
/* Runs fd's watch as if an edge had come: at once when it is armed, else at
 * its re-arm (for a timer of the watch's owner, or a function that stops
 * before the kernel has nothing more, to let the others run). */
void sn__sched_kick(int fd);
void sn__sched_unwatch(int fd);

#endif
