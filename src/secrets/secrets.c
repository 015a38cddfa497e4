/* See secrets.h. The key lives in a static buffer for the life of the process. */
#include "secrets/secrets.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONCE 12
#define TAG   16

static unsigned char master[32];
static int loaded;

int secrets_init(const char *data_dir)
{
    char path[1100];

    snprintf(path, sizeof(path), "%s/master.key", data_dir);
    if (key_file_load(path, master, sizeof(master)))
        return LY_EIO;
    loaded = 1;
    return 0;
}

/* One AES-256-GCM pass; enc 1 seals, 0 opens (checking tag). 0 or -1. */
static int gcm(int enc, const unsigned char *nonce, const char *aad, const unsigned char *in,
               size_t n, unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, ok;

    if (!ctx)
        return -1;
    ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) &&
         EVP_CipherInit_ex(ctx, NULL, NULL, master, nonce, enc) &&
         EVP_CipherUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) &&
         EVP_CipherUpdate(ctx, out, &len, in, (int)n);
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, tag);
    if (ok)
        ok = EVP_CipherFinal_ex(ctx, out + len, &len);
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, tag);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

char *secrets_seal(const char *aad, const void *plain, size_t n)
{
    size_t total = NONCE + n + TAG;
    unsigned char *buf = xmalloc(total);
    char *hex = xmalloc(2 * total + 1);

    if (!loaded) {
        log_error("secrets: the master key is not loaded");
        abort();
    }
    random_bytes(buf, NONCE);
    if (gcm(1, buf, aad, plain, n, buf + NONCE, buf + NONCE + n)) {
        log_error("secrets: AES-256-GCM failed");
        abort();
    }
    hex_encode(buf, total, hex);
    free(buf);
    return hex;
}

static int unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

char *secrets_open(const char *aad, const char *sealed, size_t *n)
{
    size_t hl = sealed ? strlen(sealed) : 0, total = hl / 2, pn;
    unsigned char *buf;
    char *plain;

    if (!loaded || hl % 2 || total < NONCE + TAG)
        return NULL;
    buf = xmalloc(total);
    for (size_t i = 0; i < total; i++) {
        int hi = unhex(sealed[2 * i]), lo = unhex(sealed[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            free(buf);
            return NULL;
        }
        buf[i] = (unsigned char)(hi << 4 | lo);
    }
    pn = total - NONCE - TAG;
    plain = xmalloc(pn + 1);
    if (gcm(0, buf, aad, buf + NONCE, pn, (unsigned char *)plain, buf + NONCE + pn)) {
        OPENSSL_cleanse(plain, pn + 1);
        free(plain);
        free(buf);
        return NULL;
    }
    plain[pn] = '\0';
    free(buf);
    if (n)
        *n = pn;
    return plain;
}
