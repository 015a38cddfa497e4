/*
 * See billing.h. The meter reads the running runs from the store (so a restart continues where
 * the last committed pass stopped) and writes one transaction per pass.
 */
#include "billing/billing.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "runs/profiles.h"
#include "store/billing.h"
#include "store/db.h"
#include "store/ledger.h"
#include "store/orgs.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t monthly_free;
int64_t meter_window_us = 10LL * 1000000;
static unsigned char invoice_key[32];

int billing_init(const char *data_dir, int64_t monthly_free_micro, int window_s)
{
    char path[1100];

    monthly_free = monthly_free_micro;
    if (window_s >= 1 && window_s <= 60)
        meter_window_us = (int64_t)window_s * 1000000;
    snprintf(path, sizeof(path), "%.1000s/invoice.key", data_dir);
    return key_file_load(path, invoice_key, sizeof(invoice_key));
}

/* micro-credits for dt µs at price micro-credits per hour, rounded half up. */
static int64_t cost(int64_t price, int64_t dt)
{
    __int128 x = (__int128)price * dt;

    return (int64_t)((x + 1800000000LL) / 3600000000LL);
}

int64_t billing_charge(int64_t price, int64_t t0, int64_t from, int64_t to)
{
    if (to <= from)
        return 0;
    return cost(price, to - t0) - cost(price, from - t0);
}

static int64_t price_of(const char *profile)
{
    struct profile *p = profile_find(profile);

    return p ? p->price_micro : 0;
}

/* A run's price per hour: the one in effect when it was submitted (the price book's history),
 * else its machine type's. */
static int64_t run_price(const struct bill_run *r)
{
    return r->price_micro >= 0 ? r->price_micro : price_of(r->profile);
}

int billing_prices_record(int64_t since)
{
    int err = 0;

    for (int i = 0; i < profiles_count() && !err; i++) {
        const struct profile *p = profile_at(i);
        int rc = bill_price_record(p->name, p->price_micro, since);

        if (rc < 0)
            err = rc;
        else if (rc > 0 && since)
            log_info("price of %s from now on: %lld micro-credits per hour", p->name,
                     (long long)p->price_micro);
    }
    return err;
}

/* Fills broke with the runs of the orgs whose balance, less what their running runs have used
 * since their last charge, is at or below zero; *zero_at (when not NULL) becomes the first
 * instant at which another org's balance will reach zero at the rate its runs use it. */
static int find_broke(const struct bill_run *list, int nlist, int64_t now, json_t *broke,
                      int64_t *zero_at)
{
    json_t *orgs = json_object(), *o;
    const char *k;
    int err = 0;

    if (zero_at)
        *zero_at = INT64_MAX;
    for (int i = 0; i < nlist; i++) {
        const struct bill_run *r = &list[i];
        const char *org = r->org_id;
        int64_t price = run_price(r);
        int64_t t0 = r->running_at;
        int64_t from = t0 + (now - t0) / meter_window_us * meter_window_us;

        o = json_object_get(orgs, org);
        if (!o) {
            int64_t bal = 0;

            if (ledger_balance(org, &bal)) {
                err = LY_EDB;
                break;
            }
            o = json_pack("{s:I,s:I,s:[]}", "left", (json_int_t)bal, "rate", (json_int_t)0, "runs");
            json_object_set_new(orgs, org, o);
        }
        json_object_set_new(o, "left",
                            json_integer(json_integer_value(json_object_get(o, "left")) -
                                         billing_charge(price, t0, from, now)));
        json_object_set_new(o, "rate",
                            json_integer(json_integer_value(json_object_get(o, "rate")) + price));
        json_array_append_new(json_object_get(o, "runs"), json_string(r->id));
    }
    json_object_foreach(orgs, k, o)
    {
        int64_t left = json_integer_value(json_object_get(o, "left"));
        int64_t rate = json_integer_value(json_object_get(o, "rate"));

        if (err)
            break;
        if (left <= 0) {
            json_array_extend(broke, json_object_get(o, "runs"));
        } else if (zero_at && rate > 0) {
            /* left micro-credits last left * 3600e6 / rate µs (rounded up). */
            __int128 us = ((__int128)left * 3600000000LL + rate - 1) / rate;
            int64_t at = us > INT64_MAX - now ? INT64_MAX : now + (int64_t)us;

            if (at < *zero_at)
                *zero_at = at;
        }
    }
    json_decref(orgs);
    return err;
}

