/* See keys.h. Times are microseconds; json_time() renders them. */
#include "store/keys.h"
#include "core/err.h"
#include "core/json.h"
#include "core/util.h"
#include "store/db.h"

static json_t *opt_time(sqlite3_stmt *st, int col)
{
    return json_time(sqlite3_column_type(st, col) == SQLITE_NULL ? 0
                                                                 : sqlite3_column_int64(st, col));
}

int keys_insert(const char *id, const char *key_hash, const char *prefix, const char *name,
                const char *user_id, const char *org_id, int64_t created_at, int64_t expires_at)
{
    int n = q_exec("INSERT INTO api_keys (id, key_hash, key_prefix, name, user_id, org_id, "
                   "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, nullif(?, 0))",
                   "ssssssii", id, key_hash, prefix, name, user_id, org_id, created_at, expires_at);

    return n < 0 ? n : 0;
}

#define USER_KEY_COLS "id, name, key_prefix, is_active, created_at, expires_at, last_used_at"

static json_t *user_key_obj(sqlite3_stmt *st)
{
    int64_t exp = sqlite3_column_int64(st, 5);

    return json_pack("{s:s,s:s,s:s,s:b,s:o,s:o,s:o,s:b}", "id", q_text(st, 0), "key_name",
                     q_text(st, 1), "key_prefix", q_text(st, 2), "is_active",
                     sqlite3_column_int(st, 3), "created_at", opt_time(st, 4), "expires_at",
                     opt_time(st, 5), "last_used_at", opt_time(st, 6), "is_expired",
                     exp && exp < now_us());
}

static int list_rows(sqlite3_stmt *st, json_t *out, json_t *(*row)(sqlite3_stmt *))
{
    int rc;

    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(out, row(st));
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int keys_list_user(const char *user_id, json_t *out)
{
    return list_rows(
        q_prepare("SELECT " USER_KEY_COLS " FROM api_keys WHERE user_id = ? AND "
                  "org_id IS NULL AND revoked_at IS NULL ORDER BY created_at DESC, rowid DESC",
                  "s", user_id),
        out, user_key_obj);
}

static json_t *org_key_obj(sqlite3_stmt *st)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:b,s:o,s:o,s:o,s:s}", "id", q_text(st, 0), "org_id",
                     q_text(st, 1), "name", q_text(st, 2), "prefix", q_text(st, 3), "is_active",
                     sqlite3_column_int(st, 4), "created_at", opt_time(st, 5), "expires_at",
                     opt_time(st, 6), "last_used_at", opt_time(st, 7), "created_by", q_text(st, 8));
}

int keys_list_org(const char *org_id, json_t *out)
{
    return list_rows(q_prepare("SELECT id, org_id, name, key_prefix, is_active, created_at, "
                               "expires_at, last_used_at, user_id FROM api_keys WHERE org_id = ? "
                               "AND revoked_at IS NULL ORDER BY created_at DESC, rowid DESC",
                               "s", org_id),
                     out, org_key_obj);
}

int keys_revoke_user(const char *user_id, const char *key_id)
{
    int n = q_exec("UPDATE api_keys SET revoked_at = ?, is_active = 0 WHERE id = ? AND "
                   "user_id = ? AND org_id IS NULL AND revoked_at IS NULL",
                   "iss", now_us(), key_id, user_id);

    return n < 0 ? n : n == 1 ? 0 : LY_ENOTFOUND;
}

int keys_revoke_org(const char *org_id, const char *key_id)
{
    int n = q_exec("UPDATE api_keys SET revoked_at = ?, is_active = 0 WHERE id = ? AND "
                   "org_id = ? AND revoked_at IS NULL",
                   "iss", now_us(), key_id, org_id);

    return n < 0 ? n : n == 1 ? 0 : LY_ENOTFOUND;
}

int keys_toggle_user(const char *user_id, const char *key_id, json_t **out)
{
    sqlite3_stmt *st;
    int n, rc;

    n = q_exec("UPDATE api_keys SET is_active = 1 - is_active WHERE id = ? AND user_id = ? AND "
               "org_id IS NULL AND revoked_at IS NULL",
               "ss", key_id, user_id);
    if (n < 0)
        return n;
    if (n == 0)
        return LY_ENOTFOUND;
    st = q_prepare("SELECT " USER_KEY_COLS " FROM api_keys WHERE id = ?", "s", key_id);
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = user_key_obj(st);
    q_done(st);
    return rc == SQLITE_ROW ? 0 : LY_EDB;
}

int64_t keys_count_active(const char *user_id)
{
    int64_t n = 0;

    q_int(&n,
          "SELECT count(*) FROM api_keys WHERE user_id = ? AND is_active = 1 AND revoked_at IS "
          "NULL AND (expires_at IS NULL OR expires_at > ?)",
          "si", user_id, now_us());
    return n;
}

int keys_validate(const char *user_id, const char *key_hash, json_t **out)
{
    sqlite3_stmt *st = q_prepare(
        "SELECT k.user_id, u.email, k.name, k.created_at, k.expires_at, k.last_used_at, "
        "k.is_active AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) "
        "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ? AND k.user_id = ?",
        "iss", now_us(), key_hash, user_id);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_int(st, 6))
        *out = json_pack("{s:b,s:s,s:s,s:s,s:o,s:o,s:o}", "valid", 1, "user_id", q_text(st, 0),
                         "email", q_text(st, 1), "key_name", q_text(st, 2), "created_at",
                         opt_time(st, 3), "expires_at", opt_time(st, 4), "last_used_at",
                         opt_time(st, 5));
    else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *out = json_pack("{s:b,s:n,s:n,s:n,s:n,s:n,s:n}", "valid", 0, "user_id", "email",
                         "key_name", "created_at", "expires_at", "last_used_at");
    q_done(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : LY_EDB;
}
