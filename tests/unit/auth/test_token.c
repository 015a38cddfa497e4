/*
 * Unit tests for src/auth/token.c: JWT access tokens and random tokens. Tokens are also
 * crafted by hand here (base64url and OpenSSL's HMAC with the key token_init() wrote), so the
 * refusals (a tampered signature, "alg":"none", HS512, expiry) are checked against tokens
 * that differ from an accepted one in exactly that respect: a crafted HS256 token with good
 * claims is accepted, which shows the crafting itself is right.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth/token.h"
#include "core/err.h"
#include "core/util.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static unsigned char key[32];

static int group_setup(void **state)
{
    char path[128];
    FILE *f;

    (void)state;
    snprintf(dir, sizeof(dir), "%s", "/tmp/lyceumd-unit-token-XXXXXX");
    if (!mkdtemp(dir) || token_init(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/jwt.key", dir);
    f = fopen(path, "rb");
    if (!f || fread(key, 1, sizeof(key), f) != sizeof(key))
        return -1;
    fclose(f);
    return 0;
}

static int group_teardown(void **state)
{
    char path[128];

    (void)state;
    snprintf(path, sizeof(path), "%s/jwt.key", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

/* base64url without padding; out needs 4 * (n + 2) / 3 + 1 bytes. */
static void b64url(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
}

/* Decodes base64url (no padding) into a NUL-terminated buffer the caller frees. */
static char *unb64url(const char *in, size_t n)
{
    size_t padded = (n + 3) / 4 * 4;
    char *tmp = calloc(1, padded + 1);
    char *out = calloc(1, padded + 1);
    int len;

    memcpy(tmp, in, n);
    for (size_t i = 0; i < padded; i++) {
        if (i >= n)
            tmp[i] = '=';
        else if (tmp[i] == '-')
            tmp[i] = '+';
        else if (tmp[i] == '_')
            tmp[i] = '/';
    }
    len = EVP_DecodeBlock((unsigned char *)out, (unsigned char *)tmp, (int)padded);
    assert_true(len >= 0);
    free(tmp);
    return out;
}

/* header.payload.signature, signed with md and k (md NULL: an empty signature). */
static char *craft(const char *header, const char *payload, const EVP_MD *md,
                   const unsigned char *k, size_t klen)
{
    size_t hl = strlen(header), pl = strlen(payload);
    char *tok = calloc(1, 2 * (hl + pl) + 200);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t n;

    b64url((const unsigned char *)header, hl, tok);
    strcat(tok, ".");
    n = strlen(tok);
    b64url((const unsigned char *)payload, pl, tok + n);
    if (md) {
        assert_non_null(HMAC(md, k, (int)klen, (unsigned char *)tok, strlen(tok), mac, &maclen));
        strcat(tok, ".");
        b64url(mac, maclen, tok + strlen(tok));
    } else {
        strcat(tok, ".");
    }
    return tok;
}

static char *claims(const char *sub, const char *fid, long long exp)
{
    static char buf[512];
    int n = snprintf(buf, sizeof(buf), "{");

    if (sub)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\"sub\":\"%s\",", sub);
    if (fid)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\"fid\":\"%s\",", fid);
    if (exp)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\"exp\":%lld,", exp);
    snprintf(buf + n, sizeof(buf) - (size_t)n, "\"iat\":%lld}", (long long)now_unix());
    return buf;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static int check(const char *tok, const char **why)
{
    char user[40] = "unset", fam[40] = "unset";
    int err = jwt_check(tok, user, fam, why);

    if (err)
        assert_string_equal(user, "unset"); /* nothing filled on a refusal */
    return err;
}

static void expect_refused(char *tok)
{
    const char *why = NULL;

    if (check(tok, &why) != LY_EUNAUTH)
        fail_msg("accepted: %s", tok);
    assert_non_null(why);
    free(tok);
}

