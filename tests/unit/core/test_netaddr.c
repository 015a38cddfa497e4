/*
 * Unit tests for src/core/netaddr.c: the kind of every special-purpose range a callback must
 * not reach, at its first and last address and just outside, in every IPv6 spelling that
 * carries an IPv4 address; CIDR parsing and matching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/netaddr.h"

#include <stdio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static void expect_kind(const char *s, enum addr_kind want)
{
    struct ipaddr a;
    enum addr_kind got;

    if (ipaddr_parse(s, &a))
        fail_msg("ipaddr_parse(\"%s\") refused", s);
    got = ipaddr_kind(&a);
    if (got != want)
        fail_msg("%s: kind %s, want %s", s, addr_kind_name(got), addr_kind_name(want));
}

static void test_v4_ranges(void **state)
{
    (void)state;
    expect_kind("127.0.0.1", ADDR_LOOPBACK);
    expect_kind("127.0.0.0", ADDR_LOOPBACK);
    expect_kind("127.255.255.255", ADDR_LOOPBACK);
    expect_kind("126.255.255.255", ADDR_PUBLIC);
    expect_kind("128.0.0.0", ADDR_PUBLIC);

    expect_kind("10.0.0.0", ADDR_PRIVATE);
    expect_kind("10.255.255.255", ADDR_PRIVATE);
    expect_kind("9.255.255.255", ADDR_PUBLIC);
    expect_kind("11.0.0.0", ADDR_PUBLIC);

    expect_kind("172.16.0.0", ADDR_PRIVATE);
    expect_kind("172.31.255.255", ADDR_PRIVATE);
    expect_kind("172.15.255.255", ADDR_PUBLIC);
    expect_kind("172.32.0.0", ADDR_PUBLIC);

    expect_kind("192.168.0.0", ADDR_PRIVATE);
    expect_kind("192.168.255.255", ADDR_PRIVATE);
    expect_kind("192.167.255.255", ADDR_PUBLIC);
    expect_kind("192.169.0.0", ADDR_PUBLIC);

    expect_kind("100.64.0.0", ADDR_CGNAT);
    expect_kind("100.127.255.255", ADDR_CGNAT);
    expect_kind("100.100.100.200", ADDR_CGNAT); /* a cloud's metadata address */
    expect_kind("100.63.255.255", ADDR_PUBLIC);
    expect_kind("100.128.0.0", ADDR_PUBLIC);

    expect_kind("169.254.169.254", ADDR_LINK_LOCAL); /* the cloud metadata address */
    expect_kind("169.254.0.0", ADDR_LINK_LOCAL);
    expect_kind("169.254.255.255", ADDR_LINK_LOCAL);
    expect_kind("169.253.255.255", ADDR_PUBLIC);
    expect_kind("169.255.0.0", ADDR_PUBLIC);

    expect_kind("0.0.0.0", ADDR_UNSPECIFIED);
    expect_kind("0.255.255.255", ADDR_UNSPECIFIED);
    expect_kind("1.0.0.0", ADDR_PUBLIC);

    expect_kind("224.0.0.0", ADDR_MULTICAST);
    expect_kind("239.255.255.255", ADDR_MULTICAST);
    expect_kind("223.255.255.255", ADDR_PUBLIC);
    expect_kind("240.0.0.0", ADDR_RESERVED);
    expect_kind("255.255.255.255", ADDR_RESERVED);

    expect_kind("192.0.2.1", ADDR_RESERVED);
    expect_kind("198.18.0.1", ADDR_RESERVED);
    expect_kind("198.19.255.255", ADDR_RESERVED);
    expect_kind("198.20.0.0", ADDR_PUBLIC);
    expect_kind("203.0.113.7", ADDR_RESERVED);
    expect_kind("8.8.8.8", ADDR_PUBLIC);
    expect_kind("1.1.1.1", ADDR_PUBLIC);
}

