/* SPDX-License-Identifier: MIT */
/*
 * sn_tls.c: TLS contexts over wolfSSL, the TLS transport under the
 * channels, the handshake with its deadline, and introspection.
 *
 * A context (struct sn_tls) wraps a WOLFSSL_CTX built once from the
 * configuration and never changed afterwards, plus one WOLFSSL_CTX per SNI
 * certificate (the servername callback moves a session onto one of them).
 * The only mutable parts are the count of handshakes in progress (under
 * turn_mu, with turn_cv for callers waiting for a turn, threads and fibers
 * alike: sn_wait.h) and the clients' session cache (under cache_mu).
 *
 * The transport: wolfSSL reads and writes the descriptor through our I/O
 * callbacks, which use MSG_DONTWAIT and never wait; a call that would wait
 * comes back as SN_EAGAIN with the poll events wanted, and the channel (or
 * the handshake loop here) waits with sn__wait_fd, which parks the fiber in
 * fiber mode. A wolfSSL session cannot be read and written by two threads
 * at once, so every call into it takes the transport's mutex; none of them
 * waits, so the lock is held for the time of one record at most. The one
 * wait in the kernel, a thread-mode reader's blocking recv (tls_recv_wait,
 * one system call where poll + recv would be two), fills the read-ahead
 * buffer without the mutex, so a writer on another thread goes on.
 *
 * Locks: tt->mu (a session), t->cache_mu (a context's session cache) and
 * t->turn_mu (its handshake turns) are never nested (turn_cv's own queue
 * lock comes after turn_mu).
 */
#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include "sn_chan_int.h"
#include "sn_tls_int.h"
#include "sn_tls_names.h"
#include "sn_transport.h"
#include "sn_util.h"
#include "sn_wait.h"
#include "socknet.h"

#define SN_TLS_HANDSHAKE_DEFAULT 10000 /* ms */
#define SN_TLS_DEPTH_DEFAULT 9
#define SN_TLS_FILE_MAX (16 << 20) /* bytes of a certificate or key file */
#define SN_TLS_CACHE 16            /* client sessions kept per context */
#define SN_TLS_SCRATCH 16384       /* gathers small iovecs into one record */
#define SN_TLS_INBUF 17408         /* read-ahead: a whole record and its header */
#define SN_TLS_HELLO_MAX 16389     /* a ClientHello kept to read its sigalgs: one record */
#define SN_TLS_PEER_SIGALGS 64     /* signature algorithms kept of the peer's list */

struct sni_entry {
    char *name;
    WOLFSSL_CTX *ctx;
};

struct cached {
    char *name;
    WOLFSSL_SESSION *sess;
};

struct sn_tls {
    atomic_int refs;
    int role;
    WOLFSSL_CTX *ctx;
    struct sni_entry *sni;
    int nsni;
    int verify;
    bool verify_hostname;
    char *alpn;         /* ','-separated, as wolfSSL_UseALPN takes it ("a:b" given) */
    uint8_t *alpn_wire; /* servers: the same in wire format (length-prefixed) */
    size_t alpn_wire_len;
    bool alpn_required;
    bool tickets;
    bool max13;       /* TLS 1.3 allowed */
    bool min13;       /* only TLS 1.3 */
    int handshake_ms; /* -1 never */
    int handshakes_max;
    pthread_mutex_t turn_mu;
    sn__cv turn_cv;   /* a turn was given back */
    int handshakes;   /* in progress, under turn_mu */
    int turn_waiters; /* callers waiting on turn_cv, under turn_mu */
    char *sigalgs;
    pthread_mutex_t cache_mu;
    struct cached cache[SN_TLS_CACHE];
    int cache_next;
};

typedef struct tls_transport {
    sn_transport base; /* first: the channel sees this */
    sn_tls *tls;
    WOLFSSL *ssl;
    pthread_mutex_t mu;
    int sys_err;       /* -errno of the last failed socket call, or 0 */
    bool done;         /* the handshake completed */
    bool failed;       /* a fatal error: send nothing more */
    bool notified;     /* close_notify sent */
    bool alpn_offered; /* servers: the client sent ALPN */
    int sig_oid;       /* the signature this side made (wolfSSL's OID sum), or 0 */
    char *name;        /* clients: the server name sent */
    char *scratch;     /* under mu; NULL until a gathered send needs it */
    bool send_again;   /* the last send said SN_EAGAIN: it comes again */
    /* read-ahead: one recv takes what the socket has (wolfSSL asks for a
     * record header, then its body); `more` says the last recv filled the
     * buffer, so the socket may hold more (the channel must not wait).
     * NULL while a fiber waits with nothing read ahead (tls_idle). */
    uint8_t *in;
    size_t in_pos, in_len;
    bool more;
    /* a thread blocks in recv into `in`, outside mu (tls_recv_wait): until
     * it is back, wolfSSL calls made by others read nothing */
    bool reading;
    /* servers: the ClientHello's first record, gathered from the
     * read-ahead until whole (hello_len), then its signature_algorithms */
    uint8_t *hello;
    size_t hello_len;
    bool hello_done;
    uint16_t peer_sigalgs[SN_TLS_PEER_SIGALGS];
    int npeer_sigalgs; /* -1: the ClientHello could not be read */
    char reason[256];
} tls_transport;

static const sn_transport_vtable tls_vtable;

/* ---- wolfSSL, once -------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
/* wolfCrypt keeps a per-thread cache for fixed-point ECC (FP_ECC in
 * Debian's build) that only the thread itself can free: a thread that ran a
 * handshake frees it when it exits, through this key's destructor. */
static pthread_key_t ecc_cache_key;

static void free_ecc_cache(void *unused)
{
    (void)unused;
#if defined(FP_ECC) /* a wolfSSL built without the cache (--disable-fpecc) has no call */
    wc_ecc_fp_free();
#endif
}

static void init_wolfssl(void)
{
    init_rc = wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : SN_ETLS;
    if (init_rc == 0 && pthread_key_create(&ecc_cache_key, free_ecc_cache) != 0)
        init_rc = SN_ENOMEM;
}

/* Marks the calling thread as one whose ECC cache needs freeing. */
static void note_ecc_thread(void)
{
    if (pthread_getspecific(ecc_cache_key) == NULL)
        pthread_setspecific(ecc_cache_key, (void *)1);
}

/* ---- reasons ----------------------------------------------------------------- */

/* Where the running sn_tls_new writes why it fails: the caller's
 * cfg->reason, for the time of the call, on the caller's thread (which does
 * not wait in it: no other fiber runs there meanwhile). Not a "last error":
 * the caller names the buffer and nothing is kept after the call. */
static _Thread_local char *why_buf;
static _Thread_local size_t why_cap;

/* Records the reason of a configuration failure and returns rc. */
SN_PRINTF(2, 3) static int why(int rc, const char *fmt, ...)
{
    if (why_buf != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why_buf, why_cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- loading certificates and keys ----------------------------------------- */

struct blob {
    uint8_t *p; /* owned when `own` */
    size_t len;
    bool own;
    int format; /* WOLFSSL_FILETYPE_PEM / _ASN1 */
};

static int read_file(const char *path, struct blob *b)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    int rc = 0;
    size_t cap = 4096, len = 0;
    uint8_t *p = sn__malloc(cap);
    while (p != NULL) {
        size_t n = fread(p + len, 1, cap - len, f);
        len += n;
        if (len < cap)
            break;
        if (cap >= SN_TLS_FILE_MAX) {
            rc = SN_ETLS_CERT;
            break;
        }
        uint8_t *q = sn__realloc(p, cap * 2);
        if (q == NULL) {
            sn__free(p);
            p = NULL;
            break;
        }
        p = q;
        cap *= 2;
    }
    if (p == NULL)
        rc = SN_ENOMEM;
    else if (ferror(f))
        rc = SN_EIO;
    fclose(f);
    if (rc < 0) {
        sn__free(p);
        return rc;
    }
    *b = (struct blob){.p = p, .len = len, .own = true};
    return 0;
}

static bool is_pem(const uint8_t *p, size_t len)
{
    static const char tag[] = "-----BEGIN";
    for (size_t i = 0; i + sizeof tag - 1 <= len && i < 4096; i++)
        if (memcmp(p + i, tag, sizeof tag - 1) == 0)
            return true;
    return false;
}

static bool source_set(const sn_tls_source *s)
{
    return s->file != NULL || s->data != NULL;
}

/* How a reason names a source: "FILE" or "(N bytes in memory)". */
static const char *source_name(const sn_tls_source *s, char *buf, size_t cap)
{
    if (s->file != NULL)
        return s->file;
    snprintf(buf, cap, "(%zu bytes in memory)", s->len);
    return buf;
}

/* Reads a source (file or memory) and tells PEM from DER; what names the
 * field in a reason ("cert", "key", "ca[2]"). */
static int blob_load(const sn_tls_source *s, const char *what, struct blob *b)
{
    int rc;
    if (s->file != NULL && s->data != NULL)
        return why(SN_EINVAL, "%s: both file and data are set", what);
    if (s->file != NULL) {
        if ((rc = read_file(s->file, b)) < 0)
            return why(rc, "%s %s: %s", what, s->file,
                       rc == SN_ETLS_CERT ? "over 16 MiB" : sn_strerror(rc));
    } else {
        if (s->data == NULL || s->len == 0)
            return why(SN_EINVAL, "%s: neither a file nor data (with its length)", what);
        *b = (struct blob){.p = (uint8_t *)s->data, .len = s->len};
    }
    b->format = is_pem(b->p, b->len) ? WOLFSSL_FILETYPE_PEM : WOLFSSL_FILETYPE_ASN1;
    return 0;
}

/* An encrypted PEM key: PKCS#8 or the traditional Proc-Type header. */
static bool pem_encrypted(const struct blob *b)
{
    return b->format == WOLFSSL_FILETYPE_PEM &&
           (memmem(b->p, b->len, "ENCRYPTED PRIVATE KEY", 21) != NULL ||
            memmem(b->p, b->len, "Proc-Type: 4,ENCRYPTED", 22) != NULL);
}

static void blob_free(struct blob *b)
{
    if (b->own)
        sn__free(b->p);
}

static int password_cb(char *buf, int size, int rw, void *user)
{
    (void)rw;
    const char *pw = user;
    if (pw == NULL)
        return -1; /* an encrypted key and no password */
    int n = (int)strlen(pw);
    if (n >= size)
        return -1;
    memcpy(buf, pw, (size_t)n);
    return n;
}

/* what: "cert" or "sni_certs[i]". */
static int load_cert(WOLFSSL_CTX *ctx, const sn_tls_cert *cert, const char *what)
{
    struct blob chain, key;
    char label[64], n1[48], n2[48];
    snprintf(label, sizeof label, "%s.chain", what);
    int rc = blob_load(&cert->chain, label, &chain);
    if (rc < 0)
        return rc;
    snprintf(label, sizeof label, "%s.key", what);
    if (!source_set(&cert->key)) {
        blob_free(&chain);
        return why(SN_ETLS_CERT, "%s: no private key for the certificate", label);
    }
    if ((rc = blob_load(&cert->key, label, &key)) < 0) {
        blob_free(&chain);
        return rc;
    }
    const char *chain_name = source_name(&cert->chain, n1, sizeof n1);
    const char *key_name = source_name(&cert->key, n2, sizeof n2);
    wolfSSL_CTX_set_default_passwd_cb(ctx, password_cb);
    wolfSSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)cert->password);
    int r;
    if ((r = wolfSSL_CTX_use_certificate_chain_buffer_format(ctx, chain.p, (long)chain.len,
                                                             chain.format)) != WOLFSSL_SUCCESS)
        rc = why(SN_ETLS_CERT, "%s.chain %s: no certificate wolfSSL can read (wolfSSL %d)", what,
                 chain_name, r);
    else if ((r = wolfSSL_CTX_use_PrivateKey_buffer(ctx, key.p, (long)key.len, key.format)) !=
             WOLFSSL_SUCCESS)
        rc = !pem_encrypted(&key)
                 ? why(SN_ETLS_CERT, "%s.key %s: no private key wolfSSL can read (wolfSSL %d)",
                       what, key_name, r)
             : cert->password == NULL
                 ? why(SN_ETLS_CERT, "%s.key %s: the key is encrypted and no password is given",
                       what, key_name)
                 : why(SN_ETLS_CERT,
                       "%s.key %s: wrong password, or an encryption this wolfSSL cannot read "
                       "(wolfSSL %d)",
                       what, key_name, r);
    else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS)
        rc = why(SN_ETLS_CERT, "%s.key %s does not match the certificate of %s.chain %s", what,
                 key_name, what, chain_name);
    wolfSSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    blob_free(&chain);
    blob_free(&key);
    return rc;
}

