/* SPDX-License-Identifier: MIT */
/*
 * test-local.c: local (Unix-domain) stream sockets: "unix:" addresses,
 * listen / connect / accept on paths and abstract names, peer credentials,
 * stale socket files, the file's mode and removal, TCP options refused,
 * deadlines, and the server end to end in thread and fiber mode.
 *
 * Every path lives in a fresh directory under /tmp, removed at the end.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "sn_test.h"

static char dir[64];

/* A path in the test directory. */
static const char *path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

/* "unix:" + a path in the test directory. */
static const char *unix_host(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "unix:%s/%s", dir, name);
    return buf;
}

/* Both: "unix:DIR/NAME" in host, "DIR/NAME" in path (128 bytes each). */
static void names_of(const char *name, char *host, char *path)
{
    unix_host(host, 128, name);
    path_of(path, 128, name);
}

/* A unique abstract name for this process. */
static const char *abstract_host(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "unix:@sn-test-%ld-%s", (long)getpid(), name);
    return buf;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int listen_on(sn_sock **out, const char *host)
{
    sn_listen_config lc = {.host = host};
    return sn_tcp_listen(out, &lc);
}

/* A connected pair through a listener on host: client and accepted side. */
static int local_pair(sn_sock *l, const char *host, sn_sock **client, sn_sock **server)
{
    int rc = sn_tcp_connect(client, host, 0, NULL, sn_deadline_in(2000));
    if (rc < 0)
        return rc;
    rc = sn_sock_accept(l, server, sn_deadline_in(2000));
    if (rc < 0)
        sn_sock_free(*client);
    return rc;
}

/* A socket file nobody listens on: bound, never listening, closed. */
static int make_stale(const char *path)
{
    sn_addr a;
    int rc = sn_addr_from_path(&a, path);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    rc = bind(fd, &a.u.sa, a.len) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* ---- addresses ----------------------------------------------------------------- */

static void test_addr_forms(void)
{
    sn_addr a, b;
    char buf[SN_ADDR_STRLEN];
    SN_ASSERT_RC(sn_addr_parse(&a, "unix:/run/app.sock", -1), 0);
    CU_ASSERT_EQUAL(sn_addr_family(&a), SN_AF_UNIX);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), 18);
    CU_ASSERT_STRING_EQUAL(buf, "unix:/run/app.sock");
    SN_ASSERT_RC(sn_addr_format_ip(&a, buf, sizeof buf), 13);
    CU_ASSERT_STRING_EQUAL(buf, "/run/app.sock");
    SN_ASSERT_RC(sn_addr_port(&a), SN_EAFNOSUPPORT);
    SN_ASSERT_RC(sn_addr_set_port(&a, 80), SN_EAFNOSUPPORT);
    CU_ASSERT_EQUAL(sn_addr_is_loopback(&a), 0);
    SN_ASSERT_RC(sn_addr_from_path(&b, "/run/app.sock"), 0);
    CU_ASSERT_EQUAL(sn_addr_equal(&a, &b), 1);

    SN_ASSERT_RC(sn_addr_parse(&a, "unix:rel.sock", 80), 0);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), 13);
    CU_ASSERT_STRING_EQUAL(buf, "unix:rel.sock");

    /* abstract: "@" stands for the kernel's leading NUL */
    SN_ASSERT_RC(sn_addr_parse(&a, "unix:@app", -1), 0);
    CU_ASSERT_EQUAL(a.u.un.sun_path[0], '\0');
    CU_ASSERT_EQUAL(memcmp(a.u.un.sun_path + 1, "app", 3), 0);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), 9);
    CU_ASSERT_STRING_EQUAL(buf, "unix:@app");
    SN_ASSERT_RC(sn_addr_parse(&b, "unix:app", -1), 0);
    CU_ASSERT_EQUAL(sn_addr_equal(&a, &b), 0); /* a path is not the abstract name */
    a.u.un.sun_path[2] = '\n';                 /* odd bytes print escaped */
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), 12);
    CU_ASSERT_STRING_EQUAL(buf, "unix:@a\\x0ap");

    /* malformed and too long */
    SN_ASSERT_RC(sn_addr_parse(&a, "unix:", -1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_parse(&a, "unix:@", -1), SN_EBADADDR);
    char path[SN_LOCAL_PATH_MAX + 8];
    memset(path, 'p', sizeof path);
    path[0] = '/';
    path[SN_LOCAL_PATH_MAX] = '\0';
    SN_ASSERT_RC(sn_addr_from_path(&a, path), 0);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), SN_LOCAL_PATH_MAX + 5);
    path[SN_LOCAL_PATH_MAX] = 'p';
    path[SN_LOCAL_PATH_MAX + 1] = '\0';
    SN_ASSERT_RC(sn_addr_from_path(&a, path), SN_ENAMETOOLONG);
    SN_ASSERT_RC(sn_addr_from_path(NULL, "/x"), SN_EINVAL);
    SN_ASSERT_RC(sn_addr_from_path(&a, NULL), SN_EINVAL);

    /* the longest abstract name, every byte escaped, fits SN_ADDR_STRLEN */
    memset(&a, 0, sizeof a);
    a.u.un.sun_family = AF_UNIX;
    memset(a.u.un.sun_path + 1, 1, sizeof a.u.un.sun_path - 1);
    a.len = sizeof a.u.un;
    CU_ASSERT(sn_addr_format(&a, buf, sizeof buf) > 0);
    SN_ASSERT_RC(sn_addr_format(&a, buf, 8), SN_ENOSPC);

    /* resolution: the one local address, for SN_AF_ANY only */
    sn_addr r[4];
    SN_ASSERT_RC(sn_resolve("unix:/x.sock", 0, SN_AF_ANY, r, 4), 1);
    SN_ASSERT_RC(sn_addr_from_path(&b, "/x.sock"), 0);
    CU_ASSERT_EQUAL(sn_addr_equal(&r[0], &b), 1);
    SN_ASSERT_RC(sn_resolve("unix:/x.sock", 0, SN_AF_INET, r, 4), SN_EAFNOSUPPORT);
    SN_ASSERT_RC(sn_resolve("unix:", 0, SN_AF_ANY, r, 4), SN_EBADADDR);
}

