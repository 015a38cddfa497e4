/*
 * See prom.h. Request counters live in a fixed open-addressing table of slots keyed by
 * (prefix, path, label, method, status); a slot is claimed once with a compare-and-swap and
 * counted into with relaxed atomic adds, so the hot path is a hash, a probe and a few adds.
 * The strings are static (route tables' literals), so their addresses are stable keys.
 */
#include "metrics/prom.h"
#include "core/arena.h"
#include "core/util.h"
#include "logs/logs.h"
#include "runs/sched.h"
#include "store/metrics.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS    1024
#define NBUCKETS 13

static const double bucket_le[NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,    1,     2.5,  5,     10};
static const char *const methods[] = {"GET",    "POST",    "PUT",  "PATCH",
                                      "DELETE", "OPTIONS", "HEAD", "other"};

enum { FREE = 0, CLAIMING, READY };

struct slot {
    _Atomic int state;
    const char *prefix, *path;
    const char *label;
    int method, status;
    _Atomic uint64_t count, sum_us, bucket[NBUCKETS + 1]; /* the last one: +Inf only */
};

static struct slot slots[SLOTS];
static _Atomic uint64_t dropped;
static int enabled = 1;
static int64_t started_unix;

void prom_set_enabled(int on)
{
    enabled = on;
    started_unix = now_unix();
}

int prom_enabled(void)
{
    return enabled;
}

static int method_index(const char *m)
{
    for (int i = 0; i < 7; i++)
        if (m && strcmp(m, methods[i]) == 0)
            return i;
    return 7;
}

static int same(const struct slot *s, const char *prefix, const char *path, const char *label,
                int method, int status)
{
    return s->prefix == prefix && s->path == path && s->label == label && s->method == method &&
           s->status == status;
}

void prom_count(const char *prefix, const char *path, const char *label, const char *method,
                int status, int64_t us)
{
    int mi = method_index(method);
    uint64_t h = (uint64_t)(uintptr_t)path * 31 + (uint64_t)(uintptr_t)prefix * 17 +
                 (uint64_t)(uintptr_t)label * 13 + (uint64_t)mi * 7 + (uint64_t)status;
    struct slot *s = NULL;
    double secs = (double)(us > 0 ? us : 0) / 1e6;
    int b;

    h ^= h >> 29;
    h *= 0x9E3779B97F4A7C15ULL;
    for (int probe = 0; probe < SLOTS; probe++) {
        struct slot *c = &slots[(h + (uint64_t)probe) % SLOTS];
        int st = atomic_load_explicit(&c->state, memory_order_acquire);

        if (st == FREE) {
            int expect = FREE;

            if (atomic_compare_exchange_strong(&c->state, &expect, CLAIMING)) {
                c->prefix = prefix;
                c->path = path;
                c->label = label;
                c->method = mi;
                c->status = status;
                atomic_store_explicit(&c->state, READY, memory_order_release);
                s = c;
                break;
            }
            st = expect;
        }
        while (st == CLAIMING)
            st = atomic_load_explicit(&c->state, memory_order_acquire);
        if (same(c, prefix, path, label, mi, status)) {
            s = c;
            break;
        }
    }
    if (!s) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    for (b = 0; b < NBUCKETS && secs > bucket_le[b]; b++)
        ;
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, (uint64_t)(us > 0 ? us : 0), memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
}

/* ---- the text ---- */

struct pbuf {
    char *p;
    size_t n, cap;
};

