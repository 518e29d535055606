/* SPDX-License-Identifier: MIT */
/*
 * sn_ws_frame.c: the WebSocket codec (RFC 6455), pure code with no I/O, as
 * in wslay: frame headers decoded and encoded, payloads masked, close
 * payloads checked, UTF-8 validated incrementally (a text message split
 * across frames at any byte is checked as it comes, and fails at its first
 * bad byte), and the handshake's accept key (wolfCrypt's SHA-1 and base64).
 *
 * Decoding is in two steps so that the session can answer each failure with
 * the right close code: sn__ws_head_decode only reads the bytes (and rejects
 * what can never be valid, such as a length not in its shortest form);
 * sn__ws_head_check applies what the connection negotiated (reserved bits,
 * masking) and the rules for opcodes and control frames.
 */
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha.h>
#include "sn_ws_frame.h"
#include "socknet.h"

#define SN_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- frame headers ------------------------------------------------------------ */

int sn__ws_head_decode(const uint8_t *buf, size_t len, sn__ws_head *h)
{
    if (len < 2)
        return 0;
    size_t size = 2;
    uint64_t n = buf[1] & 0x7f;
    bool masked = buf[1] & 0x80;
    if (n == 126)
        size += 2;
    else if (n == 127)
        size += 8;
    if (masked)
        size += 4;
    if (len < size)
        return 0;
    const uint8_t *p = buf + 2;
    if (n == 126) {
        n = (uint64_t)p[0] << 8 | p[1];
        p += 2;
        if (n < 126)
            return SN_EWS_PROTOCOL; /* not the shortest form */
    } else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | p[i];
        p += 8;
        if (n >> 63 || n <= 0xffff)
            return SN_EWS_PROTOCOL; /* the top bit set, or not the shortest form */
    }
    *h = (sn__ws_head){
        .fin = buf[0] & 0x80,
        .rsv = (uint8_t)((buf[0] >> 4) & 7),
        .opcode = buf[0] & 0x0f,
        .masked = masked,
        .len = n,
        .size = size,
    };
    if (masked)
        memcpy(h->mask, p, 4);
    return (int)size;
}

int sn__ws_head_check(const sn__ws_head *h, uint8_t rsv_allowed, int masking)
{
    if (h->rsv & ~rsv_allowed)
        return SN_EWS_PROTOCOL;
    if (masking != SN_WS_EITHER && h->masked != (masking == SN_WS_MASKED))
        return SN_EWS_PROTOCOL; /* a client must mask, a server must not */
    switch (h->opcode) {
    case SN_WS_CONTINUATION:
        return h->rsv != 0 ? SN_EWS_PROTOCOL : 0; /* RSV1 is on the first frame only */
    case SN_WS_TEXT:
    case SN_WS_BINARY:
        return 0;
    case SN_WS_CLOSE:
    case SN_WS_PING:
    case SN_WS_PONG:
        if (!h->fin || h->len > 125 || h->rsv != 0)
            return SN_EWS_PROTOCOL; /* control frames: whole, short, never compressed */
        return 0;
    default:
        return SN_EWS_PROTOCOL; /* reserved opcodes */
    }
}

size_t sn__ws_head_encode(uint8_t out[SN_WS_HEAD_MAX], bool fin, uint8_t rsv, uint8_t opcode,
                          const uint8_t *mask, uint64_t len)
{
    size_t size = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (opcode & 0x0f));
    out[1] = mask != NULL ? 0x80 : 0;
    if (len < 126) {
        out[1] |= (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] |= 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        size = 4;
    } else {
        out[1] |= 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        size = 10;
    }
    if (mask != NULL) {
        memcpy(out + size, mask, 4);
        size += 4;
    }
    return size;
}

void sn__ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    uint8_t m[8];
    for (int i = 0; i < 8; i++)
        m[i] = mask[(offset + (uint64_t)i) & 3];
    uint64_t word;
    memcpy(&word, m, 8);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) { /* four words per step: compilers use vector registers */
        uint64_t v[4];
        memcpy(v, p + i, 32);
        v[0] ^= word;
        v[1] ^= word;
        v[2] ^= word;
        v[3] ^= word;
        memcpy(p + i, v, 32);
    }
    for (; i + 8 <= n; i += 8) { /* eight bytes at a time: the mask repeats every 4 */
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= word;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] ^= m[i & 7];
}

