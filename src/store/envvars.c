/* See envvars.h. */
#include "store/envvars.h"
#include "core/err.h"
#include "store/db.h"

#include <stdio.h>
#include <string.h>

#define COLS "id, user_id, name, value, sealed, is_secret, created_at, updated_at"

int envvars_store_find(const char *org_id, const char *user_id, const char *name, char id[41])
{
    sqlite3_stmt *st = q_prepare("SELECT id FROM env_vars WHERE org_id = ? AND user_id = ? AND "
                                 "name = ?",
                                 "sss", org_id, user_id, name);
    int rc, found = 0;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(id, 41, "%s", q_text(st, 0));
        found = 1;
    }
    q_done(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? found : LY_EDB;
}

int envvars_store_upsert(const char *org_id, const char *user_id, const char *name,
                         const char *new_id, const char *value, const char *sealed, int is_secret,
                         int64_t now, char id[41])
{
    int n = q_exec("INSERT INTO env_vars (id, org_id, user_id, name, value, sealed, is_secret, "
                   "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (org_id, user_id, name) DO UPDATE SET value = excluded.value, "
                   "sealed = excluded.sealed, is_secret = excluded.is_secret, "
                   "updated_at = excluded.updated_at",
                   "ssssssiii", new_id, org_id, user_id, name, value, sealed, (int64_t)is_secret,
                   now, now);

    if (n < 0)
        return n;
    n = envvars_store_find(org_id, user_id, name, id);
    return n == 1 ? 0 : LY_EDB;
}

int envvars_store_reseal(const char *id, const char *sealed)
{
    int n = q_exec("UPDATE env_vars SET sealed = ? WHERE id = ?", "ss", sealed, id);

    return n < 0 ? n : 0;
}

/* A text column in the arena, or NULL. */
static char *col_dup(struct arena *a, sqlite3_stmt *st, int col)
{
    const char *t = q_text(st, col);

    return t ? arena_strdup(a, t) : NULL;
}

int envvars_store_list(struct arena *a, const char *org_id, const char *user_id,
                       struct envvar_row **rows)
{
    sqlite3_stmt *st = q_prepare("SELECT " COLS " FROM env_vars WHERE org_id = ? AND "
                                 "(user_id = '' OR user_id = ?) ORDER BY user_id <> '', name",
                                 "ss", org_id, user_id);
    int rc, n = 0, cap = 0;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct envvar_row *r;

        if (n == cap) {
            struct envvar_row *p;

            cap = cap ? cap * 2 : 16;
            p = arena_alloc(a, (size_t)cap * sizeof(*p));
            if (n)
                memcpy(p, *rows, (size_t)n * sizeof(*p));
            *rows = p;
        }
        r = &(*rows)[n++];
        r->id = col_dup(a, st, 0);
        r->user_id = col_dup(a, st, 1);
        r->name = col_dup(a, st, 2);
        r->value = col_dup(a, st, 3);
        r->sealed = col_dup(a, st, 4);
        r->is_secret = sqlite3_column_int(st, 5);
        r->created_at = sqlite3_column_int64(st, 6);
        r->updated_at = sqlite3_column_int64(st, 7);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int envvars_store_delete(const char *org_id, const char *user_id, const char *id, int org_wide_ok)
{
    return q_exec("DELETE FROM env_vars WHERE id = ? AND org_id = ? AND (user_id = ? OR "
                  "(user_id = '' AND ? = 1))",
                  "sssi", id, org_id, user_id, (int64_t)org_wide_ok);
}

int envvars_store_delete_all(const char *org_id, const char *user_id)
{
    return q_exec("DELETE FROM env_vars WHERE org_id = ? AND user_id = ?", "ss", org_id, user_id);
}
