/*
 * Multi-factor authentication with TOTP (RFC 6238 via liboath: SHA-1, 6 digits, 30 s steps,
 * one step of clock drift either way) and single-use backup codes.
 *
 * Used by the login flow (identity.c) and the /mfa routes (api/mfa.c), whose steps are the
 * use cases at the end: each owns its transaction.
 */
#ifndef LYCEUMD_AUTH_MFA_H
#define LYCEUMD_AUTH_MFA_H

#include "core/arena.h"
#include "store/users.h"

#include <stdint.h>

#define MFA_TOKEN_TTL_S        300
#define MFA_TOKEN_MAX_ATTEMPTS 5

#include <stddef.h>

#define MFA_BACKUP_CODES 10
#define MFA_BACKUP_LEN   10 /* characters, shown as xxxxx-xxxxx */

/* Initialises liboath; call once at start-up. */
int mfa_init(void);

/*
 * Checks code for a user with MFA enabled: a current TOTP code (each time step accepted once,
 * so a code cannot be replayed) or an unused backup code (then used up). Returns 0, or
 * LY_EUNAUTH with *why set.
 */
int mfa_check_code(struct arena *a, const struct user_row *u, const char *code, const char **why);

/* Checks a TOTP code against a base32 secret (enabled or not) and spends its time step. */
int mfa_totp_check(const char *user_id, const char *secret_b32, const char *code, const char **why);

/* A new random 160-bit secret, base32 (33 bytes with NUL). */
int mfa_secret_new(char *b32, size_t n);
/* Ten fresh backup codes, shown as xxxxx-xxxxx, with the SHA-256 hex of each (no dash). */
void mfa_backup_codes(char codes[MFA_BACKUP_CODES][MFA_BACKUP_LEN + 2],
                      char hashes[MFA_BACKUP_CODES][65]);

/* Opens a login challenge for user_id: token_out receives the opaque mfa_token (64 bytes). */
int mfa_challenge_new(const char *user_id, char token_out[64]);
/*
 * Looks up a challenge token for a second login step: fills user_id, counts the attempt.
 * LY_EUNAUTH (with *why) when unknown, expired, used or out of attempts. mfa_challenge_done()
 * marks it used after a successful check.
 */
int mfa_challenge_get(const char *token, char user_id[40], const char **why);
int mfa_challenge_done(const char *token);

/* The user whose MFA a request manages: LY_ENOTFOUND when there is none. */
int mfa_user(struct arena *a, const char *user_id, struct user_row *u);
/* Unused backup codes of the user. */
int64_t mfa_backups_left(const char *user_id);

/* A fresh set of backup codes: the codes, shown once; only their hashes are stored. */
struct mfa_backup_set {
    char codes[MFA_BACKUP_CODES][MFA_BACKUP_LEN + 2];
    char hashes[MFA_BACKUP_CODES][65];
};

/* Enrolment, first step: a new pending secret (base32, into secret) and new backup codes (into
 * b), stored in one transaction; MFA stays off until mfa_enable(). */
int mfa_enroll(const char *user_id, char secret[64], struct mfa_backup_set *b);
/* Enrolment, second step (its code checked): turns MFA on. */
int mfa_enable(const char *user_id);
/* Turns MFA off and forgets the secret and codes, in one transaction. */
int mfa_disable(const char *user_id);
/* Replaces the backup codes by new ones (into b), in one transaction. */
int mfa_backups_regenerate(const char *user_id, struct mfa_backup_set *b);

#endif
