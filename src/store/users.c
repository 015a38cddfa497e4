/* See users.h. */
#include "store/users.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
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

/* The slug of a new default org: the email's local part in [a-z0-9-], then -2, -3... */
static int unique_slug(struct arena *a, const char *email, char **out)
{
    char base[49];
    size_t n = 0;
    int dash = 1;

    for (const char *p = email; *p && *p != '@' && n < sizeof(base) - 1; p++) {
        char ch = (char)tolower((unsigned char)*p);

        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
            base[n++] = ch;
            dash = 0;
        } else if (!dash) {
            base[n++] = '-';
            dash = 1;
        }
    }
    while (n && base[n - 1] == '-')
        n--;
    base[n] = '\0';
    if (!n)
        snprintf(base, sizeof(base), "org");
    for (int i = 1; i < 100000; i++) {
        char *slug = i == 1 ? arena_strdup(a, base) : arena_sprintf(a, "%s-%d", base, i);
        int64_t taken;

        if (q_int(&taken, "SELECT count(*) FROM orgs WHERE slug = ?", "s", slug))
            return LY_EDB;
        if (!taken) {
            *out = slug;
            return 0;
        }
    }
    return LY_ECONFLICT;
}

int users_create(struct arena *a, const char *email, const char *password_hash,
                 const char *full_name, int is_admin, char user_id[40], char org_id[40],
                 char **org_slug)
{
    int64_t now = now_us();
    int err;

    uuid_v4(user_id);
    uuid_v4(org_id);
    err = q_exec("INSERT INTO users (id, email, password_hash, full_name, is_admin, created_at) "
                 "VALUES (?, ?, ?, ?, ?, ?)",
                 "ssssii", user_id, email, password_hash, full_name, (int64_t)is_admin, now);
    if (err < 0)
        return err;
    err = unique_slug(a, email, org_slug);
    if (err)
        return err;
    err = q_exec("INSERT INTO orgs (id, slug, name, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
                 "ssssi", org_id, *org_slug, *org_slug, user_id, now);
    if (err < 0)
        return err;
    err = q_exec("INSERT INTO memberships (org_id, user_id, role, is_default, created_at) "
                 "VALUES (?, ?, 'owner', 1, ?)",
                 "ssi", org_id, user_id, now);
    return err < 0 ? err : 0;
}

#define USER_COLS                                                                                  \
    "id, email, password_hash, full_name, is_active, is_admin, created_at, mfa_secret, "           \
    "mfa_enabled, mfa_last_step"

static int user_fetch(struct arena *a, sqlite3_stmt *st, struct user_row *u)
{
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_id(u->id, q_text(st, 0));
        u->email = col_dup(a, st, 1);
        u->password_hash = col_dup(a, st, 2);
        u->full_name = col_dup(a, st, 3);
        u->is_active = sqlite3_column_int(st, 4);
        u->is_admin = sqlite3_column_int(st, 5);
        u->created_at = sqlite3_column_int64(st, 6);
        u->mfa_secret = col_dup(a, st, 7);
        u->mfa_enabled = sqlite3_column_int(st, 8);
        u->mfa_last_step = sqlite3_column_int64(st, 9);
    }
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

int users_get(struct arena *a, const char *id, struct user_row *u)
{
    return user_fetch(a, q_prepare("SELECT " USER_COLS " FROM users WHERE id = ?", "s", id), u);
}

int users_get_by_email(struct arena *a, const char *email, struct user_row *u)
{
    return user_fetch(a, q_prepare("SELECT " USER_COLS " FROM users WHERE email = ?", "s", email),
                      u);
}

int users_set_password(const char *user_id, const char *password_hash)
{
    int n = q_exec("UPDATE users SET password_hash = ? WHERE id = ?", "ss", password_hash, user_id);

    return n < 0 ? n : 0;
}

int64_t users_count(void)
{
    int64_t n = 0;

    q_int(&n, "SELECT count(*) FROM users", NULL);
    return n;
}

