/* SPDX-License-Identifier: MIT */
/*
 * sn_ws_int.h: the WebSocket session as sn_ws.c (frames, messages, close)
 * and sn_ws_handshake.c (the opening handshakes, extension negotiation)
 * share it, and sn_ws_share.c reads it for the hub (internal; rank 6).
 * sn_web.c checks configurations with sn__ws_config_check and reads a
 * session's state when its handler returns.
 */
#ifndef SN_WS_INT_H
#define SN_WS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/random.h>
#include "sn_bytes.h"
#include "sn_wait.h"
#include "sn_ws_deflate.h"
#include "sn_ws_frame.h"
#include "socknet.h"

/* What permessage-deflate was agreed on (window bits 8-15). */
typedef struct sn__pmd {
    bool on;
    int tx_bits, rx_bits;    /* ours to compress with, the peer's */
    bool tx_reset, rx_reset; /* no context takeover, each way */
} sn__pmd;

struct sn_ws {
    sn_conn *c;
    bool own_conn;
    bool server;      /* frames in must be masked */
    bool mask_out;    /* frames out are masked */
    int masking_in;   /* SN_WS_MASKED, _UNMASKED or _EITHER: what frames in may be */
    sn_ws_config cfg; /* resolved defaults; subprotocols not kept */
    char *subprotocol;
    char *target; /* the request target: "/chat/room?x=1" */
    sn__pmd pmd;

    /* the receiver's (one at a time) */
    struct sn__ws_part { /* a message being streamed by sn_ws_recv_part */
        int type;        /* its type, or 0 between messages */
        bool z, check, in_frame;
        uint32_t utf8;
        sn__ws_head h; /* the current frame */
        uint64_t pos;  /* its payload bytes read */
        size_t total;  /* the message's bytes given so far */
        /* compressed: input read but not inflated yet, and whether zlib may
         * hold output back, or the tail was fed */
        size_t zoff, zlen;
        bool zmore, ztail;
    } part;
    uint8_t *zin;     /* compressed input of a streamed message (allocated on first use) */
    sn__inflate *inf; /* with permessage-deflate, else NULL */
    sn__bytes msg;    /* the message being assembled, or the last one */
    uint8_t ctl[128]; /* a control frame's payload */
    int rerr;         /* sticky */
    bool close_received;
    int64_t ping_sent_at; /* the unanswered ping's time, or 0 */
    int64_t last_ping;    /* when the last ping went out, or the session began */
    size_t alive_bytes;   /* data payload bytes since the unanswered ping */

    /* the senders' */
    sn__lock msg_lock;   /* a whole message, or a fragmented one from begin to end */
    sn__lock frame_lock; /* one frame (or a control frame) */
    sn__deflate *def;    /* under msg_lock; with permessage-deflate, else NULL */
    sn__bytes zout;      /* compressed output, under msg_lock */
    sn__bytes masked;    /* masking scratch, under frame_lock */
    WC_RNG rng;          /* mask keys, under frame_lock */
    bool rng_ready;
    int frag_type; /* a fragmented message in progress: its type, else 0 */
    bool frag_first, frag_z;
    atomic_bool close_sent;

    /* the peer's close */
    atomic_int close_code;
    char close_reason[124];

    /* a higher layer's state (the hub's), released first by sn_ws_free */
    void *ext;
    void (*ext_release)(sn_ws *ws, void *ext);
};

/* Makes a session over c with the resolved configuration and what the
 * handshake agreed. 0 or SN_ENOMEM. */
int sn__ws_new(sn_ws **out, sn_conn *c, bool server, const sn_ws_config *cfg, const sn__pmd *pmd,
               const char *subprotocol, size_t subprotocol_len, const char *target,
               size_t target_len);
/* cfg with its defaults filled in (into *out). SN_EINVAL for bad values. */
int sn__ws_config_check(sn_ws_config *out, const sn_ws_config *cfg);
/* For the event model (sn_event.c), on the receiving side:
 * sn__ws_recv_ready is sn_ws_recv with SN_DEADLINE_NEVER for a message
 * whose first byte is there (pings and their timeout still bound it), and
 * returns 1 at once when none is, after answering what control frames are
 * there and sending a ping that is due (a ping unanswered for too long
 * fails the session: SN_ETIMEDOUT). sn__ws_due is when liveness next needs a look
 * (INT64_MAX: never, without pings). sn__ws_rtrim gives back what an idle
 * session's receiving side need not hold: the message buffer (the sending
 * side's: sn__ws_trim, sn_ws_share.h). */
int sn__ws_recv_ready(sn_ws *ws, sn_ws_msg *msg);
int64_t sn__ws_due(const sn_ws *ws);
void sn__ws_rtrim(sn_ws *ws);

#endif
