/*
 * Unit tests for src/storage/checksum.c: the catalogue check values of each CRC ("123456789":
 * CRC-32 0xCBF43926, CRC-32C 0xE3069283, CRC-64/NVME 0xAE8B14860A799888) and the digests, in
 * S3's base64; the same value whatever pieces the bytes come in; the empty input; names and
 * lengths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "storage/checksum.h"

#include <string.h>

static const char *sum(enum checksum_alg alg, const char *s, size_t piece)
{
    static char out[CHECKSUM_B64_MAX];
    struct checksum c;
    size_t n = strlen(s);

    checksum_init(&c, alg);
    for (size_t i = 0; i < n; i += piece)
        checksum_update(&c, s + i, n - i < piece ? n - i : piece);
    checksum_final(&c, out);
    return out;
}

static void test_check_values(void **state)
{
    (void)state;
    for (size_t piece = 1; piece <= 9; piece++) {
        assert_string_equal(sum(SUM_CRC32, "123456789", piece), "y/Q5Jg==");
        assert_string_equal(sum(SUM_CRC32C, "123456789", piece), "4waSgw==");
        assert_string_equal(sum(SUM_CRC64NVME, "123456789", piece), "rosUhgp5mIg=");
        assert_string_equal(sum(SUM_SHA1, "123456789", piece), "98O8HYCOBHMq32eZZczDTKeuNEE=");
        assert_string_equal(sum(SUM_SHA256, "123456789", piece),
                            "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=");
    }
}

static void test_empty(void **state)
{
    (void)state;
    assert_string_equal(sum(SUM_CRC32, "", 1), "AAAAAA==");
    assert_string_equal(sum(SUM_CRC64NVME, "", 1), "AAAAAAAAAAA=");
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(checksum_alg("crc32"), SUM_CRC32);
    assert_int_equal(checksum_alg("CRC32C"), SUM_CRC32C);
    assert_int_equal(checksum_alg("crc64nvme"), SUM_CRC64NVME);
    assert_int_equal(checksum_alg("SHA256"), SUM_SHA256);
    assert_int_equal(checksum_alg("md5"), SUM_NONE);
    assert_int_equal(checksum_alg(NULL), SUM_NONE);
    assert_string_equal(checksum_name(SUM_SHA1), "sha1");
    assert_int_equal(checksum_b64_len(SUM_CRC32), 8);
    assert_int_equal(checksum_b64_len(SUM_CRC64NVME), 12);
    assert_int_equal(checksum_b64_len(SUM_SHA1), 28);
    assert_int_equal(checksum_b64_len(SUM_SHA256), 44);
    assert_int_equal(checksum_b64_len(SUM_NONE), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_values),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
