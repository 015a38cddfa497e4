/*
 * The money queries: run charges by window, vouchers, free credits, and the billing views
 * (history, activities, invoices). All scoped by org in SQL; the metering queries (scheduler
 * only) read every running run. Rows come back as JSON objects the caller owns.
 */
#ifndef LYCEUMD_STORE_BILLING_H
#define LYCEUMD_STORE_BILLING_H

#include "core/arena.h"

#include <jansson.h>
#include <stdint.h>

/* A run as the meter sees it; strings from the arena given. */
struct bill_run {
    char id[40];
    char org_id[40];
    char *profile;
    int ran; /* running_at is set */
    int64_t running_at;
    int metered; /* metered_until is set */
    int64_t metered_until;
};
/* The running runs into *rows (from a): their number, or LY_EDB. */
int bill_running(struct arena *a, struct bill_run **rows);
/* Writes the charge of window [start, end) of a run and advances its metered_until; 1 when
 * written, 0 when that window was already charged. */
int bill_charge_window(const char *run_id, const char *org_id, const char *profile, int64_t amount,
                       int64_t start, int64_t end);
int bill_run_billed(const char *run_id, int64_t *micro);
/* A run's row for its final charge; LY_ENOTFOUND when there is no such run. */
int bill_run_meter_row(struct arena *a, const char *run_id, struct bill_run *r);

int voucher_add(const char *code, int64_t credits, int64_t expires_at, const char *note);
struct voucher_row {
    char *code; /* as stored (codes match without case) */
    int64_t credits;
    int64_t expires_at; /* 0: never */
};
/* LY_ENOTFOUND when there is no such code. */
int voucher_get(struct arena *a, const char *code, struct voucher_row *v);
/* Adds the voucher's credits to org once: LY_ECONFLICT when org redeemed it already. */
int voucher_redeem(const char *org_id, const char *code, int64_t credits, const char *user_id);

/* Free credits: a month's grant and its expiry, each written at most once. */
int bill_free_grant(const char *org_id, const char *month, int64_t amount);
/* A month's free grant. */
struct bill_grant {
    char *month; /* "YYYY-MM" */
    int64_t amount;
};
/* The org's free grants of months before month ("YYYY-MM") with no expiry yet, oldest first,
 * into *rows (from a): their number, or LY_EDB. */
int bill_free_unexpired(struct arena *a, const char *org_id, const char *month,
                        struct bill_grant **rows);
int bill_free_expire(const char *org_id, const char *month, int64_t month_start, int64_t month_end,
                     int64_t granted);

/* Sums of the org's entries, in micro-credits. */
struct bill_totals {
    int64_t balance;     /* all of them */
    int64_t purchased;   /* added, free credits aside */
    int64_t spent;       /* spent (expiries aside), as a positive number */
    int64_t free_month;  /* free credits granted since month_start */
    int64_t spent_month; /* spent since month_start */
    int64_t expired;     /* free credits expired, as a positive number */
};
int bill_totals(const char *org_id, int64_t month_start, struct bill_totals *t);

/* The org's runs newest first with their billed amount, and per-status counts. */
int bill_history(const char *org_id, int64_t limit, int64_t offset, json_t *rows, json_t *counts,
                 int64_t *total, int64_t *spent);
/* Executions (charged runs) and purchases (grants, vouchers) newest first. */
int bill_activities(const char *org_id, int64_t limit, int64_t offset, json_t *rows,
                    int64_t *total);
/* Months with entries ("YYYY-MM", newest first): added, spent, count per month. */
int bill_months(const char *org_id, json_t *rows);
/* The org's entries between two times, oldest first. */
int bill_entries(const char *org_id, int64_t from, int64_t to, json_t *rows);

#endif
