/* SPDX-License-Identifier: MIT */
/*
 * sn_tls_int.h: what sn_tls.c offers beyond tls.h (internal; rank 5), for
 * the tests.
 */
#ifndef SN_TLS_INT_H
#define SN_TLS_INT_H

#include <stddef.h>
#include "socknet.h"

/* Tests: bytes of the buffers a TLS connection's transport holds now (its
 * read-ahead and scratch buffers); 0 for a plain connection. */
size_t sn__tls_held(const sn_conn *c);

#endif
