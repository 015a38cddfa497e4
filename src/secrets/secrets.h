/*
 * Secrets at rest: AES-256-GCM (OpenSSL EVP) under one master key kept in the data directory
 * (DATA/master.key, 32 random bytes, mode 0600, made on first start). A sealed value is the
 * hex of a random 12-byte nonce, the ciphertext and the 16-byte tag; the caller's aad (a row
 * id or key name) is authenticated with it, so a sealed value copied to another row does not
 * open. Plaintext is never logged. Thread-safe after secrets_init().
 */
#ifndef LYCEUMD_SECRETS_SECRETS_H
#define LYCEUMD_SECRETS_SECRETS_H

#include <stddef.h>

/* Loads (or makes) the master key under data_dir. 0 or LY_EIO. Call once, before threads. */
int secrets_init(const char *data_dir);

/* Seals n bytes of plain: returns a malloc'd NUL-terminated hex string (the caller frees). */
char *secrets_seal(const char *aad, const void *plain, size_t n);
/* Opens a sealed value: a malloc'd NUL-terminated plaintext (the caller frees, after
 * clearing it), its length in *n when n is not NULL; NULL when it does not authenticate. */
char *secrets_open(const char *aad, const char *sealed, size_t *n);

#endif
