/* SPDX-License-Identifier: MIT */
/*
 * sn_ws_share.h: sharing encoded frames (internal; rank 6, sn_ws_share.c):
 * the hub's window into a session. Never wait: a lock that is taken gives
 * SN_EBUSY.
 */
#ifndef SN_WS_SHARE_H
#define SN_WS_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>
#include "socknet.h"

/* Sends a complete unmasked frame: 0 (all out), 1 (the rest is buffered:
 * sn__ws_try_flush when the socket is writable), SN_EAGAIN (the socket is
 * full, nothing taken), SN_EBUSY (another sender holds the session),
 * SN_EBADSTATE (a close was sent), SN_EOPNOTSUPP (the session masks), or
 * the connection's error. is_close: the frame is a close (none may follow). */
int sn__ws_try_send_frame(sn_ws *ws, const void *frame, size_t len, bool is_close);
/* Sends n complete unmasked frames in one system call, as many as the
 * socket takes: *taken frames (the last maybe in part, its rest buffered:
 * then 1 is returned); else as sn__ws_try_send_frame. */
int sn__ws_try_send_frames(sn_ws *ws, const struct iovec *frames, int n, int *taken);
/* Sends what try_send_frame buffered: 0, SN_EAGAIN, SN_EBUSY, or an error. */
int sn__ws_try_flush(sn_ws *ws);
/* Gives back the session's empty write buffer (the hub's members idle
 * between messages, which it writes without that buffer); nothing when
 * another sender holds the session. */
void sn__ws_trim(sn_ws *ws);
/* Whether the session's frames are masked (then frames cannot be shared). */
bool sn__ws_masks(const sn_ws *ws);
/* The descriptor under the session (for epoll). */
int sn__ws_fd(sn_ws *ws);
/* A higher layer's pointer: release(ws, ext) runs first in sn_ws_free. The
 * caller serializes get and set. */
void *sn__ws_ext(const sn_ws *ws);
void sn__ws_set_ext(sn_ws *ws, void *ext, void (*release)(sn_ws *ws, void *ext));

#endif
