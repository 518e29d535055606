/* SPDX-License-Identifier: MIT */
/* test-addr.c: address parsing, formatting, comparison and resolution. */
#include <arpa/inet.h>
#include <net/if.h>
#include <string.h>
#include "sn_test.h"

/* Parses text and formats it back; the result must equal want. */
static void check_round_trip(const char *text, int default_port, const char *want)
{
    sn_addr a;
    char buf[SN_ADDR_STRLEN];
    SN_ASSERT_RC(sn_addr_parse(&a, text, default_port), 0);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), (long)strlen(want));
    if (strcmp(buf, want) != 0)
        fprintf(stderr, "%s: formatted %s, want %s\n", text, buf, want);
    CU_ASSERT_STRING_EQUAL(buf, want);
}

static void test_parse_format_v4(void)
{
    sn_addr a;
    char buf[SN_ADDR_STRLEN];
    check_round_trip("127.0.0.1:80", -1, "127.0.0.1:80");
    check_round_trip("0.0.0.0:0", -1, "0.0.0.0:0");
    check_round_trip("255.255.255.255:65535", -1, "255.255.255.255:65535");
    check_round_trip("192.0.2.1", 8080, "192.0.2.1:8080");
    SN_ASSERT_RC(sn_addr_parse(&a, "192.0.2.7:443", -1), 0);
    CU_ASSERT_EQUAL(sn_addr_family(&a), SN_AF_INET);
    CU_ASSERT_EQUAL(sn_addr_port(&a), 443);
    CU_ASSERT_EQUAL(a.len, sizeof(struct sockaddr_in));
    SN_ASSERT_RC(sn_addr_format_ip(&a, buf, sizeof buf), 9);
    CU_ASSERT_STRING_EQUAL(buf, "192.0.2.7");
}

static void test_parse_format_v6(void)
{
    sn_addr a;
    char buf[SN_ADDR_STRLEN];
    check_round_trip("[::1]:80", -1, "[::1]:80");
    check_round_trip("[2001:db8::1]:443", -1, "[2001:db8::1]:443");
    check_round_trip("[::]:0", -1, "[::]:0");
    check_round_trip("::1", 9000, "[::1]:9000");
    check_round_trip("[::1]", 9000, "[::1]:9000");
    check_round_trip("[2001:DB8:0:0:0:0:0:1]:1", -1, "[2001:db8::1]:1");
    SN_ASSERT_RC(sn_addr_parse(&a, "[2001:db8::5]:8", -1), 0);
    CU_ASSERT_EQUAL(sn_addr_family(&a), SN_AF_INET6);
    CU_ASSERT_EQUAL(sn_addr_port(&a), 8);
    CU_ASSERT_EQUAL(a.len, sizeof(struct sockaddr_in6));
    SN_ASSERT_RC(sn_addr_format_ip(&a, buf, sizeof buf), 11);
    CU_ASSERT_STRING_EQUAL(buf, "2001:db8::5");
}

