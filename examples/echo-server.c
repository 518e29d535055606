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
 * connection); --workers is the most connections served at once (default
 * 4096; 1-1048576, or 1-65536 with --fibers off, the range ws-echo and chat
 * take too) and --threads the threads that run the fibers (1-1024; default:
 * one per CPU); --stack-kib is each fiber's or thread's stack (16-65536).
 *
 * A bad flag or value is named, with what it takes, before the usage line
 * ("echo-server: --workers 0: out of range (1-1048576)"); the exit status
 * is then 2.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
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

#define WORKERS_MAX 1048576      /* connections served at once, in fiber mode */
#define THREAD_WORKERS_MAX 65536 /* with --fibers off: a thread each */

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: echo-server [--host H] [--port N | --unix PATH] [--workers N] "
                    "[--fibers on|off] [--threads N] [--stack-kib N]\n"
                    "                   [--tls-cert FILE --tls-key FILE [--tls-ca FILE "
                    "--tls-verify-peer]]\n");
    exit(2);
}

/* Says which flag was wrong and what it takes, then the usage line. */
_Noreturn static void bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("echo-server: ", stderr);
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

static int on_off(char **argv, int *i)
{
    const char *flag = argv[*i], *s = str_arg(argv, i);
    if (strcmp(s, "on") == 0)
        return SN_ON;
    if (strcmp(s, "off") == 0)
        return SN_OFF;
    bad("%s %s: expected on or off", flag, s);
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
    const char *unix_path = NULL;
    char unix_host[SN_ADDR_STRLEN];
    bool ip = false;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        ip |= strcmp(f, "--host") == 0 || strcmp(f, "--port") == 0;
        if (strcmp(f, "--tls-verify-peer") == 0)
            tc.verify = SN_TLS_VERIFY_REQUIRED;
        else if (strcmp(f, "--tls-cert") == 0)
            tc.cert.chain.file = str_arg(argv, &i);
        else if (strcmp(f, "--tls-key") == 0)
            tc.cert.key.file = str_arg(argv, &i);
        else if (strcmp(f, "--tls-ca") == 0)
            ca.file = str_arg(argv, &i);
        else if (strcmp(f, "--host") == 0)
            cfg.host = str_arg(argv, &i);
        else if (strcmp(f, "--port") == 0)
            cfg.port = (int)num_arg(argv, &i, 0, 65535);
        else if (strcmp(f, "--unix") == 0)
            unix_path = str_arg(argv, &i);
        else if (strcmp(f, "--workers") == 0)
            cfg.workers = (int)num_arg(argv, &i, 1, WORKERS_MAX);
        else if (strcmp(f, "--fibers") == 0)
            cfg.fibers = on_off(argv, &i);
        else if (strcmp(f, "--threads") == 0)
            cfg.fiber_threads = (int)num_arg(argv, &i, 1, 1024);
        else if (strcmp(f, "--stack-kib") == 0)
            cfg.stack_size = (size_t)num_arg(argv, &i, 16, 65536) * 1024;
        else
            bad("unknown flag %s", f);
    }
    if (cfg.fibers == SN_OFF && cfg.workers > THREAD_WORKERS_MAX)
        bad("--workers %d: out of range with --fibers off (1-%d)", cfg.workers, THREAD_WORKERS_MAX);
    if (unix_path != NULL) {
        if (unix_path[0] == '\0')
            bad("--unix needs a path or @NAME, not an empty string");
        if (ip)
            bad("--unix does not go with --host or --port");
        if (strlen(unix_path) > SN_LOCAL_PATH_MAX)
            bad("--unix %s: too long (at most %d bytes)", unix_path, SN_LOCAL_PATH_MAX);
        snprintf(unix_host, sizeof unix_host, "unix:%s", unix_path);
        cfg.host = unix_host;
    }
    if ((tc.cert.chain.file == NULL) != (tc.cert.key.file == NULL))
        bad("--tls-cert and --tls-key go together");
    if (tc.cert.chain.file == NULL && (ca.file != NULL || tc.verify != 0))
        bad("--tls-ca and --tls-verify-peer need --tls-cert and --tls-key");
    if (tc.verify != 0 && ca.file == NULL)
        bad("--tls-verify-peer needs --tls-ca");
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
