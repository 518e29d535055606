/* SPDX-License-Identifier: MIT */
/*
 * sn_bytes.h: growable byte buffers that may charge a budget shared by
 * many of them (sn_ws_budget of ws.h) (internal; rank 6, sn_bytes.c): the
 * messages a WebSocket session assembles and compresses.
 */
#ifndef SN_BYTES_H
#define SN_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include "socknet.h"

/* A growable byte buffer. With a budget, the capacity beyond the buffer's
 * own SN__BYTES_OWN bytes is charged to it. */
typedef struct sn__bytes {
    uint8_t *p;
    size_t len, cap;
    sn_ws_budget *budget; /* NULL = none */
} sn__bytes;
#define SN__BYTES_OWN ((size_t)128 << 10)
/* Room for extra more bytes: 0, SN_ENOMEM, SN_EWS_BUSY (the budget is
 * spent). */
int sn__bytes_reserve(sn__bytes *b, size_t extra);
/* Frees the memory (the budget stays). */
void sn__bytes_free(sn__bytes *b);

#endif
