/*
 * Unit tests for src/auth/caller.c: role names both ways, and the order of the roles that
 * api_require_role() compares.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth/caller.h"

static void test_roles(void **state)
{
    (void)state;
    assert_int_equal(role_parse("owner"), ROLE_OWNER);
    assert_int_equal(role_parse("admin"), ROLE_ADMIN);
    assert_int_equal(role_parse("member"), ROLE_MEMBER);
    assert_int_equal(role_parse("Owner"), ROLE_NONE);
    assert_int_equal(role_parse(""), ROLE_NONE);
    assert_int_equal(role_parse(NULL), ROLE_NONE);
    assert_string_equal(role_name(ROLE_OWNER), "owner");
    assert_string_equal(role_name(ROLE_MEMBER), "member");
    assert_string_equal(role_name(ROLE_NONE), "none");
    assert_true(ROLE_OWNER > ROLE_ADMIN && ROLE_ADMIN > ROLE_MEMBER && ROLE_MEMBER > ROLE_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
