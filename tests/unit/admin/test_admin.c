/*
 * Unit tests for src/admin: the operator's use cases against a real store in a temporary
 * directory (nothing of ours is mocked). A grant lands in the org's ledger and the balance
 * read after it is the one the grant made; an unknown org or user is LY_ENOTFOUND and writes
 * nothing; a quota set is read back; a key is made for a user named by email.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "admin/admin.h"
#include "auth/accounts.h"
#include "core/err.h"
#include "store/db.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/lyceumd-unit-admin-XXXXXX";
static struct new_account op;
static struct arena arena;

static int setup(void **state)
{
    char path[128];
    const char *why = NULL;

    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/lyceumd.db", dir);
    if (store_open(path))
        return -1;
    arena_init(&arena);
    /* An account with 2.5 opening credits. */
    return accounts_create(&arena, "op@example.com", "long-enough-pw", "Op", 0, 2500000, 0, &op,
                           &why)
               ? -1
               : 0;
}

static int teardown(void **state)
{
    char cmd[200];

    (void)state;
    arena_release(&arena);
    store_close();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_grant_balance(void **state)
{
    int64_t balance = -1, n = -1;

    (void)state;
    assert_int_equal(admin_credits_grant(op.org_slug, 1, "top-up", &balance), 0);
    assert_int_equal(balance, 2500001);
    assert_int_equal(admin_credits_grant(op.org_slug, 750000, NULL, &balance), 0);
    assert_int_equal(balance, 3250001);
    assert_int_equal(q_int(&n,
                           "SELECT count(*) FROM ledger WHERE org_id = ? AND kind = 'grant' AND "
                           "created_by = 'operator' AND description = 'Operator grant'",
                           "s", op.org_id),
                     0);
    assert_int_equal(n, 1);
}

static void test_grant_unknown_org(void **state)
{
    int64_t balance = -1, before = -1, after = -1;

    (void)state;
    assert_int_equal(q_int(&before, "SELECT count(*) FROM ledger", ""), 0);
    assert_int_equal(admin_credits_grant("no-such-org", 5, NULL, &balance), LY_ENOTFOUND);
    assert_int_equal(q_int(&after, "SELECT count(*) FROM ledger", ""), 0);
    assert_int_equal(before, after);
}

static void test_quota_and_key(void **state)
{
    json_t *set = json_pack("[s,s]", "cpu", "gpu.a100"), *now = json_array(), *none = json_array();
    struct new_key k;

    (void)state;
    assert_int_equal(admin_quota_set("op@example.com", set, now), 0);
    assert_int_equal(json_array_size(now), 2);
    assert_int_equal(admin_quota_set("nobody@example.com", set, none), LY_ENOTFOUND);
    assert_int_equal(json_array_size(none), 0);
    assert_int_equal(admin_key_add("op@example.com", "ci", &k), 0);
    assert_int_equal(strncmp(k.key, "lk_", 3), 0);
    assert_int_equal(admin_key_add("nobody@example.com", "ci", &k), LY_ENOTFOUND);
    json_decref(set);
    json_decref(now);
    json_decref(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grant_balance),
        cmocka_unit_test(test_grant_unknown_org),
        cmocka_unit_test(test_quota_and_key),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