static int load_trust(WOLFSSL_CTX *ctx, const sn_tls_config *cfg)
{
    for (int i = 0; i < cfg->nca; i++) {
        struct blob b;
        char what[32], name[48];
        snprintf(what, sizeof what, "ca[%d]", i);
        int rc = blob_load(&cfg->ca[i], what, &b);
        if (rc < 0)
            return rc;
        rc = wolfSSL_CTX_load_verify_buffer(ctx, b.p, (long)b.len, b.format);
        blob_free(&b);
        if (rc != WOLFSSL_SUCCESS)
            return why(SN_ETLS_CERT, "%s %s: no CA certificate wolfSSL can read (wolfSSL %d)", what,
                       source_name(&cfg->ca[i], name, sizeof name), rc);
    }
    if (cfg->ca_dir != NULL &&
        wolfSSL_CTX_load_verify_locations(ctx, NULL, cfg->ca_dir) != WOLFSSL_SUCCESS)
        return why(SN_ETLS_CERT, "ca_dir %s: no directory of PEM certificates wolfSSL can read",
                   cfg->ca_dir);
    bool implicit = cfg->role == SN_TLS_CLIENT && cfg->nca == 0 && cfg->ca_dir == NULL;
    if (cfg->system_ca == SN_ON || (cfg->system_ca == 0 && implicit)) {
        /* with no system store, the default leaves verification to fail */
        if (wolfSSL_CTX_load_system_CA_certs(ctx) != WOLFSSL_SUCCESS && cfg->system_ca == SN_ON)
            return why(SN_ETLS_CERT, "system_ca: no system CA store found (Debian: apt-get install "
                                     "ca-certificates)");
    }
    return 0;
}

/* ---- cipher lists -------------------------------------------------------------- */

/* The defaults: AEAD suites with forward secrecy only. (wolfSSL's own
 * default list, as Debian builds it, also offers RC4, 3DES, NULL and
 * anonymous suites.) */
#define SN_TLS13_DEFAULT                                                                           \
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256"
#define SN_TLS12_DEFAULT                                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/* What a TLS 1.2 suite or a certificate's key authenticates with: a
 * suite is usable with a key when they share a bit. RSA: RSA suites, RSA
 * and RSA-PSS keys. EC: ECDSA suites, EC, Ed25519 and Ed448 keys (wolfSSL
 * serves the ECDSA suites with EdDSA keys). */
#define SN_AUTH_RSA 1u
#define SN_AUTH_EC 2u
#define SN_AUTH_ANY (SN_AUTH_RSA | SN_AUTH_EC)

/* The suites a session of ctx would offer: how many are TLS 1.3 ones and
 * how many others, and what the others authenticate with. */
struct suites {
    int n13, n12;
    unsigned auth12; /* SN_AUTH_* bits */
    bool anon12;     /* an anonymous suite: no certificate at all */
};

/* wolfSSL 5.5 calls "ADH-AES128-SHA" an RSA suite, hence the names first. */
static bool suite_anon(const WOLFSSL_CIPHER *c, const char *name)
{
    return strncmp(name, "ADH-", 4) == 0 || strncmp(name, "AECDH-", 6) == 0 ||
           wolfSSL_CIPHER_get_auth_nid(c) == NID_auth_null;
}

/* A TLS 1.2 suite's SN_AUTH_* bits. Anonymous suites need no key (any);
 * PSK suites need keys that sn_tls_config cannot give (none). */
static unsigned suite_auth(const WOLFSSL_CIPHER *c, const char *name)
{
    if (suite_anon(c, name))
        return SN_AUTH_ANY;
    switch (wolfSSL_CIPHER_get_auth_nid(c)) {
    case NID_auth_rsa:
        return SN_AUTH_RSA;
    case NID_auth_ecdsa:
        return SN_AUTH_EC;
    default:
        return 0;
    }
}

static int scan_suites(WOLFSSL_CTX *ctx, struct suites *out)
{
    WOLFSSL *ssl = wolfSSL_new(ctx);
    if (ssl == NULL)
        return SN_ENOMEM;
    *out = (struct suites){0};
    WOLF_STACK_OF(WOLFSSL_CIPHER) *sk = wolfSSL_get_ciphers_compat(ssl); /* the session's */
    int n = sk != NULL ? wolfSSL_sk_SSL_CIPHER_num(sk) : 0;
    for (int i = 0; i < n; i++) {
        const WOLFSSL_CIPHER *c = wolfSSL_sk_SSL_CIPHER_value(sk, i);
        const char *name = wolfSSL_CIPHER_get_name(c);
        if (name == NULL)
            continue;
        if (strncmp(name, "TLS13-", 6) == 0 || strncmp(name, "TLS_", 4) == 0) {
            out->n13++;
        } else {
            out->n12++;
            out->auth12 |= suite_auth(c, name);
            out->anon12 |= suite_anon(c, name);
        }
    }
    wolfSSL_free(ssl);
    return 0;
}

/* Why wolfSSL refused name, a single suite: a suite it was built without,
 * or no suite at all. */
static int unknown_suite(const char *field, const char *name)
{
    const sn__tls_suite *su = sn__tls_suite_find(name, strlen(name));
    if (su == NULL)
        return why(SN_ETLS_CONFIG,
                   "%s: %s is not a cipher suite name (OpenSSL's \"ECDHE-RSA-AES128-GCM-SHA256\" "
                   "or IANA's \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\")",
                   field, name);
    const char *other = strcasecmp(name, su->iana) == 0 ? su->openssl : su->iana;
    bool rsa_kx = strcmp(su->kx, "RSA") == 0;
    return why(SN_ETLS_CONFIG, "%s: %s (%s) is not known to this wolfSSL build%s", field, name,
               other,
               rsa_kx ? ", which has no suites with plain RSA key exchange (Debian's has none): "
                        "use an ECDHE-RSA suite"
                      : "");
}

/* Every name of the list must be a suite of its version (TLS 1.3 or not):
 * a typo or a suite in the wrong list is an error, not silently dropped. */
static int check_list(WOLFSSL_CTX *ctx, const char *list, bool v13, const char *field)
{
    char name[128];
    if (*list == '\0')
        return why(SN_ETLS_CONFIG, "%s: empty list", field);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ":");
        if (n == 0)
            return why(SN_ETLS_CONFIG, "%s: an empty name in \"%s\"", field, list);
        if (n >= sizeof name)
            return why(SN_ETLS_CONFIG, "%s: %.40s... is not a cipher suite name", field, p);
        memcpy(name, p, n);
        name[n] = '\0';
        p += n + (p[n] == ':');
        struct suites su;
        int rc;
        if (wolfSSL_CTX_set_cipher_list(ctx, name) != WOLFSSL_SUCCESS)
            return unknown_suite(field, name);
        if ((rc = scan_suites(ctx, &su)) < 0)
            return why(rc, "out of memory");
        if ((v13 ? su.n13 : su.n12) == 0)
            return why(SN_ETLS_CONFIG, "%s: %s is a TLS %s suite: it belongs in %s", field, name,
                       v13 ? "1.2" : "1.3", v13 ? "ciphers_tls12" : "ciphers_tls13");
    }
    return 0;
}

/* Sets the suites of both versions (the defaults where a list is NULL),
 * only those of versions in [minv, maxv]. An anonymous suite is refused
 * where certificates are verified: a client would accept a server with no
 * certificate (anyone in the middle picks the suite), and a server cannot
 * ask for a client's certificate in one. */
/* A TLS 1.3 suite's name, in IANA's or wolfSSL's spelling. */
static bool suite_is_13(const char *name, size_t n)
{
    const sn__tls_suite *su = sn__tls_suite_find(name, n);
    return su != NULL ? su->v13 : n > 6 && strncasecmp(name, "TLS13-", 6) == 0;
}

/* cfg->ciphers, both versions' suites in one list, into a list per version
 * (b13, b12; "" where it names none of that version). */
static int split_ciphers(const char *list, char *b13, size_t cap13, char *b12, size_t cap12)
{
    size_t n13 = 0, n12 = 0;
    b13[0] = b12[0] = '\0';
    if (*list == '\0')
        return why(SN_ETLS_CONFIG, "ciphers: empty list");
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ":");
        if (n == 0)
            return why(SN_ETLS_CONFIG, "ciphers: an empty name in \"%s\"", list);
        bool v13 = suite_is_13(p, n);
        char *b = v13 ? b13 : b12;
        size_t *len = v13 ? &n13 : &n12;
        if (*len + n + 2 > (v13 ? cap13 : cap12))
            return why(SN_ETLS_CONFIG, "ciphers: too long a list");
        if (*len > 0)
            b[(*len)++] = ':';
        memcpy(b + *len, p, n);
        *len += n;
        b[*len] = '\0';
        p += n + (p[n] == ':');
    }
    return 0;
}

