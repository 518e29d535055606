/* SPDX-License-Identifier: MIT */
/*
 * socknet/tls.h: TLS over wolfSSL: contexts, TLS connections, introspection.
 *
 * An sn_tls is a TLS context: a role (server or client), certificates,
 * trust, verification, versions, ciphers, ALPN and the rest, checked and
 * built once by sn_tls_new and immutable afterwards. Many connections (and
 * a server's listeners) share one. TLS is a transport under the same
 * buffered channels (socknet/chan.h): once a connection is TLS, every
 * sn_read / sn_write / sn_flush / sn_shutdown_write and every deadline
 * work as on plain TCP.
 *
 *     char why[SN_TLS_REASON_MAX];
 *     sn_tls_config tc = { .role = SN_TLS_CLIENT,
 *                          .ca = &(sn_tls_source){ .file = "ca.pem" }, .nca = 1,
 *                          .reason = why, .reason_cap = sizeof why };
 *     sn_tls *tls = NULL;
 *     sn_conn *c = NULL;
 *     int rc = sn_tls_new(&tls, &tc);
 *     if (rc < 0) fprintf(stderr, "%s: %s\n", sn_strerror(rc), why);
 *     else rc = sn_tls_connect(&c, tls, "example.net", 443, NULL, NULL, 0);
 *     if (rc < 0 && c) fprintf(stderr, "%s: %s\n", sn_strerror(rc), sn_tls_reason(c));
 *     sn_tls_free(tls); // the connection keeps its own reference
 *     ...
 *     sn_conn_free(c); // also the connection of a failed handshake
 *
 * Defaults are the safe ones: TLS 1.2 and 1.3 only (1.0 and 1.1 are always
 * refused), clients verify the server's chain against the system's CAs and
 * check the host name; servers ask for no client certificate unless told.
 *
 * Errors: every failure says why, in a one-line reason next to the SN_E*
 * code. sn_tls_new writes it where cfg->reason points: the field and the
 * value of a configuration error ("sigalgs: rsa_pss_rsae_sha255 is not a
 * signature algorithm ...", "cert.key server.key: wrong password, ...",
 * "ciphers_tls12: AES256-SHA256 (TLS_RSA_WITH_AES_256_CBC_SHA256) is not
 * known to this wolfSSL build ..."). A failed handshake returns one of the
 * SN_ETLS_* codes (see socknet/error.h) and the connection keeps what went
 * wrong (sn_tls_reason: the certificate verification error, the alert the
 * peer sent and what it usually means, the versions allowed), also after
 * sn_tls_connect, which hands the failed connection back for that. A
 * server reports each failed handshake to its on_error with the client's
 * address and the reason, and counts them by kind (socknet/server.h). Reads
 * return SN_EOF at the peer's close_notify, and also when the peer closes
 * TCP without one (as most TLS stacks accept; a protocol that must detect
 * truncation frames its own messages). Closing (sn_conn_close,
 * sn_shutdown_write, a server's end of a handler) sends close_notify.
 *
 * Thread safety: an sn_tls may be used by any number of threads once made
 * (it is reference counted: sn_tls_ref / sn_tls_free). The calls on a
 * connection follow socknet/chan.h (one reader and one writer thread;
 * the wolfSSL session is locked around each record operation, so the
 * reader and writer may run at once); the getters belong to either.
 * Ownership: sn_tls_new gives the caller one reference; every TLS
 * connection and server holds its own. Strings and certificates the getters
 * return belong to the connection and live until it is freed.
 */
#ifndef SOCKNET_TLS_H
#define SOCKNET_TLS_H

#include "socknet/chan.h"
#include "socknet/common.h"
#include "socknet/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_tls sn_tls;

typedef enum sn_tls_role { SN_TLS_SERVER = 1, SN_TLS_CLIENT = 2 } sn_tls_role;

