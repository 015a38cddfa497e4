/* See storage.h. */
#include "store/storage.h"
#include "core/arena.h"
#include "core/err.h"
#include "store/db.h"

#include <stdio.h>
#include <string.h>

int s3cred_insert(const char *access_key, const char *user_id, const char *owner,
                  const char *sealed_secret, const char *token_hash, int64_t created_at,
                  int64_t expires_at)
{
    int n = q_exec("INSERT INTO s3_credentials (access_key, user_id, owner, sealed_secret, "
                   "token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   "sssssii", access_key, user_id, owner, sealed_secret, token_hash, created_at,
                   expires_at);

    return n < 0 ? n : 0;
}

int s3cred_get(const char *access_key, struct s3cred *out)
{
    sqlite3_stmt *st = q_prepare("SELECT user_id, sealed_secret, token_hash, expires_at, "
                                 "coalesce(owner, user_id) FROM s3_credentials WHERE "
                                 "access_key = ?",
                                 "s", access_key);
    int rc;

    memset(out, 0, sizeof(*out));
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(out->user_id, sizeof(out->user_id), "%s", q_text(st, 0));
        out->sealed_secret = xstrdup(q_text(st, 1) ? q_text(st, 1) : "");
        snprintf(out->token_hash, sizeof(out->token_hash), "%s", q_text(st, 2));
        out->expires_at = sqlite3_column_int64(st, 3);
        snprintf(out->owner, sizeof(out->owner), "%s", q_text(st, 4));
    }
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

int s3cred_prune(int64_t before)
{
    int n = q_exec("DELETE FROM s3_credentials WHERE expires_at < ?", "i", before);

    return n < 0 ? n : 0;
}

int s3cred_delete_user(const char *user_id)
{
    return q_exec("DELETE FROM s3_credentials WHERE user_id = ?", "s", user_id) < 0 ? LY_EDB : 0;
}