static int set_ciphers(WOLFSSL_CTX *ctx, const sn_tls_config *cfg, int minv, int maxv)
{
    bool want13 = maxv >= SN_TLS_1_3, want12 = minv <= SN_TLS_1_2;
    const char *u13 = cfg->ciphers_tls13, *u12 = cfg->ciphers_tls12; /* the user's */
    const char *f13 = "ciphers_tls13", *f12 = "ciphers_tls12";
    char b13[1024], b12[3072];
    struct suites su;
    int rc;
    if (cfg->ciphers != NULL) {
        if ((rc = split_ciphers(cfg->ciphers, b13, sizeof b13, b12, sizeof b12)) < 0)
            return rc;
        u13 = b13[0] ? b13 : NULL;
        u12 = b12[0] ? b12 : NULL;
        f13 = f12 = "ciphers";
    }
    const char *l13 = u13 != NULL ? u13 : SN_TLS13_DEFAULT;
    const char *l12 = u12 != NULL ? u12 : SN_TLS12_DEFAULT;
    if (u13 != NULL && want13 && (rc = check_list(ctx, l13, true, f13)) < 0)
        return rc;
    if (u12 != NULL && want12 && (rc = check_list(ctx, l12, false, f12)) < 0)
        return rc;
    char all[4096];
    int len = snprintf(all, sizeof all, "%s%s%s", want13 ? l13 : "", want13 && want12 ? ":" : "",
                       want12 ? l12 : "");
    if (len < 0 || (size_t)len >= sizeof all)
        return why(SN_ETLS_CONFIG, "ciphers: the lists are longer than 4,095 bytes together");
    if (wolfSSL_CTX_set_cipher_list(ctx, all) != WOLFSSL_SUCCESS)
        return why(SN_ETLS_CONFIG, "ciphers: wolfSSL refuses \"%s\"", all);
    if ((rc = scan_suites(ctx, &su)) < 0)
        return why(rc, "out of memory");
    if (want13 && su.n13 == 0)
        return why(SN_ETLS_CONFIG, "ciphers_tls13: no TLS 1.3 suite, and TLS 1.3 is allowed");
    if (want12 && su.n12 == 0)
        return why(SN_ETLS_CONFIG, "ciphers_tls12: no TLS 1.2 suite, and TLS 1.2 is allowed");
    bool verifies = cfg->verify != 0 ? cfg->verify != SN_TLS_VERIFY_NONE
                                     : cfg->role == SN_TLS_CLIENT; /* the defaults */
    if (want12 && su.anon12 && verifies)
        return why(SN_ETLS_CONFIG,
                   "ciphers_tls12: anonymous suites (ADH-*, AECDH-*) where certificates are "
                   "verified: the peer could show none; set verify to SN_TLS_VERIFY_NONE to "
                   "use them");
    return 0;
}

/* ---- key-exchange groups ------------------------------------------------------- */

/* wolfSSL 5.5's wolfSSL_CTX_set1_groups_list knows no X25519: the names
 * are mapped here and set with wolfSSL_CTX_set_groups. */
static int group_id(const char *name, size_t n)
{
    static const struct {
        const char *name;
        int id;
    } map[] = {
        {"P-256", WOLFSSL_ECC_SECP256R1},
        {"secp256r1", WOLFSSL_ECC_SECP256R1},
        {"prime256v1", WOLFSSL_ECC_SECP256R1},
        {"P-384", WOLFSSL_ECC_SECP384R1},
        {"secp384r1", WOLFSSL_ECC_SECP384R1},
        {"P-521", WOLFSSL_ECC_SECP521R1},
        {"secp521r1", WOLFSSL_ECC_SECP521R1},
        {"X25519", WOLFSSL_ECC_X25519},
        {"X448", WOLFSSL_ECC_X448},
        {"ffdhe2048", WOLFSSL_FFDHE_2048},
        {"ffdhe3072", WOLFSSL_FFDHE_3072},
        {"ffdhe4096", WOLFSSL_FFDHE_4096},
        {"ffdhe6144", WOLFSSL_FFDHE_6144},
        {"ffdhe8192", WOLFSSL_FFDHE_8192},
    };
    for (size_t i = 0; i < SN_ARRAY_SIZE(map); i++)
        if (strlen(map[i].name) == n && strncasecmp(map[i].name, name, n) == 0)
            return map[i].id;
    return -1;
}

static int set_groups(WOLFSSL_CTX *ctx, const char *list)
{
    int ids[16], n = 0;
    const char *names[16];
    int lens[16];
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ":");
        int id = group_id(p, len);
        if (len == 0)
            return why(SN_ETLS_CONFIG, "groups: an empty name in \"%s\"", list);
        if (id < 0)
            return why(SN_ETLS_CONFIG,
                       "groups: %.*s is not a group name (X25519, X448, P-256 or secp256r1, "
                       "P-384, P-521, ffdhe2048 to ffdhe8192)",
                       (int)SN_MIN(len, 64), p);
        if (n == (int)SN_ARRAY_SIZE(ids))
            return why(SN_ETLS_CONFIG, "groups: more than 16");
        names[n] = p;
        lens[n] = (int)len;
        ids[n++] = id;
        p += len + (p[len] == ':');
    }
    if (n == 0)
        return why(SN_ETLS_CONFIG, "groups: empty list");
    if (wolfSSL_CTX_set_groups(ctx, ids, n) == WOLFSSL_SUCCESS)
        return 0;
    for (int i = 0; i < n; i++) /* which one this build lacks */
        if (wolfSSL_CTX_set_groups(ctx, &ids[i], 1) != WOLFSSL_SUCCESS)
            return why(SN_ETLS_CONFIG, "groups: %.*s is not in this wolfSSL build", lens[i],
                       names[i]);
    return why(SN_ETLS_CONFIG, "groups: wolfSSL refuses \"%s\"", list);
}

/* ---- signature algorithms -------------------------------------------------------- */

/* Sets a ':'- (or ',')-separated list of signature algorithms in IANA's,
 * OpenSSL's or wolfSSL's spelling, in wolfSSL's. */
static int set_sigalgs(WOLFSSL_CTX *ctx, const char *list)
{
    char wolf[1024];
    size_t w = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ":,");
        if (len == 0)
            return why(SN_ETLS_CONFIG, "sigalgs: an empty name in \"%s\"", list);
        const char *name = sn__tls_sigalg_wolf(p, len);
        if (name == NULL)
            return why(SN_ETLS_CONFIG,
                       "sigalgs: %.*s is not a signature algorithm (IANA's "
                       "\"rsa_pss_rsae_sha256\", \"ecdsa_secp256r1_sha256\", \"rsa_pkcs1_sha256\", "
                       "\"ed25519\", or \"RSA-PSS+SHA256\", \"ECDSA+SHA256\")",
                       (int)SN_MIN(len, 64), p);
        size_t k = strlen(name);
        if (w + k + 2 > sizeof wolf)
            return why(SN_ETLS_CONFIG, "sigalgs: too long a list");
        if (w > 0)
            wolf[w++] = ':';
        memcpy(wolf + w, name, k);
        w += k;
        p += len + (p[len] != '\0');
    }
    if (w == 0)
        return why(SN_ETLS_CONFIG, "sigalgs: empty list");
    wolf[w] = '\0';
    if (wolfSSL_CTX_set1_sigalgs_list(ctx, wolf) == WOLFSSL_SUCCESS)
        return 0;
    for (char *save, *q = strtok_r(wolf, ":", &save); q; q = strtok_r(NULL, ":", &save))
        if (wolfSSL_CTX_set1_sigalgs_list(ctx, q) != WOLFSSL_SUCCESS)
            return why(SN_ETLS_CONFIG, "sigalgs: %s is not in this wolfSSL build", q);
    return why(SN_ETLS_CONFIG, "sigalgs: wolfSSL refuses \"%s\"", list);
}

/* ---- callbacks: I/O, ALPN, SNI ------------------------------------------------ */

/* The read-ahead buffer, allocated again after tls_idle freed it (under mu,
 * or with reading not yet set); false when there is no memory. */
static bool read_ahead_buf(tls_transport *tt)
{
    return tt->in != NULL || (tt->in = sn__malloc(SN_TLS_INBUF)) != NULL;
}

/* Nothing is read ahead or held by wolfSSL, and the socket was not left with
 * more: a receive must go to the socket (under mu). */
static bool read_ahead_empty(tls_transport *tt)
{
    return tt->in_pos == tt->in_len && !tt->more && !wolfSSL_has_pending(tt->ssl);
}

/* ---- the client's signature algorithms ------------------------------------------- */

static unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* The signature_algorithms extension of a ClientHello that its first
 * record r[0..len) holds whole: their count (0: the client sent none), with
 * up to SN_TLS_PEER_SIGALGS codes in out, or -1 when the record is not such
 * a ClientHello. wolfSSL 5.5 has no call that tells what the client
 * offered, so the server reads it from the bytes that come in. */
int sn__tls_hello_sigalgs(const uint8_t *r, size_t len, uint16_t *out)
{
    if (len < 9 || r[0] != 22 || r[5] != 1) /* a handshake record; a client_hello */
        return -1;
    size_t rec = be16(r + 3), hlen = (size_t)r[6] << 16 | (size_t)r[7] << 8 | r[8];
    if (5 + rec > len || 4 + hlen > rec)
        return -1; /* the record is cut short, or the hello goes on in a second one */
    const uint8_t *q = r + 9, *end = q + hlen;
    if (end - q < 35)
        return -1;
    q += 34;               /* version, random */
    q += 1 + (size_t)q[0]; /* session id */
    if (end - q < 2)
        return -1;
    q += 2 + (size_t)be16(q); /* cipher suites */
    if (end - q < 1)
        return -1;
    q += 1 + (size_t)q[0]; /* compression methods */
    if (end - q < 2)
        return end == q ? 0 : -1; /* no extensions at all */
    size_t total = be16(q);
    q += 2;
    if ((size_t)(end - q) < total)
        return -1;
    end = q + total;
    while (end - q >= 4) {
        unsigned type = be16(q);
        size_t l = be16(q + 2);
        q += 4;
        if ((size_t)(end - q) < l)
            return -1;
        if (type == 13) { /* signature_algorithms */
            if (l < 2 || be16(q) + 2 > l)
                return -1;
            size_t list = be16(q);
            int n = 0;
            for (size_t i = 0; i + 2 <= list && n < SN_TLS_PEER_SIGALGS; i += 2)
                out[n++] = (uint16_t)be16(q + 2 + i);
            return n;
        }
        q += l;
    }
    return 0;
}

/* Servers, in the handshake: gathers the ClientHello's record from what a
 * recv brought (in place when the first one holds it all, as it nearly
 * always does) and reads the client's signature algorithms from it. */
static void hello_gather(tls_transport *tt, const uint8_t *p, size_t n)
{
    if (tt->hello_len == 0 && n >= 5 && n >= 5 + be16(p + 3)) {
        tt->npeer_sigalgs = sn__tls_hello_sigalgs(p, n, tt->peer_sigalgs);
        tt->hello_done = true;
        return;
    }
    if (tt->hello == NULL && (tt->hello = sn__malloc(SN_TLS_HELLO_MAX)) == NULL) {
        tt->npeer_sigalgs = -1;
        tt->hello_done = true;
        return;
    }
    size_t k = SN_MIN(n, SN_TLS_HELLO_MAX - tt->hello_len);
    memcpy(tt->hello + tt->hello_len, p, k);
    tt->hello_len += k;
    if (tt->hello_len < 5 ||
        (tt->hello_len < 5 + be16(tt->hello + 3) && tt->hello_len < SN_TLS_HELLO_MAX))
        return;
    tt->npeer_sigalgs = sn__tls_hello_sigalgs(tt->hello, tt->hello_len, tt->peer_sigalgs);
    tt->hello_done = true;
    sn__free(tt->hello);
    tt->hello = NULL;
}

/* wolfSSL's reads come from the read-ahead buffer, refilled by one recv
 * of what the socket holds. A WANT_READ thus always means the socket said
 * EAGAIN, which is what an edge-triggered wait (fiber mode) needs. */
