/*
 * Temporary S3 credentials (API.md 9): issued by POST /storage/credentials for one bucket, and
 * looked up when an S3 request is signed with them (api/s3.c). The secret key is stored sealed
 * (secrets/secrets.h, AAD "s3:<access key>"), the session token only as its SHA-256; deleting
 * the user who asked for them revokes them (accounts_delete). Thread-safe.
 */
#ifndef LYCEUMD_STORAGE_S3CREDS_H
#define LYCEUMD_STORAGE_S3CREDS_H

#include <stdint.h>

/* New credentials, shown once. */
struct s3creds_new {
    char access_key[21];    /* "LY" and 18 upper-case letters or digits */
    char secret_key[41];    /* 40 base62 characters */
    char session_token[65]; /* 64 base62 characters */
    int64_t expires_at;     /* µs */
};

/* Issues credentials for bucket owner (bucket_owner()) on behalf of user_id, lasting ttl_s
 * seconds; credentials expired for more than a day are pruned first. 0 or LY_EDB. */
int s3creds_issue(const char *user_id, const char *owner, int64_t ttl_s, struct s3creds_new *out);

/* Credentials as a signed request finds them. */
struct s3creds_found {
    char owner[40];      /* the bucket they open */
    char *secret;        /* the secret key, malloc'd: the caller clears and frees it */
    char token_hash[65]; /* SHA-256 hex of the session token */
    int64_t expires_at;  /* µs */
};

/* Looks up access_key and opens its secret. LY_ENOTFOUND when there are no such credentials,
 * LY_EUNAUTH when their secret no longer opens (another master key), LY_EDB. */
int s3creds_find(const char *access_key, struct s3creds_found *out);

#endif
