/*
 * Unit tests for src/store/db.c's statement cache, against a real database in a temporary
 * directory: a statement a caller is stepping stays valid however many other statements are
 * prepared meanwhile (the cache once finalized its oldest entry to make room, even while a
 * caller stepped it: a use after free that AddressSanitizer reports), the same SQL asked for
 * inside the loop over its own rows gets a statement of its own, and a statement given back is
 * reused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROWS  5
#define OTHER 600 /* more distinct statements than the cache holds */

static char dir[] = "/tmp/lyceumd-unit-db-XXXXXX";

static int setup(void **state)
{
    char path[128];

    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/lyceumd.db", dir);
    if (store_open(path))
        return -1;
    if (q_exec("CREATE TABLE t (n INTEGER)", "") < 0)
        return -1;
    for (int i = 0; i < ROWS; i++)
        if (q_exec("INSERT INTO t (n) VALUES (?)", "i", (int64_t)i) < 0)
            return -1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[200];

    (void)state;
    store_close();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* OTHER distinct SQL strings (the cache keys statements by the string's address). */
static char *others[OTHER];

static void prepare_many(void)
{
    for (int i = 0; i < OTHER; i++) {
        int64_t v = -1;

        if (!others[i]) {
            others[i] = malloc(64);
            snprintf(others[i], 64, "SELECT %d + 0", i);
        }
        assert_int_equal(q_int(&v, others[i], ""), 0);
        assert_int_equal(v, i);
    }
}

static void test_a_statement_being_stepped_outlives_a_full_cache(void **state)
{
    static const char sql[] = "SELECT n FROM t ORDER BY n";
    sqlite3_stmt *st = q_prepare(sql, "");
    int seen = 0;

    (void)state;
    assert_non_null(st);
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_int_equal(sqlite3_column_int(st, 0), seen);
        seen++;
        prepare_many(); /* the cache overflows while st is in use, each time round */
    }
    q_done(st);
    assert_int_equal(seen, ROWS);
}

static void test_the_same_sql_inside_its_own_loop(void **state)
{
    static const char sql[] = "SELECT n FROM t WHERE n >= ? ORDER BY n";
    sqlite3_stmt *outer = q_prepare(sql, "i", (int64_t)0);
    int pairs = 0;

    (void)state;
    assert_non_null(outer);
    while (sqlite3_step(outer) == SQLITE_ROW) {
        int n = sqlite3_column_int(outer, 0);
        sqlite3_stmt *inner = q_prepare(sql, "i", (int64_t)n);

        assert_non_null(inner);
        assert_ptr_not_equal(inner, outer);
        while (sqlite3_step(inner) == SQLITE_ROW)
            pairs++;
        q_done(inner);
    }
    q_done(outer);
    /* Each n in 0..4 pairs with itself and every larger one: 5 + 4 + 3 + 2 + 1. */
    assert_int_equal(pairs, 15);
}

static void test_a_statement_given_back_is_reused(void **state)
{
    static const char sql[] = "SELECT count(*) FROM t";
    sqlite3_stmt *a = q_prepare(sql, ""), *b;

    (void)state;
    assert_non_null(a);
    q_done(a);
    b = q_prepare(sql, "");
    assert_ptr_equal(a, b);
    assert_int_equal(sqlite3_step(b), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(b, 0), ROWS);
    q_done(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_statement_being_stepped_outlives_a_full_cache),
        cmocka_unit_test(test_the_same_sql_inside_its_own_loop),
        cmocka_unit_test(test_a_statement_given_back_is_reused),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);

    for (int i = 0; i < OTHER; i++)
        free(others[i]);
    return rc;
}