int users_delete(struct arena *a, const char *user_id, const char **why)
{
    sqlite3_stmt *st;
    int rc, err = 0;
    int64_t now = now_us();

    /* An org this user owns alone but shares with others would be left without an owner. */
    st = q_prepare("SELECT o.slug FROM memberships m JOIN orgs o ON o.id = m.org_id "
                   "WHERE m.user_id = ? AND m.role = 'owner' "
                   "AND NOT EXISTS (SELECT 1 FROM memberships x WHERE x.org_id = m.org_id "
                   "  AND x.user_id <> m.user_id AND x.role = 'owner') "
                   "AND EXISTS (SELECT 1 FROM memberships y WHERE y.org_id = m.org_id "
                   "  AND y.user_id <> m.user_id)",
                   "s", user_id);
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *why = arena_sprintf(a,
                             "You are the only owner of organization '%s', which has other "
                             "members: make another member owner first",
                             q_text(st, 0));
        err = LY_ECONFLICT;
    } else if (rc != SQLITE_DONE) {
        err = LY_EDB;
    }
    q_done(st);
    if (err)
        return err;
    /* Orgs where this user is the only member go with the user (their ledger stays). */
    if (q_exec("UPDATE orgs SET deleted_at = ?, slug = slug || '~deleted~' || id "
               "WHERE deleted_at IS NULL AND id IN (SELECT org_id FROM memberships WHERE "
               "user_id = ?) AND NOT EXISTS (SELECT 1 FROM memberships x WHERE x.org_id = "
               "orgs.id AND x.user_id <> ?)",
               "iss", now, user_id, user_id) < 0)
        return LY_EDB;
    if (q_exec("DELETE FROM api_keys WHERE org_id IN (SELECT id FROM orgs WHERE deleted_at IS "
               "NOT NULL)",
               NULL) < 0 ||
        q_exec("DELETE FROM invites WHERE org_id IN (SELECT id FROM orgs WHERE deleted_at IS "
               "NOT NULL) AND status = 'pending'",
               NULL) < 0)
        return LY_EDB;
    rc = q_exec("DELETE FROM users WHERE id = ?", "s", user_id);
    if (rc < 0)
        return rc;
    return rc == 1 ? 0 : LY_ENOTFOUND;
}

int users_key_auth(struct arena *a, const char *key_hash, struct key_auth *k)
{
    sqlite3_stmt *st = q_prepare(
        "SELECT k.id, k.user_id, k.org_id, u.email, u.is_active, u.is_admin, k.is_active, "
        "k.revoked_at IS NOT NULL, coalesce(k.expires_at, 0), coalesce(k.last_used_at, 0) "
        "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
        "s", key_hash);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_id(k->key_id, q_text(st, 0));
        copy_id(k->user_id, q_text(st, 1));
        copy_id(k->org_id, q_text(st, 2));
        k->email = col_dup(a, st, 3);
        k->user_active = sqlite3_column_int(st, 4);
        k->is_admin = sqlite3_column_int(st, 5);
        k->key_active = sqlite3_column_int(st, 6);
        k->revoked = sqlite3_column_int(st, 7);
        k->expires_at = sqlite3_column_int64(st, 8);
        k->last_used_at = sqlite3_column_int64(st, 9);
    }
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

void users_key_touch(const char *key_id, int64_t last_used_at)
{
    int64_t now = now_us();

    if (now - last_used_at < 60 * 1000000LL)
        return;
    q_exec("UPDATE api_keys SET last_used_at = ? WHERE id = ?", "is", now, key_id);
}

/*
 * /user/status is the call a client polls, so its row is cached per thread (no lock): an
 * entry is stamped with the data generation read before its query and used while no write
 * has committed since, and no longer than until the next expiry of one of the keys it
 * counts, when the count changes without a write.
 */
#define STATUS_SLOTS 64

struct status_slot {
    uint64_t gen; /* 0: empty */
    int64_t valid_until;
    char org_id[40];
    struct user_status s; /* email and full_name malloc'd */
};

static pthread_key_t status_key;
static pthread_once_t status_once = PTHREAD_ONCE_INIT;

static void status_cache_free(void *p)
{
    struct status_slot *slots = p;

    for (int i = 0; i < STATUS_SLOTS; i++) {
        free(slots[i].s.email);
        free(slots[i].s.full_name);
    }
    free(slots);
}

static void status_make_key(void)
{
    pthread_key_create(&status_key, status_cache_free);
}

static struct status_slot *status_slot(const char *user_id, const char *org_id)
{
    struct status_slot *slots;

    pthread_once(&status_once, status_make_key);
    slots = pthread_getspecific(status_key);
    if (!slots) {
        slots = xcalloc(STATUS_SLOTS, sizeof(*slots));
        pthread_setspecific(status_key, slots);
    }
    return &slots[fnv1a(fnv1a(FNV1A_SEED, user_id), org_id) % STATUS_SLOTS];
}

static void status_out(struct arena *a, const struct user_status *from, struct user_status *to)
{
    *to = *from;
    to->email = from->email ? arena_strdup(a, from->email) : NULL;
    to->full_name = from->full_name ? arena_strdup(a, from->full_name) : NULL;
}