static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    tls_transport *tt = arg;
    if (tt->reading)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    if (!read_ahead_buf(tt)) {
        tt->sys_err = SN_ENOMEM;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    while (tt->in_pos == tt->in_len) {
        ssize_t n = recv(tt->base.fd, tt->in, SN_TLS_INBUF, MSG_DONTWAIT);
        if (n > 0) {
            tt->in_pos = 0;
            tt->in_len = (size_t)n;
            tt->more = n == SN_TLS_INBUF;
            if (!tt->hello_done && tt->tls->role == SN_TLS_SERVER)
                hello_gather(tt, tt->in, (size_t)n);
            break;
        }
        tt->more = false;
        if (n == 0)
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return WOLFSSL_CBIO_ERR_WANT_READ;
        tt->sys_err = -errno;
        return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
    }
    size_t k = SN_MIN((size_t)sz, tt->in_len - tt->in_pos);
    memcpy(buf, tt->in + tt->in_pos, k);
    tt->in_pos += k;
    return (int)k;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    tls_transport *tt = arg;
    for (;;) {
        ssize_t n = send(tt->base.fd, buf, (size_t)sz, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return WOLFSSL_CBIO_ERR_WANT_WRITE;
        tt->sys_err = -errno;
        if (errno == EPIPE)
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
    }
}

/* Servers: the first of our protocols that the client offers. When none
 * is, wolfSSL goes on to the list set by wolfSSL_UseALPN, which then fails
 * the handshake (or not) per alpn_required. */
static int alpn_select(WOLFSSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    sn_tls *t = arg;
    tls_transport *tt = wolfSSL_GetIOReadCtx(ssl);
    if (tt != NULL)
        tt->alpn_offered = true;
    for (size_t i = 0; i < t->alpn_wire_len; i += 1 + t->alpn_wire[i]) {
        const uint8_t *mine = t->alpn_wire + i;
        for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
            if (j + 1u + in[j] > inlen)
                break;
            if (in[j] == mine[0] && memcmp(in + j + 1, mine + 1, mine[0]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return 0; /* SSL_TLSEXT_ERR_OK */
            }
        }
    }
    return 3; /* SSL_TLSEXT_ERR_NOACK */
}

static bool name_matches(const char *pattern, const char *name)
{
    if (strncmp(pattern, "*.", 2) == 0) {
        const char *dot = strchr(name, '.');
        return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

static int sni_select(WOLFSSL *ssl, int *ad, void *arg)
{
    (void)ad;
    sn_tls *t = arg;
    const char *name = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
    for (int i = 0; name != NULL && i < t->nsni; i++)
        if (name_matches(t->sni[i].name, name)) {
            wolfSSL_set_SSL_CTX(ssl, t->sni[i].ctx);
            break;
        }
    return 0; /* SSL_TLSEXT_ERR_OK: an unknown name gets the default */
}

/* ---- contexts ------------------------------------------------------------------- */

static WOLFSSL_METHOD *method_for(int role, int minv, int maxv)
{
    bool server = role == SN_TLS_SERVER;
    if (maxv == SN_TLS_1_2)
        return server ? wolfTLSv1_2_server_method() : wolfTLSv1_2_client_method();
    if (minv == SN_TLS_1_3)
        return server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method();
    return server ? wolfSSLv23_server_method() : wolfSSLv23_client_method();
}

static int verify_mode(const sn_tls_config *cfg)
{
    int v = cfg->verify
                ? cfg->verify
                : (cfg->role == SN_TLS_CLIENT ? SN_TLS_VERIFY_REQUIRED : SN_TLS_VERIFY_NONE);
    if (v == SN_TLS_VERIFY_NONE)
        return WOLFSSL_VERIFY_NONE;
    if (v == SN_TLS_VERIFY_OPTIONAL && cfg->role == SN_TLS_SERVER)
        return WOLFSSL_VERIFY_PEER;
    return WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
}

/* One WOLFSSL_CTX with everything of cfg but the certificate, which is
 * `cert` (NULL: none), named `what` in reasons. */
static int build_ctx(sn_tls *t, const sn_tls_config *cfg, const sn_tls_cert *cert, const char *what,
                     WOLFSSL_CTX **out)
{
    int minv = cfg->min_version ? cfg->min_version : SN_TLS_1_2;
    int maxv = cfg->max_version ? cfg->max_version : SN_TLS_1_3;
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(method_for(cfg->role, minv, maxv));
    if (ctx == NULL)
        return why(SN_ENOMEM, "out of memory");
    int rc = 0;
    if (minv == SN_TLS_1_2 && maxv == SN_TLS_1_3 &&
        wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
        rc = why(SN_ETLS_CONFIG, "min_version: wolfSSL refuses TLS 1.2");
        goto fail;
    }
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    if (cert != NULL && (rc = load_cert(ctx, cert, what)) < 0)
        goto fail;
    /* wolfSSL makes the certificate's X509 on first demand and keeps it in
     * the context (sessions' wolfSSL_get_certificate included): made here,
     * before the context is shared, no connection writes to it later */
    if (cert != NULL && wolfSSL_CTX_get0_certificate(ctx) == NULL) {
        rc = why(SN_ENOMEM, "out of memory"); /* it was parsed once already */
        goto fail;
    }
    if ((rc = load_trust(ctx, cfg)) < 0)
        goto fail;
    wolfSSL_CTX_set_verify(ctx, verify_mode(cfg), NULL);
    wolfSSL_CTX_set_verify_depth(ctx, cfg->verify_depth ? cfg->verify_depth : SN_TLS_DEPTH_DEFAULT);
    if ((rc = set_ciphers(ctx, cfg, minv, maxv)) < 0)
        goto fail;
    if (cfg->sigalgs != NULL)
        rc = set_sigalgs(ctx, cfg->sigalgs);
    if (cfg->groups != NULL && rc == 0)
        rc = set_groups(ctx, cfg->groups);
    if (rc < 0)
        goto fail;
    if (cfg->prefer_server_ciphers == SN_OFF)
        wolfSSL_CTX_UseClientSuites(ctx);
    if (!t->tickets && cfg->role == SN_TLS_SERVER) {
        wolfSSL_CTX_NoTicketTLSv12(ctx);
        wolfSSL_CTX_no_ticket_TLSv13(ctx);
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    }
    if (t->tickets && cfg->role == SN_TLS_CLIENT)
        wolfSSL_CTX_UseSessionTicket(ctx);
    if (t->alpn_wire != NULL)
        wolfSSL_CTX_set_alpn_select_cb(ctx, alpn_select, t);
    if (t->nsni > 0)
        wolfSSL_CTX_set_servername_callback(ctx, sni_select);
    if (t->nsni > 0)
        wolfSSL_CTX_set_servername_arg(ctx, t);
    *out = ctx;
    return 0;
fail:
    wolfSSL_CTX_free(ctx);
    return rc;
}

/* "h2,http/1.1" or "h2:http/1.1" as wolfSSL_UseALPN takes it (','-separated)
 * and in wire format: each name preceded by its length. */
static int alpn_to_wire(sn_tls *t, const char *list)
{
    size_t len = strlen(list);
    if (len == 0 || len > 1024)
        return why(SN_EINVAL, "alpn: %s list", len == 0 ? "an empty" : "over 1,024 bytes of");
    if ((t->alpn = sn__strdup(list)) == NULL || (t->alpn_wire = sn__malloc(len + 1)) == NULL)
        return why(SN_ENOMEM, "out of memory");
    size_t w = 0;
    for (char *p = t->alpn; *p;) {
        size_t n = strcspn(p, ",:");
        if (n == 0 || n > 255)
            return why(SN_EINVAL, "alpn: %s in \"%s\"",
                       n ? "a name over 255 bytes" : "an empty name", list);
        t->alpn_wire[w++] = (uint8_t)n;
        memcpy(t->alpn_wire + w, p, n);
        w += n;
        p += n;
        if (*p != '\0') {
            *p++ = ','; /* wolfSSL's separator */
            if (*p == '\0')
                return why(SN_EINVAL, "alpn: an empty name at the end of \"%s\"", list);
        }
    }
    t->alpn_wire_len = w;
    return 0;
}

static bool switch_ok(int v)
{
    return v == 0 || v == SN_ON || v == SN_OFF;
}

static bool version_ok(int v)
{
    return v == 0 || v == SN_TLS_1_2 || v == SN_TLS_1_3;
}

static int check_config(const sn_tls_config *cfg)
{
    if (cfg->role != SN_TLS_SERVER && cfg->role != SN_TLS_CLIENT)
        return why(SN_EINVAL, "role: %d is neither SN_TLS_SERVER nor SN_TLS_CLIENT", cfg->role);
    if (cfg->verify < 0 || cfg->verify > SN_TLS_VERIFY_REQUIRED)
        return why(SN_EINVAL, "verify: %d is not an sn_tls_verify", cfg->verify);
    if (cfg->verify_depth < 0 || cfg->verify_depth > 100)
        return why(SN_EINVAL, "verify_depth: %d is not within 0..100", cfg->verify_depth);
    if (cfg->role == SN_TLS_CLIENT && cfg->verify == SN_TLS_VERIFY_OPTIONAL)
        return why(SN_EINVAL, "verify: SN_TLS_VERIFY_OPTIONAL is for servers");
    static const char *const switches[] = {"system_ca", "verify_hostname", "prefer_server_ciphers",
                                           "alpn_required", "tickets"};
    const int values[] = {cfg->system_ca, cfg->verify_hostname, cfg->prefer_server_ciphers,
                          cfg->alpn_required, cfg->tickets};
    for (size_t i = 0; i < SN_ARRAY_SIZE(values); i++)
        if (!switch_ok(values[i]))
            return why(SN_EINVAL, "%s: %d is not SN_ON, SN_OFF or 0", switches[i], values[i]);
    if (!version_ok(cfg->min_version) || !version_ok(cfg->max_version))
        return why(SN_EINVAL,
                   "%s: 0x%04x is not SN_TLS_1_2 or SN_TLS_1_3 (TLS 1.0 and 1.1 are always "
                   "refused)",
                   version_ok(cfg->min_version) ? "max_version" : "min_version",
                   (unsigned)(version_ok(cfg->min_version) ? cfg->max_version : cfg->min_version));
    if (cfg->min_version == SN_TLS_1_3 && cfg->max_version == SN_TLS_1_2)
        return why(SN_ETLS_CONFIG, "min_version: TLS 1.3 is above max_version TLS 1.2");
    if (cfg->nca < 0 || (cfg->nca > 0 && cfg->ca == NULL))
        return why(SN_EINVAL, "nca: %d with ca %s", cfg->nca, cfg->ca ? "set" : "NULL");
    if (cfg->nsni_certs < 0 || (cfg->nsni_certs > 0 && cfg->sni_certs == NULL))
        return why(SN_EINVAL, "nsni_certs: %d with sni_certs %s", cfg->nsni_certs,
                   cfg->sni_certs ? "set" : "NULL");
    if (cfg->handshakes_max < 0)
        return why(SN_EINVAL, "handshakes_max: %d is negative", cfg->handshakes_max);
    if (cfg->handshake_timeout_ms < SN_TIMEOUT_NEVER)
        return why(SN_EINVAL, "handshake_timeout_ms: %d", cfg->handshake_timeout_ms);
    if (cfg->ciphers != NULL && (cfg->ciphers_tls12 != NULL || cfg->ciphers_tls13 != NULL))
        return why(SN_EINVAL, "ciphers: set either it or ciphers_tls12 and ciphers_tls13");
    if (cfg->role == SN_TLS_SERVER && !source_set(&cfg->cert.chain))
        return why(SN_ETLS_CONFIG, "cert: a server needs a certificate (cert.chain and cert.key)");
    if (!source_set(&cfg->cert.chain) && source_set(&cfg->cert.key))
        return why(SN_EINVAL, "cert: a key without its certificate (cert.chain)");
    for (int i = 0; i < cfg->nsni_certs; i++)
        if (cfg->sni_certs[i].name == NULL || cfg->role != SN_TLS_SERVER)
            return why(SN_EINVAL, "sni_certs[%d]: %s", i,
                       cfg->role != SN_TLS_SERVER ? "only servers choose a certificate by name"
                                                  : "no name");
    return 0;
}

/* The SN_AUTH_* bits of the key of ctx's certificate; SN_AUTH_ANY for a
 * key of another kind (not judged here) or no certificate. */
static unsigned key_auth(WOLFSSL_CTX *ctx)
{
    WOLFSSL_X509 *x = wolfSSL_CTX_get0_certificate(ctx); /* made by build_ctx, owned by ctx */
    switch (x != NULL ? wolfSSL_X509_get_pubkey_type(x) : 0) {
    case RSAk:
    case RSAPSSk:
        return SN_AUTH_RSA;
    case ECDSAk:
    case ED25519k:
    case ED448k:
        return SN_AUTH_EC;
    default:
        return SN_AUTH_ANY;
    }
}

/* Servers offering TLS 1.2: some suite of the 1.2 list must be one that
 * some certificate (the default one or one per name) can serve. A list
 * serving none is refused even when TLS 1.3 is on too, whose suites do not
 * depend on the key: its 1.2 suites could never be chosen. (Signature
 * algorithms are not checked against the keys: wolfSSL signs with the
 * key's own algorithm whatever the list, which names what the peer may
 * use.) */
static int check_keys(const sn_tls *t, const sn_tls_config *cfg)
{
    if (cfg->role != SN_TLS_SERVER || cfg->min_version == SN_TLS_1_3)
        return 0;
    struct suites su;
    int rc = scan_suites(t->ctx, &su);
    if (rc < 0)
        return rc;
    unsigned keys = key_auth(t->ctx);
    for (int i = 0; i < t->nsni; i++)
        keys |= key_auth(t->sni[i].ctx);
    if ((su.auth12 & keys) != 0)
        return 0;
    return why(SN_ETLS_CONFIG,
               "%s: no suite the server's %s key%s can serve (ECDHE-ECDSA suites need "
               "an EC key, ECDHE-RSA and DHE-RSA suites an RSA key)",
               cfg->ciphers ? "ciphers" : "ciphers_tls12",
               keys == SN_AUTH_RSA  ? "RSA"
               : keys == SN_AUTH_EC ? "EC"
                                    : "",
               t->nsni ? "s" : "");
}

static void tls_destroy(sn_tls *t)
{
#if defined(FP_ECC)
    wc_ecc_fp_free(); /* the caller's cache (a main thread has no destructor) */
#endif
    for (int i = 0; i < t->nsni; i++) {
        wolfSSL_CTX_free(t->sni[i].ctx);
        sn__free(t->sni[i].name);
    }
    for (int i = 0; i < SN_TLS_CACHE; i++) {
        sn__free(t->cache[i].name);
        wolfSSL_SESSION_free(t->cache[i].sess);
    }
    sn__free(t->sni);
    wolfSSL_CTX_free(t->ctx);
    sn__free(t->alpn);
    sn__free(t->alpn_wire);
    sn__free(t->sigalgs);
    sn__mutex_destroy(&t->cache_mu);
    sn__mutex_destroy(&t->turn_mu);
    sn__cv_destroy(&t->turn_cv);
    sn__free(t);
}

static int build_sni(sn_tls *t, const sn_tls_config *cfg)
{
    if (cfg->nsni_certs == 0)
        return 0;
    if ((t->sni = sn__calloc((size_t)cfg->nsni_certs, sizeof *t->sni)) == NULL)
        return SN_ENOMEM;
    for (; t->nsni < cfg->nsni_certs; t->nsni++) {
        const sn_tls_cert *c = &cfg->sni_certs[t->nsni];
        struct sni_entry *e = &t->sni[t->nsni];
        if ((e->name = sn__strdup(c->name)) == NULL)
            return why(SN_ENOMEM, "out of memory");
        char what[32];
        snprintf(what, sizeof what, "sni_certs[%d]", t->nsni);
        int rc = build_ctx(t, cfg, c, what, &e->ctx);
        if (rc < 0) {
            sn__free(e->name);
            return rc;
        }
    }
    return 0;
}

static int tls_new(sn_tls **out, const sn_tls_config *cfg)
{
    if (out == NULL)
        return why(SN_EINVAL, "out is NULL");
    *out = NULL;
    int rc = check_config(cfg);
    if (rc < 0)
        return rc;
    pthread_once(&init_once, init_wolfssl);
    if (init_rc < 0)
        return why(init_rc, "wolfSSL_Init failed");
    sn_tls *t = sn__calloc(1, sizeof *t);
    if (t == NULL)
        return why(SN_ENOMEM, "out of memory");
    sn__mutex_init(&t->cache_mu);
    sn__mutex_init(&t->turn_mu);
    sn__cv_init(&t->turn_cv);
    atomic_init(&t->refs, 1);
    t->role = cfg->role;
    t->verify = cfg->verify
                    ? cfg->verify
                    : (cfg->role == SN_TLS_CLIENT ? SN_TLS_VERIFY_REQUIRED : SN_TLS_VERIFY_NONE);
    t->verify_hostname = cfg->role == SN_TLS_CLIENT && cfg->verify_hostname != SN_OFF &&
                         t->verify != SN_TLS_VERIFY_NONE;
    t->alpn_required = cfg->alpn_required != SN_OFF;
    t->tickets = cfg->tickets != SN_OFF;
    t->max13 = cfg->max_version == 0 || cfg->max_version == SN_TLS_1_3;
    t->min13 = cfg->min_version == SN_TLS_1_3;
    t->handshake_ms =
        cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : SN_TLS_HANDSHAKE_DEFAULT;
    t->handshakes_max = cfg->handshakes_max;
    if (cfg->alpn != NULL && (rc = alpn_to_wire(t, cfg->alpn)) < 0)
        goto fail;
    if (cfg->role == SN_TLS_CLIENT) {
        sn__free(t->alpn_wire); /* clients offer t->alpn; only servers select */
        t->alpn_wire = NULL;
    }
    if (cfg->sigalgs != NULL && (t->sigalgs = sn__strdup(cfg->sigalgs)) == NULL) {
        rc = why(SN_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = build_sni(t, cfg)) < 0)
        goto fail;
    const sn_tls_cert *own = source_set(&cfg->cert.chain) ? &cfg->cert : NULL;
    if ((rc = build_ctx(t, cfg, own, "cert", &t->ctx)) < 0 || (rc = check_keys(t, cfg)) < 0)
        goto fail;
    *out = t;
    return 0;
fail:
    tls_destroy(t);
    return rc;
}

int sn_tls_new(sn_tls **out, const sn_tls_config *cfg)
{
    if (cfg == NULL)
        return SN_EINVAL;
    why_buf = cfg->reason != NULL && cfg->reason_cap > 0 ? cfg->reason : NULL;
    why_cap = cfg->reason_cap;
    if (why_buf != NULL)
        why_buf[0] = '\0';
    int rc = tls_new(out, cfg);
    why_buf = NULL;
    return rc;
}

sn_tls *sn_tls_ref(sn_tls *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void sn_tls_free(sn_tls *t)
{
    if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1)
        tls_destroy(t);
}

int sn_tls_role_of(const sn_tls *t)
{
    return t->role;
}

/* ---- the clients' session cache ------------------------------------------------ */

static WOLFSSL_SESSION *cache_get(sn_tls *t, const char *name)
{
    WOLFSSL_SESSION *s = NULL;
    sn__mutex_lock(&t->cache_mu);
    for (int i = 0; i < SN_TLS_CACHE; i++)
        if (t->cache[i].name != NULL && strcmp(t->cache[i].name, name) == 0) {
            s = t->cache[i].sess;
            t->cache[i].sess = NULL; /* a ticket is for one use */
            sn__free(t->cache[i].name);
            t->cache[i].name = NULL;
            break;
        }
    sn__mutex_unlock(&t->cache_mu);
    return s;
}

static void cache_put(sn_tls *t, const char *name, WOLFSSL_SESSION *s)
{
    char *copy = sn__strdup(name);
    if (copy == NULL) {
        wolfSSL_SESSION_free(s);
        return;
    }
    sn__mutex_lock(&t->cache_mu);
    int slot = -1;
    for (int i = 0; i < SN_TLS_CACHE && slot < 0; i++)
        if (t->cache[i].name != NULL && strcmp(t->cache[i].name, name) == 0)
            slot = i;
    if (slot < 0) {
        slot = t->cache_next;
        t->cache_next = (t->cache_next + 1) % SN_TLS_CACHE;
    }
    struct cached old = t->cache[slot];
    t->cache[slot] = (struct cached){copy, s};
    sn__mutex_unlock(&t->cache_mu);
    sn__free(old.name);
    wolfSSL_SESSION_free(old.sess);
}

/* ---- errors ---------------------------------------------------------------------- */

static const char *alert_name(int code)
{
    switch (code) {
    case 10:
        return "unexpected_message";
    case 20:
        return "bad_record_mac";
    case 40:
        return "handshake_failure";
    case 42:
        return "bad_certificate";
    case 43:
        return "unsupported_certificate";
    case 44:
        return "certificate_revoked";
    case 45:
        return "certificate_expired";
    case 46:
        return "certificate_unknown";
    case 47:
        return "illegal_parameter";
    case 48:
        return "unknown_ca";
    case 50:
        return "decode_error";
    case 51:
        return "decrypt_error";
    case 70:
        return "protocol_version";
    case 71:
        return "insufficient_security";
    case 80:
        return "internal_error";
    case 86:
        return "inappropriate_fallback";
    case 109:
        return "missing_extension";
    case 112:
        return "unrecognized_name";
    case 116:
        return "certificate_required";
    case 120:
        return "no_application_protocol";
    default:
        return "alert";
    }
}

/* What an alert received most often means, said from the side that got it. */
static const char *alert_hint(int code)
{
    switch (code) {
    case 40:
        return ": no cipher suite, group or signature algorithm in common, or a refusal";
    case 42:
    case 43:
    case 46:
        return ": it refused our certificate";
    case 45:
        return ": it found our certificate expired";
    case 48:
        return ": it does not trust our certificate's issuer";
    case 70:
        return ": no protocol version in common";
    case 112:
        return ": it serves no such server name";
    case 116:
        return ": it requires a certificate and we sent none";
    case 120:
        return ": no ALPN protocol in common";
    default:
        return "";
    }
}

static int alert_error(int code)
{
    switch (code) {
    case 70:
        return SN_ETLS_VERSION;
    case 71:
    case 40:
        return SN_ETLS_HANDSHAKE;
    case 120:
        return SN_ETLS_ALPN;
    case 116:
        return SN_ETLS_NO_CERT;
    case 42:
    case 43:
    case 44:
    case 45:
    case 46:
    case 48:
        return SN_ETLS_VERIFY;
    default:
        return SN_ETLS_ALERT;
    }
}

static int wolf_error(int e)
{
    switch (e) {
    case DOMAIN_NAME_MISMATCH:
        return SN_ETLS_HOSTNAME;
    case NO_PEER_CERT:
        return SN_ETLS_NO_CERT;
    case VERSION_ERROR:
    case UNSUPPORTED_PROTO_VERSION:
        return SN_ETLS_VERSION;
    case MATCH_SUITE_ERROR:
        return SN_ETLS_CIPHER;
    case UNKNOWN_ALPN_PROTOCOL_NAME_E:
        return SN_ETLS_ALPN;
    case VERIFY_CERT_ERROR:
        return SN_ETLS_VERIFY;
    default:
        break;
    }
    if (e <= -140 && e >= -299) /* wolfCrypt's ASN errors: a certificate */
        return SN_ETLS_VERIFY;
    return SN_ETLS_HANDSHAKE;
}

/* X.509 verification codes (OpenSSL's numbers, which wolfSSL reports)
 * that wolfSSL 5.5 has no text for. */
static const char *verify_text(long v)
{
    switch (v) {
    case 0:
        return "ok";
    case 2:
        return "unable to get issuer certificate";
    case 7:
        return "certificate signature failure";
    case 9:
        return "certificate is not yet valid";
    case 10:
        return "certificate has expired";
    case 18:
        return "self-signed certificate";
    case 19:
        return "self-signed certificate in chain";
    case 20:
        return "unable to get local issuer certificate";
    case 21:
        return "unable to verify the first certificate";
    case 22:
        return "certificate chain too long";
    case 26:
        return "unsupported certificate purpose";
    case 62:
        return "host name mismatch";
    default:
        return wolfSSL_X509_verify_cert_error_string(v);
    }
}

/* Maps the error of a failed wolfSSL call (e from wolfSSL_get_error, under
 * tt->mu) to an SN_E* code and records the reason. */
static int fail_error(tls_transport *tt, int e)
{
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof h);
    wolfSSL_get_alert_history(tt->ssl, &h);
    long vr = wolfSSL_get_verify_result(tt->ssl);
    int rc;
    if (e == SOCKET_PEER_CLOSED_E || (e == SOCKET_ERROR_E && tt->sys_err == 0))
        rc = SN_EOF;
    else if (e == SOCKET_ERROR_E || e == WOLFSSL_ERROR_SYSCALL)
        rc = tt->sys_err ? tt->sys_err : SN_ECONNRESET;
    else if (e == FATAL_ERROR && h.last_rx.level == 2)
        rc = alert_error(h.last_rx.code);
    else
        rc = wolf_error(e);
    tt->failed = true;
    const char *wolf = wolfSSL_ERR_reason_error_string((unsigned long)e);
    if (e == FATAL_ERROR && h.last_rx.level == 2)
        snprintf(tt->reason, sizeof tt->reason, "peer sent alert %d (%s)%s", h.last_rx.code,
                 alert_name(h.last_rx.code), alert_hint(h.last_rx.code));
    else if (rc == SN_EOF)
        snprintf(tt->reason, sizeof tt->reason, "the peer closed the connection in the handshake");
    else if (rc > -1000) /* -errno of the socket */
        snprintf(tt->reason, sizeof tt->reason, "in the handshake: %s", sn_strerror(rc));
    else if (rc == SN_ETLS_HOSTNAME)
        snprintf(tt->reason, sizeof tt->reason,
                 "the peer's certificate does not match the name %s (wolfSSL %d)",
                 tt->name ? tt->name : "", e);
    else if (rc == SN_ETLS_VERIFY && vr != 0)
        snprintf(tt->reason, sizeof tt->reason,
                 "the peer's certificate: %s (verify error %ld; wolfSSL %d: %s)", verify_text(vr),
                 vr, e, wolf);
    else if (rc == SN_ETLS_NO_CERT)
        snprintf(tt->reason, sizeof tt->reason, "the peer sent no certificate (wolfSSL %d)", e);
    else if (rc == SN_ETLS_VERSION)
        snprintf(tt->reason, sizeof tt->reason,
                 "no protocol version in common: this side allows TLS %s (wolfSSL %d: %s)",
                 tt->tls->max13 ? (tt->tls->min13 ? "1.3" : "1.2 and 1.3") : "1.2", e, wolf);
    else if (rc == SN_ETLS_CIPHER)
        snprintf(tt->reason, sizeof tt->reason,
                 "no cipher suite in common, or no signature algorithm for our key (wolfSSL %d)",
                 e);
    else if (rc == SN_ETLS_ALPN)
        snprintf(tt->reason, sizeof tt->reason, "no ALPN protocol in common; ours: %s",
                 tt->tls->alpn ? tt->tls->alpn : "none");
    else
        snprintf(tt->reason, sizeof tt->reason, "wolfSSL %d: %s", e, wolf);
    return rc;
}

/* After a wolfSSL call returned r <= 0 (under tt->mu): SN_EAGAIN with
 * *want, 0 for the end of the stream (reads), or an error. */
static int after_call(tls_transport *tt, int r, short *want)
{
    int e = wolfSSL_get_error(tt->ssl, r);
    if (e == WOLFSSL_ERROR_WANT_READ) {
        *want = POLLIN;
        return SN_EAGAIN;
    }
    if (e == WOLFSSL_ERROR_WANT_WRITE) {
        *want = POLLOUT;
        return SN_EAGAIN;
    }
    if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E)
        return 0;
    return fail_error(tt, e);
}

/* ---- the transport ------------------------------------------------------------- */

static ssize_t tls_recv(sn_transport *t, void *buf, size_t len, short *want)
{
    tls_transport *tt = (tls_transport *)t;
    if (len > INT_MAX)
        len = INT_MAX;
    sn__mutex_lock(&tt->mu);
    int r = wolfSSL_read(tt->ssl, buf, (int)len);
    ssize_t n = r > 0 ? r : after_call(tt, r, want);
    sn__mutex_unlock(&tt->mu);
    return n;
}

/* The channel found nothing to read and must wait: block in recv itself,
 * bounded by SO_RCVTIMEO, as the plain transport does, rather than poll
 * then recv. The recv fills the empty read-ahead buffer without holding mu,
 * so a writer on another thread is not held back; wolfSSL then decrypts
 * under mu. A partial record means waiting again. */
static ssize_t tls_recv_wait(sn_transport *t, void *buf, size_t len, int64_t deadline_ms)
{
    tls_transport *tt = (tls_transport *)t;
    int rc = sn__transport_blocking(t);
    if (rc < 0)
        return rc;
    if (len > INT_MAX)
        len = INT_MAX;
    for (;;) {
        if ((rc = sn__rcvtimeo_until(t->fd, &t->timeo_ms, deadline_ms)) < 0)
            return rc;
        sn__mutex_lock(&tt->mu);
        if (!read_ahead_buf(tt)) {
            sn__mutex_unlock(&tt->mu);
            return SN_ENOMEM;
        }
        if (read_ahead_empty(tt)) {
            tt->reading = true;
            tt->in_pos = tt->in_len = 0;
            sn__mutex_unlock(&tt->mu);
            ssize_t got = recv(t->fd, tt->in, SN_TLS_INBUF, 0);
            int err = errno;
            sn__mutex_lock(&tt->mu);
            tt->reading = false;
            if (got > 0) {
                tt->in_len = (size_t)got;
                tt->more = got == SN_TLS_INBUF;
            } else if (got < 0) {
                sn__mutex_unlock(&tt->mu);
                if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK)
                    continue; /* a signal, or SO_RCVTIMEO ran out: the deadline decides */
                return -err;
            }
            /* got == 0: wolfSSL's own recv meets the end of the stream */
        }
        short want = POLLIN;
        int r = wolfSSL_read(tt->ssl, buf, (int)len);
        ssize_t n = r > 0 ? r : after_call(tt, r, &want);
        sn__mutex_unlock(&tt->mu);
        if (n != SN_EAGAIN)
            return n;
        if (want == POLLOUT && (rc = sn__wait_fd(t->fd, POLLOUT, deadline_ms)) < 0)
            return rc;
    }
}