int billing_meter_pass(int64_t now, json_t *broke, int64_t *zero_at)
{
    struct bill_run *list;
    struct arena a;
    int err = 0, n, charged = 0;

    if (zero_at)
        *zero_at = INT64_MAX;
    arena_init(&a);
    n = bill_running(&a, &list);
    if (n < 0) {
        err = n;
        goto out;
    }
    if (n) {
        err = store_begin();
        if (err)
            goto out;
        for (int i = 0; i < n; i++) {
            const struct bill_run *r = &list[i];
            int64_t t0 = r->running_at;
            int64_t from = r->metered ? r->metered_until : t0;
            int64_t price = run_price(r);

            /* Whole windows, counted from the run's start, so their edges never move. */
            while (from + meter_window_us <= now) {
                int64_t to = t0 + ((from - t0) / meter_window_us + 1) * meter_window_us;
                int w = bill_charge_window(r->id, r->org_id, r->profile,
                                           billing_charge(price, t0, from, to), from, to);

                if (w < 0) {
                    err = w;
                    break;
                }
                charged += w;
                from = to;
            }
            if (err)
                break;
        }
        if (err)
            store_rollback();
        else
            err = store_commit();
    }
    if (!err && broke)
        err = find_broke(list, n, now, broke, zero_at);
out:
    if (err)
        log_error("metering pass failed: %s", err_str(err));
    arena_release(&a);
    (void)charged;
    return err;
}

int billing_charge_final(const char *run_id, int64_t end, int in_tx)
{
    struct bill_run r;
    struct arena a;
    int64_t t0, from;
    int err;

    arena_init(&a);
    err = bill_run_meter_row(&a, run_id, &r);
    if (err) {
        err = err == LY_ENOTFOUND ? 0 : err; /* no such run: nothing to charge */
        goto out;
    }
    if (!r.ran)
        goto out; /* it never ran: nothing to charge */
    t0 = r.running_at;
    from = r.metered ? r.metered_until : t0;
    if (end > from) {
        if (!in_tx && (err = store_begin()))
            goto out;
        err = bill_charge_window(run_id, r.org_id, r.profile,
                                 billing_charge(run_price(&r), t0, from, end), from, end);
        err = err < 0 ? err : 0;
        if (!in_tx)
            err = err ? (store_rollback(), err) : store_commit();
    }
out:
    arena_release(&a);
    return err;
}

int billing_admit(const char *org_id, const char *profile, int count)
{
    int64_t balance = 0, need;

    billing_touch(org_id);
    if (ledger_balance(org_id, &balance))
        return LY_EDB;
    need = cost(price_of(profile), meter_window_us) * count;
    if (balance <= 0 || balance < need)
        return LY_EPAYMENT;
    return 0;
}

void billing_set_monthly_free(int64_t micro)
{
    __atomic_store_n(&monthly_free, micro, __ATOMIC_RELAXED);
}

int billing_free_enabled(void)
{
    return monthly_free > 0;
}

int64_t billing_monthly_free(void)
{
    return monthly_free;
}

