/* SPDX-License-Identifier: MIT */
/*
 * udp-echo: a UDP echo server: every datagram received is sent back to its
 * sender unchanged (empty ones and 65,507-byte ones too).
 *
 *   udp-echo [--host H] [--port N] [--workers N] [--batch N]
 *
 * Prints "listening on H:PORT" once ready; SIGINT or SIGTERM stops it
 * (exit status 0). --workers is the number of threads receiving from the
 * one socket (default: one per CPU); --batch N lets each take up to N
 * queued datagrams per system call (recvmmsg).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <socknet.h>

static void echo(const sn_udp_dgram *d, void *user)
{
    (void)user;
    sn_udp_reply(d, d->data, d->len);
}

static void usage(void)
{
    fprintf(stderr, "usage: udp-echo [--host H] [--port N] [--workers N] [--batch N]\n");
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
    sn_udp_server_config cfg = {
        .host = "127.0.0.1",
        .handler = echo,
        /* room for bursts (the kernel caps it at net.core.rmem_max); the
         * default buffer_size, 65,536 bytes, holds any datagram whole */
        .opt = {.rcvbuf = 4 * 1024 * 1024},
    };
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--host") == 0)
            cfg.host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0)
            cfg.port = (int)num_arg(argv[++i], 0, 65535);
        else if (strcmp(argv[i], "--workers") == 0)
            cfg.workers = (int)num_arg(argv[++i], 1, 1024);
        else if (strcmp(argv[i], "--batch") == 0)
            cfg.batch = (int)num_arg(argv[++i], 1, 64);
        else
            usage();
    }

    /* Block the stop signals before any thread starts, then wait for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    sn_udp_server *srv;
    int rc = sn_udp_server_new(&srv, &cfg);
    if (rc == 0)
        rc = sn_udp_server_start(srv);
    if (rc < 0) {
        fprintf(stderr, "udp-echo: %s\n", sn_strerror(rc));
        return 1;
    }
    sn_addr local;
    char text[SN_ADDR_STRLEN];
    sn_udp_server_local_addr(srv, &local);
    sn_addr_format(&local, text, sizeof text);
    printf("listening on %s\n", text);
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    sn_udp_server_free(srv);
    return 0;
}
