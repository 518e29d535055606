/* SPDX-License-Identifier: MIT */
/*
 * test-ws-deflate.c: permessage-deflate's compression against RFC 7692's
 * examples (section 7.2.3), round trips at every window size with and
 * without context takeover, inflating one byte at a time, decompression
 * bombs stopped at the limit, and corrupt data.
 */
#include <stdlib.h>
#include <string.h>
#include "sn_test.h"
#include "sn_bytes.h"
#include "sn_ws_deflate.h"

static bool bytes_eq(const sn__bytes *b, const void *want, size_t n)
{
    return b->len == n && memcmp(b->p, want, n) == 0;
}

static void test_rfc7692_examples(void)
{
    sn__deflate *d;
    sn__inflate *f;
    sn__bytes out = {0};
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    static const uint8_t hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};

    /* 7.2.3.1 and 7.2.3.2: "Hello" twice, the second sharing the window */
    SN_ASSERT_RC(sn__deflate_new(&d, 15, false, 6, 8), 0);
    CU_ASSERT(!sn__deflate_ready(d)); /* zlib's memory comes with the first message */
    SN_ASSERT_RC(sn__deflate_push(d, "Hello", 5, true, &out), 0);
    CU_ASSERT(sn__deflate_ready(d));
    CU_ASSERT(bytes_eq(&out, hello, sizeof hello));
    out.len = 0;
    SN_ASSERT_RC(sn__deflate_push(d, "Hello", 5, true, &out), 0);
    CU_ASSERT(bytes_eq(&out, hello2, sizeof hello2));
    sn__deflate_free(d);
    /* without context takeover, the second is like the first */
    SN_ASSERT_RC(sn__deflate_new(&d, 15, true, 6, 8), 0);
    for (int i = 0; i < 2; i++) {
        out.len = 0;
        SN_ASSERT_RC(sn__deflate_push(d, "Hello", 5, true, &out), 0);
        CU_ASSERT(bytes_eq(&out, hello, sizeof hello));
    }
    sn__deflate_free(d);

    SN_ASSERT_RC(sn__inflate_new(&f, 15, false), 0);
    CU_ASSERT(!sn__inflate_ready(f));
    const struct {
        const uint8_t *p;
        size_t n;
    } msgs[] = {
        {hello, sizeof hello},
        {hello2, sizeof hello2}, /* 7.2.3.2: refers to the first one's window */
        /* 7.2.3.3: a block with no compression */
        {(const uint8_t[]){0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}, 11},
        /* 7.2.3.4: a final block */
        {(const uint8_t[]){0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, 8},
        /* after it, the window still holds "Hello" (context takeover) */
        {hello2, sizeof hello2},
        /* 7.2.3.5: two blocks in one message */
        {(const uint8_t[]){0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
                           0x00},
         13},
    };
    for (size_t i = 0; i < SN_ARRAY_SIZE(msgs); i++) {
        out.len = 0;
        SN_ASSERT_RC(sn__inflate_push(f, msgs[i].p, msgs[i].n, true, 1 << 20, &out), 0);
        CU_ASSERT(bytes_eq(&out, "Hello", 5));
    }
    sn__inflate_free(f);
    sn__bytes_free(&out);
}

/* Text-like data with repeats at every distance up to 2000 bytes. */
static void fill(uint8_t *p, size_t n, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < n; i++) {
        if (i > 300 && rand() % 4 == 0)
            p[i] = p[i - 1 - (size_t)rand() % SN_MIN(i - 1, (size_t)2000)];
        else
            p[i] = (uint8_t)("abcdefghij klmnop"[rand() % 17]);
    }
}

