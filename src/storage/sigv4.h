/*
 * AWS Signature Version 4, as S3 verifies it: the canonical request, the string to sign, the
 * signing key and the signature, for header-signed and presigned requests, and the chunk
 * signatures of aws-chunked uploads (STREAMING-AWS4-HMAC-SHA256-PAYLOAD). Pure functions over
 * their arguments (HMAC-SHA256 and SHA-256 from OpenSSL); strings come from the caller's arena.
 */
#ifndef LYCEUMD_STORAGE_SIGV4_H
#define LYCEUMD_STORAGE_SIGV4_H

#include "core/arena.h"

#include <stddef.h>

/* One query parameter, decoded; v NULL for a parameter without '='. */
struct sigv4_kv {
    const char *k, *v;
};

/* What the Authorization header (or the X-Amz-* query of a presigned URL) says. */
struct sigv4_auth {
    char access_key[128];
    char date[16]; /* yyyymmdd of the scope */
    char region[64];
    char service[32];
    char scope[256]; /* date/region/service/aws4_request */
    char signed_headers[1024];
    char signature[72];
};

/* URI-encodes s as SigV4 wants: unreserved (A-Z a-z 0-9 - _ . ~) kept, '/' kept when
 * keep_slash, everything else %XX in upper case. */
char *sigv4_encode(struct arena *a, const char *s, int keep_slash);
/* The canonical query string of kv[0..n) (X-Amz-Signature left out), sorted by name then
 * value, both encoded. */
char *sigv4_canonical_query(struct arena *a, const struct sigv4_kv *kv, int n);
/* The canonical request. path is the decoded path ("" means "/"); header(ctx, name) answers
 * each lower-case name of signed_headers (NULL: empty). */
char *sigv4_canonical_request(struct arena *a, const char *method, const char *path,
                              const char *canonical_query, const char *signed_headers,
                              const char *(*header)(void *ctx, const char *name), void *ctx,
                              const char *payload_hash);
void sigv4_signing_key(const char *secret, const char *date, const char *region,
                       const char *service, unsigned char key[32]);
/* The signature (hex) of canonical request creq made at amz_date (yyyymmddThhmmssZ). */
void sigv4_sign(const unsigned char key[32], const char *amz_date, const char *scope,
                const char *creq, char out[65]);
/* The signature of one aws-chunked chunk whose data hashes (SHA-256 hex) to chunk_hash. */
void sigv4_chunk_sign(const unsigned char key[32], const char *amz_date, const char *scope,
                      const char *prev_sig, const char *chunk_hash, char out[65]);
/* Parses "AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request, SignedHeaders=...,
 * Signature=...". 0 or -1 (malformed). */
int sigv4_parse_header(const char *authorization, struct sigv4_auth *out);
/* Parses an X-Amz-Credential value "AK/date/region/service/aws4_request". 0 or -1. */
int sigv4_parse_credential(const char *cred, struct sigv4_auth *out);

#endif
