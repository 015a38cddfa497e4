/*
 * Money views and actions (API.md 7, 16.4): the price book, credits, history, activities,
 * invoices (with a printable document), vouchers and checkout. Every figure is a query over
 * the org's ledger and runs.
 */
#include "api/api.h"
#include "billing/billing.h"
#include "core/buf.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "core/util.h"
#include "runs/profiles.h"
#include "runs/runs.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A decimal string with 8 places of a value in units of 1e-8. */
static json_t *dec8(int64_t v)
{
    char buf[48];

    snprintf(buf, sizeof(buf), "%s%lld.%08lld", v < 0 ? "-" : "", llabs(v) / 100000000LL,
             llabs(v) % 100000000LL);
    return json_string(buf);
}

/* One price row; price is micro-credits per hour per unit of the meter. */
static json_t *price_row(const char *meter, const char *resource, const char *applies,
                         const char *unit, int64_t price_h)
{
    int64_t per_h = price_h * 100;                 /* 1e-8 units */
    int64_t per_s = (price_h * 100 + 1800) / 3600; /* rounded */
    json_t *a = json_pack("{s:s}", "hardware_profile", applies);

    return json_pack("{s:s,s:s,s:o,s:O,s:s,s:o,s:o}", "meter_slug", meter, "resource", resource,
                     "applies_to", a, "group_by", a, "unit", unit, "unit_price",
                     strcmp(unit, "second") == 0 ? dec8(per_s) : dec8(per_h), "unit_price_per_hour",
                     dec8(per_h));
}

static int api_pricing(struct req *req)
{
    json_t *prices = json_array();
    static const int counts[] = {1, 2, 4, 8};

    for (int i = 0; i < profiles_count(); i++) {
        struct profile *p = profile_at(i);

        json_array_append_new(prices,
                              price_row("run_seconds", "run", p->name, "second", p->price_micro));
        json_array_append_new(prices, price_row("deployment_replica_seconds", "deployment", p->name,
                                                "second", p->price_micro));
    }
    for (int i = 0; i < profiles_count(); i++) {
        struct profile *p = profile_at(i);
        char name[96];

        if (strncmp(p->name, "gpu.", 4) != 0)
            continue;
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof(name), "on-demand.%s.%dx", p->name + 4, counts[k]);
            json_array_append_new(
                prices, price_row("vm_running", "vm", name, "second", p->price_micro * counts[k]));
        }
    }
    return req_reply(req, json_pack("{s:o,s:s}", "prices", prices, "currency", "credits"));
}

static int64_t month_start_us(void)
{
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) * 1000000;
}

static int totals(struct req *req, struct bill_totals *t)
{
    billing_touch(req->caller->org_id);
    return billing_totals(req->caller->org_id, month_start_us(), t);
}

static int api_credits(struct req *req)
{
    struct bill_totals t;
    int err = totals(req, &t);
    int64_t free_left;

    if (err)
        return err;
    free_left = t.free_month - t.spent_month;
    if (free_left < 0)
        free_left = 0;
    err =
        req_reply(req, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "available_credits",
                                 json_money(t.balance), "used_credits", json_money(t.spent),
                                 "remaining_credits", json_money(t.balance), "monthly_free_credits",
                                 json_money(billing_monthly_free()), "purchased_credits",
                                 json_money(t.purchased), "total_credits_used", json_money(t.spent),
                                 "free_credits_remaining", json_money(free_left)));
    return err;
}

static int api_credits_details(struct req *req)
{
    struct bill_totals t;
    int err = totals(req, &t);
    int64_t free_used, free_left;
    char bal[32];

    if (err)
        return err;
    free_used = t.spent_month < t.free_month ? t.spent_month : t.free_month;
    free_left = t.free_month - free_used;
    micro_format(t.balance, bal, sizeof(bal));
    err = req_reply(
        req,
        json_pack("{s:s,s:s,s:o,s:{s:o,s:o,s:o,s:o,s:o},s:{s:o,s:o},s:o,s:o}", "org_id",
                  req->caller->org_id, "balance", bal, "available_credits", json_money(t.balance),
                  "free", "monthly_allowance", json_money(billing_monthly_free()),
                  "granted_this_month", json_money(t.free_month), "used_this_month",
                  json_money(free_used), "remaining", json_money(free_left), "expired_total",
                  json_money(t.expired), "purchased", "total", json_money(t.purchased), "remaining",
                  json_money(t.balance - free_left > 0 ? t.balance - free_left : 0), "total_used",
                  json_money(t.spent), "used_this_month", json_money(t.spent_month)));
    return err;
}

