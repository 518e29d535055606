/* SPDX-License-Identifier: MIT */
/*
 * sn_ws_frame.h: the WebSocket codec (internal; rank 6, sn_ws_frame.c):
 * frame headers, masking, UTF-8, close payloads, the accept key. Pure code,
 * no I/O. Opcodes: enum sn_ws_type in socknet/ws.h.
 */
#ifndef SN_WS_FRAME_H
#define SN_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SN_WS_HEAD_MAX 14          /* bytes of the longest frame header */
#define SN_WS_ACCEPT_LEN 28        /* base64 of a SHA-1 */
#define SN_WS_CLOSE_NO_STATUS 1005 /* a close frame without a code */
#define SN_UTF8_REJECT 0xffffffffu

/* A frame header as sent. rsv holds RSV1..RSV3 as bits 2..0 (RSV1 = 4). */
typedef struct sn__ws_head {
    bool fin;
    uint8_t rsv;
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t len;
    size_t size; /* bytes of the header */
} sn__ws_head;

/* Decodes the header at buf[0, len): its size (2 to 14), 0 when more bytes
 * are needed, or SN_EWS_PROTOCOL (a length not in its shortest form, or
 * over 2^63). */
int sn__ws_head_decode(const uint8_t *buf, size_t len, sn__ws_head *h);
/* Masking rules for sn__ws_head_check. */
enum { SN_WS_UNMASKED = 0, SN_WS_MASKED = 1, SN_WS_EITHER = 2 };
/* 0, or SN_EWS_PROTOCOL: a reserved bit not in rsv_allowed, masking other
 * than the rule says, a reserved opcode, a fragmented, long (over 125) or
 * compressed control frame, a continuation with RSV1. */
int sn__ws_head_check(const sn__ws_head *h, uint8_t rsv_allowed, int masking);
/* Writes a header (mask NULL: unmasked); returns its size. */
size_t sn__ws_head_encode(uint8_t out[SN_WS_HEAD_MAX], bool fin, uint8_t rsv, uint8_t opcode,
                          const uint8_t *mask, uint64_t len);
/* XORs p[0, n) with the mask, p being at byte `offset` of the payload. */
void sn__ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);
/* Feeds n bytes to the UTF-8 validator: returns the new state (start and
 * end a message with 0: 0 means at a character boundary), or
 * SN_UTF8_REJECT, at the first byte that cannot be UTF-8, for good. */
uint32_t sn__utf8_step(uint32_t state, const uint8_t *p, size_t n);
/* Whether code may be sent in a close frame (RFC 6455 7.4 and IANA). */
bool sn__ws_close_code_ok(int code);
/* A close frame's payload: *code (SN_WS_CLOSE_NO_STATUS when empty) and the
 * reason's length (it follows the 2 code bytes). 0, SN_EWS_PROTOCOL (one
 * byte, or a code that may not be sent) or SN_EWS_UTF8 (the reason). */
int sn__ws_close_parse(const uint8_t *p, size_t n, int *code, size_t *reason_len);
/* The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 4.2.2):
 * 0, or SN_EINVAL (a key over 64 bytes). */
int sn__ws_accept_key(const char *key, size_t key_len, char out[SN_WS_ACCEPT_LEN + 1]);

#endif
