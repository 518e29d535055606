/* SPDX-License-Identifier: MIT */
/*
 * sn_test.h: what every test program shares: the CUnit runner with its
 * leak check and skips, a watchdog, loopback and socketpair helpers.
 *
 * A test program lists its tests and ends with:
 *
 *     static CU_TestInfo tests[] = { {"name", fn}, ..., CU_TEST_INFO_NULL };
 *     int main(void) { return sn_test_main("chan", tests, 60); }
 *
 * The runner checks every test for leaks: the library's live allocations
 * (sn__alloc_live) and the process's open descriptors must be back where
 * they were when the test began, or the test fails with its name and the
 * difference. A test whose environment lacks something calls
 * sn_test_skip: it is reported and counted as skipped, never as passed, and
 * a program whose every test skipped exits 77 (automake's SKIP).
 *
 * SN_TEST_ONLY=TEXT in the environment runs only the tests whose name
 * contains TEXT (for chasing one test in a loop).
 */
#ifndef SN_TEST_H
#define SN_TEST_H

#include <CUnit/CUnit.h>
#include <CUnit/Basic.h>
/* The public API and sn_util.h (SN_ARRAY_SIZE, SN_MIN, the allocation
 * counts of the leak check), which nearly every test uses; a test that
 * reaches further into the library includes that layer's header itself. */
#include "sn_util.h"
#include "socknet.h"

/* Runs the suite under a watchdog of `seconds` (the process prints which
 * test hung and exits 1 if it fires), each test inside the leak check.
 * Returns the process exit status: 0, 1 if a test failed, 77 if every test
 * skipped. */
int sn_test_main(const char *suite, CU_TestInfo *tests, unsigned seconds);

/* A program whose tests need more than sn_test_main gives. */
typedef struct sn_test_program {
    const char *suite;
    CU_TestInfo *tests;
    unsigned seconds; /* the watchdog */
    /* Run as a first test, "(warm-up)", outside the leak check: makes what
     * the program keeps across its tests on purpose (a server every test
     * talks to), before the counts are taken. Its assertions count. */
    void (*warm_up)(void);
    /* Run as a last test, "(cool-down)": frees what warm_up made. The
     * runner then checks that allocations and descriptors are back where
     * they were before the warm-up. */
    void (*cool_down)(void);
    /* Run before each test, outside the leak check (resets test state). */
    void (*before_each)(void);
    /* Run after each test, before its counts are compared: waits until what
     * warm_up keeps has finished with the test (a kept server has closed
     * the test's connections). */
    void (*after_each)(void);
} sn_test_program;

int sn_test_run(const sn_test_program *p);

/* Marks the running test as skipped: its environment lacks something (why
 * says what, a string that lives until the process ends). The test may go
 * on to free what it made; its failed assertions still fail it. */
void sn_test_skip(const char *why);

/* Two connected non-blocking TCP descriptors over 127.0.0.1. 0 or -errno. */
int sn_test_tcp_pair(int *a, int *b);

/* A connected pair of sn_sock over 127.0.0.1 (client side, server side). */
int sn_test_sock_pair(sn_sock **client, sn_sock **server);

/* A blocking write/read of all bytes on a raw descriptor (test peers). */
int sn_test_write_all(int fd, const void *buf, size_t len);
int sn_test_read_all(int fd, void *buf, size_t len, int timeout_ms);

/* Raises RLIMIT_NOFILE's soft limit to at least n (up to the hard limit).
 * Returns the new soft limit. */
long sn_test_raise_nofile(long n);

/* A port on 127.0.0.1 where nothing listens (bound, then closed). */
int sn_test_free_port(void);

/* Sleeps ms milliseconds. */
void sn_test_sleep_ms(int ms);

/* Runs fn(arg) on a thread of its own after ms milliseconds (a cancel or a
 * close from another thread while the test blocks); join it before arg
 * goes away. */
typedef struct sn_test_later sn_test_later;
sn_test_later *sn_test_later_start(int ms, void (*fn)(void *arg), void *arg);
void sn_test_later_join(sn_test_later *l);

/* Descriptors open in this process (for leak checks: compare two counts). */
int sn_test_open_fds(void);

/* The path of a file of the test PKI (tests/gen-pki.sh lists them: "ca.pem",
 * "server-rsa.key", ...), made in the build directory on first use; NULL
 * (with a message) when openssl failed. The strings live until the
 * process ends (256 names at most). */
const char *sn_test_pki(const char *name);

/* Whether valgrind runs the test (its preload library is in the environment). */
bool sn_test_under_valgrind(void);

/* Polls cond every 2 ms until it holds or ms milliseconds have passed. */
#define WAIT_UNTIL(cond, ms)                                                                       \
    do {                                                                                           \
        int64_t wait_dl_ = sn_now_ms() + (ms);                                                     \
        while (!(cond) && sn_now_ms() < wait_dl_)                                                  \
            sn_test_sleep_ms(2);                                                                   \
    } while (0)

/* CU_ASSERT_EQUAL that prints both values as SN_E* names on failure. */
#define SN_ASSERT_RC(expr, want)                                                                   \
    do {                                                                                           \
        long sn_rc_ = (long)(expr), sn_want_ = (long)(want);                                       \
        if (sn_rc_ != sn_want_)                                                                    \
            fprintf(stderr, "%s:%d: %s = %ld (%s), want %ld (%s)\n", __FILE__, __LINE__, #expr,    \
                    sn_rc_, sn_err_name((int)sn_rc_), sn_want_, sn_err_name((int)sn_want_));       \
        CU_ASSERT_EQUAL(sn_rc_, sn_want_);                                                         \
    } while (0)

#endif