/* ---- sockets ------------------------------------------------------------------- */

static void echo_once(sn_sock *client, sn_sock *server)
{
    sn_conn *cc = NULL, *sc = NULL;
    char buf[16];
    SN_ASSERT_RC(sn_conn_new(&cc, client, NULL), 0);
    SN_ASSERT_RC(sn_conn_new(&sc, server, NULL), 0);
    SN_ASSERT_RC(sn_write_str(cc, "ping\n", 0), 5);
    SN_ASSERT_RC(sn_flush(cc, 0), 0);
    SN_ASSERT_RC(sn_read_line(sc, buf, sizeof buf, SN_LINE_LF, sn_deadline_in(2000)), 4);
    CU_ASSERT_STRING_EQUAL(buf, "ping");
    SN_ASSERT_RC(sn_write_str(sc, "pong\n", 0), 5);
    SN_ASSERT_RC(sn_shutdown_write(sc, 0), 0);
    SN_ASSERT_RC(sn_read_line(cc, buf, sizeof buf, SN_LINE_LF, sn_deadline_in(2000)), 4);
    CU_ASSERT_STRING_EQUAL(buf, "pong");
    SN_ASSERT_RC(sn_read_line(cc, buf, sizeof buf, SN_LINE_LF, sn_deadline_in(2000)), SN_EOF);
    sn_conn_free(cc);
    sn_conn_free(sc);
}

static void test_path_connect_accept(void)
{
    char host[128], path[128], buf[SN_ADDR_STRLEN];
    sn_sock *l, *c, *s;
    sn_addr a;
    names_of("a.sock", host, path);
    SN_ASSERT_RC(listen_on(&l, host), 0);
    CU_ASSERT_EQUAL(sn_sock_get_state(l), SN_SOCK_LISTENING);
    CU_ASSERT(exists(path));
    SN_ASSERT_RC(sn_sock_local_addr(l, &a), 0);
    sn_addr_format(&a, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, host);
    SN_ASSERT_RC(local_pair(l, host, &c, &s), 0);
    CU_ASSERT_EQUAL(sn_sock_get_state(c), SN_SOCK_CONNECTED);
    CU_ASSERT_EQUAL(sn_sock_get_state(s), SN_SOCK_CONNECTED);
    SN_ASSERT_RC(sn_sock_remote_addr(c, &a), 0); /* the client sees the path */
    sn_addr_format(&a, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, host);
    SN_ASSERT_RC(sn_sock_local_addr(c, &a), 0); /* and has no name itself */
    sn_addr_format(&a, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "unix:");
    SN_ASSERT_RC(sn_sock_remote_addr(s, &a), 0);
    CU_ASSERT_EQUAL(sn_addr_family(&a), SN_AF_UNIX);
    echo_once(c, s);
    sn_sock_free(l); /* removes the file */
    CU_ASSERT(!exists(path));
    /* nobody there now */
    SN_ASSERT_RC(sn_tcp_connect(&c, host, 0, NULL, sn_deadline_in(1000)), SN_ENOENT);
}

