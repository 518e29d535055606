/* SPDX-License-Identifier: MIT */
/*
 * sn_event_int.h: the event model's side for servers (internal; rank 7,
 * sn_event.c). A server in event mode runs a loop over its own pool and
 * hands each connection to it from the connection's job.
 */
#ifndef SN_EVENT_INT_H
#define SN_EVENT_INT_H

#include <stdbool.h>
#include "socknet.h"

/* The loop of a server whose pool is pool (the caller's still): in fiber
 * mode over pool itself (a socket's callbacks run on the fiber thread that
 * accepted it); in thread mode over a thread pool of its own, with at most
 * workers threads, because the server's queue limits, expiry and drop are
 * for its connections' jobs. */
int sn__loop_for_server(sn_loop **out, sn_pool *pool, int workers);
/* Closes the loop's sockets (close error SN_ESTOPPED) and waits for their
 * ends; the pool is the caller's to stop. */
void sn__loop_end(sn_loop *l);
/* Its sockets now, from any thread. */
int sn__loop_count(sn_loop *l);
/* From a server's job: c becomes an event socket, setup(e, user) sets its
 * callbacks, and it starts right here (its connect callback runs, and in
 * fiber mode it lives on this thread from now on; when the loop stops
 * meanwhile, its close callback runs instead, with SN_ESTOPPED). The loop
 * owns c from the call on. 0, or SN_ENOMEM (c is freed). */
int sn__ev_adopt(sn_loop *l, sn_conn *c, void (*setup)(sn_ev *e, void *user), void *user);

#endif