/* Several small buffers go out as one record, through the scratch buffer
 * (used under mu only, so that tls_idle may free it); a large first buffer
 * goes alone. After SN_EAGAIN the channel calls again with the same leading
 * bytes, which is what wolfSSL requires. */
static ssize_t tls_sendv(sn_transport *t, const struct iovec *iov, int iovcnt, short *want)
{
    tls_transport *tt = (tls_transport *)t;
    const void *p = iov[0].iov_base;
    size_t len = iov[0].iov_len;
    sn__mutex_lock(&tt->mu);
    if (iovcnt > 1 && len < SN_TLS_SCRATCH) {
        if (tt->scratch == NULL && (tt->scratch = sn__malloc(SN_TLS_SCRATCH)) == NULL) {
            sn__mutex_unlock(&tt->mu);
            return SN_ENOMEM;
        }
        len = 0;
        for (int i = 0; i < iovcnt && len < SN_TLS_SCRATCH; i++) {
            size_t k = SN_MIN(iov[i].iov_len, SN_TLS_SCRATCH - len);
            memcpy(tt->scratch + len, iov[i].iov_base, k);
            len += k;
        }
        p = tt->scratch;
    }
    if (len > INT_MAX)
        len = INT_MAX;
    int r = tt->failed ? -1 : wolfSSL_write(tt->ssl, p, (int)len);
    ssize_t n = r > 0 ? r : tt->failed && r == -1 ? SN_EPIPE : after_call(tt, r, want);
    tt->send_again = n == SN_EAGAIN;
    sn__mutex_unlock(&tt->mu);
    return n == 0 ? SN_EPIPE : n;
}

