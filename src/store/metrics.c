/* See metrics.h. Rows are read column by column into the callers' types. */
#include "store/metrics.h"
#include "core/err.h"
#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_COLS                                                                                 \
    "cpu_percent, ram_used, ram_total, gpu_util, gpu_mem_util, gpu_temp, gpu_power, "              \
    "gpu_power_limit, gpu_clock_sm, gpu_clock_mem, gpu_pcie_rx, gpu_pcie_tx"

int db_metrics_running_local(struct db_local_run **out, size_t *n)
{
    /* The sampler's: every org's runs. */
    sqlite3_stmt *st = q_prepare("SELECT id, pid, pid_start, gpus, profile, running_at FROM runs "
                                 "WHERE status = 'running' AND backend = 'local' AND pid > 0",
                                 "");
    size_t cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct db_local_run *r;

        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = realloc(*out, cap * sizeof(**out));
            if (!*out)
                abort();
        }
        r = &(*out)[(*n)++];
        snprintf(r->id, sizeof(r->id), "%s", q_text(st, 0) ? q_text(st, 0) : "");
        r->pid = sqlite3_column_int64(st, 1);
        r->pid_start = sqlite3_column_int64(st, 2);
        snprintf(r->gpus, sizeof(r->gpus), "%s", q_text(st, 3) ? q_text(st, 3) : "");
        snprintf(r->profile, sizeof(r->profile), "%s", q_text(st, 4) ? q_text(st, 4) : "");
        r->running_at = sqlite3_column_int64(st, 5);
    }
    q_done(st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return LY_EDB;
    }
    return 0;
}

static const char insert_sql[] = "INSERT OR REPLACE INTO run_metrics (run_id, ts, " VALUE_COLS
                                 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

int db_metrics_insert(const struct metric_sample *s, int n)
{
    int err = 0;

    if (!n)
        return 0;
    if (store_begin())
        return LY_EDB;
    for (int i = 0; i < n && !err; i++) {
        sqlite3_stmt *st = q_prepare(insert_sql, "si", s[i].run_id, s[i].ts_us);

        if (!st) {
            err = LY_EDB;
            break;
        }
        for (int k = 0; k < MS_COUNT; k++) {
            if (!(s[i].have & 1u << k))
                sqlite3_bind_null(st, 3 + k);
            else if (k == MS_RAM_USED || k == MS_RAM_TOTAL)
                sqlite3_bind_int64(st, 3 + k, (sqlite3_int64)s[i].v[k]);
            else
                sqlite3_bind_double(st, 3 + k, s[i].v[k]);
        }
        if (sqlite3_step(st) != SQLITE_DONE)
            err = LY_EDB;
        q_done(st);
    }
    return store_end(err);
}

int db_metrics_prune(int64_t before_us)
{
    int n = q_exec("DELETE FROM run_metrics WHERE ts < ?", "i", before_us);

    return n < 0 ? n : 0;
}

int db_metrics_series(const char *run_id, int64_t start_us, int64_t end_us, int64_t step_us,
                      void (*fn)(void *arg, int64_t ts_us, const double *v, unsigned have),
                      void *arg)
{
    sqlite3_stmt *st = q_prepare(
        "SELECT (ts - ?1) / ?2 AS b, avg(cpu_percent), avg(ram_used), avg(ram_total), "
        "avg(gpu_util), avg(gpu_mem_util), avg(gpu_temp), avg(gpu_power), avg(gpu_power_limit), "
        "avg(gpu_clock_sm), avg(gpu_clock_mem), avg(gpu_pcie_rx), avg(gpu_pcie_tx) "
        "FROM run_metrics WHERE run_id = ?3 AND ts >= ?1 AND ts <= ?4 GROUP BY b ORDER BY b",
        "iisi", start_us, step_us, run_id, end_us);
    int rc;

    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        double v[MS_COUNT];
        unsigned have = 0;

        for (int k = 0; k < MS_COUNT; k++) {
            v[k] = sqlite3_column_double(st, 1 + k);
            if (sqlite3_column_type(st, 1 + k) != SQLITE_NULL)
                have |= 1u << k;
        }
        fn(arg, start_us + sqlite3_column_int64(st, 0) * step_us, v, have);
    }
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int db_logs_user_runs(const char *org_id, const char *user_id, int64_t since_us, int limit,
                      void (*fn)(void *arg, const char *id, const char *profile), void *arg)
{
    sqlite3_stmt *st = q_prepare("SELECT id, profile FROM runs WHERE org_id = ? AND user_id = ? "
                                 "AND deleted_at IS NULL AND started_at IS NOT NULL AND "
                                 "(ended_at IS NULL OR ended_at >= ?) "
                                 "ORDER BY started_at DESC LIMIT ?",
                                 "ssii", org_id, user_id, since_us, (int64_t)limit);
    int rc;

    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(arg, q_text(st, 0), q_text(st, 1));
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int db_metrics_run_counts(void (*fn)(void *arg, const char *status, const char *profile, int64_t n),
                          void *arg)
{
    sqlite3_stmt *st = q_prepare("SELECT status, profile, count(*) AS n FROM runs "
                                 "GROUP BY status, profile ORDER BY status, profile",
                                 "");
    int rc;

    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(arg, q_text(st, 0), q_text(st, 1), sqlite3_column_int64(st, 2));
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

int db_metrics_ledger_totals(void (*fn)(void *arg, const char *kind, int64_t total), void *arg)
{
    sqlite3_stmt *st = q_prepare("SELECT kind, sum(amount) AS total FROM ledger GROUP BY kind "
                                 "ORDER BY kind",
                                 "");
    int rc;

    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(arg, q_text(st, 0), sqlite3_column_int64(st, 1));
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}