/* A string, or JSON null for NULL. */
static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *history_obj(const struct bill_history_row *r)
{
    json_t *spec = r->spec ? json_loads(r->spec, 0, NULL) : NULL;
    json_t *imports = json_object_get(spec, "import_files");
    json_t *o = json_pack(
        "{s:o,s:o,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:s,s:{s:o,s:b}}",
        "execution_id", str_or_null(r->id), "created_at", json_time(r->created_at),
        "execution_type", r->kind == 1 ? "python code" : "docker", "status", str_or_null(r->status),
        "hardware_profile", str_or_null(r->profile), "status_details", str_or_null(r->errors),
        "local_imports", json_is_string(imports) ? json_incref(imports) : json_null(), "billed",
        json_money(r->billed), "execelet_start", json_time(r->started_at), "start_time",
        json_time(r->running_at), "end_time", json_time(r->ended_at), "finish_time",
        json_time(r->finished_at), "job_start", json_time(r->running_at), "job_end",
        json_time(r->ended_at), "file_name", str_or_null(r->file_name), "errors_docker",
        r->kind != 1 ? str_or_null(r->errors) : json_null(), "parent_execution_id",
        str_or_null(r->parent_id), "job_type",
        r->kind == 1   ? "python"
        : r->kind == 2 ? "docker"
                       : "compose",
        "metadata", "user_id", str_or_null(r->user_id), "deleted", r->deleted);

    json_decref(spec);
    return o;
}

static int api_history(struct req *req)
{
    long long limit, offset;
    struct bill_history_row *rows;
    struct bill_status_count *counts;
    json_t *list, *by_status;
    int64_t total = 0, spent = 0;
    int n, ncounts = 0;

    if (req_query_int(req, "limit", 50, 1, 1000, &limit) |
        req_query_int(req, "offset", 0, 0, 1LL << 40, &offset))
        return LY_EINVAL;
    n = billing_history(&req->arena, req->caller->org_id, limit, offset, &rows, &counts, &ncounts,
                        &total, &spent);
    if (n < 0)
        return n;
    list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, history_obj(&rows[i]));
    by_status = json_object();
    for (int i = 0; i < ncounts; i++)
        if (counts[i].status)
            json_object_set_new(by_status, counts[i].status, json_integer(counts[i].n));
    return req_reply(req, json_pack("{s:o,s:I,s:o,s:I,s:I,s:o}", "executions", list,
                                    "total_executions", (json_int_t)total, "total_credits_spent",
                                    json_money(spent), "limit", (json_int_t)limit, "offset",
                                    (json_int_t)offset, "counts_by_status", by_status));
}

static int api_activities(struct req *req)
{
    long long limit, offset;
    struct bill_activity *rows;
    json_t *list;
    int64_t total = 0;
    int n;

    if (req_query_int(req, "limit", 50, 1, 1000, &limit) |
        req_query_int(req, "offset", 0, 0, 1LL << 40, &offset))
        return LY_EINVAL;
    n = billing_activities(&req->arena, req->caller->org_id, limit, offset, &rows, &total);
    if (n < 0)
        return n;
    list = json_array();
    for (int i = 0; i < n; i++) {
        const struct bill_activity *r = &rows[i];

        json_array_append_new(
            list, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "activity_id", str_or_null(r->id),
                            "created_at", json_time(r->created_at), "type", str_or_null(r->type),
                            "amount", json_money(r->amount), "description",
                            str_or_null(r->description), "status", str_or_null(r->status),
                            "hardware_profile", str_or_null(r->profile)));
    }
    return req_reply(req, json_pack("{s:o,s:I,s:I,s:I}", "activities", list, "total_activities",
                                    (json_int_t)total, "limit", (json_int_t)limit, "offset",
                                    (json_int_t)offset));
}

