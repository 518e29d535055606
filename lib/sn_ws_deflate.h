/* SPDX-License-Identifier: MIT */
/*
 * sn_ws_deflate.h: permessage-deflate (internal; rank 6, sn_ws_deflate.c):
 * a compressor and a decompressor of messages, pure code with no I/O.
 * Both are opaque, so that only sn_ws_deflate.c includes zlib's header.
 * zlib's state is allocated on first use: a session that never sends or
 * never receives a compressed message pays for the small struct only.
 */
#ifndef SN_WS_DEFLATE_H
#define SN_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sn_bytes.h"

typedef struct sn__deflate sn__deflate;
typedef struct sn__inflate sn__inflate;
/* window_bits 8-15 (8 compresses with 9, safely), level 0-9, mem_level 1-9.
 * 0, SN_EINVAL or SN_ENOMEM (*out untouched). */
int sn__deflate_new(sn__deflate **out, int window_bits, bool no_takeover, int level, int mem_level);
void sn__deflate_free(sn__deflate *d); /* NULL is a no-op */
/* Compresses a piece of a message, appending to out; `last` ends the message
 * (sync flush, its 00 00 ff ff removed). 0, SN_ENOMEM. */
int sn__deflate_push(sn__deflate *d, const void *in, size_t len, bool last, sn__bytes *out);
/* Tests: whether zlib's state is allocated yet (by the first push). */
bool sn__deflate_ready(const sn__deflate *d);

/* window_bits 8-15. 0, SN_EINVAL or SN_ENOMEM (*out untouched). */
int sn__inflate_new(sn__inflate **out, int window_bits, bool no_takeover);
void sn__inflate_free(sn__inflate *f); /* NULL is a no-op */
/* Tests: whether zlib's state is allocated yet. */
bool sn__inflate_ready(const sn__inflate *f);
/* Inflates a piece of a compressed message, appending to out but never
 * past max bytes in all; `last` ends the message. 0, SN_EWS_TOO_BIG (more
 * than max: a decompression bomb stops there), SN_EWS_DEFLATE (corrupt),
 * SN_ENOMEM. */
int sn__inflate_push(sn__inflate *f, const void *in, size_t len, bool last, size_t max,
                     sn__bytes *out);
/* The pull side, for messages taken in bounded pieces: inflates from *in
 * (*len bytes; both advanced past what was taken) into out, adding at most
 * room bytes; *more says zlib may still hold output back (call again, even
 * with no input). The caller feeds sn__inflate_tail()'s 4 bytes after the
 * message's last byte, then calls sn__inflate_finish. 0, SN_EWS_DEFLATE,
 * SN_ENOMEM. */
int sn__inflate_some(sn__inflate *f, const uint8_t **in, size_t *len, size_t room, sn__bytes *out,
                     bool *more);
const uint8_t *sn__inflate_tail(void);
int sn__inflate_finish(sn__inflate *f);

#endif
