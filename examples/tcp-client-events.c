/* SPDX-License-Identifier: MIT */
/*
 * tcp-client-events: OpenHarmony's TCP client example, in C with the event
 * model (socknet/event.h). It makes a socket, subscribes to its events,
 * binds, connects with a timeout, sends each line of standard input,
 * prints what arrives as it arrives, and closes from the main thread while
 * the loop's reader waits.
 *
 *   tcp-client-events HOST PORT [--bind IP[:PORT]] [--timeout MS]
 *                     [--tls [--tls-ca FILE] [--sni NAME]] [--wait MS]
 *
 * --bind binds the local address (and port) before connecting; --timeout
 * bounds the connect (and the TLS handshake; default 10000 ms); --tls
 * speaks TLS, verifying the server against --tls-ca (default: the system's
 * CAs) and --sni (default: HOST). After the last line, it waits until as
 * many bytes came back as it sent (an echo server's answer), at most
 * --wait ms (default 2000), then closes.
 *
 * What arrives goes to standard output, unchanged; the events go to
 * standard error: "connected to H:PORT", "closed: REASON". Exit status 0
 * when it closed the socket itself or the server did; 1 when the connect,
 * the handshake or a send failed (with why: "tcp-client-events: connect
 * 127.0.0.1:1: Connection refused"); 2 for a bad argument, named with what
 * it takes.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <socknet.h>

/* What the callbacks tell the main thread, under mu. */
struct client {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool connected, closed;
    int close_error;
    long long received;
};

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: tcp-client-events HOST PORT [--bind IP[:PORT]] [--timeout MS]\n"
                    "                         [--tls [--tls-ca FILE] [--sni NAME]] [--wait MS]\n");
    exit(2);
}

_Noreturn static void bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tcp-client-events: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    usage();
}

static const char *str_arg(char **argv, int *i)
{
    if (argv[*i + 1] == NULL)
        bad("%s needs a value", argv[*i]);
    return argv[++*i];
}

static long num_arg(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0')
        bad("%s %s: not a number", flag, v);
    if (n < lo || n > hi)
        bad("%s %s: out of range (%ld-%ld)", flag, v, lo, hi);
    return n;
}

/* tcp.on('connect') */
static void on_connect(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct client *cl = user;
    char peer[SN_ADDR_STRLEN];
    (void)e;
    sn_addr_format(ev->addr, peer, sizeof peer);
    fprintf(stderr, "connected to %s\n", peer);
    pthread_mutex_lock(&cl->mu);
    cl->connected = true;
    pthread_cond_broadcast(&cl->cond);
    pthread_mutex_unlock(&cl->mu);
}

/* tcp.on('message') */
static void on_message(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct client *cl = user;
    (void)e;
    fwrite(ev->data, 1, ev->len, stdout);
    fflush(stdout);
    pthread_mutex_lock(&cl->mu);
    cl->received += (long long)ev->len;
    pthread_cond_broadcast(&cl->cond);
    pthread_mutex_unlock(&cl->mu);
}

/* tcp.on('error'): a close follows when it ended the socket */
static void on_error(sn_ev *e, const sn_ev_info *ev, void *user)
{
    (void)e;
    (void)user;
    fprintf(stderr, "error: %s\n", ev->reason);
}

/* tcp.on('close') */
static void on_close(sn_ev *e, const sn_ev_info *ev, void *user)
{
    struct client *cl = user;
    (void)e;
    fprintf(stderr, "closed: %s\n",
            ev->error == SN_ECLOSED ? "by this client"
            : ev->error == SN_EOF   ? "by the server"
                                    : ev->reason);
    pthread_mutex_lock(&cl->mu);
    cl->closed = true;
    cl->close_error = ev->error;
    pthread_cond_broadcast(&cl->cond);
    pthread_mutex_unlock(&cl->mu);
}

/* Waits under cl->mu until done() or the deadline (ms from now; -1: none). */
static void wait_for(struct client *cl, bool (*done)(const struct client *, long long),
                     long long arg, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&cl->mu);
    while (!done(cl, arg) && !cl->closed)
        if (ms < 0)
            pthread_cond_wait(&cl->cond, &cl->mu);
        else if (pthread_cond_timedwait(&cl->cond, &cl->mu, &until) != 0)
            break;
    pthread_mutex_unlock(&cl->mu);
}

static bool is_connected(const struct client *cl, long long arg)
{
    (void)arg;
    return cl->connected;
}

static bool is_closed(const struct client *cl, long long arg)
{
    (void)arg;
    return cl->closed;
}

/* A look at the state from the main thread. */
static struct client state(struct client *cl)
{
    pthread_mutex_lock(&cl->mu);
    struct client now = {.connected = cl->connected,
                         .closed = cl->closed,
                         .close_error = cl->close_error,
                         .received = cl->received};
    pthread_mutex_unlock(&cl->mu);
    return now;
}

