/*
 * Unit tests for src/core/util.c: exact decimal money (micro_parse / micro_format), ISO-8601
 * times, random identifiers and hashing. Money and times are compared with exact values worked
 * out by hand, so a change in rounding or in what is accepted shows here first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static void expect_micro(const char *s, int64_t want)
{
    int64_t got = 12345;

    if (micro_parse(s, &got) != 0)
        fail_msg("micro_parse(\"%s\") refused, want %lld", s, (long long)want);
    if (got != want)
        fail_msg("micro_parse(\"%s\") = %lld, want %lld", s, (long long)got, (long long)want);
}

static void refuse_micro(const char *s)
{
    int64_t got = 12345;

    if (micro_parse(s, &got) != LY_EINVAL)
        fail_msg("micro_parse(\"%s\") accepted (%lld)", s, (long long)got);
    assert_int_equal(got, 12345); /* untouched on error */
}

static void test_micro_parse_exact(void **state)
{
    (void)state;
    expect_micro("0", 0);
    expect_micro("12.5", 12500000);
    expect_micro("12.50", 12500000);
    expect_micro("100", 100000000);
    expect_micro("0.000001", 1);
    expect_micro("0.000417", 417);
    expect_micro("1.234567", 1234567);
    expect_micro("+3", 3000000);
    expect_micro("007.1", 7100000);
    /* 0.1 is not representable in binary floating point; here it must be exact. */
    expect_micro("0.1", 100000);
    expect_micro("0.3", 300000);
}

static void test_micro_parse_negative(void **state)
{
    (void)state;
    expect_micro("-0.000001", -1);
    expect_micro("-12.34", -12340000);
    expect_micro("-0", 0);
    expect_micro("-100", -100000000);
}

static void test_micro_parse_refuses(void **state)
{
    (void)state;
    refuse_micro("");
    refuse_micro("-");
    refuse_micro("+");
    refuse_micro(".");
    refuse_micro("abc");
    refuse_micro("1e3");
    refuse_micro(" 1");
    refuse_micro("1 ");
    refuse_micro("1.2.3");
    refuse_micro("--1");
    refuse_micro("1,5");
    refuse_micro("0x10");
    /* More than six decimal places is refused, not rounded, even when the extra are zeros. */
    refuse_micro("1.1234567");
    refuse_micro("0.0000001");
    refuse_micro("1.0000000");
    refuse_micro("-0.0000001");
}

static void test_micro_parse_overflow(void **state)
{
    (void)state;
    /* The largest whole part accepted keeps whole * 10^6 + 999999 inside int64_t. */
    expect_micro("9223372036849.999999", 9223372036849999999LL);
    expect_micro("-9223372036849.999999", -9223372036849999999LL);
    refuse_micro("9223372036855");
    refuse_micro("92233720368547");
    refuse_micro("9223372036854775807");
    refuse_micro("99999999999999999999999999999");
    refuse_micro("-99999999999999999999999999999");
}

static void expect_format(int64_t micro, const char *want)
{
    char buf[32];

    micro_format(micro, buf, sizeof(buf));
    if (strcmp(buf, want) != 0)
        fail_msg("micro_format(%lld) = \"%s\", want \"%s\"", (long long)micro, buf, want);
}

static void test_micro_format(void **state)
{
    (void)state;
    expect_format(0, "0.00");
    expect_format(12500000, "12.50");
    expect_format(1000000, "1.00");
    expect_format(1100000, "1.10");
    expect_format(1010000, "1.01");
    expect_format(1001000, "1.001");
    expect_format(1234567, "1.234567");
    expect_format(417, "0.000417");
    expect_format(1, "0.000001");
    expect_format(-1, "-0.000001");
    expect_format(-12340000, "-12.34");
    expect_format(-500000, "-0.50");
    expect_format(INT64_MAX, "9223372036854.775807");
    expect_format(INT64_MIN, "-9223372036854.775808");
}

