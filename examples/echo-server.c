/* SPDX-License-Identifier: MIT */
/*
 * echo-server: a byte-stream echo server, over TCP or a local socket.
 *
 *   echo-server [--host H] [--port N | --unix PATH] [--workers N]
 *               [--fibers on|off] [--threads N] [--stack-kib N]
 *               [--tls-cert FILE --tls-key FILE [--tls-ca FILE --tls-verify-peer]]
 *
 * With --tls-cert and --tls-key it serves TLS (1.2 and 1.3); --tls-ca and
 * --tls-verify-peer require client certificates signed by that CA (mutual
 * TLS). The handshake runs on the connection's fiber or thread.
 *
 * Prints "listening on H:PORT" once ready ("listening on unix:PATH" with
 * --unix, which serves the same echo on a local (Unix-domain) socket at
 * PATH, or at the abstract name NAME for "@NAME"; a stale socket file left
 * by a crash is reclaimed, and the file is removed on exit; --unix does
 * not go with --host or --port). SIGINT or SIGTERM stops it
 * gracefully (exit status 0). The handler only calls socknet, so it runs in
 * the server's fiber mode by default (--fibers off: a thread per
 * connection); --workers is the most connections served at once and
 * --threads the threads that run the fibers (default: one per CPU).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <socknet.h>

static void echo(sn_conn *c, void *user)
{
    char buf[65536];
    ssize_t n;
    (void)user;
    /* The connections autoflush (see main): each write goes out at once,
     * straight from buf, and no write buffer is ever allocated. */
    while ((n = sn_read(c, buf, sizeof buf, SN_DEADLINE_DEFAULT)) > 0)
        if (sn_write(c, buf, (size_t)n, SN_DEADLINE_DEFAULT) < 0)
            break;
}

static void usage(void)
{
    fprintf(stderr, "usage: echo-server [--host H] [--port N | --unix PATH] [--workers N] "
                    "[--fibers on|off] [--threads N] [--stack-kib N]\n"
                    "                   [--tls-cert FILE --tls-key FILE [--tls-ca FILE "
                    "--tls-verify-peer]]\n");
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

static int on_off(const char *s)
{
    if (strcmp(s, "on") == 0)
        return SN_ON;
    if (strcmp(s, "off") != 0)
        usage();
    return SN_OFF;
}

int main(int argc, char **argv)
{
    sn_server_config cfg = {
        .host = "127.0.0.1",
        .handler = echo,
        .workers = 4096,
        .worker_idle_ms = 30000,
        .conn = {.autoflush = SN_ON},
        .fibers = SN_ON,
    };
    sn_tls_config tc = {.role = SN_TLS_SERVER};
    sn_tls_source ca = {0};
    char unix_host[SN_ADDR_STRLEN] = "";
    bool ip = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tls-verify-peer") == 0) {
            tc.verify = SN_TLS_VERIFY_REQUIRED;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        ip |= strcmp(argv[i], "--host") == 0 || strcmp(argv[i], "--port") == 0;
        if (strcmp(argv[i], "--tls-cert") == 0)
            tc.cert.chain.file = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0)
            tc.cert.key.file = argv[++i];
        else if (strcmp(argv[i], "--tls-ca") == 0)
            ca.file = argv[++i];
        else if (strcmp(argv[i], "--host") == 0)
            cfg.host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0)
            cfg.port = (int)num_arg(argv[++i], 0, 65535);
        else if (strcmp(argv[i], "--unix") == 0 && argv[i + 1][0] != '\0')
            snprintf(unix_host, sizeof unix_host, "unix:%s", argv[++i]);
        else if (strcmp(argv[i], "--workers") == 0)
            cfg.workers = (int)num_arg(argv[++i], 1, 65536);
        else if (strcmp(argv[i], "--fibers") == 0)
            cfg.fibers = on_off(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0)
            cfg.fiber_threads = (int)num_arg(argv[++i], 1, 1024);
        else if (strcmp(argv[i], "--stack-kib") == 0)
            cfg.stack_size = (size_t)num_arg(argv[++i], 16, 65536) * 1024;
        else
            usage();
    }
    if (unix_host[0] != '\0') {
        if (ip)
            usage();
        cfg.host = unix_host;
    }

    if ((tc.cert.chain.file == NULL) != (tc.cert.key.file == NULL) ||
        (tc.cert.chain.file == NULL && (ca.file != NULL || tc.verify != 0)) ||
        (tc.verify != 0 && ca.file == NULL))
        usage();
    sn_tls *tls = NULL;
    if (tc.cert.chain.file != NULL) {
        if (ca.file != NULL) {
            tc.ca = &ca;
            tc.nca = 1;
        }
        int rc = sn_tls_new(&tls, &tc);
        if (rc < 0) {
            fprintf(stderr, "echo-server: TLS: %s\n", sn_strerror(rc));
            return 1;
        }
        cfg.tls = tls; /* the server keeps its own reference */
    }

    /* Block the stop signals before any thread starts, then wait for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    sn_server *srv;
    int rc = sn_server_new(&srv, &cfg);
    sn_tls_free(tls);
    if (rc == 0)
        rc = sn_server_start(srv);
    if (rc < 0) {
        fprintf(stderr, "echo-server: %s\n", sn_strerror(rc));
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
    sn_server_stop(srv, 2000);
    sn_server_free(srv);
    return 0;
}
