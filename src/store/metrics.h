/*
 * The SQL of observability: samples of running runs (run_metrics), the runs whose logs a
 * user may query, and the figures /metrics shows (runs by status and profile, ledger totals).
 * Tenant reads are scoped by org_id in the SQL; the sampler's own queries are marked.
 */
#ifndef LYCEUMD_STORE_METRICS_H
#define LYCEUMD_STORE_METRICS_H

#include <jansson.h>
#include <stdint.h>

/* Series of a sample, in the order of run_metrics' value columns. */
enum {
    MS_CPU = 0,
    MS_RAM_USED,
    MS_RAM_TOTAL,
    MS_GPU_UTIL,
    MS_GPU_MEM_UTIL,
    MS_GPU_TEMP,
    MS_GPU_POWER,
    MS_GPU_POWER_LIMIT,
    MS_GPU_CLOCK_SM,
    MS_GPU_CLOCK_MEM,
    MS_GPU_PCIE_RX,
    MS_GPU_PCIE_TX,
    MS_COUNT
};

struct metric_sample {
    char run_id[40];
    int64_t ts_us;
    double v[MS_COUNT];
    unsigned have; /* bit i: v[i] is known (else stored as NULL) */
};

/* Sampler: runs going on this machine with a process group (rows: id, pid, pid_start, gpus,
 * profile, running_at). */
int metrics_running_local(json_t *out);
/* Sampler: stores samples in one transaction. */
int metrics_insert(const struct metric_sample *s, int n);
/* Sampler: deletes samples older than before_us. */
int metrics_prune(int64_t before_us);

/* The samples of run_id between start and end (µs) averaged into buckets of step_us, the
 * first starting at start: calls fn once per bucket that has a sample, in time order, with
 * the bucket's start and the averages (have: which are known). 0 or LY_EDB. */
int metrics_series(const char *run_id, int64_t start_us, int64_t end_us, int64_t step_us,
                   void (*fn)(void *arg, int64_t ts_us, const double *v, unsigned have), void *arg);

/* The rows {id, profile} of user's runs in org (not deleted) that were going at some time
 * since since_us, newest first, at most limit. */
int logs_user_runs(const char *org_id, const char *user_id, int64_t since_us, int limit,
                   json_t *rows);

/* For /metrics: rows {status, profile, n} of every run; rows {kind, total} of the ledger. */
int metrics_run_counts(json_t *out);
int metrics_ledger_totals(json_t *out);

#endif