static void test_abstract_name(void)
{
    char host[128];
    sn_sock *l, *l2, *c, *s;
    abstract_host(host, sizeof host, "abs");
    SN_ASSERT_RC(listen_on(&l, host), 0);
    SN_ASSERT_RC(listen_on(&l2, host), SN_EADDRINUSE);
    SN_ASSERT_RC(local_pair(l, host, &c, &s), 0);
    echo_once(c, s);
    sn_sock_free(l);
    /* free again once its socket is closed; nothing to connect to meanwhile */
    SN_ASSERT_RC(sn_tcp_connect(&c, host, 0, NULL, sn_deadline_in(1000)), SN_ECONNREFUSED);
    SN_ASSERT_RC(listen_on(&l, host), 0);
    sn_sock_free(l);
}

static void test_peer_credentials(void)
{
    char host[128];
    sn_sock *l, *c, *s, *tc, *ts;
    sn_peer_cred pc = {0};
    unix_host(host, sizeof host, "cred.sock");
    SN_ASSERT_RC(listen_on(&l, host), 0);
    SN_ASSERT_RC(local_pair(l, host, &c, &s), 0);
    SN_ASSERT_RC(sn_sock_peer_cred(s, &pc), 0); /* the client: this process */
    CU_ASSERT_EQUAL(pc.pid, getpid());
    CU_ASSERT_EQUAL(pc.uid, getuid());
    CU_ASSERT_EQUAL(pc.gid, getgid());
    memset(&pc, 0, sizeof pc);
    SN_ASSERT_RC(sn_sock_peer_cred(c, &pc), 0); /* the server: this process too */
    CU_ASSERT_EQUAL(pc.pid, getpid());
    CU_ASSERT_EQUAL(pc.uid, getuid());
    CU_ASSERT_EQUAL(pc.gid, getgid());
    SN_ASSERT_RC(sn_sock_peer_cred(l, &pc), SN_ENOTCONN);
    SN_ASSERT_RC(sn_sock_peer_cred(s, NULL), SN_EINVAL);
    SN_ASSERT_RC(sn_test_sock_pair(&tc, &ts), 0);
    SN_ASSERT_RC(sn_sock_peer_cred(tc, &pc), SN_ENOPROTOOPT); /* TCP has none */
    sn_sock_free(tc);
    sn_sock_free(ts);
    sn_sock_close(s);
    SN_ASSERT_RC(sn_sock_peer_cred(s, &pc), SN_EBADSTATE);
    sn_sock_free(s);
    sn_sock_free(c);
    sn_sock_free(l);
}

static void test_stale_file_reclaimed(void)
{
    char host[128], path[128];
    sn_sock *l, *c, *s;
    names_of("stale.sock", host, path);
    SN_ASSERT_RC(make_stale(path), 0);
    CU_ASSERT(exists(path));
    /* a connect is refused: nobody listens there */
    SN_ASSERT_RC(sn_tcp_connect(&c, host, 0, NULL, sn_deadline_in(1000)), SN_ECONNREFUSED);
    SN_ASSERT_RC(listen_on(&l, host), 0);
    SN_ASSERT_RC(local_pair(l, host, &c, &s), 0);
    echo_once(c, s);
    sn_sock_free(l);
    CU_ASSERT(!exists(path));
}

static void test_live_socket_not_stolen(void)
{
    char host[128], path[128];
    sn_sock *l, *l2 = NULL, *c, *s;
    struct stat before, after;
    names_of("live.sock", host, path);
    SN_ASSERT_RC(listen_on(&l, host), 0);
    CU_ASSERT_EQUAL(lstat(path, &before), 0);
    SN_ASSERT_RC(listen_on(&l2, host), SN_EADDRINUSE);
    CU_ASSERT_PTR_NULL(l2);
    CU_ASSERT_EQUAL(lstat(path, &after), 0);
    CU_ASSERT_EQUAL(before.st_ino, after.st_ino);
    /* the probe's connection is in the first listener's queue: take it, it
     * ends at once; then a real client is served as before */
    SN_ASSERT_RC(sn_sock_accept(l, &s, sn_deadline_in(2000)), 0);
    sn_conn *pc;
    char b;
    SN_ASSERT_RC(sn_conn_new(&pc, s, NULL), 0);
    SN_ASSERT_RC(sn_read(pc, &b, 1, sn_deadline_in(2000)), SN_EOF);
    sn_conn_free(pc);
    SN_ASSERT_RC(local_pair(l, host, &c, &s), 0);
    echo_once(c, s);
    sn_sock_free(l);
    CU_ASSERT(!exists(path));
}

