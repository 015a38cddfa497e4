/* See mfa.h. */
#include "store/mfa.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"

#include <stdio.h>

static int ok(int n)
{
    return n < 0 ? n : 0;
}

int mfa_store_replace_backups(const char *user_id, const char *const *code_hashes, int ncodes)
{
    int err = ok(q_exec("DELETE FROM mfa_backup_codes WHERE user_id = ?", "s", user_id));

    for (int i = 0; !err && i < ncodes; i++)
        err = ok(q_exec("INSERT INTO mfa_backup_codes (user_id, code_hash) VALUES (?, ?)", "ss",
                        user_id, code_hashes[i]));
    return err;
}

int mfa_store_enroll(const char *user_id, const char *secret, const char *const *code_hashes,
                     int ncodes)
{
    int err = ok(q_exec("UPDATE users SET mfa_secret = ?, mfa_enabled = 0, mfa_last_step = 0 "
                        "WHERE id = ?",
                        "ss", secret, user_id));

    return err ? err : mfa_store_replace_backups(user_id, code_hashes, ncodes);
}

int mfa_store_set_enabled(const char *user_id, int enabled)
{
    return ok(
        q_exec("UPDATE users SET mfa_enabled = ? WHERE id = ?", "is", (int64_t)enabled, user_id));
}

int mfa_store_use_step(const char *user_id, int64_t step)
{
    int n = q_exec("UPDATE users SET mfa_last_step = ? WHERE id = ? AND mfa_last_step < ?", "isi",
                   step, user_id, step);

    return n < 0 ? n : n == 1 ? 0 : LY_ECONFLICT;
}

int mfa_store_use_backup(const char *user_id, const char *code_hash)
{
    int n = q_exec("UPDATE mfa_backup_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? "
                   "AND used_at IS NULL",
                   "iss", now_us(), user_id, code_hash);

    return n < 0 ? n : n == 1 ? 0 : LY_ENOTFOUND;
}

int64_t mfa_store_backups_left(const char *user_id)
{
    int64_t n = 0;

    q_int(&n, "SELECT count(*) FROM mfa_backup_codes WHERE user_id = ? AND used_at IS NULL", "s",
          user_id);
    return n;
}

int mfa_store_clear(const char *user_id)
{
    int err = ok(
        q_exec("UPDATE users SET mfa_secret = NULL, mfa_enabled = 0 WHERE id = ?", "s", user_id));

    return err ? err : ok(q_exec("DELETE FROM mfa_backup_codes WHERE user_id = ?", "s", user_id));
}

int mfa_store_challenge_new(const char *token_hash, const char *user_id, int64_t expires_at)
{
    return ok(q_exec("INSERT INTO mfa_challenges (token_hash, user_id, expires_at) VALUES (?, ?, "
                     "?)",
                     "ssi", token_hash, user_id, expires_at));
}

int mfa_store_challenge_take(const char *token_hash, int max_attempts, char user_id[40])
{
    sqlite3_stmt *st;
    int n, rc;

    n = q_exec("UPDATE mfa_challenges SET attempts = attempts + 1 WHERE token_hash = ? AND "
               "used_at IS NULL AND expires_at > ? AND attempts < ?",
               "sii", token_hash, now_us(), (int64_t)max_attempts);
    if (n < 0)
        return n;
    if (n == 0)
        return LY_ENOTFOUND;
    st = q_prepare("SELECT user_id FROM mfa_challenges WHERE token_hash = ?", "s", token_hash);
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(user_id, 40, "%s", q_text(st, 0));
    q_done(st);
    return rc == SQLITE_ROW ? 0 : LY_EDB;
}

int mfa_store_challenge_done(const char *token_hash)
{
    return ok(q_exec("UPDATE mfa_challenges SET used_at = ? WHERE token_hash = ?", "is", now_us(),
                     token_hash));
}
