/*
 * Unit tests for src/storage/sigv4.c against AWS's published examples: the Signature Version 4
 * test suite (get-vanilla, get-vanilla-query-order-key-case, get-vanilla-empty-query-key,
 * post-vanilla, get-utf8, post-x-www-form-urlencoded; AKIDEXAMPLE, 20150830T123600Z) and the
 * S3 examples of "Signature Calculations for the Authorization Header" and "Query string
 * authentication" (GET with Range, PUT, GET ?lifecycle, list with max-keys and prefix, a
 * presigned GET) and of "Signature Calculations for the Authorization Header: Transferring
 * Payload in Multiple Chunks" (aws-chunked seed and chunk signatures).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/util.h"
#include "storage/sigv4.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define EMPTY        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define S3_SECRET    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

/* Headers of a test case: "name: value" lines. */
struct hdrs {
    const char *const *lines;
};

static const char *hdr(void *ctx, const char *name)
{
    struct hdrs *h = ctx;
    static char val[512];

    for (const char *const *l = h->lines; *l; l++) {
        const char *colon = strchr(*l, ':');

        if ((size_t)(colon - *l) == strlen(name) && strncasecmp(*l, name, strlen(name)) == 0) {
            snprintf(val, sizeof(val), "%s", colon + 1);
            return val;
        }
    }
    return NULL;
}

static void check(const char *secret, const char *method, const char *path,
                  const struct sigv4_kv *q, int nq, const char *const *lines,
                  const char *signed_headers, const char *payload, const char *amz_date,
                  const char *region, const char *service, const char *want)
{
    struct arena a;
    struct hdrs h = {lines};
    unsigned char key[32];
    char sig[65], scope[128], date[9];
    char *cq, *creq;

    arena_init(&a);
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, region, service);
    cq = sigv4_canonical_query(&a, q, nq);
    creq = sigv4_canonical_request(&a, method, path, cq, signed_headers, hdr, &h, payload);
    sigv4_signing_key(secret, date, region, service, key);
    sigv4_sign(key, amz_date, scope, creq, sig);
    if (strcmp(sig, want) != 0)
        fail_msg("%s %s: signature %s, want %s\ncanonical request:\n%s", method, path, sig, want,
                 creq);
    arena_release(&a);
}

#define SUITE(m, p, q, nq, want)                                                                   \
    check(SUITE_SECRET, m, p, q, nq, suite_hdrs, "host;x-amz-date", EMPTY, "20150830T123600Z",     \
          "us-east-1", "service", want)

static const char *const suite_hdrs[] = {"Host:example.amazonaws.com",
                                         "X-Amz-Date:20150830T123600Z", NULL};

