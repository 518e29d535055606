/* SPDX-License-Identifier: MIT */
/*
 * test-ws-frame.c: the WebSocket codec against RFC 6455: the examples of
 * section 5.7 (decoded whole and one byte at a time, and encoded back), the
 * accept key of section 1.3, header rules, masking, close payloads, and
 * UTF-8 validation fed whole, split at every byte, and failing at the first
 * bad byte.
 */
#include <stdlib.h>
#include <string.h>
#include "sn_test.h"
#include "sn_ws_frame.h"

/* Decodes a header, first one byte at a time (0 until complete). */
static int decode_both_ways(const uint8_t *buf, size_t len, sn__ws_head *h)
{
    int whole = sn__ws_head_decode(buf, len, h);
    for (size_t i = 0; whole > 0 && i < (size_t)whole; i++) {
        sn__ws_head part;
        if (sn__ws_head_decode(buf, i, &part) != 0)
            return -9999; /* a prefix claimed to be complete */
    }
    return whole;
}

static void test_rfc6455_examples(void)
{
    static const uint8_t unmasked[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t frag1[] = {0x01, 0x03, 'H', 'e', 'l'};
    static const uint8_t frag2[] = {0x80, 0x02, 'l', 'o'};
    static const uint8_t ping[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    sn__ws_head h;
    uint8_t out[SN_WS_HEAD_MAX], payload[5];

    SN_ASSERT_RC(decode_both_ways(unmasked, sizeof unmasked, &h), 2);
    CU_ASSERT(h.fin && h.opcode == SN_WS_TEXT && !h.masked && h.len == 5 && h.rsv == 0);
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_UNMASKED), 0);
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_MASKED),
                 SN_EWS_PROTOCOL); /* a server wants masks */
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_EITHER), 0);
    CU_ASSERT_EQUAL(sn__ws_head_encode(out, true, 0, SN_WS_TEXT, NULL, 5), 2);
    CU_ASSERT(memcmp(out, unmasked, 2) == 0);

    SN_ASSERT_RC(decode_both_ways(masked, sizeof masked, &h), 6);
    CU_ASSERT(h.fin && h.opcode == SN_WS_TEXT && h.masked && h.len == 5);
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_MASKED), 0);
    memcpy(payload, masked + 6, 5);
    sn__ws_mask(payload, 5, h.mask, 0);
    CU_ASSERT(memcmp(payload, "Hello", 5) == 0);
    CU_ASSERT_EQUAL(sn__ws_head_encode(out, true, 0, SN_WS_TEXT, h.mask, 5), 6);
    CU_ASSERT(memcmp(out, masked, 6) == 0);

    SN_ASSERT_RC(decode_both_ways(frag1, sizeof frag1, &h), 2);
    CU_ASSERT(!h.fin && h.opcode == SN_WS_TEXT && h.len == 3);
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_UNMASKED), 0);
    SN_ASSERT_RC(decode_both_ways(frag2, sizeof frag2, &h), 2);
    CU_ASSERT(h.fin && h.opcode == SN_WS_CONTINUATION && h.len == 2);
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_UNMASKED), 0);

    SN_ASSERT_RC(decode_both_ways(ping, sizeof ping, &h), 2);
    CU_ASSERT(h.fin && h.opcode == SN_WS_PING && h.len == 5);
    SN_ASSERT_RC(decode_both_ways(pong, sizeof pong, &h), 6);
    CU_ASSERT(h.opcode == SN_WS_PONG && h.masked);
    memcpy(payload, pong + 6, 5);
    sn__ws_mask(payload, 5, h.mask, 0);
    CU_ASSERT(memcmp(payload, "Hello", 5) == 0);

    /* 256 bytes and 64 KiB of binary, unmasked */
    static const uint8_t b256[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t b64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    SN_ASSERT_RC(decode_both_ways(b256, sizeof b256, &h), 4);
    CU_ASSERT(h.opcode == SN_WS_BINARY && h.len == 256);
    CU_ASSERT_EQUAL(sn__ws_head_encode(out, true, 0, SN_WS_BINARY, NULL, 256), 4);
    CU_ASSERT(memcmp(out, b256, 4) == 0);
    SN_ASSERT_RC(decode_both_ways(b64k, sizeof b64k, &h), 10);
    CU_ASSERT(h.len == 65536);
    CU_ASSERT_EQUAL(sn__ws_head_encode(out, true, 0, SN_WS_BINARY, NULL, 65536), 10);
    CU_ASSERT(memcmp(out, b64k, 10) == 0);
}

