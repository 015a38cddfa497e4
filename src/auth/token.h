/*
 * Tokens: JWT access tokens (HS256 only, via libjwt, with a key generated into the data
 * directory), opaque random tokens, and API keys. Thread-safe after token_init().
 */
#ifndef LYCEUMD_AUTH_TOKEN_H
#define LYCEUMD_AUTH_TOKEN_H

#include <stdint.h>

#define ACCESS_TTL_S  86400
#define REFRESH_TTL_S (30 * 86400)
#define API_KEY_LEN   43 /* "lk_" + 40 base62 characters */

/* Loads data_dir/jwt.key, creating it (32 random bytes, mode 0600) on first start. */
int token_init(const char *data_dir);

/* A signed access token for user_id in refresh family family_id; the caller frees *out. */
int jwt_issue(const char *user_id, const char *family_id, int64_t ttl_s, char **out);
/* Verifies signature, algorithm (HS256 only) and expiry. Fills user_id and family_id. Returns
 * 0 or LY_EUNAUTH with *why set. */
int jwt_check(const char *token, char user_id[40], char family_id[40], const char **why);

/* prefix + n random base62 characters into out. */
void token_random(const char *prefix, int n, char *out, int outlen);
/* A new API key in out (API_KEY_LEN + 1 bytes). */
void apikey_generate(char out[API_KEY_LEN + 1]);

#endif
