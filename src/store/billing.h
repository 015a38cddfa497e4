/*
 * The money queries: run charges by window, vouchers, free credits, and the billing views
 * (history, activities, invoices). All scoped by org in SQL; the metering queries (scheduler
 * only) read every running run. Rows come back as JSON objects the caller owns.
 */
#ifndef LYCEUMD_STORE_BILLING_H
#define LYCEUMD_STORE_BILLING_H

#include "core/arena.h"

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
    int64_t price_micro; /* per hour, in effect when it was submitted; -1: none recorded */
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

/* Records profile's price from since on when it differs from the newest recorded one (its
 * first record holds from the beginning). 1 when recorded, 0 when unchanged, LY_EDB. */
int bill_price_record(const char *profile, int64_t price_micro, int64_t since);

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

/* A run of the billing history; NULL strings and 0 times where the column is NULL. */
struct bill_history_row {
    char *id;
    int kind; /* 1 python, 2 docker, else compose */
    char *status, *profile, *file_name, *spec, *errors, *parent_id, *user_id;
    int64_t created_at, started_at, running_at, ended_at, finished_at;
    int deleted;
    int64_t billed; /* its run charges, positive */
};
/* How many of the org's runs have a status. */
struct bill_status_count {
    char *status;
    int64_t n;
};
/* A page of the org's runs newest first with their billed amount into *rows, and the count of
 * every status into *counts (*ncounts of them), all from a; *total is the number of its runs
 * and *spent what they were charged. The page's number of rows, or LY_EDB. */
int bill_history(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                 struct bill_history_row **rows, struct bill_status_count **counts, int *ncounts,
                 int64_t *total, int64_t *spent);

/* An activity: a charged run (its charges summed) or a credit addition. */
struct bill_activity {
    char *type; /* "execution" or "purchase" */
    char *id;   /* the run's id, or "entry-<ledger id>" */
    int64_t created_at;
    int64_t amount;
    char *profile; /* NULL for a purchase */
    char *status;  /* the run's; "completed" for a purchase; NULL when the run is gone */
    char *description;
};
/* A page of activities newest first into *rows (from a): their number, or LY_EDB; *total is the
 * number of all of them. */
int bill_activities(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                    struct bill_activity **rows, int64_t *total);

/* A month with entries. */
struct bill_month {
    char month[8]; /* "YYYY-MM" */
    int64_t added, spent, entries, last_at;
};
/* The months with entries, newest first, into *rows (from a): their number, or LY_EDB. */
int bill_months(struct arena *a, const char *org_id, struct bill_month **rows);

/* A ledger entry as a statement lists it. */
struct bill_entry {
    int64_t id;
    char *kind;
    int64_t amount;
    char *description, *ref; /* NULL when unset */
    int64_t created_at;
};
/* The org's entries in [from, to), oldest first, into *rows (from a): their number, or LY_EDB. */
int bill_entries(struct arena *a, const char *org_id, int64_t from, int64_t to,
                 struct bill_entry **rows);

#endif
