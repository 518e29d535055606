/* SPDX-License-Identifier: MIT */
/*
 * udp-echo: a UDP echo server: every datagram received is sent back to its
 * sender unchanged (empty ones and 65,507-byte ones too).
 *
 *   udp-echo [--host H] [--port N] [--workers N] [--batch N]
 *
 * Prints "listening on H:PORT" once ready; SIGINT or SIGTERM stops it
 * (exit status 0). --workers is the number of threads that take turns
 * receiving from the one socket (at most one per CPU at a time; default:
 * one per CPU). It takes the TCP and WebSocket
 * servers' range, 1-1048576, so one --workers fits every example server,
 * but more than 1024 threads on one socket only cost memory: above 1024 it
 * warns on standard error and runs 1024. --batch N (1-64) lets each take
 * up to N queued datagrams per system call (recvmmsg), and send their
 * echoes with one (sendmmsg).
 *
 * A bad flag or value is named, with what it takes, before the usage line
 * ("udp-echo: --workers 0: out of range (1-1048576)"); the exit status is
 * then 2.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <socknet.h>

static void echo(const sn_udp_dgram *d, void *user)
{
    (void)user;
    sn_udp_reply(d, d->data, d->len);
}

#define WORKERS_MAX 1048576 /* the range of the TCP and WebSocket example servers */
#define WORKERS_CAP 1024    /* what a UDP server runs at most (sn_udp_server_config) */

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: udp-echo [--host H] [--port N] [--workers N] [--batch N]\n");
    exit(2);
}

/* Says which flag was wrong and what it takes, then the usage line. */
_Noreturn static void bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("udp-echo: ", stderr);
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
    sn_udp_server_config cfg = {
        .host = "127.0.0.1",
        .handler = echo,
        /* room for bursts (the kernel caps it at net.core.rmem_max); the
         * default buffer_size, 65,536 bytes, holds any datagram whole */
        .opt = {.rcvbuf = 4 * 1024 * 1024},
    };
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--host") == 0)
            cfg.host = str_arg(argv, &i);
        else if (strcmp(f, "--port") == 0)
            cfg.port = (int)num_arg(argv, &i, 0, 65535);
        else if (strcmp(f, "--workers") == 0)
            cfg.workers = (int)num_arg(argv, &i, 1, WORKERS_MAX);
        else if (strcmp(f, "--batch") == 0)
            cfg.batch = (int)num_arg(argv, &i, 1, 64);
        else
            bad("unknown flag %s", f);
    }
    if (cfg.workers > WORKERS_CAP) {
        fprintf(stderr,
                "udp-echo: --workers %d: capped at %d (threads receiving from one socket)\n",
                cfg.workers, WORKERS_CAP);
        cfg.workers = WORKERS_CAP;
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
