/* See s3creds.h. */
#include "storage/s3creds.h"
#include "core/err.h"
#include "core/util.h"
#include "secrets/secrets.h"
#include "store/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int s3creds_issue(const char *user_id, const char *owner, int64_t ttl_s, struct s3creds_new *out)
{
    char hash[65], aad[32];
    char *sealed;
    int64_t now = now_us();
    int err;

    out->expires_at = now + ttl_s * 1000000;
    memcpy(out->access_key, "LY", 3);
    random_base62(out->access_key + 2, 18);
    for (char *p = out->access_key; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    random_base62(out->secret_key, 40);
    random_base62(out->session_token, 64);
    sha256_hex(out->session_token, strlen(out->session_token), hash);
    snprintf(aad, sizeof(aad), "s3:%s", out->access_key);
    sealed = secrets_seal(aad, out->secret_key, strlen(out->secret_key));
    s3cred_prune(now - 86400LL * 1000000);
    err = s3cred_insert(out->access_key, user_id, owner, sealed, hash, now, out->expires_at);
    free(sealed);
    return err;
}

int s3creds_find(const char *access_key, struct s3creds_found *out)
{
    struct s3cred cred;
    char aad[160];
    int err = s3cred_get(access_key, &cred);

    if (err)
        return err;
    /* A key that was found fits: the ones issued are 20 characters. */
    snprintf(aad, sizeof(aad), "s3:%s", access_key);
    out->secret = secrets_open(aad, cred.sealed_secret, NULL);
    free(cred.sealed_secret);
    if (!out->secret)
        return LY_EUNAUTH;
    snprintf(out->owner, sizeof(out->owner), "%s", cred.owner);
    memcpy(out->token_hash, cred.token_hash, sizeof(out->token_hash));
    out->expires_at = cred.expires_at;
    return 0;
}