/* [start, end) of month "YYYY-MM"; 0 when the name is valid. */
static int month_range(const char *m, int64_t *from, int64_t *to)
{
    struct tm tm = {0};
    int y, mo;
    char tail;

    if (!m || sscanf(m, "%4d-%2d%c", &y, &mo, &tail) != 2 || y < 1970 || mo < 1 || mo > 12 ||
        strlen(m) != 7)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = 1;
    *from = (int64_t)timegm(&tm) * 1000000;
    tm.tm_mon++;
    *to = (int64_t)timegm(&tm) * 1000000;
    return 0;
}

/* Micro-credits as whole cents, rounded half away from zero. */
static int64_t money_cents(int64_t micro)
{
    return micro >= 0 ? (micro + 5000) / 10000 : -((-micro + 5000) / 10000);
}

static json_t *document_url(struct req *req, const char *org_id, const char *month)
{
    const char *base = runs_cfg && runs_cfg->public_url[0] ? runs_cfg->public_url : NULL;
    const char *host = req_header(req, "Host");
    char token[65], url[600];

    billing_invoice_token(org_id, month, token);
    snprintf(url, sizeof(url), "%s%s%s/billing/invoices/inv_%s/document?org=%s&token=%s",
             base ? "" : "http://", base ? base : (host ? host : "127.0.0.1:8000"), API_PREFIX,
             month, org_id, token);
    return json_string(url);
}

static int api_invoices(struct req *req)
{
    long long limit, offset;
    struct bill_month *months;
    json_t *list;
    char this_month[8];
    int nmonths;
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(this_month, sizeof(this_month), "%Y-%m", &tm);
    if (req_query_int(req, "limit", 10, 1, 1000, &limit) |
        req_query_int(req, "offset", 0, 0, 1LL << 40, &offset))
        return LY_EINVAL;
    nmonths = billing_months(&req->arena, req->caller->org_id, &months);
    if (nmonths < 0)
        return nmonths;
    list = json_array();
    for (int i = 0; i < nmonths; i++) {
        const struct bill_month *m = &months[i];
        const char *month = m->month;
        int64_t spent = m->spent;
        int open = strcmp(month, this_month) == 0;
        char id[16], number[40], desc[64];
        int64_t from, to, created;
        json_t *inv, *url;
        struct tm mt;
        time_t t;

        if ((long long)i < offset || (long long)json_array_size(list) >= limit)
            continue;
        month_range(month, &from, &to);
        created = open ? now_us() : to - 1;
        snprintf(id, sizeof(id), "inv_%s", month);
        t = (time_t)(from / 1000000);
        gmtime_r(&t, &mt);
        /* A Stripe-style number: the org's first id characters and the month. */
        snprintf(number, sizeof(number), "LY-%.8s-%.4s%.2s", req->caller->org_id, month, month + 5);
        for (char *p = number; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        strftime(desc, sizeof(desc), "Usage statement for %B %Y", &mt);
        url = document_url(req, req->caller->org_id, month);
        inv = json_pack("{s:s,s:s,s:o,s:o,s:o,s:s,s:O,s:n,s:n,s:I}", "id", id, "period", month,
                        "created_at", json_time(created), "amount", json_money(spent), "credits",
                        json_money(m->added), "status", open ? "open" : "closed", "invoice_pdf",
                        url, "receipt_url", "payment_intent_id", "entries", (json_int_t)m->entries);
        /* The fields an older dashboard typed after Stripe's invoice object. Credits are
         * dollars (API.md 16.4) and prepaid: each charge is paid from the balance as it is
         * made, so what was due is what was paid. */
        json_object_update_new(
            inv, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:O}", "number", number, "description",
                           desc, "created", (json_int_t)(created / 1000000), "amount_due",
                           (json_int_t)money_cents(spent), "amount_paid",
                           (json_int_t)money_cents(spent), "amount_remaining", (json_int_t)0,
                           "currency", "usd", "hosted_invoice_url", url));
        json_decref(url);
        json_array_append_new(list, inv);
    }
    return req_reply(
        req, json_pack("{s:o,s:I}", "invoices", list, "total_invoices", (json_int_t)nmonths));
}