static void pb_printf(struct pbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pb_printf(struct pbuf *b, const char *fmt, ...)
{
    va_list ap;
    int k;

    for (;;) {
        va_start(ap, fmt);
        k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
}

/* A label value with \, " and newlines escaped, into out (truncated to n). */
static const char *esc(const char *s, char *out, size_t n)
{
    size_t k = 0;

    for (; s && *s && k + 3 < n; s++) {
        if (*s == '\\' || *s == '"') {
            out[k++] = '\\';
            out[k++] = *s;
        } else if (*s == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *s;
        }
    }
    out[k] = '\0';
    return out;
}

static void head(struct pbuf *b, const char *name, const char *type, const char *help)
{
    pb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *route_label(const struct slot *s, char *out, size_t n)
{
    char raw[600];

    if (s->label)
        snprintf(raw, sizeof(raw), "%s", s->label);
    else if (s->path)
        snprintf(raw, sizeof(raw), "%s%s", s->prefix ? s->prefix : "", s->path);
    else
        snprintf(raw, sizeof(raw), "unmatched");
    return esc(raw, out, n);
}

static void render_requests(struct pbuf *b)
{
    char route[1300];

    head(b, "lyceumd_http_requests_total", "counter",
         "HTTP requests answered, by route pattern, method and status.");
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[i];

        if (atomic_load_explicit(&s->state, memory_order_acquire) != READY)
            continue;
        pb_printf(b, "lyceumd_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
                  route_label(s, route, sizeof(route)), methods[s->method], s->status,
                  (unsigned long long)atomic_load(&s->count));
    }
    head(b, "lyceumd_http_request_duration_seconds", "histogram",
         "Time from a request's arrival to its handler's answer, by route, method and status.");
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[i];
        uint64_t cum = 0, count;

        if (atomic_load_explicit(&s->state, memory_order_acquire) != READY)
            continue;
        route_label(s, route, sizeof(route));
        for (int k = 0; k < NBUCKETS; k++) {
            cum += atomic_load(&s->bucket[k]);
            pb_printf(b,
                      "lyceumd_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\","
                      "status=\"%d\",le=\"%g\"} %llu\n",
                      route, methods[s->method], s->status, bucket_le[k], (unsigned long long)cum);
        }
        cum += atomic_load(&s->bucket[NBUCKETS]);
        count = cum;
        pb_printf(b,
                  "lyceumd_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\","
                  "status=\"%d\",le=\"+Inf\"} %llu\n",
                  route, methods[s->method], s->status, (unsigned long long)count);
        pb_printf(b,
                  "lyceumd_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\","
                  "status=\"%d\"} %.6f\n",
                  route, methods[s->method], s->status, (double)atomic_load(&s->sum_us) / 1e6);
        pb_printf(b,
                  "lyceumd_http_request_duration_seconds_count{route=\"%s\",method=\"%s\","
                  "status=\"%d\"} %llu\n",
                  route, methods[s->method], s->status, (unsigned long long)count);
    }
    head(b, "lyceumd_http_requests_uncounted_total", "counter",
         "Requests not counted by route because the table of routes and statuses was full.");
    pb_printf(b, "lyceumd_http_requests_uncounted_total %llu\n",
              (unsigned long long)atomic_load(&dropped));
}

static void run_count(void *arg, const char *status, const char *profile, int64_t n)
{
    char e1[200], e2[200];

    pb_printf(arg, "lyceumd_runs{status=\"%s\",profile=\"%s\"} %lld\n", esc(status, e1, sizeof(e1)),
              esc(profile, e2, sizeof(e2)), (long long)n);
}

static void render_runs(struct pbuf *b)
{
    struct arena a;
    struct run_capacity *cap;
    int n;
    char e1[200];

    head(b, "lyceumd_runs", "gauge", "Runs in the store, by status and hardware profile.");
    db_metrics_run_counts(run_count, b);
    arena_init(&a);
    n = runs_capacity(&a, &cap);
    head(b, "lyceumd_queue_depth", "gauge", "Runs waiting for a slot (pending), by profile.");
    for (int i = 0; i < n; i++)
        pb_printf(b, "lyceumd_queue_depth{profile=\"%s\"} %lld\n",
                  esc(cap[i].profile, e1, sizeof(e1)), (long long)cap[i].pending);
    head(b, "lyceumd_capacity_in_use", "gauge", "Slots held by running runs, by profile.");
    for (int i = 0; i < n; i++)
        pb_printf(b, "lyceumd_capacity_in_use{profile=\"%s\"} %lld\n",
                  esc(cap[i].profile, e1, sizeof(e1)), (long long)cap[i].running);
    head(b, "lyceumd_capacity_slots", "gauge", "Runs a profile may have going at once.");
    for (int i = 0; i < n; i++)
        pb_printf(b, "lyceumd_capacity_slots{profile=\"%s\"} %lld\n",
                  esc(cap[i].profile, e1, sizeof(e1)), (long long)cap[i].max_concurrent);
    arena_release(&a);
}

static void ledger_total(void *arg, const char *kind, int64_t total)
{
    char e1[200];

    pb_printf(arg, "lyceumd_ledger_credits{kind=\"%s\"} %.6f\n", esc(kind, e1, sizeof(e1)),
              (double)total / 1e6);
}

static void render_money_and_logs(struct pbuf *b)
{
    head(b, "lyceumd_ledger_credits", "gauge",
         "The sum of the credits ledger's entries, by kind (spending is negative).");
    db_metrics_ledger_totals(ledger_total, b);
    head(b, "lyceumd_log_stored_bytes", "gauge", "Bytes of run logs kept on disk, with indexes.");
    pb_printf(b, "lyceumd_log_stored_bytes %llu\n", (unsigned long long)logs_bytes_stored());
    head(b, "process_start_time_seconds", "gauge", "When lyceumd started (Unix time).");
    pb_printf(b, "process_start_time_seconds %lld\n", (long long)started_unix);
}

char *prom_render(size_t *len)
{
    struct pbuf b = {xmalloc(16384), 0, 16384};

    render_requests(&b);
    render_runs(&b);
    render_money_and_logs(&b);
    *len = b.n;
    return b.p;
}
