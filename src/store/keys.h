/*
 * API keys, user-scoped (org_id NULL) and org-scoped. Only the SHA-256 of a key is stored.
 * Every function is scoped in SQL: a user's keys by user_id, an org's keys by org_id.
 */
#ifndef LYCEUMD_STORE_KEYS_H
#define LYCEUMD_STORE_KEYS_H

#include "core/arena.h"

#include <stdint.h>

/* Inserts a key; expires_at 0 = never. */
int keys_insert(const char *id, const char *key_hash, const char *prefix, const char *name,
                const char *user_id, const char *org_id, int64_t created_at, int64_t expires_at);

/* A key as its owner sees it (never its secret). Times in µs, 0 when unset; strings are
 * allocated from the arena given. */
struct key_row {
    char id[40];
    char org_id[40];  /* "" for a user key */
    char user_id[40]; /* who made it (an org key acts as its creator) */
    char *name;
    char *prefix;
    int is_active;
    int64_t created_at, expires_at, last_used_at;
};

/* The user's own keys (not revoked), newest first, into *rows (from a): their number, or
 * LY_EDB. */
int keys_list_user(struct arena *a, const char *user_id, struct key_row **rows);
/* The org's keys (not revoked), newest first, likewise. */
int keys_list_org(struct arena *a, const char *org_id, struct key_row **rows);
/* Revokes; LY_ENOTFOUND when the key is not the user's (or org's) or already revoked. */
int keys_revoke_user(const char *user_id, const char *key_id);
int keys_revoke_org(const char *org_id, const char *key_id);
/* Flips is_active of a user's key and reads the key back into *k. */
int keys_toggle_user(struct arena *a, const char *user_id, const char *key_id, struct key_row *k);
int64_t keys_count_active(const char *user_id);

/* A key looked up by its hash for its owner (API.md 1's validate). */
struct key_check {
    int valid; /* it is user_id's, active, unrevoked and unexpired; else nothing below is set */
    char *email;
    struct key_row key; /* user_id, name and the times */
};
/* The key whose hash is given, if it belongs to user_id: 0 (valid or not) or LY_EDB. */
int keys_validate(struct arena *a, const char *user_id, const char *key_hash,
                  struct key_check *out);

#endif