/* An invoice page: a month's entries are bounded by what a month can hold. */
#define PAGE_CAP (256u << 20)

/* Appends s to the page, HTML-escaped when escape. */
static void html(struct buf *page, const char *s, int escape)
{
    for (; s && *s; s++) {
        const char *rep = NULL;

        if (escape)
            rep = *s == '<'   ? "&lt;"
                  : *s == '>' ? "&gt;"
                  : *s == '&' ? "&amp;"
                  : *s == '"' ? "&quot;"
                              : NULL;
        if (rep ? buf_adds(page, rep) : buf_add(page, s, 1))
            return;
    }
}

static int api_invoice_document(struct req *req)
{
    const char *id = req_param(req, "invoice_id"), *org = req_query(req, "org");
    const char *token = req_query(req, "token");
    char want[65], line[512], amount[32], total[32], added[32];
    int64_t from, to, spent = 0, credits = 0;
    struct bill_entry *rows;
    struct buf page = BUF_INIT(PAGE_CAP);
    int n;

    if (strncmp(id, "inv_", 4) != 0 || month_range(id + 4, &from, &to) || !org || !token ||
        strlen(org) > 40)
        return req_fail(req, LY_ENOTFOUND, "Invoice not found");
    billing_invoice_token(org, id + 4, want);
    if (strlen(token) != 64 || CRYPTO_memcmp(token, want, 64) != 0)
        return req_fail(req, LY_ENOTFOUND, "Invoice not found");
    n = billing_entries(&req->arena, org, from, to, &rows);
    if (n < 0)
        return n;
    html(&page, "<!doctype html><html><head><meta charset=\"utf-8\"><title>", 0);
    snprintf(line, sizeof(line), "lyceumd statement %s", id + 4);
    html(&page, line, 1);
    html(&page,
         "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
         "td,th{border:1px solid #999;padding:4px 8px}td.n{text-align:right}</style></head>"
         "<body><h1>Statement ",
         0);
    html(&page, id + 4, 1);
    html(&page, "</h1><p>Organization ", 0);
    html(&page, org, 1);
    html(&page,
         "</p><table><tr><th>#</th><th>Date (UTC)</th><th>Kind</th><th>Description</th>"
         "<th>Reference</th><th>Amount (credits)</th></tr>",
         0);
    for (int i = 0; i < n; i++) {
        const struct bill_entry *r = &rows[i];
        int64_t a = r->amount;
        char when[40];

        time_iso(r->created_at, when, sizeof(when));
        micro_format(a, amount, sizeof(amount));
        if (a < 0)
            spent -= a;
        else
            credits += a;
        snprintf(line, sizeof(line), "<tr><td>%lld</td><td>", (long long)r->id);
        html(&page, line, 0);
        html(&page, when, 1);
        html(&page, "</td><td>", 0);
        html(&page, r->kind, 1);
        html(&page, "</td><td>", 0);
        html(&page, r->description, 1);
        html(&page, "</td><td>", 0);
        html(&page, r->ref, 1);
        html(&page, "</td><td class=\"n\">", 0);
        html(&page, amount, 1);
        html(&page, "</td></tr>", 0);
    }
    micro_format(spent, total, sizeof(total));
    micro_format(credits, added, sizeof(added));
    snprintf(line, sizeof(line),
             "</table><p>Credits added: <b id=\"credits\">%s</b></p><p>Total charged: "
             "<b id=\"total\">%s</b></p><p>Entries: %zu</p></body></html>\n",
             added, total, (size_t)n);
    html(&page, line, 0);
    {
        char *body = arena_strndup(&req->arena, page.p ? page.p : "", page.len);
        size_t len = page.len;

        buf_free(&page);
        req_add_header(req, "Cache-Control", "private, no-store");
        return req_reply_raw(req, 200, "text/html; charset=utf-8", body, len);
    }
}

static int api_voucher_validate(struct req *req)
{
    int64_t credits, exp;
    int err = billing_voucher_get(body_str(req, "code"), &credits, &exp);

    if (err == LY_ENOTFOUND)
        return req_fail(req, err, "Voucher not found");
    if (err)
        return err;
    return req_reply(req, json_pack("{s:b,s:o,s:o}", "valid", !exp || exp > now_us(), "credits",
                                    json_money(credits), "expires_at",
                                    exp ? json_time(exp) : json_null()));
}

