/*
 * Metrics: a run's CPU, memory and GPU series (API.md 6.2, GET /execution/{id}/metrics, in
 * Lyceum's camelCase shape, averaged into `step` buckets) from the sampler's samples, and the
 * server's own metrics in Prometheus' text format (GET /metrics, no credentials; 404 when the
 * config turns it off).
 */
#include "api/api.h"
#include "core/err.h"
#include "core/util.h"
#include "metrics/prom.h"
#include "metrics/series.h"
#include "runs/query.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POINTS 11000 /* per series, as Prometheus allows */

static const char *const series_names[MS_COUNT] = {
    "systemCpuUsagePercent",
    "systemRamUsedBytes",
    "systemRamTotalBytes",
    "gpuUtilizationPercent",
    "gpuMemoryUtilizationPercent",
    "gpuTemperatureCelsius",
    "gpuPowerWatt",
    "gpuPowerLimitWatt",
    "gpuClockSmMhz",
    "gpuClockMemMhz",
    "gpuPcieThroughputRxBytesPerSec",
    "gpuPcieThroughputTxBytesPerSec",
};

/* "15s", "1m", "500ms", "2h", "1d" or a number of seconds: microseconds, or -1. */
static int64_t parse_step(const char *s)
{
    char *end;
    long long v;
    int64_t unit = 1000000;

    if (!s || !isdigit((unsigned char)*s))
        return -1;
    v = strtoll(s, &end, 10);
    if (v <= 0 || v > 100000000)
        return -1;
    if (strcmp(end, "ms") == 0)
        unit = 1000;
    else if (strcmp(end, "m") == 0)
        unit = 60000000LL;
    else if (strcmp(end, "h") == 0)
        unit = 3600000000LL;
    else if (strcmp(end, "d") == 0)
        unit = 86400000000LL;
    else if (*end && strcmp(end, "s") != 0)
        return -1;
    return v * unit;
}

/* An ISO-8601 time or Unix seconds: microseconds, or -1. */
static int64_t parse_time(const char *s)
{
    int64_t secs;
    char *end;
    double d;

    if (!s || !*s)
        return -1;
    d = strtod(s, &end);
    if (!*end && d >= 0 && d < 1e11)
        return (int64_t)(d * 1e6);
    if (time_parse_iso(s, &secs) != 0)
        return -1;
    return secs * 1000000;
}

struct series_out {
    json_t *arr[MS_COUNT];
};

static void add_point(void *arg, int64_t ts_us, const double *v, unsigned have)
{
    struct series_out *o = arg;
    char ts[40];

    time_iso(ts_us, ts, sizeof(ts));
    for (int k = 0; k < MS_COUNT; k++)
        if (have & 1u << k)
            json_array_append_new(o->arr[k],
                                  json_pack("{s:s,s:f}", "timestamp", ts, "value", v[k]));
}