static void test_round_trips(void)
{
    enum { N = 20000 };
    static uint8_t msg[N];
    sn__bytes z = {0}, plain = {0};
    for (int bits = 8; bits <= 15; bits++) {
        for (int takeover = 0; takeover < 2; takeover++) {
            sn__deflate *d;
            sn__inflate *f;
            SN_ASSERT_RC(sn__deflate_new(&d, bits, !takeover, 6, bits == 8 ? 1 : 8), 0);
            SN_ASSERT_RC(sn__inflate_new(&f, bits, !takeover), 0);
            for (unsigned m = 0; m < 4; m++) {
                size_t len = m == 3 ? 0 : N / (m + 1); /* an empty message too */
                fill(msg, len, m + 1);
                z.len = plain.len = 0;
                /* deflated in pieces, as fragments are */
                size_t half = len / 2;
                SN_ASSERT_RC(sn__deflate_push(d, msg, half, false, &z), 0);
                SN_ASSERT_RC(sn__deflate_push(d, msg + half, len - half, true, &z), 0);
                CU_ASSERT(len < 1000 || z.len < len); /* it does compress */
                /* inflated one byte at a time */
                for (size_t i = 0; i < z.len; i++)
                    SN_ASSERT_RC(sn__inflate_push(f, z.p + i, 1, false, N, &plain), 0);
                SN_ASSERT_RC(sn__inflate_push(f, NULL, 0, true, N, &plain), 0);
                CU_ASSERT(plain.len == len && (len == 0 || memcmp(plain.p, msg, len) == 0));
            }
            sn__deflate_free(d);
            sn__inflate_free(f);
        }
    }
    sn__bytes_free(&z);
    sn__bytes_free(&plain);
}

static void test_bomb(void)
{
    enum { BIG = 16 << 20, MAX = 1 << 20 };
    uint8_t *zeros = calloc(1, BIG);
    CU_ASSERT_FATAL(zeros != NULL);
    sn__deflate *d;
    sn__inflate *f;
    sn__bytes z = {0}, plain = {0};
    SN_ASSERT_RC(sn__deflate_new(&d, 15, false, 9, 8), 0);
    SN_ASSERT_RC(sn__deflate_push(d, zeros, BIG, true, &z), 0);
    CU_ASSERT(z.len < 32 * 1024); /* 16 MiB of zeros in a few KiB */
    SN_ASSERT_RC(sn__inflate_new(&f, 15, false), 0);
    SN_ASSERT_RC(sn__inflate_push(f, z.p, z.len, true, MAX, &plain), SN_EWS_TOO_BIG);
    CU_ASSERT(plain.len <= MAX);
    CU_ASSERT(plain.cap <= MAX + 65536); /* it stopped; it did not inflate it all */
    sn__inflate_free(f);
    /* exactly at the limit is fine (a fresh pair: the window starts empty) */
    sn__deflate_free(d);
    SN_ASSERT_RC(sn__deflate_new(&d, 15, false, 9, 8), 0);
    SN_ASSERT_RC(sn__inflate_new(&f, 15, false), 0);
    z.len = plain.len = 0;
    SN_ASSERT_RC(sn__deflate_push(d, zeros, MAX, true, &z), 0);
    SN_ASSERT_RC(sn__inflate_push(f, z.p, z.len, true, MAX, &plain), 0);
    CU_ASSERT_EQUAL(plain.len, MAX);
    sn__inflate_free(f);
    sn__deflate_free(d);
    sn__bytes_free(&z);
    sn__bytes_free(&plain);
    free(zeros);
}

static void test_corrupt_and_bad_arguments(void)
{
    sn__inflate *f;
    sn__deflate *d;
    sn__bytes out = {0};
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x12, 0x34};
    SN_ASSERT_RC(sn__inflate_new(&f, 15, false), 0);
    SN_ASSERT_RC(sn__inflate_push(f, junk, sizeof junk, true, 1 << 20, &out), SN_EWS_DEFLATE);
    sn__inflate_free(f);
    SN_ASSERT_RC(sn__inflate_new(&f, 7, false), SN_EINVAL);
    SN_ASSERT_RC(sn__inflate_new(&f, 16, false), SN_EINVAL);
    SN_ASSERT_RC(sn__deflate_new(&d, 7, false, 6, 8), SN_EINVAL);
    SN_ASSERT_RC(sn__deflate_new(&d, 15, false, 10, 8), SN_EINVAL);
    SN_ASSERT_RC(sn__deflate_new(&d, 15, false, 6, 0), SN_EINVAL);
    /* the structs are allocated: that can fail */
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(sn__deflate_new(&d, 15, false, 6, 8), SN_ENOMEM);
    sn__alloc_fail_after(0);
    SN_ASSERT_RC(sn__inflate_new(&f, 15, false), SN_ENOMEM);
    sn__alloc_fail_after(-1);
    sn__bytes_free(&out);
}

static CU_TestInfo tests[] = {
    {"RFC 7692 7.2.3 examples", test_rfc7692_examples},
    {"round trips: windows 8-15, with and without takeover", test_round_trips},
    {"a decompression bomb stops at the limit", test_bomb},
    {"corrupt data, bad arguments, no memory", test_corrupt_and_bad_arguments},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("ws-deflate", tests, 60);
}
