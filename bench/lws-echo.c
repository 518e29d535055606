/* SPDX-License-Identifier: MIT */
/*
 * lws-echo: a WebSocket echo server on libwebsockets (Debian's libwebsockets-dev), the C
 * peer bench/run.sh holds examples/ws-echo to in the WebSocket echo rows.
 *
 *   lws-echo [--host H] [--port P]
 *
 * One service thread (lws_service in a loop), as libwebsockets' own minimal servers run: each
 * message is gathered whole (however it was fragmented), then the session stops reading
 * (lws_rx_flow_control) and asks for a writeable callback, writes the message back as text or
 * binary, as it came, and reads again. UTF-8 of text messages is validated
 * (LWS_SERVER_OPTION_VALIDATE_UTF8), as ws-echo and the npm ws reference do. Any path, no
 * subprotocol needed. libwebsockets' logging is cut to errors and warnings.
 *
 * Prints "listening on H:PORT" on stdout once ready (port 0 = any free port); SIGINT or
 * SIGTERM → exit status 0.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE (16 * 1024 * 1024)

static volatile sig_atomic_t g_stop;
static struct lws_context *g_ctx;

struct session {
    unsigned char *buf; /* LWS_PRE bytes, then the message */
    size_t len, cap;
    int binary, full; /* full: a whole message waits to be written */
};

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
    lws_cancel_service(g_ctx); /* a write() to its wake-up pipe: ends the poll wait */
}

static int gather(struct lws *wsi, struct session *s, const void *in, size_t len)
{
    if (lws_is_first_fragment(wsi)) {
        s->len = 0;
        s->binary = lws_frame_is_binary(wsi);
    }
    if (s->len + len > MAX_MESSAGE)
        return -1;
    if (LWS_PRE + s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < LWS_PRE + s->len + len)
            cap *= 2;
        unsigned char *b = realloc(s->buf, cap);
        if (b == NULL)
            return -1;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + LWS_PRE + s->len, in, len);
    s->len += len;
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        s->full = 1;
        lws_rx_flow_control(wsi, 0);
        lws_callback_on_writable(wsi);
    }
    return 0;
}

static int on_echo(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct session *s = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(s, 0, sizeof *s);
        break;
    case LWS_CALLBACK_RECEIVE:
        return gather(wsi, s, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!s->full)
            break;
        if (lws_write(wsi, s->buf + LWS_PRE, s->len,
                      s->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)s->len)
            return -1;
        s->full = 0;
        lws_rx_flow_control(wsi, 1);
        break;
    case LWS_CALLBACK_CLOSED:
        free(s->buf);
        s->buf = NULL;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {.name = "echo",
     .callback = on_echo,
     .per_session_data_size = sizeof(struct session),
     .rx_buffer_size = 65536},
    {0},
};

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: lws-echo [--host H] [--port P]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else
            usage();
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = host;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.count_threads = 1;
    info.fd_limit_per_thread = 0; /* as the process's descriptor limit allows */
    struct lws_context *ctx = lws_create_context(&info);
    if (ctx == NULL) {
        fprintf(stderr, "lws-echo: lws_create_context failed\n");
        return 1;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
    if (vh == NULL || lws_get_vhost_listen_port(vh) <= 0) {
        fprintf(stderr, "lws-echo: no listening port\n");
        lws_context_destroy(ctx);
        return 1;
    }
    printf("listening on %s:%d\n", host, lws_get_vhost_listen_port(vh));
    fflush(stdout);
    g_ctx = ctx;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!g_stop && lws_service(ctx, 0) >= 0)
        ;
    lws_context_destroy(ctx);
    return 0;
}
