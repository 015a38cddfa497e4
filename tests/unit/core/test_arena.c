/*
 * Unit tests for src/core/arena.c. AddressSanitizer is on in this build, so writing every byte
 * of every allocation also checks that the arena hands out memory it really owns, and the
 * leak checker at exit checks that arena_release() frees every chunk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN _Alignof(max_align_t)

static void test_alloc_aligned_and_distinct(void **state)
{
    struct arena a;
    unsigned char *prev = NULL;

    (void)state;
    arena_init(&a);
    for (size_t n = 0; n < 600; n++) {
        unsigned char *p = arena_alloc(&a, n);

        assert_non_null(p);
        assert_int_equal((uintptr_t)p % ALIGN, 0);
        assert_true(p != prev); /* even a zero-byte allocation is a distinct pointer */
        memset(p, (int)(n & 0xff), n);
        prev = p;
    }
    arena_release(&a);
}

static void test_contents_survive(void **state)
{
    struct arena a;
    char *ptrs[2000];

    (void)state;
    arena_init(&a);
    /* Enough allocations to span many chunks: none may overwrite another. */
    for (int i = 0; i < 2000; i++) {
        ptrs[i] = arena_alloc(&a, 40);
        memset(ptrs[i], 'a' + i % 26, 40);
    }
    for (int i = 0; i < 2000; i++)
        for (int j = 0; j < 40; j++)
            assert_int_equal(ptrs[i][j], 'a' + i % 26);
    arena_release(&a);
}

static void test_large_allocation_keeps_head(void **state)
{
    struct arena a;
    char *small1, *big, *small2;

    (void)state;
    arena_init(&a);
    small1 = arena_alloc(&a, 16);
    big = arena_alloc(&a, 100000);
    memset(big, 'x', 100000);
    small2 = arena_alloc(&a, 16);
    /* The large block got a chunk of its own; small allocations go on in the first chunk,
     * right after the last one (sizes are rounded up to sizeof(max_align_t)). */
    assert_ptr_equal(small2,
                     small1 + ((16 + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1)));
    assert_int_equal(big[99999], 'x');
    arena_release(&a);
}

static void test_strings(void **state)
{
    struct arena a;
    char long_s[20000];
    char *p;

    (void)state;
    arena_init(&a);
    assert_string_equal(arena_strdup(&a, "hello"), "hello");
    assert_string_equal(arena_strdup(&a, ""), "");
    assert_string_equal(arena_strndup(&a, "hello world", 5), "hello");
    p = arena_strndup(&a, "ab\0cd", 5); /* copies n bytes and adds a NUL */
    assert_memory_equal(p, "ab\0cd", 6);
    assert_string_equal(arena_sprintf(&a, "%s-%d-%05.1f", "x", 42, 3.5), "x-42-003.5");
    assert_string_equal(arena_sprintf(&a, "%s", ""), "");
    /* A formatted string longer than a chunk. */
    memset(long_s, 'z', sizeof(long_s) - 1);
    long_s[sizeof(long_s) - 1] = '\0';
    p = arena_sprintf(&a, "<%s>", long_s);
    assert_int_equal(strlen(p), sizeof(long_s) + 1);
    assert_int_equal(p[0], '<');
    assert_int_equal(p[sizeof(long_s)], '>');
    arena_release(&a);
}

static void test_release_and_reuse(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    arena_release(&a); /* releasing an empty arena is fine */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 100; i++)
            memset(arena_alloc(&a, 1000), 1, 1000);
        arena_release(&a);
        assert_null(a.head);
    }
    assert_string_equal(arena_strdup(&a, "again"), "again");
    arena_release(&a);
}

static void test_x_helpers(void **state)
{
    char *s;
    int *z;

    (void)state;
    s = xstrdup("copy");
    assert_string_equal(s, "copy");
    free(s);
    z = xcalloc(16, sizeof(int));
    for (int i = 0; i < 16; i++)
        assert_int_equal(z[i], 0);
    free(z);
    s = xmalloc(0); /* never NULL, even for zero bytes */
    assert_non_null(s);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_aligned_and_distinct),  cmocka_unit_test(test_contents_survive),
        cmocka_unit_test(test_large_allocation_keeps_head), cmocka_unit_test(test_strings),
        cmocka_unit_test(test_release_and_reuse),           cmocka_unit_test(test_x_helpers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
