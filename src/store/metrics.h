/*
 * The SQL of observability: samples of running runs (run_metrics), the runs whose logs a
 * user may query, and the figures /metrics shows (runs by status and profile, ledger totals).
 * Tenant reads are scoped by org_id in the SQL; the sampler's own queries are marked.
 */
#ifndef LYCEUMD_STORE_METRICS_H
#define LYCEUMD_STORE_METRICS_H

#include <stddef.h>
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

/* Sampler: a run going on this machine with a process group. */
struct db_local_run {
    char id[40];
    int64_t pid, pid_start;
    char gpus[64];    /* "" without GPUs */
    char profile[64]; /* its hardware profile */
    int64_t running_at;
};
/* Sampler: every such run (every org's), into *out (malloc'd; the caller frees it; NULL when
 * there is none) and *n. 0 or LY_EDB. */
int db_metrics_running_local(struct db_local_run **out, size_t *n);
/* Sampler: stores samples in one transaction. */
int db_metrics_insert(const struct metric_sample *s, int n);
/* Sampler: deletes samples older than before_us. */
int db_metrics_prune(int64_t before_us);

/* The samples of run_id between start and end (µs) averaged into buckets of step_us, the
 * first starting at start: calls fn once per bucket that has a sample, in time order, with
 * the bucket's start and the averages (have: which are known). 0 or LY_EDB. */
int db_metrics_series(const char *run_id, int64_t start_us, int64_t end_us, int64_t step_us,
                      void (*fn)(void *arg, int64_t ts_us, const double *v, unsigned have),
                      void *arg);

/* The runs of user in org (not deleted) that were going at some time since since_us, newest
 * first, at most limit: fn is called once for each, with its id and profile (valid during the
 * call only). 0 or LY_EDB. */
int db_logs_user_runs(const char *org_id, const char *user_id, int64_t since_us, int limit,
                      void (*fn)(void *arg, const char *id, const char *profile), void *arg);

/* For /metrics: fn once per (status, profile) of the runs with their count, in that order;
 * fn once per kind of ledger entry with the sum of its amounts (micro-credits). 0 or LY_EDB. */
int db_metrics_run_counts(void (*fn)(void *arg, const char *status, const char *profile, int64_t n),
                          void *arg);
int db_metrics_ledger_totals(void (*fn)(void *arg, const char *kind, int64_t total), void *arg);

#endif