/* Peer verification (OpenHarmony's two-way authentication for servers). */
typedef enum sn_tls_verify {
    SN_TLS_VERIFY_DEFAULT = 0,  /* servers: NONE; clients: REQUIRED */
    SN_TLS_VERIFY_NONE = 1,     /* servers: ask no certificate; clients: accept
                                   any server (no chain or host name check:
                                   an explicit, unsafe opt-out) */
    SN_TLS_VERIFY_OPTIONAL = 2, /* servers: ask for one, verify it if sent */
    SN_TLS_VERIFY_REQUIRED = 3, /* a verified certificate or the handshake fails */
} sn_tls_verify;

/* Protocol versions, as on the wire. */
#define SN_TLS_1_2 0x0303
#define SN_TLS_1_3 0x0304

/* Room for any reason sn_tls_new writes (cfg->reason) or a connection
 * keeps (sn_tls_reason), NUL included. */
#define SN_TLS_REASON_MAX 256

/* Where a certificate, key or CA comes from: a file, or memory (data, len).
 * PEM or DER is recognized from the content. */
typedef struct sn_tls_source {
    const char *file;
    const void *data;
    size_t len;
} sn_tls_source;

/* A certificate chain (leaf first) and its private key. */
typedef struct sn_tls_cert {
    sn_tls_source chain;
    sn_tls_source key;
    const char *password; /* for an encrypted PEM key; NULL = not encrypted */
    const char *name;     /* in sni_certs: the server name it serves, exact
                             ("www.example.net") or a "*." wildcard of one
                             label; case-insensitive */
} sn_tls_cert;

