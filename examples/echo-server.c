/* SPDX-License-Identifier: MIT */
/*
 * echo-server: a byte-stream echo server, over TCP or a local socket.
 *
 *   echo-server [--host H] [--port N | --unix PATH] [--workers N]
 *               [--fibers on|off] [--threads N] [--stack-kib N] [--events]
 *               [--queue N] [--queue-timeout MS|never]
 *               [--overload close|reset|message[:TEXT]]
 *               [--tls-cert FILE --tls-key FILE [--tls-key-password PW]
 *                [--tls-ca FILE --tls-verify-peer] [--tls-ciphers LIST]
 *                [--tls-sigalgs LIST] [--tls-groups LIST] [--alpn LIST]]
 *
 * With --tls-cert and --tls-key it serves TLS (1.2 and 1.3); --tls-ca and
 * --tls-verify-peer require client certificates signed by that CA (mutual
 * TLS); --tls-ciphers, --tls-sigalgs, --tls-groups and --alpn set the lists
 * socknet/tls.h describes (OpenSSL's names are taken). The handshake runs on
 * the connection's fiber or thread. A TLS configuration error prints its
 * reason and exits 1; each failed handshake is logged to standard error
 * with the client's address and the reason, and the server goes on.
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
 * --events serves the same echo with the event model (socknet/event.h): a
 * message callback per connection instead of a handler, so an idle
 * connection holds no fiber, no thread and no buffer, only its descriptor
 * (about 0.9 KiB of memory); --workers then bounds the callbacks running
 * at once, not the connections.
 *
 * Admission: beyond --workers, up to --queue connections (0-16777216;
 * default 64; 0: none) wait for a worker, each for at most --queue-timeout
 * ms (1-86400000, or never; default 10000). One that finds the queue full,
 * or waits that long, is answered per --overload: close (the default: the
 * peer reads end of stream), reset, message ("server busy" and CRLF, then
 * close) or message:TEXT (TEXT and CRLF; TEXT up to 1000 bytes).
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

#define ECHO_SMALL 16384 /* on the stack: what most messages need */
#define ECHO_BIG 262144  /* from the heap, once a read fills the small one */

static void echo(sn_conn *c, void *user)
{
    char small[ECHO_SMALL], *buf = small, *big = NULL;
    size_t cap = sizeof small;
    ssize_t n;
    (void)user;
    /* The connections autoflush (see main): each write goes out at once,
     * straight from buf, and no write buffer is ever allocated. A
     * connection that fills the small buffer is moving bulk data: it gets
     * the big one, so a stream costs a system call per 256 KiB each way
     * rather than per 16 KiB (and an idle connection's stack stays small). */
    while ((n = sn_read(c, buf, cap, SN_DEADLINE_DEFAULT)) > 0) {
        if (sn_write(c, buf, (size_t)n, SN_DEADLINE_DEFAULT) < 0)
            break;
        if ((size_t)n == cap && big == NULL && (big = malloc(ECHO_BIG)) != NULL) {
            buf = big;
            cap = ECHO_BIG;
        }
    }
    free(big);
}

/* --events: the echo as a callback, run for each piece of bytes as it
 * comes. A write that fails (the peer left, or stopped reading for the
 * default deadline) closes the connection. */
static void echo_event(sn_ev *e, const sn_ev_info *ev, void *user)
{
    (void)user;
    if (sn_write(sn_ev_conn(e), ev->data, ev->len, SN_DEADLINE_DEFAULT) < 0)
        sn_ev_close(e);
}

/* --events: each new connection subscribes to its messages. */
static void on_client(sn_ev *e, void *user)
{
    sn_ev_on(e, SN_EV_MESSAGE, echo_event, user);
}

#define WORKERS_MAX 1048576      /* connections served at once, in fiber mode */
#define THREAD_WORKERS_MAX 65536 /* with --fibers off: a thread each */
#define QUEUE_MAX 16777216       /* the pool's limit */
#define QUEUE_WAIT_MAX 86400000  /* ms: a day */
#define OVERLOAD_TEXT_MAX 1000

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: echo-server [--host H] [--port N | --unix PATH] [--workers N] "
                    "[--fibers on|off] [--threads N] [--stack-kib N] [--events]\n"
                    "                   [--queue N] [--queue-timeout MS|never] "
                    "[--overload close|reset|message[:TEXT]]\n"
                    "                   [--tls-cert FILE --tls-key FILE [--tls-key-password PW] "
                    "[--tls-ca FILE --tls-verify-peer]\n"
                    "                    [--tls-ciphers LIST] [--tls-sigalgs LIST] "
                    "[--tls-groups LIST] [--alpn LIST]]\n");
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

/* s, the value of flag, as a whole number from lo to hi; `also` names what
 * else the flag takes, for the complaint ("" if nothing). */