static void test_non_socket_refused(void)
{
    char host[128], path[128], buf[8] = {0};
    sn_sock *l = NULL;
    names_of("file", host, path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, "data", 4), 4);
    close(fd);
    SN_ASSERT_RC(listen_on(&l, host), SN_EEXIST);
    CU_ASSERT_PTR_NULL(l);
    fd = open(path, O_RDONLY | O_CLOEXEC); /* still there, untouched */
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(read(fd, buf, sizeof buf), 4);
    CU_ASSERT_STRING_EQUAL(buf, "data");
    close(fd);
    unlink(path);
    /* a directory is not a socket either */
    CU_ASSERT_EQUAL(mkdir(path, 0700), 0);
    SN_ASSERT_RC(listen_on(&l, host), SN_EEXIST);
    CU_ASSERT(exists(path));
    rmdir(path);
}

static void test_path_too_long(void)
{
    char host[256], name[160];
    sn_sock *l = NULL, *c = NULL;
    /* dir is "/tmp/sn-local-XXXXXX" (20 bytes), plus '/' and the name */
    size_t room = SN_LOCAL_PATH_MAX - strlen(dir) - 1;
    memset(name, 'n', room + 1);
    name[room + 1] = '\0';
    unix_host(host, sizeof host, name);
    SN_ASSERT_RC(listen_on(&l, host), SN_ENAMETOOLONG);
    SN_ASSERT_RC(sn_tcp_connect(&c, host, 0, NULL, sn_deadline_in(1000)), SN_ENAMETOOLONG);
    CU_ASSERT_PTR_NULL(l);
    CU_ASSERT_PTR_NULL(c);
    name[room] = '\0'; /* exactly SN_LOCAL_PATH_MAX bytes: fine */
    unix_host(host, sizeof host, name);
    SN_ASSERT_RC(listen_on(&l, host), 0);
    SN_ASSERT_RC(sn_tcp_connect(&c, host, 0, NULL, sn_deadline_in(1000)), 0);
    sn_sock_free(c);
    sn_sock_free(l);
}

static void test_unlink_only_own_file(void)
{
    char host[128], path[128];
    sn_sock *l1, *l2;
    names_of("own.sock", host, path);
    SN_ASSERT_RC(listen_on(&l1, host), 0);
    CU_ASSERT_EQUAL(unlink(path), 0);      /* someone removed it... */
    SN_ASSERT_RC(listen_on(&l2, host), 0); /* ...and a successor took the path */
    sn_sock_free(l1);                      /* must not remove the successor's file */
    CU_ASSERT(exists(path));
    sn_sock_free(l2);
    CU_ASSERT(!exists(path));
}

/* A relative path is removed where it was made, after a chdir too. */
static void test_relative_path(void)
{
    char path[128], cwd[4096];
    sn_sock *l, *c, *s;
    path_of(path, sizeof path, "rel.sock");
    CU_ASSERT_FATAL(getcwd(cwd, sizeof cwd) != NULL);
    CU_ASSERT_FATAL(chdir(dir) == 0);
    SN_ASSERT_RC(listen_on(&l, "unix:rel.sock"), 0);
    SN_ASSERT_RC(local_pair(l, "unix:rel.sock", &c, &s), 0);
    CU_ASSERT_FATAL(chdir(cwd) == 0);
    CU_ASSERT(exists(path));
    echo_once(c, s);
    sn_sock_free(l);
    CU_ASSERT(!exists(path));
}

static void test_mode(void)
{
    char host[128], path[128];
    sn_sock *l = NULL;
    struct stat st;
    names_of("mode.sock", host, path);
    sn_listen_config lc = {.host = host, .mode = 0600};
    SN_ASSERT_RC(sn_tcp_listen(&l, &lc), 0);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT(S_ISSOCK(st.st_mode));
    CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
    sn_sock_free(l);
    lc.mode = 0640;
    SN_ASSERT_RC(sn_tcp_listen(&l, &lc), 0);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 07777, 0640);
    sn_sock_free(l);
    l = NULL;
    lc.mode = 010000;
    SN_ASSERT_RC(sn_tcp_listen(&l, &lc), SN_EINVAL);
    char abs[128];
    sn_listen_config la = {.host = abstract_host(abs, sizeof abs, "mode"), .mode = 0600};
    SN_ASSERT_RC(sn_tcp_listen(&l, &la), SN_EINVAL); /* no file, no mode */
    sn_listen_config lt = {.host = "127.0.0.1", .mode = 0600};
    SN_ASSERT_RC(sn_tcp_listen(&l, &lt), SN_EINVAL);
    CU_ASSERT_PTR_NULL(l);
    /* a directory that does not exist */
    sn_listen_config ln = {.host = "unix:/nonexistent-sn-dir/x.sock"};
    SN_ASSERT_RC(sn_tcp_listen(&l, &ln), SN_ENOENT);
}

