/* SPDX-License-Identifier: MIT */
/*
 * echo-client: sends each line of standard input to an echo server and
 * prints each reply.
 *
 *   echo-client HOST PORT [--tls [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]
 *                               [--tls-ciphers LIST] [--tls-sigalgs LIST]
 *                               [--tls-groups LIST] [--alpn LIST] [--sni NAME]]
 *   echo-client unix:PATH       (a local socket; unix:@NAME for an abstract name)
 *
 * --tls speaks TLS: the server's certificate is verified against --tls-ca
 * (default: the system's CAs) and the name given by --sni (default: HOST);
 * --tls-cert/--tls-key present a client certificate (mutual TLS); --alpn
 * offers protocols ("h2,http/1.1" or "h2:http/1.1"); --tls-ciphers,
 * --tls-sigalgs and --tls-groups set the lists socknet/tls.h describes
 * (OpenSSL's names: "ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256",
 * "rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256", "X25519:P-256"). The
 * negotiated version, cipher and ALPN protocol go to standard error. A TLS
 * configuration or handshake that fails prints its reason and exits 1.
 *
 * A bad argument, flag or value is named, with what it takes, before the
 * usage line ("echo-client: --sni needs a value", "echo-client: PORT 0: out
 * of range (1-65535)"); the exit status is then 2.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <socknet.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "echo-client: %s: %s\n", what, sn_strerror(rc));
    return 1;
}

/* A failed send or receive; over TLS with its reason (an alert the server
 * sent after the handshake, in TLS 1.3: a refused client certificate). */
static int conn_fail(sn_conn *c, const char *what, int rc)
{
    const char *why = sn_tls_reason(c);
    if (*why == '\0')
        return fail(what, rc);
    fprintf(stderr, "echo-client: %s: %s: %s\n", what, sn_strerror(rc), why);
    return 1;
}

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: echo-client HOST PORT [--tls [--tls-ca FILE] [--tls-cert FILE "
                    "--tls-key FILE]\n"
                    "                             [--tls-ciphers LIST] [--tls-sigalgs LIST] "
                    "[--tls-groups LIST] [--alpn LIST] [--sni NAME]]\n"
                    "       echo-client unix:PATH\n");
    exit(2);
}

/* Says which argument or flag was wrong and what it takes, then the usage. */
_Noreturn static void bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("echo-client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    usage();
}

/* The value of the flag argv[*i]; *i moves past it. */
static const char *str_arg(char **argv, int *i)
{
    if (argv[*i + 1] == NULL)
        bad("%s needs a value", argv[*i]);
    return argv[++*i];
}

/* The PORT argument: a whole number from 1 to 65535. */
static int port_arg(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        bad("PORT %s: not a number (1-65535)", s);
    if (errno == ERANGE || v < 1 || v > 65535)
        bad("PORT %s: out of range (1-65535)", s);
    return (int)v;
}

/* Parses the TLS flags (after HOST PORT) into *tc; returns whether --tls
 * was given. */
static bool tls_flags(char **argv, sn_tls_config *tc, sn_tls_source *ca, const char **sni)
{
    bool on = false;
    const char *first = NULL; /* the first flag that needs --tls */
    for (int i = 3; argv[i] != NULL; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--tls") == 0) {
            on = true;
            continue;
        }
        if (first == NULL)
            first = f;
        if (strcmp(f, "--tls-ca") == 0)
            ca->file = str_arg(argv, &i);
        else if (strcmp(f, "--tls-cert") == 0)
            tc->cert.chain.file = str_arg(argv, &i);
        else if (strcmp(f, "--tls-key") == 0)
            tc->cert.key.file = str_arg(argv, &i);
        else if (strcmp(f, "--alpn") == 0)
            tc->alpn = str_arg(argv, &i);
        else if (strcmp(f, "--tls-ciphers") == 0)
            tc->ciphers = str_arg(argv, &i);
        else if (strcmp(f, "--tls-sigalgs") == 0)
            tc->sigalgs = str_arg(argv, &i);
        else if (strcmp(f, "--tls-groups") == 0)
            tc->groups = str_arg(argv, &i);
        else if (strcmp(f, "--sni") == 0)
            *sni = str_arg(argv, &i);
        else
            bad("unknown flag %s", f);
    }
    if (!on && first != NULL)
        bad("%s needs --tls", first);
    if ((tc->cert.chain.file == NULL) != (tc->cert.key.file == NULL))
        bad("--tls-cert and --tls-key go together");
    if (ca->file != NULL) {
        tc->ca = ca;
        tc->nca = 1;
    }
    return on;
}