static void test_issue_round_trip(void **state)
{
    char *tok = NULL, user[40], fam[40], *header, *payload;
    const char *why = NULL, *dot1, *dot2;
    json_t *h, *p;

    (void)state;
    assert_int_equal(jwt_issue("user-1", "fam-1", 3600, &tok), 0);
    assert_int_equal(jwt_check(tok, user, fam, &why), 0);
    assert_string_equal(user, "user-1");
    assert_string_equal(fam, "fam-1");

    /* The claims API.md names: HS256, sub, exp = iat + ttl, a jti; and fid for revocation. */
    dot1 = strchr(tok, '.');
    dot2 = strchr(dot1 + 1, '.');
    assert_non_null(dot2);
    header = unb64url(tok, (size_t)(dot1 - tok));
    payload = unb64url(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    h = json_loads(header, 0, NULL);
    p = json_loads(payload, 0, NULL);
    assert_non_null(h);
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "HS256");
    assert_string_equal(json_string_value(json_object_get(p, "sub")), "user-1");
    assert_string_equal(json_string_value(json_object_get(p, "fid")), "fam-1");
    assert_int_equal(strlen(json_string_value(json_object_get(p, "jti"))), 36);
    assert_int_equal(json_integer_value(json_object_get(p, "exp")) -
                         json_integer_value(json_object_get(p, "iat")),
                     3600);
    json_decref(h);
    json_decref(p);
    free(header);
    free(payload);
    free(tok);
}

static void test_crafted_hs256_accepted(void **state)
{
    char *tok = craft(HS256, claims("user-2", "fam-2", now_unix() + 600), EVP_sha256(), key, 32);
    char user[40], fam[40];
    const char *why;

    (void)state;
    assert_int_equal(jwt_check(tok, user, fam, &why), 0);
    assert_string_equal(user, "user-2");
    assert_string_equal(fam, "fam-2");
    free(tok);
}

static void test_tampered_refused(void **state)
{
    char *tok = NULL, *sig, *forged;
    const char *dot;

    (void)state;
    assert_int_equal(jwt_issue("user-1", "fam-1", 3600, &tok), 0);
    /* A changed character inside the signature (not the last one, whose low bits are padding
     * that a lenient decoder may ignore). */
    sig = strrchr(tok, '.') + 1;
    sig[5] = sig[5] == 'A' ? 'B' : 'A';
    expect_refused(tok);

    /* Another payload under a genuine signature. */
    tok = craft(HS256, claims("user-1", "fam-1", now_unix() + 600), EVP_sha256(), key, 32);
    forged = craft(HS256, claims("admin", "fam-1", now_unix() + 600), EVP_sha256(), key, 32);
    dot = strrchr(tok, '.');
    strcpy(strrchr(forged, '.'), dot);
    free(tok);
    expect_refused(forged);

    /* A signature made with another key, and none at all. */
    expect_refused(craft(HS256, claims("user-1", "fam-1", now_unix() + 600), EVP_sha256(),
                         (const unsigned char *)"another key of thirty-two bytes!", 32));
    expect_refused(craft(HS256, claims("user-1", "fam-1", now_unix() + 600), NULL, NULL, 0));
}