static int api_voucher_redeem(struct req *req)
{
    const char *why = NULL;
    int64_t credits = 0, balance = 0;
    int err = billing_voucher_redeem(req->caller->org_id, req->caller->user_id,
                                     body_str(req, "code"), &credits, &balance, &why);

    if (err)
        return why ? req_fail(req, err, "%s", why) : err;
    return req_reply(req, json_pack("{s:o,s:o}", "credits_added", json_money(credits), "balance",
                                    json_money(balance)));
}

static int api_checkout(struct req *req)
{
    return req_fail(req, LY_ENOTIMPL, "Payments are not configured on this server");
}

static const struct field code_body[] = {
    {"code", FT_STRING, FF_REQUIRED, 1, 128, "the voucher code"},
    {0},
};
static const struct field checkout_body[] = {
    {"credits_amount", FT_NUMBER, FF_NULLABLE, 0, 0, NULL},
    {"success_url", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {"cancel_url", FT_STRING, FF_NULLABLE, 0, 0, NULL},
    {0},
};
static const struct field credits_resp[] = {
    {"available_credits", FT_NUMBER, 0, 0, 0, "the balance"},
    {"used_credits", FT_NUMBER, 0, 0, 0, "everything spent"},
    {"remaining_credits", FT_NUMBER, 0, 0, 0, NULL},
    {"monthly_free_credits", FT_NUMBER, 0, 0, 0, "the configured monthly allowance"},
    {"purchased_credits", FT_NUMBER, 0, 0, 0, "grants, vouchers, purchases"},
    {"total_credits_used", FT_NUMBER, 0, 0, 0, NULL},
    {0},
};
static const struct field history_resp[] = {
    {"executions", FT_ARRAY, 0, 0, 0, "ExecutionSummary rows with billed"},
    {"total_executions", FT_INTEGER, 0, 0, 0, NULL},
    {"total_credits_spent", FT_NUMBER, 0, 0, 0, NULL},
    {"limit", FT_INTEGER, 0, 0, 0, NULL},
    {"offset", FT_INTEGER, 0, 0, 0, NULL},
    {"counts_by_status", FT_OBJECT, 0, 0, 0, NULL},
    {0},
};
static const struct field invoices_resp[] = {
    {"invoices", FT_ARRAY, 0, 0, 0,
     "one statement a month, newest first: {id, period, created_at, amount, credits, status "
     "(open|closed), invoice_pdf, receipt_url, payment_intent_id, entries} and, after Stripe's "
     "invoice, {number, description, created (unix seconds), amount_due, amount_paid, "
     "amount_remaining (cents), currency (usd), hosted_invoice_url}"},
    {"total_invoices", FT_INTEGER, 0, 0, 0, NULL},
    {0},
};

const struct route api_billing_routes[] = {
    {"GET", "/pricing", api_pricing, R_PUBLIC, "The price book (decimal strings, per second)", NULL,
     NULL},
    {"GET", "/billing/credits", api_credits, 0, "The org's credits", NULL, credits_resp},
    {"GET", "/billing/credits/details", api_credits_details, 0, "Free and purchased credits", NULL,
     NULL},
    {"GET", "/billing/history", api_history, 0, "Runs with what each was billed", NULL,
     history_resp},
    {"GET", "/billing/activities", api_activities, 0, "Charges and purchases", NULL, NULL},
    {"GET", "/billing/invoices", api_invoices, 0, "Monthly statements", NULL, invoices_resp},
    {"GET", "/billing/invoices/{invoice_id}/document", api_invoice_document, R_PUBLIC,
     "A statement as a printable page (the invoice_pdf link carries its token)", NULL, NULL},
    {"POST", "/billing/vouchers/validate", api_voucher_validate, 0, "Check a voucher code",
     code_body, NULL},
    {"POST", "/billing/vouchers/redeem", api_voucher_redeem, 0,
     "Add a voucher's credits (once per org)", code_body, NULL},
    {"POST", "/billing/checkout", api_checkout, 0, "Buy credits (501 without a provider)",
     checkout_body, NULL},
    {0},
};
