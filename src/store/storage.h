/*
 * The s3_credentials table: temporary S3 credentials, each bound to one bucket (its owner: a
 * user, or "o-<org id>" for credentials an org API key asked for) and to the user who asked
 * (deleting that user revokes them), with the secret key sealed (secrets/secrets.h, AAD
 * "s3:<access key>") and the session token only as its SHA-256.
 */
#ifndef LYCEUMD_STORE_STORAGE_H
#define LYCEUMD_STORE_STORAGE_H

#include <stdint.h>

struct s3cred {
    char user_id[40];
    char owner[40];      /* the bucket these open */
    char *sealed_secret; /* malloc'd; the caller frees */
    char token_hash[65];
    int64_t expires_at; /* µs */
};

int s3cred_insert(const char *access_key, const char *user_id, const char *owner,
                  const char *sealed_secret, const char *token_hash, int64_t created_at,
                  int64_t expires_at);
/* 0, LY_ENOTFOUND or LY_EDB. */
int s3cred_get(const char *access_key, struct s3cred *out);
/* Deletes credentials that expired before `before` (µs). */
int s3cred_prune(int64_t before);
/* Deletes every credential user_id asked for (their account is going). 0 or LY_EDB. */
int s3cred_delete_user(const char *user_id);

#endif