static void test_scoped_v6(void)
{
    sn_addr a;
    char buf[SN_ADDR_STRLEN];
    unsigned lo = if_nametoindex("lo");
    CU_ASSERT(lo > 0);
    check_round_trip("[fe80::1%lo]:80", -1, "[fe80::1%lo]:80");
    SN_ASSERT_RC(sn_addr_parse(&a, "[fe80::1%lo]:80", -1), 0);
    CU_ASSERT_EQUAL(a.u.in6.sin6_scope_id, lo);
    /* a numeric scope is an interface index */
    snprintf(buf, sizeof buf, "fe80::2%%%u", lo);
    SN_ASSERT_RC(sn_addr_from_ip(&a, buf, 1), 0);
    CU_ASSERT_EQUAL(a.u.in6.sin6_scope_id, lo);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), 14);
    CU_ASSERT_STRING_EQUAL(buf, "[fe80::2%lo]:1");
    /* an index without an interface prints as a number */
    SN_ASSERT_RC(sn_addr_parse(&a, "[fe80::3%999999]:2", -1), 0);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), 18);
    CU_ASSERT_STRING_EQUAL(buf, "[fe80::3%999999]:2");
    SN_ASSERT_RC(sn_addr_parse(&a, "[fe80::3%4294967296]:2", -1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_parse(&a, "[fe80::1%no-such-if0]:80", -1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_parse(&a, "[fe80::1%]:80", -1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_from_ip(&a, "127.0.0.1%lo", 1), SN_EBADADDR);
}

static void test_mapped_v4(void)
{
    sn_addr a, b;
    char buf[SN_ADDR_STRLEN];
    check_round_trip("[::ffff:192.0.2.1]:80", -1, "[::ffff:192.0.2.1]:80");
    SN_ASSERT_RC(sn_addr_parse(&a, "[::ffff:127.0.0.1]:1", -1), 0);
    CU_ASSERT_EQUAL(sn_addr_family(&a), SN_AF_INET6);
    CU_ASSERT_EQUAL(sn_addr_is_loopback(&a), 1);
    SN_ASSERT_RC(sn_addr_format_ip(&a, buf, sizeof buf), 16);
    CU_ASSERT_STRING_EQUAL(buf, "::ffff:127.0.0.1");
    /* the mapped form is not the same address as the IPv4 form */
    SN_ASSERT_RC(sn_addr_parse(&b, "127.0.0.1:1", -1), 0);
    CU_ASSERT_EQUAL(sn_addr_equal(&a, &b), 0);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "",
        "1.2.3.4:",
        ":80",
        ":",
        "[::1",
        "::1]:80",
        "[::1]:",
        "[::1]80",
        "[::1]:80x",
        "[]:80",
        "[1.2.3.4]:80",
        "[[::1]]:80",
        "1.2.3.4:65536",
        "1.2.3.4:99999",
        "1.2.3.4:123456",
        "1.2.3.4:-1",
        "1.2.3.4:+80",
        "1.2.3.4:8a",
        "1.2.3.4:80 ",
        " 1.2.3.4:80",
        "1.2.3.4 :80",
        "1.2.3.4: 80",
        "1.2.3.4:80:",
        "1.2.3.4:80/",
        "1.2.3.4x:80",
        "1.2.3:80",
        "1.2.3.4.5:80",
        "256.1.1.1:80",
        "01.2.3.4:80",
        "localhost:80",
        "[::g]:80",
        "[::1%lo]x",
        "[1:2:3:4:5:6:7:8:9]:80",
        "1.2.3.4\n",
        "1.2.3.4\t:80",
    };
    sn_addr a, before;
    memset(&a, 0x5a, sizeof a);
    before = a;
    for (size_t i = 0; i < SN_ARRAY_SIZE(bad); i++) {
        int rc = sn_addr_parse(&a, bad[i], -1);
        if (rc != SN_EBADADDR)
            fprintf(stderr, "parse(\"%s\") = %s\n", bad[i], sn_err_name(rc));
        CU_ASSERT_EQUAL(rc, SN_EBADADDR);
        CU_ASSERT(memcmp(&a, &before, sizeof a) == 0);
    }
    /* bare forms need a default port */
    SN_ASSERT_RC(sn_addr_parse(&a, "1.2.3.4", -1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_parse(&a, "::1", -1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_parse(&a, "[::1]", 65536), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_parse(&a, "", 80), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_parse(&a, " ", 80), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_parse(&a, "1.2.3.4 ", 80), SN_EBADADDR);
    /* a long garbage string is malformed, not a buffer problem */
    char longtext[300];
    memset(longtext, '1', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    SN_ASSERT_RC(sn_addr_parse(&a, longtext, 80), SN_EBADADDR);
    CU_ASSERT(memcmp(&a, &before, sizeof a) == 0);
    SN_ASSERT_RC(sn_addr_parse(NULL, "1.2.3.4:1", -1), SN_EINVAL);
    SN_ASSERT_RC(sn_addr_parse(&a, NULL, -1), SN_EINVAL);
}

static void test_default_ports(void)
{
    sn_addr a;
    SN_ASSERT_RC(sn_addr_parse(&a, "10.0.0.1", 0), 0);
    CU_ASSERT_EQUAL(sn_addr_port(&a), 0);
    SN_ASSERT_RC(sn_addr_parse(&a, "10.0.0.1", 65535), 0);
    CU_ASSERT_EQUAL(sn_addr_port(&a), 65535);
    /* an explicit port wins over the default */
    SN_ASSERT_RC(sn_addr_parse(&a, "10.0.0.1:7", 80), 0);
    CU_ASSERT_EQUAL(sn_addr_port(&a), 7);
    SN_ASSERT_RC(sn_addr_parse(&a, "[::1]:0", 80), 0);
    CU_ASSERT_EQUAL(sn_addr_port(&a), 0);
}

static void test_from_ip(void)
{
    sn_addr a;
    char buf[SN_ADDR_STRLEN];
    SN_ASSERT_RC(sn_addr_from_ip(&a, NULL, 5), 0);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), 9);
    CU_ASSERT_STRING_EQUAL(buf, "0.0.0.0:5");
    SN_ASSERT_RC(sn_addr_from_ip(&a, "", 6), 0);
    CU_ASSERT_EQUAL(sn_addr_family(&a), SN_AF_INET);
    SN_ASSERT_RC(sn_addr_from_ip(&a, "::", 7), 0);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), 6);
    CU_ASSERT_STRING_EQUAL(buf, "[::]:7");
    SN_ASSERT_RC(sn_addr_from_ip(&a, "::1", 65535), 0);
    SN_ASSERT_RC(sn_addr_from_ip(&a, "::1", 65536), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_from_ip(&a, "::1", -1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_from_ip(&a, "[::1]", 1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_from_ip(&a, "1.2.3.4:5", 1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_from_ip(&a, "localhost", 1), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_from_ip(NULL, "::1", 1), SN_EINVAL);
}

static void test_hostport_split(void)
{
    char host[64];
    int port = -7;
    SN_ASSERT_RC(sn_hostport_split("example.com:8080", host, sizeof host, &port, -1), 0);
    CU_ASSERT_STRING_EQUAL(host, "example.com");
    CU_ASSERT_EQUAL(port, 8080);
    SN_ASSERT_RC(sn_hostport_split("localhost", host, sizeof host, &port, 80), 0);
    CU_ASSERT_STRING_EQUAL(host, "localhost");
    CU_ASSERT_EQUAL(port, 80);
    SN_ASSERT_RC(sn_hostport_split("[::1]:443", host, sizeof host, &port, -1), 0);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(port, 443);
    SN_ASSERT_RC(sn_hostport_split("[fe80::1%eth0]", host, sizeof host, &port, 1), 0);
    CU_ASSERT_STRING_EQUAL(host, "fe80::1%eth0");
    CU_ASSERT_EQUAL(port, 1);
    SN_ASSERT_RC(sn_hostport_split("2001:db8::1", host, sizeof host, &port, 2), 0);
    CU_ASSERT_STRING_EQUAL(host, "2001:db8::1");
    CU_ASSERT_EQUAL(port, 2);
    SN_ASSERT_RC(sn_hostport_split("1.2.3.4:0", host, sizeof host, &port, -1), 0);
    CU_ASSERT_EQUAL(port, 0);
    /* malformed, and the port is required without a default */
    port = 1234;
    strcpy(host, "untouched");
    SN_ASSERT_RC(sn_hostport_split("localhost", host, sizeof host, &port, -1), SN_EBADADDR);
    SN_ASSERT_RC(sn_hostport_split("localhost", host, sizeof host, &port, 65536), SN_EBADADDR);
    SN_ASSERT_RC(sn_hostport_split("host:", host, sizeof host, &port, 80), SN_EBADADDR);
    SN_ASSERT_RC(sn_hostport_split(":80", host, sizeof host, &port, 80), SN_EBADADDR);
    SN_ASSERT_RC(sn_hostport_split("host:65536", host, sizeof host, &port, 80), SN_EBADADDR);
    SN_ASSERT_RC(sn_hostport_split("host name:1", host, sizeof host, &port, 80), SN_EBADADDR);
    SN_ASSERT_RC(sn_hostport_split("[::1", host, sizeof host, &port, 80), SN_EBADADDR);
    SN_ASSERT_RC(sn_hostport_split("::1]:80", host, sizeof host, &port, 80), SN_EBADADDR);
    SN_ASSERT_RC(sn_hostport_split("[host]:80", host, sizeof host, &port, 80), SN_EBADADDR);
    SN_ASSERT_RC(sn_hostport_split("", host, sizeof host, &port, 80), SN_EBADADDR);
    CU_ASSERT_EQUAL(port, 1234);
    CU_ASSERT_STRING_EQUAL(host, "untouched");
    /* the host must fit with its NUL */
    SN_ASSERT_RC(sn_hostport_split("abcd:1", host, 4, &port, -1), SN_ENOSPC);
    SN_ASSERT_RC(sn_hostport_split("abcd:1", host, 5, &port, -1), 0);
    CU_ASSERT_STRING_EQUAL(host, "abcd");
    SN_ASSERT_RC(sn_hostport_split("[::1]:1", host, 3, &port, -1), SN_ENOSPC);
    SN_ASSERT_RC(sn_hostport_split("[::1]:1", host, 4, &port, -1), 0);
    SN_ASSERT_RC(sn_hostport_split(NULL, host, sizeof host, &port, 80), SN_EINVAL);
    SN_ASSERT_RC(sn_hostport_split("a:1", NULL, sizeof host, &port, 80), SN_EINVAL);
    SN_ASSERT_RC(sn_hostport_split("a:1", host, sizeof host, NULL, 80), SN_EINVAL);
}

static void test_small_buffers(void)
{
    sn_addr a;
    char buf[SN_ADDR_STRLEN];
    SN_ASSERT_RC(sn_addr_parse(&a, "[2001:db8::1]:65535", -1), 0);
    /* "[2001:db8::1]:65535" is 19 characters: 20 bytes fit, 19 do not */
    SN_ASSERT_RC(sn_addr_format(&a, buf, 20), 19);
    strcpy(buf, "junk");
    SN_ASSERT_RC(sn_addr_format(&a, buf, 19), SN_ENOSPC);
    CU_ASSERT_STRING_EQUAL(buf, "");
    SN_ASSERT_RC(sn_addr_format(&a, NULL, 0), SN_ENOSPC);
    SN_ASSERT_RC(sn_addr_format_ip(&a, buf, 12), 11);
    SN_ASSERT_RC(sn_addr_format_ip(&a, buf, 11), SN_ENOSPC);
    CU_ASSERT_STRING_EQUAL(buf, "");
    /* the longest form fits SN_ADDR_STRLEN */
    SN_ASSERT_RC(
        sn_addr_parse(&a, "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535", -1),
        0);
    CU_ASSERT(sn_addr_format(&a, buf, sizeof buf) > 0);
    /* an empty address */
    memset(&a, 0, sizeof a);
    SN_ASSERT_RC(sn_addr_format(&a, buf, sizeof buf), SN_EAFNOSUPPORT);
    SN_ASSERT_RC(sn_addr_format_ip(&a, buf, sizeof buf), SN_EAFNOSUPPORT);
}

static void test_ports(void)
{
    sn_addr a, empty = {0};
    SN_ASSERT_RC(sn_addr_parse(&a, "1.2.3.4:1", -1), 0);
    SN_ASSERT_RC(sn_addr_set_port(&a, 65535), 0);
    CU_ASSERT_EQUAL(sn_addr_port(&a), 65535);
    SN_ASSERT_RC(sn_addr_set_port(&a, 65536), SN_EBADADDR);
    SN_ASSERT_RC(sn_addr_set_port(&a, -1), SN_EBADADDR);
    CU_ASSERT_EQUAL(sn_addr_port(&a), 65535);
    SN_ASSERT_RC(sn_addr_parse(&a, "[::1]:1", -1), 0);
    SN_ASSERT_RC(sn_addr_set_port(&a, 0), 0);
    CU_ASSERT_EQUAL(sn_addr_port(&a), 0);
    SN_ASSERT_RC(sn_addr_port(&empty), SN_EAFNOSUPPORT);
    SN_ASSERT_RC(sn_addr_set_port(&empty, 1), SN_EAFNOSUPPORT);
    CU_ASSERT_EQUAL(sn_addr_family(&empty), 0);
}

static void test_equal(void)
{
    sn_addr a, b;
    sn_addr_parse(&a, "10.1.2.3:80", -1);
    sn_addr_parse(&b, "10.1.2.3:80", -1);
    CU_ASSERT_EQUAL(sn_addr_equal(&a, &b), 1);
    sn_addr_set_port(&b, 81);
    CU_ASSERT_EQUAL(sn_addr_equal(&a, &b), 0);
    sn_addr_parse(&b, "10.1.2.4:80", -1);
    CU_ASSERT_EQUAL(sn_addr_equal(&a, &b), 0);
    sn_addr_parse(&a, "[fe80::1]:80", -1);
    sn_addr_parse(&b, "[fe80::1%lo]:80", -1);
    CU_ASSERT_EQUAL(sn_addr_equal(&a, &b), 0);
    sn_addr_parse(&a, "[fe80::1%lo]:80", -1);
    CU_ASSERT_EQUAL(sn_addr_equal(&a, &b), 1);
    sn_addr_parse(&a, "[::1]:80", -1);
    sn_addr_parse(&b, "127.0.0.1:80", -1);
    CU_ASSERT_EQUAL(sn_addr_equal(&a, &b), 0);
}

static void test_loopback(void)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        {"127.0.0.1:1", 1},
        {"127.255.0.9:1", 1},
        {"128.0.0.1:1", 0},
        {"0.0.0.0:1", 0},
        {"[::1]:1", 1},
        {"[::]:1", 0},
        {"[::ffff:127.1.2.3]:1", 1},
        {"[::ffff:10.0.0.1]:1", 0},
        {"[::2]:1", 0},
    };
    for (size_t i = 0; i < SN_ARRAY_SIZE(cases); i++) {
        sn_addr a;
        SN_ASSERT_RC(sn_addr_parse(&a, cases[i].text, -1), 0);
        CU_ASSERT_EQUAL(sn_addr_is_loopback(&a), cases[i].want);
    }
    sn_addr empty = {0};
    CU_ASSERT_EQUAL(sn_addr_is_loopback(&empty), 0);
}

static void test_resolve_numeric(void)
{
    sn_addr out[4];
    char buf[SN_ADDR_STRLEN];
    SN_ASSERT_RC(sn_resolve("127.0.0.1", 80, SN_AF_ANY, out, 4), 1);
    sn_addr_format(&out[0], buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "127.0.0.1:80");
    SN_ASSERT_RC(sn_resolve("::1", 81, SN_AF_ANY, out, 4), 1);
    sn_addr_format(&out[0], buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "[::1]:81");
    SN_ASSERT_RC(sn_resolve("::1", 81, SN_AF_INET6, out, 4), 1);
    /* family filters */
    CU_ASSERT(sn_resolve("::1", 81, SN_AF_INET, out, 4) < 0);
    CU_ASSERT(sn_resolve("127.0.0.1", 81, SN_AF_INET6, out, 4) < 0);
    /* wildcards for binding */
    SN_ASSERT_RC(sn_resolve(NULL, 82, SN_AF_ANY, out, 4), 1);
    sn_addr_format(&out[0], buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "0.0.0.0:82");
    SN_ASSERT_RC(sn_resolve("", 83, SN_AF_INET6, out, 4), 1);
    sn_addr_format(&out[0], buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "[::]:83");
}

static void test_resolve_names(void)
{
    sn_addr out[8];
    int n = sn_resolve("localhost", 443, SN_AF_ANY, out, SN_ARRAY_SIZE(out));
    CU_ASSERT(n >= 1);
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(sn_addr_is_loopback(&out[i]), 1);
        CU_ASSERT_EQUAL(sn_addr_port(&out[i]), 443);
    }
    n = sn_resolve("localhost", 1, SN_AF_INET, out, SN_ARRAY_SIZE(out));
    CU_ASSERT(n >= 1);
    for (int i = 0; i < n; i++)
        CU_ASSERT_EQUAL(sn_addr_family(&out[i]), SN_AF_INET);
    /* max bounds what is stored */
    SN_ASSERT_RC(sn_resolve("localhost", 1, SN_AF_ANY, out, 1), 1);
    /* RFC 6761: ".invalid" never resolves, and fails at once */
    int64_t t0 = sn_now_ms();
    SN_ASSERT_RC(sn_resolve("no-such-host.invalid", 80, SN_AF_ANY, out, 8), SN_ENONAME);
    SN_ASSERT_RC(sn_resolve("NO-SUCH-HOST.INVALID.", 80, SN_AF_ANY, out, 8), SN_ENONAME);
    SN_ASSERT_RC(sn_resolve("invalid", 80, SN_AF_ANY, out, 8), SN_ENONAME);
    CU_ASSERT(sn_now_ms() - t0 < 1000);
}