/* close_notify, then the TCP FIN. */
static int tls_shutdown(sn_transport *t, short *want)
{
    tls_transport *tt = (tls_transport *)t;
    sn__mutex_lock(&tt->mu);
    int rc = 0;
    if (!tt->notified && !tt->failed) {
        int r = wolfSSL_shutdown(tt->ssl);
        if (r == WOLFSSL_SUCCESS || r == WOLFSSL_SHUTDOWN_NOT_DONE)
            tt->notified = true;
        else if ((rc = after_call(tt, r, want)) == 0)
            tt->notified = true;
    }
    sn__mutex_unlock(&tt->mu);
    if (rc < 0)
        return rc;
    return shutdown(t->fd, SHUT_WR) < 0 ? -errno : 0;
}

static size_t tls_pending(sn_transport *t)
{
    tls_transport *tt = (tls_transport *)t;
    sn__mutex_lock(&tt->mu);
    int n = wolfSSL_pending(tt->ssl);
    size_t k = n > 0 ? (size_t)n : 0;
    if (k == 0) /* a record not yet decrypted, bytes read ahead, or maybe more in the socket */
        k = (tt->in_len - tt->in_pos) + (wolfSSL_has_pending(tt->ssl) || tt->more ? 1 : 0);
    sn__mutex_unlock(&tt->mu);
    return k;
}

