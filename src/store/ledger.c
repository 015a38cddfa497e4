/* See ledger.h. */
#include "store/ledger.h"
#include "core/err.h"
#include "core/util.h"
#include "store/db.h"

#include <string.h>

int ledger_insert(const struct ledger_entry *e)
{
    static const char *const sql[2][2] = {
        {"INSERT INTO ledger (org_id, kind, amount, description, ref, created_by, created_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?)",
         "INSERT INTO ledger (org_id, kind, amount, description, ref, created_by, created_at, "
         "window_start, window_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"},
        {"INSERT OR IGNORE INTO ledger (org_id, kind, amount, description, ref, created_by, "
         "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
         "INSERT OR IGNORE INTO ledger (org_id, kind, amount, description, ref, created_by, "
         "created_at, window_start, window_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"},
    };
    int windowed = e->window_start || e->window_end;
    const char *q = sql[e->once ? 1 : 0][windowed];

    if (windowed)
        return q_exec(q, "ssisssiii", e->org_id, e->kind, e->amount, e->description, e->ref,
                      e->created_by, now_us(), e->window_start, e->window_end);
    return q_exec(q, "ssisssi", e->org_id, e->kind, e->amount, e->description, e->ref,
                  e->created_by, now_us());
}

int ledger_append(const char *org_id, const char *kind, int64_t amount, const char *description,
                  const char *ref, const char *created_by)
{
    struct ledger_entry e = {.org_id = org_id,
                             .kind = kind,
                             .amount = amount,
                             .description = description,
                             .ref = ref,
                             .created_by = created_by};
    int n = ledger_insert(&e);

    return n < 0 ? n : 0;
}

int ledger_balance(const char *org_id, int64_t *micro)
{
    return q_int(micro, "SELECT coalesce(sum(amount), 0) FROM ledger WHERE org_id = ?", "s",
                 org_id);
}

int ledger_list(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                struct ledger_row **rows, int64_t *total)
{
    sqlite3_stmt *st;
    int rc, n = 0, cap = 0;

    *rows = NULL;
    if (q_int(total, "SELECT count(*) FROM ledger WHERE org_id = ?", "s", org_id))
        return LY_EDB;
    /* balance_after is the running sum up to and including each entry. */
    st = q_prepare("SELECT id, kind, amount, description, ref, created_at, "
                   "  sum(amount) OVER (ORDER BY id) FROM ledger WHERE org_id = ? "
                   "ORDER BY id DESC LIMIT ? OFFSET ?",
                   "sii", org_id, limit, offset);
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ledger_row *r;
        const char *d = q_text(st, 3), *ref = q_text(st, 4), *kind = q_text(st, 1);

        if (n == cap) {
            struct ledger_row *p;

            cap = cap ? cap * 2 : 16;
            p = arena_alloc(a, (size_t)cap * sizeof(*p));
            if (n)
                memcpy(p, *rows, (size_t)n * sizeof(*p));
            *rows = p;
        }
        r = &(*rows)[n++];
        r->id = sqlite3_column_int64(st, 0);
        r->kind = arena_strdup(a, kind ? kind : "");
        r->amount = sqlite3_column_int64(st, 2);
        r->description = d ? arena_strdup(a, d) : NULL;
        r->ref = ref ? arena_strdup(a, ref) : NULL;
        r->created_at = sqlite3_column_int64(st, 5);
        r->balance_after = sqlite3_column_int64(st, 6);
    }
    q_done(st);
    return rc == SQLITE_DONE ? n : LY_EDB;
}