/* Connects, and with TLS performs the handshake and reports it. */
static int dial(sn_conn **c, const char *host, int port, sn_tls *tls, const char *sni)
{
    int rc = sn_conn_connect(c, host, port, NULL, NULL, SN_DEADLINE_DEFAULT);
    if (rc < 0 || tls == NULL)
        return rc < 0 ? fail("connect", rc) : 0;
    if ((rc = sn_tls_upgrade(*c, tls, sni, SN_DEADLINE_DEFAULT)) < 0) {
        fprintf(stderr, "echo-client: TLS: %s: %s\n", sn_strerror(rc), sn_tls_reason(*c));
        sn_conn_free(*c);
        return 1;
    }
    sn_tls_info info;
    sn_tls_info_get(*c, &info);
    fprintf(stderr, "tls: %s %s (%s) group %s%s%s\n", info.version_name, info.cipher,
            info.cipher_openssl, info.group ? info.group : "-", info.alpn ? " alpn " : "",
            info.alpn ? info.alpn : "");
    return 0;
}

int main(int argc, char **argv)
{
    bool local = argc >= 2 && strncmp(argv[1], "unix:", 5) == 0;
    if (argc < 2)
        bad("needs HOST PORT, or unix:PATH");
    if (argv[1][0] == '-')
        bad("HOST PORT come first, then the flags (%s came first)", argv[1]);
    if (local && argc > 2)
        bad("%s: a local socket takes no PORT and no flags (%s)", argv[1], argv[2]);
    if (!local && argc < 3)
        bad("HOST %s needs a PORT after it", argv[1]);
    int port = local ? 0 : port_arg(argv[2]);
    sn_tls_config tc = {.role = SN_TLS_CLIENT};
    sn_tls_source ca = {0};
    const char *sni = argv[1];
    sn_tls *tls = NULL;
    if (!local && tls_flags(argv, &tc, &ca, &sni)) {
        char why[SN_TLS_REASON_MAX]; /* why a TLS configuration is refused */
        tc.reason = why;
        tc.reason_cap = sizeof why;
        int rc = sn_tls_new(&tls, &tc);
        if (rc < 0) {
            fprintf(stderr, "echo-client: TLS configuration: %s: %s\n", sn_strerror(rc), why);
            return 1;
        }
    }

    sn_conn *c;
    int status = dial(&c, argv[1], port, tls, sni);
    sn_tls_free(tls); /* the connection keeps its own reference */
    if (status != 0)
        return status;

    /* An echo returns exactly the bytes sent, so read back as many as were
     * written: this works for any line length and any bytes. */
    char *line = NULL, *reply = NULL;
    size_t cap = 0, reply_cap = 0;
    ssize_t len;
    int rc;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        if ((size_t)len > reply_cap) {
            free(reply);
            reply_cap = cap;
            if ((reply = malloc(reply_cap)) == NULL) {
                status = fail("reply", SN_ENOMEM);
                break;
            }
        }
        if ((rc = (int)sn_write(c, line, (size_t)len, 0)) < 0 || (rc = sn_flush(c, 0)) < 0) {
            status = conn_fail(c, "send", rc);
            break;
        }
        if ((rc = (int)sn_read_exact(c, reply, (size_t)len, 0)) < 0) {
            status = conn_fail(c, "receive", rc);
            break;
        }
        fwrite(reply, 1, (size_t)len, stdout);
        fflush(stdout);
    }
    free(line);
    free(reply);
    sn_conn_close(c, 0); /* sends close_notify over TLS */
    sn_conn_free(c);
    return status;
}
