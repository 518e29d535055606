/* SPDX-License-Identifier: MIT */
/* sn_test.c: the shared test helpers (see sn_test.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "sn_test.h"

/* The basic runner installs its own test-start handler, so the watchdog asks
 * CUnit which test is running rather than tracking it itself. */
static void on_alarm(int sig)
{
    (void)sig;
    CU_pTest test = CU_get_current_test();
    const char *name = test && test->pName ? test->pName : "(between tests)";
    static const char msg[] = "\nwatchdog: test hung: ";
    (void)!write(2, msg, sizeof msg - 1);
    (void)!write(2, name, strlen(name));
    (void)!write(2, "\n", 1);
    _exit(1);
}

int sn_test_main(const char *suite, CU_TestInfo *tests, unsigned seconds)
{
    signal(SIGPIPE, SIG_IGN); /* the library never needs this; peers may */
    signal(SIGALRM, on_alarm);
    alarm(seconds);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    /* SN_TEST_ONLY=TEXT: only the tests whose name contains TEXT */
    const char *only = getenv("SN_TEST_ONLY");
    CU_TestInfo *chosen = NULL;
    if (only != NULL && *only != '\0') {
        size_t n = 0, k = 0;
        while (tests[n].pName != NULL)
            n++;
        if ((chosen = calloc(n + 1, sizeof *chosen)) == NULL)
            return 1;
        for (size_t i = 0; i < n; i++)
            if (strstr(tests[i].pName, only) != NULL)
                chosen[k++] = tests[i];
        chosen[k] = (CU_TestInfo)CU_TEST_INFO_NULL;
        tests = chosen;
    }
    CU_SuiteInfo suites[] = {
        {suite, NULL, NULL, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    free(chosen);
    if (run == 0) {
        fprintf(stderr, "no test ran\n");
        return 1;
    }
    return failed ? 1 : 0;
}

bool sn_test_under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p != NULL && strstr(p, "valgrind") != NULL;
}

int sn_test_tcp_pair(int *a, int *b)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cfd = -1, sfd = -1;
    if (lfd < 0)
        return -errno;
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &len) < 0)
        goto fail;
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&sin, sizeof sin) < 0)
        goto fail;
    sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (sfd < 0)
        goto fail;
    close(lfd);
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sn__fd_nonblock_cloexec(cfd) < 0 || sn__fd_nonblock_cloexec(sfd) < 0)
        goto fail;
    *a = cfd;
    *b = sfd;
    return 0;
fail:;
    int err = -errno;
    close(lfd);
    if (cfd >= 0)
        close(cfd);
    if (sfd >= 0)
        close(sfd);
    return err ? err : SN_EIO;
}

int sn_test_sock_pair(sn_sock **client, sn_sock **server)
{
    int a, b;
    int rc = sn_test_tcp_pair(&a, &b);
    if (rc < 0)
        return rc;
    if ((rc = sn_sock_from_fd(client, a)) < 0) {
        close(a);
        close(b);
        return rc;
    }
    if ((rc = sn_sock_from_fd(server, b)) < 0) {
        sn_sock_free(*client);
        close(b);
        return rc;
    }
    return 0;
}

int sn_test_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                int rc = sn__wait_fd(fd, POLLOUT, sn_deadline_in(10000));
                if (rc < 0)
                    return rc;
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sn_test_read_all(int fd, void *buf, size_t len, int timeout_ms)
{
    char *p = buf;
    int64_t dl = sn_deadline_in(timeout_ms);
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n == 0)
            return SN_EOF;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                int rc = sn__wait_fd(fd, POLLIN, dl);
                if (rc < 0)
                    return rc;
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

long sn_test_raise_nofile(long n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if ((long)rl.rlim_cur < n) {
        rl.rlim_cur = (rlim_t)n < rl.rlim_max ? (rlim_t)n : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

int sn_test_free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
        close(fd);
        return -errno;
    }
    close(fd);
    return ntohs(sin.sin_port);
}

void sn_test_sleep_ms(int ms)
{
    sn_sleep_ms(ms); /* on a fiber: the fiber only */
}

int sn_test_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

#ifndef SN_SRCDIR
#define SN_SRCDIR "."
#endif
#ifndef SN_BUILDDIR
#define SN_BUILDDIR "."
#endif

const char *sn_test_pki(const char *name)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int made; /* 0 not yet, 1 made, -1 failed */
    static char paths[256][1024];
    static int npaths;
    const char *dir = SN_BUILDDIR "/tests/pki", *path = NULL;
    pthread_mutex_lock(&lock);
    if (made == 0) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "sh '%s/tests/gen-pki.sh' '%s'", SN_SRCDIR, dir);
        made = system(cmd) == 0 ? 1 : -1;
        if (made < 0)
            fprintf(stderr, "tests/gen-pki.sh failed (is openssl installed?)\n");
    }
    for (int i = 0; made > 0 && path == NULL && i <= npaths && i < 256; i++) {
        if (i == npaths) {
            snprintf(paths[i], sizeof paths[i], "%s/%s", dir, name);
            npaths++;
        }
        if (strcmp(strrchr(paths[i], '/') + 1, name) == 0)
            path = paths[i];
    }
    pthread_mutex_unlock(&lock);
    return path;
}

static int leak_fds;
static long leak_allocs;

void sn_test_leaks_begin(void)
{
    leak_fds = sn_test_open_fds();
    leak_allocs = sn__alloc_live();
}

void sn_test_leaks_end(void)
{
    int fds = sn_test_open_fds();
    if (fds != leak_fds)
        fprintf(stderr, "descriptors: %d at start, %d at end\n", leak_fds, fds);
    CU_ASSERT_EQUAL(fds, leak_fds);
    CU_ASSERT_EQUAL(sn__alloc_live(), leak_allocs);
}