typedef struct sn_tls_config {
    int role; /* sn_tls_role; required */

    /* Own certificate: required for servers; for clients, sent when the
     * server asks (mutual TLS). */
    sn_tls_cert cert;
    /* Servers: other certificates, chosen by the name the client sends
     * (SNI); a client sending no name or an unlisted one gets `cert`. */
    const sn_tls_cert *sni_certs;
    int nsni_certs;

    /* Trust: CA certificates (files or memory, each PEM with any number of
     * certificates, or one DER) and a directory of PEM files. */
    const sn_tls_source *ca;
    int nca;
    const char *ca_dir;
    int system_ca; /* the system's CAs: SN_ON / SN_OFF; default on for
                      clients given no ca or ca_dir, else off */

    int verify;          /* sn_tls_verify */
    int verify_depth;    /* intermediates allowed; 0 = 9 */
    int verify_hostname; /* clients: check the certificate against the name
                            given to sn_tls_connect / sn_tls_upgrade;
                            default SN_ON; SN_OFF is the explicit opt-out
                            (OpenHarmony's skipRemoteValidation) */

    int min_version; /* SN_TLS_1_2 (default) or SN_TLS_1_3 */
    int max_version; /* SN_TLS_1_2 or SN_TLS_1_3 (default) */

    /* Lists, ':'-separated. Cipher suites default to AEAD suites with
     * forward secrecy (TLS 1.3: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305;
     * TLS 1.2: ECDHE and DHE with the same), not wolfSSL's own default
     * list; sigalgs and groups default to wolfSSL's. A name wolfSSL does
     * not know, a suite in the other version's list, or a list leaving an
     * enabled version without a suite is an error of sn_tls_new
     * (SN_ETLS_CONFIG), never a silent fallback. */
    /* Servers allowing TLS 1.2 (with or without 1.3): the list must hold a
     * suite that one of the certificates (cert or any of sni_certs) can
     * serve: ECDSA suites need an EC (or Ed25519/Ed448) key, RSA suites an
     * RSA key; anonymous suites need none, PSK suites cannot be set up
     * here. A list serving none of them is SN_ETLS_CONFIG even when TLS 1.3
     * is allowed too (1.3 suites do not depend on the key): its 1.2 suites
     * could never be chosen. Clients cannot know the server's key: their
     * lists are not checked this way.
     * Anonymous suites (ADH-*, AECDH-*) are SN_ETLS_CONFIG wherever
     * certificates are verified (clients by default, servers with verify
     * set): the peer could pick one and show no certificate at all. Set
     * verify to SN_TLS_VERIFY_NONE to use them. */
    /* Suites by OpenSSL's or IANA's name ("ECDHE-RSA-AES128-GCM-SHA256" or
     * "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"; TLS 1.3: "TLS_AES_256_GCM_SHA384"
     * or wolfSSL's "TLS13-AES256-GCM-SHA384"). A suite this wolfSSL build
     * lacks is an error that says so: Debian's has no plain RSA key
     * exchange ("AES256-SHA256"), no ARIA and no CCM_8, for instance. */
    const char *ciphers_tls12;
    const char *ciphers_tls13;
    /* Or both versions' suites in one list, as OpenSSL's users and
     * OpenHarmony's cipherSuite write them: each goes to its version, and
     * a version it names no suite of keeps the default (as OpenSSL does).
     * SN_EINVAL with ciphers_tls12 or ciphers_tls13 set too. */
    const char *ciphers;
    /* Signature algorithms this side offers the peer, ':'- or
     * ','-separated, by IANA's name as OpenSSL and OpenHarmony write them
     * ("rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256:rsa_pkcs1_sha256:
     * ed25519") or wolfSSL's ("RSA-PSS+SHA256:ECDSA+SHA256:RSA+SHA256:
     * ED25519"), case-insensitive; wolfSSL 5.5 offers both RSA-PSS kinds
     * (rsae and pss) for either. What it accepts in
     * the peer's signatures (in TLS 1.2 a server refuses a client
     * certificate signed otherwise). With wolfSSL 5.5 they do not bind this
     * side's own signature, made with its key's algorithm from the peer's
     * list: a list without the own key's type (RSA only, an ECDSA key) is
     * therefore no error. */
    const char *sigalgs;
    /* Key exchange groups: "X25519:P-256:P-384" (also secp256r1,
     * prime256v1, X448, ffdhe2048..ffdhe8192), case-insensitive. */
    const char *groups;
    int prefer_server_ciphers; /* servers: SN_ON (default) the server's order;
                                  SN_OFF the client's (OpenHarmony's
                                  useRemoteCipherPrefer) */

    /* ALPN, by preference, ','- or ':'-separated like the other lists
     * ("h2,http/1.1" or "h2:http/1.1"; no protocol name has either).
     * Clients offer it; servers pick the first of theirs that the client
     * offers. */
    const char *alpn;
    int alpn_required; /* SN_ON (default): no protocol in common fails the
                          handshake (SN_ETLS_ALPN); SN_OFF: go on without */

    /* Session resumption by tickets; SN_ON (default). A client keeps the
     * last session per server name, for one use. A client that allows TLS
     * 1.3 keeps only TLS 1.3 sessions, so it does not resume with servers
     * that stop at TLS 1.2: wolfSSL 5.5 fails the handshake when a TLS 1.2
     * session is offered to a server that answers in TLS 1.3 (one that
     * was upgraded, or another under the same name). */
    int tickets;
    int handshake_timeout_ms; /* ms; 0 = 10000; SN_TIMEOUT_NEVER */
    /* Where sn_tls_new writes why it failed (NUL-terminated, cut at
     * reason_cap bytes; SN_TLS_REASON_MAX is enough), "" when it succeeds;
     * NULL = nowhere. Only sn_tls_new writes it, during the call. */
    char *reason;
    size_t reason_cap;
    int handshakes_max; /* servers: handshakes at once over all the
                           connections of this context; more wait
                           (within their handshake deadline) for a
                           turn: a thread sleeps until one is given
                           back, a fiber checks every 2 ms (parking
                           only itself); one that gets none in time
                           fails with SN_ETIMEDOUT; 0 = no limit */
} sn_tls_config;

/* Builds a context: loads and checks every certificate, key and list.
 * Returns 0, SN_EINVAL (NULL arguments, bad role, switch, version or
 * count), SN_ETLS_CERT (a certificate, key or CA that cannot be read or
 * parsed, an encrypted key without a password, a wrong password, a key
 * that does not match its certificate), SN_ETLS_CONFIG (a list selecting
 * nothing usable: an unknown name, a suite or group this wolfSSL build
 * lacks, a version left without a suite, a server's TLS 1.2 suites that
 * none of its keys can serve; a server without a certificate; min above
 * max), SN_ENOENT / SN_EACCES (a file), SN_ENOMEM. On failure *out is
 * NULL and cfg->reason (when set) names the field and the value. */
