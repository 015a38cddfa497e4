/*
 * Unit tests for src/storage: the streaming multipart/form-data parser (every way a body can be
 * cut into pieces, a boundary split across them, data that looks like a boundary, malformed
 * bodies), the object key rules of bucket_key_check(), bucket names of users and orgs, and
 * the strict parsers of ranges and numbers (huge, negative, inverted, malformed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/err.h"
#include "storage/bucket.h"
#include "storage/formdata.h"
#include "storage/range.h"

#include <stdio.h>
#include <string.h>

/* What the callbacks saw, as "name|filename|data;" per part. */
struct seen {
    char out[4096];
    size_t n;
    int fail_at_data; /* return an error from part_data when set */
};

static void add(struct seen *s, const char *p, size_t n)
{
    assert_true(s->n + n < sizeof(s->out));
    memcpy(s->out + s->n, p, n);
    s->n += n;
    s->out[s->n] = '\0';
}

static int on_begin(void *ctx, const char *name, const char *filename)
{
    struct seen *s = ctx;

    add(s, name, strlen(name));
    add(s, "|", 1);
    if (filename)
        add(s, filename, strlen(filename));
    add(s, "|", 1);
    return 0;
}

static int on_data(void *ctx, const char *buf, size_t n)
{
    struct seen *s = ctx;

    if (s->fail_at_data)
        return LY_ETOOLARGE;
    add(s, buf, n);
    return 0;
}

static int on_end(void *ctx)
{
    add(ctx, ";", 1);
    return 0;
}

static const char body[] = "preamble to ignore\r\n"
                           "--XyZ\r\n"
                           "Content-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\n"
                           "Content-Type: application/octet-stream\r\n"
                           "\r\n"
                           "line one\r\n--XyQ not it\r\n--Xy\r\n\r\n-"
                           "\r\n--XyZ\r\n"
                           "Content-Disposition: form-data; name=\"key\"\r\n"
                           "\r\n"
                           "dir/k.bin\r\n"
                           "--XyZ--\r\n"
                           "epilogue";

static const char want[] = "file|a b.txt|line one\r\n--XyQ not it\r\n--Xy\r\n\r\n-;key||dir/k.bin;";

static void parse_in_pieces(size_t piece)
{
    struct formdata f;
    struct seen s = {0};
    size_t n = strlen(body);

    assert_int_equal(formdata_init(&f, "multipart/form-data; boundary=XyZ"), 0);
    f.part_begin = on_begin;
    f.part_data = on_data;
    f.part_end = on_end;
    f.ctx = &s;
    for (size_t i = 0; i < n; i += piece)
        assert_int_equal(formdata_feed(&f, body + i, i + piece > n ? n - i : piece), 0);
    assert_int_equal(formdata_finish(&f), 0);
    if (strcmp(s.out, want) != 0)
        fail_msg("pieces of %zu: got\n%s\nwant\n%s", piece, s.out, want);
}

static void test_every_piece_size(void **state)
{
    (void)state;
    for (size_t piece = 1; piece <= strlen(body); piece++)
        parse_in_pieces(piece);
}

static void test_boundary_forms(void **state)
{
    struct formdata f;

    (void)state;
    assert_int_equal(formdata_init(&f, "multipart/form-data; boundary=\"quoted b\""), 0);
    assert_int_equal(f.dlen, strlen("\r\n--quoted b"));
    assert_int_equal(formdata_init(&f, "multipart/form-data"), LY_EINVAL);
    assert_int_equal(formdata_init(&f, "application/json"), LY_EINVAL);
    assert_int_equal(formdata_init(&f, NULL), LY_EINVAL);
}

static void test_malformed_and_errors(void **state)
{
    struct formdata f;
    struct seen s = {0};
    static const char cut[] = "--B\r\nContent-Disposition: form-data; name=\"file\"; "
                              "filename=\"x\"\r\n\r\nno closing boundary";
    static const char bad_after[] = "--BXX";

    (void)state;
    formdata_init(&f, "multipart/form-data; boundary=B");
    f.part_begin = on_begin, f.part_data = on_data, f.part_end = on_end, f.ctx = &s;
    assert_int_equal(formdata_feed(&f, cut, strlen(cut)), 0);
    assert_int_equal(formdata_finish(&f), LY_EINVAL);

    formdata_init(&f, "multipart/form-data; boundary=B");
    assert_int_equal(formdata_feed(&f, bad_after, strlen(bad_after)), LY_EINVAL);

    /* A callback's error stops the parse with that error. */
    memset(&s, 0, sizeof(s));
    s.fail_at_data = 1;
    formdata_init(&f, "multipart/form-data; boundary=B");
    f.part_begin = on_begin, f.part_data = on_data, f.part_end = on_end, f.ctx = &s;
    assert_int_equal(formdata_feed(&f, cut, strlen(cut)), LY_ETOOLARGE);
}

