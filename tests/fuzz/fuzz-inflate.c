/* SPDX-License-Identifier: MIT */
/*
 * fuzz-inflate: permessage-deflate's inflater (sn__inflate_push) on
 * arbitrary compressed messages, and the deflate/inflate round trip. The
 * first two bytes choose the window bits (8-15), context takeover, where
 * the message is cut into pieces and the cap on its inflated size; the rest
 * is inflated as two messages in a row (so that the second one inflates
 * against the first one's window). Properties: only the documented results,
 * never more output than the cap; and the rest, compressed by sn__deflate
 * in two messages, inflates back to the same bytes.
 */
#include "fuzz.h"
#include "sn_bytes.h"
#include "sn_util.h"
#include "sn_ws_deflate.h"

static int inflate_msg(sn__inflate *f, const uint8_t *p, size_t n, size_t cut, size_t max,
                       sn__bytes *out)
{
    cut = SN_MIN(cut, n);
    out->len = 0;
    int rc = sn__inflate_push(f, p, cut, false, max, out);
    if (rc == 0)
        rc = sn__inflate_push(f, p + cut, n - cut, true, max, out);
    FUZZ_ASSERT(rc == 0 || rc == SN_EWS_TOO_BIG || rc == SN_EWS_DEFLATE);
    FUZZ_ASSERT(out->len <= max);
    return rc;
}

static void any_input(int bits, bool reset, size_t cut, size_t max, const uint8_t *p, size_t n)
{
    sn__inflate *f;
    sn__bytes out = {0};
    FUZZ_ASSERT(sn__inflate_new(&f, bits, reset) == 0);
    if (inflate_msg(f, p, n / 2, cut, max, &out) == 0)
        inflate_msg(f, p + n / 2, n - n / 2, cut, max, &out);
    sn__inflate_free(f);
    sn__bytes_free(&out);
}

static void round_trip(int bits, bool reset, size_t cut, const uint8_t *p, size_t n)
{
    sn__deflate *d;
    sn__inflate *f;
    sn__bytes z = {0}, out = {0};
    FUZZ_ASSERT(sn__deflate_new(&d, bits, reset, 6, 8) == 0);
    FUZZ_ASSERT(sn__inflate_new(&f, bits, reset) == 0);
    for (int i = 0; i < 2; i++) {
        const uint8_t *msg = i == 0 ? p : p + n / 2;
        size_t len = i == 0 ? n / 2 : n - n / 2, at = SN_MIN(cut, len);
        z.len = 0;
        FUZZ_ASSERT(sn__deflate_push(d, msg, at, false, &z) == 0);
        FUZZ_ASSERT(sn__deflate_push(d, msg + at, len - at, true, &z) == 0);
        FUZZ_ASSERT(inflate_msg(f, z.p, z.len, z.len / 2, len, &out) == 0);
        FUZZ_ASSERT(out.len == len && (len == 0 || memcmp(out.p, msg, len) == 0));
    }
    sn__deflate_free(d);
    sn__inflate_free(f);
    sn__bytes_free(&z);
    sn__bytes_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int bits = 8 + (data[0] & 7);
    bool reset = data[0] & 8;
    size_t cut = (size_t)(data[0] >> 4) * 16;
    size_t max = (size_t)1 << (data[1] % 21); /* 1 B to 1 MiB */
    uint8_t *p = fuzz_copy(data + 2, size - 2);
    any_input(bits, reset, cut, max, p, size - 2);
    round_trip(bits, reset, cut, p, size - 2);
    free(p);
    return 0;
}
