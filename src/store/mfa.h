/* MFA state: the TOTP secret and replay guard on users, backup codes, login challenges. */
#ifndef LYCEUMD_STORE_MFA_H
#define LYCEUMD_STORE_MFA_H

#include <stdint.h>

/* Stores a pending secret (MFA stays off until enrolment is verified) and replaces the
 * backup codes by the given hashes. Must run in a transaction. */
int mfa_store_enroll(const char *user_id, const char *secret, const char *const *code_hashes,
                     int ncodes);
int mfa_store_set_enabled(const char *user_id, int enabled);
/* Records time step step as used; LY_ECONFLICT when it (or a later one) was already used. */
int mfa_store_use_step(const char *user_id, int64_t step);
/* Uses up the backup code with this hash; LY_ENOTFOUND when there is no unused one. */
int mfa_store_use_backup(const char *user_id, const char *code_hash);
int mfa_store_replace_backups(const char *user_id, const char *const *code_hashes, int ncodes);
int64_t mfa_store_backups_left(const char *user_id);
/* Turns MFA off and forgets the secret and codes. */
int mfa_store_clear(const char *user_id);

int mfa_store_challenge_new(const char *token_hash, const char *user_id, int64_t expires_at);
/* Counts an attempt; fills user_id when the challenge is live (not expired, unused, attempts
 * left), else LY_ENOTFOUND. */
int mfa_store_challenge_take(const char *token_hash, int max_attempts, char user_id[40]);
int mfa_store_challenge_done(const char *token_hash);

#endif