static void test_huge_headers_refused(void **state)
{
    struct formdata f;
    static char big[FORMDATA_HDR_MAX + 64];

    (void)state;
    formdata_init(&f, "multipart/form-data; boundary=B");
    memcpy(big, "--B\r\n", 5);
    memset(big + 5, 'h', sizeof(big) - 5);
    assert_int_equal(formdata_feed(&f, big, sizeof(big)), LY_EINVAL);
}

static void key_ok(const char *k)
{
    const char *why;

    if (bucket_key_check(k, strlen(k), &why) != 0)
        fail_msg("'%s' refused: %s", k, why);
}

static void key_bad(const char *k, size_t n)
{
    const char *why = NULL;

    assert_int_equal(bucket_key_check(k, n, &why), LY_EINVAL);
    assert_non_null(why);
}

static void test_keys(void **state)
{
    char long_key[1100];

    (void)state;
    key_ok("a");
    key_ok("dir/sub/file.txt");
    key_ok("with space+plus&amp;.txt");
    key_ok("..a/b..c/...");
    key_ok("\xe2\x98\x83/snow");
    key_bad("", 0);
    key_bad("/abs", 4);
    key_bad("dir/", 4);
    key_bad("a//b", 4);
    key_bad("..", 2);
    key_bad("a/../b", 6);
    key_bad("a/./b", 5);
    key_bad("./a", 3);
    key_bad("a/..", 4);
    key_bad("a\0b", 3);
    key_bad("a%00b", 5);
    key_bad("d\x90r", 3);       /* a stray continuation byte */
    key_bad("\xc0\xaf", 2);     /* an overlong '/' */
    key_bad("\xed\xa0\x80", 3); /* a surrogate */
    key_bad("\xe2\x98", 2);     /* cut short */
    memset(long_key, 'k', sizeof(long_key));
    key_bad(long_key, 1025);
    key_bad(long_key, 256); /* one segment over a file name's limit */
    long_key[255] = long_key[511] = long_key[767] = long_key[1000] = '/';
    long_key[1024] = '\0';
    key_ok(long_key);
}

static void test_bucket_names(void **state)
{
    char name[48], uid[40];

    (void)state;
    bucket_name("0b7c9b9e-2f7a-4b43-a7b5-3f1c1f6f0e11", name);
    assert_string_equal(name, "u-0b7c9b9e-2f7a-4b43-a7b5-3f1c1f6f0e11");
    assert_int_equal(bucket_owner_of(name, uid), 0);
    assert_string_equal(uid, "0b7c9b9e-2f7a-4b43-a7b5-3f1c1f6f0e11");
    assert_int_equal(bucket_owner_of("u-../../etc", uid), LY_ENOTFOUND);
    assert_int_equal(bucket_owner_of("mybucket", uid), LY_ENOTFOUND);
    /* an organization's bucket: its owner id is its name */
    bucket_owner("0b7c9b9e-2f7a-4b43-a7b5-3f1c1f6f0e11", "5d0e6f2a-1c3b-4d5e-8f90-a1b2c3d4e5f6", 1,
                 uid);
    assert_string_equal(uid, "o-5d0e6f2a-1c3b-4d5e-8f90-a1b2c3d4e5f6");
    bucket_name(uid, name);
    assert_string_equal(name, "o-5d0e6f2a-1c3b-4d5e-8f90-a1b2c3d4e5f6");
    assert_int_equal(bucket_owner_of(name, uid), 0);
    assert_string_equal(uid, "o-5d0e6f2a-1c3b-4d5e-8f90-a1b2c3d4e5f6");
    bucket_owner("0b7c9b9e-2f7a-4b43-a7b5-3f1c1f6f0e11", "5d0e6f2a-1c3b-4d5e-8f90-a1b2c3d4e5f6", 0,
                 uid);
    assert_string_equal(uid, "0b7c9b9e-2f7a-4b43-a7b5-3f1c1f6f0e11");
    assert_int_equal(bucket_owner_of("o-", uid), LY_ENOTFOUND);
    assert_int_equal(bucket_owner_of("o-../x", uid), LY_ENOTFOUND);
    assert_int_equal(bucket_owner_of("x-0b7c9b9e", uid), LY_ENOTFOUND);
}

static void get_ok(const char *h, uint64_t size, uint64_t off, uint64_t len)
{
    uint64_t o = 99, n = 99;

    assert_int_equal(range_parse_get(h, size, &o, &n), RANGE_OK);
    assert_true(o == off && n == len);
}

static void get_bad(const char *h, uint64_t size)
{
    uint64_t o = 99, n = 99;

    assert_int_equal(range_parse_get(h, size, &o, &n), RANGE_BAD);
    assert_true(o == 99 && n == 99); /* nothing written */
}

