/*
 * API keys, user-scoped (org_id NULL) and org-scoped. Only the SHA-256 of a key is stored.
 * Every function is scoped in SQL: a user's keys by user_id, an org's keys by org_id.
 */
#ifndef LYCEUMD_STORE_KEYS_H
#define LYCEUMD_STORE_KEYS_H

#include <jansson.h>
#include <stdint.h>

/* Inserts a key; expires_at 0 = never. */
int keys_insert(const char *id, const char *key_hash, const char *prefix, const char *name,
                const char *user_id, const char *org_id, int64_t created_at, int64_t expires_at);

/* The user's own keys (not revoked), as user-key objects (API.md section 1). */
int keys_list_user(const char *user_id, json_t *out_array);
/* The org's keys (not revoked), as org-key objects (API.md section 3). */
int keys_list_org(const char *org_id, json_t *out_array);
/* Revokes; LY_ENOTFOUND when the key is not the user's (or org's) or already revoked. */
int keys_revoke_user(const char *user_id, const char *key_id);
int keys_revoke_org(const char *org_id, const char *key_id);
/* Flips is_active of a user's key and returns the key object in *out. */
int keys_toggle_user(const char *user_id, const char *key_id, json_t **out);
int64_t keys_count_active(const char *user_id);

/* The key whose hash is given, if it belongs to user_id: a validate answer (API.md 1). */
int keys_validate(const char *user_id, const char *key_hash, json_t **out);

#endif
