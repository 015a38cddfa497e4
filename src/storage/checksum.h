/*
 * S3's additional checksums of an object's bytes (x-amz-checksum-crc32, -crc32c, -crc64nvme,
 * -sha1, -sha256), which newer AWS SDKs send with every upload, in a header or as the trailer
 * of an aws-chunked body: computed as the bytes pass, and written as S3 writes them (base64 of
 * the big-endian CRC, or of the digest). The CRCs are reflected, table-driven (no Debian
 * library has all three: zlib has only CRC32); the digests are OpenSSL's.
 */
#ifndef LYCEUMD_STORAGE_CHECKSUM_H
#define LYCEUMD_STORAGE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

enum checksum_alg { SUM_NONE, SUM_CRC32, SUM_CRC32C, SUM_CRC64NVME, SUM_SHA1, SUM_SHA256 };

/* Base64 of 32 bytes (SHA-256), and its NUL. */
#define CHECKSUM_B64_MAX 48

struct checksum {
    enum checksum_alg alg;
    uint64_t crc;
    void *md; /* EVP_MD_CTX for the digests */
};

/* The algorithm named ("crc32", "CRC32C" ...: case ignored), or SUM_NONE. */
enum checksum_alg checksum_alg(const char *name);
/* Its name as S3's headers spell it ("crc32" ...). */
const char *checksum_name(enum checksum_alg alg);
/* The length of its value in base64 (8 for a CRC-32 ...; 0 for SUM_NONE). */
size_t checksum_b64_len(enum checksum_alg alg);
void checksum_init(struct checksum *c, enum checksum_alg alg);
void checksum_update(struct checksum *c, const void *buf, size_t n);
/* The value, base64 as in x-amz-checksum-*; c is then released. */
void checksum_final(struct checksum *c, char out[CHECKSUM_B64_MAX]);
/* Releases c without a value (nothing to do after checksum_final). */
void checksum_free(struct checksum *c);

#endif
