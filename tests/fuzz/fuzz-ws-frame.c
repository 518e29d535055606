/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ws-frame: the WebSocket frame codec of sn_ws_frame.c, walked over
 * the input as a stream of frames, as a session reads them. The first byte
 * chooses the masking rule and the reserved bits allowed. For each frame:
 * the header decodes the same from every prefix (0, "more bytes", until it
 * is whole), re-encodes to the same bytes (the decoder takes shortest forms
 * only), is checked against the rules; its payload unmasks the same whole
 * and in two pieces; text is validated whole and byte by byte with the same
 * verdict; a close payload is parsed.
 */
#include "fuzz.h"
#include "sn_util.h"
#include "sn_ws_frame.h"

static void payload(const sn__ws_head *h, const uint8_t *p, size_t n)
{
    uint8_t *a = fuzz_copy(p, n), *b = fuzz_copy(p, n);
    if (h->masked) {
        size_t cut = n / 3;
        sn__ws_mask(a, n, h->mask, 0);
        sn__ws_mask(b, cut, h->mask, 0);
        sn__ws_mask(b + cut, n - cut, h->mask, cut);
        FUZZ_ASSERT(n == 0 || memcmp(a, b, n) == 0);
    }
    if (h->opcode == SN_WS_TEXT || h->opcode == SN_WS_CONTINUATION) {
        uint32_t whole = sn__utf8_step(0, a, n), step = 0;
        for (size_t i = 0; i < n && step != SN_UTF8_REJECT; i++)
            step = sn__utf8_step(step, a + i, 1);
        FUZZ_ASSERT(whole == step);
    }
    if (h->opcode == SN_WS_CLOSE && n <= 125) {
        int code;
        size_t reason_len = 0;
        int rc = sn__ws_close_parse(a, n, &code, &reason_len);
        FUZZ_ASSERT(rc == 0 || rc == SN_EWS_PROTOCOL || rc == SN_EWS_UTF8);
        FUZZ_ASSERT(rc < 0 || (n == 0 && code == SN_WS_CLOSE_NO_STATUS) ||
                    (reason_len == n - 2 && sn__ws_close_code_ok(code)));
    }
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int masking = data[0] % 3;
    uint8_t rsv_allowed = (uint8_t)((data[0] >> 2) & 7);
    uint8_t *buf = fuzz_copy(data + 1, size - 1);
    size_t pos = 0, len = size - 1;
    for (;;) {
        sn__ws_head h;
        int rc = sn__ws_head_decode(buf + pos, len - pos, &h);
        if (rc <= 0) {
            FUZZ_ASSERT(rc == 0 || rc == SN_EWS_PROTOCOL);
            break;
        }
        FUZZ_ASSERT(rc >= 2 && rc <= SN_WS_HEAD_MAX && (size_t)rc == h.size && pos + h.size <= len);
        for (size_t k = 0; k < h.size; k++) {
            sn__ws_head part;
            FUZZ_ASSERT(sn__ws_head_decode(buf + pos, k, &part) == 0);
        }
        uint8_t again[SN_WS_HEAD_MAX];
        size_t n =
            sn__ws_head_encode(again, h.fin, h.rsv, h.opcode, h.masked ? h.mask : NULL, h.len);
        FUZZ_ASSERT(n == h.size && memcmp(again, buf + pos, n) == 0);
        rc = sn__ws_head_check(&h, rsv_allowed, masking);
        FUZZ_ASSERT(rc == 0 || rc == SN_EWS_PROTOCOL);
        FUZZ_ASSERT(rc < 0 || h.opcode < 8 || (h.len <= 125 && h.fin));
        pos += h.size;
        size_t avail = (size_t)SN_MIN(h.len, (uint64_t)(len - pos));
        payload(&h, buf + pos, avail);
        pos += avail;
    }
    free(buf);
    return 0;
}