static void test_tcp_options_refused(void)
{
    char host[128], path[128];
    sn_sock *l = NULL, *c, *s;
    int v = -5;
    names_of("opt.sock", host, path);
    /* a listener asked for a TCP option fails, and leaves no file behind */
    sn_listen_config lc = {.host = host, .opt = {.nodelay = SN_ON}};
    SN_ASSERT_RC(sn_tcp_listen(&l, &lc), SN_ENOPROTOOPT);
    CU_ASSERT_PTR_NULL(l);
    lc.opt = (sn_sock_options){.keepalive = SN_ON};
    SN_ASSERT_RC(sn_tcp_listen(&l, &lc), SN_ENOPROTOOPT);
    lc.opt = (sn_sock_options){.reuseaddr = SN_ON};
    SN_ASSERT_RC(sn_tcp_listen(&l, &lc), SN_ENOPROTOOPT);
    CU_ASSERT(!exists(path));
    lc.opt = (sn_sock_options){.sndbuf = 65536, .read_timeout_ms = 1234};
    SN_ASSERT_RC(sn_tcp_listen(&l, &lc), 0);
    sn_sock_options co = {.tos = 0x10};
    SN_ASSERT_RC(sn_tcp_connect(&c, host, 0, &co, sn_deadline_in(1000)), SN_ENOPROTOOPT);
    SN_ASSERT_RC(local_pair(l, host, &c, &s), 0);
    static const int tcp_only[] = {SN_OPT_NODELAY,   SN_OPT_KEEPALIVE, SN_OPT_KEEPIDLE,
                                   SN_OPT_KEEPINTVL, SN_OPT_KEEPCNT,   SN_OPT_LINGER,
                                   SN_OPT_REUSEADDR, SN_OPT_REUSEPORT, SN_OPT_TOS,
                                   SN_OPT_OOBINLINE, SN_OPT_FASTOPEN,  SN_OPT_V6ONLY};
    for (size_t i = 0; i < SN_ARRAY_SIZE(tcp_only); i++) {
        SN_ASSERT_RC(sn_sock_set_option(c, tcp_only[i], 1), SN_ENOPROTOOPT);
        SN_ASSERT_RC(sn_sock_get_option(s, tcp_only[i], &v), SN_ENOPROTOOPT);
    }
    CU_ASSERT_EQUAL(v, -5); /* untouched */
    /* what a local socket has works */
    SN_ASSERT_RC(sn_sock_get_option(s, SN_OPT_READ_TIMEOUT, &v), 0);
    CU_ASSERT_EQUAL(v, 1234);
    SN_ASSERT_RC(sn_sock_get_option(s, SN_OPT_SNDBUF, &v), 0);
    CU_ASSERT(v >= 65536);
    SN_ASSERT_RC(sn_sock_set_option(c, SN_OPT_RCVBUF, 32768), 0);
    SN_ASSERT_RC(sn_sock_get_option(c, SN_OPT_ERROR, &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    sn_sock_free(c);
    sn_sock_free(s);
    sn_sock_free(l);
}

static void test_deadlines(void)
{
    char host[128];
    sn_sock *l, *c, *s;
    sn_conn *cc;
    char buf[8];
    unix_host(host, sizeof host, "dl.sock");
    /* a read with nothing coming ends at its deadline */
    SN_ASSERT_RC(listen_on(&l, host), 0);
    SN_ASSERT_RC(local_pair(l, host, &c, &s), 0);
    SN_ASSERT_RC(sn_conn_new(&cc, c, NULL), 0);
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_read(cc, buf, sizeof buf, sn_deadline_in(100)), SN_ETIMEDOUT);
    CU_ASSERT(sn_now_ms() - t0 >= 90);
    /* and the default read timeout of the socket applies too */
    SN_ASSERT_RC(sn_sock_set_option(c, SN_OPT_READ_TIMEOUT, 80), 0);
    SN_ASSERT_RC(sn_read(cc, buf, sizeof buf, SN_DEADLINE_DEFAULT), SN_ETIMEDOUT);
    sn_conn_free(cc);
    sn_sock_free(s);
    sn_sock_free(l);

    /* a connect to a listener whose backlog is full waits until its deadline */
    sn_listen_config lc = {.host = host, .backlog = 1};
    sn_sock *queued[64];
    int n = 0, rc = 0;
    SN_ASSERT_RC(sn_tcp_listen(&l, &lc), 0);
    while (n < 64 && (rc = sn_tcp_connect(&queued[n], host, 0, NULL, sn_deadline_in(150))) == 0)
        n++;
    SN_ASSERT_RC(rc, SN_ETIMEDOUT);
    CU_ASSERT(n >= 1 && n < 64);
    /* once one is accepted there is room again */
    SN_ASSERT_RC(sn_sock_accept(l, &s, sn_deadline_in(1000)), 0);
    SN_ASSERT_RC(sn_tcp_connect(&c, host, 0, NULL, sn_deadline_in(2000)), 0);
    sn_sock_free(c);
    sn_sock_free(s);
    for (int i = 0; i < n; i++)
        sn_sock_free(queued[i]);
    /* an accept with nothing pending ends at its deadline */
    for (int i = 0; i < 64 && sn_sock_accept(l, &s, sn_deadline_in(0)) == 0; i++)
        sn_sock_free(s);
    SN_ASSERT_RC(sn_sock_accept(l, &s, sn_deadline_in(50)), SN_ETIMEDOUT);
    sn_sock_free(l);
}

static void test_from_fd_and_udp(void)
{
    char host[128], path[128];
    sn_sock *l, *a;
    names_of("fd.sock", host, path);
    SN_ASSERT_RC(listen_on(&l, host), 0);
    int fd = dup(sn_sock_fd(l));
    SN_ASSERT_RC(sn_sock_from_fd(&a, fd), 0);
    CU_ASSERT_EQUAL(sn_sock_get_state(a), SN_SOCK_LISTENING);
    sn_sock_free(a); /* adopted: never removes the file */
    CU_ASSERT(exists(path));
    sn_sock_free(l);
    CU_ASSERT(!exists(path));
    /* a bound, not listening, local socket reads as bound */
    sn_addr addr;
    SN_ASSERT_RC(sn_addr_from_path(&addr, path), 0);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_EQUAL(bind(fd, &addr.u.sa, addr.len), 0);
    SN_ASSERT_RC(sn_sock_from_fd(&a, fd), 0);
    CU_ASSERT_EQUAL(sn_sock_get_state(a), SN_SOCK_BOUND);
    sn_sock_free(a);
    unlink(path);
    /* datagrams are not local sockets here */
    sn_udp *u = NULL;
    sn_udp_config uc = {.host = host};
    SN_ASSERT_RC(sn_udp_bind(&u, &uc), SN_EAFNOSUPPORT);
    SN_ASSERT_RC(sn_udp_connect(&u, host, 0, NULL), SN_EAFNOSUPPORT);
    CU_ASSERT_PTR_NULL(u);
}

/* ---- the server ---------------------------------------------------------------- */

/* Echoes lines; "cred" answers the peer's pid, uid and gid; "wait" reads
 * the next line with a 100 ms deadline and answers it, or the error. */
static void line_handler(sn_conn *c, void *user)
{
    char line[256];
    (void)user;
    while (sn_read_line(c, line, sizeof line, SN_LINE_LF, sn_deadline_in(5000)) >= 0) {
        if (strcmp(line, "cred") == 0) {
            sn_peer_cred pc;
            int rc = sn_sock_peer_cred(sn_conn_sock(c), &pc);
            if (rc < 0)
                sn_printf(c, 0, "error %s\n", sn_err_name(rc));
            else
                sn_printf(c, 0, "%ld %ld %ld\n", (long)pc.pid, (long)pc.uid, (long)pc.gid);
        } else if (strcmp(line, "wait") == 0) {
            ssize_t n = sn_read_line(c, line, sizeof line, SN_LINE_LF, sn_deadline_in(100));
            sn_printf(c, 0, "%s\n", n < 0 ? sn_err_name((int)n) : line);
        } else {
            sn_printf(c, 0, "%s\n", line);
        }
        if (sn_flush(c, 0) < 0)
            break;
    }
}

static char listening_text[SN_ADDR_STRLEN];

static void on_listening(sn_server *s, const sn_addr *a, void *user)
{
    (void)s;
    (void)user;
    sn_addr_format(a, listening_text, sizeof listening_text);
}

#define CLIENTS 8

/* Serves CLIENTS clients at once through a server on host, in thread or
 * fiber mode; each checks an echo and its credentials. */
static void serve_clients(const char *host, int fibers)
{
    sn_server_config cfg = {.host = host,
                            .handler = line_handler,
                            .fibers = fibers,
                            .fiber_threads = 2,
                            .on_listening = on_listening};
    sn_server *srv;
    sn_conn *c[CLIENTS];
    char line[256], want[128];
    snprintf(want, sizeof want, "%ld %ld %ld", (long)getpid(), (long)getuid(), (long)getgid());
    listening_text[0] = '\0';
    SN_ASSERT_RC(sn_server_new(&srv, &cfg), 0);
    SN_ASSERT_RC(sn_server_start(srv), 0);
    CU_ASSERT_STRING_EQUAL(listening_text, host);
    SN_ASSERT_RC(sn_server_port(srv), SN_EAFNOSUPPORT);
    for (int i = 0; i < CLIENTS; i++)
        SN_ASSERT_RC(sn_conn_connect(&c[i], host, 0, NULL, NULL, sn_deadline_in(2000)), 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < CLIENTS; i++) {
            sn_printf(c[i], 0, "hello %d %d\ncred\n", i, round);
            SN_ASSERT_RC(sn_flush(c[i], 0), 0);
        }
        for (int i = 0; i < CLIENTS; i++) {
            char hello[32];
            snprintf(hello, sizeof hello, "hello %d %d", i, round);
            CU_ASSERT(sn_read_line(c[i], line, sizeof line, SN_LINE_LF, sn_deadline_in(5000)) > 0);
            CU_ASSERT_STRING_EQUAL(line, hello);
            CU_ASSERT(sn_read_line(c[i], line, sizeof line, SN_LINE_LF, sn_deadline_in(5000)) > 0);
            CU_ASSERT_STRING_EQUAL(line, want);
        }
    }
    /* a handler's deadline on a local socket: the client stays silent */
    sn_write_str(c[0], "wait\n", 0);
    SN_ASSERT_RC(sn_flush(c[0], 0), 0);
    CU_ASSERT(sn_read_line(c[0], line, sizeof line, SN_LINE_LF, sn_deadline_in(5000)) > 0);
    CU_ASSERT_STRING_EQUAL(line, "ETIMEDOUT");
    /* stop with clients connected: handlers blocked in a read are woken */
    SN_ASSERT_RC(sn_server_stop(srv, 2000), 0);
    for (int i = 0; i < CLIENTS; i++) {
        SN_ASSERT_RC(sn_read_line(c[i], line, sizeof line, SN_LINE_LF, sn_deadline_in(2000)),
                     SN_EOF);
        sn_conn_free(c[i]);
    }
    sn_server_stats st;
    sn_server_stats_get(srv, &st);
    CU_ASSERT_EQUAL(st.accepted, CLIENTS);
    sn_server_free(srv);
}