static bool got_back(const struct client *cl, long long sent)
{
    return cl->received >= sent;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argv[1][0] == '-')
        bad("needs HOST PORT first, then the flags");
    const char *host = argv[1];
    int port = (int)num_arg("PORT", argv[2], 1, 65535);
    sn_sock_options so = {0};
    char bind_ip[64] = "";
    long timeout = 10000, wait_ms = 2000;
    bool tls_on = false;
    sn_tls_source ca = {0};
    const char *sni = NULL;
    for (int i = 3; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--bind") == 0) {
            const char *v = str_arg(argv, &i);
            const char *colon = strrchr(v, ':');
            bool v6 = strchr(v, ':') != colon; /* more than one: an IPv6 address alone */
            size_t n = colon != NULL && !v6 ? (size_t)(colon - v) : strlen(v);
            if (n >= sizeof bind_ip)
                bad("--bind %s: address too long", v);
            memcpy(bind_ip, v, n);
            bind_ip[n] = '\0';
            if (colon != NULL && !v6)
                so.bind_port = (int)num_arg("--bind port", colon + 1, 0, 65535);
            so.bind_host = n > 0 ? bind_ip : NULL;
        } else if (strcmp(f, "--timeout") == 0) {
            timeout = num_arg(f, str_arg(argv, &i), 1, 3600000);
        } else if (strcmp(f, "--wait") == 0) {
            wait_ms = num_arg(f, str_arg(argv, &i), 0, 3600000);
        } else if (strcmp(f, "--tls") == 0) {
            tls_on = true;
        } else if (strcmp(f, "--tls-ca") == 0) {
            ca.file = str_arg(argv, &i);
        } else if (strcmp(f, "--sni") == 0) {
            sni = str_arg(argv, &i);
        } else {
            bad("unknown flag %s", f);
        }
    }
    if (!tls_on && (ca.file != NULL || sni != NULL))
        bad("%s needs --tls", ca.file != NULL ? "--tls-ca" : "--sni");

    sn_tls *tls = NULL;
    if (tls_on) {
        sn_tls_config tc = {
            .role = SN_TLS_CLIENT, .ca = ca.file ? &ca : NULL, .nca = ca.file ? 1 : 0};
        char why[SN_TLS_REASON_MAX]; /* why a TLS configuration is refused */
        tc.reason = why;
        tc.reason_cap = sizeof why;
        int rc = sn_tls_new(&tls, &tc);
        if (rc < 0) {
            fprintf(stderr, "tcp-client-events: TLS configuration: %s: %s\n", sn_strerror(rc), why);
            return 1;
        }
    }

    struct client cl = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    sn_loop *loop;
    sn_ev *tcp;
    int rc = sn_loop_new(&loop, &(sn_loop_config){.threads = 1});
    if (rc == 0)
        rc = sn_ev_client(&tcp, loop); /* constructTCPSocketInstance() */
    if (rc < 0) {
        fprintf(stderr, "tcp-client-events: %s\n", sn_strerror(rc));
        return 1;
    }
    sn_ev_on(tcp, SN_EV_CONNECT, on_connect, &cl);
    sn_ev_on(tcp, SN_EV_MESSAGE, on_message, &cl);
    sn_ev_on(tcp, SN_EV_ERROR, on_error, &cl);
    sn_ev_on(tcp, SN_EV_CLOSE, on_close, &cl);
    /* bind() and connect({address, timeout}) in one step */
    sn_ev_connect_config cc = {.host = host,
                               .port = port,
                               .sock = &so,
                               .timeout_ms = (int)timeout,
                               .tls = tls,
                               .server_name = sni};
    if ((rc = sn_ev_connect(tcp, &cc)) < 0) {
        fprintf(stderr, "tcp-client-events: connect: %s\n", sn_strerror(rc));
        return 1;
    }
    wait_for(&cl, is_connected, 0, -1);

    int status = 0;
    long long sent = 0;
    if (state(&cl).connected) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while (!state(&cl).closed && (len = getline(&line, &cap, stdin)) > 0) {
            if ((rc = sn_ev_send(tcp, line, (size_t)len, sn_deadline_in(10000))) < 0) { /* send() */
                fprintf(stderr, "tcp-client-events: send: %s\n", sn_strerror(rc));
                status = 1;
                break;
            }
            sent += len;
        }
        free(line);
        wait_for(&cl, got_back, sent, wait_ms);
    } else {
        fprintf(stderr, "tcp-client-events: connect %s:%d: %s\n", host, port,
                sn_strerror(state(&cl).close_error));
        status = 1;
    }
    sn_ev_close(tcp);                /* close(), here, while the loop's reader waits */
    wait_for(&cl, is_closed, 0, -1); /* until the close callback ran */
    sn_ev_free(tcp);
    sn_loop_free(loop);
    sn_tls_free(tls);
    return status;
}
