/* SPDX-License-Identifier: MIT */
/*
 * sn_ws_deflate.c: permessage-deflate's compression (RFC 7692) over zlib,
 * pure code with no I/O: a message (or a message in pieces, for fragments)
 * is deflated with a sync flush and its final empty block's four bytes
 * (00 00 ff ff) removed; inflating appends them back. Without context
 * takeover the stream is reset after each message.
 *
 * Window bits: zlib (since 1.2.9) refuses a 256-byte window (8) for raw
 * deflate, so 8 compresses with 9. That is safe for a peer inflating with
 * 8: zlib never emits a distance over the window less 262 bytes
 * (MAX_DIST), 250 with 9, within the peer's 256. Inflating takes 8 as is.
 *
 * Memory: zlib's figures are deflate 2^(bits+2) + 2^(mem_level+9) bytes
 * plus about 6 KiB, inflate 2^bits plus about 7 KiB; ws.h has the table
 * measured with a counting zalloc.
 */
#include <string.h>
#include <zlib.h>
#include "sn_bytes.h"
#include "sn_util.h"
#include "sn_ws_deflate.h"
#include "socknet.h"

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

/* ---- deflate ------------------------------------------------------------------- */

/* zlib's state is allocated on first use (deflate_ready): a session that
 * never sends a compressed message pays for this struct only. */
struct sn__deflate {
    z_stream zs;
    bool ready;      /* zs is allocated */
    bool reset_each; /* no context takeover */
    int bits, level, mem_level;
    size_t msg_len; /* bytes out for the message so far */
};

int sn__deflate_new(sn__deflate **out, int window_bits, bool no_takeover, int level, int mem_level)
{
    if (window_bits < 8 || window_bits > 15 || level < 0 || level > 9 || mem_level < 1 ||
        mem_level > 9)
        return SN_EINVAL;
    sn__deflate *d = sn__malloc(sizeof *d);
    if (d == NULL)
        return SN_ENOMEM;
    *d = (sn__deflate){.reset_each = no_takeover,
                       .bits = window_bits == 8 ? 9 : window_bits, /* see the top of the file */
                       .level = level,
                       .mem_level = mem_level};
    *out = d;
    return 0;
}

static int deflate_ready(sn__deflate *d)
{
    if (d->ready)
        return 0;
    int rc = deflateInit2(&d->zs, d->level, Z_DEFLATED, -d->bits, d->mem_level, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK)
        return rc == Z_MEM_ERROR ? SN_ENOMEM : SN_EINVAL;
    d->ready = true;
    return 0;
}

void sn__deflate_free(sn__deflate *d)
{
    if (d == NULL)
        return;
    if (d->ready)
        deflateEnd(&d->zs);
    sn__free(d);
}

bool sn__deflate_ready(const sn__deflate *d)
{
    return d->ready;
}

/* Runs deflate over the input with `flush` until it is all consumed (and,
 * for a sync flush, until the output is complete), growing out. */
static int deflate_run(sn__deflate *d, int flush, sn__bytes *out)
{
    for (;;) {
        if (sn__bytes_reserve(out, 4096) < 0)
            return SN_ENOMEM;
        size_t room = out->cap - out->len;
        d->zs.next_out = out->p + out->len;
        d->zs.avail_out = (uInt)SN_MIN(room, (size_t)UINT_MAX);
        int rc = deflate(&d->zs, flush);
        out->len += (size_t)(d->zs.next_out - (out->p + out->len));
        if (rc == Z_STREAM_ERROR)
            return SN_EINVAL;
        if (d->zs.avail_in == 0 && d->zs.avail_out != 0)
            return 0; /* all in, and deflate had room to spare: nothing is held back */
    }
}

int sn__deflate_push(sn__deflate *d, const void *in, size_t len, bool last, sn__bytes *out)
{
    int ready = deflate_ready(d);
    if (ready < 0)
        return ready;
    const uint8_t *p = in;
    size_t start = out->len;
    while (len > 0) { /* avail_in is 32 bits wide */
        size_t n = SN_MIN(len, (size_t)1 << 30);
        d->zs.next_in = (Bytef *)p;
        d->zs.avail_in = (uInt)n;
        int rc = deflate_run(d, Z_NO_FLUSH, out);
        if (rc < 0)
            return rc;
        p += n;
        len -= n;
    }
    if (!last) {
        d->msg_len += out->len - start;
        return 0;
    }
    d->zs.next_in = NULL;
    d->zs.avail_in = 0;
    int rc = deflate_run(d, Z_SYNC_FLUSH, out);
    if (rc < 0)
        return rc;
    d->msg_len += out->len - start;
    if (d->msg_len == 0) {
        /* nothing since the last flush: zlib makes no empty block then, and
         * an empty message is the one byte 00 (RFC 7692 section 7.2.3.6) */
        if (sn__bytes_reserve(out, 1) < 0)
            return SN_ENOMEM;
        out->p[out->len++] = 0x00;
        d->msg_len = 0;
        return 0;
    }
    d->msg_len = 0;
    if (out->len - start < 4 || memcmp(out->p + out->len - 4, tail, 4) != 0)
        return SN_EINVAL; /* a sync flush always ends so; never seen */
    out->len -= 4;
    if (d->reset_each)
        deflateReset(&d->zs);
    return 0;
}

