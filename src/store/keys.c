/* See keys.h. Times are microseconds (NULL reads as 0). */
#include "store/keys.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"

#include <stdio.h>
#include <string.h>

/* Text column col into the arena ("" for NULL), and a fixed-size copy of it. */
static char *col_str(struct arena *a, sqlite3_stmt *st, int col)
{
    const char *t = q_text(st, col);

    return arena_strdup(a, t ? t : "");
}

static void col_copy(char *dst, size_t n, sqlite3_stmt *st, int col)
{
    const char *t = q_text(st, col);

    snprintf(dst, n, "%s", t ? t : "");
}

int keys_insert(const char *id, const char *key_hash, const char *prefix, const char *name,
                const char *user_id, const char *org_id, int64_t created_at, int64_t expires_at)
{
    int n = q_exec("INSERT INTO api_keys (id, key_hash, key_prefix, name, user_id, org_id, "
                   "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, nullif(?, 0))",
                   "ssssssii", id, key_hash, prefix, name, user_id, org_id, created_at, expires_at);

    return n < 0 ? n : 0;
}

#define USER_KEY_COLS                                                                              \
    "id, name, key_prefix, is_active, created_at, expires_at, last_used_at, user_id, "             \
    "coalesce(org_id, '')"

/* A row of USER_KEY_COLS' shape (the org keys' query selects the same columns). */
static void key_read(struct arena *a, sqlite3_stmt *st, struct key_row *k)
{
    memset(k, 0, sizeof(*k));
    col_copy(k->id, sizeof(k->id), st, 0);
    k->name = col_str(a, st, 1);
    k->prefix = col_str(a, st, 2);
    k->is_active = sqlite3_column_int(st, 3);
    k->created_at = sqlite3_column_int64(st, 4);
    k->expires_at = sqlite3_column_int64(st, 5);
    k->last_used_at = sqlite3_column_int64(st, 6);
    col_copy(k->user_id, sizeof(k->user_id), st, 7);
    col_copy(k->org_id, sizeof(k->org_id), st, 8);
}

static int list_rows(struct arena *a, sqlite3_stmt *st, struct key_row **rows)
{
    int rc, n = 0, cap = 0;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        key_read(a, st, &(*rows)[n++]);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int keys_list_user(struct arena *a, const char *user_id, struct key_row **rows)
{
    return list_rows(
        a,
        q_prepare("SELECT " USER_KEY_COLS " FROM api_keys WHERE user_id = ? AND "
                  "org_id IS NULL AND revoked_at IS NULL ORDER BY created_at DESC, rowid DESC",
                  "s", user_id),
        rows);
}

int keys_list_org(struct arena *a, const char *org_id, struct key_row **rows)
{
    return list_rows(a,
                     q_prepare("SELECT " USER_KEY_COLS " FROM api_keys WHERE org_id = ? "
                               "AND revoked_at IS NULL ORDER BY created_at DESC, rowid DESC",
                               "s", org_id),
                     rows);
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

int keys_toggle_user(struct arena *a, const char *user_id, const char *key_id, struct key_row *k)
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
        key_read(a, st, k);
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

int keys_validate(struct arena *a, const char *user_id, const char *key_hash, struct key_check *out)
{
    sqlite3_stmt *st = q_prepare(
        "SELECT k.user_id, u.email, k.name, k.created_at, k.expires_at, k.last_used_at, "
        "k.is_active AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) "
        "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ? AND k.user_id = ?",
        "iss", now_us(), key_hash, user_id);
    int rc;

    memset(out, 0, sizeof(*out));
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_int(st, 6)) {
        out->valid = 1;
        col_copy(out->key.user_id, sizeof(out->key.user_id), st, 0);
        out->email = col_str(a, st, 1);
        out->key.name = col_str(a, st, 2);
        out->key.created_at = sqlite3_column_int64(st, 3);
        out->key.expires_at = sqlite3_column_int64(st, 4);
        out->key.last_used_at = sqlite3_column_int64(st, 5);
    }
    q_done(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : LY_EDB;
}
