/*
 * API keys after they are made (accounts.h makes them): listing, switching on and off,
 * revoking and validating, for a user's own keys and an org's keys. Every function is scoped
 * by the owner's id (user_id or org_id); a key of somebody else is LY_ENOTFOUND. The objects
 * are API.md's (sections 1 and 3), owned by the caller.
 */
#ifndef LYCEUMD_AUTH_APIKEYS_H
#define LYCEUMD_AUTH_APIKEYS_H

#include <jansson.h>

/* Appends the user's own (unrevoked) keys to out. */
int apikeys_list_user(const char *user_id, json_t *out);
/* Revokes one of the user's keys; LY_ENOTFOUND when it is not theirs or already revoked. */
int apikeys_revoke_user(const char *user_id, const char *key_id);
/* Flips whether one of the user's keys is active; the key object into *out. */
int apikeys_toggle_user(const char *user_id, const char *key_id, json_t **out);
/* The validate answer for the full key, if it is one of user_id's. */
int apikeys_validate(const char *user_id, const char *key, json_t **out);

/* Appends the org's (unrevoked) keys to out. */
int apikeys_list_org(const char *org_id, json_t *out);
/* Revokes one of the org's keys; LY_ENOTFOUND when it is not the org's or already revoked. */
int apikeys_revoke_org(const char *org_id, const char *key_id);

#endif
