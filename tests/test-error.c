/* SPDX-License-Identifier: MIT */
/* test-error.c: the error list, its messages and names. */
#include <string.h>
#include "sn_test.h"

static void test_system_codes_are_negative_errno(void)
{
    CU_ASSERT_EQUAL(SN_ECONNRESET, -ECONNRESET);
    CU_ASSERT_EQUAL(SN_ETIMEDOUT, -ETIMEDOUT);
    CU_ASSERT_EQUAL(SN_EAGAIN, -EAGAIN);
    CU_ASSERT_EQUAL(SN_EMFILE, -EMFILE);
}

static void test_library_codes_are_below_1000(void)
{
    CU_ASSERT_EQUAL(SN_EOF, -1000);
#define XX(name, value, msg) CU_ASSERT(SN_##name <= -1000);
    SN_LIB_ERRNO_MAP(XX)
#undef XX
}

static void test_every_code_has_a_distinct_name_and_message(void)
{
    static const int codes[] = {
#define XX_SYS(name, msg) SN_##name,
#define XX_LIB(name, value, msg) SN_##name,
        SN_SYS_ERRNO_MAP(XX_SYS) SN_LIB_ERRNO_MAP(XX_LIB)
#undef XX_SYS
#undef XX_LIB
    };
    size_t n = SN_ARRAY_SIZE(codes);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_STRING_NOT_EQUAL(sn_err_name(codes[i]), "UNKNOWN");
        CU_ASSERT_STRING_NOT_EQUAL(sn_strerror(codes[i]), "unknown error");
        for (size_t j = i + 1; j < n; j++) {
            CU_ASSERT_NOT_EQUAL(codes[i], codes[j]);
            CU_ASSERT_STRING_NOT_EQUAL(sn_err_name(codes[i]), sn_err_name(codes[j]));
        }
    }
}

static void test_names_and_messages(void)
{
    CU_ASSERT_STRING_EQUAL(sn_err_name(SN_ECONNRESET), "ECONNRESET");
    CU_ASSERT_STRING_EQUAL(sn_err_name(SN_EOF), "EOF");
    CU_ASSERT_STRING_EQUAL(sn_strerror(SN_EOF), "end of stream");
    CU_ASSERT_STRING_EQUAL(sn_strerror(0), "success");
    CU_ASSERT_STRING_EQUAL(sn_err_name(12345), "UNKNOWN");
    CU_ASSERT_STRING_EQUAL(sn_strerror(-99999), "unknown error");
    /* an errno outside the list still gets the C library's message */
    CU_ASSERT_STRING_EQUAL(sn_strerror(-EDOM), strerrordesc_np(EDOM));
}

static void test_version(void)
{
    CU_ASSERT_STRING_EQUAL(sn_version(), SN_VERSION_STRING);
}

static void test_deadlines(void)
{
    int64_t now = sn_now_ms();
    sn_deadline d = sn_deadline_in(1000);
    CU_ASSERT(d >= now + 1000 && d <= sn_now_ms() + 1000);
    CU_ASSERT_EQUAL(sn_deadline_in(-1), SN_DEADLINE_NEVER);
    CU_ASSERT_EQUAL(sn_deadline_in(INT64_MAX), SN_DEADLINE_NEVER);
    CU_ASSERT_EQUAL(sn__deadline_abs(SN_DEADLINE_DEFAULT, -1), SN_DEADLINE_NEVER);
    CU_ASSERT_EQUAL(sn__deadline_abs(d, 5), d);
    CU_ASSERT_EQUAL(sn__poll_timeout(SN_DEADLINE_NEVER), -1);
    CU_ASSERT_EQUAL(sn__poll_timeout(now - 10), 0);
    int t = sn__poll_timeout(sn_now_ms() + 500);
    CU_ASSERT(t > 400 && t <= 500);
}

static void test_alloc_failure_injection(void)
{
    long live = sn__alloc_live();
    sn__alloc_fail_after(1);
    void *a = sn__malloc(8);
    void *b = sn__malloc(8);
    void *c = sn__malloc(8);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(c);
    sn__alloc_fail_after(-1);
    sn__free(a);
    sn__free(c);
    CU_ASSERT_EQUAL(sn__alloc_live(), live);
}

static CU_TestInfo tests[] = {
    {"system codes are -errno", test_system_codes_are_negative_errno},
    {"library codes are <= -1000", test_library_codes_are_below_1000},
    {"every code has a distinct name and message", test_every_code_has_a_distinct_name_and_message},
    {"names and messages", test_names_and_messages},
    {"version", test_version},
    {"deadlines", test_deadlines},
    {"allocation failure injection", test_alloc_failure_injection},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("error", tests, 30);
}