static void test_suite_vanilla(void **state)
{
    (void)state;
    SUITE("GET", "/", NULL, 0, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    SUITE("POST", "/", NULL, 0, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

static void test_suite_query(void **state)
{
    static const struct sigv4_kv order[] = {{"Param2", "value2"}, {"Param1", "value1"}};
    static const struct sigv4_kv empty_key[] = {{"Param1", "value1"}};

    (void)state;
    SUITE("GET", "/", order, 2, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    SUITE("GET", "/", empty_key, 1,
          "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb");
}

static void test_suite_utf8_path(void **state)
{
    (void)state;
    SUITE("GET", "/\xe1\x88\xb4", NULL, 0,
          "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

static void test_suite_form_post(void **state)
{
    static const char *const h[] = {"Content-Type:application/x-www-form-urlencoded",
                                    "Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z",
                                    NULL};
    char body_hash[65];

    (void)state;
    sha256_hex("Param1=value1", 13, body_hash);
    check(SUITE_SECRET, "POST", "/", NULL, 0, h, "content-type;host;x-amz-date", body_hash,
          "20150830T123600Z", "us-east-1", "service",
          "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

static void test_s3_get_range(void **state)
{
    static const char *const h[] = {"Host:examplebucket.s3.amazonaws.com", "Range:bytes=0-9",
                                    "x-amz-content-sha256:" EMPTY, "x-amz-date:20130524T000000Z",
                                    NULL};

    (void)state;
    check(S3_SECRET, "GET", "/test.txt", NULL, 0, h, "host;range;x-amz-content-sha256;x-amz-date",
          EMPTY, "20130524T000000Z", "us-east-1", "s3",
          "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void test_s3_put(void **state)
{
    static const char *const h[] = {
        "Date:Fri, 24 May 2013 00:00:00 GMT",
        "Host:examplebucket.s3.amazonaws.com",
        "x-amz-date:20130524T000000Z",
        "x-amz-storage-class:REDUCED_REDUNDANCY",
        "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        NULL};
    char body_hash[65];

    (void)state;
    sha256_hex("Welcome to Amazon S3.", 21, body_hash);
    assert_string_equal(body_hash,
                        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    check(S3_SECRET, "PUT", "/test$file.text", NULL, 0, h,
          "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class", body_hash,
          "20130524T000000Z", "us-east-1", "s3",
          "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

static void test_s3_bucket_queries(void **state)
{
    static const char *const h[] = {"Host:examplebucket.s3.amazonaws.com",
                                    "x-amz-content-sha256:" EMPTY, "x-amz-date:20130524T000000Z",
                                    NULL};
    static const struct sigv4_kv lifecycle[] = {{"lifecycle", NULL}};
    static const struct sigv4_kv list[] = {{"max-keys", "2"}, {"prefix", "J"}};

    (void)state;
    check(S3_SECRET, "GET", "/", lifecycle, 1, h, "host;x-amz-content-sha256;x-amz-date", EMPTY,
          "20130524T000000Z", "us-east-1", "s3",
          "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    check(S3_SECRET, "GET", "/", list, 2, h, "host;x-amz-content-sha256;x-amz-date", EMPTY,
          "20130524T000000Z", "us-east-1", "s3",
          "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void test_s3_presigned(void **state)
{
    static const char *const h[] = {"Host:examplebucket.s3.amazonaws.com", NULL};
    static const struct sigv4_kv q[] = {
        {"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
        {"X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"},
        {"X-Amz-Date", "20130524T000000Z"},
        {"X-Amz-Expires", "86400"},
        {"X-Amz-SignedHeaders", "host"},
        {"X-Amz-Signature", "ignored: never part of the canonical query"},
    };

    (void)state;
    check(S3_SECRET, "GET", "/test.txt", q, 6, h, "host", "UNSIGNED-PAYLOAD", "20130524T000000Z",
          "us-east-1", "s3", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

static void test_s3_chunked(void **state)
{
    static const char *const h[] = {"Host:s3.amazonaws.com",
                                    "x-amz-content-sha256:STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                    "Content-Encoding:aws-chunked",
                                    "Content-Length:66824",
                                    "x-amz-date:20130524T000000Z",
                                    "x-amz-decoded-content-length:66560",
                                    "x-amz-storage-class:REDUCED_REDUNDANCY",
                                    NULL};
    struct arena a;
    struct hdrs hh = {h};
    unsigned char key[32];
    char seed[65], sig[65], hash[65];
    static char data[65536];
    const char *scope = "20130524/us-east-1/s3/aws4_request";
    char *creq;

    (void)state;
    arena_init(&a);
    creq = sigv4_canonical_request(&a, "PUT", "/examplebucket/chunkObject.txt", "",
                                   "content-encoding;content-length;host;x-amz-content-sha256;"
                                   "x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
                                   hdr, &hh, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    sigv4_signing_key(S3_SECRET, "20130524", "us-east-1", "s3", key);
    sigv4_sign(key, "20130524T000000Z", scope, creq, seed);
    assert_string_equal(seed, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    memset(data, 'a', sizeof(data));
    sha256_hex(data, 65536, hash);
    sigv4_chunk_sign(key, "20130524T000000Z", scope, seed, hash, sig);
    assert_string_equal(sig, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
    sha256_hex(data, 1024, hash);
    sigv4_chunk_sign(key, "20130524T000000Z", scope, sig, hash, sig);
    assert_string_equal(sig, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497");
    sha256_hex("", 0, hash);
    sigv4_chunk_sign(key, "20130524T000000Z", scope, sig, hash, sig);
    assert_string_equal(sig, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9");
    arena_release(&a);
}

static void test_parse_header(void **state)
{
    struct sigv4_auth a;

    (void)state;
    assert_int_equal(
        sigv4_parse_header("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                           "s3/aws4_request, SignedHeaders=host;range;x-amz-date, "
                           "Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f"
                           "1024",
                           &a),
        0);
    assert_string_equal(a.access_key, "AKIAIOSFODNN7EXAMPLE");
    assert_string_equal(a.scope, "20130524/us-east-1/s3/aws4_request");
    assert_string_equal(a.signed_headers, "host;range;x-amz-date");
    assert_int_equal(strlen(a.signature), 64);
    assert_int_equal(sigv4_parse_header("AWS4-HMAC-SHA256 Credential=AK/2013/us/s3/x, "
                                        "SignedHeaders=host, Signature=00",
                                        &a),
                     -1);
    assert_int_equal(sigv4_parse_header("Bearer lk_x", &a), -1);
}

static void test_encode(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    assert_string_equal(sigv4_encode(&a, "a b+c/d~e*", 1), "a%20b%2Bc/d~e%2A");
    assert_string_equal(sigv4_encode(&a, "a/b", 0), "a%2Fb");
    arena_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite_vanilla),
        cmocka_unit_test(test_suite_query),
        cmocka_unit_test(test_suite_utf8_path),
        cmocka_unit_test(test_suite_form_post),
        cmocka_unit_test(test_s3_get_range),
        cmocka_unit_test(test_s3_put),
        cmocka_unit_test(test_s3_bucket_queries),
        cmocka_unit_test(test_s3_presigned),
        cmocka_unit_test(test_s3_chunked),
        cmocka_unit_test(test_parse_header),
        cmocka_unit_test(test_encode),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
