/* SPDX-License-Identifier: MIT */
/*
 * socknet.h: everything. A program writes `#include <socknet.h>` and links
 * with -lsocknet (pkg-config socknet). Each socknet/ header also compiles
 * on its own.
 */
#ifndef SOCKNET_H
#define SOCKNET_H

#include "socknet/common.h"
#include "socknet/error.h"
#include "socknet/addr.h"
#include "socknet/sock.h"
#include "socknet/chan.h"
#include "socknet/pool.h"
#include "socknet/tls.h"
#include "socknet/server.h"
#include "socknet/udp.h"
#include "socknet/http.h"
#include "socknet/ws.h"
#include "socknet/web.h"
#include "socknet/hub.h"

#endif