/* A fiber waits for input with nothing buffered, maybe for long: the
 * read-ahead buffer goes if it holds nothing, and the scratch buffer unless
 * a send is to be repeated (wolfSSL wants the same bytes again): up to
 * 33 KiB that an idle connection need not hold. */
static void tls_idle(sn_transport *t)
{
    tls_transport *tt = (tls_transport *)t;
    sn__mutex_lock(&tt->mu);
    if (!tt->reading && read_ahead_empty(tt)) {
        sn__free(tt->in);
        tt->in = NULL;
        tt->in_pos = tt->in_len = 0;
    }
    if (!tt->send_again) {
        sn__free(tt->scratch);
        tt->scratch = NULL;
    }
    sn__mutex_unlock(&tt->mu);
}

static void tls_release(sn_transport *t)
{
    tls_transport *tt = (tls_transport *)t;
    if (tt->done && !tt->failed && !tt->notified)
        wolfSSL_shutdown(tt->ssl); /* close_notify, if the socket takes it now */
    /* a client that allows TLS 1.3 keeps only TLS 1.3 sessions: wolfSSL 5.5
     * fails the handshake (out of order message) when it offers a TLS 1.2
     * session to a server that answers with TLS 1.3 */
    if (tt->done && !tt->failed && tt->tls->role == SN_TLS_CLIENT && tt->tls->tickets &&
        (!tt->tls->max13 || wolfSSL_version(tt->ssl) == TLS1_3_VERSION)) {
        WOLFSSL_SESSION *s = wolfSSL_get1_session(tt->ssl);
        if (s != NULL)
            cache_put(tt->tls, tt->name ? tt->name : "", s);
    }
    wolfSSL_free(tt->ssl);
    sn_tls_free(tt->tls);
    sn__mutex_destroy(&tt->mu);
    sn__free(tt->name);
    sn__free(tt->scratch);
    sn__free(tt->in);
    sn__free(tt->hello);
    sn__free(tt);
}

static const sn_transport_vtable tls_vtable = {
    .name = "tls",
    .recv = tls_recv,
    .recv_wait = tls_recv_wait,
    .sendv = tls_sendv,
    .shutdown = tls_shutdown,
    .pending = tls_pending,
    .idle = tls_idle,
    .release = tls_release,
};

static tls_transport *tls_of(const sn_conn *c)
{
    sn_transport *t = sn__conn_transport(c);
    return t->vt == &tls_vtable ? (tls_transport *)t : NULL;
}

size_t sn__tls_held(const sn_conn *c)
{
    tls_transport *tt = tls_of(c);
    if (tt == NULL)
        return 0;
    sn__mutex_lock(&tt->mu);
    size_t n = (tt->in ? SN_TLS_INBUF : 0) + (tt->scratch ? SN_TLS_SCRATCH : 0);
    sn__mutex_unlock(&tt->mu);
    return n;
}

/* ---- the handshake ----------------------------------------------------------------- */

static bool is_numeric_host(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static int client_setup(tls_transport *tt, const char *name)
{
    sn_tls *t = tt->tls;
    if (name == NULL) {
        if (t->verify_hostname)
            return SN_EINVAL;
        name = "";
    }
    if ((tt->name = sn__strdup(name)) == NULL)
        return SN_ENOMEM;
    if (*name && !is_numeric_host(name) &&
        wolfSSL_UseSNI(tt->ssl, WOLFSSL_SNI_HOST_NAME, name, (unsigned short)strlen(name)) !=
            WOLFSSL_SUCCESS)
        return SN_ENOMEM;
    if (t->verify_hostname && wolfSSL_check_domain_name(tt->ssl, name) != WOLFSSL_SUCCESS)
        return SN_ENOMEM;
    if (t->tickets) {
        WOLFSSL_SESSION *s = cache_get(t, name);
        if (s != NULL) {
            wolfSSL_set_session(tt->ssl, s);
            wolfSSL_SESSION_free(s);
        }
    }
    return 0;
}

static int new_transport(tls_transport **out, sn_tls *t, int fd, const char *name)
{
    tls_transport *tt = sn__calloc(1, sizeof *tt);
    if (tt == NULL)
        return SN_ENOMEM;
    tt->base.vt = &tls_vtable;
    tt->base.fd = fd;
    tt->tls = sn_tls_ref(t);
    sn__mutex_init(&tt->mu);
    int rc = 0;
    if ((tt->in = sn__malloc(SN_TLS_INBUF)) == NULL || (tt->ssl = wolfSSL_new(t->ctx)) == NULL)
        rc = SN_ENOMEM;
    if (rc == 0) {
        wolfSSL_SetIOReadCtx(tt->ssl, tt);
        wolfSSL_SetIOWriteCtx(tt->ssl, tt);
        unsigned char opt =
            t->alpn_required ? WOLFSSL_ALPN_FAILED_ON_MISMATCH : WOLFSSL_ALPN_CONTINUE_ON_MISMATCH;
        if (t->alpn != NULL &&
            wolfSSL_UseALPN(tt->ssl, t->alpn, (unsigned)strlen(t->alpn), opt) != WOLFSSL_SUCCESS)
            rc = SN_ENOMEM;
    }
    if (rc == 0 && t->role == SN_TLS_CLIENT)
        rc = client_setup(tt, name);
    if (rc < 0) {
        tls_release(&tt->base);
        return rc;
    }
    *out = tt;
    return 0;
}

/* Waits for a turn among the server's handshakes_max concurrent
 * handshakes, until the absolute deadline dl, on turn_cv, which give_turn
 * signals (a fiber parks, a thread blocks). A free turn is taken before
 * the deadline is looked at, so a waiter woken by give_turn never leaves
 * the turn it was woken for unused. */
static int take_turn(sn_tls *t, int64_t dl)
{
    if (t->role != SN_TLS_SERVER || t->handshakes_max == 0)
        return 0;
    int rc = 0;
    sn__mutex_lock(&t->turn_mu);
    while (t->handshakes >= t->handshakes_max) {
        if (sn_now_ms() >= dl) {
            rc = SN_ETIMEDOUT;
            break;
        }
        t->turn_waiters++;
        sn__cv_wait(&t->turn_cv, &t->turn_mu, dl); /* the loop tells why it woke */
        t->turn_waiters--;
    }
    if (rc == 0)
        t->handshakes++;
    sn__mutex_unlock(&t->turn_mu);
    return rc;
}

static void give_turn(sn_tls *t)
{
    if (t->role != SN_TLS_SERVER || t->handshakes_max == 0)
        return;
    sn__mutex_lock(&t->turn_mu);
    t->handshakes--;
    if (t->turn_waiters > 0)
        sn__cv_signal(&t->turn_cv); /* one turn, one waiter */
    sn__mutex_unlock(&t->turn_mu);
}

/* After the handshake: ALPN required and not agreed. */
static int check_alpn(tls_transport *tt)
{
    sn_tls *t = tt->tls;
    char *proto = NULL;
    unsigned short len = 0;
    if (t->alpn == NULL || !t->alpn_required)
        return 0;
    if (wolfSSL_ALPN_GetProtocol(tt->ssl, &proto, &len) == WOLFSSL_SUCCESS && len > 0)
        return 0;
    if (t->role == SN_TLS_SERVER && !tt->alpn_offered)
        return 0; /* a client that offers nothing is not refused */
    tt->failed = true;
    snprintf(tt->reason, sizeof tt->reason, "no protocol agreed; ours: %s", t->alpn);
    return SN_ETLS_ALPN;
}

static int run_handshake(tls_transport *tt, int64_t dl)
{
    bool server = tt->tls->role == SN_TLS_SERVER;
    for (;;) {
        short want = POLLIN;
        sn__mutex_lock(&tt->mu);
        int r = server ? wolfSSL_accept(tt->ssl) : wolfSSL_connect(tt->ssl);
        int rc = r == WOLFSSL_SUCCESS ? 0 : after_call(tt, r, &want);
        if (rc == 0 && r != WOLFSSL_SUCCESS)
            rc = SN_EOF;
        if (rc == 0 && (rc = check_alpn(tt)) == 0) {
            /* only now: wolfSSL frees what it tells from once the session runs */
            if (wolfSSL_get_signature_nid(tt->ssl, &tt->sig_oid) != WOLFSSL_SUCCESS)
                tt->sig_oid = 0;
            tt->done = true;
        }
        sn__mutex_unlock(&tt->mu);
        if (rc != SN_EAGAIN)
            return rc;
        if ((rc = sn__wait_fd(tt->base.fd, want, dl)) < 0)
            return rc;
    }
}

int sn_tls_upgrade(sn_conn *c, sn_tls *tls, const char *name, sn_deadline dl)
{
    if (c == NULL || tls == NULL)
        return SN_EINVAL;
    if (tls_of(c) != NULL || sn_available(c) > 0)
        return SN_EBADSTATE;
    int rc = sn_conn_error(c);
    if (rc < 0)
        return rc;
    int64_t abs = sn__deadline_abs(dl, tls->handshake_ms);
    if (sn_pending(c) > 0 && (rc = sn_flush(c, abs)) < 0)
        return rc;
    tls_transport *tt;
    int fd = sn_sock_fd(sn_conn_sock(c));
    if ((rc = new_transport(&tt, tls, fd, name)) < 0)
        return rc;
    tt->base.blocking = sn__conn_transport(c)->blocking; /* the same descriptor */
    tt->base.timeo_ms = sn__conn_transport(c)->timeo_ms;
    sn__conn_set_transport(c, &tt->base);
    note_ecc_thread();
    if ((rc = take_turn(tls, abs)) == 0) {
        rc = run_handshake(tt, abs);
        give_turn(tls);
    } else {
        snprintf(tt->reason, sizeof tt->reason,
                 "no handshake turn free by the deadline (handshakes_max %d)", tls->handshakes_max);
    }
    if (rc < 0 && sn__conn_wake_level(c) >= SN__WAKE_CANCEL) {
        rc = SN_ECANCELED; /* the socket was shut down under the handshake: say why */
        snprintf(tt->reason, sizeof tt->reason, "handshake cancelled (sn_conn_cancel)");
    } else if ((rc == SN_EOF || rc == SN_ECONNRESET || rc == SN_EPIPE) &&
               sn__conn_wake_level(c) > 0) {
        rc = SN_ESTOPPED; /* a server's stop shut it down: not the peer leaving */
        snprintf(tt->reason, sizeof tt->reason, "handshake stopped: the server is stopping");
    }
    if (rc < 0) {
        if (rc == SN_ETIMEDOUT && tt->reason[0] == '\0')
            snprintf(tt->reason, sizeof tt->reason, "handshake not done by its deadline");
        else if (tt->reason[0] == '\0')
            snprintf(tt->reason, sizeof tt->reason, "in the handshake: %s", sn_strerror(rc));
        tt->failed = true;
        sn__conn_fail(c, rc);
    }
    return rc;
}

int sn_tls_connect(sn_conn **out, sn_tls *tls, const char *host, int port,
                   const sn_sock_options *opt, const sn_conn_config *cfg, sn_deadline dl)
{
    if (out != NULL)
        *out = NULL;
    if (out == NULL || tls == NULL || tls->role != SN_TLS_CLIENT)
        return SN_EINVAL;
    sn_conn *c;
    int rc = sn_conn_connect(&c, host, port, opt, cfg, dl);
    if (rc < 0)
        return rc;
    if ((rc = sn_tls_upgrade(c, tls, host, dl)) < 0 && !sn_conn_is_tls(c)) {
        sn_conn_free(c); /* failed before the handshake began: nothing to tell */
        return rc;
    }
    *out = c; /* also after a failed handshake, for sn_tls_reason */
    return rc;
}

int sn_conn_is_tls(const sn_conn *c)
{
    return c != NULL && tls_of(c) != NULL;
}

const char *sn_tls_reason(const sn_conn *c)
{
    tls_transport *tt = c != NULL ? tls_of(c) : NULL;
    return tt != NULL ? tt->reason : "";
}

/* ---- introspection ----------------------------------------------------------------- */

static int handshaken_tls(sn_conn *c, tls_transport **out)
{
    if (c == NULL)
        return SN_EINVAL;
    if ((*out = tls_of(c)) == NULL)
        return SN_ENOTLS;
    return (*out)->done ? 0 : SN_EBADSTATE;
}

int sn_tls_info_get(sn_conn *c, sn_tls_info *out)
{
    tls_transport *tt;
    int rc = handshaken_tls(c, &tt);
    if (rc < 0 || out == NULL)
        return rc < 0 ? rc : SN_EINVAL;
    memset(out, 0, sizeof *out);
    sn__mutex_lock(&tt->mu);
    WOLFSSL *ssl = tt->ssl;
    int v = wolfSSL_version(ssl);
    out->version = v == TLS1_3_VERSION ? SN_TLS_1_3 : v == TLS1_2_VERSION ? SN_TLS_1_2 : v;
    out->version_name = wolfSSL_get_version(ssl);
    int suite = wolfSSL_get_current_cipher_suite(ssl);
    unsigned char s0 = (unsigned char)(suite >> 8), s1 = (unsigned char)suite;
    out->cipher = wolfSSL_get_cipher_name_iana_from_suite(s0, s1);
    out->cipher_openssl =
        out->version == SN_TLS_1_3 ? out->cipher : wolfSSL_get_cipher_name_from_suite(s0, s1);
    out->group = wolfSSL_get_curve_name(ssl);
    char *proto = NULL;
    unsigned short plen = 0;
    if (wolfSSL_ALPN_GetProtocol(ssl, &proto, &plen) == WOLFSSL_SUCCESS && plen > 0)
        out->alpn = proto; /* wolfSSL keeps it NUL-terminated */
    if (tt->tls->role == SN_TLS_CLIENT)
        out->server_name = tt->name != NULL && *tt->name ? tt->name : NULL;
    else
        out->server_name = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
    out->resumed = wolfSSL_session_reused(ssl) ? 1 : 0;
    WOLFSSL_X509 *peer = wolfSSL_get_peer_certificate(ssl);
    out->verify_result = wolfSSL_get_verify_result(ssl);
    out->peer_verified =
        peer != NULL && out->verify_result == 0 && tt->tls->verify != SN_TLS_VERIFY_NONE;
    wolfSSL_X509_free(peer);
    out->verify_reason = verify_text(out->verify_result);
    out->sigalgs = tt->tls->sigalgs;
    sn__mutex_unlock(&tt->mu);
    return 0;
}

int sn_tls_peer_sigalgs(sn_conn *c, char *buf, size_t cap)
{
    tls_transport *tt;
    int rc = handshaken_tls(c, &tt);
    if (rc < 0)
        return rc;
    if (buf == NULL || cap == 0)
        return SN_EINVAL;
    if (tt->tls->role != SN_TLS_SERVER || tt->npeer_sigalgs < 0)
        return SN_ETLS_UNAVAILABLE;
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < tt->npeer_sigalgs; i++) {
        char hex[8];
        const char *name = sn__tls_sigalg_iana(tt->peer_sigalgs[i]);
        if (name == NULL) {
            snprintf(hex, sizeof hex, "0x%04x", tt->peer_sigalgs[i]);
            name = hex;
        }
        size_t k = strlen(name) + (i > 0);
        if (len + k >= cap)
            return SN_ERANGE;
        snprintf(buf + len, cap - len, "%s%s", i > 0 ? ":" : "", name);
        len += k;
    }
    return (int)len;
}

