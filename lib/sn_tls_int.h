/* SPDX-License-Identifier: MIT */
/*
 * sn_tls_int.h: what sn_tls.c offers beyond tls.h (internal; rank 5), for
 * the tests.
 */
#ifndef SN_TLS_INT_H
#define SN_TLS_INT_H

#include <stddef.h>
#include <stdint.h>
#include "socknet.h"

/* Tests: bytes of the buffers a TLS connection's transport holds now (its
 * read-ahead and scratch buffers); 0 for a plain connection. */
size_t sn__tls_held(const sn_conn *c);

/* Tests: the signature algorithms of the ClientHello in the TLS record at
 * r[0..len) (sn_tls_peer_sigalgs reads them so): their count, up to 64 in
 * out, or -1 for bytes that are not such a record holding a whole hello. */
int sn__tls_hello_sigalgs(const uint8_t *r, size_t len, uint16_t *out);

#endif
