/*
 * The credits ledger: append-only entries per org in integer micro-credits (the table's
 * triggers refuse UPDATE and DELETE). A balance is always the sum of the entries.
 *
 * This file is the only place that writes ledger rows: grants, vouchers, free credits and
 * their expiry (store/billing.c), run and deployment charges (store/billing.c,
 * store/inference.c) all go through ledger_insert().
 */
#ifndef LYCEUMD_STORE_LEDGER_H
#define LYCEUMD_STORE_LEDGER_H

#include "core/arena.h"

#include <stdint.h>

/* One entry to write. description, ref and created_by may be NULL. A charge names its window
 * [window_start, window_end) (both 0: none). once: an entry that a unique index already holds
 * (a window charged, a month granted) is skipped instead of failing. */
struct ledger_entry {
    const char *org_id;
    const char *kind;
    int64_t amount;
    const char *description;
    const char *ref;
    const char *created_by;
    int64_t window_start, window_end;
    int once;
};
/* Writes e at now: 1 when written, 0 when skipped (once), else a negative LY_E* code
 * (LY_ECONFLICT when a unique index refuses it and once is not set). */
int ledger_insert(const struct ledger_entry *e);
/* ledger_insert() of an entry without window, not once: 0 or a negative LY_E* code. */
int ledger_append(const char *org_id, const char *kind, int64_t amount, const char *description,
                  const char *ref, const char *created_by);
int ledger_balance(const char *org_id, int64_t *micro);
/* An entry as an org's transactions show it; strings from the arena given. */
struct ledger_row {
    int64_t id;
    char *kind;
    int64_t amount;
    char *description; /* NULL when unset */
    char *ref;         /* NULL when unset */
    int64_t created_at;
    int64_t balance_after; /* the running sum up to and including this entry */
};
/* A page of the org's entries, newest first, into *rows (from a): their number, or LY_EDB;
 * *total is the number of all its entries. */
int ledger_list(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                struct ledger_row **rows, int64_t *total);

#endif
