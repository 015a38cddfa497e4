/*
 * Unit tests for src/core/fbuf.c: appends that overflow stop at the buffer's end, keep it
 * NUL-terminated and report the cut, however many come after (the failure it replaces:
 * an index advanced by snprintf's would-be length, then a wrapped size).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/fbuf.h"

#include <string.h>

static void test_fits(void **state)
{
    char buf[16];
    struct fbuf b;

    (void)state;
    fbuf_init(&b, buf, sizeof(buf));
    assert_string_equal(buf, "");
    assert_int_equal(fbuf_printf(&b, "%s=%d", "a", 1), 0);
    assert_int_equal(fbuf_add(&b, ",xy", 3), 0);
    assert_string_equal(buf, "a=1,xy");
    assert_int_equal(b.len, 6);
    assert_false(b.cut);
}

static void test_exact_fit(void **state)
{
    char buf[8];
    struct fbuf b;

    (void)state;
    fbuf_init(&b, buf, sizeof(buf));
    assert_int_equal(fbuf_printf(&b, "%s", "1234567"), 0); /* 7 + NUL */
    assert_false(b.cut);
    assert_int_equal(fbuf_add(&b, "", 0), 0);
    assert_int_equal(fbuf_printf(&b, "%s", "8"), -1);
    assert_true(b.cut);
    assert_string_equal(buf, "1234567");
}

/* The pattern this replaces: many pieces into a small buffer, guarded by canaries. */
static void test_overflow_stays_inside(void **state)
{
    struct {
        char before[8];
        char buf[10];
        char after[8];
    } s;
    struct fbuf b;

    (void)state;
    memset(&s, 'Z', sizeof(s));
    fbuf_init(&b, s.buf, sizeof(s.buf));
    for (int i = 0; i < 100; i++) {
        fbuf_printf(&b, "%s%d", i ? "," : "", 1000000 + i);
        assert_true(b.len < sizeof(s.buf));
    }
    assert_true(b.cut);
    assert_int_equal(b.len, sizeof(s.buf) - 1);
    assert_int_equal(strlen(s.buf), sizeof(s.buf) - 1);
    assert_memory_equal(s.buf, "1000000,1", 9);
    for (size_t i = 0; i < sizeof(s.before); i++) {
        assert_int_equal(s.before[i], 'Z');
        assert_int_equal(s.after[i], 'Z');
    }
    assert_int_equal(fbuf_add(&b, "more", 4), -1);
    assert_int_equal(b.len, sizeof(s.buf) - 1);
}

static void test_one_byte(void **state)
{
    char buf[1];
    struct fbuf b;

    (void)state;
    fbuf_init(&b, buf, sizeof(buf));
    assert_int_equal(fbuf_printf(&b, "x"), -1);
    assert_int_equal(fbuf_add(&b, "y", 1), -1);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(b.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fits),
        cmocka_unit_test(test_exact_fit),
        cmocka_unit_test(test_overflow_stays_inside),
        cmocka_unit_test(test_one_byte),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
