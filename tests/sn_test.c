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
#include "sn_wait.h"

/* The watchdog asks CUnit which test is running. */
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

/* ---- the runner: every test behind one trampoline ---------------------------------- */

/* The tests as registered: CUnit calls run_checked for each, which finds the
 * real function by the test CUnit says is running. */
struct entry {
    CU_pTest test;
    CU_TestFunc fn;
    bool unchecked; /* the program's warm-up or cool-down */
};
static struct entry *entries;
static size_t nentries;
static const sn_test_program *program;
static const char *skip_reason; /* set by sn_test_skip during a test */
static unsigned npassed, nskipped, nfailed;
static char skipped_list[4096];

void sn_test_skip(const char *why)
{
    skip_reason = why;
    fprintf(stderr, "SKIP: %s ", why);
}

static const struct entry *entry_of(CU_pTest test)
{
    for (size_t i = 0; i < nentries; i++)
        if (entries[i].test == test)
            return &entries[i];
    return NULL;
}

/* Fails the running test, naming it, when it ended with more live library
 * allocations or open descriptors than it started with. */
static void check_leaks(const char *name, long allocs, int fds)
{
    long allocs_after = sn__alloc_live();
    int fds_after = sn_test_open_fds();
    if (allocs_after == allocs && fds_after == fds)
        return;
    char what[512];
    snprintf(what, sizeof what, "leak in \"%s\": %+ld allocations, %+d descriptors", name,
             allocs_after - allocs, fds_after - fds);
    fprintf(stderr, "\n%s\n", what);
    CU_assertImplementation(CU_FALSE, 0, what, "sn_test.c (leak check)", "", CU_FALSE);
}

static void run_checked(void)
{
    CU_pTest test = CU_get_current_test();
    const struct entry *e = entry_of(test);
    sn__alloc_fail_after(-1); /* not left behind by a test stopped by a fatal assertion */
    if (e->unchecked) {
        e->fn();
        return;
    }
    if (program->before_each != NULL)
        program->before_each();
    long allocs = sn__alloc_live();
    int fds = sn_test_open_fds();
    e->fn();
    sn__alloc_fail_after(-1);
    if (program->after_each != NULL)
        program->after_each();
    check_leaks(test->pName, allocs, fds);
}

static void on_test_start(const CU_pTest test, const CU_pSuite suite)
{
    (void)suite;
    skip_reason = NULL;
    printf("  %s ... ", test->pName);
    fflush(stdout);
}

static void on_test_complete(const CU_pTest test, const CU_pSuite suite,
                             const CU_pFailureRecord failures)
{
    (void)suite;
    if (failures != NULL) {
        nfailed++;
        printf("FAILED\n");
        for (CU_pFailureRecord f = failures; f != NULL; f = f->pNext)
            printf("    %s:%u: %s\n", f->strFileName ? f->strFileName : "?", f->uiLineNumber,
                   f->strCondition ? f->strCondition : "");
    } else if (skip_reason != NULL) {
        nskipped++;
        printf("SKIPPED\n");
        size_t used = strlen(skipped_list);
        snprintf(skipped_list + used, sizeof skipped_list - used, "  skipped: %s (%s)\n",
                 test->pName, skip_reason);
    } else if (entry_of(test)->unchecked) {
        printf("done\n"); /* not a test: not counted */
    } else {
        npassed++;
        printf("ok\n");
    }
    fflush(stdout);
}

static int add_test(CU_pSuite suite, const char *name, CU_TestFunc fn, bool unchecked)
{
    CU_pTest t = CU_add_test(suite, name, run_checked);
    if (t == NULL)
        return -1;
    entries[nentries++] = (struct entry){t, fn, unchecked};
    return 0;
}

/* Registers each chosen test (SN_TEST_ONLY=TEXT: only the names containing
 * TEXT) behind the trampoline, between the program's warm-up and cool-down. */
static int register_tests(const sn_test_program *p)
{
    const char *only = getenv("SN_TEST_ONLY");
    size_t n = 0;
    while (p->tests[n].pName != NULL)
        n++;
    CU_pSuite suite = CU_add_suite(p->suite, NULL, NULL);
    if (suite == NULL || (entries = calloc(n + 2, sizeof *entries)) == NULL)
        return -1;
    if (p->warm_up != NULL && add_test(suite, "(warm-up)", p->warm_up, true) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (only != NULL && *only != '\0' && strstr(p->tests[i].pName, only) == NULL)
            continue;
        if (add_test(suite, p->tests[i].pName, p->tests[i].pTestFunc, false) < 0)
            return -1;
    }
    if (p->cool_down != NULL && add_test(suite, "(cool-down)", p->cool_down, true) < 0)
        return -1;
    return 0;
}

int sn_test_run(const sn_test_program *p)
{
    program = p;
    signal(SIGPIPE, SIG_IGN); /* the library never needs this; peers may */
    signal(SIGALRM, on_alarm);
    alarm(p->seconds);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    if (register_tests(p) < 0) {
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        return 1;
    }
    long allocs = sn__alloc_live();
    int fds = sn_test_open_fds();
    printf("%s:\n", p->suite);
    CU_set_test_start_handler(on_test_start);
    CU_set_test_complete_handler(on_test_complete);
    CU_run_all_tests();
    CU_cleanup_registry();
    free(entries);
    if (p->warm_up != NULL && (sn__alloc_live() != allocs || sn_test_open_fds() != fds)) {
        printf("leak across the program (warm-up to cool-down): %+ld allocations, %+d "
               "descriptors\n",
               sn__alloc_live() - allocs, sn_test_open_fds() - fds);
        nfailed++;
    }
    printf("%s: %u passed, %u skipped, %u failed\n%s", p->suite, npassed, nskipped, nfailed,
           skipped_list);
    if (nfailed > 0)
        return 1;
    if (npassed + nskipped == 0) {
        fprintf(stderr, "no test ran\n");
        return 1;
    }
    return npassed == 0 ? 77 : 0; /* 77: automake's SKIP, when every test skipped */
}

int sn_test_main(const char *suite, CU_TestInfo *tests, unsigned seconds)
{
    sn_test_program p = {.suite = suite, .tests = tests, .seconds = seconds};
    return sn_test_run(&p);
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

struct sn_test_later {
    pthread_t t;
    int ms;
    void (*fn)(void *arg);
    void *arg;
};

static void *later_main(void *arg)
{
    sn_test_later *l = arg;
    sn_test_sleep_ms(l->ms);
    l->fn(l->arg);
    return NULL;
}

sn_test_later *sn_test_later_start(int ms, void (*fn)(void *arg), void *arg)
{
    sn_test_later *l = calloc(1, sizeof *l);
    CU_ASSERT_FATAL(l != NULL);
    *l = (sn_test_later){.ms = ms, .fn = fn, .arg = arg};
    CU_ASSERT_FATAL(pthread_create(&l->t, NULL, later_main, l) == 0);
    return l;
}

void sn_test_later_join(sn_test_later *l)
{
    pthread_join(l->t, NULL);
    free(l);
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
