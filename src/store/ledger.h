/*
 * The credits ledger: append-only entries per org in integer micro-credits (the table's
 * triggers refuse UPDATE and DELETE). A balance is always the sum of the entries.
 */
#ifndef LYCEUMD_STORE_LEDGER_H
#define LYCEUMD_STORE_LEDGER_H

#include <jansson.h>
#include <stdint.h>

int ledger_append(const char *org_id, const char *kind, int64_t amount, const char *description,
                  const char *ref, const char *created_by);
int ledger_balance(const char *org_id, int64_t *micro);
/* Entries newest first, as transaction objects; *total is the number of entries. */
int ledger_list(const char *org_id, int64_t limit, int64_t offset, json_t *out, int64_t *total);

#endif
