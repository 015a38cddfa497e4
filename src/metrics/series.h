/*
 * A run's samples read back (API.md 6.2): the series the sampler recorded for a run, averaged
 * into buckets, for GET /execution/{id}/metrics. The series' order (MS_CPU ... MS_COUNT) and
 * struct metric_sample are the store's (store/metrics.h), which keeps them in that order.
 * Thread-safe.
 */
#ifndef LYCEUMD_METRICS_SERIES_H
#define LYCEUMD_METRICS_SERIES_H

#include "store/metrics.h"

#include <stdint.h>

/* The samples of run_id between start and end (µs) averaged into buckets of step_us, the
 * first starting at start: calls fn once per bucket that has a sample, in time order, with
 * the bucket's start and the averages (have: which are known). 0 or LY_EDB. */
int series_read(const char *run_id, int64_t start_us, int64_t end_us, int64_t step_us,
                void (*fn)(void *arg, int64_t ts_us, const double *v, unsigned have), void *arg);

#endif