static void test_micro_round_trip(void **state)
{
    static const int64_t fixed[] = {
        0,
        1,
        -1,
        10,
        999999,
        1000000,
        1000001,
        -1000001,
        12345678901,
        -98765432101234,
        9223372036849999999LL,
        -9223372036849999999LL,
    };
    char buf[32];
    int64_t back;

    (void)state;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        micro_format(fixed[i], buf, sizeof(buf));
        assert_int_equal(micro_parse(buf, &back), 0);
        assert_int_equal(back, fixed[i]);
    }
    for (int i = 0; i < 2000; i++) {
        int64_t v;

        random_bytes(&v, sizeof(v));
        v %= 9223372036849999999LL;
        micro_format(v, buf, sizeof(buf));
        if (micro_parse(buf, &back) || back != v)
            fail_msg("round trip of %lld through \"%s\" failed", (long long)v, buf);
    }
}

static void expect_time(const char *s, int64_t want)
{
    int64_t got = -1;

    if (time_parse_iso(s, &got) != 0)
        fail_msg("time_parse_iso(\"%s\") refused, want %lld", s, (long long)want);
    if (got != want)
        fail_msg("time_parse_iso(\"%s\") = %lld, want %lld", s, (long long)got, (long long)want);
}

static void refuse_time(const char *s)
{
    int64_t got = -1;

    if (time_parse_iso(s, &got) != LY_EINVAL)
        fail_msg("time_parse_iso(\"%s\") accepted (%lld)", s, (long long)got);
}

/* 2024-01-02T03:04:05Z: 1704067200 (2024-01-01) + 86400 + 3 * 3600 + 4 * 60 + 5. */
#define T_2024_01_02_030405 1704164645LL

static void test_time_parse_forms(void **state)
{
    (void)state;
    expect_time("2024-01-02T03:04:05Z", T_2024_01_02_030405);
    expect_time("2024-01-02T03:04:05z", T_2024_01_02_030405);
    expect_time("2024-01-02T03:04:05+00:00", T_2024_01_02_030405);
    expect_time("2024-01-02T03:04:05-00:00", T_2024_01_02_030405);
    expect_time("2024-01-02T03:04:05+0000", T_2024_01_02_030405);
    /* Naive times are UTC. */
    expect_time("2024-01-02T03:04:05", T_2024_01_02_030405);
    expect_time("2024-01-02 03:04:05", T_2024_01_02_030405);
    /* Fractions are accepted and dropped (the result is in whole seconds). */
    expect_time("2024-01-02T03:04:05.123456Z", T_2024_01_02_030405);
    expect_time("2024-01-02T03:04:05.9+00:00", T_2024_01_02_030405);
    expect_time("2024-01-02T03:04:05.123456789", T_2024_01_02_030405);
    /* Offsets: local time minus the offset. */
    expect_time("2024-01-02T05:04:05+02:00", T_2024_01_02_030405);
    expect_time("2024-01-01T21:34:05-05:30", T_2024_01_02_030405);
    /* No seconds, and a date alone (midnight UTC). */
    expect_time("2024-01-02T03:04", T_2024_01_02_030405 - 5);
    expect_time("2024-01-02", 1704153600);
    expect_time("1970-01-01T00:00:00Z", 0);
    expect_time("2024-02-29T00:00:00Z", 1709164800); /* a leap day */
}

static void test_time_parse_refuses(void **state)
{
    (void)state;
    refuse_time("");
    refuse_time("2024");
    refuse_time("2024-01");
    refuse_time("2024-1-02");
    refuse_time("24-01-02");
    refuse_time("abcd-ef-gh");
    refuse_time("2024-13-01");
    refuse_time("2024-00-10");
    refuse_time("2024-01-00");
    refuse_time("2024-01-32");
    refuse_time("2023-02-29"); /* not a leap year */
    refuse_time("2024-02-30");
    refuse_time("2024-04-31");
    refuse_time("2024-01-02T");
    refuse_time("2024-01-02T3:04:05");
    refuse_time("2024-01-02T24:00:00");
    refuse_time("2024-01-02T03:60:00");
    refuse_time("2024-01-02T03:04:5");
    refuse_time("2024-01-02T03:04:05.");
    refuse_time("2024-01-02T03:04:05.Z");
    refuse_time("2024-01-02T03:04:05+24:00");
    refuse_time("2024-01-02T03:04:05+02:60");
    refuse_time("2024-01-02T03:04:05+2:00");
    refuse_time("2024-01-02T03:04:05+0a:00");
    refuse_time("2024-01-02T03:04:05ZZ");
    refuse_time("2024-01-02T03:04:05 Z");
    refuse_time("2024-01-02T03:04:05 trailing");
    refuse_time(" 2024-01-02");
    refuse_time("1969-12-31T23:59:59Z");
}

