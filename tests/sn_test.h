/* SPDX-License-Identifier: MIT */
/*
 * sn_test.h: what every test program shares: a watchdog, loopback and
 * socketpair helpers, and the CUnit runner.
 *
 * A test program lists its tests and ends with:
 *
 *     static CU_TestInfo tests[] = { {"name", fn}, ..., CU_TEST_INFO_NULL };
 *     int main(void) { return sn_test_main("chan", tests, 60); }
 *
 * SN_TEST_ONLY=TEXT in the environment runs only the tests whose name
 * contains TEXT (for chasing one test in a loop).
 */
#ifndef SN_TEST_H
#define SN_TEST_H

#include <CUnit/CUnit.h>
#include <CUnit/Basic.h>
#include "sn_int.h"

/* Runs the suite under a watchdog of `seconds` (the process prints which
 * test hung and exits 1 if it fires). Returns the process exit status. */
int sn_test_main(const char *suite, CU_TestInfo *tests, unsigned seconds);

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

/* Leak checks around a test: sn_test_leaks_begin records the descriptors
 * open and the library's live allocations; sn_test_leaks_end asserts both
 * are back where they were (and prints the descriptor counts if not). */
void sn_test_leaks_begin(void);
void sn_test_leaks_end(void);

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
