/*
 * Unit tests for src/core/buf.c: appends grow the buffer up to its cap and no further; one that
 * would pass the cap fails whole and leaves what was there; the bytes stay NUL-terminated,
 * binary data included; take hands them over and leaves an empty buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

static void test_grows_and_terminates(void **state)
{
    struct buf b = BUF_INIT(1 << 20);

    (void)state;
    assert_null(b.p);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_printf(&b, "%03d,", i), 0);
    assert_int_equal(b.len, 4000);
    assert_int_equal(b.p[b.len], '\0');
    assert_memory_equal(b.p, "000,001,", 8);
    assert_memory_equal(b.p + 3996, "999,", 4);
    assert_true(b.room <= (1 << 20) + 1);
    buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void test_cap_refuses_whole(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 10);
    assert_int_equal(buf_adds(&b, "12345678"), 0);
    assert_int_equal(buf_adds(&b, "abc"), LY_ETOOLARGE);
    assert_string_equal(b.p, "12345678");
    assert_int_equal(buf_printf(&b, "%d", 123), LY_ETOOLARGE);
    assert_int_equal(b.len, 8);
    assert_int_equal(buf_adds(&b, "90"), 0); /* exactly the cap */
    assert_string_equal(b.p, "1234567890");
    assert_int_equal(buf_add(&b, "x", 1), LY_ETOOLARGE);
    assert_int_equal(buf_add(&b, "", 0), 0);
    assert_true(b.room <= 11);
    buf_free(&b);
}

static void test_binary_and_space(void **state)
{
    struct buf b = BUF_INIT(64);
    static const char bin[5] = {'a', 0, 'b', 0, 'c'};

    (void)state;
    assert_int_equal(buf_add(&b, bin, sizeof(bin)), 0);
    char *w = buf_space(&b, 3);
    assert_non_null(w);
    memcpy(w, "xyz", 3);
    buf_commit(&b, 2); /* wrote 3, keeps 2 */
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.p, "a\0b\0cxy", 7);
    assert_int_equal(b.p[7], '\0');
    assert_null(buf_space(&b, 58)); /* 7 + 58 > 64 */
    assert_non_null(buf_space(&b, 57));
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    buf_free(&b);
}

static void test_take(void **state)
{
    struct buf b = BUF_INIT(100);
    size_t n = 99;

    (void)state;
    char *empty = buf_take(&b, &n);
    assert_string_equal(empty, "");
    assert_int_equal(n, 0);
    free(empty);
    assert_int_equal(buf_adds(&b, "hello"), 0);
    char *s = buf_take(&b, &n);
    assert_string_equal(s, "hello");
    assert_int_equal(n, 5);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 100);
    free(s);
    assert_int_equal(buf_adds(&b, "again"), 0); /* still usable */
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_and_terminates),
        cmocka_unit_test(test_cap_refuses_whole),
        cmocka_unit_test(test_binary_and_space),
        cmocka_unit_test(test_take),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
