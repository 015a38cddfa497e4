/* See billing.h. */
#include "store/billing.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"
#include "store/ledger.h"

#include <stdio.h>
#include <string.h>

static char *col_dup(struct arena *a, sqlite3_stmt *st, int col)
{
    const char *t = q_text(st, col);

    return t ? arena_strdup(a, t) : NULL;
}

/* The columns run_read() reads: the price is the one in effect when the run was submitted. */
#define RUN_COLS                                                                                   \
    "SELECT id, org_id, profile, running_at, metered_until, (SELECT h.price_micro FROM "           \
    "price_history h WHERE h.profile = runs.profile AND h.since <= runs.created_at ORDER BY "      \
    "h.since DESC LIMIT 1) FROM runs "

/* A row of RUN_COLS. */
static void run_read(struct arena *a, sqlite3_stmt *st, struct bill_run *r)
{
    const char *id = q_text(st, 0), *org = q_text(st, 1);

    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id ? id : "");
    snprintf(r->org_id, sizeof(r->org_id), "%s", org ? org : "");
    r->profile = col_dup(a, st, 2);
    r->ran = sqlite3_column_type(st, 3) == SQLITE_INTEGER;
    r->running_at = sqlite3_column_int64(st, 3);
    r->metered = sqlite3_column_type(st, 4) == SQLITE_INTEGER;
    r->metered_until = sqlite3_column_int64(st, 4);
    r->price_micro =
        sqlite3_column_type(st, 5) == SQLITE_INTEGER ? sqlite3_column_int64(st, 5) : -1;
}

