/* SPDX-License-Identifier: MIT */
/*
 * sn_tls_names.h: the names users write for TLS cipher suites and signature
 * algorithms (OpenSSL's and IANA's), and what wolfSSL calls them.
 */
#ifndef SN_TLS_NAMES_H
#define SN_TLS_NAMES_H

#include <stddef.h>
#include <stdint.h>

/* A cipher suite OpenSSL 3.0 knows, whether or not wolfSSL was built with it. */
typedef struct sn__tls_suite {
    const char *iana;    /* "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" */
    const char *openssl; /* "ECDHE-RSA-AES128-GCM-SHA256" */
    uint8_t v13;         /* 1: a TLS 1.3 suite */
    const char *kx;      /* key exchange, as OpenSSL says it: "ECDH", "DH", "RSA", "PSK", ... */
} sn__tls_suite;

/* The suite named name[0..n) in either spelling (case-insensitive), or NULL. */
const sn__tls_suite *sn__tls_suite_find(const char *name, size_t n);

/* wolfSSL's spelling ("RSA-PSS+SHA256") of the signature algorithm named
 * name[0..n) in IANA's ("rsa_pss_rsae_sha256"), OpenSSL's or wolfSSL's own
 * spelling (case-insensitive), or NULL for a name none of them has. */
const char *sn__tls_sigalg_wolf(const char *name, size_t n);

/* The IANA name of a TLS SignatureScheme code (0x0804: "rsa_pss_rsae_sha256"),
 * or NULL for a code without one. */
const char *sn__tls_sigalg_iana(unsigned code);

#endif