/* The first instant (µs) of the month containing t, and that month's name. */
static int64_t month_start(int64_t t, int delta, char *name, size_t n)
{
    time_t s = (time_t)(t / 1000000);
    struct tm tm;

    gmtime_r(&s, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_mon += delta;
    s = timegm(&tm);
    gmtime_r(&s, &tm);
    if (name)
        snprintf(name, n, "%04d-%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100);
    return (int64_t)s * 1000000;
}

/* The bounds [*start, *end) of the month named "YYYY-MM"; -1 when it names none. */
static int month_bounds(const char *name, int64_t *start, int64_t *end)
{
    struct tm tm = {0};
    int y, m;
    char extra;

    if (!name || sscanf(name, "%4d-%2d%c", &y, &m, &extra) != 2 || m < 1 || m > 12)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = 1;
    *start = (int64_t)timegm(&tm) * 1000000;
    *end = month_start(*start, 1, NULL, 0);
    return 0;
}

void billing_touch_at(const char *org_id, int64_t now)
{
    char this_month[16];
    struct bill_grant *old;
    struct arena a;
    int n;

    if (monthly_free <= 0 || !org_id || !*org_id)
        return;
    month_start(now, 0, this_month, sizeof(this_month));
    if (store_begin())
        return;
    /* Every earlier month's grant not yet expired expires before this month's comes, oldest
     * first: an org that made no request for months still loses them. */
    arena_init(&a);
    n = bill_free_unexpired(&a, org_id, this_month, &old);
    for (int i = 0; i < n; i++) {
        const char *month = old[i].month;
        int64_t granted = old[i].amount, from, to;

        if (month_bounds(month, &from, &to) == 0 && granted > 0)
            bill_free_expire(org_id, month, from, to, granted);
    }
    arena_release(&a);
    bill_free_grant(org_id, this_month, monthly_free);
    if (store_commit())
        store_rollback();
}

void billing_touch(const char *org_id)
{
    billing_touch_at(org_id, now_us());
}

void billing_invoice_token(const char *org_id, const char *month, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    char msg[128];

    snprintf(msg, sizeof(msg), "invoice:%s:%s", org_id, month);
    HMAC(EVP_sha256(), invoice_key, sizeof(invoice_key), (const unsigned char *)msg, strlen(msg),
         mac, &len);
    for (unsigned i = 0; i < 32 && i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

int64_t billing_run_billed(const char *run_id)
{
    int64_t v = 0;

    bill_run_billed(run_id, &v);
    return v;
}

int billing_balance(const char *org_id, int64_t *micro)
{
    return ledger_balance(org_id, micro);
}

int billing_transactions(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                         struct ledger_row **rows, int64_t *total)
{
    return ledger_list(a, org_id, limit, offset, rows, total);
}

int billing_totals(const char *org_id, int64_t month_start, struct bill_totals *t)
{
    return bill_totals(org_id, month_start, t);
}

int billing_history(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                    struct bill_history_row **rows, struct bill_status_count **counts, int *ncounts,
                    int64_t *total, int64_t *spent)
{
    return bill_history(a, org_id, limit, offset, rows, counts, ncounts, total, spent);
}

int billing_activities(struct arena *a, const char *org_id, int64_t limit, int64_t offset,
                       struct bill_activity **rows, int64_t *total)
{
    return bill_activities(a, org_id, limit, offset, rows, total);
}

int billing_months(struct arena *a, const char *org_id, struct bill_month **rows)
{
    return bill_months(a, org_id, rows);
}

int billing_entries(struct arena *a, const char *org_id, int64_t from, int64_t to,
                    struct bill_entry **rows)
{
    return bill_entries(a, org_id, from, to, rows);
}

int billing_voucher_get(const char *code, int64_t *credits, int64_t *expires_at)
{
    struct voucher_row v;
    struct arena a;
    int err;

    arena_init(&a);
    err = voucher_get(&a, code, &v);
    if (!err) {
        *credits = v.credits;
        *expires_at = v.expires_at;
    }
    arena_release(&a);
    return err;
}

int billing_voucher_redeem(const char *org_id, const char *user_id, const char *code,
                           int64_t *credits, int64_t *balance, const char **why)
{
    struct voucher_row v;
    struct arena a;
    int err;

    arena_init(&a);
    err = voucher_get(&a, code, &v);
    if (err == LY_ENOTFOUND)
        *why = "Voucher not found";
    if (err)
        goto out;
    *credits = v.credits;
    if (v.expires_at && v.expires_at <= now_us()) {
        *why = "This voucher has expired";
        err = LY_EGONE;
        goto out;
    }
    /* The code as stored: codes match without case, the ledger names the voucher itself. */
    err = voucher_redeem(org_id, v.code, v.credits, user_id);
    if (err == LY_ECONFLICT)
        *why = "This organization has already redeemed this voucher";
    if (!err && ledger_balance(org_id, balance))
        err = LY_EDB;
out:
    arena_release(&a);
    return err;
}

int billing_grant(const char *org_slug, int64_t amount, const char *note, int64_t *balance)
{
    char org_id[40];
    int err = orgs_id_by_slug(org_slug, org_id);

    if (!err)
        err = ledger_append(org_id, "grant", amount, note ? note : "Operator grant", NULL,
                            "operator");
    if (!err)
        err = ledger_balance(org_id, balance);
    return err;
}

int billing_voucher_add(const char *code, int64_t credits, int64_t expires_at, const char *note)
{
    return voucher_add(code, credits, expires_at, note);
}