static void test_alg_none_refused(void **state)
{
    const char *c = claims("user-1", "fam-1", now_unix() + 600);

    (void)state;
    expect_refused(craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", c, NULL, NULL, 0));
    expect_refused(craft("{\"alg\":\"none\"}", c, NULL, NULL, 0));
    expect_refused(craft("{\"alg\":\"None\",\"typ\":\"JWT\"}", c, NULL, NULL, 0));
    /* "none" with a valid HMAC attached. */
    expect_refused(craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", c, EVP_sha256(), key, 32));
    /* No alg at all. */
    expect_refused(craft("{\"typ\":\"JWT\"}", c, EVP_sha256(), key, 32));
}

static void test_other_algorithms_refused(void **state)
{
    const char *c = claims("user-1", "fam-1", now_unix() + 600);

    (void)state;
    /* Correctly signed with our key, but not HS256. */
    expect_refused(craft("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", c, EVP_sha512(), key, 32));
    expect_refused(craft("{\"alg\":\"HS384\",\"typ\":\"JWT\"}", c, EVP_sha384(), key, 32));
    /* The key-confusion attack: an RS256 header over an HMAC made with the shared key. */
    expect_refused(craft("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", c, EVP_sha256(), key, 32));
}

static void test_expired_refused(void **state)
{
    char *tok = craft(HS256, claims("user-1", "fam-1", now_unix() - 10), EVP_sha256(), key, 32);
    const char *why = NULL;

    (void)state;
    assert_int_equal(check(tok, &why), LY_EUNAUTH);
    assert_string_equal(why, "Token has expired");
    free(tok);
    /* Issued with a negative lifetime: already expired. */
    tok = NULL;
    assert_int_equal(jwt_issue("user-1", "fam-1", -1, &tok), 0);
    assert_int_equal(check(tok, &why), LY_EUNAUTH);
    assert_string_equal(why, "Token has expired");
    free(tok);
}

static void test_claims_required(void **state)
{
    char sub39[40], sub40[41];
    char *tok;
    const char *why;
    long long exp = now_unix() + 600;

    (void)state;
    expect_refused(craft(HS256, claims("user-1", "fam-1", 0), EVP_sha256(), key, 32));
    expect_refused(craft(HS256, claims(NULL, "fam-1", exp), EVP_sha256(), key, 32));
    expect_refused(craft(HS256, claims("user-1", NULL, exp), EVP_sha256(), key, 32));
    expect_refused(
        craft(HS256, "{\"sub\":7,\"fid\":\"f\",\"exp\":99999999999}", EVP_sha256(), key, 32));
    expect_refused(craft(HS256, "{\"sub\":\"u\",\"fid\":\"f\",\"exp\":\"99999999999\"}",
                         EVP_sha256(), key, 32));
    /* An id must fit the 40-byte buffers (39 characters and a NUL). */
    memset(sub39, 'u', 39);
    sub39[39] = '\0';
    memset(sub40, 'u', 40);
    sub40[40] = '\0';
    expect_refused(craft(HS256, claims(sub40, "fam-1", exp), EVP_sha256(), key, 32));
    tok = craft(HS256, claims(sub39, "fam-1", exp), EVP_sha256(), key, 32);
    assert_int_equal(check(tok, &why), 0);
    free(tok);
}

static void test_garbage_refused(void **state)
{
    static const char *bad[] = {"",
                                "a",
                                "a.b",
                                "a.b.c",
                                "..",
                                "...",
                                "a.b.c.d",
                                "not.a.jwt",
                                "eyJhbGciOiJIUzI1NiJ9.e30.",
                                "\xff\xfe.\x01.\x02"};
    char *huge;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refused(strdup(bad[i]));
    huge = malloc(5001);
    memset(huge, 'a', 5000);
    huge[5000] = '\0';
    expect_refused(huge);
}

static void test_random_tokens(void **state)
{
    char k1[API_KEY_LEN + 1], k2[API_KEY_LEN + 1], rt[64];

    (void)state;
    apikey_generate(k1);
    apikey_generate(k2);
    assert_int_equal(strlen(k1), API_KEY_LEN);
    assert_true(strncmp(k1, "lk_", 3) == 0);
    for (int i = 3; i < API_KEY_LEN; i++)
        assert_non_null(
            strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", k1[i]));
    assert_string_not_equal(k1, k2);
    token_random("rt_", 48, rt, sizeof(rt));
    assert_int_equal(strlen(rt), 51);
    assert_true(strncmp(rt, "rt_", 3) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_round_trip),
        cmocka_unit_test(test_crafted_hs256_accepted),
        cmocka_unit_test(test_tampered_refused),
        cmocka_unit_test(test_alg_none_refused),
        cmocka_unit_test(test_other_algorithms_refused),
        cmocka_unit_test(test_expired_refused),
        cmocka_unit_test(test_claims_required),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_random_tokens),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