static int api_metrics_execution(struct req *req)
{
    const char *qs = req_query(req, "start"), *qe = req_query(req, "end");
    const char *qstep = req_query(req, "step");
    int64_t start = qs ? parse_time(qs) : 0, end = qe ? parse_time(qe) : 0;
    int64_t step = qstep ? parse_step(qstep) : 15000000;
    struct series_out out;
    char a[40], b[40];
    struct run_row row;
    json_t *o;
    int err;

    if (qs && start < 0)
        req_invalid(req, "query", "start", "Input should be a valid datetime", "datetime_parsing");
    if (qe && end < 0)
        req_invalid(req, "query", "end", "Input should be a valid datetime", "datetime_parsing");
    if (step < 1000000)
        req_invalid(req, "query", "step",
                    "Input should be a duration of at least 1s, like 5s, 15s, 1m or 1h",
                    "value_error");
    err = req_check_valid(req);
    if (err)
        return err;
    err = runq_get(&req->arena, req->caller->org_id, req_param(req, "execution_id"), &row);
    if (err == LY_ENOTFOUND)
        return req_fail(req, LY_ENOTFOUND, "Execution not found");
    if (err)
        return err;
    /* From when it began running (else got its slot, else was created) to when it ended. */
    if (!qs)
        start = row.running_at ?: row.started_at ?: row.created_at;
    if (!qe)
        end = row.ended_at ?: row.finished_at ?: now_us();
    if (end < start)
        req_invalid(req, "query", "end", "end must not be before start", "value_error");
    else if ((end - start) / step >= MAX_POINTS)
        req_invalid(req, "query", "step",
                    "exceeded maximum resolution of 11,000 points per series: "
                    "use a larger step or a shorter range",
                    "value_error");
    err = req_check_valid(req);
    if (err)
        return err;
    for (int k = 0; k < MS_COUNT; k++)
        out.arr[k] = json_array();
    err = series_read(row.id, start, end, step, add_point, &out);
    time_iso(start, a, sizeof(a));
    time_iso(end, b, sizeof(b));
    o = json_pack("{s:s,s:s,s:{s:s,s:s},s:s}", "executionId", row.id, "hostname", api_hostname(),
                  "timeRange", "start", a, "end", b, "step", qstep ? qstep : "15s");
    for (int k = 0; k < MS_COUNT; k++)
        json_object_set_new(o, series_names[k], out.arr[k]);
    if (err) {
        json_decref(o);
        return err;
    }
    return req_reply(req, o);
}

static int api_metrics_prometheus(struct req *req)
{
    size_t n;
    char *text, *body;

    if (!prom_enabled())
        return req_fail(req, LY_ENOTFOUND, "Not Found");
    text = prom_render(&n);
    body = arena_alloc(&req->arena, n + 1);
    memcpy(body, text, n);
    free(text);
    return req_reply_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", body, n);
}

static const struct field metrics_resp[] = {
    {"executionId", FT_STRING, 0, 0, 0, NULL},
    {"hostname", FT_STRING, 0, 0, 0, NULL},
    {"timeRange", FT_OBJECT, 0, 0, 0, "{start, end}"},
    {"systemCpuUsagePercent", FT_ARRAY, 0, 0, 0,
     "[{timestamp, value}]: percent of one CPU (100 = one core busy)"},
    {"systemRamUsedBytes", FT_ARRAY, 0, 0, 0, NULL},
    {"systemRamTotalBytes", FT_ARRAY, 0, 0, 0, "the run's memory limit, else the machine's"},
    {"gpuUtilizationPercent", FT_ARRAY, 0, 0, 0, "the mean over the run's GPUs ([] without)"},
    {"gpuMemoryUtilizationPercent", FT_ARRAY, 0, 0, 0, "GPU memory in use, percent"},
    {"gpuTemperatureCelsius", FT_ARRAY, 0, 0, 0, NULL},
    {"gpuPowerWatt", FT_ARRAY, 0, 0, 0, "the sum over the run's GPUs"},
    {"gpuPowerLimitWatt", FT_ARRAY, 0, 0, 0, NULL},
    {"gpuClockSmMhz", FT_ARRAY, 0, 0, 0, NULL},
    {"gpuClockMemMhz", FT_ARRAY, 0, 0, 0, NULL},
    {"gpuPcieThroughputRxBytesPerSec", FT_ARRAY, 0, 0, 0, NULL},
    {"gpuPcieThroughputTxBytesPerSec", FT_ARRAY, 0, 0, 0, NULL},
    {0},
};

const struct route api_metrics_routes[] = {
    {"GET", "/execution/{execution_id}/metrics", api_metrics_execution, 0,
     "A run's CPU, memory and GPU series: ?start=&end= (ISO-8601 or Unix seconds) &step=15s", NULL,
     metrics_resp},
    {0},
};

const struct route api_prometheus_routes[] = {
    {"GET", "/metrics", api_metrics_prometheus, R_PUBLIC,
     "The server's metrics in Prometheus' text format (no credentials)", NULL, NULL},
    {0},
};
