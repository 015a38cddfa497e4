/*
 * Unit tests for src/api/console.c's header reading: which Accept-Encoding headers get the
 * gzipped bytes, and which If-None-Match headers name a file's ETag (a 304).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api/console.h"

#include <string.h>

static void test_gzip_is_taken_when_listed_without_q0(void **state)
{
    (void)state;
    assert_true(console_accepts_gzip("gzip"));
    assert_true(console_accepts_gzip("gzip, deflate, br"));
    assert_true(console_accepts_gzip("br, GZIP"));
    assert_true(console_accepts_gzip("deflate,gzip;q=0.5"));
    assert_true(console_accepts_gzip("gzip; q=1.0"));
    assert_false(console_accepts_gzip(NULL));
    assert_false(console_accepts_gzip(""));
    assert_false(console_accepts_gzip("identity"));
    assert_false(console_accepts_gzip("br, deflate"));
    assert_false(console_accepts_gzip("gzip;q=0"));
    assert_false(console_accepts_gzip("gzip; q=0.000, br"));
    assert_false(console_accepts_gzip("x-gzip-not"));
    assert_false(console_accepts_gzip("gzipped"));
}

static void test_if_none_match(void **state)
{
    const char *tag = "\"0123abcd\"";

    (void)state;
    assert_true(console_etag_matches("\"0123abcd\"", tag));
    assert_true(console_etag_matches("W/\"0123abcd\"", tag));
    assert_true(console_etag_matches("\"x\", \"0123abcd\"", tag));
    assert_true(console_etag_matches("\"0123abcd\",\"y\"", tag));
    assert_true(console_etag_matches("*", tag));
    assert_false(console_etag_matches(NULL, tag));
    assert_false(console_etag_matches("", tag));
    assert_false(console_etag_matches("\"0123abcde\"", tag));
    assert_false(console_etag_matches("\"x0123abcd\"", tag));
    assert_false(console_etag_matches("\"0123abcd\"x", tag));
    assert_false(console_etag_matches("X/\"0123abcd\"", tag));
}

/* Every embedded file is findable, has a type and a smaller-or-equal gzip with its own tag;
 * index.html is there (the build refuses a console without it). */
static void test_the_embedded_files(void **state)
{
    int n = 0;

    (void)state;
    assert_non_null(console_find("index.html"));
    assert_null(console_find("nothing.js"));
    assert_null(console_find(""));
    for (const struct console_file *f = console_files; f->path; f++, n++) {
        assert_ptr_equal(console_find(f->path), f);
        assert_non_null(f->type);
        assert_true(f->len > 0 && f->gz_len > 0);
        assert_string_not_equal(f->etag, f->gz_etag);
        assert_true(f->etag[0] == '"' && f->etag[strlen(f->etag) - 1] == '"');
    }
    assert_true(n >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gzip_is_taken_when_listed_without_q0),
        cmocka_unit_test(test_if_none_match),
        cmocka_unit_test(test_the_embedded_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