static void test_server_threads(void)
{
    char host[128], path[128];
    names_of("srv.sock", host, path);
    SN_ASSERT_RC(make_stale(path), 0); /* a crashed predecessor's file */
    serve_clients(host, SN_OFF);
    CU_ASSERT(!exists(path)); /* removed at stop */
}

static void test_server_fibers(void)
{
    char host[128], path[128];
    names_of("srv-fib.sock", host, path);
    serve_clients(host, SN_ON);
    CU_ASSERT(!exists(path));
}

static void test_server_abstract_both_modes(void)
{
    char host[128];
    abstract_host(host, sizeof host, "srv");
    serve_clients(host, SN_OFF);
    serve_clients(host, SN_ON);
}

/* A server with a TCP and a local listener; a stop with no client at all
 * (in fiber mode, the acceptor fibers of a local listener must wake). */
static void test_server_mixed_listeners(void)
{
    char host[128], path[128];
    names_of("mixed.sock", host, path);
    for (int fibers = SN_OFF; fibers <= SN_ON; fibers += 2) {
        sn_listen_config ls[] = {{.host = "127.0.0.1"}, {.host = host, .mode = 0600}};
        sn_server_config cfg = {.listeners = ls,
                                .nlisteners = 2,
                                .handler = line_handler,
                                .fibers = fibers,
                                .fiber_threads = 2};
        sn_server *srv;
        sn_conn *t, *u;
        char line[64];
        sn_addr a;
        SN_ASSERT_RC(sn_server_new(&srv, &cfg), 0);
        SN_ASSERT_RC(sn_server_start(srv), 0);
        SN_ASSERT_RC(sn_server_local_addr(srv, 1, &a), 0);
        CU_ASSERT_EQUAL(sn_addr_family(&a), SN_AF_UNIX);
        int port = sn_server_port(srv);
        CU_ASSERT(port > 0);
        SN_ASSERT_RC(sn_conn_connect(&t, "127.0.0.1", port, NULL, NULL, sn_deadline_in(2000)), 0);
        SN_ASSERT_RC(sn_conn_connect(&u, host, 0, NULL, NULL, sn_deadline_in(2000)), 0);
        sn_write_str(t, "cred\n", 0);
        sn_write_str(u, "via unix\n", 0);
        SN_ASSERT_RC(sn_flush(t, 0), 0);
        SN_ASSERT_RC(sn_flush(u, 0), 0);
        CU_ASSERT(sn_read_line(t, line, sizeof line, SN_LINE_LF, sn_deadline_in(5000)) > 0);
        CU_ASSERT_STRING_EQUAL(line, "error ENOPROTOOPT"); /* TCP: no credentials */
        CU_ASSERT(sn_read_line(u, line, sizeof line, SN_LINE_LF, sn_deadline_in(5000)) > 0);
        CU_ASSERT_STRING_EQUAL(line, "via unix");
        sn_conn_free(t);
        sn_conn_free(u);
        sn_server_free(srv);
        CU_ASSERT(!exists(path));

        /* no client at all */
        SN_ASSERT_RC(sn_server_new(&srv, &cfg), 0);
        SN_ASSERT_RC(sn_server_start(srv), 0);
        CU_ASSERT(exists(path));
        SN_ASSERT_RC(sn_server_stop(srv, 2000), 0);
        CU_ASSERT(!exists(path));
        sn_server_free(srv);
    }
}

