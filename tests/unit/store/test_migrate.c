/*
 * Unit tests for src/store/db.c's migrations, against real databases in a temporary directory:
 * a new database records every migration by its number; a database from before the record
 * (a count in PRAGMA user_version) is brought up to date from where it was, keeping its rows;
 * a database that records a migration this binary does not carry, or counts more than it
 * carries, is refused and left as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/db.h"
#include "store/migrations.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/lyceumd-unit-migrate-XXXXXX";
static char path[160];
static int carried;

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    for (carried = 0; store_migrations[carried].sql; carried++)
        ;
    return carried >= 2 ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[200];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh database file for one test (the store's own connection is closed first). */
static void fresh(const char *name)
{
    store_close();
    snprintf(path, sizeof(path), "%s/%s.db", dir, name);
    unlink(path);
}

/* Runs sql on path with a connection of the test's own, as another program would. */
static void raw(const char *sql)
{
    sqlite3 *db;
    char *err = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

static int64_t raw_int(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_new_database_records_numbers(void **state)
{
    int64_t v;
    char sql[160];

    (void)state;
    fresh("new");
    assert_int_equal(store_open(path), 0);
    assert_int_equal(q_int(&v, "SELECT count(*) FROM schema_migrations", ""), 0);
    assert_int_equal(v, carried);
    for (int i = 0; i < carried; i++) {
        snprintf(sql, sizeof(sql),
                 "SELECT applied_at FROM schema_migrations WHERE number = %d "
                 "AND name = '%s'",
                 store_migrations[i].number, store_migrations[i].name);
        assert_int_equal(q_int(&v, sql, ""), 0);
        assert_true(v > 1700000000); /* applied now, by this start */
    }
    assert_int_equal(q_int(&v, "PRAGMA user_version", ""), 0);
    assert_int_equal(v, store_migrations[carried - 1].number);
    /* A second start applies nothing again. */
    store_close();
    assert_int_equal(store_open(path), 0);
    assert_int_equal(q_int(&v, "SELECT count(*) FROM schema_migrations", ""), 0);
    assert_int_equal(v, carried);
}

/* The database an older lyceumd left: the first two migrations applied, counted in
 * user_version, and a user in it. */
static void test_old_database_brought_up_to_date(void **state)
{
    int64_t v;
    char sql[64];

    (void)state;
    fresh("old");
    raw(store_migrations[0].sql);
    raw(store_migrations[1].sql);
    raw("PRAGMA user_version = 2");
    raw("INSERT INTO users (id, email, password_hash, created_at) "
        "VALUES ('u-old', 'old@example.com', 'x', 1)");
    assert_int_equal(store_open(path), 0);
    assert_int_equal(q_int(&v, "SELECT count(*) FROM schema_migrations", ""), 0);
    assert_int_equal(v, carried);
    /* The two it had are recorded as such (applied_at 0: before the record), not re-run. */
    assert_int_equal(q_int(&v, "SELECT count(*) FROM schema_migrations WHERE applied_at = 0", ""),
                     0);
    assert_int_equal(v, 2);
    assert_int_equal(q_int(&v, "SELECT count(*) FROM users WHERE id = 'u-old'", ""), 0);
    assert_int_equal(v, 1);
    snprintf(sql, sizeof(sql), "PRAGMA user_version");
    assert_int_equal(q_int(&v, sql, ""), 0);
    assert_int_equal(v, store_migrations[carried - 1].number);
}

static void test_newer_database_refused(void **state)
{
    (void)state;
    fresh("newer");
    assert_int_equal(store_open(path), 0);
    store_close();
    raw("INSERT INTO schema_migrations (number, name, applied_at) VALUES (9999, '9999_future', 5)");
    raw("CREATE TABLE future_only (x INTEGER)");
    assert_int_not_equal(store_open(path), 0);
    store_close();
    /* Left as it was: the record and the newer table are still there, nothing added. */
    assert_int_equal(raw_int("SELECT count(*) FROM schema_migrations"), carried + 1);
    assert_int_equal(raw_int("SELECT count(*) FROM sqlite_master WHERE name = 'future_only'"), 1);
}

static void test_newer_count_refused(void **state)
{
    (void)state;
    fresh("newer-count");
    raw(store_migrations[0].sql);
    raw("PRAGMA user_version = 500");
    assert_int_not_equal(store_open(path), 0);
    store_close();
    assert_int_equal(raw_int("SELECT count(*) FROM sqlite_master WHERE name = 'schema_migrations'"),
                     0);
    assert_int_equal(raw_int("PRAGMA user_version"), 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_database_records_numbers),
        cmocka_unit_test(test_old_database_brought_up_to_date),
        cmocka_unit_test(test_newer_database_refused),
        cmocka_unit_test(test_newer_count_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
