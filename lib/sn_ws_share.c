/*
 * sn_ws_share.c: what the hub needs of a session to share one encoded
 * frame among many sessions: a send that never waits (a taken lock or a
 * full socket is an answer, not a wait) and a slot for its own state.
 *
 * Locks: msg_lock, then frame_lock, as in sn_ws.c, but only tried.
 */
#include "sn_ws_int.h"

static bool try_take(sn__flock *l)
{
    return pthread_mutex_trylock(&l->mu) == 0;
}

static void release(sn__flock *l)
{
    sn__mutex_unlock(&l->mu);
}

int sn__ws_try_send_frame(sn_ws *ws, const void *frame, size_t len, bool is_close)
{
    if (ws->mask_out)
        return SN_EOPNOTSUPP;
    if (!try_take(&ws->msg_lock))
        return SN_EBUSY; /* a message, maybe in fragments, is on its way */
    int rc = SN_EBUSY;
    if (try_take(&ws->frame_lock)) {
        if (atomic_load(&ws->close_sent))
            rc = SN_EBADSTATE;
        else if ((rc = sn__conn_try_flush(ws->c)) == 0)
            rc = sn__conn_try_write(ws->c, frame, len);
        if (rc >= 0 && is_close)
            atomic_store(&ws->close_sent, true);
        release(&ws->frame_lock);
    }
    release(&ws->msg_lock);
    return rc;
}

int sn__ws_try_flush(sn_ws *ws)
{
    if (!try_take(&ws->frame_lock))
        return SN_EBUSY;
    int rc = sn__conn_try_flush(ws->c);
    release(&ws->frame_lock);
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