static void test_accept_key(void)
{
    char out[SN_WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    SN_ASSERT_RC(sn__ws_accept_key(key, strlen(key), out), 0);
    CU_ASSERT_STRING_EQUAL(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    char long_key[100];
    memset(long_key, 'a', sizeof long_key);
    SN_ASSERT_RC(sn__ws_accept_key(long_key, sizeof long_key, out), SN_EINVAL);
}

static void test_lengths(void)
{
    sn__ws_head h;
    uint8_t out[SN_WS_HEAD_MAX];
    static const uint64_t lens[] = {
        0, 1, 125, 126, 127, 65535, 65536, 1ull << 32, (1ull << 63) - 1};
    for (size_t i = 0; i < SN_ARRAY_SIZE(lens); i++) {
        static const uint8_t mask[4] = {1, 2, 3, 4};
        size_t n = sn__ws_head_encode(out, false, 4, SN_WS_BINARY, mask, lens[i]);
        SN_ASSERT_RC(decode_both_ways(out, n, &h), (int)n);
        CU_ASSERT_EQUAL(h.len, lens[i]);
        CU_ASSERT(!h.fin && h.rsv == 4 && h.masked && memcmp(h.mask, mask, 4) == 0);
    }
    /* lengths not in their shortest form, and the 64th bit */
    static const uint8_t long16[] = {0x82, 0x7e, 0x00, 0x7d};
    static const uint8_t long64[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t top[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    SN_ASSERT_RC(sn__ws_head_decode(long16, sizeof long16, &h), SN_EWS_PROTOCOL);
    SN_ASSERT_RC(sn__ws_head_decode(long64, sizeof long64, &h), SN_EWS_PROTOCOL);
    SN_ASSERT_RC(sn__ws_head_decode(top, sizeof top, &h), SN_EWS_PROTOCOL);
}

static void test_header_rules(void)
{
    sn__ws_head h = {.fin = true, .opcode = SN_WS_TEXT, .masked = true, .len = 10};
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_MASKED), 0);
    for (uint8_t rsv = 1; rsv < 8; rsv++) { /* reserved bits, unless negotiated */
        h.rsv = rsv;
        SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_MASKED), SN_EWS_PROTOCOL);
    }
    h.rsv = 4; /* RSV1 with permessage-deflate */
    SN_ASSERT_RC(sn__ws_head_check(&h, 4, SN_WS_MASKED), 0);
    h.opcode = SN_WS_CONTINUATION; /* but only on a message's first frame */
    SN_ASSERT_RC(sn__ws_head_check(&h, 4, SN_WS_MASKED), SN_EWS_PROTOCOL);
    h.rsv = 0;
    for (uint8_t op = 3; op < 16; op++) { /* reserved opcodes */
        h.opcode = op;
        int want = op >= 8 && op <= 10 ? 0 : SN_EWS_PROTOCOL;
        SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_MASKED), want);
    }
    h.opcode = SN_WS_PING;
    h.len = 125;
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_MASKED), 0);
    h.len = 126; /* control frames carry at most 125 bytes */
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_MASKED), SN_EWS_PROTOCOL);
    h.len = 0;
    h.fin = false; /* and are never fragmented */
    SN_ASSERT_RC(sn__ws_head_check(&h, 0, SN_WS_MASKED), SN_EWS_PROTOCOL);
    h.fin = true;
    h.rsv = 4; /* nor compressed */
    SN_ASSERT_RC(sn__ws_head_check(&h, 4, SN_WS_MASKED), SN_EWS_PROTOCOL);
}

static void test_masking(void)
{
    uint8_t data[100], ref[100];
    static const uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
    srand(7);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)rand();
    for (size_t off = 0; off < 9; off++) {
        for (size_t n = 0; n + off <= sizeof data; n += 7) {
            memcpy(ref, data, sizeof data);
            for (size_t i = 0; i < n; i++)
                ref[off + i] ^= mask[(off + i) & 3];
            uint8_t got[100];
            memcpy(got, data, sizeof data);
            sn__ws_mask(got + off, n, mask, off); /* a piece that starts at byte off */
            CU_ASSERT(memcmp(got, ref, sizeof got) == 0);
            sn__ws_mask(got + off, n, mask, off); /* masking twice gives the data back */
            CU_ASSERT(memcmp(got, data, sizeof got) == 0);
        }
    }
}

static uint32_t utf8(const char *s, size_t n)
{
    return sn__utf8_step(0, (const uint8_t *)s, n);
}

