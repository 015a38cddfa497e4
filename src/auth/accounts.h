/*
 * Creating accounts and keys outside a request: the operator's CLI, the demo account, and
 * invite acceptance all go through here, so a user is always made the same way (argon2id
 * password, default org with the user as owner, optional opening grant). An account's own
 * view of itself (/user/status) and its deletion are here too.
 */
#ifndef LYCEUMD_AUTH_ACCOUNTS_H
#define LYCEUMD_AUTH_ACCOUNTS_H

#include "auth/password.h"
#include "core/arena.h"
#include "store/users.h"

#include <stdint.h>

struct new_account {
    char user_id[40];
    char org_id[40];
    char *org_slug;
};

/*
 * Creates a user and its default org in one transaction. credits (micro-credits, may be 0) is
 * granted to the new org in the ledger. When in_tx, the caller's transaction is used.
 * LY_ECONFLICT when the email is taken, LY_EINVAL for a bad email or short password (*why).
 * The password is hashed first (argon2id, tens of milliseconds): with in_tx, prefer
 * accounts_prepare() before the transaction and accounts_create_hashed() inside it, so that
 * the write lock is not held while hashing.
 */
int accounts_create(struct arena *a, const char *email, const char *password, const char *full_name,
                    int is_admin, int64_t credits, int in_tx, struct new_account *out,
                    const char **why);
/* The checks of accounts_create() (LY_EINVAL with *why) and the password's hash into hash. */
int accounts_prepare(const char *email, const char *password, char hash[PASSWORD_HASH_MAX],
                     const char **why);
/* accounts_create() with a hash from accounts_prepare(). */
int accounts_create_hashed(struct arena *a, const char *email, const char *hash,
                           const char *full_name, int is_admin, int64_t credits, int in_tx,
                           struct new_account *out, const char **why);

struct new_key {
    char key[44]; /* the full key: shown to its owner once, never stored */
    char id[37];
    char prefix[9];
    int64_t created_at;
};

/* Creates an API key acting as user_id: a user key (org_id NULL) or an org key. expires_at in
 * microseconds, 0 for never. */
int accounts_key_create(const char *user_id, const char *org_id, const char *name,
                        int64_t expires_at, struct new_key *k);

/* The user with this email (the operator's commands name users so); LY_ENOTFOUND. */
int accounts_find(struct arena *a, const char *email, struct user_row *u);

/* What GET /user/status shows of user_id, with org_id's balance (org_id may be ""). LY_ENOTFOUND
 * when the user does not exist. */
int accounts_status(struct arena *a, const char *user_id, const char *org_id,
                    struct user_status *s);

/*
 * Deletes user_id's account in one transaction: the user, orgs it alone was in, its keys and
 * tokens, the S3 credentials it asked for, and its queued runs (ended with why_runs); then ends
 * its runs that are going. LY_ECONFLICT (with *why) when it is the last owner of an org with
 * other members.
 */
int accounts_delete(struct arena *a, const char *user_id, const char *why_runs, const char **why);

/* Checks an email address's shape: one '@', no spaces, at most 320 bytes. */
int accounts_email_ok(const char *email);

#endif