SN_API int sn_tls_new(sn_tls **out, const sn_tls_config *cfg);

/* Takes one more reference (returns t). */
SN_API sn_tls *sn_tls_ref(sn_tls *t);

/* Drops a reference; the last one frees the context. NULL is a no-op. */
SN_API void sn_tls_free(sn_tls *t);

/* The role the context was made with. */
SN_API int sn_tls_role_of(const sn_tls *t);

/* ---- TLS connections --------------------------------------------------- */

/* Connects over TCP (as sn_conn_connect) and performs the client handshake,
 * all within dl (SN_DEADLINE_DEFAULT: the connect timeout, then the
 * handshake timeout). host is sent as the server name (SNI, unless it is a
 * numeric address) and is the name the certificate must match (a numeric
 * address must be among its IP addresses). Returns 0
 * (*out is a TLS connection), the errors of sn_conn_connect, or those of
 * sn_tls_upgrade. *out is NULL after a failed connect, and after a
 * handshake that failed it is the failed connection, kept so that
 * sn_tls_reason (and the getters) can tell what went wrong: free it with
 * sn_conn_free (which takes NULL too). */
SN_API int sn_tls_connect(sn_conn **out, sn_tls *tls, const char *host, int port,
                          const sn_sock_options *opt, const sn_conn_config *cfg, sn_deadline dl);

/*
 * Turns a connected plain connection into TLS (STARTTLS, Ktor's tls()):
 * performs the handshake in the role of tls and, on success, every later
 * read and write goes through TLS. Whatever is still in c's write buffer is
 * flushed first as plain text; bytes already in its read buffer are an
 * error (SN_EBADSTATE: the peer spoke TLS before the upgrade was agreed).
 * name: clients, the server name to send and to verify (NULL: no SNI and,
 * with hostname verification on, SN_EINVAL); servers: ignored.
 * dl: SN_DEADLINE_DEFAULT = the context's handshake timeout; a server
 * context with handshakes_max waits within it for a turn first.
 * Returns 0, SN_ETIMEDOUT, SN_ETLS_HANDSHAKE, SN_ETLS_VERIFY,
 * SN_ETLS_HOSTNAME, SN_ETLS_NO_CERT, SN_ETLS_VERSION, SN_ETLS_CIPHER,
 * SN_ETLS_ALPN, SN_ETLS_ALERT, SN_EOF / SN_ECONNRESET (the peer left),
 * SN_EBADSTATE (already TLS, or unread bytes), SN_EINVAL, SN_ENOMEM. On
 * failure the connection is unusable (its errors are sticky) and should be
 * freed; sn_tls_reason tells why.
 */
SN_API int sn_tls_upgrade(sn_conn *c, sn_tls *tls, const char *name, sn_deadline dl);

/* Whether c runs over TLS (1) or not (0). */
SN_API int sn_conn_is_tls(const sn_conn *c);

/* The detailed reason of the last TLS failure on c (wolfSSL's message, the
 * verification error, the peer's alert), or "" if none. Valid until the
 * connection is closed (sn_conn_close or sn_conn_free). */
SN_API const char *sn_tls_reason(const sn_conn *c);

/* ---- introspection: after a successful handshake ------------------------
 * Each returns SN_ENOTLS for a connection that is not TLS. */