static void test_get_ranges(void **state)
{
    uint64_t o, n;

    (void)state;
    get_ok("bytes=0-4", 11, 0, 5);
    get_ok("bytes=6-", 11, 6, 5);
    get_ok("bytes=-3", 11, 8, 3);
    get_ok("bytes=-50", 11, 0, 11);
    get_ok("bytes=5-100", 11, 5, 6);
    get_ok("bytes=10-10", 11, 10, 1);
    get_ok("bytes=0-18446744073709551615", 11, 0, 11); /* 2^64 - 1 still fits */
    assert_int_equal(range_parse_get(NULL, 11, &o, &n), RANGE_NONE);
    assert_int_equal(range_parse_get("items=0-1", 11, &o, &n), RANGE_NONE);
    assert_int_equal(range_parse_get("bytes=0-1,3-4", 11, &o, &n), RANGE_NONE);
    get_bad("bytes=5-3", 11); /* inverted */
    get_bad("bytes=11-", 11);
    get_bad("bytes=11-20", 11);
    get_bad("bytes=9223372036854775808-", 11);  /* 2^63 */
    get_bad("bytes=18446744073709551615-", 11); /* 2^64 - 1 */
    get_bad("bytes=18446744073709551617-", 11); /* 2^64 + 1 */
    get_bad("bytes=0-18446744073709551617", 11);
    get_bad("bytes=-18446744073709551617", 11);
    get_bad("bytes=99999999999999999999999999-", 11);
    get_bad("bytes=-0", 11);
    get_bad("bytes=--5", 11);
    get_bad("bytes=1--5", 11); /* a negative end */
    get_bad("bytes=+1-2", 11);
    get_bad("bytes= 1-2", 11);
    get_bad("bytes=1-2 ", 11);
    get_bad("bytes=-", 11);
    get_bad("bytes=", 11);
    get_bad("bytes=a-b", 11);
    get_bad("bytes=1-2-3", 11);
    get_bad("bytes=0-", 0);
    get_bad("bytes=-1", 0);
}

static void test_copy_ranges(void **state)
{
    int64_t off = 99, len = 99;

    (void)state;
    assert_int_equal(range_parse_copy("bytes=0-9", &off, &len), RANGE_OK);
    assert_true(off == 0 && len == 10);
    assert_int_equal(range_parse_copy("bytes=5-5", &off, &len), RANGE_OK);
    assert_true(off == 5 && len == 1);
    assert_int_equal(range_parse_copy("bytes=0-9223372036854775806", &off, &len), RANGE_OK);
    assert_true(off == 0 && len == INT64_MAX);
    static const char *const bad[] = {
        "bytes=5-4",
        "bytes=9223372036854775807-9223372036854775807",
        "bytes=0-9223372036854775807",
        "bytes=0-18446744073709551617",
        "bytes=18446744073709551617-18446744073709551618",
        "bytes=-5",
        "bytes=5-",
        "bytes=-5-3",
        "bytes=0--1",
        "bytes=0-1,2-3",
        "0-9",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(range_parse_copy(bad[i], &off, &len), RANGE_BAD);
    assert_int_equal(range_parse_copy(NULL, &off, &len), RANGE_BAD);
}

static void test_numbers(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(range_u64("10000", 10000, &v), 0);
    assert_true(v == 10000);
    assert_int_equal(range_u64("0", 10000, &v), 0);
    assert_int_equal(range_u64("10001", 10000, &v), -1);
    assert_int_equal(range_u64("", 10000, &v), -1);
    assert_int_equal(range_u64("-1", 10000, &v), -1);
    assert_int_equal(range_u64("+1", 10000, &v), -1);
    assert_int_equal(range_u64(" 1", 10000, &v), -1);
    assert_int_equal(range_u64("1x", 10000, &v), -1);
    assert_int_equal(range_u64("18446744073709551615", UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(range_u64("18446744073709551616", UINT64_MAX, &v), -1);
    assert_int_equal(range_u64("18446744073709551617", UINT64_MAX, &v), -1);
    assert_int_equal(range_u64("9223372036854775807", INT64_MAX, &v), 0);
    assert_int_equal(range_u64("9223372036854775808", INT64_MAX, &v), -1);
    assert_int_equal(range_hex("7fffffffffffffff", 16, INT64_MAX, &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(range_hex("8000000000000000", 16, INT64_MAX, &v), -1);
    assert_int_equal(range_hex("10000000000000000", 17, UINT64_MAX, &v), -1);
    assert_int_equal(range_hex("1a;chunk-signature=x", 2, INT64_MAX, &v), 0);
    assert_true(v == 26);
    assert_int_equal(range_hex("-1", 2, INT64_MAX, &v), -1);
    assert_int_equal(range_hex("", 0, INT64_MAX, &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_piece_size),
        cmocka_unit_test(test_boundary_forms),
        cmocka_unit_test(test_malformed_and_errors),
        cmocka_unit_test(test_huge_headers_refused),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_bucket_names),
        cmocka_unit_test(test_get_ranges),
        cmocka_unit_test(test_copy_ranges),
        cmocka_unit_test(test_numbers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