static void test_v6_ranges(void **state)
{
    (void)state;
    expect_kind("::1", ADDR_LOOPBACK);
    expect_kind("[::1]", ADDR_LOOPBACK);
    expect_kind("::", ADDR_UNSPECIFIED);
    expect_kind("fe80::1", ADDR_LINK_LOCAL);
    expect_kind("febf:ffff::1", ADDR_LINK_LOCAL);
    expect_kind("fec0::1", ADDR_PRIVATE);
    expect_kind("fe7f:ffff::1", ADDR_PUBLIC);
    expect_kind("fc00::", ADDR_PRIVATE);
    expect_kind("fd00:ec2::254", ADDR_PRIVATE); /* a cloud's IPv6 metadata address */
    expect_kind("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PRIVATE);
    expect_kind("fbff:ffff::1", ADDR_PUBLIC);
    expect_kind("ff02::1", ADDR_MULTICAST);
    expect_kind("ff00::", ADDR_MULTICAST);
    expect_kind("2001:db8::1", ADDR_RESERVED);
    expect_kind("2001:4860:4860::8888", ADDR_PUBLIC);
    expect_kind("2606:4700:4700::1111", ADDR_PUBLIC);
    expect_kind("100::1", ADDR_RESERVED);
    expect_kind("64:ff9b:1::1", ADDR_PRIVATE);
}

/* Every spelling of an IPv6 address that reaches an IPv4 one is of that one's kind. */
static void test_v6_carrying_v4(void **state)
{
    (void)state;
    expect_kind("::ffff:127.0.0.1", ADDR_LOOPBACK);
    expect_kind("::ffff:7f00:1", ADDR_LOOPBACK);
    expect_kind("[::ffff:127.0.0.1]", ADDR_LOOPBACK);
    expect_kind("::ffff:169.254.169.254", ADDR_LINK_LOCAL);
    expect_kind("::ffff:10.1.2.3", ADDR_PRIVATE);
    expect_kind("::ffff:192.168.1.1", ADDR_PRIVATE);
    expect_kind("::ffff:100.64.0.1", ADDR_CGNAT);
    expect_kind("::ffff:0.0.0.0", ADDR_UNSPECIFIED);
    expect_kind("::ffff:224.0.0.1", ADDR_MULTICAST);
    expect_kind("::ffff:8.8.8.8", ADDR_PUBLIC);
    expect_kind("::ffff:0:127.0.0.1", ADDR_LOOPBACK); /* SIIT */
    expect_kind("::127.0.0.1", ADDR_LOOPBACK);        /* compatible (deprecated) */
    expect_kind("::10.0.0.1", ADDR_PRIVATE);
    expect_kind("64:ff9b::127.0.0.1", ADDR_LOOPBACK); /* NAT64 */
    expect_kind("64:ff9b::a9fe:a9fe", ADDR_LINK_LOCAL);
    expect_kind("64:ff9b::8.8.8.8", ADDR_PUBLIC);
    expect_kind("2002:7f00:1::", ADDR_LOOPBACK); /* 6to4 of 127.0.0.1 */
    expect_kind("2002:c0a8:101::1", ADDR_PRIVATE);
    expect_kind("2002:808:808::1", ADDR_PUBLIC);
}

static void test_parse_refuses(void **state)
{
    static const char *bad[] = {"",
                                "localhost",
                                "127.1",
                                "0x7f000001",
                                "2130706433",
                                "127.0.0.1.",
                                "::1%lo",
                                "fe80::1%eth0",
                                "[127.0.0.1",
                                "1.2.3.4/32",
                                "::g",
                                "[]",
                                "12345678901234567890123456789012345"
                                "678901234567890123456789012345"};
    struct ipaddr a;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ipaddr_parse(bad[i], &a) == 0)
            fail_msg("ipaddr_parse(\"%s\") accepted", bad[i]);
}

static void test_sockaddr_and_format(void **state)
{
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct ipaddr a;
    char text[64];

    (void)state;
    s4.sin_addr.s_addr = htonl(0xa9fea9fe);
    assert_int_equal(ipaddr_from_sockaddr((struct sockaddr *)&s4, sizeof(s4), &a), 0);
    assert_int_equal(ipaddr_kind(&a), ADDR_LINK_LOCAL);
    ipaddr_format(&a, text, sizeof(text));
    assert_string_equal(text, "169.254.169.254");
    assert_int_equal(ipaddr_from_sockaddr((struct sockaddr *)&s4, sizeof(s4) - 1, &a), -1);

    s6.sin6_addr.s6_addr[10] = s6.sin6_addr.s6_addr[11] = 0xff;
    s6.sin6_addr.s6_addr[12] = 127;
    s6.sin6_addr.s6_addr[15] = 1;
    assert_int_equal(ipaddr_from_sockaddr((struct sockaddr *)&s6, sizeof(s6), &a), 0);
    assert_int_equal(ipaddr_kind(&a), ADDR_LOOPBACK);
    ipaddr_format(&a, text, sizeof(text));
    assert_string_equal(text, "::ffff:127.0.0.1");
    ipaddr_unmap(&a);
    assert_int_equal(a.family, AF_INET);
    ipaddr_format(&a, text, sizeof(text));
    assert_string_equal(text, "127.0.0.1");
}

static int in(const char *range, const char *addr)
{
    struct cidr c;
    struct ipaddr a;

    if (cidr_parse(range, &c))
        fail_msg("cidr_parse(\"%s\") refused", range);
    if (ipaddr_parse(addr, &a))
        fail_msg("ipaddr_parse(\"%s\") refused", addr);
    return cidr_contains(&c, &a);
}

static void test_cidr(void **state)
{
    struct cidr c;
    static const char *bad[] = {"10.0.0.1/8",  "10.0.0.0/33", "::1/129",   "10.0.0.0/",
                                "10.0.0.0/-1", "10.0.0.0/8x", "localhost", "[::1]/128",
                                "/8",          "10.0.0.0/+8"};

    (void)state;
    assert_true(in("127.0.0.1/32", "127.0.0.1"));
    assert_false(in("127.0.0.1/32", "127.0.0.2"));
    assert_true(in("127.0.0.1", "127.0.0.1"));
    assert_true(in("127.0.0.1/32", "::ffff:127.0.0.1")); /* the mapped spelling matches */
    assert_true(in("::ffff:127.0.0.0/104", "127.9.9.9"));
    assert_true(in("10.0.0.0/8", "10.255.255.255"));
    assert_false(in("10.0.0.0/8", "11.0.0.0"));
    assert_true(in("172.16.0.0/12", "172.31.0.1"));
    assert_false(in("172.16.0.0/12", "172.32.0.1"));
    assert_true(in("0.0.0.0/0", "8.8.8.8"));
    assert_false(in("0.0.0.0/0", "2001:4860::1"));
    assert_true(in("::/0", "2001:4860::1"));
    assert_true(in("fd00::/8", "fd12::1"));
    assert_false(in("fd00::/8", "fe80::1"));
    assert_true(in("::1", "::1"));
    assert_false(in("::1/128", "127.0.0.1"));
    assert_true(in("192.168.1.0/25", "192.168.1.127"));
    assert_false(in("192.168.1.0/25", "192.168.1.128"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cidr_parse(bad[i], &c) == 0)
            fail_msg("cidr_parse(\"%s\") accepted", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4_ranges),           cmocka_unit_test(test_v6_ranges),
        cmocka_unit_test(test_v6_carrying_v4),      cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_sockaddr_and_format), cmocka_unit_test(test_cidr),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
