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
 * Binary messages are printed as they are.
 */
#include <pthread.h>
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

static void usage(void)
{
    fprintf(stderr, "usage: ws-client [--deflate] [--timeout-ms N] [--tls-ca FILE] "
                    "ws[s]://host[:port]/path\n");
    exit(2);
}

int main(int argc, char **argv)
{
    sn_ws_config wc = {0};
    sn_tls_source ca = {0};
    int timeout = 10000;
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--deflate") == 0)
            wc.deflate = SN_ON;
        else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
            timeout = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc)
            ca.file = argv[++i];
        else if (argv[i][0] != '-' && url == NULL)
            url = argv[i];
        else
            usage();
    }
    if (url == NULL || timeout <= 0)
        usage();

    int rc = 0;
    if (ca.file != NULL) {
        sn_tls_config tc = {.role = SN_TLS_CLIENT, .ca = &ca, .nca = 1};
        rc = sn_tls_new(&wc.tls, &tc);
    }
    sn_ws *ws = NULL;
    int status = 0;
    if (rc == 0)
        rc = sn_ws_connect(&ws, url, NULL, &wc, &status, sn_deadline_in(timeout));
    sn_tls_free(wc.tls); /* the connection keeps its own reference */
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
