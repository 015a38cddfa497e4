/* See checksum.h. */
#include "storage/checksum.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <strings.h>

/* The reflected polynomials: CRC-32 (ISO-HDLC), CRC-32C (Castagnoli), CRC-64/NVME. */
static const uint64_t poly[] = {
    [SUM_CRC32] = 0xEDB88320u,
    [SUM_CRC32C] = 0x82F63B78u,
    [SUM_CRC64NVME] = 0x9A6C9329AC4BC9B5ull,
};
static uint64_t table[SUM_CRC64NVME + 1][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_make(void)
{
    for (int a = SUM_CRC32; a <= SUM_CRC64NVME; a++)
        for (unsigned i = 0; i < 256; i++) {
            uint64_t r = i;

            for (int b = 0; b < 8; b++)
                r = r & 1 ? (r >> 1) ^ poly[a] : r >> 1;
            table[a][i] = r;
        }
}

static const char *const names[] = {
    [SUM_CRC32] = "crc32", [SUM_CRC32C] = "crc32c", [SUM_CRC64NVME] = "crc64nvme",
    [SUM_SHA1] = "sha1",   [SUM_SHA256] = "sha256",
};

enum checksum_alg checksum_alg(const char *name)
{
    for (int a = SUM_CRC32; a <= SUM_SHA256; a++)
        if (name && strcasecmp(name, names[a]) == 0)
            return (enum checksum_alg)a;
    return SUM_NONE;
}

const char *checksum_name(enum checksum_alg alg)
{
    return alg > SUM_NONE && alg <= SUM_SHA256 ? names[alg] : "";
}

size_t checksum_b64_len(enum checksum_alg alg)
{
    static const size_t bytes[] = {
        [SUM_CRC32] = 4, [SUM_CRC32C] = 4, [SUM_CRC64NVME] = 8, [SUM_SHA1] = 20, [SUM_SHA256] = 32};

    return alg > SUM_NONE && alg <= SUM_SHA256 ? 4 * ((bytes[alg] + 2) / 3) : 0;
}

static uint64_t crc_all_ones(enum checksum_alg alg)
{
    return alg == SUM_CRC64NVME ? UINT64_MAX : 0xFFFFFFFFu;
}

void checksum_init(struct checksum *c, enum checksum_alg alg)
{
    c->alg = alg;
    c->md = NULL;
    c->crc = crc_all_ones(alg);
    if (alg == SUM_SHA1 || alg == SUM_SHA256) {
        c->md = EVP_MD_CTX_new();
        if (c->md)
            EVP_DigestInit_ex(c->md, alg == SUM_SHA1 ? EVP_sha1() : EVP_sha256(), NULL);
    } else if (alg != SUM_NONE) {
        pthread_once(&tables_once, tables_make);
    }
}

void checksum_update(struct checksum *c, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    const uint64_t *t;
    uint64_t crc = c->crc;

    if (c->md) {
        EVP_DigestUpdate(c->md, buf, n);
        return;
    }
    if (c->alg == SUM_NONE || c->alg > SUM_CRC64NVME)
        return;
    t = table[c->alg];
    for (size_t i = 0; i < n; i++)
        crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    c->crc = crc;
}

void checksum_final(struct checksum *c, char out[CHECKSUM_B64_MAX])
{
    unsigned char v[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    if (c->md) {
        EVP_DigestFinal_ex(c->md, v, &n);
    } else if (c->alg != SUM_NONE) {
        uint64_t crc = c->crc ^ crc_all_ones(c->alg);

        n = c->alg == SUM_CRC64NVME ? 8 : 4;
        for (unsigned i = 0; i < n; i++)
            v[i] = (unsigned char)(crc >> (8 * (n - 1 - i)));
    }
    out[0] = '\0';
    if (n)
        EVP_EncodeBlock((unsigned char *)out, v, (int)n);
    checksum_free(c);
}

void checksum_free(struct checksum *c)
{
    if (c->md)
        EVP_MD_CTX_free(c->md);
    c->md = NULL;
    c->alg = SUM_NONE;
}
