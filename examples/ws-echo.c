/* SPDX-License-Identifier: MIT */
/*
 * ws-echo: a WebSocket echo server at path /echo.
 *
 *   ws-echo [--host H] [--port N] [--workers N] [--fibers on|off] [--threads N]
 *           [--max-message BYTES] [--deflate-level 1-9]
 *           [--tls-cert FILE --tls-key FILE]
 *
 * With --tls-cert and --tls-key (PEM or DER) it serves wss:// (TLS 1.2 and
 * 1.3), the handshake on the connection's worker before the router.
 *
 * Each text message comes back as text, each binary one as binary; pings
 * are answered; permessage-deflate is accepted when a client offers it
 * (compressing at the library's default zlib level unless --deflate-level);
 * other paths get 404. Prints "listening on H:PORT" once ready; SIGINT or
 * SIGTERM stops it gracefully: every open session gets close 1001 (going
 * away), and the exit status is 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <socknet.h>

static void echo(sn_ws *ws, void *user)
{
    sn_ws_msg m;
    (void)user;
    while (sn_ws_recv(ws, &m, SN_DEADLINE_NEVER) == 0)
        if (sn_ws_send(ws, m.type, m.data, m.len, sn_deadline_in(30000)) < 0)
            break;
}

static void usage(void)
{
    fprintf(stderr, "usage: ws-echo [--host H] [--port N] [--workers N] [--fibers on|off] "
                    "[--threads N] [--max-message BYTES] [--deflate-level 1-9]\n"
                    "               [--tls-cert FILE --tls-key FILE]\n");
    exit(2);
}

static long num_arg(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    sn_ws_config wc = {.deflate = SN_ON};
    sn_tls_config tc = {.role = SN_TLS_SERVER};
    sn_server_config cfg = {
        .host = "127.0.0.1",
        .handler = sn_web_serve,
        .workers = 65536,
        .fibers = SN_ON,
        .conn = {.autoflush = SN_OFF},
    };
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--host") == 0)
            cfg.host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0)
            cfg.port = (int)num_arg(argv[++i], 0, 65535);
        else if (strcmp(argv[i], "--workers") == 0)
            cfg.workers = (int)num_arg(argv[++i], 1, 1048576);
        else if (strcmp(argv[i], "--fibers") == 0 && strcmp(argv[i + 1], "on") == 0)
            cfg.fibers = SN_ON, i++;
        else if (strcmp(argv[i], "--fibers") == 0 && strcmp(argv[i + 1], "off") == 0)
            cfg.fibers = SN_OFF, i++;
        else if (strcmp(argv[i], "--threads") == 0)
            cfg.fiber_threads = (int)num_arg(argv[++i], 1, 1024);
        else if (strcmp(argv[i], "--max-message") == 0)
            wc.max_message = wc.max_frame = (size_t)num_arg(argv[++i], 1, 1L << 30);
        else if (strcmp(argv[i], "--tls-cert") == 0)
            tc.cert.chain.file = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0)
            tc.cert.key.file = argv[++i];
        else if (strcmp(argv[i], "--deflate-level") == 0)
            wc.deflate_cfg.level = (int)num_arg(argv[++i], 1, 9);
        else
            usage();
    }
    if ((tc.cert.chain.file == NULL) != (tc.cert.key.file == NULL))
        usage();

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    sn_web *web = NULL;
    sn_server *srv = NULL;
    sn_tls *tls = NULL;
    int rc = tc.cert.chain.file != NULL ? sn_tls_new(&tls, &tc) : 0;
    cfg.tls = tls; /* the server keeps its own reference */
    if (rc == 0)
        rc = sn_web_new(&web, NULL);
    if (rc == 0)
        rc = sn_web_route_ws(web, "/echo", SN_ROUTE_EXACT, &wc, echo, NULL);
    cfg.user = web;
    if (rc == 0)
        rc = sn_server_new(&srv, &cfg);
    if (rc == 0)
        rc = sn_server_start(srv);
    if (rc < 0) {
        fprintf(stderr, "ws-echo: %s\n", sn_strerror(rc));
        return 1;
    }
    sn_addr local;
    char text[SN_ADDR_STRLEN];
    sn_server_local_addr(srv, 0, &local);
    sn_addr_format(&local, text, sizeof text);
    printf("listening on %s\n", text);
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    sn_server_stop(srv, 2000); /* sessions send 1001 as their reads end */
    sn_server_free(srv);
    sn_web_free(web);
    sn_tls_free(tls);
    return 0;
}