/* ---- inflate ------------------------------------------------------------------- */

/* zlib's state is allocated on first use (inflate_ready), as deflate's. */
struct sn__inflate {
    z_stream zs;
    bool ready;      /* zs is allocated */
    bool reset_each; /* no context takeover */
    int bits;
    bool ended; /* the message had a final block */
};

int sn__inflate_new(sn__inflate **out, int window_bits, bool no_takeover)
{
    if (window_bits < 8 || window_bits > 15)
        return SN_EINVAL;
    sn__inflate *f = sn__malloc(sizeof *f);
    if (f == NULL)
        return SN_ENOMEM;
    *f = (sn__inflate){.reset_each = no_takeover, .bits = window_bits};
    *out = f;
    return 0;
}

static int inflate_ready(sn__inflate *f)
{
    if (f->ready)
        return 0;
    int rc = inflateInit2(&f->zs, -f->bits);
    if (rc != Z_OK)
        return rc == Z_MEM_ERROR ? SN_ENOMEM : SN_EINVAL;
    f->ready = true;
    return 0;
}

void sn__inflate_free(sn__inflate *f)
{
    if (f == NULL)
        return;
    if (f->ready)
        inflateEnd(&f->zs);
    sn__free(f);
}

bool sn__inflate_ready(const sn__inflate *f)
{
    return f->ready;
}

/* Inflates in[0, len) into out, never past max bytes in all: when out is
 * full, a one-byte probe tells whether more output is due. Input after a
 * final block (which RFC 7692 section 7.2.3.4 allows) is ignored. */
static int inflate_run(sn__inflate *f, const uint8_t *in, size_t len, size_t max, sn__bytes *out)
{
    bool more;
    do {
        size_t room = max > out->len ? SN_MIN(max - out->len, (size_t)65536) : 0;
        if (room == 0) {
            uint8_t byte;
            sn__bytes probe = {.p = &byte, .cap = 1};
            int rc = sn__inflate_some(f, &in, &len, 1, &probe, &more);
            return rc < 0 ? rc : probe.len > 0 ? SN_EWS_TOO_BIG : 0;
        }
        int rc = sn__inflate_some(f, &in, &len, room, out, &more);
        if (rc < 0)
            return rc;
    } while (more || len > 0);
    return 0;
}

/* After a final block: a fresh stream for the next message, keeping the
 * window as its dictionary when the context is taken over. */
static int inflate_restart(sn__inflate *f)
{
    uint8_t window[32768];
    uInt n = 0;
    if (!f->reset_each && inflateGetDictionary(&f->zs, window, &n) != Z_OK)
        return SN_EWS_DEFLATE;
    inflateReset(&f->zs);
    f->ended = false;
    if (n > 0 && inflateSetDictionary(&f->zs, window, n) != Z_OK)
        return SN_EWS_DEFLATE;
    return 0;
}

int sn__inflate_push(sn__inflate *f, const void *in, size_t len, bool last, size_t max,
                     sn__bytes *out)
{
    int ready = inflate_ready(f);
    if (ready < 0)
        return ready;
    const uint8_t *p = in;
    while (len > 0) {
        size_t n = SN_MIN(len, (size_t)1 << 30);
        int rc = inflate_run(f, p, n, max, out);
        if (rc < 0)
            return rc;
        p += n;
        len -= n;
    }
    if (!last)
        return 0;
    int rc = inflate_run(f, tail, sizeof tail, max, out);
    return rc < 0 ? rc : sn__inflate_finish(f);
}

int sn__inflate_some(sn__inflate *f, const uint8_t **in, size_t *len, size_t room, sn__bytes *out,
                     bool *more)
{
    int ready = inflate_ready(f);
    if (ready < 0)
        return ready;
    int grown = sn__bytes_reserve(out, room);
    if (grown < 0)
        return grown; /* SN_ENOMEM, or SN_EWS_BUSY: the budget is spent */
    f->zs.next_in = (Bytef *)*in;
    f->zs.avail_in = (uInt)*len;
    *more = false;
    while (!f->ended && room > 0) {
        uInt in_before = f->zs.avail_in;
        f->zs.next_out = out->p + out->len;
        f->zs.avail_out = (uInt)room;
        int rc = inflate(&f->zs, Z_SYNC_FLUSH);
        size_t made = room - f->zs.avail_out;
        out->len += made;
        room -= made;
        if (rc == Z_STREAM_END)
            f->ended = true;
        else if (rc == Z_MEM_ERROR)
            return SN_ENOMEM;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return SN_EWS_DEFLATE;
        if (room == 0)
            *more = !f->ended; /* zlib may hold output back */
        else if (f->zs.avail_in == 0)
            break; /* all taken, nothing held back */
        else if (made == 0 && f->zs.avail_in == in_before)
            return SN_EWS_DEFLATE; /* no progress at all */
    }
    if (f->ended)
        f->zs.avail_in = 0; /* input after a final block is ignored */
    *in = f->zs.next_in;
    *len = f->zs.avail_in;
    return 0;
}

const uint8_t *sn__inflate_tail(void)
{
    return tail;
}

int sn__inflate_finish(sn__inflate *f)
{
    if (f->ended)
        return inflate_restart(f);
    if (f->reset_each)
        inflateReset(&f->zs);
    return 0;
}
