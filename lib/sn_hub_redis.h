/* SPDX-License-Identifier: MIT */
/*
 * sn_hub_redis.h: what the tests reach of the Redis engine.
 */
#ifndef SN_HUB_REDIS_H
#define SN_HUB_REDIS_H

#include "socknet/hub.h"

/* The engine's thread sleeps ms before it reads again: a server that falls
 * behind Redis (its subscriber connection's output piles up in Redis). */
void sn__hub_redis_stall(sn_hub_engine *e, int ms);

/* The subscriber connection's receive buffer, before the engine's hub
 * starts: small, its server falls behind sooner (the system's can hold
 * tens of MiB on loopback). */
void sn__hub_redis_rcvbuf(sn_hub_engine *e, int bytes);

#endif
