/*
 * API keys after they are made (accounts.h makes them): listing, switching on and off,
 * revoking and validating, for a user's own keys and an org's keys. Every function is scoped
 * by the owner's id (user_id or org_id); a key of somebody else is LY_ENOTFOUND. Rows are
 * store/keys.h's, their strings allocated from the arena given; api/ shapes them.
 */
#ifndef LYCEUMD_AUTH_APIKEYS_H
#define LYCEUMD_AUTH_APIKEYS_H

#include "core/arena.h"
#include "store/keys.h"

/* The user's own (unrevoked) keys, newest first, into *rows: their number, or LY_EDB. */
int apikeys_list_user(struct arena *a, const char *user_id, struct key_row **rows);
/* Revokes one of the user's keys; LY_ENOTFOUND when it is not theirs or already revoked. */
int apikeys_revoke_user(const char *user_id, const char *key_id);
/* Flips whether one of the user's keys is active, and reads it back into *k. */
int apikeys_toggle_user(struct arena *a, const char *user_id, const char *key_id,
                        struct key_row *k);
/* Checks the full key: out->valid when it is one of user_id's and usable now. */
int apikeys_validate(struct arena *a, const char *user_id, const char *key, struct key_check *out);

/* The org's (unrevoked) keys, newest first, into *rows: their number, or LY_EDB. */
int apikeys_list_org(struct arena *a, const char *org_id, struct key_row **rows);
/* Revokes one of the org's keys; LY_ENOTFOUND when it is not the org's or already revoked. */
int apikeys_revoke_org(const char *org_id, const char *key_id);

#endif