/* ---- UTF-8 ------------------------------------------------------------------------- */

/* The state: 0 at a character boundary; otherwise the continuation bytes
 * still due (bits 0-1) and the range the next one must lie in (bits 8-15
 * and 16-23: RFC 3629 narrows the second byte after E0, ED, F0 and F4). */
static uint32_t expect(uint32_t need, uint32_t lo, uint32_t hi)
{
    return need | lo << 8 | hi << 16;
}

static uint32_t utf8_lead(uint8_t b)
{
    if (b >= 0xc2 && b <= 0xdf)
        return expect(1, 0x80, 0xbf);
    if (b == 0xe0)
        return expect(2, 0xa0, 0xbf);
    if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef)
        return expect(2, 0x80, 0xbf);
    if (b == 0xed)
        return expect(2, 0x80, 0x9f); /* no surrogates */
    if (b == 0xf0)
        return expect(3, 0x90, 0xbf);
    if (b >= 0xf1 && b <= 0xf3)
        return expect(3, 0x80, 0xbf);
    if (b == 0xf4)
        return expect(3, 0x80, 0x8f); /* nothing above U+10FFFF */
    return SN_UTF8_REJECT;
}

uint32_t sn__utf8_step(uint32_t state, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n && state != SN_UTF8_REJECT) {
        if (state == 0) {
            while (i + 8 <= n) { /* ASCII runs, eight bytes at a time */
                uint64_t v;
                memcpy(&v, p + i, 8);
                if (v & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            uint8_t b = p[i++];
            if (b >= 0x80)
                state = utf8_lead(b);
            continue;
        }
        uint8_t b = p[i++];
        if (b < ((state >> 8) & 0xff) || b > ((state >> 16) & 0xff))
            return SN_UTF8_REJECT;
        uint32_t need = (state & 3) - 1;
        state = need == 0 ? 0 : expect(need, 0x80, 0xbf);
    }
    return state;
}

/* ---- close payloads ------------------------------------------------------------- */

bool sn__ws_close_code_ok(int code)
{
    if (code >= 3000 && code <= 4999)
        return true; /* registered with IANA (3000-3999) or private (4000-4999) */
    switch (code) {
    case 1000:
    case 1001:
    case 1002:
    case 1003:
    case 1007:
    case 1008:
    case 1009:
    case 1010:
    case 1011:
    case 1012:
    case 1013:
    case 1014:
        return true;
    default:
        return false; /* 1004-1006 and 1015 never go on the wire; the rest is reserved */
    }
}

int sn__ws_close_parse(const uint8_t *p, size_t n, int *code, size_t *reason_len)
{
    *code = SN_WS_CLOSE_NO_STATUS;
    *reason_len = 0;
    if (n == 0)
        return 0;
    if (n == 1)
        return SN_EWS_PROTOCOL;
    *code = p[0] << 8 | p[1];
    if (!sn__ws_close_code_ok(*code))
        return SN_EWS_PROTOCOL;
    if (sn__utf8_step(0, p + 2, n - 2) != 0)
        return SN_EWS_UTF8;
    *reason_len = n - 2;
    return 0;
}

/* ---- the handshake's accept key ------------------------------------------------------ */

int sn__ws_accept_key(const char *key, size_t key_len, char out[SN_WS_ACCEPT_LEN + 1])
{
    static const char guid[] = SN_WS_GUID;
    byte buf[64 + sizeof guid];
    byte hash[WC_SHA_DIGEST_SIZE];
    if (key_len > 64)
        return SN_EINVAL;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, guid, sizeof guid - 1);
    if (wc_ShaHash(buf, (word32)(key_len + sizeof guid - 1), hash) != 0)
        return SN_EINVAL;
    word32 len = SN_WS_ACCEPT_LEN + 1;
    if (Base64_Encode_NoNl(hash, sizeof hash, (byte *)out, &len) != 0 || len != SN_WS_ACCEPT_LEN)
        return SN_EINVAL;
    out[SN_WS_ACCEPT_LEN] = '\0';
    return 0;
}
