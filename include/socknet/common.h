/* SPDX-License-Identifier: MIT */
/*
 * socknet/common.h: what every socknet header shares: the export macro,
 * version numbers, deadlines and the on/off/default switch.
 */
#ifndef SOCKNET_COMMON_H
#define SOCKNET_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SN_BUILDING)
#define SN_API __attribute__((visibility("default")))
#else
#define SN_API
#endif

#if defined(__GNUC__)
#define SN_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SN_PRINTF(fmt, args)
#endif

#define SN_VERSION_MAJOR 0
#define SN_VERSION_MINOR 1
#define SN_VERSION_PATCH 0
#define SN_VERSION_STRING "0.1.0"

/* The library's version as "MAJOR.MINOR.PATCH" (of the library linked, which
 * may differ from SN_VERSION_STRING of the headers compiled against). */
SN_API const char *sn_version(void);

/*
 * Deadlines.
 *
 * Every call that can wait takes an sn_deadline: an absolute point on the
 * monotonic clock, in milliseconds. One deadline covers the whole operation
 * (a whole line, all N bytes, a whole flush), not each system call, and the
 * same deadline can be passed to several calls to bound a whole exchange:
 *
 *     sn_deadline dl = sn_deadline_in(5000);   // this request: 5 s in all
 *     sn_read_line(c, line, sizeof line, SN_LINE_ANY, dl);
 *     sn_read_exact(c, body, len, dl);
 *
 * Two special values:
 *
 *     SN_DEADLINE_DEFAULT (0)  the object's default timeout applies, counted
 *                              from the start of the call (for a connection,
 *                              its read or write timeout).
 *     SN_DEADLINE_NEVER        wait for as long as it takes.
 *
 * A deadline already in the past still lets a call complete from data that
 * is already buffered; only waiting fails, with SN_ETIMEDOUT.
 */
typedef int64_t sn_deadline;

#define SN_DEADLINE_DEFAULT ((sn_deadline)0)
#define SN_DEADLINE_NEVER ((sn_deadline)INT64_MAX)

/* The monotonic clock, in milliseconds (CLOCK_MONOTONIC). */
SN_API int64_t sn_now_ms(void);

/* A deadline timeout_ms from now. A negative timeout gives SN_DEADLINE_NEVER;
 * 0 gives a deadline that has already passed (poll once, never wait). */
SN_API sn_deadline sn_deadline_in(int64_t timeout_ms);

/* Waits ms milliseconds (0: none; negative: SN_EINVAL). In a handler that
 * runs on a fiber (the server's fiber mode) only that fiber waits and the
 * thread goes on serving the others; a plain sleep(3) or nanosleep(2) there
 * would hold up every fiber of the thread. Elsewhere it sleeps the thread.
 * Returns 0 or SN_EINVAL. */
SN_API int sn_sleep_ms(int64_t ms);

/* Lets the other fibers of the thread run before the caller goes on; on a
 * plain thread it yields the CPU (sched_yield). For a handler that computes
 * for long without doing I/O, in fiber mode. */
SN_API void sn_yield(void);

/* A mutex for code that may run on a fiber (the fiber mode of a server or
 * pool) and holds the lock across a socknet call that waits: I/O with a
 * deadline, sn_hub_publish with SN_HUB_WAIT, sn_sleep_ms. A pthread mutex
 * there can stop a fiber thread for good: its holder parks in the call,
 * another fiber of the same thread blocks the whole thread in
 * pthread_mutex_lock, and the holder never runs again to unlock it.
 * sn_mutex_lock parks a fiber that waits (its thread runs the others
 * meanwhile) and blocks a plain thread; a holder of either kind wakes a
 * waiter of either kind. Waiters take the lock in no promised order. Not
 * recursive: a holder that locks again waits forever.
 *
 * Thread safety: lock, trylock and unlock from any thread or fiber; unlock
 * only by the holder. sn_mutex_free when no one holds it or waits. */
typedef struct sn_mutex sn_mutex;

/* Makes an unlocked mutex: 0, SN_EINVAL (NULL out) or SN_ENOMEM. */
SN_API int sn_mutex_new(sn_mutex **out);
SN_API void sn_mutex_lock(sn_mutex *m);
/* Takes the mutex if it is free: 0, or SN_EBUSY (held; nothing waits). */
SN_API int sn_mutex_trylock(sn_mutex *m);
SN_API void sn_mutex_unlock(sn_mutex *m);
/* NULL is ignored. */
SN_API void sn_mutex_free(sn_mutex *m);

/* Timeouts in configuration structs are in milliseconds: 0 means the
 * documented default, SN_TIMEOUT_NEVER means no timeout at all. */
#define SN_TIMEOUT_NEVER (-1)

/* Switches in configuration structs: 0 keeps the documented default. */
#define SN_DEFAULT 0
#define SN_ON 1
#define SN_OFF (-1)

#ifdef __cplusplus
}
#endif
#endif
