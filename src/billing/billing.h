/*
 * Money (API.md 7, 16.4): prices, per-second metering of runs into the ledger, admission
 * control, monthly free credits and vouchers. Everything is integer micro-credits; a balance is
 * always the sum of the org's ledger entries.
 *
 * Metering: a run is charged for windows of meter_window_us of its wall-clock time, from
 * running_at on; each charge names its window, and a unique index lets each window be written
 * once, in the same transaction that advances the run's metered_until. A crash therefore loses
 * at most the window that was going and never charges twice.
 */
#ifndef LYCEUMD_BILLING_BILLING_H
#define LYCEUMD_BILLING_BILLING_H

#include "core/arena.h"
#include "store/billing.h"
#include "store/ledger.h"

#include <jansson.h>
#include <stdint.h>

/* The metering window: 10 s unless the config says otherwise (1 to 60 s). */
extern int64_t meter_window_us;

/* Reads the money settings (free credits per month, the metering window) and the invoice key.
 * Call at start-up. */
int billing_init(const char *data_dir, int64_t monthly_free_micro, int window_s);

/* The charge for the part [from, to) of a run that began at t0, at price micro-credits per
 * hour: rounded on the cumulative total, so windows add up to the charge of the whole. */
int64_t billing_charge(int64_t price_micro_h, int64_t t0, int64_t from, int64_t to);

/* One metering pass over every running run: charges the complete windows up to now. Fills
 * broke (if not NULL) with the ids of running runs whose org's balance, less what its running
 * runs have used but not yet been charged, is at or below zero, and sets *zero_at (if not NULL)
 * to the first instant (µs) at which another org's balance will reach zero at the rate its
 * running runs use it (INT64_MAX when none will), so that the caller can make its next pass
 * then: a run is stopped when its balance reaches zero, not up to a pass later.
 * Returns 0 or LY_EDB. Called by the scheduler once a second and at those instants. */
/* Records every machine type's price in the price book from since (µs) on, where it changed
 * (since 0: the prices at start, holding for what came before). 0 or LY_EDB. A run is billed
 * at the price in effect when it was submitted. */
int billing_prices_record(int64_t since);
/* A reload's new monthly_free_credits (micro-credits; 0: none). */
void billing_set_monthly_free(int64_t micro);
int billing_meter_pass(int64_t now, json_t *broke, int64_t *zero_at);

/* The final charge of a run that ended at end (from its metered_until), in its own
 * transaction unless in_tx. */
int billing_charge_final(const char *run_id, int64_t end, int in_tx);

/* 0 when org can pay for a first window of each profile in profiles (an array of names, or
 * one name), else LY_EPAYMENT. */
int billing_admit(const char *org_id, const char *profile, int count);

/* Grants this month's free credits and expires the unused ones of earlier months (when
 * configured): what a month's charges did not use of its grant (free credits are spent first),
 * never more than the org holds. Each grant and expiry is written once. billing_touch_at does it
 * as of now (µs), for the month now falls in. */
void billing_touch(const char *org_id);
void billing_touch_at(const char *org_id, int64_t now);
int billing_free_enabled(void);
int64_t billing_monthly_free(void);

/* The invoice document's capability token for (org, month "YYYY-MM"); out needs 65 bytes. */
void billing_invoice_token(const char *org_id, const char *month, char *out);

/* What a run has been billed so far, in micro-credits (positive). */
int64_t billing_run_billed(const char *run_id);

/* What an org sees of its money (the billing views and /orgs/{slug}/balance|transactions),
 * scoped by org_id. Rows are the store's, their strings and arrays allocated from a. */
int billing_balance(const char *org_id, int64_t *micro);
/* A page of ledger entries newest first, into *rows (from a): their number, or LY_EDB; *total
 * is the number of all the org's entries. */
int billing_transactions(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                         struct ledger_row **rows, int64_t *total);
/* Sums of the org's entries, this month counted from month_start. */
int billing_totals(const char *org_id, int64_t month_start, struct bill_totals *t);
/* A page of the org's runs newest first with what each was billed, and the count of each
 * status (store/billing.h's bill_history): the page's number of rows, or LY_EDB. */
int billing_history(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                    struct bill_history_row **rows, struct bill_status_count **counts, int *ncounts,
                    int64_t *total, int64_t *spent);
/* A page of executions (charged runs) and purchases (grants, vouchers) newest first: their
 * number, or LY_EDB; *total is the number of all of them. */
int billing_activities(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                       struct bill_activity **rows, int64_t *total);
/* Months with entries, newest first: their number, or LY_EDB. */
int billing_months(struct arena *a, const char *org_id, struct bill_month **rows);
/* The org's entries in [from, to), oldest first: their number, or LY_EDB. */
int billing_entries(struct arena *a, const char *org_id, int64_t from, int64_t to,
                    struct bill_entry **rows);

/* The operator's grant (lyceumd credits grant): amount micro-credits to the org with this
 * slug, described by note (NULL: "Operator grant"); the org's balance after it into *balance.
 * LY_ENOTFOUND when there is no such org. */
int billing_grant(const char *org_slug, int64_t amount, const char *note, int64_t *balance);
/* A new voucher worth credits micro-credits, until expires_at (µs; 0: never). LY_ECONFLICT
 * when the code exists. */
int billing_voucher_add(const char *code, int64_t credits, int64_t expires_at, const char *note);

/* A voucher's credits and expiry (0: none); LY_ENOTFOUND when there is no such code. */
int billing_voucher_get(const char *code, int64_t *credits, int64_t *expires_at);
/* Redeems voucher code for org_id on behalf of user_id: its credits into *credits and the
 * org's balance after it into *balance. LY_ENOTFOUND, LY_EGONE (expired) and LY_ECONFLICT
 * (this org redeemed it already) come with *why. */
int billing_voucher_redeem(const char *org_id, const char *user_id, const char *code,
                           int64_t *credits, int64_t *balance, const char **why);

#endif