static void test_resolve_bad_arguments(void)
{
    sn_addr out[2];
    SN_ASSERT_RC(sn_resolve("127.0.0.1", 65536, SN_AF_ANY, out, 2), SN_EBADADDR);
    SN_ASSERT_RC(sn_resolve("127.0.0.1", -1, SN_AF_ANY, out, 2), SN_EBADADDR);
    SN_ASSERT_RC(sn_resolve("127.0.0.1", 1, SN_AF_ANY, out, 0), SN_EINVAL);
    SN_ASSERT_RC(sn_resolve("127.0.0.1", 1, SN_AF_ANY, NULL, 2), SN_EINVAL);
    SN_ASSERT_RC(sn_resolve("127.0.0.1", 1, 5, out, 2), SN_EINVAL);
}

static CU_TestInfo tests[] = {
    {"parse and format IPv4", test_parse_format_v4},
    {"parse and format IPv6", test_parse_format_v6},
    {"scoped IPv6", test_scoped_v6},
    {"IPv4-mapped IPv6", test_mapped_v4},
    {"malformed text is rejected, *out untouched", test_malformed},
    {"default ports", test_default_ports},
    {"from ip", test_from_ip},
    {"host:port split", test_hostport_split},
    {"small buffers", test_small_buffers},
    {"ports", test_ports},
    {"equality", test_equal},
    {"loopback", test_loopback},
    {"resolve numeric addresses and wildcards", test_resolve_numeric},
    {"resolve names", test_resolve_names},
    {"resolve bad arguments", test_resolve_bad_arguments},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return sn_test_main("addr", tests, 60);
}
