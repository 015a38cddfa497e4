/*
 * Refresh-token families. A login opens a family; each refresh marks the presented token used
 * and adds its successor to the same family. Only hashes of tokens are stored.
 */
#ifndef LYCEUMD_STORE_TOKENS_H
#define LYCEUMD_STORE_TOKENS_H

#include <stdint.h>

int tokens_family_new(const char *family_id, const char *user_id);
int tokens_insert(const char *token_hash, const char *family_id, int64_t expires_at);

struct refresh_row {
    char family_id[40];
    char user_id[40];
    int64_t expires_at;
    int used;
    int family_revoked;
};
int tokens_get(const char *token_hash, struct refresh_row *r);
/* Marks the token used; returns LY_ECONFLICT if it was already used (a lost race). */
int tokens_mark_used(const char *token_hash);
int tokens_revoke_family(const char *family_id);

#endif