/* wolfSSL reports the signature as a certificate signature type, which
 * names the hash and the key but not the padding: RSA is PSS in TLS 1.3
 * (RFC 8446 4.2.3), either in TLS 1.2. */
static const char *sigalg_name(int oid, bool tls13)
{
    switch (oid) {
    case CTC_SHA256wECDSA:
        return "ECDSA+SHA256";
    case CTC_SHA384wECDSA:
        return "ECDSA+SHA384";
    case CTC_SHA512wECDSA:
        return "ECDSA+SHA512";
    case CTC_SHA256wRSA:
        return tls13 ? "RSA-PSS+SHA256" : NULL;
    case CTC_SHA384wRSA:
        return tls13 ? "RSA-PSS+SHA384" : NULL;
    case CTC_SHA512wRSA:
        return tls13 ? "RSA-PSS+SHA512" : NULL;
    case CTC_ED25519:
        return "ED25519";
    case CTC_ED448:
        return "ED448";
    default:
        return NULL;
    }
}

int sn_tls_sigalg_used(sn_conn *c, char *buf, size_t cap)
{
    tls_transport *tt;
    int rc = handshaken_tls(c, &tt);
    if (rc < 0 || buf == NULL || cap == 0)
        return rc < 0 ? rc : SN_EINVAL;
    sn__mutex_lock(&tt->mu);
    bool tls13 = wolfSSL_version(tt->ssl) == TLS1_3_VERSION;
    sn__mutex_unlock(&tt->mu);
    const char *name = sigalg_name(tt->sig_oid, tls13);
    if (name == NULL)
        return SN_ETLS_UNAVAILABLE;
    size_t n = strlen(name);
    if (n >= cap)
        return SN_ERANGE;
    memcpy(buf, name, n + 1);
    return (int)n;
}

static void name_line(WOLFSSL_X509_NAME *n, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (n != NULL)
        wolfSSL_X509_NAME_oneline(n, buf, (int)cap);
}

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const unsigned char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* An X.509 time (UTCTime YYMMDDHHMMSSZ or GeneralizedTime
 * YYYYMMDDHHMMSSZ) as Unix time, or 0. Parsed here: wolfSSL's
 * wolfSSL_ASN1_TIME_to_tm goes through the C library's time zone state,
 * which is not safe to use from several threads. */
static int64_t asn1_time(WOLFSSL_ASN1_TIME *t)
{
    if (t == NULL)
        return 0;
    const unsigned char *p = wolfSSL_ASN1_TIME_get_data(t);
    int len = wolfSSL_ASN1_TIME_get_length(t);
    int ylen = len == 13 ? 2 : len == 15 ? 4 : 0;
    if (p == NULL || ylen == 0 || p[len - 1] != 'Z')
        return 0;
    int y = digits(p, ylen), mo = digits(p + ylen, 2), d = digits(p + ylen + 2, 2);
    int h = digits(p + ylen + 4, 2), mi = digits(p + ylen + 6, 2), sec = digits(p + ylen + 8, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || mi < 0 || sec < 0)
        return 0;
    if (ylen == 2)
        y += y < 50 ? 2000 : 1900; /* RFC 5280 4.1.2.5.1 */
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
}

static void fill_x509(WOLFSSL_X509 *x, sn_tls_x509 *out)
{
    memset(out, 0, sizeof *out);
    int len = 0;
    out->der = wolfSSL_X509_get_der(x, &len);
    out->der_len = out->der != NULL && len > 0 ? (size_t)len : 0;
    name_line(wolfSSL_X509_get_subject_name(x), out->subject, sizeof out->subject);
    name_line(wolfSSL_X509_get_issuer_name(x), out->issuer, sizeof out->issuer);
    unsigned char serial[32];
    int slen = sizeof serial;
    if (wolfSSL_X509_get_serial_number(x, serial, &slen) == WOLFSSL_SUCCESS)
        for (int i = 0; i < slen && (size_t)(i * 3 + 3) < sizeof out->serial; i++)
            snprintf(out->serial + i * 3, 4, i + 1 < slen ? "%02X:" : "%02X", serial[i]);
    out->not_before = asn1_time(wolfSSL_X509_get_notBefore(x));
    out->not_after = asn1_time(wolfSSL_X509_get_notAfter(x));
    char *alt;
    size_t used = 0;
    while ((alt = wolfSSL_X509_get_next_altname(x)) != NULL) {
        size_t n = strlen(alt);
        if (used + n + 2 > sizeof out->san)
            continue; /* drain the iterator */
        if (used > 0)
            out->san[used++] = ',';
        memcpy(out->san + used, alt, n + 1);
        used += n;
    }
}

int sn_tls_peer_cert(sn_conn *c, int idx, sn_tls_x509 *out)
{
    tls_transport *tt;
    int rc = handshaken_tls(c, &tt);
    if (rc < 0 || out == NULL || idx < 0)
        return rc < 0 ? rc : SN_EINVAL;
    sn__mutex_lock(&tt->mu);
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(tt->ssl);
    int n = chain != NULL ? wolfSSL_get_chain_count(chain) : 0;
    WOLFSSL_X509 *x = idx < n ? wolfSSL_get_chain_X509(chain, idx) : NULL;
    if (x != NULL) {
        fill_x509(x, out);
        /* the DER must outlive x: point into the chain's copy */
        out->der = wolfSSL_get_chain_cert(chain, idx);
        out->der_len = (size_t)wolfSSL_get_chain_length(chain, idx);
        wolfSSL_X509_free(x);
    }
    sn__mutex_unlock(&tt->mu);
    return x != NULL ? n : SN_ENOENT;
}

int sn_tls_local_cert(sn_conn *c, sn_tls_x509 *out)
{
    tls_transport *tt;
    if (c == NULL || out == NULL)
        return SN_EINVAL;
    if ((tt = tls_of(c)) == NULL)
        return SN_ENOTLS;
    sn__mutex_lock(&tt->mu);
    WOLFSSL_X509 *x = wolfSSL_get_certificate(tt->ssl); /* owned by the session */
    if (x != NULL)
        fill_x509(x, out);
    sn__mutex_unlock(&tt->mu);
    return x != NULL ? 0 : SN_ENOENT;
}

ssize_t sn_tls_x509_pem(const sn_tls_x509 *x, char *buf, size_t cap)
{
    if (x == NULL || x->der == NULL || buf == NULL || cap == 0 || cap > INT_MAX)
        return SN_EINVAL;
    int n = wc_DerToPem(x->der, (word32)x->der_len, (byte *)buf, (word32)cap - 1, CERT_TYPE);
    if (n < 0)
        return SN_ERANGE;
    buf[n] = '\0';
    return n;
}