int bill_running(struct arena *a, struct bill_run **rows)
{
    sqlite3_stmt *st =
        q_prepare(RUN_COLS "WHERE status = 'running' AND running_at IS NOT NULL", "");
    int rc, n = 0, cap = 0;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        run_read(a, st, &(*rows)[n++]);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int bill_charge_window(const char *run_id, const char *org_id, const char *profile, int64_t amount,
                       int64_t start, int64_t end)
{
    struct ledger_entry e = {.org_id = org_id,
                             .kind = "run",
                             .amount = -amount,
                             .description = profile,
                             .ref = run_id,
                             .window_start = start,
                             .window_end = end,
                             .once = 1};
    int n = ledger_insert(&e);

    if (n < 0)
        return n;
    if (q_exec("UPDATE runs SET metered_until = ? WHERE id = ? AND "
               "(metered_until IS NULL OR metered_until < ?)",
               "isi", end, run_id, end) < 0)
        return LY_EDB;
    return n;
}

int bill_run_billed(const char *run_id, int64_t *micro)
{
    int err =
        q_int(micro, "SELECT coalesce(-sum(amount), 0) FROM ledger WHERE ref = ? AND kind = 'run'",
              "s", run_id);

    return err;
}

int bill_run_meter_row(struct arena *a, const char *run_id, struct bill_run *r)
{
    sqlite3_stmt *st = q_prepare(RUN_COLS "WHERE id = ?", "s", run_id);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        run_read(a, st, r);
    q_done(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

int bill_price_record(const char *profile, int64_t price_micro, int64_t since)
{
    int64_t last = -1, have = 0;

    if (q_int(&have, "SELECT count(*) FROM price_history WHERE profile = ?", "s", profile) ||
        (have && q_int(&last,
                       "SELECT price_micro FROM price_history WHERE profile = ? ORDER BY since "
                       "DESC LIMIT 1",
                       "s", profile)))
        return LY_EDB;
    if (have && last == price_micro)
        return 0;
    /* A profile's first row holds for every run before it: they were billed at it. */
    if (q_exec("INSERT OR REPLACE INTO price_history (profile, since, price_micro) "
               "VALUES (?, ?, ?)",
               "sii", profile, have ? since : (int64_t)0, price_micro) < 0)
        return LY_EDB;
    return 1;
}

int voucher_add(const char *code, int64_t credits, int64_t expires_at, const char *note)
{
    static const char sql[] = "INSERT INTO vouchers (code, credits, expires_at, note, "
                              "created_at) VALUES (?, ?, ?, ?, ?)";
    int n = expires_at ? q_exec(sql, "siisi", code, credits, expires_at, note, now_us())
                       : q_exec(sql, "sinsi", code, credits, note, now_us());

    return n < 0 ? n : 0;
}

int voucher_get(struct arena *a, const char *code, struct voucher_row *v)
{
    sqlite3_stmt *st =
        q_prepare("SELECT code, credits, expires_at FROM vouchers WHERE code = ?", "s", code);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        v->code = col_dup(a, st, 0);
        v->credits = sqlite3_column_int64(st, 1);
        v->expires_at =
            sqlite3_column_type(st, 2) == SQLITE_INTEGER ? sqlite3_column_int64(st, 2) : 0;
    }
    q_done(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}

int voucher_redeem(const char *org_id, const char *code, int64_t credits, const char *user_id)
{
    return ledger_append(org_id, "voucher", credits, "Voucher redeemed", code, user_id);
}

int bill_free_grant(const char *org_id, const char *month, int64_t amount)
{
    struct ledger_entry e = {.org_id = org_id,
                             .kind = "free",
                             .amount = amount,
                             .description = "Monthly free credits",
                             .ref = month,
                             .once = 1};
    int n = ledger_insert(&e);

    return n < 0 ? n : 0;
}

int bill_free_unexpired(struct arena *a, const char *org_id, const char *month,
                        struct bill_grant **rows)
{
    sqlite3_stmt *st =
        q_prepare("SELECT ref, sum(amount) AS amount FROM ledger g WHERE org_id = ?1 AND "
                  "kind = 'free' AND ref < ?2 AND NOT EXISTS (SELECT 1 FROM ledger e WHERE "
                  "e.org_id = ?1 AND e.kind = 'free_expiry' AND e.ref = g.ref) "
                  "GROUP BY ref ORDER BY ref",
                  "ss", org_id, month);
    int rc, n = 0, cap = 0;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct bill_grant *g;

        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        g = &(*rows)[n++];
        g->month = col_dup(a, st, 0);
        g->amount = sqlite3_column_int64(st, 1);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int bill_free_expire(const char *org_id, const char *month, int64_t month_start, int64_t month_end,
                     int64_t granted)
{
    int64_t spent = 0, balance = 0, unused;
    struct ledger_entry e = {0};
    int n;

    /* Free credits are spent first: what the month's spending did not use expires, but never
     * more than the org holds. */
    if (q_int(&spent,
              "SELECT coalesce(-sum(amount), 0) FROM ledger WHERE org_id = ? AND amount < 0 AND "
              "kind != 'free_expiry' AND created_at >= ? AND created_at < ?",
              "sii", org_id, month_start, month_end) ||
        q_int(&balance, "SELECT coalesce(sum(amount), 0) FROM ledger WHERE org_id = ?", "s",
              org_id))
        return LY_EDB;
    unused = granted - spent;
    if (unused > balance)
        unused = balance;
    if (unused <= 0)
        unused = 0;
    e.org_id = org_id;
    e.kind = "free_expiry";
    e.amount = -unused;
    e.description = "Unused free credits expired";
    e.ref = month;
    e.once = 1;
    n = ledger_insert(&e);
    return n < 0 ? n : 0;
}

int bill_totals(const char *org_id, int64_t month_start, struct bill_totals *t)
{
    sqlite3_stmt *st = q_prepare(
        "SELECT coalesce(sum(amount), 0), "
        "  coalesce(sum(CASE WHEN amount > 0 AND kind NOT IN ('free') THEN amount END), 0), "
        "  coalesce(-sum(CASE WHEN amount < 0 AND kind != 'free_expiry' THEN amount END), 0), "
        "  coalesce(sum(CASE WHEN kind = 'free' AND created_at >= ? THEN amount END), 0), "
        "  coalesce(-sum(CASE WHEN amount < 0 AND kind != 'free_expiry' AND created_at >= ? "
        "    THEN amount END), 0), "
        "  coalesce(-sum(CASE WHEN kind = 'free_expiry' THEN amount END), 0) "
        "FROM ledger WHERE org_id = ?",
        "iis", month_start, month_start, org_id);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    memset(t, 0, sizeof(*t));
    if (rc == SQLITE_ROW) {
        t->balance = sqlite3_column_int64(st, 0);
        t->purchased = sqlite3_column_int64(st, 1);
        t->spent = sqlite3_column_int64(st, 2);
        t->free_month = sqlite3_column_int64(st, 3);
        t->spent_month = sqlite3_column_int64(st, 4);
        t->expired = sqlite3_column_int64(st, 5);
    }
    q_done(st);
    return rc == SQLITE_ROW ? 0 : LY_EDB;
}

/* An integer column, 0 for NULL. */
static int64_t col_int(sqlite3_stmt *st, int col)
{
    return sqlite3_column_int64(st, col);
}

int bill_history(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                 struct bill_history_row **rows, struct bill_status_count **counts, int *ncounts,
                 int64_t *total, int64_t *spent)
{
    sqlite3_stmt *st;
    int rc, n = 0, cap = 0;

    *rows = NULL;
    *counts = NULL;
    *ncounts = 0;
    if (q_int(total, "SELECT count(*) FROM runs WHERE org_id = ?", "s", org_id) ||
        q_int(spent,
              "SELECT coalesce(-sum(amount), 0) FROM ledger WHERE org_id = ? AND kind = 'run'", "s",
              org_id))
        return LY_EDB;
    st = q_prepare("SELECT status, count(*) FROM runs WHERE org_id = ? GROUP BY status", "s",
                   org_id);
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct bill_status_count *c;

        *counts = arena_grow(a, *counts, *ncounts, &cap, sizeof(**counts));
        c = &(*counts)[(*ncounts)++];
        c->status = col_dup(a, st, 0);
        c->n = col_int(st, 1);
    }
    q_done(st);
    if (rc != SQLITE_DONE)
        return LY_EDB;
    st = q_prepare("SELECT r.id, r.kind, r.status, r.profile, r.file_name, r.spec, "
                   "r.created_at, r.started_at, r.running_at, r.ended_at, r.finished_at, "
                   "r.errors, r.parent_id, r.user_id, r.deleted_at, "
                   "(SELECT coalesce(-sum(l.amount), 0) FROM ledger l WHERE l.ref = r.id "
                   " AND l.kind = 'run' AND l.org_id = r.org_id) AS billed "
                   "FROM runs r WHERE r.org_id = ? ORDER BY r.created_at DESC, r.id "
                   "LIMIT ? OFFSET ?",
                   "sii", org_id, limit, offset);
    if (!st)
        return LY_EDB;
    cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct bill_history_row *r;

        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        r = &(*rows)[n++];
        r->id = col_dup(a, st, 0);
        r->kind = (int)col_int(st, 1);
        r->status = col_dup(a, st, 2);
        r->profile = col_dup(a, st, 3);
        r->file_name = col_dup(a, st, 4);
        r->spec = col_dup(a, st, 5);
        r->created_at = col_int(st, 6);
        r->started_at = col_int(st, 7);
        r->running_at = col_int(st, 8);
        r->ended_at = col_int(st, 9);
        r->finished_at = col_int(st, 10);
        r->errors = col_dup(a, st, 11);
        r->parent_id = col_dup(a, st, 12);
        r->user_id = col_dup(a, st, 13);
        r->deleted = sqlite3_column_type(st, 14) != SQLITE_NULL;
        r->billed = col_int(st, 15);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int bill_activities(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                    struct bill_activity **rows, int64_t *total)
{
    /* One activity per charged run (its charges summed) and one per credit addition. */
    sqlite3_stmt *st = q_prepare("SELECT count(*) FROM (SELECT 'execution' AS type, ref FROM "
                                 "ledger WHERE org_id = ?1 AND kind = 'run' GROUP BY ref UNION "
                                 "ALL SELECT 'purchase', id FROM ledger WHERE org_id = ?1 AND "
                                 "amount > 0 AND kind NOT IN ('run'))",
                                 "s", org_id);
    int rc, n = 0, cap = 0;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    *total = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    q_done(st);
    if (rc != SQLITE_ROW)
        return LY_EDB;
    st = q_prepare("SELECT * FROM (" /* */
                   "SELECT 'execution' AS type, ref AS id, min(l.created_at) AS "
                   "created_at, -sum(l.amount) AS amount, r.profile AS hardware_profile, "
                   "r.status AS status, coalesce(r.file_name, 'Run on ' || r.profile) "
                   "AS description FROM ledger l LEFT JOIN runs r ON r.id = l.ref "
                   "WHERE l.org_id = ?1 AND l.kind = 'run' GROUP BY l.ref "
                   "UNION ALL "
                   "SELECT 'purchase', 'entry-' || id, created_at, amount, NULL, "
                   "'completed', coalesce(description, kind) FROM ledger WHERE "
                   "org_id = ?1 AND amount > 0 AND kind NOT IN ('run')) "
                   "ORDER BY created_at DESC, id LIMIT ?2 OFFSET ?3",
                   "sii", org_id, limit, offset);
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct bill_activity *r;

        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        r = &(*rows)[n++];
        r->type = col_dup(a, st, 0);
        r->id = col_dup(a, st, 1);
        r->created_at = col_int(st, 2);
        r->amount = col_int(st, 3);
        r->profile = col_dup(a, st, 4);
        r->status = col_dup(a, st, 5);
        r->description = col_dup(a, st, 6);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int bill_months(struct arena *a, const char *org_id, struct bill_month **rows)
{
    sqlite3_stmt *st =
        q_prepare("SELECT strftime('%Y-%m', created_at / 1000000, 'unixepoch') AS "
                  "month, coalesce(sum(CASE WHEN amount > 0 THEN amount END), 0) AS "
                  "added, coalesce(-sum(CASE WHEN amount < 0 THEN amount END), 0) AS "
                  "spent, count(*) AS entries, max(created_at) AS last_at FROM ledger "
                  "WHERE org_id = ? GROUP BY month ORDER BY month DESC",
                  "s", org_id);
    int rc, n = 0, cap = 0;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct bill_month *m;
        const char *name = q_text(st, 0);

        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        m = &(*rows)[n++];
        snprintf(m->month, sizeof(m->month), "%s", name ? name : "");
        m->added = col_int(st, 1);
        m->spent = col_int(st, 2);
        m->entries = col_int(st, 3);
        m->last_at = col_int(st, 4);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}

int bill_entries(struct arena *a, const char *org_id, int64_t from, int64_t to,
                 struct bill_entry **rows)
{
    sqlite3_stmt *st = q_prepare("SELECT id, kind, amount, description, ref, created_at FROM "
                                 "ledger WHERE org_id = ? AND created_at >= ? AND "
                                 "created_at < ? ORDER BY id",
                                 "sii", org_id, from, to);
    int rc, n = 0, cap = 0;

    *rows = NULL;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct bill_entry *e;

        *rows = arena_grow(a, *rows, n, &cap, sizeof(**rows));
        e = &(*rows)[n++];
        e->id = col_int(st, 0);
        e->kind = col_dup(a, st, 1);
        e->amount = col_int(st, 2);
        e->description = col_dup(a, st, 3);
        e->ref = col_dup(a, st, 4);
        e->created_at = col_int(st, 5);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}
