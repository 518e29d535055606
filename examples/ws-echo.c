/* SPDX-License-Identifier: MIT */
/*
 * ws-echo: a WebSocket echo server at path /echo.
 *
 *   ws-echo [--host H] [--port N] [--workers N] [--fibers on|off] [--threads N]
 *           [--max-message BYTES] [--max-buffered BYTES] [--deflate-level 1-9]
 *           [--ping MS] [--ping-timeout MS] [--tls-cert FILE --tls-key FILE]
 *           [--events]
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
 *
 * --workers is the most sessions served at once (default 65536; 1-1048576,
 * or 1-65536 with --fibers off, the range echo-server and chat take too),
 * --threads the threads that run the fibers (1-1024; default: one per
 * CPU); --max-message (1-1073741824; default 16 MiB) limits a received
 * message and frame: a bigger one gets close 1009 (message too big);
 * --max-buffered (1-1099511627776; default 64 MiB, the router's default)
 * is what all sessions together may hold of messages still arriving
 * beyond 128 KiB each: a message that finds it spent gets close 1013 (try
 * again later). A ping goes every --ping ms (0-3600000; default 30000, 0 =
 * none), and a session whose peer answers none within --ping-timeout ms
 * (1-3600000; default 15000) gets close 1011, also in the middle of a
 * message: a peer that stops sending cannot hold its session, or its part
 * of --max-buffered, for longer than that.
 * --events serves the same echo with the event model (socknet/event.h):
 * the server's connections are event sockets, each takes the upgrade in
 * its connect callback (sn_ev_accept_ws) and echoes in its message
 * callback, so an idle session holds no fiber, no thread and no buffer;
 * --workers then bounds the callbacks running at once, not the sessions.
 * A bad flag or value is named, with what it takes, before the usage line
 * ("ws-echo: unknown flag --frobnicate"); the exit status is then 2.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
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

/* --events: what the sessions share. */
static sn_ws_config g_wc;

static void echo_event(sn_ev *e, const sn_ev_info *ev, void *user)
{
    (void)user;
    if (sn_ws_send(sn_ev_ws(e), ev->ws_type, ev->data, ev->len, sn_deadline_in(30000)) < 0)
        sn_ev_close(e);
}

/* --events: the upgrade, at /echo only (others get 404), then the echo. */
static void on_connect(sn_ev *e, const sn_ev_info *ev, void *user)
{
    (void)ev;
    if (sn_ev_accept_ws(e, "/echo", &g_wc, sn_deadline_in(10000)) < 0)
        sn_ev_close(e);
    else
        sn_ev_on(e, SN_EV_MESSAGE, echo_event, user);
}

static void on_client(sn_ev *e, void *user)
{
    sn_ev_on(e, SN_EV_CONNECT, on_connect, user);
}

#define WORKERS_MAX 1048576      /* sessions served at once, in fiber mode */
#define THREAD_WORKERS_MAX 65536 /* with --fibers off: a thread each */

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: ws-echo [--host H] [--port N] [--workers N] [--fibers on|off] "
                    "[--threads N]\n"
                    "               [--max-message BYTES] [--max-buffered BYTES] "
                    "[--deflate-level 1-9]\n"
                    "               [--ping MS] [--ping-timeout MS] "
                    "[--tls-cert FILE --tls-key FILE] [--events]\n");
    exit(2);
}

/* Says which flag was wrong and what it takes, then the usage line. */
_Noreturn static void bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ws-echo: ", stderr);
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
    sn_ws_config wc = {.deflate = SN_ON, .ping_period_ms = 30000, .timeout_ms = 15000};
    sn_web_config webc = {0};
    sn_tls_config tc = {.role = SN_TLS_SERVER};
    sn_server_config cfg = {
        .host = "127.0.0.1",
        .handler = sn_web_serve,
        .workers = 65536,
        .fibers = SN_ON,
        .conn = {.autoflush = SN_OFF},
    };
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--host") == 0)
            cfg.host = str_arg(argv, &i);
        else if (strcmp(f, "--port") == 0)
            cfg.port = (int)num_arg(argv, &i, 0, 65535);
        else if (strcmp(f, "--workers") == 0)
            cfg.workers = (int)num_arg(argv, &i, 1, WORKERS_MAX);
        else if (strcmp(f, "--fibers") == 0)
            cfg.fibers = on_off(argv, &i);
        else if (strcmp(f, "--threads") == 0)
            cfg.fiber_threads = (int)num_arg(argv, &i, 1, 1024);
        else if (strcmp(f, "--max-message") == 0)
            wc.max_message = wc.max_frame = (size_t)num_arg(argv, &i, 1, 1L << 30);
        else if (strcmp(f, "--max-buffered") == 0)
            webc.max_buffered = (size_t)num_arg(argv, &i, 1, 1L << 40);
        else if (strcmp(f, "--ping") == 0)
            wc.ping_period_ms = (int)num_arg(argv, &i, 0, 3600000);
        else if (strcmp(f, "--ping-timeout") == 0)
            wc.timeout_ms = (int)num_arg(argv, &i, 1, 3600000);
        else if (strcmp(f, "--tls-cert") == 0)
            tc.cert.chain.file = str_arg(argv, &i);
        else if (strcmp(f, "--tls-key") == 0)
            tc.cert.key.file = str_arg(argv, &i);
        else if (strcmp(f, "--events") == 0)
            cfg.handler = NULL, cfg.on_client = on_client;
        else if (strcmp(f, "--deflate-level") == 0)
            wc.deflate_cfg.level = (int)num_arg(argv, &i, 1, 9);
        else
            bad("unknown flag %s", f);
    }
    if (cfg.fibers == SN_OFF && cfg.workers > THREAD_WORKERS_MAX)
        bad("--workers %d: out of range with --fibers off (1-%d)", cfg.workers, THREAD_WORKERS_MAX);
    if ((tc.cert.chain.file == NULL) != (tc.cert.key.file == NULL))
        bad("--tls-cert and --tls-key go together");

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    sn_web *web = NULL;
    sn_server *srv = NULL;
    sn_tls *tls = NULL;
    sn_ws_budget *budget = NULL;
    char why[SN_TLS_REASON_MAX]; /* why a TLS configuration is refused */
    tc.reason = why;
    tc.reason_cap = sizeof why;
    int rc = tc.cert.chain.file != NULL ? sn_tls_new(&tls, &tc) : 0;
    if (rc < 0) {
        fprintf(stderr, "ws-echo: TLS configuration: %s: %s\n", sn_strerror(rc), why);
        return 1;
    }
    cfg.tls = tls;               /* the server keeps its own reference */
    if (cfg.on_client != NULL) { /* --events: the router's budget, for the sessions alone */
        if (rc == 0)
            rc = sn_ws_budget_new(&budget, webc.max_buffered ? webc.max_buffered : 64u << 20);
        g_wc = wc;
        g_wc.budget = budget;
    } else {
        if (rc == 0)
            rc = sn_web_new(&web, &webc);
        if (rc == 0)
            rc = sn_web_route_ws(web, "/echo", SN_ROUTE_EXACT, &wc, echo, NULL);
        cfg.user = web;
    }
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
    sn_ws_budget_free(budget);
    sn_tls_free(tls);
    return 0;
}
