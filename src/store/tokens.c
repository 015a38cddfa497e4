/* See tokens.h. */
#include "store/tokens.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"

#include <stdio.h>

int tokens_family_new(const char *family_id, const char *user_id)
{
    int n = q_exec("INSERT INTO token_families (id, user_id, created_at) VALUES (?, ?, ?)", "ssi",
                   family_id, user_id, now_us());

    return n < 0 ? n : 0;
}

int tokens_insert(const char *token_hash, const char *family_id, int64_t expires_at)
{
    int n = q_exec("INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) "
                   "VALUES (?, ?, ?, ?)",
                   "ssii", token_hash, family_id, now_us(), expires_at);

    return n < 0 ? n : 0;
}

int tokens_get(const char *token_hash, struct refresh_row *r)
{
    sqlite3_stmt *st = q_prepare("SELECT t.family_id, f.user_id, t.expires_at, t.used_at IS NOT "
                                 "NULL, f.revoked_at IS NOT NULL FROM refresh_tokens t JOIN "
                                 "token_families f ON f.id = t.family_id WHERE t.token_hash = ?",
                                 "s", token_hash);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(r->family_id, sizeof(r->family_id), "%s", q_text(st, 0));
        snprintf(r->user_id, sizeof(r->user_id), "%s", q_text(st, 1));
        r->expires_at = sqlite3_column_int64(st, 2);
        r->used = sqlite3_column_int(st, 3);
        r->family_revoked = sqlite3_column_int(st, 4);
    }
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

int tokens_mark_used(const char *token_hash)
{
    int n = q_exec("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS "
                   "NULL",
                   "is", now_us(), token_hash);

    return n < 0 ? n : n == 1 ? 0 : LY_ECONFLICT;
}

int tokens_revoke_family(const char *family_id)
{
    int n = q_exec("UPDATE token_families SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                   "is", now_us(), family_id);

    return n < 0 ? n : 0;
}
