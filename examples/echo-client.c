/* SPDX-License-Identifier: MIT */
/*
 * echo-client: sends each line of standard input to an echo server and
 * prints each reply.
 *
 *   echo-client HOST PORT [--tls [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]
 *                               [--alpn LIST] [--sni NAME]]
 *   echo-client unix:PATH       (a local socket; unix:@NAME for an abstract name)
 *
 * --tls speaks TLS: the server's certificate is verified against --tls-ca
 * (default: the system's CAs) and the name given by --sni (default: HOST);
 * --tls-cert/--tls-key present a client certificate (mutual TLS); --alpn
 * offers protocols ("h2,http/1.1"). The negotiated version, cipher and ALPN
 * protocol go to standard error.
 */
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

static void usage(void)
{
    fprintf(stderr, "usage: echo-client HOST PORT [--tls [--tls-ca FILE] [--tls-cert FILE "
                    "--tls-key FILE] [--alpn LIST] [--sni NAME]]\n"
                    "       echo-client unix:PATH\n");
    exit(2);
}

/* Parses the TLS flags into *tc; returns whether --tls was given. */
static int tls_flags(int argc, char **argv, sn_tls_config *tc, sn_tls_source *ca, const char **sni)
{
    int on = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--tls") == 0) {
            on = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--tls-ca") == 0)
            ca->file = argv[++i];
        else if (strcmp(argv[i], "--tls-cert") == 0)
            tc->cert.chain.file = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0)
            tc->cert.key.file = argv[++i];
        else if (strcmp(argv[i], "--alpn") == 0)
            tc->alpn = argv[++i];
        else if (strcmp(argv[i], "--sni") == 0)
            *sni = argv[++i];
        else
            usage();
    }
    if (!on && argc > 3)
        usage(); /* TLS flags without --tls */
    if ((tc->cert.chain.file == NULL) != (tc->cert.key.file == NULL))
        usage();
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
        fprintf(stderr, "echo-client: TLS: %s (%s)\n", sn_strerror(rc), sn_tls_reason(*c));
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
    bool local = argc == 2 && strncmp(argv[1], "unix:", 5) == 0;
    if (argc < 3 && !local)
        usage();
    char *end;
    long port = local ? 0 : strtol(argv[2], &end, 10);
    if (!local && (*argv[2] == '\0' || *end != '\0' || port < 1 || port > 65535)) {
        fprintf(stderr, "echo-client: bad port: %s\n", argv[2]);
        return 2;
    }
    sn_tls_config tc = {.role = SN_TLS_CLIENT};
    sn_tls_source ca = {0};
    const char *sni = argv[1];
    sn_tls *tls = NULL;
    if (tls_flags(argc, argv, &tc, &ca, &sni)) {
        int rc = sn_tls_new(&tls, &tc);
        if (rc < 0)
            return fail("TLS configuration", rc);
    }

    sn_conn *c;
    int status = dial(&c, argv[1], (int)port, tls, sni);
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
            status = fail("send", rc);
            break;
        }
        if ((rc = (int)sn_read_exact(c, reply, (size_t)len, 0)) < 0) {
            status = fail("receive", rc);
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