int users_status(struct arena *a, const char *user_id, const char *org_id, struct user_status *s)
{
    uint64_t gen = store_data_gen();
    int64_t now = now_us();
    const char *org = org_id ? org_id : "";
    struct status_slot *slot = status_slot(user_id, org);
    sqlite3_stmt *st;
    int64_t next_expiry = 0;
    int rc;

    if (gen && slot->gen == gen && now < slot->valid_until && strcmp(slot->s.id, user_id) == 0 &&
        strcmp(slot->org_id, org) == 0) {
        status_out(a, &slot->s, s);
        return 0;
    }
    st = q_prepare("SELECT u.id, u.email, u.full_name, u.created_at, u.is_active, "
                   "  (SELECT count(*) FROM api_keys k WHERE k.user_id = u.id AND k.is_active = 1 "
                   "   AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?1)), "
                   "  (SELECT coalesce(sum(amount), 0) FROM ledger WHERE org_id = ?2), "
                   "  (SELECT min(k.expires_at) FROM api_keys k WHERE k.user_id = u.id "
                   "   AND k.is_active = 1 AND k.revoked_at IS NULL AND k.expires_at > ?1) "
                   "FROM users u WHERE u.id = ?3",
                   "iss", now, *org ? org : NULL, user_id);
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_id(s->id, q_text(st, 0));
        s->email = col_dup(a, st, 1);
        s->full_name = col_dup(a, st, 2);
        s->created_at = sqlite3_column_int64(st, 3);
        s->is_active = sqlite3_column_int(st, 4);
        s->active_keys = sqlite3_column_int64(st, 5);
        s->balance = sqlite3_column_int64(st, 6);
        next_expiry = sqlite3_column_int64(st, 7);
    }
    q_done(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
    if (gen && strlen(user_id) < sizeof(slot->s.id) && strlen(org) < sizeof(slot->org_id)) {
        free(slot->s.email);
        free(slot->s.full_name);
        slot->s = *s;
        slot->s.email = s->email ? xstrdup(s->email) : NULL;
        slot->s.full_name = s->full_name ? xstrdup(s->full_name) : NULL;
        snprintf(slot->org_id, sizeof(slot->org_id), "%s", org);
        slot->valid_until = next_expiry > 0 ? next_expiry : INT64_MAX;
        slot->gen = gen;
    }
    return 0;
}

int users_jwt_auth(struct arena *a, const char *user_id, const char *family_id, char **email,
                   int *is_active, int *is_admin, int *family_revoked)
{
    sqlite3_stmt *st =
        q_prepare("SELECT u.email, u.is_active, u.is_admin, "
                  "  (SELECT f.revoked_at IS NOT NULL OR f.user_id <> u.id FROM token_families f "
                  "   WHERE f.id = ?) FROM users u WHERE u.id = ?",
                  "ss", family_id, user_id);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *email = col_dup(a, st, 0);
        *is_active = sqlite3_column_int(st, 1);
        *is_admin = sqlite3_column_int(st, 2);
        /* A missing family (NULL) counts as revoked. */
        *family_revoked = sqlite3_column_type(st, 3) == SQLITE_NULL || sqlite3_column_int(st, 3);
    }
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

int users_membership(struct arena *a, const char *user_id, const char *org_slug, const char *org_id,
                     char org_id_out[40], char **slug_out, char **role_out)
{
    sqlite3_stmt *st;
    int rc;

    if (org_slug)
        st = q_prepare("SELECT o.id, o.slug, m.role FROM memberships m JOIN orgs o ON o.id = "
                       "m.org_id WHERE m.user_id = ? AND o.slug = ? AND o.deleted_at IS NULL",
                       "ss", user_id, org_slug);
    else if (org_id)
        st = q_prepare("SELECT o.id, o.slug, m.role FROM memberships m JOIN orgs o ON o.id = "
                       "m.org_id WHERE m.user_id = ? AND o.id = ? AND o.deleted_at IS NULL",
                       "ss", user_id, org_id);
    else
        st = q_prepare("SELECT o.id, o.slug, m.role FROM memberships m JOIN orgs o ON o.id = "
                       "m.org_id WHERE m.user_id = ? AND o.deleted_at IS NULL "
                       "ORDER BY m.is_default DESC, m.created_at LIMIT 1",
                       "s", user_id);
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_id(org_id_out, q_text(st, 0));
        *slug_out = col_dup(a, st, 1);
        *role_out = col_dup(a, st, 2);
    }
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}
