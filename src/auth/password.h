/* Password hashing with argon2id (libargon2), in the PHC string format. */
#ifndef LYCEUMD_AUTH_PASSWORD_H
#define LYCEUMD_AUTH_PASSWORD_H

#define PASSWORD_HASH_MAX 128
#define PASSWORD_MIN_LEN  8
#define PASSWORD_MAX_LEN  1024

/* Hashes password into out (PASSWORD_HASH_MAX bytes). Returns 0 or LY_EINTERNAL. */
int password_hash(const char *password, char out[PASSWORD_HASH_MAX]);
/* 1 when password matches hash. A NULL hash still spends the time of a check (so that an
 * unknown email cannot be told from a wrong password by timing) and returns 0. */
int password_verify(const char *hash, const char *password);

#endif
