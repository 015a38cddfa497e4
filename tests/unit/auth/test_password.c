/*
 * Unit tests for src/auth/password.c: argon2id hashes in the PHC string format with the
 * parameters the file documents, a random salt per hash, and verification that accepts only
 * the right password. Each hash costs about 20 ms, so the tests make few of them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth/password.h"

#include <string.h>

static void test_hash_format(void **state)
{
    char h[PASSWORD_HASH_MAX];

    (void)state;
    assert_int_equal(password_hash("correct horse battery staple", h), 0);
    assert_true(strncmp(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_true(strlen(h) < PASSWORD_HASH_MAX);
    /* Never the password itself. */
    assert_null(strstr(h, "correct horse"));
}

static void test_verify(void **state)
{
    char h[PASSWORD_HASH_MAX];

    (void)state;
    assert_int_equal(password_hash("s3cret-pass", h), 0);
    assert_int_equal(password_verify(h, "s3cret-pass"), 1);
    assert_int_equal(password_verify(h, "s3cret-pasS"), 0);
    assert_int_equal(password_verify(h, "s3cret-pass "), 0);
    assert_int_equal(password_verify(h, "s3cret-pas"), 0);
    assert_int_equal(password_verify(h, ""), 0);
}

static void test_salted(void **state)
{
    char a[PASSWORD_HASH_MAX], b[PASSWORD_HASH_MAX];

    (void)state;
    assert_int_equal(password_hash("same password", a), 0);
    assert_int_equal(password_hash("same password", b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(password_verify(a, "same password"), 1);
    assert_int_equal(password_verify(b, "same password"), 1);
}

static void test_unicode_and_long(void **state)
{
    char h[PASSWORD_HASH_MAX], longpw[PASSWORD_MAX_LEN + 1];

    (void)state;
    assert_int_equal(password_hash("p\xc3\xa4ssw\xc3\xb6rd", h), 0);
    assert_int_equal(password_verify(h, "p\xc3\xa4ssw\xc3\xb6rd"), 1);
    assert_int_equal(password_verify(h, "passwird"), 0);
    memset(longpw, 'x', PASSWORD_MAX_LEN);
    longpw[PASSWORD_MAX_LEN] = '\0';
    assert_int_equal(password_hash(longpw, h), 0);
    assert_int_equal(password_verify(h, longpw), 1);
    longpw[PASSWORD_MAX_LEN - 1] = 'y'; /* the last byte counts too */
    assert_int_equal(password_verify(h, longpw), 0);
}

static void test_no_hash(void **state)
{
    (void)state;
    /* An unknown user: the time of a check is spent and the answer is no. */
    assert_int_equal(password_verify(NULL, "anything"), 0);
    assert_int_equal(password_verify(NULL, "not-a-password"), 0);
    /* Damaged stored hashes never verify. */
    assert_int_equal(password_verify("", "x"), 0);
    assert_int_equal(password_verify("$argon2id$v=19$m=19456,t=2,p=1$garbage", "x"), 0);
    assert_int_equal(password_verify("plaintext", "plaintext"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_format), cmocka_unit_test(test_verify),
        cmocka_unit_test(test_salted),      cmocka_unit_test(test_unicode_and_long),
        cmocka_unit_test(test_no_hash),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