static void test_time_iso(void **state)
{
    char buf[40];
    int64_t back;

    (void)state;
    time_iso(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000000+00:00");
    time_iso(T_2024_01_02_030405 * 1000000 + 123456, buf, sizeof(buf));
    assert_string_equal(buf, "2024-01-02T03:04:05.123456+00:00");
    time_iso(T_2024_01_02_030405 * 1000000 + 7, buf, sizeof(buf));
    assert_string_equal(buf, "2024-01-02T03:04:05.000007+00:00");
    /* What we emit, we accept. */
    assert_int_equal(time_parse_iso(buf, &back), 0);
    assert_int_equal(back, T_2024_01_02_030405);
}

static int is_base62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void test_random_base62(void **state)
{
    char a[65], b[65];
    int seen_digit = 0, seen_lower = 0, seen_upper = 0;

    (void)state;
    memset(a, 'x', sizeof(a));
    random_base62(a, 0);
    assert_string_equal(a, "");
    memset(a, '!', sizeof(a));
    random_base62(a, 40);
    assert_int_equal(strlen(a), 40);
    assert_int_equal(a[41], '!'); /* nothing written past the NUL */
    for (int i = 0; i < 40; i++)
        assert_true(is_base62(a[i]));
    random_base62(b, 40);
    assert_string_not_equal(a, b);
    /* Over many characters every class of the alphabet turns up. */
    for (int round = 0; round < 20; round++) {
        random_base62(a, 64);
        for (int i = 0; i < 64; i++) {
            assert_true(is_base62(a[i]));
            seen_digit |= isdigit((unsigned char)a[i]) != 0;
            seen_lower |= islower((unsigned char)a[i]) != 0;
            seen_upper |= isupper((unsigned char)a[i]) != 0;
        }
    }
    assert_true(seen_digit && seen_lower && seen_upper);
}

static void test_uuid_v4(void **state)
{
    char a[37], b[37];

    (void)state;
    for (int round = 0; round < 100; round++) {
        uuid_v4(a);
        assert_int_equal(strlen(a), 36);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23)
                assert_int_equal(a[i], '-');
            else
                assert_non_null(strchr("0123456789abcdef", a[i]));
        }
        assert_int_equal(a[14], '4');                /* version 4 */
        assert_non_null(strchr("89ab", a[19]));      /* RFC 4122 variant */
        assert_true(a[19] != '\0' && a[14] != '\0'); /* strchr matches the NUL too */
    }
    uuid_v4(b);
    assert_string_not_equal(a, b);
}

static void test_sha256_hex(void **state)
{
    char out[65];
    unsigned char bytes[] = {0x00, 0x0f, 0xa5, 0xff};

    (void)state;
    sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_encode(bytes, sizeof(bytes), out);
    assert_string_equal(out, "000fa5ff");
}

static void test_ct_equal(void **state)
{
    (void)state;
    assert_true(ct_equal("abcdef", "abcdef", 6));
    assert_false(ct_equal("abcdef", "abcdeg", 6));
    assert_false(ct_equal("xbcdef", "abcdef", 6));
    assert_true(ct_equal("abc", "abd", 2));
    assert_true(ct_equal("", "", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_micro_parse_exact),
        cmocka_unit_test(test_micro_parse_negative),
        cmocka_unit_test(test_micro_parse_refuses),
        cmocka_unit_test(test_micro_parse_overflow),
        cmocka_unit_test(test_micro_format),
        cmocka_unit_test(test_micro_round_trip),
        cmocka_unit_test(test_time_parse_forms),
        cmocka_unit_test(test_time_parse_refuses),
        cmocka_unit_test(test_time_iso),
        cmocka_unit_test(test_random_base62),
        cmocka_unit_test(test_uuid_v4),
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_ct_equal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
