/* SPDX-License-Identifier: MIT */
/*
 * udp-echo-ref: the reference UDP echo server for bench/run.sh.
 *
 *   udp-echo-ref [--host H] [--port P] [--batch N]
 *
 * A plain, single-threaded loop: a blocking recvfrom, then sendto of the same bytes back to
 * the sender; nothing else. With --batch N (2..64) it takes up to N queued datagrams per
 * recvmmsg (MSG_WAITFORONE: it waits for the first only) and sends their echoes with one
 * sendmmsg. Buffers of 65,536 bytes, so any datagram comes back whole. SO_RCVBUF is asked
 * for 4 MiB (the kernel caps it at net.core.rmem_max), as udp-echo does.
 *
 * Prints "listening on H:PORT" on stdout once ready (port 0 = any free port); SIGINT or
 * SIGTERM → exit status 0 (the receive wakes up at least every 200 ms to notice).
 * Self-contained: libc only.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BUF_SIZE 65536
#define BATCH_MAX 64

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked receive returns EINTR */
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGINT, &sa, NULL) == 0 && sigaction(SIGTERM, &sa, NULL) == 0 ? 0 : -1;
}

static int make_socket(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct timeval tv = {.tv_usec = 200000};
    int fd = -1, rcvbuf = 4 << 20, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "udp-echo-ref: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        fprintf(stderr, "udp-echo-ref: cannot bind %s:%s: %s\n", host, port, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

static int print_ready(int fd, const char *host)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char hbuf[NI_MAXHOST], sbuf[NI_MAXSERV];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        getnameinfo((struct sockaddr *)&ss, len, hbuf, sizeof hbuf, sbuf, sizeof sbuf,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return -1;
    if (strchr(host, ':') != NULL)
        printf("listening on [%s]:%s\n", host, sbuf);
    else
        printf("listening on %s:%s\n", host, sbuf);
    return fflush(stdout) == 0 ? 0 : -1;
}

/* Is this receive error the end of the loop (-1) or worth another try (0)? */
static int recv_failed(void)
{
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED)
        return 0; /* a signal, the 200 ms tick, an ICMP error from an earlier echo */
    perror("udp-echo-ref: receive");
    return -1;
}

static int serve_single(int fd)
{
    static char buf[BUF_SIZE];
    while (!g_stop) {
        struct sockaddr_storage from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n < 0) {
            if (recv_failed() < 0)
                return -1;
            continue;
        }
        sendto(fd, buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&from, len);
    }
    return 0;
}

static int serve_batch(int fd, int batch)
{
    static char bufs[BATCH_MAX][BUF_SIZE];
    static struct sockaddr_storage from[BATCH_MAX];
    struct iovec iov[BATCH_MAX];
    struct mmsghdr mm[BATCH_MAX];

    while (!g_stop) {
        for (int i = 0; i < batch; i++) {
            iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = BUF_SIZE};
            mm[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &from[i],
                                                 .msg_namelen = sizeof from[i],
                                                 .msg_iov = &iov[i],
                                                 .msg_iovlen = 1}};
        }
        int n = recvmmsg(fd, mm, (unsigned)batch, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (recv_failed() < 0)
                return -1;
            continue;
        }
        for (int i = 0; i < n; i++)
            iov[i].iov_len = mm[i].msg_len; /* echo exactly what came */
        for (int sent = 0; sent < n;) {
            int k = sendmmsg(fd, mm + sent, (unsigned)(n - sent), MSG_DONTWAIT);
            if (k <= 0)
                break; /* a full send buffer: the client sees a loss */
            sent += k;
        }
    }
    return 0;
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: udp-echo-ref [--host H] [--port P] [--batch N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "0";
    int batch = 1, fd, rc;

    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = argv[i + 1];
        else if (strcmp(argv[i], "--batch") == 0 && (batch = atoi(argv[i + 1])) >= 1 &&
                 batch <= BATCH_MAX)
            continue;
        else
            usage();
    }
    if (install_signals() < 0)
        return 1;
    fd = make_socket(host, port);
    if (fd < 0 || print_ready(fd, host) < 0)
        return 1;
    rc = batch > 1 ? serve_batch(fd, batch) : serve_single(fd);
    close(fd);
    return rc == 0 ? 0 : 1;
}
