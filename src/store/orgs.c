/* See orgs.h. Times are microseconds. */
#include "store/orgs.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"

#include <stdio.h>
#include <string.h>

static char *col_dup(struct arena *a, sqlite3_stmt *st, int col)
{
    const char *s = q_text(st, col);

    return s ? arena_strdup(a, s) : NULL;
}

static void copy_id(char dst[40], const char *src)
{
    snprintf(dst, 40, "%s", src ? src : "");
}

/* Steps a many-row query to its end: each row read by fill into a new element of *rows (of
 * size sz, from a). The number of rows, or LY_EDB. */
static int fetch_all(struct arena *a, sqlite3_stmt *st, void **rows, size_t sz,
                     void (*fill)(struct arena *, sqlite3_stmt *, void *))
{
    int rc, n = 0, cap = 0;

    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *rows = arena_grow(a, *rows, n, &cap, sz);
        fill(a, st, (char *)*rows + (size_t)n++ * sz);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

/* Steps a single-row query: 0 with the row read by fill, LY_ENOTFOUND, or LY_EDB. */
static int fetch_one(sqlite3_stmt *st, void (*fill)(sqlite3_stmt *, void *), void *arg)
{
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        fill(st, arg);
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

int orgs_id_by_slug(const char *slug, char id_out[40])
{
    sqlite3_stmt *st =
        q_prepare("SELECT id FROM orgs WHERE slug = ? AND deleted_at IS NULL", "s", slug);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(id_out, 40, "%s", q_text(st, 0));
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

/* ---- organisations ---------------------------------------------------------------------- */

int orgs_insert(const char *id, const char *slug, const char *name, const char *billing_email,
                const char *billing_details, const char *user_id, int64_t now)
{
    int n = q_exec("INSERT INTO orgs (id, slug, name, billing_email, billing_details, created_by, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   "ssssssi", id, slug, name, billing_email, billing_details, user_id, now);

    if (n < 0)
        return n;
    n = members_insert(id, user_id, "owner", now);
    return n < 0 ? n : 0;
}

#define ORG_COLS                                                                                   \
    "o.id, o.slug, o.name, o.billing_email, o.billing_details, o.created_at, m.role, "             \
    "m.is_default, (SELECT count(*) FROM memberships x WHERE x.org_id = o.id)"

struct org_fill {
    struct arena *a;
    struct org_row *o;
};

static void org_fill(sqlite3_stmt *st, void *arg)
{
    struct org_fill *f = arg;
    struct org_row *o = f->o;

    copy_id(o->id, q_text(st, 0));
    o->slug = col_dup(f->a, st, 1);
    o->name = col_dup(f->a, st, 2);
    o->billing_email = col_dup(f->a, st, 3);
    o->billing_details = col_dup(f->a, st, 4);
    o->created_at = sqlite3_column_int64(st, 5);
    o->role = col_dup(f->a, st, 6);
    o->is_default = sqlite3_column_int(st, 7);
    o->member_count = sqlite3_column_int64(st, 8);
}

int orgs_get_member(struct arena *a, const char *user_id, const char *slug, struct org_row *o)
{
    struct org_fill f = {a, o};

    return fetch_one(q_prepare("SELECT " ORG_COLS " FROM orgs o JOIN memberships m ON m.org_id = "
                               "o.id WHERE o.slug = ? AND m.user_id = ? AND o.deleted_at IS NULL",
                               "ss", slug, user_id),
                     org_fill, &f);
}

static void org_fill_row(struct arena *a, sqlite3_stmt *st, void *row)
{
    struct org_fill f = {a, row};

    org_fill(st, &f);
}

int orgs_list_member(struct arena *a, const char *user_id, const char *org_id,
                     struct org_row **rows)
{
    void *p = NULL;
    int n = fetch_all(a,
                      q_prepare("SELECT " ORG_COLS " FROM orgs o JOIN memberships m ON m.org_id = "
                                "o.id WHERE m.user_id = ? AND o.deleted_at IS NULL AND "
                                "(?2 IS NULL OR o.id = ?2) ORDER BY m.is_default DESC, "
                                "m.created_at, o.slug",
                                "ss", user_id, org_id),
                      &p, sizeof(**rows), org_fill_row);

    *rows = p;
    return n;
}

int orgs_update(const char *org_id, const char *name, const char *slug, const char *billing_email,
                const char *billing_details)
{
    int n = q_exec("UPDATE orgs SET name = coalesce(?, name), slug = coalesce(?, slug), "
                   "billing_email = coalesce(?, billing_email), "
                   "billing_details = coalesce(?, billing_details) "
                   "WHERE id = ? AND deleted_at IS NULL",
                   "sssss", name, slug, billing_email, billing_details, org_id);

    return n < 0 ? n : n == 1 ? 0 : LY_ENOTFOUND;
}

int orgs_delete(const char *org_id, int64_t now)
{
    int n = q_exec("UPDATE orgs SET deleted_at = ?, slug = slug || '~deleted~' || id "
                   "WHERE id = ? AND deleted_at IS NULL",
                   "is", now, org_id);

    if (n < 0)
        return n;
    if (n == 0)
        return LY_ENOTFOUND;
    if (q_exec("UPDATE api_keys SET revoked_at = ?, is_active = 0 WHERE org_id = ? AND "
               "revoked_at IS NULL",
               "is", now, org_id) < 0 ||
        q_exec("UPDATE invites SET status = 'revoked', responded_at = ? WHERE org_id = ? AND "
               "status = 'pending'",
               "is", now, org_id) < 0 ||
        q_exec("DELETE FROM memberships WHERE org_id = ?", "s", org_id) < 0)
        return LY_EDB;
    return 0;
}

/* ---- members ---------------------------------------------------------------------------- */

int members_get(const char *org_id, const char *user_id, char role[8], int *is_default)
{
    sqlite3_stmt *st = q_prepare("SELECT role, is_default FROM memberships WHERE org_id = ? AND "
                                 "user_id = ?",
                                 "ss", org_id, user_id);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(role, 8, "%s", q_text(st, 0));
        *is_default = sqlite3_column_int(st, 1);
    }
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

int members_any_default(const char *org_id, int *yes)
{
    int64_t n;
    int err = q_int(&n, "SELECT count(*) FROM memberships WHERE org_id = ? AND is_default = 1", "s",
                    org_id);

    *yes = n > 0;
    return err;
}

int members_count_owners(const char *org_id, int64_t *n)
{
    return q_int(n, "SELECT count(*) FROM memberships WHERE org_id = ? AND role = 'owner'", "s",
                 org_id);
}

#define MEMBER_COLS                                                                                \
    "m.user_id, u.email, u.full_name, m.role, m.created_at FROM memberships m JOIN users u ON "    \
    "u.id = m.user_id"

static void member_read(struct arena *a, sqlite3_stmt *st, void *row)
{
    struct member_row *m = row;

    copy_id(m->user_id, q_text(st, 0));
    m->email = col_dup(a, st, 1);
    m->full_name = col_dup(a, st, 2);
    m->role = col_dup(a, st, 3);
    m->joined_at = sqlite3_column_int64(st, 4);
}

int members_list(struct arena *a, const char *org_id, struct member_row **rows)
{
    void *p = NULL;
    int n = fetch_all(a,
                      q_prepare("SELECT " MEMBER_COLS " WHERE m.org_id = ? ORDER BY m.created_at, "
                                "u.email",
                                "s", org_id),
                      &p, sizeof(**rows), member_read);

    *rows = p;
    return n;
}

struct member_fill {
    struct arena *a;
    struct member_row *m;
};

static void member_fill(sqlite3_stmt *st, void *arg)
{
    struct member_fill *f = arg;

    member_read(f->a, st, f->m);
}

int members_row(struct arena *a, const char *org_id, const char *user_id, struct member_row *m)
{
    struct member_fill f = {a, m};

    return fetch_one(q_prepare("SELECT " MEMBER_COLS " WHERE m.org_id = ? AND m.user_id = ?", "ss",
                               org_id, user_id),
                     member_fill, &f);
}

int members_insert(const char *org_id, const char *user_id, const char *role, int64_t now)
{
    int n = q_exec("INSERT INTO memberships (org_id, user_id, role, is_default, created_at) "
                   "VALUES (?, ?, ?, 0, ?)",
                   "sssi", org_id, user_id, role, now);

    return n < 0 ? n : 0;
}

int members_set_role(const char *org_id, const char *user_id, const char *role)
{
    int n = q_exec("UPDATE memberships SET role = ? WHERE org_id = ? AND user_id = ?", "sss", role,
                   org_id, user_id);

    return n < 0 ? n : n == 1 ? 0 : LY_ENOTFOUND;
}

int members_remove(const char *org_id, const char *user_id, int64_t now)
{
    int n =
        q_exec("DELETE FROM memberships WHERE org_id = ? AND user_id = ?", "ss", org_id, user_id);

    if (n < 0)
        return n;
    if (n == 0)
        return LY_ENOTFOUND;
    n = q_exec("UPDATE api_keys SET revoked_at = ?, is_active = 0 WHERE org_id = ? AND user_id = ? "
               "AND revoked_at IS NULL",
               "iss", now, org_id, user_id);
    return n < 0 ? n : 0;
}

int members_has_email(const char *org_id, const char *email, int *yes)
{
    int64_t n;
    int err = q_int(&n,
                    "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE "
                    "m.org_id = ? AND u.email = ?",
                    "ss", org_id, email);

    *yes = n > 0;
    return err;
}

/* ---- invites ---------------------------------------------------------------------------- */

int invites_insert(const char *id, const char *org_id, const char *email, const char *role,
                   const char *token_hash, const char *invited_by, int64_t created_at,
                   int64_t expires_at)
{
    int n =
        q_exec("INSERT INTO invites (id, org_id, email, role, token_hash, invited_by, "
               "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               "ssssssii", id, org_id, email, role, token_hash, invited_by, created_at, expires_at);

    return n < 0 ? n : 0;
}

int invites_revoke_email(const char *org_id, const char *email, int64_t now)
{
    int n = q_exec("UPDATE invites SET status = 'revoked', responded_at = ? WHERE org_id = ? AND "
                   "email = ? AND status = 'pending'",
                   "iss", now, org_id, email);

    return n < 0 ? n : 0;
}

int invites_revoke(struct arena *a, const char *org_id, const char *id, int64_t now, char **status)
{
    sqlite3_stmt *st;
    int n, rc;

    n = q_exec("UPDATE invites SET status = 'revoked', responded_at = ? WHERE id = ? AND "
               "org_id = ? AND status = 'pending'",
               "iss", now, id, org_id);
    if (n < 0)
        return n;
    if (n == 1)
        return 0;
    st = q_prepare("SELECT status FROM invites WHERE id = ? AND org_id = ?", "ss", id, org_id);
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *status = col_dup(a, st, 0);
    q_done(st);
    if (rc == SQLITE_ROW)
        return LY_EGONE;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

#define INVITE_COLS                                                                                \
    "i.id, i.org_id, o.slug, o.name, i.email, i.role, i.status, i.invited_by, u.email, "           \
    "i.created_at, i.expires_at, o.deleted_at IS NOT NULL FROM invites i JOIN orgs o ON o.id = "   \
    "i.org_id LEFT JOIN users u ON u.id = i.invited_by"

struct invite_fill {
    struct arena *a;
    struct invite_row *inv;
};

static void invite_fill(sqlite3_stmt *st, void *arg)
{
    struct invite_fill *f = arg;
    struct invite_row *inv = f->inv;

    copy_id(inv->id, q_text(st, 0));
    copy_id(inv->org_id, q_text(st, 1));
    inv->org_slug = col_dup(f->a, st, 2);
    inv->org_name = col_dup(f->a, st, 3);
    inv->email = col_dup(f->a, st, 4);
    inv->role = col_dup(f->a, st, 5);
    inv->status = col_dup(f->a, st, 6);
    inv->invited_by = col_dup(f->a, st, 7);
    inv->invited_by_email = col_dup(f->a, st, 8);
    inv->created_at = sqlite3_column_int64(st, 9);
    inv->expires_at = sqlite3_column_int64(st, 10);
    inv->org_deleted = sqlite3_column_int(st, 11);
}

int invites_get(struct arena *a, const char *token_hash, const char *id, const char *email,
                struct invite_row *inv)
{
    struct invite_fill f = {a, inv};
    int err;

    err = fetch_one(q_prepare("SELECT " INVITE_COLS " WHERE i.token_hash = ?", "s", token_hash),
                    invite_fill, &f);
    if (err != LY_ENOTFOUND || !id || !email)
        return err;
    return fetch_one(
        q_prepare("SELECT " INVITE_COLS " WHERE i.id = ? AND i.email = ?", "ss", id, email),
        invite_fill, &f);
}

int invites_respond(const char *id, const char *status, const char *user_id, int64_t now)
{
    int n = q_exec("UPDATE invites SET status = ?, responded_at = ?, accepted_by = ? WHERE id = ? "
                   "AND status = 'pending'",
                   "siss", status, now, user_id, id);

    return n < 0 ? n : n == 1 ? 0 : LY_EGONE;
}

static void invite_fill_row(struct arena *a, sqlite3_stmt *st, void *row)
{
    struct invite_fill f = {a, row};

    invite_fill(st, &f);
}

int invites_list_org(struct arena *a, const char *org_id, struct invite_row **rows)
{
    void *p = NULL;
    int n = fetch_all(a,
                      q_prepare("SELECT " INVITE_COLS " WHERE i.org_id = ? AND i.status = "
                                "'pending' AND i.expires_at > ? ORDER BY i.created_at DESC",
                                "si", org_id, now_us()),
                      &p, sizeof(**rows), invite_fill_row);

    *rows = p;
    return n;
}

int invites_list_email(struct arena *a, const char *email, struct invite_row **rows)
{
    void *p = NULL;
    int n = fetch_all(a,
                      q_prepare("SELECT " INVITE_COLS " WHERE i.email = ? AND i.status = "
                                "'pending' AND i.expires_at > ? AND o.deleted_at IS NULL "
                                "ORDER BY i.created_at DESC",
                                "si", email, now_us()),
                      &p, sizeof(**rows), invite_fill_row);

    *rows = p;
    return n;
}
