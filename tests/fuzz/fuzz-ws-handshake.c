/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ws-handshake: the opening handshakes on a real socket, each side
 * against arbitrary bytes from its peer. The first byte chooses the side
 * and the configuration (deflate parameters, subprotocols); the rest is
 * what the peer sends, then the end of the stream.
 *   server: sn_http_read_request + sn_ws_accept on the bytes as a request
 *           (subprotocol and permessage-deflate offers negotiated);
 *   client: sn_ws_handshake, the bytes being the server's answer, where
 *           "@A" stands for the Sec-WebSocket-Accept of the key the client
 *           sent (so that answers get past that check to the extensions).
 * A session that comes out of it receives whatever follows, until the end.
 * Properties: only the documented errors; what was agreed is what was
 * configured (a subprotocol from the list, window bits 8-15); no leak.
 */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include "fuzz.h"
#include "sn_ws_frame.h"
#include "sn_ws_int.h"

struct peer {
    int fd;
    bool answer; /* we are the server answering a client: replace @A */
    const uint8_t *in;
    size_t n;
};

/* The client's request, up to its empty line; its key's accept value. */
static void read_key(int fd, char accept[SN_WS_ACCEPT_LEN + 1])
{
    char req[4096];
    size_t got = 0;
    accept[0] = '\0';
    while (got < sizeof req - 1) {
        ssize_t r = read(fd, req + got, sizeof req - 1 - got);
        if (r <= 0)
            return;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    if (k != NULL)
        sn__ws_accept_key(k + 19, strcspn(k + 19, "\r"), accept);
}

static void *peer_main(void *arg)
{
    struct peer *pe = arg;
    char accept[SN_WS_ACCEPT_LEN + 1] = "";
    if (pe->answer)
        read_key(pe->fd, accept);
    size_t i = 0;
    while (i < pe->n) {
        const uint8_t *at = pe->answer ? memmem(pe->in + i, pe->n - i, "@A", 2) : NULL;
        size_t k = at != NULL ? (size_t)(at - (pe->in + i)) : pe->n - i;
        if (send(pe->fd, pe->in + i, k, MSG_NOSIGNAL) != (ssize_t)k)
            break;
        i += k;
        if (at != NULL) {
            if (send(pe->fd, accept, strlen(accept), MSG_NOSIGNAL) != (ssize_t)strlen(accept))
                break;
            i += 2;
        }
    }
    shutdown(pe->fd, SHUT_WR);
    char buf[16384];
    while (read(pe->fd, buf, sizeof buf) > 0)
        ;
    return NULL;
}

static bool handshake_error(int rc)
{
    return rc == SN_EWS_HANDSHAKE || rc == SN_EHTTP_BAD || rc == SN_EHTTP_URI_TOO_LONG ||
           rc == SN_EHTTP_HEAD_TOO_BIG || rc == SN_EHTTP_VERSION || rc == SN_EOF ||
           rc == SN_ECONNRESET || rc == SN_EPIPE;
}

static void session(sn_ws *ws, const char *const *protos, size_t nprotos)
{
    const char *p = sn_ws_subprotocol(ws);
    bool listed = p == NULL;
    for (size_t i = 0; i < nprotos && !listed; i++)
        listed = strcmp(p, protos[i]) == 0;
    FUZZ_ASSERT(listed);
    FUZZ_ASSERT(!ws->pmd.on || (ws->pmd.rx_bits >= 8 && ws->pmd.rx_bits <= 15 &&
                                ws->pmd.tx_bits >= 8 && ws->pmd.tx_bits <= 15));
    sn_ws_msg m;
    sn_deadline dl = sn_deadline_in(10000);
    int rc;
    while ((rc = sn_ws_recv(ws, &m, dl)) == 0)
        ;
    FUZZ_ASSERT(rc != SN_ETIMEDOUT && rc != SN_EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const protos[] = {"chat", "superchat", "v2.json"};
    if (size < 1 || size > 16384)
        return 0;
    uint8_t o = data[0];
    bool client = o & 1;
    sn_ws_config cfg = {
        .deflate = o & 2 ? SN_ON : SN_OFF,
        .deflate_cfg = {.client_max_window_bits = o & 4 ? 9 : 0,
                        .server_max_window_bits = o & 8 ? 10 : 0,
                        .client_no_context_takeover = o & 16 ? SN_ON : SN_OFF,
                        .server_no_context_takeover = o & 32 ? SN_ON : SN_OFF},
        .subprotocols = o & 64 ? protos : NULL,
        .nsubprotocols = o & 64 ? 3 : 0,
        .max_message = 65536,
        .close_timeout_ms = 1000,
    };
    int sv[2];
    FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    struct peer pe = {.fd = sv[1], .answer = client, .in = data + 1, .n = size - 1};
    pthread_t t;
    FUZZ_ASSERT(pthread_create(&t, NULL, peer_main, &pe) == 0);

    sn_sock *s;
    sn_conn *c;
    sn_ws *ws = NULL;
    FUZZ_ASSERT(sn_sock_from_fd(&s, sv[0]) == 0);
    FUZZ_ASSERT(sn_conn_new(&c, s, NULL) == 0);
    sn_deadline dl = sn_deadline_in(10000);
    int rc, status = 0;
    if (client) {
        rc = sn_ws_handshake(&ws, c, "localhost", "/chat", NULL, &cfg, &status, dl);
        FUZZ_ASSERT(rc < 0 || status == 101);
    } else {
        sn_http_header headers[64];
        sn_http_request req;
        rc = sn_http_read_request(c, NULL, headers, 64, &req, dl);
        if (rc >= 0)
            rc = sn_ws_accept(&ws, c, &req, &cfg, dl);
    }
    if (rc == 0)
        session(ws, protos, cfg.nsubprotocols);
    else if (!handshake_error(rc)) {
        fprintf(stderr, "fuzz-ws-handshake: the handshake ended with %s\n", sn_err_name(rc));
        abort();
    }
    sn_ws_free(ws);
    sn_conn_free(c);
    pthread_join(t, NULL);
    close(sv[1]);
    return 0;
}