static long num_value(const char *flag, const char *s, long lo, long hi, const char *also)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        bad("%s %s: not a number (%ld-%ld%s)", flag, s, lo, hi, also);
    if (errno == ERANGE || v < lo || v > hi)
        bad("%s %s: out of range (%ld-%ld%s)", flag, s, lo, hi, also);
    return v;
}

/* The value of the flag argv[*i], a whole number from lo to hi. */
static long num_arg(char **argv, int *i, long lo, long hi)
{
    const char *flag = argv[*i], *s = str_arg(argv, i);
    return num_value(flag, s, lo, hi, "");
}

/* --queue: 0 is none (SN_OFF; the library's 0 is its default, 64). */
static int queue_arg(char **argv, int *i)
{
    int n = (int)num_arg(argv, i, 0, QUEUE_MAX);
    return n > 0 ? n : SN_OFF;
}

/* --queue-timeout: ms, or never. */
static int wait_arg(char **argv, int *i)
{
    const char *flag = argv[*i], *s = str_arg(argv, i);
    if (strcmp(s, "never") == 0)
        return SN_TIMEOUT_NEVER;
    return (int)num_value(flag, s, 1, QUEUE_WAIT_MAX, ", or never");
}

/* --overload: the policy, and with message:TEXT the text (and CRLF) in msg. */
static int overload_arg(char **argv, int *i, char *msg, size_t cap)
{
    const char *flag = argv[*i], *s = str_arg(argv, i);
    if (strcmp(s, "close") == 0)
        return SN_OVERLOAD_CLOSE;
    if (strcmp(s, "reset") == 0)
        return SN_OVERLOAD_RESET;
    if (strcmp(s, "message") == 0)
        return SN_OVERLOAD_MESSAGE;
    if (strncmp(s, "message:", 8) == 0 && s[8] != '\0') {
        if (strlen(s + 8) > OVERLOAD_TEXT_MAX)
            bad("%s message:TEXT: too long (at most %d bytes)", flag, OVERLOAD_TEXT_MAX);
        snprintf(msg, cap, "%s\r\n", s + 8);
        return SN_OVERLOAD_MESSAGE;
    }
    bad("%s %s: expected close, reset, message or message:TEXT", flag, s);
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

/* What the server absorbed: a failed TLS handshake (with the client's
 * address and the reason), a failed accept. Called from several threads. */
static void log_error(sn_server *s, int err, const char *what, void *user)
{
    (void)s;
    (void)user;
    fprintf(stderr, "echo-server: %s (%s)\n", what, sn_strerror(err));
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
        .on_error = log_error,
    };
    sn_tls_config tc = {.role = SN_TLS_SERVER};
    sn_tls_source ca = {0};
    const char *unix_path = NULL;
    char unix_host[SN_ADDR_STRLEN];
    char busy_text[OVERLOAD_TEXT_MAX + 3] = "";
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
        else if (strcmp(f, "--tls-key-password") == 0)
            tc.cert.password = str_arg(argv, &i);
        else if (strcmp(f, "--tls-ciphers") == 0)
            tc.ciphers = str_arg(argv, &i);
        else if (strcmp(f, "--tls-sigalgs") == 0)
            tc.sigalgs = str_arg(argv, &i);
        else if (strcmp(f, "--tls-groups") == 0)
            tc.groups = str_arg(argv, &i);
        else if (strcmp(f, "--alpn") == 0)
            tc.alpn = str_arg(argv, &i);
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
        else if (strcmp(f, "--queue") == 0)
            cfg.queue = queue_arg(argv, &i);
        else if (strcmp(f, "--queue-timeout") == 0)
            cfg.queue_timeout_ms = wait_arg(argv, &i);
        else if (strcmp(f, "--events") == 0) {
            cfg.handler = NULL;
            cfg.on_client = on_client;
        } else if (strcmp(f, "--overload") == 0)
            cfg.overload = overload_arg(argv, &i, busy_text, sizeof busy_text);
        else
            bad("unknown flag %s", f);
    }
    cfg.overload_message = busy_text[0] != '\0' ? busy_text : NULL;
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
    if (tc.cert.chain.file == NULL && (tc.cert.password != NULL || tc.ciphers != NULL ||
                                       tc.sigalgs != NULL || tc.groups != NULL || tc.alpn != NULL))
        bad("--tls-key-password, --tls-ciphers, --tls-sigalgs, --tls-groups and --alpn need "
            "--tls-cert and --tls-key");
    if (tc.verify != 0 && ca.file == NULL)
        bad("--tls-verify-peer needs --tls-ca");
    sn_tls *tls = NULL;
    if (tc.cert.chain.file != NULL) {
        if (ca.file != NULL) {
            tc.ca = &ca;
            tc.nca = 1;
        }
        char why[SN_TLS_REASON_MAX]; /* why a TLS configuration is refused */
        tc.reason = why;
        tc.reason_cap = sizeof why;
        int rc = sn_tls_new(&tls, &tc);
        if (rc < 0) {
            fprintf(stderr, "echo-server: TLS configuration: %s: %s\n", sn_strerror(rc), why);
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
