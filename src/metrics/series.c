/* See series.h. The averaging is the store's query; this is the domain's door to it. */
#include "metrics/series.h"

int series_read(const char *run_id, int64_t start_us, int64_t end_us, int64_t step_us,
                void (*fn)(void *arg, int64_t ts_us, const double *v, unsigned have), void *arg)
{
    return db_metrics_series(run_id, start_us, end_us, step_us, fn, arg);
}