/* A server whose local path is taken by a live listener does not start,
 * and leaves the other's file alone. */
static void test_server_in_use(void)
{
    char host[128], path[128];
    sn_sock *l, *s;
    names_of("busy.sock", host, path);
    SN_ASSERT_RC(listen_on(&l, host), 0);
    sn_server_config cfg = {.host = host, .handler = line_handler};
    sn_server *srv;
    SN_ASSERT_RC(sn_server_new(&srv, &cfg), 0);
    SN_ASSERT_RC(sn_server_start(srv), SN_EADDRINUSE);
    sn_server_free(srv);
    CU_ASSERT(exists(path));
    SN_ASSERT_RC(sn_sock_accept(l, &s, sn_deadline_in(2000)), 0); /* the probe */
    sn_sock_free(s);
    /* a TCP option for a local listener is refused as well */
    sn_server_config bad = {.host = host, .handler = line_handler, .sockopt = {.keepalive = SN_ON}};
    sn_sock_free(l);
    SN_ASSERT_RC(sn_server_new(&srv, &bad), 0);
    SN_ASSERT_RC(sn_server_start(srv), SN_ENOPROTOOPT);
    sn_server_free(srv);
    CU_ASSERT(!exists(path));
}

static CU_TestInfo tests[] = {
    {"addresses: unix:PATH, unix:@NAME, limits", test_addr_forms},
    {"path: listen, connect, accept, addresses, removal", test_path_connect_accept},
    {"abstract name", test_abstract_name},
    {"peer credentials", test_peer_credentials},
    {"stale socket file reclaimed", test_stale_file_reclaimed},
    {"live socket not stolen", test_live_socket_not_stolen},
    {"non-socket file refused", test_non_socket_refused},
    {"path too long", test_path_too_long},
    {"close removes only its own file", test_unlink_only_own_file},
    {"relative path, removed after a chdir", test_relative_path},
    {"mode of the socket file", test_mode},
    {"TCP options refused", test_tcp_options_refused},
    {"deadlines: read, connect (full backlog), accept", test_deadlines},
    {"adopted descriptors; UDP refuses unix:", test_from_fd_and_udp},
    {"server, thread mode, stale file", test_server_threads},
    {"server, fiber mode", test_server_fibers},
    {"server on an abstract name, both modes", test_server_abstract_both_modes},
    {"server with TCP and local listeners", test_server_mixed_listeners},
    {"server: path in use, TCP option", test_server_in_use},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sn-local-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    int rc = sn_test_main("local", tests, 120);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