typedef struct sn_tls_info {
    int version;                /* SN_TLS_1_2 / SN_TLS_1_3 */
    const char *version_name;   /* "TLSv1.3" */
    const char *cipher;         /* IANA: "TLS_AES_128_GCM_SHA256" */
    const char *cipher_openssl; /* OpenSSL style: "TLS_AES_128_GCM_SHA256",
                                   "ECDHE-RSA-AES128-GCM-SHA256" */
    const char *group;          /* the key exchange group ("SECP256R1",
                                   "X25519"), or NULL when wolfSSL does not
                                   say (a resumed session, plain DHE) */
    const char *alpn;           /* the protocol chosen, or NULL */
    const char *server_name;    /* client: sent; server: received; or NULL */
    int resumed;                /* 1 when the session was resumed */
    int peer_verified;          /* 1: the peer's certificate was verified;
                                   0: none was asked, sent or checked */
    long verify_result;         /* X.509 code: 0 (ok) or the error */
    const char *verify_reason;  /* its text ("ok" for 0) */
    const char *sigalgs;        /* the configured signature algorithms, or
                                   NULL (wolfSSL's defaults) */
} sn_tls_info;

/* Fills *out. Returns 0, SN_ENOTLS, SN_EBADSTATE (no handshake done). */
SN_API int sn_tls_info_get(sn_conn *c, sn_tls_info *out);

/* The signature algorithm this side signed the handshake with (servers in
 * a full handshake; clients that sent a certificate), named as in sigalgs
 * lists ("ECDSA+SHA256", "RSA-PSS+SHA256", "ED25519"), into buf (cap bytes,
 * NUL-terminated). Returns its length, or SN_ETLS_UNAVAILABLE where
 * wolfSSL 5.5 cannot tell: this side did not sign (it keeps no record of
 * the peer's signature), a resumed session, or RSA in TLS 1.2 (PKCS#1 or
 * PSS: it does not say); SN_ERANGE, SN_EINVAL, SN_ENOTLS, SN_EBADSTATE. */
SN_API int sn_tls_sigalg_used(sn_conn *c, char *buf, size_t cap);

/* Servers: the signature algorithms the client offered (its
 * signature_algorithms extension, OpenHarmony's getSignatureAlgorithms), in
 * its order, IANA names ':'-separated ("ecdsa_secp256r1_sha256:
 * rsa_pss_rsae_sha256:..."; a code without a name as "0x0fe0"; at most 64),
 * into buf (cap bytes, NUL-terminated); "" when it sent none (TLS 1.2
 * only). Read from the ClientHello as it comes in: wolfSSL 5.5 has no call
 * that tells it. Returns the length; SN_ETLS_UNAVAILABLE for clients (a
 * server's list comes only in a TLS 1.3 CertificateRequest, encrypted, and
 * wolfSSL keeps no copy) and for a ClientHello split over records;
 * SN_ERANGE, SN_EINVAL, SN_ENOTLS, SN_EBADSTATE (no handshake done). */
SN_API int sn_tls_peer_sigalgs(sn_conn *c, char *buf, size_t cap);

/* One certificate, as the getters below return it. */
typedef struct sn_tls_x509 {
    const uint8_t *der; /* the DER encoding (owned by the connection) */
    size_t der_len;
    char subject[256]; /* one line: "/C=FR/O=Example/CN=www.example.net" */
    char issuer[256];
    char serial[80];    /* hex, colon-separated */
    int64_t not_before; /* Unix time, s */
    int64_t not_after;  /* Unix time, s */
    char san[512];      /* subject alternative DNS names, ','-separated
                           (truncated at a name boundary if longer) */
} sn_tls_x509;

/* The peer's certificate chain as it sent it: idx 0 is its own, 1.. the
 * intermediates. Returns the number of certificates in the chain (> idx),
 * SN_ENOENT (no certificate, or idx past the end), SN_ENOTLS,
 * SN_EBADSTATE, SN_EINVAL. */
SN_API int sn_tls_peer_cert(sn_conn *c, int idx, sn_tls_x509 *out);

/* The certificate this side sent (or would send). Returns 0, SN_ENOENT
 * (none), SN_ENOTLS, SN_EINVAL. */
SN_API int sn_tls_local_cert(sn_conn *c, sn_tls_x509 *out);

/* PEM of a certificate's DER into buf (cap bytes, NUL-terminated). Returns
 * the length without the NUL, SN_ERANGE (too small), SN_EINVAL. */
SN_API ssize_t sn_tls_x509_pem(const sn_tls_x509 *x, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
