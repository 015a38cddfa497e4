/* See ledger.h. */
#include "store/ledger.h"
#include "core/err.h"
#include "core/json.h"
#include "core/util.h"
#include "store/db.h"

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

int ledger_list(const char *org_id, int64_t limit, int64_t offset, json_t *out, int64_t *total)
{
    sqlite3_stmt *st;
    int rc;

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
        char amount[32], after[32];

        micro_format(sqlite3_column_int64(st, 2), amount, sizeof(amount));
        micro_format(sqlite3_column_int64(st, 6), after, sizeof(after));
        json_array_append_new(out, json_pack("{s:I,s:s,s:s,s:s?,s:s?,s:o,s:s}", "id",
                                             (json_int_t)sqlite3_column_int64(st, 0), "type",
                                             q_text(st, 1), "amount", amount, "description",
                                             q_text(st, 3), "reference", q_text(st, 4),
                                             "created_at", json_time(sqlite3_column_int64(st, 5)),
                                             "balance_after", after));
    }
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}
