/* SPDX-License-Identifier: MIT */
/*
 * sn_ws_share.c: what the hub needs of a session to share one encoded
 * frame among many sessions: a send that never waits (a taken lock or a
 * full socket is an answer, not a wait) and a slot for its own state.
 *
 * Locks: msg_lock, then frame_lock, as in sn_ws.c, but only tried.
 */
#include <stdatomic.h>
#include "sn_chan_int.h"
#include "sn_sock_int.h"
#include "sn_wait.h"
#include "sn_ws_int.h"
#include "sn_ws_share.h"
#include "socknet.h"

/* The session's locks, tried: true when both are taken. */
static bool try_hold(sn_ws *ws)
{
    if (!sn__lock_try(&ws->msg_lock))
        return false; /* a message, maybe in fragments, is on its way */
    if (sn__lock_try(&ws->frame_lock))
        return true;
    sn__lock_give(&ws->msg_lock);
    return false;
}

static void unhold(sn_ws *ws)
{
    sn__lock_give(&ws->frame_lock);
    sn__lock_give(&ws->msg_lock);
}

int sn__ws_try_send_frames(sn_ws *ws, const struct iovec *frames, int n, int *taken)
{
    *taken = 0;
    if (ws->mask_out)
        return SN_EOPNOTSUPP;
    if (!try_hold(ws))
        return SN_EBUSY;
    int rc = SN_EBADSTATE;
    if (!atomic_load(&ws->close_sent) && (rc = sn__conn_try_flush(ws->c)) == 0)
        rc = sn__conn_try_writev(ws->c, frames, n, taken);
    unhold(ws);
    return rc;
}

int sn__ws_try_send_frame(sn_ws *ws, const void *frame, size_t len, bool is_close)
{
    if (ws->mask_out)
        return SN_EOPNOTSUPP;
    if (!try_hold(ws))
        return SN_EBUSY;
    struct iovec iov = {(void *)frame, len};
    int taken, rc = SN_EBADSTATE;
    if (!atomic_load(&ws->close_sent) && (rc = sn__conn_try_flush(ws->c)) == 0)
        rc = sn__conn_try_writev(ws->c, &iov, 1, &taken);
    if (rc >= 0 && is_close)
        atomic_store(&ws->close_sent, true);
    unhold(ws);
    return rc;
}

void sn__ws_trim(sn_ws *ws)
{
    if (!try_hold(ws))
        return;
    sn__conn_trim(ws->c);
    unhold(ws);
}

int sn__ws_try_flush(sn_ws *ws)
{
    if (!sn__lock_try(&ws->frame_lock))
        return SN_EBUSY;
    int rc = sn__conn_try_flush(ws->c);
    sn__lock_give(&ws->frame_lock);
    return rc;
}

bool sn__ws_masks(const sn_ws *ws)
{
    return ws->mask_out;
}

int sn__ws_fd(sn_ws *ws)
{
    return sn_conn_sock(ws->c)->fd;
}

void *sn__ws_ext(const sn_ws *ws)
{
    return ws->ext;
}

void sn__ws_set_ext(sn_ws *ws, void *ext, void (*release_fn)(sn_ws *ws, void *ext))
{
    ws->ext = ext;
    ws->ext_release = release_fn;
}
