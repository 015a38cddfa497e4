/*
 * Users, their default organisation, and the caller look-ups that every request makes.
 * Functions here run single statements; callers that need several in one transaction wrap
 * them in store_begin()/store_commit(). Strings returned are allocated from the given arena.
 */
#ifndef LYCEUMD_STORE_USERS_H
#define LYCEUMD_STORE_USERS_H

#include "core/arena.h"

#include <stdint.h>

struct user_row {
    char id[40];
    char *email;
    char *password_hash;
    char *full_name;
    int is_active;
    int is_admin;
    int64_t created_at;
    char *mfa_secret;
    int mfa_enabled;
    int64_t mfa_last_step;
};

/*
 * Creates a user with a default organisation (slug from the email's local part, made unique)
 * in which the user is owner. Must run inside a transaction. LY_ECONFLICT if the email exists.
 */
int users_create(struct arena *a, const char *email, const char *password_hash,
                 const char *full_name, int is_admin, char user_id[40], char org_id[40],
                 char **org_slug);
int users_get(struct arena *a, const char *id, struct user_row *u);
int users_get_by_email(struct arena *a, const char *email, struct user_row *u);
int users_set_password(const char *user_id, const char *password_hash);
/* Deletes the user, memberships, keys and tokens; orgs left with no member are deleted. Must
 * run inside a transaction. LY_ECONFLICT (with *why) if the user is the last owner of an org
 * that has other members. */
int users_delete(struct arena *a, const char *user_id, const char **why);
int64_t users_count(void);

/* A user-resolved look-up of an API key by the hash of its secret. */
struct key_auth {
    char key_id[40];
    char user_id[40];
    char org_id[40]; /* empty for a user key */
    char *email;
    int user_active, is_admin, key_active, revoked;
    int64_t expires_at, last_used_at;
};
int users_key_auth(struct arena *a, const char *key_hash, struct key_auth *k);
/* Records a use of the key, at most once a minute (a write per request would serialise them). */
void users_key_touch(const char *key_id, int64_t last_used_at);

/* What GET /user/status shows, read in one statement (one read transaction). */
struct user_status {
    char id[40];
    char *email;
    char *full_name;
    int64_t created_at;
    int is_active;
    int64_t active_keys; /* active, unrevoked, unexpired keys of the user */
    int64_t balance;     /* the org's balance in micro-credits; 0 without an org */
};
/* org_id may be NULL or "". LY_ENOTFOUND when the user does not exist. */
int users_status(struct arena *a, const char *user_id, const char *org_id, struct user_status *s);

/* For a JWT: the user and whether the token's family is still alive. */
int users_jwt_auth(struct arena *a, const char *user_id, const char *family_id, char **email,
                   int *is_active, int *is_admin, int *family_revoked);

/* The caller's membership: in org_slug if given, else in org_id if given, else the default.
 * LY_ENOTFOUND when there is none. */
int users_membership(struct arena *a, const char *user_id, const char *org_slug, const char *org_id,
                     char org_id_out[40], char **slug_out, char **role_out);

#endif
