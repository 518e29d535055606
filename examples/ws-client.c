/* SPDX-License-Identifier: MIT */
/*
 * ws-client: sends each line of stdin to a WebSocket server as a text
 * message and prints every message that arrives, one per line.
 *
 *   ws-client [--deflate] [--timeout-ms N] [--tls-ca FILE] URL
 *
 * URL is ws://host[:port]/path or wss://host[:port]/path. For wss:// the
 * server's certificate is verified, with its host name, against the
 * system's CAs, or against --tls-ca FILE instead.
 *
 * At the end of stdin it closes the session (1000) and waits for the
 * server's close, so every echo of what was sent is printed first. Exit
 * status: 0 after a clean close, 1 when the connection or handshake failed.
 * Binary messages are printed as they are. --timeout-ms (1-3600000;
 * default 10000) bounds the handshake, each send and the close.
 *
 * A bad flag or value is named, with what it takes, before the usage line
 * ("ws-client: --timeout-ms 0: out of range (1-3600000)"); the exit status
 * is then 2.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <socknet.h>

static void *printer(void *arg)
{
    sn_ws *ws = arg;
    sn_ws_msg m;
    int rc;
    while ((rc = sn_ws_recv(ws, &m, SN_DEADLINE_NEVER)) == 0) {
        fwrite(m.data, 1, m.len, stdout);
        putchar('\n');
        fflush(stdout);
    }
    return (void *)(intptr_t)rc;
}

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: ws-client [--deflate] [--timeout-ms N] [--tls-ca FILE] "
                    "ws[s]://host[:port]/path\n");
    exit(2);
}

/* Says which flag was wrong and what it takes, then the usage line. */
_Noreturn static void bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ws-client: ", stderr);
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

/* The value of the flag argv[*i], a whole number from lo to hi. */
static long num_arg(char **argv, int *i, long lo, long hi)
{
    const char *flag = argv[*i], *s = str_arg(argv, i);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        bad("%s %s: not a number (%ld-%ld)", flag, s, lo, hi);
    if (errno == ERANGE || v < lo || v > hi)
        bad("%s %s: out of range (%ld-%ld)", flag, s, lo, hi);
    return v;
}

int main(int argc, char **argv)
{
    sn_ws_config wc = {0};
    sn_tls_source ca = {0};
    int timeout = 10000;
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--deflate") == 0)
            wc.deflate = SN_ON;
        else if (strcmp(f, "--timeout-ms") == 0)
            timeout = (int)num_arg(argv, &i, 1, 3600000);
        else if (strcmp(f, "--tls-ca") == 0)
            ca.file = str_arg(argv, &i);
        else if (f[0] == '-')
            bad("unknown flag %s", f);
        else if (url != NULL)
            bad("one URL only (%s, then %s)", url, f);
        else
            url = f;
    }
    if (url == NULL)
        bad("no URL: ws://host[:port]/path or wss://host[:port]/path");

    int rc = 0;
    if (ca.file != NULL) {
        sn_tls_config tc = {.role = SN_TLS_CLIENT, .ca = &ca, .nca = 1};
        char why[SN_TLS_REASON_MAX]; /* why a TLS configuration is refused */
        tc.reason = why;
        tc.reason_cap = sizeof why;
        rc = sn_tls_new(&wc.tls, &tc);
        if (rc < 0) {
            fprintf(stderr, "ws-client: TLS configuration: %s: %s\n", sn_strerror(rc), why);
            return 1;
        }
    }
    sn_ws *ws = NULL;
    int status = 0;
    char why[SN_TLS_REASON_MAX] = "";
    wc.tls_reason = why;
    wc.tls_reason_cap = sizeof why;
    if (rc == 0)
        rc = sn_ws_connect(&ws, url, NULL, &wc, &status, sn_deadline_in(timeout));
    sn_tls_free(wc.tls); /* the connection keeps its own reference */
    if (rc < 0 && why[0] != '\0') {
        fprintf(stderr, "ws-client: %s: %s\n", sn_strerror(rc), why);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "ws-client: %s (HTTP status %d)\n", sn_strerror(rc), status);
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, printer, ws) != 0) {
        fprintf(stderr, "ws-client: no thread\n");
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            n--;
        if ((rc = sn_ws_send(ws, SN_WS_TEXT, line, (size_t)n, sn_deadline_in(timeout))) < 0)
            break;
    }
    free(line);
    if (rc == 0)
        rc = sn_ws_close_send(ws, SN_WS_NORMAL, NULL, sn_deadline_in(timeout));
    void *res;
    pthread_join(t, &res);
    int end = (int)(intptr_t)res;
    if (rc == 0 && end != SN_ECLOSED)
        rc = end;
    if (rc < 0 && rc != SN_ECLOSED)
        fprintf(stderr, "ws-client: %s\n", sn_strerror(rc));
    else if (sn_ws_close_code(ws) != SN_WS_NORMAL)
        fprintf(stderr, "ws-client: closed by the server: %d %s\n", sn_ws_close_code(ws),
                sn_ws_close_reason(ws));
    sn_ws_free(ws);
    return rc < 0 && rc != SN_ECLOSED ? 1 : 0;
}