static void test_utf8(void)
{
    static const char *valid[] = {
        "",
        "plain ASCII, more than eight bytes long",
        "\xc2\x80 \xdf\xbf",                                   /* two bytes */
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",        /* κόσμε */
        "\xe0\xa0\x80 \xef\xbf\xbf \xed\x9f\xbf \xee\x80\x80", /* three bytes, edges */
        "\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf",                   /* four: U+10000, U+10FFFF */
    };
    for (size_t i = 0; i < SN_ARRAY_SIZE(valid); i++) {
        size_t n = strlen(valid[i]);
        CU_ASSERT_EQUAL(utf8(valid[i], n), 0);
        for (size_t cut = 0; cut <= n; cut++) { /* split anywhere: the same answer */
            uint32_t st = utf8(valid[i], cut);
            CU_ASSERT_NOT_EQUAL(st, SN_UTF8_REJECT);
            CU_ASSERT_EQUAL(sn__utf8_step(st, (const uint8_t *)valid[i] + cut, n - cut), 0);
        }
    }
    static const struct {
        const char *s;
        size_t bad; /* the index of the first byte that cannot be UTF-8 */
    } invalid[] = {
        {"ab\x80", 2},           /* a stray continuation byte */
        {"\xc0\x80", 0},         /* overlong NUL */
        {"\xc1\xbf", 0},         /* overlong */
        {"\xe0\x80\x80", 1},     /* overlong three bytes */
        {"\xe0\x9f\xbf", 1},     /* overlong three bytes */
        {"\xed\xa0\x80", 1},     /* a surrogate */
        {"\xed\xbf\xbf", 1},     /* a surrogate */
        {"\xf0\x8f\xbf\xbf", 1}, /* overlong four bytes */
        {"\xf4\x90\x80\x80", 1}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 0}, /* never a lead byte */
        {"\xff", 0},             /* never in UTF-8 */
        {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
         "edited",
         12},
        {"\xc2 ", 1}, /* a lead byte without its continuation */
        {"0123456789\xe1\x80z", 12},
    };
    for (size_t i = 0; i < SN_ARRAY_SIZE(invalid); i++) {
        size_t n = strlen(invalid[i].s);
        CU_ASSERT_EQUAL(utf8(invalid[i].s, n), SN_UTF8_REJECT);
        /* fail fast: everything before the bad byte is still fine */
        CU_ASSERT_NOT_EQUAL(utf8(invalid[i].s, invalid[i].bad), SN_UTF8_REJECT);
        CU_ASSERT_EQUAL(utf8(invalid[i].s, invalid[i].bad + 1), SN_UTF8_REJECT);
        uint32_t st = 0; /* and byte by byte, as fragments could cut it */
        size_t at = n;
        for (size_t k = 0; k < n && st != SN_UTF8_REJECT; k++)
            if ((st = sn__utf8_step(st, (const uint8_t *)invalid[i].s + k, 1)) == SN_UTF8_REJECT)
                at = k;
        CU_ASSERT_EQUAL(at, invalid[i].bad);
    }
    /* a message that ends inside a character is not complete */
    CU_ASSERT(utf8("\xe2\x82", 2) != 0 && utf8("\xe2\x82", 2) != SN_UTF8_REJECT);
    CU_ASSERT_EQUAL(utf8("\xe2\x82\xac", 3), 0); /* € */
}

static void test_close_payloads(void)
{
    int code;
    size_t rlen;
    SN_ASSERT_RC(sn__ws_close_parse(NULL, 0, &code, &rlen), 0);
    CU_ASSERT_EQUAL(code, SN_WS_CLOSE_NO_STATUS);
    SN_ASSERT_RC(sn__ws_close_parse((const uint8_t *)"\x03", 1, &code, &rlen), SN_EWS_PROTOCOL);
    SN_ASSERT_RC(sn__ws_close_parse((const uint8_t *)"\x03\xe8"
                                                     "bye",
                                    5, &code, &rlen),
                 0);
    CU_ASSERT(code == 1000 && rlen == 3);
    static const int ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                             1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const int bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < SN_ARRAY_SIZE(ok); i++) {
        uint8_t p[2] = {(uint8_t)(ok[i] >> 8), (uint8_t)ok[i]};
        SN_ASSERT_RC(sn__ws_close_parse(p, 2, &code, &rlen), 0);
        CU_ASSERT_EQUAL(code, ok[i]);
    }
    for (size_t i = 0; i < SN_ARRAY_SIZE(bad); i++) {
        uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        SN_ASSERT_RC(sn__ws_close_parse(p, 2, &code, &rlen), SN_EWS_PROTOCOL);
    }
    SN_ASSERT_RC(sn__ws_close_parse((const uint8_t *)"\x03\xe8\xff", 3, &code, &rlen), SN_EWS_UTF8);
}

static CU_TestInfo tests[] = {
    {"RFC 6455 5.7 examples, whole and byte by byte", test_rfc6455_examples},
    {"RFC 6455 1.3 accept key", test_accept_key},
    {"lengths: every encoding, shortest form only", test_lengths},
    {"reserved bits, opcodes, control frames, masking", test_header_rules},
    {"masking at any offset", test_masking},
    {"UTF-8: valid, invalid, split, fail fast", test_utf8},
    {"close payloads: codes and reasons", test_close_payloads},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("ws-frame", tests, 60);
}
